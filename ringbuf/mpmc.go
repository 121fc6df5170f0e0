package ringbuf

// MPMC ring protocol (after Vyukov's bounded MPMC queue, with liveness).
//
// The ring is nslots (a power of two) slots of slotSize bytes:
// {seq uint64, len uint32, flags uint32, payload[MaxMessage]}. tail is the
// next position to produce (with closedBit, set by Shutdown), head the next
// to consume; both only grow. Slot i starts with seq = i. For a position p
// in slot p&mask:
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
// mistake a slot for its own (no ABA: positions are 63-bit and never
// reused). Per-producer order: a producer's positions increase, and each
// consumer takes positions in increasing order.
//
// Shutdown sets closedBit in tail, so every later claim CAS fails: a put
// that claimed a position will publish it, and consumers drain until head
// reaches the final tail, waiting for claimed positions (or recovering
// them, below). A put that returned nil is therefore always received.
//
// Crashes (mpmc_recover.go). A claim word is stored before the CAS that
// takes a position, so whoever sees a position taken (tail > p, or
// head > p) also sees who took it. A consumer stuck on p (tail > p but
// seq == p) asks the kernel whether any participant with claim p+1 is
// alive; if none is, the producer died between claim and publish, and the
// consumer takes p by the head CAS, as its consumer would, and hands the
// slot to the next lap, counting it. Symmetrically, a producer that finds
// the slot of p still holding lap p-nslots after a consumer took it
// (head > p-nslots) frees the slot if no live participant claims it, and
// counts the lost message. A stopped process is alive, and is waited for.
// Claims are per handle, so a handle serializes its own goroutines per side.
//
// Stats are derived from the positions and the three skip counters, so
// Puts = Gets + DeadConsumerLosses + Len holds exactly, whoever died when.
//
// Validation: a seq that is none of the legal values for the position, or
// a length above MaxMessage, is ErrCorrupt. mpmc.pml models the claim,
// publish, consume and recovery steps with a crash action.

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

const slotHdr = 16

// hooks are test failpoints on one handle: claimed runs after a producer
// claims a position and before it publishes; got after a consumer claims a
// message and before it frees the slot. They are the windows crash tests
// kill in. Nil in production: one load of a field on the MPMC path.
type hooks struct {
	claimed, got func()
}

type mpmcRing struct {
	c        *core
	data     []byte
	nslots   uint64
	mask     uint64
	slotSize uint64
	maxMsg   uint64
	tail     *atomic.Uint64 // position | closedBit
	head     *atomic.Uint64
	claimPut *atomic.Uint64 // this handle's claim words
	claimGet *atomic.Uint64
	hooks    *hooks

	rpos   uint64 // reserved position (producer gate)
	pStuck stuckState
	gpos   uint64 // position next returned (consumer gate)
	held   uint64 // a position this consumer took by recovery, found published: +1 (0: none)
	cStuck stuckState
}

func newMPMC(c *core, h *hooks) *mpmcRing {
	own := c.statsLine(c.seg.Self().Slot())
	r := &mpmcRing{
		c: c, data: c.ringMem, nslots: uint64(c.capacity), mask: uint64(c.capacity) - 1, slotSize: c.slotSize,
		maxMsg: uint64(c.maxMsg), tail: c.ctl.u64(cTail), head: c.ctl.u64(cHead),
		claimPut: own.u64(sClaimPut), claimGet: own.u64(sClaimGet), hooks: h,
	}
	// A previous holder of our participant slot may have died with a claim
	// outstanding; its claim was recovered or will be, by the "no live
	// claimant" rule. Ours starts clean.
	r.claimPut.Store(0)
	r.claimGet.Store(0)
	return r
}

func (r *mpmcRing) seq(pos uint64) *atomic.Uint64 {
	off := (pos & r.mask) * r.slotSize
	return (*atomic.Uint64)(unsafe.Pointer(&r.data[off]))
}

func (r *mpmcRing) slot(pos uint64) []byte {
	off := (pos & r.mask) * r.slotSize
	return r.data[off : off+r.slotSize : off+r.slotSize]
}

func (r *mpmcRing) payload(pos uint64, n int) []byte {
	s := r.slot(pos)
	return s[slotHdr : slotHdr+n : slotHdr+n]
}

type claimState int

const (
	claimed claimState = iota
	blocked            // full (producer) or empty (consumer)
	stuck              // the position is held by a claim not yet finished
	drained            // shut down, and (consumer) nothing left
)

