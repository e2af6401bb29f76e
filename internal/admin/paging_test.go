package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// listEndpoints are the list endpoints that page with Link headers: every
// GET of the document whose 200 reply is a JSON array, but message trace
// (a search with its own limit and after).
func listEndpoints(t *testing.T) []string {
	t.Helper()
	d := loadDoc(t)
	var list []string
	for _, op := range d.operations() {
		if !strings.HasPrefix(op, "GET ") || op == "GET /api/v1/tenants/{tenant}/trace" {
			continue
		}
		resp, _ := d.operation(op)["responses"].(map[string]any)["200"].(map[string]any)
		if resp == nil {
			continue
		}
		resp, _ = d.resolve(resp)
		content, _ := resp["content"].(map[string]any)
		media, _ := content["application/json"].(map[string]any)
		if schema, _ := media["schema"].(map[string]any); schema["type"] == "array" {
			list = append(list, op)
		}
	}
	return list
}

// pageRequest makes one GET with the bearer token.
func pageRequest(a *API, token, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// walkPages follows the Link headers from target and returns the items of
// every page, failing the test on a page that is not what paging says.
func walkPages(t *testing.T, a *API, token, target string, limit int) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	for pages := 0; target != ""; pages++ {
		if pages > 100 {
			t.Fatalf("more than 100 pages: the links loop")
		}
		rec := pageRequest(a, token, target)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
		}
		var page []json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatalf("GET %s: the body is not an array: %v: %s", target, err, rec.Body)
		}
		all = append(all, page...)
		link, cursor := rec.Header().Get("Link"), rec.Header().Get("X-Next-Cursor")
		if link == "" {
			if cursor != "" {
				t.Errorf("GET %s: X-Next-Cursor %q without a Link", target, cursor)
			}
			if len(page) > limit {
				t.Errorf("GET %s: the last page has %d items, limit %d", target, len(page), limit)
			}
			break
		}
		if len(page) != limit {
			t.Errorf("GET %s: a page with a next page has %d items, want the limit %d", target, len(page), limit)
		}
		m := nextLink.FindStringSubmatch(link)
		if m == nil {
			t.Fatalf("GET %s: Link %q is not <URL>; rel=\"next\"", target, link)
		}
		next, err := url.Parse(m[1])
		if err != nil {
			t.Fatalf("GET %s: Link %q: %v", target, link, err)
		}
		prev, _ := url.Parse(target)
		if next.Path != prev.Path || next.Query().Get("limit") != fmt.Sprint(limit) || next.Query().Get("cursor") != cursor {
			t.Fatalf("GET %s: Link %q, X-Next-Cursor %q: want the same path and limit with the cursor", target, link, cursor)
		}
		target = m[1]
	}
	return all
}

