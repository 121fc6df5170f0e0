//go:build linux

package futex

import (
	"context"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestFaultLeavesNoLock: a waiter whose announcement faults (the file
// under the mapping was truncated) unwinds without holding the event
// count's lock, so a later Wait on the handle still honours its context.
func TestFaultLeavesNoLock(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "ec")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(2 * 4096); err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, 2*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	e, err := NewEventCount(mem[4096:], 8, 0, 100, &fakeHost{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	state := (*atomic.Uint32)(unsafe.Pointer(&mem[4096+1024]))
	first := make(chan any, 1)
	go func() {
		defer func(old bool) { first <- recover(); debug.SetPanicOnFault(old) }(debug.SetPanicOnFault(true))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		e.Wait(ctx, time.Time{}, nil, func() bool { return state.Load() != 0 })
	}()
	time.Sleep(100 * time.Millisecond) // asleep
	if err := f.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	if r := <-first; r == nil {
		t.Fatal("the first Wait did not fault")
	}
	second := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		// It returns, or faults on the truncated page: either, at once.
		defer func(old bool) { recover(); debug.SetPanicOnFault(old); close(second) }(debug.SetPanicOnFault(true))
		e.Wait(ctx, time.Time{}, nil, func() bool { return false })
	}()
	select {
	case <-second:
	case <-time.After(3 * time.Second):
		t.Fatal("a second Wait with a 100 ms context still blocked after 3 s: the lock was left held")
	}
}
