package server_test

// The limits over SMTP (spec section 4; docs/limits.md): the daily
// recipient limits of accounts and tenants, external sending, racing
// sessions, and the admin settings that apply at once. Clock-controlled
// tests of the same limits are in internal/smtpd/limits_test.go.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"hve/internal/directory"
	"hve/internal/trace"
)

// accepted is queueID for a reply given as the two results of a call.
func accepted(t *testing.T) func(code int, text string) string {
	return func(code int, text string) string {
		t.Helper()
		return queueID(t, code, text)
	}
}

// limitSettings changes the default tenant's settings and tells the node,
// as the admin API does.
func (n *testNode) limitSettings(change func(*directory.Settings)) {
	n.t.Helper()
	n.settings(change)
	n.srv.SettingsChanged(n.tenant.ID)
}

// limitAccount changes an account and tells the node, as the admin API
// does.
func (n *testNode) limitAccount(addr string, change func(*directory.Account)) {
	n.t.Helper()
	n.updateAccount(addr, change)
	n.srv.SettingsChanged(n.tenant.ID)
}

// admin sends a request to the node's admin API and decodes the reply
// into out (if not nil); it returns the status.
func (n *testNode) admin(method, path string, body, out any) int {
	n.t.Helper()
	token, err := os.ReadFile(n.srv.TokenFile)
	if err != nil {
		n.t.Fatal(err)
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, "http://"+n.srv.AdminAddr.String()+path, bytes.NewReader(b))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			n.t.Fatalf("%s %s: decoding the reply: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func TestAccountDailyRecipientLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.limitAccount(appAddr, func(a *directory.Account) { a.DailyRecipientLimit = 3 })
	c := n.signIn()
	accepted(t)(c.send(appAddr, []string{"alice@" + domain, teamAddr}, message("two", "Subject: two")))
	c.envelope(appAddr, "bob@"+domain)
	code, text := c.cmd("RCPT TO:<carol@" + domain + ">")
	wantReply(t, code, text, 452, "4.5.3", "Daily recipient limit of 3 reached for "+appAddr+"; resets at 00:00 UTC")
	// The transaction goes on with the recipients that fit.
	accepted(t)(c.data(message("bob only", "Subject: three")))
	n.waitTrace(trace.Query{Recipient: "carol@" + domain, Status: trace.StatusRejected}, "the refusal", func(evs []trace.Event) bool {
		return len(evs) == 1 && evs[0].Sender == appAddr &&
			evs[0].Detail == "452 4.5.3 Daily recipient limit of 3 reached for "+appAddr+"; resets at 00:00 UTC"
	})
}

func TestTenantDailyRecipientLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.limitSettings(func(s *directory.Settings) { s.DailyRecipientLimit = 2 })
	c := n.signIn()
	accepted(t)(c.send(appAddr, []string{"alice@" + domain, "bob@" + domain}, message("two", "Subject: two")))
	c.ok(c.cmd("MAIL FROM:<" + appAddr + ">"))
	code, text := c.cmd("RCPT TO:<carol@" + domain + ">")
	wantReply(t, code, text, 452, "4.5.3", "Daily internal recipient limit of 2 reached for tenant default; resets at 00:00 UTC")
	// Another tenant is not concerned: its accounts count apart.
}

func TestExternalNoSmarthost(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.limitSettings(func(s *directory.Settings) { s.ExternalSending = directory.ExternalLimited })
	c := n.signIn()
	c.ok(c.cmd("MAIL FROM:<" + appAddr + ">"))
	code, text := c.cmd("RCPT TO:<someone@example.com>")
	wantReply(t, code, text, 550, "5.7.1", "External sending is limited for this tenant but no outbound smarthost is configured",
		"hve tenant set --outbound-smarthost")
	// With a smarthost, external recipients are accepted and queued. A
	// change applies from the next transaction.
	n.limitSettings(func(s *directory.Settings) { s.OutboundSmarthost = "127.0.0.1:2525" })
	c.ok(c.cmd("RSET"))
	c.envelope(appAddr, "someone@example.com")
	qid := accepted(t)(c.data(message("out", "Subject: external")))
	if evs := n.trace(trace.Query{QueueID: qid, Recipient: "someone@example.com"}); len(evs) == 0 || evs[0].Event != trace.EventReceived {
		t.Errorf("trace of the external recipient: %+v, want it received", evs)
	}
	// Mailboxes never send outside.
	mc := n.signInClient()
	mc.ok(mc.cmd("MAIL FROM:<" + sharedAddr + ">"))
	code, text = mc.cmd("RCPT TO:<someone@example.com>")
	wantReply(t, code, text, 550, "5.7.54")
}

func TestExternalRateLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.limitSettings(func(s *directory.Settings) {
		s.ExternalSending, s.OutboundSmarthost = directory.ExternalLimited, "127.0.0.1:2525"
	})
	c := n.signIn()
	for i := range 10 {
		accepted(t)(c.send(appAddr, []string{fmt.Sprintf("u%d@example.com", i), "alice@" + domain}, message("x", "Subject: x")))
	}
	c.envelope(appAddr, "alice@"+domain)
	code, text := c.cmd("RCPT TO:<u10@example.com>")
	wantReply(t, code, text, 450, "4.5.104", "rate limit for external emails has been exceeded",
		"at most 10 messages with external recipients per minute for "+appAddr)
	accepted(t)(c.data(message("internal only", "Subject: y")))
}

