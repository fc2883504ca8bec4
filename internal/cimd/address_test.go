package cimd

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestAddressPolicy(t *testing.T) {
	tests := []struct {
		addr          string
		allowLoopback bool
		ok            bool
	}{
		{"93.184.215.14", false, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", false, true},
		{"::ffff:93.184.215.14", false, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"127.1.2.3", true, true},
		{"::1", false, false},
		{"::1", true, true},
		{"::ffff:127.0.0.1", false, false},
		{"::ffff:127.0.0.1", true, true},
		{"10.0.0.1", true, false},
		{"::ffff:10.0.0.1", true, false},
		{"172.16.0.1", false, false},
		{"172.31.255.255", false, false},
		{"192.168.1.1", false, false},
		{"169.254.169.254", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"fe80::1", false, false},
		{"fc00::1", false, false},
		{"fd12:3456::1", false, false},
		{"100.64.0.1", false, false},
		{"100.127.255.255", false, false},
		{"224.0.0.1", false, false},
		{"239.255.255.250", false, false},
		{"ff02::1", false, false},
		{"0.0.0.0", true, false},
		{"::", true, false},
		{"0.1.2.3", false, false},
		{"255.255.255.255", false, false},
		{"240.0.0.1", false, false},
		{"192.0.0.8", false, false},
		{"198.18.0.1", false, false},
		{"192.0.2.1", false, false},
		{"::127.0.0.1", false, false},
		{"64:ff9b::a00:1", false, false},
		{"2002:a00:1::", false, false},
		{"2001::1", false, false},
		{"2001:db8::1", false, false},
		{"fec0::1", false, false},
	}
	for _, tt := range tests {
		err := addressPolicy{allowLoopback: tt.allowLoopback}.check(netip.MustParseAddr(tt.addr))
		if (err == nil) != tt.ok {
			t.Errorf("check(%s, allowLoopback=%v) = %v, want ok=%v", tt.addr, tt.allowLoopback, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("check(%s) = %v, want ErrForbiddenAddress", tt.addr, err)
		}
	}
}

// TestControlChecksConnectAddress: the dialer's Control refuses a
// forbidden address whatever the name resolved to before, which is what
// defeats a DNS answer changed between the check and the connect.
func TestControlChecksConnectAddress(t *testing.T) {
	p := addressPolicy{}
	for _, c := range []struct{ network, address string }{
		{"tcp4", "10.0.0.1:443"},
		{"tcp4", "127.0.0.1:443"},
		{"tcp6", "[::ffff:10.0.0.1]:443"},
		{"tcp6", "[fe80::1%eth0]:443"},
		{"udp4", "93.184.215.14:443"},
		{"tcp4", "not an address"},
	} {
		if err := p.control(c.network, c.address, nil); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("control(%s, %s) = %v, want ErrForbiddenAddress", c.network, c.address, err)
		}
	}
	if err := p.control("tcp4", "93.184.215.14:443", nil); err != nil {
		t.Errorf("control(public) = %v", err)
	}
}

// TestResolveRefusesAnyForbiddenAnswer: a name with one private address
// among public ones is refused whole, before any connection.
func TestResolveRefusesAnyForbiddenAnswer(t *testing.T) {
	d := newDialer(addressPolicy{}, mapResolver{
		"mixed.example":  addrs("93.184.215.14", "10.0.0.1"),
		"public.example": addrs("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
		"empty.example":  nil,
	}, time.Second)
	if _, err := d.resolve(t.Context(), "mixed.example"); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("resolve(mixed) = %v, want ErrForbiddenAddress", err)
	}
	if _, err := d.resolve(t.Context(), "empty.example"); err == nil {
		t.Error("resolve(empty) = nil error")
	}
	if _, err := d.resolve(t.Context(), "unknown.example"); err == nil {
		t.Error("resolve(unknown) = nil error")
	}
	got, err := d.resolve(t.Context(), "public.example")
	if err != nil || len(got) != 2 {
		t.Errorf("resolve(public) = %v, %v", got, err)
	}
}
