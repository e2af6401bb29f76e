package storetest

// Contract tests of delivery: routes, and the per-recipient queue state
// that retries rely on.

import (
	"context"
	"slices"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
)

func testRoutes(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "a", "a.example", "b.example")
	b := newTenant(t, s, "b", "other.example")
	if list := must(t, of(s.Routes(ctx, a.ID))); list == nil || len(list) != 0 {
		t.Fatalf("Routes of a new tenant = %#v, want an empty list", list)
	}

	smtpRoute := must(t, of(s.SetRoute(ctx, directory.Route{TenantID: a.ID, Domain: "A.example", Type: directory.RouteSMTP,
		Target: "mx.a.example:25", AuthUser: "hve", AuthPassword: "s3cret pass", TLS: directory.TLSRequired})))
	if smtpRoute.Domain != "a.example" || smtpRoute.MaxConnections != directory.DefaultMaxConnections || !smtpRoute.AuthPasswordSet ||
		smtpRoute.UpdatedAt.IsZero() {
		t.Errorf("SetRoute = %+v; want the domain in lower case, the default connection limit, a password and a time", smtpRoute)
	}
	must(t, of(s.SetRoute(ctx, directory.Route{TenantID: a.ID, Domain: "*", Type: directory.RouteLMTP, Target: "unix:/run/dovecot/lmtp"})))
	// A domain not accepted (yet) may have a route: a configuration file
	// can name it before the admin adds the domain.
	must(t, of(s.SetRoute(ctx, directory.Route{TenantID: a.ID, Domain: "later.example", Type: directory.RouteLocal})))

	list := must(t, of(s.Routes(ctx, a.ID)))
	var domains []string
	for _, r := range list {
		domains = append(domains, r.Domain)
	}
	if !slices.Equal(domains, []string{"*", "a.example", "later.example"}) {
		t.Fatalf("Routes = %v, want *, a.example, later.example", domains)
	}
	if r := list[1]; r.Type != directory.RouteSMTP || r.Target != "mx.a.example:25" || r.TLS != directory.TLSRequired || r.AuthUser != "hve" ||
		r.AuthPassword != "s3cret pass" || !r.AuthPasswordSet || r.MaxConnections != directory.DefaultMaxConnections || r.TenantID != a.ID {
		t.Errorf("stored smtp route = %+v; want every field, the password included (delivery needs it)", r)
	}
	if r := list[0]; r.Type != directory.RouteLMTP || r.TLS != directory.TLSNone || r.AuthPasswordSet {
		t.Errorf("stored default route = %+v; want lmtp without TLS (a unix socket) and no password", r)
	}

	// Setting a route again replaces it.
	must(t, of(s.SetRoute(ctx, directory.Route{TenantID: a.ID, Domain: "a.example", Type: directory.RouteSMTP, Target: "relay.a.example:2525",
		MaxConnections: 3})))
	list = must(t, of(s.Routes(ctx, a.ID)))
	if len(list) != 3 || list[1].Target != "relay.a.example:2525" || list[1].MaxConnections != 3 || list[1].AuthUser != "" ||
		list[1].AuthPassword != "" || list[1].TLS != directory.TLSOpportunistic {
		t.Errorf("after replacing the route of a.example: %+v", list)
	}

	for _, bad := range []directory.Route{
		{TenantID: a.ID, Domain: "other.example", Type: directory.RouteSMTP, Target: "mx:25"}, // another tenant's domain
		{TenantID: a.ID, Domain: "b.example", Type: "pigeon"},
		{TenantID: a.ID, Domain: "b.example", Type: directory.RouteSMTP},
		{TenantID: a.ID, Domain: "b.example", Type: directory.RouteSMTP, Target: "mx.b.example"},
		{TenantID: a.ID, Domain: "b.example", Type: directory.RouteSMTP, Target: "unix:/run/x"},
		{TenantID: a.ID, Domain: "b.example", Type: directory.RouteSMTP, Target: "mx.b.example:25", AuthUser: "u"},
		{TenantID: a.ID, Domain: "b.example", Type: directory.RouteSMTP, Target: "mx.b.example:25", AuthUser: "u", AuthPassword: "p", TLS: directory.TLSNone},
		{TenantID: a.ID, Domain: "b.example", Type: directory.RouteLocal, Target: "mx.b.example:25"},
		{TenantID: a.ID, Domain: "b.example", Type: directory.RouteLMTP, Target: "unix:/run/lmtp", TLS: directory.TLSRequired},
		{TenantID: a.ID, Domain: "b.example", Type: directory.RouteSMTP, Target: "mx.b.example:25", MaxConnections: -1},
		{TenantID: a.ID, Domain: "not a domain", Type: directory.RouteLocal},
	} {
		_, err := s.SetRoute(ctx, bad)
		wantErr(t, err, store.ErrInvalid, "SetRoute of "+bad.Domain+" "+string(bad.Type)+" "+bad.Target)
	}
	if n := len(must(t, of(s.Routes(ctx, a.ID)))); n != 3 {
		t.Errorf("refused routes changed the list: %d routes, want 3", n)
	}

	// Tenants never see each other's routes.
	if list := must(t, of(s.Routes(ctx, b.ID))); len(list) != 0 {
		t.Errorf("tenant b sees routes %+v", list)
	}
	wantErr(t, s.RemoveRoute(ctx, b.ID, "a.example"), store.ErrNotFound, "RemoveRoute of another tenant's route")

	check(t, s.RemoveRoute(ctx, a.ID, "*"))
	wantErr(t, s.RemoveRoute(ctx, a.ID, "*"), store.ErrNotFound, "RemoveRoute of a removed route")
	if list := must(t, of(s.Routes(ctx, a.ID))); len(list) != 2 || list[0].Domain != "a.example" {
		t.Errorf("Routes after removing * = %+v", list)
	}
}

