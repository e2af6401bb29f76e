// Package storetest is the contract test suite of store.Store. Every
// implementation (the embedded SQLite store, the PostgreSQL one) runs it
// from its own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// It is a normal package, not a _test file, so that other packages can
// import it.
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// Run runs the contract tests as subtests of t. open is called once per
// subtest and must return a new, empty store that it closes when its t ends
// (t.Cleanup).
//
// Beyond the doc comments of package store, the suite expects what callers
// rely on: Tenants is ordered by name; SearchTrace returns events oldest
// (lowest ID) first; MailboxMessages, SearchTrace and the list methods of
// store.Access return empty, non-nil lists when nothing matches, and list
// fields (an account's allowed apps, a policy's users, an app's secrets...)
// are never nil either, which the admin API encodes as []. Times keep
// nanoseconds where the suite says so (tokens-valid-from).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Tenants", testTenants},
		{"Domains", testDomains},
		{"RemoveDomain", testRemoveDomain},
		{"Mailboxes", testMailboxes},
		{"AcceptedDomainRequired", testAcceptedDomainRequired},
		{"AddressUniqueness", testAddressUniqueness},
		{"Lookup", testLookup},
		{"Accounts", testAccounts},
		{"UpdateAccount", testUpdateAccount},
		{"UpdateAccountFailureChangesNothing", testUpdateAccountFailureChangesNothing},
		{"RemoveFreesAddressesAndMemberships", testRemove},
		{"GroupMembers", testGroupMembers},
		{"TenantIsolation", testTenantIsolation},
		{"EnqueueAndClaim", testEnqueueAndClaim},
		{"ClaimLimit", testClaimLimit},
		{"ConcurrentClaims", testConcurrentClaims},
		{"EnqueueIsAtomic", testEnqueueIsAtomic},
		{"Finish", testFinish},
		{"MailboxMessages", testMailboxMessages},
		{"SentItems", testSentItems},
		{"NotBefore", testNotBefore},
		{"Routes", testRoutes},
		{"RecipientStates", testRecipientStates},
		{"TenantSettings", testTenantSettings},
		{"QuotaLease", testQuotaLease},
		{"QuotaLeaseRace", testQuotaLeaseRace},
		{"QuotaEvents", testQuotaEvents},
		{"AccountLimits", testAccountLimits},
		{"MaxHVEAccounts", testMaxHVEAccounts},
		{"BuiltInCAPolicy", testBuiltInCAPolicy},
		{"AuthPolicies", testAuthPolicies},
		{"RemoveAuthPolicyInUse", testRemoveAuthPolicyInUse},
		{"AccountAccessFields", testAccountAccessFields},
		{"UpdateMailbox", testUpdateMailbox},
		{"ConvertAccountToMailbox", testConvertAccountToMailbox},
		{"SecurityGroups", testSecurityGroups},
		{"SecurityGroupMembershipsEndWithTheMember", testSecurityGroupMembershipsEnd},
		{"CAPolicies", testCAPolicies},
		{"Apps", testApps},
		{"AppSecrets", testAppSecrets},
		{"RemoveApp", testRemoveApp},
		{"Issuers", testIssuers},
		{"SigningKeys", testSigningKeys},
		{"TraceSearch", testTraceSearch},
		{"TracePaging", testTracePaging},
		{"MeterEvents", testMeterEvents},
		{"AddUsage", testAddUsage},
		{"ReportJobs", testReportJobs},
		{"DetailRows", testDetailRows},
		{"DirectoryVersion", testDirectoryVersion},
		{"LeasedAtEnqueue", testLeasedAtEnqueue},
	}
	tests = append(tests, adminTests...)
	tests = append(tests, webhookTests...)
	tests = append(tests, queueControlTests...)
	tests = append(tests, traceRetentionTests...)
	tests = append(tests, finishedTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// ---- helpers ----

// result carries the two results of a store call to must.
type result[T any] struct {
	v   T
	err error
}

func of[T any](v T, err error) result[T] { return result[T]{v, err} }

// must returns r's value, or ends the test on its error.
func must[T any](t *testing.T, r result[T]) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr reports an error unless err wraps target.
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

func sorted(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return out
}

func equalSets(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }

// newTenant creates a tenant with authoritative accepted domains.
func newTenant(t *testing.T, s store.Store, name string, domains ...string) directory.Tenant {
	t.Helper()
	ten := must(t, of(s.CreateTenant(t.Context(), name)))
	for _, d := range domains {
		must(t, of(s.AddDomain(t.Context(), directory.Domain{TenantID: ten.ID, Name: d, Type: directory.Authoritative})))
	}
	return ten
}

func newMailbox(t *testing.T, s store.Store, tenantID int64, addr string, aliases ...string) directory.Mailbox {
	t.Helper()
	return must(t, of(s.CreateMailbox(t.Context(), directory.Mailbox{TenantID: tenantID, Name: addr, DisplayName: "Box " + addr, Address: addr, Aliases: aliases})))
}

func newAccount(t *testing.T, s store.Store, tenantID int64, addr string, aliases ...string) directory.Account {
	t.Helper()
	return must(t, of(s.CreateAccount(t.Context(), directory.Account{TenantID: tenantID, Name: addr, DisplayName: "App " + addr,
		Address: addr, Aliases: aliases, Enabled: true, PasswordHash: "$argon2id$test"})))
}

func newGroup(t *testing.T, s store.Store, tenantID int64, addr string) directory.Group {
	t.Helper()
	return must(t, of(s.CreateGroup(t.Context(), directory.Group{TenantID: tenantID, Name: "Group " + addr, Address: addr})))
}

func memberAddrs(g directory.Group) []string {
	var out []string
	for _, m := range g.Members {
		out = append(out, m.Address)
	}
	return out
}

func mailboxAddrs(list []directory.Mailbox) []string {
	var out []string
	for _, m := range list {
		out = append(out, m.Address)
	}
	return out
}

func accountAddrs(list []directory.Account) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

func groupAddrs(list []directory.Group) []string {
	var out []string
	for _, g := range list {
		out = append(out, g.Address)
	}
	return out
}

func domainNames(list []directory.Domain) []string {
	var out []string
	for _, d := range list {
		out = append(out, d.Name)
	}
	return out
}

// baseTime is a whole-millisecond time in the recent past, so that every
// store (SQLite nanoseconds, PostgreSQL microseconds) keeps it exactly and
// messages received at it are due now.
func baseTime() time.Time {
	return time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
}

// newMessage returns a queued message numbered i for the tenant.
func newMessage(tenantID, accountID int64, i int, at time.Time) *queue.Message {
	body := fmt.Appendf(nil, "From: app@a.example\r\nSubject: message %d\r\n\r\nbody %d\r\n", i, i)
	return &queue.Message{
		QueueID:    queue.NewID(at),
		TenantID:   tenantID,
		AccountID:  accountID,
		Sender:     "app@a.example",
		Recipients: []string{"alice@a.example", fmt.Sprintf("r%d@a.example", i)},
		MessageID:  fmt.Sprintf("m%d@a.example", i),
		Subject:    fmt.Sprintf("message %d", i),
		ClientIP:   "192.0.2.10",
		Size:       int64(len(body)),
		ReceivedAt: at,
		Body:       body,
	}
}

func receivedEvent(m *queue.Message) trace.Event {
	return trace.Event{TenantID: m.TenantID, Time: m.ReceivedAt, QueueID: m.QueueID, MessageID: m.MessageID, Sender: m.Sender,
		Recipient: m.Recipients[0], Event: trace.EventReceived, Status: trace.StatusPending, Detail: "queued",
		ClientIP: m.ClientIP, Subject: m.Subject, Size: m.Size}
}

func queueIDs(msgs []*queue.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.QueueID)
	}
	return out
}

// ---- directory ----

func testTenants(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme := must(t, of(s.CreateTenant(ctx, "acme")))
	if acme.ID == 0 || acme.Name != "acme" || acme.CreatedAt.IsZero() {
		t.Errorf("CreateTenant returned %+v, want an ID, the name and a creation time", acme)
	}
	_, err := s.CreateTenant(ctx, "acme")
	wantErr(t, err, store.ErrExists, "creating tenant acme twice")
	beta := must(t, of(s.CreateTenant(ctx, "beta")))
	if beta.ID == acme.ID {
		t.Errorf("two tenants share ID %d", beta.ID)
	}

	got := must(t, of(s.TenantByName(ctx, "acme")))
	if got.ID != acme.ID || got.Name != "acme" || got.CreatedAt.Sub(acme.CreatedAt).Abs() > time.Millisecond {
		t.Errorf("TenantByName(acme) = %+v, want %+v", got, acme)
	}
	_, err = s.TenantByName(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "TenantByName of a missing tenant")

	list := must(t, of(s.Tenants(ctx)))
	var names []string
	for _, ten := range list {
		names = append(names, ten.Name)
	}
	if !slices.Equal(names, []string{"acme", "beta"}) {
		t.Errorf("Tenants() names = %v, want [acme beta] (ordered by name)", names)
	}
}

func testDomains(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	d := must(t, of(s.AddDomain(ctx, directory.Domain{TenantID: a.ID, Name: "a.example", Type: directory.Authoritative})))
	if d.ID == 0 || d.TenantID != a.ID || d.Name != "a.example" || d.Type != directory.Authoritative {
		t.Errorf("AddDomain returned %+v", d)
	}
	must(t, of(s.AddDomain(ctx, directory.Domain{TenantID: a.ID, Name: "relay.example", Type: directory.InternalRelay})))

	_, err := s.AddDomain(ctx, directory.Domain{TenantID: a.ID, Name: "a.example", Type: directory.Authoritative})
	wantErr(t, err, store.ErrExists, "adding a domain twice to one tenant")
	_, err = s.AddDomain(ctx, directory.Domain{TenantID: b.ID, Name: "a.example", Type: directory.Authoritative})
	wantErr(t, err, store.ErrExists, "adding another tenant's domain")

	list := must(t, of(s.Domains(ctx, a.ID)))
	if !equalSets(domainNames(list), []string{"a.example", "relay.example"}) {
		t.Errorf("Domains(a) = %v", domainNames(list))
	}
	for _, d := range list {
		want := directory.Authoritative
		if d.Name == "relay.example" {
			want = directory.InternalRelay
		}
		if d.Type != want || d.TenantID != a.ID {
			t.Errorf("Domains(a) has %+v, want type %s and tenant %d", d, want, a.ID)
		}
	}
	if list := must(t, of(s.Domains(ctx, b.ID))); len(list) != 0 {
		t.Errorf("Domains(b) = %v, want none (b's add failed)", domainNames(list))
	}

	got := must(t, of(s.DomainByName(ctx, "relay.example")))
	if got.TenantID != a.ID || got.Type != directory.InternalRelay || got.Name != "relay.example" {
		t.Errorf("DomainByName(relay.example) = %+v", got)
	}
	_, err = s.DomainByName(ctx, "none.example")
	wantErr(t, err, store.ErrNotFound, "DomainByName of an unknown domain")
}

func testRemoveDomain(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example", "alias.example", "group.example", "sub.a.example", "empty.example")
	b := newTenant(t, s, "b", "b.example")

	mb := newMailbox(t, s, a.ID, "alice@a.example")
	acc := newAccount(t, s, a.ID, "app@group.example", "app@alias.example")
	newGroup(t, s, a.ID, "team@group.example")
	newMailbox(t, s, a.ID, "x@sub.a.example")

	for _, name := range []string{"a.example", "alias.example", "group.example"} {
		err := s.RemoveDomain(ctx, a.ID, name)
		wantErr(t, err, store.ErrInvalid, "removing domain "+name+" while an address uses it")
		if _, err := s.DomainByName(ctx, name); err != nil {
			t.Errorf("after the refused removal, DomainByName(%s): %v", name, err)
		}
	}

	err := s.RemoveDomain(ctx, b.ID, "empty.example")
	wantErr(t, err, store.ErrNotFound, "removing another tenant's domain")
	if _, err := s.DomainByName(ctx, "empty.example"); err != nil {
		t.Errorf("another tenant removed a's domain: %v", err)
	}

	check(t, s.RemoveDomain(ctx, a.ID, "empty.example"))
	_, err = s.DomainByName(ctx, "empty.example")
	wantErr(t, err, store.ErrNotFound, "DomainByName after RemoveDomain")
	if names := domainNames(must(t, of(s.Domains(ctx, a.ID)))); slices.Contains(names, "empty.example") {
		t.Errorf("Domains(a) after removal = %v", names)
	}
	err = s.RemoveDomain(ctx, a.ID, "empty.example")
	wantErr(t, err, store.ErrNotFound, "removing a domain twice")

	// Once its users are gone, a domain can go. An address in a subdomain
	// (x@sub.a.example) does not use the parent domain.
	check(t, s.RemoveMailbox(ctx, a.ID, mb.ID))
	check(t, s.RemoveDomain(ctx, a.ID, "a.example"))
	// Replacing the aliases frees alias.example.
	acc.Aliases = nil
	must(t, of(s.UpdateAccount(ctx, acc)))
	check(t, s.RemoveDomain(ctx, a.ID, "alias.example"))
}

func testMailboxes(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example", "a2.example")

	in := directory.Mailbox{TenantID: a.ID, Name: "alice", DisplayName: "Alice Adams", Address: "alice@a.example",
		Aliases: []string{"alice@a2.example", "al@a.example"}, PasswordHash: "$argon2id$hash"}
	m := must(t, of(s.CreateMailbox(ctx, in)))
	if m.ID == 0 || m.CreatedAt.IsZero() || !m.HasPassword {
		t.Errorf("CreateMailbox returned %+v, want an ID, a creation time and HasPassword", m)
	}
	got := must(t, of(s.Mailbox(ctx, a.ID, m.ID)))
	if got.ID != m.ID || got.TenantID != a.ID || got.Name != "alice" || got.DisplayName != "Alice Adams" ||
		got.Address != "alice@a.example" || got.PasswordHash != "$argon2id$hash" || !got.HasPassword || got.CreatedAt.IsZero() {
		t.Errorf("Mailbox() = %+v, want what was created: %+v", got, in)
	}
	if !equalSets(got.Aliases, in.Aliases) {
		t.Errorf("Mailbox().Aliases = %v, want %v", got.Aliases, in.Aliases)
	}

	nopw := newMailbox(t, s, a.ID, "bob@a.example")
	if nopw.HasPassword || must(t, of(s.Mailbox(ctx, a.ID, nopw.ID))).HasPassword {
		t.Error("a mailbox created without a password hash has HasPassword set")
	}
	if al := must(t, of(s.Mailbox(ctx, a.ID, nopw.ID))).Aliases; len(al) != 0 {
		t.Errorf("mailbox without aliases has aliases %v", al)
	}

	list := must(t, of(s.Mailboxes(ctx, a.ID)))
	if !equalSets(mailboxAddrs(list), []string{"alice@a.example", "bob@a.example"}) {
		t.Errorf("Mailboxes(a) = %v", mailboxAddrs(list))
	}
	for _, mb := range list {
		if mb.Address == "alice@a.example" && !equalSets(mb.Aliases, in.Aliases) {
			t.Errorf("Mailboxes(a) lists alice with aliases %v, want %v", mb.Aliases, in.Aliases)
		}
	}

	_, err := s.Mailbox(ctx, a.ID, m.ID+1000)
	wantErr(t, err, store.ErrNotFound, "Mailbox of an unknown id")
}

// testAcceptedDomainRequired: every address of a new object must be in an
// accepted domain of the object's own tenant, and a refused create leaves
// nothing behind.
func testAcceptedDomainRequired(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	newTenant(t, s, "b", "b.example")

	tests := []struct {
		name    string
		primary string
		aliases []string
	}{
		{"primary in no accepted domain", "x@nowhere.example", nil},
		{"primary in another tenant's domain", "x@b.example", nil},
		{"alias in no accepted domain", "x@a.example", []string{"x@nowhere.example"}},
		{"alias in another tenant's domain", "x@a.example", []string{"x@b.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateMailbox(ctx, directory.Mailbox{TenantID: a.ID, Name: "x", DisplayName: "x", Address: tc.primary, Aliases: tc.aliases})
			wantErr(t, err, store.ErrInvalid, "CreateMailbox")
			_, err = s.CreateAccount(ctx, directory.Account{TenantID: a.ID, Name: "x", DisplayName: "x", Address: tc.primary, Aliases: tc.aliases, Enabled: true, PasswordHash: "h"})
			wantErr(t, err, store.ErrInvalid, "CreateAccount")
			if tc.aliases == nil {
				_, err = s.CreateGroup(ctx, directory.Group{TenantID: a.ID, Name: "x", Address: tc.primary})
				wantErr(t, err, store.ErrInvalid, "CreateGroup")
			}
			// Nothing of the refused objects remains.
			for _, addr := range append([]string{tc.primary}, tc.aliases...) {
				if _, err := s.Lookup(ctx, addr); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Lookup(%s) after refused creates: %v, want ErrNotFound", addr, err)
				}
			}
		})
	}
	if n := len(must(t, of(s.Mailboxes(ctx, a.ID)))) + len(must(t, of(s.Accounts(ctx, a.ID)))) + len(must(t, of(s.Groups(ctx, a.ID)))); n != 0 {
		t.Errorf("refused creates left %d objects", n)
	}
}

