package sqlite_test

import (
	"path/filepath"
	"testing"
)

// TestTokensFromTheLogMigration: migration 23 adds the column the token
// facts travel in, NULL on the records before it, and enters the tokens
// rows the indexer had not reached into the sweep's expiry index; those
// tokens still read back.
func TestTokensFromTheLogMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	applyUpTo(t, path, 21)
	db := rawDB(t, path)
	for _, q := range []string{
		`INSERT INTO events (seq, id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
			client_id, scopes, requested, audience, resource, delegation_id, jti, parent_jti, hash, indexed)
		VALUES (1, 'e1', 1795000000000000, '', 'token.issue', 'granted', '', '', 'agent:a', '', '[]', 'agent:a', '[]', '[]',
			'', '', '', 'old1', '', randomblob(32), 0)`,
		`INSERT INTO tokens (jti, parent_jti, grant_type, subject, client_id, chain, delegation_id, scopes, audience,
			subject_version, issued_at, expires_at, revoked, gen, indexed)
		VALUES ('old1', '', 'client_credentials', 'agent:a', 'agent:a', '[]', '', '[]', '', 0, 1795000000000000,
			1795000600000000, 0, 0, 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s := openAt(t, path)
	var indexed int
	if err := db.QueryRow("SELECT indexed FROM tokens WHERE jti = 'old1'").Scan(&indexed); err != nil || indexed != 1 {
		t.Errorf("the pending token's row: indexed = %d, %v; want 1", indexed, err)
	}
	var carried int
	if err := db.QueryRow("SELECT count(*) FROM events WHERE token IS NOT NULL").Scan(&carried); err != nil || carried != 0 {
		t.Errorf("%d records carry token facts after the migration (%v), want 0", carried, err)
	}
	if tok, err := s.GetToken(t.Context(), "old1"); err != nil || tok.GrantType != "client_credentials" {
		t.Errorf("GetToken = %+v, %v", tok, err)
	}
}
