package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/limits"
	"hve/internal/store"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
	"hve/internal/webhook"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func setup(t *testing.T) (*sqlite.Store, directory.Tenant, *Raiser, *syncBuffer) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tn, err := st.CreateTenant(ctx, "contoso")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	r := NewRaiser(st, slog.New(slog.NewTextHandler(logs, nil)))
	return st, tn, r, logs
}

func alertEvents(t *testing.T, st store.Store, tenantID int64) []trace.Event {
	t.Helper()
	evs, err := st.SearchTrace(context.Background(), trace.Query{TenantID: tenantID})
	if err != nil {
		t.Fatal(err)
	}
	var out []trace.Event
	for _, e := range evs {
		if e.Event == trace.EventAlert {
			out = append(out, e)
		}
	}
	return out
}

func TestRaiseOncePerPeriod(t *testing.T) {
	ctx := context.Background()
	st, tn, r, logs := setup(t)
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	r.Now = func() time.Time { return now }
	woken := 0
	r.OnRaise = func() { woken++ }
	a := Alert{TenantID: tn.ID, Account: "App@contoso.test", Kind: KindWarningLevel, Message: "reached 80%", Values: map[string]any{"used": 80}}
	raise := func(a Alert, want bool) {
		t.Helper()
		got, err := r.Raise(ctx, a)
		if err != nil || got != want {
			t.Fatalf("Raise(%+v) = %v, %v; want %v", a, got, err, want)
		}
	}
	raise(a, true)
	raise(a, false) // same day
	now = now.Add(14*time.Hour + 59*time.Minute)
	raise(a, false) // 23:59 UTC, still the same day
	now = now.Add(time.Minute)
	raise(a, true) // the next UTC day
	other := a
	other.Kind = KindAnomaly
	raise(other, true) // another kind
	hourly := a
	hourly.Per = time.Hour
	raise(hourly, true)
	raise(hourly, false)
	always := a
	always.Per = -1
	raise(always, true)
	raise(always, true)
	if _, err := r.Raise(ctx, Alert{TenantID: tn.ID, Kind: KindAnomaly}); err == nil {
		t.Error("an alert without a message was raised")
	}

	evs := alertEvents(t, st, tn.ID)
	if len(evs) != 6 || woken != 6 {
		t.Fatalf("%d alert events, woken %d times; want 6", len(evs), woken)
	}
	if e := evs[0]; e.Sender != "app@contoso.test" || e.Detail != "warning_level: reached 80%" || !e.Time.Equal(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("first alert event = %+v", e)
	}
	if out := logs.String(); strings.Count(out, "level=WARN msg=alert") != 6 || !strings.Contains(out, "account=app@contoso.test kind=warning_level alert=\"reached 80%\" used=80") {
		t.Errorf("log:\n%s", out)
	}
}

// TestWarnLevelCrossed: the limits engine's crossing becomes an alert.
func TestWarnLevelCrossed(t *testing.T) {
	st, tn, r, _ := setup(t)
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	c := limits.Crossing{Subject: limits.Subject{TenantID: tn.ID, Kind: "account", ID: 7, Name: "app@contoso.test"},
		Key: "account/7/rcpt/day", Limit: 5000, WarnAt: 80, Used: 4000, Window: day, At: day.Add(15 * time.Hour)}
	var obs limits.Observer = r
	obs.WarnLevelCrossed(context.Background(), c)
	obs.WarnLevelCrossed(context.Background(), c) // a second node's, say
	tc := c
	tc.Subject = limits.Subject{TenantID: tn.ID, Kind: "tenant", ID: tn.ID, Name: "contoso"}
	obs.WarnLevelCrossed(context.Background(), tc)
	r.Wait()
	evs := alertEvents(t, st, tn.ID)
	if len(evs) != 2 {
		t.Fatalf("alerts = %+v; want one for the account, one for the tenant", evs)
	}
	// The raises run in the background, in any order.
	if evs[0].Sender == "" {
		evs[0], evs[1] = evs[1], evs[0]
	}
	if e := evs[0]; e.Sender != "app@contoso.test" || e.Detail != "warning_level: app@contoso.test reached 80% of its daily limit: 4000 of 5000 recipients on 2026-11-23 (UTC)" ||
		!e.Time.Equal(c.At) {
		t.Errorf("account alert = %+v", e)
	}
	if e := evs[1]; e.Sender != "" || !strings.Contains(e.Detail, "tenant contoso reached 80%") {
		t.Errorf("tenant alert = %+v", e)
	}
	list, err := st.AlertsByEvent(context.Background(), []int64{evs[0].ID})
	if err != nil || len(list) != 1 || list[0].Values["limit"] != float64(5000) || list[0].Values["scope"] != "account" {
		t.Errorf("stored alert = %+v, %v", list, err)
	}
}

