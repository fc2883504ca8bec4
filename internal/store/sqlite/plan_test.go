package sqlite

import (
	"github.com/mandate-dev/mandate/internal/store"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQueryPlanJTI checks that QueryEvents' jti filter is answered from the
// partial indexes of migration 8, not by walking the log.
func TestQueryPlanJTI(t *testing.T) {
	got := queryPlan(t, "indexed = 1 AND "+jtiMatch(true), "j", "j")
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
// WhoApproved runs, is answered in the indexed part from the partial index
// of migrations 18 and 19, with a time window's seq bound on it.
func TestQueryPlanResource(t *testing.T) {
	got := queryPlan(t, "indexed = 1 AND resource = ? AND resource <> '' AND time >= ? AND seq > "+sinceSeq, "r", 1, 1)
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

// TestQueryPlanEvents: QueryEvents reads the records after the index head
// by seq and the indexed ones through the index of its filter, merged in
// order, without sorting the log.
func TestQueryPlanEvents(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range []struct {
		name string
		f    store.EventFilter
		want string
		// sorts: the jti filter's two indexes (MULTI-INDEX OR) give the
		// few records of one token out of order, as before.
		sorts bool
	}{
		{name: "ok/subject", f: store.EventFilter{Subject: "user:sam"}, want: "events_on_behalf"},
		{name: "ok/action", f: store.EventFilter{Action: "token.exchange"}, want: "events_action"},
		{name: "ok/actor", f: store.EventFilter{Actor: "agent:a"}, want: "SEARCH a USING PRIMARY KEY (actor=?"},
		{name: "ok/delegation", f: store.EventFilter{DelegationID: "dlg_1"}, want: "events_delegation"},
		{name: "ok/jti", f: store.EventFilter{JTI: "j"}, want: "events_parent_jti", sorts: true},
		{name: "ok/page", f: store.EventFilter{Subject: "user:sam", BeforeSeq: 100}, want: "events_on_behalf"},
		{name: "ok/resource", f: store.EventFilter{Resource: "https://api.example"}, want: "events_resource"},
		{name: "ok/resource-window", f: store.EventFilter{Resource: "https://api.example", Since: time.Unix(1, 0)},
			want: "INDEX events_resource (resource=? AND seq>?"},
		{name: "ok/window", f: store.EventFilter{Since: time.Unix(1, 0)}, want: "SEARCH event_time_marks USING PRIMARY KEY (max_time<?)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q, args, err := eventQuery(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			plan := explain(t, s, q, args...)
			if !strings.Contains(plan, tt.want) || (!tt.sorts && strings.Contains(plan, "TEMP B-TREE")) ||
				strings.Contains(plan, "SCAN events\n") {
				t.Errorf("plan does not use %s, or sorts:\n%s", tt.want, plan)
			}
		})
	}
}

func explain(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
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
	return strings.Join(plan, "\n") + "\n"
}
