/*
 * shoal stress: the checker's bookkeeping against fabricated record streams (each violation
 * it must catch, and what it must let pass), and a short stress run of the real command.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/skip.h"
#include "tools/stress.h"

/* the whole run (about 12 s of workload, the start and the wind-down) between outputs */
#define TIMEOUT_MS 60000
#include "tests/run_test_util.h"
#include "shm/registry.h"

/* A sender that sends 1..n, each accepted. */
static void send_all(struct stress_pair *p, uint64_t n)
{
	stress_pair_recover(p);
	for (uint64_t s = 1; s <= n; s++) {
		stress_pair_begin(p, s);
		stress_pair_commit(p, s);
		stress_pair_end(p);
	}
}

/* Every number sent and delivered once, in order: nothing to report. */
static void test_stress_checker_clean(void **state)
{
	struct stress_pair p = {0};
	struct stress_pair_result r;

	(void)state;
	send_all(&p, 5);
	for (uint64_t s = 1; s <= 5; s++)
		assert_int_equal(stress_pair_note(&p, s, false), STRESS_NEW);
	stress_pair_check(&p, &r);
	assert_int_equal(r.sent, 5);
	assert_int_equal(r.delivered, 5);
	assert_int_equal(r.lost, 0);
	assert_false(r.uncheckable);
}

/* A number skipped (3) and one never delivered (5): both lost, the first named. */
static void test_stress_checker_lost(void **state)
{
	struct stress_pair p = {0};
	struct stress_pair_result r;

	(void)state;
	send_all(&p, 5);
	stress_pair_note(&p, 1, false);
	stress_pair_note(&p, 2, false);
	assert_int_equal(stress_pair_note(&p, 4, false), STRESS_NEW);
	stress_pair_check(&p, &r);
	assert_int_equal(r.sent, 5);
	assert_int_equal(r.delivered, 3);
	assert_int_equal(r.lost, 2);
	assert_int_equal(r.first_lost, 3);
}

/*
 * A sender killed mid-send (6 under way, never committed) and replaced: 6 may or may not
 * have gone, so its absence is no loss, and the replacement's 7 after it is no gap either.
 */
static void test_stress_checker_maybe_is_not_lost(void **state)
{
	struct stress_pair p = {0};
	struct stress_pair_result r;

	(void)state;
	send_all(&p, 5);
	stress_pair_begin(&p, 6); /* ... and the sender dies */
	for (uint64_t s = 1; s <= 5; s++)
		stress_pair_note(&p, s, false);
	stress_pair_check(&p, &r);
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.maybe, 0); /* not below next yet: the dead send's range */
	stress_pair_recover(&p);      /* the next incarnation */
	assert_int_equal(atomic_load(&p.next), 7);
	stress_pair_begin(&p, 7);
	stress_pair_commit(&p, 7);
	stress_pair_end(&p);
	assert_int_equal(stress_pair_note(&p, 7, false), STRESS_NEW);
	stress_pair_check(&p, &r);
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.maybe, 1);
	assert_int_equal(r.sent, 6);
	assert_int_equal(r.delivered, 6);
}

/* A number delivered twice: a violation without the flag, a redelivery with it. */
static void test_stress_checker_duplicate(void **state)
{
	struct stress_pair p = {0};

	(void)state;
	send_all(&p, 3);
	stress_pair_note(&p, 1, false);
	stress_pair_note(&p, 2, false);
	assert_int_equal(stress_pair_note(&p, 2, true), STRESS_REDELIVERY);
	assert_int_equal(atomic_load(&p.redelivered), 1);
	assert_int_equal(atomic_load(&p.dup), 0);
	assert_int_equal(stress_pair_note(&p, 2, false), STRESS_DUP);
	assert_int_equal(stress_pair_note(&p, 1, false), STRESS_DUP);
	assert_int_equal(atomic_load(&p.dup), 2);
}

/* A skipped number arriving after a later one, unflagged: out of order. */
static void test_stress_checker_out_of_order(void **state)
{
	struct stress_pair p = {0};

	(void)state;
	send_all(&p, 3);
	stress_pair_note(&p, 1, false);
	stress_pair_note(&p, 3, false);
	assert_int_equal(stress_pair_note(&p, 2, false), STRESS_OOO);
	assert_int_equal(atomic_load(&p.ooo), 1);
	/* a redelivery of an earlier number is allowed, flagged */
	assert_int_equal(stress_pair_note(&p, 1, true), STRESS_REDELIVERY);
	assert_int_equal(atomic_load(&p.ooo), 1);
}

