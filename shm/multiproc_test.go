package shm_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

// attachAndHold reports the child's token, adds to "n", and stays attached
// until told to go.
func attachAndHold(ctx context.Context, seg *shm.Segment) error {
	defer seg.Close()
	n, err := shm.LookupValue[int64](seg, "n")
	if err != nil {
		return err
	}
	for i := 0; i < 1000; i++ {
		n.Add(1)
	}
	tok, err := shm.LookupValue[uint32](seg, "tok")
	if err != nil {
		return err
	}
	tok.Store(uint32(seg.Self()))
	testutil.Signal("attached")
	if _, err := testutil.Recv(ctx); err != nil {
		return err
	}
	return nil
}

func roleAttachInherited(ctx context.Context) error {
	f := testutil.InheritedFile(0)
	seg, err := shm.OpenFile(f)
	f.Close()
	if err != nil {
		return err
	}
	return attachAndHold(ctx, seg)
}

func roleAttachNamed(ctx context.Context) error {
	seg, err := shm.Open(os.Getenv("SEG"))
	if err != nil {
		return err
	}
	return attachAndHold(ctx, seg)
}

// awaitToken waits until the child is attached and returns the token it
// published in the Value "tok".
func awaitToken(t *testing.T, ctx context.Context, seg *shm.Segment, c *testutil.Child) shm.Token {
	t.Helper()
	if err := c.Await(ctx, "attached"); err != nil {
		t.Fatal(err)
	}
	tok, err := shm.LookupValue[uint32](seg, "tok")
	if err != nil {
		t.Fatal(err)
	}
	return shm.Token(tok.Load())
}

// TestInheritedAnonymousSegment passes a memfd segment to a child as an
// inherited file. The child reopens it, so it registers as its own
// participant, and the kernel tracks its liveness separately from ours.
func TestInheritedAnonymousSegment(t *testing.T) {
	seg, err := shm.CreateAnonymous(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	n, _ := shm.NewValue[int64](seg, "n")
	shm.NewValue[uint32](seg, "tok")
	ctx := testutil.Context(t)
	f, err := seg.File()
	if err != nil {
		t.Fatal(err)
	}
	c := testutil.Spawn(t, "attach-inherited", testutil.Files(f))
	f.Close()
	tok := awaitToken(t, ctx, seg, c)
	if tok == seg.Self() {
		t.Fatal("child shares the parent's participant token")
	}
	if got := n.Load(); got != 1000 {
		t.Fatalf("parent sees %d, want the child's 1000 adds", got)
	}
	if !seg.Alive(tok) {
		t.Fatal("live child reported dead")
	}
	c.Kill()
	if seg.Alive(tok) {
		t.Fatal("killed child reported alive")
	}
}

// TestLivenessIsKernelProven: a stopped participant is alive, a killed one
// dead, and the segment is stale only once every other participant is gone.
func TestLivenessIsKernelProven(t *testing.T) {
	name := testutil.Name(t)
	seg, err := shm.Create(name, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Unlink(name)
	defer seg.Close()
	shm.NewValue[int64](seg, "n")
	shm.NewValue[uint32](seg, "tok")
	ctx := testutil.Context(t)
	c := testutil.Spawn(t, "attach-named", testutil.Env("SEG", name))
	tok := awaitToken(t, ctx, seg, c)
	if stale, _ := seg.Stale(); stale {
		t.Fatal("segment with a live participant reported stale")
	}
	c.Stop()
	if !seg.Alive(tok) {
		t.Fatal("stopped participant reported dead")
	}
	if stale, _ := seg.Stale(); stale {
		t.Fatal("segment with a stopped participant reported stale")
	}
	c.Cont()
	c.Kill()
	if seg.Alive(tok) {
		t.Fatal("killed participant reported alive")
	}
	ps, err := seg.Participants()
	if err != nil {
		t.Fatal(err)
	}
	var dead int
	for _, p := range ps {
		if p.Token == tok && !p.Alive {
			dead++
		}
	}
	if dead != 1 {
		t.Fatalf("participants %+v: killed child not listed dead", ps)
	}
	if stale, _ := seg.Stale(); !stale {
		t.Fatal("segment whose other participants are dead not stale")
	}
	// A new participant reuses the dead slot; the old token stays dead.
	c2 := testutil.Spawn(t, "attach-named", testutil.Env("SEG", name))
	tok2 := awaitToken(t, ctx, seg, c2)
	if tok2.Slot() == tok.Slot() && tok2 == tok {
		t.Fatal("reused slot kept its token")
	}
	if seg.Alive(tok) || !seg.Alive(tok2) {
		t.Fatalf("after reuse: old alive %v, new alive %v", seg.Alive(tok), seg.Alive(tok2))
	}
	c2.Send("go")
	if err := c2.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

const arrayRounds = 20000

func roleArrayLocked(ctx context.Context) error {
	seg, err := shm.Open(os.Getenv("SEG"))
	if err != nil {
		return err
	}
	defer seg.Close()
	a, err := shm.LookupArray[int64](seg, "a")
	if err != nil {
		return err
	}
	for i := 0; i < arrayRounds; i++ {
		if err := a.Lock(ctx); err != nil {
			return err
		}
		s := a.Slice()
		// Under the lock every element is equal; unlocked writers from the
		// other process would break that.
		first := s[0]
		for j := range s {
			if s[j] != first {
				return fmt.Errorf("torn array %v", s)
			}
			s[j]++
		}
		if err := a.Unlock(); err != nil {
			return err
		}
	}
	return nil
}

// TestArrayLockAcrossProcesses: Python's Array(lock=True) across two
// processes doing multi-element updates.
func TestArrayLockAcrossProcesses(t *testing.T) {
	name := testutil.Name(t)
	seg, err := shm.Create(name, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Unlink(name)
	defer seg.Close()
	a, err := shm.NewArray[int64](seg, "a", 16)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t)
	c1 := testutil.Spawn(t, "array-locked", testutil.Env("SEG", name))
	c2 := testutil.Spawn(t, "array-locked", testutil.Env("SEG", name))
	for _, c := range []*testutil.Child{c1, c2} {
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range a.Slice() {
		if v != 2*arrayRounds {
			t.Fatalf("element %d = %d, want %d", i, v, 2*arrayRounds)
		}
	}
}
