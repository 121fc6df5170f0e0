/*
 * Model of the MPMC ring (mpmc.go, mpmc_recover.go): claim, publish,
 * consume, shutdown, and recovery of positions whose claimant died.
 * Checked by spin through .ci/models:
 *
 * spin: CHECK
 * spin: CHECK -DCCRASH
 * spin: MUTANT -DRECOVER_LIVE
 * spin: MUTANT -DCLAIM_AFTER_CAS
 * spin: MUTANT -DDROP_LATE
 * spin: MUTANT -DCCRASH -DFREE_BEFORE_READ
 * spin: MUTANT -DCCRASH -DNO_LAP_CHECK
 * spin: MUTANT -DCCRASH -DRECOVER_LIVE
 *
 * Two slots, and a shutdown at any time. Two scenarios keep the state
 * space small enough for CI. By default a producer dies: P0 puts two
 * messages, P1 one and may be killed between claim and publish, C2
 * consumes. With -DCCRASH a consumer dies: P0 puts three messages (the
 * ring wraps), C2 consumes, and C3 may be killed between taking a message
 * and freeing its slot. Ghost state checks:
 *   - no overwrite of unread data: a producer writes only a slot no
 *     consumer still has to read;
 *   - no torn, duplicate or invented message: a consumer reads what was
 *     put, each message at most once;
 *   - nil means delivered: once nothing can move, every put that returned
 *     nil was received, unless it was taken by the consumer that died;
 *   - progress: nobody is left blocked (invalid end state), and the dead
 *     ones' positions are recovered.
 *
 * Go lines a step stands for:
 *   claim := p+1; CAS tail          mpmcRing.claimPutPos
 *   write, seq := p+1               reserve's copy, mpmcRing.publish
 *   claim := p+1; CAS head; read    mpmcRing.claimGetPos, the copy
 *   seq := p+nslots                 mpmcRing.free
 *   no live claimant?               mpmcRing.claimantAlive
 *   CAS head; seq p → p+nslots      mpmcRing.recoverProducer (or, found
 *                                   published, delivered: mpmcRing.held)
 *   CAS seq p+1 → p+nslots          mpmcRing.recoverConsumer
 *   tail |= CLOSED                  mpmcRing.shutdown
 *
 * Mutants: RECOVER_LIVE (recovery without asking about liveness),
 * CLAIM_AFTER_CAS (the claim word is stored after the CAS that takes the
 * position), FREE_BEFORE_READ (the slot is handed on before it is read),
 * NO_LAP_CHECK (a producer claims a slot whose previous lap is unread),
 * DROP_LATE (a recoverer that took a position whose producer published
 * after all, between the liveness check and the head CAS, skips it: the
 * message is lost; spin found this in the Go code, which now delivers it).
 */

#define N 2           /* slots */
#define NP 4          /* participants: 0, 1 producers; 2, 3 consumers */
#define IDS 4         /* message ids 1..3 */
#define CLOSED 128

byte seq[N];          /* slot sequence numbers (initially i) */
byte data[N];         /* id held by a slot */
bool unread[N];       /* ghost: the slot holds a message nobody finished reading */
byte tail;            /* position | CLOSED */
byte head;
byte claimPut[NP];    /* claim words: position + 1, 0 = none */
byte claimGet[NP];
bool alive[NP];
bool ok[IDS];         /* ghost: the put of id returned nil */
byte recvd[IDS];      /* ghost: times id was received */
bool lost[IDS];       /* ghost: id was taken by a consumer that died */
byte deadProd, deadCons;
byte deaths;          /* kills and withdrawn claims so far: a side stuck on a
                       * claim re-checks on a timer (retryAfter), which is as
                       * if woken by either */

/* Is a live participant claiming v in the put (side 0) or get (side 1)
 * words? One step: the Go loop reads the words one at a time, but a claim
 * word changes only to start a new claim (after finishing the old one) or
 * to withdraw a lost race, so what matters is which of those steps the
 * scan comes after, and that order is explored either way. */
inline claimantAlive(side, v, res) {
	d_step {
		res = false;
		i = 0;
		do
		:: i < NP ->
			if
			:: side == 0 && claimPut[i] == v && alive[i] -> res = true
			:: side == 1 && claimGet[i] == v && alive[i] -> res = true
			:: else -> skip
			fi;
			i++
		:: else -> break
		od;
		i = 0
	}
}

/* The consumer's recovery of position q whose producer died unpublished. */
inline recoverProducer(pos) {
	q = pos;
#ifdef RECOVER_LIVE
	live = false;
#else
	claimantAlive(0, q + 1, live);
#endif
	held = false;
	if
	:: !live ->
		claimGet[me] = q + 1;
		atomic {
			if
			:: head == q -> head = q + 1;
				if
				:: seq[q % N] == q -> seq[q % N] = q + N; deadProd++
#ifndef DROP_LATE
				:: seq[q % N] == q + 1 -> held = true   /* published after all: ours to deliver */
#endif
				:: else -> deadProd++   /* handed on by a producer, or (DROP_LATE) dropped */
				fi
			:: else -> claimGet[me] = 0
			fi
		}
	:: else -> skip
	fi
}

/* The producer's recovery of the slot of position q whose consumer died
 * before freeing it. */
