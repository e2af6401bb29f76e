package webui

// The operations pages: home, message trace, reports, queue, audit log,
// and admin users with their API tokens.

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"hve/internal/admin"
	"hve/internal/adminauth"
	"hve/internal/audit"
	"hve/internal/trace"
)

// --- home ---

// health is one tenant's row on the home page (the API's health reply),
// with the tenant's recent alerts.
type health struct {
	Tenant     string    `json:"tenant"`
	Since      time.Time `json:"since"`
	Messages   int       `json:"messages"`
	Refusals   int       `json:"refusals"`
	Failed     int       `json:"failed"`
	QueueDepth int       `json:"queue_depth"`
	Alerts     []string  `json:"alerts"`
	// Note replaces the figures for an admin who may not read them.
	Note string `json:"-"`
	// RecentAlerts are the newest of the tenant's Alert trace events of
	// the last day (at most recentAlertsShown), newest first, out of
	// AlertCount; AlertsLink searches them all in message trace.
	// AlertsNote says why they are not shown (empty: they are).
	RecentAlerts []trace.Event `json:"-"`
	AlertCount   int           `json:"-"`
	AlertsLink   string        `json:"-"`
	AlertsNote   string        `json:"-"`
}

const (
	// recentAlertsShown is how many alerts a tenant's card lists.
	recentAlertsShown = 5
	// recentAlertsPages bounds the pages of 1000 alerts read per tenant:
	// the search runs oldest first, and the card wants the newest.
	recentAlertsPages = 20
)

// recentAlerts reads the tenant's Alert trace events of the day before
// now and keeps the newest few, newest first. It returns how many there
// are in all.
func (u *UI) recentAlerts(r *http.Request, s *session, tenant string, now time.Time) ([]trace.Event, int, error) {
	q := url.Values{"event": {trace.EventAlert}, "since": {now.Add(-24 * time.Hour).UTC().Format(time.RFC3339Nano)}, "limit": {"1000"}}
	var newest []trace.Event
	count := 0
	for range recentAlertsPages {
		var page []trace.Event
		if err := u.call(r, s, "GET", "/api/v1/tenants/"+url.PathEscape(tenant)+"/trace?"+q.Encode(), nil, &page); err != nil {
			return nil, 0, err
		}
		count += len(page)
		newest = append(newest, page...)
		if len(newest) > recentAlertsShown {
			newest = slices.Clone(newest[len(newest)-recentAlertsShown:])
		}
		if len(page) < 1000 {
			slices.Reverse(newest)
			return newest, count, nil
		}
		q.Set("after", strconv.FormatInt(page[len(page)-1].ID, 10))
	}
	return nil, count, fmt.Errorf("more than %d alerts in the last 24 hours", count)
}

func (u *UI) home(r *http.Request, s *session, v *view) error {
	var list []health
	now := u.cfg.Now()
	for _, t := range v.Tenants {
		var h health
		// A trace-reader may not read the health summary (it is not a
		// trace route); its cards lead to trace and reports, with a plain
		// note instead of an error, and show the alerts, which are trace.
		if v.TracerOnly() {
			h = health{Tenant: t, Note: "Health figures are for readers and admins; message trace and reports show this tenant's mail."}
		} else if err := u.call(r, s, "GET", "/api/v1/tenants/"+url.PathEscape(t)+"/health", nil, &h); err != nil {
			return err
		}
		h.AlertsLink = "/trace?" + url.Values{"tenant": {t}, "event": {trace.EventAlert}, "since": {"1d"}}.Encode()
		var err error
		if h.RecentAlerts, h.AlertCount, err = u.recentAlerts(r, s, t, now); err != nil {
			h.AlertsNote = "Recent alerts cannot be shown: " + err.Error() + "."
		}
		list = append(list, h)
	}
	v.Data = list
	return nil
}

// --- message trace ---

type traceView struct {
	Filters  url.Values
	Statuses []string
	// EventNames are the names the event filter offers.
	EventNames []string
	// SubjectMatches are the subject filter's modes, contains first.
	SubjectMatches []string
	Events         []trace.Event
	// Next is the link of the next page; Searched says a search ran.
	Next     string
	Searched bool
	CSV      string
}

