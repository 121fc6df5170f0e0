package ringbuf

import (
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

// Object names inside a queue's segment; a Pipe's two queues prefix them.
const (
	objCtl  = "queue"
	objRing = "ring"
)

// segSize is the data size of a segment holding one queue.
func segSize(o *Options) int64 {
	ring, _ := layoutFor(o)
	return int64(ring) + int64(ctlSize(min(o.Participants, shm.MaxSlots))) + 2*shm.Align
}

// initObjects allocates and initializes a queue's ring and control block
// (named prefix+"ring", prefix+"queue") before the segment is visible.
func initObjects(seg *shm.Segment, prefix string, o *Options) error {
	ringBytes, capWord := layoutFor(o)
	ss := slotSizeFor(o.MaxMessage)
	_, _, err := seg.Alloc(prefix+objRing, shm.KindRing, uint32(o.Mode), int(ringBytes), func(mem []byte) error {
		if o.Mode == MPMC {
			for i := uint64(0); i < capWord; i++ {
				(*atomic.Uint64)(unsafe.Pointer(&mem[i*ss])).Store(i)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, _, err = seg.Alloc(prefix+objCtl, shm.KindQueue, uint32(o.Mode), ctlSize(seg.Info().Slots), func(mem []byte) error {
		c := ctl{mem}
		c.u32(cMode).Store(uint32(o.Mode))
		c.u32(cMaxMsg).Store(uint32(o.MaxMessage))
		c.u64(cCapacity).Store(capWord)
		if o.Mode == MPMC {
			c.u32(cSlotSize).Store(uint32(ss))
		}
		return nil
	})
	return err
}

// attachCore reads the queue's configuration once, validates it against
// the objects' real sizes, and builds this attachment's view of the queue
// named by prefix in seg. The caller keeps ownership of seg.
func attachCore(seg *shm.Segment, prefix string) (*core, error) {
	co, cmem, err := seg.Lookup(prefix+objCtl, shm.KindQueue, shm.AnyAux)
	if err != nil {
		return nil, err
	}
	_, ring, err := seg.Lookup(prefix+objRing, shm.KindRing, co.Aux)
	if err != nil {
		return nil, err
	}
	parts := seg.Info().Slots
	if len(cmem) < ctlSize(parts) {
		return nil, corruptf("control block of %d bytes for %d participants", len(cmem), parts)
	}
	c := &core{seg: seg, ctl: ctl{cmem}, ringMem: ring, parts: parts}
	mode := Mode(c.ctl.u32(cMode).Load())
	maxMsg := uint64(c.ctl.u32(cMaxMsg).Load())
	capWord := c.ctl.u64(cCapacity).Load()
	switch {
	case mode != Mode(co.Aux):
		return nil, corruptf("mode %d, object says %d", mode, co.Aux)
	case mode == SPSC:
		if capWord != uint64(len(ring)) || capWord < 64 || capWord&(capWord-1) != 0 || 2*recSize(maxMsg) > capWord {
			return nil, corruptf("SPSC capacity %d, ring %d bytes, max message %d", capWord, len(ring), maxMsg)
		}
	case mode == MPMC:
		ss := uint64(c.ctl.u32(cSlotSize).Load()) // read once
		if capWord < 2 || capWord&(capWord-1) != 0 || ss < slotHdr+maxMsg || ss%8 != 0 ||
			ss > uint64(len(ring)) || capWord != uint64(len(ring))/ss || capWord*ss != uint64(len(ring)) {
			return nil, corruptf("MPMC %d slots of %d bytes, ring %d bytes, max message %d", capWord, ss, len(ring), maxMsg)
		}
		c.slotSize = ss
	default:
		return nil, shm.ErrIncompatible
	}
	c.mode, c.maxMsg, c.capacity = mode, int(maxMsg), int(capWord)
	c.stats = c.statsLine(seg.Self().Slot())
	span := ecSpan(parts)
	ecs := make([]*futex.EventCount, nEvents)
	for i := range ecs {
		off := cEvents + i*span
		e, err := seg.EventCount(cmem[off : off+span])
		if err != nil {
			return nil, err
		}
		ecs[i] = e
	}
	c.notEmpty, c.notFull, c.join = ecs[evNotEmpty], ecs[evNotFull], ecs[evJoin]
	return c, nil
}

// sumCounters adds every participant's counters and the shared ones into st.
func (c *core) sumCounters(st *Stats) {
	for i := 0; i < c.parts; i++ {
		l := c.statsLine(i)
		rd := func(off int) uint64 { return l.u64(off).Load() }
		st.Puts += rd(sPuts)
		st.Gets += rd(sGets)
		st.BytesIn += rd(sBytesIn)
		st.BytesOut += rd(sBytesOut)
		st.Sleeps += rd(sSleeps)
		st.Wakeups += rd(sWakeups)
		st.FullEvents += rd(sFull)
		st.EmptyEvents += rd(sEmpty)
	}
	st.DeadProducerSlots = c.ctl.u64(cDeadProd).Load()
	st.DeadConsumerLosses = c.ctl.u64(cDeadCons).Load()
}

// openQueueFile attaches to an inherited segment of queue kind (a Queue's
// or a Pipe's).
func openQueueFile(f *os.File) (*shm.Segment, error) {
	seg, err := shm.OpenFile(f)
	if err != nil {
		return nil, err
	}
	if seg.Info().Kind != shm.KindQueue {
		seg.Close()
		return nil, shm.ErrIncompatible
	}
	return seg, nil
}
