/*
 * The budgets format and its verdicts (slo/budget.c): good lines parse to what they say,
 * each kind of bad line is refused with FILE:LINE and the fix, and the verdicts of ratio,
 * absolute and rate budgets over a table of figures.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "slo/slo.h"

/* Every form the format allows, with comments and blank lines between. */
static void test_budget_parse_good(void **state)
{
	static const char text[] = "# the issue's examples\n"
				   "call p99 20us\n"
				   "\n"
				   "   broadcast_100 p99 25us   # a trailing comment\n"
				   "send rate >= 1M/s\n"
				   "rtt_spin p50 <= 2x cacheline_rtt\n"
				   "single rate >= 0.6x batched info\n"
				   "restart_ready p50 0.5ms\n"
				   "lookup p99.9 250ns info\n"
				   "x mean 1s\n"
				   "y p90 >= 3\xc2\xb5s\n"
				   "z rate 500k/s\n"
				   "w rate <= 2G/s\n";
	struct slo_budgets b = {0};
	char err[512];

	(void)state;
	assert_int_equal(slo_budgets_parse(&b, "b.txt", text, err, sizeof(err)), 0);
	assert_int_equal(b.n, 11);
	assert_string_equal(b.v[0].op, "call");
	assert_int_equal(b.v[0].stat, SLO_P99);
	assert_int_equal(b.v[0].cmp, SLO_LE);
	assert_true(b.v[0].limit == 20000);
	assert_string_equal(b.v[0].vs, "");
	assert_false(b.v[0].info);
	assert_int_equal(b.v[0].line, 2);
	assert_string_equal(b.v[1].op, "broadcast_100");
	assert_int_equal(b.v[1].line, 4);
	assert_int_equal(b.v[2].stat, SLO_RATE);
	assert_int_equal(b.v[2].cmp, SLO_GE);
	assert_true(b.v[2].limit == 1e6);
	assert_string_equal(b.v[3].vs, "cacheline_rtt");
	assert_true(b.v[3].limit == 2);
	assert_int_equal(b.v[3].stat, SLO_P50);
	assert_string_equal(b.v[4].vs, "batched");
	assert_true(b.v[4].limit == 0.6);
	assert_true(b.v[4].info);
	assert_true(b.v[5].limit == 500000);
	assert_int_equal(b.v[6].stat, SLO_P999);
	assert_true(b.v[6].info);
	assert_int_equal(b.v[7].stat, SLO_MEAN);
	assert_true(b.v[7].limit == 1e9);
	assert_int_equal(b.v[8].cmp, SLO_GE);
	assert_true(b.v[8].limit == 3000);
	assert_true(b.v[9].limit == 5e5);
	assert_int_equal(b.v[9].cmp, SLO_GE); /* a rate's default: a floor */
	assert_int_equal(b.v[10].cmp, SLO_LE);
	assert_true(b.v[10].limit == 2e9);
	slo_budgets_free(&b);
}

/* Each bad line: its FILE:LINE and words that say what is wrong and what to write. */
static void test_budget_parse_errors(void **state)
{
	static const struct {
		const char *line, *says;
	} bad[] = {
		{"call p99", "not a budget; write OPERATION STAT LIMIT"},
		{"call p95 20us",
		 "unknown statistic 'p95'; write p50, p90, p99, p99.9, mean or rate"},
		{"call p999 20us", "p99.9 for the 99.9th percentile"},
		{"call p99 20", "limit '20' has no unit; write 20ns, 20us, 20ms or 20s"},
		{"call p99 20xs", "unknown unit 'xs'; write ns, us, ms or s"},
		{"call p99 1M/s", "p99 bounds a time, not a rate"},
		{"send rate 1M", "unit 'M' is not a rate; write operations per second"},
		{"send rate 1000", "has no unit; write a rate such as 1000/s"},
		{"call p99 < 20us", "comparison '<': write <= or >="},
		{"call p99 <=", "no limit after '<='"},
		{"call p99 fast", "limit 'fast' is not a number"},
		{"call p99 -3us", "limit '-3us' is not a number"},
		{"call p99 0us", "not above zero"},
		{"rtt p50 2x", "factor '2x' of what? name the same-run baseline"},
		{"rtt p50 2x info", "factor '2x' of what?"},
		{"rtt p50 2x rtt", "'rtt' is its own baseline"},
		{"call p99 20us loud", "unexpected 'loud' after the limit"},
		{"ca$ll p99 20us", "operation 'ca$ll': a name of 1..47"},
		{"a b c d e f g h i", "too many words"},
	};
	struct slo_budgets b = {0};
	char text[256], err[1024], want[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* a good line and a comment first: the bad one is line 3 */
		snprintf(text, sizeof(text), "ok p50 1us\n# c\n%s\n", bad[i].line);
		assert_int_equal(slo_budgets_parse(&b, "budgets.txt", text, err, sizeof(err)),
				 -EINVAL);
		snprintf(want, sizeof(want), "budgets.txt:3: ");
		if (strncmp(err, want, strlen(want)) || !strstr(err, bad[i].says))
			fail_msg("'%s': said '%s', expected '%s' after '%s'", bad[i].line, err,
				 bad[i].says, want);
		/* all or nothing: the good line is not kept */
		assert_int_equal(b.n, 0);
	}
	/* two bad lines: both named, each on its line */
	assert_int_equal(
		slo_budgets_parse(&b, "f", "a p1 1us\nok p50 1us\nb p99 2\n", err, sizeof(err)),
		-EINVAL);
	assert_non_null(strstr(err, "f:1: unknown statistic 'p1'"));
	assert_non_null(strstr(err, "\nf:3: limit '2' has no unit"));
	slo_budgets_free(&b);
}

