package limits

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hve/internal/store"
)

// Window is how the units of a counter age: in calendar periods (a UTC
// day: everything counted since 00:00 UTC) or in a rolling period (any
// 24 hours), counted in buckets.
type Window struct {
	// Period is how long a unit counts: 24h for a day.
	Period time.Duration
	// Bucket is the granularity of a rolling window: units are counted per
	// bucket, and a bucket stops counting one Period after it ended (a
	// unit may count up to one bucket longer than Period, never shorter).
	// Zero makes a calendar window: periods aligned on the Unix epoch in
	// UTC, whose units all stop counting when the period ends.
	Bucket time.Duration
}

// CalendarDay counts per UTC day; it resets at 00:00 UTC.
var CalendarDay = Window{Period: 24 * time.Hour}

// Rolling returns a rolling window of period counted in buckets of bucket.
func Rolling(period, bucket time.Duration) Window {
	return Window{Period: period, Bucket: bucket}
}

// Calendar reports whether w is a calendar window.
func (w Window) Calendar() bool { return w.Bucket == 0 }

// bucketOf is the start of the bucket that counts a unit used at t.
func (w Window) bucketOf(t time.Time) time.Time {
	if w.Calendar() {
		// Truncate works on absolute time, whose origin is a UTC
		// midnight: a 24-hour period starts at 00:00 UTC.
		return t.UTC().Truncate(w.Period)
	}
	return t.UTC().Truncate(w.Bucket)
}

// since is the start of the oldest bucket that still counts at t.
func (w Window) since(t time.Time) time.Time {
	if w.Calendar() {
		return w.bucketOf(t)
	}
	return t.UTC().Add(-w.Period).Truncate(w.Bucket)
}

// expires is when the bucket starting at b stops counting.
func (w Window) expires(b time.Time) time.Time {
	if w.Calendar() {
		return b.Add(w.Period)
	}
	return b.Add(w.Bucket + w.Period)
}

// String names the window in counter keys and logs: "day", "rolling-24h0m0s/1m0s".
func (w Window) String() string {
	switch {
	case w.Calendar() && w.Period == 24*time.Hour:
		return "day"
	case w.Calendar():
		return "calendar-" + w.Period.String()
	}
	return "rolling-" + w.Period.String() + "/" + w.Bucket.String()
}

// Subject says whose counter a Limit is, for the Observer and logs.
type Subject struct {
	TenantID int64
	// Kind is "tenant", "account" or "mailbox".
	Kind string
	ID   int64
	// Name is the tenant's name or the identity's address.
	Name string
}

// Limit is one limit the engine enforces: at most Max units of the counter
// Key in any Window.
type Limit struct {
	// Key names the counter, such as "account/42/rcpt". The window is part
	// of the counter's identity: one key may be limited per day and per
	// minute, in two counters.
	Key     string
	Max     int64
	Window  Window
	Subject Subject
	// WarnAt is a percentage of Max: when the count reaches it, the
	// engine's Observer hears of it, once per window on all nodes
	// together. 0 means no warning.
	WarnAt int
}

// counterKey is the key of the counter in the store.
func (l Limit) counterKey() string { return l.Key + "/" + l.Window.String() }

// warnLevel is the count at which the warning is due; 0 when none is.
func (l Limit) warnLevel() int64 {
	if l.WarnAt <= 0 {
		return 0
	}
	// Rounded up: 80% of 5 is 4 units, 80% of 7 is 6 (5.6 is not reached
	// by 5).
	return max(1, (l.Max*int64(l.WarnAt)+99)/100)
}

// Crossing tells an Observer that a counter reached its warning level.
type Crossing struct {
	Subject Subject
	// Key is the counter's key, window included.
	Key    string
	Limit  int64
	WarnAt int
	// Used is the count when the level was reached (reserved units
	// included).
	Used int64
	// Window is the start of the window (the UTC day), At the time.
	Window, At time.Time
}

// Observer hears of counters that reach their warning level. The engine
// calls it once per counter and window across all nodes, from the session
// whose reservation reached the level: it must return quickly (hand slow
// work such as sending an alert to another goroutine).
type Observer interface {
	WarnLevelCrossed(ctx context.Context, c Crossing)
}

