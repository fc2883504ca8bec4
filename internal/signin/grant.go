package signin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/authorize"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// Approval is what the person chose on the consent page.
type Approval struct {
	// Scopes are the ticked scopes; only those the request asked for and
	// the person and the agent hold count.
	Scopes []string
	// Duration is how long the delegation lasts, at most
	// DefaultDelegation.
	Duration time.Duration
	// Shown is the Shown of the offer the consent page showed.
	Shown string
}

// ErrNothingApproved is an approval with no scope of the request ticked.
var ErrNothingApproved = errors.New("signin: no scope of the request was approved")

// performerMandate is the performer of what the server does on its own,
// such as revoking what a replayed code issued.
const performerMandate = "mandate"

// Approve turns the pending request id into a delegation from the person
// of sess to the request's agent, bounded by the approval, and a
// single-use code bound to it; it returns where to send the browser.
// Only the offer shown in this session can be approved (ErrNotShown
// otherwise, and the request stays pending), and of it only the ticked
// scopes the person holds and the agent may have. The request is then
// taken, so an approval counts once: a replay finds it gone
// (ErrRequestGone).
func (s *Service) Approve(ctx context.Context, sess store.Session, id string, a Approval, requestID string) (string, error) {
	o, err := s.Offer(ctx, sess, id)
	if err != nil {
		return "", err
	}
	if !o.matches(a.Shown) {
		return "", ErrNotShown
	}
	p, err := s.Store.TakePending(ctx, kindAuthorize, hashOf(id))
	r, err := s.decodeRequest(p, err)
	if err != nil {
		return "", err
	}
	// The offer again, of the request as taken: what changed in between
	// is not approved either.
	if o, err = s.offer(ctx, sess, id, r); err != nil {
		return "", err
	}
	if !o.matches(a.Shown) {
		return "", ErrNotShown
	}
	scopes := o.approvable(a.Scopes)
	if len(scopes) == 0 {
		return "", ErrNothingApproved
	}
	d := min(a.Duration, DefaultDelegation)
	if d <= 0 {
		d = DefaultDelegation
	}
	now := s.now()
	dl := store.Delegation{Subject: sess.Subject, Actor: r.Actor(), Scopes: scopes, Expires: now.Add(d), Source: directory.SourceConsent}
	if r.Resource != "" {
		dl.Audiences = []string{r.Resource}
		if o.Server != "" {
			// The resource's server may exchange the tokens, for the
			// audiences the page showed.
			dl.DelegateTo, dl.HandOn = []string{o.Server}, o.HandOn
		}
	}
	performer := directory.Performer{ID: sess.Subject, RequestID: requestID}
	dl, err = s.Directory.CreateDelegation(ctx, performer, dl)
	if err != nil {
		return "", fmt.Errorf("signin: approve: %w", err)
	}
	if err := s.replaceEarlier(ctx, performer, dl); err != nil {
		return "", err
	}
	code, hash := newSecret()
	c := store.AuthCode{
		Hash: hash, ClientID: r.ClientID, Subject: sess.Subject, Actor: r.Actor(), RedirectURI: r.RedirectURI,
		Challenge: r.Challenge, DelegationID: dl.ID, Scopes: scopes, Resource: r.Resource,
		CreatedAt: now, ExpiresAt: now.Add(orDefault(s.CodeTTL, DefaultCodeTTL)),
	}
	if err := s.Store.CreateCode(ctx, c); err != nil {
		return "", fmt.Errorf("signin: approve: %w", err)
	}
	params := url.Values{"code": {code}, "iss": {s.Issuer}}
	if r.State != "" {
		params.Set("state", r.State)
	}
	return authorize.Redirect(r.RedirectURI, params), nil
}

