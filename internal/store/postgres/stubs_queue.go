package postgres

// Temporary: methods not yet ported. This file goes when they are.
import (
	"context"
	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
	"time"
)

var _ = context.Background
var _ time.Time
var _ directory.Kind
var _ *queue.Message
var _ store.Store
var _ trace.Event
var _ adminauth.User
var _ audit.Entry

func (s *Store) Enqueue(ctx context.Context, msgs []*queue.Message, events []trace.Event) error {
	panic("postgres: not implemented")
}
func (s *Store) Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error) {
	panic("postgres: not implemented")
}
func (s *Store) QueueRecipients(ctx context.Context, queueID string) ([]queue.Recipient, error) {
	panic("postgres: not implemented")
}
func (s *Store) Finish(ctx context.Context, deliveries []store.Delivery) error {
	panic("postgres: not implemented")
}
func (s *Store) MessageBody(ctx context.Context, queueID string) ([]byte, error) {
	panic("postgres: not implemented")
}
func (s *Store) QueueDepth(ctx context.Context) (int, error) { panic("postgres: not implemented") }
func (s *Store) MailboxMessages(ctx context.Context, mailboxID int64) ([]store.MailboxMessage, error) {
	panic("postgres: not implemented")
}
func (s *Store) MailboxMessageBody(ctx context.Context, mailboxID, id int64) ([]byte, error) {
	panic("postgres: not implemented")
}
func (s *Store) AddEvents(ctx context.Context, events []trace.Event) error {
	panic("postgres: not implemented")
}
func (s *Store) SearchTrace(ctx context.Context, q trace.Query) ([]trace.Event, error) {
	panic("postgres: not implemented")
}
func (s *Store) PruneTrace(ctx context.Context, before time.Time, limit int) (int, error) {
	panic("postgres: not implemented")
}
func (s *Store) QueueItems(ctx context.Context, q store.QueueQuery) ([]store.QueueItem, error) {
	panic("postgres: not implemented")
}
func (s *Store) ControlQueue(ctx context.Context, c store.QueueControl) (int, error) {
	panic("postgres: not implemented")
}
func (s *Store) SetRoute(ctx context.Context, r directory.Route) (directory.Route, error) {
	panic("postgres: not implemented")
}
func (s *Store) Routes(ctx context.Context, tenantID int64) ([]directory.Route, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveRoute(ctx context.Context, tenantID int64, domain string) error {
	panic("postgres: not implemented")
}
