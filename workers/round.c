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
#include "shm/var.h"
#include "shoal/client.h"
#include "workers/wrk_int.h"

struct wround {
	struct ipc_round r;
	shoal_handle_t agent;	   /* who started it, and gets the result */
	uint64_t ref;		   /* its reference, in the result */
	struct ipc_proposal *prop; /* a proposal's (r unused then), NULL for a broadcast */
};

/* The worker is one thread: its rounds are this process's. */
static struct wround *rounds;
static uint32_t nrounds, caprounds;
static uint32_t no_record_refs; /* refs of rounds without a record (no members) */

static_assert(IPC_T_ROUND == SHOAL_T_ROUND, "the public round notice type is the engine's");

static_assert(IPC_T_CONSENSUS == SHOAL_T_CONSENSUS,
	      "the public consensus note type is the engine's");
static_assert(IPC_T_PROPOSAL == SHOAL_T_PROPOSAL,
	      "the public proposal notice type is the engine's");

/* Room for one more round in rounds[]: 0 or -ENOMEM. */
static int rounds_grow(void)
{
	if (nrounds == caprounds) {
		uint32_t cap = caprounds ? 2 * caprounds : 16;
		struct wround *n = realloc(rounds, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		rounds = n;
		caprounds = cap;
	}
	return 0;
}

/* The round's own ref, or one made up for a round without a record (no members). */
static uint64_t ref_of(const struct ipc_round *r)
{
	if (r->slot != UINT32_MAX)
		return shm_round_ref(r->slot, r->gen, 0);
	return ((uint64_t)++no_record_refs << 32) | 0xffff0000u;
}

int shoal_broadcast_acked(struct shoal_ctx *ctx, const char *group, uint32_t type, const void *data,
			  uint32_t len, int timeout_ms, uint64_t *ref_out)
{
	struct wround *wr;
	int rc;

	if (!ctx || !group || timeout_ms <= 0)
		return -EINVAL;
	rc = rounds_grow();
	if (rc)
		return rc;
	wr = &rounds[nrounds];
	wr->prop = NULL;
	/* no wait for a full mailbox in a callback: that member counts as unreachable */
	rc = ipc_round_start(ctx->seg, ctx->agent->handle, group, type, data, len,
			     shm_now_ns() + (uint64_t)timeout_ms * 1000000u, 0, 0, &wr->r);
	if (rc)
		return rc;
	wr->agent = ctx->agent->handle;
	wr->ref = ref_of(&wr->r);
	nrounds++;
	if (ref_out)
		*ref_out = wr->ref;
	return 0;
}

/* A proposal's state and the copies it needs past the callback that made it. */
struct wprop {
	struct ipc_proposal p;
	struct shoal_proposal_result res; /* its outcome, once decided */
	bool decided;
	uint64_t value[]; /* the value, then the members' message (8-aligned) */
};

int shoal_propose(struct shoal_ctx *ctx, const char *var, uint32_t type, const void *data,
		  uint32_t len, const char *group, uint32_t rule, uint32_t quorum, int timeout_ms,
		  uint64_t *ref_out)
{
	struct wround *wr;
	struct wprop *wp;
	uint64_t version;
	int rc;

	if (!ctx || !var || !group || timeout_ms <= 0 || len > SHM_VAR_BYTES_MAX || (len && !data))
		return -EINVAL;
	rc = rounds_grow();
	if (rc)
		return rc;
	wp = malloc(sizeof(*wp) + 2u * len + sizeof(struct ipc_vote_msg) + 8u);
	if (!wp)
		return -ENOMEM;
	if (len)
		memcpy(wp->value, data, len);
	/* no wait for a full mailbox in a callback: that member counts as unreachable */
	wp->decided = false;
	rc = ipc_propose_start(ctx->seg, ctx->agent->handle, var, type, wp->value, len, group, rule,
			       quorum, shm_now_ns() + (uint64_t)timeout_ms * 1000000u, 0, 0,
			       (uint8_t *)wp->value + ((len + 7u) & ~7u), &version, &wp->p);
	if (rc && rc != -EBUSY) {
		free(wp);
		return rc;
	}
	wr = &rounds[nrounds++];
	wr->prop = &wp->p;
	wr->r = wp->p.r;
	wr->agent = ctx->agent->handle;
	wr->ref = ref_of(&wp->p.r);
	if (rc == -EBUSY) {
		/*
		 * Another proposal is open: decided already, a conflict with the version it
		 * started from. Posted by the next poll like any outcome (retried while this
		 * agent's mailbox is full), so the caller learns the version from the result.
		 */
		wp->p.r.slot = UINT32_MAX;
		wr->r.slot = UINT32_MAX;
		wp->res = (struct shoal_proposal_result){.ref = wr->ref,
							 .outcome = SHOAL_PROPOSAL_CONFLICT,
							 .rc = -EBUSY,
							 .version = version};
		wp->decided = true;
	}
	if (ref_out)
		*ref_out = wr->ref;
	return 0;
}

/* See wrk_int.h. The worker's thread. */
int wrk_vote(struct shoal_ctx *ctx, struct wrk_agent *wa, const struct ipc_msg *m)
{
	struct ipc_vote_msg vm;
	struct shoal_proposal p;
	char reason[128] = "";
	int rc;

	if (!wa->type->vote)
		return 1;
	if (m->len < sizeof(vm))
		return 0;
	memcpy(&vm, m->data, sizeof(vm));
	if (vm.len > m->len - sizeof(vm))
		return 0;
	vm.name[sizeof(vm.name) - 1] = 0;
	p = (struct shoal_proposal){.var = vm.var,
				    .name = vm.name,
				    .type = vm.type,
				    .len = vm.len,
				    .data = (const uint8_t *)m->data + sizeof(vm),
				    .version = vm.version,
				    .proposer = vm.proposer,
				    .rule = vm.rule,
				    .quorum = vm.quorum};
	rc = wa->type->vote(ctx, wa->state, &p, reason, sizeof(reason));
	return rc == 1;
}

/* See wrk_int.h. The worker's thread. */
bool wrk_rounds_any_done(const struct shm_seg *seg)
{
	for (uint32_t i = 0; i < nrounds; i++)
		if (ipc_round_is_complete(seg, &rounds[i].r))
			return true;
	return false;
}

/*
 * Decide proposal wr (complete or past its deadline) and post its outcome to its agent. 1
 * done (posted, or the agent is gone), 0 not yet (a live writer holds the variable, or the
 * agent's mailbox is full: the next poll tries again, without deciding twice).
 */
static int prop_post(struct shm_seg *seg, struct wround *wr)
{
	struct wprop *wp = (struct wprop *)wr->prop;
	int rc;

	if (!wp->decided) {
		rc = ipc_propose_finish(seg, &wp->p, SHM_VAR_WAIT_AGENT_NS, &wp->res);
		if (rc == -EAGAIN)
			return 0;
		wp->res.ref = wr->ref;
		wp->decided = true;
		/* the commit is an update: its subscribers hear of it as of any other */
		if (wp->res.outcome == SHOAL_PROPOSAL_COMMITTED)
			wrk_var_notify(seg, &wp->p.var, 1, wp->p.proposer);
		/* the record is free: the round reads as complete from now on */
		wr->r.slot = UINT32_MAX;
	}
	rc = ipc_send(seg, wr->agent, SHOAL_HANDLE_NONE, IPC_T_PROPOSAL, IPC_F_SYSTEM, wr->ref,
		      &wp->res, sizeof(wp->res), 0);
	return rc != -EAGAIN;
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
		if (wr->prop) {
			if (!prop_post(seg, wr)) {
				next = now;
				i++;
				continue;
			}
			posted++;
			free(wr->prop);
			rounds[i] = rounds[--nrounds];
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
	for (uint32_t i = 0; i < nrounds; i++) {
		if (rounds[i].prop) {
			/* its claim before its record (the order ipc/propose.c relies on) */
			if (!((struct wprop *)rounds[i].prop)->decided)
				ipc_propose_abort(seg, rounds[i].prop);
			free(rounds[i].prop);
			continue;
		}
		ipc_round_end(seg, &rounds[i].r);
	}
	nrounds = 0;
}
