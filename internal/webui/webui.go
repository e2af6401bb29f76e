// Package webui is the web admin center: server-rendered HTML pages
// (html/template, plain forms, one small stylesheet, no script needed) on
// the admin listener, next to the admin API.
//
// Admin users sign in here with name, password and (if they have one) a
// TOTP code; the session lives in a cookie (HttpOnly, SameSite=Lax, Secure
// over TLS) and every form that changes something carries the session's
// CSRF token. Pages read and change everything through the admin API's own
// handlers, called in-process as the signed-in admin (admin.WithPrincipal),
// so the role rule, tenant isolation and the audit log are exactly the
// API's.
package webui

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"hve/internal/admin"
	"hve/internal/adminauth"
	"hve/internal/adminauth/throttle"
	"hve/internal/client"
	"hve/internal/password"
	"hve/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the admin center.
type Config struct {
	// API is the admin API the pages call; requests under /api/, /oauth2/,
	// /.well-known/ and /healthz are handed to it as they are.
	API http.Handler
	// Store keeps admin users and sessions.
	Store store.Admins
	// Counters count failed sign-ins (the throttle), shared by every node
	// of the store; usually the same store.
	Counters store.Counters
	Log      *slog.Logger
	// SecureCookies marks cookies Secure even on plain HTTP requests: set
	// it when a TLS proxy serves the admin center (public URL https://).
	// Requests that arrive over TLS always get Secure cookies.
	SecureCookies bool
	// SessionLifetime [8h] is how long a session lasts at most;
	// IdleTimeout [1h] ends one that was not used for that long.
	SessionLifetime, IdleTimeout time.Duration
	// Now is the clock (tests set it).
	Now func() time.Time
}

// UI serves the admin center.
type UI struct {
	cfg      Config
	mux      *http.ServeMux
	pages    map[string]*template.Template
	throttle *throttle.Throttle
	// dummyHash is verified when a sign-in names no user, so that an
	// unknown name takes as long as a wrong password.
	dummyHash string
	// actions lists the state-changing UI routes ("POST /path"), for the
	// CSRF tests.
	actions []string
}

// Cookie names.
const (
	sessionCookie = "hve_session"
	loginCookie   = "hve_login"
	flashCookie   = "hve_flash"
)

// New returns the admin center.
func New(cfg Config) (*UI, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionLifetime == 0 {
		cfg.SessionLifetime = 8 * time.Hour
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.Counters == nil {
		return nil, errors.New("webui: Config.Counters is required: the sign-in throttle counts in the store")
	}
	u := &UI{cfg: cfg, mux: http.NewServeMux(), throttle: throttle.New(cfg.Counters)}
	u.throttle.Now = cfg.Now
	var err error
	if u.dummyHash, err = password.Hash("no such admin user"); err != nil {
		return nil, err
	}
	if u.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	u.routes()
	return u, nil
}

// parseTemplates makes one template set per page: the layout with the
// page's own file, which defines "content".
func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("parsing the layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// ServeHTTP hands API, OAuth and health requests to the API and serves
// the rest as pages.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/oauth2/") || strings.HasPrefix(p, "/.well-known/") || p == "/healthz" {
		u.cfg.API.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	// Pages load nothing from elsewhere, run no script, and are never
	// framed (clickjacking).
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

// Actions lists the state-changing routes of the admin center ("POST
// /path" patterns); each refuses a request without the session's CSRF
// token.
func (u *UI) Actions() []string { return append([]string(nil), u.actions...) }

// --- sessions ---

// session is a signed-in admin.
type session struct {
	adminauth.Session
	user      adminauth.User
	principal adminauth.Principal
}

func (u *UI) secure(r *http.Request) bool { return u.cfg.SecureCookies || r.TLS != nil }

func (u *UI) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: u.secure(r), SameSite: http.SameSiteLaxMode})
}

