package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"time"
)

// TallyFilter selects the audit records TallyEvents counts, those of a
// time window, and says what it reads of them beyond their columns.
type TallyFilter struct {
	// Since (inclusive) and Until (exclusive) bound the window as they do
	// in EventFilter: a zero bound is open, and a record without a time
	// lies outside any window with a bound.
	Since, Until time.Time
	// Attributes are the attribute names (keys of Event.Attributes) the
	// caller reads. A record whose Attributes spell one of them plainly,
	// in quotes ("name" appears in the text), is counted with its
	// Attributes; the others without. The server writes the names of its
	// attributes plainly (json.Marshal escapes no letter, digit, dot or
	// underscore), so that a reader of the attribute may skip a record
	// that does not spell it so.
	Attributes []string
	// Revoked names the action of the records that end a token, Issued
	// the actions of those that issue one, with result IssuedResult. A
	// record of action Revoked with a jti is counted with the ClientID
	// and AgentVersion of the record of the window that issued its jti
	// (EventTally.Issuer), or with its jti when the window holds none.
	// An empty Revoked pairs nothing.
	Revoked      string
	Issued       []string
	IssuedResult string
}

// EventTally is one row of TallyEvents: Count records of the window agree
// on every other field.
type EventTally struct {
	Action       string
	Result       string
	ClientID     string
	AgentVersion string
	Performer    string
	ReportedBy   string
	// Attributes are the records' Attributes when they spell one of
	// TallyFilter.Attributes, nil otherwise.
	Attributes json.RawMessage
	// Issuer is set for records of action TallyFilter.Revoked with a jti
	// issued in the window: the first record of the window (lowest Seq)
	// with that jti, one of the Issued actions and result IssuedResult.
	Issuer *TallyIssuer
	// JTI is, for a record of action TallyFilter.Revoked whose jti was
	// not issued in the window, that jti, so that the caller can look
	// further back; "" for every other record.
	JTI   string
	Count int
}

// TallyIssuer is who the record that issued a token names.
type TallyIssuer struct {
	ClientID     string
	AgentVersion string
}

// Tally counts events as a store's TallyEvents counts the records of f's
// window: every event it is given (the caller selects the window's; f's
// Since and Until are not read), with the window being those events, in
// any order. Rows come sorted by CompareTally. It is the definition the
// stores' SQL is checked against, and the tally of a log that is no
// store's (a running server's, an export read back).
func Tally(events []Event, f TallyFilter) []EventTally {
	// issuers maps a jti to the first event that issued it.
	issuers := map[string]Event{}
	if f.Revoked != "" {
		for _, ev := range events {
			if ev.JTI == "" || ev.Result != f.IssuedResult || !slices.Contains(f.Issued, ev.Action) {
				continue
			}
			if first, ok := issuers[ev.JTI]; !ok || ev.Seq < first.Seq {
				issuers[ev.JTI] = ev
			}
		}
	}
	type key struct {
		action, result, client, version, performer, reporter, attrs string
		issued                                                      bool
		issuer                                                      TallyIssuer
		jti                                                         string
	}
	counts := map[key]int{}
	for _, ev := range events {
		k := key{action: ev.Action, result: ev.Result, client: ev.ClientID, version: ev.AgentVersion,
			performer: ev.Performer, reporter: ev.ReportedBy}
		if spellsAny(ev.Attributes, f.Attributes) {
			k.attrs = string(ev.Attributes)
		}
		if f.Revoked != "" && ev.Action == f.Revoked && ev.JTI != "" {
			if iss, ok := issuers[ev.JTI]; ok {
				k.issued, k.issuer = true, TallyIssuer{iss.ClientID, iss.AgentVersion}
			} else {
				k.jti = ev.JTI
			}
		}
		counts[k]++
	}
	out := make([]EventTally, 0, len(counts))
	for k, n := range counts {
		r := EventTally{Action: k.action, Result: k.result, ClientID: k.client, AgentVersion: k.version,
			Performer: k.performer, ReportedBy: k.reporter, JTI: k.jti, Count: n}
		if k.attrs != "" {
			r.Attributes = json.RawMessage(k.attrs)
		}
		if k.issued {
			iss := k.issuer
			r.Issuer = &iss
		}
		out = append(out, r)
	}
	slices.SortFunc(out, CompareTally)
	return out
}

// spellsAny says whether attrs spells one of names plainly, in quotes.
func spellsAny(attrs json.RawMessage, names []string) bool {
	for _, name := range names {
		if SpellsAttribute(attrs, name) {
			return true
		}
	}
	return false
}

// SpellsAttribute says whether attrs holds the attribute name spelled
// plainly, in quotes, as TallyFilter.Attributes reads it.
func SpellsAttribute(attrs json.RawMessage, name string) bool {
	return len(attrs) > 0 && bytes.Contains(attrs, []byte(`"`+name+`"`))
}

// CompareTally orders tally rows by their fields, Count last.
func CompareTally(a, b EventTally) int {
	issuer := func(r EventTally) (bool, TallyIssuer) {
		if r.Issuer == nil {
			return false, TallyIssuer{}
		}
		return true, *r.Issuer
	}
	ai, aiss := issuer(a)
	bi, biss := issuer(b)
	boolInt := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	return cmp.Or(
		cmp.Compare(a.Action, b.Action), cmp.Compare(a.Result, b.Result),
		cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.AgentVersion, b.AgentVersion),
		cmp.Compare(a.Performer, b.Performer), cmp.Compare(a.ReportedBy, b.ReportedBy),
		bytes.Compare(a.Attributes, b.Attributes),
		cmp.Compare(boolInt(ai), boolInt(bi)),
		cmp.Compare(aiss.ClientID, biss.ClientID), cmp.Compare(aiss.AgentVersion, biss.AgentVersion),
		cmp.Compare(a.JTI, b.JTI), cmp.Compare(a.Count, b.Count),
	)
}
