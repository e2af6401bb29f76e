package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
	"hve/internal/trace"
)

// webhookTests are the contract tests of store.Webhooks, store.Alerts and
// the failure report address of accounts; Run runs them.
var webhookTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"Webhooks", testWebhooks},
	{"NotifyCursor", testNotifyCursor},
	{"WebhookOutbox", testWebhookOutbox},
	{"WebhookClaimRace", testWebhookClaimRace},
	{"Alerts", testAlerts},
	{"FailureReportTo", testFailureReportTo},
}

// testWebhooks: webhooks belong to one tenant, keep their secret for
// signing and show only its hint.
func testWebhooks(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	w1 := must(t, of(s.CreateWebhook(ctx, store.Webhook{TenantID: a.ID, URL: "https://hooks.a.example/1", Secret: "whsec_0123456789abcdef",
		Events: []string{"alert", "failed"}})))
	if w1.ID == 0 || w1.CreatedAt.IsZero() || w1.SecretHint == "" || w1.SecretHint == w1.Secret || len(w1.SecretHint) >= len(w1.Secret)/2 {
		t.Errorf("created webhook = %+v; want an id, a time and a short hint", w1)
	}
	w2 := must(t, of(s.CreateWebhook(ctx, store.Webhook{TenantID: a.ID, URL: "http://10.0.0.1:8080/hook", Secret: "s3cret-s3cret-s3cret", Events: nil})))
	wb := must(t, of(s.CreateWebhook(ctx, store.Webhook{TenantID: b.ID, URL: "https://hooks.b.example", Secret: "b-secret-b-secret", Events: []string{"delivered"}})))

	list := must(t, of(s.Webhooks(ctx, a.ID)))
	if len(list) != 2 || list[0].ID != w1.ID || list[1].ID != w2.ID {
		t.Fatalf("Webhooks(a) = %+v, want w1, w2", list)
	}
	if got := list[0]; got.URL != w1.URL || got.Secret != w1.Secret || got.SecretHint != w1.SecretHint || got.TenantID != a.ID ||
		!slices.Equal(got.Events, []string{"alert", "failed"}) || !got.CreatedAt.Equal(w1.CreatedAt.Truncate(time.Nanosecond)) {
		t.Errorf("listed webhook = %+v, want %+v", got, w1)
	}
	if list[1].Events == nil {
		t.Error("a webhook stored without events lists them as nil; want []")
	}
	if !list[0].Wants("failed") || list[0].Wants("delivered") {
		t.Errorf("Wants of events %v is wrong", list[0].Events)
	}
	if all := must(t, of(s.Webhooks(ctx, 0))); len(all) != 3 {
		t.Errorf("Webhooks(0) has %d webhooks, want every tenant's 3", len(all))
	}
	if none := must(t, of(s.Webhooks(ctx, 999))); none == nil || len(none) != 0 {
		t.Errorf("Webhooks of an unknown tenant = %#v, want an empty list", none)
	}
	wantErr(t, s.RemoveWebhook(ctx, b.ID, w1.ID), store.ErrNotFound, "removing another tenant's webhook")
	check(t, s.RemoveWebhook(ctx, a.ID, w1.ID))
	wantErr(t, s.RemoveWebhook(ctx, a.ID, w1.ID), store.ErrNotFound, "removing a webhook twice")
	if list := must(t, of(s.Webhooks(ctx, a.ID))); len(list) != 1 || list[0].ID != w2.ID {
		t.Errorf("after the removal, Webhooks(a) = %+v", list)
	}
	if list := must(t, of(s.Webhooks(ctx, b.ID))); len(list) != 1 || list[0].ID != wb.ID {
		t.Errorf("tenant b's webhooks = %+v", list)
	}
}

