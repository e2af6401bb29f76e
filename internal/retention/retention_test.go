package retention

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hve/internal/store"
)

// pruneStore deletes from a count of old rows, limit at a time.
type pruneStore struct {
	mu      sync.Mutex
	old     int
	befores []time.Time
	limits  []int
	err     error
	called  chan struct{}
}

func (s *pruneStore) delete(_ context.Context, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.befores = append(s.befores, before)
	s.limits = append(s.limits, limit)
	if s.called != nil {
		select {
		case s.called <- struct{}{}:
		default:
		}
	}
	if s.err != nil {
		return 0, s.err
	}
	n := min(s.old, limit)
	s.old -= n
	return n, nil
}

func TestJobPruneInBatches(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	st := &pruneStore{old: 12}
	r := &Job{What: "test rows", Delete: st.delete, Keep: 90 * 24 * time.Hour, Batch: 5, Now: func() time.Time { return now }}
	n, err := r.Prune(t.Context())
	if err != nil || n != 12 {
		t.Fatalf("Prune = %d, %v; want 12", n, err)
	}
	// 5, 5, 2: the short batch says nothing is left.
	if !slices.Equal(st.limits, []int{5, 5, 5}) {
		t.Errorf("batches = %v, want three of 5", st.limits)
	}
	want := time.Date(2026, 8, 25, 12, 0, 0, 0, time.UTC)
	for _, b := range st.befores {
		if !b.Equal(want) {
			t.Errorf("before = %v, want now minus 90 days, %v", b, want)
		}
	}
}

func TestJobDefaultsAndOff(t *testing.T) {
	st := &pruneStore{}
	r := &Job{What: "test rows", Delete: st.delete, Keep: time.Hour}
	if _, err := r.Prune(t.Context()); err != nil || !slices.Equal(st.limits, []int{store.DefaultPruneBatch}) {
		t.Errorf("Prune with the default batch: limits %v, %v; want one batch of store.DefaultPruneBatch (%d)", st.limits, err, store.DefaultPruneBatch)
	}
	st = &pruneStore{old: 3}
	off := &Job{What: "test rows", Delete: st.delete}
	if n, err := off.Prune(t.Context()); n != 0 || err != nil || len(st.limits) != 0 {
		t.Errorf("Prune with Keep 0 = %d, %v after %d calls; want nothing deleted", n, err, len(st.limits))
	}
	off.Run(t.Context()) // returns at once
}

func TestJobError(t *testing.T) {
	st := &pruneStore{err: errors.New("disk I/O error")}
	r := &Job{What: "test rows", Delete: st.delete, Keep: time.Hour}
	if _, err := r.Prune(t.Context()); !errors.Is(err, st.err) || !strings.Contains(err.Error(), "deleting test rows before") {
		t.Errorf("Prune error = %v, want it wrapped, naming what was deleted", err)
	}
}

func TestJobRunsEveryPeriod(t *testing.T) {
	st := &pruneStore{called: make(chan struct{}, 1)}
	r := &Job{What: "test rows", Delete: st.delete, Keep: time.Hour, Every: time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	for range 3 {
		select {
		case <-st.called:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not prune again")
		}
	}
	cancel()
	<-done
}
