/*
 * An agent type library built against the agent.h of ABI version 2 (agent_abi2.h: flags, no
 * vote), exporting its table as shoal_agent_types_v2. Type "v2_upper" answers a call like
 * agent_plugin.c's "upper". Its struct is followed by nonzero bytes (the fence) where version
 * 3's vote is. SHOAL_TEST_ABI2_PLUGIN names it.
 */
#include <stdio.h>

#include "tests/agent_abi2.h"

/* What it calls in the host. */
shoal_handle_t shoal_self(const struct shoal_ctx *ctx);

#include "tests/plugin_upper.h"

static const struct shoal_agent_type_abi2_fenced v2_upper = {
	.t =
		{
			.name = "v2_upper",
			.init = upper_init,
			.handle = upper_handle,
			.handle_call = upper_call,
		},
	.after = {ABI2_FENCE, ABI2_FENCE, ABI2_FENCE, ABI2_FENCE},
};

/* The version 2 table name. */
extern const struct shoal_agent_type_abi2 *const shoal_agent_types_v2[];
const struct shoal_agent_type_abi2 *const shoal_agent_types_v2[] = {&v2_upper.t, NULL};
