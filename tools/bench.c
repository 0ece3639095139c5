/* The benchmark harness. */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "shm/cpu.h"
#include "tools/bench.h"

static double ns_per_tick = 1.0;

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* /proc/stat's aggregate cpu line: steal and total jiffies; 0 and 0 if unreadable. */
static void cpu_jiffies(uint64_t *steal, uint64_t *total)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "re");

	*steal = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*steal = v[7];
	}
	fclose(f);
}

static uint64_t steal0, total0;

void bench_clock_init(void)
{
	uint64_t t0, c0, t1, c1;

	cpu_jiffies(&steal0, &total0);
	t0 = bench_now_ns();
	c0 = shm_cpu_ticks();
	do
		t1 = bench_now_ns();
	while (t1 - t0 < 20000000); /* 20 ms */
	c1 = shm_cpu_ticks();
	ns_per_tick = (double)(t1 - t0) / (double)(c1 - c0);
}

uint64_t bench_ticks(void)
{
	return shm_cpu_ticks_ordered();
}

double bench_ticks_to_ns(uint64_t ticks)
{
	return (double)ticks * ns_per_tick;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *s, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)ceil(p * (double)n) - 1;
	if (i >= n)
		i = n - 1;
	return (double)s[i];
}

void bench_row_fill(struct bench_row *row, const char *name, uint64_t *ns, size_t n,
		    double ops_per_s)
{
	double sum = 0;

	memset(row, 0, sizeof(*row));
	snprintf(row->name, sizeof(row->name), "%s", name);
	qsort(ns, n, sizeof(*ns), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	row->samples = n;
	row->p50_ns = pct(ns, n, 0.50);
	row->p99_ns = pct(ns, n, 0.99);
	row->p999_ns = pct(ns, n, 0.999);
	row->mean_ns = n ? sum / (double)n : 0;
	row->ops_per_s = ops_per_s;
}

struct bench_row *bench_add_result(struct bench_report *r, const char *name, uint64_t *ns, size_t n,
				   double ops_per_s, const char *vs)
{
	struct bench_row *row;

	if (r->nresults >= BENCH_MAX_ROWS)
		return NULL;
	row = &r->results[r->nresults++];
	bench_row_fill(row, name, ns, n, ops_per_s);
	if (vs)
		snprintf(row->vs, sizeof(row->vs), "%s", vs);
	return row;
}

struct bench_row *bench_add_baseline(struct bench_report *r, const char *name, uint64_t *ns,
				     size_t n, double ops_per_s)
{
	struct bench_row *row;

	if (r->nbaselines >= BENCH_MAX_ROWS)
		return NULL;
	row = &r->baselines[r->nbaselines++];
	bench_row_fill(row, name, ns, n, ops_per_s);
	return row;
}

static const struct bench_row *find_baseline(const struct bench_report *r, const char *name)
{
	for (unsigned i = 0; i < r->nbaselines; i++)
		if (!strcmp(r->baselines[i].name, name))
			return &r->baselines[i];
	return NULL;
}

int bench_row_ops_target(struct bench_row *row, const char *vs, double ratio)
{
	for (int i = 0; i < BENCH_OPS_TARGETS; i++) {
		struct bench_ops_target *t = &row->ops_targets[i];

		if (t->vs[0])
			continue;
		snprintf(t->vs, sizeof(t->vs), "%s", vs);
		t->ratio = ratio;
		return 0;
	}
	return -ENOSPC;
}

/* The row an ops target compares with (a result, else a baseline), if it has a rate. */
static const struct bench_row *ops_vs(const struct bench_report *r,
				      const struct bench_ops_target *t)
{
	const struct bench_row *b = NULL;

	for (unsigned i = 0; i < r->nresults && !b; i++)
		if (!strcmp(r->results[i].name, t->vs))
			b = &r->results[i];
	if (!b)
		b = find_baseline(r, t->vs);
	return b && b->ops_per_s > 0 ? b : NULL;
}

/* Returns 1 when a target is set and missed, with a description in why. */
static int missed(const struct bench_report *r, const struct bench_row *row, char *why, size_t len)
{
	const struct bench_row *b = row->vs[0] ? find_baseline(r, row->vs) : NULL;
	double v = row->target_pct == 99 ? row->p99_ns : row->p50_ns;

	why[0] = 0;
	if (row->target_ns > 0 && v > row->target_ns) {
		snprintf(why, len, "p%d %.0f ns > target %.0f ns",
			 row->target_pct ? row->target_pct : 50, v, row->target_ns);
		return 1;
	}
	if (row->target_ops > 0 && row->ops_per_s < row->target_ops) {
		snprintf(why, len, "%.3g ops/s < target %.3g", row->ops_per_s, row->target_ops);
		return 1;
	}
	if (row->target_ratio > 0 && b && b->p50_ns > 0 &&
	    row->p50_ns / b->p50_ns > row->target_ratio) {
		snprintf(why, len, "p50 %.2fx %s > target %.2fx", row->p50_ns / b->p50_ns, b->name,
			 row->target_ratio);
		return 1;
	}
	for (int i = 0; i < BENCH_OPS_TARGETS; i++) {
		const struct bench_ops_target *t = &row->ops_targets[i];
		const struct bench_row *o = t->vs[0] ? ops_vs(r, t) : NULL;

		if (o && row->ops_per_s < t->ratio * o->ops_per_s) {
			snprintf(why, len, "ops/s %.2fx %s < target %.2fx",
				 row->ops_per_s / o->ops_per_s, o->name, t->ratio);
			return 1;
		}
	}
	return 0;
}

/* A number, or null for NaN and infinities (JSON has none; jansson refuses them). */
static json_t *json_num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *json_row(const struct bench_row *row, const struct bench_report *r)
{
	const struct bench_row *b = row->vs[0] ? find_baseline(r, row->vs) : NULL;
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(row->name));
	json_object_set_new(o, "p50_ns", json_num(row->p50_ns));
	json_object_set_new(o, "p99_ns", json_num(row->p99_ns));
	json_object_set_new(o, "p999_ns", json_num(row->p999_ns));
	json_object_set_new(o, "mean_ns", json_num(row->mean_ns));
	json_object_set_new(o, "ops_per_s", json_num(row->ops_per_s));
	json_object_set_new(o, "samples", json_integer((json_int_t)row->samples));
	if (b && b->p50_ns > 0) {
		json_object_set_new(o, "vs", json_string(b->name));
		json_object_set_new(o, "p50_ratio", json_num(row->p50_ns / b->p50_ns));
		json_object_set_new(o, "p99_ratio",
				    json_num(b->p99_ns > 0 ? row->p99_ns / b->p99_ns : 0.0));
	}
	if (row->ops_targets[0].vs[0]) {
		json_t *a = json_array();

		for (int i = 0; i < BENCH_OPS_TARGETS; i++) {
			const struct bench_ops_target *t = &row->ops_targets[i];
			const struct bench_row *v = t->vs[0] ? ops_vs(r, t) : NULL;
			json_t *e;

			if (!v)
				continue;
			e = json_object();
			json_object_set_new(e, "vs", json_string(v->name));
			json_object_set_new(e, "ratio", json_num(row->ops_per_s / v->ops_per_s));
			json_object_set_new(e, "target", json_num(t->ratio));
			json_array_append_new(a, e);
		}
		json_object_set_new(o, "ops_ratios", a);
	}
	return o;
}

