package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"hve/internal/access"
	"hve/internal/directory"
	"hve/internal/oauth"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
)

const testToken = "hve_test_token"

// newTestAPI returns an API over a fresh embedded store, with a real token
// service and sign-in checker, and fakeSessions for the node's sessions.
func newTestAPI(t *testing.T) (*API, store.Store) {
	t.Helper()
	return newTestAPILog(t, slog.New(slog.DiscardHandler))
}

func newTestAPILog(t *testing.T, log *slog.Logger) (*API, store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := oauth.New(st, oauth.Config{IssuerURL: "http://hve.test"}, log)
	if err := svc.EnsureKey(ctx); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Diagnoser: access.New(st, svc, nil, access.Config{}, log),
		Sessions:  fakeSessions{},
		Keys:      svc,
		OAuth:     svc.Handler(),
	}
	return New(st, sha256.Sum256([]byte(testToken)), log, opts), st
}

// fakeSessions stands in for the node's SMTP sessions: every identity has
// two open ones.
type fakeSessions struct{}

func (fakeSessions) CloseSessions(tenantID int64, kind directory.Kind, id int64) int { return 2 }

// apiDoc is the parsed OpenAPI document.
type apiDoc map[string]any

func loadDoc(t *testing.T) apiDoc {
	t.Helper()
	var d apiDoc
	dec := json.NewDecoder(bytes.NewReader(openAPI))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return d
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operations returns every operation of the document as "METHOD /path".
func (d apiDoc) operations() []string {
	var ops []string
	for path, item := range d["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			if slices.Contains(httpMethods, method) {
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

// operation returns the operation object of "METHOD /path".
func (d apiDoc) operation(pattern string) map[string]any {
	method, path, _ := strings.Cut(pattern, " ")
	item, _ := d["paths"].(map[string]any)[path].(map[string]any)
	op, _ := item[strings.ToLower(method)].(map[string]any)
	return op
}

// resolve follows a local $ref ("#/components/...") if o is one.
func (d apiDoc) resolve(o map[string]any) (map[string]any, error) {
	ref, ok := o["$ref"].(string)
	if !ok {
		return o, nil
	}
	var cur any = map[string]any(d)
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %s does not resolve", ref)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("$ref %s does not resolve", ref)
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %s is not an object", ref)
	}
	return m, nil
}

func TestOpenAPIDocument(t *testing.T) {
	d := loadDoc(t)
	if v, _ := d["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	a, _ := newTestAPI(t)
	registered := slices.Sorted(slices.Values(a.patterns))
	documented := d.operations()
	for _, p := range registered {
		if !slices.Contains(documented, p) {
			t.Errorf("route %q is registered in routes() but missing from openapi.json", p)
		}
	}
	for _, op := range documented {
		if !slices.Contains(registered, op) {
			t.Errorf("operation %q is in openapi.json but routes() does not register it", op)
		}
	}

	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for _, pattern := range documented {
		op := d.operation(pattern)
		method, path, _ := strings.Cut(pattern, " ")
		// The mux must route the documented path to exactly this pattern.
		concrete := pathParam.ReplaceAllString(path, "x1")
		if _, got := a.mux.Handler(httptest.NewRequest(method, concrete, nil)); got != pattern {
			t.Errorf("%s %s is routed to %q, want %q", method, concrete, got, pattern)
		}
		if id, _ := op["operationId"].(string); id == "" {
			t.Errorf("%s: no operationId", pattern)
		}
		// Every path parameter is declared, and nothing else is declared in the path.
		declared := map[string]bool{}
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			pm, err := d.resolve(p.(map[string]any))
			if err != nil {
				t.Errorf("%s: %v", pattern, err)
				continue
			}
			if pm["in"] == "path" {
				declared[pm["name"].(string)] = true
				if pm["required"] != true {
					t.Errorf("%s: path parameter %v must be required", pattern, pm["name"])
				}
			}
		}
		var inPath []string
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			inPath = append(inPath, m[1])
			if !declared[m[1]] {
				t.Errorf("%s: path parameter {%s} is not declared", pattern, m[1])
			}
		}
		for name := range declared {
			if !slices.Contains(inPath, name) {
				t.Errorf("%s: declares path parameter %q that the path does not have", pattern, name)
			}
		}
		responses, _ := op["responses"].(map[string]any)
		if len(responses) == 0 {
			t.Errorf("%s: no responses", pattern)
		}
		// Routes behind the token must document the 401.
		public := slices.Contains(publicPatterns, pattern)
		if _, ok := responses["401"]; !public && !ok {
			t.Errorf("%s: the 401 reply is not documented", pattern)
		}
		if sec, ok := op["security"].([]any); public != (ok && len(sec) == 0) {
			t.Errorf("%s: security = %v; public endpoints must say security: [], the others inherit the bearer scheme", pattern, op["security"])
		}
	}
	// Every $ref anywhere in the document resolves.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["$ref"]; ok {
				if _, err := d.resolve(v); err != nil {
					t.Error(err)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(map[string]any(d))
	if _, ok := d["security"].([]any); !ok {
		t.Error("no top-level security requirement")
	}
	if _, err := d.resolve(map[string]any{"$ref": "#/components/securitySchemes/bearerAuth"}); err != nil {
		t.Error(err)
	}
}

func TestAPIAuth(t *testing.T) {
	a, _ := newTestAPI(t)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/api/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/openapi.json without a token: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), openAPI) {
		t.Error("GET /api/openapi.json does not serve the embedded document")
	}

	pathParam := regexp.MustCompile(`\{[^}]+\}`)
	for _, pattern := range a.patterns {
		if slices.Contains(publicPatterns, pattern) {
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		path = pathParam.ReplaceAllString(path, "x%40contoso.test")
		for _, auth := range []string{"", "Bearer wrong", "Basic " + testToken, testToken} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(method, path, strings.NewReader(`{}`))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			a.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: status %d, want 401", method, path, auth, rec.Code)
				continue
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", method, path)
			}
			var body map[string]map[string]string
			dec := json.NewDecoder(rec.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				t.Errorf("%s %s: 401 body is not the error shape: %v", method, path, err)
				continue
			}
			e := body["error"]
			if len(body) != 1 || len(e) != 2 || e["code"] != "unauthorized" || e["message"] == "" {
				t.Errorf("%s %s: 401 body = %v, want {\"error\":{\"code\":\"unauthorized\",\"message\":...}}", method, path, body)
			}
		}
	}
}

