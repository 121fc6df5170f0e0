package ringbuf

// SPSC ring protocol.
//
// The ring is a power-of-two byte array. tail (written by the producer,
// and by Shutdown, which sets its closedBit) and head (written only by the
// consumer) are monotonically increasing 64-bit byte positions on separate
// cache lines; a position's offset is pos & mask. Invariant: head <= tail
// <= head + cap.

// A record is an 8-byte header {len uint32, flags uint32} and the payload,
// padded to 8 bytes. A record never wraps: when it does not fit before the
// end, the producer first writes a padding record covering the rest of the
// ring. So every message is one contiguous slice, readable in place.
//
// Producer: write header and payload into [tail, tail+n), then publish
// with one atomic swap of tail. Consumer: load tail; every byte below it is
// published (the swap synchronizes after the writes). After reading it
// publishes head with one atomic store; the producer may reuse the bytes
// below it. Each side keeps a private copy of the other's counter and
// re-reads the shared one only when the ring looks full (producer) or
// empty (consumer), so in
// steady state the lines do not bounce. The consumer publishes head
// lazily: when an eighth of the ring is consumed, when it has caught up
// with the tail it knew, when a producer is announced as waiting, or
// always when the same handle also produces. So a consumer that stops
// taking messages (without closing its handle) may keep up to an eighth of
// the ring from a producer of another handle until it takes the next one.
//
// Shutdown and "nil means delivered". Shutdown sets the closed flag (on
// the read-mostly config line; puts that see it fail at once) and then
// closedBit in tail. The queue's final position is decided once, by a CAS
// on the seal word from 0 to position+1, which both sides may attempt:
//
//   - a consumer that has caught up with a tail that carries closedBit
//     seals at its head, and from then on reports ErrClosed;
//   - a producer whose publishing swap returned a tail with closedBit (the
//     shutdown came between its check of the flag and its publish) puts
//     closedBit back and seals after its record: if its CAS wins, the
//     record is delivered and the put returns nil. If a consumer sealed
//     first, the seal decides: a consumer that read the record while the
//     swap had cleared the bit sealed after it (delivered, nil); otherwise
//     the record lies beyond the seal, consumers never read it, and the
//     put returns ErrClosed. So nil means delivered and ErrClosed means
//     never received.
//
// A process killed between the flag and the bit (a Shutdown caller, or a
// producer between its swap and putting the bit back) leaves the flag
// without the bit: a consumer that has caught up and finds the flag sets
// the bit itself, so the end is reached as if the step had finished.
//
// Consumers take the seal, once set, as the end of the ring, whatever tail
// says. A publish whose swap returned a tail without closedBit came before
// any consumer could see the shutdown, so every seal lies at or beyond it:
// delivered. (A CAS of tail instead of the swap decided this in one step,
// but cost about 10% of a 64-byte stream: the CAS of a line the consumer
// keeps reading is slower than a swap.)
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
// ring. spsc.pml models the publish/consume steps, the shutdown and the
// seal.

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
	seal   *atomic.Uint64 // final position + 1 once sealed (see the protocol); 0 before
	closed *atomic.Uint32 // 1 once shut down
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
	sealSeen  bool   // the queue was sealed: always heed the seal
	nextEnd   uint64 // position after the record next returned
}

