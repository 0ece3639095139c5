/*
 * An agent type library whose registration aborts (a plugin with a bug): loading it must
 * never take down `shoal run --check` or a supervisor. SHOAL_TEST_CRASH_PLUGIN names it.
 */
#include <stdlib.h>

int shoal_agent_types_init(void);

int shoal_agent_types_init(void)
{
	abort();
}
