//go:build amd64 || arm64

package sem

// getg returns the address of the calling goroutine's runtime g. It is
// unique among live goroutines and is one load; with it an uncontended
// RMutex Lock+Unlock measured 40–45 ns, against 6.7 µs and 2 allocations
// when the goroutine id came from runtime.Stack. The runtime reuses
// the g of an exited goroutine, so a goroutine that exits while holding an
// RMutex leaves a lock that a later goroutine may find it already owns;
// exiting with a lock held is a bug either way.
func getg() uintptr

func goid() uint64 { return uint64(getg()) }
