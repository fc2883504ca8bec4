package auditchain

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/mandate-dev/mandate/internal/store"
)

// version starts every encoding; a record format change gets a new one.
const version = "mandate-audit-v1"

// chainDomain separates chain links from every other SHA-256 use.
const chainDomain = "mandate-audit-chain-v1\x00"

// Hash is a SHA-256 hash, the type tlog uses.
type Hash = tlog.Hash

// Genesis is the link before the first record.
var Genesis Hash

// Encode returns the canonical encoding of ev: the version, then every
// field in a fixed order, each string and byte slice prefixed by its length
// (uvarint), each list by its count, integers and times (Unix microseconds,
// 0 for the zero time) as 8 bytes big-endian. Two different records never
// encode the same.
func Encode(ev store.Event) []byte {
	b := make([]byte, 0, 256+len(ev.Context)+len(ev.Detail))
	b = appendString(b, version)
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
	return b
}

func micros(t time.Time) int64 {
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
