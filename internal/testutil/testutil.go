package testutil

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// RoleEnv is the environment variable naming the role a child runs.
const RoleEnv = "SHMKIT_TEST_ROLE"

const (
	// eventsFDEnv tells the child which fd is the write end of its event
	// pipe. The pipe sits after the user's Files so those keep fds 3, 4, ...
	eventsFDEnv = "SHMKIT_TEST_EVENTS_FD"
	// filesEnv is the number of user files, so InheritedFile can refuse an
	// index that would hand out the event pipe or an unrelated fd.
	filesEnv = "SHMKIT_TEST_FILES"
	// dirEnv is shm.DirEnv; repeated because shm's own tests import this
	// package, and importing shm here would be a cycle.
	dirEnv = "SHMKIT_DIR"
)

const (
	// stderrKeep bounds the stderr kept per child: a chatty or looping
	// child must not eat the parent's memory.
	stderrKeep = 64 << 10
	// tailLen is how much stderr an error carries: enough for a role's
	// error line or a single-goroutine panic, short enough to read.
	tailLen = 4 << 10
	// drainTime bounds how long the parent keeps reading events after the
	// child is reaped. A pipe whose writer is dead gives EOF at once; the
	// bound only matters if a grandchild kept the write end open.
	drainTime = time.Second
	// timeoutGrace is how long a child may overrun its deadline before it
	// dumps its goroutines and exits, for roles that ignore ctx.
	timeoutGrace = 5 * time.Second
)

// Role is what a child process runs. Its error becomes the child's failure
// (exit 1, message on stderr).
type Role func(ctx context.Context) error

// Main is the body of a package's TestMain.
//
// In a child (RoleEnv set) it runs roles[role] with a context cancelled on
// SIGTERM or SIGINT and at the deadline the parent passed, writes the
// role's error to stderr and exits 0 or 1; an unknown role exits 2. No
// tests run and no leak checks are made in a child.
//
// In the parent it creates a temporary directory for named segments and
// points SHMKIT_DIR at it (children inherit it), runs the tests, and, if
// they passed, fails the run when a goroutine leaked or a file is left in
// the directory (a test leaked a segment). The directory is removed.
func Main(m *testing.M, roles map[string]Role) {
	if role, ok := os.LookupEnv(RoleEnv); ok {
		os.Exit(runRole(roles, role))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := makeSegmentDir()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testutil: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Setenv(dirEnv, dir); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: %v\n", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		// A failed run already says what is wrong; leak reports would
		// mostly be consequences of that failure.
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: goroutines leaked after all tests passed: %v\n", err)
		code = 1
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testutil: %v\n", err)
		return 1
	}
	if len(entries) > 0 {
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		fmt.Fprintf(os.Stderr, "testutil: tests leaked %d file(s) in %s (unlinked segments?): %s\n",
			len(names), dir, strings.Join(names, ", "))
		code = 1
	}
	return code
}

// makeSegmentDir prefers a directory under /dev/shm, so tests see the
// tmpfs that real segments live on (sizes, fallocate, ENOSPC), and falls
// back to the system temp dir where there is none.
func makeSegmentDir() (string, error) {
	// The pid in the name lets a later run sweep away the directory of a
	// test binary that was killed before it could clean up.
	prefix := "shmkit-test-" + strconv.Itoa(os.Getpid()) + "-"
	sweepDeadDirs("/dev/shm")
	sweepDeadDirs(os.TempDir())
	if dir, err := os.MkdirTemp("/dev/shm", prefix); err == nil {
		return dir, nil
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", fmt.Errorf("make segment dir: %w", err)
	}
	return dir, nil
}

// sweepDeadDirs removes segment directories left in parent by test
// binaries that died (their pid, in the name, no longer exists).
func sweepDeadDirs(parent string) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "shmkit-test-")
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}

func runRole(roles map[string]Role, name string) int {
	role, ok := roles[name]
	if !ok {
		known := make([]string, 0, len(roles))
		for k := range roles {
			known = append(known, k)
		}
		slices.Sort(known)
		fmt.Fprintf(os.Stderr, "testutil: unknown role %q (known: %s)\n", name, strings.Join(known, ", "))
		return 2
	}
	// A grandchild must not hold the event pipe open: the parent would
	// then see no EOF when this child exits.
	if fd, ok := envInt(eventsFDEnv); ok {
		syscall.CloseOnExec(fd)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if d := timeoutArg(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
		// A role that ignores ctx must still not outlive the test that
		// started it (the parent's Cleanup does not run if it panics).
		t := time.AfterFunc(d+timeoutGrace, func() {
			buf := make([]byte, 1<<20)
			os.Stderr.Write(buf[:runtime.Stack(buf, true)])
			// Last, so the stderr tail the parent reports shows it.
			fmt.Fprintf(os.Stderr, "testutil: role %q still running %v after its deadline\n", name, timeoutGrace)
			os.Exit(1)
		})
		defer t.Stop()
	}
	if err := role(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "testutil: role %q: %v\n", name, err)
		return 1
	}
	return 0
}

