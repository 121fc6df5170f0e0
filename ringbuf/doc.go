// Package ringbuf provides lock-free message queues in shared memory:
// Queue (SPSC or MPMC, variable-size messages, blocking with contexts,
// copy, zero-copy and batch forms), JoinableQueue, and Pipe, a duplex
// connection between two processes.
//
// # Data path
//
// A producer copies a message once into the ring (or writes it in place
// through Reserve/Commit) and publishes it with one atomic store; the
// consumer reads it in place (Peek) or copies it out (GetInto). No syscall
// happens on that path unless a peer is asleep: sleepers announce
// themselves in a waiters word, and a waker calls FUTEX_WAKE only when it
// sees one. A blocked call first spins (Options.Spin; skipped at
// GOMAXPROCS=1, where the peer cannot run meanwhile), then sleeps on a
// futex. BusyPoll trades a CPU for the lowest latency.
//
// # Waking a sleeper: what was measured
//
// On the 2-vCPU VM this was built on, a thread asleep in FUTEX_WAIT takes
// tens of µs to wake on another CPU, while Go's os.Pipe benefits from the
// runtime's spinning threads. Measured with BenchmarkRoundTrip (64-byte
// ping-pong between two processes, one run, p50):
//
//	both sides polling               spsc 0.78–0.88 µs   os.Pipe 3.1 µs
//	200 µs idle between round trips  spsc 34–36 µs       os.Pipe 43 µs
//	  same, sleeper parked in the netpoller on a pipe    42–46 µs
//	continuous ping-pong (shmkit bench)  spsc 0.76–0.82 µs   os-pipe 5.8–56 µs
//
// So futex sleeping is kept, preceded by a time-based adaptive spin
// (Options.Spin, at most 50 µs) that yields the CPU with sched_yield now
// and then, so a peer sharing the CPU is not starved by the spinner (pure
// spinning made oversubscribed round trips ~100 µs). The netpoller
// alternative (a wake pipe per sleeping side) measured slower and would
// need extra files per named queue, so it was dropped.
//
// The SPSC ring (spsc.go) is a byte ring of records that never wrap, so
// each message is one contiguous slice. The MPMC ring (mpmc.go) is a ring
// of fixed-size slots with per-slot sequence numbers. Each file begins with
// its protocol, the memory-ordering argument, and how a crashed peer is
// handled; notify.go argues why no wakeup is lost.
//
// # Crashes and hostile peers
//
// In MPMC mode, a producer killed between claiming a slot and publishing it
// does not stall the consumers: once the kernel proves it dead (its
// participant lock, see shm), its slot is padded over and counted in
// Stats.DeadProducerSlots. A consumer killed holding a message loses that
// message only, counted in Stats.DeadConsumerLosses. A stopped producer is
// alive, and is waited for. In SPSC mode a side held by a dead process is
// taken over by the next handle that produces (or consumes).
//
// Every counter, length and flag read from the ring is read once into a
// local and validated before use; a corrupt ring makes calls fail with
// ErrCorrupt (which matches shm.ErrCorrupt) and the handle unusable, never
// a panic or an out-of-bounds read.
//
// # Caveats
//
//   - A handle serializes its own goroutines on each side; open one handle
//     per goroutine for parallelism within a process.
//   - MPMC slots are MaxMessage bytes each: choose MaxMessage to fit the
//     messages, or the ring holds few of them.
//   - Counters in Stats are written without atomics by their single
//     writer; a snapshot may lag a running process slightly.
//   - A Put that returned nil before Close began is delivered. A Put racing
//     Close re-checks the flag between claiming space and publishing, and
//     returns ErrClosed if it is set; only a Put whose check falls in the
//     nanoseconds between that re-check and its publishing store can report
//     success for a message that consumers already draining miss.
//   - A process killed while asleep in a queue leaves the waiters count
//     raised, so later puts and gets each make one FUTEX_WAKE syscall that
//     wakes nobody. Correctness is unaffected.
//   - The race detector does not see the ordering that atomics on shared
//     memory provide (it tracks only the Go heap). Plain Go variables that
//     two goroutines of one process hand over through a queue can be
//     reported as racing under -race; hand data over in the messages.
package ringbuf
