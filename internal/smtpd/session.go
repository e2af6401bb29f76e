package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"hve/internal/access"
	"hve/internal/directory"
	"hve/internal/limits"
	"hve/internal/reply"
	"hve/internal/store"
	"hve/internal/trace"
)

// session is one SMTP connection. go-smtp makes a new one after STARTTLS.
type session struct {
	e        *Endpoint
	conn     *smtp.Conn
	clientIP netip.Addr
	ip       string // clientIP as trace and Received headers show it
	log      *slog.Logger

	// Set when the sign-in succeeds; nil until then.
	id     *access.Identity
	sender *sender
	// key is the identity in the endpoint's registry (guarded by e.mu).
	key identityKey

	// The transaction in progress: its limits (read at MAIL), sender and
	// recipients, and whether one of them is external.
	policy   policy
	from     string
	rcpts    []string
	external bool

	// mu guards what Logout releases, and the sign-in that takes it:
	// Logout may come from another goroutine (an admin revoking the
	// session, or the server closing) while a command runs.
	mu        sync.Mutex
	slot      limits.Slot          // the mailbox's connection slot
	held      []limits.Reservation // recipients reserved for the transaction
	loggedOut bool
}

func (e *Endpoint) newSession(c *smtp.Conn) (smtp.Session, error) {
	ip := remoteIP(c.Conn().RemoteAddr())
	shown := ip.String()
	if !ip.IsValid() {
		shown = c.Conn().RemoteAddr().String()
	}
	return &session{e: e, conn: c, clientIP: ip, ip: shown,
		log: e.log.With("endpoint", string(e.cfg.Endpoint), "client_ip", shown)}, nil
}

// remoteIP is the client's address; IPv4-mapped IPv6 addresses are
// unmapped, so that IPv4 networks match them.
func remoteIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *session) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// ctx bounds one command's store work.
func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.e.ctx, 30*time.Second)
}

// client reports whether this is the standard client endpoint.
func (s *session) client() bool { return s.e.cfg.Endpoint == directory.EndpointClient }

// AuthMechanisms offers nothing before STARTTLS, so EHLO lists AUTH only on
// an encrypted connection.
func (s *session) AuthMechanisms() []string {
	if !s.tls() {
		return nil
	}
	return []string{sasl.Login, sasl.Plain, mechXOAUTH2, mechOAUTHBEARER}
}

// Auth starts a SASL exchange. Mechanism names are case-insensitive.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.tls() {
		return nil, reply.MustStartTLS.Err()
	}
	switch mech = strings.ToUpper(mech); mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, pw string) error {
			if identity != "" && !strings.EqualFold(identity, username) {
				s.log.Info("sign-in refused", "user", username, "reason", "PLAIN authorization identity differs from the username")
				return reply.AuthFailed.Err()
			}
			return s.signIn(access.Basic, mech, username, pw)
		}), nil
	case sasl.Login:
		return newLoginServer(func(username, pw string) error {
			return s.signIn(access.Basic, mech, username, pw)
		}), nil
	case mechXOAUTH2:
		return newOAuthServer(mech, parseXOAUTH2, func(user, token string) error {
			return s.signIn(access.OAuth, mech, user, token)
		}), nil
	case mechOAUTHBEARER:
		return newOAuthServer(mech, parseOAUTHBEARER, func(user, token string) error {
			return s.signIn(access.OAuth, mech, user, token)
		}), nil
	}
	return nil, reply.UnsupportedMechanism.Err()
}

