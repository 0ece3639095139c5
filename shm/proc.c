/*
 * The process table and the agent table's slot claims.
 *
 * Claiming a process slot. Any process may be SIGKILLed at any instruction; a reaper (a
 * claimer over a full table, the supervisor's client scan) must never take a slot whose
 * claimer lives, and a claimer that dies at any step must leave a slot that becomes
 * claimable again. So at every step the slot's state word names a process whose death
 * can be checked:
 *
 *   FREE/EXITED --C0--> HOLD(0, claimer) --S0--> STARTING --S1--> RUNNING, STOPPING
 *
 * C0 is the one exclusive step and carries the claimer's pid in the CAS word itself (a hold
 * word, shm/layout.h). Only then does the claimer store own (pid, epoch: C1), its start
 * time and the owner fields; S0 publishes them with STARTING. Nothing of a claim is visible
 * before S0 (no tag is handed out), so a claimer found dead while it holds the slot left
 * nothing to repair. (Storing the owner after a CAS straight to STARTING let a reaper judge
 * a live claimer by the previous owner's own word, or by its own pid with the previous
 * start time, and mark it DEAD under it: two owners.)
 *
 * Reaping, shm_proc_reap(), one slot at a time:
 *   HOLD(0, c), c gone                       --K1--> EXITED (claimable at once)
 *   s = STARTING/RUNNING/STOPPING, owner gone --H0--> HOLD(s, reaper) --H2--> DEAD
 *   HOLD(s, r), r gone                       --K1--> DEAD if the owner is gone, else s
 * An owner is judged by own and start_time, published before s (S0/S1; K0 acquires them).
 * A whole cycle can run between a reaper's judgement and its CAS (the owner releases or
 * is repaired, a new owner claims and publishes the same s), so H0 only takes the state
 * word, and H1 then checks that own is still the owner judged; if not, the reaper gives
 * s back. Every move away from a hold is a CAS on that hold word, whose pid names the one
 * process whose death was checked; the supervisor repairs DEAD slots, then stores EXITED.
 *
 * A holder is judged by its pid alone (no room for a start time in the word; a zombie is
 * gone): a pid reused meanwhile keeps the hold until that process exits too. Left open: a
 * holder's pid reused by a new holder of the same slot between a reaper's check and its
 * CAS, which needs the pid space to wrap in that window.
 *
 * Labels (this file; D0/D1/X0/X1 are the supervisor's, supervisor/sup_child.c):
 *   C0  claimer's hold CAS        release -> K0; acquire as C2
 *   C1  claimer's own store       release -> own loads in shm_tag_is_dead(), shm_proc_reap()
 *   C2  claimer's state load      acquire <- R0, K1, X0, X1 (history, repairs)
 *   S0  STARTING, S1 later states release -> K0, D1, other acquire loads of state
 *   R0  EXITED on release         release -> C2
 *   K0  reaper's state load       acquire <- C0, H0, S0, S1, K1
 *   K1  a dead holder's hold moved on (acq_rel) -> C2, K0, D1
 *   H0  reaper's hold CAS (acq_rel) <- S0/S1/K1 of whoever stored s; -> K0 of other reapers
 *   H1  reaper's own re-check     ordered by H0
 *   H2  DEAD                      release -> D1, shm_tag_is_dead()
 * Agent slots (AC0, S2, F0) have their own labels below; the exit log and telemetry are
 * seqlocks (SQ0-SQ3 in shm/seqlock.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm/seqlock.h"
#include "shm/shm.h"

/*
 * The bodies the seq words of exit records and telemetry blocks guard: everything after seq
 * (their first word), copied as whole 8-byte words by shm/seqlock.h.
 */
