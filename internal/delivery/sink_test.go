package delivery_test

// sink is a next hop started by a test: an SMTP or LMTP server (go-smtp's
// server) whose replies the test scripts per recipient, per transaction, or
// as a dropped connection, and which records what it was sent.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Where the sink drops the connection instead of replying.
const (
	dropAtMail = "mail" // on MAIL
	dropAtRcpt = "rcpt" // on the first RCPT
	// dropAfterData: the whole message was received, the final reply is
	// never sent.
	dropAfterData = "data"
	// dropAfterFirstLMTP: LMTP only; the first recipient's reply is
	// written, then the connection ends.
	dropAfterFirstLMTP = "lmtp-after-first"
)

// script is how the sink answers. Nil functions accept.
type script struct {
	mail func(from string) *smtp.SMTPError
	rcpt func(to string) *smtp.SMTPError
	// data answers the end of DATA for the whole transaction (SMTP).
	data func(rcpts []string) *smtp.SMTPError
	// lmtp answers the end of DATA for one recipient (LMTP).
	lmtp func(rcpt string) *smtp.SMTPError
	drop string
	// dataDelay holds each DATA reply back, so that transactions overlap.
	dataDelay time.Duration
}

// received is one transaction the sink answered.
type received struct {
	from string
	// accepted are the recipients answered 250 at the end of DATA.
	accepted []string
	body     []byte
	tls      bool
	authUser string
}

type sinkOptions struct {
	lmtp bool
	unix bool // listen on a unix socket (LMTP)
	tls  bool // offer STARTTLS (with a certificate for 127.0.0.1)
	// authUser and authPass are the credentials it requires; AUTH is
	// offered after STARTTLS, or without TLS when insecureAuth is set.
	authUser, authPass string
	insecureAuth       bool
	// addr is the host:port to listen on; empty picks a free port.
	addr string
}

type sink struct {
	t    *testing.T
	opts sinkOptions
	// addr is host:port, or the socket path for unix.
	addr string
	// caFile holds the certificate of a TLS sink, for a route's CA file.
	caFile string
	srv    *smtp.Server

	mu       sync.Mutex
	script   script
	got      []received
	dropped  [][]byte          // messages received whose reply was dropped
	rcptSeen map[string]int    // RCPT commands per address
	conns    int               // connections accepted in all
	open     int               // connections open now
	maxOpen  int               // most connections open at once
	live     map[net.Conn]bool // server side of open connections
	written  chan struct{}     // closed when the first LMTP reply is out
}

