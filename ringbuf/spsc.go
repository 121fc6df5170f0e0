package ringbuf

// SPSC ring protocol.
//
// The ring is a power-of-two byte array. tail (written only by the
// producer, and by Shutdown, which sets its closedBit) and head (written
// only by the consumer) are monotonically increasing 64-bit byte positions
// on separate cache lines; a position's offset is pos & mask. Invariant:
// head <= tail <= head + cap.
//
// A record is an 8-byte header {len uint32, flags uint32} and the payload,
// padded to 8 bytes. A record never wraps: when it does not fit before the
// end, the producer first writes a padding record covering the rest of the
// ring. So every message is one contiguous slice, readable in place.
//
// Producer: write header and payload into [tail, tail+n), then publish
// with one CAS of tail from the value it last published. The CAS fails
// only if Shutdown set closedBit meanwhile: the record is then not
// published and the put reports ErrClosed, so a put that returned nil was
// published before the shutdown, and a consumer that sees closedBit knows
// the tail is final. Consumer: load tail; every byte below it is published
// (the CAS synchronizes after the writes). After reading it publishes head
// with one atomic store; the producer may reuse the bytes below it. Each
// side keeps a private copy of the other's counter and re-reads the shared
// one only when the ring looks full (producer) or empty (consumer), so in
// steady state the lines do not bounce. The consumer publishes head
// lazily: when an eighth of the ring is consumed, when it has caught up
// with the tail it knew, when a producer is announced as waiting, or
// always when the same handle also produces. So a consumer that stops
// taking messages (without closing its handle) may keep up to an eighth of
// the ring from a producer of another handle until it takes the next one.
//
// A side held by a process that died is taken over by the next handle
// that produces (or consumes): its role word names the holder's
// participant token, and the kernel proves the holder dead. The new holder
// picks up the published position; what the dead one wrote and did not
// publish is gone, as if never put.
//
// Everything read from the ring is read once into locals and validated
// before use: head and tail against each other and the capacity, the
// header's flags and length against the capacity, MaxMessage and the
// published range. A violation is ErrCorrupt; nothing is sliced outside the
// ring. spsc.pml models the publish/consume steps and the shutdown.

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/shm"
)

const (
	recHdr  = 8
	recData = 0x5a5a0001 // flags of a message record
	recPad  = 0x5a5a0002 // flags of a padding record (skipped)
	recDead = 0x5a5a0003 // MPMC: a slot skipped (dead producer, abandoned reservation)
)

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

func recSize(n uint64) uint64 { return recHdr + align8(n) }

type spscRing struct {
	c      *core
	data   []byte
	cap    uint64
	mask   uint64
	maxMsg uint64
	tail   *atomic.Uint64 // position | closedBit
	head   *atomic.Uint64
	prole  *atomic.Uint32 // producer role: the holder's participant token
	crole  *atomic.Uint32

	// Producer-private (under the producer gate).
	prod      bool        // this handle holds the producer side
	prodHere  atomic.Bool // prod, for the consumer side of the same handle
	pub       uint64      // the tail we last published
	ptail     uint64      // our tail: everything below is published or staged
	roff      uint64      // offset of the reserved record's header
	headCache uint64

	// Consumer-private (under the consumer gate).
	cons      bool
	chead     uint64 // everything below is consumed
	headPub   uint64 // the head we last published
	tailCache uint64 // a published tail position (no closedBit)
	nextEnd   uint64 // position after the record next returned
}

func newSPSC(c *core) *spscRing {
	return &spscRing{
		c: c, data: c.ringMem, cap: uint64(len(c.ringMem)), mask: uint64(len(c.ringMem)) - 1, maxMsg: uint64(c.maxMsg),
		tail: c.ctl.u64(cTail), head: c.ctl.u64(cHead), prole: c.ctl.u32(cProducer), crole: c.ctl.u32(cConsumer),
	}
}

