package shm

import (
	"encoding/binary"
	"time"

	"github.com/shmkit/shmkit/internal/sysx"
)

// Object describes one named object in a segment's object table.
type Object struct {
	Name   string
	Kind   Kind
	Aux    uint32 // kind-specific: element type of a Value, parties of a Barrier, …
	Offset int64  // from the start of the segment, a multiple of Align
	Size   int64
}

// Alloc reserves size bytes for a new object called name, runs init on its
// (zeroed) memory, and only then publishes it in the object table, so a
// process that finds the object by Lookup always sees it initialized. It
// returns the object's memory, which stays valid until Close.
//
// init must not call methods of s (it runs under s's allocation lock).
//
// Alloc takes the segment's allocation lock, an OFD lock that the kernel
// releases if its holder dies, so a crash mid-Alloc cannot wedge the table.
func (s *Segment) Alloc(name string, kind Kind, aux uint32, size int, init func(mem []byte) error) (Object, []byte, error) {
	if err := validObjectName(name); err != nil {
		return Object{}, nil, err
	}
	if size <= 0 || int64(size) > MaxSize {
		return Object{}, nil, errorf(ErrTooLarge, "object %q of %d bytes", name, size)
	}
	if err := s.use(); err != nil {
		return Object{}, nil, err
	}
	defer s.done()
	s.allocMu.Lock()
	defer s.allocMu.Unlock()
	if err := s.lockAlloc(); err != nil {
		return Object{}, nil, err
	}
	defer sysx.UnlockByte(s.f, lockBase)

	n, err := s.count()
	if err != nil {
		return Object{}, nil, err
	}
	for i := 0; i < n; i++ {
		o, err := s.entry(i)
		if err != nil {
			return Object{}, nil, err
		}
		if o.Name == name {
			return Object{}, nil, errorf(ErrObjectExist, "%q", name)
		}
	}
	if n >= int(s.hdr.tableCap) {
		return Object{}, nil, errorf(ErrFull, "object table holds %d entries", n)
	}
	top := s.u64(offAllocTop).Load()
	// Bound top before aligning it: a peer-written top near 2^64 would
	// otherwise wrap to offset 0 and place the object over the header.
	if top < s.hdr.dataOff() || top > s.hdr.size {
		return Object{}, nil, errorf(ErrCorrupt, "allocation top %d outside data [%d, %d]", top, s.hdr.dataOff(), s.hdr.size)
	}
	off := alignUp(top, Align)
	end := off + alignUp(uint64(size), Align)
	if end > s.hdr.size {
		return Object{}, nil, errorf(ErrFull, "object %q needs %d bytes, %d left", name, size, s.hdr.size-min(off, s.hdr.size))
	}
	mem := s.mem[off : off+uint64(size) : off+uint64(size)]
	// A process that died inside an earlier init may have written here
	// without publishing: objects start from zero whatever happened.
	clear(mem)
	if init != nil {
		if err := init(mem); err != nil {
			// Nothing was published and the space stays free: give it back
			// zeroed, as the next Alloc's init expects it.
			clear(mem)
			return Object{}, nil, err
		}
	}
	e := s.mem[s.hdr.tableOff()+EntrySize*uint64(n):][:EntrySize]
	clear(e)
	copy(e[entName:entName+MaxObjectLen], name)
	le := binary.LittleEndian
	le.PutUint32(e[entKind:], uint32(kind))
	le.PutUint32(e[entAux:], aux)
	le.PutUint64(e[entOff:], off)
	le.PutUint64(e[entSize:], uint64(size))
	s.u64(offAllocTop).Store(end)
	// Publish: the entry and the object's initialized memory are written
	// before this store; a reader's Load of the count that sees n+1
	// synchronizes after them (sync/atomic: sequentially consistent).
	s.u32(offObjCount).Store(uint32(n + 1))
	return Object{Name: name, Kind: kind, Aux: aux, Offset: int64(off), Size: int64(size)}, mem, nil
}