func TestJudge(t *testing.T) {
	h := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	vol := map[time.Time]int64{}
	// 300 an hour, every hour of the last 7 days: baseline 300.
	for i := 1; i <= BaselineHours; i++ {
		vol[h.Add(-time.Duration(i)*time.Hour)] = 300
	}
	vol[h.Add(-time.Duration(BaselineHours+1)*time.Hour)] = 1_000_000 // older than the baseline: ignored
	for _, tc := range []struct {
		volume int64
		factor float64
		floor  int64
		want   bool
	}{
		{3000, 10, 100, false}, // exactly the threshold
		{3001, 10, 100, true},
		{3001, 0, 100, false}, // the rule is off
		{3001, 10, 500, false},
		{5001, 10, 500, true},
	} {
		vol[h] = tc.volume
		v := Judge(vol, h, tc.factor, tc.floor)
		if v.Anomalous != tc.want || v.Baseline != 300 || v.Recipients != tc.volume {
			t.Errorf("Judge(%d, factor %v, floor %d) = %+v; want anomalous %v", tc.volume, tc.factor, tc.floor, v, tc.want)
		}
	}
	// A quiet account: the floor decides.
	quiet := map[time.Time]int64{h: 1000, h.Add(-time.Hour): 5}
	if v := Judge(quiet, h, 10, 100); v.Anomalous || v.Threshold != 1000 {
		t.Errorf("a burst of 1000 from a quiet account = %+v; want no alert at the floor", v)
	}
	quiet[h] = 1001
	if v := Judge(quiet, h, 10, 100); !v.Anomalous {
		t.Errorf("1001 from a quiet account = %+v; want an alert", v)
	}
}

// usage adds hourly recipient counts to the usage counters, as the usage
// aggregator does.
func usage(t *testing.T, st *sqlite.Store, rows []store.UsageRow) {
	t.Helper()
	ctx := context.Background()
	from, err := st.UsageCursor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddUsage(ctx, from, from+1, rows); err != nil {
		t.Fatal(err)
	}
}

// TestAnomalyAlertReachesWebhook: an account whose hourly volume jumps
// far above its baseline raises an anomaly alert, once per hour, and a
// webhook receiver gets it signed.
func TestAnomalyAlertReachesWebhook(t *testing.T) {
	ctx := context.Background()
	st, tn, r, _ := setup(t)
	now := time.Date(2026, 11, 23, 10, 20, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r.Now = clock
	hour := now.Truncate(time.Hour)
	var rows []store.UsageRow
	for i := 1; i <= BaselineHours; i++ {
		rows = append(rows, store.UsageRow{TenantID: tn.ID, Account: "steady@contoso.test", Hour: hour.Add(-time.Duration(i) * time.Hour), Recipients: 200})
	}
	rows = append(rows,
		store.UsageRow{TenantID: tn.ID, Account: "steady@contoso.test", Hour: hour, Recipients: 2500}, // 12.5× its baseline
		store.UsageRow{TenantID: tn.ID, Account: "quiet@contoso.test", Hour: hour, Recipients: 900},   // under the floor's 1000
		store.UsageRow{TenantID: tn.ID, Account: "normal@contoso.test", Hour: hour, Recipients: 1500}, // no baseline, over 1000
	)
	usage(t, st, rows)

	type delivery struct {
		header http.Header
		body   []byte
	}
	got := make(chan delivery, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		got <- delivery{req.Header.Clone(), b}
	}))
	defer rcv.Close()
	if _, err := st.CreateWebhook(ctx, store.Webhook{TenantID: tn.ID, URL: rcv.URL, Secret: "anomaly-secret-123", Events: []string{webhook.EventAlert}}); err != nil {
		t.Fatal(err)
	}
	disp := webhook.NewDispatcher(st, slog.New(slog.DiscardHandler))
	send := webhook.NewSender(st, "test", slog.New(slog.DiscardHandler))
	disp.Now, send.Now = clock, clock

	rule := NewAnomaly(st, r, slog.New(slog.DiscardHandler))
	rule.Now = clock
	if n, err := rule.Check(ctx); n != 2 || err != nil {
		t.Fatalf("Check = %d, %v; want 2 alerts", n, err)
	}
	// Later checks in the same hour, and the check of the next hour about
	// this one (now the last full hour), raise nothing new.
	now = now.Add(5 * time.Minute)
	if n, err := rule.Check(ctx); n != 0 || err != nil {
		t.Fatalf("second Check = %d, %v", n, err)
	}
	rule2 := NewAnomaly(st, r, slog.New(slog.DiscardHandler)) // another node: the store remembers
	rule2.Now = func() time.Time { return hour.Add(65 * time.Minute) }
	if n, err := rule2.Check(ctx); n != 0 || err != nil {
		t.Fatalf("the next hour's Check = %d, %v", n, err)
	}

	if err := disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := send.RunOnce(ctx); n != 2 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	accounts := map[string]webhook.Payload{}
	for range 2 {
		d := <-got
		if !webhook.Verify("anomaly-secret-123", d.body, d.header.Get(webhook.HeaderSignature)) || d.header.Get(webhook.HeaderEvent) != "alert" {
			t.Errorf("alert POST with headers %v does not verify", d.header)
		}
		var p webhook.Payload
		if err := json.Unmarshal(d.body, &p); err != nil {
			t.Fatal(err)
		}
		accounts[p.Account] = p
	}
	p, ok := accounts["steady@contoso.test"]
	if !ok || p.Kind != KindAnomaly || p.Tenant != "contoso" || p.Values["recipients"] != float64(2500) || p.Values["baseline"] != float64(200) ||
		p.Values["threshold"] != float64(2000) || p.Values["hour"] != "2026-11-23T10:00:00Z" || !strings.Contains(p.Detail, "steady@contoso.test sent to 2500 recipients") {
		t.Errorf("anomaly payload of steady@ = %+v", p)
	}
	if _, ok := accounts["normal@contoso.test"]; !ok {
		t.Errorf("no alert for normal@: %v", accounts)
	}
	if _, ok := accounts["quiet@contoso.test"]; ok {
		t.Error("an alert for quiet@, under the floor")
	}

	off := NewAnomaly(st, r, slog.New(slog.DiscardHandler))
	off.Factor = 0
	if n, err := off.Check(ctx); n != 0 || err != nil {
		t.Errorf("the rule with factor 0 raised %d (%v)", n, err)
	}
}
