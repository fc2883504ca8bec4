package cli

import (
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/jwks"
)

// TestKeysAudited: `mandate keys rotate` and `keys revoke` each leave one
// audit record naming the key, committed with the change (THREATS T66);
// a rotation that finds a next key already waiting changes nothing and
// records nothing, and a revocation of an unknown kid records nothing.
func TestKeysAudited(t *testing.T) {
	f := newEpochFixture(t)
	keyEvents := func() []store.Event {
		t.Helper()
		var out []store.Event
		f.with(func(s store.Store) {
			for _, action := range []string{audit.ActionKeyCreated, audit.ActionKeyRevoked} {
				evs, err := s.QueryEvents(t.Context(), store.EventFilter{Action: action})
				if err != nil {
					t.Fatalf("QueryEvents: %v", err)
				}
				out = append(out, evs...)
			}
		})
		return out
	}

	code, stdout, stderr := f.run("keys", "rotate", "--config", "mandate.yaml")
	if code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", code, stderr)
	}
	kid, _, _ := strings.Cut(strings.TrimPrefix(stdout, "key "), " ")
	evs := keyEvents()
	if len(evs) != 1 || evs[0].Action != audit.ActionKeyCreated || evs[0].Resource != kid || evs[0].Performer != cliPerformer || evs[0].Result != audit.ResultOK {
		t.Fatalf("after keys rotate (%q): records %+v, want one %s of %s by %s", stdout, evs, audit.ActionKeyCreated, kid, cliPerformer)
	}

	if code, _, stderr := f.run("keys", "rotate", "--config", "mandate.yaml"); code != 0 {
		t.Fatalf("second keys rotate: exit %d: %s", code, stderr)
	}
	if evs := keyEvents(); len(evs) != 1 {
		t.Errorf("a rotation that created nothing was recorded: %+v", evs)
	}

	if code, _, _ := f.run("keys", "revoke", "--config", "mandate.yaml", "no-such-kid"); code == 0 {
		t.Error("keys revoke of an unknown kid succeeded")
	}
	// A kid is base64url and may start with "-": without "--" it reads as
	// a flag, and the error says how to pass it.
	if code, _, stderr := f.run("keys", "revoke", "--config", "mandate.yaml", "-QRxQR9lPDBl8"); code != 2 || !strings.Contains(stderr, "-- KID") {
		t.Errorf("keys revoke of a kid beginning with \"-\": exit %d, %q; want 2 and how to pass it after \"--\"", code, stderr)
	}
	if code, _, stderr := f.run("keys", "revoke", "--config", "mandate.yaml", "--", kid); code != 0 {
		t.Fatalf("keys revoke: exit %d: %s", code, stderr)
	}
	evs = keyEvents()
	if len(evs) != 2 || evs[1].Action != audit.ActionKeyRevoked || evs[1].Resource != kid || evs[1].Performer != cliPerformer {
		t.Errorf("after keys revoke: records %+v, want one %s of %s", evs, audit.ActionKeyRevoked, kid)
	}
}

// TestKeyPublishDelayBounds: the configuration and the keyring agree on the
// least and the default key_publish_delay, so that a configuration that
// validates never makes the keyring refuse to start.
func TestKeyPublishDelayBounds(t *testing.T) {
	if config.MinPublishDelay != token.MinPublishDelay || config.DefaultKeyPublishDelay != token.DefaultPublishDelay {
		t.Errorf("config min %v default %v; keyring min %v default %v", config.MinPublishDelay, config.DefaultKeyPublishDelay, token.MinPublishDelay, token.DefaultPublishDelay)
	}
	if token.MinPublishDelay <= jwks.DefaultCooldown {
		t.Errorf("the least publish delay %v is within a verifier's refetch cooldown %v", token.MinPublishDelay, jwks.DefaultCooldown)
	}
}
