/*
 * The benchmark harness: the report's JSON is valid for any row name and any value (jansson
 * parses it back); the calibrated cycle counter (shm/cpu.h) agrees with the clock.
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
#include <jansson.h>

#include "tools/bench.h"

/* Print r as JSON into a buffer (stdout redirected to a temporary file) and parse it back. */
static json_t *report_json(const struct bench_report *r)
{
	char path[] = "/tmp/shoal-test-bench-XXXXXX";
	int fd = mkstemp(path), saved = dup(1);
	json_error_t e;
	json_t *j;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stdout);
	assert_true(dup2(fd, 1) == 1);
	bench_report_print(r);
	fflush(stdout);
	assert_true(dup2(saved, 1) == 1);
	close(saved);
	j = json_load_file(path, 0, &e);
	unlink(path);
	close(fd);
	if (!j)
		fail_msg("not JSON: line %d: %s", e.line, e.text);
	return j;
}

/* Print r as text into buf (stdout redirected to a temporary file). */
static void report_text(const struct bench_report *r, char *buf, size_t cap)
{
	char path[] = "/tmp/shoal-test-bench-XXXXXX";
	int fd = mkstemp(path), saved = dup(1);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stdout);
	assert_true(dup2(fd, 1) == 1);
	bench_report_print(r);
	fflush(stdout);
	assert_true(dup2(saved, 1) == 1);
	close(saved);
	n = pread(fd, buf, cap - 1, 0);
	assert_true(n > 0);
	buf[n] = 0;
	unlink(path);
	close(fd);
}

/*
 * The text table: a long row name keeps its columns in line (every row's p50 starts in
 * the same column), a rate never measured reads "-" (not "ops/s 0"), and a row with a
 * target says whether it met it.
 */
static void test_bench_text_table(void **state)
{
	static struct bench_report r;
	uint64_t ns[4] = {10, 20, 30, 40}, ns2[4] = {10, 20, 30, 40};
	static char out[8192];
	char *line, *save = NULL;
	int col = -1, rows = 0;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.bench = "test";
	bench_add_baseline(&r, "base", ns, 4, 1e6);
	bench_add_result(&r, "a_row_with_a_rather_long_name_100", ns2, 4, 0, "base");
	r.results[0].target_ns = 1000;
	r.results[0].target_pct = 99;
	report_text(&r, out, sizeof(out));
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p50 = strstr(line, " 2"); /* the p50 column: 20.0 for both rows */

		if (strncmp(line, "a_row", 5) && strncmp(line, "base ", 5))
			continue;
		rows++;
		assert_non_null(p50);
		if (col < 0)
			col = (int)(p50 - line);
		else if ((int)(p50 - line) != col)
			fail_msg("columns out of line: '%s' (p50 at %d, not %d)", line,
				 (int)(p50 - line), col);
		if (!strncmp(line, "a_row", 5)) {
			assert_null(strstr(line, " 0  "));
			assert_non_null(strstr(line, " - "));
			assert_non_null(strstr(line, "target p99 <= 1000 ns: met"));
		}
	}
	assert_int_equal(rows, 2);
}

/* A row name with a quote and a backslash, a NaN and an infinity: still JSON, values null. */
static void test_bench_json_escapes_and_nan(void **state)
{
	static struct bench_report r;
	uint64_t ns[4] = {10, 20, 30, 40};
	json_t *j, *row;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.bench = "test";
	r.json = true;
	bench_add_baseline(&r, "base", ns, 4, 1e6);
	bench_add_result(&r, "a \"quoted\\\" row", ns, 4, NAN, "base");
	r.results[0].mean_ns = INFINITY;
	snprintf(r.notes, sizeof(r.notes), "a note with \"quotes\"\nand a line");
	j = report_json(&r);
	row = json_array_get(json_object_get(j, "results"), 0);
	assert_non_null(row);
	assert_string_equal(json_string_value(json_object_get(row, "name")), "a \"quoted\\\" row");
	assert_true(json_is_null(json_object_get(row, "ops_per_s")));
	assert_true(json_is_null(json_object_get(row, "mean_ns")));
	assert_true(json_is_number(json_object_get(row, "p50_ns")));
	assert_string_equal(json_string_value(json_object_get(row, "vs")), "base");
	assert_string_equal(json_string_value(json_object_get(j, "notes")),
			    "a note with \"quotes\"\nand a line");
	json_decref(j);
}

