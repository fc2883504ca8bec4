// Package browsertest drives Mandate's pages in a real, headless Chromium
// for tests, and checks their accessibility with axe-core. It is imported
// only by tests.
//
// New starts a browser for one test (skipping when no Chromium is found,
// failing instead when CI=true) and closes it when the test ends; the
// Browser's helpers fail the test on error and give up on any step after
// the Browser's Timeout. CheckAccessibility runs axe-core, a pinned release
// fetched once from the npm registry, verified against its published
// integrity and cached in the user's cache folder, and fails the test on
// any serious or critical violation. A flow reads:
//
//	b := browsertest.New(t)
//	b.Navigate(t, srv.URL+"/authorize?...")
//	b.CheckAccessibility(t, "sign-in")
//	b.Type(t, "#username", "sam")
//	b.Type(t, "#password", "…")
//	b.ClickText(t, "Sign in")             // waits for the page it loads
//	b.Uncheck(t, `input[value="deploy:create"]`)
//	b.ClickText(t, "Allow")
//	got := b.Response(t).Header.Get("Content-Security-Policy")
//	session := b.Cookie(t, "mandate_session") // Secure, HTTPOnly, SameSite, Path
//	b.Screenshot(t, "consent")            // screenshots/<test>-consent.png
package browsertest
