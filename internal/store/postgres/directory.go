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

// Directory writes that check something before they write lock the rows
// the check reads until their transaction ends, so that a write on another
// node cannot slip in between:
//
//   - Writes that name an authentication policy hold it FOR SHARE
//     (checkAuthPolicy); RemoveAuthPolicy and renames lock it FOR UPDATE
//     before they look for users of the old name.
//   - CreateAccount locks the tenant row before it counts the tenant's
//     accounts (checkMaxAccounts).
//   - New addresses hold their domain FOR SHARE (claimAddress);
//     RemoveDomain locks it FOR UPDATE before it counts addresses.
//   - New memberships hold the group and the member's address FOR SHARE;
//     removing an object deletes its addresses before its memberships, so
//     that the removal waits for a membership being added and then removes
//     it too.
//
// Text is sorted with COLLATE "C", byte order, as SQLite sorts it, whatever
// the collation of the database.

// ---- tenants ----

// CreateTenant creates a tenant with default settings and, in the same
// transaction, the built-in report-only policy directory.BuiltInBlockLegacy.
func (s *Store) CreateTenant(ctx context.Context, name string) (directory.Tenant, error) {
	t := directory.Tenant{Name: name, CreatedAt: time.Now().UTC(), Settings: directory.DefaultSettings()}
	settings, err := store.EncodeSettings(t.Settings)
	if err != nil {
		return t, err
	}
	err = s.dirTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO tenants (name, created_at, settings) VALUES ($1, $2, $3) RETURNING id`,
			name, nanos(t.CreatedAt), settings).Scan(&t.ID)
		if err != nil {
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
	var settings []byte
	if err = row.Scan(&t.ID, &t.Name, &created, &settings); err != nil {
		return t, err
	}
	t.CreatedAt = fromNanos(created)
	if t.Settings, err = store.DecodeSettings(settings); err != nil {
		return t, fmt.Errorf("settings of tenant %q: %w", t.Name, err)
	}
	return t, nil
}

// Tenants lists all tenants by name.
func (s *Store) Tenants(ctx context.Context) ([]directory.Tenant, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY name COLLATE "C"`)
	list, err := collect(rows, err, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	return list, nil
}

// TenantByName finds a tenant.
func (s *Store) TenantByName(ctx context.Context, name string) (directory.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE name = $1`, name))
	if err != nil {
		return t, fmt.Errorf("tenant %q: %w", name, mapErr(err))
	}
	return t, nil
}

// Tenant finds a tenant by id.
func (s *Store) Tenant(ctx context.Context, id int64) (directory.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
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
	err = s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := checkAuthPolicy(ctx, tx, tenantID, set.DefaultAuthPolicy); err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("tenant %d", tenantID), `UPDATE tenants SET settings = $1 WHERE id = $2`, settings, tenantID)
	})
	if err != nil {
		return directory.Tenant{}, fmt.Errorf("settings of tenant %d: %w", tenantID, err)
	}
	return s.Tenant(ctx, tenantID)
}

// checkAuthPolicy fails with ErrInvalid unless name is empty (the tenant's
// default applies) or names an authentication policy of the tenant. The
// policy stays locked FOR SHARE until tx ends, so that it cannot be removed
// or renamed while tx assigns it.
func checkAuthPolicy(ctx context.Context, tx pgx.Tx, tenantID int64, name string) error {
	if name == "" {
		return nil
	}
	tag, err := tx.Exec(ctx, `SELECT FROM auth_policies WHERE tenant_id = $1 AND name = $2 FOR SHARE`, tenantID, name)
	if err != nil {
		return fmt.Errorf("checking authentication policy %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return store.UnknownAuthPolicyError(name)
	}
	return nil
}

// ---- domains ----

// AddDomain adds an accepted domain to a tenant.
func (s *Store) AddDomain(ctx context.Context, d directory.Domain) (directory.Domain, error) {
	defer s.dirChanged()
	err := s.pool.QueryRow(ctx, `INSERT INTO domains (tenant_id, name, type) VALUES ($1, $2, $3) RETURNING id`,
		d.TenantID, d.Name, string(d.Type)).Scan(&d.ID)
	if err != nil {
		return d, fmt.Errorf("domain %s: %w", d.Name, mapErr(err))
	}
	return d, nil
}

// Domains lists a tenant's accepted domains.
func (s *Store) Domains(ctx context.Context, tenantID int64) ([]directory.Domain, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, name, type FROM domains WHERE tenant_id = $1 ORDER BY name COLLATE "C"`, tenantID)
	list, err := collect(rows, err, scanDomain)
	if err != nil {
		return nil, fmt.Errorf("listing domains: %w", err)
	}
	return list, nil
}

