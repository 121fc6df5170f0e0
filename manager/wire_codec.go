package manager

// A hand-written codec for request and response: the same bytes the CBOR
// library makes of them (arrays in field order, shortest heads, nil as
// null; TestWireCodecMatchesLibrary checks it), without reflection, which
// was most of a call's CPU on both sides. The decoder takes bytes from
// the peer: every head is bounds-checked against what is left, lengths
// are capped, indefinite lengths and tags are refused, and the body must
// be consumed exactly. User values (Val, Old, Vals) stay opaque CBOR made
// and read by the library (encode, decode).

import (
	"errors"
	"unicode/utf8"
)

const (
	mUint   = 0 << 5
	mNeg    = 1 << 5
	mBytes  = 2 << 5
	mText   = 3 << 5
	mArray  = 4 << 5
	cFalse  = 0xf4
	cTrue   = 0xf5
	cNull   = 0xf6
	reqLen  = 9 // request fields on the wire
	respLen = 7 // response fields on the wire
	// maxElems bounds an array's elements, as decMode does.
	maxElems = 1 << 20
)

var errWire = errors.New("malformed CBOR body")

func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= 0xff:
		return append(b, major|24, byte(n))
	case n <= 0xffff:
		return append(b, major|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, major|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, major|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendHead(b, mUint, uint64(v))
	}
	return appendHead(b, mNeg, uint64(-1-v))
}

func appendText(b []byte, s string) []byte { return append(appendHead(b, mText, uint64(len(s))), s...) }

func appendBytes(b []byte, p []byte) []byte {
	if p == nil {
		return append(b, cNull)
	}
	return append(appendHead(b, mBytes, uint64(len(p))), p...)
}

// appendList appends l as an array of elem's encodings (nil: null).
func appendList[T any](b []byte, l []T, elem func([]byte, T) []byte) []byte {
	if l == nil {
		return append(b, cNull)
	}
	b = appendHead(b, mArray, uint64(len(l)))
	for _, x := range l {
		b = elem(b, x)
	}
	return b
}

func appendRequest(b []byte, rq *request) []byte {
	b = appendHead(b, mArray, reqLen)
	b = appendHead(b, mUint, uint64(rq.Op))
	b = appendHead(b, mUint, uint64(rq.Kind))
	b = appendText(b, rq.Obj)
	b = appendText(b, rq.Key)
	b = appendBytes(b, rq.Val)
	b = appendBytes(b, rq.Old)
	b = appendInt(b, rq.N)
	b = appendList(b, rq.Vals, appendBytes)
	return appendList(b, rq.Keys, appendText)
}

func appendResponse(b []byte, rs *response) []byte {
	b = appendHead(b, mArray, respLen)
	b = appendHead(b, mUint, uint64(rs.Code))
	b = appendText(b, rs.Msg)
	b = appendBytes(b, rs.Val)
	b = appendInt(b, rs.N)
	if rs.OK {
		b = append(b, cTrue)
	} else {
		b = append(b, cFalse)
	}
	b = appendList(b, rs.Vals, appendBytes)
	return appendList(b, rs.Keys, appendText)
}

// wireDec reads one body; the first error sticks and later reads return
// zero values.
type wireDec struct {
	b   []byte
	err error
}

func (d *wireDec) fail() { d.err, d.b = errWire, nil }

// head reads a head of the given major type. null reports a null in its
// place (allowed where the caller says so).
func (d *wireDec) head(major byte, nullOK bool) (n uint64, null bool) {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0, false
	}
	c := d.b[0]
	if c == cNull && nullOK {
		d.b = d.b[1:]
		return 0, true
	}
	if c&0xe0 != major {
		d.fail()
		return 0, false
	}
	info := c & 0x1f
	switch {
	case info < 24:
		d.b = d.b[1:]
		return uint64(info), false
	case info <= 27:
		w := 1 << (info - 24) // 1, 2, 4, 8 bytes
		if len(d.b) < 1+w {
			d.fail()
			return 0, false
		}
		for _, x := range d.b[1 : 1+w] {
			n = n<<8 | uint64(x)
		}
		d.b = d.b[1+w:]
		return n, false
	}
	d.fail() // 28-30 reserved, 31 indefinite length: refused
	return 0, false
}

