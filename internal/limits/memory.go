package limits

import (
	"context"
	"sync"
	"time"
)

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
	_ Slots = (*Concurrency)(nil)
	_ Pacer = (*RatePacer)(nil)
)
