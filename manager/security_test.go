package manager

// The handshake and the frame reader face an unauthenticated peer: each
// attack below is refused or cut off, nothing is served before the
// handshake, and the server keeps serving an honest client meanwhile.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rawConn dials the server's socket without a client.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	network, a := splitAddr(addr)
	conn, err := net.Dial(network, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readHello reads the server's hello and returns its nonce.
func readHello(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	fr := frameReader{r: conn, max: preAuthMax}
	f, err := fr.read()
	if err != nil || f.kind != kHello {
		t.Fatalf("hello: %v (kind %d)", err, f.kind)
	}
	sn, err := parseNamed(f.body, nonceLen)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(sn)
}

// cutOff asserts the server closes conn within limit, having sent nothing
// but (at most) what it had sent already.
func cutOff(t *testing.T, conn net.Conn, limit time.Duration) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(limit))
	n, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", limit)
	}
	if n != 0 {
		t.Fatalf("the server sent %d bytes to an unauthenticated peer", n)
	}
}

// stillServes asserts an honest client works.
func stillServes(t *testing.T, addr string) {
	t.Helper()
	c := dial(t, addr)
	if _, err := c.Dict("s").Add(context.Background(), "k", 1); err != nil {
		t.Fatalf("honest client after the attack: %v", err)
	}
}

func TestHandshakeAttacks(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{HandshakeTimeout: 300 * time.Millisecond})
		for name, attack := range map[string]func(t *testing.T, conn net.Conn){
			"wrong key": func(t *testing.T, conn net.Conn) {
				sn := readHello(t, conn)
				cn := make([]byte, nonceLen)
				body := append(helloBody(cn), mac([]byte("a wrong key of enough length"), "client", sn, cn)...)
				conn.Write(appendFrame(nil, kAuth, 0, body))
			},
			"reflected challenge": func(t *testing.T, conn net.Conn) {
				// Answer with the server's own nonce and no key: no MAC to reflect.
				sn := readHello(t, conn)
				body := append(helloBody(sn), make([]byte, macLen)...)
				conn.Write(appendFrame(nil, kAuth, 0, body))
			},
			"replayed response": func(t *testing.T, conn net.Conn) {
				// A reply that was right for another connection's nonce.
				readHello(t, conn)
				old, cn := make([]byte, nonceLen), make([]byte, nonceLen)
				body := append(helloBody(cn), mac(testKey, "client", old, cn)...)
				conn.Write(appendFrame(nil, kAuth, 0, body))
			},
			"server MAC as client MAC": func(t *testing.T, conn net.Conn) {
				sn := readHello(t, conn)
				cn := make([]byte, nonceLen)
				body := append(helloBody(cn), mac(testKey, "server", sn, cn)...)
				conn.Write(appendFrame(nil, kAuth, 0, body))
			},
			"md5 digest": func(t *testing.T, conn net.Conn) {
				sn := readHello(t, conn)
				cn := make([]byte, nonceLen)
				m := hmac.New(md5.New, testKey)
				m.Write(sn)
				body := append([]byte{7}, "hmacmd5"...)
				body = append(append(body, cn...), m.Sum(nil)...)
				conn.Write(appendFrame(nil, kAuth, 0, body))
			},
			"raw digest": func(t *testing.T, conn net.Conn) {
				sn := readHello(t, conn)
				cn := make([]byte, nonceLen)
				sum := sha256.Sum256(append(append(bytes.Clone(testKey), sn...), cn...)) // a bare digest, not the HMAC
				body := append(helloBody(cn), sum[:]...)
				conn.Write(appendFrame(nil, kAuth, 0, body))
			},
			"call before auth": func(t *testing.T, conn net.Conn) {
				readHello(t, conn)
				rq, _ := encMode.Marshal(&request{Op: opSet, Kind: tDict, Obj: "s", Key: "pwned", Val: encInt(1)})
				conn.Write(appendFrame(nil, kCall, 1, rq))
			},
			"4 GiB length prefix": func(t *testing.T, conn net.Conn) {
				readHello(t, conn)
				var b [frameHdr]byte
				binary.BigEndian.PutUint32(b[:], 0xffffffff)
				b[4], b[5] = protoVersion, kAuth
				conn.Write(b[:])
			},
			"byte a second": func(t *testing.T, conn net.Conn) {
				readHello(t, conn)
				go func() {
					for i := 0; i < 5; i++ {
						if _, err := conn.Write([]byte{0}); err != nil {
							return
						}
						time.Sleep(time.Second / 10)
					}
				}()
			},
			"silence": func(t *testing.T, conn net.Conn) { readHello(t, conn) },
		} {
			t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
				conn := rawConn(t, addr)
				attack(t, conn)
				cutOff(t, conn, 2*time.Second)
				stillServes(t, addr)
			})
		}
		// Nothing the attacks sent was served.
		c := dial(t, addr)
		if err := c.Dict("s").Get(context.Background(), "pwned", nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a call sent before authentication was served: %v", err)
		}
	})
}

// TestClientRefusesWrongServer: a server without the key cannot pass the
// client's check.
func TestClientRefusesWrongServer(t *testing.T) {
	_, addr := serve(t, "unix", Options{Key: []byte("another key, not the test key")})
	_, err := Dial(context.Background(), addr, Options{Key: testKey})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("Dial with the wrong key = %v, want ErrAuth", err)
	}
}

// TestConnectionCap: connections above MaxConns are closed at once, and
// idle unauthenticated ones are cut at the handshake deadline.
func TestConnectionCap(t *testing.T) {
	s, addr := serve(t, "unix", Options{MaxConns: 50, HandshakeTimeout: 300 * time.Millisecond})
	var conns []net.Conn
	for i := 0; i < 1000; i++ {
		network, a := splitAddr(addr)
		conn, err := net.Dial(network, a)
		if err != nil {
			break // the backlog is full: refused, as it may be
		}
		conns = append(conns, conn)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if n := s.n.Load(); n > 50 {
		t.Fatalf("%d connections served, cap 50", n)
	}
	time.Sleep(600 * time.Millisecond) // past the handshake deadline
	stillServes(t, addr)
}

// TestForeignUIDRefused: a process of another user that can reach the
// socket (here the directory and socket are opened up on purpose) is cut
// off before the handshake: SO_PEERCRED. Needs root, to run the client as
// nobody, and python3, a client binary that user may execute.
func TestForeignUIDRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	// A system python (a per-user install is not executable by nobody).
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	_, addr := serve(t, "unix", Options{})
	_, path := splitAddr(addr)
	for p := filepath.Dir(path); len(p) > len(os.TempDir()); p = filepath.Dir(p) {
		os.Chmod(p, 0o777)
	}
	os.Chmod(path, 0o777)
	cmd := exec.Command(py, "-c", `import socket,sys
s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
print(len(s.recv(1024)))`, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("the server sent %s bytes to another user's process, want 0 (closed)", strings.TrimSpace(string(out)))
	}
	stillServes(t, addr)
}
