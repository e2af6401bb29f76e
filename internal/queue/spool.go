package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hve/internal/trace"
)

// Writer is the storage the spool writes through: one call stores a batch
// of messages durably (one sync for the whole batch).
type Writer interface {
	Enqueue(ctx context.Context, msgs []*Message, events []trace.Event) error
}

// Handoff hears of every batch the spool writes, so that the delivery
// worker of this node can take new messages from memory: they are leased to
// it as they are stored, and it neither claims them nor reads them back.
type Handoff interface {
	// Reserve is called with a batch before it is written. It may lease
	// messages of it by setting their LeaseOwner and LeaseUntil; the
	// others are stored free, for any node to claim.
	Reserve(batch []*Message)
	// Queued is called with the batch once it is durable; a batch that
	// failed to be written is not passed on (its leases were never
	// stored).
	Queued(batch []*Message)
}

// ErrClosed is returned by Spool.Submit after Close.
var ErrClosed = errors.New("spool is closed")

// Spool accepts messages from many SMTP sessions at once and writes them in
// batches: while one batch is being committed, the next one gathers. Each
// sync is shared by every message that arrived meanwhile (group commit), so
// throughput grows with concurrency instead of being capped by fsync latency.
type Spool struct {
	w Writer
	// handoff, if set, hears of each batch (see Handoff).
	handoff  Handoff
	reqs     chan *submission
	maxBatch int
	maxBytes int64
	// linger is how long a batch of fewer than lingerBelow messages waits
	// for more before it is written (see gather).
	linger time.Duration

	// mu orders Submit's hand-over before Close: once closed is set, no
	// submission can enter reqs, so drain sees every one handed over.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{}
	log       *slog.Logger
}

type submission struct {
	msg    *Message
	events []trace.Event
	result chan error
}

// DefaultLinger is how long the spool lets a small batch (fewer than 8
// messages) wait for more before writing it. A commit costs about the same
// for one message as for eight (the same pages of the same B-trees), so at
// moderate rates, where batches are small, waiting this long costs a
// message 2 ms at most and saves the node a fifth of its CPU per message
// (docs/performance.md); under load batches are large and never wait.
const DefaultLinger = 2 * time.Millisecond

// lingerBelow is the size under which a batch lingers.
const lingerBelow = 8

// NewSpool starts a spool writing through w. h may be nil.
func NewSpool(w Writer, h Handoff, log *slog.Logger) *Spool {
	return newSpool(w, h, log, DefaultLinger)
}

func newSpool(w Writer, h Handoff, log *slog.Logger, linger time.Duration) *Spool {
	s := &Spool{
		w:        w,
		handoff:  h,
		reqs:     make(chan *submission, 1024),
		maxBatch: 256,
		maxBytes: 64 << 20,
		linger:   linger,
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		log:      log,
	}
	go s.run()
	return s
}

// Submit stores msg and its trace events durably, and returns nil only once
// they are on disk. It returns the store's error otherwise; nothing of the
// message is then kept.
func (s *Spool) Submit(ctx context.Context, msg *Message, events []trace.Event) error {
	sub := &submission{msg: msg, events: events, result: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.reqs <- sub:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	// Once handed over, the message may be committed whatever the caller
	// does, so wait for the outcome rather than the context.
	return <-sub.result
}

// Close stops accepting messages and waits for batches in flight.
func (s *Spool) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.done
}

func (s *Spool) run() {
	defer close(s.done)
	for {
		var first *submission
		select {
		case first = <-s.reqs:
		case <-s.closing:
			s.drain()
			return
		}
		s.commit(s.gather(first))
	}
}

// gather collects what is already waiting behind first, up to the batch
// limits. A batch still smaller than lingerBelow then waits for more, up
// to linger in all, and is written as soon as it reaches lingerBelow.
func (s *Spool) gather(first *submission) []*submission {
	batch := []*submission{first}
	size := first.msg.Size
	var lingered <-chan time.Time
	for len(batch) < s.maxBatch && size < s.maxBytes {
		var sub *submission
		select {
		case sub = <-s.reqs:
		default:
			if s.linger <= 0 || len(batch) >= lingerBelow {
				return batch
			}
			if lingered == nil {
				lingered = time.After(s.linger)
			}
			select {
			case sub = <-s.reqs:
			case <-lingered:
				return batch
			case <-s.closing:
				return batch
			}
		}
		batch = append(batch, sub)
		size += sub.msg.Size
	}
	return batch
}

// drain commits submissions that were handed over before Close.
func (s *Spool) drain() {
	for {
		select {
		case sub := <-s.reqs:
			s.commit(s.gather(sub))
		default:
			return
		}
	}
}

func (s *Spool) commit(batch []*submission) {
	msgs := make([]*Message, len(batch))
	var events []trace.Event
	for i, sub := range batch {
		msgs[i] = sub.msg
		events = append(events, sub.events...)
	}
	if s.handoff != nil {
		s.handoff.Reserve(msgs)
	}
	// The commit must not be cut short by one client hanging up: the others
	// in the batch are waiting for it.
	err := s.w.Enqueue(context.Background(), msgs, events)
	if err != nil {
		s.log.Error("spool write failed", "messages", len(msgs), "err", err)
		err = fmt.Errorf("spool: %w", err)
	}
	for _, sub := range batch {
		sub.result <- err
	}
	if err == nil && s.handoff != nil {
		s.handoff.Queued(msgs)
	}
}
