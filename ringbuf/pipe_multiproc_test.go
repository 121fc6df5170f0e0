package ringbuf

// Pipe between real processes: the parent makes an anonymous pipe, hands
// end B to a child as an inherited file, and talks to it with net/rpc,
// net/http and raw bytes; and a killed child is detected.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/rpc"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
)

func init() {
	roles["pipe-rpc"] = pipeRPCChild
	roles["pipe-http"] = pipeHTTPChild
	roles["pipe-echo"] = pipeEchoChild
	roles["pipe-hold"] = pipeHoldChild
}

// spawnPipe makes an anonymous pipe and starts role in a child holding
// end B. It returns end A.
func spawnPipe(t *testing.T, role string, o PipeOptions) (*Conn, *testutil.Child) {
	t.Helper()
	a, b, err := NewPipe(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	f, err := b.File()
	if err != nil {
		t.Fatal(err)
	}
	b.Close() // never used: the child takes end B
	c := testutil.Spawn(t, role, testutil.Files(f))
	f.Close()
	return a, c
}

// pipeChildConn opens end B of the pipe the parent passed.
func pipeChildConn() (*Conn, error) {
	f := testutil.InheritedFile(0)
	defer f.Close()
	return OpenPipeFile(f)
}

// ---- net/rpc ----

// PipeRPC is the service the rpc child serves.
type PipeRPC struct{}

// PipeSumArgs are the arguments of PipeRPC.Sum.
type PipeSumArgs struct{ A, B int }

// Sum adds.
func (PipeRPC) Sum(args PipeSumArgs, reply *int) error {
	*reply = args.A + args.B
	return nil
}

// Digest returns the SHA-256 of args and its length.
func (PipeRPC) Digest(args []byte, reply *string) error {
	*reply = fmt.Sprintf("%x/%d", sha256.Sum256(args), len(args))
	return nil
}

// Reverse returns args reversed.
func (PipeRPC) Reverse(args []byte, reply *[]byte) error {
	out := make([]byte, len(args))
	for i, b := range args {
		out[len(args)-1-i] = b
	}
	*reply = out
	return nil
}

// Fail returns args as an error.
func (PipeRPC) Fail(args string, reply *string) error { return errors.New(args) }

func pipeRPCChild(ctx context.Context) error {
	c, err := pipeChildConn()
	if err != nil {
		return err
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Pipe", PipeRPC{}); err != nil {
		return err
	}
	srv.ServeConn(c) // until the client hangs up; it closes c
	return nil
}

func TestPipeMultiprocRPC(t *testing.T) {
	ctx := testutil.Context(t)
	a, child := spawnPipe(t, "pipe-rpc", PipeOptions{Capacity: 64 << 10, MaxMessage: 16 << 10})
	client := rpc.NewClient(a)
	defer client.Close()

	var sum int
	if err := client.Call("Pipe.Sum", PipeSumArgs{A: 40, B: 2}, &sum); err != nil || sum != 42 {
		t.Fatalf("Sum = %d, %v", sum, err)
	}
	big := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	var digest string
	if err := client.Call("Pipe.Digest", big, &digest); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x/%d", sha256.Sum256(big), len(big)); digest != want {
		t.Fatalf("Digest = %s, want %s", digest, want)
	}
	var rev []byte
	if err := client.Call("Pipe.Reverse", big[:300<<10], &rev); err != nil || len(rev) != 300<<10 || rev[0] != big[300<<10-1] || rev[len(rev)-1] != big[0] {
		t.Fatalf("Reverse: %v, %d bytes", err, len(rev))
	}
	var s string
	if err := client.Call("Pipe.Fail", "no such thing", &s); err == nil || err.Error() != "no such thing" {
		t.Fatalf("Fail = %v", err)
	}
	// Concurrent calls share the connection.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			var r int
			if err := client.Call("Pipe.Sum", PipeSumArgs{A: i, B: i}, &r); err != nil || r != 2*i {
				t.Errorf("Sum(%d, %d) = %d, %v", i, i, r, err)
			}
		})
	}
	wg.Wait()
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// ---- net/http ----

// oneConnListener accepts c once, then blocks until closed.
type oneConnListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{conns: make(chan net.Conn, 1), done: make(chan struct{}), addr: c.LocalAddr()}
	l.conns <- c
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }

func pipeHTTPChild(ctx context.Context) error {
	c, err := pipeChildConn()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s over %s", r.URL.Query().Get("name"), r.Context().Value(http.LocalAddrContextKey).(net.Addr).Network())
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		// Read all before answering: an HTTP/1 server that answers with
		// much of the body unread closes the connection after the reply.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	gone := make(chan struct{})
	var goneOnce sync.Once
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				goneOnce.Do(func() { close(gone) })
			}
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(newOneConnListener(c)) }()
	select {
	case <-gone: // the client hung up and the server closed the conn
	case <-ctx.Done():
	}
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ctx.Err()
}

