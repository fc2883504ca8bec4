package forward

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mandate-dev/mandate/verify"
)

// Names of the files in Config.Dir: records-<seq>.jsonl, seq in
// 20 decimal digits so that names sort in the order written, and the same
// with .tmp while being written.
const (
	bufferPrefix = "records-"
	bufferSuffix = ".jsonl"
	bufferDigits = 20
	tempSuffix   = ".tmp"
)

func bufferName(seq uint64) string {
	return fmt.Sprintf("%s%0*d%s", bufferPrefix, bufferDigits, seq, bufferSuffix)
}

// parseBufferName returns the sequence number of a buffer file's name.
func parseBufferName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, bufferPrefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, bufferSuffix)
	if !ok || len(s) != bufferDigits || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	return seq, err == nil
}

// checkBufferFile refuses an entry of Dir named as a buffer file that this
// package did not write (THREATS T104): a symbolic link, anything but a
// regular file, or a file larger than MaxDiskBytes, which bounds all of
// Dir. The error names the file and says why.
func (f *Forwarder) checkBufferFile(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("forward: Config.Dir: %s is a symbolic link, not a file the record forwarder wrote; move it away", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("forward: Config.Dir: %s is not a regular file (%s), not one the record forwarder wrote; move it away", path, fi.Mode().Type())
	case fi.Size() > f.cfg.MaxDiskBytes:
		return fmt.Errorf("forward: Config.Dir: %s has %d bytes, more than MaxDiskBytes (%d): not a file the record forwarder wrote; move it away",
			path, fi.Size(), f.cfg.MaxDiskBytes)
	}
	return nil
}

// readBuffer reads a buffer file without following a symbolic link, and
// only if checkBufferFile takes what it opened: the name is looked at with
// Lstat, and the file opened is the one looked at (os.SameFile), so that
// a file swapped for a link in between is not read. At most MaxDiskBytes
// are read. Its errors name the file and say why.
func (f *Forwarder) readBuffer(path string) ([]byte, error) {
	fail := func(err error) ([]byte, error) { return nil, fmt.Errorf("forward: Config.Dir: %w", err) }
	before, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	if err := f.checkBufferFile(path, before); err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer fh.Close()
	opened, err := fh.Stat()
	if err != nil {
		return fail(err)
	}
	if !os.SameFile(before, opened) {
		return fail(fmt.Errorf("%s was replaced while being opened; not reading it", path))
	}
	if err := f.checkBufferFile(path, opened); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(fh, f.cfg.MaxDiskBytes+1))
	if err != nil {
		return fail(err)
	}
	if int64(len(data)) > f.cfg.MaxDiskBytes {
		return fail(fmt.Errorf("%s grew beyond MaxDiskBytes (%d) while being read; not reading it", path, f.cfg.MaxDiskBytes))
	}
	return data, nil
}

// openDir creates Dir if missing and takes the files found there into the
// backlog, oldest first. A .tmp file is a batch whose writing a crash
// interrupted, never sent: it is taken too, its torn lines skipped when
// read. An entry named as a buffer file that this package did not write
// (a symbolic link, not a regular file, larger than MaxDiskBytes) fails
// it with an error that names the file.
func (f *Forwarder) openDir() error {
	dir := f.cfg.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("forward: Config.Dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("forward: Config.Dir: %w", err)
	}
	for _, e := range entries {
		if _, ok := parseBufferName(strings.TrimSuffix(e.Name(), tempSuffix)); !ok {
			continue
		}
		fi, err := e.Info() // Lstat: a link is not followed
		if err != nil {
			return fmt.Errorf("forward: Config.Dir: %w", err)
		}
		if err := f.checkBufferFile(filepath.Join(dir, e.Name()), fi); err != nil {
			return err
		}
	}
	type found struct {
		seq  uint64
		name string
	}
	var files []found
	final := make(map[string]bool)
	for _, e := range entries {
		if _, ok := parseBufferName(e.Name()); ok && e.Type().IsRegular() {
			final[e.Name()] = true
		}
	}
	adopted := false
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if base, ok := strings.CutSuffix(name, tempSuffix); ok {
			seq, ok := parseBufferName(base)
			switch {
			case !ok:
				continue
			case final[base]:
				// Written and renamed, then the .tmp of a failed retry.
				_ = os.Remove(filepath.Join(dir, name))
				continue
			}
			if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, base)); err != nil {
				return fmt.Errorf("forward: Config.Dir: %w", err)
			}
			adopted = true
			files = append(files, found{seq, base})
			continue
		}
		if seq, ok := parseBufferName(name); ok {
			files = append(files, found{seq, name})
		}
	}
	if adopted {
		syncDir(dir)
	}
	slices.SortFunc(files, func(a, b found) int { return cmp.Compare(a.seq, b.seq) })
	for _, file := range files {
		path := filepath.Join(dir, file.name)
		data, err := f.readBuffer(path)
		if err != nil {
			return err
		}
		p := &pendingBatch{path: path, size: int64(len(data)), lines: int64(countLines(data))}
		f.backlog = append(f.backlog, p)
		f.bufferedBytes.Add(p.size)
		f.bufferedRecords.Add(p.lines)
		f.nextSeq = max(f.nextSeq, file.seq+1)
	}
	return nil
}

