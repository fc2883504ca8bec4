package registration

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// TestMaxClientsUnderConcurrency: registrations and metadata documents
// admitted at once, from many goroutines, leave at most MaxClients clients;
// the ones past it are refused (access_denied for a registration, the
// document not admitted), never a store error.
func TestMaxClientsUnderConcurrency(t *testing.T) {
	const limit = 5
	r, st := newRegistrar(t, Policy{Mode: PolicyOpen, MaxClients: limit})
	r.NewID = func() string { b := make([]byte, 8); _, _ = rand.Read(b); return "agent:reg-" + hex.EncodeToString(b) }
	anyone := directory.Performer{ID: "anonymous"}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				_, err := r.Register(t.Context(), Request{Performer: anyone,
					Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: "none"}})
				if err != nil && oauth.As(err).Reason != ReasonTooManyClients {
					errs <- err
				}
				return
			}
			id := "https://client.example/" + hex.EncodeToString([]byte{byte(i)}) + ".json"
			_, err := r.AdmitDocument(t.Context(), directory.Performer{ID: "cimd"},
				cimd.Client{ID: id, RedirectURIs: []string{"https://client.example/cb"}, AuthMethod: cimd.AuthNone}, nil)
			if err != nil && !errors.Is(err, ErrDocumentRefused) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a registration past the limit failed otherwise: %v", err)
	}
	agents, err := st.ListAgents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range agents {
		if a.Registration == store.RegistrationDCR || a.Registration == store.RegistrationCIMD {
			n++
		}
	}
	if n != limit {
		t.Errorf("%d clients registered or admitted, want the limit %d", n, limit)
	}
}
