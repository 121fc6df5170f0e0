package testutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// raceEnabled is set by race_test.go in -race builds.
var raceEnabled bool

// wantLeakEnv makes TestHelperLeak leak something, to show Main catches it.
const wantLeakEnv = "SHMKIT_TEST_WANT_LEAK"

func TestMain(m *testing.M) {
	Main(m, map[string]Role{
		"ok":       func(context.Context) error { return nil },
		"fail":     func(context.Context) error { return errors.New("boom 42") },
		"block":    roleBlock,
		"echo":     roleEcho,
		"many":     roleMany,
		"ticker":   roleTicker,
		"files":    roleFiles,
		"env":      roleEnv,
		"segments": roleSegments,
		"race":     roleRace,
	})
}

// roleBlock says "ready" and waits until it is killed or signalled.
func roleBlock(ctx context.Context) error {
	Signal("ready")
	<-ctx.Done()
	return ctx.Err()
}

// roleEcho answers every line with the event "pong-<line>" until "quit".
func roleEcho(ctx context.Context) error {
	for {
		msg, err := Recv(ctx)
		if err != nil {
			return err
		}
		if msg == "quit" {
			return nil
		}
		Signal("pong-" + msg)
	}
}

// roleMany signals from many goroutines at once.
func roleMany(ctx context.Context) error {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				Signal("hit")
			}
		})
	}
	wg.Wait()
	Signal("done")
	return nil
}

// roleTicker signals "tick" every 5ms until cancelled.
func roleTicker(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			Signal("tick")
		}
	}
}

// roleFiles reads the file at fd 3 and reports it on the pipe at fd 4,
// then appends to the file.
func roleFiles(ctx context.Context) error {
	f, w := InheritedFile(0), InheritedFile(1)
	if InheritedFile(0) != f {
		return errors.New("InheritedFile(0) returned a different *os.File the second time")
	}
	if f.Fd() != 3 || w.Fd() != 4 {
		return fmt.Errorf("inherited fds are %d, %d; want 3, 4", f.Fd(), w.Fd())
	}
	b := make([]byte, 64)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return err
	}
	if _, err := fmt.Fprintf(w, "child read %q", b[:n]); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(" and child wrote"), int64(n)); err != nil {
		return err
	}
	return f.Close()
}

// roleEnv checks the options' environment.
func roleEnv(ctx context.Context) error {
	if got := Getenv("SHMKIT_TEST_X"); got != "y z" {
		return fmt.Errorf("SHMKIT_TEST_X = %q, want %q", got, "y z")
	}
	if got := runtime.GOMAXPROCS(0); got != 3 {
		return fmt.Errorf("GOMAXPROCS = %d, want 3", got)
	}
	if Getenv(dirEnv) == "" {
		return errors.New("SHMKIT_DIR not inherited")
	}
	// The parent's test deadline, less a margin, bounds the role.
	d, ok := ctx.Deadline()
	if want := Getenv("WANT_DEADLINE") == "true"; ok != want || ok && time.Until(d) <= 0 {
		return fmt.Errorf("role context deadline = %v, %v; want one in the future: %v", d, ok, want)
	}
	return nil
}

// roleRace has a data race, which a -race child must report.
func roleRace(ctx context.Context) error {
	var x int
	done := make(chan bool)
	go func() { x++; done <- true }()
	x++
	<-done
	Signal("raced-" + strconv.Itoa(x))
	return nil
}

// roleSegments creates and removes a file in SHMKIT_DIR, as a segment's
// creator would.
func roleSegments(ctx context.Context) error {
	p := filepath.Join(Getenv(dirEnv), Getenv("NAME"))
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		return err
	}
	Signal("created")
	if _, err := Recv(ctx); err != nil {
		return err
	}
	return os.Remove(p)
}

func TestSuccessAndFailure(t *testing.T) {
	t.Parallel()
	ctx := Context(t)

	ok := Spawn(t, "ok")
	if err := ok.Wait(ctx); err != nil {
		t.Fatalf("role ok: Wait = %v", err)
	}
	if !ok.Exited() {
		t.Error("Exited() = false after Wait")
	}
	if err := ok.Wait(ctx); err != nil {
		t.Errorf("second Wait = %v", err)
	}

	fail := Spawn(t, "fail")
	err := fail.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), "boom 42") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("role fail: Wait = %v; want exit status 1 and the role's error", err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("Wait error does not wrap *exec.ExitError with code 1: %v", err)
	}
	if err2 := fail.Wait(ctx); err2 != err {
		t.Errorf("second Wait = %v, want the same error", err2)
	}
	if !strings.Contains(fail.Stderr(), "boom 42") {
		t.Errorf("Stderr() = %q", fail.Stderr())
	}
	if err := fail.Kill(); err != nil {
		t.Errorf("Kill after exit = %v", err)
	}

	unknown := Spawn(t, "no-such-role")
	if err := unknown.Wait(ctx); !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("unknown role: Wait = %v; want exit status 2", err)
	}
}

