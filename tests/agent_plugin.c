/*
 * An agent type library for the tests: built as a loadable module, loaded with
 * shoal_agent_types_load(). Type "upper" answers a call with its payload upper-cased and
 * the slot of its own handle (shoal_self(), resolved from the host at load time), and
 * notes its terminate in a file when asked (upper_terminate()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal/agent.h"
#include "shoal/term.h"
#include "tests/plugin_upper.h"

/*
 * With SHOAL_TEST_TERMINATE_LOG set, append "terminate <slot> <reason>" to that file: the
 * tests read it to see that an orderly stop ran every agent's terminate. One write(2) of
 * one short line with O_APPEND: lines from several workers do not interleave.
 */
static void upper_terminate(struct shoal_ctx *ctx, void *state, int reason)
{
	const char *path = getenv("SHOAL_TEST_TERMINATE_LOG");
	char line[64];
	int fd, n;

	(void)state;
	if (!path)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "terminate %u %d\n", shoal_handle_slot(shoal_self(ctx)),
		     reason);
	if (n > 0 && write(fd, line, (size_t)n) != n)
		n = -1;
	close(fd);
}

static const struct shoal_agent_type upper_type = {
	.name = "upper",
	.init = upper_init,
	.handle = upper_handle,
	.handle_call = upper_call,
	.terminate = upper_terminate,
};

/*
 * Type "spawner": a cast "spawn NAME" asks the supervisor for an echo agent NAME, "stop
 * NAME" for its stop (shoal_spawn_async(), shoal_stop_async()); the answers come back to
 * handle. A call answers "<answers> <last rc> <last handle's slot> <refs matched>".
 */
struct spawner {
	uint64_t ref;	  /* the request in flight */
	uint32_t answers; /* answers received */
	uint32_t matched; /* of those, with the reference of the request in flight */
	int32_t rc;	  /* the last answer's verdict */
	uint32_t slot;	  /* the last answer's handle's slot */
};

static int spawner_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = calloc(1, sizeof(struct spawner));
	return *state ? 0 : -ENOMEM;
}

static int spawner_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct spawner *s = state;
	char name[SHOAL_NAME_MAX + 1];
	uint32_t n;

	if (m->flags & SHOAL_MSG_REPLY) {
		struct shoal_ctl_result r;

		if (m->type != SHOAL_T_CTL || m->len != sizeof(r))
			return 0;
		memcpy(&r, m->data, sizeof(r));
		s->answers++;
		s->matched += m->ref == s->ref;
		s->rc = r.rc;
		s->slot = shoal_handle_slot(r.handle);
		return 0;
	}
	if (m->len < 6 || m->len - 6 > SHOAL_NAME_MAX)
		return 0;
	n = m->len - 6;
	memcpy(name, (const char *)m->data + 6, n);
	name[n] = 0;
	/* a request that could not go out is noted as its answer would be */
	if (!memcmp(m->data, "spawn ", 6))
		s->rc = shoal_spawn_async(ctx, "echo", name, SHOAL_WHERE_ANY, 0, &s->ref);
	else if (!memcmp(m->data, "stop  ", 6))
		s->rc = shoal_stop_async(ctx, name, SHOAL_HANDLE_NONE, &s->ref);
	return 0;
}

static int spawner_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
			uint32_t cap, uint32_t *reply_len)
{
	struct spawner *s = state;
	int n = snprintf(reply, cap, "%u %d %u %u", s->answers, s->rc, s->slot, s->matched);

	(void)ctx, (void)m;
	*reply_len = n < 0 ? 0 : (uint32_t)n < cap ? (uint32_t)n : cap;
	return 0;
}

static void spawner_terminate(struct shoal_ctx *ctx, void *state, int reason)
{
	(void)ctx, (void)reason;
	free(state);
}

static const struct shoal_agent_type spawner_type = {
	.name = "spawner",
	.init = spawner_init,
	.handle = spawner_handle,
	.handle_call = spawner_call,
	.terminate = spawner_terminate,
};

