/*
 * Monitors: entries in SHM_R_MONITORS (struct shm_monitor). A live entry has ctl 0 and a
 * non-zero watcher; a free one has both 0. Setting up or tearing down an entry claims ctl
 * with the caller's tag, so a writer killed midway leaves a claim that wrk_mon_repair()
 * (the supervisor) resolves: a half-set-up entry (watcher still 0) is freed, any other is
 * kept as it was.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "shm/cpu.h"
#include "workers/wrk_int.h"

static uint32_t nmon(const struct shm_seg *seg)
{
	return shm_hdr(seg)->cfg.max_monitors;
}

static struct shm_monitor *mon_at(const struct shm_seg *seg, uint32_t i)
{
	return (struct shm_monitor *)shm_region(seg, SHM_R_MONITORS) + i;
}

static bool mon_claim(struct shm_seg *seg, struct shm_monitor *m)
{
	uint64_t zero = 0;

	/* M0: the claim; pairs with M2 (release of ctl) by the previous claimer. */
	return atomic_compare_exchange_strong_explicit(&m->ctl, &zero, seg->tag,
						       memory_order_acq_rel, memory_order_relaxed);
}

static void mon_unclaim(struct shm_monitor *m)
{
	/* M2: pairs with M0: our writes to the entry before the next claimer's. */
	atomic_store_explicit(&m->ctl, 0, memory_order_release);
}

/*
 * Claim live entry m (watcher w) to tear it down. Another process may hold the claim for
 * a moment, an adder that found the entry taken included: wait for it rather than skip
 * the entry (that lost removals), and take over a claim whose owner died. Returns false
 * if the entry stopped being w's meanwhile.
 */
static bool mon_claim_live(struct shm_seg *seg, struct shm_monitor *m, uint64_t w)
{
	for (uint32_t spins = 0;; spins++) {
		uint64_t cur = 0;

		/* M0 (again): the claim. */
		if (atomic_compare_exchange_strong_explicit(
			    &m->ctl, &cur, seg->tag, memory_order_acq_rel, memory_order_relaxed))
			return true;
		if (atomic_load_explicit(&m->watcher, memory_order_acquire) != w)
			return false;
		/* a claim lasts a few stores; only a long one is worth asking the kernel about */
		if (spins >= 1000 && spins % 1000 == 0 && shm_tag_is_dead(seg, cur, true) &&
		    atomic_compare_exchange_strong_explicit(
			    &m->ctl, &cur, seg->tag, memory_order_acq_rel, memory_order_relaxed))
			return true;
		if (spins >= 100)
			sched_yield();
		else
			shm_cpu_relax();
	}
}

static void mon_clear(struct shm_monitor *m)
{
	/* M3: pairs with M4 in readers: the entry reads as free before its fields go. */
	atomic_store_explicit(&m->watcher, 0, memory_order_release);
	atomic_store_explicit(&m->target, 0, memory_order_relaxed);
	atomic_store_explicit(&m->ref, 0, memory_order_relaxed);
}

static int mon_remove_if(struct shm_seg *seg, shoal_handle_t watcher, uint64_t ref,
			 shoal_handle_t target, bool first_only);

/* Whether target names an agent slot's incarnation that has not ended (any live state). */
static bool target_lives(const struct shm_seg *seg, shoal_handle_t target)
{
	uint32_t slot = shoal_handle_slot(target), st;
	const struct shm_agent *a;

	if (slot >= shm_hdr(seg)->cfg.max_agents)
		return false;
	a = shm_agent_at(seg, slot);
	/* acquire: pairs with the slot's publication (S2, shm/proc.c): gen as of the state */
	st = atomic_load_explicit(&a->state, memory_order_acquire);
	return st != SHM_AGENT_FREE && st != SHM_AGENT_STOPPED &&
	       atomic_load_explicit(&a->gen, memory_order_relaxed) == shoal_handle_gen(target);
}

