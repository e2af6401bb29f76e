package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/store"
)

// ---- admin users ----

const adminUserCols = `u.id, u.name, u.role, COALESCE(u.tenant_id, 0), COALESCE(t.name, ''), u.password_hash,
	COALESCE(u.totp_secret, x''), u.totp_last_step, u.enabled, u.created_at, u.updated_at`

const adminUserFrom = ` FROM admin_users u LEFT JOIN tenants t ON t.id = u.tenant_id `

func scanAdminUser(row scanner) (u adminauth.User, err error) {
	var created, updated int64
	var role string
	err = row.Scan(&u.ID, &u.Name, &role, &u.TenantID, &u.Tenant, &u.PasswordHash, &u.TOTPSecret, &u.TOTPLastStep, &u.Enabled, &created, &updated)
	u.Role = adminauth.Role(role)
	u.TOTP = len(u.TOTPSecret) > 0
	if !u.TOTP {
		u.TOTPSecret = nil
	}
	u.CreatedAt, u.UpdatedAt = fromNanos(created), fromNanos(updated)
	return u, err
}

func (s *Store) queryAdminUsers(ctx context.Context, where string, args ...any) ([]adminauth.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+adminUserCols+adminUserFrom+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing admin users: %w", err)
	}
	list, err := collect(rows, scanAdminUser)
	return nonNil(list), err
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

// checkAdminTenant reports ErrInvalid for a tenant id that is not a tenant.
func (s *Store) checkAdminTenant(ctx context.Context, tx *sql.Tx, id int64) error {
	if id == 0 {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM tenants WHERE id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: tenant %d does not exist", store.ErrInvalid, id)
	}
	return nil
}

// CreateAdminUser creates an admin user.
func (s *Store) CreateAdminUser(ctx context.Context, u adminauth.User) (adminauth.User, error) {
	if strings.TrimSpace(u.Name) == "" {
		return u, fmt.Errorf("%w: an admin user needs a name", store.ErrInvalid)
	}
	now := time.Now().UTC()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkAdminTenant(ctx, tx, u.TenantID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO admin_users (name, role, tenant_id, password_hash, totp_secret, totp_last_step, enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.Name, string(u.Role), nullID(u.TenantID), u.PasswordHash, nullBytes(u.TOTPSecret), u.TOTPLastStep, u.Enabled, nanos(now), nanos(now))
		if err != nil {
			return err
		}
		u.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return u, fmt.Errorf("admin user %q: %w", u.Name, err)
	}
	return s.AdminUser(ctx, u.ID)
}

// AdminUsers lists every admin user by name.
func (s *Store) AdminUsers(ctx context.Context) ([]adminauth.User, error) {
	return s.queryAdminUsers(ctx, `ORDER BY u.name COLLATE NOCASE`)
}

// AdminUserByName finds an admin user by name, in any letter case.
func (s *Store) AdminUserByName(ctx context.Context, name string) (adminauth.User, error) {
	return one(s.queryAdminUsers(ctx, `WHERE u.name = ? COLLATE NOCASE`, strings.TrimSpace(name)))(fmt.Sprintf("admin user %q", name))
}

// AdminUser finds an admin user by id.
func (s *Store) AdminUser(ctx context.Context, id int64) (adminauth.User, error) {
	return one(s.queryAdminUsers(ctx, `WHERE u.id = ?`, id))(fmt.Sprintf("admin user %d", id))
}

// UpdateAdminUser stores the changeable fields of an admin user.
func (s *Store) UpdateAdminUser(ctx context.Context, u adminauth.User) (adminauth.User, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkAdminTenant(ctx, tx, u.TenantID); err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("admin user %d", u.ID), `UPDATE admin_users SET role = ?, tenant_id = ?, password_hash = ?, totp_secret = ?,
			totp_last_step = ?, enabled = ?, updated_at = ? WHERE id = ?`,
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
	return s.tx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, fmt.Sprintf("admin user %d", id), `DELETE FROM admin_users WHERE id = ?`, id)
	})
}

