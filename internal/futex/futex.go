package futex

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"
)

var (
	// ErrTimeout is returned by Wait when its deadline passes.
	ErrTimeout = errors.New("futex: timeout")
	// ErrFutex wraps an unexpected errno from futex(2).
	ErrFutex = errors.New("futex: syscall failed")
)

// All wakes every sleeper.
const All = math.MaxInt32

// WaitContext is Wait bounded by ctx and by limit (a zero limit means
// none). If ctx ends while the thread sleeps in the kernel, a helper wakes
// every sleeper on addr; the others treat it as a spurious wakeup and sleep
// again. It returns ctx's error if ctx ended, ErrTimeout if limit passed.
//
// WaitContext does not return until the helper is finished, so the caller
// may unmap addr as soon as it returns.
func WaitContext(ctx context.Context, addr *atomic.Uint32, val uint32, limit time.Time) error {
	deadline := limit
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var stop func() bool
	var done chan struct{}
	if ctx.Done() != nil {
		done = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			Wake(addr, All)
			close(done)
		})
	}
	err := Wait(addr, val, deadline)
	if stop != nil && !stop() {
		<-done
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, ErrTimeout) && !limit.IsZero() && !time.Now().Before(limit) {
		return ErrTimeout
	}
	if errors.Is(err, ErrTimeout) {
		// The context's deadline passed but ctx.Err has not caught up
		// with the clock yet; report it as the context would.
		return context.DeadlineExceeded
	}
	return err
}
