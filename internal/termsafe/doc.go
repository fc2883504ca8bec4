// Package termsafe makes text that came from outside fit to show on a
// terminal, in a table or in a log line: String escapes a value, JSON
// escapes a JSON document and keeps its meaning, and NewJSONLogWriter
// escapes what encoding a log record as JSON leaves raw. Control
// characters (C0, DEL, C1), line breaks, ANSI escape sequences (their ESC),
// bidirectional and other invisible format characters and invalid UTF-8
// come out as backslash escapes, so that a value can never end a line,
// start a fake one, move the cursor or reorder what is shown (THREATS T85).
package termsafe