// traceParams are the API's trace filters the page passes through. The
// subject filter is the API's too: it runs in the store over every event,
// not over one page of results.
var traceParams = []string{"since", "until", "sender", "recipient", "message_id", "queue_id", "client_ip", "status", "event", "subject", "subject_match"}

func (u *UI) searchTrace(r *http.Request, s *session, v *view, limit int) ([]trace.Event, url.Values, int64, error) {
	q := url.Values{}
	for _, k := range traceParams {
		if val := strings.TrimSpace(r.FormValue(k)); val != "" {
			q.Set(k, val)
		}
	}
	q.Set("limit", strconv.Itoa(limit))
	if a := r.FormValue("after"); a != "" {
		q.Set("after", a)
	}
	var events []trace.Event
	if err := u.call(r, s, "GET", v.API("/trace?"+q.Encode()), nil, &events); err != nil {
		return nil, nil, 0, err
	}
	var last int64
	if len(events) == limit {
		last = events[len(events)-1].ID
	}
	return events, q, last, nil
}

func (u *UI) trace(r *http.Request, s *session, v *view) error {
	// Without a time or id filter, the last day: the whole retention
	// would be slow to page through and rarely what is wanted.
	if r.FormValue("since") == "" && r.FormValue("queue_id") == "" && r.FormValue("message_id") == "" {
		r.Form.Set("since", "1d")
	}
	d := traceView{Filters: url.Values{}, Statuses: trace.Statuses, EventNames: trace.Events, SubjectMatches: trace.SubjectMatches, Searched: true}
	for k, vals := range r.Form {
		if k != "after" {
			d.Filters[k] = vals
		}
	}
	const pageSize = 200
	events, _, last, err := u.searchTrace(r, s, v, pageSize)
	if err != nil {
		return err
	}
	d.Events = events
	if last != 0 {
		next := url.Values{}
		for k, vals := range d.Filters {
			next[k] = vals
		}
		next.Set("after", strconv.FormatInt(last, 10))
		d.Next = "/trace?" + next.Encode()
	}
	d.CSV = "/trace.csv?" + d.Filters.Encode()
	v.Data = d
	return nil
}

