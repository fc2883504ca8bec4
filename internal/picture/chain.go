package picture

import (
	"html/template"
	"strconv"
	"strings"
)

// Hop is one link of a delegation chain: the person first, then each agent
// in the order they acted.
type Hop struct {
	// ID names the person or agent as the audit record does
	// ("user:sam", "agent:infrabot").
	ID string
	// Kind is "person" or "agent"; another value is drawn as an agent's
	// box, named by that value.
	Kind string
	// Scopes and Audience are what this hop was given (or asked for, when
	// refused). Either may be empty.
	Scopes   []string
	Audience string
	// Granted says the hop was allowed. The zero value draws a refused
	// hop: a picture never shows a grant the caller did not state.
	Granted bool
}

// Kinds of hop drawn in their own colours.
const (
	KindPerson = "person"
	KindAgent  = "agent"
)

// MaxDrawnHops is the longest chain Chain draws whole. A longer one is
// drawn as its first five and last four hops around a box that says which
// are left out; its description still names every hop.
const MaxDrawnHops = 10

// The chain's layout, in viewBox units.
const (
	boxX        = margin
	boxW        = width - 2*margin
	boxPad      = 12
	boxTop      = 44 // of the first box, under the heading
	arrowGap    = 28 // between two boxes
	valueIndent = 9  // columns of "audience " before a value
	maxScopeRow = 4  // lines of scopes in a box
	maxAudRow   = 2  // lines of audience in a box
)

// Chain returns an inline <svg> element that draws hops as boxes joined by
// arrows, top to bottom: for each, its kind, its ID (shortened with an
// ellipsis past one line, whole in the box's tooltip), its scopes
// (wrapped, at most four lines) and its audience. A refused hop has a
// dashed red border and says "refused". The <title> is title ("Delegation
// chain" when empty) and the <desc> says the whole chain in words. Caller
// text is escaped; the same input gives the same bytes. Chain is safe for
// concurrent use.
func Chain(title string, hops []Hop) template.HTML {
	title = clean(title)
	if strings.TrimSpace(title) == "" {
		title = "Delegation chain"
	}
	words := make([]string, len(hops))
	for i, h := range hops {
		words[i] = hopWords(h)
	}
	d := doc{
		Title: title,
		Shown: shorten(title, charsIn(boxW)*fontSize/headSize),
		Desc:  chainDesc(words),
	}
	d.ID = idFor("chain", title+"\x00"+d.Desc)

	y := boxTop
	if len(hops) == 0 {
		d.Groups = append(d.Groups, group{Texts: []text{{X: boxX, Y: y + 14, Text: "No hops to draw.", Fill: colourInk}}})
		d.Height = y + 14 + margin
		return render(d)
	}
	for k, i := range drawnHops(len(hops)) {
		if k > 0 {
			into := group{}
			refused := i >= 0 && !hops[i].Granted
			into.Lines, into.Polygons = arrow(y, refused)
			d.Groups = append(d.Groups, into)
			y += arrowGap
		}
		var g group
		if i < 0 {
			g = elisionBox(y, hops, words)
		} else {
			g = hopBox(y, i, hops[i], words[i])
		}
		d.Groups = append(d.Groups, g)
		y += g.Rects[0].H
	}
	d.Height = y + margin
	return render(d)
}

// drawnHops lists the indexes of the hops drawn, in order, with -1 for the
// box that stands for those left out.
func drawnHops(n int) []int {
	var idx []int
	if n <= MaxDrawnHops {
		for i := range n {
			idx = append(idx, i)
		}
		return idx
	}
	const head, tail = MaxDrawnHops / 2, MaxDrawnHops/2 - 1
	for i := range head {
		idx = append(idx, i)
	}
	idx = append(idx, -1)
	for i := n - tail; i < n; i++ {
		idx = append(idx, i)
	}
	return idx
}

