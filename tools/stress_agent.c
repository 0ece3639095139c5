/*
 * shoal stress: the agent types the stress instance runs, registered in the tool's own
 * process before it forks the supervisor (the workers inherit the type table and the books;
 * no plugin to find). Built a second time as the plugin stress.so (-DSTRESS_PLUGIN)
 * for an instance the tool attaches to (--attach-ok): there the books are a file in
 * /dev/shm that the tool names in the variable STRESS_LOG_VAR, mapped on first use:
 *   stress        a stable agent st-NNN: every tick it casts, sends batches, calls
 *                 asynchronously, broadcasts and looks names up; every message it receives
 *                 goes into its pair's books; it fails a callback or allocates past its
 *                 worker's memory cap when the tool asks.
 *   stress_churn  spawned and stopped by clients: answers calls, counts nothing.
 *   stress_pool   the pool's members: answer calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shoal/agent.h"
#include "tools/stress.h"

struct stress_log *stress_log;

/* Bytes a memory-hog request allocates: past any cap the stress instance configures. */
#define STRESS_HOG_BYTES (1ull << 30)

struct st {
	int id;	      /* its number, -1 until the tool has published the handles */
	uint64_t rng; /* xorshift state */
};

static uint64_t rnd(struct st *s)
{
	uint64_t x = s->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return x;
}

#ifdef STRESS_PLUGIN
/*
 * The plugin: map the books the attached tool names in STRESS_LOG_VAR, unless they are
 * mapped already (the same path); a later run's books replace an earlier run's. Only the
 * worker's thread runs callbacks, so no lock.
 */
static void books_find(struct shoal_ctx *ctx)
{
	static char mapped[STRESS_LOG_PATH_MAX];
	char path[STRESS_LOG_PATH_MAX] = "";
	struct shoal_var_value v = {.buf = path, .cap = sizeof(path) - 1};
	struct stress_log *lg;
	int fd;

	if (shoal_var_read_name(ctx, STRESS_LOG_VAR, &v) || v.type != SHOAL_VAR_BLOB ||
	    v.len >= sizeof(path) || !v.len)
		return;
	path[v.len] = '\0';
	if (stress_log && !strcmp(path, mapped))
		return;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	lg = mmap(NULL, sizeof(*lg), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (lg == MAP_FAILED)
		return;
	if (lg->magic != STRESS_MAGIC) {
		munmap(lg, sizeof(*lg));
		return;
	}
	if (stress_log)
		munmap(stress_log, sizeof(*stress_log));
	stress_log = lg;
	snprintf(mapped, sizeof(mapped), "%s", path);
}
#endif

/* This agent's number (st-NNN), found by its handle once the tool has published them. */
static int st_id(struct shoal_ctx *ctx, struct st *s)
{
	shoal_handle_t self;

	if (s->id >= 0)
		return s->id;
#ifdef STRESS_PLUGIN
	books_find(ctx);
#endif
	if (!stress_log)
		return s->id;
	self = shoal_self(ctx);
	for (uint32_t i = 0; i < stress_log->nagents; i++) {
		/* H1: pairs with H0 in cmd_stress(): the handle is the agent's own */
		if (atomic_load_explicit(&stress_log->agent[i].handle, memory_order_acquire) !=
		    self)
			continue;
		s->id = (int)i;
		atomic_fetch_add_explicit(&stress_log->agent[i].inits, 1, memory_order_relaxed);
		/* numbers a dead predecessor had under way are maybe from now on */
		for (uint32_t j = 0; j < stress_log->nagents; j++)
			stress_pair_recover(&stress_log->pair[i][j]);
		break;
	}
	return s->id;
}

static int st_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct st *s = calloc(1, sizeof(*s));

	(void)ckpt, (void)len;
	if (!s)
		return -ENOMEM;
	s->id = -1;
	s->rng = (stress_log ? stress_log->seed : 1) ^ shoal_self(ctx) ^ 0x9e3779b97f4a7c15ull;
	if (!s->rng)
		s->rng = 1;
	*state = s;
	st_id(ctx, s);
	return 0;
}

static void st_terminate(struct shoal_ctx *ctx, void *state, int reason)
{
	(void)ctx, (void)reason;
	free(state);
}

/* Book a received stream or broadcast message; 0, or -EIO when asked to fail. */
static int st_note(struct shoal_ctx *ctx, struct st *s, const struct shoal_msg *m,
		   struct stress_payload *hd)
{
	struct stress_log *lg = stress_log;
	int id = st_id(ctx, s);

