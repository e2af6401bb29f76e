package delivery_test

// Relay delivery against a next hop started by each test (sink_test.go),
// with the worker's clock under the test's control.

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"hve/internal/delivery"
	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/trace"
)

// clock is the worker's clock in these tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) advance(d time.Duration) { c.set(c.Now().Add(d)) }

// newRelayFixture is the delivery fixture with a controlled clock, no
// jitter, and relay timeouts fit for tests.
func newRelayFixture(t *testing.T) (*fixture, *clock) {
	t.Helper()
	f := newFixture(t)
	clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	f.w.Now = clk.Now
	f.w.Retry.Rand = func() float64 { return 0.5 } // the middle: no jitter
	r := f.w.Relay
	r.Hostname = "hve.test"
	r.ConnectTimeout, r.CommandTimeout, r.DataTimeout = 5*time.Second, 10*time.Second, 10*time.Second
	r.IdleTimeout, r.DeadTime = time.Hour, 0
	t.Cleanup(f.w.Close)
	return f, clk
}

// route sets a route of the default tenant.
func (f *fixture) route(r directory.Route) directory.Route {
	f.t.Helper()
	r.TenantID = f.tenant.ID
	r, err := f.st.SetRoute(context.Background(), r)
	if err != nil {
		f.t.Fatalf("SetRoute(%s): %v", r.Domain, err)
	}
	return r
}

// smtpRoute routes domain to the sink over SMTP.
func (f *fixture) smtpRoute(domain string, s *sink, mod ...func(*directory.Route)) {
	f.t.Helper()
	r := directory.Route{Domain: domain, Type: directory.RouteSMTP, Target: s.addr, TLS: directory.TLSNone}
	for _, m := range mod {
		m(&r)
	}
	f.route(r)
}

// states returns the queue state of each recipient of m.
func (f *fixture) states(m *queue.Message) map[string]queue.Recipient {
	f.t.Helper()
	list, err := f.st.QueueRecipients(context.Background(), m.QueueID)
	if err != nil {
		f.t.Fatalf("QueueRecipients: %v", err)
	}
	out := map[string]queue.Recipient{}
	for _, r := range list {
		out[r.Address] = r
	}
	return out
}

// wantStates checks the state of each named recipient of m.
func (f *fixture) wantStates(m *queue.Message, want map[string]queue.RecipientState) {
	f.t.Helper()
	got := f.states(m)
	for addr, w := range want {
		if got[addr].State != w {
			f.t.Errorf("%s is %q (%s), want %q", addr, got[addr].State, got[addr].LastReply, w)
		}
	}
}

// eventsOf returns m's delivery events for rcpt.
func (f *fixture) eventsOf(m *queue.Message, rcpt string) []trace.Event {
	f.t.Helper()
	var out []trace.Event
	for _, e := range f.events(m) {
		if e.Recipient == rcpt {
			out = append(out, e)
		}
	}
	return out
}

// lastEvent returns m's latest delivery event for rcpt, checking that it
// is named name and its detail holds each of words.
func (f *fixture) lastEvent(m *queue.Message, rcpt, name string, words ...string) trace.Event {
	f.t.Helper()
	evs := f.eventsOf(m, rcpt)
	if len(evs) == 0 {
		f.t.Fatalf("no delivery event for %s", rcpt)
	}
	e := evs[len(evs)-1]
	if e.Event != name {
		f.t.Errorf("last event of %s is %s (%s), want %s", rcpt, e.Event, e.Detail, name)
	}
	for _, w := range words {
		if !strings.Contains(e.Detail, w) {
			f.t.Errorf("%s event of %s: detail %q lacks %q", e.Event, rcpt, e.Detail, w)
		}
	}
	return e
}

