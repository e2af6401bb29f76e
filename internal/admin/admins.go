package admin

// The endpoints of the admin center issue: admin users and their API
// tokens, the caller's own profile and tokens, the audit log, the item
// GETs that the web pages (and the audit log's before/after snapshots)
// need, the Conditional Access "what if" evaluator and the tenant health
// summary of the home page.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"hve/internal/access"
	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/store"
	"hve/internal/trace"
)

// adminRoutes registers the endpoints of this file with the helpers of
// routes().
func (a *API) adminRoutes(h func(string, apiHandler), t func(string, tenantHandler)) {
	h("GET /api/v1/me", a.showMe)
	h("GET /api/v1/me/tokens", a.myTokens)
	h("POST /api/v1/me/tokens", a.createMyToken)
	h("DELETE /api/v1/me/tokens/{id}", a.removeMyToken)

	h("GET /api/v1/admin-users", a.listAdminUsers)
	h("POST /api/v1/admin-users", a.createAdminUser)
	h("GET /api/v1/admin-users/{name}", a.showAdminUser)
	h("PATCH /api/v1/admin-users/{name}", a.updateAdminUser)
	h("DELETE /api/v1/admin-users/{name}", a.removeAdminUser)
	h("GET /api/v1/admin-users/{name}/tokens", a.listAdminTokens)
	h("POST /api/v1/admin-users/{name}/tokens", a.createAdminToken)
	h("DELETE /api/v1/admin-users/{name}/tokens/{id}", a.removeAdminToken)

	h("GET /api/v1/audit", a.searchAudit)
	const base = "/api/v1/tenants/{tenant}"
	t("GET "+base+"/audit", a.searchTenantAudit)

	t("GET "+base+"/health", a.tenantHealth)
	t("GET "+base+"/domains/{name}", a.showDomain)
	t("GET "+base+"/groups/{address}", a.showGroup)
	t("GET "+base+"/auth-policies/{name}", a.showAuthPolicy)
	t("GET "+base+"/security-groups/{name}", a.showSecurityGroup)
	t("GET "+base+"/ca-policies/{name}", a.showCAPolicy)
	t("GET "+base+"/ca-what-if", a.caWhatIf)
	t("GET "+base+"/apps/{app}", a.showApp)
}

// --- the caller ---

// me is the reply of GET /api/v1/me.
type me struct {
	adminauth.Principal
	// User is the admin user; absent for the bootstrap token.
	User *adminauth.User `json:"user,omitempty"`
}

