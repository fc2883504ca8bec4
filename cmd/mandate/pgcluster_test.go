//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Helpers for the tests that crash and slow down PostgreSQL: a private
// cluster a test starts, SIGKILLs and restarts without disturbing the shared
// one in MANDATE_TEST_POSTGRES_URL, and timed HTTP calls.

// findPGBin returns the directory of the PostgreSQL server binaries the way
// .ci/postgres.sh's find_pg_bin does: initdb on PATH, else the newest
// /usr/lib/postgresql/*/bin.
func findPGBin() (string, bool) {
	var cands []string
	if p, err := exec.LookPath("initdb"); err == nil {
		cands = append(cands, p)
	}
	globbed, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	major := func(p string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return n
	}
	slices.SortFunc(globbed, func(a, b string) int { return major(b) - major(a) })
	cands = append(cands, globbed...)
	for _, c := range cands {
		resolved, err := filepath.EvalSymlinks(c)
		if err != nil {
			continue
		}
		d := filepath.Dir(resolved)
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, true
		}
	}
	return "", false
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// pgCluster is a PostgreSQL cluster private to one test, run as an
// unprivileged user when the test runs as root (initdb and postgres refuse
// root), with fsync on, listening on a loopback port and on a socket in its
// directory.
type pgCluster struct {
	bin  string
	base string // owned by the server's user: the data directory and the socket
	data string
	port int
	cred *syscall.Credential // nil: run as ourselves
	// password is the password of every role the test creates.
	password string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *os.File
}

// startPGCluster runs initdb and starts the cluster, or skips the test when
// no server binaries are installed.
func startPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	bin, ok := findPGBin()
	if !ok {
		t.Skip("PostgreSQL server binaries not found (no initdb on PATH, none in /usr/lib/postgresql/*/bin): " +
			"install them (Debian: apt-get install postgresql) to run this test")
	}
	td := t.TempDir()
	c := &pgCluster{bin: bin, base: filepath.Join(td, "pg"), port: freePort(t)}
	if len(c.base) > 80 {
		// A Unix socket path is limited to about 100 bytes.
		short, err := os.MkdirTemp("", "mpg")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(short) })
		td, c.base = short, filepath.Join(short, "pg")
	}
	c.data = filepath.Join(c.base, "data")
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	c.password = hex.EncodeToString(pw[:])
	if err := os.Mkdir(c.base, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		uid, gid := uint32(65534), uint32(65534)
		if u, err := user.Lookup("nobody"); err == nil {
			if n, err := strconv.Atoi(u.Uid); err == nil {
				uid = uint32(n)
			}
			if n, err := strconv.Atoi(u.Gid); err == nil {
				gid = uint32(n)
			}
		}
		c.cred = &syscall.Credential{Uid: uid, Gid: gid}
		// The server's user must reach its directory through ours.
		for _, d := range []string{filepath.Dir(td), td} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(c.base, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.Create(filepath.Join(td, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.log = logf
	t.Cleanup(func() {
		c.crash(t)
		if t.Failed() {
			t.Logf("postgres log (tail):\n%s", c.logTail())
		}
		_ = logf.Close()
	})

	initdb := c.command(filepath.Join(bin, "initdb"), "-D", c.data, "-U", "postgres", "-A", "trust",
		"--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale")
	var out bytes.Buffer
	initdb.Stdout, initdb.Stderr = &out, &out
	if err := initdb.Run(); err != nil {
		hint := ""
		if c.cred != nil {
			hint = " (as root, initdb runs as nobody, which must be able to reach " + c.base + ")"
		}
		t.Fatalf("initdb%s: %v\n%s", hint, err, out.String())
	}
	c.start(t)
	return c
}

// command runs a PostgreSQL binary as the cluster's user, in its directory,
// without the caller's PG* environment, in a process group of its own (an
// interrupt of the test does not reach it; cleanup ends it).
func (c *pgCluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.base
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	return cmd
}

// start runs the postmaster on the cluster's port and waits until it
// accepts connections (after crash recovery, when it follows a crash).
// Settings ("name=value") override the defaults, fsync=on among them.
func (c *pgCluster) start(t *testing.T, settings ...string) {
	t.Helper()
	args := []string{"-D", c.data, "-p", strconv.Itoa(c.port)}
	for _, s := range append([]string{"listen_addresses=127.0.0.1", "unix_socket_directories=" + c.base,
		"fsync=on", "synchronous_commit=on", "max_connections=100"}, settings...) {
		args = append(args, "-c", s)
	}
	cmd := c.command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = c.log, c.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	c.cmd, c.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(c.exited)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.superuserDSN())
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return
		}
		select {
		case <-c.exited:
			c.cmd = nil
			t.Fatalf("postgres exited at start: %v\n%s", cmd.ProcessState, c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres does not accept connections after 60 s: %v\n%s", err, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the cluster down cleanly (a fast shutdown).
func (c *pgCluster) stop(t *testing.T) {
	t.Helper()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		c.cmd = nil
	case <-time.After(30 * time.Second):
		t.Log("postgres did not stop within 30 s of SIGINT; killing it")
		c.crash(t)
	}
}

// crash SIGKILLs the postmaster and every process it started, as a crash
// of the machine would end them all at once, and waits until they are gone.
// Killing the process group is not enough: PostgreSQL puts each child in a
// session of its own, and a backend that outlives its postmaster goes on
// serving its connection for a moment. So the postmaster is stopped first
// (it can then neither fork nor react), its children are killed, and then
// it is. It does nothing when the cluster is down.
func (c *pgCluster) crash(t *testing.T) {
	t.Helper()
	if c.cmd == nil {
		return
	}
	pm := c.cmd.Process.Pid
	_ = syscall.Kill(pm, syscall.SIGSTOP)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if state, _, ok := procStat(pm); !ok || state == "T" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	kids := childrenOf(pm)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	_ = syscall.Kill(pm, syscall.SIGKILL)
	<-c.exited
	c.cmd = nil
	// The children are orphans now: wait until the kernel has ended them
	// (they may linger as zombies, which hold no shared memory or socket).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(kids, running) {
			return
		}
	}
	t.Logf("postgres processes %v still running 10 s after SIGKILL", kids)
}

// procStat returns the state and parent of a process from /proc/PID/stat.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

func (c *pgCluster) superuserDSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=2", c.base, c.port)
}

