package smtpd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/reply"
	"hve/internal/store"
	"hve/internal/trace"
)

// session is one SMTP connection. go-smtp makes a new one after STARTTLS.
type session struct {
	e        *Endpoint
	conn     *smtp.Conn
	clientIP string
	log      *slog.Logger

	account *directory.Account // nil until AUTH succeeds

	// The transaction in progress.
	from  string
	rcpts []string
}

func (e *Endpoint) newSession(c *smtp.Conn) (smtp.Session, error) {
	ip := c.Conn().RemoteAddr().String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	return &session{e: e, conn: c, clientIP: ip, log: e.log.With("client_ip", ip)}, nil
}

func (s *session) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// ctx bounds one command's store work.
func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.e.ctx, 30*time.Second)
}

// AuthMechanisms offers nothing before STARTTLS, so EHLO lists AUTH only on
// an encrypted connection.
func (s *session) AuthMechanisms() []string {
	if !s.tls() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a SASL exchange.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.tls() {
		return nil, reply.MustStartTLS.Err()
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, pw string) error {
			if identity != "" && !strings.EqualFold(identity, username) {
				s.log.Info("sign-in refused", "user", username, "reason", "PLAIN authorization identity differs from the username")
				return reply.AuthFailed.Err()
			}
			return s.login(username, pw)
		}), nil
	case sasl.Login:
		return newLoginServer(s.login), nil
	}
	return nil, reply.UnsupportedMechanism.Err()
}

// dummyHash is verified against when there is no account, so that a wrong
// username takes as long as a wrong password (no account enumeration by timing).
var dummyHash, _ = password.Hash("hve-dummy-password-for-constant-time")

// login checks basic-auth credentials and signs the session in.
func (s *session) login(username, pw string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	refuse := func(r *reply.Reply, why string) error {
		s.log.Info("sign-in refused", "user", username, "reason", why, "reply", r.Name)
		return r.Err()
	}
	addr, err := directory.NormalizeAddress(username)
	if err != nil {
		password.Verify(dummyHash, pw)
		return refuse(reply.AuthFailed, "username is not an address")
	}
	acc, err := s.e.dir.AccountByAddress(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		if mb, err := s.e.dir.MailboxByAddress(ctx, addr); err == nil && mb.PasswordHash != "" {
			if password.Verify(mb.PasswordHash, pw) == nil {
				return refuse(reply.MailboxOnHVEEndpoint, "a mailbox signed in on the HVE endpoint")
			}
			return refuse(reply.AuthFailed, "wrong password for a mailbox")
		}
		password.Verify(dummyHash, pw)
		return refuse(reply.AuthFailed, "no HVE account has this address")
	}
	if err != nil {
		s.log.Error("sign-in: directory lookup failed", "user", addr, "err", err)
		return reply.AuthTemporaryFailure.Err()
	}
	if err := password.Verify(acc.PasswordHash, pw); err != nil {
		if !errors.Is(err, password.ErrMismatch) {
			s.log.Error("sign-in: stored password hash is unusable", "user", addr, "err", err)
		}
		return refuse(reply.AuthFailed, "wrong password")
	}
	if !acc.Enabled {
		return refuse(reply.AccountLocked, "account is disabled")
	}
	s.account = &acc
	s.log = s.log.With("account", acc.Address)
	s.log.Info("signed in", "mechanism", "basic")
	return nil
}

// Mail starts a transaction.
// A SIZE= over the limit never gets here: go-smtp refuses it through the
// endpoint's MessageTooLarge hook.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.Reset()
	if !s.tls() {
		return reply.MustStartTLS.Err()
	}
	if s.account == nil {
		return reply.NotAuthenticated.Err()
	}
	if from == "" { // the null sender is for bounces, never an account's
		return s.refuse("", reply.SenderDenied.Err())
	}
	addr, err := directory.NormalizeAddress(from)
	if err != nil {
		return s.refuse("", reply.InvalidAddress.Format(from))
	}
	if !s.account.SendsAs(addr) {
		return s.refuse("", reply.SenderDenied.Err())
	}
	s.from = addr
	return nil
}

// Rcpt adds a recipient if it is inside the organisation and exists.
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
	if errors.Is(err, store.ErrNotFound) || err == nil && dom.TenantID != s.account.TenantID {
		return s.refuse(addr, reply.ExternalRecipient.Err())
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
	s.rcpts = append(s.rcpts, addr)
	return nil
}

// Data reads, checks and queues the message.
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if errors.Is(err, smtp.ErrDataTooLarge) {
		return s.refuse(strings.Join(s.rcpts, ","), reply.MessageTooLarge.Err())
	}
	if err != nil {
		return err // the connection broke; go-smtp ends the session
	}
	msg, rerr := prepare(raw, envelope{
		account: s.account, from: s.from, rcpts: s.rcpts,
		helo: s.conn.Hostname(), clientIP: s.clientIP, hostname: s.e.cfg.Hostname,
	}, time.Now().UTC())
	if rerr != nil {
		return s.refuse(strings.Join(s.rcpts, ","), rerr)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	events := make([]trace.Event, len(msg.Recipients))
	for i, rcpt := range msg.Recipients {
		events[i] = trace.Event{
			TenantID: msg.TenantID, Time: msg.ReceivedAt, QueueID: msg.QueueID, MessageID: msg.MessageID,
			Sender: msg.Sender, Recipient: rcpt, Event: trace.EventReceived, Status: trace.StatusPending,
			Detail:   "accepted from " + s.clientIP + " (" + s.account.Address + ")",
			ClientIP: s.clientIP, Subject: msg.Subject, Size: msg.Size,
		}
	}
	if err := s.e.spool.Submit(ctx, msg, events); err != nil {
		s.log.Error("message not queued", "err", err)
		if errors.Is(err, store.ErrFull) {
			return reply.StorageFull.Err()
		}
		return reply.StorageUnavailable.Err()
	}
	s.log.Info("message queued", "queue_id", msg.QueueID, "message_id", msg.MessageID, "recipients", len(msg.Recipients), "size", msg.Size)
	// go-smtp sends an error's code and text as the reply, so a 250 with
	// hve's own text (naming the queue id) travels as an "error".
	return reply.Accepted.Format(msg.QueueID)
}

// refuse records a submission refusal in trace and returns the reply.
func (s *session) refuse(rcpt string, e *smtp.SMTPError) *smtp.SMTPError {
	line := reply.Line(e)
	s.log.Info("submission refused", "from", s.from, "rcpt", rcpt, "reply", line)
	if s.account != nil {
		s.e.trace.Record(trace.Event{
			TenantID: s.account.TenantID, Time: time.Now().UTC(), Sender: s.account.Address,
			Recipient: rcpt, Event: trace.EventRejected, Status: trace.StatusRejected,
			Detail: line, ClientIP: s.clientIP,
		})
	}
	return e
}

// Reset forgets the transaction in progress.
func (s *session) Reset() {
	s.from = ""
	s.rcpts = nil
}

// Logout ends the session.
func (s *session) Logout() error { return nil }