/*
 * Add a monitor: watcher gets DOWN/UP about target. Returns 0 and *ref_out, -ENOSPC,
 * -EINVAL, -ESTALE (target has ended, or names no agent). Any process with a process slot.
 */
int wrk_mon_add(struct shm_seg *seg, shoal_handle_t watcher, shoal_handle_t target,
		uint64_t *ref_out)
{
	static _Atomic uint32_t counter;
	uint64_t ref;

	if (seg->self == UINT32_MAX)
		return -EROFS;
	if (watcher == SHOAL_HANDLE_NONE || target == SHOAL_HANDLE_NONE)
		return -EINVAL;
	/* relaxed: the counter only has to be unique within this process (epoch: across) */
	ref = ((uint64_t)seg->epoch << 32) |
	      (atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1);
	for (uint32_t i = 0; i < nmon(seg); i++) {
		struct shm_monitor *m = mon_at(seg, i);

		if (atomic_load_explicit(&m->watcher, memory_order_relaxed) ||
		    atomic_load_explicit(&m->ctl, memory_order_relaxed))
			continue;
		if (!mon_claim(seg, m))
			continue;
		if (atomic_load_explicit(&m->watcher, memory_order_relaxed)) {
			mon_unclaim(m);
			continue;
		}
		atomic_store_explicit(&m->target, target, memory_order_relaxed);
		atomic_store_explicit(&m->ref, ref, memory_order_relaxed);
		/* M1: pairs with M4: target and ref before the entry reads as live. */
		atomic_store_explicit(&m->watcher, watcher, memory_order_release);
		mon_unclaim(m);
		/*
		 * M5: a target that has ended would never notify this entry: its stop stores
		 * STOPPED, fences (ipc_refuse_queued()'s K1), then notifies its monitors. Look
		 * after a full fence: either its notify sees this entry or we see it over (then
		 * the entry goes and the caller hears -ESTALE, as the API says; a DOWN that the
		 * notify sent meanwhile may still come).
		 */
		atomic_thread_fence(memory_order_seq_cst);
		if (!target_lives(seg, target)) {
			mon_remove_if(seg, watcher, ref, 0, true);
			return -ESTALE;
		}
		*ref_out = ref;
		return 0;
	}
	return -ENOSPC;
}

static int mon_remove_if(struct shm_seg *seg, shoal_handle_t watcher, uint64_t ref,
			 shoal_handle_t target, bool first_only)
{
	int n = 0;

	for (uint32_t i = 0; i < nmon(seg); i++) {
		struct shm_monitor *m = mon_at(seg, i);
		/* M4: pairs with M1: a live watcher shows its target and ref. */
		uint64_t w = atomic_load_explicit(&m->watcher, memory_order_acquire);

		if (!w || (watcher && w != watcher) ||
		    (ref && atomic_load_explicit(&m->ref, memory_order_relaxed) != ref) ||
		    (target && atomic_load_explicit(&m->target, memory_order_relaxed) != target))
			continue;
		if (!mon_claim_live(seg, m, w))
			continue; /* someone else tore it down */
		if (atomic_load_explicit(&m->watcher, memory_order_relaxed) == w) {
			mon_clear(m);
			n++;
		}
		mon_unclaim(m);
		if (first_only && n)
			break;
	}
	return n;
}

/* Remove watcher's monitor ref. 0 or -ENOENT. Any process with a process slot. */
int wrk_mon_remove(struct shm_seg *seg, shoal_handle_t watcher, uint64_t ref)
{
	return mon_remove_if(seg, watcher, ref, 0, true) ? 0 : -ENOENT;
}

int wrk_mon_drop_watcher(struct shm_seg *seg, shoal_handle_t h)
{
	return mon_remove_if(seg, h, 0, 0, false);
}

int wrk_mon_drop_target(struct shm_seg *seg, shoal_handle_t h)
{
	return mon_remove_if(seg, 0, 0, h, false);
}