#define EXIT_BODY(r)	 ((char *)(r) + sizeof(uint64_t))
#define EXIT_BODY_BYTES	 (sizeof(struct shm_exit_rec) - sizeof(uint64_t))
#define TELEM_BODY(t)	 ((char *)(t) + sizeof(uint64_t))
#define TELEM_BODY_BYTES (sizeof(struct shm_telem) - sizeof(uint64_t))
static_assert(offsetof(struct shm_exit_rec, time_ns) == 8 && EXIT_BODY_BYTES % 8 == 0,
	      "exit record body: whole words after seq");
static_assert(offsetof(struct shm_telem, flushed_ns) == 8 && TELEM_BODY_BYTES % 8 == 0,
	      "telemetry body: whole words after seq");

void (*shm_proc_test_hook)(int step);

#define STEP(n)                                                                                    \
	do {                                                                                       \
		if (__builtin_expect(shm_proc_test_hook != NULL, 0))                               \
			shm_proc_test_hook(n);                                                     \
	} while (0)

static uint32_t nprocs(const struct shm_seg *seg)
{
	return shm_hdr(seg)->cfg.max_procs;
}

static uint32_t new_epoch(struct shm_seg *seg)
{
	uint32_t e;

	/* relaxed: the epoch only has to be unique; C1 publishes it */
	do
		e = atomic_fetch_add_explicit(&shm_hdr(seg)->next_epoch, 1, memory_order_relaxed);
	while (e == 0);
	return e;
}

/* Fill a freshly claimed slot's owner fields; C0 made the slot ours, S0 publishes them. */
static void proc_init(struct shm_proc *p, enum shm_role role, uint64_t start_time)
{
	/*
	 * relaxed: S0 publishes them; atomic because a reaper or tool that judged the slot's
	 * previous owner may still read them (shm/layout.h)
	 */
	atomic_store_explicit(&p->role, role, memory_order_relaxed);
	atomic_store_explicit(&p->start_time, start_time, memory_order_relaxed);
	/* relaxed: S0 publishes them; the supervisor sets them later (sup_worker.c, a_ready()) */
	atomic_store_explicit(&p->core, -1, memory_order_relaxed);
	atomic_store_explicit(&p->node, -1, memory_order_relaxed);
	atomic_store_explicit(&p->mbox_intent, 0, memory_order_relaxed);
	for (unsigned i = 0; i < 8; i++)
		atomic_store_explicit(&p->reg_intent[i], 0, memory_order_relaxed);
	atomic_store_explicit(&p->heartbeat_ns, shm_now_ns(), memory_order_relaxed);
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
	atomic_store_explicit(&p->running_ns, 0, memory_order_relaxed);
	STEP(SHM_PROC_STEP_FILLED);
	/*
	 * S0: release: pairs with K0 in shm_proc_reap() and the other acquire loads of state:
	 * own, start_time and the fields above before the slot reads as claimed.
	 */
	atomic_store_explicit(&p->state, SHM_PROC_STARTING, memory_order_release);
}

/*
 * A slot is claimable when FREE, or EXITED (history kept for tools; a worker slot is
 * re-claimed by its replacement). A DEAD slot is not: its claims still need repair.
 */
static bool is_claimable(uint32_t st)
{
	return st == SHM_PROC_FREE || st == SHM_PROC_EXITED;
}

/* A slot whose owner has published itself (S0) and not yet left. */
static bool is_published(uint32_t st)
{
	return st == SHM_PROC_STARTING || st == SHM_PROC_RUNNING || st == SHM_PROC_STOPPING;
}

