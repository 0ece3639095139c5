/*
 * An agent type library for the tests: built as a loadable module, loaded with
 * shoal_agent_types_load(). Type "upper" answers a call with its payload upper-cased and
 * the slot of its own handle (shoal_self(), resolved from the host at load time), and
 * notes its terminate in a file when asked (upper_terminate()).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal/agent.h"

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

/*
 * With SHOAL_TEST_TERMINATE_LOG set, append "terminate <slot> <reason>" to that file: the
 * tests read it to see that an orderly stop ran every agent's terminate. One write(2) of
 * one short line with O_APPEND: lines from several workers do not interleave.
 */
static void upper_terminate(struct shoal_ctx *ctx, void *state, int reason)
{
	const char *path = getenv("SHOAL_TEST_TERMINATE_LOG");
	char line[64];
	int fd, n;

	(void)state;
	if (!path)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "terminate %u %d\n", shoal_handle_slot(shoal_self(ctx)),
		     reason);
	if (n > 0 && write(fd, line, (size_t)n) != n)
		n = -1;
	close(fd);
}

static const struct shoal_agent_type upper_type = {
	.name = "upper",
	.init = upper_init,
	.handle = upper_handle,
	.handle_call = upper_call,
	.terminate = upper_terminate,
};

/* What shoal_agent_types_load() looks for. */
const struct shoal_agent_type *const shoal_agent_types[] = {&upper_type, NULL};
