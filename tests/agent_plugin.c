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

/* What shoal_agent_types_load() looks for. */
const struct shoal_agent_type *const shoal_agent_types[] = {
	&upper_type, &spawner_type, &pooler_type, &rounder_type, &varwatcher_type, NULL};
