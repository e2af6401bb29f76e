// Package store defines the storage contract of hve: the directory, the
// durable queue, the embedded mailbox store and message trace.
//
// Two implementations exist or are planned: store/sqlite (the embedded
// default, one node) and a PostgreSQL one (several nodes). Both must pass the
// contract tests in store/storetest.
package store

import (
	"context"
	"errors"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/trace"
)

// Errors that callers test for with errors.Is.
var (
	// ErrNotFound: the object does not exist (in this tenant).
	ErrNotFound = errors.New("not found")
	// ErrExists: the name or address is already taken.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the request breaks a directory rule (the error says which).
	ErrInvalid = errors.New("invalid")
	// ErrFull: the disk holding the store is full.
	ErrFull = errors.New("storage full")
	// ErrLimit: the change would go beyond a limit of the tenant (such as
	// its maximum number of HVE accounts); the error says which.
	ErrLimit = errors.New("limit reached")
)

// Store is everything hve keeps.
type Store interface {
	Directory
	Access
	Routes
	Queue
	Mailboxes
	Trace
	Usage
	Counters
	Admins
	Webhooks
	Alerts
	Close() error
}

// Directory holds tenants and their objects. Addresses are unique across all
// tenants (a domain belongs to one tenant) and stored in lower case.
type Directory interface {
	// CreateTenant creates a tenant with directory.DefaultSettings and the built-in
	// report-only Conditional Access policy directory.BuiltInBlockLegacy.
	CreateTenant(ctx context.Context, name string) (directory.Tenant, error)
	Tenants(ctx context.Context) ([]directory.Tenant, error)
	TenantByName(ctx context.Context, name string) (directory.Tenant, error)
	Tenant(ctx context.Context, id int64) (directory.Tenant, error)
	// UpdateTenantSettings replaces a tenant's settings. A default
	// authentication policy must exist (ErrInvalid otherwise).
	UpdateTenantSettings(ctx context.Context, tenantID int64, s directory.Settings) (directory.Tenant, error)

	// AddDomain fails with ErrExists if any tenant has the domain.
	AddDomain(ctx context.Context, d directory.Domain) (directory.Domain, error)
	Domains(ctx context.Context, tenantID int64) ([]directory.Domain, error)
	// DomainByName finds an accepted domain in any tenant.
	DomainByName(ctx context.Context, name string) (directory.Domain, error)
	// RemoveDomain fails with ErrInvalid while objects still use the domain.
	RemoveDomain(ctx context.Context, tenantID int64, name string) error

	// Create* check that every address is in an accepted domain of the
	// tenant and not yet taken.
	CreateMailbox(ctx context.Context, m directory.Mailbox) (directory.Mailbox, error)
	Mailboxes(ctx context.Context, tenantID int64) ([]directory.Mailbox, error)
	Mailbox(ctx context.Context, tenantID, id int64) (directory.Mailbox, error)
	// UpdateMailbox replaces the mailbox's changeable fields (display name,
	// password hash, authentication policy, tokens-valid-from).
	UpdateMailbox(ctx context.Context, m directory.Mailbox) (directory.Mailbox, error)
	RemoveMailbox(ctx context.Context, tenantID, id int64) error

	// CreateAccount fails with ErrLimit when the tenant already has its
	// Settings.MaxHVEAccounts accounts; the count and the insert are one
	// atomic step, so racing creations cannot pass the maximum.
	CreateAccount(ctx context.Context, a directory.Account) (directory.Account, error)
	Accounts(ctx context.Context, tenantID int64) ([]directory.Account, error)
	Account(ctx context.Context, tenantID, id int64) (directory.Account, error)
	// UpdateAccount replaces the account's changeable fields (display name,
	// aliases, reply-to, enabled, password hash, authentication policy,
	// tokens-valid-from, allowed apps, allowed networks, daily recipient
	// limit, warning level, failure report address). A named policy
	// must exist and the allowed apps be at most MaxAllowedApps (ErrInvalid).
	UpdateAccount(ctx context.Context, a directory.Account) (directory.Account, error)
	RemoveAccount(ctx context.Context, tenantID, id int64) error
	// ConvertAccountToMailbox turns an HVE account into a mailbox with the
	// same addresses, display name and password, marked ConvertedFromHVE,
	// in one transaction. Group and security group memberships are kept.
	ConvertAccountToMailbox(ctx context.Context, tenantID, accountID int64) (directory.Mailbox, error)

	CreateGroup(ctx context.Context, g directory.Group) (directory.Group, error)
	Groups(ctx context.Context, tenantID int64) ([]directory.Group, error)
	Group(ctx context.Context, tenantID, id int64) (directory.Group, error)
	RemoveGroup(ctx context.Context, tenantID, id int64) error
	// AddGroupMember adds the mailbox or group that owns memberAddress.
	AddGroupMember(ctx context.Context, tenantID, groupID int64, memberAddress string) error
	RemoveGroupMember(ctx context.Context, tenantID, groupID int64, memberAddress string) error

	// Lookup resolves a primary address or alias in any tenant.
	Lookup(ctx context.Context, address string) (directory.Entry, error)
	// AccountByAddress finds an HVE account by its primary address, the
	// username it signs in with. It also returns ErrNotFound for aliases.
	AccountByAddress(ctx context.Context, address string) (directory.Account, error)
	// MailboxByAddress finds a mailbox by primary address or alias.
	MailboxByAddress(ctx context.Context, address string) (directory.Mailbox, error)
}

