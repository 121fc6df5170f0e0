// Segments: create, open, attach, close. Just over 500 lines: creation
// and attachment share the validation steps and read best in one place.

package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/edsrzf/mmap-go"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/sysx"
)

// DirEnv names the environment variable that overrides the directory of
// named segments (default /dev/shm). Tests point it at a temporary directory.
const DirEnv = "SHMKIT_DIR"

// FilePrefix starts the file name of every named segment, so that tools
// (shmkit ls, shmkit gc) never touch files of other programs.
const FilePrefix = "shmkit."

// Dir returns the directory that holds named segments.
func Dir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	return "/dev/shm"
}

// AllocTimeout bounds how long Alloc waits for another process's
// allocation lock (held for microseconds unless its holder is stopped).
const AllocTimeout = 5 * time.Second

type wrapped struct {
	sentinel error
	msg      string
	cause    error
}

func (e *wrapped) Error() string {
	if e.cause != nil {
		return e.sentinel.Error() + ": " + e.msg + ": " + e.cause.Error()
	}
	return e.sentinel.Error() + ": " + e.msg
}

func (e *wrapped) Unwrap() []error {
	if e.cause != nil {
		return []error{e.sentinel, e.cause}
	}
	return []error{e.sentinel}
}

func errorf(sentinel error, format string, args ...any) error {
	return &wrapped{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}

func wrapErr(sentinel error, cause error, format string, args ...any) error {
	return &wrapped{sentinel: sentinel, msg: fmt.Sprintf(format, args...), cause: cause}
}

// ValidName reports whether name can name a segment: 1..MaxNameLen bytes
// of [A-Za-z0-9._-], not starting with '.'.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen || name[0] == '.' {
		return errorf(ErrInvalidName, "%q", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errorf(ErrInvalidName, "%q: byte %q not allowed", name, c)
		}
	}
	return nil
}

// Path returns the file path of the named segment.
func Path(name string) string { return filepath.Join(Dir(), FilePrefix+name) }

// Option configures Create and CreateAnonymous.
type Option func(*config)

type config struct {
	mode  os.FileMode
	kind  Kind
	objs  uint32
	slots uint32
	init  func(*Segment) error
}

// WithInit runs f on the new segment before its name is published (or, for
// an anonymous segment, before it is returned): objects f allocates are
// there for the first process that opens the name. If f fails, Create
// fails and nothing is left behind.
func WithInit(f func(*Segment) error) Option { return func(c *config) { c.init = f } }

// WithMode sets the permission bits of a named segment (default 0600).
// Open still refuses a segment owned by another user.
func WithMode(m os.FileMode) Option { return func(c *config) { c.mode = m.Perm() } }

// WithKind records what the segment holds (default KindGeneric); OpenKind
// checks it.
func WithKind(k Kind) Option { return func(c *config) { c.kind = k } }

// WithObjects sets the capacity of the object table (default 64).
func WithObjects(n int) Option {
	return func(c *config) { c.objs = uint32(min(max(n, 1), MaxObjects)) }
}

// WithParticipants sets how many processes may be attached at once
// (default 128, at most MaxSlots).
func WithParticipants(n int) Option {
	return func(c *config) { c.slots = uint32(min(max(n, 1), MaxSlots)) }
}

// Segment is one process's attachment to a shared-memory segment. Its
// methods are safe for concurrent use. Close it when done: nothing unmaps
// a forgotten Segment (slices into the mapping are invisible to the
// garbage collector, so unmapping behind them would crash), and its
// participant slot stays held until the process exits.
type Segment struct {
	name string
	path string
	f    *os.File
	mem  mmap.MMap // exactly the slice mmap returned; Unmap takes it whole
	hdr  header

	slot int   // participant slot held by this handle
	self Token // this handle's participant token

	allocMu sync.Mutex // OFD locks do not exclude goroutines sharing one description

	// Lifetime. Every call that reads the mapping outside a fast path holds
	// closeMu for reading (Pin); Close sets closing, interrupts the event
	// counts that pinned goroutines sleep on, and takes closeMu for writing
	// only once they have all left, so nothing is unmapped under them.
	closeMu sync.RWMutex
	closed  bool // under closeMu
	closing atomic.Bool
	ecMu    sync.Mutex
	ecs     map[uintptr]*futex.EventCount // by offset; see EventCount
}

