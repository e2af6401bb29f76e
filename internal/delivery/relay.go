package delivery

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"hve/internal/directory"
)

// Verdict is what became of one recipient in one relay transaction.
type Verdict int

// The verdicts.
const (
	// NotAttempted: no connection could be had before the pass ended; the
	// recipient is tried again at once, and no attempt is counted.
	NotAttempted Verdict = iota
	// Accepted: the next hop answered 2xx; it has the message.
	Accepted
	// Temporary: a 4xx reply or no reply at all (connection refused or
	// lost, TLS or AUTH failed); tried again later.
	Temporary
	// Permanent: a 5xx reply; final.
	Permanent
)

// Result is a next hop's verdict on one recipient.
type Result struct {
	Verdict Verdict
	// Reply is the next hop's reply ("250 2.0.0 Ok: queued as 4Xy"), or
	// why there is none.
	Reply string
}

// Relay hands messages to next hops over SMTP or LMTP. It keeps a pool of
// connections per destination (a route's target and settings): at most the
// route's MaxConnections are open at once, idle ones are reused for the
// next transaction, and a transaction carries every recipient of a message
// for that next hop, MAIL and RCPTs pipelined when the next hop offers
// PIPELINING.
//
// A Relay is safe for concurrent use.
type Relay struct {
	// Hostname is hve's name in EHLO and LHLO.
	Hostname string
	// ConnectTimeout bounds dialling; CommandTimeout each command's reply;
	// DataTimeout the reply after the message's final dot.
	ConnectTimeout, CommandTimeout, DataTimeout time.Duration
	// IdleTimeout: an idle connection is closed rather than reused after
	// this long (next hops drop idle clients after a while).
	IdleTimeout time.Duration
	// DeadTime: after a next hop could not be reached, further
	// transactions to it fail at once for this long instead of each
	// waiting for its own connect timeout. 0 turns this off.
	DeadTime time.Duration

	log   *slog.Logger
	mu    sync.Mutex
	dests map[string]*destination
}

// NewRelay returns a relay with the default timeouts.
func NewRelay(hostname string, log *slog.Logger) *Relay {
	return &Relay{Hostname: hostname, ConnectTimeout: 30 * time.Second, CommandTimeout: 2 * time.Minute, DataTimeout: 10 * time.Minute,
		IdleTimeout: 30 * time.Second, DeadTime: 30 * time.Second, log: log, dests: map[string]*destination{}}
}

// destination is the connection pool of one route.
type destination struct {
	route directory.Route
	// slots holds a token per open connection, idle or busy: its capacity
	// is the route's connection limit.
	slots chan struct{}
	// idle holds connections ready for the next transaction.
	idle chan *session

	mu         sync.Mutex
	deadUntil  time.Time
	deadReason string
}

// session is one open connection to a next hop.
type session struct {
	c        *smtp.Client
	conn     net.Conn
	lmtp     bool
	uses     int
	lastUsed time.Time
}

// destinationKey identifies a route's settings, so that a changed route
// gets a pool of its own. The password is hashed into it, never kept in
// clear as a map key.
func destinationKey(r directory.Route) string {
	h := sha256.New()
	for _, f := range []string{string(r.Type), r.Target, string(r.TLS), r.AuthUser, r.AuthPassword, r.ClientCert, r.ClientKey, r.CAFile,
		fmt.Sprint(r.MaxConnections)} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r *Relay) destination(route directory.Route) *destination {
	key := destinationKey(route)
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dests[key]
	if d == nil {
		n := max(route.MaxConnections, 1)
		d = &destination{route: route, slots: make(chan struct{}, n), idle: make(chan *session, n)}
		r.dests[key] = d
	}
	return d
}

// describe names a route's next hop for trace and logs.
func describe(route directory.Route) string {
	return string(route.Type) + " " + route.Target
}

// Send hands one message to the route's next hop in one transaction for
// all rcpts (unique addresses) and returns one result per recipient, in
// order. It never returns Accepted for a recipient the next hop did not
// answer with 2xx.
func (r *Relay) Send(ctx context.Context, route directory.Route, from string, rcpts []string, body []byte) []Result {
	d := r.destination(route)
	if reason, dead := d.dead(); dead {
		return all(rcpts, Result{Temporary, reason})
	}
	for try := 0; ; try++ {
		s, err := r.acquire(ctx, d)
		if err != nil {
			if ctx.Err() != nil {
				return all(rcpts, Result{NotAttempted, "not attempted: " + err.Error()})
			}
			return all(rcpts, Result{Temporary, err.Error()})
		}
		results, healthy, stale := r.transaction(ctx, s, from, rcpts, body)
		if stale && s.uses > 0 && try == 0 {
			// A reused connection that the next hop had closed while it
			// sat idle: nothing was sent, so try once on a fresh one.
			r.discard(d, s)
			r.closeIdle(d)
			continue
		}
		s.uses++
		r.release(d, s, healthy)
		return results
	}
}

