package cli

// The commands of the admin center issue: admin users (hve admin ...),
// their API tokens (hve admin token ...) and the audit log (hve audit).

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/client"
)

// adminCommands returns the admin user, token and audit commands.
func adminCommands() []command {
	return []command{
		{path: "admin create", help: "create an admin user of the web admin center and the admin API", flags: adminCreateFlags, run: adminCreate},
		{path: "admin list", help: "list admin users", run: adminList},
		{path: "admin set", args: "NAME", help: "change an admin user's role, tenant, password, second factor or state", flags: adminSetFlags, run: adminSet},
		{path: "admin remove", args: "NAME", help: "remove an admin user with its tokens and sessions", run: func(c *ctx) error {
			if err := c.wantArgs(1, "NAME"); err != nil {
				return err
			}
			if err := c.global("DELETE", "/api/v1/admin-users/"+url.PathEscape(c.args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.env.Stdout, "removed admin user %s\n", c.args[0])
			return nil
		}},
		{path: "admin whoami", help: "show who the token in use belongs to, with its role and tenant", run: adminWhoami},
		{path: "admin token create", help: "make an admin API token (printed once) for yourself or, with --user, for an admin user", flags: adminTokenCreateFlags, run: adminTokenCreate},
		{path: "admin token list", help: "list the API tokens of yourself or of --user", flags: userFlag, run: adminTokenList},
		{path: "admin token remove", args: "ID", help: "remove an API token of yourself or of --user", flags: userFlag, run: adminTokenRemove},
		{path: "audit", help: "show the audit log: every admin change, newest first", flags: auditFlags, run: runAudit},
	}
}

// global calls a path outside any tenant.
func (c *ctx) global(method, path string, body, out any) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return api.Do(c, method, path, body, out)
}

func adminCreateFlags(fs *flag.FlagSet) {
	fs.String("name", "", "the admin user's `name`, used to sign in (required)")
	fs.String("role", "", "`role`: global-admin, tenant-admin (needs --tenant), reader or trace-reader (required)")
	fs.Bool("password-stdin", false, "read the password (at least 12 characters) from standard input (required)")
	fs.Bool("totp", false, "require a TOTP code at sign-in; prints the key to add to an authenticator app")
}

// userCreatedReply is the API's reply to creating or changing an admin
// user.
type userCreatedReply struct {
	adminauth.User
	TOTPKey string `json:"totp_key"`
	TOTPURI string `json:"totp_uri"`
}

func adminCreate(c *ctx) error {
	if c.str("name") == "" || c.str("role") == "" {
		return usageError{"--name and --role are required; see hve admin create -h"}
	}
	if !c.boolFlag("password-stdin") {
		return usageError{"--password-stdin is required: a password is never given on the command line, where other users of the machine can read it"}
	}
	pw, err := c.readPassword()
	if err != nil {
		return err
	}
	req := map[string]any{"name": c.str("name"), "role": c.str("role"), "tenant": c.g.tenant, "password": pw, "totp": c.boolFlag("totp")}
	var u userCreatedReply
	if err := c.global("POST", "/api/v1/admin-users", req, &u); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(u)
	}
	fmt.Fprintf(c.env.Stdout, "created admin user %s (%s%s)\n", u.Name, u.Role, scopeText(u.Tenant))
	c.printTOTP(u)
	return nil
}

func (c *ctx) printTOTP(u userCreatedReply) {
	if u.TOTPKey != "" {
		fmt.Fprintf(c.env.Stdout, "TOTP key (shown this once; add it to an authenticator app): %s\n%s\n", u.TOTPKey, u.TOTPURI)
	}
}

func scopeText(tenant string) string {
	if tenant == "" {
		return ", every tenant"
	}
	return ", tenant " + tenant
}

func adminList(c *ctx) error {
	var list []adminauth.User
	if err := c.global("GET", "/api/v1/admin-users", nil, &list); err != nil {
		return err
	}
	return c.show(list, []string{"NAME", "ROLE", "TENANT", "TOTP", "ENABLED", "CREATED"}, func() (rows [][]string) {
		for _, u := range list {
			rows = append(rows, []string{u.Name, string(u.Role), listOr(nonEmpty(u.Tenant), "(all)"), strconv.FormatBool(u.TOTP),
				strconv.FormatBool(u.Enabled), u.CreatedAt.Format(time.RFC3339)})
		}
		return
	})
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func adminSetFlags(fs *flag.FlagSet) {
	fs.String("role", "", "new `role`")
	fs.Bool("password-stdin", false, "read a new password from standard input")
	fs.String("enabled", "", "`true` or false")
	fs.String("totp", "", "`on` (a new key, printed once) or off")
}

func adminSet(c *ctx) error {
	if err := c.wantArgs(1, "NAME"); err != nil {
		return err
	}
	req := map[string]any{}
	if flagSet(c.fs, "role") {
		req["role"] = c.str("role")
	}
	// --tenant is a global flag: given, it scopes the user to that tenant.
	if c.g.tenant != "" {
		req["tenant"] = c.g.tenant
	}
	if flagSet(c.fs, "enabled") {
		v, err := c.trueFalse("enabled")
		if err != nil {
			return err
		}
		req["enabled"] = v
	}
	if flagSet(c.fs, "totp") {
		v, err := c.onOff("totp")
		if err != nil {
			return err
		}
		req["totp"] = v
	}
	if c.boolFlag("password-stdin") {
		pw, err := c.readPassword()
		if err != nil {
			return err
		}
		req["password"] = pw
	}
	if len(req) == 0 {
		return usageError{"nothing to change; see hve admin set -h"}
	}
	var u userCreatedReply
	if err := c.global("PATCH", "/api/v1/admin-users/"+url.PathEscape(c.args[0]), req, &u); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(u)
	}
	fmt.Fprintf(c.env.Stdout, "admin user %s: %s%s, enabled %v, TOTP %v\n", u.Name, u.Role, scopeText(u.Tenant), u.Enabled, u.TOTP)
	c.printTOTP(u)
	return nil
}

