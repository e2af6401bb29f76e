package delivery_test

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/delivery"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// claimCounter counts the messages Claim returns and the bodies read back.
type claimCounter struct {
	*countingStore
	claimed atomic.Int64
}

func (c *claimCounter) Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error) {
	msgs, err := c.countingStore.Claim(ctx, owner, now, limit, lease)
	c.claimed.Add(int64(len(msgs)))
	return msgs, err
}

// handoffWorker is a worker on a claimCounter over the fixture's store,
// relaying through the fixture's relay.
func handoffWorker(t *testing.T, f *fixture) (*delivery.Worker, *claimCounter) {
	cs := &claimCounter{countingStore: &countingStore{Store: f.st}}
	w := delivery.NewWorker(cs, "handoff-worker", slog.New(slog.NewTextHandler(t.Output(), nil)))
	w.Relay = f.w.Relay
	return w, cs
}

// spoolAll submits each message through a spool whose hand-off is w.
func spoolAll(t *testing.T, f *fixture, w *delivery.Worker, rcpts [][]string) []*queue.Message {
	t.Helper()
	sp := queue.NewSpool(f.st, w, slog.New(slog.NewTextHandler(t.Output(), nil)))
	defer sp.Close()
	var msgs []*queue.Message
	for _, r := range rcpts {
		m, events := f.message(r...)
		if err := sp.Submit(context.Background(), m, events); err != nil {
			t.Fatalf("Submit: %v", err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// statuses returns the queue status of each queued message of the default
// tenant.
func (f *fixture) statuses() map[string]store.QueueStatus {
	f.t.Helper()
	items, err := f.st.QueueItems(context.Background(), store.QueueQuery{TenantID: f.tenant.ID, Now: time.Now()})
	if err != nil {
		f.t.Fatalf("QueueItems: %v", err)
	}
	out := map[string]store.QueueStatus{}
	for _, it := range items {
		out[it.QueueID] = it.Status
	}
	return out
}

func TestHandedOverMessagesAreDeliveredFromMemory(t *testing.T) {
	f, _ := newRelayFixture(t)
	s := startSink(t, sinkOptions{})
	f.smtpRoute(relayDomain, s)
	w, cs := handoffWorker(t, f)
	msgs := spoolAll(t, f, w, [][]string{{rx, ry}, {aliceAddr}, {rx, teamAddr}})

	// Stored leased to the worker: no other node may claim them.
	st := f.statuses()
	for _, m := range msgs {
		if st[m.QueueID] != store.QueueActive {
			t.Errorf("%s is %q in the queue after the hand-off, want %q (leased)", m.QueueID, st[m.QueueID], store.QueueActive)
		}
	}
	if n, err := w.RunOnce(context.Background()); err != nil || n != len(msgs) {
		t.Fatalf("RunOnce = %d, %v; want %d, nil", n, err, len(msgs))
	}
	if got := cs.claimed.Load(); got != 0 {
		t.Errorf("claims returned %d messages; want none: all were handed over", got)
	}
	if one, batches := cs.bodies.Load(), cs.batches.Load(); one != 0 || batches != 0 {
		t.Errorf("bodies read back %d times one by one and in %d batches; want none: they were in memory", one, batches)
	}
	f.wantStates(msgs[0], map[string]queue.RecipientState{rx: queue.RecipientDelivered, ry: queue.RecipientDelivered})
	f.checkCopies(msgs[1], aliceAddr)
	f.wantStates(msgs[2], map[string]queue.RecipientState{rx: queue.RecipientDelivered})
	f.checkCopies(msgs[2], addr("alice"), addr("bob"))
	got := s.transactions()
	if len(got) != 2 {
		t.Fatalf("the next hop got %d transactions, want 2", len(got))
	}
	for _, m := range []*queue.Message{msgs[0], msgs[2]} {
		if !slices.ContainsFunc(got, func(r received) bool { return string(r.body) == string(m.Body) }) {
			t.Errorf("no transaction carried the body of %s", m.QueueID)
		}
	}
	if d := f.queueDepth(); d != 0 {
		t.Errorf("queue depth %d after delivery, want 0", d)
	}
	// A second pass has nothing left to do.
	if n, err := w.RunOnce(context.Background()); err != nil || n != 0 {
		t.Errorf("second RunOnce = %d, %v; want 0, nil", n, err)
	}
	if len(s.transactions()) != 2 {
		t.Errorf("the next hop got %d transactions after a second pass, want still 2", len(s.transactions()))
	}
}

func TestHandOffIsBoundedAndTheRestIsClaimed(t *testing.T) {
	f := newFixture(t)
	w, cs := handoffWorker(t, f)
	w.MaxHanded = 2
	var batch []*queue.Message
	var events []trace.Event
	for range 5 {
		m, ev := f.message(aliceAddr)
		batch = append(batch, m)
		events = append(events, ev...)
	}
	paced, ev := f.message(addr("bob"))
	paced.NotBefore = paced.ReceivedAt
	batch = append(batch, paced)
	events = append(events, ev...)

	w.Reserve(batch)
	var leased []string
	for _, m := range batch {
		if m.LeaseOwner != "" {
			leased = append(leased, m.QueueID)
		}
	}
	if want := []string{batch[0].QueueID, batch[1].QueueID}; !slices.Equal(leased, want) {
		t.Fatalf("Reserve leased %v, want the first two (MaxHanded 2; a paced message never)", leased)
	}
	if err := f.st.Enqueue(context.Background(), batch, events); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	w.Queued(batch)
	if n, err := w.RunOnce(context.Background()); err != nil || n != len(batch) {
		t.Fatalf("RunOnce = %d, %v; want %d, nil", n, err, len(batch))
	}
	if got := cs.claimed.Load(); got != 4 {
		t.Errorf("claims returned %d messages, want the 4 not handed over", got)
	}
	for _, m := range batch {
		to := aliceAddr
		if m == paced {
			to = addr("bob")
		}
		f.checkCopies(m, to)
	}
}

func TestHandedMessageHeldTooLongIsLeftToItsLease(t *testing.T) {
	// The lease is on the fixture's clock (as in the store), the age of
	// the hand-over on the real one.
	f, clk := newRelayFixture(t)
	w, cs := handoffWorker(t, f)
	w.Now = clk.Now
	w.Lease = 100 * time.Millisecond
	m, events := f.message(aliceAddr)
	batch := []*queue.Message{m}
	w.Reserve(batch)
	if m.LeaseOwner == "" {
		t.Fatal("Reserve leased nothing")
	}
	if err := f.st.Enqueue(context.Background(), batch, events); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	w.Queued(batch)
	// Past three quarters of the lease the worker must not start on it
	// (another node could claim it once the lease runs out), and before
	// the lease ends no claim finds it.
	time.Sleep(w.Lease * 3 / 4)
	if n, err := w.RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("RunOnce = %d, %v; want 0, nil: the hand-over is too old and the lease still runs", n, err)
	}
	if len(f.copies(aliceAddr, m.QueueID)) != 0 {
		t.Fatal("delivered from memory past three quarters of its lease")
	}
	clk.advance(w.Lease + time.Millisecond)
	if n, err := w.RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1 (claimed once its lease ran out), nil", n, err)
	}
	if got := cs.claimed.Load(); got != 1 {
		t.Errorf("claims returned %d messages, want 1", got)
	}
	f.checkCopies(m, aliceAddr)
}

// blockingClaims holds the first Claim until release is closed.
type blockingClaims struct {
	*countingStore
	entered chan struct{}
	release chan struct{}
	once    atomic.Bool
}

func (b *blockingClaims) Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error) {
	if b.once.CompareAndSwap(false, true) {
		close(b.entered)
		<-b.release
	}
	return b.countingStore.Claim(ctx, owner, now, limit, lease)
}

func TestAStoppingWorkerGivesBackWhatItHadNotStarted(t *testing.T) {
	f := newFixture(t)
	bs := &blockingClaims{countingStore: &countingStore{Store: f.st}, entered: make(chan struct{}), release: make(chan struct{})}
	w := delivery.NewWorker(bs, "stopping-worker", slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		w.Run(ctx)
	}()
	<-bs.entered // the first pass is in its claim
	m, events := f.message(aliceAddr)
	batch := []*queue.Message{m}
	w.Reserve(batch)
	if err := f.st.Enqueue(context.Background(), batch, events); err != nil {
		t.Fatal(err)
	}
	w.Queued(batch)
	cancel()
	close(bs.release)
	<-stopped
	if len(f.copies(aliceAddr, m.QueueID)) != 0 {
		t.Fatal("the stopped worker delivered the message")
	}
	// Leased no more: another worker claims it now.
	other := delivery.NewWorker(f.st, "other-worker", slog.New(slog.NewTextHandler(t.Output(), nil)))
	if n, err := other.RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("another worker's RunOnce = %d, %v; want 1, nil: the lease was given back", n, err)
	}
	f.checkCopies(m, aliceAddr)
}

