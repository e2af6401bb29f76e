// Package throttle slows down password guessing at the admin center's
// sign-in form. It counts sign-in attempts in the store's shared quota
// counters (store.Counters), so that its limits hold for all nodes
// together: behind a load balancer, an attacker gets no more tries from
// several nodes than from one. (It is not in package adminauth, which the
// store imports.)
package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"hve/internal/store"
)

// Throttle counts sign-in attempts per username and per client IP, in a
// rolling Window [15m] counted in buckets of Bucket [1m]:
//
//   - UserLimit [5] failures for one username within Window refuse that
//     username's sign-ins, from anywhere;
//   - IPLimit [20] failures from one IP within Window refuse every sign-in
//     from it (password spraying across usernames).
//
// A refusal lasts until enough of the failures are older than Window (at
// most Window plus one bucket after the last one). A successful sign-in
// clears the username's failures, not the IP's. A refused attempt is not
// checked at all, is not counted, and gets the same answer as a wrong
// password, so a lockout reveals nothing about the password.
//
// Each attempt takes its units before its credentials are checked (Begin),
// in one atomic step of the store with the check of the limit, and gives
// them back if it succeeds (Succeeded): so racing attempts, on any number
// of nodes, never check more than the limit's worth of passwords. An
// attempt whose node dies before it knows the result counts as failed.
type Throttle struct {
	UserLimit, IPLimit int
	Window             time.Duration
	// Bucket is the granularity of Window: a failure counts for at least
	// Window and at most Window plus Bucket.
	Bucket time.Duration
	// Now is the clock (tests set it).
	Now func() time.Time

	counters store.Counters
}

// New returns a throttle with the default limits over the counters of c.
func New(c store.Counters) *Throttle {
	return &Throttle{UserLimit: 5, IPLimit: 20, Window: 15 * time.Minute, Bucket: time.Minute, Now: time.Now, counters: c}
}

// The counter keys. They cannot meet those of package limits, which start
// with "tenant/", "account/" or "mailbox/".
const (
	userPrefix = "admin-signin/user/"
	ipPrefix   = "admin-signin/ip/"
)

// userKey is the counter of a username as typed, in any letter case. A
// very long name (the form takes anything) is counted by its hash, so
// that it does not make a very long key.
func userKey(user string) string {
	name := strings.ToLower(strings.TrimSpace(user))
	if len(name) > 128 {
		sum := sha256.Sum256([]byte(name))
		name = "sha256-" + hex.EncodeToString(sum[:])
	}
	return userPrefix + name
}

func ipKey(ip string) string { return ipPrefix + ip }

// Attempt is a sign-in attempt that Begin let through. It counts as a
// failure unless Succeeded says otherwise.
type Attempt struct {
	user, ip string
	// bucket holds the attempt's units; since is the start of its window.
	bucket, since time.Time
}

// window returns the bucket of now, the start of the window that ends in
// it, and when that bucket stops counting.
func (t *Throttle) window() (bucket, since, expires time.Time) {
	b := t.Bucket
	if b <= 0 {
		b = time.Minute
	}
	now := t.Now().UTC()
	bucket = now.Truncate(b)
	return bucket, now.Add(-t.Window).Truncate(b), bucket.Add(b + t.Window)
}

// Begin counts an attempt to sign in as user from ip, before its
// credentials are checked. ok is false when the username or the IP has
// reached its limit: then the attempt must be refused unchecked, and it
// is not counted. An error (the store's) leaves nothing counted.
func (t *Throttle) Begin(ctx context.Context, user, ip string) (a Attempt, ok bool, err error) {
	bucket, since, expires := t.window()
	a = Attempt{user: userKey(user), ip: ipKey(ip), bucket: bucket, since: since}
	take := func(key string, limit int) (bool, error) {
		granted, _, err := t.counters.LeaseQuota(ctx, store.QuotaLease{Key: key, Bucket: bucket, Since: since, Expires: expires,
			Need: 1, Want: 1, Limit: int64(limit)})
		return granted == 1, err
	}
	if ok, err := take(a.user, t.UserLimit); err != nil || !ok {
		return a, false, err
	}
	if ok, err := take(a.ip, t.IPLimit); err != nil || !ok {
		// The username's unit goes back: the attempt is refused
		// unchecked, which is no failure of that name.
		if rerr := t.counters.ReturnQuota(ctx, a.user, bucket, 1); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return a, false, err
	}
	return a, true, nil
}

// Succeeded records that the attempt signed in: it clears the username's
// failures of the window and gives back the attempt's unit of the IP
// (whose earlier failures still count).
func (t *Throttle) Succeeded(ctx context.Context, a Attempt) error {
	buckets, err := t.counters.QuotaBuckets(ctx, a.user, a.since)
	if err != nil {
		return fmt.Errorf("clearing the sign-in failures of %s: %w", strings.TrimPrefix(a.user, userPrefix), err)
	}
	// Only what was read is taken back: a failure another node counts
	// meanwhile stays counted.
	for _, b := range buckets {
		if err := t.counters.ReturnQuota(ctx, a.user, b.Start, b.Used); err != nil {
			return fmt.Errorf("clearing the sign-in failures of %s: %w", strings.TrimPrefix(a.user, userPrefix), err)
		}
	}
	if err := t.counters.ReturnQuota(ctx, a.ip, a.bucket, 1); err != nil {
		return fmt.Errorf("uncounting a sign-in from %s: %w", strings.TrimPrefix(a.ip, ipPrefix), err)
	}
	return nil
}