func (a *API) showMe(w http.ResponseWriter, r *http.Request) error {
	p, _ := PrincipalFrom(r.Context())
	reply := me{Principal: p}
	if p.UserID != 0 {
		u, err := a.store.AdminUser(r.Context(), p.UserID)
		if err != nil {
			return err
		}
		reply.User = &u
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// self returns the caller's admin user; the bootstrap token has none.
func (a *API) self(r *http.Request) (adminauth.User, error) {
	p, _ := PrincipalFrom(r.Context())
	if p.UserID == 0 {
		return adminauth.User{}, badRequest("%s is not an admin user and has no tokens of its own; use /api/v1/admin-users/{name}/tokens (hve admin token create --user NAME)", p.Name)
	}
	return a.store.AdminUser(r.Context(), p.UserID)
}

func (a *API) myTokens(w http.ResponseWriter, r *http.Request) error {
	u, err := a.self(r)
	if err != nil {
		return err
	}
	return a.writeTokens(w, r, u)
}

func (a *API) createMyToken(w http.ResponseWriter, r *http.Request) error {
	u, err := a.self(r)
	if err != nil {
		return err
	}
	return a.newToken(w, r, u)
}

func (a *API) removeMyToken(w http.ResponseWriter, r *http.Request) error {
	u, err := a.self(r)
	if err != nil {
		return err
	}
	return a.dropToken(w, r, u)
}

// --- admin users ---

// adminUserNameOK checks an admin user's name: it appears in paths and in
// the audit log as the actor.
func adminUserNameOK(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return badRequest("name is required")
	case len(name) > 100 || strings.ContainsFunc(name, func(c rune) bool { return c <= ' ' || c == '/' || c == '%' }):
		return badRequest("name %q must be at most 100 characters, without spaces, slashes or %%", name)
	case strings.EqualFold(name, adminauth.BootstrapName):
		return badRequest("name %q is reserved for the token in <data>/admin.token", name)
	}
	return nil
}

// userCreated is the reply to creating an admin user (or switching on its
// second factor): the user, and the TOTP key shown this once.
type userCreated struct {
	adminauth.User
	// TOTPKey is the base32 key to type into an authenticator app, and
	// TOTPURI the otpauth:// URI to scan; both only when TOTP was switched
	// on by this request.
	TOTPKey string `json:"totp_key,omitempty"`
	TOTPURI string `json:"totp_uri,omitempty"`
}

// scope resolves the tenant a role is scoped to: required for
// tenant-admin, optional for readers, none for a global admin.
func (a *API) scope(ctx context.Context, role adminauth.Role, tenant string) (directory.Tenant, error) {
	switch {
	case role == adminauth.GlobalAdmin && tenant != "":
		return directory.Tenant{}, badRequest("a global-admin has every tenant; leave tenant empty or choose role tenant-admin")
	case role == adminauth.TenantAdmin && tenant == "":
		return directory.Tenant{}, badRequest("a tenant-admin needs a tenant")
	case tenant == "":
		return directory.Tenant{}, nil
	}
	t, err := a.store.TenantByName(ctx, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return t, badRequest("tenant %q does not exist", tenant)
	}
	return t, err
}

func (a *API) setTOTP(u *adminauth.User, on bool) (userCreated, error) {
	reply := userCreated{}
	if !on {
		u.TOTPSecret, u.TOTPLastStep = nil, 0
		return reply, nil
	}
	key, err := adminauth.NewTOTPSecret()
	if err != nil {
		return reply, err
	}
	u.TOTPSecret, u.TOTPLastStep = key, 0
	reply.TOTPKey, reply.TOTPURI = adminauth.TOTPBase32(key), adminauth.TOTPURI("hve", u.Name, key)
	return reply, nil
}

func (a *API) listAdminUsers(w http.ResponseWriter, r *http.Request) error {
	list, err := a.store.AdminUsers(r.Context())
	if err != nil {
		return err
	}
	// Names are unique regardless of case and the list is in their
	// case-insensitive order, which need not be the names' byte order:
	// writePage then pages by the position of the name.
	return writePage(w, r, list, func(u adminauth.User) string { return u.Name })
}

func (a *API) createAdminUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Tenant   string `json:"tenant"`
		Password string `json:"password"`
		TOTP     bool   `json:"totp"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := adminUserNameOK(req.Name); err != nil {
		return err
	}
	role, err := adminauth.ParseRole(req.Role)
	if err != nil {
		return badRequest("%v", err)
	}
	tn, err := a.scope(r.Context(), role, req.Tenant)
	if err != nil {
		return err
	}
	if len(req.Password) < 12 {
		return badRequest("an admin user's password must have at least 12 characters")
	}
	u := adminauth.User{Name: req.Name, Role: role, TenantID: tn.ID, Enabled: true}
	if u.PasswordHash, err = password.Hash(req.Password); err != nil {
		return err
	}
	reply, err := a.setTOTP(&u, req.TOTP)
	if err != nil {
		return err
	}
	if reply.User, err = a.store.CreateAdminUser(r.Context(), u); err != nil {
		return err
	}
	a.audit(r, tn, "admin-user.create", u.Name)
	writeJSON(w, http.StatusCreated, reply)
	return nil
}

func (a *API) adminUser(r *http.Request) (adminauth.User, error) {
	name := r.PathValue("name")
	u, err := a.store.AdminUserByName(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return u, notFound("admin user %q does not exist; hve admin list shows them", name)
	}
	return u, err
}

func (a *API) showAdminUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.adminUser(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (a *API) updateAdminUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Role     *string `json:"role"`
		Tenant   *string `json:"tenant"`
		Password *string `json:"password"`
		Enabled  *bool   `json:"enabled"`
		TOTP     *bool   `json:"totp"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	u, err := a.adminUser(r)
	if err != nil {
		return err
	}
	endSessions := false
	if req.Role != nil {
		if u.Role, err = adminauth.ParseRole(*req.Role); err != nil {
			return badRequest("%v", err)
		}
		endSessions = true
	}
	tenant := u.Tenant
	if req.Tenant != nil {
		tenant = *req.Tenant
		endSessions = true
	}
	if u.Role == adminauth.GlobalAdmin && req.Tenant == nil {
		tenant = ""
	}
	tn, err := a.scope(r.Context(), u.Role, tenant)
	if err != nil {
		return err
	}
	u.TenantID = tn.ID
	if req.Password != nil {
		if len(*req.Password) < 12 {
			return badRequest("an admin user's password must have at least 12 characters")
		}
		if u.PasswordHash, err = password.Hash(*req.Password); err != nil {
			return err
		}
		endSessions = true
	}
	if req.Enabled != nil {
		u.Enabled = *req.Enabled
		endSessions = endSessions || !u.Enabled
	}
	var reply userCreated
	if req.TOTP != nil {
		if reply, err = a.setTOTP(&u, *req.TOTP); err != nil {
			return err
		}
	}
	if reply.User, err = a.store.UpdateAdminUser(r.Context(), u); err != nil {
		return err
	}
	// Sessions carry the role and password they signed in with: after a
	// change, they sign in again.
	if endSessions {
		if err := a.store.RemoveAdminSessions(r.Context(), u.ID); err != nil {
			return err
		}
	}
	a.audit(r, tn, "admin-user.update", u.Name)
	writeJSON(w, http.StatusOK, reply)
	return nil
}

