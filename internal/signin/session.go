package signin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/password"
	"github.com/mandate-dev/mandate/internal/store"
)

// Errors of sign-in. The pages show each the same way to the person; the
// audit record says which it was.
var (
	// ErrBadCredentials is an unknown account or a wrong password: the
	// same answer, after the same work, for both.
	ErrBadCredentials = errors.New("signin: unknown account or wrong password")
	// ErrTooManyAttempts is a password attempt over the per-account or
	// per-address limit, refused before any hashing.
	ErrTooManyAttempts = errors.New("signin: too many sign-in attempts")
	// ErrNoSession means the cookie names no session in force (unknown,
	// ended, idle too long or past its end).
	ErrNoSession = errors.New("signin: not signed in")
)

// CheckPassword signs a person in with a local password: the limits first
// (ErrTooManyAttempts, before any hashing), then the argon2id hash; an
// unknown account costs what a wrong password costs (ErrBadCredentials for
// both). Every refusal is recorded.
func (s *Service) CheckPassword(ctx context.Context, userID, pw, addr, requestID string) (store.User, error) {
	refuse := func(reason string, err error) (store.User, error) {
		ev := event(audit.ActionSignIn, audit.ResultRefused, "", requestID)
		ev.Reason, ev.Resource = reason, userID
		if rerr := s.record(ctx, ev); rerr != nil {
			return store.User{}, errors.Join(err, rerr)
		}
		return store.User{}, err
	}
	if (s.AccountLimit != nil && !s.AccountLimit.Allow(userID)) || (s.AddressLimit != nil && !s.AddressLimit.Allow(addr)) {
		return refuse("rate_limited", ErrTooManyAttempts)
	}
	u, err := s.Reader.GetUser(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && u.PasswordHash == "":
		password.CheckNone(pw)
		return refuse("bad_credentials", ErrBadCredentials)
	case err != nil:
		return store.User{}, fmt.Errorf("signin: %w", err)
	}
	ok, err := password.Check(u.PasswordHash, pw)
	if err != nil {
		return store.User{}, fmt.Errorf("signin: the stored password hash of a person: %w", err)
	}
	if !ok {
		return refuse("bad_credentials", ErrBadCredentials)
	}
	return u, nil
}

// NewSession starts a session for subject, signed in through provider
// ("" for a local password), and returns the cookie value. A session is
// new at every sign-in: an id seen before sign-in never becomes one.
func (s *Service) NewSession(ctx context.Context, subject, provider, requestID string) (string, store.Session, error) {
	cookie, hash := newSecret()
	csrf, _ := newSecret()
	now := s.now()
	sess := store.Session{
		Hash: hash, Subject: subject, Provider: provider, CSRF: csrf,
		CreatedAt: now, SeenAt: now, ExpiresAt: now.Add(orDefault(s.SessionMax, DefaultSessionMax)),
	}
	ev := event(audit.ActionSignIn, audit.ResultGranted, subject, requestID)
	ev.Resource = provider
	if err := s.Store.CreateSession(ctx, sess, s.committed(ev)); err != nil {
		return "", store.Session{}, fmt.Errorf("signin: start a session: %w", err)
	}
	return cookie, sess, nil
}

// touchEvery is how stale SeenAt may be before a request writes it again.
const touchEvery = time.Minute

// Session returns the session in force that cookie names: not ended, not
// idle longer than SessionIdle, not past its end; ErrNoSession otherwise.
func (s *Service) Session(ctx context.Context, cookie string) (store.Session, error) {
	if cookie == "" || len(cookie) > 128 {
		return store.Session{}, ErrNoSession
	}
	sess, err := s.Store.GetSession(ctx, hashOf(cookie))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Session{}, ErrNoSession
	case err != nil:
		return store.Session{}, fmt.Errorf("signin: %w", err)
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.SeenAt) > orDefault(s.SessionIdle, DefaultSessionIdle) {
		return store.Session{}, ErrNoSession
	}
	if now.Sub(sess.SeenAt) > touchEvery {
		if err := s.Store.TouchSession(ctx, sess.Hash, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Session{}, fmt.Errorf("signin: %w", err)
		}
	}
	return sess, nil
}

// CheckCSRF reports whether token is the session's anti-forgery token.
func CheckCSRF(sess store.Session, token string) bool {
	return sess.CSRF != "" && subtle.ConstantTimeCompare([]byte(sess.CSRF), []byte(token)) == 1
}

// EndSession ends the session cookie names (sign-out); ending one that is
// gone succeeds.
func (s *Service) EndSession(ctx context.Context, cookie, requestID string) error {
	sess, err := s.Session(ctx, cookie)
	if errors.Is(err, ErrNoSession) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.Store.DeleteSession(ctx, sess.Hash, s.committed(event(audit.ActionSignOut, audit.ResultGranted, sess.Subject, requestID))); err != nil {
		return fmt.Errorf("signin: end the session: %w", err)
	}
	return nil
}
