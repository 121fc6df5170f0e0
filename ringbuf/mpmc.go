package ringbuf

// MPMC ring protocol (after Vyukov's bounded MPMC queue, with liveness).
//
// The ring is nslots (a power of two) slots of slotSize bytes:
// {seq uint64, len uint32, flags uint32, payload[MaxMessage]}. tail is the
// next position to produce, head the next to consume; both only grow.
// Slot i starts with seq = i. For a position p in slot p&mask:
//
//	seq == p          free for the producer of p
//	seq == p+1        published: holds the message of p
//	seq == p+nslots   consumed: free for the producer of p+nslots
//
// Producer: load tail p; if seq == p, record the claim (this participant's
// claim word := p+1), CAS tail p → p+1, write the record, store seq = p+1.
// Consumer: load head p; if seq == p+1, record the claim, CAS head p → p+1,
// read, store seq = p+nslots. The CAS on the position hands each position
// to exactly one producer and one consumer; the slot's seq says which lap
// it is in, so a stale producer or consumer from an earlier lap can never
// mistake a slot for its own (no ABA: positions are 64-bit and never reused).
// Per-producer order: a producer's positions increase, and each consumer
// takes positions in increasing order.
//
// Crashes. A claim word is stored before the CAS that takes a position, so
// whoever sees a position taken (tail > p, or head > p) also sees who took
// it. A consumer stuck on p (tail > p but seq == p) asks the kernel whether
// any participant with claim p+1 is alive; if none is, the producer died
// between claim and publish, and the consumer pads the slot over
// (flags = dead, CAS seq p → p+1) and counts it. Symmetrically, a producer
// that finds the slot of p still holding lap p-nslots after a consumer took
// it (head > p-nslots) frees the slot if no live participant claims it, and
// counts the lost message. A stopped process is alive, and is waited for.
// Claims are per handle, so a handle serializes its own goroutines per side.
//
// Validation: a seq that is none of the legal values for the position, or
// a length above MaxMessage, is ErrCorrupt.

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

const slotHdr = 16

type mpmc struct {
	data     []byte
	nslots   uint64
	mask     uint64
	slotSize uint64
	maxMsg   uint64
	tail     *atomic.Uint64
	head     *atomic.Uint64
	claimPut *atomic.Uint64 // this handle's claim words
	claimGet *atomic.Uint64
}

func (r *mpmc) seq(pos uint64) *atomic.Uint64 {
	off := (pos & r.mask) * r.slotSize
	return (*atomic.Uint64)(unsafe.Pointer(&r.data[off]))
}

func (r *mpmc) slot(pos uint64) []byte {
	off := (pos & r.mask) * r.slotSize
	return r.data[off : off+r.slotSize : off+r.slotSize]
}

type claimState int

const (
	claimed claimState = iota
	blocked            // full (producer) or empty (consumer)
	stuck              // the position is held by a claim not yet finished
)

// claimPutPos takes the next position to produce. On stuck, pos is the
// position of the previous lap whose consumer has not freed the slot.
func (r *mpmc) claimPutPos() (pos uint64, st claimState, err error) {
	for {
		p := r.tail.Load()
		seq := r.seq(p).Load()
		switch {
		case seq == p:
			// Invariant: the claim word names p before the CAS can make p
			// ours, so anyone who sees tail > p can find the claimant.
			r.claimPut.Store(p + 1)
			if r.tail.CompareAndSwap(p, p+1) {
				return p, claimed, nil
			}
			// Lost the race: withdraw the claim, or we would look like a
			// live claimant of p and shield the winner if it dies.
			r.claimPut.Store(0)
		case p >= r.nslots && (seq == p-r.nslots || seq == p-r.nslots+1):
			// The slot still holds lap p-nslots: full, unless its consumer
			// took it (head > p-nslots) and is slow or dead.
			q := p - r.nslots
			r.withdraw(r.claimPut)
			// seq == q+1: a consumer took q and has not freed it; seq == q
			// with head > q: a consumer took q to recover it from a dead
			// producer and has not freed it yet. Either may be dead.
			if h := r.head.Load(); h > q {
				// head <= tail always holds: a head beyond a tail loaded
				// after it is corruption, not a stale p.
				if t := r.tail.Load(); h > t {
					return 0, 0, corruptf("head %d beyond tail %d", h, t)
				} else if t != p {
					continue // p went stale; look again
				}
				return q, stuck, nil
			}
			return p, blocked, nil
		default:
			// Legal only if another producer took p and the slot moved on
			// since we loaded tail.
			if r.tail.Load() == p {
				return 0, 0, corruptf("slot of position %d has sequence %d", p, seq)
			}
		}
	}
}

