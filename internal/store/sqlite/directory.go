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

// CreateTenant creates a tenant with default settings and, in the same
// transaction, the built-in report-only policy directory.BuiltInBlockLegacy.
func (s *Store) CreateTenant(ctx context.Context, name string) (directory.Tenant, error) {
	t := directory.Tenant{Name: name, CreatedAt: time.Now().UTC(), Settings: directory.DefaultSettings()}
	settings, err := store.EncodeSettings(t.Settings)
	if err != nil {
		return t, err
	}
	err = s.dirTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO tenants (name, created_at, settings) VALUES (?, ?, ?)`, name, nanos(t.CreatedAt), settings)
		if err != nil {
			return err
		}
		if t.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		_, err = insertCAPolicy(ctx, tx, store.BuiltInCAPolicy(t.ID, t.CreatedAt))
		return err
	})
	if err != nil {
		return t, fmt.Errorf("tenant %q: %w", name, err)
	}
	return t, nil
}

const tenantColumns = `id, name, created_at, settings`

func scanTenant(row scanner) (t directory.Tenant, err error) {
	var created int64
	var settings string
	if err = row.Scan(&t.ID, &t.Name, &created, &settings); err != nil {
		return t, err
	}
	t.CreatedAt = fromNanos(created)
	if t.Settings, err = store.DecodeSettings([]byte(settings)); err != nil {
		return t, fmt.Errorf("settings of tenant %q: %w", t.Name, err)
	}
	return t, nil
}

// Tenants lists all tenants by name.
func (s *Store) Tenants(ctx context.Context) ([]directory.Tenant, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	return collect(rows, scanTenant)
}

// TenantByName finds a tenant.
func (s *Store) TenantByName(ctx context.Context, name string) (directory.Tenant, error) {
	t, err := scanTenant(s.r.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE name = ?`, name))
	if err != nil {
		return t, fmt.Errorf("tenant %q: %w", name, mapErr(err))
	}
	return t, nil
}

// Tenant finds a tenant by id.
func (s *Store) Tenant(ctx context.Context, id int64) (directory.Tenant, error) {
	t, err := scanTenant(s.r.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id))
	if err != nil {
		return t, fmt.Errorf("tenant %d: %w", id, mapErr(err))
	}
	return t, nil
}

// UpdateTenantSettings replaces a tenant's settings after checking that the
// default authentication policy, if named, exists in the tenant.
func (s *Store) UpdateTenantSettings(ctx context.Context, tenantID int64, set directory.Settings) (directory.Tenant, error) {
	settings, err := store.EncodeSettings(set)
	if err != nil {
		return directory.Tenant{}, err
	}
	err = s.dirTx(ctx, func(tx *sql.Tx) error {
		if err := checkAuthPolicy(ctx, tx, tenantID, set.DefaultAuthPolicy); err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("tenant %d", tenantID), `UPDATE tenants SET settings = ? WHERE id = ?`, settings, tenantID)
	})
	if err != nil {
		return directory.Tenant{}, fmt.Errorf("settings of tenant %d: %w", tenantID, err)
	}
	return s.Tenant(ctx, tenantID)
}