/*
 * Type "pooler": a cast "out POOL" checks an agent of POOL out (shoal_pool_checkout(),
 * timeout 2 s: the grant or the timeout comes back to handle), "in POOL" checks it in. A
 * call answers "<grants> <timeouts> <held handle's slot or -1> <last rc>".
 */
struct pooler {
	uint64_t ref;	     /* the queued checkout */
	shoal_handle_t held; /* what we hold, 0 none */
	uint32_t grants, timeouts;
	int32_t rc;
};

static int pooler_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = calloc(1, sizeof(struct pooler));
	return *state ? 0 : -ENOMEM;
}

static int pooler_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct pooler *p = state;
	char pool[SHOAL_POOL_NAME_MAX + 1];
	uint32_t n;

	if (m->flags & SHOAL_MSG_REPLY) {
		struct shoal_pool_grant g;

		if (m->ref != p->ref)
			return 0;
		if (m->flags & SHOAL_MSG_ERROR) {
			p->timeouts += m->type == ETIMEDOUT;
		} else if (m->type == SHOAL_T_POOL && m->len == sizeof(g)) {
			memcpy(&g, m->data, sizeof(g));
			p->held = g.agent;
			p->grants++;
		}
		return 0;
	}
	if (m->len < 4 || m->len - 4 > SHOAL_POOL_NAME_MAX)
		return 0;
	n = m->len - 4;
	memcpy(pool, (const char *)m->data + 4, n);
	pool[n] = 0;
	if (!memcmp(m->data, "out ", 4)) {
		p->rc = shoal_pool_checkout(ctx, pool, 2000, &p->held, &p->ref);
		p->grants += p->rc == 0;
	} else if (!memcmp(m->data, "in  ", 4) && p->held) {
		p->rc = shoal_pool_checkin(ctx, pool, p->held);
		p->held = 0;
	}
	return 0;
}

static int pooler_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		       uint32_t cap, uint32_t *reply_len)
{
	struct pooler *p = state;
	int n = snprintf(reply, cap, "%u %u %d %d", p->grants, p->timeouts,
			 p->held ? (int)shoal_handle_slot(p->held) : -1, p->rc);

	(void)ctx, (void)m;
	*reply_len = n < 0 ? 0 : (uint32_t)n < cap ? (uint32_t)n : cap;
	return 0;
}

static const struct shoal_agent_type pooler_type = {
	.name = "pooler",
	.init = pooler_init,
	.handle = pooler_handle,
	.handle_call = pooler_call,
	.terminate = spawner_terminate, /* frees the state */
};

/*
 * Type "rounder": a call "<timeout ms> <group>" starts a broadcast with acknowledgements
 * (shoal_broadcast_acked(), message type 77) and is answered when the round's result comes
 * back to handle: the reply is that struct shoal_round_done. A call that cannot start one
 * is answered with the error. Other messages (it may be a member itself) are ignored.
 */
struct rounder {
	struct shoal_msg call; /* the call waiting for its round's result (data unused) */
	uint64_t ref;	       /* that round's reference */
	int pending;
};

static int rounder_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = calloc(1, sizeof(struct rounder));
	return *state ? 0 : -ENOMEM;
}

static int rounder_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct rounder *s = state;

	if ((m->flags & SHOAL_MSG_SYSTEM) && m->type == SHOAL_T_ROUND && s->pending &&
	    m->ref == s->ref && m->len == sizeof(struct shoal_round_done)) {
		s->pending = 0;
		shoal_reply(ctx, &s->call, m->data, m->len);
	}
	if ((m->flags & SHOAL_MSG_SYSTEM) && m->type == SHOAL_T_PROPOSAL && s->pending &&
	    m->ref == s->ref && m->len == sizeof(struct shoal_proposal_result)) {
		s->pending = 0;
		shoal_reply(ctx, &s->call, m->data, m->len);
	}
	if ((m->flags & SHOAL_MSG_REPLY) && s->pending == 2 && m->ref == s->ref) {
		char out[64];
		int n = (m->flags & SHOAL_MSG_ERROR)
				? snprintf(out, sizeof(out), "err %u", m->type)
				: snprintf(out, sizeof(out), "ok %.*s",
					   (int)(m->len < 32 ? m->len : 32), (const char *)m->data);

		s->pending = 0;
		shoal_reply(ctx, &s->call, out, n < 0 ? 0 : (uint32_t)n);
	}
	return 0;
}

