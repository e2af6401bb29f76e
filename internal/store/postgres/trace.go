package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"hve/internal/trace"
)

// insertEvents writes trace events in tx and returns their ids, in order.
//
// It first takes the trace lock, held until tx ends. Ids come from a
// sequence, and without the lock a transaction that drew lower ids could
// commit after one that drew higher ids: a cursor reader (usage metering,
// webhook dispatch) that had moved past the higher ids would never see the
// lower ones. With the lock, ids become visible in order. Callers write
// events last in their transaction, so the lock is held only for the
// insert and the commit.
func insertEvents(ctx context.Context, tx pgx.Tx, events []trace.Event) ([]int64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockTrace); err != nil {
		return nil, fmt.Errorf("taking the trace lock: %w", err)
	}
	// One statement for the batch: columns as arrays, unnested in order.
	n := len(events)
	var (
		tenant                                                                    = make([]int64, n)
		at, size                                                                  = make([]int64, n), make([]int64, n)
		queueID, messageID, sender, recipient, event, status, detail, ip, subject = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i, e := range events {
		tenant[i], at[i], size[i] = e.TenantID, nanos(e.Time), e.Size
		queueID[i], messageID[i], sender[i], recipient[i] = e.QueueID, e.MessageID, e.Sender, e.Recipient
		event[i], status[i], detail[i], ip[i], subject[i] = e.Event, e.Status, e.Detail, e.ClientIP, e.Subject
	}
	rows, err := tx.Query(ctx, `INSERT INTO trace_events
		(tenant_id, time, queue_id, message_id, sender, recipient, event, status, detail, client_ip, subject, size)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[])
		RETURNING id`,
		tenant, at, queueID, messageID, sender, recipient, event, status, detail, ip, subject, size)
	if err != nil {
		return nil, fmt.Errorf("trace events: %w", mapErr(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("trace events: %w", mapErr(err))
	}
	return ids, nil
}
