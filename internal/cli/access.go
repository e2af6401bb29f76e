package cli

// The access commands: tenant settings, authentication policies, security
// groups, Conditional Access, app registrations, OAuth issuers and keys,
// and the access side of accounts and mailboxes (set, revoke, convert,
// allowed apps, diagnose).

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"hve/internal/access"
	"hve/internal/admin"
	"hve/internal/directory"
)

// jsonOut prints v as indented JSON.
func (c *ctx) jsonOut(v any) error {
	enc := json.NewEncoder(c.env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// showFields prints v as JSON with --json, else the fields as a FIELD VALUE
// table in the order given.
func (c *ctx) showFields(v any, fields [][2]string) error {
	return c.show(v, []string{"FIELD", "VALUE"}, func() (rows [][]string) {
		for _, f := range fields {
			rows = append(rows, []string{f[0], f[1]})
		}
		return
	})
}

// isNone reports whether a flag value means "no value": none, or empty.
func isNone(v string) bool {
	return v == "" || strings.EqualFold(v, "none")
}

// onOff parses the value of an on|off flag.
func (c *ctx) onOff(name string) (bool, error) {
	switch strings.ToLower(c.str(name)) {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, usageError{fmt.Sprintf("--%s must be on or off", name)}
}

// trueFalse parses the value of a true|false flag.
func (c *ctx) trueFalse(name string) (bool, error) {
	v, err := strconv.ParseBool(c.str(name))
	if err != nil {
		return false, usageError{fmt.Sprintf("--%s must be true or false", name)}
	}
	return v, nil
}

// csv splits a comma-separated flag value; none or "" is the empty list.
func csv(v string) []string {
	list := []string{}
	if isNone(v) {
		return list
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	return list
}

// networks reads a comma-separated list of CIDR prefixes from a flag and
// checks each, so that a typo is caught before anything is sent.
func (c *ctx) networks(name string) ([]string, error) {
	list := csv(c.str(name))
	for _, n := range list {
		if _, err := directory.ParseNetwork(n); err != nil {
			return nil, usageError{fmt.Sprintf("--%s: %v", name, err)}
		}
	}
	return list, nil
}

func onOffText(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func timeOr(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

func listOr(l []string, none string) string {
	if len(l) == 0 {
		return none
	}
	return strings.Join(l, ",")
}

func sessions(n int) string {
	if n == 1 {
		return "1 open session"
	}
	return fmt.Sprintf("%d open sessions", n)
}

// --- tenant ---

func tenantSetFlags(fs *flag.FlagSet) {
	fs.String("security-defaults", "", "`on` refuses every basic sign-in of the tenant; off")
	fs.String("default-auth-policy", "", "authentication policy `NAME` of identities without their own, or none")
	fs.String("client-smtp-auth-disabled", "", "`on` refuses basic sign-ins on the client endpoint; off")
	fs.String("hve-basic-auth-sunset", "", "`DATE` (2026-11-23 or RFC 3339) from which basic auth is refused on the HVE endpoint, or none")
	fs.String("hve-basic-auth-ramp", "", "`START..END` dates over which a rising share of basic sign-ins on the HVE endpoint is refused, or none")
	fs.String("client-basic-auth-sunset", "", "`DATE` from which basic auth is refused on the client endpoint, or none")
	fs.String("client-basic-auth-ramp", "", "`START..END` dates of the staged refusal of basic auth on the client endpoint, or none")
	fs.String("daily-recipient-limit", "", "internal recipients of all HVE accounts per UTC day: `N` or unlimited (HVE's preview had 100000)")
	fs.String("max-hve-accounts", "", "the most HVE accounts the tenant may have: `N` or unlimited")
	fs.String("external-sending", "", "`off` (external recipients refused) or limited (HVE preview limits, through the outbound smarthost)")
	fs.String("outbound-smarthost", "", "`HOST:PORT` external mail leaves through, or none")
	fs.String("price-per-million", "", "estimated cost of a million delivered recipients, for usage reports (`X`, default 42)")
}

// count parses the value of a flag that is a number or a word meaning none
// (unlimited, none): the word gives 0.
func (c *ctx) count(name string, words ...string) (int64, error) {
	v := strings.TrimSpace(c.str(name))
	for _, w := range words {
		if strings.EqualFold(v, w) {
			return 0, nil
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, usageError{fmt.Sprintf("--%s must be a positive number or %s", name, strings.Join(words, " or "))}
	}
	return n, nil
}

// limitsPatch reads the tenant limit flags into the PATCH request.
func (c *ctx) limitsPatch(req map[string]any) error {
	for _, f := range []struct{ flag, field string }{
		{"daily-recipient-limit", "daily_recipient_limit"}, {"max-hve-accounts", "max_hve_accounts"},
	} {
		if flagSet(c.fs, f.flag) {
			n, err := c.count(f.flag, "unlimited")
			if err != nil {
				return err
			}
			req[f.field] = n
		}
	}
	if flagSet(c.fs, "external-sending") {
		m, err := directory.ParseExternalSending(c.str("external-sending"))
		if err != nil {
			return usageError{fmt.Sprintf("--external-sending: %v", err)}
		}
		req["external_sending"] = m
	}
	if flagSet(c.fs, "outbound-smarthost") {
		v := c.str("outbound-smarthost")
		if isNone(v) {
			v = ""
		} else if _, err := directory.ParseSmarthost(v); err != nil {
			return usageError{fmt.Sprintf("--outbound-smarthost: %v", err)}
		}
		req["outbound_smarthost"] = v
	}
	if flagSet(c.fs, "price-per-million") {
		v, err := strconv.ParseFloat(strings.TrimSpace(c.str("price-per-million")), 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return usageError{"--price-per-million must be a number >= 0, such as 42 or 37.5"}
		}
		req["price_per_million"] = v
	}
	return nil
}

// limitText shows a limit whose 0 means none.
func limitText(n int64, none string) string {
	if n <= 0 {
		return none
	}
	return strconv.FormatInt(n, 10)
}

// retirementPatch reads the sunset and ramp flags of one endpoint into a
// PATCH object; nil when neither is given.
func (c *ctx) retirementPatch(endpoint string) (map[string]any, error) {
	p := map[string]any{}
	sunset, ramp := endpoint+"-basic-auth-sunset", endpoint+"-basic-auth-ramp"
	if flagSet(c.fs, sunset) {
		v := c.str(sunset)
		if isNone(v) {
			v = ""
		} else if _, err := admin.ParseDate(v); err != nil {
			return nil, usageError{fmt.Sprintf("--%s: %v", sunset, err)}
		}
		p["sunset_at"] = v
	}
	if flagSet(c.fs, ramp) {
		v := c.str(ramp)
		start, end := "", ""
		if !isNone(v) {
			var ok bool
			if start, end, ok = strings.Cut(v, ".."); !ok {
				return nil, usageError{fmt.Sprintf("--%s: %q is not START..END, such as 2026-11-01..2026-12-01", ramp, v)}
			}
			for _, d := range []string{start, end} {
				if _, err := admin.ParseDate(d); err != nil {
					return nil, usageError{fmt.Sprintf("--%s: %v", ramp, err)}
				}
			}
		}
		p["ramp_start"], p["ramp_end"] = start, end
	}
	if len(p) == 0 {
		return nil, nil
	}
	return p, nil
}

func setTenant(c *ctx) error {
	if err := c.wantArgs(0, "no arguments"); err != nil {
		return err
	}
	req := map[string]any{}
	for _, f := range []struct{ flag, field string }{
		{"security-defaults", "security_defaults"}, {"client-smtp-auth-disabled", "client_smtp_auth_disabled"},
	} {
		if flagSet(c.fs, f.flag) {
			v, err := c.onOff(f.flag)
			if err != nil {
				return err
			}
			req[f.field] = v
		}
	}
	if flagSet(c.fs, "default-auth-policy") {
		v := c.str("default-auth-policy")
		if isNone(v) {
			v = ""
		}
		req["default_auth_policy"] = v
	}
	for _, ep := range []string{"hve", "client"} {
		p, err := c.retirementPatch(ep)
		if err != nil {
			return err
		}
		if p != nil {
			req[ep+"_basic_auth"] = p
		}
	}
	if err := c.limitsPatch(req); err != nil {
		return err
	}
	if len(req) == 0 {
		return usageError{"nothing to change; see hve tenant set -h"}
	}
	var t directory.Tenant
	if err := c.call("PATCH", "", req, &t); err != nil {
		return err
	}
	return c.showTenant(t)
}

func (c *ctx) showTenant(t directory.Tenant) error {
	s := t.Settings
	ramp := func(r directory.Retirement) string {
		if r.RampStart.IsZero() {
			return "none"
		}
		return timeOr(r.RampStart, "") + ".." + timeOr(r.RampEnd, "")
	}
	return c.showFields(t, [][2]string{
		{"name", t.Name},
		{"security defaults", onOffText(s.SecurityDefaults)},
		{"default auth policy", orNone(s.DefaultAuthPolicy)},
		{"client SMTP auth disabled", onOffText(s.ClientSMTPAuthDisabled)},
		{"HVE basic auth sunset", timeOr(s.HVEBasicAuth.SunsetAt, "none")},
		{"HVE basic auth ramp", ramp(s.HVEBasicAuth)},
		{"client basic auth sunset", timeOr(s.ClientBasicAuth.SunsetAt, "none")},
		{"client basic auth ramp", ramp(s.ClientBasicAuth)},
		{"daily recipient limit", limitText(s.DailyRecipientLimit, "unlimited")},
		{"max HVE accounts", limitText(s.MaxHVEAccounts, "unlimited")},
		{"external sending", externalText(s)},
		{"outbound smarthost", orNone(s.OutboundSmarthost)},
		{"price per million", strconv.FormatFloat(s.PricePerMillion, 'f', -1, 64)},
		{"created", timeOr(t.CreatedAt, "")},
	})
}

// externalText shows the external sending mode, with what it means.
func externalText(s directory.Settings) string {
	if !s.ExternalLimitedMode() {
		return "off"
	}
	text := fmt.Sprintf("limited (%d external recipients per account per day, %d messages per minute)",
		directory.DefaultExternalRecipientsPerDay, directory.DefaultExternalMessagesPerMinute)
	if s.OutboundSmarthost == "" {
		text += "; no outbound smarthost: external recipients are refused"
	}
	return text
}

// --- authentication policies ---

func createAuthPolicy(c *ctx) error {
	if err := c.wantArgs(1, "NAME"); err != nil {
		return err
	}
	var p directory.AuthPolicy
	if err := c.call("POST", "/auth-policies", map[string]any{"name": c.args[0], "allow_basic_auth_smtp": c.boolFlag("allow-basic-smtp")}, &p); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(p)
	}
	fmt.Fprintf(c.env.Stdout, "created authentication policy %s (%s)\n", p.Name, basicText(p.AllowBasicAuthSMTP))
	return nil
}

func basicText(allow bool) string {
	if allow {
		return "basic SMTP allowed"
	}
	return "basic SMTP blocked"
}

func setAuthPolicy(c *ctx) error {
	if err := c.wantArgs(1, "NAME"); err != nil {
		return err
	}
	if !flagSet(c.fs, "allow-basic-smtp") {
		return usageError{"nothing to change; give --allow-basic-smtp true|false"}
	}
	allow, err := c.trueFalse("allow-basic-smtp")
	if err != nil {
		return err
	}
	var p directory.AuthPolicy
	if err := c.call("PATCH", "/auth-policies/"+url.PathEscape(c.args[0]), map[string]any{"allow_basic_auth_smtp": allow}, &p); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(p)
	}
	fmt.Fprintf(c.env.Stdout, "authentication policy %s: %s\n", p.Name, basicText(p.AllowBasicAuthSMTP))
	return nil
}

func listAuthPolicies(c *ctx) error {
	var list []directory.AuthPolicy
	if err := c.call("GET", "/auth-policies", nil, &list); err != nil {
		return err
	}
	var t directory.Tenant
	if !c.g.json {
		if err := c.call("GET", "", nil, &t); err != nil {
			return err
		}
	}
	return c.show(list, []string{"NAME", "BASIC SMTP", "TENANT DEFAULT"}, func() (rows [][]string) {
		for _, p := range list {
			def := ""
			if p.Name == t.Settings.DefaultAuthPolicy {
				def = "yes"
			}
			allow := "blocked"
			if p.AllowBasicAuthSMTP {
				allow = "allowed"
			}
			rows = append(rows, []string{p.Name, allow, def})
		}
		return
	})
}

// --- mailboxes and accounts ---

func (c *ctx) showMailbox(m directory.Mailbox) error {
	return c.showFields(m, [][2]string{
		{"address", m.Address},
		{"name", m.Name},
		{"display name", m.DisplayName},
		{"aliases", strings.Join(m.Aliases, ",")},
		{"has password", strconv.FormatBool(m.HasPassword)},
		{"auth policy", authPolicyText(m.AuthPolicy)},
		{"tokens valid from", timeOr(m.TokensValidFrom, "not set")},
		{"converted from HVE", strconv.FormatBool(m.ConvertedFromHVE)},
		{"created", timeOr(m.CreatedAt, "")},
	})
}

func authPolicyText(name string) string {
	if name == "" {
		return "none (the tenant's default)"
	}
	return name
}

func mailboxSetFlags(fs *flag.FlagSet) {
	fs.String("display-name", "", "new display `name`")
	fs.String("auth-policy", "", "authentication policy `NAME`, or none for the tenant's default")
	fs.Bool("password-stdin", false, "read a new password from standard input (at least 8 characters)")
	fs.Bool("revoke-sessions", false, "refuse tokens issued until now and end the mailbox's open sessions")
}

func setMailbox(c *ctx) error {
	if err := c.wantArgs(1, "ADDRESS"); err != nil {
		return err
	}
	req := map[string]any{}
	if flagSet(c.fs, "display-name") {
		req["display_name"] = c.str("display-name")
	}
	if flagSet(c.fs, "auth-policy") {
		req["auth_policy"] = policyValue(c.str("auth-policy"))
	}
	if c.boolFlag("password-stdin") {
		pw, err := c.readPassword()
		if err != nil {
			return err
		}
		req["password"] = pw
	}
	revoke := c.boolFlag("revoke-sessions")
	if len(req) == 0 && !revoke {
		return usageError{"nothing to change; see hve mailbox set -h"}
	}
	path := "/mailboxes/" + url.PathEscape(c.args[0])
	var m directory.Mailbox
	if len(req) > 0 {
		if err := c.call("PATCH", path, req, &m); err != nil {
			return err
		}
	}
	if revoke {
		if err := c.revoke(path); err != nil {
			return err
		}
		if err := c.call("GET", path, nil, &m); err != nil {
			return err
		}
	}
	return c.showMailbox(m)
}

// policyValue maps the CLI's "none" to the API's "".
func policyValue(v string) string {
	if isNone(v) {
		return ""
	}
	return v
}

// revokeReply is the API's reply to revoke-sessions.
type revokeReply struct {
	Address         string    `json:"address"`
	TokensValidFrom time.Time `json:"tokens_valid_from"`
	SessionsClosed  int       `json:"sessions_closed"`
}

// revoke revokes the tokens and sessions of the account or mailbox at path
// and says so (not with --json, whose output is the changed object alone).
func (c *ctx) revoke(path string) error {
	var rv revokeReply
	if err := c.call("POST", path+"/revoke-sessions", nil, &rv); err != nil {
		return err
	}
	if !c.g.json {
		fmt.Fprintf(c.env.Stdout, "revoked the tokens of %s issued before %s; closed %s\n",
			rv.Address, rv.TokensValidFrom.Format(time.RFC3339), sessions(rv.SessionsClosed))
	}
	return nil
}

type convertReply struct {
	Mailbox        directory.Mailbox `json:"mailbox"`
	SessionsClosed int               `json:"sessions_closed"`
}

func convertAccount(c *ctx) error {
	if err := c.wantArgs(1, "ADDRESS"); err != nil {
		return err
	}
	var rep convertReply
	if err := c.call("POST", "/accounts/"+url.PathEscape(c.args[0])+"/convert-to-mailbox", nil, &rep); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(rep)
	}
	fmt.Fprintf(c.env.Stdout, "converted %s into a mailbox and closed %s; the HVE endpoint now answers it with AUTH2003\n",
		rep.Mailbox.Address, sessions(rep.SessionsClosed))
	return nil
}

type allowedAppsReply struct {
	Address     string   `json:"address"`
	AppID       string   `json:"app_id"`
	AppName     string   `json:"app_name"`
	External    bool     `json:"external"`
	AllowedApps []string `json:"allowed_apps"`
}

func allowApp(c *ctx) error {
	if err := c.wantArgs(2, "ADDRESS APP"); err != nil {
		return err
	}
	var rep allowedAppsReply
	if err := c.call("POST", "/accounts/"+url.PathEscape(c.args[0])+"/allowed-apps", map[string]string{"app": c.args[1]}, &rep); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(rep)
	}
	if rep.External {
		fmt.Fprintf(c.env.Stdout, "allowed %s for %s as the app id of an app of a trusted external issuer (it is not an app registration of this tenant)\n",
			rep.AppID, rep.Address)
	} else {
		fmt.Fprintf(c.env.Stdout, "allowed app %s (%s) for %s\n", rep.AppID, rep.AppName, rep.Address)
	}
	fmt.Fprintf(c.env.Stdout, "%s allows %d of at most %d apps\n", rep.Address, len(rep.AllowedApps), directory.MaxAllowedApps)
	return nil
}

func disallowApp(c *ctx) error {
	if err := c.wantArgs(2, "ADDRESS APP"); err != nil {
		return err
	}
	var rep allowedAppsReply
	if err := c.call("DELETE", "/accounts/"+url.PathEscape(c.args[0])+"/allowed-apps/"+url.PathEscape(c.args[1]), nil, &rep); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(rep)
	}
	fmt.Fprintf(c.env.Stdout, "removed app %s from the allowed apps of %s\n", rep.AppID, rep.Address)
	return nil
}

func diagnoseFlags(fs *flag.FlagSet) {
	fs.String("from-ip", "", "client `IP` address to assume (for allowed networks and Conditional Access)")
	fs.String("auth", "basic", "sign-in `method`: basic (LOGIN, PLAIN) or oauth (XOAUTH2, OAUTHBEARER)")
	fs.String("endpoint", "", "`endpoint`: hve or client (default: where the identity belongs)")
	fs.String("app", "", "for --auth oauth: the app id or object id whose token to assume")
}

// diagnosis is the API's diagnose reply.
type diagnosis struct {
	Address  string        `json:"address"`
	Kind     string        `json:"kind"`
	Endpoint string        `json:"endpoint"`
	Auth     string        `json:"auth"`
	FromIP   string        `json:"from_ip"`
	App      string        `json:"app"`
	OK       bool          `json:"ok"`
	Reply    string        `json:"reply"`
	Reason   string        `json:"reason"`
	Steps    []access.Step `json:"steps"`
}

func diagnose(c *ctx) error {
	if err := c.wantArgs(1, "ADDRESS"); err != nil {
		return err
	}
	q := url.Values{}
	for flagName, param := range map[string]string{"from-ip": "from_ip", "auth": "auth", "endpoint": "endpoint", "app": "app"} {
		if v := c.str(flagName); v != "" {
			q.Set(param, v)
		}
	}
	var d diagnosis
	if err := c.call("GET", "/accounts/"+url.PathEscape(c.args[0])+"/diagnose?"+q.Encode(), nil, &d); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(d)
	}
	w := c.env.Stdout
	from := ""
	if d.FromIP != "" {
		from = " from " + d.FromIP
	}
	if d.App != "" {
		from += " with a token of app " + d.App
	}
	fmt.Fprintf(w, "diagnose %s (%s): %s sign-in on the %s endpoint%s\n\n", d.Address, d.Kind, d.Auth, d.Endpoint, from)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tVERDICT\tDETAIL\tFIX")
	for _, s := range d.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Check, s.Verdict, s.Detail, s.Fix)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	secret := "password"
	if d.Auth == string(access.OAuth) {
		secret = "token"
	}
	if d.OK {
		fmt.Fprintf(w, "\nresult: would sign in, given the right %s (diagnose does not check it)\n", secret)
		return nil
	}
	fmt.Fprintf(w, "\nresult: refused with %s\nreason: %s\n", d.Reply, d.Reason)
	return nil
}