// hopBox draws hop h, the (i+1)th, in a box whose top is at y.
func hopBox(y, i int, h Hop, words string) group {
	kind := shorten(clean(h.Kind), 20)
	if kind == "" {
		kind = "(no kind)"
	}
	fill, stroke := colourAgent, colourAgentLine
	if h.Kind == KindPerson {
		fill, stroke = colourPerson, colourPersonLine
	}
	if !h.Granted {
		fill, stroke = colourRefused, colourRefusedLine
	}
	inner := charsIn(boxW-2*boxPad) - 1 // a column spare: fonts differ
	x := boxX + boxPad
	indent := float64(valueIndent) * charWidth
	valueX := x + int(indent+0.5)

	g := group{Tip: words}
	row := 0
	add := func(t text) {
		t.Y = y + boxPad + fontSize - 2 + row*lineHeight
		g.Texts = append(g.Texts, t)
	}
	add(text{X: x, Text: strconv.Itoa(i+1) + " · " + kind, Fill: colourMuted})
	if !h.Granted {
		add(text{X: boxX + boxW - boxPad, Text: "✕ refused", Fill: colourRefusedLine, Bold: true, Anchor: "end"})
	}
	row++
	id := clean(h.ID)
	if id == "" {
		id = "(no id)"
	}
	add(text{X: x, Text: shorten(id, inner), Fill: colourInk, Bold: true})
	row++
	field := func(label string, lines []string) {
		for k, l := range lines {
			if k == 0 {
				add(text{X: x, Text: label, Fill: colourMuted})
			}
			add(text{X: valueX, Text: l, Fill: colourInk})
			row++
		}
	}
	field("scopes", wrap(cleanAll(h.Scopes), inner-valueIndent, maxScopeRow))
	if a := clean(h.Audience); a != "" {
		field("audience", wrapText(a, inner-valueIndent, maxAudRow))
	}
	r := rect{X: boxX, Y: y, W: boxW, H: 2*boxPad + row*lineHeight - (lineHeight - fontSize), Radius: 6, Fill: fill, Stroke: stroke, StrokeWidth: 2, Dashed: !h.Granted}
	g.Rects = []rect{r}
	return g
}

// elisionBox stands for the hops not drawn, naming them in its tooltip.
func elisionBox(y int, hops []Hop, words []string) group {
	idx := drawnHops(len(hops))
	var from, to int
	for k, i := range idx {
		if i < 0 {
			from, to = idx[k-1]+1, idx[k+1]-1
		}
	}
	label := "… hops " + strconv.Itoa(from+1) + " to " + strconv.Itoa(to+1) + " not drawn"
	h := 2*boxPad + fontSize
	return group{
		Tip:   strings.Join(words[from:to+1], " → "),
		Rects: []rect{{X: boxX, Y: y, W: boxW, H: h, Radius: 6, Fill: colourCard, Stroke: colourAgentLine, StrokeWidth: 1, Dashed: true}},
		Texts: []text{{X: boxX + boxPad, Y: y + boxPad + fontSize - 2, Text: label, Fill: colourMuted}},
	}
}

// arrow draws the arrow from the box that ends at y to the next one,
// dashed when the next hop was refused.
func arrow(y int, refused bool) ([]line, []polygon) {
	cx := width / 2
	tip := y + arrowGap - 1
	colour := colourArrow
	if refused {
		colour = colourRefusedLine
	}
	l := line{X1: cx, Y1: y + 1, X2: cx, Y2: tip - 7, Stroke: colour, Dashed: refused}
	p := polygon{Points: points(cx-6, tip-8, cx+6, tip-8, cx, tip), Fill: colour}
	return []line{l}, []polygon{p}
}

// points is a polygon's points attribute.
func points(xy ...int) string {
	var b strings.Builder
	for i, v := range xy {
		if i > 0 {
			if i%2 == 0 {
				b.WriteByte(' ')
			} else {
				b.WriteByte(',')
			}
		}
		b.WriteString(strconv.Itoa(v))
	}
	return b.String()
}

// hopWords says h in words: "agent:infrabot (agent; scopes deploy:create;
// audience https://deploy.example)", with "refused" after the kind when it
// was.
func hopWords(h Hop) string {
	id := clean(h.ID)
	if id == "" {
		id = "(no id)"
	}
	kind := clean(h.Kind)
	if kind == "" {
		kind = "no kind"
	}
	parts := []string{kind}
	if !h.Granted {
		parts = append(parts, "refused")
	}
	if len(h.Scopes) > 0 {
		parts = append(parts, "scopes "+strings.Join(cleanAll(h.Scopes), ", "))
	}
	if a := clean(h.Audience); a != "" {
		parts = append(parts, "audience "+a)
	}
	return id + " (" + strings.Join(parts, "; ") + ")"
}

// chainDesc is the chain in words, from the words of each hop.
func chainDesc(words []string) string {
	switch len(words) {
	case 0:
		return "Delegation chain with no hops."
	case 1:
		return "Delegation chain of 1 hop: " + words[0] + "."
	}
	s := "Delegation chain of " + strconv.Itoa(len(words)) + " hops, the person first: " + strings.Join(words, " → ") + "."
	if len(words) > MaxDrawnHops {
		idx := drawnHops(len(words))
		for k, i := range idx {
			if i < 0 {
				s += " Hops " + strconv.Itoa(idx[k-1]+2) + " to " + strconv.Itoa(idx[k+1]) + " are not drawn."
			}
		}
	}
	return s
}

// cleanAll is clean of each of ss.
func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}
