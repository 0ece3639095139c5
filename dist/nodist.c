/*
 * A shoal built without libei (-Ddist=disabled, or erlang-dev absent): the distribution's
 * entry points say so. The config check refuses a [dist] section before any of them runs.
 */
#include <errno.h>
#include <stdio.h>

#include "dist/dist.h"
#include "shoal/term.h"

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

/* include/shoal/term.h without ei: every call says so. */
int shoal_term_out_init(struct shoal_term_out *t, void *buf, uint32_t cap)
{
	*t = (struct shoal_term_out){.buf = buf, .cap = cap, .err = -ENOTSUP};
	return -ENOTSUP;
}

int shoal_term_put_atom(struct shoal_term_out *t, const char *atom)
{
	(void)atom;
	return t->err = -ENOTSUP;
}

int shoal_term_put_tuple(struct shoal_term_out *t, uint32_t arity)
{
	(void)arity;
	return t->err = -ENOTSUP;
}

int shoal_term_put_int(struct shoal_term_out *t, int64_t v)
{
	(void)v;
	return t->err = -ENOTSUP;
}

int shoal_term_put_double(struct shoal_term_out *t, double v)
{
	(void)v;
	return t->err = -ENOTSUP;
}

int shoal_term_put_binary(struct shoal_term_out *t, const void *data, uint32_t len)
{
	(void)data, (void)len;
	return t->err = -ENOTSUP;
}

int shoal_term_put_list(struct shoal_term_out *t, uint32_t n)
{
	(void)n;
	return t->err = -ENOTSUP;
}

int shoal_term_put_nil(struct shoal_term_out *t)
{
	return t->err = -ENOTSUP;
}

int shoal_term_put_map(struct shoal_term_out *t, uint32_t n)
{
	(void)n;
	return t->err = -ENOTSUP;
}

int shoal_term_in_init(struct shoal_term_in *t, const void *data, uint32_t len)
{
	*t = (struct shoal_term_in){.buf = data, .len = len, .pos = (int)len};
	return -ENOTSUP;
}

int shoal_term_next(const struct shoal_term_in *t)
{
	(void)t;
	return -ENOTSUP;
}

int shoal_term_get_atom(struct shoal_term_in *t, char *out, uint32_t cap)
{
	(void)t, (void)out, (void)cap;
	return -ENOTSUP;
}

int shoal_term_get_tuple(struct shoal_term_in *t, uint32_t *arity)
{
	(void)t, (void)arity;
	return -ENOTSUP;
}

int shoal_term_get_int(struct shoal_term_in *t, int64_t *v)
{
	(void)t, (void)v;
	return -ENOTSUP;
}

int shoal_term_get_double(struct shoal_term_in *t, double *v)
{
	(void)t, (void)v;
	return -ENOTSUP;
}

int shoal_term_get_binary(struct shoal_term_in *t, const void **data, uint32_t *len)
{
	(void)t, (void)data, (void)len;
	return -ENOTSUP;
}

int shoal_term_get_list(struct shoal_term_in *t, uint32_t *n)
{
	(void)t, (void)n;
	return -ENOTSUP;
}

int shoal_term_get_nil(struct shoal_term_in *t)
{
	(void)t;
	return -ENOTSUP;
}

int shoal_term_get_map(struct shoal_term_in *t, uint32_t *n)
{
	(void)t, (void)n;
	return -ENOTSUP;
}

int shoal_term_get_string(struct shoal_term_in *t, const void **data, uint32_t *len)
{
	(void)t, (void)data, (void)len;
	return -ENOTSUP;
}

int shoal_term_skip(struct shoal_term_in *t)
{
	(void)t;
	return -ENOTSUP;
}