// --- security groups ---

func createSecurityGroup(c *ctx) error {
	if err := c.wantArgs(1, "NAME"); err != nil {
		return err
	}
	var g directory.SecurityGroup
	if err := c.call("POST", "/security-groups", map[string]string{"name": c.args[0]}, &g); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(g)
	}
	fmt.Fprintf(c.env.Stdout, "created security group %s\n", g.Name)
	return nil
}

func changeSecurityGroupMember(add bool) func(c *ctx) error {
	return func(c *ctx) error {
		if err := c.wantArgs(2, "NAME MEMBER"); err != nil {
			return err
		}
		var g directory.SecurityGroup
		path := "/security-groups/" + url.PathEscape(c.args[0]) + "/members"
		var err error
		if add {
			err = c.call("POST", path, map[string]string{"address": c.args[1]}, &g)
		} else {
			err = c.call("DELETE", path+"/"+url.PathEscape(c.args[1]), nil, &g)
		}
		if err != nil {
			return err
		}
		if c.g.json {
			return c.jsonOut(g)
		}
		verb := "removed %s from security group %s\n"
		if add {
			verb = "added %s to security group %s\n"
		}
		fmt.Fprintf(c.env.Stdout, verb, c.args[1], g.Name)
		return nil
	}
}

func listSecurityGroups(c *ctx) error {
	var list []directory.SecurityGroup
	if err := c.call("GET", "/security-groups", nil, &list); err != nil {
		return err
	}
	return c.show(list, []string{"NAME", "MEMBERS"}, func() (rows [][]string) {
		for _, g := range list {
			var m []string
			for _, mem := range g.Members {
				m = append(m, mem.Address)
			}
			rows = append(rows, []string{g.Name, strings.Join(m, ",")})
		}
		return
	})
}

