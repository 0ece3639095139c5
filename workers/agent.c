/*
 * Agent slots: spawn and stop from any attached process, repair after a death, and the
 * context API callbacks use (shoal_cast, shoal_monitor, ...).
 *
 * shm_agent.ctl says who may change a slot: the tag of the process setting it up (spawn)
 * or tearing it down (stop), or WRK_CTL_HELD once spawned (its hosting worker owns it).
 * A process killed while it held the claim leaves its dead tag: wrk_repair_proc_claims()
 * undoes the spawn or finishes the stop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/event.h"
#include "shm/pool.h"
#include "shm/registry.h"
#include "shm/var.h"
#include "ipc/ctl.h"
#include "workers/wrk_int.h"

void wrk_oom(void)
{
	static const char msg[] = "shoal worker: out of memory under its cap; exiting 86\n";
	ssize_t rc = write(STDERR_FILENO, msg, sizeof(msg) - 1);

	(void)rc;
	_exit(WRK_EXIT_MEMCAP);
}

shoal_handle_t wrk_agent_handle(const struct shm_seg *seg, uint32_t slot)
{
	struct shm_agent *a = shm_agent_at(seg, slot);

	/* A0: pairs with S2 in shm_agent_alloc(): gen is published with the state release. */
	return shoal_handle_make(slot, atomic_load_explicit(&a->gen, memory_order_acquire));
}

/* The live agent slot h names, or NULL. Any process. */
struct shm_agent *wrk_agent_get(const struct shm_seg *seg, shoal_handle_t h)
{
	uint32_t slot = shoal_handle_slot(h);
	struct shm_agent *a;

	if (h == SHOAL_HANDLE_NONE || slot >= shm_hdr(seg)->cfg.max_agents)
		return NULL;
	a = shm_agent_at(seg, slot);
	/* A0: state then gen, both published by S2 in shm_agent_alloc(). */
	if (atomic_load_explicit(&a->state, memory_order_acquire) == SHM_AGENT_FREE ||
	    atomic_load_explicit(&a->gen, memory_order_acquire) != shoal_handle_gen(h))
		return NULL;
	return a;
}

void wrk_poke_worker(struct shm_seg *seg, uint32_t proc_slot)
{
	struct shm_proc *p;

	if (proc_slot >= shm_hdr(seg)->cfg.max_procs)
		return;
	p = shm_proc_at(seg, proc_slot);
	/* G0: pairs with G1 in the worker's rescan: agent slot writes before the bump. */
	atomic_fetch_add_explicit(&p->agents_gen, 1, memory_order_acq_rel);
	ipc_ring(seg, proc_slot);
}

/* See wrk_int.h: the spawn's claim protocol, from the claim to the hand-over. */
int wrk_agent_make(struct shm_seg *seg, const char *type, uint32_t ns, const char *name,
		   size_t nlen, uint32_t proc_slot, uint32_t *slot_out)
{
	struct shm_agent *a;
	uint32_t slot, node = 0;
	int32_t pnode;
	int rc;

	/* relaxed: a placement hint; a stale node only places the mailbox less well */
	pnode = atomic_load_explicit(&shm_proc_at(seg, proc_slot)->node, memory_order_relaxed);
	if (pnode > 0)
		node = (uint32_t)pnode;
	rc = shm_agent_alloc_named(seg, node, type, name, nlen, &slot);
	if (rc)
		return rc;
	a = shm_agent_at(seg, slot);
	ipc_mbox_init(seg, slot);
	atomic_store_explicit(&a->ckpt_blen[0], 0, memory_order_relaxed);
	atomic_store_explicit(&a->ckpt_blen[1], 0, memory_order_relaxed);
	if (nlen) {
		rc = shm_reg_register(seg, ns, name, nlen, wrk_agent_handle(seg, slot), NULL);
		if (rc) {
			shm_agent_free(seg, slot);
			return rc;
		}
	}
	atomic_store_explicit(&a->started_ns, 0, memory_order_relaxed);
	atomic_store_explicit(&a->worker, proc_slot + 1, memory_order_relaxed);
	/* H0: pairs with the host's acquire of ctl: the slot is complete, hand it over. */
	atomic_store_explicit(&a->ctl, WRK_CTL_HELD, memory_order_release);
	wrk_poke_worker(seg, proc_slot);
	*slot_out = slot;
	return 0;
}