// pagingFixture makes three (or more) objects of every kind that is
// listed, and returns the API and the secret of an API token of the admin
// user ana.
func pagingFixture(t *testing.T) (*API, string) {
	t.Helper()
	a, st := newTestAPI(t)
	ctx := context.Background()
	for _, name := range []string{"default", "fabrikam", "contoso"} {
		mustSend(t, a, 201, "POST", "/api/v1/tenants", map[string]any{"name": name})
	}
	for _, d := range []string{"contoso.test", "b.test", "c.test"} {
		mustSend(t, a, 201, "POST", tb+"/domains", map[string]any{"name": d})
	}
	for _, n := range []string{"carol", "alice", "bob"} {
		mustSend(t, a, 201, "POST", tb+"/mailboxes", map[string]any{"name": n, "address": n + "@contoso.test"})
		mustSend(t, a, 201, "POST", tb+"/accounts", map[string]any{"name": n, "address": n + "-app@b.test"})
		mustSend(t, a, 201, "POST", tb+"/groups", map[string]any{"name": n, "address": n + "-team@c.test"})
		mustSend(t, a, 201, "POST", tb+"/webhooks", map[string]any{"url": "https://hooks.example.com/" + n})
		mustSend(t, a, 201, "POST", tb+"/auth-policies", map[string]any{"name": "policy-" + n})
		mustSend(t, a, 201, "POST", tb+"/security-groups", map[string]any{"name": "sg-" + n})
		mustSend(t, a, 201, "POST", tb+"/ca-policies", map[string]any{"name": "ca-" + n, "grant": "block", "include_users": []string{"all"}})
		mustSend(t, a, 201, "POST", tb+"/oauth/issuers", map[string]any{"url": "https://login.example.com/" + n, "audience": "hve"})
	}
	// App names need not be unique.
	for _, n := range []string{"Payroll", "Billing", "Payroll"} {
		mustSend(t, a, 201, "POST", tb+"/apps", map[string]any{"name": n})
	}
	for _, d := range []string{"*", "contoso.test", "b.test"} {
		mustSend(t, a, 200, "PUT", tb+"/routes/"+url.PathEscape(d), map[string]any{"type": "lmtp", "target": "unix:/run/dovecot/lmtp"})
	}
	// Admin users are listed by name regardless of case: not byte order.
	for _, n := range []string{"ana", "Bob", "zed", "Carl"} {
		mustSend(t, a, 201, "POST", "/api/v1/admin-users", map[string]any{"name": n, "role": "global-admin", "password": "long enough password"})
	}
	var secret string
	for i := range 3 {
		tok := mustSend(t, a, 201, "POST", "/api/v1/admin-users/ana/tokens", map[string]any{"name": fmt.Sprint("t", i)})
		secret, _ = tok["token"].(string)
	}
	// Three messages in alice's mailbox.
	tn, err := st.TenantByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := st.MailboxByAddress(ctx, "alice@contoso.test")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		now := time.Now().UTC()
		msg := &queue.Message{QueueID: queue.NewID(now), TenantID: tn.ID, Sender: "carol@contoso.test", Recipients: []string{alice.Address},
			MessageID: fmt.Sprintf("m%d@test", i), Subject: "Hello", ClientIP: "192.0.2.1", ReceivedAt: now, Body: []byte("Subject: Hello\r\n\r\nHi\r\n")}
		msg.Size = int64(len(msg.Body))
		ev := trace.Event{TenantID: tn.ID, Time: now, QueueID: msg.QueueID, MessageID: msg.MessageID, Sender: msg.Sender,
			Recipient: alice.Address, Event: trace.EventReceived, Status: trace.StatusPending, ClientIP: msg.ClientIP, Subject: msg.Subject, Size: msg.Size}
		if err := st.Enqueue(ctx, []*queue.Message{msg}, []trace.Event{ev}); err != nil {
			t.Fatal(err)
		}
		ev.Event, ev.Status = trace.EventDelivered, trace.StatusDelivered
		if err := st.Finish(ctx, []store.Delivery{{QueueID: msg.QueueID, Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: alice.Address}},
			Events: []trace.Event{ev}}}); err != nil {
			t.Fatal(err)
		}
	}
	return a, secret
}

// listPath fills in the path values of a list endpoint for the fixture.
func listPath(pattern string) string {
	path := strings.TrimPrefix(pattern, "GET ")
	path = strings.ReplaceAll(path, "{tenant}", "default")
	path = strings.ReplaceAll(path, "{address}", "alice%40contoso.test")
	return strings.ReplaceAll(path, "{name}", "ana")
}

