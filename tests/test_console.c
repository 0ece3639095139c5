/*
 * The console of `shoal run` (supervisor/sup_duty.c, the event lines of shm/log.c): the
 * banner once the instance is ready, one line per notable event, --quiet and
 * --log-format json, the status line's counters and the line an orderly stop ends with.
 * Each test starts a real `shoal run` with its stdout and stderr to files and waits for the
 * lines it expects (inotify on the file), never for a time.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "supervisor/sup.h"
#include "tests/run_test_util.h"

static char buf[65536];

/* The default config with two workers: the demo, whatever the machine's core count. */
static const char *demo_config(void)
{
	static char text[4096];
	const char *w = strstr(sup_default_config, "workers = 0\n");

	assert_non_null(w);
	snprintf(text, sizeof(text), "%.*sworkers = 2\n%s", (int)(w - sup_default_config),
		 sup_default_config, w + strlen("workers = 0\n"));
	return text;
}

static const char *echo_config =
	"[instance]\nworkers = 2\nplacement = none\n"
	"[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 8\n"
	"[agent e]\ntype = echo\ncount = 10\nname = e-%02u\nworker = 0\n";

/* The banner names the instance, each worker and where it runs, the agents, the time to ready,
 * what the demo does, and what to try next. */
static void test_console_banner_demo(void **state)
{
	struct rt_run r;

	(void)state;
	rt_start(&r, "t-", "con-banner", demo_config(), NULL);
	rt_wait_ready(&r);
	/* printed before the ready byte: all of it is there now */
	rt_read_file(r.out, buf, sizeof(buf));
	if (!strstr(buf, r.inst) || !strstr(buf, "ready in") || !strstr(buf, "worker 0:") ||
	    !strstr(buf, "worker 1:") || !strstr(buf, "core") || !strstr(buf, "tuner-000") ||
	    !strstr(buf, "coordinator") || !strstr(buf, "pool evaluators") ||
	    !strstr(buf, "hyperparameter search") || !strstr(buf, "consensus") ||
	    !strstr(buf, "shoal inspect") || !strstr(buf, "shoal top") ||
	    !strstr(buf, "shoal var get best.score") ||
	    !strstr(buf, "shoal call coordinator best") || !strstr(buf, "Ctrl-C") ||
	    !strstr(buf, "SIGTERM"))
		fail_msg("the banner lacks a part: %s", buf);
	rt_stop(&r);
}

/* Another config's banner lists its agents and says nothing of the demo. */
static void test_console_banner_other_config(void **state)
{
	struct rt_run r;

	(void)state;
	rt_start(&r, "t-", "con-banner2", echo_config, NULL);
	rt_wait_ready(&r);
	rt_read_file(r.out, buf, sizeof(buf));
	if (!strstr(buf, "ready in") || !strstr(buf, "10 x echo") || !strstr(buf, "e-00") ||
	    !strstr(buf, "e-09") || !strstr(buf, "not pinned"))
		fail_msg("the banner lacks a part: %s", buf);
	assert_null(strstr(buf, "hyperparameter"));
	rt_stop(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_console_banner_demo, rt_teardown),
		cmocka_unit_test_teardown(test_console_banner_other_config, rt_teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
