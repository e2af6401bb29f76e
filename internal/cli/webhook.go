package cli

// The webhook commands: signed JSON POSTs of delivery events and alerts
// (docs/webhooks.md).

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"hve/internal/store"
)

func webhookCommands() []command {
	return []command{
		{path: "webhook add", args: "URL", help: "add a webhook: hve POSTs signed JSON about the events it subscribes to (alert, delivered, deferred, failed)",
			flags: webhookAddFlags, run: addWebhook},
		{path: "webhook list", help: "list webhooks (secrets are never shown, only their first characters)", run: listWebhooks},
		{path: "webhook remove", args: "ID", help: "remove a webhook; its notifications not sent yet are dropped",
			run: removeBy("/webhooks/", "removed webhook")},
	}
}

func webhookAddFlags(fs *flag.FlagSet) {
	fs.String("secret", "", "the signing `secret` (at least 16 characters); without it one is generated and printed once")
	fs.Bool("secret-stdin", false, "read the signing secret from standard input (keeps it out of the shell history)")
	fs.String("events", "", "comma-separated `events`: alert, delivered, deferred, failed, or all (the default)")
}

func addWebhook(c *ctx) error {
	if err := c.wantArgs(1, "URL"); err != nil {
		return err
	}
	req := map[string]any{"url": c.args[0]}
	if ev := c.str("events"); ev != "" {
		req["events"] = strings.Split(ev, ",")
	}
	switch {
	case c.boolFlag("secret-stdin") && c.str("secret") != "":
		return usageError{"give --secret or --secret-stdin, not both"}
	case c.boolFlag("secret-stdin"):
		secret, err := c.readPassword()
		if err != nil {
			return err
		}
		req["secret"] = secret
	case c.str("secret") != "":
		req["secret"] = c.str("secret")
	}
	var w struct {
		store.Webhook
		Secret string `json:"secret"`
	}
	if err := c.call("POST", "/webhooks", req, &w); err != nil {
		return err
	}
	if c.g.json {
		return c.show(w, nil, nil)
	}
	fmt.Fprintf(c.env.Stdout, "added webhook %d: %s (%s)\n", w.ID, w.URL, strings.Join(w.Events, ","))
	if w.Secret != "" {
		fmt.Fprintf(c.env.Stdout, "generated signing secret (shown this once): %s\n", w.Secret)
	}
	return nil
}

func listWebhooks(c *ctx) error {
	var list []store.Webhook
	if err := c.call("GET", "/webhooks", nil, &list); err != nil {
		return err
	}
	return c.show(list, []string{"ID", "URL", "EVENTS", "SECRET", "CREATED"}, func() (rows [][]string) {
		for _, w := range list {
			rows = append(rows, []string{strconv.FormatInt(w.ID, 10), w.URL, strings.Join(w.Events, ","), w.SecretHint + "...",
				w.CreatedAt.Format(time.RFC3339)})
		}
		return
	})
}

// failureReportFlag reads --failure-report-to into an account PATCH.
func (c *ctx) failureReportFlag(req map[string]any) {
	if !flagSet(c.fs, "failure-report-to") {
		return
	}
	v := c.str("failure-report-to")
	if isNone(v) {
		v = ""
	}
	req["failure_report_to"] = v
}
