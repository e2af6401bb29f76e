package webui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"hve/internal/adminauth"
	"hve/internal/directory"
)

// view is what every page template gets.
type view struct {
	Title string
	// Nav is the path of the navigation entry to mark as current.
	Nav string
	// Signed-in admin, and the session's CSRF token for forms.
	Admin adminauth.Principal
	CSRF  string
	// Tenant is the tenant the page is about; Tenants those the admin may
	// switch to.
	Tenant  string
	Tenants []string
	Flash   flash
	// Data is the page's own data.
	Data any
}

// CanWrite reports whether the admin may change anything; pages leave out
// forms the role could not use (the API would refuse them anyway).
func (v *view) CanWrite() bool { return v.Admin.Role.CanWrite() }

// Global reports whether the admin is an admin of every tenant.
func (v *view) Global() bool { return v.Admin.Tenant == "" && v.Admin.Role == adminauth.GlobalAdmin }

// TracerOnly reports whether the admin may read only trace and reports.
func (v *view) TracerOnly() bool { return v.Admin.Role == adminauth.TraceReader }

// navItem is one entry of the navigation.
type navItem struct {
	Path, Label string
	// Trace: a trace-reader may use it.
	Trace bool
}

// navigation lists every page at its stable path.
var navigation = []navItem{
	{"/", "Home", false},
	{"/accounts", "HVE accounts", false},
	{"/mailboxes", "Mailboxes", false},
	{"/groups", "Groups", false},
	{"/domains", "Domains", false},
	{"/routes", "Routes", false},
	{"/settings", "Tenant settings", false},
	{"/policies", "Policies", false},
	{"/conditional-access", "Conditional Access", false},
	{"/apps", "Apps", false},
	{"/trace", "Message trace", true},
	{"/reports", "Reports", true},
	{"/webhooks", "Webhooks", false},
	{"/queue", "Queue", false},
	{"/audit", "Audit log", false},
	{"/admins", "Admins", false},
}

// NavItems returns the navigation entries the admin may use.
func (v *view) NavItems() []navItem {
	var out []navItem
	for _, n := range navigation {
		if v.TracerOnly() && !n.Trace && n.Path != "/" {
			continue
		}
		out = append(out, n)
	}
	return out
}

// Link returns path with the page's tenant as the tenant query parameter.
func (v *view) Link(path string) string {
	if v.Tenant == "" {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "tenant=" + url.QueryEscape(v.Tenant)
}

// API returns the admin API path of the page's tenant, plus rest.
func (v *view) API(rest string) string {
	return "/api/v1/tenants/" + url.PathEscape(v.Tenant) + rest
}

var funcs = template.FuncMap{
	"esc":  url.PathEscape,
	"qesc": url.QueryEscape,
	"join": func(l []string) string { return strings.Join(l, ", ") },
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02")
	},
	"has": func(l []string, s string) bool { return slices.Contains(l, s) },
	"members": func(l []directory.Member) string {
		var out []string
		for _, m := range l {
			out = append(out, m.Address)
		}
		return strings.Join(out, ", ")
	},
	"apps": func(l []directory.ClientApp) string {
		var out []string
		for _, a := range l {
			out = append(out, string(a))
		}
		if len(out) == 0 {
			return "any"
		}
		return strings.Join(out, ", ")
	},
	"cell": cell,
	// dict and list build arguments for shared templates.
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"list":   func(items ...string) []string { return items },
	"hasApp": func(l []directory.ClientApp, a string) bool { return slices.Contains(l, directory.ClientApp(a)) },
}

// cell renders one value of a generic JSON table.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, cell(e))
		}
		return strings.Join(parts, ", ")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// render writes a page.
