package adminauth

import (
	"strings"
	"sync"
	"time"
)

// Throttle slows down password guessing at the admin sign-in form. It
// counts failures per username and per client IP (in memory, per node):
//
//   - UserLimit [5] failures for one username within Window [15m] refuse
//     that username's sign-ins, from anywhere, until Window after its last
//     failure;
//   - IPLimit [20] failures from one IP within Window refuse every sign-in
//     from it the same way (password spraying across usernames).
//
// A successful sign-in clears the username's failures, not the IP's. A
// refused attempt is not checked at all and gets the same answer as a
// wrong password, so a lockout reveals nothing about the password. Admin
// sign-ins are rare, so the limits are tight; the lock ends by itself.
type Throttle struct {
	UserLimit, IPLimit int
	Window             time.Duration
	// Now is the clock (tests set it).
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	failures int
	last     time.Time
}

// NewThrottle returns a throttle with the default limits.
func NewThrottle() *Throttle {
	return &Throttle{UserLimit: 5, IPLimit: 20, Window: 15 * time.Minute, Now: time.Now}
}

func userKey(user string) string { return "u:" + strings.ToLower(strings.TrimSpace(user)) }
func ipKey(ip string) string     { return "i:" + ip }

// Allowed reports whether a sign-in as user from ip may be checked now.
func (t *Throttle) Allowed(user, ip string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	return !t.over(userKey(user), t.UserLimit, now) && !t.over(ipKey(ip), t.IPLimit, now)
}

func (t *Throttle) over(key string, limit int, now time.Time) bool {
	e := t.entries[key]
	if e == nil {
		return false
	}
	if now.Sub(e.last) >= t.Window {
		delete(t.entries, key)
		return false
	}
	return e.failures >= limit
}

// Failed counts a failed sign-in.
func (t *Throttle) Failed(user, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	if t.entries == nil {
		t.entries = map[string]*throttleEntry{}
	}
	// Bound the memory an attacker can make us use with made-up names.
	if len(t.entries) > 100_000 {
		for k, e := range t.entries {
			if now.Sub(e.last) >= t.Window {
				delete(t.entries, k)
			}
		}
	}
	for _, key := range []string{userKey(user), ipKey(ip)} {
		e := t.entries[key]
		if e == nil || now.Sub(e.last) >= t.Window {
			e = &throttleEntry{}
			t.entries[key] = e
		}
		e.failures++
		e.last = now
	}
}

// Succeeded clears the failures of the username.
func (t *Throttle) Succeeded(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, userKey(user))
}
