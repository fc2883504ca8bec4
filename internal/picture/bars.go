package picture

import (
	"html/template"
	"strconv"
	"strings"
)

// Bar is one bar of RefusalBars: of Total requests by Label (an agent, or
// an agent at a version), Refused were refused.
type Bar struct {
	Label          string
	Refused, Total int
}

// MaxBars is how many bars RefusalBars draws; the description says how
// many more there were.
const MaxBars = 50

// The bars' layout, in viewBox units.
const (
	barRowH   = 44 // a label line and a bar
	barTop    = 44 // of the first row, under the heading
	trackW    = 300
	barH      = 14
	rateX     = margin + trackW + 8 // where the rate is written
	countsMax = 24                  // columns kept for "1234 of 5678 requests"
)

// RefusalBars returns an inline <svg> element with one horizontal bar per
// entry of bars, in the order given: its label (shortened with an
// ellipsis when long, whole in its tooltip), the refused requests out of
// the total, and a bar filled to that share with the percentage written
// beside it. A zero total says "no requests"; negative counts, or more
// refused than total, say "invalid counts" and draw no bar rather than a
// wrong one. At most MaxBars bars are drawn. The <title> is title
// ("Refusal rates" when empty) and the <desc> gives every bar in words.
// Caller text is escaped; the same input gives the same bytes.
// RefusalBars is safe for concurrent use.
func RefusalBars(title string, bars []Bar) template.HTML {
	title = clean(title)
	if strings.TrimSpace(title) == "" {
		title = "Refusal rates"
	}
	drawn := bars[:min(len(bars), MaxBars)]
	words := make([]string, len(bars))
	for i, b := range bars {
		words[i] = clean(b.Label) + ": " + rateWords(b)
	}
	d := doc{
		Title: title,
		Shown: shorten(title, charsIn(width-2*margin)*fontSize/headSize),
		Desc:  barsDesc(words, len(drawn)),
	}
	d.ID = idFor("bars", title+"\x00"+d.Desc)

	y := barTop
	if len(bars) == 0 {
		d.Groups = append(d.Groups, group{Texts: []text{{X: margin, Y: y + 14, Text: "No agents to show.", Fill: colourInk}}})
		d.Height = y + 14 + margin
		return render(d)
	}
	for i, b := range drawn {
		d.Groups = append(d.Groups, barRow(y, b, words[i]))
		y += barRowH
	}
	if left := len(bars) - len(drawn); left > 0 {
		d.Groups = append(d.Groups, group{Texts: []text{{X: margin, Y: y + 12, Text: "… and " + strconv.Itoa(left) + " more not drawn", Fill: colourMuted}}})
		y += lineHeight
	}
	d.Height = y + margin
	return render(d)
}

// barRow draws b with its top at y.
func barRow(y int, b Bar, words string) group {
	counts := countsText(b)
	if widthOf(counts) > countsMax {
		counts = "" // too long to draw beside the label; the tooltip has it
	}
	labelCols := charsIn(width-2*margin) - widthOf(counts) - 2
	label := clean(b.Label)
	if label == "" {
		label = "(no label)"
	}
	g := group{
		Tip: words,
		Texts: []text{
			{X: margin, Y: y + fontSize, Text: shorten(label, labelCols), Fill: colourInk, Bold: true},
			{X: width - margin, Y: y + fontSize, Text: counts, Fill: colourMuted, Anchor: "end"},
		},
	}
	top := y + fontSize + 6
	g.Rects = []rect{{X: margin, Y: top, W: trackW, H: barH, Radius: 2, Fill: colourTrack, Stroke: colourTrackLine, StrokeWidth: 1, Dashed: b.Total == 0}}
	rate := rateShort(b)
	if valid(b) && b.Total > 0 {
		w := int(float64(trackW)*float64(b.Refused)/float64(b.Total) + 0.5)
		// As the percentage, the bar is never empty when some were
		// refused nor full when some were not.
		switch {
		case b.Refused > 0 && w == 0:
			w = 1
		case b.Refused < b.Total && w == trackW:
			w = trackW - 1
		}
		if w > 0 {
			g.Rects = append(g.Rects, rect{X: margin, Y: top, W: w, H: barH, Radius: 2, Fill: colourBar, Stroke: colourBar, StrokeWidth: 1})
		}
	}
	g.Texts = append(g.Texts, text{X: rateX, Y: top + barH - 2, Text: rate, Fill: colourInk})
	return g
}

// valid reports whether b's counts can be drawn.
func valid(b Bar) bool { return b.Refused >= 0 && b.Total >= 0 && b.Refused <= b.Total }

// percent is refused/total as a percentage with one decimal, never
// rounded to 0.0% when some were refused nor to 100.0% when some were not.
// total is positive.
func percent(refused, total int) string {
	p := float64(refused) / float64(total) * 100
	s := strconv.FormatFloat(p, 'f', 1, 64)
	switch {
	case refused > 0 && s == "0.0":
		return "<0.1%"
	case refused < total && s == "100.0":
		return ">99.9%"
	}
	return s + "%"
}

// rateShort is what is written beside the bar.
func rateShort(b Bar) string {
	switch {
	case !valid(b):
		return "invalid counts"
	case b.Total == 0:
		return "no requests"
	}
	return percent(b.Refused, b.Total) + " refused"
}

// countsText is what is written above the bar's right end.
func countsText(b Bar) string {
	if !valid(b) || b.Total == 0 {
		return ""
	}
	return strconv.Itoa(b.Refused) + " of " + strconv.Itoa(b.Total)
}

// rateWords says b's rate in words.
func rateWords(b Bar) string {
	switch {
	case !valid(b):
		return "invalid counts (" + strconv.Itoa(b.Refused) + " refused of " + strconv.Itoa(b.Total) + ")"
	case b.Total == 0:
		return "no requests"
	}
	return percent(b.Refused, b.Total) + " refused (" + strconv.Itoa(b.Refused) + " of " + strconv.Itoa(b.Total) + " requests)"
}

// barsDesc is the bars in words.
func barsDesc(words []string, drawn int) string {
	if len(words) == 0 {
		return "Refusal rates: no agents."
	}
	s := "Refusal rates, in the order shown: " + strings.Join(words, "; ") + "."
	if drawn < len(words) {
		s += " Only the first " + strconv.Itoa(drawn) + " are drawn."
	}
	return s
}
