package cli

import (
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
	"hve/internal/trace"
)

// str reads a command's own flag as text; flagValue reads it typed.
func (c *ctx) str(name string) string { return c.fs.Lookup(name).Value.String() }

// flagValue returns the typed value of one of the command's own flags.
func flagValue[T any](c *ctx, name string) T {
	return c.fs.Lookup(name).Value.(flag.Getter).Get().(T)
}

func (c *ctx) boolFlag(name string) bool { return flagValue[bool](c, name) }
func (c *ctx) list(name string) []string {
	return []string(*c.fs.Lookup(name).Value.(*stringList))
}

// commands is the command tree. Other tools script against these names.
var commands []command

func init() {
	commands = []command{
		{path: "serve", help: "run the hve service (SMTP endpoint, delivery, admin API)", flags: serveFlags, run: runServe},

		{path: "tenant list", help: "list tenants", run: func(c *ctx) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			var list []directory.Tenant
			if err := api.Do(c, "GET", "/api/v1/tenants", nil, &list); err != nil {
				return err
			}
			return c.show(list, []string{"NAME", "CREATED"}, func() (rows [][]string) {
				for _, t := range list {
					rows = append(rows, []string{t.Name, t.CreatedAt.Format(time.RFC3339)})
				}
				return
			})
		}},
		{path: "tenant create", args: "NAME", help: "create a tenant", run: func(c *ctx) error {
			if err := c.wantArgs(1, "NAME"); err != nil {
				return err
			}
			api, err := c.client()
			if err != nil {
				return err
			}
			return api.Do(c, "POST", "/api/v1/tenants", map[string]string{"name": c.args[0]}, nil)
		}},

		{path: "domain add", args: "NAME", help: "add an accepted domain",
			flags: func(fs *flag.FlagSet) {
				fs.String("type", "authoritative", "`authoritative` (every recipient must exist) or internal-relay (unknown recipients go to the next hop)")
			},
			run: func(c *ctx) error {
				if err := c.wantArgs(1, "NAME"); err != nil {
					return err
				}
				var d directory.Domain
				if err := c.call("POST", "/domains", map[string]string{"name": c.args[0], "type": c.str("type")}, &d); err != nil {
					return err
				}
				fmt.Fprintf(c.env.Stdout, "added %s (%s)\n", d.Name, d.Type)
				return nil
			}},
		{path: "domain list", help: "list accepted domains", run: func(c *ctx) error {
			var list []directory.Domain
			if err := c.call("GET", "/domains", nil, &list); err != nil {
				return err
			}
			return c.show(list, []string{"DOMAIN", "TYPE"}, func() (rows [][]string) {
				for _, d := range list {
					rows = append(rows, []string{d.Name, string(d.Type)})
				}
				return
			})
		}},
		{path: "domain remove", args: "NAME", help: "remove an accepted domain no address uses", run: removeBy("/domains/", "removed")},

		{path: "mailbox create", help: "create a mailbox", flags: mailboxFlags, run: createMailbox},
		{path: "mailbox list", help: "list mailboxes", run: func(c *ctx) error {
			var list []directory.Mailbox
			if err := c.call("GET", "/mailboxes", nil, &list); err != nil {
				return err
			}
			return c.show(list, []string{"ADDRESS", "NAME", "DISPLAY NAME", "ALIASES"}, func() (rows [][]string) {
				for _, m := range list {
					rows = append(rows, []string{m.Address, m.Name, m.DisplayName, strings.Join(m.Aliases, ",")})
				}
				return
			})
		}},
		{path: "mailbox messages", args: "ADDRESS", help: "list the messages the embedded store holds for a mailbox", run: func(c *ctx) error {
			if err := c.wantArgs(1, "ADDRESS"); err != nil {
				return err
			}
			var list []store.MailboxMessage
			if err := c.call("GET", "/mailboxes/"+url.PathEscape(c.args[0])+"/messages", nil, &list); err != nil {
				return err
			}
			return c.show(list, []string{"ID", "RECEIVED", "FROM", "SUBJECT", "SIZE", "QUEUE ID"}, func() (rows [][]string) {
				for _, m := range list {
					rows = append(rows, []string{strconv.FormatInt(m.ID, 10), m.ReceivedAt.Format(time.RFC3339), m.From, m.Subject, strconv.FormatInt(m.Size, 10), m.QueueID})
				}
				return
			})
		}},
		{path: "mailbox read", args: "ADDRESS ID", help: "print one message of a mailbox as it was delivered", run: func(c *ctx) error {
			if err := c.wantArgs(2, "ADDRESS ID"); err != nil {
				return err
			}
			var raw []byte
			if err := c.call("GET", "/mailboxes/"+url.PathEscape(c.args[0])+"/messages/"+url.PathEscape(c.args[1]), nil, &raw); err != nil {
				return err
			}
			_, err := c.env.Stdout.Write(raw)
			return err
		}},
		{path: "mailbox remove", args: "ADDRESS", help: "remove a mailbox and its messages", run: removeBy("/mailboxes/", "removed")},

		{path: "account create", help: "create an HVE account", flags: accountCreateFlags, run: createAccount},
		{path: "account list", help: "list HVE accounts", run: func(c *ctx) error {
			var list []directory.Account
			if err := c.call("GET", "/accounts", nil, &list); err != nil {
				return err
			}
			return c.show(list, []string{"ADDRESS", "NAME", "DISPLAY NAME", "ENABLED", "REPLY-TO", "ALIASES"}, func() (rows [][]string) {
				for _, a := range list {
					rows = append(rows, []string{a.Address, a.Name, a.DisplayName, strconv.FormatBool(a.Enabled), a.ReplyTo, strings.Join(a.Aliases, ",")})
				}
				return
			})
		}},
		{path: "account show", args: "ADDRESS", help: "show one HVE account", run: func(c *ctx) error {
			if err := c.wantArgs(1, "ADDRESS"); err != nil {
				return err
			}
			var a directory.Account
			if err := c.call("GET", "/accounts/"+url.PathEscape(c.args[0]), nil, &a); err != nil {
				return err
			}
			return c.showAccount(a)
		}},
		{path: "account set", args: "ADDRESS", help: "change an HVE account", flags: accountSetFlags, run: setAccount},
		{path: "account remove", args: "ADDRESS", help: "remove an HVE account", run: removeBy("/accounts/", "removed")},

		{path: "group create", help: "create a distribution group", flags: func(fs *flag.FlagSet) {
			fs.String("address", "", "the group's `address` (required)")
			fs.String("name", "", "the group's `name` (required)")
		}, run: func(c *ctx) error {
			var g directory.Group
			if err := c.call("POST", "/groups", map[string]string{"address": c.str("address"), "name": c.str("name")}, &g); err != nil {
				return err
			}
			fmt.Fprintf(c.env.Stdout, "created group %s\n", g.Address)
			return nil
		}},
		{path: "group add-member", args: "GROUP MEMBER", help: "add a mailbox or group to a group", run: func(c *ctx) error {
			if err := c.wantArgs(2, "GROUP MEMBER"); err != nil {
				return err
			}
			return c.call("POST", "/groups/"+url.PathEscape(c.args[0])+"/members", map[string]string{"address": c.args[1]}, nil)
		}},
		{path: "group remove-member", args: "GROUP MEMBER", help: "remove a member from a group", run: func(c *ctx) error {
			if err := c.wantArgs(2, "GROUP MEMBER"); err != nil {
				return err
			}
			return c.call("DELETE", "/groups/"+url.PathEscape(c.args[0])+"/members/"+url.PathEscape(c.args[1]), nil, nil)
		}},
		{path: "group list", help: "list distribution groups and their direct members", run: func(c *ctx) error {
			var list []directory.Group
			if err := c.call("GET", "/groups", nil, &list); err != nil {
				return err
			}
			return c.show(list, []string{"ADDRESS", "NAME", "MEMBERS"}, func() (rows [][]string) {
				for _, g := range list {
					var m []string
					for _, mem := range g.Members {
						m = append(m, mem.Address)
					}
					rows = append(rows, []string{g.Address, g.Name, strings.Join(m, ",")})
				}
				return
			})
		}},
		{path: "group remove", args: "ADDRESS", help: "remove a distribution group", run: removeBy("/groups/", "removed")},

		{path: "trace", help: "search message trace", flags: traceFlags, run: runTrace},

		{path: "bench", help: "load-test an SMTP endpoint on this machine and print throughput and latency as JSON", flags: benchFlags, run: runBench},
		{path: "bench-sink", help: "run a no-op or durable (group commit) SMTP sink on loopback: the measuring peer of the benchmark suite", flags: benchSinkFlags, run: runBenchSink},
	}
	// The access commands go next to their kin, so that hve help lists
	// each group together.
	extra := accessCommands()
	insertAfter("tenant create", extra["tenant"])
	insertAfter("domain remove", routeCommands())
	insertAfter("route remove", webhookCommands())
	insertAfter("route remove", queueCommands())
	insertAfter("trace", reportCommands())
	insertAfter("bench", adminCommands())
	insertAfter("mailbox remove", extra["mailbox"])
	insertAfter("account remove", extra["account"])
	insertAfter("group remove", slices.Concat(extra["security-group"], extra["auth-policy"], extra["ca-policy"], extra["app"], extra["oauth"]))
}

