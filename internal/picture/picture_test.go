package picture

import (
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// node is an element of a parsed picture.
type node struct {
	Name     string
	Attrs    map[string]string
	Text     string // the character data directly inside, decoded
	Children []*node
}

// parse parses out as XML, strictly, failing t when it is not well formed
// or holds anything but one <svg> element.
func parse(t testing.TB, out template.HTML) *node {
	t.Helper()
	root, err := parseSVG(string(out))
	if err != nil {
		t.Fatalf("not well-formed XML: %v\n%s", err, out)
	}
	return root
}

func parseSVG(s string) (*node, error) {
	dec := xml.NewDecoder(strings.NewReader(s))
	dec.Strict = true
	var stack []*node
	var root *node
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{Name: tok.Name.Local, Attrs: map[string]string{}}
			for _, a := range tok.Attr {
				name := a.Name.Local
				switch a.Name.Space {
				case "", "xmlns":
				case "http://www.w3.org/XML/1998/namespace":
					name = "xml:" + name
				default:
					name = a.Name.Space + ":" + name
				}
				n.Attrs[name] = a.Value
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("more than one root element")
				}
				root = n
			} else {
				parent := stack[len(stack)-1]
				parent.Children = append(parent.Children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if strings.TrimSpace(string(tok)) != "" {
					return nil, fmt.Errorf("text outside the root: %q", tok)
				}
				continue
			}
			stack[len(stack)-1].Text += string(tok)
		case xml.ProcInst, xml.Directive:
			return nil, fmt.Errorf("unexpected %T", tok)
		}
	}
	if root == nil || root.Name != "svg" {
		return nil, errors.New("no <svg> root")
	}
	return root, nil
}

// walk calls f on n and every element below it, in document order.
func (n *node) walk(f func(*node)) {
	f(n)
	for _, c := range n.Children {
		c.walk(f)
	}
}

// all returns the elements named name, in document order.
func (n *node) all(name string) []*node {
	var out []*node
	n.walk(func(m *node) {
		if m.Name == name {
			out = append(out, m)
		}
	})
	return out
}

// texts returns the text of every <text> element, in document order.
func (n *node) texts() []string {
	var out []string
	for _, m := range n.all("text") {
		out = append(out, m.Text)
	}
	return out
}

// allowed is every element and attribute the package writes: anything
// else in an output came from caller text.
func allowed() map[string][]string {
	return map[string][]string{
		"svg":     {"xmlns", "role", "aria-labelledby", "viewBox", "width", "font-family", "font-size"},
		"title":   {"id"},
		"desc":    {"id"},
		"g":       nil,
		"rect":    {"x", "y", "width", "height", "rx", "fill", "stroke", "stroke-width", "stroke-dasharray"},
		"line":    {"x1", "y1", "x2", "y2", "stroke", "stroke-width", "stroke-dasharray"},
		"polygon": {"points", "fill"},
		"text":    {"x", "y", "fill", "font-weight", "font-size", "text-anchor", "xml:space"},
	}
}

