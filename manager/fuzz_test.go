package manager

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// FuzzFrameReader: any byte stream gives frames within the limit or an
// error, never a panic or an allocation above the limit.
func FuzzFrameReader(f *testing.F) {
	f.Add(appendFrame(nil, kCall, 1, []byte("body")))
	f.Add(appendFrame(appendFrame(nil, kReply, 7, nil), kCancel, 9, []byte{1, 2}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, kCall})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := frameReader{r: bytes.NewReader(b), max: 1 << 10}
		for {
			fr2, err := fr.read()
			if err != nil {
				return
			}
			if len(fr2.body) > 1<<10 || cap(fr.buf) > 1<<10 {
				t.Fatalf("body of %d bytes, buffer %d, limit 1024", len(fr2.body), cap(fr.buf))
			}
		}
	})
}

// FuzzServerHandshake: whatever an unauthenticated peer sends, the
// handshake fails (it cannot know the key), and no request is decoded.
func FuzzServerHandshake(f *testing.F) {
	cn := make([]byte, nonceLen)
	f.Add(appendFrame(nil, kAuth, 0, append(helloBody(cn), make([]byte, macLen)...)))
	f.Add(appendFrame(nil, kCall, 1, []byte{0x80}))
	f.Add([]byte{0, 0, 0, 10, 1, kAuth, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		server, client := net.Pipe()
		defer client.Close()
		go func() {
			hello := make([]byte, 4+10+1+len(digestName)+nonceLen)
			readFull(client, hello) // the server's hello
			client.Write(b)
			client.Close()
		}()
		err := serverHandshake(server, testKey, 200*time.Millisecond)
		server.Close()
		if err == nil {
			t.Fatalf("handshake succeeded on %x", b)
		}
	})
}

func readFull(c net.Conn, b []byte) {
	c.SetReadDeadline(time.Now().Add(time.Second))
	for n := 0; n < len(b); {
		k, err := c.Read(b[n:])
		if err != nil {
			return
		}
		n += k
	}
}

// FuzzApply: any decodable request applied three times to an object of
// any type with contents: no panic, and every reply encodes.
func FuzzApply(f *testing.F) {
	f.Add(appendRequest(nil, &request{Op: opInsert, Kind: tList, N: -1 << 63, Val: []byte{1}}))
	f.Add(appendRequest(nil, &request{Op: opSlice, Kind: tList, N: -5, Val: []byte{0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}))
	f.Add(appendRequest(nil, &request{Op: opUpdate, Kind: tDict, Keys: []string{"a"}, Vals: [][]byte{{1}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rq request
		if decodeRequest(b, &rq) != nil {
			return
		}
		s := &Server{opts: Options{MaxFrame: DefaultMaxFrame}, objs: map[objKey]*object{}}
		c := &sconn{s: s, held: map[*object]struct{}{}}
		o, err := s.lookup(rq.Kind, rq.Obj, rq.N, true)
		if err != nil {
			return
		}
		o.list = [][]byte{{1}, {2}, {3}}
		if o.dict != nil {
			o.dict["k"] = []byte{0x01}
		}
		o.val = []byte{0x01}
		for i := 0; i < 3; i++ {
			var rs response
			r2 := rq
			o.mu.Lock()
			o.apply(c, &r2, &rs)
			o.mu.Unlock()
			appendResponse(nil, &rs)
		}
	})
}

// FuzzDecodeFast: the scalar fast path decodes only what the library
// decodes, to the same value.
func FuzzDecodeFast(f *testing.F) {
	f.Add([]byte{0x63, 'a', 'b', 'c'})
	f.Add([]byte{0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x42, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s1, s2 string
		if decodeFast(b, &s1) && (decMode.Unmarshal(b, &s2) != nil || s1 != s2) {
			t.Fatalf("string %x", b)
		}
		var b1, b2 []byte
		if decodeFast(b, &b1) && (decMode.Unmarshal(b, &b2) != nil || string(b1) != string(b2) || (b1 == nil) != (b2 == nil)) {
			t.Fatalf("bytes %x: %v %v", b, b1, b2)
		}
		var i1, i2 int
		if decodeFast(b, &i1) && (decMode.Unmarshal(b, &i2) != nil || i1 != i2) {
			t.Fatalf("int %x", b)
		}
		var l1, l2 int64
		if decodeFast(b, &l1) && (decMode.Unmarshal(b, &l2) != nil || l1 != l2) {
			t.Fatalf("int64 %x", b)
		}
	})
}