func TestListEndpointsPage(t *testing.T) {
	a, anaToken := pagingFixture(t)
	endpoints := listEndpoints(t)
	if len(endpoints) < 16 {
		t.Fatalf("found %d list endpoints in the document, want at least 16: %v", len(endpoints), endpoints)
	}
	d := loadDoc(t)
	for _, op := range endpoints {
		t.Run(strings.TrimPrefix(op, "GET "), func(t *testing.T) {
			// The document describes the paging.
			o := d.operation(op)
			params, _ := o["parameters"].([]any)
			for _, ref := range []string{"#/components/parameters/pageLimit", "#/components/parameters/pageCursor"} {
				if !slices.ContainsFunc(params, func(p any) bool { return p.(map[string]any)["$ref"] == ref }) {
					t.Errorf("%s: parameter %s is not documented", op, ref)
				}
			}
			responses := o["responses"].(map[string]any)
			headers, _ := responses["200"].(map[string]any)["headers"].(map[string]any)
			if headers["Link"] == nil || headers["X-Next-Cursor"] == nil {
				t.Errorf("%s: the 200 reply does not document the Link and X-Next-Cursor headers", op)
			}
			if responses["400"] == nil {
				t.Errorf("%s: the 400 of a bad limit or cursor is not documented", op)
			}

			path, token := listPath(op), testToken
			if op == "GET /api/v1/me/tokens" {
				token = anaToken
			}
			// The whole list fits one page of the maximum size.
			rec := pageRequest(a, token, path+"?limit=1000")
			if rec.Code != http.StatusOK || rec.Header().Get("Link") != "" || rec.Header().Get("X-Next-Cursor") != "" {
				t.Fatalf("GET %s?limit=1000: %d, Link %q, X-Next-Cursor %q: %s", path, rec.Code, rec.Header().Get("Link"), rec.Header().Get("X-Next-Cursor"), rec.Body)
			}
			var whole []json.RawMessage
			if err := json.Unmarshal(rec.Body.Bytes(), &whole); err != nil {
				t.Fatal(err)
			}
			if len(whole) < 2 {
				t.Fatalf("GET %s has %d items; the fixture must make at least 2 to page", path, len(whole))
			}
			// Without limit, the default of 100 holds them all too.
			if rec := pageRequest(a, token, path); rec.Code != http.StatusOK || rec.Header().Get("Link") != "" || !bytes.Equal(rec.Body.Bytes(), pageRequest(a, token, path+"?limit=1000").Body.Bytes()) {
				t.Errorf("GET %s without limit: %d, Link %q", path, rec.Code, rec.Header().Get("Link"))
			}
			for _, limit := range []int{1, 2} {
				got := walkPages(t, a, token, fmt.Sprintf("%s?limit=%d", path, limit), limit)
				if !slices.EqualFunc(got, whole, func(x, y json.RawMessage) bool { return bytes.Equal(x, y) }) {
					t.Errorf("pages of %d of %s:\n%s\nwant every item once, in order:\n%s", limit, path, got, whole)
				}
			}
		})
	}
}

func TestPagingErrors(t *testing.T) {
	a, _ := pagingFixture(t)
	first := pageRequest(a, testToken, tb+"/accounts?limit=1")
	cursor := first.Header().Get("X-Next-Cursor")
	if cursor == "" {
		t.Fatal("no next cursor on the first of three pages")
	}
	tenantsCursor := pageRequest(a, testToken, "/api/v1/tenants?limit=1").Header().Get("X-Next-Cursor")
	b := []byte(cursor)
	b[len(b)-1] ^= 1
	for _, tc := range []struct{ query, want string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=-1", "limit"},
		{"limit=ten", "limit"},
		{"cursor=not-a-cursor", "cursor"},
		{"cursor=%25%25", "cursor"},
		{"cursor=" + string(b), "cursor"},
		// A cursor of another list.
		{"cursor=" + tenantsCursor, "cursor"},
		{"cursor=" + cursor + "&limit=x", "limit"},
	} {
		rec := pageRequest(a, testToken, tb+"/accounts?"+tc.query)
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); rec.Code != http.StatusBadRequest || err != nil || body.Error.Code != "invalid" ||
			!strings.Contains(body.Error.Message, tc.want) {
			t.Errorf("accounts?%s: %d %s; want 400 invalid with a message about %s", tc.query, rec.Code, rec.Body, tc.want)
		}
	}
	// The cursor of the first page still works, with any limit.
	if rec := pageRequest(a, testToken, tb+"/accounts?limit=5&cursor="+cursor); rec.Code != http.StatusOK || rec.Header().Get("Link") != "" {
		t.Errorf("accounts?limit=5&cursor=...: %d, Link %q: %s", rec.Code, rec.Header().Get("Link"), rec.Body)
	}
}

