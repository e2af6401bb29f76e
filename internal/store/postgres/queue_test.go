package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/store/postgres/pgtest"
)

// queueMessages enqueues n messages, received at t0, through s.
func queueMessages(t *testing.T, s *Store, n int, t0 time.Time) []*queue.Message {
	t.Helper()
	msgs := make([]*queue.Message, n)
	for i := range msgs {
		msgs[i] = &queue.Message{QueueID: queue.NewID(t0), TenantID: 1, AccountID: 1, Sender: "app@a.example",
			Recipients: []string{fmt.Sprintf("r%d@b.example", i), "all@b.example"}, MessageID: fmt.Sprintf("<%d@a.example>", i),
			Subject: "hello", ClientIP: "192.0.2.1", Size: 5, ReceivedAt: t0, Body: []byte("hello")}
	}
	if err := s.Enqueue(t.Context(), msgs, nil); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return msgs
}

// TestClaimAcrossNodes: two nodes (two stores, each with its own pool)
// claiming from one queue at the same time get every message exactly once.
func TestClaimAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	nodes := []*Store{open(t, dsn), open(t, dsn)}
	const total = 400
	msgs := queueMessages(t, nodes[0], total, time.Now().Add(-time.Second))

	now := time.Now()
	var mu sync.Mutex
	claims := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 { // four claimers per node
		node := nodes[w%2]
		wg.Go(func() {
			for {
				got, err := node.Claim(context.Background(), fmt.Sprint("node-", w%2, "-worker-", w), now, 7, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					claims[m.QueueID]++
					if len(m.Due) != 2 {
						t.Errorf("claimed %s with %d due recipients, want 2", m.QueueID, len(m.Due))
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Claim: %v", err)
	}
	for _, m := range msgs {
		if n := claims[m.QueueID]; n != 1 {
			t.Errorf("message %s was claimed %d times, want once", m.QueueID, n)
		}
	}
	if len(claims) != total {
		t.Errorf("claimed %d distinct messages, want %d", len(claims), total)
	}
}

// TestClaimTakesOverExpiredLease: a message leased by a node that died is
// claimed by another node once the lease has passed, and not before.
func TestClaimTakesOverExpiredLease(t *testing.T) {
	dsn := pgtest.DSN(t)
	dead, live := open(t, dsn), open(t, dsn)
	t0 := time.Now().Add(-time.Second)
	msgs := queueMessages(t, dead, 1, t0)

	got, err := dead.Claim(t.Context(), "dead", t0.Add(time.Second), 10, time.Minute)
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim by the doomed node = %d messages, %v; want 1", len(got), err)
	}
	dead.Close() // the node dies holding the lease
	if got, err := live.Claim(t.Context(), "live", t0.Add(30*time.Second), 10, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("Claim within the dead node's lease = %d messages, %v; want none", len(got), err)
	}
	got, err = live.Claim(t.Context(), "live", t0.Add(2*time.Minute), 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].QueueID != msgs[0].QueueID || len(got[0].Due) != 2 {
		t.Fatalf("Claim after the lease passed = %+v, %v; want %s with its two recipients", got, err, msgs[0].QueueID)
	}
	var owner string
	if err := live.pool.QueryRow(t.Context(), `SELECT lease_owner FROM messages WHERE queue_id = $1`, msgs[0].QueueID).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != "live" {
		t.Errorf("lease owner after the takeover = %q, want live", owner)
	}
}
