// Package ringbuf provides lock-free message queues in shared memory:
// Queue (SPSC or MPMC, variable-size messages, blocking with contexts,
// copy, zero-copy and batch forms), JoinableQueue, Typed views with codecs,
// and Pipe, a duplex connection between two processes that is also a
// net.Conn.
//
// # Data path
//
// A producer copies a message once into the ring (or writes it in place
// with WithReserve) and publishes it with one atomic operation; the
// consumer reads it in place (WithPeek) or copies it out (GetInto). No
// syscall happens on that path unless a peer is asleep. A blocked call
// spins first (Options.Spin, adapting to the waits it sees; skipped at
// GOMAXPROCS=1, where the peer cannot run meanwhile), then sleeps on the
// queue's event count (internal/futex), which wakers notify only when
// someone announced itself. Options.BusyPoll polls instead of sleeping.
//
// The Queue is a policy layer (turns, waiting, stats, shutdown) over one
// of two ring types behind one interface (ring.go): the SPSC ring
// (spsc.go), a byte ring of records that never wrap, so each message is
// one contiguous slice; and the MPMC ring (mpmc.go), a ring of fixed-size
// slots with per-slot sequence numbers, with its crash recovery beside it
// (mpmc_recover.go). Each file begins with its protocol and the memory
// ordering argument; the wait primitive's argument why no wakeup is lost
// is in internal/futex. The protocols have spin models next to them
// (*.pml), checked with their mutants in CI.
//
// # Handles, Close and Shutdown
//
// A Queue value is one process's handle, attached to the queue's segment.
// Close releases the handle (its SPSC side, its participant slot, its
// mapping), like os.File.Close; the queue stays for the others. Shutdown
// closes the queue for everyone: puts fail with ErrClosed, and consumers
// receive everything already put, then ErrClosed. A Put that returned nil
// is always received by consumers that drain the queue: the shutdown bit
// lives in the word that puts publish (SPSC) or claim (MPMC) with, so a put
// either succeeds before the shutdown or fails.
//
// A handle's calls take turns per side only while they touch the ring; a
// call that waits for room or for a message sleeps without its turn, so a
// TryGet beside a blocked Get answers at once, and a call waiting for its
// turn (behind a WithReserve or WithPeek callback) honours its context.
//
// # Crashes and hostile peers
//
// In MPMC mode, a producer killed between claiming a slot and publishing it
// does not stall the consumers: once the kernel proves it dead (its
// participant lock, see shm), its slot is skipped and counted in
// Stats.DeadProducerSlots. A consumer killed holding a message loses that
// message only, counted in Stats.DeadConsumerLosses. A stopped producer is
// alive, and is waited for. In SPSC mode a side held by a dead process is
// taken over by the next handle that produces (or consumes); what a dead
// consumer took since it last published its head (at most an eighth of
// the ring) is delivered again to its successor.
//
// A process killed while asleep in a blocking call leaves its
// announcement behind; the first waker that finds nobody to wake has it
// cleared once the kernel proves the process dead, and wakers make no
// syscalls again.
//
// Every counter, length and flag read from the ring is read once into a
// local and validated before use; a corrupt ring makes calls fail with
// ErrCorrupt (which matches shm.ErrCorrupt) and the handle unusable, never
// a panic, a hang or an out-of-bounds read. A process of the same user can
// truncate a named queue's file; the calls of a handle on a named queue
// turn the resulting memory fault into ErrCorrupt (runtime/debug's
// SetPanicOnFault) instead of dying of SIGBUS. A call blocked on a named
// queue sleeps in slices of 50 ms (a waker cannot reach a truncated futex
// word), so it notices a truncation within one slice; a guarded call pays
// a deferred recover and two runtime calls more than on an anonymous queue
// (BenchmarkFaultGuard measures it). Anonymous queues are
// memfds, sealed against truncation, and neither slice nor guard.
//
// # Caveats
//
//   - One handle serializes its own goroutines per side while they touch
//     the ring; open one handle per goroutine for parallelism within a
//     process.
//   - MPMC slots are MaxMessage bytes each: choose MaxMessage to fit the
//     messages, or the ring holds few of them.
//   - Counters in Stats other than MPMC Puts, Gets and Len are written
//     without atomics by their single writer; a snapshot may lag a running
//     process slightly.
//   - An SPSC consumer publishes its head lazily: one that stops taking
//     messages without closing its handle may keep up to an eighth of the
//     ring from the producer until it takes the next message.
//   - The race detector does not see the ordering that atomics on shared
//     memory provide (it tracks only the Go heap). Plain Go variables that
//     two goroutines of one process hand over through a queue can be
//     reported as racing under -race; hand data over in the messages.
package ringbuf