/*
 * A rounder's call "P <timeout ms> <group> <variable> <int value> <rule> <quorum>": propose
 * (shoal_propose()) and answer with the struct shoal_proposal_result that comes back; one
 * that cannot start is answered at once with outcome 0 and rc its error.
 */
static int rounder_propose(struct shoal_ctx *ctx, struct rounder *s, const struct shoal_msg *m,
			   const char *buf, void *reply, uint32_t cap, uint32_t *reply_len)
{
	char group[64], var[64];
	long long value;
	unsigned rule, quorum;
	int timeout, rc;
	int64_t v;

	if (sscanf(buf, "P %d %63s %63s %lld %u %u", &timeout, group, var, &value, &rule,
		   &quorum) != 6)
		return -EINVAL;
	/*
	 * A request redelivered after our worker died mid-proposal is not proposed again:
	 * the tests of a killed proposer expect its round to end with it (a real agent may
	 * well propose again: delivery is at least once)
	 */
	if (m->flags & SHOAL_MSG_REDELIVERED) {
		struct shoal_proposal_result r = {.rc = -ECANCELED};

		if (cap < sizeof(r))
			return -EMSGSIZE;
		memcpy(reply, &r, sizeof(r));
		*reply_len = sizeof(r);
		return 0;
	}
	v = (int64_t)value;
	rc = shoal_propose(ctx, var, SHOAL_VAR_INT, &v, sizeof(v), group, rule, quorum, timeout,
			   &s->ref);
	if (rc < 0) {
		struct shoal_proposal_result r = {.rc = rc};

		if (cap < sizeof(r))
			return -EMSGSIZE;
		memcpy(reply, &r, sizeof(r));
		*reply_len = sizeof(r);
		return 0;
	}
	s->call = *m;
	s->call.data = NULL;
	s->pending = 1;
	*reply_len = SHOAL_REPLY_LATER;
	return 0;
}

static int rounder_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
			uint32_t cap, uint32_t *reply_len)
{
	struct rounder *s = state;
	char buf[80];
	int timeout, off = 0, rc;

	(void)reply, (void)cap;
	if (m->len >= sizeof(buf) || s->pending)
		return -EINVAL;
	memcpy(buf, m->data, m->len);
	buf[m->len] = 0;
	if (buf[0] == 'P')
		return rounder_propose(ctx, s, m, buf, reply, cap, reply_len);
	if (buf[0] == 'R' || buf[0] == 'C') {
		/* "R <node> <name> <payload>": a call through a remote handle (shoal_remote(),
		 * shoal_call_async()), answered "ok <reply>" or "err <errno>", or "start <rc>" at
		 * once; "C ...": a cast, answered "cast <rc>" */
		char node[64], name[64];
		shoal_handle_t h;

		if (sscanf(buf + 1, " %63s %63s %n", node, name, &off) != 2 || !off)
			return -EINVAL;
		off += 1;
		rc = shoal_remote(ctx, node, name, &h);
		if (rc == 0 && buf[0] == 'C')
			rc = shoal_cast(ctx, h, 0, buf + off, (uint32_t)strlen(buf + off));
		if (rc == 0 && buf[0] == 'R')
			rc = shoal_call_async(ctx, h, 1, buf + off, (uint32_t)strlen(buf + off),
					      &s->ref);
		if (rc < 0 || buf[0] == 'C') {
			int n = snprintf(reply, cap, "%s %d", buf[0] == 'C' ? "cast" : "start", rc);

			*reply_len = n < 0 ? 0 : (uint32_t)n;
			return 0;
		}
		s->call = *m;
		s->call.data = NULL;
		s->pending = 2;
		*reply_len = SHOAL_REPLY_LATER;
		return 0;
	}
	if (buf[0] == 'T') {
		/* "T <timeout ms> <arg>": a tasker task (shoal_task_run()); answered "ok <result>"
		 * or "err <errno>", or "start <rc>" at once if it cannot start */
		if (sscanf(buf, "T %d %n", &timeout, &off) != 1 || !off)
			return -EINVAL;
		rc = shoal_task_run(ctx, "tasker", buf + off, (uint32_t)strlen(buf + off), timeout,
				    &s->ref);
		if (rc < 0) {
			int n = snprintf(reply, cap, "start %d", rc);

			*reply_len = n < 0 ? 0 : (uint32_t)n;
			return 0;
		}
		s->call = *m;
		s->call.data = NULL;
		s->pending = 2;
		*reply_len = SHOAL_REPLY_LATER;
		return 0;
	}
	if (sscanf(buf, "%d %n", &timeout, &off) != 1 || !off)
		return -EINVAL;
	rc = shoal_broadcast_acked(ctx, buf + off, 77, "r", 1, timeout, &s->ref);
	if (rc < 0)
		return rc;
	s->call = *m;
	s->call.data = NULL;
	s->pending = 1;
	*reply_len = SHOAL_REPLY_LATER;
	return 0;
}

