package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/store/storetest"
	"hve/internal/trace"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, t.TempDir())
	})
}

// open opens the store in dir and closes it when the test ends.
func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type migration struct {
	version string
	applied int64
}

func appliedMigrations(t *testing.T, s *Store) []migration {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	list, err := collect(rows, func(row scanner) (m migration, err error) {
		return m, row.Scan(&m.version, &m.applied)
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestReopenKeepsDataAndAppliesNoMigrationAgain(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.CreateTenant(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	before := appliedMigrations(t, s)
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	if len(before) == 0 || len(before) != len(files) {
		t.Fatalf("a new database has migrations %v applied, want all %d embedded ones", before, len(files))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	if _, err := s.TenantByName(t.Context(), "acme"); err != nil {
		t.Errorf("after reopening: %v", err)
	}
	if after := appliedMigrations(t, s); !slices.Equal(after, before) {
		t.Errorf("reopening changed the applied migrations from %v to %v", before, after)
	}
}

func TestSecondOpenOfOneDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	first := open(t, dir)
	second, err := Open(t.Context(), dir)
	if err == nil {
		second.Close()
		t.Fatal("a second Open of a data directory in use succeeded")
	}
	if !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not say that the directory %s is in use", err, dir)
	}
	// The failed Open did not disturb the first store.
	if _, err := first.CreateTenant(t.Context(), "still-works"); err != nil {
		t.Errorf("the first store after a refused second Open: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing releases the directory.
	open(t, dir)
}

func TestOpenReleasesLeasesOfAnEarlierRun(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	now := time.Now()
	m := &queue.Message{QueueID: queue.NewID(now), TenantID: 1, AccountID: 1, Sender: "a@a.example", Recipients: []string{"b@a.example"},
		ReceivedAt: now.Add(-time.Second), Body: []byte("x"), Size: 1}
	if err := s.Enqueue(t.Context(), []*queue.Message{m}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(t.Context(), "crashed-run", now, 10, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("Claim = %v, %v; want the message", got, err)
	}
	if got, _ := s.Claim(t.Context(), "other", now, 10, time.Hour); len(got) != 0 {
		t.Fatal("the lease did not hold within the run")
	}
	s.Close()

	s = open(t, dir)
	got, err := s.Claim(t.Context(), "new-run", now, 10, time.Hour)
	if err != nil || len(got) != 1 || got[0].QueueID != m.QueueID {
		t.Errorf("Claim right after reopening = %v, %v; want %s, whose lease died with the earlier run", got, err, m.QueueID)
	}
}

func TestDataSurvivesCloseAndOpen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s := open(t, dir)
	ten, err := s.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDomain(ctx, directory.Domain{TenantID: ten.ID, Name: "a.example", Type: directory.InternalRelay}); err != nil {
		t.Fatal(err)
	}
	mb, err := s.CreateMailbox(ctx, directory.Mailbox{TenantID: ten.ID, Name: "alice", DisplayName: "Alice", Address: "alice@a.example", Aliases: []string{"al@a.example"}})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := s.CreateAccount(ctx, directory.Account{TenantID: ten.ID, Name: "app", DisplayName: "App", Address: "app@a.example", Enabled: true, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateGroup(ctx, directory.Group{TenantID: ten.ID, Name: "team", Address: "team@a.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddGroupMember(ctx, ten.ID, g.ID, "alice@a.example"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	done := &queue.Message{QueueID: queue.NewID(now), TenantID: ten.ID, AccountID: acc.ID, Sender: "app@a.example",
		Recipients: []string{"alice@a.example"}, Subject: "hello", ReceivedAt: now.Add(-time.Second), Body: []byte("Subject: hello\r\n\r\nhi\r\n"), Size: 22}
	waiting := &queue.Message{QueueID: queue.NewID(now), TenantID: ten.ID, AccountID: acc.ID, Sender: "app@a.example",
		Recipients: []string{"x@a.example"}, ReceivedAt: now.Add(-time.Second), Body: []byte("later"), Size: 5}
	ev := trace.Event{TenantID: ten.ID, Time: now, QueueID: done.QueueID, Event: trace.EventReceived, Status: trace.StatusPending}
	if err := s.Enqueue(ctx, []*queue.Message{done, waiting}, []trace.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, []store.Delivery{{QueueID: done.QueueID, Copies: []store.MailboxCopy{{MailboxID: mb.ID, Recipient: "alice@a.example"}},
		Recipients: []queue.Recipient{{Address: "alice@a.example", State: queue.RecipientDelivered, Attempts: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	if d, err := s.DomainByName(ctx, "a.example"); err != nil || d.Type != directory.InternalRelay {
		t.Errorf("domain after reopening: %+v, %v", d, err)
	}
	if e, err := s.Lookup(ctx, "al@a.example"); err != nil || e.ID != mb.ID {
		t.Errorf("alias after reopening: %+v, %v", e, err)
	}
	if a, err := s.AccountByAddress(ctx, "app@a.example"); err != nil || a.ID != acc.ID {
		t.Errorf("account after reopening: %+v, %v", a, err)
	}
	if gr, err := s.Group(ctx, ten.ID, g.ID); err != nil || len(gr.Members) != 1 {
		t.Errorf("group after reopening: %+v, %v", gr, err)
	}
	msgs, err := s.MailboxMessages(ctx, mb.ID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("mailbox messages after reopening: %v, %v", msgs, err)
	}
	if body, err := s.MailboxMessageBody(ctx, mb.ID, msgs[0].ID); err != nil || !bytes.Equal(body, done.Body) {
		t.Errorf("mailbox message body after reopening: %q, %v", body, err)
	}
	if n, err := s.QueueDepth(ctx); err != nil || n != 1 {
		t.Errorf("QueueDepth after reopening = %d, %v; want 1", n, err)
	}
	if body, err := s.MessageBody(ctx, waiting.QueueID); err != nil || !bytes.Equal(body, waiting.Body) {
		t.Errorf("queued body after reopening: %q, %v", body, err)
	}
	if evs, err := s.SearchTrace(ctx, trace.Query{TenantID: ten.ID}); err != nil || len(evs) != 1 {
		t.Errorf("trace after reopening: %v, %v", evs, err)
	}
}

func TestMapErr(t *testing.T) {
	s := open(t, t.TempDir())
	_, err := s.CreateTenant(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateTenant(t.Context(), "x")
	if !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), "UNIQUE") {
		t.Errorf("a unique violation maps to %v; want ErrExists keeping SQLite's text", err)
	}
	if mapErr(nil) != nil {
		t.Error("mapErr(nil) is not nil")
	}
}

// TestUpgradeFrom0001 opens a data directory that only the first migration
// built, with data in it, and checks that 0002 keeps the data and gives it
// the new defaults.
func TestUpgradeFrom0001(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "hve.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	body, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	const at = 1_700_000_000_000_000_000
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		string(body),
		`INSERT INTO schema_migrations VALUES ('0001_init', 1)`,
		`INSERT INTO tenants VALUES (1, 'acme', 1700000000000000000)`,
		`INSERT INTO domains VALUES (1, 1, 'a.example', 'authoritative')`,
		`INSERT INTO mailboxes VALUES (1, 1, 'alice', 'Alice', 'alice@a.example', '', 1700000000000000000)`,
		`INSERT INTO accounts VALUES (1, 1, 'app', 'App', 'app@a.example', 'h', '', 1, 1700000000000000000, 1700000000000000000)`,
		`INSERT INTO addresses VALUES ('alice@a.example', 1, 'mailbox', 1, 1), ('app@a.example', 1, 'account', 1, 1)`,
		`INSERT INTO messages (queue_id, tenant_id, account_id, sender, recipients, message_id, subject, client_ip, size, received_at, state, next_attempt_at)
			VALUES ('Q1', 1, 1, 'app@a.example', '["alice@a.example"]', 'm1@a.example', 'old', '192.0.2.1', 5, 1700000000000000000, 'done', 1700000000000000000)`,
		`INSERT INTO message_bodies VALUES ('Q1', 'hello')`,
		`INSERT INTO mailbox_messages VALUES (7, 1, 'Q1', 'alice@a.example', 1700000000000000000)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := open(t, dir)
	if got := appliedMigrations(t, s); len(got) < 2 || got[1].version != "0002_access" {
		t.Errorf("applied migrations = %v, want 0002_access after 0001_init", got)
	}
	var problems int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&problems); err != nil || problems != 0 {
		t.Errorf("foreign key check after the upgrade: %d problems, %v", problems, err)
	}

	ten, err := s.TenantByName(ctx, "acme")
	if err != nil || ten.Settings != directory.DefaultSettings() || !ten.CreatedAt.Equal(fromNanos(at)) {
		t.Errorf("tenant after the upgrade = %+v, %v; want default settings", ten, err)
	}
	if p, err := s.CAPolicyByName(ctx, 1, directory.BuiltInBlockLegacy); err != nil || p.State != directory.CAReportOnly || p.Validate() != nil {
		t.Errorf("an existing tenant's built-in policy after the upgrade: %+v, %v", p, err)
	}
	acc, err := s.Account(ctx, 1, 1)
	if err != nil || acc.AuthPolicy != "" || !acc.TokensValidFrom.IsZero() || acc.AllowedApps == nil || acc.AllowedNetworks == nil || len(acc.AllowedApps) != 0 ||
		acc.DailyRecipientLimit != 0 || acc.WarnAt != 0 {
		t.Errorf("account after the upgrade = %+v, %v", acc, err)
	}
	if mb, err := s.Mailbox(ctx, 1, 1); err != nil || mb.ConvertedFromHVE || mb.AuthPolicy != "" || !mb.TokensValidFrom.IsZero() {
		t.Errorf("mailbox after the upgrade = %+v, %v", mb, err)
	}
	msgs, err := s.MailboxMessages(ctx, 1)
	if err != nil || len(msgs) != 1 || msgs[0].ID != 7 || msgs[0].Folder != store.FolderInbox || msgs[0].Subject != "old" {
		t.Fatalf("mailbox messages after the upgrade = %+v, %v; want copy 7 in the Inbox", msgs, err)
	}
	if body, err := s.MailboxMessageBody(ctx, 1, 7); err != nil || string(body) != "hello" {
		t.Errorf("body of copy 7 after the upgrade = %q, %v", body, err)
	}

	// The rebuilt table keeps delivery idempotent, and takes a Sent Items
	// copy of a message that is also in the Inbox.
	copyToAlice := store.Delivery{QueueID: "Q1", Copies: []store.MailboxCopy{{MailboxID: 1, Recipient: "alice@a.example"}}}
	if err := s.Finish(ctx, []store.Delivery{copyToAlice}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	self := &queue.Message{QueueID: queue.NewID(now), TenantID: 1, MailboxID: 1, Sender: "alice@a.example", Recipients: []string{"alice@a.example"},
		ReceivedAt: now, Body: []byte("to me"), Size: 5}
	if err := s.Enqueue(ctx, []*queue.Message{self}, nil); err != nil {
		t.Fatal(err)
	}
	copyToAlice.QueueID = self.QueueID
	if err := s.Finish(ctx, []store.Delivery{copyToAlice}); err != nil {
		t.Fatal(err)
	}
	folders := map[string]int{}
	msgs, _ = s.MailboxMessages(ctx, 1)
	for _, mm := range msgs {
		folders[mm.QueueID+" "+mm.Folder]++
	}
	want := map[string]int{"Q1 Inbox": 1, self.QueueID + " Inbox": 1, self.QueueID + " Sent Items": 1}
	if !maps.Equal(folders, want) {
		t.Errorf("copies after the upgrade = %v, want %v", folders, want)
	}
}

// queryPlan is SQLite's plan for query, its steps joined by "; ".
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
	}
	var steps []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(steps, "; ")
}

// Retention and the home page's recent alerts read trace through indexes
// (not a scan of the whole table) though no index by time alone or by
// event name is written for every event.
func TestTraceReadsUseIndexes(t *testing.T) {
	s := open(t, t.TempDir())
	plan := queryPlan(t, s, strings.Replace(pruneTraceSQL, "DELETE FROM trace_events WHERE id IN", "SELECT 1 WHERE 1 IN", 1),
		nanos(time.Now()), 100)
	if !strings.Contains(plan, "SEARCH e USING INDEX trace_tenant_time (tenant_id=? AND time<?)") {
		t.Errorf("retention's plan = %q, want a search of trace_tenant_time by tenant and time", plan)
	}
	for _, step := range strings.Split(plan, "; ") {
		if table, _, _ := strings.Cut(strings.TrimPrefix(step, "SCAN "), " "); step != table && (table == "e" || table == "trace_events") {
			t.Errorf("retention's plan = %q scans the table", plan)
		}
	}
	query, args := searchTraceSQL(trace.Query{TenantID: 1, Event: trace.EventAlert, Since: time.Now().Add(-24 * time.Hour), Limit: 1000})
	plan = queryPlan(t, s, query, args...)
	if !strings.Contains(plan, "USING INDEX trace_alert_time") {
		t.Errorf("the alerts' plan = %q, want the partial index trace_alert_time", plan)
	}
}

// Pruning finished messages searches messages_due by state and time and
// looks mailbox copies up by queue id, scanning neither table.
func TestPruneFinishedUsesIndexes(t *testing.T) {
	s := open(t, t.TempDir())
	// A day of 50,000 messages, one in a thousand still queued, analyzed:
	// the plan must hold with statistics that say most rows are done.
	now := time.Now()
	if _, err := s.w.ExecContext(t.Context(), `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
		INSERT INTO messages (queue_id, tenant_id, account_id, sender, recipients, message_id, subject, client_ip, size, received_at,
			state, next_attempt_at, finished_at)
		SELECT 'q' || i, 1, 1, 'app@a.example', '[]', '<' || i || '@a.example>', 'hello', '192.0.2.1', 1000, ?1 - (i * 1000000000 % 86400000000000),
			CASE WHEN i % 1000 = 0 THEN 'queued' ELSE 'done' END, ?1 - (i * 1000000000 % 86400000000000), ?1 - (i * 1000000000 % 86400000000000)
		FROM n`, nanos(now)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(t.Context(), `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	plan := queryPlan(t, s, finishedSQL, nanos(now.Add(-23*time.Hour)), 5000)
	if !strings.Contains(plan, "SEARCH m USING INDEX messages_due (state=? AND next_attempt_at<?)") {
		t.Errorf("the pruning's plan = %q, want a search of messages_due by state and time", plan)
	}
	if !strings.Contains(plan, "mailbox_messages_queue") {
		t.Errorf("the pruning's plan = %q, want mailbox copies found through mailbox_messages_queue", plan)
	}
	if strings.Contains(plan, "SCAN ") {
		t.Errorf("the pruning's plan = %q scans a table", plan)
	}
}
