package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"hve/internal/access"
	"hve/internal/directory"
)

// signatureAlgs are the algorithms a token may be signed with. Symmetric
// algorithms (HS256...) are left out on purpose: with them a public key
// from a JWKS could be abused as an HMAC secret.
var signatureAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
}

// Verify implements access.TokenVerifier. A token whose iss is hve's own
// issuer is checked with hve's keys and must carry the tenant's name in
// tid; any other token must come from an issuer the tenant trusts, and
// carry the audience configured for it. The error wraps
// access.ErrTokenExpired for a token outside its lifetime (with a minute of
// leeway), and access.ErrTokenInvalid otherwise, with the reason.
func (s *Service) Verify(ctx context.Context, token string, tenant directory.Tenant) (access.Claims, error) {
	tok, err := jwt.ParseSigned(token, signatureAlgs)
	if err != nil {
		return access.Claims{}, invalidf("not a signed JWT: %v", err)
	}
	if len(tok.Headers) != 1 {
		return access.Claims{}, invalidf("token has %d signatures, not one", len(tok.Headers))
	}
	// The issuer decides which keys to check the signature with, so it is
	// read before the signature is checked; nothing else is trusted yet.
	var unverified claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return access.Claims{}, invalidf("claims are not a JSON object of the expected form: %v", err)
	}
	if sameIssuer(unverified.Issuer, s.issuer) {
		return s.verifyOwn(ctx, tok, unverified, tenant)
	}
	return s.verifyExternal(ctx, tok, unverified, tenant)
}

// verifyOwn checks a token hve issued.
func (s *Service) verifyOwn(ctx context.Context, tok *jwt.JSONWebToken, unverified claims, tenant directory.Tenant) (access.Claims, error) {
	h := tok.Headers[0]
	if h.KeyID == "" {
		return access.Claims{}, invalidf("token has no key id (kid)")
	}
	key, err := s.verificationKey(ctx, h.KeyID)
	if err != nil {
		return access.Claims{}, fmt.Errorf("%w: cannot load hve's signing keys: %w", access.ErrTokenInvalid, err)
	}
	if key == nil {
		// Keys are pruned once their tokens have expired: say so rather
		// than blame the key.
		if err := s.checkTimes(unverified); errors.Is(err, access.ErrTokenExpired) {
			return access.Claims{}, err
		}
		return access.Claims{}, invalidf("token is signed with key %s, which hve does not have", clip(h.KeyID))
	}
	if h.Algorithm != string(key.alg) {
		return access.Claims{}, invalidf("token is signed with %s, but key %s is for %s", clip(h.Algorithm), key.id, key.alg)
	}
	var c claims
	if err := tok.Claims(key.public.Key, &c); err != nil {
		return access.Claims{}, signatureError(err)
	}
	if !c.Audience.Contains(Audience) {
		return access.Claims{}, invalidf("audience %s is not %s", audString(c.Audience), Audience)
	}
	if err := s.checkTimes(c); err != nil {
		return access.Claims{}, err
	}
	if c.Tenant != tenant.Name {
		return access.Claims{}, invalidf("token was issued for tenant %s, not %s", clip(c.Tenant), tenant.Name)
	}
	if c.AppID == "" {
		return access.Claims{}, invalidf("token has no appid")
	}
	return access.Claims{
		Issuer:   c.Issuer,
		AppID:    c.AppID,
		MailSend: slices.Contains(c.Roles, string(directory.MailSend)),
		IssuedAt: dateTime(c.IssuedAt),
		Expires:  dateTime(c.Expiry),
	}, nil
}

