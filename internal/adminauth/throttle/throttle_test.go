package throttle_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/adminauth/throttle"
	"hve/internal/store"
	"hve/internal/store/postgres"
	"hve/internal/store/postgres/pgtest"
	"hve/internal/store/sqlite"
)

// nodes are two throttles with one clock over one store, as two nodes
// share it: for PostgreSQL, two Store values with a pool each.
type nodes struct {
	th  [2]*throttle.Throttle
	st  store.Counters
	now time.Time
}

// eachStore runs fn with two nodes over a fresh embedded store and over
// a fresh PostgreSQL schema.
func eachStore(t *testing.T, fn func(t *testing.T, n *nodes)) {
	open := map[string]func(t *testing.T) [2]store.Counters{
		"sqlite": func(t *testing.T) [2]store.Counters {
			s, err := sqlite.Open(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return [2]store.Counters{s, s}
		},
		"postgres": func(t *testing.T) [2]store.Counters {
			dsn := pgtest.DSN(t)
			var out [2]store.Counters
			for i := range out {
				s, err := postgres.Open(t.Context(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				out[i] = s
			}
			return out
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			st := open[name](t)
			n := &nodes{st: st[0], now: time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)}
			for i := range n.th {
				n.th[i] = throttle.New(st[i])
				n.th[i].Now = func() time.Time { return n.now }
			}
			fn(t, n)
		})
	}
}

// try makes one attempt on node i; a let-through attempt fails unless
// success says otherwise. It reports whether the throttle let it through.
func (n *nodes) try(t *testing.T, i int, user, ip string, success bool) bool {
	t.Helper()
	ctx := context.Background()
	a, ok, err := n.th[i].Begin(ctx, user, ip)
	if err != nil {
		t.Fatal(err)
	}
	if ok && success {
		if err := n.th[i].Succeeded(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return ok
}

// TestUserLimitAcrossNodes: failures for one username on either node add
// up; the lock holds from any IP and ends when the failures are older
// than the window.
func TestUserLimitAcrossNodes(t *testing.T) {
	eachStore(t, func(t *testing.T, n *nodes) {
		th := n.th[0]
		for i := range th.UserLimit {
			if !n.try(t, i%2, "Ana", "192.0.2.1", false) {
				t.Fatalf("attempt %d refused, before the limit of %d", i+1, th.UserLimit)
			}
		}
		for i, ip := range []string{"192.0.2.1", "192.0.2.9"} {
			if n.try(t, i, "ANA ", ip, true) {
				t.Errorf("node %d let a sign-in as ana from %s through after %d failures on both nodes", i, ip, th.UserLimit)
			}
		}
		if !n.try(t, 1, "bob", "192.0.2.9", false) {
			t.Error("another username is locked")
		}
		// The failures count for the window (and at most one bucket more).
		n.now = n.now.Add(th.Window - time.Minute)
		if n.try(t, 1, "ana", "192.0.2.1", true) {
			t.Error("the lock ended before the window")
		}
		n.now = n.now.Add(time.Minute + th.Bucket)
		if !n.try(t, 1, "ana", "192.0.2.1", true) {
			t.Error("the lock did not end after the window")
		}
	})
}

// TestRollingWindow: the window rolls: the oldest failures stop counting
// first, and each frees one attempt.
func TestRollingWindow(t *testing.T) {
	eachStore(t, func(t *testing.T, n *nodes) {
		start := n.now
		for i := range 5 {
			if i == 3 {
				n.now = start.Add(10 * time.Minute)
			}
			if !n.try(t, i%2, "ana", "192.0.2.1", false) {
				t.Fatalf("attempt %d refused", i+1)
			}
		}
		// At start+16m the three first failures are out of the window.
		n.now = start.Add(16*time.Minute + 30*time.Second)
		for i := range 3 {
			if !n.try(t, 0, "ana", "192.0.2.1", false) {
				t.Fatalf("attempt %d after the first failures aged out was refused", i+1)
			}
		}
		if n.try(t, 1, "ana", "192.0.2.1", false) {
			t.Error("a sixth failure within the window was let through")
		}
	})
}

// TestIPLimit: spraying many usernames from one IP locks the IP for every
// name; the refused attempts count against no username.
func TestIPLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, n *nodes) {
		th := n.th[0]
		for i := range th.IPLimit {
			if !n.try(t, i%2, strings.Repeat("x", i+1), "198.51.100.7", false) {
				t.Fatalf("attempt %d from the IP refused, before the limit", i+1)
			}
		}
		for range 3 {
			if n.try(t, 1, "carol", "198.51.100.7", true) {
				t.Fatal("the IP is not throttled after spraying")
			}
		}
		// carol was refused unchecked three times: from elsewhere she still
		// has all her attempts.
		for i := range th.UserLimit {
			if !n.try(t, 0, "carol", "203.0.113.1", false) {
				t.Fatalf("carol's attempt %d from another IP refused: the refusals of the throttled IP were counted", i+1)
			}
		}
	})
}

// TestSuccessClearsTheUsername: a sign-in clears the username's failures,
// not the IP's; the successful attempt itself counts against neither.
func TestSuccessClearsTheUsername(t *testing.T) {
	eachStore(t, func(t *testing.T, n *nodes) {
		th := n.th[0]
		for range th.UserLimit - 1 {
			n.try(t, 0, "dave", "203.0.113.1", false)
		}
		if !n.try(t, 1, "dave", "203.0.113.1", true) {
			t.Fatal("the right password before the limit was refused")
		}
		for i := range th.UserLimit {
			if !n.try(t, i%2, "dave", "203.0.113.2", false) {
				t.Fatalf("attempt %d after a success refused: the success did not clear the failures", i+1)
			}
		}
		// The IP 203.0.113.1 keeps its 4 failures: 16 more fill it, and
		// the success counted for nothing.
		for i := range th.IPLimit - (th.UserLimit - 1) {
			if !n.try(t, 0, "user"+strings.Repeat("y", i), "203.0.113.1", false) {
				t.Fatalf("attempt %d from the IP refused: the success was counted against it", i+1)
			}
		}
		if n.try(t, 1, "erin", "203.0.113.1", true) {
			t.Error("the success cleared the IP's failures")
		}
	})
}

// TestRaceAcrossNodes: attempts racing on two nodes check at most the
// limit's worth of passwords.
func TestRaceAcrossNodes(t *testing.T) {
	eachStore(t, func(t *testing.T, n *nodes) {
		var through atomic.Int64
		var wg sync.WaitGroup
		for i := range 24 {
			th := n.th[i%2]
			wg.Go(func() {
				_, ok, err := th.Begin(context.Background(), "root", "192.0.2.50")
				if err != nil {
					t.Error(err)
				}
				if ok {
					through.Add(1)
				}
			})
		}
		wg.Wait()
		if got := through.Load(); got != int64(n.th[0].UserLimit) {
			t.Errorf("%d of 24 racing attempts were let through, want the limit, %d", got, n.th[0].UserLimit)
		}
	})
}

// TestLongUsername: a made-up name of any length is counted (by its
// hash) without a key of its length.
func TestLongUsername(t *testing.T) {
	eachStore(t, func(t *testing.T, n *nodes) {
		long := strings.Repeat("a", 100_000)
		for range n.th[0].UserLimit {
			n.try(t, 0, long, "192.0.2.1", false)
		}
		if n.try(t, 1, strings.ToUpper(long), "192.0.2.2", true) {
			t.Error("a long username is not throttled")
		}
		if !n.try(t, 1, long+"b", "192.0.2.2", false) {
			t.Error("another long username shares the first one's count")
		}
	})
}
