package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/reply"
	"hve/internal/store"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
)

func TestReason(t *testing.T) {
	// Every refusal of the reply table maps back to its own name, however
	// its verbs are filled.
	for _, r := range reply.Own {
		if r.Code < 400 {
			continue
		}
		line := reply.Line(r.Format("x@example.org", "y", 50))
		if got := Reason(line); got != r.Name {
			t.Errorf("Reason(%q) = %q, want %q", line, got, r.Name)
		}
	}
	for line, want := range map[string]string{
		"452 4.5.3 Too many recipients; at most 50 per message":                                        "too-many-recipients",
		"535 5.7.3 Authentication unsuccessful":                                                        "auth-failed",
		"535 5.7.3 Authentication unsuccessful, this endpoint accepts High Volume Email accounts only": "mailbox-on-hve-endpoint",
		"599 9.9.9 Something new":                                                                      ReasonOther,
		"":                                                                                             ReasonOther,
	} {
		if got := Reason(line); got != want {
			t.Errorf("Reason(%q) = %q, want %q", line, got, want)
		}
	}
}

// at is a fixed hour for events.
var at = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func meter(id int64, min int, event, qid, sender string, first bool, size int64, detail string) store.MeterEvent {
	return store.MeterEvent{Event: trace.Event{ID: id, TenantID: 1, Time: at.Add(time.Duration(min) * time.Minute), QueueID: qid,
		Sender: sender, Recipient: "r@a.example", Event: event, Detail: detail, Size: size}, FirstReceived: first}
}

func TestCount(t *testing.T) {
	const app, other = "app@a.example", "other@a.example"
	tooMany := reply.Line(reply.TooManyRecipients.Format(50))
	rows := Count([]store.MeterEvent{
		meter(1, 0, trace.EventReceived, "Q1", app, true, 100, ""),
		meter(2, 0, trace.EventReceived, "Q1", app, false, 100, ""),
		meter(3, 1, trace.EventExpanded, "Q1", app, false, 100, ""),
		meter(4, 1, trace.EventDelivered, "Q1", app, false, 100, ""),
		meter(5, 1, trace.EventDelivered, "Q1", "APP@a.example", false, 100, ""),
		meter(6, 1, trace.EventFailed, "Q1", app, false, 100, ""),
		meter(7, 2, trace.EventRejected, "", app, false, 0, tooMany),
		meter(8, 2, trace.EventRejected, "", app, false, 0, tooMany),
		meter(9, 3, trace.EventDeferred, "Q1", app, false, 100, ""),
		meter(10, 3, trace.EventSignInRefused, "", app, false, 0, "535"),
		meter(11, 61, trace.EventReceived, "Q2", app, true, 7, ""),
		meter(12, 5, trace.EventReceived, "Q3", other, true, 9, ""),
		meter(13, 5, trace.EventReceived, "Q4", "", true, 9, ""),
	})
	got := []string{}
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s m%d r%d x%d b%d f%d rf%d %v", r.Hour.Format("15:04"), r.Account, r.Messages, r.Recipients,
			r.ExpandedRecipients, r.Bytes, r.Failures, r.Refusals, r.RefusalsByReason))
	}
	want := []string{
		"10:00 app@a.example m1 r2 x2 b100 f1 rf2 map[too-many-recipients:2]",
		"11:00 app@a.example m1 r1 x0 b7 f0 rf0 map[]",
		"10:00 other@a.example m1 r1 x0 b9 f0 rf0 map[]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Count =\n%v\nwant\n%v", got, want)
	}
}

