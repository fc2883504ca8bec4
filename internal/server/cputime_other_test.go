//go:build !unix

package server_test

import (
	"errors"
	"time"
)

// processCPU has no figure outside unix: the benchmarks report ns/op only.
func processCPU() (time.Duration, error) {
	return 0, errors.New("no process CPU time on this system")
}