func TestPipeMultiprocHTTP(t *testing.T) {
	ctx := testutil.Context(t)
	a, child := spawnPipe(t, "pipe-http", PipeOptions{Capacity: 64 << 10})
	// The pipe is one connection. The transport may dial again while a
	// finished response returns the connection to its idle pool; such a
	// dial waits, and the request takes the connection when it is back.
	var dials atomic.Int32
	stop := make(chan struct{})
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) == 1 {
				return a, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-stop:
				return nil, errors.New("the pipe is one connection")
			case <-time.After(2 * time.Second):
				return nil, errors.New("the pipe is one connection (timeout)")
			}
		},
		MaxIdleConnsPerHost: 1,
	}
	defer tr.CloseIdleConnections()
	defer close(stop)
	client := &http.Client{Transport: tr}
	do := func(method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, "http://pipe"+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Close {
			t.Errorf("%s %s: the server closes the connection", method, path)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, got
	}
	if code, body := do("GET", "/hello?name=parent", nil); code != 200 || string(body) != "hello parent over shmkit" {
		t.Fatalf("GET /hello = %d %q", code, body)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB, several ring laps
	if code, body := do("POST", "/echo", payload); code != 200 || !bytes.Equal(body, payload) {
		t.Fatalf("POST /echo = %d, %d bytes", code, len(body))
	}
	if code, _ := do("GET", "/missing", nil); code != http.StatusNotFound {
		t.Fatalf("GET /missing = %d", code)
	}
	if code, body := do("GET", "/hello?name=again", nil); code != 200 || !strings.HasPrefix(string(body), "hello again") {
		t.Fatalf("GET /hello = %d %q", code, body)
	}
	tr.CloseIdleConnections() // closes a: the child's server sees EOF
	if err := child.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// ---- raw bytes ----

func pipeEchoChild(ctx context.Context) error {
	c, err := pipeChildConn()
	if err != nil {
		return err
	}
	if _, err := io.Copy(c, c); err != nil {
		c.Close()
		return err
	}
	return c.Close()
}

func TestPipeMultiprocStream(t *testing.T) {
	ctx := testutil.Context(t)
	a, child := spawnPipe(t, "pipe-echo", PipeOptions{Capacity: 256 << 10, MaxMessage: 32 << 10})
	data := make([]byte, 4<<20)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	werr := make(chan error, 1)
	go func() {
		_, err := io.Copy(a, &pipeOddReader{r: bytes.NewReader(data), sizes: []int{100000, 1, 4096, 33000}})
		if err == nil {
			err = a.CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, &pipeOddReader{r: a, sizes: []int{7, 65536, 1000}})
	if err != nil || n != int64(len(data)) {
		t.Fatalf("echoed %d bytes, %v", n, err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("checksum differs")
	}
	if err := child.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// ---- a killed peer ----

func pipeHoldChild(ctx context.Context) error {
	c, err := pipeChildConn()
	if err != nil {
		return err
	}
	defer c.Close()
	testutil.Signal("ready")
	<-ctx.Done() // until killed
	return ctx.Err()
}

func TestPipeMultiprocPeerKilled(t *testing.T) {
	ctx := testutil.Context(t)
	a, child := spawnPipe(t, "pipe-hold", PipeOptions{Capacity: 4096, MaxMessage: 1000})
	if err := child.Await(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		what string
		err  error
		at   time.Time
	}
	results := make(chan result, 2)
	go func() {
		_, err := a.Recv(ctx)
		results <- result{"Recv", err, time.Now()}
	}()
	go func() { // nobody reads: the ring fills and Write waits
		_, err := a.Write(make([]byte, 64<<10))
		results <- result{"Write", err, time.Now()}
	}()
	time.Sleep(150 * time.Millisecond) // several liveness checks of a live peer
	select {
	case r := <-results:
		t.Fatalf("%s returned while the peer lived: %v", r.what, r.err)
	default:
	}
	killed := time.Now()
	if err := child.Kill(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case r := <-results:
			if !errors.Is(r.err, ErrPeerDead) {
				t.Errorf("%s after the peer died = %v, want ErrPeerDead", r.what, r.err)
			}
			if d := r.at.Sub(killed); d > time.Second {
				t.Errorf("%s took %v to notice", r.what, d)
			} else {
				t.Logf("%s noticed the death after %v", r.what, d)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("blocked call not released by the peer's death")
		}
	}
	// Later calls fail too instead of hanging.
	start := time.Now()
	if ok, err := a.Poll(-1); ok || !errors.Is(err, ErrPeerDead) || time.Since(start) > time.Second {
		t.Fatalf("Poll = %v, %v after %v", ok, err, time.Since(start))
	}
}
