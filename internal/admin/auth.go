package admin

// Who calls the admin API, what their role lets them call, and the audit
// log of what they change. Every route registered with h() or t() in
// routes() goes through guard: routes added later are covered without a
// list to keep up to date.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/directory"
	"hve/internal/store"
)

type ctxKey int

const (
	principalKey ctxKey = iota
	changeKey
)

// WithPrincipal returns a context in which requests to the API act as p
// without a bearer token. Only code in the same process can make one: the
// web admin center, which signs its users in itself and then calls the
// API's handlers, so that the role check and the audit log are the same
// for the UI as for the API.
func WithPrincipal(ctx context.Context, p adminauth.Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// PrincipalFrom returns the principal of a request that passed the API's
// authentication.
func PrincipalFrom(ctx context.Context) (adminauth.Principal, bool) {
	p, ok := ctx.Value(principalKey).(adminauth.Principal)
	return p, ok
}

// errUnauthorized is a bearer token that is missing, unknown or expired.
type errUnauthorized string

func (e errUnauthorized) Error() string { return string(e) }

// principal finds who makes the request: a principal put in the context by
// WithPrincipal, the bootstrap token of <data>/admin.token, or an admin
// user's API token.
func (a *API) principal(r *http.Request) (adminauth.Principal, error) {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p, nil
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return adminauth.Principal{}, errUnauthorized("missing bearer token; the CLI reads <data>/admin.token, or make a token with hve admin token create")
	}
	via := "api"
	if strings.HasPrefix(r.Header.Get("User-Agent"), "hve-cli") {
		via = "cli"
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], a.tokenHash[:]) == 1 {
		return adminauth.Principal{Name: adminauth.BootstrapName, Role: adminauth.GlobalAdmin, Via: via}, nil
	}
	k, u, err := a.store.AdminTokenByHash(r.Context(), adminauth.HashToken(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return adminauth.Principal{}, errUnauthorized("wrong bearer token; the admin token is in <data>/admin.token")
	case err != nil:
		return adminauth.Principal{}, fmt.Errorf("looking up the bearer token: %w", err)
	case k.Expired(time.Now()):
		return adminauth.Principal{}, errUnauthorized(fmt.Sprintf("bearer token %s... expired at %s; make a new one with hve admin token create", k.Hint, k.ExpiresAt.Format(time.RFC3339)))
	case !u.Enabled:
		return adminauth.Principal{}, errUnauthorized(fmt.Sprintf("admin user %s is disabled", u.Name))
	}
	return adminauth.PrincipalOf(u, via), nil
}

// guard authenticates the request, applies the role rule
// (adminauth.Authorize), records changes in the audit log, and turns a
// handler's error into a JSON error reply.
func (a *API) guard(fn apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.principal(r)
		if err != nil {
			var ue errUnauthorized
			if errors.As(err, &ue) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hve"`)
				writeError(w, http.StatusUnauthorized, "unauthorized", ue.Error())
				return
			}
			a.fail(w, r, err)
			return
		}
		tenant := r.PathValue("tenant")
		switch adminauth.Authorize(p, r.Pattern, tenant) {
		case adminauth.Hidden:
			// The same reply as for a tenant that does not exist.
			a.fail(w, r, fmt.Errorf("tenant %q: %w", tenant, store.ErrNotFound))
			return
		case adminauth.Forbidden:
			a.log.Warn("admin request refused by role", "actor", p.Name, "role", p.Role, "tenant_scope", p.Tenant, "method", r.Method, "path", r.URL.Path)
			writeError(w, http.StatusForbidden, "forbidden", forbiddenMessage(p, r))
			return
		}
		r = r.WithContext(WithPrincipal(r.Context(), p))
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if err := fn(w, r); err != nil {
				a.fail(w, r, err)
			}
			return
		}
		a.audited(w, r, p, fn)
	})
}

func forbiddenMessage(p adminauth.Principal, r *http.Request) string {
	scope := "every tenant"
	if p.Tenant != "" {
		scope = "tenant " + p.Tenant
	}
	switch {
	case !p.Role.CanWrite() && r.Method != http.MethodGet && r.Method != http.MethodHead:
		return fmt.Sprintf("%s has role %s, which may not change anything", p.Name, p.Role)
	case p.Role == adminauth.TraceReader:
		return fmt.Sprintf("%s has role trace-reader, which may read only message trace and reports", p.Name)
	default:
		return fmt.Sprintf("%s is an admin of %s only; %s %s needs a global admin", p.Name, scope, r.Method, r.URL.Path)
	}
}

// visibleTenants keeps the tenants the request's principal may see.
func visibleTenants(r *http.Request, list []directory.Tenant) []directory.Tenant {
	p, ok := PrincipalFrom(r.Context())
	if !ok || p.Tenant == "" {
		return list
	}
	var out []directory.Tenant
	for _, t := range list {
		if t.Name == p.Tenant {
			out = append(out, t)
		}
	}
	return out
}

// change is what a handler says about the change it made (through
// a.audit), for the audit entry.
type change struct {
	tenant         directory.Tenant
	action, object string
	noted          bool
}

// noteChange records the action and object of the request's change, if
// the request is being audited.
func noteChange(r *http.Request, t directory.Tenant, action, object string) {
	if c, ok := r.Context().Value(changeKey).(*change); ok {
		c.tenant, c.action, c.object, c.noted = t, action, object, true
	}
}

// Limits of what an audit entry keeps of a body.
const (
	maxAuditBody = 1 << 20
	maxSnapshot  = 256 << 10
)

