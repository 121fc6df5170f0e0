package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/shmkit/shmkit/manager"
)

// defaultSocket is $XDG_RUNTIME_DIR/shmkit/manager.sock, else
// /tmp/shmkit-UID/manager.sock.
func defaultSocket() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "shmkit", "manager.sock")
	}
	return filepath.Join(os.TempDir(), "shmkit-"+strconv.Itoa(os.Getuid()), "manager.sock")
}

// runManager serves shared objects until SIGINT or SIGTERM.
func runManager(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", defaultSocket(), "unix socket to serve on (its directory is made mode 0700)")
	tcp := fs.String("tcp", "", "serve on this TCP address instead (for example 127.0.0.1:7070); needs --key-file with an existing key")
	keyFile := fs.String("key-file", "", "file holding the shared key; for a unix socket a missing file is created with a random key (mode 0600); default: key beside the socket")
	maxConns := fs.Int("max-conns", manager.DefaultMaxConns, "most connections served at once")
	idle := fs.Duration("idle", 0, "cut connections idle this long (0: never)")
	noShm := fs.Bool("no-shm", false, "keep unix-socket clients on the socket (by default they move to a shared-memory Pipe after the handshake)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: shmkit manager [flags]

Serves shared dicts, lists, queues, values, locks, semaphores, events and
barriers (package manager) until interrupted. Clients dial the printed
address with the key from the key file:

  c, err := manager.Dial(ctx, "unix:/run/user/1000/shmkit/manager.sock",
          manager.Options{Key: key}) // key, err := manager.ReadKeyFile(path)

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	var ln net.Listener
	var addr string
	var key []byte
	var err error
	if *tcp != "" {
		if *keyFile == "" {
			fmt.Fprintln(stderr, "shmkit manager: --tcp needs --key-file with an existing key")
			return exitUsage
		}
		if key, err = manager.ReadKeyFile(*keyFile); err != nil {
			fmt.Fprintln(stderr, "shmkit manager:", err)
			return exitFailed
		}
		if ln, err = net.Listen("tcp", *tcp); err != nil {
			fmt.Fprintln(stderr, "shmkit manager:", err)
			return exitFailed
		}
		addr = "tcp:" + ln.Addr().String()
	} else {
		if ln, err = manager.ListenUnix(*socket); err != nil {
			fmt.Fprintln(stderr, "shmkit manager:", err)
			return exitFailed
		}
		defer os.Remove(*socket)
		addr = "unix:" + *socket
		if *keyFile == "" {
			*keyFile = filepath.Join(filepath.Dir(*socket), "key")
		}
		var created bool
		if key, created, err = manager.ReadOrWriteKeyFile(*keyFile); err != nil {
			ln.Close()
			fmt.Fprintln(stderr, "shmkit manager:", err)
			return exitFailed
		}
		if created {
			fmt.Fprintf(stdout, "key written to %s\n", *keyFile)
		}
	}
	fmt.Fprintf(stdout, "serving on %s (key: %s)\n", addr, *keyFile)
	err = manager.Serve(ctx, ln, manager.Options{Key: key, MaxConns: *maxConns, IdleTimeout: *idle, NoSharedMemory: *noShm})
	if ctx.Err() != nil {
		return exitInterrupted
	}
	fmt.Fprintln(stderr, "shmkit manager:", err)
	return exitFailed
}
