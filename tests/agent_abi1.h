/*
 * The agent-type ABI as plugins built before versioning saw it (agent ABI version 1): a copy
 * of that agent.h's struct and entry points, for a plugin that stands for one built back
 * then (abi1_plugin.c) and for the tests that hand shoal such a struct. Only the tag differs
 * (struct shoal_agent_type_abi1, so it can sit beside today's struct): tags are not part of
 * the binary layout. Never change it: it is what old binaries are.
 */
#ifndef TESTS_AGENT_ABI1_H
#define TESTS_AGENT_ABI1_H

#include <stdint.h>

#include "shoal/shoal.h"

struct shoal_ctx;

struct shoal_agent_type_abi1 {
	const char *name;
	uint32_t ckpt_size;
	uint32_t tick_ms;
	uint32_t restart_max;
	uint32_t restart_period_ms;
	int (*init)(struct shoal_ctx *ctx, const void *ckpt, uint32_t ckpt_len, void **state);
	int (*handle)(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m);
	int (*handle_call)(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m,
			   void *reply, uint32_t cap, uint32_t *reply_len);
	void (*terminate)(struct shoal_ctx *ctx, void *state, int reason);
	int (*handle_down)(struct shoal_ctx *ctx, void *state, const struct shoal_down *d);
	int (*tick)(struct shoal_ctx *ctx, void *state);
};

/*
 * A version 1 struct with nonzero bytes right after it, where a later version's fields
 * would be: a shoal that read past the end of the plugin's struct would see them.
 */
struct shoal_agent_type_abi1_fenced {
	struct shoal_agent_type_abi1 t;
	uint32_t after[4]; /* ABI1_FENCE each */
};
#define ABI1_FENCE 0xa5a5a5a5u

#endif
