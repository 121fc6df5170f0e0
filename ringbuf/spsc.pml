/*
 * Model of the SPSC ring (spsc.go): publish, consume, lazy head release,
 * shutdown, and a side taken over from a process that died. Checked by
 * spin through .ci/models:
 *
 * spin: CHECK
 * spin: CHECK -DCRASH_CONSUMER
 * spin: CHECK -DCRASH_SHUTDOWN
 * spin: MUTANT -DPUBLISH_EARLY
 * spin: MUTANT -DROOM_OFF_BY_ONE
 * spin: MUTANT -DRELEASE_EARLY
 * spin: MUTANT -DNO_SEAL
 * spin: MUTANT -DSEAL_ON_BIT_ONLY
 * spin: MUTANT -DSEAL_FIRST_IS_LOST
 * spin: MUTANT -DCRASH_SHUTDOWN -DNO_CONSUMER_OR
 *
 * The ring has CAP cells; a record takes one or two cells and never wraps
 * (a padding cell fills the end first). Positions only grow; cell = pos %
 * CAP. Shutdown sets the closed flag, then the shutdown bit (CLOSED) in
 * tail; the producer publishes with a swap, and the queue's end is settled
 * by a CAS on the seal word (see spsc.go). Ghost state checks:
 *   - no overwrite of unread data: a producer never writes a cell that
 *     holds a published record the consumer has not released (unread);
 *   - no torn or stale read: the consumer reads each record twice (its
 *     header, then its payload, as the copy does) and finds what was put,
 *     in order;
 *   - nil means delivered: every put that returned nil is received before
 *     the consumer sees the queue shut down and drained, and none that
 *     returned ErrClosed is ever received;
 *   - progress: no process is left blocked (invalid end state).
 *
 * Go lines a step stands for (spsc.go):
 *   room check, head reload     spscRing.reserve
 *   write cells                 reserve (padding), stage (header), the copy
 *   publish: swap tail; seal    spscRing.flush
 *   shutdown: flag, tail |= CLOSED  spscRing.shutdown
 *   seal when drained           spscRing.next
 *   load tail, read, consume    spscRing.next, consume
 *   publish head (lazily)       spscRing.release
 *   takeover                    takeProducer / takeConsumer
 *
 * The producer process dies (in every run, at a point spin chooses) and a
 * successor takes the producer side over from the published tail: what the
 * dead one wrote and did not publish is gone, as if never put. With
 * -DCRASH_CONSUMER the consumer dies too and a successor resumes from the
 * published head: a crashed consumer's messages since its last head
 * publication are delivered again to its successor (at least once), and
 * nothing is lost or skipped.
 *
 * With -DCRASH_SHUTDOWN the Shutdown caller may die between the flag and
 * the bit, as a producer may between its swap and putting the bit back
 * (in every run): consumers that find the flag without the bit set it.
 *
 * Mutants: NO_CONSUMER_OR (they do not), PUBLISH_EARLY (tail published before the record is written),
 * ROOM_OFF_BY_ONE (a record one cell too long is taken to fit),
 * RELEASE_EARLY (head published before the record is read), NO_SEAL (a
 * publish whose swap found the shutdown reports success without settling
 * the end with the consumer), SEAL_FIRST_IS_LOST (a publish that lost the
 * seal to a consumer reports ErrClosed even when that consumer read its
 * record in the moment the swap had cleared the bit), SEAL_ON_BIT_ONLY (a consumer that sealed
 * heeds the seal only while tail shows the shutdown bit, which a racing
 * publish clears for a moment).
 */

#define CAP 4
#ifdef CRASH_CONSUMER
#define PUTS 3        /* two deaths and two successors: fewer puts keep the search short */
#else
#define PUTS 4        /* messages the producers try to put, in all */
#endif
#define CLOSED 128    /* the tail's shutdown bit (bit 63 in Go) */
#define PAD 255       /* a padding cell's id */

