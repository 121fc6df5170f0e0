package shm_test

import (
	"errors"
	"os"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

// TestRemoveStaleSparesLiveAndStopped: gc removes a segment only when the
// kernel proves every participant dead; a stopped participant is alive.
func TestRemoveStaleSparesLiveAndStopped(t *testing.T) {
	name := testutil.Name(t)
	seg, err := shm.Create(name, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	shm.NewValue[int64](seg, "n")
	shm.NewValue[uint32](seg, "tok")
	ctx := testutil.Context(t)
	c := testutil.Spawn(t, "attach-named", testutil.Env("SEG", name))
	awaitToken(t, ctx, seg, c)
	seg.Close() // only the child is attached now
	t.Cleanup(func() { shm.Unlink(name) })

	r, err := shm.Inspect(name)
	if err != nil {
		t.Fatal(err)
	}
	if r.Live != 1 || r.Dead != 1 || r.Stale() {
		t.Fatalf("Inspect: live %d dead %d stale %v, want 1 live (child), 1 dead (us)", r.Live, r.Dead, r.Stale())
	}
	if err := shm.RemoveStale(name); !errors.Is(err, shm.ErrNotStale) {
		t.Fatalf("RemoveStale with a live participant = %v", err)
	}
	c.Stop()
	if err := shm.RemoveStale(name); !errors.Is(err, shm.ErrNotStale) {
		t.Fatalf("RemoveStale with a stopped participant = %v", err)
	}
	c.Cont()
	c.Kill()
	if err := shm.RemoveStale(name); err != nil {
		t.Fatalf("RemoveStale after the last participant died = %v", err)
	}
	if _, err := os.Stat(shm.Path(name)); !os.IsNotExist(err) {
		t.Fatalf("segment still there: %v", err)
	}
	if _, err := shm.Open(name); !errors.Is(err, shm.ErrNotExist) {
		t.Fatalf("Open after gc = %v", err)
	}
}

func TestListAndInspectForeign(t *testing.T) {
	dir := shm.Dir()
	os.WriteFile(dir+"/unrelated-file", []byte("x"), 0o600)
	os.WriteFile(dir+"/"+shm.FilePrefix+"junk", []byte("not a segment"), 0o600)
	defer os.Remove(dir + "/unrelated-file")
	defer os.Remove(dir + "/" + shm.FilePrefix + "junk")
	names, err := shm.List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		if n == "unrelated-file" {
			t.Fatal("listed a file without the prefix")
		}
		found = found || n == "junk"
	}
	if !found {
		t.Fatalf("List = %v, want junk", names)
	}
	if _, err := shm.Inspect("junk"); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("Inspect of junk = %v", err)
	}
	if err := shm.RemoveStale("junk"); !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("RemoveStale of junk = %v (must never remove what it cannot read)", err)
	}
}