static const struct shoal_agent_type rounder_type = {
	.name = "rounder",
	.init = rounder_init,
	.handle = rounder_handle,
	.handle_call = rounder_call,
	.terminate = spawner_terminate,
};

/*
 * Type "demander": a member of allocation rounds, and their initiator when called.
 *   cast "demand N": report demand N to the next asks (N < 0: handle asks without a demand);
 *   an ask (SHOAL_T_ALLOC_ASK): counted, answered with the demand (shoal_alloc_demand());
 *   a share (SHOAL_T_ALLOC): counted, kept;
 *   call "state": answered "<asks> <shares> <last share> <share's ref is the last ask's>";
 *   call "alloc <timeout ms> <capacity> <policy> <group>": starts an allocation round
 *   (shoal_allocate()) and is answered with its result (struct shoal_alloc_done and its
 *   members) when it comes back, or with "error <rc>" if it cannot start.
 */
struct demander {
	int64_t demand;	       /* what it reports; < 0: nothing */
	uint32_t asks, shares; /* asks handled, shares received */
	uint64_t share;	       /* the last share */
	uint64_t ask_ref;      /* the last ask's ref */
	int ref_ok;	       /* the last share named the last ask */
	struct shoal_msg call; /* the call waiting for its allocation's result (data unused) */
	uint64_t ref;	       /* that allocation's reference */
	int pending;
};

static int demander_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct demander *d = calloc(1, sizeof(*d));

	(void)ctx, (void)ckpt, (void)len;
	if (!d)
		return -ENOMEM;
	d->demand = -1;
	*state = d;
	return 0;
}

static int demander_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct demander *d = state;
	struct shoal_alloc_share sh;
	char buf[32];

	if ((m->flags & SHOAL_MSG_REPLY) && m->type == SHOAL_T_ALLOC_DONE && d->pending &&
	    m->ref == d->ref && m->len >= sizeof(struct shoal_alloc_done)) {
		d->pending = 0;
		shoal_reply(ctx, &d->call, m->data, m->len);
		return 0;
	}
	if (m->type == SHOAL_T_ALLOC_ASK && (m->flags & SHOAL_MSG_ROUND)) {
		d->asks++;
		d->ask_ref = m->ref;
		if (d->demand >= 0)
			return shoal_alloc_demand(ctx, m, (uint64_t)d->demand);
		return 0;
	}
	if (m->type == SHOAL_T_ALLOC && m->len == sizeof(sh)) {
		memcpy(&sh, m->data, sizeof(sh));
		d->shares++;
		d->share = sh.share;
		d->ref_ok = sh.ref == d->ask_ref;
		return 0;
	}
	if (m->len > 7 && m->len < sizeof(buf) && !memcmp(m->data, "demand ", 7)) {
		memcpy(buf, m->data, m->len);
		buf[m->len] = 0;
		d->demand = strtoll(buf + 7, NULL, 10);
	}
	return 0;
}

