// Package audit defines the audit log: one entry for every change an admin
// makes, through the CLI, the admin API or the web admin center, with who,
// when, what, and the object before and after, secrets redacted.
package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// Entry is one change.
type Entry struct {
	ID   int64     `json:"id"`
	Time time.Time `json:"time"`
	// Actor is the admin user's name, or "admin-token" for the bootstrap
	// token of <data>/admin.token.
	Actor string `json:"actor"`
	// Role is the actor's role at the time.
	Role string `json:"role"`
	// Via is how the change came: "cli", "api" or "ui".
	Via string `json:"via"`
	// TenantID is the tenant changed; 0 for a change outside any tenant
	// (admin users, signing keys).
	TenantID int64 `json:"-"`
	// Tenant is the tenant's name at the time, "" for none.
	Tenant string `json:"tenant"`
	// Action names the change ("account.update"); Object what it changed
	// (an address, a name).
	Action string `json:"action"`
	Object string `json:"object"`
	// Method and Path are the admin API request that made the change.
	Method string `json:"method"`
	Path   string `json:"path"`
	// Status is the HTTP status of the reply.
	Status int `json:"status"`
	// Request is the request body; Before and After are the object as the
	// API showed it before and after the change (null where there is none:
	// nothing before a creation, nothing after a removal). All three have
	// secrets redacted.
	Request    json.RawMessage `json:"request,omitempty"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
	RemoteAddr string          `json:"remote_addr"`
}

// Query selects audit entries, newest first. Zero fields match everything.
type Query struct {
	// TenantID selects one tenant's entries; 0 selects every entry.
	TenantID int64
	// Actor selects one actor's entries (exact name).
	Actor string
	Since time.Time
	Until time.Time
	// BeforeID pages: only entries with a smaller ID are returned.
	BeforeID int64
	// Limit caps the number of entries; 0 means DefaultLimit.
	Limit int
}

// DefaultLimit and MaxLimit bound one page of entries.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Redacted replaces every secret value.
const Redacted = "[redacted]"

// secretWords are the parts of a JSON key that mark its value as secret.
var secretWords = []string{"password", "secret", "token", "hash", "private", "totp_key"}

// IsSecretKey reports whether a JSON object key holds a secret.
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// Redact returns the JSON document doc with the value of every object key
// that IsSecretKey replaced by Redacted, at any depth. A document that is
// not JSON is replaced whole by a JSON string saying so: an audit entry
// must never carry a secret that redaction could not see.
func Redact(doc []byte) json.RawMessage {
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		b, _ := json.Marshal("[not JSON, not recorded]")
		return b
	}
	out, err := json.Marshal(redact(v))
	if err != nil {
		b, _ := json.Marshal("[not recorded]")
		return b
	}
	return out
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if IsSecretKey(k) {
				// Keep "no value" and flags (has_password) visible: they
				// tell "password removed" from "password set".
				switch val.(type) {
				case nil, bool:
				default:
					if val != "" {
						x[k] = Redacted
					}
				}
				continue
			}
			x[k] = redact(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = redact(x[i])
		}
		return x
	}
	return v
}
