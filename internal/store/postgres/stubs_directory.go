package postgres

// Temporary: methods not yet ported. This file goes when they are.
import (
	"context"
	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
	"time"
)

var _ = context.Background
var _ time.Time
var _ directory.Kind
var _ *queue.Message
var _ store.Store
var _ trace.Event
var _ adminauth.User
var _ audit.Entry

func (s *Store) CreateTenant(ctx context.Context, name string) (directory.Tenant, error) {
	panic("postgres: not implemented")
}
func (s *Store) Tenants(ctx context.Context) ([]directory.Tenant, error) {
	panic("postgres: not implemented")
}
func (s *Store) TenantByName(ctx context.Context, name string) (directory.Tenant, error) {
	panic("postgres: not implemented")
}
func (s *Store) Tenant(ctx context.Context, id int64) (directory.Tenant, error) {
	panic("postgres: not implemented")
}
func (s *Store) UpdateTenantSettings(ctx context.Context, tenantID int64, set directory.Settings) (directory.Tenant, error) {
	panic("postgres: not implemented")
}
func (s *Store) AddDomain(ctx context.Context, d directory.Domain) (directory.Domain, error) {
	panic("postgres: not implemented")
}
func (s *Store) Domains(ctx context.Context, tenantID int64) ([]directory.Domain, error) {
	panic("postgres: not implemented")
}
func (s *Store) DomainByName(ctx context.Context, name string) (directory.Domain, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveDomain(ctx context.Context, tenantID int64, name string) error {
	panic("postgres: not implemented")
}
func (s *Store) CreateMailbox(ctx context.Context, m directory.Mailbox) (directory.Mailbox, error) {
	panic("postgres: not implemented")
}
func (s *Store) Mailboxes(ctx context.Context, tenantID int64) ([]directory.Mailbox, error) {
	panic("postgres: not implemented")
}
func (s *Store) Mailbox(ctx context.Context, tenantID, id int64) (directory.Mailbox, error) {
	panic("postgres: not implemented")
}
func (s *Store) MailboxByAddress(ctx context.Context, address string) (directory.Mailbox, error) {
	panic("postgres: not implemented")
}
func (s *Store) UpdateMailbox(ctx context.Context, m directory.Mailbox) (directory.Mailbox, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveMailbox(ctx context.Context, tenantID, id int64) error {
	panic("postgres: not implemented")
}
func (s *Store) CreateAccount(ctx context.Context, a directory.Account) (directory.Account, error) {
	panic("postgres: not implemented")
}
func (s *Store) Accounts(ctx context.Context, tenantID int64) ([]directory.Account, error) {
	panic("postgres: not implemented")
}
func (s *Store) Account(ctx context.Context, tenantID, id int64) (directory.Account, error) {
	panic("postgres: not implemented")
}
func (s *Store) AccountByAddress(ctx context.Context, address string) (directory.Account, error) {
	panic("postgres: not implemented")
}
func (s *Store) UpdateAccount(ctx context.Context, a directory.Account) (directory.Account, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveAccount(ctx context.Context, tenantID, id int64) error {
	panic("postgres: not implemented")
}
func (s *Store) ConvertAccountToMailbox(ctx context.Context, tenantID, accountID int64) (directory.Mailbox, error) {
	panic("postgres: not implemented")
}
func (s *Store) CreateGroup(ctx context.Context, g directory.Group) (directory.Group, error) {
	panic("postgres: not implemented")
}
func (s *Store) Groups(ctx context.Context, tenantID int64) ([]directory.Group, error) {
	panic("postgres: not implemented")
}
func (s *Store) Group(ctx context.Context, tenantID, id int64) (directory.Group, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveGroup(ctx context.Context, tenantID, id int64) error {
	panic("postgres: not implemented")
}
func (s *Store) AddGroupMember(ctx context.Context, tenantID, groupID int64, memberAddress string) error {
	panic("postgres: not implemented")
}
func (s *Store) RemoveGroupMember(ctx context.Context, tenantID, groupID int64, memberAddress string) error {
	panic("postgres: not implemented")
}
func (s *Store) Lookup(ctx context.Context, address string) (directory.Entry, error) {
	panic("postgres: not implemented")
}
func (s *Store) CreateAuthPolicy(ctx context.Context, p directory.AuthPolicy) (directory.AuthPolicy, error) {
	panic("postgres: not implemented")
}
func (s *Store) AuthPolicies(ctx context.Context, tenantID int64) ([]directory.AuthPolicy, error) {
	panic("postgres: not implemented")
}
func (s *Store) AuthPolicyByName(ctx context.Context, tenantID int64, name string) (directory.AuthPolicy, error) {
	panic("postgres: not implemented")
}
func (s *Store) UpdateAuthPolicy(ctx context.Context, p directory.AuthPolicy) (directory.AuthPolicy, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveAuthPolicy(ctx context.Context, tenantID int64, name string) error {
	panic("postgres: not implemented")
}
func (s *Store) CreateSecurityGroup(ctx context.Context, g directory.SecurityGroup) (directory.SecurityGroup, error) {
	panic("postgres: not implemented")
}
func (s *Store) SecurityGroups(ctx context.Context, tenantID int64) ([]directory.SecurityGroup, error) {
	panic("postgres: not implemented")
}
func (s *Store) SecurityGroupByName(ctx context.Context, tenantID int64, name string) (directory.SecurityGroup, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveSecurityGroup(ctx context.Context, tenantID int64, name string) error {
	panic("postgres: not implemented")
}
func (s *Store) AddSecurityGroupMember(ctx context.Context, tenantID int64, group, memberAddress string) error {
	panic("postgres: not implemented")
}
func (s *Store) RemoveSecurityGroupMember(ctx context.Context, tenantID int64, group, memberAddress string) error {
	panic("postgres: not implemented")
}
func (s *Store) SecurityGroupsOf(ctx context.Context, tenantID int64, kind directory.Kind, id int64) ([]string, error) {
	panic("postgres: not implemented")
}
func (s *Store) CreateCAPolicy(ctx context.Context, p directory.CAPolicy) (directory.CAPolicy, error) {
	panic("postgres: not implemented")
}
func (s *Store) CAPolicies(ctx context.Context, tenantID int64) ([]directory.CAPolicy, error) {
	panic("postgres: not implemented")
}
func (s *Store) CAPolicyByName(ctx context.Context, tenantID int64, name string) (directory.CAPolicy, error) {
	panic("postgres: not implemented")
}
func (s *Store) UpdateCAPolicy(ctx context.Context, p directory.CAPolicy) (directory.CAPolicy, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveCAPolicy(ctx context.Context, tenantID int64, name string) error {
	panic("postgres: not implemented")
}
func (s *Store) CreateApp(ctx context.Context, a directory.App) (directory.App, error) {
	panic("postgres: not implemented")
}
func (s *Store) Apps(ctx context.Context, tenantID int64) ([]directory.App, error) {
	panic("postgres: not implemented")
}
func (s *Store) AppByAppID(ctx context.Context, appID string) (directory.App, error) {
	panic("postgres: not implemented")
}
func (s *Store) App(ctx context.Context, tenantID int64, ref string) (directory.App, error) {
	panic("postgres: not implemented")
}
func (s *Store) UpdateApp(ctx context.Context, a directory.App) (directory.App, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveApp(ctx context.Context, tenantID int64, appID string) error {
	panic("postgres: not implemented")
}
func (s *Store) AddAppSecret(ctx context.Context, tenantID int64, appID string, sec directory.AppSecret) (directory.AppSecret, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveAppSecret(ctx context.Context, tenantID int64, appID string, secretID int64) error {
	panic("postgres: not implemented")
}
func (s *Store) CreateIssuer(ctx context.Context, i directory.Issuer) (directory.Issuer, error) {
	panic("postgres: not implemented")
}
func (s *Store) Issuers(ctx context.Context, tenantID int64) ([]directory.Issuer, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveIssuer(ctx context.Context, tenantID int64, url string) error {
	panic("postgres: not implemented")
}
func (s *Store) SigningKeys(ctx context.Context) ([]directory.SigningKey, error) {
	panic("postgres: not implemented")
}
func (s *Store) AddSigningKey(ctx context.Context, k directory.SigningKey) error {
	panic("postgres: not implemented")
}
func (s *Store) PruneSigningKeys(ctx context.Context, retiredBefore time.Time) error {
	panic("postgres: not implemented")
}
