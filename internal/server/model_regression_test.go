package server_test

import (
	"slices"
	"testing"
	"time"
)

// TestModelRegressions replays, each on a fresh server, the shrunk
// sequences on which TestDelegationModel found the server and the model
// of the delegation rules apart (model_rule_test.go). Each case names the
// rule it pins; the comment says what the server did.
func TestModelRegressions(t *testing.T) {
	// A person and the agents of the chain cases below.
	p2 := modelPerson{ID: "user:p2", Permissions: []string{"deploy:create", "deploy:tag", "monitoring:read", "audit:read"}}
	a0 := modelAgent{ID: "agent:a0", Scopes: []string{"deploy:create", "deploy:tag", "audit:read"}}
	a3 := modelAgent{ID: "agent:a3", Scopes: []string{"deploy:tag", "monitoring:read", "audit:read"}}
	// a0 holds p2's delegation and may address its tokens to a3 only.
	dlg := modelDelegation{ID: "dlg_c2", Subject: "user:p2", Actor: "agent:a0", Scopes: []string{"deploy:create", "deploy:tag", "audit:read"}, Audiences: []string{"agent:a3"}}
	firstHop := []modelOp{
		{Kind: "signin", Label: "t4", Person: "user:p2"},
		{Kind: "exchange", Label: "t5", Client: "agent:a0", Token: "t4", Scope: []string{"audit:read"}, ScopeGiven: true, Context: map[string]any{"run": 2, "ticket": "approved"}},
	}
	withDelegateTo := func(a modelAgent, to ...string) modelAgent { a.DelegateTo = to; return a }
	expense := modelPerson{ID: "user:p1", Permissions: []string{"deploy:create", "expense:approve", "audit:read"},
		Limits: []modelDetail{{"type": "expense_approval", "categories": []any{"meals", "travel"}, "currency": "USD", "max_amount": 5000}}}
	a1 := modelAgent{ID: "agent:a1", Scopes: []string{"deploy:create", "expense:approve", "audit:read"}}
	a2 := modelAgent{ID: "agent:a2", Scopes: []string{"deploy:create", "expense:approve", "audit:read"}}
	expenseDlg := modelDelegation{ID: "dlg_c0", Subject: "user:p1", Actor: "agent:a1", Scopes: []string{"deploy:create", "expense:approve", "audit:read"}}

	cases := []struct {
		name string
		c    modelCase
	}{
		{
			// The splice (THREATS T81): a3 holds its own delegation from
			// p2 but a0 does not list it in delegate_to; the server granted
			// the hop.
			name: "rule3/own-delegation-admits-no-chain-hop",
			c: modelCase{
				World: modelWorld{MaxDepth: 3, People: []modelPerson{p2}, Agents: []modelAgent{a0, a3},
					Delegations: []modelDelegation{dlg, {ID: "dlg_c3", Subject: "user:p2", Actor: "agent:a3", Scopes: []string{"deploy:tag", "audit:read"}}}},
				Ops: slices.Concat(firstHop, []modelOp{{Kind: "exchange", Label: "t7", Client: "agent:a3", Token: "t5", Scope: []string{"audit:read"}, ScopeGiven: true}}),
			},
		},
		{
			// An earlier actor's scopes now bound a later hop: a0 lost
			// audit:read after minting t5; the server granted audit:read
			// to a3.
			name: "rule6/earlier-actors-current-scopes",
			c: modelCase{
				World: modelWorld{MaxDepth: 3, People: []modelPerson{p2}, Agents: []modelAgent{withDelegateTo(a0, "agent:a3"), a3}, Delegations: []modelDelegation{dlg}},
				Ops: slices.Concat(firstHop, []modelOp{
					{Kind: "reconfigure", Agent: "agent:a0", Scope: []string{"deploy:create", "deploy:tag"}, DelegateTo: []string{"agent:a3"}},
					{Kind: "exchange", Label: "t20", Client: "agent:a3", Token: "t5"},
				}),
			},
		},
		{
			// Fields of the limit the request leaves out are copied: the
			// server granted {"type":"expense_approval"} alone, wider
			// than the limit.
			name: "rule7/limit-fields-copied",
			c: modelCase{
				World: modelWorld{MaxDepth: 2, People: []modelPerson{expense}, Agents: []modelAgent{a1}, Delegations: []modelDelegation{expenseDlg}},
				Ops: []modelOp{
					{Kind: "signin", Label: "t0", Person: "user:p1"},
					{Kind: "exchange", Label: "t1", Client: "agent:a1", Token: "t0", Audience: []string{"https://pay.example"}, Details: []modelDetail{{"type": "expense_approval"}}},
				},
			},
		},
		{
			// A list is intersected with the limit's: the server refused a
			// request naming categories beyond the limit's.
			name: "rule7/lists-intersected",
			c: modelCase{
				World: modelWorld{MaxDepth: 2, People: []modelPerson{expense}, Agents: []modelAgent{a1}, Delegations: []modelDelegation{expenseDlg}},
				Ops: []modelOp{
					{Kind: "signin", Label: "t0", Person: "user:p1"},
					{Kind: "exchange", Label: "t1", Client: "agent:a1", Token: "t0", Audience: []string{"https://pay.example"},
						Details: []modelDetail{{"type": "expense_approval", "categories": []any{"hardware", "travel", "meals"}, "max_amount": 9000}}},
				},
			},
		},
		{
			// A hop whose subject token carries no authorization_details
			// may not add some: the server granted them within the
			// person's limits only.
			name: "rule7/no-details-added-at-a-chain-hop",
			c: modelCase{
				World: modelWorld{MaxDepth: 3, People: []modelPerson{expense}, Agents: []modelAgent{withDelegateTo(a1, "agent:a2"), a2}, Delegations: []modelDelegation{expenseDlg}},
				Ops: []modelOp{
					{Kind: "signin", Label: "t0", Person: "user:p1"},
					{Kind: "exchange", Label: "t1", Client: "agent:a1", Token: "t0", Audience: []string{"agent:a2"}},
					{Kind: "exchange", Label: "t2", Client: "agent:a2", Token: "t1", Audience: []string{"https://pay.example"}, Details: []modelDetail{{"type": "expense_approval", "max_amount": 100}}},
				},
			},
		},
		{
			// Nobody asserted environment or trigger: the server wrote
			// them into the token as "" facts.
			name: "rule8/no-invented-facts",
			c: modelCase{
				World: modelWorld{MaxDepth: 2, People: []modelPerson{p2}, Agents: []modelAgent{a0}, Delegations: []modelDelegation{dlg}},
				Ops: []modelOp{
					{Kind: "signin", Label: "t0", Person: "user:p2"},
					{Kind: "exchange", Label: "t1", Client: "agent:a0", Token: "t0"},
				},
			},
		},
		{
			// A later hop may not change a fact: the server let a3 rewrite
			// the trigger.
			name: "rule8/fact-not-changed",
			c: modelCase{
				World: modelWorld{MaxDepth: 3, People: []modelPerson{p2}, Agents: []modelAgent{withDelegateTo(a0, "agent:a3"), a3}, Delegations: []modelDelegation{dlg}},
				Ops: slices.Concat(firstHop[:1], []modelOp{
					{Kind: "exchange", Label: "t5", Client: "agent:a0", Token: "t4", Context: map[string]any{"trigger": "manual"}},
					{Kind: "exchange", Label: "t7", Client: "agent:a3", Token: "t5", Context: map[string]any{"trigger": "ci_pipeline"}},
				}),
			},
		},
		{
			// A fact the request leaves out is kept: the server dropped
			// run=2 when a3 sent a context without it.
			name: "rule8/fact-kept",
			c: modelCase{
				World: modelWorld{MaxDepth: 3, People: []modelPerson{p2}, Agents: []modelAgent{withDelegateTo(a0, "agent:a3"), a3}, Delegations: []modelDelegation{dlg}},
				Ops:   slices.Concat(firstHop, []modelOp{{Kind: "exchange", Label: "t7", Client: "agent:a3", Token: "t5", Context: map[string]any{"environment": "prod"}}}),
			},
		},
		{
			// The actor token bounds the lifetime: the server minted a
			// token outliving it by 8 s.
			name: "rule10/actor-token-expiry",
			c: modelCase{
				World: modelWorld{MaxDepth: 2, TTL: 2 * time.Minute, People: []modelPerson{p2}, Agents: []modelAgent{a0}},
				Ops: []modelOp{
					{Kind: "idp", Label: "t0", Person: "user:p2", MayAct: "agent:a0", Duration: 30 * time.Minute},
					{Kind: "cc", Label: "t1", Client: "agent:a0"},
					{Kind: "clock", Duration: 8 * time.Second},
					{Kind: "exchange", Label: "t3", Client: "agent:a0", Token: "t0", ActorToken: "t1", Audience: []string{"https://pay.example"}},
				},
			},
		},
		{
			// The model first weighed the audience (invalid_target) and
			// looked the person up with the scopes; the server looks the
			// person up with the rest of the path's grants, before any of
			// them narrows the request. The model now does the same: an
			// unknown person is refused first (invalid_request).
			name: "bounds/unknown-person-before-audience",
			c: modelCase{
				World: modelWorld{MaxDepth: 2, Agents: []modelAgent{a0}},
				Ops: []modelOp{
					{Kind: "idp", Label: "t0", Person: "user:ghost", MayAct: "agent:a0", Duration: 10 * time.Minute},
					{Kind: "exchange", Label: "t1", Client: "agent:a0", Token: "t0", Audience: []string{"agent:a3", "https://deploy.example"}},
				},
			},
		},
		{
			// The consent page disables a scope the person does not hold;
			// a form that ticks it anyway approved it: once the person
			// was given secrets:manage, the code's token carried it.
			name: "consent/disabled-scope-not-approved",
			c: modelCase{
				World: modelWorld{MaxDepth: 2, People: []modelPerson{{ID: "user:p0", Permissions: []string{"deploy:tag"}}},
					Agents: []modelAgent{{ID: "agent:a0", Scopes: []string{"deploy:tag", "secrets:manage"}}}},
				Ops: []modelOp{
					{Kind: "approve", Label: "c0", Person: "user:p0", Client: "agent:a0", Scope: []string{"deploy:tag", "secrets:manage"},
						Ticked: []string{"deploy:tag", "secrets:manage"}, Duration: time.Hour},
					{Kind: "set-permissions", Person: "user:p0", Permissions: []string{"deploy:tag", "secrets:manage"}},
					{Kind: "redeem", Label: "c2", Client: "agent:a0", Code: "c0"},
				},
			},
		},
		{
			// A code presented again revokes its delegation: the token the
			// first redemption issued, its refresh family and the hop made
			// from it end; the actor token of another agent, within the
			// leeway after its exp, is not that agent's own (invalid_grant).
			name: "consent/code-replay-ends-family-and-hops",
			c: modelCase{
				World: modelWorld{MaxDepth: 3, People: []modelPerson{p2}, Agents: []modelAgent{withDelegateTo(a0, "agent:a3"), a3}},
				Ops: []modelOp{
					{Kind: "approve", Label: "c0", Person: "user:p2", Client: "agent:a0", Scope: []string{"deploy:tag", "audit:read"}, Ticked: []string{"deploy:tag", "audit:read"}},
					{Kind: "redeem", Label: "c1", Client: "agent:a0", Code: "c0", Audience: []string{"agent:a3"}, Context: map[string]any{"run": 1}},
					{Kind: "exchange", Label: "t2", Client: "agent:a3", Token: "c1", Audience: []string{"https://deploy.example"}, Scope: []string{"audit:read"}, ScopeGiven: true},
					{Kind: "refresh", Label: "c3", Client: "agent:a0", Refresh: "c1", Scope: []string{"audit:read"}, ScopeGiven: true},
					{Kind: "redeem", Label: "c4", Client: "agent:a0", Code: "c0"},
					{Kind: "refresh", Label: "c5", Client: "agent:a0", Refresh: "c3"},
				},
			},
		},
		{
			// The model kept a consent token in force when its client (not
			// its agent: the client asked for another with
			// requested_actor) was disabled; the server ends every token
			// that names the agent as its client too.
			name: "consent/disabled-client-ends-its-tokens",
			c: modelCase{
				World: modelWorld{MaxDepth: 4, People: []modelPerson{p2}, Agents: []modelAgent{a0, a3}},
				Ops: []modelOp{
					{Kind: "cc", Label: "t0", Client: "agent:a3"},
					{Kind: "approve", Label: "c1", Person: "user:p2", Client: "agent:a0", Agent: "agent:a3", Scope: []string{"deploy:tag", "audit:read"},
						Duration: 15 * time.Minute, Ticked: []string{"deploy:tag", "audit:read"}},
					{Kind: "redeem", Label: "c2", Client: "agent:a0", ActorToken: "t0", Code: "c1", Context: map[string]any{"trigger": "ci_pipeline"}},
					{Kind: "disable", Agent: "agent:a0"},
				},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runModelRegression(t, tc.c) })
	}
}
