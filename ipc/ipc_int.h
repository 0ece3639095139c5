/* ipc internals shared by mbox.c, wake.c and msg.c: the mailbox's shared layout. */
#ifndef IPC_IPC_INT_H
#define IPC_IPC_INT_H

#include <assert.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ipc/ipc.h"
#include "shm/cpu.h"
#include "shm/shm.h"

/*
 * A sequence word (one per 64-byte cell):
 *   bits  0..37  position mod 2^38 the word is valid for (a lap tag: no ABA)
 *   bits 38..40  state (IPC_S_*)
 *   bits 41..51  cells in the message (CLAIMED/READY/PAD/SKIP/TAKEN)
 *   bits 52..63  process slot of the producer (CLAIMED)
 */
#define IPC_POS_BITS  38
#define IPC_POS_MASK  ((UINT64_C(1) << IPC_POS_BITS) - 1)
#define IPC_S_FREE    0u /* the cell may be claimed at this position */
#define IPC_S_CLAIMED 1u /* a producer is writing a message here */
#define IPC_S_READY   2u /* a complete message */
#define IPC_S_PAD     3u /* filler to the end of the ring */
#define IPC_S_SKIP    4u /* a dead producer's claim, turned into filler */
#define IPC_S_TAKEN   5u /* a message removed out of order (selective receive) */
#define IPC_K_MAX     2047u
#define IPC_OWNER_MAX 4095u

static_assert(SHM_MAX_PROCS - 1 <= IPC_OWNER_MAX, "owner field holds a process slot");

static inline uint64_t ipc_seq_make(uint64_t pos, uint32_t state, uint32_t k, uint32_t owner)
{
	return (pos & IPC_POS_MASK) | ((uint64_t)state << 38) | ((uint64_t)k << 41) |
	       ((uint64_t)owner << 52);
}

static inline uint64_t ipc_seq_pos(uint64_t s)
{
	return s & IPC_POS_MASK;
}

static inline uint32_t ipc_seq_state(uint64_t s)
{
	return (uint32_t)(s >> 38) & 7u;
}

static inline uint32_t ipc_seq_k(uint64_t s)
{
	return (uint32_t)(s >> 41) & IPC_K_MAX;
}

static inline uint32_t ipc_seq_owner(uint64_t s)
{
	return (uint32_t)(s >> 52);
}

/* The 256-byte mailbox header: producer-written words, then consumer-written words. */
struct ipc_mbox_hdr {
	/* producer line: written by producers (and, rarely, repair) */
	_Atomic uint64_t tail;	       /* next position to claim (free-running) */
	_Atomic uint64_t full_waits;   /* sends that found the mailbox full */
	_Atomic uint64_t skipped_dead; /* dead producers' claims turned into skips */
	uint8_t pad0[128 - 24];	       /* to the consumer line */
	/* consumer line: written only by the consumer (and its successor's recovery) */
	_Atomic uint64_t head;		/* position of the next message to deliver */
	_Atomic uint64_t freed;		/* cells below this position are free for the next lap */
	_Atomic uint64_t inflight;	/* position + 1 of the message handed out by peek, 0 none */
	_Atomic uint64_t redeliver;	/* position + 1 of the message to flag redelivered */
	_Atomic uint64_t dequeued;	/* messages consumed (taken included) */
	_Atomic uint64_t redelivered;	/* messages handed out again after a consumer died */
	_Atomic uint64_t stale;		/* late or duplicate call replies dropped by take_reply */
	_Atomic uint32_t space;		/* futex word: bumped by the consumer for full waiters */
	_Atomic uint32_t space_waiters; /* producers waiting for space (they write it, rarely) */
	_Atomic uint32_t unchecked;	/* frees since the consumer last looked for waiters */
	_Atomic uint32_t attempts;	/* consumers that died handling the message at redeliver
					 * - 1 (layout minor 3) */
	_Atomic uint64_t poisoned;	/* messages dropped after killing their consumer
					 * IPC_POISON_MAX times (layout minor 3) */
	_Atomic uint32_t polls;		/* empty peeks since the last read of the sequence words
					 * (layout minor 4) */
	_Atomic uint32_t recheck;	/* 0, or a position (mod 2^32) set by repair and recovery:
					 * empty peeks read the sequence words until the head is
					 * there (layout minor 4) */
	_Atomic uint32_t queued_max;	/* the deepest queue the consumer saw at the start of a
					 * batch, in cells (ipc_mbox_note_depth(); layout minor 10,
					 * once pad) */
	uint8_t pad1[128 - 92];		/* to 256 */
};
static_assert(sizeof(struct ipc_mbox_hdr) == SHM_MBOX_HDR, "mailbox header ABI");
static_assert(offsetof(struct ipc_mbox_hdr, tail) == 0, "ipc_mbox_init() keeps it apart");
static_assert(offsetof(struct ipc_mbox_hdr, head) == 128, "consumer words on their own line");
static_assert(offsetof(struct ipc_mbox_hdr, attempts) == 196, "mailbox header ABI");
static_assert(offsetof(struct ipc_mbox_hdr, poisoned) == 200, "mailbox header ABI");
static_assert(offsetof(struct ipc_mbox_hdr, recheck) == 212, "mailbox header ABI");
static_assert(offsetof(struct ipc_mbox_hdr, pad0) == 24 &&
		      offsetof(struct ipc_mbox_hdr, queued_max) == 216 &&
		      offsetof(struct ipc_mbox_hdr, pad1) == 220,
	      "a new mailbox header word: ipc_mbox_init() resets each word by name");

