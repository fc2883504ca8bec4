package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/internal/tokenstate"
	"github.com/mandate-dev/mandate/oauth"
)

var inactive = map[string]bool{"active": false}

// introspect is RFC 7662. The caller authenticates as a client (§2.1) and
// sees a token as active only if it was issued to the caller or is addressed
// to it; any other token, and any token not in force, is {"active": false}
// with no other member (§2.2). A store failure is 503, never a stale answer.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) error {
	caller, raw, err := s.tokenParam(w, r)
	if err != nil {
		return err
	}
	v, rec, err := s.inForce(r, raw)
	if err != nil {
		return err
	}
	if v == nil || (rec.ClientID != caller.ID && rec.Audience != caller.ID) {
		oauth.WriteJSON(w, http.StatusOK, inactive)
		return nil
	}
	resp := map[string]any{
		"active":     true,
		"iss":        v.Issuer,
		"sub":        v.Subject,
		"client_id":  v.ClientID,
		"aud":        rec.Audience,
		"scope":      strings.Join(rec.Scopes, " "),
		"jti":        v.JTI,
		"token_type": "Bearer",
		"exp":        v.Expiry.Unix(),
		"iat":        v.IssuedAt.Unix(),
		"nbf":        v.NotBefore.Unix(),
	}
	if v.Act != nil {
		resp["act"] = v.Act
	}
	if v.DelegationID != "" {
		resp["delegation_id"] = v.DelegationID
	}
	if v.Context != nil {
		resp["context"] = v.Context
	}
	if len(v.AuthorizationDetails) > 0 {
		resp["authorization_details"] = v.AuthorizationDetails
	}
	oauth.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// tokenParam reads the form of /introspect and /revoke: the client
// authenticates (RFC 7662 §2.1, RFC 7009 §2.1) and the token is required.
func (s *Server) tokenParam(w http.ResponseWriter, r *http.Request) (store.Agent, string, error) {
	form, err := ParseForm(w, r)
	if err != nil {
		return store.Agent{}, "", err
	}
	caller, err := s.authenticate(r, form)
	if err != nil {
		return store.Agent{}, "", err
	}
	raw := form.Get("token")
	if raw == "" {
		return store.Agent{}, "", oauth.InvalidRequest("token_missing", "token is required", nil)
	}
	return caller, raw, nil
}

// inForce verifies a Mandate token and checks its record. It returns nil,
// nil for a token that is invalid or no longer in force, and an error only
// when the answer cannot be known.
func (s *Server) inForce(r *http.Request, raw string) (*token.Verified, store.IssuedToken, error) {
	if len(raw) > maxTokenBytes {
		return nil, store.IssuedToken{}, nil
	}
	v, err := s.cfg.Verifier.Verify(r.Context(), raw)
	if err != nil || !v.Own {
		return nil, store.IssuedToken{}, nil
	}
	rec, err := s.cfg.Tokens.CheckJTI(r.Context(), v.JTI)
	if errors.Is(err, tokenstate.ErrInactive) {
		return nil, rec, nil
	}
	if err != nil {
		return nil, rec, oauth.Unavailable("store_unavailable", err)
	}
	return v, rec, nil
}

// revoke is RFC 7009. The caller may revoke the tokens issued to it; for
// any other token, garbage or an unknown token the answer is 200 and
// nothing changes (§2.2: no oracle). A revocation is durable, with its
// audit record, before the 200; a store failure is 503.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	caller, raw, err := s.tokenParam(w, r)
	if err != nil {
		return err
	}
	if len(raw) <= maxTokenBytes {
		// Signature only: an expired token may still be revoked.
		if v, verr := s.cfg.Verifier.Verify(r.Context(), raw); verr == nil && v.Own && v.ClientID == caller.ID {
			ev := audit.Event{
				Action:    audit.ActionTokenRevoked,
				Result:    audit.ResultOK,
				Reason:    "rfc7009",
				RequestID: requestID(r.Context()),
				Performer: caller.ID,
				ClientID:  caller.ID,
				OnBehalf:  v.Subject,
				Chain:     v.Act.Chain(),
				JTI:       v.JTI,
			}
			s.cfg.Audit.Stamp(&ev)
			err := s.cfg.Store.RevokeToken(r.Context(), v.JTI, s.cfg.Now(), ev)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return oauth.Unavailable("store_unavailable", err)
			}
		}
	}
	oauth.WriteJSON(w, http.StatusOK, map[string]any{})
	return nil
}

// revocationStatus answers the revocation_url claim: {"jti", "revoked"} and
// nothing else, for any caller.
func (s *Server) revocationStatus(w http.ResponseWriter, r *http.Request) error {
	jti := r.PathValue("jti")
	if len(jti) > 128 {
		return storeError(store.ErrNotFound, "token")
	}
	_, err := s.cfg.Tokens.CheckJTI(r.Context(), jti)
	var ie *tokenstate.InactiveError
	switch {
	case errors.As(err, &ie) && ie.Reason == tokenstate.ReasonUnknown:
		return storeError(store.ErrNotFound, "token")
	case errors.As(err, &ie):
		// An expired token was not revoked; every other reason is one.
		oauth.WriteJSON(w, http.StatusOK, map[string]any{"jti": jti, "revoked": ie.Reason != tokenstate.ReasonExpired})
	case err != nil:
		return oauth.Unavailable("store_unavailable", err)
	default:
		oauth.WriteJSON(w, http.StatusOK, map[string]any{"jti": jti, "revoked": false})
	}
	return nil
}
