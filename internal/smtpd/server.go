// Package smtpd is the SMTP submission endpoint, in its two kinds: the HVE
// endpoint (HVE accounts, port 587) and the standard client endpoint
// (mailboxes, port 588). It holds the listener, the sessions (STARTTLS,
// AUTH, envelope and content policy, per-mailbox limits) and the hand-over
// of accepted messages to the spool. Who may sign in is decided by an
// Authenticator (package access); delivery is none of its business.
package smtpd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"hve/internal/access"
	"hve/internal/directory"
	"hve/internal/limits"
	"hve/internal/queue"
	"hve/internal/reply"
	"hve/internal/trace"
)

// Directory is what sessions need to know about the organisation to check
// recipients, and the tenant settings and account thresholds their limits
// come from.
type Directory interface {
	DomainByName(ctx context.Context, name string) (directory.Domain, error)
	Lookup(ctx context.Context, address string) (directory.Entry, error)
	Tenant(ctx context.Context, id int64) (directory.Tenant, error)
	Account(ctx context.Context, tenantID, id int64) (directory.Account, error)
}

// Authenticator decides sign-ins (access.Checker implements it).
type Authenticator interface {
	Check(ctx context.Context, a access.Attempt) access.Result
}

// Spool takes accepted messages; Submit returns once they are durable.
type Spool interface {
	Submit(ctx context.Context, msg *queue.Message, events []trace.Event) error
}

// Recorder takes trace events that are not part of a queued message, such
// as submission refusals.
type Recorder interface {
	Record(e trace.Event)
}

// Defaults of the endpoints (spec sections 2 to 4).
const (
	DefaultMaxRecipients       = 50  // per message, HVE endpoint
	DefaultClientMaxRecipients = 500 // per message, standard client endpoint
	DefaultMaxMessageBytes     = 10 * 1024 * 1024
	// Per mailbox, standard client endpoint.
	DefaultMessagesPerMinute = 30
	DefaultRecipientsPerDay  = 10000
	DefaultMaxConnections    = 3
)

// Config configures an endpoint.
type Config struct {
	// Endpoint is the kind of endpoint: directory.EndpointHVE (the
	// default) or directory.EndpointClient.
	Endpoint directory.Endpoint
	// Hostname names this server in the greeting and Received headers.
	Hostname string
	// TLS is required: AUTH and MAIL are refused until STARTTLS.
	TLS *tls.Config
	// MaxRecipients per message; 0 means 50 (HVE) or 500 (client).
	MaxRecipients   int
	MaxMessageBytes int64
	// ReadTimeout and WriteTimeout bound each command; idle clients are
	// disconnected after ReadTimeout.
	ReadTimeout, WriteTimeout time.Duration
	// The standard client endpoint's limits per mailbox; 0 means the
	// default. They do not apply to the HVE endpoint.
	// MessagesPerMinute: beyond it, messages are accepted and their
	// delivery is paced to this rate.
	MessagesPerMinute int
	// RecipientsPerDay: envelope recipients in any 24 hours.
	RecipientsPerDay int
	// MaxConnections: signed-in connections at once.
	MaxConnections int
	// Clock tells the time (limits, Received and Date headers); nil
	// means time.Now.
	Clock func() time.Time
	// Limits counts the quotas: recipients per day per tenant and account,
	// external recipients and messages (HVE endpoint), recipients per
	// rolling day per mailbox (client endpoint). A node's endpoints share
	// one engine over the store's counters; nil gives the endpoint an
	// engine of its own over in-memory counters (one process only).
	Limits *limits.Engine
	// StorageLow, if set, reports whether the queue's disk is below its
	// free space minimum (queue.SpaceGuard.Low): while it is, MAIL and
	// DATA are answered reply.StorageLow, so that a queue growing during
	// a long outage of a next hop never fills the disk.
	StorageLow func() (bool, string)
	// SettingsTTL is how long limit settings are reused before they are
	// read again; 0 means DefaultSettingsTTL, negative means every
	// transaction reads them.
	SettingsTTL time.Duration
}

// Endpoint is one SMTP submission endpoint.
type Endpoint struct {
	cfg    Config
	dir    Directory
	auth   Authenticator
	spool  Spool
	trace  Recorder
	log    *slog.Logger
	ctx    context.Context
	server *smtp.Server

	// limits counts the quotas; settings caches what they come from.
	limits   *limits.Engine
	settings *settingsCache
	// The per-mailbox connection and pace limits, in memory on each
	// node; nil on the HVE endpoint.
	connections limits.Slots
	pacer       limits.Pacer

	// sessions holds the signed-in sessions by identity, so that an
	// admin can end them (CloseSessions).
	mu       sync.Mutex
	sessions map[identityKey]map[*session]struct{}
}

// identityKey names a signed-in identity.
type identityKey struct {
	tenantID int64
	kind     directory.Kind
	id       int64
}

