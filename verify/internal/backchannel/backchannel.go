// Package backchannel is the connection a resource server keeps to its
// issuer's endpoints (the revocation stream, the record ingest endpoint):
// the check of the URL and the client credentials, and an HTTP client that
// never follows a redirect, so that the credentials go nowhere but the
// configured URL. It is shared by verify/feed and verify/forward.
package backchannel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/jwks"
)

// dialTimeout bounds each step of opening a connection.
const dialTimeout = 10 * time.Second

// Check checks the endpoint URL u and the client credentials of a
// configuration; prefix (such as "feed: Config") names it in the errors.
// The URL must be https, or http on a loopback host. The secret never
// appears in an error.
func Check(prefix, u, clientID, secret string) []error {
	var errs []error
	if u == "" {
		errs = append(errs, fmt.Errorf("%s.URL is required", prefix))
	} else if err := jwks.CheckURI(u); err != nil {
		errs = append(errs, fmt.Errorf("%s.URL: %s", prefix, strings.TrimPrefix(err.Error(), "jwks: ")))
	}
	if clientID == "" || secret == "" {
		errs = append(errs, errors.New(prefix+".ClientID and ClientSecret are required"))
	}
	return errs
}

// Client returns a copy of c (by default one whose transport bounds every
// step of opening a connection but not the response body, which may be a
// long-lived stream) that never follows a redirect, and l or a logger that
// discards.
func Client(c *http.Client, l *slog.Logger) (*http.Client, *slog.Logger) {
	var client http.Client
	if c != nil {
		client = *c
	} else {
		client.Transport = defaultTransport()
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &client, l
}

// defaultTransport bounds every step of opening a connection but not the
// stream itself.
func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: dialTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          2,
		ForceAttemptHTTP2:     true,
	}
}
