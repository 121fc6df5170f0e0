/*
 * Model of the event count (eventcount.go), checked by spin.
 *
 *   spin -a eventcount.pml && cc -DSAFETY -o pan pan.c && ./pan -m100000
 *
 * .ci/models runs every configuration below (a "spin:" line: CHECK must
 * pass, MUTANT must fail), in .ci/run:
 *
 * spin: CHECK
 * spin: CHECK -DCANCEL
 * spin: CHECK -DCRASH
 * spin: MUTANT -DNO_ANNOUNCE
 * spin: MUTANT -DCHECK_FIRST
 * spin: MUTANT -DCANCEL -DNO_PASS_ON
 * spin: MUTANT -DCRASH -DNO_REPAIR
 * spin: MUTANT -DCRASH -DRECLAIM_LIVE
 *
 * Three scenarios keep the state space small enough for CI (see NEED):
 * by default SHARE (A1, A2, W), -DCANCEL (A2, X, C, W), -DCRASH (A1, B, C, W).
 *
 * Who is modelled:
 *   - process A (participant slot 0): two goroutines, A1 and A2, sharing the
 *     slot's announcement (a count under a mutex, the bit set while it is
 *     non-zero) and one Gate, so at most one of them is in FUTEX_WAIT;
 *     (local scenario; in the crash one A has A1 only);
 *   - process B (slot 1, crash scenario): announces itself and may go to
 *     sleep, and is killed somewhere in its wait: its bit and entry stay;
 *   - process C (slot 1; in the crash scenario only after B died, so a new
 *     participant of the same slot with a new token), which waits too;
 *   - the waker W: publishes items one at a time (the caller's
 *     change: a CAS on a count), each followed by Notify(1), and reclaims
 *     dead announcements when a wake finds nobody asleep.
 * A1 and C each take one item (a CAS) and must finish; A2 may take one (W
 * then publishes one more) or give up when its context ends. W ends once
 * they all did: a waiter left asleep is a lost wakeup, which spin reports
 * as an invalid end state (W waiting for it). Mask and entries hold
 * one slot each; seq is a byte (it wraps, as the uint32 does).
 *
 * Which Go lines a step stands for (eventcount.go):
 *   announce/withdraw   EventCount.announce, EventCount.withdraw
 *   s = seq; ready()    the loop in EventCount.Wait
 *   FUTEX_WAIT          EventCount.sleep → wait (futex_linux.go)
 *   gave up + pass on   Wait's error branch → passOn
 *   Notify              EventCount.Notify → notifySlow
 *   reclaim             EventCount.Reclaim → reclaimSlot
 *
 * Mutants (each must make spin report an error; modelcheck fails if one
 * passes):
 *   NO_ANNOUNCE     the waiter never sets its bit                 (SHARE)
 *   CHECK_FIRST     the waiter re-checks the state before announcing (SHARE)
 *   NO_PASS_ON      a waiter that gives up neither acts on a ready state
 *                   nor passes a consumed wakeup on              (CANCEL)
 *   NO_REPAIR       the reclaimer clears a bit without looking at the entry
 *                   again (slot reuse races it)                   (CRASH)
 *   RECLAIM_LIVE    the reclaimer clears bits without asking about
 *                   liveness                                      (CRASH)
 */

/* Scenarios: SHARE (default): A1 and A2 in slot 0 take one item each;
 * CANCEL: A2 (which may give up) in slot 0 and C in slot 1; CRASH: A1 in
 * slot 0, B dies in slot 1, C reuses it. NEED waiters count in finished. */
#if defined(CRASH)
#define NEED 2
#elif defined(CANCEL)
#define NEED 1
#else
#define NEED 2
#endif
#define ITEMS NEED    /* W adds one when a cancellable A2 takes one */
#define NG 4          /* goroutines that can sleep: A1=0, A2=1, B=2, C=3 */

byte items;           /* the waited-for state: items published, not taken */
byte seq;             /* the futex word */
bool mbit[2];          /* mask: slot 0 (A), slot 1 (B, then C) */
byte entry[2];        /* token of the announcer; 0 = none */
bool alive[4];        /* by token: 1 = A, 2 = B, 3 = C */
bool sleeping[NG];    /* in FUTEX_WAIT, not yet woken */
byte acount;          /* A's local announcement count (under A's mutex) */
bool agate;           /* A's Gate: one goroutine of A in the kernel */
bool bdead;           /* B was killed: slot 1 may be taken by C */
byte finished;        /* A1 and C: waiters that got their item */
bool a2took;          /* A2 took an item (so W publishes one more) */
bool a2out;           /* A2 is done, with an item or giving up */
bool ctxdone;         /* A2's context ended */

/* FUTEX_WAIT(seq, v) for goroutine g: sleep only if seq still holds v. */
inline futex_wait(g, v) {
	atomic { if :: seq == v -> sleeping[g] = true :: else -> skip fi }
	(!sleeping[g])  /* woken (or never slept) */
}

/* FUTEX_WAKE(seq, n): wake up to n sleepers; woke counts them. */
inline futex_wake(n, woke) {
	atomic {
		woke = 0;
		i = 0;
		do
		:: i < NG ->
			if :: sleeping[i] && woke < n -> sleeping[i] = false; woke++ :: else -> skip fi;
			i++
		:: else -> break
		od
	}
}

inline take(got) {
	atomic { if :: items > 0 -> items--; got = true :: else -> got = false fi }
}

