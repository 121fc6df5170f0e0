package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/shm"
)

// Header fields the harness touches, from shm/layout.go (version 1). The
// fuzzer can flip any byte, but it cannot find an FNV checksum by chance:
// with resum set the harness recomputes it, so mutations of the checksummed
// fields reach the validation behind the checksum. TestResum pins these
// against the real layout.
const (
	offVersion  = 8
	offSize     = 16
	offTableCap = 24
	offChecksum = 56 // FNV-64a of [0, offChecksum), little-endian
	offObjCount = 128
	offAllocTop = 136
	entOff      = 48 // offset field of an object entry

	// maxFile bounds the file an input describes, so one exec stays cheap.
	maxFile = 1 << 20
)

func resum(image []byte) {
	if len(image) < offChecksum+8 {
		return
	}
	h := fnv.New64a()
	h.Write(image[:offChecksum])
	binary.LittleEndian.PutUint64(image[offChecksum:], h.Sum64())
}

// seedImage builds a small valid segment (4 objects, 4 participant slots,
// 4 KiB of data, two objects allocated) and returns its bytes with the
// trailing zeros cut off, and how many were cut.
func seedImage(tb testing.TB) ([]byte, uint32) {
	tb.Helper()
	s, err := shm.CreateAnonymous(4096, shm.WithObjects(4), shm.WithParticipants(4), shm.WithKind(shm.KindQueue))
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	for i, name := range []string{"counter", "ring"} {
		if _, _, err := s.Alloc(name, shm.KindValue+shm.Kind(i), uint32(8*(i+1)), 100*(i+1), func(mem []byte) error {
			copy(mem, name)
			return nil
		}); err != nil {
			tb.Fatal(err)
		}
	}
	image := make([]byte, s.Info().Size)
	if _, err := s.File().ReadAt(image, 0); err != nil {
		tb.Fatal(err)
	}
	trimmed := bytes.TrimRight(image, "\x00")
	return trimmed, uint32(len(image) - len(trimmed))
}

// TestResum pins the harness's header offsets and checksum to shm's.
func TestResum(t *testing.T) {
	image, zeros := seedImage(t)
	sum := binary.LittleEndian.Uint64(image[offChecksum:])
	resum(image)
	if got := binary.LittleEndian.Uint64(image[offChecksum:]); got != sum {
		t.Fatalf("harness checksum %#x, shm's %#x: layout drifted", got, sum)
	}
	le := binary.LittleEndian
	size := uint64(len(image)) + uint64(zeros)
	if le.Uint32(image[offVersion:]) != shm.Version || le.Uint64(image[offSize:]) != size ||
		le.Uint32(image[offTableCap:]) != 4 || le.Uint32(image[offObjCount:]) != 2 ||
		le.Uint64(image[offAllocTop:]) != 8192+128+256 || le.Uint64(image[shm.HeaderSize+entOff:]) != 8192 {
		t.Fatal("harness offsets do not match shm/layout.go")
	}
}

func FuzzOpenSegment(f *testing.F) {
	image, zeros := seedImage(f)
	le := binary.LittleEndian
	mutate := func(edit func(b []byte)) []byte {
		b := bytes.Clone(image)
		edit(b)
		return b
	}
	f.Add(image, zeros, false)
	f.Add(image, zeros-1, false)
	f.Add(image, zeros+4096, false)
	f.Add(image[:shm.HeaderSize], uint32(0), false)
	f.Add(mutate(func(b []byte) { le.PutUint32(b[offVersion:], shm.Version+1) }), zeros, true)
	f.Add(mutate(func(b []byte) { le.PutUint32(b[offTableCap:], 0) }), zeros, true)
	f.Add(mutate(func(b []byte) { le.PutUint64(b[offSize:], 1<<40) }), zeros, true)
	f.Add(mutate(func(b []byte) { b[offChecksum] ^= 1 }), zeros, false)
	f.Add(mutate(func(b []byte) { le.PutUint32(b[offObjCount:], 5) }), zeros, false)
	f.Add(mutate(func(b []byte) { le.PutUint64(b[offAllocTop:], ^uint64(0)-7) }), zeros, false)
	f.Add(mutate(func(b []byte) { le.PutUint64(b[shm.HeaderSize+entOff:], 1<<20) }), zeros, false)
	f.Add(mutate(func(b []byte) { copy(b[shm.HeaderSize+shm.EntrySize:], "counter\x00") }), zeros, false)
	f.Add([]byte{}, uint32(0), false)
	f.Add([]byte(shm.Magic), uint32(shm.HeaderSize), true)
	f.Add(image[:100], uint32(1<<16), true)

	f.Fuzz(checkImage)
}