// --- Conditional Access ---

func caPolicyFlags(fs *flag.FlagSet) {
	fs.String("grant", "", "`grant`: block, require-mfa or require-compliant-device (SMTP can satisfy neither MFA nor a device, so all block)")
	fs.String("state", "", "`state`: on, off or report-only (new policies: report-only)")
	fs.String("client-apps", "", "`apps` the policy applies to: legacy (basic auth), modern (OAuth), or legacy,modern; none: both")
	fs.String("include-users", "", "`all` or comma-separated addresses of HVE accounts and mailboxes")
	fs.String("exclude-users", "", "comma-separated `addresses`")
	fs.String("include-groups", "", "comma-separated security group `names`")
	fs.String("exclude-groups", "", "comma-separated security group `names`")
	fs.String("include-networks", "", "comma-separated `CIDR` prefixes the policy applies to (default: any network)")
	fs.String("exclude-networks", "", "comma-separated `CIDR` prefixes the policy does not apply to")
}

// caPolicyBody reads the given policy flags into an API body.
func (c *ctx) caPolicyBody() (map[string]any, error) {
	req := map[string]any{}
	for _, name := range []string{"grant", "state"} {
		if flagSet(c.fs, name) {
			req[name] = c.str(name)
		}
	}
	for _, name := range []string{"client-apps", "include-users", "exclude-users", "include-groups", "exclude-groups"} {
		if flagSet(c.fs, name) {
			req[strings.ReplaceAll(name, "-", "_")] = csv(c.str(name))
		}
	}
	for _, name := range []string{"include-networks", "exclude-networks"} {
		if flagSet(c.fs, name) {
			nets, err := c.networks(name)
			if err != nil {
				return nil, err
			}
			req[strings.ReplaceAll(name, "-", "_")] = nets
		}
	}
	return req, nil
}

