package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/mandate-dev/mandate/internal/store"
)

// TallyEvents counts the records of f's window in one statement, so from
// one snapshot: it walks the window by seq from the time marks' bound
// (sinceSeq), which holds every record, indexed or not, and groups them in
// the database, so that a window of a hundred thousand records costs one
// walk and a few thousand rows instead of decoding every record.
//
// The records are grouped first, a revocation with a jti keeping its jti
// (g); the jtis of those groups are then looked up among the window's
// records that issue a token (i: grouped by jti, the bare columns of
// min(seq) are those of the row with the lowest seq, a second walk of the
// window), and the groups regrouped with what that found. Pairing the
// grouped rows rather than every record saves about a quarter of the time
// over a day of ten million records.
func (s *Store) TallyEvents(ctx context.Context, f store.TallyFilter) ([]store.EventTally, error) {
	q, args := tallyQuery(f)
	return list(ctx, s.r, "event tally", q, scanTally, args...)
}

// tallyQuery is TallyEvents' statement and its arguments.
func tallyQuery(f store.TallyFilter) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "?" + strconv.Itoa(len(args))
	}
	var where []string
	if !f.Since.IsZero() {
		since := arg(f.Since.UnixMicro())
		where = append(where, "time >= "+since, "seq > "+strings.Replace(sinceSeq, "?", since, 1))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(f.Until.UnixMicro()))
	}
	window := "TRUE"
	if len(where) > 0 {
		window = strings.Join(where, " AND ")
	}
	// spells is whether a record spells one of f.Attributes in quotes, as
	// store.SpellsAttribute looks for it.
	spells := "FALSE"
	for _, name := range f.Attributes {
		spells += " OR instr(attributes, " + arg(`"`+name+`"`) + ") > 0"
	}
	// revoked is whether a record is a revocation with a jti, which
	// TallyFilter.Revoked pairs with its issuer.
	revoked := "FALSE"
	if f.Revoked != "" {
		revoked = "(action = " + arg(f.Revoked) + " AND jti <> '')"
	}
	issuer := "SELECT NULL AS jti, NULL AS client_id, NULL AS agent_version WHERE FALSE"
	if f.Revoked != "" && len(f.Issued) > 0 {
		actions := make([]string, len(f.Issued))
		for i, a := range f.Issued {
			actions[i] = arg(a)
		}
		issuer = "SELECT jti, client_id, agent_version, min(seq) FROM events WHERE " + window +
			" AND action IN (" + strings.Join(actions, ", ") + ") AND result = " + arg(f.IssuedResult) +
			" AND jti IN (SELECT jti FROM g WHERE jti <> '') GROUP BY jti"
	}
	q := "WITH g AS MATERIALIZED (SELECT action, result, client_id, agent_version, performer, reported_by," +
		" CASE WHEN " + spells + " THEN attributes END AS attributes," +
		" CASE WHEN " + revoked + " THEN jti ELSE '' END AS jti, count(*) AS n" +
		" FROM events WHERE " + window + " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8)," +
		" i AS (" + issuer + ")" +
		" SELECT g.action, g.result, g.client_id, g.agent_version, g.performer, g.reported_by, g.attributes," +
		" i.jti IS NOT NULL, coalesce(i.client_id, ''), coalesce(i.agent_version, '')," +
		" CASE WHEN i.jti IS NULL THEN g.jti ELSE '' END, sum(g.n)" +
		" FROM g LEFT JOIN i ON g.jti <> '' AND i.jti = g.jti" +
		" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"
	return q, args
}

// scanTally reads a row of tallyQuery.
func scanTally(sc scanner) (store.EventTally, error) {
	var (
		r       store.EventTally
		attrs   sql.NullString
		issued  bool
		issuer  store.TallyIssuer
		revoked string
	)
	if err := sc.Scan(&r.Action, &r.Result, &r.ClientID, &r.AgentVersion, &r.Performer, &r.ReportedBy,
		&attrs, &issued, &issuer.ClientID, &issuer.AgentVersion, idDest{"jti", &revoked}, &r.Count); err != nil {
		return store.EventTally{}, fmt.Errorf("scan a tally row: %w", err)
	}
	if attrs.Valid && attrs.String != "" {
		r.Attributes = []byte(attrs.String)
	}
	if issued {
		r.Issuer = &issuer
	}
	r.JTI = revoked
	return r, nil
}