// claimPutPos takes the next position to produce. On stuck, pos is the
// position of the previous lap whose consumer has not freed the slot.
func (r *mpmcRing) claimPutPos() (pos uint64, st claimState, err error) {
	for {
		t := r.tail.Load()
		if t&closedBit != 0 {
			r.withdraw(r.claimPut)
			return 0, drained, nil
		}
		p := t
		seq := r.seq(p).Load()
		switch {
		case seq == p:
			// Invariant: the claim word names p before the CAS can make p
			// ours, so anyone who sees tail > p can find the claimant. The
			// CAS fails if Shutdown set closedBit meanwhile.
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
				if t2 := r.tail.Load() &^ closedBit; h > t2 {
					return 0, 0, corruptf("head %d beyond tail %d", h, t2)
				} else if t2 != p {
					continue // p went stale; look again
				}
				return q, stuck, nil
			}
			return p, blocked, nil
		default:
			// Legal only if another producer took p and the slot moved on
			// since we loaded tail.
			if r.tail.Load() == t {
				return 0, 0, corruptf("slot of position %d has sequence %d", p, seq)
			}
		}
	}
}

// withdraw clears a claim word that no longer names a position we hold
// (a handle has at most one claim outstanding, and none when it blocks).
func (r *mpmcRing) withdraw(w *atomic.Uint64) {
	if w.Load() != 0 {
		w.Store(0)
	}
}

// publish writes the record header and makes position pos readable.
func (r *mpmcRing) publish(pos uint64, n int, flags uint32) {
	s := r.slot(pos)
	binary.LittleEndian.PutUint32(s[8:], uint32(n))
	binary.LittleEndian.PutUint32(s[12:], flags)
	// Invariant: the record is complete; this store hands it to consumers.
	r.seq(pos).Store(pos + 1)
}

func (r *mpmcRing) reserve(n int) ([]byte, error) {
	for {
		pos, st, err := r.claimPutPos()
		if err != nil {
			return nil, err
		}
		switch st {
		case claimed:
			r.pStuck = stuckState{}
			if r.hooks != nil && r.hooks.claimed != nil {
				r.hooks.claimed()
			}
			r.rpos = pos
			return r.payload(pos, n), nil
		case drained:
			return nil, ErrClosed
		case stuck:
			if r.overdue(&r.pStuck, pos) && r.recoverConsumer(pos) {
				continue
			}
		}
		return nil, ErrFull
	}
}

// commit publishes at once: a claimed position is waited for by consumers
// even after Shutdown, so it is delivered.
func (r *mpmcRing) commit(n int) error {
	r.publish(r.rpos, n, recData)
	return nil
}

func (r *mpmcRing) stage(n int) { r.publish(r.rpos, n, recData) }

func (r *mpmcRing) put(msg []byte) error {
	room, err := r.reserve(len(msg))
	if err != nil {
		return err
	}
	copy(room, msg)
	r.publish(r.rpos, len(msg), recData)
	return nil
}

func (r *mpmcRing) getInto(buf []byte) (int, error) {
	msg, err := r.next(len(buf))
	if err != nil {
		return 0, err
	}
	copy(buf, msg)
	r.free(r.gpos)
	return len(msg), nil
}

func (r *mpmcRing) shared() bool { return true }

func (r *mpmcRing) flush() error { return nil }

// abandon publishes the claimed position as a record consumers skip.
func (r *mpmcRing) abandon() {
	r.c.ctl.u64(cAbandoned).Add(1)
	r.publish(r.rpos, 0, recDead)
}

// claimGetPos takes the next published position. limit, if >= 0, refuses a
// record longer than limit without taking it (ErrShortBuffer). On stuck,
// pos is a position a producer took but has not published.
func (r *mpmcRing) claimGetPos(limit int) (pos uint64, n int, flags uint32, st claimState, err error) {
	for {
		p := r.head.Load()
		seq := r.seq(p).Load()
		switch {
		case seq == p+1:
			n, flags, err := r.record(p)
			if err != nil {
				return 0, 0, 0, 0, err
			}
			if limit >= 0 && flags == recData && n > limit {
				return p, n, flags, 0, ErrShortBuffer
			}
			r.claimGet.Store(p + 1)
			if r.head.CompareAndSwap(p, p+1) {
				return p, n, flags, claimed, nil
			}
			r.claimGet.Store(0) // lost the race: withdraw (see claimPutPos)
		case seq == p:
			r.withdraw(r.claimGet)
			t := r.tail.Load()
			tp := t &^ closedBit
			if tp < p && r.head.Load() == p {
				return 0, 0, 0, 0, corruptf("head %d beyond tail %d", p, tp)
			}
			if tp > p {
				if tp-p > r.nslots {
					// tail <= head+nslots always holds, unless p is stale.
					if r.head.Load() != p {
						continue
					}
					return 0, 0, 0, 0, corruptf("tail %d, head %d, %d slots", tp, p, r.nslots)
				}
				return p, 0, 0, stuck, nil
			}
			if tp == p && t&closedBit != 0 {
				return p, 0, 0, drained, nil
			}
			return p, 0, 0, blocked, nil
		case p >= r.nslots && (seq == p+1-r.nslots || seq == p-r.nslots):
			// The slot still holds lap p-nslots, taken by a consumer that
			// has not freed it yet (seq == p+1-nslots), or by a consumer
			// recovering it from a dead producer, between its head CAS and
			// handing the slot on (seq == p-nslots): nothing for p has been
			// produced (a producer claims p only once the slot is free), so
			// tail <= p unless p or seq went stale meanwhile.
			r.withdraw(r.claimGet)
			t := r.tail.Load()
			if tp := t &^ closedBit; tp > p {
				if r.head.Load() == p && r.seq(p).Load() == seq {
					return 0, 0, 0, 0, corruptf("tail %d beyond head %d whose slot holds the previous lap (%d)", tp, p, seq)
				}
				continue
			}
			if t&closedBit != 0 {
				return p, 0, 0, drained, nil
			}
			return p, 0, 0, blocked, nil
		default:
			if r.head.Load() == p {
				return 0, 0, 0, 0, corruptf("slot of position %d has sequence %d", p, seq)
			}
		}
	}
}