func createCAPolicy(c *ctx) error {
	if err := c.wantArgs(1, "NAME"); err != nil {
		return err
	}
	if !flagSet(c.fs, "grant") {
		return usageError{"--grant is required: block, require-mfa or require-compliant-device"}
	}
	req, err := c.caPolicyBody()
	if err != nil {
		return err
	}
	req["name"] = c.args[0]
	var p directory.CAPolicy
	if err := c.call("POST", "/ca-policies", req, &p); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(p)
	}
	fmt.Fprintf(c.env.Stdout, "created Conditional Access policy %q (%s)\n", p.Name, p.State)
	if p.State == directory.CAReportOnly {
		fmt.Fprintf(c.env.Stdout, "it blocks nobody yet: check whom it would block with hve account diagnose and hve trace, then: hve ca-policy set %s --state on\n",
			shellWord(p.Name))
	}
	return nil
}

// shellWord quotes s for a command line the user can paste.
func shellWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t'\"\\$`!&|;<>()*?[]#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func setCAPolicy(c *ctx) error {
	if err := c.wantArgs(1, "NAME"); err != nil {
		return err
	}
	req, err := c.caPolicyBody()
	if err != nil {
		return err
	}
	if len(req) == 0 {
		return usageError{"nothing to change; see hve ca-policy set -h"}
	}
	var p directory.CAPolicy
	if err := c.call("PATCH", "/ca-policies/"+url.PathEscape(c.args[0]), req, &p); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(p)
	}
	return c.caTable([]directory.CAPolicy{p})
}

