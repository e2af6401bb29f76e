// Package admin is the admin API: JSON over HTTP with bearer-token auth,
// described by the OpenAPI document it serves at /api/openapi.json. The hve
// CLI is a client of this API. The same server also hands the public OAuth
// endpoints (/oauth2/token, /oauth2/keys, /.well-known/openid-configuration)
// to the token service, without the admin token.
package admin

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

//go:embed openapi.json
var openAPI []byte

// API serves the admin API.
type API struct {
	store     store.Store
	tokenHash [sha256.Size]byte
	log       *slog.Logger
	opts      Options
	mux       *http.ServeMux
	// patterns lists every route routes() registers ("METHOD /path"), in
	// order; openapi_test.go holds the OpenAPI document to exactly these.
	patterns []string
}

// New returns the API; requests must carry the bearer token whose SHA-256
// is tokenHash. opts connects the API to the running node's parts.
func New(s store.Store, tokenHash [sha256.Size]byte, log *slog.Logger, opts Options) *API {
	a := &API{store: s, tokenHash: tokenHash, log: log, opts: opts, mux: http.NewServeMux()}
	a.routes()
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mux.ServeHTTP(w, r)
}

func (a *API) routes() {
	handle := func(pattern string, h http.HandlerFunc) {
		a.patterns = append(a.patterns, pattern)
		a.mux.Handle(pattern, h)
	}
	handle("GET /api/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	handle("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		depth, err := a.store.QueueDepth(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "store_unavailable", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "queue_depth": depth})
	})
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		handle(pattern, a.authed(fn).ServeHTTP)
	}
	t := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, t directory.Tenant) error) {
		h(pattern, a.tenant(fn))
	}
	h("GET /api/v1/tenants", a.listTenants)
	h("POST /api/v1/tenants", a.createTenant)
	const base = "/api/v1/tenants/{tenant}"
	t("GET "+base+"/domains", a.listDomains)
	t("POST "+base+"/domains", a.addDomain)
	t("DELETE "+base+"/domains/{name}", a.removeDomain)
	t("GET "+base+"/mailboxes", a.listMailboxes)
	t("POST "+base+"/mailboxes", a.createMailbox)
	t("DELETE "+base+"/mailboxes/{address}", a.removeMailbox)
	t("GET "+base+"/mailboxes/{address}/messages", a.mailboxMessages)
	t("GET "+base+"/mailboxes/{address}/messages/{id}", a.mailboxMessageBody)
	t("GET "+base+"/accounts", a.listAccounts)
	t("POST "+base+"/accounts", a.createAccount)
	t("GET "+base+"/accounts/{address}", a.showAccount)
	t("PATCH "+base+"/accounts/{address}", a.updateAccount)
	t("DELETE "+base+"/accounts/{address}", a.removeAccount)
	t("GET "+base+"/groups", a.listGroups)
	t("POST "+base+"/groups", a.createGroup)
	t("DELETE "+base+"/groups/{address}", a.removeGroup)
	t("POST "+base+"/groups/{address}/members", a.addMember)
	t("DELETE "+base+"/groups/{address}/members/{member}", a.removeMember)
	t("GET "+base+"/trace", a.searchTrace)
	a.reportRoutes(t)
	a.deliveryRoutes(t)
	a.webhookRoutes(t)
	a.queueRoutes(t)
	a.accessRoutes(handle, h, t)
	a.adminRoutes(h, t)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path+"; see /api/openapi.json")
	})
}

// authed checks the bearer token and the caller's role, records changes in
// the audit log, and turns a handler's error into a JSON error reply (see
// guard in auth.go).
func (a *API) authed(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return a.guard(fn)
}

// tenant resolves the {tenant} path segment.
func (a *API) tenant(fn func(w http.ResponseWriter, r *http.Request, t directory.Tenant) error) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		t, err := a.store.TenantByName(r.Context(), r.PathValue("tenant"))
		if err != nil {
			return err
		}
		return fn(w, r, t)
	}
}

