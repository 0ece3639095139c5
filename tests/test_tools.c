/*
 * The tools' one mapping from -errno to the command's exit code (tools/exit.c), and what every
 * subcommand of the shoal binary shares: --help, the "shoal NAME: " error prefix, version --json.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/skip.h"

#include "shoal/shoal.h"
#include "tools/tools.h"

#include "tests/run_test_util.h"

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

/* The subcommand names `shoal --help` lists (its "  NAME  summary" lines), at most max. */
static size_t list_commands(char names[][16], size_t max)
{
	static char out[8192];
	size_t n = 0;

	assert_int_equal(rt_run_tool(NULL, out, sizeof(out), (const char *[]){"--help", NULL}), 0);
	for (char *line = strtok(out, "\n"); line && n < max; line = strtok(NULL, "\n"))
		if (line[0] == ' ' && line[1] == ' ' && line[2] != ' ' &&
		    sscanf(line, "%15s", names[n]) == 1)
			n++;
	assert_true(n >= 10); /* the listing did not change shape under the test */
	return n;
}

/* Every subcommand answers --help with its usage on stdout, exit 0. */
static void test_tools_help_every_command(void **state)
{
	static char out[16384];
	char names[64][16], want[64];
	size_t n = list_commands(names, 64);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		int ex = rt_run_tool(NULL, out, sizeof(out),
				     (const char *[]){names[i], "--help", NULL});

		snprintf(want, sizeof(want), "usage: shoal %.15s", names[i]);
		if (ex != 0 || strncmp(out, want, strlen(want)))
			fail_msg("shoal %s --help: exit %d, said: %.300s", names[i], ex, out);
	}
}

/* Every subcommand says a bad option as "shoal NAME: ..." and exits 2. */
static void test_tools_errors_prefixed(void **state)
{
	static char out[16384];
	char names[64][16], want[64];
	size_t n = list_commands(names, 64);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		int ex = rt_run_tool(NULL, out, sizeof(out),
				     (const char *[]){names[i], "--no-such-option", NULL});

		snprintf(want, sizeof(want), "shoal %.15s: ", names[i]);
		if (ex != 2 || strncmp(out, want, strlen(want)))
			fail_msg("shoal %s --no-such-option: exit %d, said: %.300s", names[i], ex,
				 out);
	}
	/* and the commands with subcommands, given one they do not have */
	for (size_t i = 0; i < 3; i++) {
		static const char *const cmds[] = {"pool", "var", "bench"};
		int ex = rt_run_tool(NULL, out, sizeof(out),
				     (const char *[]){cmds[i], "frob", NULL});

		snprintf(want, sizeof(want), "shoal %s: ", cmds[i]);
		if (ex != 2 || strncmp(out, want, strlen(want)) || !strstr(out, "'frob'"))
			fail_msg("shoal %s frob: exit %d, said: %.300s", cmds[i], ex, out);
	}
}

/* shoal version --json: one JSON object with the version, API and layout versions. */
static void test_tools_version_json(void **state)
{
	char out[1024];
	json_error_t e;
	json_t *o;

	(void)state;
	assert_int_equal(
		rt_run_tool(NULL, out, sizeof(out), (const char *[]){"version", "--json", NULL}),
		0);
	o = json_loads(out, 0, &e);
	if (!json_is_object(o))
		fail_msg("shoal version --json: not a JSON object (%s): %s", e.text, out);
	assert_string_equal(json_string_value(json_object_get(o, "version")), SHOAL_VERSION_STRING);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "api"), "major")),
			 SHOAL_API_MAJOR);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "api"), "minor")),
			 SHOAL_API_MINOR);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "layout"), "major")),
			 SHOAL_LAYOUT_MAJOR);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "layout"), "minor")),
			 SHOAL_LAYOUT_MINOR);
	json_decref(o);
	/* and an option it does not know is an error, not ignored */
	assert_int_equal(
		rt_run_tool(NULL, out, sizeof(out), (const char *[]){"version", "--jsn", NULL}), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tools_exit_usage),
		cmocka_unit_test(test_tools_exit_check),
		cmocka_unit_test(test_tools_exit_system),
		cmocka_unit_test(test_tools_help_every_command),
		cmocka_unit_test(test_tools_errors_prefixed),
		cmocka_unit_test(test_tools_version_json),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
