package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"hve/internal/trace"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeWriter records the batches it is given. Its first call blocks until
// release is closed, so that submissions pile up behind it.
type fakeWriter struct {
	entered chan struct{} // receives once the first call has started
	release chan struct{}
	fail    func(call int) error // the error of the n-th call (1-based), if set

	mu      sync.Mutex
	batches [][]*Message
	events  []int // events per batch
}

func newFakeWriter() *fakeWriter {
	return &fakeWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (w *fakeWriter) Enqueue(ctx context.Context, msgs []*Message, events []trace.Event) error {
	w.mu.Lock()
	w.batches = append(w.batches, slices.Clone(msgs))
	w.events = append(w.events, len(events))
	call := len(w.batches)
	w.mu.Unlock()
	if call == 1 {
		w.entered <- struct{}{}
		<-w.release
	}
	if w.fail != nil {
		return w.fail(call)
	}
	return nil
}

func (w *fakeWriter) sizes() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for _, b := range w.batches {
		out = append(out, len(b))
	}
	return out
}

func msg(i int, size int64) *Message {
	return &Message{QueueID: fmt.Sprintf("Q%04d", i), Size: size}
}

func events(m *Message) []trace.Event {
	return []trace.Event{{QueueID: m.QueueID, Event: trace.EventReceived}, {QueueID: m.QueueID, Event: trace.EventReceived}}
}

// waitQueued waits until n submissions wait in the spool's channel.
func waitQueued(t *testing.T, s *Spool, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d submissions arrived", len(s.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// pileUp submits one message, waits until the writer is busy with it, then
// submits n more that wait behind it. It returns the channel every
// Submit's result arrives on, in no particular order, keyed by message.
func pileUp(t *testing.T, s *Spool, w *fakeWriter, n int, size int64) chan submitResult {
	t.Helper()
	results := make(chan submitResult, n+1)
	submit := func(m *Message) {
		results <- submitResult{m, s.Submit(t.Context(), m, events(m))}
	}
	go submit(msg(0, 1))
	<-w.entered
	for i := 1; i <= n; i++ {
		go submit(msg(i, size))
	}
	waitQueued(t, s, n)
	return results
}

// queuedFunc is a Handoff that leases nothing and calls itself with
// every batch written.
type queuedFunc func([]*Message)

func (f queuedFunc) Reserve([]*Message)      {}
func (f queuedFunc) Queued(batch []*Message) { f(batch) }

type submitResult struct {
	msg *Message
	err error
}

func TestSpoolGroupCommit(t *testing.T) {
	w := newFakeWriter()
	var mu sync.Mutex
	var queued []string
	s := NewSpool(w, queuedFunc(func(msgs []*Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			queued = append(queued, m.QueueID)
		}
	}), discard)
	defer s.Close()

	results := pileUp(t, s, w, 50, 100)
	close(w.release)
	for range 51 {
		if r := <-results; r.err != nil {
			t.Errorf("Submit(%s) = %v", r.msg.QueueID, r.err)
		}
	}
	if got := w.sizes(); !slices.Equal(got, []int{1, 50}) {
		t.Errorf("batch sizes = %v, want [1 50]: the 50 waiting messages share one commit", got)
	}
	if w.events[1] != 100 {
		t.Errorf("the second batch carried %d trace events, want 100 (2 per message)", w.events[1])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(queued) != 51 {
		t.Errorf("Queued saw %d messages, want 51", len(queued))
	}
}

func TestSpoolBatchLimits(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		size  int64
		sizes []int
	}{
		{"at most 256 messages", 300, 100, []int{1, 256, 44}},
		{"at most 64 MiB", 5, 40 << 20, []int{1, 2, 2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWriter()
			s := NewSpool(w, nil, discard)
			defer s.Close()
			results := pileUp(t, s, w, tc.n, tc.size)
			close(w.release)
			for range tc.n + 1 {
				if r := <-results; r.err != nil {
					t.Fatalf("Submit: %v", r.err)
				}
			}
			if got := w.sizes(); !slices.Equal(got, tc.sizes) {
				t.Errorf("batch sizes = %v, want %v", got, tc.sizes)
			}
		})
	}
}