/*
 * Spawn type/name on worker proc_slot. See wrk.h. The caller holds a process slot.
 */
int wrk_agent_spawn(struct shm_seg *seg, const char *type, const char *name, uint32_t proc_slot,
		    shoal_handle_t *out)
{
	size_t nlen = name ? strlen(name) : 0;
	uint32_t slot;
	int rc;

	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	/* by name: the supervisor knows a [types] library's types but never loads it */
	if (!wrk_type_is_known(type) || nlen > SHOAL_NAME_MAX ||
	    proc_slot >= shm_hdr(seg)->cfg.max_procs)
		return -EINVAL;
	rc = wrk_agent_make(seg, type, SHM_NS_DEFAULT, name, nlen, proc_slot, &slot);
	if (rc)
		return rc;
	*out = wrk_agent_handle(seg, slot);
	return 0;
}

/*
 * Append an event of kind about agent slot `slot` (its handle, name and hosting worker, read
 * from the slot now) with reason, code (-1 none) and a text. Best effort: a segment without an
 * event ring, or a read-only one, records nothing. Any process with the slot's claim or its hosting
 * worker.
 */
void wrk_agent_event(struct shm_seg *seg, enum shm_event_kind kind, uint32_t slot, uint32_t reason,
		     int32_t code, const char *fmt, ...)
{
	const struct shm_agent *a = shm_agent_at(seg, slot);
	/* relaxed: the hosting worker's process slot + 1, for a person */
	uint32_t host = atomic_load_explicit(&a->worker, memory_order_relaxed);
	struct shm_event e;
	char name[sizeof(a->name) + 1];
	va_list ap;

	shm_event_init(&e, kind);
	e.agent = wrk_agent_handle(seg, slot);
	e.reason = reason;
	e.code = code;
	/* name: written before S2 only, and the caller holds the slot */
	memcpy(name, a->name, sizeof(a->name));
	name[sizeof(a->name)] = 0;
	shm_event_set_name(&e, name);
	if (host && host - 1 < shm_hdr(seg)->cfg.max_procs) {
		const struct shm_proc *p = shm_proc_at(seg, host - 1);

		e.slot = host - 1;
		/* relaxed: status words for a person (shm_proc's comment) */
		e.pid = (uint32_t)(atomic_load_explicit(&p->own, memory_order_relaxed) >> 32);
		if (atomic_load_explicit(&p->role, memory_order_relaxed) == SHM_ROLE_WORKER)
			e.worker = (int32_t)atomic_load_explicit(&p->windex, memory_order_relaxed);
	}
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof(e.text), fmt, ap);
	va_end(ap);
	(void)shm_event_append(seg, &e, NULL);
}

/*
 * The end of a stop, by whoever holds the slot's claim (its worker, the stopper, repair):
 * names, groups and the monitors it made go, its monitors get DOWN, the slot is freed.
 */
