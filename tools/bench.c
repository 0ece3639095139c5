/* The benchmark harness. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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

/* See bench.h. */
double bench_steal_pct(void)
{
	uint64_t st, tot;

	cpu_jiffies(&st, &tot);
	if (!total0 || tot <= total0)
		return -1;
	return 100.0 * (double)(st - steal0) / (double)(tot - total0);
}

/* See bench.h. Also restarts the steal count (each suite of `all` has its own). */
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

/* The nearest-rank percentile of sorted s: the smallest sample with at least p of n at or under it.
 */
static double pct(const uint64_t *s, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)ceil(p * (double)n - 1e-9);
	i = i ? i - 1 : 0;
	if (i >= n)
		i = n - 1;
	return (double)s[i];
}

/* See bench.h. */
void bench_row_fill(struct bench_row *row, const char *name, uint64_t *ns, size_t n,
		    double ops_per_s)
{
	double sum = 0, sq = 0, mean;

	memset(row, 0, sizeof(*row));
	snprintf(row->name, sizeof(row->name), "%s", name);
	qsort(ns, n, sizeof(*ns), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	mean = n ? sum / (double)n : 0;
	/* two passes: the sum of squares of differences, no cancellation at large means */
	for (size_t i = 0; i < n; i++)
		sq += ((double)ns[i] - mean) * ((double)ns[i] - mean);
	row->samples = n;
	row->p50_ns = pct(ns, n, 0.50);
	row->p90_ns = pct(ns, n, 0.90);
	row->p99_ns = pct(ns, n, 0.99);
	row->p999_ns = pct(ns, n, 0.999);
	row->mean_ns = mean;
	row->stddev_ns = n > 1 ? sqrt(sq / (double)(n - 1)) : 0;
	row->ops_per_s = ops_per_s;
	row->alloc_per_op = NAN;
}

/* See bench.h. */
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

/* See bench.h. */
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

/* See bench.h. */
void bench_row_alloc(struct bench_row *row, uint64_t bytes0, double ops)
{
	if (row && ops > 0)
		row->alloc_per_op = (double)(bench_alloc_bytes() - bytes0) / ops;
}

static const struct bench_row *find_row(const struct bench_report *r, const char *name)
{
	for (unsigned i = 0; i < r->nbaselines; i++)
		if (!strcmp(r->baselines[i].name, name))
			return &r->baselines[i];
	for (unsigned i = 0; i < r->nresults; i++)
		if (!strcmp(r->results[i].name, name))
			return &r->results[i];
	return NULL;
}

/* --- the hiccup meter --- */

#define HIC_STEP    10u	  /* ns per histogram bucket */
#define HIC_BUCKETS 1000u /* up to 10 us; longer gaps are kept one by one */
#define HIC_LONG    65536u

struct hic_thread {
	pthread_t t;
	int cpu;
	uint64_t dur_ns;
	_Atomic uint32_t *started;
	uint64_t hist[HIC_BUCKETS];
	uint64_t *longs; /* gaps of HIC_BUCKETS * HIC_STEP ns or more */
	uint64_t nlong, gaps, max;
};

static void *hic_run(void *arg)
{
	struct hic_thread *h = arg;
	uint64_t t0, prev, now, end;

	bench_pin(h->cpu);
	t0 = prev = bench_now_ns();
	end = t0 + h->dur_ns;
	if (h->started)
		/* release: nothing rides on it but the cue; a test waits for it */
		atomic_store_explicit(h->started, 1, memory_order_release);
	do {
		uint64_t gap;

		now = bench_now_ns();
		gap = now - prev;
		prev = now;
		h->gaps++;
		if (gap > h->max)
			h->max = gap;
		if (gap < HIC_BUCKETS * HIC_STEP)
			h->hist[gap / HIC_STEP]++;
		else if (h->nlong < HIC_LONG)
			h->longs[h->nlong++] = gap;
	} while (now < end);
	return NULL;
}

/* The p-th percentile of the gaps of both threads (buckets: their upper edge). */
static double hic_pct(struct hic_thread *h, int nt, uint64_t total, double p)
{
	uint64_t want = (uint64_t)ceil(p * (double)total), seen = 0;
	size_t nl = 0;
	uint64_t *all;
	double v = 0;

	for (uint32_t b = 0; b < HIC_BUCKETS; b++) {
		for (int k = 0; k < nt; k++)
			seen += h[k].hist[b];
		if (seen >= want)
			return (double)(b + 1) * HIC_STEP;
	}
	for (int k = 0; k < nt; k++)
		nl += h[k].nlong;
	all = malloc((nl ? nl : 1) * sizeof(*all));
	if (!all)
		return NAN;
	nl = 0;
	for (int k = 0; k < nt; k++) {
		memcpy(all + nl, h[k].longs, h[k].nlong * sizeof(*all));
		nl += h[k].nlong;
	}
	qsort(all, nl, sizeof(*all), cmp_u64);
	if (nl)
		v = (double)all[want - seen - 1 < nl ? want - seen - 1 : nl - 1];
	free(all);
	return v;
}

/* See bench.h. */
int bench_hiccup_measure(uint64_t dur_ns, int cpu_a, int cpu_b, _Atomic uint32_t *started,
			 struct bench_hiccup *out)
{
	int nt = cpu_b >= 0 && cpu_b != cpu_a ? 2 : 1, started_n = 0, rc = 0;
	struct hic_thread *h = calloc((size_t)nt, sizeof(*h));
	uint64_t total = 0, over = 0, max = 0;

	memset(out, 0, sizeof(*out));
	out->cpus[0] = cpu_a;
	out->cpus[1] = nt == 2 ? cpu_b : -1;
	out->dur_ns = dur_ns;
	if (!h)
		return -ENOMEM;
	for (int k = 0; k < nt; k++) {
		h[k].cpu = k ? cpu_b : cpu_a;
		h[k].dur_ns = dur_ns;
		h[k].started = k ? NULL : started;
		h[k].longs = malloc(HIC_LONG * sizeof(uint64_t));
		if (!h[k].longs) {
			rc = -ENOMEM;
			break;
		}
		rc = -pthread_create(&h[k].t, NULL, hic_run, &h[k]);
		if (rc)
			break;
		started_n++;
	}
	for (int k = 0; k < started_n; k++)
		pthread_join(h[k].t, NULL);
	if (!rc) {
		for (int k = 0; k < nt; k++) {
			total += h[k].gaps;
			max = h[k].max > max ? h[k].max : max;
			for (uint64_t i = 0; i < h[k].nlong; i++)
				over += h[k].longs[i] >= 100000;
		}
		out->gaps = total;
		out->max_ns = (double)max;
		out->over_100us = over;
		out->p50_ns = hic_pct(h, nt, total, 0.50);
		out->p99_ns = hic_pct(h, nt, total, 0.99);
		out->p999_ns = hic_pct(h, nt, total, 0.999);
	}
	for (int k = 0; k < nt; k++)
		free(h[k].longs);
	free(h);
	return rc;
}

/* --- output --- */

/* A number, or null for NaN and infinities (JSON has none; jansson refuses them). */
static json_t *json_num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *json_row(const struct bench_row *row, const struct bench_report *r)
{
	const struct bench_row *b = row->vs[0] ? find_row(r, row->vs) : NULL;
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(row->name));
	json_object_set_new(o, "p50_ns", json_num(row->p50_ns));
	json_object_set_new(o, "p90_ns", json_num(row->p90_ns));
	json_object_set_new(o, "p99_ns", json_num(row->p99_ns));
	json_object_set_new(o, "p999_ns", json_num(row->p999_ns));
	json_object_set_new(o, "mean_ns", json_num(row->mean_ns));
	json_object_set_new(o, "stddev_ns", json_num(row->stddev_ns));
	json_object_set_new(o, "ops_per_s", json_num(row->ops_per_s > 0 ? row->ops_per_s : NAN));
	json_object_set_new(o, "alloc_bytes_per_op", json_num(row->alloc_per_op));
	json_object_set_new(o, "samples", json_integer((json_int_t)row->samples));
	if (row->vs[0])
		json_object_set_new(o, "vs", json_string(row->vs));
	if (b && b->p50_ns > 0) {
		json_object_set_new(o, "p50_ratio", json_num(row->p50_ns / b->p50_ns));
		json_object_set_new(o, "p99_ratio",
				    json_num(b->p99_ns > 0 ? row->p99_ns / b->p99_ns : NAN));
	}
	return o;
}

