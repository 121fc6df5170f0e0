//go:build linux

package shm

// Tests of a segment's life: create, open, objects, participants, close.
// One file over 500 lines: one test per documented behaviour of segment.go
// and objects.go, in their order.

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/sysx"
)

// tempDir points named segments at a fresh directory for this test, so no
// test touches /dev/shm whatever TestMain does.
func tempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	t.Setenv(DirEnv, d)
	return d
}

// mustCreate creates a named segment and closes it when the test ends.
func mustCreate(t *testing.T, name string, size int64, opts ...Option) *Segment {
	t.Helper()
	s, err := Create(name, size, opts...)
	if err != nil {
		t.Fatalf("Create(%q, %d): %v", name, size, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustOpen(t *testing.T, name string) *Segment {
	t.Helper()
	s, err := Open(name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustAnonymous(t *testing.T, size int64, opts ...Option) *Segment {
	t.Helper()
	s, err := CreateAnonymous(size, opts...)
	if err != nil {
		t.Fatalf("CreateAnonymous(%d): %v", size, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustAlloc(t *testing.T, s *Segment, name string, size int) (Object, []byte) {
	t.Helper()
	o, mem, err := s.Alloc(name, KindUser, 0, size, nil)
	if err != nil {
		t.Fatalf("Alloc(%q, %d): %v", name, size, err)
	}
	return o, mem
}

func TestCreateOpenCloseUnlink(t *testing.T) {
	dir := tempDir(t)
	before := time.Now()
	s, err := Create("basic", 10000)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FilePrefix+"basic")
	if got := Path("basic"); got != path {
		t.Errorf("Path = %q, want %q", got, path)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("segment file: %v", err)
	}
	info := s.Info()
	want := Info{
		Name: "basic", Path: path, Kind: KindGeneric, Version: Version,
		CreatorPid: os.Getpid(), CreatorUID: os.Geteuid(), Objects: 64, Slots: 128,
	}
	got := info
	got.Size, got.DataSize, got.Created = 0, 0, time.Time{}
	if got != want {
		t.Errorf("Info = %+v, want %+v", got, want)
	}
	if info.DataSize < 10000 || info.DataSize%HeaderSize != 0 || (info.Size-info.DataSize)%HeaderSize != 0 {
		t.Errorf("Size %d, DataSize %d: want page-aligned data of at least 10000 bytes", info.Size, info.DataSize)
	}
	if info.Created.Before(before.Add(-time.Second)) || info.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("Created = %v, want about %v", info.Created, before)
	}
	if s.Name() != "basic" {
		t.Errorf("Name = %q", s.Name())
	}

	s2, err := Open("basic")
	if err != nil {
		t.Fatal(err)
	}
	if s2.Info() != info {
		t.Errorf("opened Info = %+v, created %+v", s2.Info(), info)
	}
	if s2.Self() == s.Self() || s2.Self() == 0 {
		t.Errorf("tokens %v and %v, want distinct and nonzero", s.Self(), s2.Self())
	}
	if err := s2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s2.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}

	if err := s.Unlink(); err != nil {
		t.Fatalf("Unlink: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file after Unlink: %v", err)
	}
	// The handle outlives its name.
	if _, _, err := s.Alloc("after-unlink", KindUser, 0, 8, nil); err != nil {
		t.Errorf("Alloc after Unlink: %v", err)
	}
	if err := s.Unlink(); !errors.Is(err, ErrNotExist) {
		t.Errorf("second Unlink = %v, want ErrNotExist", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := Open("basic"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Open after Unlink = %v, want ErrNotExist", err)
	}
}

func TestUnlinkByName(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "byname", 4096)
	if err := Unlink("byname"); err != nil {
		t.Fatal(err)
	}
	if err := Unlink("byname"); !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Unlink of missing = %v, want ErrNotExist", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

func TestCreateExist(t *testing.T) {
	tempDir(t)
	mustCreate(t, "taken", 4096)
	_, err := Create("taken", 4096)
	if !errors.Is(err, ErrExist) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create of existing = %v, want ErrExist (and fs.ErrExist)", err)
	}
	// The failed Create left no temporary file behind.
	ents, _ := os.ReadDir(Dir())
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries, want 1: %v", len(ents), ents)
	}
}

func TestCreateRace(t *testing.T) {
	tempDir(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	segs := make([]*Segment, n)
	for i := range n {
		wg.Go(func() { segs[i], errs[i] = Create("race", 4096) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			segs[i].Close()
		case !errors.Is(err, ErrExist):
			t.Errorf("Create: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d Creates succeeded, want 1", won)
	}
}

func TestOpenMissing(t *testing.T) {
	tempDir(t)
	_, err := Open("missing")
	if !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of missing = %v, want ErrNotExist (and fs.ErrNotExist)", err)
	}
}

func TestInvalidNames(t *testing.T) {
	tempDir(t)
	tests := []struct {
		name  string
		valid bool
	}{
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"a/b", false},
		{"/abs", false},
		{"a\x00b", false},
		{"sp ace", false},
		{"ünï", false},
		{strings.Repeat("x", MaxNameLen+1), false},
		{strings.Repeat("x", MaxNameLen), true},
		{"ok-name_1.x", true},
		{"trailing.", true},
	}
	for _, tt := range tests {
		if err := ValidName(tt.name); (err == nil) != tt.valid || (err != nil && !errors.Is(err, ErrInvalidName)) {
			t.Errorf("ValidName(%q) = %v, valid %v", tt.name, err, tt.valid)
		}
		s, err := Create(tt.name, 4096)
		if !tt.valid {
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("Create(%q) = %v, want ErrInvalidName", tt.name, err)
			}
			if _, err := Open(tt.name); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Open(%q) = %v, want ErrInvalidName", tt.name, err)
			}
			if _, err := OpenKind(tt.name, KindQueue); !errors.Is(err, ErrInvalidName) {
				t.Errorf("OpenKind(%q) = %v, want ErrInvalidName", tt.name, err)
			}
			if err := Unlink(tt.name); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Unlink(%q) = %v, want ErrInvalidName", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Create(%q): %v", tt.name, err)
			continue
		}
		if err := s.Unlink(); err != nil {
			t.Errorf("Unlink(%q): %v", tt.name, err)
		}
		s.Close()
	}
	// Nothing escaped the directory.
	if ents, _ := os.ReadDir(Dir()); len(ents) != 0 {
		t.Errorf("dir not empty: %v", ents)
	}
}

func TestCreateBadSize(t *testing.T) {
	tempDir(t)
	for _, size := range []int64{0, -1, MaxSize + 1} {
		if _, err := Create("size", size); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Create(size %d) = %v, want ErrTooLarge", size, err)
		}
		if _, err := CreateAnonymous(size); !errors.Is(err, ErrTooLarge) {
			t.Errorf("CreateAnonymous(%d) = %v, want ErrTooLarge", size, err)
		}
	}
}

func TestMode(t *testing.T) {
	tempDir(t)
	old := syscall.Umask(0o077) // WithMode must win over the umask
	defer syscall.Umask(old)
	for _, tt := range []struct {
		name string
		opts []Option
		want fs.FileMode
	}{
		{"default", nil, 0o600},
		{"group", []Option{WithMode(0o640)}, 0o640},
		{"typebits", []Option{WithMode(fs.ModeDir | 0o604)}, 0o604},
	} {
		mustCreate(t, tt.name, 4096, tt.opts...)
		fi, err := os.Lstat(Path(tt.name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != tt.want {
			t.Errorf("%s: mode %v, want regular %v", tt.name, fi.Mode(), tt.want)
		}
	}
}

func TestReserved(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "reserved", 1<<20)
	fi, err := os.Stat(Path("reserved"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Size() != s.Info().Size {
		t.Errorf("file size %d, Info.Size %d", fi.Size(), s.Info().Size)
	}
	if st.Blocks*512 < fi.Size() {
		t.Errorf("%d bytes reserved (%d blocks) for a %d-byte file", st.Blocks*512, st.Blocks, fi.Size())
	}
}

func TestAnonymous(t *testing.T) {
	tempDir(t)
	s := mustAnonymous(t, 8192)
	info := s.Info()
	if info.Name != "" || info.Path != "" || s.Name() != "" {
		t.Errorf("anonymous segment named %q at %q", info.Name, info.Path)
	}
	if err := s.Unlink(); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Unlink of anonymous = %v, want ErrInvalidName", err)
	}
	seals, err := sysx.Seals(s.f)
	if err != nil {
		t.Fatal(err)
	}
	if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW; seals&want != want {
		t.Errorf("seals %#x, want %#x set", seals, want)
	}
	if err := s.f.Truncate(4096); err == nil {
		t.Error("shrinking a sealed segment succeeded")
	}

	s2, err := OpenFile(s.f)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Info() != info {
		t.Errorf("OpenFile Info = %+v, want %+v", s2.Info(), info)
	}
	if s2.Self() == s.Self() {
		t.Errorf("both handles have token %v", s.Self())
	}
	if !s.Alive(s2.Self()) || !s2.Alive(s.Self()) {
		t.Error("handles do not see each other alive")
	}

	_, mem := mustAlloc(t, s, "shared", 16)
	_, mem2, err := s2.Lookup("shared", KindUser, AnyAux)
	if err != nil {
		t.Fatal(err)
	}
	copy(mem2, "from the second")
	if !bytes.HasPrefix(mem, []byte("from the second")) {
		t.Errorf("first handle sees %q", mem)
	}
	copy(mem, "from the first!!")
	if string(mem2) != "from the first!!" {
		t.Errorf("second handle sees %q", mem2)
	}
	// OpenFile leaves the caller's file open.
	if _, err := s.f.Stat(); err != nil {
		t.Errorf("File after OpenFile: %v", err)
	}
}

func TestObjects(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "objs", 1<<16)
	dataOff := s.Info().Size - s.Info().DataSize
	sizes := map[string]int{"a": 100, "b": 1, "c": 64, "d": 65}
	names := []string{"a", "b", "c", "d"}
	var objs []Object
	for i, name := range names {
		o, mem, err := s.Alloc(name, KindUser+Kind(i), uint32(i), sizes[name], nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(mem) != sizes[name] || cap(mem) != sizes[name] {
			t.Errorf("%s: len %d cap %d, want %d", name, len(mem), cap(mem), sizes[name])
		}
		if o.Offset%Align != 0 || o.Offset < dataOff || o.Offset+o.Size > s.Info().Size {
			t.Errorf("%s at [%d, +%d): misaligned or outside data [%d, %d)", name, o.Offset, o.Size, dataOff, s.Info().Size)
		}
		if len(objs) > 0 {
			if prev := objs[len(objs)-1]; o.Offset < prev.Offset+prev.Size {
				t.Errorf("%s at %d overlaps %s at [%d, +%d)", name, o.Offset, prev.Name, prev.Offset, prev.Size)
			}
		}
		for j := range mem {
			mem[j] = byte(i + 1)
		}
		objs = append(objs, o)
	}

	s2 := mustOpen(t, "objs")
	listed, err := s2.Objects()
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(objs) {
		t.Fatalf("Objects lists %d, want %d", len(listed), len(objs))
	}
	for i, o := range objs {
		if listed[i] != o {
			t.Errorf("Objects()[%d] = %+v, want %+v", i, listed[i], o)
		}
		got, mem, err := s2.Lookup(o.Name, o.Kind, o.Aux)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", o.Name, err)
		}
		if got != o || !bytes.Equal(mem, bytes.Repeat([]byte{byte(i + 1)}, int(o.Size))) {
			t.Errorf("Lookup(%q) = %+v %v, want %+v", o.Name, got, mem, o)
		}
		if _, _, err := s2.Lookup(o.Name, o.Kind, AnyAux); err != nil {
			t.Errorf("Lookup(%q, AnyAux): %v", o.Name, err)
		}
	}

	if _, _, err := s2.Alloc("a", KindUser, 0, 8, nil); !errors.Is(err, ErrObjectExist) {
		t.Errorf("Alloc of existing = %v, want ErrObjectExist", err)
	}
	if _, _, err := s2.Lookup("zzz", KindUser, AnyAux); !errors.Is(err, ErrNoObject) {
		t.Errorf("Lookup of missing = %v, want ErrNoObject", err)
	}
	for _, tt := range []struct {
		kind Kind
		aux  uint32
	}{{KindValue, 0}, {KindUser, 1}} {
		_, _, err := s2.Lookup("a", tt.kind, tt.aux)
		if !errors.Is(err, ErrKindMismatch) || !errors.Is(err, ErrIncompatible) {
			t.Errorf("Lookup(a, %v, %d) = %v, want ErrKindMismatch and ErrIncompatible", tt.kind, tt.aux, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("n", MaxObjectLen+1), "sp ace", "tab\t", "nul\x00"} {
		if _, _, err := s.Alloc(bad, KindUser, 0, 8, nil); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Alloc(%q) = %v, want ErrInvalidName", bad, err)
		}
		if _, _, err := s.Lookup(bad, KindUser, 0); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Lookup(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	long := strings.Repeat("L", MaxObjectLen)
	mustAlloc(t, s, long, 8)
	if _, _, err := s2.Lookup(long, KindUser, 0); err != nil {
		t.Errorf("Lookup of a %d-byte name: %v", MaxObjectLen, err)
	}
	for _, size := range []int{0, -1} {
		if _, _, err := s.Alloc("sz", KindUser, 0, size, nil); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Alloc of %d bytes = %v, want ErrTooLarge", size, err)
		}
	}
}

func TestAllocTableFull(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "table", 1<<16, WithObjects(2))
	mustAlloc(t, s, "one", 8)
	mustAlloc(t, s, "two", 8)
	if _, _, err := s.Alloc("three", KindUser, 0, 8, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("Alloc into a full table = %v, want ErrFull", err)
	}
	// A name already present is reported as such even in a full table.
	if _, _, err := s.Alloc("one", KindUser, 0, 8, nil); !errors.Is(err, ErrObjectExist) {
		t.Errorf("Alloc of existing into a full table = %v, want ErrObjectExist", err)
	}
}

func TestAllocDataFull(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "data", 4096)
	if got := s.Info().DataSize; got != 4096 {
		t.Fatalf("DataSize = %d, want 4096", got)
	}
	mustAlloc(t, s, "big", 4000) // takes [0, 4032)
	if _, _, err := s.Alloc("toobig", KindUser, 0, 65, nil); !errors.Is(err, ErrFull) {
		t.Errorf("Alloc past the end = %v, want ErrFull", err)
	}
	o, _ := mustAlloc(t, s, "last", 64) // exactly fills the data
	if o.Offset+o.Size != s.Info().Size {
		t.Errorf("last object ends at %d, segment at %d", o.Offset+o.Size, s.Info().Size)
	}
	if _, _, err := s.Alloc("more", KindUser, 0, 1, nil); !errors.Is(err, ErrFull) {
		t.Errorf("Alloc in a full segment = %v, want ErrFull", err)
	}
	if _, _, err := s.Alloc("huge", KindUser, 0, MaxSize, nil); !errors.Is(err, ErrFull) {
		t.Errorf("Alloc of MaxSize = %v, want ErrFull", err)
	}
}

func TestAllocInit(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "init", 4096)
	peer := mustOpen(t, "init")

	// init runs on zeroed memory before the object is visible to others.
	ran := false
	o, mem, err := s.Alloc("obj", KindUser, 0, 32, func(mem []byte) error {
		ran = true
		if len(mem) != 32 || !bytes.Equal(mem, make([]byte, 32)) {
			t.Errorf("init got %v, want 32 zero bytes", mem)
		}
		if _, _, err := peer.Lookup("obj", KindUser, AnyAux); !errors.Is(err, ErrNoObject) {
			t.Errorf("Lookup during init = %v, want ErrNoObject", err)
		}
		if objs, err := peer.Objects(); err != nil || len(objs) != 0 {
			t.Errorf("Objects during init = %v, %v; want none", objs, err)
		}
		copy(mem, "initialized")
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("Alloc: %v (init ran: %v)", err, ran)
	}
	_, pmem, err := peer.Lookup("obj", KindUser, AnyAux)
	if err != nil || !bytes.HasPrefix(pmem, []byte("initialized")) || !bytes.Equal(pmem, mem) {
		t.Fatalf("Lookup after init = %q, %v", pmem, err)
	}

	// A failing init publishes nothing, returns its error, and leaves the
	// space free and zeroed for the next Alloc.
	boom := errors.New("boom")
	var failedAt []byte
	_, _, err = s.Alloc("fails", KindUser, 0, 64, func(mem []byte) error {
		failedAt = mem
		for i := range mem {
			mem[i] = 0xff
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Alloc with failing init = %v, want %v", err, boom)
	}
	if _, _, err := peer.Lookup("fails", KindUser, AnyAux); !errors.Is(err, ErrNoObject) {
		t.Errorf("Lookup of failed object = %v, want ErrNoObject", err)
	}
	o2, mem2, err := s.Alloc("next", KindUser, 0, 64, func(mem []byte) error {
		if !bytes.Equal(mem, make([]byte, 64)) {
			t.Errorf("init after a failed init got %x, want zeros", mem)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if &mem2[0] != &failedAt[0] || o2.Offset != o.Offset+64 {
		t.Errorf("next object at %d, want the failed object's space at %d", o2.Offset, o.Offset+64)
	}
}

func TestAllocConcurrent(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "conc", 1<<16, WithObjects(64))
	handles := []*Segment{s, s, mustOpen(t, "conc"), mustOpen(t, "conc")}
	var wg sync.WaitGroup
	for h, seg := range handles {
		wg.Go(func() {
			for i := range 16 {
				name := string(rune('a'+h)) + string(rune('a'+i))
				if _, _, err := seg.Alloc(name, KindUser, 0, 100, func(mem []byte) error {
					copy(mem, name)
					return nil
				}); err != nil {
					t.Errorf("Alloc(%q): %v", name, err)
				}
			}
		})
	}
	wg.Wait()
	objs, err := s.Objects()
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 64 {
		t.Fatalf("%d objects, want 64", len(objs))
	}
	seen := map[int64]bool{}
	for _, o := range objs {
		if seen[o.Offset] {
			t.Errorf("two objects at %d", o.Offset)
		}
		seen[o.Offset] = true
		_, mem, err := s.Lookup(o.Name, KindUser, 0)
		if err != nil || !bytes.HasPrefix(mem, []byte(o.Name)) {
			t.Errorf("Lookup(%q) = %q, %v", o.Name, mem[:2], err)
		}
	}
}

func TestParticipants(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "parts", 4096, WithParticipants(4))
	s2, err := Open("parts")
	if err != nil {
		t.Fatal(err)
	}
	tok2 := s2.Self()
	if !s.Alive(tok2) || !s2.Alive(s.Self()) || !s.Alive(s.Self()) {
		t.Fatal("live handles not Alive")
	}
	if s.Alive(0) {
		t.Error("zero token Alive")
	}
	if s.Alive(makeToken(MaxSlots-1, 1)) {
		t.Error("token of a slot beyond the table Alive")
	}
	if s.Alive(makeToken(tok2.Slot(), tok2.gen()+1)) {
		t.Error("token of another generation Alive")
	}
	ps, err := s.Participants()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("Participants = %+v, want 2", ps)
	}
	start, _ := sysx.SelfStartTime()
	for _, p := range ps {
		wantSelf := p.Token == s.Self()
		if (p.Token != s.Self() && p.Token != tok2) || p.Self != wantSelf || !p.Alive ||
			p.Pid != os.Getpid() || p.StartTime != start || time.Since(p.Registered) > time.Minute {
			t.Errorf("participant %+v (self %v, peer %v)", p, s.Self(), tok2)
		}
	}
	if stale, err := s.Stale(); err != nil || stale {
		t.Errorf("Stale = %v, %v with a live peer", stale, err)
	}

	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Alive(tok2) {
		t.Error("closed handle still Alive")
	}
	ps, err = s.Participants()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Token == tok2 && (p.Alive || p.Pid != 0) {
			t.Errorf("closed participant %+v", p)
		}
	}
	if stale, err := s.Stale(); err != nil || !stale {
		t.Errorf("Stale = %v, %v after the peer closed", stale, err)
	}

	// The freed slot is reused under a new generation; the old token stays
	// dead.
	s3 := mustOpen(t, "parts")
	if s3.Self().Slot() != tok2.Slot() || s3.Self() == tok2 {
		t.Errorf("reopened token %v, closed %v: want same slot, new generation", s3.Self(), tok2)
	}
	if s.Alive(tok2) || !s.Alive(s3.Self()) {
		t.Error("slot reuse confused Alive")
	}
}

func TestTooManyParticipants(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "full", 4096, WithParticipants(2))
	mustOpen(t, "full")
	if _, err := Open("full"); !errors.Is(err, ErrTooManyParticipants) {
		t.Fatalf("third Open = %v, want ErrTooManyParticipants", err)
	}
	if _, err := OpenFile(s.f); !errors.Is(err, ErrTooManyParticipants) {
		t.Fatalf("OpenFile = %v, want ErrTooManyParticipants", err)
	}
}

func TestClosed(t *testing.T) {
	tempDir(t)
	s := mustCreate(t, "closed", 4096)
	peer := mustOpen(t, "closed")
	mustAlloc(t, s, "x", 8)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Alloc("y", KindUser, 0, 8, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc = %v, want ErrClosed", err)
	}
	if _, _, err := s.Lookup("x", KindUser, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Lookup = %v, want ErrClosed", err)
	}
	if _, err := s.Objects(); !errors.Is(err, ErrClosed) {
		t.Errorf("Objects = %v, want ErrClosed", err)
	}
	if _, err := s.Participants(); !errors.Is(err, ErrClosed) {
		t.Errorf("Participants = %v, want ErrClosed", err)
	}
	if _, err := s.Stale(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stale = %v, want ErrClosed", err)
	}
	// Alive on a closed handle must not touch the unmapped table; it errs
	// on the side of alive.
	if !s.Alive(peer.Self()) {
		t.Error("Alive on a closed handle said dead")
	}
}

// TestAliveDuringClose races Alive (as a lock waiter calls it) against Close.
func TestAliveDuringClose(t *testing.T) {
	tempDir(t)
	for range 20 {
		s, err := CreateAnonymous(4096)
		if err != nil {
			t.Fatal(err)
		}
		peer, err := OpenFile(s.f)
		if err != nil {
			t.Fatal(err)
		}
		tok := peer.Self()
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 100 {
				s.Alive(tok)
			}
		})
		s.Close()
		wg.Wait()
		peer.Close()
	}
}

// TestNoSpace fills a 1 MiB tmpfs: Create must fail with ErrNoSpace at
// once, not with SIGBUS later, and leave nothing behind.
func TestNoSpace(t *testing.T) {
	dir := tempDir(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	if err := unix.Mount("shmkit-test", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	_, err := Create("big", 4<<20)
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create on a full tmpfs = %v, want ErrNoSpace wrapping ENOSPC", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed Create left %v", ents)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Bfree != st.Blocks {
		t.Errorf("failed Create left %d of %d blocks used", st.Blocks-st.Bfree, st.Blocks)
	}
	// A segment that fits still works there.
	s := mustCreate(t, "small", 64<<10)
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := Unlink("small"); err != nil {
		t.Error(err)
	}
}
