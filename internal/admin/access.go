package admin

// The access endpoints: tenant settings, authentication policies, security
// groups, Conditional Access, app registrations, trusted issuers, signing
// keys, the access fields of accounts and mailboxes, diagnose, and the
// public OAuth endpoints.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"hve/internal/access"
	"hve/internal/directory"
	"hve/internal/oauth"
	"hve/internal/password"
	"hve/internal/store"
)

// Diagnoser runs the checks of a sign-in; access.Checker implements it.
// The API calls it with Attempt.Diagnose set.
type Diagnoser interface {
	Check(ctx context.Context, at access.Attempt) access.Result
}

// SessionCloser ends the open SMTP sessions of one identity and reports how
// many it ended; the server implements it.
type SessionCloser interface {
	CloseSessions(tenantID int64, kind directory.Kind, id int64) int
}

// SettingsNotifier hears that a tenant's limit settings or an account's
// thresholds changed, so that the node's endpoints apply them at once; the
// server implements it.
type SettingsNotifier interface {
	SettingsChanged(tenantID int64)
}

// KeyRotator makes a new token-signing key the current one and returns its
// kid; oauth.Service implements it.
type KeyRotator interface {
	RotateKey(ctx context.Context) (string, error)
}

// Options connects the API to the parts of a running node other than the
// store. A nil field switches off what needs it: those endpoints answer
// 503 unavailable, and revoking sessions closes none.
type Options struct {
	// Diagnoser answers GET .../accounts/{address}/diagnose.
	Diagnoser Diagnoser
	// Sessions is told to end an identity's sessions when its tokens are
	// revoked or an account becomes a mailbox.
	Sessions SessionCloser
	// Keys answers POST /api/v1/oauth/rotate-key.
	Keys KeyRotator
	// Settings is told of changes of tenant settings and account
	// thresholds.
	Settings SettingsNotifier
	// OAuth serves the public token endpoints: POST /oauth2/token,
	// GET /oauth2/keys and GET /.well-known/openid-configuration.
	OAuth http.Handler
	// Usage is asked to catch up before a usage report; without it the
	// report shows what the node's aggregator has counted.
	Usage UsageMeter
	// Reports is woken when a detailed report is requested; without it
	// the job waits for a runner's next look.
	Reports ReportWaker
	// Delivery is woken after a queue retry or release; without it the
	// worker sees the change at its next poll.
	Delivery DeliveryWaker
}

// oauthPatterns are the token service's routes. Apps call them with their
// own credentials (or none, for the published keys), never the admin token.
var oauthPatterns = []string{
	"POST /oauth2/token",
	"GET /oauth2/keys",
	"GET /.well-known/openid-configuration",
}

// publicPatterns are the routes that need no admin token: the API's own
// description, the health check, and the OAuth endpoints.
var publicPatterns = append([]string{"GET /api/openapi.json", "GET /healthz"}, oauthPatterns...)

// The handler shapes routes() registers.
type (
	apiHandler    = func(w http.ResponseWriter, r *http.Request) error
	tenantHandler = func(w http.ResponseWriter, r *http.Request, t directory.Tenant) error
)

// accessRoutes registers the access endpoints with the helpers of routes().
func (a *API) accessRoutes(handle func(string, http.HandlerFunc), h func(string, apiHandler), t func(string, tenantHandler)) {
	for _, p := range oauthPatterns {
		handle(p, a.serveOAuth)
	}
	// The token service answers other methods on its token endpoint with
	// an RFC 6749 error rather than the mux's bare 405; this route is not
	// in patterns because the document describes only POST.
	a.mux.HandleFunc("/oauth2/token", a.serveOAuth)
	h("POST /api/v1/oauth/rotate-key", a.rotateKey)

	const base = "/api/v1/tenants/{tenant}"
	t("GET "+base, a.showTenant)
	t("PATCH "+base, a.updateTenant)

	t("GET "+base+"/mailboxes/{address}", a.showMailbox)
	t("PATCH "+base+"/mailboxes/{address}", a.updateMailbox)
	t("POST "+base+"/mailboxes/{address}/revoke-sessions", a.revokeMailboxSessions)

	t("POST "+base+"/accounts/{address}/revoke-sessions", a.revokeAccountSessions)
	t("POST "+base+"/accounts/{address}/convert-to-mailbox", a.convertAccount)
	t("POST "+base+"/accounts/{address}/allowed-apps", a.allowApp)
	t("DELETE "+base+"/accounts/{address}/allowed-apps/{app}", a.disallowApp)
	t("GET "+base+"/accounts/{address}/diagnose", a.diagnose)

	t("GET "+base+"/auth-policies", a.listAuthPolicies)
	t("POST "+base+"/auth-policies", a.createAuthPolicy)
	t("PATCH "+base+"/auth-policies/{name}", a.updateAuthPolicy)
	t("DELETE "+base+"/auth-policies/{name}", a.removeAuthPolicy)

	t("GET "+base+"/security-groups", a.listSecurityGroups)
	t("POST "+base+"/security-groups", a.createSecurityGroup)
	t("DELETE "+base+"/security-groups/{name}", a.removeSecurityGroup)
	t("POST "+base+"/security-groups/{name}/members", a.addSecurityGroupMember)
	t("DELETE "+base+"/security-groups/{name}/members/{member}", a.removeSecurityGroupMember)

	t("GET "+base+"/ca-policies", a.listCAPolicies)
	t("POST "+base+"/ca-policies", a.createCAPolicy)
	t("PATCH "+base+"/ca-policies/{name}", a.updateCAPolicy)
	t("DELETE "+base+"/ca-policies/{name}", a.removeCAPolicy)

	t("GET "+base+"/apps", a.listApps)
	t("POST "+base+"/apps", a.createApp)
	t("DELETE "+base+"/apps/{app}", a.removeApp)
	t("POST "+base+"/apps/{app}/permissions", a.grantPermission)
	t("DELETE "+base+"/apps/{app}/permissions/{permission}", a.revokePermission)
	t("POST "+base+"/apps/{app}/secrets", a.addSecret)
	t("DELETE "+base+"/apps/{app}/secrets/{id}", a.removeSecret)

	t("GET "+base+"/oauth/issuers", a.listIssuers)
	t("POST "+base+"/oauth/issuers", a.addIssuer)
	t("DELETE "+base+"/oauth/issuers/{url}", a.removeIssuer)
}

