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

func (s *Store) CreateAdminUser(ctx context.Context, u adminauth.User) (adminauth.User, error) {
	panic("postgres: not implemented")
}
func (s *Store) AdminUsers(ctx context.Context) ([]adminauth.User, error) {
	panic("postgres: not implemented")
}
func (s *Store) AdminUserByName(ctx context.Context, name string) (adminauth.User, error) {
	panic("postgres: not implemented")
}
func (s *Store) AdminUser(ctx context.Context, id int64) (adminauth.User, error) {
	panic("postgres: not implemented")
}
func (s *Store) UpdateAdminUser(ctx context.Context, u adminauth.User) (adminauth.User, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveAdminUser(ctx context.Context, id int64) error {
	panic("postgres: not implemented")
}
func (s *Store) AddAdminToken(ctx context.Context, k adminauth.Token) (adminauth.Token, error) {
	panic("postgres: not implemented")
}
func (s *Store) AdminTokens(ctx context.Context, userID int64) ([]adminauth.Token, error) {
	panic("postgres: not implemented")
}
func (s *Store) AdminTokenByHash(ctx context.Context, hash string) (adminauth.Token, adminauth.User, error) {
	panic("postgres: not implemented")
}
func (s *Store) RemoveAdminToken(ctx context.Context, userID, id int64) error {
	panic("postgres: not implemented")
}
func (s *Store) CreateAdminSession(ctx context.Context, a adminauth.Session) error {
	panic("postgres: not implemented")
}
func (s *Store) AdminSession(ctx context.Context, idHash string) (adminauth.Session, adminauth.User, error) {
	panic("postgres: not implemented")
}
func (s *Store) TouchAdminSession(ctx context.Context, idHash string, t time.Time) error {
	panic("postgres: not implemented")
}
func (s *Store) RemoveAdminSession(ctx context.Context, idHash string) error {
	panic("postgres: not implemented")
}
func (s *Store) RemoveAdminSessions(ctx context.Context, userID int64) error {
	panic("postgres: not implemented")
}
func (s *Store) PruneAdminSessions(ctx context.Context, t time.Time) error {
	panic("postgres: not implemented")
}
func (s *Store) AddAudit(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	panic("postgres: not implemented")
}
func (s *Store) SearchAudit(ctx context.Context, q audit.Query) ([]audit.Entry, error) {
	panic("postgres: not implemented")
}
