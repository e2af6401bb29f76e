package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"hve/internal/store"
	"hve/internal/trace"
)

// ---- usage and reports ----

// usageEvent makes a trace event of a tenant at minute min after t0.
func usageEvent(tenant int64, t0 time.Time, min int, name, qid, sender, rcpt, detail string, size int64) trace.Event {
	status := map[string]string{trace.EventReceived: trace.StatusPending, trace.EventDelivered: trace.StatusDelivered,
		trace.EventExpanded: trace.StatusExpanded, trace.EventFailed: trace.StatusFailed, trace.EventRejected: trace.StatusRejected}[name]
	mid := ""
	if qid != "" {
		mid = "m-" + qid + "@a.example"
	}
	return trace.Event{TenantID: tenant, Time: t0.Add(time.Duration(min) * time.Minute), QueueID: qid, MessageID: mid,
		Sender: sender, Recipient: rcpt, Event: name, Status: status, Detail: detail, ClientIP: "192.0.2.1",
		Subject: "subject " + qid, Size: size}
}

// testMeterEvents: MeterEvents pages through every tenant's events in id
// order and marks exactly one Received event per message, whatever the
// page size.
func testMeterEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const app = "app@a.example"
	events := []trace.Event{
		usageEvent(a.ID, t0, 0, trace.EventReceived, "Q1", app, "r1@a.example", "", 100),
		usageEvent(a.ID, t0, 0, trace.EventReceived, "Q1", app, "r2@a.example", "", 100),
		usageEvent(a.ID, t0, 0, trace.EventReceived, "Q1", app, "r3@a.example", "", 100),
		usageEvent(b.ID, t0, 0, trace.EventReceived, "QB", app, "r1@b.example", "", 50),
		usageEvent(a.ID, t0, 1, trace.EventDelivered, "Q1", app, "r1@a.example", "", 100),
		usageEvent(a.ID, t0, 1, trace.EventReceived, "Q2", app, "r1@a.example", "", 70),
	}
	check(t, s.AddEvents(ctx, events))
	if c := must(t, of(s.UsageCursor(ctx))); c != 0 {
		t.Errorf("UsageCursor of a new store = %d, want 0", c)
	}
	for _, size := range []int{1, 2, 4, 100} {
		var got []store.MeterEvent
		var after int64
		for range 20 {
			page := must(t, of(s.MeterEvents(ctx, after, size)))
			if len(page) > size {
				t.Fatalf("MeterEvents(limit %d) returned %d events", size, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].ID
		}
		if len(got) != len(events) {
			t.Fatalf("pages of %d: %d events, want %d", size, len(got), len(events))
		}
		var first []string
		for i, e := range got {
			if i > 0 && e.ID <= got[i-1].ID {
				t.Errorf("pages of %d: id %d after %d", size, e.ID, got[i-1].ID)
			}
			if e.TenantID != events[i].TenantID || e.Recipient != events[i].Recipient || e.Event.Event != events[i].Event || e.Size != events[i].Size {
				t.Errorf("pages of %d: event %d = %+v, want %+v", size, i, e.Event, events[i])
			}
			if e.FirstReceived {
				first = append(first, fmt.Sprintf("%s/%s", e.QueueID, e.Recipient))
			}
		}
		if want := []string{"Q1/r1@a.example", "QB/r1@b.example", "Q2/r1@a.example"}; !slices.Equal(first, want) {
			t.Errorf("pages of %d: FirstReceived on %v, want %v", size, first, want)
		}
	}
}