func unavailable(what string) error {
	return &apiError{http.StatusServiceUnavailable, "unavailable", what + " is not running on this node"}
}

func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &apiError{http.StatusConflict, "conflict", fmt.Sprintf(format, args...)}
}

// serveOAuth hands the public OAuth endpoints to the token service. They
// sit outside the admin token on purpose: apps authenticate to them with
// their own client secret, and the keys and discovery document are public.
func (a *API) serveOAuth(w http.ResponseWriter, r *http.Request) {
	if a.opts.OAuth == nil {
		a.fail(w, r, unavailable("the OAuth token service"))
		return
	}
	a.opts.OAuth.ServeHTTP(w, r)
}

// signingKeys is the reply to a key rotation.
type signingKeys struct {
	// Current is the kid new tokens are signed with.
	Current string                 `json:"current"`
	Keys    []directory.SigningKey `json:"keys"`
}

func (a *API) rotateKey(w http.ResponseWriter, r *http.Request) error {
	if a.opts.Keys == nil {
		return unavailable("the OAuth token service")
	}
	kid, err := a.opts.Keys.RotateKey(r.Context())
	if err != nil {
		return fmt.Errorf("rotating the signing key: %w", err)
	}
	keys, err := a.store.SigningKeys(r.Context())
	if err != nil {
		return err
	}
	reply := signingKeys{Current: kid, Keys: nonNil(keys)}
	// Keys are global, so this change has no tenant.
	a.audit(r, directory.Tenant{}, "oauth.rotate-key", reply.Current)
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// --- tenant settings ---

func (a *API) showTenant(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	writeJSON(w, http.StatusOK, t)
	return nil
}

// tenantPatch is the body of PATCH /api/v1/tenants/{tenant}: only the
// fields present change. New tenant settings add their field here.
type tenantPatch struct {
	SecurityDefaults *bool `json:"security_defaults"`
	// DefaultAuthPolicy names a policy, or "" for none.
	DefaultAuthPolicy      *string          `json:"default_auth_policy"`
	ClientSMTPAuthDisabled *bool            `json:"client_smtp_auth_disabled"`
	HVEBasicAuth           *retirementPatch `json:"hve_basic_auth"`
	ClientBasicAuth        *retirementPatch `json:"client_basic_auth"`
	// The limits; 0 means unlimited for the two maximums, "" no
	// smarthost.
	DailyRecipientLimit *int64   `json:"daily_recipient_limit"`
	MaxHVEAccounts      *int64   `json:"max_hve_accounts"`
	ExternalSending     *string  `json:"external_sending"`
	OutboundSmarthost   *string  `json:"outbound_smarthost"`
	PricePerMillion     *float64 `json:"price_per_million"`
}

// applyLimits changes the limit settings present in the patch.
func (p *tenantPatch) applyLimits(s *directory.Settings) error {
	for _, f := range []struct {
		name string
		in   *int64
		out  *int64
	}{{"daily_recipient_limit", p.DailyRecipientLimit, &s.DailyRecipientLimit}, {"max_hve_accounts", p.MaxHVEAccounts, &s.MaxHVEAccounts}} {
		if f.in == nil {
			continue
		}
		if *f.in < 0 {
			return badRequest("%s: %d is negative; 0 means unlimited", f.name, *f.in)
		}
		*f.out = *f.in
	}
	if p.ExternalSending != nil {
		m, err := directory.ParseExternalSending(*p.ExternalSending)
		if err != nil {
			return badRequest("external_sending: %v", err)
		}
		s.ExternalSending = m
	}
	if p.OutboundSmarthost != nil {
		s.OutboundSmarthost = ""
		if *p.OutboundSmarthost != "" {
			h, err := directory.ParseSmarthost(*p.OutboundSmarthost)
			if err != nil {
				return badRequest("outbound_smarthost: %v", err)
			}
			s.OutboundSmarthost = h
		}
	}
	if p.PricePerMillion != nil {
		if v := *p.PricePerMillion; v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return badRequest("price_per_million: %v is not a price (a number >= 0)", v)
		}
		s.PricePerMillion = *p.PricePerMillion
	}
	return nil
}

// settingsChanged tells the node's endpoints that a tenant's limit settings
// or an account's thresholds changed.
func (a *API) settingsChanged(t directory.Tenant) {
	if a.opts.Settings != nil {
		a.opts.Settings.SettingsChanged(t.ID)
	}
}

// retirementPatch changes a directory.Retirement; each time is a date
// (2026-11-23, midnight UTC) or RFC 3339, or "" to remove it.
type retirementPatch struct {
	SunsetAt  *string `json:"sunset_at"`
	RampStart *string `json:"ramp_start"`
	RampEnd   *string `json:"ramp_end"`
}

// apply changes ret; field names the object in error messages.
func (p *retirementPatch) apply(ret *directory.Retirement, field string) error {
	if p == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		in   *string
		out  *time.Time
	}{{"sunset_at", p.SunsetAt, &ret.SunsetAt}, {"ramp_start", p.RampStart, &ret.RampStart}, {"ramp_end", p.RampEnd, &ret.RampEnd}} {
		if f.in == nil {
			continue
		}
		if *f.in == "" {
			*f.out = time.Time{}
			continue
		}
		v, err := ParseDate(*f.in)
		if err != nil {
			return badRequest("%s.%s: %v", field, f.name, err)
		}
		*f.out = v
	}
	if ret.RampStart.IsZero() != ret.RampEnd.IsZero() {
		return badRequest("%s: a ramp needs both ramp_start and ramp_end (or neither)", field)
	}
	if !ret.RampStart.IsZero() && !ret.RampStart.Before(ret.RampEnd) {
		return badRequest("%s: ramp_start %s is not before ramp_end %s", field, ret.RampStart.Format(time.RFC3339), ret.RampEnd.Format(time.RFC3339))
	}
	return nil
}

