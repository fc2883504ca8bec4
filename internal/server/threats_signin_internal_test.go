package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestSecureSessionCookie: with an https issuer the session cookie is
// __Host-mandate_session, Secure, HttpOnly, SameSite=Lax, Path=/ and
// without a Domain, and a cookie without the prefix is not read; with an
// http issuer (a loopback development server) it has no prefix.
func TestSecureSessionCookie(t *testing.T) {
	for _, c := range []struct {
		issuer, name string
		secure       bool
	}{
		{"https://mandate.example", "__Host-mandate_session", true},
		{"http://127.0.0.1:8080", "mandate_session", false},
	} {
		s := &Server{cfg: Config{Issuer: c.issuer}}
		rec := httptest.NewRecorder()
		s.setCookie(rec, sessionCookie, "v1", 0)
		s.setCookie(rec, loginCookie, "", -1)
		cookies := rec.Result().Cookies()
		if len(cookies) != 2 {
			t.Fatalf("%s: cookies %v", c.issuer, cookies)
		}
		got := cookies[0]
		if got.Name != c.name || got.Secure != c.secure || !got.HttpOnly || got.SameSite != http.SameSiteLaxMode ||
			got.Path != "/" || got.Domain != "" || got.MaxAge != 0 || got.Value != "v1" {
			t.Fatalf("%s: session cookie %+v", c.issuer, got)
		}
		if gone := cookies[1]; gone.MaxAge >= 0 || gone.Secure != c.secure {
			t.Fatalf("%s: deleted cookie %+v", c.issuer, gone)
		}

		req := httptest.NewRequest(http.MethodGet, "/my/agents", nil)
		req.AddCookie(&http.Cookie{Name: "mandate_session", Value: "plain"})
		req.AddCookie(&http.Cookie{Name: "__Host-mandate_session", Value: "prefixed"})
		want := "plain"
		if c.secure {
			want = "prefixed"
		}
		if v := s.cookie(req, sessionCookie); v != want {
			t.Fatalf("%s: read %q, want %q", c.issuer, v, want)
		}
	}
}