// replaceEarlier revokes the person's earlier approvals of the same agent
// for the same resource (or for none, as dl): a new consent, such as a
// client's step-up to more scopes, replaces them, so that the person's
// latest answer is the one in force and My agents shows one approval per
// agent and resource. Delegations from the file or an administrator stay.
func (s *Service) replaceEarlier(ctx context.Context, p directory.Performer, dl store.Delegation) error {
	ds, err := s.Directory.Store.ListDelegations(ctx, store.DelegationFilter{Subject: dl.Subject, Actor: dl.Actor})
	if err != nil {
		return fmt.Errorf("signin: approve: %w", err)
	}
	for _, old := range ds {
		if old.ID == dl.ID || old.Source != directory.SourceConsent || !slices.Equal(old.Audiences, dl.Audiences) {
			continue
		}
		if err := s.Directory.RevokeDelegation(ctx, p, old.ID, "consent_replaced"); err != nil && !errors.Is(err, directory.ErrNotFound) {
			return fmt.Errorf("signin: approve: %w", err)
		}
	}
	return nil
}

// Deny declines the pending request id and returns where to send the
// browser (access_denied, RFC 6749 §4.1.2.1).
func (s *Service) Deny(ctx context.Context, sess store.Session, id, requestID string) (string, error) {
	p, err := s.Store.TakePending(ctx, kindAuthorize, hashOf(id))
	r, err := s.decodeRequest(p, err)
	if err != nil {
		return "", err
	}
	ev := s.event(audit.ActionConsentDenied, audit.ResultGranted, sess.Subject, requestID)
	ev.ClientID, ev.Chain, ev.Requested, ev.Audience = r.ClientID, []string{r.Actor()}, r.Scopes, r.Resource
	if err := s.record(ctx, ev); err != nil {
		return "", err
	}
	e := &oauth.Error{Code: oauth.ErrAccessDenied, Description: "the person declined the request"}
	return authorize.Redirect(r.RedirectURI, authorize.ErrorParams(e, r.State, s.Issuer)), nil
}

// Tokens is what a code or refresh token grant returns: the access token
// and the family's next refresh token.
type Tokens struct {
	*exchange.Result
	RefreshToken string `json:"refresh_token,omitempty"`
}

// RedeemCode runs the authorization code grant (RFC 6749 §4.1.3) for the
// authenticated client of req: the code once, by its client, with its
// redirect URI and PKCE verifier, then the token within the approved
// delegation (exchange.Grant.Consent) and the first refresh token of its
// family. A code presented again revokes the delegation, which ends every
// token its first use issued.
func (s *Service) RedeemCode(ctx context.Context, req exchange.Request, code, redirectURI, verifier string) (*Tokens, error) {
	if code == "" || len(code) > 128 {
		return nil, s.refuseGrant(ctx, req, "", oauth.InvalidRequest("code_missing", "code is missing or malformed", nil))
	}
	c, err := s.Store.RedeemCode(ctx, hashOf(code), s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, s.refuseGrant(ctx, req, "", oauth.New(oauth.ErrInvalidGrant, "code_unknown", "the code is not valid", nil))
	case errors.Is(err, store.ErrReplay):
		// A redemption racing the first one waits for it to issue its
		// token, so that of parallel redemptions exactly one gets its
		// answer, and the revocation then ends what it issued.
		s.awaitFirstUse(ctx, c)
		return nil, s.replayed(ctx, req, c.Subject, c.DelegationID, "code_reused", "the code was used before; what it issued is revoked")
	case err != nil:
		return nil, oauth.Unavailable("store_unavailable", err)
	}
	var e *oauth.Error
	switch {
	case c.ClientID != req.Client.ID:
		e = oauth.New(oauth.ErrInvalidGrant, "code_client_mismatch", "the code was issued to another client", nil)
	case !s.now().Before(c.ExpiresAt):
		e = oauth.New(oauth.ErrInvalidGrant, "code_expired", "the code has expired", nil)
	case redirectURI != c.RedirectURI:
		e = oauth.New(oauth.ErrInvalidGrant, "redirect_uri_mismatch", "redirect_uri differs from the authorization request's", nil)
	default:
		if err := authorize.CheckVerifier(c.Challenge, verifier); err != nil {
			e = oauth.As(err)
		}
	}
	if e != nil {
		return nil, s.refuseGrant(ctx, req, c.Subject, e)
	}
	res, err := s.Grant.Consent(ctx, req, exchange.Consented{
		GrantType: exchange.GrantAuthorizationCode, Subject: c.Subject, Actor: c.Actor,
		DelegationID: c.DelegationID, Scopes: c.Scopes, Resource: c.Resource,
	})
	if err != nil {
		return nil, err
	}
	rt, err := s.newFamily(ctx, c)
	if err != nil {
		return nil, err
	}
	return &Tokens{Result: res, RefreshToken: rt}, nil
}