func reply(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

// onlyOnce checks that the sink took no copy twice for any of rcpts.
func onlyOnce(t *testing.T, s *sink, rcpts ...string) {
	t.Helper()
	for _, r := range rcpts {
		if n := s.acceptedTimes(r); n > 1 {
			t.Errorf("the next hop accepted %s %d times: a recipient it accepted was sent the message again", r, n)
		}
	}
}

var (
	rx = "x@" + relayDomain
	ry = "y@" + relayDomain
	rz = "z@" + relayDomain
)

func TestRelayCarriesEveryRecipientInOneTransaction(t *testing.T) {
	f, _ := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s)
	m := f.enqueue(rx, ry, rz, aliceAddr)
	f.runOnce(1)

	got := s.transactions()
	if len(got) != 1 || !slices.Equal(got[0].accepted, []string{rx, ry, rz}) || got[0].from != sender {
		t.Fatalf("the next hop got %+v; want one transaction from %s to x, y and z", got, sender)
	}
	if !strings.Contains(string(got[0].body), "Subject: "+m.Subject) {
		t.Errorf("relayed body %q lacks the message", got[0].body)
	}
	for _, r := range []string{rx, ry, rz} {
		f.lastEvent(m, r, trace.EventDelivered, "next hop smtp "+s.addr, "250 2.0.0 OK: queued", "attempt 1")
	}
	// alice's domain has no route: her copy is local, as before.
	f.checkCopies(m, aliceAddr)
	f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDelivered, rz: queue.RecipientDelivered,
		aliceAddr: queue.RecipientDelivered})
	if n := f.queueDepth(); n != 0 {
		t.Errorf("QueueDepth = %d after delivery, want 0", n)
	}
}

// TestRelayedContentArrivesUnchanged: the relay dot-stuffs the content and
// the next hop takes the dots out again, so that what arrives is what was
// queued, for lines that start with dots, a last line without its line end
// and a body larger than the connection's buffer.
func TestRelayedContentArrivesUnchanged(t *testing.T) {
	f, _ := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s)
	long := strings.Repeat("0123456789abcdef", 4096) // 64 KiB on one line
	bodies := []string{
		"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmid.dle\r\n. \r\n",
		"Subject: long\r\n\r\n" + long + "\r\n." + long + "\r\n",
		"Subject: unterminated\r\n\r\nlast line",
	}
	var msgs []*queue.Message
	for _, b := range bodies {
		m, events := f.message(rx)
		m.Body, m.Size = []byte(b), int64(len(b))
		if err := f.st.Enqueue(context.Background(), []*queue.Message{m}, events); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	f.runOnce(len(msgs))
	got := s.transactions()
	if len(got) != len(msgs) {
		t.Fatalf("the next hop got %d transactions, want %d", len(got), len(msgs))
	}
	for i, b := range bodies {
		want := b
		if !strings.HasSuffix(want, "\r\n") {
			want += "\r\n" // SMTP content always ends with a line end
		}
		if !slices.ContainsFunc(got, func(r received) bool { return string(r.body) == want }) {
			t.Errorf("body %d did not arrive unchanged; want %q", i, want[:min(len(want), 80)])
		}
	}
}

