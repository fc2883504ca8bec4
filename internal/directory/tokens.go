package directory

import (
	"context"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
)

// RevokeToken revokes the issued token jti, recorded as token.revoked with
// reason (empty for none) and the token's subject and chain: it and every
// token exchanged from it stop being in force. It returns the token's
// record as it was before, so that the caller can tell a first revocation
// (Revoked false) from a repeated one, which succeeds and changes nothing
// but is recorded. A jti the store does not hold is ErrNotFound.
func (d *Directory) RevokeToken(ctx context.Context, p Performer, jti, reason string) (store.IssuedToken, error) {
	rec, err := d.Store.GetToken(ctx, jti)
	if err != nil {
		return store.IssuedToken{}, storeErr(err, "token", jti)
	}
	ev := d.event(p, audit.ActionTokenRevoked, "")
	ev.JTI, ev.Reason, ev.OnBehalf, ev.Chain = jti, reason, rec.Subject, rec.Chain
	if err := d.Store.RevokeToken(ctx, jti, d.now(), bound(ev)); err != nil {
		return store.IssuedToken{}, storeErr(err, "token", jti)
	}
	return rec, nil
}

// AdvanceNotBefore advances the not-before epoch to t (it never moves
// back), recorded as store.epoch_advanced: every token issued before it
// stops being in force, on every instance. It returns the epoch now in
// force (store.NotBefore).
func (d *Directory) AdvanceNotBefore(ctx context.Context, p Performer, t time.Time) (time.Time, error) {
	ev := d.event(p, audit.ActionEpochAdvanced, "")
	ev.Detail = "not-before epoch advanced to " + t.UTC().Format(time.RFC3339Nano)
	return d.Store.AdvanceNotBefore(ctx, t, bound(ev))
}
