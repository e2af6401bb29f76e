package usage

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
)

// The periods a usage report sums over.
const (
	ByDay  = "day"
	ByHour = "hour"
)

// ParseBy accepts a period name; empty means ByDay.
func ParseBy(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", ByDay:
		return ByDay, nil
	case ByHour:
		return ByHour, nil
	}
	return "", fmt.Errorf("by %q is not one of day, hour", s)
}

// Price returns a tenant's price per million delivered recipients; an unset
// price (0, as tenants made before prices existed have) is the default.
func Price(s directory.Settings) float64 {
	if s.PricePerMillion > 0 {
		return s.PricePerMillion
	}
	return directory.DefaultPricePerMillion
}

// Counts are the usage figures of a row or a total.
type Counts struct {
	// Messages accepted at submission.
	Messages int64 `json:"messages"`
	// Recipients counts envelope recipients of the accepted messages.
	Recipients int64 `json:"recipients"`
	// ExpandedRecipients counts mailbox copies delivered, after group
	// expansion: what the cost is estimated from.
	ExpandedRecipients int64 `json:"expanded_recipients"`
	// Bytes is the size of the accepted messages.
	Bytes int64 `json:"bytes"`
	// Failures counts recipients whose delivery failed for good.
	Failures int64 `json:"failures"`
	// Refusals counts recipients or messages refused at submission, and
	// RefusalsByReason them by reply name (docs/errors.md).
	Refusals         int64            `json:"refusals"`
	RefusalsByReason map[string]int64 `json:"refusals_by_reason"`
	// EstimatedCost is ExpandedRecipients x the price per million / 1e6.
	EstimatedCost float64 `json:"estimated_cost"`
}

func (c *Counts) add(r store.UsageRow) {
	c.Messages += r.Messages
	c.Recipients += r.Recipients
	c.ExpandedRecipients += r.ExpandedRecipients
	c.Bytes += r.Bytes
	c.Failures += r.Failures
	c.Refusals += r.Refusals
	for reason, n := range r.RefusalsByReason {
		c.RefusalsByReason[reason] += n
	}
}

// Row is one account's usage in one period.
type Row struct {
	Account string `json:"account"`
	// Period is the UTC day ("2026-11-23") or hour ("2026-11-23T10:00:00Z").
	Period string `json:"period"`
	Counts
}

// Report is a usage report: rows by period and then account (periods
// without traffic have none), and their total.
type Report struct {
	Since           time.Time `json:"since"`
	Until           time.Time `json:"until"`
	By              string    `json:"by"`
	PricePerMillion float64   `json:"price_per_million"`
	Rows            []Row     `json:"rows"`
	Total           Counts    `json:"total"`
}

// Summarize sums hourly rows (as store.UsageHours returns them, by hour)
// into periods of by (ByDay: UTC days) and prices them.
func Summarize(hours []store.UsageRow, by string, pricePerMillion float64) ([]Row, Counts) {
	total := Counts{RefusalsByReason: map[string]int64{}}
	rows := []Row{}
	index := map[[2]string]int{}
	for _, h := range hours {
		period := h.Hour.UTC().Format(time.RFC3339)
		if by == ByDay {
			period = h.Hour.UTC().Format(time.DateOnly)
		}
		k := [2]string{period, h.Account}
		i, ok := index[k]
		if !ok {
			i = len(rows)
			index[k] = i
			rows = append(rows, Row{Account: h.Account, Period: period, Counts: Counts{RefusalsByReason: map[string]int64{}}})
		}
		rows[i].add(h)
		total.add(h)
	}
	// Hours come in order, so periods do; accounts within a period may
	// not when an hour lacks one.
	slices.SortStableFunc(rows, func(a, b Row) int {
		if c := strings.Compare(a.Period, b.Period); c != 0 {
			return c
		}
		return strings.Compare(a.Account, b.Account)
	})
	for i := range rows {
		rows[i].EstimatedCost = Cost(rows[i].ExpandedRecipients, pricePerMillion)
	}
	total.EstimatedCost = Cost(total.ExpandedRecipients, pricePerMillion)
	return rows, total
}

// Cost estimates the price of delivering to n recipients.
func Cost(n int64, pricePerMillion float64) float64 {
	return float64(n) * pricePerMillion / 1e6
}

// FormatCost renders a cost with the six decimals a single recipient
// needs (42 per million is 0.000042 each).
func FormatCost(c float64) string { return strconv.FormatFloat(c, 'f', 6, 64) }

// FormatReasons renders refusals by reason as "name=n;name=n", names in
// order, for CSV and tables.
func FormatReasons(m map[string]int64) string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = name + "=" + strconv.FormatInt(m[name], 10)
	}
	return strings.Join(parts, ";")
}

// CSVHeader is the header row of the usage CSV.
var CSVHeader = []string{"account", "period", "messages", "recipients", "expanded_recipients", "bytes", "failures",
	"refusals", "refusals_by_reason", "estimated_cost"}

// WriteCSV writes the report's rows as CSV with a header row.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	n := strconv.FormatInt
	for _, row := range r.Rows {
		cw.Write([]string{row.Account, row.Period, n(row.Messages, 10), n(row.Recipients, 10), n(row.ExpandedRecipients, 10),
			n(row.Bytes, 10), n(row.Failures, 10), n(row.Refusals, 10), FormatReasons(row.RefusalsByReason), FormatCost(row.EstimatedCost)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing usage CSV: %w", err)
	}
	return nil
}
