package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
)

// nonNil returns list, or an empty list for nil: the admin API encodes lists
// as they are, and an empty one must be [] in JSON, not null.
func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

// ---- authentication policies ----

// CreateAuthPolicy creates an authentication policy; its name must be new
// in the tenant.
func (s *Store) CreateAuthPolicy(ctx context.Context, p directory.AuthPolicy) (directory.AuthPolicy, error) {
	if strings.TrimSpace(p.Name) == "" {
		return p, fmt.Errorf("%w: an authentication policy needs a name", store.ErrInvalid)
	}
	p.CreatedAt = time.Now().UTC()
	res, err := s.dirExec(ctx, `INSERT INTO auth_policies (tenant_id, name, allow_basic_auth_smtp, created_at) VALUES (?, ?, ?, ?)`,
		p.TenantID, p.Name, p.AllowBasicAuthSMTP, nanos(p.CreatedAt))
	if err != nil {
		return p, fmt.Errorf("authentication policy %q: %w", p.Name, mapErr(err))
	}
	p.ID, err = res.LastInsertId()
	return p, err
}

func (s *Store) queryAuthPolicies(ctx context.Context, where string, args ...any) ([]directory.AuthPolicy, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, tenant_id, name, allow_basic_auth_smtp, created_at FROM auth_policies `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing authentication policies: %w", err)
	}
	list, err := collect(rows, func(row scanner) (p directory.AuthPolicy, err error) {
		var created int64
		err = row.Scan(&p.ID, &p.TenantID, &p.Name, &p.AllowBasicAuthSMTP, &created)
		p.CreatedAt = fromNanos(created)
		return p, err
	})
	return nonNil(list), err
}

// AuthPolicies lists a tenant's authentication policies by name.
func (s *Store) AuthPolicies(ctx context.Context, tenantID int64) ([]directory.AuthPolicy, error) {
	return s.queryAuthPolicies(ctx, `WHERE tenant_id = ? ORDER BY name`, tenantID)
}

// AuthPolicyByName finds a tenant's authentication policy.
func (s *Store) AuthPolicyByName(ctx context.Context, tenantID int64, name string) (directory.AuthPolicy, error) {
	return one(s.queryAuthPolicies(ctx, `WHERE tenant_id = ? AND name = ?`, tenantID, name))(fmt.Sprintf("authentication policy %q", name))
}

// UpdateAuthPolicy stores the name and settings of the policy with p.ID.
// Identities and the tenant refer to a policy by name, so a rename carries
// over to them in the same transaction.
func (s *Store) UpdateAuthPolicy(ctx context.Context, p directory.AuthPolicy) (directory.AuthPolicy, error) {
	if strings.TrimSpace(p.Name) == "" {
		return p, fmt.Errorf("%w: an authentication policy needs a name", store.ErrInvalid)
	}
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT name FROM auth_policies WHERE tenant_id = ? AND id = ?`, p.TenantID, p.ID).Scan(&old)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE auth_policies SET name = ?, allow_basic_auth_smtp = ? WHERE id = ?`, p.Name, p.AllowBasicAuthSMTP, p.ID); err != nil {
			return err
		}
		if old == p.Name {
			return nil
		}
		for _, q := range []string{
			`UPDATE accounts SET auth_policy = ? WHERE tenant_id = ? AND auth_policy = ?`,
			`UPDATE mailboxes SET auth_policy = ? WHERE tenant_id = ? AND auth_policy = ?`,
			`UPDATE tenants SET settings = json_set(settings, '$.default_auth_policy', ?) WHERE id = ? AND settings ->> '$.default_auth_policy' = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, p.Name, p.TenantID, old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("authentication policy %q: %w", p.Name, err)
	}
	return one(s.queryAuthPolicies(ctx, `WHERE id = ?`, p.ID))(fmt.Sprintf("authentication policy %q", p.Name))
}

