// Package browsertest drives Mandate's pages in a real, headless Chromium
// for tests, and checks their accessibility with axe-core. It is imported
// only by tests.
//
// New starts a browser for one test (skipping when no Chromium is found,
// failing instead when CI=true) and closes it when the test ends; the
// Browser's helpers (Navigate, Click, ClickText, Type, Check, Uncheck,
// Submit, Text, URL, Cookies, Response, Screenshot) fail the test on error
// and give up on any step after the Browser's Timeout. CheckAccessibility
// runs axe-core, a pinned release fetched once from the npm registry,
// verified against its published integrity and cached, and fails the test
// on any serious or critical violation.
package browsertest
