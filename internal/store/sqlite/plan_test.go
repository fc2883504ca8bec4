package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPlanJTI checks that QueryEvents' jti filter is answered from the
// partial indexes of migration 8, not by walking the log.
func TestQueryPlanJTI(t *testing.T) {
	got := queryPlan(t, jtiMatch, "j", "j")
	for _, want := range []string{"INDEX events_jti", "INDEX events_parent_jti"} {
		if !strings.Contains(got, want) {
			t.Errorf("query plan does not use %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "SCAN events") {
		t.Errorf("query plan walks the log:\n%s", got)
	}
}

// TestQueryPlanRequestIDs checks that QueryEvents' filter by the ids of
// verifiers' records, which POST /audit/ingest runs for a batch holding an
// id the log has, is answered from the partial index of migration 7.
func TestQueryPlanRequestIDs(t *testing.T) {
	got := queryPlan(t, idsMatch(3, true), "req_1", "req_2", "req_3")
	if !strings.Contains(got, "INDEX events_request_id") || strings.Contains(got, "SCAN events") {
		t.Errorf("query plan does not use events_request_id:\n%s", got)
	}
}

// TestQueryPlanResource checks that QueryEvents' resource filter, which
// WhoApproved runs, is answered from the partial index of migration 18,
// with a time window's seq bound on it.
func TestQueryPlanResource(t *testing.T) {
	got := queryPlan(t, "resource = ? AND resource <> '' AND time >= ? AND seq > "+sinceSeq, "r", 1, 1)
	if !strings.Contains(got, "INDEX events_resource (resource=? AND seq>?)") || strings.Contains(got, "SCAN events") {
		t.Errorf("query plan does not use events_resource:\n%s", got)
	}
}

// TestQueryPlanSince checks that a time window is read from the seq its
// time marks bound it to (migration 17), not from the start of the log.
func TestQueryPlanSince(t *testing.T) {
	got := queryPlan(t, "time >= ? AND seq > "+sinceSeq, 1, 1)
	if !strings.Contains(got, "SEARCH events USING INTEGER PRIMARY KEY (rowid>?)") ||
		!strings.Contains(got, "SEARCH event_time_marks USING PRIMARY KEY (max_time<?)") {
		t.Errorf("query plan does not bound the window by seq:\n%s", got)
	}
}

// queryPlan is SQLite's plan of QueryEvents' statement with where.
func queryPlan(t *testing.T, where string, args ...any) string {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.r.QueryContext(t.Context(),
		"EXPLAIN QUERY PLAN SELECT "+eventSelect+" FROM events WHERE "+where+" ORDER BY seq DESC LIMIT ?", append(args, 1000)...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