// insertAfter puts cmds into the command table after the command path.
func insertAfter(path string, cmds []command) {
	i := slices.IndexFunc(commands, func(c command) bool { return c.path == path })
	if i < 0 {
		panic("cli: no command " + path)
	}
	commands = slices.Insert(commands, i+1, cmds...)
}

// removeBy makes a command that deletes the object named by its argument.
func removeBy(prefix, verb string) func(c *ctx) error {
	return func(c *ctx) error {
		if err := c.wantArgs(1, "one name or address"); err != nil {
			return err
		}
		if err := c.call("DELETE", prefix+url.PathEscape(c.args[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.env.Stdout, "%s %s\n", verb, c.args[0])
		return nil
	}
}

func mailboxFlags(fs *flag.FlagSet) {
	fs.String("address", "", "primary `address` (required)")
	fs.String("name", "", "`name` (required)")
	fs.String("display-name", "", "display `name` (default: the name)")
	fs.Var(&stringList{}, "alias", "an alias `address` (repeatable)")
	fs.Bool("password-stdin", false, "read a password from standard input (mailboxes need none to receive)")
}

func createMailbox(c *ctx) error {
	req := map[string]any{"address": c.str("address"), "name": c.str("name"), "display_name": c.str("display-name"), "aliases": c.list("alias")}
	if c.boolFlag("password-stdin") {
		pw, err := c.readPassword()
		if err != nil {
			return err
		}
		req["password"] = pw
	}
	var m directory.Mailbox
	if err := c.call("POST", "/mailboxes", req, &m); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "created mailbox %s\n", m.Address)
	return nil
}

func accountCreateFlags(fs *flag.FlagSet) {
	fs.String("name", "", "`name` (required)")
	fs.String("address", "", "primary `address`: the username and the sender (required)")
	fs.String("display-name", "", "display `name`, the From name (default: the name)")
	fs.Var(&stringList{}, "alias", "an alias `address` it may also send as (repeatable)")
	fs.String("reply-to", "", "Reply-To `address` added to messages that have none")
	fs.Bool("password-stdin", false, "read the password from standard input; without it a password is generated and printed once")
}

func createAccount(c *ctx) error {
	req := map[string]any{"name": c.str("name"), "address": c.str("address"), "display_name": c.str("display-name"),
		"aliases": c.list("alias"), "reply_to": c.str("reply-to")}
	if c.boolFlag("password-stdin") {
		pw, err := c.readPassword()
		if err != nil {
			return err
		}
		req["password"] = pw
	}
	var a struct {
		directory.Account
		Password string `json:"password"`
	}
	if err := c.call("POST", "/accounts", req, &a); err != nil {
		return err
	}
	if c.g.json {
		return c.show(a, nil, nil)
	}
	fmt.Fprintf(c.env.Stdout, "created HVE account %s\n", a.Address)
	if a.Password != "" {
		fmt.Fprintf(c.env.Stdout, "generated password (shown this once): %s\n", a.Password)
	}
	return nil
}

func accountSetFlags(fs *flag.FlagSet) {
	fs.String("display-name", "", "new display `name`")
	fs.String("enabled", "", "`true` or false")
	fs.String("reply-to", "", "new Reply-To `address` (\"\" removes it)")
	fs.Var(&stringList{}, "alias", "set the aliases to these `address`es (repeatable; replaces the list)")
	fs.Bool("clear-aliases", false, "remove every alias")
	fs.Bool("password-stdin", false, "read a new password from standard input")
	fs.String("auth-policy", "", "authentication policy `NAME`, or none for the tenant's default")
	fs.String("allowed-networks", "", "comma-separated `CIDR` prefixes the account may sign in from, or none for any")
	fs.Bool("revoke-sessions", false, "refuse tokens issued until now and end the account's open sessions")
	fs.String("daily-recipient-limit", "", "the account's own cap of recipients per UTC day: `N` or none")
	fs.String("warn-at", "", "warning level, a `PERCENT` of the daily cap (1 to 100), or none")
	fs.String("failure-report-to", "", "a mailbox or group `ADDR` that gets a report when a recipient of the account's message fails for good, or none")
}

func setAccount(c *ctx) error {
	if err := c.wantArgs(1, "ADDRESS"); err != nil {
		return err
	}
	req := map[string]any{}
	if flagSet(c.fs, "display-name") {
		req["display_name"] = c.str("display-name")
	}
	if flagSet(c.fs, "enabled") {
		v, err := strconv.ParseBool(c.str("enabled"))
		if err != nil {
			return usageError{"--enabled must be true or false"}
		}
		req["enabled"] = v
	}
	if flagSet(c.fs, "reply-to") {
		req["reply_to"] = c.str("reply-to")
	}
	if flagSet(c.fs, "alias") {
		req["aliases"] = c.list("alias")
	}
	if c.boolFlag("clear-aliases") {
		req["aliases"] = []string{}
	}
	if c.boolFlag("password-stdin") {
		pw, err := c.readPassword()
		if err != nil {
			return err
		}
		req["password"] = pw
	}
	if flagSet(c.fs, "auth-policy") {
		req["auth_policy"] = policyValue(c.str("auth-policy"))
	}
	if flagSet(c.fs, "allowed-networks") {
		nets, err := c.networks("allowed-networks")
		if err != nil {
			return err
		}
		req["allowed_networks"] = nets
	}
	if flagSet(c.fs, "daily-recipient-limit") {
		n, err := c.count("daily-recipient-limit", "none")
		if err != nil {
			return err
		}
		req["daily_recipient_limit"] = n
	}
	if flagSet(c.fs, "warn-at") {
		pct, err := c.count("warn-at", "none")
		if err == nil && pct > 100 {
			err = usageError{"--warn-at must be a percentage from 1 to 100, or none"}
		}
		if err != nil {
			return err
		}
		req["warn_at"] = pct
	}
	c.failureReportFlag(req)
	revoke := c.boolFlag("revoke-sessions")
	if len(req) == 0 && !revoke {
		return usageError{"nothing to change; see hve account set -h"}
	}
	path := "/accounts/" + url.PathEscape(c.args[0])
	var a directory.Account
	if len(req) > 0 {
		if err := c.call("PATCH", path, req, &a); err != nil {
			return err
		}
	}
	// Revoke after the other changes, so that a new password or policy is
	// in place before the sessions are ended and the clients sign in again.
	if revoke {
		if err := c.revoke(path); err != nil {
			return err
		}
		if err := c.call("GET", path, nil, &a); err != nil {
			return err
		}
	}
	return c.showAccount(a)
}

func (c *ctx) showAccount(a directory.Account) error {
	fields := map[string]string{
		"address": a.Address, "name": a.Name, "display name": a.DisplayName, "enabled": strconv.FormatBool(a.Enabled),
		"reply-to": a.ReplyTo, "aliases": strings.Join(a.Aliases, ","), "created": a.CreatedAt.Format(time.RFC3339),
		"updated": a.UpdatedAt.Format(time.RFC3339), "auth policy": authPolicyText(a.AuthPolicy),
		"tokens valid from": timeOr(a.TokensValidFrom, "not set"), "allowed apps": listOr(a.AllowedApps, "none"),
		"allowed networks": listOr(a.AllowedNetworks, "any"), "daily recipient limit": limitText(a.DailyRecipientLimit, "none"),
		"warn at": warnText(a), "failure report to": orNone(a.FailureReportTo),
	}
	return c.show(a, []string{"FIELD", "VALUE"}, func() (rows [][]string) {
		for _, k := range sortedKeys(fields) {
			rows = append(rows, []string{k, fields[k]})
		}
		return
	})
}

// warnText shows an account's warning level.
func warnText(a directory.Account) string {
	switch {
	case a.WarnAt <= 0:
		return "none"
	case a.DailyRecipientLimit <= 0:
		return fmt.Sprintf("%d%% (no effect without a daily recipient limit)", a.WarnAt)
	}
	return fmt.Sprintf("%d%% (%d recipients)", a.WarnAt, (a.DailyRecipientLimit*int64(a.WarnAt)+99)/100)
}

func traceFlags(fs *flag.FlagSet) {
	fs.String("sender", "", "sender `address`")
	fs.String("recipient", "", "recipient `address`")
	fs.String("message-id", "", "Message-ID header `value`, with or without <>")
	fs.String("queue-id", "", "queue `id` from the 250 reply")
	fs.String("status", "", "`status`: "+strings.Join(trace.Statuses, ", "))
	fs.String("event", "", "event `name`: "+strings.Join(trace.Events, ", "))
	fs.String("client-ip", "", "client `IP` address")
	fs.String("subject", "", "subject `text`, any letter case (see --subject-match)")
	fs.String("subject-match", "", "how --subject matches: `mode` "+strings.Join(trace.SubjectMatches, ", ")+" (default contains)")
	fs.String("since", "", "`time`: RFC 3339, a date, or a duration before now such as 2h or 7d")
	fs.String("until", "", "`time`: as --since")
	fs.Int("limit", 1000, "at most `n` events")
}

func runTrace(c *ctx) error {
	q := url.Values{}
	for flagName, param := range map[string]string{
		"sender": "sender", "recipient": "recipient", "message-id": "message_id", "queue-id": "queue_id",
		"status": "status", "client-ip": "client_ip", "since": "since", "until": "until", "limit": "limit",
		"subject": "subject", "subject-match": "subject_match", "event": "event",
	} {
		if v := c.str(flagName); v != "" {
			q.Set(param, v)
		}
	}
	var events []trace.Event
	if err := c.call("GET", "/trace?"+q.Encode(), nil, &events); err != nil {
		return err
	}
	return c.show(events, []string{"TIME", "QUEUE ID", "SENDER", "RECIPIENT", "EVENT", "STATUS", "DETAIL"}, func() (rows [][]string) {
		for _, e := range events {
			rows = append(rows, []string{e.Time.Format(time.RFC3339), e.QueueID, e.Sender, e.Recipient, e.Event, e.Status, e.Detail})
		}
		return
	})
}
