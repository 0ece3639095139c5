/* The process table and the agent table's slot claims. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm/shm.h"

static uint32_t nprocs(const struct shm_seg *seg)
{
	return shm_hdr(seg)->cfg.max_procs;
}

static uint32_t new_epoch(struct shm_seg *seg)
{
	uint32_t e;

	/* relaxed: the epoch only has to be unique; the own-word CAS publishes it */
	do
		e = atomic_fetch_add_explicit(&shm_hdr(seg)->next_epoch, 1, memory_order_relaxed);
	while (e == 0);
	return e;
}

/* Fill a freshly claimed slot's owner fields; the CAS on own made them ours. */
static void proc_init(struct shm_proc *p, enum shm_role role, uint64_t start_time)
{
	p->role = role;
	p->start_time = start_time;
	p->core = -1;
	p->node = -1;
	atomic_store_explicit(&p->mbox_intent, 0, memory_order_relaxed);
	for (unsigned i = 0; i < 8; i++)
		atomic_store_explicit(&p->reg_intent[i], 0, memory_order_relaxed);
	atomic_store_explicit(&p->heartbeat_ns, shm_now_ns(), memory_order_relaxed);
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
	atomic_store_explicit(&p->running_ns, 0, memory_order_relaxed);
	/* S0: pairs with the acquire loads of state in readers: fields above first. */
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

static int claim_at(struct shm_seg *seg, uint32_t i, enum shm_role role, pid_t pid, uint64_t start,
		    uint32_t *epoch_out)
{
	struct shm_proc *p = shm_proc_at(seg, i);
	/* S3: pairs with S1/R0 (state release stores): the slot's history before FREE/EXITED. */
	uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
	uint32_t epoch;

	if (!is_claimable(st))
		return -EBUSY;
	/*
	 * C0: the state CAS is the exclusive step: of two claimers that both saw the slot
	 * FREE/EXITED exactly one moves it on. (Claiming by a CAS on own first let a second
	 * claimer read the new own with the old state and take the slot too.) Pairs with the
	 * acquire loads of state in shm_tag_is_dead().
	 */
	if (!atomic_compare_exchange_strong_explicit(&p->state, &st, SHM_PROC_STARTING,
						     memory_order_acq_rel, memory_order_acquire))
		return -EBUSY;
	/* an EXITED slot keeps its old own word until here; FREE has 0 */
	epoch = new_epoch(seg);
	/* C1: release: pairs with acquire loads of own in shm_tag_is_dead(). */
	atomic_store_explicit(&p->own, ((uint64_t)(uint32_t)pid << 32) | epoch,
			      memory_order_release);
	proc_init(p, role, start);
	shm_change_bump(seg);
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
	 * EXITED between a death and the replacement's claim, and a client must not take it.
	 */
	uint32_t first = role == SHM_ROLE_CLIENT && nw && nw < nprocs(seg) ? nw + 1 : 0;

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
		 * Table full: clients that died without a supervisor to notice leave RUNNING
		 * slots behind. Mark them DEAD so the supervisor repairs them; nothing here
		 * frees a slot whose claims may still need repair.
		 */
		for (uint32_t i = 0; i < nprocs(seg); i++) {
			struct shm_proc *p = shm_proc_at(seg, i);
			/* S3 (again); the CAS below is acq_rel so a racing claim (C0) and this mark
			 * order. */
			uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);

			if ((st == SHM_PROC_RUNNING || st == SHM_PROC_STARTING) &&
			    !shm_proc_is_alive(seg, i) &&
			    atomic_compare_exchange_strong_explicit(&p->state, &st, SHM_PROC_DEAD,
								    memory_order_acq_rel,
								    memory_order_relaxed))
				shm_change_bump(seg);
		}
	}
	return -ENOSPC;
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
	p->last_pid = (uint32_t)getpid();
	p->last_epoch = seg->epoch;
	p->last_code = 0;
	p->last_signal = 0;
	p->last_reason = SHM_EXIT_NORMAL;
	p->last_exit_ns = shm_wall_ns();
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

	if (slot >= nprocs(seg))
		return false;
	p = shm_proc_at(seg, slot);
	/* C1 partner: the owner's own word, released after its state CAS. */
	own = atomic_load_explicit(&p->own, memory_order_acquire);
	if (!own)
		return false;
	return shm_pid_is_alive((pid_t)(own >> 32), p->start_time);
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
	own = atomic_load_explicit(&p->own, memory_order_acquire);
	if ((uint32_t)own != SHM_TAG_EPOCH(tag))
		return true; /* the slot has moved on to another epoch */
	st = atomic_load_explicit(&p->state, memory_order_acquire);
	if (st == SHM_PROC_DEAD || st == SHM_PROC_EXITED || st == SHM_PROC_FREE)
		return true;
	return probe && !shm_pid_is_alive((pid_t)(own >> 32), p->start_time);
}

