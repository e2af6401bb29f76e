package storetest

// The contract of the limits: quota counters (store.Counters), the
// accounts' thresholds and the tenants' maximum number of HVE accounts.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
)

// day is a UTC day start, whole microseconds (every store keeps it).
func day() time.Time {
	return time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
}

func lease(key string, bucket, since time.Time, need, want, limit int64) store.QuotaLease {
	return store.QuotaLease{Key: key, Bucket: bucket, Since: since, Expires: bucket.Add(25 * time.Hour), Need: need, Want: want, Limit: limit}
}

// grant leases and checks what the store granted and counts.
func grant(t *testing.T, s store.Store, l store.QuotaLease, wantGranted, wantUsed int64) {
	t.Helper()
	g, u, err := s.LeaseQuota(t.Context(), l)
	if err != nil {
		t.Fatalf("LeaseQuota(%+v): %v", l, err)
	}
	if g != wantGranted || u != wantUsed {
		t.Errorf("LeaseQuota(need %d, want %d, limit %d) = %d granted, %d used; want %d, %d", l.Need, l.Want, l.Limit, g, u, wantGranted, wantUsed)
	}
}

func testQuotaLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	d := day()
	k := "account/1/rcpt/day"
	grant(t, s, lease(k, d, d, 1, 100, 250), 100, 100)
	grant(t, s, lease(k, d, d, 1, 100, 250), 100, 200)
	// Less than wanted fits: as much as fits, if at least need.
	grant(t, s, lease(k, d, d, 1, 100, 250), 50, 250)
	grant(t, s, lease(k, d, d, 1, 1, 250), 0, 250)
	check(t, s.ReturnQuota(ctx, k, d, 10))
	grant(t, s, lease(k, d, d, 11, 20, 250), 0, 240)
	grant(t, s, lease(k, d, d, 10, 20, 250), 10, 250)
	// Another day and another key are other counters.
	grant(t, s, lease(k, d.Add(24*time.Hour), d.Add(24*time.Hour), 5, 5, 250), 5, 5)
	grant(t, s, lease("tenant/1/rcpt/day", d, d, 5, 5, 250), 5, 5)
	// A raised limit makes room.
	grant(t, s, lease(k, d, d, 1, 1, 251), 1, 251)
	// Returns never go below zero, and a bucket never leased is left so.
	check(t, s.ReturnQuota(ctx, k, d, 1000))
	check(t, s.ReturnQuota(ctx, k, d.Add(-24*time.Hour), 3))
	grant(t, s, lease(k, d, d, 1, 1, 1), 1, 1)
	if _, _, err := s.LeaseQuota(ctx, lease(k, d, d, 0, 1, 10)); err == nil {
		t.Error("a lease of need 0 was accepted")
	}
	if _, _, err := s.LeaseQuota(ctx, lease(k, d, d, 3, 2, 10)); err == nil {
		t.Error("a lease of want < need was accepted")
	}

	// A rolling window sums the buckets since the window's start.
	r := "mailbox/1/rcpt/rolling"
	m := d.Add(14 * time.Hour)
	grant(t, s, lease(r, m, m.Add(-24*time.Hour), 3, 3, 10), 3, 3)
	grant(t, s, lease(r, m.Add(time.Hour), m.Add(-23*time.Hour), 4, 4, 10), 4, 7)
	grant(t, s, lease(r, m.Add(2*time.Hour), m.Add(-22*time.Hour), 1, 4, 10), 3, 10) // want 4, 3 fit
	// One bucket later the first one no longer counts.
	grant(t, s, lease(r, m.Add(24*time.Hour), m.Add(time.Minute), 3, 3, 10), 3, 10)
	list := must(t, of(s.QuotaBuckets(ctx, r, m)))
	want := []store.QuotaBucket{{Start: m, Used: 3}, {Start: m.Add(time.Hour), Used: 4}, {Start: m.Add(2 * time.Hour), Used: 3}, {Start: m.Add(24 * time.Hour), Used: 3}}
	if fmt.Sprint(list) != fmt.Sprint(want) {
		t.Errorf("QuotaBuckets = %v, want %v", list, want)
	}
	for _, b := range list {
		if b.Start.Location() != time.UTC {
			t.Errorf("bucket start %v is not UTC", b.Start)
		}
	}
	// Empty buckets are left out.
	check(t, s.ReturnQuota(ctx, r, m.Add(time.Hour), 4))
	if list := must(t, of(s.QuotaBuckets(ctx, r, m.Add(time.Minute)))); len(list) != 2 {
		t.Errorf("QuotaBuckets after emptying one = %v, want the last two", list)
	}
	if list := must(t, of(s.QuotaBuckets(ctx, "no/such/counter", m))); len(list) != 0 {
		t.Errorf("QuotaBuckets of an unknown counter = %v", list)
	}

	// Pruning forgets what expired, and nothing else.
	check(t, s.PruneQuota(ctx, m.Add(27*time.Hour))) // the buckets of m..m+2h expire 25 hours after they start
	if list := must(t, of(s.QuotaBuckets(ctx, r, time.Time{}))); len(list) != 1 || !list[0].Start.Equal(m.Add(24*time.Hour)) {
		t.Errorf("after pruning: %v, want the bucket of the next day", list)
	}
}