func TestPerRecipientRepliesAndRetryOfOnlyTheDeferred(t *testing.T) {
	f, clk := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s)
	s.set(script{rcpt: func(to string) *smtp.SMTPError {
		switch to {
		case ry:
			return reply(451, smtp.EnhancedCode{4, 2, 1}, "Mailbox busy, try later")
		case rz:
			return reply(550, smtp.EnhancedCode{5, 1, 1}, "No such user")
		}
		return nil
	}})
	m := f.enqueue(rx, ry, rz)
	t0 := clk.Now()
	f.runOnce(1)

	f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDeferred, rz: queue.RecipientFailed})
	f.lastEvent(m, rx, trace.EventDelivered, "250")
	def := f.lastEvent(m, ry, trace.EventDeferred, "451 4.2.1 Mailbox busy, try later", "attempt 1", "next attempt at")
	if def.Status != trace.StatusPending {
		t.Errorf("Deferred event status = %s, want %s", def.Status, trace.StatusPending)
	}
	f.lastEvent(m, rz, trace.EventFailed, "550 5.1.1 No such user", "refused by next hop")
	if st := f.states(m)[ry]; !st.NextAttemptAt.Equal(t0.Add(time.Minute)) || st.Attempts != 1 || !strings.Contains(st.LastReply, "451") {
		t.Errorf("deferred recipient = %+v; want attempt 1, the reply, and the next attempt a minute on", st)
	}
	// Pending in trace: the latest event of y is Pending.
	pending, err := f.st.SearchTrace(context.Background(), trace.Query{TenantID: f.tenant.ID, QueueID: m.QueueID, Status: trace.StatusPending})
	if err != nil || len(pending) != 1 || pending[0].Recipient != ry {
		t.Errorf("trace status Pending = %v, %v; want y's Deferred event", pending, err)
	}

	clk.advance(59 * time.Second)
	f.runOnce(0) // not due yet
	clk.advance(time.Second)
	s.set(script{})
	f.runOnce(1)
	f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDelivered, rz: queue.RecipientFailed})
	f.lastEvent(m, ry, trace.EventDelivered, "attempt 2")
	if got := s.transactions(); len(got) != 2 || !slices.Equal(got[1].accepted, []string{ry}) {
		t.Errorf("transactions = %+v; want the retry to carry y alone", got)
	}
	if s.rcpts(rx) != 1 || s.rcpts(rz) != 1 || s.rcpts(ry) != 2 {
		t.Errorf("RCPTs x=%d y=%d z=%d; want 1, 2, 1", s.rcpts(rx), s.rcpts(ry), s.rcpts(rz))
	}
	onlyOnce(t, s, rx, ry, rz)
	if n := f.queueDepth(); n != 0 {
		t.Errorf("QueueDepth = %d, want 0", n)
	}
	// A permanent failure is final: nothing is tried again, ever.
	clk.advance(72 * time.Hour)
	f.runOnce(0)
	if s.rcpts(rz) != 1 {
		t.Errorf("a recipient refused with 5xx was tried %d times, want 1", s.rcpts(rz))
	}
}

