// Package password owns people's local passwords in Mandate: the argon2id
// hash kept for each, in the PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash), and the check of a password
// against it. Hash uses the OWASP parameters (19 MiB, two passes, one
// lane); Check accepts other parameters within bounds, so that a hash made
// elsewhere or with the parameters of an older release still verifies,
// but no stored hash can make a check cost gigabytes; CheckNone costs what
// a check costs, for sign-ins of unknown people.
package password
