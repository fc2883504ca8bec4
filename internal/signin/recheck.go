package signin

import (
	"context"
	"errors"
	"fmt"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/upstream"
)

// Reasons recorded when a recheck ends what a person delegated.
const (
	// ReasonRemovedAtProvider: the provider refused the person's refresh
	// token (the person removed or disabled, or the grant withdrawn).
	ReasonRemovedAtProvider = "removed_at_provider"
	// ReasonRenamedAtProvider: the provider's claims now make another
	// Mandate id for the person (the user_id template's claim changed):
	// the person of the old id is gone at the provider.
	ReasonRenamedAtProvider = "renamed_at_provider"
)

// RecheckRound counts what one round of rechecks did.
type RecheckRound struct {
	// Checked is how many grants the providers answered for, Removed how
	// many of those people lost everything they delegated.
	Checked, Removed int
	// Failed is how many could not be checked (a provider unreachable, a
	// store error): each is tried again at the next round.
	Failed int
}

// RecheckDue asks each provider with a recheck_every about the people
// whose grant there is due (checked longer ago than that), oldest first,
// limit at a time (DefaultRecheckBatch for 0), until none is due or one
// fails:
//
//   - each grant is first claimed (store.UpstreamGrants.TouchUpstreamGrant
//     from the time it was read), so that of several instances one asks;
//   - the provider's answer sets the person's permissions and roles
//     (directory.SyncPerson, performed by "idp:" + issuer: each change is
//     recorded and a permission lost stops the tokens carrying it) and the
//     rotated refresh token is kept;
//   - a refusal (upstream.ErrRefused), or claims that now make another
//     Mandate id, revokes every delegation the person gave and every
//     token issued for them (directory.RevokeEverything), ends their
//     sessions (recorded as person.sign_out) and drops the grant;
//   - any other failure (the provider unreachable, a store error) says
//     nothing about the person: nothing is revoked, the grant's check time
//     is put back so that the next round asks again, and the failures are
//     returned joined.
func (s *Service) RecheckDue(ctx context.Context, providers *upstream.Set, limit int) (RecheckRound, error) {
	var round RecheckRound
	if s.Grants == nil || providers == nil {
		return round, nil
	}
	if limit <= 0 {
		limit = DefaultRecheckBatch
	}
	var errs []error
	for _, rc := range providers.Rechecks() {
		// Page after page until a page comes back short: a grant checked
		// (or claimed by another instance) is no longer due, so the next
		// page holds others. A page with a failure ends the provider's
		// turn, since the grants that failed are due again at once.
		for {
			due, err := s.Grants.DueUpstreamGrants(ctx, rc.Issuer, s.now().Add(-rc.Every), limit)
			if err != nil {
				errs = append(errs, fmt.Errorf("signin: due grants at %s: %w", rc.Issuer, err))
				break
			}
			failed := round.Failed
			for _, g := range due {
				if ctx.Err() != nil {
					return round, errors.Join(append(errs, ctx.Err())...)
				}
				removed, err := s.recheck(ctx, providers, g)
				switch {
				case err != nil:
					round.Failed++
					errs = append(errs, err)
				case removed:
					round.Checked++
					round.Removed++
				default:
					round.Checked++
				}
			}
			if len(due) < limit || round.Failed > failed {
				break
			}
		}
	}
	return round, errors.Join(errs...)
}

