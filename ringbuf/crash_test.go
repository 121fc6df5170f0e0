package ringbuf

// Crash tests: MPMC producers and consumers SIGKILLed (or SIGSTOPped) in
// the window between claiming a position and finishing with it, at the
// test hooks testHookClaimed and testHookGot; and a corrupt ring, which
// must give ErrCorrupt, never a panic or a hang.

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
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

// crashAwaitSleeper waits until someone announced itself asleep on ec.
func crashAwaitSleeper(t *testing.T, ec *futex.EventCount) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ec.Waiting() {
		if time.Now().After(deadline) {
			t.Fatal("nobody went to sleep")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // from announcing to FUTEX_WAIT
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
	crashAwaitSleeper(t, r.q.c.notEmpty)
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
	crashAwaitSleeper(t, r.q.c.notFull)
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

// ---- corruption ----

// corruptCase corrupts a fresh queue q (after setup puts/gets through it)
// and names the side whose calls must fail.
type corruptCase struct {
	name    string
	mode    Mode
	side    string // "get" or "put"
	corrupt func(t *testing.T, q *Queue, ring []byte)
}

// corruptRing returns the queue's ring memory, looked up by name as
// another process would.
func corruptRing(t *testing.T, q *Queue) []byte {
	t.Helper()
	_, ring, err := q.Segment().Lookup(objRing, shm.KindRing, uint32(q.Mode()))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func corruptPut(t *testing.T, q *Queue, sizes ...int) {
	t.Helper()
	for _, n := range sizes {
		if err := q.TryPut(make([]byte, n)); err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
	}
}

func corruptGet(t *testing.T, q *Queue, k int) {
	t.Helper()
	for i := 0; i < k; i++ {
		if _, err := q.TryGet(); err != nil {
			t.Fatalf("get: %v", err)
		}
	}
}

func corruptCases() []corruptCase {
	le32 := binary.LittleEndian.PutUint32
	return []corruptCase{
		// SPSC: a ring of 256 bytes, records of 8-byte header + payload.
		{"spsc/length-beyond-capacity", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[0:], 1<<30)
		}},
		{"spsc/length-beyond-max-message", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 100, 100)
			le32(ring[0:], 101)
		}},
		{"spsc/length-beyond-published", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 8)
			le32(ring[0:], 64)
		}},
		{"spsc/bad-flags", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[4:], 0xdeadbeef)
		}},
		{"spsc/bad-padding", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			// Records of 112 bytes at 0 and 112; the third pads 224..255.
			corruptPut(t, q, 100, 100)
			corruptGet(t, q, 2)
			corruptPut(t, q, 100)
			if f := binary.LittleEndian.Uint32(ring[224+4:]); f != recPad {
				t.Fatalf("no padding record at 224: flags %#x", f)
			}
			le32(ring[224:], 8)
		}},
		{"spsc/tail-beyond-head-plus-capacity", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			corruptGet(t, q, 1)
			q.c.ctl.u64(cTail).Store(q.c.ctl.u64(cHead).Load() + 256 + 8)
		}},
		{"spsc/tail-behind-head", SPSC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 100)
			corruptGet(t, q, 1)
			q.c.ctl.u64(cTail).Store(8)
		}},
		{"spsc/head-beyond-tail", SPSC, "put", func(t *testing.T, q *Queue, ring []byte) {
			for q.TryPut(make([]byte, 50)) == nil {
			}
			q.c.ctl.u64(cHead).Store(q.c.ctl.u64(cTail).Load() + 8)
		}},
		// MPMC: four slots {seq uint64, len uint32, flags uint32, payload}.
		{"mpmc/sequence-out-of-range-at-head", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			q.mpmc().seq(0).Store(12345)
		}},
		{"mpmc/sequence-out-of-range-at-tail", MPMC, "put", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			q.mpmc().seq(1).Store(999)
		}},
		{"mpmc/length-beyond-max-message", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[8:], crashMax+1)
		}},
		{"mpmc/length-beyond-capacity", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[8:], 1<<31)
		}},
		{"mpmc/bad-flags", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			le32(ring[12:], 7)
		}},
		{"mpmc/tail-beyond-head-plus-slots", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			q.c.ctl.u64(cTail).Store(4 + 5)
		}},
		{"mpmc/head-beyond-tail", MPMC, "get", func(t *testing.T, q *Queue, ring []byte) {
			corruptPut(t, q, 10)
			corruptGet(t, q, 1)
			q.c.ctl.u64(cHead).Store(3)
		}},
	}
}

