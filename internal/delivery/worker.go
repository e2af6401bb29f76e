// Package delivery takes queued messages and delivers them, recording a
// trace event for every step:
//
//   - router.go resolves each recipient: it expands distribution groups
//     (nested, each person once, loops harmless) and picks the route of the
//     recipient's domain (the domain's own, the tenant's default "*", else
//     local). Unknown recipients of internal-relay domains go to the
//     domain's next hop.
//   - Local recipients get a copy in the embedded mailbox store.
//   - relay.go hands the others to next hops over SMTP or LMTP: one
//     transaction per message and next hop carrying all its recipients,
//     pooled and reused connections within a per-destination limit,
//     pipelining, STARTTLS, AUTH, per-recipient LMTP replies.
//   - retry.go schedules temporary failures (4xx, no connection) with a
//     jittered backoff until the message's maximum age; 5xx is final.
//
// Each recipient has its own state in the queue, so a retry goes only to
// the recipients still open: one the next hop accepted is never sent the
// message again. A connection lost after the message's final dot and
// before the next hop's reply leaves the recipients open; the next hop may
// already have the message, so the retry can duplicate it, which SMTP
// cannot avoid. hve sends no bounces: failures are in trace.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// Store is what delivery reads and writes.
type Store interface {
	Lookup(ctx context.Context, address string) (directory.Entry, error)
	Group(ctx context.Context, tenantID, id int64) (directory.Group, error)
	DomainByName(ctx context.Context, name string) (directory.Domain, error)
	Routes(ctx context.Context, tenantID int64) ([]directory.Route, error)
	Tenant(ctx context.Context, id int64) (directory.Tenant, error)
	Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error)
	Finish(ctx context.Context, deliveries []store.Delivery) error
	MessageBody(ctx context.Context, queueID string) ([]byte, error)
}

// bodiesReader is a Store that reads many message bodies in one call
// (the PostgreSQL store: one round trip instead of one per message).
type bodiesReader interface {
	MessageBodies(ctx context.Context, queueIDs []string) (map[string][]byte, error)
}

// bodyBatchMax is the largest message whose body a pass reads together
// with the others' (bodiesReader); larger ones are read one by one, as
// they are relayed, so that a pass never holds many of them at once.
const bodyBatchMax = 64 << 10

// Worker delivers queued messages: those the spool hands over as it
// stores them (see Reserve), and those it claims from the queue (retries,
// messages of nodes that died, messages stored while the hand-over was
// full).
type Worker struct {
	store Store
	owner string
	log   *slog.Logger
	wake  chan struct{}
	// claimWanted asks the next pass to claim from the queue even if the
	// last claim found nothing less than Poll ago: unleased messages were
	// stored, or an admin asked for a retry.
	claimWanted atomic.Bool
	// lastClaim is when the last claim found nothing (zero after one that
	// found messages: there may be more, and before the first). Used by
	// the goroutine of Run only.
	lastClaim time.Time

	// handed are the messages the spool leased to this worker, in the
	// order they were stored, and their bytes; guarded by hmu.
	hmu         sync.Mutex
	handed      []handedMessage
	handedBytes int64

	// BatchSize messages are claimed at once; their local deliveries are
	// recorded in one transaction.
	BatchSize int
	// Lease is how long a claimed batch stays reserved for this worker.
	// Relaying a batch ends at three quarters of it, so that its outcome
	// is recorded before another node may claim the messages.
	Lease time.Duration
	// Poll is how often the queue is checked when nothing wakes the worker.
	Poll time.Duration
	// Gather is how long a pass waits after a wake-up (messages the spool
	// handed over, an admin's retry) before it starts, so that the
	// messages stored meanwhile share it: with few messages per pass, as
	// at a moderate rate, every pass's outcomes cost a commit of their
	// own. Mail tolerates the wait; the store's load goes down (on
	// PostgreSQL, 7% less CPU per message at half the maximum rate).
	Gather time.Duration
	// Retry schedules temporary failures and bounds a message's time in
	// the queue.
	Retry Retry
	// Relay delivers to next hops; its fields tune timeouts.
	Relay *Relay
	// Concurrency bounds the messages being relayed at once (each next
	// hop is further bounded by its route's connection limit).
	Concurrency int
	// MaxHanded and MaxHandedBytes bound the messages (and their bytes)
	// that the spool may hand over and that wait in memory for delivery;
	// beyond them new messages are stored unleased and claimed in turn.
	MaxHanded      int
	MaxHandedBytes int64
	// Now is the clock of due times, retries and trace events; tests set
	// it to control time.
	Now func() time.Time
}

