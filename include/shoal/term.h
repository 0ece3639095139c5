/*
 * Erlang terms for agents and clients that talk to Erlang or Elixir code through a shoal
 * node ([dist], docs/dist.md): build and read the common terms (atoms, tuples, integers,
 * floats, binaries, lists, maps) in the external term format, the bytes term_to_binary/1 makes and
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

/*
 * The message type of a term sent to a remote handle (shoal_remote(), API 1.3): the payload
 * is a whole term (version byte first) and the gateway sends it as that term; a message of
 * any other type goes as a binary.
 */
#define SHOAL_TYPE_TERM 0x7465726du /* "term" */

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
/*
 * API 1.3. A list of n > 0 elements: put_list(n), the n elements, then its tail, put_nil()
 * for a proper list ([1, 2]: put_list(2), put_int(1), put_int(2), put_nil()); put_list(0)
 * writes the empty list [] whole, as put_nil() does. A map of n pairs: put_map(n), then each
 * key followed by its value (#{count => 3}: put_map(1), put_atom("count"), put_int(3)).
 */
int shoal_term_put_list(struct shoal_term_out *t, uint32_t n);
int shoal_term_put_nil(struct shoal_term_out *t);
int shoal_term_put_map(struct shoal_term_out *t, uint32_t n);

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
#define SHOAL_TERM_OTHER  6 /* any other term (a pid, a bignum, a reference...): skip it */
/* API 1.3 (1.2 called these OTHER) */
#define SHOAL_TERM_LIST	  7 /* a list of n > 0 elements and its tail */
#define SHOAL_TERM_NIL	  8 /* the empty list [] (a proper list's tail) */
#define SHOAL_TERM_MAP	  9
#define SHOAL_TERM_STRING 10 /* a list of 1..65535 integers 0..255, as Erlang sends "abc" */

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
/*
 * API 1.3. get_list: a list (SHOAL_TERM_LIST): *n elements follow, then its tail (get_nil()
 * for a proper list; any term for an improper one); the empty list reads as *n == 0 with no
 * tail after it. get_nil: the empty list. get_map: *n key-value pairs follow, key first.
 * get_string: a SHOAL_TERM_STRING's bytes in place (a list of small integers: [1, 2] comes
 * so too); it is a whole list, no tail follows.
 */
int shoal_term_get_list(struct shoal_term_in *t, uint32_t *n);
int shoal_term_get_nil(struct shoal_term_in *t);
int shoal_term_get_map(struct shoal_term_in *t, uint32_t *n);
int shoal_term_get_string(struct shoal_term_in *t, const void **data, uint32_t *len);
/* Move past the next term, whatever it is (a tuple with all its elements). */
int shoal_term_skip(struct shoal_term_in *t);

#ifdef __cplusplus
}
#endif

#endif
