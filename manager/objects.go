package manager

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
)

// object is one named shared object on the server. Each has its own
// mutex; changed is closed (and replaced) on every change a blocked call
// may wait for, so waiters re-check without a lost wakeup: they take ch
// under mu, and a change closes that very ch after it.
type object struct {
	mu      sync.Mutex
	typ     uint8
	changed chan struct{}

	dict map[string][]byte // Dict
	list [][]byte          // List, Queue
	val  []byte            // Value

	capacity int // Queue: 0 unbounded

	owner   *sconn // Lock, RLock
	depth   int    // RLock recursion
	died    bool   // Lock/RLock: the last holder disconnected holding it
	count   int64  // Semaphore value; Queue unfinished tasks
	set     bool   // Event
	parties int    // Barrier
	arrived int
	gen     uint64
	broken  bool
}

func newObject(typ uint8) *object {
	o := &object{typ: typ, changed: make(chan struct{})}
	if typ == tDict {
		o.dict = map[string][]byte{}
	}
	return o
}

// notify wakes every call waiting on o (o.mu held).
func (o *object) notify() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// errBlock: the call cannot complete now; the caller waits on o.changed
// and tries again.
var errBlock = fmt.Errorf("would block")

// apply runs one operation on o (o.mu held). It returns errBlock when a
// blocking operation must wait.
func (o *object) apply(c *sconn, rq *request, rs *response) error {
	switch o.typ {
	case tDict:
		return o.dictOp(rq, rs)
	case tList:
		return o.listOp(rq, rs)
	case tQueue:
		return o.queueOp(rq, rs)
	case tValue:
		return o.valueOp(rq, rs)
	case tLock, tRLock:
		return o.lockOp(c, rq, rs)
	case tSemaphore:
		return o.semOp(rq, rs)
	case tEvent:
		return o.eventOp(rq, rs)
	case tBarrier:
		return o.barrierOp(rq, rs)
	}
	return ErrInvalid
}

func (o *object) dictOp(rq *request, rs *response) error {
	d := o.dict
	switch rq.Op {
	case opGet:
		v, ok := d[rq.Key]
		if !ok {
			return fmt.Errorf("%w: key %q", ErrNotFound, rq.Key)
		}
		rs.Val = v
	case opSet:
		d[rq.Key] = rq.Val
	case opDelete:
		_, rs.OK = d[rq.Key]
		delete(d, rq.Key)
	case opLen:
		rs.N = int64(len(d))
	case opKeys, opItems:
		rs.Keys = make([]string, 0, len(d))
		for k := range d {
			rs.Keys = append(rs.Keys, k)
		}
		sort.Strings(rs.Keys)
		if rq.Op == opItems {
			rs.Vals = make([][]byte, len(rs.Keys))
			for i, k := range rs.Keys {
				rs.Vals[i] = d[k]
			}
		}
	case opUpdate:
		if len(rq.Keys) != len(rq.Vals) {
			return ErrInvalid
		}
		for i, k := range rq.Keys {
			d[k] = rq.Vals[i]
		}
	case opPop:
		v, ok := d[rq.Key]
		if !ok {
			return fmt.Errorf("%w: key %q", ErrNotFound, rq.Key)
		}
		delete(d, rq.Key)
		rs.Val = v
	case opSetDefault:
		v, ok := d[rq.Key]
		if !ok {
			d[rq.Key] = rq.Val
			v = rq.Val
		}
		rs.Val, rs.OK = v, !ok
	case opCAS:
		// Old nil: set only if absent.
		v, ok := d[rq.Key]
		if rq.Old == nil && !ok || ok && rq.Old != nil && string(v) == string(rq.Old) {
			d[rq.Key] = rq.Val
			rs.OK = true
		}
	case opAdd:
		n, err := addTo(d[rq.Key], rq.N)
		if err != nil {
			return fmt.Errorf("%w: key %q: %v", ErrType, rq.Key, err)
		}
		d[rq.Key], rs.N = encInt(n), n
	default:
		return ErrInvalid
	}
	return nil
}