// Access holds what sign-ins are checked against: authentication policies,
// security groups, Conditional Access policies, app registrations, trusted
// external issuers and hve's own token-signing keys. Names are unique per
// tenant; app ids and object ids are unique across tenants.
type Access interface {
	CreateAuthPolicy(ctx context.Context, p directory.AuthPolicy) (directory.AuthPolicy, error)
	AuthPolicies(ctx context.Context, tenantID int64) ([]directory.AuthPolicy, error)
	AuthPolicyByName(ctx context.Context, tenantID int64, name string) (directory.AuthPolicy, error)
	UpdateAuthPolicy(ctx context.Context, p directory.AuthPolicy) (directory.AuthPolicy, error)
	// RemoveAuthPolicy fails with ErrInvalid while the policy is the
	// tenant's default or assigned to an account or mailbox.
	RemoveAuthPolicy(ctx context.Context, tenantID int64, name string) error

	CreateSecurityGroup(ctx context.Context, g directory.SecurityGroup) (directory.SecurityGroup, error)
	SecurityGroups(ctx context.Context, tenantID int64) ([]directory.SecurityGroup, error)
	SecurityGroupByName(ctx context.Context, tenantID int64, name string) (directory.SecurityGroup, error)
	RemoveSecurityGroup(ctx context.Context, tenantID int64, name string) error
	// AddSecurityGroupMember adds the account or mailbox whose primary
	// address or alias memberAddress is (ErrInvalid for groups).
	AddSecurityGroupMember(ctx context.Context, tenantID int64, group, memberAddress string) error
	RemoveSecurityGroupMember(ctx context.Context, tenantID int64, group, memberAddress string) error
	// SecurityGroupsOf names the security groups an account or mailbox is a
	// direct member of.
	SecurityGroupsOf(ctx context.Context, tenantID int64, kind directory.Kind, id int64) ([]string, error)

	CreateCAPolicy(ctx context.Context, p directory.CAPolicy) (directory.CAPolicy, error)
	// CAPolicies lists a tenant's policies by name.
	CAPolicies(ctx context.Context, tenantID int64) ([]directory.CAPolicy, error)
	CAPolicyByName(ctx context.Context, tenantID int64, name string) (directory.CAPolicy, error)
	// UpdateCAPolicy replaces every field of the policy with p.ID.
	UpdateCAPolicy(ctx context.Context, p directory.CAPolicy) (directory.CAPolicy, error)
	RemoveCAPolicy(ctx context.Context, tenantID int64, name string) error

	CreateApp(ctx context.Context, a directory.App) (directory.App, error)
	Apps(ctx context.Context, tenantID int64) ([]directory.App, error)
	// AppByAppID finds an app in any tenant by its app (client) id: the
	// token endpoint does not know the tenant before it has the app.
	AppByAppID(ctx context.Context, appID string) (directory.App, error)
	// App finds a tenant's app by app id, object id or name.
	App(ctx context.Context, tenantID int64, ref string) (directory.App, error)
	// UpdateApp replaces the app's name and permissions.
	UpdateApp(ctx context.Context, a directory.App) (directory.App, error)
	RemoveApp(ctx context.Context, tenantID int64, appID string) error
	AddAppSecret(ctx context.Context, tenantID int64, appID string, s directory.AppSecret) (directory.AppSecret, error)
	RemoveAppSecret(ctx context.Context, tenantID int64, appID string, secretID int64) error

	CreateIssuer(ctx context.Context, i directory.Issuer) (directory.Issuer, error)
	// Issuers lists a tenant's trusted issuers; tenantID 0 lists every
	// tenant's.
	Issuers(ctx context.Context, tenantID int64) ([]directory.Issuer, error)
	RemoveIssuer(ctx context.Context, tenantID int64, url string) error

	// SigningKeys lists hve's token-signing keys, newest first.
	SigningKeys(ctx context.Context) ([]directory.SigningKey, error)
	// AddSigningKey stores k as the current key and retires the others at
	// k.CreatedAt, in one transaction.
	AddSigningKey(ctx context.Context, k directory.SigningKey) error
	// PruneSigningKeys removes keys retired before the given time.
	PruneSigningKeys(ctx context.Context, retiredBefore time.Time) error
}

