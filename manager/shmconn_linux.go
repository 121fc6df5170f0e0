package manager

// The shared-memory transport: after the handshake on a unix socket, a
// client that asks (kUpgrade) gets end B of a ringbuf Pipe (a sealed
// memfd) over the socket with SCM_RIGHTS, and both sides speak the same
// frames over the Pipe, a net.Conn, from then on. The socket stays open
// as the lifeline: either side's end of it closing ends the Pipe too, and
// the Pipe itself reports a peer that died (ErrPeerDead), so the server
// learns of a dead client either way and releases its locks.

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/ringbuf"
)

// pipeOptions: 1 MiB each way, messages of up to 256 KiB (a frame may
// span several; the stream mode joins them).
var pipeOptions = ringbuf.PipeOptions{Capacity: 1 << 20, MaxMessage: 256 << 10}

// serverUpgrade answers a client's kUpgrade on uc: 'P' with the Pipe's
// file, or 'N' (stay on the socket) if no Pipe can be made.
func serverUpgrade(uc *net.UnixConn) (net.Conn, error) {
	a, b, err := ringbuf.NewPipe(pipeOptions)
	if err != nil {
		_, werr := uc.Write([]byte{'N'})
		return nil, werr
	}
	f, err := b.File()
	if err != nil {
		a.Close()
		b.Close()
		_, werr := uc.Write([]byte{'N'})
		return nil, werr
	}
	_, _, err = uc.WriteMsgUnix([]byte{'P'}, unix.UnixRights(int(f.Fd())), nil)
	f.Close()
	b.Close() // unused here: the client's end
	if err != nil {
		a.Close()
		return nil, err
	}
	return lifelined(a, uc), nil
}

// clientUpgrade asks the server for a Pipe on uc; nil, nil if it refused.
func clientUpgrade(uc *net.UnixConn, timeout time.Duration) (net.Conn, error) {
	uc.SetDeadline(time.Now().Add(timeout))
	defer uc.SetDeadline(time.Time{})
	if _, err := uc.Write(appendFrame(nil, kUpgrade, 0, nil)); err != nil {
		return nil, err
	}
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := uc.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, err
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: upgrade answer of %d bytes", ErrProtocol, n)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	var fds []int
	for _, m := range msgs {
		if r, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, r...)
		}
	}
	if b[0] == 'N' && len(fds) == 0 {
		return nil, nil
	}
	if err != nil || b[0] != 'P' || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("%w: upgrade answer %q with %d files", ErrProtocol, b[0], len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "manager-pipe")
	p, err := ringbuf.OpenPipeFile(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return lifelined(p, uc), nil
}

// pipeConn is the Pipe, closed with the socket beside it.
type pipeConn struct {
	net.Conn
	sock net.Conn
}

// lifelined closes p when the peer's end of sock closes (sock carries
// nothing more after the upgrade), and sock when p is closed.
func lifelined(p net.Conn, sock net.Conn) net.Conn {
	go func() {
		io.Copy(io.Discard, sock) // returns at the peer's close (or death)
		p.Close()
	}()
	return &pipeConn{Conn: p, sock: sock}
}

func (c *pipeConn) Close() error {
	err := c.Conn.Close()
	c.sock.Close()
	return err
}