byte cell[CAP];       /* id of the record a cell belongs to (PAD: padding) */
byte size[CAP];       /* cells of the record starting here */
bool unread[CAP];     /* ghost: published, not yet released by the consumer */
byte tail;            /* published position | CLOSED */
byte head;            /* published head */
byte nextId = 1;      /* ids handed out to puts, in order */
bool ok[PUTS + 2];    /* ghost: the put of id returned nil */
byte got;             /* ghost: last id received, in order */
bool recv[PUTS + 2];  /* ghost: id was received */
bool unsure[PUTS + 2];/* ghost: its producer died after publishing it: either way */
byte relGot;          /* ghost: last id received before the last head publication */
byte seal;            /* final position + 1, once sealed */
bool closed;          /* the closed flag (config line) */

inline write_cell(c, v, n) {
	assert(!unread[c]);   /* never over unread data */
	cell[c] = v;
	size[c] = n
}

/* Marks the cells of the record being published unread. */
inline mark_unread() {
	unread[off] = true;
	if :: need == 2 -> unread[off + 1] = true :: else -> skip fi;
	if :: pad > 0 -> unread[poff] = true :: else -> skip fi
}

/* publish: swap tail; if the swap found the shutdown bit, put it back and
 * settle by the seal (spscRing.flush). */
inline publish(pos) {
	atomic { old = tail; tail = pos; mark_unread() };
	if
	:: old == pub -> atomic { ok[id] = true; pub = pos }
	:: old == (pub | CLOSED) ->
		/* killed between the swap and putting the bit back */
		if :: mayDie -> unsure[id] = true; goto dead :: true -> skip fi;
#ifdef NO_SEAL
		atomic { ok[id] = true; pub = pos }
#else
		atomic { tail = tail | CLOSED };
		atomic {
			if
			:: seal == 0 -> seal = pos + 1; ok[id] = true; pub = pos   /* delivered */
#ifdef SEAL_FIRST_IS_LOST
			:: else -> skip                                            /* ErrClosed */
#else
			/* a consumer sealed first: at or after our record if it read
			 * it while the swap had cleared the bit */
			:: seal != 0 && seal - 1 >= pos -> ok[id] = true; pub = pos   /* delivered */
			:: seal != 0 && seal - 1 < pos -> skip                       /* ErrClosed */
#endif
			fi
		}
#endif
	:: else -> assert(false)   /* only a shutdown changes our tail */
	fi
}

/* A producer incarnation: puts the next ids until PUTS were tried. The
 * first one is killed at a point spin chooses. */
proctype Producer(bool mayDie) {
	byte pub, ptail, hc, off, poff, need, pad, id, old;
	/* take the side: pick up the published tail */
	pub = tail & ~CLOSED;
	ptail = pub;
	hc = head;
	do
	:: atomic { nextId > PUTS -> break }
	:: atomic { nextId <= PUTS -> id = nextId; nextId++ };
		if :: need = 1 :: need = 2 fi;
		do
		:: closed -> goto refused   /* the flag on the config line */
		:: else ->
			off = ptail % CAP;
			pad = 0;
			if :: off + need > CAP -> pad = CAP - off :: else -> skip fi;
			/* room against the cached head, reloaded when it looks full */
			if :: ptail + pad + need - hc > CAP -> hc = head :: else -> skip fi;
#ifdef ROOM_OFF_BY_ONE
			if :: ptail + pad + need - hc > CAP + 1 -> (head != hc || closed)
#else
			if :: ptail + pad + need - hc > CAP -> (head != hc || closed)
#endif
			   :: else -> break
			fi
		od;
		poff = off;
		if :: pad > 0 -> off = 0 :: else -> skip fi;
#ifdef PUBLISH_EARLY
		publish(ptail + pad + need);
#endif
		if :: pad > 0 -> write_cell(poff, PAD, pad) :: else -> skip fi;
		write_cell(off, id, need);
		if :: need == 2 -> write_cell(off + 1, id, 0) :: else -> skip fi;
		if :: mayDie -> goto dead :: true -> skip fi;
#ifndef PUBLISH_EARLY
		publish(ptail + pad + need);
#endif
		ptail = pub;   /* moved, or (shut down) as if never put */
refused:	skip
	od;
	goto out;
dead:	/* killed: a successor takes the side over */
	run Producer(false);
out:	skip
}

