/*
 * Resource allocation rounds: one broadcast with acknowledgements (ipc/round.c) whose members
 * answer with their demand, attached to their answer as the round record's value word (so
 * the demands come back in parallel, through the segment, with the one wake of the owner by
 * the last answer, not as a reply message each). Once the round is over the owner reads
 * every member's state and demand once (a snapshot: a member answering later is absent),
 * divides the capacity among the members that reported with a pluggable policy (pure
 * functions, below), and sends each its share in one batched send (one wake per worker).
 *
 * A client runs a round to its end in shoal_client_allocate() (wrk_alloc_run()); an agent's
 * round (shoal_allocate()) is watched by its worker's loop (wrk_allocs_poll()), which posts
 * the result to the agent as a reply, like the agent's broadcasts with acknowledgements.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shm/hist.h"
#include "shm/round.h"
#include "shoal/agent.h"
#include "shoal/client.h"
#include "workers/wrk_int.h"

static_assert(SHOAL_ALLOC_ABSENT == SHM_ROUND_M_ABSENT && SHOAL_ALLOC_DEAD == SHM_ROUND_M_DEAD,
	      "a left-out member's state is the round record's");
static_assert(SHOAL_ALLOC_DEMAND_MAX < SHM_ROUND_NO_VALUE, "a demand fits a round value");
static_assert(sizeof(struct shoal_alloc_done) == 72 && sizeof(struct shoal_alloc_member) == 32,
	      "the result's layout is API");

/* --- policies: pure functions of (capacity, demands) --- */

typedef unsigned __int128 u128;

/* A proportional share's remainder, for sharing out the units the floors leave. */
struct rem {
	u128 rem;
	uint32_t idx;
};