// RemoveAuthPolicy removes a policy that nothing uses: neither the tenant
// (as its default) nor an account or mailbox.
func (s *Store) RemoveAuthPolicy(ctx context.Context, tenantID int64, name string) error {
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM tenants WHERE id = ? AND settings ->> '$.default_auth_policy' = ?`, tenantID, name).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: it is the tenant's default authentication policy; set another default (or none) first", store.ErrInvalid)
		}
		rows, err := tx.QueryContext(ctx, `SELECT address FROM accounts WHERE tenant_id = ? AND auth_policy = ?
			UNION ALL SELECT address FROM mailboxes WHERE tenant_id = ? AND auth_policy = ? ORDER BY 1`, tenantID, name, tenantID, name)
		if err != nil {
			return err
		}
		users, err := collect(rows, func(row scanner) (a string, err error) { return a, row.Scan(&a) })
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("%w: it is assigned to %d accounts and mailboxes (%s); assign them another policy first", store.ErrInvalid, len(users), store.FirstFew(users))
		}
		return execOne(ctx, tx, "policy", `DELETE FROM auth_policies WHERE tenant_id = ? AND name = ?`, tenantID, name)
	})
	if err != nil {
		return fmt.Errorf("authentication policy %q: %w", name, err)
	}
	return nil
}

// ---- security groups ----

// CreateSecurityGroup creates a security group without members; its name
// must be new in the tenant.
func (s *Store) CreateSecurityGroup(ctx context.Context, g directory.SecurityGroup) (directory.SecurityGroup, error) {
	if strings.TrimSpace(g.Name) == "" {
		return g, fmt.Errorf("%w: a security group needs a name", store.ErrInvalid)
	}
	g.CreatedAt = time.Now().UTC()
	res, err := s.dirExec(ctx, `INSERT INTO security_groups (tenant_id, name, created_at) VALUES (?, ?, ?)`, g.TenantID, g.Name, nanos(g.CreatedAt))
	if err != nil {
		return g, fmt.Errorf("security group %q: %w", g.Name, mapErr(err))
	}
	g.Members = []directory.Member{}
	g.ID, err = res.LastInsertId()
	return g, err
}

func (s *Store) querySecurityGroups(ctx context.Context, where string, args ...any) ([]directory.SecurityGroup, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, tenant_id, name, created_at FROM security_groups `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing security groups: %w", err)
	}
	// All rows are read before the member queries: the read pool is bounded.
	list, err := collect(rows, func(row scanner) (g directory.SecurityGroup, err error) {
		var created int64
		err = row.Scan(&g.ID, &g.TenantID, &g.Name, &created)
		g.CreatedAt = fromNanos(created)
		return g, err
	})
	for i := range list {
		if err == nil {
			list[i].Members, err = s.members(ctx, "security_group_members", list[i].ID)
		}
	}
	return nonNil(list), err
}

// SecurityGroups lists a tenant's security groups by name, with their
// members.
func (s *Store) SecurityGroups(ctx context.Context, tenantID int64) ([]directory.SecurityGroup, error) {
	return s.querySecurityGroups(ctx, `WHERE tenant_id = ? ORDER BY name`, tenantID)
}

// SecurityGroupByName finds a tenant's security group, with its members.
func (s *Store) SecurityGroupByName(ctx context.Context, tenantID int64, name string) (directory.SecurityGroup, error) {
	return one(s.querySecurityGroups(ctx, `WHERE tenant_id = ? AND name = ?`, tenantID, name))(fmt.Sprintf("security group %q", name))
}

