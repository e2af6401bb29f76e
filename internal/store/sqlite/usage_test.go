package sqlite

import (
	"testing"
	"time"

	"hve/internal/store"
)

// TestOpenReleasesReportJobsOfAnEarlierRun: a report job cut short by a
// crash runs again as soon as the store is opened, not when its lease runs
// out.
func TestOpenReleasesReportJobsOfAnEarlierRun(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ten, err := s.CreateTenant(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	job, err := s.CreateReportJob(t.Context(), store.ReportJob{TenantID: ten.ID, Since: time.Now().Add(-time.Hour), Until: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.ClaimReportJob(t.Context(), "crashed-run", now, time.Hour); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir)
	got, err := s.ClaimReportJob(t.Context(), "new-run", now, time.Hour)
	if err != nil || got.ID != job.ID {
		t.Errorf("ClaimReportJob right after reopening = %+v, %v; want job %d", got, err, job.ID)
	}
}
