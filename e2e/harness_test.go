package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The organisation every test server is seeded with (see seed).
const (
	domain   = "contoso.test"
	account  = "hr-notify@contoso.test"
	password = "e2e-Secret-Passw0rd"
	replyTo  = "hr-replies@contoso.test"
	alice    = "alice@contoso.test"
	bob      = "bob@contoso.test"
	carol    = "carol@contoso.test"
	// outerGroup has innerGroup and alice as members; innerGroup has bob
	// and carol. Mail to outerGroup reaches all three.
	outerGroup = "all@contoso.test"
	innerGroup = "team@contoso.test"
	// external is outside the accepted domains.
	external = "someone@example.org"
	// serverName is the hostname the test servers are configured with;
	// it names them in the greeting and in Received headers.
	serverName = "hve-e2e.contoso.test"
)

var people = []string{alice, bob, carol}

// hveBin is the hve binary TestMain builds.
var hveBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hve-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	hveBin = filepath.Join(dir, "hve")
	if err := buildHVE(hveBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building hve:", err)
		return 1
	}
	return m.Run()
}

// buildHVE builds ./cmd/hve into out, with the race detector when the tests
// themselves run with it.
func buildHVE(out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "hve/cmd/hve")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = ".." // the module root
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %w\n%s", cmd.Args, err, outBuf.String())
	}
	return nil
}

// underCI reports whether the tests run in CI (CI set, and not to false
// or 0), where a missing program or privilege is a failure, not a skip.
func underCI() bool {
	ci := os.Getenv("CI")
	return ci != "" && ci != "false" && ci != "0"
}

// requireTool returns the path of a client program. When it is missing the
// test fails under CI (CI is set) and is skipped otherwise.
func requireTool(t *testing.T, name, aptPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found on PATH; install it with: apt-get install %s", name, aptPackage)
	if underCI() {
		t.Fatal(msg + " (CI is set, so a missing client is a failure)")
	}
	t.Skip(msg)
	return ""
}

// server is one `hve serve` process and its data directory, as seen by one
// test: its helpers report failures to t. Subtests use with(t).
type server struct {
	t *testing.T
	*proc
}

// proc is the server process and its files.
type proc struct {
	dataDir string
	config  string
	logPath string

	mu         sync.Mutex
	smtpAddr   string // host:port of the HVE endpoint
	clientAddr string // host:port of the standard client endpoint
	adminAddr  string // host:port of the admin API
	cmd        *exec.Cmd
	exited     chan struct{}
}

// with returns the same server for a subtest, reporting failures to t.
func (s *server) with(t *testing.T) *server {
	return &server{t: t, proc: s.proc}
}

// startServer starts hve serve on free loopback ports with a fresh data
// directory. It is stopped when the test ends.
func startServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t, "")
}

// startServerWith is startServer with more configuration: conf is TOML
// added to the end of the configuration file.
func startServerWith(t *testing.T, conf string) *server {
	t.Helper()
	base := t.TempDir()
	s := &server{t: t, proc: &proc{
		dataDir: filepath.Join(base, "data"),
		config:  filepath.Join(base, "hve.toml"),
		logPath: filepath.Join(base, "hve.log"),
	}}
	conf = fmt.Sprintf("hostname = %q\nlog_level = \"info\"\n", serverName) + conf
	if err := os.WriteFile(s.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	s.smtpAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.adminAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	s.clientAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	t.Cleanup(func() {
		s.stop()
		s.checkLog()
	})
	s.start()
	return s
}

// freePorts finds n distinct free TCP ports on the loopback interface.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// start runs hve serve on the server's data directory and ports and waits
// until its admin API answers /healthz.
func (s *server) start() {
	s.t.Helper()
	s.retryOnOtherPorts(s.tryStart)
}

// retryOnOtherPorts runs try; if a port was taken meanwhile (ports are free
// only when chosen), it picks other free ports and tries again, up to three
// times in all.
func (s *server) retryOnOtherPorts(try func() error) {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			s.t.Fatal(err)
		}
		s.t.Logf("%v; choosing other ports", err)
		ports := freePorts(s.t, 3)
		s.mu.Lock()
		s.smtpAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		s.adminAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		s.clientAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
		s.mu.Unlock()
	}
}

