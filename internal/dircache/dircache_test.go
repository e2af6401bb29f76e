package dircache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/dircache"
	"hve/internal/directory"
	"hve/internal/store"
	"hve/internal/store/sqlite"
)

// counting is the embedded store with a count of the directory reads that
// reach it.
type counting struct {
	*sqlite.Store
	reads atomic.Int64
}

func (c *counting) Lookup(ctx context.Context, address string) (directory.Entry, error) {
	c.reads.Add(1)
	return c.Store.Lookup(ctx, address)
}

func (c *counting) DomainByName(ctx context.Context, name string) (directory.Domain, error) {
	c.reads.Add(1)
	return c.Store.DomainByName(ctx, name)
}

func (c *counting) AccountByAddress(ctx context.Context, address string) (directory.Account, error) {
	c.reads.Add(1)
	return c.Store.AccountByAddress(ctx, address)
}

type fixture struct {
	t      *testing.T
	st     *counting
	tenant directory.Tenant
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: &counting{Store: st}}
	ctx := context.Background()
	if f.tenant, err = st.CreateTenant(ctx, "contoso"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: f.tenant.ID, Name: "contoso.test", Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) mailbox(addr string) directory.Mailbox {
	f.t.Helper()
	mb, err := f.st.CreateMailbox(context.Background(), directory.Mailbox{TenantID: f.tenant.ID, Name: addr, DisplayName: addr, Address: addr})
	if err != nil {
		f.t.Fatal(err)
	}
	return mb
}

// reads runs fn and returns how many directory reads reached the store.
func (f *fixture) reads(fn func()) int64 {
	before := f.st.reads.Load()
	fn()
	return f.st.reads.Load() - before
}

func TestReadsComeFromMemoryUntilTheDirectoryChanges(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	mb := f.mailbox("alice@contoso.test")
	c := dircache.New(f.st, dircache.Options{})

	lookup := func() directory.Entry {
		t.Helper()
		e, err := c.Lookup(ctx, "alice@contoso.test")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if n := f.reads(func() { lookup(); lookup(); lookup() }); n != 1 {
		t.Errorf("three lookups reached the store %d times, want once", n)
	}
	// A change of the directory (here an unrelated one) makes the next
	// read go to the store, and then it is remembered again.
	f.mailbox("bob@contoso.test")
	if n := f.reads(func() { lookup(); lookup() }); n != 1 {
		t.Errorf("after a change, two lookups reached the store %d times, want once", n)
	}
	// What changed is seen at once.
	if err := f.st.RemoveMailbox(ctx, f.tenant.ID, mb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, "alice@contoso.test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup of a removed mailbox = %v, want ErrNotFound", err)
	}
}

func TestNotFoundIsRememberedUntilTheAddressExists(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := dircache.New(f.st, dircache.Options{})
	n := f.reads(func() {
		for range 3 {
			if _, err := c.Lookup(ctx, "carol@contoso.test"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Lookup of an unknown address = %v, want ErrNotFound", err)
			}
		}
	})
	if n != 1 {
		t.Errorf("three lookups of an unknown address reached the store %d times, want once", n)
	}
	mb := f.mailbox("carol@contoso.test")
	e, err := c.Lookup(ctx, "carol@contoso.test")
	if err != nil || e.ID != mb.ID {
		t.Errorf("Lookup after the mailbox was created = %+v, %v; want the mailbox", e, err)
	}
}

func TestUpdatedAccountIsSeenAtTheNextSignIn(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := dircache.New(f.st, dircache.Options{})
	a, err := f.st.CreateAccount(ctx, directory.Account{TenantID: f.tenant.ID, Name: "app", DisplayName: "App",
		Address: "app@contoso.test", Enabled: true, PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.AccountByAddress(ctx, a.Address); err != nil || !got.Enabled {
		t.Fatalf("AccountByAddress = %+v, %v", got, err)
	}
	a.Enabled = false
	if _, err := f.st.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := c.AccountByAddress(ctx, a.Address); err != nil || got.Enabled {
		t.Errorf("AccountByAddress after disabling = %+v, %v; want it disabled", got, err)
	}
}

// racing is a store whose directory changes while a read runs.
type racing struct {
	*sqlite.Store
	version atomic.Uint64
	during  func()
	reads   int
}

func (r *racing) DirectoryVersion() uint64 { return r.version.Load() }

func (r *racing) DomainByName(ctx context.Context, name string) (directory.Domain, error) {
	r.reads++
	if r.during != nil {
		r.during()
	}
	return directory.Domain{Name: name}, nil
}

func TestAReadRacingAChangeIsNotRemembered(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := &racing{Store: f.st.Store}
	c := dircache.New(r, dircache.Options{})
	// The change commits while the first read runs: what it read may be
	// from before, so it must not be served again.
	r.during = func() { r.version.Add(1); r.during = nil }
	c.DomainByName(ctx, "contoso.test")
	c.DomainByName(ctx, "contoso.test")
	c.DomainByName(ctx, "contoso.test")
	if r.reads != 2 {
		t.Errorf("the store was read %d times, want 2: once during the change (not kept), once after (kept)", r.reads)
	}
}

func TestMaxAge(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Now()
	c := dircache.New(f.st, dircache.Options{MaxAge: 5 * time.Second, Now: func() time.Time { return now }})
	read := func() {
		if _, err := c.DomainByName(ctx, "contoso.test"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.reads(func() { read(); read() }); n != 1 {
		t.Errorf("two reads within MaxAge reached the store %d times, want once", n)
	}
	now = now.Add(5 * time.Second)
	if n := f.reads(read); n != 1 {
		t.Errorf("a read at MaxAge reached the store %d times, want once", n)
	}
}

// unversioned hides the store's directory version.
type unversioned struct{ store.Store }

func TestAStoreWithoutAVersionIsNotCached(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := dircache.New(unversioned{f.st}, dircache.Options{})
	if n := f.reads(func() {
		c.DomainByName(ctx, "contoso.test")
		c.DomainByName(ctx, "contoso.test")
	}); n != 2 {
		t.Errorf("two reads reached the store %d times, want both: it cannot say when the directory changes", n)
	}
}

func TestEntriesAreBounded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := dircache.New(f.st, dircache.Options{MaxEntries: 2})
	for _, a := range []string{"a@contoso.test", "b@contoso.test", "c@contoso.test"} {
		c.Lookup(ctx, a)
	}
	// The third address made the kind start over: a is read again.
	if n := f.reads(func() { c.Lookup(ctx, "a@contoso.test") }); n != 1 {
		t.Errorf("a lookup past MaxEntries reached the store %d times, want once", n)
	}
	if n := f.reads(func() { c.Lookup(ctx, "c@contoso.test") }); n != 0 {
		t.Errorf("the newest entry reached the store %d times, want 0", n)
	}
}