static int demander_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
			 uint32_t cap, uint32_t *reply_len)
{
	struct demander *d = state;
	char buf[128], policy[32], group[64];
	unsigned long long capacity;
	int timeout, n, rc;

	if (m->len == 5 && !memcmp(m->data, "state", 5)) {
		n = snprintf(reply, cap, "%u %u %llu %d", d->asks, d->shares,
			     (unsigned long long)d->share, d->ref_ok);
		*reply_len = n < 0 ? 0 : (uint32_t)n < cap ? (uint32_t)n : cap;
		return 0;
	}
	if (m->len >= sizeof(buf) || d->pending)
		return -EINVAL;
	memcpy(buf, m->data, m->len);
	buf[m->len] = 0;
	if (sscanf(buf, "alloc %d %llu %31s %63s", &timeout, &capacity, policy, group) != 4)
		return -EINVAL;
	rc = shoal_allocate(ctx, group, "slots", capacity, shoal_alloc_policy_find(policy), timeout,
			    &d->ref);
	if (rc < 0) {
		/* answered, not failed: a failed callback would restart it, losing its demand */
		n = snprintf(reply, cap, "error %d", rc);
		*reply_len = n < 0 ? 0 : (uint32_t)n < cap ? (uint32_t)n : cap;
		return 0;
	}
	d->call = *m;
	d->call.data = NULL;
	d->pending = 1;
	*reply_len = SHOAL_REPLY_LATER;
	return 0;
}

static const struct shoal_agent_type demander_type = {
	.name = "demander",
	.init = demander_init,
	.handle = demander_handle,
	.handle_call = demander_call,
	.terminate = spawner_terminate,
};

/*
 * Type "voter" (agent ABI version 3): an agent registered as "v-<i>" votes yes on an int
 * value at most 10 * i (so a proposal of 25 gets yes from v-3 and up), yes on a value of
 * another type, and no on anything proposed for a variable whose name starts with "nay"
 * (with a reason). Its casts and calls are ignored.
 */
struct voter {
	int idx; /* i of its name v-<i>, -1 until looked up */
};

static int voter_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct voter *v = calloc(1, sizeof(*v));

	(void)ctx, (void)ckpt, (void)len;
	if (!v)
		return -ENOMEM;
	v->idx = -1;
	*state = v;
	return 0;
}

static int voter_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state, (void)m;
	return 0;
}

static int voter_vote(struct shoal_ctx *ctx, void *state, const struct shoal_proposal *p,
		      char *reason, uint32_t cap)
{
	struct voter *v = state;
	int64_t value;

	if (!strncmp(p->name, "nay", 3)) {
		snprintf(reason, cap, "variables named nay* are not to change");
		return 0;
	}
	if (p->type != SHOAL_VAR_INT || p->len != sizeof(value))
		return 1;
	for (int i = 0; v->idx < 0 && i < 64; i++) {
		char name[16];
		shoal_handle_t h;

		snprintf(name, sizeof(name), "v-%d", i);
		if (!shoal_lookup(ctx, name, &h) && h == shoal_self(ctx))
			v->idx = i;
	}
	memcpy(&value, p->data, sizeof(value));
	if (v->idx >= 0 && value <= 10 * (int64_t)v->idx)
		return 1;
	snprintf(reason, cap, "%lld is more than %d", (long long)value, 10 * v->idx);
	return 0;
}

static const struct shoal_agent_type voter_type = {
	.name = "voter",
	.init = voter_init,
	.handle = voter_handle,
	.terminate = spawner_terminate, /* frees the state */
	.vote = voter_vote,
};

/*
 * Type "varwatcher": a call "sub NAME" subscribes it to variable NAME (answered "<rc>"); on
 * each notification (SHOAL_T_VAR) it reads the variable, as a subscriber does. A call "get"
 * answers "<notifications> <last value> <last version>".
 */
struct varwatcher {
	uint32_t notes;
	int64_t value;
	uint64_t version;
};