// signIn asks the Authenticator, and on success takes the mailbox's
// connection slot (client endpoint) and registers the session.
func (s *session) signIn(method access.Method, mech, username, secret string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	a := access.Attempt{Endpoint: s.e.cfg.Endpoint, Method: method, Username: username, ClientIP: s.clientIP}
	if method == access.OAuth {
		a.Token = secret
	} else {
		a.Password = secret
	}
	res := s.e.auth.Check(ctx, a)
	if !res.OK() {
		// The checker has logged the refusal and traced it.
		return res.Reply
	}
	snd, key, err := s.e.senderOf(res.Identity)
	if err != nil {
		// The Authenticator let through an identity this endpoint cannot
		// serve: a bug, refused as a failed sign-in.
		s.log.Error("sign-in: unusable identity", "user", username, "err", err)
		return reply.AuthFailed.Err()
	}
	var slot limits.Slot
	if s.e.connections != nil {
		slot, err = s.e.connections.Acquire(ctx, limitKey(snd))
		if errors.Is(err, limits.ErrExceeded) {
			s.log.Info("sign-in refused", "user", username, "mechanism", mech, "reason", "too many connections", "reply", reply.ClientConcurrency.Name)
			return reply.ClientConcurrency.Format(s.e.cfg.MaxConnections)
		}
		if err != nil {
			s.log.Error("sign-in: connection limit unavailable", "user", username, "err", err)
			return reply.AuthTemporaryFailure.Err()
		}
	}
	// Under s.mu, so that a Logout from another goroutine comes either
	// before (and nothing is registered or held) or after (and it
	// unregisters and releases).
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loggedOut {
		if slot != nil {
			slot.Release(ctx)
		}
		return reply.AuthTemporaryFailure.Err()
	}
	s.slot = slot
	s.id, s.sender = res.Identity, snd
	s.log = s.log.With("user", snd.address)
	s.e.register(s, key)
	s.log.Info("signed in", "mechanism", mech, "app", res.Identity.App)
	return nil
}

// senderOf checks that the identity belongs on this endpoint and returns
// it as a sender and a registry key.
func (e *Endpoint) senderOf(id *access.Identity) (*sender, identityKey, error) {
	switch {
	case id == nil:
		return nil, identityKey{}, errors.New("no identity")
	case e.cfg.Endpoint == directory.EndpointHVE && id.Account != nil:
		a := id.Account
		return &sender{tenantID: a.TenantID, accountID: a.ID, displayName: a.DisplayName, address: a.Address,
				aliases: a.Aliases, replyTo: a.ReplyTo},
			identityKey{tenantID: a.TenantID, kind: directory.KindAccount, id: a.ID}, nil
	case e.cfg.Endpoint == directory.EndpointClient && id.Mailbox != nil:
		m := id.Mailbox
		return &sender{tenantID: m.TenantID, mailboxID: m.ID, displayName: m.DisplayName, address: m.Address, aliases: m.Aliases},
			identityKey{tenantID: m.TenantID, kind: directory.KindMailbox, id: m.ID}, nil
	}
	return nil, identityKey{}, fmt.Errorf("a %s identity cannot use the %s endpoint", id.Kind, e.cfg.Endpoint)
}

// limitKey names the sender in the per-mailbox counters.
func limitKey(snd *sender) string {
	return fmt.Sprintf("tenant/%d/mailbox/%d", snd.tenantID, snd.mailboxID)
}

// revoke ends the session on an admin's request.
func (s *session) revoke() {
	s.log.Info("session revoked")
	r := reply.SessionRevoked
	s.conn.CloseWithResponse(r.Code, r.Enhanced, r.Text)
}

// Mail starts a transaction.
// A SIZE= over the limit never gets here: go-smtp refuses it through the
// endpoint's MessageTooLarge hook.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.Reset()
	if !s.tls() {
		return reply.MustStartTLS.Err()
	}
	if s.sender == nil {
		return reply.NotAuthenticated.Err()
	}
	if from == "" { // the null sender is for bounces, never an identity's
		return s.refuse("", reply.SenderDenied.Err())
	}
	addr, err := directory.NormalizeAddress(from)
	if err != nil {
		return s.refuse("", reply.InvalidAddress.Format(from))
	}
	if !s.sender.sendsAs(addr) {
		return s.refuse("", reply.SenderDenied.Err())
	}
	if rerr := s.storageLow(); rerr != nil {
		return rerr
	}
	ctx, cancel := s.ctx()
	defer cancel()
	p, err := s.e.policyOf(ctx, s.sender)
	if err != nil {
		s.log.Error("mail: limit settings unavailable", "err", err)
		return reply.StorageUnavailable.Err()
	}
	s.policy = p
	s.from = addr
	return nil
}

