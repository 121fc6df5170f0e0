package shm

import (
	"encoding/binary"
	"hash/fnv"
	"time"
	"unsafe"
)

// Layout of a segment, version 2. Every field is little-endian and at a
// fixed offset, the same on every architecture. The version covers the
// objects' layouts too: version 2 gave every blocking object an event
// count (internal/futex) in place of its waiter counts, and moved a
// queue's closed flag into its tail word.
//
//	[0, 4096)            header: fixed fields + checksum, then mutable words
//	[4096, +64*tableCap) object table: 64-byte entries, published by count
//	[.., +64*partCap)    participant table: 64-byte slots
//	[dataOff, size)      objects, 64-byte aligned (dataOff is page-aligned)
//
// Byte lockBase+0 of the file is the allocation lock, lockBase-1 the gc
// lock (attach holds it shared while it registers, gc exclusive while it
// decides to unlink), and lockBase+1+i the liveness lock of participant
// slot i (OFD locks; they lie far beyond the
// file's end, which POSIX locks allow, so they never cover data).
const (
	Magic        = "\x7fSHMKIT\x00"
	Version      = 2
	HeaderSize   = 4096
	EntrySize    = 64
	SlotSize     = 64
	Align        = 64
	MaxSize      = 1 << 39
	MaxObjects   = 4096
	MaxSlots     = 1023 // slot+1 must fit tokenSlotBits
	MaxNameLen   = 200
	MaxObjectLen = 40

	lockBase = 1 << 40
	lockGC   = lockBase - 1

	// Header field offsets.
	offMagic        = 0
	offVersion      = 8
	offKind         = 12
	offSize         = 16
	offTableCap     = 24
	offPartCap      = 28
	offCreatorPid   = 32
	offCreatorUid   = 36
	offCreated      = 40
	offCreatorStart = 48
	offChecksum     = 56
	fixedLen        = offChecksum // the checksum covers [0, fixedLen)

	// Mutable header words, on their own cache line.
	offObjCount = 128 // atomic uint32: published object entries
	offAllocTop = 136 // uint64: next free byte; written under the alloc lock

	// Object entry fields.
	entName = 0 // [40]byte, NUL-padded
	entKind = 40
	entAux  = 44
	entOff  = 48
	entSize = 56

	// Participant slot fields.
	slotGen   = 0  // atomic uint32: bumped by each registrant
	slotPid   = 4  // atomic uint32: 0 once the owner unregistered
	slotStart = 8  // atomic uint64: owner's start time, clock ticks
	slotSince = 16 // atomic int64: registration time, unix ns
)

// Kind tells what a segment or an object is.
type Kind uint32

// Segment and object kinds known to shmkit. Kinds from KindUser up are free
// for applications.
const (
	KindGeneric Kind = 1 + iota
	KindQueue
	KindValue
	KindArray
	KindMutex
	KindRMutex
	KindSemaphore
	KindEvent
	KindCond
	KindBarrier
	KindRing
	KindUser Kind = 1 << 16
)

var kindNames = map[Kind]string{
	KindGeneric: "generic", KindQueue: "queue", KindValue: "value", KindArray: "array",
	KindMutex: "mutex", KindRMutex: "rmutex", KindSemaphore: "semaphore", KindEvent: "event",
	KindCond: "cond", KindBarrier: "barrier", KindRing: "ring",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	if k >= KindUser {
		return "user"
	}
	return "unknown"
}

// header is a validated local copy of a segment's fixed fields. The copy
// is taken once at open; a peer rewriting the header later cannot change the
// bounds this process uses.
type header struct {
	version      uint32
	kind         Kind
	size         uint64
	tableCap     uint32
	partCap      uint32
	creatorPid   uint32
	creatorUid   uint32
	created      int64
	creatorStart uint64
}

