/*
 * The callbacks of the test plugins' "upper" type, shared by agent_plugin.c (built against
 * today's shoal/agent.h) and abi1_plugin.c (built against the version 1 struct): it answers
 * a call with its payload upper-cased and "@<slot>" of its own handle (shoal_self(),
 * resolved from the host at load time). Include after the header that declares the types.
 */
#ifndef TESTS_PLUGIN_UPPER_H
#define TESTS_PLUGIN_UPPER_H

#include <stdio.h>

static int upper_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = NULL;
	return 0;
}

static int upper_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state, (void)m;
	return 0;
}

static int upper_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
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

#endif