func newSPSC(c *core) *spscRing {
	return &spscRing{
		c: c, data: c.ringMem, cap: uint64(len(c.ringMem)), mask: uint64(len(c.ringMem)) - 1, maxMsg: uint64(c.maxMsg),
		tail: c.ctl.u64(cTail), head: c.ctl.u64(cHead), seal: c.ctl.u64(cSeal), closed: c.ctl.u32(cClosed),
		prole: c.ctl.u32(cProducer), crole: c.ctl.u32(cConsumer),
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
	r.sealSeen = r.seal.Load() != 0
	r.cons = true
	return nil
}

func (r *spscRing) reserve(n int) ([]byte, error) {
	if !r.prod {
		if err := r.takeProducer(); err != nil {
			return nil, err
		}
	}
	// The read-mostly config line: a load that hits this CPU's cache.
	if r.closed.Load() != 0 {
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
			// Full. Waiters re-check room against the shared tail: it
			// must be ours, or they would poll a ring we cannot use.
			pt := r.tail.Load()
			if pt&closedBit != 0 {
				return nil, ErrClosed
			}
			if pt != r.pub {
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

func (r *spscRing) put(msg []byte) error {
	room, err := r.reserve(len(msg))
	if err != nil {
		return err
	}
	copy(room, msg)
	return r.commit(len(msg))
}

func (r *spscRing) getInto(buf []byte) (int, error) {
	msg, err := r.next(len(buf))
	if err != nil {
		return 0, err
	}
	copy(buf, msg)
	r.consume()
	return len(msg), nil
}

func (r *spscRing) shared() bool { return false }

func (r *spscRing) flush() error {
	if r.ptail == r.pub {
		return nil
	}
	// Invariant: every byte below ptail is a complete record. The swap
	// publishes them (release, via sequential consistency).
	old := r.tail.Swap(r.ptail)
	switch old {
	case r.pub:
		r.pub = r.ptail
		return nil
	case r.pub | closedBit:
		// Shutdown came first, and the swap cleared its bit: put it back,
		// then settle with the consumers who ends the queue (see the
		// protocol). Consumers read the seal before trusting the tail.
		r.tail.Or(closedBit)
		if r.seal.CompareAndSwap(0, r.ptail+1) {
			r.pub = r.ptail
			return nil // sealed after our records: delivered
		}
		// A consumer sealed first. It may have read our records in the
		// moment the swap had cleared the bit, and then sealed after
		// them: delivered. A seal before them: they are never read.
		if r.seal.Load()-1 >= r.ptail {
			r.pub = r.ptail
			return nil
		}
		r.ptail = r.pub
		return ErrClosed
	}
	r.ptail = r.pub
	return corruptf("tail %d moved under the producer (published %d)", old&^closedBit, r.pub)
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
		// Published beyond what we had consumed, or shut down by a
		// process that died before setting the bit (see next).
		return t != key || r.closed.Load() != 0
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
			// The seal, once set, is the end: records beyond it belong to a
			// put that reported ErrClosed. It can be set only once tail
			// carries closedBit; tail loses the bit again only for the
			// moment of a racing publish (see flush), after this consumer
			// (sealSeen) or its predecessor (takeConsumer) sealed.
			var s uint64
			if t&closedBit != 0 || r.sealSeen {
				s = r.seal.Load()
			}
			if s != 0 {
				r.sealSeen = true
				if s-1 > pos {
					// A producer published and sealed after our load of
					// tail; its swap came before its seal, so tail now
					// covers the seal.
					pos = r.tail.Load() &^ closedBit
					if s-1 > pos {
						return nil, corruptf("seal %d beyond tail %d", s-1, pos)
					}
				}
				pos = s - 1
			}
			if pos < h || pos-h > r.cap {
				return nil, corruptf("tail %d, head %d, capacity %d", pos, h, r.cap)
			}
			r.tailCache = pos
			if pos == h {
				// Empty. The caller publishes our head (release) and
				// wakes a producer waiting for room, before it sleeps.
				if s == 0 && t&closedBit == 0 {
					if r.closed.Load() != 0 {
						// The flag without the bit: the Shutdown caller
						// (or a producer, between its swap and putting
						// the bit back) died in between. Finish its
						// step, or no consumer would ever see the end.
						r.tail.Or(closedBit)
						continue
					}
					return nil, ErrEmpty
				}
				// Shut down and caught up: seal here, unless a producer
				// sealed after a record we have yet to read.
				if s != 0 || r.seal.CompareAndSwap(0, h+1) {
					r.sealSeen = true
					return nil, ErrClosed
				}
				continue
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

func (r *spscRing) shutdown() {
	// Invariant: the flag first, so that a producer that publishes after
	// the bit either saw the flag and did not, or finds the bit in its
	// swap's result and settles by the seal.
	r.closed.Store(1)
	r.tail.Or(closedBit)
}

func (r *spscRing) isShutdown() bool { return r.closed.Load() != 0 }

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
