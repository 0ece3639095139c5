/*
 * Built-in agent types: echo, counter, hog, crasher (tests and tools), and the demo pair
 * tuner/coordinator that `shoal run` starts by default.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/pool.h"
#include "workers/wrk_int.h"

/* --- echo: a call is answered with its payload; casts are ignored --- */

static int echo_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = NULL;
	return 0;
}

static int echo_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state, (void)m;
	return 0;
}

static int echo_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		     uint32_t cap, uint32_t *reply_len)
{
	uint32_t n = m->len < cap ? m->len : cap;

	(void)ctx, (void)state;
	memcpy(reply, m->data, n);
	*reply_len = n;
	return 0;
}

static const struct shoal_agent_type echo_type = {
	.name = "echo",
	.init = echo_init,
	.handle = echo_handle,
	.handle_call = echo_call,
};

/*
 * --- counter: counts every message it handles (casts and calls), and how many of them were
 * redelivered; a call answers "count redelivered" as text. The counts are checkpointed on
 * every message so they survive a crash of the worker.
 */
struct counter_state {
	uint64_t count;
	uint64_t redelivered;
};

static int counter_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct counter_state *s = calloc(1, sizeof(*s));

	(void)ctx;
	if (!s)
		return -ENOMEM;
	if (ckpt && len == sizeof(*s))
		memcpy(s, ckpt, sizeof(*s));
	*state = s;
	return 0;
}

static void counter_count(struct shoal_ctx *ctx, struct counter_state *s, const struct shoal_msg *m)
{
	s->count++;
	if (m->flags & SHOAL_MSG_REDELIVERED)
		s->redelivered++;
	shoal_checkpoint(ctx, s, sizeof(*s));
}

static int counter_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	counter_count(ctx, state, m);
	return 0;
}

static int counter_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
			uint32_t cap, uint32_t *reply_len)
{
	struct counter_state *s = state;
	int n;

	/* a call asks for the count: it is not counted itself */
	(void)m, (void)ctx;
	n = snprintf(reply, cap, "%llu %llu", (unsigned long long)s->count,
		     (unsigned long long)s->redelivered);
	*reply_len = n < 0 ? 0 : (uint32_t)n < cap ? (uint32_t)n : cap;
	return 0;
}

static void free_state(struct shoal_ctx *ctx, void *state, int reason)
{
	(void)ctx, (void)reason;
	free(state);
}

static const struct shoal_agent_type counter_type = {
	.name = "counter",
	.ckpt_size = sizeof(struct counter_state),
	.init = counter_init,
	.handle = counter_handle,
	.handle_call = counter_call,
	.terminate = free_state,
};

/*
 * --- hog: each message allocates the number of MiB in its payload (text, default 1) and
 * touches every page; an allocation refused under the worker's cap exits the worker 86.
 */
struct hog_block {
	struct hog_block *next;
};

static int hog_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = calloc(1, sizeof(struct hog_block));
	if (!*state)
		wrk_oom();
	return 0;
}

static int hog_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct hog_block *head = state, *b;
	char num[16] = {0};
	unsigned long mib;
	size_t bytes;

	(void)ctx;
	memcpy(num, m->data, m->len < sizeof(num) - 1 ? m->len : sizeof(num) - 1);
	mib = strtoul(num, NULL, 10);
	if (!mib)
		mib = 1;
	bytes = mib << 20;
	b = malloc(bytes);
	if (!b)
		wrk_oom();
	memset(b, 0xa5, bytes);
	b->next = head->next;
	head->next = b;
	return 0;
}

static int hog_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		    uint32_t cap, uint32_t *reply_len)
{
	(void)reply, (void)cap;
	*reply_len = 0;
	return hog_handle(ctx, state, m);
}

static void hog_terminate(struct shoal_ctx *ctx, void *state, int reason)
{
	struct hog_block *b = ((struct hog_block *)state)->next;

	(void)ctx, (void)reason;
	while (b) {
		struct hog_block *next = b->next;

		free(b);
		b = next;
	}
	free(state);
}

static const struct shoal_agent_type hog_type = {
	.name = "hog",
	.init = hog_init,
	.handle = hog_handle,
	.handle_call = hog_call,
	.terminate = hog_terminate,
};

/*
 * --- crasher: a message "segv" raises SIGSEGV (the worker dies), "fail" returns -EIO (the
 * agent alone is restarted), "exit" exits the worker with code 1, "hang" never returns
 * (unless it is a redelivery); anything else is counted.
 */
