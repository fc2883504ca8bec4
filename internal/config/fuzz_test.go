package config_test

import (
	"os"
	"testing"

	"github.com/mandate-dev/mandate/internal/config"
)

// FuzzParse checks that no input makes Parse panic, and that what it accepts
// validates again unchanged.
func FuzzParse(f *testing.F) {
	sample, err := os.ReadFile("testdata/sample-from-issue.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte(base))
	f.Add([]byte("tokens: {ttl: 10m, max_ttl: 5m}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("agents: [{id: a, jwks: {keys: [{kty: EC}]}}]\n"))
	f.Add([]byte("delegations: [{expires: 2027-01-01}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
	})
}
