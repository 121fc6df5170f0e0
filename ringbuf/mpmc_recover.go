package ringbuf

// Crash recovery of the MPMC ring (see the protocol in mpmc.go): positions
// claimed by a participant that died before finishing with them.

import "time"

// stuckGrace is how long a side waits on a claimed-but-unfinished position
// before it asks the kernel whether its claimant died.
const stuckGrace = 10 * time.Millisecond

// stuckState tracks how long one side has been stuck on one position.
type stuckState struct {
	pos   uint64
	since time.Time
}

func (s *stuckState) active() bool { return !s.since.IsZero() }

// overdue reports whether this side has been stuck on pos for stuckGrace,
// starting the clock on a new position.
func (r *mpmcRing) overdue(s *stuckState, pos uint64) bool {
	now := time.Now()
	if !s.active() || s.pos != pos {
		s.pos, s.since = pos, now
		return false
	}
	return now.Sub(s.since) >= stuckGrace
}

// claimantAlive reports whether a live participant's claim word at off
// equals v. The claimant stored its claim before taking the position, so if
// none is alive, the claimant died.
func (r *mpmcRing) claimantAlive(off int, v uint64) bool {
	for i := 0; i < r.c.parts; i++ {
		w := r.c.statsLine(i).u64(off)
		if w.Load() != v {
			continue
		}
		if t := r.c.seg.SlotToken(i); t != 0 && r.c.seg.Alive(t) {
			return true
		}
	}
	return false
}

// recoverProducer skips position pos if its producer died between claim
// and publish. It reports whether the ring changed (look again).
func (r *mpmcRing) recoverProducer(pos uint64) bool {
	if r.claimantAlive(sClaimPut, pos+1) {
		return false
	}
	// Take position pos as its consumer would: the head CAS elects one
	// recoverer, which owns the slot until it frees it, so nothing is ever
	// written into a slot that the next lap may already own.
	r.claimGet.Store(pos + 1)
	if !r.head.CompareAndSwap(pos, pos+1) {
		r.claimGet.Store(0)
	} else if r.seq(pos).CompareAndSwap(pos, pos+r.nslots) || r.seq(pos).Load() != pos+1 {
		// Invariant: seq == pos (claimed, never published): the CAS hands
		// the slot to the producer of the next lap. (Or a producer found
		// us slow and handed it on: recoverConsumer.)
		r.c.ctl.u64(cDeadProd).Add(1)
	} else {
		// Published after all, between the liveness scan (which found the
		// producer's claim word already moved on to its next put) and the
		// head CAS: the head CAS made it ours, so deliver it. Dropping it
		// lost a message that Put reported delivered (mpmc.pml, DROP_LATE).
		r.held = pos + 1
	}
	r.cStuck = stuckState{}
	return true
}

// recoverConsumer frees the slot of position pos if the consumer that took
// it died before freeing it; the message is lost and counted.
func (r *mpmcRing) recoverConsumer(pos uint64) bool {
	if r.claimantAlive(sClaimGet, pos+1) {
		return false
	}
	// Invariant: the CAS frees the slot for the next lap exactly once.
	if r.seq(pos).CompareAndSwap(pos+1, pos+r.nslots) {
		r.c.ctl.u64(cDeadCons).Add(1)
	} else {
		// A consumer that died recovering a dead producer's position,
		// between its head CAS and freeing the slot. If it died before
		// counting the position as a dead producer's, nobody does: the
		// stats identity still holds (the position is neither a put nor a
		// get), DeadProducerSlots is one short.
		r.seq(pos).CompareAndSwap(pos, pos+r.nslots)
	}
	r.pStuck = stuckState{}
	return true
}
