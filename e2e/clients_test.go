package e2e

import (
	"encoding/json"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// acceptedRe finds the queue id in the spec's accepted reply, as a client
// transcript shows it.
var acceptedRe = regexp.MustCompile(`250 2\.0\.0 OK <([0-9A-Z]{20})>`)

const clientTimeout = 60 * time.Second

// TestSwaks submits with swaks over STARTTLS with AUTH LOGIN and AUTH PLAIN
// to the nested group (and one of its members again), checks each person
// got exactly one copy and the trace; then checks the headers hve added, and
// that an external recipient is refused with 550 5.5.105 and traced.
func TestSwaks(t *testing.T) {
	t.Parallel()
	swaks := requireTool(t, "swaks", "swaks libnet-ssleay-perl")
	s := startSeeded(t)

	swaksArgs := func(mech, to, subject string) []string {
		return []string{
			"--server", s.smtp(), "--tls", "--ehlo", "swaks.e2e.test",
			"--auth", mech, "--auth-user", account, "--auth-password", password,
			"--from", account, "--to", to,
			"--header", "Subject: " + subject, "--body", "Hello from swaks.",
			"--timeout", "30",
		}
	}

	delivered := map[string]string{} // mechanism -> queue id
	for _, mech := range []string{"LOGIN", "PLAIN"} {
		t.Run("auth-"+mech, func(t *testing.T) {
			s := s.with(t)
			token := uniqueToken(t, "swaks")
			out, err := runTool(t, clientTimeout, nil, swaks, swaksArgs(mech, outerGroup+","+bob, "swaks "+mech+" "+token)...)
			if err != nil {
				t.Fatalf("swaks failed: %v\n%s", err, out)
			}
			for _, want := range []string{"-> STARTTLS", "~> AUTH " + mech, "<~  235 ", "~> RCPT TO:<" + outerGroup + ">"} {
				if !strings.Contains(out, want) {
					t.Errorf("swaks transcript lacks %q:\n%s", want, out)
				}
			}
			m := acceptedRe.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("swaks transcript has no `250 2.0.0 OK <ID>` reply:\n%s", out)
			}
			qid := m[1]
			s.waitDrained(30 * time.Second)
			// bob is in the envelope and in the nested group: one copy.
			s.checkDeliveredOnce(qid, token, alice, bob, carol)
			events := s.checkTrace(qid, []string{outerGroup, bob}, []string{outerGroup}, people)
			// The id as the reply shows it, in angle brackets, finds the same events.
			if again := s.trace("--queue-id", "<"+qid+">"); len(again) != len(events) {
				t.Errorf("trace --queue-id <%s> found %d events, --queue-id %s found %d", qid, len(again), qid, len(events))
			}
			delivered[mech] = qid
		})
	}

	t.Run("headers", func(t *testing.T) {
		s := s.with(t)
		qid := delivered["LOGIN"]
		if qid == "" {
			t.Fatal("the AUTH LOGIN message was not delivered (see the LOGIN subtest)")
		}
		copies := copiesOf(s.messages(alice), qid)
		if len(copies) != 1 {
			t.Fatalf("alice has %d copies of %s", len(copies), qid)
		}
		raw := s.cli("", "mailbox", "read", alice, strconv.FormatInt(copies[0].ID, 10))
		msg, err := mail.ReadMessage(strings.NewReader(raw))
		if err != nil {
			t.Fatalf("delivered message does not parse: %v\n%s", err, raw)
		}
		h := msg.Header
		if got := h["Reply-To"]; len(got) != 1 || got[0] != replyTo {
			t.Errorf("Reply-To = %q, want the account's %q once\n%s", got, replyTo, raw)
		}
		received := h["Received"]
		found := false
		for _, r := range received {
			if strings.Contains(r, "by "+serverName+" (hve)") && strings.Contains(r, "id "+qid) &&
				strings.Contains(r, "ESMTPSA") && strings.Contains(r, "from swaks.e2e.test") {
				found = true
			}
		}
		if !found {
			t.Errorf("no Received header names the server %s and queue id %s: %q\n%s", serverName, qid, received, raw)
		}
		if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != account {
			t.Errorf("From = %q, want %s", h.Get("From"), account)
		}
		if h.Get("Message-Id") == "" || h.Get("Date") == "" {
			t.Errorf("Message-Id or Date missing:\n%s", raw)
		}
		if !strings.Contains(raw, "Hello from swaks.") {
			t.Errorf("body missing:\n%s", raw)
		}
	})

	t.Run("external-recipient", func(t *testing.T) {
		s := s.with(t)
		token := uniqueToken(t, "swaks-ext")
		out, err := runTool(t, clientTimeout, nil, swaks, swaksArgs("LOGIN", external, "swaks external "+token)...)
		if err == nil {
			t.Errorf("swaks succeeded sending to %s; want a failure\n%s", external, out)
		}
		if !strings.Contains(out, "550 5.5.105 External sending is not supported for High Volume Email accounts") {
			t.Errorf("swaks transcript lacks the 550 5.5.105 reply:\n%s", out)
		}
		if acceptedRe.MatchString(out) {
			t.Errorf("a message to an external recipient was accepted:\n%s", out)
		}
		s.waitRejected(external)
	})
}

