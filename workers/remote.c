/*
 * Remote handles: the proxy agent of a process on another Erlang node (a BEAM node, or
 * another shoal instance's gateway). A proxy is an ordinary agent slot, so its handle takes
 * casts, calls and monitors like any other; it is hosted by the instance's gateway (its
 * worker word names the gateway's process slot), which forwards what its mailbox gets over
 * the distribution (dist/gateway.c). Proxies are named in their own registry namespace
 * (SHM_NS_REMOTE) by "name@node", so that a name is looked up once per node and a local
 * agent's name is never mistaken for a remote one.
 *
 * Made by whoever asks first, with the spawn's claim protocol (shm_agent_alloc_named(), then
 * the name, then the hand-over to the host: worker word, then ctl HELD), so a creator killed
 * at any step is repaired as an interrupted spawn (workers/agent.c, repair_agent_claims()).
 * A proxy ends (finish_stop: its name goes, its monitors get DOWN) when its connection is
 * lost or cannot be made (SHOAL_DOWN_NOCONNECTION, by the gateway), when it is stopped, or
 * when the gateway dies (wrk_repair_remote(), by the supervisor).
 */
#include <errno.h>
#include <string.h>

#include "shm/registry.h"
#include "shm/var.h"
#include "workers/wrk_int.h"

/* node is alive@host: one '@', both parts non-empty, no NUL, no space. */
static bool is_node(const char *node)
{
	const char *at = strchr(node, '@');

	return at && at != node && at[1] && !strchr(at + 1, '@') && !strpbrk(node, " \t\r\n");
}

/* Whether process slot i holds a live, running gateway (*own: its owner word). */
static bool is_gateway(const struct shm_seg *seg, uint32_t i, uint64_t *own)
{
	const struct shm_proc *p = shm_proc_at(seg, i);

	/* relaxed: role and own are status words; the acquire of state orders them */
	if (atomic_load_explicit(&p->state, memory_order_acquire) != SHM_PROC_RUNNING ||
	    atomic_load_explicit(&p->role, memory_order_relaxed) != SHM_ROLE_GATEWAY)
		return false;
	*own = atomic_load_explicit(&p->own, memory_order_relaxed);
	return *own && shm_proc_is_alive(seg, i);
}

/* The process slot of the running gateway (*own: its owner word), or UINT32_MAX. */
static uint32_t gateway_slot(const struct shm_seg *seg, uint64_t *own)
{
	uint32_t n = shm_hdr(seg)->cfg.max_procs;

	for (uint32_t i = 0; i < n; i++)
		if (is_gateway(seg, i, own))
			return i;
	return UINT32_MAX;
}

/* Whether agent a is a proxy (its type written before its publication, never after). */
static bool is_proxy(const struct shm_agent *a)
{
	return !strncmp(a->type, WRK_REMOTE_TYPE, sizeof(a->type));
}

/* See wrk.h. */
int wrk_remote_get(struct shm_seg *seg, const char *node, const char *name, shoal_handle_t *out)
{
	char key[SHOAL_NAME_MAX + 1];
	size_t nl = strlen(name), kl;
	uint32_t gw, slot;
	uint64_t own, own2;

	if (!nl || !is_node(node) || strchr(name, '@') == name)
		return -EINVAL;
	kl = nl + 1 + strlen(node);
	if (kl > SHOAL_NAME_MAX)
		return -EINVAL;
	memcpy(key, name, nl);
	key[nl] = '@';
	memcpy(key + nl + 1, node, strlen(node) + 1);
	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	for (int tries = 0; tries < 8; tries++) {
		shoal_handle_t h;
		int rc;

		if (shm_reg_lookup(seg, SHM_NS_REMOTE, key, kl, &h, NULL) == 0) {
			*out = h;
			return 0;
		}
		gw = gateway_slot(seg, &own);
		if (gw == UINT32_MAX)
			return -EHOSTUNREACH;
		rc = wrk_agent_make(seg, WRK_REMOTE_TYPE, SHM_NS_REMOTE, key, kl, gw, &slot);
		if (rc == -EEXIST)
			continue; /* another made it first: take theirs */
		if (rc)
			return rc;
		h = wrk_agent_handle(seg, slot);
		/*
		 * R0: a gateway that died after we chose it may have been repaired before our
		 * hand-over, and its successor may take another process slot: nobody would host
		 * the proxy. Look again after the hand-over; the repair's ending of the dead
		 * one's proxies (wrk_repair_remote()) runs after its slot is marked dead, so
		 * one of the two sees the other. The ending is a CAS on ctl: one of us ends it.
		 */
		atomic_thread_fence(memory_order_seq_cst);
		/* the same gateway (its owner word): a client may hold the slot by now */
		if (!is_gateway(seg, gw, &own2) || own2 != own) {
			wrk_remote_end(seg, slot, SHOAL_DOWN_NOCONNECTION);
			return -EHOSTUNREACH;
		}
		*out = h;
		return 0;
	}
	return -EAGAIN; /* made and ended under us, over and over: a gateway dropping them */
}

/*
 * End proxy `slot` (its host's or the repair's): take the slot's claim from HELD, then the
 * stop's end, DOWN with `reason`. False if someone else holds the claim (they end it).
 */
