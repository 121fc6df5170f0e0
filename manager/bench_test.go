package manager

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
)

// BenchmarkDictSetGet: one Set and one Get per op from one client, as
// redis-benchmark's SET/GET at -c 1 -P 1 (ns/op is two round trips);
// "parallel" runs 16 goroutines on the one client, pipelining.
func BenchmarkDictSetGet(b *testing.B) {
	for _, network := range []string{"shm", "unix", "tcp"} {
		b.Run(network, func(b *testing.B) {
			_, addr := serve(b, network, Options{})
			d := dial(b, addr).Dict("d")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Set(ctx, "k", 42); err != nil {
					b.Fatal(err)
				}
				var v int
				if err := d.Get(ctx, "k", &v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(network+"-16", func(b *testing.B) {
			_, addr := serve(b, network, Options{})
			d := dial(b, addr).Dict("d")
			ctx := context.Background()
			b.ReportAllocs()
			var wg sync.WaitGroup
			per := b.N/16 + 1
			b.ResetTimer()
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						d.Set(ctx, "k", 42)
						var v int
						d.Get(ctx, "k", &v)
					}
				}()
			}
			wg.Wait()
		})
	}
}

// BenchmarkDictSetGetProcess: the client in a child process, the server
// in this one; one Set and one Get per op, one call in flight.
func BenchmarkDictSetGetProcess(b *testing.B) {
	for _, network := range []string{"shm", "unix", "tcp"} {
		b.Run(network, func(b *testing.B) {
			_, addr := serve(b, network, Options{})
			ctx := context.Background()
			c := testutil.Spawn(b, "setget", testutil.Env("MGR_ADDR", addr), testutil.Env("N", strconv.Itoa(b.N)))
			if err := c.Await(ctx, "ready"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			c.Send("go")
			if err := c.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkDictBatchProcess: 4 client processes, each sending batches of
// 8 Sets and 8 Gets (16 in flight); ns/op is per request, all clients.
func BenchmarkDictBatchProcess(b *testing.B) {
	for _, network := range []string{"shm", "unix"} {
		b.Run(network, func(b *testing.B) {
			_, addr := serve(b, network, Options{})
			ctx := context.Background()
			const clients = 4
			batches := b.N/(clients*16) + 1
			var kids []*testutil.Child
			for i := 0; i < clients; i++ {
				c := testutil.Spawn(b, "setget-batch", testutil.Env("MGR_ADDR", addr), testutil.Env("N", strconv.Itoa(batches)))
				if err := c.Await(ctx, "ready"); err != nil {
					b.Fatal(err)
				}
				kids = append(kids, c)
			}
			b.ResetTimer()
			for _, c := range kids {
				c.Send("go")
			}
			for _, c := range kids {
				if err := c.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBatch16: one client sending batches of 8 Sets and 8 Gets to a
// server in this process (allocs/op are both sides' per batch).
func BenchmarkBatch16(b *testing.B) {
	_, addr := serve(b, "unix", Options{})
	c := dial(b, addr)
	ctx := context.Background()
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	b.ReportAllocs()
	for b.Loop() {
		bt := c.Batch()
		var gets [8]*Pending
		for _, k := range keys {
			bt.Dict("d").Set(k, "xxx")
		}
		for i, k := range keys {
			gets[i] = bt.Dict("d").Get(k)
		}
		if err := bt.Send(ctx); err != nil {
			b.Fatal(err)
		}
		for _, g := range gets {
			var s string
			if err := g.Decode(&s); err != nil || s != "xxx" {
				b.Fatal(s, err)
			}
		}
	}
}