// record reads and validates the header of the published record at pos.
func (r *mpmcRing) record(pos uint64) (n int, flags uint32, err error) {
	s := r.slot(pos)
	n32 := binary.LittleEndian.Uint32(s[8:])
	flags = binary.LittleEndian.Uint32(s[12:])
	if flags == recData && uint64(n32) > r.maxMsg {
		return 0, 0, corruptf("record of %d bytes (max %d) at position %d", n32, r.maxMsg, pos)
	}
	if flags != recData && flags != recDead {
		return 0, 0, corruptf("bad record flags %#x at position %d", flags, pos)
	}
	return int(n32), flags, nil
}

// takeHeld returns the message of a position this consumer took while
// recovering it, which its producer published after all (see
// recoverProducer). It stays held while it does not fit limit.
func (r *mpmcRing) takeHeld(limit int) (msg []byte, ok bool, err error) {
	pos := r.held - 1
	n, flags, err := r.record(pos)
	if err != nil {
		return nil, false, err
	}
	if flags == recDead {
		r.held = 0
		r.skip(pos)
		return nil, false, nil
	}
	if limit >= 0 && n > limit {
		return nil, false, ErrShortBuffer
	}
	r.held = 0
	r.gpos = pos
	return r.payload(pos, n), true, nil
}

func (r *mpmcRing) next(limit int) ([]byte, error) {
	if r.held != 0 {
		msg, ok, err := r.takeHeld(limit)
		if err != nil || ok {
			return msg, err
		}
	}
	for {
		pos, n, flags, st, err := r.claimGetPos(limit)
		if err != nil {
			return nil, err
		}
		switch st {
		case claimed:
			r.cStuck = stuckState{}
			if flags == recDead {
				r.skip(pos)
				continue
			}
			if r.hooks != nil && r.hooks.got != nil {
				r.hooks.got()
			}
			r.gpos = pos
			return r.payload(pos, n), nil
		case stuck:
			if r.overdue(&r.cStuck, pos) && r.recoverProducer(pos) {
				if r.held != 0 {
					if msg, ok, err := r.takeHeld(limit); err != nil || ok {
						return msg, err
					}
				}
				continue
			}
		case drained:
			return nil, ErrClosed
		}
		return nil, ErrEmpty
	}
}

// skip passes an abandoned reservation's record, which this consumer
// took: counted, so that Len and Gets leave it out (see stats).
func (r *mpmcRing) skip(pos uint64) {
	r.c.ctl.u64(cSkipped).Add(1)
	r.free(pos)
}

// free hands the slot of pos to the producer of the next lap.
func (r *mpmcRing) free(pos uint64) {
	// Invariant: we are done reading the slot; the next lap may write it.
	r.seq(pos).Store(pos + r.nslots)
}

func (r *mpmcRing) consume() { r.free(r.gpos) }

func (r *mpmcRing) release(bool) bool { return true }

func (r *mpmcRing) shutdown() { r.tail.Or(closedBit) }

func (r *mpmcRing) isShutdown() bool { return r.tail.Load()&closedBit != 0 }

func (r *mpmcRing) detach() {
	if r.held != 0 {
		// Taken by recovery and never returned: lost with this handle.
		r.c.ctl.u64(cDeadCons).Add(1)
		r.free(r.held - 1)
		r.held = 0
	}
	r.claimPut.Store(0)
	r.claimGet.Store(0)
}