// exportTrace writes every event of the search (up to 10,000) as CSV.
func (u *UI) exportTrace(w http.ResponseWriter, r *http.Request) {
	s := u.session(r)
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	v, err := u.newView(w, r, s, "", "")
	if err != nil {
		u.fail(w, r, err)
		return
	}
	var all []trace.Event
	for len(all) < 10_000 {
		events, _, last, err := u.searchTrace(r, s, v, 1000)
		if err != nil {
			if ae, ok := err.(*apiError); ok {
				http.Error(w, ae.Message, ae.Status)
				return
			}
			u.fail(w, r, err)
			return
		}
		all = append(all, events...)
		if last == 0 {
			break
		}
		r.Form.Set("after", strconv.FormatInt(last, 10))
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="trace.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"time", "queue_id", "message_id", "sender", "recipient", "event", "status", "detail", "client_ip", "subject", "size"})
	for _, e := range all {
		cw.Write([]string{e.Time.UTC().Format(time.RFC3339Nano), e.QueueID, e.MessageID, e.Sender, e.Recipient, e.Event, e.Status,
			e.Detail, e.ClientIP, csvSafe(e.Subject), strconv.FormatInt(e.Size, 10)})
	}
	cw.Flush()
}

// csvSafe keeps a cell from being read as a formula by spreadsheets (a
// subject is written by whoever sends the mail).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

type timelineView struct {
	QueueID string
	Events  []trace.Event
	First   trace.Event
}

func (u *UI) timeline(r *http.Request, s *session, v *view) error {
	id := r.PathValue("queue_id")
	var events []trace.Event
	if err := u.call(r, s, "GET", v.API("/trace?limit=1000&queue_id="+url.QueryEscape(id)), nil, &events); err != nil {
		return err
	}
	d := timelineView{QueueID: id, Events: events}
	if len(events) == 0 {
		return &apiError{Status: http.StatusNotFound, Message: "message trace has no message with queue id " + id + " in tenant " + v.Tenant}
	}
	d.First = events[0]
	v.Title = "Message " + id
	v.Data = d
	return nil
}

// --- reports ---

type usageRow struct {
	Account            string           `json:"account"`
	Period             string           `json:"period"`
	Messages           int64            `json:"messages"`
	Recipients         int64            `json:"recipients"`
	ExpandedRecipients int64            `json:"expanded_recipients"`
	Bytes              int64            `json:"bytes"`
	Failures           int64            `json:"failures"`
	Refusals           int64            `json:"refusals"`
	RefusalsByReason   map[string]int64 `json:"refusals_by_reason"`
	EstimatedCost      float64          `json:"estimated_cost"`
}

type usageReport struct {
	Since           time.Time  `json:"since"`
	Until           time.Time  `json:"until"`
	By              string     `json:"by"`
	PricePerMillion float64    `json:"price_per_million"`
	Rows            []usageRow `json:"rows"`
	Total           usageRow   `json:"total"`
}

// chart is a bar chart drawn as inline SVG (no script, no library).
type chart struct {
	Title  string
	Label  string
	Width  int
	Height int
	Max    int64
	Bars   []bar
}

type bar struct {
	X, Y, W, H int
	Label      string
	Value      int64
}

// barChart lays out one bar per period.
func barChart(title string, periods []string, values map[string]int64) chart {
	c := chart{Title: title, Width: 600, Height: 160}
	for _, p := range periods {
		c.Max = max(c.Max, values[p])
	}
	if len(periods) == 0 {
		return c
	}
	slot := c.Width / len(periods)
	for i, p := range periods {
		h := 0
		if c.Max > 0 {
			h = int(values[p] * int64(c.Height-20) / c.Max)
		}
		c.Bars = append(c.Bars, bar{X: i*slot + slot/8, W: max(1, slot*3/4), Y: c.Height - h, H: h, Label: p, Value: values[p]})
	}
	c.Label = fmt.Sprintf("%s: %d periods from %s to %s, at most %d", title, len(periods), periods[0], periods[len(periods)-1], c.Max)
	return c
}

type sender struct {
	Account  string
	Messages int64
	Cost     float64
}

type reason struct {
	Reason string
	Count  int64
}

type reportsView struct {
	Available bool
	Report    usageReport
	Since     string
	Until     string
	Account   string
	Charts    []chart
	Senders   []sender
	Reasons   []reason
	CSV       string
}

func (u *UI) reports(r *http.Request, s *session, v *view) error {
	path := v.API("/reports/usage")
	d := reportsView{Available: u.exists("GET", path), Since: r.FormValue("since"), Until: r.FormValue("until"), Account: r.FormValue("account")}
	v.Data = d
	if !d.Available {
		return nil
	}
	q := url.Values{}
	for k, val := range map[string]string{"since": d.Since, "until": d.Until, "account": d.Account} {
		if val != "" {
			q.Set(k, val)
		}
	}
	if err := u.call(r, s, "GET", path+"?"+q.Encode(), nil, &d.Report); err != nil {
		return err
	}
	q.Set("format", "csv")
	q.Set("tenant", v.Tenant)
	d.CSV = "/reports/usage.csv?" + q.Encode()
	// Periods from since to until, so that quiet days show as empty bars.
	var periods []string
	for t := d.Report.Since.UTC(); t.Before(d.Report.Until) && len(periods) < 400; t = t.AddDate(0, 0, 1) {
		periods = append(periods, t.Format(time.DateOnly))
	}
	total := map[string]int64{}
	per := map[string]map[string]int64{}
	bySender := map[string]*sender{}
	for _, row := range d.Report.Rows {
		total[row.Period] += row.Messages
		if per[row.Account] == nil {
			per[row.Account] = map[string]int64{}
		}
		per[row.Account][row.Period] += row.Messages
		sd := bySender[row.Account]
		if sd == nil {
			sd = &sender{Account: row.Account}
			bySender[row.Account] = sd
		}
		sd.Messages += row.Messages
		sd.Cost += row.EstimatedCost
	}
	for _, sd := range bySender {
		d.Senders = append(d.Senders, *sd)
	}
	slices.SortFunc(d.Senders, func(a, b sender) int {
		return cmp.Or(cmp.Compare(b.Messages, a.Messages), strings.Compare(a.Account, b.Account))
	})
	d.Charts = append(d.Charts, barChart("Messages per day, all accounts", periods, total))
	for i, sd := range d.Senders {
		if i == 5 {
			break
		}
		d.Charts = append(d.Charts, barChart("Messages per day, "+sd.Account, periods, per[sd.Account]))
	}
	for k, n := range d.Report.Total.RefusalsByReason {
		d.Reasons = append(d.Reasons, reason{k, n})
	}
	slices.SortFunc(d.Reasons, func(a, b reason) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Reason, b.Reason))
	})
	v.Data = d
	return nil
}