// testNotifyCursor: the cursor is compared and set together with the rows
// it adds.
func testNotifyCursor(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	w := must(t, of(s.CreateWebhook(ctx, store.Webhook{TenantID: a.ID, URL: "https://h.example", Secret: "secret-secret-1", Events: []string{"delivered"}})))
	start := must(t, of(s.NotifyCursor(ctx)))
	if start != 0 {
		t.Errorf("NotifyCursor of a new store = %d, want 0", start)
	}
	row := func(eventID int64) store.WebhookDelivery {
		return store.WebhookDelivery{WebhookID: w.ID, TenantID: a.ID, EventID: eventID, Event: "delivered", Payload: fmt.Appendf(nil, `{"event_id":%d}`, eventID)}
	}
	check(t, s.AddNotifications(ctx, 0, 10, []store.WebhookDelivery{row(3), row(7)}))
	if c := must(t, of(s.NotifyCursor(ctx))); c != 10 {
		t.Errorf("NotifyCursor = %d, want 10", c)
	}
	wantErr(t, s.AddNotifications(ctx, 0, 20, []store.WebhookDelivery{row(15)}), store.ErrStale, "AddNotifications from a cursor that moved")
	if c := must(t, of(s.NotifyCursor(ctx))); c != 10 {
		t.Errorf("NotifyCursor after a stale call = %d, want 10", c)
	}
	// A repeated row (a dispatcher that crashed after its commit and
	// read the same events) is left out; an empty batch moves the cursor.
	check(t, s.AddNotifications(ctx, 10, 12, []store.WebhookDelivery{row(7), row(11)}))
	check(t, s.AddNotifications(ctx, 12, 15, nil))
	got := must(t, of(s.WebhookDeliveries(ctx, w.ID)))
	var ids []int64
	for _, d := range got {
		ids = append(ids, d.EventID)
		if d.State != store.WebhookPending || d.Attempts != 0 || d.TenantID != a.ID || d.Event != "delivered" ||
			string(d.Payload) != fmt.Sprintf(`{"event_id":%d}`, d.EventID) || d.CreatedAt.IsZero() || d.NextAttemptAt.IsZero() {
			t.Errorf("stored row = %+v", d)
		}
	}
	if !slices.Equal(ids, []int64{3, 7, 11}) {
		t.Errorf("outbox events = %v, want [3 7 11]", ids)
	}
	if c := must(t, of(s.NotifyCursor(ctx))); c != 15 {
		t.Errorf("NotifyCursor = %d, want 15", c)
	}
	// Rows of a webhook removed meanwhile are dropped, the cursor moves.
	check(t, s.RemoveWebhook(ctx, a.ID, w.ID))
	check(t, s.AddNotifications(ctx, 15, 16, []store.WebhookDelivery{row(16)}))
	if got := must(t, of(s.WebhookDeliveries(ctx, w.ID))); len(got) != 0 {
		t.Errorf("a removed webhook has %d outbox rows", len(got))
	}
}

