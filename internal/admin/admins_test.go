package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/password"
	"hve/internal/store"
)

// exerciseAdmin drives the admin-user, token, audit and item routes for
// TestOpenAPIMatchesHandlers. The tenant has contoso.test, the group
// team@contoso.test, the authentication policy AllowBasic, the security
// group Apps with scanner@contoso.test, the Conditional Access policy
// "Block scanners" (on, legacy, Apps, 10.0.0.0/8) and the app appID.
func exerciseAdmin(t *testing.T, call func(string, any, int, ...string) []byte, tenant, appID string) {
	t.Helper()
	const T = "/api/v1/tenants/{tenant}"
	call("GET "+T+"/health", nil, 200, tenant)
	call("GET "+T+"/domains/{name}", nil, 200, tenant, "contoso.test")
	call("GET "+T+"/domains/{name}", nil, 404, tenant, "nope.test")
	call("GET "+T+"/groups/{address}", nil, 200, tenant, "team@contoso.test")
	call("GET "+T+"/groups/{address}", nil, 404, tenant, "scanner@contoso.test")
	call("GET "+T+"/auth-policies/{name}", nil, 200, tenant, "AllowBasic")
	call("GET "+T+"/security-groups/{name}", nil, 200, tenant, "Apps")
	call("GET "+T+"/ca-policies/{name}", nil, 200, tenant, "Block scanners")
	call("GET "+T+"/apps/{app}", nil, 200, tenant, appID)

	var w whatIf
	json.Unmarshal(call("GET "+T+"/ca-what-if?user=SCANNER@contoso.test&ip=10.1.1.1&client_app=legacy", nil, 200, tenant), &w)
	if !w.Blocked || !slices.Equal(w.BlockedBy, []string{"Block scanners"}) || !slices.Contains(w.Groups, "Apps") || len(w.Verdicts) < 2 {
		t.Errorf("what if (blocked) = %+v", w)
	}
	w = whatIf{}
	json.Unmarshal(call("GET "+T+"/ca-what-if?user=scanner@contoso.test&ip=10.1.1.1&client_app=modern", nil, 200, tenant), &w)
	if w.Blocked {
		t.Errorf("what if (modern) = %+v", w)
	}
	call("GET "+T+"/ca-what-if?user=nobody@contoso.test", nil, 404, tenant)
	call("GET "+T+"/ca-what-if?user=scanner@contoso.test&client_app=fax", nil, 400, tenant)

	call("GET /api/v1/me", nil, 200)
	call("GET /api/v1/me/tokens", nil, 400)
	call("POST /api/v1/me/tokens", map[string]any{"name": "x"}, 400)
	call("DELETE /api/v1/me/tokens/{id}", nil, 400, "1")

	var ana userCreated
	json.Unmarshal(call("POST /api/v1/admin-users", map[string]any{"name": "ana", "role": "global-admin", "password": "correct horse battery", "totp": true}, 201), &ana)
	if ana.TOTPKey == "" || !strings.HasPrefix(ana.TOTPURI, "otpauth://") || !ana.TOTP {
		t.Errorf("admin user with TOTP = %+v", ana)
	}
	call("POST /api/v1/admin-users", map[string]any{"name": "tom", "role": "tenant-admin", "tenant": tenant, "password": "tenant admin password"}, 201)
	call("POST /api/v1/admin-users", map[string]any{"name": "ANA", "role": "reader", "password": "another password"}, 409)
	call("POST /api/v1/admin-users", map[string]any{"name": "x", "role": "tenant-admin", "password": "tenant admin password"}, 400)
	call("POST /api/v1/admin-users", map[string]any{"name": "y", "role": "root", "password": "tenant admin password"}, 400)
	call("POST /api/v1/admin-users", map[string]any{"name": "z", "role": "reader", "password": "short"}, 400)
	call("POST /api/v1/admin-users", map[string]any{"name": "admin-token", "role": "reader", "password": "long enough password"}, 400)
	call("GET /api/v1/admin-users", nil, 200)
	call("GET /api/v1/admin-users/{name}", nil, 200, "Ana")
	call("GET /api/v1/admin-users/{name}", nil, 404, "nobody")
	call("PATCH /api/v1/admin-users/{name}", map[string]any{"role": "reader", "totp": false, "enabled": true}, 200, "tom")
	call("PATCH /api/v1/admin-users/{name}", map[string]any{"role": "tenant-admin", "tenant": "nope"}, 400, "tom")
	var tok tokenCreated
	json.Unmarshal(call("POST /api/v1/admin-users/{name}/tokens", map[string]any{"name": "ci", "expires": "90d"}, 201, "tom"), &tok)
	if !strings.HasPrefix(tok.Secret, "hvea_") || tok.User != "tom" || tok.ExpiresAt.IsZero() {
		t.Errorf("token = %+v", tok)
	}
	call("POST /api/v1/admin-users/{name}/tokens", map[string]any{"expires": "yesterday"}, 400, "tom")
	call("GET /api/v1/admin-users/{name}/tokens", nil, 200, "tom")
	call("DELETE /api/v1/admin-users/{name}/tokens/{id}", nil, 204, "tom", fmt.Sprint(tok.ID))
	call("DELETE /api/v1/admin-users/{name}/tokens/{id}", nil, 404, "tom", fmt.Sprint(tok.ID))
	call("DELETE /api/v1/admin-users/{name}", nil, 204, "tom")
	call("DELETE /api/v1/admin-users/{name}", nil, 404, "tom")

	var page auditPage
	json.Unmarshal(call("GET /api/v1/audit?actor=admin-token&limit=2", nil, 200), &page)
	if len(page.Items) != 2 || page.NextCursor == "" || page.Items[0].ID <= page.Items[1].ID {
		t.Errorf("audit page = %+v", page)
	}
	next := auditPage{}
	json.Unmarshal(call("GET /api/v1/audit?limit=2&cursor="+page.NextCursor, nil, 200), &next)
	if len(next.Items) == 0 || next.Items[0].ID >= page.Items[1].ID {
		t.Errorf("second audit page = %+v", next)
	}
	call("GET /api/v1/audit?tenant="+tenant+"&since=1h", nil, 200)
	call("GET /api/v1/audit?cursor=x", nil, 400)
	call("GET /api/v1/audit?tenant=nope", nil, 404)
	call("GET "+T+"/audit", nil, 200, tenant)
}