// NewWorker returns a worker that claims work as owner.
func NewWorker(s Store, owner string, log *slog.Logger) *Worker {
	return &Worker{store: s, owner: owner, log: log, wake: make(chan struct{}, 1),
		BatchSize: 256, Lease: 5 * time.Minute, Poll: 2 * time.Second, Gather: 10 * time.Millisecond, Retry: DefaultRetry(),
		Relay: NewRelay("localhost", log), Concurrency: 64, MaxHanded: 4096, MaxHandedBytes: 64 << 20, Now: time.Now}
}

// handedMessage is a message the spool handed over, and when (on the real
// clock, as the relay's deadlines are).
type handedMessage struct {
	m  *queue.Message
	at time.Time
}

// Reserve is the spool's Handoff: it leases the messages of a batch about to
// be stored to this worker, as long as those waiting in memory stay within
// MaxHanded and MaxHandedBytes. Paced messages are left to claims: they are
// not due yet.
func (w *Worker) Reserve(batch []*queue.Message) {
	until := w.now().Add(w.Lease)
	w.hmu.Lock()
	defer w.hmu.Unlock()
	// The spool calls Reserve and Queued in turn from one goroutine, and
	// between the two the messages waiting only decrease: counting from
	// here keeps the bounds.
	n, size := len(w.handed), w.handedBytes
	for _, m := range batch {
		if !m.NotBefore.IsZero() || n >= w.MaxHanded || size+m.Size > w.MaxHandedBytes {
			continue
		}
		m.LeaseOwner, m.LeaseUntil = w.owner, until
		n++
		size += m.Size
	}
}

// Queued is the spool's Handoff: the batch is stored, and the messages
// leased to this worker wait in memory for its next pass.
func (w *Worker) Queued(batch []*queue.Message) {
	at := time.Now()
	unleased := false
	w.hmu.Lock()
	for _, m := range batch {
		if m.LeaseOwner != w.owner {
			unleased = true
			continue
		}
		w.handed = append(w.handed, handedMessage{m: m, at: at})
		w.handedBytes += m.Size
	}
	w.hmu.Unlock()
	if unleased {
		w.claimWanted.Store(true)
	}
	w.signal()
}

// takeHanded takes up to BatchSize handed messages, each with its
// recipients due, and returns the deadline of their relaying: three
// quarters of the lease after the oldest was handed over, as for a claimed
// batch. A message handed over longer ago is left to its lease: once it
// runs out, a claim delivers it.
func (w *Worker) takeHanded() ([]*queue.Message, time.Time) {
	w.hmu.Lock()
	n := min(len(w.handed), max(w.BatchSize, 1))
	taken := slices.Clone(w.handed[:n])
	// Cleared, so that the array does not keep the bodies.
	clear(w.handed[:n])
	w.handed = w.handed[n:]
	if len(w.handed) == 0 {
		w.handed = nil
	}
	for _, h := range taken {
		w.handedBytes -= h.m.Size
	}
	w.hmu.Unlock()
	var msgs []*queue.Message
	var deadline time.Time
	now := time.Now()
	for _, h := range taken {
		end := h.at.Add(w.Lease * 3 / 4)
		if !now.Before(end) {
			w.log.Warn("handed-over message waited too long; it is delivered once its lease runs out", "queue_id", h.m.QueueID)
			continue
		}
		if deadline.IsZero() || end.Before(deadline) {
			deadline = end
		}
		msgs = append(msgs, withDue(h.m))
	}
	return msgs, deadline
}

