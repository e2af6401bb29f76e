package admin

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/report"
	"hve/internal/store"
	"hve/internal/trace"
	"hve/internal/usage"
)

// exerciseReports drives the report routes for TestOpenAPIMatchesHandlers:
// the tenant has one message from app@contoso.test (queue id qid) to a
// group, delivered to alice.
func exerciseReports(t *testing.T, call func(string, any, int, ...string) []byte, st store.Store, tenant, qid string) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if err := usage.NewAggregator(st, log).CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	const R = "/api/v1/tenants/{tenant}/reports"
	var rep usage.Report
	if err := json.Unmarshal(call("GET "+R+"/usage", nil, 200, tenant), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Account != "app@contoso.test" || rep.Rows[0].Messages != 1 || rep.Rows[0].Recipients != 1 ||
		rep.Rows[0].ExpandedRecipients != 1 || rep.Total.EstimatedCost != 42.0/1e6 || rep.By != usage.ByDay || rep.PricePerMillion != 42 {
		t.Errorf("usage report = %+v", rep)
	}
	call("GET "+R+"/usage?by=hour&account=APP@contoso.test&since=1d&until="+time.Now().Add(time.Hour).Format(time.RFC3339), nil, 200, tenant)
	// An alias names its account.
	rep = usage.Report{}
	if err := json.Unmarshal(call("GET "+R+"/usage?account=app2@contoso.test", nil, 200, tenant), &rep); err != nil || len(rep.Rows) != 1 {
		t.Errorf("usage of the account by its alias = %+v (%v)", rep, err)
	}
	out := call("GET "+R+"/usage?format=csv", nil, 200, tenant)
	if recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll(); err != nil || len(recs) != 2 || recs[0][0] != "account" || recs[1][0] != "app@contoso.test" {
		t.Errorf("usage CSV = %q (%v)", out, err)
	}
	for _, q := range []string{"by=week", "format=xml", "since=yesterday", "account=nobody", "since=2026-11-02&until=2026-11-01"} {
		call("GET "+R+"/usage?"+q, nil, 400, tenant)
	}
	call("GET "+R+"/usage", nil, 404, "nope")

	var job store.ReportJob
	if err := json.Unmarshal(call("POST "+R, map[string]any{"since": "1d", "until": time.Now().Add(time.Minute).Format(time.RFC3339)}, 202, tenant), &job); err != nil {
		t.Fatal(err)
	}
	if job.State != store.ReportQueued || job.Account != "" {
		t.Errorf("requested job = %+v", job)
	}
	call("POST "+R, map[string]any{"since": "1d"}, 400, tenant)
	call("POST "+R, map[string]any{"since": "1d", "until": "now-ish"}, 400, tenant)
	call("POST "+R, map[string]any{"since": "1d", "until": "1h", "account": "x"}, 400, tenant)
	id := fmt.Sprint(job.ID)
	call("GET "+R+"/{id}", nil, 200, tenant, id)
	call("GET "+R+"/{id}", nil, 400, tenant, "x")
	call("GET "+R+"/{id}", nil, 404, tenant, "999")
	call("GET "+R+"/{id}/download", nil, 409, tenant, id)
	call("GET "+R+"/{id}/download", nil, 404, tenant, "999")
	if ran, err := report.NewRunner(st, "test", log).RunOnce(ctx); !ran || err != nil {
		t.Fatalf("running the report job: %v, %v", ran, err)
	}
	if err := json.Unmarshal(call("GET "+R+"/{id}", nil, 200, tenant, id), &job); err != nil || job.State != store.ReportDone || job.Rows != 2 {
		t.Errorf("finished job = %+v (%v)", job, err)
	}
	out = call("GET "+R+"/{id}/download", nil, 200, tenant, id)
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 || strings.Join(recs[0], ",") != strings.Join(report.Header, ",") || recs[1][1] != qid || recs[2][1] != qid {
		t.Errorf("report CSV = %q (%v)", out, err)
	}
}

// TestReportTenantIsolation: another tenant sees neither the usage nor the
// report jobs of the first.
func TestReportTenantIsolation(t *testing.T) {
	a, st := newTestAPI(t)
	ctx := context.Background()
	tenA, err := st.CreateTenant(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateTenant(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	m := &queue.Message{QueueID: queue.NewID(now), TenantID: tenA.ID, Sender: "app@a.test", Recipients: []string{"x@a.test"},
		ReceivedAt: now, Body: []byte("x"), Size: 1}
	ev := trace.Event{TenantID: tenA.ID, Time: now, QueueID: m.QueueID, Sender: m.Sender, Recipient: "x@a.test",
		Event: trace.EventReceived, Status: trace.StatusPending, Size: 1}
	if err := st.Enqueue(ctx, []*queue.Message{m}, []trace.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if err := usage.NewAggregator(st, slog.New(slog.DiscardHandler)).CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	job, err := st.CreateReportJob(ctx, store.ReportJob{TenantID: tenA.ID, Since: now.Add(-time.Hour), Until: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/api/v1/tenants/a/reports/usage"); code != http.StatusOK || !strings.Contains(body, "app@a.test") {
		t.Errorf("tenant a's usage: %d %s", code, body)
	}
	if code, body := get("/api/v1/tenants/b/reports/usage"); code != http.StatusOK || strings.Contains(body, "app@a.test") {
		t.Errorf("tenant b's usage shows tenant a's: %d %s", code, body)
	}
	for _, path := range []string{"/reports/%d", "/reports/%d/download"} {
		if code, body := get("/api/v1/tenants/b" + fmt.Sprintf(path, job.ID)); code != http.StatusNotFound {
			t.Errorf("tenant b reading tenant a's report job: %d %s", code, body)
		}
	}
}