/* A consumer incarnation: receives until shut down and drained. */
proctype Consumer(bool mayDie) {
	byte h, hp, tc, t, id, n, c, k, last, sl;
	bool sealSeen, again = true;
	h = head;
	hp = h;
	last = relGot;
	sealSeen = (seal != 0);
	do
	:: t = tail;
		tc = t & ~CLOSED;
		/* the seal, once set, is the end; read only when tail has the
		 * shutdown bit, or once this consumer knows of a seal */
		sl = 0;
#ifdef SEAL_ON_BIT_ONLY
		if :: t & CLOSED -> sl = seal :: else -> skip fi;
#else
		if :: (t & CLOSED) || sealSeen -> sl = seal :: else -> skip fi;
#endif
		if
		:: sl != 0 ->
			/* a seal beyond the tail loaded: a producer published and
			 * sealed since; its swap came first, so reload */
			if :: sl - 1 > tc -> tc = tail & ~CLOSED :: else -> skip fi;
			assert(sl - 1 <= tc);
			tc = sl - 1;
			sealSeen = true
		:: else -> skip
		fi;
		if
		:: h == tc ->
			/* caught up: publish the head before waiting */
			if :: hp != h -> head = h; hp = h; relGot = last :: else -> skip fi;
			if
			:: sl == 0 && !(t & CLOSED) && !closed -> (tail != t || closed)   /* wait for a publish or the shutdown */
#ifndef NO_CONSUMER_OR
			:: sl == 0 && !(t & CLOSED) && closed ->
				/* the flag without the bit: whoever set it died before
				 * the bit (Shutdown, or a producer after its swap) */
				atomic { tail = tail | CLOSED }
#endif
			:: else ->
				/* shut down: seal here, unless a producer sealed further */
				atomic { if :: seal == 0 -> seal = h + 1; sl = h + 1 :: else -> skip fi };
				if
				:: sl == h + 1 || seal == h + 1 ->
					sealSeen = true;
					/* drained: every put that returned nil was received */
					c = 1;
					do :: c <= PUTS -> assert(!ok[c] || c <= last); c++ :: else -> break od;
					/* a caller may Get again after ErrClosed: once more */
					if :: again -> again = false :: true -> break fi
				:: else -> sealSeen = true   /* a producer sealed after a record: read on */
				fi
			fi
		:: h != tc ->
			c = h % CAP;
			id = cell[c];
			n = size[c];
			assert(unread[c]);   /* published */
			if
			:: id == PAD ->
				unread[c] = false;
				h = h + n
			:: else ->
				assert(n == 1 || n == 2);
#ifdef RELEASE_EARLY
				head = h + n;
#endif
				/* the copy: the payload is still the record put */
				assert(cell[c] == id && (n == 1 || cell[(c + 1) % CAP] == id));
				/* in order, nothing that was put skipped; after a
				 * takeover the successor resumes at the published head */
				assert(id > last);
				k = last + 1;
				do :: k < id -> assert(!ok[k]); k++ :: else -> break od;
				last = id;
				got = id;
				recv[id] = true;
				unread[c] = false;
				if :: n == 2 -> unread[(c + 1) % CAP] = false :: else -> skip fi;
				h = h + n;
				/* lazy release: now or later */
				if :: head = h; hp = h; relGot = last :: true -> skip fi;
				if :: mayDie -> goto dead :: true -> skip fi
			fi
		fi
	od;
	goto out;
dead:	/* killed: what it consumed since its last head publication is
	 * unread again for its successor */
	atomic {
		c = hp;
		do :: c != h -> unread[c % CAP] = true; c++ :: else -> break od
	};
	run Consumer(false);
out:	skip
}

proctype Shutdown() {
	closed = true;
#ifdef CRASH_SHUTDOWN
	if :: skip -> atomic { tail = tail | CLOSED } :: skip fi   /* or killed before the bit */
#else
	atomic { tail = tail | CLOSED }
#endif
}

/* Once nothing can move: a message was received exactly when its put
 * returned nil. */
proctype Final() {
	byte i = 1;
	timeout;
	do :: i <= PUTS -> assert(ok[i] == recv[i] || unsure[i]); i++ :: else -> break od
}

init {
	atomic {
		run Producer(true);
#ifdef CRASH_CONSUMER
		run Consumer(true);
#else
		run Consumer(false);
#endif
		run Shutdown();
		run Final()
	}
}