// releaseHanded ends the leases of the handed-over messages not started.
func (w *Worker) releaseHanded() {
	w.hmu.Lock()
	var ids []string
	for _, h := range w.handed {
		ids = append(ids, h.m.QueueID)
	}
	w.handed, w.handedBytes = nil, 0
	w.hmu.Unlock()
	lr, ok := w.store.(leaseReleaser)
	if !ok || len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lr.ReleaseLeases(ctx, w.owner, ids); err != nil {
		w.log.Warn("releasing the leases of messages not delivered; they are delivered once the leases run out", "messages", len(ids), "err", err)
	}
}

// withDue gives a message just stored its recipients as a claim would:
// every envelope recipient pending, due at once, each address once.
func withDue(m *queue.Message) *queue.Message {
	m.Due = make([]queue.Recipient, 0, len(m.Recipients))
	for _, addr := range m.Recipients {
		if !slices.ContainsFunc(m.Due, func(r queue.Recipient) bool { return r.Address == addr }) {
			m.Due = append(m.Due, queue.Recipient{Address: addr, State: queue.RecipientPending,
				NextAttemptAt: m.ReceivedAt, UpdatedAt: m.ReceivedAt})
		}
	}
	return m
}

func (w *Worker) now() time.Time { return w.Now() }

// Wake tells the worker that messages in the queue may be due: its next
// pass claims. It never blocks.
func (w *Worker) Wake() {
	w.claimWanted.Store(true)
	w.signal()
}

// signal starts the worker's next pass. It never blocks.
func (w *Worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// RetryNow is for an admin's retry or release: next hops that could not
// be reached a moment ago are tried again at once, and the worker looks
// at the queue now. It never blocks.
func (w *Worker) RetryNow() {
	w.Relay.ForgetDead()
	w.Wake()
}

// Close ends the relay's idle connections to next hops.
func (w *Worker) Close() {
	w.Relay.Close()
}

// leaseReleaser is a Store that can end leases early (both stores can):
// the messages a stopping worker had in memory are then claimed at once,
// by any node, instead of when their leases run out.
type leaseReleaser interface {
	ReleaseLeases(ctx context.Context, owner string, queueIDs []string) error
}

// Run delivers until ctx ends; then it gives up the leases of the
// handed-over messages it did not start.
func (w *Worker) Run(ctx context.Context) {
	defer w.Close()
	defer w.releaseHanded()
	timer := time.NewTimer(0)
	defer timer.Stop()
	// A pass never starts once ctx has ended (its select below may pick
	// a wake-up over the end): what it took could not be delivered, and
	// would stay leased.
	for ctx.Err() == nil {
		n, err := w.pass(ctx, w.claimDue())
		if err != nil && ctx.Err() == nil {
			w.log.Error("delivery pass failed", "err", err)
		}
		if n > 0 && err == nil {
			continue // there may be more
		}
		w.Relay.Prune()
		timer.Reset(w.Poll)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			if w.Gather > 0 {
				timer.Reset(w.Gather)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		case <-timer.C:
		}
	}
}

// RunOnce delivers one batch of the messages handed over by the spool, if
// any, and one batch claimed from the queue. It returns how many messages
// it handled.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	return w.pass(ctx, true)
}

// pass is RunOnce, with the claim made only if claim is set.
func (w *Worker) pass(ctx context.Context, claim bool) (int, error) {
	n := 0
	if msgs, deadline := w.takeHanded(); len(msgs) > 0 {
		n = len(msgs)
		if err := w.deliver(ctx, msgs, deadline); err != nil {
			return n, err
		}
	}
	if !claim {
		return n, nil
	}
	started := time.Now()
	msgs, err := w.store.Claim(ctx, w.owner, w.now(), w.BatchSize, w.Lease)
	if err != nil || len(msgs) == 0 {
		w.lastClaim = started
		return n, err
	}
	w.lastClaim = time.Time{}
	return n + len(msgs), w.deliver(ctx, msgs, started.Add(w.Lease*3/4))
}

// claimDue says whether Run's next pass claims from the queue: when the
// last claim found messages (there may be more), when Wake asked for it,
// or Poll after the last claim that found none. Handed-over messages
// alone wake the worker far more often than that.
func (w *Worker) claimDue() bool {
	return w.claimWanted.Swap(false) || w.lastClaim.IsZero() || time.Since(w.lastClaim) >= w.Poll
}

