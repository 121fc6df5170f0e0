// Package testutil runs tests across real processes.
//
// Shared memory is only tested when a second process maps it, and robust
// locks only when their holder really dies. Go cannot fork without exec,
// so a test re-executes its own test binary with a role name in the
// environment (RoleEnv); the binary's TestMain, which calls Main, runs
// that role instead of the tests. Segments travel to the child by name
// (the child inherits SHMKIT_DIR) or as inherited files (Files).
//
// The parent steers the child at chosen points: the child calls
// Signal("locked") and the parent's Await(ctx, "locked") returns; the
// parent calls Send and the child's Recv returns the line. Then the parent
// can Kill, Stop or Cont it, and Wait reports its exit status with the tail
// of its stderr, where Main writes a role's error.
//
//	func TestMain(m *testing.M) {
//		testutil.Main(m, map[string]testutil.Role{"holder": holder})
//	}
//
//	// holder takes the lock, says so, and waits to be killed.
//	func holder(ctx context.Context) error {
//		seg, err := shm.Open(testutil.Getenv("SEG"))
//		if err != nil {
//			return err
//		}
//		mu, err := sem.LookupMutex(seg, "mu")
//		if err != nil {
//			return err
//		}
//		if err := mu.Lock(ctx); err != nil {
//			return err
//		}
//		testutil.Signal("locked")
//		<-ctx.Done()
//		return ctx.Err()
//	}
//
//	func TestOwnerDeath(t *testing.T) {
//		ctx := testutil.Context(t)
//		name := testutil.Name(t)
//		// ... create segment name with a Mutex "mu", defer its Unlink ...
//		c := testutil.Spawn(t, "holder", testutil.Env("SEG", name))
//		if err := c.Await(ctx, "locked"); err != nil {
//			t.Fatal(err)
//		}
//		if err := c.Kill(); err != nil {
//			t.Fatal(err)
//		}
//		// mu.Lock(ctx) now returns sem.ErrOwnerDead.
//	}
//
// # What Main checks
//
// In the parent, Main points SHMKIT_DIR at a fresh directory (under
// /dev/shm when it exists, so segments live on tmpfs as in production)
// and, after all tests passed, fails the run if a goroutine leaked
// (goleak, with its default ignores) or a file is left in that directory:
// every test must unlink what it creates, even when a child dies.
//
// # Caveats
//
//   - Events are counted per name, not queued in order across names: two
//     Signal("tick") before an Await("tick") satisfy two Awaits.
//   - A child's stdout is the parent's stdout; its stderr is captured (the
//     last 64 KiB), and errors carry its last 4 KiB.
//   - A child gets the parent's test deadline less a margin (see Context)
//     as its context deadline, and exits with a goroutine dump if its role
//     ignores ctx for 5s past it. On Linux the kernel also kills it when
//     the parent dies (Pdeathsig). Linux ties that to the OS thread that
//     called Spawn: a goroutine that exits while locked to that thread
//     (runtime.LockOSThread without Unlock) ends it and kills the child.
//   - Roles run in a fresh process: nothing set up by the parent's test
//     (variables, t.Setenv made after Spawn, open files not passed with
//     Files) exists there.
package testutil
