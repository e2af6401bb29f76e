package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/directory"
	"hve/internal/store"
)

// scanText scans a single text column.
func scanText(row scanner) (v string, err error) { return v, row.Scan(&v) }

// ---- authentication policies ----

// CreateAuthPolicy creates an authentication policy; its name must be new
// in the tenant.
func (s *Store) CreateAuthPolicy(ctx context.Context, p directory.AuthPolicy) (directory.AuthPolicy, error) {
	if strings.TrimSpace(p.Name) == "" {
		return p, fmt.Errorf("%w: an authentication policy needs a name", store.ErrInvalid)
	}
	p.CreatedAt = time.Now().UTC()
	defer s.dirChanged()
	err := s.pool.QueryRow(ctx, `INSERT INTO auth_policies (tenant_id, name, allow_basic_auth_smtp, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		p.TenantID, p.Name, p.AllowBasicAuthSMTP, nanos(p.CreatedAt)).Scan(&p.ID)
	if err != nil {
		return p, fmt.Errorf("authentication policy %q: %w", p.Name, mapErr(err))
	}
	return p, nil
}

func (s *Store) queryAuthPolicies(ctx context.Context, where string, args ...any) ([]directory.AuthPolicy, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, name, allow_basic_auth_smtp, created_at FROM auth_policies `+where, args...)
	list, err := collect(rows, err, func(row scanner) (p directory.AuthPolicy, err error) {
		var created int64
		err = row.Scan(&p.ID, &p.TenantID, &p.Name, &p.AllowBasicAuthSMTP, &created)
		p.CreatedAt = fromNanos(created)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing authentication policies: %w", err)
	}
	return list, nil
}

// AuthPolicies lists a tenant's authentication policies by name.
func (s *Store) AuthPolicies(ctx context.Context, tenantID int64) ([]directory.AuthPolicy, error) {
	return s.queryAuthPolicies(ctx, `WHERE tenant_id = $1 ORDER BY name COLLATE "C"`, tenantID)
}

// AuthPolicyByName finds a tenant's authentication policy.
func (s *Store) AuthPolicyByName(ctx context.Context, tenantID int64, name string) (directory.AuthPolicy, error) {
	return one(s.queryAuthPolicies(ctx, `WHERE tenant_id = $1 AND name = $2`, tenantID, name))(fmt.Sprintf("authentication policy %q", name))
}

// UpdateAuthPolicy stores the name and settings of the policy with p.ID.
// Identities and the tenant refer to a policy by name, so a rename carries
// over to them in the same transaction.
func (s *Store) UpdateAuthPolicy(ctx context.Context, p directory.AuthPolicy) (directory.AuthPolicy, error) {
	if strings.TrimSpace(p.Name) == "" {
		return p, fmt.Errorf("%w: an authentication policy needs a name", store.ErrInvalid)
	}
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		// FOR UPDATE: a write assigning the old name holds the policy FOR
		// SHARE (checkAuthPolicy), so it either commits before the renames
		// below, which then carry it over, or waits and finds the old name
		// gone.
		var old string
		err := tx.QueryRow(ctx, `SELECT name FROM auth_policies WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, p.TenantID, p.ID).Scan(&old)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE auth_policies SET name = $1, allow_basic_auth_smtp = $2 WHERE id = $3`, p.Name, p.AllowBasicAuthSMTP, p.ID); err != nil {
			return err
		}
		if old == p.Name {
			return nil
		}
		for _, q := range []string{
			`UPDATE tenants SET settings = jsonb_set(settings, '{default_auth_policy}', to_jsonb($1::text))
				WHERE id = $2 AND settings ->> 'default_auth_policy' = $3`,
			`UPDATE accounts SET auth_policy = $1 WHERE tenant_id = $2 AND auth_policy = $3`,
			`UPDATE mailboxes SET auth_policy = $1 WHERE tenant_id = $2 AND auth_policy = $3`,
		} {
			if _, err := tx.Exec(ctx, q, p.Name, p.TenantID, old); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("authentication policy %q: %w", p.Name, err)
	}
	return one(s.queryAuthPolicies(ctx, `WHERE id = $1`, p.ID))(fmt.Sprintf("authentication policy %q", p.Name))
}

// RemoveAuthPolicy removes a policy that nothing uses: neither the tenant
// (as its default) nor an account or mailbox.
func (s *Store) RemoveAuthPolicy(ctx context.Context, tenantID int64, name string) error {
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		// Locked first (see UpdateAuthPolicy): a write assigning the policy
		// either committed before the checks below, which see it, or waits
		// and then finds the policy gone.
		if _, err := tx.Exec(ctx, `SELECT FROM auth_policies WHERE tenant_id = $1 AND name = $2 FOR UPDATE`, tenantID, name); err != nil {
			return err
		}
		var isDefault bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM tenants WHERE id = $1 AND settings ->> 'default_auth_policy' = $2)`, tenantID, name).Scan(&isDefault)
		if err != nil {
			return err
		}
		if isDefault {
			return fmt.Errorf("%w: it is the tenant's default authentication policy; set another default (or none) first", store.ErrInvalid)
		}
		rows, err := tx.Query(ctx, `SELECT address FROM (
			SELECT address FROM accounts WHERE tenant_id = $1 AND auth_policy = $2
			UNION ALL SELECT address FROM mailboxes WHERE tenant_id = $1 AND auth_policy = $2) u
			ORDER BY address COLLATE "C"`, tenantID, name)
		users, err := collect(rows, err, scanText)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("%w: it is assigned to %d accounts and mailboxes (%s); assign them another policy first", store.ErrInvalid, len(users), store.FirstFew(users))
		}
		return execOne(ctx, tx, "policy", `DELETE FROM auth_policies WHERE tenant_id = $1 AND name = $2`, tenantID, name)
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
	defer s.dirChanged()
	err := s.pool.QueryRow(ctx, `INSERT INTO security_groups (tenant_id, name, created_at) VALUES ($1, $2, $3) RETURNING id`,
		g.TenantID, g.Name, nanos(g.CreatedAt)).Scan(&g.ID)
	if err != nil {
		return g, fmt.Errorf("security group %q: %w", g.Name, mapErr(err))
	}
	g.Members = []directory.Member{}
	return g, nil
}

func (s *Store) querySecurityGroups(ctx context.Context, where string, args ...any) ([]directory.SecurityGroup, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, name, created_at FROM security_groups `+where, args...)
	list, err := collect(rows, err, func(row scanner) (g directory.SecurityGroup, err error) {
		var created int64
		err = row.Scan(&g.ID, &g.TenantID, &g.Name, &created)
		g.CreatedAt = fromNanos(created)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing security groups: %w", err)
	}
	ids := make([]int64, len(list))
	for i, g := range list {
		ids[i] = g.ID
	}
	members, err := s.members(ctx, "security_group_members", ids)
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i].Members = members[list[i].ID]
	}
	return list, nil
}