// newFamily stores the first refresh token of the code's family: it lasts
// as long as the delegation, at most RefreshMax.
func (s *Service) newFamily(ctx context.Context, c store.AuthCode) (string, error) {
	u, err := s.Reader.GetUser(ctx, c.Subject)
	if err != nil {
		return "", oauth.Unavailable("store_unavailable", err)
	}
	dl, err := s.Directory.Store.GetDelegation(ctx, c.DelegationID)
	if err != nil {
		return "", oauth.Unavailable("store_unavailable", err)
	}
	now := s.now()
	rt, hash := newSecret()
	row := store.RefreshToken{
		Hash: hash, DelegationID: c.DelegationID, ClientID: c.ClientID, Subject: c.Subject, Actor: c.Actor,
		Scopes: c.Scopes, Resource: c.Resource, SubjectVersion: u.Version,
		CreatedAt: now, ExpiresAt: s.refreshEnd(now, dl),
	}
	if err := s.Store.CreateRefresh(ctx, row); err != nil {
		return "", oauth.Unavailable("store_unavailable", err)
	}
	return rt, nil
}

func (s *Service) refreshEnd(now time.Time, dl store.Delegation) time.Time {
	end := now.Add(orDefault(s.RefreshMax, DefaultRefreshMax))
	if !dl.Expires.IsZero() && dl.Expires.Before(end) {
		end = dl.Expires
	}
	return end
}

// Refresh runs the refresh token grant (RFC 6749 §6): the token is read
// and checked, the access token minted within the grant (exchange.Grant.
// Consent: bounded like the first, req's scopes only narrow), and only
// then is the token used and replaced by the next of its family, at once
// (store.SignIn.RotateRefresh). So a request the grant refuses (a policy,
// a wider scope) uses nothing up and the agent may ask again; a token
// presented again, or by two requests at once, is a replay: the
// delegation is revoked, which ends the family and every access token it
// issued, the one just minted too.
func (s *Service) Refresh(ctx context.Context, req exchange.Request, refresh string) (*Tokens, error) {
	if refresh == "" || len(refresh) > 128 {
		return nil, s.refuseGrant(ctx, req, "", oauth.InvalidRequest("refresh_token_missing", "refresh_token is missing or malformed", nil))
	}
	now := s.now()
	rt, err := s.Store.GetRefresh(ctx, hashOf(refresh))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, s.refuseGrant(ctx, req, "", oauth.New(oauth.ErrInvalidGrant, "refresh_unknown", "the refresh token is not valid", nil))
	case err != nil:
		return nil, oauth.Unavailable("store_unavailable", err)
	case !rt.UsedAt.IsZero():
		return nil, s.replayed(ctx, req, rt.Subject, rt.DelegationID, "refresh_reused", "the refresh token was used before; its family is revoked")
	case rt.ClientID != req.Client.ID:
		return nil, s.refuseGrant(ctx, req, rt.Subject, oauth.New(oauth.ErrInvalidGrant, "refresh_client_mismatch", "the refresh token was issued to another client", nil))
	case !now.Before(rt.ExpiresAt):
		return nil, s.refuseGrant(ctx, req, rt.Subject, oauth.New(oauth.ErrInvalidGrant, "refresh_expired", "the refresh token has expired", nil))
	}
	res, err := s.Grant.Consent(ctx, req, exchange.Consented{
		GrantType: exchange.GrantRefreshToken, Subject: rt.Subject, Actor: rt.Actor,
		DelegationID: rt.DelegationID, Scopes: rt.Scopes, Resource: rt.Resource, SubjectVersion: rt.SubjectVersion, VersionBound: true,
	})
	if err != nil {
		return nil, err
	}
	next, hash := newSecret()
	_, err = s.Store.RotateRefresh(ctx, rt.Hash, now, store.RefreshToken{Hash: hash, CreatedAt: now})
	switch {
	case errors.Is(err, store.ErrReplay), errors.Is(err, store.ErrNotFound):
		return nil, s.replayed(ctx, req, rt.Subject, rt.DelegationID, "refresh_reused", "the refresh token was used at the same time by another request; its family is revoked")
	case err != nil:
		return nil, oauth.Unavailable("store_unavailable", err)
	}
	return &Tokens{Result: res, RefreshToken: next}, nil
}