// Routes holds how each tenant's mail is delivered: per accepted domain,
// and a default route (domain directory.DefaultRouteDomain) for the
// tenant's other domains. Domains without a route, and tenants without a
// default route, are delivered locally.
type Routes interface {
	// SetRoute creates or replaces the route of r.Domain in tenant
	// r.TenantID, after r.Normalize (ErrInvalid with its reason). The
	// domain must not be an accepted domain of another tenant (ErrInvalid);
	// it need not be accepted by this tenant yet, so that a configuration
	// file can name a route before the admin adds the domain.
	SetRoute(ctx context.Context, r directory.Route) (directory.Route, error)
	// Routes lists a tenant's routes by domain ("*" first), passwords
	// included: delivery needs them.
	Routes(ctx context.Context, tenantID int64) ([]directory.Route, error)
	RemoveRoute(ctx context.Context, tenantID int64, domain string) error
}

// Queue is the durable spool and its work queue.
//
// Each queued message has one state row per recipient (queue.Recipient):
// every envelope recipient from Enqueue on, and group members that delivery
// adds when it relays them. A message stays queued while any recipient is
// open (pending or deferred); its next attempt is due when its earliest
// open recipient's is. Final states never change.
type Queue interface {
	// Enqueue stores messages and their trace events in one transaction and
	// returns only once they are durable (fsynced). Callers batch many
	// messages into one call so that they share one sync (group commit).
	Enqueue(ctx context.Context, msgs []*queue.Message, events []trace.Event) error
	// Claim leases up to limit messages that are due for delivery, not
	// held (QueueHold) and not leased by a live owner, until now+lease. Each carries its recipients
	// due at now in Due. Bodies are not loaded.
	Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error)
	// Finish records deliveries atomically: mailbox copies, trace events,
	// the new state of recipients, and for each message either the end of
	// its time in the queue (no recipient is open any more) or its next
	// attempt time; either way its lease ends. A delivery is idempotent: a
	// copy already in a mailbox is not made twice, and a recipient in a
	// final state keeps it.
	Finish(ctx context.Context, deliveries []Delivery) error
	// QueueRecipients returns the state of every recipient of a message in
	// the order they were added (ErrNotFound for an unknown queue id).
	QueueRecipients(ctx context.Context, queueID string) ([]queue.Recipient, error)
	// MessageBody returns a queued or delivered message's content.
	MessageBody(ctx context.Context, queueID string) ([]byte, error)
	// QueueDepth counts messages not yet finished.
	QueueDepth(ctx context.Context) (int, error)
	// PruneFinished deletes at most limit messages (0 or less means
	// DefaultPruneBatch)
	// that left the queue before before, with their recipient states and
	// bodies, and says how many it deleted. A message with a copy in an
	// embedded mailbox stays: the mailbox reads its body from the queue.
	// Its trace events are not touched (PruneTrace).
	PruneFinished(ctx context.Context, before time.Time, limit int) (int, error)

	// QueueItems lists a tenant's queued messages that match q, by queue
	// id (oldest first), each with its open recipients (all of them with
	// q.QueueID). A message being delivered when the list is read may have
	// moved on since.
	QueueItems(ctx context.Context, q QueueQuery) ([]QueueItem, error)
	// ControlQueue applies an admin's action (see QueueAction) to one
	// queued message of a tenant, or with c.All to every queued message of
	// the tenant (QueueRetry only). The change and a trace event for each
	// open recipient it touches are one transaction. It returns how many
	// messages changed. ErrNotFound: no such message in the tenant's
	// queue; ErrInvalid: the action does not apply (the error says why).
	ControlQueue(ctx context.Context, c QueueControl) (int, error)
}

// QueueStatus is where a queued message stands, as queue control shows it.
type QueueStatus string

