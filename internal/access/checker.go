package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/reply"
	"hve/internal/store"
	"hve/internal/trace"
)

// Directory is the part of the store that Check reads; *sqlite.Store
// satisfies it. Check reads it afresh on every call: a change an admin
// makes applies to the very next sign-in.
type Directory interface {
	Tenant(ctx context.Context, id int64) (directory.Tenant, error)
	AccountByAddress(ctx context.Context, address string) (directory.Account, error)
	MailboxByAddress(ctx context.Context, address string) (directory.Mailbox, error)
	AuthPolicyByName(ctx context.Context, tenantID int64, name string) (directory.AuthPolicy, error)
	CAPolicies(ctx context.Context, tenantID int64) ([]directory.CAPolicy, error)
	SecurityGroupsOf(ctx context.Context, tenantID int64, kind directory.Kind, id int64) ([]string, error)
	// App is read by diagnose only, to learn what a token of the app
	// would carry.
	App(ctx context.Context, tenantID int64, ref string) (directory.App, error)
}

// Recorder takes trace events (refused sign-ins, report-only verdicts).
type Recorder interface{ Record(trace.Event) }

// Config tunes a Checker. Zero fields take defaults.
type Config struct {
	// Now is the clock [time.Now].
	Now func() time.Time
	// Rand returns a number in [0, 1) for the staged retirement of basic
	// auth [math/rand/v2.Float64].
	Rand func() float64
	// CacheTTL is how long a verified password is remembered
	// [DefaultCacheTTL]; negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the verified-credential cache [DefaultCacheSize].
	CacheSize int
	// Lockout tunes smart lockout.
	Lockout LockoutConfig
}

// Checker checks sign-ins. It is safe for concurrent use. Its only state
// is in memory and per node: the verified-credential cache and smart
// lockout; directory data is never cached.
type Checker struct {
	dir    Directory
	tokens TokenVerifier
	rec    Recorder
	now    func() time.Time
	rand   func() float64
	cache  *credCache
	lock   *lockout
	log    *slog.Logger
}