static int claim_at(struct shm_seg *seg, uint32_t i, enum shm_role role, pid_t pid, uint64_t start,
		    uint32_t *epoch_out)
{
	struct shm_proc *p = shm_proc_at(seg, i);
	/* C2: pairs with R0, K1 and the supervisor's X0/X1: the history before FREE/EXITED. */
	uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
	uint32_t epoch;

	if (!is_claimable(st))
		return -EBUSY;
	/*
	 * C0: the one exclusive step, and it names us: of two claimers that both saw the slot
	 * FREE/EXITED exactly one moves it on, to a hold word carrying its pid, so from this
	 * instruction on a reaper can tell whether the claimer lives. acq_rel: acquire as C2;
	 * release pairs with K0 in shm_proc_reap().
	 */
	if (!atomic_compare_exchange_strong_explicit(&p->state, &st, SHM_PROC_HOLD(0, pid),
						     memory_order_acq_rel, memory_order_relaxed))
		return -EBUSY;
	STEP(SHM_PROC_STEP_HELD);
	/* an EXITED slot keeps its old own word until here; FREE has 0 */
	epoch = new_epoch(seg);
	/*
	 * C1: release: pairs with the acquire loads of own in shm_tag_is_dead() and
	 * shm_proc_reap(): whoever reads the new epoch reads the slot held (C0), not the
	 * FREE/EXITED it was.
	 */
	atomic_store_explicit(&p->own, ((uint64_t)(uint32_t)pid << 32) | epoch,
			      memory_order_release);
	STEP(SHM_PROC_STEP_OWN);
	proc_init(p, role, start);
	shm_change_bump(seg);
	STEP(SHM_PROC_STEP_PUBLISHED);
	*epoch_out = epoch;
	return 0;
}

int shm_proc_claim_slot(struct shm_seg *seg, uint32_t slot, enum shm_role role, pid_t pid,
			uint64_t start_time, uint32_t *epoch_out)
{
	if (!seg->writable)
		return -EROFS;
	if (slot >= nprocs(seg))
		return -EINVAL;
	return claim_at(seg, slot, role, pid, start_time, epoch_out);
}

int shm_proc_claim(struct shm_seg *seg, enum shm_role role, bool reap)
{
	pid_t pid = getpid();
	uint64_t start = shm_pid_start_time(pid);
	uint32_t epoch, nw = shm_hdr(seg)->cfg.nworkers;
	/*
	 * Slots 0..nworkers belong to the supervisor and its workers: a worker's slot reads
	 * EXITED between a death and the replacement's claim, and a client must not take it
	 * (nor reap it: the supervisor watches its workers itself).
	 */
	bool clientlike = role == SHM_ROLE_CLIENT || role == SHM_ROLE_GATEWAY;
	uint32_t first = clientlike && nw && nw < nprocs(seg) ? nw + 1 : 0;

	if (!seg->writable)
		return -EROFS;
	for (int pass = 0; pass < (reap ? 2 : 1); pass++) {
		for (uint32_t i = first; i < nprocs(seg); i++) {
			if (claim_at(seg, i, role, pid, start, &epoch) == 0) {
				seg->self = i;
				seg->epoch = epoch;
				seg->tag = SHM_TAG(i, epoch);
				return 0;
			}
		}
		if (!reap)
			break;
		/*
		 * Table full: clients that died without a supervisor to notice leave their slots
		 * behind. A claimer that died before publishing leaves nothing to repair and its
		 * slot is free at once; a dead owner's slot is marked DEAD for the supervisor's
		 * repair (nothing here frees a slot whose claims may still need repair).
		 */
		for (uint32_t i = first; i < nprocs(seg); i++)
			shm_proc_reap(seg, i);
	}
	return -ENOSPC;
}

/*
 * Is the process named in hold word st gone? By its pid alone (see the top comment); a
 * zombie counts as gone: it runs no more code.
 */
static bool is_holder_gone(uint32_t st)
{
	return !shm_pid_is_running((pid_t)SHM_PROC_HOLD_PID(st), 0);
}

/*
 * The start time published with the owner the caller's acquire load of state read (S0).
 * relaxed: that load orders it; a claim of the slot since may store another (the caller's
 * later checks of own and state tell).
 */
static uint64_t owner_start(const struct shm_proc *p)
{
	return atomic_load_explicit(&p->start_time, memory_order_relaxed);
}

/* Is the published owner `own` of p gone? start_time is the one S0 published with own. */
static bool is_owner_gone(const struct shm_proc *p, uint64_t own)
{
	return !shm_pid_is_alive((pid_t)(own >> 32), owner_start(p));
}

