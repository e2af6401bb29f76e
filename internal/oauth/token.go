package oauth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/store"
)

// Handler serves the token endpoint (POST /oauth2/token), the discovery
// document (GET /.well-known/openid-configuration) and the public keys
// (GET /oauth2/keys). Mount it at the root of the server IssuerURL names.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	// No method in the pattern: a GET must get an RFC 6749 error, not the
	// mux's 405 page.
	mux.HandleFunc("/oauth2/token", s.serveToken)
	mux.HandleFunc("GET /oauth2/keys", s.serveKeys)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveDiscovery)
	return mux
}

// tokenResponse is the successful answer of the token endpoint (RFC 6749
// section 5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// tokenError is an error answer of the token endpoint (RFC 6749 section
// 5.2). reason, for the log only, may say more than description.
type tokenError struct {
	status      int
	code        string
	description string
	reason      string
	basic       bool // the client authenticated with HTTP Basic
}

func (e *tokenError) Error() string { return e.code + ": " + e.description }

func badRequest(code, format string, args ...any) *tokenError {
	return &tokenError{status: http.StatusBadRequest, code: code, description: fmt.Sprintf(format, args...)}
}

// badClient does not say whether the app is unknown or the secret wrong, so
// that the endpoint cannot be used to find out which app ids exist.
func badClient(reason string) *tokenError {
	return &tokenError{status: http.StatusUnauthorized, code: "invalid_client",
		description: "client authentication failed: the client_id or client_secret is wrong", reason: reason}
}

func serverError(err error) *tokenError {
	return &tokenError{status: http.StatusInternalServerError, code: "server_error",
		description: "the token service failed; see the hve log", reason: err.Error()}
}

// maxFormBytes bounds a token request body: it holds a few short fields.
const maxFormBytes = 64 << 10

func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	// Tokens and errors alike must not be cached (RFC 6749 section 5.1).
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	resp, clientID, terr := s.token(w, r)
	if terr != nil {
		s.log.Info("oauth token refused", "client_id", clip(clientID), "error", terr.code,
			"reason", cmp.Or(terr.reason, terr.description), "remote", r.RemoteAddr)
		if terr.basic && terr.status == http.StatusUnauthorized {
			// RFC 6749 section 5.2: a client that used the Authorization
			// header gets the scheme it used back.
			w.Header().Set("WWW-Authenticate", `Basic realm="hve"`)
		}
		writeJSON(w, terr.status, map[string]string{"error": terr.code, "error_description": terr.description})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// token handles one token request; clientID is for the log.
func (s *Service) token(w http.ResponseWriter, r *http.Request) (resp tokenResponse, clientID string, terr *tokenError) {
	if r.Method != http.MethodPost {
		return resp, "", badRequest("invalid_request", "the token endpoint takes POST, not %s", r.Method)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return resp, "", badRequest("invalid_request", "the request must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return resp, "", badRequest("invalid_request", "the form cannot be read: %v", err)
	}
	// Only the body counts: secrets do not belong in URLs (RFC 6749
	// section 2.3.1).
	form := r.PostForm
	for k, v := range form {
		if len(v) > 1 {
			return resp, "", badRequest("invalid_request", "parameter %s is given more than once", clip(k))
		}
	}

	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		return resp, "", badRequest("invalid_request", "grant_type is missing")
	default:
		return resp, "", badRequest("unsupported_grant_type", "grant_type %q is not supported: use client_credentials", clip(gt))
	}

	clientID, secret, basic, terr := clientCredentials(r, form)
	if terr != nil {
		return resp, clientID, terr
	}
	if !scopeOK(form.Get("scope")) {
		return resp, clientID, badRequest("invalid_scope",
			"scope %q is not valid: ask for .default (e.g. https://outlook.office365.com/.default) or Mail.Send", clip(form.Get("scope")))
	}

	app, tenant, terr := s.authenticate(r.Context(), clientID, secret)
	if terr != nil {
		terr.basic = basic
		return resp, clientID, terr
	}
	tok, kid, err := s.issue(r.Context(), app, tenant)
	if err != nil {
		return resp, clientID, serverError(err)
	}
	s.log.Info("oauth token issued", "app", app.AppID, "tenant", tenant.Name, "kid", kid,
		"roles", len(app.Permissions), "remote", r.RemoteAddr)
	return tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(s.cfg.TokenLifetime / time.Second)}, clientID, nil
}