// session returns the request's valid session, or nil.
func (u *UI) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	hash := adminauth.HashToken(c.Value)
	s, user, err := u.cfg.Store.AdminSession(r.Context(), hash)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			u.cfg.Log.Error("reading an admin session", "err", err)
		}
		return nil
	}
	now := u.cfg.Now()
	if !now.Before(s.ExpiresAt) || now.Sub(s.LastSeen) >= u.cfg.IdleTimeout || !user.Enabled {
		u.cfg.Store.RemoveAdminSession(r.Context(), hash)
		return nil
	}
	// Record use at most once a minute: a write per page view would be
	// wasted.
	if now.Sub(s.LastSeen) > time.Minute {
		if err := u.cfg.Store.TouchAdminSession(r.Context(), hash, now); err != nil {
			u.cfg.Log.Warn("recording admin session use", "err", err)
		}
	}
	return &session{Session: s, user: user, principal: adminauth.PrincipalOf(user, "ui")}
}

// checkCSRF compares the form's csrf field with the session's token.
func checkCSRF(r *http.Request, want string) bool {
	got := r.PostFormValue("csrf")
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// --- calling the API ---

// apiError is an error reply of the admin API.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// call sends a request to the admin API as the signed-in admin and
// decodes a JSON reply into out (if not nil). A raw *[]byte out receives
// the body unparsed. A list the API pages (a GET whose reply has a Link
// rel="next" header) is read whole: the pages render whole lists.
func (u *UI) call(r *http.Request, s *session, method, path string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	rec, err := u.send(r, s, method, path, b)
	if err != nil {
		return err
	}
	data := rec.body.Bytes()
	if next := client.NextLink(rec.header); method == http.MethodGet && next != "" {
		cur := path
		data, err = client.AllPages(data, next, func(link string) ([]byte, string, error) {
			base, err := url.Parse(cur)
			if err != nil {
				return nil, "", err
			}
			target, err := base.Parse(link)
			if err != nil || target.Scheme != "" || target.Host != "" {
				return nil, "", fmt.Errorf("admin API request %s %s: the next page's link %q is not a path of the API", method, path, link)
			}
			cur = target.String()
			rec, err := u.send(r, s, http.MethodGet, cur, nil)
			if err != nil {
				return nil, "", err
			}
			return rec.body.Bytes(), client.NextLink(rec.header), nil
		})
		if err != nil {
			return err
		}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = data
		return nil
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding the reply of %s %s: %w", method, path, err)
		}
		return nil
	}
}

// send makes one in-process request of call and returns a successful
// reply; an error reply is *apiError.
func (u *UI) send(r *http.Request, s *session, method, path string, body []byte) (*recorder, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	ctx := admin.WithPrincipal(context.WithoutCancel(r.Context()), s.principal)
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, fmt.Errorf("admin API request %s %s: %w", method, path, err)
	}
	req.RemoteAddr = r.RemoteAddr
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	u.cfg.API.ServeHTTP(rec, req)
	if rec.status >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(rec.body.Bytes(), &e) == nil && e.Error.Message != "" {
			return nil, &apiError{Status: rec.status, Code: e.Error.Code, Message: e.Error.Message}
		}
		return nil, &apiError{Status: rec.status, Code: "http", Message: strings.TrimSpace(rec.body.String())}
	}
	return rec, nil
}

// recorder keeps an in-process API reply.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

// Header, WriteHeader and Write implement http.ResponseWriter.
func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if !r.wrote {
		r.status, r.wrote = s, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// exists reports whether the API has a route for method and path (the
// pages of parts that may not be built yet check with it).
func (u *UI) exists(method, path string) bool {
	mux, ok := u.cfg.API.(interface {
		Handler(*http.Request) (http.Handler, string)
	})
	if !ok {
		return true
	}
	req, err := http.NewRequest(method, path, nil)
	if err != nil {
		return false
	}
	_, pattern := mux.Handler(req)
	return strings.HasPrefix(pattern, method+" ")
}

// --- flash messages ---

// flash is a message shown once on the next page: what an action did, or
// why it failed.
type flash struct {
	OK  string `json:"ok,omitempty"`
	Err string `json:"err,omitempty"`
}

func (u *UI) setFlash(w http.ResponseWriter, r *http.Request, f flash) {
	b, _ := json.Marshal(f)
	u.setCookie(w, r, flashCookie, url.QueryEscape(string(b)), 60)
}

func (u *UI) takeFlash(w http.ResponseWriter, r *http.Request) flash {
	var f flash
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return f
	}
	u.setCookie(w, r, flashCookie, "", -1)
	if v, err := url.QueryUnescape(c.Value); err == nil {
		json.Unmarshal([]byte(v), &f)
	}
	return f
}
