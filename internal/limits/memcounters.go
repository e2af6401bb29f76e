package limits

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"hve/internal/store"
)

// MemCounters is an in-memory store.Counters, for an engine that serves
// one process only (tests, an endpoint built without a store). It keeps
// the same promise as a database: racing leases never pass a limit.
type MemCounters struct {
	mu       sync.Mutex
	counters map[string]map[int64]*memBucket // key -> bucket start (Unix ns) -> bucket
	events   map[string]time.Time            // key and window -> expiry
}

type memBucket struct {
	used    int64
	expires time.Time
}

// NewMemCounters returns empty counters.
func NewMemCounters() *MemCounters {
	return &MemCounters{counters: map[string]map[int64]*memBucket{}, events: map[string]time.Time{}}
}

// LeaseQuota implements store.Counters.
func (m *MemCounters) LeaseQuota(_ context.Context, l store.QuotaLease) (granted, used int64, err error) {
	if l.Need < 1 || l.Want < l.Need {
		return 0, 0, fmt.Errorf("quota lease of %s: need %d, want %d: want at least one unit, and want >= need", l.Key, l.Need, l.Want)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	buckets := m.counters[l.Key]
	since, until := l.Since.UnixNano(), l.Bucket.UnixNano()
	for start, b := range buckets {
		if start >= since && start <= until {
			used += b.used
		}
	}
	g := min(l.Want, l.Limit-used)
	if g < l.Need {
		return 0, used, nil
	}
	if buckets == nil {
		buckets = map[int64]*memBucket{}
		m.counters[l.Key] = buckets
	}
	b := buckets[l.Bucket.UnixNano()]
	if b == nil {
		b = &memBucket{}
		buckets[l.Bucket.UnixNano()] = b
	}
	b.used += g
	if l.Expires.After(b.expires) {
		b.expires = l.Expires
	}
	return g, used + g, nil
}

// ReturnQuota implements store.Counters.
func (m *MemCounters) ReturnQuota(_ context.Context, key string, bucket time.Time, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.counters[key][bucket.UnixNano()]; b != nil {
		b.used = max(0, b.used-n)
	}
	return nil
}

// QuotaBuckets implements store.Counters.
func (m *MemCounters) QuotaBuckets(_ context.Context, key string, since time.Time) ([]store.QuotaBucket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var list []store.QuotaBucket
	for start, b := range m.counters[key] {
		if start >= since.UnixNano() && b.used > 0 {
			list = append(list, store.QuotaBucket{Start: time.Unix(0, start).UTC(), Used: b.used})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Start.Before(list[j].Start) })
	return list, nil
}

// MarkQuotaEvent implements store.Counters.
func (m *MemCounters) MarkQuotaEvent(_ context.Context, key string, window, expires time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := fmt.Sprintf("%s@%d", key, window.UnixNano())
	if _, ok := m.events[k]; ok {
		return false, nil
	}
	m.events[k] = expires
	return true, nil
}

// PruneQuota implements store.Counters.
func (m *MemCounters) PruneQuota(_ context.Context, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, buckets := range m.counters {
		for start, b := range buckets {
			if !now.Before(b.expires) {
				delete(buckets, start)
			}
		}
		if len(buckets) == 0 {
			delete(m.counters, key)
		}
	}
	for k, exp := range m.events {
		if !now.Before(exp) {
			delete(m.events, k)
		}
	}
	return nil
}

var _ store.Counters = (*MemCounters)(nil)
