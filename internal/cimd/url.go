package cimd

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxURLLen bounds a client_id URL, in bytes.
const MaxURLLen = 2048

// ErrInvalidURL is returned, wrapped with the reason, for a client_id that
// is not a Client ID Metadata Document URL.
var ErrInvalidURL = errors.New("cimd: client_id is not a metadata document URL")

// IsURL reports whether clientID looks like a metadata document URL at all
// (it starts with "https://"), so that a caller can tell such a client from
// one registered in the directory before it calls Lookup.
func IsURL(clientID string) bool {
	return strings.HasPrefix(clientID, "https://")
}

// CheckURL reports whether raw may be a client_id URL (draft §3): the https
// scheme, a host, a path with no "." or ".." segment, no fragment, no user
// information; a port and a query are allowed (the draft allows them,
// though it advises against a query). Characters that parsers read
// differently (white space, controls, backslashes) are refused too. The
// error wraps ErrInvalidURL.
func CheckURL(raw string) error {
	if reason := urlProblem(raw); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalidURL, reason)
	}
	return nil
}

func urlProblem(raw string) string {
	if len(raw) > MaxURLLen {
		return fmt.Sprintf("longer than %d bytes", MaxURLLen)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\\' }) {
		return "white space, control characters or backslashes"
	}
	if strings.Contains(raw, "#") {
		return "has a fragment"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "does not parse"
	case u.Scheme != "https" || !strings.HasPrefix(raw, "https://"):
		return "scheme must be https"
	case u.User != nil:
		return "has user information"
	case u.Hostname() == "":
		return "has no host"
	case u.Opaque != "" || u.RawPath != "" && u.RawPath != u.EscapedPath():
		return "has an unusual path encoding"
	case u.Path == "" || u.Path == "/":
		return "has no path"
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if s, err := url.PathUnescape(seg); err != nil || s == "." || s == ".." {
			return "has a dot segment in its path"
		}
	}
	return ""
}
