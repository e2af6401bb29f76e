package queue

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseSpaceThreshold(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SpaceThreshold
	}{
		{"1GiB", SpaceThreshold{Bytes: 1 << 30}},
		{"1 gib", SpaceThreshold{Bytes: 1 << 30}},
		{"500MB", SpaceThreshold{Bytes: 500e6}},
		{"1.5G", SpaceThreshold{Bytes: 3 << 29}},
		{"2048", SpaceThreshold{Bytes: 2048}},
		{"10KiB", SpaceThreshold{Bytes: 10240}},
		{"5%", SpaceThreshold{Percent: 5}},
		{"0.5%", SpaceThreshold{Percent: 0.5}},
		{"0", SpaceThreshold{}},
	} {
		got, err := ParseSpaceThreshold(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSpaceThreshold(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "lots", "-1GiB", "100%", "-5%", "5%%", "1XB", "NaN", "1e30TiB"} {
		if _, err := ParseSpaceThreshold(bad); err == nil || !strings.Contains(err.Error(), "min_free_disk") {
			t.Errorf("ParseSpaceThreshold(%q) = %v; want an error naming the setting", bad, err)
		}
	}
	if s := (SpaceThreshold{Bytes: 1 << 30}).String(); s != "1 GiB" {
		t.Errorf("String = %q", s)
	}
	if s := (SpaceThreshold{Percent: 2.5}).String(); s != "2.5%" {
		t.Errorf("String = %q", s)
	}
}

// fakeDisk is a filesystem whose free space the test sets.
type fakeDisk struct {
	free, total uint64
	err         error
	calls       int
}

func (d *fakeDisk) statfs(string) (uint64, uint64, error) {
	d.calls++
	return d.free, d.total, d.err
}

func newTestGuard(t *testing.T, min string) (*SpaceGuard, *fakeDisk, *time.Time, *bytes.Buffer) {
	t.Helper()
	th, err := ParseSpaceThreshold(min)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	g := NewSpaceGuard("/data", th, slog.New(slog.NewTextHandler(&logs, nil)))
	disk := &fakeDisk{free: 10 << 30, total: 100 << 30}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	g.Free, g.Now = disk.statfs, func() time.Time { return now }
	return g, disk, &now, &logs
}

func TestSpaceGuardBytes(t *testing.T) {
	g, disk, now, logs := newTestGuard(t, "1GiB")
	if low, _ := g.Low(); low {
		t.Fatal("10 GiB free is low for a 1 GiB minimum")
	}
	// Within the TTL the filesystem is not asked again.
	disk.free = 512 << 20
	if low, _ := g.Low(); low || disk.calls != 1 {
		t.Fatalf("within the TTL: low %v after %d statfs calls; want the cached answer", low, disk.calls)
	}
	*now = now.Add(time.Second)
	low, reason := g.Low()
	if !low || !strings.Contains(reason, "512 MiB free") || !strings.Contains(reason, "1 GiB") || !strings.Contains(reason, "min_free_disk") {
		t.Fatalf("512 MiB free: %v, %q; want low with a plain reason", low, reason)
	}
	if !strings.Contains(logs.String(), "free disk space below the minimum") {
		t.Errorf("no warning logged when the disk became low:\n%s", logs)
	}
	// It stays low, logging once, until there is room again.
	*now = now.Add(time.Second)
	g.Low()
	if n := strings.Count(logs.String(), "below the minimum"); n != 1 {
		t.Errorf("logged %d warnings, want 1", n)
	}
	disk.free = 2 << 30
	*now = now.Add(time.Second)
	if low, _ := g.Low(); low || !strings.Contains(logs.String(), "above the minimum again") {
		t.Errorf("after freeing space: low %v, log:\n%s", low, logs)
	}
}

func TestSpaceGuardPercent(t *testing.T) {
	g, disk, _, _ := newTestGuard(t, "5%")
	disk.free, disk.total = 4<<30, 100<<30 // 4%
	if low, reason := g.Low(); !low || !strings.Contains(reason, "5%") {
		t.Errorf("4%% free with a 5%% minimum: %v %q", low, reason)
	}
}

func TestSpaceGuardOffAndErrors(t *testing.T) {
	g, disk, _, _ := newTestGuard(t, "0")
	disk.free = 0
	if low, _ := g.Low(); low || disk.calls != 0 {
		t.Errorf("min_free_disk 0: low %v after %d statfs calls; want no check", low, disk.calls)
	}
	var none *SpaceGuard
	if low, _ := none.Low(); low {
		t.Error("a nil guard reports low")
	}
	g, disk, _, logs := newTestGuard(t, "1GiB")
	disk.err = errors.New("permission denied")
	if low, _ := g.Low(); low || !strings.Contains(logs.String(), "cannot measure free disk space") {
		t.Errorf("statfs failing: low %v, log %s; want mail accepted and the error logged", low, logs)
	}
}

func TestStatFSOfARealDirectory(t *testing.T) {
	free, total, err := StatFS(t.TempDir())
	if err != nil || total == 0 || free > total {
		t.Errorf("StatFS = %d free of %d, %v", free, total, err)
	}
	if _, _, err := StatFS("/no/such/dir"); err == nil {
		t.Error("StatFS of a missing directory succeeded")
	}
}