func TestSpoolWriterErrorReachesEverySubmitter(t *testing.T) {
	boom := errors.New("disk on fire")
	w := newFakeWriter()
	w.fail = func(call int) error {
		if call == 2 {
			return boom
		}
		return nil
	}
	var queued int
	var mu sync.Mutex
	s := NewSpool(w, queuedFunc(func(msgs []*Message) {
		mu.Lock()
		queued += len(msgs)
		mu.Unlock()
	}), discard)
	defer s.Close()

	results := pileUp(t, s, w, 20, 100)
	close(w.release)
	for range 21 {
		r := <-results
		if r.msg.QueueID == "Q0000" {
			if r.err != nil {
				t.Errorf("the first, successful batch got %v", r.err)
			}
			continue
		}
		if !errors.Is(r.err, boom) {
			t.Errorf("Submit(%s) = %v, want the writer's error", r.msg.QueueID, r.err)
		}
	}
	if got := w.sizes(); !slices.Equal(got, []int{1, 20}) {
		t.Fatalf("batch sizes = %v, want [1 20]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if queued != 1 {
		t.Errorf("Queued saw %d messages, want only the 1 committed", queued)
	}
}

func TestSpoolCloseDrains(t *testing.T) {
	w := newFakeWriter()
	s := NewSpool(w, nil, discard)
	results := pileUp(t, s, w, 20, 100)

	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a batch was being written")
	case <-time.After(50 * time.Millisecond):
	}
	close(w.release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	for range 21 {
		if r := <-results; r.err != nil {
			t.Errorf("Submit(%s) handed over before Close = %v, want it committed", r.msg.QueueID, r.err)
		}
	}
	var total int
	for _, n := range w.sizes() {
		total += n
	}
	if total != 21 {
		t.Errorf("the writer got %d messages, want all 21", total)
	}
	s.Close() // a second Close is harmless
}

func TestSpoolSubmitAfterClose(t *testing.T) {
	w := newFakeWriter()
	close(w.release)
	s := NewSpool(w, nil, discard)
	if err := s.Submit(t.Context(), msg(0, 1), nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for i := range 200 {
		done := make(chan error, 1)
		go func() { done <- s.Submit(t.Context(), msg(i+1, 1), nil) }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("Submit after Close = %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Submit after Close blocked: the message went into a spool nobody reads")
		}
	}
	if got := w.sizes(); !slices.Equal(got, []int{1}) {
		t.Errorf("after Close the writer got batches %v, want only the first [1]", got)
	}
}

// TestSpoolSubmitRacingClose: a Submit racing Close is either committed or
// refused with ErrClosed, never lost or left waiting.
func TestSpoolSubmitRacingClose(t *testing.T) {
	for range 50 {
		w := newFakeWriter()
		close(w.release)
		s := NewSpool(w, nil, discard)
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for i := range 20 {
			wg.Go(func() {
				err := s.Submit(t.Context(), msg(i, 1), nil)
				if err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Submit = %v", err)
				}
				if err == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			})
		}
		s.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a Submit racing Close never returned")
		}
		var written int
		for _, n := range w.sizes() {
			written += n
		}
		if written != accepted {
			t.Fatalf("%d Submits succeeded but %d messages were written", accepted, written)
		}
	}
}

// TestSpoolLingersForSmallBatches: a small batch waits for more messages
// and is written as soon as it has lingerBelow of them; without lingering,
// a message that arrives after the one before was written has a commit of
// its own.
func TestSpoolLingersForSmallBatches(t *testing.T) {
	submit := func(s *Spool, i int) chan error {
		res := make(chan error, 1)
		go func() { res <- s.Submit(t.Context(), msg(i, 10), nil) }()
		return res
	}
	wait := func(res chan error) {
		t.Helper()
		select {
		case err := <-res:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Submit did not return within 10s")
		}
	}

	w := newFakeWriter()
	close(w.release)
	s := newSpool(w, nil, discard, time.Minute)
	defer s.Close()
	results := []chan error{submit(s, 0)}
	time.Sleep(50 * time.Millisecond)
	if got := w.sizes(); len(got) != 0 {
		t.Fatalf("batches %v written while the first message lingered", got)
	}
	for i := 1; i < lingerBelow; i++ {
		results = append(results, submit(s, i))
	}
	for _, res := range results {
		wait(res) // well before the minute: the batch is full
	}
	if got := w.sizes(); !slices.Equal(got, []int{lingerBelow}) {
		t.Errorf("batch sizes %v, want one of %d", got, lingerBelow)
	}

	w = newFakeWriter()
	close(w.release)
	s0 := newSpool(w, nil, discard, 0)
	defer s0.Close()
	wait(submit(s0, 0))
	wait(submit(s0, 1))
	if got := w.sizes(); !slices.Equal(got, []int{1, 1}) {
		t.Errorf("without lingering: batch sizes %v, want [1 1]", got)
	}
}
