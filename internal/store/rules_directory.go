package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"hve/internal/directory"
)

// Rules of the directory and of access objects that every store applies the
// same way, so that both stores refuse the same requests with the same
// messages. They do not touch a database.

// BuiltInCAPolicy is the Conditional Access policy every new tenant gets
// (directory.BuiltInBlockLegacy): it would block basic authentication for
// everyone, but only reports, like the managed policy admins know from
// Entra ID. Admins may turn it on or remove it.
func BuiltInCAPolicy(tenantID int64, at time.Time) directory.CAPolicy {
	return directory.CAPolicy{TenantID: tenantID, Name: directory.BuiltInBlockLegacy, State: directory.CAReportOnly, Grant: directory.GrantBlock,
		ClientApps: []directory.ClientApp{directory.Legacy}, IncludeUsers: []string{directory.AllUsers}, CreatedAt: at}
}

// EncodeSettings encodes tenant settings as the JSON the stores keep.
func EncodeSettings(set directory.Settings) (string, error) {
	b, err := json.Marshal(set)
	if err != nil {
		return "", fmt.Errorf("encoding tenant settings: %w", err)
	}
	return string(b), nil
}

// DecodeSettings decodes tenant settings written by EncodeSettings. Their
// times are UTC, as every time a store returns: JSON keeps the zone offset
// a time was given with.
func DecodeSettings(b []byte) (directory.Settings, error) {
	var set directory.Settings
	if err := json.Unmarshal(b, &set); err != nil {
		return set, fmt.Errorf("decoding tenant settings: %w", err)
	}
	for _, r := range []*directory.Retirement{&set.HVEBasicAuth, &set.ClientBasicAuth} {
		r.SunsetAt, r.RampStart, r.RampEnd = r.SunsetAt.UTC(), r.RampStart.UTC(), r.RampEnd.UTC()
	}
	return set, nil
}

// CleanAllowedLists checks an account's allowed apps and networks and
// returns them cleaned up: without duplicates (app ids compared without
// regard to case, as GUIDs are), in the order given, networks in canonical
// form, never nil. The caller's slices are not changed. It fails with
// ErrInvalid for more than directory.MaxAllowedApps apps or a network that
// does not parse.
func CleanAllowedLists(apps, networks []string) ([]string, []string, error) {
	cleanApps := []string{}
	for _, app := range apps {
		if !slices.ContainsFunc(cleanApps, func(a string) bool { return strings.EqualFold(a, app) }) {
			cleanApps = append(cleanApps, app)
		}
	}
	if len(cleanApps) > directory.MaxAllowedApps {
		return nil, nil, fmt.Errorf("%w: %d allowed apps; an account may allow at most %d", ErrInvalid, len(cleanApps), directory.MaxAllowedApps)
	}
	cleanNets := []string{}
	for _, n := range networks {
		pfx, err := directory.ParseNetwork(n)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if !slices.Contains(cleanNets, pfx.String()) {
			cleanNets = append(cleanNets, pfx.String())
		}
	}
	return cleanApps, cleanNets, nil
}

// AddressInUse turns err, a store's error from writing address (with
// unique violations already mapped to ErrExists), into the ErrExists error
// that names the address; only the address can be taken when a mailbox,
// account or group is stored. Other errors pass unchanged.
func AddressInUse(err error, address string) error {
	if errors.Is(err, ErrExists) {
		return fmt.Errorf("%w: address %s is already used", ErrExists, address)
	}
	return err
}

// NotAcceptedError is the ErrInvalid error for an address outside the
// accepted domains of the tenant that would own it.
func NotAcceptedError(address string) error {
	domain := directory.DomainOf(address)
	return fmt.Errorf("%w: %s is not in an accepted domain of this tenant; add the domain first (hve domain add %s)", ErrInvalid, address, domain)
}

// UnknownAuthPolicyError is the ErrInvalid error for naming an
// authentication policy the tenant does not have.
func UnknownAuthPolicyError(name string) error {
	return fmt.Errorf("%w: authentication policy %q does not exist in this tenant; create it first or name an existing one", ErrInvalid, name)
}

// MaxAccountsError is the ErrLimit error for a tenant that already has n
// HVE accounts, its Settings.MaxHVEAccounts.
func MaxAccountsError(tenant string, n int64) error {
	return fmt.Errorf("%w: tenant %s already has %d HVE accounts, its maximum (raise it with hve tenant set --max-hve-accounts)", ErrLimit, tenant, n)
}

// CheckGroupMember checks that e, the entry address resolves to (the zero
// Entry when it resolves to nothing), may be a direct member of the
// distribution group groupID of tenant tenantID: a mailbox or another
// group of the tenant. HVE accounts receive no mail.
func CheckGroupMember(e directory.Entry, tenantID, groupID int64, address string) error {
	switch {
	case e.TenantID != tenantID:
		return fmt.Errorf("%w: no mailbox or group %s in this tenant", ErrNotFound, address)
	case e.Kind == directory.KindAccount:
		return fmt.Errorf("%w: %s is an HVE account; HVE accounts cannot receive mail, so they cannot be group members", ErrInvalid, address)
	case e.Kind == directory.KindGroup && e.ID == groupID:
		return fmt.Errorf("%w: a group cannot be a member of itself", ErrInvalid)
	}
	return nil
}

// CheckSecurityGroupMember checks that e, the entry address resolves to
// (the zero Entry when it resolves to nothing), may be a member of a
// security group of tenant tenantID: an account or mailbox of the tenant.
func CheckSecurityGroupMember(e directory.Entry, tenantID int64, address string) error {
	switch {
	case e.TenantID != tenantID:
		return fmt.Errorf("%w: no account or mailbox %s in this tenant", ErrNotFound, address)
	case e.Kind != directory.KindAccount && e.Kind != directory.KindMailbox:
		return fmt.Errorf("%w: %s is a distribution group; security groups hold only HVE accounts and mailboxes", ErrInvalid, address)
	}
	return nil
}

// CheckApp checks the fields every app registration needs.
func CheckApp(a directory.App) error {
	if strings.TrimSpace(a.Name) == "" {
		return fmt.Errorf("%w: an app needs a name", ErrInvalid)
	}
	if a.AppID == "" || a.ObjectID == "" {
		return fmt.Errorf("%w: app %q needs an app id and an object id", ErrInvalid, a.Name)
	}
	return nil
}

// FirstFew names the first few of list, for errors that say where
// something is still used.
func FirstFew(list []string) string {
	const shown = 5
	if len(list) <= shown {
		return strings.Join(list, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(list[:shown], ", "), len(list)-shown)
}