var errPortTaken = errors.New("a listen address of hve serve is in use")

func (s *server) tryStart() error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	offset, _ := logFile.Seek(0, io.SeekEnd)
	smtpAddr, adminAddr := s.addrs()
	fmt.Fprintf(logFile, "=== e2e: starting hve serve at %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(hveBin, "serve", "--config", s.config, "--data", s.dataDir,
		"--smtp-addr", smtpAddr, "--admin-addr", adminAddr, "--client-addr", s.client())
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting hve serve: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := s.health(); err == nil {
			return nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(s.logPath)
			if int64(len(b)) >= offset && bytes.Contains(b[offset:], []byte("address already in use")) {
				return fmt.Errorf("%w (%s, %s)", errPortTaken, smtpAddr, adminAddr)
			}
			return fmt.Errorf("hve serve exited before it answered /healthz (%v); log:\n%s", cmd.ProcessState, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hve serve did not answer /healthz on %s within 30s; log:\n%s", adminAddr, s.logTail())
		}
	}
}

// addrs returns the current SMTP and admin API addresses (host:port).
func (s *server) addrs() (smtpAddr, adminAddr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.smtpAddr, s.adminAddr
}

// smtp returns the SMTP endpoint's address.
func (s *server) smtp() string {
	a, _ := s.addrs()
	return a
}

// client returns the standard client endpoint's address.
func (s *server) client() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientAddr
}

// admin returns the admin API's address.
func (s *server) admin() string {
	_, a := s.addrs()
	return a
}

// kill ends the server with SIGKILL (no chance to clean up) and waits for
// the process to be gone.
func (s *server) kill() {
	s.t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill -9 hve serve: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		s.t.Fatal("hve serve did not die within 10s of SIGKILL")
	}
}

// stop ends the server with SIGTERM, and SIGKILL if it takes too long.
func (s *server) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if !cmd.ProcessState.Success() {
			s.t.Errorf("hve serve did not shut down cleanly on SIGTERM: %v", cmd.ProcessState)
		}
	case <-time.After(15 * time.Second):
		s.t.Errorf("hve serve did not stop within 15s of SIGTERM; killing it")
		cmd.Process.Kill()
		<-exited
	}
}

// checkLog fails the test on a data race the server reported, and shows the
// log of a failed test.
func (s *server) checkLog() {
	b, _ := os.ReadFile(s.logPath)
	if bytes.Contains(b, []byte("WARNING: DATA RACE")) {
		s.t.Errorf("the race detector found a data race in hve serve; log:\n%s", b)
		return
	}
	if s.t.Failed() {
		s.t.Logf("hve serve log (last part):\n%s", s.logTail())
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	const max = 8000
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return string(b)
}

// cleanEnv is the environment for hve processes and clients: without HVE_*
// variables that could point the CLI at another server, and, for hve built
// with the race detector, without its one-second pause at exit (which
// would make every CLI call take a second).
func cleanEnv() []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "HVE_"):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		default:
			env = append(env, kv)
		}
	}
	return append(env, "GORACE="+gorace)
}

