/*
 * Mailboxes: a bounded MPSC ring of 64-byte cells per agent slot, in the segment.
 *
 * Storage (SHM_MBOX_STRIDE(cells) bytes at shm_mbox_at()): a 256-byte header (struct
 * ipc_mbox_hdr: the producers' tail on the first 128-byte line, the consumer's head and
 * bookkeeping on the second), `cells` 8-byte sequence words, then `cells` 64-byte cells.
 *
 * A message is a 32-byte wire header (from, ref, type, flags, len) plus the payload,
 * contiguous over k = ceil((32 + len) / 64) cells; it never wraps: a producer that would
 * cross the end of the ring first claims the rest of the lap as PAD. Only the sequence word
 * of a message's first cell carries its state; the words of its other cells stay
 * FREE(their position) until the consumer frees them for the next lap.
 *
 * A sequence word is (position mod 2^38, state, k, owner process slot): FREE(p) means
 * "position p may be claimed here". Because the position is in the word, a producer that
 * read an old tail fails its CAS instead of claiming a cell of another lap (no ABA).
 *
 * Producer (any process with a process slot):
 *   1. mbox_intent in its process slot := mailbox + 1 (read by repair after its death);
 *   2. t := tail; seq[t] must be FREE(t); the last cell it needs, t + k - 1, must be
 *      FREE(t + k - 1): the consumer frees cells in position order, so the last one free
 *      means all are (else the ring is full);
 *   3. CAS seq[t]: FREE(t) -> CLAIMED(t, k, self), then CAS tail: t -> t + k. Anyone who
 *      finds a claimed, ready, padded or skipped cell at the tail helps move the tail past
 *      it, so a producer dying between the two CASes blocks nobody;
 *   4. copy the message (its header but the stamp word), release-store the first cell's
 *      stamp (below), then CAS seq[t]: CLAIMED(t, k, self) -> READY(t, k), then ring the
 *      host (msg.c).
 * The producer always tries the tail CAS itself before publishing, so READY implies the
 * tail is past the message; except on the one-cell path (ipc_mbox_put_small()), below.
 *
 * A lagging tail: ipc_mbox_put_small() moves the tail after the stamp (a locked instruction
 * fewer before it), so the consumer may take the message, and free its cell, while the tail
 * still names it. A producer then finds FREE(t + cells) at the tail t: one lap ahead,
 * which only a consumed position can hold (the cell of a full ring holds the previous
 * lap). It moves the tail one cell (that path only writes one-cell messages; filler and
 * runs still move the tail before their stamps) and claims again. Nothing else trusts the
 * tail to be ahead of the head: repair and tools walk from the head, recovery only bounds
 * a recheck with it, and ipc_mbox_stats() counts a lagging tail as no cell used.
 *
 * Stamps: the consumer's fast path. Spinning on the sequence word at its head, the consumer
 * pulled that line to itself between a producer's claim and its READY, and the message was
 * a second line: a spinning round trip moved several lines per direction. Bytes 28..31 of
 * every cell are its stamp word: ipc_stamp_make(p, READY) once the message at position p
 * is complete, (p, PAD) on the first cell of filler, (p, TAKEN) by the consumer on a
 * message taken in place. Peek reads the stamp of the head's cell: the line that carries
 * the message, which its producer writes once. The sequence words stay the truth for
 * claims, skips and tools; the stamp is trusted because of these rules:
 * - Producers write a cell only while they hold its claim, and a claim's stamps (the first
 *   cell's last) before its sequence word leaves CLAIMED. The first stamp is what lets the
 *   consumer take the message, so no producer store lands after the consumer may have
 *   freed the cell. Hence the CAS in step 4: the consumer may take the message by its stamp
 *   and free the cell before READY is stored; the CAS then fails and changes nothing.
 *   Filler is claimed CLAIMED too, stamped, then turned into PAD by the same CAS.
 * - Every lap rewrites or clears every cell's stamp word: a message's first cell gets its
 *   stamp, its later cells payload bytes (its last cell a zero first when the payload stops
 *   short of that word); the consumer zeroes the words of filler, skipped claims and
 *   messages taken in place when its head passes them. So a word left from an earlier lap
 *   is at most one lap old, and a stamp in it names an older position than any later head
 *   (positions are mod 2^30 in a stamp, a lap is at most 2^20 cells).
 * - Payload bytes that would read as a READY stamp of their cell in some lap: the producer
 *   sees them as it copies the message and sets IPC_F_SCRUB in its header; the consumer
 *   zeroes those words when it consumes the message (a message taken in place is zeroed
 *   whole when the head passes it, as filler is). Other messages' later cells are never
 *   written by the consumer (it need not even read them).
 * - A header is copied without its stamp word; a payload never covers a first cell's.
 * Peek reads the sequence words (skip_head: PAD, SKIP, TAKEN, dead claims, a READY whose
 * stamp is not yet visible) when the stamp names filler or a taken message, while the head
 * is before the position repair (the end of a claim it skipped) or recovery (the tail) put
 * in the header's recheck word, and once per IPC_SEQ_POLL_EVERY empty peeks.
 *
 * A batch (ipc_send_batch) claims a run of consecutive messages to one mailbox with one
 * CLAIMED(t, K) word covering all K cells (while they fit before the ring's end): it writes
 * them, stores READY on each later message's first cell, and READY(t, k0) on the first
 * one last. The consumer meets them in order; a producer dying before that last store
 * leaves one claim that repair skips whole (none of the run was acknowledged). Two atomic
 * read-modify-writes per run instead of per message.
 *
 * A producer killed between 3 and 4 leaves CLAIMED(t, k, slot). The consumer, meeting it
 * at its head, checks the owner's process slot: DEAD (marked by the supervisor),
 * EXITED or FREE means the claim will never complete; it advances the tail past the claim
 * if needed and turns it into SKIP. ipc_repair_proc() does the same for the mailbox named
 * by the dead slot's mbox_intent, so the consumer need not wait for its turn. No other
 * producer's message is touched: claims are disjoint.
 *
 * Consumer (the one process hosting the agent): head is its own. peek records the
 * position of the message it hands out (inflight); consume stores head := pos + k
 * (release). It frees consumed cells in position order (FREE(p + cells)), then records
 * freed; a line of sequence words at a time, once the head has left it (when IPC_FREE_LAG
 * consumed cells wait, or when it finds the mailbox empty), so that its stores do not land
 * on the line the next claim goes to. At most IPC_FREE_LINE - 1 consumed cells stay unfreed
 * while it is idle: too few to keep a message of at most half the ring from fitting.
 * Per-message head update, so delivery is exactly once except for the
 * message being handled when the consumer died. ipc_mbox_recover() at restart: cells in
 * [freed, head) are freed (CAS, idempotent), and if inflight still equals the head the
 * message is handed out again with IPC_F_REDELIVERED.
 *
 * Selective receive (ipc_mbox_take_reply) marks a matching READY message TAKEN in place;
 * the head skips TAKEN, PAD and SKIP cells later, so the others stay queued in order. It
 * also takes, wherever it meets them, replies to synchronous calls (ref marked
 * IPC_REF_SYNC) other than the one awaited: late replies to calls that timed out and
 * duplicate replies (a call redelivered after a consumer crash is answered twice). Nobody
 * will ever ask for them; left READY they would pin the head and fill a client's inbox.
 *
 * Full: -EAGAIN at once, or the producer waits on the `space` futex word that the
 * consumer bumps after freeing cells when a waiter has flagged itself. A Dekker pair of
 * seq_cst fences (W2/W3) makes the wake reliable: the waiter stores its flag, fences, then
 * re-checks the cells; the consumer frees cells, fences, then reads the flag; at least one
 * of them sees the other's store. The consumer does its half once per
 * IPC_WAKE_CHECK_EVERY messages and whenever it finds the mailbox empty (a fence per
 * message halved small-message throughput), so a wake may lag that many messages; a
 * successor consumer's recovery also wakes, and waiters re-check every
 * IPC_FULL_RECHECK_NS for a consumer that stopped inside that window.
 *
 * A producer that published filler and then finds no room rings the host before it
 * returns -EAGAIN or waits (ring_after_pad()): the consumer may have parked while that
 * filler was a live claim at its head, and with the mailbox full no other put will ring.
 *
 * A producer may also die after winning a parked consumer's wake (wake.c) but before its
 * syscall: repair therefore ends by waking every parked process.
 *
 * Re-initialisation. An agent slot is freed and allocated again (a new generation, S2 in
 * shm/proc.c), and ipc_mbox_init() resets its mailbox for the new incarnation. A sender
 * that checked its handle (check_to() in msg.c: generation G, slot not FREE) before the
 * free may still be on its way, stopped between the check and the tail, or between the
 * tail and its claim; so may the supervisor's repair of a producer that died in the
 * previous ring (ipc_repair_proc(), walking the ring mbox_intent names). Three rules keep
 * their words out of the new ring and the message out of the new incarnation:
 * - Positions go on. A ring used before starts again two laps past the previous
 *   incarnation's tail (or head, if a lagging tail trails it), rounded up to a lap. No
 *   word or tail of the previous ring names a position that far: its highest is the
 *   FREE(p + cells) its consumer stored for a cell below its head, and a tail moves at
 *   most one message past a FREE word. So every compare-and-swap prepared from the
 *   previous ring (FREE(t) at a claim, t at a tail move, a claim word at repair's skip)
 *   fails in the new one, instead of claiming a cell out of turn or moving the new tail
 *   past a cell nobody claimed. (A tail compares whole; a sequence word's position
 *   is mod 2^38, which the new ring would have to run through meanwhile: the bound the
 *   ring already sets any slow producer.) A mailbox never initialised starts at 0.
 * - A claim checks the generation. Right after its claim CAS the producer reads the
 *   slot's generation again (G0, is_stale_claim(): one load of the line check_to() just
 *   read, no fence). If it is not its handle's, it writes nothing into the cells, moves
 *   the tail past the claim and turns it into SKIP, as repair does a dead claim
 *   (abandon_claim()), and the send fails with -ESTALE. A claim in the new ring read a
 *   word the init stored after the new generation (I1), or a later one: it sees that
 *   generation. A stale producer that reads the new tail therefore claims, sees, and
 *   abandons; one that read the old tail fails its claim, rereads the tail, and does so.
 * - The init waits out claims being written. A claim that succeeded in the previous ring
 *   before the reallocation, its generation check passed, goes on writing its cells (and,
 *   in a batch, the later messages' sequence words) until it publishes. So the init
 *   replaces each sequence word with a CAS against the word it read, in position order
 *   (a claim's first cell before the cells it writes after it): a claim made on the word
 *   meanwhile fails the init's CAS, one made after fails its own; a CLAIMED word whose
 *   owner still runs is waited for until it leaves CLAIMED (I2: its bytes before ours).
 *   A dead or zombie owner writes no more and is not waited for; a live one is, for at
 *   most IPC_INIT_WAIT_NS in all: the one case left open is a sender stopped (SIGSTOP, a
 *   debugger) that long inside a claim of a ring being initialised again, whose later
 *   writes may then land in the new ring. It costs the init a CAS per cell (4096 cells:
 *   6 -> 17 us, measured), not the send path.
 *
 * Tools read head, tail and the sequence words only (ipc_mbox_depth, ipc_mbox_stats).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc_int.h"

void (*ipc_mbox_test_hook)(int point);

static inline void cpu_relax(void)
{
	shm_cpu_relax();
}

static inline uint64_t seq_free(uint64_t pos)
{
	return ipc_seq_make(pos, IPC_S_FREE, 0, 0);
}

static inline bool is_pos(uint64_t s, uint64_t pos)
{
	return ipc_seq_pos(s) == (pos & IPC_POS_MASK);
}

/* How long an init waits for claims of the previous ring still being written, at most. */
#define IPC_INIT_WAIT_NS 1000000000u
/* Re-reads of such a claim's word (a pause each) before the init asks if its owner lives. */
#define IPC_INIT_SPINS 1000u

