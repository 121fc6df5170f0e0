package ringbuf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

// point has a bool and padding: the cases Binary must get right.
type point struct {
	X, Y  int32
	Valid bool
	// 7 bytes of padding here
	Z   float64
	Tag [3]uint8
	On  [2]bool
}

type record struct {
	Name  string            `json:"name" cbor:"1,keyasint"`
	Tags  []string          `json:"tags" cbor:"2,keyasint"`
	Attrs map[string]int64  `json:"attrs" cbor:"3,keyasint"`
	Blob  []byte            `json:"blob" cbor:"4,keyasint"`
	Next  *record           `json:"next,omitempty" cbor:"5,keyasint,omitempty"`
	Extra map[string]string `json:"extra,omitempty" cbor:"6,keyasint,omitempty"`
}

func mustBinary[T any](t testing.TB) Codec[T] {
	t.Helper()
	c, err := Binary[T]()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// roundTrip sends vals through a queue of each mode with codec c and
// checks they come back equal.
func roundTrip[T any](t *testing.T, c Codec[T], vals []T) {
	t.Helper()
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 1 << 16, MaxMessage: 2048})
		tq := NewTyped(q, c)
		ctx := testutil.Context(t)
		for _, v := range vals {
			if err := tq.Put(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		for i, want := range vals {
			var got T
			var err error
			if i%2 == 0 {
				got, err = tq.Get(ctx)
			} else {
				got, err = tq.TryGet()
			}
			if err != nil {
				t.Fatalf("get %d: %v", i, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("value %d: got %#v, want %#v", i, got, want)
			}
		}
		if _, err := tq.TryGet(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryGet on empty = %v", err)
		}
	})
}

func TestCodecRoundTrip(t *testing.T) {
	rec := record{
		Name:  "jobs",
		Tags:  []string{"a", "", "ü"},
		Attrs: map[string]int64{"n": -1, "m": 1 << 60},
		Blob:  []byte{0, 1, 2, 255},
		Next:  &record{Name: "inner", Tags: []string{}, Attrs: map[string]int64{}, Blob: []byte{}},
	}
	big := strings.Repeat("x", 1500) // past the first receive buffer
	t.Run("bytes", func(t *testing.T) {
		roundTrip(t, Bytes(), [][]byte{[]byte("hello"), {}, []byte(big), {0, 0}})
	})
	t.Run("string", func(t *testing.T) {
		roundTrip(t, String(), []string{"hello", "", big, "\xff\xfe not utf-8"})
	})
	t.Run("binary", func(t *testing.T) {
		roundTrip(t, mustBinary[point](t), []point{{}, {X: -1, Y: 2, Valid: true, Z: 3.5, Tag: [3]uint8{1, 2, 3}, On: [2]bool{false, true}}})
		roundTrip(t, mustBinary[uint64](t), []uint64{0, 1, 1<<64 - 1})
		roundTrip(t, mustBinary[struct{}](t), []struct{}{{}, {}})
		roundTrip(t, mustBinary[[200]float64](t), [][200]float64{{1: 1, 199: -2}})
	})
	t.Run("json", func(t *testing.T) {
		roundTrip(t, JSON[record](), []record{rec, {Name: big, Tags: []string{}, Attrs: map[string]int64{}, Blob: []byte{}}})
		roundTrip(t, JSON[map[string]any](), []map[string]any{{"a": 1.5, "b": []any{"x", true, nil}}})
	})
	t.Run("cbor", func(t *testing.T) {
		roundTrip(t, CBOR[record](), []record{rec, {Name: big, Tags: []string{}, Attrs: map[string]int64{}, Blob: []byte{}}})
		roundTrip(t, CBOR[[]int64](), [][]int64{{1, -1, 1 << 62}, {}})
		roundTrip(t, CBOR[string](), []string{"", "héllo"})
	})
}

// TestCodecCBORCompact: CBOR is the compact general codec; it should beat
// JSON on a typical record (and []byte travels as bytes, not base64).
func TestCodecCBORCompact(t *testing.T) {
	rec := record{Name: "n", Tags: []string{"a", "b"}, Attrs: map[string]int64{"k": 1000}, Blob: make([]byte, 64)}
	j, err := JSON[record]().Append(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	c, err := CBOR[record]().Append(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) >= len(j) {
		t.Fatalf("cbor %d bytes, json %d", len(c), len(j))
	}
	t.Logf("cbor %d bytes, json %d", len(c), len(j))
	// Append appends: what dst held stays.
	c2, err := CBOR[record]().Append([]byte("prefix"), rec)
	if err != nil || !bytes.Equal(c2, append([]byte("prefix"), c...)) {
		t.Fatalf("Append to a prefix: %q, %v", c2, err)
	}
}

// decodeAll feeds inputs to dec and checks that each either fails with
// ErrDecode or succeeds, without panicking.
func decodeAll[T any](t *testing.T, name string, dec Codec[T], inputs [][]byte, mustFail bool) {
	t.Helper()
	for i, in := range inputs {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%s: Decode(%x) panicked: %v", name, in, r)
				}
			}()
			_, err := dec.Decode(in)
			if err != nil && !errors.Is(err, ErrDecode) {
				t.Fatalf("%s: Decode(%x) = %v, not ErrDecode", name, in, err)
			}
			if mustFail && err == nil {
				t.Fatalf("%s: garbage input %d (%x) decoded", name, i, in)
			}
		}()
	}
}

