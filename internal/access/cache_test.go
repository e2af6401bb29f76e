package access

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/password"
)

func newTestCache(t *testing.T, ttl time.Duration, size int) *credCache {
	t.Helper()
	c, err := newCredCache(ttl, size)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCredCache(t *testing.T) {
	c := newTestCache(t, 0, 0)
	if c.ttl != DefaultCacheTTL {
		t.Fatalf("ttl = %v, want the default", c.ttl)
	}
	const kind, id, hash, pw = directory.KindAccount, int64(7), "$argon2id$hash-1", "secret"
	now := t0
	if c.hit(kind, id, hash, time.Time{}, pw, now) {
		t.Fatal("hit on an empty cache")
	}
	c.add(kind, id, hash, time.Time{}, pw, now)
	cases := []struct {
		name string
		hit  bool
		kind directory.Kind
		id   int64
		hash string
		tvf  time.Time
		pw   string
		at   time.Time
	}{
		{"same", true, kind, id, hash, time.Time{}, pw, now.Add(time.Minute)},
		{"wrong password", false, kind, id, hash, time.Time{}, "Secret", now},
		{"password changed (new hash)", false, kind, id, "$argon2id$hash-2", time.Time{}, pw, now},
		{"revoked (new tokens-valid-from)", false, kind, id, hash, now, pw, now},
		{"other identity", false, kind, 8, hash, time.Time{}, pw, now},
		{"other kind", false, directory.KindMailbox, id, hash, time.Time{}, pw, now},
		{"expired", false, kind, id, hash, time.Time{}, pw, now.Add(DefaultCacheTTL)},
	}
	for _, tc := range cases {
		if got := c.hit(tc.kind, tc.id, tc.hash, tc.tvf, tc.pw, tc.at); got != tc.hit {
			t.Errorf("%s: hit = %v, want %v", tc.name, got, tc.hit)
		}
	}
	if c.len() != 0 {
		t.Errorf("the expired entry was not dropped on lookup: %d entries", c.len())
	}
}

func TestCredCacheFieldsDoNotRunTogether(t *testing.T) {
	c := newTestCache(t, time.Minute, 0)
	c.add(directory.KindAccount, 1, "ab", time.Time{}, "c", t0)
	if c.hit(directory.KindAccount, 1, "a", time.Time{}, "bc", t0) {
		t.Fatal("hash and password ran together")
	}
}

func TestCredCacheHoldsNoPassword(t *testing.T) {
	c := newTestCache(t, time.Minute, 0)
	pw := "correct horse battery staple"
	c.add(directory.KindAccount, 1, "h", time.Time{}, pw, t0)
	for k := range c.entries {
		if bytes.Contains(k[:], []byte(pw[:8])) {
			t.Fatal("the key holds the password")
		}
	}
}

func TestCredCacheDisabled(t *testing.T) {
	c := newTestCache(t, -1, 0)
	c.add(directory.KindAccount, 1, "h", time.Time{}, "pw", t0)
	if c.hit(directory.KindAccount, 1, "h", time.Time{}, "pw", t0) || c.len() != 0 {
		t.Fatal("a disabled cache remembers")
	}
	var nilCache *credCache
	if nilCache.hit(directory.KindAccount, 1, "h", time.Time{}, "pw", t0) {
		t.Fatal("a nil cache hits")
	}
	nilCache.add(directory.KindAccount, 1, "h", time.Time{}, "pw", t0)
}

func TestCredCacheBounded(t *testing.T) {
	c := newTestCache(t, time.Hour, 100)
	now := t0
	for i := range 1000 {
		c.add(directory.KindAccount, int64(i), "h", time.Time{}, "pw", now)
		now = now.Add(time.Second)
	}
	if n := c.len(); n > 100 {
		t.Fatalf("%d entries, want at most 100", n)
	}
	if !c.hit(directory.KindAccount, 999, "h", time.Time{}, "pw", now) {
		t.Error("the newest entry was evicted")
	}
	if c.hit(directory.KindAccount, 0, "h", time.Time{}, "pw", now) {
		t.Error("the oldest entry survived")
	}
}

func TestCredCacheConcurrent(t *testing.T) {
	c := newTestCache(t, time.Hour, 50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				pw := fmt.Sprint(g, i)
				c.add(directory.KindMailbox, int64(g), "h", time.Time{}, pw, t0)
				c.hit(directory.KindMailbox, int64(g), "h", time.Time{}, pw, t0)
			}
		}()
	}
	wg.Wait()
	if c.len() > 50 {
		t.Fatalf("%d entries", c.len())
	}
}

// TestCredCacheJoinsConcurrentVerifications: twenty sign-ins with the same
// credentials at once cost one password verification, whose outcome each
// gets; different passwords are verified apart, and a mismatch is not
// remembered.
func TestCredCacheJoinsConcurrentVerifications(t *testing.T) {
	hash, err := password.Hash("secret")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	verifyPassword = func(h, pw string) error {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond) // all twenty arrive meanwhile
		return password.Verify(h, pw)
	}
	t.Cleanup(func() { verifyPassword = password.Verify })

	for _, tc := range []struct {
		name    string
		enabled bool
		pws     func(i int) string
		calls   int64
		ok      int
	}{
		{"the same password", true, func(int) string { return "secret" }, 1, 20},
		{"the same wrong password", true, func(int) string { return "guess" }, 1, 0},
		{"two passwords", true, func(i int) string { return []string{"secret", "guess"}[i%2] }, 2, 10},
		{"cache disabled", false, func(int) string { return "secret" }, 20, 20},
	} {
		ttl := time.Duration(0)
		if !tc.enabled {
			ttl = -1
		}
		c := newTestCache(t, ttl, 0)
		calls.Store(0)
		var wg sync.WaitGroup
		var ok atomic.Int64
		for i := range 20 {
			wg.Go(func() {
				if c.verify(directory.KindAccount, 7, hash, time.Time{}, tc.pws(i), t0) == nil {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if calls.Load() != tc.calls || ok.Load() != int64(tc.ok) {
			t.Errorf("%s: %d verifications, %d sign-ins verified; want %d, %d", tc.name, calls.Load(), ok.Load(), tc.calls, tc.ok)
		}
		if tc.enabled && c.hit(directory.KindAccount, 7, hash, time.Time{}, "guess", t0) {
			t.Errorf("%s: a wrong password was remembered", tc.name)
		}
		if tc.enabled && tc.ok > 0 && !c.hit(directory.KindAccount, 7, hash, time.Time{}, "secret", t0) {
			t.Errorf("%s: the verified password was not remembered", tc.name)
		}
	}
}