// timeoutArg reads the -test.timeout Spawn passed. The testing package
// would apply it only in m.Run, which a child never calls.
func timeoutArg() time.Duration {
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "-test.timeout="); ok {
			d, err := time.ParseDuration(v)
			if err == nil {
				return d
			}
		}
	}
	return 0
}

// Option configures Spawn.
type Option func(*spawnConfig)

type spawnConfig struct {
	env   []string
	files []*os.File
}

// Env adds an environment variable to the child's environment.
func Env(key, value string) Option {
	return func(c *spawnConfig) { c.env = append(c.env, key+"="+value) }
}

// Files passes files to the child as fds 3, 4, ... in order; the child
// gets them with InheritedFile(0), InheritedFile(1), ...
func Files(files ...*os.File) Option {
	return func(c *spawnConfig) { c.files = append(c.files, files...) }
}

// GOMAXPROCS sets GOMAXPROCS=n in the child's environment.
func GOMAXPROCS(n int) Option { return Env("GOMAXPROCS", strconv.Itoa(n)) }

// Child is a running (or finished) child process started by Spawn.
type Child struct {
	Pid int // the child's process id

	role   string
	cmd    *exec.Cmd
	stdin  *os.File // write end of the child's stdin; closed once reaped
	stderr *tailBuffer

	mu     sync.Mutex
	events map[string]int // signalled and not yet consumed by Await
	wake   chan struct{}  // closed and replaced whenever events grows

	done chan struct{} // closed once reaped and every event dispatched
	err  error         // exit result; written before done is closed
}

// Spawn starts role in a child: the test binary itself, re-executed with
// RoleEnv=role and told to run no tests. The child inherits the parent's
// environment (so SHMKIT_DIR) plus the options'. A Cleanup kills and reaps
// the child if it is still running, so none outlives the test. Spawn calls
// tb.Fatalf if the child cannot be started.
func Spawn(tb testing.TB, role string, opts ...Option) *Child {
	tb.Helper()
	var cfg spawnConfig
	for _, o := range opts {
		o(&cfg)
	}
	exe, err := os.Executable()
	if err != nil {
		// os.Args[0] works too unless the test changed directory.
		exe = os.Args[0]
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		tb.Fatalf("testutil: spawn %q: event pipe: %v", role, err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		evR.Close()
		evW.Close()
		tb.Fatalf("testutil: spawn %q: stdin pipe: %v", role, err)
	}

	cmd := exec.Command(exe, "-test.run=^$", "-test.timeout="+childTimeout(tb).String())
	cmd.Args[0] = os.Args[0]
	cmd.Env = slices.Concat(os.Environ(), cfg.env, []string{
		raceEnv(cfg.env),
		RoleEnv + "=" + role,
		eventsFDEnv + "=" + strconv.Itoa(3+len(cfg.files)),
		filesEnv + "=" + strconv.Itoa(len(cfg.files)),
	})
	cmd.ExtraFiles = append(slices.Clip(cfg.files), evW)
	cmd.Stdin = inR
	// Passed through, not captured: what a role prints is there to be read.
	cmd.Stdout = os.Stdout
	stderr := &tailBuffer{}
	cmd.Stderr = stderr
	// A grandchild holding stderr open must not hang the reaper.
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = sysProcAttr()

	err = cmd.Start()
	// The child has its own copies now; ours would hide its exit (no EOF).
	inR.Close()
	evW.Close()
	if err != nil {
		evR.Close()
		inW.Close()
		tb.Fatalf("testutil: spawn %q: %v", role, err)
	}

	c := &Child{
		Pid:    cmd.Process.Pid,
		role:   role,
		cmd:    cmd,
		stdin:  inW,
		stderr: stderr,
		events: make(map[string]int),
		wake:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	readerDone := make(chan struct{})
	go c.readEvents(evR, readerDone)
	go c.reap(evR, readerDone)
	tb.Cleanup(func() { _ = c.Kill() })
	return c
}

// raceEnv turns off the race runtime's 1s sleep at exit (atexit_sleep_ms,
// meant to let other threads finish their reports), which would otherwise
// add a second to every child of a -race run; races a child finds are
// still reported, and still make it exit 66. A GORACE that already sets
// it wins. Without -race the variable is ignored.
func raceEnv(extra []string) string {
	gorace := os.Getenv("GORACE")
	for _, kv := range extra {
		if v, ok := strings.CutPrefix(kv, "GORACE="); ok {
			gorace = v
		}
	}
	if strings.Contains(gorace, "atexit_sleep_ms") {
		return "GORACE=" + gorace
	}
	return "GORACE=" + strings.TrimSpace(gorace+" atexit_sleep_ms=0")
}

// childTimeout is the child's -test.timeout: the time left before
// Context's deadline, or 0 (none) when the test has no deadline.
func childTimeout(tb testing.TB) time.Duration {
	d, ok := deadline(tb)
	if !ok {
		return 0
	}
	// 0 would mean no timeout; a test already past its deadline gets 1ms.
	return max(time.Until(d), time.Millisecond)
}

// readEvents dispatches the child's event lines until EOF, which comes
// when the child exits, or until reap sets a read deadline.
func (c *Child) readEvents(r *os.File, done chan<- struct{}) {
	defer close(done)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return // a partial line is a child killed mid-write: not an event
		}
		c.mu.Lock()
		c.events[strings.TrimSuffix(line, "\n")]++
		close(c.wake)
		c.wake = make(chan struct{})
		c.mu.Unlock()
	}
}