func TestCodecGarbage(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var random [][]byte
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.IntN(64))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		random = append(random, b)
	}
	// Inputs every structured codec must reject.
	garbage := [][]byte{
		nil, {}, {0xff}, []byte("{"), []byte(`{"name": 1`), {0x9f}, {0xbf, 0x61},
		{0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // CBOR: 2^64-1 byte string
		{0x9b, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff},             // CBOR: huge array header
		{0xa1, 0x61, 'a', 0xf6, 0x00},                          // CBOR: trailing byte
		[]byte(`{"name":"x"} {}`),                              // JSON: trailing value
		[]byte("\x00\x01\x02"),
	}

	decodeAll(t, "json", JSON[record](), garbage, true)
	decodeAll(t, "json", JSON[record](), random, false)
	decodeAll(t, "json-any", JSON[any](), random, false)
	decodeAll(t, "cbor", CBOR[record](), garbage, true)
	decodeAll(t, "cbor", CBOR[record](), random, false)
	decodeAll(t, "cbor-any", CBOR[any](), random, false)
	decodeAll(t, "cbor-map", CBOR[map[string][]int](), random, false)

	bp := mustBinary[point](t)
	size := int(unsafe.Sizeof(point{}))
	var wrongLen [][]byte
	for _, b := range random {
		if len(b) != size {
			wrongLen = append(wrongLen, b)
		}
	}
	decodeAll(t, "binary", bp, wrongLen, true)
	decodeAll(t, "binary", bp, [][]byte{make([]byte, size+1), make([]byte, size-1)}, true)
	// A bool byte that is neither 0 nor 1 is refused.
	bad := make([]byte, size)
	bad[unsafe.Offsetof(point{}.On)+1] = 2
	decodeAll(t, "binary-bool", bp, [][]byte{bad}, true)
	ok := make([]byte, size)
	for i := range ok {
		ok[i] = 0xaa
	}
	ok[unsafe.Offsetof(point{}.Valid)] = 1
	ok[unsafe.Offsetof(point{}.On)] = 0
	ok[unsafe.Offsetof(point{}.On)+1] = 1
	if v, err := bp.Decode(ok); err != nil || !v.Valid || v.On != [2]bool{false, true} || v.X != -0x55555556 {
		t.Fatalf("Decode of a valid pattern = %+v, %v", v, err)
	}

	// Bytes and String accept anything, and copy it.
	decodeAll(t, "bytes", Bytes(), random, false)
	decodeAll(t, "string", String(), random, false)
	in := []byte("abc")
	out, _ := Bytes().Decode(in)
	in[0] = 'X'
	if string(out) != "abc" {
		t.Fatalf("Bytes().Decode shares its input: %q", out)
	}
}

func TestCodecBinaryRejectsPointers(t *testing.T) {
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, shm.ErrType) {
			t.Errorf("Binary[%s]: %v, want shm.ErrType", name, err)
		}
	}
	_, err := Binary[*int]()
	check("*int", err)
	_, err = Binary[string]()
	check("string", err)
	_, err = Binary[[]byte]()
	check("[]byte", err)
	_, err = Binary[any]()
	check("any", err)
	_, err = Binary[struct {
		N int
		M map[int]int
	}]()
	check("struct with map", err)
	_, err = Binary[[2]struct{ F func() }]()
	check("array of func", err)
	if _, err := Binary[point](); err != nil {
		t.Errorf("Binary[point]: %v", err)
	}
}

// TestCodecBinaryPadding: padding bytes never carry memory to the peer.
func TestCodecBinaryPadding(t *testing.T) {
	type padded struct {
		A uint8
		B uint64
		C uint16
	}
	var v padded
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v))
	for i := range raw {
		raw[i] = 0xee
	}
	v.A, v.B, v.C = 1, 2, 3
	b, err := mustBinary[padded](t).Append(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, unsafe.Sizeof(v))
	want[0] = 1
	want[unsafe.Offsetof(v.B)] = 2 // little-endian
	want[unsafe.Offsetof(v.C)] = 3
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
}

