package delivery_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/delivery"
	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
)

// The directory every test starts with. The default tenant owns
// contoso.test (authoritative), relay.test (internal-relay) and old.test
// (authoritative, removed by the test that needs it); another tenant owns
// fabrikam.test.
const (
	domain      = "contoso.test"
	relayDomain = "relay.test"
	oldDomain   = "old.test"
	otherDomain = "fabrikam.test"

	sender    = "app@contoso.test" // the HVE account messages come from
	aliceAddr = "alice@contoso.test"
	aliceAlt  = "al@contoso.test" // an alias of alice
	teamAddr  = "team@contoso.test"
	erinAddr  = "erin@fabrikam.test" // a mailbox of the other tenant
)

var people = []string{"alice", "bob", "carol", "dave", "eve"}

func addr(name string) string { return name + "@" + domain }

type fixture struct {
	t       *testing.T
	st      *sqlite.Store
	dataDir string
	w       *delivery.Worker
	tenant  directory.Tenant
	other   directory.Tenant
	// mailboxes maps every mailbox address (both tenants) to its id.
	mailboxes map[string]int64
	account   directory.Account
}

// newFixture opens a store in a fresh directory, seeds it and returns a
// worker on it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dataDir := t.TempDir()
	st, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, dataDir: dataDir, mailboxes: map[string]int64{}}
	f.w = delivery.NewWorker(st, "test-worker", slog.New(slog.NewTextHandler(t.Output(), nil)))

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seeding: %v", err)
		}
	}
	f.tenant, err = st.CreateTenant(ctx, directory.DefaultTenant)
	must(err)
	tid := f.tenant.ID
	for _, d := range []directory.Domain{
		{TenantID: tid, Name: domain, Type: directory.Authoritative},
		{TenantID: tid, Name: relayDomain, Type: directory.InternalRelay},
		{TenantID: tid, Name: oldDomain, Type: directory.Authoritative},
	} {
		_, err := st.AddDomain(ctx, d)
		must(err)
	}
	for _, p := range people {
		mb := directory.Mailbox{TenantID: tid, Name: p, DisplayName: strings.ToUpper(p[:1]) + p[1:], Address: addr(p)}
		if p == "alice" {
			mb.Aliases = []string{aliceAlt}
		}
		mb, err := st.CreateMailbox(ctx, mb)
		must(err)
		f.mailboxes[mb.Address] = mb.ID
	}
	f.account, err = st.CreateAccount(ctx, directory.Account{TenantID: tid, Name: "app", DisplayName: "App", Address: sender, Enabled: true, PasswordHash: "x"})
	must(err)
	f.group(teamAddr, addr("alice"), addr("bob"))

	f.other, err = st.CreateTenant(ctx, "fabrikam")
	must(err)
	_, err = st.AddDomain(ctx, directory.Domain{TenantID: f.other.ID, Name: otherDomain, Type: directory.Authoritative})
	must(err)
	erin, err := st.CreateMailbox(ctx, directory.Mailbox{TenantID: f.other.ID, Name: "erin", DisplayName: "Erin", Address: erinAddr})
	must(err)
	f.mailboxes[erin.Address] = erin.ID
	return f
}

// group creates a group of the default tenant with the given members.
func (f *fixture) group(address string, members ...string) directory.Group {
	f.t.Helper()
	g, err := f.st.CreateGroup(context.Background(), directory.Group{TenantID: f.tenant.ID, Name: address, Address: address})
	if err != nil {
		f.t.Fatalf("creating group %s: %v", address, err)
	}
	for _, m := range members {
		f.addMember(g, m)
	}
	return g
}

func (f *fixture) addMember(g directory.Group, member string) {
	f.t.Helper()
	if err := f.st.AddGroupMember(context.Background(), f.tenant.ID, g.ID, member); err != nil {
		f.t.Fatalf("adding %s to %s: %v", member, g.Address, err)
	}
}

var seq atomic.Int64