// The queue statuses. A message is in exactly one, in this order of
// precedence.
const (
	// QueueHeld: an admin held it; delivery skips it until released.
	QueueHeld QueueStatus = "held"
	// QueueActive: a delivery node holds its lease (it is being delivered).
	QueueActive QueueStatus = "active"
	// QueueDeferred: an attempt of at least one open recipient failed
	// temporarily; the next is due at NextAttemptAt.
	QueueDeferred QueueStatus = "deferred"
	// QueuePending: waiting for its first attempt.
	QueuePending QueueStatus = "pending"
)

// QueueStatuses lists every queue status, for validating filters.
var QueueStatuses = []QueueStatus{QueueHeld, QueueActive, QueueDeferred, QueuePending}

// QueueQuery selects queued messages of one tenant. Zero fields match
// everything.
type QueueQuery struct {
	TenantID int64
	// QueueID selects one message.
	QueueID string
	Status  QueueStatus
	// Domain selects messages with an open recipient in the domain.
	Domain string
	// After is the paging cursor: the last queue id of the previous page.
	After string
	// Limit caps the page (default 100, at most 1000).
	Limit int
	// Now tells active messages (leased until after Now) from the others.
	Now time.Time
}

// QueueItem is one queued message as queue control shows it.
type QueueItem struct {
	QueueID    string      `json:"queue_id"`
	MessageID  string      `json:"message_id"`
	Sender     string      `json:"sender"`
	Subject    string      `json:"subject"`
	Size       int64       `json:"size"`
	ReceivedAt time.Time   `json:"received_at"`
	Status     QueueStatus `json:"status"`
	// HeldBy names the admin who held the message; empty unless held.
	HeldBy string `json:"held_by,omitempty"`
	// NextAttemptAt is when its earliest open recipient is due (a held
	// message waits for its release whatever this says).
	NextAttemptAt time.Time `json:"next_attempt_at"`
	// Attempts is the most attempts of any open recipient, and LastReply
	// the latest reply of a next hop to one (empty before any attempt).
	Attempts  int    `json:"attempts"`
	LastReply string `json:"last_reply"`
	// Recipients are the open recipients (every recipient when the query
	// named the message).
	Recipients []queue.Recipient `json:"recipients"`
}

// QueueAction is what an admin does to a queued message.
type QueueAction string

// The queue actions.
const (
	// QueueHold: delivery skips the message until it is released
	// (ErrInvalid if it is held already). A delivery under way finishes.
	QueueHold QueueAction = "hold"
	// QueueRelease ends a hold and makes every open recipient due at once
	// (ErrInvalid if it is not held).
	QueueRelease QueueAction = "release"
	// QueueRetry makes the open recipients due at once, keeping their
	// attempt counts (ErrInvalid for a held message: release it). With
	// All, only messages not held, and only recipients due later, change.
	QueueRetry QueueAction = "retry"
	// QueueDelete takes the message out of the queue: its open recipients
	// fail with the admin's name as the reason and are never delivered.
	// A delivery under way when it is deleted may still reach its next hop.
	QueueDelete QueueAction = "delete"
)

// QueueControl is one admin action on the queue.
type QueueControl struct {
	TenantID int64
	QueueID  string
	// All applies a retry to every queued message of the tenant (of
	// Domain, when set: then only the recipients in that domain).
	All    bool
	Domain string
	Action QueueAction
	// Actor names the admin in the trace events.
	Actor string
	Now   time.Time
}

// Delivery is the outcome of delivering one queued message.
type Delivery struct {
	QueueID string
	// Copies go into the embedded mailbox store.
	Copies []MailboxCopy
	Events []trace.Event
	// Recipients are the new states of the message's recipients, matched
	// by address; an address the message does not have yet is added (a
	// group member delivered to a next hop). Recipients not named keep
	// their state.
	Recipients []queue.Recipient
}

// MailboxCopy puts a message into one mailbox.
type MailboxCopy struct {
	MailboxID int64
	// Recipient is the address the copy was delivered for: the mailbox's
	// own, or the group's it was expanded from.
	Recipient string
}

// MailboxMessage is a message held in a mailbox of the embedded store.
type MailboxMessage struct {
	ID        int64    `json:"id"`
	QueueID   string   `json:"queue_id"`
	From      string   `json:"from"`
	To        []string `json:"to"`
	Recipient string   `json:"recipient"`
	// Folder is FolderInbox or FolderSentItems.
	Folder     string    `json:"folder"`
	Subject    string    `json:"subject"`
	MessageID  string    `json:"message_id"`
	ReceivedAt time.Time `json:"received_at"`
	Size       int64     `json:"size"`
}