// checkShape reports the first element or attribute of root the package
// does not write, the first attribute value that is not of the package's
// making, and whether the accessible name and description are wired.
func checkShape(root *node) error {
	var problem error
	ids := map[string]string{}
	allowed := allowed()
	root.walk(func(n *node) {
		attrs, ok := allowed[n.Name]
		if !ok && problem == nil {
			problem = fmt.Errorf("element <%s> is not one the package writes", n.Name)
		}
		for a, v := range n.Attrs {
			if !containsString(attrs, a) && problem == nil {
				problem = fmt.Errorf("attribute %s=%q on <%s> is not one the package writes", a, v, n.Name)
			}
			// Every attribute value is the package's own: numbers,
			// colours, ids of its making, keywords. None holds markup.
			if strings.ContainsAny(v, `<>"&`) && problem == nil {
				problem = fmt.Errorf("attribute %s=%q on <%s> holds markup", a, v, n.Name)
			}
		}
		if id, ok := n.Attrs["id"]; ok {
			ids[id] = n.Name
		}
		if n.Name != "text" && n.Name != "title" && n.Name != "desc" && strings.TrimSpace(n.Text) != "" && problem == nil {
			problem = fmt.Errorf("text %q inside <%s>", n.Text, n.Name)
		}
	})
	if problem != nil {
		return problem
	}
	if root.Attrs["role"] != "img" || root.Attrs["width"] != "100%" || !strings.HasPrefix(root.Attrs["viewBox"], "0 0 480 ") {
		return fmt.Errorf("root attributes %v", root.Attrs)
	}
	refs := strings.Fields(root.Attrs["aria-labelledby"])
	if len(refs) != 2 || ids[refs[0]] != "title" || ids[refs[1]] != "desc" {
		return fmt.Errorf("aria-labelledby=%q does not name the <title> and the <desc> (ids %v)", root.Attrs["aria-labelledby"], ids)
	}
	if len(root.Children) < 2 || root.Children[0].Name != "title" || root.Children[1].Name != "desc" {
		return errors.New("the <svg> does not begin with its <title> and <desc>")
	}
	return nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// desc is the text of root's <desc>.
func desc(root *node) string { return root.Children[1].Text }

// threeHops is the chain of the walk-through: Sam, the deploy bot, and a
// reporting agent it asked for more than it could have.
func threeHops() []Hop {
	return []Hop{
		{ID: "user:sam", Kind: KindPerson, Granted: true},
		{ID: "agent:infrabot", Kind: KindAgent, Scopes: []string{"deploy:create"}, Audience: "https://deploy.example", Granted: true},
		{ID: "agent:reporter", Kind: KindAgent, Scopes: []string{"deploy:create", "deploy:delete"}, Audience: "https://deploy.example"},
	}
}

func TestChainDescribesTheChainInWords(t *testing.T) {
	root := parse(t, Chain("Token 7f3a", threeHops()))
	if err := checkShape(root); err != nil {
		t.Fatal(err)
	}
	want := "Delegation chain of 3 hops, the person first: user:sam (person)" +
		" → agent:infrabot (agent; scopes deploy:create; audience https://deploy.example)" +
		" → agent:reporter (agent; refused; scopes deploy:create, deploy:delete; audience https://deploy.example)."
	if diff := cmp.Diff(want, desc(root)); diff != "" {
		t.Errorf("<desc> (-want +got):\n%s", diff)
	}
	if got := root.Children[0].Text; got != "Token 7f3a" {
		t.Errorf("<title> = %q, want the title given", got)
	}
}

func TestChainRefusedHopIsDrawnAndNamedDifferently(t *testing.T) {
	root := parse(t, Chain("", threeHops()))
	boxes := root.all("g")
	var hopBoxes []*node
	for _, g := range boxes {
		if len(g.Children) > 0 && g.Children[0].Name == "title" {
			hopBoxes = append(hopBoxes, g)
		}
	}
	if len(hopBoxes) != 3 {
		t.Fatalf("%d boxes with a tooltip, want 3", len(hopBoxes))
	}
	for i, g := range hopBoxes {
		r := g.all("rect")[0]
		dashed := r.Attrs["stroke-dasharray"] != ""
		words := strings.Join(g.texts(), " ")
		refused := strings.Contains(words, "refused")
		if want := i == 2; dashed != want || refused != want {
			t.Errorf("hop %d: dashed %v, says refused %v; want both %v (texts %q)", i+1, dashed, refused, want, words)
		}
	}
	if got := root.Children[0].Text; got != "Delegation chain" {
		t.Errorf("<title> of an untitled chain = %q", got)
	}
}

func TestChainEscapesCallerText(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string // as ID, scope, audience, kind and title
		want string // as it reads in the <desc>, once XML is decoded
	}{
		{name: "escape/script-element", text: "<script>alert(1)</script>", want: "<script>alert(1)</script>"},
		{name: "escape/attribute-break", text: `"onload="alert(1)`, want: `"onload="alert(1)`},
		{name: "escape/single-quote", text: `' onmouseover='x`, want: `' onmouseover='x`},
		{name: "escape/entity", text: "&amp; &#60; &lt;", want: "&amp; &#60; &lt;"},
		{name: "escape/cdata-end", text: "]]><g/>", want: "]]><g/>"},
		{name: "escape/comment", text: "<!-- x --><svg onload=alert(1)>", want: "<!-- x --><svg onload=alert(1)>"},
		{name: "escape/nul-and-controls", text: "a\x00b\x01c\nd\x1b[31m", want: `a\x00b\x01c\nd\x1b[31m`},
		{name: "escape/bidi-override", text: "agent:\u202egnp.exe", want: `agent:\u202egnp.exe`},
		{name: "escape/invalid-utf8", text: "a\xffb", want: `a\xffb`},
		{name: "escape/xml-forbidden", text: "a\ufffeb\uffff", want: `a\ufffeb\uffff`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hops := []Hop{
				{ID: tc.text, Kind: KindPerson, Granted: true},
				{ID: tc.text, Kind: tc.text, Scopes: []string{tc.text, "x"}, Audience: tc.text},
			}
			out := Chain(tc.text, hops)
			root := parse(t, out)
			if err := checkShape(root); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(desc(root), tc.want) {
				t.Errorf("<desc> %q does not read %q", desc(root), tc.want)
			}
			bars := RefusalBars(tc.text, []Bar{{Label: tc.text, Refused: 1, Total: 2}})
			broot := parse(t, bars)
			if err := checkShape(broot); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(desc(broot), tc.want) {
				t.Errorf("bars' <desc> %q does not read %q", desc(broot), tc.want)
			}
			for _, raw := range []string{"<script", "onload=\"", "onmouseover='", "<!--", "<g/>"} {
				if strings.Contains(string(out)+string(bars), raw) {
					t.Errorf("output holds %q raw", raw)
				}
			}
		})
	}
}

