package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrExists is the error of Put for a name already stored: segments are
// never overwritten.
var ErrExists = errors.New("archive: segment exists")

// ErrOverlap is the error of Put for a segment whose records overlap those
// of a segment stored: two archivers that raced (one stalled past its
// lease) would leave two copies of some records.
var ErrOverlap = errors.New("archive: segment overlaps a stored one")

// ErrNotFound is the error of Get for a name not stored.
var ErrNotFound = errors.New("archive: no such segment")

// Store keeps segments by name. Put stores a segment whole or not at all
// and never replaces one; List returns the names of the segments stored
// (only names ParseName accepts), in any order. Implementations are safe
// for concurrent use.
type Store interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	List(ctx context.Context) ([]string, error)
}

// Dir is a Store in a directory of the local file system, created on the
// first Put (mode 0700). Put writes a temporary file (".NAME.tmp-*", never
// read), syncs it, links it to its name (which fails if the name exists,
// where a rename would replace it), removes the temporary name and syncs
// the directory: a crash leaves the segment whole or absent, and at worst
// a temporary file. Put also refuses a segment whose records overlap a
// stored one's (ErrOverlap), checked and linked under an exclusive lock
// of the file ".lock" in the directory (flock, on Unix), so that processes
// sharing the directory cannot both pass the check.
type Dir struct {
	// Path is the directory.
	Path string
}

var _ Store = Dir{}

// path is the file of name, refusing a name that is not a segment's (which
// also keeps it inside the directory).
func (d Dir) path(name string) (string, error) {
	if _, _, err := ParseName(name); err != nil {
		return "", err
	}
	return filepath.Join(d.Path, name), nil
}

// Put implements Store.
func (d Dir) Put(_ context.Context, name string, data []byte) (err error) {
	final, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, name)
	}
	tmp, err := os.CreateTemp(d.Path, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer func() {
		if rerr := os.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("archive: %w", rerr)
		}
	}()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("archive: write %s: %w", name, err)
	}
	unlock, err := lockDir(d.Path)
	if err != nil {
		return fmt.Errorf("archive: lock %s: %w", d.Path, err)
	}
	defer unlock()
	if err := d.refuseOverlap(name); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, name)
		}
		return fmt.Errorf("archive: %w", err)
	}
	return syncDir(d.Path)
}

// refuseOverlap returns ErrOverlap when a stored segment holds any record
// of segment name, ErrExists when one has its name.
func (d Dir) refuseOverlap(name string) error {
	first, last, err := ParseName(name)
	if err != nil {
		return err
	}
	names, err := d.List(context.Background())
	if err != nil {
		return err
	}
	for _, n := range names {
		f, l, err := ParseName(n)
		switch {
		case err != nil:
			continue
		case n == name:
			return fmt.Errorf("%w: %s", ErrExists, name)
		case f <= last && first <= l:
			return fmt.Errorf("%w: %s holds records of %s", ErrOverlap, n, name)
		}
	}
	return nil
}

// syncDir makes the directory's entries durable.
func syncDir(path string) error {
	dir, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	err = dir.Sync()
	if cerr := dir.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("archive: sync %s: %w", path, err)
	}
	return nil
}

// Get implements Store.
func (d Dir) Get(_ context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return b, nil
}

// List implements Store; a directory that does not exist holds no segment.
func (d Dir) List(_ context.Context) ([]string, error) {
	entries, err := os.ReadDir(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	var names []string
	for _, e := range entries {
		if _, _, err := ParseName(e.Name()); err == nil && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}