// firstUseWait is how long a redemption of a code just redeemed by
// another request waits for that first use to issue its token.
const firstUseWait = time.Second

// awaitFirstUse waits, at most firstUseWait of real time and within ctx,
// until the code's first redemption (moments ago) has issued its token
// (its token.issue record under the code's delegation), or returns at
// once when the first use is older. A first use that fails is waited
// for to the end.
func (s *Service) awaitFirstUse(ctx context.Context, c store.AuthCode) {
	if s.Log == nil || c.UsedAt.IsZero() || s.now().Sub(c.UsedAt) > firstUseWait {
		return
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for start := time.Now(); time.Since(start) < firstUseWait; {
		evs, err := s.Log.QueryEvents(ctx, store.EventFilter{DelegationID: c.DelegationID, Action: audit.ActionTokenIssue, Limit: 1})
		if err != nil || len(evs) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// replayed answers a code or refresh token presented again: the
// delegation it was issued under is revoked (its tokens, the refresh
// family and every verifier's copy end with it) and the replay recorded.
func (s *Service) replayed(ctx context.Context, req exchange.Request, subject, delegationID, reason, desc string) error {
	e := oauth.New(oauth.ErrInvalidGrant, reason, desc, nil)
	p := directory.Performer{ID: performerMandate, RequestID: req.RequestID}
	if err := s.Directory.RevokeDelegation(ctx, p, delegationID, reason); err != nil && !errors.Is(err, directory.ErrNotFound) {
		return oauth.Unavailable("store_unavailable", errors.Join(e, err))
	}
	ev := s.event(audit.ActionGrantReplayed, audit.ResultRefused, req.Client.ID, req.RequestID)
	ev.OnBehalf, ev.ClientID, ev.DelegationID, ev.Reason = subject, req.Client.ID, delegationID, reason
	if err := s.record(ctx, ev); err != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(e, err))
	}
	return e
}

// refuseGrant records a code or refresh token refused before its grant
// ran, and returns the error to answer with.
func (s *Service) refuseGrant(ctx context.Context, req exchange.Request, subject string, e *oauth.Error) error {
	ev := s.event(audit.ActionTokenRefused, audit.ResultRefused, req.Client.ID, req.RequestID)
	ev.OnBehalf, ev.ClientID, ev.Reason, ev.Detail, ev.Resource = subject, req.Client.ID, e.Reason, e.Description, audit.ActionTokenIssue
	if err := s.record(ctx, ev); err != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(e, err))
	}
	return e
}

// ErrNotYours is a refresh token issued to another client.
var ErrNotYours = errors.New("signin: the refresh token was issued to another client")

// RevokeRefresh revokes the refresh token raw for its client (RFC 7009
// §2.1): the whole family ends with its delegation, and with it every
// access token the family issued. It reports whether raw is a refresh
// token at all; one of another client is ErrNotYours and changes nothing.
func (s *Service) RevokeRefresh(ctx context.Context, clientID, raw, requestID string) (bool, error) {
	if raw == "" || len(raw) > 128 {
		return false, nil
	}
	rt, err := s.Store.GetRefresh(ctx, hashOf(raw))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("signin: %w", err)
	case rt.ClientID != clientID:
		return true, ErrNotYours
	}
	p := directory.Performer{ID: clientID, ClientID: clientID, RequestID: requestID}
	if err := s.Directory.RevokeDelegation(ctx, p, rt.DelegationID, "refresh_token_revoked"); err != nil && !errors.Is(err, directory.ErrNotFound) {
		return true, fmt.Errorf("signin: revoke the refresh token's family: %w", err)
	}
	return true, nil
}
