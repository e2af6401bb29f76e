package storetest

// Contract tests of queue control: listing a tenant's queue with filters
// and paging, and hold, release, retry and delete with their trace events.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

var queueControlTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"QueueItems", testQueueItems},
	{"QueueHoldRelease", testQueueHoldRelease},
	{"QueueRetry", testQueueRetry},
	{"QueueRetryAllLarge", testQueueRetryAllLarge},
	{"QueueDelete", testQueueDelete},
	{"QueueControlErrors", testQueueControlErrors},
}

// queueFixture is a tenant "a" (a.example, b.example) with an account,
// and tenant "b" with one queued message of its own.
type queueFixture struct {
	s      store.Store
	a, b   int64
	accA   int64
	t0     time.Time
	otherB *queue.Message
}

func newQueueFixture(t *testing.T, s store.Store) *queueFixture {
	t.Helper()
	a := newTenant(t, s, "a", "a.example", "b.example")
	b := newTenant(t, s, "b", "other.example")
	f := &queueFixture{s: s, a: a.ID, b: b.ID, accA: newAccount(t, s, a.ID, "app@a.example").ID, t0: baseTime()}
	accB := newAccount(t, s, b.ID, "app@other.example")
	f.otherB = newMessage(b.ID, accB.ID, 99, f.t0)
	f.otherB.Recipients = []string{"zed@other.example"}
	check(t, s.Enqueue(t.Context(), []*queue.Message{f.otherB}, nil))
	return f
}

// enqueue queues a message of tenant a to rcpts, received at t0 plus i
// milliseconds (queue ids sort in the order of i).
func (f *queueFixture) enqueue(t *testing.T, i int, rcpts ...string) *queue.Message {
	t.Helper()
	m := newMessage(f.a, f.accA, i, f.t0.Add(time.Duration(i)*time.Millisecond))
	m.Recipients = rcpts
	check(t, f.s.Enqueue(t.Context(), []*queue.Message{m}, nil))
	return m
}

func (f *queueFixture) items(t *testing.T, q store.QueueQuery) []store.QueueItem {
	t.Helper()
	if q.TenantID == 0 {
		q.TenantID = f.a
	}
	return must(t, of(f.s.QueueItems(t.Context(), q)))
}

func itemIDs(list []store.QueueItem) []string {
	out := []string{}
	for _, it := range list {
		out = append(out, it.QueueID)
	}
	return out
}

// control applies an action to one message of tenant a as admin "ops".
func (f *queueFixture) control(t *testing.T, action store.QueueAction, queueID string, at time.Time) error {
	t.Helper()
	_, err := f.s.ControlQueue(t.Context(), store.QueueControl{TenantID: f.a, QueueID: queueID, Action: action, Actor: "ops", Now: at})
	return err
}

// deferRcpt claims m at `at` and records rcpt deferred until next; m's
// other open recipients keep their state.
func deferRcpt(t *testing.T, s store.Store, m *queue.Message, at time.Time, rcpt string, next time.Time) {
	t.Helper()
	got := must(t, of(s.Claim(t.Context(), "w", at, 100, time.Minute)))
	if !slices.Contains(queueIDs(got), m.QueueID) {
		t.Fatalf("Claim at %v = %v; want %s among them", at, queueIDs(got), m.QueueID)
	}
	var ds []store.Delivery
	for _, c := range got {
		d := store.Delivery{QueueID: c.QueueID}
		if c.QueueID == m.QueueID {
			d.Recipients = []queue.Recipient{{Address: rcpt, State: queue.RecipientDeferred, Attempts: 1, NextAttemptAt: next,
				LastReply: "451 4.3.0 try later", UpdatedAt: at}}
		}
		ds = append(ds, d)
	}
	check(t, s.Finish(t.Context(), ds))
}

