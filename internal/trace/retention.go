package trace

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// PruneStore is the store trace retention deletes from; see
// store.Trace.PruneTrace.
type PruneStore interface {
	PruneTrace(ctx context.Context, before time.Time, limit int) (int, error)
}

// Retention deletes trace events older than Keep, every Every, in batches
// of Batch events: each batch is its own short transaction, so that the
// single SQLite writer is never held for long and submissions go on.
//
// Events of messages still in the queue are kept by the store however old
// they are. The usage meter and the webhook dispatcher are unaffected: their
// cursors only move forward by event id, and old events lie below them.
type Retention struct {
	Store PruneStore
	// Keep is how long events are kept; 0 or less turns retention off.
	Keep time.Duration
	// Every is the time between runs; 0 means an hour.
	Every time.Duration
	// Batch is the most events deleted in one transaction; 0 means 5000.
	Batch int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Run prunes at once and then every Every until ctx ends. It returns at
// once when Keep is 0.
func (r *Retention) Run(ctx context.Context) {
	if r.Keep <= 0 {
		return
	}
	every := r.Every
	if every <= 0 {
		every = time.Hour
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if n, err := r.Prune(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			// The next run tries again; old events only wait a little longer.
			r.log().Error("trace retention", "err", err, "deleted", n)
		} else if n > 0 {
			r.log().Info("trace retention deleted old events", "deleted", n, "keep", r.Keep)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Prune deletes every event older than Keep, batch after batch, and
// returns how many it deleted.
func (r *Retention) Prune(ctx context.Context) (int, error) {
	if r.Keep <= 0 {
		return 0, nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	batch := r.Batch
	if batch <= 0 {
		batch = 5000
	}
	// One bound for the whole run, so that it ends even while new events
	// keep crossing it.
	before := now().Add(-r.Keep)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := r.Store.PruneTrace(ctx, before, batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("deleting trace events before %s: %w", before.UTC().Format(time.RFC3339), err)
		}
		if n < batch {
			return total, nil
		}
	}
}

func (r *Retention) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}
