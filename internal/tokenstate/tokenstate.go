package tokenstate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/revocation"
)

// ErrInactive is wrapped by every *InactiveError.
var ErrInactive = errors.New("token is not active")

// Reasons a token is inactive, as written to the audit trail.
const (
	ReasonUnknown           = "token_unknown"
	ReasonExpired           = "token_expired"
	ReasonRevoked           = "token_revoked"
	ReasonParentRevoked     = "parent_revoked"
	ReasonDelegationRevoked = "delegation_revoked"
	ReasonAgentDisabled     = "agent_disabled"
	ReasonSubjectRevoked    = "subject_revoked"
	ReasonPermissionRemoved = "permission_removed"
	// ReasonRestoredEpoch means the token was issued before the store's
	// not-before epoch: the store was restored from a backup since, and
	// what the backup missed (a revocation made after it was taken) cannot
	// be known (THREATS T56).
	ReasonRestoredEpoch = "issued_before_restore"
)

// maxLineage bounds the walk up the parent links; chains are far shorter.
const maxLineage = 32

// InactiveError says why a token is not in force.
type InactiveError struct {
	Reason string
}

func (e *InactiveError) Error() string { return "token inactive: " + e.Reason }

// Unwrap makes errors.Is(err, ErrInactive) true.
func (e *InactiveError) Unwrap() error { return ErrInactive }

// Source is what the Checker reads; a cached store satisfies it.
type Source interface {
	GetToken(ctx context.Context, jti string) (store.IssuedToken, error)
	GetUser(ctx context.Context, id string) (store.User, error)
	GetAgent(ctx context.Context, id string) (store.Agent, error)
	GetDelegation(ctx context.Context, id string) (store.Delegation, error)
	// NotBefore is the global not-before epoch, zero when never set; it is
	// read on every check, so it should come from a cache.
	NotBefore(ctx context.Context) (time.Time, error)
}

// Revocations is the revocation feed's state (*feed.Hub): Check returns
// the kind of the entry that revokes t, "" when none, or an error when the
// state cannot be known.
type Revocations interface {
	Check(t *revocation.Token) (string, error)
}

// Checker answers whether issued tokens are in force. It is safe for
// concurrent use.
type Checker struct {
	Store Source
	// Revocations, when set, is consulted after the store's own records,
	// so that the server refuses exactly what verifiers following the
	// feed refuse: an entry outlives an agent's re-enabling or a
	// permission given back, and revokes what was minted before it.
	Revocations Revocations
	Now         func() time.Time
}

// feedReason maps a revocation entry kind to the reason written to the
// audit trail.
func feedReason(kind string) string {
	switch kind {
	case revocation.KindDelegation:
		return ReasonDelegationRevoked
	case revocation.KindSubject:
		return ReasonSubjectRevoked
	case revocation.KindScope:
		return ReasonPermissionRemoved
	case revocation.KindAgent:
		return ReasonAgentDisabled
	case "not_before":
		return ReasonRestoredEpoch
	}
	return ReasonRevoked
}

// CheckJTI looks the token up and checks it. An unknown jti is inactive
// (ReasonUnknown); a store failure is returned as is, and the caller must
// refuse rather than answer.
func (c *Checker) CheckJTI(ctx context.Context, jti string) (store.IssuedToken, error) {
	rec, err := c.Store.GetToken(ctx, jti)
	if errors.Is(err, store.ErrNotFound) {
		return rec, &InactiveError{Reason: ReasonUnknown}
	}
	if err != nil {
		return rec, fmt.Errorf("tokenstate: %w", err)
	}
	return rec, c.Check(ctx, rec)
}

