package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"hve/internal/directory"
)

// signingKey is one of hve's keys, ready to use.
type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	// public is the public key as published in the JWKS (kid, alg, use).
	public jose.JSONWebKey
	// signer is set on the current key only.
	signer    jose.Signer
	createdAt time.Time
	retiredAt time.Time
}

// keySet is the keys as last loaded from the store.
type keySet struct {
	current *signingKey // nil when the store has no current key
	byID    map[string]*signingKey
	list    []*signingKey // newest first
	// loadedAt is when the set was loaded, by the service's clock.
	loadedAt time.Time
}

// EnsureKey creates the first signing key if the store has no current one,
// and prunes the keys whose tokens have all expired. Call it at startup.
func (s *Service) EnsureKey(ctx context.Context) error {
	ks, err := s.loadKeys(ctx)
	if err != nil {
		return err
	}
	if ks.current == nil {
		if _, err := s.addKey(ctx); err != nil {
			return err
		}
	}
	return s.PruneKeys(ctx)
}

// RotateKey makes a new current signing key and returns its kid. The old
// keys stay published in the JWKS, and keep verifying, until every token
// they signed has expired; then PruneKeys (which RotateKey and EnsureKey
// call) removes them.
func (s *Service) RotateKey(ctx context.Context) (string, error) {
	k, err := s.addKey(ctx)
	if err != nil {
		return "", err
	}
	if err := s.PruneKeys(ctx); err != nil {
		return "", err
	}
	return k.ID, nil
}

// PruneKeys removes the retired keys that can no longer have signed an
// unexpired token.
//
// A key is retired when another key is added, but a node whose key cache
// is up to keyCacheTTL old may still sign with it, and its tokens live
// TokenLifetime, plus the leeway the verifier grants. All nodes are assumed
// to share TokenLifetime.
func (s *Service) PruneKeys(ctx context.Context) error {
	horizon := s.now().Add(-(s.cfg.TokenLifetime + keyCacheTTL + leeway))
	if err := s.st.PruneSigningKeys(ctx, horizon); err != nil {
		return fmt.Errorf("pruning signing keys retired before %s: %w", horizon.Format(time.RFC3339), err)
	}
	if _, err := s.loadKeys(ctx); err != nil {
		return err
	}
	return nil
}

// addKey generates an ECDSA P-256 key, stores it as the current key and
// reloads the cache.
func (s *Service) addKey(ctx context.Context) (directory.SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return directory.SigningKey{}, fmt.Errorf("generating signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return directory.SigningKey{}, fmt.Errorf("encoding signing key: %w", err)
	}
	// The kid is the key's RFC 7638 thumbprint: unique without
	// coordination between nodes, and checkable by anyone with the key.
	jwk := jose.JSONWebKey{Key: priv.Public()}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return directory.SigningKey{}, fmt.Errorf("computing signing key thumbprint: %w", err)
	}
	k := directory.SigningKey{
		ID:         base64.RawURLEncoding.EncodeToString(thumb),
		Algorithm:  string(jose.ES256),
		PrivatePEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		CreatedAt:  s.now(),
	}
	if err := s.st.AddSigningKey(ctx, k); err != nil {
		return directory.SigningKey{}, fmt.Errorf("storing signing key %s: %w", k.ID, err)
	}
	s.log.Info("oauth signing key created", "kid", k.ID, "alg", k.Algorithm)
	if _, err := s.loadKeys(ctx); err != nil {
		return directory.SigningKey{}, err
	}
	return k, nil
}

// loadKeys reads the keys from the store into the cache.
func (s *Service) loadKeys(ctx context.Context) (*keySet, error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	return s.loadKeysLocked(ctx)
}

