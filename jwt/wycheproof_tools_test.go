//go:build tools

package jwt_test

// This import only records github.com/c2sp/wycheproof in go.mod (the build
// tag keeps it out of every build, so its embedded vectors are never linked
// into a binary). TestWycheproof reads the vectors from the module
// directory instead.
import _ "github.com/c2sp/wycheproof"
