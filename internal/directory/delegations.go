package directory

import (
	"context"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
)

// CreateDelegation stores a new delegation: d's Subject, Actor, Scopes,
// Audiences, MaxDepth, Expires and Source, under d.ID or, when empty, a
// generated "dlg_" id; recorded as delegation.created. It refuses an
// invalid delegation (ErrInvalid: CheckID, ValidateDelegation, a Source
// other than SourceConfig, SourceAdmin or SourceConsent, and an Expires
// not after now unless the file declares it, SourceConfig, where an ended
// delegation is accepted and stays inactive), a subject that is not a
// stored user or an actor that is not a stored agent (ErrNotFound, What
// "subject" or "actor"), and a taken id (ErrConflict).
func (d *Directory) CreateDelegation(ctx context.Context, p Performer, dl store.Delegation) (store.Delegation, error) {
	if dl.ID == "" {
		dl.ID = audit.NewID("dlg_")
	} else if err := checkID(dl.ID); err != nil {
		return store.Delegation{}, err
	}
	now := d.now()
	if !dl.Expires.IsZero() {
		dl.Expires = dl.Expires.UTC()
	}
	if err := checkDelegation(dl, now); err != nil {
		return store.Delegation{}, err
	}
	if _, err := d.Store.GetUser(ctx, dl.Subject); err != nil {
		return store.Delegation{}, storeErr(err, "subject", dl.Subject)
	}
	if _, err := d.Store.GetAgent(ctx, dl.Actor); err != nil {
		return store.Delegation{}, storeErr(err, "actor", dl.Actor)
	}
	dl.Revoked, dl.RevokedAt, dl.CreatedAt = false, time.Time{}, now
	ev := d.delegationEvent(p, audit.ActionDelegationNew, dl)
	if err := d.Store.CreateDelegation(ctx, dl, bound(ev)); err != nil {
		return store.Delegation{}, storeErr(err, "delegation", dl.ID)
	}
	return dl, nil
}

// checkDelegation is ValidateDelegation with the rules of a write at now:
// a known source, and no expiry in the past but for the file's.
func checkDelegation(dl store.Delegation, now time.Time) error {
	if !slices.Contains([]string{SourceConfig, SourceAdmin, SourceConsent}, dl.Source) {
		return invalid("source", "must be %s, %s or %s", SourceConfig, SourceAdmin, SourceConsent)
	}
	if err := ValidateDelegation(dl); err != nil {
		return err
	}
	if !dl.Expires.IsZero() && !dl.Expires.After(now) && dl.Source != SourceConfig {
		return invalid("expires", "is in the past")
	}
	return nil
}

// delegationEvent is the record of action on dl, naming its subject,
// actor and scopes.
func (d *Directory) delegationEvent(p Performer, action string, dl store.Delegation) store.Event {
	ev := d.event(p, action, dl.ID)
	ev.DelegationID, ev.OnBehalf, ev.Chain, ev.Scopes = dl.ID, dl.Subject, []string{dl.Actor}, dl.Scopes
	return ev
}

// DelegationChange is a change to a delegation; nil fields are left as
// they are. A delegation's subject and actor never change: revoke it and
// create another.
type DelegationChange struct {
	Scopes    *[]string
	Audiences *[]string
	MaxDepth  *int
	// Expires sets the expiry; the zero time is none.
	Expires *time.Time
	// Reinstate makes a revoked delegation active again (the file
	// declares it, `mandate config apply`). Tokens its revocation ended
	// stay ended.
	Reinstate bool
}

// UpdateDelegation applies c to the delegation id, recorded as
// delegation.updated, checked as CreateDelegation checks a new one
// (ErrInvalid) in the same transaction. Narrowing it (a scope or an
// audience removed, the expiry brought forward) stops the tokens minted
// under it before (the store's delegation entry). An unknown delegation
// is ErrNotFound.
func (d *Directory) UpdateDelegation(ctx context.Context, p Performer, id string, c DelegationChange) (store.Delegation, error) {
	// Subject and actor never change, so the record can name them from
	// a read before the transaction.
	stored, err := d.Store.GetDelegation(ctx, id)
	if err != nil {
		return store.Delegation{}, storeErr(err, "delegation", id)
	}
	now := d.now()
	change := func(dl store.Delegation) store.Delegation {
		if c.Scopes != nil {
			dl.Scopes = *c.Scopes
		}
		if c.Audiences != nil {
			dl.Audiences = *c.Audiences
		}
		if c.MaxDepth != nil {
			dl.MaxDepth = *c.MaxDepth
		}
		if c.Expires != nil {
			dl.Expires = time.Time{}
			if !c.Expires.IsZero() {
				dl.Expires = c.Expires.UTC()
			}
		}
		if c.Reinstate {
			dl.Revoked, dl.RevokedAt = false, time.Time{}
		}
		return dl
	}
	ev := d.delegationEvent(p, audit.ActionDelegationUpdated, change(stored))
	dl, err := d.Store.UpdateDelegation(ctx, id, func(dl store.Delegation) (store.Delegation, error) {
		dl = change(dl)
		return dl, checkDelegation(dl, now)
	}, bound(ev))
	return dl, storeErr(err, "delegation", id)
}

// RevokeDelegation revokes the delegation id, recorded as
// delegation.revoked with reason (empty for none): every token minted
// under it stops being in force. The record stays, revoked, for the
// audit trail; revoking it again changes nothing but is recorded. An
// unknown delegation is ErrNotFound.
func (d *Directory) RevokeDelegation(ctx context.Context, p Performer, id, reason string) error {
	ev := d.event(p, audit.ActionDelegationGone, id)
	ev.DelegationID, ev.Reason = id, reason
	now := d.now()
	_, err := d.Store.UpdateDelegation(ctx, id, func(dl store.Delegation) (store.Delegation, error) {
		if !dl.Revoked {
			dl.Revoked, dl.RevokedAt = true, now
		}
		return dl, nil
	}, bound(ev))
	return storeErr(err, "delegation", id)
}

// revokeDelegations revokes every delegation f selects that is not
// revoked yet, each in its own transaction with its record.
func (d *Directory) revokeDelegations(ctx context.Context, p Performer, f store.DelegationFilter, reason string) error {
	ds, err := d.Store.ListDelegations(ctx, f)
	if err != nil {
		return err
	}
	for _, dl := range ds {
		if dl.Revoked {
			continue
		}
		if err := d.RevokeDelegation(ctx, p, dl.ID, reason); err != nil {
			return err
		}
	}
	return nil
}
