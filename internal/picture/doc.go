// Package picture draws the audit pages' pictures as inline SVG: Chain, a
// delegation chain (the person, then each agent in the order it acted,
// with its scopes and audience, a refused hop drawn dashed and named so),
// and RefusalBars, refusal rates as horizontal bars. The output is an
// <svg> element for an html/template page: every caller text passes
// through termsafe and html/template's escaping, a <title> and a <desc>
// say the whole picture in words (role="img", aria-labelledby), the
// colours are dark on a white ground so it reads on light and dark pages,
// and the same input always gives the same bytes. It draws; it serves
// nothing.
package picture
