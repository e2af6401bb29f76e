package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/store"
)

// ---- admin users ----

const adminUserCols = `u.id, u.name, u.role, coalesce(u.tenant_id, 0), coalesce(t.name, ''), u.password_hash,
	u.totp_secret, u.totp_last_step, u.enabled, u.created_at, u.updated_at`

const adminUserFrom = ` FROM admin_users u LEFT JOIN tenants t ON t.id = u.tenant_id `

// adminUserDest returns the scan destinations of adminUserCols for u, and
// a function that finishes u once they are scanned.
func adminUserDest(u *adminauth.User) ([]any, func()) {
	var role string
	var created, updated int64
	dest := []any{&u.ID, &u.Name, &role, &u.TenantID, &u.Tenant, &u.PasswordHash,
		&u.TOTPSecret, &u.TOTPLastStep, &u.Enabled, &created, &updated}
	return dest, func() {
		u.Role = adminauth.Role(role)
		u.TOTP = len(u.TOTPSecret) > 0
		if !u.TOTP {
			u.TOTPSecret = nil
		}
		u.CreatedAt, u.UpdatedAt = fromNanos(created), fromNanos(updated)
	}
}

func scanAdminUser(row scanner) (u adminauth.User, err error) {
	dest, finish := adminUserDest(&u)
	if err := row.Scan(dest...); err != nil {
		return u, err
	}
	finish()
	return u, nil
}

func (s *Store) queryAdminUsers(ctx context.Context, where string, args ...any) ([]adminauth.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+adminUserCols+adminUserFrom+where, args...)
	list, err := collect(rows, err, scanAdminUser)
	if err != nil {
		return nil, fmt.Errorf("listing admin users: %w", err)
	}
	return list, nil
}

// nullID stores tenant id 0 (every tenant) as NULL, which the foreign key
// allows.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// nullBytes stores an empty secret as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// checkAdminTenant reports ErrInvalid for a tenant id that is not a
// tenant. It share-locks the tenant's key, so that the tenant cannot be
// removed before the transaction that gives it an admin commits.
func checkAdminTenant(ctx context.Context, tx pgx.Tx, id int64) error {
	if id == 0 {
		return nil
	}
	var found bool
	err := tx.QueryRow(ctx, `SELECT true FROM tenants WHERE id = $1 FOR KEY SHARE`, id).Scan(&found)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: tenant %d does not exist", store.ErrInvalid, id)
	}
	return err
}

// CreateAdminUser creates an admin user.
func (s *Store) CreateAdminUser(ctx context.Context, u adminauth.User) (adminauth.User, error) {
	if strings.TrimSpace(u.Name) == "" {
		return u, fmt.Errorf("%w: an admin user needs a name", store.ErrInvalid)
	}
	now := nanos(time.Now().UTC())
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := checkAdminTenant(ctx, tx, u.TenantID); err != nil {
			return err
		}
		// The unique index on lower(name) refuses a name another node
		// created meanwhile in any letter case.
		return tx.QueryRow(ctx, `INSERT INTO admin_users (name, role, tenant_id, password_hash, totp_secret, totp_last_step, enabled, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id`,
			u.Name, string(u.Role), nullID(u.TenantID), u.PasswordHash, nullBytes(u.TOTPSecret), u.TOTPLastStep, u.Enabled, now).Scan(&u.ID)
	})
	if err != nil {
		return u, fmt.Errorf("admin user %q: %w", u.Name, err)
	}
	return s.AdminUser(ctx, u.ID)
}

// AdminUsers lists every admin user by name.
func (s *Store) AdminUsers(ctx context.Context) ([]adminauth.User, error) {
	return s.queryAdminUsers(ctx, `ORDER BY lower(u.name)`)
}

// AdminUserByName finds an admin user by name, in any letter case.
func (s *Store) AdminUserByName(ctx context.Context, name string) (adminauth.User, error) {
	return one(s.queryAdminUsers(ctx, `WHERE lower(u.name) = lower($1)`, strings.TrimSpace(name)))(fmt.Sprintf("admin user %q", name))
}

// AdminUser finds an admin user by id.
func (s *Store) AdminUser(ctx context.Context, id int64) (adminauth.User, error) {
	return one(s.queryAdminUsers(ctx, `WHERE u.id = $1`, id))(fmt.Sprintf("admin user %d", id))
}

