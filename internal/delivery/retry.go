package delivery

import (
	"math/rand/v2"
	"time"
)

// DefaultSchedule is the retry schedule after a temporary failure: the n-th
// failed attempt of a recipient is followed by the n-th delay, and every
// attempt after the last one by the last delay:
//
//	attempt 1 failed -> retry after  1m
//	attempt 2        ->              5m
//	attempt 3        ->             15m
//	attempt 4        ->             30m
//	attempt 5        ->              1h
//	attempt 6        ->              2h
//	attempt 7 and on ->  every       4h
//
// Each delay is varied by up to DefaultJitter either way, so that recipients
// deferred together (a next hop that was down) do not all come back in the
// same second.
var DefaultSchedule = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour,
}

// DefaultJitter is the share by which each retry delay varies: ±20%.
const DefaultJitter = 0.2

// DefaultMaxAge is how long a message is retried: a recipient still failing
// temporarily 48 hours after the message was accepted fails for good, with
// the last reply of its next hop.
const DefaultMaxAge = 48 * time.Hour

// Retry is the retry policy of temporary failures.
type Retry struct {
	// Schedule holds the delays after the first, second, ... failed
	// attempt; the last repeats.
	Schedule []time.Duration
	// Jitter varies each delay by up to this share either way (0.2: ±20%).
	Jitter float64
	// MaxAge is the time from acceptance after which a temporary failure
	// is final.
	MaxAge time.Duration
	// Rand returns a number in [0, 1) for the jitter; tests fix it.
	Rand func() float64
}

// DefaultRetry returns the documented policy: DefaultSchedule,
// DefaultJitter and DefaultMaxAge.
func DefaultRetry() Retry {
	return Retry{Schedule: DefaultSchedule, Jitter: DefaultJitter, MaxAge: DefaultMaxAge, Rand: rand.Float64}
}

// Delay is the wait after a recipient's attempts-th failed attempt, jitter
// included.
func (r Retry) Delay(attempts int) time.Duration {
	if len(r.Schedule) == 0 {
		return 0
	}
	i := min(max(attempts, 1), len(r.Schedule)) - 1
	d := r.Schedule[i]
	if r.Jitter > 0 && r.Rand != nil {
		// Rand in [0, 1) maps to a factor in [1-Jitter, 1+Jitter).
		d = time.Duration(float64(d) * (1 + r.Jitter*(2*r.Rand()-1)))
	}
	return d
}

// Next decides what follows a temporary failure at now of a recipient of a
// message received at received, after attempts attempts in all: the time of
// the next attempt, or expired when the message is MaxAge old. The next
// attempt is never later than the expiry, so that the last one happens at
// MaxAge rather than up to a schedule step before it.
func (r Retry) Next(attempts int, received, now time.Time) (next time.Time, expired bool) {
	deadline := received.Add(r.MaxAge)
	if r.MaxAge > 0 && !now.Before(deadline) {
		return time.Time{}, true
	}
	next = now.Add(r.Delay(attempts))
	if r.MaxAge > 0 && next.After(deadline) {
		next = deadline
	}
	return next, false
}