// addTo decodes an integer (absent: 0) and adds delta.
func addTo(cur []byte, delta int64) (int64, error) {
	var n int64
	if cur != nil {
		if err := decMode.Unmarshal(cur, &n); err != nil {
			return 0, fmt.Errorf("not an integer")
		}
	}
	if (delta > 0 && n > math.MaxInt64-delta) || (delta < 0 && n < math.MinInt64-delta) {
		return 0, fmt.Errorf("%d + %d overflows int64", n, delta)
	}
	return n + delta, nil
}

func encInt(n int64) []byte { return appendInt(nil, n) }

func (o *object) index(i int64, n int) (int, error) {
	if i < 0 {
		i += int64(n)
	}
	if i < 0 || i >= int64(n) {
		return 0, fmt.Errorf("%w: index %d of %d", ErrNotFound, i, n)
	}
	return int(i), nil
}

func (o *object) listOp(rq *request, rs *response) error {
	switch rq.Op {
	case opAppend:
		o.list = append(o.list, rq.Val)
	case opExtend:
		o.list = append(o.list, rq.Vals...)
	case opGet, opSet, opPop:
		i, err := o.index(rq.N, len(o.list))
		if err != nil {
			return err
		}
		switch rq.Op {
		case opGet:
			rs.Val = o.list[i]
		case opSet:
			o.list[i] = rq.Val
		case opPop:
			rs.Val = o.list[i]
			o.list = slices.Delete(o.list, i, i+1)
		}
	case opInsert:
		i := rq.N
		n := int64(len(o.list))
		if i < 0 {
			i = max(0, i+n)
		}
		o.list = slices.Insert(o.list, int(min(i, n)), rq.Val)
	case opRemove:
		for i, v := range o.list {
			if string(v) == string(rq.Val) {
				o.list = slices.Delete(o.list, i, i+1)
				return nil
			}
		}
		return fmt.Errorf("%w: value not in list", ErrNotFound)
	case opLen:
		rs.N = int64(len(o.list))
	case opSlice:
		n := int64(len(o.list))
		lo, hi := clampIdx(rq.N, n), n
		if rq.Val != nil { // hi, an integer; absent: the end
			var h int64
			if err := decMode.Unmarshal(rq.Val, &h); err != nil {
				return ErrInvalid
			}
			hi = clampIdx(h, n)
		}
		if lo < hi {
			rs.Vals = slices.Clone(o.list[lo:hi])
		}
	default:
		return ErrInvalid
	}
	return nil
}

func clampIdx(i, n int64) int64 {
	if i < 0 {
		i += n
	}
	return max(0, min(i, n))
}

func (o *object) queueOp(rq *request, rs *response) error {
	switch rq.Op {
	case opPut, opTryPut:
		if o.capacity > 0 && len(o.list) >= o.capacity {
			if rq.Op == opTryPut {
				return ErrFull
			}
			return errBlock
		}
		o.list = append(o.list, rq.Val)
		o.count++ // unfinished tasks
		o.notify()
	case opGet, opTryGet:
		if len(o.list) == 0 {
			if rq.Op == opTryGet {
				return ErrEmpty
			}
			return errBlock
		}
		rs.Val = o.list[0]
		o.list[0] = nil
		o.list = o.list[1:]
		o.notify()
	case opUnget:
		// A client puts back a message it got but its caller gave up on:
		// past capacity by at most a connection's blocked calls' worth.
		if o.capacity > 0 && len(o.list) >= o.capacity+DefaultMaxPending {
			return ErrFull
		}
		o.list = slices.Insert(o.list, 0, rq.Val)
		o.notify()
	case opLen:
		rs.N = int64(len(o.list))
	case opTaskDone:
		if o.count == 0 {
			return fmt.Errorf("%w: TaskDone called more times than tasks were put", ErrInvalid)
		}
		if o.count--; o.count == 0 {
			o.notify()
		}
	case opJoin:
		if o.count > 0 {
			return errBlock
		}
	default:
		return ErrInvalid
	}
	return nil
}

