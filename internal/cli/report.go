package cli

import (
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"hve/internal/store"
	metering "hve/internal/usage"
)

// reportCommands are the usage and detailed report commands.
func reportCommands() []command {
	return []command{
		{path: "report usage", help: "usage per account and day or hour, with the estimated cost", flags: reportUsageFlags, run: reportUsage},
		{path: "report request", help: "start a detailed report (CSV of every message and recipient) and print its id", flags: reportRequestFlags, run: reportRequest},
		{path: "report status", args: "ID", help: "show a detailed report's state", run: reportStatus},
		{path: "report download", args: "ID", help: "write a finished detailed report's CSV to standard output", run: reportDownload},
	}
}

func reportUsageFlags(fs *flag.FlagSet) {
	fs.String("account", "", "one sender `address` (default: every account)")
	fs.String("since", "", "`time`: RFC 3339, a date, or a duration before now such as 7d (default: the last 30 days)")
	fs.String("until", "", "`time`: as --since; a plain date means the end of that day (default: now)")
	fs.String("by", "day", "period of a row: `day` or hour (UTC)")
	fs.String("format", "table", "`table`, json or csv")
}

func reportUsage(c *ctx) error {
	if err := c.wantArgs(0, "no arguments"); err != nil {
		return err
	}
	format := c.str("format")
	if c.g.json {
		format = "json"
	}
	if format != "table" && format != "json" && format != "csv" {
		return usageError{"--format must be table, json or csv"}
	}
	q := url.Values{}
	for _, name := range []string{"account", "since", "until", "by"} {
		if v := c.str(name); v != "" {
			q.Set(name, v)
		}
	}
	if format == "csv" {
		q.Set("format", "csv")
		base, err := c.tenantPath()
		if err != nil {
			return err
		}
		return c.api.Stream(c, base+"/reports/usage?"+q.Encode(), c.env.Stdout)
	}
	var rep metering.Report
	if err := c.call("GET", "/reports/usage?"+q.Encode(), nil, &rep); err != nil {
		return err
	}
	if format == "json" {
		return c.jsonOut(rep)
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	line := func(period, account string, k metering.Counts) []string {
		return []string{period, account, n(k.Messages), n(k.Recipients), n(k.ExpandedRecipients), n(k.Bytes), n(k.Failures),
			n(k.Refusals), metering.FormatCost(k.EstimatedCost), metering.FormatReasons(k.RefusalsByReason)}
	}
	header := []string{"PERIOD", "ACCOUNT", "MESSAGES", "RECIPIENTS", "EXPANDED", "BYTES", "FAILURES", "REFUSALS", "COST", "REFUSAL REASONS"}
	err := c.show(rep, header, func() (rows [][]string) {
		for _, r := range rep.Rows {
			rows = append(rows, line(r.Period, r.Account, r.Counts))
		}
		return append(rows, line("TOTAL", "", rep.Total))
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.env.Stdout, "\nfrom %s to %s; cost at %g per million delivered recipients\n",
		rep.Since.Format(time.RFC3339), rep.Until.Format(time.RFC3339), rep.PricePerMillion)
	return err
}

func reportRequestFlags(fs *flag.FlagSet) {
	fs.String("account", "", "one sender `address` (default: every account)")
	fs.String("since", "", "`time`: RFC 3339, a date, or a duration before now such as 7d (required)")
	fs.String("until", "", "`time`: as --since; a plain date means the end of that day (required)")
	fs.Bool("wait", false, "wait until the report is done (or failed), then show it")
}

func reportRequest(c *ctx) error {
	if err := c.wantArgs(0, "no arguments"); err != nil {
		return err
	}
	if c.str("since") == "" || c.str("until") == "" {
		return usageError{"--since and --until are required"}
	}
	var job store.ReportJob
	req := map[string]string{"account": c.str("account"), "since": c.str("since"), "until": c.str("until")}
	if err := c.call("POST", "/reports", req, &job); err != nil {
		return err
	}
	if c.boolFlag("wait") {
		// Poll rather than hold a request open: the job may run on another
		// node, and a proxy may cut long requests.
		for job.State == store.ReportQueued || job.State == store.ReportRunning {
			select {
			case <-c.Done():
				return c.Err()
			case <-time.After(200 * time.Millisecond):
			}
			if err := c.call("GET", "/reports/"+strconv.FormatInt(job.ID, 10), nil, &job); err != nil {
				return err
			}
		}
		return c.showReport(job)
	}
	if c.g.json {
		return c.jsonOut(job)
	}
	fmt.Fprintf(c.env.Stdout, "%d\n", job.ID)
	return nil
}

func reportStatus(c *ctx) error {
	if err := c.wantArgs(1, "ID"); err != nil {
		return err
	}
	var job store.ReportJob
	if err := c.call("GET", "/reports/"+url.PathEscape(c.args[0]), nil, &job); err != nil {
		return err
	}
	return c.showReport(job)
}

func (c *ctx) showReport(j store.ReportJob) error {
	account := j.Account
	if account == "" {
		account = "all"
	}
	finished := "-"
	if !j.FinishedAt.IsZero() {
		finished = j.FinishedAt.Format(time.RFC3339)
	}
	fields := [][2]string{
		{"id", strconv.FormatInt(j.ID, 10)}, {"state", j.State}, {"account", account},
		{"since", j.Since.Format(time.RFC3339)}, {"until", j.Until.Format(time.RFC3339)},
		{"rows", strconv.FormatInt(j.Rows, 10)}, {"created", j.CreatedAt.Format(time.RFC3339)}, {"finished", finished},
	}
	if j.Error != "" {
		fields = append(fields, [2]string{"error", j.Error})
	}
	return c.showFields(j, fields)
}

func reportDownload(c *ctx) error {
	if err := c.wantArgs(1, "ID"); err != nil {
		return err
	}
	base, err := c.tenantPath()
	if err != nil {
		return err
	}
	return c.api.Stream(c, base+"/reports/"+url.PathEscape(c.args[0])+"/download", c.env.Stdout)
}
