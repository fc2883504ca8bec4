// Package forensics answers the questions an incident asks of the audit
// log: every record about a token and the tokens before and after it
// (Lineage), the records that issued a token and each it came from
// (Ancestry), everything an agent did and for whom (AgentActivity), who
// stood behind an action on a resource (WhoApproved), and which agents are
// refused or revoked most (Agents; RefusalRates counts only token
// requests, cheaply enough for a page). It reads through Source, which a
// store, a running server and an exported file all provide, so the same
// report runs against each.
package forensics
