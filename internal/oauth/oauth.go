// Package oauth is hve's OAuth 2.0 token service and token verifier.
//
// The token service works like Entra ID's client-credentials flow: an app
// registration posts its client id and secret to /oauth2/token and gets a
// JWT access token, signed with one of hve's own keys, that carries the
// app's granted permissions as roles. The verifier (Service.Verify, an
// access.TokenVerifier) accepts those tokens, and tokens of external OpenID
// Connect issuers a tenant trusts.
package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"hve/internal/directory"
	"hve/internal/password"
)

// Audience is the aud claim of every token hve issues.
const Audience = "hve"

// Store is what the service needs of the store (store.Access and
// store.Directory implement it). AppByAppID and Tenant return an error
// wrapping store.ErrNotFound for an unknown id.
type Store interface {
	AppByAppID(ctx context.Context, appID string) (directory.App, error)
	Tenant(ctx context.Context, id int64) (directory.Tenant, error)
	Issuers(ctx context.Context, tenantID int64) ([]directory.Issuer, error)
	// SigningKeys lists the keys newest first.
	SigningKeys(ctx context.Context) ([]directory.SigningKey, error)
	// AddSigningKey stores k as the current key and retires the others at
	// k.CreatedAt.
	AddSigningKey(ctx context.Context, k directory.SigningKey) error
	PruneSigningKeys(ctx context.Context, retiredBefore time.Time) error
}

// Config configures the Service.
type Config struct {
	// IssuerURL is the public base URL of the HTTP server that serves
	// Handler, e.g. http://127.0.0.1:8025: the iss of hve's tokens and the
	// base of its discovery document.
	IssuerURL string
	// TokenLifetime is how long an issued token is valid; 1 hour if zero.
	TokenLifetime time.Duration
	// Now is the clock; time.Now if nil. Tests inject their own.
	Now func() time.Time
	// HTTPClient fetches the discovery documents and keys of external
	// issuers; a client with a 10 second timeout if nil.
	HTTPClient *http.Client
}

// Timing of keys and tokens.
const (
	// DefaultTokenLifetime is the lifetime of a token when Config leaves it
	// zero, as in Entra ID.
	DefaultTokenLifetime = time.Hour
	// leeway tolerates clocks that differ between hve and the issuer or
	// client.
	leeway = time.Minute
	// keyCacheTTL bounds how long a node keeps signing with a key after
	// another node rotated it: the node notices the rotation when its cache
	// expires.
	keyCacheTTL = time.Minute
	// keyReloadInterval is the least time between two reloads of the keys
	// for an unknown kid, so that a flood of tokens with made-up kids
	// cannot hammer the store.
	keyReloadInterval = 5 * time.Second
)

// Service issues and verifies tokens. It is safe for concurrent use.
type Service struct {
	st     Store
	cfg    Config
	log    *slog.Logger
	issuer string // cfg.IssuerURL without a trailing slash
	client *http.Client

	keysMu sync.Mutex // guards keys
	keys   *keySet
	// loadMu serializes loads of the keys, so that concurrent requests
	// that miss the cache cause one load, not one each.
	loadMu sync.Mutex

	remotesMu sync.Mutex // guards remotes
	remotes   map[string]*remoteIssuer

	dummyOnce sync.Once
	dummyHash string
}

// New returns a Service. Call EnsureKey before serving, so that the first
// token request does not have to create the signing key.
func New(st Store, cfg Config, log *slog.Logger) *Service {
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		st:      st,
		cfg:     cfg,
		log:     log,
		issuer:  strings.TrimSuffix(cfg.IssuerURL, "/"),
		client:  client,
		remotes: make(map[string]*remoteIssuer),
	}
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// Issuer is the iss claim of the tokens the service issues.
func (s *Service) Issuer() string { return s.issuer }

// NewSecret returns a random client secret of 40 URL-safe characters, and
// its hint: its first 3 characters, which are kept in the clear so that an
// admin can tell an app's secrets apart (as Entra ID shows them).
func NewSecret() (secret, hint string, err error) {
	b := make([]byte, 30) // 240 bits, 40 base64 characters
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("reading random bytes for a client secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, secret[:3], nil
}

// HashSecret returns the argon2id hash of a client secret, the only form in
// which secrets are stored (directory.AppSecret.Hash).
func HashSecret(secret string) (string, error) {
	h, err := password.Hash(secret)
	if err != nil {
		return "", fmt.Errorf("hashing client secret: %w", err)
	}
	return h, nil
}

// sameIssuer compares issuer identifiers, tolerating a trailing slash on
// one side: admins type issuer URLs by hand, and issuers disagree on it.
func sameIssuer(a, b string) bool {
	return a != "" && strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// randomID returns n random bytes, base64url-encoded.
func randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
