package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/manager"
)

func TestManagerFlags(t *testing.T) {
	if code, _, e := runCmd(t, "manager", "-h"); code != exitOK || !strings.Contains(e, "-socket") || !strings.Contains(e, "-key-file") {
		t.Fatalf("manager -h: %d %q", code, e)
	}
	if code, _, e := runCmd(t, "manager", "--tcp", "127.0.0.1:0"); code != exitUsage || !strings.Contains(e, "needs --key-file") {
		t.Fatalf("manager --tcp without a key: %d %q", code, e)
	}
}

// TestManagerCommand: `shmkit manager` in a real process prints its
// address, writes a key, serves a client, and exits 130 on SIGTERM.
func TestManagerCommand(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "run", "m.sock")
	cmd := exec.Command(exe, "manager", "--socket", sock)
	cmd.Env = append(os.Environ(), asCommandEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	var serving string
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "serving on ") {
			serving = l
			break
		}
	}
	if !strings.Contains(serving, "unix:"+sock) {
		t.Fatalf("printed %q", serving)
	}
	keyFile := filepath.Join(filepath.Dir(sock), "key")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	key, err := manager.ReadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := manager.Dial(ctx, "unix:"+sock, manager.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Dict("d").Add(ctx, "n", 5); err != nil || n != 5 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
