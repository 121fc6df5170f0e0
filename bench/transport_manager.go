package bench

// Manager Queue transports: a manager server in its own process (started
// by the runner with manager.Start), the runner's side and the peer's
// side each a client, the messages Put and Got through a server Queue:
// three processes, a round trip to the server per Put and per Get. Over
// the shared-memory Pipe (manager-queue-shm) or kept on the unix socket
// (manager-queue-unix).

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shmkit/shmkit/manager"
)

type managerEP struct {
	c       *manager.Client
	out, in *manager.Queue
	srv     *manager.Child // the runner's side owns the server
	buf     []byte
}

func (e *managerEP) send(ctx context.Context, f []byte) error { return e.out.Put(ctx, f[headroom:]) }

func (e *managerEP) recv(ctx context.Context, p []byte) (int, error) {
	if err := e.in.Get(ctx, &e.buf); err != nil {
		return 0, err
	}
	if len(e.buf) > len(p) {
		return 0, fmt.Errorf("manager queue: a %d-byte message for a %d-byte buffer", len(e.buf), len(p))
	}
	return copy(p, e.buf), nil
}

func (e *managerEP) interrupt() {} // the proxies' calls watch ctx

func (e *managerEP) close() error {
	err := e.c.Close()
	if e.srv != nil {
		err = errors.Join(err, e.srv.Shutdown(context.Background()))
	}
	return err
}

// managerQueueCap bounds the server's queue to about 8 MiB of messages.
func managerQueueCap(size int) int { return max(8, (8<<20)/max(size, 1)) }

func managerQueues(ctx context.Context, c *manager.Client, s cellSpec) (ping, pong *manager.Queue, err error) {
	if ping, err = c.Queue(ctx, "bench-ping", managerQueueCap(s.Size)); err != nil {
		return nil, nil, err
	}
	if pong, err = c.Queue(ctx, "bench-pong", managerQueueCap(s.Size)); err != nil {
		return nil, nil, err
	}
	return ping, pong, nil
}

func setupManager(s cellSpec, noShm bool) (*setup, error) {
	ctx := context.Background()
	srv, err := manager.Start(ctx, manager.Options{NoSharedMemory: noShm})
	if err != nil {
		return nil, fmt.Errorf("start manager: %w", err)
	}
	c := srv.Client
	ping, pong, err := managerQueues(ctx, c, s)
	if err != nil {
		srv.Shutdown(ctx)
		return nil, err
	}
	ep := &managerEP{c: c, out: ping, srv: srv}
	if s.rtt() {
		ep.in = pong
	}
	// The peer learns the address and key from a pipe: a line each.
	r, w, err := os.Pipe()
	if err != nil {
		ep.close()
		return nil, err
	}
	_, err = fmt.Fprintf(w, "%s\n%s\n", srv.Addr, hex.EncodeToString(srv.Key))
	w.Close()
	if err != nil {
		r.Close()
		ep.close()
		return nil, err
	}
	return &setup{eps: []endpoint{ep}, files: []*os.File{r}}, nil
}

func attachManager(s cellSpec, files []*os.File, noShm bool) ([]endpoint, error) {
	br := bufio.NewReader(io.LimitReader(files[0], 4<<10))
	addr, err1 := br.ReadString('\n')
	key, err2 := br.ReadString('\n')
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("manager address: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(key))
	if err != nil {
		return nil, fmt.Errorf("manager key: %w", err)
	}
	ctx := context.Background()
	c, err := manager.Dial(ctx, strings.TrimSpace(addr), manager.Options{Key: k, NoSharedMemory: noShm})
	if err != nil {
		return nil, err
	}
	ping, pong, err := managerQueues(ctx, c, s)
	if err != nil {
		c.Close()
		return nil, err
	}
	ep := &managerEP{c: c, in: ping}
	if s.rtt() {
		ep.out = pong
	}
	return []endpoint{ep}, nil
}
