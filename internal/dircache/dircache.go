// Package dircache answers the directory reads of hve's hot paths from
// memory: every RCPT looks up its domain and address, every sign-in reads
// the account, its tenant, its policies and groups, and every delivery pass
// resolves addresses, groups and routes. With the directory in the store
// these reads cost more than the rest of a recipient's handling.
//
// The cache never serves a value older than the store's last directory
// change: the store counts its directory changes (store.DirectoryVersion)
// and the cache forgets everything when the count moves. The embedded store
// counts its own writes, so the cache is exact; the PostgreSQL store also
// counts the changes other nodes announce, and the cache keeps values no
// longer than MaxAge in case an announcement is missed.
package dircache

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
)

// DefaultMaxEntries bounds each kind of cached read (addresses, domains,
// ...); past it the kind starts over empty.
const DefaultMaxEntries = 100_000

// Store is a store.Store whose directory reads of the hot paths are
// answered from memory. Everything else, writes included, goes to the
// store it wraps. Values it returns are shared: callers must not modify
// them (slices are copied).
type Store struct {
	store.Store
	version store.DirectoryVersion
	// MaxAge bounds how long a value is kept (0: as long as the version
	// stays).
	maxAge time.Duration
	now    func() time.Time

	mu     sync.Mutex
	seen   uint64 // the version the entries below belong to
	memos  []clearer
	domain memo[string, directory.Domain]
	lookup memo[string, directory.Entry]
	tenant memo[int64, directory.Tenant]
	acct   memo[string, directory.Account]
	acctID memo[[2]int64, directory.Account]
	mbox   memo[string, directory.Mailbox]
	group  memo[[2]int64, directory.Group]
	routes memo[int64, []directory.Route]
	policy memo[policyKey, directory.AuthPolicy]
	ca     memo[int64, []directory.CAPolicy]
	sgs    memo[memberKey, []string]
}

type policyKey struct {
	tenantID int64
	name     string
}

type memberKey struct {
	tenantID int64
	kind     directory.Kind
	id       int64
}

// Options tune a Store. Zero fields take defaults.
type Options struct {
	// MaxAge bounds how long a value is kept; 0 keeps it until the
	// directory version changes.
	MaxAge time.Duration
	// MaxEntries bounds each kind of read [DefaultMaxEntries].
	MaxEntries int
	// Now is the clock [time.Now].
	Now func() time.Time
}

// New wraps st. If st does not count its directory changes (it does not
// implement store.DirectoryVersion), nothing is cached.
func New(st store.Store, opts Options) *Store {
	s := &Store{Store: st, maxAge: opts.MaxAge, now: opts.Now}
	s.version, _ = st.(store.DirectoryVersion)
	if s.now == nil {
		s.now = time.Now
	}
	max := opts.MaxEntries
	if max <= 0 {
		max = DefaultMaxEntries
	}
	s.memos = []clearer{
		s.domain.init(max), s.lookup.init(max), s.tenant.init(max), s.acct.init(max), s.acctID.init(max),
		s.mbox.init(max), s.group.init(max), s.routes.init(max), s.policy.init(max), s.ca.init(max), s.sgs.init(max),
	}
	return s
}

// DomainByName is the store's, from memory.
func (s *Store) DomainByName(ctx context.Context, name string) (directory.Domain, error) {
	return get(s, &s.domain, name, func() (directory.Domain, error) { return s.Store.DomainByName(ctx, name) })
}

// Lookup is the store's, from memory.
func (s *Store) Lookup(ctx context.Context, address string) (directory.Entry, error) {
	return get(s, &s.lookup, address, func() (directory.Entry, error) { return s.Store.Lookup(ctx, address) })
}

// Tenant is the store's, from memory.
func (s *Store) Tenant(ctx context.Context, id int64) (directory.Tenant, error) {
	return get(s, &s.tenant, id, func() (directory.Tenant, error) { return s.Store.Tenant(ctx, id) })
}

// AccountByAddress is the store's, from memory.
func (s *Store) AccountByAddress(ctx context.Context, address string) (directory.Account, error) {
	return get(s, &s.acct, address, func() (directory.Account, error) { return s.Store.AccountByAddress(ctx, address) })
}

