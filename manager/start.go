package manager

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Start runs a server in a child process (this executable, re-executed:
// the package's init serves instead of running the program) on a unix
// socket in a fresh 0700 directory, and returns it with a connected
// client. opts.Key may be empty: a random key is made.
//
// The child exits when the parent dies, however it dies: it holds the
// read end of a pipe whose only write end is the parent's, and exits at
// its EOF (Pdeathsig alone would fire when the thread that started it
// exits, which in Go is any thread).
func Start(ctx context.Context, opts Options) (*Child, error) {
	if len(opts.Key) == 0 {
		opts.Key = make([]byte, 32)
		rand.Read(opts.Key)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "shmkit-manager-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "sock")
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	keyR, keyW, err := os.Pipe()
	if err != nil {
		lifeR.Close()
		lifeW.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		lifeR.Close()
		lifeW.Close()
		keyR.Close()
		keyW.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envServe+"="+path)
	cmd.ExtraFiles = []*os.File{keyR, lifeR, readyW} // fds 3, 4, 5
	cmd.Stderr = os.Stderr
	err = cmd.Start()
	keyR.Close()
	lifeR.Close()
	readyW.Close()
	if err != nil {
		lifeW.Close()
		keyW.Close()
		readyR.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Child{cmd: cmd, life: lifeW, dir: dir, Addr: "unix:" + path, Key: o.Key, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(c.exited) }()
	fail := func(err error) (*Child, error) {
		c.kill()
		return nil, err
	}
	keyW.Write(o.Key)
	keyW.Close()
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(readyR).ReadString('\n')
		readyR.Close()
		if err == nil && line != "ready\n" {
			err = errors.New(strings.TrimSpace(line))
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			return fail(fmt.Errorf("manager: the server process did not start: %v", err))
		}
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	cl, err := Dial(ctx, c.Addr, o)
	if err != nil {
		return fail(err)
	}
	c.Client = cl
	return c, nil
}

// Child is a server process started by Start.
type Child struct {
	Client *Client // connected to it
	Addr   string  // its socket, for Dial
	Key    []byte  // the key it serves with (made by Start if opts had none)

	cmd    *exec.Cmd
	life   *os.File
	dir    string
	exited chan struct{}
}

// Pid returns the server process's pid.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Shutdown stops the server: its connections close, blocked calls fail,
// and the process exits; Shutdown waits for that until ctx ends (then it
// kills it).
func (c *Child) Shutdown(ctx context.Context) error {
	if c.Client != nil {
		c.Client.Close()
	}
	c.life.Close() // the child's EOF
	select {
	case <-c.exited:
	case <-ctx.Done():
		c.kill()
		return ctx.Err()
	}
	os.RemoveAll(c.dir)
	return nil
}

func (c *Child) kill() {
	c.life.Close()
	c.cmd.Process.Kill()
	<-c.exited
	os.RemoveAll(c.dir)
}

const envServe = "SHMKIT_MANAGER_SERVE"

func init() {
	path, ok := os.LookupEnv(envServe)
	if !ok {
		return
	}
	os.Unsetenv(envServe) // not for our children
	os.Exit(serveChild(path))
}

// serveChild is the server process of Start: key on fd 3, lifeline on fd
// 4, "ready" (or the error) on fd 5.
func serveChild(path string) int {
	keyF, life, ready := os.NewFile(3, "key"), os.NewFile(4, "lifeline"), os.NewFile(5, "ready")
	key := make([]byte, 1024)
	n, _ := readAll(keyF, key)
	keyF.Close()
	s, err := NewServer(Options{Key: key[:n]})
	var ln net.Listener
	if err == nil {
		ln, err = ListenUnix(path)
	}
	if err != nil {
		fmt.Fprintln(ready, err)
		return 1
	}
	ready.WriteString("ready\n")
	ready.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		var b [1]byte
		life.Read(b[:]) // returns at the parent's death or Shutdown
		cancel()
	}()
	s.Serve(ctx, ln)
	os.Remove(path)
	return 0
}

func readAll(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := f.Read(buf[n:])
		n += k
		if err != nil {
			return n, nil
		}
	}
	return n, nil
}
