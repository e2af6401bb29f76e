package trace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 30, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"   ", time.Time{}},
		{"2026-11-23T10:00:00Z", time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)},
		{"2026-11-23T10:00:00+02:00", time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)},
		{" 2026-11-23T10:00:00.5Z ", time.Date(2026, 11, 23, 10, 0, 0, 5e8, time.UTC)},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"90m", now.Add(-90 * time.Minute)},
		{"2h", now.Add(-2 * time.Hour)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"0s", now},
		{"7d", time.Date(2026, 11, 16, 12, 30, 0, 0, time.UTC)},
		{"0d", now},
		{"31d", time.Date(2026, 10, 23, 12, 30, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}

	for _, in := range []string{"yesterday", "-2h", "-1d", "1.5d", "d", "7 d", "2026-13-01", "2026-11-23 10:00", "10:00", "2h ago"} {
		if got, err := ParseTime(in, now); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, st := range Statuses {
		for _, in := range []string{st, strings.ToLower(st), strings.ToUpper(st)} {
			if got, err := ParseStatus(in); err != nil || got != st {
				t.Errorf("ParseStatus(%q) = %q, %v; want %q", in, got, err, st)
			}
		}
	}
	for _, in := range []string{"", "deliver", "Queued", "Delivered "} {
		if got, err := ParseStatus(in); err == nil {
			t.Errorf("ParseStatus(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseStatusFilter(t *testing.T) {
	for _, in := range []string{"Quarantined", "quarantined", " QUARANTINED"} {
		if _, err := ParseStatusFilter(in); !errors.Is(err, ErrNoQuarantine) {
			t.Errorf("ParseStatusFilter(%q) error = %v, want ErrNoQuarantine", in, err)
		}
	}
	if got, err := ParseStatusFilter("delivered"); err != nil || got != StatusDelivered {
		t.Errorf("ParseStatusFilter(delivered) = %q, %v; want Delivered", got, err)
	}
	if _, err := ParseStatusFilter("deliver"); err == nil || errors.Is(err, ErrNoQuarantine) {
		t.Errorf("ParseStatusFilter(deliver) error = %v, want an unknown-status error", err)
	}
}

func TestParseSubjectMatch(t *testing.T) {
	tests := map[string]string{"": SubjectContains, "contains": SubjectContains, "Starts-With": SubjectStartsWith, "ends-with": SubjectEndsWith}
	for in, want := range tests {
		if got, err := ParseSubjectMatch(in); err != nil || got != want {
			t.Errorf("ParseSubjectMatch(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"starts", "exact", "ends with"} {
		if got, err := ParseSubjectMatch(in); err == nil {
			t.Errorf("ParseSubjectMatch(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseEvent(t *testing.T) {
	for _, e := range Events {
		for _, in := range []string{e, strings.ToLower(e), " " + strings.ToUpper(e) + " "} {
			if got, err := ParseEvent(in); err != nil || got != e {
				t.Errorf("ParseEvent(%q) = %q, %v; want %q", in, got, err, e)
			}
		}
	}
	for _, in := range []string{"", "Alerts", "alert_raised", "Pending"} {
		got, err := ParseEvent(in)
		if err == nil {
			t.Errorf("ParseEvent(%q) = %q, want an error", in, got)
			continue
		}
		// The error lists the names, so that a typo is easy to fix.
		for _, e := range Events {
			if !strings.Contains(err.Error(), e) {
				t.Errorf("ParseEvent(%q) error %q does not name %s", in, err, e)
			}
		}
	}
}

// TestEventsListsEveryEvent: a new event constant must be added to
// Events too, or the event filter refuses its name.
func TestEventsListsEveryEvent(t *testing.T) {
	src, err := os.ReadFile("trace.go")
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, m := range regexp.MustCompile(`(?m)^\s*Event[A-Za-z]+\s*=\s*"([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
		consts = append(consts, m[1])
	}
	if len(consts) < 10 {
		t.Fatalf("found only %d event constants in trace.go: %v", len(consts), consts)
	}
	slices.Sort(consts)
	listed := slices.Sorted(slices.Values(Events))
	if !slices.Equal(consts, listed) {
		t.Errorf("Events = %v, want every event constant: %v", listed, consts)
	}
}

// fakeStore records the batches a Recorder writes. Its first call blocks
// until release is closed, so that events pile up behind it.
type fakeStore struct {
	entered chan struct{}
	release chan struct{}
	err     error

	mu      sync.Mutex
	batches [][]Event
}

func (s *fakeStore) AddEvents(ctx context.Context, events []Event) error {
	s.mu.Lock()
	s.batches = append(s.batches, slices.Clone(events))
	first := len(s.batches) == 1
	s.mu.Unlock()
	if first {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.err
}

func (s *fakeStore) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		out = append(out, len(b))
	}
	return out
}

func (s *fakeStore) details() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		for _, e := range b {
			out = append(out, e.Detail)
		}
	}
	return out
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRecorderBatchesAndCloseFlushes(t *testing.T) {
	tests := []struct {
		name string
		err  error // the store's answer; a failing store must not stall the recorder
	}{
		{"store works", nil},
		{"store fails", errors.New("disk full")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{entered: make(chan struct{}, 1), release: make(chan struct{}), err: tc.err}
			r := NewRecorder(st, discard)
			var want []string
			record := func(i int) {
				e := Event{Event: EventRejected, Detail: fmt.Sprint("event ", i)}
				want = append(want, e.Detail)
				r.Record(e)
			}
			record(0)
			<-st.entered // the first write is under way
			for i := 1; i < 1000; i++ {
				record(i)
			}
			close(st.release)
			r.Close()
			if got := st.sizes(); !slices.Equal(got, []int{1, 500, 499}) {
				t.Errorf("batch sizes = %v, want [1 500 499]: waiting events are written together, at most 500 at a time", got)
			}
			if got := st.details(); !slices.Equal(got, want) {
				t.Errorf("the store got %d events, want all %d in order", len(got), len(want))
			}
			// After Close, events are only logged.
			r.Record(Event{Detail: "late"})
			if slices.Contains(st.details(), "late") {
				t.Error("an event recorded after Close was written")
			}
		})
	}
}