int shm_agent_alloc(struct shm_seg *seg, uint32_t node_hint, uint32_t *slot_out)
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
			/* C1: claim; pairs with acquire loads of ctl by repair and tools. */
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
			memset(a->type, 0, sizeof(a->type));
			memset(a->name, 0, sizeof(a->name));
			/* S2: pairs with acquire loads of state: fields above first. */
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

/* Fill record r (its seq odd: being written) from slot's last_* fields, then seq := even. */
static void exit_fill(struct shm_exit_rec *r, const struct shm_proc *p, uint32_t slot,
		      uint64_t done)
{
	/* E0: the odd seq before the fields (pairs with E2 in shm_exit_log_read()) */
	atomic_thread_fence(memory_order_release);
	r->time_ns = p->last_exit_ns;
	r->slot = slot;
	r->pid = p->last_pid;
	r->epoch = p->last_epoch;
	r->code = p->last_code;
	r->signal = p->last_signal;
	r->reason = p->last_reason;
	r->role = p->role;
	/* relaxed: a counter the supervisor keeps */
	r->restarts = atomic_load_explicit(&p->restarts, memory_order_relaxed);
	/* E1: the fields before the even seq (pairs with E3 in shm_exit_log_read()) */
	atomic_store_explicit(&r->seq, done, memory_order_release);
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
	/* relaxed: E0 in exit_fill() orders it before the fields */
	atomic_store_explicit(&r->seq, 2 * n + 1, memory_order_relaxed);
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
	/* relaxed: only bounds the scan; each record's seq (E1/E3) orders its fields */
	next = atomic_load_explicit(&h->exit_next, memory_order_relaxed);
	for (uint64_t n = next; n > 0 && next - n < SHM_EXIT_LOG; n--) {
		struct shm_exit_rec *r = &h->exit_log[(n - 1) % SHM_EXIT_LOG];
		uint64_t done = 2 * (n - 1) + 2;

		/* E3 as in shm_exit_log_read(): a complete record */
		if (atomic_load_explicit(&r->seq, memory_order_acquire) != done ||
		    r->slot != slot || r->pid != p->last_pid || r->epoch != p->last_epoch)
			continue;
		/* take it back for writing; a wrap that reuses it meanwhile wins */
		if (!atomic_compare_exchange_strong_explicit(
			    &r->seq, &done, done - 1, memory_order_relaxed, memory_order_relaxed))
			break;
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
	/* relaxed: only bounds the scan; each record's seq (E1/E3) orders its fields */
	next = atomic_load_explicit(&h->exit_next, memory_order_relaxed);
	if (total)
		*total = next;
	for (uint64_t n = next; n > 0 && next - n < SHM_EXIT_LOG && got < max; n--) {
		const struct shm_exit_rec *r = &h->exit_log[(n - 1) % SHM_EXIT_LOG];
		/* E3: pairs with E1: a complete record's fields are visible */
		uint64_t s0 = atomic_load_explicit(&r->seq, memory_order_acquire);
		struct shm_exit_rec c;

		if (s0 != 2 * (n - 1) + 2)
			continue; /* still being written, or already overwritten */
		memcpy(&c, (const void *)r, sizeof(c));
		/* E2: pairs with E0: a rewrite that began during the copy shows in seq */
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&r->seq, memory_order_relaxed) != s0)
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
	/* relaxed: the owner is the only writer; T0 orders the odd seq before the fields (an
	 * owner killed mid-flush leaves it odd: readers skip the block until the next flush) */
	s = atomic_load_explicit(&d->seq, memory_order_relaxed);
	atomic_store_explicit(&d->seq, s | 1, memory_order_relaxed);
	/* T0: the odd seq before the fields (pairs with T2 in shm_telem_read()) */
	atomic_thread_fence(memory_order_release);
	memcpy((uint8_t *)d + sizeof(d->seq), (const uint8_t *)t + sizeof(t->seq),
	       sizeof(*d) - sizeof(d->seq));
	/* T1: the fields before the even seq (pairs with T3) */
	atomic_store_explicit(&d->seq, (s | 1) + 1, memory_order_release);
}

int shm_telem_read(const struct shm_seg *seg, uint32_t slot, struct shm_telem *out)
{
	const struct shm_telem *d = telem_at(seg, slot);
	uint64_t s0;

	if (!d)
		return -ENOENT;
	/* T3: pairs with T1: a complete flush's fields are visible */
	s0 = atomic_load_explicit(&d->seq, memory_order_acquire);
	if (s0 & 1)
		return -EAGAIN;
	memcpy(out, (const void *)d, sizeof(*out));
	/* T2: pairs with T0: a flush that began during the copy shows in seq */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&d->seq, memory_order_relaxed) != s0)
		return -EAGAIN;
	atomic_store_explicit(&out->seq, s0, memory_order_relaxed);
	return 0;
}