static json_t *json_hiccup(const struct bench_hiccup *h)
{
	json_t *o = json_object(), *c = json_array();

	json_array_append_new(c, json_integer(h->cpus[0]));
	if (h->cpus[1] >= 0)
		json_array_append_new(c, json_integer(h->cpus[1]));
	json_object_set_new(o, "cpus", c);
	json_object_set_new(o, "duration_ns", json_integer((json_int_t)h->dur_ns));
	json_object_set_new(o, "gaps", json_integer((json_int_t)h->gaps));
	json_object_set_new(o, "p50_ns", json_num(h->p50_ns));
	json_object_set_new(o, "p99_ns", json_num(h->p99_ns));
	json_object_set_new(o, "p999_ns", json_num(h->p999_ns));
	json_object_set_new(o, "max_ns", json_num(h->max_ns));
	json_object_set_new(o, "over_100us", json_integer((json_int_t)h->over_100us));
	return o;
}

/* See bench.h. */
json_t *bench_report_json(const struct bench_report *r)
{
	json_t *o = json_object(), *res = json_array(), *base = json_array();

	for (unsigned i = 0; i < r->nresults; i++)
		json_array_append_new(res, json_row(&r->results[i], r));
	for (unsigned i = 0; i < r->nbaselines; i++)
		json_array_append_new(base, json_row(&r->baselines[i], r));
	json_object_set_new(o, "bench", json_string(r->bench));
	json_object_set_new(o, "hiccup", json_hiccup(&r->hiccup));
	json_object_set_new(o, "results", res);
	json_object_set_new(o, "baselines", base);
	json_object_set_new(o, "host_steal_pct",
			    r->steal_pct >= 0 ? json_num(r->steal_pct) : json_null());
	json_object_set_new(o, "notes", json_string(r->notes));
	return o;
}

