// Package bench is hve's load generator (`hve bench`): it opens many SMTP
// connections to a submission endpoint on this machine, signs in and sends
// messages as fast as the server accepts them, and reports throughput,
// latency and refusals.
//
// It is a measuring tool, not a test: it never runs against another
// machine (only loopback addresses are allowed), so it cannot be used to
// flood someone else's server.
package bench

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxDuration is the hard cap on a run: a benchmark stops after this long
// even when it was told to send more messages or given no duration.
const MaxDuration = 10 * time.Minute

// Per-step timeouts: a server that stops answering ends the connection
// (counted as an error) instead of hanging the run.
const (
	setupTimeout   = 30 * time.Second
	messageTimeout = 2 * time.Minute
	// maxSetupFailures in a row make a connection give up, so that a run
	// against a server that is down ends at once.
	maxSetupFailures = 5
	// hardStopGrace is how long messages in flight may take to finish
	// once the run's time is up.
	hardStopGrace = 15 * time.Second
	// rampTimeout bounds the opening of the connections with IdleFor:
	// the active phase starts then even if some are still connecting.
	rampTimeout = 2 * time.Minute
	// rampConcurrency is how many connections are set up at once with
	// IdleFor, so that thousands of handshakes do not all time out
	// together.
	rampConcurrency = 64
	// MaxIdleFor caps Config.IdleFor.
	MaxIdleFor = 5 * time.Minute
	// maxLoggedErrors is how many error messages are written to Config.Log.
	maxLoggedErrors = 10
)

// Config describes one benchmark run.
type Config struct {
	// Addr is host:port of the SMTP endpoint. The host must be (or resolve
	// only to) a loopback address.
	Addr string
	// Conns is the number of concurrent connections.
	Conns int
	// Msgs is the total number of messages, shared by all connections.
	Msgs int
	// Rcpts is the number of envelope recipients per message, taken in turn
	// from RcptList.
	Rcpts    int
	RcptList []string
	// From is the envelope and header sender; it defaults to User.
	From string
	// Size is the size of each message's body in bytes (the header comes
	// on top).
	Size int
	// User and Pass sign in with AUTH PLAIN; an empty User skips AUTH.
	User, Pass string
	// Token, when set, signs User in with AUTH XOAUTH2 and this bearer
	// token instead of a password.
	Token    string
	StartTLS bool
	// InsecureSkipVerify accepts any certificate (hve makes a self-signed
	// one on first start).
	InsecureSkipVerify bool
	// ReconnectPerMessage opens a new connection (TLS handshake and
	// sign-in included) for every message instead of reusing it.
	ReconnectPerMessage bool
	// Duration stops the run after this long even if Msgs were not all
	// sent; 0 means MaxDuration. With IdleFor it counts from the end of
	// the idle time.
	Duration time.Duration
	// IdleFor, when positive, first opens all Conns connections (each
	// signed in), waits until every one is open, keeps them all idle for
	// this long, and only then lets them all send (workload W5: many
	// concurrent idle-then-active sessions). Result.OpenAtOnce says how
	// many were open together. Not with ReconnectPerMessage.
	IdleFor time.Duration
	// Rate, when positive, paces the run to at most this many messages
	// per second in all (message i is not started before i/Rate seconds
	// into the run), to measure latency below the maximum rate.
	Rate float64
	// Log, if set, receives the first few error messages, so that a run
	// with errors says why.
	Log io.Writer
}