/*
 * In a call reference: set by ipc_call() (a synchronous call from a client inbox), never by
 * ipc_call_async(). Such a reply that is not the one being awaited is stale (the call timed
 * out, or the call message was delivered twice and answered twice): no one will ever take
 * it, so ipc_mbox_take_reply() drops it instead of letting it fill the inbox.
 */
#define IPC_REF_SYNC UINT64_C(0x80000000)

/* A message's first 32 bytes, in its first cell. */
struct ipc_wire {
	uint64_t from;	/* sender handle */
	uint64_t ref;	/* call/reply reference */
	uint32_t type;	/* application type */
	uint32_t flags; /* IPC_F_* */
	uint32_t len;	/* payload bytes */
	uint32_t stamp; /* in a cell: the cell's stamp (layout 3), stored last; else zero */
};
static_assert(sizeof(struct ipc_wire) == 32, "message header ABI");
static_assert(offsetof(struct ipc_wire, stamp) == 28, "message header ABI");

/*
 * A cell's stamp (layout 3): bytes 28..31 of every cell. 0, or ipc_stamp_make(position,
 * state) of the message, filler or taken message that starts in that cell. The consumer's
 * fast path reads it instead of the sequence word (see ipc/mbox.c for why it can be
 * trusted).
 */
/*
 * In a cell's header flags (never in a delivered message's): some later cell of this
 * message holds, where its stamp word would be, payload bytes that read as a READY stamp
 * of that cell in some lap; the consumer zeroes those words before it lets the cells go.
 */
#define IPC_F_SCRUB 0x80000000u

#define IPC_ST_READY 1u
#define IPC_ST_PAD   2u
#define IPC_ST_TAKEN 3u
#define IPC_ST_MASK  3u

static inline uint32_t ipc_stamp_make(uint64_t pos, uint32_t st)
{
	return (uint32_t)((pos & 0x3fffffffu) << 2) | st;
}

/* Would v, in the stamp word of the cell of position pos, read as READY in some lap? */
static inline bool ipc_stamp_forgeable(uint32_t v, uint64_t pos, uint64_t mask)
{
	return (v & IPC_ST_MASK) == IPC_ST_READY && (((v >> 2) - (uint32_t)pos) & mask) == 0;
}

/* A resolved mailbox: pointers and sizes, private to the caller. */
struct ipc_mbox {
	struct ipc_mbox_hdr *h;
	_Atomic uint64_t *seq;
	uint8_t *cells;
	uint64_t n;    /* cells */
	uint64_t mask; /* n - 1 */
};

static inline void ipc_mbox_resolve(const struct shm_seg *seg, uint32_t slot, struct ipc_mbox *m)
{
	const struct shm_hdr *sh = shm_hdr(seg);
	uint64_t n = sh->cfg.mbox_cells;
	uint8_t *base;

	/* one arena: skip shm_mbox_off()'s divisions on the hot path */
	if (sh->cfg.nnodes == 1)
		base = seg->base + sh->regions[SHM_R_MBOX].off +
		       (uint64_t)slot * SHM_MBOX_STRIDE(n);
	else
		base = shm_mbox_at(seg, slot);
	m->h = (struct ipc_mbox_hdr *)base;
	m->seq = (_Atomic uint64_t *)(base + SHM_MBOX_HDR);
	m->cells = base + SHM_MBOX_HDR + n * 8u;
	m->n = n;
	m->mask = n - 1;
}