	if (id < 0)
		return 0;
	if (stress_payload_check(m->data, m->len, hd) ||
	    (hd->kind == STRESS_K_STREAM && (hd->to != id || hd->from >= STRESS_SENDERS_MAX))) {
		atomic_fetch_add_explicit(&lg->corrupt, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&lg->violations, 1, memory_order_relaxed);
		stress_violation_note(&lg->first, STRESS_V_CORRUPT, hd->from, (uint32_t)id, hd->seq,
				      m->len);
		return 0;
	}
	if (hd->kind == STRESS_K_STREAM) {
		enum stress_note n = stress_pair_note(&lg->pair[hd->from][id], hd->seq,
						      m->flags & SHOAL_MSG_REDELIVERED);

		if (n == STRESS_DUP || n == STRESS_OOO) {
			atomic_fetch_add_explicit(&lg->violations, 1, memory_order_relaxed);
			stress_violation_note(&lg->first,
					      n == STRESS_DUP ? STRESS_V_DUP : STRESS_V_OOO,
					      hd->from, (uint32_t)id, hd->seq,
					      atomic_load_explicit(&lg->pair[hd->from][id].hi,
								   memory_order_relaxed));
		}
	} else if (hd->kind == STRESS_K_BCAST) {
		atomic_fetch_add_explicit(&lg->agent[id].bcast_recv, 1, memory_order_relaxed);
	}
	if (atomic_exchange_explicit(&lg->agent[id].fail_req, 0, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&lg->agent[id].fails, 1, memory_order_relaxed);
		return -EIO;
	}
	return 0;
}

static int st_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct st *s = state;
	struct stress_payload hd = {0};
	int id = st_id(ctx, s);

	if (m->flags & SHOAL_MSG_SYSTEM)
		return 0; /* round and proposal results: not in the books */
	if (m->flags & SHOAL_MSG_REPLY) {
		if (id < 0)
			return 0;
		if (m->flags & SHOAL_MSG_ERROR)
			atomic_fetch_add_explicit(&stress_log->agent[id].async_err, 1,
						  memory_order_relaxed);
		else if (stress_payload_check(m->data, m->len, &hd) || hd.kind != STRESS_K_ECHO)
			stress_violation_note(&stress_log->first, STRESS_V_CALL_REPLY, (uint32_t)id,
					      hd.from, hd.seq, m->len);
		else
			atomic_fetch_add_explicit(&stress_log->agent[id].async_replied, 1,
						  memory_order_relaxed);
		return 0;
	}
	return st_note(ctx, s, m, &hd);
}

static int st_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		   uint32_t cap, uint32_t *reply_len)
{
	struct stress_payload hd = {0};
	int rc = st_note(ctx, state, m, &hd);

	if (rc < 0)
		return rc;
	/* the echo: the request's number, addressed back */
	if (cap >= STRESS_MSG_MAX)
		*reply_len = stress_payload_make(reply, STRESS_K_ECHO, hd.to, hd.from, hd.seq);
	return 0;
}

/* Send one stream message (a cast or an async call) from id to a random stable agent. */
static void st_send_one(struct shoal_ctx *ctx, struct st *s, int id, bool call)
{
	struct stress_log *lg = stress_log;
	uint32_t to = (uint32_t)(rnd(s) % lg->nagents);
	struct stress_pair *p = &lg->pair[id][to];
	shoal_handle_t h = atomic_load_explicit(&lg->agent[to].handle, memory_order_relaxed);
	uint64_t seq = atomic_load_explicit(&p->next, memory_order_relaxed), ref;
	unsigned char buf[STRESS_MSG_MAX];
	uint32_t len = stress_payload_make(buf, STRESS_K_STREAM, (uint16_t)id, (uint16_t)to, seq);
	int rc;

	stress_pair_begin(p, seq);
	rc = call ? shoal_call_async(ctx, h, 1, buf, len, &ref) : shoal_cast(ctx, h, 1, buf, len);
	if (rc == 0)
		stress_pair_commit(p, seq);
	stress_pair_end(p);
	if (rc == 0) {
		if (call)
			atomic_fetch_add_explicit(&lg->agent[id].async_sent, 1,
						  memory_order_relaxed);
	} else if (rc == -EAGAIN) {
		atomic_fetch_add_explicit(&lg->agent[id].backpressure, 1, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&lg->agent[id].send_err, 1, memory_order_relaxed);
	}
}

