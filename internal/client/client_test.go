package client

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"hve/internal/admin"
	"hve/internal/directory"
	"hve/internal/store/sqlite"
)

// TestListIsReadWhole: a list of more than one page comes back whole,
// in order, from the real admin API.
func TestListIsReadWhole(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const token = "hve_client_test_token"
	api := admin.New(st, sha256.Sum256([]byte(token)), slog.New(slog.DiscardHandler), admin.Options{})
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.URL.RequestURI())
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()

	c := New(srv.URL, token)
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("tenant-%d", i)
		if err := c.Do(ctx, "POST", "/api/v1/tenants", map[string]string{"name": name}, nil); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	requests = nil
	var tenants []directory.Tenant
	if err := c.Do(ctx, "GET", "/api/v1/tenants?limit=2", nil, &tenants); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tn := range tenants {
		got = append(got, tn.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("tenants = %v, want %v", got, want)
	}
	if len(requests) != 3 || !strings.Contains(requests[1], "cursor=") {
		t.Errorf("requests = %v; want three pages, followed by cursor", requests)
	}

	// A raw reply is the whole list too.
	var raw []byte
	if err := c.Do(ctx, "GET", "/api/v1/tenants?limit=1", nil, &raw); err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil || len(list) != 5 {
		t.Errorf("raw list: %d items, %v: %s", len(list), err, raw)
	}

	// A bad limit is the API's error.
	err = c.Do(ctx, "GET", "/api/v1/tenants?limit=0", nil, &tenants)
	if e, ok := err.(*Error); !ok || e.Status != 400 || e.Code != "invalid" {
		t.Errorf("limit=0: %v", err)
	}
}

func TestNextLink(t *testing.T) {
	for _, tc := range []struct {
		link []string
		want string
	}{
		{nil, ""},
		{[]string{`</a?cursor=x>; rel="next"`}, "/a?cursor=x"},
		{[]string{`</a?cursor=x>; rel=next`}, "/a?cursor=x"},
		{[]string{`</first>; rel="first", </b>; rel="prev next"`}, "/b"},
		{[]string{`</first>; title="a, b; c"; rel="first"`, `<https://h/c>; REL="Next"`}, "https://h/c"},
		{[]string{`</p>; rel="prev"`}, ""},
		{[]string{`garbage`}, ""},
	} {
		h := http.Header{}
		for _, v := range tc.link {
			h.Add("Link", v)
		}
		if got := NextLink(h); got != tc.want {
			t.Errorf("NextLink(%q) = %q, want %q", tc.link, got, tc.want)
		}
	}
}

// TestPagesStayOnTheServer: the token is never sent to another server, and
// links that loop are an error rather than a hang.
func TestPagesStayOnTheServer(t *testing.T) {
	var link string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "<"+link+`>; rel="next"`)
		w.Write([]byte(`[1]`))
	}))
	defer srv.Close()
	c := New(srv.URL, "t")
	var out []int
	link = "http://elsewhere.example/list"
	if err := c.Do(context.Background(), "GET", "/list", nil, &out); err == nil || !strings.Contains(err.Error(), "leads away") {
		t.Errorf("a link to another server: %v", err)
	}
	link = "/list?cursor=same"
	if err := c.Do(context.Background(), "GET", "/list", nil, &out); err == nil || !strings.Contains(err.Error(), "lead back") {
		t.Errorf("a loop: %v", err)
	}
}