// verifyExternal checks a token of an external issuer the tenant trusts.
func (s *Service) verifyExternal(ctx context.Context, tok *jwt.JSONWebToken, unverified claims, tenant directory.Tenant) (access.Claims, error) {
	iss := unverified.Issuer
	if iss == "" {
		return access.Claims{}, invalidf("token has no issuer (iss)")
	}
	issuers, err := s.st.Issuers(ctx, tenant.ID)
	if err != nil {
		return access.Claims{}, fmt.Errorf("%w: cannot load the trusted issuers of tenant %s: %w", access.ErrTokenInvalid, tenant.Name, err)
	}
	var trusted *directory.Issuer
	for i := range issuers {
		if sameIssuer(issuers[i].URL, iss) {
			trusted = &issuers[i]
			break
		}
	}
	if trusted == nil {
		return access.Claims{}, invalidf("issuer %s is not trusted by tenant %s", clip(iss), tenant.Name)
	}
	if trusted.Audience == "" {
		// Without an audience any token of the issuer, for any
		// application, would be accepted.
		return access.Claims{}, invalidf("issuer %s has no audience configured in tenant %s", trusted.URL, tenant.Name)
	}

	h := tok.Headers[0]
	keys, err := s.remote(trusted.URL).keysFor(ctx, s, h.KeyID)
	if err != nil {
		return access.Claims{}, fmt.Errorf("%w: cannot get the keys of issuer %s: %w", access.ErrTokenInvalid, trusted.URL, err)
	}
	if len(keys) == 0 {
		if err := s.checkTimes(unverified); errors.Is(err, access.ErrTokenExpired) {
			return access.Claims{}, err
		}
		return access.Claims{}, invalidf("token is signed with key %s, which issuer %s does not publish", clip(h.KeyID), trusted.URL)
	}
	var c claims
	err = errors.New("no key")
	for _, k := range keys {
		if err = tok.Claims(k.Key, &c); err == nil {
			break
		}
	}
	if err != nil {
		return access.Claims{}, signatureError(err)
	}
	if !c.Audience.Contains(trusted.Audience) {
		return access.Claims{}, invalidf("audience %s is not %s, the audience tenant %s expects from issuer %s",
			audString(c.Audience), trusted.Audience, tenant.Name, trusted.URL)
	}
	if err := s.checkTimes(c); err != nil {
		return access.Claims{}, err
	}
	appID := c.AppID
	if appID == "" {
		appID = c.AZP
	}
	if appID == "" {
		appID = c.ClientID
	}
	if appID == "" {
		return access.Claims{}, invalidf("token names no app (appid, azp or client_id)")
	}
	role := trusted.Role
	if role == "" {
		role = string(directory.MailSend)
	}
	return access.Claims{
		Issuer:   c.Issuer,
		AppID:    appID,
		MailSend: slices.Contains(c.Roles, role) || slices.Contains(c.Scope, role),
		IssuedAt: dateTime(c.IssuedAt),
		Expires:  dateTime(c.Expiry),
	}, nil
}

// checkTimes checks exp, nbf and iat against the clock, with leeway.
func (s *Service) checkTimes(c claims) error {
	if c.Expiry == nil {
		return invalidf("token has no expiry (exp)")
	}
	now := s.now()
	if exp := c.Expiry.Time(); now.After(exp.Add(leeway)) {
		return expiredf("token expired at %s", stamp(exp))
	}
	if c.NotBefore != nil {
		if nbf := c.NotBefore.Time(); now.Add(leeway).Before(nbf) {
			return expiredf("token is not valid before %s", stamp(nbf))
		}
	}
	if c.IssuedAt != nil {
		if iat := c.IssuedAt.Time(); now.Add(leeway).Before(iat) {
			return expiredf("token was issued in the future, at %s: check the clocks", stamp(iat))
		}
	}
	return nil
}

func signatureError(err error) error {
	if errors.Is(err, jose.ErrCryptoFailure) {
		return invalidf("signature does not verify")
	}
	return invalidf("signature does not verify: %v", err)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", access.ErrTokenInvalid, fmt.Sprintf(format, args...))
}

func expiredf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", access.ErrTokenExpired, fmt.Sprintf(format, args...))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// dateTime converts a claim to a time in UTC, or the zero time if absent.
func dateTime(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time().UTC()
}

func audString(a jwt.Audience) string {
	if len(a) == 0 {
		return "(none)"
	}
	return clip(strings.Join(a, ", "))
}

// stringList is a claim that issuers give either as an array of strings or
// as one space-separated string: roles is usually an array, scp a string
// in Entra ID but an array in Okta.
type stringList []string

// UnmarshalJSON implements json.Unmarshaler.
func (l *stringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = strings.Fields(s)
		return nil
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("expected a string or an array of strings: %w", err)
	}
	*l = a
	return nil
}