func TestRetriesFollowTheScheduleUntilMaxAge(t *testing.T) {
	f, clk := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s)
	s.set(script{rcpt: func(string) *smtp.SMTPError { return reply(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local problem") }})
	m := f.enqueue(rx)
	deadline := m.ReceivedAt.Add(delivery.DefaultMaxAge)

	var attemptAt time.Time
	attempts := 0
	for {
		attemptAt = clk.Now()
		f.runOnce(1)
		attempts++
		st := f.states(m)[rx]
		if st.Attempts != attempts {
			t.Fatalf("after attempt %d the recipient counts %d attempts", attempts, st.Attempts)
		}
		if st.State == queue.RecipientFailed {
			break
		}
		if st.State != queue.RecipientDeferred || attempts > 100 {
			t.Fatalf("after attempt %d: %+v", attempts, st)
		}
		want := attemptAt.Add(delivery.DefaultSchedule[min(attempts, len(delivery.DefaultSchedule))-1])
		if want.After(deadline) {
			want = deadline
		}
		if !st.NextAttemptAt.Equal(want) {
			t.Fatalf("after attempt %d at %v the next is due at %v, want %v", attempts, attemptAt, st.NextAttemptAt, want)
		}
		clk.set(want.Add(-time.Second))
		f.runOnce(0) // a second early: not claimed
		clk.set(want)
	}
	// 1s, 1m1s, 6m1s, 21m1s, 51m1s, 1h51m1s, 3h51m1s, then every 4h to
	// 47h51m1s (11 attempts), and a last one at 48h.
	if attempts != 19 || !attemptAt.Equal(deadline) {
		t.Errorf("%d attempts, the last at %v; want 19, the last at the maximum age %v", attempts, attemptAt, deadline)
	}
	f.lastEvent(m, rx, trace.EventFailed, "maximum age of 48h0m0s", "451 4.3.0 Temporary local problem", "gave up after 19 attempts")
	if n := len(f.eventsOf(m, rx)); n != 19 {
		t.Errorf("%d events for the recipient, want 18 Deferred and 1 Failed", n)
	}
	if s.rcpts(rx) != 19 {
		t.Errorf("the next hop saw %d RCPTs, want 19", s.rcpts(rx))
	}
	if n := f.queueDepth(); n != 0 {
		t.Errorf("QueueDepth after expiry = %d, want 0", n)
	}
}

func TestMaxAgeIsConfigurable(t *testing.T) {
	f, clk := newRelayFixture(t)
	f.w.Retry.MaxAge = 3 * time.Minute
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s)
	s.set(script{rcpt: func(string) *smtp.SMTPError { return reply(452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full") }})
	m := f.enqueue(rx)
	f.runOnce(1) // at 1s; next at 1m1s
	clk.advance(time.Minute)
	f.runOnce(1) // at 1m1s; next would be 6m1s, capped at 3m
	if st := f.states(m)[rx]; !st.NextAttemptAt.Equal(m.ReceivedAt.Add(3 * time.Minute)) {
		t.Errorf("next attempt at %v, want the maximum age %v", st.NextAttemptAt, m.ReceivedAt.Add(3*time.Minute))
	}
	clk.set(m.ReceivedAt.Add(3 * time.Minute))
	f.runOnce(1)
	f.lastEvent(m, rx, trace.EventFailed, "maximum age of 3m0s", "452 4.2.2 Mailbox full")
}

func TestTransactionReplies(t *testing.T) {
	cases := []struct {
		name  string
		first script
		want  queue.RecipientState
		words []string
	}{
		{"MAIL 4xx", script{mail: func(string) *smtp.SMTPError { return reply(421, smtp.EnhancedCode{4, 7, 0}, "Too busy") }},
			queue.RecipientDeferred, []string{"421 4.7.0 Too busy"}},
		{"MAIL 5xx", script{mail: func(string) *smtp.SMTPError { return reply(550, smtp.EnhancedCode{5, 7, 1}, "Sender refused") }},
			queue.RecipientFailed, []string{"550 5.7.1 Sender refused"}},
		{"DATA 4xx", script{data: func([]string) *smtp.SMTPError {
			return reply(451, smtp.EnhancedCode{4, 3, 0}, "Queue file write error")
		}},
			queue.RecipientDeferred, []string{"451 4.3.0 Queue file write error"}},
		{"DATA 5xx", script{data: func([]string) *smtp.SMTPError { return reply(554, smtp.EnhancedCode{5, 6, 0}, "Content rejected") }},
			queue.RecipientFailed, []string{"554 5.6.0 Content rejected"}},
		// DATA goes out with MAIL and the RCPTs (pipelining): refused
		// after every recipient was, it must not carry the message.
		{"every RCPT 5xx", script{rcpt: func(string) *smtp.SMTPError { return reply(550, smtp.EnhancedCode{5, 1, 1}, "No such user") }},
			queue.RecipientFailed, []string{"550 5.1.1 No such user"}},
		{"every RCPT 4xx", script{rcpt: func(string) *smtp.SMTPError { return reply(451, smtp.EnhancedCode{4, 3, 0}, "Try later") }},
			queue.RecipientDeferred, []string{"451 4.3.0 Try later"}},
		{"drop at MAIL", script{drop: dropAtMail}, queue.RecipientDeferred, []string{"connection to the next hop lost", "nothing was sent"}},
		{"drop at RCPT", script{drop: dropAtRcpt}, queue.RecipientDeferred, []string{"connection to the next hop lost"}},
		{"drop after DATA", script{drop: dropAfterData}, queue.RecipientDeferred, []string{"connection to the next hop lost", "possible duplicate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, clk := newRelayFixture(t)
			s := startSink(t, sinkOptions{})
			f.smtpRoute(relayDomain, s)
			s.set(c.first)
			m := f.enqueue(rx, ry)
			f.runOnce(1)
			f.wantStates(m, map[string]queue.RecipientState{rx: c.want, ry: c.want})
			name := map[queue.RecipientState]string{queue.RecipientDeferred: trace.EventDeferred, queue.RecipientFailed: trace.EventFailed}[c.want]
			for _, r := range []string{rx, ry} {
				f.lastEvent(m, r, name, c.words...)
			}
			if len(s.transactions()) != 0 {
				t.Fatalf("the next hop accepted %+v", s.transactions())
			}
			// The next attempt, a minute on, succeeds for the deferred; the
			// failed are not tried again.
			s.set(script{})
			clk.advance(time.Minute)
			if c.want == queue.RecipientFailed {
				f.runOnce(0)
				if len(s.transactions()) != 0 {
					t.Errorf("failed recipients were tried again: %+v", s.transactions())
				}
				return
			}
			f.runOnce(1)
			f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDelivered})
			if got := s.transactions(); len(got) != 1 || !slices.Equal(got[0].accepted, []string{rx, ry}) {
				t.Errorf("transactions after the retry = %+v", got)
			}
			onlyOnce(t, s, rx, ry)
		})
	}
}

func TestLMTPRepliesPerRecipient(t *testing.T) {
	for _, unix := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "unix socket"}[unix], func(t *testing.T) {
			f, clk := newRelayFixture(t)
			s := startSink(t, sinkOptions{lmtp: true, unix: unix})
			target := s.addr
			if unix {
				target = "unix:" + s.addr
			}
			f.route(directory.Route{Domain: relayDomain, Type: directory.RouteLMTP, Target: target})
			s.set(script{lmtp: func(rcpt string) *smtp.SMTPError {
				switch rcpt {
				case ry:
					return reply(452, smtp.EnhancedCode{4, 2, 2}, "Quota exceeded")
				case rz:
					return reply(550, smtp.EnhancedCode{5, 1, 1}, "User unknown")
				}
				return nil
			}})
			m := f.enqueue(rx, ry, rz)
			f.runOnce(1)
			if got := s.transactions(); len(got) != 1 || !slices.Equal(got[0].accepted, []string{rx}) {
				t.Fatalf("LMTP transactions = %+v; want one, in which x alone was accepted", got)
			}
			f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDeferred, rz: queue.RecipientFailed})
			f.lastEvent(m, rx, trace.EventDelivered, "next hop lmtp "+target)
			f.lastEvent(m, ry, trace.EventDeferred, "452 4.2.2 <"+ry+"> Quota exceeded")
			f.lastEvent(m, rz, trace.EventFailed, "550 5.1.1 <"+rz+"> User unknown")

			s.set(script{})
			clk.advance(time.Minute)
			f.runOnce(1)
			f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDelivered, rz: queue.RecipientFailed})
			if got := s.transactions(); len(got) != 2 || !slices.Equal(got[1].accepted, []string{ry}) {
				t.Errorf("the retry carried %+v; want y alone", got)
			}
			onlyOnce(t, s, rx, ry, rz)
		})
	}
}

