package ringbuf

// The MPMC ring's readiness (what a sleeping side is woken for, including
// a claim that may belong to a dead participant) and its accounting
// (length and stats derived from the positions; see the protocol in
// mpmc.go).

import "time"

func (r *mpmcRing) waitKey(producer bool) (uint64, time.Duration) {
	st := &r.cStuck
	if producer {
		st = &r.pStuck
	}
	if st.active() {
		return 1, stuckGrace
	}
	return 0, 0
}

// ready: key 1 means the side waits out a stuck claim on a timer, and
// needs no wakeup for it.
func (r *mpmcRing) ready(producer bool, _ int, key uint64) bool {
	stuck := key == 1
	if producer {
		return r.tail.Load()&closedBit != 0 || r.readyPut(stuck)
	}
	// Shut down: look again, unless waiting out a claim on a timer.
	return r.readyGet(stuck) || !stuck && r.tail.Load()&closedBit != 0
}

// readyGet reports whether a consumer should look at the ring again: the
// message at head is published, or (unless it already waits on a stuck
// claim, and re-checks that on a timer) a producer has claimed head, which
// may be dead.
func (r *mpmcRing) readyGet(stuck bool) bool {
	p := r.head.Load()
	seq := r.seq(p).Load()
	if seq == p+1 {
		return true
	}
	// Only a claimed, unpublished head is worth a look (its producer may be
	// dead); a slot still holding the previous lap is empty, not ready.
	return !stuck && seq == p && r.tail.Load()&^closedBit > p
}

// readyPut is the producer's counterpart: the slot at tail is free, or it
// is held by a consumer (head moved past its lap), which may be dead.
func (r *mpmcRing) readyPut(stuck bool) bool {
	p := r.tail.Load() &^ closedBit
	seq := r.seq(p).Load()
	if seq == p {
		return true
	}
	return !stuck && p >= r.nslots && (seq == p-r.nslots+1 || seq == p-r.nslots) && r.head.Load() > p-r.nslots
}

func (r *mpmcRing) length() int {
	var st Stats
	r.c.sumCounters(&st)
	r.stats(&st)
	return st.Len
}

func (r *mpmcRing) depth() uint64 {
	t, h := r.tail.Load()&^closedBit, r.head.Load()
	if t < h {
		return 0
	}
	return min(t-h, r.nslots) // corrupt counters give no more than the ring holds
}

// stats derives the message counts from the positions (see the
// protocol): every position below tail was put, recovered from a dead
// producer, or abandoned; every one below head was got, recovered, lost
// with a dead consumer, or an abandoned record skipped. Abandoned records
// not yet skipped are not messages, so Len leaves them out. Then
// Puts = Gets + DeadConsumerLosses + Len holds by construction; a
// participant killed between a step and its count can only move a message
// between the terms.
func (r *mpmcRing) stats(st *Stats) {
	t, h := r.tail.Load()&^closedBit, r.head.Load()
	ab := r.c.ctl.u64(cAbandoned).Load()
	sk := min(r.c.ctl.u64(cSkipped).Load(), ab)
	st.Puts = t - min(st.DeadProducerSlots+ab, t)
	st.Gets = h - min(st.DeadProducerSlots+sk+st.DeadConsumerLosses, h)
	depth := r.depth()
	st.Len = int(depth - min(ab-sk, depth))
}
