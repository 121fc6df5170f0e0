//go:build linux

package robust

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
)

type allAlive struct{}

func (allAlive) Alive(uint32) bool { return true }

// lockMem is a lock word followed by an event count for slots participants,
// in 8-byte aligned memory.
func lockMem(slots int) (*atomic.Uint32, []byte) {
	words := make([]uint64, 1+futex.Size(slots)/8)
	word := (*atomic.Uint32)(unsafe.Pointer(&words[0]))
	return word, unsafe.Slice((*byte)(unsafe.Pointer(&words[1])), futex.Size(slots))
}

func newHandle(t testing.TB, word *atomic.Uint32, mem []byte, slots, slot int, alive func(uint32) bool) *Mutex {
	t.Helper()
	ec, err := futex.NewEventCount(mem, slots, slot, uint32(slot+1), allAlive{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return New(word, ec, uint32(slot+1), alive, nil)
}

// TestScribbledWord: garbage in the lock word from a buggy peer yields
// errors, never a panic or a hang for TryLock/Unlock.
func TestScribbledWord(t *testing.T) {
	w, mem := lockMem(8)
	m := newHandle(t, w, mem, 8, 6, func(uint32) bool { return true })
	for _, v := range []uint32{OwnerMask, 1<<31 | 3, OwnerDied, OwnerDied | 1<<31, 0xffffffff} {
		w.Store(v)
		if err := m.Unlock(); !errors.Is(err, ErrNotOwner) {
			t.Errorf("Unlock with word %#x = %v, want ErrNotOwner", v, err)
		}
		if err := m.TryLock(); err == nil && v&OwnerMask != 0 {
			t.Errorf("TryLock took a word %#x held by a live owner", v)
		}
	}
}

// TestHandOff: goroutines on separate handles (as separate processes would
// be) hand the lock around; every one finishes, and nobody is left
// announced.
func TestHandOff(t *testing.T) {
	w, mem := lockMem(8)
	alive := func(uint32) bool { return true }
	var wg sync.WaitGroup
	var n int
	var ecs []*futex.EventCount
	for slot := 0; slot < 4; slot++ {
		m := newHandle(t, w, mem, 8, slot, alive)
		ecs = append(ecs, m.EventCount())
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10000; i++ {
					if err := m.Lock(context.Background()); err != nil {
						t.Error(err)
						return
					}
					n++
					m.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if n != 80000 || w.Load() != 0 || ecs[0].Waiting() {
		t.Fatalf("n = %d, word %#x, waiting %v", n, w.Load(), ecs[0].Waiting())
	}
}
