package ringbuf

// SPSC ring protocol.
//
// The ring is a power-of-two byte array. tail (written only by the
// producer) and head (written only by the consumer) are monotonically
// increasing 64-bit byte positions on separate cache lines; a position's
// offset is pos & mask. Invariant: head <= tail <= head + cap.
//
// A record is an 8-byte header {len uint32, flags uint32} and the payload,
// padded to 8 bytes. A record never wraps: when it does not fit before the
// end, the producer first writes a padding record covering the rest of the
// ring. So every message is one contiguous slice, readable in place.
//
// Producer: write header and payload into [tail, tail+n), then publish
// with one atomic store of tail. Consumer: load tail; every byte below it is
// published (the store synchronizes after the writes). After reading it
// publishes head with one atomic store; the producer may reuse the bytes
// below it. Each side keeps a private copy of the other's counter and
// re-reads the shared one only when the ring looks full (producer) or empty
// (consumer), so in steady state the lines do not bounce.
//
// Everything read from the ring is read once into locals and validated
// before use: head and tail against each other and the capacity, the
// header's flags and length against the capacity, MaxMessage and the
// published range. A violation is ErrCorrupt; nothing is sliced outside the
// ring.

import (
	"encoding/binary"
	"sync/atomic"
)

const (
	recHdr  = 8
	recData = 0x5a5a0001 // flags of a message record
	recPad  = 0x5a5a0002 // flags of a padding record (skipped)
	recDead = 0x5a5a0003 // MPMC: slot padded over after its producer died
)

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

type spsc struct {
	data   []byte
	cap    uint64
	mask   uint64
	maxMsg uint64
	tail   *atomic.Uint64
	head   *atomic.Uint64

	// Producer-private.
	ptail     uint64 // our tail, published or pending
	headCache uint64

	// Consumer-private.
	chead     uint64 // our head: everything below is consumed
	headPub   uint64 // the head we last published
	tailCache uint64
}

func newSPSC(data []byte, maxMsg uint64, tail, head *atomic.Uint64) *spsc {
	r := &spsc{data: data, cap: uint64(len(data)), mask: uint64(len(data)) - 1, maxMsg: maxMsg, tail: tail, head: head}
	return r
}

// attachProducer and attachConsumer load the shared position this side will
// advance (after taking the role: a previous holder may have died).
func (r *spsc) attachProducer() error {
	t, h := r.tail.Load(), r.head.Load()
	if t < h || t-h > r.cap || t%8 != 0 {
		return corruptf("tail %d, head %d, capacity %d", t, h, r.cap)
	}
	r.ptail, r.headCache = t, h
	return nil
}

func (r *spsc) attachConsumer() error {
	t, h := r.tail.Load(), r.head.Load()
	if t < h || t-h > r.cap || h%8 != 0 {
		return corruptf("tail %d, head %d, capacity %d", t, h, r.cap)
	}
	r.chead, r.headPub, r.tailCache = h, h, t
	return nil
}

func recSize(n uint64) uint64 { return recHdr + align8(n) }

// reserve finds room for a record of n payload bytes. It returns the offset
// of the record and the position after it; ok is false if the ring is
// full. It may write a padding record (not yet published).
func (r *spsc) reserve(n uint64) (off, end uint64, ok bool, err error) {
	need := recSize(n)
	t := r.ptail
	off = t & r.mask
	pad := uint64(0)
	if off+need > r.cap {
		pad = r.cap - off
	}
	if t+pad+need-r.headCache > r.cap {
		h := r.head.Load()
		if h > t || t-h > r.cap {
			return 0, 0, false, corruptf("head %d beyond tail %d (capacity %d)", h, t, r.cap)
		}
		r.headCache = h
		if t+pad+need-h > r.cap {
			return 0, 0, false, nil
		}
	}
	if pad > 0 {
		putHdr(r.data[off:], uint32(pad-recHdr), recPad)
		t += pad
		off = 0
	}
	return off, t + need, true, nil
}

