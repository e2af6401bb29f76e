package smtpd

// The endpoint's side of the limits engine: which limits apply to a
// sender's transaction, the settings they come from (cached briefly, so
// that a transaction costs no directory read), and the reservation of
// recipients at RCPT. docs/limits.md lists every limit.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"hve/internal/directory"
	"hve/internal/limits"
	"hve/internal/reply"
)

// DefaultSettingsTTL is how long an endpoint reuses a tenant's and an
// account's limit settings before reading them again. Changes made through
// this node's admin API apply at once (the server calls SettingsChanged);
// changes made on another node apply within this time.
const DefaultSettingsTTL = time.Second

// The windows of the endpoint's counters.
var (
	// mailboxWindow: the standard client endpoint's recipients per
	// mailbox, in any 24 hours, counted per minute.
	mailboxWindow = limits.Rolling(24*time.Hour, time.Minute)
	// externalRateWindow: messages with external recipients per account,
	// in any minute, counted per second.
	externalRateWindow = limits.Rolling(time.Minute, time.Second)
)

// policy is what limits a transaction: the sender's tenant settings and
// account thresholds, read when the transaction starts.
type policy struct {
	tenant  directory.Tenant
	account directory.Account // HVE endpoint only
}

// settingsCache keeps tenants and accounts read for policies for a short
// time. Its TTL is measured in real time, not the endpoint's clock, which
// tests stop.
type settingsCache struct {
	ttl time.Duration // <= 0: no caching

	mu       sync.Mutex
	tenants  map[int64]cached[directory.Tenant]
	accounts map[int64]cached[directory.Account]
}

type cached[T any] struct {
	v       T
	expires time.Time
}

func newSettingsCache(ttl time.Duration) *settingsCache {
	return &settingsCache{ttl: ttl, tenants: map[int64]cached[directory.Tenant]{}, accounts: map[int64]cached[directory.Account]{}}
}

// get returns a cached value or loads and caches it.
func get[T any](c *settingsCache, m map[int64]cached[T], id int64, load func() (T, error)) (T, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := m[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.v, nil
	}
	v, err := load()
	if err != nil || c.ttl <= 0 {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m) > 100_000 { // bound the memory of a node serving many identities
		clear(m)
	}
	m[id] = cached[T]{v: v, expires: now.Add(c.ttl)}
	return v, nil
}

// forget drops a tenant and every cached account (accounts are cached by
// id alone; dropping them all is simpler than knowing their tenants, and
// admin changes are rare).
func (c *settingsCache) forget(tenantID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tenants, tenantID)
	clear(c.accounts)
}

// SettingsChanged makes the endpoint read a tenant's settings and its
// accounts' thresholds again for the next transaction.
func (e *Endpoint) SettingsChanged(tenantID int64) {
	e.settings.forget(tenantID)
}

// policyOf reads what limits a sender's transactions. A mailbox's limits
// come from the endpoint's configuration alone.
func (e *Endpoint) policyOf(ctx context.Context, snd *sender) (policy, error) {
	var p policy
	if snd.accountID == 0 {
		return p, nil
	}
	var err error
	p.tenant, err = get(e.settings, e.settings.tenants, snd.tenantID, func() (directory.Tenant, error) {
		return e.dir.Tenant(ctx, snd.tenantID)
	})
	if err != nil {
		return p, fmt.Errorf("tenant %d: %w", snd.tenantID, err)
	}
	p.account, err = get(e.settings, e.settings.accounts, snd.accountID, func() (directory.Account, error) {
		return e.dir.Account(ctx, snd.tenantID, snd.accountID)
	})
	if err != nil {
		return p, fmt.Errorf("account %d: %w", snd.accountID, err)
	}
	return p, nil
}

// check is one limit a recipient must fit, and the reply when it does not.
type check struct {
	limit limits.Limit
	reply func(*limits.ExceededError) *smtp.SMTPError
}

func accountSubject(snd *sender) limits.Subject {
	return limits.Subject{TenantID: snd.tenantID, Kind: "account", ID: snd.accountID, Name: snd.address}
}

