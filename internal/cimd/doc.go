// Package cimd owns Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document): an OAuth client whose
// client_id is an https URL is described by the JSON document at that URL.
//
// Fetcher.Lookup checks the URL (CheckURL), fetches the document with the
// server-side request forgery rules of the draft's security considerations
// (public addresses only, checked again at connect time; no redirects; a
// size and a time limit), validates it (Parse), and caches the result by
// the response's HTTP caching headers within bounds, failures briefly.
package cimd
