package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/internal/tokenstate"
	"github.com/mandate-dev/mandate/oauth"
)

var inactive = map[string]bool{"active": false}

// Reasons an introspection or a revocation did not apply to the presented
// token, as written to the audit trail (the answer never says which).
const (
	reasonTokenInvalid    = "token_invalid"
	reasonNotCallersToken = "token_not_issued_to_client"
)

// introspect is RFC 7662. The caller authenticates as a client (§2.1) and
// sees a token as active only if it was issued to the caller or is addressed
// to it; any other token, and any token not in force, is {"active": false}
// with no other member (§2.2). A store failure is 503, never a stale answer.
// Every answer is audited (THREATS T66) before it is sent; one that cannot
// be is 503.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) error {
	caller, raw, err := s.tokenParam(w, r)
	if err != nil {
		return err
	}
	v, rec, reason, err := s.inForce(r, raw)
	if err != nil {
		return err
	}
	if v != nil && rec.ClientID != caller.ID && rec.Audience != caller.ID {
		reason = reasonNotCallersToken
	}
	ev := audit.Event{
		Action:    audit.ActionTokenIntrospect,
		Result:    audit.ResultOK,
		Reason:    reason,
		RequestID: requestID(r.Context()),
		Performer: caller.ID,
		ClientID:  caller.ID,
		JTI:       rec.JTI,
	}
	if reason == "" {
		ev.OnBehalf, ev.Chain = v.Subject, v.Act.Chain()
	}
	if err := s.cfg.Audit.Record(r.Context(), ev); err != nil {
		return oauth.Unavailable("audit_unavailable", err)
	}
	if reason != "" {
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
	form, err := s.parseForm(w, r)
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

// inForce verifies a Mandate token and checks its record. For a token that
// is invalid or no longer in force it returns a nil token and the reason
// (with the record, whose JTI is set once the signature verified); an error
// only when the answer cannot be known.
func (s *Server) inForce(r *http.Request, raw string) (*token.Verified, store.IssuedToken, string, error) {
	if len(raw) > maxTokenBytes {
		return nil, store.IssuedToken{}, reasonTokenInvalid, nil
	}
	v, err := s.cfg.Verifier.Verify(r.Context(), raw)
	if err != nil || !v.Own {
		return nil, store.IssuedToken{}, reasonTokenInvalid, nil
	}
	rec, err := s.cfg.Tokens.CheckJTI(r.Context(), v.JTI)
	rec.JTI = v.JTI
	var ie *tokenstate.InactiveError
	if errors.As(err, &ie) {
		return nil, rec, ie.Reason, nil
	}
	if err != nil {
		return nil, rec, "", oauth.Unavailable("store_unavailable", err)
	}
	return v, rec, "", nil
}

// revoke is RFC 7009. The caller may revoke the tokens issued to it
// (through the directory, performed by the caller); for any other token,
// garbage or an unknown token the answer is 200 and nothing changes (§2.2:
// no oracle), and the attempt is audited as refused. A revocation is
// durable, with its audit record, before the 200; a store or audit failure
// is 503.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	caller, raw, err := s.tokenParam(w, r)
	if err != nil {
		return err
	}
	ev := audit.Event{
		Action:    audit.ActionTokenRevoked,
		Result:    audit.ResultRefused,
		Reason:    reasonTokenInvalid,
		Detail:    "the token is not one this server issued",
		RequestID: requestID(r.Context()),
		Performer: caller.ID,
		ClientID:  caller.ID,
	}
	var v *token.Verified
	if len(raw) <= maxTokenBytes {
		// Signature only: an expired token may still be revoked.
		if vv, verr := s.cfg.Verifier.Verify(r.Context(), raw); verr == nil && vv.Own {
			v, ev.JTI = vv, vv.JTI
		}
	}
	if v == nil && s.cfg.SignIn != nil {
		// Not a token Mandate signed: perhaps a refresh token, whose
		// revocation ends its family (RFC 7009 §2.1).
		found, err := s.cfg.SignIn.RevokeRefresh(r.Context(), caller.ID, raw, ev.RequestID)
		switch {
		case errors.Is(err, signin.ErrNotYours):
			ev.Reason, ev.Detail = reasonNotCallersToken, "the refresh token was issued to another client"
		case err != nil:
			return oauth.Unavailable("store_unavailable", err)
		case found:
			oauth.WriteJSON(w, http.StatusOK, map[string]any{})
			return nil
		}
	}
	switch {
	case v != nil && v.ClientID == caller.ID:
		p := directory.Performer{ID: caller.ID, ClientID: caller.ID, RequestID: ev.RequestID}
		switch _, err := s.revokeToken(r, p, v.JTI, "rfc7009"); {
		case errors.Is(err, directory.ErrNotFound):
			// Signed here but unknown to the store (a restored backup):
			// nothing to revoke, and nothing was recorded with it.
			ev.Reason, ev.Detail = tokenstate.ReasonUnknown, "the token has no record"
			ev.OnBehalf, ev.Chain = v.Subject, v.Act.Chain()
			if err := s.cfg.Audit.Record(r.Context(), ev); err != nil {
				return oauth.Unavailable("audit_unavailable", err)
			}
		case err != nil:
			return oauth.Unavailable("store_unavailable", err)
		}
	default:
		// Nothing changes and the answer is still 200 (no oracle), but the
		// attempt is recorded.
		if v != nil {
			ev.Reason, ev.Detail = reasonNotCallersToken, "the token was issued to another client"
		}
		if err := s.cfg.Audit.Record(r.Context(), ev); err != nil {
			return oauth.Unavailable("audit_unavailable", err)
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