// SecurityGroups lists a tenant's security groups by name, with their
// members.
func (s *Store) SecurityGroups(ctx context.Context, tenantID int64) ([]directory.SecurityGroup, error) {
	return s.querySecurityGroups(ctx, `WHERE tenant_id = $1 ORDER BY name COLLATE "C"`, tenantID)
}

// SecurityGroupByName finds a tenant's security group, with its members.
func (s *Store) SecurityGroupByName(ctx context.Context, tenantID int64, name string) (directory.SecurityGroup, error) {
	return one(s.querySecurityGroups(ctx, `WHERE tenant_id = $1 AND name = $2`, tenantID, name))(fmt.Sprintf("security group %q", name))
}

// RemoveSecurityGroup removes a security group and its memberships (ON
// DELETE CASCADE).
func (s *Store) RemoveSecurityGroup(ctx context.Context, tenantID int64, name string) error {
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		// A policy that names a vanished group would silently change whom it
		// applies to (an exclusion would stop protecting anyone), so the
		// admin must edit the policies first. Policies may name groups that
		// do not exist (yet), so this is a guard for the admin, not an
		// invariant: a policy written at this very moment is not held back.
		rows, err := tx.Query(ctx, `SELECT name FROM ca_policies WHERE tenant_id = $1 AND (include_groups ? $2 OR exclude_groups ? $2)
			ORDER BY name COLLATE "C"`, tenantID, name)
		users, err := collect(rows, err, scanText)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("security group %q: %w: Conditional Access policies name it (%s); take it out of them first with hve ca-policy set",
				name, store.ErrInvalid, strings.Join(users, ", "))
		}
		return execOne(ctx, tx, fmt.Sprintf("security group %q", name), `DELETE FROM security_groups WHERE tenant_id = $1 AND name = $2`, tenantID, name)
	})
}