// AddDomain adds an accepted domain to a tenant.
func (s *Store) AddDomain(ctx context.Context, d directory.Domain) (directory.Domain, error) {
	res, err := s.dirExec(ctx, `INSERT INTO domains (tenant_id, name, type) VALUES (?, ?, ?)`, d.TenantID, d.Name, string(d.Type))
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
	return s.dirTx(ctx, func(tx *sql.Tx) error {
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
			return store.NotAcceptedError(addr)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO addresses (address, tenant_id, kind, object_id, is_primary) VALUES (?, ?, ?, ?, ?)`,
			addr, tenantID, string(kind), id, i == 0)
		if err != nil {
			return store.AddressInUse(mapErr(err), addr)
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

// checkAuthPolicy fails with ErrInvalid unless name is empty (the tenant's
// default applies) or names an authentication policy of the tenant.
func checkAuthPolicy(ctx context.Context, tx *sql.Tx, tenantID int64, name string) error {
	if name == "" {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM auth_policies WHERE tenant_id = ? AND name = ?`, tenantID, name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return store.UnknownAuthPolicyError(name)
	}
	return nil
}

// CreateMailbox creates a mailbox.
func (s *Store) CreateMailbox(ctx context.Context, m directory.Mailbox) (directory.Mailbox, error) {
	m.CreatedAt = time.Now().UTC()
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		if err := checkAuthPolicy(ctx, tx, m.TenantID, m.AuthPolicy); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO mailboxes (tenant_id, name, display_name, address, password_hash, created_at, auth_policy, tokens_valid_from, converted_from_hve)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.TenantID, m.Name, m.DisplayName, m.Address, m.PasswordHash, nanos(m.CreatedAt), m.AuthPolicy, nanos(m.TokensValidFrom), m.ConvertedFromHVE)
		if err != nil {
			return store.AddressInUse(mapErr(err), m.Address)
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
	m.TokensValidFrom = fromNanos(nanos(m.TokensValidFrom))
	if m.Aliases == nil {
		m.Aliases = []string{}
	}
	return m, nil
}

const mailboxColumns = `id, tenant_id, name, display_name, address, password_hash, created_at, auth_policy, tokens_valid_from, converted_from_hve`

func scanMailbox(row scanner) (m directory.Mailbox, err error) {
	var created, validFrom int64
	err = row.Scan(&m.ID, &m.TenantID, &m.Name, &m.DisplayName, &m.Address, &m.PasswordHash, &created, &m.AuthPolicy, &validFrom, &m.ConvertedFromHVE)
	m.CreatedAt, m.HasPassword, m.TokensValidFrom = fromNanos(created), m.PasswordHash != "", fromNanos(validFrom)
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

// UpdateMailbox stores the mailbox's changeable fields and returns the
// mailbox as stored.
func (s *Store) UpdateMailbox(ctx context.Context, m directory.Mailbox) (directory.Mailbox, error) {
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		if err := checkAuthPolicy(ctx, tx, m.TenantID, m.AuthPolicy); err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("id %d", m.ID),
			`UPDATE mailboxes SET display_name = ?, password_hash = ?, auth_policy = ?, tokens_valid_from = ? WHERE tenant_id = ? AND id = ?`,
			m.DisplayName, m.PasswordHash, m.AuthPolicy, nanos(m.TokensValidFrom), m.TenantID, m.ID)
	})
	if err != nil {
		return m, fmt.Errorf("mailbox %s: %w", m.Address, err)
	}
	return s.Mailbox(ctx, m.TenantID, m.ID)
}

