// Command shmkit measures and operates shmkit's shared-memory IPC:
//
//	shmkit bench [flags]   compare transports between processes (table, JSON, SVG)
//	shmkit ls              list segments under the shm directory
//	shmkit stat NAME       show a queue's depth, capacity and counters
//	shmkit gc              remove stale segments
//	shmkit manager         serve shared objects over a socket
//
// Run `shmkit COMMAND -h` for a command's flags.
package main
