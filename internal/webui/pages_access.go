package webui

// The access pages: tenant settings and authentication policies,
// Conditional Access with its "what if" evaluator and security groups, and
// app registrations.

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"hve/internal/directory"
	"hve/internal/password"
)

// generatePassword makes a password for an account whose admin left the
// field empty.
func generatePassword() string { return password.Generate(24) }

// checked reports whether a checkbox was ticked.
func checked(r *http.Request, name string) bool { return r.PostFormValue(name) != "" }

// --- policies ---

type policiesView struct {
	Tenant   directory.Tenant
	Policies []directory.AuthPolicy
}

func (u *UI) policies(r *http.Request, s *session, v *view) error {
	d := policiesView{}
	if err := u.call(r, s, "GET", v.API(""), nil, &d.Tenant); err != nil {
		return err
	}
	if err := u.call(r, s, "GET", v.API("/auth-policies"), nil, &d.Policies); err != nil {
		return err
	}
	v.Data = d
	return nil
}

// settings is the tenant settings page: the access defaults, basic-auth
// retirement per endpoint, and the limits.
func (u *UI) settings(r *http.Request, s *session, v *view) error {
	return u.policies(r, s, v)
}

// retirementForm reads one endpoint's basic-auth retirement dates (prefix
// "hve" or "client"); an empty field removes the date.
func retirementForm(r *http.Request, prefix string) map[string]any {
	return map[string]any{
		"sunset_at":  strings.TrimSpace(r.PostFormValue(prefix + "_sunset")),
		"ramp_start": strings.TrimSpace(r.PostFormValue(prefix + "_ramp_start")),
		"ramp_end":   strings.TrimSpace(r.PostFormValue(prefix + "_ramp_end")),
	}
}

func (u *UI) updateTenant(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{
		"security_defaults":         checked(r, "security_defaults"),
		"client_smtp_auth_disabled": checked(r, "client_smtp_auth_disabled"),
		"default_auth_policy":       r.PostFormValue("default_auth_policy"),
		"hve_basic_auth":            retirementForm(r, "hve"),
		"client_basic_auth":         retirementForm(r, "client"),
		"external_sending":          r.PostFormValue("external_sending"),
		"outbound_smarthost":        strings.TrimSpace(r.PostFormValue("outbound_smarthost")),
	}
	for _, f := range []struct{ field, what string }{
		{"daily_recipient_limit", "the daily recipient limit"}, {"max_hve_accounts", "the maximum number of HVE accounts"},
	} {
		n, err := formInt(r, f.field, f.what)
		if err != nil {
			return "", false, err
		}
		req[f.field] = n
	}
	if p := strings.TrimSpace(r.PostFormValue("price_per_million")); p != "" {
		price, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return "", false, &apiError{Status: http.StatusBadRequest, Message: "the price per million must be a number such as 12.5"}
		}
		req["price_per_million"] = price
	}
	return "Tenant settings saved.", false, u.call(r, s, "PATCH", v.API(""), req, nil)
}

func (u *UI) createAuthPolicy(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"name": r.PostFormValue("name"), "allow_basic_auth_smtp": checked(r, "allow_basic_auth_smtp")}
	return "Created policy " + r.PostFormValue("name") + ".", false, u.call(r, s, "POST", v.API("/auth-policies"), req, nil)
}

func (u *UI) updateAuthPolicy(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	name := r.PathValue("name")
	req := map[string]any{"allow_basic_auth_smtp": r.PostFormValue("allow_basic_auth_smtp") == "true"}
	return "Policy " + name + " saved.", false, u.call(r, s, "PATCH", v.API("/auth-policies/"+url.PathEscape(name)), req, nil)
}

// --- Conditional Access ---

type caView struct {
	Policies []directory.CAPolicy
	Groups   []directory.SecurityGroup
	// Identities are the accounts and mailboxes, for pickers.
	Identities []string
	WhatIf     *whatIfView
	// New is the policy the create form starts from.
	New directory.CAPolicy
}

