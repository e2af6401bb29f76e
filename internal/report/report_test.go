package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
)

func TestParseRange(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 30, 0, 0, time.UTC)
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		since, until string
		def          time.Duration
		wantS, wantU time.Time
	}{
		{"2026-11-01", "2026-11-30", 0, day(1), day(31).AddDate(0, 0, 0)},
		{"2026-11-01", "2026-11-02T06:00:00Z", 0, day(1), day(2).Add(6 * time.Hour)},
		{"2h", "", 0, now.Add(-2 * time.Hour), now},
		{"7d", "now", 0, now.AddDate(0, 0, -7), now},
		{"", "", 29 * 24 * time.Hour, day(23).AddDate(0, 0, -29), now},
		{"", "2026-11-20", 0, time.Time{}, day(21)},
	}
	for _, tc := range tests {
		s, u, err := ParseRange(tc.since, tc.until, now, tc.def)
		if err != nil || !s.Equal(tc.wantS) || !u.Equal(tc.wantU) {
			t.Errorf("ParseRange(%q, %q) = %v, %v, %v; want %v, %v", tc.since, tc.until, s, u, err, tc.wantS, tc.wantU)
		}
	}
	for _, bad := range [][2]string{{"yesterday", ""}, {"", "soon"}, {"2026-11-02", "2026-11-01T00:00:00Z"}} {
		if _, _, err := ParseRange(bad[0], bad[1], now, 0); err == nil {
			t.Errorf("ParseRange(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// at is when the generated traffic happens.
var at = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// openStore returns a fresh embedded store with a tenant.
func openStore(t *testing.T) (*sqlite.Store, int64) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ten, err := st.CreateTenant(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	return st, ten.ID
}

// generate stores n messages of two recipients each, one second apart,
// the first delivered and the second failed; subjects have commas, quotes
// and line breaks, which CSV must carry.
func generate(t *testing.T, st store.Store, tenant int64, n int) {
	t.Helper()
	var events []trace.Event
	for i := range n {
		qid := queue.NewID(at)
		ts := at.Add(time.Duration(i) * time.Second)
		base := trace.Event{TenantID: tenant, Time: ts, QueueID: qid, MessageID: fmt.Sprintf("m%d@a.example", i),
			Sender: "app@a.example", Subject: fmt.Sprintf("Report %d, \"Q4\"\nline two", i), Size: int64(100 + i)}
		for _, r := range []string{"alice@a.example", "bob@a.example"} {
			e := base
			e.Recipient, e.Event, e.Status, e.Detail = r, trace.EventReceived, trace.StatusPending, "accepted"
			events = append(events, e)
		}
		d := base
		d.Time = ts.Add(time.Millisecond)
		d.Recipient, d.Event, d.Status, d.Detail = "alice@a.example", trace.EventDelivered, trace.StatusDelivered, "delivered"
		f := d
		f.Recipient, f.Event, f.Status, f.Detail = "bob@a.example", trace.EventFailed, trace.StatusFailed, "no such mailbox"
		events = append(events, d, f)
	}
	if err := st.AddEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
}

// pageCounter counts the pages WriteCSV reads and their most rows.
type pageCounter struct {
	Rows
	pages, largest int
}

func (p *pageCounter) DetailRows(ctx context.Context, q store.DetailQuery) ([]store.DetailRow, error) {
	rows, err := p.Rows.DetailRows(ctx, q)
	p.pages++
	p.largest = max(p.largest, len(rows))
	return rows, err
}

// TestWriteCSVStreams: a large trace is read in pages of PageSize and its
// rows match the trace.
func TestWriteCSVStreams(t *testing.T) {
	st, tenant := openStore(t)
	const n = 1000
	generate(t, st, tenant, n)
	defer func(old int) { PageSize = old }(PageSize)
	PageSize = 100
	src := &pageCounter{Rows: st}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var rows int64
	go func() {
		var err error
		rows, err = WriteCSV(t.Context(), src, store.DetailQuery{TenantID: tenant}, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	// Read the CSV as it is written, checking each row against what was
	// generated, without keeping it.
	r := csv.NewReader(pr)
	header, err := r.Read()
	if err != nil || strings.Join(header, ",") != strings.Join(Header, ",") {
		t.Fatalf("header = %v (%v)", header, err)
	}
	count := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		i, rcpt := count/2, []string{"alice@a.example", "bob@a.example"}[count%2]
		status := []string{trace.StatusDelivered, trace.StatusFailed}[count%2]
		want := []string{at.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano), "", fmt.Sprintf("m%d@a.example", i),
			"app@a.example", rcpt, fmt.Sprintf("Report %d, \"Q4\"\nline two", i), fmt.Sprint(100 + i), status}
		for j, w := range want {
			if j != 1 && rec[j] != w {
				t.Fatalf("row %d column %s = %q, want %q", count, Header[j], rec[j], w)
			}
		}
		count++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if count != 2*n || rows != 2*n {
		t.Errorf("%d rows read, %d reported, want %d", count, rows, 2*n)
	}
	// Memory is bounded by the page (PageSize messages of two recipients):
	// WriteCSV never asked for more.
	if want := n/PageSize + 1; src.pages != want || src.largest != 2*PageSize {
		t.Errorf("read %d pages of at most %d rows, want %d pages of %d", src.pages, src.largest, want, 2*PageSize)
	}
}

// chunkSizes records the chunks a runner stores, passing them on.
type chunkSizes struct {
	Store
	sizes []int
}

func (c *chunkSizes) AddReportChunk(ctx context.Context, id int64, owner string, seq int, data []byte, leaseUntil time.Time) error {
	c.sizes = append(c.sizes, len(data))
	return c.Store.AddReportChunk(ctx, id, owner, seq, data, leaseUntil)
}

// TestRunnerJob: a job runs to done; its download, chunk by chunk, is the
// CSV WriteCSV makes, and no chunk exceeds ChunkSize.
func TestRunnerJob(t *testing.T) {
	st, tenant := openStore(t)
	generate(t, st, tenant, 300)
	defer func(old int) { ChunkSize = old }(ChunkSize)
	ChunkSize = 4 << 10
	q := store.DetailQuery{TenantID: tenant, Senders: []string{"app@a.example"}, Since: at.Add(100 * time.Second), Until: at.Add(250 * time.Second)}
	job, err := st.CreateReportJob(t.Context(), store.ReportJob{TenantID: tenant, Account: "app@a.example", Since: q.Since, Until: q.Until})
	if err != nil {
		t.Fatal(err)
	}
	cs := &chunkSizes{Store: st}
	runner := NewRunner(cs, "node1", slog.New(slog.DiscardHandler))
	if ran, err := runner.RunOnce(t.Context()); !ran || err != nil {
		t.Fatalf("RunOnce = %v, %v", ran, err)
	}
	if ran, err := runner.RunOnce(t.Context()); ran || err != nil {
		t.Errorf("RunOnce with nothing queued = %v, %v", ran, err)
	}
	job, err = st.ReportJob(t.Context(), tenant, job.ID)
	if err != nil || job.State != store.ReportDone || job.Rows != 300 {
		t.Fatalf("job = %+v (%v), want done with 300 rows", job, err)
	}
	var got, want bytes.Buffer
	if err := Download(t.Context(), st, tenant, job.ID, &got); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCSV(t.Context(), st, q, &want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("download (%d bytes) differs from the CSV (%d bytes)", got.Len(), want.Len())
	}
	if len(cs.sizes) < 10 {
		t.Errorf("%d chunks; want the CSV (%d bytes) in chunks of %d", len(cs.sizes), want.Len(), ChunkSize)
	}
	for i, s := range cs.sizes {
		if s > ChunkSize {
			t.Errorf("chunk %d has %d bytes, more than %d", i, s, ChunkSize)
		}
	}
	if err := Download(t.Context(), st, tenant+1, job.ID, io.Discard); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("download by another tenant: %v", err)
	}
}

// brokenRows fails after the first page.
type brokenRows struct {
	Store
	calls int
}

func (b *brokenRows) DetailRows(ctx context.Context, q store.DetailQuery) ([]store.DetailRow, error) {
	b.calls++
	if b.calls > 1 {
		return nil, errors.New("trace unreadable")
	}
	return b.Store.DetailRows(ctx, q)
}

// TestRunnerFailure: a job whose rows cannot be read is failed with the
// reason; one whose lease passed to another node is left to it.
func TestRunnerFailure(t *testing.T) {
	st, tenant := openStore(t)
	generate(t, st, tenant, 20)
	defer func(old int) { PageSize = old }(PageSize)
	PageSize = 5
	job, err := st.CreateReportJob(t.Context(), store.ReportJob{TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	runner := NewRunner(&brokenRows{Store: st}, "node1", slog.New(slog.DiscardHandler))
	if ran, err := runner.RunOnce(t.Context()); !ran || err == nil {
		t.Errorf("RunOnce = %v, %v; want the job's error", ran, err)
	}
	job, _ = st.ReportJob(t.Context(), tenant, job.ID)
	if job.State != store.ReportFailed || !strings.Contains(job.Error, "trace unreadable") {
		t.Errorf("job = %+v, want failed with the reason", job)
	}

	// node1 claims a job and stalls; node2 takes it over after the lease.
	job, err = st.CreateReportJob(t.Context(), store.ReportJob{TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimReportJob(t.Context(), "node1", time.Now().Add(-time.Hour), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimReportJob(t.Context(), "node2", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	stale := &chunkWriter{ctx: t.Context(), r: NewRunner(st, "node1", slog.New(slog.DiscardHandler)), id: job.ID}
	stale.buf.WriteString("late")
	if err := stale.flush(); !errors.Is(err, store.ErrStale) {
		t.Errorf("a write by the node that lost the lease: %v, want ErrStale", err)
	}
}

// TestRunnerAccountAliases: a report of an account has the messages it sent
// from its aliases too, and no one else's.
func TestRunnerAccountAliases(t *testing.T) {
	st, tenant := openStore(t)
	ctx := t.Context()
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: tenant, Name: "a.example", Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, directory.Account{TenantID: tenant, Name: "app", DisplayName: "App", Address: "app@a.example",
		Aliases: []string{"alerts@a.example"}, Enabled: true, PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	var events []trace.Event
	for i, sender := range []string{"app@a.example", "alerts@a.example", "other@a.example"} {
		events = append(events, trace.Event{TenantID: tenant, Time: at, QueueID: fmt.Sprintf("Q%d", i), Sender: sender,
			Recipient: "r@a.example", Event: trace.EventReceived, Status: trace.StatusPending})
	}
	if err := st.AddEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	for account, want := range map[string]string{"app@a.example": "Q0,Q1", "gone@a.example": "", "": "Q0,Q1,Q2"} {
		job, err := st.CreateReportJob(ctx, store.ReportJob{TenantID: tenant, Account: account, Since: at, Until: at.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewRunner(st, "node1", slog.New(slog.DiscardHandler)).RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := Download(ctx, st, tenant, job.ID, &out); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&out).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs[1:] {
			got = append(got, r[1])
		}
		if strings.Join(got, ",") != want {
			t.Errorf("report of %q has queue ids %v, want %s", account, got, want)
		}
	}
}
