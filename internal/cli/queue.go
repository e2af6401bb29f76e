package cli

// The queue commands: list what waits for delivery, and hold, release,
// retry or delete it.

import (
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"hve/internal/store"
)

func queueCommands() []command {
	return []command{
		{path: "queue list", help: "list queued messages with their status, last reply and next attempt", flags: queueListFlags, run: listQueue},
		{path: "queue show", args: "ID", help: "show a queued message and every recipient's state", run: showQueued},
		{path: "queue retry", args: "ID|--all", help: "make a queued message (or with --all, the whole queue) due for delivery now",
			flags: func(fs *flag.FlagSet) {
				fs.Bool("all", false, "retry every queued message of the tenant that is not held")
				fs.String("domain", "", "with --all: only recipients in this `domain`")
			}, run: retryQueued},
		{path: "queue hold", args: "ID", help: "hold a queued message: delivery skips it until it is released", run: queueAction("hold", "held")},
		{path: "queue release", args: "ID", help: "release a held message; it is due at once", run: queueAction("release", "released")},
		{path: "queue delete", args: "ID", help: "delete a queued message: its open recipients fail and are never delivered", run: deleteQueued},
	}
}

func queueListFlags(fs *flag.FlagSet) {
	fs.String("status", "", "only messages that are `held`, active, deferred or pending")
	fs.String("domain", "", "only messages with an open recipient in this `domain`")
	fs.Int("limit", 100, "at most `N` messages (1 to 1000)")
	fs.String("after", "", "start after this queue `ID` (the cursor the previous page printed)")
}

func listQueue(c *ctx) error {
	q := url.Values{}
	for _, f := range []string{"status", "domain", "limit"} {
		if v := c.str(f); v != "" {
			q.Set(f, v)
		}
	}
	if v := c.str("after"); v != "" {
		q.Set("cursor", v)
	}
	var page struct {
		Items      []store.QueueItem `json:"items"`
		NextCursor string            `json:"next_cursor"`
	}
	if err := c.call("GET", "/queue?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	err := c.show(page, []string{"QUEUE ID", "STATUS", "RECEIVED", "SENDER", "RECIPIENTS", "ATTEMPTS", "NEXT ATTEMPT", "LAST REPLY"}, func() (rows [][]string) {
		for _, it := range page.Items {
			rcpts := make([]string, len(it.Recipients))
			for i, r := range it.Recipients {
				rcpts[i] = r.Address
			}
			rows = append(rows, []string{it.QueueID, string(it.Status), it.ReceivedAt.Format(time.RFC3339), it.Sender,
				orDash(strings.Join(rcpts, ",")), strconv.Itoa(it.Attempts), nextAttempt(it), orDash(it.LastReply)})
		}
		return
	})
	if err == nil && page.NextCursor != "" && !c.g.json {
		fmt.Fprintf(c.env.Stderr, "more: hve queue list --after %s\n", page.NextCursor)
	}
	return err
}

// nextAttempt says when delivery takes the message up again.
func nextAttempt(it store.QueueItem) string {
	switch it.Status {
	case store.QueueHeld:
		return "held by " + it.HeldBy
	case store.QueueActive:
		return "now (being delivered)"
	}
	return it.NextAttemptAt.Format(time.RFC3339)
}

func showQueued(c *ctx) error {
	if err := c.wantArgs(1, "ID"); err != nil {
		return err
	}
	var it store.QueueItem
	if err := c.call("GET", "/queue/"+url.PathEscape(c.args[0]), nil, &it); err != nil {
		return err
	}
	return c.showQueueItem(it)
}

// showQueueItem prints a message's facts, then its recipients.
func (c *ctx) showQueueItem(it store.QueueItem) error {
	if c.g.json {
		return c.show(it, nil, nil)
	}
	fmt.Fprintf(c.env.Stdout, "queue id:     %s\nstatus:       %s\nsender:       %s\nsubject:      %s\nreceived:     %s\nnext attempt: %s\n\n",
		it.QueueID, it.Status, it.Sender, it.Subject, it.ReceivedAt.Format(time.RFC3339), nextAttempt(it))
	return c.show(it, []string{"RECIPIENT", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "LAST REPLY"}, func() (rows [][]string) {
		for _, r := range it.Recipients {
			next := "-"
			if r.State.Open() {
				next = r.NextAttemptAt.Format(time.RFC3339)
			}
			addr := r.Address
			if r.Via != "" {
				addr += " (via " + r.Via + ")"
			}
			rows = append(rows, []string{addr, string(r.State), strconv.Itoa(r.Attempts), next, orDash(r.LastReply)})
		}
		return
	})
}

// queueAction makes the command of one action on one queued message.
func queueAction(action, done string) func(c *ctx) error {
	return func(c *ctx) error {
		if err := c.wantArgs(1, "ID"); err != nil {
			return err
		}
		var it store.QueueItem
		if err := c.call("POST", "/queue/"+url.PathEscape(c.args[0])+"/"+action, nil, &it); err != nil {
			return err
		}
		if c.g.json {
			return c.show(it, nil, nil)
		}
		fmt.Fprintf(c.env.Stdout, "%s %s (%s, next attempt: %s)\n", done, it.QueueID, it.Status, nextAttempt(it))
		return nil
	}
}

func retryQueued(c *ctx) error {
	if !c.boolFlag("all") {
		if c.str("domain") != "" {
			return usageError{"--domain goes with --all"}
		}
		return queueAction("retry", "retrying")(c)
	}
	if len(c.args) != 0 {
		return usageError{"give a queue ID or --all, not both"}
	}
	var res struct {
		Retried int `json:"retried"`
	}
	if err := c.call("POST", "/queue/retry-all", map[string]string{"domain": c.str("domain")}, &res); err != nil {
		return err
	}
	if c.g.json {
		return c.show(res, nil, nil)
	}
	fmt.Fprintf(c.env.Stdout, "retrying %d messages\n", res.Retried)
	return nil
}

func deleteQueued(c *ctx) error {
	if err := c.wantArgs(1, "ID"); err != nil {
		return err
	}
	if err := c.call("DELETE", "/queue/"+url.PathEscape(c.args[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "deleted %s from the queue; its open recipients failed (see hve trace --queue-id %s)\n", c.args[0], c.args[0])
	return nil
}