// recipientChecks are the limits an envelope recipient counts against:
// internal or external, on the HVE endpoint; every recipient of a
// mailbox on the client endpoint. firstExternal is set for the first
// external recipient of the message, which counts the message in the
// external message rate. Unlimited counters are left out, and cost
// nothing.
func (s *session) recipientChecks(external, firstExternal bool) []check {
	snd, p := s.sender, s.policy
	if s.client() {
		return []check{{
			limit: limits.Limit{Key: fmt.Sprintf("mailbox/%d/rcpt", snd.mailboxID), Max: int64(s.e.cfg.RecipientsPerDay), Window: mailboxWindow,
				Subject: limits.Subject{TenantID: snd.tenantID, Kind: "mailbox", ID: snd.mailboxID, Name: snd.address}},
			reply: func(ex *limits.ExceededError) *smtp.SMTPError {
				frees := "later"
				if !ex.FreesAt.IsZero() {
					frees = ex.FreesAt.UTC().Format("2006-01-02 15:04 UTC")
				}
				return reply.MailboxRecipientQuota.Format(ex.Limit, snd.address, frees)
			},
		}}
	}
	var checks []check
	if external {
		checks = append(checks, check{
			limit: limits.Limit{Key: fmt.Sprintf("account/%d/rcpt-external", snd.accountID), Max: directory.DefaultExternalRecipientsPerDay,
				Window: limits.CalendarDay, Subject: accountSubject(snd)},
			reply: func(ex *limits.ExceededError) *smtp.SMTPError {
				return reply.ExternalRecipientQuota.Format(ex.Limit, snd.address)
			},
		})
		if firstExternal {
			checks = append(checks, check{
				limit: limits.Limit{Key: fmt.Sprintf("account/%d/msg-external", snd.accountID), Max: directory.DefaultExternalMessagesPerMinute,
					Window: externalRateWindow, Subject: accountSubject(snd)},
				reply: func(ex *limits.ExceededError) *smtp.SMTPError {
					after := "a minute"
					if !ex.FreesAt.IsZero() {
						after = ex.FreesAt.UTC().Format("15:04:05 UTC")
					}
					return reply.ExternalRateLimit.Format(ex.Limit, snd.address, after)
				},
			})
		}
	} else if max := p.tenant.Settings.DailyRecipientLimit; max > 0 {
		checks = append(checks, check{
			limit: limits.Limit{Key: fmt.Sprintf("tenant/%d/rcpt-internal", snd.tenantID), Max: max, Window: limits.CalendarDay,
				Subject: limits.Subject{TenantID: snd.tenantID, Kind: "tenant", ID: snd.tenantID, Name: p.tenant.Name}},
			reply: func(ex *limits.ExceededError) *smtp.SMTPError {
				return reply.TenantDailyRecipientLimit.Format(ex.Limit, p.tenant.Name)
			},
		})
	}
	if max := p.account.DailyRecipientLimit; max > 0 {
		checks = append(checks, check{
			limit: limits.Limit{Key: fmt.Sprintf("account/%d/rcpt", snd.accountID), Max: max, Window: limits.CalendarDay,
				Subject: accountSubject(snd), WarnAt: p.account.WarnAt},
			reply: func(ex *limits.ExceededError) *smtp.SMTPError {
				return reply.AccountDailyRecipientLimit.Format(ex.Limit, snd.address)
			},
		})
	}
	return checks
}

// reserve holds one unit of each check for the recipient until the message
// is queued (committed) or dropped (released). If one check refuses, the
// units taken for this recipient are given back and the refusal is traced
// and returned.
func (s *session) reserve(ctx context.Context, addr string, checks []check) *smtp.SMTPError {
	taken := make([]limits.Reservation, 0, len(checks))
	giveBack := func() {
		for _, r := range taken {
			if err := r.Release(ctx); err != nil {
				s.log.Error("limits: release failed", "err", err)
			}
		}
	}
	for _, c := range checks {
		r, err := s.e.limits.Reserve(ctx, c.limit, 1)
		var ex *limits.ExceededError
		if errors.As(err, &ex) {
			giveBack()
			return s.refuse(addr, c.reply(ex))
		}
		if err != nil {
			giveBack()
			s.log.Error("rcpt: limits unavailable", "rcpt", addr, "limit", c.limit.Key, "err", err)
			return reply.StorageUnavailable.Err()
		}
		taken = append(taken, r)
	}
	if len(taken) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loggedOut { // revoked meanwhile: give it back at once
		giveBack()
		return reply.StorageUnavailable.Err()
	}
	s.held = append(s.held, taken...)
	return nil
}
