package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryPlanJTI checks that QueryEvents' jti filter is answered from the
// partial indexes of migration 8, not by walking the log.
func TestQueryPlanJTI(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.r.QueryContext(t.Context(),
		"EXPLAIN QUERY PLAN SELECT "+eventSelect+" FROM events WHERE "+jtiMatch+" ORDER BY seq DESC LIMIT ?", "j", "j", 10)
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
	got := strings.Join(plan, "\n")
	for _, want := range []string{"INDEX events_jti", "INDEX events_parent_jti"} {
		if !strings.Contains(got, want) {
			t.Errorf("query plan does not use %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "SCAN events") {
		t.Errorf("query plan walks the log:\n%s", got)
	}
}
