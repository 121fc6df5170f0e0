package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/internal/sysx"
)

// List returns the names of the segments in Dir(), sorted. Files without
// the FilePrefix are not shmkit's and are never listed.
func List() ([]string, error) {
	ents, err := os.ReadDir(Dir())
	if err != nil {
		return nil, fmt.Errorf("shm: list %s: %w", Dir(), err)
	}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), FilePrefix)
		if ok && ValidName(n) == nil {
			names = append(names, n)
		}
	}
	return names, nil
}

// Report describes a segment as seen from outside, without attaching:
// Inspect neither maps it nor registers as a participant.
type Report struct {
	Info
	Objects      []Object
	Participants []Participant // every slot ever registered; Alive from the kernel
	Live, Dead   int
}

// Stale reports whether every participant that ever registered is dead
// (a segment nobody ever attached to is stale too).
func (r *Report) Stale() bool { return r.Live == 0 }

// Inspect reads the named segment's header, object table and participant
// table, and asks the kernel which participants are alive. It fails like
// Open on foreign, corrupt or incompatible files.
func Inspect(name string) (*Report, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if !sysx.Supported {
		return nil, ErrUnsupported
	}
	f, err := os.OpenFile(Path(name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, openErr(err, Path(name))
	}
	defer f.Close()
	return inspect(f, name)
}

func inspect(f *os.File, name string) (*Report, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shm: stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errorf(ErrPermission, "%s is not a regular file", f.Name())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, errorf(ErrPermission, "%s is owned by uid %d", f.Name(), st.Uid)
	}
	var page [HeaderSize]byte
	if _, err := f.ReadAt(page[:], 0); err != nil {
		return nil, wrapErr(ErrCorrupt, err, "read header")
	}
	h, err := decodeHeader(page[:], fi.Size())
	if err != nil {
		return nil, err
	}
	// Read the tables with pread: the same bounds the header promised.
	tables := make([]byte, h.dataOff()-HeaderSize)
	if _, err := f.ReadAt(tables, HeaderSize); err != nil {
		return nil, wrapErr(ErrCorrupt, err, "read tables")
	}
	// Reuse the mapped-segment decoders on a private copy.
	mem := make([]byte, h.dataOff())
	copy(mem, page[:])
	copy(mem[HeaderSize:], tables)
	s := &Segment{name: name, path: Path(name), hdr: h, mem: mem, slot: -1}
	if name == "" {
		s.path = ""
	}
	r := &Report{Info: s.Info()}
	n := binary.LittleEndian.Uint32(page[offObjCount:])
	if n > h.tableCap {
		return nil, errorf(ErrCorrupt, "object count %d exceeds table of %d", n, h.tableCap)
	}
	for i := 0; i < int(n); i++ {
		o, err := s.entry(i) // bounds come from the validated header
		if err != nil {
			return nil, err
		}
		r.Objects = append(r.Objects, o)
	}
	for i := 0; i < int(h.partCap); i++ {
		off := s.slotOff(i, 0)
		gen := binary.LittleEndian.Uint32(mem[off+slotGen:])
		if gen == 0 {
			continue
		}
		held, err := sysx.ByteLocked(f, lockBase+1+int64(i))
		if err != nil {
			return nil, err
		}
		p := Participant{
			Slot:       i,
			Token:      makeToken(i, gen),
			Pid:        int(binary.LittleEndian.Uint32(mem[off+slotPid:])),
			StartTime:  binary.LittleEndian.Uint64(mem[off+slotStart:]),
			Registered: time.Unix(0, int64(binary.LittleEndian.Uint64(mem[off+slotSince:]))),
			Alive:      held,
		}
		if held {
			r.Live++
		} else {
			r.Dead++
		}
		r.Participants = append(r.Participants, p)
	}
	return r, nil
}

// ErrNotStale: RemoveStale found a live participant.
var ErrNotStale = errors.New("shm: segment has a live participant")

// RemoveStale removes the named segment if every participant is dead, as
// the kernel proves (a stopped process is alive). It holds the segment's gc
// lock exclusively while it decides and unlinks, so a process attaching at
// that moment either is seen alive or finds the name gone (Open returns
// ErrNotExist), never a segment nobody else can find. It returns
// ErrNotStale if a participant lives, or ErrBusy if someone is attaching.
func RemoveStale(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if !sysx.Supported {
		return ErrUnsupported
	}
	f, err := os.OpenFile(Path(name), os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return openErr(err, Path(name))
	}
	defer f.Close()
	ok, err := sysx.LockByte(f, lockGC)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(ErrBusy, "%s: a process is attaching", name)
	}
	r, err := inspect(f, name)
	if err != nil {
		return err
	}
	if !r.Stale() {
		return errorf(ErrNotStale, "%s: %d live participants", name, r.Live)
	}
	if same, err := samePath(f, Path(name)); err != nil || !same {
		return errorf(ErrNotExist, "%s changed while inspecting", name)
	}
	if err := os.Remove(Path(name)); err != nil {
		return openErr(err, Path(name))
	}
	return nil
}

// samePath reports whether path still names the file f is open on.
func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}