func listCAPolicies(c *ctx) error {
	var list []directory.CAPolicy
	if err := c.call("GET", "/ca-policies", nil, &list); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(list)
	}
	return c.caTable(list)
}

// caTable prints policies, one a row; INCLUDE and EXCLUDE join users,
// groups (group:NAME) and networks.
func (c *ctx) caTable(list []directory.CAPolicy) error {
	side := func(users, groups, nets []string, none string) string {
		var parts []string
		parts = append(parts, users...)
		for _, g := range groups {
			parts = append(parts, "group:"+g)
		}
		parts = append(parts, nets...)
		return listOr(parts, none)
	}
	return c.show(list, []string{"NAME", "STATE", "GRANT", "CLIENT APPS", "INCLUDE", "EXCLUDE"}, func() (rows [][]string) {
		for _, p := range list {
			apps := make([]string, len(p.ClientApps))
			for i, a := range p.ClientApps {
				apps[i] = string(a)
			}
			include := side(p.IncludeUsers, p.IncludeGroups, nil, "nobody")
			if len(p.IncludeNetworks) > 0 {
				include += " from " + strings.Join(p.IncludeNetworks, ",")
			}
			rows = append(rows, []string{p.Name, string(p.State), string(p.Grant), listOr(apps, "legacy,modern"),
				include, side(p.ExcludeUsers, p.ExcludeGroups, p.ExcludeNetworks, "-")})
		}
		return
	})
}