// exec runs SQL statements as the superuser.
func (c *pgCluster) exec(t *testing.T, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.superuserDSN())
	if err != nil {
		t.Fatalf("connect as superuser: %v", err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// createRole creates a login role with the cluster's password and a
// database of the same name that it owns.
func (c *pgCluster) createRole(t *testing.T, role string) {
	t.Helper()
	c.exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, c.password),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", role, role))
}

// url is the TCP connection URL of role's database.
func (c *pgCluster) url(role string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", role, c.password, c.port, role)
}

func (c *pgCluster) logTail() string {
	b, _ := os.ReadFile(c.log.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// call is one timed HTTP request.
type call struct {
	start time.Time
	took  time.Duration
	// code is 0 when the request failed without a response.
	code       int
	retryAfter string
	err        error
	body       map[string]any
}

func (c call) String() string {
	if c.err != nil {
		return fmt.Sprintf("error after %v: %v", c.took.Round(time.Millisecond), c.err)
	}
	return fmt.Sprintf("%d after %v (Retry-After %q) %v", c.code, c.took.Round(time.Millisecond), c.retryAfter, c.body)
}

// timedDo sends req and reads the JSON answer.
func timedDo(client *http.Client, req *http.Request) call {
	c := call{start: time.Now()}
	resp, err := client.Do(req)
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.code, c.retryAfter, err = resp.StatusCode, resp.Header.Get("Retry-After"), rerr
		if len(b) > 0 && resp.Header.Get("Content-Type") != "" {
			_ = json.Unmarshal(b, &c.body)
		}
	}
	c.took, c.err = time.Since(c.start), err
	return c
}

// Request builders for the timed calls.

func exchangeRequest(base, subject string) *http.Request {
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {"https://deploy.example"},
		"scope":              {"monitoring:read"},
		"client_id":          {"agent:infrabot"},
		"client_secret":      {"infrabot-secret"},
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func introspectRequest(base, tok string) *http.Request {
	form := url.Values{"token": {tok}, "client_id": {"agent:infrabot"}, "client_secret": {"infrabot-secret"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/introspect", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func adminRevokeRequest(base, jti string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, base+"/admin/revoke", strings.NewReader(`{"jti":"`+jti+`"}`))
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	req.Header.Set("Content-Type", "application/json")
	return req
}

func getRequest(base, path string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	return req
}

// newTestClient is an HTTP client of its own, keeping enough idle
// connections for the tests' workers, with a 5 s limit that turns a hang
// into an error.
func newTestClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
}

// percentile returns the p-th percentile (0–100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*p/100)) - 1
	return s[min(max(i, 0), len(s)-1)]
}
