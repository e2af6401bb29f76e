package store

import (
	"context"

	"hve/internal/directory"
)

// Revocations is implemented by a store that several nodes share (the
// PostgreSQL store), so that an admin ending an identity's SMTP sessions
// reaches the sessions open on every node, not only on the node that took
// the request. Package server checks for it with a type assertion; the
// embedded SQLite store, which one node uses, does not implement it.
//
// Delivery is best effort: a node that is not listening at the time (its
// connection to the database lost and not yet made again) does not hear a
// revocation. Refusing the identity's old credentials does not depend on
// it: that is in the directory (tokens-valid-from, disabling), which every
// sign-in reads.
type Revocations interface {
	// PublishRevocation tells every node listening, the publisher's own
	// included, to end the sessions of r's identity.
	PublishRevocation(ctx context.Context, r Revocation) error
	// ListenRevocations calls l.Revoked with every revocation published
	// while it listens, one at a time, until ctx is done; then it returns.
	// When its connection to the store fails it calls l.Lost and listens
	// again after a pause, growing while failures repeat.
	ListenRevocations(ctx context.Context, l RevocationListener)
}

// Revocation names an identity whose open SMTP sessions must end: an HVE
// account or a mailbox of a tenant.
type Revocation struct {
	TenantID int64          `json:"tenant"`
	Kind     directory.Kind `json:"kind"`
	ID       int64          `json:"id"`
	// Node is the node that published it, so that it can skip its own,
	// whose sessions it has already ended.
	Node string `json:"node"`
}

// RevocationListener is what Revocations.ListenRevocations calls. Only
// Revoked is required.
type RevocationListener struct {
	// Revoked hears a revocation.
	Revoked func(Revocation)
	// Listening, if set, is called each time listening starts: at first
	// and after each reconnection. Revocations published before it are
	// not heard.
	Listening func()
	// Lost, if set, hears why listening stopped before it starts again.
	Lost func(error)
}