// testAddressUniqueness: an address (primary or alias) belongs to one object
// of any kind.
func testAddressUniqueness(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	newMailbox(t, s, a.ID, "alice@a.example", "al@a.example")
	newAccount(t, s, a.ID, "app@a.example", "app-alias@a.example")
	newGroup(t, s, a.ID, "team@a.example")
	taken := []string{"alice@a.example", "al@a.example", "app@a.example", "app-alias@a.example", "team@a.example"}

	creates := []struct {
		kind       string
		hasAliases bool
		create     func(primary string, aliases []string) error
	}{
		{"mailbox", true, func(p string, al []string) error {
			_, err := s.CreateMailbox(ctx, directory.Mailbox{TenantID: a.ID, Name: "n", DisplayName: "n", Address: p, Aliases: al})
			return err
		}},
		{"account", true, func(p string, al []string) error {
			_, err := s.CreateAccount(ctx, directory.Account{TenantID: a.ID, Name: "n", DisplayName: "n", Address: p, Aliases: al, Enabled: true, PasswordHash: "h"})
			return err
		}},
		{"group", false, func(p string, _ []string) error {
			_, err := s.CreateGroup(ctx, directory.Group{TenantID: a.ID, Name: "n", Address: p})
			return err
		}},
	}
	for _, c := range creates {
		for _, addr := range taken {
			t.Run(c.kind+" as "+addr, func(t *testing.T) {
				wantErr(t, c.create(addr, nil), store.ErrExists, "primary address "+addr)
				if !c.hasAliases {
					return
				}
				wantErr(t, c.create("fresh@a.example", []string{addr}), store.ErrExists, "alias "+addr)
				if _, err := s.Lookup(ctx, "fresh@a.example"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("a refused create kept its primary address: Lookup: %v", err)
				}
			})
		}
	}
	t.Run("alias equal to own primary", func(t *testing.T) {
		_, err := s.CreateMailbox(ctx, directory.Mailbox{TenantID: a.ID, Name: "n", DisplayName: "n", Address: "dup@a.example", Aliases: []string{"dup@a.example"}})
		wantErr(t, err, store.ErrExists, "CreateMailbox")
	})
	if n := len(must(t, of(s.Mailboxes(ctx, a.ID)))); n != 1 {
		t.Errorf("after refused creates there are %d mailboxes, want 1", n)
	}
}

func testLookup(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	mb := newMailbox(t, s, a.ID, "alice@a.example", "al@a.example")
	acc := newAccount(t, s, a.ID, "app@a.example", "app-alias@a.example")
	g := newGroup(t, s, a.ID, "team@a.example")
	other := newMailbox(t, s, b.ID, "bob@b.example")

	tests := []struct {
		addr string
		want directory.Entry
	}{
		{"alice@a.example", directory.Entry{TenantID: a.ID, Kind: directory.KindMailbox, ID: mb.ID, Address: "alice@a.example"}},
		{"al@a.example", directory.Entry{TenantID: a.ID, Kind: directory.KindMailbox, ID: mb.ID, Address: "alice@a.example"}},
		{"app@a.example", directory.Entry{TenantID: a.ID, Kind: directory.KindAccount, ID: acc.ID, Address: "app@a.example"}},
		{"app-alias@a.example", directory.Entry{TenantID: a.ID, Kind: directory.KindAccount, ID: acc.ID, Address: "app@a.example"}},
		{"team@a.example", directory.Entry{TenantID: a.ID, Kind: directory.KindGroup, ID: g.ID, Address: "team@a.example"}},
		{"bob@b.example", directory.Entry{TenantID: b.ID, Kind: directory.KindMailbox, ID: other.ID, Address: "bob@b.example"}},
	}
	for _, tc := range tests {
		got, err := s.Lookup(ctx, tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", tc.addr, got, err, tc.want)
		}
	}
	_, err := s.Lookup(ctx, "nobody@a.example")
	wantErr(t, err, store.ErrNotFound, "Lookup of an unknown address")

	// AccountByAddress takes the sign-in name: the primary address only.
	if got, err := s.AccountByAddress(ctx, "app@a.example"); err != nil || got.ID != acc.ID || !equalSets(got.Aliases, []string{"app-alias@a.example"}) {
		t.Errorf("AccountByAddress(app@) = %+v, %v", got, err)
	}
	for _, addr := range []string{"app-alias@a.example", "alice@a.example", "team@a.example", "nobody@a.example"} {
		_, err := s.AccountByAddress(ctx, addr)
		wantErr(t, err, store.ErrNotFound, "AccountByAddress("+addr+")")
	}

	// MailboxByAddress takes a primary address or an alias.
	for _, addr := range []string{"alice@a.example", "al@a.example"} {
		if got, err := s.MailboxByAddress(ctx, addr); err != nil || got.ID != mb.ID || got.Address != "alice@a.example" {
			t.Errorf("MailboxByAddress(%s) = %+v, %v; want mailbox %d", addr, got, err, mb.ID)
		}
	}
	for _, addr := range []string{"app@a.example", "team@a.example", "nobody@a.example"} {
		_, err := s.MailboxByAddress(ctx, addr)
		wantErr(t, err, store.ErrNotFound, "MailboxByAddress("+addr+")")
	}
}

func testAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	in := directory.Account{TenantID: a.ID, Name: "hr", DisplayName: "HR Notifications", Address: "hr@a.example",
		Aliases: []string{"jobs@a.example", "people@a.example"}, ReplyTo: "hr-team@a.example", Enabled: true, PasswordHash: "$argon2id$x"}
	acc := must(t, of(s.CreateAccount(ctx, in)))
	if acc.ID == 0 || acc.CreatedAt.IsZero() {
		t.Errorf("CreateAccount returned %+v, want an ID and a creation time", acc)
	}
	disabled := must(t, of(s.CreateAccount(ctx, directory.Account{TenantID: a.ID, Name: "off", DisplayName: "Off", Address: "off@a.example", PasswordHash: "h"})))

	got := must(t, of(s.Account(ctx, a.ID, acc.ID)))
	if got.ID != acc.ID || got.TenantID != a.ID || got.Name != in.Name || got.DisplayName != in.DisplayName || got.Address != in.Address ||
		got.ReplyTo != in.ReplyTo || !got.Enabled || got.PasswordHash != in.PasswordHash || got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
		t.Errorf("Account() = %+v, want what was created: %+v", got, in)
	}
	if !equalSets(got.Aliases, in.Aliases) {
		t.Errorf("Account().Aliases = %v, want %v", got.Aliases, in.Aliases)
	}
	if got := must(t, of(s.Account(ctx, a.ID, disabled.ID))); got.Enabled {
		t.Error("an account created disabled reads back enabled")
	}

	list := must(t, of(s.Accounts(ctx, a.ID)))
	if !equalSets(accountAddrs(list), []string{"hr@a.example", "off@a.example"}) {
		t.Errorf("Accounts(a) = %v", accountAddrs(list))
	}
	_, err := s.Account(ctx, a.ID, acc.ID+1000)
	wantErr(t, err, store.ErrNotFound, "Account of an unknown id")
}

func testUpdateAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, a.ID, "app@a.example", "old1@a.example", "old2@a.example")

	acc.DisplayName = "New Name"
	acc.Enabled = false
	acc.ReplyTo = "replies@a.example"
	acc.PasswordHash = "$argon2id$new"
	acc.Aliases = []string{"old2@a.example", "new@a.example"}
	must(t, of(s.UpdateAccount(ctx, acc)))

	got := must(t, of(s.Account(ctx, a.ID, acc.ID)))
	if got.DisplayName != "New Name" || got.Enabled || got.ReplyTo != "replies@a.example" || got.PasswordHash != "$argon2id$new" ||
		got.Address != "app@a.example" || got.Name != acc.Name {
		t.Errorf("after UpdateAccount, Account() = %+v", got)
	}
	if !equalSets(got.Aliases, []string{"old2@a.example", "new@a.example"}) {
		t.Errorf("after UpdateAccount, aliases = %v, want [new old2]", got.Aliases)
	}
	if got.UpdatedAt.Before(got.CreatedAt) {
		t.Errorf("UpdatedAt %v is before CreatedAt %v", got.UpdatedAt, got.CreatedAt)
	}
	if e, err := s.Lookup(ctx, "new@a.example"); err != nil || e.ID != acc.ID || e.Kind != directory.KindAccount {
		t.Errorf("Lookup(new alias) = %+v, %v", e, err)
	}
	if e, err := s.Lookup(ctx, "app@a.example"); err != nil || e.ID != acc.ID {
		t.Errorf("the primary address no longer resolves after UpdateAccount: %+v, %v", e, err)
	}
	if _, err := s.AccountByAddress(ctx, "app@a.example"); err != nil {
		t.Errorf("AccountByAddress(primary) after UpdateAccount: %v", err)
	}
	_, err := s.AccountByAddress(ctx, "new@a.example")
	wantErr(t, err, store.ErrNotFound, "AccountByAddress of a new alias (aliases are not sign-in names)")

	// The replaced alias is free for any object.
	_, err = s.Lookup(ctx, "old1@a.example")
	wantErr(t, err, store.ErrNotFound, "Lookup of a replaced alias")
	newMailbox(t, s, a.ID, "old1@a.example")

	// Clearing the aliases frees them all.
	acc.Aliases = nil
	must(t, of(s.UpdateAccount(ctx, acc)))
	if al := must(t, of(s.Account(ctx, a.ID, acc.ID))).Aliases; len(al) != 0 {
		t.Errorf("after clearing, aliases = %v", al)
	}
	for _, addr := range []string{"old2@a.example", "new@a.example"} {
		_, err := s.Lookup(ctx, addr)
		wantErr(t, err, store.ErrNotFound, "Lookup("+addr+") after clearing aliases")
	}

	_, err = s.UpdateAccount(ctx, directory.Account{TenantID: a.ID, ID: acc.ID + 1000, Address: "ghost@a.example"})
	wantErr(t, err, store.ErrNotFound, "UpdateAccount of an unknown account")
}

// testUpdateAccountFailureChangesNothing: a refused update is all or nothing.
func testUpdateAccountFailureChangesNothing(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	newMailbox(t, s, a.ID, "alice@a.example")
	acc := newAccount(t, s, a.ID, "app@a.example", "keep@a.example")

	tests := []struct {
		name    string
		aliases []string
		want    error
	}{
		{"alias taken by a mailbox", []string{"fresh@a.example", "alice@a.example"}, store.ErrExists},
		{"alias in no accepted domain", []string{"fresh@a.example", "x@nowhere.example"}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upd := acc
			upd.DisplayName = "Changed"
			upd.Aliases = tc.aliases
			_, err := s.UpdateAccount(ctx, upd)
			wantErr(t, err, tc.want, "UpdateAccount")
			got := must(t, of(s.Account(ctx, a.ID, acc.ID)))
			if got.DisplayName != acc.DisplayName || !equalSets(got.Aliases, []string{"keep@a.example"}) {
				t.Errorf("a refused update changed the account: %+v", got)
			}
			if e, err := s.Lookup(ctx, "keep@a.example"); err != nil || e.ID != acc.ID {
				t.Errorf("a refused update freed an alias: %+v, %v", e, err)
			}
			_, err = s.Lookup(ctx, "fresh@a.example")
			wantErr(t, err, store.ErrNotFound, "alias of a refused update")
		})
	}
}

func testRemove(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	parent := newGroup(t, s, a.ID, "parent@a.example")
	mb := newMailbox(t, s, a.ID, "alice@a.example", "al@a.example")
	acc := newAccount(t, s, a.ID, "app@a.example", "app-alias@a.example")
	g := newGroup(t, s, a.ID, "team@a.example")
	check(t, s.AddGroupMember(ctx, a.ID, parent.ID, "alice@a.example"))
	check(t, s.AddGroupMember(ctx, a.ID, parent.ID, "team@a.example"))
	check(t, s.AddGroupMember(ctx, a.ID, g.ID, "alice@a.example"))

	t.Run("mailbox", func(t *testing.T) {
		check(t, s.RemoveMailbox(ctx, a.ID, mb.ID))
		_, err := s.Mailbox(ctx, a.ID, mb.ID)
		wantErr(t, err, store.ErrNotFound, "Mailbox after RemoveMailbox")
		for _, addr := range []string{"alice@a.example", "al@a.example"} {
			_, err := s.Lookup(ctx, addr)
			wantErr(t, err, store.ErrNotFound, "Lookup("+addr+") after RemoveMailbox")
		}
		if m := memberAddrs(must(t, of(s.Group(ctx, a.ID, parent.ID)))); !slices.Equal(m, []string{"team@a.example"}) {
			t.Errorf("parent's members after RemoveMailbox = %v, want [team@a.example]", m)
		}
		if m := memberAddrs(must(t, of(s.Group(ctx, a.ID, g.ID)))); len(m) != 0 {
			t.Errorf("team's members after RemoveMailbox = %v, want none", m)
		}
		err = s.RemoveMailbox(ctx, a.ID, mb.ID)
		wantErr(t, err, store.ErrNotFound, "removing a mailbox twice")
		// The addresses are free again, for any kind of object.
		newAccount(t, s, a.ID, "alice@a.example")
		newGroup(t, s, a.ID, "al@a.example")
	})
	t.Run("account", func(t *testing.T) {
		check(t, s.RemoveAccount(ctx, a.ID, acc.ID))
		_, err := s.Account(ctx, a.ID, acc.ID)
		wantErr(t, err, store.ErrNotFound, "Account after RemoveAccount")
		_, err = s.AccountByAddress(ctx, "app@a.example")
		wantErr(t, err, store.ErrNotFound, "AccountByAddress after RemoveAccount")
		for _, addr := range []string{"app@a.example", "app-alias@a.example"} {
			_, err := s.Lookup(ctx, addr)
			wantErr(t, err, store.ErrNotFound, "Lookup("+addr+") after RemoveAccount")
		}
		err = s.RemoveAccount(ctx, a.ID, acc.ID)
		wantErr(t, err, store.ErrNotFound, "removing an account twice")
		newMailbox(t, s, a.ID, "app@a.example", "app-alias@a.example")
	})
	t.Run("group", func(t *testing.T) {
		check(t, s.RemoveGroup(ctx, a.ID, g.ID))
		_, err := s.Group(ctx, a.ID, g.ID)
		wantErr(t, err, store.ErrNotFound, "Group after RemoveGroup")
		_, err = s.Lookup(ctx, "team@a.example")
		wantErr(t, err, store.ErrNotFound, "Lookup after RemoveGroup")
		if m := memberAddrs(must(t, of(s.Group(ctx, a.ID, parent.ID)))); len(m) != 0 {
			t.Errorf("parent's members after RemoveGroup = %v, want none", m)
		}
		if got := groupAddrs(must(t, of(s.Groups(ctx, a.ID)))); slices.Contains(got, "team@a.example") {
			t.Errorf("Groups(a) after RemoveGroup = %v", got)
		}
		err = s.RemoveGroup(ctx, a.ID, g.ID)
		wantErr(t, err, store.ErrNotFound, "removing a group twice")
		newMailbox(t, s, a.ID, "team@a.example")
	})
}

