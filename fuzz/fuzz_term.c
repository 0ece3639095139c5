/*
 * libFuzzer target: bytes as a term for include/shoal/term.h's reader. The bounded walk
 * (dist/term_check.c) must refuse whatever would make ei read past the bytes: after
 * shoal_term_in_init() accepts them, reading every term through the getters and skips
 * stays inside them (ASan watches). Also dist_term_check() alone at every offset.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ei.h>

#include "dist/dist.h"
#include "shoal/term.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

/* Read everything the reader offers, depth first. */
static void read_all(struct shoal_term_in *in)
{
	for (int guard = 0; guard < 100000; guard++) {
		char atom[300];
		const void *bin;
		uint32_t n;
		int64_t v;
		double d;

		switch (shoal_term_next(in)) {
		case SHOAL_TERM_ATOM:
			if (shoal_term_get_atom(in, atom, sizeof(atom)))
				return;
			break;
		case SHOAL_TERM_TUPLE:
			if (shoal_term_get_tuple(in, &n))
				return;
			break;
		case SHOAL_TERM_INT:
			if (shoal_term_get_int(in, &v))
				return;
			break;
		case SHOAL_TERM_DOUBLE:
			if (shoal_term_get_double(in, &d))
				return;
			break;
		case SHOAL_TERM_BINARY:
			if (shoal_term_get_binary(in, &bin, &n))
				return;
			/* touch its last byte: it must lie in the input (ASan) */
			if (n)
				sink ^= ((const volatile uint8_t *)bin)[n - 1];
			break;
		case SHOAL_TERM_OTHER:
			if (shoal_term_skip(in))
				return;
			break;
		default:
			return;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shoal_term_in in;
	uint8_t *copy;
	uint32_t end;

	if (size > 1 << 16)
		return 0;
	/* an exact-size copy: ASan catches a read one byte past it */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	for (uint32_t pos = 0; pos < size && pos < 64; pos++)
		if (dist_term_check(copy, (uint32_t)size, pos, &end) == 0 && end > size)
			abort();
	if (shoal_term_in_init(&in, copy, (uint32_t)size) == 0) {
		int i = 1;

		/* what the gateway does after the check: ei's own skip may refuse what it
		 * cannot decode (a FLOAT_EXT that is not a number), but if it takes the term it
		 * must end where the walk did */
		if (ei_skip_term((const char *)copy, &i) == 0 && (size_t)i != size)
			abort();
		read_all(&in);
	}
	free(copy);
	return 0;
}