// Rcpt adds a recipient if it is inside the organisation and exists (or,
// where the tenant allows external sending, is routed outside), and fits
// the sender's quotas.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	addr, err := directory.NormalizeAddress(to)
	if err != nil {
		return s.refuse(to, reply.InvalidAddress.Format(to))
	}
	for _, r := range s.rcpts {
		if r == addr {
			return nil // a repeated recipient gets one copy and counts once
		}
	}
	if len(s.rcpts) >= s.e.cfg.MaxRecipients {
		return s.refuse(addr, reply.TooManyRecipients.Format(s.e.cfg.MaxRecipients))
	}
	ctx, cancel := s.ctx()
	defer cancel()
	dom, err := s.e.dir.DomainByName(ctx, directory.DomainOf(addr))
	if errors.Is(err, store.ErrNotFound) || err == nil && dom.TenantID != s.sender.tenantID {
		return s.rcptExternal(ctx, addr)
	}
	if err != nil {
		s.log.Error("rcpt: domain lookup failed", "rcpt", addr, "err", err)
		return reply.StorageUnavailable.Err()
	}
	entry, err := s.e.dir.Lookup(ctx, addr)
	switch {
	case err == nil && entry.Kind != directory.KindAccount:
		// a mailbox or group of this tenant (its domain is this tenant's)
	case err == nil || errors.Is(err, store.ErrNotFound):
		// HVE accounts cannot receive; unknown addresses are passed on
		// only where the domain is shared with another mail system.
		if err == nil || dom.Type == directory.Authoritative {
			return s.refuse(addr, reply.RecipientNotFound.Err())
		}
	default:
		s.log.Error("rcpt: address lookup failed", "rcpt", addr, "err", err)
		return reply.StorageUnavailable.Err()
	}
	if rerr := s.reserve(ctx, addr, s.recipientChecks(false, false)); rerr != nil {
		return rerr
	}
	s.rcpts = append(s.rcpts, addr)
	return nil
}

// rcptExternal deals with a recipient outside the tenant's accepted
// domains. Mailboxes never send outside; HVE accounts only where the
// tenant's external sending mode is limited and an outbound smarthost
// carries the mail, within the external quotas. The recipient is queued
// with the others; delivery routes it to the smarthost.
func (s *session) rcptExternal(ctx context.Context, addr string) error {
	set := s.policy.tenant.Settings
	switch {
	case s.client():
		return s.refuse(addr, reply.MailboxRelayDenied.Err())
	case !set.ExternalLimitedMode():
		return s.refuse(addr, reply.ExternalRecipient.Err())
	case set.OutboundSmarthost == "":
		return s.refuse(addr, reply.ExternalNoSmarthost.Err())
	}
	if rerr := s.reserve(ctx, addr, s.recipientChecks(true, !s.external)); rerr != nil {
		return rerr
	}
	s.external = true
	s.rcpts = append(s.rcpts, addr)
	return nil
}

// storageLow refuses a transaction while the queue's disk is below its
// free space minimum. It writes no trace event: trace lives on the same
// disk.
func (s *session) storageLow() error {
	if s.e.cfg.StorageLow == nil {
		return nil
	}
	if low, reason := s.e.cfg.StorageLow(); low {
		s.log.Debug("transaction refused: disk space low", "reason", reason)
		return reply.StorageLow.Err()
	}
	return nil
}