// enqueue queues a message of the default tenant to rcpts, as submission
// would, and returns it.
func (f *fixture) enqueue(rcpts ...string) *queue.Message {
	f.t.Helper()
	m, events := f.message(rcpts...)
	if err := f.st.Enqueue(context.Background(), []*queue.Message{m}, events); err != nil {
		f.t.Fatalf("Enqueue: %v", err)
	}
	return m
}

// message makes a message of the default tenant to rcpts and its Received
// events, as submission would, without queueing it.
func (f *fixture) message(rcpts ...string) (*queue.Message, []trace.Event) {
	now := f.w.Now()
	n := seq.Add(1)
	body := fmt.Sprintf("From: %s\r\nSubject: test %d\r\n\r\nhello\r\n", sender, n)
	m := &queue.Message{
		QueueID: queue.NewID(now), TenantID: f.tenant.ID, AccountID: f.account.ID, Sender: sender, Recipients: rcpts,
		MessageID: fmt.Sprintf("<%d.%d@client.test>", now.UnixNano(), n), Subject: fmt.Sprintf("test %d", n), ClientIP: "192.0.2.7",
		Size: int64(len(body)), ReceivedAt: now.Add(-time.Second), Body: []byte(body),
	}
	var events []trace.Event
	for _, r := range rcpts {
		events = append(events, trace.Event{TenantID: m.TenantID, Time: now, QueueID: m.QueueID, MessageID: m.MessageID, Sender: m.Sender,
			Recipient: r, Event: trace.EventReceived, Status: trace.StatusPending, Detail: "queued", ClientIP: m.ClientIP, Subject: m.Subject, Size: m.Size})
	}
	return m, events
}

// runOnce runs one delivery pass, which must succeed and handle want messages.
func (f *fixture) runOnce(want int) {
	f.t.Helper()
	n, err := f.w.RunOnce(context.Background())
	if err != nil || n != want {
		f.t.Fatalf("RunOnce = %d, %v; want %d, nil", n, err, want)
	}
}

// copies returns the copies of the message with queueID in the mailbox
// with address mailbox.
func (f *fixture) copies(mailbox, queueID string) []store.MailboxMessage {
	f.t.Helper()
	id, ok := f.mailboxes[mailbox]
	if !ok {
		f.t.Fatalf("no mailbox %s in the fixture", mailbox)
	}
	list, err := f.st.MailboxMessages(context.Background(), id)
	if err != nil {
		f.t.Fatalf("MailboxMessages(%s): %v", mailbox, err)
	}
	var out []store.MailboxMessage
	for _, m := range list {
		if m.QueueID == queueID {
			out = append(out, m)
		}
	}
	return out
}

// checkCopies checks that each mailbox in want holds exactly one copy of
// m, for its own address, and that every other mailbox holds none.
func (f *fixture) checkCopies(m *queue.Message, want ...string) {
	f.t.Helper()
	for mb := range f.mailboxes {
		copies := f.copies(mb, m.QueueID)
		n := 0
		if slices.Contains(want, mb) {
			n = 1
		}
		if len(copies) != n {
			f.t.Errorf("%s holds %d copies of %s, want %d: %+v", mb, len(copies), m.QueueID, n, copies)
			continue
		}
		for _, c := range copies {
			if c.Recipient != mb || c.From != sender || c.Subject != m.Subject || c.MessageID != m.MessageID ||
				c.Size != m.Size || !slices.Equal(c.To, m.Recipients) || c.ReceivedAt.IsZero() {
				f.t.Errorf("copy in %s is %+v; want recipient %s, from %s, subject %q, message id %s, size %d, to %v and a time",
					mb, c, mb, sender, m.Subject, m.MessageID, m.Size, m.Recipients)
			}
		}
	}
}