func TestChainShortensLongIDsAndKeepsThemInTheTooltip(t *testing.T) {
	long := "agent:" + strings.Repeat("very-long-name-", 8) + "end"
	root := parse(t, Chain("", []Hop{{ID: "user:sam", Kind: KindPerson, Granted: true}, {ID: long, Kind: KindAgent, Granted: true}}))
	var drawn string
	for _, s := range root.texts() {
		if strings.HasPrefix(s, "agent:very") {
			drawn = s
		}
	}
	if !strings.HasSuffix(drawn, "…") || widthOf(drawn) > charsIn(boxW-2*boxPad) {
		t.Errorf("drawn id %q: want it shortened with an ellipsis to fit the box", drawn)
	}
	found := false
	for _, title := range root.all("title") {
		if strings.HasPrefix(title.Text, long+" (") {
			found = true
		}
	}
	if !found {
		t.Errorf("no <title> holds the whole id %q", long)
	}
}

func TestChainWrapsScopes(t *testing.T) {
	var scopes []string
	for i := range 40 {
		scopes = append(scopes, "scope-number-"+strconv.Itoa(i))
	}
	root := parse(t, Chain("", []Hop{{ID: "agent:a", Kind: KindAgent, Scopes: scopes, Granted: true}}))
	texts := root.texts()
	var lines []string
	for _, s := range texts {
		if strings.HasPrefix(s, "scope-number-") || strings.HasPrefix(s, "…") {
			lines = append(lines, s)
		}
	}
	if len(lines) != maxScopeRow {
		t.Fatalf("%d lines of scopes, want %d: %q", len(lines), maxScopeRow, lines)
	}
	shown := strings.Count(strings.Join(lines[:maxScopeRow-1], " "), "scope-number-")
	if want := moreText(40 - shown); lines[maxScopeRow-1] != want {
		t.Errorf("last line %q, want %q", lines[maxScopeRow-1], want)
	}
	for _, l := range lines {
		if widthOf(l) > charsIn(boxW-2*boxPad)-valueIndent {
			t.Errorf("line %q is wider than the box", l)
		}
	}
	if !strings.Contains(desc(root), "scope-number-39") {
		t.Error("the <desc> does not name every scope")
	}
}

func TestChainLongChains(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hops  int
		drawn int // boxes of hops
		elide bool
	}{
		{name: "ok/none", hops: 0},
		{name: "ok/one", hops: 1, drawn: 1},
		{name: "ok/ten", hops: 10, drawn: 10},
		{name: "ok/eleven-elided", hops: 11, drawn: 9, elide: true},
		{name: "ok/forty-elided", hops: 40, drawn: 9, elide: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hops := []Hop{{ID: "user:hop-1", Kind: KindPerson, Granted: true}}
			for i := 2; i <= tc.hops; i++ {
				hops = append(hops, Hop{ID: "agent:hop-" + strconv.Itoa(i), Kind: KindAgent, Scopes: []string{"s"}, Granted: true})
			}
			hops = hops[:tc.hops]
			root := parse(t, Chain("", hops))
			if err := checkShape(root); err != nil {
				t.Fatal(err)
			}
			drawn, elided := 0, false
			for _, s := range root.texts() {
				if strings.HasPrefix(s, "user:hop-") || strings.HasPrefix(s, "agent:hop-") {
					drawn++
				}
				if strings.HasSuffix(s, "not drawn") {
					elided = true
				}
			}
			if drawn != tc.drawn || elided != tc.elide {
				t.Errorf("%d hops drawn, elided %v; want %d, %v", drawn, elided, tc.drawn, tc.elide)
			}
			for i := 1; i <= tc.hops; i++ {
				if id := "hop-" + strconv.Itoa(i) + " ("; !strings.Contains(desc(root), id) {
					t.Errorf("the <desc> does not name hop %d: %q", i, desc(root))
				}
			}
			if tc.hops == 0 && desc(root) != "Delegation chain with no hops." {
				t.Errorf("<desc> of no hops = %q", desc(root))
			}
		})
	}
}

