//go:build !linux

package manager

import (
	"net"
	"time"
)

func serverUpgrade(uc *net.UnixConn) (net.Conn, error) {
	_, err := uc.Write([]byte{'N'})
	return nil, err
}

func clientUpgrade(uc *net.UnixConn, _ time.Duration) (net.Conn, error) { return nil, nil }
