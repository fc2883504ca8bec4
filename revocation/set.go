package revocation

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// Token is what a check needs to know of a token: its claims, and the kid
// of the key that signed it.
type Token struct {
	JTI string
	// ExchangedFrom holds the jti of every Mandate token this one was
	// exchanged from, nearest first (the exchanged_from claim).
	ExchangedFrom []string
	Subject       string
	// Chain is every actor, current first.
	Chain        []string
	ClientID     string
	DelegationID string
	Scopes       []string
	// Gen is the store generation the token was minted at (the gen claim);
	// 0 when absent, which every generation-based entry hits.
	Gen int64
	// IssuedAt is iat in Unix seconds.
	IssuedAt int64
	KeyID    string
}

// mark is the strongest entry held for one key: it hits tokens below gen
// and can be dropped after until.
type mark struct {
	gen, until int64
}

type scopeKey struct {
	subject, scope string
}

// Set is the revocation state in force: what a feed's snapshot and entries
// say. It is safe for concurrent use; Check takes a read lock only.
type Set struct {
	mu        sync.RWMutex
	stream    string
	seq       int64
	notBefore int64
	tokens    map[string]int64
	dlgs      map[string]mark
	keys      map[string]int64
	subjects  map[string]mark
	agents    map[string]mark
	scopes    map[scopeKey]mark
}

// NewSet returns an empty Set.
func NewSet() *Set {
	s := &Set{}
	s.clear()
	return s
}

func (s *Set) clear() {
	s.tokens = make(map[string]int64)
	s.dlgs = make(map[string]mark)
	s.keys = make(map[string]int64)
	s.subjects = make(map[string]mark)
	s.agents = make(map[string]mark)
	s.scopes = make(map[scopeKey]mark)
}

// Reset replaces the whole state with snap. A snapshot with an invalid
// entry is refused and changes nothing.
func (s *Set) Reset(snap Snapshot) error {
	for _, e := range snap.Entries {
		if err := e.Validate(); err != nil {
			return err
		}
		if e.Seq > snap.Seq {
			return fmt.Errorf("%w: entry seq %d beyond the snapshot's %d", ErrInvalid, e.Seq, snap.Seq)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clear()
	s.stream, s.seq, s.notBefore = snap.Stream, snap.Seq, snap.NotBefore
	for _, e := range snap.Entries {
		s.add(e)
	}
	return nil
}

// Apply adds entries that follow the ones held. An invalid entry is refused
// and nothing of the call is applied. Entries at or below the current
// sequence are ignored (a replay after a reconnection).
func (s *Set) Apply(entries ...Entry) error {
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		if e.Seq <= s.seq {
			continue
		}
		s.add(e)
		s.seq = e.Seq
	}
	return nil
}

// Advance records that the feed stands at seq with nothing to add (a
// heartbeat); it never moves the sequence back.
func (s *Set) Advance(seq int64) {
	s.mu.Lock()
	s.seq = max(s.seq, seq)
	s.mu.Unlock()
}

func (s *Set) add(e Entry) {
	switch e.Kind {
	case KindToken:
		s.tokens[e.ID] = max(s.tokens[e.ID], e.Until)
	case KindKey:
		s.keys[e.ID] = max(s.keys[e.ID], e.Until)
	case KindSubject:
		s.subjects[e.ID] = merge(s.subjects[e.ID], e)
	case KindAgent:
		s.agents[e.ID] = merge(s.agents[e.ID], e)
	case KindDelegation:
		s.dlgs[e.ID] = merge(s.dlgs[e.ID], e)
	case KindScope:
		k := scopeKey{e.ID, e.Scope}
		s.scopes[k] = merge(s.scopes[k], e)
	}
}

// merge keeps the higher generation (it hits every token the lower one
// does) and the later until.
func merge(m mark, e Entry) mark {
	return mark{gen: max(m.gen, e.Gen), until: max(m.until, e.Until)}
}

// Check returns the kind of the entry that revokes t, "not_before" when t
// was issued before the not-before epoch, or "" when t is not revoked.
func (s *Set) Check(t *Token) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t.IssuedAt < s.notBefore {
		return "not_before"
	}
	if _, ok := s.tokens[t.JTI]; ok {
		return KindToken
	}
	for _, jti := range t.ExchangedFrom {
		if _, ok := s.tokens[jti]; ok {
			return KindToken
		}
	}
	if _, ok := s.keys[t.KeyID]; ok && t.KeyID != "" {
		return KindKey
	}
	if m, ok := s.dlgs[t.DelegationID]; ok && t.Gen < m.gen {
		return KindDelegation
	}
	if m, ok := s.subjects[t.Subject]; ok && t.Gen < m.gen {
		return KindSubject
	}
	if len(s.scopes) > 0 {
		for _, sc := range t.Scopes {
			if m, ok := s.scopes[scopeKey{t.Subject, sc}]; ok && t.Gen < m.gen {
				return KindScope
			}
		}
	}
	if m, ok := s.agents[t.ClientID]; ok && t.Gen < m.gen {
		return KindAgent
	}
	for _, a := range t.Chain {
		if m, ok := s.agents[a]; ok && t.Gen < m.gen {
			return KindAgent
		}
	}
	return ""
}

// Collect drops the entries whose Until is before cutoff (Unix seconds)
// and returns how many it dropped. Pass now minus nothing: Until already
// includes the leeway.
func (s *Set) Collect(cutoff int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range []map[string]int64{s.tokens, s.keys} {
		for k, until := range m {
			if until < cutoff {
				delete(m, k)
				n++
			}
		}
	}
	for _, m := range []map[string]mark{s.subjects, s.agents, s.dlgs} {
		for k, v := range m {
			if v.until < cutoff {
				delete(m, k)
				n++
			}
		}
	}
	for k, v := range s.scopes {
		if v.until < cutoff {
			delete(s.scopes, k)
			n++
		}
	}
	return n
}

// Position returns the stream and sequence the set stands at.
func (s *Set) Position() (stream string, seq int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.stream, s.seq
}

// Len returns the number of entries held (merged entries count once).
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tokens) + len(s.dlgs) + len(s.keys) + len(s.subjects) + len(s.agents) + len(s.scopes)
}

// Entries returns the state as entries (merged per key, Seq set to the
// set's sequence), sorted by kind and id: what a snapshot of this set says.
func (s *Set) Entries() []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Entry, 0, len(s.tokens)+len(s.keys)+len(s.subjects)+len(s.agents)+len(s.dlgs)+len(s.scopes))
	for _, kv := range []struct {
		kind string
		m    map[string]int64
	}{{KindToken, s.tokens}, {KindKey, s.keys}} {
		for id, until := range kv.m {
			out = append(out, Entry{Seq: s.seq, Kind: kv.kind, ID: id, Until: until})
		}
	}
	for _, kv := range []struct {
		kind string
		m    map[string]mark
	}{{KindSubject, s.subjects}, {KindAgent, s.agents}, {KindDelegation, s.dlgs}} {
		for id, m := range kv.m {
			out = append(out, Entry{Seq: s.seq, Kind: kv.kind, ID: id, Gen: m.gen, Until: m.until})
		}
	}
	for k, m := range s.scopes {
		out = append(out, Entry{Seq: s.seq, Kind: KindScope, ID: k.subject, Scope: k.scope, Gen: m.gen, Until: m.until})
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Scope, b.Scope))
	})
	return out
}
