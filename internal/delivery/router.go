package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// routeTable answers which route a tenant's domain takes, and what an
// address or a domain is in the directory. It reads each tenant's routes,
// each address and each domain once per delivery pass (a pass's messages
// often share recipients and domains), so a change applies from the next
// pass on.
type routeTable struct {
	store    Store
	byTenant map[int64][]directory.Route
	entries  map[string]answer[directory.Entry]
	domains  map[string]answer[directory.Domain]
}

// answer is a directory read remembered for a pass: the value, or
// ErrNotFound.
type answer[T any] struct {
	v   T
	err error
}

func newRouteTable(s Store) *routeTable {
	return &routeTable{store: s, byTenant: map[int64][]directory.Route{},
		entries: map[string]answer[directory.Entry]{}, domains: map[string]answer[directory.Domain]{}}
}

// remember answers key from seen, else reads it with read and keeps the
// answer: a value or ErrNotFound (other errors are not kept, so the next
// message asks again).
func remember[T any](ctx context.Context, seen map[string]answer[T], key string, read func(context.Context, string) (T, error)) (T, error) {
	if a, ok := seen[key]; ok {
		return a.v, a.err
	}
	v, err := read(ctx, key)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		seen[key] = answer[T]{v, err}
	}
	return v, err
}

// lookup is the store's Lookup, remembered for the pass.
func (t *routeTable) lookup(ctx context.Context, address string) (directory.Entry, error) {
	return remember(ctx, t.entries, address, t.store.Lookup)
}

// domain is the store's DomainByName, remembered for the pass.
func (t *routeTable) domain(ctx context.Context, name string) (directory.Domain, error) {
	return remember(ctx, t.domains, name, t.store.DomainByName)
}

// route returns the domain's own route, else the tenant's default route,
// else local delivery.
func (t *routeTable) route(ctx context.Context, tenantID int64, domain string) (directory.Route, error) {
	routes, ok := t.byTenant[tenantID]
	if !ok {
		var err error
		if routes, err = t.store.Routes(ctx, tenantID); err != nil {
			return directory.Route{}, fmt.Errorf("reading routes: %w", err)
		}
		t.byTenant[tenantID] = routes
	}
	var def *directory.Route
	for i, r := range routes {
		switch r.Domain {
		case domain:
			return r, nil
		case directory.DefaultRouteDomain:
			def = &routes[i]
		}
	}
	if def != nil {
		return *def, nil
	}
	return directory.Route{TenantID: tenantID, Domain: directory.DefaultRouteDomain, Type: directory.RouteLocal, TLS: directory.TLSNone}, nil
}

// row is one recipient of a message in this pass: its queue state and
// what became of it.
type row struct {
	rcpt queue.Recipient
	// changed rows are written back when the pass records the message.
	changed bool
	// sameAs points to the row that reaches the same person (an alias and
	// the primary address, or a direct recipient also in a group): this
	// row takes its outcome and causes no delivery of its own.
	sameAs *row
}

// job is one relay transaction: a message to one next hop, for every
// recipient of the message that the next hop serves.
type job struct {
	route directory.Route
	rows  []*row
}

// plan is what one pass does with one message: local copies and events,
// recipient states, and relay transactions still to run.
type plan struct {
	m        *queue.Message
	delivery store.Delivery
	rows     []*row
	jobs     []*job
	// seen maps each mailbox reached so far to the row that handled it
	// (a row of its own, or a stand-in for a local copy of a group
	// member), so that each person gets one copy.
	seen map[int64]*row
	// relayed maps addresses without a mailbox given to a next hop.
	relayed map[string]*row
}

// event adds a trace event for rcpt.
func (p *plan) event(w *Worker, rcpt, name, status, detail string) {
	m := p.m
	p.delivery.Events = append(p.delivery.Events, trace.Event{
		TenantID: m.TenantID, Time: w.now().UTC(), QueueID: m.QueueID, MessageID: m.MessageID, Sender: m.Sender,
		Recipient: rcpt, Event: name, Status: status, Detail: detail, ClientIP: m.ClientIP, Subject: m.Subject, Size: m.Size,
	})
}

