package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"hve/internal/store/sqlite"
)

// send makes one request with the admin token and returns the status and
// the body.
func send(t *testing.T, a *API, method, path string, body any) (int, string) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// mustSend is send that fails the test unless the status is want.
func mustSend(t *testing.T, a *API, want int, method, path string, body any) map[string]any {
	t.Helper()
	code, out := send(t, a, method, path, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, out)
	}
	var m map[string]any
	json.Unmarshal([]byte(out), &m)
	return m
}

const tb = "/api/v1/tenants/default"

// setupAccount makes the default tenant with contoso.test and the HVE
// account app@contoso.test.
func setupAccount(t *testing.T, a *API) {
	t.Helper()
	mustSend(t, a, 201, "POST", "/api/v1/tenants", map[string]any{"name": "default"})
	mustSend(t, a, 201, "POST", tb+"/domains", map[string]any{"name": "contoso.test"})
	mustSend(t, a, 201, "POST", tb+"/accounts", map[string]any{"name": "App", "address": "app@contoso.test"})
}

func TestSecretsAreNotLogged(t *testing.T) {
	var logs bytes.Buffer
	a, _ := newTestAPILog(t, slog.New(slog.NewTextHandler(&logs, nil)))
	setupAccount(t, a)
	app := mustSend(t, a, 201, "POST", tb+"/apps", map[string]any{"name": "Payroll"})
	sec := mustSend(t, a, 201, "POST", tb+"/apps/"+app["app_id"].(string)+"/secrets", map[string]any{"expires": "30d"})
	mustSend(t, a, 200, "PATCH", tb+"/accounts/app@contoso.test", map[string]any{"password": "a-new-password"})
	for _, secret := range []string{app["secret"].(string), sec["secret"].(string), "a-new-password"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds a secret:\n%s", logs.String())
		}
	}
	for _, action := range []string{"action=app.create", "action=app.secret-add", "action=account.update"} {
		if !strings.Contains(logs.String(), "admin change") || !strings.Contains(logs.String(), action) {
			t.Errorf("no admin change %s in the log:\n%s", action, logs.String())
		}
	}
}

func TestAllowedAppsLimit(t *testing.T) {
	a, _ := newTestAPI(t)
	setupAccount(t, a)
	path := tb + "/accounts/app@contoso.test/allowed-apps"
	for i := range 11 {
		app := mustSend(t, a, 201, "POST", tb+"/apps", map[string]any{"name": fmt.Sprint("app ", i)})
		code, out := send(t, a, "POST", path, map[string]any{"app": app["app_id"]})
		if i < 10 && code != 200 {
			t.Fatalf("allowing app %d: %d %s", i+1, code, out)
		}
		if i == 10 && (code != 400 || !strings.Contains(out, "already allows 10 apps") || !strings.Contains(out, "disallow-app")) {
			t.Errorf("allowing an 11th app: %d %s; want 400 saying the limit and how to make room", code, out)
		}
	}
}

func TestUnknownAppNamesBothForms(t *testing.T) {
	a, _ := newTestAPI(t)
	setupAccount(t, a)
	code, out := send(t, a, "POST", tb+"/accounts/app@contoso.test/allowed-apps", map[string]any{"app": "0000-typo"})
	if code != 400 || !strings.Contains(out, `\"0000-typo\" is neither the app id nor the object id of an app registration in tenant default`) ||
		!strings.Contains(out, "hve app list") {
		t.Errorf("allow-app of an unknown id: %d %s", code, out)
	}
	code, out = send(t, a, "DELETE", tb+"/accounts/app@contoso.test/allowed-apps/0000-typo", nil)
	if code != 404 || !strings.Contains(out, "neither the app id nor the object id") {
		t.Errorf("disallow-app of an unknown id: %d %s", code, out)
	}
}

// TestWithoutNodeParts: an API without a token service, checker or
// sessions says so rather than failing obscurely.
func TestWithoutNodeParts(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := New(st, sha256.Sum256([]byte(testToken)), slog.New(slog.DiscardHandler), Options{})
	setupAccount(t, a)
	if code, out := send(t, a, "GET", tb+"/accounts/app@contoso.test/diagnose", nil); code != 503 || !strings.Contains(out, "unavailable") {
		t.Errorf("diagnose without a checker: %d %s", code, out)
	}
	if code, out := send(t, a, "POST", "/api/v1/oauth/rotate-key", nil); code != 503 {
		t.Errorf("rotate-key without a token service: %d %s", code, out)
	}
	if r := mustSend(t, a, 200, "POST", tb+"/accounts/app@contoso.test/revoke-sessions", nil); r["sessions_closed"] != float64(0) {
		t.Errorf("revoke-sessions without sessions = %v", r)
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("POST", "/oauth2/token", strings.NewReader("grant_type=client_credentials")))
	if rec.Code != 503 {
		t.Errorf("token endpoint without a token service: %d %s", rec.Code, rec.Body)
	}
}

// TestTokenEndpointIsPublic: an app gets a token with its own credentials,
// without the admin token, and other methods get an RFC 6749 error.
func TestTokenEndpointIsPublic(t *testing.T) {
	a, _ := newTestAPI(t)
	setupAccount(t, a)
	app := mustSend(t, a, 201, "POST", tb+"/apps", map[string]any{"name": "Payroll"})
	mustSend(t, a, 200, "POST", tb+"/apps/"+app["object_id"].(string)+"/permissions", map[string]any{"permission": "mail.send"})
	srv := httptest.NewServer(a)
	defer srv.Close()
	resp, err := http.PostForm(srv.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {app["app_id"].(string)}, "client_secret": {app["secret"].(string)}, "scope": {"https://outlook.office365.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.TokenType != "Bearer" || strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("token: %d %+v %v", resp.StatusCode, tok, err)
	}
	get, err := http.Get(srv.URL + "/oauth2/token")
	if err != nil {
		t.Fatal(err)
	}
	defer get.Body.Close()
	var e map[string]string
	json.NewDecoder(get.Body).Decode(&e)
	if get.StatusCode != 400 || e["error"] != "invalid_request" {
		t.Errorf("GET /oauth2/token: %d %v; want 400 invalid_request", get.StatusCode, e)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2y":                   now.AddDate(2, 0, 0),
		"26w":                  now.AddDate(0, 0, 182),
		"90d":                  now.AddDate(0, 0, 90),
		"720h":                 now.Add(720 * time.Hour),
		"2027-03-01":           time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC),
		"2027-03-01T08:00:00Z": time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC),
	} {
		got, err := ParseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "0d", "-1y", "2026-01-01", "-5h", "y"} {
		if got, err := ParseExpiry(in, now); err == nil {
			t.Errorf("ParseExpiry(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseDate(t *testing.T) {
	if got, err := ParseDate("2026-11-23"); err != nil || !got.Equal(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseDate(date) = %v, %v", got, err)
	}
	if got, err := ParseDate("2026-11-23T10:00:00+02:00"); err != nil || got.Location() != time.UTC || got.Hour() != 8 {
		t.Errorf("ParseDate(RFC 3339) = %v, %v", got, err)
	}
	for _, in := range []string{"2026-13-01", "23.11.2026", "tomorrow", ""} {
		if _, err := ParseDate(in); err == nil || !strings.Contains(err.Error(), "2026-11-23") {
			t.Errorf("ParseDate(%q) error = %v, want one showing the forms", in, err)
		}
	}
}