func adminWhoami(c *ctx) error {
	var me struct {
		adminauth.Principal
		User *adminauth.User `json:"user"`
	}
	if err := c.global("GET", "/api/v1/me", nil, &me); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(me)
	}
	fmt.Fprintf(c.env.Stdout, "%s (%s%s)\n", me.Name, me.Role, scopeText(me.Tenant))
	return nil
}

func userFlag(fs *flag.FlagSet) {
	fs.String("user", "", "the admin user `NAME` (default: yourself)")
}

func adminTokenCreateFlags(fs *flag.FlagSet) {
	userFlag(fs)
	fs.String("name", "", "what the token is for, e.g. ci or laptop")
	fs.String("expires", "", "when it expires: 90d, 26w, 1y, 720h or a date (default: never)")
}

// tokensPath is the token collection of --user, or of the caller.
func (c *ctx) tokensPath() string {
	if u := c.str("user"); u != "" {
		return "/api/v1/admin-users/" + url.PathEscape(u) + "/tokens"
	}
	return "/api/v1/me/tokens"
}

func adminTokenCreate(c *ctx) error {
	var k struct {
		adminauth.Token
		User  string `json:"user"`
		Value string `json:"token"`
	}
	if err := c.global("POST", c.tokensPath(), map[string]string{"name": c.str("name"), "expires": c.str("expires")}, &k); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(k)
	}
	fmt.Fprintf(c.env.Stdout, "token %d for %s (shown this once; use it as --token or HVE_TOKEN):\n%s\n", k.ID, k.User, k.Value)
	return nil
}

func adminTokenList(c *ctx) error {
	var list []adminauth.Token
	if err := c.global("GET", c.tokensPath(), nil, &list); err != nil {
		return err
	}
	return c.show(list, []string{"ID", "NAME", "HINT", "CREATED", "EXPIRES"}, func() (rows [][]string) {
		for _, k := range list {
			rows = append(rows, []string{strconv.FormatInt(k.ID, 10), k.Name, k.Hint + "...", k.CreatedAt.Format(time.RFC3339), timeOr(k.ExpiresAt, "never")})
		}
		return
	})
}

func adminTokenRemove(c *ctx) error {
	if err := c.wantArgs(1, "ID"); err != nil {
		return err
	}
	if err := c.global("DELETE", c.tokensPath()+"/"+url.PathEscape(c.args[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "removed token %s\n", c.args[0])
	return nil
}

func auditFlags(fs *flag.FlagSet) {
	fs.String("since", "", "`time`: RFC 3339, a date, or a duration before now such as 2h or 7d")
	fs.String("until", "", "`time`: as --since")
	fs.String("actor", "", "only changes by this admin user `name` (or admin-token)")
	fs.Int("limit", 100, "at most `n` entries")
}

func runAudit(c *ctx) error {
	q := url.Values{}
	for _, f := range []string{"since", "until", "actor"} {
		if v := c.str(f); v != "" {
			q.Set(f, v)
		}
	}
	limit := flagValue[int](c, "limit")
	if limit < 1 {
		return usageError{"--limit must be at least 1"}
	}
	// With --tenant, that tenant's log; without, the whole log, which
	// needs an admin of every tenant: a tenant-scoped admin falls back to
	// its tenant's.
	path := "/api/v1/audit"
	if c.g.tenant != "" {
		base, err := c.tenantPath()
		if err != nil {
			return err
		}
		path = base + "/audit"
	}
	var entries []audit.Entry
	for len(entries) < limit {
		q.Set("limit", strconv.Itoa(min(limit-len(entries), audit.MaxLimit)))
		var page struct {
			Items      []audit.Entry `json:"items"`
			NextCursor string        `json:"next_cursor"`
		}
		err := c.global("GET", path+"?"+q.Encode(), nil, &page)
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status == http.StatusForbidden && path == "/api/v1/audit" {
			base, terr := c.tenantPath()
			if terr != nil {
				return err
			}
			path = base + "/audit"
			continue
		}
		if err != nil {
			return err
		}
		entries = append(entries, page.Items...)
		if page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	return c.show(entries, []string{"TIME", "ACTOR", "VIA", "TENANT", "ACTION", "OBJECT", "STATUS"}, func() (rows [][]string) {
		for _, e := range entries {
			rows = append(rows, []string{e.Time.Format(time.RFC3339), e.Actor, e.Via, e.Tenant, e.Action, e.Object, strconv.Itoa(e.Status)})
		}
		return
	})
}
