// Package provision brings the users, agents and delegations a configuration
// file declares into the store, through internal/directory, so that they
// follow the same rules and leave the same audit records (performed by
// "config") as the admin API's. A normal start creates what is absent and
// reports, without touching it, what the store holds differently: once
// stored, the store is authoritative, so an administrator's change (a removed
// permission, a disabled agent) survives restarts. Enforce (`mandate config
// apply`) makes the store match the file on purpose, except a delegation's
// subject and actor, which never change.
package provision
