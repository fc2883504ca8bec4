package verify

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/mandate-dev/mandate/oauth"
)

// RequireScope returns a Rule that lets a request through only when its
// token carries every one of scopes; otherwise 403 insufficient_scope with
// scope="…" naming them (RFC 6750 §3.1).
func RequireScope(scopes ...string) Rule {
	want := strings.Join(scopes, " ")
	return rule(func(p *Principal) (refusal, string, bool) {
		for _, s := range scopes {
			if !p.HasScope(s) {
				return insufficientScope, want, true
			}
		}
		return refusal{}, "", false
	})
}

// RequireAnyScope returns a Rule that lets a request through when its token
// carries at least one of scopes; otherwise 403 insufficient_scope naming
// them all.
func RequireAnyScope(scopes ...string) Rule {
	want := strings.Join(scopes, " ")
	return rule(func(p *Principal) (refusal, string, bool) {
		if slices.ContainsFunc(scopes, p.HasScope) {
			return refusal{}, "", false
		}
		return insufficientScope, want, true
	})
}

// AllowActors returns a Rule that lets a request through only when the
// current actor is one of actors. A token without an actor (the subject
// acting for itself) is refused. Prior actors in the chain are not
// consulted (RFC 8693 §4.1: they are informational).
func AllowActors(actors ...string) Rule {
	return rule(func(p *Principal) (refusal, string, bool) {
		if p.Actor != "" && slices.Contains(actors, p.Actor) {
			return refusal{}, "", false
		}
		return actorRefused, "", true
	})
}

// DenyActors returns a Rule that refuses a request whose current actor is
// one of actors. Only the current actor counts: a prior actor deeper in
// the chain does not deny (RFC 8693 §4.1); revoking or disabling an agent
// at the issuer is how to stop it everywhere in a chain.
func DenyActors(actors ...string) Rule {
	return rule(func(p *Principal) (refusal, string, bool) {
		if p.Actor != "" && slices.Contains(actors, p.Actor) {
			return actorRefused, "", true
		}
		return refusal{}, "", false
	})
}

// MaxDepth returns a Rule that refuses a request whose token's chain holds
// more than n actors: a route can be stricter than Config.MaxDepth.
func MaxDepth(n int) Rule {
	return rule(func(p *Principal) (refusal, string, bool) {
		if len(p.Chain) > n {
			return depthRefused, "", true
		}
		return refusal{}, "", false
	})
}

// RequireContext returns a Rule that lets a request through only when check
// accepts the token's context claim (nil when the token has none), for
// example "prod needs trigger ci_pipeline". The error's text goes to the
// audit record's reason only as "context_denied"; the client sees a fixed
// text.
func RequireContext(check func(Context) error) Rule {
	return rule(func(p *Principal) (refusal, string, bool) {
		if err := check(p.Context); err != nil {
			return contextRefused, "", true
		}
		return refusal{}, "", false
	})
}

// The refusals of the rules. Read-only.
var (
	insufficientScope = refusal{http.StatusForbidden, oauth.ErrInsufficientScope, "the access token lacks a required scope", "insufficient_scope"}
	actorRefused      = refusal{http.StatusForbidden, oauth.ErrAccessDenied, "the acting agent is not allowed here", "actor_not_allowed"}
	depthRefused      = refusal{http.StatusForbidden, oauth.ErrAccessDenied, "the delegation chain is too deep for this resource", "delegation_depth_exceeded"}
	contextRefused    = refusal{http.StatusForbidden, oauth.ErrAccessDenied, "the request context does not allow this", "context_denied"}
)

func writeJSONError(w http.ResponseWriter, status int, code oauth.ErrorCode, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"error": string(code), "error_description": description})
	_, _ = w.Write(body)
}
