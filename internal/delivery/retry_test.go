package delivery_test

import (
	"testing"
	"time"

	"hve/internal/delivery"
)

func TestRetryDelayHasJitterWithinTwentyPercent(t *testing.T) {
	r := delivery.DefaultRetry()
	for attempts := 1; attempts <= 10; attempts++ {
		base := delivery.DefaultSchedule[min(attempts, len(delivery.DefaultSchedule))-1]
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := r.Delay(attempts)
			if d < lo || d > hi {
				t.Fatalf("Delay(%d) = %v, want within ±20%% of %v", attempts, d, base)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("Delay(%d) took %d values in 200 draws; want jitter", attempts, len(seen))
		}
	}
}

func TestRetryNext(t *testing.T) {
	r := delivery.Retry{Schedule: []time.Duration{time.Minute, time.Hour}, MaxAge: 3 * time.Hour}
	received := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		attempts int
		now      time.Time
		next     time.Time
		expired  bool
	}{
		{1, received, received.Add(time.Minute), false},
		{2, received.Add(time.Minute), received.Add(time.Hour + time.Minute), false},
		{5, received.Add(time.Hour), received.Add(2 * time.Hour), false},         // the last delay repeats
		{6, received.Add(150 * time.Minute), received.Add(3 * time.Hour), false}, // capped at the maximum age
		{7, received.Add(3 * time.Hour), time.Time{}, true},
	} {
		next, expired := r.Next(c.attempts, received, c.now)
		if !next.Equal(c.next) || expired != c.expired {
			t.Errorf("Next(%d, at +%v) = %v, %v; want %v, %v", c.attempts, c.now.Sub(received), next, expired, c.next, c.expired)
		}
	}
}