// ParseDate parses a date (2026-11-23, meaning midnight UTC) or an RFC 3339
// time, the two forms admins give dates in.
func ParseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date such as 2026-11-23 nor an RFC 3339 time such as 2026-11-23T08:00:00Z", s)
	}
	return t.UTC(), nil
}

// ParseExpiry parses when a client secret expires: a number of years, weeks
// or days (2y, 26w, 90d), a Go duration (720h), or a date or RFC 3339 time.
// The result must be after now.
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	var at time.Time
	if len(s) >= 2 {
		if v, err := strconv.Atoi(s[:len(s)-1]); err == nil && v > 0 {
			switch s[len(s)-1] {
			case 'y':
				at = now.AddDate(v, 0, 0)
			case 'w':
				at = now.AddDate(0, 0, 7*v)
			case 'd':
				at = now.AddDate(0, 0, v)
			}
		}
	}
	if at.IsZero() {
		if d, err := time.ParseDuration(s); err == nil {
			at = now.Add(d)
		} else if t, err := ParseDate(s); err == nil {
			at = t
		} else {
			return time.Time{}, fmt.Errorf("expiry %q is not a duration (2y, 26w, 90d, 720h) nor a date (2026-11-23 or RFC 3339)", s)
		}
	}
	if !at.After(now) {
		return time.Time{}, fmt.Errorf("expiry %q is not in the future", s)
	}
	return at.UTC(), nil
}

func (a *API) updateTenant(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req tenantPatch
	if err := decode(r, &req); err != nil {
		return err
	}
	s := t.Settings
	if req.SecurityDefaults != nil {
		s.SecurityDefaults = *req.SecurityDefaults
	}
	if req.ClientSMTPAuthDisabled != nil {
		s.ClientSMTPAuthDisabled = *req.ClientSMTPAuthDisabled
	}
	if req.DefaultAuthPolicy != nil {
		name, err := a.authPolicyRef(r.Context(), t, *req.DefaultAuthPolicy)
		if err != nil {
			return err
		}
		s.DefaultAuthPolicy = name
	}
	if err := req.HVEBasicAuth.apply(&s.HVEBasicAuth, "hve_basic_auth"); err != nil {
		return err
	}
	if err := req.ClientBasicAuth.apply(&s.ClientBasicAuth, "client_basic_auth"); err != nil {
		return err
	}
	if err := req.applyLimits(&s); err != nil {
		return err
	}
	t, err := a.store.UpdateTenantSettings(r.Context(), t.ID, s)
	if err != nil {
		return err
	}
	a.settingsChanged(t)
	a.audit(r, t, "tenant.update", t.Name)
	writeJSON(w, http.StatusOK, t)
	return nil
}

// authPolicyRef checks that a policy named in a request exists and returns
// its stored name; "" (none) is returned as is.
func (a *API) authPolicyRef(ctx context.Context, t directory.Tenant, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	p, err := a.store.AuthPolicyByName(ctx, t.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", badRequest("authentication policy %q does not exist in tenant %s; hve auth-policy list shows them", name, t.Name)
	}
	if err != nil {
		return "", err
	}
	return p.Name, nil
}

// checkName checks the name of a policy or security group: names appear in
// URL paths, and the CLI uses "none" to mean no policy.
func checkName(what, name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return badRequest("%s name is required", what)
	case name != strings.TrimSpace(name) || strings.ContainsAny(name, "/\r\n\t"):
		return badRequest("%s name %q must not start or end with spaces, nor hold slashes or control characters", what, name)
	case strings.EqualFold(name, "none"):
		return badRequest("%s name %q is reserved: it means no policy", what, name)
	case len(name) > 200:
		return badRequest("%s name is longer than 200 characters", what)
	}
	return nil
}

// --- mailboxes ---

func (a *API) mailbox(r *http.Request, t directory.Tenant) (directory.Mailbox, error) {
	e, err := a.entry(r.Context(), t, r.PathValue("address"), directory.KindMailbox)
	if err != nil {
		return directory.Mailbox{}, err
	}
	return a.store.Mailbox(r.Context(), t.ID, e.ID)
}