// securityMember resolves a security group of the tenant by name and the
// account or mailbox memberAddress (primary or alias) names, locking both
// FOR SHARE until tx ends so that neither goes before the membership is
// written.
func securityMember(ctx context.Context, tx pgx.Tx, tenantID int64, group, memberAddress string) (groupID int64, e directory.Entry, err error) {
	err = tx.QueryRow(ctx, `SELECT id FROM security_groups WHERE tenant_id = $1 AND name = $2 FOR SHARE`, tenantID, group).Scan(&groupID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, e, fmt.Errorf("security group %q: %w", group, store.ErrNotFound)
	}
	if err != nil {
		return 0, e, err
	}
	e, err = lookup(ctx, tx, lookupSQL+lockMember, memberAddress)
	if errors.Is(err, store.ErrNotFound) {
		e = directory.Entry{}
	} else if err != nil {
		return 0, e, err
	}
	return groupID, e, store.CheckSecurityGroupMember(e, tenantID, memberAddress)
}

// AddSecurityGroupMember adds an account or mailbox to a security group;
// adding a member again changes nothing.
func (s *Store) AddSecurityGroupMember(ctx context.Context, tenantID int64, group, memberAddress string) error {
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		groupID, e, err := securityMember(ctx, tx, tenantID, group, memberAddress)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO security_group_members (group_id, member_kind, member_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			groupID, string(e.Kind), e.ID)
		return err
	})
}

// RemoveSecurityGroupMember removes a direct member from a security group.
func (s *Store) RemoveSecurityGroupMember(ctx context.Context, tenantID int64, group, memberAddress string) error {
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		groupID, e, err := securityMember(ctx, tx, tenantID, group, memberAddress)
		if err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("%s as a member of security group %q", memberAddress, group),
			`DELETE FROM security_group_members WHERE group_id = $1 AND member_kind = $2 AND member_id = $3`, groupID, string(e.Kind), e.ID)
	})
}