// TestLMTPDropAfterOneReply: the connection ends after the LMTP server
// answered the first recipient: that one is delivered, the rest are
// retried, and the first is not sent again.
func TestLMTPDropAfterOneReply(t *testing.T) {
	f, clk := newRelayFixture(t)
	s := startSink(t, sinkOptions{lmtp: true})
	f.route(directory.Route{Domain: relayDomain, Type: directory.RouteLMTP, Target: s.addr})
	s.set(script{drop: dropAfterFirstLMTP})
	m := f.enqueue(rx, ry, rz)
	f.runOnce(1)
	f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDeferred, rz: queue.RecipientDeferred})
	f.lastEvent(m, ry, trace.EventDeferred, "connection to the next hop lost", "possible duplicate")

	s.set(script{})
	clk.advance(time.Minute)
	f.runOnce(1)
	f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDelivered, rz: queue.RecipientDelivered})
	if s.rcpts(rx) != 1 {
		t.Errorf("x, answered 250 before the drop, was sent again (%d RCPTs)", s.rcpts(rx))
	}
	onlyOnce(t, s, rx, ry, rz)
}

func TestConnectionLimitAndReuse(t *testing.T) {
	f, _ := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s, func(r *directory.Route) { r.MaxConnections = 2 })
	// Each transaction takes a moment, so that the worker has many in
	// flight and must queue them for the two connections.
	s.set(script{dataDelay: 20 * time.Millisecond})
	const n = 12
	var msgs []*queue.Message
	for i := range n {
		msgs = append(msgs, f.enqueue(string(rune('a'+i))+"@"+relayDomain))
	}
	f.runOnce(n)
	if got := len(s.transactions()); got != n {
		t.Fatalf("%d transactions, want %d", got, n)
	}
	total, most := s.connStats()
	if most > 2 {
		t.Errorf("%d connections open at once, the route allows 2", most)
	}
	if total > 2 {
		t.Errorf("%d connections for %d messages; want the 2 reused", total, n)
	}
	if most < 2 {
		t.Errorf("at most %d connection open at once; want the limit of 2 used", most)
	}

	// The next pass reuses the idle connections.
	m := f.enqueue(rx)
	f.runOnce(1)
	if total2, _ := s.connStats(); total2 != total {
		t.Errorf("a later pass opened %d new connections; want the idle ones reused", total2-total)
	}
	f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered})
	for _, m := range msgs {
		if n := len(f.states(m)); n != 1 {
			t.Errorf("message %s has %d recipients", m.QueueID, n)
		}
	}
}