// takeRole claims an SPSC side for this handle. A side held by a dead
// participant (kernel-proven) is taken over.
func (r *spscRing) takeRole(w *atomic.Uint32) error {
	self := uint32(r.c.seg.Self())
	for {
		v := w.Load()
		if v == self {
			return nil
		}
		if v != 0 && r.c.seg.Alive(shm.Token(v)) {
			return ErrRole
		}
		// Invariant: the word names at most one live holder of the side;
		// only that holder clears it, and only from itself.
		if w.CompareAndSwap(v, self) {
			return nil
		}
	}
}

func (r *spscRing) dropRole(w *atomic.Uint32) { w.CompareAndSwap(uint32(r.c.seg.Self()), 0) }

// takeProducer takes the producer side once and picks the ring up where
// the previous holder left it.
func (r *spscRing) takeProducer() error {
	if err := r.takeRole(r.prole); err != nil {
		return err
	}
	t, h := r.tail.Load()&^closedBit, r.head.Load()
	if t < h || t-h > r.cap || t%8 != 0 {
		r.dropRole(r.prole)
		return corruptf("tail %d, head %d, capacity %d", t, h, r.cap)
	}
	r.pub, r.ptail, r.headCache = t, t, h
	r.prod = true
	r.prodHere.Store(true)
	return nil
}

func (r *spscRing) takeConsumer() error {
	if err := r.takeRole(r.crole); err != nil {
		return err
	}
	t, h := r.tail.Load()&^closedBit, r.head.Load()
	if t < h || t-h > r.cap || h%8 != 0 {
		r.dropRole(r.crole)
		return corruptf("tail %d, head %d, capacity %d", t, h, r.cap)
	}
	r.chead, r.headPub, r.tailCache = h, h, t
	r.cons = true
	return nil
}

func (r *spscRing) reserve(n int) ([]byte, error) {
	if !r.prod {
		if err := r.takeProducer(); err != nil {
			return nil, err
		}
	}
	// The producer's own line: a load that hits this CPU's cache.
	if r.tail.Load()&closedBit != 0 {
		return nil, ErrClosed
	}
	need := recSize(uint64(n))
	t := r.ptail
	off := t & r.mask
	pad := uint64(0)
	if off+need > r.cap {
		pad = r.cap - off
	}
	if t+pad+need-r.headCache > r.cap {
		h := r.head.Load()
		if h > t || t-h > r.cap {
			return nil, corruptf("head %d beyond tail %d (capacity %d)", h, t, r.cap)
		}
		r.headCache = h
		if t+pad+need-h > r.cap {
			// Waiters re-check room against the shared tail: it must be
			// ours, or they would poll a ring we cannot use.
			if pt := r.tail.Load() &^ closedBit; pt != r.pub {
				return nil, corruptf("tail %d moved under the producer (published %d)", pt, r.pub)
			}
			return nil, ErrFull
		}
	}
	if pad > 0 {
		// Not visible until published: the padding goes with the record.
		putHdr(r.data[off:], uint32(pad-recHdr), recPad)
		t += pad
		off = 0
	}
	r.roff = off
	r.ptail = t // the padding, if any, goes out with the next publish
	return r.data[off+recHdr : off+recHdr+uint64(n) : off+recHdr+uint64(n)], nil
}

func putHdr(b []byte, n, flags uint32) {
	binary.LittleEndian.PutUint32(b, n)
	binary.LittleEndian.PutUint32(b[4:], flags)
}

func (r *spscRing) stage(n int) {
	putHdr(r.data[r.roff:], uint32(n), recData)
	r.ptail += recSize(uint64(n)) // a shorter commit gives back the rest
}

func (r *spscRing) commit(n int) error {
	r.stage(n)
	return r.flush()
}

func (r *spscRing) flush() error {
	if r.ptail == r.pub {
		return nil
	}
	// Invariant: every byte below ptail is a complete record. The CAS
	// publishes them (release, via sequential consistency), unless
	// Shutdown set closedBit first.
	if r.tail.CompareAndSwap(r.pub, r.ptail) {
		r.pub = r.ptail
		return nil
	}
	r.ptail = r.pub // as if never put
	if t := r.tail.Load(); t&closedBit != 0 && t&^closedBit == r.pub {
		return ErrClosed
	}
	return corruptf("tail moved under the producer (another producer wrote it)")
}