// Create creates the named segment with room for size bytes of objects.
// It fails with ErrExist if the name is taken.
//
// The file is built unnamed (O_TMPFILE) and linked into place only once its
// header is complete, so no process ever opens a half-written segment; the
// link fails if the name exists, which makes Create exclusive like O_EXCL.
// Where O_TMPFILE is missing a temporary name is created with
// O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC and linked the same way.
func Create(name string, size int64, opts ...Option) (*Segment, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if !sysx.Supported {
		return nil, ErrUnsupported
	}
	c, total, err := newConfig(size, opts)
	if err != nil {
		return nil, err
	}
	path := Path(name)
	f, tmpName, err := createUnnamed(Dir(), c.mode)
	if err != nil {
		return nil, err
	}
	if tmpName != "" {
		defer os.Remove(tmpName)
	}
	if err := f.Chmod(c.mode); err != nil {
		f.Close()
		return nil, wrapErr(ErrPermission, err, "chmod")
	}
	if err := initFile(f, c, total); err != nil {
		f.Close()
		return nil, err
	}
	// Attach before the name exists (so no path to check), run init, then
	// publish the name.
	s, err := attach(f, name, "", 0)
	if err != nil {
		return nil, err
	}
	if c.init != nil {
		if err := c.init(s); err != nil {
			s.Close()
			return nil, err
		}
	}
	if tmpName != "" {
		err = os.Link(tmpName, path)
	} else {
		err = sysx.LinkTmpfile(s.f, path)
	}
	if err != nil {
		s.Close()
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.EEXIST) {
			return nil, errorf(ErrExist, "%q", name)
		}
		return nil, fmt.Errorf("shm: publish %s: %w", path, err)
	}
	s.path = path
	return s, nil
}

func createUnnamed(dir string, mode os.FileMode) (*os.File, string, error) {
	f, err := sysx.OpenTmpfile(dir, uint32(mode))
	if err == nil {
		return f, "", nil
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		return nil, "", openErr(err, dir)
	}
	for i := 0; ; i++ {
		tmp := filepath.Join(dir, ".shmkit-tmp-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, mode)
		if err == nil {
			return f, tmp, nil
		}
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return nil, "", openErr(err, tmp)
		}
	}
}

// CreateAnonymous creates a segment backed by a memfd: it has no name, is
// freed when the last process closes it, and reaches a child process as an
// inherited file (File, then OpenFile in the child). Its size is sealed.
func CreateAnonymous(size int64, opts ...Option) (*Segment, error) {
	if !sysx.Supported {
		return nil, ErrUnsupported
	}
	c, total, err := newConfig(size, opts)
	if err != nil {
		return nil, err
	}
	f, err := sysx.Memfd("shmkit")
	if err != nil {
		return nil, err
	}
	if err := initFile(f, c, total); err != nil {
		f.Close()
		return nil, err
	}
	if err := sysx.SealSize(f); err != nil {
		f.Close()
		return nil, err
	}
	s, err := attach(f, "", "", 0)
	if err != nil {
		return nil, err
	}
	if c.init != nil {
		if err := c.init(s); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func newConfig(size int64, opts []Option) (config, int64, error) {
	c := config{mode: 0o600, kind: KindGeneric, objs: 64, slots: 128}
	for _, o := range opts {
		o(&c)
	}
	if size <= 0 || size > MaxSize {
		return c, 0, errorf(ErrTooLarge, "%d bytes (allowed 1..%d)", size, int64(MaxSize))
	}
	h := header{tableCap: c.objs, partCap: c.slots}
	return c, int64(h.dataOff() + alignUp(uint64(size), HeaderSize)), nil
}

// initFile reserves the file's space and writes its header.
func initFile(f *os.File, c config, total int64) error {
	if err := sysx.Reserve(f, total); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return wrapErr(ErrNoSpace, err, "reserve %d bytes", total)
		}
		return fmt.Errorf("shm: %w", err)
	}
	start, _ := sysx.SelfStartTime()
	h := header{
		version: Version, kind: c.kind, size: uint64(total), tableCap: c.objs, partCap: c.slots,
		creatorPid: uint32(os.Getpid()), creatorUid: uint32(os.Geteuid()),
		created: time.Now().UnixNano(), creatorStart: start,
	}
	var page [HeaderSize]byte
	encodeHeader(page[:], &h)
	if _, err := f.WriteAt(page[:], 0); err != nil {
		return fmt.Errorf("shm: write header: %w", err)
	}
	return nil
}

