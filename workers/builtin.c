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
 * the best vector it knows and casts its score to the coordinator; the coordinator keeps
 * the best and broadcasts it to the group "tuners" when it improves. A tuner asks the
 * coordinator for the current best at start (an async call). Both checkpoint their best.
 */
#define DEMO_DIM     4
#define DEMO_T_SCORE 100u /* tuner -> coordinator: struct demo_point */
#define DEMO_T_BEST  101u /* coordinator -> tuners (broadcast): struct demo_point */
#define DEMO_T_GET   102u /* call: answers struct demo_point */

struct demo_point {
	double score; /* higher is better; the optimum is 0 */
	double x[DEMO_DIM];
};

struct tuner_state {
	struct demo_point best;
	uint64_t rng;
	shoal_handle_t coord;
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

static void tuner_adopt(struct shoal_ctx *ctx, struct tuner_state *s, const struct shoal_msg *m)
{
	struct demo_point p;

	if (m->len != sizeof(p))
		return;
	memcpy(&p, m->data, sizeof(p));
	if (p.score > s->best.score) {
		s->best = p;
		shoal_checkpoint(ctx, &s->best, sizeof(s->best));
	}
}

static int tuner_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	if (m->type == DEMO_T_BEST || (m->flags & SHOAL_MSG_REPLY))
		tuner_adopt(ctx, state, m);
	return 0;
}

static int tuner_tick(struct shoal_ctx *ctx, void *state)
{
	struct tuner_state *s = state;
	struct demo_point p;

	for (int i = 0; i < DEMO_DIM; i++)
		p.x[i] = s->best.x[i] + rng_unit(&s->rng) * 0.2;
	p.score = demo_score(p.x);
	if (p.score > s->best.score) {
		s->best = p;
		shoal_checkpoint(ctx, &s->best, sizeof(s->best));
	}
	if (s->coord == SHOAL_HANDLE_NONE)
		shoal_lookup(ctx, "coordinator", &s->coord);
	if (s->coord != SHOAL_HANDLE_NONE)
		shoal_cast(ctx, s->coord, DEMO_T_SCORE, &s->best, sizeof(s->best));
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
};

struct coord_state {
	struct demo_point best;
	uint32_t improved; /* since the last broadcast */
};

static int coord_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct coord_state *s = calloc(1, sizeof(*s));

	(void)ctx;
	if (!s)
		return -ENOMEM;
	s->best.score = -1e300;
	if (ckpt && len == sizeof(s->best))
		memcpy(&s->best, ckpt, sizeof(s->best));
	*state = s;
	return 0;
}

static int coord_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct coord_state *s = state;
	struct demo_point p;

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

static int coord_tick(struct shoal_ctx *ctx, void *state)
{
	struct coord_state *s = state;

	if (s->improved) {
		s->improved = 0;
		shoal_broadcast(ctx, "tuners", DEMO_T_BEST, &s->best, sizeof(s->best));
	}
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
