package limits

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 22, 14, 4, 30, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var ctx = context.Background()

func reserve(t *testing.T, q Quota, key string, n int64) Reservation {
	t.Helper()
	r, err := q.Reserve(ctx, key, n)
	if err != nil {
		t.Fatalf("Reserve(%s, %d): %v", key, n, err)
	}
	return r
}

func exceeded(t *testing.T, err error) *ExceededError {
	t.Helper()
	var e *ExceededError
	if !errors.As(err, &e) || !errors.Is(err, ErrExceeded) {
		t.Fatalf("error %v, want an *ExceededError", err)
	}
	return e
}

func TestRollingWindowCountsReservations(t *testing.T) {
	clk := newClock()
	w := NewRollingWindow(10, 24*time.Hour, clk.Now)
	a := reserve(t, w, "mb/1", 6)
	// Held units count: racing sessions cannot both take the last ones.
	_, err := w.Reserve(ctx, "mb/1", 5)
	if e := exceeded(t, err); e.Limit != 10 || e.Key != "mb/1" || !e.FreesAt.IsZero() {
		t.Errorf("refusal %+v: want limit 10 and no known time (the units are only held)", e)
	}
	// Other keys are independent.
	reserve(t, w, "mb/2", 10)
	b := reserve(t, w, "mb/1", 4)

	// Releasing gives the units back; committing keeps them counted.
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if used, held := w.Usage("mb/1"); used != 4 || held != 0 {
		t.Errorf("usage %d used, %d held; want 4, 0", used, held)
	}
	// A second Commit or Release of the same reservation does nothing.
	b.Commit(ctx)
	b.Release(ctx)
	a.Commit(ctx)
	if used, held := w.Usage("mb/1"); used != 4 || held != 0 {
		t.Errorf("after repeated calls: %d used, %d held; want 4, 0", used, held)
	}
	if _, err := w.Reserve(ctx, "mb/1", 0); err == nil || errors.Is(err, ErrExceeded) {
		t.Errorf("Reserve of 0 units: %v, want a usage error", err)
	}
}

func TestRollingWindowAgesOut(t *testing.T) {
	clk := newClock() // 14:04:30
	w := NewRollingWindow(10, 24*time.Hour, clk.Now)
	reserve(t, w, "k", 3).Commit(ctx) // in the 14:04 bucket
	clk.advance(2 * time.Hour)
	reserve(t, w, "k", 7).Commit(ctx) // in the 16:04 bucket

	_, err := w.Reserve(ctx, "k", 2)
	e := exceeded(t, err)
	// The 3 units of 14:04 count until the minute after next day's 14:04
	// ends: the limit holds in every 24-hour window.
	if want := time.Date(2026, 11, 23, 14, 5, 0, 0, time.UTC); !e.FreesAt.Equal(want) {
		t.Errorf("FreesAt %v, want %v", e.FreesAt, want)
	}
	// More than the first bucket frees: the time of the second.
	_, err = w.Reserve(ctx, "k", 5)
	if e := exceeded(t, err); !e.FreesAt.Equal(time.Date(2026, 11, 23, 16, 5, 0, 0, time.UTC)) {
		t.Errorf("FreesAt for 5 units %v, want 16:05 next day", e.FreesAt)
	}
	// Over the limit by itself: never.
	_, err = w.Reserve(ctx, "k", 11)
	if e := exceeded(t, err); !e.FreesAt.IsZero() {
		t.Errorf("FreesAt for 11 units %v, want zero", e.FreesAt)
	}

	clk.advance(22*time.Hour + 29*time.Second) // 14:04:59 next day: not yet
	if _, err := w.Reserve(ctx, "k", 1); err == nil {
		t.Fatal("the 14:04 bucket stopped counting early")
	}
	clk.advance(time.Second) // 14:05:00
	reserve(t, w, "k", 3)
	if used, held := w.Usage("k"); used != 7 || held != 3 {
		t.Errorf("usage %d used, %d held; want 7, 3", used, held)
	}
	clk.advance(3 * time.Hour)
	if used, _ := w.Usage("k"); used != 0 {
		t.Errorf("after a day, %d units still counted", used)
	}
}

