package store

import (
	"context"
	"errors"
	"time"

	"hve/internal/trace"
)

// ErrStale: the caller acted on a view that another worker has since
// changed (the usage cursor moved, a report job's lease passed to another
// owner). Nothing was changed; the caller reads again.
var ErrStale = errors.New("changed by another worker")

// Usage holds usage counters, the metering cursor and detailed report jobs.
//
// Metering reads trace events in id order after a cursor and adds them to
// hourly counters; the counters and the cursor change in one transaction,
// so that a crash neither loses nor double-counts an event, and several
// nodes may meter at once (the cursor is compared and set). An
// implementation must make events visible in id order: one where a lower id
// can commit after a higher one (several writers drawing from a sequence)
// must hold MeterEvents back to what is settled.
type Usage interface {
	// UsageCursor returns the id of the last trace event counted.
	UsageCursor(ctx context.Context) (int64, error)
	// MeterEvents returns up to limit trace events of every tenant with an
	// id above afterID, lowest id first.
	MeterEvents(ctx context.Context, afterID int64, limit int) ([]MeterEvent, error)
	// AddUsage adds rows to the hourly counters (creating missing ones) and
	// moves the cursor from from to to, in one transaction. When the cursor
	// is no longer at from it changes nothing and returns ErrStale.
	AddUsage(ctx context.Context, from, to int64, rows []UsageRow) error
	// UsageHours returns a tenant's hourly counters, by hour and then
	// account. RefusalsByReason is never nil.
	UsageHours(ctx context.Context, q UsageQuery) ([]UsageRow, error)

	// CreateReportJob stores a queued detailed report job; ID, State and
	// CreatedAt are set by the store.
	CreateReportJob(ctx context.Context, j ReportJob) (ReportJob, error)
	// ReportJob returns one of the tenant's jobs (ErrNotFound for another
	// tenant's).
	ReportJob(ctx context.Context, tenantID, id int64) (ReportJob, error)
	// ClaimReportJob leases the oldest queued job, or a running one whose
	// lease has passed (its node died), to owner until now+lease and marks
	// it running. Chunks an earlier attempt wrote are removed. It returns
	// ErrNotFound when there is nothing to do.
	ClaimReportJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (ReportJob, error)
	// AddReportChunk stores chunk seq (0, 1, ...) of a job's CSV and extends
	// owner's lease to leaseUntil. It returns ErrStale when owner no longer
	// holds the job.
	AddReportChunk(ctx context.Context, id int64, owner string, seq int, data []byte, leaseUntil time.Time) error
	// FinishReportJob marks owner's job done with rows data rows, or failed
	// with the reason when failure is not empty. ErrStale as above.
	FinishReportJob(ctx context.Context, id int64, owner string, rows int64, failure string) error
	// ReportChunk returns chunk seq of one of the tenant's jobs; ErrNotFound
	// past the last one.
	ReportChunk(ctx context.Context, tenantID, id int64, seq int) ([]byte, error)
	// PruneReportJobs removes jobs (and their chunks) created before the
	// given time and returns how many.
	PruneReportJobs(ctx context.Context, createdBefore time.Time) (int, error)
	// DetailRows returns one page of a detailed report: the messages
	// received in the range (by their first Received event) and the
	// refusals at submission, ordered by (time, id) of that event. A
	// message has one row per recipient (the first event of each queue id
	// and recipient: envelope recipients, then the group members delivered
	// to, in the order trace met them); a refusal is one row.
	DetailRows(ctx context.Context, q DetailQuery) ([]DetailRow, error)
}

// MeterEvent is a trace event as metering reads it.
type MeterEvent struct {
	trace.Event
	// FirstReceived marks the first Received event (lowest id) of its
	// message: the one that counts the message and its size. A message has
	// one Received event per envelope recipient.
	FirstReceived bool
}

// UsageRow is the usage of one account (the sender address) in one hour,
// or the sum over a period.
type UsageRow struct {
	TenantID int64
	Account  string
	// Hour is the start of the UTC hour.
	Hour time.Time
	// Messages accepted, their envelope recipients and their bytes.
	Messages, Recipients, Bytes int64
	// ExpandedRecipients counts mailbox copies delivered (Delivered events,
	// after group expansion).
	ExpandedRecipients int64
	// Failures counts recipients whose delivery failed for good.
	Failures int64
	// Refusals counts submission refusals, RefusalsByReason them by the
	// reply's name (see package reply).
	Refusals         int64
	RefusalsByReason map[string]int64
}

// UsageQuery selects usage rows. Zero Since and Until do not bound.
type UsageQuery struct {
	TenantID int64
	// Account selects one sender address; empty means every account.
	Account string
	// Hours from the one holding Since up to, not including, Until.
	Since, Until time.Time
}

// The states of a report job.
const (
	ReportQueued  = "queued"
	ReportRunning = "running"
	ReportDone    = "done"
	ReportFailed  = "failed"
)

// ReportJob is an asynchronous detailed report: a CSV of every message and
// recipient of one account (or all) in a time range, stored in chunks in the
// database so that any node can serve it.
type ReportJob struct {
	ID       int64  `json:"id"`
	TenantID int64  `json:"-"`
	Account  string `json:"account"`
	// Messages received (and refusals made) in [Since, Until).
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	State string    `json:"state"`
	// Rows counts the CSV's data rows (without the header), once done.
	Rows       int64     `json:"rows"`
	Error      string    `json:"error,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Owner holds the job's lease while it runs.
	Owner string `json:"-"`
}

// DetailQuery selects a page of a detailed report.
type DetailQuery struct {
	TenantID int64
	// Senders selects messages and refusals of these sender addresses (an
	// account's primary address and aliases); empty means every sender.
	Senders []string
	// Messages received (refusals made) in [Since, Until); zero times do
	// not bound.
	Since, Until time.Time
	// AfterTime and AfterID page: messages and refusals come in the order
	// of (time, id) of their first event, and only those after
	// (AfterTime, AfterID) are returned. Zero values start at the
	// beginning; the last row's Time and ID continue.
	AfterTime time.Time
	AfterID   int64
	// Limit caps the messages and refusals of a page (a message brings all
	// its rows); 0 means 1000.
	Limit int
}

// DetailRow is one recipient of one message (or one refusal) and where it
// stands now.
type DetailRow struct {
	// ID and Time are those of the message's first Received event (the
	// refusal's event): the page key.
	ID   int64
	Time time.Time
	// Received is when the message was received (the refusal's time for a
	// refusal).
	Received  time.Time
	QueueID   string
	MessageID string
	Sender    string
	Recipient string
	Subject   string
	Size      int64
	// Status, Event, Detail and LastEventTime are those of the latest event
	// of the queue id and recipient.
	Status        string
	Event         string
	LastEventTime time.Time
	Detail        string
}
