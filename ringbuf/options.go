package ringbuf

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
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

// Defaults of Options, and the limits Create checks.
const (
	DefaultCapacity     = 1 << 20           // bytes
	DefaultMPMCMessage  = 4 << 10           // MaxMessage of an MPMC queue
	DefaultParticipants = 128               // processes attached at once
	DefaultSpin         = futex.DefaultSpin // bound of a blocked call's spin
	MaxCapacity         = 1 << 36
	MaxMessageLimit     = 1 << 30
)

// Options configure a Queue at creation; they are recorded in the segment
// and read back by Open (except Spin and BusyPoll, which are per handle).
type Options struct {
	// Mode is SPSC or MPMC (default SPSC).
	Mode Mode
	// Capacity is the ring size in bytes (default DefaultCapacity). SPSC
	// rounds it up to a power of two, at least 64; MPMC divides it into
	// slots of MaxMessage plus a 16-byte header rounded up to 64 bytes,
	// rounded down to a power of two (at least 2 slots).
	Capacity int
	// MaxMessage is the largest message in bytes. The default is the
	// largest that fits for SPSC: half the capacity less a record header
	// (an SPSC record takes len+8 bytes rounded up to 8, and the ring must
	// hold two); DefaultMPMCMessage for MPMC.
	MaxMessage int
	// Spin bounds how long a blocked call of this handle re-checks the ring
	// before it sleeps in the kernel (0: DefaultSpin; negative: never
	// spin). Within the bound the handle adapts (see futex.Spinner): a wait
	// that ended within 4x the current budget doubles it, a longer one
	// halves it, down to 1 µs. Spinning is skipped when the peer cannot run
	// meanwhile (GOMAXPROCS or the CPUs available is 1).
	Spin time.Duration
	// BusyPoll makes blocked calls of this handle poll instead of sleeping:
	// lowest latency, one CPU kept busy. The poller gives its CPU away
	// (sched_yield) every 1024 checks, so a peer sharing the CPU still runs.
	BusyPoll bool
	// Participants bounds how many processes may attach at once (default
	// DefaultParticipants).
	Participants int
}

func (o *Options) fill() error {
	if o.Mode == 0 {
		o.Mode = SPSC
	}
	if o.Capacity == 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Participants == 0 {
		o.Participants = DefaultParticipants
	}
	if o.Capacity < 0 || o.Capacity > MaxCapacity || o.MaxMessage < 0 || o.MaxMessage > MaxMessageLimit || o.Participants < 0 {
		return ErrInvalid
	}
	switch o.Mode {
	case SPSC:
		o.Capacity = 1 << bits.Len64(uint64(max(o.Capacity, 64)-1))
		if o.MaxMessage == 0 {
			o.MaxMessage = o.Capacity/2 - recHdr
		}
		if 2*recSize(uint64(o.MaxMessage)) > uint64(o.Capacity) {
			return fmt.Errorf("%w: SPSC capacity %d cannot hold two records of %d bytes", ErrInvalid, o.Capacity, o.MaxMessage)
		}
	case MPMC:
		if o.MaxMessage == 0 {
			o.MaxMessage = DefaultMPMCMessage
		}
	default:
		return ErrInvalid
	}
	return nil
}

func slotSizeFor(maxMsg int) uint64 { return (slotHdr + uint64(maxMsg) + 63) &^ 63 }

// layoutFor returns the ring's byte size and the capacity word (SPSC
// bytes, MPMC slots).
func layoutFor(o *Options) (ringBytes, capWord uint64) {
	if o.Mode == SPSC {
		return uint64(o.Capacity), uint64(o.Capacity)
	}
	ss := slotSizeFor(o.MaxMessage)
	n := max(uint64(o.Capacity)/ss, 2)
	n = 1 << (bits.Len64(n) - 1) // round down to a power of two
	return n * ss, n
}