// RemoveSecurityGroup removes a security group and its memberships.
// Conditional Access policies that name it keep the name and match nobody
// by it.
func (s *Store) RemoveSecurityGroup(ctx context.Context, tenantID int64, name string) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		// A policy that names a vanished group would silently change whom it
		// applies to (an exclusion would stop protecting anyone), so the
		// admin must edit the policies first.
		var users []string
		rows, err := tx.QueryContext(ctx, `SELECT p.name FROM ca_policies p WHERE p.tenant_id = ? AND (
			EXISTS (SELECT 1 FROM json_each(p.include_groups) WHERE value = ?) OR
			EXISTS (SELECT 1 FROM json_each(p.exclude_groups) WHERE value = ?)) ORDER BY p.name`, tenantID, name, name)
		if err != nil {
			return err
		}
		users, err = collect(rows, func(row scanner) (n string, err error) { return n, row.Scan(&n) })
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("security group %q: %w: Conditional Access policies name it (%s); take it out of them first with hve ca-policy set",
				name, store.ErrInvalid, strings.Join(users, ", "))
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM security_group_members WHERE group_id IN (SELECT id FROM security_groups WHERE tenant_id = ? AND name = ?)`, tenantID, name); err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("security group %q", name), `DELETE FROM security_groups WHERE tenant_id = ? AND name = ?`, tenantID, name)
	})
}

// securityMember resolves a security group of the tenant by name and the
// account or mailbox memberAddress (primary or alias) names, in tx so that
// neither can go away before the membership is written.
func securityMember(ctx context.Context, tx *sql.Tx, tenantID int64, group, memberAddress string) (groupID int64, e directory.Entry, err error) {
	err = tx.QueryRowContext(ctx, `SELECT id FROM security_groups WHERE tenant_id = ? AND name = ?`, tenantID, group).Scan(&groupID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, e, fmt.Errorf("security group %q: %w", group, store.ErrNotFound)
	}
	if err != nil {
		return 0, e, err
	}
	var kind string
	err = tx.QueryRowContext(ctx, lookupSQL, memberAddress).Scan(&e.TenantID, &kind, &e.ID, &e.Address)
	if errors.Is(err, sql.ErrNoRows) {
		e = directory.Entry{}
	} else if err != nil {
		return 0, e, err
	}
	e.Kind = directory.Kind(kind)
	return groupID, e, store.CheckSecurityGroupMember(e, tenantID, memberAddress)
}

// AddSecurityGroupMember adds an account or mailbox to a security group;
// adding a member again changes nothing.
func (s *Store) AddSecurityGroupMember(ctx context.Context, tenantID int64, group, memberAddress string) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		groupID, e, err := securityMember(ctx, tx, tenantID, group, memberAddress)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO security_group_members (group_id, member_kind, member_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			groupID, string(e.Kind), e.ID)
		return err
	})
}

// RemoveSecurityGroupMember removes a direct member from a security group.
func (s *Store) RemoveSecurityGroupMember(ctx context.Context, tenantID int64, group, memberAddress string) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		groupID, e, err := securityMember(ctx, tx, tenantID, group, memberAddress)
		if err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("%s as a member of security group %q", memberAddress, group),
			`DELETE FROM security_group_members WHERE group_id = ? AND member_kind = ? AND member_id = ?`, groupID, string(e.Kind), e.ID)
	})
}

// SecurityGroupsOf names, sorted, the security groups an account or mailbox
// is a direct member of.
func (s *Store) SecurityGroupsOf(ctx context.Context, tenantID int64, kind directory.Kind, id int64) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT g.name FROM security_groups g JOIN security_group_members m ON m.group_id = g.id
		WHERE g.tenant_id = ? AND m.member_kind = ? AND m.member_id = ? ORDER BY g.name`, tenantID, string(kind), id)
	if err != nil {
		return nil, fmt.Errorf("listing security groups of %s %d: %w", kind, id, err)
	}
	list, err := collect(rows, func(row scanner) (name string, err error) { return name, row.Scan(&name) })
	return nonNil(list), err
}

// ---- Conditional Access ----

// caFields are the columns of a policy but its id; caColumns all of them.
const (
	caFields = `tenant_id, name, state, grant_control, client_apps, include_users, exclude_users,
	include_groups, exclude_groups, include_networks, exclude_networks, created_at`
	caColumns = `id, ` + caFields
)

// caLists are the string list fields of a policy, in the order of caFields.
func caLists(p *directory.CAPolicy) []*[]string {
	return []*[]string{&p.IncludeUsers, &p.ExcludeUsers, &p.IncludeGroups, &p.ExcludeGroups, &p.IncludeNetworks, &p.ExcludeNetworks}
}

