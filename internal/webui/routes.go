package webui

import (
	"net/http"
	"net/url"
)

// routes registers every page (GET, at its stable path) and every form
// action (POST).
func (u *UI) routes() {
	u.mux.Handle("GET /static/", http.FileServerFS(staticFS))
	u.mux.HandleFunc("POST /signin", u.signIn)
	// Browsers ask for it on every site; there is none.
	u.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	u.action("/signout", func(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
		u.signOut(w, r, s)
		return "", true, nil
	})

	u.page("/{$}", "home", "Home", "/", u.home)

	u.page("/accounts", "accounts", "HVE accounts", "/accounts", u.accounts)
	u.action("/accounts", u.createAccount)
	u.page("/accounts/{address}", "account", "HVE account", "/accounts", u.account)
	u.action("/accounts/{address}", u.updateAccount)
	u.action("/accounts/{address}/enable", u.enableAccount(true))
	u.action("/accounts/{address}/disable", u.enableAccount(false))
	u.action("/accounts/{address}/revoke-sessions", u.revokeAccount)
	u.action("/accounts/{address}/password", u.accountPassword)
	u.action("/accounts/{address}/allowed-apps", u.allowApp)
	u.action("/accounts/{address}/allowed-apps/{app}/remove", u.disallowApp)
	u.action("/accounts/{address}/remove", u.removeAccount)
	u.page("/accounts/{address}/convert", "convert", "Convert to a mailbox", "/accounts", u.convertPage)
	u.action("/accounts/{address}/convert", u.convertAccount)
	u.page("/accounts/{address}/diagnose", "diagnose", "Diagnose", "/accounts", u.diagnose)

	u.page("/mailboxes", "mailboxes", "Mailboxes", "/mailboxes", u.mailboxes)
	u.action("/mailboxes", u.createMailbox)
	u.page("/mailboxes/{address}", "mailbox", "Mailbox", "/mailboxes", u.mailbox)
	u.action("/mailboxes/{address}", u.updateMailbox)
	u.action("/mailboxes/{address}/password", u.mailboxPassword)
	u.action("/mailboxes/{address}/revoke-sessions", u.simple("POST", "/mailboxes/{address}/revoke-sessions", "Sessions of {address} revoked."))
	u.action("/mailboxes/{address}/remove", u.simple("DELETE", "/mailboxes/{address}", "Mailbox {address} removed."))

	u.page("/groups", "groups", "Groups", "/groups", u.groups)
	u.action("/groups", u.createGroup)
	u.action("/groups/{address}/members", u.addGroupMember)
	u.action("/groups/{address}/members/{member}/remove", u.simple("DELETE", "/groups/{address}/members/{member}", "{member} removed from {address}."))
	u.action("/groups/{address}/remove", u.simple("DELETE", "/groups/{address}", "Group {address} removed."))

	u.page("/domains", "domains", "Accepted domains", "/domains", u.domains)
	u.action("/domains", u.addDomain)
	u.action("/domains/{name}/remove", u.simple("DELETE", "/domains/{name}", "Domain {name} removed."))

	u.page("/routes", "routes", "Routes", "/routes", u.routesPage)
	u.action("/routes", u.setRoute)
	u.action("/routes/{domain}/remove", u.simple("DELETE", "/routes/{domain}", "Route of {domain} removed."))

	u.page("/policies", "policies", "Authentication policies", "/policies", u.policies)
	u.page("/settings", "settings", "Tenant settings", "/settings", u.settings)
	u.action("/settings", u.updateTenant)
	u.action("/policies/auth", u.createAuthPolicy)
	u.action("/policies/auth/{name}", u.updateAuthPolicy)
	u.action("/policies/auth/{name}/remove", u.simple("DELETE", "/auth-policies/{name}", "Authentication policy {name} removed."))

	u.page("/conditional-access", "ca", "Conditional Access", "/conditional-access", u.caPolicies)
	u.action("/conditional-access", u.saveCAPolicy(true))
	u.page("/conditional-access/{name}", "ca-edit", "Conditional Access policy", "/conditional-access", u.caPolicy)
	u.action("/conditional-access/{name}", u.saveCAPolicy(false))
	u.action("/conditional-access/{name}/remove", u.simple("DELETE", "/ca-policies/{name}", "Policy {name} removed."))
	u.action("/security-groups", u.createSecurityGroup)
	u.action("/security-groups/{name}/members", u.addSecurityGroupMember)
	u.action("/security-groups/{name}/members/{member}/remove", u.simple("DELETE", "/security-groups/{name}/members/{member}", "{member} removed from {name}."))
	u.action("/security-groups/{name}/remove", u.simple("DELETE", "/security-groups/{name}", "Security group {name} removed."))

	u.page("/apps", "apps", "App registrations", "/apps", u.apps)
	u.action("/apps", u.createApp)
	u.action("/apps/{app}/grant", u.grantApp)
	u.action("/apps/{app}/revoke-grant", u.simple("DELETE", "/apps/{app}/permissions/Mail.Send", "Mail.Send revoked."))
	u.action("/apps/{app}/secrets", u.addSecret)
	u.action("/apps/{app}/secrets/{id}/remove", u.simple("DELETE", "/apps/{app}/secrets/{id}", "Secret {id} removed."))
	u.action("/apps/issuers", u.addIssuer)
	u.action("/apps/issuers/remove", u.removeIssuer)
	u.action("/apps/rotate-key", u.rotateKey)
	u.action("/apps/{app}/remove", u.simple("DELETE", "/apps/{app}", "App removed."))

	u.page("/trace", "trace", "Message trace", "/trace", u.trace)
	u.page("/trace/{queue_id}", "timeline", "Message", "/trace", u.timeline)
	u.mux.HandleFunc("GET /trace.csv", u.exportTrace)

	u.page("/reports", "reports", "Reports", "/reports", u.reports)
	u.action("/reports", u.requestReport)
	u.page("/reports/{id}", "report", "Detailed report", "/reports", u.reportStatus)
	u.mux.HandleFunc("GET /reports/{id}/download", u.downloadReport)
	u.mux.HandleFunc("GET /reports/usage.csv", u.usageCSV)
	u.mux.HandleFunc("GET /reports/go", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/reports/"+url.PathEscape(r.FormValue("id"))+"?tenant="+url.QueryEscape(r.FormValue("tenant")), http.StatusSeeOther)
	})

	u.page("/webhooks", "webhooks", "Webhooks", "/webhooks", u.webhooks)
	u.action("/webhooks", u.createWebhook)
	u.action("/webhooks/{id}/remove", u.simple("DELETE", "/webhooks/{id}", "Webhook {id} removed."))

	u.page("/queue", "queue", "Queue", "/queue", u.queue)
	u.action("/queue/retry-all", u.retryAll)
	u.action("/queue/{id}/{verb}", u.queueAction)

	u.page("/audit", "audit", "Audit log", "/audit", u.audit)

	u.page("/admins", "admins", "Admins and API tokens", "/admins", u.admins)
	u.action("/admins", u.createAdmin)
	u.action("/admins/{name}/enable", u.enableAdmin(true))
	u.action("/admins/{name}/disable", u.enableAdmin(false))
	u.action("/admins/{name}/remove", u.removeAdmin)
	u.action("/tokens", u.createToken)
	u.action("/tokens/{id}/remove", u.removeToken)

	u.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := u.session(r)
		if s == nil {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		v, err := u.newView(w, r, s, "Not found", "")
		if err != nil {
			u.fail(w, r, err)
			return
		}
		v.Flash.Err = "There is no page at " + r.URL.Path + "."
		u.render(w, http.StatusNotFound, "error", v)
	})
}
