package ringbuf

// Crash tests: MPMC producers and consumers SIGKILLed (or SIGSTOPped) in
// the window between claiming a position and finishing with it, at the
// handle's test hooks (hooks.claimed, hooks.got). One file over 500 lines:
// the cases share the kill harness at the top, and each reads as the
// scenario it checks.

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
)

const (
	// Four MPMC slots of 128 bytes (16-byte header and up to 100 bytes).
	crashCap, crashMax = 4 * 128, 100
	// crashVictims is how many victims each kill test SIGKILLs.
	crashVictims = 100
	// crashInFlight bounds the victims started and not yet killed.
	crashInFlight = 3
	// crashSurvivorLimit bounds what a surviving producer puts.
	crashSurvivorLimit = 1 << 21
	// crashVictimLimit bounds what a victim producer puts.
	crashVictimLimit = 8
	// crashSettle bounds how long recovery of the last victim may take.
	crashSettle = 10 * time.Second
)

func crashOpts() Options { return Options{Mode: MPMC, Capacity: crashCap, MaxMessage: crashMax} }

// crashKill runs victims: spawn(v) starts victim v, which signals event at
// the hook and blocks; each is killed as soon as it signals, with at most
// crashInFlight of them alive at once.
func crashKill(t *testing.T, r *xpRun, victims int, event string, spawn func(v int) *testutil.Child) {
	t.Helper()
	sem := make(chan struct{}, crashInFlight)
	errs := make(chan error, victims)
	var wg sync.WaitGroup
	for v := 0; v < victims; v++ {
		select {
		case sem <- struct{}{}:
		case err := <-errs:
			t.Fatalf("%v\n%s", err, r.diag())
		}
		c := spawn(v)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(r.ctx, xpEventWait)
			defer cancel()
			err := c.Await(ctx, event)
			if err == nil {
				err = c.Kill()
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("%v\n%s", err, r.diag())
	default:
	}
}

// crashAwaitStat waits until stat(q.Stats()) reaches want.
func crashAwaitStat(t *testing.T, r *xpRun, what string, want uint64, stat func(Stats) uint64) {
	t.Helper()
	deadline := time.Now().Add(crashSettle)
	for {
		got := stat(r.q.Stats())
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d\n%s", what, got, want, r.diag())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCrashProducersKilledMidPut SIGKILLs crashVictims producers, each
// between claiming a position and publishing it, while two surviving
// producers and three consumers keep running. Consumers must pad over every
// dead claim (counted in DeadProducerSlots) and deliver everything else
// exactly once.
func TestCrashProducersKilledMidPut(t *testing.T) {
	const survivors = 2
	limits := []int{crashSurvivorLimit, crashSurvivorLimit}
	for v := 0; v < crashVictims; v++ {
		limits = append(limits, crashVictimLimit)
	}
	r := xpNew(t, crashOpts(), true, limits, 3)
	start := time.Now()
	var cons []*testutil.Child
	for i, m := range []string{"get", "batch", "peek"} {
		cons = append(cons, r.consumer(i, m, testutil.GOMAXPROCS(1+i%2)))
	}
	prods := []*testutil.Child{
		r.producer(0, "put", 0, testutil.GOMAXPROCS(1)),
		r.producer(1, "batch", 0, testutil.GOMAXPROCS(2)),
	}
	for _, c := range append(prods, cons...) {
		r.await(c, "ready")
	}
	crashKill(t, r, crashVictims, "claimed", func(v int) *testutil.Child {
		// Victim v puts v%4 messages, then claims one more and hangs.
		return r.producer(survivors+v, "put", crashVictimLimit,
			testutil.Env(xpEnvHang, strconv.Itoa(v%4)), testutil.Env(xpEnvHangHow, "kill"),
			testutil.GOMAXPROCS(1+v%2))
	})
	crashAwaitStat(t, r, "DeadProducerSlots", crashVictims, func(s Stats) uint64 { return s.DeadProducerSlots })
	r.res.store(r.res.flags, xpStopFlag, 1)
	r.wait(30*time.Second, prods...)
	if err := r.q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r.wait(30*time.Second, cons...)
	r.verify(0)
	for v := 0; v < crashVictims; v++ {
		if got, want := r.res.load(r.res.made, survivors+v), uint64(v%4); got != want {
			t.Errorf("victim %d made %d messages, want %d", v, got, want)
		}
	}
	st := r.q.Stats()
	if st.DeadProducerSlots != crashVictims || st.DeadConsumerLosses != 0 || st.Puts != st.Gets || st.Puts != r.res.totalMade() {
		t.Errorf("stats %+v, want %d dead producer slots and puts == gets == %d", st, crashVictims, r.res.totalMade())
	}
	t.Logf("%d producers killed mid-put; %d messages delivered in %v", crashVictims, st.Gets, time.Since(start).Round(time.Millisecond))
}

// TestCrashConsumersKilledMidGet SIGKILLs crashVictims consumers, each
// between claiming a message and freeing its slot, while two producers and
// two consumers keep running. Each loses exactly the message it held:
// producers free the slot (DeadConsumerLosses) and the parent finds
// delivered + lost == produced, with nothing duplicated.
func TestCrashConsumersKilledMidGet(t *testing.T) {
	const survivors = 2
	r := xpNew(t, crashOpts(), false, []int{crashSurvivorLimit, crashSurvivorLimit}, survivors+crashVictims)
	start := time.Now()
	cons := []*testutil.Child{
		r.consumer(0, "get", testutil.GOMAXPROCS(1)),
		r.consumer(1, "batch", testutil.GOMAXPROCS(2)),
	}
	prods := []*testutil.Child{
		r.producer(0, "put", 0, testutil.GOMAXPROCS(2)),
		r.producer(1, "batch", 0, testutil.GOMAXPROCS(1)),
	}
	for _, c := range append(prods, cons...) {
		r.await(c, "ready")
	}
	// Victims take messages one at a time (a batch taken whole is the
	// process's to lose, not the queue's).
	modes := []string{"get", "into", "peek"}
	crashKill(t, r, crashVictims, "got", func(v int) *testutil.Child {
		return r.consumer(survivors+v, modes[v%len(modes)],
			testutil.Env(xpEnvHang, strconv.Itoa(v%4)), testutil.Env(xpEnvHangHow, "kill"),
			testutil.GOMAXPROCS(1+v%2))
	})
	crashAwaitStat(t, r, "DeadConsumerLosses", crashVictims, func(s Stats) uint64 { return s.DeadConsumerLosses })
	r.res.store(r.res.flags, xpStopFlag, 1)
	r.wait(30*time.Second, prods...)
	if err := r.q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r.wait(30*time.Second, cons...)
	r.verify(crashVictims)
	for v := 0; v < crashVictims; v++ {
		if got, want := r.res.load(r.res.got, survivors+v), uint64(v%4); got != want {
			t.Errorf("victim %d got %d messages, want %d", v, got, want)
		}
	}
	st := r.q.Stats()
	if st.DeadConsumerLosses != crashVictims || st.DeadProducerSlots != 0 || st.Puts != r.res.totalMade() {
		t.Errorf("stats %+v, want %d dead consumer losses and %d puts", st, crashVictims, r.res.totalMade())
	}
	t.Logf("%d consumers killed mid-get; %d of %d messages delivered in %v", crashVictims, r.res.totalGot(),
		r.res.totalMade(), time.Since(start).Round(time.Millisecond))
}

// TestCrashStoppedProducerIsWaitedFor SIGSTOPs a producer holding a claim:
// it is alive, so consumers wait for it rather than skip its position,
// even with later messages published behind it; once continued, its
// message arrives, in order, and nothing is counted dead.
func TestCrashStoppedProducerIsWaitedFor(t *testing.T) {
	const victimN, laterN = 4, 2
	r := xpNew(t, crashOpts(), true, []int{victimN, laterN}, 2)
	cons := []*testutil.Child{r.consumer(0, "get"), r.consumer(1, "batch", testutil.GOMAXPROCS(1))}
	// The victim puts three messages, claims the fourth position and
	// waits (then is stopped) before publishing it.
	victim := r.producer(0, "put", victimN, testutil.Env(xpEnvHang, strconv.Itoa(victimN-1)), testutil.Env(xpEnvHangHow, "wait"))
	r.await(victim, "claimed")
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	defer victim.Cont()
	later := r.producer(1, "put", laterN)
	r.wait(10*time.Second, later)
	// Both later messages are published behind the stopped claim.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if st := r.q.Stats(); st.DeadProducerSlots != 0 {
			t.Fatalf("a stopped producer's claim was padded over: %+v", st)
		}
		if r.res.bit(1, 0) || r.res.bit(1, 1) {
			t.Fatalf("a consumer skipped past a stopped producer's claim\n%s", r.diag())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.res.totalGot(); got != victimN-1 {
		t.Fatalf("consumers got %d messages while the producer was stopped, want %d\n%s", got, victimN-1, r.diag())
	}
	if err := victim.Send("go"); err != nil {
		t.Fatal(err)
	}
	if err := victim.Cont(); err != nil {
		t.Fatal(err)
	}
	r.wait(10*time.Second, victim)
	if err := r.q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r.wait(10*time.Second, cons...)
	r.verify(0)
	if st := r.q.Stats(); st.DeadProducerSlots != 0 || st.Gets != victimN+laterN {
		t.Fatalf("stats %+v", st)
	}
}

// TestCrashCloseDrainsPastDeadProducer closes the queue while its head is
// a position whose producer died mid-put: consumers must still pad over
// the dead claim and drain the messages published after it, then get
// ErrClosed.
func TestCrashCloseDrainsPastDeadProducer(t *testing.T) {
	r := xpNew(t, crashOpts(), true, []int{crashVictimLimit, 2}, 1)
	victim := r.producer(0, "put", crashVictimLimit, testutil.Env(xpEnvHang, "0"), testutil.Env(xpEnvHangHow, "kill"))
	r.await(victim, "claimed")
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	later := r.producer(1, "put", 2)
	r.wait(10*time.Second, later)
	if err := r.q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		m, err := r.q.Get(ctx)
		if err != nil {
			t.Fatalf("Get %d after Close: %v (want the messages published behind the dead claim)\n%s", i, err, r.diag())
		}
		if id, seq := binary.LittleEndian.Uint32(m[4:]), binary.LittleEndian.Uint64(m[8:]); id != 1 || seq != uint64(i) {
			t.Fatalf("Get %d: message %d/%d", i, id, seq)
		}
	}
	if _, err := r.q.Get(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after drain = %v, want ErrClosed", err)
	}
	if st := r.q.Stats(); st.DeadProducerSlots != 1 {
		t.Fatalf("stats %+v, want one dead producer slot", st)
	}
}

// TestCrashClosedQueueWaitsForStoppedProducer: after Shutdown, a consumer
// whose head position is claimed by a live (here stopped) producer waits
// for that claim to be settled, asleep and re-checking on a timer rather
// than spinning; the producer, continued, publishes: its Put returns nil,
// and the consumer receives the message, then ErrClosed.
func TestCrashClosedQueueWaitsForStoppedProducer(t *testing.T) {
	r := xpNew(t, crashOpts(), true, []int{1}, 1)
	victim := r.producer(0, "put", 1, testutil.Env(xpEnvHang, "0"), testutil.Env(xpEnvHangHow, "wait"))
	r.await(victim, "claimed")
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	defer victim.Cont()
	if err := r.q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	release := func() {
		if err := victim.Send("go"); err != nil {
			t.Fatal(err)
		}
		if err := victim.Cont(); err != nil {
			t.Fatal(err)
		}
	}
	const wait = 300 * time.Millisecond
	before := r.q.Stats().EmptyEvents
	ctx, cancel := context.WithTimeout(r.ctx, wait)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := r.q.Get(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get with a live claim pending after Close = %v, want to wait for it\n%s", err, xpDiag(r.q))
		}
	case <-time.After(wait + 5*time.Second):
		looks := r.q.Stats().EmptyEvents - before
		release() // the spinning Get takes the message and returns
		<-done
		t.Fatalf("Get ignored its %v context with a live claim pending after Close (%d looks at the ring: a spin)", wait, looks)
	}
	// A re-check every stuckGrace (10ms) makes a few dozen looks; a spin
	// makes tens of thousands.
	if looks := r.q.Stats().EmptyEvents - before; looks > 200 {
		t.Errorf("Get looked at the ring %d times in %v: it spins instead of sleeping", looks, wait)
	}
	release()
	// The claim was made before the shutdown, so the message is delivered
	// and the producer's Put reports it so.
	wctx, wcancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer wcancel()
	if err := victim.Wait(wctx); err != nil {
		t.Fatalf("producer across Shutdown: %v, want its Put to succeed", err)
	}
	ctx, cancel = context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	if m, err := r.q.Get(ctx); err != nil || binary.LittleEndian.Uint64(m[8:]) != 0 {
		t.Fatalf("Get after the producer published = %v, want its message", err)
	}
	if _, err := r.q.Get(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after the drain = %v, want ErrClosed", err)
	}
	if st := r.q.Stats(); st.DeadProducerSlots != 0 {
		t.Fatalf("stats %+v: a live producer's claim was padded over", st)
	}
}

// TestCrashLostClaimRaceDoesNotHideDeadProducer: a producer that loses the
// race for position p (its CAS of tail fails after it stored its claim
// word p+1) and then finds the ring full must not keep naming p: if the
// winner dies before publishing p, consumers would take the loser for p's
// live claimant and wait forever, and with them every producer (the ring
// is full): a deadlock. The state after the lost race is set directly on
// the loser's claim word; the loser then makes an ordinary call.
func TestCrashLostClaimRaceDoesNotHideDeadProducer(t *testing.T) {
	r := xpNew(t, crashOpts(), true, []int{crashVictimLimit, 8}, 1)
	// The victim claims position 0 and dies before publishing it.
	victim := r.producer(0, "put", crashVictimLimit, testutil.Env(xpEnvHang, "0"), testutil.Env(xpEnvHangHow, "kill"))
	r.await(victim, "claimed")
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	loser, err := Open(r.qname)
	if err != nil {
		t.Fatal(err)
	}
	defer loser.Close()
	consumer, err := Open(r.qname)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	// Positions 1..3 fill the ring.
	msg := make([]byte, xpHdr)
	for i := 0; i < 3; i++ {
		xpFill(msg, 1, uint64(i))
		if err := r.q.TryPut(msg); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	// The loser stored its claim of position 0 and lost the CAS to the
	// victim; its put finds the ring full.
	loser.mpmc().claimPut.Store(0 + 1)
	xpFill(msg, 1, 3)
	if err := loser.TryPut(msg); !errors.Is(err, ErrFull) {
		t.Fatalf("loser's TryPut = %v, want ErrFull", err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	m, err := consumer.Get(ctx)
	if err != nil {
		t.Fatalf("consumer stuck behind a dead producer's claim: %v\n%s", err, xpDiag(r.q))
	}
	if seq := binary.LittleEndian.Uint64(m[8:]); seq != 0 {
		t.Fatalf("got seq %d, want 0", seq)
	}
	if st := r.q.Stats(); st.DeadProducerSlots != 1 {
		t.Fatalf("stats %+v, want one dead producer slot", st)
	}
}

// TestCrashLostClaimRaceDoesNotHideDeadConsumer is the consumer side: a
// consumer that lost the race for message p and found the queue empty must
// not keep naming p once it returns, or producers take it for the live
// holder of p when p's real consumer died, and wait forever.
func TestCrashLostClaimRaceDoesNotHideDeadConsumer(t *testing.T) {
	r := xpNew(t, crashOpts(), true, []int{8}, 1)
	msg := make([]byte, xpHdr)
	xpFill(msg, 0, 0)
	if err := r.q.TryPut(msg); err != nil {
		t.Fatal(err)
	}
	r.res.store(r.res.made, 0, 1)
	// The victim takes message 0 (position 0) and dies holding it.
	victim := r.consumer(0, "get", testutil.Env(xpEnvHang, "0"), testutil.Env(xpEnvHangHow, "kill"))
	r.await(victim, "got")
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	loser, err := Open(r.qname)
	if err != nil {
		t.Fatal(err)
	}
	defer loser.Close()
	// The loser stored its claim of position 0, lost the CAS to the
	// victim, and found nothing more.
	loser.mpmc().claimGet.Store(0 + 1)
	if _, err := loser.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("loser's TryGet = %v, want ErrEmpty", err)
	}
	// Positions 1..3 fit; position 4 needs the victim's slot.
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	for i := 1; i <= 4; i++ {
		xpFill(msg, 0, uint64(i))
		if err := r.q.Put(ctx, msg); err != nil {
			t.Fatalf("put %d: %v (a dead consumer's slot was never freed)\n%s", i, err, xpDiag(r.q))
		}
	}
	if st := r.q.Stats(); st.DeadConsumerLosses != 1 {
		t.Fatalf("stats %+v, want one dead consumer loss", st)
	}
}

// TestCrashSleepingConsumerRecoversDeadProducer: a consumer asleep on an
// empty queue when a producer claims a position and dies must still pad
// the position over once woken (here by a later message), not go back to
// sleep because the head is unpublished: otherwise every consumer sleeps
// forever while producers fill the ring behind the dead claim.
func TestCrashSleepingConsumerRecoversDeadProducer(t *testing.T) {
	r := xpNew(t, crashOpts(), true, []int{crashVictimLimit, 8}, 1)
	consumer, err := Open(r.qname)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	type result struct {
		m   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := consumer.Get(ctx)
		got <- result{m, err}
	}()
	testutil.AwaitSleeper(t, r.q.c.notEmpty.Waiting)
	victim := r.producer(0, "put", crashVictimLimit, testutil.Env(xpEnvHang, "0"), testutil.Env(xpEnvHangHow, "kill"))
	r.await(victim, "claimed")
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, xpHdr)
	xpFill(msg, 1, 0)
	if err := r.q.Put(ctx, msg); err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil {
		t.Fatalf("sleeping consumer never recovered the dead producer's position: %v\n%s", res.err, xpDiag(r.q))
	}
	if id := binary.LittleEndian.Uint32(res.m[4:]); id != 1 {
		t.Fatalf("got a message of producer %d", id)
	}
	if st := r.q.Stats(); st.DeadProducerSlots != 1 {
		t.Fatalf("stats %+v, want one dead producer slot", st)
	}
}

// TestCrashSleepingProducerRecoversDeadConsumer: a producer asleep on a
// full ring when a consumer takes the message in its way and dies must
// free that slot once woken (here by another consumer's get), not go back
// to sleep because the slot is not free.
func TestCrashSleepingProducerRecoversDeadConsumer(t *testing.T) {
	r := xpNew(t, crashOpts(), true, []int{8}, 1)
	msg := make([]byte, xpHdr)
	for i := 0; i < r.q.Cap(); i++ {
		xpFill(msg, 0, uint64(i))
		if err := r.q.TryPut(msg); err != nil {
			t.Fatal(err)
		}
	}
	r.res.store(r.res.made, 0, uint64(r.q.Cap()))
	producer, err := Open(r.qname)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	put := make(chan error, 1)
	go func() {
		m := make([]byte, xpHdr)
		xpFill(m, 0, uint64(r.q.Cap()))
		put <- producer.Put(ctx, m)
	}()
	testutil.AwaitSleeper(t, r.q.c.notFull.Waiting)
	// The victim takes message 0, whose slot the producer waits for, and
	// dies holding it.
	victim := r.consumer(0, "get", testutil.Env(xpEnvHang, "0"), testutil.Env(xpEnvHangHow, "kill"))
	r.await(victim, "got")
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.q.TryGet(); err != nil {
		t.Fatal(err)
	}
	if err := <-put; err != nil {
		t.Fatalf("sleeping producer never freed the dead consumer's slot: %v\n%s", err, xpDiag(r.q))
	}
	if st := r.q.Stats(); st.DeadConsumerLosses != 1 {
		t.Fatalf("stats %+v, want one dead consumer loss", st)
	}
}

// TestCrashSlowConsumerIsNotCorruption: while one consumer holds a message
// (Peek, or just slow between claim and free), others may take every later
// message, and the next position's slot then still holds the held message's
// lap. That is an empty queue, not a corrupt one.
func TestCrashSlowConsumerIsNotCorruption(t *testing.T) {
	r := xpNew(t, crashOpts(), true, []int{8}, 1)
	slow, err := Open(r.qname)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := Open(r.qname)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	msg := make([]byte, xpHdr)
	for i := 0; i < r.q.Cap(); i++ {
		xpFill(msg, 0, uint64(i))
		if err := r.q.TryPut(msg); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	err = slow.WithPeek(ctx, func([]byte) error {
		for i := 1; i < r.q.Cap(); i++ {
			if _, err := fast.TryGet(); err != nil {
				t.Fatalf("get %d: %v", i, err)
			}
		}
		if _, err := fast.TryGet(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryGet with the previous lap still held = %v, want ErrEmpty\n%s", err, xpDiag(r.q))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	xpFill(msg, 0, uint64(r.q.Cap()))
	if err := r.q.TryPut(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Get(ctx); err != nil {
		t.Fatalf("Get after Release: %v", err)
	}
}