// insertCAPolicy stores a validated policy and returns it with its id and
// empty (not nil) lists.
func insertCAPolicy(ctx context.Context, tx *sql.Tx, p directory.CAPolicy) (directory.CAPolicy, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO ca_policies (`+caFields+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.TenantID, p.Name, string(p.State), string(p.Grant), jsonList(p.ClientApps), jsonList(p.IncludeUsers), jsonList(p.ExcludeUsers),
		jsonList(p.IncludeGroups), jsonList(p.ExcludeGroups), jsonList(p.IncludeNetworks), jsonList(p.ExcludeNetworks), nanos(p.CreatedAt))
	if err != nil {
		return p, err
	}
	p.ClientApps = nonNil(p.ClientApps)
	for _, l := range caLists(&p) {
		*l = nonNil(*l)
	}
	p.ID, err = res.LastInsertId()
	return p, err
}

func scanCAPolicy(row scanner) (p directory.CAPolicy, err error) {
	var state, grant, clientApps string
	var lists [6]string
	var created int64
	err = row.Scan(&p.ID, &p.TenantID, &p.Name, &state, &grant, &clientApps, &lists[0], &lists[1], &lists[2], &lists[3], &lists[4], &lists[5], &created)
	if err != nil {
		return p, err
	}
	p.State, p.Grant, p.CreatedAt = directory.CAState(state), directory.CAGrant(grant), fromNanos(created)
	if err = fromJSONList(clientApps, &p.ClientApps); err != nil {
		return p, err
	}
	for i, l := range caLists(&p) {
		if err = fromJSONList(lists[i], l); err != nil {
			return p, err
		}
	}
	return p, nil
}

func (s *Store) queryCAPolicies(ctx context.Context, where string, args ...any) ([]directory.CAPolicy, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+caColumns+` FROM ca_policies `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing Conditional Access policies: %w", err)
	}
	list, err := collect(rows, scanCAPolicy)
	return nonNil(list), err
}

// CreateCAPolicy validates and creates a Conditional Access policy; its
// name must be new in the tenant.
func (s *Store) CreateCAPolicy(ctx context.Context, p directory.CAPolicy) (directory.CAPolicy, error) {
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	p.CreatedAt = time.Now().UTC()
	err := s.dirTx(ctx, func(tx *sql.Tx) (err error) {
		p, err = insertCAPolicy(ctx, tx, p)
		return err
	})
	if err != nil {
		return p, fmt.Errorf("Conditional Access policy %q: %w", p.Name, err)
	}
	return p, nil
}

// CAPolicies lists a tenant's policies by name.
func (s *Store) CAPolicies(ctx context.Context, tenantID int64) ([]directory.CAPolicy, error) {
	return s.queryCAPolicies(ctx, `WHERE tenant_id = ? ORDER BY name`, tenantID)
}

// CAPolicyByName finds a tenant's policy.
func (s *Store) CAPolicyByName(ctx context.Context, tenantID int64, name string) (directory.CAPolicy, error) {
	return one(s.queryCAPolicies(ctx, `WHERE tenant_id = ? AND name = ?`, tenantID, name))(fmt.Sprintf("Conditional Access policy %q", name))
}

// UpdateCAPolicy validates p and replaces every field (but the creation
// time) of the tenant's policy with p.ID.
func (s *Store) UpdateCAPolicy(ctx context.Context, p directory.CAPolicy) (directory.CAPolicy, error) {
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, fmt.Sprintf("id %d", p.ID), `UPDATE ca_policies SET name = ?, state = ?, grant_control = ?, client_apps = ?,
			include_users = ?, exclude_users = ?, include_groups = ?, exclude_groups = ?, include_networks = ?, exclude_networks = ?
			WHERE tenant_id = ? AND id = ?`,
			p.Name, string(p.State), string(p.Grant), jsonList(p.ClientApps), jsonList(p.IncludeUsers), jsonList(p.ExcludeUsers),
			jsonList(p.IncludeGroups), jsonList(p.ExcludeGroups), jsonList(p.IncludeNetworks), jsonList(p.ExcludeNetworks), p.TenantID, p.ID)
	})
	if err != nil {
		return p, fmt.Errorf("Conditional Access policy %q: %w", p.Name, err)
	}
	return one(s.queryCAPolicies(ctx, `WHERE id = ?`, p.ID))(fmt.Sprintf("Conditional Access policy %q", p.Name))
}

// RemoveCAPolicy removes a tenant's policy; the built-in one too, if the
// admin wishes.
func (s *Store) RemoveCAPolicy(ctx context.Context, tenantID int64, name string) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, fmt.Sprintf("Conditional Access policy %q", name), `DELETE FROM ca_policies WHERE tenant_id = ? AND name = ?`, tenantID, name)
	})
}

// ---- app registrations ----

// insertSecret stores one secret of the app with row id app.
func insertSecret(ctx context.Context, tx *sql.Tx, app int64, sec directory.AppSecret) (directory.AppSecret, error) {
	if sec.Hash == "" {
		return sec, fmt.Errorf("%w: a client secret needs its hash", store.ErrInvalid)
	}
	if sec.CreatedAt.IsZero() {
		sec.CreatedAt = time.Now().UTC()
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO app_secrets (app, hint, hash, expires_at, created_at) VALUES (?, ?, ?, ?, ?)`,
		app, sec.Hint, sec.Hash, nanos(sec.ExpiresAt), nanos(sec.CreatedAt))
	if err != nil {
		return sec, err
	}
	sec.ID, err = res.LastInsertId()
	sec.CreatedAt, sec.ExpiresAt = fromNanos(nanos(sec.CreatedAt)), fromNanos(nanos(sec.ExpiresAt))
	return sec, err
}

