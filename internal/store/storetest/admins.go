package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/store"
)

// adminTests are the contract tests of store.Admins; Run runs them.
var adminTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"AdminUsers", testAdminUsers},
	{"AdminTokens", testAdminTokens},
	{"AdminSessions", testAdminSessions},
	{"Audit", testAudit},
}

func testAdminUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := newTenant(t, s, "contoso", "contoso.com")
	g := must(t, of(s.CreateAdminUser(ctx, adminauth.User{Name: "Ana", Role: adminauth.GlobalAdmin, PasswordHash: "h1", Enabled: true})))
	if g.ID == 0 || g.Tenant != "" || g.TenantID != 0 || g.TOTP || g.CreatedAt.IsZero() {
		t.Errorf("created global admin = %+v", g)
	}
	ta := must(t, of(s.CreateAdminUser(ctx, adminauth.User{Name: "bob", Role: adminauth.TenantAdmin, TenantID: tn.ID, PasswordHash: "h2",
		TOTPSecret: []byte("12345678901234567890"), Enabled: true})))
	if ta.Tenant != "contoso" || ta.TenantID != tn.ID || !ta.TOTP || string(ta.TOTPSecret) != "12345678901234567890" {
		t.Errorf("created tenant admin = %+v", ta)
	}
	_, err := s.CreateAdminUser(ctx, adminauth.User{Name: "ANA", Role: adminauth.Reader, PasswordHash: "h"})
	wantErr(t, err, store.ErrExists, "a second admin user named ANA")
	_, err = s.CreateAdminUser(ctx, adminauth.User{Name: "eve", Role: adminauth.TenantAdmin, TenantID: tn.ID + 100, PasswordHash: "h"})
	wantErr(t, err, store.ErrInvalid, "an admin user of a tenant that does not exist")

	got := must(t, of(s.AdminUserByName(ctx, "ana")))
	if got.ID != g.ID || got.Name != "Ana" || got.PasswordHash != "h1" {
		t.Errorf("AdminUserByName(ana) = %+v", got)
	}
	_, err = s.AdminUserByName(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound, "AdminUserByName(nobody)")
	list := must(t, of(s.AdminUsers(ctx)))
	if len(list) != 2 || list[0].Name != "Ana" || list[1].Name != "bob" {
		t.Errorf("AdminUsers = %+v", list)
	}

	ta.Role, ta.TenantID, ta.PasswordHash, ta.TOTPSecret, ta.Enabled, ta.TOTPLastStep = adminauth.Reader, 0, "h3", nil, false, 42
	up := must(t, of(s.UpdateAdminUser(ctx, ta)))
	if up.Role != adminauth.Reader || up.Tenant != "" || up.PasswordHash != "h3" || up.TOTP || up.Enabled || up.TOTPLastStep != 42 {
		t.Errorf("updated = %+v", up)
	}
	check(t, s.RemoveAdminUser(ctx, up.ID))
	wantErr(t, s.RemoveAdminUser(ctx, up.ID), store.ErrNotFound, "removing a removed admin user")
	if list := must(t, of(s.AdminUsers(ctx))); len(list) != 1 {
		t.Errorf("after removal AdminUsers = %+v", list)
	}
}

func testAdminTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := must(t, of(s.CreateAdminUser(ctx, adminauth.User{Name: "ana", Role: adminauth.GlobalAdmin, PasswordHash: "h", Enabled: true})))
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	k := must(t, of(s.AddAdminToken(ctx, adminauth.Token{UserID: u.ID, Name: "ci", Hint: "hvea_abc", Hash: "hash1", ExpiresAt: exp})))
	k2 := must(t, of(s.AddAdminToken(ctx, adminauth.Token{UserID: u.ID, Name: "laptop", Hint: "hvea_def", Hash: "hash2"})))
	_, err := s.AddAdminToken(ctx, adminauth.Token{UserID: u.ID, Name: "dup", Hash: "hash1"})
	wantErr(t, err, store.ErrExists, "a token with a hash already stored")
	gotK, gotU, err := s.AdminTokenByHash(ctx, "hash1")
	check(t, err)
	if gotK.ID != k.ID || gotK.Name != "ci" || !gotK.ExpiresAt.Equal(exp) || gotU.ID != u.ID || gotU.Role != adminauth.GlobalAdmin {
		t.Errorf("AdminTokenByHash = %+v, %+v", gotK, gotU)
	}
	_, _, err = s.AdminTokenByHash(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "AdminTokenByHash(unknown)")
	list := must(t, of(s.AdminTokens(ctx, u.ID)))
	if len(list) != 2 || list[0].ID != k.ID || list[1].ID != k2.ID || !list[1].ExpiresAt.IsZero() {
		t.Errorf("AdminTokens = %+v", list)
	}
	wantErr(t, s.RemoveAdminToken(ctx, u.ID+1, k.ID), store.ErrNotFound, "removing another user's token")
	check(t, s.RemoveAdminToken(ctx, u.ID, k.ID))
	if _, _, err := s.AdminTokenByHash(ctx, "hash1"); err == nil {
		t.Error("a removed token is still found")
	}
	// Removing the user removes its tokens.
	check(t, s.RemoveAdminUser(ctx, u.ID))
	if _, _, err := s.AdminTokenByHash(ctx, "hash2"); err == nil {
		t.Error("the token of a removed user is still found")
	}
}

func testAdminSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := must(t, of(s.CreateAdminUser(ctx, adminauth.User{Name: "ana", Role: adminauth.Reader, PasswordHash: "h", Enabled: true})))
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	a := adminauth.Session{IDHash: "s1", UserID: u.ID, CSRF: "c1", CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastSeen: now}
	check(t, s.CreateAdminSession(ctx, a))
	check(t, s.CreateAdminSession(ctx, adminauth.Session{IDHash: "s2", UserID: u.ID, CSRF: "c2", CreatedAt: now, ExpiresAt: now.Add(time.Minute), LastSeen: now}))
	got, gu, err := s.AdminSession(ctx, "s1")
	check(t, err)
	if got.CSRF != "c1" || !got.ExpiresAt.Equal(a.ExpiresAt) || gu.Name != "ana" {
		t.Errorf("AdminSession = %+v, %+v", got, gu)
	}
	check(t, s.TouchAdminSession(ctx, "s1", now.Add(5*time.Minute)))
	if got, _, _ := s.AdminSession(ctx, "s1"); !got.LastSeen.Equal(now.Add(5 * time.Minute)) {
		t.Errorf("LastSeen = %v", got.LastSeen)
	}
	check(t, s.PruneAdminSessions(ctx, now.Add(2*time.Minute)))
	if _, _, err := s.AdminSession(ctx, "s2"); err == nil {
		t.Error("an expired session survived PruneAdminSessions")
	}
	check(t, s.RemoveAdminSession(ctx, "s1"))
	_, _, err = s.AdminSession(ctx, "s1")
	wantErr(t, err, store.ErrNotFound, "a removed session")
	check(t, s.CreateAdminSession(ctx, adminauth.Session{IDHash: "s3", UserID: u.ID, CSRF: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastSeen: now}))
	check(t, s.RemoveAdminSessions(ctx, u.ID))
	if _, _, err := s.AdminSession(ctx, "s3"); err == nil {
		t.Error("RemoveAdminSessions left a session")
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var ids []int64
	for i, e := range []audit.Entry{
		{Actor: "ana", TenantID: 1, Tenant: "contoso", Action: "account.create", Before: nil, After: json.RawMessage(`{"address":"a@contoso.com"}`)},
		{Actor: "bob", TenantID: 2, Tenant: "fabrikam", Action: "domain.add"},
		{Actor: "ana", TenantID: 0, Action: "admin-user.create", Request: json.RawMessage(`{"name":"x","password":"[redacted]"}`)},
		{Actor: "ana", TenantID: 1, Tenant: "contoso", Action: "account.update", Before: json.RawMessage(`{"enabled":true}`), After: json.RawMessage(`{"enabled":false}`)},
	} {
		e.Time = t0.Add(time.Duration(i) * time.Minute)
		e.Method, e.Path, e.Status, e.Via, e.Role = "POST", "/api/v1/x", 200, "api", "global-admin"
		got := must(t, of(s.AddAudit(ctx, e)))
		if got.ID == 0 {
			t.Fatal("AddAudit returned no ID")
		}
		ids = append(ids, got.ID)
	}
	all := must(t, of(s.SearchAudit(ctx, audit.Query{})))
	if len(all) != 4 || all[0].ID != ids[3] || all[3].ID != ids[0] {
		t.Fatalf("SearchAudit is not newest first: %+v", all)
	}
	if e := all[0]; e.Action != "account.update" || string(e.Before) != `{"enabled":true}` || string(e.After) != `{"enabled":false}` ||
		!e.Time.Equal(t0.Add(3*time.Minute)) || e.Tenant != "contoso" || e.Status != 200 || e.Request != nil {
		t.Errorf("entry read back = %+v", e)
	}
	if got := must(t, of(s.SearchAudit(ctx, audit.Query{TenantID: 1}))); len(got) != 2 || got[0].TenantID != 1 || got[1].TenantID != 1 {
		t.Errorf("tenant 1 = %+v", got)
	}
	if got := must(t, of(s.SearchAudit(ctx, audit.Query{Actor: "bob"}))); len(got) != 1 || got[0].Actor != "bob" {
		t.Errorf("actor bob = %+v", got)
	}
	if got := must(t, of(s.SearchAudit(ctx, audit.Query{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}))); len(got) != 2 {
		t.Errorf("time range = %+v", got)
	}
	page1 := must(t, of(s.SearchAudit(ctx, audit.Query{Limit: 3})))
	page2 := must(t, of(s.SearchAudit(ctx, audit.Query{Limit: 3, BeforeID: page1[2].ID})))
	if len(page1) != 3 || len(page2) != 1 || page2[0].ID != ids[0] {
		t.Errorf("paging: %d then %+v", len(page1), page2)
	}
	if got := must(t, of(s.SearchAudit(ctx, audit.Query{Actor: "nobody"}))); got == nil || len(got) != 0 {
		t.Errorf("no match = %#v, want empty non-nil", got)
	}
}