/*
 * Timed by the calibrated counter, 50 ms of the clock reads as 50 ms (within 5%), and the
 * ordered counter never runs backwards: what every benchmark's latencies rest on, whatever
 * the counter is (rdtscp, arm64's cntvct_el0). The interval read on the counter lies inside
 * the clock's, so only a preemption between two adjacent reads can shorten it: three tries.
 */
static void test_bench_ticks_track_the_clock(void **state)
{
	double ratio = 0;

	(void)state;
	bench_clock_init();
	for (int try = 0; try < 3; try++) {
		uint64_t t0, t1, k0, k1, prev;

		t0 = bench_now_ns();
		k0 = prev = bench_ticks();
		do {
			uint64_t k = bench_ticks();

			assert_true(k >= prev);
			prev = k;
		} while (bench_now_ns() - t0 < 50000000);
		k1 = bench_ticks();
		t1 = bench_now_ns();
		assert_true(k1 > k0);
		ratio = bench_ticks_to_ns(k1 - k0) / (double)(t1 - t0);
		if (ratio > 0.95 && ratio < 1.05)
			return;
	}
	fail_msg("50 ms of CLOCK_MONOTONIC measured as %.3f of it by the calibrated counter",
		 ratio);
}

/*
 * A floor on a row's rate as a fraction of other rows' rates in the same run (a result or a
 * baseline): missed below it, met above it, and both ratios in the JSON.
 */
static void test_bench_ops_ratio_target(void **state)
{
	static struct bench_report r;
	uint64_t ns[4] = {10, 20, 30, 40};
	struct bench_row *row;
	json_t *j, *ratios, *o;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.bench = "test";
	r.json = true;
	bench_add_baseline(&r, "floor", ns, 4, 100e6);
	bench_add_result(&r, "batched", ns, 4, 50e6, NULL);
	row = bench_add_result(&r, "single", ns, 4, 40e6, NULL);
	assert_int_equal(bench_row_ops_target(row, "batched", 0.6), 0);
	assert_int_equal(bench_row_ops_target(row, "floor", 0.5), 0);
	assert_int_equal(bench_row_ops_target(row, "floor", 0.1), -ENOSPC);
	/* 40/50 = 0.8 >= 0.6; 40/100 = 0.4 < 0.5: one missed */
	j = report_json(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "targets_missed")), 1);
	ratios = json_object_get(json_array_get(json_object_get(j, "results"), 1), "ops_ratios");
	assert_int_equal(json_array_size(ratios), 2);
	o = json_array_get(ratios, 0);
	assert_string_equal(json_string_value(json_object_get(o, "vs")), "batched");
	assert_true(fabs(json_number_value(json_object_get(o, "ratio")) - 0.8) < 1e-9);
	assert_true(fabs(json_number_value(json_object_get(o, "target")) - 0.6) < 1e-9);
	o = json_array_get(ratios, 1);
	assert_string_equal(json_string_value(json_object_get(o, "vs")), "floor");
	assert_true(fabs(json_number_value(json_object_get(o, "ratio")) - 0.4) < 1e-9);
	json_decref(j);
	r.results[1].ops_per_s = 60e6; /* 0.6x the floor now, 1.2x the batched row */
	j = report_json(&r);
	assert_int_equal(json_integer_value(json_object_get(j, "targets_missed")), 0);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bench_json_escapes_and_nan),
		cmocka_unit_test(test_bench_text_table),
		cmocka_unit_test(test_bench_ticks_track_the_clock),
		cmocka_unit_test(test_bench_ops_ratio_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