// ---- admin API tokens ----

const adminTokenCols = `k.id, k.user_id, k.name, k.hint, k.hash, k.created_at, k.expires_at`

func scanAdminToken(row scanner) (k adminauth.Token, err error) {
	var created, expires int64
	err = row.Scan(&k.ID, &k.UserID, &k.Name, &k.Hint, &k.Hash, &created, &expires)
	k.CreatedAt, k.ExpiresAt = fromNanos(created), fromNanos(expires)
	return k, err
}

// AddAdminToken stores a token.
func (s *Store) AddAdminToken(ctx context.Context, k adminauth.Token) (adminauth.Token, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now().UTC()
	}
	res, err := s.exec(ctx, `INSERT INTO admin_tokens (user_id, name, hint, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.UserID, k.Name, k.Hint, k.Hash, nanos(k.CreatedAt), nanos(k.ExpiresAt))
	if err != nil {
		return k, fmt.Errorf("adding admin token: %w", mapErr(err))
	}
	k.ID, err = res.LastInsertId()
	return k, err
}

// AdminTokens lists a user's tokens, oldest first.
func (s *Store) AdminTokens(ctx context.Context, userID int64) ([]adminauth.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+adminTokenCols+` FROM admin_tokens k WHERE k.user_id = ? ORDER BY k.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("listing admin tokens: %w", err)
	}
	list, err := collect(rows, scanAdminToken)
	return nonNil(list), err
}

// AdminTokenByHash finds a token by its hash, and its user.
func (s *Store) AdminTokenByHash(ctx context.Context, hash string) (adminauth.Token, adminauth.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+adminTokenCols+`, `+adminUserCols+` FROM admin_tokens k
		JOIN admin_users u ON u.id = k.user_id LEFT JOIN tenants t ON t.id = u.tenant_id WHERE k.hash = ?`, hash)
	if err != nil {
		return adminauth.Token{}, adminauth.User{}, fmt.Errorf("looking up admin token: %w", err)
	}
	type pair struct {
		k adminauth.Token
		u adminauth.User
	}
	list, err := collect(rows, func(row scanner) (p pair, err error) {
		var created, updated, expires, kCreated int64
		var role string
		err = row.Scan(&p.k.ID, &p.k.UserID, &p.k.Name, &p.k.Hint, &p.k.Hash, &kCreated, &expires,
			&p.u.ID, &p.u.Name, &role, &p.u.TenantID, &p.u.Tenant, &p.u.PasswordHash, &p.u.TOTPSecret, &p.u.TOTPLastStep, &p.u.Enabled, &created, &updated)
		p.k.CreatedAt, p.k.ExpiresAt = fromNanos(kCreated), fromNanos(expires)
		p.u.Role, p.u.CreatedAt, p.u.UpdatedAt = adminauth.Role(role), fromNanos(created), fromNanos(updated)
		p.u.TOTP = len(p.u.TOTPSecret) > 0
		return p, err
	})
	p, err := one(list, err)("admin token")
	return p.k, p.u, err
}

// RemoveAdminToken removes one of a user's tokens.
func (s *Store) RemoveAdminToken(ctx context.Context, userID, id int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, fmt.Sprintf("admin token %d", id), `DELETE FROM admin_tokens WHERE id = ? AND user_id = ?`, id, userID)
	})
}

// ---- web sessions ----

// CreateAdminSession stores a new session.
func (s *Store) CreateAdminSession(ctx context.Context, a adminauth.Session) error {
	_, err := s.exec(ctx, `INSERT INTO admin_sessions (id_hash, user_id, csrf, created_at, expires_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)`,
		a.IDHash, a.UserID, a.CSRF, nanos(a.CreatedAt), nanos(a.ExpiresAt), nanos(a.LastSeen))
	if err != nil {
		return fmt.Errorf("storing admin session: %w", mapErr(err))
	}
	return nil
}

