package shm

import (
	"errors"
	"fmt"
	"io/fs"
)

// Errors returned when creating or opening a segment. Each is a sentinel for
// errors.Is; where an fs error has the same meaning the sentinel matches it
// too (errors.Is(err, fs.ErrExist) holds for ErrExist).
var (
	// ErrInvalidName: the name is empty, too long, ".", "..", starts with
	// a dot, or holds a byte outside [A-Za-z0-9._-] (so never a '/').
	ErrInvalidName = errors.New("shm: invalid segment name")
	// ErrExist: Create found the name taken.
	ErrExist = fmt.Errorf("shm: segment exists: %w", fs.ErrExist)
	// ErrNotExist: Open found no segment by that name.
	ErrNotExist = fmt.Errorf("shm: segment does not exist: %w", fs.ErrNotExist)
	// ErrSymlink: the name is a symbolic link; segments are never opened
	// through one.
	ErrSymlink = errors.New("shm: segment name is a symbolic link")
	// ErrPermission: the file is not a regular file owned by this user, or
	// the system refused access.
	ErrPermission = fmt.Errorf("shm: segment not accessible: %w", fs.ErrPermission)
	// ErrCorrupt: the file is not a well-formed shmkit segment (bad magic,
	// bad checksum, truncated, sizes or offsets out of bounds).
	ErrCorrupt = errors.New("shm: segment corrupt")
	// ErrIncompatible: a well-formed segment of another layout version or
	// kind than the caller expects.
	ErrIncompatible = errors.New("shm: segment incompatible")
	// ErrNoSpace: the shared-memory file system could not reserve the
	// segment's size (it wraps ENOSPC).
	ErrNoSpace = errors.New("shm: no space for segment")
	// ErrTooLarge: the requested size exceeds MaxSize or is not positive.
	ErrTooLarge = errors.New("shm: invalid segment size")
	// ErrClosed: the segment handle was closed.
	ErrClosed = errors.New("shm: segment closed")
	// ErrUnsupported: the system lacks a facility shmkit needs (it is
	// errors.ErrUnsupported).
	ErrUnsupported = errors.ErrUnsupported
)

// Errors from the object and participant tables.
var (
	// ErrObjectExist: Alloc found an object by that name.
	ErrObjectExist = errors.New("shm: object exists")
	// ErrNoObject: Lookup found no object by that name.
	ErrNoObject = errors.New("shm: no such object")
	// ErrKindMismatch: the object exists with another kind or element type;
	// it also matches ErrIncompatible.
	ErrKindMismatch = fmt.Errorf("shm: object kind mismatch: %w", ErrIncompatible)
	// ErrFull: the segment has no room for the object, or its object table
	// is full.
	ErrFull = errors.New("shm: segment full")
	// ErrTooManyParticipants: every participant slot is held by a live
	// process.
	ErrTooManyParticipants = errors.New("shm: participant table full")
	// ErrIndex: an index outside an Array.
	ErrIndex = errors.New("shm: index out of range")
	// ErrType: a Value or Array element type that cannot live in shared
	// memory (it holds pointers) or has no atomic form.
	ErrType = errors.New("shm: type not allowed in shared memory")
	// ErrBusy: the segment's allocation lock stayed held for longer than
	// AllocTimeout (its holder is stopped).
	ErrBusy = errors.New("shm: segment allocation lock busy")
)