// settle gives r a final state with reply as its last reply.
func (p *plan) settle(w *Worker, r *row, state queue.RecipientState, reply string) {
	r.rcpt.State, r.rcpt.LastReply, r.rcpt.NextAttemptAt = state, reply, w.now()
	r.rcpt.Attempts++
	r.rcpt.UpdatedAt = w.now()
	r.changed = true
}

// fail ends r with a Failed event.
func (p *plan) fail(w *Worker, r *row, reason string) {
	p.settle(w, r, queue.RecipientFailed, reason)
	p.event(w, r.rcpt.Address, trace.EventFailed, trace.StatusFailed, reason)
}

// relay adds r to the transaction for route.
func (p *plan) relay(r *row, route directory.Route) {
	key := destinationKey(route)
	for _, j := range p.jobs {
		if destinationKey(j.route) == key {
			j.rows = append(j.rows, r)
			return
		}
	}
	p.jobs = append(p.jobs, &job{route: route, rows: []*row{r}})
}

// deliverLocal puts a copy into a mailbox of the embedded store and records
// it, and settles r (nil for a group member, which has no row) as
// delivered.
func (p *plan) deliverLocal(w *Worker, r *row, mb directory.Member, via string) {
	p.delivery.Copies = append(p.delivery.Copies, store.MailboxCopy{MailboxID: mb.ID, Recipient: mb.Address})
	detail := "delivered to mailbox " + mb.Address
	if via != "" {
		detail += " (member of " + via + ")"
	}
	p.event(w, mb.Address, trace.EventDelivered, trace.StatusDelivered, detail)
	if r != nil {
		p.settle(w, r, queue.RecipientDelivered, detail)
	}
}

// resolve decides what happens to one due recipient: a local copy, a
// place in a relay transaction, group expansion, or failure. It returns an
// error only when the directory or the routes could not be read (the
// message is then tried again).
func (w *Worker) resolve(ctx context.Context, p *plan, r *row, routes *routeTable) error {
	m := p.m
	addr := r.rcpt.Address
	entry, err := routes.lookup(ctx, addr)
	if errors.Is(err, store.ErrNotFound) || err == nil && entry.TenantID != m.TenantID {
		return w.resolveUnknown(ctx, p, r, routes)
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", addr, err)
	}
	switch entry.Kind {
	case directory.KindMailbox:
		if first := p.seen[entry.ID]; first != nil {
			r.sameAs = first
			return nil
		}
		p.seen[entry.ID] = r
		route, err := routes.route(ctx, m.TenantID, directory.DomainOf(addr))
		if err != nil {
			return err
		}
		if route.IsRelay() {
			p.relay(r, route)
			return nil
		}
		p.deliverLocal(w, r, directory.Member{Kind: entry.Kind, ID: entry.ID, Address: entry.Address}, r.rcpt.Via)
	case directory.KindGroup:
		members, nested, err := w.expand(ctx, m.TenantID, entry.ID)
		if err != nil {
			return err
		}
		detail := fmt.Sprintf("expanded to %d mailbox%s", len(members), plural(len(members), "es"))
		if len(nested) > 0 {
			detail += " through nested groups " + strings.Join(nested, ", ")
		}
		p.event(w, entry.Address, trace.EventExpanded, trace.StatusExpanded, detail)
		p.settle(w, r, queue.RecipientExpanded, detail)
		for _, mb := range members {
			if p.seen[mb.ID] != nil {
				continue
			}
			route, err := routes.route(ctx, m.TenantID, directory.DomainOf(mb.Address))
			if err != nil {
				return err
			}
			if !route.IsRelay() {
				p.seen[mb.ID] = &row{rcpt: queue.Recipient{State: queue.RecipientDelivered, LastReply: "delivered to mailbox " + mb.Address}}
				p.deliverLocal(w, nil, mb, entry.Address)
				continue
			}
			// A member delivered by a next hop gets a state of its own,
			// so that a retry goes to it alone.
			member := &row{rcpt: queue.Recipient{Address: mb.Address, Via: entry.Address, State: queue.RecipientPending}, changed: true}
			p.rows = append(p.rows, member)
			p.seen[mb.ID] = member
			p.relay(member, route)
		}
	default:
		p.fail(w, r, "recipient is an HVE account; HVE accounts cannot receive mail")
	}
	return nil
}

