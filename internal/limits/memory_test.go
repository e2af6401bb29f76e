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

func exceeded(t *testing.T, err error) *ExceededError {
	t.Helper()
	var e *ExceededError
	if !errors.As(err, &e) || !errors.Is(err, ErrExceeded) {
		t.Fatalf("error %v, want an *ExceededError", err)
	}
	return e
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