/* See stress.h. */
void stress_batch_fill(uint32_t id, const uint32_t to[2], uint32_t per, struct shoal_out *out,
		       unsigned char (*buf)[STRESS_MSG_MAX], uint64_t *seqs)
{
	struct stress_log *lg = stress_log;

	for (uint32_t k = 0; k < 2; k++) {
		struct stress_pair *p = &lg->pair[id][to[k]];
		/* relaxed: the sender's own counter (stress.h) */
		uint64_t seq = atomic_load_explicit(&p->next, memory_order_relaxed);

		stress_pair_begin(p, seq + per - 1);
		for (uint32_t i = 0; i < per; i++) {
			uint32_t j = k * per + i;

			seqs[j] = seq + i;
			/* relaxed: a handle the agent's incarnation published; a stale one is
			 * refused by the send (-ESTALE), as any sender's */
			out[j].to = atomic_load_explicit(&lg->agent[to[k]].handle,
							 memory_order_relaxed);
			out[j].type = 1;
			out[j].len = stress_payload_make(buf[j], STRESS_K_STREAM, (uint16_t)id,
							 (uint16_t)to[k], seqs[j]);
			out[j].data = buf[j];
		}
	}
}

/* See stress.h. */
void stress_batch_done(uint32_t id, const uint32_t to[2], uint32_t per, const uint64_t *seqs, int n)
{
	struct stress_log *lg = stress_log;

	for (int j = 0; j < n; j++)
		stress_pair_commit(&lg->pair[id][to[(uint32_t)j / per]], seqs[j]);
	stress_pair_end(&lg->pair[id][to[0]]);
	stress_pair_end(&lg->pair[id][to[1]]);
}

/* A batch: three consecutive numbers to each of two stable agents (--agents is at least 2). */
static void st_send_batch(struct shoal_ctx *ctx, struct st *s, int id)
{
	struct stress_log *lg = stress_log;
	unsigned char buf[6][STRESS_MSG_MAX];
	struct shoal_out out[6];
	uint64_t seqs[6];
	uint32_t to[2];
	int n;

	to[0] = (uint32_t)(rnd(s) % lg->nagents);
	to[1] = (uint32_t)((to[0] + 1 + rnd(s) % (lg->nagents - 1)) % lg->nagents);
	stress_batch_fill((uint32_t)id, to, 3, out, buf, seqs);
	n = shoal_send_batch(ctx, out, 6);
	stress_batch_done((uint32_t)id, to, 3, seqs, n);
	if (n == -EAGAIN || (n >= 0 && n < 6))
		atomic_fetch_add_explicit(&lg->agent[id].backpressure, 1, memory_order_relaxed);
	else if (n < 0)
		atomic_fetch_add_explicit(&lg->agent[id].send_err, 1, memory_order_relaxed);
}

static void st_broadcast(struct shoal_ctx *ctx, int id)
{
	struct stress_agent_rec *a = &stress_log->agent[id];
	unsigned char buf[STRESS_MSG_MAX];
	uint64_t seq = atomic_fetch_add_explicit(&a->bseq, 1, memory_order_relaxed) + 1;
	uint32_t len = stress_payload_make(buf, STRESS_K_BCAST, (uint16_t)id, STRESS_TO_ALL, seq);
	int rc = shoal_broadcast(ctx, STRESS_GROUP, 2, buf, len);

	if (rc > 0)
		atomic_fetch_add_explicit(&a->bcast_sent, (uint64_t)rc, memory_order_relaxed);
}

/* A stable name must resolve to its agent's handle at every moment of the run. */
static void st_lookup(struct shoal_ctx *ctx, struct st *s, int id)
{
	uint32_t j = (uint32_t)(rnd(s) % stress_log->nagents);
	shoal_handle_t want = atomic_load_explicit(&stress_log->agent[j].handle,
						   memory_order_relaxed),
		       got = 0;
	char name[16];

	snprintf(name, sizeof(name), STRESS_AGENT_FMT, j);
	atomic_fetch_add_explicit(&stress_log->agent[id].lookups, 1, memory_order_relaxed);
	if (shoal_lookup(ctx, name, &got) || got != want) {
		atomic_fetch_add_explicit(&stress_log->violations, 1, memory_order_relaxed);
		stress_violation_note(&stress_log->first, STRESS_V_REGISTRY, (uint32_t)id, j, 0,
				      got);
	}
}

