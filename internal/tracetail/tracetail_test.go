package tracetail

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"hve/internal/store"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
)

// counting is the real store, counting the events it returns.
type counting struct {
	*sqlite.Store
	returned int
}

func (c *counting) MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error) {
	page, err := c.Store.MeterEvents(ctx, afterID, limit)
	c.returned += len(page)
	return page, err
}

// openStore opens an embedded store in a fresh directory, closed at the
// test's end.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// addMessages stores n messages' events: a Received event for each of
// two recipients, then a Delivered event for each.
func addMessages(t *testing.T, s *sqlite.Store, from, n int) {
	t.Helper()
	var events []trace.Event
	now := time.Now()
	for i := from; i < from+n; i++ {
		q := fmt.Sprintf("Q%06d", i)
		for _, ev := range []string{trace.EventReceived, trace.EventDelivered} {
			for _, rcpt := range []string{"a@contoso.test", "b@contoso.test"} {
				events = append(events, trace.Event{TenantID: 1, Time: now, QueueID: q, MessageID: "<" + q + "@x>",
					Sender: "app@contoso.test", Recipient: rcpt, Event: ev, Status: "ok", Size: 100})
			}
		}
	}
	if err := s.AddEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

// follow reads everything after *cursor in pages of size, as the meter
// and the dispatcher do, and moves the cursor.
func follow(t *testing.T, r *Reader, cursor *int64, size int) []store.MeterEvent {
	t.Helper()
	var all []store.MeterEvent
	for {
		page, err := r.MeterEvents(context.Background(), *cursor, size)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) > 0 {
			*cursor = page[len(page)-1].ID
		}
		if len(page) < size {
			return all
		}
	}
}

func TestTwoFollowersReadEachEventOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	src := &counting{Store: s}
	r := New(src, 1000)
	var meter, dispatcher int64

	from := 0
	for round, n := range []int{30, 7, 0, 45} {
		addMessages(t, s, from, n)
		from += n
		before := src.returned
		// Different page sizes, as the meter's and the dispatcher's.
		got1 := follow(t, r, &meter, 50)
		got2 := follow(t, r, &dispatcher, 17)
		if len(got1) != 4*n {
			t.Fatalf("round %d: the first follower read %d events, want %d", round, len(got1), 4*n)
		}
		if !reflect.DeepEqual(got1, got2) {
			t.Fatalf("round %d: the followers read different events", round)
		}
		if read := src.returned - before; read != 4*n {
			t.Errorf("round %d: %d events read from the store for two followers of %d new ones; want each once", round, read, 4*n)
		}
	}

	// What they read is what the store holds, first-Received marks included.
	want, err := s.MeterEvents(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var again int64
	if got := follow(t, New(s, 1000), &again, 64); !reflect.DeepEqual(got, want) {
		t.Errorf("read through a Reader: %d events, differing from the store's %d", len(got), len(want))
	}
	firsts := 0
	for _, e := range want {
		if e.FirstReceived {
			firsts++
		}
	}
	if firsts != 82 {
		t.Errorf("%d events marked as their message's first Received; want one per message, 82", firsts)
	}
}

// Followers far apart, with a run too short to hold the gap between them,
// still read every event in order.
func TestFollowersFarApart(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addMessages(t, s, 0, 100)
	want, err := s.MeterEvents(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	r := New(s, 5)
	var ahead, behind int64
	var gotAhead, gotBehind []store.MeterEvent
	for len(gotBehind) < len(want) {
		gotAhead = append(gotAhead, follow(t, r, &ahead, 40)...)
		page, err := r.MeterEvents(ctx, behind, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			t.Fatalf("the follower behind got nothing at %d of %d events", len(gotBehind), len(want))
		}
		behind = page[len(page)-1].ID
		gotBehind = append(gotBehind, page...)
	}
	if !reflect.DeepEqual(gotAhead, want) || !reflect.DeepEqual(gotBehind, want) {
		t.Errorf("followers read %d and %d events, differing from the store's %d", len(gotAhead), len(gotBehind), len(want))
	}
}