static bool owner_is_dead(const struct shm_seg *seg, uint32_t owner);

/*
 * Has the producer owning a claim in a ring being initialised again stopped writing for
 * good? Dead as the consumer judges it, or its process gone or a zombie (it runs no more
 * code; the supervisor may not have marked it yet, and may be the one waiting here). A
 * stopped or descheduled process still counts as writing.
 */
static bool is_claimer_gone(const struct shm_seg *seg, uint32_t owner)
{
	const struct shm_proc *p;
	uint64_t own;

	if (owner_is_dead(seg, owner))
		return true;
	p = shm_proc_at(seg, owner);
	/* acquire: pairs with C1 in shm/proc.c, as in shm_proc_is_alive() */
	own = atomic_load_explicit(&p->own, memory_order_acquire);
	/* relaxed: judged with own, as in shm_proc_is_alive() (shm/proc.c) */
	return !shm_pid_is_running((pid_t)(own >> 32),
				   atomic_load_explicit(&p->start_time, memory_order_relaxed));
}

/*
 * Replace the sequence word of cell i by `to`, the new ring's, for ipc_mbox_init(). A CAS
 * against the word read: a claim on it made since fails the CAS (and is looked at), one
 * made after it fails itself. A claim of the previous ring whose owner still runs is
 * waited for (until *deadline, which the first such wait sets): it writes its cells, this
 * one and those after it, until it publishes.
 */
static void reset_word(const struct shm_seg *seg, struct ipc_mbox *m, uint64_t i, uint64_t to,
		       uint64_t *deadline)
{
	/*
	 * I2: acquire: pairs with R0 in publish() of a claim we wait out (READY, PAD, or the
	 * SKIP of abandon_claim()): its stores into its cells and its R1 words come before our
	 * CASes on those words, our zeroing of their stamps and the new ring's first user (I0).
	 */
	uint64_t s = atomic_load_explicit(&m->seq[i], memory_order_acquire);
	uint32_t spins = 0;

	for (;;) {
		if (ipc_seq_state(s) == IPC_S_CLAIMED &&
		    (spins < IPC_INIT_SPINS || !is_claimer_gone(seg, ipc_seq_owner(s)))) {
			uint64_t now = spins < IPC_INIT_SPINS ? 0 : shm_now_ns();

			if (!*deadline && now)
				*deadline = now + IPC_INIT_WAIT_NS;
			if (!now || now < *deadline) {
				if (spins++ < IPC_INIT_SPINS)
					cpu_relax();
				else
					sched_yield();
				/* I2, again */
				s = atomic_load_explicit(&m->seq[i], memory_order_acquire);
				continue;
			}
		}
		/*
		 * I1: acq_rel: acquire as I2; release pairs with G0 in is_stale_claim() (through
		 * C0's acquire, which reads this word or a later one stored by someone ordered
		 * after it): the slot's new generation (shm_agent_alloc(), before S2, before this
		 * init) and the header's words stored before, ahead of the word. (It was a release
		 * fence before the first store; the same locked instruction on x86, a cold path
		 * elsewhere, and ThreadSanitizer models it.)
		 */
		if (atomic_compare_exchange_weak_explicit(&m->seq[i], &s, to, memory_order_acq_rel,
							  memory_order_acquire))
			return;
	}
}

