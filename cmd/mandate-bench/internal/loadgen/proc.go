package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: the kernel reports
// them in USER_HZ clock ticks, which is what `getconf CLK_TCK` prints and is
// 100 on every Linux architecture Go supports, whatever the kernel's own
// CONFIG_HZ. Reading sysconf(_SC_CLK_TCK) would need cgo.
const userHZ = 100

// ErrNoProc is returned when /proc is not available (not Linux).
var ErrNoProc = errors.New("loadgen: /proc is not available")

// ProcSample is one reading of a process's resource use.
type ProcSample struct {
	// CPU is user plus system time of all the process's threads, living and
	// exited, with a resolution of 1/userHZ (10 ms).
	CPU time.Duration
	// RSS is the resident set size (VmRSS) in bytes.
	RSS int64
	// PeakRSS is the high-water mark of the resident set (VmHWM) in bytes.
	PeakRSS int64
	// IO is the process's I/O counters from /proc/PID/io; nil when the file
	// cannot be read (another user's process, or a kernel without task I/O
	// accounting).
	IO *IOCounters
}

// IOCounters are the cumulative I/O counters of a process, from
// /proc/PID/io (proc(5)), over every thread, living and exited.
type IOCounters struct {
	// WriteBytes is write_bytes: the bytes of page-cache pages the process
	// dirtied, which the kernel writes to the storage layer (a page counts
	// once each time it goes from clean to dirty, so a page rewritten
	// before it is written back counts once, and one fsynced in between
	// counts again). This is what the disk sees of a durable commit: WAL
	// frames, the WAL index, and pages copied into the database file at
	// checkpoints.
	WriteBytes int64
	// CancelledWriteBytes is cancelled_write_bytes: dirtied bytes that
	// were never written because the file was truncated first.
	CancelledWriteBytes int64
	// WriteChars is wchar: the bytes passed to write(2) and its kin,
	// whether or not they reach the disk.
	WriteChars int64
	// WriteCalls is syscw: the number of write system calls.
	WriteCalls int64
}

// ReadProc reads the CPU time and memory of process pid from /proc. It
// returns an error wrapping ErrNoProc when /proc is absent, and
// os.ErrNotExist (wrapped) when the process is gone.
func ReadProc(pid int) (ProcSample, error) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return ProcSample{}, fmt.Errorf("%w: %w", ErrNoProc, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("reading process %d: %w", pid, err)
	}
	cpu, err := ParseStatCPU(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("process %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("reading process %d: %w", pid, err)
	}
	mem, err := ParseStatusMemory(status)
	if err != nil {
		return ProcSample{}, fmt.Errorf("process %d: %w", pid, err)
	}
	mem.CPU = cpu
	// The I/O counters are a figure of their own: a process whose
	// /proc/PID/io cannot be read still has its CPU and memory measured.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		if io, err := ParseIO(b); err == nil {
			mem.IO = &io
		}
	}
	return mem, nil
}

// ParseIO parses the contents of /proc/PID/io (proc(5)): lines of
// "name: value". write_bytes, cancelled_write_bytes, wchar and syscw are
// required.
func ParseIO(b []byte) (IOCounters, error) {
	var c IOCounters
	fields := map[string]*int64{
		"write_bytes":           &c.WriteBytes,
		"cancelled_write_bytes": &c.CancelledWriteBytes,
		"wchar":                 &c.WriteChars,
		"syscw":                 &c.WriteCalls,
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		dst, want := fields[key]
		if !ok || !want {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil || n < 0 {
			return IOCounters{}, fmt.Errorf("io: bad %s value %q", key, val)
		}
		*dst = n
		seen++
	}
	if err := sc.Err(); err != nil {
		return IOCounters{}, fmt.Errorf("io: %w", err)
	}
	if seen != len(fields) {
		return IOCounters{}, errors.New("io: missing write_bytes, cancelled_write_bytes, wchar or syscw")
	}
	return c, nil
}

// ParseStatCPU returns utime + stime from the contents of /proc/PID/stat
// (proc(5)): fields 14 and 15, in USER_HZ ticks. The second field, the
// command name in parentheses, may itself hold spaces and parentheses, so
// the fields are counted from the last ')'.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("stat: no command name")
	}
	// After ") " come field 3 (state) onwards: utime is field 14, so index
	// 11 here, and stime index 12.
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("stat: bad CPU time %q", f)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// ParseStatusMemory returns RSS and PeakRSS from the contents of
// /proc/PID/status, whose VmRSS and VmHWM lines are in kB (KiB). A kernel
// thread or zombie has no such lines: that is an error.
func ParseStatusMemory(status []byte) (ProcSample, error) {
	var s ProcSample
	var seenRSS bool
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return ProcSample{}, fmt.Errorf("status: bad %s line %q", key, val)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return ProcSample{}, fmt.Errorf("status: bad %s value %q", key, f[0])
		}
		if key == "VmRSS" {
			s.RSS, seenRSS = kb<<10, true
		} else {
			s.PeakRSS = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return ProcSample{}, fmt.Errorf("status: %w", err)
	}
	if !seenRSS {
		return ProcSample{}, errors.New("status: no VmRSS line")
	}
	return s, nil
}

// CPUTimes is the first line of /proc/stat: the whole machine's CPU time by
// kind, summed over every CPU.
type CPUTimes struct {
	// Busy is user, nice, system, irq and softirq time.
	Busy time.Duration
	// Idle is idle and iowait time.
	Idle time.Duration
	// Steal is time the hypervisor gave to other virtual machines.
	Steal time.Duration
}

// ReadCPUTimes reads the machine's CPU times from /proc/stat.
func ReadCPUTimes() (CPUTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, fmt.Errorf("%w: %w", ErrNoProc, err)
	}
	return ParseCPUTimes(b)
}

// ParseCPUTimes parses the aggregate "cpu" line of /proc/stat contents
// (proc(5)): user nice system idle iowait irq softirq steal ..., in USER_HZ
// ticks. Guest time is already inside user and is not added again.
func ParseCPUTimes(stat []byte) (CPUTimes, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return CPUTimes{}, errors.New("/proc/stat: no aggregate cpu line")
	}
	var n [8]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil || v < 0 {
			return CPUTimes{}, fmt.Errorf("/proc/stat: bad value %q", f[i+1])
		}
		n[i] = v
	}
	tick := func(t int64) time.Duration { return time.Duration(t) * time.Second / userHZ }
	return CPUTimes{
		Busy:  tick(n[0] + n[1] + n[2] + n[5] + n[6]),
		Idle:  tick(n[3] + n[4]),
		Steal: tick(n[7]),
	}, nil
}
