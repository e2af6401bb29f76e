package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/directory"
	"hve/internal/store"
)

// SetRoute creates or replaces the route of a tenant's domain.
//
// The domain's row is read FOR SHARE, so that it cannot move to another
// tenant (removed, then added there) before the route commits. A domain
// another tenant adds at the same moment is not seen: that is harmless, a
// route only steers its own tenant's mail, and routes may name domains not
// accepted yet anyway.
func (s *Store) SetRoute(ctx context.Context, r directory.Route) (directory.Route, error) {
	if err := r.Normalize(); err != nil {
		return r, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	r.UpdatedAt = time.Now().UTC()
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		if r.Domain != directory.DefaultRouteDomain {
			var owner int64
			err := tx.QueryRow(ctx, `SELECT tenant_id FROM domains WHERE name = $1 FOR SHARE`, r.Domain).Scan(&owner)
			if err == nil && owner != r.TenantID {
				// Said like an unknown domain would be elsewhere: tenants
				// never learn of each other's domains.
				return fmt.Errorf("%w: %s is not a domain of this tenant", store.ErrInvalid, r.Domain)
			}
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO routes
			(tenant_id, domain, type, target, tls, auth_user, auth_password, client_cert, client_key, ca_file, max_connections, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (tenant_id, domain) DO UPDATE SET type = excluded.type, target = excluded.target, tls = excluded.tls,
				auth_user = excluded.auth_user, auth_password = excluded.auth_password, client_cert = excluded.client_cert,
				client_key = excluded.client_key, ca_file = excluded.ca_file, max_connections = excluded.max_connections,
				updated_at = excluded.updated_at`,
			r.TenantID, r.Domain, string(r.Type), r.Target, string(r.TLS), r.AuthUser, r.AuthPassword, r.ClientCert, r.ClientKey,
			r.CAFile, r.MaxConnections, nanos(r.UpdatedAt))
		return err
	})
	if err != nil {
		return r, fmt.Errorf("route %s: %w", r.Domain, err)
	}
	r.AuthPasswordSet = r.AuthPassword != ""
	return r, nil
}

// Routes lists a tenant's routes by domain; "*" sorts first.
func (s *Store) Routes(ctx context.Context, tenantID int64) ([]directory.Route, error) {
	// COLLATE "C" sorts by byte, as SQLite does, so that "*" comes before
	// every domain whatever the database's collation.
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, domain, type, target, tls, auth_user, auth_password, client_cert, client_key,
		ca_file, max_connections, updated_at FROM routes WHERE tenant_id = $1 ORDER BY domain COLLATE "C"`, tenantID)
	list, err := collect(rows, err, func(row scanner) (r directory.Route, err error) {
		var typ, tls string
		var updated int64
		err = row.Scan(&r.TenantID, &r.Domain, &typ, &r.Target, &tls, &r.AuthUser, &r.AuthPassword, &r.ClientCert, &r.ClientKey,
			&r.CAFile, &r.MaxConnections, &updated)
		r.Type, r.TLS, r.UpdatedAt = directory.RouteType(typ), directory.TLSMode(tls), fromNanos(updated)
		r.AuthPasswordSet = r.AuthPassword != ""
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return list, nil
}

// RemoveRoute removes the route of a tenant's domain.
func (s *Store) RemoveRoute(ctx context.Context, tenantID int64, domain string) error {
	return s.dirExecOne(ctx, "route "+domain, `DELETE FROM routes WHERE tenant_id = $1 AND domain = $2`, tenantID, domain)
}
