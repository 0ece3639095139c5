/*
 * test_term: Erlang terms (include/shoal/term.h over ei, dist/term.c) and the bounded walk
 * that guards ei's decoders (dist/term_check.c): vectors as term_to_binary/1 makes them,
 * a round trip through the writer and the reader, a buffer too small, and malformed input
 * (truncated, lying lengths, too deep) refused without reading past the buffer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dist/dist.h"
#include "shoal/term.h"
#include "tests/skip.h"

/* {ok,42}, as OTP 25's term_to_binary writes it (ATOM_EXT) */
static const unsigned char ok42[] = {131, 104, 2, 100, 0, 2, 'o', 'k', 97, 42};
/* term_to_binary({<<"hi">>, 3.5, 1 bsl 40 (a SMALL_BIG), [1|2], #{}}) in OTP 25 */
static const unsigned char mixed[] = {131, 104, 5, 109, 0, 0,	0, 2,  104, 105, 70, 64, 12, 0,
				      0,   0,	0, 0,	0, 110, 6, 0,  0,   0,	 0,  0,	 0,  1,
				      108, 0,	0, 0,	1, 97,	1, 97, 2,   116, 0,  0,	 0,  0};

/* A whole term must check, and end where the buffer does. */
static void test_term_check_valid(void **state)
{
	uint32_t end;

	(void)state;
	assert_int_equal(dist_term_check(ok42, sizeof(ok42), 1, &end), 0);
	assert_int_equal(end, sizeof(ok42));
	assert_int_equal(dist_term_check(mixed, sizeof(mixed), 1, &end), 0);
	assert_int_equal(end, sizeof(mixed));
}

/* Every prefix of a valid term is refused, and so are lying lengths and deep nesting. */
static void test_term_check_malformed(void **state)
{
	/* a list claiming 4 billion elements, a binary claiming more than is there */
	static const unsigned char biglist[] = {131, 108, 255, 255, 255, 255, 106};
	static const unsigned char bigbin[] = {131, 109, 0, 0, 1, 0, 'x'};
	static const unsigned char badtag[] = {131, 'P', 0, 0, 0, 1, 0};
	static unsigned char deep[1 + 2 * 300 + 1];
	uint32_t end;

	(void)state;
	for (uint32_t n = 1; n < sizeof(mixed); n++)
		assert_int_equal(dist_term_check(mixed, n, 1, &end), -EBADMSG);
	assert_int_equal(dist_term_check(biglist, sizeof(biglist), 1, &end), -EBADMSG);
	assert_int_equal(dist_term_check(bigbin, sizeof(bigbin), 1, &end), -EBADMSG);
	assert_int_equal(dist_term_check(badtag, sizeof(badtag), 1, &end), -EBADMSG);
	/* 300 nested 1-tuples around a nil: deeper than the walk goes */
	deep[0] = 131;
	for (int i = 0; i < 300; i++) {
		deep[1 + 2 * i] = 104;
		deep[2 + 2 * i] = 1;
	}
	deep[sizeof(deep) - 1] = 106;
	assert_int_equal(dist_term_check(deep, sizeof(deep), 1, &end), -EBADMSG);
	/* 256 levels are still taken */
	deep[1 + 2 * 256] = 106;
	assert_int_equal(dist_term_check(deep, 2 + 2 * 256, 1, &end), 0);
	assert_int_equal(end, 2 + 2 * 256);
}

/*
 * What ei would read past a buffer, or the BEAM would refuse (closing the connection):
 * refused by the walk. A FLOAT_EXT with no NUL in its 31 bytes (ei sscanf()s it), a fun
 * (ei parses its insides before it compares with its size), an atom that is not UTF-8 or
 * has more than 255 characters, a bit binary with 0 bits in its last byte. And kinds it
 * takes: a pid, a reference, an export, a Latin-1 atom, a 255-character atom.
 */
