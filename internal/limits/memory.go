package limits

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// BucketWidth is the granularity of RollingWindow: uses are counted per
// minute, so a key's state is at most period/BucketWidth numbers.
const BucketWidth = time.Minute

// RollingWindow is an in-memory Quota: at most limit units per key in any
// period. Committed units are counted in minute buckets; a bucket stops
// counting one whole period after its minute ended, so the limit is never
// exceeded in any period-long window (a use may count up to a minute
// longer than strictly needed, never shorter).
type RollingWindow struct {
	limit  int64
	period time.Duration
	clock  Clock

	mu   sync.Mutex
	keys map[string]*window
}

// window is one key's state.
type window struct {
	buckets []bucket // oldest first
	used    int64    // the sum of the buckets
	held    int64    // reserved, not yet committed or released
}

type bucket struct {
	start time.Time
	n     int64
}

// NewRollingWindow returns a quota of limit units per key in any period.
func NewRollingWindow(limit int64, period time.Duration, clock Clock) *RollingWindow {
	if clock == nil {
		clock = time.Now
	}
	return &RollingWindow{limit: limit, period: period, clock: clock, keys: map[string]*window{}}
}

// Limit is the number of units a key may use in a period.
func (w *RollingWindow) Limit() int64 { return w.limit }

// expiry is when a bucket stops counting.
func (w *RollingWindow) expiry(b bucket) time.Time { return b.start.Add(BucketWidth + w.period) }

// state returns key's window with expired buckets dropped; w.mu is held.
func (w *RollingWindow) state(key string, now time.Time) *window {
	st := w.keys[key]
	if st == nil {
		st = &window{}
		w.keys[key] = st
	}
	drop := 0
	for drop < len(st.buckets) && !now.Before(w.expiry(st.buckets[drop])) {
		st.used -= st.buckets[drop].n
		drop++
	}
	st.buckets = st.buckets[drop:]
	return st
}

// forget removes an idle key, so that the map holds only keys in use;
// w.mu is held.
func (w *RollingWindow) forget(key string, st *window) {
	if st.held == 0 && len(st.buckets) == 0 {
		delete(w.keys, key)
	}
}

// Reserve implements Quota.
func (w *RollingWindow) Reserve(_ context.Context, key string, n int64) (Reservation, error) {
	if n <= 0 {
		return nil, fmt.Errorf("limits: reserving %d units of %s: must be positive", n, key)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock()
	st := w.state(key, now)
	if st.used+st.held+n > w.limit {
		err := &ExceededError{Key: key, Limit: w.limit, FreesAt: w.freesAt(st, n)}
		w.forget(key, st)
		return nil, err
	}
	st.held += n
	return &reservation{w: w, key: key, n: n}, nil
}

// freesAt is when enough committed units will have aged out for n more to
// fit, or zero if that alone will not do (units held by others, or n over
// the limit); w.mu is held.
func (w *RollingWindow) freesAt(st *window, n int64) time.Time {
	need := st.used + st.held + n - w.limit
	if st.held+n > w.limit {
		return time.Time{}
	}
	var freed int64
	for _, b := range st.buckets {
		freed += b.n
		if freed >= need {
			return w.expiry(b)
		}
	}
	return time.Time{}
}

// Usage returns the units key has committed in the current period and
// those it holds reserved.
func (w *RollingWindow) Usage(key string) (used, held int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.state(key, w.clock())
	used, held = st.used, st.held
	w.forget(key, st)
	return used, held
}

// reservation implements Reservation for RollingWindow.
type reservation struct {
	w    *RollingWindow
	key  string
	n    int64
	done bool // guarded by w.mu
}

// Commit implements Reservation.
func (r *reservation) Commit(context.Context) error {
	w := r.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	now := w.clock()
	st := w.state(r.key, now)
	st.held -= r.n
	start := now.Truncate(BucketWidth)
	if last := len(st.buckets) - 1; last >= 0 && st.buckets[last].start.Equal(start) {
		st.buckets[last].n += r.n
	} else {
		st.buckets = append(st.buckets, bucket{start: start, n: r.n})
	}
	st.used += r.n
	return nil
}

// Release implements Reservation.
func (r *reservation) Release(context.Context) error {
	w := r.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	st := w.state(r.key, w.clock())
	st.held -= r.n
	w.forget(r.key, st)
	return nil
}

// Concurrency is an in-memory Slots: at most limit holders per key.
type Concurrency struct {
	limit int64

	mu    sync.Mutex
	inUse map[string]int64
}

// NewConcurrency returns Slots of limit holders per key.
func NewConcurrency(limit int64) *Concurrency {
	return &Concurrency{limit: limit, inUse: map[string]int64{}}
}

// Limit is the number of holders a key may have at once.
func (c *Concurrency) Limit() int64 { return c.limit }

// Acquire implements Slots.
func (c *Concurrency) Acquire(_ context.Context, key string) (Slot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inUse[key] >= c.limit {
		return nil, &ExceededError{Key: key, Limit: c.limit}
	}
	c.inUse[key]++
	return &slot{c: c, key: key}, nil
}

// InUse is the number of slots key holds.
func (c *Concurrency) InUse(key string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inUse[key]
}

// slot implements Slot for Concurrency.
type slot struct {
	c    *Concurrency
	key  string
	done bool // guarded by c.mu
}

// Release implements Slot.
func (s *slot) Release(context.Context) error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	if c.inUse[s.key]--; c.inUse[s.key] <= 0 {
		delete(c.inUse, s.key)
	}
	return nil
}

// RatePacer is an in-memory Pacer: n events per period, the first n at
// once (the burst), then one every period/n. This is the generic cell rate
// algorithm: each key keeps the theoretical time its next event would be
// due if events came at exactly the rate; an event may go at once while
// that time is less than a burst ahead of now.
type RatePacer struct {
	burst    int64
	interval time.Duration
	clock    Clock

	mu    sync.Mutex
	due   map[string]time.Time // per key: the theoretical arrival time
	calls int
}

// NewRatePacer returns a Pacer of n events per period.
func NewRatePacer(n int64, period time.Duration, clock Clock) *RatePacer {
	if clock == nil {
		clock = time.Now
	}
	if n < 1 {
		n = 1
	}
	return &RatePacer{burst: n, interval: period / time.Duration(n), clock: clock, due: map[string]time.Time{}}
}

// Pace implements Pacer.
func (p *RatePacer) Pace(_ context.Context, key string) (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	p.prune(now)
	tat := p.due[key]
	if tat.Before(now) {
		tat = now
	}
	at := tat.Add(-time.Duration(p.burst-1) * p.interval)
	p.due[key] = tat.Add(p.interval)
	if !at.After(now) {
		return time.Time{}, nil
	}
	return at, nil
}

// prune forgets, now and then, the keys that are back within their rate
// (their state equals a fresh one); p.mu is held.
func (p *RatePacer) prune(now time.Time) {
	p.calls++
	if p.calls%256 != 0 {
		return
	}
	for k, tat := range p.due {
		if !tat.After(now) {
			delete(p.due, k)
		}
	}
}

// The in-memory types implement the interfaces.
var (
	_ Quota = (*RollingWindow)(nil)
	_ Slots = (*Concurrency)(nil)
	_ Pacer = (*RatePacer)(nil)
)
