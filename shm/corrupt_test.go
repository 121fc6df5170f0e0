//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// resum recomputes the header checksum of a segment image, so that an edit
// of a checksummed field is seen for what it is and not as a bad checksum.
func resum(b []byte) { binary.LittleEndian.PutUint64(b[offChecksum:], checksum(b)) }

func put32(off int, v uint32) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
}

func put64(off int, v uint64) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off:], v); return b }
}

// resummed applies edit and then fixes the checksum.
func resummed(edit func([]byte) []byte) func([]byte) []byte {
	return func(b []byte) []byte { b = edit(b); resum(b); return b }
}

// entryField is the offset of field in object entry i of a segment built by
// corruptSegment (object table right after the header).
func entryField(i, field int) int { return HeaderSize + EntrySize*i + field }

// corruptSegment creates the named segment with two objects, closes it, and
// rewrites its file through edit.
func corruptSegment(t *testing.T, name string, edit func([]byte) []byte) {
	t.Helper()
	s, err := Create(name, 4096, WithObjects(4), WithParticipants(4), WithKind(KindQueue))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"first", "second"} {
		if _, _, err := s.Alloc(o, KindValue, 1, 8, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return
	}
	b, err := os.ReadFile(Path(name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Path(name), edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// openNoHang runs open and fails the test if it does not return promptly:
// no file at a segment's name may make Open block.
func openNoHang(t *testing.T, open func() (*Segment, error)) (*Segment, error) {
	t.Helper()
	type result struct {
		s   *Segment
		err error
	}
	ch := make(chan result, 1)
	go func() { s, err := open(); ch <- result{s, err} }()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("Open blocked")
		return nil, nil
	}
}

// TestCorrupt has one row per way a segment file can be bad. Rows with
// check "open" expect Open to fail; rows with check "tables" expect Open to
// succeed (the object table is mutable and not checksummed) and Lookup,
// Objects and Alloc to fail instead; "alloc" expects only Alloc to fail.
func TestCorrupt(t *testing.T) {
	tests := []struct {
		name  string
		edit  func([]byte) []byte                 // rewrites the file of a valid segment
		setup func(t *testing.T, path string)     // or puts something else at its path
		open  func(name string) (*Segment, error) // default Open
		check string                              // "open" (default), "tables" or "alloc"
		want  error                               // sentinel the error must match
		not   error                               // and must not
	}{
		{name: "bad magic", edit: func(b []byte) []byte { b[offMagic+1] ^= 0xff; return b }, want: ErrCorrupt},
		{name: "bad magic resummed", edit: resummed(func(b []byte) []byte { b[offMagic] = 0; return b }), want: ErrCorrupt},
		{name: "wrong version", edit: resummed(put32(offVersion, Version+1)), want: ErrIncompatible, not: ErrCorrupt},
		{name: "version zero", edit: resummed(put32(offVersion, 0)), want: ErrIncompatible, not: ErrCorrupt},
		{name: "version without checksum", edit: put32(offVersion, Version+1), want: ErrCorrupt, not: ErrIncompatible},
		{name: "bad checksum", edit: func(b []byte) []byte { b[offChecksum] ^= 1; return b }, want: ErrCorrupt},
		{name: "creator changed", edit: func(b []byte) []byte { b[offCreatorPid] ^= 1; return b }, want: ErrCorrupt},
		{name: "size field small", edit: resummed(put64(offSize, 8192)), want: ErrCorrupt},
		{name: "size field large", edit: resummed(put64(offSize, 1<<20)), want: ErrCorrupt},
		{name: "size field huge", edit: resummed(put64(offSize, ^uint64(0))), want: ErrCorrupt},
		{name: "object table empty", edit: resummed(put32(offTableCap, 0)), want: ErrCorrupt},
		{name: "object table too big", edit: resummed(put32(offTableCap, MaxObjects+1)), want: ErrCorrupt},
		{name: "object table beyond file", edit: resummed(put32(offTableCap, MaxObjects)), want: ErrCorrupt},
		{name: "participant table empty", edit: resummed(put32(offPartCap, 0)), want: ErrCorrupt},
		{name: "participant table too big", edit: resummed(put32(offPartCap, ^uint32(0))), want: ErrCorrupt},
		{name: "empty file", edit: func(b []byte) []byte { return nil }, want: ErrCorrupt},
		{name: "shorter than header", edit: func(b []byte) []byte { return b[:100] }, want: ErrCorrupt},
		{name: "one byte short of header", edit: func(b []byte) []byte { return b[:HeaderSize-1] }, want: ErrCorrupt},
		{name: "truncated below size", edit: func(b []byte) []byte { return b[:len(b)-HeaderSize] }, want: ErrCorrupt},
		{name: "header only", edit: func(b []byte) []byte { return b[:HeaderSize] }, want: ErrCorrupt},
		{name: "extended past size", edit: func(b []byte) []byte { return append(b, make([]byte, HeaderSize)...) }, want: ErrCorrupt},
		{name: "wrong kind", open: func(n string) (*Segment, error) { return OpenKind(n, KindRing) }, want: ErrIncompatible, not: ErrCorrupt},
		{
			name: "symlink",
			setup: func(t *testing.T, path string) {
				corruptSegment(t, "target", nil)
				if err := os.Symlink(Path("target"), path); err != nil {
					t.Fatal(err)
				}
			},
			want: ErrSymlink,
		},
		{name: "slash in name", open: func(string) (*Segment, error) { return Open("target/x") }, want: ErrInvalidName},
		{name: "dotdot in name", open: func(string) (*Segment, error) { return Open("..") }, want: ErrInvalidName},
		{
			name:  "dangling symlink",
			setup: func(t *testing.T, path string) { must(t, os.Symlink(Path("nowhere"), path)) },
			want:  ErrSymlink,
		},
		{
			name:  "directory",
			setup: func(t *testing.T, path string) { must(t, os.Mkdir(path, 0o700)) },
			want:  ErrPermission,
		},
		{
			name: "socket",
			setup: func(t *testing.T, path string) {
				l, err := net.Listen("unix", path)
				must(t, err)
				t.Cleanup(func() { l.Close() })
			},
			want: ErrPermission,
		},
		{
			name:  "fifo",
			setup: func(t *testing.T, path string) { must(t, syscall.Mkfifo(path, 0o600)) },
			want:  ErrPermission,
		},
		{
			name: "other owner",
			setup: func(t *testing.T, path string) {
				corruptSegment(t, "owned", nil)
				must(t, os.Rename(Path("owned"), path))
				if os.Geteuid() != 0 {
					t.Skip("chown needs root")
				}
				must(t, os.Chown(path, 12345, 12345))
			},
			want: ErrPermission,
		},
		{name: "object count beyond table", edit: put32(offObjCount, 5), check: "tables", want: ErrCorrupt},
		{name: "object count huge", edit: put32(offObjCount, ^uint32(0)), check: "tables", want: ErrCorrupt},
		{name: "object offset past end", edit: func(b []byte) []byte { return put64(entryField(0, entOff), uint64(len(b)))(b) }, check: "tables", want: ErrCorrupt},
		{name: "object offset in tables", edit: put64(entryField(0, entOff), HeaderSize), check: "tables", want: ErrCorrupt},
		{name: "object offset in header", edit: put64(entryField(0, entOff), 0), check: "tables", want: ErrCorrupt},
		{name: "object offset misaligned", edit: func(b []byte) []byte {
			off := binary.LittleEndian.Uint64(b[entryField(0, entOff):])
			return put64(entryField(0, entOff), off+8)(b)
		}, check: "tables", want: ErrCorrupt},
		{name: "object offset huge", edit: put64(entryField(0, entOff), ^uint64(0)&^(Align-1)), check: "tables", want: ErrCorrupt},
		{name: "object size zero", edit: put64(entryField(0, entSize), 0), check: "tables", want: ErrCorrupt},
		{name: "object size past end", edit: put64(entryField(0, entSize), 4097), check: "tables", want: ErrCorrupt},
		{name: "object size wraps", edit: put64(entryField(0, entSize), ^uint64(0)), check: "tables", want: ErrCorrupt},
		{name: "object name empty", edit: func(b []byte) []byte { b[entryField(0, entName)] = 0; return b }, check: "tables", want: ErrCorrupt},
		{name: "object name control byte", edit: func(b []byte) []byte { b[entryField(0, entName)+1] = 0x01; return b }, check: "tables", want: ErrCorrupt},
		{name: "alloc top huge", edit: put64(offAllocTop, ^uint64(0)-7), check: "alloc", want: ErrCorrupt},
		{name: "alloc top in tables", edit: put64(offAllocTop, HeaderSize), check: "alloc", want: ErrCorrupt},
		{name: "alloc top past end", edit: func(b []byte) []byte { return put64(offAllocTop, uint64(len(b))+64)(b) }, check: "alloc", want: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tempDir(t)
			const name = "seg"
			if tt.setup != nil {
				tt.setup(t, Path(name))
			} else {
				corruptSegment(t, name, tt.edit)
			}
			open := tt.open
			if open == nil {
				open = Open
			}
			s, err := openNoHang(t, func() (*Segment, error) { return open(name) })
			if tt.check == "" || tt.check == "open" {
				if err == nil {
					s.Close()
					t.Fatalf("Open succeeded, want %v", tt.want)
				}
				checkErr(t, "Open", err, tt.want, tt.not)
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if tt.check == "tables" {
				_, _, err = s.Lookup("second", KindValue, 1)
				checkErr(t, "Lookup", err, tt.want, tt.not)
				_, err = s.Objects()
				checkErr(t, "Objects", err, tt.want, tt.not)
			}
			_, _, err = s.Alloc("third", KindValue, 1, 8, func([]byte) error {
				t.Error("Alloc ran init in a corrupt segment")
				return nil
			})
			checkErr(t, "Alloc", err, tt.want, tt.not)
		})
	}
}

func checkErr(t *testing.T, op string, err, want, not error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want an error", op)
		return
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("%s = %v, want %v", op, err, want)
	}
	if not != nil && errors.Is(err, not) {
		t.Errorf("%s = %v, must not match %v", op, err, not)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCorruptControl checks that corruptSegment's image opens when left
// alone, and that resum reproduces the stored checksum, so every row above
// fails for its own edit only.
func TestCorruptControl(t *testing.T) {
	tempDir(t)
	corruptSegment(t, "ok", func(b []byte) []byte {
		sum := binary.LittleEndian.Uint64(b[offChecksum:])
		resum(b)
		if got := binary.LittleEndian.Uint64(b[offChecksum:]); got != sum {
			t.Errorf("resum = %#x, stored %#x", got, sum)
		}
		return b
	})
	s, err := OpenKind("ok", KindQueue)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	objs, err := s.Objects()
	if err != nil || len(objs) != 2 {
		t.Fatalf("Objects = %v, %v", objs, err)
	}
	if _, _, err := s.Lookup("second", KindValue, 1); err != nil {
		t.Error(err)
	}
	if _, _, err := s.Alloc("third", KindValue, 1, 8, nil); err != nil {
		t.Error(err)
	}
}

// TestHeaderSizeBounds: the largest segment Create can make (MaxSize of
// data behind the largest tables) validates, one page more does not.
func TestHeaderSizeBounds(t *testing.T) {
	h := header{version: Version, kind: KindGeneric, tableCap: MaxObjects, partCap: MaxSlots}
	c, total, err := newConfig(MaxSize, []Option{WithObjects(MaxObjects), WithParticipants(MaxSlots)})
	if err != nil || c.objs != MaxObjects || c.slots != MaxSlots {
		t.Fatalf("newConfig: %+v, %v", c, err)
	}
	if want := int64(h.dataOff() + MaxSize); total != want {
		t.Fatalf("largest segment is %d bytes, want %d", total, want)
	}
	for _, tt := range []struct {
		size uint64
		want error
	}{
		{uint64(total), nil},
		{uint64(total) + HeaderSize, ErrCorrupt},
		{h.dataOff(), nil}, // tables only, no data
		{h.dataOff() - 1, ErrCorrupt},
	} {
		h.size = tt.size
		var page [HeaderSize]byte
		encodeHeader(page[:], &h)
		_, err := decodeHeader(page[:], int64(tt.size))
		if (tt.want == nil) != (err == nil) || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("decodeHeader(size %d) = %v, want %v", tt.size, err, tt.want)
		}
	}
}
