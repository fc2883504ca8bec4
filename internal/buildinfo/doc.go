// Package buildinfo owns what a mandate binary says about itself: the
// module version and the commit it was built from, as the Go toolchain
// stamped them (runtime/debug.ReadBuildInfo). `mandate version` prints
// them and GET /healthz answers them, so an operator can tell which build
// a running instance is.
package buildinfo