func TestSameInputSameBytes(t *testing.T) {
	a, b := Chain("t", threeHops()), Chain("t", threeHops())
	if a != b {
		t.Error("two drawings of one chain differ")
	}
	other := threeHops()
	other[2].Granted = true
	ra, rc := parse(t, a), parse(t, Chain("t", other))
	if ra.Attrs["aria-labelledby"] == rc.Attrs["aria-labelledby"] {
		t.Error("two different chains share element ids, which would clash on one page")
	}
	bars := []Bar{{Label: "agent:a", Refused: 1, Total: 3}}
	if RefusalBars("t", bars) != RefusalBars("t", bars) {
		t.Error("two drawings of one set of bars differ")
	}
}

func TestRefusalBars(t *testing.T) {
	bars := []Bar{
		{Label: "agent:infrabot", Refused: 1, Total: 4},
		{Label: "agent:idle", Refused: 0, Total: 0},
		{Label: "agent:broken", Refused: 5, Total: 3},
		{Label: "agent:negative", Refused: -1, Total: 3},
		{Label: "agent:all", Refused: 7, Total: 7},
	}
	root := parse(t, RefusalBars("Refusals this week", bars))
	if err := checkShape(root); err != nil {
		t.Fatal(err)
	}
	want := "Refusal rates, in the order shown: agent:infrabot: 25.0% refused (1 of 4 requests); agent:idle: no requests;" +
		" agent:broken: invalid counts (5 refused of 3); agent:negative: invalid counts (-1 refused of 3);" +
		" agent:all: 100.0% refused (7 of 7 requests)."
	if diff := cmp.Diff(want, desc(root)); diff != "" {
		t.Errorf("<desc> (-want +got):\n%s", diff)
	}
	rows := root.all("g")
	if len(rows) != len(bars) {
		t.Fatalf("%d rows, want %d", len(rows), len(bars))
	}
	for i, tc := range []struct {
		label, rate string
		fill        int // width of the refused part, 0 for none
	}{
		{label: "agent:infrabot", rate: "25.0% refused", fill: trackW / 4},
		{label: "agent:idle", rate: "no requests"},
		{label: "agent:broken", rate: "invalid counts"},
		{label: "agent:negative", rate: "invalid counts"},
		{label: "agent:all", rate: "100.0% refused", fill: trackW},
	} {
		texts := rows[i].texts()
		if texts[0] != tc.label || !containsString(texts, tc.rate) {
			t.Errorf("row %d reads %q, want label %q and rate %q", i, texts, tc.label, tc.rate)
		}
		rects := rows[i].all("rect")
		got := 0
		if len(rects) == 2 {
			got, _ = strconv.Atoi(rects[1].Attrs["width"])
		}
		if got != tc.fill {
			t.Errorf("row %d: refused part %d wide, want %d", i, got, tc.fill)
		}
	}
}