// rcptStates maps each recipient of a message to its state.
func rcptStates(t *testing.T, s store.Store, queueID string) map[string]queue.Recipient {
	t.Helper()
	out := map[string]queue.Recipient{}
	for _, r := range must(t, of(s.QueueRecipients(t.Context(), queueID))) {
		out[r.Address] = r
	}
	return out
}

func dueAddrs(m *queue.Message) []string {
	var out []string
	for _, r := range m.Due {
		out = append(out, r.Address)
	}
	return out
}

// testRecipientStates: every recipient has its own state; a message is
// claimed when its earliest open recipient is due, with only the due ones;
// final states never change; the message leaves the queue with its last
// open recipient.
func testRecipientStates(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	t0 := baseTime()
	m := newMessage(ten.ID, acc.ID, 1, t0)
	m.Recipients = []string{"a@a.example", "b@a.example", "c@a.example", "a@a.example"}
	check(t, s.Enqueue(ctx, []*queue.Message{m}, nil))

	list := must(t, of(s.QueueRecipients(ctx, m.QueueID)))
	var addrs []string
	for _, r := range list {
		addrs = append(addrs, r.Address)
		if r.State != queue.RecipientPending || r.Attempts != 0 || r.Via != "" || !r.NextAttemptAt.Equal(t0) {
			t.Errorf("new recipient %+v; want pending, no attempts, due at %v", r, t0)
		}
	}
	if !slices.Equal(addrs, []string{"a@a.example", "b@a.example", "c@a.example"}) {
		t.Errorf("QueueRecipients = %v, want each envelope recipient once, in order", addrs)
	}
	_, err := s.QueueRecipients(ctx, "NOSUCHQUEUEID0000000")
	wantErr(t, err, store.ErrNotFound, "QueueRecipients of an unknown queue id")

	now := t0.Add(time.Minute)
	claim := func(owner string, at time.Time) []*queue.Message {
		t.Helper()
		return must(t, of(s.Claim(ctx, owner, at, 10, time.Minute)))
	}
	got := claim("w1", now)
	if len(got) != 1 || !slices.Equal(dueAddrs(got[0]), addrs) {
		t.Fatalf("first Claim = %v, want the message with every recipient due", got)
	}

	// a is delivered, b and c deferred, and a group member d is added for
	// a next hop.
	rec := func(addr string, state queue.RecipientState, next time.Time, reply string) queue.Recipient {
		return queue.Recipient{Address: addr, State: state, Attempts: 1, NextAttemptAt: next, LastReply: reply, UpdatedAt: now}
	}
	check(t, s.Finish(ctx, []store.Delivery{{QueueID: m.QueueID, Recipients: []queue.Recipient{
		rec("a@a.example", queue.RecipientDelivered, now, "250 2.0.0 Ok"),
		rec("b@a.example", queue.RecipientDeferred, now.Add(10*time.Minute), "451 4.3.0 try later"),
		rec("c@a.example", queue.RecipientDeferred, now.Add(5*time.Minute), "421 4.4.2 timeout"),
		{Address: "d@a.example", Via: "team@a.example", State: queue.RecipientDeferred, Attempts: 1, NextAttemptAt: now.Add(20 * time.Minute), LastReply: "450 busy"},
	}}}))
	if n := must(t, of(s.QueueDepth(ctx))); n != 1 {
		t.Errorf("QueueDepth with open recipients = %d, want 1", n)
	}
	st := rcptStates(t, s, m.QueueID)
	if b := st["b@a.example"]; b.State != queue.RecipientDeferred || b.Attempts != 1 || !b.NextAttemptAt.Equal(now.Add(10*time.Minute)) ||
		b.LastReply != "451 4.3.0 try later" || !b.UpdatedAt.Equal(now) {
		t.Errorf("deferred recipient = %+v", b)
	}
	if d := st["d@a.example"]; d.Via != "team@a.example" || d.State != queue.RecipientDeferred {
		t.Errorf("added group member = %+v; want it deferred, via team@a.example", d)
	}
	if got := must(t, of(s.QueueRecipients(ctx, m.QueueID))); len(got) != 4 || got[3].Address != "d@a.example" {
		t.Errorf("QueueRecipients = %+v; want the added member last", got)
	}

	// Finish ended the lease, but nothing is due before c's next attempt.
	if got := claim("w2", now.Add(time.Minute)); len(got) != 0 {
		t.Errorf("Claim before any recipient is due = %v", queueIDs(got))
	}
	got = claim("w2", now.Add(5*time.Minute))
	if len(got) != 1 || !slices.Equal(dueAddrs(got[0]), []string{"c@a.example"}) {
		t.Fatalf("Claim when c is due = %+v, want only c due", got)
	}
	if c := got[0].Due[0]; c.Attempts != 1 || c.LastReply != "421 4.4.2 timeout" || c.State != queue.RecipientDeferred {
		t.Errorf("claimed recipient = %+v; want its state as recorded", c)
	}
	// A lease not ended by Finish expires; then another owner gets the
	// same recipients (a dead node's work is picked up).
	got = claim("w3", now.Add(7*time.Minute))
	if len(got) != 1 || !slices.Equal(dueAddrs(got[0]), []string{"c@a.example"}) {
		t.Fatalf("Claim after the lease expired = %+v, want c again", got)
	}
	check(t, s.Finish(ctx, []store.Delivery{{QueueID: m.QueueID, Recipients: []queue.Recipient{
		rec("c@a.example", queue.RecipientFailed, now, "550 5.1.1 no such user"),
		// Final is final: a late Finish cannot make a delivered recipient
		// due again.
		rec("a@a.example", queue.RecipientDeferred, now, "451 late"),
	}}}))
	if a := rcptStates(t, s, m.QueueID)["a@a.example"]; a.State != queue.RecipientDelivered || a.LastReply != "250 2.0.0 Ok" {
		t.Errorf("a delivered recipient after a late deferral = %+v; want it delivered still", a)
	}
	got = claim("w4", now.Add(10*time.Minute))
	if len(got) != 1 || !slices.Equal(dueAddrs(got[0]), []string{"b@a.example"}) {
		t.Fatalf("Claim when b is due = %+v, want only b", got)
	}
	check(t, s.Finish(ctx, []store.Delivery{{QueueID: m.QueueID, Recipients: []queue.Recipient{rec("b@a.example", queue.RecipientDelivered, now, "250 ok")}}}))
	if n := must(t, of(s.QueueDepth(ctx))); n != 1 {
		t.Errorf("QueueDepth with d still open = %d, want 1", n)
	}
	got = claim("w5", now.Add(20*time.Minute))
	if len(got) != 1 || !slices.Equal(dueAddrs(got[0]), []string{"d@a.example"}) || got[0].Due[0].Via != "team@a.example" {
		t.Fatalf("Claim when d is due = %+v, want only d, via its group", got)
	}
	check(t, s.Finish(ctx, []store.Delivery{{QueueID: m.QueueID, Recipients: []queue.Recipient{
		{Address: "d@a.example", Via: "team@a.example", State: queue.RecipientDelivered, Attempts: 2, NextAttemptAt: now, LastReply: "250 ok"}}}}))
	if n := must(t, of(s.QueueDepth(ctx))); n != 0 {
		t.Errorf("QueueDepth once no recipient is open = %d, want 0", n)
	}
	if got := claim("w6", now.Add(48*time.Hour)); len(got) != 0 {
		t.Errorf("a finished message was claimed: %v", queueIDs(got))
	}
	want := map[string]queue.RecipientState{"a@a.example": queue.RecipientDelivered, "b@a.example": queue.RecipientDelivered,
		"c@a.example": queue.RecipientFailed, "d@a.example": queue.RecipientDelivered}
	for addr, r := range rcptStates(t, s, m.QueueID) {
		if r.State != want[addr] {
			t.Errorf("final state of %s = %s, want %s", addr, r.State, want[addr])
		}
	}
	if d := rcptStates(t, s, m.QueueID)["d@a.example"]; d.Attempts != 2 || d.Via != "team@a.example" {
		t.Errorf("d after its second attempt = %+v", d)
	}
}

