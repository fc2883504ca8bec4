package exchange

import (
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/strictjson"
)

// ErrInvalidAuthorizationDetails is the RFC 9396 §5 error code.
const ErrInvalidAuthorizationDetails oauth.ErrorCode = "invalid_authorization_details"

// Limits on an authorization_details parameter.
const (
	maxDetailsBytes   = 4 << 10
	maxDetailsEntries = 8
)

// Detail is one RFC 9396 authorization_details entry, members by name.
type Detail map[string]any

// ParseDetails decodes an authorization_details parameter: a JSON array of
// at most 8 objects, each with a string "type", that every parser reads the
// same way. Numbers keep their decimal text.
func ParseDetails(s string) ([]Detail, error) {
	bad := func(why string) error {
		return oauth.New(ErrInvalidAuthorizationDetails, "authorization_details_invalid", "authorization_details "+why, nil)
	}
	if len(s) > maxDetailsBytes {
		return nil, bad("is too large")
	}
	if err := strictjson.Check([]byte(s), 6); err != nil {
		return nil, bad("is not valid JSON")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var out []Detail
	if err := dec.Decode(&out); err != nil || len(out) == 0 || len(out) > maxDetailsEntries {
		return nil, bad("must be an array of 1 to 8 objects")
	}
	for _, d := range out {
		if t, ok := d["type"].(string); !ok || t == "" {
			return nil, bad("entries need a type")
		}
	}
	return out, nil
}

// grantDetails narrows the requested entries to what the limits cover: the
// same "never wider" rule as scopes, per field (see narrow). An entry no
// limit covers refuses the request (RFC 9396 §5:
// invalid_authorization_details). holder says who holds the limits, for
// the refusal's description ("the person holds").
func grantDetails(requested, limits []Detail, holder string) ([]Detail, error) {
	var out []Detail
	for _, req := range requested {
		granted, ok := Detail(nil), false
		for _, lim := range limits {
			if lim["type"] == req["type"] {
				if granted, ok = narrow(req, lim); ok {
					break
				}
			}
		}
		if !ok {
			return nil, oauth.New(ErrInvalidAuthorizationDetails, "authorization_details_not_held",
				holder+" no limit that covers a requested authorization_details entry", nil)
		}
		out = append(out, granted)
	}
	return out, nil
}

// narrow returns req bounded by lim, or false when lim cannot cover it.
// Every member req names must be in lim: a "max_" number is lowered to
// lim's, a list is intersected with lim's (nothing in common cannot be
// covered), and any other value must equal lim's. Every member of lim that
// req leaves out is copied, so that a granted entry never has fewer
// constraints than the limit it came from: a limit in USD asked for
// without a currency is granted in USD, never in any currency.
func narrow(req, lim Detail) (Detail, bool) {
	out := make(Detail, len(lim))
	for k, l := range lim {
		out[k] = l
	}
	for k, v := range req {
		l, held := lim[k]
		if !held {
			return nil, false
		}
		switch {
		case strings.HasPrefix(k, "max_"):
			rv, lv, ok := decimals(v, l)
			if !ok {
				return nil, false
			}
			if rv.Cmp(lv) < 0 {
				out[k] = v
			}
		case isList(v) || isList(l):
			common, ok := intersectLists(v, l)
			if !ok || len(common) == 0 {
				return nil, false
			}
			out[k] = common
		default:
			if !sameJSON(v, l) {
				return nil, false
			}
		}
	}
	return out, true
}

// decimals reads two JSON numbers exactly; both must be non-negative.
func decimals(a, b any) (*big.Rat, *big.Rat, bool) {
	na, okA := a.(json.Number)
	nb, okB := b.(json.Number)
	if !okA || !okB {
		return nil, nil, false
	}
	ra, okA := new(big.Rat).SetString(na.String())
	rb, okB := new(big.Rat).SetString(nb.String())
	return ra, rb, okA && okB && ra.Sign() >= 0 && rb.Sign() >= 0
}

func isList(v any) bool { _, ok := v.([]any); return ok }

// intersectLists returns the members of v that are in l, in v's order,
// once each; false when either is not a list.
func intersectLists(v, l any) ([]any, bool) {
	vs, ok1 := v.([]any)
	ls, ok2 := l.([]any)
	if !ok1 || !ok2 {
		return nil, false
	}
	out := make([]any, 0, len(vs))
	for _, x := range vs {
		in := func(y any) bool { return sameJSON(x, y) }
		if slices.ContainsFunc(ls, in) && !slices.ContainsFunc(out, in) {
			out = append(out, x)
		}
	}
	return out, true
}

// sameJSON reports whether a and b encode to the same JSON: a string is
// never equal to a number of the same digits.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// DetailsJSON is ds as a compact JSON array for an audit record, nil for
// none. ParseDetails output always encodes (numbers keep their text); a
// value that cannot is recorded as nil rather than failing the request.
func DetailsJSON(ds []Detail) json.RawMessage {
	if len(ds) == 0 {
		return nil
	}
	b, err := json.Marshal(ds)
	if err != nil {
		return nil
	}
	return b
}

// detailsFromJSON decodes stored or claimed details; nil for none.
func detailsFromJSON(raw json.RawMessage) ([]Detail, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var out []Detail
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("authorization_details: %w", err)
	}
	return out, nil
}
