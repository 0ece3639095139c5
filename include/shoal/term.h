/*
 * Erlang terms for agents and clients that talk to Erlang or Elixir code through a shoal
 * node ([dist], docs/dist.md): build and read the common terms (atoms, tuples, integers,
 * floats, binaries) in the external term format, the bytes term_to_binary/1 makes and
 * binary_to_term/1 reads. A message from Erlang that is not a binary arrives so, flagged
 * SHOAL_MSG_TERM; a call's reply built so and marked with shoal_reply_as_term() (agent.h)
 * reaches a gen_server:call caller as the term itself, e.g. {ok, 42}.
 *
 * Built over erl_interface's ei (Debian's erlang-dev), so a shoal built without it
 * (-Ddist=disabled) has these functions return -ENOTSUP. No allocation: the writer fills
 * the caller's buffer, the reader points into the caller's bytes. Any thread.
 */
#ifndef SHOAL_TERM_H
#define SHOAL_TERM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A term being written into buf (cap bytes); len bytes written so far. */
struct shoal_term_out {
	char *buf;
	uint32_t cap;
	uint32_t len;
	int err; /* the first error (-ENOSPC: buf too small); later puts write nothing */
};

/*
 * Start a term in buf: its version byte (131). Then one put per term, depth first: a
 * tuple's header, then its arity elements. 0, or -ENOSPC (buf too small), -EINVAL (an
 * atom that is not UTF-8 of 1..255 characters, a NULL binary with a length, cap over
 * INT32_MAX), -ENOTSUP; the first error stays in t->err and later puts return it.
 */
int shoal_term_out_init(struct shoal_term_out *t, void *buf, uint32_t cap);
int shoal_term_put_atom(struct shoal_term_out *t, const char *atom); /* up to 255 UTF-8 bytes */
int shoal_term_put_tuple(struct shoal_term_out *t, uint32_t arity);
int shoal_term_put_int(struct shoal_term_out *t, int64_t v);
int shoal_term_put_double(struct shoal_term_out *t, double v);
int shoal_term_put_binary(struct shoal_term_out *t, const void *data, uint32_t len);

/* A term being read from data (len bytes): pos is the next term's offset. */
struct shoal_term_in {
	const char *buf;
	uint32_t len;
	int pos;
};

/* What the next term is (shoal_term_next()). */
#define SHOAL_TERM_ATOM	  1
#define SHOAL_TERM_TUPLE  2
#define SHOAL_TERM_INT	  3 /* an integer that fits int64_t */
#define SHOAL_TERM_DOUBLE 4
#define SHOAL_TERM_BINARY 5
#define SHOAL_TERM_OTHER  6 /* any other term (a list, a map, a pid, a bignum...): skip it */

/*
 * Start reading data: 0, or -EBADMSG (not one whole term after a version byte 131: a
 * length pointing past the end, bytes left over, a malformed atom, a fun, a compressed
 * term, nesting deeper than 256), -ENOTSUP; refused, the reader reads nothing. Each get
 * reads the next term if it is of its kind and moves past it: 0, or -EPROTOTYPE (another
 * kind: nothing moves), -ENODATA (no term left), -ENOSPC (get_atom: cap too small).
 */
int shoal_term_in_init(struct shoal_term_in *t, const void *data, uint32_t len);
/* The next term's kind (SHOAL_TERM_*), or -ENODATA at the end, -EBADMSG. */
int shoal_term_next(const struct shoal_term_in *t);
int shoal_term_get_atom(struct shoal_term_in *t, char *out, uint32_t cap);
int shoal_term_get_tuple(struct shoal_term_in *t, uint32_t *arity);
int shoal_term_get_int(struct shoal_term_in *t, int64_t *v);
int shoal_term_get_double(struct shoal_term_in *t, double *v);
/* A binary's bytes, in place (*data points into the term). */
int shoal_term_get_binary(struct shoal_term_in *t, const void **data, uint32_t *len);
/* Move past the next term, whatever it is (a tuple with all its elements). */
int shoal_term_skip(struct shoal_term_in *t);

#ifdef __cplusplus
}
#endif

#endif
