package manager

import (
	"github.com/fxamacker/cbor/v2"
)

// Bodies of kCall and kReply frames, CBOR arrays. Values travel as opaque
// CBOR encodings made by the client (Val, Old, Vals): the server stores
// and returns their bytes and decodes one only where an operation needs
// the number inside (Add). No types, code or pointers travel.
type request struct {
	_    struct{} `cbor:",toarray"`
	Op   uint8
	Kind uint8  // object type (kDict, ...)
	Obj  string // object name
	Key  string
	Val  []byte
	Old  []byte
	N    int64 // delta, index, count, capacity, timeout in ms
	Vals [][]byte
	Keys []string

	arrival *arrival // server only, never on the wire: a Barrier.Wait's arrival
}

// arrival is where a Barrier.Wait arrived: the generation and its index.
type arrival struct {
	gen   uint64
	index int
}

type response struct {
	_    struct{} `cbor:",toarray"`
	Code uint8    // 0: success; else the sentinel (see codes), with Msg
	Msg  string
	Val  []byte
	N    int64
	OK   bool
	Vals [][]byte
	Keys []string
}

// Object types.
const (
	tDict uint8 = iota + 1
	tList
	tQueue
	tValue
	tLock
	tRLock
	tSemaphore
	tEvent
	tBarrier
)

var typeNames = [...]string{"", "Dict", "List", "Queue", "Value", "Lock", "RLock", "Semaphore", "Event", "Barrier"}

// Operations.
const (
	opGet uint8 = iota + 1
	opSet
	opDelete
	opLen
	opKeys
	opItems
	opUpdate
	opPop
	opSetDefault
	opCAS
	opAdd
	opAppend
	opExtend
	opInsert
	opRemove
	opSlice
	opPut
	opTryPut
	opTryGet
	opAcquire
	opTryAcquire
	opRelease
	opWait
	opIsSet
	opClear
	opCreate // create the object if absent (N: capacity/parties/initial)
	opTaskDone
	opJoin
	opLocked
	opReset
	opAbort
	opUnget // put a message back at the queue's head (see Client.undo)
)

var (
	// encMode encodes values deterministically (RFC 8949 core
	// deterministic encoding), so equal values have equal bytes and
	// CompareAndSwap compares them bytewise.
	encMode, _ = cbor.CoreDetEncOptions().EncMode()
	// decMode refuses what a data-only codec should: no tags beyond the
	// standard ones, bounded nesting and lengths.
	decMode, _ = cbor.DecOptions{
		MaxNestedLevels:  32,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
	}.DecMode()
)