void wrk_agent_finish_stop(struct shm_seg *seg, uint32_t slot, uint32_t reason)
{
	struct shm_agent *a = shm_agent_at(seg, slot);
	shoal_handle_t h = wrk_agent_handle(seg, slot);

	wrk_agent_event(seg, SHM_EV_AGENT_STOP, slot, reason, -1, "%s",
			reason == SHOAL_DOWN_FAILED  ? "removed: failed past its intensity"
			: reason == SHOAL_DOWN_CRASH ? "stopped (its worker died)"
						     : "stopped");
	atomic_store_explicit(&a->state, SHM_AGENT_STOPPED, memory_order_release);
	shm_change_bump(seg);
	shm_reg_unregister_handle(seg, h);
	/*
	 * Its callers hear it now, not at their timeouts (as a gen_server:call's monitor does),
	 * after its names are gone: a caller told -ENOENT finds the name free.
	 */
	ipc_refuse_queued(seg, h, ENOENT);
	shm_grp_leave_all(seg, h);
	/* its subscriptions: nobody would read their notifications */
	shm_var_sub_drop_who(seg, h);
	/* what it checked out goes back to its pools (to the next waiter) */
	shm_pool_release_holder(seg, h, wrk_pool_notify, seg);
	wrk_mon_drop_watcher(seg, h);
	wrk_mon_notify(seg, h, 0, reason);
	wrk_mon_drop_target(seg, h);
	shm_agent_free(seg, slot);
}

/* Request h's orderly stop. See wrk.h. */
int wrk_agent_stop(struct shm_seg *seg, shoal_handle_t h)
{
	struct shm_agent *a = wrk_agent_get(seg, h);
	uint32_t st, worker;

	if (seg->self == UINT32_MAX)
		return -EROFS;
	if (!a) {
		uint32_t slot = shoal_handle_slot(h);

		if (h != SHOAL_HANDLE_NONE && slot < shm_hdr(seg)->cfg.max_agents &&
		    /* A0: pairs with S2 / F0 (alloc / free). */
		    atomic_load_explicit(&shm_agent_at(seg, slot)->state, memory_order_acquire) !=
			    SHM_AGENT_FREE)
			return -ESTALE;
		return -ENOENT;
	}
	st = atomic_load_explicit(&a->state, memory_order_acquire);
	do {
		if (st == SHM_AGENT_STOPPING || st == SHM_AGENT_STOPPED)
			return 0; /* already on its way out */
				  /* T0: pairs with the worker's acquire of state in its rescan. */
	} while (!atomic_compare_exchange_weak_explicit(
		&a->state, &st, SHM_AGENT_STOPPING, memory_order_acq_rel, memory_order_acquire));
	shm_change_bump(seg);
	worker = atomic_load_explicit(&a->worker, memory_order_acquire);
	/*
	 * A live worker, in any state, may host it (a starting one hosts its agents before it
	 * reads RUNNING): only it may free the slot, so it finishes the stop (its rescan, or its
	 * repair if it dies first). Freeing it here let that worker start the agent afterwards
	 * on a free slot: RUNNING with no host, a slot leaked for good.
	 */
	if (worker && shm_proc_is_alive(seg, worker - 1)) {
		wrk_poke_worker(seg, worker - 1);
		return 0;
	}
	/*
	 * No live worker (not started yet, or dead awaiting repair): finish the stop here, under
	 * our claim so a death midway is repaired.
	 */
	{
		uint64_t held = WRK_CTL_HELD;

		if (!atomic_compare_exchange_strong_explicit(
			    &a->ctl, &held, seg->tag, memory_order_acq_rel, memory_order_relaxed))
			return 0; /* a worker or repair holds it: it will see STOPPING */
		/*
		 * F1: pairs with F2 in wrk_main() (a worker's claim, then its first rescan's
		 * loads of ctl): either that worker's rescan sees our claim and skips the slot,
		 * or we see that worker alive here and hand the slot back to it.
		 */
		atomic_thread_fence(memory_order_seq_cst);
		if (worker && shm_proc_is_alive(seg, worker - 1)) {
			atomic_store_explicit(&a->ctl, WRK_CTL_HELD, memory_order_release);
			wrk_poke_worker(seg, worker - 1);
			return 0;
		}
		wrk_agent_finish_stop(seg, shoal_handle_slot(h), SHOAL_DOWN_STOPPED);
	}
	return 0;
}

