package store

import (
	"context"
	"time"

	"hve/internal/adminauth"
	"hve/internal/audit"
)

// Admins holds who administers hve (admin users, their API tokens and web
// sessions) and the audit log of what they changed. Admin user names are
// unique, compared without regard to letter case.
type Admins interface {
	// CreateAdminUser creates a user; u.TenantID 0 is every tenant, any
	// other must be a tenant (ErrInvalid otherwise). The reply carries the
	// tenant's name.
	CreateAdminUser(ctx context.Context, u adminauth.User) (adminauth.User, error)
	// AdminUsers lists every admin user by name.
	AdminUsers(ctx context.Context) ([]adminauth.User, error)
	AdminUserByName(ctx context.Context, name string) (adminauth.User, error)
	AdminUser(ctx context.Context, id int64) (adminauth.User, error)
	// UpdateAdminUser replaces the changeable fields of the user with
	// u.ID: role, tenant, password hash, TOTP secret and last step,
	// enabled.
	UpdateAdminUser(ctx context.Context, u adminauth.User) (adminauth.User, error)
	// RemoveAdminUser removes a user with its tokens and sessions.
	RemoveAdminUser(ctx context.Context, id int64) error

	// AddAdminToken stores a token of t.UserID (t.Hash set, t.ID ignored).
	AddAdminToken(ctx context.Context, t adminauth.Token) (adminauth.Token, error)
	// AdminTokens lists a user's tokens, oldest first.
	AdminTokens(ctx context.Context, userID int64) ([]adminauth.Token, error)
	// AdminTokenByHash finds a token by adminauth.HashToken of it, and its
	// user.
	AdminTokenByHash(ctx context.Context, hash string) (adminauth.Token, adminauth.User, error)
	RemoveAdminToken(ctx context.Context, userID, id int64) error

	// CreateAdminSession stores a new web session.
	CreateAdminSession(ctx context.Context, s adminauth.Session) error
	// AdminSession finds a session by the hash of its id, and its user.
	AdminSession(ctx context.Context, idHash string) (adminauth.Session, adminauth.User, error)
	// TouchAdminSession records that the session was used at t.
	TouchAdminSession(ctx context.Context, idHash string, t time.Time) error
	RemoveAdminSession(ctx context.Context, idHash string) error
	// RemoveAdminSessions ends every session of a user (a new password, a
	// disabled user).
	RemoveAdminSessions(ctx context.Context, userID int64) error
	// PruneAdminSessions removes sessions that expired before t.
	PruneAdminSessions(ctx context.Context, t time.Time) error

	// AddAudit appends an entry to the audit log and returns it with its ID.
	AddAudit(ctx context.Context, e audit.Entry) (audit.Entry, error)
	// SearchAudit returns entries newest first (highest ID first), never
	// nil.
	SearchAudit(ctx context.Context, q audit.Query) ([]audit.Entry, error)
}