func (u *UI) requestReport(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"account": strings.TrimSpace(r.PostFormValue("account")), "since": r.PostFormValue("since"), "until": r.PostFormValue("until")}
	var job struct {
		ID int64 `json:"id"`
	}
	if err := u.call(r, s, "POST", v.API("/reports"), req, &job); err != nil {
		return "", false, err
	}
	u.setFlash(w, r, flash{OK: fmt.Sprintf("Detailed report %d requested.", job.ID)})
	http.Redirect(w, r, v.Link(fmt.Sprintf("/reports/%d", job.ID)), http.StatusSeeOther)
	return "", true, nil
}

type reportJob struct {
	ID         int64     `json:"id"`
	Account    string    `json:"account"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
	State      string    `json:"state"`
	Rows       int64     `json:"rows"`
	Error      string    `json:"error"`
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at"`
}

func (u *UI) reportStatus(r *http.Request, s *session, v *view) error {
	var job reportJob
	if err := u.call(r, s, "GET", v.API("/reports/"+url.PathEscape(r.PathValue("id"))), nil, &job); err != nil {
		return err
	}
	v.Title = fmt.Sprintf("Detailed report %d", job.ID)
	v.Data = job
	return nil
}

// proxy hands a download (a report's CSV) to the API as the signed-in
// admin, streaming the reply as it comes.
func (u *UI) proxy(w http.ResponseWriter, r *http.Request, apiPath string) {
	s := u.session(r)
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	req, err := http.NewRequestWithContext(admin.WithPrincipal(r.Context(), s.principal), "GET", apiPath, nil)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	req.RemoteAddr = r.RemoteAddr
	u.cfg.API.ServeHTTP(w, req)
}

func (u *UI) downloadReport(w http.ResponseWriter, r *http.Request) {
	tenant := r.FormValue("tenant")
	u.proxy(w, r, "/api/v1/tenants/"+url.PathEscape(tenant)+"/reports/"+url.PathEscape(r.PathValue("id"))+"/download")
}

func (u *UI) usageCSV(w http.ResponseWriter, r *http.Request) {
	q := url.Values{"format": {"csv"}}
	for _, k := range []string{"since", "until", "account"} {
		if val := r.FormValue(k); val != "" {
			q.Set(k, val)
		}
	}
	u.proxy(w, r, "/api/v1/tenants/"+url.PathEscape(r.FormValue("tenant"))+"/reports/usage?"+q.Encode())
}

// --- queue ---

