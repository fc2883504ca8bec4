package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

// tokenWorld is one store under the property test: eager indexes every
// record after each step, so that every token has its tokens row before
// it is read (the behaviour before migration 23); a lazy world indexes only
// at the test's index steps, a few records at a time, and reads through a
// second store on the same file too (another process, which saw none of the
// commits).
type tokenWorld struct {
	name  string
	path  string
	eager bool
	s     *Store
	other *Store
	clock time.Time
}

func (w *tokenWorld) open(t *testing.T) {
	t.Helper()
	open := func() *Store {
		s, err := Open(context.Background(), w.path)
		if err != nil {
			t.Fatal(err)
		}
		s.indexer.stop()
		s.indexer = nil
		s.now = func() time.Time { return w.clock }
		return s
	}
	w.s = open()
	if !w.eager {
		w.other = open()
	}
}

func (w *tokenWorld) close() {
	w.s.Close()
	if w.other != nil {
		w.other.Close()
	}
}

// settle indexes every record, when the world is eager.
func (w *tokenWorld) settle(t *testing.T) {
	t.Helper()
	for w.eager {
		n, err := w.s.indexEvents(context.Background(), indexBatch)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// errClass is what the property compares of an error: its sentinel.
func errClass(err error) string {
	for _, e := range []error{store.ErrNotFound, store.ErrAlreadyExists, store.ErrConflict} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

// TestCarriedTokensAnswerAsRows: every answer about a token (GetToken, so
// every lineage walk; RevokeToken; the revocation feed; Sweep; a duplicate
// jti at Commit) is the same whether the indexer has written the token's
// row yet or not. Random interleavings of issuing, exchanging from a token,
// revoking (the token, its delegation, its person, its agent), indexing a
// few records, sweeping, committing from another process and reopening
// the store run against an eager world and a lazy one, and each answer of
// the lazy world, through either of its stores, must equal the eager
// world's; GetToken must also match a model of the tokens.
func TestCarriedTokensAnswerAsRows(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { carriedTokensRun(t, uint64(seed)) })
	}
}

func carriedTokensRun(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 23))
	base := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	eager := &tokenWorld{name: "eager", path: filepath.Join(dir, "eager.db"), eager: true, clock: base}
	lazy := &tokenWorld{name: "lazy", path: filepath.Join(dir, "lazy.db"), clock: base}
	worlds := []*tokenWorld{eager, lazy}
	for _, w := range worlds {
		w.open(t)
		defer func() { w.close() }()
	}
	users := []string{"user:sam", "user:ada"}
	agents := []string{"agent:a1", "agent:a2", "agent:a3"}
	delegations := []string{"dlg_1", "dlg_2", "dlg_3"}
	for _, w := range worlds {
		for _, u := range users {
			if err := w.s.CreateUser(ctx, store.User{ID: u, Version: 1, CreatedAt: base, UpdatedAt: base}); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range agents {
			if err := w.s.CreateAgent(ctx, store.Agent{ID: a, Scopes: []string{"s1", "s2"}, MaxDepth: 3, CreatedAt: base}); err != nil {
				t.Fatal(err)
			}
		}
		for i, d := range delegations {
			if err := w.s.CreateDelegation(ctx, store.Delegation{ID: d, Subject: users[i%len(users)], Actor: agents[i],
				Scopes: []string{"s1", "s2"}, MaxDepth: 2, Expires: base.Add(24 * time.Hour), CreatedAt: base}); err != nil {
				t.Fatal(err)
			}
		}
		w.settle(t)
	}

	model := map[string]store.IssuedToken{}
	var jtis []string
	n := 0
	newToken := func(parent *store.IssuedToken) (store.IssuedToken, store.Event) {
		n++
		now := base.Add(time.Duration(n) * time.Second)
		jti := fmt.Sprintf("%012x%08x", now.UnixMilli(), rng.Uint32())
		tok := store.IssuedToken{
			JTI: jti, GrantType: "client_credentials", Subject: agents[rng.IntN(len(agents))],
			ClientID: agents[rng.IntN(len(agents))], Scopes: []string{"s1"}, Audience: "https://api.example",
			SubjectVersion: int64(rng.IntN(3)), Gen: int64(rng.IntN(1000)), IssuedAt: now,
			ExpiresAt: now.Add(time.Duration(1+rng.IntN(20)) * time.Minute),
		}
		if rng.IntN(5) == 0 {
			tok.GrantType = "urn:example:grant-type:" + fmt.Sprint(rng.IntN(3))
		}
		if parent != nil {
			i := rng.IntN(len(delegations))
			tok.GrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
			tok.ParentJTI, tok.Subject = parent.JTI, users[i%len(users)]
			tok.Chain = append([]string{agents[i]}, parent.Chain...)
			tok.DelegationID = delegations[i]
			if parent.ExpiresAt.Before(tok.ExpiresAt) {
				tok.ExpiresAt = parent.ExpiresAt
			}
		}
		ev := store.Event{
			ID: "evt_" + jti, Time: now, RequestID: "req_" + jti, Action: "token.exchange", Result: "granted",
			Performer: tok.ClientID, OnBehalf: tok.Subject, Chain: tok.Chain, ClientID: tok.ClientID,
			Scopes: tok.Scopes, Audience: tok.Audience, DelegationID: tok.DelegationID, JTI: jti, ParentJTI: tok.ParentJTI,
		}
		// Now and then the record says other than the token.
		switch rng.IntN(8) {
		case 0:
			ev.Scopes = []string{"s1", "s2"}
		case 1:
			ev.OnBehalf, ev.Audience = "user:other", ""
		case 2:
			ev.Chain = []string{"agent:other", "bad \xff byte"}
		case 3:
			ev.ParentJTI = ""
		}
		return tok, ev
	}
	pick := func() string {
		if len(jtis) == 0 || rng.IntN(10) == 0 {
			return "unknown"
		}
		return jtis[rng.IntN(len(jtis))]
	}
	// each runs op in every world and requires the same outcome.
	each := func(step string, op func(w *tokenWorld, s *Store) error) {
		t.Helper()
		var want string
		for i, w := range worlds {
			s := w.s
			if w.other != nil && rng.IntN(3) == 0 {
				s = w.other
			}
			got := errClass(op(w, s))
			if i == 0 {
				want = got
			} else if got != want {
				t.Fatalf("%s: %s answers %s, eager %s", step, w.name, got, want)
			}
			w.settle(t)
		}
	}

	for step := range 80 {
		for _, w := range worlds {
			w.clock = base.Add(time.Duration(step) * 30 * time.Second)
		}
		var desc string
		switch op := rng.IntN(13); {
		case op < 4: // issue or exchange, one to three tokens in a commit
			var b store.Batch
			for range 1 + rng.IntN(3) {
				var parent *store.IssuedToken
				if p, ok := model[pick()]; ok && rng.IntN(3) > 0 {
					parent = &p
				}
				tok, ev := newToken(parent)
				b.Tokens = append(b.Tokens, tok)
				if rng.IntN(6) > 0 {
					b.Events = append(b.Events, ev)
				}
				if rng.IntN(4) == 0 {
					b.Events = append(b.Events, store.Event{ID: "evt_req_" + tok.JTI, Action: "request", Result: "granted"})
				}
			}
			desc = fmt.Sprintf("commit %d tokens, %d records", len(b.Tokens), len(b.Events))
			var ok bool
			each(desc, func(_ *tokenWorld, s *Store) error {
				err := s.Commit(ctx, b)
				ok = err == nil
				return err
			})
			if ok {
				for _, tok := range b.Tokens {
					model[tok.JTI] = tok
					jtis = append(jtis, tok.JTI)
				}
			}
		case op < 5: // a jti that exists, or twice in a batch
			tok, ev := newToken(nil)
			if rng.IntN(2) == 0 {
				tok.JTI = pick()
				ev.JTI = tok.JTI
			}
			b := store.Batch{Tokens: []store.IssuedToken{tok, tok}[:1+rng.IntN(2)], Events: []store.Event{ev}}
			desc = "commit a duplicate " + tok.JTI
			each(desc, func(_ *tokenWorld, s *Store) error { return s.Commit(ctx, b) })
			if _, ok := model[tok.JTI]; !ok && len(b.Tokens) == 1 {
				model[tok.JTI] = tok
				jtis = append(jtis, tok.JTI)
			}
		case op < 7: // revoke a token
			jti := pick()
			at := time.Time{}
			if rng.IntN(2) == 0 {
				at = base.Add(time.Duration(rng.IntN(3600)) * time.Second)
			}
			desc = "revoke " + jti
			each(desc, func(w *tokenWorld, s *Store) error {
				return s.RevokeToken(ctx, jti, at, store.Event{ID: fmt.Sprintf("rev_%d", step), Action: "token.revoke", JTI: jti})
			})
			if tok, ok := model[jti]; ok && !tok.Revoked {
				tok.Revoked, tok.RevokedAt = true, at
				model[jti] = tok
			}
		case op < 8: // revoke a delegation, a person's tokens, an agent
			switch rng.IntN(3) {
			case 0:
				d := delegations[rng.IntN(len(delegations))]
				desc = "revoke delegation " + d
				each(desc, func(w *tokenWorld, s *Store) error {
					_, err := s.UpdateDelegation(ctx, d, func(d store.Delegation) (store.Delegation, error) {
						d.Revoked, d.RevokedAt = true, w.clock
						return d, nil
					}, store.Event{ID: fmt.Sprintf("dlg_%d", step), Action: "delegation.revoke", DelegationID: d})
					return err
				})
			case 1:
				u := users[rng.IntN(len(users))]
				desc = "revoke the tokens of " + u
				each(desc, func(w *tokenWorld, s *Store) error {
					_, err := s.UpdateUser(ctx, u, func(u store.User) (store.User, error) {
						u.Version++
						return u, nil
					}, store.Event{ID: fmt.Sprintf("usr_%d", step), Action: "user.revoke_tokens", OnBehalf: u})
					return err
				})
			default:
				a := agents[rng.IntN(len(agents))]
				desc = "disable " + a
				each(desc, func(w *tokenWorld, s *Store) error {
					_, err := s.UpdateAgent(ctx, a, func(a store.Agent) (store.Agent, error) {
						a.Disabled = true
						return a, nil
					}, store.Event{ID: fmt.Sprintf("agt_%d", step), Action: "agent.disable", Performer: a})
					return err
				})
			}
		case op < 10: // the indexer's batch, a few records
			k := 1 + rng.IntN(4)
			desc = fmt.Sprintf("index %d", k)
			if _, err := lazy.s.indexEvents(ctx, k); err != nil {
				t.Fatal(err)
			}
		case op < 11: // sweep
			cutoff := base.Add(time.Duration(rng.IntN(40)) * time.Minute)
			desc = "sweep before " + cutoff.Format(time.TimeOnly)
			var swept []store.Swept
			each(desc, func(_ *tokenWorld, s *Store) error {
				got, err := s.Sweep(ctx, store.SweepCutoffs{Tokens: cutoff, TokenRevocations: cutoff}, 0)
				swept = append(swept, got)
				return err
			})
			if swept[0] != swept[1] {
				t.Fatalf("%s: swept %+v, eager %+v", desc, swept[1], swept[0])
			}
			for jti, tok := range model {
				if tok.ExpiresAt.Before(cutoff) {
					delete(model, jti)
				}
			}
		default: // restart
			desc = "reopen"
			for _, w := range worlds {
				w.close()
				w.open(t)
			}
		}

		// Every answer about every token, through each store of each world.
		for _, jti := range append(jtis, "unknown") {
			want, werr := eager.s.GetToken(ctx, jti)
			mt, inModel := model[jti]
			if inModel != (werr == nil) || (inModel && !cmp.Equal(mt, want)) {
				t.Fatalf("step %d (%s): eager GetToken(%s) = %+v, %v; model %+v, %v", step, desc, jti, want, werr, mt, inModel)
			}
			for _, s := range []*Store{lazy.s, lazy.other} {
				got, err := s.GetToken(ctx, jti)
				if errClass(err) != errClass(werr) || !cmp.Equal(got, want) {
					t.Fatalf("step %d (%s): lazy GetToken(%s) = %+v, %v; eager %+v, %v", step, desc, jti, got, err, want, werr)
				}
			}
		}
		want, err := eager.s.ListRevocations(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := lazy.other.ListRevocations(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("step %d (%s): revocation feed (-eager +lazy):\n%s", step, desc, diff)
		}
	}
}