// Open attaches to the named segment. It refuses a symlink (ErrSymlink), a
// file of another owner (ErrPermission) and a file that fails header
// validation (ErrCorrupt, ErrIncompatible).
func Open(name string) (*Segment, error) { return OpenKind(name, 0) }

// OpenKind is Open that also requires the segment's kind (0 accepts any).
func OpenKind(name string, kind Kind) (*Segment, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if !sysx.Supported {
		return nil, ErrUnsupported
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, openErr(err, path)
	}
	return attach(f, name, path, kind)
}

// OpenFile attaches to a segment passed as an open file, typically one a
// parent handed down with exec.Cmd.ExtraFiles. The file is reopened through
// /proc/self/fd, so this handle gets its own open file description (and its
// own participant lock) rather than sharing the parent's; f itself is left
// open for the caller to close.
func OpenFile(f *os.File) (*Segment, error) {
	if !sysx.Supported {
		return nil, ErrUnsupported
	}
	p := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	g, err := os.OpenFile(p, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, openErr(err, p)
	}
	return attach(g, "", "", 0)
}

func openErr(err error, path string) error {
	switch {
	case errors.Is(err, syscall.ELOOP):
		return wrapErr(ErrSymlink, err, "%s", path)
	case errors.Is(err, fs.ErrNotExist):
		return wrapErr(ErrNotExist, err, "%s", path)
	case errors.Is(err, fs.ErrPermission):
		return wrapErr(ErrPermission, err, "%s", path)
	case errors.Is(err, syscall.ENOSPC):
		return wrapErr(ErrNoSpace, err, "%s", path)
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENXIO):
		// A directory or a socket: like a fifo, which opens and then
		// fails attach's regular-file check.
		return wrapErr(ErrPermission, err, "%s is not a regular file", path)
	}
	return fmt.Errorf("shm: open %s: %w", path, err)
}

// attach validates f, maps it and registers this handle as a participant.
// It takes ownership of f.
func attach(f *os.File, name, path string, kind Kind) (s *Segment, err error) {
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
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
	size := fi.Size()
	if size < HeaderSize {
		return nil, errorf(ErrCorrupt, "file of %d bytes is shorter than a header", size)
	}
	if size > MaxSize*2 {
		return nil, errorf(ErrCorrupt, "file of %d bytes is larger than any segment", size)
	}
	// Validate the header from a read, not the mapping: a file that lies
	// about its size must be refused before it is mapped.
	var page [HeaderSize]byte
	if _, err := f.ReadAt(page[:], 0); err != nil {
		return nil, wrapErr(ErrCorrupt, err, "read header")
	}
	h, err := decodeHeader(page[:], size)
	if err != nil {
		return nil, err
	}
	if kind != 0 && h.kind != kind {
		return nil, errorf(ErrIncompatible, "segment kind %v, want %v", h.kind, kind)
	}
	m, err := mmap.MapRegion(f, int(size), mmap.RDWR, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap %d bytes: %w", size, err)
	}
	s = &Segment{name: name, path: path, f: f, mem: m, hdr: h, slot: -1}
	if err := s.registerGuarded(); err != nil {
		m.Unmap()
		return nil, err
	}
	// No garbage-collection backstop unmaps a forgotten Segment: slices
	// into the mapping (Array.Slice, a queue's Peek) are invisible to the
	// collector, and unmapping under them would crash. Close it.
	return s, nil
}

