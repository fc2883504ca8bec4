package loadgen

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "ok/sample-line",
			// A real line from a Go server: utime 1234, stime 56 ticks.
			stat: "4242 (mandate) S 4200 4242 4200 34816 4242 4194560 2143 0 0 0 1234 56 0 0 20 0 7 0 98765 1265319936 4510 18446744073709551615 1 1 0 0 0 0 0 0 2143420156 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			want: 12900 * time.Millisecond,
		},
		{
			name: "ok/command-with-spaces-and-parens",
			stat: "77 (a) b (c)) R 1 77 77 0 -1 4194304 0 0 0 0 3 2 0 0 20 0 1 0 1 1 1 1",
			want: 50 * time.Millisecond,
		},
		{name: "fail/no-command", stat: "77 R 1 2 3", wantErr: true},
		{name: "fail/truncated", stat: "77 (x) R 1 77 77 0 -1 4194304 0 0 0 0 3", wantErr: true},
		{name: "fail/not-a-number", stat: "77 (x) R 1 77 77 0 -1 4194304 0 0 0 0 x 2 0", wantErr: true},
		{name: "fail/negative", stat: "77 (x) R 1 77 77 0 -1 4194304 0 0 0 0 -3 2 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseStatCPU error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseStatCPU = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseStatusMemory(t *testing.T) {
	const sample = `Name:	mandate
Umask:	0022
State:	S (sleeping)
Tgid:	4242
VmPeak:	 1235664 kB
VmSize:	 1235664 kB
VmHWM:	   24512 kB
VmRSS:	   18040 kB
RssAnon:	    9000 kB
Threads:	7
`
	got, err := ParseStatusMemory([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcSample{RSS: 18040 << 10, PeakRSS: 24512 << 10}
	if got != want {
		t.Errorf("ParseStatusMemory = %+v, want %+v", got, want)
	}
	for name, bad := range map[string]string{
		"fail/no-vmrss":  "Name:\tkthreadd\nState:\tS\n",
		"fail/bad-unit":  "VmRSS:\t18040 MB\n",
		"fail/bad-value": "VmRSS:\tmany kB\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseStatusMemory([]byte(bad)); err == nil {
				t.Errorf("ParseStatusMemory(%q) succeeded", bad)
			}
		})
	}
}

func TestReadProcSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	before, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn about 50 ms of CPU so the tick counter moves.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	after, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.CPU < before.CPU || after.CPU == 0 {
		t.Errorf("CPU went from %v to %v", before.CPU, after.CPU)
	}
	if after.RSS <= 0 || after.PeakRSS < after.RSS {
		t.Errorf("RSS %d, peak %d", after.RSS, after.PeakRSS)
	}
}

func TestParseCPUTimes(t *testing.T) {
	const stat = "cpu  103063 7 13890 165715 1464 2 378 879 0 0\ncpu0 51000 3 7000 80000 700 1 200 400 0 0\nintr 1 2 3\n"
	got, err := ParseCPUTimes([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	want := CPUTimes{
		Busy:  (103063 + 7 + 13890 + 2 + 378) * 10 * time.Millisecond,
		Idle:  (165715 + 1464) * 10 * time.Millisecond,
		Steal: 879 * 10 * time.Millisecond,
	}
	if got != want {
		t.Errorf("ParseCPUTimes = %+v, want %+v", got, want)
	}
	for name, bad := range map[string]string{
		"fail/empty":      "",
		"fail/per-cpu":    "cpu0 1 2 3 4 5 6 7 8\n",
		"fail/short":      "cpu 1 2 3\n",
		"fail/not-number": "cpu 1 2 x 4 5 6 7 8\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseCPUTimes([]byte(bad)); err == nil {
				t.Errorf("ParseCPUTimes(%q) succeeded", bad)
			}
		})
	}
}

func TestParseIO(t *testing.T) {
	const sample = "rchar: 6976\nwchar: 512\nsyscr: 10\nsyscw: 3\nread_bytes: 0\nwrite_bytes: 40960\ncancelled_write_bytes: 4096\n"
	got, err := ParseIO([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := IOCounters{WriteBytes: 40960, CancelledWriteBytes: 4096, WriteChars: 512, WriteCalls: 3}
	if got != want {
		t.Errorf("ParseIO = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"wchar: 1\nsyscw: 1\n", "wchar: 1\nsyscw: 1\nwrite_bytes: x\ncancelled_write_bytes: 0\n"} {
		if _, err := ParseIO([]byte(bad)); err == nil {
			t.Errorf("ParseIO(%q) succeeded", bad)
		}
	}
	if _, err := os.Stat("/proc/self/io"); err == nil {
		s, err := ReadProc(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if s.IO == nil {
			t.Error("ReadProc of this process has no I/O counters")
		}
	}
}
