package exchange

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// TestChooseDelegation: of several delegations in force from one person to
// one agent, the first hop takes the one that admits the request, whatever
// order the store lists them in.
func TestChooseDelegation(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	file := store.Delegation{ID: "dlg_file", Scopes: []string{"monitoring:read", "deploy:create"}, CreatedAt: now.Add(-time.Hour)}
	metrics := store.Delegation{ID: "dlg_0consent", Scopes: []string{"monitoring:read"}, Audiences: []string{"https://metrics.example"}, CreatedAt: now.Add(-time.Minute)}
	narrow := store.Delegation{ID: "dlg_narrow", Scopes: []string{"deploy:create"}, CreatedAt: now.Add(-2 * time.Minute)}
	revoked := store.Delegation{ID: "dlg_00revoked", Scopes: []string{"monitoring:read", "deploy:create"}, Revoked: true, CreatedAt: now}
	cases := []struct {
		name string
		ds   []store.Delegation
		req  Request
		want string
	}{
		{"another audience than the consent's", []store.Delegation{metrics, file}, Request{Audiences: []string{"agent:argocd"}, Scopes: []string{"deploy:create"}, ScopeGiven: true}, "dlg_file"},
		{"the consent's audience, its scope", []store.Delegation{file, metrics}, Request{Resources: []string{"https://metrics.example"}, Scopes: []string{"monitoring:read"}, ScopeGiven: true}, "dlg_0consent"},
		{"more of the requested scopes wins", []store.Delegation{narrow, file}, Request{Audiences: []string{"x"}, Scopes: []string{"monitoring:read", "deploy:create"}, ScopeGiven: true}, "dlg_file"},
		{"a tie goes to the newest", []store.Delegation{file, narrow}, Request{Audiences: []string{"x"}, Scopes: []string{"deploy:create"}, ScopeGiven: true}, "dlg_narrow"},
		{"no scope asked: the most scopes", []store.Delegation{narrow, file}, Request{Audiences: []string{"x"}}, "dlg_file"},
		{"revoked ones never", []store.Delegation{revoked, narrow}, Request{Audiences: []string{"x"}}, "dlg_narrow"},
		{"none admits: the newest, to be refused", []store.Delegation{metrics}, Request{Audiences: []string{"agent:argocd"}}, "dlg_0consent"},
		{"none in force", []store.Delegation{revoked}, Request{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := chooseDelegation(c.ds, now, c.req)
			switch {
			case c.want == "" && got != nil:
				t.Fatalf("chose %s, want none", got.ID)
			case c.want != "" && (got == nil || got.ID != c.want):
				t.Fatalf("chose %+v, want %s", got, c.want)
			}
			// The store's order decides nothing.
			rev := append([]store.Delegation(nil), c.ds...)
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			if again := chooseDelegation(rev, now, c.req); (again == nil) != (got == nil) || again != nil && again.ID != got.ID {
				t.Fatalf("the other order chose %+v, this one %+v", again, got)
			}
		})
	}
}

// TestChooseDelegationProperties: over generated sets of delegations and
// requests, the choice is one in force, admits the request's target when
// any in force does, holds no fewer of the requested scopes than any other
// that admits it, and is the same in every order the store may list them.
func TestChooseDelegationProperties(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(7, 11))
	scopes := []string{"a", "b", "c", "d"}
	auds := []string{"https://one.example", "https://two.example", "agent:x"}
	pick := func(xs []string) []string {
		var out []string
		for _, x := range xs {
			if r.IntN(2) == 0 {
				out = append(out, x)
			}
		}
		return out
	}
	for n := range 2000 {
		ds := make([]store.Delegation, r.IntN(5))
		for i := range ds {
			ds[i] = store.Delegation{ID: fmt.Sprintf("dlg_%02d_%d", r.IntN(100), i), Scopes: pick(scopes), Audiences: pick(auds),
				Revoked: r.IntN(5) == 0, CreatedAt: now.Add(-time.Duration(r.IntN(4)) * time.Hour)}
			if r.IntN(6) == 0 {
				ds[i].Expires = now.Add(-time.Minute)
			}
		}
		req := Request{Scopes: pick(scopes)}
		req.ScopeGiven = len(req.Scopes) > 0
		if r.IntN(4) > 0 {
			req.Audiences = []string{auds[r.IntN(len(auds))]}
		}
		got := chooseDelegation(ds, now, req)
		var inForce []store.Delegation
		for _, d := range ds {
			if d.Active(now) {
				inForce = append(inForce, d)
			}
		}
		if (got == nil) != (len(inForce) == 0) {
			t.Fatalf("case %d: chose %+v among %+v in force", n, got, inForce)
		}
		if got == nil {
			continue
		}
		if !got.Active(now) {
			t.Fatalf("case %d: chose %s, not in force", n, got.ID)
		}
		admits := func(d store.Delegation) bool {
			return len(req.Audiences) == 0 || len(d.Audiences) == 0 || slices.Contains(d.Audiences, req.Audiences[0])
		}
		held := func(d store.Delegation) int {
			if !req.ScopeGiven {
				return len(d.Scopes)
			}
			return len(intersect(req.Scopes, d.Scopes))
		}
		for _, d := range inForce {
			if admits(d) && !admits(*got) {
				t.Fatalf("case %d: chose %s, which does not admit %v, over %s, which does", n, got.ID, req.Audiences, d.ID)
			}
			if admits(d) && held(d) > held(*got) {
				t.Fatalf("case %d: chose %s holding %d requested scopes over %s holding %d", n, got.ID, held(*got), d.ID, held(d))
			}
		}
		shuffled := slices.Clone(ds)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again := chooseDelegation(shuffled, now, req)
		if again == nil || again.ID != got.ID || !again.CreatedAt.Equal(got.CreatedAt) || !slices.Equal(again.Scopes, got.Scopes) {
			t.Fatalf("case %d: another order chose %+v, this one %+v", n, again, got)
		}
	}
}