func testGroupMembers(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	mb := newMailbox(t, s, a.ID, "alice@a.example", "al@a.example")
	newAccount(t, s, a.ID, "app@a.example")
	g := newGroup(t, s, a.ID, "team@a.example")
	sub := newGroup(t, s, a.ID, "sub@a.example")
	newMailbox(t, s, b.ID, "bob@b.example")
	gb := newGroup(t, s, b.ID, "team@b.example")

	if g.ID == 0 || g.CreatedAt.IsZero() || len(g.Members) != 0 {
		t.Errorf("CreateGroup returned %+v, want an ID, a creation time and no members", g)
	}

	check(t, s.AddGroupMember(ctx, a.ID, g.ID, "alice@a.example"))
	check(t, s.AddGroupMember(ctx, a.ID, g.ID, "sub@a.example"))
	got := must(t, of(s.Group(ctx, a.ID, g.ID)))
	want := []directory.Member{
		{Kind: directory.KindGroup, ID: sub.ID, Address: "sub@a.example"},
		{Kind: directory.KindMailbox, ID: mb.ID, Address: "alice@a.example"},
	}
	if len(got.Members) != 2 || !slices.Contains(got.Members, want[0]) || !slices.Contains(got.Members, want[1]) {
		t.Errorf("Group().Members = %+v, want %+v", got.Members, want)
	}
	if got.Name != g.Name || got.Address != g.Address || got.TenantID != a.ID {
		t.Errorf("Group() = %+v, want %+v", got, g)
	}
	for _, gr := range must(t, of(s.Groups(ctx, a.ID))) {
		wantN := map[string]int{"team@a.example": 2, "sub@a.example": 0}[gr.Address]
		if len(gr.Members) != wantN {
			t.Errorf("Groups(a) lists %s with members %v, want %d", gr.Address, memberAddrs(gr), wantN)
		}
	}

	tests := []struct {
		name    string
		tenant  int64
		group   int64
		address string
		want    error
	}{
		{"same mailbox again", a.ID, g.ID, "alice@a.example", store.ErrExists},
		{"same mailbox by its alias", a.ID, g.ID, "al@a.example", store.ErrExists},
		{"HVE account", a.ID, g.ID, "app@a.example", store.ErrInvalid},
		{"group itself", a.ID, g.ID, "team@a.example", store.ErrInvalid},
		{"unknown address", a.ID, g.ID, "nobody@a.example", store.ErrNotFound},
		{"mailbox of another tenant", a.ID, g.ID, "bob@b.example", store.ErrNotFound},
		{"group of another tenant", a.ID, gb.ID, "alice@a.example", store.ErrNotFound},
		{"unknown group", a.ID, g.ID + 1000, "alice@a.example", store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run("add "+tc.name, func(t *testing.T) {
			wantErr(t, s.AddGroupMember(ctx, tc.tenant, tc.group, tc.address), tc.want, "AddGroupMember("+tc.address+")")
		})
	}
	if n := len(must(t, of(s.Group(ctx, a.ID, g.ID))).Members); n != 2 {
		t.Errorf("refused adds changed the members: now %d", n)
	}
	if n := len(must(t, of(s.Group(ctx, b.ID, gb.ID))).Members); n != 0 {
		t.Errorf("b's group got %d members through a's calls", n)
	}

	check(t, s.RemoveGroupMember(ctx, a.ID, g.ID, "al@a.example")) // by alias
	if m := memberAddrs(must(t, of(s.Group(ctx, a.ID, g.ID)))); !slices.Equal(m, []string{"sub@a.example"}) {
		t.Errorf("members after removing alice = %v, want [sub@a.example]", m)
	}
	wantErr(t, s.RemoveGroupMember(ctx, a.ID, g.ID, "alice@a.example"), store.ErrNotFound, "removing a non-member")
	wantErr(t, s.RemoveGroupMember(ctx, a.ID, g.ID, "bob@b.example"), store.ErrNotFound, "removing another tenant's mailbox")
	wantErr(t, s.RemoveGroupMember(ctx, a.ID, gb.ID, "bob@b.example"), store.ErrNotFound, "removing from another tenant's group")
	check(t, s.RemoveGroupMember(ctx, a.ID, g.ID, "sub@a.example"))
	if m := must(t, of(s.Group(ctx, a.ID, g.ID))).Members; len(m) != 0 {
		t.Errorf("members after removing all = %v", m)
	}
}

func testTenantIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	newMailbox(t, s, a.ID, "alice@a.example")
	newAccount(t, s, a.ID, "app@a.example")
	newGroup(t, s, a.ID, "team@a.example")
	mbB := newMailbox(t, s, b.ID, "bob@b.example")
	accB := newAccount(t, s, b.ID, "app@b.example")
	gB := newGroup(t, s, b.ID, "team@b.example")

	if got := domainNames(must(t, of(s.Domains(ctx, a.ID)))); !slices.Equal(got, []string{"a.example"}) {
		t.Errorf("Domains(a) = %v", got)
	}
	if got := mailboxAddrs(must(t, of(s.Mailboxes(ctx, a.ID)))); !slices.Equal(got, []string{"alice@a.example"}) {
		t.Errorf("Mailboxes(a) = %v", got)
	}
	if got := accountAddrs(must(t, of(s.Accounts(ctx, a.ID)))); !slices.Equal(got, []string{"app@a.example"}) {
		t.Errorf("Accounts(a) = %v", got)
	}
	if got := groupAddrs(must(t, of(s.Groups(ctx, a.ID)))); !slices.Equal(got, []string{"team@a.example"}) {
		t.Errorf("Groups(a) = %v", got)
	}

	_, err := s.Mailbox(ctx, a.ID, mbB.ID)
	wantErr(t, err, store.ErrNotFound, "Mailbox(a, b's mailbox)")
	_, err = s.Account(ctx, a.ID, accB.ID)
	wantErr(t, err, store.ErrNotFound, "Account(a, b's account)")
	_, err = s.Group(ctx, a.ID, gB.ID)
	wantErr(t, err, store.ErrNotFound, "Group(a, b's group)")

	updB := accB
	updB.TenantID = a.ID
	updB.DisplayName = "hijacked"
	_, err = s.UpdateAccount(ctx, updB)
	wantErr(t, err, store.ErrNotFound, "UpdateAccount of b's account as a")

	wantErr(t, s.RemoveMailbox(ctx, a.ID, mbB.ID), store.ErrNotFound, "RemoveMailbox(a, b's mailbox)")
	wantErr(t, s.RemoveAccount(ctx, a.ID, accB.ID), store.ErrNotFound, "RemoveAccount(a, b's account)")
	wantErr(t, s.RemoveGroup(ctx, a.ID, gB.ID), store.ErrNotFound, "RemoveGroup(a, b's group)")
	wantErr(t, s.RemoveDomain(ctx, a.ID, "b.example"), store.ErrNotFound, "RemoveDomain(a, b's domain)")

	// b's objects are untouched.
	if _, err := s.Mailbox(ctx, b.ID, mbB.ID); err != nil {
		t.Errorf("b's mailbox: %v", err)
	}
	if got, err := s.Account(ctx, b.ID, accB.ID); err != nil || got.DisplayName == "hijacked" {
		t.Errorf("b's account: %+v, %v", got, err)
	}
	if _, err := s.Group(ctx, b.ID, gB.ID); err != nil {
		t.Errorf("b's group: %v", err)
	}
	if _, err := s.DomainByName(ctx, "b.example"); err != nil {
		t.Errorf("b's domain: %v", err)
	}

	// Trace events of b are not found in a's searches.
	at := baseTime()
	check(t, s.AddEvents(ctx, []trace.Event{
		{TenantID: a.ID, Time: at, QueueID: "QA", Sender: "app@x.example", Event: trace.EventReceived, Status: trace.StatusPending},
		{TenantID: b.ID, Time: at, QueueID: "QB", Sender: "app@x.example", Event: trace.EventReceived, Status: trace.StatusPending},
	}))
	for _, q := range []trace.Query{{TenantID: a.ID}, {TenantID: a.ID, Sender: "app@x.example"}, {TenantID: a.ID, QueueID: "QB"}} {
		for _, e := range must(t, of(s.SearchTrace(ctx, q))) {
			if e.QueueID != "QA" || e.TenantID != a.ID {
				t.Errorf("SearchTrace(%+v) returned %+v of another tenant", q, e)
			}
		}
	}
}

// ---- queue ----

// newMessages makes n messages of one account, received a millisecond
// apart from baseTime, and their received events.
func newMessages(tenantID, accountID int64, n int) ([]*queue.Message, []trace.Event) {
	at := baseTime()
	var msgs []*queue.Message
	var events []trace.Event
	for i := range n {
		m := newMessage(tenantID, accountID, i, at.Add(time.Duration(i)*time.Millisecond))
		msgs = append(msgs, m)
		events = append(events, receivedEvent(m))
	}
	return msgs, events
}

// finalRecipients gives every recipient of m the final state after one
// attempt at at, as a Finish that takes m out of the queue records it.
func finalRecipients(m *queue.Message, state queue.RecipientState, at time.Time) []queue.Recipient {
	var list []queue.Recipient
	for _, r := range m.Recipients {
		list = append(list, queue.Recipient{Address: r, State: state, Attempts: 1, LastReply: string(state), NextAttemptAt: at, UpdatedAt: at})
	}
	return list
}

func testEnqueueAndClaim(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	msgs, events := newMessages(ten.ID, acc.ID, 3)
	check(t, s.Enqueue(ctx, msgs, events))

	// The trace events are stored with the messages.
	for _, m := range msgs {
		got := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID, QueueID: m.QueueID})))
		if len(got) != 1 || got[0].Event != trace.EventReceived || got[0].MessageID != m.MessageID || got[0].Size != m.Size {
			t.Errorf("SearchTrace(queue id %s) = %+v, want its Received event", m.QueueID, got)
		}
	}
	if n := must(t, of(s.QueueDepth(ctx))); n != 3 {
		t.Errorf("QueueDepth = %d, want 3", n)
	}
	for _, m := range msgs {
		if body := must(t, of(s.MessageBody(ctx, m.QueueID))); !bytes.Equal(body, m.Body) {
			t.Errorf("MessageBody(%s) = %q, want %q", m.QueueID, body, m.Body)
		}
	}
	_, err := s.MessageBody(ctx, "NOSUCHQUEUEID0000000")
	wantErr(t, err, store.ErrNotFound, "MessageBody of an unknown queue id")

	now := time.Now()
	claimed := must(t, of(s.Claim(ctx, "worker-1", now, 10, time.Minute)))
	if !equalSets(queueIDs(claimed), queueIDs(msgs)) {
		t.Fatalf("Claim = %v, want %v", queueIDs(claimed), queueIDs(msgs))
	}
	for _, c := range claimed {
		i := slices.Index(queueIDs(msgs), c.QueueID)
		m := msgs[i]
		if c.TenantID != m.TenantID || c.AccountID != m.AccountID || c.Sender != m.Sender || !slices.Equal(c.Recipients, m.Recipients) ||
			c.MessageID != m.MessageID || c.Subject != m.Subject || c.ClientIP != m.ClientIP || c.Size != m.Size || !c.ReceivedAt.Equal(m.ReceivedAt) {
			t.Errorf("claimed message %+v, want the envelope of %+v", c, m)
		}
		if c.Body != nil {
			t.Errorf("claimed message %s has a body; Claim must not load bodies", c.QueueID)
		}
	}

	// Leased: another owner gets nothing until the lease has run out.
	if got := must(t, of(s.Claim(ctx, "worker-2", now, 10, time.Minute))); len(got) != 0 {
		t.Errorf("second Claim got leased messages %v", queueIDs(got))
	}
	if got := must(t, of(s.Claim(ctx, "worker-2", now.Add(30*time.Second), 10, time.Minute))); len(got) != 0 {
		t.Errorf("Claim within the lease got %v", queueIDs(got))
	}
	if n := must(t, of(s.QueueDepth(ctx))); n != 3 {
		t.Errorf("QueueDepth with leased messages = %d, want 3 (leased is not finished)", n)
	}
	later := now.Add(2 * time.Minute)
	if got := must(t, of(s.Claim(ctx, "worker-2", later, 10, time.Minute))); !equalSets(queueIDs(got), queueIDs(msgs)) {
		t.Errorf("Claim after the lease expired = %v, want %v", queueIDs(got), queueIDs(msgs))
	}
}

func testClaimLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	at := baseTime()
	var msgs []*queue.Message
	for i := range 5 {
		msgs = append(msgs, newMessage(ten.ID, acc.ID, i, at.Add(time.Duration(i)*time.Millisecond)))
	}
	check(t, s.Enqueue(ctx, msgs, nil))
	now := time.Now()
	first := must(t, of(s.Claim(ctx, "w1", now, 2, time.Minute)))
	second := must(t, of(s.Claim(ctx, "w2", now, 2, time.Minute)))
	third := must(t, of(s.Claim(ctx, "w3", now, 2, time.Minute)))
	if len(first) != 2 || len(second) != 2 || len(third) != 1 {
		t.Fatalf("Claims with limit 2 of 5 messages got %d, %d, %d; want 2, 2, 1", len(first), len(second), len(third))
	}
	all := append(append(queueIDs(first), queueIDs(second)...), queueIDs(third)...)
	if !equalSets(all, queueIDs(msgs)) {
		t.Errorf("claims together = %v, want each message once: %v", all, queueIDs(msgs))
	}
}

// testConcurrentClaims: workers claiming at the same time never get the
// same message (several nodes share one PostgreSQL queue).
func testConcurrentClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	at := baseTime()
	var msgs []*queue.Message
	for i := range 60 {
		msgs = append(msgs, newMessage(ten.ID, acc.ID, i, at.Add(time.Duration(i)*time.Millisecond)))
	}
	check(t, s.Enqueue(ctx, msgs, nil))

	now := time.Now()
	const workers = 6
	claimed := make([][]string, workers)
	errs := make([]error, workers)
	var total atomic.Int64 // bounds the loops should leases not hold
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for total.Load() <= int64(len(msgs)) {
				got, err := s.Claim(ctx, fmt.Sprint("worker-", w), now, 4, time.Minute)
				if err != nil {
					errs[w] = err
					return
				}
				if len(got) == 0 {
					return
				}
				total.Add(int64(len(got)))
				claimed[w] = append(claimed[w], queueIDs(got)...)
			}
		})
	}
	wg.Wait()
	check(t, errors.Join(errs...))
	var all []string
	for _, c := range claimed {
		all = append(all, c...)
	}
	if !equalSets(all, queueIDs(msgs)) {
		t.Errorf("concurrent claims got %d messages (%d distinct), want each of the %d exactly once",
			len(all), len(slices.Compact(sorted(all))), len(msgs))
	}
}

func testEnqueueIsAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	at := baseTime()
	first := newMessage(ten.ID, acc.ID, 1, at)
	check(t, s.Enqueue(ctx, []*queue.Message{first}, []trace.Event{receivedEvent(first)}))

	fresh := newMessage(ten.ID, acc.ID, 2, at)
	dup := newMessage(ten.ID, acc.ID, 3, at)
	dup.QueueID = first.QueueID
	err := s.Enqueue(ctx, []*queue.Message{fresh, dup}, []trace.Event{receivedEvent(fresh)})
	if err == nil {
		t.Fatal("Enqueue of a batch with a duplicate queue id succeeded")
	}
	_, err = s.MessageBody(ctx, fresh.QueueID)
	wantErr(t, err, store.ErrNotFound, "a message of a failed batch")
	if ev := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID, QueueID: fresh.QueueID}))); len(ev) != 0 {
		t.Errorf("a failed batch left trace events: %+v", ev)
	}
	if n := must(t, of(s.QueueDepth(ctx))); n != 1 {
		t.Errorf("QueueDepth after a failed batch = %d, want 1", n)
	}
	if body := must(t, of(s.MessageBody(ctx, first.QueueID))); !bytes.Equal(body, first.Body) {
		t.Error("a failed batch changed an earlier message")
	}
}

