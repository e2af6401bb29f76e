package storetest

import (
	"context"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
)

// testDirectoryVersion: every kind of directory change moves the version,
// so that a cache of directory reads (package dircache) cannot serve what
// it changed. Both stores count their changes (without it, the hot paths
// would read the directory from the store every time).
func testDirectoryVersion(t *testing.T, s store.Store) {
	dv, ok := s.(store.DirectoryVersion)
	if !ok {
		t.Fatal("the store does not count its directory changes (store.DirectoryVersion)")
	}
	ctx := context.Background()
	tenant := newTenant(t, s, "versioned", "versioned.test")
	var mb directory.Mailbox
	var acct directory.Account
	var grp directory.Group
	changes := []struct {
		name string
		do   func() error
	}{
		{"CreateTenant", func() error { _, err := s.CreateTenant(ctx, "another"); return err }},
		{"UpdateTenantSettings", func() error {
			_, err := s.UpdateTenantSettings(ctx, tenant.ID, tenant.Settings)
			return err
		}},
		{"AddDomain", func() error {
			_, err := s.AddDomain(ctx, directory.Domain{TenantID: tenant.ID, Name: "second.test", Type: directory.Authoritative})
			return err
		}},
		{"CreateMailbox", func() (err error) {
			mb, err = s.CreateMailbox(ctx, directory.Mailbox{TenantID: tenant.ID, Name: "m", DisplayName: "M", Address: "m@versioned.test"})
			return err
		}},
		{"UpdateMailbox", func() (err error) {
			mb.DisplayName = "Em"
			mb, err = s.UpdateMailbox(ctx, mb)
			return err
		}},
		{"CreateAccount", func() (err error) {
			acct, err = s.CreateAccount(ctx, directory.Account{TenantID: tenant.ID, Name: "a", DisplayName: "A", Address: "a@versioned.test", Enabled: true, PasswordHash: "x"})
			return err
		}},
		{"UpdateAccount", func() (err error) {
			acct.Enabled = false
			acct, err = s.UpdateAccount(ctx, acct)
			return err
		}},
		{"CreateGroup", func() (err error) {
			grp, err = s.CreateGroup(ctx, directory.Group{TenantID: tenant.ID, Name: "g", Address: "g@versioned.test"})
			return err
		}},
		{"AddGroupMember", func() error { return s.AddGroupMember(ctx, tenant.ID, grp.ID, mb.Address) }},
		{"RemoveGroupMember", func() error { return s.RemoveGroupMember(ctx, tenant.ID, grp.ID, mb.Address) }},
		{"CreateSecurityGroup", func() error {
			_, err := s.CreateSecurityGroup(ctx, directory.SecurityGroup{TenantID: tenant.ID, Name: "sg"})
			return err
		}},
		{"AddSecurityGroupMember", func() error { return s.AddSecurityGroupMember(ctx, tenant.ID, "sg", acct.Address) }},
		{"CreateAuthPolicy", func() error {
			_, err := s.CreateAuthPolicy(ctx, directory.AuthPolicy{TenantID: tenant.ID, Name: "p"})
			return err
		}},
		{"CreateCAPolicy", func() error {
			_, err := s.CreateCAPolicy(ctx, directory.CAPolicy{TenantID: tenant.ID, Name: "ca", State: directory.CAReportOnly, Grant: directory.GrantBlock,
				IncludeUsers: []string{directory.AllUsers}, CreatedAt: time.Now()})
			return err
		}},
		{"SetRoute", func() error {
			_, err := s.SetRoute(ctx, directory.Route{TenantID: tenant.ID, Domain: "versioned.test", Type: directory.RouteSMTP, Target: "127.0.0.1:25", TLS: directory.TLSNone})
			return err
		}},
		{"RemoveRoute", func() error { return s.RemoveRoute(ctx, tenant.ID, "versioned.test") }},
		{"RemoveGroup", func() error { return s.RemoveGroup(ctx, tenant.ID, grp.ID) }},
		{"RemoveAccount", func() error { return s.RemoveAccount(ctx, tenant.ID, acct.ID) }},
		{"RemoveMailbox", func() error { return s.RemoveMailbox(ctx, tenant.ID, mb.ID) }},
		{"RemoveDomain", func() error { return s.RemoveDomain(ctx, tenant.ID, "second.test") }},
	}
	for _, c := range changes {
		before := dv.DirectoryVersion()
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if dv.DirectoryVersion() == before {
			t.Errorf("%s did not move the directory version", c.name)
		}
	}
}
