package access

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestLockoutAttackerFromManyAddressesCannotLockOutFamiliarSource(t *testing.T) {
	l := newLockout(LockoutConfig{})
	const user = "app@acme.example"
	app := ip("192.0.2.10")
	now := t0
	l.succeed(user, app, now)

	// 50 attacker addresses, 5 guesses each, in 15 minutes.
	for i := range 50 {
		for range 5 {
			now = now.Add(time.Second)
			attacker := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
			if ok, _ := l.check(user, attacker, now); ok {
				l.fail(user, attacker, now)
			}
		}
	}
	if ok, why := l.check(user, ip("198.51.100.99"), now); ok {
		t.Errorf("a new unfamiliar source may sign in during the attack: %s", why)
	} else if !strings.Contains(why, "smart lockout") || !strings.Contains(why, "unfamiliar") {
		t.Errorf("why = %q", why)
	}
	if ok, why := l.check(user, app, now); !ok {
		t.Fatalf("the familiar source is locked out: %s", why)
	}
	// Another account is not affected.
	if ok, why := l.check("other@acme.example", ip("198.51.100.99"), now); !ok {
		t.Errorf("another account is locked: %s", why)
	}
}

func TestLockoutFamiliarSourceLocksOnlyItself(t *testing.T) {
	l := newLockout(LockoutConfig{})
	const user = "app@acme.example"
	app, other := ip("192.0.2.10"), ip("192.0.2.11")
	now := t0
	l.succeed(user, app, now)
	for range 9 {
		l.fail(user, app, now)
	}
	if ok, _ := l.check(user, app, now); !ok {
		t.Fatal("locked after 9 failures")
	}
	l.fail(user, app, now)
	if ok, why := l.check(user, app, now); ok || !strings.Contains(why, "familiar source 192.0.2.10") {
		t.Fatalf("not locked after 10 failures: %v %q", ok, why)
	}
	if ok, why := l.check(user, other, now); !ok {
		t.Errorf("an unfamiliar source is locked by the familiar one's failures: %s", why)
	}
	// Failures from a familiar source do not count for spraying either.
	if s := l.sources[sourceOf(app)]; s != nil && s.fails > 0 {
		t.Errorf("familiar failures counted for the source: %+v", s)
	}
	now = now.Add(time.Minute)
	if ok, why := l.check(user, app, now); !ok {
		t.Errorf("still locked after a minute: %s", why)
	}
}

func TestLockoutSuccessResetsSourceCounter(t *testing.T) {
	l := newLockout(LockoutConfig{})
	const user = "app@acme.example"
	app := ip("192.0.2.10")
	now := t0
	l.succeed(user, app, now)
	for range 9 {
		l.fail(user, app, now)
	}
	l.succeed(user, app, now)
	for range 9 {
		l.fail(user, app, now)
	}
	if ok, why := l.check(user, app, now); !ok {
		t.Fatalf("locked although a success came between the failures: %s", why)
	}
}

func TestLockoutWindowExpires(t *testing.T) {
	l := newLockout(LockoutConfig{})
	const user = "app@acme.example"
	src := ip("203.0.113.1")
	now := t0
	for range 9 {
		l.fail(user, src, now)
	}
	now = now.Add(15 * time.Minute)
	l.fail(user, src, now)
	if ok, why := l.check(user, src, now); !ok {
		t.Fatalf("failures older than the window still count: %s", why)
	}
}

func TestLockoutThrottlesSpraySource(t *testing.T) {
	l := newLockout(LockoutConfig{})
	sprayer := ip("203.0.113.7")
	now := t0
	// The NAT's working app is familiar to its account.
	l.succeed("printer@acme.example", sprayer, now)
	for i := range 30 {
		user := fmt.Sprintf("user%d@acme.example", i)
		if ok, why := l.check(user, sprayer, now); !ok {
			t.Fatalf("throttled after %d failures: %s", i, why)
		}
		l.fail(user, sprayer, now)
	}
	ok, why := l.check("fresh@acme.example", sprayer, now)
	if ok || !strings.Contains(why, "source 203.0.113.7 is throttled") {
		t.Fatalf("not throttled after 30 failures: %v %q", ok, why)
	}
	if ok, why := l.check("printer@acme.example", sprayer, now); !ok {
		t.Errorf("a username familiar with the source is throttled too: %s", why)
	}
	if ok, _ := l.check("fresh@acme.example", ip("203.0.113.8"), now); !ok {
		t.Error("another source is throttled")
	}
	now = now.Add(15*time.Minute - time.Second)
	if ok, _ := l.check("fresh@acme.example", sprayer, now); ok {
		t.Error("throttle lifted early")
	}
	now = now.Add(time.Second)
	if ok, why := l.check("fresh@acme.example", sprayer, now); !ok {
		t.Errorf("throttle not lifted after 15 minutes: %s", why)
	}
}

