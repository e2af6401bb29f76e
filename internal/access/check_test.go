package access

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/reply"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
)

// Passwords of the fixture, hashed once: argon2id is slow, more so under
// the race detector.
const (
	appPW   = "app-password-1"
	alicePW = "alice-password-1"
	appID   = "0a1b2c3d-0000-4000-8000-000000000001"
	otherID = "0a1b2c3d-0000-4000-8000-000000000002"
)

var hashes = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, pw := range []string{appPW, alicePW, "new-password"} {
		h, err := password.Hash(pw)
		if err != nil {
			panic(err)
		}
		m[pw] = h
	}
	return m
})

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type recorder struct {
	mu     sync.Mutex
	events []trace.Event
}

func (r *recorder) Record(e trace.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) take() []trace.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// fakeTokens answers Verify from a table of tokens.
type fakeTokens struct {
	clock  *fakeClock
	tenant int64 // the tenant every token is for
}

func (f *fakeTokens) Verify(_ context.Context, token string, tenant directory.Tenant) (Claims, error) {
	now := f.clock.Now()
	c := Claims{Issuer: "https://hve.test", AppID: appID, MailSend: true, IssuedAt: now.Add(-time.Minute), Expires: now.Add(time.Hour)}
	if tenant.ID != f.tenant {
		return Claims{}, fmt.Errorf("%w: token of another tenant", ErrTokenInvalid)
	}
	switch token {
	case "good":
	case "good-upper":
		c.AppID = strings.ToUpper(appID)
	case "no-send":
		c.MailSend = false
	case "other-app":
		c.AppID = otherID
	case "old":
		c.IssuedAt = now.Add(-50 * time.Minute)
	case "expired":
		return Claims{}, fmt.Errorf("%w: expired at %s", ErrTokenExpired, now.Add(-time.Minute).Format(time.RFC3339))
	case "broken":
		return Claims{}, errors.New("fetching the issuer's keys: connection refused")
	default:
		return Claims{}, fmt.Errorf("%w: signature does not verify", ErrTokenInvalid)
	}
	return c, nil
}

type fixture struct {
	t      *testing.T
	ctx    context.Context
	st     *sqlite.Store
	clock  *fakeClock
	rec    *recorder
	rand   float64
	c      *Checker
	tenant directory.Tenant
	app    directory.Account // app@acme.example, enabled, allows appID
	alice  directory.Mailbox // alice@acme.example, alias al@acme.example
	nopw   directory.Mailbox // nopw@acme.example, no password
	conv   directory.Mailbox // conv@acme.example, converted from an HVE account
}