// apiError is an error with its HTTP status and stable code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "invalid", fmt.Sprintf(format, args...)}
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.code, ae.msg)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, store.ErrLimit):
		writeError(w, http.StatusConflict, "limit_reached", err.Error())
	case errors.Is(err, store.ErrInvalid), errors.Is(err, directory.ErrInvalidAddress):
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
	default:
		a.log.Error("admin API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// decode reads a JSON request body into v, refusing unknown fields so that
// a misspelt field is an error rather than silently ignored.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

// audit logs every change and names it for the audit log entry that
// guard records (auth.go).
func (a *API) audit(r *http.Request, t directory.Tenant, action, object string) {
	a.log.Info("admin change", "tenant", t.Name, "action", action, "object", object, "remote", r.RemoteAddr)
	noteChange(r, t, action, object)
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request) error {
	list, err := a.store.Tenants(r.Context())
	if err != nil {
		return err
	}
	list = visibleTenants(r, list)
	return writePage(w, r, list, func(t directory.Tenant) string { return t.Name })
}

func (a *API) createTenant(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name == "" || strings.ContainsAny(req.Name, "/ ") {
		return badRequest("tenant name must be non-empty, without spaces or slashes")
	}
	t, err := a.store.CreateTenant(r.Context(), req.Name)
	if err != nil {
		return err
	}
	a.audit(r, t, "tenant.create", t.Name)
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (a *API) listDomains(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.Domains(r.Context(), t.ID)
	if err != nil {
		return err
	}
	return writePage(w, r, list, func(d directory.Domain) string { return d.Name })
}

func (a *API) addDomain(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	name, err := directory.NormalizeDomain(req.Name)
	if err != nil {
		return badRequest("%v", err)
	}
	typ, err := directory.ParseDomainType(req.Type)
	if err != nil {
		return badRequest("%v", err)
	}
	d, err := a.store.AddDomain(r.Context(), directory.Domain{TenantID: t.ID, Name: name, Type: typ})
	if err != nil {
		return err
	}
	a.audit(r, t, "domain.add", d.Name)
	writeJSON(w, http.StatusCreated, d)
	return nil
}

func (a *API) removeDomain(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	name, err := directory.NormalizeDomain(r.PathValue("name"))
	if err != nil {
		return badRequest("%v", err)
	}
	if err := a.store.RemoveDomain(r.Context(), t.ID, name); err != nil {
		return err
	}
	a.audit(r, t, "domain.remove", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// entry resolves an address path segment to an object of the given kind in
// tenant t. Objects of other tenants are reported as not found.
func (a *API) entry(ctx context.Context, t directory.Tenant, raw string, kind directory.Kind) (directory.Entry, error) {
	addr, err := directory.NormalizeAddress(raw)
	if err != nil {
		return directory.Entry{}, err
	}
	e, err := a.store.Lookup(ctx, addr)
	if err != nil || e.TenantID != t.ID || e.Kind != kind {
		return e, fmt.Errorf("%w: no %s with address %s", store.ErrNotFound, kind, addr)
	}
	return e, nil
}

// addresses normalizes a primary address and aliases.
func addresses(primary string, aliases []string) (string, []string, error) {
	p, err := directory.NormalizeAddress(primary)
	if err != nil {
		return "", nil, err
	}
	out := make([]string, 0, len(aliases))
	for _, al := range aliases {
		n, err := directory.NormalizeAddress(al)
		if err != nil {
			return "", nil, err
		}
		if n != p {
			out = append(out, n)
		}
	}
	return p, out, nil
}

func (a *API) listMailboxes(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.Mailboxes(r.Context(), t.ID)
	if err != nil {
		return err
	}
	return writePage(w, r, list, func(m directory.Mailbox) string { return m.Address })
}

func (a *API) createMailbox(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Name        string   `json:"name"`
		DisplayName string   `json:"display_name"`
		Address     string   `json:"address"`
		Aliases     []string `json:"aliases"`
		Password    string   `json:"password"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	addr, aliases, err := addresses(req.Address, req.Aliases)
	if err != nil {
		return err
	}
	m := directory.Mailbox{TenantID: t.ID, Name: req.Name, DisplayName: req.DisplayName, Address: addr, Aliases: aliases}
	if m.Name == "" {
		return badRequest("name is required")
	}
	if m.DisplayName == "" {
		m.DisplayName = m.Name
	}
	if req.Password != "" {
		// A mailbox's password signs in on the client endpoint: the same
		// rule as for accounts.
		if err := checkPassword(req.Password); err != nil {
			return err
		}
		if m.PasswordHash, err = password.Hash(req.Password); err != nil {
			return err
		}
	}
	m, err = a.store.CreateMailbox(r.Context(), m)
	if err != nil {
		return err
	}
	a.audit(r, t, "mailbox.create", m.Address)
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (a *API) removeMailbox(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	e, err := a.entry(r.Context(), t, r.PathValue("address"), directory.KindMailbox)
	if err != nil {
		return err
	}
	if err := a.store.RemoveMailbox(r.Context(), t.ID, e.ID); err != nil {
		return err
	}
	a.closeSessions(t, directory.KindMailbox, e.ID)
	a.audit(r, t, "mailbox.remove", e.Address)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) mailboxMessages(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	e, err := a.entry(r.Context(), t, r.PathValue("address"), directory.KindMailbox)
	if err != nil {
		return err
	}
	list, err := a.store.MailboxMessages(r.Context(), e.ID)
	if err != nil {
		return err
	}
	// Newest first: by id, descending.
	return writePage(w, r, list, func(m store.MailboxMessage) string { return idKey(m.ID) })
}

func (a *API) mailboxMessageBody(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	e, err := a.entry(r.Context(), t, r.PathValue("address"), directory.KindMailbox)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return badRequest("message id must be a number")
	}
	body, err := a.store.MailboxMessageBody(r.Context(), e.ID, id)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Write(body)
	return nil
}

func (a *API) listAccounts(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.Accounts(r.Context(), t.ID)
	if err != nil {
		return err
	}
	return writePage(w, r, list, func(acc directory.Account) string { return acc.Address })
}

// accountCreated is the reply to account creation: the account, and the
// password when the server generated it (shown this once, never again).
type accountCreated struct {
	directory.Account
	Password string `json:"password,omitempty"`
}

func (a *API) createAccount(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Name        string   `json:"name"`
		DisplayName string   `json:"display_name"`
		Address     string   `json:"address"`
		Aliases     []string `json:"aliases"`
		ReplyTo     string   `json:"reply_to"`
		Password    string   `json:"password"`
		Enabled     *bool    `json:"enabled"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	addr, aliases, err := addresses(req.Address, req.Aliases)
	if err != nil {
		return err
	}
	acc := directory.Account{TenantID: t.ID, Name: req.Name, DisplayName: req.DisplayName, Address: addr, Aliases: aliases, Enabled: true}
	if acc.Name == "" {
		return badRequest("name is required")
	}
	if acc.DisplayName == "" {
		acc.DisplayName = acc.Name
	}
	if req.Enabled != nil {
		acc.Enabled = *req.Enabled
	}
	if acc.ReplyTo, err = optionalAddress(req.ReplyTo); err != nil {
		return err
	}
	generated := ""
	if req.Password == "" {
		generated = password.Generate(24)
		req.Password = generated
	}
	if err := checkPassword(req.Password); err != nil {
		return err
	}
	if acc.PasswordHash, err = password.Hash(req.Password); err != nil {
		return err
	}
	acc, err = a.store.CreateAccount(r.Context(), acc)
	if err != nil {
		return err
	}
	a.audit(r, t, "account.create", acc.Address)
	writeJSON(w, http.StatusCreated, accountCreated{Account: acc, Password: generated})
	return nil
}

func optionalAddress(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return directory.NormalizeAddress(s)
}

func checkPassword(pw string) error {
	if len(pw) < 8 {
		return badRequest("password must have at least 8 characters")
	}
	return nil
}

func (a *API) account(r *http.Request, t directory.Tenant) (directory.Account, error) {
	e, err := a.entry(r.Context(), t, r.PathValue("address"), directory.KindAccount)
	if err != nil {
		return directory.Account{}, err
	}
	return a.store.Account(r.Context(), t.ID, e.ID)
}

func (a *API) showAccount(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	acc, err := a.account(r, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, acc)
	return nil
}

func (a *API) updateAccount(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		DisplayName *string   `json:"display_name"`
		Enabled     *bool     `json:"enabled"`
		ReplyTo     *string   `json:"reply_to"`
		Password    *string   `json:"password"`
		Aliases     *[]string `json:"aliases"`
		// AuthPolicy names a policy, or "" for the tenant's default.
		AuthPolicy *string `json:"auth_policy"`
		// AllowedNetworks replaces the list; [] allows every network.
		AllowedNetworks *[]string `json:"allowed_networks"`
		// DailyRecipientLimit and WarnAt: 0 means none.
		DailyRecipientLimit *int64 `json:"daily_recipient_limit"`
		WarnAt              *int   `json:"warn_at"`
		// FailureReportTo is a mailbox or group of the tenant, or ""
		// for no failure reports.
		FailureReportTo *string `json:"failure_report_to"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	acc, err := a.account(r, t)
	if err != nil {
		return err
	}
	if req.DisplayName != nil {
		acc.DisplayName = *req.DisplayName
	}
	wasEnabled := acc.Enabled
	if req.Enabled != nil {
		acc.Enabled = *req.Enabled
	}
	if req.ReplyTo != nil {
		if acc.ReplyTo, err = optionalAddress(*req.ReplyTo); err != nil {
			return err
		}
	}
	if req.Aliases != nil {
		if _, acc.Aliases, err = addresses(acc.Address, *req.Aliases); err != nil {
			return err
		}
	}
	if req.Password != nil {
		if err := checkPassword(*req.Password); err != nil {
			return err
		}
		if acc.PasswordHash, err = password.Hash(*req.Password); err != nil {
			return err
		}
	}
	if req.AuthPolicy != nil {
		if acc.AuthPolicy, err = a.authPolicyRef(r.Context(), t, *req.AuthPolicy); err != nil {
			return err
		}
	}
	if req.AllowedNetworks != nil {
		nets := make([]string, 0, len(*req.AllowedNetworks))
		for _, n := range *req.AllowedNetworks {
			p, err := directory.ParseNetwork(n)
			if err != nil {
				return badRequest("allowed_networks: %v", err)
			}
			nets = append(nets, p.String())
		}
		acc.AllowedNetworks = nets
	}
	if req.DailyRecipientLimit != nil {
		if *req.DailyRecipientLimit < 0 {
			return badRequest("daily_recipient_limit: %d is negative; 0 means none", *req.DailyRecipientLimit)
		}
		acc.DailyRecipientLimit = *req.DailyRecipientLimit
	}
	if req.WarnAt != nil {
		if err := directory.CheckWarnAt(*req.WarnAt); err != nil {
			return badRequest("warn_at: %v", err)
		}
		acc.WarnAt = *req.WarnAt
	}
	if req.FailureReportTo != nil {
		if acc.FailureReportTo, err = a.reportAddress(r.Context(), t, *req.FailureReportTo); err != nil {
			return err
		}
	}
	acc, err = a.store.UpdateAccount(r.Context(), acc)
	if err != nil {
		return err
	}
	if req.DailyRecipientLimit != nil || req.WarnAt != nil {
		a.settingsChanged(t)
	}
	if wasEnabled && !acc.Enabled {
		// A disabled account must stop sending now, not when its
		// sessions happen to end.
		a.closeSessions(t, directory.KindAccount, acc.ID)
	}
	a.audit(r, t, "account.update", acc.Address)
	writeJSON(w, http.StatusOK, acc)
	return nil
}

func (a *API) removeAccount(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	acc, err := a.account(r, t)
	if err != nil {
		return err
	}
	if err := a.store.RemoveAccount(r.Context(), t.ID, acc.ID); err != nil {
		return err
	}
	a.closeSessions(t, directory.KindAccount, acc.ID)
	a.audit(r, t, "account.remove", acc.Address)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.Groups(r.Context(), t.ID)
	if err != nil {
		return err
	}
	return writePage(w, r, list, func(g directory.Group) string { return g.Address })
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	addr, err := directory.NormalizeAddress(req.Address)
	if err != nil {
		return err
	}
	if req.Name == "" {
		return badRequest("name is required")
	}
	g, err := a.store.CreateGroup(r.Context(), directory.Group{TenantID: t.ID, Name: req.Name, Address: addr})
	if err != nil {
		return err
	}
	a.audit(r, t, "group.create", g.Address)
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (a *API) removeGroup(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	e, err := a.entry(r.Context(), t, r.PathValue("address"), directory.KindGroup)
	if err != nil {
		return err
	}
	if err := a.store.RemoveGroup(r.Context(), t.ID, e.ID); err != nil {
		return err
	}
	a.audit(r, t, "group.remove", e.Address)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) addMember(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Address string `json:"address"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	return a.changeMember(w, r, t, req.Address, true)
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	return a.changeMember(w, r, t, r.PathValue("member"), false)
}

func (a *API) changeMember(w http.ResponseWriter, r *http.Request, t directory.Tenant, member string, add bool) error {
	g, err := a.entry(r.Context(), t, r.PathValue("address"), directory.KindGroup)
	if err != nil {
		return err
	}
	m, err := directory.NormalizeAddress(member)
	if err != nil {
		return err
	}
	action := "group.remove-member"
	if add {
		action = "group.add-member"
		err = a.store.AddGroupMember(r.Context(), t.ID, g.ID, m)
	} else {
		err = a.store.RemoveGroupMember(r.Context(), t.ID, g.ID, m)
	}
	if err != nil {
		return err
	}
	a.audit(r, t, action, g.Address+" "+m)
	group, err := a.store.Group(r.Context(), t.ID, g.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, group)
	return nil
}

func (a *API) searchTrace(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	p := r.URL.Query()
	q := trace.Query{
		TenantID:  t.ID,
		Sender:    p.Get("sender"),
		Recipient: p.Get("recipient"),
		MessageID: strings.Trim(p.Get("message_id"), "<> "),
		QueueID:   queue.CleanID(p.Get("queue_id")),
		ClientIP:  p.Get("client_ip"),
		Subject:   p.Get("subject"),
	}
	if s := p.Get("status"); s != "" {
		status, err := trace.ParseStatusFilter(s)
		if err != nil {
			return badRequest("%v", err)
		}
		q.Status = status
	}
	if e := p.Get("event"); e != "" {
		event, err := trace.ParseEvent(e)
		if err != nil {
			return badRequest("%v", err)
		}
		q.Event = event
	}
	// A bad mode is refused even without a subject: the caller meant
	// something the search would silently not do.
	match, err := trace.ParseSubjectMatch(p.Get("subject_match"))
	if err != nil {
		return badRequest("subject_match: %v", err)
	}
	q.SubjectMatch = match
	now := time.Now()
	if q.Since, err = trace.ParseTime(p.Get("since"), now); err != nil {
		return badRequest("since: %v", err)
	}
	if q.Until, err = trace.ParseTime(p.Get("until"), now); err != nil {
		return badRequest("until: %v", err)
	}
	if v := p.Get("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 0 {
			return badRequest("limit must be a positive number")
		}
	}
	if v := p.Get("after"); v != "" {
		if q.AfterID, err = strconv.ParseInt(v, 10, 64); err != nil {
			return badRequest("after must be an event id")
		}
	}
	events, err := a.store.SearchTrace(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, events)
	return nil
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