/*
 * A rate or an allocation figure for the table: "-" when none was measured (a rate of 0 is
 * none; 0 bytes allocated is a figure).
 */
static void fmt_opt(char *out, size_t cap, double v, bool zero_ok, const char *fmt)
{
	if (isfinite(v) && (v > 0 || (zero_ok && v == 0)))
		snprintf(out, cap, fmt, v);
	else
		snprintf(out, cap, "-");
}

/* A time in ns for the hiccup line, with a unit. */
static void fmt_time(char *out, size_t cap, double ns)
{
	if (!isfinite(ns))
		snprintf(out, cap, "-");
	else if (ns < 1e3)
		snprintf(out, cap, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(out, cap, "%.1f us", ns / 1e3);
	else
		snprintf(out, cap, "%.1f ms", ns / 1e6);
}

static void text_row(const struct bench_report *r, const struct bench_row *row, int w, FILE *f)
{
	const struct bench_row *b = row->vs[0] ? find_row(r, row->vs) : NULL;
	char ratio[96] = "", ops[32], alloc[32];

	if (b && b->p50_ns > 0)
		snprintf(ratio, sizeof(ratio), "p50 %.2fx p99 %.2fx %s", row->p50_ns / b->p50_ns,
			 b->p99_ns > 0 ? row->p99_ns / b->p99_ns : 0.0, b->name);
	fmt_opt(ops, sizeof(ops), row->ops_per_s, false, "%.0f");
	fmt_opt(alloc, sizeof(alloc), row->alloc_per_op, true, "%.1f");
	fprintf(f, "%-*s %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %12s %6s  %s\n", w, row->name,
		row->p50_ns, row->p90_ns, row->p99_ns, row->p999_ns, row->mean_ns, row->stddev_ns,
		ops, alloc, ratio);
}

/* See bench.h. */
void bench_report_text(const struct bench_report *r, FILE *f)
{
	const struct bench_hiccup *h = &r->hiccup;
	char p50[24], p99[24], p999[24], max[24];
	int w = 22;

	/* the name column as wide as the longest name: every row's numbers stay in line */
	for (unsigned i = 0; i < r->nresults; i++)
		w = strlen(r->results[i].name) > (size_t)w ? (int)strlen(r->results[i].name) : w;
	for (unsigned i = 0; i < r->nbaselines; i++)
		w = strlen(r->baselines[i].name) > (size_t)w ? (int)strlen(r->baselines[i].name)
							     : w;
	fmt_time(p50, sizeof(p50), h->p50_ns);
	fmt_time(p99, sizeof(p99), h->p99_ns);
	fmt_time(p999, sizeof(p999), h->p999_ns);
	fmt_time(max, sizeof(max), h->max_ns);
	if (h->gaps)
		fprintf(f,
			"platform hiccups before the run (clock read back to back for %.0f ms on "
			"cpu %d%s%.0d): p50 %s, p99 %s, p99.9 %s, max %s, %llu gaps >= 100 us\n",
			(double)h->dur_ns / 1e6, h->cpus[0], h->cpus[1] >= 0 ? " and " : "",
			h->cpus[1] >= 0 ? h->cpus[1] : 0, p50, p99, p999, max,
			(unsigned long long)h->over_100us);
	fprintf(f, "%-*s %10s %10s %10s %10s %10s %10s %12s %6s  %s\n", w, r->bench, "p50 ns",
		"p90 ns", "p99 ns", "p99.9 ns", "mean ns", "stddev ns", "ops/s", "B/op",
		"vs baseline");
	for (unsigned i = 0; i < r->nresults; i++)
		text_row(r, &r->results[i], w, f);
	fprintf(f, "baselines\n");
	for (unsigned i = 0; i < r->nbaselines; i++)
		text_row(r, &r->baselines[i], w, f);
	if (r->notes[0])
		fprintf(f, "%s\n", r->notes);
	if (r->steal_pct >= 0)
		fprintf(f,
			"host steal during the run: %.1f%% of this VM's CPU time (a busy host "
			"stretches the tails)\n",
			r->steal_pct);
}

/* --- budgets --- */

static double or_nan(double v)
{
	return isfinite(v) && v > 0 ? v : NAN;
}

static void row_figures(const struct bench_row *row, struct slo_figures *f)
{
	f->op = row->name;
	f->stat[SLO_P50] = or_nan(row->p50_ns);
	f->stat[SLO_P90] = or_nan(row->p90_ns);
	f->stat[SLO_P99] = or_nan(row->p99_ns);
	f->stat[SLO_P999] = or_nan(row->p999_ns);
	f->stat[SLO_MEAN] = or_nan(row->mean_ns);
	f->stat[SLO_RATE] = or_nan(row->ops_per_s);
}

/* See bench.h. */
size_t bench_report_figures(const struct bench_report *r, struct slo_figures *fig, size_t cap)
{
	size_t n = 0;

	for (unsigned i = 0; i < r->nresults && n < cap; i++)
		row_figures(&r->results[i], &fig[n++]);
	for (unsigned i = 0; i < r->nbaselines && n < cap; i++)
		row_figures(&r->baselines[i], &fig[n++]);
	return n;
}

/* See bench.h. */
unsigned bench_budgets_report(const struct slo_budgets *b, const struct bench_report *const *reps,
			      size_t n, bool all, FILE *f, json_t *ja)
{
	size_t cap = n * 2 * BENCH_MAX_ROWS, nf = 0;
	struct slo_figures *fig = calloc(cap ? cap : 1, sizeof(*fig));
	struct slo_result *res = calloc(b->n ? b->n : 1, sizeof(*res));
	unsigned broken = 0, shown = 0;

	if (!fig || !res) {
		free(fig);
		free(res);
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		nf += bench_report_figures(reps[i], fig + nf, cap - nf);
	broken = slo_budgets_check(b, fig, nf, res);
	for (size_t i = 0; i < b->n; i++) {
		const struct slo_budget *bg = &b->v[i];
		char text[160], verdict[200];
		bool unmeasured = res[i].verdict == SLO_NO_DATA;

		if (unmeasured && !all)
			continue; /* another suite's */
		if (unmeasured && !bg->info)
			broken++;
		slo_budget_format(bg, text, sizeof(text));
		slo_result_format(bg, &res[i], verdict, sizeof(verdict));
		if (ja) {
			json_t *o = json_object();

			json_object_set_new(o, "budget", json_string(text));
			json_object_set_new(o, "line", json_integer(bg->line));
			json_object_set_new(o, "op", json_string(bg->op));
			json_object_set_new(o, "stat", json_string(slo_stat_name(bg->stat)));
			json_object_set_new(o, "value", json_num(res[i].value));
			if (bg->vs[0]) {
				json_object_set_new(o, "vs", json_string(bg->vs));
				json_object_set_new(o, "base", json_num(res[i].base));
			}
			json_object_set_new(o, "measured", json_num(res[i].measured));
			json_object_set_new(o, "limit", json_num(bg->limit));
			json_object_set_new(o, "info", json_boolean(bg->info));
			json_object_set_new(o, "verdict",
					    json_string(res[i].verdict == SLO_MET ? "met"
							: res[i].verdict == SLO_BROKEN
								? "broken"
								: "not measured"));
			json_array_append_new(ja, o);
		} else if (f) {
			if (!shown++)
				fprintf(f, "budgets (%s):\n", b->file);
			fprintf(f, "  %-6s %s:%u: %s: %s\n",
				res[i].verdict == SLO_MET ? "ok"
				: bg->info		  ? "info"
							  : "FAIL",
				b->file, bg->line, text, verdict);
		}
	}
	if (f && !ja && shown)
		fprintf(f, "budgets broken: %u (info lines never fail)\n", broken);
	free(fig);
	free(res);
	return broken;
}

/* --- saved runs and regressions --- */

static double jnum(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static int load_rows(json_t *a, struct bench_row *rows, unsigned *n)
{
	size_t i;
	json_t *o;

	*n = 0;
	if (!json_is_array(a))
		return -EINVAL;
	json_array_foreach(a, i, o)
	{
		struct bench_row *row = &rows[*n];
		const char *name = json_string_value(json_object_get(o, "name"));
		const char *vs = json_string_value(json_object_get(o, "vs"));

		if (*n >= BENCH_MAX_ROWS || !name)
			return -EINVAL;
		memset(row, 0, sizeof(*row));
		snprintf(row->name, sizeof(row->name), "%s", name);
		if (vs)
			snprintf(row->vs, sizeof(row->vs), "%s", vs);
		row->p50_ns = jnum(o, "p50_ns");
		row->p90_ns = jnum(o, "p90_ns");
		row->p99_ns = jnum(o, "p99_ns");
		row->p999_ns = jnum(o, "p999_ns");
		row->mean_ns = jnum(o, "mean_ns");
		row->stddev_ns = jnum(o, "stddev_ns");
		row->ops_per_s = jnum(o, "ops_per_s");
		row->alloc_per_op = jnum(o, "alloc_bytes_per_op");
		row->samples = (uint64_t)json_integer_value(json_object_get(o, "samples"));
		(*n)++;
	}
	return 0;
}

static int load_suite(json_t *o, struct bench_report *r)
{
	const char *b = json_string_value(json_object_get(o, "bench"));

	memset(r, 0, sizeof(*r));
	if (!b)
		return -EINVAL;
	snprintf(r->bench_buf, sizeof(r->bench_buf), "%s", b);
	r->bench = r->bench_buf;
	if (load_rows(json_object_get(o, "results"), r->results, &r->nresults) ||
	    load_rows(json_object_get(o, "baselines"), r->baselines, &r->nbaselines))
		return -EINVAL;
	return 0;
}

/* See bench.h. */
int bench_saved_load(const char *path, struct bench_report *reps, size_t cap, char *err,
		     size_t errlen)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je), *suites;
	int n = 0;

	if (!root) {
		snprintf(err, errlen, "%s:%d: not a saved run (%s); save one with --json", path,
			 je.line, je.text);
		return -EINVAL;
	}
	suites = json_object_get(root, "suites");
	if (json_is_array(suites)) {
		size_t i;
		json_t *o;

		json_array_foreach(suites, i, o)
		{
			if ((size_t)n == cap || load_suite(o, &reps[n])) {
				n = -EINVAL;
				break;
			}
			n++;
		}
	} else if (cap && load_suite(root, &reps[0]) == 0) {
		n = 1;
	} else {
		n = -EINVAL;
	}
	if (n < 0)
		snprintf(err, errlen,
			 "%s: not a saved run of shoal bench --json (no bench, results[], "
			 "baselines[]); save one with --json",
			 path);
	json_decref(root);
	return n;
}

/*
 * The relative uncertainty of a row's p50 from its own samples: the standard error of a
 * median (1.25 sigma / sqrt(n)), sigma estimated from p90 - p50 (1.28 sigma in a normal
 * distribution) rather than the standard deviation, which a few stalls of milliseconds
 * would make meaningless.
 */
static double rel_noise(const struct bench_row *row)
{
	double sigma = (row->p90_ns - row->p50_ns) / 1.28;

	if (!(row->p50_ns > 0) || !row->samples || !isfinite(sigma))
		return 0;
	return 1.25 * sigma / sqrt((double)row->samples) / row->p50_ns;
}

/*
 * A single timed sample of a few tens of ns moves in steps of about this much on the
 * development VM (the timer pair's own jitter: p50s of 20, 30, 40 ns), so a p50 of 20 ns
 * cannot tell a change of less than half of it from noise.
 */
#define TIMER_STEP_NS 10.0

static const struct bench_report *find_suite(const struct bench_report *reps, size_t n,
					     const char *bench)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(reps[i].bench, bench))
			return &reps[i];
	return NULL;
}