// Result is what a run measured. It is printed as one JSON line.
type Result struct {
	// Sent counts messages whose transaction was started (MAIL sent).
	Sent int64 `json:"sent"`
	// Accepted counts messages whose DATA got a 2xx final reply.
	Accepted int64 `json:"accepted"`
	// Rejected counts refused replies to MAIL, RCPT and DATA by reply code.
	// A message with some refused recipients is still accepted if DATA is.
	Rejected map[string]int64 `json:"rejected"`
	// Errors counts connection and protocol failures: dial, TLS, sign-in,
	// timeouts, broken connections.
	Errors int64 `json:"errors"`
	// ElapsedS is the wall time of the run in seconds.
	ElapsedS float64 `json:"elapsed_s"`
	// MsgsPerS is Accepted / ElapsedS.
	MsgsPerS float64 `json:"msgs_per_s"`
	// P50Ms and P99Ms are latency percentiles of accepted messages, from
	// MAIL to the final reply after DATA, in milliseconds.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// The run's parameters, so that a line of output stands on its own.
	Conns     int  `json:"conns"`
	Rcpts     int  `json:"rcpts"`
	Size      int  `json:"size"`
	Reconnect bool `json:"reconnect"`
	// OpenAtOnce is the largest number of signed-in sessions that were
	// open at the same time.
	OpenAtOnce int64 `json:"open_at_once"`
	// With IdleFor: RampS is how long opening the connections took, IdleS
	// how long they then stayed idle, and OpenIdle how many were open
	// when the idle time ended. ElapsedS and MsgsPerS cover only the
	// active phase after it.
	RampS    float64 `json:"ramp_s,omitempty"`
	IdleS    float64 `json:"idle_s,omitempty"`
	OpenIdle int64   `json:"open_idle,omitempty"`
	// Rate is the pacing asked for (messages per second), if any.
	Rate float64 `json:"rate,omitempty"`
}

// ErrNotLoopback is returned by Run for an address off this machine.
var ErrNotLoopback = errors.New("bench only runs against a loopback address (127.0.0.0/8, ::1, localhost)")

// CheckLoopback resolves addr's host and returns the address to dial (an
// IP literal, so that the check cannot be undone by a second lookup). Every
// address the host resolves to must be a loopback address.
func CheckLoopback(ctx context.Context, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q: %w", addr, err)
	}
	if host == "" {
		return "", fmt.Errorf("--addr %q: %w; the host is missing", addr, ErrNotLoopback)
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		found, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return "", fmt.Errorf("--addr %q: resolving %s: %w", addr, host, err)
		}
		for _, a := range found {
			ips = append(ips, a.IP)
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("--addr %q: %s resolves to no address", addr, host)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return "", fmt.Errorf("--addr %q: %s is not a loopback address: %w", addr, ip, ErrNotLoopback)
		}
	}
	return net.JoinHostPort(ips[0].String(), port), nil
}

func (cfg *Config) check() error {
	switch {
	case cfg.Conns < 1:
		return errors.New("--conns must be at least 1")
	case cfg.Msgs < 1:
		return errors.New("--msgs must be at least 1")
	case cfg.Rcpts < 1:
		return errors.New("--rcpts must be at least 1")
	case len(cfg.RcptList) == 0:
		return errors.New("--rcpt-list is required: the recipient addresses to send to")
	case cfg.Size < 0:
		return errors.New("--size must not be negative")
	case cfg.Duration < 0 || cfg.Duration > MaxDuration:
		return fmt.Errorf("--duration must be between 0 and %s", MaxDuration)
	case cfg.IdleFor < 0 || cfg.IdleFor > MaxIdleFor:
		return fmt.Errorf("--idle-for must be between 0 and %s", MaxIdleFor)
	case cfg.IdleFor > 0 && cfg.ReconnectPerMessage:
		return errors.New("--idle-for keeps connections open: not with --reconnect-per-message")
	case cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0):
		return errors.New("--rate must be a positive number of messages per second (0: as fast as possible)")
	}
	if cfg.From == "" {
		cfg.From = cfg.User
	}
	if cfg.From == "" {
		return errors.New("--from is required when there is no --auth user")
	}
	for _, a := range append([]string{cfg.From}, cfg.RcptList...) {
		if strings.ContainsAny(a, "<>\r\n ") || !strings.Contains(a, "@") {
			return fmt.Errorf("%q is not a plain address (local@domain)", a)
		}
	}
	return nil
}