/* The stamp word of the cell of position pos. */
static inline _Atomic uint32_t *ipc_stamp_at(const struct ipc_mbox *m, uint64_t pos)
{
	return (_Atomic uint32_t *)(m->cells + (pos & m->mask) * SHM_MBOX_CELL +
				    offsetof(struct ipc_wire, stamp));
}

static inline uint32_t ipc_msg_cells(uint32_t len)
{
	return (uint32_t)((sizeof(struct ipc_wire) + len + SHM_MBOX_CELL - 1) / SHM_MBOX_CELL);
}

/*
 * A send's destination, resolved once from its handle (check_to() in msg.c checks it;
 * ipc_dest_at() does not): every layer below takes this and none decodes the handle, finds
 * the agent slot or lays out the mailbox again. Private to the sending thread.
 */
struct ipc_dest {
	struct ipc_mbox m;	   /* the agent's mailbox */
	const struct shm_agent *a; /* its agent slot: generation (G0), host (worker) */
	struct shm_proc *me;	   /* the sender's process slot (mbox_intent) */
	uint32_t slot;		   /* agent slot */
	uint32_t gen;		   /* the handle's generation, current when checked */
};

/* Fill d for agent slot `slot` named with generation gen, unchecked (its callers check). */
static inline void ipc_dest_at(const struct shm_seg *seg, uint32_t slot, uint32_t gen,
			       struct ipc_dest *d)
{
	ipc_mbox_resolve(seg, slot, &d->m);
	d->a = shm_agent_at(seg, slot);
	d->me = seg->self < shm_hdr(seg)->cfg.max_procs ? shm_proc_at(seg, seg->self) : NULL;
	d->slot = slot;
	d->gen = gen;
}

/*
 * The process slot hosting d's agent now, or UINT32_MAX: one relaxed load of the line the
 * handle's check read (a stale host only costs a wasted or late ring; the worker rechecks).
 */
static inline uint32_t ipc_dest_host(const struct ipc_dest *d)
{
	uint32_t w = atomic_load_explicit(&d->a->worker, memory_order_relaxed);

	return w ? w - 1 : UINT32_MAX;
}

/*
 * Enqueue one message into agent slot's mailbox (no wake). gen: the generation of the
 * destination handle, which check_to() (msg.c) found current; a claim made once the
 * slot has another is abandoned (-ESTALE; see "Re-initialisation" in mbox.c). Returns 0,
 * -EAGAIN (full, timeout_ms == 0), -ETIMEDOUT, -ESTALE. mbox.c.
 */
int ipc_mbox_put(struct shm_seg *seg, uint32_t slot, uint32_t gen, const struct ipc_wire *w,
		 const void *data, int timeout_ms);

/* Payloads up to this many bytes fit a message in one cell (with its header). */
#define IPC_SMALL_MAX (SHM_MBOX_CELL - 32u)

/*
 * One message of at most IPC_SMALL_MAX bytes to d, one attempt, no wait: 0, -ESTALE (as in
 * ipc_mbox_put()), or -EAGAIN when the attempt lost a race or found the tail's cell not free
 * (full, or a claim to help past); ipc_mbox_put_many() then does all of it. The fast path of
 * ipc_send(). mbox.c.
 */
int ipc_mbox_put_small(struct shm_seg *seg, struct ipc_dest *d, const struct ipc_wire *w,
		       const void *data);

/*
 * After process slot `dead` died: make the wake it owed (it won a waiter's wake in
 * claim_wake() and died before the syscall; its wake_intent says whom, or
 * IPC_WAKE_OWES_MANY: a batch, and every waiter gets a spurious wake), then
 * wakes every process whose parked flag is set. The repairer of that slot.
 * One word per process: of two threads ringing at once, the one that finishes first
 * clears it, and a death then costs the other's waiter a wait until its park times out.
 */
void ipc_wake_repair(struct shm_seg *seg, uint32_t dead);