/* One figure compared; 1 if it regressed. */
static unsigned compare_one(const char *what, double now, double saved, bool lower_better,
			    double thr, const char *detail, FILE *f, json_t *ja)
{
	double worse = lower_better ? now / saved : saved / now;
	bool bad = worse > 1 + thr;

	if (ja) {
		json_t *o = json_object();

		json_object_set_new(o, "figure", json_string(what));
		json_object_set_new(o, "now", json_num(now));
		json_object_set_new(o, "saved", json_num(saved));
		json_object_set_new(o, "worse_by", json_num(worse));
		json_object_set_new(o, "threshold", json_num(1 + thr));
		json_object_set_new(o, "regressed", json_boolean(bad));
		json_array_append_new(ja, o);
	} else {
		fprintf(f,
			"  %-9s %-48s now %7.3fx (%s), saved %7.3fx: %.2fx %s, threshold %.2fx\n",
			bad ? "REGRESSED" : "ok", what, now, detail, saved, worse,
			worse >= 1 ? "worse" : "better", 1 + thr);
	}
	return bad;
}

/* See bench.h. */
unsigned bench_compare(const struct bench_report *const *now, size_t n,
		       const struct bench_report *saved, size_t nsaved, double tol, FILE *f,
		       json_t *ja)
{
	unsigned bad = 0, compared = 0;

	if (!ja)
		fprintf(f, "against the saved run (ratios to same-run baselines; a figure "
			   "regresses when worse by more than its threshold):\n");
	for (size_t s = 0; s < n; s++) {
		const struct bench_report *r = now[s], *o = find_suite(saved, nsaved, r->bench);

		if (!o)
			continue;
		for (unsigned i = 0; i < r->nresults; i++) {
			const struct bench_row *a = &r->results[i], *ab, *sa, *sb;
			char what[160], detail[96];
			double thr;

			if (!a->vs[0] || !(ab = find_row(r, a->vs)) ||
			    !(sa = find_row(o, a->name)) || !(sb = find_row(o, a->vs)))
				continue;
			/* three standard errors of the four p50s' sampling noise */
			thr = 3 * sqrt(pow(rel_noise(a), 2) + pow(rel_noise(ab), 2) +
				       pow(rel_noise(sa), 2) + pow(rel_noise(sb), 2));
			if (a->p50_ns > 0 && ab->p50_ns > 0 && sa->p50_ns > 0 && sb->p50_ns > 0) {
				/* plus the timer's step on each of the four p50s */
				double p = thr + sqrt(pow(TIMER_STEP_NS / a->p50_ns, 2) +
						      pow(TIMER_STEP_NS / ab->p50_ns, 2) +
						      pow(TIMER_STEP_NS / sa->p50_ns, 2) +
						      pow(TIMER_STEP_NS / sb->p50_ns, 2));

				p = p > tol ? p : tol;
				snprintf(what, sizeof(what), "%s: %s p50 / %s p50", r->bench,
					 a->name, a->vs);
				snprintf(detail, sizeof(detail), "%.0f / %.0f ns", a->p50_ns,
					 ab->p50_ns);
				bad += compare_one(what, a->p50_ns / ab->p50_ns,
						   sa->p50_ns / sb->p50_ns, true, p, detail, f, ja);
				compared++;
			}
			thr = thr > tol ? thr : tol;
			if (a->ops_per_s > 0 && ab->ops_per_s > 0 && sa->ops_per_s > 0 &&
			    sb->ops_per_s > 0) {
				snprintf(what, sizeof(what), "%s: %s rate / %s rate", r->bench,
					 a->name, a->vs);
				snprintf(detail, sizeof(detail), "%.3g / %.3g per s", a->ops_per_s,
					 ab->ops_per_s);
				bad += compare_one(what, a->ops_per_s / ab->ops_per_s,
						   sa->ops_per_s / sb->ops_per_s, false, thr,
						   detail, f, ja);
				compared++;
			}
		}
	}
	if (!ja)
		fprintf(f, "regressions: %u of %u figures\n", bad, compared);
	return bad;
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