// room reports whether a record of n bytes fits now (for sleepers).
func (r *spsc) room(n uint64) bool {
	t := r.ptail
	need := recSize(n)
	off := t & r.mask
	pad := uint64(0)
	if off+need > r.cap {
		pad = r.cap - off
	}
	return t+pad+need-r.head.Load() <= r.cap
}

func putHdr(b []byte, n, flags uint32) {
	binary.LittleEndian.PutUint32(b, n)
	binary.LittleEndian.PutUint32(b[4:], flags)
}

// write copies msg into a reserved record; publish makes everything up to
// end visible to the consumer.
func (r *spsc) write(off uint64, msg []byte) {
	putHdr(r.data[off:], uint32(len(msg)), recData)
	copy(r.data[off+recHdr:], msg)
}

func (r *spsc) publish(end uint64) {
	r.ptail = end
	r.flush()
}

// advance moves the producer past a written record without publishing it
// (batches publish once, with flush).
func (r *spsc) advance(end uint64) { r.ptail = end }

func (r *spsc) flush() {
	// Invariant: every byte below ptail is a complete record. This store
	// publishes them (release, via sequential consistency).
	r.tail.Store(r.ptail)
}

// next finds the next message at or after the consumer's position. It
// returns the payload in place and the position after it, or ok false if
// the ring is empty. Padding records are skipped (and released).
func (r *spsc) next() (msg []byte, end uint64, ok bool, err error) {
	h := r.chead
	for {
		if h == r.tailCache {
			t := r.tail.Load()
			if t < h || t-h > r.cap {
				return nil, 0, false, corruptf("tail %d, head %d, capacity %d", t, h, r.cap)
			}
			r.tailCache = t
			if t == h {
				// Empty: publish our head before anyone may sleep on it.
				if r.headPub != h {
					r.releaseHead()
				}
				return nil, 0, false, nil
			}
		}
		off := h & r.mask
		avail := r.tailCache - h
		if avail < recHdr {
			return nil, 0, false, corruptf("%d published bytes cannot hold a header", avail)
		}
		n := uint64(binary.LittleEndian.Uint32(r.data[off:]))
		flags := binary.LittleEndian.Uint32(r.data[off+4:])
		switch flags {
		case recPad:
			size := r.cap - off
			if n != size-recHdr || size > avail {
				return nil, 0, false, corruptf("padding record of %d at offset %d", n, off)
			}
			h += size
			r.chead = h
			continue
		case recData:
			size := recSize(n)
			if n > r.maxMsg || off+size > r.cap || size > avail {
				return nil, 0, false, corruptf("record of %d bytes at offset %d (max %d, %d published)", n, off, r.maxMsg, avail)
			}
			return r.data[off+recHdr : off+recHdr+n : off+recHdr+n], h + size, true, nil
		default:
			return nil, 0, false, corruptf("bad record flags %#x at offset %d", flags, off)
		}
	}
}

// consume moves the consumer past a record without freeing it yet.
func (r *spsc) consume(end uint64) { r.chead = end }

// lazyRelease publishes the head only when an eighth of the ring has been
// consumed since the last publication; the caller also publishes when a
// producer waits for room (see Queue.releaseSPSC) and next publishes when
// the ring runs empty. That saves a store to a shared line per message
// while the producer is not short of room.
func (r *spsc) lazyRelease() bool {
	if r.chead-r.headPub >= r.cap/8 || r.chead == r.tailCache && r.chead != r.headPub {
		r.releaseHead()
		return true
	}
	return false
}

func (r *spsc) releaseHead() {
	// Invariant: the consumer no longer reads below chead. This store lets
	// the producer overwrite it.
	r.headPub = r.chead
	r.head.Store(r.chead)
}

// ready reports whether a message may be available (for sleepers).
func (r *spsc) ready() bool { return r.tail.Load() != r.chead }