// Run runs the benchmark. It returns an error only when the run could not
// start (bad configuration, an address off this machine); failures during
// the run are counted in the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	dialAddr, err := CheckLoopback(ctx, cfg.Addr)
	if err != nil {
		return Result{}, err
	}
	host, _, _ := net.SplitHostPort(cfg.Addr)
	limit := cfg.Duration
	if limit == 0 {
		limit = MaxDuration
	}
	// The active phase ends at limit: no new message is started after
	// it. hard, a little later, cuts the connections of messages still in
	// flight, so that a server that stopped answering cannot hold the run
	// past the cap. With IdleFor, the ramp and the idle time come first.
	hardLimit := limit + hardStopGrace
	if cfg.IdleFor > 0 {
		hardLimit += rampTimeout + cfg.IdleFor
	}
	hard, cancelHard := context.WithTimeout(ctx, hardLimit)
	defer cancelHard()

	r := &runner{
		cfg:      cfg,
		dialAddr: dialAddr,
		hard:     hard,
		tls:      &tls.Config{ServerName: host, InsecureSkipVerify: cfg.InsecureSkipVerify},
		body:     makeBody(cfg.Size),
	}
	switch {
	case cfg.User != "" && cfg.Token != "":
		r.authLine = "AUTH XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte("user="+cfg.User+"\x01auth=Bearer "+cfg.Token+"\x01\x01"))
	case cfg.User != "":
		r.authLine = "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+cfg.User+"\x00"+cfg.Pass))
	}
	stats := make([]*workerStats, cfg.Conns)
	for i := range stats {
		stats[i] = &workerStats{rejected: map[string]int64{}}
	}
	res := Result{Rejected: map[string]int64{}, Conns: cfg.Conns, Rcpts: cfg.Rcpts, Size: cfg.Size, Reconnect: cfg.ReconnectPerMessage, Rate: cfg.Rate}

	// gate opens when the active phase starts; active is its context,
	// set before gate is closed.
	gate := make(chan struct{})
	var active context.Context
	var wg sync.WaitGroup
	if cfg.IdleFor > 0 {
		// W5: open every connection first, at most rampConcurrency at a
		// time, then hold them all idle.
		rampStart := time.Now()
		ramp, cancelRamp := context.WithTimeout(ctx, rampTimeout)
		sem := make(chan struct{}, rampConcurrency)
		var ready sync.WaitGroup
		ready.Add(cfg.Conns)
		for i := range stats {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				c := r.connectRetrying(ramp, stats[i])
				<-sem
				ready.Done()
				<-gate // closed soon after ctx ends, too
				r.work(active, stats[i], c)
			}()
		}
		waitOrDone(ramp, &ready)
		cancelRamp()
		res.RampS = round(time.Since(rampStart).Seconds(), 3)
		idleStart := time.Now()
		select {
		case <-time.After(cfg.IdleFor):
		case <-ctx.Done():
		}
		res.IdleS = round(time.Since(idleStart).Seconds(), 3)
		res.OpenIdle = r.open.Load()
	}
	active, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	r.start = start
	close(gate)
	if cfg.IdleFor == 0 {
		for i := range stats {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.work(active, stats[i], nil)
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	res.OpenAtOnce = r.maxOpen.Load()
	var lat []time.Duration
	for _, s := range stats {
		res.Sent += s.sent
		res.Accepted += s.accepted
		res.Errors += s.errors
		for code, n := range s.rejected {
			res.Rejected[code] += n
		}
		lat = append(lat, s.latencies...)
	}
	slices.Sort(lat)
	res.ElapsedS = round(elapsed.Seconds(), 3)
	if elapsed > 0 {
		res.MsgsPerS = round(float64(res.Accepted)/elapsed.Seconds(), 1)
	}
	res.P50Ms = round(ms(percentile(lat, 0.50)), 2)
	res.P99Ms = round(ms(percentile(lat, 0.99)), 2)
	return res, nil
}

// waitOrDone waits for wg or for ctx to end.
func waitOrDone(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// percentile returns the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}

// makeBody returns size bytes of printable text in lines of at most 78
// characters plus CRLF.
func makeBody(size int) []byte {
	const line = "The quick brown fox jumps over the lazy dog. 0123456789 hve bench filler text"
	b := make([]byte, 0, size)
	for len(b) < size {
		n := min(len(line), size-len(b))
		if n <= 2 {
			b = append(b, strings.Repeat("x", n)...)
			break
		}
		b = append(b, line[:n-2]...)
		b = append(b, '\r', '\n')
	}
	return b
}

type runner struct {
	cfg      Config
	dialAddr string
	hard     context.Context
	tls      *tls.Config
	authLine string
	body     []byte

	next  atomic.Int64 // index of the next message to send
	start time.Time    // when the active phase started (for Rate)

	open, maxOpen atomic.Int64 // signed-in sessions now, and at most

	logMu     sync.Mutex
	loggedErr int
}

// workerStats is what one connection counted; merged at the end.
type workerStats struct {
	sent, accepted, errors int64
	rejected               map[string]int64
	latencies              []time.Duration
}

// fatalError ends a connection's work: retrying cannot help (wrong
// password, TLS refused).
type fatalError struct{ error }

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Log == nil {
		return
	}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	r.loggedErr++
	if r.loggedErr > maxLoggedErrors {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if r.loggedErr == maxLoggedErrors {
		msg += " (further errors are only counted)"
	}
	fmt.Fprintln(r.cfg.Log, "hve bench: "+msg)
}

// work is one connection's loop: it takes message numbers until they run
// out or the run's time is up. c is an open connection, or nil.
func (r *runner) work(ctx context.Context, st *workerStats, c *client) {
	defer func() {
		if c != nil {
			c.quit()
		}
	}()
	for ctx.Err() == nil {
		i := r.next.Add(1) - 1
		if i >= int64(r.cfg.Msgs) {
			return
		}
		if r.cfg.Rate > 0 && !r.pace(ctx, i) {
			return
		}
		if c == nil {
			if c = r.connectRetrying(ctx, st); c == nil {
				return
			}
		}
		st.sent++
		if err := r.send(c, i, st); err != nil {
			st.errors++
			r.logf("message %d: %v", i, err)
			c.close()
			c = nil
			continue
		}
		if r.cfg.ReconnectPerMessage {
			c.quit()
			c = nil
		}
	}
}

// pace waits until message i is due under Config.Rate; false if the run
// ended first.
func (r *runner) pace(ctx context.Context, i int64) bool {
	due := r.start.Add(time.Duration(float64(i) / r.cfg.Rate * float64(time.Second)))
	wait := time.Until(due)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connectRetrying opens a connection, retrying a few times after
// temporary failures; nil when it gave up (counted and logged).
func (r *runner) connectRetrying(ctx context.Context, st *workerStats) *client {
	for failures := 0; ; {
		c, err := r.connect()
		if err == nil {
			return c
		}
		st.errors++
		failures++
		r.logf("connection: %v", err)
		var fatal fatalError
		if errors.As(err, &fatal) || failures >= maxSetupFailures || ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// client is one SMTP connection.
type client struct {
	conn   net.Conn
	text   *textproto.Conn
	stop   func() bool // unregisters the hard stop
	closed func()      // counts the session as no longer open
}

// cmd sends a command and reads its reply.
func (c *client) cmd(format string, args ...any) (int, string, error) {
	if err := c.text.PrintfLine(format, args...); err != nil {
		return 0, "", err
	}
	return c.text.ReadResponse(0)
}

// expect sends a command and fails unless the reply has code want.
func (c *client) expect(want int, format string, args ...any) error {
	code, msg, err := c.cmd(format, args...)
	if err != nil {
		return err
	}
	if code != want {
		verb, _, _ := strings.Cut(format, " ")
		return fmt.Errorf("%s: %d %s", verb, code, msg)
	}
	return nil
}

func (c *client) close() {
	c.stop()
	c.conn.Close()
	if c.closed != nil {
		c.closed()
		c.closed = nil
	}
}

// quit ends the session politely, without waiting long for the reply.
func (c *client) quit() {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	c.cmd("QUIT")
	c.close()
}

// connect dials and prepares a connection: greeting, EHLO, STARTTLS, EHLO,
// AUTH PLAIN.
func (r *runner) connect() (*client, error) {
	conn, err := net.DialTimeout("tcp", r.dialAddr, setupTimeout)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(setupTimeout))
	c := &client{conn: conn, text: textproto.NewConn(conn)}
	c.stop = context.AfterFunc(r.hard, func() { conn.SetDeadline(time.Now()) })
	if err := r.setup(c); err != nil {
		c.close()
		return nil, err
	}
	n := r.open.Add(1)
	for m := r.maxOpen.Load(); n > m && !r.maxOpen.CompareAndSwap(m, n); m = r.maxOpen.Load() {
	}
	c.closed = func() { r.open.Add(-1) }
	return c, nil
}

func (r *runner) setup(c *client) error {
	if code, msg, err := c.text.ReadResponse(0); err != nil {
		return fmt.Errorf("greeting: %w", err)
	} else if code != 220 {
		return fmt.Errorf("greeting: %d %s", code, msg)
	}
	if err := c.expect(250, "EHLO hve-bench"); err != nil {
		return err
	}
	if r.cfg.StartTLS {
		if err := c.expect(220, "STARTTLS"); err != nil {
			return fatalError{err}
		}
		tc := tls.Client(c.conn, r.tls)
		if err := tc.Handshake(); err != nil {
			return fatalError{fmt.Errorf("TLS handshake: %w", err)}
		}
		c.conn = tc
		c.text = textproto.NewConn(tc)
		if err := c.expect(250, "EHLO hve-bench"); err != nil {
			return err
		}
	}
	if r.authLine != "" {
		code, msg, err := c.cmd("%s", r.authLine)
		if err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
		if code != 235 {
			err := fmt.Errorf("%s as %s: %d %s", strings.Fields(r.authLine)[1], r.cfg.User, code, msg)
			if code >= 500 {
				return fatalError{err}
			}
			return err
		}
	}
	return nil
}

// send sends message i on c. Refusals are counted in st; the error is for
// a connection that can no longer be used.
func (r *runner) send(c *client, i int64, st *workerStats) error {
	c.conn.SetDeadline(time.Now().Add(messageTimeout))
	start := time.Now()
	reject := func(code int) {
		st.rejected[strconv.Itoa(code)]++
	}
	// reset ends a transaction that cannot go on.
	reset := func() error { return c.expect(250, "RSET") }

	code, _, err := c.cmd("MAIL FROM:<%s>", r.cfg.From)
	if err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if code/100 != 2 {
		reject(code)
		return closing(code)
	}
	rcpts := make([]string, 0, r.cfg.Rcpts)
	for j := range r.cfg.Rcpts {
		rcpt := r.cfg.RcptList[(int(i)*r.cfg.Rcpts+j)%len(r.cfg.RcptList)]
		code, _, err := c.cmd("RCPT TO:<%s>", rcpt)
		if err != nil {
			return fmt.Errorf("RCPT: %w", err)
		}
		if code/100 != 2 {
			reject(code)
			if err := closing(code); err != nil {
				return err
			}
			continue
		}
		rcpts = append(rcpts, rcpt)
	}
	if len(rcpts) == 0 {
		return reset()
	}
	code, _, err = c.cmd("DATA")
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if code != 354 {
		reject(code)
		if err := closing(code); err != nil {
			return err
		}
		return reset()
	}
	w := c.text.DotWriter()
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: hve bench message %d\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", r.cfg.From, rcpts[0], i)
	w.Write(r.body)
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA content: %w", err)
	}
	code, _, err = c.text.ReadResponse(0)
	if err != nil {
		return fmt.Errorf("DATA reply: %w", err)
	}
	if code/100 != 2 {
		reject(code)
		return closing(code)
	}
	st.accepted++
	st.latencies = append(st.latencies, time.Since(start))
	return nil
}

// closing turns a 421 reply (the server is closing the connection) into an
// error, so that the connection is dropped.
func closing(code int) error {
	if code == 421 {
		return errors.New("server closed the connection (421)")
	}
	return nil
}
