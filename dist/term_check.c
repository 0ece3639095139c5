/*
 * A bounded walk over one term in the external term format: every length and count read is
 * checked against the buffer before anything is read through it. erl_interface's decoders
 * (ei_skip_term(), ei_decode_*()) trust the lengths they read, so a malformed or truncated
 * term from the network or from a message could make them read past its end; the gateway
 * and include/shoal/term.h's reader check a term here first. No dependency on ei.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "dist/dist.h"

#define TERM_DEPTH_MAX 256 /* nested tuples, lists and maps; deeper is refused */

static uint32_t be16(const unsigned char *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Whether [p, p + n) is UTF-8 of at most max_chars characters (an atom's text: the BEAM
 * refuses a longer or malformed one, and a term it refuses costs the whole connection).
 */
static int utf8_chars_ok(const unsigned char *p, uint64_t n, uint32_t max_chars)
{
	uint32_t chars = 0;

	for (uint64_t i = 0; i < n; chars++) {
		unsigned char c = p[i];
		uint32_t k = c < 0x80		  ? 0
			     : (c & 0xe0) == 0xc0 ? 1
			     : (c & 0xf0) == 0xe0 ? 2
			     : (c & 0xf8) == 0xf0 ? 3
						  : 4;

		/* a bad lead byte, an overlong 2-byte form, too many, or cut short */
		if (k == 4 || (k == 1 && c < 0xc2) || chars >= max_chars || (k && i + k >= n))
			return 0;
		for (uint32_t j = 1; j <= k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
		i += 1 + k;
	}
	return 1;
}

/* Does [pos, pos + n) lie within len? */
static int fits(uint64_t pos, uint64_t n, uint32_t len)
{
	return pos + n <= len;
}

static int walk(const unsigned char *b, uint32_t len, uint64_t *pos, int depth);

/* count terms one after another (a tuple's elements, a list's, a map's keys and values). */
static int walk_n(const unsigned char *b, uint32_t len, uint64_t *pos, uint64_t count, int depth)
{
	/* each term is at least one byte: a count larger than what is left is a lie */
	if (count > len - (uint32_t)*pos)
		return -EBADMSG;
	for (uint64_t k = 0; k < count; k++)
		if (walk(b, len, pos, depth))
			return -EBADMSG;
	return 0;
}

/* An atom term (the node of a pid, port or reference; a fun's module). */
static int walk_atom(const unsigned char *b, uint32_t len, uint64_t *pos)
{
	uint64_t p = *pos;

	if (!fits(p, 1, len))
		return -EBADMSG;
	switch (b[p]) {
	case 'd': /* ATOM_EXT: Latin-1, one byte a character */
		if (!fits(p + 1, 2, len) || be16(b + p + 1) > 255 ||
		    !fits(p + 3, be16(b + p + 1), len))
			return -EBADMSG;
		*pos = p + 3 + be16(b + p + 1);
		return 0;
	case 'v': /* ATOM_UTF8_EXT: at most 255 characters */
		if (!fits(p + 1, 2, len) || !fits(p + 3, be16(b + p + 1), len) ||
		    !utf8_chars_ok(b + p + 3, be16(b + p + 1), 255))
			return -EBADMSG;
		*pos = p + 3 + be16(b + p + 1);
		return 0;
	case 's': /* SMALL_ATOM_EXT */
		if (!fits(p + 1, 1, len) || !fits(p + 2, b[p + 1], len))
			return -EBADMSG;
		*pos = p + 2 + b[p + 1];
		return 0;
	case 'w': /* SMALL_ATOM_UTF8_EXT */
		if (!fits(p + 1, 1, len) || !fits(p + 2, b[p + 1], len) ||
		    !utf8_chars_ok(b + p + 2, b[p + 1], 255))
			return -EBADMSG;
		*pos = p + 2 + b[p + 1];
		return 0;
	default:
		return -EBADMSG;
	}
}

/* Move *pos past the term at *pos, or -EBADMSG. */
static int walk(const unsigned char *b, uint32_t len, uint64_t *pos, int depth)
{
	uint64_t p = *pos, n;

	if (depth > TERM_DEPTH_MAX || !fits(p, 1, len))
		return -EBADMSG;
	switch (b[p++]) {
	case 'a': /* SMALL_INTEGER_EXT */
		n = 1;
		break;
	case 'b': /* INTEGER_EXT */
		n = 4;
		break;
	case 'c': /* FLOAT_EXT: 31 bytes of text, NUL-padded; ei sscanf()s it, which reads
		   * to a NUL: one must be inside */
		if (!fits(p, 31, len) || !memchr(b + p, 0, 31))
			return -EBADMSG;
		n = 31;
		break;
	case 'F': /* NEW_FLOAT_EXT */
		n = 8;
		break;
	case 'd':
	case 'v':
	case 's':
	case 'w':
		return walk_atom(b, len, pos);
	case 'j': /* NIL_EXT */
		n = 0;
		break;
	case 'k': /* STRING_EXT: bytes */
		if (!fits(p, 2, len))
			return -EBADMSG;
		n = 2 + (uint64_t)be16(b + p);
		break;
	case 'm': /* BINARY_EXT */
		if (!fits(p, 4, len))
			return -EBADMSG;
		n = 4 + (uint64_t)be32(b + p);
		break;
	case 'M': /* BIT_BINARY_EXT: length, bits in the last byte (1..8), bytes */
		if (!fits(p, 5, len) || b[p + 4] < 1 || b[p + 4] > 8 || !be32(b + p))
			return -EBADMSG;
		n = 5 + (uint64_t)be32(b + p);
		break;
	case 'n': /* SMALL_BIG_EXT: n, sign, n digits */
		if (!fits(p, 2, len))
			return -EBADMSG;
		n = 2 + (uint64_t)b[p];
		break;
	case 'o': /* LARGE_BIG_EXT */
		if (!fits(p, 5, len))
			return -EBADMSG;
		n = 5 + (uint64_t)be32(b + p);
		break;
	case 'h': /* SMALL_TUPLE_EXT */
		if (!fits(p, 1, len))
			return -EBADMSG;
		*pos = p + 1;
		return walk_n(b, len, pos, b[p], depth + 1);
	case 'i': /* LARGE_TUPLE_EXT */
		if (!fits(p, 4, len))
			return -EBADMSG;
		*pos = p + 4;
		return walk_n(b, len, pos, be32(b + p), depth + 1);
	case 'l': /* LIST_EXT: elements, then the tail */
		if (!fits(p, 4, len))
			return -EBADMSG;
		*pos = p + 4;
		return walk_n(b, len, pos, (uint64_t)be32(b + p) + 1, depth + 1);
	case 't': /* MAP_EXT: arity pairs */
		if (!fits(p, 4, len))
			return -EBADMSG;
		*pos = p + 4;
		return walk_n(b, len, pos, 2 * (uint64_t)be32(b + p), depth + 1);
	case 'g': /* PID_EXT: node, id, serial, creation (1) */
	case 'X': /* NEW_PID_EXT: creation (4) */
	case 'f': /* PORT_EXT: node, id, creation (1) */
	case 'Y': /* NEW_PORT_EXT: id, creation (4) */
	case 'x': /* V4_PORT_EXT: id (8), creation (4) */
	case 'e': /* REFERENCE_EXT: node, id, creation (1) */ {
		static const unsigned char tail[128] = {
			['g'] = 9, ['X'] = 12, ['f'] = 5, ['Y'] = 8, ['x'] = 12, ['e'] = 5};
		unsigned char tag = b[p - 1];

		*pos = p;
		if (walk_atom(b, len, pos) || !fits(*pos, tail[tag], len))
			return -EBADMSG;
		*pos += tail[tag];
		return 0;
	}
	case 'r': /* NEW_REFERENCE_EXT: words, node, creation (1), ids */
	case 'Z': /* NEWER_REFERENCE_EXT: words, node, creation (4), ids */ {
		unsigned char tag = b[p - 1];
		uint32_t words;

		if (!fits(p, 2, len))
			return -EBADMSG;
		words = be16(b + p);
		*pos = p + 2;
		if (walk_atom(b, len, pos))
			return -EBADMSG;
		n = (tag == 'r' ? 1 : 4) + 4 * (uint64_t)words;
		if (!fits(*pos, n, len))
			return -EBADMSG;
		*pos += n;
		return 0;
	}
	case 'q': /* EXPORT_EXT: module and function atoms, a small integer arity */
		*pos = p;
		if (walk_atom(b, len, pos) || walk_atom(b, len, pos) || !fits(*pos, 2, len) ||
		    b[*pos] != 'a')
			return -EBADMSG;
		*pos += 2;
		return 0;
	default:
		/*
		 * Refused: funs ('p', 'u': ei parses their insides itself, reading before it
		 * compares with their size, and a C node cannot call them), compressed terms
		 * ('P'), the atom cache, local terms
		 */
		return -EBADMSG;
	}
	if (!fits(p, n, len))
		return -EBADMSG;
	*pos = p + n;
	return 0;
}

/* See dist.h. */
int dist_term_check(const void *data, uint32_t len, uint32_t pos, uint32_t *end)
{
	uint64_t p = pos;

	if (walk(data, len, &p, 0))
		return -EBADMSG;
	*end = (uint32_t)p;
	return 0;
}
