package limits

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/store"
)

// countingCounters counts the calls that reach the store.
type countingCounters struct {
	store.Counters
	leases, returns atomic.Int64
}

func (c *countingCounters) LeaseQuota(ctx context.Context, l store.QuotaLease) (int64, int64, error) {
	c.leases.Add(1)
	return c.Counters.LeaseQuota(ctx, l)
}

func (c *countingCounters) ReturnQuota(ctx context.Context, key string, bucket time.Time, n int64) error {
	c.returns.Add(1)
	return c.Counters.ReturnQuota(ctx, key, bucket, n)
}

func daily(max int64) Limit {
	return Limit{Key: "account/1/rcpt", Max: max, Window: CalendarDay,
		Subject: Subject{TenantID: 1, Kind: "account", ID: 1, Name: "app@contoso.test"}}
}

// storeCount is the counter's total in the store for the clock's bucket.
func storeCount(t *testing.T, st store.Counters, l Limit, now time.Time) int64 {
	t.Helper()
	list, err := st.QuotaBuckets(ctx, l.counterKey(), l.Window.since(now))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, b := range list {
		n += b.Used
	}
	return n
}

func engineReserve(t *testing.T, e *Engine, l Limit) Reservation {
	t.Helper()
	r, err := e.Reserve(ctx, l, 1)
	if err != nil {
		t.Fatalf("Reserve(%s): %v", l.Key, err)
	}
	return r
}

// race runs goroutines on nodes engines sharing one store; each goroutine
// reserves one unit at a time, releases a few (a refused DATA, an RSET)
// and commits the rest, until the counter refuses it. It returns the
// units committed.
func race(t *testing.T, nodes []*Engine, l Limit, goroutines int) int64 {
	t.Helper()
	var committed, refused atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		e := nodes[g%len(nodes)]
		wg.Go(func() {
			for {
				r, err := e.Reserve(ctx, l, 1)
				var ex *ExceededError
				if errors.As(err, &ex) {
					if ex.Limit != l.Max {
						t.Errorf("refusal names limit %d, want %d", ex.Limit, l.Max)
					}
					refused.Add(1)
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if rand.IntN(5) == 0 {
					r.Release(ctx)
					continue
				}
				r.Commit(ctx)
				committed.Add(1)
			}
		})
	}
	wg.Wait()
	if refused.Load() != int64(goroutines) {
		t.Errorf("%d goroutines refused, want all %d", refused.Load(), goroutines)
	}
	return committed.Load()
}