static int rem_cmp(const void *a, const void *b)
{
	const struct rem *x = a, *y = b;

	if (x->rem != y->rem)
		return x->rem > y->rem ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static u128 total_of(const uint64_t *demand, uint32_t n)
{
	u128 t = 0;

	for (uint32_t i = 0; i < n; i++)
		t += demand[i];
	return t;
}

/* See shoal.h. Any thread. */
int shoal_alloc_proportional(uint64_t capacity, const uint64_t *demand, uint32_t n, uint64_t *share)
{
	struct rem *r;
	uint64_t left = capacity;
	u128 total;

	if (n && (!demand || !share))
		return -EINVAL;
	total = total_of(demand, n);
	if (total <= capacity) {
		if (n) /* no members: no arrays to copy (NULL is allowed then) */
			memcpy(share, demand, (size_t)n * sizeof(*share));
		return 0;
	}
	r = malloc((size_t)n * sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		u128 p = (u128)capacity * demand[i];

		/* capacity < total: the floor is below demand[i], so it fits 64 bits */
		share[i] = (uint64_t)(p / total);
		left -= share[i];
		r[i] = (struct rem){.rem = p % total, .idx = i};
	}
	/*
	 * The remainders add up to left * total, each below total: more than `left` of them
	 * are positive, so the units go to members with a fraction (a zero demand gets none)
	 * and no share passes its demand.
	 */
	qsort(r, n, sizeof(*r), rem_cmp);
	for (uint32_t k = 0; k < left; k++)
		share[r[k].idx]++;
	free(r);
	return 0;
}

/* A demand and its index, for the water-filling's order. */
struct dem {
	uint64_t d;
	uint32_t idx;
};

/* Ascending demand, then ascending index. */
static int dem_cmp(const void *a, const void *b)
{
	const struct dem *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Ascending index. */
static int idx_cmp(const void *a, const void *b)
{
	const struct dem *x = a, *y = b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* See shoal.h. Any thread. */
int shoal_alloc_maxmin(uint64_t capacity, const uint64_t *demand, uint32_t n, uint64_t *share)
{
	uint64_t left = capacity, level, extra;
	struct dem *o;
	uint32_t j;

	if (n && (!demand || !share))
		return -EINVAL;
	if (total_of(demand, n) <= capacity) {
		if (n) /* no members: no arrays to copy (NULL is allowed then) */
			memcpy(share, demand, (size_t)n * sizeof(*share));
		return 0;
	}
	o = malloc((size_t)n * sizeof(*o));
	if (!o)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		o[i] = (struct dem){.d = demand[i], .idx = i};
	qsort(o, n, sizeof(*o), dem_cmp);
	/* water-filling: the smallest demands are met in full while the rest can match them */
	for (j = 0; j < n; j++) {
		if ((u128)o[j].d * (n - j) > left)
			break;
		share[o[j].idx] = o[j].d;
		left -= o[j].d;
	}
	/*
	 * The total passes capacity, so some are left (j < n), each wanting more than
	 * left / (n - j): level each, and the units left below the next level one each, the
	 * lower index first.
	 */
	level = left / (n - j);
	extra = left % (n - j);
	qsort(o + j, n - j, sizeof(*o), idx_cmp);
	for (uint32_t k = j; k < n; k++)
		share[o[k].idx] = level + (k - j < extra);
	free(o);
	return 0;
}

/* See shoal.h. */
shoal_alloc_policy_fn shoal_alloc_policy_find(const char *name)
{
	if (!name)
		return NULL;
	if (!strcmp(name, "proportional"))
		return shoal_alloc_proportional;
	if (!strcmp(name, "maxmin"))
		return shoal_alloc_maxmin;
	return NULL;
}

/* --- a round: the ask, the snapshot, the policy, the shares --- */

/* What a round's end counted (the result's numbers). */
struct alloc_sum {
	uint32_t members, reported, dead, absent, nodemand, delivered;
	uint64_t demand, allocated;
};

/*
 * The calling thread's buffers, grown to the largest round once (no allocation per round
 * after the first): the table, the reported demands and their shares and members, the share
 * messages and their batch.
 */
static __thread struct {
	struct shoal_alloc_member *tab;
	uint64_t *demand, *share;
	uint32_t *idx;
	struct shoal_alloc_share *msg;
	struct ipc_out *out;
	uint32_t cap;
} ab;

#define GROW(p, n)                                                                                 \
	do {                                                                                       \
		void *q_ = realloc((p), (size_t)(n) * sizeof(*(p)));                               \
		if (!q_)                                                                           \
			return -ENOMEM;                                                            \
		(p) = q_;                                                                          \
	} while (0)

static int ab_reserve(uint32_t n)
{
	if (n <= ab.cap)
		return 0;
	GROW(ab.tab, n);
	GROW(ab.demand, n);
	GROW(ab.share, n);
	GROW(ab.idx, n);
	GROW(ab.msg, n);
	GROW(ab.out, n);
	ab.cap = n;
	return 0;
}

/* Fill the ask: -EINVAL for a resource name that is empty or too long. */
static int ask_of(const char *resource, uint64_t capacity, struct shoal_alloc_ask *ask)
{
	size_t len = resource ? strnlen(resource, SHOAL_ALLOC_NAME_MAX + 1) : 0;

	if (len == 0 || len > SHOAL_ALLOC_NAME_MAX)
		return -EINVAL;
	memset(ask, 0, sizeof(*ask));
	memcpy(ask->resource, resource, len);
	ask->capacity = capacity;
	return 0;
}

/*
 * The round is over (complete, or its deadline passed): read each member's state and demand
 * once into ab.tab, run the policy over the reported demands and send each reporter its
 * share from `from` (one batched send; a member whose send fails is skipped, the others go
 * on). Returns 0, -ENOMEM, or the policy's error (-ERANGE: its shares pass capacity), in
 * which case no share is sent. The round's owner, before ipc_round_end().
 */
static int alloc_finish(struct shm_seg *seg, const struct ipc_round *r, shoal_handle_t from,
			const struct shoal_alloc_ask *ask, shoal_alloc_policy_fn policy,
			struct alloc_sum *sum)
{
	uint32_t k = 0;
	u128 given = 0;
	int rc;

	memset(sum, 0, sizeof(*sum));
	sum->members = r->members;
	rc = ab_reserve(r->members);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < r->members; i++) {
		struct shoal_alloc_member *e = &ab.tab[i];
		shoal_handle_t h;
		uint32_t v, st = ipc_round_member(seg, r, i, &h);

		*e = (struct shoal_alloc_member){.handle = h, .state = st};
		if (e->state == SHM_ROUND_M_DEAD) {
			sum->dead++;
		} else if (e->state == SHM_ROUND_M_ABSENT) {
			sum->absent++;
		} else if (ipc_round_value(seg, r, i, &v)) {
			e->state = SHOAL_ALLOC_REPORTED;
			e->demand = v;
			sum->demand += v;
			ab.demand[k] = v;
			ab.idx[k++] = i;
		} else {
			e->state = SHOAL_ALLOC_NODEMAND;
			sum->nodemand++;
		}
	}
	sum->reported = k;
	rc = policy(ask->capacity, ab.demand, k, ab.share);
	if (rc)
		return rc;
	for (uint32_t j = 0; j < k; j++)
		given += ab.share[j];
	if (given > ask->capacity)
		return -ERANGE;
	for (uint32_t j = 0; j < k; j++) {
		uint32_t i = ab.idx[j];

		ab.tab[i].share = ab.share[j];
		sum->allocated += ab.share[j];
		ab.msg[j] = (struct shoal_alloc_share){.ref = shm_round_ref(r->slot, r->gen, i),
						       .share = ab.share[j],
						       .demand = ab.demand[j],
						       .capacity = ask->capacity};
		memcpy(ab.msg[j].resource, ask->resource, sizeof(ask->resource));
		ab.out[j] = (struct ipc_out){.to = ab.tab[i].handle,
					     .type = SHOAL_T_ALLOC,
					     .len = sizeof(ab.msg[j]),
					     .data = &ab.msg[j]};
	}
	/* members are in the round's order, sorted by worker: one wake per worker */
	for (uint32_t j = 0; j < k;) {
		int n = ipc_send_batch(seg, from, ab.out + j, k - j, 0);

		if (n < 0)
			n = 0;
		for (int m = 0; m < n; m++)
			ab.tab[ab.idx[j + (uint32_t)m]].delivered = 1;
		sum->delivered += (uint32_t)n;
		j += (uint32_t)n + 1; /* past the one that failed, if any */
	}
	return 0;
}

/* See wrk_int.h. A client's thread (shoal_client_allocate(), shoal allocate). */
int wrk_alloc_run(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t owner,
		  const char *group, const char *resource, uint64_t capacity,
		  shoal_alloc_policy_fn policy, int timeout_ms, struct shoal_alloc_result *res)
{
	struct shoal_alloc_ask ask;
	struct alloc_sum sum;
	struct ipc_round r;
	int rc, wr;

	if (!group || !res || timeout_ms <= 0 || (res->cap && !res->member))
		return -EINVAL;
	rc = ask_of(resource, capacity, &ask);
	if (rc)
		return rc;
	rc = ipc_round_start(seg, owner, group, SHOAL_T_ALLOC_ASK, &ask, sizeof(ask),
			     shm_now_ns() + (uint64_t)timeout_ms * 1000000u, 0, timeout_ms, &r);
	if (rc)
		return rc;
	r.hist_op = SHM_HIST_ALLOC;
	wr = ipc_round_wait(seg, w, &r);
	if (wr && wr != -ETIMEDOUT) {
		ipc_round_end(seg, &r);
		return wr;
	}
	rc = alloc_finish(seg, &r, owner, &ask, policy ? policy : shoal_alloc_proportional, &sum);
	ipc_round_end(seg, &r);
	res->members = sum.members;
	res->reported = sum.reported;
	res->dead = sum.dead;
	res->absent = sum.absent;
	res->nodemand = sum.nodemand;
	res->delivered = sum.delivered;
	res->capacity = capacity;
	res->demand = sum.demand;
	res->allocated = sum.allocated;
	res->elapsed_ns = shm_now_ns() - r.start_ns;
	if (res->member && rc != -ENOMEM)
		memcpy(res->member, ab.tab,
		       (size_t)(sum.members < res->cap ? sum.members : res->cap) *
			       sizeof(*res->member));
	if (rc)
		return rc;
	/* the snapshot decides: a member that answered after the deadline is absent */
	return sum.absent ? -ETIMEDOUT : 0;
}

/* See agent.h. A worker's thread, from a callback. */
int shoal_alloc_demand(struct shoal_ctx *ctx, const struct shoal_msg *m, uint64_t demand)
{
	int rc;

	if (!ctx || !m || !(m->flags & SHOAL_MSG_ROUND) || m->type != SHOAL_T_ALLOC_ASK)
		return -EINVAL;
	if (demand > SHOAL_ALLOC_DEMAND_MAX)
		return -ERANGE;
	/* the worker answers when handle() returns, which publishes it */
	rc = ipc_round_set_value(ctx->seg, m->ref, (uint32_t)demand);
	/*
	 * A redelivered ask whose first delivery reported: the first demand stands, and the
	 * handler doing again what it did must not fail for it (it would be restarted).
	 */
	if (rc == -EALREADY && (m->flags & SHOAL_MSG_REDELIVERED))
		rc = 0;
	return rc;
}

/* See wrk_int.h. A client's thread. */
int wrk_alloc_answer(struct shm_seg *seg, const struct shoal_msg *m, uint64_t demand)
{
	int rc;

	if (!m || !(m->flags & SHOAL_MSG_ROUND) || m->type != SHOAL_T_ALLOC_ASK)
		return -EINVAL;
	if (demand > SHOAL_ALLOC_DEMAND_MAX)
		return -ERANGE;
	rc = ipc_round_set_value(seg, m->ref, (uint32_t)demand);
	if (rc)
		return rc;
	rc = ipc_round_answer(seg, m->ref, false);
	return rc < 0 ? rc : 0;
}

/* --- an agent's rounds, watched by its worker's loop --- */

struct walloc {
	struct ipc_round r;
	shoal_handle_t agent; /* who started it, and gets the result */
	uint64_t ref;	      /* its reference, in the result */
	struct shoal_alloc_ask ask;
	shoal_alloc_policy_fn policy;
	struct shoal_alloc_done *result; /* computed, shares sent: the reply still to post */
	uint32_t result_len;
	bool done;		      /* result (or bare) holds the reply */
	struct shoal_alloc_done bare; /* the counts alone, when result could not be allocated */
};

/* The worker is one thread: its rounds are this process's. */
static struct walloc *allocs;
static uint32_t nallocs, capallocs;
static uint32_t no_record_refs; /* refs of rounds without a record (no members) */

/* See agent.h. A worker's thread, from a callback. */
int shoal_allocate(struct shoal_ctx *ctx, const char *group, const char *resource,
		   uint64_t capacity, shoal_alloc_policy_fn policy, int timeout_ms,
		   uint64_t *ref_out)
{
	struct walloc *wa;
	int rc;

	if (!ctx || !group || timeout_ms <= 0)
		return -EINVAL;
	if (nallocs == capallocs) {
		uint32_t cap = capallocs ? 2 * capallocs : 16;
		struct walloc *n = realloc(allocs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		allocs = n;
		capallocs = cap;
	}
	wa = &allocs[nallocs];
	memset(wa, 0, sizeof(*wa));
	rc = ask_of(resource, capacity, &wa->ask);
	if (rc)
		return rc;
	/* no wait for a full mailbox in a callback: that member counts as unreachable */
	rc = ipc_round_start(ctx->seg, ctx->agent->handle, group, SHOAL_T_ALLOC_ASK, &wa->ask,
			     sizeof(wa->ask), shm_now_ns() + (uint64_t)timeout_ms * 1000000u, 0, 0,
			     &wa->r);
	if (rc)
		return rc;
	wa->r.hist_op = SHM_HIST_ALLOC;
	wa->agent = ctx->agent->handle;
	wa->policy = policy ? policy : shoal_alloc_proportional;
	if (wa->r.slot != UINT32_MAX)
		wa->ref = shm_round_ref(wa->r.slot, wa->r.gen, 0);
	else
		/* apart from the broadcasts' (0xffff0000) of the same worker */
		wa->ref = ((uint64_t)++no_record_refs << 32) | 0xfffe0000u;
	nallocs++;
	if (ref_out)
		*ref_out = wa->ref;
	return 0;
}

/* See wrk_int.h. The worker's thread. */
bool wrk_allocs_any_done(const struct shm_seg *seg)
{
	for (uint32_t i = 0; i < nallocs; i++)
		if (allocs[i].done || ipc_round_is_complete(seg, &allocs[i].r))
			return true;
	return false;
}

/* Compute wa's result (the round is over): shares sent, the reply built, the record freed. */
static void walloc_finish(struct shm_seg *seg, struct walloc *wa, uint64_t now)
{
	uint32_t max = shm_hdr(seg)->cfg.max_msg, listed = 0;
	struct alloc_sum sum;
	struct shoal_alloc_done d;
	int rc;

	rc = alloc_finish(seg, &wa->r, wa->agent, &wa->ask, wa->policy, &sum);
	ipc_round_end(seg, &wa->r);
	d = (struct shoal_alloc_done){.ref = wa->ref,
				      .rc = rc		 ? rc
					    : sum.absent ? -ETIMEDOUT
							 : 0,
				      .members = sum.members,
				      .reported = sum.reported,
				      .dead = sum.dead,
				      .absent = sum.absent,
				      .nodemand = sum.nodemand,
				      .delivered = sum.delivered,
				      .capacity = wa->ask.capacity,
				      .demand = sum.demand,
				      .allocated = sum.allocated,
				      .elapsed_ns = now - wa->r.start_ns};
	if (rc != -ENOMEM && max > sizeof(d))
		listed = (max - (uint32_t)sizeof(d)) / (uint32_t)sizeof(struct shoal_alloc_member);
	if (listed > sum.members)
		listed = sum.members;
	d.listed = listed;
	wa->result_len = (uint32_t)sizeof(d) + listed * (uint32_t)sizeof(struct shoal_alloc_member);
	wa->done = true;
	wa->result = malloc(wa->result_len);
	if (!wa->result) {
		d.listed = 0;
		wa->bare = d;
		wa->result_len = sizeof(d);
		return;
	}
	memcpy(wa->result, &d, sizeof(d));
	memcpy(wa->result + 1, ab.tab, (size_t)listed * sizeof(struct shoal_alloc_member));
}

static void walloc_free_result(struct walloc *wa)
{
	free(wa->result);
	wa->result = NULL;
	wa->done = false;
}

/* See wrk_int.h. The worker's thread. */
uint32_t wrk_allocs_poll(struct shm_seg *seg, uint64_t now, uint64_t *next_deadline)
{
	uint64_t next = UINT64_MAX;
	uint32_t posted = 0;

	for (uint32_t i = 0; i < nallocs;) {
		struct walloc *wa = &allocs[i];
		int rc;

		if (!wa->done) {
			if (!ipc_round_is_complete(seg, &wa->r) && now < wa->r.deadline_ns) {
				if (wa->r.deadline_ns < next)
					next = wa->r.deadline_ns;
				i++;
				continue;
			}
			walloc_finish(seg, wa, now);
		}
		rc = ipc_send(seg, wa->agent, SHOAL_HANDLE_NONE, SHOAL_T_ALLOC_DONE, IPC_F_REPLY,
			      wa->ref, wa->result ? (void *)wa->result : &wa->bare, wa->result_len,
			      0);
		if (rc == -EAGAIN) {
			/* its mailbox is full: this loop drains it, the next poll posts */
			next = now;
			i++;
			continue;
		}
		/* posted, or the agent is gone for good: either way the round is over */
		posted += rc == 0;
		walloc_free_result(wa);
		allocs[i] = allocs[--nallocs];
	}
	*next_deadline = next;
	return posted;
}

/* See wrk_int.h. The worker's thread, as it stops in order. */
void wrk_allocs_end_all(struct shm_seg *seg)
{
	for (uint32_t i = 0; i < nallocs; i++) {
		if (!allocs[i].done)
			ipc_round_end(seg, &allocs[i].r);
		walloc_free_result(&allocs[i]);
	}
	nallocs = 0;
}