// resolveUnknown handles an address with no mailbox or group: an
// internal-relay domain passes it to the domain's next hop; otherwise it
// has gone since it was accepted.
func (w *Worker) resolveUnknown(ctx context.Context, p *plan, r *row, routes *routeTable) error {
	addr := r.rcpt.Address
	dom, err := routes.domain(ctx, directory.DomainOf(addr))
	if errors.Is(err, store.ErrNotFound) || err == nil && dom.TenantID != p.m.TenantID {
		// Outside the tenant's accepted domains (another tenant's count as
		// outside: tenants never learn of each other). Submission accepts
		// such recipients only in the external "limited" mode, and they
		// leave through the tenant's outbound smarthost.
		return w.relayExternal(ctx, p, r)
	}
	if err != nil {
		return fmt.Errorf("looking up domain of %s: %w", addr, err)
	}
	if dom.Type != directory.InternalRelay {
		p.fail(w, r, "the recipient no longer exists in the directory")
		return nil
	}
	route, err := routes.route(ctx, p.m.TenantID, dom.Name)
	if err != nil {
		return err
	}
	if !route.IsRelay() {
		p.fail(w, r, "no mailbox in the embedded store and no next hop is configured for internal-relay domain "+dom.Name+
			" (its route is local); set one with: hve route set "+dom.Name+" --type smtp|lmtp --target HOST:PORT")
		return nil
	}
	if first := p.relayed[addr]; first != nil {
		r.sameAs = first
		return nil
	}
	p.relayed[addr] = r
	p.relay(r, route)
	return nil
}

// relayExternal sends a recipient outside the tenant's accepted domains to
// the tenant's outbound smarthost, read at delivery time so that turning
// external sending off stops mail still in the queue.
func (w *Worker) relayExternal(ctx context.Context, p *plan, r *row) error {
	t, err := w.store.Tenant(ctx, p.m.TenantID)
	if err != nil {
		return fmt.Errorf("reading tenant %d: %w", p.m.TenantID, err)
	}
	if !t.Settings.ExternalLimitedMode() || t.Settings.OutboundSmarthost == "" {
		p.fail(w, r, "the recipient's domain is no longer an accepted domain of the tenant, and external sending is off or has no outbound smarthost "+
			"(hve tenant set --external-sending limited --outbound-smarthost HOST:PORT)")
		return nil
	}
	addr := r.rcpt.Address
	if first := p.relayed[addr]; first != nil {
		r.sameAs = first
		return nil
	}
	p.relayed[addr] = r
	p.relay(r, directory.Route{TenantID: t.ID, Domain: "(outbound smarthost)", Type: directory.RouteSMTP,
		Target: t.Settings.OutboundSmarthost, TLS: directory.TLSOpportunistic, MaxConnections: 10})
	return nil
}

// expand returns the mailboxes a group reaches through any depth of nested
// groups, each once, and the nested groups it passed through. Each group is
// visited once, so membership loops end.
func (w *Worker) expand(ctx context.Context, tenantID, groupID int64) (mailboxes []directory.Member, nested []string, err error) {
	visited := map[int64]bool{groupID: true}
	seen := map[int64]bool{}
	todo := []int64{groupID}
	for len(todo) > 0 {
		id := todo[0]
		todo = todo[1:]
		g, err := w.store.Group(ctx, tenantID, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed since it was listed as a member
		}
		if err != nil {
			return nil, nil, fmt.Errorf("expanding group %d: %w", id, err)
		}
		for _, mem := range g.Members {
			switch {
			case mem.Kind == directory.KindGroup && !visited[mem.ID]:
				visited[mem.ID] = true
				nested = append(nested, mem.Address)
				todo = append(todo, mem.ID)
			case mem.Kind == directory.KindMailbox && !seen[mem.ID]:
				seen[mem.ID] = true
				mailboxes = append(mailboxes, mem)
			}
		}
	}
	return mailboxes, nested, nil
}

// plural returns suffix unless n is 1.
func plural(n int, suffix string) string {
	if n == 1 {
		return ""
	}
	return suffix
}