// withdraw clears a claim word that no longer names a position we hold
// (a handle has at most one claim outstanding, and none when it blocks).
func (r *mpmc) withdraw(w *atomic.Uint64) {
	if w.Load() != 0 {
		w.Store(0)
	}
}

// publish writes the record header and makes position pos readable.
func (r *mpmc) publish(pos uint64, n int, flags uint32) {
	s := r.slot(pos)
	binary.LittleEndian.PutUint32(s[8:], uint32(n))
	binary.LittleEndian.PutUint32(s[12:], flags)
	// Invariant: the record is complete; this store hands it to consumers.
	r.seq(pos).Store(pos + 1)
}

// claimGetPos takes the next published position. limit, if > 0, refuses a
// record longer than limit without taking it (ErrShortBuffer). On stuck,
// pos is a position a producer took but has not published.
func (r *mpmc) claimGetPos(limit int) (pos uint64, n int, flags uint32, st claimState, err error) {
	for {
		p := r.head.Load()
		seq := r.seq(p).Load()
		switch {
		case seq == p+1:
			s := r.slot(p)
			n := binary.LittleEndian.Uint32(s[8:])
			flags := binary.LittleEndian.Uint32(s[12:])
			if flags == recData && (uint64(n) > r.maxMsg) {
				return 0, 0, 0, 0, corruptf("record of %d bytes (max %d) at position %d", n, r.maxMsg, p)
			}
			if flags != recData && flags != recDead {
				return 0, 0, 0, 0, corruptf("bad record flags %#x at position %d", flags, p)
			}
			if limit >= 0 && flags == recData && int(n) > limit {
				return p, int(n), flags, 0, ErrShortBuffer
			}
			r.claimGet.Store(p + 1)
			if r.head.CompareAndSwap(p, p+1) {
				return p, int(n), flags, claimed, nil
			}
			r.claimGet.Store(0) // lost the race: withdraw (see claimPutPos)
		case seq == p:
			r.withdraw(r.claimGet)
			t := r.tail.Load()
			if t < p && r.head.Load() == p {
				return 0, 0, 0, 0, corruptf("head %d beyond tail %d", p, t)
			}
			if t > p {
				if t-p > r.nslots {
					// tail <= head+nslots always holds, unless p is stale.
					if r.head.Load() != p {
						continue
					}
					return 0, 0, 0, 0, corruptf("tail %d, head %d, %d slots", t, p, r.nslots)
				}
				return p, 0, 0, stuck, nil
			}
			return p, 0, 0, blocked, nil
		case p >= r.nslots && seq == p+1-r.nslots:
			// The slot still holds lap p-nslots, taken by a consumer that
			// has not freed it yet: nothing for p has been produced.
			r.withdraw(r.claimGet)
			return p, 0, 0, blocked, nil
		default:
			if r.head.Load() == p {
				return 0, 0, 0, 0, corruptf("slot of position %d has sequence %d", p, seq)
			}
		}
	}
}

// payload returns the record's bytes in place.
func (r *mpmc) payload(pos uint64, n int) []byte {
	s := r.slot(pos)
	return s[slotHdr : slotHdr+n : slotHdr+n]
}

// free hands the slot of pos to the producer of the next lap.
func (r *mpmc) free(pos uint64) {
	// Invariant: we are done reading the slot; the next lap may write it.
	r.seq(pos).Store(pos + r.nslots)
}

// readyGet reports whether a consumer should look at the ring again: the
// message at head is published, or (unless it already waits on a stuck
// claim, and re-checks that on a timer) a producer has claimed head, which
// may be dead.
func (r *mpmc) readyGet(stuck bool) bool {
	p := r.head.Load()
	if r.seq(p).Load() == p+1 {
		return true
	}
	// Only a claimed, unpublished head is worth a look (its producer may be
	// dead); a slot still holding the previous lap is empty, not ready.
	return !stuck && r.seq(p).Load() == p && r.tail.Load() > p
}

// readyPut is the producer's counterpart: the slot at tail is free, or it
// is held by a consumer (head moved past its lap), which may be dead.
func (r *mpmc) readyPut(stuck bool) bool {
	p := r.tail.Load()
	seq := r.seq(p).Load()
	if seq == p {
		return true
	}
	return !stuck && p >= r.nslots && (seq == p-r.nslots+1 || seq == p-r.nslots) && r.head.Load() > p-r.nslots
}

func (r *mpmc) depth() uint64 {
	t, h := r.tail.Load(), r.head.Load()
	if t < h {
		return 0
	}
	return min(t-h, r.nslots) // corrupt counters give no more than the ring holds
}
