package bench

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SinkConfig describes a sink.
type SinkConfig struct {
	// Addr is the loopback host:port to listen on (port 0: any free port).
	Addr string
	// CertFile and KeyFile are the PEM certificate and key offered by
	// STARTTLS; when empty, a self-signed RSA-2048 certificate is made in
	// memory (what the reference measurements used).
	CertFile, KeyFile string
	// Durable, when set, is a directory: every message is appended to
	// Durable/sink.spool and fsynced before its 250.
	Durable string
	// MaxSpoolBytes is the size past which the durable sink's spool file
	// is truncated (after the fsync that made its contents durable), so
	// that long runs do not fill the disk: a real queue deletes what it
	// delivered. 0 means 256 MiB.
	MaxSpoolBytes int64
}

// SinkStats is what a sink has accepted so far.
type SinkStats struct {
	Sessions int64 `json:"sessions"`
	Messages int64 `json:"messages"`
	Rcpts    int64 `json:"rcpts"`
	Bytes    int64 `json:"bytes"`
	// Fsyncs counts the durable sink's fsyncs (group commits).
	Fsyncs int64 `json:"fsyncs"`
	// MaxOpen is the largest number of sessions open at once.
	MaxOpen int64 `json:"max_open"`
}

// Sink is a measuring peer, not a mail server: `hve bench-sink` runs
// it so that the benchmark suite (scripts/bench-suite.sh) can compare hve
// with the least any SMTP submission server must do on the same machine.
// It speaks the same protocol as hve's submission endpoint (EHLO,
// STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA), accepts any credentials and any
// recipient, and then either throws each message away (the no-op sink) or,
// with SinkConfig.Durable, appends it to a file and fsyncs the file before
// answering 250 (the durable sink). The durable sink shares each fsync
// among all the messages that arrived while the previous one ran (group
// commit), which is the least a durable server can pay per message.
//
// It only listens on loopback addresses, since it accepts any password.
type Sink struct {
	srv *smtp.Server
	ln  net.Listener

	sessions, messages, rcpts, bytes, fsyncs atomic.Int64
	open, maxOpen                            atomic.Int64

	spool *groupCommitter
	done  chan struct{}
}

