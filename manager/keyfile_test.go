package manager

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	key, created, err := ReadOrWriteKeyFile(p)
	if err != nil || !created || len(key) != 64 {
		t.Fatalf("ReadOrWriteKeyFile = %q, %v, %v", key, created, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	again, created, err := ReadOrWriteKeyFile(p)
	if err != nil || created || string(again) != string(key) {
		t.Fatalf("second ReadOrWriteKeyFile = %q, %v, %v", again, created, err)
	}
	if _, err := WriteKeyFile(p); !errors.Is(err, os.ErrExist) {
		t.Fatalf("WriteKeyFile over a key = %v", err)
	}
	os.Chmod(p, 0o644)
	if _, err := ReadKeyFile(p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a group-readable key file = %v, want ErrInvalid", err)
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tooshort\n"), 0o600)
	if _, err := ReadKeyFile(short); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a short key = %v, want ErrInvalid", err)
	}
}

func TestListenUnixRefuses(t *testing.T) {
	if _, err := ListenUnix("@abstract"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("abstract address = %v", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o755)
	if _, err := ListenUnix(filepath.Join(open, "sock")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a socket in a 0755 directory = %v, want ErrInvalid", err)
	}
	ln, err := ListenUnix(filepath.Join(t.TempDir(), "priv", "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(ln.Addr().String())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
}

func TestDocumentedDefaults(t *testing.T) {
	o, err := Options{Key: testKey}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxFrame != 16<<20 || o.MaxConns != 256 || o.MaxPending != 1024 ||
		o.HandshakeTimeout.Seconds() != 5 || o.IdleTimeout != 0 || MinKeyLen != 16 || preAuthMax != 256 {
		t.Fatalf("defaults: %+v", o)
	}
	if _, err := (Options{Key: []byte("short")}).withDefaults(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a short key = %v", err)
	}
}
