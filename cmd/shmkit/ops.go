package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shmkit/shmkit/ringbuf"
	"github.com/shmkit/shmkit/shm"
)

// runLs lists the segments under the shm directory, read-only: it neither
// maps nor attaches to them.
func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "list objects and participants too")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	names, err := shm.List()
	if err != nil {
		fmt.Fprintln(stderr, "shmkit ls:", err)
		return exitFailed
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tKIND\tSIZE\tCREATOR\tCREATED\tLIVE\tDEAD\tSTATE\n")
	for _, n := range names {
		r, err := shm.Inspect(n)
		if err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t%s\n", n, describeErr(err))
			continue
		}
		state := "in use"
		if r.Stale() {
			state = "stale"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%s\t%d\t%d\t%s\n", n, r.Kind, human(r.Size), r.CreatorPid,
			r.Created.Format(time.DateTime), r.Live, r.Dead, state)
		if *verbose {
			for _, o := range r.Objects {
				fmt.Fprintf(tw, "  object %s\t%v\t%s\t@%d\t\t\t\t\n", o.Name, o.Kind, human(o.Size), o.Offset)
			}
			for _, p := range r.Participants {
				alive := "dead"
				if p.Alive {
					alive = "alive"
				}
				fmt.Fprintf(tw, "  slot %d\tpid %d\t%s\tsince %s\t\t\t\t\n", p.Slot, p.Pid, alive, p.Registered.Format(time.TimeOnly))
			}
		}
	}
	tw.Flush()
	if len(names) == 0 {
		fmt.Fprintf(stdout, "(no segments in %s)\n", shm.Dir())
	}
	return exitOK
}

// describeErr says why a file is not listed as a segment.
func describeErr(err error) string {
	switch {
	case errors.Is(err, shm.ErrPermission):
		return "foreign (not ours)"
	case errors.Is(err, shm.ErrIncompatible):
		return "incompatible layout"
	case errors.Is(err, shm.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, shm.ErrSymlink):
		return "symlink (refused)"
	case errors.Is(err, shm.ErrNotExist):
		return "gone"
	}
	return err.Error()
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// runStat shows a queue's depth, capacity and counters.
func runStat(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	watch := fs.Bool("watch", false, "refresh every interval until interrupted")
	interval := fs.Duration("interval", time.Second, "refresh interval with --watch")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: shmkit stat [--watch] NAME")
		return exitUsage
	}
	name := fs.Arg(0)
	r, err := shm.Inspect(name)
	if err != nil {
		fmt.Fprintf(stderr, "shmkit stat: %s: %s\n", name, describeErr(err))
		return exitFailed
	}
	if r.Kind != shm.KindQueue {
		fmt.Fprintf(stderr, "shmkit stat: %s is a %v segment, not a queue\n", name, r.Kind)
		return exitFailed
	}
	q, err := ringbuf.Open(name)
	if err != nil {
		fmt.Fprintf(stderr, "shmkit stat: %s: %v\n", name, err)
		return exitFailed
	}
	defer q.Close()
	var prev ringbuf.Stats
	for {
		st := q.Stats()
		capUnit := "bytes"
		if q.Mode() == ringbuf.MPMC {
			capUnit = "slots"
		}
		fmt.Fprintf(stdout, "%s  %s  %s\n", st.At.Format(time.TimeOnly), name, q.Mode())
		fmt.Fprintf(stdout, "  depth %d messages   capacity %d %s   max message %s   closed %v\n",
			st.Len, q.Cap(), capUnit, human(int64(q.MaxMessage())), st.Closed)
		fmt.Fprintf(stdout, "  puts %d  gets %d  in %s  out %s\n", st.Puts, st.Gets, human(int64(st.BytesIn)), human(int64(st.BytesOut)))
		fmt.Fprintf(stdout, "  sleeps %d  wakeups %d  full %d  empty %d  dead-producer slots %d  dead-consumer losses %d\n",
			st.Sleeps, st.Wakeups, st.FullEvents, st.EmptyEvents, st.DeadProducerSlots, st.DeadConsumerLosses)
		if *watch && !prev.At.IsZero() {
			dt := st.At.Sub(prev.At).Seconds()
			fmt.Fprintf(stdout, "  rate: %.0f puts/s  %.0f gets/s\n", float64(st.Puts-prev.Puts)/dt, float64(st.Gets-prev.Gets)/dt)
		}
		if !*watch {
			return exitOK
		}
		prev = st
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(*interval):
		}
	}
}

// runGc removes stale segments: those whose every participant the kernel
// proves dead. Dry run unless --force; one cleaner at a time.
func runGc(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	force := fs.Bool("force", false, "remove stale segments (default: only report them)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	// One cleaner at a time: an exclusive flock on a lock file beside the
	// segments (it is not a segment: no "shmkit." prefix).
	lock, err := os.OpenFile(filepath.Join(shm.Dir(), ".shmkit-gc.lock"), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		fmt.Fprintln(stderr, "shmkit gc:", err)
		return exitFailed
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintln(stderr, "shmkit gc: another gc is running")
		return exitFailed
	}
	names, err := shm.List()
	if err != nil {
		fmt.Fprintln(stderr, "shmkit gc:", err)
		return exitFailed
	}
	removed, stale := 0, 0
	for _, n := range names {
		if ctx.Err() != nil {
			return exitInterrupted
		}
		r, err := shm.Inspect(n)
		if err != nil {
			fmt.Fprintf(stdout, "skip   %s: %s\n", n, describeErr(err))
			continue
		}
		if !r.Stale() {
			fmt.Fprintf(stdout, "keep   %s: %d live participant(s)\n", n, r.Live)
			continue
		}
		stale++
		if !*force {
			fmt.Fprintf(stdout, "stale  %s: %d participant(s), all dead (use --force to remove)\n", n, r.Dead)
			continue
		}
		if err := shm.RemoveStale(n); err != nil {
			fmt.Fprintf(stdout, "keep   %s: %v\n", n, err)
			continue
		}
		removed++
		fmt.Fprintf(stdout, "remove %s\n", n)
	}
	fmt.Fprintf(stdout, "%d segment(s), %d stale, %d removed\n", len(names), stale, removed)
	return exitOK
}