// TestLimitRace: 200 sessions of one account race for its daily cap of
// 300 recipients, with messages of one to four recipients, some dropped
// with RSET and some refused at DATA. Exactly 300 recipients are queued,
// and every refused recipient got the documented reply.
//
// It does not run in parallel with other tests: its load would disturb the
// tests that measure time (pacing).
func TestLimitRace(t *testing.T) {
	n := startNode(t)
	const limit = 300
	n.limitAccount(appAddr, func(a *directory.Account) { a.DailyRecipientLimit = limit })
	n.signIn() // verifies the password once; the other sign-ins hit the cache
	want := "452 4.5.3 Daily recipient limit of 300 reached for " + appAddr + "; resets at 00:00 UTC"

	var queued, refusals atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wrong []string
	for range 200 {
		c := n.signIn()
		wg.Go(func() {
			for {
				c.ok(c.cmd("MAIL FROM:<" + appAddr + ">"))
				took := 0
				for _, p := range people[:1+rand.IntN(len(people))] {
					code, text := c.cmd("RCPT TO:<" + p + "@" + domain + ">")
					if code == 250 {
						took++
						continue
					}
					refusals.Add(1)
					if line := fmt.Sprintf("%d %s", code, text); line != want {
						mu.Lock()
						wrong = append(wrong, line)
						mu.Unlock()
					}
				}
				switch {
				case took == 0:
					c.cmd("QUIT")
					return
				case rand.IntN(5) == 0:
					c.ok(c.cmd("RSET"))
				case rand.IntN(10) == 0:
					code, text := c.data(message("spoof", "From: alice@"+domain))
					wantReply(t, code, text, 554, "5.2.252")
				default:
					accepted(t)(c.data(message("race", "Subject: race")))
					queued.Add(int64(took))
				}
			}
		})
	}
	wg.Wait()
	if queued.Load() != limit {
		t.Errorf("%d recipients queued, want exactly %d", queued.Load(), limit)
	}
	if refusals.Load() < 200 || len(wrong) > 0 {
		t.Errorf("%d refusals; replies other than %q: %q", refusals.Load(), want, wrong)
	}
	evs := n.waitTrace(trace.Query{Sender: appAddr, Limit: 10_000}, "the queued recipients", func(evs []trace.Event) bool {
		return countEvents(evs, trace.EventReceived) >= limit
	})
	if got := countEvents(evs, trace.EventReceived); got != limit {
		t.Errorf("trace holds %d received recipients, want %d", got, limit)
	}
}

// TestLimitSettingsThroughAdminAPI: limits set with the admin API apply to
// the next transaction of a session already signed in; creating an
// account beyond the tenant's maximum fails with a clear error.
func TestLimitSettingsThroughAdminAPI(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	accepted(t)(c.send(appAddr, []string{"alice@" + domain}, message("one", "Subject: one")))

	var acc directory.Account
	if st := n.admin("PATCH", "/api/v1/tenants/default/accounts/"+appAddr, map[string]any{"daily_recipient_limit": 2, "warn_at": 50}, &acc); st != 200 ||
		acc.DailyRecipientLimit != 2 || acc.WarnAt != 50 {
		t.Fatalf("PATCH account: %d %+v", st, acc)
	}
	// The cap counts from when it is set: what the account sent before
	// was not counted (unlimited counters cost nothing).
	c.envelope(appAddr, "alice@"+domain, "bob@"+domain)
	code, text := c.cmd("RCPT TO:<carol@" + domain + ">")
	wantReply(t, code, text, 452, "4.5.3", "Daily recipient limit of 2 reached for "+appAddr)
	c.ok(c.cmd("RSET"))

	var ten directory.Tenant
	patch := map[string]any{"daily_recipient_limit": 100000, "max_hve_accounts": 2, "external_sending": "limited",
		"outbound_smarthost": "Smtp.Example.NET:25", "price_per_million": 37.5}
	if st := n.admin("PATCH", "/api/v1/tenants/default", patch, &ten); st != 200 {
		t.Fatalf("PATCH tenant: %d", st)
	}
	want := directory.Settings{DailyRecipientLimit: 100000, MaxHVEAccounts: 2, ExternalSending: directory.ExternalLimited,
		OutboundSmarthost: "smtp.example.net:25", PricePerMillion: 37.5}
	if got := ten.Settings; got.DailyRecipientLimit != want.DailyRecipientLimit || got.MaxHVEAccounts != want.MaxHVEAccounts ||
		got.ExternalSending != want.ExternalSending || got.OutboundSmarthost != want.OutboundSmarthost || got.PricePerMillion != want.PricePerMillion {
		t.Errorf("settings %+v, want %+v", got, want)
	}
	c.ok(c.cmd("MAIL FROM:<" + appAddr + ">"))
	c.ok(c.cmd("RCPT TO:<someone@example.com>"))
	c.ok(c.cmd("RSET"))

	// The tenant has two accounts (app@ and off@): a third is refused.
	var e struct {
		Error struct{ Code, Message string }
	}
	st := n.admin("POST", "/api/v1/tenants/default/accounts", map[string]any{"name": "third", "address": "third@" + domain}, &e)
	if st != http.StatusConflict || e.Error.Code != "limit_reached" || !strings.Contains(e.Error.Message, "--max-hve-accounts") {
		t.Errorf("a third account: %d %+v, want 409 limit_reached naming the setting", st, e)
	}
	for _, bad := range []map[string]any{
		{"external_sending": "on"}, {"outbound_smarthost": "no-port"}, {"daily_recipient_limit": -1}, {"price_per_million": -1},
	} {
		if st := n.admin("PATCH", "/api/v1/tenants/default", bad, nil); st != http.StatusBadRequest {
			t.Errorf("PATCH tenant %v: %d, want 400", bad, st)
		}
	}
	if st := n.admin("PATCH", "/api/v1/tenants/default/accounts/"+appAddr, map[string]any{"warn_at": 101}, nil); st != http.StatusBadRequest {
		t.Errorf("warn_at 101: %d, want 400", st)
	}
}
