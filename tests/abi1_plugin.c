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

#include "tests/plugin_upper.h"

static const struct shoal_agent_type_abi1_fenced old_upper = {
	.t =
		{
			.name = "old_upper",
			.init = upper_init,
			.handle = upper_handle,
			.handle_call = upper_call,
		},
	.after = {ABI1_FENCE, ABI1_FENCE, ABI1_FENCE, ABI1_FENCE},
};

/* The version 1 table name. */
const struct shoal_agent_type_abi1 *const shoal_agent_types[] = {&old_upper.t, NULL};
