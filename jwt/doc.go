// Package jwt is the gate every JWT passes: bounded compact parsing, refused
// header members, the algorithm pinned by the key, strict JSON, claims read by
// exact name.
//
// ParseJWS bounds size and structure with a byte scan before anything is
// decoded and refuses header members that name a key to fetch or trust or
// change how the token is processed (RFC 8725 §3.10). (*JWS).Verify checks
// the signature with go-jose, accepting only the algorithms the key pins
// (AlgorithmsFor; never the header's say-so, RFC 8725 §3.1), and only then
// decodes the payload, after strictjson has refused duplicate and
// case-variant member names. ClaimSet reads one claim at a time by exact
// name. The package keeps no state and is safe for concurrent use.
package jwt
