package cimd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenAddress is returned, wrapped with the address, when a
// document's host is or resolves to an address Mandate never fetches from:
// anything but a public unicast address.
var ErrForbiddenAddress = errors.New("cimd: host address is not public")

// Resolver looks up the addresses of a host name. *net.Resolver satisfies
// it; tests give their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// forbidden lists the ranges no document is fetched from, beyond what
// netip.Addr's own predicates name (private, loopback, link-local,
// multicast, unspecified): special-purpose ranges of the IANA registries,
// and IPv6 ranges that embed an IPv4 address a gateway may reach for us.
var forbidden = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network" (RFC 791)
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (RFC 5737)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking (RFC 2544)
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated, RFC 4291)
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64 (RFC 6052)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("100::/64"),        // discard (RFC 6666)
	netip.MustParsePrefix("2001::/32"),       // Teredo (RFC 4380)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation (RFC 3849)
	netip.MustParsePrefix("2002::/16"),       // 6to4 (RFC 3056)
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated, RFC 3879)
}

// addressPolicy decides which addresses may be connected to.
type addressPolicy struct {
	allowLoopback bool
}

// check returns nil for an address a document may be fetched from, or an
// error wrapping ErrForbiddenAddress. An IPv4-mapped IPv6 address is
// judged as the IPv4 address it carries.
func (p addressPolicy) check(a netip.Addr) error {
	a = a.Unmap()
	if p.allowLoopback && a.IsLoopback() {
		return nil
	}
	ok := a.IsValid() && a.Zone() == "" && a.IsGlobalUnicast() && !a.IsPrivate()
	for _, pre := range forbidden {
		if pre.Contains(a) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, a)
	}
	return nil
}

// control is the net.Dialer's Control: it runs after the address is chosen
// and before the connection is made, so whatever resolved the name, the
// socket only ever connects to an allowed address (a DNS answer that
// changes between the check and the connect cannot win).
func (p addressPolicy) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("%w: network %s", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrForbiddenAddress, address, err)
	}
	return p.check(ap.Addr())
}

// dialer connects to a document's host: it resolves the name, refuses the
// host when any of its addresses is forbidden (a name with one private
// address is not a public host), and connects to the allowed addresses in
// turn, each checked again by control.
type dialer struct {
	policy   addressPolicy
	resolver Resolver
	net      net.Dialer
}

func newDialer(p addressPolicy, r Resolver, timeout time.Duration) *dialer {
	return &dialer{policy: p, resolver: r, net: net.Dialer{Timeout: timeout, Control: p.control}}
}

// DialContext has the shape of http.Transport's DialContext.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("cimd: dial %q: %w", address, err)
	}
	addrs, err := d.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		c, err := d.net.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("cimd: dial %s: %w", host, errors.Join(errs...))
}

// resolve returns the addresses of host (an IP literal is its own), or an
// error when there are none or any of them is forbidden.
func (d *dialer) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = d.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("cimd: resolve %s: %w", host, err)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("cimd: resolve %s: no addresses", host)
	}
	for _, a := range addrs {
		if err := d.policy.check(a); err != nil {
			return nil, fmt.Errorf("%s: %w", host, err)
		}
	}
	return addrs, nil
}