// domainSQL finds a domain on the SMTP hot path (every RCPT); pgx prepares
// it once per connection.
const domainSQL = `SELECT id, tenant_id, name, type FROM domains WHERE name = $1`

// DomainByName finds an accepted domain in any tenant.
func (s *Store) DomainByName(ctx context.Context, name string) (directory.Domain, error) {
	d, err := scanDomain(s.pool.QueryRow(ctx, domainSQL, name))
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
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		// Locked before the count: claimAddress holds the domain FOR SHARE
		// while it adds an address in it, so none can appear unseen.
		if _, err := tx.Exec(ctx, `SELECT FROM domains WHERE tenant_id = $1 AND name = $2 FOR UPDATE`, tenantID, name); err != nil {
			return err
		}
		var n int
		err := tx.QueryRow(ctx, `SELECT count(*) FROM addresses WHERE tenant_id = $1 AND right(address, length($2)) = $2`,
			tenantID, "@"+name).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: domain %s still has %d addresses; remove them first", store.ErrInvalid, name, n)
		}
		return execOne(ctx, tx, fmt.Sprintf("domain %s", name), `DELETE FROM domains WHERE tenant_id = $1 AND name = $2`, tenantID, name)
	})
}

// ---- addresses ----

// claimAddresses records the primary address (unless empty) and the aliases
// of an object; see claimAddress.
func claimAddresses(ctx context.Context, tx pgx.Tx, tenantID int64, kind directory.Kind, id int64, primary string, aliases []string) error {
	if primary != "" {
		if err := claimAddress(ctx, tx, tenantID, kind, id, primary, true); err != nil {
			return err
		}
	}
	for _, alias := range aliases {
		if err := claimAddress(ctx, tx, tenantID, kind, id, alias, false); err != nil {
			return err
		}
	}
	return nil
}