// all returns res for each of rcpts.
func all(rcpts []string, res Result) []Result {
	out := make([]Result, len(rcpts))
	for i := range out {
		out[i] = res
	}
	return out
}

// dead reports whether the destination recently could not be reached.
func (d *destination) dead() (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Now().Before(d.deadUntil) {
		return d.deadReason, true
	}
	return "", false
}

// acquire returns an idle connection of d or opens a new one within d's
// limit, waiting for a free slot until ctx ends.
func (r *Relay) acquire(ctx context.Context, d *destination) (*session, error) {
	for {
		var s *session
		select {
		case s = <-d.idle:
		default:
			select {
			case s = <-d.idle:
			case d.slots <- struct{}{}:
				s, err := r.dial(ctx, d.route)
				if err != nil {
					<-d.slots
					return nil, err
				}
				return s, nil
			case <-ctx.Done():
				return nil, fmt.Errorf("no connection to %s became free in time", describe(d.route))
			}
		}
		if time.Since(s.lastUsed) < r.IdleTimeout {
			return s, nil
		}
		r.discard(d, s)
	}
}

// release puts a session back in the pool, or closes it.
func (r *Relay) release(d *destination, s *session, healthy bool) {
	if !healthy {
		r.discard(d, s)
		return
	}
	s.lastUsed = time.Now()
	d.idle <- s // never blocks: each session holds one of cap(idle) slots
}

// discard closes a session and frees its slot.
func (r *Relay) discard(d *destination, s *session) {
	s.conn.Close()
	<-d.slots
}

// closeIdle closes every idle session of d.
func (r *Relay) closeIdle(d *destination) {
	for {
		select {
		case s := <-d.idle:
			r.discard(d, s)
		default:
			return
		}
	}
}

// Prune closes idle connections that have outlived IdleTimeout, and
// forgets destinations with no connection (routes changed or removed).
func (r *Relay) Prune() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, d := range r.dests {
		var keep []*session
	drain:
		for {
			select {
			case s := <-d.idle:
				if time.Since(s.lastUsed) < r.IdleTimeout {
					keep = append(keep, s)
				} else {
					r.quit(d, s)
				}
			default:
				break drain
			}
		}
		for _, s := range keep {
			d.idle <- s
		}
		if len(d.slots) == 0 {
			delete(r.dests, key)
		}
	}
}

// Close ends every idle connection politely (QUIT). Connections in use are
// closed when their transaction ends.
func (r *Relay) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.dests {
	drain:
		for {
			select {
			case s := <-d.idle:
				r.quit(d, s)
			default:
				break drain
			}
		}
	}
}

// quit says QUIT (briefly) and closes the session.
func (r *Relay) quit(d *destination, s *session) {
	s.c.CommandTimeout = 2 * time.Second
	s.c.Quit()
	r.discard(d, s)
}

// dial opens a session to the route's next hop: greeting, EHLO/LHLO,
// STARTTLS as the route says, AUTH PLAIN if it has credentials. Its error
// says what went wrong, for trace.
func (r *Relay) dial(ctx context.Context, route directory.Route) (*session, error) {
	s, err := r.dialTLS(ctx, route, route.TLS)
	var hs handshakeError
	if errors.As(err, &hs) && route.TLS == directory.TLSOpportunistic {
		// Opportunistic TLS falls back to plain text when the handshake
		// fails, as MTAs do: the alternative is not delivering at all.
		r.log.Warn("STARTTLS to next hop failed; sending without TLS", "next_hop", describe(route), "err", errorText(hs.err))
		s, err = r.dialTLS(ctx, route, directory.TLSNone)
	}
	return s, err
}

// handshakeError is a failed STARTTLS handshake.
type handshakeError struct {
	route directory.Route
	err   error
}

func (e handshakeError) Error() string {
	return fmt.Sprintf("next hop %s: STARTTLS failed: %s", describe(e.route), errorText(e.err))
}

