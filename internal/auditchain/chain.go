package auditchain

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/mandate-dev/mandate/internal/store"
)

// The versions that start an encoding. A record format change gets a new
// one, and the old ones stay: a log is verified with the encoding each
// record was written in. They have one length, so that Seq, which follows
// the version, is at one offset in every record (the PostgreSQL backend
// lays it over the encoding there, finding the offset from an empty
// record).
const (
	// versionV1 is a record with none of the fields v2 added.
	versionV1 = "mandate-audit-v1"
	// versionV2 is a record with any of AgentVersion,
	// AuthorizationDetails, Operation, Attributes or ReportedBy set.
	versionV2 = "mandate-audit-v2"
)

// chainDomain separates chain links from every other SHA-256 use.
const chainDomain = "mandate-audit-chain-v1\x00"

// Hash is a SHA-256 hash, the type tlog uses.
type Hash = tlog.Hash

// Genesis is the link before the first record.
var Genesis Hash

// Encode returns the canonical encoding of ev: the version, then every
// field in a fixed order, each string and byte slice prefixed by its length
// (uvarint), each list by its count, integers and times (Unix microseconds
// of Time(t), 0 for the zero time) as 8 bytes big-endian. Two different
// records never encode the same (an empty and a nil JSON value are one
// record: the stores read both back as nil; two times Time makes one are
// one).
//
// A record with none of AgentVersion, AuthorizationDetails, Operation,
// Attributes and ReportedBy set is encoded as mandate-audit-v1, byte for
// byte as before those fields existed, so that logs written then still
// verify. A record with any of them set is mandate-audit-v2: the v1
// fields in the v1 order, then those five in that order, each
// length-prefixed (the JSON ones as the bytes given, never re-encoded).
// The version tells the two apart, so no v1 record encodes as a v2 one.
func Encode(ev store.Event) []byte {
	v2 := ev.AgentVersion != "" || len(ev.AuthorizationDetails) > 0 || ev.Operation != "" ||
		len(ev.Attributes) > 0 || ev.ReportedBy != ""
	b := make([]byte, 0, 256+len(ev.Context)+len(ev.Detail)+len(ev.AuthorizationDetails)+len(ev.Attributes))
	if v2 {
		b = appendString(b, versionV2)
	} else {
		b = appendString(b, versionV1)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Seq))
	b = appendString(b, ev.ID)
	b = binary.BigEndian.AppendUint64(b, uint64(micros(ev.Time)))
	for _, s := range []string{ev.RequestID, ev.Action, ev.Result, ev.Reason, ev.Detail, ev.Performer, ev.OnBehalf} {
		b = appendString(b, s)
	}
	b = appendList(b, ev.Chain)
	b = appendString(b, ev.ClientID)
	b = appendList(b, ev.Scopes)
	b = appendList(b, ev.Requested)
	b = appendString(b, ev.Audience)
	b = appendString(b, ev.Resource)
	b = appendString(b, string(ev.Context))
	for _, s := range []string{ev.DelegationID, ev.JTI, ev.ParentJTI} {
		b = appendString(b, s)
	}
	if !v2 {
		return b
	}
	for _, s := range []string{ev.AgentVersion, string(ev.AuthorizationDetails), ev.Operation, string(ev.Attributes), ev.ReportedBy} {
		b = appendString(b, s)
	}
	return b
}

// Time is t as the audit log keeps it: in UTC, truncated to the
// microsecond, the precision of Encode and of both stores. Every writer of
// the log passes a record's time through it before the record is hashed
// (the stores do it again as they append), so that a record reads back
// exactly as it was hashed: a time with nanoseconds, in another zone, or
// within a microsecond after the zero time (which reads back as no time)
// can no longer make a record fail its chain hash. The zero time stays
// zero.
func Time(t time.Time) time.Time {
	return t.Truncate(time.Microsecond).UTC()
}

// micros is Time(t) in Unix microseconds, 0 for the zero time.
func micros(t time.Time) int64 {
	t = Time(t)
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = appendString(b, s)
	}
	return b
}

// LeafHash is the record's hash as a leaf of the log's Merkle tree
// (tlog.RecordHash of its encoding).
func LeafHash(ev store.Event) Hash {
	return tlog.RecordHash(Encode(ev))
}

// Link is the chain hash of a record: SHA-256 over a domain tag, the
// previous record's chain hash and this record's leaf hash.
func Link(prev, leaf Hash) Hash {
	h := sha256.New()
	h.Write([]byte(chainDomain))
	h.Write(prev[:])
	h.Write(leaf[:])
	var out Hash
	h.Sum(out[:0])
	return out
}

// Next is Link(prev, LeafHash(ev)).
func Next(prev Hash, ev store.Event) Hash {
	return Link(prev, LeafHash(ev))
}