// events returns the delivery events (everything but Received) of m, and
// checks that each carries the message's facts.
func (f *fixture) events(m *queue.Message) []trace.Event {
	f.t.Helper()
	all, err := f.st.SearchTrace(context.Background(), trace.Query{TenantID: m.TenantID, QueueID: m.QueueID})
	if err != nil {
		f.t.Fatalf("SearchTrace: %v", err)
	}
	var out []trace.Event
	for _, e := range all {
		if e.Event == trace.EventReceived {
			continue
		}
		if e.MessageID != m.MessageID || e.Sender != m.Sender || e.Subject != m.Subject || e.Size != m.Size ||
			e.ClientIP != m.ClientIP || e.Time.IsZero() || e.Detail == "" {
			f.t.Errorf("event %s of %s lacks the message's facts: %+v", e.Event, m.QueueID, e)
		}
		wantStatus := map[string]string{trace.EventDelivered: trace.StatusDelivered, trace.EventExpanded: trace.StatusExpanded,
			trace.EventFailed: trace.StatusFailed, trace.EventDeferred: trace.StatusPending}[e.Event]
		if e.Status != wantStatus {
			f.t.Errorf("event %s for %s has status %q, want %q", e.Event, e.Recipient, e.Status, wantStatus)
		}
		out = append(out, e)
	}
	return out
}

// byEvent returns the events named name, sorted by recipient.
func byEvent(evs []trace.Event, name string) []trace.Event {
	var out []trace.Event
	for _, e := range evs {
		if e.Event == name {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b trace.Event) int { return strings.Compare(a.Recipient, b.Recipient) })
	return out
}

func recipients(evs []trace.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Recipient)
	}
	return out
}

func formatEvents(evs []trace.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %s rcpt=%s: %s", e.Event, e.Status, e.Recipient, e.Detail)
	}
	return b.String()
}

// checkDelivered checks that the events of m are exactly one Delivered
// event for each of want, plus the Expanded events for the given groups.
func (f *fixture) checkDelivered(m *queue.Message, groups []string, want ...string) []trace.Event {
	f.t.Helper()
	evs := f.events(m)
	w := slices.Sorted(slices.Values(want))
	if got := recipients(byEvent(evs, trace.EventDelivered)); !slices.Equal(got, w) {
		f.t.Errorf("Delivered events of %s are for %v, want one each for %v; events:%s", m.QueueID, got, w, formatEvents(evs))
	}
	g := slices.Sorted(slices.Values(groups))
	if got := recipients(byEvent(evs, trace.EventExpanded)); !slices.Equal(got, g) {
		f.t.Errorf("Expanded events of %s are for %v, want one each for %v; events:%s", m.QueueID, got, g, formatEvents(evs))
	}
	if n := len(evs) - len(want) - len(groups); n != 0 {
		f.t.Errorf("%s has %d unexpected events:%s", m.QueueID, n, formatEvents(evs))
	}
	f.checkCopies(m, want...)
	return evs
}

func (f *fixture) queueDepth() int {
	f.t.Helper()
	n, err := f.st.QueueDepth(context.Background())
	if err != nil {
		f.t.Fatalf("QueueDepth: %v", err)
	}
	return n
}

func TestMailboxRecipientGetsOneCopy(t *testing.T) {
	f := newFixture(t)
	m := f.enqueue(aliceAddr)
	f.runOnce(1)
	evs := f.checkDelivered(m, nil, aliceAddr)
	for _, e := range byEvent(evs, trace.EventDelivered) {
		if !strings.Contains(e.Detail, "mailbox "+aliceAddr) || strings.Contains(e.Detail, "member of") {
			t.Errorf("Delivered detail %q; want it to name mailbox %s and no group", e.Detail, aliceAddr)
		}
	}
}