// lockAlloc takes the allocation lock, waiting up to AllocTimeout.
func (s *Segment) lockAlloc() error {
	deadline := time.Now().Add(AllocTimeout)
	for d := 50 * time.Microsecond; ; d = min(2*d, 10*time.Millisecond) {
		ok, err := sysx.LockByte(s.f, lockBase)
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return ErrBusy
		}
		time.Sleep(d)
	}
}

// Lookup finds the object called name and checks its kind (and, when aux is
// not ^0, its aux word). It returns ErrNoObject or ErrKindMismatch.
func (s *Segment) Lookup(name string, kind Kind, aux uint32) (Object, []byte, error) {
	if err := validObjectName(name); err != nil {
		return Object{}, nil, err
	}
	if err := s.use(); err != nil {
		return Object{}, nil, err
	}
	defer s.done()
	n, err := s.count()
	if err != nil {
		return Object{}, nil, err
	}
	for i := 0; i < n; i++ {
		o, err := s.entry(i)
		if err != nil {
			return Object{}, nil, err
		}
		if o.Name != name {
			continue
		}
		if o.Kind != kind || (aux != AnyAux && o.Aux != aux) {
			return Object{}, nil, errorf(ErrKindMismatch, "%q is %v/%d, want %v/%d", name, o.Kind, o.Aux, kind, aux)
		}
		mem := s.mem[o.Offset : o.Offset+o.Size : o.Offset+o.Size]
		return o, mem, nil
	}
	return Object{}, nil, errorf(ErrNoObject, "%q", name)
}

// AnyAux makes Lookup accept any aux word.
const AnyAux = ^uint32(0)

// Objects lists the object table.
func (s *Segment) Objects() ([]Object, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.done()
	n, err := s.count()
	if err != nil {
		return nil, err
	}
	out := make([]Object, 0, n)
	for i := 0; i < n; i++ {
		o, err := s.entry(i)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// count reads the published entry count once and bounds it.
func (s *Segment) count() (int, error) {
	n := s.u32(offObjCount).Load()
	if n > s.hdr.tableCap {
		return 0, errorf(ErrCorrupt, "object count %d exceeds table of %d", n, s.hdr.tableCap)
	}
	return int(n), nil
}

// entry decodes table entry i from a copy, so a peer rewriting it cannot
// change it between the checks and the use.
func (s *Segment) entry(i int) (Object, error) {
	var e [EntrySize]byte
	copy(e[:], s.mem[s.hdr.tableOff()+EntrySize*uint64(i):])
	le := binary.LittleEndian
	nameLen := 0
	for nameLen < MaxObjectLen && e[nameLen] != 0 {
		nameLen++
	}
	o := Object{
		Name: string(e[:nameLen]),
		Kind: Kind(le.Uint32(e[entKind:])),
		Aux:  le.Uint32(e[entAux:]),
	}
	off, size := le.Uint64(e[entOff:]), le.Uint64(e[entSize:])
	if off%Align != 0 || off < s.hdr.dataOff() || off > s.hdr.size || size == 0 || size > s.hdr.size-off {
		return Object{}, errorf(ErrCorrupt, "object %d (%q) at [%d, +%d) outside data [%d, %d)", i, o.Name, off, size, s.hdr.dataOff(), s.hdr.size)
	}
	if validObjectName(o.Name) != nil {
		return Object{}, errorf(ErrCorrupt, "object %d has invalid name %q", i, o.Name)
	}
	o.Offset, o.Size = int64(off), int64(size)
	return o, nil
}

func validObjectName(name string) error {
	if name == "" || len(name) > MaxObjectLen {
		return errorf(ErrInvalidName, "object name %q (1..%d bytes)", name, MaxObjectLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e {
			return errorf(ErrInvalidName, "object name %q: byte %#x", name, c)
		}
	}
	return nil
}