// CreateApp creates an app registration with the secrets it holds (if
// any). App and object ids must be new in every tenant, compared without
// regard to case.
func (s *Store) CreateApp(ctx context.Context, a directory.App) (directory.App, error) {
	if err := store.CheckApp(a); err != nil {
		return a, err
	}
	a.CreatedAt = time.Now().UTC()
	var id int64
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO apps (tenant_id, name, app_id, object_id, permissions, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			a.TenantID, a.Name, a.AppID, a.ObjectID, jsonList(a.Permissions), nanos(a.CreatedAt))
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, sec := range a.Secrets {
			if _, err := insertSecret(ctx, tx, id, sec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return a, fmt.Errorf("app %q: %w", a.Name, err)
	}
	return one(s.queryApps(ctx, `WHERE id = ?`, id))(fmt.Sprintf("app %q", a.Name))
}

func (s *Store) queryApps(ctx context.Context, where string, args ...any) ([]directory.App, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, tenant_id, name, app_id, object_id, permissions, created_at FROM apps `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	// All rows are read before the secret queries: the read pool is bounded.
	list, err := collect(rows, func(row scanner) (a directory.App, err error) {
		var perms string
		var created int64
		if err = row.Scan(&a.ID, &a.TenantID, &a.Name, &a.AppID, &a.ObjectID, &perms, &created); err != nil {
			return a, err
		}
		a.CreatedAt = fromNanos(created)
		return a, fromJSONList(perms, &a.Permissions)
	})
	for i := range list {
		if err == nil {
			list[i].Secrets, err = s.appSecrets(ctx, list[i].ID)
		}
	}
	return nonNil(list), err
}

// appSecrets lists the secrets of the app with row id app, newest first,
// with their hashes: the token endpoint checks secrets against them.
func (s *Store) appSecrets(ctx context.Context, app int64) ([]directory.AppSecret, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, hint, hash, expires_at, created_at FROM app_secrets WHERE app = ? ORDER BY created_at DESC, id DESC`, app)
	if err != nil {
		return nil, fmt.Errorf("listing app secrets: %w", err)
	}
	list, err := collect(rows, func(row scanner) (sec directory.AppSecret, err error) {
		var expires, created int64
		err = row.Scan(&sec.ID, &sec.Hint, &sec.Hash, &expires, &created)
		sec.ExpiresAt, sec.CreatedAt = fromNanos(expires), fromNanos(created)
		return sec, err
	})
	return nonNil(list), err
}

// Apps lists a tenant's apps by name, with their secrets.
func (s *Store) Apps(ctx context.Context, tenantID int64) ([]directory.App, error) {
	return s.queryApps(ctx, `WHERE tenant_id = ? ORDER BY name, id`, tenantID)
}