func TestSummarize(t *testing.T) {
	h := func(account string, hour int, expanded int64, reasons map[string]int64) store.UsageRow {
		return store.UsageRow{Account: account, Hour: at.Add(time.Duration(hour) * time.Hour), Messages: 1, Recipients: 2,
			ExpandedRecipients: expanded, Bytes: 10, RefusalsByReason: reasons, Refusals: int64(len(reasons))}
	}
	hours := []store.UsageRow{
		h("b@a.example", 0, 1_000_000, map[string]int64{}),
		h("b@a.example", 1, 500_000, map[string]int64{"external-recipient": 1}),
		h("a@a.example", 2, 3, map[string]int64{"external-recipient": 1}),
		h("a@a.example", 24, 1, map[string]int64{"too-many-recipients": 1}),
	}
	rows, total := Summarize(hours, ByDay, 42)
	got := []string{}
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s m%d x%d %s %s", r.Period, r.Account, r.Messages, r.ExpandedRecipients,
			FormatReasons(r.RefusalsByReason), FormatCost(r.EstimatedCost)))
	}
	want := []string{
		"2026-11-23 a@a.example m1 x3 external-recipient=1 0.000126",
		"2026-11-23 b@a.example m2 x1500000 external-recipient=1 63.000000",
		"2026-11-24 a@a.example m1 x1 too-many-recipients=1 0.000042",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Summarize by day =\n%v\nwant\n%v", got, want)
	}
	if total.Messages != 4 || total.ExpandedRecipients != 1_500_004 || total.Refusals != 3 || FormatCost(total.EstimatedCost) != "63.000168" ||
		FormatReasons(total.RefusalsByReason) != "external-recipient=2;too-many-recipients=1" {
		t.Errorf("total = %+v", total)
	}
	rows, _ = Summarize(hours, ByHour, 10)
	if len(rows) != 4 || rows[0].Period != "2026-11-23T10:00:00Z" || rows[0].EstimatedCost != 10 {
		t.Errorf("Summarize by hour = %+v", rows)
	}
	if rows, total := Summarize(nil, ByDay, 42); rows == nil || len(rows) != 0 || total.RefusalsByReason == nil {
		t.Errorf("Summarize(nil) = %v, %+v; want empty, non-nil", rows, total)
	}
}

func TestPrice(t *testing.T) {
	if p := Price(directory.Settings{}); p != 42 {
		t.Errorf("unset price = %v, want 42", p)
	}
	if p := Price(directory.Settings{PricePerMillion: 12.5}); p != 12.5 {
		t.Errorf("price = %v, want 12.5", p)
	}
}

// openStore returns a fresh embedded store with a tenant.
func openStore(t *testing.T) (*sqlite.Store, int64) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ten, err := st.CreateTenant(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	return st, ten.ID
}

// traffic stores n messages of app@a.example, each with three envelope
// recipients (one delivered, one failed, one still pending), in one batch
// as the spool writes them, and one refusal per message.
func traffic(t *testing.T, st store.Store, tenant int64, n int) {
	t.Helper()
	var msgs []*queue.Message
	var events, later []trace.Event
	for i := range n {
		m := &queue.Message{QueueID: queue.NewID(at), TenantID: tenant, Sender: "app@a.example",
			Recipients: []string{"a@a.example", "b@a.example", "c@a.example"}, ReceivedAt: at, Size: 1000, Body: []byte("x")}
		msgs = append(msgs, m)
		for _, r := range m.Recipients {
			events = append(events, trace.Event{TenantID: tenant, Time: at, QueueID: m.QueueID, Sender: m.Sender, Recipient: r,
				Event: trace.EventReceived, Status: trace.StatusPending, Size: m.Size})
		}
		later = append(later,
			trace.Event{TenantID: tenant, Time: at, QueueID: m.QueueID, Sender: m.Sender, Recipient: "a@a.example",
				Event: trace.EventDelivered, Status: trace.StatusDelivered},
			trace.Event{TenantID: tenant, Time: at, QueueID: m.QueueID, Sender: m.Sender, Recipient: "b@a.example",
				Event: trace.EventFailed, Status: trace.StatusFailed},
			trace.Event{TenantID: tenant, Time: at, Sender: m.Sender, Recipient: fmt.Sprintf("x%d@example.org", i),
				Event: trace.EventRejected, Status: trace.StatusRejected, Detail: reply.Line(reply.ExternalRecipient.Err())})
	}
	if err := st.Enqueue(t.Context(), msgs, events); err != nil {
		t.Fatal(err)
	}
	if err := st.AddEvents(t.Context(), later); err != nil {
		t.Fatal(err)
	}
}

