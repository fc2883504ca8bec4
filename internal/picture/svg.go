package picture

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
)

// The palette: dark ink on light grounds, fixed, inside a white card, so
// that a picture reads the same on a light page and a dark one. Every text
// colour has at least 4.5:1 against every ground it is drawn on, and the
// bar and the borders at least 3:1 against theirs (WCAG 2.2 1.4.3 and
// 1.4.11); TestPaletteContrast checks each pair.
const (
	colourCard        = "#ffffff" // the card every picture is drawn on
	colourCardBorder  = "#767676"
	colourInk         = "#1f1f1f" // text
	colourMuted       = "#4a4a4a" // secondary text: kinds, scopes' labels
	colourPerson      = "#e8f0fb" // a person's box
	colourPersonLine  = "#1d4e89"
	colourAgent       = "#f2f2f2" // an agent's box
	colourAgentLine   = "#4a4a4a"
	colourRefused     = "#fdeceb" // a refused hop's box
	colourRefusedLine = "#a4161a" // its dashed border, and the word refused
	colourArrow       = "#4a4a4a"
	colourTrack       = "#ffffff" // a bar's whole length
	colourTrackLine   = "#767676"
	colourBar         = "#a4161a" // the refused part of a bar
)

// Sizes of the drawing, in user units of the viewBox. The font is
// monospaced so that a line's width follows from its length and lines can
// be wrapped and shortened here, the same way on every run.
const (
	width      = 480 // of every picture
	margin     = 16  // between the card's edge and what is on it
	fontSize   = 13
	headSize   = 15  // of the heading
	charWidth  = 7.8 // 0.6 em, a monospaced font's advance
	lineHeight = 18
)

// charsIn is how many characters of the font fit in w units.
func charsIn(w int) int { return int(float64(w) / charWidth) }

// doc is one picture: its text alternative and its shapes, in painting
// order.
type doc struct {
	ID     string // prefix of the element ids, unique to the input
	Height int
	Title  string // the accessible name, and the heading drawn on top
	Desc   string // the whole picture in words
	Shown  string // the heading as drawn (Title shortened)
	Groups []group
}

// group is a part of the picture with its own tooltip (Tip, when set).
type group struct {
	Tip      string
	Rects    []rect
	Lines    []line
	Polygons []polygon
	Texts    []text
}

// rect is a box, a bar or a bar's track.
type rect struct {
	X, Y, W, H   int
	Fill, Stroke string
	Radius       int // of the corners
	Dashed       bool
	StrokeWidth  int
}

// line is an arrow's shaft.
type line struct {
	X1, Y1, X2, Y2 int
	Stroke         string
	Dashed         bool
}

// polygon is an arrow's head.
type polygon struct {
	Points string // built here from numbers, never from caller text
	Fill   string
}

// text is one line of text; Text is caller text, cleaned.
type text struct {
	X, Y   int
	Text   string
	Fill   string
	Bold   bool
	Anchor string // "" (start) or "end"
}

// svgText is the template of every picture. html/template escapes each
// value for where it stands (text, attribute), so that no caller text can
// open an element or an attribute; the values have already passed through
// clean, so that none holds a character XML forbids.
const svgText = `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{{.ID}}-title {{.ID}}-desc"` +
	` viewBox="0 0 {{width}} {{.Height}}" width="100%"` +
	` font-family="ui-monospace, Menlo, Consolas, monospace" font-size="{{fontSize}}">
<title id="{{.ID}}-title">{{.Title}}</title>
<desc id="{{.ID}}-desc">{{.Desc}}</desc>
<rect x="0.5" y="0.5" width="{{cardWidth}}" height="{{minus .Height 1}}" rx="8" fill="` + colourCard + `" stroke="` + colourCardBorder + `"/>
<text x="{{margin}}" y="28" fill="` + colourInk + `" font-weight="bold" font-size="{{headSize}}">{{.Shown}}</text>
{{range .Groups}}<g>{{with .Tip}}<title>{{.}}</title>{{end}}
{{range .Rects}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="{{.Radius}}" fill="{{.Fill}}" stroke="{{.Stroke}}" stroke-width="{{.StrokeWidth}}"{{if .Dashed}} stroke-dasharray="6 4"{{end}}/>
{{end}}{{range .Lines}}<line x1="{{.X1}}" y1="{{.Y1}}" x2="{{.X2}}" y2="{{.Y2}}" stroke="{{.Stroke}}" stroke-width="2"{{if .Dashed}} stroke-dasharray="6 4"{{end}}/>
{{end}}{{range .Polygons}}<polygon points="{{.Points}}" fill="{{.Fill}}"/>
{{end}}{{range .Texts}}{{if .Text}}<text x="{{.X}}" y="{{.Y}}" fill="{{.Fill}}"{{if .Bold}} font-weight="bold"{{end}}{{if .Anchor}} text-anchor="{{.Anchor}}"{{end}} xml:space="preserve">{{.Text}}</text>
{{end}}{{end}}</g>
{{end}}</svg>`

// svgTemplate is svgText parsed, once: parsing and escaping the template
// took most of a picture's time (0.8 ms of a three-hop chain). It is only
// read after the package is initialised, and html/template's Execute is
// safe for concurrent use.
var svgTemplate = template.Must(template.New("svg").Funcs(template.FuncMap{
	"width":     func() int { return width },
	"cardWidth": func() int { return width - 1 },
	"fontSize":  func() int { return fontSize },
	"headSize":  func() int { return headSize },
	"margin":    func() int { return margin },
	"minus":     func(a, b int) int { return a - b },
}).Parse(svgText))

// render writes d through svgTemplate.
func render(d doc) template.HTML {
	var b bytes.Buffer
	if err := svgTemplate.Execute(&b, d); err != nil {
		// The template and its data are this package's own; an error is
		// a bug here, shown as such rather than as half a picture.
		return template.HTML(template.HTMLEscapeString(fmt.Sprintf("picture: %v", err)))
	}
	return template.HTML(b.String()) // #nosec G203 -- built by html/template above
}

// idFor returns an element id prefix that depends only on kind and the
// words of the picture, so that the output is the same for the same input
// and two different pictures on one page do not share ids. The hash is
// SHA-256 (128 bits of it), not a faster one: the words come from callers,
// and a chain named to collide with another would borrow its <desc>,
// since aria-labelledby finds the first element of an id on the page.
func idFor(kind, words string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + words))
	return "picture-" + kind + "-" + hex.EncodeToString(sum[:16])
}
