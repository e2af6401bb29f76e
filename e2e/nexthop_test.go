package e2e

// Delivery to real next hops, started by the test from the Debian
// packages: Postfix as an smtp next hop (its own configuration and queue
// directory, delivering its domain into a Maildir), and Dovecot receiving
// over LMTP on a unix socket into real mailboxes. The test reads the
// files they wrote.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	postfixDomain = "pf.test" // delivered by Postfix into one Maildir
	dovecotDomain = "dc.test" // delivered by Dovecot, a mailbox per user
)

// requireRoot is for servers that must start as root (Postfix's master
// refuses anything else). Like requireTool, it fails under CI.
func requireRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := what + " must be started as root; run the end-to-end tests as root"
	if underCI() {
		t.Fatal(msg + " (CI is set, so this is a failure)")
	}
	t.Skip(msg)
}

// lookupIDs returns the uid and gid of a system user the packages made.
func lookupIDs(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s (made by its Debian package): %v", name, err)
	}
	fmt.Sscan(u.Uid, &uid)
	fmt.Sscan(u.Gid, &gid)
	return uid, gid
}

// shortTempDir makes a directory others may traverse (the next hops'
// users write below it) with a short path (unix socket paths are short).
func shortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// daemon is a server process run in the foreground in its own process
// group, so that stopping it stops every process it forked.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	out    bytes.Buffer
	exited chan struct{}
}

func startDaemon(t *testing.T, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: name, exited: make(chan struct{})}
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	return d
}

// stop sends SIGTERM to the process group and waits, then SIGKILL.
func (d *daemon) stop() {
	if d == nil {
		return
	}
	pgid := d.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-d.exited
	}
	// Children that outlived their parent are in the same group.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitDial waits until network/addr accepts connections.
func waitDial(t *testing.T, d *daemon, network, addr string, logFile string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-d.exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%s exited before it listened on %s: %s\n%s", d.name, addr, d.out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%s does not listen on %s: %v\n%s\n%s", d.name, addr, err, d.out.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// maildirWith returns the messages of a Maildir (new and cur) whose
// content holds token.
func maildirWith(t *testing.T, maildir, token string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(maildir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(maildir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(token)) {
				out = append(out, string(b))
			}
		}
	}
	return out
}