void ipc_mbox_init(struct shm_seg *seg, uint32_t slot)
{
	struct ipc_mbox m;
	uint64_t base = 0, deadline = 0;

	ipc_mbox_resolve(seg, slot, &m);
	/*
	 * A ring used before continues its positions (see "Re-initialisation" at the top):
	 * from two laps past the previous incarnation's tail or head, rounded to a lap, so
	 * that nothing a stale sender or repair read of the previous ring (a tail, FREE(t))
	 * matches a word of the new one. A mailbox whose cell 1 holds the word 0 was never
	 * initialised (that cell's positions are never 0 mod 2^38): no handle ever named it,
	 * positions start at 0. relaxed: only their size matters; they are the previous
	 * incarnation's final values (its consumer is gone), or less while a stale sender
	 * still moves the tail, which stays below the bound (see the top).
	 */
	if (atomic_load_explicit(&m.seq[1], memory_order_relaxed)) {
		uint64_t t = atomic_load_explicit(&m.h->tail, memory_order_relaxed);
		uint64_t h = atomic_load_explicit(&m.h->head, memory_order_relaxed);
		uint64_t hi = (int64_t)(h - t) > 0 ? h : t;

		base = ((hi + m.mask) & ~m.mask) + 2 * m.n;
	}
	/*
	 * The tail first (never 0 for a moment): a stale tail CAS fails from here on. relaxed:
	 * a stale producer acts on the tail only through a claim of a word below (I1).
	 */
	atomic_store_explicit(&m.h->tail, base, memory_order_relaxed);
	/*
	 * The rest of the header, word by word (relaxed; I1 and I0 publish them): a stale
	 * sender may still count a full wait or flag itself waiting for space here, so these
	 * are atomic stores, not a memset (test_mbox_reinit_threads: ThreadSanitizer reported
	 * the memset against such a sender's full_waits).
	 */
	atomic_store_explicit(&m.h->full_waits, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->skipped_dead, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->head, base, memory_order_relaxed);
	atomic_store_explicit(&m.h->freed, base, memory_order_relaxed);
	atomic_store_explicit(&m.h->inflight, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->redeliver, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->dequeued, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->redelivered, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->stale, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->space, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->space_waiters, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->unchecked, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->attempts, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->poisoned, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->polls, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->recheck, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->queued_max, 0, memory_order_relaxed);
	/* in position order: a claim's first cell comes before the later cells it writes */
	for (uint64_t i = 0; i < m.n; i++) {
		reset_word(seg, &m, i, seq_free(base + i), &deadline);
		/* relaxed: the slot is not published yet (I0) */
		atomic_store_explicit(ipc_stamp_at(&m, i), 0, memory_order_relaxed);
	}
	/*
	 * I0: no fence here. The caller hands the slot out with a release store after this
	 * init, which orders all of it before: H0 (ctl := WRK_CTL_HELD, wrk_agent_spawn()) to
	 * its worker, S3 (RUNNING, ipc_inbox_open()) to senders' A0 in check_to(). Not S2:
	 * the slot read STARTING before this init (see S2 in shm/proc.c for why no writer
	 * reaches the mailbox in between). (A release fence here added nothing to those
	 * release stores, and ThreadSanitizer does not model fences.)
	 */
}

/* Help move the tail from t past a claimed/ready/padded cell of k cells. */
static inline void help_tail(struct ipc_mbox *m, uint64_t t, uint32_t k)
{
	uint64_t exp = t;

	/* T1: pairs with T0 in try_put(): a producer that sees the new tail sees the claim. */
	atomic_compare_exchange_strong_explicit(&m->h->tail, &exp, t + k, memory_order_release,
						memory_order_relaxed);
}

/*
 * A message of k > 1 cells at pos, its later cells just copied: does a later cell's stamp
 * word hold payload bytes that read as a READY stamp of that cell in some lap? Then its
 * header gets IPC_F_SCRUB (else the flag stays clear: try_put() takes it out of callers'
 * flags).
 */
static bool needs_scrub(const struct ipc_mbox *m, uint64_t pos, uint32_t k)
{
	for (uint32_t j = 1; j < k; j++)
		/* relaxed: our own bytes, just written */
		if (ipc_stamp_forgeable(
			    atomic_load_explicit(ipc_stamp_at(m, pos + j), memory_order_relaxed),
			    pos + j, m->mask))
			return true;
	return false;
}

/* Zero the stamp words of cells [p, p + k) (the consumer's, not yet freed). */
static void zero_stamps(const struct ipc_mbox *m, uint64_t p, uint32_t k)
{
	for (uint32_t j = 0; j < k; j++) {
		_Atomic uint32_t *sp = ipc_stamp_at(m, p + j);

		/* relaxed: the cells are the consumer's until their FREE (F0/F1 order it) */
		if (atomic_load_explicit(sp, memory_order_relaxed))
			atomic_store_explicit(sp, 0, memory_order_relaxed);
	}
}

/* Does the message of k cells at p ask to be scrubbed (IPC_F_SCRUB)? */
static bool wants_scrub(const struct ipc_mbox *m, uint64_t p, uint32_t k)
{
	const struct ipc_wire *w =
		(const struct ipc_wire *)(m->cells + (p & m->mask) * SHM_MBOX_CELL);

	return k > 1 && (w->flags & IPC_F_SCRUB);
}

/*
 * The claim at t leaves CLAIMED for READY or PAD (its stamps are stored). A CAS: the
 * consumer may already have taken it by its stamp and freed the cell (or a later lap may
 * hold it); then this changes nothing.
 */
static inline void publish(struct ipc_mbox *m, uint64_t t, uint64_t claim, uint64_t to)
{
	/* R0: pairs with A2 in skip_head() and A4 in ipc_mbox_take_reply(): payload first. */
	atomic_compare_exchange_strong_explicit(&m->seq[t & m->mask], &claim, to,
						memory_order_release, memory_order_relaxed);
}

static void recheck_until(struct ipc_mbox *m, uint64_t end);

/*
 * Right after a claim: is the agent slot another incarnation than the one the sender's
 * handle (generation gen) named? Then the claim is in a ring initialised after the sender
 * checked the handle (or in the previous one, its slot already reallocated) and must not
 * carry the message. One load, of the line check_to() read just before (no fence, no
 * miss): the single-send path pays a compare.
 */
static inline bool is_stale_claim(const _Atomic uint32_t *genp, uint32_t gen)
{
	/*
	 * G0: pairs with I1 in ipc_mbox_init(). relaxed: ordered after C0's acquire. A claim
	 * in a re-initialised ring read a word the init stored by its release CAS I1, or a
	 * later one stored by someone ordered after the init (its consumer, or a producer whose
	 * own C0 read such a word): either way the generation the allocator stored before the
	 * init is visible.
	 */
	return atomic_load_explicit(genp, memory_order_relaxed) != gen;
}

/*
 * Give up the claim at t (claim word `claim`) made with a stale handle, writing nothing in
 * its cells: move the tail past it and turn it into SKIP, as repair does a dead producer's
 * claim, so the consumer and other producers step over it. Returns -ESTALE.
 */
static int abandon_claim(struct ipc_mbox *m, uint64_t t, uint64_t claim)
{
	uint32_t k = ipc_seq_k(claim);

	help_tail(m, t, k);
	/* a CAS: in the previous ring, the init may have reset the word under us already */
	publish(m, t, claim, ipc_seq_make(t, IPC_S_SKIP, k, 0));
	/* no stamp names the skip: the consumer's empty peeks read the sequence words until
	 * it is past it */
	recheck_until(m, t + k);
	return -ESTALE;
}

/*
 * One attempt to enqueue up to cnt messages (a run to this mailbox) with one claim: as many
 * as fit before the end of the ring and in the free cells. Returns how many (>= 1), or
 * -EAGAIN (full), or -ESTALE (the slot's generation *genp was not gen at the claim: it is
 * abandoned, nothing written). The run's later messages get their READY words first and
 * the first message's word last, so the consumer meets them in order, and a producer
 * dying before that last store leaves one claim covering them all (skipped whole by
 * repair).
 */
