package shm

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
)

// Pin keeps the segment mapped until Unpin: Close waits for it. It fails
// with ErrClosed once Close has begun. Packages that build blocking objects
// on a segment (sem, ringbuf) pin it around their slow paths and sleep
// with Sleep, so that Close wakes them instead of unmapping under them.
// Pins must not nest.
func (s *Segment) Pin() error {
	s.closeMu.RLock()
	if s.closed || s.closing.Load() {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Unpin releases a Pin.
func (s *Segment) Unpin() { s.closeMu.RUnlock() }

// Sleep is a futex wait on word (which must lie in the segment) while it
// holds val, bounded by ctx and limit (zero: none). The caller holds a Pin.
// It returns nil on a wakeup, which may be spurious; ctx's error; a
// timeout error at limit (it matches futex.ErrTimeout); or ErrClosed when
// Close begins, which wakes it.
func (s *Segment) Sleep(ctx context.Context, word *atomic.Uint32, val uint32, limit time.Time) error {
	s.sleepMu.Lock()
	s.sleeping[word]++
	s.sleepMu.Unlock()
	defer func() {
		s.sleepMu.Lock()
		if s.sleeping[word]--; s.sleeping[word] == 0 {
			delete(s.sleeping, word)
		}
		s.sleepMu.Unlock()
	}()
	// Close sets closing before it wakes the registered words; checking
	// after registering means we either see it or are registered in time
	// to be woken (Close keeps waking until every pin is gone).
	if s.closing.Load() {
		return ErrClosed
	}
	err := futex.WaitContext(ctx, word, val, limit)
	if s.closing.Load() {
		return ErrClosed
	}
	return err
}

// ErrTimeout is the error Sleep returns at its limit.
var ErrTimeout = futex.ErrTimeout

func (s *Segment) wakeSleepers() {
	s.sleepMu.Lock()
	for w := range s.sleeping {
		futex.Wake(w, futex.All)
	}
	s.sleepMu.Unlock()
}

// Closing reports whether Close has begun.
func (s *Segment) Closing() bool { return s.closing.Load() }