func TestRefusalBarsAtMostMaxBars(t *testing.T) {
	var bars []Bar
	for i := range MaxBars + 10 {
		bars = append(bars, Bar{Label: "agent:" + strconv.Itoa(i), Refused: i, Total: 100})
	}
	root := parse(t, RefusalBars("", bars))
	if got := len(root.all("g")); got != MaxBars+1 {
		t.Errorf("%d groups, want %d bars and the line that says how many more", got, MaxBars)
	}
	if !strings.Contains(strings.Join(root.texts(), "\n"), "… and 10 more not drawn") {
		t.Error("no line says 10 more were not drawn")
	}
	if d := desc(root); !strings.Contains(d, "agent:59: 59.0% refused") || !strings.HasSuffix(d, "Only the first 50 are drawn.") {
		t.Errorf("<desc> %q does not name every bar or say how many are drawn", d)
	}
	if d := desc(parse(t, RefusalBars("", nil))); d != "Refusal rates: no agents." {
		t.Errorf("<desc> of no bars = %q", d)
	}
}

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		refused, total int
		want           string
	}{
		{0, 5, "0.0%"},
		{1, 3, "33.3%"},
		{2, 3, "66.7%"},
		{5, 5, "100.0%"},
		{1, 10000, "<0.1%"},
		{9999, 10000, ">99.9%"},
		{math.MaxInt64 - 1, math.MaxInt64, ">99.9%"},
	} {
		if got := percent(tc.refused, tc.total); got != tc.want {
			t.Errorf("percent(%d, %d) = %q, want %q", tc.refused, tc.total, got, tc.want)
		}
	}
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		items    []string
		max, n   int
		want     []string
		wantText []string // wrapText of the items joined, when set
	}{
		{name: "ok/one-line", items: []string{"a", "b"}, max: 10, n: 4, want: []string{"a, b"}},
		{name: "ok/break-after-comma", items: []string{"aaaa", "bbbb", "cccc"}, max: 11, n: 4, want: []string{"aaaa, bbbb,", "cccc"}},
		{name: "ok/cut-a-long-item", items: []string{"abcdefghijkl"}, max: 5, n: 4, want: []string{"abcde", "fghij", "kl"}},
		{name: "ok/more-than-fit", items: []string{"a", "b", "c", "d", "e"}, max: 3, n: 3, want: []string{"a,", "b,", "… and 3 more"}},
		{name: "ok/wide-runes", items: []string{"日本語日本語"}, max: 6, n: 4, want: []string{"日本語", "日本語"}},
		{name: "ok/none", items: nil, max: 5, n: 4, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, wrap(tc.items, tc.max, tc.n)); diff != "" {
				t.Errorf("wrap (-want +got):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff([]string{"abcde", "fghi…"}, wrapText("abcdefghijklmn", 5, 2)); diff != "" {
		t.Errorf("wrapText (-want +got):\n%s", diff)
	}
}

// TestPaletteContrast: every text colour against every ground it is drawn
// on has WCAG AA contrast for text (4.5:1), and every line and bar against
// its ground the contrast for graphics (3:1).
func TestPaletteContrast(t *testing.T) {
	for _, tc := range []struct {
		fg, bg string
		min    float64
	}{
		{colourInk, colourCard, 4.5}, {colourInk, colourPerson, 4.5}, {colourInk, colourAgent, 4.5}, {colourInk, colourRefused, 4.5},
		{colourMuted, colourCard, 4.5}, {colourMuted, colourPerson, 4.5}, {colourMuted, colourAgent, 4.5}, {colourMuted, colourRefused, 4.5},
		{colourRefusedLine, colourRefused, 4.5}, // the word "refused"
		{colourPersonLine, colourCard, 3}, {colourPersonLine, colourPerson, 3},
		{colourAgentLine, colourCard, 3}, {colourAgentLine, colourAgent, 3},
		{colourRefusedLine, colourCard, 3},
		{colourArrow, colourCard, 3},
		{colourTrackLine, colourCard, 3}, {colourTrackLine, colourTrack, 3},
		{colourBar, colourTrack, 3}, {colourBar, colourCard, 3},
	} {
		if got := contrast(t, tc.fg, tc.bg); got < tc.min {
			t.Errorf("%s on %s: contrast %.2f:1, want at least %.1f:1", tc.fg, tc.bg, got, tc.min)
		}
	}
}

// contrast is the WCAG 2 contrast ratio of two #rrggbb colours.
func contrast(t *testing.T, a, b string) float64 {
	la, lb := luminance(t, a), luminance(t, b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// luminance is the WCAG 2 relative luminance of a #rrggbb colour.
func luminance(t *testing.T, c string) float64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(c, "#"), 16, 32)
	if err != nil || len(c) != 7 {
		t.Fatalf("colour %q: %v", c, err)
	}
	channel := func(x uint64) float64 {
		s := float64(x) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*channel(v>>16&0xff) + 0.7152*channel(v>>8&0xff) + 0.0722*channel(v&0xff)
}
