package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFromBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want Info
		line string
	}{
		{
			name: "ok/tagged-release",
			bi: debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "v1.2.0"},
				Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}},
			want: Info{Version: "v1.2.0", Commit: rev, GoVersion: "go1.26.4"},
			line: "v1.2.0 (commit " + rev + ", go1.26.4)",
		},
		{
			name: "ok/modified-checkout",
			bi: debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "v0.0.0-20260101000000-0123456789ab+dirty"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			want: Info{Version: "v0.0.0-20260101000000-0123456789ab+dirty", Commit: rev, Modified: true, GoVersion: "go1.26.4"},
			line: "v0.0.0-20260101000000-0123456789ab+dirty (commit " + rev + ", modified, go1.26.4)",
		},
		{
			name: "ok/no-vcs",
			bi:   debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "(devel)"}},
			want: Info{Version: "(devel)", GoVersion: "go1.26.4"},
			line: "(devel) (commit unknown, go1.26.4)",
		},
		{
			name: "ok/nothing-known",
			want: Info{Version: "(devel)"},
			line: "(devel) (commit unknown)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromBuildInfo(&tt.bi)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FromBuildInfo (-want +got):\n%s", diff)
			}
			if got.String() != tt.line {
				t.Errorf("String() = %q, want %q", got.String(), tt.line)
			}
		})
	}
}

func TestReadNeverEmpty(t *testing.T) {
	if got := Read(); got.Version == "" {
		t.Errorf("Read() = %+v: empty version", got)
	}
}

func TestOverride(t *testing.T) {
	stamped := Info{Version: "v1.2.0", Commit: "aaaa", Modified: true, GoVersion: "go1.26.4"}
	tests := []struct {
		name                      string
		version, commit, modified string
		want                      Info
	}{
		{name: "ok/nothing-linked", want: stamped},
		{name: "ok/version-only", version: "v1.3.0", want: Info{Version: "v1.3.0", Commit: "aaaa", Modified: true, GoVersion: "go1.26.4"}},
		{name: "ok/commit-clears-modified", commit: "bbbb", want: Info{Version: "v1.2.0", Commit: "bbbb", GoVersion: "go1.26.4"}},
		{name: "ok/commit-and-modified", commit: "bbbb", modified: "true", want: Info{Version: "v1.2.0", Commit: "bbbb", Modified: true, GoVersion: "go1.26.4"}},
		{name: "ok/modified-false", modified: "false", want: Info{Version: "v1.2.0", Commit: "aaaa", GoVersion: "go1.26.4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, stamped.Override(tt.version, tt.commit, tt.modified)); diff != "" {
				t.Errorf("Override (-want +got):\n%s", diff)
			}
		})
	}
}