/* A hold whose holder is gone: free it (a claimer's), or finish or undo a reaper's. */
static int reap_hold(struct shm_seg *seg, struct shm_proc *p, uint32_t st)
{
	uint32_t to;

	if (!is_holder_gone(st))
		return 0;
	if (!SHM_PROC_HOLD_PREV(st)) {
		to = SHM_PROC_EXITED; /* a claimer died before S0: it published nothing */
	} else {
		/*
		 * A reaper died holding. relaxed: K0 read its hold, an RMW in the release
		 * sequence of the S0/S1 that published the owner now in own (the word cannot
		 * move while held).
		 */
		uint64_t own = atomic_load_explicit(&p->own, memory_order_relaxed);

		to = is_owner_gone(p, own) ? SHM_PROC_DEAD : SHM_PROC_HOLD_PREV(st);
	}
	/*
	 * K1: only the hold judged moves. acq_rel: release pairs with C2 (a freed slot's
	 * history) and with K0 of other reapers (a state given back still publishes its owner).
	 */
	if (!atomic_compare_exchange_strong_explicit(&p->state, &st, to, memory_order_acq_rel,
						     memory_order_relaxed))
		return 0;
	shm_change_bump(seg);
	return to == SHM_PROC_DEAD || to == SHM_PROC_EXITED;
}

int shm_proc_reap(struct shm_seg *seg, uint32_t slot)
{
	struct shm_proc *p;
	uint32_t st, hold;
	uint64_t own;

	if (!seg->writable)
		return -EROFS;
	if (slot >= nprocs(seg))
		return -EINVAL;
	p = shm_proc_at(seg, slot);
	/*
	 * Read own before state: H1 compares the own word against this value, so an owner
	 * judged with a start time that is not its own (a new claim ran between the loads)
	 * fails that check instead of being marked. acquire: pairs with C1.
	 */
	own = atomic_load_explicit(&p->own, memory_order_acquire);
	/* K0: pairs with C0/H0 (a hold and its pid) and S0/S1 (own and start_time before st) */
	st = atomic_load_explicit(&p->state, memory_order_acquire);
	if (st & SHM_PROC_HELD)
		return reap_hold(seg, p, st);
	if (!is_published(st) || !is_owner_gone(p, own))
		return 0;
	hold = SHM_PROC_HOLD(st, getpid());
	STEP(SHM_PROC_STEP_REAP_JUDGED);
	/*
	 * H0: take the state word, only while it still reads st. acq_rel: acquire pairs with
	 * the S0/S1 (or a K1/H1 give-back) that stored st, so H1 reads the own word of whoever
	 * that was; release pairs with K0 of other reapers.
	 */
	if (!atomic_compare_exchange_strong_explicit(&p->state, &st, hold, memory_order_acq_rel,
						     memory_order_relaxed))
		return 0;
	STEP(SHM_PROC_STEP_REAP_HELD);
	/* H1: relaxed: ordered by H0. Another own: a new owner published st again since. */
	if (atomic_load_explicit(&p->own, memory_order_relaxed) != own) {
		/* give its state back (release, as K1); a state it stored itself stands */
		atomic_compare_exchange_strong_explicit(&p->state, &hold, st, memory_order_release,
							memory_order_relaxed);
		return 0;
	}
	/*
	 * H2: release: pairs with the acquire loads of state in the supervisor's client scan
	 * and shm_tag_is_dead(): the slot reads DEAD once its owner is known gone, and only
	 * then. A CAS: the supervisor's own repair (D0) may have marked it meanwhile.
	 */
	if (!atomic_compare_exchange_strong_explicit(&p->state, &hold, SHM_PROC_DEAD,
						     memory_order_release, memory_order_relaxed))
		return 0;
	shm_change_bump(seg);
	return 1;
}

