package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Info is what a binary says about its build. The zero value is a build
// that carries no information.
type Info struct {
	// Version is the main module's version: a tag (v1.2.3), or a
	// pseudo-version derived from the commit, with +dirty when the tree
	// had uncommitted changes; "(devel)" when the toolchain knew none.
	Version string `json:"version"`
	// Commit is the revision the binary was built from (vcs.revision);
	// empty when it was built outside a checkout or with -buildvcs=false.
	Commit string `json:"commit,omitempty"`
	// Modified reports uncommitted changes in the checkout (vcs.modified).
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the toolchain that built the binary. `mandate version`
	// prints it; /healthz, which anyone may ask, does not, since it would
	// tell which of the Go release's known flaws to try.
	GoVersion string `json:"-"`
}

// Unknown is the Version of a build that carries no version.
const Unknown = "(devel)"

// The linker may set these with -ldflags -X (scripts/build-image does)
// for a build the toolchain cannot stamp: the go command finds no
// repository from a git worktree, whose .git is a file, nor from a
// source tarball. Code never assigns them; they are constants the
// linker writes, and the only channel -X has is a package-level string.
var (
	linkedVersion  string
	linkedCommit   string
	linkedModified string // "true" or "false"
)

// Read returns the running binary's Info: what the toolchain stamped,
// with what the linker was given (-ldflags -X) in its place where given.
// It never fails: a binary that carries nothing (a test binary, a build
// outside a checkout) answers Version "(devel)".
func Read() Info {
	info := Info{Version: Unknown}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info = FromBuildInfo(bi)
	}
	return info.Override(linkedVersion, linkedCommit, linkedModified)
}

// Override returns i with each of version, commit and modified ("true" or
// "false") in place of its field where it is not empty. A new commit
// without a modified flag clears the old flag, which was about another
// commit.
func (i Info) Override(version, commit, modified string) Info {
	if version != "" {
		i.Version = version
	}
	if commit != "" {
		i.Commit, i.Modified = commit, false
	}
	if modified != "" {
		i.Modified = modified == "true"
	}
	return i
}

// FromBuildInfo returns the Info that bi records.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Version == "" {
		info.Version = Unknown
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is Info on one line: the version, then the commit (marked
// "modified" when the checkout had changes) and the toolchain, for
// example "v1.2.0 (commit 0123abcd…, go1.26.4)".
func (i Info) String() string {
	version := i.Version
	if version == "" {
		version = Unknown
	}
	var details []string
	switch {
	case i.Commit != "" && i.Modified:
		details = append(details, "commit "+i.Commit+", modified")
	case i.Commit != "":
		details = append(details, "commit "+i.Commit)
	default:
		details = append(details, "commit unknown")
	}
	if i.GoVersion != "" {
		details = append(details, i.GoVersion)
	}
	return fmt.Sprintf("%s (%s)", version, strings.Join(details, ", "))
}
