package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"hve/internal/directory"
	"hve/internal/store"
	"hve/internal/webhook"
)

// webhookRoutes registers a tenant's webhooks: signed JSON POSTs of
// delivery events and alerts (docs/webhooks.md).
func (a *API) webhookRoutes(t func(string, tenantHandler)) {
	const base = "/api/v1/tenants/{tenant}/webhooks"
	t("GET "+base, a.listWebhooks)
	t("POST "+base, a.createWebhook)
	t("DELETE "+base+"/{id}", a.removeWebhook)
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.Webhooks(r.Context(), t.ID)
	if err != nil {
		return err
	}
	// Secrets stay in the store: store.Webhook never encodes them.
	return writePage(w, r, list, func(h store.Webhook) string { return idKey(h.ID) })
}

// webhookCreated is the reply to webhook creation: the webhook, and the
// secret when the server generated it (shown this once, never again).
type webhookCreated struct {
	store.Webhook
	Secret string `json:"secret,omitempty"`
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		URL string `json:"url"`
		// Secret left out is generated and shown once.
		Secret string `json:"secret"`
		// Events left out (or empty) subscribes to every event.
		Events []string `json:"events"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	url, err := webhook.CheckURL(req.URL)
	if err != nil {
		return badRequest("url: %v", err)
	}
	events, err := webhook.ParseEvents(req.Events)
	if err != nil {
		return badRequest("events: %v", err)
	}
	generated := ""
	if req.Secret == "" {
		generated = webhook.NewSecret()
		req.Secret = generated
	}
	if len(req.Secret) < webhook.MinSecretLength || strings.TrimSpace(req.Secret) != req.Secret {
		return badRequest("secret: at least %d characters, without spaces at either end (or leave it out to have one generated)", webhook.MinSecretLength)
	}
	hook, err := a.store.CreateWebhook(r.Context(), store.Webhook{TenantID: t.ID, URL: url, Secret: req.Secret, Events: events})
	if err != nil {
		return err
	}
	a.audit(r, t, "webhook.create", fmt.Sprintf("%d %s %s", hook.ID, hook.URL, strings.Join(hook.Events, ",")))
	writeJSON(w, http.StatusCreated, webhookCreated{Webhook: hook, Secret: generated})
	return nil
}

func (a *API) removeWebhook(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return badRequest("webhook id must be a number (see GET .../webhooks)")
	}
	if err := a.store.RemoveWebhook(r.Context(), t.ID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: tenant %s has no webhook %d", store.ErrNotFound, t.Name, id)
		}
		return err
	}
	a.audit(r, t, "webhook.remove", strconv.FormatInt(id, 10))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reportAddress checks an account's failure report address: a mailbox or
// distribution group of the tenant, or "" (or "none") for no reports. An
// alias names its owner's primary address.
func (a *API) reportAddress(ctx context.Context, t directory.Tenant, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || strings.EqualFold(raw, "none") {
		return "", nil
	}
	addr, err := directory.NormalizeAddress(raw)
	if err != nil {
		return "", badRequest("failure_report_to: %v", err)
	}
	e, err := a.store.Lookup(ctx, addr)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	if err != nil || e.TenantID != t.ID || (e.Kind != directory.KindMailbox && e.Kind != directory.KindGroup) {
		return "", badRequest("failure_report_to: %s is not a mailbox or distribution group of tenant %s; reports go to internal addresses only", addr, t.Name)
	}
	return e.Address, nil
}