// AppByAppID finds an app of any tenant by its app (client) id.
func (s *Store) AppByAppID(ctx context.Context, appID string) (directory.App, error) {
	return one(s.queryApps(ctx, `WHERE app_id = ?`, appID))("app " + appID)
}

// App finds a tenant's app by app id or object id (either without regard
// to case) or else by its exact name, which must then be unambiguous.
func (s *Store) App(ctx context.Context, tenantID int64, ref string) (directory.App, error) {
	byID, err := s.queryApps(ctx, `WHERE tenant_id = ? AND (app_id = ? OR object_id = ?)`, tenantID, ref, ref)
	if err != nil || len(byID) > 0 {
		return one(byID, err)("app " + ref)
	}
	byName, err := s.queryApps(ctx, `WHERE tenant_id = ? AND name = ?`, tenantID, ref)
	if err == nil && len(byName) > 1 {
		return directory.App{}, fmt.Errorf("%w: several apps are named %q; give the app id instead", store.ErrInvalid, ref)
	}
	return one(byName, err)(fmt.Sprintf("app %q", ref))
}

// UpdateApp stores the name and permissions of the tenant's app with
// a.AppID.
func (s *Store) UpdateApp(ctx context.Context, a directory.App) (directory.App, error) {
	if strings.TrimSpace(a.Name) == "" {
		return a, fmt.Errorf("%w: an app needs a name", store.ErrInvalid)
	}
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, "app "+a.AppID, `UPDATE apps SET name = ?, permissions = ? WHERE tenant_id = ? AND app_id = ?`,
			a.Name, jsonList(a.Permissions), a.TenantID, a.AppID)
	})
	if err != nil {
		return a, fmt.Errorf("updating app %q: %w", a.Name, err)
	}
	return one(s.queryApps(ctx, `WHERE tenant_id = ? AND app_id = ?`, a.TenantID, a.AppID))("app " + a.AppID)
}

// RemoveApp removes a tenant's app and its secrets, and takes its app id off
// the allowed apps of the tenant's accounts, so that a new app can never
// inherit the place.
func (s *Store) RemoveApp(ctx context.Context, tenantID int64, appID string) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM app_secrets WHERE app IN (SELECT id FROM apps WHERE tenant_id = ? AND app_id = ?)`, tenantID, appID); err != nil {
			return err
		}
		if err := execOne(ctx, tx, "app "+appID, `DELETE FROM apps WHERE tenant_id = ? AND app_id = ?`, tenantID, appID); err != nil {
			return err
		}
		type allowed struct {
			id   int64
			apps []string
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, allowed_apps FROM accounts WHERE tenant_id = ? AND allowed_apps != '[]'`, tenantID)
		if err != nil {
			return err
		}
		list, err := collect(rows, func(row scanner) (a allowed, err error) {
			var col string
			if err = row.Scan(&a.id, &col); err != nil {
				return a, err
			}
			return a, fromJSONList(col, &a.apps)
		})
		if err != nil {
			return err
		}
		for _, a := range list {
			kept := []string{}
			for _, id := range a.apps {
				if !strings.EqualFold(id, appID) {
					kept = append(kept, id)
				}
			}
			if len(kept) == len(a.apps) {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE accounts SET allowed_apps = ? WHERE id = ?`, jsonList(kept), a.id); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddAppSecret adds a client secret to a tenant's app. CreatedAt is now
// unless given.
func (s *Store) AddAppSecret(ctx context.Context, tenantID int64, appID string, sec directory.AppSecret) (directory.AppSecret, error) {
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		var app int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM apps WHERE tenant_id = ? AND app_id = ?`, tenantID, appID).Scan(&app); err != nil {
			return err
		}
		var err error
		sec, err = insertSecret(ctx, tx, app, sec)
		return err
	})
	if err != nil {
		return sec, fmt.Errorf("secret of app %s: %w", appID, err)
	}
	return sec, nil
}

