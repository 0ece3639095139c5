/*
 * An agent type as a plugin: "greeter" answers a call with "hello, <payload>" and counts
 * the greetings it made, keeping the count across its restarts in its checkpoint.
 *
 * Build it against shoal's headers only; do not link libshoal (the shoal process that loads
 * it provides the shoal_* functions):
 *     cc -shared -fPIC $(pkg-config --cflags shoal) greeter.c -o greeter.so
 * Load it with [types] load = /path/to/greeter.so (see hello.ini).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shoal/agent.h>

struct greeter {
	uint64_t greeted; /* calls answered, across restarts */
};

static int greeter_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct greeter *g = calloc(1, sizeof(*g));

	(void)ctx;
	if (!g)
		return -1;
	if (ckpt && len == sizeof(g->greeted))
		memcpy(&g->greeted, ckpt, sizeof(g->greeted));
	*state = g;
	return 0;
}

static int greeter_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state, (void)m; /* casts: nothing to do */
	return 0;
}

static int greeter_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
			uint32_t cap, uint32_t *reply_len)
{
	struct greeter *g = state;
	int n = snprintf(reply, cap, "hello, %.*s (greeting %llu)", (int)m->len,
			 (const char *)m->data, (unsigned long long)++g->greeted);

	/* a crash of our worker restarts us with this count */
	shoal_checkpoint(ctx, &g->greeted, sizeof(g->greeted));
	*reply_len = n < 0 ? 0 : (uint32_t)n < cap ? (uint32_t)n : cap;
	return 0;
}

static void greeter_terminate(struct shoal_ctx *ctx, void *state, int reason)
{
	(void)ctx, (void)reason;
	free(state);
}

static const struct shoal_agent_type greeter_type = {
	.name = "greeter",
	.ckpt_size = sizeof(uint64_t),
	.init = greeter_init,
	.handle = greeter_handle,
	.handle_call = greeter_call,
	.terminate = greeter_terminate,
};

/* What shoal looks for when it loads the library. */
const struct shoal_agent_type *const shoal_agent_types[] = {&greeter_type, NULL};
