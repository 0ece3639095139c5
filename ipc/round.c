/*
 * Broadcast with acknowledgements: a round sends one message to every member of a group and
 * counts their answers in a round record of the segment (shm/round.c), not in reply messages.
 * Why: an answer is one CAS on a word the member's worker mostly has to itself (members are
 * sorted by worker), where a reply is a whole message into the owner's inbox (claim, write,
 * publish, and the owner's peek and consume per member); and the last answer wakes the owner
 * once, where replies would ring it once per worker batch. A member's worker answers after
 * the member's handler returned; the repair of a dead process answers for the members it
 * hosted (dead), finishes answers it was killed in the middle of, and frees its own rounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc_int.h"
#include "shm/hist.h"
#include "shm/registry.h"
#include "shm/round.h"

#define IPC_ROUND_SPIN_NS 20000u

/* Ring the process hosting the round's owner (a client inbox's process, an agent's worker). */
static void wake_owner(struct shm_seg *seg, uint32_t slot)
{
	struct shm_round *r = shm_round_at(seg, slot);
	/* relaxed: a stale owner (the record reused meanwhile) only costs a spurious ring */
	shoal_handle_t owner = atomic_load_explicit(&r->owner, memory_order_relaxed);
	uint32_t as = shoal_handle_slot(owner);

	if (owner == SHOAL_HANDLE_NONE || as >= shm_hdr(seg)->cfg.max_agents)
		return;
	ipc_ring(seg, ipc_agent_host(seg, as));
}

/* See ipc.h. Any process. */
int ipc_round_answer(struct shm_seg *seg, uint64_t ref, bool dead)
{
	uint32_t slot = (uint32_t)(ref >> 16) & 0xffffu;
	int r = shm_round_answer(seg, slot, (uint32_t)(ref >> 32), (uint32_t)ref & 0xffffu, dead);

	if (r == 1)
		wake_owner(seg, slot);
	return r;
}

/* See ipc.h. The member's consumer, before ipc_round_answer(). */
int ipc_round_set_value(struct shm_seg *seg, uint64_t ref, uint32_t value)
{
	return shm_round_set_value(seg, (uint32_t)(ref >> 16) & 0xffffu, (uint32_t)(ref >> 32),
				   (uint32_t)ref & 0xffffu, value);
}

/* See ipc.h. Any process. */
int ipc_round_vote(struct shm_seg *seg, uint64_t ref, bool yes)
{
	uint32_t slot = (uint32_t)(ref >> 16) & 0xffffu;
	int r = shm_round_vote(seg, slot, (uint32_t)(ref >> 32), (uint32_t)ref & 0xffffu, yes);

	if (r == 1)
		wake_owner(seg, slot);
	return r;
}

/* A member's handle paired with its hosting worker, for the sort. */
struct by_host {
	uint32_t host;
	uint32_t pos; /* position in the group's list: keeps the sort stable */
	shoal_handle_t h;
};