// SecurityGroupsOf names, sorted, the security groups an account or mailbox
// is a direct member of.
func (s *Store) SecurityGroupsOf(ctx context.Context, tenantID int64, kind directory.Kind, id int64) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT g.name FROM security_groups g JOIN security_group_members m ON m.group_id = g.id
		WHERE g.tenant_id = $1 AND m.member_kind = $2 AND m.member_id = $3 ORDER BY g.name COLLATE "C"`, tenantID, string(kind), id)
	list, err := collect(rows, err, scanText)
	if err != nil {
		return nil, fmt.Errorf("listing security groups of %s %d: %w", kind, id, err)
	}
	return list, nil
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
func insertCAPolicy(ctx context.Context, tx pgx.Tx, p directory.CAPolicy) (directory.CAPolicy, error) {
	err := tx.QueryRow(ctx, `INSERT INTO ca_policies (`+caFields+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
		p.TenantID, p.Name, string(p.State), string(p.Grant), jsonList(p.ClientApps), jsonList(p.IncludeUsers), jsonList(p.ExcludeUsers),
		jsonList(p.IncludeGroups), jsonList(p.ExcludeGroups), jsonList(p.IncludeNetworks), jsonList(p.ExcludeNetworks), nanos(p.CreatedAt)).Scan(&p.ID)
	if err != nil {
		return p, err
	}
	if p.ClientApps == nil {
		p.ClientApps = []directory.ClientApp{}
	}
	for _, l := range caLists(&p) {
		if *l == nil {
			*l = []string{}
		}
	}
	return p, nil
}

func scanCAPolicy(row scanner) (p directory.CAPolicy, err error) {
	var state, grant string
	var clientApps []byte
	var lists [6][]byte
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
	rows, err := s.pool.Query(ctx, `SELECT `+caColumns+` FROM ca_policies `+where, args...)
	list, err := collect(rows, err, scanCAPolicy)
	if err != nil {
		return nil, fmt.Errorf("listing Conditional Access policies: %w", err)
	}
	return list, nil
}

// CreateCAPolicy validates and creates a Conditional Access policy; its
// name must be new in the tenant.
func (s *Store) CreateCAPolicy(ctx context.Context, p directory.CAPolicy) (directory.CAPolicy, error) {
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	p.CreatedAt = time.Now().UTC()
	err := s.dirTx(ctx, func(tx pgx.Tx) (err error) {
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
	return s.queryCAPolicies(ctx, `WHERE tenant_id = $1 ORDER BY name COLLATE "C"`, tenantID)
}

// CAPolicyByName finds a tenant's policy.
func (s *Store) CAPolicyByName(ctx context.Context, tenantID int64, name string) (directory.CAPolicy, error) {
	return one(s.queryCAPolicies(ctx, `WHERE tenant_id = $1 AND name = $2`, tenantID, name))(fmt.Sprintf("Conditional Access policy %q", name))
}

// UpdateCAPolicy validates p and replaces every field (but the creation
// time) of the tenant's policy with p.ID.
func (s *Store) UpdateCAPolicy(ctx context.Context, p directory.CAPolicy) (directory.CAPolicy, error) {
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	err := s.dirExecOne(ctx, fmt.Sprintf("id %d", p.ID), `UPDATE ca_policies SET name = $1, state = $2, grant_control = $3, client_apps = $4,
		include_users = $5, exclude_users = $6, include_groups = $7, exclude_groups = $8, include_networks = $9, exclude_networks = $10
		WHERE tenant_id = $11 AND id = $12`,
		p.Name, string(p.State), string(p.Grant), jsonList(p.ClientApps), jsonList(p.IncludeUsers), jsonList(p.ExcludeUsers),
		jsonList(p.IncludeGroups), jsonList(p.ExcludeGroups), jsonList(p.IncludeNetworks), jsonList(p.ExcludeNetworks), p.TenantID, p.ID)
	if err != nil {
		return p, fmt.Errorf("Conditional Access policy %q: %w", p.Name, err)
	}
	return one(s.queryCAPolicies(ctx, `WHERE id = $1`, p.ID))(fmt.Sprintf("Conditional Access policy %q", p.Name))
}

// RemoveCAPolicy removes a tenant's policy; the built-in one too, if the
// admin wishes.
func (s *Store) RemoveCAPolicy(ctx context.Context, tenantID int64, name string) error {
	return s.dirExecOne(ctx, fmt.Sprintf("Conditional Access policy %q", name), `DELETE FROM ca_policies WHERE tenant_id = $1 AND name = $2`, tenantID, name)
}

// ---- app registrations ----
//
// App and object ids compare without regard to case (they are GUIDs):
// queries compare lower(...), which the unique indexes on lower(app_id) and
// lower(object_id) serve.

// insertSecret stores one secret of the app with row id app.
func insertSecret(ctx context.Context, tx pgx.Tx, app int64, sec directory.AppSecret) (directory.AppSecret, error) {
	if sec.Hash == "" {
		return sec, fmt.Errorf("%w: a client secret needs its hash", store.ErrInvalid)
	}
	if sec.CreatedAt.IsZero() {
		sec.CreatedAt = time.Now().UTC()
	}
	err := tx.QueryRow(ctx, `INSERT INTO app_secrets (app, hint, hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		app, sec.Hint, sec.Hash, nanos(sec.ExpiresAt), nanos(sec.CreatedAt)).Scan(&sec.ID)
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
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO apps (tenant_id, name, app_id, object_id, permissions, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			a.TenantID, a.Name, a.AppID, a.ObjectID, jsonList(a.Permissions), nanos(a.CreatedAt)).Scan(&id)
		if err != nil {
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
	return one(s.queryApps(ctx, `WHERE id = $1`, id))(fmt.Sprintf("app %q", a.Name))
}

func (s *Store) queryApps(ctx context.Context, where string, args ...any) ([]directory.App, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, name, app_id, object_id, permissions, created_at FROM apps `+where, args...)
	list, err := collect(rows, err, func(row scanner) (a directory.App, err error) {
		var perms []byte
		var created int64
		if err = row.Scan(&a.ID, &a.TenantID, &a.Name, &a.AppID, &a.ObjectID, &perms, &created); err != nil {
			return a, err
		}
		a.CreatedAt = fromNanos(created)
		return a, fromJSONList(perms, &a.Permissions)
	})
	if err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	ids := make([]int64, len(list))
	for i, a := range list {
		ids[i] = a.ID
	}
	secrets, err := s.appSecrets(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i].Secrets = secrets[list[i].ID]
	}
	return list, nil
}

// appSecrets lists the secrets of the apps with the given row ids, newest
// first, with their hashes: the token endpoint checks secrets against
// them. Every app of ids has a list, empty or not.
func (s *Store) appSecrets(ctx context.Context, ids []int64) (map[int64][]directory.AppSecret, error) {
	byApp := make(map[int64][]directory.AppSecret, len(ids))
	for _, id := range ids {
		byApp[id] = []directory.AppSecret{}
	}
	if len(ids) == 0 {
		return byApp, nil
	}
	type row struct {
		app int64
		directory.AppSecret
	}
	rows, err := s.pool.Query(ctx, `SELECT app, id, hint, hash, expires_at, created_at FROM app_secrets
		WHERE app = ANY($1) ORDER BY created_at DESC, id DESC`, ids)
	list, err := collect(rows, err, func(row scanner) (r row, err error) {
		var expires, created int64
		err = row.Scan(&r.app, &r.ID, &r.Hint, &r.Hash, &expires, &created)
		r.ExpiresAt, r.CreatedAt = fromNanos(expires), fromNanos(created)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing app secrets: %w", err)
	}
	for _, r := range list {
		byApp[r.app] = append(byApp[r.app], r.AppSecret)
	}
	return byApp, nil
}

// Apps lists a tenant's apps by name, with their secrets.
func (s *Store) Apps(ctx context.Context, tenantID int64) ([]directory.App, error) {
	return s.queryApps(ctx, `WHERE tenant_id = $1 ORDER BY name COLLATE "C", id`, tenantID)
}

// AppByAppID finds an app of any tenant by its app (client) id.
func (s *Store) AppByAppID(ctx context.Context, appID string) (directory.App, error) {
	return one(s.queryApps(ctx, `WHERE lower(app_id) = lower($1)`, appID))("app " + appID)
}

// App finds a tenant's app by app id or object id (either without regard
// to case) or else by its exact name, which must then be unambiguous.
func (s *Store) App(ctx context.Context, tenantID int64, ref string) (directory.App, error) {
	byID, err := s.queryApps(ctx, `WHERE tenant_id = $1 AND (lower(app_id) = lower($2) OR lower(object_id) = lower($2))`, tenantID, ref)
	if err != nil || len(byID) > 0 {
		return one(byID, err)("app " + ref)
	}
	byName, err := s.queryApps(ctx, `WHERE tenant_id = $1 AND name = $2 ORDER BY id`, tenantID, ref)
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
	err := s.dirExecOne(ctx, "app "+a.AppID, `UPDATE apps SET name = $1, permissions = $2 WHERE tenant_id = $3 AND lower(app_id) = lower($4)`,
		a.Name, jsonList(a.Permissions), a.TenantID, a.AppID)
	if err != nil {
		return a, fmt.Errorf("updating app %q: %w", a.Name, err)
	}
	return one(s.queryApps(ctx, `WHERE tenant_id = $1 AND lower(app_id) = lower($2)`, a.TenantID, a.AppID))("app " + a.AppID)
}

// RemoveApp removes a tenant's app and its secrets (ON DELETE CASCADE), and
// takes its app id off the allowed apps of the tenant's accounts, so that a
// new app can never inherit the place.
func (s *Store) RemoveApp(ctx context.Context, tenantID int64, appID string) error {
	return s.dirTx(ctx, func(tx pgx.Tx) error {
		if err := execOne(ctx, tx, "app "+appID, `DELETE FROM apps WHERE tenant_id = $1 AND lower(app_id) = lower($2)`, tenantID, appID); err != nil {
			return err
		}
		// One statement rewrites each list in place, keeping the order of
		// the other ids, so that a concurrent update of an account cannot
		// be lost between a read and a write.
		_, err := tx.Exec(ctx, `UPDATE accounts SET allowed_apps = (
				SELECT coalesce(jsonb_agg(app ORDER BY i), '[]') FROM jsonb_array_elements_text(allowed_apps) WITH ORDINALITY AS x(app, i)
				WHERE lower(app) <> lower($2))
			WHERE tenant_id = $1 AND EXISTS (SELECT FROM jsonb_array_elements_text(allowed_apps) AS x(app) WHERE lower(app) = lower($2))`,
			tenantID, appID)
		if err != nil {
			return fmt.Errorf("taking app %s off the allowed apps of accounts: %w", appID, err)
		}
		return nil
	})
}

// AddAppSecret adds a client secret to a tenant's app. CreatedAt is now
// unless given.
func (s *Store) AddAppSecret(ctx context.Context, tenantID int64, appID string, sec directory.AppSecret) (directory.AppSecret, error) {
	err := s.dirTx(ctx, func(tx pgx.Tx) error {
		// FOR SHARE: the app cannot go before its new secret is stored.
		var app int64
		if err := tx.QueryRow(ctx, `SELECT id FROM apps WHERE tenant_id = $1 AND lower(app_id) = lower($2) FOR SHARE`, tenantID, appID).Scan(&app); err != nil {
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
	return s.dirExecOne(ctx, fmt.Sprintf("secret %d of app %s", secretID, appID),
		`DELETE FROM app_secrets WHERE id = $1 AND app = (SELECT id FROM apps WHERE tenant_id = $2 AND lower(app_id) = lower($3))`, secretID, tenantID, appID)
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
	defer s.dirChanged()
	err := s.pool.QueryRow(ctx, `INSERT INTO issuers (tenant_id, url, audience, role, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		i.TenantID, i.URL, i.Audience, i.Role, nanos(i.CreatedAt)).Scan(&i.ID)
	if err != nil {
		return i, fmt.Errorf("issuer %s: %w", i.URL, mapErr(err))
	}
	return i, nil
}

// Issuers lists a tenant's trusted issuers by URL; tenantID 0 lists every
// tenant's, by tenant.
func (s *Store) Issuers(ctx context.Context, tenantID int64) ([]directory.Issuer, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, url, audience, role, created_at FROM issuers
		WHERE $1::bigint = 0 OR tenant_id = $1 ORDER BY tenant_id, url COLLATE "C"`, tenantID)
	list, err := collect(rows, err, func(row scanner) (i directory.Issuer, err error) {
		var created int64
		err = row.Scan(&i.ID, &i.TenantID, &i.URL, &i.Audience, &i.Role, &created)
		i.CreatedAt = fromNanos(created)
		return i, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing issuers: %w", err)
	}
	return list, nil
}

// RemoveIssuer removes a tenant's trusted issuer.
func (s *Store) RemoveIssuer(ctx context.Context, tenantID int64, url string) error {
	return s.dirExecOne(ctx, "issuer "+url, `DELETE FROM issuers WHERE tenant_id = $1 AND url = $2`, tenantID, url)
}

// ---- signing keys ----

// SigningKeys lists hve's token-signing keys, newest first.
func (s *Store) SigningKeys(ctx context.Context) ([]directory.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT kid, algorithm, private_pem, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, seq DESC`)
	list, err := collect(rows, err, func(row scanner) (k directory.SigningKey, err error) {
		var created, retired int64
		err = row.Scan(&k.ID, &k.Algorithm, &k.PrivatePEM, &created, &retired)
		k.CreatedAt, k.RetiredAt = fromNanos(created), fromNanos(retired)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	return list, nil
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
	// Serializable: two nodes rotating at once would each retire only the
	// keys they saw and leave two current keys; one of them now runs again
	// after the other and retires the other's key.
	err := s.dirSerializable(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE retired_at = 0`, nanos(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (kid, algorithm, private_pem, created_at, retired_at) VALUES ($1, $2, $3, $4, 0)`,
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
	defer s.dirChanged()
	_, err := s.pool.Exec(ctx, `DELETE FROM signing_keys WHERE retired_at != 0 AND retired_at < $1`, nanos(retiredBefore))
	if err != nil {
		return fmt.Errorf("pruning signing keys: %w", mapErr(err))
	}
	return nil
}
