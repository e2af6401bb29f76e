package postgres

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"hve/internal/directory"
	"hve/internal/store"
)

// TestMaxHVEAccountsAcrossNodes: account creations racing from many
// goroutines of two nodes never take a tenant past its maximum, and fill
// it exactly.
func TestMaxHVEAccountsAcrossNodes(t *testing.T) {
	ctx := t.Context()
	nodes := twoNodes(t)
	ten, err := nodes[0].CreateTenant(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].AddDomain(ctx, directory.Domain{TenantID: ten.ID, Name: "a.example", Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	const max, tries = 7, 40
	set := ten.Settings
	set.MaxHVEAccounts = max
	if _, err := nodes[1].UpdateTenantSettings(ctx, ten.ID, set); err != nil {
		t.Fatal(err)
	}

	var created, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range tries {
		wg.Go(func() {
			<-start
			_, err := nodes[i%2].CreateAccount(ctx, directory.Account{TenantID: ten.ID, Name: "app", DisplayName: "App",
				Address: fmt.Sprintf("app%d@a.example", i), PasswordHash: "x", Enabled: true})
			switch {
			case err == nil:
				created.Add(1)
			case errors.Is(err, store.ErrLimit):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	list, err := nodes[0].Accounts(ctx, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	if created.Load() != max || refused.Load() != tries-max || len(list) != max {
		t.Errorf("%d created, %d refused, %d stored; want %d, %d, %d", created.Load(), refused.Load(), len(list), max, tries-max, max)
	}
}