static int crasher_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state;
	if (m->len >= 4 && !memcmp(m->data, "segv", 4))
		raise(SIGSEGV);
	if (m->len >= 4 && !memcmp(m->data, "fail", 4))
		return -EIO;
	if (m->len >= 4 && !memcmp(m->data, "exit", 4))
		_exit(1);
	/* a callback that never returns (once: redelivered, it is counted) */
	if (m->len >= 4 && !memcmp(m->data, "hang", 4) && !(m->flags & SHOAL_MSG_REDELIVERED))
		for (;;)
			pause();
	return 0;
}

static int crasher_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
			uint32_t cap, uint32_t *reply_len)
{
	int rc = crasher_handle(ctx, state, m);
	uint32_t n = m->len < cap ? m->len : cap;

	memcpy(reply, m->data, n);
	*reply_len = n;
	return rc;
}

static const struct shoal_agent_type crasher_type = {
	.name = "crasher",
	.init = echo_init,
	.handle = crasher_handle,
	.handle_call = crasher_call,
};

/*
 * --- the demo: tuners search a hyperparameter vector; each tick a tuner tries a step near
 * the best vector it knows and casts its score to the coordinator. The coordinator keeps the
 * best and, when it improves, publishes it as coordination variables (best.score and
 * best.x0..x3, one atomic update: a tuner reads all five or none of a change) and announces
 * it with a broadcast with acknowledgements to the group "tuners" (it learns who took it).
 * Each tick a tuner also reads the variables (the newest best, whoever wrote it) and draws an
 * evaluator from the pool "evaluators" (checked in again when done; a queued checkout's grant
 * comes as a reply). Every 5 s the coordinator proposes a new learning rate (the variable
 * lr) by consensus (majority; a tuner votes no on a rate outside [1e-4, 0.5]), and every 3 s
 * divides 64 compute slots among the tuners by an allocation round (max-min fair; each tuner
 * reports a demand of 1..8). Both checkpoint their best. Every 5 s the coordinator prints
 * what the coordination did: rounds per second and their p99 for each kind, pool checkouts,
 * the variables' version.
 */
#define DEMO_DIM      4
#define DEMO_T_SCORE  100u /* tuner -> coordinator: struct demo_point */
#define DEMO_T_BEST   101u /* coordinator -> tuners (acknowledged broadcast): struct demo_point */
#define DEMO_T_GET    102u /* call: answers struct demo_point */
#define DEMO_T_EVAL   103u /* tuner -> evaluator (pooled): struct demo_point */
#define DEMO_POOL     "evaluators"
#define DEMO_NVARS    (1 + DEMO_DIM)
#define DEMO_LAT      256 /* round latencies kept for the p99 */
#define DEMO_PRINT_NS 5000000000ull
#define DEMO_SLOTS    64u /* compute slots the allocation rounds divide */

static const char *const demo_var_names[DEMO_NVARS] = {"best.score", "best.x0", "best.x1",
						       "best.x2", "best.x3"};

struct demo_point {
	double score; /* higher is better; the optimum is 0 */
	double x[DEMO_DIM];
};

struct tuner_state {
	struct demo_point best;
	uint64_t rng;
	shoal_handle_t coord;
	shoal_var_t vars[DEMO_NVARS]; /* resolved once the coordinator made them */
	bool have_vars;
	uint64_t pool_ref;   /* a queued checkout's reference, 0 none */
	shoal_handle_t held; /* an evaluator checked out, 0 none */
	uint64_t slots;	     /* compute slots of the last allocation round */
};

static const double demo_target[DEMO_DIM] = {0.3, -1.2, 2.5, 0.7};

static double demo_score(const double *x)
{
	double s = 0;

	for (int i = 0; i < DEMO_DIM; i++)
		s -= (x[i] - demo_target[i]) * (x[i] - demo_target[i]);
	return s;
}