// UpdateAdminUser stores the changeable fields of an admin user.
func (s *Store) UpdateAdminUser(ctx context.Context, u adminauth.User) (adminauth.User, error) {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := checkAdminTenant(ctx, tx, u.TenantID); err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("admin user %d", u.ID), `UPDATE admin_users SET role = $1, tenant_id = $2, password_hash = $3,
			totp_secret = $4, totp_last_step = $5, enabled = $6, updated_at = $7 WHERE id = $8`,
			string(u.Role), nullID(u.TenantID), u.PasswordHash, nullBytes(u.TOTPSecret), u.TOTPLastStep, u.Enabled, nanos(time.Now().UTC()), u.ID)
	})
	if err != nil {
		return u, fmt.Errorf("updating admin user %q: %w", u.Name, err)
	}
	return s.AdminUser(ctx, u.ID)
}

// RemoveAdminUser removes a user; its tokens and sessions go with it (ON
// DELETE CASCADE).
func (s *Store) RemoveAdminUser(ctx context.Context, id int64) error {
	return execOne(ctx, s.pool, fmt.Sprintf("admin user %d", id), `DELETE FROM admin_users WHERE id = $1`, id)
}

// ---- admin API tokens ----

const adminTokenCols = `k.id, k.user_id, k.name, k.hint, k.hash, k.created_at, k.expires_at`

// adminTokenDest is adminUserDest for adminTokenCols.
func adminTokenDest(k *adminauth.Token) ([]any, func()) {
	var created, expires int64
	dest := []any{&k.ID, &k.UserID, &k.Name, &k.Hint, &k.Hash, &created, &expires}
	return dest, func() { k.CreatedAt, k.ExpiresAt = fromNanos(created), fromNanos(expires) }
}

func scanAdminToken(row scanner) (k adminauth.Token, err error) {
	dest, finish := adminTokenDest(&k)
	if err := row.Scan(dest...); err != nil {
		return k, err
	}
	finish()
	return k, nil
}

// AddAdminToken stores a token.
func (s *Store) AddAdminToken(ctx context.Context, k adminauth.Token) (adminauth.Token, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now().UTC()
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO admin_tokens (user_id, name, hint, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		k.UserID, k.Name, k.Hint, k.Hash, nanos(k.CreatedAt), nanos(k.ExpiresAt)).Scan(&k.ID)
	if err != nil {
		return k, fmt.Errorf("adding admin token: %w", mapErr(err))
	}
	return k, nil
}

// AdminTokens lists a user's tokens, oldest first.
func (s *Store) AdminTokens(ctx context.Context, userID int64) ([]adminauth.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+adminTokenCols+` FROM admin_tokens k WHERE k.user_id = $1 ORDER BY k.id`, userID)
	list, err := collect(rows, err, scanAdminToken)
	if err != nil {
		return nil, fmt.Errorf("listing admin tokens: %w", err)
	}
	return list, nil
}

// AdminTokenByHash finds a token by its hash, and its user.
func (s *Store) AdminTokenByHash(ctx context.Context, hash string) (adminauth.Token, adminauth.User, error) {
	var k adminauth.Token
	var u adminauth.User
	kDest, kFinish := adminTokenDest(&k)
	uDest, uFinish := adminUserDest(&u)
	err := s.pool.QueryRow(ctx, `SELECT `+adminTokenCols+`, `+adminUserCols+` FROM admin_tokens k
		JOIN admin_users u ON u.id = k.user_id LEFT JOIN tenants t ON t.id = u.tenant_id WHERE k.hash = $1`, hash).
		Scan(append(kDest, uDest...)...)
	if err != nil {
		return k, u, fmt.Errorf("admin token: %w", mapErr(err))
	}
	kFinish()
	uFinish()
	return k, u, nil
}

// RemoveAdminToken removes one of a user's tokens.
func (s *Store) RemoveAdminToken(ctx context.Context, userID, id int64) error {
	return execOne(ctx, s.pool, fmt.Sprintf("admin token %d", id), `DELETE FROM admin_tokens WHERE id = $1 AND user_id = $2`, id, userID)
}

// ---- web sessions ----