// RemoveAppSecret removes one secret of a tenant's app.
func (s *Store) RemoveAppSecret(ctx context.Context, tenantID int64, appID string, secretID int64) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, fmt.Sprintf("secret %d of app %s", secretID, appID),
			`DELETE FROM app_secrets WHERE id = ? AND app = (SELECT id FROM apps WHERE tenant_id = ? AND app_id = ?)`, secretID, tenantID, appID)
	})
}

// ---- trusted issuers ----

// CreateIssuer adds a trusted external issuer; its URL must be new in the
// tenant. An empty Role is stored as Mail.Send, the documented default.
func (s *Store) CreateIssuer(ctx context.Context, i directory.Issuer) (directory.Issuer, error) {
	if strings.TrimSpace(i.URL) == "" {
		return i, fmt.Errorf("%w: an issuer needs its URL", store.ErrInvalid)
	}
	if i.Role == "" {
		i.Role = string(directory.MailSend)
	}
	i.CreatedAt = time.Now().UTC()
	res, err := s.dirExec(ctx, `INSERT INTO issuers (tenant_id, url, audience, role, created_at) VALUES (?, ?, ?, ?, ?)`,
		i.TenantID, i.URL, i.Audience, i.Role, nanos(i.CreatedAt))
	if err != nil {
		return i, fmt.Errorf("issuer %s: %w", i.URL, mapErr(err))
	}
	i.ID, err = res.LastInsertId()
	return i, err
}

// Issuers lists a tenant's trusted issuers by URL; tenantID 0 lists every
// tenant's, by tenant.
func (s *Store) Issuers(ctx context.Context, tenantID int64) ([]directory.Issuer, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, tenant_id, url, audience, role, created_at FROM issuers
		WHERE ? = 0 OR tenant_id = ? ORDER BY tenant_id, url`, tenantID, tenantID)
	if err != nil {
		return nil, fmt.Errorf("listing issuers: %w", err)
	}
	list, err := collect(rows, func(row scanner) (i directory.Issuer, err error) {
		var created int64
		err = row.Scan(&i.ID, &i.TenantID, &i.URL, &i.Audience, &i.Role, &created)
		i.CreatedAt = fromNanos(created)
		return i, err
	})
	return nonNil(list), err
}

// RemoveIssuer removes a tenant's trusted issuer.
func (s *Store) RemoveIssuer(ctx context.Context, tenantID int64, url string) error {
	return s.dirTx(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, "issuer "+url, `DELETE FROM issuers WHERE tenant_id = ? AND url = ?`, tenantID, url)
	})
}

// ---- signing keys ----

// SigningKeys lists hve's token-signing keys, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]directory.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kid, algorithm, private_pem, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, rowid DESC`)
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	list, err := collect(rows, func(row scanner) (k directory.SigningKey, err error) {
		var created, retired int64
		err = row.Scan(&k.ID, &k.Algorithm, &k.PrivatePEM, &created, &retired)
		k.CreatedAt, k.RetiredAt = fromNanos(created), fromNanos(retired)
		return k, err
	})
	return nonNil(list), err
}

// AddSigningKey stores k as the current key (CreatedAt now unless given)
// and retires every other current key at k.CreatedAt, in one transaction,
// so that exactly one key signs.
func (s *Store) AddSigningKey(ctx context.Context, k directory.SigningKey) error {
	if k.ID == "" || len(k.PrivatePEM) == 0 {
		return fmt.Errorf("%w: a signing key needs a key id and its private key", store.ErrInvalid)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now().UTC()
	}
	err := s.dirTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = ? WHERE retired_at = 0`, nanos(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, algorithm, private_pem, created_at, retired_at) VALUES (?, ?, ?, ?, 0)`,
			k.ID, k.Algorithm, k.PrivatePEM, nanos(k.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	return nil
}

// PruneSigningKeys removes the keys retired before retiredBefore; the
// current key is never retired, so it stays.
func (s *Store) PruneSigningKeys(ctx context.Context, retiredBefore time.Time) error {
	_, err := s.dirExec(ctx, `DELETE FROM signing_keys WHERE retired_at != 0 AND retired_at < ?`, nanos(retiredBefore))
	if err != nil {
		return fmt.Errorf("pruning signing keys: %w", mapErr(err))
	}
	return nil
}
