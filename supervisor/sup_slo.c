/*
 * The supervisor's live latency checks ([slo] budgets, `shoal run --budgets`): every [slo]
 * interval, on the supervisor's timer, the merged histograms of every process slot are
 * compared with the budgets file, over the window since the last check: the histograms
 * only grow (shm/hist.h), so a window is the bucket-by-bucket difference of two snapshots.
 * A budget broken in a window is an slo-violation event in the ring and a console line;
 * again each interval while it stays broken, and one line when it is met again.
 *
 * Cost: everything is allocated once, at start; a check copies each operation's nonempty
 * blocks through their seqlocks (a bounded number of tries, never a wait on a writer,
 * shm_hist_collect_blocks()) and does arithmetic on 544 buckets per operation.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shm/event.h"
#include "shm/hist.h"
#include "shm/log.h"
#include "slo/slo.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

struct sup_slo {
	struct slo_budgets b;
	struct slo_result *res; /* b.n verdicts of the last check */
	bool *broken;		/* b.n: broken at the last check that had samples */
	uint64_t interval_ns;
	uint64_t next_ns; /* the next check (monotonic) */
	uint64_t last_ns; /* the last one: the window's start */
	const struct shm_hist *region;
	uint32_t nprocs;
	struct shm_hist_snap prev[SHM_HIST_OPS]; /* the totals at the window's start */
	struct shm_hist_snap cur, win, one;	 /* scratch */
	struct slo_figures fig[SHM_HIST_OPS];
	uint64_t samples[SHM_HIST_OPS]; /* in the window, for the lines */
};

/*
 * The window between two snapshots of one operation's histogram: cur - prev, bucket by
 * bucket. The totals only grow; if one went back (a slot's histograms reset) the window is
 * cur whole: an overcount, never a negative. max_ns stays cur's (the largest since the
 * start: an upper bound the percentiles are capped by, not the window's own largest).
 */
static void window(const struct shm_hist_snap *prev, const struct shm_hist_snap *cur,
		   struct shm_hist_snap *win)
{
	bool back = cur->count < prev->count || cur->sum_ns < prev->sum_ns;

	for (uint32_t i = 0; i < SHM_HIST_BUCKETS && !back; i++)
		back = cur->bucket[i] < prev->bucket[i];
	*win = *cur;
	if (back)
		return;
	win->count = 0;
	for (uint32_t i = 0; i < SHM_HIST_BUCKETS; i++) {
		win->bucket[i] = cur->bucket[i] - prev->bucket[i];
		win->count += win->bucket[i];
	}
	win->sum_ns = cur->sum_ns - prev->sum_ns;
}

/* The figures of a window of secs seconds: NaN (not measured) without samples. */
static void figures(const struct shm_hist_snap *w, double secs, struct slo_figures *f)
{
	bool any = w->count > 0;

	f->stat[SLO_P50] = any ? (double)shm_hist_percentile(w, 0.50) : NAN;
	f->stat[SLO_P90] = any ? (double)shm_hist_percentile(w, 0.90) : NAN;
	f->stat[SLO_P99] = any ? (double)shm_hist_percentile(w, 0.99) : NAN;
	f->stat[SLO_P999] = any ? (double)shm_hist_percentile(w, 0.999) : NAN;
	f->stat[SLO_MEAN] = any ? (double)w->sum_ns / (double)w->count : NAN;
	/* a sampled operation's samples times its rate: an estimate of the operations */
	f->stat[SLO_RATE] =
		any && secs > 0 ? (double)w->count * (double)(w->rate ? w->rate : 1) / secs : NAN;
}

/* Copy every operation's merged totals into prev (the start of the next window). */
static void snap_all(struct sup_slo *l)
{
	for (uint32_t op = 0; op < SHM_HIST_OPS; op++)
		shm_hist_collect_blocks(l->region, l->nprocs, op, &l->prev[op], &l->one);
}

/* The operation index of name, or -1 (a budget of a name the segment does not time). */
static int op_of(const char *name)
{
	for (uint32_t op = 0; op < SHM_HIST_OPS; op++)
		if (!strcmp(shm_hist_op_name(op), name))
			return (int)op;
	return -1;
}

/*
 * A budget naming an operation the segment does not time (a misspelling, a benchmark row)
 * is never checked: say so once, at start, rather than stay silent.
 */
static void warn_unknown(const struct sup_slo *l)
{
	for (size_t i = 0; i < l->b.n; i++) {
		const struct slo_budget *bg = &l->b.v[i];
		const char *name = op_of(bg->op) < 0		    ? bg->op
				   : bg->vs[0] && op_of(bg->vs) < 0 ? bg->vs
								    : NULL;
		char known[160];
		size_t n = 0;

		if (!name)
			continue;
		known[0] = 0;
		for (uint32_t o = 0; o < SHM_HIST_OPS && n < sizeof(known); o++)
			n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", o ? ", " : "",
					      shm_hist_op_name(o));
		shm_log_event("slo.unknown", "slo",
			      json_pack("{s:s, s:i, s:s}", "file", l->b.file, "line", (int)bg->line,
					"op", name),
			      "%s:%u: '%s' is not an operation the segment times (%s): this budget "
			      "is never checked",
			      l->b.file, bg->line, name, known);
	}
}

