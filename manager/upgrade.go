package manager

// The move of a unix-socket connection to a shared-memory Pipe, on the
// server side (the Pipe itself: shmconn_linux.go).

import (
	"encoding/binary"
	"io"
	"net"
	"time"
)

// maybeUpgrade moves conn to a Pipe if the client asks first thing (see
// shmconn_linux.go). The kUpgrade frame, if any, is read here by peeking
// at the first frame header, so nothing of a following frame is consumed.
func (s *Server) maybeUpgrade(conn net.Conn) (net.Conn, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return conn, nil
	}
	var hdr [frameHdr]byte
	// The client sends kUpgrade or its first call at once; a client that
	// sends nothing waits here like any idle one, and is cut as one.
	if t := s.opts.IdleTimeout; t > 0 {
		conn.SetReadDeadline(time.Now().Add(t))
	}
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Time{})
	if hdr[5] != kUpgrade || hdr[4] != protoVersion || binary.BigEndian.Uint32(hdr[:4]) != frameHdr-4 {
		return &prefixConn{Conn: conn, pre: hdr[:]}, nil
	}
	if s.opts.NoSharedMemory {
		_, err := uc.Write([]byte{'N'})
		return conn, err
	}
	p, err := serverUpgrade(uc)
	if err != nil || p == nil {
		return conn, err
	}
	return p, nil
}

// prefixConn gives back bytes read ahead before the rest of Conn.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
