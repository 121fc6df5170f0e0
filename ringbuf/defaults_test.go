package ringbuf

import (
	"testing"

	"github.com/shmkit/shmkit/internal/futex"
)

// TestDocumentedDefaults checks the defaults that Options documents.
func TestDocumentedDefaults(t *testing.T) {
	q := newQ(t, Options{})
	if q.Mode() != SPSC || q.Cap() != DefaultCapacity || q.MaxMessage() != DefaultCapacity/2-recHdr {
		t.Errorf("zero Options: %v, capacity %d, max message %d; want spsc, %d, %d",
			q.Mode(), q.Cap(), q.MaxMessage(), DefaultCapacity, DefaultCapacity/2-recHdr)
	}
	if n := q.Segment().Info().Slots; n != DefaultParticipants {
		t.Errorf("participants %d, want %d", n, DefaultParticipants)
	}
	if b := q.cons.spin.Bound(); b != DefaultSpin || DefaultSpin != futex.DefaultSpin || futex.DefaultSpin.Microseconds() != 50 {
		t.Errorf("spin bound %v, DefaultSpin %v, futex.DefaultSpin %v; the docs say 50 µs", b, DefaultSpin, futex.DefaultSpin)
	}
	m := newQ(t, Options{Mode: MPMC})
	if m.MaxMessage() != DefaultMPMCMessage || DefaultMPMCMessage != 4<<10 {
		t.Errorf("MPMC max message %d, want %d", m.MaxMessage(), DefaultMPMCMessage)
	}
	// MPMC slots: MaxMessage plus the 16-byte header rounded up to 64
	// bytes, their count rounded down to a power of two.
	if want := 1 << 7; m.Cap() != want { // 1 MiB / 4160-byte slots = 252 → 128
		t.Errorf("MPMC slots %d, want %d", m.Cap(), want)
	}
	if stuckGrace.Milliseconds() != 10 || futex.ReclaimInterval.Milliseconds() != 5 {
		t.Errorf("stuckGrace %v, ReclaimInterval %v", stuckGrace, futex.ReclaimInterval)
	}
	if pollSlice.Milliseconds() != 50 {
		t.Errorf("pollSlice %v", pollSlice)
	}
}