// New builds the endpoint. ctx bounds the work of every session (store
// calls are cancelled when it ends).
func New(ctx context.Context, cfg Config, dir Directory, auth Authenticator, spool Spool, rec Recorder, log *slog.Logger) *Endpoint {
	if cfg.Endpoint == "" {
		cfg.Endpoint = directory.EndpointHVE
	}
	client := cfg.Endpoint == directory.EndpointClient
	if cfg.MaxRecipients == 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
		if client {
			cfg.MaxRecipients = DefaultClientMaxRecipients
		}
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 5 * time.Minute
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = time.Minute
	}
	if cfg.MessagesPerMinute == 0 {
		cfg.MessagesPerMinute = DefaultMessagesPerMinute
	}
	if cfg.RecipientsPerDay == 0 {
		cfg.RecipientsPerDay = DefaultRecipientsPerDay
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Limits == nil {
		cfg.Limits = limits.NewEngine(limits.NewMemCounters(), limits.EngineConfig{Clock: cfg.Clock, Log: log})
	}
	if cfg.SettingsTTL == 0 {
		cfg.SettingsTTL = DefaultSettingsTTL
	}
	e := &Endpoint{cfg: cfg, dir: dir, auth: auth, spool: spool, trace: rec, log: log, ctx: ctx,
		limits: cfg.Limits, settings: newSettingsCache(cfg.SettingsTTL),
		sessions: map[identityKey]map[*session]struct{}{}}
	if client {
		e.connections = limits.NewConcurrency(int64(cfg.MaxConnections))
		e.pacer = limits.NewRatePacer(int64(cfg.MessagesPerMinute), time.Minute, cfg.Clock)
	}

	s := smtp.NewServer(smtp.BackendFunc(e.newSession))
	s.Domain = cfg.Hostname
	s.TLSConfig = cfg.TLS
	s.MaxMessageBytes = cfg.MaxMessageBytes
	s.MessageTooLarge = func(c *smtp.Conn) *smtp.SMTPError {
		if sess, ok := c.Session().(*session); ok {
			return sess.refuse(strings.Join(sess.rcpts, ","), reply.MessageTooLarge.Err())
		}
		return reply.MessageTooLarge.Err()
	}
	s.InvalidSASLResponse = invalidSASLResponse
	// The recipient cap is enforced by the session, with the reply of the
	// spec and without counting duplicates.
	s.MaxRecipients = 0
	s.ReadTimeout = cfg.ReadTimeout
	s.WriteTimeout = cfg.WriteTimeout
	s.EnableSMTPUTF8 = true
	// AUTH before STARTTLS must get the spec's 530 reply, which the session
	// gives; the library would answer 523 on its own. The session offers no
	// mechanism until TLS is up, so nothing is advertised in the clear.
	s.AllowInsecureAuth = true
	s.ErrorLog = slogAdapter{log}
	e.server = s
	return e
}

// invalidSASLResponse gives XOAUTH2 and OAUTHBEARER data that is not base64
// its own reply (go-smtp decodes the base64 before the session sees it),
// and keeps the STARTTLS rule ahead of any decoding.
func invalidSASLResponse(c *smtp.Conn, mech string) *smtp.SMTPError {
	if _, ok := c.TLSConnectionState(); !ok {
		return reply.MustStartTLS.Err()
	}
	switch mech {
	case mechXOAUTH2, mechOAUTHBEARER:
		return reply.OAuthBadBase64.Format(mech)
	}
	return nil
}

// Kind is which endpoint this is.
func (e *Endpoint) Kind() directory.Endpoint { return e.cfg.Endpoint }

// Serve accepts connections on the listener until Close.
func (e *Endpoint) Serve(l net.Listener) error {
	return e.server.Serve(l)
}

// Close stops the listener and closes open sessions.
func (e *Endpoint) Close() error {
	return e.server.Close()
}

// Shutdown stops accepting and waits for open sessions to end, or ctx.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	return e.server.Shutdown(ctx)
}

// CloseSessions ends every session signed in as the identity (an HVE
// account or a mailbox of the tenant): each is sent reply.SessionRevoked
// and its connection is closed. It returns how many sessions were ended,
// once their connections are closed (and their limits released).
func (e *Endpoint) CloseSessions(tenantID int64, kind directory.Kind, id int64) int {
	key := identityKey{tenantID: tenantID, kind: kind, id: id}
	e.mu.Lock()
	list := make([]*session, 0, len(e.sessions[key]))
	for s := range e.sessions[key] {
		list = append(list, s)
	}
	e.mu.Unlock()
	// Outside e.mu: closing a session logs it out, which unregisters it.
	var wg sync.WaitGroup
	for _, s := range list {
		wg.Go(s.revoke)
	}
	wg.Wait()
	return len(list)
}

// register records a signed-in session.
func (e *Endpoint) register(s *session, key identityKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s.key = key
	set := e.sessions[key]
	if set == nil {
		set = map[*session]struct{}{}
		e.sessions[key] = set
	}
	set[s] = struct{}{}
}

// unregister forgets a session; it may not be registered.
func (e *Endpoint) unregister(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if set := e.sessions[s.key]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(e.sessions, s.key)
		}
	}
}

// slogAdapter lets go-smtp's error log go to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) {
	a.log.Warn("smtp: " + fmt.Sprintf(format, v...))
}
func (a slogAdapter) Println(v ...any) { a.log.Warn("smtp: " + fmt.Sprint(v...)) }