// abandon drops the reserved record: ptail is still before it. A padding
// record written by reserve stays; it is published with the next record.
func (r *spscRing) abandon() {}

func (r *spscRing) waitKey(producer bool) (uint64, time.Duration) {
	if producer {
		return 0, 0
	}
	return r.chead, 0
}

func (r *spscRing) ready(producer bool, n int, key uint64) bool {
	t := r.tail.Load()
	if t&closedBit != 0 {
		return true
	}
	if !producer {
		return t != key // published beyond what we had consumed
	}
	// A waiting producer has published everything it staged: its tail is
	// the shared one.
	need := recSize(uint64(n))
	pad := uint64(0)
	if off := t & r.mask; off+need > r.cap {
		pad = r.cap - off
	}
	return t+pad+need-r.head.Load() <= r.cap
}

func (r *spscRing) next(limit int) ([]byte, error) {
	if !r.cons {
		if err := r.takeConsumer(); err != nil {
			return nil, err
		}
	}
	h := r.chead
	for {
		if h == r.tailCache {
			t := r.tail.Load()
			pos := t &^ closedBit
			if pos < h || pos-h > r.cap {
				return nil, corruptf("tail %d, head %d, capacity %d", pos, h, r.cap)
			}
			r.tailCache = pos
			if pos == h {
				// Empty. The caller publishes our head (release) and
				// wakes a producer waiting for room, before it sleeps.
				if t&closedBit != 0 {
					return nil, ErrClosed
				}
				return nil, ErrEmpty
			}
		}
		off := h & r.mask
		avail := r.tailCache - h
		if avail < recHdr {
			return nil, corruptf("%d published bytes cannot hold a header", avail)
		}
		n := uint64(binary.LittleEndian.Uint32(r.data[off:]))
		flags := binary.LittleEndian.Uint32(r.data[off+4:])
		switch flags {
		case recPad:
			size := r.cap - off
			if n != size-recHdr || size > avail {
				return nil, corruptf("padding record of %d at offset %d", n, off)
			}
			h += size
			r.chead = h
			continue
		case recData:
			size := recSize(n)
			if n > r.maxMsg || off+size > r.cap || size > avail {
				return nil, corruptf("record of %d bytes at offset %d (max %d, %d published)", n, off, r.maxMsg, avail)
			}
			if limit >= 0 && int(n) > limit {
				return nil, ErrShortBuffer
			}
			r.nextEnd = h + size
			return r.data[off+recHdr : off+recHdr+n : off+recHdr+n], nil
		default:
			return nil, corruptf("bad record flags %#x at offset %d", flags, off)
		}
	}
}

func (r *spscRing) consume() { r.chead = r.nextEnd }

func (r *spscRing) release(force bool) bool {
	if r.chead == r.headPub {
		return false
	}
	// Lazily, unless this handle also produces: a goroutine that gets and
	// then puts into a full ring would otherwise wait for itself.
	if !force && r.chead-r.headPub < r.cap/8 && r.chead != r.tailCache && !r.prodHere.Load() {
		return false
	}
	// Invariant: the consumer no longer reads below chead. This store lets
	// the producer overwrite it.
	r.headPub = r.chead
	r.head.Store(r.chead)
	return true
}

func (r *spscRing) shutdown() { r.tail.Or(closedBit) }

func (r *spscRing) isShutdown() bool { return r.tail.Load()&closedBit != 0 }

// length is not known from positions (records vary in size): Stats
// computes it from the counters.
func (r *spscRing) length() int {
	var st Stats
	r.c.sumCounters(&st)
	return spscLen(&st, r.cap)
}

func spscLen(st *Stats, capacity uint64) int {
	if st.Puts <= st.Gets {
		return 0
	}
	return int(min(st.Puts-st.Gets, capacity/recHdr))
}

func (r *spscRing) stats(st *Stats) { st.Len = spscLen(st, r.cap) }

func (r *spscRing) detach() {
	if r.cons {
		// What this handle consumed is gone: the next consumer must not
		// get it again.
		r.release(true)
		r.dropRole(r.crole)
		r.cons = false
	}
	if r.prod {
		r.dropRole(r.prole)
		r.prod = false
		r.prodHere.Store(false)
	}
}
