/*
 * Consensus proposals: a round of votes (a VOTE round record, ipc/round.c) on a new value for
 * a variable, committed by compare-and-set on the version read when the proposal started.
 *
 * Order of claims, so that a proposer killed at any instruction leaves nothing held: the
 * round record first (its owner word is the proposer's claim tag: the repair of its slot
 * frees it), then the variable's proposal claim, a CAS 0 -> the round's ref, which is stale
 * as soon as that record is free, reused or owned by a dead process (shm/var.c clears such a
 * claim wherever it finds it: a second proposer, the repair). The value changes only by the
 * commit, one shm_var_update(), so a killed proposer leaves it old or new. Finishing runs the
 * other way: commit, release the claim, free the record.
 *
 * One open proposal per variable: a second proposer finds the claim taken and is refused at
 * once (-EBUSY), before any message is sent; and a plain update during the round makes the
 * commit's compare-and-set fail (a conflict too), so of any two proposals on one variable at
 * most the first to claim commits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc_int.h"
#include "shm/round.h"
#include "shm/var.h"

struct claim_ctx {
	struct shm_seg *seg;
	struct ipc_proposal *p;
	struct ipc_vote_msg *msg;
	uint64_t *version;
};

/* Between the record's claim and its publication: take the variable's proposal claim. */
static int claim_var(void *arg, uint32_t slot, uint32_t gen)
{
	struct claim_ctx *c = arg;
	uint64_t ref = shm_round_ref(slot, gen, 0), held;
	int r = shm_var_propose_claim(c->seg, c->p->var, ref, c->version, &held);

	if (r)
		return r;
	c->p->claim = ref;
	c->p->base = *c->version;
	c->msg->version = *c->version;
	return 0;
}

static bool is_rule_valid(uint32_t rule, uint32_t quorum)
{
	return rule == SHOAL_RULE_MAJORITY || rule == SHOAL_RULE_UNANIMOUS ||
	       (rule == SHOAL_RULE_QUORUM && quorum >= 1);
}

/* See ipc.h. */
int ipc_propose_start(struct shm_seg *seg, shoal_handle_t owner, const char *var, uint32_t type,
		      const void *data, uint32_t len, const char *group, uint32_t rule,
		      uint32_t quorum, uint64_t deadline_ns, uint64_t user_ref, int send_timeout_ms,
		      void *buf, uint64_t *version, struct ipc_proposal *out)
{
	struct ipc_vote_msg *msg = buf;
	struct claim_ctx c = {.seg = seg, .p = out, .msg = msg, .version = version};
	static __thread uint8_t vbuf[SHM_VAR_BYTES_MAX];
	struct shm_var_val cur = {.buf = vbuf, .cap = sizeof(vbuf)};
	uint32_t vtype;
	int r;

	memset(out, 0, sizeof(*out));
	out->r.slot = UINT32_MAX;
	if (!var || !group || !buf || !version || !is_rule_valid(rule, quorum) || (len && !data))
		return -EINVAL;
	r = shm_var_lookup(seg, 0, var, strlen(var), &out->var);
	if (r)
		return r;
	if (shm_var_info(seg, out->var, NULL, NULL, 0, &vtype))
		return -ENOENT;
	if (type != vtype)
		return -EPROTOTYPE;
	if (type == SHOAL_VAR_BLOB ? len > shm_var_bytes(seg) : len != 8)
		return -EMSGSIZE;
	/* the version now, for a group of no members (no claim is taken then) */
	if (!shm_var_read(seg, out->var, &cur))
		*version = cur.version;
	*msg = (struct ipc_vote_msg){.var = out->var,
				     .version = cur.version,
				     .proposer = owner,
				     .rule = rule,
				     .quorum = quorum,
				     .type = type,
				     .len = len};
	snprintf(msg->name, sizeof(msg->name), "%s", var);
	if (len)
		memcpy(msg + 1, data, len);
	out->proposer = owner;
	out->rule = rule;
	out->quorum = quorum;
	out->type = type;
	out->len = len;
	out->value = data;
	out->base = cur.version;
	r = ipc_round_start_kind(seg, owner, group, IPC_T_VOTE, IPC_F_SYSTEM, msg,
				 (uint32_t)sizeof(*msg) + len, deadline_ns, user_ref,
				 send_timeout_ms, SHM_ROUND_VOTE, claim_var, &c, &out->r);
	if (r)
		out->r.slot = UINT32_MAX;
	return r;
}

/* Does the tally meet the rule? members counts the dead and absent as not yes. */
static bool is_rule_met(const struct ipc_proposal *p, uint32_t members, uint32_t yes)
{
	switch (p->rule) {
	case SHOAL_RULE_MAJORITY:
		return members && 2u * yes > members;
	case SHOAL_RULE_UNANIMOUS:
		return members && yes == members;
	default:
		return yes >= p->quorum;
	}
}

/* Outcome notes per batched send. */
#define PROPOSE_NOTE_CHUNK 32u