/* A file that is not there: -ENOENT, and the message names it. */
static void test_budget_load_missing(void **state)
{
	struct slo_budgets b = {0};
	char err[512], path[] = "/tmp/shoal-test-budget-XXXXXX";
	int fd;

	(void)state;
	assert_int_equal(slo_budgets_load(&b, "/nonexistent/budgets.txt", err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/budgets.txt: No such file"));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "a p50 1us\nb p50 2\n", 18), 18);
	close(fd);
	assert_int_equal(slo_budgets_load(&b, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: limit '2' has no unit"));
	assert_non_null(strstr(err, path));
	unlink(path);
	slo_budgets_free(&b);
}

/* Verdicts: a ratio to a baseline, an absolute time, a rate floor, info, not measured. */
static void test_budget_verdicts(void **state)
{
	static const char text[] = "rtt_spin p50 <= 2x cacheline_rtt\n" /* 170/120: met */
				   "rtt_park p50 <= 1.3x futex_rtt\n"	/* 60/40: broken */
				   "rtt_spin p99 200ns\n"		/* 300: broken */
				   "rtt_spin p99 400ns\n"		/* met */
				   "tp rate >= 20M/s\n"			/* 30M: met */
				   "tp rate >= 40M/s info\n"		/* missed, info */
				   "tp rate >= 0.5x floor\n"		/* 30/100: broken */
				   "nothing p50 1us\n"			/* not measured */
				   "rtt_spin p50 <= 2x nobase\n"	/* not measured */
				   "rtt_spin rate 1/s\n";		/* no rate: not measured */
	struct slo_figures fig[] = {
		{.op = "rtt_spin", .stat = {[SLO_P50] = 170, [SLO_P99] = 300, [SLO_RATE] = NAN}},
		{.op = "cacheline_rtt", .stat = {[SLO_P50] = 120}},
		{.op = "rtt_park", .stat = {[SLO_P50] = 60}},
		{.op = "futex_rtt", .stat = {[SLO_P50] = 40}},
		{.op = "tp", .stat = {[SLO_RATE] = 30e6}},
		{.op = "floor", .stat = {[SLO_RATE] = 100e6}},
	};
	static const enum slo_verdict want[] = {SLO_MET,     SLO_BROKEN, SLO_BROKEN, SLO_MET,
						SLO_MET,     SLO_BROKEN, SLO_BROKEN, SLO_NO_DATA,
						SLO_NO_DATA, SLO_NO_DATA};
	struct slo_budgets b = {0};
	struct slo_result res[10];
	char err[256], line[160];

	(void)state;
	assert_int_equal(slo_budgets_parse(&b, "v", text, err, sizeof(err)), 0);
	assert_int_equal(b.n, 10);
	/* broken and gating: rtt_park, rtt_spin p99 200ns, tp 0.5x floor */
	assert_int_equal(slo_budgets_check(&b, fig, 6, res), 3);
	for (size_t i = 0; i < b.n; i++)
		if (res[i].verdict != want[i])
			fail_msg("line %u: verdict %d, expected %d", b.v[i].line, res[i].verdict,
				 want[i]);
	assert_true(fabs(res[0].measured - 170.0 / 120) < 1e-9);
	assert_true(res[0].value == 170 && res[0].base == 120);
	assert_true(fabs(res[6].measured - 0.3) < 1e-9);
	/* the line a person reads: the figure, the baseline and the ratio */
	slo_result_format(&b.v[1], &res[1], line, sizeof(line));
	assert_string_equal(line, "60ns / futex_rtt 40ns = 1.50x, limit <= 1.3x: BROKEN");
	/* a small ratio keeps its digits: 0.0155x, not 0.02x, against a limit of 0.02x */
	{
		struct slo_budget sb = {.op = "a", .stat = SLO_RATE, .cmp = SLO_GE, .limit = 0.02};
		struct slo_result sr = {
			.value = 15.5e6, .base = 1e9, .measured = 0.0155, .verdict = SLO_BROKEN};

		snprintf(sb.vs, sizeof(sb.vs), "b");
		slo_result_format(&sb, &sr, line, sizeof(line));
		assert_string_equal(line, "15.5M/s / b 1G/s = 0.0155x, limit >= 0.02x: BROKEN");
	}
	slo_result_format(&b.v[5], &res[5], line, sizeof(line));
	assert_string_equal(line, "30M/s, limit >= 40M/s: missed (info)");
	slo_result_format(&b.v[7], &res[7], line, sizeof(line));
	assert_string_equal(line, "-, limit <= 1us: not measured");
	slo_budget_format(&b.v[6], line, sizeof(line));
	assert_string_equal(line, "tp rate >= 0.5x floor");
	slo_budgets_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_parse_good),
		cmocka_unit_test(test_budget_parse_errors),
		cmocka_unit_test(test_budget_load_missing),
		cmocka_unit_test(test_budget_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