// claimAddress records addr as owned by an object, after checking that it
// is in an accepted domain of the tenant; the domain stays locked FOR SHARE
// until tx ends (see RemoveDomain). The primary key of addresses keeps an
// address unique across kinds and tenants, also between nodes: a taken one
// fails with ErrExists.
func claimAddress(ctx context.Context, tx pgx.Tx, tenantID int64, kind directory.Kind, id int64, addr string, primary bool) error {
	var domTenant int64
	err := tx.QueryRow(ctx, `SELECT tenant_id FROM domains WHERE name = $1 FOR SHARE`, directory.DomainOf(addr)).Scan(&domTenant)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && domTenant != tenantID {
		return store.NotAcceptedError(addr)
	}
	if err != nil {
		return fmt.Errorf("checking the domain of %s: %w", addr, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO addresses (address, tenant_id, kind, object_id, is_primary) VALUES ($1, $2, $3, $4, $5)`,
		addr, tenantID, string(kind), id, primary)
	return store.AddressInUse(mapErr(err), addr)
}

// releaseAddresses deletes the addresses of an object, or only its aliases.
func releaseAddresses(ctx context.Context, tx pgx.Tx, kind directory.Kind, id int64, aliasesOnly bool) error {
	q := `DELETE FROM addresses WHERE kind = $1 AND object_id = $2`
	if aliasesOnly {
		q += ` AND NOT is_primary`
	}
	if _, err := tx.Exec(ctx, q, string(kind), id); err != nil {
		return fmt.Errorf("releasing the addresses of %s %d: %w", kind, id, err)
	}
	return nil
}

// aliasesColumn is a column of the aliases of the kind's objects in table,
// sorted, so that a list of objects takes one query.
func aliasesColumn(kind directory.Kind, table string) string {
	return `array(SELECT a.address FROM addresses a WHERE a.kind = '` + string(kind) + `' AND a.object_id = ` + table + `.id
		AND NOT a.is_primary ORDER BY a.address COLLATE "C")`
}

// ---- mailboxes ----

// CreateMailbox creates a mailbox.
func (s *Store) CreateMailbox(ctx context.Context, m directory.Mailbox) (directory.Mailbox, error) {
	m.CreatedAt = time.Now().UTC()
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := checkAuthPolicy(ctx, tx, m.TenantID, m.AuthPolicy); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `INSERT INTO mailboxes (tenant_id, name, display_name, address, password_hash, created_at, auth_policy, tokens_valid_from, converted_from_hve)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
			m.TenantID, m.Name, m.DisplayName, m.Address, m.PasswordHash, nanos(m.CreatedAt), m.AuthPolicy, nanos(m.TokensValidFrom), m.ConvertedFromHVE).Scan(&m.ID)
		if err != nil {
			return store.AddressInUse(mapErr(err), m.Address)
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

var mailboxColumns = `id, tenant_id, name, display_name, address, password_hash, created_at, auth_policy, tokens_valid_from, converted_from_hve, ` +
	aliasesColumn(directory.KindMailbox, "mailboxes")

func scanMailbox(row scanner) (m directory.Mailbox, err error) {
	var created, validFrom int64
	err = row.Scan(&m.ID, &m.TenantID, &m.Name, &m.DisplayName, &m.Address, &m.PasswordHash, &created, &m.AuthPolicy, &validFrom, &m.ConvertedFromHVE, &m.Aliases)
	m.CreatedAt, m.HasPassword, m.TokensValidFrom = fromNanos(created), m.PasswordHash != "", fromNanos(validFrom)
	if m.Aliases == nil {
		m.Aliases = []string{}
	}
	return m, err
}

// Mailboxes lists a tenant's mailboxes.
func (s *Store) Mailboxes(ctx context.Context, tenantID int64) ([]directory.Mailbox, error) {
	return s.queryMailboxes(ctx, `WHERE tenant_id = $1 ORDER BY address COLLATE "C"`, tenantID)
}

// Mailbox finds a mailbox by id.
func (s *Store) Mailbox(ctx context.Context, tenantID, id int64) (directory.Mailbox, error) {
	return one(s.queryMailboxes(ctx, `WHERE tenant_id = $1 AND id = $2`, tenantID, id))(fmt.Sprintf("mailbox %d", id))
}

func (s *Store) queryMailboxes(ctx context.Context, where string, args ...any) ([]directory.Mailbox, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+mailboxColumns+` FROM mailboxes `+where, args...)
	list, err := collect(rows, err, scanMailbox)
	if err != nil {
		return nil, fmt.Errorf("listing mailboxes: %w", err)
	}
	return list, nil
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
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := checkAuthPolicy(ctx, tx, m.TenantID, m.AuthPolicy); err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("id %d", m.ID),
			`UPDATE mailboxes SET display_name = $1, password_hash = $2, auth_policy = $3, tokens_valid_from = $4 WHERE tenant_id = $5 AND id = $6`,
			m.DisplayName, m.PasswordHash, m.AuthPolicy, nanos(m.TokensValidFrom), m.TenantID, m.ID)
	})
	if err != nil {
		return m, fmt.Errorf("mailbox %s: %w", m.Address, err)
	}
	return s.Mailbox(ctx, m.TenantID, m.ID)
}

