// Package report produces detailed reports: an asynchronous job writes a
// CSV of every message and recipient of one account (or all) in a time
// range, and any node serves it for download.
//
// The CSV is stored in the database in chunks of ChunkSize, not in a file of
// one node's data directory, so that with several nodes the job may run on
// one and the download be served by another. Rows are read from trace in
// pages and written chunk by chunk: memory stays flat however large the
// range.
package report

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"hve/internal/store"
	"hve/internal/trace"
)

// Sizes of the work units; variables so that tests can make them small.
var (
	// PageSize is how many messages (each with its recipients) one store
	// read returns.
	PageSize = 1000
	// ChunkSize is the size of the stored CSV chunks.
	ChunkSize = 256 << 10
)

// Header is the header row of the detailed report CSV.
var Header = []string{"received", "queue_id", "message_id", "sender", "recipient", "subject", "size",
	"status", "last_event", "last_event_time", "detail"}

// Rows is where detailed rows are read from.
type Rows interface {
	DetailRows(ctx context.Context, q store.DetailQuery) ([]store.DetailRow, error)
}

// WriteCSV writes the detailed report of q (its paging fields are ignored)
// to w: the header, then every row, reading PageSize messages at a time.
// It returns the number of data rows.
func WriteCSV(ctx context.Context, src Rows, q store.DetailQuery, w io.Writer) (int64, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return 0, fmt.Errorf("writing report header: %w", err)
	}
	q.AfterTime, q.AfterID, q.Limit = time.Time{}, 0, PageSize
	var n int64
	for {
		page, err := src.DetailRows(ctx, q)
		if err != nil {
			return n, err
		}
		for _, r := range page {
			err := cw.Write([]string{
				formatTime(r.Received), r.QueueID, r.MessageID, r.Sender, r.Recipient, r.Subject, strconv.FormatInt(r.Size, 10),
				r.Status, r.Event, formatTime(r.LastEventTime), r.Detail,
			})
			if err != nil {
				return n, fmt.Errorf("writing report row: %w", err)
			}
			n++
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, fmt.Errorf("writing report: %w", err)
		}
		if anchors(page) < q.Limit {
			return n, nil
		}
		last := page[len(page)-1]
		q.AfterTime, q.AfterID = last.Time, last.ID
	}
}

// anchors counts the messages and refusals of a page: a message's rows
// share its key and come together.
func anchors(page []store.DetailRow) int {
	n := 0
	for i, r := range page {
		if i == 0 || r.ID != page[i-1].ID {
			n++
		}
	}
	return n
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Chunks is where a finished report's CSV is read from.
type Chunks interface {
	ReportChunk(ctx context.Context, tenantID, id int64, seq int) ([]byte, error)
}

// Download copies a finished report's CSV to w, one chunk at a time.
func Download(ctx context.Context, src Chunks, tenantID, id int64, w io.Writer) error {
	for seq := 0; ; seq++ {
		data, err := src.ReportChunk(ctx, tenantID, id, seq)
		if errors.Is(err, store.ErrNotFound) && seq > 0 {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("sending report %d: %w", id, err)
		}
	}
}

// ParseRange reads a report's time range. Each bound is what
// trace.ParseTime accepts, or "now"; a plain date as until means the end of
// that day, so that --since 2026-11-01 --until 2026-11-30 is all of
// November. An empty since is defaultSince before now's UTC midnight (0: no
// bound); an empty until is now.
func ParseRange(since, until string, now time.Time, defaultSince time.Duration) (time.Time, time.Time, error) {
	for _, b := range []*string{&since, &until} {
		if strings.EqualFold(strings.TrimSpace(*b), "now") {
			*b = "0s"
		}
	}
	s, err := trace.ParseTime(since, now)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("since: %w", err)
	}
	if strings.TrimSpace(since) == "" && defaultSince > 0 {
		s = now.UTC().Truncate(24 * time.Hour).Add(-defaultSince)
	}
	u, err := trace.ParseTime(until, now)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("until: %w", err)
	}
	if _, err := time.Parse(time.DateOnly, strings.TrimSpace(until)); err == nil {
		u = u.AddDate(0, 0, 1)
	}
	if strings.TrimSpace(until) == "" {
		u = now
	}
	if !s.IsZero() && !u.After(s) {
		return time.Time{}, time.Time{}, fmt.Errorf("until (%s) is not after since (%s)", u.UTC().Format(time.RFC3339), s.UTC().Format(time.RFC3339))
	}
	return s.UTC(), u.UTC(), nil
}