func testFinish(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	alice := newMailbox(t, s, ten.ID, "alice@a.example")
	bob := newMailbox(t, s, ten.ID, "bob@a.example")
	at := baseTime()
	m1, m2, m3 := newMessage(ten.ID, acc.ID, 1, at), newMessage(ten.ID, acc.ID, 2, at), newMessage(ten.ID, acc.ID, 3, at)
	// Each message's first recipient (alice) is Pending until delivery.
	check(t, s.Enqueue(ctx, []*queue.Message{m1, m2, m3}, []trace.Event{receivedEvent(m1), receivedEvent(m3)}))
	now := time.Now()
	must(t, of(s.Claim(ctx, "w1", now, 10, time.Minute)))

	delivered := func(m *queue.Message, rcpt string) trace.Event {
		e := receivedEvent(m)
		e.Recipient, e.Event, e.Status, e.Detail, e.Time = rcpt, trace.EventDelivered, trace.StatusDelivered, "delivered", now.UTC().Truncate(time.Millisecond)
		return e
	}
	// A message leaves the queue once no recipient is open.
	d1 := store.Delivery{QueueID: m1.QueueID,
		Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: "alice@a.example"}, {MailboxID: bob.ID, Recipient: "team@a.example"}},
		Events: []trace.Event{delivered(m1, "alice@a.example"), delivered(m1, "bob@a.example")}, Recipients: finalRecipients(m1, queue.RecipientDelivered, now)}
	// A message whose every recipient failed is finished without copies.
	failed := receivedEvent(m2)
	failed.Event, failed.Status = trace.EventFailed, trace.StatusFailed
	d2 := store.Delivery{QueueID: m2.QueueID, Events: []trace.Event{failed}, Recipients: finalRecipients(m2, queue.RecipientFailed, now)}
	check(t, s.Finish(ctx, []store.Delivery{d1, d2}))

	if n := must(t, of(s.QueueDepth(ctx))); n != 1 {
		t.Errorf("QueueDepth after finishing 2 of 3 = %d, want 1", n)
	}
	got := must(t, of(s.Claim(ctx, "w2", now.Add(time.Hour), 10, time.Minute)))
	if !slices.Equal(queueIDs(got), []string{m3.QueueID}) {
		t.Errorf("Claim after Finish = %v, want only the unfinished %s", queueIDs(got), m3.QueueID)
	}
	ev := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID, QueueID: m1.QueueID, Status: trace.StatusDelivered})))
	if len(ev) != 2 {
		t.Errorf("Finish stored %d Delivered events of %s, want 2", len(ev), m1.QueueID)
	}
	if ev := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID, QueueID: m2.QueueID, Status: trace.StatusFailed}))); len(ev) != 1 {
		t.Errorf("Finish stored %d Failed events of %s, want 1", len(ev), m2.QueueID)
	}
	// A status filter sees where a recipient stands now: m1's alice was
	// Pending (Received) and is Delivered, so she is no longer Pending;
	// m3's, not delivered yet, still is.
	pending := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID, Status: trace.StatusPending})))
	if len(pending) != 1 || pending[0].QueueID != m3.QueueID {
		t.Errorf("Pending recipients = %v, want only %s's", pending, m3.QueueID)
	}
	// Mailbox copies refer to the body, so it is kept.
	if body := must(t, of(s.MessageBody(ctx, m1.QueueID))); !bytes.Equal(body, m1.Body) {
		t.Errorf("MessageBody of a finished message = %q", body)
	}

	for _, mb := range []directory.Mailbox{alice, bob} {
		if list := must(t, of(s.MailboxMessages(ctx, mb.ID))); len(list) != 1 || list[0].QueueID != m1.QueueID {
			t.Errorf("MailboxMessages(%s) = %+v, want one copy of %s", mb.Address, list, m1.QueueID)
		}
	}
	// A delivery is idempotent: finishing again (a retry after a crash
	// between commit and reply) makes no second copy.
	check(t, s.Finish(ctx, []store.Delivery{{QueueID: m1.QueueID, Copies: d1.Copies}}))
	for _, mb := range []directory.Mailbox{alice, bob} {
		if list := must(t, of(s.MailboxMessages(ctx, mb.ID))); len(list) != 1 {
			t.Errorf("after a second Finish, %s holds %d copies, want 1", mb.Address, len(list))
		}
	}
	if n := must(t, of(s.QueueDepth(ctx))); n != 1 {
		t.Errorf("QueueDepth after a repeated Finish = %d, want 1", n)
	}
	check(t, s.Finish(ctx, nil))
}

func testMailboxMessages(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	alice := newMailbox(t, s, ten.ID, "alice@a.example")
	bob := newMailbox(t, s, ten.ID, "bob@a.example")
	empty := newMailbox(t, s, ten.ID, "empty@a.example")

	// The admin API encodes the list as is: an empty mailbox must be [] in
	// JSON, not null.
	if list, err := s.MailboxMessages(ctx, empty.ID); err != nil || list == nil || len(list) != 0 {
		t.Errorf("MailboxMessages of an empty mailbox = %#v, %v; want an empty, non-nil list", list, err)
	}

	at := baseTime()
	m1, m2 := newMessage(ten.ID, acc.ID, 1, at), newMessage(ten.ID, acc.ID, 2, at.Add(time.Second))
	check(t, s.Enqueue(ctx, []*queue.Message{m1, m2}, nil))
	check(t, s.Finish(ctx, []store.Delivery{
		{QueueID: m1.QueueID, Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: "alice@a.example"}}},
		{QueueID: m2.QueueID, Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: "team@a.example"}, {MailboxID: bob.ID, Recipient: "bob@a.example"}}},
	}))
	after := time.Now()

	list := must(t, of(s.MailboxMessages(ctx, alice.ID)))
	if len(list) != 2 {
		t.Fatalf("MailboxMessages(alice) has %d messages, want 2", len(list))
	}
	if list[0].ID == list[1].ID || list[0].ID == 0 {
		t.Errorf("mailbox messages have ids %d and %d, want distinct non-zero ids", list[0].ID, list[1].ID)
	}
	for _, mm := range list {
		m, rcpt := m1, "alice@a.example"
		if mm.QueueID == m2.QueueID {
			m, rcpt = m2, "team@a.example"
		}
		if mm.QueueID != m.QueueID || mm.From != m.Sender || !slices.Equal(mm.To, m.Recipients) || mm.Recipient != rcpt ||
			mm.Folder != store.FolderInbox || mm.Subject != m.Subject || mm.MessageID != m.MessageID || mm.Size != m.Size {
			t.Errorf("mailbox message %+v does not describe %+v (recipient %s)", mm, m, rcpt)
		}
		// ReceivedAt is when the message reached the mailbox (or the queue):
		// not before it was received, not after Finish returned.
		if mm.ReceivedAt.Before(m.ReceivedAt) || mm.ReceivedAt.After(after.Add(time.Second)) {
			t.Errorf("mailbox message ReceivedAt = %v, want between %v and %v", mm.ReceivedAt, m.ReceivedAt, after)
		}
		body := must(t, of(s.MailboxMessageBody(ctx, alice.ID, mm.ID)))
		if !bytes.Equal(body, m.Body) {
			t.Errorf("MailboxMessageBody(alice, %d) = %q, want %q", mm.ID, body, m.Body)
		}
		// The id is alice's: bob's and the empty mailbox cannot read it.
		for _, other := range []int64{empty.ID, bob.ID} {
			if mm.QueueID == m2.QueueID && other == bob.ID {
				continue // bob has his own copy of m2, under another id
			}
			_, err := s.MailboxMessageBody(ctx, other, mm.ID)
			wantErr(t, err, store.ErrNotFound, "MailboxMessageBody of another mailbox's message")
		}
	}

	bobs := must(t, of(s.MailboxMessages(ctx, bob.ID)))
	if len(bobs) != 1 || bobs[0].QueueID != m2.QueueID || bobs[0].Recipient != "bob@a.example" || bobs[0].Folder != store.FolderInbox {
		t.Errorf("MailboxMessages(bob) = %+v, want his copy of %s", bobs, m2.QueueID)
	}
	for _, mm := range list {
		if mm.ID == bobs[0].ID {
			t.Errorf("alice's and bob's copies share id %d", mm.ID)
		}
	}
	_, err := s.MailboxMessageBody(ctx, alice.ID, bobs[0].ID)
	wantErr(t, err, store.ErrNotFound, "MailboxMessageBody(alice, bob's message)")
	_, err = s.MailboxMessageBody(ctx, alice.ID, 1_000_000)
	wantErr(t, err, store.ErrNotFound, "MailboxMessageBody of an unknown id")

	// Removing a mailbox removes its messages.
	check(t, s.RemoveMailbox(ctx, ten.ID, bob.ID))
	if list := must(t, of(s.MailboxMessages(ctx, bob.ID))); len(list) != 0 {
		t.Errorf("a removed mailbox still lists %d messages", len(list))
	}
	_, err = s.MailboxMessageBody(ctx, bob.ID, bobs[0].ID)
	wantErr(t, err, store.ErrNotFound, "MailboxMessageBody of a removed mailbox")
	if n := len(must(t, of(s.MailboxMessages(ctx, alice.ID)))); n != 2 {
		t.Errorf("removing bob changed alice's messages: %d", n)
	}
}

// ---- trace ----

// traceFixture stores five events; each has its name in Detail.
func traceFixture(t *testing.T, s store.Store) (tenantID int64, t0 time.Time, all []trace.Event) {
	t.Helper()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	ev := func(name string, tenant int64, min int, qid, mid, sender, rcpt, status, ip string) trace.Event {
		return trace.Event{TenantID: tenant, Time: t0.Add(time.Duration(min) * time.Minute), QueueID: qid, MessageID: mid,
			Sender: sender, Recipient: rcpt, Event: status, Status: status, Detail: name, ClientIP: ip, Subject: "s " + name, Size: int64(min + 100)}
	}
	all = []trace.Event{
		ev("e1", a.ID, 0, "Q1", "m1@x", "app@a.example", "alice@a.example", trace.StatusPending, "192.0.2.1"),
		ev("e2", a.ID, 1, "Q1", "m1@x", "app@a.example", "bob@a.example", trace.StatusDelivered, "192.0.2.1"),
		ev("e3", a.ID, 2, "Q2", "m2@x", "other@a.example", "alice@a.example", trace.StatusFailed, "192.0.2.2"),
		ev("e4", a.ID, 3, "", "", "app@a.example", "carol@a.example", trace.StatusRejected, "198.51.100.7"),
		ev("eB", b.ID, 1, "QB", "m1@x", "app@a.example", "alice@a.example", trace.StatusPending, "192.0.2.1"),
	}
	check(t, s.AddEvents(t.Context(), all))
	return a.ID, t0, all
}

func details(list []trace.Event) []string {
	out := []string{}
	for _, e := range list {
		out = append(out, e.Detail)
	}
	return out
}

func testTraceSearch(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, t0, all := traceFixture(t, s)
	at := func(minutes float64) time.Time { return t0.Add(time.Duration(minutes * float64(time.Minute))) }
	// IDs are assigned by the store; read them back for the AfterID case.
	stored := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: a})))
	if len(stored) != 4 {
		t.Fatalf("SearchTrace(tenant a) = %v, want e1..e4", details(stored))
	}

	tests := []struct {
		name string
		q    trace.Query
		want []string
	}{
		{"everything of the tenant", trace.Query{}, []string{"e1", "e2", "e3", "e4"}},
		{"sender", trace.Query{Sender: "app@a.example"}, []string{"e1", "e2", "e4"}},
		{"sender in upper case", trace.Query{Sender: "APP@A.Example"}, []string{"e1", "e2", "e4"}},
		{"recipient", trace.Query{Recipient: "alice@a.example"}, []string{"e1", "e3"}},
		{"message id", trace.Query{MessageID: "m2@x"}, []string{"e3"}},
		{"queue id", trace.Query{QueueID: "Q1"}, []string{"e1", "e2"}},
		{"status", trace.Query{Status: trace.StatusDelivered}, []string{"e2"}},
		{"client ip", trace.Query{ClientIP: "192.0.2.2"}, []string{"e3"}},
		{"since", trace.Query{Since: at(0.5)}, []string{"e2", "e3", "e4"}},
		{"until", trace.Query{Until: at(1.5)}, []string{"e1", "e2"}},
		{"since and until", trace.Query{Since: at(0.5), Until: at(2.5)}, []string{"e2", "e3"}},
		{"sender and status", trace.Query{Sender: "app@a.example", Status: trace.StatusPending}, []string{"e1"}},
		{"limit", trace.Query{Limit: 2}, []string{"e1", "e2"}},
		{"after id", trace.Query{AfterID: stored[0].ID}, []string{"e2", "e3", "e4"}},
		{"after id and limit", trace.Query{AfterID: stored[0].ID, Limit: 1}, []string{"e2"}},
		{"no match", trace.Query{Sender: "nobody@a.example"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.TenantID = a
			got, err := s.SearchTrace(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("SearchTrace returned a nil list; the admin API needs [] in JSON")
			}
			if !slices.Equal(details(got), tc.want) {
				t.Errorf("SearchTrace(%+v) = %v, want %v (oldest first)", tc.q, details(got), tc.want)
			}
		})
	}

	// Every field round-trips, and IDs grow in insertion order.
	for i, e := range stored {
		w := all[i]
		if e.ID == 0 || i > 0 && e.ID <= stored[i-1].ID {
			t.Errorf("event %s has id %d after %d; want increasing ids", e.Detail, e.ID, stored[max(i-1, 0)].ID)
		}
		w.ID = e.ID
		if !e.Time.Equal(w.Time) {
			t.Errorf("event %s time = %v, want %v", e.Detail, e.Time, w.Time)
		}
		e.Time = w.Time
		if e != w {
			t.Errorf("stored event = %+v, want %+v", e, w)
		}
	}
}

func testTracePaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a")
	at := baseTime()
	var events []trace.Event
	for i := range 7 {
		events = append(events, trace.Event{TenantID: ten.ID, Time: at, QueueID: "Q", Event: trace.EventReceived,
			Status: trace.StatusPending, Detail: fmt.Sprint(i)})
	}
	check(t, s.AddEvents(ctx, events))

	var pages [][]string
	var after int64
	for range 10 {
		page := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID, AfterID: after, Limit: 3})))
		if len(page) == 0 {
			break
		}
		pages = append(pages, details(page))
		after = page[len(page)-1].ID
	}
	want := [][]string{{"0", "1", "2"}, {"3", "4", "5"}, {"6"}}
	if !slices.EqualFunc(pages, want, slices.Equal) {
		t.Errorf("pages of 3 = %v, want %v", pages, want)
	}
	// Limit 0 means the default (1000), not nothing.
	if got := must(t, of(s.SearchTrace(ctx, trace.Query{TenantID: ten.ID}))); len(got) != 7 {
		t.Errorf("SearchTrace without a limit returned %d events, want 7", len(got))
	}
}

// testSentItems: a message a mailbox sends gets a Sent Items copy in that
// mailbox when it is enqueued; delivering it to the sender as well makes a
// second, Inbox, copy.
func testSentItems(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	alice := newMailbox(t, s, ten.ID, "alice@a.example")
	bob := newMailbox(t, s, ten.ID, "bob@a.example")
	at := baseTime()

	// alice writes to herself and to r1; HVE accounts (MailboxID 0) keep
	// no Sent Items.
	sent := newMessage(ten.ID, 0, 1, at)
	sent.MailboxID, sent.Sender = alice.ID, "alice@a.example"
	hve := newMessage(ten.ID, 0, 2, at)
	check(t, s.Enqueue(ctx, []*queue.Message{sent, hve}, nil))

	list := must(t, of(s.MailboxMessages(ctx, alice.ID)))
	if len(list) != 1 {
		t.Fatalf("after Enqueue, alice holds %+v; want only her Sent Items copy", list)
	}
	mm := list[0]
	if mm.Folder != store.FolderSentItems || mm.QueueID != sent.QueueID || mm.Recipient != "alice@a.example" || mm.From != "alice@a.example" ||
		!slices.Equal(mm.To, sent.Recipients) || mm.Subject != sent.Subject || mm.Size != sent.Size || !mm.ReceivedAt.Equal(sent.ReceivedAt) {
		t.Errorf("Sent Items copy = %+v, want folder %q, recipient = sender and the envelope of %+v", mm, store.FolderSentItems, sent)
	}
	if body := must(t, of(s.MailboxMessageBody(ctx, alice.ID, mm.ID))); !bytes.Equal(body, sent.Body) {
		t.Errorf("body of the Sent Items copy = %q", body)
	}
	if n := len(must(t, of(s.MailboxMessages(ctx, bob.ID)))); n != 0 {
		t.Errorf("bob holds %d messages before any delivery", n)
	}

	// The sender mailbox comes back with the claimed message; the delivery
	// to alice herself is an Inbox copy next to the Sent Items one.
	claimed := must(t, of(s.Claim(ctx, "w", time.Now(), 10, time.Minute)))
	for _, c := range claimed {
		if want := map[string]int64{sent.QueueID: alice.ID, hve.QueueID: 0}[c.QueueID]; c.MailboxID != want {
			t.Errorf("claimed %s has MailboxID %d, want %d", c.QueueID, c.MailboxID, want)
		}
	}
	d := store.Delivery{QueueID: sent.QueueID, Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: "alice@a.example"}, {MailboxID: bob.ID, Recipient: "bob@a.example"}}}
	check(t, s.Finish(ctx, []store.Delivery{d}))
	check(t, s.Finish(ctx, []store.Delivery{d})) // idempotent, per folder
	folders := map[string]int{}
	for _, mm := range must(t, of(s.MailboxMessages(ctx, alice.ID))) {
		folders[mm.Folder]++
		if mm.QueueID != sent.QueueID {
			t.Errorf("alice holds a copy of %s", mm.QueueID)
		}
	}
	if folders[store.FolderInbox] != 1 || folders[store.FolderSentItems] != 1 || len(folders) != 2 {
		t.Errorf("alice's copies by folder = %v, want one Inbox and one Sent Items", folders)
	}
	if list := must(t, of(s.MailboxMessages(ctx, bob.ID))); len(list) != 1 || list[0].Folder != store.FolderInbox {
		t.Errorf("bob's copies = %+v, want one in the Inbox", list)
	}

	// A failed batch leaves no Sent Items copy behind.
	fresh := newMessage(ten.ID, 0, 3, at)
	fresh.MailboxID = bob.ID
	dup := newMessage(ten.ID, 0, 4, at)
	dup.QueueID = hve.QueueID
	if err := s.Enqueue(ctx, []*queue.Message{fresh, dup}, nil); err == nil {
		t.Fatal("Enqueue of a batch with a duplicate queue id succeeded")
	}
	if list := must(t, of(s.MailboxMessages(ctx, bob.ID))); len(list) != 1 {
		t.Errorf("a failed batch left bob %d copies, want his 1 Inbox copy", len(list))
	}
}

