// Package adminauth is who may administer hve: admin users (people, not HVE
// accounts) with a role, their API tokens and web sessions, TOTP second
// factors, sign-in throttling, and the rule that decides which admin API
// routes a role may call.
//
// It holds no storage: store.Admins keeps users, tokens and sessions.
package adminauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Role is what an admin user may do.
type Role string

// The roles. A role may be scoped to one tenant (User.TenantID): a
// tenant-admin always is, readers and trace-readers may be, a
// global-admin never is.
const (
	// GlobalAdmin may do everything, in every tenant.
	GlobalAdmin Role = "global-admin"
	// TenantAdmin may do everything within one tenant, and nothing
	// outside it.
	TenantAdmin Role = "tenant-admin"
	// Reader may read everything in scope and change nothing.
	Reader Role = "reader"
	// TraceReader may read message trace and reports in scope, nothing
	// else.
	TraceReader Role = "trace-reader"
)

// Roles lists every role, for validation and help texts.
var Roles = []Role{GlobalAdmin, TenantAdmin, Reader, TraceReader}

// ParseRole accepts a role name in any letter case.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if strings.EqualFold(strings.TrimSpace(s), string(r)) {
			return r, nil
		}
	}
	return "", fmt.Errorf("role %q is not one of global-admin, tenant-admin, reader, trace-reader", s)
}

// CanWrite reports whether the role may change anything at all.
func (r Role) CanWrite() bool { return r == GlobalAdmin || r == TenantAdmin }

// BootstrapName is the actor name of the token in <data>/admin.token, which
// acts as a built-in global admin so that a fresh node can be set up (and
// its first admin user created) from the CLI.
const BootstrapName = "admin-token"

// User is an admin user.
type User struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// TenantID scopes the user to one tenant; 0 is every tenant.
	TenantID int64 `json:"-"`
	// Tenant is the name of TenantID's tenant, "" for every tenant.
	Tenant       string `json:"tenant"`
	PasswordHash string `json:"-"`
	// TOTPSecret is the RFC 6238 key (raw bytes); empty without a second
	// factor.
	TOTPSecret []byte `json:"-"`
	// TOTPLastStep is the time step of the last code accepted, so that a
	// code is not accepted twice.
	TOTPLastStep int64     `json:"-"`
	TOTP         bool      `json:"totp"`
	Enabled      bool      `json:"enabled"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Principal is who makes an admin request, as the role check sees it.
type Principal struct {
	// Name is the admin user's name, or BootstrapName.
	Name string `json:"name"`
	// UserID is the admin user's id; 0 for the bootstrap token.
	UserID int64 `json:"user_id"`
	Role   Role  `json:"role"`
	// Tenant scopes the principal to one tenant (its name); "" is every
	// tenant. TenantID is its id.
	Tenant   string `json:"tenant"`
	TenantID int64  `json:"-"`
	// Via says how the request came: "api", "cli" or "ui".
	Via string `json:"via"`
}

// PrincipalOf returns the principal of an admin user.
func PrincipalOf(u User, via string) Principal {
	return Principal{Name: u.Name, UserID: u.ID, Role: u.Role, Tenant: u.Tenant, TenantID: u.TenantID, Via: via}
}

// Token is an admin API token of an admin user. The token itself is shown
// once, when it is made; only its SHA-256 is kept (a random 256-bit token
// needs no slow hash: nobody can guess one from its hash).
type Token struct {
	ID     int64  `json:"id"`
	UserID int64  `json:"-"`
	Name   string `json:"name"`
	// Hint is the token's first characters, to tell tokens apart.
	Hint      string    `json:"hint"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool { return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) }

// Session is a signed-in web admin center session. The cookie holds the
// session id; the store keeps only its SHA-256.
type Session struct {
	IDHash string
	UserID int64
	// CSRF is the session's anti-forgery token: every form that changes
	// something carries it, and a request without it is refused.
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
	LastSeen  time.Time
}

// tokenPrefix marks admin API tokens, so that secret scanners and people
// can recognise one.
const tokenPrefix = "hvea_"

// NewToken returns a new random admin API token, its hash for the store and
// the hint that tells it apart.
func NewToken() (token, hash, hint string, err error) {
	raw, err := randomString(32)
	if err != nil {
		return "", "", "", err
	}
	token = tokenPrefix + raw
	return token, HashToken(token), token[:len(tokenPrefix)+6], nil
}

// HashToken returns the hex SHA-256 of a token (or session id): the form
// the store keeps and looks up.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return hex.EncodeToString(sum[:])
}

// NewSessionID returns a random session id and a random CSRF token.
func NewSessionID() (id, csrf string, err error) {
	if id, err = randomString(32); err != nil {
		return "", "", err
	}
	if csrf, err = randomString(32); err != nil {
		return "", "", err
	}
	return id, csrf, nil
}

// randomString returns n random bytes, base64url-encoded.
func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
