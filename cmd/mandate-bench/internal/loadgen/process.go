package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// ProcessConfig says how to start a server as a child process.
type ProcessConfig struct {
	// Path and Args are the executable and its arguments (without argv[0]).
	Path string
	Args []string
	// CPU, when 0 or more, pins the process to that CPU with `taskset -c`;
	// -1 leaves it unpinned. Start fails when taskset is missing.
	CPU int
	// Log receives the process's standard output and error; required.
	Log *os.File
}

// Process is a running child server. Stop ends it; it is also killed when
// this process dies (PR_SET_PDEATHSIG), so a crashed benchmark leaves no
// server behind.
type Process struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // from Wait, valid once exited is closed
}

// Start starts the child. With CPU set, taskset execs the server in place, so
// PID is the server's own.
func Start(cfg ProcessConfig) (*Process, error) {
	if cfg.Log == nil {
		return nil, errors.New("loadgen: ProcessConfig.Log is required")
	}
	path, args := cfg.Path, cfg.Args
	if cfg.CPU >= 0 {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("pinning the server: %w", err)
		}
		path, args = ts, append([]string{"-c", strconv.Itoa(cfg.CPU), cfg.Path}, args...)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = cfg.Log, cfg.Log
	// Its own process group, so a ctrl-c at the terminal reaches only us and
	// we stop the server in order; Pdeathsig covers our sudden death.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the server: %w", err)
	}
	p := &Process{cmd: cmd, log: cfg.Log, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// PID is the server's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// WaitHealthy polls url (GET, expecting 200) until it answers, the process
// exits, ctx is done or timeout passes.
func (p *Process) WaitHealthy(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("health check: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("the server exited before it was ready: %w", p.exitErr())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", url, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop asks the server to shut down (SIGTERM), kills it after grace, and
// waits for it. It returns nil when the server ended on SIGTERM or had
// already ended cleanly.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.exitErr()
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("the server did not stop within %v and was killed", grace)
	}
}

func (p *Process) exitErr() error {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return p.err
}

// LogTail returns at most the last n bytes of the server's log, to explain
// a failure.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(bytes.TrimSpace(b))
}

// PinSelf pins every thread of this process, and so every thread it starts
// later, to cpu with `taskset -a -p`.
func PinSelf(ctx context.Context, cpu int) error {
	out, err := exec.CommandContext(ctx, "taskset", "-a", "-p", "-c", strconv.Itoa(cpu), strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
