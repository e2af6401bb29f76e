package webui

// The directory pages: HVE accounts, mailboxes, groups, domains, routes.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"hve/internal/access"
	"hve/internal/directory"
)

var wildcard = regexp.MustCompile(`\{([^}]+)\}`)

// simple is an action that calls one API route of the page's tenant with
// no body; {name} in rest and msg are the action's own path values.
func (u *UI) simple(method, rest, msg string) actionFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
		path, text := rest, msg
		for _, m := range wildcard.FindAllStringSubmatch(rest, -1) {
			val := r.PathValue(m[1])
			path = strings.ReplaceAll(path, m[0], url.PathEscape(val))
			text = strings.ReplaceAll(text, m[0], val)
		}
		return text, false, u.call(r, s, method, v.API(path), nil, nil)
	}
}

// secretView shows a secret once: a generated password, a client secret,
// an API token, a TOTP key.
type secretView struct {
	Heading string
	Note    string
	Label   string
	Secret  string
	// Extra is a second value (a TOTP URI).
	Extra    string
	Back     string
	BackText string
}

// showSecret renders the secret page (never cached: see render).
func (u *UI) showSecret(w http.ResponseWriter, v *view, sv secretView) {
	v.Title = sv.Heading
	v.Data = sv
	u.render(w, http.StatusOK, "secret", v)
}

// --- HVE accounts ---

type accountsView struct {
	Query    string
	Accounts []directory.Account
	Total    int
}

func (u *UI) accounts(r *http.Request, s *session, v *view) error {
	var list []directory.Account
	if err := u.call(r, s, "GET", v.API("/accounts"), nil, &list); err != nil {
		return err
	}
	d := accountsView{Query: strings.TrimSpace(r.FormValue("q")), Total: len(list)}
	q := strings.ToLower(d.Query)
	for _, a := range list {
		if q == "" || strings.Contains(strings.ToLower(a.Address+" "+a.Name+" "+a.DisplayName+" "+strings.Join(a.Aliases, " ")), q) {
			d.Accounts = append(d.Accounts, a)
		}
	}
	v.Data = d
	return nil
}

func (u *UI) createAccount(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"name": r.PostFormValue("name"), "address": r.PostFormValue("address"),
		"display_name": r.PostFormValue("display_name"), "reply_to": r.PostFormValue("reply_to"), "aliases": lines(r.PostFormValue("aliases"))}
	if pw := r.PostFormValue("password"); pw != "" {
		req["password"] = pw
	}
	var created struct {
		directory.Account
		Password string `json:"password"`
	}
	if err := u.call(r, s, "POST", v.API("/accounts"), req, &created); err != nil {
		return "", false, err
	}
	if created.Password == "" {
		return "Created HVE account " + created.Address + ".", false, nil
	}
	u.showSecret(w, v, secretView{Heading: "HVE account created", Label: "Generated password of " + created.Address, Secret: created.Password,
		Note: "Copy it now: it is shown this once and cannot be shown again (set a new one if it is lost).",
		Back: v.Link("/accounts/" + url.PathEscape(created.Address)), BackText: "Go to the account"})
	return "", true, nil
}

type accountView struct {
	Account directory.Account
	// Extra holds the fields of the API's reply this page does not know
	// (limits), shown read-only.
	Extra    map[string]any
	Policies []directory.AuthPolicy
	Apps     []directory.App
	// AppNames maps allowed app ids to registration names.
	AppNames map[string]string
}

func (u *UI) account(r *http.Request, s *session, v *view) error {
	var raw []byte
	path := v.API("/accounts/" + url.PathEscape(r.PathValue("address")))
	if err := u.call(r, s, "GET", path, nil, &raw); err != nil {
		return err
	}
	d := accountView{AppNames: map[string]string{}}
	if err := json.Unmarshal(raw, &d.Account); err != nil {
		return err
	}
	json.Unmarshal(raw, &d.Extra)
	for _, k := range []string{"id", "name", "display_name", "address", "aliases", "reply_to", "enabled", "created_at", "updated_at",
		"auth_policy", "tokens_valid_from", "allowed_apps", "allowed_networks", "daily_recipient_limit", "warn_at", "failure_report_to"} {
		delete(d.Extra, k)
	}
	if err := u.call(r, s, "GET", v.API("/auth-policies"), nil, &d.Policies); err != nil {
		return err
	}
	if err := u.call(r, s, "GET", v.API("/apps"), nil, &d.Apps); err != nil {
		return err
	}
	for _, a := range d.Apps {
		d.AppNames[a.AppID] = a.Name
	}
	v.Title = d.Account.Address
	v.Data = d
	return nil
}