// testAddUsage: counters add up per tenant, account and hour, the cursor
// moves with them, and a stale cursor changes nothing.
func testAddUsage(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	h0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	h1 := h0.Add(time.Hour)
	row := func(tenant int64, account string, hour time.Time, n int64, reasons map[string]int64) store.UsageRow {
		r := store.UsageRow{TenantID: tenant, Account: account, Hour: hour, Messages: n, Recipients: 2 * n, ExpandedRecipients: 3 * n,
			Bytes: 100 * n, Failures: n, RefusalsByReason: reasons}
		for _, v := range reasons {
			r.Refusals += v
		}
		return r
	}
	check(t, s.AddUsage(ctx, 0, 10, []store.UsageRow{
		row(a.ID, "app@a.example", h0, 1, map[string]int64{"too-many-recipients": 2}),
		row(a.ID, "other@a.example", h0, 5, nil),
		row(b.ID, "app@a.example", h0, 7, nil),
	}))
	// The same hour again (as a later batch would) adds; an hour given
	// mid-way is its start.
	check(t, s.AddUsage(ctx, 10, 20, []store.UsageRow{
		row(a.ID, "APP@a.example", h0.Add(30*time.Minute), 2, map[string]int64{"too-many-recipients": 1, "external-recipient": 4}),
		row(a.ID, "app@a.example", h1, 4, nil),
	}))
	if c := must(t, of(s.UsageCursor(ctx))); c != 20 {
		t.Errorf("UsageCursor = %d, want 20", c)
	}
	err := s.AddUsage(ctx, 10, 30, []store.UsageRow{row(a.ID, "app@a.example", h0, 100, nil)})
	wantErr(t, err, store.ErrStale, "AddUsage from a cursor that has moved")
	if c := must(t, of(s.UsageCursor(ctx))); c != 20 {
		t.Errorf("UsageCursor after a stale AddUsage = %d, want 20", c)
	}

	key := func(r store.UsageRow) string {
		return fmt.Sprintf("%s %s m%d r%d x%d b%d f%d rf%d %v", r.Hour.UTC().Format("15:04"), r.Account, r.Messages, r.Recipients,
			r.ExpandedRecipients, r.Bytes, r.Failures, r.Refusals, r.RefusalsByReason)
	}
	keys := func(list []store.UsageRow) []string {
		out := []string{}
		for _, r := range list {
			if r.RefusalsByReason == nil {
				t.Errorf("row %s has nil RefusalsByReason", key(r))
			}
			out = append(out, key(r))
		}
		return out
	}
	all := []string{
		"10:00 app@a.example m3 r6 x9 b300 f3 rf7 map[external-recipient:4 too-many-recipients:3]",
		"10:00 other@a.example m5 r10 x15 b500 f5 rf0 map[]",
		"11:00 app@a.example m4 r8 x12 b400 f4 rf0 map[]",
	}
	tests := []struct {
		name string
		q    store.UsageQuery
		want []string
	}{
		{"everything of the tenant", store.UsageQuery{}, all},
		{"one account", store.UsageQuery{Account: "App@A.example"}, []string{all[0], all[2]}},
		{"since mid-hour includes that hour", store.UsageQuery{Since: h1.Add(time.Minute)}, []string{all[2]}},
		{"until excludes the hour starting then", store.UsageQuery{Until: h1}, all[:2]},
		{"no match", store.UsageQuery{Account: "nobody@a.example"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.TenantID = a.ID
			got := must(t, of(s.UsageHours(ctx, tc.q)))
			if got == nil {
				t.Error("UsageHours returned a nil list")
			}
			if !slices.Equal(keys(got), tc.want) {
				t.Errorf("UsageHours(%+v) =\n%v\nwant\n%v", tc.q, keys(got), tc.want)
			}
		})
	}
	if got := keys(must(t, of(s.UsageHours(ctx, store.UsageQuery{TenantID: b.ID})))); !slices.Equal(got, []string{"10:00 app@a.example m7 r14 x21 b700 f7 rf0 map[]"}) {
		t.Errorf("tenant b's usage = %v", got)
	}
}