/*
 * Enqueue up to cnt messages into d's mailbox with as few claims as possible (one while they
 * fit before the ring's end). Returns how many were put (>= 1; in order), or -EAGAIN /
 * -ETIMEDOUT when not even the first fits, or -ESTALE (as in ipc_mbox_put()). mbox.c.
 */
int ipc_mbox_put_many(struct shm_seg *seg, struct ipc_dest *d, const struct ipc_wire *w,
		      const void *const *data, uint32_t cnt, int timeout_ms);

/* After process slot `dead` died: its rounds freed, its members' answers made. round.c. */
void ipc_round_repair(struct shm_seg *seg, uint32_t dead);

/* Which process slot hosts agent slot (its worker), or UINT32_MAX. msg.c. */
uint32_t ipc_agent_host(const struct shm_seg *seg, uint32_t slot);

/*
 * The asymmetric wake pair (ipc/wake.c, "The asymmetric pair"): IPC_ASYM_ON once this
 * process registered for membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), so that a parking
 * process's barrier reaches its threads; IPC_ASYM_OFF where it cannot (or SHOAL_MEMBARRIER=
 * off); IPC_ASYM_UNKNOWN until its first ring (and again in a forked child). wake.c.
 */
#define IPC_ASYM_UNKNOWN 0
#define IPC_ASYM_ON	 1
#define IPC_ASYM_OFF	 2
extern _Atomic int ipc_asym_state;

/* D1's slow path: decide ipc_asym_state if unknown, then fence unless it is on. wake.c. */
void ipc_ring_fence_slow(void);

/*
 * D1, a sender's half of the wake's Dekker pair: its publication before its loads of the
 * host and the host's parked flag. Registered (IPC_ASYM_ON): only the compiler is kept from
 * moving the loads up; a parker's membarrier() does the CPU's part (see ipc/wake.c). Else
 * a seq_cst fence. Any thread.
 */
static inline void ipc_ring_fence(void)
{
	/* relaxed: a process-local mode word; every value it takes is safe to act on */
	if (__builtin_expect(
		    atomic_load_explicit(&ipc_asym_state, memory_order_relaxed) == IPC_ASYM_ON, 1))
		atomic_signal_fence(memory_order_seq_cst);
	else
		ipc_ring_fence_slow();
}

/*
 * The parker's half of the asymmetric pair, for a process that parks outside
 * ipc_waiter_wait() (the supervisor's control wait): ipc_park_wants_barrier() once (the
 * kernel has the command, SHOAL_MEMBARRIER is not off), then ipc_park_barrier() after each
 * parked store, before its look for work. It returns false if the call failed (a wake a
 * producer skipped its fence for may then be missed: bound the sleep). Counted in
 * ipc_park_barriers (this process's; a statistic for tests). wake.c.
 */
bool ipc_park_wants_barrier(void);
bool ipc_park_barrier(void);
extern _Atomic uint64_t ipc_park_barriers;

/*
 * Whether w's parks issue the parker's membarrier() (false for w NULL) and, in *sender if
 * not NULL, whether this process's rings skip the fence (deciding it now if not yet). Tests
 * and tools; any thread. wake.c.
 */
bool ipc_wake_is_asym(const struct ipc_waiter *w, bool *sender);

/* Tests only: called at fixed points of the mailbox code (NULL: not). */
#define IPC_HOOK_PAD_STAMPED 1 /* a producer stamped filler, before publishing it */
#define IPC_HOOK_REPAIR_READ 2 /* repair read a sequence word, before acting on it */
#define IPC_HOOK_CALL_SENT   3 /* ipc_call() sent its call, before its look at the callee (K0) */
extern void (*ipc_mbox_test_hook)(int point);

/* shm_proc.wake_intent while ipc_ring_many() runs: it may owe wakes to several slots. */
#define IPC_WAKE_OWES_MANY UINT32_MAX

/* Tests only: called at fixed points of the wake code (NULL: not). wake.c. */
#define IPC_WAKE_HOOK_MANY_CLAIMED                                                                 \
	1		  /* ipc_ring_many() won a wake, before its syscall                        \
			   * (SHOAL_TEST_HOOKS builds only) */
#define IPC_HOOK_PARKED 2 /* a waiter stored its parked flag (D0), before its has_work check */
extern void (*ipc_wake_test_hook)(int point);

#endif
