package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// reportSendScript sends with smtplib: one message to the nested group
// (three people), one to alice and bob, and one to an external address,
// which is refused. It prints the queue ids of the accepted messages.
const reportSendScript = `
import json, re, smtplib, ssl, sys

host, port, user, pw, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ids = []
s = smtplib.SMTP(host, port, local_hostname="reports.e2e.test", timeout=30)
s.starttls(context=ctx)
s.login(user, pw)
for tag, to in [("group", ["all@contoso.test"]), ("people", ["alice@contoso.test", "bob@contoso.test"])]:
    msg = "From: %s\r\nTo: %s\r\nSubject: report %s %s\r\n\r\nHello.\r\n" % (user, ", ".join(to), tag, token)
    s.mail(user)
    for r in to:
        s.rcpt(r)
    code, text = s.data(msg)
    ids.append(re.search(r"<([0-9A-Z]+)>", text.decode()).group(1))
try:
    s.sendmail(user, ["someone@example.org"], "Subject: x\r\n\r\nx\r\n")
except smtplib.SMTPRecipientsRefused:
    pass
s.quit()
print(json.dumps(ids))
`

// readCSVScript reads a CSV file with Python's csv module and prints its
// rows as JSON objects keyed by the header.
const readCSVScript = `
import csv, json, sys
with open(sys.argv[1], newline="") as f:
    print(json.dumps(list(csv.DictReader(f))))
`

// TestReports sends mail with smtplib, then checks the usage report (CSV,
// read by Python) counts it, and that the detailed report, requested,
// polled and downloaded to a file as `hve report download ID > file.csv`,
// opens with Python's csv module and matches the trace row for row.
func TestReports(t *testing.T) {
	t.Parallel()
	python := requireTool(t, "python3", "python3")
	s := startSeeded(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sendPy, readPy := write("send.py", reportSendScript), write("read_csv.py", readCSVScript)
	readCSV := func(file string) []map[string]string {
		t.Helper()
		out, err := runTool(t, clientTimeout, nil, python, readPy, file)
		if err != nil {
			t.Fatalf("Python's csv module cannot read %s: %v\n%s", file, err, out)
		}
		var rows []map[string]string
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("read_csv.py output: %v\n%s", err, out)
		}
		return rows
	}

	host, port, _ := strings.Cut(s.smtp(), ":")
	out, err := runTool(t, clientTimeout, nil, python, sendPy, host, port, account, password, uniqueToken(t, "report"))
	if err != nil {
		t.Fatalf("smtplib script failed: %v\n%s", err, out)
	}
	var queueIDs []string
	if err := json.Unmarshal([]byte(out), &queueIDs); err != nil || len(queueIDs) != 2 {
		t.Fatalf("smtplib script output: %v\n%s", err, out)
	}
	s.waitDrained(30 * time.Second)
	s.waitRejected(external)

	t.Run("usage", func(t *testing.T) {
		s := s.with(t)
		file := write("usage.csv", s.cli("", "report", "usage", "--format", "csv"))
		rows := readCSV(file)
		want := map[string]string{"account": account, "period": time.Now().UTC().Format(time.DateOnly), "messages": "2",
			"recipients": "3", "expanded_recipients": "5", "failures": "0", "refusals": "1",
			"refusals_by_reason": "external-recipient=1", "estimated_cost": "0.000210"}
		if len(rows) != 1 {
			t.Fatalf("usage CSV rows = %v, want one for %s today", rows, account)
		}
		for k, v := range want {
			if rows[0][k] != v {
				t.Errorf("usage %s = %q, want %q (row %v)", k, rows[0][k], v, rows[0])
			}
		}
		if rows[0]["bytes"] == "" || rows[0]["bytes"] == "0" {
			t.Errorf("usage bytes = %q", rows[0]["bytes"])
		}
		table := s.cli("", "report", "usage")
		if !strings.Contains(table, account) || !strings.Contains(table, "TOTAL") {
			t.Errorf("usage table:\n%s", table)
		}
	})

	t.Run("detailed", func(t *testing.T) {
		s := s.with(t)
		until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		id := strings.TrimSpace(s.cli("", "report", "request", "--account", account, "--since", "1h", "--until", until))
		eventually(t, 30*time.Second, "report "+id+" done", func() (bool, string) {
			var job struct {
				State string `json:"state"`
				Error string `json:"error"`
			}
			s.cliJSON(&job, "report", "status", id)
			if job.State == "failed" {
				t.Fatalf("report %s failed: %s", id, job.Error)
			}
			return job.State == "done", job.State
		})
		file := filepath.Join(dir, "report.csv")
		s.downloadTo(file, "report", "download", id)
		rows := readCSV(file)

		// What the trace says: one row per queue id and recipient, with
		// the latest event's status, and one per refusal.
		type key struct{ queueID, recipient string }
		latest := map[key]traceEvent{}
		var want []string
		for _, e := range s.trace("--since", "1h", "--sender", account) {
			if e.QueueID == "" {
				if e.Event == "Rejected" {
					want = append(want, fmt.Sprintf("|%s|%s|Rejected|Rejected", e.Recipient, e.MessageID))
				}
				continue
			}
			latest[key{e.QueueID, e.Recipient}] = e // oldest first: the last one wins
		}
		for k, e := range latest {
			want = append(want, fmt.Sprintf("%s|%s|%s|%s|%s", k.queueID, k.recipient, e.MessageID, e.Status, e.Event))
		}
		var got []string
		for _, r := range rows {
			for _, col := range []string{"received", "last_event_time"} {
				if _, err := time.Parse(time.RFC3339Nano, r[col]); err != nil {
					t.Errorf("row %v: %s is not RFC 3339", r, col)
				}
			}
			if r["sender"] != account || r["detail"] == "" {
				t.Errorf("row %v: want sender %s and a detail", r, account)
			}
			got = append(got, fmt.Sprintf("%s|%s|%s|%s|%s", r["queue_id"], r["recipient"], r["message_id"], r["status"], r["last_event"]))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("report rows do not match the trace:\ngot  %q\nwant %q", got, want)
		}
		// Two messages: the group and its three people, alice and bob; and
		// the refusal.
		if len(rows) != 7 {
			t.Errorf("report has %d rows, want 7", len(rows))
		}
		for _, qid := range queueIDs {
			if !slices.ContainsFunc(rows, func(r map[string]string) bool { return r["queue_id"] == qid }) {
				t.Errorf("queue id %s is not in the report", qid)
			}
		}
	})
}

// downloadTo runs an hve CLI command with its standard output going to
// file, as `hve ... > file` does.
func (s *server) downloadTo(file string, args ...string) {
	s.t.Helper()
	f, err := os.Create(file)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hveBin, append([]string{"--server", "http://" + s.admin(), "--data", s.dataDir}, args...)...)
	cmd.Env = cleanEnv()
	cmd.Stdout = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("hve %s > %s: %v; stderr: %s", strings.Join(args, " "), file, err, stderr.String())
	}
}
