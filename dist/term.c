/*
 * include/shoal/term.h over erl_interface's ei: ei encodes and decodes; every term read is
 * first walked within its bounds by dist_term_check() (ei trusts the lengths it reads).
 */
#include <errno.h>
#include <string.h>

#include <ei.h>

#include "dist/dist.h"
#include "shoal/term.h"

/* Encode with put(buf, &index, ...): measured first (buf NULL), then written if it fits. */
#define PUT(t, call_with)                                                                          \
	do {                                                                                       \
		int i_ = (int)(t)->len;                                                            \
		char *buf_ = NULL;                                                                 \
		int *ix_ = &i_;                                                                    \
                                                                                                   \
		if ((t)->err)                                                                      \
			return (t)->err;                                                           \
		if ((call_with) < 0)                                                               \
			return (t)->err = -EINVAL;                                                 \
		if ((uint32_t)i_ > (t)->cap)                                                       \
			return (t)->err = -ENOSPC;                                                 \
		i_ = (int)(t)->len;                                                                \
		buf_ = (t)->buf;                                                                   \
		if ((call_with) < 0)                                                               \
			return (t)->err = -EINVAL;                                                 \
		(t)->len = (uint32_t)i_;                                                           \
		return 0;                                                                          \
	} while (0)

int shoal_term_out_init(struct shoal_term_out *t, void *buf, uint32_t cap)
{
	*t = (struct shoal_term_out){.buf = buf, .cap = cap};
	if (cap > INT32_MAX || (cap && !buf))
		return t->err = -EINVAL; /* ei counts in int */
	PUT(t, ei_encode_version(buf_, ix_));
}

int shoal_term_put_atom(struct shoal_term_out *t, const char *atom)
{
	uint32_t end;
	char probe[4 + 1024];
	size_t n = atom ? strlen(atom) : 0;

	/* UTF-8 of at most 255 characters, as the BEAM takes it: checked as an atom term */
	probe[0] = 'v';
	probe[1] = (char)(n >> 8);
	probe[2] = (char)n;
	if (!atom || n > 1020 ||
	    (memcpy(probe + 3, atom, n), dist_term_check(probe, (uint32_t)n + 3, 0, &end)))
		return t->err ? t->err : (t->err = -EINVAL);
	PUT(t, ei_encode_atom_as(buf_, ix_, atom, ERLANG_UTF8, ERLANG_UTF8));
}

int shoal_term_put_tuple(struct shoal_term_out *t, uint32_t arity)
{
	PUT(t, ei_encode_tuple_header(buf_, ix_, (int)arity));
}

int shoal_term_put_int(struct shoal_term_out *t, int64_t v)
{
	PUT(t, ei_encode_longlong(buf_, ix_, v));
}

int shoal_term_put_double(struct shoal_term_out *t, double v)
{
	PUT(t, ei_encode_double(buf_, ix_, v));
}

int shoal_term_put_binary(struct shoal_term_out *t, const void *data, uint32_t len)
{
	if (len > INT32_MAX || (len && !data))
		return t->err ? t->err : (t->err = -EINVAL);
	PUT(t, ei_encode_binary(buf_, ix_, data, (long)len));
}

int shoal_term_put_list(struct shoal_term_out *t, uint32_t n)
{
	if (n > INT32_MAX)
		return t->err ? t->err : (t->err = -EINVAL);
	PUT(t, ei_encode_list_header(buf_, ix_, (int)n)); /* n == 0: NIL_EXT */
}

int shoal_term_put_nil(struct shoal_term_out *t)
{
	PUT(t, ei_encode_empty_list(buf_, ix_));
}

int shoal_term_put_map(struct shoal_term_out *t, uint32_t n)
{
	if (n > INT32_MAX)
		return t->err ? t->err : (t->err = -EINVAL);
	PUT(t, ei_encode_map_header(buf_, ix_, (int)n));
}

int shoal_term_in_init(struct shoal_term_in *t, const void *data, uint32_t len)
{
	uint32_t end;

	*t = (struct shoal_term_in){.buf = data, .len = len, .pos = 1};
	/* one whole term after the version byte, every length in it inside len (ei counts in
	 * int); refused, the reader is left empty so that no get reaches ei */
	if (!data || len < 2 || len > INT32_MAX || ((const unsigned char *)data)[0] != 131 ||
	    dist_term_check(data, len, 1, &end) || end != len) {
		t->len = 0;
		t->pos = 0;
		return -EBADMSG;
	}
	return 0;
}

