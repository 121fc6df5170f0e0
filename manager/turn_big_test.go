package manager

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTurnBigFrames: holders interrupted mid-frame (large replies, short
// ctxs) must leave the stream intact for the next holder.
func TestTurnBigFrames(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		c := dial(t, addr)
		bg := context.Background()
		d := c.Dict("big")
		vals := make([][]byte, 6)
		for i := range vals {
			vals[i] = bytes.Repeat([]byte{byte('a' + i)}, 1000+i*90000) // up to ~450 KB
			if err := d.Set(bg, strconv.Itoa(i), vals[i]); err != nil {
				t.Fatal(err)
			}
		}
		var progress atomic.Int64
		stop := watchdog(t, &progress, 20*time.Second)
		defer stop()
		var wg sync.WaitGroup
		var ok, timedOut atomic.Int64
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), 9))
				for i := 0; i < 150; i++ {
					k := r.IntN(len(vals))
					ctx, cancel := context.Background(), context.CancelFunc(func() {})
					if g%3 != 0 {
						ctx, cancel = context.WithTimeout(bg, time.Duration(r.IntN(6000))*time.Microsecond)
					}
					var v []byte
					err := d.Get(ctx, strconv.Itoa(k), &v)
					cancel()
					progress.Add(1)
					switch {
					case err == nil:
						ok.Add(1)
						if !bytes.Equal(v, vals[k]) {
							t.Errorf("key %d: %d bytes, want %d", k, len(v), len(vals[k]))
						}
					case errors.Is(err, context.DeadlineExceeded):
						timedOut.Add(1)
					default:
						t.Errorf("Get: %v", err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
		t.Logf("%d ok, %d timed out", ok.Load(), timedOut.Load())
	})
}

// TestTurnServerDies: the server closes while calls read and wait.
func TestTurnServerDies(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		for round := 0; round < 5; round++ {
			s, addr := serve(t, network, Options{})
			c := dial(t, addr)
			bg := context.Background()
			q, err := c.Queue(bg, "q", 0)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), uint64(round)))
					for i := 0; ; i++ {
						if err := mixedOp(g, i, r, c, q); errors.Is(err, ErrClosed) {
							return
						}
					}
				}(g)
			}
			time.Sleep(time.Duration(2+round) * time.Millisecond)
			s.Close()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("calls did not return after the server closed")
			}
		}
	})
}