/* Undo a dead process's half-done spawns and finish its half-done stops. */
static int repair_agent_claims(struct shm_seg *seg, uint32_t proc_slot)
{
	uint32_t n = shm_hdr(seg)->cfg.max_agents;
	int fixed = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);
		/* A1: pairs with the release stores of ctl (AC0, WRK_CTL_HELD): the claimer's
		 * writes. */
		uint64_t c = atomic_load_explicit(&a->ctl, memory_order_acquire);
		uint32_t st;

		if (!c || c == WRK_CTL_HELD || SHM_TAG_SLOT(c) != proc_slot ||
		    !shm_tag_is_dead(seg, c, false))
			continue;
		st = atomic_load_explicit(&a->state, memory_order_acquire);
		if (st == SHM_AGENT_FREE) {
			/* died between its free's state store and the ctl store */
			atomic_store_explicit(&a->ctl, 0, memory_order_release);
		} else if (st == SHM_AGENT_STARTING &&
			   !atomic_load_explicit(&a->worker, memory_order_relaxed)) {
			/* an interrupted spawn: nobody got the handle; undo it */
			wrk_agent_finish_stop(seg, i, SHOAL_DOWN_STOPPED);
		} else {
			/* an interrupted stop (or a spawn that had only the hand-over left) */
			if (st == SHM_AGENT_STARTING) {
				atomic_store_explicit(&a->ctl, WRK_CTL_HELD, memory_order_release);
				wrk_poke_worker(
					seg,
					atomic_load_explicit(&a->worker, memory_order_relaxed) - 1);
			} else {
				wrk_agent_finish_stop(seg, i, SHOAL_DOWN_STOPPED);
			}
		}
		fixed++;
	}
	return fixed;
}

/* See wrk.h. The supervisor, after process slot proc_slot died. */
int wrk_repair_proc_claims(struct shm_seg *seg, uint32_t proc_slot)
{
	int n = wrk_mon_repair(seg, proc_slot);

	return n + repair_agent_claims(seg, proc_slot);
}

/* See wrk.h. The supervisor, after worker proc_slot died. */
int wrk_repair_worker(struct shm_seg *seg, uint32_t proc_slot)
{
	uint32_t n = shm_hdr(seg)->cfg.max_agents;
	uint8_t *mark = calloc(n, 1);
	int down = 0;

	if (!mark)
		return -ENOMEM;
	wrk_repair_proc_claims(seg, proc_slot);
	for (uint32_t i = 0; i < n; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);
		uint32_t st;

		/* A1: worker, ctl and state as the spawner released them. */
		if (atomic_load_explicit(&a->worker, memory_order_acquire) != proc_slot + 1 ||
		    atomic_load_explicit(&a->ctl, memory_order_acquire) != WRK_CTL_HELD)
			continue;
		st = atomic_load_explicit(&a->state, memory_order_acquire);
		if (st == SHM_AGENT_STOPPING) {
			/* its stop never ran: finish it (no terminate: the worker is gone) */
			uint64_t held = WRK_CTL_HELD;

			if (atomic_compare_exchange_strong_explicit(&a->ctl, &held, seg->tag,
								    memory_order_acq_rel,
								    memory_order_relaxed))
				wrk_agent_finish_stop(seg, i, SHOAL_DOWN_CRASH);
			continue;
		}
		if (st != SHM_AGENT_RUNNING && st != SHM_AGENT_STARTING)
			continue;
		/* D0: pairs with the replacement's acquire of state: DOWN means "restart me". A
		 * stopper's STOPPING that lands first wins; the replacement finishes that stop. */
		if (!atomic_compare_exchange_strong_explicit(&a->state, &st, SHM_AGENT_DOWN,
							     memory_order_acq_rel,
							     memory_order_relaxed))
			continue;
		/* relaxed: the worker is dead; the supervisor is the only writer now */
		atomic_fetch_add_explicit(&a->restarts, 1, memory_order_relaxed);
		mark[i] = 1;
		down++;
	}
	/* one pass over the monitor table for all of them */
	if (down) {
		shm_change_bump(seg); /* one for all their DOWN states and restart counts */
		wrk_mon_notify_marked(seg, mark, 0, SHOAL_DOWN_CRASH);
	}
	free(mark);
	return down;
}

