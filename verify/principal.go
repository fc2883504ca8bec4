package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/jwt"
)

// maxAuthorizationDetails bounds the authorization_details entries read.
const maxAuthorizationDetails = 16

// Principal is what a verified access token says: on whose behalf the
// request is made (Subject) and who is making it (Actor, then the prior
// actors in Chain), with what authority (Scopes, Context,
// AuthorizationDetails). It is read-only once Verify returns it.
type Principal struct {
	// Subject is the person (or service) whose authority is used: sub.
	Subject string
	// Actor is the agent acting now, the outermost act.sub; "" when the
	// token has no act claim (the subject acts for itself).
	Actor string
	// Chain is every actor, current first, then the ones it acts for
	// (RFC 8693 §4.1 nesting). Prior actors are informational: access
	// decisions look at Subject and Actor only.
	Chain []string
	// Scopes are the delegated scopes (scope, space-separated).
	Scopes []string
	// Audience holds the aud values; one of them is this resource.
	Audience []string
	// ClientID is the OAuth client the token was issued to.
	ClientID string
	// Context holds the facts the issuer's policy saw (environment,
	// trigger, …); nil when the token has none.
	Context Context
	// AuthorizationDetails are the RFC 9396 entries the token carries, such
	// as an expense limit; see CheckAmount.
	AuthorizationDetails []AuthorizationDetail
	// DelegationID names the stored delegation the token was minted under;
	// "" when none.
	DelegationID string
	// JTI identifies the token; audit records and revocation use it.
	JTI string
	// ExchangedFrom holds the jti of every Mandate token this one was
	// exchanged from, nearest first (the exchanged_from claim); nil when
	// the token was not exchanged from another. Revoking any of them
	// revokes this token (feed.Feed).
	ExchangedFrom []string
	// Generation is the issuer's store generation when the token was
	// minted (the gen claim), 0 when absent. Revocations of a person, an
	// agent or a delegation hit the tokens of a lower generation.
	Generation int64
	// KeyID is the kid of the issuer key that signed the token.
	KeyID string
	// Issuer is iss.
	Issuer string
	// IssuedAt, NotBefore and Expiry are iat, nbf (zero when absent) and
	// exp.
	IssuedAt, NotBefore, Expiry time.Time
}

// PerformedBy is who performs the request, as audit records name it: the
// current actor, or the subject when no agent acts.
func (p *Principal) PerformedBy() string {
	if p.Actor != "" {
		return p.Actor
	}
	return p.Subject
}

// OnBehalfOf is whose authority the request uses, as audit records name
// it: the subject.
func (p *Principal) OnBehalfOf() string { return p.Subject }

// HasScope reports whether the token carries scope s, compared exactly.
func (p *Principal) HasScope(s string) bool { return slices.Contains(p.Scopes, s) }

// Context is the token's context claim: facts about the request that the
// issuer's policy read, such as "environment" and "trigger".
type Context map[string]any

// String returns the string value of key; "" when it is absent or not a
// string.
func (c Context) String(key string) string {
	s, _ := c[key].(string)
	return s
}

// AuthorizationDetail is one RFC 9396 authorization_details entry: its
// type, and the entry as raw JSON for the type-specific members (read them
// with Fields or Decode, or with CheckAmount for limits).
type AuthorizationDetail struct {
	Type string
	Raw  json.RawMessage
}

// Fields decodes every member of the entry, "type" included, with numbers
// as json.Number so that amounts keep their exact decimal value.
func (d AuthorizationDetail) Fields() (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(d.Raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("verify: authorization_details entry: %w", err)
	}
	return m, nil
}

// Decode unmarshals the entry into v with encoding/json.
func (d AuthorizationDetail) Decode(v any) error { return json.Unmarshal(d.Raw, v) }

// parseAuthorizationDetails reads an authorization_details claim: an array
// of at most 16 objects, each with a non-empty string "type".
func parseAuthorizationDetails(c jwt.ClaimSet) ([]AuthorizationDetail, error) {
	elems, err := c.Array("authorization_details", maxAuthorizationDetails)
	if err != nil || elems == nil {
		return nil, err
	}
	out := make([]AuthorizationDetail, 0, len(elems))
	for _, e := range elems {
		raw, _ := jwt.Member(e, "type")
		t, ok := jwt.StringValue(raw)
		if !ok || t == "" {
			return nil, errors.New("authorization_details entry without a type")
		}
		out = append(out, AuthorizationDetail{Type: t, Raw: e})
	}
	return out, nil
}