static int varwatcher_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = calloc(1, sizeof(struct varwatcher));
	return *state ? 0 : -ENOMEM;
}

static int varwatcher_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct varwatcher *s = state;
	struct shoal_var_note n;
	struct shoal_var_value v = {0};

	if (!(m->flags & SHOAL_MSG_SYSTEM) || m->type != SHOAL_T_VAR || m->len != sizeof(n))
		return 0;
	memcpy(&n, m->data, sizeof(n));
	s->notes++;
	if (shoal_var_read(ctx, n.var, &v) == 0) {
		s->value = v.num.i;
		s->version = v.version;
	}
	return 0;
}

static int varwatcher_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m,
			   void *reply, uint32_t cap, uint32_t *reply_len)
{
	struct varwatcher *s = state;
	char buf[80];
	uint64_t ref;
	int n;

	if (m->len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, m->data, m->len);
	buf[m->len] = 0;
	if (!strncmp(buf, "sub ", 4))
		n = snprintf(reply, cap, "%d", shoal_var_subscribe(ctx, buf + 4, 0, &ref));
	else
		n = snprintf(reply, cap, "%u %lld %llu", s->notes, (long long)s->value,
			     (unsigned long long)s->version);
	*reply_len = n < 0 ? 0 : (uint32_t)n < cap ? (uint32_t)n : cap;
	return 0;
}

static const struct shoal_agent_type varwatcher_type = {
	.name = "varwatcher",
	.init = varwatcher_init,
	.handle = varwatcher_handle,
	.handle_call = varwatcher_call,
	.terminate = spawner_terminate, /* frees the state */
};

/*
 * Type "tasker": a task agent (shoal_client_task_run(), shoal_task_run()). Its one call:
 *   "sq N": answered N * N in decimal, then it stops itself;
 *   "fail": fails with -EDOM (the caller's error), then stops itself;
 *   "hang": never answered, never stopped (the supervisor ends it at the deadline, or when
 *   its worker dies).
 */
static int tasker_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = NULL;
	return 0;
}

static int tasker_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state, (void)m;
	return 0;
}

static int tasker_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		       uint32_t cap, uint32_t *reply_len)
{
	char buf[32];
	long long v;
	int n;

	(void)state;
	if (m->type != SHOAL_T_TASK || m->len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, m->data, m->len);
	buf[m->len] = 0;
	if (!strcmp(buf, "hang")) {
		*reply_len = SHOAL_REPLY_LATER;
		return 0;
	}
	shoal_stop_self(ctx);
	if (sscanf(buf, "sq %lld", &v) != 1)
		return -EDOM;
	n = snprintf(reply, cap, "%lld", v * v);
	*reply_len = n < 0 ? 0 : (uint32_t)n < cap ? (uint32_t)n : cap;
	return 0;
}

static const struct shoal_agent_type tasker_type = {
	.name = "tasker",
	.init = tasker_init,
	.handle = tasker_handle,
	.handle_call = tasker_call,
};

/*
 * "termy": answers a call with an Erlang term built with shoal/term.h and marked
 * shoal_reply_as_term(): {ok, Req} for a binary request, {ok, {N, Atom}} for a request
 * that is the term {N, Atom} (an integer and an atom, read back with the reader),
 * {ok, #{count => N, sum => S}} for a proper list of integers, {ok, Keys} (a list) for a
 * map with atom keys, and {error, badarg} for anything else.
 */

/* A proper list of integers (a string of bytes too): its count and sum; false otherwise. */
static bool termy_ints(struct shoal_term_in *in, int64_t *count, int64_t *sum)
{
	const unsigned char *s;
	uint32_t n, len;
	int64_t v;

	*count = *sum = 0;
	if (shoal_term_get_string(in, (const void **)&s, &len) == 0) {
		for (uint32_t i = 0; i < len; i++)
			*sum += s[i];
		*count = len;
		return shoal_term_next(in) == -ENODATA;
	}
	if (shoal_term_get_list(in, &n))
		return false;
	for (uint32_t i = 0; i < n; i++) {
		if (shoal_term_get_int(in, &v))
			return false;
		*sum += v;
	}
	*count = n;
	return (n == 0 || shoal_term_get_nil(in) == 0) && shoal_term_next(in) == -ENODATA;
}