static void test_term_check_kinds(void **state)
{
	static const unsigned char nonul[] = {
		131, 'c', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1',
		'1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1'};
	static const unsigned char fun[] = {131, 'p', 0, 0, 0, 4, 'j'};
	static const unsigned char badutf8[] = {131, 'w', 2, 0xc3, 0x28};
	static const unsigned char bits0[] = {131, 'M', 0, 0, 0, 1, 0, 0xff};
	/* <0.1.2> of node a@b: NEW_PID_EXT */
	static const unsigned char pid[] = {131, 'X', 'w', 3, 'a', '@', 'b', 0, 0, 0,
					    1,	 0,   0,   0, 2,   0,	0,   0, 1};
	/* fun erlang:self/0 */
	static const unsigned char export[] = {131, 'q', 'w', 6,   'e', 'r', 'l', 'a', 'n',
					       'g', 'w', 4,   's', 'e', 'l', 'f', 'a', 0};
	static unsigned char longatom[3 + 256 + 1];
	uint32_t end;

	(void)state;
	assert_int_equal(dist_term_check(nonul, sizeof(nonul), 1, &end), -EBADMSG);
	assert_int_equal(dist_term_check(fun, sizeof(fun), 1, &end), -EBADMSG);
	assert_int_equal(dist_term_check(badutf8, sizeof(badutf8), 1, &end), -EBADMSG);
	assert_int_equal(dist_term_check(bits0, sizeof(bits0), 1, &end), -EBADMSG);
	assert_int_equal(dist_term_check(pid, sizeof(pid), 1, &end), 0);
	assert_int_equal(end, sizeof(pid));
	assert_int_equal(dist_term_check(export, sizeof(export), 1, &end), 0);
	assert_int_equal(end, sizeof(export));
	/* ATOM_UTF8_EXT of 255 'x': taken; of 256: refused */
	longatom[0] = 131;
	longatom[1] = 'v';
	longatom[2] = 0;
	memset(longatom + 4, 'x', 256);
	longatom[3] = 255;
	assert_int_equal(dist_term_check(longatom, 4 + 255, 1, &end), 0);
	longatom[2] = 1;
	longatom[3] = 0;
	assert_int_equal(dist_term_check(longatom, 4 + 256, 1, &end), -EBADMSG);
}