inline recoverConsumer(pos) {
	q = pos;
#ifdef RECOVER_LIVE
	live = false;
#else
	claimantAlive(1, q + 1, live);
#endif
	if
	:: !live ->
		atomic {
			if
			:: seq[q % N] == q + 1 -> seq[q % N] = q + N; deadCons++; unread[q % N] = false
			:: seq[q % N] == q -> seq[q % N] = q + N
			:: else -> skip
			fi
		}
	:: else -> skip
	fi
}

proctype Producer(byte me; byte first; byte last; bool mayDie) {
	byte p, q, t, s, id, i, d;
	bool live;
	id = first;
	do
	:: id > last -> break
	:: id <= last ->
		t = tail;
		if
		:: t & CLOSED -> goto refused   /* ErrClosed */
		:: else -> skip
		fi;
		p = t;
		s = seq[p % N];
		if
		:: s == p ->
#ifndef CLAIM_AFTER_CAS
			claimPut[me] = p + 1;
#endif
			atomic {
				if
				:: tail == p -> tail = p + 1
				:: else -> claimPut[me] = 0; deaths++; goto again   /* lost the race */
				fi
			};
#ifdef CLAIM_AFTER_CAS
			claimPut[me] = p + 1;
#endif
			if :: mayDie -> goto dead :: true -> skip fi;
			assert(!unread[p % N]);   /* never over unread data */
			data[p % N] = id;
			atomic { seq[p % N] = p + 1; unread[p % N] = true; ok[id] = true };
			id++
#ifdef NO_LAP_CHECK
		:: p >= N && (s == p - N + 1) ->
			claimPut[me] = p + 1;
			atomic { if :: tail == p -> tail = p + 1 :: else -> claimPut[me] = 0; goto again fi };
			assert(!unread[p % N]);
			data[p % N] = id;
			atomic { seq[p % N] = p + 1; unread[p % N] = true; ok[id] = true };
			id++
#endif
		:: p >= N && (s == p - N || s == p - N + 1) ->
			claimPut[me] = 0;
			if
			:: head > p - N ->
				/* a consumer took lap p-N and has not freed it: slow or dead */
				d = deaths;
				recoverConsumer(p - N);
				if :: seq[p % N] == s -> (seq[p % N] != s || tail != t || deaths != d) :: else -> skip fi
			:: else ->
				(seq[p % N] != s || head != p - N || tail != t)   /* full: wait */
			fi
		:: else ->
			assert(tail != t)   /* anything else: another producer moved on */
		fi;
again:		skip
	od;
refused: goto out;
dead:	atomic { alive[me] = false; deaths++ };
out:	skip
}

proctype Consumer(byte me; bool mayDie) {
	byte p, q, t, s, id, i, d;
	bool live, held;
	do
	:: p = head;
		s = seq[p % N];
		if
		:: s == p + 1 ->
			claimGet[me] = p + 1;
			atomic {
				if
				:: head == p -> head = p + 1
				:: else -> claimGet[me] = 0; goto again
				fi
			};
consume:
#ifdef FREE_BEFORE_READ
			atomic { seq[p % N] = p + N; unread[p % N] = false };
#endif
			id = data[p % N];
			if
			:: mayDie -> atomic { lost[id] = true; alive[me] = false; deaths++ }; goto out
			:: true -> skip
			fi;
			/* the copy: still the message of p */
			assert(data[p % N] == id && id > 0);
			recvd[id]++;
			assert(recvd[id] == 1);   /* each message once */
#ifndef FREE_BEFORE_READ
			atomic { seq[p % N] = p + N; unread[p % N] = false }
#endif
		:: s == p ->
			claimGet[me] = 0;
			t = tail;
			if
			:: (t & ~CLOSED) > p ->
				/* claimed, unpublished: slow, or dead (after the grace) */
				d = deaths;
				recoverProducer(p);
				if :: held -> goto consume :: else -> skip fi;
				if :: head == p && seq[p % N] == s -> (head != p || seq[p % N] != s || deaths != d) :: else -> skip fi
			:: (t & ~CLOSED) == p && (t & CLOSED) -> break   /* drained */
			:: (t & ~CLOSED) == p && !(t & CLOSED) -> (tail != t || head != p)
			fi
		:: p >= N && (s == p + 1 - N || s == p - N) ->
			claimGet[me] = 0;
			t = tail;
			if
			:: (t & CLOSED) && (t & ~CLOSED) <= p -> break
			:: else -> (seq[p % N] != s || head != p || tail != t)
			fi
		:: else ->
			assert(head != p)   /* else corrupt */
		fi;
again:		skip
	od;
out:	skip
}

proctype Shutdown() {
	atomic { tail = tail | CLOSED }
}

/* Once nothing can move: every put that returned nil was received, unless
 * a consumer died holding it. */
proctype Final() {
	byte i = 1;
	timeout;
	do :: i < IDS -> assert(!ok[i] || recvd[i] == 1 || lost[i]); i++ :: else -> break od
}

init {
	atomic {
		seq[0] = 0; seq[1] = 1;
		alive[0] = true; alive[1] = true; alive[2] = true; alive[3] = true;
#ifdef CCRASH
		run Producer(0, 1, 3, false);
		run Consumer(2, false);
		run Consumer(3, true);
#else
		run Producer(0, 1, 2, false);
		run Producer(1, 3, 3, true);
		run Consumer(2, false);
#endif
		run Shutdown();
		run Final()
	}
}
