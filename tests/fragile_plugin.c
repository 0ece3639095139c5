/*
 * An agent type library that loads where it is checked but not where agents run: in a
 * process with a shared-memory segment mapped read-write (a worker, a warm spare, or the
 * child either loads a library in first), its registration fails as $SHOAL_TEST_FRAGILE
 * says: "abort" (it crashes) or "error" (it returns -EIO). Elsewhere (the check's child,
 * which runs before the segment exists), or with the variable unset, it registers type
 * "fragile", which answers a call with "ok". SHOAL_TEST_FRAGILE_PLUGIN names it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/agent.h"

int shoal_agent_types_init(void);

static int fragile_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = NULL;
	return 0;
}

static int fragile_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)ctx, (void)state, (void)m;
	return 0;
}

static int fragile_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
			uint32_t cap, uint32_t *reply_len)
{
	(void)ctx, (void)state, (void)m;
	if (cap < 2)
		return -ENOSPC;
	memcpy(reply, "ok", 2);
	*reply_len = 2;
	return 0;
}

static const struct shoal_agent_type fragile_type = {
	.name = "fragile",
	.init = fragile_init,
	.handle = fragile_handle,
	.handle_call = fragile_call,
};

/* Whether this process maps a /dev/shm file shared and writable (a shoal segment). */
static int maps_a_segment(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, " rw-s ") && strstr(line, " /dev/shm/");
	fclose(f);
	return found;
}

int shoal_agent_types_init(void)
{
	const char *mode = getenv("SHOAL_TEST_FRAGILE");

	if (mode && maps_a_segment()) {
		if (!strcmp(mode, "abort"))
			abort();
		if (!strcmp(mode, "error"))
			return -EIO;
	}
	return shoal_agent_type_register(&fragile_type);
}