/* The report as one JSON object (jansson: escaping and number formatting are its job). */
static void json_report(const struct bench_report *r, int nmissed, double steal)
{
	json_t *o = json_object(), *res = json_array(), *base = json_array();

	for (unsigned i = 0; i < r->nresults; i++)
		json_array_append_new(res, json_row(&r->results[i], r));
	for (unsigned i = 0; i < r->nbaselines; i++)
		json_array_append_new(base, json_row(&r->baselines[i], r));
	json_object_set_new(o, "bench", json_string(r->bench));
	json_object_set_new(o, "results", res);
	json_object_set_new(o, "baselines", base);
	json_object_set_new(o, "targets_missed", json_integer(nmissed));
	json_object_set_new(o, "host_steal_pct", steal >= 0 ? json_num(steal) : json_null());
	json_object_set_new(o, "notes", json_string(r->notes));
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	printf("\n");
	json_decref(o);
}

/* Percent of this VM's CPU time the host took (steal) since bench_clock_init(), or -1. */
static double steal_pct(void)
{
	uint64_t st, tot;

	cpu_jiffies(&st, &tot);
	if (!total0 || tot <= total0)
		return -1;
	return 100.0 * (double)(st - steal0) / (double)(tot - total0);
}

/* A rate for the table: "-" when none was measured (a latency-only row), not "0". */
static void fmt_ops(char *out, size_t cap, double ops)
{
	if (ops > 0)
		snprintf(out, cap, "%.0f", ops);
	else
		snprintf(out, cap, "-");
}