// recheck asks the provider about the person of g, and reports whether
// the person lost what they delegated. A grant another instance claimed
// first, or a sign-in replaced, is left to it.
func (s *Service) recheck(ctx context.Context, providers *upstream.Set, g store.UpstreamGrant) (removed bool, err error) {
	claimed := s.now()
	switch err := s.Grants.TouchUpstreamGrant(ctx, g.Subject, g.Provider, g.CheckedAt, nil, claimed); {
	case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("signin: claim the grant of %s at %s: %w", g.Subject, g.Provider, err)
	}
	// retry puts the check time back, so that the next round asks again.
	retry := func(cause error) (bool, error) {
		if err := s.Grants.TouchUpstreamGrant(ctx, g.Subject, g.Provider, claimed, nil, g.CheckedAt); err != nil &&
			!errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			cause = errors.Join(cause, err)
		}
		return false, fmt.Errorf("signin: recheck %s at %s: %w", g.Subject, g.Provider, cause)
	}
	sec, err := s.openGrant(ctx, g)
	if err != nil {
		return retry(err)
	}
	p, err := providers.Provider(ctx, g.Provider)
	if err != nil {
		return retry(err)
	}
	id, err := p.Recheck(ctx, sec.Sub, sec.RefreshToken)
	switch {
	case errors.Is(err, upstream.ErrRefused):
		return s.removedAtProvider(ctx, g, ReasonRemovedAtProvider, retry)
	case err != nil:
		return retry(err)
	case id.UserID != g.Subject:
		return s.removedAtProvider(ctx, g, ReasonRenamedAtProvider, retry)
	}
	// A person deleted in Mandate meanwhile is not made again.
	if _, err := s.Reader.GetUser(ctx, g.Subject); errors.Is(err, store.ErrNotFound) {
		return false, s.dropGrant(ctx, g)
	} else if err != nil {
		return retry(err)
	}
	performer := directory.Performer{ID: PerformerProvider + g.Provider, RequestID: audit.NewID("rck_")}
	_, err = s.Directory.SyncPerson(ctx, performer,
		store.User{ID: g.Subject, Permissions: id.Permissions, Roles: id.Roles, Provider: g.Provider})
	switch {
	case errors.Is(err, directory.ErrConflict):
		// The person is no longer managed by this provider (an
		// administrator took them over): nothing to ask it about.
		return false, s.dropGrant(ctx, g)
	case err != nil:
		return retry(err)
	}
	sealed, err := s.sealGrant(ctx, g.Subject, g.Provider, grantSecret{Sub: sec.Sub, RefreshToken: id.RefreshToken})
	if err != nil {
		return retry(err)
	}
	switch err := s.Grants.TouchUpstreamGrant(ctx, g.Subject, g.Provider, claimed, sealed, s.now()); {
	case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound):
		// A sign-in replaced the grant meanwhile, or the person went:
		// theirs is the newer.
	case err != nil:
		// The provider may have rotated the token already: the next
		// recheck of the old one is then refused, and revokes (fail
		// closed; the person signs in again).
		return false, fmt.Errorf("signin: keep the rotated grant of %s at %s: %w", g.Subject, g.Provider, err)
	}
	return false, nil
}

// removedAtProvider ends what the person of g delegated, for reason:
// every delegation and token (performed by "idp:" + issuer), then their
// sessions, then the grant. A step that fails is tried again, whole, at
// the next round (retry).
func (s *Service) removedAtProvider(ctx context.Context, g store.UpstreamGrant, reason string, retry func(error) (bool, error)) (bool, error) {
	performer := directory.Performer{ID: PerformerProvider + g.Provider, RequestID: audit.NewID("rck_")}
	_, err := s.Directory.RevokeEverything(ctx, performer, g.Subject, reason)
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return retry(err)
	}
	ev := s.event(audit.ActionSignOut, audit.ResultGranted, g.Subject, performer.RequestID)
	ev.Performer, ev.Reason, ev.Resource = performer.ID, reason, g.Provider
	if _, err := s.Store.DeleteSessionsOf(ctx, g.Subject, ev); err != nil {
		return retry(err)
	}
	if err := s.Grants.DeleteUpstreamGrant(ctx, g.Subject, g.Provider); err != nil {
		return retry(err)
	}
	return true, nil
}

// dropGrant deletes g, which there is no one to ask about any more.
func (s *Service) dropGrant(ctx context.Context, g store.UpstreamGrant) error {
	if err := s.Grants.DeleteUpstreamGrant(ctx, g.Subject, g.Provider); err != nil {
		return fmt.Errorf("signin: drop the grant of %s at %s: %w", g.Subject, g.Provider, err)
	}
	return nil
}

// DefaultRecheckBatch is how many due grants of one provider RecheckDue
// reads at a time when the caller gives no limit.
const DefaultRecheckBatch = 100
