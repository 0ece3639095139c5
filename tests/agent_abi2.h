/*
 * The agent-type ABI version 2 as plugins built against that agent.h saw it: version 1's
 * fields and flags, exported as shoal_agent_types_v2. For a plugin that stands for one built
 * then (abi2_plugin.c). Only the tag differs from that header's struct. Never change it: it
 * is what those binaries are.
 */
#ifndef TESTS_AGENT_ABI2_H
#define TESTS_AGENT_ABI2_H

#include <stdint.h>

#include "shoal/shoal.h"

struct shoal_ctx;

struct shoal_agent_type_abi2 {
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
	uint32_t flags;
};

/*
 * A version 2 struct with nonzero bytes right after it, where version 3's vote would be: a
 * shoal that read past the end of the plugin's struct would call them.
 */
struct shoal_agent_type_abi2_fenced {
	struct shoal_agent_type_abi2 t;
	uint64_t after[4]; /* ABI2_FENCE each */
};
#define ABI2_FENCE 0xa5a5a5a5a5a5a5a5ull

#endif
