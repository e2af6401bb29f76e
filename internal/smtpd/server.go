// Package smtpd is the HVE submission endpoint: the SMTP listener, its
// sessions (STARTTLS, AUTH, envelope and content policy) and the hand-over
// of accepted messages to the spool. It knows nothing of delivery.
package smtpd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/reply"
	"hve/internal/trace"
)

// Directory is what sessions need to know about the organisation.
type Directory interface {
	AccountByAddress(ctx context.Context, address string) (directory.Account, error)
	MailboxByAddress(ctx context.Context, address string) (directory.Mailbox, error)
	DomainByName(ctx context.Context, name string) (directory.Domain, error)
	Lookup(ctx context.Context, address string) (directory.Entry, error)
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

// Limits of the HVE endpoint (spec section 4).
const (
	DefaultMaxRecipients   = 50
	DefaultMaxMessageBytes = 10 * 1024 * 1024
)

// Config configures the endpoint.
type Config struct {
	// Hostname names this server in the greeting and Received headers.
	Hostname string
	// TLS is required: AUTH and MAIL are refused until STARTTLS.
	TLS             *tls.Config
	MaxRecipients   int
	MaxMessageBytes int64
	// ReadTimeout and WriteTimeout bound each command; idle clients are
	// disconnected after ReadTimeout.
	ReadTimeout, WriteTimeout time.Duration
}

// Endpoint is the HVE submission endpoint.
type Endpoint struct {
	cfg    Config
	dir    Directory
	spool  Spool
	trace  Recorder
	log    *slog.Logger
	ctx    context.Context
	server *smtp.Server
}

// New builds the endpoint. ctx bounds the work of every session (store
// calls are cancelled when it ends).
func New(ctx context.Context, cfg Config, dir Directory, spool Spool, rec Recorder, log *slog.Logger) *Endpoint {
	if cfg.MaxRecipients == 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
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
	e := &Endpoint{cfg: cfg, dir: dir, spool: spool, trace: rec, log: log, ctx: ctx}
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

// slogAdapter lets go-smtp's error log go to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) {
	a.log.Warn("smtp: " + fmt.Sprintf(format, v...))
}
func (a slogAdapter) Println(v ...any) { a.log.Warn("smtp: " + fmt.Sprint(v...)) }