// writeBatch writes batch to a new file in Dir, behind the backlog. It
// drops and counts the batch, and returns false, when Dir would go beyond
// MaxDiskBytes or cannot be written.
func (f *Forwarder) writeBatch(ctx context.Context, batch [][]byte) bool {
	var size int64
	for _, r := range batch {
		size += int64(len(r)) + 1
	}
	n := int64(len(batch))
	if f.bufferedBytes.Load()+size > f.cfg.MaxDiskBytes {
		f.droppedOther.Add(n)
		f.logOnce(ctx, "disk full", slog.LevelError, "verify: record forwarder: Dir is full; dropping records",
			slog.Int64("records", n), slog.Int64("max_disk_bytes", f.cfg.MaxDiskBytes))
		return false
	}
	data := make([]byte, 0, size)
	for _, r := range batch {
		data = append(data, r...)
		data = append(data, '\n')
	}
	path := filepath.Join(f.cfg.Dir, bufferName(f.nextSeq))
	if err := writeSynced(path, data); err != nil {
		f.droppedOther.Add(n)
		f.logOnce(ctx, "disk error", slog.LevelError, "verify: record forwarder: Dir cannot be written; dropping records",
			slog.Int64("records", n), slog.String("error", err.Error()))
		return false
	}
	f.nextSeq++
	f.backlog = append(f.backlog, &pendingBatch{path: path, size: size, lines: n})
	f.bufferedBytes.Add(size)
	f.bufferedRecords.Add(n)
	return true
}

// writeSynced writes data to path durably: to path.tmp, synced, then
// renamed, so that path is never seen half-written. path.tmp is made
// anew (O_EXCL, after removing whatever has the name): a symbolic link
// put there is removed, never written through.
func writeSynced(path string, data []byte) (err error) {
	tmp := path + tempSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	_, err = fh.Write(data)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a rename in dir durable where the system allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// load reads the records of a file of the backlog; when it cannot be
// read (or is no longer a file this package wrote: a symbolic link, not a
// regular file, larger than MaxDiskBytes), the file is left in Dir for an
// operator, counted as dropped and forgotten.
func (f *Forwarder) load(ctx context.Context, p *pendingBatch) bool {
	data, err := f.readBuffer(p.path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			f.droppedOther.Add(p.lines)
			f.log.LogAttrs(ctx, slog.LevelError, "verify: record forwarder: a file in Dir cannot be read; skipping it",
				slog.String("file", p.path), slog.String("error", err.Error()))
		}
		f.bufferedBytes.Add(-p.size)
		f.bufferedRecords.Add(-p.lines)
		f.backlog = f.backlog[1:]
		return false
	}
	recs, bad := readBufferFile(data)
	p.recs, p.loaded = recs, true
	if bad > 0 {
		f.corrupt.Add(int64(bad))
		f.bufferedRecords.Add(-int64(bad))
		p.lines -= int64(bad)
		f.log.LogAttrs(ctx, slog.LevelWarn, "verify: record forwarder: unreadable lines in a file of Dir (torn by a crash?); skipping them",
			slog.String("file", p.path), slog.Int("lines", bad))
	}
	return true
}

// forget removes the oldest batch of the backlog, settled, and its file.
func (f *Forwarder) forget(ctx context.Context, p *pendingBatch) {
	if p.path != "" {
		if err := os.Remove(p.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Sent again by the next Forwarder on Dir: harmless, the server
			// keeps one copy per id.
			f.logOnce(ctx, "remove", slog.LevelError, "verify: record forwarder: a sent file cannot be removed from Dir",
				slog.String("file", p.path), slog.String("error", err.Error()))
		}
		f.bufferedBytes.Add(-p.size)
		f.bufferedRecords.Add(-p.lines)
	}
	f.backlog[0] = nil
	f.backlog = f.backlog[1:]
}

// readBufferFile reads a file of Dir: one JSON record per line. It returns
// the records it can read, re-encoded, and the number of non-blank lines
// it cannot (a line torn by a crash, or anything that is not a record
// with an id, a time and a result), which are skipped.
func readBufferFile(data []byte) (recs [][]byte, corrupt int) {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if rec, ok := decodeBufferLine(line); ok {
			recs = append(recs, rec)
		} else {
			corrupt++
		}
	}
	return recs, corrupt
}

// countLines counts the non-blank lines of data, as readBufferFile reads
// them.
func countLines(data []byte) int {
	n := 0
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}

// decodeBufferLine decodes one record, numbers in Context kept exact, and
// encodes it again, so that what is sent is what this package writes.
func decodeBufferLine(line []byte) ([]byte, bool) {
	if !json.Valid(line) {
		return nil, false
	}
	var r verify.Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil || r.ID == "" || r.Result == "" || r.Time.IsZero() {
		return nil, false
	}
	out, err := json.Marshal(&r)
	if err != nil {
		return nil, false
	}
	return out, true
}