// leaseReleaser is what a stopping delivery worker gives leases back
// through (both stores have it).
type leaseReleaser interface {
	ReleaseLeases(ctx context.Context, owner string, queueIDs []string) error
}

// testLeasedAtEnqueue: a message stored leased (the spool's hand-over to
// the node's worker) is claimed by nobody while its lease runs, and by
// anyone once its owner gives the lease back; a release by another owner
// changes nothing.
func testLeasedAtEnqueue(t *testing.T, s store.Store) {
	ctx := t.Context()
	ten := newTenant(t, s, "a", "a.example")
	acc := newAccount(t, s, ten.ID, "app@a.example")
	now := time.Now()
	leased := newMessage(ten.ID, acc.ID, 0, now.Add(-time.Second))
	leased.LeaseOwner, leased.LeaseUntil = "node-a", now.Add(time.Hour)
	free := newMessage(ten.ID, acc.ID, 1, now.Add(-time.Second))
	check(t, s.Enqueue(ctx, []*queue.Message{leased, free}, nil))
	if got := queueIDs(must(t, of(s.Claim(ctx, "node-b", now, 10, time.Minute)))); !slices.Equal(got, []string{free.QueueID}) {
		t.Fatalf("Claim = %v, want only the message stored without a lease", got)
	}
	lr, ok := s.(leaseReleaser)
	if !ok {
		t.Fatal("the store cannot release leases (ReleaseLeases)")
	}
	check(t, lr.ReleaseLeases(ctx, "node-b", []string{leased.QueueID}))
	if got := must(t, of(s.Claim(ctx, "node-b", now, 10, time.Minute))); len(got) != 0 {
		t.Fatalf("Claim after another owner's release = %v, want nothing", queueIDs(got))
	}
	check(t, lr.ReleaseLeases(ctx, "node-a", []string{leased.QueueID}))
	got := must(t, of(s.Claim(ctx, "node-b", now, 10, time.Minute)))
	if len(got) != 1 || got[0].QueueID != leased.QueueID || len(got[0].Due) != len(leased.Recipients) {
		t.Fatalf("Claim after the owner's release = %+v, want the message with its recipients due", got)
	}
}