// testNotBefore: a paced message is not claimed before its NotBefore.
func testNotBefore(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	now := time.Now().UTC().Truncate(time.Millisecond)
	paced := newMessage(ten.ID, acc.ID, 1, now.Add(-time.Second))
	paced.NotBefore = now.Add(time.Minute)
	atOnce := newMessage(ten.ID, acc.ID, 2, now.Add(-time.Second))
	check(t, s.Enqueue(ctx, []*queue.Message{paced, atOnce}, nil))

	if got := must(t, of(s.Claim(ctx, "w1", now, 10, time.Second))); !slices.Equal(queueIDs(got), []string{atOnce.QueueID}) {
		t.Errorf("Claim now = %v, want only %s (the other is not due for a minute)", queueIDs(got), atOnce.QueueID)
	}
	if got := must(t, of(s.Claim(ctx, "w2", now.Add(59*time.Second), 10, time.Second))); slices.Contains(queueIDs(got), paced.QueueID) {
		t.Errorf("Claim a second before NotBefore got %s", paced.QueueID)
	}
	if got := must(t, of(s.Claim(ctx, "w3", paced.NotBefore, 10, time.Second))); !slices.Contains(queueIDs(got), paced.QueueID) {
		t.Errorf("Claim at NotBefore = %v, want %s", queueIDs(got), paced.QueueID)
	}
	if n := must(t, of(s.QueueDepth(ctx))); n != 2 {
		t.Errorf("QueueDepth = %d, want 2 (a paced message is queued)", n)
	}
}

// ---- access ----

func testTenantSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	if a.Settings != directory.DefaultSettings() {
		t.Errorf("a new tenant has settings %+v, want the defaults %+v", a.Settings, directory.DefaultSettings())
	}
	got := must(t, of(s.Tenant(ctx, a.ID)))
	if got.ID != a.ID || got.Name != "a" || got.CreatedAt.Sub(a.CreatedAt).Abs() > time.Millisecond || got.Settings != directory.DefaultSettings() {
		t.Errorf("Tenant(%d) = %+v, want %+v", a.ID, got, a)
	}
	_, err := s.Tenant(ctx, b.ID+1000)
	wantErr(t, err, store.ErrNotFound, "Tenant of an unknown id")

	must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: a.ID, Name: "Block Basic"})))
	must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: b.ID, Name: "Only In B"})))
	at := baseTime()
	set := directory.Settings{
		SecurityDefaults:       true,
		DefaultAuthPolicy:      "Block Basic",
		ClientSMTPAuthDisabled: true,
		HVEBasicAuth:           directory.Retirement{SunsetAt: at.Add(48 * time.Hour), RampStart: at, RampEnd: at.Add(24 * time.Hour)},
		ClientBasicAuth:        directory.Retirement{SunsetAt: at.Add(72 * time.Hour)},
		DailyRecipientLimit:    100_000,
		MaxHVEAccounts:         7,
		ExternalSending:        directory.ExternalLimited,
		OutboundSmarthost:      "smtp.example.net:25",
		PricePerMillion:        37.5,
	}
	upd := must(t, of(s.UpdateTenantSettings(ctx, a.ID, set)))
	if upd.ID != a.ID || upd.Name != "a" || !equalSettings(upd.Settings, set) {
		t.Errorf("UpdateTenantSettings returned %+v, want tenant a with %+v", upd, set)
	}
	for name, get := range map[string]func() (directory.Tenant, error){
		"Tenant":       func() (directory.Tenant, error) { return s.Tenant(ctx, a.ID) },
		"TenantByName": func() (directory.Tenant, error) { return s.TenantByName(ctx, "a") },
		"Tenants": func() (directory.Tenant, error) {
			list, err := s.Tenants(ctx)
			if err != nil || len(list) != 2 {
				return directory.Tenant{}, fmt.Errorf("Tenants() = %+v, %v", list, err)
			}
			return list[0], nil
		},
	} {
		got, err := get()
		if err != nil || !equalSettings(got.Settings, set) {
			t.Errorf("%s: settings %+v, %v; want %+v", name, got.Settings, err, set)
		}
		if l := got.Settings.HVEBasicAuth.RampStart.Location(); l != time.UTC {
			t.Errorf("%s: settings times are in %v, want UTC", name, l)
		}
	}
	if got := must(t, of(s.Tenant(ctx, b.ID))); got.Settings != directory.DefaultSettings() {
		t.Errorf("updating a's settings changed b's: %+v", got.Settings)
	}

	// The default policy must be one of the tenant's own.
	for _, name := range []string{"No Such Policy", "Only In B"} {
		bad := set
		bad.DefaultAuthPolicy = name
		bad.SecurityDefaults = false
		_, err := s.UpdateTenantSettings(ctx, a.ID, bad)
		wantErr(t, err, store.ErrInvalid, "default policy "+name)
		if err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name the policy %q", err, name)
		}
		if got := must(t, of(s.Tenant(ctx, a.ID))); !equalSettings(got.Settings, set) {
			t.Errorf("a refused update changed the settings to %+v", got.Settings)
		}
	}
	// No default policy at all is fine.
	cleared := must(t, of(s.UpdateTenantSettings(ctx, a.ID, directory.Settings{})))
	if cleared.Settings != (directory.Settings{}) || must(t, of(s.Tenant(ctx, a.ID))).Settings != (directory.Settings{}) {
		t.Errorf("settings after clearing = %+v", cleared.Settings)
	}
	_, err = s.UpdateTenantSettings(ctx, b.ID+1000, directory.Settings{})
	wantErr(t, err, store.ErrNotFound, "UpdateTenantSettings of an unknown tenant")
}

// equalSettings compares settings with time.Time.Equal.
func equalSettings(a, b directory.Settings) bool {
	eqR := func(x, y directory.Retirement) bool {
		return x.SunsetAt.Equal(y.SunsetAt) && x.RampStart.Equal(y.RampStart) && x.RampEnd.Equal(y.RampEnd)
	}
	if !eqR(a.HVEBasicAuth, b.HVEBasicAuth) || !eqR(a.ClientBasicAuth, b.ClientBasicAuth) {
		return false
	}
	// The other fields compare with ==.
	a.HVEBasicAuth, a.ClientBasicAuth = b.HVEBasicAuth, b.ClientBasicAuth
	return a == b
}

func testBuiltInCAPolicy(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	list := must(t, of(s.CAPolicies(ctx, a.ID)))
	if len(list) != 1 {
		t.Fatalf("a new tenant has policies %+v, want only %q", list, directory.BuiltInBlockLegacy)
	}
	p := list[0]
	if p.ID == 0 || p.TenantID != a.ID || p.Name != directory.BuiltInBlockLegacy || p.State != directory.CAReportOnly || p.Grant != directory.GrantBlock ||
		!slices.Equal(p.ClientApps, []directory.ClientApp{directory.Legacy}) || !slices.Equal(p.IncludeUsers, []string{directory.AllUsers}) ||
		len(p.ExcludeUsers)+len(p.IncludeGroups)+len(p.ExcludeGroups)+len(p.IncludeNetworks)+len(p.ExcludeNetworks) != 0 || p.CreatedAt.IsZero() {
		t.Errorf("built-in policy = %+v, want report-only, block, legacy clients, all users", p)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("the built-in policy is not valid: %v", err)
	}

	t2 := newTenant(t, s, "t2")
	p2 := must(t, of(s.CAPolicyByName(ctx, t2.ID, directory.BuiltInBlockLegacy)))
	if p2.ID == p.ID || p2.TenantID != t2.ID {
		t.Errorf("t2's built-in policy = %+v, want its own copy (a's is %d)", p2, p.ID)
	}
	// Admins may remove it; the other tenant keeps its copy.
	check(t, s.RemoveCAPolicy(ctx, a.ID, directory.BuiltInBlockLegacy))
	if list := must(t, of(s.CAPolicies(ctx, a.ID))); len(list) != 0 {
		t.Errorf("a's policies after removing the built-in one = %+v", list)
	}
	if _, err := s.CAPolicyByName(ctx, t2.ID, directory.BuiltInBlockLegacy); err != nil {
		t.Errorf("removing a's built-in policy removed t2's: %v", err)
	}
}

func testAuthPolicies(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b")

	if list, err := s.AuthPolicies(ctx, a.ID); err != nil || list == nil || len(list) != 0 {
		t.Errorf("AuthPolicies of a new tenant = %#v, %v; want an empty, non-nil list", list, err)
	}
	p := must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: a.ID, Name: "Allow SMTP", AllowBasicAuthSMTP: true})))
	if p.ID == 0 || p.CreatedAt.IsZero() || p.Name != "Allow SMTP" || !p.AllowBasicAuthSMTP {
		t.Errorf("CreateAuthPolicy returned %+v", p)
	}
	must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: a.ID, Name: "Block"})))
	_, err := s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: a.ID, Name: "Block", AllowBasicAuthSMTP: true})
	wantErr(t, err, store.ErrExists, "creating a policy name twice")
	_, err = s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: a.ID, Name: " "})
	wantErr(t, err, store.ErrInvalid, "a policy without a name")
	pb := must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: b.ID, Name: "Block"}))) // names are per tenant

	var names []string
	for _, p := range must(t, of(s.AuthPolicies(ctx, a.ID))) {
		names = append(names, p.Name)
		if p.TenantID != a.ID {
			t.Errorf("AuthPolicies(a) lists %+v of another tenant", p)
		}
	}
	if !slices.Equal(names, []string{"Allow SMTP", "Block"}) {
		t.Errorf("AuthPolicies(a) = %v, want [Allow SMTP Block] (by name)", names)
	}
	got := must(t, of(s.AuthPolicyByName(ctx, a.ID, "Allow SMTP")))
	if got.ID != p.ID || got.TenantID != a.ID || !got.AllowBasicAuthSMTP || got.CreatedAt.Sub(p.CreatedAt).Abs() > time.Millisecond {
		t.Errorf("AuthPolicyByName = %+v, want %+v", got, p)
	}
	_, err = s.AuthPolicyByName(ctx, a.ID, "Nope")
	wantErr(t, err, store.ErrNotFound, "AuthPolicyByName of an unknown policy")
	_, err = s.AuthPolicyByName(ctx, b.ID, "Allow SMTP")
	wantErr(t, err, store.ErrNotFound, "AuthPolicyByName of another tenant's policy")

	// Update changes the setting.
	p.AllowBasicAuthSMTP = false
	upd := must(t, of(s.UpdateAuthPolicy(ctx, p)))
	if upd.AllowBasicAuthSMTP || upd.ID != p.ID || upd.Name != p.Name {
		t.Errorf("UpdateAuthPolicy returned %+v", upd)
	}
	if must(t, of(s.AuthPolicyByName(ctx, a.ID, "Allow SMTP"))).AllowBasicAuthSMTP {
		t.Error("UpdateAuthPolicy did not store the setting")
	}
	// A rename carries over to everything that names the policy.
	acc := newAccount(t, s, a.ID, "app@a.example")
	acc.AuthPolicy = "Allow SMTP"
	must(t, of(s.UpdateAccount(ctx, acc)))
	mb := newMailbox(t, s, a.ID, "alice@a.example")
	mb.AuthPolicy = "Allow SMTP"
	must(t, of(s.UpdateMailbox(ctx, mb)))
	must(t, of(s.UpdateTenantSettings(ctx, a.ID, directory.Settings{DefaultAuthPolicy: "Allow SMTP"})))
	p.Name = "Renamed"
	must(t, of(s.UpdateAuthPolicy(ctx, p)))
	if got := must(t, of(s.Account(ctx, a.ID, acc.ID))).AuthPolicy; got != "Renamed" {
		t.Errorf("after the rename, the account's policy is %q", got)
	}
	if got := must(t, of(s.Mailbox(ctx, a.ID, mb.ID))).AuthPolicy; got != "Renamed" {
		t.Errorf("after the rename, the mailbox's policy is %q", got)
	}
	if got := must(t, of(s.Tenant(ctx, a.ID))).Settings.DefaultAuthPolicy; got != "Renamed" {
		t.Errorf("after the rename, the tenant's default policy is %q", got)
	}
	_, err = s.AuthPolicyByName(ctx, a.ID, "Allow SMTP")
	wantErr(t, err, store.ErrNotFound, "the old name after a rename")

	p.Name = "Block"
	_, err = s.UpdateAuthPolicy(ctx, p)
	wantErr(t, err, store.ErrExists, "renaming a policy to a taken name")
	pb.TenantID = a.ID
	pb.AllowBasicAuthSMTP = true
	_, err = s.UpdateAuthPolicy(ctx, pb)
	wantErr(t, err, store.ErrNotFound, "updating b's policy as a")
	if must(t, of(s.AuthPolicyByName(ctx, b.ID, "Block"))).AllowBasicAuthSMTP {
		t.Error("a changed b's policy")
	}

	check(t, s.RemoveAuthPolicy(ctx, a.ID, "Block"))
	_, err = s.AuthPolicyByName(ctx, a.ID, "Block")
	wantErr(t, err, store.ErrNotFound, "a removed policy")
	wantErr(t, s.RemoveAuthPolicy(ctx, a.ID, "Block"), store.ErrNotFound, "removing a policy twice")
	if _, err := s.AuthPolicyByName(ctx, b.ID, "Block"); err != nil {
		t.Errorf("removing a's policy removed b's of the same name: %v", err)
	}
}

// testRemoveAuthPolicyInUse: a policy in use cannot go, and the error says
// where it is used.
func testRemoveAuthPolicyInUse(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	for _, ten := range []directory.Tenant{a, b} {
		must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: ten.ID, Name: "P"})))
	}
	acc := newAccount(t, s, a.ID, "app@a.example")
	mb := newMailbox(t, s, a.ID, "alice@a.example")
	must(t, of(s.UpdateTenantSettings(ctx, a.ID, directory.Settings{DefaultAuthPolicy: "P"})))
	acc.AuthPolicy = "P"
	must(t, of(s.UpdateAccount(ctx, acc)))
	mb.AuthPolicy = "P"
	must(t, of(s.UpdateMailbox(ctx, mb)))

	refused := func(what, mention string) {
		t.Helper()
		err := s.RemoveAuthPolicy(ctx, a.ID, "P")
		wantErr(t, err, store.ErrInvalid, "removing a policy that is "+what)
		if err != nil && !strings.Contains(err.Error(), mention) {
			t.Errorf("removing a policy that is %s: error %q does not mention %q", what, err, mention)
		}
		if _, err := s.AuthPolicyByName(ctx, a.ID, "P"); err != nil {
			t.Errorf("a refused removal removed the policy: %v", err)
		}
	}
	refused("the tenant's default", "default")
	must(t, of(s.UpdateTenantSettings(ctx, a.ID, directory.Settings{})))
	refused("assigned to an account and a mailbox", "app@a.example")
	acc.AuthPolicy = ""
	must(t, of(s.UpdateAccount(ctx, acc)))
	refused("assigned to a mailbox", "alice@a.example")
	mb.AuthPolicy = ""
	must(t, of(s.UpdateMailbox(ctx, mb)))

	// b using its own "P" does not hold a's back.
	accB := newAccount(t, s, b.ID, "app@b.example")
	accB.AuthPolicy = "P"
	must(t, of(s.UpdateAccount(ctx, accB)))
	check(t, s.RemoveAuthPolicy(ctx, a.ID, "P"))
	if got := must(t, of(s.Account(ctx, b.ID, accB.ID))).AuthPolicy; got != "P" {
		t.Errorf("b's account policy after removing a's = %q", got)
	}
}

func testAccountAccessFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b")
	must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: a.ID, Name: "Allow SMTP", AllowBasicAuthSMTP: true})))
	must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: b.ID, Name: "B only"})))
	acc := newAccount(t, s, a.ID, "app@a.example")

	// Lists are never nil, so that JSON shows [].
	for name, got := range map[string]directory.Account{
		"CreateAccount":    acc,
		"Account":          must(t, of(s.Account(ctx, a.ID, acc.ID))),
		"AccountByAddress": must(t, of(s.AccountByAddress(ctx, "app@a.example"))),
		"Accounts":         must(t, of(s.Accounts(ctx, a.ID)))[0],
	} {
		if got.AllowedApps == nil || got.AllowedNetworks == nil || len(got.AllowedApps)+len(got.AllowedNetworks) != 0 {
			t.Errorf("%s: AllowedApps %#v, AllowedNetworks %#v; want empty, non-nil lists", name, got.AllowedApps, got.AllowedNetworks)
		}
		if got.AuthPolicy != "" || !got.TokensValidFrom.IsZero() {
			t.Errorf("%s: a new account has policy %q and tokens valid from %v", name, got.AuthPolicy, got.TokensValidFrom)
		}
		j, _ := json.Marshal(got)
		if !strings.Contains(string(j), `"allowed_apps":[]`) || !strings.Contains(string(j), `"allowed_networks":[]`) {
			t.Errorf("%s: JSON %s does not show empty lists as []", name, j)
		}
	}

	// Nanoseconds survive: a session signed in a microsecond before a
	// revocation must not pass as after it.
	validFrom := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	apps := []string{"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", "11111111-1111-1111-1111-111111111111"}
	acc.AuthPolicy = "Allow SMTP"
	acc.TokensValidFrom = validFrom.In(time.FixedZone("CEST", 2*3600))
	acc.AllowedApps = apps
	acc.AllowedNetworks = []string{"192.0.2.0/24", "2001:db8::/32"}
	upd := must(t, of(s.UpdateAccount(ctx, acc)))
	wantApps := apps[:2] // in order, without the duplicate
	got := must(t, of(s.Account(ctx, a.ID, acc.ID)))
	for name, got := range map[string]directory.Account{"UpdateAccount": upd, "Account": got} {
		if got.AuthPolicy != "Allow SMTP" || !slices.Equal(got.AllowedApps, wantApps) ||
			!slices.Equal(got.AllowedNetworks, []string{"192.0.2.0/24", "2001:db8::/32"}) {
			t.Errorf("%s after UpdateAccount = %+v", name, got)
		}
		if !got.TokensValidFrom.Equal(validFrom) || got.TokensValidFrom.Location() != time.UTC {
			t.Errorf("%s: TokensValidFrom = %v, want %v in UTC", name, got.TokensValidFrom, validFrom)
		}
	}

	// Exactly MaxAllowedApps is fine; one more is refused and changes nothing.
	var many []string
	for i := range directory.MaxAllowedApps + 1 {
		many = append(many, fmt.Sprintf("%08d-0000-0000-0000-000000000000", i))
	}
	acc.AllowedApps = many[:directory.MaxAllowedApps]
	must(t, of(s.UpdateAccount(ctx, acc)))
	if got := must(t, of(s.Account(ctx, a.ID, acc.ID))).AllowedApps; !slices.Equal(got, many[:directory.MaxAllowedApps]) {
		t.Errorf("AllowedApps = %v, want the %d given", got, directory.MaxAllowedApps)
	}

	tests := []struct {
		name   string
		change func(*directory.Account)
	}{
		{"too many apps", func(a *directory.Account) { a.AllowedApps = many }},
		{"unknown policy", func(a *directory.Account) { a.AuthPolicy = "No Such Policy" }},
		{"another tenant's policy", func(a *directory.Account) { a.AuthPolicy = "B only" }},
		{"invalid network", func(a *directory.Account) { a.AllowedNetworks = []string{"not-a-network"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upd := acc
			upd.DisplayName = "Changed"
			tc.change(&upd)
			_, err := s.UpdateAccount(ctx, upd)
			wantErr(t, err, store.ErrInvalid, "UpdateAccount")
			got := must(t, of(s.Account(ctx, a.ID, acc.ID)))
			if got.DisplayName != acc.DisplayName || got.AuthPolicy != "Allow SMTP" || len(got.AllowedApps) != directory.MaxAllowedApps {
				t.Errorf("a refused update changed the account: %+v", got)
			}
		})
	}
	_, err := s.CreateAccount(ctx, directory.Account{TenantID: a.ID, Name: "x", DisplayName: "x", Address: "x@a.example", PasswordHash: "h", AuthPolicy: "No Such Policy"})
	wantErr(t, err, store.ErrInvalid, "CreateAccount with an unknown policy")
	_, err = s.Lookup(ctx, "x@a.example")
	wantErr(t, err, store.ErrNotFound, "the address of a refused CreateAccount")

	// Clearing works, and leaves empty lists.
	acc.AuthPolicy, acc.TokensValidFrom, acc.AllowedApps, acc.AllowedNetworks = "", time.Time{}, nil, nil
	must(t, of(s.UpdateAccount(ctx, acc)))
	got = must(t, of(s.Account(ctx, a.ID, acc.ID)))
	if got.AuthPolicy != "" || !got.TokensValidFrom.IsZero() || got.AllowedApps == nil || got.AllowedNetworks == nil ||
		len(got.AllowedApps)+len(got.AllowedNetworks) != 0 {
		t.Errorf("after clearing, account = %+v", got)
	}
}

func testUpdateMailbox(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: a.ID, Name: "P"})))
	mb := newMailbox(t, s, a.ID, "alice@a.example", "al@a.example")
	if mb.AuthPolicy != "" || !mb.TokensValidFrom.IsZero() || mb.ConvertedFromHVE {
		t.Errorf("a new mailbox = %+v, want no policy, no tokens-valid-from, not converted", mb)
	}
	mbB := newMailbox(t, s, b.ID, "bob@b.example")

	validFrom := time.Date(2026, 5, 1, 12, 0, 0, 987654321, time.UTC)
	upd := mb
	upd.DisplayName = "Alice A."
	upd.PasswordHash = "$argon2id$new"
	upd.AuthPolicy = "P"
	upd.TokensValidFrom = validFrom
	ret := must(t, of(s.UpdateMailbox(ctx, upd)))
	got := must(t, of(s.Mailbox(ctx, a.ID, mb.ID)))
	for name, got := range map[string]directory.Mailbox{"UpdateMailbox": ret, "Mailbox": got} {
		if got.DisplayName != "Alice A." || got.PasswordHash != "$argon2id$new" || !got.HasPassword || got.AuthPolicy != "P" ||
			!got.TokensValidFrom.Equal(validFrom) || got.TokensValidFrom.Location() != time.UTC ||
			got.Address != "alice@a.example" || got.Name != mb.Name || !slices.Equal(got.Aliases, []string{"al@a.example"}) || got.ConvertedFromHVE {
			t.Errorf("%s after UpdateMailbox = %+v", name, got)
		}
	}
	if got := must(t, of(s.MailboxByAddress(ctx, "al@a.example"))); got.AuthPolicy != "P" || !got.TokensValidFrom.Equal(validFrom) {
		t.Errorf("MailboxByAddress after UpdateMailbox = %+v", got)
	}
	if got := must(t, of(s.Mailboxes(ctx, a.ID))); len(got) != 1 || got[0].AuthPolicy != "P" {
		t.Errorf("Mailboxes after UpdateMailbox = %+v", got)
	}

	// Removing the password.
	upd.PasswordHash = ""
	if got := must(t, of(s.UpdateMailbox(ctx, upd))); got.HasPassword || got.PasswordHash != "" {
		t.Errorf("after removing the password, mailbox = %+v", got)
	}

	bad := upd
	bad.DisplayName = "Changed"
	bad.AuthPolicy = "No Such Policy"
	_, err := s.UpdateMailbox(ctx, bad)
	wantErr(t, err, store.ErrInvalid, "UpdateMailbox with an unknown policy")
	if got := must(t, of(s.Mailbox(ctx, a.ID, mb.ID))); got.DisplayName != "Alice A." || got.AuthPolicy != "P" {
		t.Errorf("a refused update changed the mailbox: %+v", got)
	}
	_, err = s.UpdateMailbox(ctx, directory.Mailbox{TenantID: a.ID, ID: mb.ID + 1000, Address: "ghost@a.example"})
	wantErr(t, err, store.ErrNotFound, "UpdateMailbox of an unknown mailbox")
	hijack := mbB
	hijack.TenantID, hijack.DisplayName = a.ID, "hijacked"
	_, err = s.UpdateMailbox(ctx, hijack)
	wantErr(t, err, store.ErrNotFound, "UpdateMailbox of b's mailbox as a")
	if got := must(t, of(s.Mailbox(ctx, b.ID, mbB.ID))); got.DisplayName == "hijacked" {
		t.Error("a changed b's mailbox")
	}
	_, err = s.CreateMailbox(ctx, directory.Mailbox{TenantID: a.ID, Name: "x", DisplayName: "x", Address: "x@a.example", AuthPolicy: "No Such Policy"})
	wantErr(t, err, store.ErrInvalid, "CreateMailbox with an unknown policy")
}

func testConvertAccountToMailbox(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	must(t, of(s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: a.ID, Name: "P", AllowBasicAuthSMTP: true})))
	must(t, of(s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: a.ID, Name: "Senders"})))
	must(t, of(s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: a.ID, Name: "Apps"})))
	acc := must(t, of(s.CreateAccount(ctx, directory.Account{TenantID: a.ID, Name: "hr", DisplayName: "HR", Address: "hr@a.example",
		Aliases: []string{"jobs@a.example", "people@a.example"}, Enabled: true, PasswordHash: "$argon2id$hr", AuthPolicy: "P"})))
	validFrom := time.Date(2026, 5, 1, 12, 0, 0, 5, time.UTC)
	acc.TokensValidFrom = validFrom
	must(t, of(s.UpdateAccount(ctx, acc)))
	check(t, s.AddSecurityGroupMember(ctx, a.ID, "Senders", "hr@a.example"))
	check(t, s.AddSecurityGroupMember(ctx, a.ID, "Apps", "jobs@a.example"))
	other := newAccount(t, s, a.ID, "other@a.example")
	check(t, s.AddSecurityGroupMember(ctx, a.ID, "Senders", "other@a.example"))

	_, err := s.ConvertAccountToMailbox(ctx, b.ID, acc.ID)
	wantErr(t, err, store.ErrNotFound, "converting a's account as b")
	_, err = s.ConvertAccountToMailbox(ctx, a.ID, acc.ID+1000)
	wantErr(t, err, store.ErrNotFound, "converting an unknown account")

	mb := must(t, of(s.ConvertAccountToMailbox(ctx, a.ID, acc.ID)))
	if mb.ID == 0 || mb.TenantID != a.ID || mb.Name != "hr" || mb.DisplayName != "HR" || mb.Address != "hr@a.example" ||
		!equalSets(mb.Aliases, []string{"jobs@a.example", "people@a.example"}) || mb.PasswordHash != "$argon2id$hr" || !mb.HasPassword ||
		mb.AuthPolicy != "P" || !mb.TokensValidFrom.Equal(validFrom) || !mb.ConvertedFromHVE || mb.CreatedAt.IsZero() {
		t.Errorf("ConvertAccountToMailbox = %+v, want the account's fields and ConvertedFromHVE", mb)
	}
	if got := must(t, of(s.Mailbox(ctx, a.ID, mb.ID))); !got.ConvertedFromHVE || got.AuthPolicy != "P" || !got.TokensValidFrom.Equal(validFrom) {
		t.Errorf("Mailbox after the conversion = %+v", got)
	}

	// The account is gone; every address now names the mailbox.
	_, err = s.Account(ctx, a.ID, acc.ID)
	wantErr(t, err, store.ErrNotFound, "Account after the conversion")
	_, err = s.AccountByAddress(ctx, "hr@a.example")
	wantErr(t, err, store.ErrNotFound, "AccountByAddress after the conversion")
	if got := accountAddrs(must(t, of(s.Accounts(ctx, a.ID)))); !slices.Equal(got, []string{"other@a.example"}) {
		t.Errorf("Accounts after the conversion = %v", got)
	}
	for _, addr := range []string{"hr@a.example", "jobs@a.example", "people@a.example"} {
		want := directory.Entry{TenantID: a.ID, Kind: directory.KindMailbox, ID: mb.ID, Address: "hr@a.example"}
		if e, err := s.Lookup(ctx, addr); err != nil || e != want {
			t.Errorf("Lookup(%s) after the conversion = %+v, %v; want %+v", addr, e, err, want)
		}
		if got, err := s.MailboxByAddress(ctx, addr); err != nil || got.ID != mb.ID {
			t.Errorf("MailboxByAddress(%s) after the conversion = %+v, %v", addr, got, err)
		}
	}

	// Security group memberships moved with it.
	if got := must(t, of(s.SecurityGroupsOf(ctx, a.ID, directory.KindMailbox, mb.ID))); !slices.Equal(got, []string{"Apps", "Senders"}) {
		t.Errorf("SecurityGroupsOf(the new mailbox) = %v, want [Apps Senders]", got)
	}
	if got := must(t, of(s.SecurityGroupsOf(ctx, a.ID, directory.KindAccount, acc.ID))); len(got) != 0 {
		t.Errorf("SecurityGroupsOf(the old account) = %v, want none", got)
	}
	senders := must(t, of(s.SecurityGroupByName(ctx, a.ID, "Senders")))
	wantMembers := []directory.Member{{Kind: directory.KindMailbox, ID: mb.ID, Address: "hr@a.example"}, {Kind: directory.KindAccount, ID: other.ID, Address: "other@a.example"}}
	if !slices.Equal(senders.Members, wantMembers) {
		t.Errorf("Senders' members = %+v, want %+v", senders.Members, wantMembers)
	}
	// The mailbox can now join distribution groups like any other.
	g := newGroup(t, s, a.ID, "team@a.example")
	check(t, s.AddGroupMember(ctx, a.ID, g.ID, "hr@a.example"))

	_, err = s.ConvertAccountToMailbox(ctx, a.ID, acc.ID)
	wantErr(t, err, store.ErrNotFound, "converting an account twice")
}