/* A map with atom keys: {ok, Keys}; false for anything else. */
static bool termy_keys(struct shoal_term_in *in, struct shoal_term_out *o)
{
	char atom[256];
	uint32_t n;

	if (shoal_term_get_map(in, &n))
		return false;
	shoal_term_put_tuple(o, 2);
	shoal_term_put_atom(o, "ok");
	shoal_term_put_list(o, n);
	for (uint32_t i = 0; i < n; i++) {
		if (shoal_term_get_atom(in, atom, sizeof(atom)) || shoal_term_skip(in))
			return false;
		shoal_term_put_atom(o, atom);
	}
	if (n)
		shoal_term_put_nil(o);
	return true;
}
static int termy_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		      uint32_t cap, uint32_t *reply_len)
{
	struct shoal_term_out o;
	struct shoal_term_in in;
	uint32_t arity;
	int64_t n, sum;
	char atom[64];
	int kind = -1;

	(void)state;
	if ((m->flags & SHOAL_MSG_TERM) && shoal_term_in_init(&in, m->data, m->len) == 0)
		kind = shoal_term_next(&in);
	shoal_term_out_init(&o, reply, cap);
	if (kind == SHOAL_TERM_LIST || kind == SHOAL_TERM_NIL || kind == SHOAL_TERM_STRING) {
		if (termy_ints(&in, &n, &sum)) {
			shoal_term_put_tuple(&o, 2);
			shoal_term_put_atom(&o, "ok");
			shoal_term_put_map(&o, 2);
			shoal_term_put_atom(&o, "count");
			shoal_term_put_int(&o, n);
			shoal_term_put_atom(&o, "sum");
			shoal_term_put_int(&o, sum);
			goto out;
		}
	} else if (kind == SHOAL_TERM_MAP) {
		if (termy_keys(&in, &o))
			goto out;
	}
	/* anything else: start again */
	shoal_term_out_init(&o, reply, cap);
	if (kind == SHOAL_TERM_LIST || kind == SHOAL_TERM_NIL || kind == SHOAL_TERM_STRING ||
	    kind == SHOAL_TERM_MAP) {
		shoal_term_put_tuple(&o, 2);
		shoal_term_put_atom(&o, "error");
		shoal_term_put_atom(&o, "badarg");
	} else if (!(m->flags & SHOAL_MSG_TERM)) {
		shoal_term_put_tuple(&o, 2);
		shoal_term_put_atom(&o, "ok");
		shoal_term_put_binary(&o, m->data, m->len);
	} else if (shoal_term_in_init(&in, m->data, m->len) == 0 &&
		   shoal_term_get_tuple(&in, &arity) == 0 && arity == 2 &&
		   shoal_term_get_int(&in, &n) == 0 &&
		   shoal_term_get_atom(&in, atom, sizeof(atom)) == 0) {
		shoal_term_put_tuple(&o, 2);
		shoal_term_put_atom(&o, "ok");
		shoal_term_put_tuple(&o, 2);
		shoal_term_put_int(&o, n);
		shoal_term_put_atom(&o, atom);
	} else {
		shoal_term_put_tuple(&o, 2);
		shoal_term_put_atom(&o, "error");
		shoal_term_put_atom(&o, "badarg");
	}
out:
	if (o.err)
		return o.err;
	*reply_len = o.len;
	return shoal_reply_as_term(ctx);
}

static const struct shoal_agent_type termy_type = {
	.name = "termy",
	.init = tasker_init,
	.handle = tasker_handle,
	.handle_call = termy_call,
};

/* What shoal_agent_types_load() looks for. */
const struct shoal_agent_type *const shoal_agent_types[] = {
	&upper_type, &spawner_type,    &pooler_type, &rounder_type, &demander_type,
	&voter_type, &varwatcher_type, &tasker_type, &termy_type,   NULL};