func (r *Relay) dialTLS(ctx context.Context, route directory.Route, mode directory.TLSMode) (*session, error) {
	network, addr := route.Network()
	dialer := net.Dialer{Timeout: r.ConnectTimeout}
	conn, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		err = fmt.Errorf("cannot connect to next hop %s: %w", describe(route), err)
		if ctx.Err() == nil {
			r.markDead(route, err)
		}
		return nil, err
	}
	s := &session{conn: conn, lmtp: route.Type == directory.RouteLMTP}
	if s.lmtp {
		s.c = smtp.NewClientLMTP(conn)
	} else {
		s.c = smtp.NewClient(conn)
	}
	s.c.CommandTimeout, s.c.SubmissionTimeout = r.CommandTimeout, r.DataTimeout
	// The client sets deadlines per command; the context can only end a
	// session by closing its connection.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fail := func(what string, err error) (*session, error) {
		conn.Close()
		return nil, fmt.Errorf("next hop %s: %s: %s", describe(route), what, errorText(err))
	}
	if err := s.c.Hello(r.Hostname); err != nil {
		return fail("greeting", err)
	}
	encrypted := false
	if mode != directory.TLSNone {
		offered, _ := s.c.Extension("STARTTLS")
		switch {
		case offered:
			cfg, err := tlsConfig(route, mode == directory.TLSRequired)
			if err != nil {
				return fail("TLS settings of the route", err)
			}
			if err := s.c.StartTLS(cfg); err != nil {
				conn.Close()
				return nil, handshakeError{route, err}
			}
			encrypted = true
		case mode == directory.TLSRequired:
			conn.Close()
			return nil, fmt.Errorf("next hop %s offers no STARTTLS, and the route requires TLS (tls required); nothing was sent", describe(route))
		}
	}
	if route.AuthUser != "" {
		if !encrypted && !route.IsLoopback() {
			conn.Close()
			return nil, fmt.Errorf("next hop %s offered no TLS; the route's AUTH password is not sent in clear text (use tls required)", describe(route))
		}
		if !s.c.SupportsAuth("PLAIN") {
			conn.Close()
			return nil, fmt.Errorf("next hop %s does not offer AUTH PLAIN, which the route's credentials need", describe(route))
		}
		if err := s.c.Auth(sasl.NewPlainClient("", route.AuthUser, route.AuthPassword)); err != nil {
			return fail("authentication as "+route.AuthUser+" failed", err)
		}
	}
	if ctx.Err() != nil {
		conn.Close()
		return nil, ctx.Err()
	}
	return s, nil
}

// ForgetDead forgets which next hops could not be reached, so that the
// next message for each is tried at once: an admin who retries the queue
// (after fixing a next hop) wants an attempt, not the remembered failure.
func (r *Relay) ForgetDead() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.dests {
		d.mu.Lock()
		d.deadUntil, d.deadReason = time.Time{}, ""
		d.mu.Unlock()
	}
}

// markDead remembers that a route's next hop cannot be reached.
func (r *Relay) markDead(route directory.Route, err error) {
	if r.DeadTime <= 0 {
		return
	}
	d := r.destination(route)
	d.mu.Lock()
	d.deadUntil = time.Now().Add(r.DeadTime)
	d.deadReason = err.Error() + " (not tried again for " + r.DeadTime.String() + ")"
	d.mu.Unlock()
}