// testReportJobs: the life of a report job: queued, claimed, chunks
// written under a lease, done; leases that pass are taken over; tenants
// see only their own jobs.
func testReportJobs(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	until := since.AddDate(0, 1, 0)
	j := must(t, of(s.CreateReportJob(ctx, store.ReportJob{TenantID: a.ID, Account: "App@a.example", Since: since, Until: until})))
	if j.ID == 0 || j.State != store.ReportQueued || j.Account != "app@a.example" || time.Since(j.CreatedAt) > time.Minute {
		t.Errorf("created job = %+v", j)
	}
	got := must(t, of(s.ReportJob(ctx, a.ID, j.ID)))
	if !got.Since.Equal(since) || !got.Until.Equal(until) || got.State != store.ReportQueued || got.Account != j.Account {
		t.Errorf("ReportJob = %+v, want %+v", got, j)
	}
	_, err := s.ReportJob(ctx, b.ID, j.ID)
	wantErr(t, err, store.ErrNotFound, "another tenant's report job")

	now := time.Now()
	claimed := must(t, of(s.ClaimReportJob(ctx, "node1", now, time.Minute)))
	if claimed.ID != j.ID || claimed.State != store.ReportRunning || claimed.TenantID != a.ID || !claimed.Since.Equal(since) {
		t.Errorf("claimed = %+v", claimed)
	}
	_, err = s.ClaimReportJob(ctx, "node2", now, time.Minute)
	wantErr(t, err, store.ErrNotFound, "claiming while the only job is leased")

	check(t, s.AddReportChunk(ctx, j.ID, "node1", 0, []byte("a,b\n"), now.Add(time.Minute)))
	err = s.AddReportChunk(ctx, j.ID, "node2", 1, []byte("x\n"), now.Add(time.Minute))
	wantErr(t, err, store.ErrStale, "a chunk from a node without the lease")

	// node1 goes quiet: once its lease has passed node2 takes the job
	// over, from the start, and node1's writes are refused.
	later := now.Add(2 * time.Minute)
	taken := must(t, of(s.ClaimReportJob(ctx, "node2", later, time.Minute)))
	if taken.ID != j.ID {
		t.Fatalf("takeover claimed %d, want %d", taken.ID, j.ID)
	}
	_, err = s.ReportChunk(ctx, a.ID, j.ID, 0)
	wantErr(t, err, store.ErrNotFound, "a chunk of the earlier attempt after a takeover")
	err = s.AddReportChunk(ctx, j.ID, "node1", 1, []byte("late\n"), later)
	wantErr(t, err, store.ErrStale, "a chunk from the node that lost the lease")
	err = s.FinishReportJob(ctx, j.ID, "node1", 1, "")
	wantErr(t, err, store.ErrStale, "finishing by the node that lost the lease")

	chunks := [][]byte{[]byte("h1,h2\n"), []byte("1,2\n"), []byte("3,4\n")}
	for i, c := range chunks {
		check(t, s.AddReportChunk(ctx, j.ID, "node2", i, c, later.Add(time.Minute)))
	}
	check(t, s.FinishReportJob(ctx, j.ID, "node2", 2, ""))
	done := must(t, of(s.ReportJob(ctx, a.ID, j.ID)))
	if done.State != store.ReportDone || done.Rows != 2 || done.Error != "" || done.FinishedAt.IsZero() {
		t.Errorf("finished job = %+v", done)
	}
	for i, c := range chunks {
		if got := must(t, of(s.ReportChunk(ctx, a.ID, j.ID, i))); !bytes.Equal(got, c) {
			t.Errorf("chunk %d = %q, want %q", i, got, c)
		}
	}
	_, err = s.ReportChunk(ctx, a.ID, j.ID, len(chunks))
	wantErr(t, err, store.ErrNotFound, "the chunk after the last")
	_, err = s.ReportChunk(ctx, b.ID, j.ID, 0)
	wantErr(t, err, store.ErrNotFound, "another tenant's report chunk")
	_, err = s.ClaimReportJob(ctx, "node3", later.Add(time.Hour), time.Minute)
	wantErr(t, err, store.ErrNotFound, "claiming when every job is done")

	// A failed job keeps its reason.
	f := must(t, of(s.CreateReportJob(ctx, store.ReportJob{TenantID: b.ID, Since: since, Until: until})))
	must(t, of(s.ClaimReportJob(ctx, "node1", now, time.Minute)))
	check(t, s.FinishReportJob(ctx, f.ID, "node1", 0, "disk on fire"))
	if got := must(t, of(s.ReportJob(ctx, b.ID, f.ID))); got.State != store.ReportFailed || got.Error != "disk on fire" {
		t.Errorf("failed job = %+v", got)
	}

	// Pruning removes old jobs that are not running, with their chunks.
	r := must(t, of(s.CreateReportJob(ctx, store.ReportJob{TenantID: a.ID, Since: since, Until: until})))
	must(t, of(s.ClaimReportJob(ctx, "node1", now, time.Hour)))
	n := must(t, of(s.PruneReportJobs(ctx, time.Now().Add(time.Minute))))
	if n != 2 {
		t.Errorf("PruneReportJobs removed %d jobs, want the 2 finished ones", n)
	}
	for _, id := range []int64{j.ID, f.ID} {
		for _, ten := range []int64{a.ID, b.ID} {
			if _, err := s.ReportJob(ctx, ten, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("job %d after pruning: %v", id, err)
			}
		}
	}
	_, err = s.ReportChunk(ctx, a.ID, j.ID, 0)
	wantErr(t, err, store.ErrNotFound, "a chunk of a pruned job")
	if got := must(t, of(s.ReportJob(ctx, a.ID, r.ID))); got.State != store.ReportRunning {
		t.Errorf("the running job after pruning = %+v", got)
	}
}