// reap waits for the child's exit, then lets readEvents dispatch what the
// child wrote before dying, so Await never misses an event it sent.
func (c *Child) reap(events *os.File, readerDone <-chan struct{}) {
	werr := c.cmd.Wait()
	_ = events.SetReadDeadline(time.Now().Add(drainTime))
	<-readerDone
	events.Close()
	c.stdin.Close()
	if werr != nil {
		c.err = fmt.Errorf("testutil: child %q (pid %d): %w%s", c.role, c.Pid, werr, c.stderrTail())
	}
	close(c.done)
}

// Await waits until the child calls Signal(event), consuming one such
// signal (one sent earlier and not yet consumed counts). It fails when ctx
// ends or the child exits first; the error carries the child's stderr.
func (c *Child) Await(ctx context.Context, event string) error {
	for {
		c.mu.Lock()
		if c.events[event] > 0 {
			c.events[event]--
			c.mu.Unlock()
			return nil
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-c.done:
			// Every event was dispatched before done closed.
			c.mu.Lock()
			if c.events[event] > 0 {
				c.events[event]--
				c.mu.Unlock()
				return nil
			}
			c.mu.Unlock()
			if c.err != nil {
				return fmt.Errorf("testutil: await %q: child exited first: %w", event, c.err)
			}
			return fmt.Errorf("testutil: await %q: child %q (pid %d) exited with status 0 first%s",
				event, c.role, c.Pid, c.stderrTail())
		case <-ctx.Done():
			return fmt.Errorf("testutil: await %q from child %q (pid %d): %w%s",
				event, c.role, c.Pid, ctx.Err(), c.stderrTail())
		}
	}
}

// Send writes msg as one line to the child's stdin, for Recv. msg must not
// contain a newline.
func (c *Child) Send(msg string) error {
	if strings.ContainsRune(msg, '\n') {
		return fmt.Errorf("testutil: send to child %q: message contains a newline", c.role)
	}
	if _, err := io.WriteString(c.stdin, msg+"\n"); err != nil {
		return fmt.Errorf("testutil: send to child %q (pid %d): %w", c.role, c.Pid, err)
	}
	return nil
}

// Wait waits for the child to exit. It returns nil on exit status 0, or an
// error (wrapping *exec.ExitError) with the status or signal and the tail
// of stderr. If ctx ends first it returns ctx.Err() and leaves the child
// running. Calling it again returns the same result.
func (c *Child) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends SIGKILL and reaps the child. It is a no-op after exit.
func (c *Child) Kill() error {
	err := c.cmd.Process.Kill()
	<-c.done
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testutil: kill child %q (pid %d): %w", c.role, c.Pid, err)
	}
	return nil
}

// Stop sends SIGSTOP: the child stays alive but makes no progress.
func (c *Child) Stop() error { return c.Signal(syscall.SIGSTOP) }

// Cont sends SIGCONT, resuming a stopped child.
func (c *Child) Cont() error { return c.Signal(syscall.SIGCONT) }

// Signal sends sig to the child. After the child is reaped it returns an
// error wrapping os.ErrProcessDone (never a signal to a reused pid).
func (c *Child) Signal(sig os.Signal) error {
	if err := c.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("testutil: signal child %q (pid %d): %w", c.role, c.Pid, err)
	}
	return nil
}

// Stderr returns the child's stderr captured so far (its last 64 KiB).
func (c *Child) Stderr() string { return c.stderr.String() }

// Exited reports whether the child has exited and been reaped.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *Child) stderrTail() string {
	t := c.stderr.tail(tailLen)
	if t == "" {
		return " (stderr empty)"
	}
	return "\nstderr:\n" + t
}

// tailBuffer keeps the last stderrKeep bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	dropped int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	// Trimming only at twice the bound keeps the copying amortised O(1).
	if len(b.buf) > 2*stderrKeep {
		over := len(b.buf) - stderrKeep
		b.dropped += int64(over)
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return b.tail(stderrKeep) }

// tail returns at most the last n bytes, from a line start when possible.
func (b *tailBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) <= n && b.dropped == 0 {
		return string(b.buf)
	}
	t := b.buf[max(len(b.buf)-n, 0):]
	if i := strings.IndexByte(string(t), '\n'); i >= 0 && i < len(t)-1 {
		t = t[i+1:]
	}
	return "[...]\n" + string(t)
}
