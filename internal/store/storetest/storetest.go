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
	"errors"
	"fmt"
	"slices"
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
// (lowest ID) first; MailboxMessages and SearchTrace return empty, non-nil
// lists when nothing matches, which the admin API encodes as [].
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
		{"TraceSearch", testTraceSearch},
		{"TracePaging", testTracePaging},
	}
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

func testEnqueueAndClaim(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	at := baseTime()
	var msgs []*queue.Message
	var events []trace.Event
	for i := range 3 {
		m := newMessage(ten.ID, acc.ID, i, at.Add(time.Duration(i)*time.Millisecond))
		msgs = append(msgs, m)
		events = append(events, receivedEvent(m))
	}
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
	d1 := store.Delivery{QueueID: m1.QueueID,
		Copies: []store.MailboxCopy{{MailboxID: alice.ID, Recipient: "alice@a.example"}, {MailboxID: bob.ID, Recipient: "team@a.example"}},
		Events: []trace.Event{delivered(m1, "alice@a.example"), delivered(m1, "bob@a.example")}}
	// A message whose every recipient failed is finished without copies.
	failed := receivedEvent(m2)
	failed.Event, failed.Status = trace.EventFailed, trace.StatusFailed
	d2 := store.Delivery{QueueID: m2.QueueID, Events: []trace.Event{failed}}
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
			mm.Subject != m.Subject || mm.MessageID != m.MessageID || mm.Size != m.Size {
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
	if len(bobs) != 1 || bobs[0].QueueID != m2.QueueID || bobs[0].Recipient != "bob@a.example" {
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