func TestLockoutIPv6Per64(t *testing.T) {
	l := newLockout(LockoutConfig{})
	now := t0
	for i := range 30 {
		a := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1))
		l.fail(fmt.Sprintf("u%d@acme.example", i), a, now)
	}
	if ok, why := l.check("x@acme.example", ip("2001:db8:1:2:ffff::1"), now); ok || !strings.Contains(why, "2001:db8:1:2::/64") {
		t.Errorf("the /64 is not throttled: %v %q", ok, why)
	}
	if ok, _ := l.check("x@acme.example", ip("2001:db8:1:3::1"), now); !ok {
		t.Error("another /64 is throttled")
	}
	// Mapped IPv4 addresses count as IPv4.
	if sourceOf(ip("::ffff:192.0.2.1")) != sourceOf(ip("192.0.2.1")) {
		t.Error("a mapped address is another source than its IPv4 form")
	}
}

func TestLockoutDoubles(t *testing.T) {
	l := newLockout(LockoutConfig{})
	const user = "app@acme.example"
	now := t0
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for n, minutes := range want {
		// Each round from fresh sources, so that spraying stays out of it.
		for i := range 10 {
			l.fail(user, netip.AddrFrom4([4]byte{203, 0, byte(n), byte(i)}), now)
		}
		d := minutes * time.Minute
		if ok, _ := l.check(user, ip("198.51.100.1"), now.Add(d-time.Second)); ok {
			t.Fatalf("lockout %d lifted before %v", n+1, d)
		}
		if ok, why := l.check(user, ip("198.51.100.1"), now.Add(d)); !ok {
			t.Fatalf("lockout %d lasts longer than %v: %s", n+1, d, why)
		}
		now = now.Add(d)
	}
	// A day without failures starts over.
	now = now.Add(24 * time.Hour)
	for i := range 10 {
		l.fail(user, netip.AddrFrom4([4]byte{203, 0, 99, byte(i)}), now)
	}
	if ok, _ := l.check(user, ip("198.51.100.1"), now.Add(time.Minute)); !ok {
		t.Error("the doubling did not start over after a quiet day")
	}
}

func TestLockoutFamiliarityExpires(t *testing.T) {
	l := newLockout(LockoutConfig{})
	const user = "app@acme.example"
	app := ip("192.0.2.10")
	now := t0
	l.succeed(user, app, now)
	now = now.Add(31 * 24 * time.Hour)
	for i := range 10 {
		l.fail(user, netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), now)
	}
	if ok, _ := l.check(user, app, now); ok {
		t.Error("a source seen 31 days ago is still familiar")
	}
}

func TestLockoutDisabled(t *testing.T) {
	l := newLockout(LockoutConfig{Disabled: true})
	for range 100 {
		l.fail("a@b.example", ip("192.0.2.1"), t0)
	}
	if ok, _ := l.check("a@b.example", ip("192.0.2.1"), t0); !ok {
		t.Error("disabled lockout locks")
	}
}

func TestLockoutMemoryBounded(t *testing.T) {
	const limit = 100
	l := newLockout(LockoutConfig{MaxEntries: limit})
	now := t0
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		user := fmt.Sprintf("u%d@acme.example", i)
		l.fail(user, a, now)
		l.succeed(user, a, now)
		now = now.Add(time.Millisecond)
	}
	if len(l.sources) > limit || len(l.users) > limit || len(l.familiar) > limit {
		t.Fatalf("tables grew past %d: %d sources, %d users, %d familiar", limit, len(l.sources), len(l.users), len(l.familiar))
	}
	// The most recent entries survive eviction.
	if l.familiarOf("u999@acme.example", sourceOf(netip.AddrFrom4([4]byte{10, 0, 3, 231})), now) == nil {
		t.Error("the newest familiar source was evicted")
	}
}

func TestPutBoundedDropsIdleFirst(t *testing.T) {
	m := map[int]*counter{}
	now := t0
	for i := range 10 {
		c := &counter{active: now.Add(time.Duration(i) * time.Second)}
		if i%2 == 0 {
			c.fails, c.since = 1, now // busy
		}
		m[i] = c
	}
	idle := func(c *counter) bool { return c.fails == 0 }
	putBounded(m, 10, &counter{fails: 1, active: now.Add(time.Hour)}, 10, idle, func(c *counter) time.Time { return c.active })
	if len(m) != 6 {
		t.Fatalf("len = %d, want the 5 busy entries and the new one", len(m))
	}
	for _, k := range []int{0, 2, 4, 6, 8, 10} {
		if m[k] == nil {
			t.Errorf("busy entry %d was dropped", k)
		}
	}
}
