package ringbuf

// A corrupt ring (a scribbling peer) must give ErrCorrupt, never a panic or
// a hang.

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

// corruptCase corrupts a fresh queue q (after setup puts/gets through it)
// and names the side whose calls must fail.
type corruptCase struct {
	name    string
	mode    Mode
	side    string // "get" or "put"
	corrupt func(t *testing.T, q *Queue, ring []byte)
}

// corruptRing returns the queue's ring memory, looked up by name as
// another process would.
func corruptRing(t *testing.T, q *Queue) []byte {
	t.Helper()
	_, ring, err := q.Segment().Lookup(objRing, shm.KindRing, uint32(q.Mode()))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func corruptPut(t *testing.T, q *Queue, sizes ...int) {
	t.Helper()
	for _, n := range sizes {
		if err := q.TryPut(make([]byte, n)); err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
	}
}

func corruptGet(t *testing.T, q *Queue, k int) {
	t.Helper()
	for i := 0; i < k; i++ {
		if _, err := q.TryGet(); err != nil {
			t.Fatalf("get: %v", err)
		}
	}
}

func corruptCases() []corruptCase {
	le32 := binary.LittleEndian.PutUint32
	return []corruptCase{
		// SPSC: a ring of 256 bytes, records of 8-byte header + payload.
		{"spsc/length-beyond-capacity", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[0:], 1<<30)
		}},
		{"spsc/length-beyond-max-message", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 100, 100)
			le32(ring[0:], 101)
		}},
		{"spsc/length-beyond-published", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 8)
			le32(ring[0:], 64)
		}},
		{"spsc/bad-flags", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[4:], 0xdeadbeef)
		}},
		{"spsc/bad-padding", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			// Records of 112 bytes at 0 and 112; the third pads 224..255.
			corruptPut(t, q, 100, 100)
			corruptGet(t, q, 2)
			corruptPut(t, q, 100)
			if f := binary.LittleEndian.Uint32(ring[224+4:]); f != recPad {
				t.Fatalf("no padding record at 224: flags %#x", f)
			}
			le32(ring[224:], 8)
		}},
		{"spsc/tail-beyond-head-plus-capacity", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			corruptGet(t, q, 1)
			q.c.ctl.u64(cTail).Store(q.c.ctl.u64(cHead).Load() + 256 + 8)
		}},
		{"spsc/tail-behind-head", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 100)
			corruptGet(t, q, 1)
			q.c.ctl.u64(cTail).Store(8)
		}},
		{"spsc/head-beyond-tail", SPSC, "put", func(t *testing.T, q *Queue, ring []byte) {
			for q.TryPut(make([]byte, 50)) == nil {
			}
			q.c.ctl.u64(cHead).Store(q.c.ctl.u64(cTail).Load() + 8)
		}},
		// MPMC: four slots {seq uint64, len uint32, flags uint32, payload}.
		{"mpmc/sequence-out-of-range-at-head", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			q.mpmc().seq(0).Store(12345)
		}},
		{"mpmc/sequence-out-of-range-at-tail", MPMC, "put", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			q.mpmc().seq(1).Store(999)
		}},
		{"mpmc/length-beyond-max-message", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[8:], crashMax+1)
		}},
		{"mpmc/length-beyond-capacity", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[8:], 1<<31)
		}},
		{"mpmc/bad-flags", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[12:], 7)
		}},
		{"mpmc/tail-beyond-head-plus-slots", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			q.c.ctl.u64(cTail).Store(4 + 5)
		}},
		{"mpmc/head-beyond-tail", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			corruptGet(t, q, 1)
			q.c.ctl.u64(cHead).Store(3)
		}},
	}
}

// corruptCall runs one call of the named form on q with a deadline and
// returns its error (a hang is a failure, reported as such).
func corruptCall(t *testing.T, q *Queue, form string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	buf := make([]byte, 4*crashMax)
	var err error
	switch form {
	case "TryGet":
		_, err = q.TryGet()
	case "Get":
		_, err = q.Get(ctx)
	case "GetInto":
		_, err = q.GetInto(ctx, buf)
	case "GetBatch":
		_, err = q.GetBatch(ctx, buf, make([]int, 4))
	case "Peek":
		err = q.WithPeek(ctx, func([]byte) error { return nil })
	case "TryPut":
		err = q.TryPut(make([]byte, 10))
	case "Put":
		err = q.Put(ctx, make([]byte, 10))
	case "PutBatch":
		_, err = q.PutBatch(ctx, [][]byte{make([]byte, 10), make([]byte, 20)})
	case "Reserve":
		err = q.WithReserve(ctx, 10, func([]byte) (int, error) { return 10, nil })
	default:
		t.Fatalf("unknown form %q", form)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s on a corrupt ring hung (%v)\n%s", form, err, xpDiag(q))
	}
	return err
}

// TestCorruptRing corrupts the shared words of a queue in each way a
// faulty or hostile peer could, and checks that every form of call on the
// affected side fails with ErrCorrupt (matching shm.ErrCorrupt), again on
// the next call (the handle is unusable), and never panics or hangs.
func TestCorruptRing(t *testing.T) {
	forms := map[string][]string{
		"get": {"TryGet", "Get", "GetInto", "GetBatch", "Peek"},
		"put": {"TryPut", "Put", "PutBatch", "Reserve"},
	}
	for _, c := range corruptCases() {
		for _, form := range forms[c.side] {
			t.Run(c.name+"/"+form, func(t *testing.T) {
				capacity, maxMsg := 256, 100
				if c.mode == MPMC {
					capacity, maxMsg = crashCap, crashMax
				}
				q := newQ(t, Options{Mode: c.mode, Capacity: capacity, MaxMessage: maxMsg})
				c.corrupt(t, q, corruptRing(t, q))
				err := corruptCall(t, q, form)
				if !errors.Is(err, ErrCorrupt) || !errors.Is(err, shm.ErrCorrupt) {
					t.Fatalf("%s = %v, want ErrCorrupt\n%s", form, err, xpDiag(q))
				}
				if err := corruptCall(t, q, form); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("second %s = %v, want ErrCorrupt", form, err)
				}
			})
		}
	}
}

// TestCorruptConfig corrupts a named queue's immutable configuration:
// Open must refuse it with ErrCorrupt.
func TestCorruptConfig(t *testing.T) {
	for _, c := range []struct {
		name    string
		mode    Mode
		corrupt func(q *Queue)
	}{
		{"spsc/capacity-not-ring-size", SPSC, func(q *Queue) { q.c.ctl.u64(cCapacity).Store(128) }},
		{"spsc/max-message-too-large", SPSC, func(q *Queue) { q.c.ctl.u32(cMaxMsg).Store(200) }},
		{"mpmc/slots-not-power-of-two", MPMC, func(q *Queue) { q.c.ctl.u64(cCapacity).Store(3) }},
		{"mpmc/slot-size-too-small", MPMC, func(q *Queue) { q.c.ctl.u32(cSlotSize).Store(64) }},
		{"mpmc/mode-changed", MPMC, func(q *Queue) { q.c.ctl.u32(cMode).Store(uint32(SPSC)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := testutil.Name(t)
			capacity := 256
			if c.mode == MPMC {
				capacity = crashCap
			}
			q, err := Create(name, Options{Mode: c.mode, Capacity: capacity, MaxMessage: 100})
			if err != nil {
				t.Fatal(err)
			}
			defer Unlink(name)
			defer q.Close()
			c.corrupt(q)
			q2, err := Open(name)
			if err == nil {
				q2.Close()
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}