// portOutsideEphemeral returns a free loopback address whose port is below
// the ephemeral range: the port stays free until the server binds it later
// in the test, as the system never picks it for other sockets.
func portOutsideEphemeral(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

// waitMaildir waits until a Maildir holds a message with token (Postfix
// answers 250 when it has queued a message; its delivery agent writes the
// file a moment later) and returns the messages that hold it.
func waitMaildir(t *testing.T, maildir, token string) []string {
	t.Helper()
	var got []string
	eventually(t, 15*time.Second, "the message in "+maildir, func() (bool, string) {
		got = maildirWith(t, maildir, token)
		return len(got) > 0, fmt.Sprintf("%d messages with %s", len(got), token)
	})
	// A second copy would come as fast as the first: give it the time.
	time.Sleep(200 * time.Millisecond)
	return maildirWith(t, maildir, token)
}

// postfix is a Postfix instance of the test's own: configuration, queue
// and Maildir in a temporary directory, listening on a loopback port,
// accepting mail for its domain from 127.0.0.0/8 (its mynetworks) and
// delivering it with the virtual agent into one Maildir.
type postfix struct {
	t       *testing.T
	dir     string
	addr    string
	maildir string
	d       *daemon
}

func newPostfix(t *testing.T, domain string) *postfix {
	t.Helper()
	requireTool(t, "postfix", "postfix")
	requireRoot(t, "Postfix")
	uid, gid := lookupIDs(t, "postfix")
	dir := shortTempDir(t, "hve-pf")
	// Postfix starts after hve has tried (and failed) to reach it.
	p := &postfix{t: t, dir: dir, addr: portOutsideEphemeral(t), maildir: filepath.Join(dir, "mail", "box")}
	for _, sub := range []string{"queue", "data", "mail"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"data", "mail"} {
		if err := os.Chown(filepath.Join(dir, sub), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = postfix.e2e.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# hve relays from this machine: mynetworks lets it in.
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
virtual_mailbox_domains = %[2]s
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:%[3]d
virtual_gid_maps = static:%[4]d
virtual_minimum_uid = 1
biff = no
`, dir, domain, uid, gid)
	masterCF := p.addr + ` inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	for name, content := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// postfix check creates the queue directories with their owners.
	if out, err := exec.Command("postfix", "-c", dir, "check").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		t.Fatalf("postfix check: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(p.stop)
	return p
}

// start runs the instance's master in the foreground until stop.
func (p *postfix) start() {
	p.t.Helper()
	p.d = startDaemon(p.t, "postfix", "postfix", "-c", p.dir, "start-fg")
	waitDial(p.t, p.d, "tcp", p.addr, filepath.Join(p.dir, "maillog"))
}

func (p *postfix) stop() {
	if p.d != nil {
		exec.Command("postfix", "-c", p.dir, "stop").Run()
		p.d.stop()
		p.d = nil
	}
}

func (p *postfix) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// dovecot is a Dovecot of the test's own, speaking LMTP on a unix socket
// and storing mail in a Maildir per user; users outside its list do not
// exist (LMTP refuses them per recipient).
type dovecot struct {
	dir    string
	socket string
	d      *daemon
}

func startDovecot(t *testing.T, users ...string) *dovecot {
	t.Helper()
	requireTool(t, "dovecot", "dovecot-core dovecot-lmtpd")
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
		msg := "Dovecot's LMTP server is not installed; install it with: apt-get install dovecot-lmtpd"
		if underCI() {
			t.Fatal(msg + " (CI is set, so a missing server is a failure)")
		}
		t.Skip(msg)
	}
	requireRoot(t, "Dovecot (as configured here, with its own users)")
	uid, gid := lookupIDs(t, "dovecot")
	dir := shortTempDir(t, "hve-dc")
	for _, sub := range []string{"run", "state", "mail"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "mail"), uid, gid); err != nil {
		t.Fatal(err)
	}
	var passwd strings.Builder
	for _, u := range users {
		fmt.Fprintf(&passwd, "%s::::::\n", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(passwd.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = %[2]d
mail_location = maildir:%[1]s/mail/%%n/Maildir
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = passwd-file
  args = username_format=%%n %[1]s/users
  default_fields = uid=dovecot gid=dovecot home=%[1]s/mail/%%n
}
service lmtp {
  # hve connects as another user: the socket must let it write.
  unix_listener lmtp {
    mode = 0666
  }
}
`, dir, uid)
	confFile := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	dc := &dovecot{dir: dir, socket: filepath.Join(dir, "run", "lmtp")}
	dc.d = startDaemon(t, "dovecot", "dovecot", "-F", "-c", confFile)
	t.Cleanup(dc.d.stop)
	waitDial(t, dc.d, "unix", dc.socket, filepath.Join(dir, "dovecot.log"))
	return dc
}

// maildir is the Maildir Dovecot keeps for user.
func (dc *dovecot) maildir(user string) string {
	return filepath.Join(dc.dir, "mail", user, "Maildir")
}

func (dc *dovecot) log() string {
	b, _ := os.ReadFile(filepath.Join(dc.dir, "dovecot.log"))
	return string(b)
}

// queueItem is one entry of `hve queue list --json`.
type queueItem struct {
	QueueID   string `json:"queue_id"`
	Status    string `json:"status"`
	LastReply string `json:"last_reply"`
	Attempts  int    `json:"attempts"`
}

// TestNextHops: hve relays to a real Postfix over SMTP and to a real
// Dovecot over LMTP, and both store the message in their Maildirs. While
// Postfix is down its message waits in hve's queue, deferred; queue
// control holds it, and releasing it once Postfix runs delivers it.
func TestNextHops(t *testing.T) {
	t.Parallel()
	swaks := requireTool(t, "swaks", "swaks libnet-ssleay-perl")
	pf := newPostfix(t, postfixDomain)
	dc := startDovecot(t, "bob", "carol")
	s := startSeeded(t)
	defer func() {
		if t.Failed() {
			t.Logf("Postfix log:\n%s\nDovecot log:\n%s", pf.log(), dc.log())
		}
	}()

	s.cli("", "domain", "add", postfixDomain, "--type", "internal-relay")
	s.cli("", "route", "set", postfixDomain, "--type", "smtp", "--target", pf.addr)
	s.cli("", "domain", "add", dovecotDomain, "--type", "internal-relay")
	s.cli("", "route", "set", dovecotDomain, "--type", "lmtp", "--target", "unix:"+dc.socket)

	send := func(token string, to ...string) string {
		t.Helper()
		out, err := runTool(t, clientTimeout, nil, swaks, "--server", s.smtp(), "--tls", "--ehlo", "swaks.e2e.test",
			"--auth", "PLAIN", "--auth-user", account, "--auth-password", password, "--from", account, "--to", strings.Join(to, ","),
			"--header", "Subject: next hop "+token, "--body", "Hello, next hop. "+token, "--timeout", "30")
		if err != nil {
			t.Fatalf("swaks failed: %v\n%s", err, out)
		}
		m := acceptedRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("swaks transcript has no `250 2.0.0 OK <ID>` reply:\n%s", out)
		}
		return m[1]
	}

	t.Run("postfix down, then back", func(t *testing.T) {
		s := s.with(t)
		token := uniqueToken(t, "pf-down")
		qid := send(token, "someone@"+postfixDomain)
		var items []queueItem
		eventually(t, 30*time.Second, "the message deferred in hve's queue", func() (bool, string) {
			var page struct {
				Items []queueItem `json:"items"`
			}
			s.cliJSON(&page, "queue", "list", "--status", "deferred", "--domain", postfixDomain)
			items = page.Items
			return len(items) == 1 && items[0].QueueID == qid, fmt.Sprintf("%+v", items)
		})
		if !strings.Contains(items[0].LastReply, "cannot connect to next hop smtp "+pf.addr) || items[0].Attempts != 1 {
			t.Errorf("queued message = %+v; want one attempt and the connection failure", items[0])
		}
		if out := s.cli("", "queue", "hold", qid); !strings.Contains(out, "held "+qid) {
			t.Errorf("queue hold: %s", out)
		}
		pf.start()
		// Held, it stays queued however long Postfix has been up.
		time.Sleep(500 * time.Millisecond)
		if got := maildirWith(t, pf.maildir, token); len(got) != 0 {
			t.Fatalf("a held message reached Postfix")
		}
		// Release makes it due at once (no wait for the retry schedule).
		s.cli("", "queue", "release", qid)
		s.waitDrained(30 * time.Second)
		got := waitMaildir(t, pf.maildir, token)
		if len(got) != 1 {
			t.Fatalf("Postfix's Maildir holds %d copies of the message, want 1", len(got))
		}
		seen := map[string]bool{}
		for _, e := range s.trace("--queue-id", qid) {
			seen[e.Event] = true
			if e.Event == "Delivered" && (!strings.Contains(e.Detail, "next hop smtp "+pf.addr) || !strings.Contains(e.Detail, "250 2.0.0 Ok: queued as")) {
				t.Errorf("Delivered event detail %q; want Postfix's reply", e.Detail)
			}
		}
		for _, ev := range []string{"Received", "Deferred", "Held", "Released", "Delivered"} {
			if !seen[ev] {
				t.Errorf("trace of %s has no %s event", qid, ev)
			}
		}
	})

	t.Run("postfix and dovecot", func(t *testing.T) {
		s := s.with(t)
		if pf.d == nil {
			pf.start()
		}
		token := uniqueToken(t, "hops")
		qid := send(token, "someone@"+postfixDomain, "bob@"+dovecotDomain, "carol@"+dovecotDomain, "nobody@"+dovecotDomain)
		s.waitDrained(30 * time.Second)

		got := waitMaildir(t, pf.maildir, token)
		if len(got) != 1 {
			t.Fatalf("Postfix's Maildir holds %d copies, want 1", len(got))
		}
		// hve's Received header and the content arrived as sent.
		if !strings.Contains(got[0], "by "+serverName+" (hve)") || !strings.Contains(got[0], "Hello, next hop. "+token) {
			t.Errorf("the message Postfix stored lacks hve's Received header or the body:\n%s", got[0])
		}
		for _, u := range []string{"bob", "carol"} {
			if got := maildirWith(t, dc.maildir(u), token); len(got) != 1 {
				t.Errorf("Dovecot's Maildir of %s holds %d copies, want 1", u, len(got))
			}
		}
		if _, err := os.Stat(dc.maildir("nobody")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Dovecot made a Maildir for a user it does not have: %v", err)
		}
		final := map[string]traceEvent{}
		for _, e := range s.trace("--queue-id", qid) {
			final[e.Recipient] = e
		}
		for _, r := range []string{"someone@" + postfixDomain, "bob@" + dovecotDomain, "carol@" + dovecotDomain} {
			if e := final[r]; e.Event != "Delivered" {
				t.Errorf("last event of %s = %s (%s), want Delivered", r, e.Event, e.Detail)
			}
		}
		if e := final["nobody@"+dovecotDomain]; e.Event != "Failed" || !strings.Contains(e.Detail, "lmtp") || !strings.Contains(e.Detail, "550") {
			t.Errorf("last event of nobody = %s (%s); want Failed with Dovecot's 550", e.Event, e.Detail)
		}
	})
}