func startSink(t *testing.T, opts sinkOptions) *sink {
	t.Helper()
	s := &sink{t: t, opts: opts, rcptSeen: map[string]int{}, live: map[net.Conn]bool{}}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, c: c}, nil
	}))
	s.srv.Domain = "sink.test"
	s.srv.LMTP = opts.lmtp
	s.srv.AllowInsecureAuth = opts.insecureAuth
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	// The server may log after the test ended, where t.Log panics.
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	if opts.tls {
		cert, caFile := testCertificate(t)
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.caFile = caFile
	}
	var l net.Listener
	var err error
	if opts.unix {
		// Socket paths are short; t.TempDir can be too long.
		dir, derr := os.MkdirTemp("", "hve-lmtp")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		s.addr = filepath.Join(dir, "lmtp.sock")
		l, err = net.Listen("unix", s.addr)
	} else {
		at := "127.0.0.1:0"
		if opts.addr != "" {
			at = opts.addr
		}
		l, err = net.Listen("tcp", at)
		if err == nil {
			s.addr = l.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	go s.srv.Serve(&countingListener{Listener: l, s: s})
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// set changes the script.
func (s *sink) set(sc script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = sc
	s.written = make(chan struct{})
}

func (s *sink) current() script {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.script
}

// transactions returns what the sink accepted so far.
func (s *sink) transactions() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// acceptedTimes counts how often the sink answered 250 at the end of DATA
// for rcpt: the number of copies the next hop took.
func (s *sink) acceptedTimes(rcpt string) int {
	n := 0
	for _, r := range s.transactions() {
		for _, a := range r.accepted {
			if a == rcpt {
				n++
			}
		}
	}
	return n
}

func (s *sink) rcpts(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcptSeen[addr]
}

// connStats returns the connections accepted in all and the most open at
// once.
func (s *sink) connStats() (total, maxOpen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.maxOpen
}

// closeAll closes the server side of every open connection, as a next hop
// that drops idle clients does.
func (s *sink) closeAll() {
	s.mu.Lock()
	var conns []net.Conn
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// countingListener counts the sink's connections and watches its writes.
type countingListener struct {
	net.Listener
	s *sink
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := l.s
	s.mu.Lock()
	s.conns++
	s.open++
	s.maxOpen = max(s.maxOpen, s.open)
	wc := &watchedConn{Conn: c, s: s}
	s.live[wc] = true
	s.mu.Unlock()
	return wc, nil
}

type watchedConn struct {
	net.Conn
	s    *sink
	once sync.Once
}

// Write signals the first LMTP reply of a 250 after DATA ("<rcpt> OK").
func (c *watchedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if bytes.Contains(b, []byte("> OK: queued")) {
		c.s.mu.Lock()
		ch := c.s.written
		c.s.mu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.open--
		delete(c.s.live, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

type sinkSession struct {
	s        *sink
	c        *smtp.Conn
	from     string
	rcpts    []string
	authUser string
}

var errDropped = errors.New("connection dropped by the test")

// drop ends the connection without a reply.
func (ss *sinkSession) drop() error {
	ss.c.Conn().Close()
	return errDropped
}

func (ss *sinkSession) Reset()        { ss.from, ss.rcpts = "", nil }
func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) AuthMechanisms() []string {
	if ss.s.opts.authUser == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != ss.s.opts.authUser || pass != ss.s.opts.authPass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		ss.authUser = user
		return nil
	}), nil
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.opts.authUser != "" && ss.authUser == "" {
		return smtp.ErrAuthRequired
	}
	sc := ss.s.current()
	if sc.drop == dropAtMail {
		return ss.drop()
	}
	if sc.mail != nil {
		if e := sc.mail(from); e != nil {
			return e
		}
	}
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	ss.s.rcptSeen[to]++
	ss.s.mu.Unlock()
	sc := ss.s.current()
	if sc.drop == dropAtRcpt {
		return ss.drop()
	}
	if sc.rcpt != nil {
		if e := sc.rcpt(to); e != nil {
			return e
		}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *sinkSession) isTLS() bool {
	_, ok := ss.c.TLSConnectionState()
	return ok
}

func (ss *sinkSession) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	sc := ss.s.current()
	if sc.dataDelay > 0 {
		time.Sleep(sc.dataDelay)
	}
	if sc.drop == dropAfterData {
		ss.s.mu.Lock()
		ss.s.dropped = append(ss.s.dropped, body)
		ss.s.mu.Unlock()
		return ss.drop()
	}
	if sc.data != nil {
		if e := sc.data(ss.rcpts); e != nil {
			return e
		}
	}
	ss.record(ss.rcpts, body)
	return nil
}

func (ss *sinkSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	sc := ss.s.current()
	ss.s.mu.Lock()
	written := ss.s.written
	ss.s.mu.Unlock()
	var accepted []string
	for i, rcpt := range ss.rcpts {
		if sc.drop == dropAfterFirstLMTP && i == 1 {
			// The first reply must be on the wire before the drop.
			select {
			case <-written:
			case <-time.After(10 * time.Second):
				ss.s.t.Error("sink: the first LMTP reply was not written within 10s")
			}
			ss.record(accepted, body)
			ss.drop()
			for _, rest := range ss.rcpts[i:] {
				status.SetStatus(rest, errDropped)
			}
			return nil
		}
		var reply *smtp.SMTPError
		if sc.lmtp != nil {
			reply = sc.lmtp(rcpt)
		}
		if reply == nil {
			accepted = append(accepted, rcpt)
			status.SetStatus(rcpt, nil)
		} else {
			status.SetStatus(rcpt, reply)
		}
	}
	ss.record(accepted, body)
	return nil
}

func (ss *sinkSession) record(accepted []string, body []byte) {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.got = append(ss.s.got, received{from: ss.from, accepted: append([]string(nil), accepted...), body: body, tls: ss.isTLS(), authUser: ss.authUser})
}

// testCertificate makes a self-signed certificate for 127.0.0.1 and
// localhost, and a PEM file of it to trust as a CA.
func testCertificate(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sink.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "sink-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}
