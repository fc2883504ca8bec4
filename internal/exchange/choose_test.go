package exchange

import (
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
