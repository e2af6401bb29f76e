// Package delivery takes queued messages and delivers them: it expands
// distribution groups (nested, each person once, loops harmless) and puts a
// copy into each recipient's mailbox in the embedded store, recording a
// trace event for every step.
//
// Delivery to the organisation's own mail servers (SMTP, LMTP) is not part
// of this package yet; recipients without a local mailbox fail with a
// trace event that says so.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// Store is what delivery reads and writes.
type Store interface {
	Lookup(ctx context.Context, address string) (directory.Entry, error)
	Group(ctx context.Context, tenantID, id int64) (directory.Group, error)
	DomainByName(ctx context.Context, name string) (directory.Domain, error)
	Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error)
	Finish(ctx context.Context, deliveries []store.Delivery) error
}

// Worker delivers queued messages.
type Worker struct {
	store Store
	owner string
	log   *slog.Logger
	wake  chan struct{}

	// BatchSize messages are claimed and finished in one transaction.
	BatchSize int
	// Lease is how long a claimed batch stays reserved for this worker.
	Lease time.Duration
	// Poll is how often the queue is checked when nothing wakes the worker.
	Poll time.Duration
}

// NewWorker returns a worker that claims work as owner.
func NewWorker(s Store, owner string, log *slog.Logger) *Worker {
	return &Worker{store: s, owner: owner, log: log, wake: make(chan struct{}, 1),
		BatchSize: 256, Lease: 5 * time.Minute, Poll: 2 * time.Second}
}

// Wake tells the worker new messages are queued. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		n, err := w.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Error("delivery pass failed", "err", err)
		}
		if n > 0 && err == nil {
			continue // there may be more
		}
		timer.Reset(w.Poll)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// RunOnce claims one batch of due messages, delivers it and records the
// outcome in one transaction. It returns how many messages it handled.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	msgs, err := w.store.Claim(ctx, w.owner, time.Now(), w.BatchSize, w.Lease)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	deliveries := make([]store.Delivery, 0, len(msgs))
	for _, m := range msgs {
		d, err := w.deliver(ctx, m)
		if err != nil {
			// Left leased: it is tried again once the lease runs out.
			w.log.Error("delivery failed, will retry", "queue_id", m.QueueID, "err", err)
			continue
		}
		deliveries = append(deliveries, d)
	}
	if len(deliveries) == 0 {
		return len(msgs), nil
	}
	if err := w.store.Finish(ctx, deliveries); err != nil {
		return 0, err
	}
	return len(msgs), nil
}

// deliver works out every copy and event for one message. It returns an
// error only for a failure worth retrying (the directory could not be read).
func (w *Worker) deliver(ctx context.Context, m *queue.Message) (store.Delivery, error) {
	d := store.Delivery{QueueID: m.QueueID}
	now := time.Now().UTC()
	event := func(rcpt, name, status, detail string) {
		d.Events = append(d.Events, trace.Event{
			TenantID: m.TenantID, Time: now, QueueID: m.QueueID, MessageID: m.MessageID, Sender: m.Sender,
			Recipient: rcpt, Event: name, Status: status, Detail: detail, ClientIP: m.ClientIP, Subject: m.Subject, Size: m.Size,
		})
	}
	delivered := map[int64]bool{} // mailbox ids: each person gets one copy
	deliverTo := func(mb directory.Member, via string) {
		if delivered[mb.ID] {
			return
		}
		delivered[mb.ID] = true
		d.Copies = append(d.Copies, store.MailboxCopy{MailboxID: mb.ID, Recipient: mb.Address})
		detail := "delivered to mailbox " + mb.Address
		if via != "" {
			detail += " (member of " + via + ")"
		}
		event(mb.Address, trace.EventDelivered, trace.StatusDelivered, detail)
	}
	for _, rcpt := range m.Recipients {
		entry, err := w.store.Lookup(ctx, rcpt)
		if errors.Is(err, store.ErrNotFound) || err == nil && entry.TenantID != m.TenantID {
			reason, err := w.noRecipient(ctx, m.TenantID, rcpt)
			if err != nil {
				return d, err
			}
			event(rcpt, trace.EventFailed, trace.StatusFailed, reason)
			continue
		}
		if err != nil {
			return d, fmt.Errorf("looking up %s: %w", rcpt, err)
		}
		switch entry.Kind {
		case directory.KindMailbox:
			deliverTo(directory.Member{Kind: entry.Kind, ID: entry.ID, Address: entry.Address}, "")
		case directory.KindGroup:
			members, nested, err := w.expand(ctx, m.TenantID, entry.ID)
			if err != nil {
				return d, err
			}
			detail := fmt.Sprintf("expanded to %d mailbox%s", len(members), plural(len(members), "es"))
			if len(nested) > 0 {
				detail += " through nested groups " + strings.Join(nested, ", ")
			}
			event(entry.Address, trace.EventExpanded, trace.StatusExpanded, detail)
			for _, mb := range members {
				deliverTo(mb, entry.Address)
			}
		default:
			event(rcpt, trace.EventFailed, trace.StatusFailed, "recipient is an HVE account; HVE accounts cannot receive mail")
		}
	}
	return d, nil
}

// noRecipient explains why an address accepted at submission has no
// mailbox or group now.
func (w *Worker) noRecipient(ctx context.Context, tenantID int64, rcpt string) (string, error) {
	dom, err := w.store.DomainByName(ctx, directory.DomainOf(rcpt))
	if errors.Is(err, store.ErrNotFound) || err == nil && dom.TenantID != tenantID {
		// Another tenant's domain is reported like a removed one: tenants
		// never learn of each other.
		return "the recipient's domain is no longer an accepted domain", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking up domain of %s: %w", rcpt, err)
	}
	if dom.Type == directory.InternalRelay {
		return "no mailbox in the embedded store and no next hop is configured for internal-relay domain " + dom.Name, nil
	}
	return "the recipient no longer exists in the directory", nil
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