// --- apps ---

type appCreated struct {
	directory.App
	Secret string `json:"secret"`
}

type secretCreated struct {
	directory.AppSecret
	Secret string `json:"secret"`
}

func createApp(c *ctx) error {
	if err := c.wantArgs(0, "no arguments"); err != nil {
		return err
	}
	if c.str("name") == "" {
		return usageError{"--name is required"}
	}
	var app appCreated
	if err := c.call("POST", "/apps", map[string]string{"name": c.str("name"), "secret_expires": c.str("secret-expires")}, &app); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(app)
	}
	w := c.env.Stdout
	fmt.Fprintf(w, "created app %s\n", app.Name)
	fmt.Fprintf(w, "app (client) id:  %s\n", app.AppID)
	fmt.Fprintf(w, "object id:        %s\n", app.ObjectID)
	fmt.Fprintf(w, "client secret (shown this once): %s\n", app.Secret)
	if len(app.Secrets) > 0 {
		fmt.Fprintf(w, "secret expires:   %s\n", app.Secrets[0].ExpiresAt.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "next: hve app grant %s Mail.Send, then hve account allow-app ACCOUNT %s\n", app.AppID, app.AppID)
	return nil
}

func listApps(c *ctx) error {
	var list []directory.App
	if err := c.call("GET", "/apps", nil, &list); err != nil {
		return err
	}
	return c.show(list, []string{"NAME", "APP ID", "OBJECT ID", "PERMISSIONS", "SECRETS (ID: HINT, EXPIRES)"}, func() (rows [][]string) {
		for _, a := range list {
			perms := make([]string, len(a.Permissions))
			for i, p := range a.Permissions {
				perms[i] = string(p)
			}
			var secrets []string
			for _, s := range a.Secrets {
				secrets = append(secrets, fmt.Sprintf("%d: %s..., %s", s.ID, s.Hint, s.ExpiresAt.Format(time.DateOnly)))
			}
			rows = append(rows, []string{a.Name, a.AppID, a.ObjectID, listOr(perms, "none"), listOr(secrets, "none")})
		}
		return
	})
}