static int st_tick(struct shoal_ctx *ctx, void *state)
{
	struct st *s = state;
	struct stress_log *lg = stress_log;
	int id = st_id(ctx, s);

	if (id < 0)
		return 0;
	if (!atomic_load_explicit(&lg->agent[id].joined, memory_order_relaxed)) {
		int rc = shoal_join(ctx, STRESS_GROUP);

		if (rc == 0 || rc == -EEXIST)
			atomic_store_explicit(&lg->agent[id].joined, 1, memory_order_relaxed);
	}
	/* G1: pairs with G0 / G2 in run_workload(): the tool's setup before go, the end */
	if (!atomic_load_explicit(&lg->go, memory_order_acquire) ||
	    atomic_load_explicit(&lg->stopping, memory_order_acquire))
		return 0;
	if (atomic_exchange_explicit(&lg->agent[id].memhog_req, 0, memory_order_relaxed)) {
		/* past the worker's cap (RLIMIT_DATA here): the allocation must be refused */
		char *p = malloc(STRESS_HOG_BYTES);

		/* the pointer escapes: clang otherwise elides a malloc only freed, and the
		 * allocation "succeeds" without being made */
		__asm__ volatile("" : : "g"(p) : "memory");
		if (!p) {
			atomic_fetch_add_explicit(&lg->agent[id].memcap_hits, 1,
						  memory_order_relaxed);
			return -ENOMEM; /* the callback fails: the agent restarts alone */
		}
		if (lg->hog_touch) {
			/*
			 * a cgroup cap: only pages written count. The worker is OOM-killed
			 * in the memset (memory.oom.group); living past it is the miss
			 */
			atomic_fetch_add_explicit(&lg->hog_touched, 1, memory_order_relaxed);
			memset(p, 1, STRESS_HOG_BYTES);
		}
		atomic_fetch_add_explicit(&lg->agent[id].memcap_miss, 1, memory_order_relaxed);
		free(p);
	}
	if (atomic_exchange_explicit(&lg->agent[id].fail_req, 0, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&lg->agent[id].fails, 1, memory_order_relaxed);
		return -EIO;
	}
	for (uint64_t k = 1 + rnd(s) % 3; k > 0; k--) {
		uint32_t op = (uint32_t)(rnd(s) % 100);

		if (op < 45)
			st_send_one(ctx, s, id, false);
		else if (op < 70)
			st_send_batch(ctx, s, id);
		else if (op < 85)
			st_send_one(ctx, s, id, true);
		else if (op < 93)
			st_broadcast(ctx, id);
		else
			st_lookup(ctx, s, id);
	}
	return 0;
}

static const struct shoal_agent_type stress_type = {
	.name = "stress",
	.tick_ms = 2,
	/* injected failures must restart it, never remove it: its books would stop */
	.restart_max = 1000,
	.restart_period_ms = 1,
	.init = st_init,
	.handle = st_handle,
	.handle_call = st_call,
	.terminate = st_terminate,
	.tick = st_tick,
};

static int plain_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = NULL;
	return 0;
}

static int plain_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state, (void)m;
	return 0;
}

static int plain_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		      uint32_t cap, uint32_t *reply_len)
{
	(void)ctx, (void)state;
	*reply_len = m->len < cap ? m->len : cap;
	memcpy(reply, m->data, *reply_len);
	return 0;
}

static const struct shoal_agent_type churn_type = {
	.name = "stress_churn",
	.init = plain_init,
	.handle = plain_handle,
	.handle_call = plain_call,
};

static const struct shoal_agent_type pool_type = {
	.name = "stress_pool",
	.init = plain_init,
	.handle = plain_handle,
	.handle_call = plain_call,
};

#ifdef STRESS_PLUGIN
/* What shoal looks for when it loads stress.so (the one symbol the plugin exports). */
__attribute__((visibility("default"))) const struct shoal_agent_type *const shoal_agent_types[] = {
	&stress_type, &churn_type, &pool_type, NULL};
#endif

/* See stress.h. The tool's main thread, before it forks the supervisor. */
int stress_types_register(void)
{
	const struct shoal_agent_type *t[] = {&stress_type, &churn_type, &pool_type};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = shoal_agent_type_register(t[i]);

		if (rc && rc != -EEXIST)
			return rc;
	}
	return 0;
}