// Account is the store's, from memory.
func (s *Store) Account(ctx context.Context, tenantID, id int64) (directory.Account, error) {
	return get(s, &s.acctID, [2]int64{tenantID, id}, func() (directory.Account, error) { return s.Store.Account(ctx, tenantID, id) })
}

// MailboxByAddress is the store's, from memory.
func (s *Store) MailboxByAddress(ctx context.Context, address string) (directory.Mailbox, error) {
	return get(s, &s.mbox, address, func() (directory.Mailbox, error) { return s.Store.MailboxByAddress(ctx, address) })
}

// Group is the store's, from memory.
func (s *Store) Group(ctx context.Context, tenantID, id int64) (directory.Group, error) {
	return get(s, &s.group, [2]int64{tenantID, id}, func() (directory.Group, error) { return s.Store.Group(ctx, tenantID, id) })
}

// Routes is the store's, from memory.
func (s *Store) Routes(ctx context.Context, tenantID int64) ([]directory.Route, error) {
	list, err := get(s, &s.routes, tenantID, func() ([]directory.Route, error) { return s.Store.Routes(ctx, tenantID) })
	return slices.Clone(list), err
}

// AuthPolicyByName is the store's, from memory.
func (s *Store) AuthPolicyByName(ctx context.Context, tenantID int64, name string) (directory.AuthPolicy, error) {
	return get(s, &s.policy, policyKey{tenantID, name}, func() (directory.AuthPolicy, error) {
		return s.Store.AuthPolicyByName(ctx, tenantID, name)
	})
}

// CAPolicies is the store's, from memory.
func (s *Store) CAPolicies(ctx context.Context, tenantID int64) ([]directory.CAPolicy, error) {
	list, err := get(s, &s.ca, tenantID, func() ([]directory.CAPolicy, error) { return s.Store.CAPolicies(ctx, tenantID) })
	return slices.Clone(list), err
}

// SecurityGroupsOf is the store's, from memory.
func (s *Store) SecurityGroupsOf(ctx context.Context, tenantID int64, kind directory.Kind, id int64) ([]string, error) {
	list, err := get(s, &s.sgs, memberKey{tenantID, kind, id}, func() ([]string, error) {
		return s.Store.SecurityGroupsOf(ctx, tenantID, kind, id)
	})
	return slices.Clone(list), err
}

// get answers a read from m, or from read (remembering the answer). An
// answer is remembered only if the directory version did not move while
// it was read: a change committed meanwhile may be missing from it.
// Answers of ErrNotFound are remembered too (unknown recipients are
// common); other errors are not.
func get[K comparable, V any](s *Store, m *memo[K, V], key K, read func() (V, error)) (V, error) {
	if s.version == nil {
		return read()
	}
	v := s.version.DirectoryVersion()
	now := s.now()
	s.mu.Lock()
	if v != s.seen {
		for _, c := range s.memos {
			c.clear()
		}
		s.seen = v
	}
	if e, ok := m.m[key]; ok && (s.maxAge <= 0 || now.Sub(e.at) < s.maxAge) {
		s.mu.Unlock()
		return e.val, e.err
	}
	s.mu.Unlock()

	val, err := read()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return val, err
	}
	s.mu.Lock()
	if s.version.DirectoryVersion() == v && s.seen == v {
		m.put(key, entry[V]{val: val, err: err, at: now})
	}
	s.mu.Unlock()
	return val, err
}

// memo is one kind of cached read.
type memo[K comparable, V any] struct {
	m   map[K]entry[V]
	max int
}

type entry[V any] struct {
	val V
	err error
	at  time.Time
}

type clearer interface{ clear() }

func (m *memo[K, V]) init(max int) clearer {
	m.max = max
	m.m = make(map[K]entry[V])
	return m
}

func (m *memo[K, V]) clear() { clear(m.m) }

func (m *memo[K, V]) put(key K, e entry[V]) {
	if len(m.m) >= m.max {
		clear(m.m)
	}
	m.m[key] = e
}