// Check returns nil when rec is in force, an *InactiveError when it is not,
// and any other error when it could not tell.
func (c *Checker) Check(ctx context.Context, rec store.IssuedToken) error {
	now := c.Now()
	switch {
	case rec.Revoked:
		return &InactiveError{Reason: ReasonRevoked}
	case !now.Before(rec.ExpiresAt):
		return &InactiveError{Reason: ReasonExpired}
	}
	nb, err := c.Store.NotBefore(ctx)
	if err != nil {
		return fmt.Errorf("tokenstate: not-before: %w", err)
	}
	// A token issued at the epoch itself is in force: the epoch is the
	// restore time, and nothing the backup missed was issued after it.
	if !nb.IsZero() && rec.IssuedAt.Before(nb) {
		return &InactiveError{Reason: ReasonRestoredEpoch}
	}
	if err := c.checkLineage(ctx, rec.ParentJTI); err != nil {
		return err
	}
	if rec.DelegationID != "" {
		d, err := c.Store.GetDelegation(ctx, rec.DelegationID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("tokenstate: delegation: %w", err)
		}
		if err != nil || !d.Active(now) {
			return &InactiveError{Reason: ReasonDelegationRevoked}
		}
	}
	agents := rec.Chain
	if rec.GrantType == oauth.GrantClientCredentials {
		// A client's own token stands or falls with the client.
		agents = []string{rec.ClientID}
	}
	for _, id := range agents {
		a, err := c.Store.GetAgent(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("tokenstate: agent: %w", err)
		}
		if err != nil || a.Disabled {
			return &InactiveError{Reason: ReasonAgentDisabled}
		}
	}
	if err := c.checkSubject(ctx, rec); err != nil {
		return err
	}
	return c.checkFeed(rec)
}

// CheckFeed applies only the revocation feed's entries to rec, without a
// store read: nil when none covers it, an *InactiveError when one does. The
// token endpoint asks it of every token before signing it.
func (c *Checker) CheckFeed(rec store.IssuedToken) error { return c.checkFeed(rec) }

// checkFeed applies the revocation feed's entries to rec.
func (c *Checker) checkFeed(rec store.IssuedToken) error {
	if c.Revocations == nil {
		return nil
	}
	t := revocation.Token{
		JTI:          rec.JTI,
		Subject:      rec.Subject,
		Chain:        rec.Chain,
		ClientID:     rec.ClientID,
		DelegationID: rec.DelegationID,
		Scopes:       rec.Scopes,
		Gen:          rec.Gen,
		IssuedAt:     rec.IssuedAt.Unix(),
	}
	kind, err := c.Revocations.Check(&t)
	switch {
	case err != nil:
		return fmt.Errorf("tokenstate: revocation feed: %w", err)
	case kind != "":
		return &InactiveError{Reason: feedReason(kind)}
	}
	return nil
}

func (c *Checker) checkLineage(ctx context.Context, parent string) error {
	for i := 0; parent != "" && i < maxLineage; i++ {
		p, err := c.Store.GetToken(ctx, parent)
		if errors.Is(err, store.ErrNotFound) {
			return &InactiveError{Reason: ReasonParentRevoked}
		}
		if err != nil {
			return fmt.Errorf("tokenstate: parent: %w", err)
		}
		if p.Revoked {
			return &InactiveError{Reason: ReasonParentRevoked}
		}
		parent = p.ParentJTI
	}
	return nil
}

// checkSubject applies the subject's revocation version and current
// permissions. A client's own token (subject = client) has no user record.
func (c *Checker) checkSubject(ctx context.Context, rec store.IssuedToken) error {
	u, err := c.Store.GetUser(ctx, rec.Subject)
	if errors.Is(err, store.ErrNotFound) {
		if rec.GrantType == oauth.GrantClientCredentials {
			return nil
		}
		return &InactiveError{Reason: ReasonSubjectRevoked}
	}
	if err != nil {
		return fmt.Errorf("tokenstate: subject: %w", err)
	}
	if u.Version > rec.SubjectVersion {
		return &InactiveError{Reason: ReasonSubjectRevoked}
	}
	for _, s := range rec.Scopes {
		if !slices.Contains(u.Permissions, s) {
			return &InactiveError{Reason: ReasonPermissionRemoved}
		}
	}
	return nil
}