// checkImage writes image, followed by zeros zero bytes, to a memfd and
// attaches to it. Attaching must fail with ErrCorrupt or ErrIncompatible,
// or succeed with every read consistent with the header.
func checkImage(t *testing.T, image []byte, zeros uint32, fix bool) {
	size := int64(len(image)) + int64(zeros)
	if size > maxFile {
		return
	}
	if fix {
		image = bytes.Clone(image)
		resum(image)
	}
	fd, err := unix.MemfdCreate("fuzz", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "fuzz")
	defer f.Close()
	if _, err := f.WriteAt(image, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}

	s, err := shm.OpenFile(f)
	if err != nil {
		if !errors.Is(err, shm.ErrCorrupt) && !errors.Is(err, shm.ErrIncompatible) {
			t.Fatalf("OpenFile: %v, want ErrCorrupt or ErrIncompatible", err)
		}
		return
	}
	info := s.Info()
	dataOff := info.Size - info.DataSize
	switch {
	case info.Size != size, info.Version != shm.Version,
		info.Objects < 1 || info.Objects > shm.MaxObjects, info.Slots < 1 || info.Slots > shm.MaxSlots,
		info.DataSize < 0, dataOff%shm.HeaderSize != 0,
		dataOff < shm.HeaderSize+int64(shm.EntrySize*info.Objects+shm.SlotSize*info.Slots):
		t.Fatalf("Info of a %d-byte file = %+v", size, info)
	}
	checkObject := func(o shm.Object) {
		t.Helper()
		if o.Offset%shm.Align != 0 || o.Offset < dataOff || o.Size <= 0 || o.Size > info.Size-o.Offset ||
			o.Name == "" || len(o.Name) > shm.MaxObjectLen {
			t.Fatalf("object %+v outside data [%d, %d)", o, dataOff, info.Size)
		}
	}

	objs, err := s.Objects()
	if err != nil && !errors.Is(err, shm.ErrCorrupt) {
		t.Fatalf("Objects: %v", err)
	}
	seen := map[string]bool{}
	for _, o := range objs {
		checkObject(o)
		if seen[o.Name] {
			continue // Lookup finds the first of duplicates
		}
		seen[o.Name] = true
		got, mem, err := s.Lookup(o.Name, o.Kind, shm.AnyAux)
		if err != nil || got != o || int64(len(mem)) != o.Size {
			t.Fatalf("Lookup(%q) = %+v (%d bytes), %v; listed %+v", o.Name, got, len(mem), err, o)
		}
	}

	ps, err := s.Participants()
	if err != nil {
		t.Fatalf("Participants: %v", err)
	}
	selves := 0
	for _, p := range ps {
		if p.Slot < 0 || p.Slot >= info.Slots || p.Token.Slot() != p.Slot {
			t.Fatalf("participant %+v outside %d slots", p, info.Slots)
		}
		if p.Self {
			selves++
			if p.Token != s.Self() || !p.Alive {
				t.Fatalf("own participant %+v, token %v", p, s.Self())
			}
		} else if p.Alive || s.Alive(p.Token) {
			// Nothing else has this memfd open.
			t.Fatalf("participant %+v alive", p)
		}
	}
	if selves != 1 {
		t.Fatalf("%d own participants in %+v", selves, ps)
	}
	if stale, err := s.Stale(); err != nil || !stale {
		t.Fatalf("Stale = %v, %v", stale, err)
	}

	const name = "fuzz.obj"
	o, mem, err := s.Alloc(name, shm.KindUser, 7, 100, func(mem []byte) error {
		copy(mem, name)
		return nil
	})
	switch {
	case err == nil:
		checkObject(o)
		if len(mem) != 100 || o.Size != 100 {
			t.Fatalf("Alloc = %+v with %d bytes", o, len(mem))
		}
		objs, err := s.Objects()
		if err != nil || len(objs) == 0 || objs[len(objs)-1] != o {
			t.Fatalf("Objects after Alloc = %+v, %v; want %+v last", objs, err, o)
		}
		// Alloc checked every entry and found no other object by this
		// name, so Lookup finds this one.
		if got, gmem, err := s.Lookup(name, shm.KindUser, 7); err != nil || got != o || !bytes.HasPrefix(gmem, []byte(name)) {
			t.Fatalf("Lookup after Alloc = %+v %q, %v; allocated %+v", got, gmem, err, o)
		}
	case errors.Is(err, shm.ErrFull), errors.Is(err, shm.ErrCorrupt), errors.Is(err, shm.ErrObjectExist):
	default:
		t.Fatalf("Alloc: %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, shm.ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}
