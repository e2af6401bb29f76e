package storetest

import (
	"slices"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// traceRetentionTests are the contract tests of the subject filter and of
// trace retention.
var traceRetentionTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"TraceSubject", testTraceSubject},
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
