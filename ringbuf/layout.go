package ringbuf

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// Mode selects the ring algorithm of a Queue.
type Mode uint32

const (
	// SPSC: one producer and one consumer (each may be any process, one at a
	// time). A byte ring of variable-length records: the fastest mode.
	SPSC Mode = 1
	// MPMC: any number of producers and consumers across processes. A ring
	// of fixed-size slots (MaxMessage each) with per-slot sequence numbers.
	MPMC Mode = 2
)

func (m Mode) String() string {
	switch m {
	case SPSC:
		return "spsc"
	case MPMC:
		return "mpmc"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

// Options configure a Queue at creation; they are recorded in the segment
// and read back by Open.
type Options struct {
	// Mode is SPSC or MPMC (default SPSC).
	Mode Mode
	// Capacity is the ring size in bytes (default 1 MiB). SPSC rounds it
	// up to a power of two; MPMC divides it into slots of MaxMessage plus a
	// 16-byte header, rounded down to a power of two (at least 2).
	Capacity int
	// MaxMessage is the largest message in bytes (default: Capacity/4 for
	// SPSC, 4 KiB for MPMC). An SPSC record takes len+8 bytes rounded up to
	// 8; MaxMessage must leave room for two records.
	MaxMessage int
	// Spin bounds how long a blocked call re-checks the ring before it
	// sleeps in the kernel (0 takes the default, 50 µs; negative disables
	// spinning). Within that bound the handle adapts: a wait that ended
	// within 4x the current budget doubles it, a longer one (the peer was
	// idle) halves it, down to 1 µs. Spinning is skipped when the peer
	// cannot run meanwhile: GOMAXPROCS or the CPUs available is 1.
	Spin time.Duration
	// BusyPoll makes blocked calls of this handle spin (yielding to the Go
	// scheduler) instead of sleeping: lowest latency, one CPU kept busy.
	BusyPoll bool
	// Participants bounds how many processes may attach (default 128).
	Participants int
}

// Control block layout, version 1. Lines are 128 bytes so that the
// adjacent-line prefetcher does not couple them.
const (
	line = 128

	// Config line: immutable after creation.
	cMode     = 0  // uint32
	cMaxMsg   = 4  // uint32
	cCapacity = 8  // uint64: SPSC bytes, or MPMC slots
	cSlotSize = 16 // uint32: MPMC slot size in bytes (0 for SPSC)
	// closed shares the read-mostly config line: every put reads it, and
	// it is written once.
	cClosed = 64 // uint32: 1 once closed

	// Producer line: SPSC tail / MPMC enqueue position; written by
	// producers only.
	cTail = 1 * line
	// SPSC producer role token (uint32) beside it.
	cProducer = cTail + 8
	// Consumer line: SPSC head / MPMC dequeue position.
	cHead     = 2 * line
	cConsumer = cHead + 8
	// Notifiers.
	cNotEmpty = 3 * line // seq @+0, waiters @+4: consumers sleep here
	cNotFull  = 4 * line // producers sleep here
	// State line.
	cUnfinished = 5*line + 8  // uint64: JoinableQueue tasks not yet done
	cJoinSeq    = 5*line + 16 // uint32: futex word for Join
	cJoinWait   = 5*line + 20 // uint32: Join waiters
	cDeadProd   = 5*line + 32 // uint64: MPMC slots skipped for dead producers
	cDeadCons   = 5*line + 40 // uint64: MPMC messages lost with dead consumers
	cPeerClosed = 5*line + 48 // uint32: Pipe: the writer side closed
	cStats      = 6 * line    // per-participant stats lines start here
	statsLine   = line        // one line per participant slot
	ctlFixed    = cStats      // bytes before the per-participant lines
)

// Per-participant stats line: each handle writes only its own line, with
// plain stores (single writer); readers sum all lines. Claims of MPMC
// positions also live here.
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

func ctlSize(participants int) int { return ctlFixed + statsLine*participants }

// ctl gives typed access to a queue's control block.
type ctl struct{ mem []byte }

func (c ctl) u32(off int) *atomic.Uint32 {
	_ = c.mem[off+3]
	return (*atomic.Uint32)(unsafe.Pointer(&c.mem[off]))
}

func (c ctl) u64(off int) *atomic.Uint64 {
	_ = c.mem[off+7]
	return (*atomic.Uint64)(unsafe.Pointer(&c.mem[off]))
}

// Stats are a queue's counters, summed over every process that used it.
// Counters are kept per participant and written without atomics, so a
// snapshot may lag a running process by a few operations.
type Stats struct {
	Puts, Gets         uint64 // messages
	BytesIn, BytesOut  uint64 // payload bytes
	Sleeps             uint64 // times a call went to sleep in the kernel
	Wakeups            uint64 // FUTEX_WAKE calls made
	FullEvents         uint64 // a put found the ring full
	EmptyEvents        uint64 // a get found the ring empty
	DeadProducerSlots  uint64 // MPMC slots skipped: their producer died mid-put
	DeadConsumerLosses uint64 // MPMC messages lost with a consumer that died mid-get
	Len                int    // messages queued now
	Closed             bool
	At                 time.Time
}
