/*
 * An agent type library as built before the agent-type ABI was versioned (version 1): it
 * sees the struct of that time (agent_abi1.h, not today's shoal/agent.h) and exports the
 * table under the old name shoal_agent_types. Type "old_upper" answers a call with its
 * payload upper-cased and "@<slot>" (shoal_self(), resolved from the host at load time),
 * like agent_plugin.c's "upper". Its struct is followed by nonzero bytes (the fence) where a
 * newer struct has more fields. SHOAL_TEST_ABI1_PLUGIN names it.
 */
#include <stdio.h>

#include "tests/agent_abi1.h"

/* What it calls in the host, as declared at that time. */
shoal_handle_t shoal_self(const struct shoal_ctx *ctx);

static int old_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = NULL;
	return 0;
}

static int old_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state, (void)m;
	return 0;
}

static int old_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		    uint32_t cap, uint32_t *reply_len)
{
	char *out = reply;
	uint32_t n = 0;
	int k;

	(void)state;
	for (uint32_t i = 0; i < m->len && n < cap; i++) {
		char c = ((const char *)m->data)[i];

		out[n++] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
	}
	k = snprintf(out + n, cap - n, "@%u", shoal_handle_slot(shoal_self(ctx)));
	if (k > 0)
		n += (uint32_t)k < cap - n ? (uint32_t)k : cap - n;
	*reply_len = n;
	return 0;
}

static const struct shoal_agent_type_abi1_fenced old_upper = {
	.t =
		{
			.name = "old_upper",
			.init = old_init,
			.handle = old_handle,
			.handle_call = old_call,
		},
	.after = {ABI1_FENCE, ABI1_FENCE, ABI1_FENCE, ABI1_FENCE},
};

/* The version 1 table name. */
const struct shoal_agent_type_abi1 *const shoal_agent_types[] = {&old_upper.t, NULL};