// CreateAdminSession stores a new session.
func (s *Store) CreateAdminSession(ctx context.Context, a adminauth.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO admin_sessions (id_hash, user_id, csrf, created_at, expires_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6)`,
		a.IDHash, a.UserID, a.CSRF, nanos(a.CreatedAt), nanos(a.ExpiresAt), nanos(a.LastSeen))
	if err != nil {
		return fmt.Errorf("storing admin session: %w", mapErr(err))
	}
	return nil
}

// AdminSession finds a session and its user, in one statement, so that
// the two agree even while another node removes the user.
func (s *Store) AdminSession(ctx context.Context, idHash string) (adminauth.Session, adminauth.User, error) {
	var a adminauth.Session
	var u adminauth.User
	var created, expires, seen int64
	uDest, uFinish := adminUserDest(&u)
	err := s.pool.QueryRow(ctx, `SELECT a.id_hash, a.user_id, a.csrf, a.created_at, a.expires_at, a.last_seen, `+adminUserCols+`
		FROM admin_sessions a JOIN admin_users u ON u.id = a.user_id LEFT JOIN tenants t ON t.id = u.tenant_id WHERE a.id_hash = $1`, idHash).
		Scan(append([]any{&a.IDHash, &a.UserID, &a.CSRF, &created, &expires, &seen}, uDest...)...)
	if err != nil {
		return a, u, fmt.Errorf("admin session: %w", mapErr(err))
	}
	a.CreatedAt, a.ExpiresAt, a.LastSeen = fromNanos(created), fromNanos(expires), fromNanos(seen)
	uFinish()
	return a, u, nil
}

// TouchAdminSession records the session's last use.
func (s *Store) TouchAdminSession(ctx context.Context, idHash string, t time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE admin_sessions SET last_seen = $1 WHERE id_hash = $2`, nanos(t), idHash)
	return mapErr(err)
}

// RemoveAdminSession ends a session (sign-out).
func (s *Store) RemoveAdminSession(ctx context.Context, idHash string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM admin_sessions WHERE id_hash = $1`, idHash)
	return mapErr(err)
}

// RemoveAdminSessions ends every session of a user.
func (s *Store) RemoveAdminSessions(ctx context.Context, userID int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM admin_sessions WHERE user_id = $1`, userID)
	return mapErr(err)
}

// PruneAdminSessions removes sessions that expired before t.
func (s *Store) PruneAdminSessions(ctx context.Context, t time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM admin_sessions WHERE expires_at < $1`, nanos(t))
	return mapErr(err)
}

// ---- audit log ----

// AddAudit appends an entry to the audit log.
func (s *Store) AddAudit(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO audit_log (time, actor, role, via, tenant_id, tenant_name, action, object, method, path, status,
		request, before, after, remote_addr) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
		nanos(e.Time), e.Actor, e.Role, e.Via, e.TenantID, e.Tenant, e.Action, e.Object, e.Method, e.Path, e.Status,
		string(e.Request), string(e.Before), string(e.After), e.RemoteAddr).Scan(&e.ID)
	if err != nil {
		return e, fmt.Errorf("adding audit entry: %w", mapErr(err))
	}
	return e, nil
}

// SearchAudit returns audit entries newest first.
func (s *Store) SearchAudit(ctx context.Context, q audit.Query) ([]audit.Entry, error) {
	var where []string
	var args []any
	cond := func(c string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(c, len(args)))
	}
	if q.TenantID != 0 {
		cond("tenant_id = $%d", q.TenantID)
	}
	if q.Actor != "" {
		cond("actor = $%d", q.Actor)
	}
	if !q.Since.IsZero() {
		cond("time >= $%d", nanos(q.Since))
	}
	if !q.Until.IsZero() {
		cond("time < $%d", nanos(q.Until))
	}
	if q.BeforeID > 0 {
		cond("id < $%d", q.BeforeID)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = audit.DefaultLimit
	}
	limit = min(limit, audit.MaxLimit)
	query := `SELECT id, time, actor, role, via, tenant_id, tenant_name, action, object, method, path, status, request, before, after, remote_addr FROM audit_log`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	query += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, query, args...)
	list, err := collect(rows, err, func(row scanner) (e audit.Entry, err error) {
		var t int64
		var req, before, after string
		err = row.Scan(&e.ID, &t, &e.Actor, &e.Role, &e.Via, &e.TenantID, &e.Tenant, &e.Action, &e.Object, &e.Method, &e.Path, &e.Status,
			&req, &before, &after, &e.RemoteAddr)
		e.Time = fromNanos(t)
		e.Request, e.Before, e.After = rawOrNil(req), rawOrNil(before), rawOrNil(after)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("searching the audit log: %w", err)
	}
	return list, nil
}

// rawOrNil turns a stored JSON text back into a raw message; "" is none.
func rawOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