/* A payload changed in any byte, cut short or lengthened fails its check. */
static void test_stress_checker_corrupt(void **state)
{
	unsigned char buf[STRESS_MSG_MAX + 8];
	struct stress_payload hd;
	uint32_t len;

	(void)state;
	for (uint64_t seq = 1; seq < 80; seq++) {
		len = stress_payload_make(buf, STRESS_K_STREAM, 3, 4, seq);
		assert_int_equal(stress_payload_check(buf, len, &hd), 0);
		assert_int_equal(hd.seq, seq);
		assert_int_equal(hd.from, 3);
		assert_int_equal(hd.to, 4);
		for (uint32_t i = 0; i < len; i++) {
			buf[i] ^= 0x10;
			assert_int_equal(stress_payload_check(buf, len, &hd), -EBADMSG);
			buf[i] ^= 0x10;
		}
		assert_int_equal(stress_payload_check(buf, len - 1, &hd), -EBADMSG);
		assert_int_equal(stress_payload_check(buf, len + 1, &hd), -EBADMSG);
	}
	assert_int_equal(stress_payload_check(NULL, 0, &hd), -EBADMSG);
}

/* Only the first violation is kept, whole. */
static void test_stress_checker_first_violation(void **state)
{
	struct stress_violation v = {0};

	(void)state;
	stress_violation_note(&v, STRESS_V_DUP, 1, 2, 3, 4);
	stress_violation_note(&v, STRESS_V_CORRUPT, 5, 6, 7, 8);
	assert_int_equal(atomic_load(&v.set), 2);
	assert_int_equal(v.kind, STRESS_V_DUP);
	assert_int_equal(v.from, 1);
	assert_int_equal(v.to, 2);
	assert_int_equal(v.seq, 3);
}

/*
 * A short stress of the real command: it exits 0, and its JSON summary shows faults that
 * happened (kills, restarts) and no message lost.
 */
static void test_stress_run_short(void **state)
{
	static char out[1 << 20];
	char inst[32], *js;
	json_t *o, *lost, *kills, *restarts, *result;
	json_error_t jerr;
	int ex;

	(void)state;
#ifdef SHOAL_PLANTED_LOSS
	skip_because("a build with the planted loss (-Dplanted_loss=true): its run must fail, "
		     "test_stress_run_planted_loss checks that instead");
#endif
	snprintf(inst, sizeof(inst), "tstress-%d", (int)getpid());
	ex = rt_run_tool(inst, out, sizeof(out),
			 (const char *[]){"stress", "--seconds", "12", "--agents", "6", "--clients",
					  "3", "--seed", "7", "--json", NULL});
	js = strstr(out, "\n{");
	js = js ? js + 1 : (out[0] == '{' ? out : NULL);
	if (!js)
		fail_msg("shoal stress: exit %d, no JSON summary in: %.2000s", ex, out);
	o = json_loads(js, 0, &jerr);
	if (!o)
		fail_msg("shoal stress: the summary is not JSON (%s): %.2000s", jerr.text, js);
	result = json_object_get(o, "result");
	lost = json_object_get(o, "lost");
	kills = json_object_get(o, "kills");
	restarts = json_object_get(o, "restarts");
	if (ex != 0 || !json_is_string(result) || strcmp(json_string_value(result), "pass"))
		fail_msg("shoal stress: exit %d: %.3000s", ex, out);
	assert_true(json_is_integer(lost) && json_integer_value(lost) == 0);
	assert_true(json_is_integer(kills) && json_integer_value(kills) > 0);
	assert_true(json_is_integer(restarts) && json_integer_value(restarts) > 0);
	assert_true(json_integer_value(json_object_get(o, "delivered")) > 0);
	json_decref(o);
}

/*
 * A worker-stop due at the same moment as a worker-kill of the same worker: the killed
 * worker still shows RUNNING until the supervisor notices its death, and was picked to be
 * stopped for a hang; its exit then read 'signal' and the run failed "hang detected" (the
 * hour's soak did, once in 4,200 kills). The stop must go to a worker the tool has not
 * killed, or be skipped: the run passes.
 */
static void test_stress_run_kill_then_stop(void **state)
{
	static char out[1 << 20];
	char inst[32], path[] = "/tmp/shoal-test-schedule-XXXXXX";
	static const char sched[] = "seed 5\n500 worker-kill 0\n500 worker-stop 0\n";
	int ex, fd;

	(void)state;
#ifdef SHOAL_PLANTED_LOSS
	skip_because("a build with the planted loss (-Dplanted_loss=true): its runs must fail");
#endif
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, sched, sizeof(sched) - 1), (ssize_t)sizeof(sched) - 1);
	close(fd);
	snprintf(inst, sizeof(inst), "tkstop-%d", (int)getpid());
	ex = rt_run_tool(inst, out, sizeof(out),
			 (const char *[]){"stress", "--seconds", "3", "--agents", "4", "--clients",
					  "1", "--workers", "2", "--replay", path, NULL});
	unlink(path);
	if (ex != 0)
		fail_msg("shoal stress, a worker killed and then stopped at once: exit %d: %.3000s",
			 ex, out);
}

/*
 * --attach-ok: a stress of a running instance started by someone else. One without the
 * stress plugin is refused, naming the fix, and left as it was; one that loads it goes
 * through the chaos, the books hold, and it runs on afterwards without the stable agents.
 */