// RemoveMailbox removes a mailbox, its messages and its group and security
// group memberships.
func (s *Store) RemoveMailbox(ctx context.Context, tenantID, id int64) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, fmt.Sprintf("mailbox %d", id), `DELETE FROM mailboxes WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE member_kind = 'mailbox' AND member_id = ?`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM security_group_members WHERE member_kind = 'mailbox' AND member_id = ?`, id); err != nil {
			return err
		}
		return releaseAddresses(ctx, tx, directory.KindMailbox, id, false)
	})
}

// CreateAccount creates an HVE account.
func (s *Store) CreateAccount(ctx context.Context, a directory.Account) (directory.Account, error) {
	a.CreatedAt = time.Now().UTC()
	a.UpdatedAt = a.CreatedAt
	var err error
	if a.AllowedApps, a.AllowedNetworks, err = store.CleanAllowedLists(a.AllowedApps, a.AllowedNetworks); err != nil {
		return a, fmt.Errorf("account %s: %w", a.Address, err)
	}
	err = s.dirTx(ctx, func(tx *sql.Tx) error {
		if err := checkAuthPolicy(ctx, tx, a.TenantID, a.AuthPolicy); err != nil {
			return err
		}
		if err := checkMaxAccounts(ctx, tx, a.TenantID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO accounts (tenant_id, name, display_name, address, password_hash, reply_to, enabled, created_at, updated_at,
			auth_policy, tokens_valid_from, allowed_apps, allowed_networks, daily_recipient_limit, warn_at, failure_report_to)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.TenantID, a.Name, a.DisplayName, a.Address, a.PasswordHash, a.ReplyTo, a.Enabled, nanos(a.CreatedAt), nanos(a.UpdatedAt),
			a.AuthPolicy, nanos(a.TokensValidFrom), jsonList(a.AllowedApps), jsonList(a.AllowedNetworks), a.DailyRecipientLimit, a.WarnAt,
			a.FailureReportTo)
		if err != nil {
			return store.AddressInUse(mapErr(err), a.Address)
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		return claimAddresses(ctx, tx, a.TenantID, directory.KindAccount, a.ID, a.Address, a.Aliases)
	})
	if err != nil {
		return a, fmt.Errorf("account %s: %w", a.Address, err)
	}
	a.TokensValidFrom = fromNanos(nanos(a.TokensValidFrom))
	if a.Aliases == nil {
		a.Aliases = []string{}
	}
	return a, nil
}

// checkMaxAccounts fails with store.ErrLimit when the tenant already has
// its Settings.MaxHVEAccounts accounts. It runs in the write transaction
// that inserts the account, so racing creations are counted one by one.
func checkMaxAccounts(ctx context.Context, tx *sql.Tx, tenantID int64) error {
	t, err := scanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, tenantID))
	if err != nil {
		return fmt.Errorf("tenant %d: %w", tenantID, mapErr(err))
	}
	max := t.Settings.MaxHVEAccounts
	if max <= 0 {
		return nil
	}
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE tenant_id = ?`, tenantID).Scan(&n); err != nil {
		return err
	}
	if n >= max {
		return store.MaxAccountsError(t.Name, n)
	}
	return nil
}

const accountColumns = `id, tenant_id, name, display_name, address, password_hash, reply_to, enabled, created_at, updated_at,
	auth_policy, tokens_valid_from, allowed_apps, allowed_networks, daily_recipient_limit, warn_at, failure_report_to`

func scanAccount(row scanner) (a directory.Account, err error) {
	var created, updated, validFrom int64
	var apps, networks string
	err = row.Scan(&a.ID, &a.TenantID, &a.Name, &a.DisplayName, &a.Address, &a.PasswordHash, &a.ReplyTo, &a.Enabled, &created, &updated,
		&a.AuthPolicy, &validFrom, &apps, &networks, &a.DailyRecipientLimit, &a.WarnAt, &a.FailureReportTo)
	if err != nil {
		return a, err
	}
	a.CreatedAt, a.UpdatedAt, a.TokensValidFrom = fromNanos(created), fromNanos(updated), fromNanos(validFrom)
	if err = fromJSONList(apps, &a.AllowedApps); err == nil {
		err = fromJSONList(networks, &a.AllowedNetworks)
	}
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
	var err error
	if a.AllowedApps, a.AllowedNetworks, err = store.CleanAllowedLists(a.AllowedApps, a.AllowedNetworks); err != nil {
		return a, fmt.Errorf("account %s: %w", a.Address, err)
	}
	err = s.dirTx(ctx, func(tx *sql.Tx) error {
		if err := checkAuthPolicy(ctx, tx, a.TenantID, a.AuthPolicy); err != nil {
			return err
		}
		err := execOne(ctx, tx, fmt.Sprintf("account %s", a.Address),
			`UPDATE accounts SET display_name = ?, password_hash = ?, reply_to = ?, enabled = ?, updated_at = ?,
				auth_policy = ?, tokens_valid_from = ?, allowed_apps = ?, allowed_networks = ?, daily_recipient_limit = ?, warn_at = ?,
				failure_report_to = ?
				WHERE tenant_id = ? AND id = ?`,
			a.DisplayName, a.PasswordHash, a.ReplyTo, a.Enabled, nanos(a.UpdatedAt),
			a.AuthPolicy, nanos(a.TokensValidFrom), jsonList(a.AllowedApps), jsonList(a.AllowedNetworks), a.DailyRecipientLimit, a.WarnAt,
			a.FailureReportTo, a.TenantID, a.ID)
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
	a.TokensValidFrom = fromNanos(nanos(a.TokensValidFrom))
	return a, nil
}

// RemoveAccount removes an account, its addresses and its security group
// memberships.
func (s *Store) RemoveAccount(ctx context.Context, tenantID, id int64) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		if err := execOne(ctx, tx, fmt.Sprintf("account %d", id), `DELETE FROM accounts WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM security_group_members WHERE member_kind = 'account' AND member_id = ?`, id); err != nil {
			return err
		}
		return releaseAddresses(ctx, tx, directory.KindAccount, id, false)
	})
}

