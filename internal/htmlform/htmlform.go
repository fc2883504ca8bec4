// Package htmlform reads a page as a browser without JavaScript submits
// it: the fields a form sends (hidden and text inputs, ticked checkboxes,
// selected options; disabled fields and submit buttons left out), and the
// elements and attributes around them. The demo, the conformance run and
// the tests that play a person at Mandate's pages share it.
package htmlform

import (
	"net/url"

	"golang.org/x/net/html"
)

// Fields returns what the first form whose action is action would send;
// false when the page has no such form.
func Fields(doc *html.Node, action string) (url.Values, bool) {
	form := Find(doc, func(n *html.Node) bool { return n.Data == "form" && Attr(n, "action") == action })
	if form == nil {
		return nil, false
	}
	v := url.Values{}
	collect(form, v)
	return v, true
}

func collect(n *html.Node, v url.Values) {
	if n.Type == html.ElementNode {
		name := Attr(n, "name")
		_, checked := Has(n, "checked")
		_, disabled := Has(n, "disabled")
		switch typ := Attr(n, "type"); {
		case n.Data == "input" && name != "" && !disabled && typ != "submit" && (typ != "checkbox" || checked):
			v.Add(name, Attr(n, "value"))
		case n.Data == "option":
			if _, sel := Has(n, "selected"); sel && n.Parent != nil {
				v.Set(Attr(n.Parent, "name"), Attr(n, "value"))
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		collect(c, v)
	}
}

// Find returns the first element at or below n, in document order, that
// match accepts; nil when none does.
func Find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n == nil {
		return nil
	}
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := Find(c, match); f != nil {
			return f
		}
	}
	return nil
}

// Attr is the value of n's attribute key, "" when it has none.
func Attr(n *html.Node, key string) string { v, _ := Has(n, key); return v }

// Has returns the value of n's attribute key and whether n has it.
func Has(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}