// RemoveMailbox removes a mailbox, its messages (ON DELETE CASCADE) and its
// group and security group memberships.
func (s *Store) RemoveMailbox(ctx context.Context, tenantID, id int64) error {
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := execOne(ctx, tx, fmt.Sprintf("mailbox %d", id), `DELETE FROM mailboxes WHERE tenant_id = $1 AND id = $2`, tenantID, id); err != nil {
			return err
		}
		return removeObject(ctx, tx, directory.KindMailbox, id, "group_members", "security_group_members")
	})
}

// removeObject deletes the addresses of a removed object, then its
// memberships in the given tables. In this order, the deletion of an
// address waits for a membership being added (which holds the address FOR
// SHARE), and the membership deletes, which start afterwards, see it.
func removeObject(ctx context.Context, tx pgx.Tx, kind directory.Kind, id int64, memberships ...string) error {
	if err := releaseAddresses(ctx, tx, kind, id, false); err != nil {
		return err
	}
	for _, table := range memberships {
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE member_kind = $1 AND member_id = $2`, string(kind), id); err != nil {
			return fmt.Errorf("ending the memberships of %s %d: %w", kind, id, err)
		}
	}
	return nil
}

// ---- accounts ----

// CreateAccount creates an HVE account.
func (s *Store) CreateAccount(ctx context.Context, a directory.Account) (directory.Account, error) {
	a.CreatedAt = time.Now().UTC()
	a.UpdatedAt = a.CreatedAt
	var err error
	if a.AllowedApps, a.AllowedNetworks, err = store.CleanAllowedLists(a.AllowedApps, a.AllowedNetworks); err != nil {
		return a, fmt.Errorf("account %s: %w", a.Address, err)
	}
	err = s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := checkAuthPolicy(ctx, tx, a.TenantID, a.AuthPolicy); err != nil {
			return err
		}
		if err := checkMaxAccounts(ctx, tx, a.TenantID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `INSERT INTO accounts (tenant_id, name, display_name, address, password_hash, reply_to, enabled, created_at, updated_at,
			auth_policy, tokens_valid_from, allowed_apps, allowed_networks, daily_recipient_limit, warn_at, failure_report_to)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
			a.TenantID, a.Name, a.DisplayName, a.Address, a.PasswordHash, a.ReplyTo, a.Enabled, nanos(a.CreatedAt), nanos(a.UpdatedAt),
			a.AuthPolicy, nanos(a.TokensValidFrom), jsonList(a.AllowedApps), jsonList(a.AllowedNetworks), a.DailyRecipientLimit, a.WarnAt,
			a.FailureReportTo).Scan(&a.ID)
		if err != nil {
			return store.AddressInUse(mapErr(err), a.Address)
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
// its Settings.MaxHVEAccounts accounts. It locks the tenant row until tx
// ends, so that creations racing on any number of nodes count one after
// the other: each counts in a statement that starts once the one before
// has committed its account. FOR NO KEY UPDATE, unlike FOR UPDATE, does not
// hold back inserts that merely refer to the tenant.
func checkMaxAccounts(ctx context.Context, tx pgx.Tx, tenantID int64) error {
	t, err := scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, tenantID))
	if err != nil {
		return fmt.Errorf("tenant %d: %w", tenantID, mapErr(err))
	}
	max := t.Settings.MaxHVEAccounts
	if max <= 0 {
		return nil
	}
	var n int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE tenant_id = $1`, tenantID).Scan(&n); err != nil {
		return fmt.Errorf("counting the accounts of tenant %d: %w", tenantID, err)
	}
	if n >= max {
		return store.MaxAccountsError(t.Name, n)
	}
	return nil
}

var accountColumns = `id, tenant_id, name, display_name, address, password_hash, reply_to, enabled, created_at, updated_at,
	auth_policy, tokens_valid_from, allowed_apps, allowed_networks, daily_recipient_limit, warn_at, failure_report_to, ` +
	aliasesColumn(directory.KindAccount, "accounts")

func scanAccount(row scanner) (a directory.Account, err error) {
	var created, updated, validFrom int64
	var apps, networks []byte
	err = row.Scan(&a.ID, &a.TenantID, &a.Name, &a.DisplayName, &a.Address, &a.PasswordHash, &a.ReplyTo, &a.Enabled, &created, &updated,
		&a.AuthPolicy, &validFrom, &apps, &networks, &a.DailyRecipientLimit, &a.WarnAt, &a.FailureReportTo, &a.Aliases)
	if err != nil {
		return a, err
	}
	a.CreatedAt, a.UpdatedAt, a.TokensValidFrom = fromNanos(created), fromNanos(updated), fromNanos(validFrom)
	if a.Aliases == nil {
		a.Aliases = []string{}
	}
	if err = fromJSONList(apps, &a.AllowedApps); err == nil {
		err = fromJSONList(networks, &a.AllowedNetworks)
	}
	return a, err
}

// Accounts lists a tenant's HVE accounts.
func (s *Store) Accounts(ctx context.Context, tenantID int64) ([]directory.Account, error) {
	return s.queryAccounts(ctx, `WHERE tenant_id = $1 ORDER BY address COLLATE "C"`, tenantID)
}

// Account finds an account by id.
func (s *Store) Account(ctx context.Context, tenantID, id int64) (directory.Account, error) {
	return one(s.queryAccounts(ctx, `WHERE tenant_id = $1 AND id = $2`, tenantID, id))(fmt.Sprintf("account %d", id))
}

// AccountByAddress finds an account by its primary address.
func (s *Store) AccountByAddress(ctx context.Context, address string) (directory.Account, error) {
	return one(s.queryAccounts(ctx, `WHERE address = $1`, address))("account " + address)
}

func (s *Store) queryAccounts(ctx context.Context, where string, args ...any) ([]directory.Account, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts `+where, args...)
	list, err := collect(rows, err, scanAccount)
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	return list, nil
}

