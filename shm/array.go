package shm

import (
	"context"
	"fmt"
	"hash/fnv"
	"reflect"
	"sync/atomic"
	"unsafe"

	"github.com/shmkit/shmkit/internal/robust"
)

// Array header layout. Elements start at arrayData(s), after the lock's
// event count, whose size depends on the segment's participant slots.
const (
	arrLock     = 0  // atomic uint32: robust lock word (see internal/robust)
	arrLen      = 8  // uint64: element count, fixed at creation
	arrElemSize = 16 // uint32: unsafe.Sizeof(T)
	arrTypeHash = 20 // uint32: FNV-32a of T's type string
	arrEC       = 24 // event count of the lock's waiters
)

// arrayData is the offset of the first element in s.
func arrayData(s *Segment) int { return int(alignUp(uint64(arrEC+s.EventCountSize()), Align)) }

// Array is a fixed-length array of pointer-free values in shared memory,
// with an optional robust lock for multi-element updates: Python's
// multiprocessing.Array with lock=True.
//
// Load and Store copy single elements and are not atomic for elements
// wider than a word; take the lock (Lock/Unlock) around reads and writes
// that other processes may do at the same time, or use Slice under it.
type Array[T any] struct {
	seg  *Segment
	data []T
	mu   *robust.Mutex
}

// NewArray allocates an Array of n zeroed elements called name. T must hold
// no pointers, strings, slices, maps, channels, funcs or interfaces
// (ErrType): another process cannot follow them.
func NewArray[T any](s *Segment, name string, n int) (*Array[T], error) {
	esize, hash, err := arrayType[T]()
	if err != nil {
		return nil, err
	}
	if n < 0 || uint64(n) > MaxSize/max(uint64(esize), 1) {
		return nil, errorf(ErrTooLarge, "array of %d elements", n)
	}
	size := arrayData(s) + n*int(esize)
	_, mem, err := s.Alloc(name, KindArray, esize, size, func(mem []byte) error {
		le64(mem[arrLen:], uint64(n))
		le32(mem[arrElemSize:], esize)
		le32(mem[arrTypeHash:], hash)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return newArray[T](s, mem, n)
}

// LookupArray finds an Array created with the same element type.
func LookupArray[T any](s *Segment, name string) (*Array[T], error) {
	esize, hash, err := arrayType[T]()
	if err != nil {
		return nil, err
	}
	_, mem, err := s.Lookup(name, KindArray, esize)
	if err != nil {
		return nil, err
	}
	data := arrayData(s)
	if len(mem) < data {
		return nil, errorf(ErrCorrupt, "array %q of %d bytes", name, len(mem))
	}
	// Read the header once into locals and check it against the object's
	// bounds before trusting it.
	n := rd64(mem[arrLen:])
	if rd32(mem[arrElemSize:]) != esize || rd32(mem[arrTypeHash:]) != hash {
		return nil, errorf(ErrKindMismatch, "array %q holds another element type", name)
	}
	if esize > 0 && n > uint64(len(mem)-data)/uint64(esize) {
		return nil, errorf(ErrCorrupt, "array %q claims %d elements in %d bytes", name, n, len(mem))
	}
	return newArray[T](s, mem, int(n))
}

func newArray[T any](s *Segment, mem []byte, n int) (*Array[T], error) {
	data := arrayData(s)
	ec, err := s.EventCount(mem[arrEC:data])
	if err != nil {
		return nil, err
	}
	a := &Array[T]{seg: s}
	if n > 0 {
		// unsafe.Add, not &mem[data]: a zero-size T has no element byte.
		a.data = unsafe.Slice((*T)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(mem)), data)), n)
	}
	a.mu = robust.New((*atomic.Uint32)(unsafe.Pointer(&mem[arrLock])), ec, uint32(s.Self()), s.aliveWord, s)
	return a, nil
}

func (s *Segment) aliveWord(t uint32) bool { return s.Alive(Token(t)) }

// Len returns the number of elements.
func (a *Array[T]) Len() int { return len(a.data) }

// Load returns element i, or ErrIndex.
func (a *Array[T]) Load(i int) (T, error) {
	if uint(i) >= uint(len(a.data)) {
		var z T
		return z, errorf(ErrIndex, "index %d, length %d", i, len(a.data))
	}
	return a.data[i], nil
}

// Store sets element i, or returns ErrIndex.
func (a *Array[T]) Store(i int, v T) error {
	if uint(i) >= uint(len(a.data)) {
		return errorf(ErrIndex, "index %d, length %d", i, len(a.data))
	}
	a.data[i] = v
	return nil
}

// Slice returns the elements in place. Writes through it are visible to
// every process at once; coordinate them with Lock.
func (a *Array[T]) Slice() []T { return a.data }

// Lock takes the array's robust lock. If its holder died, the lock is
// taken anyway and the error matches ErrOwnerDead: repair the contents and
// call MarkConsistent before Unlock.
func (a *Array[T]) Lock(ctx context.Context) error { return a.mu.Lock(ctx) }

// TryLock takes the lock if it is free (or its holder dead).
func (a *Array[T]) TryLock() error { return a.mu.TryLock() }

// Unlock releases the lock.
func (a *Array[T]) Unlock() error { return a.mu.Unlock() }

// MarkConsistent declares the contents repaired after ErrOwnerDead.
func (a *Array[T]) MarkConsistent() error { return a.mu.MarkConsistent() }

// Errors of the Array lock. They are the same values sem.Mutex returns.
var (
	ErrOwnerDead      = robust.ErrOwnerDead
	ErrNotRecoverable = robust.ErrNotRecoverable
	ErrLocked         = robust.ErrLocked
	ErrNotOwner       = robust.ErrNotOwner
)

// arrayType checks that T can live in shared memory and returns its size
// and a fingerprint of its type (construction only, so no cache).
func arrayType[T any]() (uint32, uint32, error) {
	t := reflect.TypeFor[T]()
	if !pointerFree(t) {
		return 0, 0, errorf(ErrType, "%v holds pointers", t)
	}
	h := fnv.New32a()
	h.Write(typeShape(nil, t))
	return uint32(t.Size()), h.Sum32(), nil
}

// typeShape describes t's memory layout: kinds, sizes, field names and
// offsets, recursively. Two programs agree on an Array's element type when
// their shapes match, whatever the type is called.
func typeShape(b []byte, t reflect.Type) []byte {
	b = fmt.Appendf(b, "%v/%d{", t.Kind(), t.Size())
	switch t.Kind() {
	case reflect.Array:
		b = fmt.Appendf(b, "%d*", t.Len())
		b = typeShape(b, t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			b = fmt.Appendf(b, "%s@%d:", f.Name, f.Offset)
			b = typeShape(b, f.Type)
		}
	}
	return append(b, '}')
}

// PointerFree reports whether values of t hold no pointers, so that their
// bytes mean the same in every process.
func PointerFree(t reflect.Type) bool { return pointerFree(t) }

func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return pointerFree(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}
