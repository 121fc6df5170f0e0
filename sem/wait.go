package sem

import (
	"sync/atomic"
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/robust"
	"github.com/shmkit/shmkit/shm"
)

// Every object's words come first, each on a known 4- or 8-byte offset,
// then the event counts (internal/futex) its waiters sleep on. Objects are
// 64-byte aligned and event counts 8-byte aligned; their size depends on
// the segment's participant slots, so an object's size does too.

// objLayout computes an object's size from its fixed words (fixed bytes,
// a multiple of 8), its number of event counts, and trailing bytes.
func objLayout(seg *shm.Segment, fixed, ecs, tail int) (size int, ecOff func(i int) int) {
	es := seg.EventCountSize()
	return fixed + ecs*es + tail, func(i int) int { return fixed + i*es }
}

// eventCount returns the attachment's handle on the event count at off.
func eventCount(seg *shm.Segment, mem []byte, off int) (*futex.EventCount, error) {
	if off < 0 || off+seg.EventCountSize() > len(mem) {
		return nil, ErrInvalid
	}
	return seg.EventCount(mem[off : off+seg.EventCountSize()])
}

// word returns the atomic uint32 at off in an object's memory. Objects are
// 64-byte aligned and off is a multiple of 4, within the object's size.
func word(mem []byte, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off]))
}

func word64(mem []byte, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}

// unsafeWords views b as n atomic words; b is 4-byte aligned and long
// enough (checked by the caller).
func unsafeWords(b []byte, n int) []atomic.Uint32 {
	return unsafe.Slice((*atomic.Uint32)(unsafe.Pointer(&b[0])), n)
}

// newRobust builds the robust lock whose word is at mem[0] and whose
// waiters sleep on the event count at ecOff.
func newRobust(seg *shm.Segment, mem []byte, ecOff int) (*robust.Mutex, error) {
	ec, err := eventCount(seg, mem, ecOff)
	if err != nil {
		return nil, err
	}
	return robust.New(word(mem, 0), ec, uint32(seg.Self()),
		func(t uint32) bool { return seg.Alive(shm.Token(t)) }, seg), nil
}
