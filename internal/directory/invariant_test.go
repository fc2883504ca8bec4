package directory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
)

// snapshot is everything the directory writes but the log: users, agents
// and delegations, as JSON.
func (f *fixture) snapshot() string {
	f.t.Helper()
	ctx := context.Background()
	users, err := f.s.ListUsers(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	agents, err := f.s.ListAgents(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	dls, err := f.s.ListDelegations(ctx, store.DelegationFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := json.Marshal([]any{users, agents, dls})
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// TestEveryWriteAuditedAndEveryRefusalChangesNothing runs generated
// sequences of directory writes, valid and not, against a real store and
// checks after each one the rule every write keeps: a refused write changes
// nothing and records nothing; a write that changed something left at least
// one record, and every record names the performer and the request.
func TestEveryWriteAuditedAndEveryRefusalChangesNothing(t *testing.T) {
	counts := runDirectoryWrites(t, 0x6d616e6461746521, 2500)
	t.Logf("2500 writes (done/refused): %s", fmt.Sprint(counts))
	for name, c := range counts {
		if c[0] == 0 || c[1] == 0 {
			t.Errorf("%s was never %s: the generator does not reach both outcomes", name, map[bool]string{true: "done", false: "refused"}[c[0] == 0])
		}
	}
}

// FuzzDirectoryWrites runs the same rule over sequences from any seed.
func FuzzDirectoryWrites(f *testing.F) {
	f.Add(uint64(1))
	f.Fuzz(func(t *testing.T, seed uint64) { runDirectoryWrites(t, seed, 200) })
}

// runDirectoryWrites runs ops generated writes from seed on a fresh store,
// checking the rule after each, and returns per write how many were done
// and how many refused.
func runDirectoryWrites(t *testing.T, seed uint64, ops int) map[string][2]int {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x6d616e64617465))
	f := newFixture(t)
	ctx := context.Background()
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	// Mostly well-formed values, so that writes succeed often enough for
	// later ones to find what they name; sometimes a malformed one.
	odd := func() bool { return rng.IntN(8) == 0 }
	users := func() string {
		if odd() {
			return pick("user:ghost", "user bad", "", "agent:bot")
		}
		return pick("user:sam", "user:alex", "user:kim")
	}
	agents := func() string {
		if odd() {
			return pick("agent:ghost", "agent bad", "", "user:sam")
		}
		return pick("agent:bot", "agent:ci", "agent:x")
	}
	scopes := func() []string {
		if odd() {
			return pick2(rng, []string{"bad scope"}, []string{""}, nil, []string{"deploy:read", "deploy:read"})
		}
		all := []string{"deploy:create", "deploy:read", "audit:read"}
		out := []string{all[rng.IntN(3)]}
		if rng.IntN(2) == 0 && out[0] != "audit:read" {
			out = append(out, "audit:read")
		}
		return out
	}
	dlgs := func() string { return fmt.Sprintf("dlg_%02d", rng.IntN(24)) }
	depth := func() int {
		if odd() {
			return pick3(rng, -1, 11, 99)
		}
		return rng.IntN(4)
	}
	counts := map[string][2]int{}
	for i := range ops {
		before, seq := f.snapshot(), f.lastSeq()
		var (
			name string
			err  error
		)
		switch rng.IntN(13) {
		case 0:
			name = "CreateUser"
			_, err = f.d.CreateUser(ctx, admin, store.User{ID: users(), Permissions: scopes()})
		case 1:
			name = "SetPermissions"
			_, err = f.d.SetPermissions(ctx, admin, users(), scopes())
		case 2:
			name = "SetLimits"
			limits := pick(`[]`, `[{"type":"expense_approval","max_amount":100,"currency":"USD"}]`, `[{"max_amount":1}]`, `{`)
			_, err = f.d.SetLimits(ctx, admin, users(), json.RawMessage(limits))
		case 3:
			name = "RevokeSubject"
			_, err = f.d.RevokeSubject(ctx, admin, users())
		case 4:
			name = "DeleteUser"
			err = f.d.DeleteUser(ctx, admin, users())
		case 5:
			name = "CreateAgent"
			_, _, err = f.d.CreateAgent(ctx, admin, store.Agent{ID: agents(), Scopes: scopes(), MaxDepth: depth(),
				DelegateTo: []string{agents()}})
		case 6:
			name = "UpdateAgent"
			sc, d := scopes(), depth()
			_, err = f.d.UpdateAgent(ctx, admin, agents(), directory.AgentChange{Scopes: &sc, MaxDepth: &d})
		case 7:
			name = "SetAgentDisabled"
			_, err = f.d.SetAgentDisabled(ctx, admin, agents(), rng.IntN(2) == 0)
		case 8:
			name = "NewSecret"
			_, err = f.d.NewSecret(ctx, admin, agents())
		case 9:
			name = "DeleteAgent"
			err = f.d.DeleteAgent(ctx, admin, agents())
		case 10:
			name = "CreateDelegation"
			_, err = f.d.CreateDelegation(ctx, admin, store.Delegation{ID: dlgs(), Subject: users(), Actor: agents(),
				Scopes: scopes(), MaxDepth: depth(), Source: directory.SourceAdmin})
		case 11:
			name = "UpdateDelegation"
			sc, d := scopes(), depth()
			_, err = f.d.UpdateDelegation(ctx, admin, dlgs(), directory.DelegationChange{Scopes: &sc, MaxDepth: &d})
		case 12:
			name = "RevokeDelegation"
			err = f.d.RevokeDelegation(ctx, admin, dlgs(), "test")
		}
		after, added := f.snapshot(), f.events(seq)
		c := counts[name]
		if err != nil {
			c[1]++
			if after != before || len(added) > 0 {
				t.Fatalf("op %d (seed %d): %s was refused (%v) but changed the store or wrote %d records", i, seed, name, err, len(added))
			}
		} else {
			c[0]++
			if after != before && len(added) == 0 {
				t.Fatalf("op %d (seed %d): %s changed the store and wrote no record", i, seed, name)
			}
		}
		counts[name] = c
		for _, ev := range added {
			if ev.Performer != admin.ID || ev.RequestID != admin.RequestID {
				t.Fatalf("op %d (seed %d): %s wrote a record of %q, request %q", i, seed, name, ev.Performer, ev.RequestID)
			}
		}
	}
	return counts
}

func pick2(rng *rand.Rand, xs ...[]string) []string { return xs[rng.IntN(len(xs))] }

func pick3(rng *rand.Rand, xs ...int) int { return xs[rng.IntN(len(xs))] }
