package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// clockedHarness is a harness whose clock stands still until advance moves
// it, and that reads it back (now).
type clockedHarness struct {
	*harness
	now     func() time.Time
	advance func(time.Duration)
}

func newSweepHarness(t *testing.T, open func(t *testing.T) store.Store, edit func(*config.Config)) clockedHarness {
	var mu sync.Mutex
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	return clockedHarness{harness: newHarnessEdited(t, open, clock, edit), now: clock, advance: advance}
}

// chain issues Sam → InfraBot (hop 1) → ArgoCD at the harness's clock, from
// an IdP token that expires in ten minutes.
func (h clockedHarness) chain() (hop1, argo string) {
	h.t.Helper()
	now := h.now()
	idp := h.idp.token(h.t, "user:sam", map[string]any{"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	hop1 = h.mustExchange("agent:infrabot", idp, oauth.TokenTypeIDToken,
		url.Values{"audience": {"agent:argocd"}, "scope": {"deploy:create"}})
	argo = h.mustExchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, url.Values{"audience": {"https://deploy.example"}})
	return hop1, argo
}

// revoke revokes tok at /revoke as infrabot or argocd, whichever it was
// issued to.
func (h clockedHarness) revoke(tok string) {
	h.t.Helper()
	client := claims(h.t, tok)["client_id"].(string)
	if r := h.post("/revoke", client, url.Values{"token": {tok}}); r.status != http.StatusOK {
		h.t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
}

// present returns the jtis whose token row the store still holds.
func (h clockedHarness) present(jtis []string) []string {
	h.t.Helper()
	var out []string
	for _, jti := range jtis {
		_, err := h.store.GetToken(context.Background(), jti)
		switch {
		case err == nil:
			out = append(out, jti)
		case !errors.Is(err, store.ErrNotFound):
			h.t.Fatalf("GetToken(%s): %v", jti, err)
		}
	}
	return out
}

// answers are what the server says of a token: introspection's body and
// the revocation_url's status and body.
type answers struct {
	introspection map[string]any
	statusCode    int
	status        map[string]any
}

func (h clockedHarness) answers(tok string) answers {
	h.t.Helper()
	_, in := h.introspectActive(tok)
	req, _ := http.NewRequest(http.MethodGet, h.url+"/revocations/"+jtiOf(h.t, tok), nil)
	st := h.do(req)
	return answers{introspection: in.body, statusCode: st.status, status: st.body}
}

// lineage is the Seq of each record of tok's lineage, what `mandate audit
// query --jti X --lineage` prints.
func (h clockedHarness) lineage(tok string) []int64 {
	h.t.Helper()
	evs, err := forensics.Lineage(context.Background(), h.store, jtiOf(h.t, tok))
	if err != nil {
		h.t.Fatalf("Lineage: %v", err)
	}
	var seqs []int64
	for _, ev := range evs {
		seqs = append(seqs, ev.Seq)
	}
	return seqs
}

// TestSweepChangesNoAnswer: tokens and chains are issued, some revoked, the
// clock passes the first ones' exp plus the leeway and the margin, and the
// sweep deletes their rows and their feed entries. No question about any
// token changes its answer: introspection (inactive for the expired ones,
// as before, and unchanged for the live ones), revocation status of the
// live ones, and every token's lineage from the audit log; the feed serves
// the same entries, and the live tokens' entries stay in the store. The
// revocation status of a swept token is the exception, documented in
// docs/deploy.md: 404, as for a jti never issued (no verifier accepts the
// token by then).
func TestSweepChangesNoAnswer(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			h := newSweepHarness(t, b.open, nil)
			// Expire at t0+10m: A clean, B with its first hop revoked.
			hop1A, argoA := h.chain()
			hop1B, argoB := h.chain()
			h.revoke(hop1B)
			// Expire at t0+16m: C clean, D with its first hop revoked, E
			// with its last hop revoked.
			h.advance(6 * time.Minute)
			h.untilFresh()
			hop1C, argoC := h.chain()
			hop1D, argoD := h.chain()
			h.revoke(hop1D)
			hop1E, argoE := h.chain()
			h.revoke(argoE)
			old := []string{hop1A, argoA, hop1B, argoB}
			live := []string{hop1C, argoC, hop1D, argoD, hop1E, argoE}
			all := append(append([]string(nil), old...), live...)

			// The first ones' exp (t0+10m) plus the grace (2m with the
			// default leeway of 60s) is t0+12m.
			h.advance(6*time.Minute + time.Second)
			h.untilFresh()
			before := map[string]answers{}
			for _, tok := range all {
				before[tok] = h.answers(tok)
			}
			snap := h.admin(http.MethodGet, "/revocations", nil)
			// The lineages after the introspections, which are recorded:
			// nothing is recorded between them and the ones after the
			// sweep.
			lineages := map[string][]int64{}
			for _, tok := range all {
				lineages[tok] = h.lineage(tok)
			}

			swept, err := h.app.Sweep(t.Context())
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			if want := (store.Swept{Tokens: 4, Revocations: 1}); swept != want {
				t.Errorf("Sweep = %+v, want %+v (chains A and B, and hop1B's feed entry)", swept, want)
			}
			if n := len(h.present(jtis(t, old))); n != 0 {
				t.Errorf("%d rows of expired tokens left after the sweep, want 0", n)
			}
			if n := len(h.present(jtis(t, live))); n != len(live) {
				t.Errorf("%d rows of live tokens left after the sweep, want %d", n, len(live))
			}
			if got := h.metric("mandate_store_swept_rows_total"); got != 5 {
				t.Errorf("mandate_store_swept_rows_total = %v, want 5", got)
			}

			// Lineages first: introspecting is recorded.
			for _, tok := range all {
				if diff := cmp.Diff(lineages[tok], h.lineage(tok)); diff != "" {
					t.Errorf("lineage of %s changed (-before +after):\n%s", claims(t, tok)["client_id"], diff)
				}
			}
			for i, tok := range all {
				got := h.answers(tok)
				if diff := cmp.Diff(before[tok].introspection, got.introspection); diff != "" {
					t.Errorf("introspection of token %d changed (-before +after):\n%s", i, diff)
				}
				if i < len(old) {
					if got.statusCode != http.StatusNotFound {
						t.Errorf("revocation status of swept token %d: %d, want 404", i, got.statusCode)
					}
					continue
				}
				if got.statusCode != before[tok].statusCode || !cmp.Equal(got.status, before[tok].status) {
					t.Errorf("revocation status of live token %d: %d %v, was %d %v", i, got.statusCode, got.status,
						before[tok].statusCode, before[tok].status)
				}
			}
			// Expired tokens inactive, C active, D and E inactive.
			for i, want := range []bool{false, false, false, false, true, true, false, false, true, false} {
				if got := before[all[i]].introspection["active"] == true; got != want {
					t.Errorf("token %d: active %v, want %v", i, got, want)
				}
			}
			if after := h.admin(http.MethodGet, "/revocations", nil); after.status != http.StatusOK || !cmp.Equal(after.body["entries"], snap.body["entries"]) {
				t.Errorf("the feed's snapshot changed:\nbefore %s\nafter  %s", snap.raw, after.raw)
			}
			// A new instance reads the entries of the live tokens from the
			// store.
			rs, err := h.store.ListRevocations(t.Context(), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			if want := []string{jtiOf(t, hop1D), jtiOf(t, argoE)}; !cmp.Equal(ids, want) {
				t.Errorf("feed entries in the store after the sweep: %v, want %v (D's and E's)", ids, want)
			}
		})
	}
}

