// Package tracetail shares the reading of new trace events among the parts
// of a node that each follow trace with a cursor of their own: the usage
// meter and the webhook dispatcher read every event, a second or less
// apart, so each event is read from the store once for both.
package tracetail

import (
	"context"
	"sort"
	"sync"

	"hve/internal/store"
)

// Source is where events are read: the store's MeterEvents, which returns
// events in id order and, for the ids up to the last it returns, every event
// there will ever be (none with a lower id becomes visible later).
type Source interface {
	MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error)
}

// Reader is a Source that keeps the latest run of events it read, so that a
// second reader following the first is served from memory. Events are never
// changed once written, and a run (lo, hi] read from the source holds every
// event of its ids, so what it serves is what the source would have.
type Reader struct {
	src Source
	max int

	mu sync.Mutex
	// events are every event with an id in (lo, hi], in id order.
	lo, hi int64
	events []store.MeterEvent
}

// New returns a Reader over src that keeps the latest max events read (up
// to twice that many between trims).
func New(src Source, max int) *Reader {
	return &Reader{src: src, max: max, lo: -1, hi: -1}
}

// MeterEvents returns up to limit events after afterID, as src does.
func (r *Reader) MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var kept []store.MeterEvent
	if afterID >= r.lo && afterID < r.hi {
		i := sort.Search(len(r.events), func(i int) bool { return r.events[i].ID > afterID })
		j := min(i+limit, len(r.events))
		// Capped, so that an append by the caller copies instead of
		// writing into the run.
		kept = r.events[i:j:j]
		if len(kept) == limit {
			return kept, nil
		}
		afterID, limit = r.hi, limit-len(kept)
	}
	page, err := r.src.MeterEvents(ctx, afterID, limit)
	if err != nil {
		if len(kept) > 0 {
			return kept, nil
		}
		return nil, err
	}
	r.keep(afterID, page)
	if len(kept) == 0 {
		return page, nil
	}
	return append(kept, page...), nil
}

// keep adds page, the events after afterID, to the run, or starts a new run
// with it when it does not follow on.
func (r *Reader) keep(afterID int64, page []store.MeterEvent) {
	if afterID != r.hi {
		r.lo, r.hi, r.events = afterID, afterID, nil
	}
	if len(page) == 0 {
		return
	}
	r.events = append(r.events, page...)
	r.hi = page[len(page)-1].ID
	// Trimmed by halves, so that the run is not copied on every read.
	if len(r.events) > 2*r.max {
		drop := len(r.events) - r.max
		r.lo = r.events[drop-1].ID
		r.events = append([]store.MeterEvent(nil), r.events[drop:]...)
	}
}