// corruptCall runs one call of the named form on q with a deadline and
// returns its error (a hang is a failure, reported as such).
func corruptCall(t *testing.T, q *Queue, form string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	buf := make([]byte, 4*crashMax)
	var err error
	switch form {
	case "TryGet":
		_, err = q.TryGet()
	case "Get":
		_, err = q.Get(ctx)
	case "GetInto":
		_, err = q.GetInto(ctx, buf)
	case "GetBatch":
		_, err = q.GetBatch(ctx, buf, make([]int, 4))
	case "Peek":
		err = q.WithPeek(ctx, func([]byte) error { return nil })
	case "TryPut":
		err = q.TryPut(make([]byte, 10))
	case "Put":
		err = q.Put(ctx, make([]byte, 10))
	case "PutBatch":
		_, err = q.PutBatch(ctx, [][]byte{make([]byte, 10), make([]byte, 20)})
	case "Reserve":
		err = q.WithReserve(ctx, 10, func([]byte) (int, error) { return 10, nil })
	default:
		t.Fatalf("unknown form %q", form)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s on a corrupt ring hung (%v)\n%s", form, err, xpDiag(q))
	}
	return err
}

// TestCorruptRing corrupts the shared words of a queue in each way a
// faulty or hostile peer could, and checks that every form of call on the
// affected side fails with ErrCorrupt (matching shm.ErrCorrupt), again on
// the next call (the handle is unusable), and never panics or hangs.
func TestCorruptRing(t *testing.T) {
	forms := map[string][]string{
		"get": {"TryGet", "Get", "GetInto", "GetBatch", "Peek"},
		"put": {"TryPut", "Put", "PutBatch", "Reserve"},
	}
	for _, c := range corruptCases() {
		for _, form := range forms[c.side] {
			t.Run(c.name+"/"+form, func(t *testing.T) {
				capacity, maxMsg := 256, 100
				if c.mode == MPMC {
					capacity, maxMsg = crashCap, crashMax
				}
				q := newQ(t, Options{Mode: c.mode, Capacity: capacity, MaxMessage: maxMsg})
				c.corrupt(t, q, corruptRing(t, q))
				err := corruptCall(t, q, form)
				if !errors.Is(err, ErrCorrupt) || !errors.Is(err, shm.ErrCorrupt) {
					t.Fatalf("%s = %v, want ErrCorrupt\n%s", form, err, xpDiag(q))
				}
				if err := corruptCall(t, q, form); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("second %s = %v, want ErrCorrupt", form, err)
				}
			})
		}
	}
}

// TestCorruptConfig corrupts a named queue's immutable configuration:
// Open must refuse it with ErrCorrupt.
func TestCorruptConfig(t *testing.T) {
	for _, c := range []struct {
		name    string
		mode    Mode
		corrupt func(q *Queue)
	}{
		{"spsc/capacity-not-ring-size", SPSC, func(q *Queue) { q.c.ctl.u64(cCapacity).Store(128) }},
		{"spsc/max-message-too-large", SPSC, func(q *Queue) { q.c.ctl.u32(cMaxMsg).Store(200) }},
		{"mpmc/slots-not-power-of-two", MPMC, func(q *Queue) { q.c.ctl.u64(cCapacity).Store(3) }},
		{"mpmc/slot-size-too-small", MPMC, func(q *Queue) { q.c.ctl.u32(cSlotSize).Store(64) }},
		{"mpmc/mode-changed", MPMC, func(q *Queue) { q.c.ctl.u32(cMode).Store(uint32(SPSC)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := testutil.Name(t)
			capacity := 256
			if c.mode == MPMC {
				capacity = crashCap
			}
			q, err := Create(name, Options{Mode: c.mode, Capacity: capacity, MaxMessage: 100})
			if err != nil {
				t.Fatal(err)
			}
			defer Unlink(name)
			defer q.Close()
			c.corrupt(q)
			q2, err := Open(name)
			if err == nil {
				q2.Close()
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}
