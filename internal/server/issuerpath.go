package server

import (
	"net/http"
	"net/url"
	"strings"
)

// underIssuerPath serves next's routes under the issuer's path too, for an
// issuer with one (https://host/mandate): the endpoints discovery names
// (https://host/mandate/token) are served there as at the root, and the
// metadata at the three places an MCP client derives from the issuer, in
// the order it tries them: RFC 8414 §3.1's path-inserted location
// (/.well-known/oauth-authorization-server/mandate), OpenID's path-inserted
// one (/.well-known/openid-configuration/mandate) and OpenID Connect
// Discovery §4's (/mandate/.well-known/openid-configuration). The pages'
// own links and redirects stay at the root (/login, /consent), so the
// server must be reachable there too: a proxy that forwards only the
// issuer's path serves the token endpoints and discovery, not the pages.
// An issuer without a path leaves next as it is.
func underIssuerPath(issuer string, next http.Handler) http.Handler {
	u, err := url.Parse(issuer)
	if err != nil || u.Path == "" || u.Path == "/" {
		return next
	}
	base, rawBase := strings.TrimSuffix(u.Path, "/"), strings.TrimSuffix(u.EscapedPath(), "/")
	const oauthMetadata, openIDMetadata = "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, raw := r.URL.Path, r.URL.RawPath
		switch {
		case p == oauthMetadata+base:
			p, raw = oauthMetadata, ""
		case p == openIDMetadata+base:
			p, raw = openIDMetadata, ""
		case strings.HasPrefix(p, base+"/"):
			p = strings.TrimPrefix(p, base)
			if raw != "" {
				raw = strings.TrimPrefix(raw, rawBase)
			}
		default:
			next.ServeHTTP(w, r)
			return
		}
		// As http.StripPrefix does: a shallow copy with the new path.
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		r2.URL.Path, r2.URL.RawPath = p, raw
		next.ServeHTTP(w, r2)
	})
}
