package sqlite

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

// TestTokenFacts: a token's facts, encoded against any record of the same
// jti, decode with that record's columns to the token's row; every field
// the record says otherwise is stored, a grant type without a code too;
// and every truncation of an encoding is an error, not a panic or a
// different token.
func TestTokenFacts(t *testing.T) {
	at := time.Date(2026, 12, 6, 6, 0, 0, 123456000, time.UTC)
	tok := store.IssuedToken{
		JTI: "j1", ParentJTI: "j0", GrantType: "urn:ietf:params:oauth:grant-type:token-exchange", Subject: "user:sam",
		ClientID: "agent:a", Chain: []string{"agent:a", "agent:b"}, DelegationID: "dlg_1", Scopes: []string{"s1"},
		Audience: "https://api.example", SubjectVersion: 3, Gen: 1 << 40, IssuedAt: at, ExpiresAt: at.Add(10 * time.Minute),
	}
	same := store.Event{JTI: "j1", ParentJTI: "j0", OnBehalf: "user:sam", ClientID: "agent:a",
		Chain: []string{"agent:a", "agent:b"}, DelegationID: "dlg_1", Scopes: []string{"s1"}, Audience: "https://api.example"}
	other := store.Event{JTI: "j1", Chain: []string{"bad \xff"}, Scopes: []string{"s1", "s2"}}
	for c := byte(1); ; c++ {
		g, ok := grantOf(c)
		if !ok {
			break
		}
		if got := grantCode(g); got != c {
			t.Errorf("grantCode(%q) = %d, want %d", g, got, c)
		}
	}
	odd := tok
	odd.GrantType, odd.IssuedAt, odd.Gen, odd.Chain = "urn:example:other", time.Time{}, 0, nil
	for _, c := range []struct {
		name string
		tok  store.IssuedToken
		rec  store.Event
	}{
		{"the record says it all", tok, same},
		{"the record says otherwise", tok, other},
		{"no code, no issue time", odd, other},
	} {
		rec := recordRow(asStored(c.rec))
		b := encodeFacts(rowOf(c.tok), rec)
		got, err := decodeFacts(b, rec)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		if diff := cmp.Diff(rowOf(c.tok), got, cmp.AllowUnexported(tokenRow{})); diff != "" {
			t.Errorf("%s: decoded (-want +got):\n%s", c.name, diff)
		}
		back, err := got.token()
		if err != nil || !cmp.Equal(back, c.tok) {
			t.Errorf("%s: token %+v, %v; want %+v", c.name, back, err, c.tok)
		}
		t.Logf("%s: %d bytes", c.name, len(b))
		if c.name == "the record says it all" && len(b) > 24 {
			t.Errorf("%s: %d bytes of facts, want at most 24", c.name, len(b))
		}
		for n := range len(b) {
			if _, err := decodeFacts(b[:n], rec); !errors.Is(err, errFacts) {
				t.Errorf("%s: %d of %d bytes decode: %v", c.name, n, len(b), err)
			}
		}
		if _, err := decodeFacts(append(b, 0), rec); !errors.Is(err, errFacts) {
			t.Errorf("%s: a byte more decodes: %v", c.name, err)
		}
	}
}