func changeGrant(grant bool) func(c *ctx) error {
	return func(c *ctx) error {
		if err := c.wantArgs(2, "APP PERMISSION"); err != nil {
			return err
		}
		path := "/apps/" + url.PathEscape(c.args[0]) + "/permissions"
		var app directory.App
		var err error
		if grant {
			err = c.call("POST", path, map[string]string{"permission": c.args[1]}, &app)
		} else {
			err = c.call("DELETE", path+"/"+url.PathEscape(c.args[1]), nil, &app)
		}
		if err != nil {
			return err
		}
		if c.g.json {
			return c.jsonOut(app)
		}
		if grant {
			fmt.Fprintf(c.env.Stdout, "granted %s to app %s (%s) with admin consent\n", c.args[1], app.Name, app.AppID)
		} else {
			fmt.Fprintf(c.env.Stdout, "revoked %s from app %s (%s); tokens issued before keep it until they expire\n", c.args[1], app.Name, app.AppID)
		}
		return nil
	}
}

func addSecret(c *ctx) error {
	if err := c.wantArgs(1, "APP"); err != nil {
		return err
	}
	var s secretCreated
	if err := c.call("POST", "/apps/"+url.PathEscape(c.args[0])+"/secrets", map[string]string{"expires": c.str("expires")}, &s); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(s)
	}
	fmt.Fprintf(c.env.Stdout, "added client secret %d to app %s\nclient secret (shown this once): %s\nexpires: %s\n",
		s.ID, c.args[0], s.Secret, s.ExpiresAt.Format(time.RFC3339))
	return nil
}

func removeSecret(c *ctx) error {
	if err := c.wantArgs(2, "APP SECRET_ID"); err != nil {
		return err
	}
	if _, err := strconv.ParseInt(c.args[1], 10, 64); err != nil {
		return usageError{fmt.Sprintf("SECRET_ID %q must be a number; hve app list shows the ids", c.args[1])}
	}
	if err := c.call("DELETE", "/apps/"+url.PathEscape(c.args[0])+"/secrets/"+c.args[1], nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "removed client secret %s of app %s\n", c.args[1], c.args[0])
	return nil
}

// --- OAuth issuers and keys ---

func addIssuer(c *ctx) error {
	if err := c.wantArgs(1, "URL"); err != nil {
		return err
	}
	if c.str("audience") == "" {
		return usageError{"--audience is required: what the issuer's tokens carry in aud for hve"}
	}
	var i directory.Issuer
	if err := c.call("POST", "/oauth/issuers", map[string]string{"url": c.args[0], "audience": c.str("audience"), "role": c.str("role")}, &i); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(i)
	}
	fmt.Fprintf(c.env.Stdout, "trusting issuer %s (audience %s, role %s)\n", i.URL, i.Audience, i.Role)
	return nil
}

func listIssuers(c *ctx) error {
	var list []directory.Issuer
	if err := c.call("GET", "/oauth/issuers", nil, &list); err != nil {
		return err
	}
	return c.show(list, []string{"URL", "AUDIENCE", "ROLE", "ADDED"}, func() (rows [][]string) {
		for _, i := range list {
			rows = append(rows, []string{i.URL, i.Audience, i.Role, timeOr(i.CreatedAt, "")})
		}
		return
	})
}