// roleFixture is an API with two tenants, contoso and fabrikam, each with a
// domain and an account, and one admin user (with an API token) per role
// and scope.
type roleFixture struct {
	a      *API
	st     store.Store
	tokens map[string]string // by user name
}

func newRoleFixture(t *testing.T) *roleFixture {
	t.Helper()
	a, st := newTestAPI(t)
	f := &roleFixture{a: a, st: st, tokens: map[string]string{}}
	for _, tn := range []string{"contoso", "fabrikam"} {
		mustSend(t, a, 201, "POST", "/api/v1/tenants", map[string]any{"name": tn})
		mustSend(t, a, 201, "POST", "/api/v1/tenants/"+tn+"/domains", map[string]any{"name": tn + ".test"})
		mustSend(t, a, 201, "POST", "/api/v1/tenants/"+tn+"/accounts", map[string]any{"name": "app", "address": "app@" + tn + ".test"})
	}
	ctx := context.Background()
	contoso, err := st.TenantByName(ctx, "contoso")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := password.Hash("fixture password")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []adminauth.User{
		{Name: "global", Role: adminauth.GlobalAdmin},
		{Name: "tadmin", Role: adminauth.TenantAdmin, TenantID: contoso.ID},
		{Name: "reader", Role: adminauth.Reader},
		{Name: "creader", Role: adminauth.Reader, TenantID: contoso.ID},
		{Name: "tracer", Role: adminauth.TraceReader, TenantID: contoso.ID},
		{Name: "disabled", Role: adminauth.GlobalAdmin},
	} {
		u.PasswordHash, u.Enabled = hash, u.Name != "disabled"
		u, err := st.CreateAdminUser(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		token, h, hint, err := adminauth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddAdminToken(ctx, adminauth.Token{UserID: u.ID, Name: "test", Hash: h, Hint: hint}); err != nil {
			t.Fatal(err)
		}
		f.tokens[u.Name] = token
	}
	return f
}

// as sends a request with the API token of the named user.
func (f *roleFixture) as(t *testing.T, user, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.tokens[user])
	rec := httptest.NewRecorder()
	f.a.ServeHTTP(rec, req)
	return rec
}

