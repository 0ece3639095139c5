/*
 * Rounds started by the agents of this worker (shoal_broadcast_acked()): owned by the
 * worker's process (a dead worker's rounds are freed by the repair of its slot, and their
 * results are lost with it), watched by its loop, and reported to the agent that started
 * each one as a message (SHOAL_MSG_SYSTEM, SHOAL_T_ROUND). The callback never waits: the
 * last answer rings this worker, whose loop then posts the result.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shm/round.h"
#include "shoal/client.h"
#include "workers/wrk_int.h"

struct wround {
	struct ipc_round r;
	shoal_handle_t agent; /* who started it, and gets the result */
	uint64_t ref;	      /* its reference, in the result */
};

/* The worker is one thread: its rounds are this process's. */
static struct wround *rounds;
static uint32_t nrounds, caprounds;
static uint32_t no_record_refs; /* refs of rounds without a record (no members) */

static_assert(IPC_T_ROUND == SHOAL_T_ROUND, "the public round notice type is the engine's");

int shoal_broadcast_acked(struct shoal_ctx *ctx, const char *group, uint32_t type, const void *data,
			  uint32_t len, int timeout_ms, uint64_t *ref_out)
{
	struct wround *wr;
	int rc;

	if (!ctx || !group || timeout_ms <= 0)
		return -EINVAL;
	if (nrounds == caprounds) {
		uint32_t cap = caprounds ? 2 * caprounds : 16;
		struct wround *n = realloc(rounds, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		rounds = n;
		caprounds = cap;
	}
	wr = &rounds[nrounds];
	/* no wait for a full mailbox in a callback: that member counts as unreachable */
	rc = ipc_round_start(ctx->seg, ctx->agent->handle, group, type, data, len,
			     shm_now_ns() + (uint64_t)timeout_ms * 1000000u, 0, 0, &wr->r);
	if (rc)
		return rc;
	wr->agent = ctx->agent->handle;
	if (wr->r.slot != UINT32_MAX)
		wr->ref = shm_round_ref(wr->r.slot, wr->r.gen, 0);
	else
		wr->ref = ((uint64_t)++no_record_refs << 32) | 0xffff0000u;
	nrounds++;
	if (ref_out)
		*ref_out = wr->ref;
	return 0;
}

/* See wrk_int.h. The worker's thread. */
bool wrk_rounds_any_done(const struct shm_seg *seg)
{
	for (uint32_t i = 0; i < nrounds; i++)
		if (ipc_round_is_complete(seg, &rounds[i].r))
			return true;
	return false;
}

/* See wrk_int.h. The worker's thread. */
uint32_t wrk_rounds_poll(struct shm_seg *seg, uint64_t now, uint64_t *next_deadline)
{
	uint64_t next = UINT64_MAX;
	uint32_t posted = 0;

	for (uint32_t i = 0; i < nrounds;) {
		struct wround *wr = &rounds[i];
		struct shoal_round_result res = {0};
		struct shoal_round_done d;
		int rc;

		if (!ipc_round_is_complete(seg, &wr->r) && now < wr->r.deadline_ns) {
			if (wr->r.deadline_ns < next)
				next = wr->r.deadline_ns;
			i++;
			continue;
		}
		wrk_round_tally(seg, &wr->r, &res);
		d = (struct shoal_round_done){.ref = wr->ref,
					      .members = res.members,
					      .acked = res.acked,
					      .dead = res.dead,
					      .absent = res.absent,
					      .elapsed_ns = now - wr->r.start_ns};
		rc = ipc_send(seg, wr->agent, SHOAL_HANDLE_NONE, IPC_T_ROUND, IPC_F_SYSTEM, wr->ref,
			      &d, sizeof(d), 0);
		if (rc == -EAGAIN) {
			/* its mailbox is full: this loop drains it, the next poll posts */
			next = now;
			i++;
			continue;
		}
		/* posted, or the agent is gone for good: either way the round is over */
		posted += rc == 0;
		ipc_round_end(seg, &wr->r);
		rounds[i] = rounds[--nrounds];
	}
	*next_deadline = next;
	return posted;
}

/* See wrk_int.h. The worker's thread, as it stops in order. */
void wrk_rounds_end_all(struct shm_seg *seg)
{
	for (uint32_t i = 0; i < nrounds; i++)
		ipc_round_end(seg, &rounds[i].r);
	nrounds = 0;
}