func (o *object) valueOp(rq *request, rs *response) error {
	switch rq.Op {
	case opGet:
		rs.Val = o.val
	case opSet:
		o.val = rq.Val
	case opCAS:
		if string(o.val) == string(rq.Old) {
			o.val, rs.OK = rq.Val, true
		}
	case opAdd:
		n, err := addTo(o.val, rq.N)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrType, err)
		}
		o.val, rs.N = encInt(n), n
	default:
		return ErrInvalid
	}
	return nil
}

func (o *object) lockOp(c *sconn, rq *request, rs *response) error {
	switch rq.Op {
	case opAcquire, opTryAcquire:
		if o.owner == c && o.typ == tRLock {
			o.depth++
			return nil
		}
		if o.owner != nil {
			if rq.Op == opTryAcquire {
				rs.OK = false
				return nil
			}
			return errBlock
		}
		o.owner, o.depth, rs.OK = c, 1, true
		c.hold(o)
		if o.died {
			o.died = false
			return ErrOwnerDead // acquired; the caller is told
		}
	case opRelease:
		if o.owner != c {
			return ErrNotOwner
		}
		if o.depth--; o.depth == 0 {
			o.owner = nil
			c.drop(o)
			o.notify()
		}
	case opLocked:
		rs.OK = o.owner != nil
	default:
		return ErrInvalid
	}
	return nil
}

// ownerGone releases o if c holds it, marking it for the next holder.
func (o *object) ownerGone(c *sconn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.owner == c {
		o.owner, o.depth, o.died = nil, 0, true
		o.notify()
	}
}

func (o *object) semOp(rq *request, rs *response) error {
	switch rq.Op {
	case opAcquire, opTryAcquire:
		if o.count == 0 {
			if rq.Op == opTryAcquire {
				return nil // OK false
			}
			return errBlock
		}
		o.count--
		rs.OK = true
	case opRelease:
		if o.count == math.MaxInt64 {
			return fmt.Errorf("%w: semaphore count at its maximum", ErrInvalid)
		}
		o.count++
		o.notify()
	case opLen:
		rs.N = o.count
	default:
		return ErrInvalid
	}
	return nil
}

func (o *object) eventOp(rq *request, rs *response) error {
	switch rq.Op {
	case opSet:
		if !o.set {
			o.set = true
			o.notify()
		}
	case opClear:
		o.set = false
	case opIsSet:
		rs.OK = o.set
	case opWait:
		if !o.set {
			return errBlock
		}
		rs.OK = true
	default:
		return ErrInvalid
	}
	return nil
}

// barrierOp: opWait arrives once and then waits for the generation it
// arrived in to complete. Where it arrived is kept in the request's
// server-only field (never decoded from the client), for its retries.
func (o *object) barrierOp(rq *request, rs *response) error {
	switch rq.Op {
	case opWait:
		if rq.arrival == nil {
			if o.broken {
				return ErrBroken
			}
			rq.arrival = &arrival{gen: o.gen, index: o.arrived}
			o.arrived++
			if o.arrived == o.parties {
				o.arrived = 0
				o.gen++
				o.notify()
			}
		}
		rs.N = int64(rq.arrival.index)
		if o.gen != rq.arrival.gen {
			return nil
		}
		if o.broken {
			return ErrBroken
		}
		return errBlock
	case opAbort:
		o.broken = true
		o.notify()
	case opReset:
		o.broken, o.arrived = false, 0
		o.gen++
		o.notify()
	case opLen:
		rs.N = int64(o.arrived)
	default:
		return ErrInvalid
	}
	return nil
}