func TestNestedGroupsWithLoopReachEveryPersonOnce(t *testing.T) {
	f := newFixture(t)
	// Three deep with a loop: A contains B, B contains A and C.
	ga := f.group("group-a@" + domain)
	gb := f.group("group-b@"+domain, ga.Address)
	gc := f.group("group-c@"+domain, addr("carol"), addr("dave"), addr("alice"))
	f.addMember(ga, gb.Address)
	f.addMember(ga, addr("alice"))
	f.addMember(gb, gc.Address)
	f.addMember(gb, addr("bob"))
	reached := []string{addr("alice"), addr("bob"), addr("carol"), addr("dave")}

	t.Run("outer group", func(t *testing.T) {
		f := *f
		f.t = t
		m := f.enqueue(ga.Address)
		f.runOnce(1)
		evs := f.checkDelivered(m, []string{ga.Address}, reached...)
		exp := byEvent(evs, trace.EventExpanded)
		if len(exp) != 1 {
			return
		}
		d := exp[0].Detail
		if !strings.Contains(d, "4 mailboxes") || !strings.Contains(d, gb.Address) || !strings.Contains(d, gc.Address) || strings.Contains(d, ga.Address) {
			t.Errorf("Expanded detail %q; want the count 4 and the nested groups %s and %s (not %s itself)", d, gb.Address, gc.Address, ga.Address)
		}
		for _, e := range byEvent(evs, trace.EventDelivered) {
			if !strings.Contains(e.Detail, e.Recipient) || !strings.Contains(e.Detail, "member of "+ga.Address) {
				t.Errorf("Delivered detail %q; want it to name %s and the envelope group %s", e.Detail, e.Recipient, ga.Address)
			}
		}
	})
	t.Run("a group in the loop", func(t *testing.T) {
		f := *f
		f.t = t
		m := f.enqueue(gb.Address)
		f.runOnce(1)
		evs := f.checkDelivered(m, []string{gb.Address}, reached...)
		if exp := byEvent(evs, trace.EventExpanded); len(exp) == 1 {
			if d := exp[0].Detail; !strings.Contains(d, "4 mailboxes") || !strings.Contains(d, ga.Address) || !strings.Contains(d, gc.Address) {
				t.Errorf("Expanded detail %q; want the count 4 and the nested groups %s and %s", d, ga.Address, gc.Address)
			}
		}
	})
	t.Run("several groups of the loop in one envelope", func(t *testing.T) {
		f := *f
		f.t = t
		// One Expanded event per envelope group; each person still once.
		m := f.enqueue(ga.Address, gc.Address, gb.Address)
		f.runOnce(1)
		f.checkDelivered(m, []string{ga.Address, gb.Address, gc.Address}, reached...)
	})
	t.Run("innermost group", func(t *testing.T) {
		f := *f
		f.t = t
		m := f.enqueue(gc.Address)
		f.runOnce(1)
		evs := f.checkDelivered(m, []string{gc.Address}, addr("alice"), addr("carol"), addr("dave"))
		if exp := byEvent(evs, trace.EventExpanded); len(exp) == 1 {
			if d := exp[0].Detail; !strings.Contains(d, "3 mailboxes") || strings.Contains(d, "nested") {
				t.Errorf("Expanded detail %q; want the count 3 and no nested groups", d)
			}
		}
	})
}

func TestDirectRecipientAndGroupMemberGetsOneCopy(t *testing.T) {
	for _, envelope := range [][]string{{aliceAddr, teamAddr}, {teamAddr, aliceAddr}, {aliceAlt, teamAddr, aliceAddr}} {
		t.Run(strings.Join(envelope, ","), func(t *testing.T) {
			f := newFixture(t)
			m := f.enqueue(envelope...)
			f.runOnce(1)
			f.checkDelivered(m, []string{teamAddr}, aliceAddr, addr("bob"))
		})
	}
}

func TestAliasDeliversToItsMailbox(t *testing.T) {
	f := newFixture(t)
	m := f.enqueue(aliceAlt)
	f.runOnce(1)
	evs := f.checkDelivered(m, nil, aliceAddr)
	for _, e := range byEvent(evs, trace.EventDelivered) {
		if !strings.Contains(e.Detail, aliceAddr) {
			t.Errorf("Delivered detail %q; want it to name mailbox %s", e.Detail, aliceAddr)
		}
	}
}

