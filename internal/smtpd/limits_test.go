package smtpd_test

// The HVE endpoint's limits with a controlled clock: day boundaries, the
// external quotas, the warning level. The limits over the wire with real
// time and racing sessions are tested in internal/server/limits_test.go.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/limits"
	"hve/internal/smtpd"
	"hve/internal/trace"
)

// newLimitsFixture starts an HVE endpoint whose clock the test moves, with
// an engine that tells obs (if not nil) of warning levels. Settings are
// read for every transaction.
func newLimitsFixture(t *testing.T, obs limits.Observer) (*fixture, *testClock) {
	t.Helper()
	clk := &testClock{now: time.Date(2026, 11, 22, 23, 58, 0, 0, time.UTC)}
	eng := limits.NewEngine(limits.NewMemCounters(), limits.EngineConfig{Clock: clk.Now, Observer: obs})
	return newFixtureWith(t, smtpd.Config{Clock: clk.Now, Limits: eng, SettingsTTL: -1}, nil), clk
}

// setAccount changes the fixture's HVE account.
func (f *fixture) setAccount(change func(*directory.Account)) {
	f.t.Helper()
	ctx := context.Background()
	acc, err := f.st.AccountByAddress(ctx, appAddr)
	if err != nil {
		f.t.Fatal(err)
	}
	change(&acc)
	if _, err := f.st.UpdateAccount(ctx, acc); err != nil {
		f.t.Fatal(err)
	}
}

// setTenant changes the fixture's tenant settings.
func (f *fixture) setTenant(change func(*directory.Settings)) {
	f.t.Helper()
	ctx := context.Background()
	ten, err := f.st.Tenant(ctx, f.tenant)
	if err != nil {
		f.t.Fatal(err)
	}
	change(&ten.Settings)
	if _, err := f.st.UpdateTenantSettings(ctx, f.tenant, ten.Settings); err != nil {
		f.t.Fatal(err)
	}
}

// transaction sends MAIL and RCPTs and returns the reply to the last RCPT
// (the ones before must be accepted).
func (c *client) rcpts(rcpts ...string) (int, string) {
	c.t.Helper()
	c.want(c.cmd("MAIL FROM:<"+appAddr+">"))(250, "2.0.0")
	for _, r := range rcpts[:len(rcpts)-1] {
		c.want(c.cmd("RCPT TO:<"+r+">"))(250, "2.0.0")
	}
	return c.cmd("RCPT TO:<" + rcpts[len(rcpts)-1] + ">")
}

