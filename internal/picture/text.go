package picture

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/mandate-dev/mandate/internal/termsafe"
)

// clean returns caller text fit for the picture: controls, line breaks,
// bidirectional and other invisible characters and invalid UTF-8 written
// as backslash escapes (termsafe.String), so that what is drawn is what
// the text says, and no character that XML forbids reaches the output.
// The markup characters (<, &, quotes) are left to html/template.
func clean(s string) string { return termsafe.String(s) }

// columns is how many monospaced columns r takes: two for the wide
// scripts and emoji, one otherwise. It is an estimate that keeps wide text
// inside its box; it need not be exact.
func columns(r rune) int {
	switch {
	case unicode.Is(unicode.Han, r), unicode.Is(unicode.Hangul, r),
		unicode.Is(unicode.Hiragana, r), unicode.Is(unicode.Katakana, r),
		r >= 0x1F300 && r <= 0x1FAFF, r >= 0xFF00 && r <= 0xFF60:
		return 2
	}
	return 1
}

// widthOf is how many columns s takes.
func widthOf(s string) int {
	n := 0
	for _, r := range s {
		n += columns(r)
	}
	return n
}

// shorten returns s cut to at most max columns, ending in an ellipsis
// when it was cut. max is at least 1.
func shorten(s string, max int) string {
	if widthOf(s) <= max {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n+columns(r) > max-1 {
			break
		}
		b.WriteRune(r)
		n += columns(r)
	}
	b.WriteString("…")
	return b.String()
}

// wrap lays out items, joined by ", ", in lines of at most max columns,
// breaking after a comma where it can and inside an item only when the
// item alone is wider than a line. At most maxLines lines (at least 1) are
// returned; when items are left over, the last line says how many were
// not shown whole.
func wrap(items []string, max, maxLines int) []string {
	var lines []string
	var whole []int // whole[k]: how many items end on lines[:k+1]
	cur := ""
	for i, it := range items {
		piece := it
		if i < len(items)-1 {
			piece += ","
		}
		switch {
		case cur == "":
			cur = piece
		case widthOf(cur)+1+widthOf(piece) <= max:
			cur += " " + piece
		default:
			lines, whole = append(lines, cur), append(whole, i)
			cur = piece
		}
		for widthOf(cur) > max {
			head, tail := cutColumns(cur, max)
			lines, whole = append(lines, head), append(whole, i)
			cur = tail
		}
	}
	if cur != "" {
		lines, whole = append(lines, cur), append(whole, len(items))
	}
	if len(lines) <= maxLines {
		return lines
	}
	kept := lines[: maxLines-1 : maxLines-1]
	left := len(items)
	if maxLines > 1 {
		left -= whole[maxLines-2]
	}
	return append(kept, moreText(left))
}

// moreText is the line that stands for n items left out of a box.
func moreText(n int) string {
	return "… and " + strconv.Itoa(n) + " more"
}

// wrapText lays out s in lines of at most max columns, cut anywhere; when
// it takes more than maxLines lines, the last one shown ends in an
// ellipsis.
func wrapText(s string, max, maxLines int) []string {
	var lines []string
	for s != "" && len(lines) < maxLines {
		var head string
		head, s = cutColumns(s, max)
		lines = append(lines, head)
	}
	if s != "" {
		last := len(lines) - 1
		lines[last] = shorten(lines[last]+s, max)
	}
	return lines
}

// cutColumns splits s after its first max columns (at least one rune).
func cutColumns(s string, max int) (string, string) {
	n := 0
	for i, r := range s {
		if n+columns(r) > max && i > 0 {
			return s[:i], s[i:]
		}
		n += columns(r)
	}
	return s, ""
}