// loadKeysLocked is loadKeys with s.loadMu held.
func (s *Service) loadKeysLocked(ctx context.Context) (*keySet, error) {
	stored, err := s.st.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading signing keys: %w", err)
	}
	ks := &keySet{byID: make(map[string]*signingKey, len(stored)), loadedAt: s.now()}
	for _, k := range stored {
		sk, priv, err := parseKey(k)
		if err != nil {
			// One unreadable key must not stop the others from working.
			s.log.Error("skipping unreadable oauth signing key", "kid", k.ID, "err", err)
			continue
		}
		if ks.current == nil && k.RetiredAt.IsZero() {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: sk.alg,
				// A JWK, so that the signature header carries the kid.
				Key: jose.JSONWebKey{Key: priv, KeyID: sk.id, Algorithm: string(sk.alg)}},
				(&jose.SignerOptions{}).WithType("JWT"))
			if err != nil {
				s.log.Error("skipping unusable oauth signing key", "kid", k.ID, "err", err)
				continue
			}
			sk.signer = signer
			ks.current = sk
		}
		ks.byID[sk.id] = sk
		ks.list = append(ks.list, sk)
	}
	s.keysMu.Lock()
	s.keys = ks
	s.keysMu.Unlock()
	return ks, nil
}

// cachedKeys returns the keys as last loaded, or nil.
func (s *Service) cachedKeys() *keySet {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	return s.keys
}

// freshKeys returns the keys, reloaded when the cache is older than
// keyCacheTTL so that a rotation on another node is noticed.
func (s *Service) freshKeys(ctx context.Context) (*keySet, error) {
	if ks := s.cachedKeys(); ks != nil && s.now().Sub(ks.loadedAt) < keyCacheTTL {
		return ks, nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	// Another request may have reloaded while this one waited.
	if ks := s.cachedKeys(); ks != nil && s.now().Sub(ks.loadedAt) < keyCacheTTL {
		return ks, nil
	}
	return s.loadKeysLocked(ctx)
}

// currentKey returns the key to sign with, creating the first key if the
// store has none.
func (s *Service) currentKey(ctx context.Context) (*signingKey, error) {
	ks, err := s.freshKeys(ctx)
	if err != nil {
		return nil, err
	}
	if ks.current != nil {
		return ks.current, nil
	}
	if err := s.EnsureKey(ctx); err != nil {
		return nil, err
	}
	if ks := s.cachedKeys(); ks != nil && ks.current != nil {
		return ks.current, nil
	}
	return nil, errors.New("no usable signing key")
}

// verificationKey returns the key with the given kid, or nil if hve has
// none. An unknown kid reloads the keys, since another node may have
// rotated, but at most once every keyReloadInterval.
func (s *Service) verificationKey(ctx context.Context, kid string) (*signingKey, error) {
	if ks := s.cachedKeys(); ks != nil {
		if k := ks.byID[kid]; k != nil {
			return k, nil
		}
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	ks := s.cachedKeys()
	if ks != nil {
		if k := ks.byID[kid]; k != nil {
			return k, nil
		}
		if s.now().Sub(ks.loadedAt) < keyReloadInterval {
			return nil, nil
		}
	}
	ks, err := s.loadKeysLocked(ctx)
	if err != nil {
		return nil, err
	}
	return ks.byID[kid], nil
}

// parseKey reads a stored key, returning it ready for verifying and its
// private key.
func parseKey(k directory.SigningKey) (*signingKey, crypto.PrivateKey, error) {
	priv, err := parsePrivate(k)
	if err != nil {
		return nil, nil, err
	}
	var alg jose.SignatureAlgorithm
	var pub crypto.PublicKey
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, nil, fmt.Errorf("ECDSA key on curve %s: only P-256 is supported", p.Curve.Params().Name)
		}
		alg, pub = jose.ES256, p.Public()
	case *rsa.PrivateKey:
		alg, pub = jose.RS256, p.Public()
	default:
		return nil, nil, fmt.Errorf("key of type %T is not supported: use ECDSA P-256 or RSA", priv)
	}
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return nil, nil, fmt.Errorf("key is for %s, but its algorithm is stored as %s", alg, k.Algorithm)
	}
	return &signingKey{
		id:        k.ID,
		alg:       alg,
		public:    jose.JSONWebKey{Key: pub, KeyID: k.ID, Algorithm: string(alg), Use: "sig"},
		createdAt: k.CreatedAt,
		retiredAt: k.RetiredAt,
	}, priv, nil
}

func parsePrivate(k directory.SigningKey) (crypto.PrivateKey, error) {
	block, _ := pem.Decode(k.PrivatePEM)
	if block == nil {
		return nil, errors.New("private key is not PEM")
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing PKCS #8 private key: %w", err)
	}
	return priv, nil
}