// TestPageAfterRemoval: the item a cursor names may be gone when the next
// page is asked for; the next page still begins where it was.
func TestPageAfterRemoval(t *testing.T) {
	a, _ := pagingFixture(t)
	// Accounts, by address: alice-app, bob-app, carol-app.
	rec := pageRequest(a, testToken, tb+"/accounts?limit=1")
	mustSend(t, a, 204, "DELETE", tb+"/accounts/alice-app@b.test", nil)
	if got := addressesOf(t, walkPages(t, a, testToken, firstLink(t, rec), 1)); !slices.Equal(got, []string{"bob-app@b.test", "carol-app@b.test"}) {
		t.Errorf("accounts after removing the cursor's = %v", got)
	}
}

func firstLink(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	m := nextLink.FindStringSubmatch(rec.Header().Get("Link"))
	if m == nil {
		t.Fatalf("no next link: %q", rec.Header().Get("Link"))
	}
	return m[1]
}

func addressesOf(t *testing.T, items []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, it := range items {
		var v struct{ Address string }
		if err := json.Unmarshal(it, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v.Address)
	}
	return out
}

// TestWritePageResume drives writePage with lists in each order, the
// cursor's item removed before the next page.
func TestWritePageResume(t *testing.T) {
	page := func(list []string, target string) ([]string, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		if err := writePage(rec, httptest.NewRequest("GET", target, nil), list, func(s string) string { return s }); err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		var got []string
		json.Unmarshal(rec.Body.Bytes(), &got)
		return got, rec.Header().Get("X-Next-Cursor")
	}
	for _, tc := range []struct {
		name  string
		list  []string
		after []string // the list when the second page is asked for
		want  []string // the second page
	}{
		{"ascending", []string{"a", "b", "c", "d"}, []string{"a", "c", "d"}, []string{"c", "d"}},
		{"ascending, more removed", []string{"a", "b", "c", "d"}, []string{"d"}, []string{"d"}},
		{"ascending, one added", []string{"a", "b", "c", "d"}, []string{"a", "b", "bb", "c", "d"}, []string{"bb", "c"}},
		{"descending", []string{"d", "c", "b", "a"}, []string{"d", "b", "a"}, []string{"b", "a"}},
		{"descending, one left", []string{"d", "c", "b", "a"}, []string{"a"}, []string{"a"}},
		{"no order by key", []string{"b", "a", "d", "c"}, []string{"b", "d", "c"}, []string{"d", "c"}},
		{"no order, more removed", []string{"b", "a", "d", "c"}, []string{"d", "c"}, []string{"c"}}, // d is skipped
		{"no order, item kept", []string{"b", "a", "d", "c"}, []string{"x", "b", "a", "d", "c"}, []string{"d", "c"}},
	} {
		first, cursor := page(tc.list, "/l?limit=2")
		if !slices.Equal(first, tc.list[:2]) || cursor == "" {
			t.Fatalf("%s: first page %v, cursor %q", tc.name, first, cursor)
		}
		if got, _ := page(tc.after, "/l?limit=2&cursor="+cursor); !slices.Equal(got, tc.want) {
			t.Errorf("%s: second page = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A cursor is bound to its list's path.
	_, cursor := page([]string{"a", "b"}, "/l?limit=1")
	rec := httptest.NewRecorder()
	err := writePage(rec, httptest.NewRequest("GET", "/other?cursor="+cursor, nil), []string{"a", "b"}, func(s string) string { return s })
	if err == nil || !strings.Contains(err.Error(), "not one this API gave out") {
		t.Errorf("a cursor of /l on /other: %v", err)
	}
}