// deliver delivers a batch of leased messages: local deliveries are
// recorded in one transaction, then each relayed message's outcome as soon
// as its transactions with the next hops end (outcomes that are ready
// together share a commit). Relaying stops at deadline, before the lease
// runs out.
func (w *Worker) deliver(ctx context.Context, msgs []*queue.Message, deadline time.Time) error {
	routes := newRouteTable(w.store)
	var local []store.Delivery
	var relayed []*plan
	for _, m := range msgs {
		p, err := w.plan(ctx, m, routes)
		if err != nil {
			// Left leased: it is tried again once the lease runs out.
			w.log.Error("delivery failed, will retry", "queue_id", m.QueueID, "err", err)
			continue
		}
		if len(p.jobs) == 0 {
			p.finish()
			local = append(local, p.delivery)
		} else {
			relayed = append(relayed, p)
		}
	}
	if len(local) > 0 {
		if err := w.store.Finish(ctx, local); err != nil {
			return err
		}
	}
	if len(relayed) > 0 {
		relayCtx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return w.relayAll(relayCtx, ctx, relayed)
	}
	return nil
}

// plan resolves every due recipient of m.
func (w *Worker) plan(ctx context.Context, m *queue.Message, routes *routeTable) (*plan, error) {
	p := &plan{m: m, delivery: store.Delivery{QueueID: m.QueueID}, seen: map[int64]*row{}, relayed: map[string]*row{}}
	for _, rcpt := range m.Due {
		p.rows = append(p.rows, &row{rcpt: rcpt})
	}
	// resolve appends group members to p.rows; they are resolved already.
	for _, r := range p.rows[:len(m.Due)] {
		if err := w.resolve(ctx, p, r, routes); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// relayAll runs the relay transactions of the plans, several messages at
// once. Network work stops when relayCtx ends; outcomes are recorded under
// ctx as they come in: each Finish records every outcome that is ready by
// then, so that while one commit is being synced the next ones gather
// (group commit, as the spool does). With a next hop down, thousands of
// deferrals then cost a few commits, not one each.
func (w *Worker) relayAll(relayCtx, ctx context.Context, plans []*plan) error {
	w.loadBodies(ctx, plans)
	// Buffered for every plan: a relay never waits for the recorder.
	done := make(chan store.Delivery, len(plans))
	var mu sync.Mutex
	var errs []error
	go func() {
		sem := make(chan struct{}, max(w.Concurrency, 1))
		var wg sync.WaitGroup
		for _, p := range plans {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				d, err := w.relayPlan(relayCtx, ctx, p)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				done <- d
			})
		}
		wg.Wait()
		close(done)
	}()
	var finishErrs []error
	for d := range done {
		batch := []store.Delivery{d}
	gather:
		for len(batch) < max(w.BatchSize, 1) {
			select {
			case more, ok := <-done:
				if !ok {
					break gather
				}
				batch = append(batch, more)
			default:
				break gather
			}
		}
		if err := w.store.Finish(ctx, batch); err != nil {
			// The next hops have their replies; if they accepted, a retry
			// after the lease ends may send the messages again.
			finishErrs = append(finishErrs, fmt.Errorf("recording the relay outcome of %d messages: %w", len(batch), err))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(append(errs, finishErrs...)...)
}

// loadBodies reads the bodies of the plans' small messages in one call,
// when the store can; relayPlan reads the others (and all of them if this
// fails).
func (w *Worker) loadBodies(ctx context.Context, plans []*plan) {
	br, ok := w.store.(bodiesReader)
	if !ok {
		return
	}
	var ids []string
	for _, p := range plans {
		if p.m.Body == nil && p.m.Size <= bodyBatchMax {
			ids = append(ids, p.m.QueueID)
		}
	}
	if len(ids) < 2 {
		return
	}
	bodies, err := br.MessageBodies(ctx, ids)
	if err != nil {
		w.log.Warn("reading message bodies; reading them one by one", "messages", len(ids), "err", err)
		return
	}
	for _, p := range plans {
		if b, ok := bodies[p.m.QueueID]; ok && p.m.Body == nil {
			p.m.Body = b
		}
	}
}

// relayPlan runs one message's transactions (one per next hop, at once)
// and returns the outcome to record.
func (w *Worker) relayPlan(relayCtx, ctx context.Context, p *plan) (store.Delivery, error) {
	// loadBodies may have read it already.
	body := p.m.Body
	if body == nil {
		var err error
		if body, err = w.store.MessageBody(ctx, p.m.QueueID); err != nil {
			// Left leased, like a directory failure: tried again later.
			return store.Delivery{}, fmt.Errorf("relaying %s: %w", p.m.QueueID, err)
		}
	}
	results := make([][]Result, len(p.jobs))
	var wg sync.WaitGroup
	for i, j := range p.jobs {
		rcpts := make([]string, len(j.rows))
		for k, r := range j.rows {
			rcpts[k] = r.rcpt.Address
		}
		wg.Go(func() {
			results[i] = w.Relay.Send(relayCtx, j.route, p.m.Sender, rcpts, body)
		})
	}
	wg.Wait()
	for i, j := range p.jobs {
		for k, r := range j.rows {
			w.apply(p, j.route, r, results[i][k])
		}
	}
	p.finish()
	return p.delivery, nil
}

// apply records a next hop's verdict on one recipient: its new state and a
// trace event carrying the reply.
func (w *Worker) apply(p *plan, route directory.Route, r *row, res Result) {
	hop := describe(route)
	attempt := r.rcpt.Attempts + 1
	addr := r.rcpt.Address
	switch res.Verdict {
	case NotAttempted:
		// Unchanged: still due, tried again in the next pass.
		w.log.Warn("relay not attempted", "queue_id", p.m.QueueID, "recipient", addr, "reason", res.Reply)
	case Accepted:
		p.settle(w, r, queue.RecipientDelivered, res.Reply)
		p.event(w, addr, trace.EventDelivered, trace.StatusDelivered,
			fmt.Sprintf("delivered to next hop %s (attempt %d): %s", hop, attempt, res.Reply))
	case Permanent:
		p.settle(w, r, queue.RecipientFailed, res.Reply)
		p.event(w, addr, trace.EventFailed, trace.StatusFailed,
			fmt.Sprintf("refused by next hop %s (attempt %d): %s", hop, attempt, res.Reply))
	case Temporary:
		next, expired := w.Retry.Next(attempt, p.m.ReceivedAt, w.now())
		if expired {
			p.settle(w, r, queue.RecipientFailed, res.Reply)
			p.event(w, addr, trace.EventFailed, trace.StatusFailed,
				fmt.Sprintf("gave up after %d attempts: the message is older than the maximum age of %s; last reply from next hop %s: %s",
					attempt, w.Retry.MaxAge, hop, res.Reply))
			return
		}
		r.rcpt.State, r.rcpt.Attempts, r.rcpt.NextAttemptAt, r.rcpt.LastReply = queue.RecipientDeferred, attempt, next, res.Reply
		r.rcpt.UpdatedAt = w.now()
		r.changed = true
		p.event(w, addr, trace.EventDeferred, trace.StatusPending,
			fmt.Sprintf("deferred by next hop %s (attempt %d): %s; next attempt at %s", hop, attempt, res.Reply, next.UTC().Format(time.RFC3339)))
	}
}

// finish gives rows that reach the same person as another row that row's
// outcome, and collects the changed recipient states into the delivery.
func (p *plan) finish() {
	for _, r := range p.rows {
		src := r.sameAs
		if src == nil || !src.changed && src.rcpt.State.Open() {
			continue
		}
		r.rcpt.State, r.rcpt.NextAttemptAt, r.rcpt.LastReply, r.rcpt.UpdatedAt = src.rcpt.State, src.rcpt.NextAttemptAt, src.rcpt.LastReply, src.rcpt.UpdatedAt
		r.rcpt.Attempts++
		r.changed = true
	}
	for _, r := range p.rows {
		if r.changed {
			p.delivery.Recipients = append(p.delivery.Recipients, r.rcpt)
		}
	}
}
