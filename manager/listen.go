package manager

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// ListenUnix listens on a unix socket at path, in a directory only this
// user may enter: the directory is created with mode 0700 if absent (an
// existing one must be this user's and not accessible to others), a stale
// socket file is replaced, and the socket gets mode 0600. Abstract
// (namespace) addresses are refused: they have no permissions.
func ListenUnix(path string) (net.Listener, error) {
	if path == "" || strings.HasPrefix(path, "@") || strings.ContainsRune(path, 0) {
		return nil, fmt.Errorf("%w: socket path %q (abstract sockets are refused)", ErrInvalid, path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || !ownedByUs(fi) {
		return nil, fmt.Errorf("%w: %s must be a directory of this user with mode 0700 (is %v)", ErrInvalid, dir, fi.Mode())
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path) // stale: a live server would hold it; we own the directory
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