// ObserverFunc is a function that is an Observer.
type ObserverFunc func(ctx context.Context, c Crossing)

// WarnLevelCrossed implements Observer.
func (f ObserverFunc) WarnLevelCrossed(ctx context.Context, c Crossing) { f(ctx, c) }

// Defaults of EngineConfig.
const (
	// DefaultMaxBlock bounds the units a node leases at once. A node that
	// dies loses at most this many units of each counter it had leased
	// from (they stay counted until their window ends).
	DefaultMaxBlock = 1000
	// DefaultIdleReturn: a counter unused for this long gives its block
	// back, so that other nodes can use the units.
	DefaultIdleReturn = 30 * time.Second
	// refusalMemory: after the store refused a lease, the node refuses
	// the same counter from memory for this long instead of asking the
	// store again, so that a client hammering a full counter costs no
	// database work per command.
	refusalMemory = time.Second
	// pruneEvery is how often Run deletes expired counters in the store.
	pruneEvery = time.Hour
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	// Clock tells the time; nil means time.Now.
	Clock Clock
	// Observer hears of warning levels reached; nil means nobody.
	Observer Observer
	// MaxBlock is the most units one lease takes; 0 means
	// DefaultMaxBlock.
	MaxBlock int64
	// IdleReturn is how long an unused block is kept; 0 means
	// DefaultIdleReturn.
	IdleReturn time.Duration
	// Log receives store failures of background work; nil discards.
	Log *slog.Logger
}

// Engine enforces quotas exactly, on one node or on several sharing one
// store: units are reserved (at RCPT), then committed (the message is
// queued) or released (RSET, refusal, disconnect).
//
// A node does not ask the store for every unit. It leases blocks of units
// from the store's counters (store.Counters.LeaseQuota, which never lets a
// counter pass its limit) and serves reservations from the block in
// memory; committing costs nothing, and a released unit goes back into the
// block. The block size adapts: an eighth of what the counter has left,
// at most MaxBlock, so that near the limit blocks shrink to the units
// asked for and the count stays exact however many nodes race. Unused
// units go back to the store when the bucket ends, when the counter is
// idle, and at Close. A node that dies loses its unused units: the quota
// is then a little lower for the rest of the window, never exceeded.
type Engine struct {
	store store.Counters
	clock Clock
	obs   Observer
	block int64
	idle  time.Duration
	log   *slog.Logger

	mu       sync.Mutex
	counters map[string]*counter
	// refills are the leases running ahead of need; Close waits for them.
	refills sync.WaitGroup
}

// counter is one counter's state on this node.
type counter struct {
	key    string
	window Window

	mu sync.Mutex
	// dead is set when the engine forgets the counter; a Reserve that
	// found it in the map just before looks again.
	dead bool
	// bucket is the bucket the block was leased in; block units leased
	// and not reserved; held units reserved and not yet committed or
	// released.
	bucket      time.Time
	block, held int64
	// known is the counter's count in the store at the last lease, -1
	// before the first lease of the bucket; max the limit of the last
	// reservation.
	known, max int64
	// After a refusal by the store: until fullUntil, for a limit of at
	// most fullMax and the same number of units, refuse from memory with
	// freesAt.
	fullUntil      time.Time
	fullMax, fullN int64
	freesAt        time.Time
	// warned is the window whose warning level this node has dealt with.
	warned  time.Time
	lastUse time.Time
	// refilling is closed when the lease running ahead of need (see
	// refillAhead) ends; nil when none runs.
	refilling chan struct{}
}