// ConvertAccountToMailbox replaces an HVE account by a mailbox in one
// transaction. The mailbox takes over the account's name, display name,
// addresses, password, authentication policy and tokens-valid-from, and its
// group and security group memberships; the account is gone. Reply-to,
// allowed apps and networks have no place on a mailbox and are dropped.
func (s *Store) ConvertAccountToMailbox(ctx context.Context, tenantID, accountID int64) (directory.Mailbox, error) {
	var mailboxID int64
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		// INSERT ... SELECT copies the account's columns within the
		// transaction, so nothing can change them before the move.
		res, err := tx.ExecContext(ctx, `INSERT INTO mailboxes (tenant_id, name, display_name, address, password_hash, created_at, auth_policy, tokens_valid_from, converted_from_hve)
			SELECT tenant_id, name, display_name, address, password_hash, ?, auth_policy, tokens_valid_from, 1 FROM accounts WHERE tenant_id = ? AND id = ?`,
			nanos(time.Now()), tenantID, accountID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		if mailboxID, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, q := range []string{
			`UPDATE addresses SET kind = 'mailbox', object_id = ? WHERE kind = 'account' AND object_id = ?`,
			`UPDATE group_members SET member_kind = 'mailbox', member_id = ? WHERE member_kind = 'account' AND member_id = ?`,
			`UPDATE security_group_members SET member_kind = 'mailbox', member_id = ? WHERE member_kind = 'account' AND member_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, mailboxID, accountID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, accountID)
		return err
	})
	if err != nil {
		return directory.Mailbox{}, fmt.Errorf("converting account %d to a mailbox: %w", accountID, err)
	}
	return s.Mailbox(ctx, tenantID, mailboxID)
}

// CreateGroup creates a distribution group without members.
func (s *Store) CreateGroup(ctx context.Context, g directory.Group) (directory.Group, error) {
	g.CreatedAt = time.Now().UTC()
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO dist_groups (tenant_id, name, address, created_at) VALUES (?, ?, ?, ?)`,
			g.TenantID, g.Name, g.Address, nanos(g.CreatedAt))
		if err != nil {
			return store.AddressInUse(mapErr(err), g.Address)
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
		if list[i].Members, err = s.members(ctx, "group_members", list[i].ID); err != nil {
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
	g.Members, err = s.members(ctx, "group_members", id)
	return g, err
}

func scanGroup(row scanner) (g directory.Group, err error) {
	var created int64
	err = row.Scan(&g.ID, &g.TenantID, &g.Name, &g.Address, &created)
	g.CreatedAt = fromNanos(created)
	return g, err
}

// members lists the direct members of a distribution group (table
// group_members) or a security group (security_group_members), by address.
func (s *Store) members(ctx context.Context, table string, groupID int64) ([]directory.Member, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT m.member_kind, m.member_id, a.address FROM `+table+` m
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
	return s.dirTx(ctx, func(tx *sql.Tx) error {
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
	_, err = s.dirExec(ctx, `INSERT INTO group_members (group_id, member_kind, member_id) VALUES (?, ?, ?)`, groupID, string(e.Kind), e.ID)
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
	res, err := s.dirExec(ctx, `DELETE FROM group_members WHERE group_id = ? AND member_kind = ? AND member_id = ?`, groupID, string(e.Kind), e.ID)
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
	if errors.Is(err, store.ErrNotFound) {
		e = directory.Entry{}
	} else if err != nil {
		return e, err
	}
	return e, store.CheckGroupMember(e, tenantID, groupID, memberAddress)
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
