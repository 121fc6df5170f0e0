package shm_test

import (
	"context"
	"fmt"
	"os"

	"github.com/shmkit/shmkit/shm"
)

func Example() {
	dir, _ := os.MkdirTemp("", "shmkit-example")
	defer os.RemoveAll(dir)
	os.Setenv(shm.DirEnv, dir) // tests and examples keep out of /dev/shm

	seg, err := shm.Create("jobs", 1<<20)
	if err != nil {
		panic(err)
	}
	defer shm.Unlink("jobs")
	defer seg.Close()
	done, _ := shm.NewValue[int64](seg, "done")
	done.Add(3)

	// Another process (here: another handle) opens it by name.
	peer, err := shm.Open("jobs")
	if err != nil {
		panic(err)
	}
	defer peer.Close()
	n, _ := shm.LookupValue[int64](peer, "done")
	fmt.Println(n.Add(1), seg.Alive(peer.Self()))
	// Output: 4 true
}

func ExampleArray() {
	seg, _ := shm.CreateAnonymous(1 << 16)
	defer seg.Close()
	type point struct{ X, Y float64 }
	a, _ := shm.NewArray[point](seg, "path", 3)
	ctx := context.Background()
	a.Lock(ctx) // Python's Array(lock=True): guard multi-element updates
	for i := range a.Slice() {
		a.Slice()[i] = point{float64(i), float64(i * i)}
	}
	a.Unlock()
	p, _ := a.Load(2)
	_, err := a.Load(3)
	fmt.Println(p, err != nil)
	// Output: {2 4} true
}

func ExampleCreateAnonymous() {
	seg, _ := shm.CreateAnonymous(4096)
	defer seg.Close()
	// seg.File() goes to a child through exec.Cmd.ExtraFiles; the child
	// attaches with shm.OpenFile(os.NewFile(3, "seg")). Here, in-process:
	f, _ := seg.File()
	defer f.Close()
	peer, err := shm.OpenFile(f)
	if err != nil {
		panic(err)
	}
	defer peer.Close()
	v, _ := shm.NewValue[float64](seg, "pi")
	v.Store(3.14159)
	w, _ := shm.LookupValue[float64](peer, "pi")
	fmt.Println(w.Load())
	// Output: 3.14159
}
