package manager

// The handshake: mutual challenge-response with HMAC-SHA256 over the
// shared key. Exactly one digest is accepted, and its name is inside the
// MAC'd message, so a peer cannot talk either side down to another.
//
//	server → client  kHello   name | server nonce (32 random bytes)
//	client → server  kAuth    name | client nonce | HMAC(key, "client" | name | sn | cn)
//	server → client  kWelcome HMAC(key, "server" | name | sn | cn)
//
// The labels differ, so neither MAC can be reflected as the other; the
// server's fresh nonce makes a recorded kAuth useless on a new connection;
// comparison is hmac.Equal. Every pre-auth frame is read with a limit of
// preAuthMax bytes, under the handshake deadline; nothing else is read or
// served before the server has checked kAuth.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"time"
)

const (
	digestName = "hmac-sha256"
	nonceLen   = 32
	macLen     = sha256.Size
	// MinKeyLen is the shortest key Options accept.
	MinKeyLen = 16
	// DefaultHandshakeTimeout bounds the handshake (Options.HandshakeTimeout).
	DefaultHandshakeTimeout = 5 * time.Second
)

func mac(key []byte, label string, sn, cn []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("shmkit-manager/1 " + label + " " + digestName + " "))
	m.Write(sn)
	m.Write(cn)
	return m.Sum(nil)
}

func helloBody(sn []byte) []byte {
	b := append([]byte{byte(len(digestName))}, digestName...)
	return append(b, sn...)
}

// parseNamed splits body into the digest name (which must be ours) and
// the rest, which must be n bytes long.
func parseNamed(body []byte, n int) ([]byte, error) {
	if len(body) < 1 || int(body[0]) != len(digestName) || len(body) != 1+len(digestName)+n ||
		!bytes.Equal(body[1:1+len(digestName)], []byte(digestName)) {
		return nil, fmt.Errorf("%w: digest or message not %s", ErrAuth, digestName)
	}
	return body[1+len(digestName):], nil
}

// serverHandshake authenticates a client on conn.
func serverHandshake(conn net.Conn, key []byte, timeout time.Duration) error {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	sn := make([]byte, nonceLen)
	rand.Read(sn)
	if _, err := conn.Write(appendFrame(nil, kHello, 0, helloBody(sn))); err != nil {
		return err
	}
	fr := frameReader{r: conn, max: preAuthMax}
	f, err := fr.read()
	if err != nil {
		return err
	}
	if f.kind != kAuth {
		return fmt.Errorf("%w: frame kind %d before authentication", ErrAuth, f.kind)
	}
	rest, err := parseNamed(f.body, nonceLen+macLen)
	if err != nil {
		return err
	}
	cn, got := rest[:nonceLen], rest[nonceLen:]
	if !hmac.Equal(got, mac(key, "client", sn, cn)) {
		return fmt.Errorf("%w: wrong key", ErrAuth)
	}
	_, err = conn.Write(appendFrame(nil, kWelcome, 0, mac(key, "server", sn, cn)))
	return err
}

// clientHandshake authenticates to the server on conn, and the server to
// the client.
func clientHandshake(conn net.Conn, key []byte, timeout time.Duration) error {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	fr := frameReader{r: conn, max: preAuthMax}
	f, err := fr.read()
	if err != nil {
		return handshakeErr(err)
	}
	if f.kind != kHello {
		return fmt.Errorf("%w: expected hello, got kind %d", ErrProtocol, f.kind)
	}
	sn, err := parseNamed(f.body, nonceLen)
	if err != nil {
		return err
	}
	sn = bytes.Clone(sn)
	cn := make([]byte, nonceLen)
	rand.Read(cn)
	body := append(helloBody(cn), mac(key, "client", sn, cn)...)
	if _, err := conn.Write(appendFrame(nil, kAuth, 0, body)); err != nil {
		return err
	}
	f, err = fr.read()
	if err != nil {
		return handshakeErr(err)
	}
	if f.kind != kWelcome || !hmac.Equal(f.body, mac(key, "server", sn, cn)) {
		return fmt.Errorf("%w: the server did not prove the key", ErrAuth)
	}
	return nil
}

// handshakeErr: a server that refused us closes the connection.
func handshakeErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: connection closed during the handshake", ErrAuth)
	}
	return err
}
