package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
)

// CreateTenant creates a tenant.
func (s *Store) CreateTenant(ctx context.Context, name string) (directory.Tenant, error) {
	t := directory.Tenant{Name: name, CreatedAt: time.Now().UTC()}
	res, err := s.w.ExecContext(ctx, `INSERT INTO tenants (name, created_at) VALUES (?, ?)`, name, nanos(t.CreatedAt))
	if err != nil {
		return t, fmt.Errorf("tenant %q: %w", name, mapErr(err))
	}
	t.ID, err = res.LastInsertId()
	return t, err
}

// Tenants lists all tenants by name.
func (s *Store) Tenants(ctx context.Context) ([]directory.Tenant, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, created_at FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	return collect(rows, func(rows scanner) (t directory.Tenant, err error) {
		var created int64
		err = rows.Scan(&t.ID, &t.Name, &created)
		t.CreatedAt = fromNanos(created)
		return t, err
	})
}

// TenantByName finds a tenant.
func (s *Store) TenantByName(ctx context.Context, name string) (directory.Tenant, error) {
	var t directory.Tenant
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT id, name, created_at FROM tenants WHERE name = ?`, name).Scan(&t.ID, &t.Name, &created)
	if err != nil {
		return t, fmt.Errorf("tenant %q: %w", name, mapErr(err))
	}
	t.CreatedAt = fromNanos(created)
	return t, nil
}

// AddDomain adds an accepted domain to a tenant.
func (s *Store) AddDomain(ctx context.Context, d directory.Domain) (directory.Domain, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO domains (tenant_id, name, type) VALUES (?, ?, ?)`, d.TenantID, d.Name, string(d.Type))
	if err != nil {
		return d, fmt.Errorf("domain %s: %w", d.Name, mapErr(err))
	}
	d.ID, err = res.LastInsertId()
	return d, err
}

// Domains lists a tenant's accepted domains.
func (s *Store) Domains(ctx context.Context, tenantID int64) ([]directory.Domain, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, tenant_id, name, type FROM domains WHERE tenant_id = ? ORDER BY name`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("listing domains: %w", err)
	}
	return collect(rows, scanDomain)
}

// DomainByName finds an accepted domain in any tenant.
func (s *Store) DomainByName(ctx context.Context, name string) (directory.Domain, error) {
	d, err := scanDomain(s.domainStmt.QueryRowContext(ctx, name))
	if err != nil {
		return d, fmt.Errorf("domain %s: %w", name, mapErr(err))
	}
	return d, nil
}

func scanDomain(row scanner) (d directory.Domain, err error) {
	var typ string
	err = row.Scan(&d.ID, &d.TenantID, &d.Name, &typ)
	d.Type = directory.DomainType(typ)
	return d, err
}

// RemoveDomain removes an accepted domain that no address uses any more.
func (s *Store) RemoveDomain(ctx context.Context, tenantID int64, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM addresses WHERE tenant_id = ? AND address LIKE ?`, tenantID, "%@"+name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: domain %s still has %d addresses; remove them first", store.ErrInvalid, name, n)
		}
		return execOne(ctx, tx, fmt.Sprintf("domain %s", name), `DELETE FROM domains WHERE tenant_id = ? AND name = ?`, tenantID, name)
	})
}

// claimAddresses records addrs as owned by an object, after checking each is
// in an accepted domain of the tenant. It fails with ErrExists if one is taken.
func claimAddresses(ctx context.Context, tx *sql.Tx, tenantID int64, kind directory.Kind, id int64, primary string, aliases []string) error {
	for i, addr := range append([]string{primary}, aliases...) {
		var domTenant int64
		err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM domains WHERE name = ?`, directory.DomainOf(addr)).Scan(&domTenant)
		if errors.Is(err, sql.ErrNoRows) || err == nil && domTenant != tenantID {
			return fmt.Errorf("%w: %s is not in an accepted domain of this tenant; add the domain first (hve domain add %s)", store.ErrInvalid, addr, directory.DomainOf(addr))
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO addresses (address, tenant_id, kind, object_id, is_primary) VALUES (?, ?, ?, ?, ?)`,
			addr, tenantID, string(kind), id, i == 0)
		if err != nil {
			if err = mapErr(err); errors.Is(err, store.ErrExists) {
				return fmt.Errorf("%w: address %s is already used", store.ErrExists, addr)
			}
			return err
		}
	}
	return nil
}

func releaseAddresses(ctx context.Context, tx *sql.Tx, kind directory.Kind, id int64, aliasesOnly bool) error {
	q := `DELETE FROM addresses WHERE kind = ? AND object_id = ?`
	if aliasesOnly {
		q += ` AND is_primary = 0`
	}
	_, err := tx.ExecContext(ctx, q, string(kind), id)
	return err
}