func (a *API) removeAdminUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.adminUser(r)
	if err != nil {
		return err
	}
	if p, _ := PrincipalFrom(r.Context()); p.UserID == u.ID {
		return badRequest("you cannot remove yourself; another global admin (or the admin token) can")
	}
	if err := a.store.RemoveAdminUser(r.Context(), u.ID); err != nil {
		return err
	}
	a.audit(r, directory.Tenant{ID: u.TenantID, Name: u.Tenant}, "admin-user.remove", u.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- API tokens ---

// tokenCreated is a new API token, with its value shown this once.
type tokenCreated struct {
	adminauth.Token
	User string `json:"user"`
	// Secret is the token itself, for the Authorization: Bearer header.
	Secret string `json:"token"`
}

func (a *API) listAdminTokens(w http.ResponseWriter, r *http.Request) error {
	u, err := a.adminUser(r)
	if err != nil {
		return err
	}
	return a.writeTokens(w, r, u)
}

func (a *API) createAdminToken(w http.ResponseWriter, r *http.Request) error {
	u, err := a.adminUser(r)
	if err != nil {
		return err
	}
	return a.newToken(w, r, u)
}

func (a *API) removeAdminToken(w http.ResponseWriter, r *http.Request) error {
	u, err := a.adminUser(r)
	if err != nil {
		return err
	}
	return a.dropToken(w, r, u)
}

func (a *API) writeTokens(w http.ResponseWriter, r *http.Request, u adminauth.User) error {
	list, err := a.store.AdminTokens(r.Context(), u.ID)
	if err != nil {
		return err
	}
	return writePage(w, r, list, func(k adminauth.Token) string { return idKey(k.ID) })
}

func (a *API) newToken(w http.ResponseWriter, r *http.Request, u adminauth.User) error {
	var req struct {
		Name    string `json:"name"`
		Expires string `json:"expires"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	k := adminauth.Token{UserID: u.ID, Name: strings.TrimSpace(req.Name), CreatedAt: time.Now().UTC()}
	if k.Name == "" {
		k.Name = "token"
	}
	if req.Expires != "" {
		at, err := ParseExpiry(req.Expires, k.CreatedAt)
		if err != nil {
			return badRequest("expires: %v", err)
		}
		k.ExpiresAt = at
	}
	token, hash, hint, err := adminauth.NewToken()
	if err != nil {
		return err
	}
	k.Hash, k.Hint = hash, hint
	if k, err = a.store.AddAdminToken(r.Context(), k); err != nil {
		return err
	}
	a.audit(r, directory.Tenant{ID: u.TenantID, Name: u.Tenant}, "admin-token.create", fmt.Sprintf("%s token %d (%s...)", u.Name, k.ID, k.Hint))
	writeJSON(w, http.StatusCreated, tokenCreated{Token: k, User: u.Name, Secret: token})
	return nil
}

func (a *API) dropToken(w http.ResponseWriter, r *http.Request, u adminauth.User) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return badRequest("token id must be a number; hve admin token list shows the ids")
	}
	if err := a.store.RemoveAdminToken(r.Context(), u.ID, id); err != nil {
		return err
	}
	a.audit(r, directory.Tenant{ID: u.TenantID, Name: u.Tenant}, "admin-token.remove", fmt.Sprintf("%s token %d", u.Name, id))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- audit log ---

// auditPage is one page of audit entries, newest first. NextCursor, when
// not empty, fetches the next (older) page as ?cursor=.
type auditPage struct {
	Items      []audit.Entry `json:"items"`
	NextCursor string        `json:"next_cursor"`
}

func (a *API) searchAudit(w http.ResponseWriter, r *http.Request) error {
	q, err := auditQuery(r)
	if err != nil {
		return err
	}
	if name := r.URL.Query().Get("tenant"); name != "" {
		t, err := a.store.TenantByName(r.Context(), name)
		if err != nil {
			return err
		}
		q.TenantID = t.ID
	}
	return a.writeAudit(w, r, q)
}

func (a *API) searchTenantAudit(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	q, err := auditQuery(r)
	if err != nil {
		return err
	}
	q.TenantID = t.ID
	return a.writeAudit(w, r, q)
}

// auditQuery reads the filters and the cursor of an audit search.
func auditQuery(r *http.Request) (audit.Query, error) {
	p := r.URL.Query()
	q := audit.Query{Actor: p.Get("actor")}
	now := time.Now()
	var err error
	if q.Since, err = trace.ParseTime(p.Get("since"), now); err != nil {
		return q, badRequest("since: %v", err)
	}
	if q.Until, err = trace.ParseTime(p.Get("until"), now); err != nil {
		return q, badRequest("until: %v", err)
	}
	if v := p.Get("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > audit.MaxLimit {
			return q, badRequest("limit must be a number from 1 to %d", audit.MaxLimit)
		}
	}
	if v := p.Get("cursor"); v != "" {
		if q.BeforeID, err = strconv.ParseInt(v, 10, 64); err != nil || q.BeforeID < 1 {
			return q, badRequest("cursor %q is not one this API gave out", v)
		}
	}
	return q, nil
}

func (a *API) writeAudit(w http.ResponseWriter, r *http.Request, q audit.Query) error {
	limit := q.Limit
	if limit == 0 {
		limit = audit.DefaultLimit
	}
	q.Limit = limit
	list, err := a.store.SearchAudit(r.Context(), q)
	if err != nil {
		return err
	}
	page := auditPage{Items: nonNil(list)}
	if len(list) == limit {
		page.NextCursor = strconv.FormatInt(list[len(list)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// --- items ---

func (a *API) showDomain(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	name, err := directory.NormalizeDomain(r.PathValue("name"))
	if err != nil {
		return badRequest("%v", err)
	}
	list, err := a.store.Domains(r.Context(), t.ID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(list, func(d directory.Domain) bool { return d.Name == name })
	if i < 0 {
		return notFound("%s is not an accepted domain of tenant %s", name, t.Name)
	}
	writeJSON(w, http.StatusOK, list[i])
	return nil
}

func (a *API) showGroup(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	e, err := a.entry(r.Context(), t, r.PathValue("address"), directory.KindGroup)
	if err != nil {
		return err
	}
	g, err := a.store.Group(r.Context(), t.ID, e.ID)
	if err != nil {
		return err
	}
	g.Members = nonNil(g.Members)
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (a *API) showAuthPolicy(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	p, err := a.authPolicy(r, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (a *API) showSecurityGroup(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	g, err := a.securityGroup(r.Context(), t, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (a *API) showCAPolicy(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	p, err := a.caPolicy(r, t)
	if err != nil {
		return err
	}
	caNonNil(&p)
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (a *API) showApp(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	app, err := a.app(r, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, app)
	return nil
}

// whatIf is the reply of the Conditional Access "what if" evaluator.
type whatIf struct {
	User      string              `json:"user"`
	Groups    []string            `json:"groups"`
	ClientApp directory.ClientApp `json:"client_app"`
	IP        string              `json:"ip"`
	// Blocked: a policy that is on blocks the sign-in.
	Blocked bool `json:"blocked"`
	// BlockedBy names the policies that are on and block it; WouldBlock
	// the report-only ones that would.
	BlockedBy  []string           `json:"blocked_by"`
	WouldBlock []string           `json:"would_block"`
	Verdicts   []access.CAVerdict `json:"verdicts"`
}

func (a *API) caWhatIf(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	q := r.URL.Query()
	reply := whatIf{ClientApp: directory.ClientApp(strings.ToLower(q.Get("client_app"))), BlockedBy: []string{}, WouldBlock: []string{}}
	switch reply.ClientApp {
	case "":
		reply.ClientApp = directory.Legacy
	case directory.Legacy, directory.Modern:
	default:
		return badRequest("client_app %q is not one of legacy (basic auth), modern (OAuth)", reply.ClientApp)
	}
	addr, err := directory.NormalizeAddress(q.Get("user"))
	if err != nil {
		return badRequest("user: %v", err)
	}
	e, err := a.store.Lookup(r.Context(), addr)
	if err != nil || e.TenantID != t.ID || (e.Kind != directory.KindAccount && e.Kind != directory.KindMailbox) {
		return notFound("no HVE account or mailbox with address %s in tenant %s", addr, t.Name)
	}
	reply.User = e.Address
	var ip netip.Addr
	if v := strings.TrimSpace(q.Get("ip")); v != "" {
		if ip, err = netip.ParseAddr(v); err != nil {
			return badRequest("ip %q is not an IP address", v)
		}
		ip = ip.Unmap()
		reply.IP = ip.String()
	}
	if reply.Groups, err = a.store.SecurityGroupsOf(r.Context(), t.ID, e.Kind, e.ID); err != nil {
		return err
	}
	reply.Groups = nonNil(reply.Groups)
	policies, err := a.store.CAPolicies(r.Context(), t.ID)
	if err != nil {
		return err
	}
	reply.Verdicts = access.EvaluateCA(policies, access.Subject{Address: e.Address, Groups: reply.Groups, ClientApp: reply.ClientApp, ClientIP: ip})
	for _, v := range reply.Verdicts {
		if v.Blocks() {
			reply.Blocked = true
			reply.BlockedBy = append(reply.BlockedBy, v.Policy)
		}
		if v.WouldBlock() {
			reply.WouldBlock = append(reply.WouldBlock, v.Policy)
		}
	}
	reply.Verdicts = nonNil(reply.Verdicts)
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// --- health ---

// health is a tenant's state at a glance, for the home page.
type health struct {
	Tenant string `json:"tenant"`
	// Since is the start of the day (UTC) the counts are of.
	Since time.Time `json:"since"`
	// Messages counts messages received today, Refusals submissions
	// refused today and Failed recipients whose delivery failed for good.
	Messages int `json:"messages"`
	Refusals int `json:"refusals"`
	Failed   int `json:"failed"`
	// QueueDepth is the messages of every tenant waiting in the queue (of
	// every node, with the PostgreSQL store); shown only to admins of
	// every tenant (-1 otherwise).
	QueueDepth int      `json:"queue_depth"`
	Alerts     []string `json:"alerts"`
}

func (a *API) tenantHealth(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	now := time.Now().UTC()
	h := health{Tenant: t.Name, Since: now.Truncate(24 * time.Hour), QueueDepth: -1, Alerts: []string{}}
	// The day's figures come from the usage counters, which the usage
	// aggregator keeps about a second behind trace: reading them costs the
	// same at a million messages a day as at ten, unlike a trace scan.
	rows, err := a.store.UsageHours(r.Context(), store.UsageQuery{TenantID: t.ID, Since: h.Since})
	if err != nil {
		return err
	}
	for _, row := range rows {
		h.Messages += int(row.Messages)
		h.Refusals += int(row.Refusals)
		h.Failed += int(row.Failures)
	}
	if p, _ := PrincipalFrom(r.Context()); p.Tenant == "" {
		depth, err := a.store.QueueDepth(r.Context())
		if err != nil {
			return err
		}
		h.QueueDepth = depth
		if depth > 1000 {
			h.Alerts = append(h.Alerts, fmt.Sprintf("%d messages are waiting in the queue", depth))
		}
	}
	if h.Failed > 0 {
		h.Alerts = append(h.Alerts, fmt.Sprintf("%d deliveries failed today; see message trace with status Failed", h.Failed))
	}
	apps, err := a.store.Apps(r.Context(), t.ID)
	if err != nil {
		return err
	}
	for _, app := range apps {
		for _, s := range app.Secrets {
			if left := s.ExpiresAt.Sub(now); left < 30*24*time.Hour {
				verb := fmt.Sprintf("expires in %d days", int(left.Hours()/24))
				if left <= 0 {
					verb = "has expired"
				}
				h.Alerts = append(h.Alerts, fmt.Sprintf("client secret %d (%s...) of app %s %s", s.ID, s.Hint, app.Name, verb))
			}
		}
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}
