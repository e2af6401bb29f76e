package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/store"
	"hve/internal/store/postgres/pgtest"
	"hve/internal/trace"
)

// Two Store values on one database are two nodes: each has its own pool,
// so nothing in the process serializes them.
func twoNodes(t *testing.T) [2]*Store {
	dsn := pgtest.DSN(t)
	return [2]*Store{open(t, dsn), open(t, dsn)}
}

// TestLeaseQuotaAcrossNodes: leases racing from many goroutines of two
// nodes take exactly the limit in all, counting an earlier bucket of the
// window too.
func TestLeaseQuotaAcrossNodes(t *testing.T) {
	nodes := twoNodes(t)
	d := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	const key, limit = "account/1/rcpt/rolling", 1500
	lease := func(bucket time.Time, want int64) store.QuotaLease {
		return store.QuotaLease{Key: key, Bucket: bucket, Since: d, Expires: bucket.Add(25 * time.Hour), Need: 1, Want: want, Limit: limit}
	}
	// The window's first hour already holds some; the race is in the
	// next one.
	var granted atomic.Int64
	g, _, err := nodes[1].LeaseQuota(t.Context(), lease(d, 300))
	if err != nil || g != 300 {
		t.Fatalf("the first lease: %d granted, %v", g, err)
	}
	granted.Add(g)
	var wg sync.WaitGroup
	for i := range 32 {
		s := nodes[i%2]
		wg.Go(func() {
			for {
				g, used, err := s.LeaseQuota(t.Context(), lease(d.Add(time.Hour), rand.Int64N(20)+1))
				if err != nil {
					t.Error(err)
					return
				}
				if used > limit {
					t.Errorf("the counter is at %d, over its limit %d", used, limit)
				}
				if g == 0 {
					return
				}
				granted.Add(g)
			}
		})
	}
	wg.Wait()
	buckets, err := nodes[0].QuotaBuckets(t.Context(), key, d)
	if err != nil {
		t.Fatal(err)
	}
	var counted int64
	for _, b := range buckets {
		counted += b.Used
	}
	if granted.Load() != limit || counted != limit || len(buckets) != 2 {
		t.Errorf("granted %d in all, the store counts %d in %v; want exactly %d in two buckets", granted.Load(), counted, buckets, limit)
	}
}

// TestMeterEventsCursorSkipsNothing: a cursor walking MeterEvents while
// many transactions of two nodes write events sees every event, each
// once, in id order, though the writers commit in any order.
func TestMeterEventsCursorSkipsNothing(t *testing.T) {
	nodes := twoNodes(t)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var writers sync.WaitGroup
	for w := range 12 {
		s := nodes[w%2]
		writers.Go(func() {
			for i := range 25 {
				var batch []trace.Event
				for r := range 1 + rand.IntN(3) {
					batch = append(batch, trace.Event{TenantID: 1, Time: t0, QueueID: fmt.Sprintf("Q%d-%d", w, i),
						Recipient: fmt.Sprintf("r%d@a.example", r), Event: trace.EventReceived, Status: trace.StatusPending})
				}
				if err := s.AddEvents(ctx, batch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { writers.Wait(); close(done) }()

	var seen []int64
	var after int64
	walk := func() int {
		page, err := nodes[0].MeterEvents(ctx, after, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.ID <= after {
				t.Fatalf("MeterEvents after %d returned id %d", after, e.ID)
			}
			seen = append(seen, e.ID)
			after = e.ID
		}
		return len(page)
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			walk()
		}
	}
	for walk() > 0 {
	}

	rows, err := nodes[0].pool.Query(ctx, `SELECT id FROM trace_events ORDER BY id`)
	all, err := collect(rows, err, func(row scanner) (id int64, err error) { return id, row.Scan(&id) })
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 12*25 {
		t.Fatalf("the trace has %d events, want at least %d", len(all), 12*25)
	}
	if !slices.Equal(seen, all) {
		missed := []int64{}
		for _, id := range all {
			if _, ok := slices.BinarySearch(seen, id); !ok {
				missed = append(missed, id)
			}
		}
		t.Errorf("the cursor saw %d of %d events; it skipped %v", len(seen), len(all), missed)
	}
}

// TestTraceReadersWaitForPendingWriter: a transaction that has written
// events but not committed holds back what MeterEvents and SearchTrace
// return to the ids below its own, so that a cursor cannot move past them;
// writers do not wait for it, and once it ends (committed or rolled back)
// readers go on.
func TestTraceReadersWaitForPendingWriter(t *testing.T) {
	nodes := twoNodes(t)
	ctx := t.Context()
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	event := func(q string) []trace.Event {
		return []trace.Event{{TenantID: 1, Time: t0, QueueID: q, Recipient: "r@a.example", Event: trace.EventReceived, Status: trace.StatusPending}}
	}
	ids := func(list []store.MeterEvent) []string {
		var qs []string
		for _, e := range list {
			qs = append(qs, e.QueueID)
		}
		return qs
	}
	meter := func() []string {
		t.Helper()
		page, err := nodes[0].MeterEvents(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return ids(page)
	}
	search := func() []string {
		t.Helper()
		list, err := nodes[0].SearchTrace(ctx, trace.Query{TenantID: 1})
		if err != nil {
			t.Fatal(err)
		}
		var qs []string
		for _, e := range list {
			qs = append(qs, e.QueueID)
		}
		return qs
	}
	if err := nodes[0].AddEvents(ctx, event("before")); err != nil {
		t.Fatal(err)
	}
	begin := func() pgx.Tx {
		t.Helper()
		tx, err := nodes[1].pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback(ctx) })
		return tx
	}

	pending := begin()
	if _, err := insertEvents(ctx, pending, event("pending")); err != nil {
		t.Fatal(err)
	}
	// Another writer neither waits for the pending one nor shows before it.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := nodes[0].AddEvents(wctx, event("later")); err != nil {
		t.Fatalf("a second writer waited for the pending one: %v", err)
	}
	if got, want := meter(), []string{"before"}; !slices.Equal(got, want) {
		t.Errorf("MeterEvents with a writer pending = %v, want %v", got, want)
	}
	if got, want := search(), []string{"before"}; !slices.Equal(got, want) {
		t.Errorf("SearchTrace with a writer pending = %v, want %v", got, want)
	}
	if err := pending.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := meter(), []string{"before", "pending", "later"}; !slices.Equal(got, want) {
		t.Errorf("MeterEvents after the commit = %v, want %v", got, want)
	}

	aborted := begin()
	if _, err := insertEvents(ctx, aborted, event("aborted")); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].AddEvents(ctx, event("last")); err != nil {
		t.Fatal(err)
	}
	if got, want := meter(), []string{"before", "pending", "later"}; !slices.Equal(got, want) {
		t.Errorf("MeterEvents with a writer pending = %v, want %v", got, want)
	}
	if err := aborted.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"before", "pending", "later", "last"}
	if got := meter(); !slices.Equal(got, want) {
		t.Errorf("MeterEvents after the rollback = %v, want %v", got, want)
	}
	if got := search(); !slices.Equal(got, want) {
		t.Errorf("SearchTrace after the rollback = %v, want %v", got, want)
	}
}