func TestRollingWindowForgetsIdleKeys(t *testing.T) {
	clk := newClock()
	w := NewRollingWindow(5, time.Hour, clk.Now)
	reserve(t, w, "a", 1).Release(ctx)
	reserve(t, w, "b", 1).Commit(ctx)
	clk.advance(2 * time.Hour)
	w.Usage("b")
	if len(w.keys) != 0 {
		t.Errorf("%d keys kept, want none", len(w.keys))
	}
}

// TestRollingWindowExactUnderConcurrency: racing reservations never let
// more than the limit through.
func TestRollingWindowExactUnderConcurrency(t *testing.T) {
	w := NewRollingWindow(100, time.Hour, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				r, err := w.Reserve(ctx, "k", 1)
				if err != nil {
					continue
				}
				r.Commit(ctx)
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 100 {
		t.Errorf("%d granted, want exactly 100", granted)
	}
}

func TestConcurrency(t *testing.T) {
	c := NewConcurrency(3)
	var slots []Slot
	for range 3 {
		s, err := c.Acquire(ctx, "mb/1")
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	_, err := c.Acquire(ctx, "mb/1")
	if e := exceeded(t, err); e.Limit != 3 {
		t.Errorf("refusal %+v", e)
	}
	if _, err := c.Acquire(ctx, "mb/2"); err != nil {
		t.Errorf("another key: %v", err)
	}
	// Releasing twice frees one slot only.
	slots[0].Release(ctx)
	slots[0].Release(ctx)
	if n := c.InUse("mb/1"); n != 2 {
		t.Errorf("%d in use, want 2", n)
	}
	if _, err := c.Acquire(ctx, "mb/1"); err != nil {
		t.Errorf("after a release: %v", err)
	}
	if _, err := c.Acquire(ctx, "mb/1"); err == nil {
		t.Errorf("a fourth slot was given")
	}
	for _, s := range slots {
		s.Release(ctx)
	}
}

func TestRatePacer(t *testing.T) {
	clk := newClock()
	p := NewRatePacer(30, time.Minute, clk.Now)
	pace := func() time.Duration {
		t.Helper()
		at, err := p.Pace(ctx, "mb/1")
		if err != nil {
			t.Fatal(err)
		}
		if at.IsZero() {
			return 0
		}
		if !at.After(clk.Now()) {
			t.Fatalf("paced to %v, not after now %v", at, clk.Now())
		}
		return at.Sub(clk.Now())
	}
	// A burst of 30 goes at once.
	for i := range 30 {
		if d := pace(); d != 0 {
			t.Fatalf("message %d paced by %v, want none", i+1, d)
		}
	}
	// The excess is spread at the rate: one every 2 seconds.
	for i := 1; i <= 5; i++ {
		if d := pace(); d != time.Duration(i)*2*time.Second {
			t.Errorf("message %d paced by %v, want %v", 30+i, d, time.Duration(i)*2*time.Second)
		}
	}
	// Other keys have their own pace.
	if at, _ := p.Pace(ctx, "mb/2"); !at.IsZero() {
		t.Errorf("another key paced to %v", at)
	}
	// Time restores the burst: after 70 s the backlog (35 messages = 70 s
	// at the rate) is gone.
	clk.advance(70 * time.Second)
	if d := pace(); d != 0 {
		t.Errorf("after 70 s, paced by %v", d)
	}
	// Half-way through the backlog: only what is left of the burst goes at once.
	clk.advance(time.Minute)
	for range 30 {
		pace()
	}
	clk.advance(10 * time.Second) // 5 slots came back
	for i := range 5 {
		if d := pace(); d != 0 {
			t.Errorf("returned slot %d paced by %v", i+1, d)
		}
	}
	if d := pace(); d <= 0 {
		t.Errorf("beyond the returned slots, not paced")
	}
}

func TestRatePacerPrunes(t *testing.T) {
	clk := newClock()
	p := NewRatePacer(2, time.Minute, clk.Now)
	for i := range 300 {
		p.Pace(ctx, string(rune('a'+i%26))+string(rune('a'+i/26)))
		clk.advance(time.Minute)
	}
	if len(p.due) > 256 {
		t.Errorf("%d keys kept, want idle keys pruned", len(p.due))
	}
}
