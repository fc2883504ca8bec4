package revocation

import (
	"errors"
	"fmt"
	"time"
)

// Kinds of entries.
const (
	// KindToken revokes the token whose jti is ID and every token
	// exchanged from it, at any depth (their exchanged_from claim holds
	// ID).
	KindToken = "token"
	// KindDelegation revokes every token minted under the delegation ID
	// whose gen is below Gen (the delegation was revoked or narrowed).
	KindDelegation = "delegation"
	// KindSubject revokes every token whose subject is ID and whose gen is
	// below Gen (the person's tokens were revoked).
	KindSubject = "subject"
	// KindScope revokes every token whose subject is ID, whose gen is below
	// Gen and which carries Scope (the person lost that permission).
	KindScope = "scope"
	// KindAgent revokes every token whose gen is below Gen and which names
	// the agent ID anywhere in its chain or as its client.
	KindAgent = "agent"
	// KindKey revokes every token signed with the key whose kid is ID.
	KindKey = "key"
)

// maxField bounds every string field of an entry read from the network.
const maxField = 512

// ErrInvalid is wrapped by every error about a malformed entry.
var ErrInvalid = errors.New("revocation: invalid entry")

// Entry is one revocation, as the feed publishes it. Seq orders the feed;
// Until (Unix seconds) is when no token the entry can hit is valid any more,
// leeway included, so that the entry can be dropped.
type Entry struct {
	Seq   int64  `json:"seq"`
	Kind  string `json:"kind"`
	ID    string `json:"id"`
	Scope string `json:"scope,omitempty"`
	Gen   int64  `json:"gen,omitempty"`
	Until int64  `json:"until"`
}

// Validate reports what is wrong with e, wrapping ErrInvalid.
func (e Entry) Validate() error {
	switch {
	case e.Seq <= 0:
		return fmt.Errorf("%w: seq must be positive", ErrInvalid)
	case e.ID == "" || len(e.ID) > maxField:
		return fmt.Errorf("%w: id must be 1 to %d bytes", ErrInvalid, maxField)
	case len(e.Scope) > maxField:
		return fmt.Errorf("%w: scope above %d bytes", ErrInvalid, maxField)
	case e.Gen < 0:
		return fmt.Errorf("%w: negative gen", ErrInvalid)
	case e.Until <= 0:
		return fmt.Errorf("%w: until must be positive", ErrInvalid)
	}
	switch e.Kind {
	case KindToken, KindKey:
		if e.Scope != "" {
			return fmt.Errorf("%w: scope only belongs to kind %q", ErrInvalid, KindScope)
		}
	case KindSubject, KindAgent, KindDelegation:
		if e.Scope != "" {
			return fmt.Errorf("%w: scope only belongs to kind %q", ErrInvalid, KindScope)
		}
		if e.Gen <= 0 {
			return fmt.Errorf("%w: kind %q needs a positive gen", ErrInvalid, e.Kind)
		}
	case KindScope:
		if e.Scope == "" || e.Gen <= 0 {
			return fmt.Errorf("%w: kind %q needs a scope and a positive gen", ErrInvalid, KindScope)
		}
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, e.Kind)
	}
	return nil
}

// Snapshot is everything in force at Seq. Stream names the sequence the
// numbers belong to: it changes when the server's store is restored from a
// backup (the not-before epoch advances), and a subscriber that sees a new
// Stream must start again from a snapshot. NotBefore (Unix seconds, 0 for
// none) is that epoch: every token issued before it is revoked.
type Snapshot struct {
	Stream    string  `json:"stream"`
	Seq       int64   `json:"seq"`
	NotBefore int64   `json:"not_before"`
	Entries   []Entry `json:"entries"`
}

// Heartbeat tells a subscriber that the feed is alive and where it stands,
// when there is nothing new to send.
type Heartbeat struct {
	Stream string `json:"stream"`
	Seq    int64  `json:"seq"`
	Time   int64  `json:"time"`
}

// Server-Sent Events names used by the feed's stream.
const (
	EventSnapshot   = "snapshot"
	EventRevocation = "revocation"
	EventHeartbeat  = "heartbeat"
)

// UntilFor is the Until of an entry that can hit tokens living up to
// lifetime from at: at + lifetime + slack, in Unix seconds, rounded up.
func UntilFor(at time.Time, lifetime, slack time.Duration) int64 {
	t := at.Add(lifetime + slack)
	u := t.Unix()
	if t.After(time.Unix(u, 0)) {
		u++
	}
	return u
}
