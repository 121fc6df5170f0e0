package manager_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shmkit/shmkit/manager"
)

// A server on a unix socket, and a client counting on it. In real use the
// server and each client are separate processes.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := os.MkdirTemp("", "mgr")
	defer os.RemoveAll(dir)
	key := []byte("a shared key, 16 bytes or more")

	ln, err := manager.ListenUnix(filepath.Join(dir, "run", "mgr.sock"))
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- manager.Serve(ctx, ln, manager.Options{Key: key}) }()

	c, err := manager.Dial(ctx, "unix:"+ln.Addr().String(), manager.Options{Key: key})
	if err != nil {
		fmt.Println(err)
		return
	}
	stats := c.Dict("stats")
	for i := 0; i < 3; i++ {
		stats.Add(ctx, "requests", 1) // atomic on the server: d[k] += 1 without a race
	}
	var n int
	stats.Get(ctx, "requests", &n)
	fmt.Println("requests:", n)

	q, _ := c.Queue(ctx, "jobs", 100)
	q.Put(ctx, "resize photo.jpg")
	var job string
	q.Get(ctx, &job)
	fmt.Println("job:", job)

	c.Close()
	cancel()
	<-served
	// Output:
	// requests: 3
	// job: resize photo.jpg
}

// Typed proxies: one type of value per object, returned rather than
// decoded into a pointer.
func ExampleNewDictOf() {
	ctx := context.Background()
	srv, err := manager.Start(ctx, manager.Options{}) // a server in a child process
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)

	type job struct {
		ID   int
		File string
	}
	jobs, _ := manager.NewQueueOf[job](ctx, srv.Client, "jobs", 100)
	jobs.Put(ctx, job{1, "photo.jpg"})
	j, _ := jobs.Get(ctx)
	fmt.Println("job:", j.ID, j.File)

	done := manager.NewDictOf[string](srv.Client, "done")
	done.Set(ctx, "photo.jpg", "resized")
	v, _ := done.Get(ctx, "photo.jpg")
	fmt.Println("photo.jpg:", v)
	if _, err := done.Get(ctx, "other.jpg"); errors.Is(err, manager.ErrNotFound) {
		fmt.Println("other.jpg: not found")
	}
	// Output:
	// job: 1 photo.jpg
	// photo.jpg: resized
	// other.jpg: not found
}
