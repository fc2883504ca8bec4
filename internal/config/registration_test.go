package config_test

import (
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/config"
)

func TestRegistrationSection(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want string // a problem's text, "" for none
	}{
		{name: "ok/default"},
		{name: "ok/open", yaml: "registration: {policy: open, max_clients: 50, scopes: ['notes:read']}"},
		{name: "ok/approved", yaml: "registration: {policy: approved_redirects, redirect_uris: ['http://127.0.0.1/cb']}"},
		{name: "ok/public-agent", yaml: "agents: [{id: 'agent:cli', public: true, redirect_uris: ['http://127.0.0.1/cb']}]"},
		{name: "fail/policy", yaml: "registration: {policy: anyone}", want: "registration.policy"},
		{name: "fail/approved-without-list", yaml: "registration: {policy: approved_redirects}", want: "registration.redirect_uris"},
		{name: "fail/list-without-approved", yaml: "registration: {policy: open, redirect_uris: ['https://a.example/cb']}", want: "registration.redirect_uris"},
		{name: "fail/list-http", yaml: "registration: {policy: approved_redirects, redirect_uris: ['http://a.example/cb']}", want: "registration.redirect_uris[0]"},
		{name: "fail/max-clients", yaml: "registration: {max_clients: -1}", want: "registration.max_clients"},
		{name: "fail/per-hour", yaml: "registration: {per_hour: -1}", want: "registration.per_hour"},
		{name: "ok/documents-from-loopback", yaml: "registration: {policy: open, metadata_documents: true, metadata_documents_loopback: true}"},
		{name: "fail/documents-from-loopback-alone", yaml: "registration: {policy: open, metadata_documents_loopback: true}", want: "registration.metadata_documents_loopback: needs"},
		{name: "fail/documents-from-loopback-public-issuer", yaml: "issuer: https://mandate.example\nregistration: {policy: open, metadata_documents: true, metadata_documents_loopback: true}",
			want: "registration.metadata_documents_loopback: is for development only"},
		{name: "fail/documents-from-loopback-public-listen", yaml: "listen: 0.0.0.0:8080\nregistration: {policy: open, metadata_documents: true, metadata_documents_loopback: true}",
			want: "registration.metadata_documents_loopback: is for development only"},
		{name: "fail/public-agent-with-secret", yaml: "agents: [{id: 'agent:cli', public: true, secret: 'longer-than-eight-bytes'}]", want: "public client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tc.yaml), "test.yaml")
			if err == nil {
				err = c.Validate()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected problems: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("problems %v, want one about %q", err, tc.want)
			}
		})
	}
}
