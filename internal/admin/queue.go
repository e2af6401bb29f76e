package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
)

// DeliveryWaker is the node's delivery worker, told of a retry or release
// so that it tries at once (next hops it found unreachable too) instead of
// at its next poll.
type DeliveryWaker interface {
	RetryNow()
}

// queueRoutes registers queue control: list a tenant's queued messages,
// and hold, release, retry or delete them.
func (a *API) queueRoutes(t func(string, tenantHandler)) {
	const base = "/api/v1/tenants/{tenant}/queue"
	t("GET "+base, a.listQueue)
	t("POST "+base+"/retry-all", a.retryAll)
	t("GET "+base+"/{id}", a.showQueued)
	t("DELETE "+base+"/{id}", a.deleteQueued)
	t("POST "+base+"/{id}/retry", a.controlQueued(store.QueueRetry))
	t("POST "+base+"/{id}/hold", a.controlQueued(store.QueueHold))
	t("POST "+base+"/{id}/release", a.controlQueued(store.QueueRelease))
}

// queuePage is one page of the queue list.
type queuePage struct {
	Items []store.QueueItem `json:"items"`
	// NextCursor is the cursor of the next page; empty on the last.
	NextCursor string `json:"next_cursor"`
}

func (a *API) listQueue(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	p := r.URL.Query()
	q := store.QueueQuery{TenantID: t.ID, Status: store.QueueStatus(p.Get("status")), After: queue.CleanID(p.Get("cursor")), Limit: 100, Now: time.Now()}
	if q.Status != "" && !slices.Contains(store.QueueStatuses, q.Status) {
		return badRequest("status %q: use held, active, deferred or pending", q.Status)
	}
	if d := p.Get("domain"); d != "" {
		n, err := directory.NormalizeDomain(d)
		if err != nil {
			return badRequest("domain: %v", err)
		}
		q.Domain = n
	}
	if v := p.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit must be a number from 1 to 1000")
		}
		q.Limit = n
	}
	items, err := a.store.QueueItems(r.Context(), q)
	if err != nil {
		return err
	}
	page := queuePage{Items: nonNil(items)}
	if len(items) == q.Limit {
		page.NextCursor = items[len(items)-1].QueueID
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// queued returns one message of the tenant's queue with all its
// recipients.
func (a *API) queued(r *http.Request, t directory.Tenant, id string) (store.QueueItem, error) {
	items, err := a.store.QueueItems(r.Context(), store.QueueQuery{TenantID: t.ID, QueueID: id, Now: time.Now()})
	if err != nil {
		return store.QueueItem{}, err
	}
	if len(items) == 0 {
		return store.QueueItem{}, fmt.Errorf("%w: message %s is not in the queue of tenant %s; hve trace --queue-id %s shows what became of it",
			store.ErrNotFound, id, t.Name, id)
	}
	return items[0], nil
}

func (a *API) showQueued(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	it, err := a.queued(r, t, queue.CleanID(r.PathValue("id")))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, it)
	return nil
}

// actor names the admin making the request, for trace events.
func actor(r *http.Request) string {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		return "unknown"
	}
	if p.Via != "" {
		return p.Name + " (via " + p.Via + ")"
	}
	return p.Name
}

// controlQueued makes the handler of one action on one queued message.
func (a *API) controlQueued(action store.QueueAction) tenantHandler {
	return func(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
		id := queue.CleanID(r.PathValue("id"))
		_, err := a.store.ControlQueue(r.Context(), store.QueueControl{TenantID: t.ID, QueueID: id, Action: action, Actor: actor(r), Now: time.Now()})
		if err != nil {
			return err
		}
		a.audit(r, t, "queue."+string(action), id)
		if action != store.QueueHold {
			a.wakeDelivery()
		}
		it, err := a.queued(r, t, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, it)
		return nil
	}
}

func (a *API) deleteQueued(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	id := queue.CleanID(r.PathValue("id"))
	_, err := a.store.ControlQueue(r.Context(), store.QueueControl{TenantID: t.ID, QueueID: id, Action: store.QueueDelete, Actor: actor(r), Now: time.Now()})
	if err != nil {
		return err
	}
	a.audit(r, t, "queue.delete", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) retryAll(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Domain string `json:"domain"`
	}
	// The body is optional: no body retries the whole queue.
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		return badRequest("request body: %v", err)
	}
	c := store.QueueControl{TenantID: t.ID, All: true, Action: store.QueueRetry, Actor: actor(r), Now: time.Now()}
	object := "*"
	if req.Domain != "" {
		d, err := directory.NormalizeDomain(req.Domain)
		if err != nil {
			return badRequest("domain: %v", err)
		}
		c.Domain, object = d, d
	}
	n, err := a.store.ControlQueue(r.Context(), c)
	if err != nil {
		return err
	}
	a.audit(r, t, "queue.retry-all", object)
	a.wakeDelivery()
	writeJSON(w, http.StatusOK, map[string]int{"retried": n})
	return nil
}

func (a *API) wakeDelivery() {
	if a.opts.Delivery != nil {
		a.opts.Delivery.RetryNow()
	}
}
