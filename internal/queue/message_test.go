package queue

import (
	"strings"
	"testing"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func TestNewIDForm(t *testing.T) {
	now := time.Now()
	for range 1000 {
		id := NewID(now)
		if len(id) != 20 {
			t.Fatalf("NewID = %q has %d characters, want 20", id, len(id))
		}
		for _, r := range id {
			if !strings.ContainsRune(crockford, r) {
				t.Fatalf("NewID = %q holds %q, outside Crockford base32", id, r)
			}
		}
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	times := []time.Time{
		time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 23, 10, 0, 0, int(time.Millisecond), time.UTC),
		time.Date(2026, 11, 23, 10, 0, 0, int(2*time.Millisecond), time.UTC),
		time.Date(2026, 11, 23, 10, 0, 1, 0, time.UTC),
		time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC),
		time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(8000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		// Several ids per time: the random part must not break the order.
		for range 50 {
			a, b := NewID(times[i-1]), NewID(times[i])
			if a >= b {
				t.Fatalf("NewID(%v) = %s does not sort before NewID(%v) = %s", times[i-1], a, times[i], b)
			}
		}
	}
}

func TestNewIDTimePrefix(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	a, b := NewID(at), NewID(at.Add(999*time.Microsecond))
	// The first 9 characters (45 bits) hold only time; within one
	// millisecond they are equal.
	if a[:9] != b[:9] {
		t.Errorf("ids of one millisecond %s and %s differ in their time prefix", a, b)
	}
	// Decoding the first ten characters gives the time in milliseconds (48
	// bits, followed by two random bits).
	var v uint64
	for _, c := range a[:10] {
		v = v<<5 | uint64(strings.IndexRune(crockford, c))
	}
	if ms := int64(v >> 2); ms != at.UnixMilli() {
		t.Errorf("the time prefix of %s decodes to %d ms, want %d", a, ms, at.UnixMilli())
	}
}

func TestNewIDUnique(t *testing.T) {
	now := time.Now()
	seen := make(map[string]bool, 100_000)
	for range 100_000 {
		id := NewID(now)
		if seen[id] {
			t.Fatalf("NewID repeated %s", id)
		}
		seen[id] = true
	}
}

func TestCleanID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"01JD3Z8K2M0000000000", "01JD3Z8K2M0000000000"},
		{"<01JD3Z8K2M0000000000>", "01JD3Z8K2M0000000000"},
		{"  <01jd3z8k2m0000000000> ", "01JD3Z8K2M0000000000"},
		{"01jd3z8k2m", "01JD3Z8K2M"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := CleanID(tc.in); got != tc.want {
			t.Errorf("CleanID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
