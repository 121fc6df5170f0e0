package ringbuf

import (
	"sync/atomic"
	"unsafe"

	"github.com/shmkit/shmkit/shm"
)

// Control block layout (segment layout version 2, see shm.Version). Lines
// are 128 bytes so that the adjacent-line prefetcher does not couple them.
// Every field is little-endian at a fixed offset; the event counts' size
// depends on the segment's participant slots (ecSpan).
const (
	line = 128

	// Config line: immutable after creation.
	cMode     = 0  // uint32
	cMaxMsg   = 4  // uint32
	cCapacity = 8  // uint64: SPSC bytes, or MPMC slots
	cSlotSize = 16 // uint32: MPMC slot size in bytes (0 for SPSC)
	// The closed flag shares the read-mostly config line: every SPSC put
	// reads it, and it is written once, by Shutdown (spsc.go).
	cClosed = 64 // uint32: 1 once shut down

	// Producer line: the tail (SPSC byte position / MPMC enqueue position,
	// with closedBit), written by producers and by Shutdown.
	cTail = 1 * line
	// SPSC producer role token (uint32) beside it.
	cProducer = cTail + 8
	// Consumer line: SPSC head / MPMC dequeue position; SPSC consumer role.
	cHead     = 2 * line
	cConsumer = cHead + 8
	// State line.
	cUnfinished = 3*line + 0  // uint64: JoinableQueue tasks not yet done
	cDeadProd   = 3*line + 8  // uint64: MPMC slots skipped for dead producers
	cDeadCons   = 3*line + 16 // uint64: MPMC messages lost with dead consumers
	cAbandoned  = 3*line + 24 // uint64: MPMC reservations given up (skip records)
	cSkipped    = 3*line + 32 // uint64: MPMC skip records consumers passed
	cSeal       = 3*line + 40 // uint64: SPSC final position + 1, once sealed
	// Event counts (internal/futex) start here, each on lines of its own:
	// consumers sleep on notEmpty, producers on notFull, joiners on join.
	cEvents = 4 * line

	// Per-participant stats lines follow the event counts.
	statsLine = line
)

// closedBit in the tail word marks the queue shut down. MPMC: it makes
// every later claim (the tail CAS) fail, so a claimed position is
// published and delivered, and consumers that see the bit know the tail is
// final. SPSC: a publish that finds it settles the queue's end by the seal
// word (spsc.go).
const closedBit = 1 << 63

// Event counts of the control block.
const (
	evNotEmpty = iota
	evNotFull
	evJoin
	nEvents
)

// ecSpan is the room one event count takes in the control block of a
// segment with slots participant slots.
func ecSpan(slots int) int { return (shm.EventCountSizeFor(slots) + line - 1) / line * line }

func ctlSize(slots int) int { return cEvents + nEvents*ecSpan(slots) + statsLine*slots }

func statsOff(slots, slot int) int { return cEvents + nEvents*ecSpan(slots) + statsLine*slot }

// Per-participant stats line: each handle writes only its own, with plain
// stores (single writer); readers sum all lines. MPMC claims live here too.
const (
	sPuts     = 0
	sGets     = 8
	sBytesIn  = 16
	sBytesOut = 24
	sSleeps   = 32
	sWakeups  = 40
	sFull     = 48
	sEmpty    = 56
	sClaimPut = 64 // atomic uint64: MPMC position this producer is claiming, +1 (0: none)
	sClaimGet = 72 // atomic uint64: MPMC position this consumer is claiming, +1
)

// ctl gives typed access to a queue's control block. Offsets are constants
// or bounded by the size checked at attach.
type ctl struct{ mem []byte }

func (c ctl) u32(off int) *atomic.Uint32 {
	_ = c.mem[off+3]
	return (*atomic.Uint32)(unsafe.Pointer(&c.mem[off]))
}

func (c ctl) u64(off int) *atomic.Uint64 {
	_ = c.mem[off+7]
	return (*atomic.Uint64)(unsafe.Pointer(&c.mem[off]))
}

// counters is one participant's stats line.
type counters struct{ line []byte }

// add bumps a counter of this handle's own line: only this handle writes
// it (its calls hold the side's gate), so a plain add suffices; readers
// see it eventually.
func (c counters) add(off int, d uint64) { *(*uint64)(unsafe.Pointer(&c.line[off])) += d }

func (c counters) set(off int, v uint64) { *(*uint64)(unsafe.Pointer(&c.line[off])) = v }

func (c counters) u64(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&c.line[off]))
}
