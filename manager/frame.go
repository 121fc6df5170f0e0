package manager

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Frames. Every message either way is
//
//	length uint32 (big-endian; the bytes after it) | version byte | kind byte | id uint64 | body
//
// so a frame is at least frameHdr-4 = 10 bytes after its length. The
// reader refuses a length below that or above its limit before reading
// (or allocating for) the body.
const (
	protoVersion = 1
	frameHdr     = 4 + 1 + 1 + 8

	// DefaultMaxFrame bounds a frame's length (Options.MaxFrame).
	DefaultMaxFrame = 16 << 20
	// preAuthMax bounds every frame read before the handshake succeeded.
	preAuthMax = 256
)

// Frame kinds.
const (
	kHello   = 1 // server → client: digest name, server nonce
	kAuth    = 2 // client → server: digest name, client nonce, MAC
	kWelcome = 3 // server → client: MAC
	kCall    = 4 // client → server: a request (body: request)
	kReply   = 5 // server → client: the response to request id
	kCancel  = 6 // client → server: stop waiting for request id
	kUpgrade = 7 // client → server, first after the handshake: move to a Pipe (see shmconn_linux.go)
)

// frame is one decoded frame; body aliases the reader's buffer until the
// next read.
type frame struct {
	kind byte
	id   uint64
	body []byte
}

// wholeFrameBuffered reports whether br holds at least one whole frame
// (so reading it will not block).
func wholeFrameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 4 {
		return false
	}
	h, _ := br.Peek(4)
	return uint64(binary.BigEndian.Uint32(h))+4 <= uint64(n)
}

// frameReader reads frames from r into one reused buffer. A read that
// fails part way through a frame (a read deadline) keeps what it got: the
// next read goes on from there, so a reader interrupted to give the
// connection to another loses no bytes. Any other error ends the stream.
type frameReader struct {
	r   io.Reader
	max int
	hdr [frameHdr]byte
	buf []byte

	hn     int   // header bytes read of the frame in progress
	inBody bool  // the header was read and checked
	cur    frame // the frame in progress
	bn     int   // body bytes read
}

func (fr *frameReader) read() (frame, error) {
	for fr.hn < frameHdr && !fr.inBody {
		n, err := fr.r.Read(fr.hdr[fr.hn:])
		fr.hn += n
		if fr.hn == frameHdr {
			break
		}
		if err != nil {
			if err == io.EOF && fr.hn > 0 {
				err = io.ErrUnexpectedEOF
			}
			return frame{}, err
		}
	}
	if !fr.inBody {
		n := binary.BigEndian.Uint32(fr.hdr[0:4])
		if n < frameHdr-4 || uint64(n) > uint64(fr.max) {
			return frame{}, fmt.Errorf("%w: frame length %d (limit %d)", ErrProtocol, n, fr.max)
		}
		if v := fr.hdr[4]; v != protoVersion {
			return frame{}, fmt.Errorf("%w: version %d, want %d", ErrProtocol, v, protoVersion)
		}
		body := int(n) - (frameHdr - 4)
		// Grown for the largest frame so far; a big buffer is dropped at
		// the next small frame, so a burst does not pin MaxFrame per
		// connection.
		if cap(fr.buf) < body || cap(fr.buf) > 1<<20 && body <= 64<<10 {
			fr.buf = make([]byte, max(body, min(4<<10, fr.max)))
		}
		fr.cur = frame{kind: fr.hdr[5], id: binary.BigEndian.Uint64(fr.hdr[6:14]), body: fr.buf[:body]}
		fr.inBody, fr.bn = true, 0
	}
	for fr.bn < len(fr.cur.body) {
		n, err := fr.r.Read(fr.cur.body[fr.bn:])
		fr.bn += n
		if fr.bn == len(fr.cur.body) {
			break
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return frame{}, err
		}
	}
	f := fr.cur
	fr.hn, fr.inBody, fr.cur = 0, false, frame{}
	return f, nil
}

// appendFrame appends a frame with body to dst.
// appendFrameWith appends a frame whose body body appends; it returns
// dst unchanged with ok false if the frame would pass max bytes.
func appendFrameWith(dst []byte, kind byte, id uint64, max int, body func([]byte) []byte) (out []byte, ok bool) {
	start := len(dst)
	dst = appendFrame(dst, kind, id, nil)
	dst = body(dst)
	n := len(dst) - start
	if n > max {
		return dst[:start], false
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n-4))
	return dst, true
}

func appendFrame(dst []byte, kind byte, id uint64, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(frameHdr-4+len(body)))
	dst = append(dst, protoVersion, kind)
	dst = binary.BigEndian.AppendUint64(dst, id)
	return append(dst, body...)
}