func (u *UI) render(w http.ResponseWriter, status int, page string, v *view) {
	t, ok := u.pages[page]
	if !ok {
		http.Error(w, "no template "+page, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		u.cfg.Log.Error("rendering a page", "page", page, "err", err)
		http.Error(w, "internal error rendering the page; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail shows an unexpected error.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	u.cfg.Log.Error("admin center request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
}

// newView builds the frame of a page for a signed-in admin: the tenants
// it may see and the one the page is about (?tenant=, else the first).
func (u *UI) newView(w http.ResponseWriter, r *http.Request, s *session, title, nav string) (*view, error) {
	v := &view{Title: title, Nav: nav, Admin: s.principal, CSRF: s.CSRF, Flash: u.takeFlash(w, r)}
	var tenants []directory.Tenant
	if err := u.call(r, s, "GET", "/api/v1/tenants", nil, &tenants); err != nil {
		return nil, err
	}
	for _, t := range tenants {
		v.Tenants = append(v.Tenants, t.Name)
	}
	sort.Strings(v.Tenants)
	want := r.FormValue("tenant")
	switch {
	case want != "" && slices.Contains(v.Tenants, want):
		v.Tenant = want
	case slices.Contains(v.Tenants, directory.DefaultTenant):
		v.Tenant = directory.DefaultTenant
	case len(v.Tenants) > 0:
		v.Tenant = v.Tenants[0]
	}
	return v, nil
}

// pageFunc fills a page's view; it may return an *apiError, which the
// page shows instead of its data.
type pageFunc func(r *http.Request, s *session, v *view) error

// page registers a page: GET pattern, signed-in admins only.
func (u *UI) page(pattern, tmpl, title, nav string, fn pageFunc) {
	u.mux.HandleFunc("GET "+pattern, func(w http.ResponseWriter, r *http.Request) {
		s := u.session(r)
		if s == nil {
			if r.URL.Path == "/" {
				u.showSignIn(w, r, http.StatusOK, "", "")
				return
			}
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		v, err := u.newView(w, r, s, title, nav)
		if err != nil {
			u.fail(w, r, err)
			return
		}
		status := http.StatusOK
		if err := fn(r, s, v); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				u.fail(w, r, err)
				return
			}
			// Show the API's refusal (a reader on a page it may not
			// see, an object that is gone) in the frame.
			status = ae.Status
			v.Flash.Err = ae.Message
			u.render(w, status, "error", v)
			return
		}
		u.render(w, status, tmpl, v)
	})
}

// actionFunc carries out a form's change through the API. It returns the
// flash message to show, or renders a page itself and returns done.
type actionFunc func(w http.ResponseWriter, r *http.Request, s *session, v *view) (msg string, done bool, err error)

// action registers a state-changing form handler (POST pattern). The
// session's CSRF token must come with the form; then fn runs, and the
// browser is sent back (to the form's "back" field, else the referring
// page) with fn's message or the API's error.
func (u *UI) action(pattern string, fn actionFunc) {
	u.actions = append(u.actions, "POST "+pattern)
	u.mux.HandleFunc("POST "+pattern, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "the form could not be read", http.StatusBadRequest)
			return
		}
		s := u.session(r)
		if s == nil {
			http.Error(w, "not signed in, or the session expired; sign in again", http.StatusUnauthorized)
			return
		}
		if !checkCSRF(r, s.CSRF) {
			u.cfg.Log.Warn("admin center form without a valid CSRF token", "user", s.user.Name, "path", r.URL.Path)
			http.Error(w, "the form's security token is missing or wrong; reload the page and try again", http.StatusForbidden)
			return
		}
		v, err := u.newView(w, r, s, "", "")
		if err != nil {
			u.fail(w, r, err)
			return
		}
		msg, done, err := fn(w, r, s, v)
		if done {
			return
		}
		f := flash{OK: msg}
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				u.fail(w, r, err)
				return
			}
			f = flash{Err: ae.Message}
		}
		u.setFlash(w, r, f)
		http.Redirect(w, r, back(r, v), http.StatusSeeOther)
	})
}

// back is where an action returns to: the form's back field (a local
// path only), else the page's tenant home.
func back(r *http.Request, v *view) string {
	b := r.PostFormValue("back")
	if !strings.HasPrefix(b, "/") || strings.HasPrefix(b, "//") || strings.HasPrefix(b, "/\\") {
		b = "/"
	}
	if v.Tenant != "" && !strings.Contains(b, "tenant=") {
		b = v.Link(b)
	}
	return b
}

// form helpers

// lines splits a textarea or comma-separated field into trimmed, non-empty
// items.
func lines(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == '\n' || c == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