func (s *Store) aliases(ctx context.Context, kind directory.Kind, id int64) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT address FROM addresses WHERE kind = ? AND object_id = ? AND is_primary = 0 ORDER BY address`, string(kind), id)
	if err != nil {
		return nil, fmt.Errorf("listing aliases: %w", err)
	}
	list, err := collect(rows, func(rows scanner) (a string, err error) { return a, rows.Scan(&a) })
	if list == nil {
		list = []string{}
	}
	return list, err
}

// CreateMailbox creates a mailbox.
func (s *Store) CreateMailbox(ctx context.Context, m directory.Mailbox) (directory.Mailbox, error) {
	m.CreatedAt = time.Now().UTC()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO mailboxes (tenant_id, name, display_name, address, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			m.TenantID, m.Name, m.DisplayName, m.Address, m.PasswordHash, nanos(m.CreatedAt))
		if err != nil {
			return err
		}
		if m.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return claimAddresses(ctx, tx, m.TenantID, directory.KindMailbox, m.ID, m.Address, m.Aliases)
	})
	if err != nil {
		return m, fmt.Errorf("mailbox %s: %w", m.Address, err)
	}
	m.HasPassword = m.PasswordHash != ""
	if m.Aliases == nil {
		m.Aliases = []string{}
	}
	return m, nil
}

const mailboxColumns = `id, tenant_id, name, display_name, address, password_hash, created_at`

func scanMailbox(row scanner) (m directory.Mailbox, err error) {
	var created int64
	err = row.Scan(&m.ID, &m.TenantID, &m.Name, &m.DisplayName, &m.Address, &m.PasswordHash, &created)
	m.CreatedAt, m.HasPassword = fromNanos(created), m.PasswordHash != ""
	return m, err
}

// Mailboxes lists a tenant's mailboxes.
func (s *Store) Mailboxes(ctx context.Context, tenantID int64) ([]directory.Mailbox, error) {
	return s.queryMailboxes(ctx, `WHERE tenant_id = ? ORDER BY address`, tenantID)
}

// Mailbox finds a mailbox by id.
func (s *Store) Mailbox(ctx context.Context, tenantID, id int64) (directory.Mailbox, error) {
	return one(s.queryMailboxes(ctx, `WHERE tenant_id = ? AND id = ?`, tenantID, id))(fmt.Sprintf("mailbox %d", id))
}

func (s *Store) queryMailboxes(ctx context.Context, where string, args ...any) ([]directory.Mailbox, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+mailboxColumns+` FROM mailboxes `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing mailboxes: %w", err)
	}
	// All rows are read before the alias queries: the read pool is bounded.
	list, err := collect(rows, scanMailbox)
	for i := range list {
		if err == nil {
			list[i].Aliases, err = s.aliases(ctx, directory.KindMailbox, list[i].ID)
		}
	}
	return list, err
}

// MailboxByAddress finds a mailbox by primary address or alias.
func (s *Store) MailboxByAddress(ctx context.Context, address string) (directory.Mailbox, error) {
	e, err := s.Lookup(ctx, address)
	if err != nil {
		return directory.Mailbox{}, err
	}
	if e.Kind != directory.KindMailbox {
		return directory.Mailbox{}, fmt.Errorf("mailbox %s: %w (it is a %s)", address, store.ErrNotFound, e.Kind)
	}
	return s.Mailbox(ctx, e.TenantID, e.ID)
}

// RemoveMailbox removes a mailbox, its messages and its group memberships.
func (s *Store) RemoveMailbox(ctx context.Context, tenantID, id int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, fmt.Sprintf("mailbox %d", id), `DELETE FROM mailboxes WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE member_kind = 'mailbox' AND member_id = ?`, id); err != nil {
			return err
		}
		return releaseAddresses(ctx, tx, directory.KindMailbox, id, false)
	})
}

// CreateAccount creates an HVE account.
func (s *Store) CreateAccount(ctx context.Context, a directory.Account) (directory.Account, error) {
	a.CreatedAt = time.Now().UTC()
	a.UpdatedAt = a.CreatedAt
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO accounts (tenant_id, name, display_name, address, password_hash, reply_to, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.TenantID, a.Name, a.DisplayName, a.Address, a.PasswordHash, a.ReplyTo, a.Enabled, nanos(a.CreatedAt), nanos(a.UpdatedAt))
		if err != nil {
			return err
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return claimAddresses(ctx, tx, a.TenantID, directory.KindAccount, a.ID, a.Address, a.Aliases)
	})
	if err != nil {
		return a, fmt.Errorf("account %s: %w", a.Address, err)
	}
	if a.Aliases == nil {
		a.Aliases = []string{}
	}
	return a, nil
}

const accountColumns = `id, tenant_id, name, display_name, address, password_hash, reply_to, enabled, created_at, updated_at`

func scanAccount(row scanner) (a directory.Account, err error) {
	var created, updated int64
	err = row.Scan(&a.ID, &a.TenantID, &a.Name, &a.DisplayName, &a.Address, &a.PasswordHash, &a.ReplyTo, &a.Enabled, &created, &updated)
	a.CreatedAt, a.UpdatedAt = fromNanos(created), fromNanos(updated)
	return a, err
}

// Accounts lists a tenant's HVE accounts.
func (s *Store) Accounts(ctx context.Context, tenantID int64) ([]directory.Account, error) {
	return s.queryAccounts(ctx, `WHERE tenant_id = ? ORDER BY address`, tenantID)
}

// Account finds an account by id.
func (s *Store) Account(ctx context.Context, tenantID, id int64) (directory.Account, error) {
	return one(s.queryAccounts(ctx, `WHERE tenant_id = ? AND id = ?`, tenantID, id))(fmt.Sprintf("account %d", id))
}

// AccountByAddress finds an account by its primary address.
func (s *Store) AccountByAddress(ctx context.Context, address string) (directory.Account, error) {
	return one(s.queryAccounts(ctx, `WHERE address = ?`, address))("account " + address)
}

func (s *Store) queryAccounts(ctx context.Context, where string, args ...any) ([]directory.Account, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	list, err := collect(rows, scanAccount)
	for i := range list {
		if err == nil {
			list[i].Aliases, err = s.aliases(ctx, directory.KindAccount, list[i].ID)
		}
	}
	return list, err
}

// UpdateAccount stores the account's changeable fields.
func (s *Store) UpdateAccount(ctx context.Context, a directory.Account) (directory.Account, error) {
	a.UpdatedAt = time.Now().UTC()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := execOne(ctx, tx, fmt.Sprintf("account %s", a.Address),
			`UPDATE accounts SET display_name = ?, password_hash = ?, reply_to = ?, enabled = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			a.DisplayName, a.PasswordHash, a.ReplyTo, a.Enabled, nanos(a.UpdatedAt), a.TenantID, a.ID)
		if err != nil {
			return err
		}
		if err := releaseAddresses(ctx, tx, directory.KindAccount, a.ID, true); err != nil {
			return err
		}
		// The primary address is already claimed; claim only the aliases.
		for _, alias := range a.Aliases {
			if err := claimAddresses(ctx, tx, a.TenantID, directory.KindAccount, a.ID, alias, nil); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE addresses SET is_primary = 0 WHERE address = ?`, alias); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return a, fmt.Errorf("account %s: %w", a.Address, err)
	}
	return a, nil
}

// RemoveAccount removes an account and its addresses.
func (s *Store) RemoveAccount(ctx context.Context, tenantID, id int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, fmt.Sprintf("account %d", id), `DELETE FROM accounts WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
			return err
		}
		return releaseAddresses(ctx, tx, directory.KindAccount, id, false)
	})
}