// NewEngine returns an engine counting in st.
func NewEngine(st store.Counters, cfg EngineConfig) *Engine {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxBlock <= 0 {
		cfg.MaxBlock = DefaultMaxBlock
	}
	if cfg.IdleReturn <= 0 {
		cfg.IdleReturn = DefaultIdleReturn
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Engine{store: st, clock: cfg.Clock, obs: cfg.Observer, block: cfg.MaxBlock, idle: cfg.IdleReturn,
		log: cfg.Log, counters: map[string]*counter{}}
}

// counter returns the node's state of a counter, locked.
func (e *Engine) counter(key string, w Window) *counter {
	for {
		e.mu.Lock()
		c := e.counters[key]
		if c == nil {
			c = &counter{key: key, window: w, known: -1}
			e.counters[key] = c
		}
		e.mu.Unlock()
		c.mu.Lock()
		if !c.dead {
			return c
		}
		c.mu.Unlock()
	}
}

// Reserve holds n units of the limit's counter, or fails with an
// *ExceededError (wrapping ErrExceeded) that says when the counter frees.
// Other errors mean the store failed; nothing is held then.
func (e *Engine) Reserve(ctx context.Context, l Limit, n int64) (Reservation, error) {
	if n <= 0 {
		return nil, fmt.Errorf("limits: reserving %d units of %s: must be positive", n, l.Key)
	}
	if l.Max <= 0 {
		return nil, fmt.Errorf("limits: %s has no maximum; leave unlimited counters alone", l.Key)
	}
	key := l.counterKey()
	var c *counter
	var crossing *Crossing
	var bucket time.Time
	for {
		c = e.counter(key, l.Window)
		var err error
		crossing, err = e.reserveLocked(ctx, c, l, n)
		bucket = c.bucket
		c.mu.Unlock()
		if err == errForgotten {
			continue // the counter was forgotten while this waited
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if crossing != nil && e.obs != nil {
		e.obs.WarnLevelCrossed(ctx, *crossing)
	}
	return &engineReservation{e: e, c: c, bucket: bucket, n: n}, nil
}

// errForgotten tells Reserve to look the counter up again.
var errForgotten = errors.New("limits: counter forgotten")

// reserveLocked is Reserve with c.mu held (it may let go of it while it
// waits). It returns the crossing of the warning level this reservation
// caused, if any.
func (e *Engine) reserveLocked(ctx context.Context, c *counter, l Limit, n int64) (*Crossing, error) {
	// A lease running ahead holds units the store counts already: wait for
	// them rather than ask the store for more, or be refused near the
	// limit while they are on their way.
	for c.block < n && c.refilling != nil {
		done := c.refilling
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("limits: %w", err)
		}
		if c.dead {
			return nil, errForgotten
		}
	}
	now := e.clock().UTC()
	c.lastUse = now
	b := l.Window.bucketOf(now)
	if !c.bucket.Equal(b) {
		// The block was leased for a bucket that has ended: units are
		// only ever used in the bucket that counts them.
		if err := e.giveBack(ctx, c); err != nil {
			return nil, err
		}
		c.bucket, c.known, c.fullUntil = b, -1, time.Time{}
	}
	if l.Max < c.max && c.block > 0 {
		// The limit was lowered: units leased under the old one must not
		// let the counter pass the new one.
		if err := e.giveBack(ctx, c); err != nil {
			return nil, err
		}
	}
	c.max = l.Max
	var crossing *Crossing
	if c.block < n {
		if now.Before(c.fullUntil) && l.Max <= c.fullMax && n == c.fullN {
			return nil, &ExceededError{Key: c.key, Limit: l.Max, FreesAt: c.freesAt}
		}
		need := n - c.block
		lease := store.QuotaLease{Key: c.key, Bucket: b, Since: l.Window.since(now), Expires: l.Window.expires(b),
			Need: need, Want: e.blockSize(c, l, need), Limit: l.Max}
		lvl := l.warnLevel()
		var granted, used int64
		var err error
		if lvl > 0 && !c.warned.Equal(b) && lvl-1 >= need {
			// Below the warning level, leases stop short of it (other
			// nodes' leases included), so that the units that reach it
			// are leased on their own, by the reservation that reaches
			// it.
			soft := lease
			soft.Limit = min(l.Max, lvl-1)
			granted, used, err = e.store.LeaseQuota(ctx, soft)
			if err == nil && granted == 0 {
				lease.Want = need
				granted, used, err = e.store.LeaseQuota(ctx, lease)
			}
		} else {
			granted, used, err = e.store.LeaseQuota(ctx, lease)
		}
		if err != nil {
			return nil, fmt.Errorf("limits: %w", err)
		}
		c.known = used
		if granted == 0 {
			freesAt, err := e.freesAt(ctx, c, l, n, now, used)
			if err != nil {
				return nil, err
			}
			c.fullUntil, c.fullMax, c.fullN, c.freesAt = now.Add(refusalMemory), l.Max, n, freesAt
			return nil, &ExceededError{Key: c.key, Limit: l.Max, FreesAt: freesAt}
		}
		c.block += granted
		if lvl > 0 && used >= lvl && !c.warned.Equal(b) {
			c.warned = b
			first, err := e.store.MarkQuotaEvent(ctx, c.key+"/warn", b, l.Window.expires(b))
			if err != nil {
				// The units are leased; a lost warning is no reason to
				// refuse the recipient.
				e.log.Error("limits: recording a warning level", "counter", c.key, "err", err)
			} else if first {
				crossing = &Crossing{Subject: l.Subject, Key: c.key, Limit: l.Max, WarnAt: l.WarnAt, Used: used, Window: b, At: now}
			}
		}
	}
	c.block -= n
	c.held += n
	e.refillAhead(c, l, b, now)
	return crossing, nil
}

// refillAhead starts leasing the next block in the background when the
// block runs low, so that sessions do not wait for the store every
// MaxBlock units. It does so only far from the limit and from the warning
// level: near them, leases stay synchronous and as small as needed, which
// keeps the count exact. c.mu is held.
func (e *Engine) refillAhead(c *counter, l Limit, b, now time.Time) {
	if c.refilling != nil || c.known < 0 || c.dead {
		return
	}
	want := e.blockSize(c, l, 1)
	if want < 16 || c.block > want/4 {
		return
	}
	lease := store.QuotaLease{Key: c.key, Bucket: b, Since: l.Window.since(now), Expires: l.Window.expires(b),
		Need: 1, Want: want, Limit: l.Max}
	if lvl := l.warnLevel(); lvl > 0 && !c.warned.Equal(b) {
		// Leases ahead never reach the warning level (whatever other
		// nodes leased meanwhile): the reservation that reaches it
		// leases synchronously and sees the crossing.
		if c.known+2*want >= lvl {
			return
		}
		lease.Limit = lvl - 1
	}
	done := make(chan struct{})
	c.refilling = done
	max := l.Max
	e.refills.Add(1)
	go func() {
		defer e.refills.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		granted, used, err := e.store.LeaseQuota(ctx, lease)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.refilling = nil
		defer close(done)
		if err != nil {
			e.log.Error("limits: leasing ahead", "counter", c.key, "err", err)
			return
		}
		c.known = used
		if granted == 0 {
			return
		}
		if c.dead || !c.bucket.Equal(lease.Bucket) || c.max != max {
			// The counter moved on meanwhile (a new bucket, a changed
			// limit, forgotten): the units go back.
			if err := e.store.ReturnQuota(ctx, c.key, lease.Bucket, granted); err != nil {
				e.log.Error("limits: returning a block leased ahead", "counter", c.key, "err", err)
			}
			return
		}
		c.block += granted
	}()
}

// blockSize is how many units to ask the store for when need more are
// needed: an eighth of what the counter has left, so that near the limit
// every node asks only for what it needs; at least need, at most MaxBlock.
// Before the first lease of a bucket, the count is unknown and only need
// is asked for (a node must not take the last units of a nearly full
// counter as a block).
func (e *Engine) blockSize(c *counter, l Limit, need int64) int64 {
	if c.known < 0 {
		return need
	}
	want := (l.Max - c.known) / 8
	return max(need, min(want, e.block))
}

// freesAt is when n more units could fit, as far as the store's buckets
// tell: the end of the period for a calendar window; for a rolling window,
// when enough old buckets have aged out. Zero when ageing alone will not
// do (units reserved but not committed count until released).
func (e *Engine) freesAt(ctx context.Context, c *counter, l Limit, n int64, now time.Time, used int64) (time.Time, error) {
	if l.Window.Calendar() {
		return l.Window.expires(c.bucket), nil
	}
	if c.held+n > l.Max {
		return time.Time{}, nil
	}
	buckets, err := e.store.QuotaBuckets(ctx, c.key, l.Window.since(now))
	if err != nil {
		return time.Time{}, fmt.Errorf("limits: %w", err)
	}
	excess := used + (n - c.block) - l.Max
	var freed int64
	for _, b := range buckets {
		freed += b.Used
		if freed >= excess {
			return l.Window.expires(b.Start), nil
		}
	}
	return time.Time{}, nil
}

// giveBack returns the counter's unused block to the store; c.mu is held.
func (e *Engine) giveBack(ctx context.Context, c *counter) error {
	if c.block == 0 {
		return nil
	}
	if err := e.store.ReturnQuota(ctx, c.key, c.bucket, c.block); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	c.block = 0
	return nil
}

// engineReservation implements Reservation for Engine.
type engineReservation struct {
	e      *Engine
	c      *counter
	bucket time.Time
	n      int64
	done   bool // guarded by c.mu
}

// Commit implements Reservation: the units are counted already (they were
// leased), so this costs no store work.
func (r *engineReservation) Commit(context.Context) error {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	c.held -= r.n
	return nil
}

// Release implements Reservation: the units go back into the node's block
// while their bucket lasts, else back to the store.
func (r *engineReservation) Release(ctx context.Context) error {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	c.held -= r.n
	c.fullUntil = time.Time{}
	if c.bucket.Equal(r.bucket) && !c.dead {
		c.block += r.n
		return nil
	}
	if err := r.e.store.ReturnQuota(ctx, c.key, r.bucket, r.n); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	return nil
}

// Usage reports what this node holds of a counter: units reserved and not
// yet committed or released, and units leased and not yet reserved.
func (e *Engine) Usage(l Limit) (held, block int64) {
	e.mu.Lock()
	c := e.counters[l.counterKey()]
	e.mu.Unlock()
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held, c.block
}

// Sweep gives back the blocks of counters whose bucket has ended or that
// have been idle for the engine's IdleReturn, and forgets counters that
// hold nothing. Run calls it periodically.
func (e *Engine) Sweep(ctx context.Context) error {
	return e.sweep(ctx, false)
}

// Close gives every unused block back to the store, so that other nodes
// can use the units, once the leases running ahead have ended.
// Reservations still held keep working.
func (e *Engine) Close(ctx context.Context) error {
	e.refills.Wait()
	return e.sweep(ctx, true)
}

func (e *Engine) sweep(ctx context.Context, all bool) error {
	now := e.clock().UTC()
	e.mu.Lock()
	list := make([]*counter, 0, len(e.counters))
	for _, c := range e.counters {
		list = append(list, c)
	}
	e.mu.Unlock()
	var errs []error
	var idle []*counter
	for _, c := range list {
		c.mu.Lock()
		ended := !c.window.bucketOf(now).Equal(c.bucket)
		if all || ended || now.Sub(c.lastUse) >= e.idle {
			if err := e.giveBack(ctx, c); err != nil {
				errs = append(errs, err)
			} else if ended {
				c.known = -1
			}
		}
		if c.block == 0 && c.held == 0 && c.refilling == nil && (ended || now.Sub(c.lastUse) >= e.idle) {
			idle = append(idle, c)
		}
		c.mu.Unlock()
	}
	// Forget idle counters, so that the map holds only counters in use.
	e.mu.Lock()
	for _, c := range idle {
		c.mu.Lock()
		if c.block == 0 && c.held == 0 && c.refilling == nil && e.counters[c.key] == c {
			c.dead = true
			delete(e.counters, c.key)
		}
		c.mu.Unlock()
	}
	e.mu.Unlock()
	return errors.Join(errs...)
}

// Run sweeps every few seconds and prunes expired counters in the store
// every hour, until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	sweep := time.NewTicker(5 * time.Second)
	defer sweep.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			if err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("limits: returning unused quota", "err", err)
			}
		case <-prune.C:
			if err := e.store.PruneQuota(ctx, e.clock()); err != nil && ctx.Err() == nil {
				e.log.Error("limits: pruning expired counters", "err", err)
			}
		}
	}
}