// checkUsage compares the tenant's usage with n messages of traffic.
func checkUsage(t *testing.T, st store.Store, tenant int64, n int64) {
	t.Helper()
	rows, err := st.UsageHours(t.Context(), store.UsageQuery{TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("usage rows = %+v, want one", rows)
	}
	r := rows[0]
	if r.Messages != n || r.Recipients != 3*n || r.Bytes != 1000*n || r.ExpandedRecipients != n || r.Failures != n ||
		r.Refusals != n || r.RefusalsByReason["external-recipient"] != n || !r.Hour.Equal(at) {
		t.Errorf("usage = %+v, want %d messages", r, n)
	}
}

// TestAggregatorCountsOnce: batches that split a message's Received events
// count it once, and catching up again adds nothing.
func TestAggregatorCountsOnce(t *testing.T) {
	st, tenant := openStore(t)
	traffic(t, st, tenant, 10)
	agg := NewAggregator(st, slog.New(slog.DiscardHandler))
	agg.Batch = 4 // 3 Received events a message: batches split messages
	if err := agg.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkUsage(t, st, tenant, 10)
	if err := agg.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkUsage(t, st, tenant, 10)
	traffic(t, st, tenant, 5)
	if err := agg.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkUsage(t, st, tenant, 15)
}

// TestAggregatorsRace: several aggregators (nodes) over one store count
// every event once.
func TestAggregatorsRace(t *testing.T) {
	st, tenant := openStore(t)
	traffic(t, st, tenant, 50)
	var wg sync.WaitGroup
	for range 4 {
		agg := NewAggregator(st, slog.New(slog.DiscardHandler))
		agg.Batch = 7
		wg.Go(func() {
			if err := agg.CatchUp(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	checkUsage(t, st, tenant, 50)
}

// failingStore fails AddUsage once, as a crash between reading and
// writing would leave things.
type failingStore struct {
	*sqlite.Store
	failed bool
}

func (f *failingStore) AddUsage(ctx context.Context, from, to int64, rows []store.UsageRow) error {
	if !f.failed {
		f.failed = true
		return errors.New("disk unplugged")
	}
	return f.Store.AddUsage(ctx, from, to, rows)
}

// TestAggregatorFailureLosesNothing: a failed write leaves the cursor, so
// the next pass counts the same events exactly once.
func TestAggregatorFailureLosesNothing(t *testing.T) {
	st, tenant := openStore(t)
	traffic(t, st, tenant, 3)
	agg := NewAggregator(&failingStore{Store: st}, slog.New(slog.DiscardHandler))
	if err := agg.CatchUp(t.Context()); err == nil {
		t.Fatal("CatchUp succeeded through a failed write")
	}
	if c, _ := st.UsageCursor(t.Context()); c != 0 {
		t.Errorf("cursor moved to %d after a failed write", c)
	}
	if err := agg.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkUsage(t, st, tenant, 3)
}

// TestAggregatorRun: Run counts new traffic within its interval, and at
// once when woken.
func TestAggregatorRun(t *testing.T) {
	st, tenant := openStore(t)
	agg := NewAggregator(st, slog.New(slog.DiscardHandler))
	agg.Interval = time.Hour // only Wake makes it look again
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		agg.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	traffic(t, st, tenant, 2)
	agg.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, err := st.UsageHours(t.Context(), store.UsageQuery{TenantID: tenant})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 1 && rows[0].Messages == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage after Wake = %+v", rows)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAggregatorResolvesAliases: a message sent from an account's alias
// counts as the account's; an address the directory does not know (a
// removed account) keeps its own row.
func TestAggregatorResolvesAliases(t *testing.T) {
	st, tenant := openStore(t)
	ctx := t.Context()
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: tenant, Name: "a.example", Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, directory.Account{TenantID: tenant, Name: "app", DisplayName: "App", Address: "app@a.example",
		Aliases: []string{"alerts@a.example"}, Enabled: true, PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	var events []trace.Event
	for i, sender := range []string{"app@a.example", "alerts@a.example", "gone@a.example"} {
		events = append(events, trace.Event{TenantID: tenant, Time: at, QueueID: fmt.Sprintf("Q%d", i), Sender: sender,
			Recipient: "r@a.example", Event: trace.EventReceived, Status: trace.StatusPending, Size: 10})
	}
	if err := st.AddEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := NewAggregator(st, slog.New(slog.DiscardHandler)).CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := st.UsageHours(ctx, store.UsageQuery{TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		got[r.Account] += r.Messages
	}
	if len(got) != 2 || got["app@a.example"] != 2 || got["gone@a.example"] != 1 {
		t.Errorf("messages by account = %v, want app@a.example 2 (one from its alias), gone@a.example 1", got)
	}
}