// CreateGroup creates a distribution group without members.
func (s *Store) CreateGroup(ctx context.Context, g directory.Group) (directory.Group, error) {
	g.CreatedAt = time.Now().UTC()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO dist_groups (tenant_id, name, address, created_at) VALUES (?, ?, ?, ?)`,
			g.TenantID, g.Name, g.Address, nanos(g.CreatedAt))
		if err != nil {
			return err
		}
		if g.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return claimAddresses(ctx, tx, g.TenantID, directory.KindGroup, g.ID, g.Address, nil)
	})
	if err != nil {
		return g, fmt.Errorf("group %s: %w", g.Address, err)
	}
	g.Members = []directory.Member{}
	return g, nil
}

// Groups lists a tenant's groups with their direct members.
func (s *Store) Groups(ctx context.Context, tenantID int64) ([]directory.Group, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, tenant_id, name, address, created_at FROM dist_groups WHERE tenant_id = ? ORDER BY address`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	list, err := collect(rows, scanGroup)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].Members, err = s.members(ctx, list[i].ID); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// Group finds a group by id, with its direct members.
func (s *Store) Group(ctx context.Context, tenantID, id int64) (directory.Group, error) {
	g, err := scanGroup(s.r.QueryRowContext(ctx, `SELECT id, tenant_id, name, address, created_at FROM dist_groups WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if err != nil {
		return g, fmt.Errorf("group %d: %w", id, mapErr(err))
	}
	g.Members, err = s.members(ctx, id)
	return g, err
}

func scanGroup(row scanner) (g directory.Group, err error) {
	var created int64
	err = row.Scan(&g.ID, &g.TenantID, &g.Name, &g.Address, &created)
	g.CreatedAt = fromNanos(created)
	return g, err
}

func (s *Store) members(ctx context.Context, groupID int64) ([]directory.Member, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT m.member_kind, m.member_id, a.address FROM group_members m
		JOIN addresses a ON a.kind = m.member_kind AND a.object_id = m.member_id AND a.is_primary = 1
		WHERE m.group_id = ? ORDER BY a.address`, groupID)
	if err != nil {
		return nil, fmt.Errorf("listing members of group %d: %w", groupID, err)
	}
	list, err := collect(rows, func(rows scanner) (m directory.Member, err error) {
		var kind string
		err = rows.Scan(&kind, &m.ID, &m.Address)
		m.Kind = directory.Kind(kind)
		return m, err
	})
	if list == nil {
		list = []directory.Member{}
	}
	return list, err
}

// RemoveGroup removes a group, its memberships and its address.
func (s *Store) RemoveGroup(ctx context.Context, tenantID, id int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, fmt.Sprintf("group %d", id), `DELETE FROM dist_groups WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE member_kind = 'group' AND member_id = ?`, id); err != nil {
			return err
		}
		return releaseAddresses(ctx, tx, directory.KindGroup, id, false)
	})
}