// finish sends DATA with a small message from the account.
func (c *client) finish() (int, string) {
	c.t.Helper()
	c.want(c.cmd("DATA"))(354, "")
	w := c.tp.DotWriter()
	fmt.Fprintf(w, "From: %s\r\nSubject: limits\r\n\r\nbody\r\n", appAddr)
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

// TestAccountDailyLimitResetsAtMidnight: the account's cap counts per UTC
// day; at 00:00 UTC the account may send again.
func TestAccountDailyLimitResetsAtMidnight(t *testing.T) {
	f, clk := newLimitsFixture(t, nil)
	f.setAccount(func(a *directory.Account) { a.DailyRecipientLimit = 2 })
	c := f.dial()
	c.signIn()
	c.want(c.rcpts(alice, bob))(250, "2.0.0")
	c.want(c.finish())(250, "2.0.0")
	c.want(c.rcpts(alice))(452, "4.5.3", "Daily recipient limit of 2 reached for "+appAddr+"; resets at 00:00 UTC")
	c.want(c.cmd("RSET"))(250, "2.0.0")

	clk.advance(time.Minute + 59*time.Second) // 23:59:59
	c.want(c.rcpts(alice))(452, "4.5.3")
	c.want(c.cmd("RSET"))(250, "2.0.0")
	clk.advance(time.Second) // 00:00:00
	c.want(c.rcpts(alice, bob))(250, "2.0.0")
	c.want(c.finish())(250, "2.0.0")
	c.want(c.rcpts(alice))(452, "4.5.3")

	// Each refusal is traced with its reply.
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	n := 0
	for _, e := range f.rec.events {
		if e.Event == trace.EventRejected && e.Recipient == alice && strings.HasPrefix(e.Detail, "452 4.5.3 Daily recipient limit of 2") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d refusals traced, want 3", n)
	}
}

// TestRefusedMessageDoesNotCount: recipients of a message refused at DATA,
// or dropped with RSET, are given back.
func TestRefusedMessageDoesNotCount(t *testing.T) {
	f, _ := newLimitsFixture(t, nil)
	f.setAccount(func(a *directory.Account) { a.DailyRecipientLimit = 2 })
	c := f.dial()
	c.signIn()
	c.want(c.rcpts(alice, bob))(250, "2.0.0")
	c.want(c.cmd("DATA"))(354, "")
	w := c.tp.DotWriter()
	fmt.Fprintf(w, "From: someone@contoso.test\r\n\r\nspoofed\r\n")
	w.Close()
	c.want(c.read())(554, "5.2.252")
	c.want(c.rcpts(alice, bob))(250, "2.0.0")
	c.want(c.cmd("RSET"))(250, "2.0.0")
	c.want(c.rcpts(alice, bob))(250, "2.0.0")
	c.want(c.finish())(250, "2.0.0")
}

// TestTenantDailyLimit counts internal recipients of all the tenant's
// accounts together.
func TestTenantDailyLimit(t *testing.T) {
	f, clk := newLimitsFixture(t, nil)
	f.setTenant(func(s *directory.Settings) { s.DailyRecipientLimit = 3 })
	c := f.dial()
	c.signIn()
	c.want(c.rcpts(alice, bob, sharedAddr))(250, "2.0.0")
	c.want(c.finish())(250, "2.0.0")
	c.want(c.rcpts(alice))(452, "4.5.3", "Daily internal recipient limit of 3 reached for tenant default; resets at 00:00 UTC")
	// Raising the limit applies to the next transaction.
	f.setTenant(func(s *directory.Settings) { s.DailyRecipientLimit = 4 })
	c.want(c.cmd("RSET"))(250, "2.0.0")
	c.want(c.rcpts(alice))(250, "2.0.0")
	c.want(c.finish())(250, "2.0.0")
	clk.advance(2 * time.Minute)
	c.want(c.rcpts(alice, bob, sharedAddr))(250, "2.0.0")
}

// TestExternalLimits: in limited mode, external recipients are accepted
// through the smarthost, 2,000 per account per UTC day and 10 messages
// with external recipients per account per minute.
func TestExternalLimits(t *testing.T) {
	f, clk := newLimitsFixture(t, nil)
	clk.advance(-10 * time.Hour) // 13:58, far from midnight
	ext := func(i int) string { return fmt.Sprintf("user%d@example.net", i) }
	c := f.dial()
	c.signIn()
	c.want(c.rcpts(ext(0)))(550, "5.5.105", "External sending is not supported")
	f.setTenant(func(s *directory.Settings) { s.ExternalSending = directory.ExternalLimited })
	c.want(c.rcpts(ext(0)))(550, "5.7.1", "no outbound smarthost is configured", "hve tenant set --outbound-smarthost")
	f.setTenant(func(s *directory.Settings) { s.OutboundSmarthost = "smtp.example.net:25" })

	// The rate: the 11th message with external recipients in a minute.
	for i := range 10 {
		c.want(c.rcpts(alice, ext(i), ext(i+100)))(250, "2.0.0")
		c.want(c.finish())(250, "2.0.0")
	}
	c.want(c.rcpts(alice, ext(11)))(450, "4.5.104", "rate limit for external emails has been exceeded",
		"at most 10 messages with external recipients per minute for "+appAddr, "try again after 13:59:01 UTC")
	// Internal recipients are not limited by it.
	c.want(c.cmd("RCPT TO:<"+bob+">"))(250, "2.0.0")
	c.want(c.finish())(250, "2.0.0")
	clk.advance(time.Minute)

	// The daily quota: 20 recipients went out above; 1,980 more fit.
	sent := 20
	for sent < 2000 {
		clk.advance(10 * time.Second)
		c.want(c.cmd("MAIL FROM:<"+appAddr+">"))(250, "2.0.0")
		for range min(50, 2000-sent) {
			c.want(c.cmd("RCPT TO:<"+ext(sent)+">"))(250, "2.0.0")
			sent++
		}
		c.want(c.finish())(250, "2.0.0")
	}
	clk.advance(10 * time.Second)
	c.want(c.rcpts(alice, ext(2001)))(450, "4.5.102", "tenant quota for external recipients was exceeded",
		"limit of 2000 external recipients per day reached for "+appAddr, "resets at 00:00 UTC")
	c.want(c.finish())(250, "2.0.0") // with alice only

	// The queued message carries its external recipients for delivery.
	evs, err := f.st.SearchTrace(context.Background(), trace.Query{TenantID: f.tenant, Recipient: ext(1999)})
	if err != nil || len(evs) != 1 || evs[0].Event != trace.EventReceived {
		t.Errorf("trace of the external recipient %s: %+v, %v; want it received", ext(1999), evs, err)
	}
}

// TestWarnLevelObserved: the engine's Observer hears once, at the
// recipient that reaches the account's warning level.
func TestWarnLevelObserved(t *testing.T) {
	var mu sync.Mutex
	var heard []limits.Crossing
	f, _ := newLimitsFixture(t, limits.ObserverFunc(func(_ context.Context, c limits.Crossing) {
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, c)
	}))
	f.setAccount(func(a *directory.Account) { a.DailyRecipientLimit, a.WarnAt = 10, 50 })
	c := f.dial()
	c.signIn()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(heard)
	}
	c.want(c.rcpts(alice, bob, sharedAddr, "alice@contoso.test"))(250, "2.0.0") // a repeat counts once
	c.want(c.finish())(250, "2.0.0")
	if n := count(); n != 0 {
		t.Fatalf("heard %d crossings at 3 of 10", n)
	}
	c.want(c.rcpts(alice))(250, "2.0.0")
	if n := count(); n != 0 {
		t.Fatalf("heard %d crossings at 4 of 10", n)
	}
	c.want(c.cmd("RCPT TO:<"+bob+">"))(250, "2.0.0")
	if n := count(); n != 1 {
		t.Fatalf("heard %d crossings at 5 of 10, want 1", n)
	}
	c.want(c.finish())(250, "2.0.0")
	c.want(c.rcpts(alice, bob, sharedAddr))(250, "2.0.0")
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 1 || heard[0].Subject.Name != appAddr || heard[0].Used != 5 || heard[0].Limit != 10 || heard[0].WarnAt != 50 {
		t.Errorf("heard %+v, want one crossing of %s at 5 of 10", heard, appAddr)
	}
}