func (d *wireDec) u8() uint8 {
	n, _ := d.head(mUint, false)
	if n > 0xff {
		d.fail()
	}
	return uint8(n)
}

func (d *wireDec) int() int64 {
	if d.err == nil && len(d.b) > 0 && d.b[0]&0xe0 == mNeg {
		n, _ := d.head(mNeg, false)
		if n > 1<<63-1 {
			d.fail()
			return 0
		}
		return -1 - int64(n)
	}
	n, _ := d.head(mUint, false)
	if n > 1<<63-1 {
		d.fail()
		return 0
	}
	return int64(n)
}

// raw returns the next n bytes, bounds-checked.
func (d *wireDec) raw(n uint64) []byte {
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *wireDec) text() string {
	n, _ := d.head(mText, false)
	p := d.raw(n)
	if !utf8.Valid(p) {
		d.fail()
		return ""
	}
	return string(p)
}

// bytes copies a byte string out (the frame buffer is reused); null is nil.
func (d *wireDec) bytes() []byte {
	n, null := d.head(mBytes, true)
	if null {
		return nil
	}
	p := d.raw(n)
	if d.err != nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

// count reads an array head whose elements take at least one byte each.
func (d *wireDec) count() (int, bool) {
	n, null := d.head(mArray, true)
	if null || d.err != nil {
		return 0, false
	}
	if n > maxElems || n > uint64(len(d.b)) {
		d.fail()
		return 0, false
	}
	return int(n), true
}

func (d *wireDec) bytesList() [][]byte {
	n, ok := d.count()
	if !ok {
		return nil
	}
	l := make([][]byte, n)
	for i := range l {
		l[i] = d.bytes()
	}
	return l
}

func (d *wireDec) textList() []string {
	n, ok := d.count()
	if !ok {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = d.text()
	}
	return l
}

func (d *wireDec) bool() bool {
	if d.err != nil || len(d.b) == 0 || (d.b[0] != cTrue && d.b[0] != cFalse) {
		d.fail()
		return false
	}
	v := d.b[0] == cTrue
	d.b = d.b[1:]
	return v
}

// end checks the body was one whole value.
func (d *wireDec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return d.err
}

func decodeRequest(b []byte, rq *request) error { return decodeRequestObj(b, rq, nil) }

// decodeRequestObj decodes as decodeRequest does; with lastObj, an object
// name equal to *lastObj reuses that string (a connection mostly names
// the same few objects: no allocation per call), and a new one is kept.
func decodeRequestObj(b []byte, rq *request, lastObj *string) error {
	d := wireDec{b: b}
	if n, _ := d.head(mArray, false); n != reqLen {
		d.fail()
	}
	*rq = request{Op: d.u8(), Kind: d.u8()}
	if lastObj != nil {
		rq.Obj = d.textReuse(lastObj)
	} else {
		rq.Obj = d.text()
	}
	rq.Key, rq.Val, rq.Old = d.text(), d.bytes(), d.bytes()
	rq.N, rq.Vals, rq.Keys = d.int(), d.bytesList(), d.textList()
	return d.end()
}

// textReuse reads a text string, returning *last if it is the same.
func (d *wireDec) textReuse(last *string) string {
	n, _ := d.head(mText, false)
	p := d.raw(n)
	if d.err != nil {
		return ""
	}
	if string(p) == *last { // compared without a conversion
		return *last
	}
	if !utf8.Valid(p) {
		d.fail()
		return ""
	}
	*last = string(p)
	return *last
}

func decodeResponse(b []byte, rs *response) error {
	d := wireDec{b: b}
	if n, _ := d.head(mArray, false); n != respLen {
		d.fail()
	}
	*rs = response{
		Code: d.u8(), Msg: d.text(), Val: d.bytes(), N: d.int(), OK: d.bool(),
		Vals: d.bytesList(), Keys: d.textList(),
	}
	return d.end()
}
