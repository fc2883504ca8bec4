package picture

import (
	"strings"
	"testing"
)

// FuzzChain: whatever the hops say, a chain is well-formed XML made only
// of the package's own elements and attributes (no caller text opens an
// element or an attribute), is the same twice, and names every hop in its
// <desc>.
func FuzzChain(f *testing.F) {
	f.Add("Token", "user:sam", "agent:infrabot", "deploy:create,deploy:read", "https://deploy.example", uint16(0b011), uint8(3))
	f.Add("<svg onload=alert(1)>", `"onload="`, "</text><script>", "a&b,<c>,]]>", "javascript:alert(1)", uint16(0), uint8(12))
	f.Add("\x00\x01\u202e", "a\xffb", "\ufffe\uffff", "\n,\t,\r", "\x1b[31m", uint16(0xffff), uint8(1))
	f.Add("", "", "", "", "", uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, title, a, b, scopes, audience string, granted uint16, n uint8) {
		var hops []Hop
		for i := range int(n % 14) {
			h := Hop{ID: a, Kind: KindAgent, Scopes: strings.Split(scopes, ","), Audience: audience, Granted: granted&(1<<i) != 0}
			switch i % 3 {
			case 0:
				h.Kind = KindPerson
			case 1:
				h.ID = b
			case 2:
				h.Kind = b
			}
			hops = append(hops, h)
		}
		out := Chain(title, hops)
		root, err := parseSVG(string(out))
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
		if err := checkShape(root); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if again := Chain(title, hops); again != out {
			t.Fatal("two drawings of one chain differ")
		}
		for _, h := range hops {
			if !strings.Contains(desc(root), clean(h.ID)) {
				t.Fatalf("<desc> %q does not name %q", desc(root), clean(h.ID))
			}
		}
	})
}

// FuzzRefusalBars: whatever the labels and counts, the bars are
// well-formed XML made only of the package's own elements and attributes,
// and the same twice.
func FuzzRefusalBars(f *testing.F) {
	f.Add("Refusals", "agent:infrabot", int64(3), int64(120), uint8(2))
	f.Add("<b>", "</text><script>alert(1)</script>", int64(-1), int64(0), uint8(7))
	f.Add("\x00", "\xff\u202e", int64(1<<62), int64(1<<62+1), uint8(1))
	f.Fuzz(func(t *testing.T, title, label string, refused, total int64, n uint8) {
		var bars []Bar
		for i := range int(n % 8) { // MaxBars and beyond: TestRefusalBarsAtMostMaxBars
			bars = append(bars, Bar{Label: label, Refused: int(refused) + i, Total: int(total)})
		}
		out := RefusalBars(title, bars)
		root, err := parseSVG(string(out))
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
		if err := checkShape(root); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if again := RefusalBars(title, bars); again != out {
			t.Fatal("two drawings of one set of bars differ")
		}
	})
}