// tlsConfig is the TLS client configuration of a route. verify checks the
// next hop's certificate (tls required); opportunistic TLS encrypts
// without checking, since its fallback is plain text anyway.
func tlsConfig(route directory.Route, verify bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: route.Host(), InsecureSkipVerify: !verify}
	if route.CAFile != "" && verify {
		pem, err := os.ReadFile(route.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", route.CAFile)
		}
		cfg.RootCAs = pool
	}
	if route.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(route.ClientCert, route.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// transaction sends one message to rcpts on s. healthy says the session can
// carry another transaction; stale says the connection failed before the
// next hop answered anything (nothing was sent), so that a reused session
// may be replaced and the transaction tried again.
func (r *Relay) transaction(ctx context.Context, s *session, from string, rcpts []string, body []byte) (results []Result, healthy, stale bool) {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	results = make([]Result, len(rcpts))
	lost := func(idx []int, when string, err error) {
		for _, i := range idx {
			results[i] = Result{Temporary, "connection to the next hop lost " + when + ": " + errorText(err)}
		}
	}
	every := make([]int, len(rcpts))
	for i := range every {
		every[i] = i
	}

	opts := &smtp.MailOptions{Size: int64(len(body))}
	if !isASCII(from) || !allASCII(rcpts) {
		if ok, _ := s.c.Extension("SMTPUTF8"); !ok {
			return all(rcpts, Result{Permanent, "the next hop does not support SMTPUTF8, which the addresses need"}), true, false
		}
		opts.UTF8 = true
	}
	// MAIL, the RCPTs and DATA go out together where the next hop allows
	// pipelining: two round trips per message.
	rcptErrs, w, dataErr, err := s.c.MailRcptsData(from, opts, rcpts)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return all(rcpts, verdict(se)), s.c.Reset() == nil, false
		}
		lost(every, "before the transaction (nothing was sent)", err)
		return results, false, true
	}
	var accepted []int
	for i, e := range rcptErrs {
		var se *smtp.SMTPError
		switch {
		case e == nil:
			accepted = append(accepted, i)
		case errors.As(e, &se):
			results[i] = verdict(se)
		default:
			results[i] = Result{Temporary, errorText(e)}
		}
	}
	if len(accepted) == 0 {
		if w != nil {
			// DATA taken with no recipient: an empty message ends it.
			w.Close()
		}
		return results, s.c.Reset() == nil, false
	}
	if w == nil {
		if se := (*smtp.SMTPError)(nil); errors.As(dataErr, &se) {
			for _, i := range accepted {
				results[i] = verdict(se)
			}
			return results, s.c.Reset() == nil, false
		}
		lost(accepted, "at DATA (the message was not sent)", dataErr)
		return results, false, false
	}
	if _, err := w.Write(body); err != nil {
		lost(accepted, "while sending the message", err)
		return results, false, false
	}
	const afterData = "after the message was sent, before the next hop's reply: it may have the message, which is sent again (a possible duplicate)"
	if !s.lmtp {
		resp, err := w.CloseWithResponse()
		var se *smtp.SMTPError
		switch {
		case err == nil:
			for _, i := range accepted {
				results[i] = Result{Accepted, oneLine("250 " + resp.StatusText)}
			}
		case errors.As(err, &se):
			for _, i := range accepted {
				results[i] = verdict(se)
			}
		default:
			lost(accepted, afterData, err)
			return results, false, false
		}
		return results, true, false
	}

	// LMTP answers each accepted recipient on its own, in RCPT order.
	resp, err := w.CloseWithLMTPResponse()
	var perRcpt smtp.LMTPDataError
	errors.As(err, &perRcpt)
	healthy = true
	for _, i := range accepted {
		rcpt := rcpts[i]
		if ok := resp[rcpt]; ok != nil {
			results[i] = Result{Accepted, oneLine("250 " + ok.StatusText)}
		} else if se := perRcpt[rcpt]; se != nil {
			results[i] = verdict(se)
		} else {
			// The connection ended before this recipient's reply.
			lost([]int{i}, afterData, err)
			healthy = false
		}
	}
	return results, healthy, false
}

// verdict classifies a reply: 5xx is final, anything else but 2xx is
// tried again.
func verdict(se *smtp.SMTPError) Result {
	switch se.Code / 100 {
	case 2:
		return Result{Accepted, replyText(se)}
	case 5:
		return Result{Permanent, replyText(se)}
	}
	return Result{Temporary, replyText(se)}
}

// replyText formats a reply as it came: code, enhanced code, text.
func replyText(se *smtp.SMTPError) string {
	ec := se.EnhancedCode
	if ec != smtp.NoEnhancedCode && ec != smtp.EnhancedCodeNotSet {
		return oneLine(fmt.Sprintf("%d %d.%d.%d %s", se.Code, ec[0], ec[1], ec[2], se.Message))
	}
	return oneLine(fmt.Sprintf("%d %s", se.Code, se.Message))
}

// errorText shows an SMTP error as its reply, other errors as they are.
func errorText(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return replyText(se)
	}
	return oneLine(err.Error())
}

// maxReply bounds the reply text kept in trace: a next hop controls it.
const maxReply = 512

// oneLine joins a multi-line reply and bounds its length.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
	if len(s) > maxReply {
		s = strings.ToValidUTF8(s[:maxReply], "") + "..."
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(list []string) bool {
	for _, s := range list {
		if !isASCII(s) {
			return false
		}
	}
	return true
}
