package manager

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
)

var roles = map[string]testutil.Role{
	// setget does $N Set+Get pairs on dict "b".
	"setget": func(ctx context.Context) error {
		c, err := childClient(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		d := c.Dict("b")
		n, _ := strconv.Atoi(os.Getenv("N"))
		testutil.Signal("ready")
		if _, err := testutil.Recv(ctx); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := d.Set(ctx, "k", i); err != nil {
				return err
			}
			var v int
			if err := d.Get(ctx, "k", &v); err != nil {
				return err
			}
		}
		return nil
	},
	// setget-batch: N batches of 8 Sets and 8 Gets after "go".
	"setget-batch": func(ctx context.Context) error {
		c, err := childClient(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		n, _ := strconv.Atoi(os.Getenv("N"))
		testutil.Signal("ready")
		if _, err := testutil.Recv(ctx); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			b := c.Batch()
			for k := 0; k < 8; k++ {
				b.Dict("b").Set("k"+strconv.Itoa(k), i)
			}
			for k := 0; k < 8; k++ {
				b.Dict("b").Get("k" + strconv.Itoa(k))
			}
			if err := b.Send(ctx); err != nil {
				return err
			}
		}
		return nil
	},
	// starter starts a manager, uses it, reports its pid, and waits to be
	// killed.
	"starter": func(ctx context.Context) error {
		m, err := Start(ctx, Options{})
		if err != nil {
			return err
		}
		if _, err := m.Client.Dict("d").Add(ctx, "n", 1); err != nil {
			return err
		}
		if err := os.WriteFile(os.Getenv("PIDFILE"), []byte(strconv.Itoa(m.Pid())), 0o600); err != nil {
			return err
		}
		testutil.Signal("started")
		<-ctx.Done()
		return nil
	},
	// adder adds 1 to dict "d" key "n" $N times.
	"adder": func(ctx context.Context) error {
		c, err := childClient(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		d := c.Dict("d")
		n, _ := strconv.Atoi(os.Getenv("N"))
		for i := 0; i < n; i++ {
			if _, err := d.Add(ctx, "n", 1); err != nil {
				return err
			}
		}
		return nil
	},
	// locked-incr does Get+Set of "n" under lock "l", $N times.
	"locked-incr": func(ctx context.Context) error {
		c, err := childClient(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		d, l := c.Dict("d"), c.Lock("l")
		n, _ := strconv.Atoi(os.Getenv("N"))
		for i := 0; i < n; i++ {
			if err := l.Acquire(ctx); err != nil {
				return err
			}
			var v int64
			if err := d.Get(ctx, "n", &v); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if err := d.Set(ctx, "n", v+1); err != nil {
				return err
			}
			if err := l.Release(ctx); err != nil {
				return err
			}
		}
		return nil
	},
	// holder takes lock "l", says so, and waits to be killed.
	"holder": func(ctx context.Context) error {
		c, err := childClient(ctx)
		if err != nil {
			return err
		}
		if err := c.Lock("l").Acquire(ctx); err != nil {
			return err
		}
		testutil.Signal("held")
		<-ctx.Done()
		return nil
	},
}

func TestMain(m *testing.M) { testutil.Main(m, roles) }

// raceEnabled is set in -race builds (race_test.go), where the
// many-process tests do a fifth of the work: the race detector slows each
// call about tenfold, and the counts still catch a lost update.
var raceEnabled bool

// work scales a count for the race detector.
func work(n int) int {
	if raceEnabled {
		return n / 5
	}
	return n
}

var testKey = []byte("0123456789abcdef-test-key")

func childClient(ctx context.Context) (*Client, error) {
	return Dial(ctx, os.Getenv("MGR_ADDR"), Options{Key: testKey})
}

// serve starts a server on a unix socket in a fresh directory (network
// "shm": clients move to a shared-memory Pipe; "unix": the server keeps
// them on the socket) or TCP on 127.0.0.1, and returns its address.
func serve(t testing.TB, network string, o Options) (*Server, string) {
	t.Helper()
	if o.Key == nil {
		o.Key = testKey
	}
	o.NoSharedMemory = network == "unix" // the client asks; "unix" refuses
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	served := make(chan struct{})
	switch network {
	case "shm", "unix":
		path := filepath.Join(t.TempDir(), "m", "sock")
		l, err := ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		addr = "unix:" + path
		go func() { s.Serve(context.Background(), l); close(served) }()
	case "tcp":
		l, err := listenTCP()
		if err != nil {
			t.Fatal(err)
		}
		addr = "tcp:" + l.Addr().String()
		go func() { s.Serve(context.Background(), l); close(served) }()
	default:
		panic(network)
	}
	t.Cleanup(func() { s.Close(); <-served })
	return s, addr
}

func dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// networks: "shm" (clients ask for the Pipe, the server agrees), "unix"
// (the server refuses), "tcp".
var networks = []string{"shm", "unix", "tcp"}

func forNetworks(t *testing.T, f func(t *testing.T, network string)) {
	for _, n := range networks {
		t.Run(n, func(t *testing.T) { f(t, n) })
	}
}