/*
 * Send decided proposal p's outcome (res) to every subscription covering its variable: one
 * note each, never coalesced, never waiting (a full mailbox refuses its note; nothing is owed:
 * the variable itself says what became of it). The decider, before it frees the claim.
 */
static void tell_subscribers(struct shm_seg *seg, const struct ipc_proposal *p,
			     const struct shoal_proposal_result *res)
{
	struct shm_var_note subs[PROPOSE_NOTE_CHUNK];
	struct ipc_out_ref out[PROPOSE_NOTE_CHUNK];
	struct shoal_consensus_note n = {.var = p->var,
					 .version = res->version,
					 .proposer = p->proposer,
					 .outcome = res->outcome,
					 .type = p->type,
					 .members = res->members,
					 .yes = res->yes,
					 .no = res->no,
					 .dead = res->dead,
					 .absent = res->absent,
					 .len = p->len};
	int errs[PROPOSE_NOTE_CHUNK];
	uint32_t cursor = 0, stride;
	uint8_t *buf = NULL;
	int k;

	/* the value rides along if it fits in a message; else the subscriber reads it */
	if (sizeof(n) + p->len <= shm_hdr(seg)->cfg.max_msg)
		n.value_len = p->len;
	stride = ((uint32_t)sizeof(n) + n.value_len + 7u) & ~7u;
	while ((k = shm_var_sub_list(seg, p->var, &cursor, subs, PROPOSE_NOTE_CHUNK)) > 0) {
		if (!buf && !(buf = malloc((size_t)PROPOSE_NOTE_CHUNK * stride)))
			return; /* no memory: the outcome is the proposer's alone */
		for (int i = 0; i < k; i++) {
			uint8_t *b = buf + (size_t)i * stride;

			n.sub = subs[i].sub;
			memcpy(b, &n, sizeof(n));
			if (n.value_len)
				memcpy(b + sizeof(n), p->value, n.value_len);
			out[i] = (struct ipc_out_ref){.to = subs[i].who,
						      .ref = subs[i].sub,
						      .type = IPC_T_CONSENSUS,
						      .flags = IPC_F_SYSTEM,
						      .len = (uint32_t)sizeof(n) + n.value_len,
						      .data = b};
		}
		ipc_send_each(seg, p->proposer, out, (uint32_t)k, errs);
		if ((uint32_t)k < PROPOSE_NOTE_CHUNK)
			break;
	}
	free(buf);
}

/* See ipc.h. The owner. */
int ipc_propose_finish(struct shm_seg *seg, struct ipc_proposal *p, uint64_t wait_ns,
		       struct shoal_proposal_result *res)
{
	bool complete = ipc_round_is_complete(seg, &p->r);
	uint64_t now = shm_now_ns();
	int r;

	res->outcome = 0;
	res->rc = 0;
	res->members = p->r.members;
	res->yes = res->no = res->dead = res->absent = 0;
	res->rsvd = 0;
	for (uint32_t i = 0; i < p->r.members; i++) {
		switch (ipc_round_member(seg, &p->r, i, NULL)) {
		case SHM_ROUND_M_YES:
			res->yes++;
			break;
		case SHM_ROUND_M_NO:
			res->no++;
			break;
		case SHM_ROUND_M_DEAD:
			res->dead++;
			break;
		default:
			res->absent++;
			break;
		}
	}
	res->version = p->base;
	if (is_rule_met(p, p->r.members, res->yes) && p->claim) {
		struct shm_var_op op = {.id = p->var,
					.type = p->type,
					.len = p->len,
					.data = p->value,
					.expect = p->base};
		uint64_t cur = p->base;

		r = shm_var_update_wait(seg, &op, 1, p->proposer, wait_ns, &cur, NULL);
		if (r == -EAGAIN)
			return r;
		if (r == 0) {
			res->outcome = SHOAL_PROPOSAL_COMMITTED;
			res->version = p->base + 1;
		} else {
			/* -EBUSY: a writer moved it during the round; else it is gone */
			res->outcome = SHOAL_PROPOSAL_CONFLICT;
			res->rc = r;
			res->version = cur;
		}
	} else if (complete) {
		res->outcome = SHOAL_PROPOSAL_REJECTED;
		res->rc = -ECANCELED;
	} else {
		res->outcome = SHOAL_PROPOSAL_TIMEDOUT;
		res->rc = -ETIMEDOUT;
	}
	res->elapsed_ns = now - p->r.start_ns;
	/* before the claim goes: a later proposal's outcome is never heard before this one's */
	tell_subscribers(seg, p, res);
	ipc_propose_abort(seg, p);
	return 0;
}

/* See ipc.h. The owner. */
void ipc_propose_abort(struct shm_seg *seg, struct ipc_proposal *p)
{
	if (p->claim)
		shm_var_propose_release(seg, p->var, p->claim);
	p->claim = 0;
	ipc_round_end(seg, &p->r);
	p->r.slot = UINT32_MAX;
}
