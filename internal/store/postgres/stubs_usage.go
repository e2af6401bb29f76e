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

func (s *Store) UsageCursor(ctx context.Context) (int64, error) { panic("postgres: not implemented") }
func (s *Store) MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error) {
	panic("postgres: not implemented")
}
func (s *Store) AddUsage(ctx context.Context, from, to int64, rows []store.UsageRow) error {
	panic("postgres: not implemented")
}
func (s *Store) UsageHours(ctx context.Context, q store.UsageQuery) ([]store.UsageRow, error) {
	panic("postgres: not implemented")
}
func (s *Store) CreateReportJob(ctx context.Context, j store.ReportJob) (store.ReportJob, error) {
	panic("postgres: not implemented")
}
func (s *Store) ReportJob(ctx context.Context, tenantID, id int64) (store.ReportJob, error) {
	panic("postgres: not implemented")
}
func (s *Store) ClaimReportJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (store.ReportJob, error) {
	panic("postgres: not implemented")
}
func (s *Store) AddReportChunk(ctx context.Context, id int64, owner string, seq int, data []byte, leaseUntil time.Time) error {
	panic("postgres: not implemented")
}
func (s *Store) FinishReportJob(ctx context.Context, id int64, owner string, rows int64, failure string) error {
	panic("postgres: not implemented")
}
func (s *Store) ReportChunk(ctx context.Context, tenantID, id int64, seq int) ([]byte, error) {
	panic("postgres: not implemented")
}
func (s *Store) PruneReportJobs(ctx context.Context, createdBefore time.Time) (int, error) {
	panic("postgres: not implemented")
}
func (s *Store) DetailRows(ctx context.Context, q store.DetailQuery) ([]store.DetailRow, error) {
	panic("postgres: not implemented")
}
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) (store.Webhook, error) {
	panic("postgres: not implemented")
}
func (s *Store) Webhooks(ctx context.Context, tenantID int64) ([]store.Webhook, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveWebhook(ctx context.Context, tenantID, id int64) error {
	panic("postgres: not implemented")
}
func (s *Store) NotifyCursor(ctx context.Context) (int64, error) { panic("postgres: not implemented") }
func (s *Store) AddNotifications(ctx context.Context, from, to int64, rows []store.WebhookDelivery) error {
	panic("postgres: not implemented")
}
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]store.WebhookDelivery, error) {
	panic("postgres: not implemented")
}
func (s *Store) FinishWebhookDelivery(ctx context.Context, owner string, d store.WebhookDelivery) error {
	panic("postgres: not implemented")
}
func (s *Store) WebhookDeliveries(ctx context.Context, webhookID int64) ([]store.WebhookDelivery, error) {
	panic("postgres: not implemented")
}
func (s *Store) PruneWebhookDeliveries(ctx context.Context, createdBefore time.Time) (int, error) {
	panic("postgres: not implemented")
}
func (s *Store) AddAlert(ctx context.Context, a store.Alert) (store.Alert, bool, error) {
	panic("postgres: not implemented")
}
func (s *Store) AlertsByEvent(ctx context.Context, eventIDs []int64) ([]store.Alert, error) {
	panic("postgres: not implemented")
}
func (s *Store) LeaseQuota(ctx context.Context, l store.QuotaLease) (granted, used int64, err error) {
	panic("postgres: not implemented")
}
func (s *Store) ReturnQuota(ctx context.Context, key string, bucket time.Time, n int64) error {
	panic("postgres: not implemented")
}
func (s *Store) QuotaBuckets(ctx context.Context, key string, since time.Time) ([]store.QuotaBucket, error) {
	panic("postgres: not implemented")
}
func (s *Store) MarkQuotaEvent(ctx context.Context, key string, window, expires time.Time) (bool, error) {
	panic("postgres: not implemented")
}
func (s *Store) PruneQuota(ctx context.Context, now time.Time) error {
	panic("postgres: not implemented")
}