// The folders of the embedded mailbox store.
const (
	FolderInbox     = "Inbox"
	FolderSentItems = "Sent Items"
)

// Mailboxes reads the embedded mailbox store.
type Mailboxes interface {
	MailboxMessages(ctx context.Context, mailboxID int64) ([]MailboxMessage, error)
	// MailboxMessageBody returns the content of one message of a mailbox.
	MailboxMessageBody(ctx context.Context, mailboxID, id int64) ([]byte, error)
}

// DefaultPruneBatch is the most rows PruneFinished and PruneTrace delete
// in one transaction when their limit is 0 or less. The embedded store's
// single writer is held for the batch, and spool batches wait behind it:
// 500 finished messages take about 7 ms, 5,000 about 80 ms, at the same
// CPU per message (BenchmarkPruneFinished).
const DefaultPruneBatch = 500

// Trace stores and searches message trace events.
type Trace interface {
	AddEvents(ctx context.Context, events []trace.Event) error
	SearchTrace(ctx context.Context, q trace.Query) ([]trace.Event, error)
	// PruneTrace deletes at most limit events older than before (0 or less
	// means DefaultPruneBatch) and returns how many it deleted.
	// Events of a message still in the queue (not done) are kept however
	// old they are. Callers repeat until it deletes fewer than limit.
	PruneTrace(ctx context.Context, before time.Time, limit int) (int, error)
}

// Counters are the quota counters the limits engine (package limits) shares
// between nodes. A counter is a key (such as "account/42/rcpt/day") with
// buckets: the units counted in one period of time (a UTC day, a minute).
// A limit applies to the sum of the buckets since some time.
//
// Nodes do not count every unit here: they lease blocks of units with
// LeaseQuota, serve them from memory, and give back with ReturnQuota what
// they did not use. The store's one promise is atomicity: racing leases,
// from any number of goroutines and nodes, never take the sum of a
// counter's buckets since lease.Since over lease.Limit.
type Counters interface {
	// LeaseQuota adds units to the bucket l.Bucket of l.Key, in one atomic
	// step with the check of the buckets from l.Since to l.Bucket: it
	// grants l.Want units if they fit under l.Limit, else as many as fit
	// if that is at least l.Need, else none. It returns the units granted
	// and the sum of those buckets afterwards.
	LeaseQuota(ctx context.Context, l QuotaLease) (granted, used int64, err error)
	// ReturnQuota takes n units leased earlier back out of a bucket; a
	// bucket never goes below zero, and one already forgotten is left so.
	ReturnQuota(ctx context.Context, key string, bucket time.Time, n int64) error
	// QuotaBuckets lists the buckets of key that start at or after since,
	// oldest first, leaving out empty ones.
	QuotaBuckets(ctx context.Context, key string, since time.Time) ([]QuotaBucket, error)
	// MarkQuotaEvent records that an event (such as "warning level
	// crossed") happened for key in the window starting at window; it
	// reports true to the first caller only, on any node. The mark is kept
	// until expires.
	MarkQuotaEvent(ctx context.Context, key string, window, expires time.Time) (bool, error)
	// PruneQuota forgets buckets and marks that expired at or before now.
	PruneQuota(ctx context.Context, now time.Time) error
}

// QuotaLease asks Counters.LeaseQuota for units of one counter.
type QuotaLease struct {
	Key string
	// Bucket is the start of the bucket the units are counted in.
	Bucket time.Time
	// Since is the start of the window: the buckets from it to Bucket
	// count toward Limit. For a calendar window it is Bucket.
	Since time.Time
	// Expires is when Bucket stops counting in any window; the store may
	// forget it afterwards.
	Expires time.Time
	// Need is the least number of units worth granting, Want the most.
	Need, Want int64
	Limit      int64
}

// QuotaBucket is the units counted in one bucket of a counter.
type QuotaBucket struct {
	Start time.Time
	Used  int64
}

// DirectoryVersion is a store that counts the changes of its directory:
// tenants and their settings, domains, mailboxes, accounts, groups, the
// access objects (policies, security groups, Conditional Access, apps,
// issuers) and routes. Caches of directory reads (package dircache) forget
// what they hold when the count moves.
type DirectoryVersion interface {
	// DirectoryVersion changes after every committed directory change
	// (of this node, and for a store that several nodes share, of the
	// others as soon as they are heard of). A read that starts after the
	// change became visible sees the new version.
	DirectoryVersion() uint64
}