var (
	appIP   = netip.MustParseAddr("192.0.2.10")
	otherIP = netip.MustParseAddr("198.51.100.20")
)

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, ctx: ctx, st: st, clock: &fakeClock{now: t0}, rec: &recorder{}, rand: 0.5}
	if f.tenant, err = st.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: f.tenant.ID, Name: "acme.example", Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	h := hashes()
	if f.app, err = st.CreateAccount(ctx, directory.Account{TenantID: f.tenant.ID, Name: "app", Address: "app@acme.example",
		PasswordHash: h[appPW], Enabled: true, AllowedApps: []string{strings.ToUpper(appID)}}); err != nil {
		t.Fatal(err)
	}
	if f.alice, err = st.CreateMailbox(ctx, directory.Mailbox{TenantID: f.tenant.ID, Name: "alice", Address: "alice@acme.example",
		Aliases: []string{"al@acme.example"}, PasswordHash: h[alicePW]}); err != nil {
		t.Fatal(err)
	}
	if f.nopw, err = st.CreateMailbox(ctx, directory.Mailbox{TenantID: f.tenant.ID, Name: "nopw", Address: "nopw@acme.example"}); err != nil {
		t.Fatal(err)
	}
	conv, err := st.CreateAccount(ctx, directory.Account{TenantID: f.tenant.ID, Name: "conv", Address: "conv@acme.example", PasswordHash: h[appPW], Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if f.conv, err = st.ConvertAccountToMailbox(ctx, f.tenant.ID, conv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateApp(ctx, directory.App{TenantID: f.tenant.ID, Name: "mailer", AppID: appID, ObjectID: "0b000000-0000-4000-8000-000000000001",
		Permissions: []directory.Permission{directory.MailSend}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateApp(ctx, directory.App{TenantID: f.tenant.ID, Name: "reader", AppID: otherID, ObjectID: "0b000000-0000-4000-8000-000000000002"}); err != nil {
		t.Fatal(err)
	}
	cfg.Now = f.clock.Now
	cfg.Rand = func() float64 { return f.rand }
	f.c = New(st, &fakeTokens{clock: f.clock, tenant: f.tenant.ID}, f.rec, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return f
}

func (f *fixture) basic(ep directory.Endpoint, user, pw string) Attempt {
	return Attempt{Endpoint: ep, Method: Basic, Username: user, Password: pw, ClientIP: appIP}
}

func (f *fixture) oauth(ep directory.Endpoint, user, token string) Attempt {
	return Attempt{Endpoint: ep, Method: OAuth, Username: user, Token: token, ClientIP: appIP}
}

func (f *fixture) check(a Attempt) Result {
	f.t.Helper()
	return f.c.Check(f.ctx, a)
}

func (f *fixture) updateAccount(mod func(a *directory.Account)) {
	f.t.Helper()
	a, err := f.st.Account(f.ctx, f.tenant.ID, f.app.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	mod(&a)
	if f.app, err = f.st.UpdateAccount(f.ctx, a); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) updateMailbox(id int64, mod func(m *directory.Mailbox)) {
	f.t.Helper()
	m, err := f.st.Mailbox(f.ctx, f.tenant.ID, id)
	if err != nil {
		f.t.Fatal(err)
	}
	mod(&m)
	if _, err = f.st.UpdateMailbox(f.ctx, m); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) settings(mod func(s *directory.Settings)) {
	f.t.Helper()
	t, err := f.st.Tenant(f.ctx, f.tenant.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	mod(&t.Settings)
	if f.tenant, err = f.st.UpdateTenantSettings(f.ctx, f.tenant.ID, t.Settings); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) authPolicy(name string, allow bool) {
	f.t.Helper()
	if _, err := f.st.CreateAuthPolicy(f.ctx, directory.AuthPolicy{TenantID: f.tenant.ID, Name: name, AllowBasicAuthSMTP: allow}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) caPolicy(p directory.CAPolicy) directory.CAPolicy {
	f.t.Helper()
	p.TenantID = f.tenant.ID
	if p.Grant == "" {
		p.Grant = directory.GrantBlock
	}
	p, err := f.st.CreateCAPolicy(f.ctx, p)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// isReply reports whether e is rp (formatted or not).
func isReply(e *smtp.SMTPError, rp *reply.Reply) bool {
	if e == nil || rp == nil {
		return e == nil && rp == nil
	}
	prefix := rp.Text
	if i := strings.IndexByte(prefix, '%'); i >= 0 {
		prefix = prefix[:i]
	}
	return e.Code == rp.Code && e.EnhancedCode == rp.Enhanced && strings.HasPrefix(e.Message, prefix)
}

func replyName(e *smtp.SMTPError) string {
	if e == nil {
		return "OK"
	}
	for _, rp := range reply.Own {
		if isReply(e, rp) {
			return rp.Name
		}
	}
	return reply.Line(e)
}

func stepsString(steps []Step) string {
	var b strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&b, "\n  %s: %s: %s", s.Check, s.Verdict, s.Detail)
		if s.Fix != "" {
			fmt.Fprintf(&b, " [fix: %s]", s.Fix)
		}
	}
	return b.String()
}

func TestCheckReplies(t *testing.T) {
	hve, client := directory.EndpointHVE, directory.EndpointClient
	tests := []struct {
		name    string
		setup   func(f *fixture)
		attempt func(f *fixture) Attempt
		want    *reply.Reply // nil: signed in
		reason  string       // a substring of Result.Reason
		message string       // a substring of the reply text
	}{
		// 2. identity
		{name: "HVE account signs in",
			attempt: func(f *fixture) Attempt { return f.basic(hve, "App@Acme.Example", appPW) }},
		{name: "unknown address", want: reply.AuthFailed, reason: "no HVE account or mailbox",
			attempt: func(f *fixture) Attempt { return f.basic(hve, "nobody@acme.example", appPW) }},
		{name: "username not an address", want: reply.AuthFailed, reason: "not an address",
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app", appPW) }},
		// 3. credential
		{name: "wrong password", want: reply.AuthFailed, reason: "wrong password",
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", "guess") }},
		{name: "mailbox without password", want: reply.AuthFailed, reason: "no password",
			attempt: func(f *fixture) Attempt { return f.basic(client, "nopw@acme.example", "") }},
		{name: "OAuth signs in",
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "good") }},
		{name: "expired token", want: reply.TokenExpired, reason: "expired",
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "expired") }},
		{name: "invalid token", want: reply.AuthFailed, reason: "signature",
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "forged") }},
		{name: "verifier cannot decide", want: reply.AuthTemporaryFailure, reason: "connection refused",
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "broken") }},
		{name: "token issued before tokens-valid-from", want: reply.TokenExpired, reason: "before the identity's tokens-valid-from",
			setup: func(f *fixture) {
				f.updateAccount(func(a *directory.Account) { a.TokensValidFrom = t0.Add(-10 * time.Minute) })
			},
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "old") }},
		{name: "token issued after tokens-valid-from",
			setup: func(f *fixture) {
				f.updateAccount(func(a *directory.Account) { a.TokensValidFrom = t0.Add(-10 * time.Minute) })
			},
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "good") }},
		// 4. endpoint
		{name: "mailbox on the HVE endpoint", want: reply.MailboxOnHVEEndpoint,
			attempt: func(f *fixture) Attempt { return f.basic(hve, "alice@acme.example", alicePW) }},
		{name: "mailbox alias on the HVE endpoint", want: reply.MailboxOnHVEEndpoint,
			attempt: func(f *fixture) Attempt { return f.basic(hve, "al@acme.example", alicePW) }},
		{name: "mailbox with a wrong password on the HVE endpoint", want: reply.AuthFailed, reason: "wrong password",
			attempt: func(f *fixture) Attempt { return f.basic(hve, "alice@acme.example", appPW) }},
		{name: "converted account", want: reply.ConvertedToMailbox, reason: "converted",
			attempt: func(f *fixture) Attempt { return f.basic(hve, "conv@acme.example", appPW) }},
		{name: "HVE account on the client endpoint", want: reply.AccountOnClientEndpoint,
			attempt: func(f *fixture) Attempt { return f.basic(client, "app@acme.example", appPW) }},
		{name: "mailbox on the client endpoint",
			attempt: func(f *fixture) Attempt { return f.basic(client, "alice@acme.example", alicePW) }},
		{name: "mailbox by alias on the client endpoint",
			attempt: func(f *fixture) Attempt { return f.basic(client, "AL@acme.example", alicePW) }},
		// 5. disabled
		{name: "disabled account", want: reply.AccountLocked, reason: "disabled",
			setup:   func(f *fixture) { f.updateAccount(func(a *directory.Account) { a.Enabled = false }) },
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "disabled account, OAuth", want: reply.AccountLocked,
			setup:   func(f *fixture) { f.updateAccount(func(a *directory.Account) { a.Enabled = false }) },
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "good") }},
		// 6. basic auth settings
		{name: "security defaults", want: reply.SecurityDefaults,
			setup:   func(f *fixture) { f.settings(func(s *directory.Settings) { s.SecurityDefaults = true }) },
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "security defaults leave OAuth alone",
			setup:   func(f *fixture) { f.settings(func(s *directory.Settings) { s.SecurityDefaults = true }) },
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "good") }},
		{name: "client SMTP auth disabled", want: reply.ClientAuthDisabled,
			setup:   func(f *fixture) { f.settings(func(s *directory.Settings) { s.ClientSMTPAuthDisabled = true }) },
			attempt: func(f *fixture) Attempt { return f.basic(client, "alice@acme.example", alicePW) }},
		{name: "client SMTP auth disabled leaves the HVE endpoint alone",
			setup:   func(f *fixture) { f.settings(func(s *directory.Settings) { s.ClientSMTPAuthDisabled = true }) },
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "own policy blocks", want: reply.BasicAuthBlocked, reason: `"no-basic" (the account's own)`,
			setup: func(f *fixture) {
				f.authPolicy("no-basic", false)
				f.updateAccount(func(a *directory.Account) { a.AuthPolicy = "no-basic" })
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "tenant default blocks", want: reply.BasicAuthBlocked, reason: `"no-basic" (the tenant default)`,
			setup: func(f *fixture) {
				f.authPolicy("no-basic", false)
				f.settings(func(s *directory.Settings) { s.DefaultAuthPolicy = "no-basic" })
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "tenant default blocks a mailbox", want: reply.BasicAuthBlocked, reason: `"no-basic" (the tenant default)`,
			setup: func(f *fixture) {
				f.authPolicy("no-basic", false)
				f.settings(func(s *directory.Settings) { s.DefaultAuthPolicy = "no-basic" })
			},
			attempt: func(f *fixture) Attempt { return f.basic(client, "alice@acme.example", alicePW) }},
		{name: "own policy overrides the tenant default",
			setup: func(f *fixture) {
				f.authPolicy("no-basic", false)
				f.authPolicy("basic-ok", true)
				f.settings(func(s *directory.Settings) { s.DefaultAuthPolicy = "no-basic" })
				f.updateAccount(func(a *directory.Account) { a.AuthPolicy = "basic-ok" })
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "blocking policy leaves OAuth alone",
			setup: func(f *fixture) {
				f.authPolicy("no-basic", false)
				f.updateAccount(func(a *directory.Account) { a.AuthPolicy = "no-basic" })
			},
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "good") }},
		{name: "sunset passed", want: reply.BasicAuthRetired, message: "retired on 2026-11-01",
			setup: func(f *fixture) {
				f.settings(func(s *directory.Settings) { s.HVEBasicAuth.SunsetAt = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) })
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "sunset to come",
			setup: func(f *fixture) {
				f.settings(func(s *directory.Settings) { s.HVEBasicAuth.SunsetAt = t0.Add(time.Hour) })
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "sunset of the other endpoint",
			setup: func(f *fixture) {
				f.settings(func(s *directory.Settings) { s.ClientBasicAuth.SunsetAt = t0.Add(-time.Hour) })
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "client endpoint sunset", want: reply.BasicAuthRetired,
			setup:   func(f *fixture) { f.settings(func(s *directory.Settings) { s.ClientBasicAuth.SunsetAt = t0 }) },
			attempt: func(f *fixture) Attempt { return f.basic(client, "alice@acme.example", alicePW) }},
		{name: "sunset leaves OAuth alone",
			setup: func(f *fixture) {
				f.settings(func(s *directory.Settings) { s.HVEBasicAuth.SunsetAt = t0.Add(-time.Hour) })
			},
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "good") }},
		{name: "ramp half way, unlucky draw", want: reply.BasicAuthPhasingOut, message: "(50% of sign-ins refused now, all from 2026-11-28)",
			setup: func(f *fixture) {
				f.rand = 0.49
				f.settings(func(s *directory.Settings) {
					s.HVEBasicAuth.RampStart, s.HVEBasicAuth.RampEnd = t0.Add(-5*24*time.Hour), t0.Add(5*24*time.Hour)
				})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "ramp half way, lucky draw",
			setup: func(f *fixture) {
				f.rand = 0.5
				f.settings(func(s *directory.Settings) {
					s.HVEBasicAuth.RampStart, s.HVEBasicAuth.RampEnd = t0.Add(-5*24*time.Hour), t0.Add(5*24*time.Hour)
				})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "ramp ended", want: reply.BasicAuthPhasingOut, message: "(100% of sign-ins refused now",
			setup: func(f *fixture) {
				f.rand = 0.999
				f.settings(func(s *directory.Settings) {
					s.HVEBasicAuth.RampStart, s.HVEBasicAuth.RampEnd = t0.Add(-10*24*time.Hour), t0
				})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "ramp not begun",
			setup: func(f *fixture) {
				f.rand = 0
				f.settings(func(s *directory.Settings) {
					s.HVEBasicAuth.RampStart, s.HVEBasicAuth.RampEnd = t0.Add(time.Hour), t0.Add(48*time.Hour)
				})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		// 7. OAuth
		{name: "token without Mail.Send", want: reply.TokenNoPermission,
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "no-send") }},
		{name: "app not allowed", want: reply.AppNotAllowed, reason: otherID,
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "other-app") }},
		{name: "allowed app in another case",
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "good-upper") }},
		{name: "mailbox OAuth on the client endpoint has no allowed list",
			attempt: func(f *fixture) Attempt { return f.oauth(client, "alice@acme.example", "other-app") }},
		{name: "mailbox OAuth on the HVE endpoint", want: reply.MailboxOnHVEEndpoint,
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "alice@acme.example", "good") }},
		// 8. networks
		{name: "outside the allowed networks", want: reply.NetworkNotAllowed, reason: "192.0.2.10",
			setup: func(f *fixture) {
				f.updateAccount(func(a *directory.Account) { a.AllowedNetworks = []string{"10.0.0.0/8", "2001:db8::/32"} })
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "inside the allowed networks",
			setup: func(f *fixture) {
				f.updateAccount(func(a *directory.Account) { a.AllowedNetworks = []string{"10.0.0.0/8", "192.0.2.0/24"} })
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "mapped address inside an IPv4 network",
			setup: func(f *fixture) {
				f.updateAccount(func(a *directory.Account) { a.AllowedNetworks = []string{"192.0.2.0/24"} })
			},
			attempt: func(f *fixture) Attempt {
				a := f.basic(hve, "app@acme.example", appPW)
				a.ClientIP = netip.MustParseAddr("::ffff:192.0.2.10")
				return a
			}},
		{name: "IPv6 inside the allowed networks",
			setup: func(f *fixture) {
				f.updateAccount(func(a *directory.Account) { a.AllowedNetworks = []string{"2001:db8::/32"} })
			},
			attempt: func(f *fixture) Attempt {
				a := f.oauth(hve, "app@acme.example", "good")
				a.ClientIP = netip.MustParseAddr("2001:db8::5")
				return a
			}},
		// 9. Conditional Access
		{name: "CA policy on blocks", want: reply.ConditionalAccessBlocked, reason: `"Block apps"`,
			setup: func(f *fixture) {
				f.caPolicy(directory.CAPolicy{Name: "Block apps", State: directory.CAOn, IncludeUsers: []string{"all"}})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "CA require-mfa blocks OAuth", want: reply.ConditionalAccessBlocked, reason: `"MFA"`,
			setup: func(f *fixture) {
				f.caPolicy(directory.CAPolicy{Name: "MFA", State: directory.CAOn, Grant: directory.GrantRequireMFA, IncludeUsers: []string{"app@acme.example"}})
			},
			attempt: func(f *fixture) Attempt { return f.oauth(hve, "app@acme.example", "good") }},
		{name: "CA policies both named", want: reply.ConditionalAccessBlocked, reason: `policies "A", "B"`,
			setup: func(f *fixture) {
				f.caPolicy(directory.CAPolicy{Name: "A", State: directory.CAOn, IncludeUsers: []string{"all"}})
				f.caPolicy(directory.CAPolicy{Name: "B", State: directory.CAOn, Grant: directory.GrantRequireCompliantDevice, IncludeUsers: []string{"all"}})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "CA policy excludes the user",
			setup: func(f *fixture) {
				f.caPolicy(directory.CAPolicy{Name: "Block", State: directory.CAOn, IncludeUsers: []string{"all"}, ExcludeUsers: []string{"app@acme.example"}})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "CA policy excludes the network",
			setup: func(f *fixture) {
				f.caPolicy(directory.CAPolicy{Name: "Block", State: directory.CAOn, IncludeUsers: []string{"all"}, ExcludeNetworks: []string{"192.0.2.0/24"}})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "CA policy for modern clients leaves basic alone",
			setup: func(f *fixture) {
				f.caPolicy(directory.CAPolicy{Name: "Block", State: directory.CAOn, IncludeUsers: []string{"all"}, ClientApps: []directory.ClientApp{directory.Modern}})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
		{name: "CA policy off",
			setup: func(f *fixture) {
				f.caPolicy(directory.CAPolicy{Name: "Block", State: directory.CAOff, IncludeUsers: []string{"all"}})
			},
			attempt: func(f *fixture) Attempt { return f.basic(hve, "app@acme.example", appPW) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Config{})
			if tt.setup != nil {
				tt.setup(f)
			}
			a := tt.attempt(f)
			res := f.check(a)
			if !isReply(res.Reply, tt.want) {
				t.Fatalf("reply %s (%v), want %s; reason %q; steps:%s", replyName(res.Reply), res.Reply, tt.want.Name, res.Reason, stepsString(res.Steps))
			}
			if !strings.Contains(res.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", res.Reason, tt.reason)
			}
			events := f.rec.take()
			if tt.want == nil {
				checkSuccess(t, f, a, res)
				for _, e := range events {
					if e.Event != trace.EventSignInReportOnly {
						t.Errorf("unexpected trace event %+v", e)
					}
				}
				return
			}
			if !strings.Contains(res.Reply.Message, tt.message) {
				t.Errorf("reply %q does not contain %q", res.Reply.Message, tt.message)
			}
			if res.Identity != nil {
				t.Errorf("a refused sign-in has an identity: %+v", res.Identity)
			}
			if tt.want == reply.ConditionalAccessBlocked && strings.Contains(res.Reply.Message, "Block") {
				t.Errorf("the reply names the policy: %q", res.Reply.Message)
			}
			failed := false
			for _, s := range res.Steps {
				failed = failed || s.Verdict == Fail
			}
			if !failed {
				t.Errorf("no failed step:%s", stepsString(res.Steps))
			}
			if len(events) != 1 {
				t.Fatalf("trace events %+v, want one SignInRefused", events)
			}
			e := events[0]
			wantDetail := reply.Line(res.Reply) + "; " + res.Reason
			if e.Event != trace.EventSignInRefused || e.Status != trace.StatusRejected || e.Detail != wantDetail ||
				e.ClientIP != a.ClientIP.Unmap().String() || e.Time != t0 || e.Sender != usernameKey(a.Username) {
				t.Errorf("trace event %+v; want detail %q", e, wantDetail)
			}
			if e.TenantID != f.tenant.ID && !strings.Contains(res.Reason, "no HVE account") && !strings.Contains(res.Reason, "not an address") {
				t.Errorf("trace event of tenant %d, want %d", e.TenantID, f.tenant.ID)
			}
			if strings.Contains(e.Detail, a.Password) && a.Password != "" || a.Token != "" && strings.Contains(e.Detail, a.Token) && len(a.Token) > 8 {
				t.Errorf("the trace holds the secret: %q", e.Detail)
			}
		})
	}
}

func checkSuccess(t *testing.T, f *fixture, a Attempt, res Result) {
	t.Helper()
	id := res.Identity
	if id == nil {
		t.Fatal("no identity")
	}
	if id.Tenant.ID != f.tenant.ID || !id.SignedInAt.Equal(t0) {
		t.Errorf("identity %+v", id)
	}
	addr := usernameKey(a.Username)
	if addr == "al@acme.example" {
		addr = "alice@acme.example"
	}
	if id.Address() != addr {
		t.Errorf("identity address %q, want %q", id.Address(), addr)
	}
	switch id.Kind {
	case directory.KindAccount:
		if id.Account == nil || id.Mailbox != nil {
			t.Errorf("account identity %+v", id)
		}
	case directory.KindMailbox:
		if id.Mailbox == nil || id.Account != nil {
			t.Errorf("mailbox identity %+v", id)
		}
	default:
		t.Errorf("identity kind %q", id.Kind)
	}
	if a.Method == OAuth && !strings.EqualFold(id.App, appID) && !strings.EqualFold(id.App, otherID) {
		t.Errorf("OAuth identity without app: %+v", id)
	}
	for _, s := range res.Steps {
		if s.Verdict == Fail {
			t.Errorf("a successful sign-in has a failed step: %+v", s)
		}
	}
}

func TestCheckReportOnly(t *testing.T) {
	f := newFixture(t, Config{})
	// Every tenant starts with the report-only "Block legacy authentication".
	res := f.check(f.basic(directory.EndpointHVE, "app@acme.example", appPW))
	if !res.OK() {
		t.Fatalf("refused: %v %s", res.Reply, res.Reason)
	}
	var step *Step
	for i, s := range res.Steps {
		if strings.Contains(s.Check, directory.BuiltInBlockLegacy) {
			step = &res.Steps[i]
		}
	}
	if step == nil || step.Verdict != ReportOnly {
		t.Fatalf("no report-only step:%s", stepsString(res.Steps))
	}
	events := f.rec.take()
	want := `Conditional Access policy "Block legacy authentication" would have blocked this sign-in (report-only)`
	if len(events) != 1 || events[0].Event != trace.EventSignInReportOnly || events[0].Detail != want ||
		events[0].TenantID != f.tenant.ID || events[0].Sender != "app@acme.example" || events[0].ClientIP != "192.0.2.10" {
		t.Fatalf("events %+v", events)
	}
	// OAuth is a modern client: the built-in policy does not apply.
	if res := f.check(f.oauth(directory.EndpointHVE, "app@acme.example", "good")); !res.OK() {
		t.Fatalf("OAuth refused: %v", res.Reply)
	}
	if ev := f.rec.take(); len(ev) != 0 {
		t.Fatalf("events for OAuth: %+v", ev)
	}
	// A blocked sign-in records only its refusal.
	f.caPolicy(directory.CAPolicy{Name: "Block", State: directory.CAOn, IncludeUsers: []string{"all"}})
	if res := f.check(f.basic(directory.EndpointHVE, "app@acme.example", appPW)); isReply(res.Reply, nil) {
		t.Fatal("not blocked")
	}
	if ev := f.rec.take(); len(ev) != 1 || ev[0].Event != trace.EventSignInRefused || !strings.Contains(ev[0].Detail, `policy "Block"`) {
		t.Fatalf("events %+v", ev)
	}
}

func TestCheckChangesApplyAtOnce(t *testing.T) {
	f := newFixture(t, Config{})
	hve := directory.EndpointHVE
	basic := f.basic(hve, "app@acme.example", appPW)
	oauth := f.oauth(hve, "app@acme.example", "good")
	expect := func(what string, a Attempt, want *reply.Reply) {
		t.Helper()
		if res := f.check(a); !isReply(res.Reply, want) {
			t.Fatalf("%s: reply %s, want %v; steps:%s", what, replyName(res.Reply), want, stepsString(res.Steps))
		}
	}
	expect("start", basic, nil)

	// Group membership.
	if _, err := f.st.CreateSecurityGroup(f.ctx, directory.SecurityGroup{TenantID: f.tenant.ID, Name: "blocked"}); err != nil {
		t.Fatal(err)
	}
	f.caPolicy(directory.CAPolicy{Name: "Block group", State: directory.CAOn, IncludeGroups: []string{"blocked"}})
	expect("policy for an empty group", basic, nil)
	if err := f.st.AddSecurityGroupMember(f.ctx, f.tenant.ID, "blocked", "app@acme.example"); err != nil {
		t.Fatal(err)
	}
	expect("added to the group", basic, reply.ConditionalAccessBlocked)
	if err := f.st.RemoveSecurityGroupMember(f.ctx, f.tenant.ID, "blocked", "app@acme.example"); err != nil {
		t.Fatal(err)
	}
	expect("removed from the group", basic, nil)

	// Policy state.
	p, err := f.st.CAPolicyByName(f.ctx, f.tenant.ID, directory.BuiltInBlockLegacy)
	if err != nil {
		t.Fatal(err)
	}
	p.State = directory.CAOn
	if _, err := f.st.UpdateCAPolicy(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	expect("built-in policy on", basic, reply.ConditionalAccessBlocked)
	expect("built-in policy on, OAuth", oauth, nil)
	p.State = directory.CAReportOnly
	if _, err := f.st.UpdateCAPolicy(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	expect("built-in policy report-only", basic, nil)

	// Authentication policy.
	f.authPolicy("no-basic", false)
	f.updateAccount(func(a *directory.Account) { a.AuthPolicy = "no-basic" })
	expect("blocking policy assigned", basic, reply.BasicAuthBlocked)
	ap, err := f.st.AuthPolicyByName(f.ctx, f.tenant.ID, "no-basic")
	if err != nil {
		t.Fatal(err)
	}
	ap.AllowBasicAuthSMTP = true
	if _, err := f.st.UpdateAuthPolicy(f.ctx, ap); err != nil {
		t.Fatal(err)
	}
	expect("policy changed to allow", basic, nil)

	// Allowed apps.
	expect("allowed app", oauth, nil)
	f.updateAccount(func(a *directory.Account) { a.AllowedApps = []string{otherID} })
	expect("app removed from the list", oauth, reply.AppNotAllowed)
	f.updateAccount(func(a *directory.Account) { a.AllowedApps = []string{otherID, appID} })
	expect("app added back", oauth, nil)

	// Conversion to a mailbox.
	if _, err := f.st.ConvertAccountToMailbox(f.ctx, f.tenant.ID, f.app.ID); err != nil {
		t.Fatal(err)
	}
	expect("converted", basic, reply.ConvertedToMailbox)
}

func TestCheckCredentialCache(t *testing.T) {
	f := newFixture(t, Config{})
	a := f.basic(directory.EndpointHVE, "app@acme.example", appPW)
	passwordStep := func(res Result) string {
		for _, s := range res.Steps {
			if s.Check == checkPassword {
				return s.Detail
			}
		}
		return "(none)"
	}
	if res := f.check(a); !res.OK() || passwordStep(res) != "verified" {
		t.Fatalf("first sign-in: %v, password step %q", res.Reply, passwordStep(res))
	}
	if res := f.check(a); !res.OK() || passwordStep(res) != "verified (cached)" {
		t.Fatalf("second sign-in: %v, password step %q", res.Reply, passwordStep(res))
	}
	// A wrong password never hits.
	wrong := a
	wrong.Password = appPW + "x"
	if res := f.check(wrong); isReply(res.Reply, nil) {
		t.Fatal("a wrong password signed in")
	}
	// Revocation (a new tokens-valid-from) misses.
	f.updateAccount(func(acc *directory.Account) { acc.TokensValidFrom = t0 })
	if res := f.check(a); !res.OK() || passwordStep(res) != "verified" {
		t.Fatalf("after revocation: %v, password step %q", res.Reply, passwordStep(res))
	}
	// A password change misses, and the old password no longer works.
	f.updateAccount(func(acc *directory.Account) { acc.PasswordHash = hashes()["new-password"] })
	if res := f.check(a); !isReply(res.Reply, reply.AuthFailed) {
		t.Fatalf("the old password works after a change: %v, password step %q", res.Reply, passwordStep(res))
	}
	a.Password = "new-password"
	if res := f.check(a); !res.OK() || passwordStep(res) != "verified" {
		t.Fatalf("new password: %v, password step %q", res.Reply, passwordStep(res))
	}
	// Entries expire.
	f.clock.Advance(DefaultCacheTTL)
	if res := f.check(a); !res.OK() || passwordStep(res) != "verified" {
		t.Fatalf("after the TTL: %v, password step %q", res.Reply, passwordStep(res))
	}

	// Disabled.
	g := newFixture(t, Config{CacheTTL: -1})
	g.check(a)
	if res := g.check(g.basic(directory.EndpointHVE, "app@acme.example", appPW)); !res.OK() || passwordStep(res) != "verified" {
		t.Fatalf("disabled cache: %v, password step %q", res.Reply, passwordStep(res))
	}
}

func TestCheckSmartLockout(t *testing.T) {
	f := newFixture(t, Config{})
	hve := directory.EndpointHVE
	good := f.basic(hve, "app@acme.example", appPW)
	if res := f.check(good); !res.OK() {
		t.Fatalf("first sign-in: %v", res.Reply)
	}
	// An attacker from another address guesses ten times.
	for i := range 10 {
		a := f.basic(hve, "app@acme.example", fmt.Sprintf("guess-%d", i))
		a.ClientIP = otherIP
		if res := f.check(a); !isReply(res.Reply, reply.AuthFailed) {
			t.Fatalf("guess %d: %v", i, res.Reply)
		}
	}
	f.rec.take()
	// Now even the right password from the attacker's address is refused,
	// before any hashing: the lockout is the only step.
	a := good
	a.ClientIP = otherIP
	res := f.check(a)
	if !isReply(res.Reply, reply.AuthFailed) || !strings.Contains(res.Reason, "smart lockout") || len(res.Steps) != 1 || res.Steps[0].Check != checkLockout {
		t.Fatalf("locked sign-in: %v %q; steps:%s", res.Reply, res.Reason, stepsString(res.Steps))
	}
	if ev := f.rec.take(); len(ev) != 1 || !strings.Contains(ev[0].Detail, "smart lockout") {
		t.Fatalf("events %+v", ev)
	}
	// The app's own address still signs in.
	if res := f.check(good); !res.OK() {
		t.Fatalf("the familiar source is locked out: %v %q", res.Reply, res.Reason)
	}
	// Unknown usernames lock the same way, so a lockout tells nothing.
	for i := range 10 {
		a := f.basic(hve, "nobody@acme.example", fmt.Sprintf("guess-%d", i))
		a.ClientIP = netip.MustParseAddr("203.0.113.1")
		f.check(a)
	}
	a = f.basic(hve, "nobody@acme.example", "x")
	a.ClientIP = netip.MustParseAddr("203.0.113.2")
	if res := f.check(a); !strings.Contains(res.Reason, "smart lockout") {
		t.Fatalf("an unknown username is not locked: %q", res.Reason)
	}
	// A diagnose reports the lockout without counting.
	d := f.check(Attempt{Endpoint: hve, Method: Basic, Username: "app@acme.example", ClientIP: otherIP, Diagnose: true})
	if len(d.Steps) == 0 || d.Steps[0].Verdict != Fail || d.Steps[0].Fix == "" {
		t.Fatalf("diagnose steps:%s", stepsString(d.Steps))
	}
	f.clock.Advance(time.Minute)
	if res := f.check(good); !res.OK() {
		t.Fatalf("after the lockout: %v", res.Reply)
	}
	a = good
	a.ClientIP = otherIP
	if res := f.check(a); !res.OK() {
		t.Fatalf("the lockout did not lift after a minute: %v %q", res.Reply, res.Reason)
	}
}

func TestCheckDiagnose(t *testing.T) {
	f := newFixture(t, Config{})
	f.updateAccount(func(a *directory.Account) {
		a.Enabled = false
		a.AllowedNetworks = []string{"10.0.0.0/8"}
	})
	f.settings(func(s *directory.Settings) { s.SecurityDefaults = true })
	f.caPolicy(directory.CAPolicy{Name: "Block all", State: directory.CAOn, IncludeUsers: []string{"all"}})
	res := f.check(Attempt{Endpoint: directory.EndpointHVE, Method: Basic, Username: "app@acme.example", ClientIP: appIP, Diagnose: true})
	if !isReply(res.Reply, reply.AccountLocked) {
		t.Fatalf("reply %s, want the first failure (account locked); steps:%s", replyName(res.Reply), stepsString(res.Steps))
	}
	if res.Identity == nil || res.Identity.Address() != "app@acme.example" {
		t.Errorf("identity %+v", res.Identity)
	}
	want := map[string]struct {
		verdict Verdict
		fix     string
	}{
		checkLockout:                     {Pass, ""},
		checkIdentity:                    {Pass, ""},
		checkPassword:                    {Skipped, ""},
		checkEndpoint:                    {Pass, ""},
		checkEnabled:                     {Fail, "hve account set app@acme.example --enabled true"},
		checkSecurityDefaults:            {Fail, "hve tenant set --security-defaults off"},
		checkClientAuth:                  {Skipped, ""},
		checkAuthPolicy:                  {Pass, ""},
		checkRetirement:                  {Pass, ""},
		checkMailSend:                    {Skipped, ""},
		checkAllowedApps:                 {Skipped, ""},
		checkNetworks:                    {Fail, "hve account set app@acme.example --allowed-networks 10.0.0.0/8,192.0.2.10/32"},
		`Conditional Access "Block all"`: {Fail, "hve ca-policy set 'Block all' --exclude-users app@acme.example"},
		`Conditional Access "` + directory.BuiltInBlockLegacy + `"`: {ReportOnly, ""},
	}
	seen := map[string]bool{}
	for _, s := range res.Steps {
		w, ok := want[s.Check]
		if !ok {
			t.Errorf("unexpected step %+v", s)
			continue
		}
		seen[s.Check] = true
		if s.Verdict != w.verdict || !strings.Contains(s.Fix, w.fix) {
			t.Errorf("step %q: %s, fix %q; want %s, fix containing %q", s.Check, s.Verdict, s.Fix, w.verdict, w.fix)
		}
		if s.Verdict == Fail && s.Fix == "" {
			t.Errorf("failed step %q has no fix", s.Check)
		}
		if s.Check == checkPassword && s.Detail != notVerified {
			t.Errorf("password step %q", s.Detail)
		}
	}
	for c := range want {
		if !seen[c] {
			t.Errorf("no step %q:%s", c, stepsString(res.Steps))
		}
	}
	if ev := f.rec.take(); len(ev) != 0 {
		t.Errorf("a diagnose recorded trace events: %+v", ev)
	}
}

func TestCheckDiagnoseOAuth(t *testing.T) {
	f := newFixture(t, Config{})
	diag := func(user, app string, ep directory.Endpoint) Result {
		return f.check(Attempt{Endpoint: ep, Method: OAuth, Username: user, App: app, Diagnose: true})
	}
	step := func(res Result, check string) Step {
		for _, s := range res.Steps {
			if s.Check == check {
				return s
			}
		}
		t.Fatalf("no step %q:%s", check, stepsString(res.Steps))
		return Step{}
	}
	res := diag("app@acme.example", "mailer", directory.EndpointHVE)
	if !res.OK() || res.Identity.App != appID || step(res, checkToken).Verdict != Skipped || !strings.HasPrefix(step(res, checkToken).Detail, notVerified) {
		t.Fatalf("diagnose with an allowed app: %v; steps:%s", res.Reply, stepsString(res.Steps))
	}
	if s := step(res, checkNetworks); s.Verdict != Pass {
		t.Errorf("networks step %+v", s)
	}
	res = diag("app@acme.example", "reader", directory.EndpointHVE)
	if !isReply(res.Reply, reply.TokenNoPermission) {
		t.Fatalf("reply %s; steps:%s", replyName(res.Reply), stepsString(res.Steps))
	}
	if s := step(res, checkMailSend); s.Fix != "hve app grant "+otherID+" Mail.Send" {
		t.Errorf("Mail.Send step %+v", s)
	}
	if s := step(res, checkAllowedApps); s.Verdict != Fail || s.Fix != "hve account allow-app app@acme.example "+otherID {
		t.Errorf("allowed apps step %+v", s)
	}
	res = diag("app@acme.example", "unknown-app", directory.EndpointHVE)
	if s := step(res, checkMailSend); s.Verdict != Skipped || !isReply(res.Reply, reply.AppNotAllowed) {
		t.Errorf("unknown app: %s; steps:%s", replyName(res.Reply), stepsString(res.Steps))
	}
	res = diag("app@acme.example", "", directory.EndpointHVE)
	if !res.OK() || step(res, checkAllowedApps).Verdict != Skipped {
		t.Errorf("no app: %s; steps:%s", replyName(res.Reply), stepsString(res.Steps))
	}
	// Without an app and with an empty allowed list, no token can sign in.
	f.updateAccount(func(a *directory.Account) { a.AllowedApps = nil })
	res = diag("app@acme.example", "", directory.EndpointHVE)
	if s := step(res, checkAllowedApps); s.Verdict != Fail || !isReply(res.Reply, reply.AppNotAllowed) || s.Fix != "hve account allow-app app@acme.example APP" {
		t.Errorf("no app, empty allowed list: %s, step %+v", replyName(res.Reply), s)
	}
	f.updateAccount(func(a *directory.Account) { a.AllowedApps = []string{appID} })
	// Revocation shows in the token step.
	f.updateAccount(func(a *directory.Account) { a.TokensValidFrom = t0 })
	res = diag("app@acme.example", appID, directory.EndpointHVE)
	if s := step(res, checkToken); !strings.Contains(s.Detail, "tokens issued before 2026-11-23T10:00:00Z are refused") {
		t.Errorf("token step %+v", s)
	}
	// Unknown identity: the walk stops.
	res = diag("nobody@acme.example", appID, directory.EndpointHVE)
	if !isReply(res.Reply, reply.AuthFailed) || len(res.Steps) != 2 || res.Identity != nil {
		t.Errorf("unknown identity: %s; steps:%s", replyName(res.Reply), stepsString(res.Steps))
	}
}

func TestCheckDiagnoseBasicRetirementAndPolicy(t *testing.T) {
	f := newFixture(t, Config{})
	f.authPolicy("no-basic", false)
	f.settings(func(s *directory.Settings) {
		s.DefaultAuthPolicy = "no-basic"
		s.ClientSMTPAuthDisabled = true
		s.ClientBasicAuth.RampStart, s.ClientBasicAuth.RampEnd = t0.Add(-time.Hour), t0.Add(99*time.Hour)
	})
	f.rand = 0.999 // a diagnose makes no draw
	res := f.check(Attempt{Endpoint: directory.EndpointClient, Method: Basic, Username: "nopw@acme.example", Diagnose: true})
	want := map[string]string{
		checkPassword:   "hve mailbox set nopw@acme.example --password-stdin",
		checkClientAuth: "hve tenant set --client-smtp-auth-disabled off",
		checkAuthPolicy: "hve tenant set --default-auth-policy none",
		checkRetirement: "hve tenant set --client-basic-auth-ramp START..END|none",
	}
	for _, s := range res.Steps {
		if fix, ok := want[s.Check]; ok {
			if s.Verdict != Fail || !strings.Contains(s.Fix, fix) {
				t.Errorf("step %+v; want a failure with fix %q", s, fix)
			}
			delete(want, s.Check)
		}
	}
	if len(want) != 0 {
		t.Errorf("missing failed steps %v:%s", want, stepsString(res.Steps))
	}
	if !isReply(res.Reply, reply.AuthFailed) {
		t.Errorf("reply %s, want the first failure (no password)", replyName(res.Reply))
	}
	for _, s := range res.Steps {
		if s.Check == checkNetworks && s.Verdict != Pass {
			t.Errorf("mailbox network step %+v", s)
		}
	}
	f.settings(func(s *directory.Settings) { s.ClientBasicAuth.SunsetAt = t0.Add(-time.Hour) })
	res = f.check(Attempt{Endpoint: directory.EndpointClient, Method: Basic, Username: "alice@acme.example", Diagnose: true})
	for _, s := range res.Steps {
		if s.Check == checkRetirement && (s.Verdict != Fail || s.Fix != "hve tenant set --client-basic-auth-sunset DATE|none") {
			t.Errorf("retirement step %+v", s)
		}
	}
}

// failingDir fails one method with a store error.
type failingDir struct {
	Directory
	method string
}

var errDisk = errors.New("disk I/O error")

func (d failingDir) AccountByAddress(ctx context.Context, address string) (directory.Account, error) {
	if d.method == "AccountByAddress" {
		return directory.Account{}, errDisk
	}
	return d.Directory.AccountByAddress(ctx, address)
}

func (d failingDir) MailboxByAddress(ctx context.Context, address string) (directory.Mailbox, error) {
	if d.method == "MailboxByAddress" {
		return directory.Mailbox{}, errDisk
	}
	return d.Directory.MailboxByAddress(ctx, address)
}

func (d failingDir) Tenant(ctx context.Context, id int64) (directory.Tenant, error) {
	if d.method == "Tenant" {
		return directory.Tenant{}, errDisk
	}
	return d.Directory.Tenant(ctx, id)
}

func (d failingDir) AuthPolicyByName(ctx context.Context, tenantID int64, name string) (directory.AuthPolicy, error) {
	if d.method == "AuthPolicyByName" {
		return directory.AuthPolicy{}, errDisk
	}
	return d.Directory.AuthPolicyByName(ctx, tenantID, name)
}

func (d failingDir) CAPolicies(ctx context.Context, tenantID int64) ([]directory.CAPolicy, error) {
	if d.method == "CAPolicies" {
		return nil, errDisk
	}
	return d.Directory.CAPolicies(ctx, tenantID)
}

func (d failingDir) SecurityGroupsOf(ctx context.Context, tenantID int64, kind directory.Kind, id int64) ([]string, error) {
	if d.method == "SecurityGroupsOf" {
		return nil, errDisk
	}
	return d.Directory.SecurityGroupsOf(ctx, tenantID, kind, id)
}

func TestCheckStoreErrors(t *testing.T) {
	f := newFixture(t, Config{})
	f.authPolicy("basic-ok", true)
	f.updateAccount(func(a *directory.Account) { a.AuthPolicy = "basic-ok" })
	for _, m := range []string{"AccountByAddress", "MailboxByAddress", "Tenant", "AuthPolicyByName", "CAPolicies", "SecurityGroupsOf"} {
		t.Run(m, func(t *testing.T) {
			c := New(failingDir{f.st, m}, nil, f.rec, Config{Now: f.clock.Now}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			user := "app@acme.example"
			if m == "MailboxByAddress" {
				user = "alice@acme.example"
			}
			res := c.Check(f.ctx, f.basic(directory.EndpointHVE, user, appPW))
			if !isReply(res.Reply, reply.AuthTemporaryFailure) || !strings.Contains(res.Reason, "disk I/O error") {
				t.Fatalf("reply %s, reason %q", replyName(res.Reply), res.Reason)
			}
			if ev := f.rec.take(); len(ev) != 1 || ev[0].Event != trace.EventSignInRefused {
				t.Errorf("events %+v", ev)
			}
		})
	}
}

func TestCheckNoTokenVerifier(t *testing.T) {
	f := newFixture(t, Config{})
	c := New(f.st, nil, nil, Config{Now: f.clock.Now}, nil)
	if res := c.Check(f.ctx, f.oauth(directory.EndpointHVE, "app@acme.example", "good")); !isReply(res.Reply, reply.AuthFailed) {
		t.Fatalf("reply %s", replyName(res.Reply))
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"app@acme.example":            "app@acme.example",
		"Block legacy authentication": "'Block legacy authentication'",
		"it's":                        `'it'\''s'`,
		"":                            "''",
		"$(rm -rf /)":                 "'$(rm -rf /)'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func benchFixture(b *testing.B, ttl time.Duration) (*Checker, Attempt) {
	ctx := b.Context()
	st, err := sqlite.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	tn, err := st.CreateTenant(ctx, "acme")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: tn.ID, Name: "acme.example", Type: directory.Authoritative}); err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, directory.Account{TenantID: tn.ID, Name: "app", Address: "app@acme.example", PasswordHash: hashes()[appPW], Enabled: true}); err != nil {
		b.Fatal(err)
	}
	c := New(st, nil, nil, Config{CacheTTL: ttl}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return c, Attempt{Endpoint: directory.EndpointHVE, Method: Basic, Username: "app@acme.example", Password: appPW, ClientIP: appIP}
}

func BenchmarkCheckBasicCached(b *testing.B) {
	c, a := benchFixture(b, time.Hour)
	ctx := b.Context()
	for b.Loop() {
		if res := c.Check(ctx, a); !res.OK() {
			b.Fatal(res.Reply)
		}
	}
}

func BenchmarkCheckBasicUncached(b *testing.B) {
	c, a := benchFixture(b, -1)
	ctx := b.Context()
	for b.Loop() {
		if res := c.Check(ctx, a); !res.OK() {
			b.Fatal(res.Reply)
		}
	}
}