type whatIfView struct {
	User, IP, ClientApp string
	Error               string
	Result              struct {
		Groups     []string `json:"groups"`
		Blocked    bool     `json:"blocked"`
		BlockedBy  []string `json:"blocked_by"`
		WouldBlock []string `json:"would_block"`
		Verdicts   []struct {
			Policy  string `json:"policy"`
			State   string `json:"state"`
			Grant   string `json:"grant"`
			Applies bool   `json:"applies"`
			Why     string `json:"why"`
		} `json:"verdicts"`
	}
	Done bool
}

func (u *UI) identities(r *http.Request, s *session, v *view) ([]string, error) {
	var accs []directory.Account
	if err := u.call(r, s, "GET", v.API("/accounts"), nil, &accs); err != nil {
		return nil, err
	}
	var boxes []directory.Mailbox
	if err := u.call(r, s, "GET", v.API("/mailboxes"), nil, &boxes); err != nil {
		return nil, err
	}
	var out []string
	for _, a := range accs {
		out = append(out, a.Address)
	}
	for _, m := range boxes {
		out = append(out, m.Address)
	}
	return out, nil
}

func (u *UI) caPolicies(r *http.Request, s *session, v *view) error {
	d := caView{New: directory.CAPolicy{State: directory.CAReportOnly, Grant: directory.GrantBlock, IncludeUsers: []string{directory.AllUsers}}}
	if err := u.call(r, s, "GET", v.API("/ca-policies"), nil, &d.Policies); err != nil {
		return err
	}
	if err := u.call(r, s, "GET", v.API("/security-groups"), nil, &d.Groups); err != nil {
		return err
	}
	var err error
	if d.Identities, err = u.identities(r, s, v); err != nil {
		return err
	}
	if user := strings.TrimSpace(r.FormValue("user")); user != "" {
		wi := &whatIfView{User: user, IP: strings.TrimSpace(r.FormValue("ip")), ClientApp: r.FormValue("client_app")}
		q := url.Values{"user": {wi.User}, "ip": {wi.IP}, "client_app": {wi.ClientApp}}
		if err := u.call(r, s, "GET", v.API("/ca-what-if?"+q.Encode()), nil, &wi.Result); err != nil {
			ae, ok := err.(*apiError)
			if !ok {
				return err
			}
			wi.Error = ae.Message
		} else {
			wi.Done = true
		}
		d.WhatIf = wi
	}
	v.Data = d
	return nil
}

type caEditView struct {
	Policy     directory.CAPolicy
	Groups     []directory.SecurityGroup
	Identities []string
}

func (u *UI) caPolicy(r *http.Request, s *session, v *view) error {
	d := caEditView{}
	if err := u.call(r, s, "GET", v.API("/ca-policies/"+url.PathEscape(r.PathValue("name"))), nil, &d.Policy); err != nil {
		return err
	}
	if err := u.call(r, s, "GET", v.API("/security-groups"), nil, &d.Groups); err != nil {
		return err
	}
	var err error
	if d.Identities, err = u.identities(r, s, v); err != nil {
		return err
	}
	v.Title = "Conditional Access: " + d.Policy.Name
	v.Data = d
	return nil
}

// saveCAPolicy creates (POST /conditional-access) or changes (POST
// /conditional-access/{name}) a policy from the policy form.
func (u *UI) saveCAPolicy(create bool) actionFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
		apps := []string{}
		for _, a := range r.PostForm["client_apps"] {
			apps = append(apps, a)
		}
		req := map[string]any{
			"state": r.PostFormValue("state"), "grant": r.PostFormValue("grant"), "client_apps": apps,
			"include_users": lines(r.PostFormValue("include_users")), "exclude_users": lines(r.PostFormValue("exclude_users")),
			"include_groups": lines(r.PostFormValue("include_groups")), "exclude_groups": lines(r.PostFormValue("exclude_groups")),
			"include_networks": lines(r.PostFormValue("include_networks")), "exclude_networks": lines(r.PostFormValue("exclude_networks")),
		}
		if create {
			name := r.PostFormValue("name")
			req["name"] = name
			return "Created policy " + name + ".", false, u.call(r, s, "POST", v.API("/ca-policies"), req, nil)
		}
		name := r.PathValue("name")
		return "Policy " + name + " saved.", false, u.call(r, s, "PATCH", v.API("/ca-policies/"+url.PathEscape(name)), req, nil)
	}
}