type health struct {
	Status     string `json:"status"`
	QueueDepth int    `json:"queue_depth"`
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func (s *server) health() (health, error) {
	var h health
	resp, err := httpClient.Get("http://" + s.admin() + "/healthz")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("/healthz: HTTP %d: %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return h, fmt.Errorf("/healthz: %w: %s", err, body)
	}
	return h, nil
}

// waitDrained waits until every queued message has been delivered. A
// message is queued before its 250 reply, so after this every accepted
// message is in its mailboxes.
func (s *server) waitDrained(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h, err := s.health()
		if err == nil && h.QueueDepth == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("queue not drained within %v: last /healthz %+v, err %v", timeout, h, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs an hve CLI command against this server and returns its standard
// output; it fails the test if the command fails.
func (s *server) cli(stdin string, args ...string) string {
	s.t.Helper()
	out, err := s.tryCLI(stdin, args...)
	if err != nil {
		s.t.Fatalf("hve %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (s *server) tryCLI(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--server", "http://" + s.admin(), "--data", s.dataDir}, args...)
	cmd := exec.CommandContext(ctx, hveBin, full...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w; stderr: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// cliJSON runs a CLI command with --json and decodes its output into v.
func (s *server) cliJSON(v any, args ...string) {
	s.t.Helper()
	out := s.cli("", append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		s.t.Fatalf("hve %s --json: decoding %q: %v", strings.Join(args, " "), out, err)
	}
}

// seed creates the test organisation through the CLI: the accepted domain,
// three mailboxes, the nested groups and the HVE account.
func (s *server) seed() {
	t := s.t
	t.Helper()
	s.cli("", "domain", "add", domain)
	for _, mb := range []struct{ addr, name string }{{alice, "Alice"}, {bob, "Bob"}, {carol, "Carol"}} {
		s.cli("", "mailbox", "create", "--address", mb.addr, "--name", mb.name)
	}
	s.cli("", "group", "create", "--address", innerGroup, "--name", "Team")
	s.cli("", "group", "add-member", innerGroup, bob)
	s.cli("", "group", "add-member", innerGroup, carol)
	s.cli("", "group", "create", "--address", outerGroup, "--name", "All staff")
	s.cli("", "group", "add-member", outerGroup, innerGroup)
	s.cli("", "group", "add-member", outerGroup, alice)

	var acc struct {
		Address  string `json:"address"`
		ReplyTo  string `json:"reply_to"`
		Enabled  bool   `json:"enabled"`
		Password string `json:"password"`
	}
	out := s.cli(password+"\n", "account", "create", "--name", "HR Notify", "--address", account,
		"--reply-to", replyTo, "--password-stdin", "--json")
	if err := json.Unmarshal([]byte(out), &acc); err != nil {
		t.Fatalf("account create --json: %v: %q", err, out)
	}
	if acc.Address != account || acc.ReplyTo != replyTo || !acc.Enabled || acc.Password != "" {
		t.Fatalf("account create: got %+v, want address %s, reply-to %s, enabled, no generated password", acc, account, replyTo)
	}

	var groups []struct {
		Address string `json:"address"`
		Members []struct {
			Address string `json:"address"`
		} `json:"members"`
	}
	s.cliJSON(&groups, "group", "list")
	members := map[string][]string{}
	for _, g := range groups {
		for _, m := range g.Members {
			members[g.Address] = append(members[g.Address], m.Address)
		}
	}
	if len(members[outerGroup]) != 2 || len(members[innerGroup]) != 2 {
		t.Fatalf("groups after seeding: %v", members)
	}
}

// startSeeded starts a server and seeds it.
func startSeeded(t *testing.T) *server {
	t.Helper()
	s := startServer(t)
	s.seed()
	return s
}

// mailboxMessage is one entry of `hve mailbox messages --json`.
type mailboxMessage struct {
	ID        int64    `json:"id"`
	QueueID   string   `json:"queue_id"`
	From      string   `json:"from"`
	To        []string `json:"to"`
	Recipient string   `json:"recipient"`
	Subject   string   `json:"subject"`
	MessageID string   `json:"message_id"`
	Size      int64    `json:"size"`
}

func (s *server) messages(addr string) []mailboxMessage {
	s.t.Helper()
	var list []mailboxMessage
	s.cliJSON(&list, "mailbox", "messages", addr)
	return list
}

// traceEvent is one event of `hve trace --json`.
type traceEvent struct {
	Time      time.Time `json:"time"`
	QueueID   string    `json:"queue_id"`
	MessageID string    `json:"message_id"`
	Sender    string    `json:"sender"`
	Recipient string    `json:"recipient"`
	Event     string    `json:"event"`
	Status    string    `json:"status"`
	Detail    string    `json:"detail"`
}

// traceFields are the JSON fields every trace event must carry.
var traceFields = []string{"time", "queue_id", "message_id", "sender", "recipient", "event", "status", "detail"}

// trace runs `hve trace ARGS --json`, checks that every event has the
// documented fields, and returns the events.
func (s *server) trace(args ...string) []traceEvent {
	s.t.Helper()
	out := s.cli("", append([]string{"trace", "--json"}, args...)...)
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		s.t.Fatalf("hve trace --json: %v: %q", err, out)
	}
	for _, e := range raw {
		for _, f := range traceFields {
			if _, ok := e[f]; !ok {
				s.t.Errorf("trace event lacks field %q: %v", f, e)
			}
		}
	}
	var events []traceEvent
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		s.t.Fatalf("hve trace --json: %v", err)
	}
	return events
}

// eventually polls cond until it returns true or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so within %v; last state: %s", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runTool runs an external client with a timeout and returns its combined
// output and exit error.
func runTool(t *testing.T, timeout time.Duration, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = cleanEnv()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s timed out after %v; output:\n%s", name, timeout, out)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running %s: %v", name, err)
	}
	return string(out), err
}

// uniqueToken makes a subject token no other message has.
func uniqueToken(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()), time.Now().UnixNano())
}