func accountPath(r *http.Request, v *view) string {
	return v.API("/accounts/" + url.PathEscape(r.PathValue("address")))
}

func (u *UI) updateAccount(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{
		"display_name":     r.PostFormValue("display_name"),
		"reply_to":         r.PostFormValue("reply_to"),
		"aliases":          lines(r.PostFormValue("aliases")),
		"auth_policy":      r.PostFormValue("auth_policy"),
		"allowed_networks": lines(r.PostFormValue("allowed_networks")),
	}
	if _, ok := r.PostForm["daily_recipient_limit"]; ok {
		n, err := formInt(r, "daily_recipient_limit", "the daily recipient limit")
		if err != nil {
			return "", false, err
		}
		req["daily_recipient_limit"] = n
	}
	if _, ok := r.PostForm["warn_at"]; ok {
		n, err := formInt(r, "warn_at", "the warning level")
		if err != nil {
			return "", false, err
		}
		req["warn_at"] = n
	}
	if _, ok := r.PostForm["failure_report_to"]; ok {
		req["failure_report_to"] = strings.TrimSpace(r.PostFormValue("failure_report_to"))
	}
	return "Saved.", false, u.call(r, s, "PATCH", accountPath(r, v), req, nil)
}

// formInt reads a whole-number form field; empty is 0 (none).
func formInt(r *http.Request, field, what string) (int64, error) {
	val := strings.TrimSpace(r.PostFormValue(field))
	if val == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil {
		return 0, &apiError{Status: http.StatusBadRequest, Message: what + " must be a whole number (0: none)"}
	}
	return n, nil
}

func (u *UI) enableAccount(on bool) actionFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
		msg := "Account disabled; its open sessions were ended."
		if on {
			msg = "Account enabled."
		}
		return msg, false, u.call(r, s, "PATCH", accountPath(r, v), map[string]any{"enabled": on}, nil)
	}
}

func (u *UI) revokeAccount(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	var rv struct {
		SessionsClosed int `json:"sessions_closed"`
	}
	if err := u.call(r, s, "POST", accountPath(r, v)+"/revoke-sessions", nil, &rv); err != nil {
		return "", false, err
	}
	return "Tokens issued until now are refused; " + strconv.Itoa(rv.SessionsClosed) + " open session(s) ended.", false, nil
}

func (u *UI) accountPassword(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	pw := r.PostFormValue("password")
	generated := pw == ""
	if generated {
		pw = generatePassword()
	}
	if err := u.call(r, s, "PATCH", accountPath(r, v), map[string]any{"password": pw}, nil); err != nil {
		return "", false, err
	}
	if !generated {
		return "Password changed.", false, nil
	}
	addr := r.PathValue("address")
	u.showSecret(w, v, secretView{Heading: "New password", Label: "New password of " + addr, Secret: pw,
		Note: "Copy it now: it is shown this once. The old password no longer works.",
		Back: v.Link("/accounts/" + url.PathEscape(addr)), BackText: "Back to the account"})
	return "", true, nil
}

func (u *UI) allowApp(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	return "App allowed.", false, u.call(r, s, "POST", accountPath(r, v)+"/allowed-apps", map[string]any{"app": r.PostFormValue("app")}, nil)
}

func (u *UI) disallowApp(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	return "App removed from the allowed list.", false, u.call(r, s, "DELETE", accountPath(r, v)+"/allowed-apps/"+url.PathEscape(r.PathValue("app")), nil, nil)
}

func (u *UI) removeAccount(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	return "HVE account " + r.PathValue("address") + " removed.", false, u.call(r, s, "DELETE", accountPath(r, v), nil, nil)
}