static double rng_unit(uint64_t *r)
{
	*r ^= *r << 13;
	*r ^= *r >> 7;
	*r ^= *r << 17;
	return (double)(*r >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static int tuner_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct tuner_state *s = calloc(1, sizeof(*s));
	uint64_t ref;

	if (!s)
		return -ENOMEM;
	s->rng = shoal_self(ctx) * 0x9e3779b97f4a7c15ull | 1;
	if (ckpt && len == sizeof(s->best)) {
		memcpy(&s->best, ckpt, sizeof(s->best));
	} else {
		for (int i = 0; i < DEMO_DIM; i++)
			s->best.x[i] = rng_unit(&s->rng) * 4;
		s->best.score = demo_score(s->best.x);
	}
	*state = s;
	shoal_join(ctx, "tuners");
	if (shoal_lookup(ctx, "coordinator", &s->coord) == 0)
		shoal_call_async(ctx, s->coord, DEMO_T_GET, NULL, 0, &ref);
	return 0;
}

static void tuner_take(struct shoal_ctx *ctx, struct tuner_state *s, const struct demo_point *p)
{
	if (p->score > s->best.score) {
		s->best = *p;
		shoal_checkpoint(ctx, &s->best, sizeof(s->best));
	}
}

static void tuner_adopt(struct shoal_ctx *ctx, struct tuner_state *s, const struct shoal_msg *m)
{
	struct demo_point p;

	if (m->len != sizeof(p))
		return;
	memcpy(&p, m->data, sizeof(p));
	tuner_take(ctx, s, &p);
}

/* The best as the variables say, all five of one update (read as of one instant). */
static void tuner_read_vars(struct shoal_ctx *ctx, struct tuner_state *s)
{
	struct shoal_var_value v[DEMO_NVARS];
	struct demo_point p;

	if (!s->have_vars) {
		for (int i = 0; i < DEMO_NVARS; i++)
			if (shoal_var_lookup(ctx, demo_var_names[i], &s->vars[i]))
				return;
		s->have_vars = true;
	}
	memset(v, 0, sizeof(v));
	if (shoal_var_read_many(ctx, s->vars, DEMO_NVARS, v) || !v[0].version)
		return;
	p.score = v[0].num.d;
	for (int i = 0; i < DEMO_DIM; i++)
		p.x[i] = v[1 + i].num.d;
	tuner_take(ctx, s, &p);
}

/* An evaluator from the pool: score our point with it (a cast), then give it back. */
static void tuner_evaluate(struct shoal_ctx *ctx, struct tuner_state *s)
{
	if (s->held) {
		shoal_cast(ctx, s->held, DEMO_T_EVAL, &s->best, sizeof(s->best));
		shoal_pool_checkin(ctx, DEMO_POOL, s->held);
		s->held = 0;
	}
}

static int tuner_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct tuner_state *s = state;

	if ((m->flags & SHOAL_MSG_REPLY) && s->pool_ref && m->ref == s->pool_ref) {
		struct shoal_pool_grant g;

		s->pool_ref = 0;
		if (!(m->flags & SHOAL_MSG_ERROR) && m->type == SHOAL_T_POOL &&
		    m->len == sizeof(g)) {
			memcpy(&g, m->data, sizeof(g));
			s->held = g.agent;
			tuner_evaluate(ctx, s);
		}
		return 0;
	}
	if (m->type == SHOAL_T_ALLOC_ASK && (m->flags & SHOAL_MSG_ROUND)) {
		/* a demand of 1..8 slots (a redelivered ask keeps the first: -EALREADY) */
		shoal_alloc_demand(ctx, m, 1 + (uint64_t)(rng_unit(&s->rng) * 3.5 + 3.5));
		return 0;
	}
	if (m->type == SHOAL_T_ALLOC && m->len == sizeof(struct shoal_alloc_share)) {
		struct shoal_alloc_share sh;

		memcpy(&sh, m->data, sizeof(sh));
		s->slots = sh.share;
		return 0;
	}
	if (m->type == DEMO_T_BEST || (m->flags & SHOAL_MSG_REPLY))
		tuner_adopt(ctx, s, m);
	return 0;
}

/* A proposed learning rate: yes inside [1e-4, 0.5], else no with the reason. */
static int tuner_vote(struct shoal_ctx *ctx, void *state, const struct shoal_proposal *p,
		      char *reason, uint32_t reason_cap)
{
	double lr;

	(void)ctx, (void)state;
	if (p->type != SHOAL_VAR_DOUBLE || p->len != sizeof(lr))
		return 1; /* not a rate: not ours to judge */
	memcpy(&lr, p->data, sizeof(lr));
	if (lr >= 1e-4 && lr <= 0.5)
		return 1;
	snprintf(reason, reason_cap, "rate %g outside [1e-4, 0.5]", lr);
	return 0;
}

/*
 * Cast our best to the coordinator, following its name rather than a handle: the cached
 * handle of a coordinator that was stopped (-ENOENT) or whose slot another agent took since
 * (-ESTALE) is dropped and the name looked up again, so a coordinator replaced at run time
 * (`shoal stop coordinator; shoal spawn coordinator coordinator`) hears from us from our next
 * tick. A restarted coordinator keeps its handle: nothing to follow then.
 */
