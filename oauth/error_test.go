package oauth

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   ErrorCode
		wantHeader string
	}{
		{name: "invalid_request", err: InvalidRequest("r", "bad", nil), wantStatus: 400, wantCode: ErrInvalidRequest},
		{name: "invalid_client", err: InvalidClient("r", "who", nil), wantStatus: 401, wantCode: ErrInvalidClient, wantHeader: "WWW-Authenticate"},
		{name: "unavailable", err: Unavailable("store", errors.New("secret dsn")), wantStatus: 503, wantCode: ErrTemporarilyUnavailable, wantHeader: "Retry-After"},
		{name: "unknown-error-is-server-error", err: errors.New("panic: /home/x.go:12"), wantStatus: 500, wantCode: ErrServerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, tc.err)
			if w.Code != tc.wantStatus {
				t.Errorf("status = %d", w.Code)
			}
			body := w.Body.String()
			if !strings.Contains(body, `"error":"`+string(tc.wantCode)+`"`) {
				t.Errorf("body = %s", body)
			}
			if strings.Contains(body, "secret dsn") || strings.Contains(body, "x.go") {
				t.Errorf("internal cause leaked: %s", body)
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v", w.Header())
			}
			if tc.wantHeader != "" && w.Header().Get(tc.wantHeader) == "" {
				t.Errorf("missing %s", tc.wantHeader)
			}
		})
	}
}

func TestCleanDescription(t *testing.T) {
	got := CleanDescription("a \"quoted\"\r\n\tbad\\ \u00e9 text")
	if got != "a quotedbad  text" {
		t.Errorf("got %q", got)
	}
	if len(CleanDescription(strings.Repeat("x", 1000))) > 200 {
		t.Error("not capped")
	}
}