func (u *UI) createSecurityGroup(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	name := r.PostFormValue("name")
	return "Created security group " + name + ".", false, u.call(r, s, "POST", v.API("/security-groups"), map[string]any{"name": name}, nil)
}

func (u *UI) addSecurityGroupMember(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	g, m := r.PathValue("name"), r.PostFormValue("member")
	return m + " added to " + g + ".", false, u.call(r, s, "POST", v.API("/security-groups/"+url.PathEscape(g)+"/members"), map[string]any{"address": m}, nil)
}

// --- apps ---

// appsView is the apps page: app registrations and the trusted external
// OAuth issuers.
type appsView struct {
	Apps    []directory.App
	Issuers []directory.Issuer
}

func (u *UI) apps(r *http.Request, s *session, v *view) error {
	d := appsView{}
	if err := u.call(r, s, "GET", v.API("/apps"), nil, &d.Apps); err != nil {
		return err
	}
	if err := u.call(r, s, "GET", v.API("/oauth/issuers"), nil, &d.Issuers); err != nil {
		return err
	}
	v.Data = d
	return nil
}

func (u *UI) addIssuer(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"url": strings.TrimSpace(r.PostFormValue("url")), "audience": strings.TrimSpace(r.PostFormValue("audience")),
		"role": strings.TrimSpace(r.PostFormValue("role"))}
	return "Issuer " + r.PostFormValue("url") + " trusted.", false, u.call(r, s, "POST", v.API("/oauth/issuers"), req, nil)
}

func (u *UI) removeIssuer(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	// The issuer URL travels in a form field: as a path segment its
	// slashes would need double escaping through two routers.
	iss := r.PostFormValue("url")
	return "Issuer " + iss + " removed.", false, u.call(r, s, "DELETE", v.API("/oauth/issuers/"+url.PathEscape(iss)), nil, nil)
}

// rotateKey makes a new token signing key (global admins; the API refuses
// anyone else).
func (u *UI) rotateKey(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	var keys struct {
		Current string `json:"current"`
	}
	if err := u.call(r, s, "POST", "/api/v1/oauth/rotate-key", nil, &keys); err != nil {
		return "", false, err
	}
	return "New signing key " + keys.Current + "; the old keys still verify tokens they signed.", false, nil
}

func (u *UI) createApp(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"name": r.PostFormValue("name"), "secret_expires": strings.TrimSpace(r.PostFormValue("secret_expires"))}
	var created struct {
		directory.App
		Secret string `json:"secret"`
	}
	if err := u.call(r, s, "POST", v.API("/apps"), req, &created); err != nil {
		return "", false, err
	}
	if checked(r, "grant") {
		if err := u.call(r, s, "POST", v.API("/apps/"+url.PathEscape(created.AppID)+"/permissions"), map[string]any{"permission": "Mail.Send"}, nil); err != nil {
			return "", false, err
		}
	}
	u.showSecret(w, v, secretView{Heading: "App registered", Label: "Client secret of " + created.Name + " (app id " + created.AppID + ")",
		Secret: created.Secret, Note: "Copy it now: it is shown this once. The app gets tokens at /oauth2/token with its app id as client_id and this secret.",
		Back: v.Link("/apps"), BackText: "Back to apps"})
	return "", true, nil
}

func (u *UI) grantApp(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	return "Mail.Send granted.", false, u.call(r, s, "POST", v.API("/apps/"+url.PathEscape(r.PathValue("app"))+"/permissions"), map[string]any{"permission": "Mail.Send"}, nil)
}

func (u *UI) addSecret(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	app := r.PathValue("app")
	var created struct {
		ID     int64  `json:"id"`
		Secret string `json:"secret"`
	}
	req := map[string]any{"expires": strings.TrimSpace(r.PostFormValue("expires"))}
	if err := u.call(r, s, "POST", v.API("/apps/"+url.PathEscape(app)+"/secrets"), req, &created); err != nil {
		return "", false, err
	}
	u.showSecret(w, v, secretView{Heading: "New client secret", Label: "Client secret of app " + app, Secret: created.Secret,
		Note: "Copy it now: it is shown this once.", Back: v.Link("/apps"), BackText: "Back to apps"})
	return "", true, nil
}