func testSecurityGroups(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	mb := newMailbox(t, s, a.ID, "alice@a.example", "al@a.example")
	acc := newAccount(t, s, a.ID, "app@a.example", "app-alias@a.example")
	newGroup(t, s, a.ID, "team@a.example")
	mbB := newMailbox(t, s, b.ID, "bob@b.example")

	if list, err := s.SecurityGroups(ctx, a.ID); err != nil || list == nil || len(list) != 0 {
		t.Errorf("SecurityGroups of a new tenant = %#v, %v; want an empty, non-nil list", list, err)
	}
	g := must(t, of(s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: a.ID, Name: "Senders"})))
	if g.ID == 0 || g.CreatedAt.IsZero() || g.Members == nil || len(g.Members) != 0 {
		t.Errorf("CreateSecurityGroup returned %+v, want an ID, a creation time and no members ([])", g)
	}
	must(t, of(s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: a.ID, Name: "Admins"})))
	_, err := s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: a.ID, Name: "Senders"})
	wantErr(t, err, store.ErrExists, "creating a security group name twice")
	_, err = s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: a.ID, Name: ""})
	wantErr(t, err, store.ErrInvalid, "a security group without a name")
	must(t, of(s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: b.ID, Name: "Senders"})))

	check(t, s.AddSecurityGroupMember(ctx, a.ID, "Senders", "al@a.example"))        // by alias
	check(t, s.AddSecurityGroupMember(ctx, a.ID, "Senders", "app-alias@a.example")) // an account, by alias
	check(t, s.AddSecurityGroupMember(ctx, a.ID, "Senders", "alice@a.example"))     // again: harmless
	check(t, s.AddSecurityGroupMember(ctx, a.ID, "Admins", "alice@a.example"))
	got := must(t, of(s.SecurityGroupByName(ctx, a.ID, "Senders")))
	want := []directory.Member{{Kind: directory.KindMailbox, ID: mb.ID, Address: "alice@a.example"}, {Kind: directory.KindAccount, ID: acc.ID, Address: "app@a.example"}}
	if got.ID != g.ID || got.TenantID != a.ID || got.Name != "Senders" || !slices.Equal(got.Members, want) {
		t.Errorf("SecurityGroupByName(Senders) = %+v, want members %+v (by primary address, sorted)", got, want)
	}
	var names []string
	for _, sg := range must(t, of(s.SecurityGroups(ctx, a.ID))) {
		names = append(names, sg.Name)
		if wantN := map[string]int{"Admins": 1, "Senders": 2}[sg.Name]; len(sg.Members) != wantN {
			t.Errorf("SecurityGroups lists %s with %d members, want %d", sg.Name, len(sg.Members), wantN)
		}
	}
	if !slices.Equal(names, []string{"Admins", "Senders"}) {
		t.Errorf("SecurityGroups(a) = %v, want [Admins Senders] (by name)", names)
	}
	if got := must(t, of(s.SecurityGroupsOf(ctx, a.ID, directory.KindMailbox, mb.ID))); !slices.Equal(got, []string{"Admins", "Senders"}) {
		t.Errorf("SecurityGroupsOf(alice) = %v, want [Admins Senders]", got)
	}
	// Kinds do not mix: mailbox and account ids may be equal, and only
	// alice is in Admins.
	if got := must(t, of(s.SecurityGroupsOf(ctx, a.ID, directory.KindAccount, acc.ID))); !slices.Equal(got, []string{"Senders"}) {
		t.Errorf("SecurityGroupsOf(app) = %v, want [Senders]", got)
	}
	if got, err := s.SecurityGroupsOf(ctx, b.ID, directory.KindMailbox, mbB.ID); err != nil || got == nil || len(got) != 0 {
		t.Errorf("SecurityGroupsOf(bob) = %#v, %v; want an empty, non-nil list", got, err)
	}
	if got := must(t, of(s.SecurityGroupsOf(ctx, b.ID, directory.KindMailbox, mb.ID))); len(got) != 0 {
		t.Errorf("SecurityGroupsOf in tenant b of a's mailbox id = %v, want none", got)
	}

	tests := []struct {
		name    string
		tenant  int64
		group   string
		address string
		want    error
		mention string
	}{
		{"distribution group", a.ID, "Senders", "team@a.example", store.ErrInvalid, "team@a.example"},
		{"unknown address", a.ID, "Senders", "nobody@a.example", store.ErrNotFound, "nobody@a.example"},
		{"mailbox of another tenant", a.ID, "Senders", "bob@b.example", store.ErrNotFound, "bob@b.example"},
		{"unknown group", a.ID, "Nope", "alice@a.example", store.ErrNotFound, "Nope"},
		{"group of another tenant", b.ID, "Admins", "bob@b.example", store.ErrNotFound, "Admins"},
	}
	for _, tc := range tests {
		t.Run("add "+tc.name, func(t *testing.T) {
			err := s.AddSecurityGroupMember(ctx, tc.tenant, tc.group, tc.address)
			wantErr(t, err, tc.want, "AddSecurityGroupMember("+tc.group+", "+tc.address+")")
			if err != nil && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %s", err, tc.mention)
			}
		})
	}
	if n := len(must(t, of(s.SecurityGroupByName(ctx, b.ID, "Senders"))).Members); n != 0 {
		t.Errorf("b's Senders got %d members", n)
	}

	check(t, s.RemoveSecurityGroupMember(ctx, a.ID, "Senders", "app@a.example"))
	if got := must(t, of(s.SecurityGroupByName(ctx, a.ID, "Senders"))).Members; !slices.Equal(got, want[:1]) {
		t.Errorf("Senders after removing app = %+v", got)
	}
	wantErr(t, s.RemoveSecurityGroupMember(ctx, a.ID, "Senders", "app@a.example"), store.ErrNotFound, "removing a non-member")
	wantErr(t, s.RemoveSecurityGroupMember(ctx, a.ID, "Nope", "alice@a.example"), store.ErrNotFound, "removing from an unknown group")
	wantErr(t, s.RemoveSecurityGroupMember(ctx, b.ID, "Senders", "alice@a.example"), store.ErrNotFound, "removing a's mailbox from b's group")

	// A group a Conditional Access policy names cannot go.
	ca, err := s.CreateCAPolicy(ctx, directory.CAPolicy{TenantID: a.ID, Name: "exclude-admins", State: directory.CAOn,
		Grant: directory.GrantBlock, IncludeUsers: []string{directory.AllUsers}, ExcludeGroups: []string{"Admins"}})
	check(t, err)
	wantErr(t, s.RemoveSecurityGroup(ctx, a.ID, "Admins"), store.ErrInvalid, "removing a security group a CA policy names")
	check(t, s.RemoveCAPolicy(ctx, a.ID, ca.Name))
	check(t, s.RemoveSecurityGroup(ctx, a.ID, "Admins"))
	_, err = s.SecurityGroupByName(ctx, a.ID, "Admins")
	wantErr(t, err, store.ErrNotFound, "a removed security group")
	if got := must(t, of(s.SecurityGroupsOf(ctx, a.ID, directory.KindMailbox, mb.ID))); !slices.Equal(got, []string{"Senders"}) {
		t.Errorf("SecurityGroupsOf(alice) after removing Admins = %v", got)
	}
	wantErr(t, s.RemoveSecurityGroup(ctx, a.ID, "Admins"), store.ErrNotFound, "removing a security group twice")
	wantErr(t, s.RemoveSecurityGroup(ctx, b.ID, "Nope"), store.ErrNotFound, "removing an unknown security group")
	// A new group of the old name starts empty.
	if g := must(t, of(s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: a.ID, Name: "Admins"}))); len(must(t, of(s.SecurityGroupByName(ctx, a.ID, g.Name))).Members) != 0 {
		t.Error("a re-created security group inherited members")
	}
}

// testSecurityGroupMembershipsEnd: removing an account or mailbox ends its
// memberships, so an object that later gets the same id is in no group.
func testSecurityGroupMembershipsEnd(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	must(t, of(s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: a.ID, Name: "G"})))
	mb := newMailbox(t, s, a.ID, "alice@a.example")
	acc := newAccount(t, s, a.ID, "app@a.example")
	check(t, s.AddSecurityGroupMember(ctx, a.ID, "G", "alice@a.example"))
	check(t, s.AddSecurityGroupMember(ctx, a.ID, "G", "app@a.example"))

	check(t, s.RemoveMailbox(ctx, a.ID, mb.ID))
	check(t, s.RemoveAccount(ctx, a.ID, acc.ID))
	if m := must(t, of(s.SecurityGroupByName(ctx, a.ID, "G"))).Members; len(m) != 0 {
		t.Errorf("G's members after removing them = %+v", m)
	}
	for _, kind := range []directory.Kind{directory.KindMailbox, directory.KindAccount} {
		id := map[directory.Kind]int64{directory.KindMailbox: mb.ID, directory.KindAccount: acc.ID}[kind]
		if got := must(t, of(s.SecurityGroupsOf(ctx, a.ID, kind, id))); len(got) != 0 {
			t.Errorf("SecurityGroupsOf(removed %s %d) = %v", kind, id, got)
		}
	}
	mb2 := newMailbox(t, s, a.ID, "new@a.example")
	acc2 := newAccount(t, s, a.ID, "new-app@a.example")
	if got := must(t, of(s.SecurityGroupsOf(ctx, a.ID, directory.KindMailbox, mb2.ID))); len(got) != 0 {
		t.Errorf("a new mailbox (id %d) is in %v", mb2.ID, got)
	}
	if got := must(t, of(s.SecurityGroupsOf(ctx, a.ID, directory.KindAccount, acc2.ID))); len(got) != 0 {
		t.Errorf("a new account (id %d) is in %v", acc2.ID, got)
	}
}

func testCAPolicies(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	in := directory.CAPolicy{TenantID: a.ID, Name: "Block outside", State: directory.CAOn, Grant: directory.GrantBlock,
		ClientApps:   []directory.ClientApp{directory.Legacy, directory.Modern},
		IncludeUsers: []string{"Alice@A.example", directory.AllUsers}, ExcludeUsers: []string{"boss@a.example"},
		IncludeGroups: []string{"Senders"}, ExcludeGroups: []string{"Break Glass"},
		IncludeNetworks: []string{"0.0.0.0/0", "::/0"}, ExcludeNetworks: []string{"10.1.2.3/8", "192.0.2.7"}}
	p := must(t, of(s.CreateCAPolicy(ctx, in)))
	want := directory.CAPolicy{ID: p.ID, TenantID: a.ID, Name: "Block outside", State: directory.CAOn, Grant: directory.GrantBlock,
		ClientApps:   []directory.ClientApp{directory.Legacy, directory.Modern},
		IncludeUsers: []string{"alice@a.example", directory.AllUsers}, ExcludeUsers: []string{"boss@a.example"},
		IncludeGroups: []string{"Senders"}, ExcludeGroups: []string{"Break Glass"},
		IncludeNetworks: []string{"0.0.0.0/0", "::/0"}, ExcludeNetworks: []string{"10.0.0.0/8", "192.0.2.7/32"}}
	if p.ID == 0 || p.CreatedAt.IsZero() {
		t.Errorf("CreateCAPolicy returned %+v, want an ID and a creation time", p)
	}
	got := must(t, of(s.CAPolicyByName(ctx, a.ID, "Block outside")))
	if !equalCA(got, want) || got.CreatedAt.IsZero() {
		t.Errorf("CAPolicyByName = %+v, want %+v (validated: addresses lower case, networks canonical)", got, want)
	}

	// Empty lists are stored and come back as [], never nil.
	minimal := must(t, of(s.CreateCAPolicy(ctx, directory.CAPolicy{TenantID: a.ID, Name: "MFA for Senders", State: directory.CAOff,
		Grant: directory.GrantRequireMFA, IncludeGroups: []string{"Senders"}})))
	for name, p := range map[string]directory.CAPolicy{"CreateCAPolicy": minimal, "CAPolicyByName": must(t, of(s.CAPolicyByName(ctx, a.ID, "MFA for Senders")))} {
		if p.ClientApps == nil || p.IncludeUsers == nil || p.ExcludeUsers == nil || p.ExcludeGroups == nil || p.IncludeNetworks == nil || p.ExcludeNetworks == nil {
			t.Errorf("%s = %#v, want empty lists, not nil", name, p)
		}
		j, _ := json.Marshal(p)
		if strings.Contains(string(j), "null") {
			t.Errorf("%s in JSON = %s, want [] for empty lists", name, j)
		}
	}

	invalid := []struct {
		name   string
		change func(*directory.CAPolicy)
	}{
		{"no name", func(p *directory.CAPolicy) { p.Name = "" }},
		{"bad state", func(p *directory.CAPolicy) { p.State = "maybe" }},
		{"bad grant", func(p *directory.CAPolicy) { p.Grant = "allow" }},
		{"bad client app", func(p *directory.CAPolicy) { p.ClientApps = []directory.ClientApp{"imap"} }},
		{"includes nobody", func(p *directory.CAPolicy) { p.IncludeUsers, p.IncludeGroups = nil, nil }},
		{"bad user", func(p *directory.CAPolicy) { p.ExcludeUsers = []string{"not an address"} }},
		{"bad network", func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"10.0.0.0/33"} }},
	}
	for _, tc := range invalid {
		t.Run("create with "+tc.name, func(t *testing.T) {
			p := directory.CAPolicy{TenantID: a.ID, Name: "Invalid", State: directory.CAOn, Grant: directory.GrantBlock, IncludeUsers: []string{directory.AllUsers}}
			tc.change(&p)
			_, err := s.CreateCAPolicy(ctx, p)
			wantErr(t, err, store.ErrInvalid, "CreateCAPolicy")
		})
	}
	_, err := s.CAPolicyByName(ctx, a.ID, "Invalid")
	wantErr(t, err, store.ErrNotFound, "a refused policy")
	_, err = s.CreateCAPolicy(ctx, in)
	wantErr(t, err, store.ErrExists, "creating a policy name twice")
	in.TenantID = b.ID
	pb := must(t, of(s.CreateCAPolicy(ctx, in))) // names are per tenant

	var names []string
	for _, p := range must(t, of(s.CAPolicies(ctx, a.ID))) {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{directory.BuiltInBlockLegacy, "Block outside", "MFA for Senders"}) {
		t.Errorf("CAPolicies(a) = %v, want them by name", names)
	}

	// Update replaces every field of the policy with the id.
	upd := got
	upd.Name, upd.State, upd.Grant = "Renamed", directory.CAReportOnly, directory.GrantRequireCompliantDevice
	upd.ClientApps, upd.IncludeUsers, upd.ExcludeUsers = nil, []string{"Carol@a.example"}, nil
	upd.IncludeGroups, upd.ExcludeGroups, upd.IncludeNetworks, upd.ExcludeNetworks = nil, nil, []string{"2001:DB8::1/32"}, nil
	ret := must(t, of(s.UpdateCAPolicy(ctx, upd)))
	wantUpd := directory.CAPolicy{ID: p.ID, TenantID: a.ID, Name: "Renamed", State: directory.CAReportOnly, Grant: directory.GrantRequireCompliantDevice,
		ClientApps: []directory.ClientApp{}, IncludeUsers: []string{"carol@a.example"}, ExcludeUsers: []string{},
		IncludeGroups: []string{}, ExcludeGroups: []string{}, IncludeNetworks: []string{"2001:db8::/32"}, ExcludeNetworks: []string{}}
	for name, got := range map[string]directory.CAPolicy{"UpdateCAPolicy": ret, "CAPolicyByName": must(t, of(s.CAPolicyByName(ctx, a.ID, "Renamed")))} {
		if !equalCA(got, wantUpd) || !got.CreatedAt.Equal(p.CreatedAt) && got.CreatedAt.Sub(p.CreatedAt).Abs() > time.Millisecond {
			t.Errorf("%s after the update = %#v, want %#v and the creation time kept", name, got, wantUpd)
		}
	}
	_, err = s.CAPolicyByName(ctx, a.ID, "Block outside")
	wantErr(t, err, store.ErrNotFound, "the old name after a rename")

	bad := ret
	bad.State = "maybe"
	_, err = s.UpdateCAPolicy(ctx, bad)
	wantErr(t, err, store.ErrInvalid, "UpdateCAPolicy with a bad state")
	bad = ret
	bad.Name = "MFA for Senders"
	_, err = s.UpdateCAPolicy(ctx, bad)
	wantErr(t, err, store.ErrExists, "renaming a policy to a taken name")
	if got := must(t, of(s.CAPolicyByName(ctx, a.ID, "Renamed"))); !equalCA(got, wantUpd) {
		t.Errorf("refused updates changed the policy: %+v", got)
	}
	hijack := pb
	hijack.TenantID, hijack.State = a.ID, directory.CAOff
	_, err = s.UpdateCAPolicy(ctx, hijack)
	wantErr(t, err, store.ErrNotFound, "updating b's policy as a")
	if got := must(t, of(s.CAPolicyByName(ctx, b.ID, "Block outside"))); got.State != directory.CAOn {
		t.Errorf("a changed b's policy: %+v", got)
	}

	check(t, s.RemoveCAPolicy(ctx, a.ID, "Renamed"))
	_, err = s.CAPolicyByName(ctx, a.ID, "Renamed")
	wantErr(t, err, store.ErrNotFound, "a removed policy")
	wantErr(t, s.RemoveCAPolicy(ctx, a.ID, "Renamed"), store.ErrNotFound, "removing a policy twice")
	wantErr(t, s.RemoveCAPolicy(ctx, a.ID, "Block outside"), store.ErrNotFound, "removing b's policy as a")
	if _, err := s.CAPolicyByName(ctx, b.ID, "Block outside"); err != nil {
		t.Errorf("b's policy: %v", err)
	}
}

