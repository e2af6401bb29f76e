package access

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"hve/internal/directory"
	"hve/internal/password"
)

// DefaultCacheTTL is how long a verified password is remembered.
const DefaultCacheTTL = 5 * time.Minute

// DefaultCacheSize bounds the verified-credential cache.
const DefaultCacheSize = 100_000

// credCache remembers basic credentials that verified recently, so that an
// app that reconnects for every message (PowerShell's Send-MailMessage) does
// not pay argon2id for each.
//
// It never holds a password: a key is HMAC-SHA256, under a random key of this
// process, of the identity, its current password hash, its
// tokens-valid-from time and the password. A password change (a new hash)
// or a revocation (a new tokens-valid-from) therefore misses by
// construction, with nothing to invalidate. The random key makes the
// entries useless outside this process: nobody can test password guesses
// against them offline without it.
type credCache struct {
	ttl time.Duration // <= 0: disabled
	max int

	mu      sync.Mutex
	mac     hash.Hash
	entries map[[sha256.Size]byte]time.Time // key -> expiry

	// flights joins verifications of the same credentials that run at
	// the same time (see verify), by key.
	flights singleflight.Group
}

// verifyPassword is password.Verify; tests count its calls.
var verifyPassword = password.Verify

func newCredCache(ttl time.Duration, max int) (*credCache, error) {
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	if max <= 0 {
		max = DefaultCacheSize
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("reading the credential cache key: %w", err)
	}
	return &credCache{
		ttl:     ttl,
		max:     max,
		mac:     hmac.New(sha256.New, secret),
		entries: make(map[[sha256.Size]byte]time.Time),
	}, nil
}

func (c *credCache) enabled() bool { return c != nil && c.ttl > 0 }

// key derives the cache key. Callers hold mu (the HMAC state is shared to
// save an allocation per sign-in). Fields are length-prefixed so that no
// two different inputs run together into the same bytes.
func (c *credCache) key(kind directory.Kind, id int64, pwHash string, validFrom time.Time, pw string) [sha256.Size]byte {
	c.mac.Reset()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		c.mac.Write(n[:])
		c.mac.Write(b)
	}
	field([]byte(kind))
	binary.BigEndian.PutUint64(n[:], uint64(id))
	c.mac.Write(n[:])
	field([]byte(pwHash))
	binary.BigEndian.PutUint64(n[:], uint64(validFrom.UnixNano()))
	if validFrom.IsZero() {
		// UnixNano of the zero time is undefined; zero is unambiguous.
		binary.BigEndian.PutUint64(n[:], 0)
	}
	c.mac.Write(n[:])
	field([]byte(pw))
	var k [sha256.Size]byte
	c.mac.Sum(k[:0])
	return k
}

// hit reports whether these credentials verified within the TTL.
func (c *credCache) hit(kind directory.Kind, id int64, pwHash string, validFrom time.Time, pw string, now time.Time) bool {
	if !c.enabled() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.key(kind, id, pwHash, validFrom, pw)
	exp, ok := c.entries[k]
	if !ok {
		return false
	}
	if !now.Before(exp) {
		delete(c.entries, k)
		return false
	}
	return true
}

// verify checks pw against pwHash, as password.Verify does, and remembers
// the credentials when they match. Sign-ins with the same credentials at
// the same time share one computation: an app that opens twenty
// connections at once (after a restart of the node, or when its entry has
// expired) would otherwise pay argon2id twenty times, tens of milliseconds
// of a core and 19 MiB each, while every session on the node waits for the
// cores. With the cache disabled each sign-in verifies on its own.
func (c *credCache) verify(kind directory.Kind, id int64, pwHash string, validFrom time.Time, pw string, now time.Time) error {
	if !c.enabled() {
		return verifyPassword(pwHash, pw)
	}
	c.mu.Lock()
	k := c.key(kind, id, pwHash, validFrom, pw)
	c.mu.Unlock()
	_, err, _ := c.flights.Do(string(k[:]), func() (any, error) {
		err := verifyPassword(pwHash, pw)
		if err == nil {
			c.add(kind, id, pwHash, validFrom, pw, now)
		}
		return nil, err
	})
	return err
}

// add remembers credentials that verified.
func (c *credCache) add(kind directory.Kind, id int64, pwHash string, validFrom time.Time, pw string, now time.Time) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.key(kind, id, pwHash, validFrom, pw)
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.makeRoom(now)
	}
	c.entries[k] = now.Add(c.ttl)
}

// makeRoom drops expired entries and, if that frees less than a tenth of
// the room, the entries closest to expiry (the oldest) down to nine tenths.
// Callers hold mu.
func (c *credCache) makeRoom(now time.Time) {
	for k, exp := range c.entries {
		if !now.Before(exp) {
			delete(c.entries, k)
		}
	}
	target := c.max - c.max/10
	if target >= c.max {
		target = c.max - 1
	}
	if len(c.entries) <= target {
		return
	}
	type entry struct {
		k   [sha256.Size]byte
		exp time.Time
	}
	all := make([]entry, 0, len(c.entries))
	for k, exp := range c.entries {
		all = append(all, entry{k, exp})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].exp.Before(all[j].exp) })
	for _, e := range all[:len(all)-target] {
		delete(c.entries, e.k)
	}
}

// len returns the number of entries, for tests.
func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
