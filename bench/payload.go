package bench

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Message format. Every message is written by its sender and verified by
// its receiver, so a transport is never credited for memory nobody touched
// and one that loses, repeats, reorders or corrupts data fails loudly.
//
// Messages of 16 bytes or more:
//
//	[0:8]   sequence word (little endian): bit 63 marks a phase marker;
//	        bits 40..62 the producer; bits 0..39 its message counter (for a
//	        marker, the phase number)
//	[8:12]  CRC-32C of the body [16:size]
//	[12:16] the low and high halves of the sequence word XORed with seqMix
//	[16:]   the body: a fixed pattern whose last byte the sender varies
//	        per message
//
// The sender writes the header and the varied byte (so a message costs it
// O(1) and nothing is precomputed per message); the CRC of the body is
// CRC(prefix) continued over one byte, from a table of 256 entries built
// once per size. The receiver computes the CRC over the whole body.
//
// Messages of 8 to 15 bytes carry the sequence word and, after it, byte i
// equal to fold(seq)+i, where fold XORs the word's eight bytes. An 8-byte
// message is its sequence word alone: the order checks (and the totals)
// are what verify it.
const (
	// MinSize is the smallest message size the bench sends.
	MinSize = 8
	// MaxSize is the largest.
	MaxSize = 1 << 30

	hdrLen     = 16
	markerBit  = uint64(1) << 63
	prodShift  = 40
	counterMax = uint64(1)<<prodShift - 1
	seqMix     = 0x5eed5eed
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcTable holds the body CRC for each value of the varied last byte, for
// one message size.
type crcTable [256]uint32

func newCRCTable(size int) *crcTable {
	var t crcTable
	if size <= hdrLen {
		return &t // no body: CRC of nothing is 0
	}
	body := make([]byte, size-hdrLen)
	fillBody(body)
	prefix := crc32.Checksum(body[:len(body)-1], castagnoli)
	for v := range t {
		t[v] = crc32.Update(prefix, castagnoli, []byte{byte(v)})
	}
	return &t
}

// fillBody writes the fixed pattern: no zero pages, no constant runs.
func fillBody(b []byte) {
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
}

func varied(seq uint64) byte { return byte(seq) ^ byte(seq>>8) ^ byte(seq>>40) }

// fold XORs the eight bytes of seq.
func fold(seq uint64) byte {
	seq ^= seq >> 32
	seq ^= seq >> 16
	return byte(seq ^ seq>>8)
}

// gen produces one producer's messages into a buffer with headroom bytes
// in front, which framing transports fill with the length.
type gen struct {
	buf  []byte // headroom + size
	size int
	prod uint64
	n    uint64 // next counter
	tab  *crcTable
}

func newGen(size, producer int, tab *crcTable) *gen {
	g := &gen{buf: make([]byte, headroom+size), size: size, prod: uint64(producer), tab: tab}
	if size >= hdrLen {
		fillBody(g.buf[headroom+hdrLen:])
	}
	return g
}

// next writes the next message and returns it with its headroom.
func (g *gen) next() []byte {
	seq := g.prod<<prodShift | g.n&counterMax
	g.n++
	return g.write(seq)
}

// marker returns the end-of-phase marker of this producer.
func (g *gen) marker(phase int) []byte {
	return g.write(markerBit | g.prod<<prodShift | uint64(phase))
}

func (g *gen) write(seq uint64) []byte {
	m := g.buf[headroom:]
	binary.LittleEndian.PutUint64(m, seq)
	if g.size < hdrLen {
		for i := 8; i < g.size; i++ {
			m[i] = fold(seq) + byte(i)
		}
		return g.buf
	}
	var crc uint32
	if g.size > hdrLen {
		v := varied(seq)
		m[g.size-1] = v
		crc = g.tab[v]
	}
	binary.LittleEndian.PutUint32(m[8:], crc)
	binary.LittleEndian.PutUint32(m[12:], uint32(seq)^uint32(seq>>32)^seqMix)
	return g.buf
}

// verifier checks one receiver's messages. In ordered mode (one producer,
// one consumer) each message must come from producer 0 and carry exactly
// the next counter; with several producers or consumers each producer's
// counters must increase, and the runner checks the totals.
type verifier struct {
	size    int
	ordered bool
	last    map[uint64]uint64 // producer -> last counter + 1
}

func newVerifier(size int, ordered bool) *verifier {
	return &verifier{size: size, ordered: ordered, last: make(map[uint64]uint64)}
}

// dataError is a verification failure: the transport delivered wrong
// data. It needs no further explanation.
type dataError struct{ error }

func (e dataError) Unwrap() error { return e.error }

// check verifies m and returns its sequence word.
func (v *verifier) check(m []byte) (uint64, error) {
	seq, err := v.check1(m)
	if err != nil {
		return 0, dataError{err}
	}
	return seq, nil
}

func (v *verifier) check1(m []byte) (uint64, error) {
	seq, err := decode(m, v.size)
	if err != nil {
		return 0, err
	}
	prod, n := seq&^markerBit>>prodShift, seq&counterMax
	if v.ordered && prod != 0 {
		return 0, fmt.Errorf("bench: message %#x from producer %d in a single-producer cell (corrupt sequence)", seq, prod)
	}
	if seq&markerBit != 0 {
		return seq, nil
	}
	want, seen := v.last[prod]
	switch {
	case v.ordered && n != want:
		return 0, fmt.Errorf("bench: message %d of producer %d where %d was due (lost, repeated or reordered)", n, prod, want)
	case !v.ordered && seen && n < want:
		return 0, fmt.Errorf("bench: message %d of producer %d after %d (repeated or reordered)", n, prod, want-1)
	}
	v.last[prod] = n + 1
	return seq, nil
}

// decode checks a message's integrity and returns its sequence word.
func decode(m []byte, size int) (uint64, error) {
	if len(m) != size {
		return 0, fmt.Errorf("bench: message of %d bytes, want %d", len(m), size)
	}
	seq := binary.LittleEndian.Uint64(m)
	if size < hdrLen {
		for i := 8; i < size; i++ {
			if m[i] != fold(seq)+byte(i) {
				return 0, fmt.Errorf("bench: message %#x corrupt at byte %d", seq, i)
			}
		}
		return seq, nil
	}
	if got := binary.LittleEndian.Uint32(m[12:]); got != uint32(seq)^uint32(seq>>32)^seqMix {
		return 0, fmt.Errorf("bench: message header corrupt (sequence %#x, check %#x)", seq, got)
	}
	want := binary.LittleEndian.Uint32(m[8:])
	if got := crc32.Checksum(m[hdrLen:], castagnoli); got != want {
		return 0, fmt.Errorf("bench: message %#x checksum %#08x, want %#08x (corrupt payload)", seq, got, want)
	}
	return seq, nil
}
