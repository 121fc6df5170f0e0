package manager

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
)

func TestStartShutdown(t *testing.T) {
	ctx := testutil.Context(t)
	m, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Client.Dict("d").Add(ctx, "n", 2); err != nil || n != 2 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(m.Pid()) {
		t.Fatalf("server process %d still there after Shutdown", m.Pid())
	}
}

// TestStartChildDiesWithParent: the parent that called Start is
// SIGKILLed; its server process is gone within a second.
func TestStartChildDiesWithParent(t *testing.T) {
	ctx := testutil.Context(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	c := testutil.Spawn(t, "starter", testutil.Env("PIDFILE", pidfile))
	if err := c.Await(ctx, "started"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(b))
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("server process %d outlived its parent by 1 s", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alive reports whether pid runs: not gone, and not a zombie that nobody
// reaped (the parent is dead, and a container's init may not reap).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