/* The reader on Erlang's own bytes. */
static void test_term_read_vectors(void **state)
{
	struct shoal_term_in in;
	uint32_t arity, len;
	const void *bin;
	char atom[8];
	int64_t v;
	double d;

	(void)state;
	if (!dist_is_available()) {
		assert_int_equal(shoal_term_in_init(&in, ok42, sizeof(ok42)), -ENOTSUP);
		skip_because("built without libei: the term functions say -ENOTSUP (checked)");
	}
	assert_int_equal(shoal_term_in_init(&in, ok42, sizeof(ok42)), 0);
	assert_int_equal(shoal_term_next(&in), SHOAL_TERM_TUPLE);
	assert_int_equal(shoal_term_get_int(&in, &v), -EPROTOTYPE);
	assert_int_equal(shoal_term_get_tuple(&in, &arity), 0);
	assert_int_equal(arity, 2);
	assert_int_equal(shoal_term_get_atom(&in, atom, 2), -ENOSPC);
	assert_int_equal(shoal_term_get_atom(&in, atom, sizeof(atom)), 0);
	assert_string_equal(atom, "ok");
	assert_int_equal(shoal_term_get_int(&in, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(shoal_term_next(&in), -ENODATA);

	assert_int_equal(shoal_term_in_init(&in, mixed, sizeof(mixed)), 0);
	assert_int_equal(shoal_term_get_tuple(&in, &arity), 0);
	assert_int_equal(arity, 5);
	assert_int_equal(shoal_term_get_binary(&in, &bin, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(bin, "hi", 2);
	assert_int_equal(shoal_term_get_double(&in, &d), 0);
	assert_true(d == 3.5);
	assert_int_equal(shoal_term_get_int(&in, &v), 0);
	assert_int_equal(v, 1099511627776LL);
	assert_int_equal(shoal_term_next(&in), SHOAL_TERM_LIST); /* [1|2] */
	assert_int_equal(shoal_term_skip(&in), 0);
	assert_int_equal(shoal_term_next(&in), SHOAL_TERM_MAP); /* #{} */
	assert_int_equal(shoal_term_skip(&in), 0);
	assert_int_equal(shoal_term_next(&in), -ENODATA);
	/* not a term, a truncated one, trailing bytes */
	assert_int_equal(shoal_term_in_init(&in, "hi", 2), -EBADMSG);
	assert_int_equal(shoal_term_in_init(&in, mixed, sizeof(mixed) - 1), -EBADMSG);
	{
		unsigned char more[sizeof(ok42) + 1];

		memcpy(more, ok42, sizeof(ok42));
		more[sizeof(ok42)] = 106;
		assert_int_equal(shoal_term_in_init(&in, more, sizeof(more)), -EBADMSG);
	}
}

/* What the writer builds, the reader reads back; a small buffer says -ENOSPC and stays so. */
static void test_term_write_round_trip(void **state)
{
	char buf[128], small[8], atom[16];
	struct shoal_term_out o;
	struct shoal_term_in in;
	uint32_t arity, len;
	const void *bin;
	int64_t v;
	double d;

	(void)state;
	if (!dist_is_available())
		skip_because("built without libei");
	assert_int_equal(shoal_term_out_init(&o, buf, sizeof(buf)), 0);
	assert_int_equal(shoal_term_put_tuple(&o, 4), 0);
	assert_int_equal(shoal_term_put_atom(&o, "réponse"), 0);
	assert_int_equal(shoal_term_put_int(&o, -5000000000LL), 0);
	assert_int_equal(shoal_term_put_double(&o, -0.25), 0);
	assert_int_equal(shoal_term_put_binary(&o, "\0\1\2", 3), 0);
	assert_int_equal(o.err, 0);
	assert_int_equal(shoal_term_in_init(&in, buf, o.len), 0);
	assert_int_equal(shoal_term_get_tuple(&in, &arity), 0);
	assert_int_equal(arity, 4);
	assert_int_equal(shoal_term_get_atom(&in, atom, sizeof(atom)), 0);
	assert_string_equal(atom, "réponse");
	assert_int_equal(shoal_term_get_int(&in, &v), 0);
	assert_int_equal(v, -5000000000LL);
	assert_int_equal(shoal_term_get_double(&in, &d), 0);
	assert_true(d == -0.25);
	assert_int_equal(shoal_term_get_binary(&in, &bin, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(bin, "\0\1\2", 3);
	/* an atom that is not UTF-8 is refused, and the error sticks */
	assert_int_equal(shoal_term_out_init(&o, buf, sizeof(buf)), 0);
	assert_int_equal(shoal_term_put_atom(&o, "\xc3\x28"), -EINVAL);
	assert_int_equal(shoal_term_put_int(&o, 1), -EINVAL);
	/* a refused reader reads nothing */
	assert_int_equal(shoal_term_in_init(&in, "\x83\x6d\0\0\1\0", 6), -EBADMSG);
	assert_int_equal(shoal_term_next(&in), -ENODATA);
	/* too small: the error sticks, nothing past cap is written */
	memset(small, 0x5a, sizeof(small));
	assert_int_equal(shoal_term_out_init(&o, small, 6), 0);
	assert_int_equal(shoal_term_put_tuple(&o, 1), 0);
	assert_int_equal(shoal_term_put_binary(&o, "abcdef", 6), -ENOSPC);
	assert_int_equal(shoal_term_put_int(&o, 1), -ENOSPC);
	assert_int_equal(o.err, -ENOSPC);
	assert_int_equal((unsigned char)small[6], 0x5a);
	assert_int_equal((unsigned char)small[7], 0x5a);
}

/* term_to_binary([1000, "ab", #{a => []}, [1 | 2]]) in OTP 25 (a map's atom as ATOM_EXT) */
static const unsigned char lists[] = {131, 108, 0,   0,	 0,   4, 98, 0,	 0, 3,	 232, 107,
				      0,   2,	97,  98, 116, 0, 0,  0,	 1, 100, 0,   1,
				      97,  106, 108, 0,	 0,   0, 1,  97, 1, 97,	 2,   106};

/* Lists (proper, improper, empty, as strings) and maps read as term_to_binary/1 writes them. */
static void test_term_read_lists_maps(void **state)
{
	struct shoal_term_in in;
	uint32_t n, len;
	const void *str;
	char atom[8];
	int64_t v;

	(void)state;
	if (!dist_is_available())
		skip_because("built without libei");
	assert_int_equal(shoal_term_in_init(&in, lists, sizeof(lists)), 0);
	assert_int_equal(shoal_term_get_map(&in, &n), -EPROTOTYPE);
	assert_int_equal(shoal_term_get_list(&in, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(shoal_term_get_int(&in, &v), 0);
	assert_int_equal(v, 1000);
	/* "ab" is a list of small integers: a string, whole, no tail of its own */
	assert_int_equal(shoal_term_next(&in), SHOAL_TERM_STRING);
	assert_int_equal(shoal_term_get_list(&in, &n), -EPROTOTYPE);
	assert_int_equal(shoal_term_get_string(&in, &str, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(str, "ab", 2);
	assert_int_equal(shoal_term_get_map(&in, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(shoal_term_get_atom(&in, atom, sizeof(atom)), 0);
	assert_string_equal(atom, "a");
	/* [] reads as a list of none, and as nil */
	assert_int_equal(shoal_term_next(&in), SHOAL_TERM_NIL);
	assert_int_equal(shoal_term_get_list(&in, &n), 0);
	assert_int_equal(n, 0);
	/* [1 | 2]: one element, then the improper tail 2 */
	assert_int_equal(shoal_term_get_list(&in, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(shoal_term_get_int(&in, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(shoal_term_get_nil(&in), -EPROTOTYPE);
	assert_int_equal(shoal_term_get_int(&in, &v), 0);
	assert_int_equal(v, 2);
	/* the outer list's tail */
	assert_int_equal(shoal_term_get_nil(&in), 0);
	assert_int_equal(shoal_term_next(&in), -ENODATA);
	assert_int_equal(shoal_term_get_nil(&in), -ENODATA);
}

/* Lists and maps written byte for byte as term_to_binary/1 would, and read back. */
static void test_term_write_lists_maps(void **state)
{
	/* [7, #{k => <<"v">>}] (the atom as SMALL_ATOM_UTF8_EXT, what ei writes), and [] */
	static const unsigned char want[] = {131, 108, 0, 0,   0,   2, 97, 7, 116, 0,	0,  0,
					     1,	  119, 1, 'k', 109, 0, 0,  0, 1,   'v', 106};
	static const unsigned char nil[] = {131, 106};
	char buf[64], small[4];
	struct shoal_term_out o;
	struct shoal_term_in in;
	uint32_t n;

	(void)state;
	if (!dist_is_available())
		skip_because("built without libei");
	assert_int_equal(shoal_term_out_init(&o, buf, sizeof(buf)), 0);
	assert_int_equal(shoal_term_put_list(&o, 2), 0);
	assert_int_equal(shoal_term_put_int(&o, 7), 0);
	assert_int_equal(shoal_term_put_map(&o, 1), 0);
	assert_int_equal(shoal_term_put_atom(&o, "k"), 0);
	assert_int_equal(shoal_term_put_binary(&o, "v", 1), 0);
	assert_int_equal(shoal_term_put_nil(&o), 0);
	assert_int_equal(o.len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(shoal_term_in_init(&in, buf, o.len), 0);
	assert_int_equal(shoal_term_get_list(&in, &n), 0);
	assert_int_equal(n, 2);
	/* put_list(0) is [] whole, as put_nil() */
	assert_int_equal(shoal_term_out_init(&o, buf, sizeof(buf)), 0);
	assert_int_equal(shoal_term_put_list(&o, 0), 0);
	assert_int_equal(o.len, sizeof(nil));
	assert_memory_equal(buf, nil, sizeof(nil));
	/* too small: the error sticks */
	assert_int_equal(shoal_term_out_init(&o, small, sizeof(small)), 0);
	assert_int_equal(shoal_term_put_map(&o, 3), -ENOSPC);
	assert_int_equal(shoal_term_put_nil(&o), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_term_check_valid),
		cmocka_unit_test(test_term_check_malformed),
		cmocka_unit_test(test_term_check_kinds),
		cmocka_unit_test(test_term_read_vectors),
		cmocka_unit_test(test_term_write_round_trip),
		cmocka_unit_test(test_term_read_lists_maps),
		cmocka_unit_test(test_term_write_lists_maps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
