// Package fuzz holds fuzz targets over every decoder of foreign bytes:
// anything shmkit reads that another process (or a file left behind) could
// have written. Each target feeds arbitrary bytes to an exported or
// internal API, never to unexported code, so it tests what a hostile peer
// can actually reach, and asserts that the result is either an error
// matching one of the package's sentinels or a value that keeps its
// documented invariants. No input may panic or hang.
//
// Targets:
//
//	FuzzOpenSegment  shm.OpenFile on an arbitrary segment image, then every
//	                 read of its object and participant tables and an Alloc
//	FuzzQueueOps     a sequence of queue operations (SPSC and MPMC, copy,
//	                 batch, zero-copy, close, reopen) checked against a model
//	FuzzRingImage    a live queue whose control block and ring are overwritten
//	                 with arbitrary bytes, then read through two handles:
//	                 ErrCorrupt or valid data, never a panic, hang or
//	                 out-of-bounds read
//
// The manager's decoders are fuzzed in package manager itself, because the
// frame and body decoders are unexported (a client reaches them only over
// a socket): FuzzFrameReader (frames), FuzzServerHandshake (a real server
// fed arbitrary handshake bytes: never served before auth) and
// FuzzWireDecode (request and response bodies: what the hand-written
// decoder accepts, the CBOR library reads the same way).
//
// Run one with, for example:
//
//	go test -run='^$' -fuzz=FuzzOpenSegment -fuzztime=1m ./fuzz/
//
// Inputs that once failed, and a small seed corpus, live in
// testdata/fuzz/<Target>/ and run as ordinary tests under go test.
package fuzz