static int try_put(uint32_t self, struct ipc_mbox *m, const _Atomic uint32_t *genp, uint32_t gen,
		   const struct ipc_wire *w, const void *const *data, uint32_t cnt, bool *padded)
{
	for (;;) {
		/* T0: pairs with T1 in help_tail(): the claim at t - k is visible. */
		uint64_t t = atomic_load_explicit(&m->h->tail, memory_order_acquire);
		uint64_t idx = t & m->mask, s = seq_free(t);
		uint32_t k0 = ipc_msg_cells(w[0].len), need = k0, c = 1;
		bool pad = false, retry = false;
		uint64_t claim;

		if (idx + k0 > m->n) {
			need = (uint32_t)(m->n - idx);
			pad = true;
		} else {
			while (c < cnt) {
				uint32_t k = ipc_msg_cells(w[c].len);

				if (idx + need + k > m->n || need + k > IPC_K_MAX)
					break;
				need += k;
				c++;
			}
		}
		while (need > 1) {
			uint64_t last = t + need - 1;

			/* A1: pairs with F0 in free_cells(): the consumer is done with the last
			 * cell (so with all: it frees in order; C0 checks the first). */
			if (atomic_load_explicit(&m->seq[last & m->mask], memory_order_acquire) ==
			    seq_free(last))
				break;
			if (c == 1 || pad) {
				if (atomic_load_explicit(&m->h->tail, memory_order_relaxed) != t) {
					retry = true;
					break;
				}
				return -EAGAIN;
			}
			c--;
			need -= ipc_msg_cells(w[c].len);
		}
		if (retry)
			continue;
		claim = ipc_seq_make(t, IPC_S_CLAIMED, need, self);
		/* ask for the first cell's line for writing while the claim's line travels */
		__builtin_prefetch(m->cells + idx * SHM_MBOX_CELL, 1);
		/*
		 * C0: the claim, tried straight away (no load first: one coherence transaction
		 * instead of two on a line the consumer wrote last). Acquire, on success and on
		 * failure, pairs with F0 (the cell is free / what took it); release with A2.
		 */
		if (!atomic_compare_exchange_strong_explicit(
			    &m->seq[idx], &s, claim, memory_order_acq_rel, memory_order_acquire)) {
			if (is_pos(s, t) && ipc_seq_state(s) != IPC_S_FREE) {
				help_tail(m, t, ipc_seq_k(s));
				continue;
			}
			if (s == seq_free(t + m->n)) {
				/* a one-cell message consumed and freed before its producer
				 * moved the tail past it: move it (a lagging tail, see the top) */
				help_tail(m, t, 1);
				continue;
			}
			/* relaxed: only compares with t; the loop reloads with acquire */
			if (atomic_load_explicit(&m->h->tail, memory_order_relaxed) != t)
				continue;
			return -EAGAIN; /* the cell still holds the previous lap: full */
		}
		if (__builtin_expect(is_stale_claim(genp, gen), 0))
			return abandon_claim(m, t, claim);
		help_tail(m, t, need);
		if (pad) {
			/* P2: pairs with P3 in ipc_mbox_peek(): filler, read the sequence words */
			atomic_store_explicit(ipc_stamp_at(m, t), ipc_stamp_make(t, IPC_ST_PAD),
					      memory_order_release);
			if (__builtin_expect(ipc_mbox_test_hook != NULL, 0))
				ipc_mbox_test_hook(IPC_HOOK_PAD_STAMPED);
			publish(m, t, claim, ipc_seq_make(t, IPC_S_PAD, need, 0));
			*padded = true;
			continue;
		}
		for (uint32_t i = 0, off = 0; i < c; i++) {
			uint8_t *cell = m->cells + (idx + off) * SHM_MBOX_CELL;
			uint32_t k = ipc_msg_cells(w[i].len), len = w[i].len;
			uint32_t head = len < SHM_MBOX_CELL - sizeof(w[i])
						? len
						: SHM_MBOX_CELL - sizeof(w[i]);
			bool scrub = false;

			/*
			 * The later cells first, then the first cell in one go (header, payload
			 * head, then for a later message of the run its stamp): a consumer that
			 * caught up polls the first cell's line, so that line is written in one
			 * burst rather than pulled back and forth. Measured alternately against
			 * header-first: 16-byte messages 44 -> 59 M/s, 64-byte 28 -> 32 M/s,
			 * 1024-byte 23 -> 19 M/s (about the figure before stamps).
			 */
			if (k > 1) {
				/* a payload that stops short of its last cell's stamp word: that
				 * word would keep an older lap's bytes for laps on end (see the
				 * rules); relaxed: ordered before our P0 like the payload */
				if (len < (k - 1) * SHM_MBOX_CELL)
					atomic_store_explicit(ipc_stamp_at(m, t + off + k - 1), 0,
							      memory_order_relaxed);
				memcpy(cell + SHM_MBOX_CELL, (const uint8_t *)data[i] + head,
				       len - head);
				scrub = needs_scrub(m, t + off, k);
			}
			if (i)
				/* R1: ordered before P0 below, which the consumer reads first. */
				atomic_store_explicit(&m->seq[idx + off],
						      ipc_seq_make(t + off, IPC_S_READY, k, 0),
						      memory_order_release);
			/* the header but its stamp word, which is stored last; IPC_F_SCRUB ours,
			 * not the caller's */
			memcpy(cell, &w[i], offsetof(struct ipc_wire, stamp));
			if (scrub || (w[i].flags & IPC_F_SCRUB))
				((struct ipc_wire *)cell)->flags =
					scrub ? w[i].flags | IPC_F_SCRUB
					      : w[i].flags & ~IPC_F_SCRUB;
			if (head)
				memcpy(cell + sizeof(w[i]), data[i], head);
			if (i)
				/* P1: as P0 below, for a later message of the run */
				atomic_store_explicit(ipc_stamp_at(m, t + off),
						      ipc_stamp_make(t + off, IPC_ST_READY),
						      memory_order_release);
			off += k;
		}
		/* P0: pairs with P3 in ipc_mbox_peek(): the run's bytes (and R1s) before it. */
		atomic_store_explicit(ipc_stamp_at(m, t), ipc_stamp_make(t, IPC_ST_READY),
				      memory_order_release);
		publish(m, t, claim, ipc_seq_make(t, IPC_S_READY, k0, 0));
		return (int)c;
	}
}

/* The consumer looks for producers waiting for space once per this many frees. */
#define IPC_WAKE_CHECK_EVERY 32u

/* Sequence words per 64-byte line: the consumer frees a line of them at a time. */
#define IPC_FREE_LINE 8u
/* A consumer that is never idle frees once this many consumed cells wait. */
#define IPC_FREE_LAG 16u
/* An empty peek reads the sequence words once per this many (see ipc_mbox_peek()). */
#define IPC_SEQ_POLL_EVERY 256u

/* A full mailbox: spin this long (the consumer is likely running) before sleeping. */
#define IPC_FULL_SPIN_NS 50000u
/*
 * A full-mailbox sleep re-checks this often: the wake can lag up to IPC_WAKE_CHECK_EVERY
 * messages behind the frees, and a consumer that stops (exits, blocks in a callback) in
 * that window does not wake anyone.
 */
#define IPC_FULL_RECHECK_NS 5000000u

static void futex_wait_ms(_Atomic uint32_t *addr, uint32_t val, uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};

	/* shared futex (no FUTEX_PRIVATE_FLAG): the word is in the segment */
	syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

/*
 * We published filler and then found no room: ring the mailbox's host. It may have parked
 * while the filler was still a claim at its head (nothing to deliver behind a live claim),
 * and the messages queued behind the filler rang while it was so; with the mailbox full,
 * nobody else will put, so nobody else will ring.
 */
static void ring_host(struct shm_seg *seg, const struct ipc_dest *d)
{
	uint32_t host = ipc_dest_host(d);

	if (host != UINT32_MAX)
		ipc_ring(seg, host);
}

static void ring_after_pad(struct shm_seg *seg, const struct ipc_dest *d, bool *padded)
{
	if (!*padded)
		return;
	*padded = false;
	ring_host(seg, d);
}

/*
 * A claim abandoned (-ESTALE): ring the host for the same reason as after filler. Its
 * consumer may have parked at the claim while it was live, and the messages behind it rang
 * then; the skip itself rings nobody.
 */
static int ring_after_stale(struct shm_seg *seg, const struct ipc_dest *d, int r)
{
	if (r == -ESTALE)
		ring_host(seg, d);
	return r;
}

/* Name the mailbox we put to in our process slot (mbox_intent), for repair after our death. */
static inline void set_intent(const struct ipc_dest *d)
{
	/* relaxed: owner-written; read by repair only after our death (ordered by it) */
	if (atomic_load_explicit(&d->me->mbox_intent, memory_order_relaxed) != d->slot + 1u)
		atomic_store_explicit(&d->me->mbox_intent, d->slot + 1u, memory_order_relaxed);
}