static void tuner_report(struct shoal_ctx *ctx, struct tuner_state *s)
{
	int r = -ENOENT;

	if (s->coord != SHOAL_HANDLE_NONE)
		r = shoal_cast(ctx, s->coord, DEMO_T_SCORE, &s->best, sizeof(s->best));
	if (r != -ENOENT && r != -ESTALE)
		return;
	if (shoal_lookup(ctx, "coordinator", &s->coord)) {
		s->coord = SHOAL_HANDLE_NONE; /* none running now: the next tick looks again */
		return;
	}
	shoal_cast(ctx, s->coord, DEMO_T_SCORE, &s->best, sizeof(s->best));
}

static int tuner_tick(struct shoal_ctx *ctx, void *state)
{
	struct tuner_state *s = state;
	struct demo_point p;

	tuner_read_vars(ctx, s);
	for (int i = 0; i < DEMO_DIM; i++)
		p.x[i] = s->best.x[i] + rng_unit(&s->rng) * 0.2;
	p.score = demo_score(p.x);
	tuner_take(ctx, s, &p);
	tuner_report(ctx, s);
	/* one evaluation at a time: a checkout still queued is left to come */
	if (!s->pool_ref && !s->held &&
	    shoal_pool_checkout(ctx, DEMO_POOL, 1000, &s->held, &s->pool_ref) != 1)
		s->pool_ref = 0;
	tuner_evaluate(ctx, s);
	return 0;
}

static const struct shoal_agent_type tuner_type = {
	.name = "tuner",
	.ckpt_size = sizeof(struct demo_point),
	.tick_ms = 500,
	.init = tuner_init,
	.handle = tuner_handle,
	.terminate = free_state,
	.tick = tuner_tick,
	.vote = tuner_vote,
};

struct coord_state {
	struct demo_point best;
	uint32_t improved; /* since the last publication */
	shoal_var_t vars[DEMO_NVARS];
	bool have_vars;
	uint64_t round_ref;		      /* the round in flight, 0 none */
	uint64_t rounds, acked, dead, absent; /* rounds finished since the last print */
	uint64_t lat[DEMO_LAT];		      /* their latencies (ns), the newest DEMO_LAT */
	uint32_t nlat;
	uint64_t next_print_ns, last_print_ns, checkouts_then, version;
	shoal_var_t lr; /* the learning rate proposals change */
	bool have_lr;
	uint64_t prop_ref; /* the proposal in flight, 0 none */
	uint64_t committed, rejected, plat[DEMO_LAT];
	uint32_t nplat;
	uint64_t alloc_ref; /* the allocation round in flight, 0 none */
	uint64_t allocs, alat[DEMO_LAT], slots_given;
	uint32_t nalat, ticks;
};

static int coord_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct coord_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->best.score = -1e300;
	if (ckpt && len == sizeof(s->best))
		memcpy(&s->best, ckpt, sizeof(s->best));
	s->last_print_ns = shoal_now_ns(ctx);
	s->next_print_ns = s->last_print_ns + DEMO_PRINT_NS;
	*state = s;
	return 0;
}

/* The five variables, made (or found) once: an instance without variables has none. */
static bool coord_vars(struct shoal_ctx *ctx, struct coord_state *s)
{
	if (s->have_vars)
		return true;
	for (int i = 0; i < DEMO_NVARS; i++) {
		int r = shoal_var_create(ctx, demo_var_names[i], SHOAL_VAR_DOUBLE, &s->vars[i]);

		if (r && !(r == -EEXIST && s->vars[i]))
			return false;
	}
	s->have_vars = true;
	return true;
}