// TestStaleIdleConnectionIsReplaced: a next hop closed an idle connection;
// the next transaction fails on it before anything is sent and goes
// through a fresh connection, without a deferral.
func TestStaleIdleConnectionIsReplaced(t *testing.T) {
	f, _ := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s, func(r *directory.Route) { r.MaxConnections = 1 })
	f.enqueue(rx)
	f.runOnce(1)
	s.closeAll()
	m := f.enqueue(ry)
	f.runOnce(1)
	f.wantStates(m, map[string]queue.RecipientState{ry: queue.RecipientDelivered})
	if evs := f.eventsOf(m, ry); len(evs) != 1 || evs[0].Event != trace.EventDelivered {
		t.Errorf("events of the second message: %s", formatEvents(evs))
	}
	if total, _ := s.connStats(); total != 2 {
		t.Errorf("%d connections, want 2 (the stale one replaced)", total)
	}
}

func TestTLS(t *testing.T) {
	t.Run("required, next hop without STARTTLS", func(t *testing.T) {
		f, _ := newRelayFixture(t)
		s := startSink(t, sinkOptions{})
		f.smtpRoute(relayDomain, s, func(r *directory.Route) { r.TLS = directory.TLSRequired })
		m := f.enqueue(rx)
		f.runOnce(1)
		f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDeferred})
		f.lastEvent(m, rx, trace.EventDeferred, "offers no STARTTLS", "requires TLS", "nothing was sent")
		if s.rcpts(rx) != 0 {
			t.Error("a message was sent without TLS on a route that requires it")
		}
	})
	t.Run("required, certificate verified with the route's CA file", func(t *testing.T) {
		f, _ := newRelayFixture(t)
		s := startSink(t, sinkOptions{tls: true})
		f.smtpRoute(relayDomain, s, func(r *directory.Route) { r.TLS, r.CAFile = directory.TLSRequired, s.caFile })
		m := f.enqueue(rx)
		f.runOnce(1)
		f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered})
		if got := s.transactions(); len(got) != 1 || !got[0].tls {
			t.Errorf("transactions = %+v; want one over TLS", got)
		}
	})
	t.Run("required, certificate not trusted", func(t *testing.T) {
		f, _ := newRelayFixture(t)
		s := startSink(t, sinkOptions{tls: true})
		f.smtpRoute(relayDomain, s, func(r *directory.Route) { r.TLS = directory.TLSRequired })
		m := f.enqueue(rx)
		f.runOnce(1)
		f.lastEvent(m, rx, trace.EventDeferred, "STARTTLS failed", "certificate")
		if s.rcpts(rx) != 0 {
			t.Error("a message was sent to a next hop whose certificate did not verify")
		}
	})
	t.Run("opportunistic", func(t *testing.T) {
		f, _ := newRelayFixture(t)
		withTLS := startSink(t, sinkOptions{tls: true})
		plain := startSink(t, sinkOptions{})
		f.smtpRoute(relayDomain, withTLS, func(r *directory.Route) { r.TLS = directory.TLSOpportunistic })
		f.smtpRoute(domain, plain, func(r *directory.Route) { r.TLS = directory.TLSOpportunistic })
		m := f.enqueue(rx, aliceAddr)
		f.runOnce(1)
		f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, aliceAddr: queue.RecipientDelivered})
		if got := withTLS.transactions(); len(got) != 1 || !got[0].tls {
			t.Errorf("next hop with STARTTLS got %+v; want one transaction over TLS (self-signed: not verified)", got)
		}
		if got := plain.transactions(); len(got) != 1 || got[0].tls || !slices.Equal(got[0].accepted, []string{aliceAddr}) {
			t.Errorf("next hop without STARTTLS got %+v; want alice in plain text", got)
		}
		f.checkCopies(m) // alice's domain is relayed: no local copy
	})
}

