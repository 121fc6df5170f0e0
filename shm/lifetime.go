package shm

import (
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
)

// Pin keeps the segment mapped until Unpin: Close waits for it. It fails
// with ErrClosed once Close has begun. Packages that build blocking objects
// on a segment (sem, ringbuf) pin it around their slow paths and sleep on
// the segment's event counts, which Close interrupts, so that Close wakes
// them instead of unmapping under them. Pins must not nest.
func (s *Segment) Pin() error {
	s.closeMu.RLock()
	if s.closed || s.closing.Load() {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Unpin releases a Pin.
func (s *Segment) Unpin() { s.closeMu.RUnlock() }

// EventCountSize returns the bytes an event count takes in this segment
// (it has an announcement slot per participant slot).
func (s *Segment) EventCountSize() int { return futex.Size(int(s.hdr.partCap)) }

// EventCountSizeFor is EventCountSize for a segment of n participant slots
// (see WithParticipants), for sizing objects before the segment exists.
func EventCountSizeFor(n int) int { return futex.Size(min(max(n, 1), MaxSlots)) }

// EventCount returns this attachment's handle on the event count (see
// internal/futex) at mem, which must lie in the segment, 8-byte aligned,
// with EventCountSize bytes. Every caller asking for the same memory gets
// the same handle: the goroutines of one attachment share its announcement
// and its one kernel sleeper. Close interrupts its waiters with ErrClosed.
func (s *Segment) EventCount(mem []byte) (*futex.EventCount, error) {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.mem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	size := uintptr(s.EventCountSize())
	if len(mem) < int(size) || p < base || p-base > uintptr(len(s.mem))-size {
		return nil, errorf(ErrCorrupt, "event count outside the segment")
	}
	off := p - base
	s.ecMu.Lock()
	defer s.ecMu.Unlock()
	if e := s.ecs[off]; e != nil {
		return e, nil
	}
	if s.closing.Load() {
		return nil, ErrClosed
	}
	e, err := futex.NewEventCount(mem, int(s.hdr.partCap), s.slot, uint32(s.self), segHost{s}, ErrClosed)
	if err != nil {
		return nil, wrapErr(ErrCorrupt, err, "event count at offset %d", off)
	}
	if s.ecs == nil {
		s.ecs = map[uintptr]*futex.EventCount{}
	}
	s.ecs[off] = e
	return e, nil
}

// segHost gives event counts the kernel's word on liveness.
type segHost struct{ s *Segment }

func (h segHost) Alive(t uint32) bool { return h.s.Alive(Token(t)) }

// interruptWaiters closes every event count of this attachment, so that
// their waiters return ErrClosed and leave their pins.
func (s *Segment) interruptWaiters() {
	s.ecMu.Lock()
	for _, e := range s.ecs {
		e.Close()
	}
	s.ecMu.Unlock()
}

// Closing reports whether Close has begun.
func (s *Segment) Closing() bool { return s.closing.Load() }

// Contains reports whether addr lies in this attachment's mapping (a
// fault there means the segment's file was truncated under it).
func (s *Segment) Contains(addr uintptr) bool {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.mem)))
	return addr >= base && addr-base < uintptr(len(s.mem))
}
