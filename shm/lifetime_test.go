package shm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shmkit/shmkit/shm"
)

// TestCloseWakesBlockedLock: Close while another goroutine sleeps on an
// object of the segment wakes it with ErrClosed instead of unmapping the
// memory under it.
func TestCloseWakesBlockedLock(t *testing.T) {
	a, err := shm.CreateAnonymous(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f, _ := a.File()
	b, err := shm.OpenFile(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	arrA, _ := shm.NewArray[int64](a, "x", 4)
	arrB, _ := shm.LookupArray[int64](b, "x")
	ctx := context.Background()
	if err := arrA.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- arrB.Lock(ctx) }()
	time.Sleep(20 * time.Millisecond) // let it sleep in the kernel
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, shm.ErrClosed) {
			t.Fatalf("blocked Lock after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Lock not woken by Close")
	}
	if err := arrA.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestAllocZeroesFailedInit: memory an aborted init wrote is zeroed before
// the next object gets it.
func TestAllocZeroesFailedInit(t *testing.T) {
	s, err := shm.CreateAnonymous(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("boom")
	_, _, err = s.Alloc("a", shm.KindUser, 0, 64, func(mem []byte) error {
		for i := range mem {
			mem[i] = 0xff
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Alloc = %v", err)
	}
	_, mem, err := s.Alloc("b", shm.KindUser, 0, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range mem {
		if c != 0 {
			t.Fatalf("byte %d of a new object is %#x", i, c)
		}
	}
}

// TestFileHoldsNoLiveness: a file handed out for a child does not keep this
// handle's participant alive after it closes.
func TestFileHoldsNoLiveness(t *testing.T) {
	a, _ := shm.CreateAnonymous(1 << 16)
	f, err := a.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := shm.OpenFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tok := a.Self()
	if !b.Alive(tok) {
		t.Fatal("open handle reported dead")
	}
	a.Close()
	if b.Alive(tok) {
		t.Fatal("closed handle kept alive by the file it handed out")
	}
}

func TestZeroSizeArray(t *testing.T) {
	s, _ := shm.CreateAnonymous(1 << 16)
	defer s.Close()
	a, err := shm.NewArray[struct{}](s, "z", 10)
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 10 {
		t.Fatalf("Len = %d", a.Len())
	}
	if _, err := shm.LookupArray[struct{}](s, "z"); err != nil {
		t.Fatal(err)
	}
	// Same size, different layout: refused.
	type p struct{ A, B int32 }
	type q struct{ A int64 }
	if _, err := shm.NewArray[p](s, "p", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := shm.LookupArray[q](s, "p"); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("lookup with another layout = %v", err)
	}
}