func TestAuthToTheNextHop(t *testing.T) {
	t.Run("over TLS", func(t *testing.T) {
		f, _ := newRelayFixture(t)
		s := startSink(t, sinkOptions{tls: true, authUser: "hve-relay", authPass: "relay secret"})
		f.smtpRoute(relayDomain, s, func(r *directory.Route) {
			r.TLS, r.CAFile, r.AuthUser, r.AuthPassword = directory.TLSRequired, s.caFile, "hve-relay", "relay secret"
		})
		m := f.enqueue(rx)
		f.runOnce(1)
		f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered})
		if got := s.transactions(); len(got) != 1 || got[0].authUser != "hve-relay" || !got[0].tls {
			t.Errorf("transactions = %+v; want one signed in as hve-relay over TLS", got)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		f, _ := newRelayFixture(t)
		s := startSink(t, sinkOptions{tls: true, authUser: "hve-relay", authPass: "relay secret"})
		f.smtpRoute(relayDomain, s, func(r *directory.Route) {
			r.TLS, r.CAFile, r.AuthUser, r.AuthPassword = directory.TLSRequired, s.caFile, "hve-relay", "wrong"
		})
		m := f.enqueue(rx)
		f.runOnce(1)
		// A configuration problem, not the message's: retried, so the
		// admin can fix the route before the message expires.
		e := f.lastEvent(m, rx, trace.EventDeferred, "authentication as hve-relay failed", "535 5.7.8")
		if strings.Contains(e.Detail, "wrong") {
			t.Errorf("the password is in trace: %q", e.Detail)
		}
	})
	t.Run("loopback without TLS", func(t *testing.T) {
		f, _ := newRelayFixture(t)
		s := startSink(t, sinkOptions{authUser: "u", authPass: "p4ssword", insecureAuth: true})
		f.smtpRoute(relayDomain, s, func(r *directory.Route) { r.AuthUser, r.AuthPassword = "u", "p4ssword" })
		m := f.enqueue(rx)
		f.runOnce(1)
		f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered})
	})
}

func TestUnreachableNextHopIsDeferred(t *testing.T) {
	f, _ := newRelayFixture(t)
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	f.route(directory.Route{Domain: relayDomain, Type: directory.RouteSMTP, Target: addr, TLS: directory.TLSNone})
	m := f.enqueue(rx)
	f.runOnce(1)
	f.lastEvent(m, rx, trace.EventDeferred, "cannot connect to next hop smtp "+addr)
}