// testWebhookOutbox: rows are leased when due, to one owner at a time;
// outcomes are recorded by the lease holder only; finished rows are pruned.
func testWebhookOutbox(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	w := must(t, of(s.CreateWebhook(ctx, store.Webhook{TenantID: a.ID, URL: "https://h.example/x", Secret: "secret-secret-2", Events: []string{"alert"}})))
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	rows := []store.WebhookDelivery{
		{WebhookID: w.ID, EventID: 1, Event: "alert", Payload: []byte(`{"n":1}`), CreatedAt: t0, NextAttemptAt: t0},
		{WebhookID: w.ID, EventID: 2, Event: "alert", Payload: []byte(`{"n":2}`), CreatedAt: t0, NextAttemptAt: t0.Add(time.Minute)},
		{WebhookID: w.ID, EventID: 3, Event: "alert", Payload: []byte(`{"n":3}`), CreatedAt: t0, NextAttemptAt: t0.Add(time.Second)},
	}
	check(t, s.AddNotifications(ctx, 0, 3, rows))

	got := must(t, of(s.ClaimWebhookDeliveries(ctx, "n1", t0.Add(time.Second), 10, time.Minute)))
	if len(got) != 2 || got[0].EventID != 1 || got[1].EventID != 3 {
		t.Fatalf("claimed %+v; want events 1 and 3 (due), oldest due first", got)
	}
	if d := got[0]; d.URL != w.URL || d.Secret != w.Secret || string(d.Payload) != `{"n":1}` || d.TenantID != a.ID || d.WebhookID != w.ID {
		t.Errorf("claimed row = %+v; want the webhook's URL and secret", d)
	}
	if again := must(t, of(s.ClaimWebhookDeliveries(ctx, "n2", t0.Add(2*time.Second), 10, time.Minute))); len(again) != 0 {
		t.Errorf("n2 claimed %d rows leased to n1", len(again))
	}
	// n1 records: 1 done, 3 retried later.
	d1, d3 := got[0], got[1]
	d1.State, d1.Attempts = store.WebhookDone, 1
	check(t, s.FinishWebhookDelivery(ctx, "n1", d1))
	d3.State, d3.Attempts, d3.NextAttemptAt, d3.LastError = store.WebhookPending, 1, t0.Add(10*time.Minute), "HTTP 500"
	wantErr(t, s.FinishWebhookDelivery(ctx, "n2", d3), store.ErrStale, "finishing another owner's row")
	check(t, s.FinishWebhookDelivery(ctx, "n1", d3))
	wantErr(t, s.FinishWebhookDelivery(ctx, "n1", d1), store.ErrStale, "finishing a done row again")
	bad := d3
	bad.State = "lost"
	if err := s.FinishWebhookDelivery(ctx, "n1", bad); err == nil {
		t.Error("FinishWebhookDelivery took an unknown state")
	}

	// At t0+2m only event 2 is due; n1's lease of it ends at t0+3m, after
	// which n2 takes it over.
	got = must(t, of(s.ClaimWebhookDeliveries(ctx, "n1", t0.Add(2*time.Minute), 10, time.Minute)))
	if len(got) != 1 || got[0].EventID != 2 {
		t.Fatalf("claimed %+v at t0+2m; want event 2", got)
	}
	got = must(t, of(s.ClaimWebhookDeliveries(ctx, "n2", t0.Add(4*time.Minute), 10, time.Minute)))
	if len(got) != 1 || got[0].EventID != 2 {
		t.Fatalf("claimed %+v after n1's lease passed; want event 2", got)
	}
	d2 := got[0]
	d2.State, d2.Attempts, d2.LastError = store.WebhookFailed, 7, "gave up"
	wantErr(t, s.FinishWebhookDelivery(ctx, "n1", d2), store.ErrStale, "finishing after the lease passed to another owner")
	check(t, s.FinishWebhookDelivery(ctx, "n2", d2))

	list := must(t, of(s.WebhookDeliveries(ctx, w.ID)))
	state := map[int64]string{}
	for _, d := range list {
		state[d.EventID] = fmt.Sprintf("%s/%d/%s", d.State, d.Attempts, d.LastError)
		if d.URL != "" || d.Secret != "" {
			t.Errorf("WebhookDeliveries shows the URL or secret: %+v", d)
		}
		if d.EventID == 3 && !d.NextAttemptAt.Equal(t0.Add(10*time.Minute)) {
			t.Errorf("event 3 next attempt = %v, want t0+10m", d.NextAttemptAt)
		}
	}
	want := map[int64]string{1: "done/1/", 2: "failed/7/gave up", 3: "pending/1/HTTP 500"}
	if fmt.Sprint(state) != fmt.Sprint(want) {
		t.Errorf("outbox states = %v, want %v", state, want)
	}
	if got := must(t, of(s.ClaimWebhookDeliveries(ctx, "n1", t0.Add(10*time.Minute), 10, time.Minute))); len(got) != 1 || got[0].EventID != 3 {
		t.Errorf("claimed %+v at t0+10m; want the retry of event 3", got)
	}

	// Pruning removes finished rows only.
	if n := must(t, of(s.PruneWebhookDeliveries(ctx, t0.Add(time.Hour)))); n != 2 {
		t.Errorf("PruneWebhookDeliveries removed %d rows, want 2 (done and failed)", n)
	}
	if list := must(t, of(s.WebhookDeliveries(ctx, w.ID))); len(list) != 1 || list[0].EventID != 3 {
		t.Errorf("after pruning: %+v", list)
	}
	// Removing the webhook removes its rows: finishing one is then
	// ErrNotFound.
	check(t, s.RemoveWebhook(ctx, a.ID, w.ID))
	d3.State = store.WebhookDone
	wantErr(t, s.FinishWebhookDelivery(ctx, "n1", d3), store.ErrNotFound, "finishing the row of a removed webhook")
}

