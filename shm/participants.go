package shm

import (
	"os"
	"time"

	"github.com/shmkit/shmkit/internal/sysx"
)

// Token names one attachment of one process to a segment: its participant
// slot and the slot's generation at registration. It fits in 29 bits so a
// lock word can hold it beside its flag bits. Zero names nobody.
type Token uint32

const (
	tokenSlotBits = 10
	tokenGenBits  = 19
	tokenSlotMask = 1<<tokenSlotBits - 1
	tokenGenMask  = 1<<tokenGenBits - 1
	// TokenBits is how many low bits of a word a Token uses.
	TokenBits = tokenSlotBits + tokenGenBits
)

func makeToken(slot int, gen uint32) Token {
	return Token((gen&tokenGenMask)<<tokenSlotBits | uint32(slot+1))
}

// Slot returns the participant slot the token names, or -1 for zero.
func (t Token) Slot() int { return int(t&tokenSlotMask) - 1 }

func (t Token) gen() uint32 { return uint32(t) >> tokenSlotBits & tokenGenMask }

func (s *Segment) slotOff(i int, field uint64) uint64 {
	return s.hdr.partOff() + SlotSize*uint64(i) + field
}

// registerNamed registers under the gc lock held shared, and for a named
// segment then checks that the name still leads to this file: gc (which
// takes the gc lock exclusively to decide and unlink) either saw us
// registered, or unlinked first and we report ErrNotExist instead of
// attaching to a segment nobody else can find.
func (s *Segment) registerNamed() error {
	deadline := time.Now().Add(AllocTimeout)
	for {
		ok, err := sysx.RLockByte(s.f, lockGC)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return ErrBusy
		}
		time.Sleep(100 * time.Microsecond)
	}
	defer sysx.UnlockByte(s.f, lockGC)
	if err := s.register(); err != nil {
		return err
	}
	if s.path == "" {
		return nil
	}
	if same, err := samePath(s.f, s.path); err != nil || !same {
		// Our slot lock goes with the file when the caller closes it.
		return errorf(ErrNotExist, "%s was removed while attaching", s.path)
	}
	return nil
}

// register claims a participant slot. A slot is free when no open file
// description holds its lock byte: either nobody took it or its holder died
// (the kernel dropped the lock) or closed. Two registrants racing for one
// slot are ordered by the kernel: only one gets the lock.
func (s *Segment) register() error {
	start, _ := sysx.SelfStartTime()
	// Start the scan at a place given by the pid, so that churn spreads
	// over the slots instead of wearing out slot 0's generation (19 bits:
	// a dead owner's token could match again after 2^19 re-registrations
	// of one slot).
	n := int(s.hdr.partCap)
	first := os.Getpid() % n
	for k := 0; k < n; k++ {
		i := (first + k) % n
		ok, err := sysx.LockByte(s.f, lockBase+1+int64(i))
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		// We hold the lock: the slot is ours until this description is
		// closed. Bump the generation first, so tokens of the slot's
		// previous owner stop matching (they prove that owner dead even
		// while our lock is held), then describe ourselves.
		gen := s.u32(s.slotOff(i, slotGen)).Add(1)
		s.u32(s.slotOff(i, slotPid)).Store(uint32(os.Getpid()))
		s.u64(s.slotOff(i, slotStart)).Store(start)
		s.u64(s.slotOff(i, slotSince)).Store(uint64(time.Now().UnixNano()))
		s.slot = i
		s.self = makeToken(i, gen)
		return nil
	}
	return errorf(ErrTooManyParticipants, "all %d slots held by live processes", s.hdr.partCap)
}

// Self returns this handle's participant token.
func (s *Segment) Self() Token { return s.self }

// Alive reports whether the participant named by t is still attached. The
// answer comes from the kernel: t's slot still has t's generation and some
// open file description holds the slot's lock. A stopped or slow process
// is alive. A token of this handle is alive. A token that names no slot is
// not. If the kernel cannot be asked, Alive errs on the side of alive: it
// never lets a live owner's lock be taken; so does a closed handle.
func (s *Segment) Alive(t Token) bool {
	if t == s.self {
		return true
	}
	// Close unmaps the table and closes the file: hold it off while both
	// are read, since a lock waiter may ask while another goroutine closes.
	// TryRLock, not RLock: Alive may run under a caller's read lock (an
	// Alloc init callback), and a blocking RLock behind a pending Close
	// would deadlock there. Closing or closed answers alive; waiters ask
	// again later.
	if !s.closeMu.TryRLock() {
		return true
	}
	defer s.closeMu.RUnlock()
	if s.closed {
		return true
	}
	slot := t.Slot()
	if slot < 0 || slot >= int(s.hdr.partCap) {
		return false
	}
	// Generation first: a registrant takes the lock before bumping it, so
	// gen matching and lock held can only wrongly say "alive" for the
	// moment of a re-registration, never wrongly "dead".
	if s.u32(s.slotOff(slot, slotGen)).Load()&tokenGenMask != t.gen() {
		return false
	}
	held, err := sysx.ByteLocked(s.f, lockBase+1+int64(slot))
	if err != nil {
		return true
	}
	return held
}

// Participant describes one slot of the participant table.
type Participant struct {
	Slot       int
	Token      Token
	Pid        int
	StartTime  uint64 // clock ticks since boot; with Pid names a process
	Registered time.Time
	Alive      bool // the kernel holds the slot's lock for someone
	Self       bool // this handle
}

// Participants lists every slot that was ever registered, live or dead.
func (s *Segment) Participants() ([]Participant, error) {
	if err := s.use(); err != nil {
		return nil, err
	}
	defer s.done()
	var out []Participant
	for i := 0; i < int(s.hdr.partCap); i++ {
		gen := s.u32(s.slotOff(i, slotGen)).Load()
		if gen == 0 {
			continue
		}
		p := Participant{
			Slot:       i,
			Token:      makeToken(i, gen),
			Pid:        int(s.u32(s.slotOff(i, slotPid)).Load()),
			StartTime:  s.u64(s.slotOff(i, slotStart)).Load(),
			Registered: time.Unix(0, int64(s.u64(s.slotOff(i, slotSince)).Load())),
			Self:       i == s.slot,
		}
		if p.Self {
			p.Alive = true
		} else {
			held, err := sysx.ByteLocked(s.f, lockBase+1+int64(i))
			if err != nil {
				return nil, err
			}
			p.Alive = held
		}
		out = append(out, p)
	}
	return out, nil
}

// Stale reports whether no participant other than this handle is alive:
// the segment is then safe to remove.
func (s *Segment) Stale() (bool, error) {
	ps, err := s.Participants()
	if err != nil {
		return false, err
	}
	for _, p := range ps {
		if p.Alive && !p.Self {
			return false, nil
		}
	}
	return true, nil
}

func (s *Segment) use() error { return s.Pin() }

func (s *Segment) done() { s.Unpin() }

// SlotToken returns the token of whoever holds participant slot i now (or
// held it last), or 0 if the slot was never used or i is out of range.
// With Alive it tells whether the holder of a slot is alive.
func (s *Segment) SlotToken(i int) Token {
	if i < 0 || i >= int(s.hdr.partCap) {
		return 0
	}
	gen := s.u32(s.slotOff(i, slotGen)).Load()
	if gen == 0 {
		return 0
	}
	return makeToken(i, gen)
}
