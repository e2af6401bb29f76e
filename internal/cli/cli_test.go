package cli_test

// The CLI runs in-process against a real hve node on loopback ports, so
// these tests check the command line and the API it calls together.

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"hve/internal/alert"
	"hve/internal/cli"
	"hve/internal/config"
	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/server"
	"hve/internal/store"
	"hve/internal/trace"
)

type node struct {
	srv   *server.Server
	url   string
	token string
}

func startNode(t *testing.T) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Hostname = "hve.test"
	cfg.SMTP.Addr = "127.0.0.1:0"
	cfg.Client.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	srv, err := server.Start(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	token, err := os.ReadFile(srv.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return &node{srv: srv, url: "http://" + srv.AdminAddr.String(), token: strings.TrimSpace(string(token))}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command line with $HVE_SERVER and $HVE_TOKEN pointing at n.
func (n *node) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return n.runEnv(t, map[string]string{"HVE_SERVER": n.url, "HVE_TOKEN": n.token}, stdin, args...)
}

func (n *node) runEnv(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(args, cli.Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	return result{code, out.String(), errb.String()}
}

// ok runs the command line and fails the test unless it exits 0.
func (n *node) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := n.run(t, "", args...)
	if r.code != 0 {
		t.Fatalf("hve %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// seed creates contoso.test with alice's mailbox, which holds one message.
func seed(t *testing.T, n *node) {
	t.Helper()
	n.ok(t, "domain", "add", "contoso.test")
	n.ok(t, "mailbox", "create", "--address", "alice@contoso.test", "--name", "alice", "--alias", "al@contoso.test")
	st := n.srv.Store
	ctx := t.Context()
	e, err := st.Lookup(ctx, "alice@contoso.test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := []byte("From: app@contoso.test\r\nSubject: Quarterly report\r\n\r\nhello\r\n")
	m := &queue.Message{QueueID: queue.NewID(now), TenantID: e.TenantID, AccountID: 1, Sender: "app@contoso.test",
		Recipients: []string{"alice@contoso.test"}, MessageID: "q1@contoso.test", Subject: "Quarterly report",
		ClientIP: "192.0.2.1", Size: int64(len(body)), ReceivedAt: now, Body: body}
	ev := trace.Event{TenantID: e.TenantID, Time: now, QueueID: m.QueueID, MessageID: m.MessageID, Sender: m.Sender,
		Recipient: "alice@contoso.test", Event: trace.EventReceived, Status: trace.StatusPending}
	if err := st.Enqueue(ctx, []*queue.Message{m}, []trace.Event{ev}); err != nil {
		t.Fatal(err)
	}
	// The node's delivery worker delivers it; wait for the copy.
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := st.MailboxMessages(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the message was not delivered to alice's mailbox")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFlagsAnywhere: global flags may come before the command, between its
// words, or among its arguments.
func TestFlagsAnywhere(t *testing.T) {
	n := startNode(t)
	seed(t, n)
	orders := [][]string{
		{"mailbox", "messages", "alice@contoso.test", "--json"},
		{"--json", "mailbox", "messages", "alice@contoso.test"},
		{"mailbox", "--json", "messages", "alice@contoso.test"},
		{"mailbox", "messages", "--json", "alice@contoso.test"},
		{"-json", "mailbox", "messages", "al@contoso.test"},
		{"--tenant", "default", "mailbox", "messages", "alice@contoso.test", "--json"},
		{"mailbox", "messages", "alice@contoso.test", "--tenant", "default", "--json"},
		{"--json=true", "mailbox", "messages", "--tenant=default", "alice@contoso.test"},
		{"--server", n.url, "mailbox", "messages", "alice@contoso.test", "--json"},
	}
	for _, args := range orders {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out := n.ok(t, args...)
			var list []store.MailboxMessage
			if err := json.Unmarshal([]byte(out), &list); err != nil {
				t.Fatalf("output is not a JSON list of messages: %v\n%s", err, out)
			}
			if len(list) != 1 || list[0].Subject != "Quarterly report" || list[0].From != "app@contoso.test" {
				t.Errorf("messages = %+v, want alice's one message", list)
			}
		})
	}

	t.Run("table without --json", func(t *testing.T) {
		out := n.ok(t, "mailbox", "messages", "alice@contoso.test")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "SUBJECT") || !strings.Contains(lines[1], "Quarterly report") {
			t.Errorf("table = %q, want a header and alice's message", out)
		}
	})
	t.Run("mailbox read", func(t *testing.T) {
		var list []store.MailboxMessage
		if err := json.Unmarshal([]byte(n.ok(t, "mailbox", "messages", "alice@contoso.test", "--json")), &list); err != nil || len(list) != 1 {
			t.Fatalf("mailbox messages: %v, %v", list, err)
		}
		out := n.ok(t, "mailbox", "read", "alice@contoso.test", strconv.FormatInt(list[0].ID, 10))
		if !strings.Contains(out, "Subject: Quarterly report") || !strings.Contains(out, "hello") {
			t.Errorf("mailbox read = %q, want the message as delivered", out)
		}
	})
}

func TestCommandLookupAndUsage(t *testing.T) {
	n := startNode(t)
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr string
		wantStdout string
	}{
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`, ""},
		{"command group alone", []string{"mailbox"}, 2, "usage: hve COMMAND", ""},
		{"help", []string{"help"}, 0, "", "mailbox messages ADDRESS"},
		{"--help", []string{"--help"}, 0, "", "usage: hve COMMAND"},
		{"no arguments", nil, 2, "usage: hve COMMAND", ""},
		{"missing argument", []string{"mailbox", "messages"}, 2, "expected ADDRESS, got 0 argument(s)", ""},
		{"too many arguments", []string{"mailbox", "messages", "a@contoso.test", "b@contoso.test"}, 2, "expected ADDRESS, got 2", ""},
		{"command help", []string{"mailbox", "messages", "-h"}, 0, "usage: hve mailbox messages [flags] ADDRESS", ""},
		{"unknown flag", []string{"mailbox", "list", "--colour"}, 2, "flag provided but not defined: -colour", ""},
		{"command flag of another command", []string{"domain", "list", "--type", "internal-relay"}, 2, "not defined: -type", ""},
		{"tenant list", []string{"tenant", "list"}, 0, "", "default"},
		{"API error", []string{"domain", "remove", "nowhere.test"}, 1, "hve domain remove:", ""},
		{"bad value", []string{"account", "set", "x@contoso.test", "--enabled", "maybe"}, 2, "--enabled must be true or false", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := n.run(t, "", tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.wantStderr) || !strings.Contains(r.stdout, tc.wantStdout) {
				t.Errorf("hve %s: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stderr containing %q, stdout containing %q",
					strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.code, tc.wantStderr, tc.wantStdout)
			}
		})
	}
}

// TestLongestCommandWins: "group remove-member" is not "group remove" with
// an argument.
func TestLongestCommandWins(t *testing.T) {
	n := startNode(t)
	n.ok(t, "domain", "add", "contoso.test")
	n.ok(t, "mailbox", "create", "--address", "alice@contoso.test", "--name", "alice")
	n.ok(t, "group", "create", "--address", "team@contoso.test", "--name", "Team")
	n.ok(t, "group", "add-member", "team@contoso.test", "alice@contoso.test")
	n.ok(t, "group", "remove-member", "team@contoso.test", "alice@contoso.test")
	var groups []directory.Group
	if err := json.Unmarshal([]byte(n.ok(t, "group", "list", "--json")), &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Address != "team@contoso.test" || len(groups[0].Members) != 0 {
		t.Errorf("after remove-member, groups = %+v; want team without members", groups)
	}
	n.ok(t, "group", "remove", "team@contoso.test")
	if out := n.ok(t, "group", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("after group remove, group list = %s", out)
	}
}

func TestAccountCommands(t *testing.T) {
	n := startNode(t)
	n.ok(t, "domain", "add", "contoso.test")

	out := n.ok(t, "account", "create", "--name", "HR", "--address", "HR@Contoso.test", "--alias", "jobs@contoso.test", "--reply-to", "team@contoso.test")
	if !strings.Contains(out, "created HVE account hr@contoso.test") || !strings.Contains(out, "generated password (shown this once): ") {
		t.Errorf("account create printed %q, want the account and its generated password", out)
	}

	r := n.run(t, "a-good-password\n", "account", "create", "--password-stdin", "--name", "App", "--address", "app@contoso.test", "--json")
	if r.code != 0 {
		t.Fatalf("account create --password-stdin: %d %s", r.code, r.stderr)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || created["address"] != "app@contoso.test" {
		t.Errorf("account create --json = %s (%v)", r.stdout, err)
	}
	if pw, ok := created["password"]; ok && pw != "" {
		t.Errorf("a password given on stdin is echoed back: %v", pw)
	}

	n.ok(t, "account", "set", "hr@contoso.test", "--enabled", "false", "--display-name", "Human Resources", "--alias", "people@contoso.test")
	var acc directory.Account
	if err := json.Unmarshal([]byte(n.ok(t, "--json", "account", "show", "hr@contoso.test")), &acc); err != nil {
		t.Fatal(err)
	}
	if acc.Enabled || acc.DisplayName != "Human Resources" || len(acc.Aliases) != 1 || acc.Aliases[0] != "people@contoso.test" || acc.ReplyTo != "team@contoso.test" {
		t.Errorf("after account set, account = %+v", acc)
	}

	if r := n.run(t, "", "account", "set", "hr@contoso.test"); r.code != 2 || !strings.Contains(r.stderr, "nothing to change") {
		t.Errorf("account set without changes: exit %d, %s", r.code, r.stderr)
	}
	if r := n.run(t, "", "account", "create", "--password-stdin", "--name", "x", "--address", "x@contoso.test"); r.code != 2 || !strings.Contains(r.stderr, "standard input is empty") {
		t.Errorf("--password-stdin with empty input: exit %d, %s", r.code, r.stderr)
	}

	out = n.ok(t, "account", "list")
	if !strings.Contains(out, "hr@contoso.test") || !strings.Contains(out, "app@contoso.test") || !strings.Contains(out, "ENABLED") {
		t.Errorf("account list = %q", out)
	}
	n.ok(t, "account", "remove", "app@contoso.test")
	if r := n.run(t, "", "account", "show", "app@contoso.test"); r.code != 1 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("show of a removed account: exit %d, %s", r.code, r.stderr)
	}
}

func TestTraceCommand(t *testing.T) {
	n := startNode(t)
	seed(t, n)
	var events []trace.Event
	out := n.ok(t, "trace", "--sender", "APP@contoso.test", "--json", "--since", "1h")
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 || events[0].Event != trace.EventReceived {
		t.Errorf("trace = %+v, want the Received event and the delivery", events)
	}
	if r := n.run(t, "", "trace", "--status", "lost"); r.code != 1 || !strings.Contains(r.stderr, "not one of") {
		t.Errorf("trace --status lost: exit %d, %s", r.code, r.stderr)
	}
	if r := n.run(t, "", "trace", "--status", "Quarantined"); r.code != 1 ||
		!strings.Contains(r.stderr, "hve quarantines nothing yet: mail flow rules are not implemented") {
		t.Errorf("trace --status Quarantined: exit %d, %s; want the no-quarantine message", r.code, r.stderr)
	}
	// The subject filter runs in the store: only the delivery event
	// carries the seeded message's subject.
	events = nil
	out = n.ok(t, "trace", "--subject", "REPORT", "--subject-match", "ends-with", "--json")
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 {
		t.Error("trace --subject REPORT --subject-match ends-with found nothing")
	}
	for _, e := range events {
		if e.Subject != "Quarterly report" {
			t.Errorf("trace --subject REPORT found an event with subject %q", e.Subject)
		}
	}
	if out := n.ok(t, "trace", "--subject", "report", "--subject-match", "starts-with", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("trace --subject report --subject-match starts-with = %s, want []", out)
	}
	if r := n.run(t, "", "trace", "--subject", "x", "--subject-match", "exact"); r.code != 1 || !strings.Contains(r.stderr, "starts-with") {
		t.Errorf("trace --subject-match exact: exit %d, %s; want the list of modes", r.code, r.stderr)
	}
	// The event filter: an alert raised about the account, found by its
	// event name in any letter case; a wrong name gets the list.
	tn, err := n.srv.Store.TenantByName(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.Alerts.Raise(t.Context(), alert.Alert{TenantID: tn.ID, Account: "app@contoso.test", Kind: alert.KindAnomaly,
		Message: "app@contoso.test sent 5000 recipients in an hour"}); err != nil {
		t.Fatal(err)
	}
	out = n.ok(t, "trace", "--event", "alert")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "Alert") || !strings.Contains(lines[1], "5000 recipients") {
		t.Errorf("trace --event alert = %q, want the one alert", out)
	}
	if r := n.run(t, "", "trace", "--event", "Alerts"); r.code != 1 || !strings.Contains(r.stderr, "SignInRefused") {
		t.Errorf("trace --event Alerts: exit %d, %s; want the list of event names", r.code, r.stderr)
	}
	out = n.ok(t, "trace", "--queue-id", "<"+strings.ToLower(events[0].QueueID)+">", "--status", "delivered")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "Delivered") {
		t.Errorf("trace by pasted queue id and status = %q, want one Delivered row", out)
	}
}

func TestTokenAndTenantChoice(t *testing.T) {
	n := startNode(t)
	t.Run("token from the data directory", func(t *testing.T) {
		r := n.runEnv(t, map[string]string{"HVE_SERVER": n.url}, "", "--data", n.srv.Config.Data, "tenant", "list")
		if r.code != 0 || !strings.Contains(r.stdout, "default") {
			t.Errorf("exit %d: %s%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("no token", func(t *testing.T) {
		r := n.runEnv(t, map[string]string{"HVE_SERVER": n.url}, "", "--data", t.TempDir(), "tenant", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "no admin token") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		r := n.runEnv(t, map[string]string{"HVE_SERVER": n.url}, "", "--token", "hve_wrong", "tenant", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("no server", func(t *testing.T) {
		r := n.runEnv(t, map[string]string{"HVE_TOKEN": n.token}, "", "--server", "http://127.0.0.1:1", "tenant", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the hve admin API") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})

	n.ok(t, "tenant", "create", "fabrikam")
	if r := n.run(t, "", "domain", "list"); r.code != 2 || !strings.Contains(r.stderr, "choose one with --tenant") {
		t.Errorf("with two tenants and no --tenant: exit %d, %s", r.code, r.stderr)
	}
	n.ok(t, "domain", "add", "fabrikam.test", "--tenant", "fabrikam", "--type", "internal-relay")
	out := n.ok(t, "--tenant", "fabrikam", "domain", "list")
	if !strings.Contains(out, "fabrikam.test") || !strings.Contains(out, "internal-relay") {
		t.Errorf("domain list of fabrikam = %q", out)
	}
	if out := n.ok(t, "domain", "list", "--tenant", "default", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("domain list of default = %q, want []", out)
	}
}