// testQuotaLeaseRace: many goroutines leasing from one counter never take
// it over its limit, and together take exactly the limit.
func testQuotaLeaseRace(t *testing.T, s store.Store) {
	d := day()
	const limit = 1000
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			for {
				g, u, err := s.LeaseQuota(t.Context(), lease("race", d, d, 1, rand.Int64N(20)+1, limit))
				if err != nil {
					t.Error(err)
					return
				}
				if u > limit {
					t.Errorf("the counter is at %d, over its limit", u)
				}
				if g == 0 {
					return
				}
				granted.Add(g)
			}
		})
	}
	wg.Wait()
	list := must(t, of(s.QuotaBuckets(t.Context(), "race", d)))
	if granted.Load() != limit || len(list) != 1 || list[0].Used != limit {
		t.Errorf("granted %d in all, the store counts %v; want exactly %d", granted.Load(), list, limit)
	}
}

func testQuotaEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	d := day()
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			first, err := s.MarkQuotaEvent(ctx, "account/1/rcpt/day/warn", d, d.Add(24*time.Hour))
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Errorf("%d callers were first, want 1", firsts.Load())
	}
	if first := must(t, of(s.MarkQuotaEvent(ctx, "account/1/rcpt/day/warn", d.Add(24*time.Hour), d.Add(48*time.Hour)))); !first {
		t.Error("the next window's mark was not first")
	}
	check(t, s.PruneQuota(ctx, d.Add(24*time.Hour)))
	if first := must(t, of(s.MarkQuotaEvent(ctx, "account/1/rcpt/day/warn", d, d.Add(24*time.Hour)))); !first {
		t.Error("a pruned mark still counted")
	}
	if first := must(t, of(s.MarkQuotaEvent(ctx, "account/1/rcpt/day/warn", d.Add(24*time.Hour), d.Add(48*time.Hour)))); first {
		t.Error("a mark that has not expired was pruned")
	}
}

func testAccountLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := must(t, of(s.CreateAccount(ctx, directory.Account{TenantID: ten.ID, Name: "app", DisplayName: "App", Address: "app@a.example",
		PasswordHash: "x", Enabled: true, DailyRecipientLimit: 5000, WarnAt: 80})))
	if got := must(t, of(s.Account(ctx, ten.ID, acc.ID))); got.DailyRecipientLimit != 5000 || got.WarnAt != 80 {
		t.Errorf("created account has limit %d, warn at %d; want 5000, 80", got.DailyRecipientLimit, got.WarnAt)
	}
	acc.DailyRecipientLimit, acc.WarnAt = 0, 0
	must(t, of(s.UpdateAccount(ctx, acc)))
	list := must(t, of(s.Accounts(ctx, ten.ID)))
	if len(list) != 1 || list[0].DailyRecipientLimit != 0 || list[0].WarnAt != 0 {
		t.Errorf("after clearing: %+v", list)
	}
	acc.DailyRecipientLimit, acc.WarnAt = 7, 100
	must(t, of(s.UpdateAccount(ctx, acc)))
	if got := must(t, of(s.AccountByAddress(ctx, "app@a.example"))); got.DailyRecipientLimit != 7 || got.WarnAt != 100 {
		t.Errorf("after the update: limit %d, warn at %d", got.DailyRecipientLimit, got.WarnAt)
	}
}

// testMaxHVEAccounts: a tenant's maximum number of HVE accounts holds,
// also against racing creations.
func testMaxHVEAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	set := a.Settings
	set.MaxHVEAccounts = 5
	must(t, of(s.UpdateTenantSettings(ctx, a.ID, set)))
	var created, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			_, err := s.CreateAccount(ctx, directory.Account{TenantID: a.ID, Name: "app", DisplayName: "App",
				Address: fmt.Sprintf("app%d@a.example", i), PasswordHash: "x", Enabled: true})
			switch {
			case err == nil:
				created.Add(1)
			case errors.Is(err, store.ErrLimit):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if created.Load() != 5 || refused.Load() != 7 || len(must(t, of(s.Accounts(ctx, a.ID)))) != 5 {
		t.Errorf("%d created, %d refused; want 5 and 7", created.Load(), refused.Load())
	}
	// The refusal says which limit.
	_, err := s.CreateAccount(ctx, directory.Account{TenantID: a.ID, Name: "x", Address: "x@a.example", PasswordHash: "x"})
	wantErr(t, err, store.ErrLimit, "the sixth account")
	// Other tenants are not concerned; removing one makes room; 0 is
	// unlimited.
	newAccount(t, s, b.ID, "app@b.example")
	accs := must(t, of(s.Accounts(ctx, a.ID)))
	check(t, s.RemoveAccount(ctx, a.ID, accs[0].ID))
	newAccount(t, s, a.ID, "again@a.example")
	set.MaxHVEAccounts = 0
	must(t, of(s.UpdateTenantSettings(ctx, a.ID, set)))
	for i := range 3 {
		newAccount(t, s, a.ID, fmt.Sprintf("more%d@a.example", i))
	}
}