// TestEngineExactUnderConcurrency: 200 goroutines racing one account's
// daily quota on one node, then on three nodes sharing the counters, end
// with exactly the limit committed, never one more.
func TestEngineExactUnderConcurrency(t *testing.T) {
	for _, nodes := range []int{1, 3} {
		st := NewMemCounters()
		var engines []*Engine
		for range nodes {
			engines = append(engines, NewEngine(st, EngineConfig{}))
		}
		l := daily(5000)
		if got := race(t, engines, l, 200); got != 5000 {
			t.Errorf("%d nodes: %d recipients committed, want exactly 5000", nodes, got)
		}
		// Nodes may still hold units leased and not used; the store never
		// counts more than the limit, and after Close exactly what was
		// committed.
		if n := storeCount(t, st, l, time.Now()); n > 5000 {
			t.Errorf("%d nodes: the store counts %d, over the limit", nodes, n)
		}
		for _, e := range engines {
			if err := e.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := storeCount(t, st, l, time.Now()); n != 5000 {
			t.Errorf("%d nodes: after Close the store counts %d, want 5000", nodes, n)
		}
	}
}

func TestEngineServesFromBlocks(t *testing.T) {
	st := &countingCounters{Counters: NewMemCounters()}
	e := NewEngine(st, EngineConfig{})
	l := daily(1_000_000_000)
	for range 10_000 {
		engineReserve(t, e, l).Commit(ctx)
	}
	// The first lease learns the count, the next ones take blocks of
	// DefaultMaxBlock.
	if n := st.leases.Load(); n > 12 {
		t.Errorf("%d leases for 10000 units, want about 11", n)
	}
	// An unlimited counter is the caller's business: Reserve refuses to
	// count it rather than count it for nothing.
	if _, err := e.Reserve(ctx, daily(0), 1); err == nil || errors.Is(err, ErrExceeded) {
		t.Errorf("Reserve of a limit without a maximum: %v, want a usage error", err)
	}
}

func TestEngineReleaseGivesBack(t *testing.T) {
	clk := newClock()
	st := NewMemCounters()
	e := NewEngine(st, EngineConfig{Clock: clk.Now})
	l := daily(3)
	a, b := engineReserve(t, e, l), engineReserve(t, e, l)
	c := engineReserve(t, e, l)
	_, err := e.Reserve(ctx, l, 1)
	if ex := exceeded(t, err); ex.Limit != 3 {
		t.Errorf("refusal %+v", ex)
	}
	// A released unit (RSET, a message refused at DATA) can be used again.
	a.Release(ctx)
	a.Release(ctx) // twice does nothing
	d := engineReserve(t, e, l)
	b.Commit(ctx)
	c.Commit(ctx)
	d.Commit(ctx)
	d.Release(ctx) // after Commit does nothing
	if held, block := e.Usage(l); held != 0 || block != 0 {
		t.Errorf("held %d, block %d; want 0, 0", held, block)
	}
	if n := storeCount(t, st, l, clk.Now()); n != 3 {
		t.Errorf("store counts %d, want 3", n)
	}
}

// TestEngineCalendarDay: a daily counter resets at 00:00 UTC, whatever the
// time zone of the clock.
func TestEngineCalendarDay(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 11, 22, 23, 59, 58, 0, time.FixedZone("CET", 3600))} // 22:59:58 UTC
	st := NewMemCounters()
	e := NewEngine(st, EngineConfig{Clock: clk.Now})
	l := daily(2)
	engineReserve(t, e, l).Commit(ctx)
	late := engineReserve(t, e, l) // reserved on the 22nd, committed on the 23rd
	_, err := e.Reserve(ctx, l, 1)
	midnight := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	if ex := exceeded(t, err); !ex.FreesAt.Equal(midnight) {
		t.Errorf("FreesAt %v, want %v", ex.FreesAt, midnight)
	}
	clk.advance(time.Hour + time.Second) // 23:59:59 UTC: not yet
	if _, err := e.Reserve(ctx, l, 1); err == nil {
		t.Fatal("at 23:59:59 UTC, a third unit")
	}
	clk.advance(time.Second)
	if _, err := e.Reserve(ctx, l, 1); err != nil {
		t.Fatalf("at 00:00 UTC: %v", err)
	}
	late.Commit(ctx)
	engineReserve(t, e, l)
	_, err = e.Reserve(ctx, l, 1)
	if ex := exceeded(t, err); !ex.FreesAt.Equal(midnight.Add(24 * time.Hour)) {
		t.Errorf("FreesAt %v on the 23rd, want midnight of the 24th", ex.FreesAt)
	}
	// A reservation of the 22nd released on the 23rd goes back to the
	// 22nd: it frees nothing today.
	clk.advance(-time.Hour)
	old := engineReserve(t, e, Limit{Key: "other", Max: 1, Window: CalendarDay})
	clk.advance(time.Hour)
	engineReserve(t, e, Limit{Key: "other", Max: 1, Window: CalendarDay})
	old.Release(ctx)
	if _, err := e.Reserve(ctx, Limit{Key: "other", Max: 1, Window: CalendarDay}, 1); err == nil {
		t.Error("a unit of yesterday released today made room today")
	}
}