// audited runs a handler that changes something and records the change:
// who, when, the request (secrets redacted) and the object before and
// after. The object is what a GET of the resource shows: the request's own
// path, or the nearest enclosing item path that has a GET route (POST
// .../accounts/x/revoke-sessions snapshots GET .../accounts/x). A POST to
// a collection (POST .../accounts) has no before; its reply is the after.
func (a *API) audited(w http.ResponseWriter, r *http.Request, p adminauth.Principal, fn apiHandler) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAuditBody+1))
	if err != nil {
		a.fail(w, r, badRequest("reading request body: %v", err))
		return
	}
	// The handler reads the whole body: what was read, then the rest (a
	// body over the limit is the handler's to refuse).
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	c := &change{}
	r = r.WithContext(context.WithValue(r.Context(), changeKey, c))

	snap, item := a.snapshotPath(r)
	collectionPost := r.Method == http.MethodPost && snap == r.URL.EscapedPath() && !item
	var before []byte
	if snap != "" && !collectionPost {
		before = a.snapshot(r.Context(), snap)
	}
	cw := &captureWriter{ResponseWriter: w, status: http.StatusOK}
	if err := fn(cw, r); err != nil {
		a.fail(cw, r, err)
	}
	if cw.status >= 400 {
		return
	}
	var after []byte
	if snap != "" && !collectionPost {
		after = a.snapshot(r.Context(), snap)
	} else if cw.json {
		after = cw.body.Bytes()
	}

	e := audit.Entry{
		Time: time.Now().UTC(), Actor: p.Name, Role: string(p.Role), Via: p.Via,
		Method: r.Method, Path: r.URL.Path, Status: cw.status, RemoteAddr: r.RemoteAddr,
		Request: audit.Redact(body), Before: audit.Redact(before), After: audit.Redact(after),
	}
	if len(body) > maxAuditBody {
		e.Request = json.RawMessage(`"[request body too large, not recorded]"`)
	}
	if c.noted {
		e.TenantID, e.Tenant, e.Action, e.Object = c.tenant.ID, c.tenant.Name, c.action, c.object
	} else {
		e.Action = r.Pattern
		if name := r.PathValue("tenant"); name != "" {
			if t, err := a.store.TenantByName(r.Context(), name); err == nil {
				e.TenantID, e.Tenant = t.ID, t.Name
			}
		}
	}
	// The change is made: record it even if the client went away.
	if _, err := a.store.AddAudit(context.WithoutCancel(r.Context()), e); err != nil {
		a.log.Error("could not record an admin change in the audit log", "actor", p.Name, "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

// snapshotPath returns the (escaped) path whose GET shows the object the
// request changes, and whether that GET is of an item (its route ends in
// a wildcard) rather than a collection; "" when there is none.
func (a *API) snapshotPath(r *http.Request) (string, bool) {
	segs := strings.Split(r.URL.EscapedPath(), "/")
	for i := len(segs); i > 2; i-- {
		path := strings.Join(segs[:i], "/")
		pattern := a.getPattern(path)
		if pattern == "" {
			continue
		}
		item := strings.HasSuffix(pattern, "}")
		if i == len(segs) || item {
			return path, item
		}
		// A collection encloses the path: the object has no GET of its
		// own, and the collection is not the object.
		return "", false
	}
	return "", false
}

// getPattern returns the GET route that serves path, or "".
func (a *API) getPattern(path string) string {
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return ""
	}
	_, pattern := a.mux.Handler(req)
	if !slices.Contains(a.patterns, pattern) {
		return ""
	}
	return pattern
}

// snapshot returns the JSON reply of an internal GET of path, or nil when
// there is none (the object does not exist, or the reply is not JSON).
func (a *API) snapshot(ctx context.Context, path string) []byte {
	req, err := http.NewRequestWithContext(WithPrincipal(context.WithoutCancel(ctx), systemPrincipal), http.MethodGet, path, nil)
	if err != nil {
		return nil
	}
	rec := &captureWriter{ResponseWriter: discardWriter{header: http.Header{}}, status: http.StatusOK}
	a.mux.ServeHTTP(rec, req)
	if rec.status != http.StatusOK || !rec.json || rec.truncated {
		return nil
	}
	return rec.body.Bytes()
}

// systemPrincipal reads snapshots for the audit log; it never changes
// anything, so it never appears in the log.
var systemPrincipal = adminauth.Principal{Name: "audit-snapshot", Role: adminauth.GlobalAdmin, Via: "internal"}

// captureWriter passes a reply through and keeps its status and (JSON)
// body for the audit log.
type captureWriter struct {
	http.ResponseWriter
	status    int
	wrote     bool
	json      bool
	body      bytes.Buffer
	truncated bool
}

func (c *captureWriter) WriteHeader(status int) {
	if !c.wrote {
		c.wrote, c.status = true, status
		c.json = strings.HasPrefix(c.Header().Get("Content-Type"), "application/json")
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.json && !c.truncated {
		if c.body.Len()+len(b) > maxSnapshot {
			c.truncated = true
		} else {
			c.body.Write(b)
		}
	}
	return c.ResponseWriter.Write(b)
}

// discardWriter is a ResponseWriter that keeps nothing (the captureWriter
// around it keeps what matters).
type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// Handler returns the handler and route pattern the API uses for r, as
// http.ServeMux.Handler does; the web admin center asks it which endpoints
// this build has.
func (a *API) Handler(r *http.Request) (http.Handler, string) { return a.mux.Handler(r) }
