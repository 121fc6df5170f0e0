// Package bench compares message transports between processes: shmkit's
// Queue (SPSC and MPMC) and Pipe (message and stream mode) against OS
// pipes, unix socket pairs (stream and seqpacket), TCP over loopback and
// POSIX message queues, with a Go channel inside one process as a
// reference ceiling and, optionally, Python's multiprocessing.Queue and
// Pipe. `shmkit bench` is its command line.
//
// # Method
//
// Each cell (transport, workload, message size, producers x consumers)
// runs in two OS processes: the runner and a peer, the runner's own
// executable started again with SHMKIT_BENCH_ROLE set, which MaybeChild
// turns into the other side. The runner produces (stream) or pings (rtt);
// the peer consumes or echoes. Transports are created by the runner and
// handed down as inherited file descriptors (shmkit queues are anonymous
// memfd segments, message queues are unlinked at once), so nothing is
// ever named in /dev/shm and nothing outlives the processes.
//
// A cell runs a warm-up phase and then Reps measured phases in the same
// processes. Each phase ends with end markers through the transport itself
// and a report from the peer over a control socket: the messages it
// received and its CPU time (getrusage). The runner measures the elapsed
// time from its first send to that report and its own CPU time.
//
//   - stream: messages/s and payload bytes/s; CPU time of both processes
//     per message. With several producers and consumers (shm-mpmc,
//     os-pipe, go-chan) the runner has that many producer goroutines and
//     the peer that many consumer goroutines, each with its own handle
//     (for os-pipe, its own descriptor of one shared pipe).
//   - rtt: one message there and back at a time; every round trip is
//     recorded in an HDR histogram (p50, p90, p99, p99.9, and the max).
//
// A cell reports the median over its repetitions, and its ratio to the
// OS pipe (os-pipe, the baseline, which always runs) in the same mode
// and size: throughput over the pipe's, or the pipe's p50 over this p50.
// A cell with several producers and consumers is compared with os-pipe at
// the same counts (one pipe shared by as many writers and readers) where
// that ran, else with os-pipe at 1x1.
// Machines are noisy; ratios from one run are steadier than absolute
// numbers.
//
// Every message is written by the sender (a sequence number, a CRC-32C of
// the payload, and one byte varied per message) and verified by the
// receiver, which computes the CRC over the whole payload: no transport is
// credited for memory nobody touched, and one that loses, repeats,
// reorders or corrupts a message fails the cell loudly. See payload.go.
//
// # Cleanup
//
// Peers die with the runner (PR_SET_PDEATHSIG) and are killed when Run's
// context ends (cmd/shmkit cancels it on SIGINT and SIGTERM); peers ignore
// SIGINT themselves, so a Ctrl-C is handled in one place. The Python
// reference runs in its own process group, killed as a whole.
//
// # The kv workload
//
// RunKV (shmkit bench -kv) runs manager Dict Set+Get from KVConfig.Clients
// client processes (this executable re-run with a role) with
// KVConfig.Pipeline requests in flight each, over the shared-memory Pipe
// (manager-shm) and the unix socket (manager-unix); beside them, in the
// same run, redis-benchmark SET/GET with the same -c and -P on a
// redis-server the bench starts in a temporary directory (unix socket
// only, no persistence) and stops (redis), the same as -c processes of
// one connection each (redis-procs), and with Python, Python's
// multiprocessing Manager().dict() (py-manager, -P 1 only). A backend whose
// tool is missing is reported unavailable. Rates are SET and GET requests
// per second together; WriteKVTable prints them with ratios to redis,
// redis-procs and py-manager at the same -c.
//
// # Caveats
//
//   - Stream transports (os-pipe, unix-stream, tcp, shm-pipe-stream) carry
//     a 4-byte length before each message, written in the same call.
//   - os-pipe with several producers or consumers shares one pipe, and
//     every frame (length and message) has the same size: a write of at
//     most PIPE_BUF (4096) bytes is atomic, so the pipe only holds whole
//     frames and each read of one frame's size, unbuffered, returns one
//     frame. Larger frames would interleave or split: such cells (messages
//     above 4092 bytes) are not run, and their counterparts compare with
//     os-pipe at 1x1.
//   - unix-seqpacket raises the socket send buffer when a record would not
//     fit (bounded by net.core.wmem_max); posix-mq is unavailable for
//     messages above /proc/sys/fs/mqueue/msgsize_max (8 KiB by default).
//   - go-chan is not IPC: it shows what copying through memory costs
//     without a process boundary.
//   - The Python references verify with zlib's CRC-32 and compute exact
//     percentiles from sorted samples; their CPU time includes Python's
//     feeder thread.
//   - manager-queue-shm and manager-queue-unix start a manager server as a
//     third process (manager.Start); each message is a Put by one client
//     and a Get by the other, two calls through the server.
//   - With Pin, the runner and the peer each run on one CPU of the two
//     first allowed ones; all goroutines of a side share that CPU. On a
//     busy machine a pinned side waits for its CPU instead of moving to an
//     idle one, and latencies grow: pin on an otherwise idle machine.
package bench