func (h *header) tableOff() uint64 { return HeaderSize }
func (h *header) partOff() uint64  { return HeaderSize + EntrySize*uint64(h.tableCap) }
func (h *header) dataOff() uint64 {
	return alignUp(h.partOff()+SlotSize*uint64(h.partCap), HeaderSize)
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

func encodeHeader(b []byte, h *header) {
	le := binary.LittleEndian
	copy(b[offMagic:], Magic)
	le.PutUint32(b[offVersion:], h.version)
	le.PutUint32(b[offKind:], uint32(h.kind))
	le.PutUint64(b[offSize:], h.size)
	le.PutUint32(b[offTableCap:], h.tableCap)
	le.PutUint32(b[offPartCap:], h.partCap)
	le.PutUint32(b[offCreatorPid:], h.creatorPid)
	le.PutUint32(b[offCreatorUid:], h.creatorUid)
	le.PutUint64(b[offCreated:], uint64(h.created))
	le.PutUint64(b[offCreatorStart:], h.creatorStart)
	le.PutUint64(b[offChecksum:], checksum(b))
	le.PutUint64(b[offAllocTop:], h.dataOff())
}

func checksum(b []byte) uint64 {
	s := fnv.New64a()
	s.Write(b[:fixedLen])
	return s.Sum64()
}

// decodeHeader validates b (the whole file, or at least its first page) as
// a segment of fileSize bytes. It never panics: every offset it derives is
// checked against fileSize first.
func decodeHeader(b []byte, fileSize int64) (header, error) {
	var h header
	if len(b) < HeaderSize || fileSize < HeaderSize {
		return h, errorf(ErrCorrupt, "file of %d bytes is shorter than a header", fileSize)
	}
	if string(b[:len(Magic)]) != Magic {
		return h, errorf(ErrCorrupt, "bad magic %q", b[:len(Magic)])
	}
	le := binary.LittleEndian
	if sum := le.Uint64(b[offChecksum:]); sum != checksum(b) {
		return h, errorf(ErrCorrupt, "header checksum %#x, want %#x", sum, checksum(b))
	}
	h = header{
		version:      le.Uint32(b[offVersion:]),
		kind:         Kind(le.Uint32(b[offKind:])),
		size:         le.Uint64(b[offSize:]),
		tableCap:     le.Uint32(b[offTableCap:]),
		partCap:      le.Uint32(b[offPartCap:]),
		creatorPid:   le.Uint32(b[offCreatorPid:]),
		creatorUid:   le.Uint32(b[offCreatorUid:]),
		created:      int64(le.Uint64(b[offCreated:])),
		creatorStart: le.Uint64(b[offCreatorStart:]),
	}
	if h.version != Version {
		return h, errorf(ErrIncompatible, "layout version %d, this build reads %d", h.version, Version)
	}
	if h.tableCap == 0 || h.tableCap > MaxObjects || h.partCap == 0 || h.partCap > MaxSlots {
		return h, errorf(ErrCorrupt, "table sizes %d/%d out of range", h.tableCap, h.partCap)
	}
	if h.size != uint64(fileSize) {
		return h, errorf(ErrCorrupt, "header says %d bytes, file has %d", h.size, fileSize)
	}
	// Create makes size = dataOff + (at most MaxSize of page-aligned data).
	if h.dataOff() > h.size || h.size-h.dataOff() > MaxSize {
		return h, errorf(ErrCorrupt, "size %d cannot hold the tables", h.size)
	}
	return h, nil
}

// Compile-time pins: the layout must not drift.
var _ = [1]struct{}{}[fixedLen-56]
var _ = [1]struct{}{}[EntrySize-(entSize+8)]
var _ = [1]struct{}{}[unsafe.Sizeof(uint64(0))-8]

// Info describes a segment, as read from its validated header.
type Info struct {
	Name       string // "" for an anonymous segment
	Path       string // file path, or "" for an anonymous segment
	Kind       Kind
	Version    uint32
	Size       int64 // whole file, header and tables included
	DataSize   int64 // bytes available to objects
	CreatorPid int
	CreatorUID int
	Created    time.Time
	Objects    int // capacity of the object table
	Slots      int // capacity of the participant table
}
