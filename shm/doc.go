// Package shm creates, opens and maps shared-memory segments, and places
// typed objects in them: Value (an atomic number, Python's
// multiprocessing.Value) and Array (Python's multiprocessing.Array with
// lock=True). The sem and ringbuf packages build on it.
//
// # Segments
//
// A named segment is a file "shmkit.NAME" in /dev/shm (or $SHMKIT_DIR).
// Create builds it unnamed (O_TMPFILE), reserves its whole size with
// fallocate, writes the header, and only then links the name into place,
// failing if it exists: exclusive like O_CREAT|O_EXCL, and no process can
// ever open a half-written segment. Mode is 0600 unless WithMode says
// otherwise. Open refuses symlinks (O_NOFOLLOW), files of another owner,
// and anything whose header does not validate.
//
// An anonymous segment (CreateAnonymous) is a memfd, sealed against
// shrinking and growing so that no holder can make another's mapping fault
// (SIGBUS). Pass it to a child with exec.Cmd.ExtraFiles and attach there
// with OpenFile, which reopens it through /proc/self/fd so the child gets an
// open file description (and so a participant lock) of its own.
//
// Because the size is reserved at creation, a full /dev/shm (64 MiB in a
// default container) is a clean ErrNoSpace from Create instead of a SIGBUS
// on first touch.
//
// # Layout
//
// Every segment starts with a header on its own 4 KiB page: magic, layout
// version, kind, total size, table sizes, creator pid and uid, creation
// time, and an FNV-64a checksum of those fields. Open reads it with pread
// before mapping anything and copies it into process memory, so later
// writes by a peer cannot change the bounds in use. Then come the object
// table (name → kind, aux, offset, size; entries are published by one
// atomic store of the count after the object is initialized) and the
// participant table. Objects are 64-byte aligned, so each starts on its own
// cache line. All fields are little-endian at fixed offsets, the same on
// amd64 and arm64.
//
// # Participants and liveness
//
// Each attachment registers in the participant table: it takes an
// open-file-description lock (F_OFD_SETLK) on its slot's byte of the file,
// then records its pid, start time and a generation number. The kernel
// drops the lock when the process dies, so Alive(token) is proof, not a
// guess from timers or pids: a stopped or slow process keeps its lock and is
// alive; a pid reused by another process does not inherit the lock. The
// sem package uses this to recover locks from dead holders.
//
// # Errors
//
// Every failure is a sentinel usable with errors.Is: ErrCorrupt (bad magic,
// checksum, sizes, truncation), ErrIncompatible (other layout version or
// kind), ErrExist, ErrNotExist, ErrSymlink, ErrPermission, ErrInvalidName,
// ErrNoSpace, ErrFull, ErrNoObject, ErrKindMismatch. Nothing read from a
// segment is used before it is bounds-checked; a malformed file yields an
// error, never a panic.
//
// # Caveats
//
//   - Linux only; elsewhere every constructor returns ErrUnsupported.
//   - Never store Go pointers (or strings, slices, maps) in a segment:
//     another process cannot follow them. Array rejects such types.
//   - A named segment's file can still be truncated by a process of the
//     same user. ringbuf's calls on a named queue turn the fault that
//     follows into ErrCorrupt; sem objects, Value and Array on a named
//     segment do not, and their process dies of SIGBUS. Anonymous segments
//     are sealed against truncation: put objects there when peers are not
//     trusted to leave the file alone.
//   - Closing a Segment unmaps it: objects taken from it must not be used
//     afterwards.
package shm
