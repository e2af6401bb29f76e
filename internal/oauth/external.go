package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Caching of external issuers' discovery documents and keys.
const (
	// discoveryTTL: the jwks_uri of an issuer hardly ever changes.
	discoveryTTL = 24 * time.Hour
	// remoteKeysTTL: issuers publish new keys ahead of using them, so a
	// cache of an hour sees them in time; an unknown kid refetches anyway.
	remoteKeysTTL = time.Hour
	// remoteRefetchInterval is the least time between two fetches of an
	// issuer's keys, so that tokens with made-up kids, or an issuer that is
	// down, do not turn every sign-in into an HTTP request.
	remoteRefetchInterval = 10 * time.Second
	// fetchTimeout bounds one fetch, whatever the HTTP client allows.
	fetchTimeout = 10 * time.Second
	// maxDocumentBytes bounds a discovery document or JWKS.
	maxDocumentBytes = 1 << 20
)

// remoteIssuer caches what hve knows of one external issuer.
type remoteIssuer struct {
	url string // as the tenant configured it

	// mu is held during fetches: concurrent sign-ins that need the keys
	// wait for one fetch instead of each making their own.
	mu           sync.Mutex
	jwksURI      string
	discoveredAt time.Time
	keys         []jose.JSONWebKey
	keysAt       time.Time // when keys were fetched
	lastFetch    time.Time // when a fetch was last tried
	lastErr      error     // the error of that fetch, if it failed
}

// remote returns the cache entry of the issuer with the given URL.
func (s *Service) remote(issuerURL string) *remoteIssuer {
	key := strings.TrimSuffix(issuerURL, "/")
	s.remotesMu.Lock()
	defer s.remotesMu.Unlock()
	r := s.remotes[key]
	if r == nil {
		r = &remoteIssuer{url: issuerURL}
		s.remotes[key] = r
	}
	return r
}

// keysFor returns the issuer's keys that may have signed a token with the
// given kid (every key when the token has none), fetching them when the
// cache is stale or does not know the kid. An empty answer without error
// means the issuer does not publish the kid.
func (r *remoteIssuer) keysFor(ctx context.Context, s *Service, kid string) ([]jose.JSONWebKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := s.now()
	if r.keys != nil && now.Sub(r.keysAt) < remoteKeysTTL {
		if m := matchKeys(r.keys, kid); len(m) > 0 {
			return m, nil
		}
	}
	if r.lastFetch.IsZero() || now.Sub(r.lastFetch) >= remoteRefetchInterval {
		r.lastFetch = now
		r.lastErr = r.fetch(ctx, s)
		if r.lastErr != nil {
			s.log.Warn("fetching the keys of an oauth issuer failed", "issuer", r.url, "err", r.lastErr)
		}
	}
	// Keys past their TTL still serve while the issuer cannot be reached:
	// they are the issuer's keys all the same.
	if m := matchKeys(r.keys, kid); len(m) > 0 {
		return m, nil
	}
	if r.lastErr != nil {
		return nil, r.lastErr
	}
	return nil, nil
}

func matchKeys(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	if kid == "" {
		return keys
	}
	var m []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			m = append(m, k)
		}
	}
	return m
}

// fetch reads the discovery document (when not cached) and the keys.
// r.mu is held.
func (r *remoteIssuer) fetch(ctx context.Context, s *Service) error {
	now := s.now()
	if r.jwksURI == "" || now.Sub(r.discoveredAt) >= discoveryTTL {
		// The discovery document comes from the URL the admin configured,
		// never from the token, so its jwks_uri is as trusted as that URL.
		// Its issuer field is not compared: Entra ID, for one, serves
		// documents whose issuer differs in form from the URL.
		var doc struct {
			JWKSURI string `json:"jwks_uri"`
		}
		u := strings.TrimSuffix(r.url, "/") + "/.well-known/openid-configuration"
		if err := s.getJSON(ctx, u, &doc); err != nil {
			return err
		}
		if doc.JWKSURI == "" {
			return fmt.Errorf("discovery document %s has no jwks_uri", u)
		}
		r.jwksURI, r.discoveredAt = doc.JWKSURI, now
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := s.getJSON(ctx, r.jwksURI, &set); err != nil {
		// The jwks_uri may have moved: look it up again next time.
		r.jwksURI = ""
		return err
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			// Issuers publish kinds of keys hve has no use for; one of them
			// must not hide the others.
			s.log.Debug("skipping a key of an oauth issuer", "issuer", r.url, "err", err)
			continue
		}
		if k.Use == "enc" {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return fmt.Errorf("%s has no RSA or ECDSA signing keys", r.jwksURI)
	}
	r.keys, r.keysAt = keys, now
	return nil
}

// getJSON fetches a JSON document.
func (s *Service) getJSON(ctx context.Context, u string, v any) error {
	// The fetch serves every sign-in waiting for the issuer's keys, so the
	// cancellation of the one that started it must not fail it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", u, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("GET %s: document is larger than %d bytes", u, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