/* --- the context API: called from callbacks, on the worker's thread --- */

shoal_handle_t shoal_self(const struct shoal_ctx *ctx)
{
	return ctx->agent->handle;
}

uint64_t shoal_now_ns(const struct shoal_ctx *ctx)
{
	return ctx->now_ns;
}

int shoal_lookup(const struct shoal_ctx *ctx, const char *name, shoal_handle_t *out)
{
	return shm_reg_lookup(ctx->seg, SHM_NS_DEFAULT, name, strlen(name), out, NULL);
}

int shoal_remote(const struct shoal_ctx *ctx, const char *node, const char *name,
		 shoal_handle_t *out)
{
	if (!node || !name || !out)
		return -EINVAL;
	return wrk_remote_get(ctx->seg, node, name, out);
}

int shoal_cast(struct shoal_ctx *ctx, shoal_handle_t to, uint32_t type, const void *data,
	       uint32_t len)
{
	return ipc_send(ctx->seg, to, ctx->agent->handle, type, 0, 0, data, len, 0);
}

int shoal_call_async(struct shoal_ctx *ctx, shoal_handle_t to, uint32_t type, const void *data,
		     uint32_t len, uint64_t *ref_out)
{
	return ipc_call_async(ctx->seg, ctx->agent->handle, to, type, data, len, ref_out);
}

/* A control request to the supervisor, as an async call from this agent. */
static int ctl_async(struct shoal_ctx *ctx, const struct ipc_ctl_req *q, uint64_t *ref_out)
{
	/* P1 (supervisor/control.c): the published inbox's mailbox is initialised */
	shoal_handle_t to =
		atomic_load_explicit(&shm_hdr(ctx->seg)->ctl_inbox, memory_order_acquire);

	if (to == SHOAL_HANDLE_NONE)
		return -ENOTCONN;
	return ipc_call_async(ctx->seg, ctx->agent->handle, to, IPC_CTL_MSG, q, sizeof(*q),
			      ref_out);
}

int shoal_spawn_async(struct shoal_ctx *ctx, const char *type, const char *name, uint32_t hint,
		      int32_t where, uint64_t *ref_out)
{
	struct ipc_ctl_req q = {.op = IPC_CTL_SPAWN, .hint = hint, .where = where};

	if (!type || strlen(type) >= sizeof(q.type))
		return -ENOENT;
	if (!name || !*name || strlen(name) > SHOAL_NAME_MAX ||
	    !shm_put_field(q.type, sizeof(q.type), type) ||
	    !shm_put_field(q.name, sizeof(q.name), name))
		return -EINVAL;
	return ctl_async(ctx, &q, ref_out);
}

int shoal_task_run(struct shoal_ctx *ctx, const char *type, const void *arg, uint32_t len,
		   int timeout_ms, uint64_t *ref_out)
{
	uint32_t cap = shm_hdr(ctx->seg)->cfg.max_msg;
	/* P1 (supervisor/control.c): the published inbox's mailbox is initialised */
	shoal_handle_t to =
		atomic_load_explicit(&shm_hdr(ctx->seg)->ctl_inbox, memory_order_acquire);
	void *buf;
	int n;

	if (to == SHOAL_HANDLE_NONE)
		return -ENOTCONN;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	n = ipc_ctl_task_req(ctx->seg, type, arg, len, timeout_ms, buf, cap);
	if (n >= 0)
		n = ipc_call_async(ctx->seg, ctx->agent->handle, to, IPC_CTL_MSG, buf, (uint32_t)n,
				   ref_out);
	free(buf);
	return n;
}