/* announce/withdraw of slot 0, shared by A1 and A2 (the mutex: atomic). */
inline a_announce() {
	atomic {
		if
		:: acount == 0 ->
#ifndef NO_ANNOUNCE
			entry[0] = 1; mbit[0] = true
#else
			skip
#endif
		:: else -> skip
		fi;
		acount++
	}
}
inline a_withdraw() {
	atomic {
		acount--;
		if :: acount == 0 -> if :: entry[0] == 1 -> entry[0] = 0 :: else -> skip fi; mbit[0] = false
		   :: else -> skip fi
	}
}

/* A goroutine of A: Wait(ready: items > 0), then take; loop until taken. */
proctype A(byte g; bool mayCancel) {
	bool got = false;
	byte s, w, i;
	do
	:: take(got); if :: got -> break :: else -> skip fi;
#ifdef CHECK_FIRST
		s = seq;
		if :: items > 0 -> goto retry :: else -> skip fi;
		a_announce();
#else
		a_announce();
#endif
		do
		:: s = seq;
#ifndef CHECK_FIRST
			if :: items > 0 -> break :: else -> skip fi;
#endif
			/* the Gate: one goroutine of A sleeps in the kernel */
			atomic { !agate -> agate = true };
			if
			:: mayCancel && ctxdone -> skip   /* ctx.Done before the AfterFunc: no sleep */
			:: else ->
				if
				:: seq == s -> futex_wait(g, s)
				:: else -> skip
				fi
			fi;
			agate = false;
			if
			:: mayCancel ->
				if
				:: ctxdone ->
#ifndef NO_PASS_ON
					/* ready: act on it (Wait returns nil); else pass on a
					 * wakeup it may have consumed */
					if :: items > 0 -> break
					:: else ->
						if :: seq != s && (mbit[0] || mbit[1]) -> atomic { seq++ }; futex_wake(1, w)
						   :: else -> skip fi
					fi;
#endif
					a_withdraw();
					goto cancelled
				:: else -> skip
				fi
			:: else -> skip
			fi;
#ifdef CHECK_FIRST
			if :: items > 0 -> break :: else -> skip fi
#endif
		od;
		a_withdraw();
retry:		skip
	od;
	atomic { if :: mayCancel -> a2took = true :: else -> finished++ fi };
cancelled:	skip;
	if :: mayCancel -> a2out = true :: else -> skip fi
}

/* B: announces, maybe sleeps, and is killed at any point of its wait. */
proctype B() {
	byte s;
	atomic { entry[1] = 2; mbit[1] = true };
	s = seq;
	if
	:: atomic { seq == s -> sleeping[2] = true }   /* asleep when killed */
	:: true
	fi;
	/* SIGKILL: the kernel drops B's OFD lock and removes it from the futex queue. */
	atomic { alive[2] = false; sleeping[2] = false; bdead = true }
}

/* C: a new process in B's slot, waiting for one item. */
proctype C() {
	bool got = false;
	byte s, i;
#ifdef CRASH
	bdead;
#endif
	atomic { alive[3] = true };
	do
	:: take(got); if :: got -> break :: else -> skip fi;
		atomic { entry[1] = 3; mbit[1] = true };
		do
		:: s = seq;
			if :: items > 0 -> break :: else -> skip fi;
			futex_wait(3, s)
		od;
		atomic { if :: entry[1] == 3 -> entry[1] = 0 :: else -> skip fi };
		mbit[1] = false
	od;
	atomic { finished++ }
}

/* A2's context ends at some point: the AfterFunc bumps seq and wakes the
 * sleepers of slot 0 (FUTEX_WAKE_BITSET with the slot's bit). */
proctype X() {
	byte i;
	ctxdone = true;
	atomic { seq++ };
	atomic { sleeping[0] = false; sleeping[1] = false }
}

/* The reclaimer's work for slot k (reclaimSlot). */
inline reclaim_slot(k) {
	t = entry[k];
	clr = true;
	if
	:: t != 0 ->
#ifndef RECLAIM_LIVE
		if :: alive[t] -> clr = false :: else -> skip fi;
#endif
		if
		:: clr -> atomic { if :: entry[k] == t -> entry[k] = 0 :: else -> clr = false fi }
		:: else -> skip
		fi
	:: else -> skip   /* no entry: the announcer was withdrawing */
	fi;
	if
	:: clr ->
		mbit[k] = false;
#ifndef NO_REPAIR
		if
		:: entry[k] != 0 ->
			/* a live participant of slot k announced meanwhile */
			mbit[k] = true;
			atomic { seq++ };
			futex_wake(NG, w2)
		:: else -> skip
		fi
#endif
	:: else -> skip
	fi
}

proctype W() {
	byte n = 0, woke, w2, t, i;
	bool clr;
	do
	:: n >= ITEMS + a2took && finished == NEED && a2out -> break
	:: n < ITEMS + a2took ->
		atomic { items++ };   /* the caller's change */
		n++;
		/* Notify(1) */
		if
		:: mbit[0] || mbit[1] ->
			atomic { seq++ };
			futex_wake(1, woke);
			if
			:: woke == 0 ->
				/* nobody asleep: reclaim (rate-limited in Go: maybe not now) */
				if
				:: true -> reclaim_slot(0); reclaim_slot(1)
				:: true -> skip
				fi
			:: else -> skip
			fi
		:: else -> skip
		fi
	od
}

init {
	alive[1] = true;
	atomic {
#if defined(CRASH)
		a2out = true;
		alive[2] = true;
		run A(0, false);
		run B();
		run C();
#elif defined(CANCEL)
		run A(1, true);
		run X();
		run C();
#else
		a2out = true;
		run A(0, false);
		run A(1, false);
#endif
		run W()
	}
}