// UpdateAccount stores the account's changeable fields.
func (s *Store) UpdateAccount(ctx context.Context, a directory.Account) (directory.Account, error) {
	a.UpdatedAt = time.Now().UTC()
	var err error
	if a.AllowedApps, a.AllowedNetworks, err = store.CleanAllowedLists(a.AllowedApps, a.AllowedNetworks); err != nil {
		return a, fmt.Errorf("account %s: %w", a.Address, err)
	}
	err = s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := checkAuthPolicy(ctx, tx, a.TenantID, a.AuthPolicy); err != nil {
			return err
		}
		err := execOne(ctx, tx, fmt.Sprintf("account %s", a.Address),
			`UPDATE accounts SET display_name = $1, password_hash = $2, reply_to = $3, enabled = $4, updated_at = $5,
				auth_policy = $6, tokens_valid_from = $7, allowed_apps = $8, allowed_networks = $9, daily_recipient_limit = $10, warn_at = $11,
				failure_report_to = $12
				WHERE tenant_id = $13 AND id = $14`,
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
		return claimAddresses(ctx, tx, a.TenantID, directory.KindAccount, a.ID, "", a.Aliases)
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
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := execOne(ctx, tx, fmt.Sprintf("account %d", id), `DELETE FROM accounts WHERE tenant_id = $1 AND id = $2`, tenantID, id); err != nil {
			return err
		}
		return removeObject(ctx, tx, directory.KindAccount, id, "security_group_members")
	})
}

