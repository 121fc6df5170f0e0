//go:build linux

package robust

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestScribbledWord: garbage in the lock word from a buggy peer yields
// errors, never a panic or a hang for TryLock/Unlock.
func TestScribbledWord(t *testing.T) {
	var w atomic.Uint32
	m := New(&w, 7, func(uint32) bool { return true }, nil)
	for _, v := range []uint32{OwnerMask, Waiters | 3, OwnerDied, OwnerDied | Waiters, 0xffffffff} {
		w.Store(v)
		if err := m.Unlock(); !errors.Is(err, ErrNotOwner) {
			t.Errorf("Unlock with word %#x = %v, want ErrNotOwner", v, err)
		}
		if err := m.TryLock(); err == nil && v&OwnerMask != 0 {
			t.Errorf("TryLock took a word %#x held by a live owner", v)
		}
	}
}

// TestWaitersBitWakes: many goroutines on separate handles (as separate
// processes would be) hand the lock around; every one finishes.
func TestWaitersBitWakes(t *testing.T) {
	var w atomic.Uint32
	alive := func(uint32) bool { return true }
	var wg sync.WaitGroup
	var n int
	for id := uint32(1); id <= 4; id++ {
		m := New(&w, id, alive, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				if err := m.Lock(context.Background()); err != nil {
					t.Error(err)
					return
				}
				n++
				m.Unlock()
			}
		}()
	}
	wg.Wait()
	if n != 80000 || w.Load() != 0 {
		t.Fatalf("n = %d, word %#x", n, w.Load())
	}
}
