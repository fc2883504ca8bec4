package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/oauth"
)

// callerSlot carries, through one request, who the admin API's bearer
// turned out to be: requireStaff fills it, asAdmin reads it for the
// records of that request's changes.
type callerSlot struct{ performer string }

const callerKey ctxKey = requestIDKey + 1

func withCallerSlot(ctx context.Context) context.Context {
	return context.WithValue(ctx, callerKey, &callerSlot{})
}

// asAdmin is who the admin API's records say acted in the request r: the
// signed-in administrator whose token it carried, or "admin" for the
// static admin token (bootstrap and break-glass).
func asAdmin(r *http.Request) directory.Performer {
	p := directory.Performer{ID: adminPerformer, RequestID: requestID(r.Context())}
	if slot, ok := r.Context().Value(callerKey).(*callerSlot); ok && slot.performer != "" {
		p.ID = slot.performer
	}
	return p
}

// requireAdmin admits the static admin token or the token of a signed-in
// person who holds the admin role.
func (s *Server) requireAdmin(r *http.Request) error { return s.requireStaff(r, roleAdmin) }

// requireAuditor admits what requireAdmin admits, and people who hold the
// auditor role: the audit log's readers.
func (s *Server) requireAuditor(r *http.Request) error {
	return s.requireStaff(r, roleAdmin, roleAuditor)
}

// requireStaff admits a bearer that is the static admin token (its
// records name "admin") or a person's own token (Mandate's, without act,
// addressed to this server and in force; or a trusted identity
// provider's) whose person holds one of roles (its records name the
// person). Anything else is refused and recorded (admin.auth).
func (s *Server) requireStaff(r *http.Request, roles ...string) error {
	refused := &oauth.Error{Code: oauth.ErrInvalidToken, Reason: "admin_unauthenticated", Description: "admin bearer token required"}
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return s.adminRefused(r, refused)
	}
	bearer := auth[len(prefix):]
	if s.cfg.AdminToken != "" {
		got := sha256.Sum256([]byte(bearer))
		if subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1 {
			return nil
		}
	}
	if strings.Count(bearer, ".") != 2 || s.cfg.Verifier == nil {
		if s.cfg.AdminToken == "" {
			return &oauth.Error{Code: oauth.ErrAccessDenied, Status: http.StatusForbidden, Reason: "admin_disabled",
				Description: "the admin API takes a signed-in administrator's token, or set admin.token"}
		}
		return s.adminRefused(r, refused)
	}
	person, err := s.staffPerson(r.Context(), bearer)
	if err != nil {
		var e *oauth.Error
		if errors.As(err, &e) && e.HTTPStatus() >= 500 {
			return e
		}
		return s.adminRefused(r, refused)
	}
	if !slices.ContainsFunc(person.Roles, func(role string) bool { return slices.Contains(roles, role) }) {
		return s.adminRefused(r, &oauth.Error{Code: oauth.ErrInsufficientScope, Status: http.StatusForbidden, Reason: "role_missing",
			Description: "the person does not hold the role this needs: " + strings.Join(roles, " or ")})
	}
	if slot, ok := r.Context().Value(callerKey).(*callerSlot); ok {
		slot.performer = person.ID
	}
	return nil
}

// staffPerson is the person whose own token raw is.
func (s *Server) staffPerson(ctx context.Context, raw string) (store.User, error) {
	v, err := s.cfg.Verifier.Verify(ctx, raw)
	switch {
	case errors.Is(err, token.ErrKeyUnavailable):
		return store.User{}, oauth.Unavailable("key_unavailable", err)
	case err != nil:
		return store.User{}, err
	case v.Act != nil:
		return store.User{}, errors.New("a delegated token is not the person's own")
	}
	if v.Own {
		if !slices.Contains(v.Audiences, s.cfg.Issuer) {
			return store.User{}, errors.New("the token is not addressed to this server")
		}
		if _, err := s.cfg.Tokens.CheckJTI(ctx, v.JTI); err != nil {
			return store.User{}, err
		}
	}
	u, err := s.cfg.Store.GetUser(ctx, v.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, errors.New("the token's subject is not a person known here")
	}
	if err != nil {
		return store.User{}, oauth.Unavailable("store_unavailable", err)
	}
	return u, nil
}
