/* The tools' one mapping from -errno to the command's exit code (tools/exit.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tools/tools.h"

/* 2 for usage, bad config, unknown instance, a bad, foreign or truncated segment. */
static void test_tools_exit_usage(void **state)
{
	static const int usage[] = {
		EINVAL,	 ENOENT,  EEXIST,	ESTALE,	  EBADMSG, EPROTO, EPROTONOSUPPORT,
		EUCLEAN, ERANGE,  EDOM,		ENOEXEC,  EPERM,   EACCES, ENXIO,
		EFAULT,	 ELIBBAD, ENAMETOOLONG, EMSGSIZE, ENOTDIR, EISDIR, EPROTOTYPE};

	(void)state;
	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++)
		if (tool_exit_for(-usage[i]) != EXIT_USAGE)
			fail_msg("-%d (%s): %d, want %d", usage[i], strerror(usage[i]),
				 tool_exit_for(-usage[i]), EXIT_USAGE);
}

/*
 * 1 for a check that failed: a timed-out wait, a call dropped as a poison message, a lost
 * compare-and-set.
 */
static void test_tools_exit_check(void **state)
{
	(void)state;
	assert_int_equal(tool_exit_for(-ETIMEDOUT), EXIT_CHECK);
	assert_int_equal(tool_exit_for(-ECANCELED), EXIT_CHECK);
	assert_int_equal(tool_exit_for(-EBUSY), EXIT_CHECK);
}

/* 3 for a system failure, and for any errno the table does not list. */
static void test_tools_exit_system(void **state)
{
	(void)state;
	assert_int_equal(tool_exit_for(0), EXIT_OK);
	assert_int_equal(tool_exit_for(-ENOMEM), EXIT_SYSTEM);
	assert_int_equal(tool_exit_for(-ENOSPC), EXIT_SYSTEM);
	assert_int_equal(tool_exit_for(-EOWNERDEAD), EXIT_SYSTEM);
	assert_int_equal(tool_exit_for(-ENOSYS), EXIT_SYSTEM);
	assert_int_equal(tool_exit_for(-EHWPOISON), EXIT_SYSTEM);
	assert_int_equal(tool_exit_for(-9999), EXIT_SYSTEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tools_exit_usage),
		cmocka_unit_test(test_tools_exit_check),
		cmocka_unit_test(test_tools_exit_system),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
