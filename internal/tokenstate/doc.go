// Package tokenstate decides whether a token Mandate issued is still in
// force. A token is inactive when it expired, when it was issued before the
// store's not-before epoch (the store was restored from a backup since),
// when its jti or any token it was exchanged from was revoked, when its
// delegation was revoked or ran out, when any agent in its chain is
// disabled, when its subject's revocation version moved past the one it was
// issued under, or when its subject no longer holds a scope it carries.
// Introspection and every further exchange ask the same Checker, so the two
// can never disagree.
package tokenstate