// TestEngineRollingWindow: a rolling window frees units as their minute
// bucket ages out, and says when.
func TestEngineRollingWindow(t *testing.T) {
	clk := newClock() // 14:04:30
	st := NewMemCounters()
	e := NewEngine(st, EngineConfig{Clock: clk.Now})
	l := Limit{Key: "mailbox/1/rcpt", Max: 10, Window: Rolling(24*time.Hour, time.Minute)}
	for range 3 {
		engineReserve(t, e, l).Commit(ctx) // the 14:04 bucket
	}
	clk.advance(2 * time.Hour)
	for range 7 {
		engineReserve(t, e, l).Commit(ctx) // the 16:04 bucket
	}
	_, err := e.Reserve(ctx, l, 2)
	if ex := exceeded(t, err); !ex.FreesAt.Equal(time.Date(2026, 11, 23, 14, 5, 0, 0, time.UTC)) {
		t.Errorf("FreesAt %v, want 14:05 next day", ex.FreesAt)
	}
	_, err = e.Reserve(ctx, l, 5)
	if ex := exceeded(t, err); !ex.FreesAt.Equal(time.Date(2026, 11, 23, 16, 5, 0, 0, time.UTC)) {
		t.Errorf("FreesAt for 5 units %v, want 16:05 next day", ex.FreesAt)
	}
	_, err = e.Reserve(ctx, l, 11)
	if ex := exceeded(t, err); !ex.FreesAt.IsZero() {
		t.Errorf("FreesAt for 11 units %v, want zero", ex.FreesAt)
	}
	clk.advance(22*time.Hour + 29*time.Second) // 14:04:59 next day
	if _, err := e.Reserve(ctx, l, 1); err == nil {
		t.Fatal("the 14:04 bucket stopped counting early")
	}
	clk.advance(time.Second) // 14:05:00
	for range 3 {
		engineReserve(t, e, l)
	}
	if _, err := e.Reserve(ctx, l, 1); err == nil {
		t.Fatal("more than the 3 freed units")
	}
	clk.advance(3 * time.Hour)
	engineReserve(t, e, l)
}

// TestEngineRefusalFromMemory: a client that keeps trying a full counter
// does not make the node ask the store each time; a release, a raised
// limit or a second later it asks again.
func TestEngineRefusalFromMemory(t *testing.T) {
	clk := newClock()
	st := &countingCounters{Counters: NewMemCounters()}
	e := NewEngine(st, EngineConfig{Clock: clk.Now})
	l := daily(1)
	r := engineReserve(t, e, l)
	before := st.leases.Load()
	for range 100 {
		if _, err := e.Reserve(ctx, l, 1); err == nil {
			t.Fatal("over the limit")
		}
	}
	if n := st.leases.Load() - before; n != 1 {
		t.Errorf("100 refusals asked the store %d times, want 1", n)
	}
	l.Max = 2
	engineReserve(t, e, l)
	r.Release(ctx)
	engineReserve(t, e, l)
}

// TestEngineLoweredLimit: units leased under a higher limit do not let the
// counter pass a lowered one.
func TestEngineLoweredLimit(t *testing.T) {
	st := NewMemCounters()
	e := NewEngine(st, EngineConfig{})
	l := daily(1000)
	for range 10 {
		engineReserve(t, e, l).Commit(ctx)
	}
	engineReserve(t, e, l).Commit(ctx) // a block is leased now
	if _, block := e.Usage(l); block == 0 {
		t.Fatal("no block leased")
	}
	l.Max = 12
	engineReserve(t, e, l).Commit(ctx)
	if _, err := e.Reserve(ctx, l, 1); err == nil {
		t.Error("the 13th unit under a limit of 12")
	}
}

