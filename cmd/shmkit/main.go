package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/shmkit/shmkit/bench"
)

// command is one subcommand. run returns the exit status: 0 success, 1
// failure, 2 usage error, 130 interrupted.
type command struct {
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
	summary string
}

// commands is the dispatcher: each command lives in its own file.
func commands() map[string]command {
	return map[string]command{
		"bench":   {runBench, "compare IPC transports between processes: table, JSON, SVG chart"},
		"ls":      {runLs, "list segments under the shm directory"},
		"stat":    {runStat, "show a queue's depth, capacity and counters"},
		"gc":      {runGc, "remove stale segments (dry run unless --force)"},
		"manager": {runManager, "serve shared objects (package manager) over a unix or TCP socket"},
	}
}

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	// A bench peer is this binary started again by the bench runner.
	bench.MaybeChild()
	os.Exit(runMain(os.Args[1:]))
}

// runMain runs a command with a context that SIGINT and SIGTERM cancel.
func runMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills at once (the default).
	context.AfterFunc(ctx, stop)
	return run(ctx, args, os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout, cmds)
		return exitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "shmkit: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: shmkit COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'shmkit COMMAND -h' for a command's flags.")
}