static int coord_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct coord_state *s = state;
	struct demo_point p;

	if ((m->flags & SHOAL_MSG_SYSTEM) && m->type == SHOAL_T_ROUND &&
	    m->len == sizeof(struct shoal_round_done)) {
		struct shoal_round_done d;

		memcpy(&d, m->data, sizeof(d));
		if (d.ref != s->round_ref)
			return 0;
		s->round_ref = 0;
		s->rounds++;
		s->acked += d.acked;
		s->dead += d.dead;
		s->absent += d.absent;
		s->lat[s->nlat++ % DEMO_LAT] = d.elapsed_ns;
		return 0;
	}
	if ((m->flags & SHOAL_MSG_SYSTEM) && m->type == SHOAL_T_PROPOSAL &&
	    m->len == sizeof(struct shoal_proposal_result)) {
		struct shoal_proposal_result r;

		memcpy(&r, m->data, sizeof(r));
		if (r.ref != s->prop_ref)
			return 0;
		s->prop_ref = 0;
		if (r.outcome == SHOAL_PROPOSAL_COMMITTED)
			s->committed++;
		else
			s->rejected++;
		s->plat[s->nplat++ % DEMO_LAT] = r.elapsed_ns;
		return 0;
	}
	if ((m->flags & SHOAL_MSG_REPLY) && m->type == SHOAL_T_ALLOC_DONE &&
	    m->len >= sizeof(struct shoal_alloc_done)) {
		struct shoal_alloc_done d;

		memcpy(&d, m->data, sizeof(d));
		if (d.ref != s->alloc_ref)
			return 0;
		s->alloc_ref = 0;
		s->allocs++;
		s->slots_given = d.allocated;
		s->alat[s->nalat++ % DEMO_LAT] = d.elapsed_ns;
		return 0;
	}
	if (m->type != DEMO_T_SCORE || m->len != sizeof(p))
		return 0;
	memcpy(&p, m->data, sizeof(p));
	if (p.score > s->best.score) {
		s->best = p;
		s->improved = 1;
		shoal_checkpoint(ctx, &s->best, sizeof(s->best));
	}
	return 0;
}