static void test_stress_run_attached(void **state)
{
	static char out[1 << 20];
	const char *plugin = getenv("SHOAL_TEST_STRESS_PLUGIN");
	const char *args[] = {"stress",	   "--attach-ok", "--seconds", "5", "--agents", "4",
			      "--clients", "1",		  "--seed",    "9", "--json",	NULL};
	char cfg[1024], *js;
	struct rt_run r;
	struct rt_client c;
	shoal_handle_t h;
	json_error_t jerr;
	json_t *o;
	int ex;

	(void)state;
#ifdef SHOAL_PLANTED_LOSS
	skip_because("a build with the planted loss (-Dplanted_loss=true): its runs must fail");
#endif
	if (!plugin)
		skip_because("SHOAL_TEST_STRESS_PLUGIN names no stress.so (meson test sets it)");
	rt_start(&r, "t-att", "plain", "[instance]\nworkers = 1\nplacement = none\n", NULL);
	rt_wait_ready(&r);
	ex = rt_run_tool(r.inst, out, sizeof(out), args);
	if (ex != 3 || !strstr(out, "has no agent type 'stress'") || !strstr(out, "stress.so"))
		fail_msg("stress attached to an instance without the plugin: exit %d: %.3000s", ex,
			 out);
	rt_client_open(&c, r.inst);
	assert_int_equal(atomic_load(&shm_hdr(c.seg)->state), SHM_INST_RUNNING);
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "st-000", 6, &h, NULL), -ENOENT);
	rt_client_close(&c);
	rt_stop(&r);

	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 2\nplacement = none\n[restart]\nhang_timeout = 1s\n"
		 "intensity = 1000\nperiod = 1\n[types]\nload = %s\n",
		 plugin);
	rt_start(&r, "t-att", "plug", cfg, NULL);
	rt_wait_ready(&r);
	ex = rt_run_tool(r.inst, out, sizeof(out), args);
	js = strstr(out, "\n{");
	o = js ? json_loads(js + 1, 0, &jerr) : NULL;
	if (ex != 0 || !strstr(out, "attached to '") || !o ||
	    !json_is_string(json_object_get(o, "result")) ||
	    strcmp(json_string_value(json_object_get(o, "result")), "pass"))
		fail_msg("stress attached to an instance with the plugin: exit %d: %.3000s", ex,
			 out);
	/* the faults were real: workers killed and restarted by the instance */
	assert_true(json_integer_value(json_object_get(o, "kills")) > 0);
	assert_true(json_integer_value(json_object_get(o, "restarts")) > 0);
	json_decref(o);
	/* and the books' file is gone (no other test attaches) */
	{
		DIR *d = opendir("/dev/shm");
		struct dirent *de;

		assert_non_null(d);
		while ((de = readdir(d)))
			if (!strncmp(de->d_name, "shoal-stress-books.", 19))
				fail_msg("the books' file /dev/shm/%s was left behind", de->d_name);
		closedir(d);
	}
	rt_client_open(&c, r.inst);
	assert_int_equal(atomic_load(&shm_hdr(c.seg)->state), SHM_INST_RUNNING);
	/* its stable agents stopped at the end (a stop's unregistration is prompt, not
	 * instant: wait for it) */
	WAIT_FOR(c.seg, shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "st-000", 6, &h, NULL) == -ENOENT);
	rt_client_close(&c);
	rt_stop(&r);
}

/*
 * With the planted fault (a build with -Dplanted_loss=true: mailboxes drop a plain message
 * in $SHOAL_PLANTED_LOSS_EVERY), the stress must fail, and name the lost message.
 */
static void test_stress_run_planted_loss(void **state)
{
	static char out[1 << 20];
	char inst[32];
	int ex;

	(void)state;
#ifndef SHOAL_PLANTED_LOSS
	skip_because("needs a build with the planted loss (meson -Dplanted_loss=true)");
#endif
	snprintf(inst, sizeof(inst), "tplant-%d", (int)getpid());
	setenv("SHOAL_PLANTED_LOSS_EVERY", "20000", 1);
	ex = rt_run_tool(inst, out, sizeof(out),
			 (const char *[]){"stress", "--seconds", "8", "--agents", "6", "--clients",
					  "2", "--seed", "11", NULL});
	unsetenv("SHOAL_PLANTED_LOSS_EVERY");
	if (ex != 1 || !strstr(out, "FAIL: lost = 0") ||
	    !strstr(out, "accepted by its send and "
			 "never delivered"))
		fail_msg("shoal stress on a lossy build: exit %d (want 1 naming the lost "
			 "message): %.3000s",
			 ex, out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress_checker_clean),
		cmocka_unit_test(test_stress_checker_lost),
		cmocka_unit_test(test_stress_checker_maybe_is_not_lost),
		cmocka_unit_test(test_stress_checker_duplicate),
		cmocka_unit_test(test_stress_checker_out_of_order),
		cmocka_unit_test(test_stress_checker_corrupt),
		cmocka_unit_test(test_stress_checker_first_violation),
		cmocka_unit_test(test_stress_run_short),
		cmocka_unit_test(test_stress_run_kill_then_stop),
		cmocka_unit_test(test_stress_run_attached),
		cmocka_unit_test(test_stress_run_planted_loss),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
