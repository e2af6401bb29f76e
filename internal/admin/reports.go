package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"hve/internal/directory"
	"hve/internal/report"
	"hve/internal/store"
	"hve/internal/usage"
)

// UsageMeter brings the usage counters up to date with trace; a usage
// report asks it to first, so that what was just sent shows.
type UsageMeter interface {
	CatchUp(ctx context.Context) error
}

// ReportWaker is told that a detailed report job was queued.
type ReportWaker interface {
	Wake()
}

// defaultUsageDays is the range of a usage report without since: today
// and the 29 days before.
const defaultUsageDays = 29 * 24 * time.Hour

// catchUpWait bounds how long a usage report waits for metering to catch
// up before it answers with what is counted so far.
const catchUpWait = 2 * time.Second

func (a *API) reportRoutes(t func(string, tenantHandler)) {
	const base = "/api/v1/tenants/{tenant}/reports"
	t("GET "+base+"/usage", a.usageReport)
	t("POST "+base, a.requestReport)
	t("GET "+base+"/{id}", a.reportStatus)
	t("GET "+base+"/{id}/download", a.downloadReport)
}

// accountFilter reads an account filter: an alias names its account (usage
// is kept by primary address), and an address the tenant does not know (a
// removed account) stands for itself. Empty means every account.
func (a *API) accountFilter(ctx context.Context, t directory.Tenant, s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	addr, err := directory.NormalizeAddress(s)
	if err != nil {
		return "", badRequest("account: %v", err)
	}
	e, err := a.store.Lookup(ctx, addr)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	if err == nil && e.TenantID == t.ID && (e.Kind == directory.KindAccount || e.Kind == directory.KindMailbox) {
		return e.Address, nil
	}
	return addr, nil
}

func (a *API) usageReport(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	p := r.URL.Query()
	by, err := usage.ParseBy(p.Get("by"))
	if err != nil {
		return badRequest("%v", err)
	}
	format := strings.ToLower(p.Get("format"))
	if format != "" && format != "json" && format != "csv" {
		return badRequest("format %q is not one of json, csv", p.Get("format"))
	}
	since, until, err := report.ParseRange(p.Get("since"), p.Get("until"), time.Now(), defaultUsageDays)
	if err != nil {
		return badRequest("%v", err)
	}
	account, err := a.accountFilter(r.Context(), t, p.Get("account"))
	if err != nil {
		return err
	}
	if a.opts.Usage != nil {
		ctx, cancel := context.WithTimeout(r.Context(), catchUpWait)
		err := a.opts.Usage.CatchUp(ctx)
		cancel()
		if err != nil && r.Context().Err() == nil {
			// The background aggregator keeps trying; the report shows
			// what is counted so far.
			a.log.Warn("usage report: metering has not caught up", "err", err)
		}
	}
	hours, err := a.store.UsageHours(r.Context(), store.UsageQuery{TenantID: t.ID, Account: account, Since: since, Until: until})
	if err != nil {
		return err
	}
	price := usage.Price(t.Settings)
	rows, total := usage.Summarize(hours, by, price)
	rep := usage.Report{Since: since, Until: until, By: by, PricePerMillion: price, Rows: rows, Total: total}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="usage.csv"`)
		if err := rep.WriteCSV(w); err != nil {
			a.log.Warn("usage report: sending CSV failed", "err", err)
		}
		return nil
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (a *API) requestReport(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Account string `json:"account"`
		Since   string `json:"since"`
		Until   string `json:"until"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Since) == "" || strings.TrimSpace(req.Until) == "" {
		return badRequest("since and until are required")
	}
	since, until, err := report.ParseRange(req.Since, req.Until, time.Now(), 0)
	if err != nil {
		return badRequest("%v", err)
	}
	account, err := a.accountFilter(r.Context(), t, req.Account)
	if err != nil {
		return err
	}
	job, err := a.store.CreateReportJob(r.Context(), store.ReportJob{TenantID: t.ID, Account: account, Since: since, Until: until})
	if err != nil {
		return err
	}
	a.audit(r, t, "report.request", strconv.FormatInt(job.ID, 10))
	if a.opts.Reports != nil {
		a.opts.Reports.Wake()
	}
	writeJSON(w, http.StatusAccepted, job)
	return nil
}

// reportJob reads the job named by the {id} path segment.
func (a *API) reportJob(r *http.Request, t directory.Tenant) (store.ReportJob, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return store.ReportJob{}, badRequest("report id must be a number")
	}
	return a.store.ReportJob(r.Context(), t.ID, id)
}

func (a *API) reportStatus(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	job, err := a.reportJob(r, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}

func (a *API) downloadReport(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	job, err := a.reportJob(r, t)
	if err != nil {
		return err
	}
	if job.State != store.ReportDone {
		msg := fmt.Sprintf("report %d is %s, not done yet; poll GET .../reports/%d", job.ID, job.State, job.ID)
		if job.State == store.ReportFailed {
			msg = fmt.Sprintf("report %d failed: %s; request it again", job.ID, job.Error)
		}
		return &apiError{http.StatusConflict, "not_ready", msg}
	}
	sw := &startWriter{w: w, start: func() {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="report-%d.csv"`, job.ID))
	}}
	err = report.Download(r.Context(), a.store, t.ID, job.ID, sw)
	if err == nil || !sw.started {
		return err
	}
	// Part of the CSV is out: cutting the connection, rather than ending
	// the body normally, tells the client the file is incomplete.
	if !errors.Is(err, context.Canceled) {
		a.log.Error("report download broke off", "report", job.ID, "err", err)
	}
	panic(http.ErrAbortHandler)
}

// startWriter calls start before the first byte goes out, so that a
// download that fails at once still gets a JSON error reply.
type startWriter struct {
	w       http.ResponseWriter
	start   func()
	started bool
}

func (s *startWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.start()
	}
	return s.w.Write(p)
}
