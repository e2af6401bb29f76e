package server_test

// Several nodes on one PostgreSQL database.

import (
	"testing"
	"time"

	"hve/internal/config"
	"hve/internal/directory"
	"hve/internal/store/postgres/pgtest"
)

// startNodes starts two nodes on one PostgreSQL schema, each with its own
// data directory and ports; the first seeds the directory they share.
func startNodes(t *testing.T) (a, b *testNode) {
	t.Helper()
	dsn := pgtest.DSN(t)
	onPostgres := func(c *config.Config) { c.Store = dsn }
	a = startNodeWith(t, onPostgres)
	b = startUnseeded(t, onPostgres)
	b.tenant, b.other = a.tenant, a.other
	return a, b
}

// TestSessionRevokedOnEveryNode: an admin ending an identity's sessions
// through one node ends those open on the other node too, and no other.
func TestSessionRevokedOnEveryNode(t *testing.T) {
	t.Parallel()
	a, b := startNodes(t)
	acc, err := a.srv.Store.AccountByAddress(t.Context(), appAddr)
	if err != nil {
		t.Fatal(err)
	}
	onA, onB := a.signIn(), b.signIn()
	mailboxOnB := b.signInClient()

	if got := a.srv.CloseSessions(a.tenant.ID, directory.KindAccount, acc.ID); got != 1 {
		t.Errorf("CloseSessions = %d, want 1 (the sessions of this node)", got)
	}
	for _, c := range []*smtpClient{onA, onB} {
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		code, text := c.read()
		wantReply(t, code, text, 421, "4.7.0", "Session revoked by the administrator; sign in again")
		c.expectClosed()
	}
	// The mailbox's session goes on, and the account signs in again.
	mailboxOnB.ok(mailboxOnB.cmd("NOOP"))
	b.signIn()
}
