package ringbuf

// Stress: lost wakeups. Producers and consumers run in their own processes
// over a tiny ring while the parent SIGSTOPs and SIGCONTs them at random:
// all consumers at once (the ring fills and producers go to sleep on
// "full"), all producers at once (it drains and consumers sleep on
// "empty"), random subsets, one at a time. A lost wakeup leaves a side
// asleep with work waiting, which shows as a stall: the run must keep
// making progress and finally deliver every message exactly once.
//
// The run lasts a few seconds per mode; SHMKIT_STRESS=<duration> (e.g.
// 2m) makes it longer.

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
)

const (
	stressEnv = "SHMKIT_STRESS"
	// stressStall is how long the children, all running, may make no
	// progress before the run is declared stuck (a lost wakeup).
	stressStall = 5 * time.Second
	// stressLimit bounds what one producer puts.
	stressLimit = 1 << 22
)

func stressDuration(t *testing.T) time.Duration {
	if v := os.Getenv(stressEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration", stressEnv, v)
		}
		return d
	}
	if testing.Short() {
		return time.Second
	}
	return 3 * time.Second
}

func TestStressStopContNoLostWakeups(t *testing.T) {
	d := stressDuration(t)
	for _, c := range []struct {
		name            string
		opts            Options
		prodModes, cons []string
	}{
		{"mpmc", Options{Mode: MPMC, Capacity: crashCap, MaxMessage: crashMax},
			[]string{"put", "batch", "reserve"}, []string{"get", "batch", "peek"}},
		{"spsc", Options{Mode: SPSC, Capacity: 256, MaxMessage: 100}, []string{"put"}, []string{"get"}},
	} {
		t.Run(c.name, func(t *testing.T) { stressStopCont(t, c.opts, c.prodModes, c.cons, d) })
	}
}

// stressGroup is a set of children stopped and continued together.
type stressGroup []*testutil.Child

func (g stressGroup) stop(t *testing.T, r *xpRun, stopped map[*testutil.Child]bool) {
	t.Helper()
	for _, c := range g {
		if stopped[c] {
			continue
		}
		if err := c.Stop(); err != nil {
			t.Fatalf("%v\nstderr:\n%s\n%s", err, c.Stderr(), r.diag())
		}
		stopped[c] = true
	}
}

func stressStopCont(t *testing.T, opts Options, prodModes, consModes []string, d time.Duration) {
	limits := make([]int, len(prodModes))
	for i := range limits {
		limits[i] = stressLimit
	}
	r := xpNew(t, opts, true, limits, len(consModes))
	var prods, cons stressGroup
	for i, m := range consModes {
		cons = append(cons, r.consumer(i, m, testutil.GOMAXPROCS(1+i%2)))
	}
	for i, m := range prodModes {
		prods = append(prods, r.producer(i, m, 0, testutil.GOMAXPROCS(2-i%2)))
	}
	all := append(append(stressGroup{}, prods...), cons...)
	for _, c := range all {
		r.await(c, "ready")
	}
	stopped := map[*testutil.Child]bool{}
	contAll := func(g stressGroup, rng *rand.Rand) {
		for _, i := range rng.Perm(len(g)) {
			c := g[i]
			if !stopped[c] {
				continue
			}
			if err := c.Cont(); err != nil {
				t.Fatalf("%v\n%s", err, r.diag())
			}
			delete(stopped, c)
			if rng.IntN(3) == 0 {
				time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
			}
		}
	}
	defer func() {
		for c := range stopped {
			c.Cont()
		}
	}()
	rng := rand.New(rand.NewPCG(r.seed, 0))
	pause := func(maxMs int) { time.Sleep(time.Duration(1+rng.IntN(maxMs*1000)) * time.Microsecond) }
	start := time.Now()
	lastGot, lastProgress := r.res.totalGot(), time.Now()
	var rounds, fullSeen, emptySeen int
	for time.Since(start) < d {
		rounds++
		switch rng.IntN(5) {
		case 0: // nearly full: producers fill the ring and sleep on it
			cons.stop(t, r, stopped)
			pause(15)
			if r.q.Len() > 0 && (opts.Mode == SPSC || r.q.Len() == r.q.Cap()) {
				fullSeen++
			}
			contAll(cons, rng)
		case 1: // nearly empty: consumers drain the ring and sleep on it
			prods.stop(t, r, stopped)
			pause(15)
			if r.q.Len() == 0 {
				emptySeen++
			}
			contAll(prods, rng)
		case 2: // a random subset
			var g stressGroup
			for _, c := range all {
				if rng.IntN(2) == 0 {
					g = append(g, c)
				}
			}
			g.stop(t, r, stopped)
			pause(5)
			contAll(g, rng)
		case 3: // one child, very briefly, many times
			c := all[rng.IntN(len(all))]
			for i := 0; i < 10; i++ {
				stressGroup{c}.stop(t, r, stopped)
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
				contAll(stressGroup{c}, rng)
			}
		default: // run free
			pause(10)
		}
		if got := r.res.totalGot(); got != lastGot {
			lastGot, lastProgress = got, time.Now()
		} else if time.Since(lastProgress) > stressStall {
			t.Fatalf("no message delivered for %v with every child running: lost wakeup?\n%s", stressStall, r.diag())
		}
	}
	contAll(all, rng)
	r.res.store(r.res.flags, xpStopFlag, 1)
	r.wait(30*time.Second, prods...)
	if err := r.q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r.wait(30*time.Second, cons...)
	r.verify(0)
	st := r.q.Stats()
	if st.Puts != st.Gets || st.Puts != r.res.totalMade() {
		t.Errorf("stats %+v, made %d", st, r.res.totalMade())
	}
	if st.Sleeps == 0 || st.Wakeups == 0 {
		t.Errorf("nobody slept or was woken: the run tested nothing: %+v", st)
	}
	t.Logf("%v, %d rounds: %d messages; ring full %d and empty %d times at a check; %d sleeps, %d wakeups",
		time.Since(start).Round(time.Millisecond), rounds, st.Gets, fullSeen, emptySeen, st.Sleeps, st.Wakeups)
}