// CheckAmount reports whether the token allows an amount in currency under
// an authorization_details entry of type typ: some entry of that type must
// have a "max_amount" of at least amount and a "currency" equal to
// currency. An entry that lacks either constraint allows nothing: a limit
// without its currency is not a limit in every currency. Amounts compare
// exactly (decimal, not float rounding). It returns nil when allowed and
// an error wrapping ErrLimitExceeded otherwise (no such entry, above every
// limit, another or no currency, or an amount that is negative or not
// finite).
func (p *Principal) CheckAmount(typ string, amount float64, currency string) error {
	if math.IsNaN(amount) || math.IsInf(amount, 0) || amount < 0 {
		return fmt.Errorf("%w: invalid amount", ErrLimitExceeded)
	}
	want := new(big.Rat).SetFloat64(amount)
	found := false
	for _, d := range p.AuthorizationDetails {
		if d.Type != typ {
			continue
		}
		c, ok := jwt.Member(d.Raw, "currency")
		if !ok {
			continue
		}
		if s, isString := jwt.StringValue(c); !isString || s != currency {
			continue
		}
		n, ok := jwt.Member(d.Raw, "max_amount")
		if !ok || len(n) == 0 || (n[0] != '-' && (n[0] < '0' || n[0] > '9')) {
			continue
		}
		limit, ok := new(big.Rat).SetString(string(n))
		if !ok {
			continue
		}
		found = true
		if want.Cmp(limit) <= 0 {
			return nil
		}
	}
	if !found {
		return fmt.Errorf("%w: no %s limit in %s", ErrLimitExceeded, typ, currency)
	}
	return fmt.Errorf("%w: above the %s limit", ErrLimitExceeded, typ)
}

// readExchangedFrom reads the exchanged_from claim: an array of at most
// limit non-empty strings of at most jwt.MaxStringClaim bytes; nil when
// absent, null or empty. The values share one allocation unless one has
// escapes, as Verify reads the claim on every request.
func readExchangedFrom(c jwt.ClaimSet, limit int) ([]string, error) {
	elems, err := c.Array("exchanged_from", limit)
	if err != nil || len(elems) == 0 {
		return nil, err
	}
	n, escaped := 0, false
	for _, e := range elems {
		// An array element is a whole JSON value: one that starts with a
		// quote is a string.
		if len(e) < 3 || e[0] != '"' || len(e)-2 > jwt.MaxStringClaim {
			return nil, errors.New("exchanged_from must hold non-empty strings")
		}
		n += len(e) - 2
		escaped = escaped || bytes.IndexByte(e, '\\') >= 0
	}
	out := make([]string, len(elems))
	if escaped {
		for i, e := range elems {
			s, ok := jwt.StringValue(e)
			if !ok || s == "" || len(s) > jwt.MaxStringClaim {
				return nil, errors.New("exchanged_from must hold non-empty strings")
			}
			out[i] = s
		}
		return out, nil
	}
	var b strings.Builder
	b.Grow(n)
	for _, e := range elems {
		b.Write(e[1 : len(e)-1])
	}
	all := b.String()
	for i, e := range elems {
		out[i], all = all[:len(e)-2], all[len(e)-2:]
	}
	return out, nil
}

// maxGenDigits keeps a gen claim within int64.
const maxGenDigits = 18

// readGeneration reads the gen claim: a non-negative JSON integer, 0 when
// absent. Fractions, exponents, signs, strings and null are errors.
func readGeneration(c jwt.ClaimSet) (int64, error) {
	raw, ok := c.Raw("gen")
	if !ok {
		return 0, nil
	}
	if len(raw) == 0 || len(raw) > maxGenDigits || (len(raw) > 1 && raw[0] == '0') {
		return 0, errors.New("gen must be a non-negative integer")
	}
	var n int64
	for _, b := range raw {
		if b < '0' || b > '9' {
			return 0, errors.New("gen must be a non-negative integer")
		}
		n = n*10 + int64(b-'0')
	}
	return n, nil
}