// controlEvents returns the trace events of a message named name.
func controlEvents(t *testing.T, s store.Store, tenantID int64, queueID, name string) []trace.Event {
	t.Helper()
	var out []trace.Event
	for _, e := range must(t, of(s.SearchTrace(t.Context(), trace.Query{TenantID: tenantID, QueueID: queueID}))) {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

// testQueueItems: the list shows each queued message of the tenant with
// its status, open recipients, last reply and next attempt; filters and
// the cursor select.
func testQueueItems(t *testing.T, s store.Store) {
	f := newQueueFixture(t, s)
	m1 := f.enqueue(t, 1, "alice@a.example", "x@b.example")
	m2 := f.enqueue(t, 2, "bob@a.example")
	m3 := f.enqueue(t, 3, "carol@a.example")
	now := f.t0.Add(time.Minute)

	all := f.items(t, store.QueueQuery{Now: now})
	if !slices.Equal(itemIDs(all), []string{m1.QueueID, m2.QueueID, m3.QueueID}) {
		t.Fatalf("QueueItems = %v, want tenant a's three messages by queue id", itemIDs(all))
	}
	if it := all[0]; it.Status != store.QueuePending || len(it.Recipients) != 2 || it.Sender != m1.Sender || it.Subject != m1.Subject ||
		it.MessageID != m1.MessageID || it.Size != m1.Size || !it.ReceivedAt.Equal(m1.ReceivedAt) || it.Attempts != 0 || it.LastReply != "" {
		t.Errorf("new queued message = %+v", it)
	}
	if got := itemIDs(f.items(t, store.QueueQuery{TenantID: f.b, Now: now})); !slices.Equal(got, []string{f.otherB.QueueID}) {
		t.Errorf("tenant b's queue = %v, want only its own message", got)
	}
	// Paging by queue id.
	page := f.items(t, store.QueueQuery{Now: now, Limit: 2})
	if !slices.Equal(itemIDs(page), []string{m1.QueueID, m2.QueueID}) {
		t.Errorf("first page = %v", itemIDs(page))
	}
	if got := itemIDs(f.items(t, store.QueueQuery{Now: now, Limit: 2, After: m2.QueueID})); !slices.Equal(got, []string{m3.QueueID}) {
		t.Errorf("second page = %v, want m3", got)
	}

	// m1: alice delivered, x deferred; m2: nothing changed; m3 stays leased.
	got := must(t, of(s.Claim(t.Context(), "w", now, 10, time.Minute)))
	if len(got) != 4 {
		t.Fatalf("Claim = %v, want all four messages", queueIDs(got))
	}
	next := now.Add(10 * time.Minute)
	check(t, s.Finish(t.Context(), []store.Delivery{
		{QueueID: m1.QueueID, Recipients: []queue.Recipient{
			{Address: "alice@a.example", State: queue.RecipientDelivered, Attempts: 1, NextAttemptAt: now, LastReply: "250 ok", UpdatedAt: now},
			{Address: "x@b.example", State: queue.RecipientDeferred, Attempts: 1, NextAttemptAt: next, LastReply: "451 4.3.0 try later", UpdatedAt: now},
		}},
		{QueueID: m2.QueueID},
		{QueueID: f.otherB.QueueID},
	}))
	all = f.items(t, store.QueueQuery{Now: now})
	want := map[string]store.QueueStatus{m1.QueueID: store.QueueDeferred, m2.QueueID: store.QueuePending, m3.QueueID: store.QueueActive}
	for _, it := range all {
		if it.Status != want[it.QueueID] {
			t.Errorf("status of %s = %s, want %s", it.QueueID, it.Status, want[it.QueueID])
		}
	}
	if it := all[0]; len(it.Recipients) != 1 || it.Recipients[0].Address != "x@b.example" || it.Attempts != 1 ||
		it.LastReply != "451 4.3.0 try later" || !it.NextAttemptAt.Equal(next) {
		t.Errorf("deferred message = %+v; want its one open recipient, its attempt, reply and next attempt", it)
	}
	for status, ids := range map[store.QueueStatus][]string{
		store.QueueDeferred: {m1.QueueID}, store.QueuePending: {m2.QueueID}, store.QueueActive: {m3.QueueID}, store.QueueHeld: {},
	} {
		if got := itemIDs(f.items(t, store.QueueQuery{Now: now, Status: status})); !slices.Equal(got, ids) {
			t.Errorf("status %s: %v, want %v", status, got, ids)
		}
	}
	// A lease that ran out is no longer active.
	if got := itemIDs(f.items(t, store.QueueQuery{Now: now.Add(2 * time.Minute), Status: store.QueueActive})); len(got) != 0 {
		t.Errorf("active after the lease ran out: %v", got)
	}
	// The domain filter looks at open recipients only: m1's alice is
	// delivered.
	if got := itemIDs(f.items(t, store.QueueQuery{Now: now, Domain: "B.example"})); !slices.Equal(got, []string{m1.QueueID}) {
		t.Errorf("domain b.example: %v, want m1", got)
	}
	if got := itemIDs(f.items(t, store.QueueQuery{Now: now, Domain: "a.example"})); !slices.Equal(got, []string{m2.QueueID, m3.QueueID}) {
		t.Errorf("domain a.example: %v, want m2 and m3", got)
	}
	// Naming a message shows all its recipients.
	one := f.items(t, store.QueueQuery{Now: now, QueueID: m1.QueueID})
	if len(one) != 1 || len(one[0].Recipients) != 2 || one[0].Recipients[0].State != queue.RecipientDelivered {
		t.Errorf("QueueItems of m1 = %+v; want both recipients", one)
	}
	if got := f.items(t, store.QueueQuery{Now: now, QueueID: f.otherB.QueueID}); len(got) != 0 {
		t.Errorf("tenant a sees tenant b's message: %+v", got)
	}
	_, err := s.QueueItems(t.Context(), store.QueueQuery{TenantID: f.a, Status: "stuck"})
	wantErr(t, err, store.ErrInvalid, "QueueItems with an unknown status")
}

// testQueueHoldRelease: a held message is never claimed, however due;
// releasing it makes it due at once. Both are in trace with the admin.
func testQueueHoldRelease(t *testing.T, s store.Store) {
	f := newQueueFixture(t, s)
	m := f.enqueue(t, 1, "alice@a.example", "bob@a.example")
	now := f.t0.Add(time.Minute)
	check(t, f.control(t, store.QueueHold, m.QueueID, now))
	it := f.items(t, store.QueueQuery{Now: now, QueueID: m.QueueID})
	if len(it) != 1 || it[0].Status != store.QueueHeld || it[0].HeldBy != "ops" {
		t.Fatalf("held message = %+v; want held by ops", it)
	}
	if got := itemIDs(f.items(t, store.QueueQuery{Now: now, Status: store.QueueHeld})); !slices.Equal(got, []string{m.QueueID}) {
		t.Errorf("status held: %v", got)
	}
	wantErr(t, f.control(t, store.QueueHold, m.QueueID, now), store.ErrInvalid, "holding a held message")
	wantErr(t, f.control(t, store.QueueRetry, m.QueueID, now), store.ErrInvalid, "retrying a held message")
	for _, at := range []time.Time{now, now.Add(time.Hour), now.Add(72 * time.Hour)} {
		if got := must(t, of(s.Claim(t.Context(), "w", at, 10, time.Minute))); slices.Contains(queueIDs(got), m.QueueID) {
			t.Fatalf("Claim at %v took the held message", at)
		}
	}
	if n := must(t, of(s.QueueDepth(t.Context()))); n != 2 {
		t.Errorf("QueueDepth = %d; a held message is still queued (and tenant b's)", n)
	}
	held := controlEvents(t, s, f.a, m.QueueID, trace.EventHeld)
	if len(held) != 2 || held[0].Status != trace.StatusPending || !strings.Contains(held[0].Detail, "ops") || !held[0].Time.Equal(now) ||
		held[0].Subject != m.Subject || held[0].MessageID != m.MessageID {
		t.Errorf("Held events = %+v; want one per open recipient, Pending, naming the admin", held)
	}

	// A held message whose recipient was deferred far ahead: release makes
	// it due at once.
	later := now.Add(time.Hour)
	check(t, f.control(t, store.QueueRelease, m.QueueID, later))
	wantErr(t, f.control(t, store.QueueRelease, m.QueueID, later), store.ErrInvalid, "releasing a message not held")
	got := must(t, of(s.Claim(t.Context(), "w", later, 10, time.Minute)))
	if !slices.Contains(queueIDs(got), m.QueueID) {
		t.Fatalf("Claim at the release = %v; want the released message", queueIDs(got))
	}
	// Held while deferred, then released: due at the release, not at the
	// deferral's time.
	deferredUntil := later.Add(4 * time.Hour)
	check(t, s.Finish(t.Context(), []store.Delivery{{QueueID: m.QueueID, Recipients: []queue.Recipient{
		{Address: "bob@a.example", State: queue.RecipientDeferred, Attempts: 1, NextAttemptAt: deferredUntil, LastReply: "421 busy", UpdatedAt: later},
		{Address: "alice@a.example", State: queue.RecipientDelivered, Attempts: 1, NextAttemptAt: later, LastReply: "250 ok", UpdatedAt: later},
	}}}))
	check(t, f.control(t, store.QueueHold, m.QueueID, later))
	release := later.Add(time.Minute)
	check(t, f.control(t, store.QueueRelease, m.QueueID, release))
	got = must(t, of(s.Claim(t.Context(), "w", release, 10, time.Minute)))
	if !slices.Contains(queueIDs(got), m.QueueID) {
		t.Fatalf("Claim after the release = %v; want the message due at once", queueIDs(got))
	}
	for _, c := range got {
		if c.QueueID == m.QueueID && (!slices.Equal(dueAddrs(c), []string{"bob@a.example"}) || c.Due[0].Attempts != 1) {
			t.Errorf("released message due = %+v; want bob, with his attempt count", c.Due)
		}
	}
	rel := controlEvents(t, s, f.a, m.QueueID, trace.EventReleased)
	if len(rel) != 3 || rel[2].Recipient != "bob@a.example" || !strings.Contains(rel[2].Detail, "ops") {
		t.Errorf("Released events = %+v; want two for the first release and bob's for the second", rel)
	}
}

// testQueueRetry: retry makes deferred recipients due now, keeping their
// attempts; retry of the whole queue skips held messages, and with a
// domain only touches that domain's recipients.
func testQueueRetry(t *testing.T, s store.Store) {
	f := newQueueFixture(t, s)
	m1 := f.enqueue(t, 1, "x@b.example")
	m2 := f.enqueue(t, 2, "y@b.example", "carol@a.example")
	m3 := f.enqueue(t, 3, "z@b.example")
	now := f.t0.Add(time.Minute)
	far := now.Add(4 * time.Hour)
	got := must(t, of(s.Claim(t.Context(), "w", now, 10, time.Minute)))
	if len(got) != 4 {
		t.Fatalf("Claim = %v", queueIDs(got))
	}
	def := func(addr string) queue.Recipient {
		return queue.Recipient{Address: addr, State: queue.RecipientDeferred, Attempts: 3, NextAttemptAt: far, LastReply: "421 down", UpdatedAt: now}
	}
	check(t, s.Finish(t.Context(), []store.Delivery{
		{QueueID: m1.QueueID, Recipients: []queue.Recipient{def("x@b.example")}},
		{QueueID: m2.QueueID, Recipients: []queue.Recipient{def("y@b.example"), def("carol@a.example")}},
		{QueueID: m3.QueueID, Recipients: []queue.Recipient{def("z@b.example")}},
		{QueueID: f.otherB.QueueID, Recipients: []queue.Recipient{def("zed@other.example")}},
	}))

	at := now.Add(time.Minute)
	check(t, f.control(t, store.QueueRetry, m1.QueueID, at))
	if x := rcptStates(t, s, m1.QueueID)["x@b.example"]; !x.NextAttemptAt.Equal(at) || x.Attempts != 3 || x.State != queue.RecipientDeferred {
		t.Errorf("retried recipient = %+v; want due at %v with its 3 attempts", x, at)
	}
	if got := must(t, of(s.Claim(t.Context(), "w", at, 10, time.Minute))); !slices.Equal(queueIDs(got), []string{m1.QueueID}) {
		t.Errorf("Claim after the retry = %v, want m1 only", queueIDs(got))
	}
	if ev := controlEvents(t, s, f.a, m1.QueueID, trace.EventRetried); len(ev) != 1 || !strings.Contains(ev[0].Detail, "ops") {
		t.Errorf("Retried events = %+v", ev)
	}
	check(t, s.Finish(t.Context(), []store.Delivery{{QueueID: m1.QueueID, Recipients: []queue.Recipient{def("x@b.example")}}}))

	// The whole queue, for b.example: m3 is held and stays; carol of m2
	// is in another domain and stays.
	check(t, f.control(t, store.QueueHold, m3.QueueID, at))
	n := must(t, of(s.ControlQueue(t.Context(), store.QueueControl{TenantID: f.a, All: true, Domain: "b.example", Action: store.QueueRetry, Actor: "ops", Now: at})))
	if n != 2 {
		t.Errorf("retry of b.example changed %d messages, want 2 (m1, m2)", n)
	}
	st := rcptStates(t, s, m2.QueueID)
	if !st["y@b.example"].NextAttemptAt.Equal(at) || !st["carol@a.example"].NextAttemptAt.Equal(far) {
		t.Errorf("after retry of b.example: y %v, carol %v; want y now and carol unchanged", st["y@b.example"].NextAttemptAt, st["carol@a.example"].NextAttemptAt)
	}
	if z := rcptStates(t, s, m3.QueueID)["z@b.example"]; !z.NextAttemptAt.Equal(far) {
		t.Errorf("held m3 was retried: %+v", z)
	}
	if zed := rcptStates(t, s, f.otherB.QueueID)["zed@other.example"]; !zed.NextAttemptAt.Equal(far) {
		t.Errorf("tenant b's message was retried: %+v", zed)
	}
	got = must(t, of(s.Claim(t.Context(), "w", at, 10, time.Minute)))
	if !equalSets(queueIDs(got), []string{m1.QueueID, m2.QueueID}) {
		t.Errorf("Claim after retry of b.example = %v, want m1 and m2", queueIDs(got))
	}
	for _, c := range got {
		if c.QueueID == m2.QueueID && !slices.Equal(dueAddrs(c), []string{"y@b.example"}) {
			t.Errorf("m2 due = %v, want y only", dueAddrs(c))
		}
	}
	var ds []store.Delivery
	for _, c := range got {
		ds = append(ds, store.Delivery{QueueID: c.QueueID})
	}
	check(t, s.Finish(t.Context(), ds))
	// Then everything not held: carol only (y and x are due already).
	n = must(t, of(s.ControlQueue(t.Context(), store.QueueControl{TenantID: f.a, All: true, Action: store.QueueRetry, Actor: "ops", Now: at})))
	if n != 1 {
		t.Errorf("retry of the whole queue changed %d messages, want 1 (carol's)", n)
	}
	if ev := controlEvents(t, s, f.a, m2.QueueID, trace.EventRetried); len(ev) != 2 || ev[1].Recipient != "carol@a.example" {
		t.Errorf("Retried events of m2 = %+v; want y's, then carol's", ev)
	}
	// Nothing due later: nothing changes.
	if n := must(t, of(s.ControlQueue(t.Context(), store.QueueControl{TenantID: f.a, All: true, Action: store.QueueRetry, Actor: "ops", Now: at}))); n != 0 {
		t.Errorf("a second retry of the whole queue changed %d messages", n)
	}
}

// testQueueDelete: a deleted message leaves the queue; its open
// recipients fail with the admin named, never to be delivered, and those
// already delivered keep their state.
func testQueueDelete(t *testing.T, s store.Store) {
	f := newQueueFixture(t, s)
	m := f.enqueue(t, 1, "alice@a.example", "x@b.example")
	now := f.t0.Add(time.Minute)
	got := must(t, of(s.Claim(t.Context(), "w", now, 10, time.Minute)))
	if len(got) != 2 {
		t.Fatalf("Claim = %v", queueIDs(got))
	}
	check(t, s.Finish(t.Context(), []store.Delivery{{QueueID: m.QueueID, Recipients: []queue.Recipient{
		{Address: "alice@a.example", State: queue.RecipientDelivered, Attempts: 1, NextAttemptAt: now, LastReply: "250 ok", UpdatedAt: now},
		{Address: "x@b.example", State: queue.RecipientDeferred, Attempts: 1, NextAttemptAt: now.Add(time.Minute), LastReply: "451 later", UpdatedAt: now},
	}}, {QueueID: f.otherB.QueueID}}))
	check(t, f.control(t, store.QueueHold, m.QueueID, now))
	at := now.Add(time.Second)
	check(t, f.control(t, store.QueueDelete, m.QueueID, at))

	st := rcptStates(t, s, m.QueueID)
	if x := st["x@b.example"]; x.State != queue.RecipientFailed || !strings.Contains(x.LastReply, "deleted") || !strings.Contains(x.LastReply, "ops") {
		t.Errorf("deleted recipient = %+v; want failed, deleted by ops", x)
	}
	if a := st["alice@a.example"]; a.State != queue.RecipientDelivered {
		t.Errorf("a delivered recipient of a deleted message = %+v; want it delivered still", a)
	}
	if got := itemIDs(f.items(t, store.QueueQuery{Now: at})); len(got) != 0 {
		t.Errorf("the queue after the delete = %v", got)
	}
	if n := must(t, of(s.QueueDepth(t.Context()))); n != 1 {
		t.Errorf("QueueDepth = %d, want tenant b's message only", n)
	}
	for _, when := range []time.Time{at, at.Add(72 * time.Hour)} {
		if got := must(t, of(s.Claim(t.Context(), "w", when, 10, time.Minute))); slices.Contains(queueIDs(got), m.QueueID) {
			t.Errorf("Claim at %v took the deleted message", when)
		}
	}
	ev := controlEvents(t, s, f.a, m.QueueID, trace.EventFailed)
	if len(ev) != 1 || ev[0].Recipient != "x@b.example" || ev[0].Status != trace.StatusFailed || !strings.Contains(ev[0].Detail, "deleted") ||
		!strings.Contains(ev[0].Detail, "ops") {
		t.Errorf("Failed events of the delete = %+v; want x's, naming the admin", ev)
	}
	// The recipient's status in trace is now Failed.
	failed := must(t, of(s.SearchTrace(t.Context(), trace.Query{TenantID: f.a, QueueID: m.QueueID, Status: trace.StatusFailed})))
	if len(failed) != 1 {
		t.Errorf("trace search for Failed = %+v", failed)
	}
	wantErr(t, f.control(t, store.QueueDelete, m.QueueID, at), store.ErrNotFound, "deleting a deleted message")
	wantErr(t, f.control(t, store.QueueRelease, m.QueueID, at), store.ErrNotFound, "releasing a deleted message")
}

// testQueueControlErrors: unknown ids, another tenant's messages and
// actions that do not apply are refused and change nothing.
func testQueueControlErrors(t *testing.T, s store.Store) {
	f := newQueueFixture(t, s)
	m := f.enqueue(t, 1, "alice@a.example")
	now := f.t0.Add(time.Minute)
	for _, a := range []store.QueueAction{store.QueueHold, store.QueueRelease, store.QueueRetry, store.QueueDelete} {
		wantErr(t, f.control(t, a, "NOSUCHQUEUEID0000000", now), store.ErrNotFound, string(a)+" of an unknown id")
		wantErr(t, f.control(t, a, f.otherB.QueueID, now), store.ErrNotFound, string(a)+" of another tenant's message")
	}
	wantErr(t, f.control(t, "explode", m.QueueID, now), store.ErrInvalid, "an unknown action")
	wantErr(t, f.control(t, store.QueueHold, "", now), store.ErrInvalid, "hold without a queue id")
	_, err := s.ControlQueue(t.Context(), store.QueueControl{TenantID: f.a, All: true, Action: store.QueueDelete, Actor: "ops", Now: now})
	wantErr(t, err, store.ErrInvalid, "delete of the whole queue")
	if it := f.items(t, store.QueueQuery{Now: now}); len(it) != 1 || it[0].Status != store.QueuePending {
		t.Errorf("after refused actions: %+v", it)
	}
	if it := f.items(t, store.QueueQuery{TenantID: f.b, Now: now}); len(it) != 1 || it[0].Status != store.QueuePending {
		t.Errorf("tenant b's message after refused actions: %+v", it)
	}
	if ev := must(t, of(s.SearchTrace(t.Context(), trace.Query{TenantID: f.b}))); len(ev) != 0 {
		t.Errorf("refused actions wrote trace events: %+v", ev)
	}
}

// testQueueRetryAllLarge: a retry of the whole queue reaches every
// recipient of large messages, counting each message once (a store may
// work through a large queue in parts).
func testQueueRetryAllLarge(t *testing.T, s store.Store) {
	f := newQueueFixture(t, s)
	const perMessage = 900
	var msgs []*queue.Message
	for i := range 3 {
		var rcpts []string
		for j := range perMessage {
			rcpts = append(rcpts, fmt.Sprintf("u%d.%d@b.example", i, j))
		}
		msgs = append(msgs, f.enqueue(t, i+1, rcpts...))
	}
	now := f.t0.Add(time.Minute)
	far := now.Add(4 * time.Hour)
	got := must(t, of(s.Claim(t.Context(), "w", now, 10, time.Minute)))
	var ds []store.Delivery
	for _, c := range got {
		d := store.Delivery{QueueID: c.QueueID}
		for _, r := range c.Due {
			d.Recipients = append(d.Recipients, queue.Recipient{Address: r.Address, State: queue.RecipientDeferred, Attempts: 1,
				NextAttemptAt: far, LastReply: "421 down", UpdatedAt: now})
		}
		ds = append(ds, d)
	}
	check(t, s.Finish(t.Context(), ds))
	n := must(t, of(s.ControlQueue(t.Context(), store.QueueControl{TenantID: f.a, All: true, Action: store.QueueRetry, Actor: "ops", Now: now})))
	if n != 3 {
		t.Errorf("retry of the whole queue changed %d messages, want 3", n)
	}
	for _, m := range msgs {
		for addr, r := range rcptStates(t, s, m.QueueID) {
			if !r.NextAttemptAt.Equal(now) {
				t.Fatalf("%s of %s is due at %v after the retry, want %v", addr, m.QueueID, r.NextAttemptAt, now)
			}
		}
	}
	if ev := controlEvents(t, s, f.a, msgs[1].QueueID, trace.EventRetried); len(ev) != perMessage {
		t.Errorf("%d Retried events for a message of %d recipients", len(ev), perMessage)
	}
}
