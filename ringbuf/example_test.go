package ringbuf_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shmkit/shmkit/ringbuf"
)

// A queue between goroutines here; another process would attach with
// ringbuf.Open (a named queue) or ringbuf.OpenFile(q.File()).
func ExampleQueue() {
	q, err := ringbuf.CreateAnonymous(ringbuf.Options{Mode: ringbuf.MPMC, Capacity: 64 << 10, MaxMessage: 256})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()

	for _, w := range []string{"to", "be", "or", "not"} {
		if err := q.Put(ctx, []byte(w)); err != nil {
			log.Fatal(err)
		}
	}
	q.Shutdown() // consumers drain what was put, then get ErrClosed

	for {
		msg, err := q.Get(ctx)
		if errors.Is(err, ringbuf.ErrClosed) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(msg))
	}
	// Output:
	// to
	// be
	// or
	// not
}

// Workers mark each task done; Join returns once all are.
func ExampleJoinableQueue() {
	j, err := ringbuf.CreateJoinableAnonymous(ringbuf.Options{Mode: ringbuf.MPMC, Capacity: 64 << 10, MaxMessage: 64})
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()

	var total atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msg, err := j.Get(ctx)
				if err != nil {
					return // ErrClosed: no more work
				}
				total.Add(int64(len(msg)))
				j.TaskDone()
			}
		}()
	}

	for i := 1; i <= 10; i++ {
		if err := j.Put(ctx, []byte(strings.Repeat("x", i))); err != nil {
			log.Fatal(err)
		}
	}
	if err := j.Join(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("unfinished:", j.Unfinished(), "bytes processed:", total.Load())

	j.Shutdown()
	wg.Wait()
	// Output:
	// unfinished: 0 bytes processed: 55
}

// A typed queue of pointer-free structs: Binary copies their memory, and
// neither Put nor Get allocates.
func ExampleTyped() {
	type sample struct {
		Sensor uint16
		OK     bool
		Value  float64
	}
	q, err := ringbuf.CreateAnonymous(ringbuf.Options{Capacity: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	codec, err := ringbuf.Binary[sample]()
	if err != nil {
		log.Fatal(err)
	}
	samples := ringbuf.NewTyped(q, codec)
	ctx := context.Background()

	if err := samples.Put(ctx, sample{Sensor: 7, OK: true, Value: 21.5}); err != nil {
		log.Fatal(err)
	}
	s, err := samples.Get(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", s)
	// Output:
	// {Sensor:7 OK:true Value:21.5}
}

// Values with strings, slices and maps travel with CBOR (compact) or JSON.
func ExampleCBOR() {
	type job struct {
		Name string
		Args []string
		Env  map[string]string
	}
	q, err := ringbuf.CreateAnonymous(ringbuf.Options{Capacity: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	jobs := ringbuf.NewTyped(q, ringbuf.CBOR[job]())
	ctx := context.Background()

	if err := jobs.Put(ctx, job{Name: "build", Args: []string{"-v", "./..."}, Env: map[string]string{"CGO_ENABLED": "0"}}); err != nil {
		log.Fatal(err)
	}
	got, err := jobs.Get(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Name, got.Args, got.Env)

	// Garbage on the queue is consumed and reported, never a panic.
	q.Put(ctx, []byte{0xff, 0x00})
	_, err = jobs.Get(ctx)
	fmt.Println(errors.Is(err, ringbuf.ErrDecode))
	// Output:
	// build [-v ./...] map[CGO_ENABLED:0]
	// true
}

// Two ends of a duplex pipe: whole messages with Send and Recv, or bytes
// through the net.Conn methods. A child process would get end b with
// b.File() and ringbuf.OpenPipeFile.
func ExampleNewPipe() {
	a, b, err := ringbuf.NewPipe(ringbuf.PipeOptions{Capacity: 64 << 10})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	ctx := context.Background()

	done := make(chan struct{})
	go func() { // the server end echoes in upper case
		defer close(done)
		for {
			msg, err := b.Recv(ctx)
			if err != nil {
				return // io.EOF once a closes its writing side
			}
			if err := b.Send(ctx, bytes.ToUpper(msg)); err != nil {
				return
			}
		}
	}()

	for _, m := range []string{"ping", "hello"} {
		if err := a.Send(ctx, []byte(m)); err != nil {
			log.Fatal(err)
		}
		reply, err := a.Recv(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(reply))
	}
	a.CloseWrite()
	<-done
	// Output:
	// PING
	// HELLO
}
