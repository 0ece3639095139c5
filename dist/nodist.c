/*
 * A shoal built without libei (-Ddist=disabled, or erlang-dev absent): the distribution's
 * entry points say so. The config check refuses a [dist] section before any of them runs.
 */
#include <errno.h>
#include <stdio.h>

#include "dist/dist.h"

/* See dist.h. */
bool dist_is_available(void)
{
	return false;
}

/* See dist.h. */
int dist_gateway_main(const struct dist_conf *dc, const char *instance)
{
	(void)dc, (void)instance;
	fprintf(stderr, "shoal: gateway: this shoal was built without the Erlang distribution "
			"(libei, from erlang-dev)\n");
	return 3;
}

/* See dist.h. */
int dist_call(const char *node, const char *cookie_file, const char *name, const void *payload,
	      uint32_t len, int timeout_ms, struct dist_reply *out, char *err, size_t errlen)
{
	(void)node, (void)cookie_file, (void)name, (void)payload, (void)len, (void)timeout_ms;
	*out = (struct dist_reply){0};
	snprintf(err, errlen,
		 "this shoal was built without the Erlang distribution (libei, from "
		 "erlang-dev): --node is not available; install erlang-dev and rebuild");
	return -ENOTSUP;
}

/* See dist.h. */
int dist_send(const char *node, const char *cookie_file, const char *name, const void *payload,
	      uint32_t len, uint32_t count, int timeout_ms, char *err, size_t errlen)
{
	(void)node, (void)cookie_file, (void)name, (void)payload, (void)len, (void)count,
		(void)timeout_ms;
	snprintf(err, errlen,
		 "this shoal was built without the Erlang distribution (libei, from "
		 "erlang-dev): --node is not available; install erlang-dev and rebuild");
	return -ENOTSUP;
}