// finishCounter counts the Finish transactions of a store.
type finishCounter struct {
	*countingStore
	finishes atomic.Int64
}

func (c *finishCounter) Finish(ctx context.Context, deliveries []store.Delivery) error {
	c.finishes.Add(1)
	return c.countingStore.Finish(ctx, deliveries)
}

// TestMessagesStoredWithinGatherShareAPass: messages the spool hands over
// within Gather of the first wake-up are delivered in one pass, their
// outcomes in one transaction; without the wait each has a pass and a
// transaction of its own.
func TestMessagesStoredWithinGatherShareAPass(t *testing.T) {
	for _, c := range []struct {
		gather time.Duration
		want   int64
	}{{2 * time.Second, 1}, {0, 3}} {
		f := newFixture(t)
		fc := &finishCounter{countingStore: &countingStore{Store: f.st}}
		w := delivery.NewWorker(fc, "gather-worker", slog.New(slog.NewTextHandler(t.Output(), nil)))
		w.Poll, w.Gather = time.Hour, c.gather
		sp := queue.NewSpool(f.st, w, slog.New(slog.NewTextHandler(t.Output(), nil)))
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			w.Run(ctx)
		}()
		var msgs []*queue.Message
		for range 3 {
			m, events := f.message(aliceAddr)
			if err := sp.Submit(ctx, m, events); err != nil {
				t.Fatalf("Submit: %v", err)
			}
			msgs = append(msgs, m)
			if c.gather == 0 {
				// Each delivered before the next is stored.
				for deadline := time.Now().Add(10 * time.Second); f.queueDepth() != 0; time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("not delivered within 10s")
					}
				}
			}
		}
		for deadline := time.Now().Add(10 * time.Second); f.queueDepth() != 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Gather %v: not delivered within 10s", c.gather)
			}
		}
		cancel()
		<-stopped
		sp.Close()
		for _, m := range msgs {
			f.checkDelivered(m, nil, aliceAddr)
		}
		if got := fc.finishes.Load(); got != c.want {
			t.Errorf("Gather %v: %d Finish transactions for 3 messages, want %d", c.gather, got, c.want)
		}
	}
}
