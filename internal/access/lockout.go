package access

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// LockoutConfig tunes smart lockout, the in-memory (per node) brute-force
// protection of sign-ins. Zero fields take the defaults in brackets.
//
// The rule, modelled on Entra ID smart lockout:
//
//   - A source is an IPv4 address or an IPv6 /64 (one customer's
//     allocation, whose addresses cost an attacker nothing).
//   - A source becomes familiar to a username when a sign-in as that
//     username proves its credential from it; it stays familiar for
//     FamiliarFor [30 days] after its last such sign-in.
//   - Failures from a familiar source are counted per (username, source):
//     AccountThreshold [10] failures within AccountWindow [15m] lock that
//     username for that source only. An attacker elsewhere cannot lock the
//     real app out of its own address, and the app's own failures (a stale
//     password) lock out only itself.
//   - Failures from unfamiliar sources are counted per username, all such
//     sources together: AccountThreshold failures within AccountWindow
//     lock the username for every unfamiliar source.
//   - A lockout lasts LockoutBase [1m], doubling with each further lockout
//     of the same counter up to LockoutMax [30m]. The doubling starts over
//     once the counter has seen no failure for ResetAfter [24h], and for a
//     familiar source also on its next successful sign-in.
//   - Failures from unfamiliar sources also count per source, for every
//     username together (password spraying): SourceThreshold [30] failures
//     within SourceWindow [15m] throttle the source for SourceBlock [15m]:
//     every sign-in from it is refused except for usernames it is familiar
//     to (a NAT shared with a broken app must not stop the working ones).
//   - A successful sign-in resets the failures of its (username, source)
//     counter; it does not reset the per-username counter of unfamiliar
//     sources, nor the source's spraying counter, which an attacker could
//     otherwise reset with an account of its own.
//
// Failures are wrong passwords, unknown usernames and invalid tokens; an
// expired token was validly issued and is not a guess, so it does not
// count. Windows are fixed: they start at the first failure after the
// previous window ended. A refused sign-in gets reply.AuthFailed, like a
// wrong password, so a lockout reveals nothing; the log says "smart
// lockout". Usernames are counted as given (normalized), whether or not an
// identity has them, so that a locked-out username and an unknown one look
// the same.
type LockoutConfig struct {
	// Disabled turns smart lockout off (tests, benchmarks).
	Disabled bool

	SourceThreshold int           // [30]
	SourceWindow    time.Duration // [15m]
	SourceBlock     time.Duration // [15m]

	AccountThreshold int           // [10]
	AccountWindow    time.Duration // [15m]
	LockoutBase      time.Duration // [1m]
	LockoutMax       time.Duration // [30m]
	ResetAfter       time.Duration // [24h]

	FamiliarFor time.Duration // [720h]

	// MaxEntries bounds each of the three tables (sources, usernames,
	// familiar sources) [100000]. When one is full, entries with nothing
	// left to remember go first, then the least recently used.
	MaxEntries int
}

func (c LockoutConfig) withDefaults() LockoutConfig {
	setInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setInt(&c.SourceThreshold, 30)
	setDur(&c.SourceWindow, 15*time.Minute)
	setDur(&c.SourceBlock, 15*time.Minute)
	setInt(&c.AccountThreshold, 10)
	setDur(&c.AccountWindow, 15*time.Minute)
	setDur(&c.LockoutBase, time.Minute)
	setDur(&c.LockoutMax, 30*time.Minute)
	setDur(&c.ResetAfter, 24*time.Hour)
	setDur(&c.FamiliarFor, 30*24*time.Hour)
	setInt(&c.MaxEntries, 100_000)
	return c
}

// counter counts failures in a fixed window and locks when they reach a
// threshold.
type counter struct {
	fails  int
	since  time.Time // start of the current window
	until  time.Time // locked until
	level  int       // lockouts so far: the next lasts base << level
	last   time.Time // last failure
	active time.Time // last use, for eviction
}

func (c *counter) locked(now time.Time) bool { return now.Before(c.until) }

// fail counts a failure and reports whether it started a lockout.
func (c *counter) fail(now time.Time, threshold int, window, base, longest, resetAfter time.Duration, doubling bool) bool {
	if !c.last.IsZero() && now.Sub(c.last) >= resetAfter {
		c.level = 0
	}
	c.last, c.active = now, now
	if c.fails == 0 || now.Sub(c.since) >= window {
		c.fails, c.since = 0, now
	}
	c.fails++
	if c.fails < threshold {
		return false
	}
	d := base
	if doubling {
		for i := 0; i < c.level && d < longest; i++ {
			d *= 2
		}
		if d > longest {
			d = longest
		}
		c.level++
	}
	c.until = now.Add(d)
	c.fails = 0
	return true
}

// idle reports whether the counter has nothing left to remember.
func (c *counter) idle(now time.Time, window, resetAfter time.Duration) bool {
	return !c.locked(now) && (c.fails == 0 || now.Sub(c.since) >= window) && (c.level == 0 || now.Sub(c.last) >= resetAfter)
}

// familiar is a username's familiar source.
type familiar struct {
	seen time.Time // last successful sign-in
	counter
}

type famKey struct {
	user   string
	source netip.Prefix
}

// lockout is the state of smart lockout, one per Checker.
type lockout struct {
	cfg LockoutConfig

	mu       sync.Mutex
	sources  map[netip.Prefix]*counter // spraying, per source
	users    map[string]*counter       // unfamiliar sources, per username
	familiar map[famKey]*familiar
}

