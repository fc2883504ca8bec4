package actor

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode"

	"github.com/mandate-dev/mandate/strictjson"
)

// Limits on what Parse accepts.
const (
	// MaxDepth is the deepest chain Parse decodes at all; configured
	// delegation limits are lower and are checked by the caller.
	MaxDepth = 16
	// MaxSubjectLen is the longest actor identifier accepted, in bytes.
	MaxSubjectLen = 256
)

// Errors returned by Parse and Validate.
var (
	ErrTooDeep    = errors.New("actor: chain too deep")
	ErrInvalid    = errors.New("actor: invalid act claim")
	ErrBadSubject = errors.New("actor: invalid actor subject")
)

// Actor is one level of the act claim: Subject is the actor at this level and
// Actor the one before it, if any.
type Actor struct {
	Subject string `json:"sub"`
	Actor   *Actor `json:"act,omitempty"`
}

// Chain is the list of actors, current actor first.
type Chain []string

// New builds the act claim for a chain given current actor first. It returns
// nil for an empty chain.
func New(chain Chain) *Actor {
	var a *Actor
	for i := len(chain) - 1; i >= 0; i-- {
		a = &Actor{Subject: chain[i], Actor: a}
	}
	return a
}

// Chain returns the actors, current first. A nil Actor has an empty chain.
func (a *Actor) Chain() Chain {
	var c Chain
	for ; a != nil; a = a.Actor {
		c = append(c, a.Subject)
	}
	return c
}

// Depth is the number of actors in the chain.
func (a *Actor) Depth() int {
	n := 0
	for ; a != nil; a = a.Actor {
		n++
	}
	return n
}

// Contains reports whether id acts anywhere in the chain.
func (c Chain) Contains(id string) bool { return slices.Contains(c, id) }

// Current is the current actor, or "" for an empty chain.
func (c Chain) Current() string {
	if len(c) == 0 {
		return ""
	}
	return c[0]
}

// Parse decodes an act claim. The nesting is bounded by a byte scan before
// decoding (ErrTooDeep past MaxDepth), duplicate member names are refused,
// members other than "sub" and "act" are dropped, and every subject is
// checked with ValidSubject. An empty or JSON-null claim yields nil.
func Parse(raw json.RawMessage) (*Actor, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if err := strictjson.Check(raw, MaxDepth); err != nil {
		if errors.Is(err, strictjson.ErrTooDeep) {
			return nil, ErrTooDeep
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var root *Actor
	next := &root
	for level := 0; len(raw) > 0 && string(raw) != "null"; level++ {
		if level >= MaxDepth {
			return nil, ErrTooDeep
		}
		// Members are looked up by exact name: encoding/json would also
		// match "SUB" to a "sub" field, a reading other parsers do not share.
		var node map[string]json.RawMessage
		if err := json.Unmarshal(raw, &node); err != nil || node == nil {
			return nil, fmt.Errorf("%w: not an object", ErrInvalid)
		}
		var sub string
		if err := json.Unmarshal(node["sub"], &sub); err != nil {
			return nil, fmt.Errorf("%w: sub must be a string", ErrInvalid)
		}
		if err := ValidSubject(sub); err != nil {
			return nil, err
		}
		*next = &Actor{Subject: sub}
		next = &(*next).Actor
		raw = node["act"]
	}
	return root, nil
}

// ValidSubject reports whether s may name an actor or subject: non-empty, at
// most MaxSubjectLen bytes, valid UTF-8 without control or format characters.
func ValidSubject(s string) error {
	if s == "" || len(s) > MaxSubjectLen {
		return ErrBadSubject
	}
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ErrBadSubject
		}
	}
	return nil
}
