//go:build unix

package server_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system, every thread) this process
// has used so far.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