// ConvertAccountToMailbox replaces an HVE account by a mailbox in one
// transaction. The mailbox takes over the account's name, display name,
// addresses, password, authentication policy and tokens-valid-from, and its
// group and security group memberships; the account is gone. Reply-to,
// allowed apps and networks have no place on a mailbox and are dropped.
func (s *Store) ConvertAccountToMailbox(ctx context.Context, tenantID, accountID int64) (directory.Mailbox, error) {
	var mailboxID int64
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		// INSERT ... SELECT copies the account as it is when locked: an
		// update of the account lands before the copy or finds it gone, and
		// a second conversion waits and then finds no account
		// (ErrNotFound).
		err := tx.QueryRow(ctx, `INSERT INTO mailboxes (tenant_id, name, display_name, address, password_hash, created_at, auth_policy, tokens_valid_from, converted_from_hve)
			SELECT tenant_id, name, display_name, address, password_hash, $1, auth_policy, tokens_valid_from, true FROM accounts
			WHERE tenant_id = $2 AND id = $3 FOR UPDATE
			RETURNING id`,
			nanos(time.Now()), tenantID, accountID).Scan(&mailboxID)
		if err != nil {
			return err
		}
		// Addresses first: a membership being added holds the address, so
		// the statements after this one see it.
		for _, q := range []string{
			`UPDATE addresses SET kind = 'mailbox', object_id = $1 WHERE kind = 'account' AND object_id = $2`,
			`UPDATE group_members SET member_kind = 'mailbox', member_id = $1 WHERE member_kind = 'account' AND member_id = $2`,
			`UPDATE security_group_members SET member_kind = 'mailbox', member_id = $1 WHERE member_kind = 'account' AND member_id = $2`,
		} {
			if _, err := tx.Exec(ctx, q, mailboxID, accountID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, accountID)
		return err
	})
	if err != nil {
		return directory.Mailbox{}, fmt.Errorf("converting account %d to a mailbox: %w", accountID, err)
	}
	return s.Mailbox(ctx, tenantID, mailboxID)
}

// ---- distribution groups ----

// CreateGroup creates a distribution group without members.
func (s *Store) CreateGroup(ctx context.Context, g directory.Group) (directory.Group, error) {
	g.CreatedAt = time.Now().UTC()
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO dist_groups (tenant_id, name, address, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			g.TenantID, g.Name, g.Address, nanos(g.CreatedAt)).Scan(&g.ID)
		if err != nil {
			return store.AddressInUse(mapErr(err), g.Address)
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
	return s.queryGroups(ctx, `WHERE tenant_id = $1 ORDER BY address COLLATE "C"`, tenantID)
}

// Group finds a group by id, with its direct members.
func (s *Store) Group(ctx context.Context, tenantID, id int64) (directory.Group, error) {
	return one(s.queryGroups(ctx, `WHERE tenant_id = $1 AND id = $2`, tenantID, id))(fmt.Sprintf("group %d", id))
}

func (s *Store) queryGroups(ctx context.Context, where string, args ...any) ([]directory.Group, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, name, address, created_at FROM dist_groups `+where, args...)
	list, err := collect(rows, err, func(row scanner) (g directory.Group, err error) {
		var created int64
		err = row.Scan(&g.ID, &g.TenantID, &g.Name, &g.Address, &created)
		g.CreatedAt = fromNanos(created)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	ids := make([]int64, len(list))
	for i, g := range list {
		ids[i] = g.ID
	}
	members, err := s.members(ctx, "group_members", ids)
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i].Members = members[list[i].ID]
	}
	return list, nil
}

// members lists the direct members of distribution groups (table
// group_members) or security groups (security_group_members), by group
// id and then by address. Every group of ids has a list, empty or not.
func (s *Store) members(ctx context.Context, table string, ids []int64) (map[int64][]directory.Member, error) {
	byGroup := make(map[int64][]directory.Member, len(ids))
	for _, id := range ids {
		byGroup[id] = []directory.Member{}
	}
	if len(ids) == 0 {
		return byGroup, nil
	}
	type row struct {
		group int64
		directory.Member
	}
	rows, err := s.pool.Query(ctx, `
		SELECT m.group_id, m.member_kind, m.member_id, a.address FROM `+table+` m
		JOIN addresses a ON a.kind = m.member_kind AND a.object_id = m.member_id AND a.is_primary
		WHERE m.group_id = ANY($1) ORDER BY a.address COLLATE "C"`, ids)
	list, err := collect(rows, err, func(rows scanner) (r row, err error) {
		var kind string
		err = rows.Scan(&r.group, &kind, &r.ID, &r.Address)
		r.Kind = directory.Kind(kind)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing group members: %w", err)
	}
	for _, r := range list {
		byGroup[r.group] = append(byGroup[r.group], r.Member)
	}
	return byGroup, nil
}

// RemoveGroup removes a group, its memberships (its members' by ON DELETE
// CASCADE) and its address.
func (s *Store) RemoveGroup(ctx context.Context, tenantID, id int64) error {
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := execOne(ctx, tx, fmt.Sprintf("group %d", id), `DELETE FROM dist_groups WHERE tenant_id = $1 AND id = $2`, tenantID, id); err != nil {
			return err
		}
		return removeObject(ctx, tx, directory.KindGroup, id, "group_members")
	})
}

// AddGroupMember adds a mailbox or group of the same tenant to a group.
func (s *Store) AddGroupMember(ctx context.Context, tenantID, groupID int64, memberAddress string) error {
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		e, err := groupMember(ctx, tx, tenantID, groupID, memberAddress)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO group_members (group_id, member_kind, member_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			groupID, string(e.Kind), e.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %s is already a member", store.ErrExists, memberAddress)
		}
		return nil
	})
}

// RemoveGroupMember removes a direct member from a group.
func (s *Store) RemoveGroupMember(ctx context.Context, tenantID, groupID int64, memberAddress string) error {
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		e, err := groupMember(ctx, tx, tenantID, groupID, memberAddress)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1 AND member_kind = $2 AND member_id = $3`, groupID, string(e.Kind), e.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %s is not a member of the group", store.ErrNotFound, memberAddress)
		}
		return nil
	})
}

