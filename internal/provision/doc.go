// Package provision brings the users, agents and delegations a configuration
// file declares into the store. A normal start creates what is absent and
// reports, without touching it, what the store holds differently: once
// stored, the store is authoritative, so an administrator's change (a removed
// permission, a disabled agent) survives restarts. Enforce (`mandate config
// apply`) makes the store match the file on purpose.
package provision
