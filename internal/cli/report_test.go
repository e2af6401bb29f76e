package cli_test

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"hve/internal/trace"
)

// TestReportCommands: usage in its three formats, and a detailed report
// requested, polled and downloaded, against a real node.
func TestReportCommands(t *testing.T) {
	n := startNode(t)
	seed(t, n)
	tenants, err := n.srv.Store.Tenants(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	refusal := trace.Event{TenantID: tenants[0].ID, Time: time.Now().UTC(), Sender: "app@contoso.test", Recipient: "x@example.org",
		Event: trace.EventRejected, Status: trace.StatusRejected, Detail: "550 5.5.105 External sending is not supported for High Volume Email accounts"}
	if err := n.srv.Store.AddEvents(t.Context(), []trace.Event{refusal}); err != nil {
		t.Fatal(err)
	}

	t.Run("usage table", func(t *testing.T) {
		out := n.ok(t, "report", "usage")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 5 || !strings.HasPrefix(lines[0], "PERIOD") || !strings.HasPrefix(lines[2], "TOTAL") ||
			!strings.Contains(lines[4], "cost at 42 per million") {
			t.Fatalf("usage table =\n%s", out)
		}
		// Columns line up: each header word starts where its value does.
		row := lines[1]
		for _, col := range []string{"ACCOUNT", "MESSAGES", "COST", "REFUSAL REASONS"} {
			i := strings.Index(lines[0], col)
			if i < 0 || i >= len(row) || row[i] == ' ' || row[i-1] != ' ' {
				t.Errorf("column %s is not aligned:\n%s", col, out)
			}
		}
		if !strings.Contains(row, "app@contoso.test") || !strings.Contains(row, "0.000042") || !strings.Contains(row, "external-recipient=1") {
			t.Errorf("usage row = %q", row)
		}
	})

	t.Run("usage csv", func(t *testing.T) {
		out := n.ok(t, "report", "usage", "--format", "csv", "--account", "APP@contoso.test", "--by", "hour")
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) != 2 {
			t.Fatalf("usage CSV = %q (%v)", out, err)
		}
		got := map[string]string{}
		for i, h := range recs[0] {
			got[h] = recs[1][i]
		}
		want := map[string]string{"account": "app@contoso.test", "messages": "1", "recipients": "1", "expanded_recipients": "1",
			"failures": "0", "refusals": "1", "refusals_by_reason": "external-recipient=1", "estimated_cost": "0.000042"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("usage CSV %s = %q, want %q\n%s", k, got[k], v, out)
			}
		}
		if p, err := time.Parse(time.RFC3339, got["period"]); err != nil || p.Minute() != 0 {
			t.Errorf("hourly period = %q", got["period"])
		}
	})

	t.Run("usage json", func(t *testing.T) {
		for _, args := range [][]string{{"--json"}, {"--format", "json"}} {
			var rep struct {
				Rows []map[string]any `json:"rows"`
			}
			out := n.ok(t, append([]string{"report", "usage"}, args...)...)
			if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Rows) != 1 {
				t.Fatalf("usage %v = %s (%v)", args, out, err)
			}
			for _, f := range []string{"account", "period", "messages", "recipients", "expanded_recipients", "bytes", "failures", "refusals", "estimated_cost"} {
				if _, ok := rep.Rows[0][f]; !ok {
					t.Errorf("usage JSON row lacks %s: %v", f, rep.Rows[0])
				}
			}
		}
		if r := n.run(t, "", "report", "usage", "--format", "xml"); r.code != 2 {
			t.Errorf("--format xml: exit %d, want 2", r.code)
		}
		if r := n.run(t, "", "report", "usage", "--by", "week"); r.code != 1 || !strings.Contains(r.stderr, "week") {
			t.Errorf("--by week: exit %d, %s", r.code, r.stderr)
		}
	})

	t.Run("detailed", func(t *testing.T) {
		if r := n.run(t, "", "report", "request", "--since", "1d"); r.code != 2 {
			t.Errorf("request without --until: exit %d, want 2", r.code)
		}
		until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		id := strings.TrimSpace(n.ok(t, "report", "request", "--since", "1d", "--until", until))
		var job struct {
			State string `json:"state"`
			Rows  int    `json:"rows"`
		}
		deadline := time.Now().Add(10 * time.Second)
		for job.State != "done" {
			if err := json.Unmarshal([]byte(n.ok(t, "report", "status", id, "--json")), &job); err != nil {
				t.Fatal(err)
			}
			if job.State == "failed" || time.Now().After(deadline) {
				t.Fatalf("report %s: %+v", id, job)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if out := n.ok(t, "report", "status", id); !strings.Contains(out, "done") {
			t.Errorf("report status table = %s", out)
		}
		out := n.ok(t, "report", "download", id)
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) != 3 || job.Rows != 2 {
			t.Fatalf("report CSV (%d rows in the job) = %q (%v)", job.Rows, out, err)
		}
		if recs[1][4] != "alice@contoso.test" || recs[1][7] != "Delivered" || recs[2][4] != "x@example.org" || recs[2][7] != "Rejected" {
			t.Errorf("report rows = %q", recs[1:])
		}

		// --wait shows the finished job.
		out = n.ok(t, "report", "request", "--account", "nobody@contoso.test", "--since", "1d", "--until", until, "--wait")
		if !strings.Contains(out, "done") || !strings.Contains(out, "nobody@contoso.test") {
			t.Errorf("report request --wait = %s", out)
		}
		if r := n.run(t, "", "report", "download", "999"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("download of an unknown report: exit %d, %s", r.code, r.stderr)
		}
	})
}
