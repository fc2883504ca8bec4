package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/mandate-dev/mandate/internal/store"
)

// TallyEvents counts the records of f's window in one statement, so from
// one snapshot: it walks the window by seq from the time marks' bound
// (sinceSeq), which holds every record, indexed or not, and groups them in
// the database, so that a window of a hundred thousand records costs one
// walk and a few thousand rows instead of decoding every record.
//
// The records of action f.Revoked are paired with the first record of the
// window that issued their jti: the window's issuing records are grouped
// by jti (the bare columns of min(seq) are those of the row with the
// lowest seq), for the jtis the window's revocations name.
func (s *Store) TallyEvents(ctx context.Context, f store.TallyFilter) ([]store.EventTally, error) {
	q, args := tallyQuery(f)
	return list(ctx, s.r, "event tally", q, scanTally, args...)
}

// tallyQuery is TallyEvents' statement and its arguments.
func tallyQuery(f store.TallyFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if !f.Since.IsZero() {
		where = append(where, "time >= ?", "seq > "+sinceSeq)
		args = append(args, f.Since.UnixMicro(), f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.Until.UnixMicro())
	}
	window := "SELECT seq, action, result, client_id, agent_version, performer, reported_by, attributes, jti FROM events"
	if len(where) > 0 {
		window += " WHERE " + strings.Join(where, " AND ")
	}
	q := "WITH w AS (" + window + "), i AS ("
	if f.Revoked != "" && len(f.Issued) > 0 { // else no record issued any jti
		q += "SELECT jti, client_id, agent_version, min(seq) FROM w WHERE action IN (?" +
			strings.Repeat(", ?", len(f.Issued)-1) + ") AND result = ? AND jti IN " +
			"(SELECT jti FROM w WHERE action = ? AND jti <> '') GROUP BY jti"
		for _, a := range f.Issued {
			args = append(args, a)
		}
		args = append(args, f.IssuedResult, f.Revoked)
	} else {
		q += "SELECT NULL AS jti, NULL AS client_id, NULL AS agent_version WHERE 0"
	}
	// spells is whether a record spells one of f.Attributes in quotes, as
	// store.SpellsAttribute looks for it.
	spells := "0"
	for _, name := range f.Attributes {
		spells += " OR instr(w.attributes, ?) > 0"
		args = append(args, `"`+name+`"`)
	}
	// revoked is whether a record is a revocation with a jti, which
	// TallyFilter.Revoked pairs with its issuer; it takes f.Revoked.
	revoked := "0"
	if f.Revoked != "" {
		revoked = "(w.action = ? AND w.jti <> '')"
	}
	q += ") SELECT w.action, w.result, w.client_id, w.agent_version, w.performer, w.reported_by," +
		" CASE WHEN " + spells + " THEN w.attributes END," +
		" i.jti IS NOT NULL, coalesce(i.client_id, ''), coalesce(i.agent_version, '')," +
		" CASE WHEN " + revoked + " AND i.jti IS NULL THEN w.jti ELSE '' END, count(*)" +
		" FROM w LEFT JOIN i ON " + revoked + " AND i.jti = w.jti" +
		" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"
	if f.Revoked != "" {
		args = append(args, f.Revoked, f.Revoked)
	}
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
		&attrs, &issued, &issuer.ClientID, &issuer.AgentVersion, &revoked, &r.Count); err != nil {
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