type diagnoseView struct {
	Address                     string
	FromIP, Auth, Endpoint, App string
	Result                      struct {
		Address  string        `json:"address"`
		Kind     string        `json:"kind"`
		Endpoint string        `json:"endpoint"`
		Auth     string        `json:"auth"`
		OK       bool          `json:"ok"`
		Reply    string        `json:"reply"`
		Reason   string        `json:"reason"`
		Steps    []access.Step `json:"steps"`
	}
}

func (u *UI) diagnose(r *http.Request, s *session, v *view) error {
	d := diagnoseView{Address: r.PathValue("address"), FromIP: r.FormValue("from_ip"), Auth: r.FormValue("auth"), Endpoint: r.FormValue("endpoint"), App: r.FormValue("app")}
	q := url.Values{}
	for k, val := range map[string]string{"from_ip": d.FromIP, "auth": d.Auth, "endpoint": d.Endpoint, "app": d.App} {
		if val != "" {
			q.Set(k, val)
		}
	}
	if err := u.call(r, s, "GET", accountPath(r, v)+"/diagnose?"+q.Encode(), nil, &d.Result); err != nil {
		return err
	}
	v.Title = "Diagnose " + d.Result.Address
	v.Data = d
	return nil
}

// --- mailboxes ---

func (u *UI) mailboxes(r *http.Request, s *session, v *view) error {
	var list []directory.Mailbox
	if err := u.call(r, s, "GET", v.API("/mailboxes"), nil, &list); err != nil {
		return err
	}
	v.Data = list
	return nil
}

func (u *UI) createMailbox(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"name": r.PostFormValue("name"), "address": r.PostFormValue("address"),
		"display_name": r.PostFormValue("display_name"), "aliases": lines(r.PostFormValue("aliases"))}
	if pw := r.PostFormValue("password"); pw != "" {
		req["password"] = pw
	}
	return "Created mailbox " + r.PostFormValue("address") + ".", false, u.call(r, s, "POST", v.API("/mailboxes"), req, nil)
}

// mailboxView is one mailbox's page.
type mailboxView struct {
	Mailbox  directory.Mailbox
	Policies []directory.AuthPolicy
}

func mailboxPath(r *http.Request, v *view) string {
	return v.API("/mailboxes/" + url.PathEscape(r.PathValue("address")))
}

func (u *UI) mailbox(r *http.Request, s *session, v *view) error {
	d := mailboxView{}
	if err := u.call(r, s, "GET", mailboxPath(r, v), nil, &d.Mailbox); err != nil {
		return err
	}
	if err := u.call(r, s, "GET", v.API("/auth-policies"), nil, &d.Policies); err != nil {
		return err
	}
	v.Title = d.Mailbox.Address
	v.Data = d
	return nil
}

func (u *UI) updateMailbox(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"display_name": r.PostFormValue("display_name"), "auth_policy": r.PostFormValue("auth_policy")}
	return "Saved.", false, u.call(r, s, "PATCH", mailboxPath(r, v), req, nil)
}

// mailboxPassword sets a password the admin typed; unlike an HVE
// account's, it is never generated, so it is never shown.
func (u *UI) mailboxPassword(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	pw := r.PostFormValue("password")
	if pw == "" {
		return "", false, &apiError{Status: http.StatusBadRequest, Message: "type the new password (at least 12 characters)"}
	}
	return "Password set.", false, u.call(r, s, "PATCH", mailboxPath(r, v), map[string]any{"password": pw}, nil)
}

// convertAccount turns an HVE account into a mailbox (the confirmation
// step is the page convertPage), then shows the mailbox.
func (u *UI) convertAccount(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	var c struct {
		Mailbox        directory.Mailbox `json:"mailbox"`
		SessionsClosed int               `json:"sessions_closed"`
	}
	if err := u.call(r, s, "POST", accountPath(r, v)+"/convert-to-mailbox", nil, &c); err != nil {
		return "", false, err
	}
	u.setFlash(w, r, flash{OK: c.Mailbox.Address + " is now a mailbox; " + strconv.Itoa(c.SessionsClosed) + " open HVE session(s) ended."})
	http.Redirect(w, r, v.Link("/mailboxes/"+url.PathEscape(c.Mailbox.Address)), http.StatusSeeOther)
	return "", true, nil
}