// clientCredentials reads the client id and secret from the body
// (client_secret_post) or the Authorization header (client_secret_basic).
func clientCredentials(r *http.Request, form url.Values) (id, secret string, basic bool, terr *tokenError) {
	id, secret = form.Get("client_id"), form.Get("client_secret")
	if bid, bsecret, ok := r.BasicAuth(); ok {
		// RFC 6749 section 2.3.1: both are form-encoded before being put in
		// the header. Clients that skip that still work with hve's secrets,
		// which are URL-safe.
		bid, bsecret = formDecode(bid), formDecode(bsecret)
		if secret != "" {
			return bid, "", true, badRequest("invalid_request",
				"client credentials are given both in the Authorization header and in the body: use one")
		}
		if id != "" && id != bid {
			return bid, "", true, badRequest("invalid_request", "client_id in the body differs from the one in the Authorization header")
		}
		id, secret, basic = bid, bsecret, true
	}
	if id == "" {
		return "", "", basic, badRequest("invalid_request", "client_id is missing")
	}
	if secret == "" {
		return id, "", basic, badRequest("invalid_request", "client_secret is missing")
	}
	return id, secret, basic, nil
}

func formDecode(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

// scopeOK accepts what clients written for Entra ID ask for: nothing,
// .default, <resource>/.default (https://outlook.office365.com/.default),
// or a scope naming Mail.Send. What the token grants is decided by the
// app's consented permissions, not by the scope.
func scopeOK(scope string) bool {
	for _, sc := range strings.Fields(scope) {
		if sc != ".default" && !strings.HasSuffix(sc, "/.default") && !strings.Contains(sc, string(directory.MailSend)) {
			return false
		}
	}
	return true
}

// authenticate finds the app and checks the secret against each of its
// unexpired secrets.
func (s *Service) authenticate(ctx context.Context, clientID, secret string) (directory.App, directory.Tenant, *tokenError) {
	app, err := s.st.AppByAppID(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the time of one verification anyway, so that timing does
		// not tell unknown apps from wrong secrets either.
		_ = password.Verify(s.dummy(), secret)
		return app, directory.Tenant{}, badClient("no app has this client_id")
	}
	if err != nil {
		return app, directory.Tenant{}, serverError(fmt.Errorf("looking up app %s: %w", clip(clientID), err))
	}
	now := s.now()
	var expired []directory.AppSecret
	matched := false
	for _, sec := range app.Secrets {
		if !sec.ExpiresAt.IsZero() && !now.Before(sec.ExpiresAt) {
			expired = append(expired, sec)
			continue
		}
		if s.secretMatches(app, sec, secret) {
			matched = true
			break
		}
	}
	if !matched {
		// Telling an admin that the secret expired saves a lot of
		// guessing; only someone who knows the secret learns it. Only the
		// secrets whose hint fits are tried, to spare argon2 runs.
		for _, sec := range expired {
			if strings.HasPrefix(secret, sec.Hint) && s.secretMatches(app, sec, secret) {
				return app, directory.Tenant{}, &tokenError{status: http.StatusUnauthorized, code: "invalid_client",
					description: fmt.Sprintf("client secret expired on %s: add a new secret to the app",
						sec.ExpiresAt.UTC().Format(time.RFC3339)),
					reason: fmt.Sprintf("secret %d (%s...) of app %s expired", sec.ID, sec.Hint, app.AppID)}
			}
		}
		return app, directory.Tenant{}, badClient(fmt.Sprintf("wrong secret for app %s", app.AppID))
	}
	tenant, err := s.st.Tenant(ctx, app.TenantID)
	if err != nil {
		return app, tenant, serverError(fmt.Errorf("looking up tenant %d of app %s: %w", app.TenantID, app.AppID, err))
	}
	return app, tenant, nil
}

func (s *Service) secretMatches(app directory.App, sec directory.AppSecret, secret string) bool {
	err := password.Verify(sec.Hash, secret)
	if err != nil && !errors.Is(err, password.ErrMismatch) {
		s.log.Error("oauth client secret hash is unreadable", "app", app.AppID, "secret", sec.ID, "err", err)
	}
	return err == nil
}

// dummy returns a hash to verify against when there is no real one.
func (s *Service) dummy() string {
	s.dummyOnce.Do(func() {
		h, err := password.Hash("hve-dummy-secret")
		if err != nil {
			s.log.Error("hashing dummy secret", "err", err)
		}
		s.dummyHash = h
	})
	return s.dummyHash
}

// claims are the claims of a token, as hve issues them and as the verifier
// reads them (from hve or an external issuer).
type claims struct {
	Issuer    string           `json:"iss,omitempty"`
	Subject   string           `json:"sub,omitempty"`
	Audience  jwt.Audience     `json:"aud,omitempty"`
	Expiry    *jwt.NumericDate `json:"exp,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat,omitempty"`
	ID        string           `json:"jti,omitempty"`
	AppID     string           `json:"appid,omitempty"`
	AZP       string           `json:"azp,omitempty"`
	ClientID  string           `json:"client_id,omitempty"`
	Tenant    string           `json:"tid,omitempty"`
	Roles     stringList       `json:"roles,omitempty"`
	Scope     stringList       `json:"scp,omitempty"`
}

// issue signs a token for the app; it returns the token and its kid.
func (s *Service) issue(ctx context.Context, app directory.App, tenant directory.Tenant) (string, string, error) {
	key, err := s.currentKey(ctx)
	if err != nil {
		return "", "", err
	}
	jti, err := randomID(16)
	if err != nil {
		return "", "", err
	}
	now := s.now()
	c := claims{
		Issuer:    s.issuer,
		Subject:   app.AppID,
		Audience:  jwt.Audience{Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(s.cfg.TokenLifetime)),
		ID:        jti,
		AppID:     app.AppID,
		AZP:       app.AppID,
		Tenant:    tenant.Name,
	}
	for _, p := range app.Permissions {
		c.Roles = append(c.Roles, string(p))
	}
	tok, err := jwt.Signed(key.signer).Claims(c).Serialize()
	if err != nil {
		return "", "", fmt.Errorf("signing token with key %s: %w", key.id, err)
	}
	return tok, key.id, nil
}

// discovery is the OpenID Connect discovery document.
type discovery struct {
	Issuer           string   `json:"issuer"`
	TokenEndpoint    string   `json:"token_endpoint"`
	JWKSURI          string   `json:"jwks_uri"`
	GrantTypes       []string `json:"grant_types_supported"`
	TokenAuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	SigningAlgs      []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypes    []string `json:"response_types_supported"`
	SubjectTypes     []string `json:"subject_types_supported"`
	ScopesSupported  []string `json:"scopes_supported"`
	ClaimsSupported  []string `json:"claims_supported"`
}

func (s *Service) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, discovery{
		Issuer:           s.issuer,
		TokenEndpoint:    s.issuer + "/oauth2/token",
		JWKSURI:          s.issuer + "/oauth2/keys",
		GrantTypes:       []string{"client_credentials"},
		TokenAuthMethods: []string{"client_secret_basic", "client_secret_post"},
		SigningAlgs:      []string{string(jose.ES256)},
		ResponseTypes:    []string{"token"},
		SubjectTypes:     []string{"public"},
		ScopesSupported:  []string{".default", string(directory.MailSend)},
		ClaimsSupported:  []string{"iss", "aud", "sub", "appid", "azp", "tid", "roles", "iat", "nbf", "exp", "jti"},
	})
}

func (s *Service) serveKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.freshKeys(r.Context())
	if err != nil {
		s.log.Error("oauth keys unavailable", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": "the signing keys cannot be loaded; see the hve log"})
		return
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range ks.list {
		set.Keys = append(set.Keys, k.public)
	}
	// Short, because a rotation signs with the new key at once: verifiers
	// that cache longer must refetch on an unknown kid.
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, set)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// clip shortens client-supplied strings for errors and logs.
func clip(s string) string {
	const max = 100
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