int shoal_stop_async(struct shoal_ctx *ctx, const char *name, shoal_handle_t h, uint64_t *ref_out)
{
	struct ipc_ctl_req q = {.op = IPC_CTL_STOP, .handle = name ? 0 : h};

	if (name && (!*name || strlen(name) > SHOAL_NAME_MAX ||
		     !shm_put_field(q.name, sizeof(q.name), name)))
		return -EINVAL;
	if (!name && h == SHOAL_HANDLE_NONE)
		return -EINVAL;
	return ctl_async(ctx, &q, ref_out);
}

int shoal_reply(struct shoal_ctx *ctx, const struct shoal_msg *m, const void *data, uint32_t len)
{
	if (!(m->flags & SHOAL_MSG_CALL) || m->from == SHOAL_HANDLE_NONE)
		return -EINVAL;
	/* as the worker's own replies: a short wait, never a stall of the whole worker */
	return ipc_send(ctx->seg, m->from, ctx->agent->handle, m->type, IPC_F_REPLY, m->ref, data,
			len, WRK_REPLY_TIMEOUT_MS);
}

int shoal_reply_as_term(struct shoal_ctx *ctx)
{
	if (!ctx || !ctx->msg || !(ctx->msg->flags & IPC_F_CALL))
		return -EINVAL;
	ctx->reply_flags = IPC_F_TERM;
	return 0;
}

int shoal_send_batch(struct shoal_ctx *ctx, const struct shoal_out *msgs, uint32_t n)
{
	return wrk_send_batch(ctx->seg, ctx->agent->handle, msgs, n, 0);
}

int shoal_broadcast(struct shoal_ctx *ctx, const char *group, uint32_t type, const void *data,
		    uint32_t len)
{
	return ipc_broadcast(ctx->seg, ctx->agent->handle, group, type, data, len, 0);
}

int shoal_monitor(struct shoal_ctx *ctx, shoal_handle_t target, uint64_t *ref_out)
{
	return wrk_mon_add(ctx->seg, ctx->agent->handle, target, ref_out);
}

int shoal_demonitor(struct shoal_ctx *ctx, uint64_t ref)
{
	return wrk_mon_remove(ctx->seg, ctx->agent->handle, ref);
}

int shoal_checkpoint(struct shoal_ctx *ctx, const void *data, uint32_t len)
{
	if (len > ctx->agent->type->ckpt_size)
		return -EMSGSIZE;
	return wrk_ckpt_commit(ctx->seg, ctx->agent->slot, data, len);
}

int shoal_register(struct shoal_ctx *ctx, const char *name)
{
	int rc = shm_reg_register(ctx->seg, SHM_NS_DEFAULT, name, strlen(name), ctx->agent->handle,
				  NULL);

	/* a restarted agent registering its name again finds it still there: fine */
	if (rc == -EEXIST) {
		shoal_handle_t cur;

		if (shm_reg_lookup(ctx->seg, SHM_NS_DEFAULT, name, strlen(name), &cur, NULL) == 0 &&
		    cur == ctx->agent->handle)
			return 0;
	}
	return rc;
}

int shoal_join(struct shoal_ctx *ctx, const char *group)
{
	return shm_grp_join(ctx->seg, group, strlen(group), ctx->agent->handle);
}

int shoal_remote_join(struct shoal_ctx *ctx, const char *group, shoal_handle_t remote)
{
	return wrk_remote_group(ctx->seg, group, remote, true);
}

int shoal_remote_leave(struct shoal_ctx *ctx, const char *group, shoal_handle_t remote)
{
	return wrk_remote_group(ctx->seg, group, remote, false);
}

int shoal_leave(struct shoal_ctx *ctx, const char *group)
{
	return shm_grp_leave(ctx->seg, group, strlen(group), ctx->agent->handle);
}

void shoal_stop_self(struct shoal_ctx *ctx)
{
	ctx->agent->stop_requested = true;
}