int bench_report_print(const struct bench_report *r)
{
	double steal = steal_pct();
	char why[128];
	int nmissed = 0, w = 22;

	for (unsigned i = 0; i < r->nresults; i++)
		nmissed += missed(r, &r->results[i], why, sizeof(why));
	if (r->json) {
		json_report(r, nmissed, steal);
		return nmissed;
	}
	/* the name column as wide as the longest name: every row's numbers stay in line */
	for (unsigned i = 0; i < r->nresults; i++)
		w = strlen(r->results[i].name) > (size_t)w ? (int)strlen(r->results[i].name) : w;
	for (unsigned i = 0; i < r->nbaselines; i++)
		w = strlen(r->baselines[i].name) > (size_t)w ? (int)strlen(r->baselines[i].name)
							     : w;
	printf("%-*s %10s %10s %10s %10s %14s  %s\n", w, r->bench, "p50 ns", "p99 ns", "p99.9 ns",
	       "mean ns", "ops/s", "vs baseline");
	for (unsigned i = 0; i < r->nresults; i++) {
		const struct bench_row *row = &r->results[i];
		const struct bench_row *b = row->vs[0] ? find_baseline(r, row->vs) : NULL;
		char ratio[96] = "", ops[32];

		if (b && b->p50_ns > 0)
			snprintf(ratio, sizeof(ratio), "p50 %.2fx p99 %.2fx %s",
				 row->p50_ns / b->p50_ns,
				 b->p99_ns > 0 ? row->p99_ns / b->p99_ns : 0.0, b->name);
		fmt_ops(ops, sizeof(ops), row->ops_per_s);
		printf("%-*s %10.1f %10.1f %10.1f %10.1f %14s  %s", w, row->name, row->p50_ns,
		       row->p99_ns, row->p999_ns, row->mean_ns, ops, ratio);
		for (int k = 0; k < BENCH_OPS_TARGETS; k++) {
			const struct bench_ops_target *t = &row->ops_targets[k];
			const struct bench_row *v = t->vs[0] ? ops_vs(r, t) : NULL;

			if (v)
				printf("  ops/s %.2fx %s (target %.2fx)",
				       row->ops_per_s / v->ops_per_s, v->name, t->ratio);
		}
		if (missed(r, row, why, sizeof(why)))
			printf("  MISSED: %s", why);
		else if (row->target_ns > 0)
			printf("  target p%d <= %.0f ns: met", row->target_pct == 99 ? 99 : 50,
			       row->target_ns);
		printf("\n");
	}
	printf("baselines\n");
	for (unsigned i = 0; i < r->nbaselines; i++) {
		const struct bench_row *row = &r->baselines[i];
		char ops[32];

		fmt_ops(ops, sizeof(ops), row->ops_per_s);
		printf("%-*s %10.1f %10.1f %10.1f %10.1f %14s\n", w, row->name, row->p50_ns,
		       row->p99_ns, row->p999_ns, row->mean_ns, ops);
	}
	if (r->notes[0])
		printf("%s\n", r->notes);
	if (steal >= 0)
		printf("host steal during the run: %.1f%% of this VM's CPU time (a busy host "
		       "stretches the tails)\n",
		       steal);
	printf("targets missed: %d\n", nmissed);
	return nmissed;
}

int bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

void bench_pick_cpus(int *a, int *b)
{
	cpu_set_t set;
	int found = 0;

	*a = *b = 0;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (int i = 0; i < CPU_SETSIZE && found < 2; i++) {
		if (!CPU_ISSET(i, &set))
			continue;
		if (found++ == 0)
			*a = *b = i;
		else
			*b = i;
	}
}
