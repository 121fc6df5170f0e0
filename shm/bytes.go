package shm

import "encoding/binary"

func le64(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }
func le32(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }
func rd64(b []byte) uint64    { return binary.LittleEndian.Uint64(b) }
func rd32(b []byte) uint32    { return binary.LittleEndian.Uint32(b) }