func rotateKey(c *ctx) error {
	if err := c.wantArgs(0, "no arguments"); err != nil {
		return err
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	var rep struct {
		Current string                 `json:"current"`
		Keys    []directory.SigningKey `json:"keys"`
	}
	if err := api.Do(c, "POST", "/api/v1/oauth/rotate-key", nil, &rep); err != nil {
		return err
	}
	if c.g.json {
		return c.jsonOut(rep)
	}
	fmt.Fprintf(c.env.Stdout, "new signing key %s; %d older key(s) stay published until the tokens they signed expire\n", rep.Current, len(rep.Keys)-1)
	return nil
}

// accessCommands are the access commands, by group, for the command table.
func accessCommands() map[string][]command {
	return map[string][]command{
		"tenant": {
			{path: "tenant show", help: "show the tenant's settings", run: func(c *ctx) error {
				if err := c.wantArgs(0, "no arguments"); err != nil {
					return err
				}
				var t directory.Tenant
				if err := c.call("GET", "", nil, &t); err != nil {
					return err
				}
				return c.showTenant(t)
			}},
			{path: "tenant set", help: "change the tenant's settings (only the flags given)", flags: tenantSetFlags, run: setTenant},
		},
		"mailbox": {
			{path: "mailbox show", args: "ADDRESS", help: "show one mailbox", run: func(c *ctx) error {
				if err := c.wantArgs(1, "ADDRESS"); err != nil {
					return err
				}
				var m directory.Mailbox
				if err := c.call("GET", "/mailboxes/"+url.PathEscape(c.args[0]), nil, &m); err != nil {
					return err
				}
				return c.showMailbox(m)
			}},
			{path: "mailbox set", args: "ADDRESS", help: "change a mailbox; --revoke-sessions ends its sessions and tokens", flags: mailboxSetFlags, run: setMailbox},
		},
		"account": {
			{path: "account convert-to-mailbox", args: "ADDRESS", help: "turn an HVE account into a mailbox and end its sessions", run: convertAccount},
			{path: "account allow-app", args: "ADDRESS APP", help: "let an app's OAuth tokens send as the account (APP: app id or object id)", run: allowApp},
			{path: "account disallow-app", args: "ADDRESS APP", help: "remove an app from the account's allowed apps", run: disallowApp},
			{path: "account diagnose", args: "ADDRESS", help: "walk the checks of a sign-in and print each verdict and fix", flags: diagnoseFlags, run: diagnose},
		},
		"auth-policy": {
			{path: "auth-policy create", args: "NAME", help: "create an authentication policy", flags: func(fs *flag.FlagSet) {
				fs.Bool("allow-basic-smtp", false, "allow basic auth (LOGIN, PLAIN) on SMTP")
			}, run: createAuthPolicy},
			{path: "auth-policy set", args: "NAME", help: "change an authentication policy", flags: func(fs *flag.FlagSet) {
				fs.String("allow-basic-smtp", "", "`true` or false")
			}, run: setAuthPolicy},
			{path: "auth-policy list", help: "list authentication policies", run: listAuthPolicies},
			{path: "auth-policy remove", args: "NAME", help: "remove an authentication policy no one uses", run: removeBy("/auth-policies/", "removed authentication policy")},
		},
		"security-group": {
			{path: "security-group create", args: "NAME", help: "create a security group (for Conditional Access)", run: createSecurityGroup},
			{path: "security-group add-member", args: "NAME MEMBER", help: "add an HVE account or mailbox to a security group", run: changeSecurityGroupMember(true)},
			{path: "security-group remove-member", args: "NAME MEMBER", help: "remove a member from a security group", run: changeSecurityGroupMember(false)},
			{path: "security-group list", help: "list security groups and their members", run: listSecurityGroups},
			{path: "security-group remove", args: "NAME", help: "remove a security group no policy uses", run: removeBy("/security-groups/", "removed security group")},
		},
		"ca-policy": {
			{path: "ca-policy create", args: "NAME", help: "create a Conditional Access policy (report-only unless --state)", flags: caPolicyFlags, run: createCAPolicy},
			{path: "ca-policy list", help: "list Conditional Access policies", run: listCAPolicies},
			{path: "ca-policy set", args: "NAME", help: "change a Conditional Access policy (only the flags given)", flags: caPolicyFlags, run: setCAPolicy},
			{path: "ca-policy remove", args: "NAME", help: "remove a Conditional Access policy", run: removeBy("/ca-policies/", "removed Conditional Access policy")},
		},
		"app": {
			{path: "app create", help: "register an app; prints its ids and a client secret once", flags: func(fs *flag.FlagSet) {
				fs.String("name", "", "the app's `name` (required)")
				fs.String("secret-expires", admin.DefaultSecretExpiry, "when the first secret expires: `2y`, 26w, 90d, 720h or a date")
			}, run: createApp},
			{path: "app list", help: "list app registrations (secrets only by hint and expiry)", run: listApps},
			{path: "app grant", args: "APP PERMISSION", help: "grant a permission (Mail.Send) with admin consent", run: changeGrant(true)},
			{path: "app revoke-grant", args: "APP PERMISSION", help: "revoke a permission", run: changeGrant(false)},
			{path: "app secret add", args: "APP", help: "add a client secret; prints it once", flags: func(fs *flag.FlagSet) {
				fs.String("expires", admin.DefaultSecretExpiry, "when it expires: `2y`, 26w, 90d, 720h or a date")
			}, run: addSecret},
			{path: "app secret remove", args: "APP SECRET_ID", help: "remove a client secret", run: removeSecret},
			{path: "app remove", args: "APP", help: "remove an app registration and its secrets", run: removeBy("/apps/", "removed app")},
		},
		"oauth": {
			{path: "oauth issuer add", args: "URL", help: "trust an external OpenID Connect issuer's tokens", flags: func(fs *flag.FlagSet) {
				fs.String("audience", "", "the `aud` its tokens carry for hve (required)")
				fs.String("role", "", "the `role` its tokens must carry to send (default Mail.Send)")
			}, run: addIssuer},
			{path: "oauth issuer list", help: "list trusted external issuers", run: listIssuers},
			{path: "oauth issuer remove", args: "URL", help: "stop trusting an issuer", run: removeBy("/oauth/issuers/", "removed issuer")},
			{path: "oauth rotate-key", help: "make a new token-signing key (all tenants)", run: rotateKey},
		},
	}
}
