package ringbuf

import "fmt"

type corruptError struct{ msg string }

func (e *corruptError) Error() string { return "ringbuf: ring corrupt: " + e.msg }
func (e *corruptError) Unwrap() error { return ErrCorrupt }

func corruptf(format string, args ...any) error {
	return &corruptError{msg: fmt.Sprintf(format, args...)}
}
