package cli

// The route commands: how each accepted domain's mail is delivered.

import (
	"flag"
	"net/url"
	"strconv"

	"hve/internal/directory"
)

func routeCommands() []command {
	return []command{
		{path: "route set", args: "DOMAIN", help: "set how a domain's mail is delivered (DOMAIN * is the default route); replaces the domain's route",
			flags: routeSetFlags, run: setRoute},
		{path: "route list", help: "list delivery routes (domains without one are delivered locally)", run: listRoutes},
		{path: "route remove", args: "DOMAIN", help: "remove a domain's route (its mail then takes the default route, or local delivery)",
			run: removeBy("/routes/", "removed the route of")},
	}
}

func routeSetFlags(fs *flag.FlagSet) {
	fs.String("type", "", "`local` (the embedded mailbox store), smtp or lmtp (required)")
	fs.String("target", "", "next hop `HOST:PORT`, or unix:/path for lmtp over a unix socket")
	fs.String("tls", "", "`required` (STARTTLS and a verified certificate), opportunistic (default for smtp) or none (default for lmtp)")
	fs.String("auth-user", "", "`username` for AUTH PLAIN to the next hop")
	fs.Bool("auth-password-stdin", false, "read the next hop's password from standard input (without it, the stored password of the same --auth-user is kept)")
	fs.String("client-cert", "", "PEM client certificate `file` (absolute path on the server) to present to the next hop")
	fs.String("client-key", "", "PEM `file` of the client certificate's key")
	fs.String("ca-file", "", "PEM `file` of the CAs the next hop's certificate must chain to (default: system roots)")
	fs.Int("max-connections", 0, "connections open to the next hop at once (`N`; default 10)")
}

func setRoute(c *ctx) error {
	if err := c.wantArgs(1, "DOMAIN"); err != nil {
		return err
	}
	if c.str("type") == "" {
		return usageError{"--type is required: local, smtp or lmtp"}
	}
	req := map[string]any{"type": c.str("type"), "target": c.str("target"), "tls": c.str("tls"), "auth_user": c.str("auth-user"),
		"client_cert": c.str("client-cert"), "client_key": c.str("client-key"), "ca_file": c.str("ca-file"),
		"max_connections": flagValue[int](c, "max-connections")}
	if c.boolFlag("auth-password-stdin") {
		if c.str("auth-user") == "" {
			return usageError{"--auth-password-stdin needs --auth-user"}
		}
		pw, err := c.readPassword()
		if err != nil {
			return err
		}
		req["auth_password"] = pw
	}
	var r directory.Route
	if err := c.call("PUT", "/routes/"+url.PathEscape(c.args[0]), req, &r); err != nil {
		return err
	}
	return c.showRoute(r)
}

func (c *ctx) showRoute(r directory.Route) error {
	auth := "none"
	switch {
	case r.AuthUser != "" && r.AuthPasswordSet:
		auth = r.AuthUser + " (password set)"
	case r.AuthUser != "":
		auth = r.AuthUser + " (no password)"
	}
	fields := [][2]string{{"domain", r.Domain}, {"type", string(r.Type)}}
	if r.IsRelay() {
		fields = append(fields, [2]string{"target", r.Target}, [2]string{"tls", string(r.TLS)}, [2]string{"auth", auth},
			[2]string{"max connections", strconv.Itoa(r.MaxConnections)})
		for _, f := range [][2]string{{"client cert", r.ClientCert}, {"client key", r.ClientKey}, {"ca file", r.CAFile}} {
			if f[1] != "" {
				fields = append(fields, f)
			}
		}
	}
	return c.showFields(r, fields)
}

func listRoutes(c *ctx) error {
	var list []directory.Route
	if err := c.call("GET", "/routes", nil, &list); err != nil {
		return err
	}
	return c.show(list, []string{"DOMAIN", "TYPE", "TARGET", "TLS", "AUTH USER", "MAX CONNECTIONS"}, func() (rows [][]string) {
		for _, r := range list {
			maxConns := ""
			if r.IsRelay() {
				maxConns = strconv.Itoa(r.MaxConnections)
			}
			rows = append(rows, []string{r.Domain, string(r.Type), orDash(r.Target), string(r.TLS), orDash(r.AuthUser), maxConns})
		}
		return
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