// registerGuarded registers, turning a memory fault (the file truncated
// since it was checked) into ErrCorrupt.
func (s *Segment) registerGuarded() (err error) {
	defer func(old bool) {
		r := recover()
		debug.SetPanicOnFault(old)
		if r != nil {
			f, ok := r.(interface{ Addr() uintptr })
			if !ok || !s.Contains(f.Addr()) {
				panic(r)
			}
			err = errorf(ErrCorrupt, "memory fault at %#x: the file was truncated", f.Addr())
		}
	}(debug.SetPanicOnFault(true))
	return s.registerNamed()
}

// Close unregisters this process and unmaps the segment. Calls blocked on
// objects of the segment (a Lock, a Get) return ErrClosed, and Close waits
// for them to leave before it unmaps. Other calls must not race with Close,
// and objects must not be used after it. A lock still held through this
// handle counts as abandoned: the next locker gets ErrOwnerDead.
func (s *Segment) Close() error {
	if !s.closing.CompareAndSwap(false, true) {
		return ErrClosed
	}
	// Waiters return ErrClosed and leave; later sleepers fail at once.
	// TryLock, not Lock: a pending writer would block the read locks that
	// blocked calls may still take on their way out.
	s.interruptWaiters()
	for !s.closeMu.TryLock() {
		s.interruptWaiters()
		time.Sleep(50 * time.Microsecond)
	}
	defer s.closeMu.Unlock()
	s.closed = true
	if s.slot >= 0 {
		s.clearPid()
	}
	err := s.mem.Unmap()
	return errors.Join(err, s.f.Close())
}

// clearPid tells readers of the participant table that our slot is free;
// the OFD lock, dropped when the file closes, is what proves it. A named
// segment's file may have been truncated under us: a fault here is
// ignored, so Close still releases the mapping and the file.
func (s *Segment) clearPid() {
	defer func(old bool) {
		r := recover()
		debug.SetPanicOnFault(old)
		if _, fault := r.(interface{ Addr() uintptr }); r != nil && !fault {
			panic(r)
		}
	}(debug.SetPanicOnFault(true))
	s.u32(s.slotOff(s.slot, slotPid)).Store(0)
}

// Unlink removes the segment's name. Attached processes keep working; the
// memory is freed when the last of them closes it. It fails for anonymous
// segments.
func (s *Segment) Unlink() error {
	if s.path == "" {
		return errorf(ErrInvalidName, "anonymous segment has no name")
	}
	if err := os.Remove(s.path); err != nil {
		return openErr(err, s.path)
	}
	return nil
}

// Unlink removes the named segment without opening it.
func Unlink(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := os.Remove(Path(name)); err != nil {
		return openErr(err, Path(name))
	}
	return nil
}

// Name returns the segment's name ("" if anonymous).
func (s *Segment) Name() string { return s.name }

// File returns a new open file of the segment, to hand to a child process
// (exec.Cmd.ExtraFiles); the child attaches with OpenFile. It is a fresh
// open file description, holding none of this handle's participant locks,
// so a child that outlives this process cannot make it look alive. The
// caller closes it.
func (s *Segment) File() (*os.File, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.done()
	p := "/proc/self/fd/" + strconv.Itoa(int(s.f.Fd()))
	f, err := os.OpenFile(p, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, openErr(err, p)
	}
	return f, nil
}

// Info returns what the header says.
func (s *Segment) Info() Info {
	h := &s.hdr
	return Info{
		Name: s.name, Path: s.path, Kind: h.kind, Version: h.version,
		Size: int64(h.size), DataSize: int64(h.size - h.dataOff()),
		CreatorPid: int(h.creatorPid), CreatorUID: int(h.creatorUid),
		Created: time.Unix(0, h.created), Objects: int(h.tableCap), Slots: int(h.partCap),
	}
}

// u32 returns the atomic word at off; off is a constant or was bounds-checked.
func (s *Segment) u32(off uint64) *atomic.Uint32 {
	_ = s.mem[off+3]
	return (*atomic.Uint32)(unsafe.Pointer(&s.mem[off]))
}

func (s *Segment) u64(off uint64) *atomic.Uint64 {
	_ = s.mem[off+7]
	return (*atomic.Uint64)(unsafe.Pointer(&s.mem[off]))
}
