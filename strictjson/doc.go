// Package strictjson checks JSON documents the way token parsing needs
// (RFC 7515 §5.2, RFC 7519 §4, RFC 8725 §3.7): it refuses duplicate and
// case-variant member names, invalid UTF-8, lone surrogates, non-finite
// numbers, trailing data and nesting deeper than a caller-given bound.
//
// Go's encoding/json would take the last of two duplicate members, or a
// case-folded match; a token whose claims two parsers read differently must
// never be accepted, so every JWT payload and header passes Check first.
package strictjson