// testDetailRows: one row per message and recipient (envelope recipients
// and the members a group was expanded to), messages by the time they were
// received, and one per refusal, with the status of the latest event;
// paging yields the same rows.
func testDetailRows(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const app, other = "app@a.example", "other@a.example"
	ev := usageEvent
	check(t, s.AddEvents(ctx, []trace.Event{
		ev(a.ID, t0, 0, trace.EventReceived, "Q1", app, "alice@a.example", "accepted", 100),
		ev(a.ID, t0, 0, trace.EventReceived, "Q1", app, "team@a.example", "accepted", 100),
		ev(b.ID, t0, 0, trace.EventReceived, "QB", app, "alice@b.example", "accepted", 10),
		ev(a.ID, t0, 1, trace.EventDelivered, "Q1", app, "alice@a.example", "delivered to alice", 100),
		ev(a.ID, t0, 1, trace.EventExpanded, "Q1", app, "team@a.example", "expanded to 2 mailboxes", 100),
		ev(a.ID, t0, 1, trace.EventDelivered, "Q1", app, "bob@a.example", "delivered to bob (member of team)", 100),
		ev(a.ID, t0, 1, trace.EventFailed, "Q1", app, "carol@a.example", "mailbox gone", 100),
		ev(a.ID, t0, 2, trace.EventRejected, "", app, "x@example.org", "550 5.5.105 External sending is not supported", 0),
		{TenantID: a.ID, Time: t0.Add(2 * time.Minute), Sender: app, Event: trace.EventSignInRefused, Status: trace.StatusRejected, Detail: "535"},
		ev(a.ID, t0, 3, trace.EventReceived, "Q2", other, "alice@a.example", "accepted", 70),
		ev(a.ID, t0, 0, trace.EventReceived, "Q0", app, "late@a.example", "recorded late", 5),
	}))
	row := func(d store.DetailRow) string {
		return fmt.Sprintf("%s %s %s %s %s %s %s %d %s", d.Received.Format("15:04"), d.QueueID, d.Sender, d.Recipient,
			d.Status, d.Event, d.LastEventTime.Format("15:04"), d.Size, d.Detail)
	}
	rows := func(list []store.DetailRow) []string {
		out := []string{}
		for _, d := range list {
			out = append(out, row(d))
		}
		return out
	}
	all := []string{
		"10:00 Q1 app@a.example alice@a.example Delivered Delivered 10:01 100 delivered to alice",
		"10:00 Q1 app@a.example team@a.example Expanded Expanded 10:01 100 expanded to 2 mailboxes",
		"10:00 Q1 app@a.example bob@a.example Delivered Delivered 10:01 100 delivered to bob (member of team)",
		"10:00 Q1 app@a.example carol@a.example Failed Failed 10:01 100 mailbox gone",
		"10:00 Q0 app@a.example late@a.example Pending Received 10:00 5 recorded late",
		"10:02  app@a.example x@example.org Rejected Rejected 10:02 0 550 5.5.105 External sending is not supported",
		"10:03 Q2 other@a.example alice@a.example Pending Received 10:03 70 accepted",
	}
	tests := []struct {
		name string
		q    store.DetailQuery
		want []string
	}{
		{"everything of the tenant", store.DetailQuery{}, all},
		{"one sender", store.DetailQuery{Senders: []string{"OTHER@a.example"}}, all[6:]},
		{"several senders", store.DetailQuery{Senders: []string{"other@a.example", "nobody@a.example", "app@a.example"}}, all},
		{"since", store.DetailQuery{Since: t0.Add(90 * time.Second)}, all[5:]},
		{"until is exclusive", store.DetailQuery{Until: t0.Add(2 * time.Minute)}, all[:5]},
		{"since and until", store.DetailQuery{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, all[5:6]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.TenantID = a.ID
			got := must(t, of(s.DetailRows(ctx, tc.q)))
			if got == nil {
				t.Error("DetailRows returned a nil list")
			}
			if !slices.Equal(rows(got), tc.want) {
				t.Errorf("DetailRows(%+v) =\n%v\nwant\n%v", tc.q, rows(got), tc.want)
			}
			for _, d := range got {
				if d.QueueID != "" && d.MessageID != "m-"+d.QueueID+"@a.example" || d.QueueID != "" && d.Subject != "subject "+d.QueueID {
					t.Errorf("row %s: message id %q, subject %q", row(d), d.MessageID, d.Subject)
				}
			}
		})
	}
	// A page holds up to Limit messages and refusals, each with all its
	// rows; the last row's key continues.
	for _, size := range []int{1, 2, 3} {
		var got []string
		q := store.DetailQuery{TenantID: a.ID, Limit: size}
		for range 20 {
			page := must(t, of(s.DetailRows(ctx, q)))
			if len(page) == 0 {
				break
			}
			anchors := map[int64]bool{}
			for _, d := range page {
				anchors[d.ID] = true
			}
			if len(anchors) > size {
				t.Fatalf("DetailRows(limit %d) returned %d messages and refusals", size, len(anchors))
			}
			got = append(got, rows(page)...)
			q.AfterTime, q.AfterID = page[len(page)-1].Time, page[len(page)-1].ID
		}
		if !slices.Equal(got, all) {
			t.Errorf("pages of %d =\n%v\nwant\n%v", size, got, all)
		}
	}
	bRows := rows(must(t, of(s.DetailRows(ctx, store.DetailQuery{TenantID: b.ID}))))
	if want := []string{"10:00 QB app@a.example alice@b.example Pending Received 10:00 10 accepted"}; !slices.Equal(bRows, want) {
		t.Errorf("tenant b's rows = %v, want %v", bRows, want)
	}
}
