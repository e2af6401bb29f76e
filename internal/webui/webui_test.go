package webui

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"hve/internal/access"
	"hve/internal/admin"
	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/directory"
	"hve/internal/oauth"
	"hve/internal/password"
	"hve/internal/store"
	"hve/internal/store/sqlite"
)

const testPassword = "correct horse battery staple"

// fixture is an admin center over a fresh store with two tenants
// (contoso with contoso.test, fabrikam with fabrikam.test) and one admin
// user per role.
type fixture struct {
	ui  *UI
	st  store.Store
	srv *httptest.Server
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	svc := oauth.New(st, oauth.Config{IssuerURL: "http://hve.test"}, log)
	if err := svc.EnsureKey(ctx); err != nil {
		t.Fatal(err)
	}
	api := admin.New(st, sha256.Sum256([]byte("bootstrap")), log, admin.Options{
		Diagnoser: access.New(st, svc, nil, access.Config{}, log), Keys: svc, OAuth: svc.Handler(),
	})
	f := &fixture{st: st, now: time.Now()}
	ui, err := New(Config{API: api, Store: st, Counters: st, Log: log, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.ui = ui
	f.srv = httptest.NewServer(ui)
	t.Cleanup(f.srv.Close)
	var contosoID int64
	for _, name := range []string{"contoso", "fabrikam"} {
		tn, err := st.CreateTenant(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddDomain(ctx, directory.Domain{TenantID: tn.ID, Name: name + ".test", Type: directory.Authoritative}); err != nil {
			t.Fatal(err)
		}
		hash, _ := password.Hash("account password")
		if _, err := st.CreateAccount(ctx, directory.Account{TenantID: tn.ID, Name: "app", DisplayName: "App", Address: "app@" + name + ".test", Enabled: true, PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
		if name == "contoso" {
			contosoID = tn.ID
		}
	}
	hash, err := password.Hash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []adminauth.User{
		{Name: "global", Role: adminauth.GlobalAdmin},
		{Name: "tadmin", Role: adminauth.TenantAdmin, TenantID: contosoID},
		{Name: "reader", Role: adminauth.Reader},
		{Name: "tracer", Role: adminauth.TraceReader},
		{Name: "totp", Role: adminauth.GlobalAdmin, TOTPSecret: []byte("12345678901234567890")},
	} {
		u.PasswordHash, u.Enabled = hash, true
		if _, err := st.CreateAdminUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// browser is one cookie jar against the fixture; it does not follow
// redirects, so tests see them.
type browser struct {
	t    *testing.T
	f    *fixture
	c    *http.Client
	csrf string
}

func (f *fixture) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, f: f, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches a page and remembers its CSRF token.
func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.f.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return resp.StatusCode, string(body)
}

// post sends a form; the csrf field is added unless the form has one.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	resp, err := b.c.PostForm(b.f.srv.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// signIn signs in and fails the test unless it worked.
func (b *browser) signIn(name string) {
	b.t.Helper()
	if resp, body := b.trySignIn(name, testPassword, ""); resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("sign-in as %s: %d %s", name, resp.StatusCode, body)
	}
	if code, body := b.get("/"); code != 200 || !strings.Contains(body, "Health at a glance") {
		b.t.Fatalf("home after sign-in: %d %s", code, body)
	}
}

func (b *browser) trySignIn(name, pw, code string) (*http.Response, string) {
	b.t.Helper()
	b.get("/")
	return b.post("/signin", url.Values{"name": {name}, "password": {pw}, "totp": {code}})
}

// pages are the GET paths of every page, with the fixture's objects.
var pages = []string{"/", "/accounts", "/accounts/app@contoso.test", "/accounts/app@contoso.test/diagnose", "/mailboxes", "/groups",
	"/domains", "/routes", "/policies", "/conditional-access", "/conditional-access?user=app@contoso.test&ip=10.0.0.1&client_app=legacy",
	"/apps", "/trace", "/reports", "/queue", "/audit", "/admins", "/settings", "/webhooks", "/accounts/app@contoso.test/convert"}

func TestPagesAsGlobalAdmin(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("global")
	for _, p := range pages {
		code, body := b.get(p)
		if code != 200 {
			t.Errorf("GET %s: %d\n%s", p, code, body)
			continue
		}
		checkLabels(t, p, body)
	}
	// Built-in Conditional Access policy has an edit page.
	if code, body := b.get("/conditional-access/" + url.PathEscape(directory.BuiltInBlockLegacy) + "?tenant=contoso"); code != 200 {
		t.Errorf("CA edit page: %d %s", code, body)
	}
	if code, _ := b.get("/nope"); code != 404 {
		t.Errorf("unknown page: %d", code)
	}
}

// checkLabels checks that every form field of a page has a label.
func checkLabels(t *testing.T, page, body string) {
	t.Helper()
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`<label for="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`).FindAllString(body, -1) {
		if strings.Contains(m, `type="hidden"`) {
			continue
		}
		id := regexp.MustCompile(`\bid="([^"]+)"`).FindStringSubmatch(m)
		if id == nil || !ids[id[1]] {
			t.Errorf("%s: form field without a label: %s", page, m)
		}
	}
}

func TestSignIn(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	// Signed out, every page leads to the sign-in form.
	if code, body := b.get("/"); code != 200 || !strings.Contains(body, `action="/signin"`) {
		t.Fatalf("signed-out home: %d", code)
	}
	if resp, _ := b.post("/accounts", url.Values{}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("action signed out: %d", resp.StatusCode)
	}
	if code, _ := b.get("/accounts"); code != http.StatusSeeOther {
		t.Errorf("page signed out: %d", code)
	}
	// The sign-in form itself needs its CSRF cookie.
	b.get("/")
	if resp, _ := b.post("/signin", url.Values{"name": {"global"}, "password": {testPassword}, "csrf": {"forged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in with a forged login token: %d", resp.StatusCode)
	}
	for _, bad := range [][2]string{{"global", "wrong password"}, {"nobody", testPassword}} {
		resp, body := b.trySignIn(bad[0], bad[1], "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Sign-in failed") {
			t.Errorf("sign-in %v: %d", bad, resp.StatusCode)
		}
	}
	// The session cookie is HttpOnly and SameSite; Secure over TLS.
	resp, _ := b.trySignIn("global", testPassword, "")
	var sc *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Secure {
		t.Errorf("session cookie = %+v", sc)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "https://hve.test/", nil)
	req.TLS = &tls.ConnectionState{}
	f.ui.ServeHTTP(rec, req)
	if c := rec.Result().Cookies(); len(c) == 0 || !c[0].Secure {
		t.Errorf("cookie over TLS not Secure: %+v", c)
	}
	if h := rec.Header().Get("Content-Security-Policy"); !strings.Contains(h, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", h)
	}

	// Sign out ends the session on the server, not only in the browser.
	b.get("/")
	old := b.c.Jar.Cookies(mustURL(f.srv.URL))
	if resp, _ := b.post("/signout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	b2 := f.browser(t)
	b2.c.Jar.SetCookies(mustURL(f.srv.URL), old)
	if code, body := b2.get("/accounts"); code != http.StatusSeeOther {
		t.Errorf("old session after sign-out: %d %s", code, body)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestSessionTimeouts(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("global")
	f.now = f.now.Add(59 * time.Minute)
	if code, _ := b.get("/accounts"); code != 200 {
		t.Fatalf("after 59 idle minutes: %d", code)
	}
	f.now = f.now.Add(61 * time.Minute)
	if code, _ := b.get("/accounts"); code != http.StatusSeeOther {
		t.Errorf("after 61 idle minutes: %d, want the sign-in form", code)
	}
	b.signIn("global")
	for range 9 {
		f.now = f.now.Add(55 * time.Minute)
		b.get("/accounts")
	}
	if code, _ := b.get("/accounts"); code != http.StatusSeeOther {
		t.Errorf("after 8h: %d, want the sign-in form", code)
	}
	// Disabling a user ends its sessions at once.
	b.signIn("reader")
	ctx := context.Background()
	u, _ := f.st.AdminUserByName(ctx, "reader")
	u.Enabled = false
	f.st.UpdateAdminUser(ctx, u)
	if code, _ := b.get("/accounts"); code != http.StatusSeeOther {
		t.Errorf("disabled user: %d", code)
	}
}

func TestSignInThrottle(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	for range 5 {
		b.trySignIn("global", "wrong password", "")
	}
	if resp, _ := b.trySignIn("global", testPassword, ""); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password after 5 failures: %d, want 429", resp.StatusCode)
	}
	f.now = f.now.Add(16 * time.Minute)
	if resp, body := b.trySignIn("global", testPassword, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after the window: %d %s", resp.StatusCode, body)
	}
}

func TestSignInTOTP(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	key := []byte("12345678901234567890")
	if resp, _ := b.trySignIn("totp", testPassword, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no code: %d", resp.StatusCode)
	}
	if resp, _ := b.trySignIn("totp", testPassword, "000000"); resp.StatusCode != http.StatusUnauthorized && adminauth.TOTPAt(key, f.now) != "000000" {
		t.Errorf("wrong code: %d", resp.StatusCode)
	}
	code := adminauth.TOTPAt(key, f.now)
	if resp, body := b.trySignIn("totp", testPassword, code); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right code: %d %s", resp.StatusCode, body)
	}
	// The same code is good once.
	b2 := f.browser(t)
	if resp, _ := b2.trySignIn("totp", testPassword, code); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("replayed code: %d", resp.StatusCode)
	}
}

// fill puts values into a route pattern's wildcards.
func fill(pattern string) string {
	path := strings.TrimPrefix(pattern, "POST ")
	path = strings.ReplaceAll(path, "{address}", "app@contoso.test")
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
}

// TestCSRFOnEveryAction posts to every state-changing route of the admin
// center without the CSRF token and with a wrong one: each must refuse
// (403) and change nothing.
func TestCSRFOnEveryAction(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("global")
	actions := f.ui.Actions()
	if len(actions) < 30 {
		t.Fatalf("only %d actions registered", len(actions))
	}
	for _, a := range actions {
		path := fill(a)
		for _, token := range []string{"", "wrong-token"} {
			resp, body := b.post(path+"?tenant=contoso", url.Values{"csrf": {token}, "tenant": {"contoso"}, "name": {"x"}, "address": {"x@contoso.test"}})
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with csrf %q: %d %s", a, token, resp.StatusCode, body)
			}
		}
	}
	if list, _ := f.st.SearchAudit(context.Background(), audit.Query{}); len(list) != 0 {
		t.Errorf("forged forms changed something: %+v", list)
	}
	// The session is still good (a forged form does not sign out).
	if code, _ := b.get("/accounts"); code != 200 {
		t.Errorf("after the forgeries: %d", code)
	}
}

// TestRolesInTheUI: a reader's forms are refused by the API and change
// nothing; a tenant admin sees only its tenant, even when it asks for
// another.
func TestRolesInTheUI(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("reader")
	if _, body := b.get("/accounts?tenant=contoso"); strings.Contains(body, `method="post" action="/accounts"`) {
		t.Error("a reader is shown the create form")
	}
	for _, a := range f.ui.Actions() {
		if a == "POST /signout" {
			continue
		}
		b.get("/accounts")
		resp, _ := b.post(fill(a), url.Values{"tenant": {"contoso"}, "name": {"x"}, "address": {"x@contoso.test"}, "back": {"/accounts"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("%s as reader: %d", a, resp.StatusCode)
		}
	}
	if list, _ := f.st.SearchAudit(context.Background(), audit.Query{}); len(list) != 0 {
		t.Errorf("a reader changed something: %+v", list)
	}
	// The last refusal is shown.
	if _, body := b.get("/accounts?tenant=contoso"); !strings.Contains(body, "may not change anything") {
		t.Error("the reader's refusal is not shown")
	}

	tb := f.browser(t)
	tb.signIn("tadmin")
	_, body := tb.get("/accounts?tenant=fabrikam")
	if strings.Contains(body, "app@fabrikam.test") || !strings.Contains(body, "app@contoso.test") {
		t.Error("a tenant admin sees another tenant's accounts")
	}
	if strings.Contains(body, "fabrikam") {
		t.Error("a tenant admin is offered another tenant")
	}
	if code, _ := tb.get("/accounts/app@fabrikam.test?tenant=fabrikam"); code != http.StatusNotFound {
		t.Errorf("another tenant's account page: %d", code)
	}

	tr := f.browser(t)
	tr.signIn("tracer")
	if code, _ := tr.get("/trace?tenant=contoso"); code != 200 {
		t.Errorf("trace-reader on trace: %d", code)
	}
	if code, _ := tr.get("/accounts?tenant=contoso"); code != http.StatusForbidden {
		t.Errorf("trace-reader on accounts: %d", code)
	}
}

// TestAccountLifecycle creates, edits, disables and removes an account in
// the UI, and checks the audit log saw it as a UI change.
func TestAccountLifecycle(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("tadmin")
	b.get("/accounts?tenant=contoso")
	resp, body := b.post("/accounts", url.Values{"tenant": {"contoso"}, "name": {"Mailer"}, "address": {"mailer@contoso.test"}, "aliases": {"m1@contoso.test\nm2@contoso.test"}})
	pw := regexp.MustCompile(`id="secret">([^<]+)<`).FindStringSubmatch(body)
	if resp.StatusCode != 200 || pw == nil || len(pw[1]) < 20 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	ctx := context.Background()
	acc, err := f.st.AccountByAddress(ctx, "mailer@contoso.test")
	if err != nil || password.Verify(acc.PasswordHash, pw[1]) != nil || len(acc.Aliases) != 2 {
		t.Fatalf("created account %+v, %v", acc, err)
	}
	if code, body := b.get("/accounts/mailer@contoso.test?tenant=contoso"); code != 200 || !strings.Contains(body, "m2@contoso.test") {
		t.Fatalf("account page: %d", code)
	}
	for _, step := range []struct {
		path string
		form url.Values
	}{
		{"/accounts/mailer@contoso.test", url.Values{"display_name": {"The Mailer"}, "reply_to": {"app@contoso.test"}, "aliases": {"m1@contoso.test"}}},
		{"/accounts/mailer@contoso.test/disable", nil},
		{"/accounts/mailer@contoso.test/revoke-sessions", nil},
	} {
		form := step.form
		if form == nil {
			form = url.Values{}
		}
		form.Set("tenant", "contoso")
		form.Set("back", "/accounts/mailer@contoso.test")
		if resp, body := b.post(step.path, form); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: %d %s", step.path, resp.StatusCode, body)
		}
		if _, body := b.get("/accounts/mailer@contoso.test?tenant=contoso"); strings.Contains(body, `class="flash err"`) {
			t.Fatalf("%s failed: %s", step.path, body)
		}
	}
	acc, _ = f.st.AccountByAddress(ctx, "mailer@contoso.test")
	if acc.DisplayName != "The Mailer" || acc.Enabled || acc.ReplyTo != "app@contoso.test" || len(acc.Aliases) != 1 || acc.TokensValidFrom.IsZero() {
		t.Errorf("after the edits: %+v", acc)
	}
	if code, body := b.get("/accounts/mailer@contoso.test/diagnose?tenant=contoso"); code != 200 || !strings.Contains(body, "account locked") {
		t.Errorf("diagnose of a disabled account: %d", code)
	}
	b.post("/accounts/mailer@contoso.test/remove", url.Values{"tenant": {"contoso"}, "back": {"/accounts"}})
	if _, err := f.st.AccountByAddress(ctx, "mailer@contoso.test"); err == nil {
		t.Error("account not removed")
	}
	list, _ := f.st.SearchAudit(ctx, audit.Query{})
	if len(list) != 5 {
		t.Fatalf("audit entries = %d, want 5", len(list))
	}
	for _, e := range list {
		if e.Via != "ui" || e.Actor != "tadmin" || e.Tenant != "contoso" || strings.Contains(string(e.After), pw[1]) {
			t.Errorf("audit entry %+v", e)
		}
	}
	if _, body := b.get("/audit?tenant=contoso"); !strings.Contains(body, "account.create") || !strings.Contains(body, "account.remove") {
		t.Error("the audit page does not show the changes")
	}
}