// AdminSession finds a session and its user.
func (s *Store) AdminSession(ctx context.Context, idHash string) (adminauth.Session, adminauth.User, error) {
	var a adminauth.Session
	var created, expires, seen int64
	err := s.r.QueryRowContext(ctx, `SELECT id_hash, user_id, csrf, created_at, expires_at, last_seen FROM admin_sessions WHERE id_hash = ?`, idHash).
		Scan(&a.IDHash, &a.UserID, &a.CSRF, &created, &expires, &seen)
	if err != nil {
		return a, adminauth.User{}, fmt.Errorf("admin session: %w", mapErr(err))
	}
	a.CreatedAt, a.ExpiresAt, a.LastSeen = fromNanos(created), fromNanos(expires), fromNanos(seen)
	u, err := s.AdminUser(ctx, a.UserID)
	return a, u, err
}

// TouchAdminSession records the session's last use.
func (s *Store) TouchAdminSession(ctx context.Context, idHash string, t time.Time) error {
	_, err := s.exec(ctx, `UPDATE admin_sessions SET last_seen = ? WHERE id_hash = ?`, nanos(t), idHash)
	return mapErr(err)
}

// RemoveAdminSession ends a session (sign-out).
func (s *Store) RemoveAdminSession(ctx context.Context, idHash string) error {
	_, err := s.exec(ctx, `DELETE FROM admin_sessions WHERE id_hash = ?`, idHash)
	return mapErr(err)
}

// RemoveAdminSessions ends every session of a user.
func (s *Store) RemoveAdminSessions(ctx context.Context, userID int64) error {
	_, err := s.exec(ctx, `DELETE FROM admin_sessions WHERE user_id = ?`, userID)
	return mapErr(err)
}

// PruneAdminSessions removes sessions that expired before t.
func (s *Store) PruneAdminSessions(ctx context.Context, t time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM admin_sessions WHERE expires_at < ?`, nanos(t))
	return mapErr(err)
}

// ---- audit log ----

// AddAudit appends an entry to the audit log.
func (s *Store) AddAudit(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	res, err := s.exec(ctx, `INSERT INTO audit_log (time, actor, role, via, tenant_id, tenant_name, action, object, method, path, status,
		request, before, after, remote_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		nanos(e.Time), e.Actor, e.Role, e.Via, e.TenantID, e.Tenant, e.Action, e.Object, e.Method, e.Path, e.Status,
		string(e.Request), string(e.Before), string(e.After), e.RemoteAddr)
	if err != nil {
		return e, fmt.Errorf("adding audit entry: %w", mapErr(err))
	}
	e.ID, err = res.LastInsertId()
	return e, err
}

// SearchAudit returns audit entries newest first.
func (s *Store) SearchAudit(ctx context.Context, q audit.Query) ([]audit.Entry, error) {
	var where []string
	var args []any
	if q.TenantID != 0 {
		where, args = append(where, "tenant_id = ?"), append(args, q.TenantID)
	}
	if q.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, q.Actor)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, nanos(q.Since))
	}
	if !q.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, nanos(q.Until))
	}
	if q.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, q.BeforeID)
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
	query += " ORDER BY id DESC LIMIT ?"
	rows, err := s.r.QueryContext(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("searching the audit log: %w", err)
	}
	list, err := collect(rows, func(row scanner) (e audit.Entry, err error) {
		var t int64
		var req, before, after string
		err = row.Scan(&e.ID, &t, &e.Actor, &e.Role, &e.Via, &e.TenantID, &e.Tenant, &e.Action, &e.Object, &e.Method, &e.Path, &e.Status,
			&req, &before, &after, &e.RemoteAddr)
		e.Time = fromNanos(t)
		e.Request, e.Before, e.After = rawOrNil(req), rawOrNil(before), rawOrNil(after)
		return e, err
	})
	return nonNil(list), err
}

// rawOrNil turns a stored JSON text back into a raw message; "" is none.
func rawOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