// waitRejected waits for the Rejected trace event of a refused recipient.
func (s *server) waitRejected(rcpt string) {
	s.t.Helper()
	eventually(s.t, 15*time.Second, "Rejected trace event for "+rcpt, func() (bool, string) {
		events := s.trace("--recipient", rcpt, "--status", "Rejected")
		for _, e := range events {
			if e.Event == "Rejected" && e.Sender == account && strings.Contains(e.Detail, "550 5.5.105") && e.QueueID == "" {
				return true, ""
			}
		}
		return false, formatEvents(events)
	})
}

func formatEvents(events []traceEvent) string {
	b, _ := json.Marshal(events)
	return string(b)
}

// TestCurl submits with curl over STARTTLS (--ssl-reqd) and checks the
// message lands, keeping the Reply-To the message set; and that an
// external recipient makes curl fail with the 550 reply.
func TestCurl(t *testing.T) {
	t.Parallel()
	curl := requireTool(t, "curl", "curl")
	s := startSeeded(t)
	dir := t.TempDir()

	send := func(t *testing.T, token, replyToHeader string, rcpts ...string) (string, error) {
		msg := "From: HR Notify <" + account + ">\r\n" +
			"To: " + strings.Join(rcpts, ", ") + "\r\n" +
			"Subject: curl " + token + "\r\n"
		if replyToHeader != "" {
			msg += "Reply-To: " + replyToHeader + "\r\n"
		}
		msg += "\r\nHello from curl.\r\n"
		file := filepath.Join(dir, token+".eml")
		if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"--verbose", "--silent", "--show-error", "--ssl-reqd", "--insecure",
			"--connect-timeout", "10", "--max-time", "30",
			"smtp://" + s.smtp() + "/curl.e2e.test",
			"--mail-from", account, "--user", account + ":" + password, "--upload-file", file}
		for _, r := range rcpts {
			args = append(args, "--mail-rcpt", r)
		}
		return runTool(t, clientTimeout, nil, curl, args...)
	}

	t.Run("deliver", func(t *testing.T) {
		s := s.with(t)
		token := uniqueToken(t, "curl")
		const ownReplyTo = "payroll@contoso.test"
		out, err := send(t, token, ownReplyTo, alice, innerGroup)
		if err != nil {
			t.Fatalf("curl failed: %v\n%s", err, out)
		}
		if !strings.Contains(out, "> STARTTLS") || !strings.Contains(out, "> AUTH ") {
			t.Errorf("curl did not use STARTTLS and AUTH:\n%s", out)
		}
		m := acceptedRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("curl output has no `250 2.0.0 OK <ID>` reply:\n%s", out)
		}
		qid := m[1]
		s.waitDrained(30 * time.Second)
		s.checkDeliveredOnce(qid, token, alice, bob, carol)
		s.checkTrace(qid, []string{alice, innerGroup}, []string{innerGroup}, people)

		// A Reply-To the application set is kept, not replaced.
		copies := copiesOf(s.messages(bob), qid)
		if len(copies) != 1 {
			t.Fatalf("bob has %d copies", len(copies))
		}
		raw := s.cli("", "mailbox", "read", bob, strconv.FormatInt(copies[0].ID, 10))
		msg, err := mail.ReadMessage(strings.NewReader(raw))
		if err != nil {
			t.Fatalf("delivered message does not parse: %v\n%s", err, raw)
		}
		if got := msg.Header["Reply-To"]; len(got) != 1 || got[0] != ownReplyTo {
			t.Errorf("Reply-To = %q, want the message's own %q once\n%s", got, ownReplyTo, raw)
		}
	})

	t.Run("external-recipient", func(t *testing.T) {
		s := s.with(t)
		token := uniqueToken(t, "curl-ext")
		out, err := send(t, token, "", external)
		if err == nil {
			t.Errorf("curl succeeded sending to %s; want a non-zero exit\n%s", external, out)
		}
		if !strings.Contains(out, "550 5.5.105") {
			t.Errorf("curl output lacks the 550 5.5.105 reply:\n%s", out)
		}
		if acceptedRe.MatchString(out) {
			t.Errorf("a message to an external recipient was accepted:\n%s", out)
		}
		s.waitRejected(external)
	})
}