// queueItem is one queued message as the queue API shows it.
type queueItem struct {
	QueueID       string    `json:"queue_id"`
	Sender        string    `json:"sender"`
	Subject       string    `json:"subject"`
	Size          int64     `json:"size"`
	ReceivedAt    time.Time `json:"received_at"`
	Status        string    `json:"status"`
	HeldBy        string    `json:"held_by"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
	Attempts      int       `json:"attempts"`
	LastReply     string    `json:"last_reply"`
	Recipients    []struct {
		Address string `json:"address"`
	} `json:"recipients"`
}

// queueView is the queue page: Available is false while this build's API
// has no queue endpoint.
type queueView struct {
	Available bool
	Status    string
	Items     []queueItem
	Next      string
}

func (u *UI) queue(r *http.Request, s *session, v *view) error {
	path := v.API("/queue")
	d := queueView{Available: u.exists("GET", path), Status: r.FormValue("status")}
	v.Data = d
	if !d.Available {
		return nil
	}
	q := url.Values{}
	for _, k := range []string{"status", "cursor"} {
		if val := r.FormValue(k); val != "" {
			q.Set(k, val)
		}
	}
	var page struct {
		Items      []queueItem `json:"items"`
		NextCursor string      `json:"next_cursor"`
	}
	if err := u.call(r, s, "GET", path+"?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	d.Items = page.Items
	if page.NextCursor != "" {
		next := url.Values{"cursor": {page.NextCursor}, "tenant": {v.Tenant}}
		if d.Status != "" {
			next.Set("status", d.Status)
		}
		d.Next = "/queue?" + next.Encode()
	}
	v.Data = d
	return nil
}

// retryAll retries every deferred message of the tenant now, or only
// those for one recipient domain.
func (u *UI) retryAll(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	domain := strings.TrimSpace(r.PostFormValue("domain"))
	var res struct {
		Retried int `json:"retried"`
	}
	if err := u.call(r, s, "POST", v.API("/queue/retry-all"), map[string]any{"domain": domain}, &res); err != nil {
		return "", false, err
	}
	if domain == "" {
		return fmt.Sprintf("%d message(s) will be retried now.", res.Retried), false, nil
	}
	return fmt.Sprintf("%d message(s) for %s will be retried now.", res.Retried, domain), false, nil
}

// queueVerbs are the queue actions the page offers.
var queueVerbs = []string{"retry", "hold", "release", "delete"}

func (u *UI) queueAction(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	id, verb := r.PathValue("id"), r.PathValue("verb")
	if !slices.Contains(queueVerbs, verb) {
		return "", false, &apiError{Status: http.StatusBadRequest, Message: "unknown queue action " + verb}
	}
	path := v.API("/queue/" + url.PathEscape(id))
	method := "DELETE"
	if verb != "delete" {
		method, path = "POST", path+"/"+verb
	}
	return fmt.Sprintf("Message %s: %s done.", id, verb), false, u.call(r, s, method, path, nil, nil)
}

// --- audit ---

type auditView struct {
	Entries []audit.Entry
	Actor   string
	Since   string
	All     bool
	Next    string
}

func (u *UI) audit(r *http.Request, s *session, v *view) error {
	d := auditView{Actor: r.FormValue("actor"), Since: r.FormValue("since"), All: r.FormValue("all") != "" && v.Admin.Tenant == ""}
	q := url.Values{}
	for k, val := range map[string]string{"actor": d.Actor, "since": d.Since, "cursor": r.FormValue("cursor")} {
		if val != "" {
			q.Set(k, val)
		}
	}
	q.Set("limit", "50")
	path := v.API("/audit")
	if d.All {
		path = "/api/v1/audit"
	}
	var page struct {
		Items      []audit.Entry `json:"items"`
		NextCursor string        `json:"next_cursor"`
	}
	if err := u.call(r, s, "GET", path+"?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	d.Entries = page.Items
	if page.NextCursor != "" {
		next := url.Values{"cursor": {page.NextCursor}, "tenant": {v.Tenant}}
		for k, val := range map[string]string{"actor": d.Actor, "since": d.Since} {
			if val != "" {
				next.Set(k, val)
			}
		}
		if d.All {
			next.Set("all", "1")
		}
		d.Next = "/audit?" + next.Encode()
	}
	v.Data = d
	return nil
}

// --- admins and tokens ---

type adminsView struct {
	Users  []adminauth.User
	Tokens []adminauth.Token
	Roles  []adminauth.Role
	// Self: the signed-in admin is an admin user (the bootstrap token
	// cannot sign in here, so always).
	Self string
}

func (u *UI) admins(r *http.Request, s *session, v *view) error {
	d := adminsView{Roles: adminauth.Roles, Self: s.user.Name}
	if v.Global() {
		if err := u.call(r, s, "GET", "/api/v1/admin-users", nil, &d.Users); err != nil {
			return err
		}
	}
	if err := u.call(r, s, "GET", "/api/v1/me/tokens", nil, &d.Tokens); err != nil {
		return err
	}
	v.Data = d
	return nil
}

func (u *UI) createAdmin(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	req := map[string]any{"name": r.PostFormValue("name"), "role": r.PostFormValue("role"), "tenant": r.PostFormValue("scope"),
		"password": r.PostFormValue("password"), "totp": checked(r, "totp")}
	var created struct {
		adminauth.User
		TOTPKey string `json:"totp_key"`
		TOTPURI string `json:"totp_uri"`
	}
	if err := u.call(r, s, "POST", "/api/v1/admin-users", req, &created); err != nil {
		return "", false, err
	}
	if created.TOTPKey == "" {
		return "Created admin user " + created.Name + ".", false, nil
	}
	u.showSecret(w, v, secretView{Heading: "Admin user created", Label: "TOTP key of " + created.Name, Secret: created.TOTPKey, Extra: created.TOTPURI,
		Note: "Add this key to the user's authenticator app now (type the key, or paste the otpauth URI): it is shown this once.",
		Back: v.Link("/admins"), BackText: "Back to admins"})
	return "", true, nil
}

func (u *UI) enableAdmin(on bool) actionFunc {
	return func(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
		name := r.PathValue("name")
		return fmt.Sprintf("Admin user %s %s.", name, map[bool]string{true: "enabled", false: "disabled"}[on]), false,
			u.call(r, s, "PATCH", "/api/v1/admin-users/"+url.PathEscape(name), map[string]any{"enabled": on}, nil)
	}
}

func (u *UI) removeAdmin(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	name := r.PathValue("name")
	return "Admin user " + name + " removed.", false, u.call(r, s, "DELETE", "/api/v1/admin-users/"+url.PathEscape(name), nil, nil)
}

func (u *UI) createToken(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	var created struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
	}
	req := map[string]any{"name": r.PostFormValue("name"), "expires": strings.TrimSpace(r.PostFormValue("expires"))}
	if err := u.call(r, s, "POST", "/api/v1/me/tokens", req, &created); err != nil {
		return "", false, err
	}
	u.showSecret(w, v, secretView{Heading: "New API token", Label: fmt.Sprintf("API token %d of %s", created.ID, s.user.Name), Secret: created.Token,
		Note: "Copy it now: it is shown this once. Use it as hve --token, HVE_TOKEN, or Authorization: Bearer.",
		Back: v.Link("/admins"), BackText: "Back to admins and tokens"})
	return "", true, nil
}

func (u *UI) removeToken(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	id := r.PathValue("id")
	return "Token " + id + " removed.", false, u.call(r, s, "DELETE", "/api/v1/me/tokens/"+url.PathEscape(id), nil, nil)
}

// --- webhooks ---

// webhookItem is one webhook as the API lists it (never its secret).
type webhookItem struct {
	ID         int64     `json:"id"`
	URL        string    `json:"url"`
	SecretHint string    `json:"secret_hint"`
	Events     []string  `json:"events"`
	CreatedAt  time.Time `json:"created_at"`
}

// webhookEvents are the events a webhook may subscribe to
// (docs/webhooks.md).
var webhookEvents = []string{"alert", "delivered", "deferred", "failed"}

type webhooksView struct {
	Hooks  []webhookItem
	Events []string
}

func (u *UI) webhooks(r *http.Request, s *session, v *view) error {
	d := webhooksView{Events: webhookEvents}
	if err := u.call(r, s, "GET", v.API("/webhooks"), nil, &d.Hooks); err != nil {
		return err
	}
	v.Data = d
	return nil
}

func (u *UI) createWebhook(w http.ResponseWriter, r *http.Request, s *session, v *view) (string, bool, error) {
	var events []string
	for _, e := range webhookEvents {
		if checked(r, "event_"+e) {
			events = append(events, e)
		}
	}
	// No event ticked subscribes to every event, as in the API.
	req := map[string]any{"url": strings.TrimSpace(r.PostFormValue("url")), "events": events}
	if sec := r.PostFormValue("secret"); sec != "" {
		req["secret"] = sec
	}
	var created struct {
		webhookItem
		Secret string `json:"secret"`
	}
	if err := u.call(r, s, "POST", v.API("/webhooks"), req, &created); err != nil {
		return "", false, err
	}
	if created.Secret == "" {
		return fmt.Sprintf("Webhook %d added with the secret you gave.", created.ID), false, nil
	}
	u.showSecret(w, v, secretView{Heading: "Webhook added", Label: fmt.Sprintf("Signing secret of webhook %d (%s)", created.ID, created.URL), Secret: created.Secret,
		Note: "Copy it now into the receiving system: it is shown this once. It is the HMAC-SHA256 key of the X-Hve-Signature header.",
		Back: v.Link("/webhooks"), BackText: "Back to webhooks"})
	return "", true, nil
}
