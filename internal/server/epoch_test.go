package server_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/tokenstate"
	"github.com/mandate-dev/mandate/oauth"
)

// TestRestoredEpoch is THREATS T56 (b) at the endpoints: once the store's
// not-before epoch is advanced (the restore procedure), a token issued
// before it is refused as a subject_token with the audit reason
// issued_before_restore and introspects as inactive, while a token issued
// after it works. The epoch is advanced on the raw store, as `mandate store
// advance-epoch` in another process does, so the running server learns it
// through its cache's generation poll.
func TestRestoredEpoch(t *testing.T) {
	h := newHarness(t)
	active := func(tok string) bool {
		r := h.post("/introspect", "agent:infrabot", url.Values{"token": {tok}})
		if r.status != http.StatusOK {
			t.Fatalf("introspect: %d %s", r.status, r.raw)
		}
		a, _ := r.body["active"].(bool)
		return a
	}
	before := h.hop1("deploy:tag")
	if !active(before) {
		t.Fatal("the token is inactive before the advance")
	}

	if _, err := h.store.AdvanceNotBefore(t.Context(), time.Now()); err != nil {
		t.Fatalf("AdvanceNotBefore: %v", err)
	}
	// The cache polls the generation every second.
	deadline := time.Now().Add(3 * time.Second)
	for active(before) {
		if time.Now().After(deadline) {
			t.Fatal("the token issued before the epoch is still active at introspection 3 s after the advance")
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("fail/exchange-issued-before-restore", func(t *testing.T) {
		r := h.post("/token", "agent:argocd", exchangeForm(before, oauth.TokenTypeAccessToken, "audience", "https://deploy.example"))
		checkResponse(t, h, r, http.StatusBadRequest, oauth.ErrInvalidRequest, tokenstate.ReasonRestoredEpoch)
	})
	t.Run("fail/introspect-issued-before-restore", func(t *testing.T) {
		r := h.post("/introspect", "agent:infrabot", url.Values{"token": {before}})
		// RFC 7662 §2.2: an inactive token is active:false and nothing else.
		if a, ok := r.body["active"].(bool); r.status != http.StatusOK || !ok || a || len(r.body) != 1 {
			t.Errorf("introspection = %d %s, want 200 and only active:false", r.status, r.raw)
		}
	})
	t.Run("ok/issued-after-restore", func(t *testing.T) {
		after := h.hop1("deploy:tag")
		if !active(after) {
			t.Error("a token issued after the epoch is inactive")
		}
		r := h.post("/token", "agent:argocd", exchangeForm(after, oauth.TokenTypeAccessToken, "audience", "https://deploy.example"))
		checkResponse(t, h, r, http.StatusOK, "", "")
	})
}