// copiesOf returns the entries of a mailbox list with the given queue id.
func copiesOf(list []mailboxMessage, queueID string) []mailboxMessage {
	var out []mailboxMessage
	for _, m := range list {
		if m.QueueID == queueID {
			out = append(out, m)
		}
	}
	return out
}

// withSubject returns the entries of a mailbox list whose subject contains token.
func withSubject(list []mailboxMessage, token string) []mailboxMessage {
	var out []mailboxMessage
	for _, m := range list {
		if strings.Contains(m.Subject, token) {
			out = append(out, m)
		}
	}
	return out
}

// checkDeliveredOnce checks that each of want got exactly one copy of the
// message with queueID (and subject token), and that nobody else got one.
func (s *server) checkDeliveredOnce(queueID, token string, want ...string) {
	s.t.Helper()
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	for _, p := range people {
		list := s.messages(p)
		copies := copiesOf(list, queueID)
		n := 0
		if wanted[p] {
			n = 1
		}
		if len(copies) != n {
			s.t.Errorf("%s has %d copies of %s, want %d: %+v", p, len(copies), queueID, n, copies)
			continue
		}
		if len(withSubject(list, token)) != n {
			s.t.Errorf("%s has %d messages with subject token %s, want %d", p, len(withSubject(list, token)), token, n)
		}
		for _, c := range copies {
			if !strings.Contains(c.Subject, token) || c.From != account || c.Recipient != p {
				s.t.Errorf("%s: copy of %s is %+v; want subject with %s, from %s, recipient %s", p, queueID, c, token, account, p)
			}
		}
	}
}

// checkTrace checks the trace of an accepted message: a Received event per
// envelope recipient, an Expanded event per group in the envelope, and one
// Delivered event per person.
func (s *server) checkTrace(queueID string, envelope, groups, delivered []string) []traceEvent {
	s.t.Helper()
	events := s.trace("--queue-id", queueID)
	got := map[string][]string{}
	for _, e := range events {
		if e.QueueID != queueID || e.Sender != account || e.MessageID == "" || e.Time.IsZero() || e.Detail == "" {
			s.t.Errorf("trace event of %s: %+v; want queue id %s, sender %s, a message id, a time and a detail", queueID, e, queueID, account)
		}
		wantStatus := map[string]string{"Received": "Pending", "Expanded": "Expanded", "Delivered": "Delivered"}[e.Event]
		if e.Status != wantStatus {
			s.t.Errorf("trace event %s of %s to %s has status %q, want %q", e.Event, queueID, e.Recipient, e.Status, wantStatus)
		}
		got[e.Event] = append(got[e.Event], e.Recipient)
	}
	same := func(event string, want []string) {
		g := append([]string(nil), got[event]...)
		w := append([]string(nil), want...)
		slices.Sort(g)
		slices.Sort(w)
		if strings.Join(g, ",") != strings.Join(w, ",") {
			s.t.Errorf("trace of %s: %s events for %v, want %v (all events: %+v)", queueID, event, g, w, events)
		}
	}
	same("Received", envelope)
	same("Expanded", groups)
	same("Delivered", delivered)
	if n := len(events) - len(got["Received"]) - len(got["Expanded"]) - len(got["Delivered"]); n != 0 {
		s.t.Errorf("trace of %s has %d unexpected events: %+v", queueID, n, events)
	}
	return events
}
