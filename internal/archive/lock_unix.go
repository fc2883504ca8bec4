//go:build unix

package archive

import (
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock of the file ".lock" in dir, waiting for
// it, and returns its release. The lock goes with the process, so a
// killed holder leaves none behind.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}