func errorCode(rec *httptest.ResponseRecorder) string {
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(rec.Body.Bytes(), &e)
	return e.Error.Code
}

// TestRolesOnEveryRoute tries every registered route (so routes added
// later are covered too) as each role and checks the role rule: readers
// change nothing, trace-readers read only trace and reports, a tenant admin
// sees nothing of another tenant (404, as for a tenant that does not
// exist) and no global route but the tenant list and its own /me.
func TestRolesOnEveryRoute(t *testing.T) {
	f := newRoleFixture(t)
	ctx := context.Background()
	before, err := f.st.SearchAudit(ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	fill := func(path, tenant string) string {
		path = strings.ReplaceAll(path, "{tenant}", tenant)
		return param.ReplaceAllString(path, "x%40contoso.test")
	}
	for _, pattern := range f.a.patterns {
		if slices.Contains(publicPatterns, pattern) {
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		write := method != http.MethodGet && method != http.MethodHead
		tenantRoute := strings.Contains(path, "{tenant}")
		self := strings.HasPrefix(path, adminauth.SelfPrefix)
		trace := adminauth.IsTraceRoute(path)

		// Reader: every write is forbidden; every read is allowed.
		for _, reader := range []string{"reader", "creader"} {
			rec := f.as(t, reader, method, fill(path, "contoso"), "{}")
			switch {
			case write && rec.Code != http.StatusForbidden:
				t.Errorf("%s: %s may not change anything, got %d %s", pattern, reader, rec.Code, rec.Body)
			case !write && (rec.Code == http.StatusForbidden || rec.Code == http.StatusUnauthorized) &&
				!(reader == "creader" && !tenantRoute && !self && pattern != adminauth.TenantListPattern):
				t.Errorf("%s: %s may read, got %d %s", pattern, reader, rec.Code, rec.Body)
			}
		}

		// Trace reader: only reads of trace, usage and reports (and who
		// am I, and the tenant list).
		rec := f.as(t, "tracer", method, fill(path, "contoso"), "{}")
		mayTrace := !write && (trace || self || pattern == adminauth.TenantListPattern)
		if mayTrace == (rec.Code == http.StatusForbidden) {
			t.Errorf("%s: trace-reader got %d %s (allowed: %v)", pattern, rec.Code, rec.Body, mayTrace)
		}

		// Tenant admin of contoso.
		if tenantRoute {
			other := f.as(t, "tadmin", method, fill(path, "fabrikam"), "{}")
			missing := f.as(t, "global", method, fill(path, "nosuchtenant"), "{}")
			if other.Code != http.StatusNotFound || errorCode(other) != "not_found" {
				t.Errorf("%s: tenant admin of contoso on fabrikam got %d %s, want 404 not_found", pattern, other.Code, other.Body)
			}
			if strings.ReplaceAll(other.Body.String(), "fabrikam", "T") != strings.ReplaceAll(missing.Body.String(), "nosuchtenant", "T") {
				t.Errorf("%s: another tenant answers %s but a missing one %s: the reply tells them apart", pattern, other.Body, missing.Body)
			}
			if own := f.as(t, "tadmin", method, fill(path, "contoso"), "{}"); own.Code == http.StatusForbidden || own.Code == http.StatusUnauthorized {
				t.Errorf("%s: tenant admin on its own tenant got %d %s", pattern, own.Code, own.Body)
			}
		} else if !self && pattern != adminauth.TenantListPattern {
			if rec := f.as(t, "tadmin", method, fill(path, "contoso"), "{}"); rec.Code != http.StatusForbidden {
				t.Errorf("%s: tenant admin on a global route got %d %s, want 403", pattern, rec.Code, rec.Body)
			}
		}

		// A disabled user's token is refused everywhere.
		if rec := f.as(t, "disabled", method, fill(path, "contoso"), "{}"); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: disabled user got %d", pattern, rec.Code)
		}
	}

	// Nothing the refused requests tried was recorded as a change, and
	// fabrikam is as it was.
	after, err := f.st.SearchAudit(ctx, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range after[:len(after)-len(before)] {
		if e.Tenant == "fabrikam" || e.Actor == "reader" || e.Actor == "creader" || e.Actor == "tracer" {
			t.Errorf("audit entry of a refused request: %+v", e)
		}
	}
	fab, _ := f.st.TenantByName(ctx, "fabrikam")
	if accs, _ := f.st.Accounts(ctx, fab.ID); len(accs) != 1 {
		t.Errorf("fabrikam has %d accounts after the tries, want 1", len(accs))
	}
}

func TestTenantListIsScoped(t *testing.T) {
	f := newRoleFixture(t)
	for user, want := range map[string]string{"tadmin": "contoso", "creader": "contoso", "tracer": "contoso", "reader": "contoso,fabrikam", "global": "contoso,fabrikam"} {
		rec := f.as(t, user, "GET", "/api/v1/tenants", "")
		var list []struct{ Name string }
		json.Unmarshal(rec.Body.Bytes(), &list)
		var names []string
		for _, tn := range list {
			if tn.Name != "default" {
				names = append(names, tn.Name)
			}
		}
		if strings.Join(names, ",") != want {
			t.Errorf("%s sees tenants %v, want %s", user, names, want)
		}
	}
	var me struct {
		Name, Role, Tenant string
		User               *adminauth.User
	}
	json.Unmarshal(f.as(t, "tadmin", "GET", "/api/v1/me", "").Body.Bytes(), &me)
	if me.Name != "tadmin" || me.Role != "tenant-admin" || me.Tenant != "contoso" || me.User == nil {
		t.Errorf("me = %+v", me)
	}
	// A tenant admin makes its own tokens; a reader cannot.
	if rec := f.as(t, "tadmin", "POST", "/api/v1/me/tokens", `{"name":"mine"}`); rec.Code != http.StatusCreated {
		t.Errorf("tenant admin token: %d %s", rec.Code, rec.Body)
	}
	if rec := f.as(t, "reader", "POST", "/api/v1/me/tokens", `{"name":"mine"}`); rec.Code != http.StatusForbidden {
		t.Errorf("reader token: %d %s", rec.Code, rec.Body)
	}
}

func TestExpiredToken(t *testing.T) {
	f := newRoleFixture(t)
	ctx := context.Background()
	u, _ := f.st.AdminUserByName(ctx, "global")
	token, h, hint, _ := adminauth.NewToken()
	if _, err := f.st.AddAdminToken(ctx, adminauth.Token{UserID: u.ID, Hash: h, Hint: hint, ExpiresAt: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	f.tokens["expired"] = token
	if rec := f.as(t, "expired", "GET", "/api/v1/tenants", ""); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "expired") {
		t.Errorf("expired token: %d %s", rec.Code, rec.Body)
	}
}

// TestAuditEntries checks what the audit log records of changes: actor,
// via, tenant, action, before and after, and that no secret is kept.
func TestAuditEntries(t *testing.T) {
	f := newRoleFixture(t)
	ctx := context.Background()
	send := func(user, ua, method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.tokens[user])
		req.Header.Set("User-Agent", ua)
		rec := httptest.NewRecorder()
		f.a.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		return rec
	}
	const base = "/api/v1/tenants/contoso"
	created := send("tadmin", "curl/8", "POST", base+"/accounts", `{"name":"Mailer","address":"mailer@contoso.test","password":"Sup3r-secret-pw"}`)
	send("tadmin", "hve-cli/1", "PATCH", base+"/accounts/mailer@contoso.test", `{"display_name":"The Mailer","password":"An0ther-secret-pw"}`)
	send("global", "hve-cli/1", "POST", base+"/accounts/mailer%40contoso.test/revoke-sessions", ``)
	app := send("global", "curl/8", "POST", base+"/apps", `{"name":"Payroll"}`)
	var appReply struct{ Secret, AppID string }
	json.Unmarshal(app.Body.Bytes(), &appReply)
	send("global", "curl/8", "POST", "/api/v1/admin-users", `{"name":"newbie","role":"reader","password":"newbie password 1"}`)
	tok := send("global", "curl/8", "POST", "/api/v1/admin-users/newbie/tokens", `{}`)
	var tokReply tokenCreated
	json.Unmarshal(tok.Body.Bytes(), &tokReply)
	send("tadmin", "curl/8", "DELETE", base+"/accounts/mailer@contoso.test", ``)
	_ = created

	list, err := f.st.SearchAudit(ctx, audit.Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	byAction := map[string]audit.Entry{}
	for _, e := range list {
		b, _ := json.Marshal(e)
		for _, secret := range []string{"Sup3r-secret-pw", "An0ther-secret-pw", appReply.Secret, tokReply.Secret, "argon2id", "newbie password"} {
			if secret != "" && strings.Contains(string(b), secret) {
				t.Errorf("audit entry %s keeps a secret %q", b, secret)
			}
		}
		if _, ok := byAction[e.Action]; !ok {
			byAction[e.Action] = e
		}
	}
	obj := func(raw json.RawMessage) map[string]any {
		var m map[string]any
		json.Unmarshal(raw, &m)
		return m
	}
	c := byAction["account.create"]
	if c.Actor != "tadmin" || c.Role != "tenant-admin" || c.Via != "api" || c.Tenant != "contoso" || c.Object != "mailer@contoso.test" ||
		c.Before != nil || obj(c.After)["address"] != "mailer@contoso.test" || obj(c.Request)["password"] != audit.Redacted || c.Status != 201 {
		t.Errorf("account.create entry = %+v (request %s, after %s)", c, c.Request, c.After)
	}
	u := byAction["account.update"]
	if u.Via != "cli" || obj(u.Before)["display_name"] != "Mailer" || obj(u.After)["display_name"] != "The Mailer" || obj(u.Request)["password"] != audit.Redacted {
		t.Errorf("account.update entry = %+v (before %s, after %s)", u, u.Before, u.After)
	}
	r := byAction["account.revoke-sessions"]
	if r.Actor != "global" || obj(r.Before)["address"] != "mailer@contoso.test" || obj(r.After)["tokens_valid_from"] == nil {
		t.Errorf("revoke entry = %+v (before %s, after %s)", r, r.Before, r.After)
	}
	d := byAction["account.remove"]
	if d.Before == nil || d.After != nil || d.Status != 204 {
		t.Errorf("account.remove entry = %+v (before %s, after %s)", d, d.Before, d.After)
	}
	a := byAction["app.create"]
	if obj(a.After)["secret"] != audit.Redacted {
		t.Errorf("app.create after = %s", a.After)
	}
	if k := byAction["admin-token.create"]; obj(k.After)["token"] != audit.Redacted || k.Tenant != "" {
		t.Errorf("admin-token.create entry = %+v (after %s)", k, k.After)
	}
	// The tenant's own log holds its entries only.
	rec := f.as(t, "tadmin", "GET", base+"/audit", "")
	var page auditPage
	json.Unmarshal(rec.Body.Bytes(), &page)
	if len(page.Items) == 0 {
		t.Fatalf("tenant audit: %d %s", rec.Code, rec.Body)
	}
	for _, e := range page.Items {
		if e.Tenant != "contoso" {
			t.Errorf("contoso's audit log has %+v", e)
		}
	}
}

// TestRouteNodeFilesGlobalOnly: a tenant admin may set routes but not the
// node file paths of one (client_cert, client_key, ca_file), and its
// changes keep those a global admin set.
func TestRouteNodeFilesGlobalOnly(t *testing.T) {
	f := newRoleFixture(t)
	const path = "/api/v1/tenants/contoso/routes/contoso.test"
	for _, field := range []string{"client_cert", "client_key", "ca_file"} {
		body := fmt.Sprintf(`{"type":"smtp","target":"relay.contoso.test:25","%s":"/etc/shadow"}`, field)
		rec := f.as(t, "tadmin", "PUT", path, body)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "only a global admin") {
			t.Errorf("tenant admin sets %s: %d %s", field, rec.Code, rec.Body.String())
		}
	}
	files := `{"type":"smtp","target":"relay.contoso.test:25","tls":"required","client_cert":"/etc/hve/c.pem","client_key":"/etc/hve/c.key","ca_file":"/etc/hve/ca.pem"}`
	if rec := f.as(t, "global", "PUT", path, files); rec.Code != http.StatusOK {
		t.Fatalf("global admin sets the files: %d %s", rec.Code, rec.Body.String())
	}
	if rec := f.as(t, "tadmin", "PUT", path, `{"type":"smtp","target":"relay2.contoso.test:25","tls":"required"}`); rec.Code != http.StatusOK {
		t.Fatalf("tenant admin changes the route: %d %s", rec.Code, rec.Body.String())
	}
	tn, _ := f.st.TenantByName(context.Background(), "contoso")
	list, err := f.st.Routes(context.Background(), tn.ID)
	if err != nil || len(list) != 1 || list[0].Target != "relay2.contoso.test:25" || list[0].ClientCert != "/etc/hve/c.pem" || list[0].CAFile != "/etc/hve/ca.pem" {
		t.Errorf("route after the tenant admin's change: %+v %v", list, err)
	}
}

// TestTenantHealth: the day's figures are the tenant's usage counters of
// today (not yesterday's, not another tenant's), and only an admin of
// every tenant sees the queue depth.
func TestTenantHealth(t *testing.T) {
	f := newRoleFixture(t)
	ctx := context.Background()
	contoso, _ := f.st.TenantByName(ctx, "contoso")
	fabrikam, _ := f.st.TenantByName(ctx, "fabrikam")
	hour := time.Now().UTC().Truncate(time.Hour)
	rows := []store.UsageRow{
		{TenantID: contoso.ID, Account: "app@contoso.test", Hour: hour, Messages: 7, Recipients: 9, Failures: 2, Refusals: 3, RefusalsByReason: map[string]int64{"x": 3}},
		{TenantID: contoso.ID, Account: "app2@contoso.test", Hour: hour, Messages: 1, Recipients: 1},
		{TenantID: contoso.ID, Account: "app@contoso.test", Hour: hour.Truncate(24 * time.Hour).Add(-time.Hour), Messages: 100},
		{TenantID: fabrikam.ID, Account: "app@fabrikam.test", Hour: hour, Messages: 50},
	}
	if err := f.st.AddUsage(ctx, 0, 1, rows); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user  string
		depth int
	}{{"global", 0}, {"tadmin", -1}} {
		rec := f.as(t, tc.user, "GET", "/api/v1/tenants/contoso/health", "")
		var h health
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &h) != nil {
			t.Fatalf("health as %s: %d %s", tc.user, rec.Code, rec.Body)
		}
		if h.Messages != 8 || h.Refusals != 3 || h.Failed != 2 || h.QueueDepth != tc.depth {
			t.Errorf("health as %s = %+v; want 8 messages, 3 refusals, 2 failed, queue depth %d", tc.user, h, tc.depth)
		}
	}
}
