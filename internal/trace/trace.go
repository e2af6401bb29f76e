// Package trace defines message trace events: what happened to each message
// and each recipient, from submission to delivery, and how to search them.
package trace

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event names: what happened.
const (
	EventReceived  = "Received"  // accepted at submission and queued
	EventRejected  = "Rejected"  // refused at submission; Detail holds the reply given
	EventExpanded  = "Expanded"  // a distribution group was expanded
	EventDelivered = "Delivered" // a copy reached the recipient's mailbox
	EventFailed    = "Failed"    // delivery to the recipient failed for good
	// EventDeferred: an attempt to hand the message to a next hop failed
	// temporarily; the status stays Pending and Detail holds the next
	// hop's reply and when the next attempt is due.
	EventDeferred = "Deferred"
	// EventHeld, EventReleased and EventRetried record an admin's queue
	// control (hve queue hold, release, retry); Detail names the admin.
	// A message deleted from the queue gets EventFailed for each open
	// recipient, with the admin in Detail.
	EventHeld     = "Held"
	EventReleased = "Released"
	EventRetried  = "Retried"
	// EventSignInRefused: a sign-in was refused; Sender is the username,
	// Detail the reply and the reason (a Conditional Access policy's name).
	EventSignInRefused = "SignInRefused"
	// EventSignInReportOnly: a report-only Conditional Access policy would
	// have blocked a sign-in that went ahead.
	EventSignInReportOnly = "SignInReportOnly"
	// EventAlert: an alert was raised about an account (a warning level
	// reached, an anomalous hourly volume; see package alert). Sender is
	// the account (empty for an alert about the whole tenant), Detail the
	// alert's kind and text; it has no status. Webhooks subscribed to
	// alerts receive it.
	EventAlert = "Alert"
)

// Events lists every event name, for validating filters.
var Events = []string{EventReceived, EventRejected, EventExpanded, EventDelivered, EventFailed, EventDeferred,
	EventHeld, EventReleased, EventRetried, EventSignInRefused, EventSignInReportOnly, EventAlert}

// Statuses: where a message or recipient stands, as admins filter on them.
const (
	StatusPending   = "Pending"
	StatusExpanded  = "Expanded"
	StatusDelivered = "Delivered"
	StatusFailed    = "Failed"
	StatusRejected  = "Rejected"
)

// Statuses lists every status, for validating filters.
var Statuses = []string{StatusPending, StatusExpanded, StatusDelivered, StatusFailed, StatusRejected}

// StatusQuarantined is a status of the spec that hve never sets: it has no
// mail flow rules yet, so nothing is quarantined. It is not in Statuses;
// ParseStatusFilter explains instead of calling it an unknown status.
const StatusQuarantined = "Quarantined"

// ErrNoQuarantine is the answer to a search for quarantined messages.
var ErrNoQuarantine = errors.New("hve quarantines nothing yet: mail flow rules are not implemented")

// Subject match modes of Query.SubjectMatch.
const (
	SubjectContains   = "contains" // the default
	SubjectStartsWith = "starts-with"
	SubjectEndsWith   = "ends-with"
)

// SubjectMatches lists every subject match mode, for validating filters.
var SubjectMatches = []string{SubjectContains, SubjectStartsWith, SubjectEndsWith}

// Event is one trace record.
type Event struct {
	ID        int64     `json:"id"`
	TenantID  int64     `json:"-"`
	Time      time.Time `json:"time"`
	QueueID   string    `json:"queue_id"`
	MessageID string    `json:"message_id"`
	Sender    string    `json:"sender"`
	Recipient string    `json:"recipient"`
	Event     string    `json:"event"`
	Status    string    `json:"status"`
	Detail    string    `json:"detail"`
	ClientIP  string    `json:"client_ip"`
	Subject   string    `json:"subject"`
	Size      int64     `json:"size"`
}

// Query selects trace events. Zero fields match everything.
type Query struct {
	TenantID  int64
	Sender    string
	Recipient string
	MessageID string
	QueueID   string
	// Status selects recipients whose current status it is: the status of
	// the latest event for the same queue id and recipient. Refusals at
	// submission (no queue id) stand on their own.
	Status string
	// Event selects events of this name (one of Events), exactly.
	Event    string
	ClientIP string
	// Subject selects events whose subject contains it (or starts or ends
	// with it, as SubjectMatch says), in any letter case.
	Subject string
	// SubjectMatch is one of SubjectMatches; empty means SubjectContains.
	SubjectMatch string
	Since        time.Time
	Until        time.Time
	// AfterID pages: only events with a larger ID are returned.
	AfterID int64
	// Limit caps the number of events; 0 means the store's default of 1000.
	Limit int
}

// ParseStatus accepts a status in any letter case.
func ParseStatus(s string) (string, error) {
	for _, st := range Statuses {
		if strings.EqualFold(s, st) {
			return st, nil
		}
	}
	return "", fmt.Errorf("status %q is not one of %s", s, strings.Join(Statuses, ", "))
}

// ParseEvent accepts an event name (one of Events) in any letter case and
// returns it as stored.
func ParseEvent(s string) (string, error) {
	s = strings.TrimSpace(s)
	for _, e := range Events {
		if strings.EqualFold(s, e) {
			return e, nil
		}
	}
	return "", fmt.Errorf("event %q is not one of %s", s, strings.Join(Events, ", "))
}

// ParseStatusFilter reads the status a search filters on: ParseStatus,
// except that Quarantined, a status of the spec hve cannot have yet, gets
// ErrNoQuarantine rather than an "unknown status" error that would suggest
// a typo.
func ParseStatusFilter(s string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(s), StatusQuarantined) {
		return "", ErrNoQuarantine
	}
	return ParseStatus(s)
}

// ParseSubjectMatch accepts a subject match mode in any letter case; the
// empty string is SubjectContains.
func ParseSubjectMatch(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return SubjectContains, nil
	}
	for _, m := range SubjectMatches {
		if strings.EqualFold(s, m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("subject match %q is not one of %s", s, strings.Join(SubjectMatches, ", "))
}

// ParseTime reads a trace time bound: RFC 3339 ("2026-11-23T10:00:00Z"), a
// date ("2026-11-23", midnight UTC), or a duration before now ("90m", "2h",
// "7d"). The empty string is the zero time (no bound).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-11-23T10:00:00Z), a date (2026-11-23) or a duration before now (90m, 2h, 7d)", s)
}
