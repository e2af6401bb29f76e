package smtpd_test

// The standard client endpoint's per-mailbox limits with a controlled
// clock: the times in replies and trace are exact. Their wire behaviour
// with real time is tested in internal/server/client_test.go.

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/smtpd"
	"hve/internal/trace"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClientFixture(t *testing.T, cfg smtpd.Config) (*fixture, *testClock) {
	clk := &testClock{now: time.Date(2026, 11, 22, 14, 4, 30, 0, time.UTC)}
	cfg.Endpoint = directory.EndpointClient
	cfg.Clock = clk.Now
	return newFixtureWith(t, cfg, nil), clk
}

func (c *client) signInAs(user string) {
	c.t.Helper()
	c.want(c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+appPW))))(235, "2.0.0")
}

// sendAs runs a transaction; every RCPT must be accepted.
func (c *client) sendAs(from, subject string, rcpts ...string) (int, string) {
	c.t.Helper()
	c.want(c.cmd("MAIL FROM:<"+from+">"))(250, "2.0.0")
	for _, r := range rcpts {
		c.want(c.cmd("RCPT TO:<"+r+">"))(250, "2.0.0")
	}
	c.want(c.cmd("DATA"))(354, "")
	w := c.tp.DotWriter()
	fmt.Fprintf(w, "From: %s\r\nSubject: %s\r\n\r\nbody\r\n", from, subject)
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

func TestClientRecipientQuotaFreesAt(t *testing.T) {
	f, clk := newClientFixture(t, smtpd.Config{RecipientsPerDay: 3})
	c := f.dial()
	c.signInAs(sharedAddr)
	c.want(c.sendAs(sharedAddr, "two", alice, bob))(250, "2.0.0")

	// A recipient reserved and then dropped (RSET) does not count.
	c.want(c.cmd("MAIL FROM:<"+sharedAddr+">"))(250, "2.0.0")
	c.want(c.cmd("RCPT TO:<"+alice+">"))(250, "2.0.0")
	c.want(c.cmd("RSET"))(250, "2.0.0")

	clk.advance(time.Hour) // 15:04:30
	c.want(c.cmd("MAIL FROM:<"+sharedAddr+">"))(250, "2.0.0")
	c.want(c.cmd("RCPT TO:<"+alice+">"))(250, "2.0.0")
	// The fourth recipient in 24 hours; a repeat of one reserved is fine.
	c.want(c.cmd("RCPT TO:<"+bob+">"))(452, "4.5.3",
		"Recipient limit of 3 per rolling 24 hours reached for "+sharedAddr+"; capacity frees from 2026-11-23 14:05 UTC")
	c.want(c.cmd("RCPT TO:<"+alice+">"))(250, "2.0.0")
	c.want(c.cmd("DATA"))(354, "")
	w := c.tp.DotWriter()
	fmt.Fprintf(w, "Subject: third\r\n\r\nbody\r\n")
	w.Close()
	c.want(c.read())(250, "2.0.0")

	clk.advance(23*time.Hour + 30*time.Second) // 14:05:00 next day: the first two are out
	c.want(c.sendAs(sharedAddr, "next day", alice, bob))(250, "2.0.0")
	c.want(c.cmd("MAIL FROM:<"+sharedAddr+">"))(250, "2.0.0")
	c.want(c.cmd("RCPT TO:<"+alice+">"))(452, "4.5.3", "capacity frees from 2026-11-23 15:05 UTC")
}

func TestClientPacing(t *testing.T) {
	f, clk := newClientFixture(t, smtpd.Config{MessagesPerMinute: 2})
	c := f.dial()
	c.signInAs(sharedAddr)
	for i := range 4 {
		c.want(c.sendAs(sharedAddr, fmt.Sprintf("m%d", i+1), alice))(250, "2.0.0")
	}
	evs, _ := f.stored()
	details := map[string]string{}
	for _, e := range evs {
		if e.Event == trace.EventReceived {
			details[e.Subject] = e.Detail
		}
	}
	for subject, want := range map[string]string{
		"m1": "", "m2": "",
		"m3": "paced: delivery from 2026-11-22 14:05:00 UTC (over 2 messages a minute)",
		"m4": "paced: delivery from 2026-11-22 14:05:30 UTC",
	} {
		d := details[subject]
		if want == "" && strings.Contains(d, "paced") || want != "" && !strings.Contains(d, want) {
			t.Errorf("%s: trace detail %q, want %q", subject, d, want)
		}
	}
	// The burst comes back with time.
	clk.advance(3 * time.Minute)
	c.want(c.sendAs(sharedAddr, "m5", alice))(250, "2.0.0")
	evs, _ = f.stored()
	for _, e := range evs {
		if e.Subject == "m5" && strings.Contains(e.Detail, "paced") {
			t.Errorf("m5 paced after 3 idle minutes: %q", e.Detail)
		}
	}
}

func TestClientConcurrencyReleasedAtLogout(t *testing.T) {
	f, _ := newClientFixture(t, smtpd.Config{MaxConnections: 2})
	a, b, c := f.dial(), f.dial(), f.dial()
	a.signInAs(sharedAddr)
	b.signInAs(sharedAddr)
	c.want(c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+sharedAddr+"\x00"+appPW))))(432, "4.3.2",
		"at most 2 concurrent connections per mailbox")
	// A failed sign-in takes no slot; a QUIT gives one back.
	a.want(a.cmd("QUIT"))(221, "2.0.0")
	if _, err := a.tp.ReadLine(); err == nil {
		t.Fatal("connection still open after QUIT")
	}
	c.signInAs(sharedAddr)
	c.want(c.sendAs(sharedAddr, "third connection", alice))(250, "2.0.0")
}

func TestCloseSessions(t *testing.T) {
	f, _ := newClientFixture(t, smtpd.Config{MaxConnections: 2})
	a, b, idle := f.dial(), f.dial(), f.dial()
	a.signInAs(sharedAddr)
	b.signInAs(sharedAddr)
	// b is in the middle of a transaction.
	b.want(b.cmd("MAIL FROM:<"+sharedAddr+">"))(250, "2.0.0")

	if n := f.endpoint.CloseSessions(f.tenant, directory.KindAccount, f.mailbox.ID); n != 0 {
		t.Errorf("CloseSessions of an account with the mailbox's id = %d, want 0", n)
	}
	if n := f.endpoint.CloseSessions(f.tenant, directory.KindMailbox, f.mailbox.ID); n != 2 {
		t.Errorf("CloseSessions = %d, want 2", n)
	}
	for _, c := range []*client{a, b} {
		c.want(c.read())(421, "4.7.0", "Session revoked")
		if line, err := c.tp.ReadLine(); err == nil {
			t.Errorf("after the revocation, read %q; want the connection closed", line)
		}
	}
	// A session not signed in is untouched; the slots are free again.
	idle.want(idle.cmd("NOOP"))(250, "2.0.0")
	idle.signInAs(sharedAddr)
	f.dial().signInAs(sharedAddr)
	if n := f.endpoint.CloseSessions(f.tenant, directory.KindMailbox, f.mailbox.ID); n != 2 {
		t.Errorf("second CloseSessions = %d, want 2", n)
	}
}