func (a *API) showMailbox(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	m, err := a.mailbox(r, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (a *API) updateMailbox(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		DisplayName *string `json:"display_name"`
		Password    *string `json:"password"`
		AuthPolicy  *string `json:"auth_policy"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	m, err := a.mailbox(r, t)
	if err != nil {
		return err
	}
	if req.DisplayName != nil {
		if strings.TrimSpace(*req.DisplayName) == "" {
			return badRequest("display_name must not be empty")
		}
		m.DisplayName = *req.DisplayName
	}
	if req.Password != nil {
		if err := checkPassword(*req.Password); err != nil {
			return err
		}
		if m.PasswordHash, err = password.Hash(*req.Password); err != nil {
			return err
		}
		m.HasPassword = true
	}
	if req.AuthPolicy != nil {
		if m.AuthPolicy, err = a.authPolicyRef(r.Context(), t, *req.AuthPolicy); err != nil {
			return err
		}
	}
	m, err = a.store.UpdateMailbox(r.Context(), m)
	if err != nil {
		return err
	}
	a.audit(r, t, "mailbox.update", m.Address)
	writeJSON(w, http.StatusOK, m)
	return nil
}

// revoked is the reply to revoking an identity's tokens and sessions.
type revoked struct {
	Address         string         `json:"address"`
	Kind            directory.Kind `json:"kind"`
	TokensValidFrom time.Time      `json:"tokens_valid_from"`
	SessionsClosed  int            `json:"sessions_closed"`
}

// closeSessions ends the open sessions of an identity, if the node can.
func (a *API) closeSessions(t directory.Tenant, kind directory.Kind, id int64) int {
	if a.opts.Sessions == nil {
		return 0
	}
	return a.opts.Sessions.CloseSessions(t.ID, kind, id)
}

func (a *API) revokeMailboxSessions(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	m, err := a.mailbox(r, t)
	if err != nil {
		return err
	}
	// Tokens-valid-from first, so that no session can sign in again with
	// an old token between the close and the update.
	m.TokensValidFrom = time.Now().UTC()
	if m, err = a.store.UpdateMailbox(r.Context(), m); err != nil {
		return err
	}
	n := a.closeSessions(t, directory.KindMailbox, m.ID)
	a.audit(r, t, "mailbox.revoke-sessions", m.Address)
	writeJSON(w, http.StatusOK, revoked{Address: m.Address, Kind: directory.KindMailbox, TokensValidFrom: m.TokensValidFrom, SessionsClosed: n})
	return nil
}

// --- accounts ---

func (a *API) revokeAccountSessions(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	acc, err := a.account(r, t)
	if err != nil {
		return err
	}
	// As for mailboxes: refuse old tokens first, then end the sessions.
	acc.TokensValidFrom = time.Now().UTC()
	if acc, err = a.store.UpdateAccount(r.Context(), acc); err != nil {
		return err
	}
	n := a.closeSessions(t, directory.KindAccount, acc.ID)
	a.audit(r, t, "account.revoke-sessions", acc.Address)
	writeJSON(w, http.StatusOK, revoked{Address: acc.Address, Kind: directory.KindAccount, TokensValidFrom: acc.TokensValidFrom, SessionsClosed: n})
	return nil
}

// converted is the reply to converting an HVE account into a mailbox.
type converted struct {
	Mailbox        directory.Mailbox `json:"mailbox"`
	SessionsClosed int               `json:"sessions_closed"`
}

func (a *API) convertAccount(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	acc, err := a.account(r, t)
	if err != nil {
		return err
	}
	m, err := a.store.ConvertAccountToMailbox(r.Context(), t.ID, acc.ID)
	if err != nil {
		return err
	}
	// The account no longer exists; its sessions must not go on sending
	// on the HVE endpoint.
	n := a.closeSessions(t, directory.KindAccount, acc.ID)
	a.audit(r, t, "account.convert-to-mailbox", acc.Address)
	writeJSON(w, http.StatusOK, converted{Mailbox: m, SessionsClosed: n})
	return nil
}

// allowedApps is the reply to a change of an account's allowed apps.
type allowedApps struct {
	Address string `json:"address"`
	// AppID is the app id added or removed; AppName its registration's
	// name, empty for an app of an external issuer.
	AppID   string `json:"app_id"`
	AppName string `json:"app_name"`
	// External: the id is not an app registration of the tenant, and was
	// taken as the app id of an app of a trusted external issuer.
	External    bool     `json:"external"`
	AllowedApps []string `json:"allowed_apps"`
}

// unknownApp is the error for an app reference that matches no app
// registration; it names both ids an admin may have at hand.
func unknownApp(ref string, t directory.Tenant) string {
	return fmt.Sprintf("%q is neither the app id nor the object id of an app registration in tenant %s; hve app list shows both", ref, t.Name)
}

func (a *API) allowApp(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		App string `json:"app"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	ref := strings.TrimSpace(req.App)
	if ref == "" || len(ref) > 200 || strings.ContainsFunc(ref, func(c rune) bool { return c <= ' ' }) {
		return badRequest("app must be an app id or object id, without spaces")
	}
	acc, err := a.account(r, t)
	if err != nil {
		return err
	}
	reply := allowedApps{Address: acc.Address, AppID: ref}
	app, err := a.store.App(r.Context(), t.ID, ref)
	switch {
	case err == nil:
		reply.AppID, reply.AppName = app.AppID, app.Name
	case errors.Is(err, store.ErrNotFound):
		// Apps of a trusted external issuer are not registered in hve; an
		// unknown id is one of theirs only if the tenant has such an issuer.
		issuers, err := a.store.Issuers(r.Context(), t.ID)
		if err != nil {
			return err
		}
		if len(issuers) == 0 {
			return badRequest("%s", unknownApp(ref, t))
		}
		reply.External = true
	default:
		return err
	}
	if slices.ContainsFunc(acc.AllowedApps, func(id string) bool { return strings.EqualFold(id, reply.AppID) }) {
		return conflict("app %s is already allowed for %s", reply.AppID, acc.Address)
	}
	if len(acc.AllowedApps) >= directory.MaxAllowedApps {
		return badRequest("%s already allows %d apps, the most an HVE account may have; remove one with hve account disallow-app first",
			acc.Address, directory.MaxAllowedApps)
	}
	acc.AllowedApps = append(acc.AllowedApps, reply.AppID)
	if acc, err = a.store.UpdateAccount(r.Context(), acc); err != nil {
		return err
	}
	reply.AllowedApps = nonNil(acc.AllowedApps)
	a.audit(r, t, "account.allow-app", acc.Address+" "+reply.AppID)
	writeJSON(w, http.StatusOK, reply)
	return nil
}

func (a *API) disallowApp(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	ref := strings.TrimSpace(r.PathValue("app"))
	acc, err := a.account(r, t)
	if err != nil {
		return err
	}
	reply := allowedApps{Address: acc.Address, AppID: ref}
	app, err := a.store.App(r.Context(), t.ID, ref)
	switch {
	case err == nil:
		reply.AppID, reply.AppName = app.AppID, app.Name
	case errors.Is(err, store.ErrNotFound):
		// An external app, or one whose registration was removed: the id
		// is on the list as it was given.
		reply.External = true
	default:
		return err
	}
	i := slices.IndexFunc(acc.AllowedApps, func(id string) bool { return strings.EqualFold(id, reply.AppID) })
	if i < 0 {
		if reply.External {
			return notFound("%s, nor on the allowed list of %s", unknownApp(ref, t), acc.Address)
		}
		return notFound("app %s (%s) is not allowed for %s", reply.AppID, reply.AppName, acc.Address)
	}
	acc.AllowedApps = slices.Delete(acc.AllowedApps, i, i+1)
	if acc, err = a.store.UpdateAccount(r.Context(), acc); err != nil {
		return err
	}
	reply.AllowedApps = nonNil(acc.AllowedApps)
	a.audit(r, t, "account.disallow-app", acc.Address+" "+reply.AppID)
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// diagnosis is the reply of diagnose: the steps of a sign-in that was
// checked without a secret.
type diagnosis struct {
	Address  string             `json:"address"`
	Kind     directory.Kind     `json:"kind"`
	Endpoint directory.Endpoint `json:"endpoint"`
	Auth     access.Method      `json:"auth"`
	FromIP   string             `json:"from_ip"`
	App      string             `json:"app"`
	// OK: the sign-in would succeed, given the right secret.
	OK bool `json:"ok"`
	// Reply is the SMTP reply a refused sign-in gets; empty when OK.
	Reply string `json:"reply"`
	// Reason says why it would be refused, naming any Conditional Access
	// policy (which the SMTP reply never does).
	Reason string        `json:"reason"`
	Steps  []access.Step `json:"steps"`
}

func (a *API) diagnose(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	addr, err := directory.NormalizeAddress(r.PathValue("address"))
	if err != nil {
		return err
	}
	e, err := a.store.Lookup(r.Context(), addr)
	if err != nil || e.TenantID != t.ID || (e.Kind != directory.KindAccount && e.Kind != directory.KindMailbox) {
		return notFound("no HVE account or mailbox with address %s in tenant %s", addr, t.Name)
	}
	q := r.URL.Query()
	d := diagnosis{Address: e.Address, Kind: e.Kind, Auth: access.Basic, FromIP: q.Get("from_ip")}
	// By default, the endpoint the identity belongs on.
	d.Endpoint = directory.EndpointHVE
	if e.Kind == directory.KindMailbox {
		d.Endpoint = directory.EndpointClient
	}
	if v := q.Get("endpoint"); v != "" {
		if d.Endpoint, err = directory.ParseEndpoint(v); err != nil {
			return badRequest("%v", err)
		}
	}
	switch v := access.Method(q.Get("auth")); v {
	case "":
	case access.Basic, access.OAuth:
		d.Auth = v
	default:
		return badRequest("auth %q is not one of basic, oauth", v)
	}
	var ip netip.Addr
	if d.FromIP != "" {
		if ip, err = netip.ParseAddr(d.FromIP); err != nil {
			return badRequest("from_ip %q is not an IP address", d.FromIP)
		}
		ip = ip.Unmap()
		d.FromIP = ip.String()
	}
	if d.App = strings.TrimSpace(q.Get("app")); d.App != "" {
		// Accept the object id too; the checks compare app ids.
		app, err := a.store.App(r.Context(), t.ID, d.App)
		if err == nil {
			d.App = app.AppID
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if a.opts.Diagnoser == nil {
		return unavailable("the sign-in checker")
	}
	res := a.opts.Diagnoser.Check(r.Context(), access.Attempt{
		Endpoint: d.Endpoint, Method: d.Auth, Username: e.Address, ClientIP: ip, Diagnose: true, App: d.App,
	})
	d.OK, d.Reason, d.Steps = res.OK(), res.Reason, nonNil(res.Steps)
	if rep := res.Reply; rep != nil {
		d.Reply = fmt.Sprintf("%d %d.%d.%d %s", rep.Code, rep.EnhancedCode[0], rep.EnhancedCode[1], rep.EnhancedCode[2], rep.Message)
	}
	if e.Kind == directory.KindAccount && d.Endpoint == directory.EndpointHVE {
		step, err := a.limitsStep(r.Context(), t, e.Address)
		if err != nil {
			return err
		}
		d.Steps = append(d.Steps, step)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// limitsStep ends a diagnose with the daily recipient limits in force for
// an account and what it has sent today, so that "why can't it send?" is
// answered after a sign-in that would succeed too. The day's figure comes
// from the usage meter (seconds behind the exact counters).
func (a *API) limitsStep(ctx context.Context, t directory.Tenant, address string) (access.Step, error) {
	acc, err := a.store.AccountByAddress(ctx, address)
	if err != nil {
		return access.Step{}, err
	}
	if a.opts.Usage != nil {
		a.opts.Usage.CatchUp(ctx) // best effort: a stale figure is still useful
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	hours, err := a.store.UsageHours(ctx, store.UsageQuery{TenantID: t.ID, Account: address, Since: day, Until: day.Add(24 * time.Hour)})
	if err != nil {
		return access.Step{}, err
	}
	var sent int64
	for _, h := range hours {
		sent += h.Recipients
	}
	step := access.Step{Check: "daily recipient limits", Verdict: access.Pass}
	var parts []string
	if l := acc.DailyRecipientLimit; l > 0 {
		parts = append(parts, fmt.Sprintf("account limit %d", l))
		if sent >= l {
			step.Verdict = access.Fail
			step.Fix = fmt.Sprintf("hve account set %s --daily-recipient-limit N|none (or wait for 00:00 UTC)", address)
		}
	}
	if l := t.Settings.DailyRecipientLimit; l > 0 {
		parts = append(parts, fmt.Sprintf("tenant limit %d for all accounts", l))
	}
	if len(parts) == 0 {
		parts = append(parts, "no daily recipient limit")
	}
	step.Detail = fmt.Sprintf("%s; %d envelope recipients sent today (UTC, from the usage meter)", strings.Join(parts, ", "), sent)
	if step.Verdict == access.Fail {
		step.Detail += "; further recipients are refused with 452 4.5.3 until 00:00 UTC"
	}
	return step, nil
}

// --- authentication policies ---

func (a *API) listAuthPolicies(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.AuthPolicies(r.Context(), t.ID)
	if err != nil {
		return err
	}
	return writePage(w, r, list, func(p directory.AuthPolicy) string { return p.Name })
}

func (a *API) createAuthPolicy(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Name               string `json:"name"`
		AllowBasicAuthSMTP bool   `json:"allow_basic_auth_smtp"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkName("authentication policy", req.Name); err != nil {
		return err
	}
	p, err := a.store.CreateAuthPolicy(r.Context(), directory.AuthPolicy{TenantID: t.ID, Name: req.Name, AllowBasicAuthSMTP: req.AllowBasicAuthSMTP})
	if err != nil {
		return err
	}
	a.audit(r, t, "auth-policy.create", p.Name)
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (a *API) authPolicy(r *http.Request, t directory.Tenant) (directory.AuthPolicy, error) {
	name := r.PathValue("name")
	p, err := a.store.AuthPolicyByName(r.Context(), t.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return p, notFound("authentication policy %q does not exist in tenant %s; hve auth-policy list shows them", name, t.Name)
	}
	return p, err
}

func (a *API) updateAuthPolicy(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		AllowBasicAuthSMTP *bool `json:"allow_basic_auth_smtp"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	p, err := a.authPolicy(r, t)
	if err != nil {
		return err
	}
	if req.AllowBasicAuthSMTP != nil {
		p.AllowBasicAuthSMTP = *req.AllowBasicAuthSMTP
	}
	if p, err = a.store.UpdateAuthPolicy(r.Context(), p); err != nil {
		return err
	}
	a.audit(r, t, "auth-policy.update", p.Name)
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (a *API) removeAuthPolicy(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	p, err := a.authPolicy(r, t)
	if err != nil {
		return err
	}
	if err := a.store.RemoveAuthPolicy(r.Context(), t.ID, p.Name); err != nil {
		return err
	}
	a.audit(r, t, "auth-policy.remove", p.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- security groups ---

func (a *API) listSecurityGroups(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.SecurityGroups(r.Context(), t.ID)
	if err != nil {
		return err
	}
	for i := range list {
		list[i].Members = nonNil(list[i].Members)
	}
	return writePage(w, r, list, func(g directory.SecurityGroup) string { return g.Name })
}

func (a *API) createSecurityGroup(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkName("security group", req.Name); err != nil {
		return err
	}
	g, err := a.store.CreateSecurityGroup(r.Context(), directory.SecurityGroup{TenantID: t.ID, Name: req.Name})
	if err != nil {
		return err
	}
	g.Members = nonNil(g.Members)
	a.audit(r, t, "security-group.create", g.Name)
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (a *API) securityGroup(ctx context.Context, t directory.Tenant, name string) (directory.SecurityGroup, error) {
	g, err := a.store.SecurityGroupByName(ctx, t.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return g, notFound("security group %q does not exist in tenant %s; hve security-group list shows them", name, t.Name)
	}
	g.Members = nonNil(g.Members)
	return g, err
}

func (a *API) removeSecurityGroup(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	g, err := a.securityGroup(r.Context(), t, r.PathValue("name"))
	if err != nil {
		return err
	}
	// A policy that names a removed group would silently stop applying to
	// its members; make the admin change the policy first.
	policies, err := a.store.CAPolicies(r.Context(), t.ID)
	if err != nil {
		return err
	}
	for _, p := range policies {
		if slices.Contains(p.IncludeGroups, g.Name) || slices.Contains(p.ExcludeGroups, g.Name) {
			return badRequest("security group %q is used by Conditional Access policy %q; change the policy first (hve ca-policy set)", g.Name, p.Name)
		}
	}
	if err := a.store.RemoveSecurityGroup(r.Context(), t.ID, g.Name); err != nil {
		return err
	}
	a.audit(r, t, "security-group.remove", g.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) addSecurityGroupMember(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Address string `json:"address"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	return a.changeSecurityGroupMember(w, r, t, req.Address, true)
}

func (a *API) removeSecurityGroupMember(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	return a.changeSecurityGroupMember(w, r, t, r.PathValue("member"), false)
}

func (a *API) changeSecurityGroupMember(w http.ResponseWriter, r *http.Request, t directory.Tenant, member string, add bool) error {
	g, err := a.securityGroup(r.Context(), t, r.PathValue("name"))
	if err != nil {
		return err
	}
	m, err := directory.NormalizeAddress(member)
	if err != nil {
		return err
	}
	action := "security-group.remove-member"
	if add {
		// As for distribution groups, adding a member twice is a conflict
		// (the store itself would take it silently).
		if e, err := a.store.Lookup(r.Context(), m); err == nil && e.TenantID == t.ID &&
			slices.ContainsFunc(g.Members, func(mem directory.Member) bool { return mem.Kind == e.Kind && mem.Address == e.Address }) {
			return conflict("%s is already a member of security group %q", e.Address, g.Name)
		}
		action = "security-group.add-member"
		err = a.store.AddSecurityGroupMember(r.Context(), t.ID, g.Name, m)
	} else {
		err = a.store.RemoveSecurityGroupMember(r.Context(), t.ID, g.Name, m)
	}
	if err != nil {
		return err
	}
	a.audit(r, t, action, g.Name+" "+m)
	if g, err = a.securityGroup(r.Context(), t, g.Name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

// --- Conditional Access ---

func (a *API) listCAPolicies(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.CAPolicies(r.Context(), t.ID)
	if err != nil {
		return err
	}
	for i := range list {
		caNonNil(&list[i])
	}
	return writePage(w, r, list, func(p directory.CAPolicy) string { return p.Name })
}

// caNonNil makes a policy's empty lists encode as [].
func caNonNil(p *directory.CAPolicy) {
	p.ClientApps = nonNil(p.ClientApps)
	for _, l := range []*[]string{&p.IncludeUsers, &p.ExcludeUsers, &p.IncludeGroups, &p.ExcludeGroups, &p.IncludeNetworks, &p.ExcludeNetworks} {
		*l = nonNil(*l)
	}
}

// caPolicyBody is the body of creating (Name required, the rest optional)
// and of changing (Name absent; only the fields present change) a
// Conditional Access policy. Lists replace the whole list.
type caPolicyBody struct {
	Name            *string                `json:"name"`
	State           *directory.CAState     `json:"state"`
	Grant           *directory.CAGrant     `json:"grant"`
	ClientApps      *[]directory.ClientApp `json:"client_apps"`
	IncludeUsers    *[]string              `json:"include_users"`
	ExcludeUsers    *[]string              `json:"exclude_users"`
	IncludeGroups   *[]string              `json:"include_groups"`
	ExcludeGroups   *[]string              `json:"exclude_groups"`
	IncludeNetworks *[]string              `json:"include_networks"`
	ExcludeNetworks *[]string              `json:"exclude_networks"`
}

// apply changes p by the body and checks the result. Users and groups are
// checked against the directory only in the lists the body gives, so that
// a policy naming a since-removed user can still be switched off.
func (a *API) applyCAPolicy(ctx context.Context, t directory.Tenant, p *directory.CAPolicy, b caPolicyBody) error {
	if b.State != nil {
		p.State = *b.State
	}
	if b.Grant != nil {
		p.Grant = *b.Grant
	}
	if b.ClientApps != nil {
		p.ClientApps = slices.Clone(*b.ClientApps)
	}
	for _, f := range []struct {
		in  *[]string
		out *[]string
	}{{b.IncludeUsers, &p.IncludeUsers}, {b.ExcludeUsers, &p.ExcludeUsers}, {b.IncludeGroups, &p.IncludeGroups},
		{b.ExcludeGroups, &p.ExcludeGroups}, {b.IncludeNetworks, &p.IncludeNetworks}, {b.ExcludeNetworks, &p.ExcludeNetworks}} {
		if f.in != nil {
			*f.out = slices.Clone(*f.in)
		}
	}
	if err := p.Validate(); err != nil {
		return badRequest("%v", err)
	}
	for _, f := range []struct {
		name string
		in   *[]string
		list []string
	}{{"include_users", b.IncludeUsers, p.IncludeUsers}, {"exclude_users", b.ExcludeUsers, p.ExcludeUsers}} {
		if f.in == nil {
			continue
		}
		for i, u := range f.list {
			if u == directory.AllUsers {
				continue
			}
			e, err := a.store.Lookup(ctx, u)
			if err != nil || e.TenantID != t.ID || (e.Kind != directory.KindAccount && e.Kind != directory.KindMailbox) {
				return badRequest("%s: %s is not an HVE account or mailbox of tenant %s", f.name, u, t.Name)
			}
			// Policies match primary addresses; an alias given is mapped.
			f.list[i] = e.Address
		}
	}
	for _, f := range []struct {
		name string
		in   *[]string
		list []string
	}{{"include_groups", b.IncludeGroups, p.IncludeGroups}, {"exclude_groups", b.ExcludeGroups, p.ExcludeGroups}} {
		if f.in == nil {
			continue
		}
		for i, g := range f.list {
			sg, err := a.store.SecurityGroupByName(ctx, t.ID, g)
			if errors.Is(err, store.ErrNotFound) {
				return badRequest("%s: security group %q does not exist in tenant %s; create it with hve security-group create", f.name, g, t.Name)
			}
			if err != nil {
				return err
			}
			f.list[i] = sg.Name
		}
	}
	return nil
}

func (a *API) createCAPolicy(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var b caPolicyBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Name == nil {
		return badRequest("name is required")
	}
	if err := checkName("Conditional Access policy", *b.Name); err != nil {
		return err
	}
	// report-only by default: a new policy never locks anyone out before
	// the admin has seen in diagnose and trace whom it would block.
	p := directory.CAPolicy{TenantID: t.ID, Name: *b.Name, State: directory.CAReportOnly}
	if err := a.applyCAPolicy(r.Context(), t, &p, b); err != nil {
		return err
	}
	p, err := a.store.CreateCAPolicy(r.Context(), p)
	if err != nil {
		return err
	}
	caNonNil(&p)
	a.audit(r, t, "ca-policy.create", p.Name)
	writeJSON(w, http.StatusCreated, p)
	return nil
}

func (a *API) caPolicy(r *http.Request, t directory.Tenant) (directory.CAPolicy, error) {
	name := r.PathValue("name")
	p, err := a.store.CAPolicyByName(r.Context(), t.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return p, notFound("Conditional Access policy %q does not exist in tenant %s; hve ca-policy list shows them", name, t.Name)
	}
	return p, err
}

func (a *API) updateCAPolicy(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var b caPolicyBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Name != nil {
		return badRequest("a policy cannot be renamed; create a new one and remove this one")
	}
	p, err := a.caPolicy(r, t)
	if err != nil {
		return err
	}
	if err := a.applyCAPolicy(r.Context(), t, &p, b); err != nil {
		return err
	}
	if p, err = a.store.UpdateCAPolicy(r.Context(), p); err != nil {
		return err
	}
	caNonNil(&p)
	a.audit(r, t, "ca-policy.update", p.Name)
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (a *API) removeCAPolicy(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	p, err := a.caPolicy(r, t)
	if err != nil {
		return err
	}
	if err := a.store.RemoveCAPolicy(r.Context(), t.ID, p.Name); err != nil {
		return err
	}
	a.audit(r, t, "ca-policy.remove", p.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- app registrations ---

// DefaultSecretExpiry is how long a client secret lives when the request
// does not say.
const DefaultSecretExpiry = "2y"

func appNonNil(app *directory.App) {
	app.Permissions = nonNil(app.Permissions)
	app.Secrets = nonNil(app.Secrets)
}

func (a *API) listApps(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.Apps(r.Context(), t.ID)
	if err != nil {
		return err
	}
	for i := range list {
		appNonNil(&list[i])
	}
	// Names need not be unique: by name, then by id.
	return writePage(w, r, list, func(app directory.App) string { return app.Name + "\x00" + idKey(app.ID) })
}

// appCreated is the reply to app creation: the app and its first client
// secret, shown this once.
type appCreated struct {
	directory.App
	Secret string `json:"secret"`
}

// secretCreated is a new client secret, with its value shown this once.
type secretCreated struct {
	directory.AppSecret
	Secret string `json:"secret"`
}

// newGUID returns a random (version 4) GUID, the form of Entra ID's app and
// object ids.
func newGUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes for an id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// newSecret makes a client secret that expires as expires says, and stores
// it for the app.
func (a *API) newSecret(ctx context.Context, t directory.Tenant, appID, expires string) (secretCreated, error) {
	if expires == "" {
		expires = DefaultSecretExpiry
	}
	now := time.Now().UTC()
	at, err := ParseExpiry(expires, now)
	if err != nil {
		return secretCreated{}, badRequest("%v", err)
	}
	secret, hint, err := oauth.NewSecret()
	if err != nil {
		return secretCreated{}, err
	}
	hash, err := oauth.HashSecret(secret)
	if err != nil {
		return secretCreated{}, err
	}
	s, err := a.store.AddAppSecret(ctx, t.ID, appID, directory.AppSecret{Hint: hint, Hash: hash, ExpiresAt: at, CreatedAt: now})
	if err != nil {
		return secretCreated{}, err
	}
	return secretCreated{AppSecret: s, Secret: secret}, nil
}

func (a *API) createApp(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Name          string `json:"name"`
		SecretExpires string `json:"secret_expires"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Name) == "" {
		return badRequest("name is required")
	}
	// Check the expiry before anything is created.
	if req.SecretExpires != "" {
		if _, err := ParseExpiry(req.SecretExpires, time.Now()); err != nil {
			return badRequest("secret_expires: %v", err)
		}
	}
	app := directory.App{TenantID: t.ID, Name: strings.TrimSpace(req.Name), Permissions: []directory.Permission{}}
	var err error
	if app.AppID, err = newGUID(); err != nil {
		return err
	}
	if app.ObjectID, err = newGUID(); err != nil {
		return err
	}
	if app, err = a.store.CreateApp(r.Context(), app); err != nil {
		return err
	}
	s, err := a.newSecret(r.Context(), t, app.AppID, req.SecretExpires)
	if err != nil {
		return err
	}
	if app, err = a.store.App(r.Context(), t.ID, app.AppID); err != nil {
		return err
	}
	appNonNil(&app)
	a.audit(r, t, "app.create", app.AppID+" "+app.Name)
	writeJSON(w, http.StatusCreated, appCreated{App: app, Secret: s.Secret})
	return nil
}

// app resolves the {app} path segment: an app id, object id or name.
func (a *API) app(r *http.Request, t directory.Tenant) (directory.App, error) {
	ref := r.PathValue("app")
	app, err := a.store.App(r.Context(), t.ID, ref)
	if errors.Is(err, store.ErrNotFound) {
		return app, notFound("%s", unknownApp(ref, t))
	}
	appNonNil(&app)
	return app, err
}

func (a *API) removeApp(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	app, err := a.app(r, t)
	if err != nil {
		return err
	}
	if err := a.store.RemoveApp(r.Context(), t.ID, app.AppID); err != nil {
		return err
	}
	a.audit(r, t, "app.remove", app.AppID+" "+app.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func parsePermission(s string) (directory.Permission, error) {
	if strings.EqualFold(s, string(directory.MailSend)) {
		return directory.MailSend, nil
	}
	return "", badRequest("permission %q is not known; the one permission is %s", s, directory.MailSend)
}

func (a *API) grantPermission(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Permission string `json:"permission"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	p, err := parsePermission(req.Permission)
	if err != nil {
		return err
	}
	app, err := a.app(r, t)
	if err != nil {
		return err
	}
	if app.Has(p) {
		return conflict("app %s already has %s", app.AppID, p)
	}
	app.Permissions = append(app.Permissions, p)
	return a.saveApp(w, r, t, app, "app.grant", string(p))
}

func (a *API) revokePermission(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	p, err := parsePermission(r.PathValue("permission"))
	if err != nil {
		return err
	}
	app, err := a.app(r, t)
	if err != nil {
		return err
	}
	i := slices.Index(app.Permissions, p)
	if i < 0 {
		return notFound("app %s does not have %s", app.AppID, p)
	}
	app.Permissions = slices.Delete(app.Permissions, i, i+1)
	return a.saveApp(w, r, t, app, "app.revoke-grant", string(p))
}

func (a *API) saveApp(w http.ResponseWriter, r *http.Request, t directory.Tenant, app directory.App, action, what string) error {
	app, err := a.store.UpdateApp(r.Context(), app)
	if err != nil {
		return err
	}
	appNonNil(&app)
	a.audit(r, t, action, app.AppID+" "+what)
	writeJSON(w, http.StatusOK, app)
	return nil
}

func (a *API) addSecret(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Expires string `json:"expires"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	app, err := a.app(r, t)
	if err != nil {
		return err
	}
	s, err := a.newSecret(r.Context(), t, app.AppID, req.Expires)
	if err != nil {
		return err
	}
	a.audit(r, t, "app.secret-add", fmt.Sprintf("%s secret %d (%s...)", app.AppID, s.ID, s.Hint))
	writeJSON(w, http.StatusCreated, s)
	return nil
}

func (a *API) removeSecret(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return badRequest("secret id must be a number; hve app list shows the ids")
	}
	app, err := a.app(r, t)
	if err != nil {
		return err
	}
	if err := a.store.RemoveAppSecret(r.Context(), t.ID, app.AppID, id); err != nil {
		return err
	}
	a.audit(r, t, "app.secret-remove", fmt.Sprintf("%s secret %d", app.AppID, id))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- trusted issuers ---

func (a *API) listIssuers(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.Issuers(r.Context(), t.ID)
	if err != nil {
		return err
	}
	return writePage(w, r, list, func(i directory.Issuer) string { return i.URL })
}

func (a *API) addIssuer(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		URL      string `json:"url"`
		Audience string `json:"audience"`
		Role     string `json:"role"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return badRequest("issuer url %q must be an http or https URL without query, such as https://login.example.com/tenant/v2.0", req.URL)
	}
	if strings.TrimSpace(req.Audience) == "" {
		return badRequest("audience is required: the value the issuer's tokens carry in aud for hve")
	}
	if req.Role == "" {
		req.Role = string(directory.MailSend)
	}
	i, err := a.store.CreateIssuer(r.Context(), directory.Issuer{TenantID: t.ID, URL: req.URL, Audience: req.Audience, Role: req.Role})
	if err != nil {
		return err
	}
	a.audit(r, t, "oauth.issuer-add", i.URL)
	writeJSON(w, http.StatusCreated, i)
	return nil
}

func (a *API) removeIssuer(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	u := r.PathValue("url")
	if err := a.store.RemoveIssuer(r.Context(), t.ID, u); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("tenant %s does not trust issuer %q; hve oauth issuer list shows them", t.Name, u)
		}
		return err
	}
	a.audit(r, t, "oauth.issuer-remove", u)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
