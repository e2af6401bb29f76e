package webui

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"hve/internal/directory"
)

// TestPagesShowWholeLists: the admin API pages its lists (100 items by
// default); the pages, which render whole lists, follow its Link headers.
func TestPagesShowWholeLists(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tn, err := f.st.TenantByName(ctx, "contoso")
	if err != nil {
		t.Fatal(err)
	}
	const n = 250
	for i := range n {
		if _, err := f.st.AddDomain(ctx, directory.Domain{TenantID: tn.ID, Name: fmt.Sprintf("d%03d.contoso.test", i), Type: directory.Authoritative}); err != nil {
			t.Fatal(err)
		}
	}
	b := f.browser(t)
	b.signIn("global")
	code, body := b.get("/domains?tenant=contoso")
	if code != 200 {
		t.Fatalf("GET /domains: %d %s", code, body)
	}
	for i := range n {
		if name := fmt.Sprintf("d%03d.contoso.test", i); !strings.Contains(body, name) {
			t.Errorf("the domains page does not show %s (of %d)", name, n)
			break
		}
	}
}