func TestAwaitChildExits(t *testing.T) {
	t.Parallel()
	ctx := Context(t)
	c := Spawn(t, "fail")
	err := c.Await(ctx, "never")
	if err == nil || !strings.Contains(err.Error(), "boom 42") {
		t.Fatalf("Await on a failing child = %v; want its stderr", err)
	}

	c = Spawn(t, "block")
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := c.Await(short, "never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Await past ctx = %v; want DeadlineExceeded", err)
	}
	if err := c.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past ctx = %v; want DeadlineExceeded", err)
	}
	if c.Exited() {
		t.Error("Wait on an ended ctx did not leave the child running")
	}
}

func TestSignalsFromManyGoroutines(t *testing.T) {
	t.Parallel()
	ctx := Context(t)
	c := Spawn(t, "many")
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// Every event is dispatched before Wait returns, even after exit.
	for i := range 800 {
		if err := c.Await(ctx, "hit"); err != nil {
			t.Fatalf("hit %d: %v", i, err)
		}
	}
	if err := c.Await(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	if err := c.Await(ctx, "hit"); err == nil {
		t.Fatal("an 801st hit was awaited")
	}
}

func TestSendRecv(t *testing.T) {
	t.Parallel()
	ctx := Context(t)
	c := Spawn(t, "echo")
	for i := range 20 {
		msg := "m" + strconv.Itoa(i)
		if err := c.Send(msg); err != nil {
			t.Fatal(err)
		}
		if err := c.Await(ctx, "pong-"+msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Send("two\nlines"); err == nil {
		t.Error("Send with a newline succeeded")
	}
	if err := c.Send("quit"); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("late"); err == nil {
		t.Error("Send after exit succeeded")
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	ctx := Context(t)
	c := Spawn(t, "block")
	if err := c.Await(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	if c.Exited() {
		t.Fatal("child exited before it was killed")
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if !c.Exited() {
		t.Fatal("Exited() = false after Kill")
	}
	err := c.Wait(ctx)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Wait = %v; want an *exec.ExitError", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("Wait = %v; want killed by SIGKILL", err)
	}
	if err := c.Kill(); err != nil {
		t.Errorf("second Kill = %v", err)
	}
	if err := c.Stop(); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Stop after exit = %v; want os.ErrProcessDone", err)
	}
}

func TestSIGTERMCancelsRole(t *testing.T) {
	t.Parallel()
	ctx := Context(t)
	c := Spawn(t, "block")
	if err := c.Await(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Wait = %v; want the role's ctx error", err)
	}
}

func TestStopCont(t *testing.T) {
	t.Parallel()
	ctx := Context(t)
	c := Spawn(t, "ticker")
	if err := c.Await(ctx, "tick"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	waitState(t, c.Pid, 'T')
	// Ticks written before the stop took effect may still be on their way:
	// drain until none has come for 50ms.
	for {
		drain, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := c.Await(drain, "tick")
		cancel()
		if err != nil {
			break
		}
	}

	quiet, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.Await(quiet, "tick"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stopped child: Await = %v; want no tick for 200ms", err)
	}
	if c.Exited() {
		t.Fatal("stopped child exited")
	}

	if err := c.Cont(); err != nil {
		t.Fatal(err)
	}
	if err := c.Await(ctx, "tick"); err != nil {
		t.Fatalf("continued child: %v", err)
	}
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Wait = %v; want the role's ctx error", err)
	}
}

// waitState polls /proc until pid is in the given state ('T': stopped).
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	for i := 0; ; i++ {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the parenthesised command, which may hold spaces.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == state {
			return
		}
		if i == 1000 {
			t.Fatalf("pid %d never reached state %c: %s", pid, state, b)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestInheritedFiles(t *testing.T) {
	t.Parallel()
	ctx := Context(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	c := Spawn(t, "files", Files(f, w))
	w.Close() // the child's copy is the only writer now: EOF when it is done
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `child read "hello"`; string(got) != want {
		t.Errorf("pipe: got %q, want %q", got, want)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello and child wrote"; string(b) != want {
		t.Errorf("file: got %q, want %q", b, want)
	}
}

func TestEnvOptions(t *testing.T) {
	t.Parallel()
	_, hasDeadline := t.Deadline()
	c := Spawn(t, "env", Env("SHMKIT_TEST_X", "y z"), GOMAXPROCS(3), Env("WANT_DEADLINE", strconv.FormatBool(hasDeadline)))
	if err := c.Wait(Context(t)); err != nil {
		t.Fatal(err)
	}
}

func TestSegmentDirShared(t *testing.T) {
	t.Parallel()
	ctx := Context(t)
	name := Name(t)
	c := Spawn(t, "segments", Env("NAME", name))
	if err := c.Await(ctx, "created"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv(dirEnv), name)); err != nil {
		t.Fatalf("the child's file is not in the parent's SHMKIT_DIR: %v", err)
	}
	if err := c.Send("remove"); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRaceInChildReported(t *testing.T) {
	t.Parallel()
	err := Spawn(t, "race").Wait(Context(t))
	if !raceEnabled {
		if err != nil {
			t.Fatal(err)
		}
		t.Skip("not a -race build")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 66 || !strings.Contains(err.Error(), "DATA RACE") {
		t.Fatalf("Wait = %v; want exit status 66 and the race report", err)
	}
}

func TestCleanupKillsChild(t *testing.T) {
	t.Parallel()
	var c *Child
	t.Run("spawn", func(t *testing.T) {
		c = Spawn(t, "block")
		if err := c.Await(Context(t), "ready"); err != nil {
			t.Fatal(err)
		}
		// A stopped child must die too (SIGKILL needs no SIGCONT).
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		waitState(t, c.Pid, 'T')
		// Ends without Wait or Kill.
	})
	if !c.Exited() {
		t.Fatal("child still running after its test's Cleanup")
	}
	if err := syscall.Kill(c.Pid, 0); err != syscall.ESRCH {
		t.Fatalf("kill(%d, 0) = %v; want ESRCH (killed and reaped)", c.Pid, err)
	}
	var ee *exec.ExitError
	if err := c.Wait(Context(t)); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Wait = %v; want killed by SIGKILL", err)
	}
}

func TestName(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	check := func(t *testing.T) {
		for range 3 {
			n := Name(t)
			if len(n) > 60 || n == "" || n[0] == '.' || seen[n] {
				t.Errorf("Name = %q: too long, empty, dot-first or repeated", n)
			}
			seen[n] = true
			for _, ch := range []byte(n) {
				if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
					t.Errorf("Name = %q: byte %q not allowed", n, ch)
				}
			}
			if !strings.Contains(n, "-"+strconv.Itoa(os.Getpid())+"-") {
				t.Errorf("Name = %q lacks the pid", n)
			}
		}
	}
	check(t)
	t.Run(".dot/slash and spaces/"+strings.Repeat("long", 40), check)
}

func TestContext(t *testing.T) {
	t.Parallel()
	var ctx context.Context
	t.Run("sub", func(t *testing.T) {
		ctx = Context(t)
		d, ok := ctx.Deadline()
		if !ok {
			t.Fatal("no deadline")
		}
		if td, ok := t.Deadline(); ok && !d.Before(td) {
			t.Errorf("ctx deadline %v is not before the test's %v", d, td)
		}
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
	})
	if ctx.Err() == nil {
		t.Error("ctx not cancelled after its test ended")
	}
}

// TestHelperLeak is run by TestMainReportsLeaks in a separate test binary
// process, where it leaks on purpose; otherwise it does nothing.
func TestHelperLeak(t *testing.T) {
	switch os.Getenv(wantLeakEnv) {
	case "segment":
		p := filepath.Join(os.Getenv(dirEnv), "leaked-segment")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	case "goroutine":
		go func() { select {} }()
	}
}

func TestMainReportsLeaks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ leak, want string }{
		{"segment", "leaked-segment"},
		{"goroutine", "goroutines leaked"},
		{"", ""},
	} {
		t.Run("leak="+tc.leak, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(Context(t), os.Args[0], "-test.run=^TestHelperLeak$")
			cmd.Env = append(os.Environ(), wantLeakEnv+"="+tc.leak, raceEnv(nil))
			out, err := cmd.CombinedOutput()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("clean run failed: %v\n%s", err, out)
				}
				return
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
				t.Fatalf("leaky run: err = %v, want exit status 1 and %q in:\n%s", err, tc.want, out)
			}
		})
	}
}