// equalCA compares policies but for their creation time.
func equalCA(a, b directory.CAPolicy) bool {
	a.CreatedAt, b.CreatedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// newApp creates an app with the given ids and no secrets.
func newApp(t *testing.T, s store.Store, tenantID int64, name, appID, objectID string) directory.App {
	t.Helper()
	return must(t, of(s.CreateApp(t.Context(), directory.App{TenantID: tenantID, Name: name, AppID: appID, ObjectID: objectID,
		Permissions: []directory.Permission{directory.MailSend}})))
}

const (
	app1 = "0f6c1a3e-8f4b-4c55-9d1a-2b3c4d5e6f70"
	obj1 = "a1b2c3d4-e5f6-4789-8abc-def012345678"
	app2 = "1a2b3c4d-0000-4000-8000-000000000002"
	obj2 = "1a2b3c4d-0000-4000-8000-0000000000b2"
	app3 = "1a2b3c4d-0000-4000-8000-000000000003"
	obj3 = "1a2b3c4d-0000-4000-8000-0000000000b3"
)

func testApps(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")

	if list, err := s.Apps(ctx, a.ID); err != nil || list == nil || len(list) != 0 {
		t.Errorf("Apps of a new tenant = %#v, %v; want an empty, non-nil list", list, err)
	}
	x := must(t, of(s.CreateApp(ctx, directory.App{TenantID: a.ID, Name: "Mailer", AppID: app1, ObjectID: obj1})))
	if x.ID == 0 || x.TenantID != a.ID || x.Name != "Mailer" || x.AppID != app1 || x.ObjectID != obj1 || x.CreatedAt.IsZero() ||
		x.Permissions == nil || len(x.Permissions) != 0 || x.Secrets == nil || len(x.Secrets) != 0 {
		t.Errorf("CreateApp returned %#v, want its fields and empty, non-nil lists", x)
	}
	if j, _ := json.Marshal(x); strings.Contains(string(j), "null") {
		t.Errorf("a new app in JSON = %s, want [] for empty lists", j)
	}

	// App and object ids are unique across tenants, without regard to case.
	for _, ids := range [][2]string{{app1, obj2}, {strings.ToUpper(app1), obj2}, {app2, obj1}, {app2, strings.ToUpper(obj1)}} {
		_, err := s.CreateApp(ctx, directory.App{TenantID: b.ID, Name: "Dup", AppID: ids[0], ObjectID: ids[1]})
		wantErr(t, err, store.ErrExists, fmt.Sprintf("CreateApp with taken ids %v", ids))
	}
	for _, bad := range []directory.App{{TenantID: a.ID, AppID: app2, ObjectID: obj2}, {TenantID: a.ID, Name: "No ids"}} {
		_, err := s.CreateApp(ctx, bad)
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("CreateApp(%+v)", bad))
	}
	y := newApp(t, s, b.ID, "Mailer", app2, obj2)

	// App finds by app id or object id in any case, or by name.
	for _, ref := range []string{app1, strings.ToUpper(app1), obj1, strings.ToUpper(obj1), "Mailer"} {
		if got, err := s.App(ctx, a.ID, ref); err != nil || got.ID != x.ID {
			t.Errorf("App(a, %s) = %+v, %v; want app %d", ref, got, err, x.ID)
		}
	}
	for _, ref := range []string{app2, obj2, "mailer", "Nope"} {
		_, err := s.App(ctx, a.ID, ref)
		wantErr(t, err, store.ErrNotFound, "App(a, "+ref+")")
	}
	if got, err := s.App(ctx, b.ID, "Mailer"); err != nil || got.ID != y.ID {
		t.Errorf("App(b, Mailer) = %+v, %v; want b's own app", got, err)
	}
	// AppByAppID finds any tenant's app, by app id only.
	for _, ref := range []string{app2, strings.ToUpper(app2)} {
		if got, err := s.AppByAppID(ctx, ref); err != nil || got.ID != y.ID || got.TenantID != b.ID || !slices.Equal(got.Permissions, []directory.Permission{directory.MailSend}) {
			t.Errorf("AppByAppID(%s) = %+v, %v; want b's app", ref, got, err)
		}
	}
	for _, ref := range []string{obj2, "Mailer", "nope"} {
		_, err := s.AppByAppID(ctx, ref)
		wantErr(t, err, store.ErrNotFound, "AppByAppID("+ref+")")
	}

	// A name shared by two apps is ambiguous; their ids are not.
	z := newApp(t, s, a.ID, "Mailer", app3, obj3)
	_, err := s.App(ctx, a.ID, "Mailer")
	wantErr(t, err, store.ErrInvalid, "App by an ambiguous name")
	if err != nil && !strings.Contains(err.Error(), `several apps are named "Mailer"`) {
		t.Errorf("error %q does not say that several apps are named \"Mailer\"", err)
	}
	if got, err := s.App(ctx, a.ID, app3); err != nil || got.ID != z.ID {
		t.Errorf("App(a, app3) = %+v, %v", got, err)
	}
	if got := must(t, of(s.Apps(ctx, a.ID))); len(got) != 2 || got[0].TenantID != a.ID || got[1].TenantID != a.ID {
		t.Errorf("Apps(a) = %+v, want a's two apps", got)
	}

	// UpdateApp changes the name and permissions of the app with the app id.
	x.Name, x.Permissions = "Newsletter", []directory.Permission{directory.MailSend}
	upd := must(t, of(s.UpdateApp(ctx, x)))
	got := must(t, of(s.App(ctx, a.ID, app1)))
	for name, got := range map[string]directory.App{"UpdateApp": upd, "App": got} {
		if got.Name != "Newsletter" || !got.Has(directory.MailSend) || got.AppID != app1 || got.ObjectID != obj1 || got.ID != x.ID {
			t.Errorf("%s after the update = %+v", name, got)
		}
	}
	if got, err := s.App(ctx, a.ID, "Mailer"); err != nil || got.ID != z.ID {
		t.Errorf("after the rename, App(a, Mailer) = %+v, %v; want the only app of that name", got, err)
	}
	x.Permissions = nil
	if got := must(t, of(s.UpdateApp(ctx, x))); got.Permissions == nil || len(got.Permissions) != 0 {
		t.Errorf("after revoking every permission, Permissions = %#v, want []", got.Permissions)
	}
	hijack := y
	hijack.TenantID, hijack.Name = a.ID, "hijacked"
	_, err = s.UpdateApp(ctx, hijack)
	wantErr(t, err, store.ErrNotFound, "updating b's app as a")
	if got := must(t, of(s.AppByAppID(ctx, app2))); got.Name != "Mailer" {
		t.Errorf("a renamed b's app to %q", got.Name)
	}
}

func testAppSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	at := baseTime()
	x := must(t, of(s.CreateApp(ctx, directory.App{TenantID: a.ID, Name: "Mailer", AppID: app1, ObjectID: obj1,
		Secrets: []directory.AppSecret{{Hint: "abc", Hash: "hash-abc", ExpiresAt: at.Add(24 * time.Hour), CreatedAt: at}}})))
	if len(x.Secrets) != 1 || x.Secrets[0].ID == 0 || x.Secrets[0].Hash != "hash-abc" || x.Secrets[0].Hint != "abc" ||
		!x.Secrets[0].ExpiresAt.Equal(at.Add(24*time.Hour)) || !x.Secrets[0].CreatedAt.Equal(at) {
		t.Errorf("CreateApp with a secret returned secrets %+v", x.Secrets)
	}
	newApp(t, s, b.ID, "Other", app2, obj2)

	second := must(t, of(s.AddAppSecret(ctx, a.ID, app1, directory.AppSecret{Hint: "def", Hash: "hash-def", ExpiresAt: at.Add(48 * time.Hour), CreatedAt: at.Add(time.Minute)})))
	if second.ID == 0 || second.ID == x.Secrets[0].ID || second.Hash != "hash-def" {
		t.Errorf("AddAppSecret returned %+v", second)
	}
	third := must(t, of(s.AddAppSecret(ctx, a.ID, strings.ToUpper(app1), directory.AppSecret{Hint: "ghi", Hash: "hash-ghi", ExpiresAt: at.Add(72 * time.Hour)})))
	if third.CreatedAt.IsZero() {
		t.Errorf("AddAppSecret without a creation time returned %+v, want it set to now", third)
	}
	// Newest first, hashes included (the token endpoint checks them).
	for name, app := range map[string]directory.App{
		"App":        must(t, of(s.App(ctx, a.ID, app1))),
		"AppByAppID": must(t, of(s.AppByAppID(ctx, app1))),
		"Apps":       must(t, of(s.Apps(ctx, a.ID)))[0],
	} {
		var hints, hashes []string
		for _, sec := range app.Secrets {
			hints, hashes = append(hints, sec.Hint), append(hashes, sec.Hash)
		}
		if !slices.Equal(hints, []string{"ghi", "def", "abc"}) || !slices.Equal(hashes, []string{"hash-ghi", "hash-def", "hash-abc"}) {
			t.Errorf("%s: secrets %v with hashes %v, want newest first with hashes", name, hints, hashes)
		}
		if j, _ := json.Marshal(app); strings.Contains(string(j), "hash-") {
			t.Errorf("%s in JSON shows a secret's hash: %s", name, j)
		}
	}

	_, err := s.AddAppSecret(ctx, a.ID, app2, directory.AppSecret{Hint: "x", Hash: "h"})
	wantErr(t, err, store.ErrNotFound, "adding a secret to b's app as a")
	_, err = s.AddAppSecret(ctx, a.ID, app1, directory.AppSecret{Hint: "x"})
	wantErr(t, err, store.ErrInvalid, "a secret without a hash")
	if n := len(must(t, of(s.AppByAppID(ctx, app2))).Secrets); n != 0 {
		t.Errorf("b's app has %d secrets", n)
	}

	check(t, s.RemoveAppSecret(ctx, a.ID, app1, second.ID))
	var hints []string
	for _, sec := range must(t, of(s.App(ctx, a.ID, app1))).Secrets {
		hints = append(hints, sec.Hint)
	}
	if !slices.Equal(hints, []string{"ghi", "abc"}) {
		t.Errorf("secrets after removing def = %v", hints)
	}
	wantErr(t, s.RemoveAppSecret(ctx, a.ID, app1, second.ID), store.ErrNotFound, "removing a secret twice")
	wantErr(t, s.RemoveAppSecret(ctx, b.ID, app2, third.ID), store.ErrNotFound, "removing a's secret through b's app")
	wantErr(t, s.RemoveAppSecret(ctx, b.ID, app1, third.ID), store.ErrNotFound, "removing a's secret as b")
}

func testRemoveApp(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example")
	b := newTenant(t, s, "b", "b.example")
	newApp(t, s, a.ID, "Mailer", app1, obj1)
	newApp(t, s, a.ID, "Other", app2, obj2)
	must(t, of(s.AddAppSecret(ctx, a.ID, app1, directory.AppSecret{Hint: "abc", Hash: "h"})))
	acc := newAccount(t, s, a.ID, "app@a.example")
	acc.AllowedApps = []string{app2, strings.ToUpper(app1), "kept-id"}
	must(t, of(s.UpdateAccount(ctx, acc)))
	untouched := newAccount(t, s, a.ID, "plain@a.example")
	untouched.AllowedApps = []string{app2}
	must(t, of(s.UpdateAccount(ctx, untouched)))
	accB := newAccount(t, s, b.ID, "app@b.example")
	accB.AllowedApps = []string{app1} // b's list is b's business
	must(t, of(s.UpdateAccount(ctx, accB)))

	wantErr(t, s.RemoveApp(ctx, b.ID, app1), store.ErrNotFound, "removing a's app as b")
	check(t, s.RemoveApp(ctx, a.ID, app1))
	_, err := s.AppByAppID(ctx, app1)
	wantErr(t, err, store.ErrNotFound, "AppByAppID of a removed app")
	_, err = s.App(ctx, a.ID, "Mailer")
	wantErr(t, err, store.ErrNotFound, "App of a removed app")
	wantErr(t, s.RemoveApp(ctx, a.ID, app1), store.ErrNotFound, "removing an app twice")

	if got := must(t, of(s.Account(ctx, a.ID, acc.ID))).AllowedApps; !slices.Equal(got, []string{app2, "kept-id"}) {
		t.Errorf("AllowedApps after removing the app = %v, want [%s kept-id] (in order)", got, app2)
	}
	if got := must(t, of(s.Account(ctx, a.ID, untouched.ID))).AllowedApps; !slices.Equal(got, []string{app2}) {
		t.Errorf("another account's AllowedApps = %v", got)
	}
	if got := must(t, of(s.Account(ctx, b.ID, accB.ID))).AllowedApps; !slices.Equal(got, []string{app1}) {
		t.Errorf("b's account's AllowedApps = %v; a's removal must not touch b", got)
	}
	// The ids are free again, and the new app has none of the old secrets.
	if x := newApp(t, s, a.ID, "Mailer", app1, obj1); len(x.Secrets) != 0 {
		t.Errorf("a re-created app has secrets %+v", x.Secrets)
	}
}

func testIssuers(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a")
	b := newTenant(t, s, "b")
	if list, err := s.Issuers(ctx, 0); err != nil || list == nil || len(list) != 0 {
		t.Errorf("Issuers of an empty store = %#v, %v; want an empty, non-nil list", list, err)
	}
	const idp, other = "https://idp.a.example", "https://login.example.com/tenant/v2.0"
	i := must(t, of(s.CreateIssuer(ctx, directory.Issuer{TenantID: a.ID, URL: idp, Audience: "api://hve", Role: "SMTP.Send"})))
	if i.ID == 0 || i.CreatedAt.IsZero() || i.TenantID != a.ID {
		t.Errorf("CreateIssuer returned %+v", i)
	}
	must(t, of(s.CreateIssuer(ctx, directory.Issuer{TenantID: a.ID, URL: other, Audience: "hve"})))
	_, err := s.CreateIssuer(ctx, directory.Issuer{TenantID: a.ID, URL: idp, Audience: "x"})
	wantErr(t, err, store.ErrExists, "trusting an issuer twice")
	_, err = s.CreateIssuer(ctx, directory.Issuer{TenantID: a.ID, URL: ""})
	wantErr(t, err, store.ErrInvalid, "an issuer without a URL")
	must(t, of(s.CreateIssuer(ctx, directory.Issuer{TenantID: b.ID, URL: idp, Audience: "b-aud"}))) // per tenant

	list := must(t, of(s.Issuers(ctx, a.ID)))
	if len(list) != 2 || list[0].URL != idp || list[1].URL != other {
		t.Fatalf("Issuers(a) = %+v, want %s and %s (by URL)", list, idp, other)
	}
	if got := list[0]; got.ID != i.ID || got.TenantID != a.ID || got.Audience != "api://hve" || got.Role != "SMTP.Send" || got.CreatedAt.IsZero() {
		t.Errorf("Issuers(a)[0] = %+v", got)
	}
	if got := list[1]; got.Role != string(directory.MailSend) {
		t.Errorf("an issuer created without a role has role %q, want %s", got.Role, directory.MailSend)
	}
	all := must(t, of(s.Issuers(ctx, 0)))
	tenants := map[int64]int{}
	for _, i := range all {
		tenants[i.TenantID]++
	}
	if len(all) != 3 || tenants[a.ID] != 2 || tenants[b.ID] != 1 {
		t.Errorf("Issuers(0) = %+v, want every tenant's, with TenantID set", all)
	}

	check(t, s.RemoveIssuer(ctx, a.ID, idp))
	if list := must(t, of(s.Issuers(ctx, a.ID))); len(list) != 1 || list[0].URL != other {
		t.Errorf("Issuers(a) after removing %s = %+v", idp, list)
	}
	wantErr(t, s.RemoveIssuer(ctx, a.ID, idp), store.ErrNotFound, "removing an issuer twice")
	if list := must(t, of(s.Issuers(ctx, b.ID))); len(list) != 1 || list[0].URL != idp {
		t.Errorf("removing a's issuer changed b's: %+v", list)
	}
	wantErr(t, s.RemoveIssuer(ctx, a.ID, "https://nope.example"), store.ErrNotFound, "removing an unknown issuer")
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if list, err := s.SigningKeys(ctx); err != nil || list == nil || len(list) != 0 {
		t.Errorf("SigningKeys of an empty store = %#v, %v; want an empty, non-nil list", list, err)
	}
	t0 := baseTime()
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	key := func(id string, at time.Time) directory.SigningKey {
		return directory.SigningKey{ID: id, Algorithm: "RS256", PrivatePEM: []byte("-----BEGIN PRIVATE KEY-----\n" + id + "\n"), CreatedAt: at}
	}
	type state struct {
		id      string
		retired time.Time
	}
	expect := func(when string, want ...state) {
		t.Helper()
		list := must(t, of(s.SigningKeys(ctx)))
		var got []state
		for _, k := range list {
			got = append(got, state{k.ID, k.RetiredAt})
		}
		if !slices.EqualFunc(got, want, func(a, b state) bool { return a.id == b.id && a.retired.Equal(b.retired) }) {
			t.Errorf("%s: keys (id, retired) = %v, want %v (newest first)", when, got, want)
		}
	}

	check(t, s.AddSigningKey(ctx, key("k1", t0)))
	expect("after k1", state{"k1", time.Time{}})
	got := must(t, of(s.SigningKeys(ctx)))[0]
	if got.Algorithm != "RS256" || !bytes.Equal(got.PrivatePEM, key("k1", t0).PrivatePEM) || !got.CreatedAt.Equal(t0) {
		t.Errorf("stored key = %+v, want %+v", got, key("k1", t0))
	}
	check(t, s.AddSigningKey(ctx, key("k2", t1)))
	expect("after k2", state{"k2", time.Time{}}, state{"k1", t1})
	check(t, s.AddSigningKey(ctx, key("k3", t2)))
	expect("after k3", state{"k3", time.Time{}}, state{"k2", t2}, state{"k1", t1}) // k1 keeps its retirement time

	err := s.AddSigningKey(ctx, key("k2", t2.Add(time.Hour)))
	wantErr(t, err, store.ErrExists, "adding a key id twice")
	expect("after a refused add", state{"k3", time.Time{}}, state{"k2", t2}, state{"k1", t1})

	check(t, s.PruneSigningKeys(ctx, t1)) // retired before t1: none
	expect("after pruning before t1", state{"k3", time.Time{}}, state{"k2", t2}, state{"k1", t1})
	check(t, s.PruneSigningKeys(ctx, t1.Add(time.Millisecond)))
	expect("after pruning just after t1", state{"k3", time.Time{}}, state{"k2", t2})
	// The current key is never pruned.
	check(t, s.PruneSigningKeys(ctx, time.Now().Add(100*365*24*time.Hour)))
	expect("after pruning everything retired", state{"k3", time.Time{}})
}
