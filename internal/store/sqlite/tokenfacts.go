package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// A token committed with the record of its issuance is not written to the
// tokens table at commit (migration 23): its facts travel in the record's
// row, in the column events.token, and the indexer writes the tokens row
// when it indexes the record. The column holds only what the record's own
// columns do not say, so that the row grows by a few bytes: the grant type,
// the subject version, the generation and the two times, and any of the
// token's shared fields (its parent, subject, client, chain, delegation,
// scopes, audience) whose value differs from the record's. The column is
// not a field of the record: the record's hash, its export and its
// verification do not see it.
//
// The encoding, version 1:
//
//	byte     1 (the version)
//	uvarint  flags: factParent … factAudience for each shared field stored
//	         below, factIssued and factExpires for the times present
//	byte     the grant type's code (grantCode), 0 when stored below
//	uvarint  subject version, gen
//	varint   issued_at (unix µs), when factIssued
//	varint   expires_at, less issued_at when factIssued too, when factExpires
//	string*  the grant type when its code is 0, then each shared field
//	         flagged, in flag order: uvarint length, then the bytes (a
//	         list as its JSON array, as the tokens table keeps it)
//
// A token committed revoked is written as a row at once.
const factsVersion = 1

// The flags of the encoding.
const (
	factParent = 1 << iota
	factSubject
	factClient
	factChain
	factDelegation
	factScopes
	factAudience
	factIssued
	factExpires
)

// grantCode is a grant type's code in the encoding, 0 for one without. A
// code is never reused for another grant type: rows written with it are
// read back with it (grantOf).
func grantCode(grantType string) byte {
	for c := byte(1); ; c++ {
		g, ok := grantOf(c)
		if !ok {
			return 0
		}
		if g == grantType {
			return c
		}
	}
}

// grantOf is the grant type of code c, and whether c is one.
func grantOf(c byte) (string, bool) {
	switch c {
	case 1:
		return "urn:ietf:params:oauth:grant-type:token-exchange", true
	case 2:
		return "client_credentials", true
	case 3:
		return "authorization_code", true
	case 4:
		return "refresh_token", true
	case 5:
		return "sign_in", true
	}
	return "", false
}

// tokenRow is a token's columns as the tokens table keeps them, the lists
// as JSON arrays.
type tokenRow struct {
	jti, parent, grantType, subject, client, chain, delegation, scopes, audience string
	subjectVersion, gen                                                          int64
	issued, expires                                                              time.Time
}

func rowOf(t store.IssuedToken) tokenRow {
	return tokenRow{
		jti: t.JTI, parent: t.ParentJTI, grantType: t.GrantType, subject: t.Subject, client: t.ClientID,
		chain: listIn(t.Chain), delegation: t.DelegationID, scopes: listIn(t.Scopes), audience: t.Audience,
		subjectVersion: t.SubjectVersion, gen: t.Gen, issued: t.IssuedAt, expires: t.ExpiresAt,
	}
}

// recordRow is the part of a tokenRow the record e says, as its columns
// keep it.
func recordRow(e store.Event) tokenRow {
	return tokenRow{
		jti: e.JTI, parent: e.ParentJTI, subject: e.OnBehalf, client: e.ClientID, chain: listIn(e.Chain),
		delegation: e.DelegationID, scopes: listIn(e.Scopes), audience: e.Audience,
	}
}

// shared are the fields of r the record's columns may say, in flag order.
func (r *tokenRow) shared() [7]*string {
	return [7]*string{&r.parent, &r.subject, &r.client, &r.chain, &r.delegation, &r.scopes, &r.audience}
}

// encodeFacts encodes t against rec, the row of the record that carries it
// (recordRow; the same jti).
func encodeFacts(t tokenRow, rec tokenRow) []byte {
	var flags uint64
	ts, rs := t.shared(), rec.shared()
	for i := range ts {
		if *ts[i] != *rs[i] {
			flags |= 1 << i
		}
	}
	if !t.issued.IsZero() {
		flags |= factIssued
	}
	if !t.expires.IsZero() {
		flags |= factExpires
	}
	code := grantCode(t.grantType)
	b := make([]byte, 0, 32)
	b = append(b, factsVersion)
	b = binary.AppendUvarint(b, flags)
	b = append(b, code)
	b = binary.AppendUvarint(b, uint64(t.subjectVersion))
	b = binary.AppendUvarint(b, uint64(t.gen))
	if flags&factIssued != 0 {
		b = binary.AppendVarint(b, t.issued.UnixMicro())
	}
	if flags&factExpires != 0 {
		exp := t.expires.UnixMicro()
		if flags&factIssued != 0 {
			exp -= t.issued.UnixMicro()
		}
		b = binary.AppendVarint(b, exp)
	}
	appendString := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if code == 0 {
		appendString(t.grantType)
	}
	for i := range ts {
		if flags&(1<<i) != 0 {
			appendString(*ts[i])
		}
	}
	return b
}

var errFacts = errors.New("malformed token facts")

// decodeFacts is the inverse of encodeFacts: rec is the carrying record's
// row, which it completes.
func decodeFacts(b []byte, rec tokenRow) (tokenRow, error) {
	t := rec
	if len(b) == 0 || b[0] != factsVersion {
		return tokenRow{}, fmt.Errorf("%w: version", errFacts)
	}
	b = b[1:]
	uvarint := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	varint := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	ok := true
	str := func() string {
		n := uvarint()
		if n > uint64(len(b)) {
			ok = false
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	flags := uvarint()
	if len(b) == 0 {
		return tokenRow{}, fmt.Errorf("%w: flags", errFacts)
	}
	code := b[0]
	b = b[1:]
	if code != 0 {
		g, ok := grantOf(code)
		if !ok {
			return tokenRow{}, fmt.Errorf("%w: grant type code %d", errFacts, code)
		}
		t.grantType = g
	}
	t.subjectVersion = int64(uvarint())
	t.gen = int64(uvarint())
	var iat int64
	if flags&factIssued != 0 {
		iat = varint()
		t.issued = time.UnixMicro(iat).UTC()
	}
	if flags&factExpires != 0 {
		t.expires = time.UnixMicro(iat + varint()).UTC()
	}
	if code == 0 {
		t.grantType = str()
	}
	ts := t.shared()
	for i := range ts {
		if flags&(1<<i) != 0 {
			*ts[i] = str()
		}
	}
	if !ok || b == nil {
		return tokenRow{}, fmt.Errorf("%w: truncated", errFacts)
	}
	if len(b) != 0 {
		return tokenRow{}, fmt.Errorf("%w: %d bytes left over", errFacts, len(b))
	}
	return t, nil
}

// token is r as the store's token, not revoked.
func (r tokenRow) token() (store.IssuedToken, error) {
	t := store.IssuedToken{
		JTI: r.jti, ParentJTI: r.parent, GrantType: r.grantType, Subject: r.subject, ClientID: r.client,
		DelegationID: r.delegation, Audience: r.audience, SubjectVersion: r.subjectVersion, Gen: r.gen,
		IssuedAt: r.issued, ExpiresAt: r.expires,
	}
	err := decodeLists(listCol{"chain", r.chain, &t.Chain}, listCol{"scopes", r.scopes, &t.Scopes})
	return t, err
}
