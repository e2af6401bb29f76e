package sqlite

import (
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"hve/internal/queue"
)

// TestUpgradeGivesQueuedMessagesRecipients opens a data directory built by
// the migrations before 0003_delivery, with a queued and a finished
// message, and checks that the queued one gets its envelope recipients,
// pending, and is delivered as before.
func TestUpgradeGivesQueuedMessagesRecipients(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "hve.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`}
	for _, v := range []string{"0001_init", "0002_access"} {
		body, err := migrations.ReadFile("migrations/" + v + ".sql")
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, string(body), `INSERT INTO schema_migrations VALUES ('`+v+`', 1)`)
	}
	const at = 1_700_000_000_000_000_000
	stmts = append(stmts,
		`INSERT INTO tenants (id, name, created_at) VALUES (1, 'acme', 1700000000000000000)`,
		`INSERT INTO messages (queue_id, tenant_id, account_id, sender, recipients, message_id, subject, client_ip, size, received_at, state, next_attempt_at)
			VALUES ('Q1', 1, 1, 'app@a.example', '["alice@a.example","Bob@a.example"]', 'm1', 's', '192.0.2.1', 5, 1700000000000000000, 'queued', 1700000000000000000),
			       ('Q2', 1, 1, 'app@a.example', '["alice@a.example"]', 'm2', 's', '192.0.2.1', 5, 1700000000000000000, 'done', 1700000000000000000)`,
		`INSERT INTO message_bodies VALUES ('Q1', 'hello'), ('Q2', 'hello')`,
	)
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	db.Close()

	s := open(t, dir)
	list, err := s.QueueRecipients(ctx, "Q1")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, r := range list {
		addrs = append(addrs, r.Address)
		if r.State != queue.RecipientPending || !r.NextAttemptAt.Equal(fromNanos(at)) {
			t.Errorf("recipient after the upgrade = %+v; want pending, due at its message's time", r)
		}
	}
	if !slices.Equal(addrs, []string{"alice@a.example", "bob@a.example"}) {
		t.Errorf("recipients of the queued message = %v, want both, in order, in lower case", addrs)
	}
	if list, err := s.QueueRecipients(ctx, "Q2"); err != nil || len(list) != 0 {
		t.Errorf("recipients of a finished message = %v, %v; want none", list, err)
	}
	got, err := s.Claim(ctx, "w", time.Now(), 10, time.Minute)
	if err != nil || len(got) != 1 || len(got[0].Due) != 2 {
		t.Fatalf("Claim after the upgrade = %+v, %v; want Q1 with two due recipients", got, err)
	}
}