/* See sup_int.h. Supervisor thread, before the loop. */
int sup_slo_open(struct sup *s, char *err, size_t errlen)
{
	const struct sup_config *c = s->c;
	struct sup_slo *l;
	int r;

	s->slo = NULL;
	if (!c->slo_budgets[0])
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	r = slo_budgets_load(&l->b, c->slo_budgets, err, errlen);
	if (r)
		goto out_budgets; /* a bad file's parse may have taken memory */
	r = -ENOMEM;
	l->res = calloc(l->b.n ? l->b.n : 1, sizeof(*l->res));
	l->broken = calloc(l->b.n ? l->b.n : 1, sizeof(*l->broken));
	if (!l->res || !l->broken)
		goto out_budgets;
	l->region = shm_hist_at(s->seg, 0, 0);
	if (!l->region) {
		/* a segment of this shoal always has them: one adopted from an older one */
		snprintf(err, errlen,
			 "the segment has no latency histograms (layout minor %u): the budgets of "
			 "%s cannot be checked",
			 shm_hdr(s->seg)->layout_minor, c->slo_budgets);
		r = -EPROTONOSUPPORT;
		goto out_budgets;
	}
	l->nprocs = shm_hdr(s->seg)->cfg.max_procs;
	for (uint32_t op = 0; op < SHM_HIST_OPS; op++)
		l->fig[op].op = shm_hist_op_name(op);
	l->interval_ns = (uint64_t)c->slo_interval_ms * 1000000u;
	l->last_ns = sup_now();
	l->next_ns = l->last_ns + l->interval_ns;
	snap_all(l);
	warn_unknown(l);
	s->slo = l;
	return 0;

out_budgets:
	free(l->res);
	free(l->broken);
	slo_budgets_free(&l->b);
	free(l);
	return r;
}

/* See sup_int.h. Supervisor thread. */
void sup_slo_close(struct sup *s)
{
	struct sup_slo *l = s->slo;

	if (!l)
		return;
	free(l->res);
	free(l->broken);
	slo_budgets_free(&l->b);
	free(l);
	s->slo = NULL;
}

/* One budget's verdict as a console line and, broken, as an event in the ring. */
static void report(struct sup *s, struct sup_slo *l, size_t i, double secs)
{
	const struct slo_budget *bg = &l->b.v[i];
	const struct slo_result *r = &l->res[i];
	bool broken = r->verdict == SLO_BROKEN;
	int op = op_of(bg->op);
	uint64_t n = op >= 0 ? l->samples[op] : 0;
	uint32_t rate = op >= 0 && l->prev[op].rate > 1 ? l->prev[op].rate : 0;
	char text[160], verdict[200], fig[32], lim[96], sample[48] = "";
	json_t *fields;

	slo_budget_format(bg, text, sizeof(text));
	slo_result_format(bg, r, verdict, sizeof(verdict));
	if (rate)
		snprintf(sample, sizeof(sample), ", a 1/%u sample", rate);
	fields = json_pack("{s:s, s:i, s:s, s:s, s:f, s:f, s:f, s:I, s:s}", "file", l->b.file,
			   "line", (int)bg->line, "op", bg->op, "stat", slo_stat_name(bg->stat),
			   "measured", r->measured, "limit", bg->limit, "window_s", secs, "samples",
			   (json_int_t)n, "verdict", broken ? "broken" : "met");
	shm_log_event(broken ? "slo.violation" : "slo.met", "slo", fields,
		      "%s:%u: %s: %s%s over the last %.1f s (%llu samples%s)", l->b.file, bg->line,
		      text, verdict, broken ? "" : " again", secs, (unsigned long long)n, sample);
	if (!broken)
		return;
	/* the ring's 40 bytes: operation, statistic, figure and limit ("call p50 143us > 1ns") */
	if (bg->vs[0]) {
		snprintf(fig, sizeof(fig), "%.3gx", r->measured);
		snprintf(lim, sizeof(lim), "%gx %s", bg->limit, bg->vs);
	} else {
		slo_value_format(r->measured, bg->stat, fig, sizeof(fig));
		slo_value_format(bg->limit, bg->stat, lim, sizeof(lim));
	}
	{
		struct shm_event e;

		shm_event_init(&e, SHM_EV_SLO_VIOLATION);
		e.code = (int32_t)bg->line;
		sup_event(s, NULL, SHM_EV_SLO_VIOLATION, 0, &e, "%s %s %s %s %s", bg->op,
			  slo_stat_name(bg->stat), fig, bg->cmp == SLO_LE ? ">" : "<", lim);
	}
}

/* See sup_int.h. Supervisor thread, on its timer (sup_duty_tick()). */
void sup_slo_tick(struct sup *s, uint64_t t)
{
	struct sup_slo *l = s->slo;
	double secs;

	if (!l || t < l->next_ns)
		return;
	l->next_ns = t + l->interval_ns;
	secs = (double)(t - l->last_ns) / 1e9;
	l->last_ns = t;
	for (uint32_t op = 0; op < SHM_HIST_OPS; op++) {
		shm_hist_collect_blocks(l->region, l->nprocs, op, &l->cur, &l->one);
		window(&l->prev[op], &l->cur, &l->win);
		figures(&l->win, secs, &l->fig[op]);
		l->samples[op] = l->win.count;
		l->prev[op] = l->cur;
	}
	slo_budgets_check(&l->b, l->fig, SHM_HIST_OPS, l->res);
	for (size_t i = 0; i < l->b.n; i++) {
		enum slo_verdict v = l->res[i].verdict;

		/* a window without samples says nothing: the state stays */
		if (l->b.v[i].info || v == SLO_NO_DATA)
			continue;
		if (v == SLO_BROKEN || l->broken[i])
			report(s, l, i, secs);
		l->broken[i] = v == SLO_BROKEN;
	}
}