// Data reads, checks and queues the message.
func (s *session) Data(r io.Reader) error {
	// Checked again at DATA, as the disk may have filled since MAIL: here,
	// before the message is read into memory (go-smtp discards it), and
	// once more before it is queued.
	if rerr := s.storageLow(); rerr != nil {
		return rerr
	}
	raw, err := io.ReadAll(r)
	if errors.Is(err, smtp.ErrDataTooLarge) {
		return s.refuse(strings.Join(s.rcpts, ","), reply.MessageTooLarge.Err())
	}
	if err != nil {
		return err // the connection broke; go-smtp ends the session
	}
	now := s.e.cfg.Clock().UTC()
	msg, rerr := prepare(raw, envelope{
		sender: s.sender, from: s.from, rcpts: s.rcpts,
		helo: s.conn.Hostname(), clientIP: s.ip, hostname: s.e.cfg.Hostname,
	}, now)
	if rerr != nil {
		return s.refuse(strings.Join(s.rcpts, ","), rerr)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	detail := "accepted from " + s.ip + " (" + s.sender.address + ")"
	if s.e.pacer != nil {
		// Over the mailbox's message rate, the message is accepted and its
		// delivery paced. (A message that then fails to queue has used its
		// place in the pace: a small delay for the next, never an excess.)
		at, err := s.e.pacer.Pace(ctx, limitKey(s.sender))
		if err != nil {
			s.log.Error("message pacing unavailable", "err", err)
			return reply.StorageUnavailable.Err()
		}
		if !at.IsZero() {
			msg.NotBefore = at.UTC()
			detail += fmt.Sprintf("; paced: delivery from %s (over %d messages a minute)",
				msg.NotBefore.Format("2006-01-02 15:04:05 UTC"), s.e.cfg.MessagesPerMinute)
		}
	}
	events := make([]trace.Event, len(msg.Recipients))
	for i, rcpt := range msg.Recipients {
		events[i] = trace.Event{
			TenantID: msg.TenantID, Time: msg.ReceivedAt, QueueID: msg.QueueID, MessageID: msg.MessageID,
			Sender: msg.Sender, Recipient: rcpt, Event: trace.EventReceived, Status: trace.StatusPending,
			Detail: detail, ClientIP: s.ip, Subject: msg.Subject, Size: msg.Size,
		}
	}
	if rerr := s.storageLow(); rerr != nil {
		return rerr
	}
	// From here this goroutine decides the reservations' fate: a Logout
	// from another goroutine (a revocation) while the message is being
	// queued must not give back the units of a message that gets queued.
	held := s.takeHeld()
	if err := s.e.spool.Submit(ctx, msg, events); err != nil {
		s.log.Error("message not queued", "err", err)
		release(held, s.log)
		if errors.Is(err, store.ErrFull) {
			return reply.StorageFull.Err()
		}
		return reply.StorageUnavailable.Err()
	}
	for _, r := range held {
		if err := r.Commit(ctx); err != nil {
			s.log.Error("recipient quota: commit failed", "err", err)
		}
	}
	s.log.Info("message queued", "queue_id", msg.QueueID, "message_id", msg.MessageID, "recipients", len(msg.Recipients),
		"size", msg.Size, "not_before", msg.NotBefore)
	// go-smtp sends an error's code and text as the reply, so a 250 with
	// hve's own text (naming the queue id) travels as an "error".
	return reply.Accepted.Format(msg.QueueID)
}

// takeHeld takes the transaction's reservations out of the session.
func (s *session) takeHeld() []limits.Reservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.held
	s.held = nil
	return held
}

// releaseRecipients gives back the recipients of a dropped transaction.
func (s *session) releaseRecipients() {
	release(s.takeHeld(), s.log)
}

// release gives reservations back.
func release(held []limits.Reservation, log *slog.Logger) {
	for _, r := range held {
		if err := r.Release(context.Background()); err != nil {
			log.Error("recipient quota: release failed", "err", err)
		}
	}
}

// refuse records a submission refusal in trace and returns the reply.
func (s *session) refuse(rcpt string, e *smtp.SMTPError) *smtp.SMTPError {
	line := reply.Line(e)
	s.log.Info("submission refused", "from", s.from, "rcpt", rcpt, "reply", line)
	if s.sender != nil {
		s.e.trace.Record(trace.Event{
			TenantID: s.sender.tenantID, Time: s.e.cfg.Clock().UTC(), Sender: s.sender.address,
			Recipient: rcpt, Event: trace.EventRejected, Status: trace.StatusRejected,
			Detail: line, ClientIP: s.ip,
		})
	}
	return e
}

// Reset forgets the transaction in progress.
func (s *session) Reset() {
	s.from = ""
	s.rcpts = nil
	s.external = false
	s.releaseRecipients()
}

// Logout ends the session: it leaves the registry and gives back what it
// held. go-smtp calls it once per session, from the serving goroutine or
// from the one closing the connection.
func (s *session) Logout() error {
	s.mu.Lock()
	s.loggedOut = true
	slot := s.slot
	s.slot = nil
	s.mu.Unlock()
	s.e.unregister(s)
	s.releaseRecipients()
	if slot != nil {
		if err := slot.Release(context.Background()); err != nil {
			s.log.Error("connection limit: release failed", "err", err)
		}
	}
	return nil
}
