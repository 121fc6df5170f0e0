package manager

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func randBytes(r *rand.Rand) []byte {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	n := []int{1, 23, 24, 255, 256, 70000}[r.IntN(6)]
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randInt(r *rand.Rand) int64 {
	return []int64{0, 1, -1, 23, 24, -24, -25, 255, 256, 65535, 65536, -65537, math.MaxInt32 + 1, math.MaxInt64, math.MinInt64, r.Int64() - r.Int64()}[r.IntN(16)]
}

func randText(r *rand.Rand) string { return string(bytes.Repeat([]byte("aé"), r.IntN(40))) }

func randRequest(r *rand.Rand) request {
	rq := request{Op: uint8(r.UintN(256)), Kind: uint8(r.UintN(256)), Obj: randText(r), Key: randText(r),
		Val: randBytes(r), Old: randBytes(r), N: randInt(r)}
	if r.IntN(2) == 0 {
		rq.Vals = [][]byte{}
		for i := r.IntN(30); i > 0; i-- {
			rq.Vals = append(rq.Vals, randBytes(r))
		}
	}
	if r.IntN(2) == 0 {
		rq.Keys = []string{}
		for i := r.IntN(30); i > 0; i-- {
			rq.Keys = append(rq.Keys, randText(r))
		}
	}
	return rq
}

// TestWireCodecMatchesLibrary: the hand-written codec makes the bytes the
// CBOR library makes of request and response, and reads back what the
// library reads: the protocol did not change with it.
func TestWireCodecMatchesLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lastObj := ""
	for i := 0; i < 3000; i++ {
		rq := randRequest(r)
		lib, err := encMode.Marshal(&rq)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendRequest(nil, &rq); !bytes.Equal(got, lib) {
			t.Fatalf("request %+v:\n got %x\nwant %x", rq, got, lib)
		}
		var back, libBack, reused request
		if err := decodeRequest(lib, &back); err != nil {
			t.Fatalf("decodeRequest(%x): %v", lib, err)
		}
		if err := decodeRequestObj(lib, &reused, &lastObj); err != nil || !reflect.DeepEqual(reused, back) {
			t.Fatalf("decodeRequestObj(%x) = %+v, %v; want %+v", lib, reused, err, back)
		}
		if err := decMode.Unmarshal(lib, &libBack); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, libBack) {
			t.Fatalf("decoded %+v, library %+v", back, libBack)
		}
		rs := response{Code: uint8(r.UintN(256)), Msg: randText(r), Val: randBytes(r), N: randInt(r), OK: r.IntN(2) == 0, Vals: rq.Vals, Keys: rq.Keys}
		if lib, err = encMode.Marshal(&rs); err != nil {
			t.Fatal(err)
		}
		if got := appendResponse(nil, &rs); !bytes.Equal(got, lib) {
			t.Fatalf("response %+v:\n got %x\nwant %x", rs, got, lib)
		}
		var rback, rlib response
		if err := decodeResponse(lib, &rback); err != nil {
			t.Fatal(err)
		}
		decMode.Unmarshal(lib, &rlib)
		if !reflect.DeepEqual(rback, rlib) {
			t.Fatalf("decoded %+v, library %+v", rback, rlib)
		}
	}
}