// New returns a Checker. tokens may be nil when OAuth is not offered (every
// OAuth sign-in is then refused); rec may be nil (no trace events).
func New(dir Directory, tokens TokenVerifier, rec Recorder, cfg Config, log *slog.Logger) *Checker {
	if log == nil {
		log = slog.Default()
	}
	c := &Checker{dir: dir, tokens: tokens, rec: rec, now: cfg.Now, rand: cfg.Rand, lock: newLockout(cfg.Lockout), log: log}
	if c.now == nil {
		c.now = time.Now
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	cache, err := newCredCache(cfg.CacheTTL, cfg.CacheSize)
	if err != nil {
		// Only speed is lost: every sign-in verifies its password.
		log.Error("verified-credential cache disabled", "err", err)
	}
	c.cache = cache
	return c
}

// Names of the checks, as Step.Check.
const (
	checkLockout          = "smart lockout"
	checkIdentity         = "identity"
	checkPassword         = "password"
	checkToken            = "token"
	checkEndpoint         = "endpoint"
	checkEnabled          = "account enabled"
	checkSecurityDefaults = "security defaults"
	checkClientAuth       = "client SMTP auth"
	checkAuthPolicy       = "authentication policy"
	checkRetirement       = "basic auth retirement"
	checkMailSend         = "Mail.Send permission"
	checkAllowedApps      = "allowed apps"
	checkNetworks         = "allowed networks"
	checkCA               = "Conditional Access"
)

const notVerified = "not verified (diagnose)"

// dummyHash is verified against when there is no password to verify, so
// that an unknown username takes as long as a wrong password: nobody can
// find out which accounts exist by timing sign-ins.
var dummyHash = sync.OnceValue(func() string {
	h, _ := password.Hash("hve-dummy-password-for-constant-time")
	return h
})

// maxUserLen cuts what is kept of a username that is not an address (in
// lockout tables, logs and trace).
const maxUserLen = 320

// run is the state of one Check.
type run struct {
	c   *Checker
	ctx context.Context
	a   Attempt
	now time.Time
	// user is the normalized username, or (when it is not an address) the
	// username as given, cut to maxUserLen: the key of smart lockout and the
	// Sender of trace events.
	user string

	res       Result
	replyName string // of res.Reply, for the log

	// The identity, once found.
	tenant  directory.Tenant
	kind    directory.Kind
	account *directory.Account
	mailbox *directory.Mailbox

	// OAuth: what the token says (or, for a diagnose, what it would).
	appID       string
	mailSend    bool
	mailSendSet bool // mailSend is known

	// verdicts of Conditional Access, for the report-only trace events.
	verdicts []CAVerdict
}

// Check checks one sign-in, or walks the checks for a diagnose
// (Attempt.Diagnose), in the order the package documentation gives. The
// Result's Steps list every check made.
func (c *Checker) Check(ctx context.Context, a Attempt) Result {
	r := &run{c: c, ctx: ctx, a: a, now: c.now()}
	r.user = usernameKey(a.Username)
	r.walk()
	if a.Diagnose {
		return r.res
	}
	if r.res.Reply != nil {
		r.res.Identity = nil
		c.refused(r)
		return r.res
	}
	c.reportOnly(r)
	return r.res
}

// usernameKey is the normalized username, or the username as given (lower
// case, cut) when it is not an address.
func usernameKey(s string) string {
	if addr, err := directory.NormalizeAddress(s); err == nil {
		return addr
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > maxUserLen {
		s = s[:maxUserLen]
	}
	return strings.ToValidUTF8(s, "?")
}

func (r *run) step(check string, v Verdict, detail, fix string) {
	r.res.Steps = append(r.res.Steps, Step{Check: check, Verdict: v, Detail: detail, Fix: fix})
}

func (r *run) pass(check, detail string) { r.step(check, Pass, detail, "") }
func (r *run) skip(check, detail string) { r.step(check, Skipped, detail, "") }

// fail records a failed check; the first failure gives the reply and the
// reason. It reports whether the walk stops: a sign-in stops at its first
// failure, a diagnose goes on.
func (r *run) fail(check, detail, fix string, rp *reply.Reply, e *smtp.SMTPError, reason string) bool {
	r.step(check, Fail, detail, fix)
	if r.res.Reply == nil {
		if e == nil {
			e = rp.Err()
		}
		r.res.Reply, r.res.Reason, r.replyName = e, reason, rp.Name
	}
	return !r.a.Diagnose
}

// temporary records a directory error, which stops even a diagnose.
func (r *run) temporary(check, what string, err error) {
	r.c.log.Error("sign-in: directory read failed", "user", r.user, "check", check, "err", err)
	r.fail(check, fmt.Sprintf("%s: %v", what, err), "Retry; if it persists, read the server log for the store error.",
		reply.AuthTemporaryFailure, nil, fmt.Sprintf("%s: %v", what, err))
}

// counted records a failed credential for smart lockout.
func (r *run) counted() {
	if !r.a.Diagnose {
		r.c.lock.fail(r.user, r.a.ClientIP, r.now)
	}
}

// dummyVerify spends the time of a password verification on nothing.
func (r *run) dummyVerify() {
	if !r.a.Diagnose && r.a.Method == Basic {
		_ = password.Verify(dummyHash(), r.a.Password)
	}
}

// walk makes the checks in order; it returns early where a check stops it.
func (r *run) walk() {
	if !r.checkLockout() {
		return
	}
	if !r.checkIdentity() {
		return
	}
	if !r.checkCredential() {
		return
	}
	checks := []func() bool{
		r.checkEndpoint, r.checkEnabled,
		r.checkSecurityDefaults, r.checkClientAuth, r.checkAuthPolicy, r.checkRetirement,
		r.checkMailSend, r.checkAllowedApps,
		r.checkNetworks, r.checkCA,
	}
	for _, check := range checks {
		if !check() {
			return
		}
	}
}

// Each check below reports whether the walk goes on.

func (r *run) checkLockout() bool {
	ok, why := r.c.lock.check(r.user, r.a.ClientIP, r.now)
	if ok {
		r.pass(checkLockout, why)
		return true
	}
	return !r.fail(checkLockout, why,
		"Wait: smart lockout lifts by itself at the time given. Find and fix whatever signs in with a wrong secret; the trace's SignInRefused events name its source address.",
		reply.AuthFailed, nil, why)
}

func (r *run) checkIdentity() bool {
	addr, err := directory.NormalizeAddress(r.a.Username)
	if err != nil {
		r.dummyVerify()
		r.counted()
		r.fail(checkIdentity, fmt.Sprintf("the username %q is not an address", r.user),
			"Sign in with the HVE account's primary address as the username.",
			reply.AuthFailed, nil, "username is not an address")
		return false
	}
	acc, err := r.c.dir.AccountByAddress(r.ctx, addr)
	switch {
	case err == nil:
		r.kind, r.account = directory.KindAccount, &acc
	case errors.Is(err, store.ErrNotFound):
		mb, err := r.c.dir.MailboxByAddress(r.ctx, addr)
		switch {
		case err == nil:
			r.kind, r.mailbox = directory.KindMailbox, &mb
		case errors.Is(err, store.ErrNotFound):
			r.dummyVerify()
			r.counted()
			r.fail(checkIdentity, fmt.Sprintf("no HVE account or mailbox has the address %s (an HVE account signs in with its primary address, not an alias)", addr),
				"Sign in with the HVE account's primary address as the username (`hve account create` makes one).",
				reply.AuthFailed, nil, "no HVE account or mailbox has this address")
			return false
		default:
			r.temporary(checkIdentity, "looking up the mailbox", err)
			return false
		}
	default:
		r.temporary(checkIdentity, "looking up the account", err)
		return false
	}
	tenantID := r.tenantID()
	t, err := r.c.dir.Tenant(r.ctx, tenantID)
	if err != nil {
		r.temporary(checkIdentity, fmt.Sprintf("reading tenant %d", tenantID), err)
		return false
	}
	r.tenant = t
	r.res.Identity = &Identity{Tenant: t, Kind: r.kind, Account: r.account, Mailbox: r.mailbox, SignedInAt: r.now}
	if r.account != nil {
		r.pass(checkIdentity, fmt.Sprintf("HVE account %s in tenant %s", r.account.Address, t.Name))
	} else {
		detail := fmt.Sprintf("mailbox %s in tenant %s", r.mailbox.Address, t.Name)
		if addr != r.mailbox.Address {
			detail += fmt.Sprintf(" (signed in by its alias %s)", addr)
		}
		r.pass(checkIdentity, detail)
	}
	return true
}

func (r *run) tenantID() int64 {
	if r.account != nil {
		return r.account.TenantID
	}
	if r.mailbox != nil {
		return r.mailbox.TenantID
	}
	return 0
}

func (r *run) identityID() int64 {
	if r.account != nil {
		return r.account.ID
	}
	return r.mailbox.ID
}

func (r *run) address() string {
	if r.account != nil {
		return r.account.Address
	}
	return r.mailbox.Address
}

func (r *run) passwordHash() string {
	if r.account != nil {
		return r.account.PasswordHash
	}
	return r.mailbox.PasswordHash
}

func (r *run) tokensValidFrom() time.Time {
	if r.account != nil {
		return r.account.TokensValidFrom
	}
	return r.mailbox.TokensValidFrom
}

func (r *run) ownAuthPolicy() string {
	if r.account != nil {
		return r.account.AuthPolicy
	}
	return r.mailbox.AuthPolicy
}

// setCmd is the hve command that changes the identity.
func (r *run) setCmd() string {
	if r.account != nil {
		return "hve account set " + shellQuote(r.account.Address)
	}
	return "hve mailbox set " + shellQuote(r.mailbox.Address)
}

func (r *run) checkCredential() bool {
	if r.a.Method == OAuth {
		return r.checkTokenCredential()
	}
	if r.a.Method != Basic {
		r.fail(checkPassword, fmt.Sprintf("unknown sign-in method %q", r.a.Method), "", reply.AuthFailed, nil, fmt.Sprintf("unknown sign-in method %q", r.a.Method))
		return false
	}
	hash := r.passwordHash()
	if hash == "" {
		r.dummyVerify()
		r.counted()
		return !r.fail(checkPassword, "the mailbox has no password, so it cannot sign in with basic auth",
			r.setCmd()+" --password-stdin", reply.AuthFailed, nil, "the mailbox has no password")
	}
	if r.a.Diagnose {
		r.skip(checkPassword, notVerified)
		return true
	}
	kind, id, tvf := r.kind, r.identityID(), r.tokensValidFrom()
	if r.c.cache.hit(kind, id, hash, tvf, r.a.Password, r.now) {
		r.c.lock.succeed(r.user, r.a.ClientIP, r.now)
		r.pass(checkPassword, "verified (cached)")
		return true
	}
	err := r.c.cache.verify(kind, id, hash, tvf, r.a.Password, r.now)
	switch {
	case err == nil:
		r.c.lock.succeed(r.user, r.a.ClientIP, r.now)
		r.pass(checkPassword, "verified")
		return true
	case errors.Is(err, password.ErrMismatch):
		r.counted()
		r.fail(checkPassword, "wrong password", r.setCmd()+" --password-stdin", reply.AuthFailed, nil, "wrong password")
		return false
	default:
		r.c.log.Error("sign-in: stored password hash is unusable", "user", r.user, "err", err)
		r.counted()
		r.fail(checkPassword, fmt.Sprintf("the stored password hash is unusable: %v", err), r.setCmd()+" --password-stdin",
			reply.AuthFailed, nil, fmt.Sprintf("stored password hash is unusable: %v", err))
		return false
	}
}

func (r *run) checkTokenCredential() bool {
	tvf := r.tokensValidFrom()
	revoked := "no tokens-valid-from time is set"
	if !tvf.IsZero() {
		revoked = "tokens issued before " + tvf.UTC().Format(time.RFC3339) + " are refused"
	}
	if r.a.Diagnose {
		r.skip(checkToken, notVerified+"; "+revoked)
		return true
	}
	const newToken = "Fetch a new token (POST /oauth2/token) and sign in again."
	if r.c.tokens == nil {
		r.fail(checkToken, "OAuth is not configured on this server", "", reply.AuthFailed, nil, "OAuth is not configured on this server")
		return false
	}
	claims, err := r.c.tokens.Verify(r.ctx, r.a.Token, r.tenant)
	switch {
	case err == nil:
	case errors.Is(err, ErrTokenExpired):
		// An expired token was validly issued: it is no guess and does not
		// count for smart lockout.
		r.fail(checkToken, err.Error(), newToken, reply.TokenExpired, nil, err.Error())
		return false
	case errors.Is(err, ErrTokenInvalid):
		r.counted()
		r.fail(checkToken, err.Error(), "Fetch the token from this server's token endpoint or an issuer the tenant trusts, for this tenant.",
			reply.AuthFailed, nil, err.Error())
		return false
	default:
		// Neither expired nor invalid: the verifier could not decide (an
		// external issuer's keys could not be fetched, say).
		r.c.log.Error("sign-in: token verification failed", "user", r.user, "err", err)
		r.fail(checkToken, fmt.Sprintf("token verification failed: %v", err), "Retry; if it persists, read the server log.",
			reply.AuthTemporaryFailure, nil, fmt.Sprintf("token verification failed: %v", err))
		return false
	}
	if !tvf.IsZero() && claims.IssuedAt.Before(tvf) {
		why := fmt.Sprintf("token issued at %s, before the identity's tokens-valid-from %s (its tokens were revoked)",
			claims.IssuedAt.UTC().Format(time.RFC3339), tvf.UTC().Format(time.RFC3339))
		r.fail(checkToken, why, newToken, reply.TokenExpired, nil, why)
		return false
	}
	r.appID, r.mailSend, r.mailSendSet = claims.AppID, claims.MailSend, true
	r.res.Identity.App = claims.AppID
	r.c.lock.succeed(r.user, r.a.ClientIP, r.now)
	r.pass(checkToken, fmt.Sprintf("valid token of app %s from %s, expires %s; %s",
		claims.AppID, claims.Issuer, claims.Expires.UTC().Format(time.RFC3339), revoked))
	return true
}

func (r *run) checkEndpoint() bool {
	switch r.a.Endpoint {
	case directory.EndpointHVE:
		if r.account != nil {
			r.pass(checkEndpoint, "HVE account on the HVE endpoint")
			return true
		}
		if r.mailbox.ConvertedFromHVE {
			return !r.fail(checkEndpoint, "the HVE account was converted to a mailbox, which cannot use the HVE endpoint",
				"Create a new HVE account for the application (`hve account create`), or send as the mailbox through the client endpoint (port 588).",
				reply.ConvertedToMailbox, nil, "the HVE account was converted to a mailbox")
		}
		return !r.fail(checkEndpoint, "a mailbox cannot sign in on the HVE endpoint",
			"Create an HVE account for the application (`hve account create`) and sign in with it, or use the client endpoint (port 588).",
			reply.MailboxOnHVEEndpoint, nil, "a mailbox signed in on the HVE endpoint")
	case directory.EndpointClient:
		if r.mailbox != nil {
			r.pass(checkEndpoint, "mailbox on the client endpoint")
			return true
		}
		return !r.fail(checkEndpoint, "an HVE account cannot sign in on the client endpoint",
			"Point the application at the HVE endpoint (port 587).",
			reply.AccountOnClientEndpoint, nil, "an HVE account signed in on the client endpoint")
	}
	r.fail(checkEndpoint, fmt.Sprintf("unknown endpoint %q", r.a.Endpoint), "", reply.AuthFailed, nil, fmt.Sprintf("unknown endpoint %q", r.a.Endpoint))
	return false
}

func (r *run) checkEnabled() bool {
	if r.account == nil {
		r.skip(checkEnabled, "mailboxes have no enabled switch")
		return true
	}
	if r.account.Enabled {
		r.pass(checkEnabled, "the account is enabled")
		return true
	}
	return !r.fail(checkEnabled, "the account is disabled", r.setCmd()+" --enabled true",
		reply.AccountLocked, nil, "the account is disabled")
}

func (r *run) checkSecurityDefaults() bool {
	if r.a.Method != Basic {
		r.skip(checkSecurityDefaults, "applies to basic auth only")
		return true
	}
	if !r.tenant.Settings.SecurityDefaults {
		r.pass(checkSecurityDefaults, "security defaults are off")
		return true
	}
	return !r.fail(checkSecurityDefaults, "security defaults are on: basic auth is refused for the whole tenant",
		"hve tenant set --security-defaults off",
		reply.SecurityDefaults, nil, "security defaults are on")
}

func (r *run) checkClientAuth() bool {
	if r.a.Method != Basic {
		r.skip(checkClientAuth, "applies to basic auth only")
		return true
	}
	if r.a.Endpoint != directory.EndpointClient {
		r.skip(checkClientAuth, "applies to the client endpoint only")
		return true
	}
	if !r.tenant.Settings.ClientSMTPAuthDisabled {
		r.pass(checkClientAuth, "client SMTP auth is enabled for the tenant")
		return true
	}
	return !r.fail(checkClientAuth, "client SMTP auth is disabled for the tenant",
		"hve tenant set --client-smtp-auth-disabled off",
		reply.ClientAuthDisabled, nil, "client SMTP auth is disabled for the tenant")
}

func (r *run) checkAuthPolicy() bool {
	if r.a.Method != Basic {
		r.skip(checkAuthPolicy, "applies to basic auth only")
		return true
	}
	name, from := r.ownAuthPolicy(), fmt.Sprintf("the %s's own", r.kind)
	if name == "" {
		name, from = r.tenant.Settings.DefaultAuthPolicy, "the tenant default"
	}
	if name == "" {
		r.pass(checkAuthPolicy, "no authentication policy (neither the identity's own nor a tenant default): basic auth allowed")
		return true
	}
	// Moving the app to OAuth is the better fix; the commands keep it on
	// basic auth.
	allowFix := fmt.Sprintf("`hve auth-policy create allow-basic-smtp --allow-basic-smtp`, then `%s --auth-policy allow-basic-smtp`", r.setCmd())
	if from == "the tenant default" {
		allowFix += ", or (for every identity without a policy of its own) `hve tenant set --default-auth-policy none`"
	} else {
		allowFix += fmt.Sprintf(", or (to fall back to the tenant default) `%s --auth-policy none`", r.setCmd())
	}
	p, err := r.c.dir.AuthPolicyByName(r.ctx, r.tenant.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		// The store keeps assigned policies from being removed; should one
		// be missing anyway, basic auth stays closed rather than open.
		why := fmt.Sprintf("authentication policy %q (%s) does not exist; basic auth is blocked", name, from)
		return !r.fail(checkAuthPolicy, why, allowFix, reply.BasicAuthBlocked, nil, why)
	}
	if err != nil {
		r.temporary(checkAuthPolicy, fmt.Sprintf("reading authentication policy %q", name), err)
		return false
	}
	if p.AllowBasicAuthSMTP {
		r.pass(checkAuthPolicy, fmt.Sprintf("authentication policy %q (%s) allows basic SMTP", name, from))
		return true
	}
	why := fmt.Sprintf("authentication policy %q (%s) does not allow basic SMTP", name, from)
	return !r.fail(checkAuthPolicy, why, allowFix, reply.BasicAuthBlocked, nil, why)
}

func (r *run) checkRetirement() bool {
	if r.a.Method != Basic {
		r.skip(checkRetirement, "applies to basic auth only")
		return true
	}
	ret, flag, endpoint := r.tenant.Settings.HVEBasicAuth, "hve", "HVE"
	if r.a.Endpoint == directory.EndpointClient {
		ret, flag, endpoint = r.tenant.Settings.ClientBasicAuth, "client", "client"
	}
	const date = "2006-01-02"
	if !ret.SunsetAt.IsZero() && !r.now.Before(ret.SunsetAt) {
		day := ret.SunsetAt.UTC().Format(date)
		why := fmt.Sprintf("basic auth on the %s endpoint was retired on %s", endpoint, day)
		return !r.fail(checkRetirement, why,
			fmt.Sprintf("hve tenant set --%s-basic-auth-sunset DATE|none", flag),
			reply.BasicAuthRetired, reply.BasicAuthRetired.Format(day), why)
	}
	rampSet := !ret.RampStart.IsZero() && !ret.RampEnd.IsZero() && ret.RampStart.Before(ret.RampEnd)
	if !rampSet || r.now.Before(ret.RampStart) {
		var plans []string
		if !ret.SunsetAt.IsZero() {
			plans = append(plans, "sunset on "+ret.SunsetAt.UTC().Format(date))
		}
		if rampSet {
			plans = append(plans, fmt.Sprintf("staged rejection from %s to %s", ret.RampStart.UTC().Format(date), ret.RampEnd.UTC().Format(date)))
		}
		if len(plans) == 0 {
			r.pass(checkRetirement, fmt.Sprintf("basic auth on the %s endpoint is not being retired", endpoint))
		} else {
			r.pass(checkRetirement, fmt.Sprintf("basic auth on the %s endpoint is allowed for now (%s)", endpoint, strings.Join(plans, ", ")))
		}
		return true
	}
	share := 1.0
	if r.now.Before(ret.RampEnd) {
		share = float64(r.now.Sub(ret.RampStart)) / float64(ret.RampEnd.Sub(ret.RampStart))
	}
	pct := int(math.Ceil(share * 100))
	pct = max(1, min(pct, 100))
	end := ret.RampEnd.UTC().Format(date)
	why := fmt.Sprintf("basic auth on the %s endpoint is being retired: %d%% of sign-ins refused now, all from %s", endpoint, pct, end)
	fix := fmt.Sprintf("hve tenant set --%s-basic-auth-ramp START..END|none", flag)
	// A diagnose has no draw to make: that sign-ins are being refused at
	// all is what the admin needs to know.
	if r.a.Diagnose || share >= 1 || r.c.rand() < share {
		return !r.fail(checkRetirement, why, fix, reply.BasicAuthPhasingOut, reply.BasicAuthPhasingOut.Format(pct, end), why)
	}
	r.pass(checkRetirement, why+"; this one was let through")
	return true
}

func (r *run) checkMailSend() bool {
	if r.a.Method != OAuth {
		r.skip(checkMailSend, "applies to OAuth only")
		return true
	}
	if r.a.Diagnose {
		if !r.diagnoseApp() {
			return false
		}
		if !r.mailSendSet {
			return true // diagnoseApp said why
		}
	}
	if r.mailSend {
		r.pass(checkMailSend, fmt.Sprintf("app %s has Mail.Send", r.appID))
		return true
	}
	return !r.fail(checkMailSend, fmt.Sprintf("the token of app %s does not carry Mail.Send", r.appID),
		fmt.Sprintf("hve app grant %s Mail.Send", shellQuote(r.appID)),
		reply.TokenNoPermission, nil, fmt.Sprintf("the token of app %s does not carry Mail.Send", r.appID))
}

// diagnoseApp learns, for a diagnose, what a token of Attempt.App would
// carry, from its app registration. It reports whether the walk goes on.
func (r *run) diagnoseApp() bool {
	if r.a.App == "" {
		r.skip(checkMailSend, "no app given to diagnose with")
		return true
	}
	app, err := r.c.dir.App(r.ctx, r.tenant.ID, r.a.App)
	if errors.Is(err, store.ErrNotFound) {
		// A token of an external issuer may come from an app hve does not
		// know; its Mail.Send is the issuer's role claim.
		r.appID = r.a.App
		r.skip(checkMailSend, fmt.Sprintf("no app registration %q in tenant %s; a token from an external issuer carries Mail.Send through the role configured for the issuer", r.a.App, r.tenant.Name))
		return true
	}
	if errors.Is(err, store.ErrInvalid) {
		// An ambiguous name: the error says to give the app id.
		r.appID = r.a.App
		r.skip(checkMailSend, err.Error())
		return true
	}
	if err != nil {
		r.temporary(checkMailSend, fmt.Sprintf("reading app %q", r.a.App), err)
		return false
	}
	r.appID, r.mailSend, r.mailSendSet = app.AppID, app.Has(directory.MailSend), true
	r.res.Identity.App = app.AppID
	return true
}

func (r *run) checkAllowedApps() bool {
	if r.a.Method != OAuth {
		r.skip(checkAllowedApps, "applies to OAuth only")
		return true
	}
	if r.account == nil {
		r.skip(checkAllowedApps, "mailboxes have no allowed apps list")
		return true
	}
	if r.appID == "" && len(r.account.AllowedApps) == 0 {
		// Only a diagnose gets here without an app: with an empty list no
		// token at all can sign in as this account.
		why := "the account's allowed apps list is empty, so no app's token can sign in as it"
		return !r.fail(checkAllowedApps, why,
			fmt.Sprintf("hve account allow-app %s APP", shellQuote(r.account.Address)),
			reply.AppNotAllowed, nil, why)
	}
	if r.appID == "" {
		r.skip(checkAllowedApps, fmt.Sprintf("no app given (--app) to check; allowed: %s", listOrNone(r.account.AllowedApps)))
		return true
	}
	for _, app := range r.account.AllowedApps {
		if strings.EqualFold(app, r.appID) {
			r.pass(checkAllowedApps, fmt.Sprintf("app %s is on the account's allowed apps list", r.appID))
			return true
		}
	}
	why := fmt.Sprintf("app %s is not on the account's allowed apps list (%s)", r.appID, listOrNone(r.account.AllowedApps))
	return !r.fail(checkAllowedApps, why,
		fmt.Sprintf("hve account allow-app %s %s", shellQuote(r.account.Address), shellQuote(r.appID)),
		reply.AppNotAllowed, nil, why)
}

func (r *run) checkNetworks() bool {
	if r.account == nil || len(r.account.AllowedNetworks) == 0 {
		r.pass(checkNetworks, "no network restriction")
		return true
	}
	list := strings.Join(r.account.AllowedNetworks, ",")
	ip := r.a.ClientIP.Unmap()
	if !ip.IsValid() && r.a.Diagnose {
		r.skip(checkNetworks, fmt.Sprintf("no client IP given; allowed networks: %s", list))
		return true
	}
	if pfx, ok := inNetworks(r.account.AllowedNetworks, ip); ok {
		r.pass(checkNetworks, fmt.Sprintf("client IP %s is in the allowed network %s", ip, pfx))
		return true
	}
	why := fmt.Sprintf("client IP %s is in none of the allowed networks %s", ipString(ip), list)
	fix := fmt.Sprintf("`%s --allowed-networks %s,CIDR`, or `%s --allowed-networks none`", r.setCmd(), list, r.setCmd())
	if ip.IsValid() {
		fix = fmt.Sprintf("`%s --allowed-networks %s,%s`, or `%s --allowed-networks none`", r.setCmd(), list, netip.PrefixFrom(ip, ip.BitLen()), r.setCmd())
	}
	return !r.fail(checkNetworks, why, fix, reply.NetworkNotAllowed, nil, why)
}

func (r *run) checkCA() bool {
	policies, err := r.c.dir.CAPolicies(r.ctx, r.tenant.ID)
	if err != nil {
		r.temporary(checkCA, "reading Conditional Access policies", err)
		return false
	}
	if len(policies) == 0 {
		r.pass(checkCA, "the tenant has no Conditional Access policies")
		return true
	}
	groups, err := r.c.dir.SecurityGroupsOf(r.ctx, r.tenant.ID, r.kind, r.identityID())
	if err != nil {
		r.temporary(checkCA, "reading security group memberships", err)
		return false
	}
	app := directory.Legacy
	if r.a.Method == OAuth {
		app = directory.Modern
	}
	r.verdicts = EvaluateCA(policies, Subject{Address: r.address(), Groups: groups, ClientApp: app, ClientIP: r.a.ClientIP})
	var blocking []string
	for _, v := range r.verdicts {
		check := fmt.Sprintf("%s %q", checkCA, v.Policy)
		switch {
		case v.Blocks():
			blocking = append(blocking, fmt.Sprintf("%q", v.Policy))
			r.step(check, Fail, fmt.Sprintf("applies (%s); grant %s blocks SMTP sign-ins", v.Why, v.Grant),
				fmt.Sprintf("`hve ca-policy set %s --exclude-users %s`, or `hve ca-policy set %s --state report-only`",
					shellQuote(v.Policy), shellQuote(r.address()), shellQuote(v.Policy)))
		case v.WouldBlock():
			r.step(check, ReportOnly, fmt.Sprintf("would block (%s; grant %s), but the policy is report-only", v.Why, v.Grant), "")
		case v.State == directory.CAOff:
			r.skip(check, v.Why)
		default:
			r.pass(check, "does not apply: "+v.Why)
		}
	}
	if len(blocking) == 0 {
		return true
	}
	word := "policy"
	if len(blocking) > 1 {
		word = "policies"
	}
	why := fmt.Sprintf("blocked by Conditional Access %s %s", word, strings.Join(blocking, ", "))
	if r.res.Reply == nil {
		r.res.Reply, r.res.Reason, r.replyName = reply.ConditionalAccessBlocked.Err(), why, reply.ConditionalAccessBlocked.Name
	}
	return false
}

// refused logs and records a refused sign-in.
func (c *Checker) refused(r *run) {
	ip := ""
	if r.a.ClientIP.IsValid() {
		ip = r.a.ClientIP.Unmap().String()
	}
	c.log.Info("sign-in refused", "user", r.user, "client_ip", ip, "endpoint", string(r.a.Endpoint),
		"method", string(r.a.Method), "reply", r.replyName, "reason", r.res.Reason)
	if c.rec == nil {
		return
	}
	c.rec.Record(trace.Event{
		TenantID: r.tenantID(), Time: r.now.UTC(), Sender: r.user,
		Event: trace.EventSignInRefused, Status: trace.StatusRejected,
		Detail: reply.Line(r.res.Reply) + "; " + r.res.Reason, ClientIP: ip,
	})
}

// reportOnly logs and records the report-only policies that would have
// blocked a sign-in that went ahead.
func (c *Checker) reportOnly(r *run) {
	ip := ""
	if r.a.ClientIP.IsValid() {
		ip = r.a.ClientIP.Unmap().String()
	}
	for _, v := range r.verdicts {
		if !v.WouldBlock() {
			continue
		}
		detail := fmt.Sprintf("Conditional Access policy %q would have blocked this sign-in (report-only)", v.Policy)
		c.log.Info("sign-in report-only", "user", r.user, "client_ip", ip, "endpoint", string(r.a.Endpoint),
			"method", string(r.a.Method), "policy", v.Policy, "why", v.Why)
		if c.rec != nil {
			c.rec.Record(trace.Event{
				TenantID: r.tenantID(), Time: r.now.UTC(), Sender: r.user,
				Event: trace.EventSignInReportOnly, Detail: detail, ClientIP: ip,
			})
		}
	}
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// shellQuote quotes s for a POSIX shell when it needs it, so that a Fix can
// be pasted as is (policy names hold spaces).
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("@%+=:,./_-", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
