package shm

import (
	"math"
	"sync/atomic"
	"unsafe"
)

// Number is the set of types a Value holds: the integers with atomic
// forms, and float64 (stored as its IEEE bits).
type Number interface {
	~int32 | ~uint32 | ~int64 | ~uint64 | ~int | ~uint | ~uintptr | ~float64
}

// Value element codes, stored as the object's aux word so LookupValue of
// another type fails with ErrKindMismatch instead of reinterpreting bits.
const (
	elemInt32 uint32 = 1 + iota
	elemUint32
	elemInt64
	elemUint64
	elemFloat64
)

func elemOf[T Number]() uint32 {
	if isFloat[T]() {
		return elemFloat64
	}
	// Classify integers by size and signedness (0-1 wraps for unsigned),
	// which covers named types (~int64 …) too.
	var z T
	signed := z-1 < z
	switch {
	case unsafe.Sizeof(z) == 4 && signed:
		return elemInt32
	case unsafe.Sizeof(z) == 4:
		return elemUint32
	case signed:
		return elemInt64
	default:
		return elemUint64
	}
}

// isFloat tells float64-based named types from integers: 1/2 is 0 for
// integers only.
func isFloat[T Number]() bool {
	var one T = 1
	return one/2 != 0
}

// Value is a number in shared memory, updated atomically: Python's
// multiprocessing.Value without the lock, which atomics make unnecessary.
// Every method is safe for concurrent use by any number of processes.
type Value[T Number] struct {
	seg  *Segment
	elem uint32
	p32  *atomic.Uint32
	p64  *atomic.Uint64
}

const valueSize = 8

// NewValue allocates a Value called name, initialized to zero.
func NewValue[T Number](s *Segment, name string) (*Value[T], error) {
	e := elemOf[T]()
	_, mem, err := s.Alloc(name, KindValue, e, valueSize, nil)
	if err != nil {
		return nil, err
	}
	return newValue[T](s, e, mem), nil
}

// LookupValue finds a Value created (by any process) with the same
// element type.
func LookupValue[T Number](s *Segment, name string) (*Value[T], error) {
	e := elemOf[T]()
	_, mem, err := s.Lookup(name, KindValue, e)
	if err != nil {
		return nil, err
	}
	if len(mem) < valueSize {
		return nil, errorf(ErrCorrupt, "value %q of %d bytes", name, len(mem))
	}
	return newValue[T](s, e, mem), nil
}

func newValue[T Number](s *Segment, e uint32, mem []byte) *Value[T] {
	v := &Value[T]{seg: s, elem: e}
	// The object is 64-byte aligned, so both views are naturally aligned.
	if e == elemInt32 || e == elemUint32 {
		v.p32 = (*atomic.Uint32)(unsafe.Pointer(&mem[0]))
	} else {
		v.p64 = (*atomic.Uint64)(unsafe.Pointer(&mem[0]))
	}
	return v
}

// The conversions below reinterpret bits of equal size: T is 4 bytes
// exactly when p32 is set.

func from32[T Number](b uint32) T { return *(*T)(unsafe.Pointer(&b)) }
func from64[T Number](b uint64) T { return *(*T)(unsafe.Pointer(&b)) }
func to32[T Number](v T) uint32   { return *(*uint32)(unsafe.Pointer(&v)) }
func to64[T Number](v T) uint64   { return *(*uint64)(unsafe.Pointer(&v)) }

// Load returns the value.
func (v *Value[T]) Load() T {
	if v.p32 != nil {
		return from32[T](v.p32.Load())
	}
	return from64[T](v.p64.Load())
}

// Store sets the value.
func (v *Value[T]) Store(x T) {
	if v.p32 != nil {
		v.p32.Store(to32(x))
		return
	}
	v.p64.Store(to64(x))
}

// Swap sets the value and returns the old one.
func (v *Value[T]) Swap(x T) T {
	if v.p32 != nil {
		return from32[T](v.p32.Swap(to32(x)))
	}
	return from64[T](v.p64.Swap(to64(x)))
}

// CompareAndSwap sets the value to new if it is old. For float64 the
// comparison is of bits (so NaN can be swapped out, and -0 ≠ +0).
func (v *Value[T]) CompareAndSwap(old, new T) bool {
	if v.p32 != nil {
		return v.p32.CompareAndSwap(to32(old), to32(new))
	}
	return v.p64.CompareAndSwap(to64(old), to64(new))
}

// Add adds delta and returns the new value. Integer overflow wraps.
func (v *Value[T]) Add(delta T) T {
	switch v.elem {
	case elemInt32, elemUint32:
		// Two's complement: adding the bits of a negative delta subtracts.
		return from32[T](v.p32.Add(to32(delta)))
	case elemFloat64:
		return v.addFloat(delta)
	default:
		return from64[T](v.p64.Add(to64(delta)))
	}
}

func (v *Value[T]) addFloat(delta T) T {
	d := math.Float64frombits(to64(delta))
	for {
		old := v.p64.Load()
		n := math.Float64bits(math.Float64frombits(old) + d)
		if v.p64.CompareAndSwap(old, n) {
			return from64[T](n)
		}
	}
}
