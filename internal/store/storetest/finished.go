package storetest

// Contract tests of pruning finished messages: what has left the queue goes
// after [queue] keep_finished, unless a mailbox holds a copy of it.

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

var finishedTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"PruneFinished", testPruneFinished},
}

// testPruneFinished: delivered, failed and admin-deleted messages are
// deleted with their recipients and bodies once they finished before the
// cutoff, in batches of the limit; queued messages, messages a mailbox
// holds a copy of, and the trace of every message stay.
func testPruneFinished(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	alice := newMailbox(t, s, ten.ID, "alice@a.example")
	msgs, events := newMessages(ten.ID, acc.ID, 6)
	// done: three delivered or failed messages and one an admin deleted;
	// copied: delivered into alice's mailbox; queued: not attempted yet.
	done, copied, deleted, queued := msgs[:3], msgs[3], msgs[4], msgs[5]
	check(t, s.Enqueue(ctx, msgs[:5], events[:5]))
	now := time.Now()
	claimed := must(t, of(s.Claim(ctx, "w", now, 10, time.Minute)))
	if len(claimed) != 5 {
		t.Fatalf("Claim = %v, want the five messages enqueued", queueIDs(claimed))
	}
	check(t, s.Finish(ctx, []store.Delivery{
		{QueueID: done[0].QueueID, Recipients: finalRecipients(done[0], queue.RecipientDelivered, now)},
		{QueueID: done[1].QueueID, Recipients: finalRecipients(done[1], queue.RecipientFailed, now)},
		{QueueID: done[2].QueueID, Recipients: finalRecipients(done[2], queue.RecipientDelivered, now)},
		{QueueID: copied.QueueID, Recipients: finalRecipients(copied, queue.RecipientDelivered, now),
			Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: "alice@a.example"}}},
		{QueueID: deleted.QueueID},
	}))
	_, err := s.ControlQueue(ctx, store.QueueControl{TenantID: ten.ID, QueueID: deleted.QueueID, Action: store.QueueDelete, Actor: "ops", Now: now})
	check(t, err)
	// Enqueued after the others finished: a message still in the queue is
	// never pruned, however old its receipt.
	check(t, s.Enqueue(ctx, []*queue.Message{queued}, []trace.Event{events[5]}))

	if n := must(t, of(s.PruneFinished(ctx, now.Add(-time.Minute), 0))); n != 0 {
		t.Errorf("PruneFinished before the messages finished deleted %d, want 0", n)
	}
	var batches []int
	for range 3 {
		batches = append(batches, must(t, of(s.PruneFinished(ctx, now.Add(time.Minute), 2))))
	}
	if !slices.Equal(batches, []int{2, 2, 0}) {
		t.Errorf("PruneFinished in batches of 2 deleted %v, want [2 2 0]: three done messages and one deleted", batches)
	}

	for _, m := range append(slices.Clone(done), deleted) {
		_, err := s.QueueRecipients(ctx, m.QueueID)
		wantErr(t, err, store.ErrNotFound, "QueueRecipients of a pruned message")
		_, err = s.MessageBody(ctx, m.QueueID)
		wantErr(t, err, store.ErrNotFound, "MessageBody of a pruned message")
		// Message trace outlives the message: it has a retention of its own.
		if ev := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID, QueueID: m.QueueID}))); len(ev) == 0 {
			t.Errorf("trace of pruned %s is gone", m.QueueID)
		}
	}
	for _, m := range []*queue.Message{copied, queued} {
		if body := must(t, of(s.MessageBody(ctx, m.QueueID))); !bytes.Equal(body, m.Body) {
			t.Errorf("MessageBody of kept %s = %q, want %q", m.QueueID, body, m.Body)
		}
		if list := must(t, of(s.QueueRecipients(ctx, m.QueueID))); len(list) != len(m.Recipients) {
			t.Errorf("recipients of kept %s = %+v, want %d", m.QueueID, list, len(m.Recipients))
		}
	}
	box := must(t, of(s.MailboxMessages(ctx, alice.ID)))
	if len(box) != 1 || box[0].QueueID != copied.QueueID {
		t.Fatalf("alice's mailbox = %+v, want her copy of %s", box, copied.QueueID)
	}
	if body := must(t, of(s.MailboxMessageBody(ctx, alice.ID, box[0].ID))); !bytes.Equal(body, copied.Body) {
		t.Errorf("alice's copy after pruning = %q, want %q", body, copied.Body)
	}
	if n := must(t, of(s.QueueDepth(ctx))); n != 1 {
		t.Errorf("QueueDepth after pruning = %d, want the one queued message", n)
	}
	got := must(t, of(s.Claim(ctx, "w", now.Add(time.Hour), 10, time.Minute)))
	if !slices.Equal(queueIDs(got), []string{queued.QueueID}) {
		t.Errorf("Claim after pruning = %v, want only %s", queueIDs(got), queued.QueueID)
	}
}
