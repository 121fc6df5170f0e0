//go:build linux

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
// 4 KiB of data, two objects allocated but left zero) and returns its file.
func seedImage(tb testing.TB) []byte {
	tb.Helper()
	s, err := shm.CreateAnonymous(4096, shm.WithObjects(4), shm.WithParticipants(4), shm.WithKind(shm.KindQueue))
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	for i, name := range []string{"counter", "ring"} {
		if _, _, err := s.Alloc(name, shm.KindValue+shm.Kind(i), uint32(8*(i+1)), 100*(i+1), nil); err != nil {
			tb.Fatal(err)
		}
	}
	image := make([]byte, s.Info().Size)
	f, err := s.File()
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(image, 0); err != nil {
		tb.Fatal(err)
	}
	return image
}

// split is the inverse of layout for an image of at least a header page:
// the header page and what follows it, each without trailing zeros, and how
// many zeros end the file.
func split(image []byte) (header, tables []byte, zeros uint32) {
	header = bytes.TrimRight(image[:shm.HeaderSize], "\x00")
	header = image[:max(len(header), offAllocTop+8)] // keep every header word
	tables = bytes.TrimRight(image[shm.HeaderSize:], "\x00")
	return header, tables, uint32(len(image) - shm.HeaderSize - len(tables))
}

// layout builds the file an input describes: header, padded with zeros to a
// full header page unless nothing follows it, then tables, then zeros zero
// bytes. A segment's meaningful bytes are its first ~150 and the tables
// after the header page; splitting them out keeps inputs a few hundred
// bytes, which the fuzzer mutates and minimizes far faster than a 12 KiB
// image, and every file stays reachable.
func layout(header, tables []byte, zeros uint32) (image []byte, size int64) {
	image = header
	if len(tables) > 0 || zeros > 0 {
		image = append(bytes.Clone(header), make([]byte, max(shm.HeaderSize-len(header), 0))...)
		image = append(image, tables...)
	}
	return image, int64(len(image)) + int64(zeros)
}

// TestResum pins the harness's header offsets and checksum to shm's, and
// checks that layout inverts split.
func TestResum(t *testing.T) {
	image := seedImage(t)
	sum := binary.LittleEndian.Uint64(image[offChecksum:])
	resum(image)
	if got := binary.LittleEndian.Uint64(image[offChecksum:]); got != sum {
		t.Fatalf("harness checksum %#x, shm's %#x: layout drifted", got, sum)
	}
	le := binary.LittleEndian
	if le.Uint32(image[offVersion:]) != shm.Version || le.Uint64(image[offSize:]) != uint64(len(image)) ||
		le.Uint32(image[offTableCap:]) != 4 || le.Uint32(image[offObjCount:]) != 2 ||
		le.Uint64(image[offAllocTop:]) != 8192+128+256 || le.Uint64(image[shm.HeaderSize+entOff:]) != 8192 {
		t.Fatal("harness offsets do not match shm/layout.go")
	}
	header, tables, zeros := split(image)
	got, size := layout(header, tables, zeros)
	if size != int64(len(image)) || !bytes.Equal(got, image[:len(got)]) || len(header)+len(tables) > 1024 {
		t.Fatalf("split/layout: %d+%d bytes and %d zeros do not rebuild %d", len(header), len(tables), zeros, len(image))
	}
}

func FuzzOpenSegment(f *testing.F) {
	image := seedImage(f)
	header, tables, zeros := split(image)
	le := binary.LittleEndian
	hdr := func(edit func(b []byte)) []byte {
		b := bytes.Clone(header)
		edit(b)
		return b
	}
	tab := func(edit func(b []byte)) []byte {
		b := bytes.Clone(tables)
		edit(b)
		return b
	}
	f.Add(header, tables, zeros, false)
	f.Add(header, tables, zeros-1, false)
	f.Add(header, tables, zeros+4096, false)
	f.Add(header, []byte(nil), uint32(0), false)
	f.Add(hdr(func(b []byte) { le.PutUint32(b[offVersion:], shm.Version+1) }), tables, zeros, true)
	f.Add(hdr(func(b []byte) { le.PutUint32(b[offTableCap:], 0) }), tables, zeros, true)
	f.Add(hdr(func(b []byte) { le.PutUint64(b[offSize:], 1<<40) }), tables, zeros, true)
	f.Add(hdr(func(b []byte) { b[offChecksum] ^= 1 }), tables, zeros, false)
	f.Add(hdr(func(b []byte) { le.PutUint32(b[offObjCount:], 5) }), tables, zeros, false)
	f.Add(hdr(func(b []byte) { le.PutUint64(b[offAllocTop:], ^uint64(0)-7) }), tables, zeros, false)
	f.Add(header, tab(func(b []byte) { le.PutUint64(b[entOff:], 1<<20) }), zeros, false)
	f.Add(header, tab(func(b []byte) { copy(b[shm.EntrySize:], "counter\x00") }), zeros, false)
	f.Add([]byte{}, []byte{}, uint32(0), false)
	f.Add([]byte(shm.Magic), []byte{}, uint32(shm.HeaderSize), true)
	f.Add(header[:100], []byte{}, uint32(1<<16), true)

	f.Fuzz(checkImage)
}

// checkImage writes the file that header, tables and zeros describe (see
// layout) to a memfd, fixing its checksum first if fix is set, and attaches
// to it. Attaching must fail with ErrCorrupt or ErrIncompatible, or succeed
// with every read consistent with the header.
func checkImage(t *testing.T, header, tables []byte, zeros uint32, fix bool) {
	image, size := layout(header, tables, zeros)
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
