/*
 * An agent type library built against a later shoal's agent.h, of an agent-type ABI version
 * this shoal does not know (FUTURE_ABI): shoal must refuse it, naming the type and both
 * versions, and never read its struct past the name (the one field every version starts
 * with). Built twice: exporting the table shoal_agent_types_v<FUTURE_ABI>, and (with
 * FUTURE_INIT) a shoal_agent_types_init() that registers with that version.
 * SHOAL_TEST_FUTURE_PLUGIN and SHOAL_TEST_FUTURE_INIT_PLUGIN name them.
 */
#include "shoal/agent.h"

/* bump it past the header's version when that moves */
#define FUTURE_ABI 4
_Static_assert(FUTURE_ABI > SHOAL_AGENT_ABI_VERSION, "FUTURE_ABI must be a version shoal lacks");

/* As a later struct would begin: name first; what follows shoal cannot know. */
struct future_type {
	const char *name;
	uint32_t rest[64];
};

static const struct future_type future_type = {.name = "future"};

#ifdef FUTURE_INIT
int shoal_agent_types_init(void);

int shoal_agent_types_init(void)
{
	return shoal_agent_type_register_abi((const struct shoal_agent_type *)&future_type,
					     FUTURE_ABI);
}
#else
#define TABLE_(v) shoal_agent_types_v##v
#define TABLE(v)  TABLE_(v)
extern const struct future_type *const TABLE(FUTURE_ABI)[];
const struct future_type *const TABLE(FUTURE_ABI)[] = {&future_type, NULL};
#endif
