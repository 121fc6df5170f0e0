//go:build !linux

package ringbuf

import "runtime"

func osYield() { runtime.Gosched() }
