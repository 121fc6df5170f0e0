package ringbuf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	"github.com/fxamacker/cbor/v2"

	"github.com/shmkit/shmkit/shm"
)

// ErrDecode: a message could not be decoded by a Codec (wrong length,
// malformed, over a decoding limit). The message was consumed.
var ErrDecode = errors.New("ringbuf: cannot decode message")

// Codec turns values of T into messages and back. The codecs here are
// data-only: none carries code or arbitrary Go types, so a message from a
// hostile peer can produce a wrong value or ErrDecode, never run anything.
//
// Append appends v's encoding to dst and returns the extended slice. Decode
// returns the value encoded in b; it must not retain b (Typed reuses it)
// and must wrap every failure in ErrDecode. Both must be safe for
// concurrent use.
type Codec[T any] interface {
	Append(dst []byte, v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

var (
	_ Codec[[]byte] = bytesCodec{}
	_ Codec[string] = stringCodec{}
	_ Codec[int64]  = (*binaryCodec[int64])(nil)
	_ Codec[any]    = jsonCodec[any]{}
	_ Codec[any]    = cborCodec[any]{}
)

// decodeErr wraps cause so that it matches both ErrDecode and cause.
func decodeErr(format string, cause error) error {
	return fmt.Errorf("%w: "+format+": %w", ErrDecode, cause)
}

// ---- bytes and strings ----

// Bytes returns the identity codec: a message is the slice itself. Decode
// returns a copy, so the value outlives the receive buffer.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Append(dst, v []byte) ([]byte, error) { return append(dst, v...), nil }
func (bytesCodec) Decode(b []byte) ([]byte, error)      { return bytes.Clone(b), nil }

// String returns the codec of strings as their bytes. Any bytes decode:
// like every Go string, the result need not be valid UTF-8.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) ([]byte, error) { return append(dst, v...), nil }
func (stringCodec) Decode(b []byte) (string, error)             { return string(b), nil }

// ---- fixed-size binary ----

// Binary returns the codec that copies the memory of a pointer-free T
// (numbers, bools, arrays and structs of them): the fastest codec, and it
// does not allocate. T with pointers, strings, slices, maps, interfaces,
// channels or funcs is rejected with an error matching shm.ErrType.
//
// The encoding is T's in-memory layout on this machine, so both ends must
// use the same T (same fields, same order) and run on the same
// architecture, which shared memory implies. Padding bytes are encoded as
// zeros. Decode fails with ErrDecode unless the message is exactly
// unsafe.Sizeof(T) bytes and every bool holds 0 or 1 (any other byte would
// be a bool Go cannot represent).
func Binary[T any]() (Codec[T], error) {
	t := reflect.TypeFor[T]()
	if !shm.PointerFree(t) {
		return nil, fmt.Errorf("ringbuf: binary codec: %v holds pointers: %w", t, shm.ErrType)
	}
	l := layoutOfType(t)
	return &binaryCodec[T]{typ: t, size: int(t.Size()), bools: l.bools, pads: l.pads}, nil
}

type binaryCodec[T any] struct {
	typ   reflect.Type
	size  int
	bools []uintptr // offsets of bool bytes
	pads  []span    // padding, zeroed on encode
}

type span struct{ off, n uintptr }

// binLayout lists where a pointer-free type has bools and padding.
type binLayout struct {
	bools []uintptr
	pads  []span
}

func (l *binLayout) add(o binLayout, base uintptr) {
	for _, b := range o.bools {
		l.bools = append(l.bools, base+b)
	}
	for _, p := range o.pads {
		l.pads = append(l.pads, span{base + p.off, p.n})
	}
}

// layoutOfType walks t once, at construction. The lists are bounded by
// t.Size(): every entry names distinct bytes.
func layoutOfType(t reflect.Type) binLayout {
	var l binLayout
	switch t.Kind() {
	case reflect.Bool:
		l.bools = []uintptr{0}
	case reflect.Array:
		e := layoutOfType(t.Elem())
		if len(e.bools) == 0 && len(e.pads) == 0 {
			break
		}
		for i := 0; i < t.Len(); i++ {
			l.add(e, uintptr(i)*t.Elem().Size())
		}
	case reflect.Struct:
		var end uintptr
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Offset > end {
				l.pads = append(l.pads, span{end, f.Offset - end})
			}
			l.add(layoutOfType(f.Type), f.Offset)
			end = max(end, f.Offset+f.Type.Size())
		}
		if t.Size() > end {
			l.pads = append(l.pads, span{end, t.Size() - end})
		}
	}
	return l
}

func (c *binaryCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	n := len(dst)
	// T is pointer-free (checked at construction), so its bytes are all
	// there is to it. The slice is copied at once; &v does not escape.
	dst = append(dst, unsafe.Slice((*byte)(unsafe.Pointer(&v)), c.size)...)
	out := dst[n:]
	for _, p := range c.pads {
		clear(out[p.off : p.off+p.n])
	}
	return dst, nil
}

func (c *binaryCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if len(b) != c.size {
		return v, fmt.Errorf("%w: binary %v: %d bytes, want %d", ErrDecode, c.typ, len(b), c.size)
	}
	// Check before copying, so that no invalid bool ever exists as a T.
	for _, o := range c.bools {
		if b[o] > 1 {
			return v, fmt.Errorf("%w: binary %v: byte %d is not a bool (%#x)", ErrDecode, c.typ, o, b[o])
		}
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&v)), c.size), b)
	return v, nil
}