static int by_host_cmp(const void *a, const void *b)
{
	const struct by_host *x = a, *y = b;

	if (x->host != y->host)
		return x->host < y->host ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * The members of group, sorted by host, in buffers of the calling thread that grow to the
 * segment's group_members once (no allocation per round after the first). -ENOMEM, -ENOENT.
 */
static int sorted_members(struct shm_seg *seg, const char *group, shoal_handle_t **out)
{
	static __thread shoal_handle_t *hbuf;
	static __thread struct by_host *sbuf;
	static __thread uint32_t cap;
	uint32_t want = shm_hdr(seg)->cfg.group_members;
	bool sorted = true;
	int n;

	if (want > cap) {
		shoal_handle_t *h = realloc(hbuf, (size_t)want * sizeof(*h));
		struct by_host *s;

		if (!h)
			return -ENOMEM;
		hbuf = h;
		s = realloc(sbuf, (size_t)want * sizeof(*s));
		if (!s)
			return -ENOMEM;
		sbuf = s;
		cap = want;
	}
	n = shm_grp_members(seg, group, strlen(group), hbuf, cap);
	if (n < 0)
		return n;
	if (n > (int)cap)
		n = (int)cap; /* joined meanwhile past group_members: cannot be */
	for (int i = 0; i < n; i++) {
		uint32_t as = shoal_handle_slot(hbuf[i]);

		sbuf[i] = (struct by_host){.host = as < shm_hdr(seg)->cfg.max_agents
							   ? ipc_agent_host(seg, as)
							   : UINT32_MAX,
					   .pos = (uint32_t)i,
					   .h = hbuf[i]};
		if (i && sbuf[i].host < sbuf[i - 1].host)
			sorted = false;
	}
	if (!sorted) {
		qsort(sbuf, (size_t)n, sizeof(*sbuf), by_host_cmp);
		for (int i = 0; i < n; i++)
			hbuf[i] = sbuf[i].h;
	}
	*out = hbuf;
	return n;
}

struct start_ctx {
	struct shm_seg *seg;
	struct ipc_round *r;
};

/* A member the message could not be put for: dead (gone) or unreachable, at once. */
static void start_failed(void *arg, uint32_t i, int err)
{
	struct start_ctx *c = arg;

	(void)err;
	shm_round_answer(c->seg, c->r->slot, c->r->gen, i, true);
}

/* See ipc.h. */
int ipc_round_start(struct shm_seg *seg, shoal_handle_t owner, const char *group, uint32_t type,
		    const void *data, uint32_t len, uint64_t deadline_ns, uint64_t user_ref,
		    int send_timeout_ms, struct ipc_round *out)
{
	return ipc_round_start_kind(seg, owner, group, type, 0, data, len, deadline_ns, user_ref,
				    send_timeout_ms, SHM_ROUND_ACK, NULL, NULL, out);
}

/* See ipc.h. */
int ipc_round_start_kind(struct shm_seg *seg, shoal_handle_t owner, const char *group,
			 uint32_t type, uint32_t flags, const void *data, uint32_t len,
			 uint64_t deadline_ns, uint64_t user_ref, int send_timeout_ms,
			 uint32_t kind, int (*claimed)(void *arg, uint32_t slot, uint32_t gen),
			 void *arg, struct ipc_round *out)
{
	struct start_ctx c = {.seg = seg, .r = out};
	shoal_handle_t *members;
	int n, r;

	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	if (len > shm_hdr(seg)->cfg.max_msg)
		return -EMSGSIZE;
	n = sorted_members(seg, group, &members);
	if (n < 0)
		return n;
	*out = (struct ipc_round){.slot = UINT32_MAX,
				  .members = (uint32_t)n,
				  .start_ns = shm_now_ns(),
				  .deadline_ns = deadline_ns,
				  .hist_op = kind == SHM_ROUND_VOTE ? SHM_HIST_CONSENSUS
								    : SHM_HIST_BROADCAST};
	if (n == 0)
		return 0; /* complete at once: nobody to wait for */
	r = shm_round_claim(seg, &out->slot, &out->gen);
	if (r) {
		out->slot = UINT32_MAX;
		return r;
	}
	if (claimed) {
		r = claimed(arg, out->slot, out->gen);
		if (r) {
			shm_round_free(seg, out->slot, out->gen);
			out->slot = UINT32_MAX;
			return r;
		}
	}
	shm_round_set_kind(seg, out->slot, out->gen, kind);
	shm_round_publish(seg, out->slot, out->gen, owner, members, (uint32_t)n, deadline_ns,
			  user_ref);
	r = ipc_fanout(seg, owner, members, (uint32_t)n, type, IPC_F_ROUND | flags,
		       shm_round_ref(out->slot, out->gen, 0), data, len, send_timeout_ms,
		       start_failed, &c);
	out->sent = r > 0 ? (uint32_t)r : 0;
	return 0;
}

/* See ipc.h. */
bool ipc_round_is_complete(const struct shm_seg *seg, const struct ipc_round *r)
{
	if (r->slot == UINT32_MAX)
		return true;
	return shm_round_is_complete(seg, r->slot, r->gen);
}

struct wait_ctx {
	struct shm_seg *seg;
	const struct ipc_round *r;
};

static bool wait_done(void *arg)
{
	struct wait_ctx *c = arg;

	return ipc_round_is_complete(c->seg, c->r);
}

/* See ipc.h. */
int ipc_round_wait(struct shm_seg *seg, struct ipc_waiter *w, const struct ipc_round *r)
{
	struct wait_ctx c = {.seg = seg, .r = r};

	for (;;) {
		uint64_t now;
		int rc;

		if (ipc_round_is_complete(seg, r))
			return 0;
		now = shm_now_ns();
		if (now >= r->deadline_ns)
			return -ETIMEDOUT;
		rc = ipc_waiter_wait(w, IPC_ROUND_SPIN_NS, r->deadline_ns - now, wait_done, &c,
				     NULL);
		if (rc == -EOWNERDEAD) {
			int gone = shm_seg_gone(seg, shm_seg_liveness(seg, 0));

			return gone ? gone : rc;
		}
		if (rc < 0)
			return rc;
	}
}

/* See ipc.h. */
uint32_t ipc_round_member(const struct shm_seg *seg, const struct ipc_round *r, uint32_t idx,
			  shoal_handle_t *handle)
{
	if (r->slot == UINT32_MAX) {
		if (handle)
			*handle = SHOAL_HANDLE_NONE;
		return SHM_ROUND_M_ABSENT;
	}
	return shm_round_member(seg, r->slot, r->gen, idx, handle);
}

/* See ipc.h. */
bool ipc_round_value(const struct shm_seg *seg, const struct ipc_round *r, uint32_t idx,
		     uint32_t *value)
{
	return r->slot != UINT32_MAX && shm_round_value(seg, r->slot, r->gen, idx, value);
}

/* See ipc.h. */
void ipc_round_end(struct shm_seg *seg, const struct ipc_round *r)
{
	if (r->slot == UINT32_MAX)
		return;
	shm_round_free(seg, r->slot, r->gen);
	/* a round takes microseconds at least: each is timed, start to end */
	shm_hist_add(seg, r->hist_op, shm_now_ns() - r->start_ns);
}

/* Is the member's agent gone for good, or hosted by process slot dead? */
static bool is_lost(const struct shm_seg *seg, shoal_handle_t h, uint32_t dead)
{
	uint32_t as = shoal_handle_slot(h);
	const struct shm_agent *a;
	uint32_t st;

	if (as >= shm_hdr(seg)->cfg.max_agents)
		return true;
	a = shm_agent_at(seg, as);
	/* relaxed: a repair-time look; an agent restarted since answers for itself */
	st = atomic_load_explicit(&a->state, memory_order_relaxed);
	if (st == SHM_AGENT_FREE || st == SHM_AGENT_STOPPED ||
	    atomic_load_explicit(&a->gen, memory_order_relaxed) != shoal_handle_gen(h))
		return true;
	return ipc_agent_host(seg, as) == dead;
}

/* See ipc_int.h. The repairer of process slot dead (ipc_repair_proc()). */
void ipc_round_repair(struct shm_seg *seg, uint32_t dead)
{
	uint32_t max = shm_hdr(seg)->cfg.max_rounds;

	for (uint32_t s = 0; s < max; s++) {
		struct shm_round *r = shm_round_at(seg, s);
		uint64_t ctl;
		uint32_t gen, n;
		bool answered = false;

		if (!r)
			return; /* a segment without rounds */
		/* acquire: as C0 in shm_round_claim(), the claim before its fields */
		ctl = atomic_load_explicit(&r->ctl, memory_order_acquire);
		if (!ctl)
			continue;
		if (SHM_TAG_SLOT(ctl) == dead) {
			/* its owner is dead: nobody waits for this round any more */
			shm_round_free_dead(seg, s, ctl);
			continue;
		}
		gen = atomic_load_explicit(&r->gen, memory_order_relaxed);
		/* R0 as in shm/round.c: the fields after the published state */
		if (atomic_load_explicit(&r->state, memory_order_acquire) != SHM_ROUND_ACTIVE)
			continue;
		n = atomic_load_explicit(&r->members, memory_order_relaxed);
		for (uint32_t i = 0; i < n; i++) {
			shoal_handle_t h;

			if (shm_round_member(seg, s, gen, i, &h) != SHM_ROUND_M_ABSENT)
				continue;
			if (h != SHOAL_HANDLE_NONE && is_lost(seg, h, dead) &&
			    shm_round_answer(seg, s, gen, i, true) == 1)
				answered = true;
		}
		/* an answer the dead process was killed in the middle of, finished */
		if (shm_round_settle(seg, s, gen) == 1 || answered)
			wake_owner(seg, s);
	}
}
