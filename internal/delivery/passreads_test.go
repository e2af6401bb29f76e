package delivery_test

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"

	"hve/internal/delivery"
	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store/sqlite"
)

// countingStore counts a pass's directory and body reads, and reads bodies
// in one call as the PostgreSQL store does (MessageBodies).
type countingStore struct {
	*sqlite.Store
	lookups, domains, bodies, batches atomic.Int64
}

func (c *countingStore) Lookup(ctx context.Context, address string) (directory.Entry, error) {
	c.lookups.Add(1)
	return c.Store.Lookup(ctx, address)
}

func (c *countingStore) DomainByName(ctx context.Context, name string) (directory.Domain, error) {
	c.domains.Add(1)
	return c.Store.DomainByName(ctx, name)
}

func (c *countingStore) MessageBody(ctx context.Context, queueID string) ([]byte, error) {
	c.bodies.Add(1)
	return c.Store.MessageBody(ctx, queueID)
}

func (c *countingStore) MessageBodies(ctx context.Context, queueIDs []string) (map[string][]byte, error) {
	c.batches.Add(1)
	out := map[string][]byte{}
	for _, id := range queueIDs {
		b, err := c.Store.MessageBody(ctx, id)
		if err != nil {
			return nil, err
		}
		out[id] = b
	}
	return out, nil
}

func TestPassReadsEachAddressOnceAndBodiesTogether(t *testing.T) {
	f, _ := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s)
	cs := &countingStore{Store: f.st}
	w := delivery.NewWorker(cs, "counting-worker", slog.New(slog.NewTextHandler(t.Output(), nil)))
	w.Now, w.Relay = f.w.Now, f.w.Relay
	var msgs []*queue.Message
	for range 6 {
		msgs = append(msgs, f.enqueue(rx, ry))
	}
	if n, err := w.RunOnce(context.Background()); err != nil || n != len(msgs) {
		t.Fatalf("RunOnce = %d, %v; want %d, nil", n, err, len(msgs))
	}
	// Two addresses without a mailbox in one domain: each looked up once
	// for the whole pass, their domain once.
	if got := cs.lookups.Load(); got != 2 {
		t.Errorf("%d directory lookups for 6 messages to the same 2 addresses; want 2", got)
	}
	if got := cs.domains.Load(); got != 1 {
		t.Errorf("%d domain reads for one domain; want 1", got)
	}
	if got, one := cs.batches.Load(), cs.bodies.Load(); got != 1 || one != 0 {
		t.Errorf("bodies read in %d batches and %d one by one; want one batch", got, one)
	}
	got := s.transactions()
	if len(got) != len(msgs) {
		t.Fatalf("the next hop got %d transactions, want %d", len(got), len(msgs))
	}
	for _, m := range msgs {
		if !slices.ContainsFunc(got, func(r received) bool { return string(r.body) == string(m.Body) }) {
			t.Errorf("no transaction carried the body of %s", m.QueueID)
		}
		f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDelivered})
	}
}
