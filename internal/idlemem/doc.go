// Package idlemem gives the memory the Go heap holds but no longer uses back
// to the operating system when the server is idle.
//
// `mandate serve` runs the collector with a high target (GOGC=400), so that
// under load it collects less often. The price is that the heap may grow to
// five times what is live before a collection (16 MB at least), and the
// runtime keeps the pages it collected for reuse. At idle the background
// loops (the audit checkpointer, the revocation feed, the cache's poll)
// still allocate a little, so an idle server's resident memory crept up by
// about 40 kB a second until the forced collection every two minutes, and
// after a burst of load it stayed at the burst's peak. A Releaser collects
// and returns that memory at start-up and whenever the server has been
// idle for a while and its heap has grown since the last time.
package idlemem
