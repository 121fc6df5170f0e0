package manager

// The client's two turns: the read turn (who reads the connection and
// delivers replies: a caller for its own reply, or the background reader)
// and the write turn (who writes a frame), both given up without waiting
// for ever when a caller's ctx ends.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
)

// reader is the background reader: it reads while calls wait and no
// caller reads, until none waits (readFor then gives the turn up, and
// takes care of a call that came meanwhile).
func (c *Client) reader() {
	idle := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending) == 0
	}
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		if c.takeTurn(true) && c.readFor(context.Background(), idle) != nil {
			return // the connection failed
		}
	}
}

// takeTurn takes the read turn if it is free (and, for the background
// reader, someone waits).
func (c *Client) takeTurn(background bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading || c.err != nil || background && len(c.pending) == 0 {
		return false
	}
	c.reading = true
	return true
}

// bigWrite is the largest write that needs no reader meanwhile: one the
// connection's buffers take whole even if the server stops reading (unix
// and loopback TCP sockets buffer more; the Pipe 1 MiB).
const bigWrite = 16 << 10

// kickReader has the background reader take the turn if it is free.
func (c *Client) kickReader() {
	select {
	case c.wake <- struct{}{}:
	default: // already told
	}
}

// releaseTurn gives the turn up; if calls still wait (one may have come
// after the holder's last look), the background reader takes it.
func (c *Client) releaseTurn() {
	c.mu.Lock()
	c.reading = false
	need := len(c.pending) > 0 && c.err == nil
	c.mu.Unlock()
	if need {
		c.kickReader()
	}
}

// readFor reads and delivers frames with the turn held until mine
// reports the caller's reply delivered (nil), ctx ends (its error; the
// turn is given up at a frame boundary or mid-frame, losing nothing), or
// the connection fails (ErrClosed; every waiter has been told). It gives
// the turn up.
func (c *Client) readFor(ctx context.Context, mine func() bool) error {
	defer c.releaseTurn()
	var interrupted chan struct{}
	if ctx.Done() != nil {
		interrupted = make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			c.conn.SetReadDeadline(aLongTimeAgo)
			close(interrupted)
		})
		defer func() {
			if !stop() { // it ran, or runs: undo its deadline before the next turn
				<-interrupted
				c.conn.SetReadDeadline(time.Time{})
			}
		}()
	}
	for !mine() {
		f, err := c.fr.read()
		if err != nil {
			if interrupted != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				// Only our ctx's AfterFunc sets a deadline (a turn's
				// holder clears its own before giving the turn up); it
				// may not have closed interrupted yet. Should anything
				// else ever set one, fail rather than wait for ever.
				select {
				case <-interrupted:
					return ctx.Err()
				case <-time.After(time.Second):
				}
			}
			err = fmt.Errorf("%w: %v", ErrClosed, err)
			c.fail(err)
			return err
		}
		woke, err := c.dispatch(f)
		if err != nil {
			c.fail(err)
			return err
		}
		if woke && !wholeFrameBuffered(c.br) && !mine() {
			// Let the other caller just woken run now: our next Read may
			// spin or sleep in a futex (a shared-memory Pipe), keeping
			// this P from it.
			runtime.Gosched()
		}
	}
	return nil
}

// aLongTimeAgo is a read deadline in the past: it interrupts a Read.
var aLongTimeAgo = time.Unix(1, 0)

// dispatch delivers one frame's reply; woke reports that it completed a
// caller's wait.
func (c *Client) dispatch(f frame) (woke bool, err error) {
	if f.kind != kReply {
		return false, fmt.Errorf("%w: frame kind %d from the server", ErrProtocol, f.kind)
	}
	var r result
	if err := decodeResponse(f.body, &r.rs); err != nil {
		r.err = fmt.Errorf("%w: undecodable reply: %v", ErrProtocol, err)
	} else if r.rs.Code != 0 {
		r.err = &RemoteError{Code: r.rs.Code, Msg: r.rs.Msg}
	}
	c.mu.Lock()
	w, ok := c.pending[f.id]
	delete(c.pending, f.id)
	delivered := ok && w.deliver(r)
	woke = delivered && (w.b == nil || w.b.left == 0)
	c.mu.Unlock()
	if ok && !delivered && completed(r) {
		go c.undo(w, r.rs)
	}
	return woke, nil
}

// errNotSent: the caller's ctx ended before its frame was written
// (waiting for another writer); nothing of it went out.
var errNotSent = errors.New("not sent")

// lockWrite takes the write turn, or gives up when ctx ends or the
// client closes (a server that stops reading must not hold a caller
// whose ctx has ended behind another's write).
func (c *Client) lockWrite(ctx context.Context) error {
	select {
	case c.wlock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return errNotSent
	case <-c.done:
		return ErrClosed
	}
}

func (c *Client) unlockWrite() { <-c.wlock }

// writeUnlock writes buf with the write turn held, and gives the turn
// up. If ctx ends first the write is interrupted (a write deadline) and
// what is left of it is finished by a goroutine that keeps the turn until
// then, so the caller returns at once and the stream stays whole (a
// server that is not reading holds that goroutine, not the caller).
func (c *Client) writeUnlock(ctx context.Context, buf []byte) error {
	if ctx.Done() == nil {
		defer c.unlockWrite()
		if _, err := c.conn.Write(buf); err != nil {
			return fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return nil
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetWriteDeadline(aLongTimeAgo)
		close(fired)
	})
	n, err := c.conn.Write(buf)
	cut := false
	if !stop() { // it ran, or runs: undo its deadline
		<-fired
		c.conn.SetWriteDeadline(time.Time{})
		cut = err != nil
	}
	if !cut {
		c.unlockWrite()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return nil
	}
	rest := append([]byte(nil), buf[n:]...)
	go func() {
		defer c.unlockWrite()
		if _, err := c.conn.Write(rest); err != nil {
			c.fail(fmt.Errorf("%w: %v", ErrClosed, err))
		}
	}()
	return nil // it will be sent: the caller's wait sees its ctx ended
}

// sendCall writes rq's frame; a frame above the limit is not sent
// (ErrTooLarge), nor one whose ctx ended while another frame was being
// written (errNotSent); a failed write is the connection's failure.
func (c *Client) sendCall(ctx context.Context, id uint64, rq *request) error {
	if err := c.lockWrite(ctx); err != nil {
		return err
	}
	var ok bool
	c.wbuf, ok = appendFrameWith(c.wbuf[:0], kCall, id, c.opts.MaxFrame, func(b []byte) []byte { return appendRequest(b, rq) })
	if !ok {
		c.unlockWrite()
		return fmt.Errorf("%w: request above the frame limit %d", ErrTooLarge, c.opts.MaxFrame)
	}
	return c.writeUnlock(ctx, c.wbuf)
}

// send writes one frame, waiting for the write turn as long as the
// client lives.
func (c *Client) send(kind byte, id uint64, body []byte) error {
	if err := c.lockWrite(context.Background()); err != nil {
		return err
	}
	c.wbuf = appendFrame(c.wbuf[:0], kind, id, body)
	return c.writeUnlock(context.Background(), c.wbuf)
}
