// Package limits counts what identities use of a limited resource: units
// over a rolling period (recipients a day), concurrent holders (signed-in
// connections) and a pace (messages a minute, the excess delayed rather
// than refused).
//
// The Engine (engine.go) enforces quotas exactly on one node or on several
// sharing one database: recipients per day per account and per tenant,
// external recipients and messages, per calendar day or rolling window. It
// leases blocks of units from the store's counters (store.Counters) and
// serves reservations from memory, so that the hot path costs no database
// round trip. MemCounters is its in-memory store for a single process.
//
// The other counters here are in memory, per node: connection slots
// (Concurrency) and message pacing (RatePacer). All read the time from an injectable Clock so that
// tests control it. docs/limits.md lists every limit and where it counts.
package limits

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Clock tells the time. Production code passes time.Now; tests pass a
// controlled clock.
type Clock func() time.Time

// ErrExceeded is wrapped by every refusal of this package.
var ErrExceeded = errors.New("limit exceeded")

// ExceededError says which limit refused and when there will be room again.
type ExceededError struct {
	// Key is the counter that is full (for instance "mailbox/42").
	Key string
	// Limit is the counter's limit.
	Limit int64
	// FreesAt is the earliest time the request could fit, as far as is
	// known now; zero when it depends on others letting go (concurrency,
	// or units reserved but not yet committed).
	FreesAt time.Time
}

// Error implements error.
func (e *ExceededError) Error() string {
	if e.FreesAt.IsZero() {
		return fmt.Sprintf("limit of %d for %s exceeded", e.Limit, e.Key)
	}
	return fmt.Sprintf("limit of %d for %s exceeded until %s", e.Limit, e.Key, e.FreesAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrExceeded) true.
func (e *ExceededError) Is(target error) bool { return target == ErrExceeded }

// Reservation is units held by Engine.Reserve: they count at once, so that
// racing callers cannot overshoot together, and are then committed when
// the work is done, or released when it is not.
type Reservation interface {
	// Commit counts the units as used now; they then age out of the
	// rolling period like any other use.
	Commit(ctx context.Context) error
	// Release gives the units back. After Commit or Release, both do
	// nothing, so a deferred Release is always safe.
	Release(ctx context.Context) error
}

// Slots limits how many holders a key has at once.
type Slots interface {
	// Acquire takes one slot of key, or fails with an *ExceededError.
	Acquire(ctx context.Context, key string) (Slot, error)
}

// Slot is one slot taken from Slots.
type Slot interface {
	// Release gives the slot back; calling it again does nothing.
	Release(ctx context.Context) error
}

// Pacer spreads a key's events at a steady rate: a burst goes through at
// once, and beyond it each event is given the time it may take effect.
type Pacer interface {
	// Pace counts one event of key and returns the time it may take
	// effect: the zero time (at once) while the key is within its rate, a
	// time to come when it is over it.
	Pace(ctx context.Context, key string) (time.Time, error)
}
