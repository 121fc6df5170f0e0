package testutil

// The child's side of Spawn (Signal, Recv, InheritedFile, Getenv) and
// the helpers tests call in either process (Name, Context, AwaitSleeper).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Child side. The few package-level values below are opened lazily and
// only ever used in a child process.

var childEvents = sync.OnceValue(func() *os.File {
	fd, ok := envInt(eventsFDEnv)
	if !ok {
		panic("testutil: Signal called outside a child started by Spawn")
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "testutil-events")
})

// Signal tells the parent that event happened; the parent's Await(event)
// returns. event must be non-empty without spaces or control characters.
// Safe for concurrent use.
func Signal(event string) {
	if event == "" || strings.ContainsFunc(event, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		panic(fmt.Sprintf("testutil: invalid event name %q", event))
	}
	// One write per line: os.File serialises concurrent writes, and a line
	// shorter than PIPE_BUF reaches the pipe whole.
	if _, err := childEvents().Write([]byte(event + "\n")); err != nil && !errors.Is(err, syscall.EPIPE) {
		// EPIPE means the parent is gone and nobody is listening; anything
		// else is a broken harness, which must not look like a slow child.
		panic(fmt.Sprintf("testutil: signal %q: %v", event, err))
	}
}

type lineFeed struct {
	lines chan string
	err   error // why the feed ended; written before lines is closed
}

var childStdin = sync.OnceValue(func() *lineFeed {
	if os.Getenv(RoleEnv) == "" {
		panic("testutil: Recv called outside a child started by Spawn")
	}
	f := &lineFeed{lines: make(chan string)}
	// A blocking read cannot honour ctx, so one goroutine reads and Recv
	// selects; a line read while nobody waits stays for the next Recv.
	go func() {
		br := bufio.NewReader(os.Stdin)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				f.err = err
				close(f.lines)
				return
			}
			f.lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	return f
})

// Recv returns the next line the parent sent with Send. It returns io.EOF
// (wrapped) once the parent has gone.
func Recv(ctx context.Context) (string, error) {
	f := childStdin()
	select {
	case line, ok := <-f.lines:
		if !ok {
			return "", fmt.Errorf("testutil: recv: %w", f.err)
		}
		return line, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

var inherited struct {
	sync.Mutex
	files map[int]*os.File
}

// InheritedFile returns the i-th file the parent passed with Files (fd
// 3+i). Repeated calls return the same *os.File, so closing it once is
// right. It panics if the parent passed fewer than i+1 files.
func InheritedFile(i int) *os.File {
	n, _ := envInt(filesEnv)
	if i < 0 || i >= n {
		panic(fmt.Sprintf("testutil: InheritedFile(%d): the parent passed %d file(s)", i, n))
	}
	inherited.Lock()
	defer inherited.Unlock()
	if f, ok := inherited.files[i]; ok {
		return f
	}
	if inherited.files == nil {
		inherited.files = make(map[int]*os.File)
	}
	f := os.NewFile(uintptr(3+i), "inherited-"+strconv.Itoa(i))
	inherited.files[i] = f
	return f
}

// Getenv is os.Getenv, for symmetry with Env.
func Getenv(key string) string { return os.Getenv(key) }

func envInt(key string) (int, bool) {
	n, err := strconv.Atoi(os.Getenv(key))
	return n, err == nil && n >= 0
}

// Helpers for both sides.

// nameSeq makes Name unique within a process; the pid makes it unique
// across the processes sharing a directory.
var nameSeq atomic.Uint64

// Name returns a segment name unique to this call: the test's name made
// safe ([A-Za-z0-9._-], not starting with '.'), the pid and a counter, at
// most 60 bytes.
func Name(tb testing.TB) string {
	tb.Helper()
	const maxLen = 60
	suffix := "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(nameSeq.Add(1), 10)
	b := []byte(tb.Name())
	for i, ch := range b {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '.', ch == '_', ch == '-':
		case ch == '/':
			b[i] = '.'
		default:
			b[i] = '_'
		}
	}
	base := strings.TrimLeft(string(b), ".")
	base = base[:min(len(base), maxLen-len(suffix))]
	if base == "" {
		base = "t"
	}
	return base + suffix
}

// Context returns a context that ends a little before the test's deadline
// (or in 2 minutes when it has none), so a blocked call fails with a
// message instead of the test binary's timeout panic. It is cancelled when
// the test ends.
func Context(tb testing.TB) context.Context {
	tb.Helper()
	d, ok := deadline(tb)
	if !ok {
		d = time.Now().Add(2 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(tb.Context(), d)
	tb.Cleanup(cancel)
	return ctx
}

// deadline is the test's deadline less a margin of a tenth of the time
// left, at most 10s, for reporting and cleanup.
func deadline(tb testing.TB) (time.Time, bool) {
	t, ok := tb.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return time.Time{}, false
	}
	d, ok := t.Deadline()
	if !ok {
		return time.Time{}, false
	}
	return d.Add(-min(time.Until(d)/10, 10*time.Second)), true
}

// AwaitSleeper waits until waiting reports true (someone announced itself
// asleep on a wait primitive), failing tb after 5 s, then gives the
// sleeper a moment to get from its announcement into FUTEX_WAIT.
func AwaitSleeper(tb testing.TB, waiting func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !waiting() {
		if time.Now().After(deadline) {
			tb.Fatal("nobody went to sleep")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
}
