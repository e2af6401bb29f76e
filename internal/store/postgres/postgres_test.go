package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/store"
	"hve/internal/store/postgres/pgtest"
	"hve/internal/store/storetest"
	"hve/internal/trace"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, pgtest.DSN(t))
	})
}

// open opens the store at dsn and closes it when the test ends.
func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrationsApplyOnceAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	// Two nodes starting together: both open, each migration applied once.
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			s, err := Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Open: %v", err)
		}
	}
	s := open(t, dsn)
	var n, distinct int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n != distinct {
		t.Errorf("schema_migrations has %d rows for %d versions; want each version once", n, distinct)
	}
}

// queryPlan is PostgreSQL's plan for query, as EXPLAIN prints it. The
// query may read the trace's settled bound (settledBound), as it does when
// it runs.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	var plan []string
	b := &pgx.Batch{}
	queueSettled(b)
	b.Queue("EXPLAIN "+query, args...).Query(func(rows pgx.Rows) error {
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, line := range lines {
			plan = append(plan, strings.TrimSpace(line))
		}
		return err
	})
	if err := s.batch(t.Context(), b); err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	return strings.Join(plan, "; ")
}

// Retention and the home page's recent alerts read trace through indexes
// though no index by time alone or by event name is written for every
// event. The table holds a day of three tenants' mail (analyzed), so that
// the planner weighs what it would on a node in service.
func TestTraceReadsUseIndexes(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	now := time.Now()
	_, err := s.pool.Exec(t.Context(), `INSERT INTO trace_events
		(tenant_id, time, queue_id, message_id, sender, recipient, event, status, detail, client_ip, subject, size)
		SELECT i % 3 + 1, $1::bigint - (i::bigint * 1000000000 % 86400000000000), 'q' || i, '<' || i || '@a.example>',
			'app@a.example', 'r' || i || '@a.example', CASE WHEN i % 5000 = 0 THEN 'Alert' ELSE 'Received' END,
			'Pending', '', '192.0.2.1', 'hello', 1000
		FROM generate_series(1, 50000) i`, nanos(now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(t.Context(), `ANALYZE trace_events`); err != nil {
		t.Fatal(err)
	}
	plan := queryPlan(t, s, pruneTraceSQL, nanos(now.Add(-23*time.Hour)), 5000)
	if !strings.Contains(plan, "using trace_tenant_time on trace_events e") {
		t.Errorf("retention's plan = %q, want trace_tenant_time for the events", plan)
	}
	if strings.Contains(plan, "Seq Scan on trace_events") {
		t.Errorf("retention's plan = %q scans the table", plan)
	}
	query, args := searchTraceSQL(trace.Query{TenantID: 1, Event: trace.EventAlert, Since: now.Add(-24 * time.Hour), Limit: 1000})
	plan = queryPlan(t, s, query, args...)
	if !strings.Contains(plan, "trace_alert_time") {
		t.Errorf("the alerts' plan = %q, want the partial index trace_alert_time", plan)
	}
}

// Pruning finished messages reads the partial index of finished messages,
// not the whole table, with a day of finished mail in it (analyzed).
func TestPruneFinishedUsesIndexes(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	now := time.Now()
	_, err := s.pool.Exec(t.Context(), `INSERT INTO messages
		(queue_id, tenant_id, account_id, sender, recipients, message_id, subject, client_ip, size, received_at, state, next_attempt_at, finished_at)
		SELECT 'q' || i, 1, 1, 'app@a.example', '[]', '<' || i || '@a.example>', 'hello', '192.0.2.1', 1000,
			$1::bigint - (i::bigint * 1000000000 % 86400000000000), CASE WHEN i % 1000 = 0 THEN 'queued' ELSE 'done' END,
			$1::bigint - (i::bigint * 1000000000 % 86400000000000), $1::bigint - (i::bigint * 1000000000 % 86400000000000)
		FROM generate_series(1, 50000) i`, nanos(now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(t.Context(), `ANALYZE messages`); err != nil {
		t.Fatal(err)
	}
	plan := queryPlan(t, s, pruneFinishedSQL, nanos(now.Add(-23*time.Hour)), 5000)
	if !strings.Contains(plan, "messages_done on messages m") {
		t.Errorf("the pruning's plan = %q, want messages_done for the candidates", plan)
	}
	if strings.Contains(plan, "Seq Scan on messages") {
		t.Errorf("the pruning's plan = %q scans the table", plan)
	}
}