func newLockout(cfg LockoutConfig) *lockout {
	return &lockout{
		cfg:      cfg.withDefaults(),
		sources:  make(map[netip.Prefix]*counter),
		users:    make(map[string]*counter),
		familiar: make(map[famKey]*familiar),
	}
}

// sourceOf is the unit counted for an address: the IPv4 address, or the
// IPv6 /64. The zero Addr (unknown) is one source of its own.
func sourceOf(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	return netip.PrefixFrom(ip, bits).Masked()
}

func sourceString(p netip.Prefix) string {
	if !p.IsValid() {
		return "(unknown source)"
	}
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

// familiarOf returns the (user, source) entry when the source is
// familiar to user. Callers hold mu.
func (l *lockout) familiarOf(user string, src netip.Prefix, now time.Time) *familiar {
	f := l.familiar[famKey{user, src}]
	if f == nil || now.Sub(f.seen) >= l.cfg.FamiliarFor {
		return nil
	}
	return f
}

// check reports whether a sign-in as user from ip may go ahead, and if
// not, why (for the log).
func (l *lockout) check(user string, ip netip.Addr, now time.Time) (bool, string) {
	if l.cfg.Disabled {
		return true, "smart lockout is disabled"
	}
	src := sourceOf(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.familiarOf(user, src, now); f != nil {
		if f.locked(now) {
			return false, fmt.Sprintf("smart lockout: %s is locked for its familiar source %s until %s after repeated failures from it",
				user, sourceString(src), f.until.UTC().Format(time.RFC3339))
		}
		return true, fmt.Sprintf("source %s is familiar to %s (last sign-in %s) and not locked", sourceString(src), user, f.seen.UTC().Format(time.RFC3339))
	}
	if s := l.sources[src]; s != nil && s.locked(now) {
		return false, fmt.Sprintf("smart lockout: source %s is throttled until %s after %d or more failed sign-ins",
			sourceString(src), s.until.UTC().Format(time.RFC3339), l.cfg.SourceThreshold)
	}
	if u := l.users[user]; u != nil && u.locked(now) {
		return false, fmt.Sprintf("smart lockout: %s is locked for unfamiliar sources until %s after repeated failures",
			user, u.until.UTC().Format(time.RFC3339))
	}
	return true, fmt.Sprintf("source %s is not familiar to %s; neither the source nor the username is locked", sourceString(src), user)
}

// fail counts a failed sign-in.
func (l *lockout) fail(user string, ip netip.Addr, now time.Time) {
	if l.cfg.Disabled {
		return
	}
	c := l.cfg
	src := sourceOf(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.familiarOf(user, src, now); f != nil {
		f.fail(now, c.AccountThreshold, c.AccountWindow, c.LockoutBase, c.LockoutMax, c.ResetAfter, true)
		return
	}
	s := l.sources[src]
	if s == nil {
		s = &counter{}
		putBounded(l.sources, src, s, c.MaxEntries, func(v *counter) bool { return v.idle(now, c.SourceWindow, c.ResetAfter) }, func(v *counter) time.Time { return v.active })
	}
	// A throttled source is refused before it gets here; its block is a
	// fixed SourceBlock, without doubling.
	s.fail(now, c.SourceThreshold, c.SourceWindow, c.SourceBlock, c.SourceBlock, c.ResetAfter, false)

	u := l.users[user]
	if u == nil {
		u = &counter{}
		putBounded(l.users, user, u, c.MaxEntries, func(v *counter) bool { return v.idle(now, c.AccountWindow, c.ResetAfter) }, func(v *counter) time.Time { return v.active })
	}
	u.fail(now, c.AccountThreshold, c.AccountWindow, c.LockoutBase, c.LockoutMax, c.ResetAfter, true)
}

// succeed records a sign-in that proved its credential: the source becomes
// (or stays) familiar to user, and its own failures are forgotten.
func (l *lockout) succeed(user string, ip netip.Addr, now time.Time) {
	if l.cfg.Disabled {
		return
	}
	c := l.cfg
	src := sourceOf(ip)
	k := famKey{user, src}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.familiar[k]
	if f == nil {
		f = &familiar{}
		putBounded(l.familiar, k, f, c.MaxEntries, func(v *familiar) bool {
			return now.Sub(v.seen) >= c.FamiliarFor && v.idle(now, c.AccountWindow, c.ResetAfter)
		}, func(v *familiar) time.Time {
			if v.active.After(v.seen) {
				return v.active
			}
			return v.seen
		})
	}
	f.seen = now
	f.counter = counter{active: now}
}

// putBounded adds v to m under k, first making room when m is full: it
// drops every idle entry, and if that frees less than a tenth of the room,
// the least recently active entries down to nine tenths. Sweeping in bulk
// keeps the cost per insertion constant on average.
func putBounded[K comparable, V any](m map[K]V, k K, v V, limit int, idle func(V) bool, active func(V) time.Time) {
	if len(m) >= limit {
		for key, val := range m {
			if idle(val) {
				delete(m, key)
			}
		}
		target := limit - limit/10
		if target >= limit {
			target = limit - 1
		}
		if len(m) > target {
			type entry struct {
				k K
				t time.Time
			}
			all := make([]entry, 0, len(m))
			for key, val := range m {
				all = append(all, entry{key, active(val)})
			}
			sort.Slice(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
			for _, e := range all[:len(m)-target] {
				delete(m, e.k)
			}
		}
	}
	m[k] = v
}