// groupMember resolves the tenant's group and the member memberAddress
// names, locking both FOR SHARE until tx ends so that neither goes before
// the membership is written.
func groupMember(ctx context.Context, tx pgx.Tx, tenantID, groupID int64, memberAddress string) (directory.Entry, error) {
	tag, err := tx.Exec(ctx, `SELECT FROM dist_groups WHERE tenant_id = $1 AND id = $2 FOR SHARE`, tenantID, groupID)
	if err != nil {
		return directory.Entry{}, err
	}
	if tag.RowsAffected() == 0 {
		return directory.Entry{}, fmt.Errorf("group %d: %w", groupID, store.ErrNotFound)
	}
	e, err := lookup(ctx, tx, lookupSQL+lockMember, memberAddress)
	if errors.Is(err, store.ErrNotFound) {
		e = directory.Entry{}
	} else if err != nil {
		return e, err
	}
	return e, store.CheckGroupMember(e, tenantID, groupID, memberAddress)
}

// ---- lookup ----

const (
	// lookupSQL resolves an address on the SMTP hot path (every RCPT);
	// pgx prepares it once per connection.
	lookupSQL = `SELECT a.tenant_id, a.kind, a.object_id, p.address FROM addresses a
		JOIN addresses p ON p.kind = a.kind AND p.object_id = a.object_id AND p.is_primary
		WHERE a.address = $1`
	// lockMember makes lookupSQL hold the address it resolved until the
	// transaction ends, for adding a membership (see removeObject).
	lockMember = ` FOR SHARE OF a`
)

// Lookup resolves an address in any tenant.
func (s *Store) Lookup(ctx context.Context, address string) (directory.Entry, error) {
	return lookup(ctx, s.pool, lookupSQL, address)
}

// lookup runs lookupSQL, or a variant of it, for address.
func lookup(ctx context.Context, q querier, sql, address string) (directory.Entry, error) {
	var e directory.Entry
	var kind string
	if err := q.QueryRow(ctx, sql, address).Scan(&e.TenantID, &kind, &e.ID, &e.Address); err != nil {
		return e, fmt.Errorf("address %s: %w", address, mapErr(err))
	}
	e.Kind = directory.Kind(kind)
	return e, nil
}
