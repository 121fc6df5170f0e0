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
