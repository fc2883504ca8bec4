package forward_test

import (
	"context"
	"github.com/mandate-dev/mandate/verify/internal/feedtest"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/verify/forward"
)

// TestSpoolRefusesForeignFiles (THREATS T104): a file in Dir named as a
// buffer file that the forwarder did not write — a 1 GiB file, one larger
// than MaxDiskBytes, a symbolic link in place of a temporary or a final
// file — makes NewForwarder fail with an error naming the file and why,
// without reading it; nothing is written through a link.
func TestSpoolRefusesForeignFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	line := mustJSON(testRecord(1)) + "\n"
	for _, tc := range []struct {
		name     string
		maxDisk  int64
		setup    func(t *testing.T, dir, outside string)
		wantErrs []string
	}{
		{name: "fail/one-gib-file", setup: func(t *testing.T, dir, _ string) {
			sparse(t, filepath.Join(dir, forward.BufferFileName(1)), 1<<30)
		}, wantErrs: []string{forward.BufferFileName(1), "1073741824 bytes, more than MaxDiskBytes"}},
		{name: "fail/file-over-max-disk-bytes", maxDisk: 1 << 10, setup: func(t *testing.T, dir, _ string) {
			writeFile(t, filepath.Join(dir, forward.BufferFileName(1)), strings.Repeat(line, 1+(1<<10)/len(line)))
		}, wantErrs: []string{forward.BufferFileName(1), "more than MaxDiskBytes (1024)"}},
		{name: "fail/symlinked-temp-file", setup: func(t *testing.T, dir, outside string) {
			symlink(t, outside, filepath.Join(dir, forward.BufferFileName(2)+".tmp"))
		}, wantErrs: []string{forward.BufferFileName(2) + ".tmp", "is a symbolic link"}},
		{name: "fail/symlinked-buffer-file", setup: func(t *testing.T, dir, outside string) {
			symlink(t, outside, filepath.Join(dir, forward.BufferFileName(1)))
		}, wantErrs: []string{forward.BufferFileName(1), "is a symbolic link"}},
		{name: "fail/directory-named-as-a-buffer-file", setup: func(t *testing.T, dir, _ string) {
			if err := os.Mkdir(filepath.Join(dir, forward.BufferFileName(3)), 0o700); err != nil {
				t.Fatal(err)
			}
		}, wantErrs: []string{forward.BufferFileName(3), "not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, outside := t.TempDir(), filepath.Join(t.TempDir(), "elsewhere.jsonl")
			writeFile(t, outside, line)
			tc.setup(t, dir, outside)
			s := newIngestServer(t)
			start := time.Now()
			f, err := forward.New(t.Context(), forwarderConfig(s, func(c *forward.Config) {
				c.Dir, c.MaxDiskBytes = dir, tc.maxDisk
			}))
			if err == nil {
				_ = f.Close(t.Context())
				t.Fatal("NewForwarder took a Dir holding a file it did not write")
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("refusing took %v: the file was read", took)
			}
			if got, _ := os.ReadFile(outside); string(got) != line {
				t.Errorf("the file outside Dir was changed: %q", got)
			}
		})
	}
}

// TestSpoolLinksPlantedWhileRunning (THREATS T104): a symbolic link put at
// the name of the next temporary file is removed, never written through;
// a buffered file swapped for a link is not read (its records are counted
// as dropped and it is left for an operator), and the file the link
// points to is neither sent nor changed.
func TestSpoolLinksPlantedWhileRunning(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "elsewhere.jsonl")
	planted := mustJSON(testRecord(99)) + "\n"
	writeFile(t, outside, planted)
	s := newIngestServer(t)
	s.set(func(s *ingestServer) { s.down = "503" })
	var logs feedtest.SyncBuffer
	// A back-off of at least 1 s: file 1, written after the first failure,
	// is not read before the next attempt, whatever the machine's load.
	f, err := forward.NewBackoff(t.Context(), forwarderConfig(s, func(c *forward.Config) {
		c.Dir = dir
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}), 2*time.Second, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	recordRange(f, 1, 5)
	feedtest.Eventually(t, "file 1 written", func() bool { return f.Stats().Buffered == 5 })
	// File 1 is swapped for a link before it is read, and a link waits at
	// file 2's temporary name.
	path := filepath.Join(dir, forward.BufferFileName(1))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	symlink(t, outside, path)
	symlink(t, outside, filepath.Join(dir, forward.BufferFileName(2)+".tmp"))
	recordRange(f, 6, 10)
	feedtest.Eventually(t, "file 2 written", func() bool {
		fi, err := os.Lstat(filepath.Join(dir, forward.BufferFileName(2)))
		return err == nil && fi.Mode().IsRegular()
	})
	if got, _ := os.ReadFile(outside); string(got) != planted {
		t.Fatalf("the forwarder wrote through the link: %q", got)
	}
	s.set(func(s *ingestServer) { s.down = "" })
	feedtest.Eventually(t, "file 2 sent", func() bool { return len(s.storedIDs()) == 5 })
	if got := s.storedIDs(); !slices.Equal(got, ids(6, 10)) {
		t.Errorf("stored %v, want the records of file 2 only", got)
	}
	feedtest.Eventually(t, "file 1 counted", func() bool { st := f.Stats(); return st.Dropped == 5 && st.Buffered == 0 })
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was not left in Dir: %v, %v", fi, err)
	}
	if l := logs.String(); !strings.Contains(l, "is a symbolic link") {
		t.Errorf("no error names the link: %s", l)
	}
	if got, _ := os.ReadFile(outside); string(got) != planted {
		t.Errorf("the file outside Dir was changed: %q", got)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// sparse makes a file of size bytes that takes no room on disk.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Truncate(size); err != nil {
		t.Fatal(err)
	}
}
