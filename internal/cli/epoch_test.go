package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/tokenstate"
	"github.com/mandate-dev/mandate/oauth"
)

// epochFixture is a data directory provisioned from issueSample, in the
// test's working directory.
type epochFixture struct {
	t   *testing.T
	cfg *config.Config
}

func newEpochFixture(t *testing.T) *epochFixture {
	t.Helper()
	t.Chdir(t.TempDir())
	if err := os.WriteFile("mandate.yaml", []byte(issueSample), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("mandate.yaml")
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	f := &epochFixture{t: t, cfg: cfg}
	if code, _, stderr := f.run("config", "apply", "--config", "mandate.yaml"); code != 0 {
		t.Fatalf("config apply: exit %d: %s", code, stderr)
	}
	return f
}

// run runs the mandate command and returns its exit code and output.
func (f *epochFixture) run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// with opens the store the configuration selects for the length of fn, as
// a running instance would, while no command holds it.
func (f *epochFixture) with(fn func(store.Store)) {
	f.t.Helper()
	s, err := app.OpenStore(f.t.Context(), f.cfg)
	if err != nil {
		f.t.Fatalf("openStore: %v", err)
	}
	defer s.Close()
	fn(s)
}

// issue records a client_credentials token of agent:infrabot issued at iat,
// as the token endpoint does.
func (f *epochFixture) issue(jti string, iat time.Time) {
	f.t.Helper()
	f.with(func(s store.Store) {
		err := s.Commit(f.t.Context(), store.Batch{Tokens: []store.IssuedToken{{
			JTI: jti, GrantType: oauth.GrantClientCredentials, Subject: "agent:infrabot", ClientID: "agent:infrabot",
			Scopes: []string{"monitoring:read"}, IssuedAt: iat, ExpiresAt: iat.Add(10 * time.Minute),
		}}})
		if err != nil {
			f.t.Fatalf("Commit: %v", err)
		}
	})
}

// check returns the reason the token is inactive, or "" when it is in force.
func (f *epochFixture) check(jti string) string {
	f.t.Helper()
	var reason string
	f.with(func(s store.Store) {
		c := &tokenstate.Checker{Store: s, Now: time.Now}
		_, err := c.CheckJTI(f.t.Context(), jti)
		var ie *tokenstate.InactiveError
		switch {
		case errors.As(err, &ie):
			reason = ie.Reason
		case err != nil:
			f.t.Fatalf("CheckJTI(%s): %v", jti, err)
		}
	})
	return reason
}

// TestAdvanceEpoch is the restore procedure of docs/deploy.md (THREATS T56):
// a token issued before `mandate store advance-epoch` is refused, one issued
// after it is in force, and the advance is audited.
func TestAdvanceEpoch(t *testing.T) {
	f := newEpochFixture(t)
	f.issue("tok-before", time.Now().Add(-time.Minute))
	if r := f.check("tok-before"); r != "" {
		t.Fatalf("tok-before is inactive (%s) before the advance", r)
	}

	code, stdout, stderr := f.run("store", "advance-epoch", "--config", "mandate.yaml")
	if code != 0 {
		t.Fatalf("advance-epoch: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "not-before epoch: ") {
		t.Errorf("advance-epoch printed %q, want the new epoch", stdout)
	}
	f.issue("tok-after", time.Now())

	if r := f.check("tok-before"); r != tokenstate.ReasonRestoredEpoch {
		t.Errorf("tok-before after the advance: reason %q, want %q", r, tokenstate.ReasonRestoredEpoch)
	}
	if r := f.check("tok-after"); r != "" {
		t.Errorf("tok-after is inactive (%s), want it in force", r)
	}
	f.with(func(s store.Store) {
		evs, err := s.QueryEvents(t.Context(), store.EventFilter{Action: audit.ActionEpochAdvanced})
		if err != nil {
			t.Fatalf("QueryEvents: %v", err)
		}
		if len(evs) != 1 || evs[0].Performer != cliPerformer || evs[0].Result != audit.ResultOK {
			t.Errorf("audit events for the advance = %+v, want one, ok, performed by %q", evs, cliPerformer)
		}
	})
}

func TestAdvanceEpochArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		// before runs first, when set, to put an epoch in place.
		before     []string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "ok/now", args: nil, wantStdout: "not-before epoch: "},
		{name: "ok/at", args: []string{"--at", "2025-01-02T03:04:05.123456Z"},
			wantStdout: "not-before epoch: 2025-01-02T03:04:05.123456Z"},
		{name: "ok/at-with-offset", args: []string{"--at", "2025-01-02T04:04:05+01:00"},
			wantStdout: "not-before epoch: 2025-01-02T03:04:05Z"},
		{name: "ok/earlier-keeps-the-epoch", before: []string{"--at", "2025-01-02T03:04:05Z"},
			args: []string{"--at", "2024-01-01T00:00:00Z"}, wantStdout: "already later: 2025-01-02T03:04:05Z (unchanged)"},
		{name: "fail/future", args: []string{"--at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
			wantCode: 2, wantStderr: "in the future"},
		{name: "fail/malformed", args: []string{"--at", "yesterday"}, wantCode: 2, wantStderr: "RFC 3339"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newEpochFixture(t)
			if tc.before != nil {
				if code, _, stderr := f.run(append([]string{"store", "advance-epoch", "--config", "mandate.yaml"}, tc.before...)...); code != 0 {
					t.Fatalf("first advance: exit %d: %s", code, stderr)
				}
			}
			code, stdout, stderr := f.run(append([]string{"store", "advance-epoch", "--config", "mandate.yaml"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.wantCode, stderr)
			}
			if !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout, tc.wantStdout)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tc.wantStderr)
			}
			if tc.wantCode != 0 {
				f.with(func(s store.Store) {
					if nb, err := s.NotBefore(t.Context()); err != nil || !nb.IsZero() {
						t.Errorf("NotBefore after a refused advance = %v, %v; want the zero time", nb, err)
					}
				})
			}
		})
	}
}

func TestAdvanceEpochNeedsConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"store", "advance-epoch"}, &stdout, &stderr); code == 0 {
		t.Fatalf("advance-epoch without --config succeeded: %s", stdout.String())
	}
}
