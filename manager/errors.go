package manager

import "errors"

// Errors. Every error a call returns matches one of these with errors.Is
// (or is the caller's context error); errors raised by the server reach
// the caller as a *RemoteError that matches the sentinel it names.
var (
	// ErrAuth: the handshake failed (wrong key, wrong digest, a forged or
	// replayed reply).
	ErrAuth = errors.New("manager: authentication failed")
	// ErrProtocol: the peer sent a frame that breaks the protocol.
	ErrProtocol = errors.New("manager: protocol violation")
	// ErrClosed: the client or server is closed, or the connection broke.
	ErrClosed = errors.New("manager: closed")
	// ErrNotFound: no such key, or an index out of range.
	ErrNotFound = errors.New("manager: not found")
	// ErrEmpty: TryGet on an empty queue.
	ErrEmpty = errors.New("manager: queue empty")
	// ErrFull: TryPut on a full queue.
	ErrFull = errors.New("manager: queue full")
	// ErrType: the object named exists with another type, or a stored
	// value is not what the operation needs (Add on a non-integer).
	ErrType = errors.New("manager: wrong type")
	// ErrNotOwner: Release of a lock this client does not hold.
	ErrNotOwner = errors.New("manager: lock not held by this client")
	// ErrOwnerDead: the lock was acquired, but its previous holder's
	// connection dropped while it held it: what it guarded may be
	// inconsistent. The lock is held by the caller.
	ErrOwnerDead = errors.New("manager: previous lock holder disconnected")
	// ErrTooLarge: a value or request above the frame limit.
	ErrTooLarge = errors.New("manager: too large")
	// ErrInvalid: a bad argument (a negative count, an unknown operation).
	ErrInvalid = errors.New("manager: invalid argument")
	// ErrBroken: a Barrier was broken (a party left or timed out).
	ErrBroken = errors.New("manager: barrier broken")
)

// codes name the sentinels on the wire (RemoteError.Code).
var codes = []error{nil, ErrNotFound, ErrEmpty, ErrFull, ErrType, ErrNotOwner, ErrOwnerDead, ErrTooLarge, ErrInvalid, ErrBroken, ErrClosed}

func codeOf(err error) uint8 {
	for i, e := range codes {
		if e != nil && errors.Is(err, e) {
			return uint8(i)
		}
	}
	return 0
}

// RemoteError is an error raised by the server for one call. It matches
// the sentinel of its Code with errors.Is.
type RemoteError struct {
	Code uint8  // index of the sentinel, 0 for none
	Msg  string // the server's text
}

func (e *RemoteError) Error() string { return "manager: remote: " + e.Msg }

// Is reports whether target is the sentinel this error carries.
func (e *RemoteError) Is(target error) bool {
	return int(e.Code) < len(codes) && e.Code != 0 && codes[e.Code] == target
}
