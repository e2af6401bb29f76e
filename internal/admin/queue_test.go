package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hve/internal/audit"
	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// enqueueTest queues a message of the tenant to rcpts and returns its
// queue id.
func enqueueTest(t *testing.T, st store.Store, tenantID int64, rcpts ...string) string {
	t.Helper()
	now := time.Now().Add(-time.Minute).UTC()
	body := "From: app@contoso.test\r\nSubject: queued\r\n\r\nhi\r\n"
	m := &queue.Message{QueueID: queue.NewID(now), TenantID: tenantID, AccountID: 1, Sender: "app@contoso.test", Recipients: rcpts,
		MessageID: "<q@contoso.test>", Subject: "queued", ClientIP: "192.0.2.1", Size: int64(len(body)), ReceivedAt: now, Body: []byte(body)}
	if err := st.Enqueue(context.Background(), []*queue.Message{m}, nil); err != nil {
		t.Fatal(err)
	}
	return m.QueueID
}

// exerciseQueue drives the queue routes for TestOpenAPIMatchesHandlers:
// a message deferred by its next hop, one pending, one being delivered.
func exerciseQueue(t *testing.T, call func(string, any, int, ...string) []byte, st store.Store, tn directory.Tenant) {
	t.Helper()
	ctx := context.Background()
	const Q = "/api/v1/tenants/{tenant}/queue"
	deferred := enqueueTest(t, st, tn.ID, "x@contoso.test", "alice@contoso.test")
	claimed, err := st.Claim(ctx, "test", time.Now(), 100, time.Minute)
	if err != nil || len(claimed) == 0 {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	var ds []store.Delivery
	for _, m := range claimed {
		// Other messages of the scenario only lose their lease.
		d := store.Delivery{QueueID: m.QueueID}
		if m.QueueID == deferred {
			d.Recipients = []queue.Recipient{{Address: "x@contoso.test", State: queue.RecipientDeferred,
				Attempts: 1, NextAttemptAt: time.Now().Add(time.Hour), LastReply: "451 4.3.0 try later", UpdatedAt: time.Now()}}
		}
		ds = append(ds, d)
	}
	if err := st.Finish(ctx, ds); err != nil {
		t.Fatal(err)
	}
	pending := enqueueTest(t, st, tn.ID, "bob@contoso.test")

	// The scenario has queued messages of its own; these two come first
	// (their queue ids are older).
	var page queuePage
	json.Unmarshal(call("GET "+Q, nil, 200, tn.Name), &page)
	if len(page.Items) < 2 || page.Items[0].QueueID != deferred || page.Items[0].Status != store.QueueDeferred ||
		page.Items[0].LastReply != "451 4.3.0 try later" || page.Items[1].QueueID != pending || page.Items[1].Status != store.QueuePending ||
		page.NextCursor != "" {
		t.Errorf("queue list = %+v", page)
	}
	page = queuePage{}
	json.Unmarshal(call("GET "+Q+"?status=deferred&domain=contoso.test&limit=1", nil, 200, tn.Name), &page)
	if len(page.Items) != 1 || page.NextCursor != deferred {
		t.Errorf("first page of deferred = %+v; want the deferred message and a cursor", page)
	}
	page = queuePage{}
	json.Unmarshal(call("GET "+Q+"?limit=1&cursor="+deferred, nil, 200, tn.Name), &page)
	if len(page.Items) != 1 || page.Items[0].QueueID != pending {
		t.Errorf("second page = %+v", page)
	}
	call("GET "+Q+"?status=stuck", nil, 400, tn.Name)
	call("GET "+Q+"?limit=5000", nil, 400, tn.Name)
	call("GET "+Q, nil, 404, "nope")

	var it store.QueueItem
	json.Unmarshal(call("GET "+Q+"/{id}", nil, 200, tn.Name, "<"+strings.ToLower(deferred)+">"), &it)
	if it.QueueID != deferred || len(it.Recipients) != 2 {
		t.Errorf("show = %+v; want every recipient", it)
	}
	call("GET "+Q+"/{id}", nil, 404, tn.Name, "NOSUCHQUEUEID0000000")

	it = store.QueueItem{}
	json.Unmarshal(call("POST "+Q+"/{id}/hold", nil, 200, tn.Name, deferred), &it)
	if it.Status != store.QueueHeld || it.HeldBy == "" {
		t.Errorf("after hold: %+v", it)
	}
	call("POST "+Q+"/{id}/hold", nil, 400, tn.Name, deferred)
	call("POST "+Q+"/{id}/retry", nil, 400, tn.Name, deferred)
	it = store.QueueItem{}
	json.Unmarshal(call("POST "+Q+"/{id}/release", nil, 200, tn.Name, deferred), &it)
	if it.Status == store.QueueHeld || it.NextAttemptAt.After(time.Now()) {
		t.Errorf("after release: %+v; want it due", it)
	}
	call("POST "+Q+"/{id}/release", nil, 400, tn.Name, deferred)
	call("POST "+Q+"/{id}/retry", nil, 200, tn.Name, pending)
	call("POST "+Q+"/{id}/retry", nil, 404, tn.Name, "NOSUCHQUEUEID0000000")
	var n map[string]int
	json.Unmarshal(call("POST "+Q+"/retry-all", map[string]any{"domain": "contoso.test"}, 200, tn.Name), &n)
	if n["retried"] != 0 {
		t.Errorf("retry-all with everything due = %v, want 0", n)
	}
	call("POST "+Q+"/retry-all", map[string]any{"domain": "not a domain"}, 400, tn.Name)
	call("DELETE "+Q+"/{id}", nil, 204, tn.Name, pending)
	call("DELETE "+Q+"/{id}", nil, 404, tn.Name, pending)
	call("DELETE "+Q+"/{id}", nil, 204, tn.Name, deferred)
}

// TestQueueControlTraceAndAudit: each action is in trace with the admin
// who made it, and in the audit log; a retry wakes delivery.
func TestQueueControlTraceAndAudit(t *testing.T) {
	a, st := newTestAPI(t)
	wake := &wakeCounter{}
	a.opts.Delivery = wake
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: tn.ID, Name: "t1.test"}); err != nil {
		t.Fatal(err)
	}
	id := enqueueTest(t, st, tn.ID, "x@t1.test")
	do := func(method, path, body string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(method, "/api/v1/tenants/t1/queue"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("User-Agent", "hve-cli/test")
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		return rec
	}
	for _, step := range []struct{ method, path string }{
		{"POST", "/" + id + "/hold"}, {"POST", "/" + id + "/release"}, {"POST", "/" + id + "/retry"}, {"POST", "/retry-all"}, {"DELETE", "/" + id},
	} {
		if rec := do(step.method, step.path, ""); rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", step.method, step.path, rec.Code, rec.Body)
		}
	}
	if wake.n != 3 {
		t.Errorf("delivery woken %d times, want 3 (release, retry, retry-all)", wake.n)
	}
	events, err := st.SearchTrace(ctx, trace.Query{TenantID: tn.ID, QueueID: id})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range events {
		names = append(names, e.Event)
		if !strings.Contains(e.Detail, "admin-token (via cli)") {
			t.Errorf("%s event detail %q does not name the admin", e.Event, e.Detail)
		}
	}
	if strings.Join(names, ",") != "Held,Released,Retried,Failed" {
		t.Errorf("trace events = %v; want Held, Released, Retried, Failed", names)
	}
	entries, err := st.SearchAudit(ctx, audit.Query{TenantID: tn.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if strings.Join(actions, ",") != "queue.delete,queue.retry-all,queue.retry,queue.release,queue.hold" {
		t.Errorf("audit log actions = %v", actions)
	}
	if rec := do("GET", "", ""); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), id) {
		t.Errorf("the queue after the delete: %d %s", rec.Code, rec.Body)
	}
}

type wakeCounter struct{ n int }

func (w *wakeCounter) RetryNow() { w.n++ }
