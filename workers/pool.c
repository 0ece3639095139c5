/*
 * Agent pools for agents and clients (include/shoal/agent.h, client.h): shm/pool.c keeps
 * the pool; this file tells waiters what it decided (a grant or a timeout, as a reply to
 * their checkout's reference) and gives agents and clients their calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"
#include "shm/hist.h"
#include "shm/pool.h"
#include "shoal/agent.h"
#include "shoal/client.h"
#include "workers/wrk.h"
#include "workers/wrk_int.h"

/* See wrk.h. Called with a pool's lock held: never waits for mailbox room. */
int wrk_pool_notify(void *seg, const struct shm_pool_note *n)
{
	if (n->kind == SHM_POOL_GRANT) {
		struct shoal_pool_grant g = {.agent = n->agent};

		return ipc_send(seg, n->to, SHOAL_HANDLE_NONE, SHOAL_T_POOL, IPC_F_REPLY, n->ref,
				&g, sizeof(g), 0);
	}
	return ipc_send(seg, n->to, SHOAL_HANDLE_NONE, ETIMEDOUT, IPC_F_REPLY | IPC_F_ERROR, n->ref,
			NULL, 0, 0);
}

static int find(struct shm_seg *seg, const char *pool, uint32_t *id)
{
	if (!pool || !*pool || strlen(pool) > SHOAL_POOL_NAME_MAX)
		return -EINVAL;
	return shm_pool_find(seg, pool, id);
}

/* A checkout queued: if it asked for overflow members, wake the supervisor to spawn them. */
static void ask_overflow(struct shm_seg *seg, uint32_t id)
{
	struct shm_pool_info in;

	if (shm_pool_read(seg, id, &in) == 0 && in.want)
		ipc_ring(seg, 0); /* the supervisor's process slot: its control wake */
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : shm_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

int shoal_pool_checkout(struct shoal_ctx *ctx, const char *pool, int timeout_ms,
			shoal_handle_t *agent, uint64_t *ref_out)
{
	uint64_t ref = ipc_ref_new(ctx->seg, false), t0 = shm_hist_begin_always(ctx->seg);
	uint32_t id, wslot;
	int r = find(ctx->seg, pool, &id);

	if (r)
		return r;
	r = shm_pool_checkout(ctx->seg, id, ctx->agent->handle, ref, deadline_of(timeout_ms), true,
			      agent, &wslot, wrk_pool_notify, ctx->seg);
	/* a grant at once is timed; a queued one ends in a message, not here (not timed) */
	if (r == 0)
		shm_hist_end(ctx->seg, SHM_HIST_POOL_CHECKOUT, t0);
	if (r == 1) {
		ask_overflow(ctx->seg, id);
		if (ref_out)
			*ref_out = ref;
	}
	return r;
}

int shoal_pool_checkin(struct shoal_ctx *ctx, const char *pool, shoal_handle_t agent)
{
	uint32_t id;
	int r = find(ctx->seg, pool, &id);

	return r ? r : shm_pool_checkin(ctx->seg, id, agent, wrk_pool_notify, ctx->seg);
}

/* See wrk.h. */
int wrk_pool_client_checkout(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox,
			     const char *pool, int timeout_ms, shoal_handle_t *agent)
{
	uint64_t ref = ipc_ref_new(seg, true), t0 = shm_hist_begin_always(seg);
	struct shoal_pool_grant g;
	uint32_t id, wslot;
	int r = find(seg, pool, &id);

	if (r)
		return r;
	/* the supervisor's tick ends an agent's wait; a client ends its own */
	r = shm_pool_checkout(seg, id, inbox, ref, 0, true, agent, &wslot, wrk_pool_notify, seg);
	if (r == 0)
		shm_hist_end(seg, SHM_HIST_POOL_CHECKOUT, t0);
	if (r != 1)
		return r;
	ask_overflow(seg, id);
	r = ipc_wait_reply(seg, w, inbox, ref, &g, sizeof(g), timeout_ms);
	if (r == (int)sizeof(g)) {
		*agent = g.agent;
		shm_hist_end(seg, SHM_HIST_POOL_CHECKOUT, t0);
		return 0;
	}
	if (r >= 0)
		r = -EPROTO;
	/*
	 * Withdraw (under the pool's lock): still waiting, it is gone; granted and not yet
	 * told, we take it; told, the reply is in our inbox now.
	 */
	switch (shm_pool_wait_result(seg, id, wslot, ref, true, agent)) {
	case 0:
		return 0;
	case 1:
		return r;
	default:
		if (ipc_wait_reply(seg, NULL, inbox, ref, &g, sizeof(g), 0) == (int)sizeof(g)) {
			*agent = g.agent;
			return 0;
		}
		return r;
	}
}

/* See wrk.h. */
int wrk_pool_checkin(struct shm_seg *seg, const char *pool, shoal_handle_t agent)
{
	uint32_t id;
	int r = find(seg, pool, &id);

	return r ? r : shm_pool_checkin(seg, id, agent, wrk_pool_notify, seg);
}
