// Package archtest holds the tests that keep the repository's shape: every
// package has a doc comment saying what it owns, public packages import
// nothing from internal/, and no package uses init() or the banned
// catch-all names (util, common, helpers, models). It has no code of its own.
package archtest
