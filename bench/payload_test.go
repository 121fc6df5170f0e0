package bench

import (
	"strings"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	for _, size := range []int{8, 9, 15, 16, 17, 64, 4096, 65537} {
		tab := newCRCTable(size)
		g := newGen(size, 3, tab)
		v := newVerifier(size, false) // producer 3 of several
		// Past 256 messages: every value of the varied byte.
		for i := range 600 {
			f := g.next()
			if len(f) != headroom+size {
				t.Fatalf("size %d: frame of %d bytes", size, len(f))
			}
			seq, err := v.check(f[headroom:])
			if err != nil {
				t.Fatalf("size %d, message %d: %v", size, i, err)
			}
			if seq>>prodShift != 3 || seq&counterMax != uint64(i) {
				t.Fatalf("size %d: sequence %#x for message %d of producer 3", size, seq, i)
			}
		}
		seq, err := v.check(g.marker(7)[headroom:])
		if err != nil || seq&markerBit == 0 || checkMarker(seq, 7) != nil || checkMarker(seq, 6) == nil {
			t.Fatalf("size %d: marker %#x, %v", size, seq, err)
		}
	}
}

// A message must differ from the previous one: the sender writes each.
func TestPayloadVaries(t *testing.T) {
	t.Parallel()
	for _, size := range []int{8, 17, 4096} {
		g := newGen(size, 0, newCRCTable(size))
		a := string(g.next())
		b := string(g.next())
		if a == b {
			t.Fatalf("size %d: two messages alike", size)
		}
	}
}

func TestPayloadCorruption(t *testing.T) {
	t.Parallel()
	for _, size := range []int{8, 12, 16, 64, 4096} {
		for _, off := range []int{0, 5, 8, 11, 12, 15, 16, 40, size - 1} {
			if off >= size {
				continue
			}
			g := newGen(size, 0, newCRCTable(size))
			m := g.next()[headroom:]
			m[off] ^= 0x10
			if _, err := newVerifier(size, true).check(m); err == nil {
				t.Errorf("size %d: corruption at byte %d not detected", size, off)
			}
		}
		g := newGen(size, 0, newCRCTable(size))
		if _, err := newVerifier(size, true).check(g.next()[headroom : headroom+size-1]); err == nil {
			t.Errorf("size %d: short message not detected", size)
		}
	}
}

func TestPayloadOrder(t *testing.T) {
	t.Parallel()
	const size = 64
	g := newGen(size, 0, newCRCTable(size))
	msgs := make([][]byte, 4)
	for i := range msgs {
		msgs[i] = append([]byte(nil), g.next()[headroom:]...)
	}
	check := func(ordered bool, order ...int) error {
		v := newVerifier(size, ordered)
		for _, i := range order {
			if _, err := v.check(msgs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := check(true, 0, 1, 2, 3); err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]int{{0, 2}, {0, 1, 1}, {1, 0}} {
		if err := check(true, order...); err == nil || !strings.Contains(err.Error(), "lost, repeated or reordered") {
			t.Errorf("ordered %v: %v", order, err)
		}
	}
	// Unordered (several producers or consumers): gaps are fine (another
	// consumer took them), going back is not.
	if err := check(false, 0, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := check(false, 0, 2, 1); err == nil {
		t.Error("unordered: going back not detected")
	}
	// A single-producer cell only takes producer 0.
	other := newGen(size, 1, newCRCTable(size)).next()[headroom:]
	if _, err := newVerifier(size, true).check(other); err == nil {
		t.Error("ordered: message of producer 1 accepted")
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"64": 64, "8B": 8, "4K": 4096, "4KiB": 4096, "64k": 65536, "1M": 1 << 20, "1MiB": 1 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
		if n, _ := ParseSize(FormatSize(want)); n != want {
			t.Errorf("FormatSize(%d) = %q does not parse back", want, FormatSize(want))
		}
	}
	for _, in := range []string{"", "0", "4", "x", "-8", "1G", "2000000M"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if pc, err := ParsePC("4x2"); err != nil || pc != (PC{4, 2}) {
		t.Errorf("ParsePC(4x2) = %v, %v", pc, err)
	}
	for _, in := range []string{"4", "0x1", "x", "1x0", "100x1"} {
		if _, err := ParsePC(in); err == nil {
			t.Errorf("ParsePC(%q) accepted", in)
		}
	}
}
