package manager

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// ReadKeyFile reads a key from path: the file's bytes without surrounding
// white space. The file must be this user's and readable by no one else
// (mode 0600 or stricter), and the key at least MinKeyLen bytes.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 || !ownedByUs(fi) {
		return nil, fmt.Errorf("%w: key file %s must be a regular file of this user with mode 0600 (is %v)", ErrInvalid, path, fi.Mode())
	}
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if err != nil {
		return nil, err
	}
	key := bytes.TrimSpace(b[:n])
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("%w: key in %s is %d bytes, at least %d are needed", ErrInvalid, path, len(key), MinKeyLen)
	}
	return key, nil
}

// WriteKeyFile makes a random key (32 bytes, written as 64 hex digits) in a
// new file at path with mode 0600, and returns it. An existing file is
// not overwritten (os.ErrExist).
func WriteKeyFile(path string) ([]byte, error) {
	raw := make([]byte, 32)
	rand.Read(raw)
	key := []byte(hex.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.Write(append(key, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return key, nil
}

// ReadOrWriteKeyFile reads the key at path, or makes one there if the
// file does not exist.
func ReadOrWriteKeyFile(path string) (key []byte, created bool, err error) {
	key, err = ReadKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err = WriteKeyFile(path)
		return key, err == nil, err
	}
	return key, false, err
}