// StartSink listens on cfg.Addr and serves until Close.
func StartSink(cfg SinkConfig) (*Sink, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %w", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--addr %q: the sink accepts any password, so it only listens on a loopback address", cfg.Addr)
	}
	var cert tls.Certificate
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		cert, err = tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	} else {
		cert, err = selfSignedRSA()
	}
	if err != nil {
		return nil, err
	}
	s := &Sink{done: make(chan struct{})}
	if cfg.Durable != "" {
		max := cfg.MaxSpoolBytes
		if max <= 0 {
			max = 256 << 20
		}
		if s.spool, err = openGroupCommitter(filepath.Join(cfg.Durable, "sink.spool"), max, &s.fsyncs); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if s.spool != nil {
			s.spool.close()
		}
		return nil, err
	}
	s.ln = ln
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.sessions.Add(1)
		n := s.open.Add(1)
		for {
			m := s.maxOpen.Load()
			if n <= m || s.maxOpen.CompareAndSwap(m, n) {
				break
			}
		}
		return &sinkSession{s: s}, nil
	}))
	srv.Domain = "bench-sink.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Minute, time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv
	go func() {
		defer close(s.done)
		srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the sink listens on.
func (s *Sink) Addr() net.Addr { return s.ln.Addr() }

// Stats returns the counts so far.
func (s *Sink) Stats() SinkStats {
	return SinkStats{Sessions: s.sessions.Load(), Messages: s.messages.Load(), Rcpts: s.rcpts.Load(),
		Bytes: s.bytes.Load(), Fsyncs: s.fsyncs.Load(), MaxOpen: s.maxOpen.Load()}
}

// Close stops listening, ends the sessions and closes the spool.
func (s *Sink) Close() error {
	err := s.srv.Close()
	<-s.done
	if s.spool != nil {
		if e := s.spool.close(); err == nil {
			err = e
		}
	}
	return err
}

type sinkSession struct {
	s      *Sink
	authed bool
	rcpts  int64
	buf    bytes.Buffer
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

func (ss *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth accepts any user name and password.
func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error {
	if !ss.authed {
		return errAuthRequired
	}
	return nil
}

func (ss *sinkSession) Rcpt(string, *smtp.RcptOptions) error { ss.rcpts++; return nil }
func (ss *sinkSession) Reset()                               { ss.rcpts = 0 }

func (ss *sinkSession) Logout() error {
	ss.s.open.Add(-1)
	return nil
}

// Data reads the message; the durable sink makes it durable before the
// reply.
func (ss *sinkSession) Data(r io.Reader) error {
	var n int64
	var err error
	if ss.s.spool != nil {
		ss.buf.Reset()
		n, err = ss.buf.ReadFrom(r)
		if err == nil {
			err = ss.s.spool.append(ss.buf.Bytes())
		}
		if ss.buf.Cap() > 1<<20 {
			ss.buf = bytes.Buffer{} // a huge message should not stay pinned
		}
	} else {
		n, err = io.Copy(io.Discard, r)
	}
	if err != nil {
		return err
	}
	ss.s.messages.Add(1)
	ss.s.rcpts.Add(ss.rcpts)
	ss.s.bytes.Add(n)
	return nil
}

// groupCommitter appends records to one file and fsyncs it; the records
// that arrive while an fsync runs wait together for the next one.
type groupCommitter struct {
	f     *os.File
	max   int64
	size  int64
	count *atomic.Int64

	mu      sync.Mutex
	cond    *sync.Cond
	pending [][]byte
	waiters []chan error
	closed  bool
	done    chan struct{}
}

func openGroupCommitter(path string, max int64, count *atomic.Int64) (*groupCommitter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	g := &groupCommitter{f: f, max: max, count: count, done: make(chan struct{})}
	g.cond = sync.NewCond(&g.mu)
	go g.loop()
	return g, nil
}

// append queues rec and returns once it is on disk.
func (g *groupCommitter) append(rec []byte) error {
	ch := make(chan error, 1)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errors.New("spool closed")
	}
	g.pending = append(g.pending, rec)
	g.waiters = append(g.waiters, ch)
	g.cond.Signal()
	g.mu.Unlock()
	return <-ch
}

func (g *groupCommitter) loop() {
	defer close(g.done)
	var buf []byte
	for {
		g.mu.Lock()
		for len(g.pending) == 0 && !g.closed {
			g.cond.Wait()
		}
		if len(g.pending) == 0 {
			g.mu.Unlock()
			return
		}
		recs, waiters := g.pending, g.waiters
		g.pending, g.waiters = nil, nil
		g.mu.Unlock()

		// One write and one fsync for the whole batch. The records are
		// copied out before anyone is answered: the sessions reuse them.
		buf = buf[:0]
		for _, r := range recs {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(r)))
			buf = append(buf, r...)
		}
		_, err := g.f.Write(buf)
		if err == nil {
			err = g.f.Sync()
			g.count.Add(1)
		}
		g.size += int64(len(buf))
		if err == nil && g.size > g.max {
			// Everything written is durable; start the file over, as a
			// queue frees what it delivered.
			if err = g.f.Truncate(0); err == nil {
				_, err = g.f.Seek(0, io.SeekStart)
			}
			g.size = 0
		}
		for _, w := range waiters {
			w <- err
		}
		if cap(buf) > 16<<20 {
			buf = nil
		}
	}
}

func (g *groupCommitter) close() error {
	g.mu.Lock()
	g.closed = true
	g.cond.Signal()
	g.mu.Unlock()
	<-g.done
	return g.f.Close()
}

// selfSignedRSA makes a self-signed RSA-2048 certificate for 127.0.0.1 and
// localhost.
func selfSignedRSA() (tls.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "bench-sink.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "bench-sink.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
