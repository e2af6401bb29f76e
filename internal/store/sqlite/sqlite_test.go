package sqlite

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
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
	if err := s.Finish(ctx, []store.Delivery{{QueueID: done.QueueID, Copies: []store.MailboxCopy{{MailboxID: mb.ID, Recipient: "alice@a.example"}}}}); err != nil {
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