// testWebhookClaimRace: racing claimers never get the same row.
func testWebhookClaimRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	w := must(t, of(s.CreateWebhook(ctx, store.Webhook{TenantID: a.ID, URL: "https://h.example/x", Secret: "secret-secret-3", Events: []string{"alert"}})))
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var rows []store.WebhookDelivery
	for i := range 60 {
		rows = append(rows, store.WebhookDelivery{WebhookID: w.ID, EventID: int64(i + 1), Event: "alert", Payload: []byte("{}"), CreatedAt: t0, NextAttemptAt: t0})
	}
	check(t, s.AddNotifications(ctx, 0, 60, rows))
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for n := range 6 {
		owner := fmt.Sprintf("node%d", n)
		wg.Go(func() {
			for {
				got, err := s.ClaimWebhookDeliveries(ctx, owner, t0, 7, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					if prev, ok := seen[d.ID]; ok {
						t.Errorf("row %d claimed by %s and %s", d.ID, prev, owner)
					}
					seen[d.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 60 {
		t.Errorf("%d rows claimed, want 60", len(seen))
	}
}

// testAlerts: an alert is stored with its trace event; a key makes it
// happen once per tenant.
func testAlerts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	at := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	al := store.Alert{TenantID: a.ID, Time: at, Account: "App@a.example", Kind: "anomaly", Message: "5000 recipients in an hour",
		Values: map[string]any{"recipients": 5000, "baseline": 12.5}, Key: "anomaly/app@a.example/2026-11-23T10"}
	got, added, err := s.AddAlert(ctx, al)
	check(t, err)
	if !added || got.ID == 0 || got.EventID == 0 {
		t.Fatalf("AddAlert = %+v, %v; want it added with ids", got, added)
	}
	if _, added, err := s.AddAlert(ctx, al); err != nil || added {
		t.Errorf("the same key again: added %v, %v; want false", added, err)
	}
	other := al
	other.TenantID = b.ID
	if _, added, err := s.AddAlert(ctx, other); err != nil || !added {
		t.Errorf("the same key in another tenant: added %v, %v; want true", added, err)
	}
	nokey := al
	nokey.Key = ""
	for range 2 {
		if _, added, err := s.AddAlert(ctx, nokey); err != nil || !added {
			t.Errorf("an alert without a key: added %v, %v; want true every time", added, err)
		}
	}

	events := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: a.ID, Sender: "app@a.example"})))
	if len(events) != 3 {
		t.Fatalf("trace has %d events of the account, want 3 alerts: %+v", len(events), events)
	}
	e := events[0]
	if e.ID != got.EventID || e.Event != trace.EventAlert || e.Status != "" || !e.Time.Equal(at) || e.Detail != "anomaly: 5000 recipients in an hour" ||
		e.QueueID != "" || e.Recipient != "" {
		t.Errorf("alert trace event = %+v", e)
	}
	list := must(t, of(s.AlertsByEvent(ctx, []int64{got.EventID, 999999})))
	if len(list) != 1 {
		t.Fatalf("AlertsByEvent = %+v, want the one alert", list)
	}
	r := list[0]
	if r.ID != got.ID || r.TenantID != a.ID || r.Account != al.Account || r.Kind != "anomaly" || r.Message != al.Message || r.Key != al.Key ||
		!r.Time.Equal(at) || r.EventID != got.EventID || fmt.Sprint(r.Values) != "map[baseline:12.5 recipients:5000]" {
		t.Errorf("AlertsByEvent returned %+v", r)
	}
	if none := must(t, of(s.AlertsByEvent(ctx, nil))); none == nil || len(none) != 0 {
		t.Errorf("AlertsByEvent(nil) = %#v", none)
	}
}

// testFailureReportTo: an account's failure report address is stored and
// changed like its other fields.
func testFailureReportTo(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	newMailbox(t, s, a.ID, "ops@a.example")
	acc := must(t, of(s.CreateAccount(ctx, directory.Account{TenantID: a.ID, Name: "app", DisplayName: "App", Address: "app@a.example",
		PasswordHash: "x", Enabled: true, FailureReportTo: "ops@a.example"})))
	if got := must(t, of(s.Account(ctx, a.ID, acc.ID))); got.FailureReportTo != "ops@a.example" {
		t.Errorf("created account reports failures to %q", got.FailureReportTo)
	}
	acc.FailureReportTo = ""
	must(t, of(s.UpdateAccount(ctx, acc)))
	if got := must(t, of(s.AccountByAddress(ctx, "app@a.example"))); got.FailureReportTo != "" {
		t.Errorf("after clearing it: %q", got.FailureReportTo)
	}
	acc.FailureReportTo = "ops@a.example"
	must(t, of(s.UpdateAccount(ctx, acc)))
	if list := must(t, of(s.Accounts(ctx, a.ID))); len(list) != 1 || list[0].FailureReportTo != "ops@a.example" {
		t.Errorf("Accounts = %+v", list)
	}
}
