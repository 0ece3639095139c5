/*
 * test_slo: latency budgets against a live instance: `shoal slo-check` (verdicts, exit codes,
 * NO_DATA, --json, a bad budgets file, an unknown instance) and the supervisor's periodic
 * checks (`shoal run --budgets`, [slo] budgets/interval): the violation event in the ring and
 * its console line, and `shoal run --check` refusing a bad budgets file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/skip.h"
#include "tests/support.h"

#include "shm/hist.h"
#include "shm/layout.h"
#include "shm/registry.h"
#include "shm/shm.h"
#include "supervisor/sup.h"

#include "tests/run_test_util.h"

#define OUT_CAP (1u << 16)

static const char *echo_cfg = "[instance]\nworkers = 1\nplacement = none\n"
			      "[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 8\n"
			      "[agent e]\ntype = echo\nname = e\nworker = 0\n";

/* Write text to a budgets file named for this test process; its path in path. */
static void budgets_write(char *path, size_t cap, const char *tag, const char *text)
{
	FILE *f;

	snprintf(path, cap, "/tmp/shoal-t-slo-%s-%d.txt", tag, (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Start an instance of cfg and make n calls to its echo agent e (each one a 'call' sample). */
static void start_and_call(struct rt_run *r, const char *name, const char *cfg, const char *extra,
			   int n)
{
	struct rt_client cl;
	shoal_handle_t e = SHOAL_HANDLE_NONE;

	rt_start(r, "t-", name, cfg, extra);
	rt_wait_ready(r);
	rt_client_open(&cl, r->inst);
	assert_int_equal(shm_reg_lookup(cl.seg, SHM_NS_DEFAULT, "e", 1, &e, NULL), 0);
	for (int i = 0; i < n; i++)
		rt_expect_echo(&cl, e);
	rt_client_close(&cl);
}

/* `shoal slo-check FILE [more]` on inst: its exit code, its output in out. */
static int slo_check(const char *inst, const char *file, const char *more, char *out)
{
	const char *args[] = {"slo-check", file, more, NULL};

	return rt_run_tool(inst, out, OUT_CAP, args);
}

/*
 * After 16 calls to an echo agent: `call p50 1ns` is broken (exit 1, the line says BROKEN
 * with the figure), `call p99 10s` is met (exit 0), both checked on the same live segment.
 */
static void test_slo_check_broken_and_met(void **state)
{
	char broken[128], met[128], *out = malloc(OUT_CAP);
	struct rt_run r;

	(void)state;
	assert_non_null(out);
	start_and_call(&r, "slo-verdict", echo_cfg, NULL, 16);
	budgets_write(broken, sizeof(broken), "broken", "call p50 1ns   # cannot be met\n");
	budgets_write(met, sizeof(met), "met", "call p99 10s\n");
	assert_int_equal(slo_check(r.inst, broken, NULL, out), 1);
	assert_non_null(strstr(out, "call p50 <= 1ns"));
	assert_non_null(strstr(out, "BROKEN (16 samples)"));
	assert_int_equal(slo_check(r.inst, met, NULL, out), 0);
	assert_non_null(strstr(out, "call p99 <= 10s"));
	assert_non_null(strstr(out, ": met (16 samples)"));
	rt_stop(&r);
	unlink(broken);
	unlink(met);
	free(out);
}

/*
 * An operation without samples (no consensus round ran), a name the segment does not time
 * and a ratio to an operation without samples: NO_DATA, said, and not a failure (exit 0).
 */
static void test_slo_check_no_data(void **state)
{
	char path[128], *out = malloc(OUT_CAP);
	struct rt_run r;

	(void)state;
	assert_non_null(out);
	start_and_call(&r, "slo-nodata", echo_cfg, NULL, 2);
	budgets_write(path, sizeof(path), "nodata",
		      "consensus p99 1ns\nno_such_op p50 1ns\ncall p99 <= 1x allocation\n");
	assert_int_equal(slo_check(r.inst, path, NULL, out), 0);
	assert_non_null(strstr(out, "NO_DATA " /* the verdict column */));
	assert_non_null(strstr(out, "no samples of consensus yet; not a failure"));
	assert_non_null(strstr(out, "'no_such_op' is not an operation the segment times"));
	assert_non_null(strstr(out, "no samples of allocation yet"));
	assert_null(strstr(out, "FAIL"));
	rt_stop(&r);
	unlink(path);
	free(out);
}

/* The budget of --json's output at index i, checked for its op, stat and verdict. */
static json_t *json_budget(json_t *root, size_t i, const char *op, const char *stat,
			   const char *verdict)
{
	json_t *b = json_array_get(json_object_get(root, "budgets"), i);

	assert_non_null(b);
	assert_string_equal(json_string_value(json_object_get(b, "op")), op);
	assert_string_equal(json_string_value(json_object_get(b, "stat")), stat);
	assert_string_equal(json_string_value(json_object_get(b, "verdict")), verdict);
	return b;
}

/*
 * --json: one object that jansson parses, each budget with its figure and verdict (a broken
 * one's figure is a real time above its limit, a met one's below, NO_DATA's is null), the
 * count broken, and the exit code of the verdicts.
 */
static void test_slo_check_json(void **state)
{
	char path[128], *out = malloc(OUT_CAP);
	json_error_t jerr;
	struct rt_run r;
	json_t *root, *b;
	double v;

	(void)state;
	assert_non_null(out);
	start_and_call(&r, "slo-json", echo_cfg, NULL, 8);
	budgets_write(path, sizeof(path), "json",
		      "call p50 1ns\ncall p99 10s\nconsensus mean 1ms\ncall rate >= 1/s info\n");
	assert_int_equal(slo_check(r.inst, path, "--json", out), 1);
	root = json_loads(out, 0, &jerr);
	if (!root)
		fail_msg("slo-check --json: %s: %.300s", jerr.text, out);
	assert_string_equal(json_string_value(json_object_get(root, "instance")), r.inst);
	assert_int_equal(json_integer_value(json_object_get(root, "broken")), 1);
	assert_int_equal(json_array_size(json_object_get(root, "budgets")), 4);
	b = json_budget(root, 0, "call", "p50", "broken");
	v = json_number_value(json_object_get(b, "value"));
	assert_true(v > 1.0);
	assert_int_equal(json_integer_value(json_object_get(b, "samples")), 8);
	assert_int_equal(json_integer_value(json_object_get(b, "line")), 1);
	b = json_budget(root, 1, "call", "p99", "met");
	v = json_number_value(json_object_get(b, "value"));
	assert_true(v > 0 && v <= 10e9);
	b = json_budget(root, 2, "consensus", "mean", "no_data");
	assert_true(json_is_null(json_object_get(b, "value")));
	b = json_budget(root, 3, "call", "rate", "met");
	assert_true(json_is_true(json_object_get(b, "info")));
	assert_true(json_number_value(json_object_get(b, "value")) > 0);
	json_decref(root);
	rt_stop(&r);
	unlink(path);
	free(out);
}

/* A bad budgets line: exit 2 and FILE:LINE naming it, whatever the instance. */
static void test_slo_check_bad_file(void **state)
{
	char path[128], want[160], *out = malloc(OUT_CAP);

	(void)state;
	assert_non_null(out);
	budgets_write(path, sizeof(path), "bad", "call p99 10s\n# fine\ncall p99 20\n");
	assert_int_equal(slo_check("t-slo-not-there", path, NULL, out), 2);
	snprintf(want, sizeof(want), "%s:3: limit '20' has no unit", path);
	assert_non_null(strstr(out, want));
	unlink(path);
	/* and a file that is not there */
	assert_int_equal(slo_check("t-slo-not-there", path, NULL, out), 2);
	assert_non_null(strstr(out, "No such file"));
	free(out);
}

/* An instance that does not exist: exit 2, naming it. */
static void test_slo_check_unknown_instance(void **state)
{
	char path[128], inst[64], *out = malloc(OUT_CAP);

	(void)state;
	assert_non_null(out);
	snprintf(inst, sizeof(inst), "t-slo-none-%d", (int)getpid());
	shm_seg_unlink(inst);
	budgets_write(path, sizeof(path), "noinst", "call p99 10s\n");
	assert_int_equal(slo_check(inst, path, NULL, out), 2);
	assert_non_null(strstr(out, inst));
	unlink(path);
	free(out);
}

/*
 * A segment slo-check cannot trust: another layout version, then truncated: exit 2, saying
 * which; never a crash. One with samples written straight into it (no supervisor) is read.
 */
static void test_slo_check_bad_segment(void **state)
{
	char path[128], inst[64], file[96], *out = malloc(OUT_CAP);
	struct shm_seg *seg;
	struct shm_cfg cfg;

	(void)state;
	assert_non_null(out);
	snprintf(inst, sizeof(inst), "t-slo-seg-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_procs = 8;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	seg = ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
	assert_non_null(seg);
	shm_hist_set_enabled(true);
	for (int i = 0; i < 10; i++)
		shm_hist_add(seg, SHM_HIST_CALL, 5000);
	budgets_write(path, sizeof(path), "seg", "call p99 <= 4us\n");
	assert_int_equal(slo_check(inst, path, NULL, out), 1);
	assert_non_null(strstr(out, "BROKEN (10 samples)"));

	shm_hdr(seg)->layout_major = SHM_LAYOUT_MAJOR + 1;
	assert_int_equal(slo_check(inst, path, NULL, out), 2);
	assert_non_null(strstr(out, "layout"));
	shm_hdr(seg)->layout_major = SHM_LAYOUT_MAJOR;

	snprintf(file, sizeof(file), "/dev/shm/shoal.%s", inst);
	assert_int_equal(truncate(file, 2 * SHM_HDR_SIZE), 0);
	assert_int_equal(slo_check(inst, path, NULL, out), 2);
	assert_non_null(strstr(out, "truncated"));
	ts_seg_drop(seg, inst);
	unlink(path);
	free(out);
}

/*
 * A budget broken in one window and met in a later one: `call rate <= 15/s` with a 100 ms
 * interval. 100 calls in a burst put at least 50 in one window (over 15/s unless a window
 * lasted 3 s: broken, a violation line); then one call, in a window of at least 100 ms, is at
 * most 10/s: the one 'met again' line.
 */
static void test_slo_run_budget_met_again(void **state)
{
	char path[128], extra[160], want[200], *cfg;
	struct rt_client cl;
	struct rt_run r;
	shoal_handle_t e = SHOAL_HANDLE_NONE;

	(void)state;
	budgets_write(path, sizeof(path), "again", "call rate <= 15/s\n");
	snprintf(extra, sizeof(extra), "--budgets=%s", path);
	assert_true(asprintf(&cfg, "%s[slo]\ninterval = 100ms\n", echo_cfg) > 0);
	start_and_call(&r, "slo-again", cfg, extra, 100);
	snprintf(want, sizeof(want), "%s:1: call rate <= 15/s: ", path);
	rt_wait_err(&r, want);
	rt_wait_err(&r, "limit <= 15/s: BROKEN over the last");
	rt_client_open(&cl, r.inst);
	assert_int_equal(shm_reg_lookup(cl.seg, SHM_NS_DEFAULT, "e", 1, &e, NULL), 0);
	rt_expect_echo(&cl, e);
	rt_client_close(&cl);
	rt_wait_err(&r, "limit <= 15/s: met again over the last");
	rt_stop(&r);
	unlink(path);
	free(cfg);
}

/* The first event of kind in `shoal events --json`'s lines (NULL none); json_decref() it. */
static json_t *event_of_kind(char *out, const char *kind)
{
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		json_error_t jerr;
		json_t *e = json_loads(line, 0, &jerr);

		if (!e)
			fail_msg("events --json: %s: %.200s", jerr.text, line);
		if (!strcmp(json_string_value(json_object_get(e, "kind")), kind))
			return e;
		json_decref(e);
	}
	return NULL;
}

/*
 * `shoal run --budgets FILE` with [slo] interval = 100ms and a budget calls break: after
 * some calls, the supervisor's check writes the console line (FILE:LINE, the budget, the
 * figure, BROKEN, the window) and an slo-violation event in the ring naming the operation,
 * statistic, figure and limit, with the budget's line as its code. The met budget and the
 * informational one make no line; the one naming no operation of the segment is said once.
 */
static void test_slo_run_budgets_violation(void **state)
{
	static const char *const events[] = {"events", "--json", NULL};
	char path[128], extra[160], want[200], *out = malloc(OUT_CAP), *cfg;
	struct rt_run r;
	json_t *e;
	const char *text;

	(void)state;
	assert_non_null(out);
	budgets_write(path, sizeof(path), "live",
		      "call p99 10s\ncall p50 1ns  # broken by any call\ncall mean 1ns info\n"
		      "no_such_op p99 1ms\n");
	snprintf(extra, sizeof(extra), "--budgets=%s", path);
	assert_true(asprintf(&cfg, "%s[slo]\ninterval = 100ms\n", echo_cfg) > 0);
	start_and_call(&r, "slo-live", cfg, extra, 8);
	/* at start: the budget that can never be checked */
	snprintf(want, sizeof(want), "%s:4: 'no_such_op' is not an operation the segment times",
		 path);
	rt_wait_err(&r, want);
	snprintf(want, sizeof(want), "%s:2: call p50 <= 1ns: ", path);
	rt_wait_err(&r, want);
	rt_read_err(&r, out, OUT_CAP);
	assert_non_null(strstr(out, "limit <= 1ns: BROKEN over the last"));
	assert_null(strstr(out, "call p99 <= 10s"));
	assert_null(strstr(out, "call mean"));

	assert_int_equal(rt_run_tool(r.inst, out, OUT_CAP, events), 0);
	e = event_of_kind(out, "slo-violation");
	if (!e)
		fail_msg("no slo-violation event in: %.400s", out);
	text = json_string_value(json_object_get(e, "text"));
	assert_non_null(text);
	assert_memory_equal(text, "call p50 ", 9);
	assert_non_null(strstr(text, " > 1ns"));
	assert_int_equal(json_integer_value(json_object_get(e, "code")), 2);
	json_decref(e);
	rt_stop(&r);
	unlink(path);
	free(cfg);
	free(out);
}

/* `shoal run CFG --check ...`: its exit code, its output in out. */
static int run_check(const char *cfg, const char *more, char *out)
{
	const char *args[] = {"run", cfg, "--check", more, NULL};

	return rt_run_tool(NULL, out, OUT_CAP, args);
}

/*
 * `shoal run --check` reads the budgets file: a bad line in the file [slo] budgets names
 * exits 2 with FILE:LINE and the config line that named it; so does --budgets; a missing
 * file and an [slo] interval below the supervisor's tick too; a good file passes and shows
 * in the summary.
 */
static void test_slo_run_check_bad_budgets(void **state)
{
	char bad[128], good[128], cfgpath[128], opt[160], want[300], *out = malloc(OUT_CAP);
	FILE *f;

	(void)state;
	assert_non_null(out);
	budgets_write(bad, sizeof(bad), "runbad", "call p99 10s\ncall p99 fast\n");
	budgets_write(good, sizeof(good), "rungood", "call p99 10s\n");
	snprintf(cfgpath, sizeof(cfgpath), "/tmp/shoal-t-slo-cfg-%d.ini", (int)getpid());
	f = fopen(cfgpath, "w");
	assert_non_null(f);
	fprintf(f, "[instance]\nworkers = 1\n[slo]\nbudgets = %s\ninterval = 1s\n", bad);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(run_check(cfgpath, NULL, out), 2);
	snprintf(want, sizeof(want), "%s:2: limit 'fast' is not a number", bad);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "the [slo] budgets of %s:4", cfgpath);
	assert_non_null(strstr(out, want));

	/* --budgets over the file's: the good one passes, and the summary names it */
	snprintf(opt, sizeof(opt), "--budgets=%s", good);
	assert_int_equal(run_check(cfgpath, opt, out), 0);
	snprintf(want, sizeof(want), "slo budgets %s, checked every 1000 ms", good);
	assert_non_null(strstr(out, want));
	/* and the bad one through --budgets */
	snprintf(opt, sizeof(opt), "--budgets=%s", bad);
	assert_int_equal(run_check(cfgpath, opt, out), 2);
	assert_non_null(strstr(out, "(--budgets;"));
	/* a file that is not there */
	assert_int_equal(run_check(cfgpath, "--budgets=/nonexistent/budgets.txt", out), 2);
	assert_non_null(strstr(out, "/nonexistent/budgets.txt: No such file"));

	/* an interval the supervisor's tick cannot keep */
	f = fopen(cfgpath, "w");
	assert_non_null(f);
	fputs("[instance]\nworkers = 1\n\n[slo]\ninterval = 50ms\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(run_check(cfgpath, NULL, out), 2);
	snprintf(want, sizeof(want), "%s:5: [slo] interval = '50ms': below 100ms", cfgpath);
	assert_non_null(strstr(out, want));
	unlink(cfgpath);
	unlink(bad);
	unlink(good);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_slo_check_broken_and_met, rt_teardown),
		cmocka_unit_test_teardown(test_slo_check_no_data, rt_teardown),
		cmocka_unit_test_teardown(test_slo_check_json, rt_teardown),
		cmocka_unit_test(test_slo_check_bad_file),
		cmocka_unit_test(test_slo_check_unknown_instance),
		cmocka_unit_test_teardown(test_slo_run_budgets_violation, rt_teardown),
		cmocka_unit_test(test_slo_run_check_bad_budgets),
		cmocka_unit_test(test_slo_check_bad_segment),
		cmocka_unit_test_teardown(test_slo_run_budget_met_again, rt_teardown),
	};

	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
