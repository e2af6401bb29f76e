package trace

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Store is where a Recorder writes.
type Store interface {
	AddEvents(ctx context.Context, events []Event) error
}

// Recorder writes events that are not part of a larger transaction (such as
// submission refusals) in the background, in batches, so that an SMTP
// session never waits for a trace write.
type Recorder struct {
	store  Store
	events chan Event
	done   chan struct{}
	log    *slog.Logger

	mu     sync.RWMutex
	closed bool
}

// NewRecorder starts a recorder; Close flushes it.
func NewRecorder(s Store, log *slog.Logger) *Recorder {
	r := &Recorder{store: s, events: make(chan Event, 4096), done: make(chan struct{}), log: log}
	go r.run()
	return r
}

// Record queues e for writing. It blocks only when thousands of events are
// already waiting, which slows refusals down rather than losing their trace.
// After Close, events are only logged.
func (r *Recorder) Record(e Event) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.log.Warn("trace event after shutdown not stored", "event", e.Event, "sender", e.Sender, "detail", e.Detail)
		return
	}
	r.events <- e
}

// Close writes what is queued and stops.
// It may be called more than once.
func (r *Recorder) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.events)
	}
	r.mu.Unlock()
	<-r.done
}

func (r *Recorder) run() {
	defer close(r.done)
	for e := range r.events {
		batch := []Event{e}
	gather:
		for len(batch) < 500 {
			select {
			case e, ok := <-r.events:
				if !ok {
					break gather
				}
				batch = append(batch, e)
			default:
				break gather
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := r.store.AddEvents(ctx, batch); err != nil {
			r.log.Error("writing trace events failed", "events", len(batch), "err", err)
		}
		cancel()
	}
}