// ---- JSON ----

// JSON returns the encoding/json codec: readable and interoperable, the
// slowest here. Decode rejects trailing data; unknown fields are ignored.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("ringbuf: json encode: %w", err)
	}
	return append(dst, b...), nil
}

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		var z T
		return z, decodeErr("json", err)
	}
	return v, nil
}

// ---- CBOR ----

// CBOR limits applied when decoding. A message is at most MaxMessage bytes,
// and the decoder first checks that the whole item is well formed, so a
// declared length can never exceed the bytes present; the limits bound
// the rest: recursion depth (stack) and how far small items may expand
// into Go values.
const (
	// CBORMaxNested is the deepest nesting of arrays and maps CBOR decodes.
	CBORMaxNested = 32
	// CBORMaxArray is the most elements in one CBOR array.
	CBORMaxArray = 1 << 20
	// CBORMaxMap is the most pairs in one CBOR map.
	CBORMaxMap = 1 << 16
)

// CBOR returns a compact general codec: CBOR (RFC 8949) by
// github.com/fxamacker/cbor/v2. It encodes what encoding/json does (and
// []byte as bytes, not base64), in less space and time.
//
// Why this library: it is built for untrusted input. Its decoder checks
// that an item is well formed before decoding it and has configurable
// limits; every release is fuzzed for billions of executions; it passed
// an external security assessment (NCC Group, 2022); it is widely used
// (Kubernetes among others) and maintained. CBOR is a standard (RFC 8949),
// so peers in other languages can read it. encoding/gob was ruled out: it
// is not hardened against adversarial input, and through interfaces it
// carries any registered Go type.
//
// Configuration, the same for every process: CBORMaxNested,
// CBORMaxArray and CBORMaxMap bound decoding; duplicate map keys,
// indefinite-length items, tags and invalid UTF-8 are rejected, so a value
// has one meaning and no extension types travel. time.Time is encoded as
// Unix seconds without a tag. Decode rejects trailing data.
func CBOR[T any]() Codec[T] {
	return cborCodec[T]{cborModes()}
}

type cborCodec[T any] struct{ cborModeSet }

type cborModeSet struct {
	enc cbor.UserBufferEncMode
	dec cbor.DecMode
}

// cborModes builds the immutable encoder and decoder modes once.
var cborModes = sync.OnceValue(func() (m cborModeSet) {
	var err error
	m.enc, err = cbor.EncOptions{
		IndefLength: cbor.IndefLengthForbidden,
		TagsMd:      cbor.TagsForbidden,
	}.UserBufferEncMode()
	if err != nil {
		panic("ringbuf: cbor encoder options: " + err.Error())
	}
	m.dec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  CBORMaxNested,
		MaxArrayElements: CBORMaxArray,
		MaxMapPairs:      CBORMaxMap,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic("ringbuf: cbor decoder options: " + err.Error())
	}
	return m
})

func (c cborCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	n := len(dst)
	buf := bytes.NewBuffer(dst)
	if err := c.enc.MarshalToBuffer(v, buf); err != nil {
		return dst[:n], fmt.Errorf("ringbuf: cbor encode: %w", err)
	}
	return buf.Bytes(), nil
}

func (c cborCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := c.dec.Unmarshal(b, &v); err != nil {
		var z T
		return z, decodeErr("cbor", err)
	}
	return v, nil
}
