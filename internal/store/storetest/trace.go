package storetest

import (
	"slices"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// traceRetentionTests are the contract tests of the subject and event
// filters and of trace retention.
var traceRetentionTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"TraceSubject", testTraceSubject},
	{"TraceEvent", testTraceEvent},
	{"PruneTrace", testPruneTrace},
}

// testTraceSubject: the subject filter matches in any letter case (beyond
// ASCII too) and takes LIKE's wildcards and escape character literally.
func testTraceSubject(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a")
	at := baseTime()
	subjects := []string{"Invoice 50% off", "invoice_2026", "invoiceX2026", "Re: invoice", "50x off", "Ärger im Büro", `path C:\temp`, "100%"}
	var events []trace.Event
	for _, subj := range subjects {
		events = append(events, trace.Event{TenantID: ten.ID, Time: at, QueueID: "Q", Event: trace.EventReceived,
			Status: trace.StatusPending, Subject: subj, Detail: subj})
	}
	check(t, s.AddEvents(ctx, events))

	tests := []struct {
		subject, match string
		want           []string
	}{
		{"INVOICE", "", []string{"Invoice 50% off", "invoice_2026", "invoiceX2026", "Re: invoice"}},
		{"invoice", trace.SubjectContains, []string{"Invoice 50% off", "invoice_2026", "invoiceX2026", "Re: invoice"}},
		{"50%", "", []string{"Invoice 50% off"}},
		{"e_2", "", []string{"invoice_2026"}},
		{"%", trace.SubjectEndsWith, []string{"100%"}},
		{"_", "", []string{"invoice_2026"}},
		{`c:\t`, "", []string{`path C:\temp`}},
		{`\`, trace.SubjectEndsWith, []string{}},
		{"invoice", trace.SubjectStartsWith, []string{"Invoice 50% off", "invoice_2026", "invoiceX2026"}},
		{"OFF", trace.SubjectEndsWith, []string{"Invoice 50% off", "50x off"}},
		{"re:", trace.SubjectStartsWith, []string{"Re: invoice"}},
		{"ärger", trace.SubjectStartsWith, []string{"Ärger im Büro"}},
		{"BÜRO", trace.SubjectEndsWith, []string{"Ärger im Büro"}},
		{"nothing", "", []string{}},
	}
	for _, tc := range tests {
		q := trace.Query{TenantID: ten.ID, Subject: tc.subject, SubjectMatch: tc.match}
		got := must(t, of(s.SearchTrace(ctx, q)))
		if !slices.Equal(details(got), tc.want) {
			t.Errorf("SearchTrace(subject %q, %q) = %q, want %q", tc.subject, tc.match, details(got), tc.want)
		}
	}
}

// testTraceEvent: the event filter selects events of one name, exactly
// (callers validate and spell the name with trace.ParseEvent), within the
// tenant, and combines with the other filters.
func testTraceEvent(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newTenant(t, s, "a"), newTenant(t, s, "b")
	t0 := baseTime()
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
	ev := func(name string, tenant int64, minutes int, event, status, sender string) trace.Event {
		return trace.Event{TenantID: tenant, Time: at(minutes), Sender: sender, Event: event, Status: status, Detail: name}
	}
	check(t, s.AddEvents(ctx, []trace.Event{
		ev("received", a.ID, 0, trace.EventReceived, trace.StatusPending, "app@a.example"),
		ev("alert1", a.ID, 1, trace.EventAlert, "", "app@a.example"),
		ev("rejected", a.ID, 2, trace.EventRejected, trace.StatusRejected, "app@a.example"),
		ev("refused", a.ID, 3, trace.EventSignInRefused, trace.StatusRejected, "other@a.example"),
		ev("alertB", b.ID, 3, trace.EventAlert, "", "app@b.example"),
		ev("alert2", a.ID, 4, trace.EventAlert, "", ""),
		ev("rejected2", a.ID, 5, trace.EventRejected, trace.StatusRejected, "other@a.example"),
	}))

	tests := []struct {
		name string
		q    trace.Query
		want []string
	}{
		{"alerts", trace.Query{Event: trace.EventAlert}, []string{"alert1", "alert2"}},
		{"alerts since", trace.Query{Event: trace.EventAlert, Since: at(2)}, []string{"alert2"}},
		{"alerts of a sender", trace.Query{Event: trace.EventAlert, Sender: "app@a.example"}, []string{"alert1"}},
		{"rejected", trace.Query{Event: trace.EventRejected}, []string{"rejected", "rejected2"}},
		{"rejected with its status", trace.Query{Event: trace.EventRejected, Status: trace.StatusRejected}, []string{"rejected", "rejected2"}},
		{"sign-in refusals", trace.Query{Event: trace.EventSignInRefused}, []string{"refused"}},
		{"limit", trace.Query{Event: trace.EventAlert, Limit: 1}, []string{"alert1"}},
		{"no event of the name", trace.Query{Event: trace.EventDelivered}, []string{}},
		{"not folded", trace.Query{Event: "alert"}, []string{}},
	}
	for _, tc := range tests {
		tc.q.TenantID = a.ID
		got := must(t, of(s.SearchTrace(ctx, tc.q)))
		if got == nil || !slices.Equal(details(got), tc.want) {
			t.Errorf("SearchTrace(%s: %+v) = %q, want %q", tc.name, tc.q, details(got), tc.want)
		}
	}
	if got := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: b.ID, Event: trace.EventAlert}))); !slices.Equal(details(got), []string{"alertB"}) {
		t.Errorf("alerts of tenant b = %q, want alertB only", details(got))
	}
}

// testPruneTrace: PruneTrace deletes events older than the bound in
// batches, and keeps those of messages still in the queue.
func testPruneTrace(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	alice := newMailbox(t, s, ten.ID, "alice@a.example")
	newMailbox(t, s, ten.ID, "r1@a.example")
	old := time.Now().AddDate(0, 0, -100).UTC().Truncate(time.Millisecond)
	recent := baseTime()

	// queued stays in the queue; done is delivered. Both were received
	// long ago.
	queued, done := newMessage(ten.ID, acc.ID, 1, old), newMessage(ten.ID, acc.ID, 2, old)
	check(t, s.Enqueue(ctx, []*queue.Message{queued, done}, []trace.Event{receivedEvent(queued), receivedEvent(done)}))
	must(t, of(s.Claim(ctx, "w1", time.Now(), 10, time.Minute)))
	var rcpts []queue.Recipient
	for _, r := range done.Recipients {
		rcpts = append(rcpts, queue.Recipient{Address: r, State: queue.RecipientDelivered, Attempts: 1, NextAttemptAt: time.Now()})
	}
	delivered := receivedEvent(done)
	delivered.Event, delivered.Status = trace.EventDelivered, trace.StatusDelivered
	check(t, s.Finish(ctx, []store.Delivery{{QueueID: done.QueueID,
		Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: "alice@a.example"}},
		Events: []trace.Event{delivered}, Recipients: rcpts}}))

	// Old refusals at submission (no queue id) and a recent one.
	var refusals []trace.Event
	for i := range 5 {
		at := old
		if i == 4 {
			at = recent
		}
		refusals = append(refusals, trace.Event{TenantID: ten.ID, Time: at, Sender: "app@a.example", Recipient: "x@b.example",
			Event: trace.EventRejected, Status: trace.StatusRejected, Detail: "refused"})
	}
	check(t, s.AddEvents(ctx, refusals))

	before := time.Now().AddDate(0, 0, -90)
	// Six events are old and deletable (four refusals, done's Received
	// and Delivered): three full batches of 2, then none.
	var batches []int
	for range 10 {
		n := must(t, of(s.PruneTrace(ctx, before, 2)))
		batches = append(batches, n)
		if n < 2 {
			break
		}
	}
	if want := []int{2, 2, 2, 0}; !slices.Equal(batches, want) {
		t.Errorf("PruneTrace batches of 2 = %v, want %v", batches, want)
	}
	left := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID})))
	var got []string
	for _, e := range left {
		got = append(got, e.QueueID+"/"+e.Event)
	}
	want := []string{queued.QueueID + "/" + trace.EventReceived, "/" + trace.EventRejected}
	if !slices.Equal(got, want) {
		t.Errorf("after PruneTrace, events = %v, want the queued message's and the recent refusal: %v", got, want)
	}
	// Nothing older than the bound is left to delete.
	if n := must(t, of(s.PruneTrace(ctx, before, 0))); n != 0 {
		t.Errorf("PruneTrace again deleted %d events, want 0", n)
	}
}