func TestRecipientsWithoutMailboxFail(t *testing.T) {
	cases := []struct {
		name string
		rcpt string
		// setup runs before the message is queued; what it returns runs
		// after, before delivery.
		setup func(f *fixture) (afterEnqueue func())
		words []string // the Failed event's detail holds each
	}{
		{name: "HVE account", rcpt: sender, words: []string{"HVE account", "cannot receive"}},
		{name: "unknown in authoritative domain", rcpt: "nobody@" + domain, words: []string{"no longer exists"}},
		{name: "unknown in internal-relay domain", rcpt: "someone@" + relayDomain, words: []string{"next hop", relayDomain, "internal-relay"}},
		{name: "domain removed", rcpt: "gone@" + oldDomain, words: []string{"domain", "no longer an accepted domain"},
			setup: func(f *fixture) func() {
				ctx := context.Background()
				mb, err := f.st.CreateMailbox(ctx, directory.Mailbox{TenantID: f.tenant.ID, Name: "gone", DisplayName: "Gone", Address: "gone@" + oldDomain})
				if err != nil {
					f.t.Fatal(err)
				}
				return func() {
					if err := f.st.RemoveMailbox(ctx, f.tenant.ID, mb.ID); err != nil {
						f.t.Fatal(err)
					}
					if err := f.st.RemoveDomain(ctx, f.tenant.ID, oldDomain); err != nil {
						f.t.Fatal(err)
					}
				}
			}},
		{name: "mailbox of another tenant", rcpt: erinAddr, words: []string{"no longer an accepted domain"}},
		{name: "group removed", rcpt: "gone-group@" + domain, words: []string{"no longer exists"},
			setup: func(f *fixture) func() {
				g := f.group("gone-group@"+domain, addr("bob"))
				return func() {
					if err := f.st.RemoveGroup(context.Background(), f.tenant.ID, g.ID); err != nil {
						f.t.Fatal(err)
					}
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			after := func() {}
			if c.setup != nil {
				after = c.setup(f)
			}
			// alice is in the envelope too: one failed recipient does not
			// hold the others up.
			m := f.enqueue(c.rcpt, aliceAddr)
			after()
			f.runOnce(1)
			evs := f.events(m)
			failed := byEvent(evs, trace.EventFailed)
			if len(failed) != 1 || failed[0].Recipient != c.rcpt {
				t.Fatalf("want one Failed event for %s; events:%s", c.rcpt, formatEvents(evs))
			}
			for _, w := range c.words {
				if !strings.Contains(failed[0].Detail, w) {
					t.Errorf("Failed detail %q; want it to contain %q", failed[0].Detail, w)
				}
			}
			if got := recipients(byEvent(evs, trace.EventDelivered)); !slices.Equal(got, []string{aliceAddr}) {
				t.Errorf("Delivered events for %v, want %s only; events:%s", got, aliceAddr, formatEvents(evs))
			}
			f.checkCopies(m, aliceAddr)
			if n := f.queueDepth(); n != 0 {
				t.Errorf("QueueDepth = %d after delivery, want 0: a failed recipient finishes the message", n)
			}
		})
	}
}

func TestDeliveredMessageIsFinished(t *testing.T) {
	f := newFixture(t)
	m := f.enqueue(aliceAddr, teamAddr)
	if n := f.queueDepth(); n != 1 {
		t.Fatalf("QueueDepth = %d after enqueueing, want 1", n)
	}
	f.runOnce(1)
	if n := f.queueDepth(); n != 0 {
		t.Errorf("QueueDepth = %d after delivery, want 0", n)
	}
	// Not claimable again, not even once any lease would have run out.
	got, err := f.st.Claim(context.Background(), "another-worker", time.Now().Add(24*time.Hour), 100, time.Minute)
	if err != nil || len(got) != 0 {
		t.Errorf("Claim a day later = %d messages, %v; want none: %+v", len(got), err, got)
	}
	f.runOnce(0)
	f.checkDelivered(m, []string{teamAddr}, aliceAddr, addr("bob"))
}

func TestRunOnceDeliversNothingTwice(t *testing.T) {
	f := newFixture(t)
	m1 := f.enqueue(aliceAddr)
	m2 := f.enqueue(teamAddr, addr("carol"))
	f.runOnce(2)
	f.runOnce(0)
	m3 := f.enqueue(addr("dave"), aliceAddr)
	f.runOnce(1)
	f.runOnce(0)
	f.checkDelivered(m1, nil, aliceAddr)
	f.checkDelivered(m2, []string{teamAddr}, aliceAddr, addr("bob"), addr("carol"))
	f.checkDelivered(m3, nil, aliceAddr, addr("dave"))
	list, err := f.st.MailboxMessages(context.Background(), f.mailboxes[aliceAddr])
	if err != nil || len(list) != 3 {
		t.Errorf("alice holds %d messages (%v), want 3: %+v", len(list), err, list)
	}
}

func TestSmallBatchesDeliverEverything(t *testing.T) {
	f := newFixture(t)
	f.w.BatchSize = 2
	var msgs []*queue.Message
	for i := range 5 {
		msgs = append(msgs, f.enqueue(addr(people[i])))
	}
	f.runOnce(2)
	f.runOnce(2)
	f.runOnce(1)
	f.runOnce(0)
	for i, m := range msgs {
		f.checkDelivered(m, nil, addr(people[i]))
	}
}

func TestDirectoryChangesBetweenEnqueueAndDelivery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	inner := f.group("inner@"+domain, addr("dave"), addr("eve"))
	g := f.group("staff@"+domain, aliceAddr, addr("bob"), addr("carol"), inner.Address)
	m := f.enqueue(g.Address)

	// bob leaves the group, carol's mailbox is removed, and the nested
	// group is removed, all after the message was queued.
	if err := f.st.RemoveGroupMember(ctx, f.tenant.ID, g.ID, addr("bob")); err != nil {
		t.Fatal(err)
	}
	if err := f.st.RemoveMailbox(ctx, f.tenant.ID, f.mailboxes[addr("carol")]); err != nil {
		t.Fatal(err)
	}
	delete(f.mailboxes, addr("carol"))
	if err := f.st.RemoveGroup(ctx, f.tenant.ID, inner.ID); err != nil {
		t.Fatal(err)
	}
	f.runOnce(1)
	evs := f.checkDelivered(m, []string{g.Address}, aliceAddr)
	if exp := byEvent(evs, trace.EventExpanded); len(exp) == 1 && !strings.Contains(exp[0].Detail, "1 mailbox") {
		t.Errorf("Expanded detail %q; want the count 1 (the group as it is at delivery)", exp[0].Detail)
	}
}