// TestWireDecodeRefuses: truncations, a trailing byte, a wrong array
// length, an indefinite length, an oversized count, a tag, invalid UTF-8
// and an out-of-range small integer are each an error, never a panic.
func TestWireDecodeRefuses(t *testing.T) {
	good := appendRequest(nil, &request{Op: opSet, Kind: tDict, Obj: "d", Key: "k", Val: []byte{0x63, 'x', 'y', 'z'}, Vals: [][]byte{{1}}, Keys: []string{"a"}})
	var rq request
	if err := decodeRequest(good, &rq); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(good); i++ {
		if decodeRequest(good[:i], &rq) == nil {
			t.Errorf("truncated to %d bytes: accepted", i)
		}
	}
	bad := map[string][]byte{
		"trailing byte":      append(append([]byte{}, good...), 0),
		"8 fields":           append([]byte{0x88}, good[1:]...),
		"indefinite array":   append([]byte{0x9f}, good[1:]...),
		"tag":                {0x89, 0xc1, 0x01, 0x01, 0x60, 0x60, 0xf6, 0xf6, 0x00, 0xf6, 0xf6},
		"op 256":             {0x89, 0x19, 0x01, 0x00, 0x01, 0x60, 0x60, 0xf6, 0xf6, 0x00, 0xf6, 0xf6},
		"invalid UTF-8":      {0x89, 0x01, 0x01, 0x61, 0xff, 0x60, 0xf6, 0xf6, 0x00, 0xf6, 0xf6},
		"huge vals count":    {0x89, 0x01, 0x01, 0x60, 0x60, 0xf6, 0xf6, 0x00, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf6},
		"4 GiB byte string":  {0x89, 0x01, 0x01, 0x60, 0x60, 0x5a, 0xff, 0xff, 0xff, 0xff},
		"N above MaxInt64":   {0x89, 0x01, 0x01, 0x60, 0x60, 0xf6, 0xf6, 0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xf6, 0xf6},
		"reserved info 28":   {0x89, 0x1c},
		"empty":              {},
		"null for the array": {0xf6},
	}
	for name, b := range bad {
		if err := decodeRequest(b, &rq); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzWireDecode: any body the codec accepts the library accepts too,
// with the same meaning; nothing panics.
func FuzzWireDecode(f *testing.F) {
	f.Add(appendRequest(nil, &request{Op: opGet, Kind: tDict, Obj: "d", Key: "k"}))
	f.Add(appendResponse(nil, &response{Val: []byte{1}, OK: true, Keys: []string{"a"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rq, lib, reused request
		last := "x"
		if (decodeRequestObj(b, &reused, &last) == nil) != (decodeRequest(b, &rq) == nil) {
			t.Fatalf("%x: decodeRequestObj and decodeRequest disagree", b)
		}
		if decodeRequest(b, &rq) == nil {
			if !reflect.DeepEqual(rq, reused) {
				t.Fatalf("%x: reuse %+v, plain %+v", b, reused, rq)
			}
			if err := decMode.Unmarshal(b, &lib); err != nil {
				t.Fatalf("codec accepted %x, library refused: %v", b, err)
			}
			if !reflect.DeepEqual(rq, lib) {
				t.Fatalf("%x: codec %+v, library %+v", b, rq, lib)
			}
		}
		var rs, rlib response
		if decodeResponse(b, &rs) == nil {
			if err := decMode.Unmarshal(b, &rlib); err != nil {
				t.Fatalf("codec accepted %x, library refused: %v", b, err)
			}
			if !reflect.DeepEqual(rs, rlib) {
				t.Fatalf("%x: codec %+v, library %+v", b, rs, rlib)
			}
		}
	})
}

// TestValueFastPaths: encode's hand-made scalars are the library's bytes,
// and decodeFast reads what the library reads (or declines).
func TestValueFastPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		n := randInt(r)
		for _, v := range []any{randText(r), randBytes(r), int(n), n, r.IntN(2) == 0} {
			got, err := encode(v)
			if err != nil {
				t.Fatal(err)
			}
			lib, _ := encMode.Marshal(v)
			if !bytes.Equal(got, lib) {
				t.Fatalf("encode(%#v) = %x, library %x", v, got, lib)
			}
		}
		b, _ := encMode.Marshal(n)
		var fast, slow int64
		if !decodeFast(b, &fast) || decMode.Unmarshal(b, &slow) != nil || fast != slow {
			t.Fatalf("int64 %d: fast %d, library %d", n, fast, slow)
		}
		s := randText(r)
		b, _ = encMode.Marshal(s)
		var fs string
		if !decodeFast(b, &fs) || fs != s {
			t.Fatalf("string %q: fast %q", s, fs)
		}
	}
	// Not a scalar of the asked type: declined, for the library to answer.
	b, _ := encMode.Marshal(1.5)
	var n int64
	if decodeFast(b, &n) {
		t.Fatal("a float decoded into int64 by the fast path")
	}
	b, _ = encMode.Marshal("x")
	if decodeFast(b, &n) || decode(b, &n) == nil {
		t.Fatal("a string decoded into int64")
	}
}