int ipc_mbox_put_many(struct shm_seg *seg, struct ipc_dest *d, const struct ipc_wire *w,
		      const void *const *data, uint32_t cnt, int timeout_ms)
{
	const _Atomic uint32_t *genp = &d->a->gen;
	struct ipc_mbox *m = &d->m;
	uint32_t gen = d->gen;
	uint64_t deadline = 0;
	bool padded = false;
	int r;

	set_intent(d);
	r = try_put(seg->self, m, genp, gen, w, data, cnt, &padded);
	if (r == -EAGAIN)
		ring_after_pad(seg, d, &padded);
	if (r != -EAGAIN || timeout_ms == 0)
		return ring_after_stale(seg, d, r);
	/* relaxed: a statistic */
	atomic_fetch_add_explicit(&m->h->full_waits, 1, memory_order_relaxed);
	if (timeout_ms > 0)
		deadline = shm_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (uint64_t spin_end = shm_now_ns() + IPC_FULL_SPIN_NS;;) {
		uint64_t now, left = IPC_FULL_RECHECK_NS;
		uint32_t v;

		if (shm_now_ns() < spin_end) {
			for (int i = 0; i < 32; i++)
				cpu_relax();
		} else {
			/* W0: pairs with W1 in wake_space_waiters(): a bump after this load ends
			 * the futex wait at once. */
			v = atomic_load_explicit(&m->h->space, memory_order_acquire);
			/* relaxed: ordered before the re-check below by W3 */
			atomic_store_explicit(&m->h->space_waiters, 1, memory_order_relaxed);
			/* W3: pairs with W2 in wake_space_waiters(): the consumer sees our flag,
			 * or the re-check below sees the cells it freed. A fence over atomics only
			 * (see W2): nothing for ThreadSanitizer to miss. */
			atomic_thread_fence(memory_order_seq_cst);
			r = try_put(seg->self, m, genp, gen, w, data, cnt, &padded);
			if (r != -EAGAIN)
				return ring_after_stale(seg, d, r);
			ring_after_pad(seg, d, &padded);
			now = shm_now_ns();
			if (deadline && now >= deadline)
				return -ETIMEDOUT;
			if (deadline && deadline - now < left)
				left = deadline - now;
			futex_wait_ms(&m->h->space, v, left);
			continue;
		}
		r = try_put(seg->self, m, genp, gen, w, data, cnt, &padded);
		if (r != -EAGAIN)
			return ring_after_stale(seg, d, r);
		ring_after_pad(seg, d, &padded);
		if (deadline && shm_now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

/* Copy len <= 32 bytes with at most two overlapping moves per size class (no call). */
static inline void copy_small(uint8_t *dst, const uint8_t *src, uint32_t len)
{
	if (len >= 16) {
		memcpy(dst, src, 16);
		memcpy(dst + len - 16, src + len - 16, 16);
	} else if (len >= 8) {
		memcpy(dst, src, 8);
		memcpy(dst + len - 8, src + len - 8, 8);
	} else if (len >= 4) {
		memcpy(dst, src, 4);
		memcpy(dst + len - 4, src + len - 4, 4);
	} else if (len) {
		dst[0] = src[0];
		dst[len / 2] = src[len / 2];
		dst[len - 1] = src[len - 1];
	}
}

/*
 * try_put() for one message of one cell, straight through: the same claim, copy, stamp and
 * publish (steps 2 to 4 at the top), without the loops that runs, filler and multi-cell
 * messages need, and with the tail moved after the stamp (a lagging tail, at the top). A
 * spinning round trip is mostly this path and the consumer's peek: measured against
 * try_put() alternately, 5 to 18 ns less per round trip.
 */
int ipc_mbox_put_small(struct shm_seg *seg, struct ipc_dest *d, const struct ipc_wire *w,
		       const void *data)
{
	struct ipc_mbox *m = &d->m;
	struct ipc_wire *c;
	uint64_t t, s, claim;

	set_intent(d);
	/* T0, as in try_put() */
	t = atomic_load_explicit(&m->h->tail, memory_order_acquire);
	s = seq_free(t);
	claim = ipc_seq_make(t, IPC_S_CLAIMED, 1, seg->self);
	/* C0, as in try_put(); a lost race, a full ring or a cell to help past: the caller
	 * takes the general path */
	if (!atomic_compare_exchange_strong_explicit(&m->seq[t & m->mask], &s, claim,
						     memory_order_acq_rel, memory_order_acquire))
		return -EAGAIN;
	/* the generation's line is the one the handle's check read: one load, no miss */
	if (__builtin_expect(is_stale_claim(&d->a->gen, d->gen), 0))
		return ring_after_stale(seg, d, abandon_claim(m, t, claim));
	c = (struct ipc_wire *)(m->cells + (t & m->mask) * SHM_MBOX_CELL);
	c->from = w->from;
	c->ref = w->ref;
	c->type = w->type;
	c->flags = w->flags & ~IPC_F_SCRUB; /* one cell: nothing to scrub */
	c->len = w->len;
	copy_small((uint8_t *)(c + 1), data, w->len);
	/* P0, as in try_put() */
	atomic_store_explicit(ipc_stamp_at(m, t), ipc_stamp_make(t, IPC_ST_READY),
			      memory_order_release);
	/* the tail after the stamp, not before: one locked instruction fewer between the
	 * consumer and the message (see "A lagging tail" at the top) */
	help_tail(m, t, 1);
	publish(m, t, claim, ipc_seq_make(t, IPC_S_READY, 1, 0));
	return 0;
}

int ipc_mbox_put(struct shm_seg *seg, uint32_t slot, uint32_t gen, const struct ipc_wire *w,
		 const void *data, int timeout_ms)
{
	struct ipc_dest d;
	int r;

	ipc_dest_at(seg, slot, gen, &d);
	r = ipc_mbox_put_many(seg, &d, w, &data, 1, timeout_ms);
	return r < 0 ? r : 0;
}

/* Free cells [p, p + k) for the next lap, in position order (producers rely on it). */
static void free_cells(struct ipc_mbox *m, uint64_t p, uint32_t k)
{
	for (uint32_t i = 0; i < k; i++)
		/* F0: pairs with A1/C0 in try_put(): we are done with the cell. */
		atomic_store_explicit(&m->seq[(p + i) & m->mask], seq_free(p + i + m->n),
				      memory_order_release);
}

/*
 * After freeing cells: wake the producers that wait for space, if any flagged itself. The
 * consumer calls it once per IPC_WAKE_CHECK_EVERY messages and whenever peek finds nothing
 * to deliver, not per message: the seq_cst fence is its cost.
 */
static void wake_space_waiters(struct ipc_mbox *m)
{
	/*
	 * W2: pairs with W3 in ipc_mbox_put_many(): our frees above are visible to a waiter's
	 * re-check, or its flag is visible to the load below. A Dekker pair: as seq_cst
	 * accesses it would need every FREE store (F0, one per cell, an xchg each on x86) and
	 * the waiter's claim loads seq_cst, where this fence is paid once per
	 * IPC_WAKE_CHECK_EVERY messages. Its accesses are all atomic (sequence words,
	 * space_waiters), so ThreadSanitizer's not modelling the fence loses nothing.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	/* relaxed: ordered by W2; the exchange picks one consumer-side waker */
	if (atomic_load_explicit(&m->h->space_waiters, memory_order_relaxed) &&
	    atomic_exchange_explicit(&m->h->space_waiters, 0, memory_order_relaxed)) {
		/* W1: pairs with W0 in ipc_mbox_put_many(): cells freed before the bump. */
		atomic_fetch_add_explicit(&m->h->space, 1, memory_order_release);
		/* shared futex (no FUTEX_PRIVATE_FLAG): the word is in the segment */
		syscall(SYS_futex, &m->h->space, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	}
}

/*
 * Free the consumed cells [freed, to) for the next lap, in position order, and record
 * freed; then, once per IPC_WAKE_CHECK_EVERY messages, wake producers waiting for space.
 */
static void free_to(struct ipc_mbox *m, uint64_t to)
{
	/* relaxed: consumer-owned words */
	uint64_t f = atomic_load_explicit(&m->h->freed, memory_order_relaxed);

	if (to - f - 1 >= m->n) /* to <= f: nothing (to - f > n never happens) */
		return;
	free_cells(m, f, (uint32_t)(to - f));
	/* relaxed: consumer-owned; read by its successor after its death */
	atomic_store_explicit(&m->h->freed, to, memory_order_relaxed);
	if (atomic_load_explicit(&m->h->unchecked, memory_order_relaxed) >= IPC_WAKE_CHECK_EVERY) {
		atomic_store_explicit(&m->h->unchecked, 0, memory_order_relaxed);
		wake_space_waiters(m);
	}
}

/*
 * Commit the removal of [h, h + k): the head is the commit point; scrub: zero the stamp
 * words of its later cells (IPC_F_SCRUB). With a backlog (the next message is already
 * stamped) the cells are freed at once: producers are ahead of us and may be waiting for
 * room (a full mailbox has room again after one message is consumed, even if its consumer
 * then stops for a while). Else later, whole lines of sequence words at a time (here once
 * IPC_FREE_LAG cells wait, or consumer_idle()): a producer claiming the next cell right
 * behind us then does not find its line just written by us.
 */
static void advance_head(struct ipc_mbox *m, uint64_t h, uint32_t k, bool scrub)
{
	/* relaxed: consumer-owned words */
	uint64_t f = atomic_load_explicit(&m->h->freed, memory_order_relaxed);

	/* H0: pairs with the acquire loads of head by tools and repair. */
	atomic_store_explicit(&m->h->head, h + k, memory_order_release);
	/* after the commit (a redelivered message keeps its bytes), before any FREE; a
	 * successor's recovery zeroes [freed, head) for a consumer that died in between */
	if (scrub)
		zero_stamps(m, h + 1, k - 1);
	atomic_store_explicit(&m->h->unchecked,
			      atomic_load_explicit(&m->h->unchecked, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	/* relaxed: only compared (a hint: a backlog); the line our next peek reads anyway */
	if (atomic_load_explicit(ipc_stamp_at(m, h + k), memory_order_relaxed) ==
	    ipc_stamp_make(h + k, IPC_ST_READY))
		free_to(m, h + k);
	else if (h + k - f >= IPC_FREE_LAG)
		free_to(m, (h + k) & ~(uint64_t)(IPC_FREE_LINE - 1));
}

/*
 * The consumer found nothing to deliver: free what it consumed (the whole lines behind the
 * head, or everything when all), then wake producers waiting for space if a free since the
 * last look may concern them. At most IPC_FREE_LINE - 1 cells stay unfreed: never enough
 * to keep a message of at most half the ring (shm_cfg_validate()) from fitting.
 */
static void consumer_idle(struct ipc_mbox *m, bool all)
{
	/* relaxed: consumer-owned words */
	uint64_t h = atomic_load_explicit(&m->h->head, memory_order_relaxed);

	free_to(m, all ? h : h & ~(uint64_t)(IPC_FREE_LINE - 1));
	if (atomic_load_explicit(&m->h->unchecked, memory_order_relaxed)) {
		atomic_store_explicit(&m->h->unchecked, 0, memory_order_relaxed);
		wake_space_waiters(m); /* idle: no wake may stay owed */
	}
}

/*
 * Ask the consumer to read the sequence words at every empty peek until its head reaches
 * end (mod 2^32; the header's recheck word): repair after skipping a dead claim that ends
 * there, recovery for whatever is queued. Keeps the farthest request.
 */
static void recheck_until(struct ipc_mbox *m, uint64_t end)
{
	uint32_t x = (uint32_t)end ? (uint32_t)end : 1u; /* 0 is "none"; one more poll */
	uint32_t cur = atomic_load_explicit(&m->h->recheck, memory_order_relaxed);

	do {
		if (cur && (int32_t)(x - cur) <= 0)
			return;
		/* Q0: release: pairs with Q1 in seq_poll_due(): our skip before the request */
	} while (!atomic_compare_exchange_weak_explicit(
		&m->h->recheck, &cur, x, memory_order_release, memory_order_relaxed));
}

/* Is the producer that owns a CLAIMED cell gone for good? */
static bool owner_is_dead(const struct shm_seg *seg, uint32_t owner)
{
	uint32_t st;

	if (owner >= shm_hdr(seg)->cfg.max_procs)
		return true;
	/* A3: pairs with the release stores of DEAD (D0 in the supervisor's repair(), H2 in
	 * shm_proc_reap()): made only once the owner is known gone. */
	st = atomic_load_explicit(&shm_proc_at(seg, owner)->state, memory_order_acquire);
	return st == SHM_PROC_DEAD || st == SHM_PROC_EXITED || st == SHM_PROC_FREE;
}

/*
 * Turn a dead producer's claim at position p into SKIP, moving the tail past it first.
 * Returns true if this call did it.
 */
static bool skip_dead_claim(struct ipc_mbox *m, uint64_t p, uint64_t s)
{
	help_tail(m, p, ipc_seq_k(s));
	/* C1: CAS against the (dead) owner's R0 and a racing repair; one of us wins. */
	if (!atomic_compare_exchange_strong_explicit(&m->seq[p & m->mask], &s,
						     ipc_seq_make(p, IPC_S_SKIP, ipc_seq_k(s), 0),
						     memory_order_acq_rel, memory_order_relaxed))
		return false;
	/* relaxed: a statistic */
	atomic_fetch_add_explicit(&m->h->skipped_dead, 1, memory_order_relaxed);
	return true;
}

/*
 * Move the head over cells that carry nothing to deliver (PAD, SKIP, TAKEN, a dead
 * producer's claim). Returns the head and its sequence word in *sp.
 */
static uint64_t skip_head(const struct shm_seg *seg, struct ipc_mbox *m, uint64_t *sp)
{
	/* relaxed: head is consumer-owned */
	uint64_t h = atomic_load_explicit(&m->h->head, memory_order_relaxed);

	for (;;) {
		uint64_t s;

		/* fetch the cell while the sequence word's line travels: two misses overlap */
		__builtin_prefetch(m->cells + (h & m->mask) * SHM_MBOX_CELL);
		/* A2: pairs with R0 in publish(): a READY message's bytes are visible. */
		s = atomic_load_explicit(&m->seq[h & m->mask], memory_order_acquire);
		uint32_t st = ipc_seq_state(s), k = ipc_seq_k(s);

		*sp = s;
		if (!is_pos(s, h) || st == IPC_S_FREE || st == IPC_S_READY || k == 0)
			return h;
		if (st == IPC_S_CLAIMED) {
			if (!owner_is_dead(seg, ipc_seq_owner(s)))
				return h;
			if (!skip_dead_claim(m, h, s))
				continue; /* the owner finished after all, or repair won */
		}
		/* PAD, SKIP, TAKEN: a dead padder may have left the tail here */
		help_tail(m, h, k);
		/* their stamp words are not rewritten this lap otherwise (see the rules) */
		zero_stamps(m, h, k);
		advance_head(m, h, k, false);
		h += k;
	}
}

static void fill_msg(const struct ipc_mbox *m, uint64_t h, struct ipc_msg *out)
{
	const uint8_t *c = m->cells + (h & m->mask) * SHM_MBOX_CELL;
	const struct ipc_wire *w = (const struct ipc_wire *)c;

	out->from = w->from;
	out->ref = w->ref;
	out->type = w->type;
	out->flags = w->flags & ~IPC_F_SCRUB;
	out->len = w->len;
	out->data = c + sizeof(*w);
	out->pos = h;
	out->attempts = 0;
}

/*
 * Does this empty peek read the sequence words? st is the stamp of the cell at the head h.
 * Yes when it names filler or a taken message there, when repair or recovery asked for it,
 * and once per IPC_SEQ_POLL_EVERY empty peeks (a claim whose producer died, a late stamp);
 * else the line of sequence words producers claim in is left alone.
 */
static bool seq_poll_due(struct ipc_mbox *m, uint32_t st, uint64_t h)
{
	/* relaxed: consumer-owned counter */
	uint32_t u = atomic_load_explicit(&m->h->polls, memory_order_relaxed) + 1;

	if (st && (st & ~IPC_ST_MASK) == ipc_stamp_make(h, 0))
		u = IPC_SEQ_POLL_EVERY; /* PAD or TAKEN at the head */
	/*
	 * recheck: read the sequence words on every empty peek while the head is before the
	 * position it names (mod 2^32), then clear it. Not once: an empty peek at a live
	 * producer's claim in front of a skipped one must not use the request up. Q1: pairs
	 * with Q0 in recheck_until(): the skip it made is visible to the reads that follow.
	 * The CAS clears only the value read: a repair that moves it meanwhile is not lost.
	 */
	uint32_t rc = atomic_load_explicit(&m->h->recheck, memory_order_acquire);

	if (rc) {
		if ((int32_t)((uint32_t)h - rc) < 0)
			u = IPC_SEQ_POLL_EVERY;
		else
			atomic_compare_exchange_strong_explicit(
				&m->h->recheck, &rc, 0, memory_order_relaxed, memory_order_relaxed);
	}
	if (u >= IPC_SEQ_POLL_EVERY)
		u = 0;
	atomic_store_explicit(&m->h->polls, u, memory_order_relaxed);
	return u == 0;
}

/* Hand out the message at h: fill *out and record it in flight. */
static inline int deliver(struct ipc_mbox *m, uint64_t h, struct ipc_msg *out)
{
	fill_msg(m, h, out);
	/* relaxed: consumer-owned; read by the successor after our death */
	if (atomic_load_explicit(&m->h->inflight, memory_order_relaxed) != h + 1)
		atomic_store_explicit(&m->h->inflight, h + 1, memory_order_relaxed);
	if (atomic_load_explicit(&m->h->redeliver, memory_order_relaxed) == h + 1) {
		out->flags |= IPC_F_REDELIVERED;
		/* relaxed: consumer-owned, written by recovery before this consumer ran */
		out->attempts = atomic_load_explicit(&m->h->attempts, memory_order_relaxed);
	}
	return 0;
}

/*
 * The fast path reads only the stamp of the head's cell (see the stamp rules at the top):
 * one line, which the producer writes once per message and which carries the message.
 */
static int mbox_peek(struct shm_seg *seg, uint32_t slot, struct ipc_msg *out)
{
	struct ipc_mbox m;
	uint64_t h, s;
	uint32_t st;

	ipc_mbox_resolve(seg, slot, &m);
	/* relaxed: head is consumer-owned */
	h = atomic_load_explicit(&m.h->head, memory_order_relaxed);
	/* P3: pairs with P0/P1/P2 in try_put(): the message's bytes are visible. */
	st = atomic_load_explicit(ipc_stamp_at(&m, h), memory_order_acquire);
	if (st == ipc_stamp_make(h, IPC_ST_READY))
		return deliver(&m, h, out);
	if (!seq_poll_due(&m, st, h)) {
		consumer_idle(&m, false);
		return -EAGAIN;
	}
	h = skip_head(seg, &m, &s);
	if (!is_pos(s, h) || ipc_seq_state(s) != IPC_S_READY) {
		consumer_idle(&m, true);
		return -EAGAIN;
	}
	return deliver(&m, h, out);
}

#ifdef SHOAL_PLANTED_LOSS
/*
 * The planted fault (meson -Dplanted_loss=true, never in a real build): the consumer drops
 * one plain message (a cast: no flag) in $SHOAL_PLANTED_LOSS_EVERY (default a million) of
 * those it peeks, after its send was accepted, as a lossy mailbox would. It exists so that
 * `shoal stress` can be seen to catch a lost message (tests/test_stress.c). The count is
 * the process's own: a worker's drain runs on its one thread.
 */
static bool planted_drop(const struct ipc_msg *m)
{
	static uint64_t seen, every;

	if (m->flags)
		return false;
	if (!every) {
		const char *e = getenv("SHOAL_PLANTED_LOSS_EVERY");

		every = e ? strtoull(e, NULL, 10) : 0;
		if (!every)
			every = 1000000;
	}
	return ++seen % every == 0;
}

static int planted_loss(struct shm_seg *seg, uint32_t slot, struct ipc_msg *out, int rc)
{
	while (rc == 0 && planted_drop(out)) {
		ipc_mbox_consume(seg, slot, out);
		rc = mbox_peek(seg, slot, out);
	}
	return rc;
}
#else
#define planted_loss(seg, slot, out, rc) (rc)
#endif

int ipc_mbox_peek(struct shm_seg *seg, uint32_t slot, struct ipc_msg *out)
{
	return planted_loss(seg, slot, out, mbox_peek(seg, slot, out));
}

/*
 * Spin on the head's stamp alone, a pause between reads, up to `spins` reads; then one
 * ipc_mbox_peek(), which does the rest (filler, repair, frees). One loop on one word: the
 * arrival costs one mispredicted branch, not one in peek and another in a caller's loop
 * around it (measured alternately against such a loop: 1 to 10 ns less per round trip).
 */
int ipc_mbox_peek_spin(struct shm_seg *seg, uint32_t slot, struct ipc_msg *out, uint32_t spins)
{
	struct ipc_mbox m;
	_Atomic uint32_t *sp;
	uint32_t want;
	uint64_t h;

	ipc_mbox_resolve(seg, slot, &m);
	/* relaxed: head is consumer-owned */
	h = atomic_load_explicit(&m.h->head, memory_order_relaxed);
	sp = ipc_stamp_at(&m, h);
	want = ipc_stamp_make(h, IPC_ST_READY);
	for (uint32_t i = 0; i < spins; i++) {
		/* P3, as in ipc_mbox_peek() */
		if (atomic_load_explicit(sp, memory_order_acquire) == want)
			return planted_loss(seg, slot, out, deliver(&m, h, out));
		cpu_relax();
	}
	return ipc_mbox_peek(seg, slot, out);
}

void ipc_mbox_consume(struct shm_seg *seg, uint32_t slot, const struct ipc_msg *msg)
{
	struct ipc_mbox m;
	uint64_t h = msg->pos;

	ipc_mbox_resolve(seg, slot, &m);
	/* relaxed: consumer-owned words */
	if (atomic_load_explicit(&m.h->redeliver, memory_order_relaxed))
		atomic_store_explicit(&m.h->redeliver, 0, memory_order_relaxed);
	atomic_store_explicit(&m.h->dequeued,
			      atomic_load_explicit(&m.h->dequeued, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	advance_head(&m, h, ipc_msg_cells(msg->len), wants_scrub(&m, h, ipc_msg_cells(msg->len)));
}

void ipc_mbox_recover(struct shm_seg *seg, uint32_t slot)
{
	struct ipc_mbox m;
	uint64_t h, f, inf;

	ipc_mbox_resolve(seg, slot, &m);
	/* relaxed: consumer-owned words, written by our predecessor before it died */
	h = atomic_load_explicit(&m.h->head, memory_order_relaxed);
	f = atomic_load_explicit(&m.h->freed, memory_order_relaxed);
	inf = atomic_load_explicit(&m.h->inflight, memory_order_relaxed);
	/* a commit cut short after the head moved: free what it had not freed yet */
	for (uint64_t p = f; p != h && p - f <= m.n; p++) {
		_Atomic uint64_t *sq = &m.seq[p & m.mask];
		uint64_t s = atomic_load_explicit(sq, memory_order_acquire);

		/* CAS: a producer may already have reclaimed a cell freed before the crash */
		if (is_pos(s, p)) {
			zero_stamps(&m, p, 1); /* our predecessor may have died before a scrub */
			/* F1: as F0 in free_cells(), for the cells the dead consumer left. */
			atomic_compare_exchange_strong_explicit(sq, &s, seq_free(p + m.n),
								memory_order_release,
								memory_order_relaxed);
		}
	}
	atomic_store_explicit(&m.h->freed, h, memory_order_relaxed);
	/* empty peeks read the sequence words until the head is past what is queued now: a
	 * claim may have died meanwhile (relaxed: the tail only bounds the request; the
	 * sequence words themselves are read with acquire) */
	recheck_until(&m, atomic_load_explicit(&m.h->tail, memory_order_relaxed));
	/* our predecessor may have died between freeing cells and waking their waiters */
	wake_space_waiters(&m);
	if (inf == h + 1) {
		/* the same message again (its previous redelivery killed us too): one more */
		uint32_t att =
			atomic_load_explicit(&m.h->redeliver, memory_order_relaxed) == h + 1
				? atomic_load_explicit(&m.h->attempts, memory_order_relaxed) + 1
				: 1;

		atomic_store_explicit(&m.h->attempts, att, memory_order_relaxed);
		atomic_store_explicit(&m.h->redeliver, h + 1, memory_order_relaxed);
		atomic_store_explicit(
			&m.h->redelivered,
			atomic_load_explicit(&m.h->redelivered, memory_order_relaxed) + 1,
			memory_order_relaxed);
	}
	atomic_store_explicit(&m.h->inflight, 0, memory_order_relaxed);
}

void ipc_mbox_drop_poison(struct shm_seg *seg, uint32_t slot, const struct ipc_msg *m)
{
	struct ipc_mbox mb;

	ipc_mbox_resolve(seg, slot, &mb);
	/* relaxed: consumer-owned counter; a death before the consume below drops it again */
	atomic_store_explicit(&mb.h->poisoned,
			      atomic_load_explicit(&mb.h->poisoned, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	ipc_mbox_consume(seg, slot, m);
}

/* Consumer-owned removal in place: READY -> TAKEN; the head frees it when it gets there. */
static void take_in_place(struct ipc_mbox *m, uint64_t p, uint32_t k)
{
	/* R2: consumer-owned transition (producers never touch READY); pairs with the acquire
	 * loads of tools and repair, which may see either word. */
	atomic_store_explicit(&m->seq[p & m->mask], ipc_seq_make(p, IPC_S_TAKEN, k, 0),
			      memory_order_release);
	/* relaxed: only the consumer reads stamps; its peek then reads the sequence words */
	atomic_store_explicit(ipc_stamp_at(m, p), ipc_stamp_make(p, IPC_ST_TAKEN),
			      memory_order_relaxed);
	/* relaxed: consumer-owned counter */
	atomic_store_explicit(&m->h->dequeued,
			      atomic_load_explicit(&m->h->dequeued, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

int ipc_mbox_take_reply(struct shm_seg *seg, uint32_t slot, uint64_t ref, struct ipc_msg *out,
			void *buf, uint32_t cap)
{
	struct ipc_mbox m;
	uint64_t h, s, p, inf, stale = 0;
	int r = -EAGAIN;

	ipc_mbox_resolve(seg, slot, &m);
	h = skip_head(seg, &m, &s);
	/* relaxed: consumer-owned */
	inf = atomic_load_explicit(&m.h->inflight, memory_order_relaxed);
	for (p = h; p - h < m.n;) {
		struct ipc_msg msg;
		uint32_t st, k;

		/* A4: as A2 in skip_head(): a READY message's bytes are visible. */
		s = atomic_load_explicit(&m.seq[p & m.mask], memory_order_acquire);
		st = ipc_seq_state(s);
		k = ipc_seq_k(s);
		if (!is_pos(s, p) || st == IPC_S_FREE || k == 0)
			break;
		p += k;
		if (st != IPC_S_READY || p - k + 1 == inf)
			continue;
		fill_msg(&m, p - k, &msg);
		if (!(msg.flags & IPC_F_REPLY))
			continue;
		if (msg.ref == ref) {
			*out = msg;
			if (buf && cap)
				memcpy(buf, msg.data, msg.len < cap ? msg.len : cap);
			out->data = buf;
			take_in_place(&m, p - k, k);
			r = 0;
			break;
		}
		if (msg.ref & IPC_REF_SYNC) {
			/* a reply to an ipc_call() that is over: late, or a duplicate */
			take_in_place(&m, p - k, k);
			stale++;
		}
	}
	if (stale)
		/* relaxed: consumer-owned counter */
		atomic_store_explicit(&m.h->stale,
				      atomic_load_explicit(&m.h->stale, memory_order_relaxed) +
					      stale,
				      memory_order_relaxed);
	if (r == 0 || stale)
		skip_head(seg, &m, &s); /* free what was taken at the head */
	if (r)
		consumer_idle(&m, true); /* the caller waits next */
	return r;
}

/* Count READY and CLAIMED messages from head, stopping at limit; loads only. */
static uint32_t count_depth(const struct ipc_mbox *m, uint32_t limit)
{
	/* H1: pairs with H0 in advance_head(). */
	uint64_t h = atomic_load_explicit(&m->h->head, memory_order_acquire);
	uint32_t d = 0;

	for (uint64_t p = h; p - h < m->n;) {
		uint64_t s = atomic_load_explicit(&m->seq[p & m->mask], memory_order_acquire);
		uint32_t st = ipc_seq_state(s), k = ipc_seq_k(s);

		if (!is_pos(s, p) || st == IPC_S_FREE || k == 0)
			break;
		if ((st == IPC_S_READY || st == IPC_S_CLAIMED) && ++d >= limit)
			break;
		p += k;
	}
	return d;
}

uint32_t ipc_mbox_depth(const struct shm_seg *seg, uint32_t slot)
{
	struct ipc_mbox m;

	if (slot >= shm_hdr(seg)->cfg.max_agents)
		return 0;
	ipc_mbox_resolve(seg, slot, &m);
	return count_depth(&m, UINT32_MAX);
}

bool ipc_mbox_has_msg(const struct shm_seg *seg, uint32_t slot)
{
	struct ipc_mbox m;

	if (slot >= shm_hdr(seg)->cfg.max_agents)
		return false;
	ipc_mbox_resolve(seg, slot, &m);
	return count_depth(&m, 1) != 0;
}

/* See ipc.h. The consumer, once per batch. */
void ipc_mbox_note_depth(struct shm_seg *seg, uint32_t slot)
{
	struct ipc_mbox m;
	uint64_t h, t, d;

	ipc_mbox_resolve(seg, slot, &m);
	/* relaxed: head is ours; tail a statistic (a stale one only lowers the mark) */
	h = atomic_load_explicit(&m.h->head, memory_order_relaxed);
	t = atomic_load_explicit(&m.h->tail, memory_order_relaxed);
	if ((int64_t)(t - h) <= 0)
		return;
	d = t - h > m.n ? m.n : t - h;
	/* relaxed: single writer (the consumer); readers take it as a statistic */
	if (d > atomic_load_explicit(&m.h->queued_max, memory_order_relaxed))
		atomic_store_explicit(&m.h->queued_max, (uint32_t)d, memory_order_relaxed);
}

/* See ipc.h. Any process. */
void ipc_mbox_stats(const struct shm_seg *seg, uint32_t slot, struct ipc_mbox_stats *st)
{
	struct ipc_mbox m;
	uint64_t h, t;

	memset(st, 0, sizeof(*st));
	if (slot >= shm_hdr(seg)->cfg.max_agents)
		return;
	ipc_mbox_resolve(seg, slot, &m);
	/* relaxed: statistics snapshots */
	h = atomic_load_explicit(&m.h->head, memory_order_relaxed);
	t = atomic_load_explicit(&m.h->tail, memory_order_relaxed);
	st->depth = count_depth(&m, UINT32_MAX);
	st->dequeued = atomic_load_explicit(&m.h->dequeued, memory_order_relaxed);
	st->enqueued = st->dequeued + st->depth;
	st->full_waits = atomic_load_explicit(&m.h->full_waits, memory_order_relaxed);
	st->redelivered = atomic_load_explicit(&m.h->redelivered, memory_order_relaxed);
	st->skipped_dead = atomic_load_explicit(&m.h->skipped_dead, memory_order_relaxed);
	st->stale_replies = atomic_load_explicit(&m.h->stale, memory_order_relaxed);
	st->poisoned = atomic_load_explicit(&m.h->poisoned, memory_order_relaxed);
	st->cells = (uint32_t)m.n;
	st->queued_max = atomic_load_explicit(&m.h->queued_max, memory_order_relaxed);
	/* a lagging tail (see the top) may trail the head by one message */
	if ((int64_t)(t - h) <= 0)
		st->cells_used = 0;
	else
		st->cells_used = t - h > m.n ? (uint32_t)m.n : (uint32_t)(t - h);
}

int ipc_repair_proc(struct shm_seg *seg, uint32_t pslot)
{
	const struct shm_cfg *cfg = &shm_hdr(seg)->cfg;
	struct shm_proc *p;
	struct ipc_mbox m;
	uint64_t intent, h, pos;
	int n = 0;

	if (pslot >= cfg->max_procs)
		return -EINVAL;
	p = shm_proc_at(seg, pslot);
	/* relaxed: the owner is dead; its stores are ordered before the death we noticed */
	intent = atomic_load_explicit(&p->mbox_intent, memory_order_relaxed);
	if (!intent || intent > cfg->max_agents)
		goto out_clear;
	ipc_mbox_resolve(seg, (uint32_t)(intent - 1), &m);
	/* H2: pairs with H0 in advance_head(): cells below head are the consumer's. */
	h = atomic_load_explicit(&m.h->head, memory_order_acquire);
	for (pos = h; pos - h < m.n;) {
		uint64_t s = atomic_load_explicit(&m.seq[pos & m.mask], memory_order_acquire);
		uint32_t st = ipc_seq_state(s), k = ipc_seq_k(s);

		if (__builtin_expect(ipc_mbox_test_hook != NULL, 0))
			ipc_mbox_test_hook(IPC_HOOK_REPAIR_READ);
		if (!is_pos(s, pos)) {
			/* the consumer freed it under us: restart from its new head */
			uint64_t nh = atomic_load_explicit(&m.h->head, memory_order_acquire);

			if (nh == h)
				break;
			pos = h = nh;
			continue;
		}
		if (st == IPC_S_FREE || k == 0)
			break;
		if (st == IPC_S_CLAIMED && ipc_seq_owner(s) == pslot) {
			if (skip_dead_claim(&m, pos, s)) {
				n++;
				/* the consumer's empty peeks read the sequence words until it is
				 * past the skip, not once in a while */
				recheck_until(&m, pos + k);
			}
		} else {
			help_tail(&m, pos, k);
		}
		pos += k;
	}
out_clear:
	atomic_store_explicit(&p->mbox_intent, 0, memory_order_relaxed);
	/* its rounds freed, its members' answers made dead: no round waits for it */
	ipc_round_repair(seg, pslot);
	/* it may have died owing a wake (between claim_wake() and its syscall) */
	ipc_wake_repair(seg, pslot);
	return n;
}