func TestWakeNeverBlocks(t *testing.T) {
	f := newFixture(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10000 {
			f.w.Wake()
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Wake blocked: 10000 calls with no Run did not return within 10s")
	}
}

// claimSignal is the store with a signal on every Claim, so that a test
// knows when Run has made a pass.
type claimSignal struct {
	*sqlite.Store
	claims chan struct{}
}

func (c claimSignal) Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error) {
	msgs, err := c.Store.Claim(ctx, owner, now, limit, lease)
	select {
	case c.claims <- struct{}{}:
	default:
	}
	return msgs, err
}

func TestRunDeliversWhenWokenAndStopsWithContext(t *testing.T) {
	f := newFixture(t)
	cs := claimSignal{Store: f.st, claims: make(chan struct{}, 1)}
	w := delivery.NewWorker(cs, "run-worker", slog.New(slog.NewTextHandler(t.Output(), nil)))
	w.Poll = time.Hour // only Wake can start a second pass

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		w.Run(ctx)
	}()
	defer func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its context ending")
		}
	}()
	select {
	case <-cs.claims: // the first pass, on an empty queue
	case <-time.After(10 * time.Second):
		t.Fatal("Run made no first pass within 10s")
	}

	m := f.enqueue(aliceAddr)
	w.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for f.queueDepth() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a woken Run did not deliver within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.checkDelivered(m, nil, aliceAddr)
}
