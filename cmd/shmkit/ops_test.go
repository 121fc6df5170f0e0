package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/ringbuf"
	"github.com/shmkit/shmkit/shm"
)

// holdEnv makes the test binary attach to the named segment, say "ready"
// and wait to be killed: a live participant in another process.
const holdEnv = "SHMKIT_TEST_HOLD"

func holdSegment(name string) {
	seg, err := shm.Open(name)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("ready\n")
	time.Sleep(time.Hour) // attached until killed
	seg.Close()
	os.Exit(0)
}

func startHolder(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("holder: %q, %v", line, err)
	}
	return cmd
}

// TestGcSparesLiveAndStoppedParticipants: `shmkit gc --force` removes a
// segment only once the kernel proves every participant dead. A stopped
// participant is alive.
func TestGcSparesLiveAndStoppedParticipants(t *testing.T) {
	t.Setenv(shm.DirEnv, t.TempDir())
	q, err := ringbuf.Create("held", ringbuf.Options{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	q.Close() // only the holder process stays attached
	holder := startHolder(t, "held")
	exists := func() bool { _, err := os.Stat(shm.Path("held")); return err == nil }

	code, out, _ := runCmd(t, "gc", "--force")
	if code != 0 || !exists() || !strings.Contains(out, "keep   held") {
		t.Fatalf("gc with a live participant: code %d, exists %v, out:\n%s", code, exists(), out)
	}
	holder.Process.Signal(syscall.SIGSTOP)
	code, out, _ = runCmd(t, "gc", "--force")
	if code != 0 || !exists() {
		t.Fatalf("gc removed a segment whose participant is only stopped: code %d, out:\n%s", code, out)
	}
	if code, out, _ = runCmd(t, "ls"); code != 0 || !strings.Contains(out, "in use") {
		t.Fatalf("ls with a stopped participant: code %d, out:\n%s", code, out)
	}
	holder.Process.Signal(syscall.SIGCONT)
	holder.Process.Kill()
	holder.Wait()
	code, out, _ = runCmd(t, "gc")
	if code != 0 || !exists() || !strings.Contains(out, "stale  held") {
		t.Fatalf("dry-run gc: code %d, exists %v, out:\n%s", code, exists(), out)
	}
	code, out, _ = runCmd(t, "gc", "--force")
	if code != 0 || exists() || !strings.Contains(out, "remove held") {
		t.Fatalf("gc after the last participant died: code %d, exists %v, out:\n%s", code, exists(), out)
	}
}

func TestStatAndLsErrors(t *testing.T) {
	t.Setenv(shm.DirEnv, t.TempDir())
	if code, _, errOut := runCmd(t, "stat", "missing"); code == 0 || !strings.Contains(errOut, "gone") {
		t.Fatalf("stat of a missing queue: %d %q", code, errOut)
	}
	os.WriteFile(shm.Path("foreign"), []byte("not ours"), 0o600)
	if code, out, _ := runCmd(t, "ls"); code != 0 || !strings.Contains(out, "corrupt") {
		t.Fatalf("ls with a foreign file: %d\n%s", code, out)
	}
	if code, out, _ := runCmd(t, "gc", "--force"); code != 0 || !strings.Contains(out, "skip   foreign") {
		t.Fatalf("gc with a foreign file: %d\n%s", code, out)
	}
	if _, err := os.Stat(shm.Path("foreign")); err != nil {
		t.Fatal("gc removed a file it cannot read")
	}
	q, _ := ringbuf.Create("q", ringbuf.Options{Capacity: 4096})
	defer q.Unlink()
	defer q.Close()
	q.TryPut([]byte("x"))
	if code, out, _ := runCmd(t, "stat", "q"); code != 0 || !strings.Contains(out, "depth 1 messages") {
		t.Fatalf("stat: %d\n%s", code, out)
	}
}