// TestEngineNodeLoss: units leased by a node that dies stay counted (the
// quota is lower, never exceeded); a node that closes gives them back, and
// an idle one after IdleReturn.
func TestEngineNodeLoss(t *testing.T) {
	clk := newClock()
	st := NewMemCounters()
	cfg := EngineConfig{Clock: clk.Now, IdleReturn: time.Minute}
	a, b := NewEngine(st, cfg), NewEngine(st, cfg)
	l := daily(1000)
	engineReserve(t, a, l).Commit(ctx)
	engineReserve(t, a, l).Commit(ctx) // leases a block
	a.refills.Wait()                   // and perhaps one ahead
	_, block := a.Usage(l)
	if block == 0 {
		t.Fatal("no block leased")
	}
	if n := race(t, []*Engine{b}, l, 20); n != 1000-2-block {
		t.Errorf("b committed %d, want %d (the limit less a's units)", n, 1000-2-block)
	}
	// An idle node's block comes back at its next sweep.
	if err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, blk := a.Usage(l); blk != block {
		t.Errorf("a swept a block in use %s ago", "0s")
	}
	clk.advance(time.Minute)
	if err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if len(a.counters) != 0 {
		t.Errorf("a still tracks %d idle counters", len(a.counters))
	}
	if n := race(t, []*Engine{b}, l, 5); n != block {
		t.Errorf("after a's sweep, b committed %d more, want %d", n, block)
	}
}

// TestEngineWarnLevel: the Observer hears once per counter and day, across
// nodes, from the reservation that reaches the level.
func TestEngineWarnLevel(t *testing.T) {
	clk := newClock()
	st := NewMemCounters()
	var mu sync.Mutex
	var heard []Crossing
	obs := ObserverFunc(func(_ context.Context, c Crossing) {
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, c)
	})
	cfg := EngineConfig{Clock: clk.Now, Observer: obs}
	nodes := []*Engine{NewEngine(st, cfg), NewEngine(st, cfg)}
	l := daily(5000)
	l.WarnAt = 80
	var count atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		e := nodes[i%2]
		wg.Go(func() {
			for count.Load() < 3999 {
				r, err := e.Reserve(ctx, l, 1)
				if err != nil {
					t.Error(err)
					return
				}
				r.Commit(ctx)
				count.Add(1)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	n := len(heard)
	mu.Unlock()
	// Racers may pass 3999 a little; the level is 4000.
	if count.Load() < 4000 && n != 0 {
		t.Errorf("warned at %d recipients, before the level of 4000", count.Load())
	}
	for count.Load() < 4100 {
		engineReserve(t, nodes[int(count.Load())%2], l).Commit(ctx)
		count.Add(1)
	}
	mu.Lock()
	if len(heard) != 1 {
		t.Fatalf("heard %d crossings, want 1: %+v", len(heard), heard)
	}
	c := heard[0]
	mu.Unlock()
	if c.Used != 4000 || c.Limit != 5000 || c.WarnAt != 80 || c.Subject.Name != "app@contoso.test" ||
		!c.Window.Equal(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("crossing %+v, want used 4000 of 5000 on 2026-11-22", c)
	}
	// The next day, once more.
	clk.advance(24 * time.Hour)
	for range 4000 {
		engineReserve(t, nodes[0], l).Commit(ctx)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 2 || heard[1].Used != 4000 {
		t.Errorf("the next day: heard %+v, want a second crossing at 4000", heard)
	}
}

func TestWindowKeys(t *testing.T) {
	for w, want := range map[Window]string{
		CalendarDay:                        "day",
		Rolling(24*time.Hour, time.Minute): "rolling-24h0m0s/1m0s",
		Rolling(time.Minute, time.Second):  "rolling-1m0s/1s",
		{Period: time.Hour}:                "calendar-1h0m0s",
	} {
		if got := w.String(); got != want {
			t.Errorf("%+v: %q, want %q", w, got, want)
		}
	}
}

// BenchmarkEngineReserveCommit is the hot path of one recipient under a
// limit that is not reached: reserve from the node's block, commit.
func BenchmarkEngineReserveCommit(b *testing.B) {
	e := NewEngine(NewMemCounters(), EngineConfig{})
	l := daily(1 << 50)
	l.WarnAt = 90
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := e.Reserve(ctx, l, 1)
			if err != nil {
				b.Fatal(err)
			}
			r.Commit(ctx)
		}
	})
}