// TestT77BoundedStateUnderChurn: tokens issued and revoked at a steady
// rate, the clock running on and the sweep running every 30 s keep the
// token rows and the feed entries under the issuance rate times the longest
// lifetime plus the grace plus the sweep's period, however long it runs.
func TestT77BoundedStateUnderChurn(t *testing.T) {
	const (
		step       = 5 * time.Second // one chain (two tokens) per step
		sweepEvery = 30 * time.Second
		steps      = 150 // 12.5 minutes
	)
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			h := newSweepHarness(t, b.open, func(c *config.Config) {
				c.Tokens.TTL = config.Duration(time.Minute)
				c.Tokens.MaxTTL = config.Duration(time.Minute)
				c.Storage.SweepBatch = 7 // several batches per sweep
			})
			maxTTL, grace := time.Minute, 2*time.Minute
			rate := 2 / step.Seconds()
			bound := int(rate*(maxTTL+grace+sweepEvery).Seconds()) + 7
			// present are the jtis whose rows were there at the last count;
			// a swept row never comes back.
			var issued int
			var present []string
			peak, peakEntries := 0, 0
			for i := range steps {
				h.advance(step)
				h.untilFresh()
				hop1, argo := h.chain()
				issued += 2
				present = append(present, jtiOf(t, hop1), jtiOf(t, argo))
				if i%3 == 0 {
					h.revoke(argo)
				}
				if time.Duration(i+1)*step%sweepEvery == 0 {
					if _, err := h.app.Sweep(t.Context()); err != nil {
						t.Fatalf("step %d: Sweep: %v", i, err)
					}
				}
				present = h.present(present)
				peak = max(peak, len(present))
				rs, err := h.store.ListRevocations(t.Context(), 0, store.MaxRevocationLimit)
				if err != nil {
					t.Fatal(err)
				}
				peakEntries = max(peakEntries, len(rs))
			}
			t.Logf("%d tokens issued; at most %d rows and %d feed entries at once (bound %d)", issued, peak, peakEntries, bound)
			if peak > bound {
				t.Errorf("token rows reached %d, above the bound %d", peak, bound)
			}
			if peakEntries > bound {
				t.Errorf("feed entries reached %d, above the bound %d", peakEntries, bound)
			}
			if issued < 3*bound {
				t.Fatalf("the test issued %d tokens, too few to show a bound of %d", issued, bound)
			}
		})
	}
}

func jtis(t *testing.T, toks []string) []string {
	out := make([]string, len(toks))
	for i, tok := range toks {
		out[i] = jtiOf(t, tok)
	}
	return out
}