// pythonScript drives smtplib the way applications do. It prints one JSON
// object with what happened; the test judges it.
const pythonScript = `
import json, smtplib, ssl, sys

host, port, user, pw, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
res = {}

def message(tag, to):
    return ("From: HR Notify <%s>\r\nTo: %s\r\nSubject: python %s %s\r\n\r\nHello from smtplib.\r\n"
            % (user, to, tag, token))

s = smtplib.SMTP(host, port, local_hostname="python.e2e.test", timeout=30)
s.ehlo()
# AUTH before STARTTLS gets the spec's 530 reply.
code, text = s.docmd("AUTH", "PLAIN AGZvbwBiYXI=")
res["auth_before_tls"] = [code, text.decode()]
s.starttls(context=ctx)
s.ehlo()
s.login(user, pw)
res["mailbox_refused"] = s.sendmail(user, ["carol@contoso.test"], message("mailbox", "carol@contoso.test"))
res["group_refused"] = s.sendmail(user, ["all@contoso.test"], message("group", "all@contoso.test"))
try:
    s.sendmail(user, ["someone@example.org"], message("external", "someone@example.org"))
    res["external"] = "accepted"
except smtplib.SMTPRecipientsRefused as e:
    res["external"] = {r: [c, t.decode()] for r, (c, t) in e.recipients.items()}
s.quit()

s = smtplib.SMTP(host, port, local_hostname="python.e2e.test", timeout=30)
s.starttls(context=ctx)
try:
    s.login(user, pw + "-wrong")
    res["wrong_password"] = "accepted"
except smtplib.SMTPAuthenticationError as e:
    res["wrong_password"] = [e.smtp_code, e.smtp_error.decode()]
s.quit()

print(json.dumps(res))
`

// TestPythonSmtplib submits with Python's smtplib: STARTTLS, login,
// sendmail to a mailbox and to the nested group; an external recipient
// raises SMTPRecipientsRefused (550) and a wrong password
// SMTPAuthenticationError (535).
func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	python := requireTool(t, "python3", "python3")
	s := startSeeded(t)
	script := filepath.Join(t.TempDir(), "smtplib_e2e.py")
	if err := os.WriteFile(script, []byte(pythonScript), 0o600); err != nil {
		t.Fatal(err)
	}
	token := uniqueToken(t, "py")
	host, port, _ := strings.Cut(s.smtp(), ":")
	out, err := runTool(t, clientTimeout, nil, python, script, host, port, account, password, token)
	if err != nil {
		t.Fatalf("python smtplib script failed: %v\n%s", err, out)
	}
	var res struct {
		AuthBeforeTLS  []any                         `json:"auth_before_tls"`
		MailboxRefused map[string]any                `json:"mailbox_refused"`
		GroupRefused   map[string]any                `json:"group_refused"`
		External       map[string][2]json.RawMessage `json:"external"`
		WrongPassword  []any                         `json:"wrong_password"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("script output is not the expected JSON: %v\n%s", err, out)
	}
	if len(res.AuthBeforeTLS) != 2 || res.AuthBeforeTLS[0] != float64(530) || res.AuthBeforeTLS[1] != "5.7.0 Must issue a STARTTLS command first" {
		t.Errorf("AUTH before STARTTLS: got %v, want 530 5.7.0 Must issue a STARTTLS command first", res.AuthBeforeTLS)
	}
	if res.MailboxRefused == nil || len(res.MailboxRefused) != 0 || res.GroupRefused == nil || len(res.GroupRefused) != 0 {
		t.Errorf("sendmail refused recipients: mailbox %v, group %v", res.MailboxRefused, res.GroupRefused)
	}
	ext, ok := res.External[external]
	if !ok || len(res.External) != 1 {
		t.Errorf("sendmail to %s: want SMTPRecipientsRefused for it alone, got %s", external, out)
	} else {
		var code int
		var text string
		json.Unmarshal(ext[0], &code)
		json.Unmarshal(ext[1], &text)
		if code != 550 || !strings.HasPrefix(text, "5.5.105 External sending is not supported") {
			t.Errorf("refused %s with %d %q, want 550 5.5.105", external, code, text)
		}
	}
	if len(res.WrongPassword) != 2 || res.WrongPassword[0] != float64(535) || res.WrongPassword[1] != "5.7.3 Authentication unsuccessful" {
		t.Errorf("wrong password: got %v, want SMTPAuthenticationError 535 5.7.3 Authentication unsuccessful", res.WrongPassword)
	}

	s.waitDrained(30 * time.Second)
	for _, c := range []struct {
		tag  string
		want []string
	}{{"mailbox", []string{carol}}, {"group", people}} {
		subject := "python " + c.tag + " " + token
		var qid string
		for _, p := range people {
			n := 0
			for _, m := range s.messages(p) {
				if m.Subject == subject {
					n++
					if qid != "" && m.QueueID != qid {
						t.Errorf("%q has two queue ids: %s and %s", subject, qid, m.QueueID)
					}
					qid = m.QueueID
				}
			}
			want := 0
			if slices.Contains(c.want, p) {
				want = 1
			}
			if n != want {
				t.Errorf("%s has %d copies of %q, want %d", p, n, subject, want)
			}
		}
		if qid != "" && c.tag == "group" {
			s.checkTrace(qid, []string{outerGroup}, []string{outerGroup}, people)
		}
	}
	for _, p := range people {
		if got := withSubject(s.messages(p), "python external "+token); len(got) != 0 {
			t.Errorf("%s got the message refused for %s: %+v", p, external, got)
		}
	}
	s.waitRejected(external)
}