// convertPage asks for confirmation before converting an account: the
// change cannot be undone from the admin center.
func (u *UI) convertPage(r *http.Request, s *session, v *view) error {
	var acc directory.Account
	if err := u.call(r, s, "GET", accountPath(r, v), nil, &acc); err != nil {
		return err
	}
	v.Title = "Convert " + acc.Address + " to a mailbox"
	v.Data = acc
	return nil
}

// --- groups ---

type groupsView struct {
	Groups []directory.Group
	// Candidates are the addresses that may become members (mailboxes and
	// groups), for the member picker.
	Candidates []string
}

func (u *UI) groups(r *http.Request, s *session, v *view) error {
	d := groupsView{}
	if err := u.call(r, s, "GET", v.API("/groups"), nil, &d.Groups); err != nil {
		return err
	}
	var boxes []directory.Mailbox
	if err := u.call(r, s, "GET", v.API("/mailboxes"), nil, &boxes); err != nil {
		return err
	}
	for _, m := range boxes {
		d.Candidates = append(d.Candidates, m.Address)
	}
	for _, g := range d.Groups {
		d.Candidates = append(d.Candidates, g.Address)
	}
	slices.Sort(d.Candidates)
	v.Data = d
	return nil
}

func (u *UI) createGroup(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"name": r.PostFormValue("name"), "address": r.PostFormValue("address")}
	return "Created group " + r.PostFormValue("address") + ".", false, u.call(r, s, "POST", v.API("/groups"), req, nil)
}

func (u *UI) addGroupMember(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	g := r.PathValue("address")
	m := r.PostFormValue("member")
	return m + " added to " + g + ".", false, u.call(r, s, "POST", v.API("/groups/"+url.PathEscape(g)+"/members"), map[string]any{"address": m}, nil)
}

// --- domains ---

func (u *UI) domains(r *http.Request, s *session, v *view) error {
	var list []directory.Domain
	if err := u.call(r, s, "GET", v.API("/domains"), nil, &list); err != nil {
		return err
	}
	v.Data = list
	return nil
}

func (u *UI) addDomain(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"name": r.PostFormValue("name"), "type": r.PostFormValue("type")}
	return "Added " + r.PostFormValue("name") + ".", false, u.call(r, s, "POST", v.API("/domains"), req, nil)
}

// --- routes ---

// routesView is the routes page: Available is false while this build's
// API has no routes endpoint.
type routesView struct {
	Available bool
	Routes    []directory.Route
	Domains   []directory.Domain
}

func (u *UI) routesPage(r *http.Request, s *session, v *view) error {
	path := v.API("/routes")
	d := routesView{Available: u.exists("GET", path)}
	v.Data = d
	if !d.Available {
		return nil
	}
	if err := u.call(r, s, "GET", path, nil, &d.Routes); err != nil {
		return err
	}
	if err := u.call(r, s, "GET", v.API("/domains"), nil, &d.Domains); err != nil {
		return err
	}
	v.Data = d
	return nil
}

func (u *UI) setRoute(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	domain := strings.TrimSpace(r.PostFormValue("domain"))
	req := map[string]any{"type": r.PostFormValue("type"), "target": strings.TrimSpace(r.PostFormValue("target")),
		"tls": r.PostFormValue("tls"), "auth_user": strings.TrimSpace(r.PostFormValue("auth_user"))}
	// An empty password field keeps the stored one.
	if pw := r.PostFormValue("auth_password"); pw != "" {
		req["auth_password"] = pw
	}
	if m := strings.TrimSpace(r.PostFormValue("max_connections")); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil {
			return "", false, &apiError{Status: http.StatusBadRequest, Message: "max connections must be a number"}
		}
		req["max_connections"] = n
	}
	return "Route of " + domain + " saved.", false, u.call(r, s, "PUT", v.API("/routes/"+url.PathEscape(domain)), req, nil)
}
