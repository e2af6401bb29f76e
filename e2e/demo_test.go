package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The demo organisation `hve serve --demo` creates (internal/demo).
const (
	demoGroup = "all-staff@contoso.test"
	demoTeam  = "hr-team@contoso.test"
	dave      = "dave@contoso.test"
	// demoClient is how the printed instructions call the CLI.
	demoClient = "go run ./cmd/hve"
)

// TestDemo runs `hve serve --demo` as a newcomer would: it runs the swaks
// and python3 commands the server prints, exactly as printed, then the
// printed `mailbox messages` and `trace` commands (with the built binary in
// place of `go run ./cmd/hve`), and checks the messages arrived. A restart
// on the same data directory seeds nothing again, shows the PASSWORD
// placeholder, and its instructions for setting a new password work.
func TestDemo(t *testing.T) {
	t.Parallel()
	requireTool(t, "bash", "bash")
	requireTool(t, "swaks", "swaks libnet-ssleay-perl")
	requireTool(t, "python3", "python3")

	s := newDemoServer(t)
	out := s.startDemo()

	// The first start prints a generated password.
	pwLine := regexp.MustCompile(`(?m)^\s*Password:\s+(\S+)\s*$`).FindStringSubmatch(out)
	if pwLine == nil || pwLine[1] == "PASSWORD" {
		t.Fatalf("the first start prints no generated password:\n%s", out)
	}
	pw := pwLine[1]
	for _, want := range []string{s.smtp(), account, demoGroup, "alice@" + domain} {
		if !strings.Contains(out, want) {
			t.Errorf("the instructions do not mention %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PASSWORD") {
		t.Errorf("the first start shows the PASSWORD placeholder:\n%s", out)
	}

	swaksCmd := printedCommand(t, out, "swaks ", "")
	pythonCmd := printedCommand(t, out, "python3 ", "")
	mailboxCmd := printedCommand(t, out, demoClient+" ", " mailbox messages alice@"+domain)
	traceCmd := printedCommand(t, out, demoClient+" ", " trace --sender "+account)
	for name, c := range map[string]string{"swaks": swaksCmd, "python3": pythonCmd} {
		if !strings.Contains(c, pw) || !strings.Contains(c, account) {
			t.Errorf("the %s command does not carry the account and its password:\n%s", name, c)
		}
	}

	// swaks, as printed.
	swaksOut, err := runTool(t, clientTimeout, nil, "bash", "-c", swaksCmd)
	if err != nil {
		t.Fatalf("the printed swaks command failed: %v\ncommand:\n%s\noutput:\n%s", err, swaksCmd, swaksOut)
	}
	m := acceptedRe.FindStringSubmatch(swaksOut)
	if m == nil {
		t.Fatalf("swaks transcript has no `250 2.0.0 OK <ID>` reply:\n%s", swaksOut)
	}
	swaksID := m[1]

	// python3, as printed.
	if pyOut, err := runTool(t, clientTimeout, nil, "bash", "-c", pythonCmd); err != nil {
		t.Fatalf("the printed python3 command failed: %v\ncommand:\n%s\noutput:\n%s", err, pythonCmd, pyOut)
	}
	s.waitDrained(30 * time.Second)

	// The printed mailbox and trace commands, with the built binary.
	list := s.runPrinted(mailboxCmd)
	if n := strings.Count(list, "Hello from hve"); n != 2 {
		t.Errorf("`mailbox messages` shows %d messages with subject \"Hello from hve\", want 2 (swaks and python3):\n%s", n, list)
	}
	if !strings.Contains(list, swaksID) || !strings.Contains(list, account) {
		t.Errorf("`mailbox messages` does not show the swaks message %s from %s:\n%s", swaksID, account, list)
	}
	tr := s.runPrinted(traceCmd)
	delivered := regexp.MustCompile(`(?m)^.*\balice@contoso\.test\s+Delivered\s+Delivered\b.*$`).FindAllString(tr, -1)
	if len(delivered) != 2 {
		t.Errorf("`trace` shows %d Delivered events for alice, want 2 (swaks and python3):\n%s", len(delivered), tr)
	} else if !strings.Contains(strings.Join(delivered, "\n"), swaksID) {
		t.Errorf("`trace` shows no Delivered event for alice of the swaks message %s:\n%s", swaksID, tr)
	}

	// The same, exactly, through --json.
	aliceMsgs := s.messages(alice)
	var ids []string
	for _, msg := range aliceMsgs {
		if msg.Subject != "Hello from hve" || msg.From != account || msg.Recipient != alice {
			t.Errorf("alice's message %+v; want subject \"Hello from hve\" from %s", msg, account)
		}
		ids = append(ids, msg.QueueID)
	}
	if len(ids) != 2 || !strings.Contains(strings.Join(ids, " "), swaksID) {
		t.Fatalf("alice holds %d messages (queue ids %v), want the swaks one %s and the python3 one", len(aliceMsgs), ids, swaksID)
	}
	everyone := []string{alice, bob, carol, dave}
	for _, id := range ids {
		s.checkTrace(id, []string{demoGroup}, []string{demoGroup}, everyone)
		for _, p := range everyone {
			if n := len(copiesOf(s.messages(p), id)); n != 1 {
				t.Errorf("%s holds %d copies of %s, want 1", p, n, id)
			}
		}
	}
	before := s.directoryState()

	// A restart on the same data directory: nothing is seeded again.
	s.stop()
	out2 := s.startDemo()
	if regexp.MustCompile(`(?m)^\s*Password:\s+PASSWORD\s*$`).FindString(out2) == "" {
		t.Errorf("the restart does not show the PASSWORD placeholder:\n%s", out2)
	}
	if strings.Contains(out2, pw) {
		t.Errorf("the restart prints the first start's password again:\n%s", out2)
	}
	if !strings.Contains(out2, "printed at the first start") {
		t.Errorf("the restart does not say the password was printed at the first start:\n%s", out2)
	}
	if after := s.directoryState(); after != before {
		t.Errorf("the restart changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if n := len(s.messages(alice)); n != 2 {
		t.Errorf("alice holds %d messages after the restart, want the 2 from before", n)
	}

	// The first password still signs in: the first start's swaks command
	// works against the restarted server.
	if o, err := runTool(t, clientTimeout, nil, "bash", "-c", swaksCmd); err != nil || !acceptedRe.MatchString(o) {
		t.Errorf("after the restart the first start's swaks command failed: %v\n%s", err, o)
	}

	// The printed way to set a new password works, and the printed swaks
	// command then sends with it in place of PASSWORD.
	const newPW = "e2e-Demo-New-Passw0rd"
	setCmd := printedCommand(t, out2, "echo NEWPASSWORD | ", " account set "+account+" --password-stdin")
	// The command is printed inside a parenthesised note.
	setCmd = strings.Replace(setCmd, "NEWPASSWORD", newPW, 1)
	s.runPrinted(setCmd)
	swaks2 := printedCommand(t, out2, "swaks ", "")
	if !strings.Contains(swaks2, "'PASSWORD'") {
		t.Fatalf("the restart's swaks command has no 'PASSWORD' placeholder:\n%s", swaks2)
	}
	swaks2 = strings.Replace(swaks2, "'PASSWORD'", "'"+newPW+"'", 1)
	o, err := runTool(t, clientTimeout, nil, "bash", "-c", swaks2)
	if err != nil || !acceptedRe.MatchString(o) {
		t.Fatalf("swaks with the new password failed: %v\n%s", err, o)
	}
	s.waitDrained(30 * time.Second)
	if n := len(s.messages(alice)); n != 4 {
		t.Errorf("alice holds %d messages, want 4", n)
	}
}

// demoServer is an `hve serve --demo` process; its standard output (the
// instructions) is kept apart from the log.
type demoServer struct {
	*server
	stdout *syncBuffer
}

func newDemoServer(t *testing.T) *demoServer {
	t.Helper()
	base := t.TempDir()
	s := &demoServer{server: &server{t: t, proc: &proc{
		dataDir: filepath.Join(base, "data"),
		logPath: filepath.Join(base, "hve.log"),
	}}}
	ports := freePorts(t, 3)
	s.smtpAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.adminAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	s.clientAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	t.Cleanup(func() {
		s.stop()
		s.checkLog()
	})
	return s
}

// startDemo starts `hve serve --demo` and returns what it printed once the
// instructions are complete. Like start, it retries on other ports if one
// was taken meanwhile.
func (s *demoServer) startDemo() string {
	s.t.Helper()
	var out string
	s.retryOnOtherPorts(func() (err error) {
		out, err = s.tryStartDemo()
		return err
	})
	return out
}

func (s *demoServer) tryStartDemo() (string, error) {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	offset, _ := logFile.Seek(0, io.SeekEnd)
	smtpAddr, adminAddr := s.addrs()
	fmt.Fprintf(logFile, "=== e2e: starting hve serve --demo at %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(hveBin, "serve", "--demo", "--data", s.dataDir, "--smtp-addr", smtpAddr, "--admin-addr", adminAddr, "--client-addr", s.client())
	cmd.Env = cleanEnv()
	s.stdout = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = s.stdout, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", fmt.Errorf("starting hve serve --demo: %w", err)
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

	// The `trace` command is the last line of the instructions.
	done := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(demoClient) + `.* trace .*\n`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := s.stdout.String()
		if done.MatchString(out) {
			if _, err := s.health(); err != nil {
				return out, fmt.Errorf("hve serve --demo printed its instructions but /healthz fails: %v", err)
			}
			return out, nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(s.logPath)
			if int64(len(b)) >= offset && bytes.Contains(b[offset:], []byte("address already in use")) {
				return "", fmt.Errorf("%w (%s, %s)", errPortTaken, smtpAddr, adminAddr)
			}
			return "", fmt.Errorf("hve serve --demo exited (%v) before printing its instructions; stdout:\n%s\nlog:\n%s", cmd.ProcessState, out, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("hve serve --demo did not print its instructions within 60s; stdout:\n%s\nlog:\n%s", out, s.logTail())
		}
	}
}

// printedCommand returns the command of the instructions that starts with
// prefix (after indentation) and contains sub, with its continuation lines,
// exactly as printed, so that bash runs it as a reader who pastes it would.
func printedCommand(t *testing.T, out, prefix, sub string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	var found []string
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		cmd := l
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSpace(lines[i])
			cmd += "\n" + l
		}
		if strings.Contains(cmd, sub) {
			found = append(found, cmd)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one command starting with %q and containing %q in the instructions, found %d:\n%s", prefix, sub, len(found), out)
	}
	return found[0]
}

// runPrinted runs a printed CLI command through bash with the built
// binary in place of `go run ./cmd/hve`, and returns its output; the
// command must succeed.
func (s *demoServer) runPrinted(command string) string {
	s.t.Helper()
	if strings.Count(command, demoClient) != 1 {
		s.t.Fatalf("printed command does not call %q once: %s", demoClient, command)
	}
	command = strings.Replace(command, demoClient, "'"+hveBin+"'", 1)
	out, err := runTool(s.t, 30*time.Second, nil, "bash", "-c", command)
	if err != nil {
		s.t.Fatalf("printed command failed: %v\ncommand: %s\noutput:\n%s", err, command, out)
	}
	return out
}

// directoryState lists the domains, mailboxes, groups and accounts.
func (s *demoServer) directoryState() string {
	s.t.Helper()
	var b strings.Builder
	for _, what := range []string{"domain", "mailbox", "group", "account"} {
		b.WriteString(s.cli("", what, "list", "--json"))
	}
	return b.String()
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
