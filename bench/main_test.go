package bench

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain makes the test binary a bench peer when the runner starts it as
// one (the runner re-executes its own binary), and otherwise runs the
// tests with SHMKIT_DIR pointing at an empty directory that must stay
// empty: the bench names nothing.
func TestMain(m *testing.M) {
	MaybeChild()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shmkit-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv("SHMKIT_DIR", dir)
	// Peers built with -race would sleep a second at exit (ThreadSanitizer's
	// default), and the runner waits for each peer's exit status.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	code := m.Run()
	if code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "goroutines leaked: %v\n", err)
		return 1
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		fmt.Fprintf(os.Stderr, "files left in SHMKIT_DIR: %v\n", ents)
		return 1
	}
	return 0
}
