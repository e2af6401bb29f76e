package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"hve/internal/access"
	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/store"
)

// memStore is an in-memory Store: a fixture for the package's boundary.
// The SQLite store is tested against the real contract elsewhere.
type memStore struct {
	mu      sync.Mutex
	tenants map[int64]directory.Tenant
	apps    map[string]directory.App
	issuers []directory.Issuer
	keys    []directory.SigningKey // newest first
}

func newMemStore() *memStore {
	return &memStore{tenants: map[int64]directory.Tenant{}, apps: map[string]directory.App{}}
}

func (m *memStore) AppByAppID(ctx context.Context, appID string) (directory.App, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.apps[appID]
	if !ok {
		return directory.App{}, fmt.Errorf("app %s: %w", appID, store.ErrNotFound)
	}
	return a, nil
}

func (m *memStore) Tenant(ctx context.Context, id int64) (directory.Tenant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tenants[id]
	if !ok {
		return directory.Tenant{}, fmt.Errorf("tenant %d: %w", id, store.ErrNotFound)
	}
	return t, nil
}

func (m *memStore) Issuers(ctx context.Context, tenantID int64) ([]directory.Issuer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []directory.Issuer
	for _, i := range m.issuers {
		if tenantID == 0 || i.TenantID == tenantID {
			out = append(out, i)
		}
	}
	return out, nil
}

func (m *memStore) SigningKeys(ctx context.Context) ([]directory.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.keys), nil
}

func (m *memStore) AddSigningKey(ctx context.Context, k directory.SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.keys {
		if m.keys[i].RetiredAt.IsZero() {
			m.keys[i].RetiredAt = k.CreatedAt
		}
	}
	m.keys = append([]directory.SigningKey{k}, m.keys...)
	return nil
}

func (m *memStore) PruneSigningKeys(ctx context.Context, retiredBefore time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = slices.DeleteFunc(m.keys, func(k directory.SigningKey) bool {
		return !k.RetiredAt.IsZero() && k.RetiredAt.Before(retiredBefore)
	})
	return nil
}

// clock is a controllable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Secrets are hashed once: argon2id is slow on purpose.
var (
	secretsOnce               sync.Once
	goodSecret, expiredSecret string
	goodHash, expiredHash     string
)

func hashes(t testing.TB) {
	secretsOnce.Do(func() {
		var err error
		goodSecret, _, err = NewSecret()
		if err == nil {
			expiredSecret, _, err = NewSecret()
		}
		if err == nil {
			goodHash, err = HashSecret(goodSecret)
		}
		if err == nil {
			expiredHash, err = HashSecret(expiredSecret)
		}
		if err != nil {
			panic(err)
		}
	})
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	st      *memStore
	clk     *clock
	svc     *Service
	srv     *httptest.Server
	tenant  directory.Tenant // "default": app-1 (Mail.Send) and app-noconsent
	other   directory.Tenant // "other"
	secretX time.Time        // when app-1's good secret expires
}