// TestOpenAPIMatchesHandlers drives every operation against a real store and
// checks each request body and each reply against the document's schemas.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	d := loadDoc(t)
	a, st := newTestAPI(t)
	ctx := context.Background()
	seen := map[string]bool{}

	// call sends a request to the route pattern (path values filled in
	// from args, in order) and checks request and reply against the doc.
	call := func(pattern string, body any, wantStatus int, args ...string) []byte {
		t.Helper()
		pattern, query, _ := strings.Cut(pattern, "?")
		method, path, _ := strings.Cut(pattern, " ")
		op := d.operation(pattern)
		if op == nil {
			t.Fatalf("%s is not in openapi.json", pattern)
		}
		seen[pattern] = true
		var rd io.Reader
		form, isForm := body.(url.Values)
		if isForm {
			rb, _ := op["requestBody"].(map[string]any)
			mediaSchema(t, d, rb, "application/x-www-form-urlencoded")
			rd = strings.NewReader(form.Encode())
		} else if body != nil {
			b, _ := json.Marshal(body)
			rb, _ := op["requestBody"].(map[string]any)
			schema := mediaSchema(t, d, rb, "application/json")
			// Requests meant to fail may break the schema; the others must keep it.
			if err := d.validate(schema, decodeNumbers(t, b), "request"); err != nil && wantStatus < 300 {
				t.Errorf("%s: request body %s does not match the document: %v", pattern, b, err)
			}
			rd = bytes.NewReader(b)
		}
		for _, arg := range args {
			i, j := strings.IndexByte(path, '{'), strings.IndexByte(path, '}')
			path = path[:i] + url.PathEscape(arg) + path[j+1:]
		}
		if query != "" {
			path += "?" + query
			// Every query parameter a test sends is documented.
			documented := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				if pm, err := d.resolve(p.(map[string]any)); err == nil && pm["in"] == "query" {
					documented[pm["name"].(string)] = true
				}
			}
			values, err := url.ParseQuery(query)
			if err != nil {
				t.Fatalf("%s: query %q: %v", pattern, query, err)
			}
			for name := range values {
				if !documented[name] {
					t.Errorf("%s: query parameter %q is not documented", pattern, name)
				}
			}
		}
		req := httptest.NewRequest(method, path, rd)
		if !slices.Contains(publicPatterns, pattern) {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		if isForm {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if rec.Code != wantStatus {
			t.Fatalf("%s %s: status %d, want %d; body %s", method, path, rec.Code, wantStatus, rec.Body)
		}
		resp, ok := op["responses"].(map[string]any)[fmt.Sprint(rec.Code)].(map[string]any)
		if !ok {
			t.Fatalf("%s: status %d is not documented", pattern, rec.Code)
		}
		resp, err := d.resolve(resp)
		if err != nil {
			t.Fatal(err)
		}
		content, _ := resp["content"].(map[string]any)
		if len(content) == 0 {
			if rec.Body.Len() != 0 {
				t.Errorf("%s: %d documented without a body, but the reply has %q", pattern, rec.Code, rec.Body)
			}
			return nil
		}
		ctype, _, _ := strings.Cut(rec.Header().Get("Content-Type"), ";")
		schema := mediaSchema(t, d, resp, ctype)
		if ctype == "application/json" {
			if err := d.validate(schema, decodeNumbers(t, rec.Body.Bytes()), "reply"); err != nil {
				t.Errorf("%s: %d reply does not match the document: %v\n%s", pattern, rec.Code, err, rec.Body)
			}
		}
		return rec.Body.Bytes()
	}

	const tenant = "default"
	call("GET /healthz", nil, 200)
	call("GET /api/openapi.json", nil, 200)
	call("POST /api/v1/tenants", map[string]any{"name": tenant}, 201)
	call("POST /api/v1/tenants", map[string]any{"name": tenant}, 409)
	call("POST /api/v1/tenants", map[string]any{"name": "a b"}, 400)
	call("GET /api/v1/tenants", nil, 200)
	call("GET /api/v1/tenants/{tenant}/domains", nil, 404, "nope")

	call("POST /api/v1/tenants/{tenant}/domains", map[string]any{"name": "contoso.test"}, 201, tenant)
	call("POST /api/v1/tenants/{tenant}/domains", map[string]any{"name": "relay.contoso.test", "type": "internal-relay"}, 201, tenant)
	call("GET /api/v1/tenants/{tenant}/domains", nil, 200, tenant)

	call("POST /api/v1/tenants/{tenant}/mailboxes", map[string]any{"name": "alice", "address": "alice@contoso.test",
		"display_name": "Alice Adams", "aliases": []string{"a@contoso.test"}, "password": "alice-password"}, 201, tenant)
	call("POST /api/v1/tenants/{tenant}/mailboxes", map[string]any{"name": "bob", "address": "bob@contoso.test"}, 201, tenant)
	call("POST /api/v1/tenants/{tenant}/mailboxes", map[string]any{"name": "eve", "address": "eve@example.com"}, 400, tenant)
	call("GET /api/v1/tenants/{tenant}/mailboxes", nil, 200, tenant)

	var created map[string]any
	json.Unmarshal(call("POST /api/v1/tenants/{tenant}/accounts", map[string]any{"name": "App", "address": "app@contoso.test",
		"reply_to": "bob@contoso.test"}, 201, tenant), &created)
	if pw, _ := created["password"].(string); pw == "" {
		t.Error("account created without a password: the reply has no generated password")
	}
	created = nil
	json.Unmarshal(call("POST /api/v1/tenants/{tenant}/accounts", map[string]any{"name": "Scanner", "address": "scanner@contoso.test",
		"password": "scanner-password", "enabled": false, "aliases": []string{"scan@contoso.test"}, "display_name": "Scanner"}, 201, tenant), &created)
	if _, ok := created["password"]; ok {
		t.Error("account created with a password: the reply must not echo it")
	}
	call("POST /api/v1/tenants/{tenant}/accounts", map[string]any{"name": "Dup", "address": "a@contoso.test"}, 409, tenant)
	call("GET /api/v1/tenants/{tenant}/accounts", nil, 200, tenant)
	call("GET /api/v1/tenants/{tenant}/accounts/{address}", nil, 200, tenant, "app@contoso.test")
	call("GET /api/v1/tenants/{tenant}/accounts/{address}", nil, 404, tenant, "alice@contoso.test")
	call("GET /api/v1/tenants/{tenant}/accounts/{address}", nil, 400, tenant, "not-an-address")
	call("PATCH /api/v1/tenants/{tenant}/accounts/{address}", map[string]any{"display_name": "The App", "enabled": false,
		"reply_to": "", "password": "new-password", "aliases": []string{"app2@contoso.test"}}, 200, tenant, "app@contoso.test")
	call("PATCH /api/v1/tenants/{tenant}/accounts/{address}", map[string]any{"password": "short"}, 400, tenant, "app@contoso.test")

	call("POST /api/v1/tenants/{tenant}/groups", map[string]any{"name": "Team", "address": "team@contoso.test"}, 201, tenant)
	call("POST /api/v1/tenants/{tenant}/groups", map[string]any{"name": "All", "address": "all@contoso.test"}, 201, tenant)
	call("POST /api/v1/tenants/{tenant}/groups/{address}/members", map[string]any{"address": "alice@contoso.test"}, 200, tenant, "team@contoso.test")
	call("POST /api/v1/tenants/{tenant}/groups/{address}/members", map[string]any{"address": "team@contoso.test"}, 200, tenant, "all@contoso.test")
	call("POST /api/v1/tenants/{tenant}/groups/{address}/members", map[string]any{"address": "all@contoso.test"}, 200, tenant, "team@contoso.test")
	call("POST /api/v1/tenants/{tenant}/groups/{address}/members", map[string]any{"address": "alice@contoso.test"}, 409, tenant, "team@contoso.test")
	call("POST /api/v1/tenants/{tenant}/groups/{address}/members", map[string]any{"address": "app@contoso.test"}, 400, tenant, "team@contoso.test")
	call("GET /api/v1/tenants/{tenant}/groups", nil, 200, tenant)

	// A delivered message, as the spool and the delivery worker leave it.
	tn, err := st.TenantByName(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := st.MailboxByAddress(ctx, "alice@contoso.test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	msg := &queue.Message{QueueID: queue.NewID(now), TenantID: tn.ID, Sender: "app@contoso.test", Recipients: []string{"team@contoso.test"},
		MessageID: "m1@test", Subject: "Hello", ClientIP: "192.0.2.1", ReceivedAt: now, Body: []byte("Subject: Hello\r\n\r\nHi\r\n")}
	msg.Size = int64(len(msg.Body))
	ev := trace.Event{TenantID: tn.ID, Time: now, QueueID: msg.QueueID, MessageID: msg.MessageID, Sender: msg.Sender,
		Recipient: "team@contoso.test", Event: trace.EventReceived, Status: trace.StatusPending, ClientIP: msg.ClientIP, Subject: msg.Subject, Size: msg.Size}
	if err := st.Enqueue(ctx, []*queue.Message{msg}, []trace.Event{ev}); err != nil {
		t.Fatal(err)
	}
	ev.Recipient, ev.Event, ev.Status = alice.Address, trace.EventDelivered, trace.StatusDelivered
	if err := st.Finish(ctx, []store.Delivery{{QueueID: msg.QueueID, Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: alice.Address}},
		Events: []trace.Event{ev}}}); err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	json.Unmarshal(call("GET /api/v1/tenants/{tenant}/mailboxes/{address}/messages", nil, 200, tenant, "alice@contoso.test"), &list)
	if len(list) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(list))
	}
	call("GET /api/v1/tenants/{tenant}/mailboxes/{address}/messages", nil, 200, tenant, "bob@contoso.test")
	id := fmt.Sprint(list[0]["id"])
	if body := call("GET /api/v1/tenants/{tenant}/mailboxes/{address}/messages/{id}", nil, 200, tenant, "alice@contoso.test", id); !bytes.Equal(body, msg.Body) {
		t.Errorf("message body = %q, want %q", body, msg.Body)
	}
	call("GET /api/v1/tenants/{tenant}/mailboxes/{address}/messages/{id}", nil, 404, tenant, "bob@contoso.test", id)
	call("GET /api/v1/tenants/{tenant}/mailboxes/{address}/messages/{id}", nil, 400, tenant, "alice@contoso.test", "x")

	call("GET /api/v1/tenants/{tenant}/trace", nil, 200, tenant)
	for _, q := range []string{"sender=APP@contoso.test&since=2h&until=" + now.Add(time.Minute).Format(time.RFC3339), "status=delivered&limit=1",
		"queue_id=%3C" + strings.ToLower(msg.QueueID) + "%3E&after=0", "message_id=%3Cm1@test%3E&recipient=alice@contoso.test&client_ip=192.0.2.1"} {
		var events []map[string]any
		json.Unmarshal(call("GET /api/v1/tenants/{tenant}/trace?"+q, nil, 200, tenant), &events)
		if len(events) == 0 {
			t.Errorf("trace?%s found nothing", q)
		}
	}
	for _, q := range []string{"subject=HELL", "subject=hello&subject_match=starts-with", "subject=LO&subject_match=ends-with",
		"subject=ell&subject_match=contains"} {
		var events []map[string]any
		json.Unmarshal(call("GET /api/v1/tenants/{tenant}/trace?"+q, nil, 200, tenant), &events)
		if len(events) != 2 {
			t.Errorf("trace?%s found %d events, want the message's 2", q, len(events))
		}
	}
	for _, q := range []string{"subject=ello&subject_match=starts-with", "subject=H_llo", "subject=H%25"} {
		var events []map[string]any
		json.Unmarshal(call("GET /api/v1/tenants/{tenant}/trace?"+q, nil, 200, tenant), &events)
		if len(events) != 0 {
			t.Errorf("trace?%s found %d events, want none", q, len(events))
		}
	}
	for _, q := range []string{"status=bogus", "since=yesterday", "limit=-1", "after=x", "subject=x&subject_match=exact", "subject_match=starts"} {
		call("GET /api/v1/tenants/{tenant}/trace?"+q, nil, 400, tenant)
	}
	// The spec's Quarantined status is explained, not called a typo.
	body := call("GET /api/v1/tenants/{tenant}/trace?status=quarantined", nil, 400, tenant)
	if !strings.Contains(string(body), "hve quarantines nothing yet: mail flow rules are not implemented") {
		t.Errorf("trace?status=quarantined replied %s, want the no-quarantine message", body)
	}
	// The event filter: an alert (no status, no queue id) among the
	// message's events, found by its name in any letter case.
	if err := st.AddEvents(ctx, []trace.Event{{TenantID: tn.ID, Time: now, Sender: "app@contoso.test", Event: trace.EventAlert,
		Detail: "warning_level: app@contoso.test reached 80% of its daily limit"}}); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string][]string{"event=alert&since=1d": {trace.EventAlert}, "event=Delivered": {trace.EventDelivered},
		"event=Received&sender=app@contoso.test": {trace.EventReceived}, "event=Alert&sender=nobody@contoso.test": {}} {
		var events []trace.Event
		json.Unmarshal(call("GET /api/v1/tenants/{tenant}/trace?"+q, nil, 200, tenant), &events)
		got := []string{}
		for _, e := range events {
			got = append(got, e.Event)
		}
		if !slices.Equal(got, want) {
			t.Errorf("trace?%s found events %v, want %v", q, got, want)
		}
	}
	body = call("GET /api/v1/tenants/{tenant}/trace?event=Alerts", nil, 400, tenant)
	if !strings.Contains(string(body), `event \"Alerts\" is not one of`) || !strings.Contains(string(body), "SignInRefused") {
		t.Errorf("trace?event=Alerts replied %s, want a message listing the event names", body)
	}
	body = call("GET /api/v1/tenants/{tenant}/trace?subject_match=exact", nil, 400, tenant)
	if !strings.Contains(string(body), "subject_match") || !strings.Contains(string(body), "starts-with") {
		t.Errorf("trace?subject_match=exact replied %s, want a message naming subject_match and its modes", body)
	}

	// Usage and detailed reports of that message.
	exerciseReports(t, call, st, tenant, msg.QueueID)
	exerciseWebhooks(t, call, tenant)

	// Access: tenant settings and authentication policies.
	const T = "/api/v1/tenants/{tenant}"
	obj := func(b []byte) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("reply is not an object: %v: %s", err, b)
		}
		return m
	}
	call("GET "+T, nil, 200, tenant)
	call("GET "+T, nil, 404, "nope")
	call("POST "+T+"/auth-policies", map[string]any{"name": "AllowBasic", "allow_basic_auth_smtp": true}, 201, tenant)
	call("POST "+T+"/auth-policies", map[string]any{"name": "BlockBasic"}, 201, tenant)
	call("POST "+T+"/auth-policies", map[string]any{"name": "BlockBasic"}, 409, tenant)
	call("POST "+T+"/auth-policies", map[string]any{"name": "None"}, 400, tenant)
	call("GET "+T+"/auth-policies", nil, 200, tenant)
	call("PATCH "+T+"/auth-policies/{name}", map[string]any{"allow_basic_auth_smtp": true}, 200, tenant, "AllowBasic")
	call("PATCH "+T+"/auth-policies/{name}", map[string]any{"allow_basic_auth_smtp": true}, 404, tenant, "Nope")
	settings := obj(call("PATCH "+T, map[string]any{"security_defaults": false, "default_auth_policy": "BlockBasic", "client_smtp_auth_disabled": true,
		"hve_basic_auth":    map[string]any{"sunset_at": "2027-01-01", "ramp_start": "2026-11-01", "ramp_end": "2026-12-01T12:00:00+01:00"},
		"client_basic_auth": map[string]any{"sunset_at": ""}}, 200, tenant))["settings"].(map[string]any)
	if hve := settings["hve_basic_auth"].(map[string]any); hve["sunset_at"] != "2027-01-01T00:00:00Z" || hve["ramp_end"] != "2026-12-01T11:00:00Z" ||
		settings["default_auth_policy"] != "BlockBasic" || settings["client_smtp_auth_disabled"] != true {
		t.Errorf("settings after PATCH = %v", settings)
	}
	call("PATCH "+T, map[string]any{"default_auth_policy": "Nope"}, 400, tenant)
	call("PATCH "+T, map[string]any{"hve_basic_auth": map[string]any{"sunset_at": "2026-13-01"}}, 400, tenant)
	call("PATCH "+T, map[string]any{"hve_basic_auth": map[string]any{"ramp_end": ""}}, 400, tenant)
	call("DELETE "+T+"/auth-policies/{name}", nil, 400, tenant, "BlockBasic")
	call("PATCH "+T, map[string]any{"default_auth_policy": "", "hve_basic_auth": map[string]any{"sunset_at": "", "ramp_start": "", "ramp_end": ""}}, 200, tenant)
	// Limits (docs/limits.md).
	call("PATCH "+T, map[string]any{"daily_recipient_limit": 100000, "max_hve_accounts": 0, "external_sending": "limited",
		"outbound_smarthost": "smtp.example.net:25", "price_per_million": 42.5}, 200, tenant)
	call("PATCH "+T, map[string]any{"external_sending": "everywhere"}, 400, tenant)
	call("PATCH "+T, map[string]any{"outbound_smarthost": "smtp.example.net:0"}, 400, tenant)
	call("PATCH "+T+"/accounts/{address}", map[string]any{"daily_recipient_limit": 5000, "warn_at": 80}, 200, tenant, "app@contoso.test")
	call("PATCH "+T+"/accounts/{address}", map[string]any{"warn_at": 120}, 400, tenant, "app@contoso.test")

	// Mailboxes: show, change, revoke.
	call("GET "+T+"/mailboxes/{address}", nil, 200, tenant, "a@contoso.test")
	call("GET "+T+"/mailboxes/{address}", nil, 404, tenant, "scanner@contoso.test")
	call("PATCH "+T+"/mailboxes/{address}", map[string]any{"display_name": "Alice A.", "password": "alice-new-password", "auth_policy": "AllowBasic"}, 200, tenant, "alice@contoso.test")
	call("PATCH "+T+"/mailboxes/{address}", map[string]any{"auth_policy": "Nope"}, 400, tenant, "alice@contoso.test")
	if rv := obj(call("POST "+T+"/mailboxes/{address}/revoke-sessions", nil, 200, tenant, "alice@contoso.test")); fmt.Sprint(rv["sessions_closed"]) != "2" || rv["kind"] != "mailbox" {
		t.Errorf("revoke-sessions of a mailbox = %v", rv)
	}

	// Accounts: access fields, revoke, diagnose.
	call("PATCH "+T+"/accounts/{address}", map[string]any{"auth_policy": "AllowBasic", "allowed_networks": []string{"192.0.2.0/24", "2001:db8::1"}, "enabled": true}, 200, tenant, "scanner@contoso.test")
	call("PATCH "+T+"/accounts/{address}", map[string]any{"allowed_networks": []string{"300.1.1.1/8"}}, 400, tenant, "scanner@contoso.test")
	rv := obj(call("POST "+T+"/accounts/{address}/revoke-sessions", nil, 200, tenant, "scanner@contoso.test"))
	if tvf, _ := time.Parse(time.RFC3339Nano, rv["tokens_valid_from"].(string)); time.Since(tvf) > time.Minute {
		t.Errorf("revoke-sessions: tokens_valid_from = %v, want now", rv["tokens_valid_from"])
	}
	diag := obj(call("GET "+T+"/accounts/{address}/diagnose?from_ip=192.0.2.7&auth=basic&endpoint=hve", nil, 200, tenant, "scanner@contoso.test"))
	if steps, _ := diag["steps"].([]any); len(steps) < 3 || diag["ok"] != true {
		t.Errorf("diagnose of a working account = %v", diag)
	}
	diag = obj(call("GET "+T+"/accounts/{address}/diagnose?from_ip=198.51.100.1", nil, 200, tenant, "scanner@contoso.test"))
	if diag["ok"] != false || !strings.HasPrefix(diag["reply"].(string), "5") {
		t.Errorf("diagnose from outside the allowed networks = %v", diag)
	}
	if diag := obj(call("GET "+T+"/accounts/{address}/diagnose", nil, 200, tenant, "alice@contoso.test")); diag["kind"] != "mailbox" || diag["endpoint"] != "client" {
		t.Errorf("diagnose of a mailbox = %v", diag)
	}
	call("GET "+T+"/accounts/{address}/diagnose?auth=magic", nil, 400, tenant, "scanner@contoso.test")
	call("GET "+T+"/accounts/{address}/diagnose?from_ip=here", nil, 400, tenant, "scanner@contoso.test")
	call("GET "+T+"/accounts/{address}/diagnose", nil, 404, tenant, "team@contoso.test")

	// Security groups and Conditional Access.
	call("POST "+T+"/security-groups", map[string]any{"name": "Apps"}, 201, tenant)
	call("POST "+T+"/security-groups", map[string]any{"name": "Apps"}, 409, tenant)
	call("POST "+T+"/security-groups/{name}/members", map[string]any{"address": "scanner@contoso.test"}, 200, tenant, "Apps")
	call("POST "+T+"/security-groups/{name}/members", map[string]any{"address": "a@contoso.test"}, 200, tenant, "Apps")
	call("POST "+T+"/security-groups/{name}/members", map[string]any{"address": "scanner@contoso.test"}, 409, tenant, "Apps")
	call("POST "+T+"/security-groups/{name}/members", map[string]any{"address": "team@contoso.test"}, 400, tenant, "Apps")
	call("POST "+T+"/security-groups/{name}/members", map[string]any{"address": "alice@contoso.test"}, 404, tenant, "Nope")
	call("GET "+T+"/security-groups", nil, 200, tenant)
	ca := obj(call("POST "+T+"/ca-policies", map[string]any{"name": "Block scanners", "grant": "block", "client_apps": []string{"legacy"},
		"include_groups": []string{"Apps"}, "exclude_users": []string{"a@contoso.test"}, "include_networks": []string{"10.1.2.3/8"}}, 201, tenant))
	if ca["state"] != "report-only" || fmt.Sprint(ca["exclude_users"]) != "[alice@contoso.test]" || fmt.Sprint(ca["include_networks"]) != "[10.0.0.0/8]" {
		t.Errorf("new CA policy = %v; want report-only, the primary address and the canonical prefix", ca)
	}
	call("POST "+T+"/ca-policies", map[string]any{"name": "X", "grant": "block", "include_groups": []string{"Nope"}}, 400, tenant)
	call("POST "+T+"/ca-policies", map[string]any{"name": "X", "grant": "allow", "include_users": []string{"all"}}, 400, tenant)
	call("POST "+T+"/ca-policies", map[string]any{"name": "X", "grant": "block", "include_users": []string{"nobody@contoso.test"}}, 400, tenant)
	call("POST "+T+"/ca-policies", map[string]any{"name": "Block scanners", "grant": "block", "include_users": []string{"all"}}, 409, tenant)
	call("GET "+T+"/ca-policies", nil, 200, tenant)
	call("PATCH "+T+"/ca-policies/{name}", map[string]any{"state": "on", "exclude_networks": []string{"192.0.2.0/24"}}, 200, tenant, "Block scanners")
	call("PATCH "+T+"/ca-policies/{name}", map[string]any{"name": "Y"}, 400, tenant, "Block scanners")
	call("PATCH "+T+"/ca-policies/{name}", map[string]any{"state": "off"}, 404, tenant, "Nope")
	call("DELETE "+T+"/security-groups/{name}", nil, 400, tenant, "Apps")

	// App registrations, tokens and keys.
	app := obj(call("POST "+T+"/apps", map[string]any{"name": "Payroll", "secret_expires": "90d"}, 201, tenant))
	appID, objectID, secret := app["app_id"].(string), app["object_id"].(string), app["secret"].(string)
	if appID == "" || objectID == "" || len(secret) < 20 {
		t.Fatalf("app create = %v", app)
	}
	call("POST "+T+"/apps", map[string]any{"name": "X", "secret_expires": "yesterday"}, 400, tenant)
	call("POST "+T+"/apps", map[string]any{"name": " "}, 400, tenant)
	call("GET "+T+"/apps", nil, 200, tenant)
	call("POST "+T+"/apps/{app}/permissions", map[string]any{"permission": "Mail.Send"}, 200, tenant, objectID)
	call("POST "+T+"/apps/{app}/permissions", map[string]any{"permission": "Mail.Send"}, 409, tenant, appID)
	call("POST "+T+"/apps/{app}/permissions", map[string]any{"permission": "Mail.Read"}, 400, tenant, appID)
	call("POST "+T+"/apps/{app}/permissions", map[string]any{"permission": "Mail.Send"}, 404, tenant, "nope")
	call("POST "+T+"/apps/{app}/secrets", map[string]any{"expires": "2000-01-01"}, 400, tenant, appID)
	sec := obj(call("POST "+T+"/apps/{app}/secrets", map[string]any{}, 201, tenant, appID))
	exerciseAdmin(t, call, tenant, appID)
	call("POST /oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {secret}}, 200)
	call("POST /oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {"wrong"}}, 401)
	call("POST /oauth2/token", url.Values{"grant_type": {"password"}}, 400)
	call("GET /oauth2/keys", nil, 200)
	call("GET /.well-known/openid-configuration", nil, 200)
	if keys := obj(call("POST /api/v1/oauth/rotate-key", nil, 200)); len(keys["keys"].([]any)) != 2 {
		t.Errorf("after a rotation, keys = %v; want the new and the old", keys)
	}

	// Allowed apps, with and without a trusted external issuer.
	if r := obj(call("POST "+T+"/accounts/{address}/allowed-apps", map[string]any{"app": objectID}, 200, tenant, "scanner@contoso.test")); r["app_id"] != appID || r["external"] != false {
		t.Errorf("allow-app by object id = %v, want the app id stored", r)
	}
	call("POST "+T+"/accounts/{address}/allowed-apps", map[string]any{"app": appID}, 409, tenant, "scanner@contoso.test")
	call("POST "+T+"/accounts/{address}/allowed-apps", map[string]any{"app": "ext-app-1"}, 400, tenant, "scanner@contoso.test")
	call("POST "+T+"/oauth/issuers", map[string]any{"url": "https://login.example.com/v2.0", "audience": "api://hve"}, 201, tenant)
	call("POST "+T+"/oauth/issuers", map[string]any{"url": "https://login.example.com/v2.0", "audience": "api://hve"}, 409, tenant)
	call("POST "+T+"/oauth/issuers", map[string]any{"url": "ftp://login.example.com", "audience": "api://hve"}, 400, tenant)
	call("GET "+T+"/oauth/issuers", nil, 200, tenant)
	if r := obj(call("POST "+T+"/accounts/{address}/allowed-apps", map[string]any{"app": "ext-app-1"}, 200, tenant, "scanner@contoso.test")); r["external"] != true {
		t.Errorf("allow-app of an external app = %v", r)
	}
	call("GET "+T+"/accounts/{address}/diagnose?auth=oauth&app="+objectID, nil, 200, tenant, "scanner@contoso.test")
	call("DELETE "+T+"/accounts/{address}/allowed-apps/{app}", nil, 200, tenant, "scanner@contoso.test", "ext-app-1")
	call("DELETE "+T+"/accounts/{address}/allowed-apps/{app}", nil, 404, tenant, "scanner@contoso.test", "ext-app-1")
	call("DELETE "+T+"/accounts/{address}/allowed-apps/{app}", nil, 200, tenant, "scanner@contoso.test", objectID)
	call("DELETE "+T+"/oauth/issuers/{url}", nil, 204, tenant, "https://login.example.com/v2.0")
	call("DELETE "+T+"/oauth/issuers/{url}", nil, 404, tenant, "https://login.example.com/v2.0")

	call("DELETE "+T+"/apps/{app}/permissions/{permission}", nil, 200, tenant, appID, "Mail.Send")
	call("DELETE "+T+"/apps/{app}/permissions/{permission}", nil, 404, tenant, appID, "Mail.Send")
	call("DELETE "+T+"/apps/{app}/secrets/{id}", nil, 204, tenant, appID, fmt.Sprint(sec["id"]))
	call("DELETE "+T+"/apps/{app}/secrets/{id}", nil, 400, tenant, appID, "x")
	call("DELETE "+T+"/apps/{app}", nil, 204, tenant, objectID)
	call("DELETE "+T+"/apps/{app}", nil, 404, tenant, appID)
	call("DELETE "+T+"/ca-policies/{name}", nil, 204, tenant, "Block scanners")
	call("DELETE "+T+"/ca-policies/{name}", nil, 404, tenant, "Block scanners")
	call("DELETE "+T+"/security-groups/{name}/members/{member}", nil, 200, tenant, "Apps", "scanner@contoso.test")
	call("DELETE "+T+"/security-groups/{name}/members/{member}", nil, 404, tenant, "Apps", "scanner@contoso.test")
	call("DELETE "+T+"/security-groups/{name}", nil, 204, tenant, "Apps")
	call("DELETE "+T+"/auth-policies/{name}", nil, 204, tenant, "BlockBasic")
	call("DELETE "+T+"/auth-policies/{name}", nil, 400, tenant, "AllowBasic")
	conv := obj(call("POST "+T+"/accounts/{address}/convert-to-mailbox", nil, 200, tenant, "scanner@contoso.test"))
	if m := conv["mailbox"].(map[string]any); m["converted_from_hve"] != true || m["address"] != "scanner@contoso.test" {
		t.Errorf("convert-to-mailbox = %v", conv)
	}
	call("POST "+T+"/accounts/{address}/convert-to-mailbox", nil, 404, tenant, "scanner@contoso.test")

	// Delivery routes: the password is stored for delivery, never shown.
	rt := obj(call("PUT "+T+"/routes/{domain}", map[string]any{"type": "smtp", "target": "Exchange.contoso.test:25", "tls": "required",
		"auth_user": "hve", "auth_password": "relay-secret", "max_connections": 4}, 200, tenant, "contoso.test"))
	if rt["auth_password_set"] != true || rt["target"] != "exchange.contoso.test:25" || rt["domain"] != "contoso.test" {
		t.Errorf("set route = %v", rt)
	}
	call("PUT "+T+"/routes/{domain}", map[string]any{"type": "lmtp", "target": "unix:/run/dovecot/lmtp"}, 200, tenant, "*")
	// Changing a setting keeps the password of an unchanged auth user.
	rt = obj(call("PUT "+T+"/routes/{domain}", map[string]any{"type": "smtp", "target": "exchange.contoso.test:25", "tls": "required",
		"auth_user": "hve", "max_connections": 8}, 200, tenant, "contoso.test"))
	if routes, err := st.Routes(ctx, tn.ID); err != nil || len(routes) != 2 || routes[1].AuthPassword != "relay-secret" || routes[1].MaxConnections != 8 {
		t.Errorf("stored routes = %+v, %v; want the password kept", routes, err)
	}
	call("PUT "+T+"/routes/{domain}", map[string]any{"type": "x400"}, 400, tenant, "contoso.test")
	call("PUT "+T+"/routes/{domain}", map[string]any{"type": "smtp"}, 400, tenant, "contoso.test")
	call("PUT "+T+"/routes/{domain}", map[string]any{"type": "smtp", "target": "mx:25", "tls": "none", "auth_user": "u", "auth_password": "p"}, 400, tenant, "contoso.test")
	call("PUT "+T+"/routes/{domain}", map[string]any{"type": "local"}, 400, tenant, "elsewhere.example")
	call("PUT "+T+"/routes/{domain}", map[string]any{"type": "local"}, 404, "nope", "contoso.test")
	if body := call("GET "+T+"/routes", nil, 200, tenant); bytes.Contains(body, []byte("relay-secret")) {
		t.Errorf("the route list shows the password: %s", body)
	}
	call("DELETE "+T+"/routes/{domain}", nil, 204, tenant, "*")
	call("DELETE "+T+"/routes/{domain}", nil, 404, tenant, "*")
	call("DELETE "+T+"/routes/{domain}", nil, 400, tenant, "not a domain")
	exerciseQueue(t, call, st, tn)

	call("DELETE /api/v1/tenants/{tenant}/groups/{address}/members/{member}", nil, 200, tenant, "team@contoso.test", "all@contoso.test")
	call("DELETE /api/v1/tenants/{tenant}/groups/{address}/members/{member}", nil, 404, tenant, "team@contoso.test", "bob@contoso.test")
	call("DELETE /api/v1/tenants/{tenant}/domains/{name}", nil, 400, tenant, "contoso.test")
	call("DELETE /api/v1/tenants/{tenant}/domains/{name}", nil, 204, tenant, "relay.contoso.test")
	call("DELETE /api/v1/tenants/{tenant}/groups/{address}", nil, 204, tenant, "all@contoso.test")
	call("DELETE /api/v1/tenants/{tenant}/accounts/{address}", nil, 204, tenant, "app@contoso.test")
	call("DELETE /api/v1/tenants/{tenant}/accounts/{address}", nil, 404, tenant, "app@contoso.test")
	call("DELETE /api/v1/tenants/{tenant}/mailboxes/{address}", nil, 204, tenant, "bob@contoso.test")

	for _, op := range d.operations() {
		if !seen[op] {
			t.Errorf("%s is not exercised by this test; add it to the scenario", op)
		}
	}
}

// mediaSchema returns the schema of a request body or response object for a
// content type.
func mediaSchema(t *testing.T, d apiDoc, obj map[string]any, ctype string) map[string]any {
	t.Helper()
	content, _ := obj["content"].(map[string]any)
	media, ok := content[ctype].(map[string]any)
	if !ok {
		t.Fatalf("content type %q is not documented (have %v)", ctype, slices.Collect(mapKeys(content)))
	}
	return media["schema"].(map[string]any)
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// validate checks v against the subset of JSON Schema that openapi.json
// uses: $ref, allOf, type, properties, required, additionalProperties:
// false, items, enum, const, minimum, minLength and the formats date-time,
// email and int64.
func (d apiDoc) validate(schema map[string]any, v any, at string) error {
	if _, ok := schema["$ref"]; ok {
		target, err := d.resolve(schema)
		if err != nil {
			return err
		}
		if err := d.validate(target, v, at); err != nil {
			return err
		}
	}
	if all, ok := schema["allOf"].([]any); ok {
		for _, s := range all {
			if err := d.validate(s.(map[string]any), v, at); err != nil {
				return err
			}
		}
	}
	if c, ok := schema["const"]; ok && !reflect.DeepEqual(c, v) {
		return fmt.Errorf("%s: %v, want %v", at, v, c)
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		return fmt.Errorf("%s: %v is not one of %v", at, v, enum)
	}
	typ, _ := schema["type"].(string)
	switch typ {
	case "":
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an object", at, v)
		}
		props, _ := schema["properties"].(map[string]any)
		required, _ := schema["required"].([]any)
		for _, r := range required {
			if _, ok := obj[r.(string)]; !ok {
				return fmt.Errorf("%s: required field %q is missing", at, r)
			}
		}
		for k, fv := range obj {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if schema["additionalProperties"] == false {
					return fmt.Errorf("%s: field %q is not in the schema", at, k)
				}
				continue
			}
			if err := d.validate(ps, fv, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an array", at, v)
		}
		items, _ := schema["items"].(map[string]any)
		for i, e := range arr {
			if items != nil {
				if err := d.validate(items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %T, want a string", at, v)
		}
		if n, ok := schema["minLength"].(json.Number); ok {
			if min, _ := n.Int64(); int64(len(s)) < min {
				return fmt.Errorf("%s: %q is shorter than %d", at, s, min)
			}
		}
		switch schema["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", at, s)
			}
		case "email":
			if !strings.Contains(s, "@") {
				return fmt.Errorf("%s: %q is not an address", at, s)
			}
		}
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s: %T, want an integer", at, v)
		}
		i, err := n.Int64()
		if err != nil {
			return fmt.Errorf("%s: %v is not an integer", at, n)
		}
		if m, ok := schema["minimum"].(json.Number); ok {
			if min, _ := m.Int64(); i < min {
				return fmt.Errorf("%s: %d is below %d", at, i, min)
			}
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%s: %T, want a number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want a boolean", at, v)
		}
	default:
		return fmt.Errorf("%s: the validator does not know type %q", at, typ)
	}
	return nil
}