/* Send one DOWN/UP for entry m (live watcher w); drops the entry if w is gone. */
static int mon_send(struct shm_seg *seg, struct shm_monitor *m, uint64_t w, shoal_handle_t target,
		    uint32_t up, uint32_t reason)
{
	struct shoal_down d;
	int rc;

	memset(&d, 0, sizeof(d));
	d.target = target;
	d.ref = atomic_load_explicit(&m->ref, memory_order_relaxed);
	d.up = up;
	d.reason = up ? 0 : reason;
	/*
	 * The sender is a worker (one thread for all its agents) or the supervisor in the
	 * middle of a repair: neither may stall behind a watcher that does not read its
	 * mailbox. Wait briefly; a watcher whose mailbox stays full misses this one.
	 */
	rc = ipc_send(seg, w, target, up ? IPC_T_UP : IPC_T_DOWN, IPC_F_SYSTEM, d.ref, &d,
		      sizeof(d), WRK_NOTIFY_TIMEOUT_MS);
	if (rc == -ENOENT || rc == -ESTALE)
		mon_remove_if(seg, w, d.ref, 0, true);
	return rc == 0;
}

/*
 * Tell every watcher of target that it went down (up == 0) or came back (up == 1). A
 * watcher that no longer exists loses its entry. Returns messages sent.
 */
int wrk_mon_notify(struct shm_seg *seg, shoal_handle_t target, uint32_t up, uint32_t reason)
{
	int sent = 0;

	for (uint32_t i = 0; i < nmon(seg); i++) {
		struct shm_monitor *m = mon_at(seg, i);
		/* M4 (again): a live watcher shows its target and ref. */
		uint64_t w = atomic_load_explicit(&m->watcher, memory_order_acquire);

		if (w && atomic_load_explicit(&m->target, memory_order_relaxed) == target)
			sent += mon_send(seg, m, w, target, up, reason);
	}
	return sent;
}

/*
 * wrk_mon_notify() for many targets in one pass over the table: every agent slot i with
 * mark[i] set, under its current generation. Returns messages sent.
 */
int wrk_mon_notify_marked(struct shm_seg *seg, const uint8_t *mark, uint32_t up, uint32_t reason)
{
	uint32_t nagents = shm_hdr(seg)->cfg.max_agents;
	int sent = 0;

	for (uint32_t i = 0; i < nmon(seg); i++) {
		struct shm_monitor *m = mon_at(seg, i);
		/* M4 (again): a live watcher shows its target and ref. */
		uint64_t w = atomic_load_explicit(&m->watcher, memory_order_acquire);
		shoal_handle_t t;
		uint32_t slot;

		if (!w)
			continue;
		t = atomic_load_explicit(&m->target, memory_order_relaxed);
		slot = shoal_handle_slot(t);
		if (slot >= nagents || !mark[slot] ||
		    /* A0 (agent.c): the target's generation, published with its state. */
		    atomic_load_explicit(&shm_agent_at(seg, slot)->gen, memory_order_acquire) !=
			    shoal_handle_gen(t))
			continue;
		sent += mon_send(seg, m, w, t, up, reason);
	}
	return sent;
}

/* Resolve monitor claims of dead process slot proc_slot. The supervisor. */
int wrk_mon_repair(struct shm_seg *seg, uint32_t proc_slot)
{
	int n = 0;

	for (uint32_t i = 0; i < nmon(seg); i++) {
		struct shm_monitor *m = mon_at(seg, i);
		uint64_t c = atomic_load_explicit(&m->ctl, memory_order_acquire);

		if (!c || SHM_TAG_SLOT(c) != proc_slot || !shm_tag_is_dead(seg, c, false))
			continue;
		if (!atomic_load_explicit(&m->watcher, memory_order_relaxed)) {
			atomic_store_explicit(&m->target, 0, memory_order_relaxed);
			atomic_store_explicit(&m->ref, 0, memory_order_relaxed);
		}
		if (atomic_compare_exchange_strong_explicit(&m->ctl, &c, 0, memory_order_acq_rel,
							    memory_order_relaxed))
			n++;
	}
	return n;
}