bool wrk_remote_end(struct shm_seg *seg, uint32_t slot, uint32_t reason)
{
	struct shm_agent *a = shm_agent_at(seg, slot);
	uint64_t held = WRK_CTL_HELD;

	if (!atomic_compare_exchange_strong_explicit(&a->ctl, &held, seg->tag, memory_order_acq_rel,
						     memory_order_relaxed))
		return false;
	wrk_agent_finish_stop(seg, slot, reason);
	return true;
}

/*
 * End the handed-over proxies hosted by process slot `only`, or, with UINT32_MAX, those whose
 * host is neither us nor a live gateway. How many ended.
 */
static int end_proxies(struct shm_seg *seg, uint32_t only)
{
	uint32_t n = shm_hdr(seg)->cfg.max_agents;
	int ended = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);
		/* A1 as in wrk_repair_worker(): worker, ctl and state as the creator released */
		uint32_t host = atomic_load_explicit(&a->worker, memory_order_acquire);
		uint64_t own;

		if (!host || atomic_load_explicit(&a->ctl, memory_order_acquire) != WRK_CTL_HELD ||
		    !is_proxy(a))
			continue;
		if (only != UINT32_MAX ? host - 1 != only
				       /* ours (a gateway's own sweep: it takes them up), or a
					* live gateway's */
				       : host - 1 == seg->self || is_gateway(seg, host - 1, &own))
			continue;
		ended += wrk_remote_end(seg, i, SHOAL_DOWN_NOCONNECTION);
	}
	return ended;
}

/* See wrk.h. */
int wrk_repair_remote(struct shm_seg *seg, uint32_t slot)
{
	return end_proxies(seg, slot);
}

/* See wrk.h. */
int wrk_remote_sweep(struct shm_seg *seg)
{
	return end_proxies(seg, UINT32_MAX);
}

/* See wrk.h. */
bool wrk_remote_is_proxy(const struct shm_seg *seg, uint32_t slot)
{
	return is_proxy(shm_agent_at(seg, slot));
}

/* See wrk.h. */
int wrk_remote_group(struct shm_seg *seg, const char *group, shoal_handle_t h, bool join)
{
	uint32_t slot = shoal_handle_slot(h), st;
	struct shm_agent *a;
	int rc;

	if (!group || !*group || slot >= shm_hdr(seg)->cfg.max_agents)
		return -EINVAL;
	a = shm_agent_at(seg, slot);
	/* acquire: the slot's publication (its type and gen with the state read) */
	st = atomic_load_explicit(&a->state, memory_order_acquire);
	if (!join) {
		/* a remote handle, or one whose slot moved on (a stale member goes too) */
		if (is_proxy(a) ||
		    atomic_load_explicit(&a->gen, memory_order_relaxed) != shoal_handle_gen(h))
			return shm_grp_leave(seg, group, strlen(group), h);
		return -EINVAL;
	}
	if (!is_proxy(a) ||
	    atomic_load_explicit(&a->gen, memory_order_relaxed) != shoal_handle_gen(h))
		return -EINVAL;
	/* a handle that is over joins nothing (the end's leave-all may have run already) */
	if (st != SHM_AGENT_STARTING && st != SHM_AGENT_RUNNING)
		return -EINVAL;
	rc = shm_grp_join(seg, group, strlen(group), h);
	if (rc)
		return rc;
	/*
	 * G1: the handle may have ended between the check and the join, its leave-all already
	 * run (the end stores STOPPED, then fences before it leaves: ipc_refuse_queued()'s K1).
	 * Look again after a full fence: one of us sees the other, and the member goes.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	st = atomic_load_explicit(&a->state, memory_order_acquire);
	if ((st != SHM_AGENT_STARTING && st != SHM_AGENT_RUNNING) ||
	    atomic_load_explicit(&a->gen, memory_order_relaxed) != shoal_handle_gen(h)) {
		shm_grp_leave(seg, group, strlen(group), h);
		return -EINVAL;
	}
	return 0;
}

/* Whether h names a live remote handle (a proxy in STARTING or RUNNING, of h's gen). */
static bool live_proxy(const struct shm_seg *seg, shoal_handle_t h)
{
	const struct shm_agent *a = shm_agent_at(seg, shoal_handle_slot(h));
	/* acquire: the slot's publication (its type and gen with the state read) */
	uint32_t st = atomic_load_explicit(&a->state, memory_order_acquire);

	return is_proxy(a) &&
	       atomic_load_explicit(&a->gen, memory_order_relaxed) == shoal_handle_gen(h) &&
	       (st == SHM_AGENT_STARTING || st == SHM_AGENT_RUNNING);
}

/* See wrk.h. */
int wrk_remote_var_subscribe(struct shm_seg *seg, shoal_handle_t h, const char *name,
			     uint32_t flags, uint64_t *ref)
{
	int rc;

	if (shoal_handle_slot(h) >= shm_hdr(seg)->cfg.max_agents || !live_proxy(seg, h))
		return -EINVAL;
	/* host 0: an agent slot's subscription, dropped when it ends (wrk_agent_finish_stop()) */
	rc = wrk_var_subscribe(seg, h, 0, name, flags, ref);
	if (rc)
		return rc;
	/* G1 as in wrk_remote_group(): an end between the check and the add dropped nothing
	 * of ours; look again after a full fence, and take it back if the handle is over */
	atomic_thread_fence(memory_order_seq_cst);
	if (!live_proxy(seg, h)) {
		shm_var_sub_del(seg, *ref, h);
		return -EINVAL;
	}
	return 0;
}