func newFixture(t testing.TB) *fixture {
	hashes(t)
	f := &fixture{st: newMemStore(), clk: &clock{t: t0}}
	f.tenant = directory.Tenant{ID: 1, Name: "default"}
	f.other = directory.Tenant{ID: 2, Name: "other"}
	f.st.tenants[1], f.st.tenants[2] = f.tenant, f.other
	f.secretX = t0.Add(30 * 24 * time.Hour)
	f.st.apps["app-1"] = directory.App{ID: 1, TenantID: 1, Name: "mailer", AppID: "app-1",
		Permissions: []directory.Permission{directory.MailSend},
		Secrets: []directory.AppSecret{
			{ID: 1, Hint: expiredSecret[:3], Hash: expiredHash, ExpiresAt: t0.Add(-time.Hour)},
			{ID: 2, Hint: goodSecret[:3], Hash: goodHash, ExpiresAt: f.secretX},
		}}
	f.st.apps["app-noconsent"] = directory.App{ID: 2, TenantID: 1, Name: "new", AppID: "app-noconsent",
		Secrets: []directory.AppSecret{{ID: 3, Hint: goodSecret[:3], Hash: goodHash}}}

	var h http.Handler
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(f.srv.Close)
	f.svc = f.newService()
	h = f.svc.Handler()
	if err := f.svc.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// newService returns another node sharing the fixture's store and clock.
func (f *fixture) newService() *Service {
	return New(f.st, Config{IssuerURL: f.srv.URL + "/", Now: f.clk.Now}, slog.New(slog.DiscardHandler))
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(b, &a.body); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
	return a
}

func (f *fixture) post(t testing.TB, form url.Values) answer {
	t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func creds(id, secret string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
}

// token gets a token for app-1 over HTTP.
func (f *fixture) token(t testing.TB) string {
	t.Helper()
	a := f.post(t, creds("app-1", goodSecret))
	if a.status != 200 {
		t.Fatalf("token request: %d %v", a.status, a.body)
	}
	return a.str("access_token")
}

func kidOf(t testing.TB, token string) string {
	t.Helper()
	tok, err := jwt.ParseSigned(token, signatureAlgs)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Headers[0].KeyID
}

func TestTokenIssueAndVerify(t *testing.T) {
	f := newFixture(t)
	a := f.post(t, creds("app-1", goodSecret))
	if a.status != 200 {
		t.Fatalf("status %d: %v", a.status, a.body)
	}
	if a.str("token_type") != "Bearer" || a.body["expires_in"] != float64(3600) {
		t.Errorf("answer %v", a.body)
	}
	if a.header.Get("Cache-Control") != "no-store" || a.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", a.header)
	}
	token := a.str("access_token")

	// The claims, as a client would read them.
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := tok.UnsafeClaimsWithoutVerification(&raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"iss": f.srv.URL, "aud": "hve", "sub": "app-1", "appid": "app-1", "azp": "app-1",
		"tid": "default", "iat": float64(t0.Unix()), "nbf": float64(t0.Unix()), "exp": float64(t0.Add(time.Hour).Unix())}
	for k, v := range want {
		if raw[k] != v {
			t.Errorf("claim %s = %v, want %v", k, raw[k], v)
		}
	}
	if roles, _ := raw["roles"].([]any); len(roles) != 1 || roles[0] != "Mail.Send" {
		t.Errorf("roles = %v", raw["roles"])
	}
	if jti, _ := raw["jti"].(string); len(jti) < 16 {
		t.Errorf("jti = %v", raw["jti"])
	}
	if tok.Headers[0].KeyID == "" || tok.Headers[0].Algorithm != "ES256" {
		t.Errorf("header %+v", tok.Headers[0])
	}

	c, err := f.svc.Verify(context.Background(), token, f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	wantC := access.Claims{Issuer: f.srv.URL, AppID: "app-1", MailSend: true, IssuedAt: t0, Expires: t0.Add(time.Hour)}
	if c != wantC {
		t.Errorf("claims %+v, want %+v", c, wantC)
	}

	// A second node, sharing the store, verifies it too.
	if _, err := f.newService().Verify(context.Background(), token, f.tenant); err != nil {
		t.Errorf("other node: %v", err)
	}
}

func TestTokenScopes(t *testing.T) {
	f := newFixture(t)
	for _, scope := range []string{"", ".default", "https://outlook.office365.com/.default", "Mail.Send", "https://outlook.office.com/Mail.Send"} {
		form := creds("app-1", goodSecret)
		form.Set("scope", scope)
		if a := f.post(t, form); a.status != 200 {
			t.Errorf("scope %q: %d %v", scope, a.status, a.body)
		}
	}
}

func TestTokenErrors(t *testing.T) {
	f := newFixture(t)
	with := func(v url.Values, k, val string) url.Values {
		v.Set(k, val)
		return v
	}
	without := func(v url.Values, k string) url.Values {
		v.Del(k)
		return v
	}
	good := func() url.Values { return creds("app-1", goodSecret) }
	wrongSecretDesc := ""
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
		desc   string // a part of error_description
	}{
		{"no grant_type", without(good(), "grant_type"), 400, "invalid_request", "grant_type is missing"},
		{"password grant", with(good(), "grant_type", "password"), 400, "unsupported_grant_type", "client_credentials"},
		{"no client_id", without(good(), "client_id"), 400, "invalid_request", "client_id is missing"},
		{"no secret", without(good(), "client_secret"), 400, "invalid_request", "client_secret is missing"},
		{"bad scope", with(good(), "scope", "openid profile"), 400, "invalid_scope", "openid"},
		{"unknown app", creds("app-nope", goodSecret), 401, "invalid_client", "client_id or client_secret is wrong"},
		{"wrong secret", creds("app-1", "nope"), 401, "invalid_client", "client_id or client_secret is wrong"},
		{"expired secret", creds("app-1", expiredSecret), 401, "invalid_client", "client secret expired on " + t0.Add(-time.Hour).Format(time.RFC3339)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := f.post(t, tc.form)
			checkError(t, a, tc.status, tc.code, tc.desc)
			if tc.name == "wrong secret" {
				wrongSecretDesc = a.str("error_description")
			}
			if tc.name == "unknown app" && wrongSecretDesc != "" && a.str("error_description") != wrongSecretDesc {
				t.Errorf("unknown app and wrong secret differ: %q, %q", a.str("error_description"), wrongSecretDesc)
			}
		})
	}

	t.Run("GET", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/oauth2/token?"+good().Encode(), nil)
		checkError(t, do(t, req), 400, "invalid_request", "POST")
	})
	t.Run("JSON body", func(t *testing.T) {
		req, _ := http.NewRequest("POST", f.srv.URL+"/oauth2/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
		req.Header.Set("Content-Type", "application/json")
		checkError(t, do(t, req), 400, "invalid_request", "x-www-form-urlencoded")
	})
	t.Run("repeated parameter", func(t *testing.T) {
		form := good()
		form.Add("client_id", "app-2")
		checkError(t, f.post(t, form), 400, "invalid_request", "more than once")
	})
	t.Run("secret in query", func(t *testing.T) {
		// Only the body counts.
		req, _ := http.NewRequest("POST", f.srv.URL+"/oauth2/token?client_secret="+goodSecret,
			strings.NewReader(without(good(), "client_secret").Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		checkError(t, do(t, req), 400, "invalid_request", "client_secret is missing")
	})
}

func checkError(t *testing.T, a answer, status int, code, desc string) {
	t.Helper()
	if a.status != status || a.str("error") != code || !strings.Contains(a.str("error_description"), desc) {
		t.Errorf("got %d %v, want %d %s %q", a.status, a.body, status, code, desc)
	}
	if a.header.Get("Cache-Control") != "no-store" || a.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", a.header)
	}
}

func TestSecretExpiry(t *testing.T) {
	f := newFixture(t)
	f.token(t)
	f.clk.Advance(f.secretX.Sub(t0))
	a := f.post(t, creds("app-1", goodSecret))
	checkError(t, a, 401, "invalid_client", "client secret expired on "+f.secretX.Format(time.RFC3339))
}

func TestBasicAuth(t *testing.T) {
	f := newFixture(t)
	basic := func(form url.Values, id, secret string) answer {
		req, _ := http.NewRequest("POST", f.srv.URL+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		return do(t, req)
	}
	grant := url.Values{"grant_type": {"client_credentials"}, "scope": {"https://outlook.office365.com/.default"}}
	a := basic(grant, "app-1", goodSecret)
	if a.status != 200 {
		t.Fatalf("basic: %d %v", a.status, a.body)
	}
	if _, err := f.svc.Verify(context.Background(), a.str("access_token"), f.tenant); err != nil {
		t.Error(err)
	}

	a = basic(grant, "app-1", "wrong")
	checkError(t, a, 401, "invalid_client", "wrong")
	if a.header.Get("WWW-Authenticate") == "" {
		t.Error("no WWW-Authenticate on a failed Basic authentication")
	}

	both := url.Values{"grant_type": {"client_credentials"}, "client_secret": {goodSecret}}
	checkError(t, basic(both, "app-1", goodSecret), 400, "invalid_request", "both")
}

// sign signs claims with the given key, as any issuer would.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, c any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ownClaims are the claims hve would issue for app-1 in tenant default.
func (f *fixture) ownClaims() map[string]any {
	now := f.clk.Now()
	return map[string]any{"iss": f.srv.URL, "aud": Audience, "sub": "app-1", "appid": "app-1", "azp": "app-1",
		"tid": "default", "roles": []string{"Mail.Send"}, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "jti": "x"}
}

// signOwn signs claims with hve's current key.
func (f *fixture) signOwn(t testing.TB, c map[string]any) string {
	t.Helper()
	keys, _ := f.st.SigningKeys(context.Background())
	sk, priv, err := parseKey(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, sk.alg, priv, sk.id, c)
}

func wantErr(t *testing.T, err, kind error, text string) {
	t.Helper()
	if !errors.Is(err, kind) || !strings.Contains(fmt.Sprint(err), text) {
		t.Errorf("error %v, want %v with %q", err, kind, text)
	}
}

func TestVerifyOwn(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	token := f.token(t)

	_, err := f.svc.Verify(ctx, token, f.other)
	wantErr(t, err, access.ErrTokenInvalid, "issued for tenant default, not other")

	c := f.ownClaims()
	c["aud"] = "api://something-else"
	_, err = f.svc.Verify(ctx, f.signOwn(t, c), f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "audience api://something-else is not hve")

	// The signature over other claims.
	parts := strings.Split(token, ".")
	forged := f.ownClaims()
	forged["tid"] = "other"
	payload, _ := json.Marshal(forged)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	_, err = f.svc.Verify(ctx, strings.Join(parts, "."), f.other)
	wantErr(t, err, access.ErrTokenInvalid, "signature does not verify")

	// A key hve does not have, under hve's issuer.
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err = f.svc.Verify(ctx, sign(t, jose.ES256, stranger, "nope", f.ownClaims()), f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "key nope, which hve does not have")
	// ... or hve's kid on a stranger's key.
	_, err = f.svc.Verify(ctx, sign(t, jose.ES256, stranger, kidOf(t, token), f.ownClaims()), f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "signature does not verify")

	for _, bad := range []string{"", "abc", "a.b.c", strings.Join(parts[:2], ".") + "."} {
		_, err = f.svc.Verify(ctx, bad, f.tenant)
		wantErr(t, err, access.ErrTokenInvalid, "")
	}
	// An unsigned token (alg none) and an HMAC one are refused outright.
	hs := sign(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), kidOf(t, token), f.ownClaims())
	_, err = f.svc.Verify(ctx, hs, f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "not a signed JWT")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."
	_, err = f.svc.Verify(ctx, none, f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "not a signed JWT")

	c = f.ownClaims()
	delete(c, "exp")
	_, err = f.svc.Verify(ctx, f.signOwn(t, c), f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "no expiry")

	c = f.ownClaims()
	c["nbf"] = f.clk.Now().Add(5 * time.Minute).Unix()
	_, err = f.svc.Verify(ctx, f.signOwn(t, c), f.tenant)
	wantErr(t, err, access.ErrTokenExpired, "not valid before")

	// Expiry, with a minute of leeway.
	f.clk.Advance(time.Hour + 30*time.Second)
	if _, err := f.svc.Verify(ctx, token, f.tenant); err != nil {
		t.Errorf("within the leeway: %v", err)
	}
	f.clk.Advance(time.Minute)
	_, err = f.svc.Verify(ctx, token, f.tenant)
	wantErr(t, err, access.ErrTokenExpired, "token expired at "+t0.Add(time.Hour).Format(time.RFC3339))
}

func TestNoConsentNoMailSend(t *testing.T) {
	f := newFixture(t)
	a := f.post(t, creds("app-noconsent", goodSecret))
	if a.status != 200 {
		t.Fatalf("%d %v", a.status, a.body)
	}
	var raw map[string]any
	tok, _ := jwt.ParseSigned(a.str("access_token"), signatureAlgs)
	tok.UnsafeClaimsWithoutVerification(&raw)
	if _, ok := raw["roles"]; ok {
		t.Errorf("roles = %v, want none", raw["roles"])
	}
	c, err := f.svc.Verify(context.Background(), a.str("access_token"), f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	if c.MailSend || c.AppID != "app-noconsent" {
		t.Errorf("claims %+v", c)
	}
}

func (f *fixture) jwks(t testing.TB) []string {
	t.Helper()
	resp, err := http.Get(f.srv.URL + "/oauth2/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if k["alg"] != "ES256" || k["use"] != "sig" || k["kty"] != "EC" || k["d"] != nil {
			t.Errorf("key %v", k)
		}
		kids = append(kids, k["kid"].(string))
	}
	return kids
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := f.token(t)
	oldKid := kidOf(t, old)

	f.clk.Advance(10 * time.Minute)
	newKid, err := f.svc.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newKid == oldKid {
		t.Fatal("rotation kept the kid")
	}
	if _, err := f.svc.Verify(ctx, old, f.tenant); err != nil {
		t.Errorf("token of the retired key: %v", err)
	}
	if kids := f.jwks(t); !slices.Equal(kids, []string{newKid, oldKid}) {
		t.Errorf("JWKS kids %v, want %v", kids, []string{newKid, oldKid})
	}
	fresh := f.token(t)
	if kidOf(t, fresh) != newKid {
		t.Errorf("new token signed by %s, want %s", kidOf(t, fresh), newKid)
	}

	// Pruning keeps the old key while its tokens may live...
	f.clk.Advance(time.Hour)
	if err := f.svc.PruneKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if kids := f.jwks(t); len(kids) != 2 {
		t.Errorf("pruned too early: %v", kids)
	}
	// ... and removes it after.
	f.clk.Advance(keyCacheTTL + leeway + time.Second)
	if err := f.svc.PruneKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if kids := f.jwks(t); !slices.Equal(kids, []string{newKid}) {
		t.Errorf("JWKS kids after pruning %v, want %v", kids, []string{newKid})
	}
	_, err = f.svc.Verify(ctx, old, f.tenant)
	wantErr(t, err, access.ErrTokenExpired, "expired")
}

// TestRotationOnAnotherNode: node B rotates; node A learns the new key from
// the store when a token carries it.
func TestRotationOnAnotherNode(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.svc
	b := f.newService()
	kid, err := b.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := b.issue(ctx, f.st.apps["app-1"], f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	// A loaded its keys just now: it does not reload at once...
	_, err = a.Verify(ctx, tok, f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "hve does not have")
	// ... but a few seconds later.
	f.clk.Advance(keyReloadInterval)
	if _, err := a.Verify(ctx, tok, f.tenant); err != nil {
		t.Errorf("after the reload interval: %v", err)
	}
	// A signs with the new key once its cache expires.
	f.clk.Advance(keyCacheTTL)
	if got := kidOf(t, f.token(t)); got != kid {
		t.Errorf("A signs with %s, want %s", got, kid)
	}
}

func TestEnsureKeyKeepsCurrent(t *testing.T) {
	f := newFixture(t)
	before, _ := f.st.SigningKeys(context.Background())
	if err := f.newService().EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _ := f.st.SigningKeys(context.Background())
	if len(before) != 1 || len(after) != 1 || before[0].ID != after[0].ID {
		t.Errorf("keys before %d, after %d", len(before), len(after))
	}
}

func TestDiscovery(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest("GET", f.srv.URL+"/.well-known/openid-configuration", nil)
	a := do(t, req)
	if a.status != 200 {
		t.Fatalf("%d %v", a.status, a.body)
	}
	for k, v := range map[string]string{"issuer": f.srv.URL, "token_endpoint": f.srv.URL + "/oauth2/token", "jwks_uri": f.srv.URL + "/oauth2/keys"} {
		if a.str(k) != v {
			t.Errorf("%s = %q, want %q", k, a.str(k), v)
		}
	}
	for k, v := range map[string]string{"grant_types_supported": "client_credentials",
		"token_endpoint_auth_methods_supported": "client_secret_basic", "id_token_signing_alg_values_supported": "ES256"} {
		if l, _ := a.body[k].([]any); !slices.Contains(l, any(v)) {
			t.Errorf("%s = %v, want %s in it", k, a.body[k], v)
		}
	}
	if kids := f.jwks(t); len(kids) != 1 {
		t.Errorf("JWKS kids %v", kids)
	}
}

func TestNewSecret(t *testing.T) {
	s, hint, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, _, _ := NewSecret()
	if len(s) != 40 || !strings.HasPrefix(s, hint) || len(hint) != 3 || s == s2 || strings.ContainsAny(s, "+/=") {
		t.Errorf("secret %q hint %q", s, hint)
	}
	h, err := HashSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	if password.Verify(h, s) != nil || !strings.HasPrefix(h, "$argon2id$") {
		t.Errorf("hash %q does not verify", h)
	}
}

// extIssuer is an external OpenID Connect issuer.
type extIssuer struct {
	srv *httptest.Server

	mu          sync.Mutex
	keys        []jose.JSONWebKey // published
	jwksFetches int
}

func newExtIssuer(t *testing.T) *extIssuer {
	e := &extIssuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": e.srv.URL, "jwks_uri": e.srv.URL + "/discovery/keys"})
	})
	mux.HandleFunc("GET /discovery/keys", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.jwksFetches++
		// A symmetric key and an encryption key, which must be ignored.
		set := map[string]any{"keys": []any{
			map[string]string{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
			map[string]string{"kty": "weird", "kid": "unknown-kind"},
		}}
		for _, k := range e.keys {
			set["keys"] = append(set["keys"].([]any), k)
		}
		json.NewEncoder(w).Encode(set)
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *extIssuer) publish(keys ...jose.JSONWebKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys = keys
}

func (e *extIssuer) fetches() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.jwksFetches
}

func TestExternalIssuer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ext := newExtIssuer(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ext.publish(
		jose.JSONWebKey{Key: rsaKey.Public(), KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: ecKey.Public(), KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
	)
	// Configured with a trailing slash the tokens do not have.
	f.st.issuers = []directory.Issuer{
		{ID: 1, TenantID: 1, URL: ext.srv.URL + "/", Audience: "api://hve"},
		{ID: 2, TenantID: 2, URL: ext.srv.URL, Audience: "api://hve", Role: "SMTP.Send"},
	}
	claims := func(mod func(map[string]any)) map[string]any {
		now := f.clk.Now()
		c := map[string]any{"iss": ext.srv.URL, "aud": []string{"api://hve", "other"}, "azp": "ext-app",
			"roles": []string{"Mail.Send"}, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}

	c, err := f.svc.Verify(ctx, sign(t, jose.RS256, rsaKey, "rsa-1", claims(nil)), f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	want := access.Claims{Issuer: ext.srv.URL, AppID: "ext-app", MailSend: true, IssuedAt: t0, Expires: t0.Add(time.Hour)}
	if c != want {
		t.Errorf("claims %+v, want %+v", c, want)
	}
	c, err = f.svc.Verify(ctx, sign(t, jose.ES256, ecKey, "ec-1", claims(func(c map[string]any) { c["appid"] = "v1-app" })), f.tenant)
	if err != nil || c.AppID != "v1-app" || !c.MailSend {
		t.Errorf("ES256: %+v %v", c, err)
	}

	_, err = f.svc.Verify(ctx, sign(t, jose.RS256, rsaKey, "rsa-1", claims(func(c map[string]any) { c["aud"] = "api://else" })), f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "audience api://else is not api://hve")

	c, err = f.svc.Verify(ctx, sign(t, jose.RS256, rsaKey, "rsa-1", claims(func(c map[string]any) { delete(c, "roles") })), f.tenant)
	if err != nil || c.MailSend {
		t.Errorf("no roles: %+v %v", c, err)
	}

	c, err = f.svc.Verify(ctx, sign(t, jose.RS256, rsaKey, "rsa-1", claims(func(c map[string]any) {
		delete(c, "roles")
		delete(c, "azp")
		c["client_id"] = "okta-app"
		c["scp"] = "openid Mail.Send"
	})), f.tenant)
	if err != nil || !c.MailSend || c.AppID != "okta-app" {
		t.Errorf("scp: %+v %v", c, err)
	}

	// Tenant other trusts the issuer with role SMTP.Send, as scp array.
	c, err = f.svc.Verify(ctx, sign(t, jose.RS256, rsaKey, "rsa-1", claims(func(c map[string]any) {
		c["scp"] = []string{"SMTP.Send"}
	})), f.other)
	if err != nil || !c.MailSend {
		t.Errorf("custom role: %+v %v", c, err)
	}
	f.st.issuers = f.st.issuers[:1]
	_, err = f.svc.Verify(ctx, sign(t, jose.RS256, rsaKey, "rsa-1", claims(nil)), f.other)
	wantErr(t, err, access.ErrTokenInvalid, "issuer "+ext.srv.URL+" is not trusted by tenant other")

	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, err = f.svc.Verify(ctx, sign(t, jose.RS256, stranger, "rsa-1", claims(nil)), f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "signature does not verify")
	// A public key must not serve as an HMAC secret.
	_, err = f.svc.Verify(ctx, sign(t, jose.HS256, []byte("secretsecretsecretsecretsecret!!"), "hmac", claims(nil)), f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "not a signed JWT")

	_, err = f.svc.Verify(ctx, sign(t, jose.RS256, rsaKey, "rsa-1", claims(func(c map[string]any) {
		c["exp"] = f.clk.Now().Add(-2 * time.Minute).Unix()
	})), f.tenant)
	wantErr(t, err, access.ErrTokenExpired, "expired")

	// Rotation at the issuer: an unknown kid refetches the keys, at most
	// once every remoteRefetchInterval.
	f.clk.Advance(remoteRefetchInterval)
	fetches := ext.fetches()
	_, err = f.svc.Verify(ctx, sign(t, jose.RS256, stranger, "made-up", claims(nil)), f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "does not publish")
	if ext.fetches() != fetches+1 {
		t.Errorf("fetches %d, want %d", ext.fetches(), fetches+1)
	}
	rsa2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ext.publish(jose.JSONWebKey{Key: rsa2.Public(), KeyID: "rsa-2", Algorithm: "RS256", Use: "sig"})
	rotated := sign(t, jose.RS256, rsa2, "rsa-2", claims(nil))
	_, err = f.svc.Verify(ctx, rotated, f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "does not publish")
	if ext.fetches() != fetches+1 {
		t.Errorf("refetched within the interval: %d fetches", ext.fetches())
	}
	f.clk.Advance(remoteRefetchInterval)
	if _, err := f.svc.Verify(ctx, sign(t, jose.RS256, rsa2, "rsa-2", claims(nil)), f.tenant); err != nil {
		t.Errorf("after rotation: %v", err)
	}
	if ext.fetches() != fetches+2 {
		t.Errorf("fetches %d, want %d", ext.fetches(), fetches+2)
	}
}

func TestExternalIssuerDown(t *testing.T) {
	f := newFixture(t)
	ext := newExtIssuer(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.st.issuers = []directory.Issuer{{ID: 1, TenantID: 1, URL: ext.srv.URL, Audience: "api://hve"}}
	tok := sign(t, jose.ES256, key, "k", map[string]any{"iss": ext.srv.URL, "aud": "api://hve", "azp": "a",
		"exp": f.clk.Now().Add(time.Hour).Unix()})
	ext.srv.Close()
	_, err := f.svc.Verify(context.Background(), tok, f.tenant)
	wantErr(t, err, access.ErrTokenInvalid, "cannot get the keys of issuer")
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	token := f.token(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.svc.Verify(ctx, token, f.tenant); err != nil {
			b.Fatal(err)
		}
	}
}