func TestCodecCBORLimits(t *testing.T) {
	c := CBOR[any]()
	nested := func(depth int) []byte {
		b := bytes.Repeat([]byte{0x81}, depth) // array of one element, depth times
		return append(b, 0x01)
	}
	if _, err := c.Decode(nested(CBORMaxNested - 1)); err != nil {
		t.Fatalf("nesting %d: %v", CBORMaxNested-1, err)
	}
	for _, depth := range []int{CBORMaxNested + 1, 1000, 100000} {
		if _, err := c.Decode(nested(depth)); !errors.Is(err, ErrDecode) {
			t.Fatalf("nesting %d: %v, want ErrDecode", depth, err)
		}
	}
	// Through a queue: the message is consumed and the error says so.
	q := newQ(t, Options{Mode: SPSC, Capacity: 1 << 18})
	tq := NewTyped(q, c)
	if err := q.TryPut(nested(5000)); err != nil {
		t.Fatal(err)
	}
	if _, err := tq.TryGet(); !errors.Is(err, ErrDecode) {
		t.Fatalf("Typed.TryGet of a deep payload = %v", err)
	}
	if _, err := tq.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("after a decode error = %v", err)
	}

	rejected := map[string][]byte{
		"indefinite array":  {0x9f, 0x01, 0xff},
		"indefinite string": {0x7f, 0x61, 'a', 0xff},
		"duplicate key":     {0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02},
		"tag":               {0xc1, 0x1a, 0, 0, 0, 1},
		"invalid utf-8":     {0x62, 0xff, 0xfe},
		"array over limit":  append(binary.BigEndian.AppendUint32([]byte{0x9a}, CBORMaxArray+1), make([]byte, CBORMaxArray+1)...),
	}
	for name, in := range rejected {
		if _, err := c.Decode(in); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: %v, want ErrDecode", name, err)
		}
	}
	// A map with duplicate keys into a struct is refused too.
	if _, err := CBOR[record]().Decode([]byte{0xa2, 0x01, 0x61, 'a', 0x01, 0x61, 'b'}); !errors.Is(err, ErrDecode) {
		t.Errorf("duplicate struct key: %v", err)
	}
}

func TestTypedTooLarge(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 4096, MaxMessage: 100})
		tq := NewTyped(q, String())
		ctx := testutil.Context(t)
		if err := tq.Put(ctx, strings.Repeat("x", 101)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Put of 101 bytes = %v", err)
		}
		if err := tq.TryPut(strings.Repeat("x", 101)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("TryPut of 101 bytes = %v", err)
		}
		if err := tq.Put(ctx, strings.Repeat("x", 100)); err != nil {
			t.Fatalf("Put of 100 bytes = %v", err)
		}
		if v, err := tq.Get(ctx); err != nil || len(v) != 100 {
			t.Fatalf("Get = %d bytes, %v", len(v), err)
		}
		jq := NewTyped(q, JSON[[]int]())
		if err := jq.Put(ctx, make([]int, 100)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("JSON Put of 201 bytes = %v", err)
		}
		// An encoding error is returned as is.
		cq := NewTyped(q, JSON[func()]())
		if err := cq.Put(ctx, func() {}); err == nil {
			t.Fatal("JSON encoded a func")
		}
	})
}

func TestTypedAllocs(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 1 << 14, MaxMessage: 256})
		tq := NewTyped(q, mustBinary[point](t))
		ctx := context.Background()
		v := point{X: 1, Valid: true}
		var got point
		var err error
		run := func() {
			if err = tq.Put(ctx, v); err != nil {
				return
			}
			got, err = tq.Get(ctx)
		}
		run() // fill the buffer stacks
		allocs := testing.AllocsPerRun(1000, run)
		if err != nil || got != v {
			t.Fatalf("round trip: %+v, %v", got, err)
		}
		if allocs != 0 {
			t.Fatalf("Typed Put+Get with Binary: %v allocs/op, want 0", allocs)
		}
		try := func() {
			if err = tq.TryPut(v); err == nil {
				got, err = tq.TryGet()
			}
		}
		if allocs := testing.AllocsPerRun(1000, try); allocs != 0 || err != nil {
			t.Fatalf("Typed TryPut+TryGet with Binary: %v allocs/op, %v", allocs, err)
		}
	})
}

// TestTypedConcurrent: one Typed shared by several producer and consumer
// goroutines delivers every value once.
func TestTypedConcurrent(t *testing.T) {
	q := newQ(t, Options{Mode: MPMC, Capacity: 1 << 14, MaxMessage: 64})
	tq := NewTyped(q, mustBinary[uint64](t))
	ctx := testutil.Context(t)
	const producers, per = 4, 500
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := tq.Put(ctx, uint64(p*per+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := make([]bool, producers*per)
	var mu sync.Mutex
	for c := 0; c < 3; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, err := tq.Get(ctx)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if v >= uint64(len(seen)) || seen[v] {
					t.Errorf("value %d unexpected or twice", v)
				} else {
					seen[v] = true
				}
				done := true
				for _, s := range seen {
					done = done && s
				}
				mu.Unlock()
				if done {
					q.Shutdown()
				}
			}
		}()
	}
	wg.Wait()
	for i, s := range seen {
		if !s {
			t.Fatalf("value %d lost", i)
		}
	}
}