void shm_proc_set_state(struct shm_seg *seg, enum shm_proc_state st)
{
	struct shm_proc *p = shm_proc_at(seg, seg->self);

	if (st == SHM_PROC_RUNNING)
		/* relaxed: published by S1 below */
		atomic_store_explicit(&p->running_ns, shm_now_ns(), memory_order_relaxed);
	/* S1: release: whatever the owner wrote before is visible with the new state. */
	atomic_store_explicit(&p->state, st, memory_order_release);
	shm_change_bump(seg);
}

void shm_proc_release(struct shm_seg *seg)
{
	struct shm_proc *p;

	if (seg->self == UINT32_MAX)
		return;
	p = shm_proc_at(seg, seg->self);
	/* relaxed: the owner's history for tools; R0 below publishes it with EXITED */
	atomic_store_explicit(&p->last_pid, (uint32_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&p->last_epoch, seg->epoch, memory_order_relaxed);
	atomic_store_explicit(&p->last_code, 0, memory_order_relaxed);
	atomic_store_explicit(&p->last_signal, 0, memory_order_relaxed);
	atomic_store_explicit(&p->last_reason, SHM_EXIT_NORMAL, memory_order_relaxed);
	atomic_store_explicit(&p->last_exit_ns, shm_wall_ns(), memory_order_relaxed);
	/*
	 * A client's orderly detach is no exit worth one of the log's SHM_EXIT_LOG records:
	 * every tool command makes one, and ten commands would push the workers' and agents'
	 * crashes out. Its slot keeps it as its last exit; a client that dies without this
	 * release is still logged, as vanished (sup_repair_vanished()). Relaxed: our own role,
	 * written at our claim.
	 */
	if (atomic_load_explicit(&p->role, memory_order_relaxed) != SHM_ROLE_CLIENT)
		shm_exit_record(seg, seg->self);
	/* R0: release: history fields before the slot reads as exited. */
	atomic_store_explicit(&p->state, SHM_PROC_EXITED, memory_order_release);
	shm_change_bump(seg);
	seg->self = UINT32_MAX;
}

void shm_proc_heartbeat(struct shm_seg *seg)
{
	/* relaxed: single writer (the owner); readers only compare ages */
	atomic_store_explicit(&shm_proc_at(seg, seg->self)->heartbeat_ns, shm_now_ns(),
			      memory_order_relaxed);
}

bool shm_proc_is_alive(const struct shm_seg *seg, uint32_t slot)
{
	const struct shm_proc *p;
	uint64_t own;
	uint32_t st;

	if (slot >= nprocs(seg))
		return false;
	p = shm_proc_at(seg, slot);
	/* acquire: pairs with C1, as in shm_proc_reap() */
	own = atomic_load_explicit(&p->own, memory_order_acquire);
	/* K0 as in shm_proc_reap(): a claim in progress is judged by its holder */
	st = atomic_load_explicit(&p->state, memory_order_acquire);
	if (st & SHM_PROC_HELD)
		return !is_holder_gone(st);
	if (!own)
		return false;
	return shm_pid_is_alive((pid_t)(own >> 32), owner_start(p));
}

bool shm_tag_is_dead(const struct shm_seg *seg, uint64_t tag, bool probe)
{
	uint32_t slot = SHM_TAG_SLOT(tag);
	const struct shm_proc *p;
	uint64_t own;
	uint32_t st;

	if (slot >= nprocs(seg))
		return true; /* no such slot: nobody can own it */
	p = shm_proc_at(seg, slot);
	/* acquire: pairs with C1: a new epoch comes with the slot held, not FREE/EXITED */
	own = atomic_load_explicit(&p->own, memory_order_acquire);
	if ((uint32_t)own != SHM_TAG_EPOCH(tag))
		return true; /* the slot has moved on to another epoch */
	st = atomic_load_explicit(&p->state, memory_order_acquire);
	if (st == SHM_PROC_DEAD || st == SHM_PROC_EXITED || st == SHM_PROC_FREE)
		return true;
	return probe && !shm_pid_is_alive((pid_t)(own >> 32), owner_start(p));
}

int shm_agent_alloc(struct shm_seg *seg, uint32_t node_hint, uint32_t *slot_out)
{
	return shm_agent_alloc_named(seg, node_hint, NULL, NULL, 0, slot_out);
}

int shm_agent_alloc_named(struct shm_seg *seg, uint32_t node_hint, const char *type,
			  const char *name, size_t nlen, uint32_t *slot_out)
{
	const struct shm_cfg *cfg = &shm_hdr(seg)->cfg;
	uint32_t first, count;

	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	if (node_hint >= cfg->nnodes)
		node_hint = 0;
	/* the hinted node's arena first, then the others */
	for (uint32_t k = 0; k < cfg->nnodes; k++) {
		uint32_t node = (node_hint + k) % cfg->nnodes;

		shm_mbox_node_range(cfg, node, &first, &count);
		for (uint32_t i = first; i < first + count; i++) {
			struct shm_agent *a = shm_agent_at(seg, i);
			uint64_t zero = 0;

			if (atomic_load_explicit(&a->ctl, memory_order_relaxed) ||
			    atomic_load_explicit(&a->state, memory_order_relaxed) != SHM_AGENT_FREE)
				continue;
			/* AC0: claim; pairs with acquire loads of ctl by repair (A1 in
			 * workers/agent.c) and control (A1 in supervisor/control.c). */
			if (!atomic_compare_exchange_strong_explicit(&a->ctl, &zero, seg->tag,
								     memory_order_acq_rel,
								     memory_order_relaxed))
				continue;
			if (atomic_load_explicit(&a->state, memory_order_acquire) !=
			    SHM_AGENT_FREE) {
				/* lost a race with a free in progress: give it back */
				atomic_store_explicit(&a->ctl, 0, memory_order_release);
				continue;
			}
			/* relaxed: the slot is ours; the state store below publishes */
			atomic_fetch_add_explicit(&a->gen, 1, memory_order_relaxed);
			if (atomic_load_explicit(&a->gen, memory_order_relaxed) == 0)
				atomic_store_explicit(&a->gen, 1, memory_order_relaxed);
			a->node = node;
			atomic_store_explicit(&a->restarts, 0, memory_order_relaxed);
			atomic_store_explicit(&a->handled, 0, memory_order_relaxed);
			atomic_store_explicit(&a->redelivered, 0, memory_order_relaxed);
			atomic_store_explicit(&a->ckpt_len, 0, memory_order_relaxed);
			atomic_store_explicit(&a->ckpt_seq, 0, memory_order_relaxed);
			atomic_store_explicit(&a->worker, 0, memory_order_relaxed);
			a->flags = 0;
			memset(a->type, 0, sizeof(a->type));
			memset(a->name, 0, sizeof(a->name));
			/* type, name, node and flags are written here only: S2 publishes them */
			if (type)
				strncpy(a->type, type, sizeof(a->type) - 1);
			if (nlen)
				memcpy(a->name, name,
				       nlen < sizeof(a->name) ? nlen : sizeof(a->name) - 1);
			/*
			 * S2: release: pairs with the acquire loads of state (A0 in check_to(),
			 * ipc/msg.c, and in workers/agent.c): gen and the fields above before
			 * STARTING, so whoever reads STARTING reads the new gen and turns an
			 * older handle away (-ESTALE). The mailbox is initialised after this
			 * (wrk_agent_spawn(), ipc_inbox_open()), and no writer reaches it in
			 * between: the new handle is handed out only after the init (registry,
			 * return value, the inbox's RUNNING), older handles fail that gen check
			 * (direct sends, broadcasts over a stale group list), and the repair of
			 * a producer that died in the previous incarnation's ring writes only
			 * words the init then resets (tests/test_mbox.c, test_mbox_slot_window).
			 * A sender that passed its check before the slot was freed is not stopped
			 * by any order here: the mailbox turns it away at its claim, whose
			 * generation check pairs with the init (G0/I1), and the init waits out a
			 * claim it made in the previous ring ("Re-initialisation" in ipc/mbox.c).
			 */
			atomic_store_explicit(&a->state, SHM_AGENT_STARTING, memory_order_release);
			shm_change_bump(seg);
			*slot_out = i;
			return 0;
		}
	}
	return -ENOSPC;
}

void shm_agent_free(struct shm_seg *seg, uint32_t slot)
{
	struct shm_agent *a = shm_agent_at(seg, slot);

	atomic_store_explicit(&a->worker, 0, memory_order_relaxed);
	/* F0: state FREE before the claim word clears, so an allocator that wins ctl sees it. */
	atomic_store_explicit(&a->state, SHM_AGENT_FREE, memory_order_release);
	atomic_store_explicit(&a->ctl, 0, memory_order_release);
	shm_change_bump(seg);
}

/*
 * Fill record r (its seq already odd: being written) from slot's last_* fields, then
 * seq := done. The body is written whole, one relaxed word at a time (shm/seqlock.h).
 */
static void exit_fill(struct shm_exit_rec *r, const struct shm_proc *p, uint32_t slot,
		      uint64_t done)
{
	/* relaxed: written by whoever records the exit, before this; the record's seq orders the
	 * copy */
	struct shm_exit_rec c = {
		.time_ns = atomic_load_explicit(&p->last_exit_ns, memory_order_relaxed),
		.slot = slot,
		.pid = atomic_load_explicit(&p->last_pid, memory_order_relaxed),
		.epoch = atomic_load_explicit(&p->last_epoch, memory_order_relaxed),
		.code = atomic_load_explicit(&p->last_code, memory_order_relaxed),
		.signal = atomic_load_explicit(&p->last_signal, memory_order_relaxed),
		.reason = atomic_load_explicit(&p->last_reason, memory_order_relaxed),
		/* relaxed: the exited owner's, stored before its S0 */
		.role = atomic_load_explicit(&p->role, memory_order_relaxed),
		/* relaxed: a counter the supervisor keeps */
		.restarts = atomic_load_explicit(&p->restarts, memory_order_relaxed),
	};

	shm_seq_store_body(EXIT_BODY(r), EXIT_BODY(&c), EXIT_BODY_BYTES);
	shm_seq_write_end(&r->seq, done);
}

void shm_exit_record(struct shm_seg *seg, uint32_t slot)
{
	struct shm_hdr *h = shm_hdr(seg);
	struct shm_exit_rec *r;
	uint64_t n;

	if (h->layout_minor < 5 || slot >= h->cfg.max_procs)
		return;
	/* relaxed: the count only hands out record numbers; seq orders each record */
	n = atomic_fetch_add_explicit(&h->exit_next, 1, memory_order_relaxed);
	r = &h->exit_log[n % SHM_EXIT_LOG];
	shm_seq_write_mark(&r->seq, 2 * n + 1);
	exit_fill(r, shm_proc_at(seg, slot), slot, 2 * n + 2);
}

void shm_exit_update(struct shm_seg *seg, uint32_t slot)
{
	struct shm_hdr *h = shm_hdr(seg);
	const struct shm_proc *p;
	uint64_t next;

	if (h->layout_minor < 5 || slot >= h->cfg.max_procs)
		return;
	p = shm_proc_at(seg, slot);
	/* relaxed: only bounds the scan; each record's seq (a seqlock) orders its fields */
	next = atomic_load_explicit(&h->exit_next, memory_order_relaxed);
	for (uint64_t n = next; n > 0 && next - n < SHM_EXIT_LOG; n--) {
		struct shm_exit_rec *r = &h->exit_log[(n - 1) % SHM_EXIT_LOG];
		uint64_t done = 2 * (n - 1) + 2;

		struct shm_exit_rec c;

		/* a complete record of this exit (a copy, as shm_exit_log_read() takes) */
		if (shm_seq_read_begin(&r->seq) != done)
			continue;
		shm_seq_load_body(EXIT_BODY(&c), EXIT_BODY(r), EXIT_BODY_BYTES);
		/* relaxed: the caller (the supervisor) wrote last_pid/last_epoch itself */
		if (shm_seq_read_end(&r->seq) != done || c.slot != slot ||
		    c.pid != atomic_load_explicit(&p->last_pid, memory_order_relaxed) ||
		    c.epoch != atomic_load_explicit(&p->last_epoch, memory_order_relaxed))
			continue;
		/* take it back for writing; a wrap that reuses it meanwhile wins */
		if (!atomic_compare_exchange_strong_explicit(
			    &r->seq, &done, done - 1, memory_order_relaxed, memory_order_relaxed))
			break;
		/* SQ0 of shm/seqlock.h for the odd value the CAS stored */
		atomic_thread_fence(memory_order_release);
		exit_fill(r, p, slot, done);
		return;
	}
	shm_exit_record(seg, slot);
}

uint32_t shm_exit_log_read(const struct shm_seg *seg, struct shm_exit_rec *out, uint32_t max,
			   uint64_t *total)
{
	const struct shm_hdr *h = shm_hdr(seg);
	uint64_t next;
	uint32_t got = 0;

	if (total)
		*total = 0;
	if (h->layout_minor < 5)
		return 0;
	/* relaxed: only bounds the scan; each record's seq (a seqlock) orders its fields */
	next = atomic_load_explicit(&h->exit_next, memory_order_relaxed);
	if (total)
		*total = next;
	for (uint64_t n = next; n > 0 && next - n < SHM_EXIT_LOG && got < max; n--) {
		const struct shm_exit_rec *r = &h->exit_log[(n - 1) % SHM_EXIT_LOG];
		uint64_t s0 = shm_seq_read_begin(&r->seq);
		struct shm_exit_rec c;

		if (s0 != 2 * (n - 1) + 2)
			continue; /* still being written, or already overwritten */
		shm_seq_load_body(EXIT_BODY(&c), EXIT_BODY(r), EXIT_BODY_BYTES);
		if (shm_seq_read_end(&r->seq) != s0)
			continue;
		atomic_store_explicit(&c.seq, s0, memory_order_relaxed);
		out[got++] = c;
	}
	return got;
}

static struct shm_telem *telem_at(const struct shm_seg *seg, uint32_t slot)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_region *r = &h->regions[SHM_R_TELEMETRY];

	if (h->layout_minor < 6 || slot >= h->cfg.max_procs ||
	    r->size < (uint64_t)(slot + 1) * sizeof(struct shm_telem))
		return NULL;
	return (struct shm_telem *)(seg->base + r->off) + slot;
}

void shm_telem_flush(struct shm_seg *seg, uint32_t slot, const struct shm_telem *t)
{
	struct shm_telem *d = telem_at(seg, slot);
	uint64_t s;

	if (!d)
		return;
	/* the owner is the only writer (an owner killed mid-flush leaves seq odd: readers skip
	 * the block until the next flush) */
	s = shm_seq_write_begin(&d->seq);
	shm_seq_store_body(TELEM_BODY(d), TELEM_BODY(t), TELEM_BODY_BYTES);
	shm_seq_write_end(&d->seq, s + 1);
}

int shm_telem_read(const struct shm_seg *seg, uint32_t slot, struct shm_telem *out)
{
	const struct shm_telem *d = telem_at(seg, slot);
	uint64_t s0;

	if (!d)
		return -ENOENT;
	s0 = shm_seq_read_begin(&d->seq);
	if (s0 & 1)
		return -EAGAIN;
	shm_seq_load_body(TELEM_BODY(out), TELEM_BODY(d), TELEM_BODY_BYTES);
	if (shm_seq_read_retry(&d->seq, s0))
		return -EAGAIN;
	atomic_store_explicit(&out->seq, s0, memory_order_relaxed);
	return 0;
}