// AddGroupMember adds a mailbox or group of the same tenant to a group.
func (s *Store) AddGroupMember(ctx context.Context, tenantID, groupID int64, memberAddress string) error {
	e, err := s.memberEntry(ctx, tenantID, groupID, memberAddress)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO group_members (group_id, member_kind, member_id) VALUES (?, ?, ?)`, groupID, string(e.Kind), e.ID)
	if err = mapErr(err); errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w: %s is already a member", store.ErrExists, memberAddress)
	}
	return err
}

// RemoveGroupMember removes a direct member from a group.
func (s *Store) RemoveGroupMember(ctx context.Context, tenantID, groupID int64, memberAddress string) error {
	e, err := s.memberEntry(ctx, tenantID, groupID, memberAddress)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ? AND member_kind = ? AND member_id = ?`, groupID, string(e.Kind), e.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s is not a member of the group", store.ErrNotFound, memberAddress)
	}
	return nil
}

func (s *Store) memberEntry(ctx context.Context, tenantID, groupID int64, memberAddress string) (directory.Entry, error) {
	if _, err := s.Group(ctx, tenantID, groupID); err != nil {
		return directory.Entry{}, err
	}
	e, err := s.Lookup(ctx, memberAddress)
	if err != nil || e.TenantID != tenantID {
		return e, fmt.Errorf("%w: no mailbox or group %s in this tenant", store.ErrNotFound, memberAddress)
	}
	if e.Kind == directory.KindAccount {
		return e, fmt.Errorf("%w: %s is an HVE account; HVE accounts cannot receive mail, so they cannot be group members", store.ErrInvalid, memberAddress)
	}
	if e.Kind == directory.KindGroup && e.ID == groupID {
		return e, fmt.Errorf("%w: a group cannot be a member of itself", store.ErrInvalid)
	}
	return e, nil
}

const (
	lookupSQL = `SELECT a.tenant_id, a.kind, a.object_id, p.address FROM addresses a
		JOIN addresses p ON p.kind = a.kind AND p.object_id = a.object_id AND p.is_primary = 1
		WHERE a.address = ?`
	domainSQL = `SELECT id, tenant_id, name, type FROM domains WHERE name = ?`
)

// Lookup resolves an address in any tenant.
func (s *Store) Lookup(ctx context.Context, address string) (directory.Entry, error) {
	var e directory.Entry
	var kind string
	err := s.lookupStmt.QueryRowContext(ctx, address).Scan(&e.TenantID, &kind, &e.ID, &e.Address)
	if err != nil {
		return e, fmt.Errorf("address %s: %w", address, mapErr(err))
	}
	e.Kind = directory.Kind(kind)
	return e, nil
}

// one returns the single element of a query's result, or ErrNotFound naming what.
func one[T any](list []T, err error) func(what string) (T, error) {
	return func(what string) (T, error) {
		var zero T
		if err != nil {
			return zero, fmt.Errorf("%s: %w", what, err)
		}
		if len(list) == 0 {
			return zero, fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		return list[0], nil
	}
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// collect scans every row with scan and closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var list []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rows.Err()
}

// execOne runs a statement that must touch exactly one row, or ErrNotFound.
func execOne(ctx context.Context, tx *sql.Tx, what, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