// TestGroupMembersRelayed: a group's members in a relayed domain go to the
// next hop in one transaction, each with a state of its own, so that a
// retry goes to the deferred member alone.
func TestGroupMembersRelayed(t *testing.T) {
	f, clk := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(domain, s)
	bob := addr("bob")
	s.set(script{rcpt: func(to string) *smtp.SMTPError {
		if to == bob {
			return reply(450, smtp.EnhancedCode{4, 2, 0}, "Mailbox unavailable")
		}
		return nil
	}})
	m := f.enqueue(teamAddr, aliceAlt)
	f.runOnce(1)
	if got := s.transactions(); len(got) != 1 || !slices.Equal(got[0].accepted, []string{aliceAddr}) {
		t.Fatalf("transactions = %+v; want alice once (the alias is the same person)", got)
	}
	st := f.states(m)
	if st[teamAddr].State != queue.RecipientExpanded || st[aliceAddr].Via != teamAddr || st[bob].Via != teamAddr ||
		st[bob].State != queue.RecipientDeferred || st[aliceAlt].State != queue.RecipientDelivered {
		t.Errorf("states = %+v", st)
	}
	f.lastEvent(m, teamAddr, trace.EventExpanded, "2 mailboxes")
	f.checkCopies(m) // relayed, not in the embedded store

	s.set(script{})
	clk.advance(time.Minute)
	f.runOnce(1)
	if got := s.transactions(); len(got) != 2 || !slices.Equal(got[1].accepted, []string{bob}) {
		t.Errorf("the retry carried %+v; want bob alone", got)
	}
	onlyOnce(t, s, aliceAddr, bob)
	if n := f.queueDepth(); n != 0 {
		t.Errorf("QueueDepth = %d, want 0", n)
	}
}

func TestDefaultRouteAndRouteChanges(t *testing.T) {
	f, _ := newRelayFixture(t)
	def := startSink(t, sinkOptions{})
	own := startSink(t, sinkOptions{})
	f.smtpRoute("*", def)
	m := f.enqueue(rx, aliceAddr)
	f.runOnce(1)
	if got := def.transactions(); len(got) != 1 || len(got[0].accepted) != 2 {
		t.Fatalf("the default route's next hop got %+v; want x and alice", got)
	}
	f.checkCopies(m)
	// A domain's own route wins over the default, and changes apply to the
	// next pass.
	f.smtpRoute(relayDomain, own)
	f.route(directory.Route{Domain: domain, Type: directory.RouteLocal})
	m = f.enqueue(rx, aliceAddr)
	f.runOnce(1)
	if got := own.transactions(); len(got) != 1 || !slices.Equal(got[0].accepted, []string{rx}) {
		t.Errorf("relay.test's own next hop got %+v", got)
	}
	f.checkCopies(m, aliceAddr)
}

// TestExternalRecipientsLeaveThroughTheSmarthost: in the external "limited"
// mode, recipients outside the accepted domains go to the tenant's outbound
// smarthost; with external sending off they fail with the fix named.
func TestExternalRecipientsLeaveThroughTheSmarthost(t *testing.T) {
	f, _ := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	const ext = "someone@example.org"
	m := f.enqueue(ext, aliceAddr)
	f.runOnce(1)
	f.lastEvent(m, ext, trace.EventFailed, "external sending is off", "--outbound-smarthost")
	if got := s.transactions(); len(got) != 0 {
		t.Fatalf("the smarthost got %+v with external sending off", got)
	}

	set := f.tenant.Settings
	set.ExternalSending, set.OutboundSmarthost = directory.ExternalLimited, s.addr
	if _, err := f.st.UpdateTenantSettings(context.Background(), f.tenant.ID, set); err != nil {
		t.Fatal(err)
	}
	m = f.enqueue(ext, aliceAddr)
	f.runOnce(1)
	got := s.transactions()
	if len(got) != 1 || !slices.Equal(got[0].accepted, []string{ext}) {
		t.Fatalf("the smarthost got %+v; want one transaction to %s", got, ext)
	}
	f.lastEvent(m, ext, trace.EventDelivered, "next hop smtp "+s.addr)
	f.checkCopies(m, aliceAddr)
}