static int coord_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		      uint32_t cap, uint32_t *reply_len)
{
	struct coord_state *s = state;
	int n;

	(void)ctx;
	if (m->type == DEMO_T_GET) {
		n = sizeof(s->best) <= cap ? (int)sizeof(s->best) : 0;
		memcpy(reply, &s->best, (size_t)n);
	} else {
		/* a person asking (shoal call coordinator ...): the best, as text */
		if (s->best.score < -1e299)
			n = snprintf(reply, cap, "no score yet");
		else
			n = snprintf(reply, cap, "best score %.6f at [%.3f %.3f %.3f %.3f]",
				     s->best.score, s->best.x[0], s->best.x[1], s->best.x[2],
				     s->best.x[3]);
		if (n < 0)
			n = 0;
		if ((uint32_t)n > cap)
			n = (int)cap;
	}
	*reply_len = (uint32_t)n;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p99 of the newest min(n, DEMO_LAT) latencies in lat (ns), 0 if none. */
static uint64_t p99_of(const uint64_t *lat, uint32_t n)
{
	uint64_t v[DEMO_LAT];

	n = n < DEMO_LAT ? n : DEMO_LAT;
	if (!n)
		return 0;
	memcpy(v, lat, n * sizeof(v[0]));
	qsort(v, n, sizeof(v[0]), cmp_u64);
	return v[(n * 99 + 99) / 100 - 1];
}

/* Every DEMO_PRINT_NS: what the coordination did since the last print, on stdout. */
static void coord_print(struct shoal_ctx *ctx, struct coord_state *s, uint64_t now)
{
	uint64_t p99 = p99_of(s->lat, s->nlat), checkouts = 0;
	double secs = (double)(now - s->last_print_ns) / 1e9;
	struct shm_pool_info in;
	uint32_t id;

	if (shm_pool_find(ctx->seg, DEMO_POOL, &id) == 0 && shm_pool_read(ctx->seg, id, &in) == 0)
		checkouts = in.checkouts;
	printf("shoal demo: acknowledged broadcasts %.1f/s, p99 %.0f us (%llu acked, %llu dead, "
	       "%llu absent); pool %s %.0f checkouts/s; best %.5f, variables best.* at version "
	       "%llu\n",
	       secs > 0 ? (double)s->rounds / secs : 0.0, (double)p99 / 1e3,
	       (unsigned long long)s->acked, (unsigned long long)s->dead,
	       (unsigned long long)s->absent, DEMO_POOL,
	       secs > 0 ? (double)(checkouts - s->checkouts_then) / secs : 0.0, s->best.score,
	       (unsigned long long)s->version);
	printf("shoal demo: consensus on lr %.1f/s, p99 %.0f us (%llu committed, %llu rejected); "
	       "allocation of %u slots %.1f/s, p99 %.0f us (%llu given last)\n",
	       secs > 0 ? (double)(s->committed + s->rejected) / secs : 0.0,
	       (double)p99_of(s->plat, s->nplat) / 1e3, (unsigned long long)s->committed,
	       (unsigned long long)s->rejected, DEMO_SLOTS,
	       secs > 0 ? (double)s->allocs / secs : 0.0, (double)p99_of(s->alat, s->nalat) / 1e3,
	       (unsigned long long)s->slots_given);
	fflush(stdout);
	s->committed = s->rejected = s->allocs = 0;
	s->nplat = s->nalat = 0;
	s->checkouts_then = checkouts;
	s->rounds = s->acked = s->dead = s->absent = 0;
	s->nlat = 0;
	s->last_print_ns = now;
	s->next_print_ns = now + DEMO_PRINT_NS;
}

static int coord_tick(struct shoal_ctx *ctx, void *state)
{
	struct coord_state *s = state;
	uint64_t now = shoal_now_ns(ctx);

	if (s->improved && !s->round_ref && coord_vars(ctx, s)) {
		struct shoal_var_set set[DEMO_NVARS];
		const double *val[DEMO_NVARS] = {&s->best.score, &s->best.x[0], &s->best.x[1],
						 &s->best.x[2], &s->best.x[3]};

		for (int i = 0; i < DEMO_NVARS; i++)
			set[i] = (struct shoal_var_set){s->vars[i], SHOAL_VAR_DOUBLE, 8, val[i],
							SHOAL_VAR_ANY};
		/* one update of all five: a reader sees the new best whole or not at all */
		if (shoal_var_update(ctx, set, DEMO_NVARS, NULL) == 0) {
			s->improved = 0;
			s->version++;
			shoal_broadcast_acked(ctx, "tuners", DEMO_T_BEST, &s->best, sizeof(s->best),
					      1000, &s->round_ref);
		}
	}
	s->ticks++;
	/* every 5 s: a new learning rate, by consensus (a rate out of range gets voted down) */
	if (s->ticks % 5 == 0 && !s->prop_ref) {
		struct shoal_var_value cur = {0};
		double lr;

		if (!s->have_lr) {
			int r = shoal_var_create(ctx, "lr", SHOAL_VAR_DOUBLE, &s->lr);

			s->have_lr = r == 0 || (r == -EEXIST && s->lr);
		}
		if (s->have_lr && shoal_var_read(ctx, s->lr, &cur) == 0) {
			lr = cur.version ? cur.num.d : 0.01;
			lr *= 0.3 + (double)(s->ticks % 7) * 0.4; /* 0.3x .. 2.7x */
			shoal_propose(ctx, "lr", SHOAL_VAR_DOUBLE, &lr, sizeof(lr), "tuners",
				      SHOAL_RULE_MAJORITY, 0, 1000, &s->prop_ref);
		}
	}
	/* every 3 s: compute slots shared out, max-min fair */
	if (s->ticks % 3 == 0 && !s->alloc_ref)
		shoal_allocate(ctx, "tuners", "slots", DEMO_SLOTS, shoal_alloc_maxmin, 1000,
			       &s->alloc_ref);
	if (now >= s->next_print_ns)
		coord_print(ctx, s, now);
	return 0;
}

static const struct shoal_agent_type coord_type = {
	.name = "coordinator",
	.ckpt_size = sizeof(struct demo_point),
	.tick_ms = 1000,
	.init = coord_init,
	.handle = coord_handle,
	.handle_call = coord_call,
	.terminate = free_state,
	.tick = coord_tick,
};

const struct shoal_agent_type *const wrk_builtin_types[] = {
	&echo_type, &counter_type, &hog_type, &crasher_type, &tuner_type, &coord_type, NULL,
};

const char *const wrk_builtin_type_names[] = {
	"echo", "counter", "hog", "crasher", "tuner", "coordinator", NULL,
};

/* See wrk.h: the one-line summaries of the comments above each type. */
const char *const wrk_builtin_type_about[] = {
	"a call is answered with its payload; casts are ignored",
	"counts the messages it handles (checkpointed); a call answers 'COUNT REDELIVERED'",
	"each message allocates its payload's MiB (default 1): drives a worker to its cap",
	"message 'segv' kills its worker, 'fail' fails the agent, 'exit', 'hang'; else counts",
	"the demo's searcher: reports scores, reads best.*, votes on lr, draws evaluators",
	"the demo's coordinator: publishes best.*, broadcasts with acks, proposes lr",
	NULL,
};
static_assert(sizeof(wrk_builtin_type_about) == sizeof(wrk_builtin_type_names),
	      "each built-in type says what it does");