int shoal_term_next(const struct shoal_term_in *t)
{
	int i = t->pos, type, size;

	if ((uint32_t)t->pos >= t->len)
		return -ENODATA;
	if (ei_get_type(t->buf, &i, &type, &size) < 0)
		return -EBADMSG;
	switch (type) {
	case ERL_ATOM_EXT:
	case ERL_SMALL_ATOM_EXT:
	case ERL_ATOM_UTF8_EXT:
	case ERL_SMALL_ATOM_UTF8_EXT:
		return SHOAL_TERM_ATOM;
	case ERL_SMALL_TUPLE_EXT:
	case ERL_LARGE_TUPLE_EXT:
		return SHOAL_TERM_TUPLE;
	case ERL_SMALL_INTEGER_EXT:
	case ERL_INTEGER_EXT:
		return SHOAL_TERM_INT;
	case ERL_SMALL_BIG_EXT:
	case ERL_LARGE_BIG_EXT: {
		long long v;

		i = t->pos;
		return ei_decode_longlong(t->buf, &i, &v) == 0 ? SHOAL_TERM_INT : SHOAL_TERM_OTHER;
	}
	case ERL_FLOAT_EXT:
	case NEW_FLOAT_EXT:
		return SHOAL_TERM_DOUBLE;
	case ERL_BINARY_EXT:
		return SHOAL_TERM_BINARY;
	case ERL_LIST_EXT:
		return SHOAL_TERM_LIST;
	case ERL_NIL_EXT:
		return SHOAL_TERM_NIL;
	case ERL_MAP_EXT:
		return SHOAL_TERM_MAP;
	case ERL_STRING_EXT:
		return SHOAL_TERM_STRING;
	default:
		return SHOAL_TERM_OTHER;
	}
}

/* The next term is of kind k (0), another kind (-EPROTOTYPE), none left (-ENODATA). */
static int expect(const struct shoal_term_in *t, int k)
{
	int n = shoal_term_next(t);

	return n == k ? 0 : n < 0 ? n : -EPROTOTYPE;
}

int shoal_term_get_atom(struct shoal_term_in *t, char *out, uint32_t cap)
{
	char atom[MAXATOMLEN_UTF8];
	int i = t->pos, r = expect(t, SHOAL_TERM_ATOM);

	if (r)
		return r;
	if (ei_decode_atom_as(t->buf, &i, atom, sizeof(atom), ERLANG_UTF8, NULL, NULL) < 0)
		return -EBADMSG;
	if (strlen(atom) >= cap)
		return -ENOSPC;
	memcpy(out, atom, strlen(atom) + 1);
	t->pos = i;
	return 0;
}

int shoal_term_get_tuple(struct shoal_term_in *t, uint32_t *arity)
{
	int i = t->pos, a, r = expect(t, SHOAL_TERM_TUPLE);

	if (r)
		return r;
	if (ei_decode_tuple_header(t->buf, &i, &a) < 0)
		return -EBADMSG;
	*arity = (uint32_t)a;
	t->pos = i;
	return 0;
}

int shoal_term_get_int(struct shoal_term_in *t, int64_t *v)
{
	int i = t->pos, r = expect(t, SHOAL_TERM_INT);
	long long x;

	if (r)
		return r;
	if (ei_decode_longlong(t->buf, &i, &x) < 0)
		return -EBADMSG;
	*v = x;
	t->pos = i;
	return 0;
}

int shoal_term_get_double(struct shoal_term_in *t, double *v)
{
	int i = t->pos, r = expect(t, SHOAL_TERM_DOUBLE);

	if (r)
		return r;
	if (ei_decode_double(t->buf, &i, v) < 0)
		return -EBADMSG;
	t->pos = i;
	return 0;
}

int shoal_term_get_binary(struct shoal_term_in *t, const void **data, uint32_t *len)
{
	int i = t->pos, type, size, r = expect(t, SHOAL_TERM_BINARY);

	if (r)
		return r;
	if (ei_get_type(t->buf, &i, &type, &size) < 0)
		return -EBADMSG;
	/* BINARY_EXT: the tag, a 4-byte length, the bytes (checked in bounds at init) */
	*data = t->buf + t->pos + 5;
	*len = (uint32_t)size;
	t->pos += 5 + size;
	return 0;
}

int shoal_term_get_list(struct shoal_term_in *t, uint32_t *n)
{
	int i = t->pos, a, k = shoal_term_next(t);

	if (k != SHOAL_TERM_LIST && k != SHOAL_TERM_NIL)
		return k < 0 ? k : -EPROTOTYPE;
	if (ei_decode_list_header(t->buf, &i, &a) < 0)
		return -EBADMSG;
	*n = (uint32_t)a;
	t->pos = i;
	return 0;
}

int shoal_term_get_nil(struct shoal_term_in *t)
{
	int r = expect(t, SHOAL_TERM_NIL);

	if (r)
		return r;
	t->pos++; /* NIL_EXT is its tag alone */
	return 0;
}

int shoal_term_get_map(struct shoal_term_in *t, uint32_t *n)
{
	int i = t->pos, a, r = expect(t, SHOAL_TERM_MAP);

	if (r)
		return r;
	if (ei_decode_map_header(t->buf, &i, &a) < 0)
		return -EBADMSG;
	*n = (uint32_t)a;
	t->pos = i;
	return 0;
}

int shoal_term_get_string(struct shoal_term_in *t, const void **data, uint32_t *len)
{
	const unsigned char *p = (const unsigned char *)t->buf + t->pos;
	int r = expect(t, SHOAL_TERM_STRING);

	if (r)
		return r;
	/* STRING_EXT: the tag, a 2-byte length, the bytes (checked in bounds at init) */
	*len = (uint32_t)p[1] << 8 | p[2];
	*data = p + 3;
	t->pos += 3 + (int)*len;
	return 0;
}

int shoal_term_skip(struct shoal_term_in *t)
{
	uint32_t end;

	if ((uint32_t)t->pos >= t->len)
		return -ENODATA;
	if (dist_term_check(t->buf, t->len, (uint32_t)t->pos, &end))
		return -EBADMSG;
	t->pos = (int)end;
	return 0;
}
