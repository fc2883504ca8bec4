package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mandate-dev/mandate/jwks"
)

// Transport returns a RoundTripper that sends every request through base
// (http.DefaultTransport when nil) and puts the token for req in the
// Authorization header of those for the API's origin only, exchanging or
// renewing the token as needed.
//
// The API's origin (scheme, host and port) is Config.Origins[audience], or
// else the audience itself when it is an http(s) URL; a Request without an
// Audience goes by its Resource the same way. Transport refuses a Request
// whose target has no origin (an agent id with no Origins entry), and
// plain http to a host that is not loopback.
//
// A request for any other origin goes out untouched, without a token: in
// particular a redirect from the API to another host, port or scheme.
// Unlike a header set on the request, which http.Client drops on a redirect
// to another host but keeps on one to another port or scheme, a header the
// RoundTripper adds would otherwise go to wherever the API redirects. A
// redirect within the origin keeps the token: that is the same server, the
// one the token is for.
func (c *Client) Transport(base http.RoundTripper, req Request) (http.RoundTripper, error) {
	o, err := c.apiOrigin(req)
	if err != nil {
		return nil, err
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{client: c, base: base, req: req, origin: o}, nil
}

type transport struct {
	client *Client
	base   http.RoundTripper
	req    Request // held to renew the token: the subject token lives as long as the transport
	origin origin
}

// RoundTrip implements http.RoundTripper; it does not modify r.
func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if originOf(r.URL) != t.origin {
		return t.base.RoundTrip(r)
	}
	tok, err := t.client.Exchange(r.Context(), t.req)
	if err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, err
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return t.base.RoundTrip(r2)
}

// apiOrigin is where the token for req may be sent (see Transport).
func (c *Client) apiOrigin(req Request) (origin, error) {
	target := req.Audience
	if target == "" {
		target = req.Resource
	}
	if target == "" {
		return origin{}, errors.New("agent: Transport needs a Request with an Audience or a Resource, the API its token is for")
	}
	if o, ok := c.origins[target]; ok {
		return o, nil
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return origin{}, fmt.Errorf("agent: the token is for %q, which is not an http(s) URL: name the origin of the API that accepts it in Config.Origins", target)
	}
	if err := checkScheme(fmt.Sprintf("the API %q", target), u); err != nil {
		return origin{}, err
	}
	return originOf(u), nil
}

// origin is a URL's scheme, host and port, compared exactly (RFC 6454 §4):
// the unit a token is sent to.
type origin struct{ scheme, host, port string }

// originOf is u's origin, with the scheme's default port made explicit.
func originOf(u *url.URL) origin {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return origin{scheme: scheme, host: strings.ToLower(u.Hostname()), port: port}
}

// parseOrigin reads raw as an origin: scheme://host[:port] and nothing
// else, https or http to a loopback host. what names it in errors.
func parseOrigin(what, raw string) (origin, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return origin{}, fmt.Errorf("agent: %s: %w", what, err)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return origin{}, fmt.Errorf("agent: %s = %q is not an origin: give scheme://host[:port] and nothing else", what, raw)
	}
	if err := checkScheme(what, u); err != nil {
		return origin{}, err
	}
	return originOf(u), nil
}

// checkScheme refuses a URL that would carry a secret in the clear to
// another machine: it must be https, or http to a loopback host
// (localhost, 127.0.0.0/8, ::1), which never leaves the machine.
func checkScheme(what string, u *url.URL) error {
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && jwks.IsLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("agent: %s uses plain http to %s, which is not loopback: use https (plain http is allowed only to localhost, 127.0.0.0/8 and ::1)", what, u.Host)
	default:
		return fmt.Errorf("agent: %s must be an https URL (or http to a loopback host), not %s://", what, u.Scheme)
	}
}
