// Package retention deletes what the store no longer needs to keep, on a
// schedule and in short batches: trace events past their retention, and
// messages that left the queue long enough ago.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"hve/internal/store"
)

// DeleteFunc deletes at most limit rows older than before and says how
// many it deleted; store.Trace.PruneTrace and store.Queue.PruneFinished
// are two.
type DeleteFunc func(ctx context.Context, before time.Time, limit int) (int, error)

// Job deletes what is older than Keep, every Every, in batches of Batch
// rows: each batch is its own short transaction, so that the single SQLite
// writer is never held for long and submissions go on.
type Job struct {
	// What names the rows in logs and errors ("trace events").
	What   string
	Delete DeleteFunc
	// Keep is how long rows are kept; 0 or less turns the job off.
	Keep time.Duration
	// Every is the time between runs; 0 means an hour.
	Every time.Duration
	// Batch is the most rows deleted in one transaction; 0 means
	// store.DefaultPruneBatch.
	Batch int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Run prunes at once and then every Every until ctx ends. It returns at
// once when Keep is 0.
func (j *Job) Run(ctx context.Context) {
	if j.Keep <= 0 {
		return
	}
	every := j.Every
	if every <= 0 {
		every = time.Hour
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if n, err := j.Prune(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			// The next run tries again; old rows only wait a little longer.
			j.log().Error("retention", "what", j.What, "err", err, "deleted", n)
		} else if n > 0 {
			j.log().Info("retention deleted old rows", "what", j.What, "deleted", n, "keep", j.Keep)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Prune deletes everything older than Keep, batch after batch, and
// returns how many rows it deleted.
func (j *Job) Prune(ctx context.Context) (int, error) {
	if j.Keep <= 0 {
		return 0, nil
	}
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	batch := j.Batch
	if batch <= 0 {
		batch = store.DefaultPruneBatch
	}
	// One bound for the whole run, so that it ends even while new rows
	// keep crossing it.
	before := now().Add(-j.Keep)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := j.Delete(ctx, before, batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("deleting %s before %s: %w", j.What, before.UTC().Format(time.RFC3339), err)
		}
		if n < batch {
			return total, nil
		}
	}
}

func (j *Job) log() *slog.Logger {
	if j.Log == nil {
		return slog.Default()
	}
	return j.Log
}
