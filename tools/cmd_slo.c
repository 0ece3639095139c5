/*
 * shoal slo-check: a budgets file (docs/budgets.md) against an instance's latency histograms,
 * live or stopped, read through a snapshot like inspect's. A CI gate: exit 1 when a budget
 * that is not 'info' is broken. Never writes to the segment.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shm/hist.h"
#include "shm/shm.h"
#include "shm/view.h"
#include "slo/slo.h"
#include "tools/tools.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal slo-check BUDGETS [--instance NAME] [--json]\n"
		"Checks an instance's latency histograms (live, or stopped: a post-mortem)\n"
		"against a budgets file (docs/budgets.md): each budget with the instance's\n"
		"figure since it was created and a verdict. Attaches read-only.\n"
		"  rate       operations per second over the instance's uptime (a sampled\n"
		"             operation's count times its sampling rate: an estimate)\n"
		"  LIMIT Nx B the same statistic of operation B of the same instance\n"
		"  --json     one JSON object: {\"instance\", \"budgets_file\", \"uptime_s\",\n"
		"             \"budgets\": [{\"budget\", \"line\", \"op\", \"stat\", \"value\",\n"
		"             \"measured\", \"limit\", \"info\", \"verdict\": \"met\"|\"broken\"|\n"
		"             \"no_data\", \"samples\", \"sample_rate\"}], \"broken\"}\n"
		"A budget of an operation with no samples reads NO_DATA and does not fail.\n"
		"Exit: 0 every budget met (or informational, or NO_DATA), 1 one broken, 2 a\n"
		"bad budgets file (FILE:LINE), an unknown instance or an unreadable segment.\n");
}

/* A snapshot of instance with its histograms into *out; 0 or -errno with err said. */
static int slo_take(const char *instance, struct shm_view **out, char *err, size_t errlen)
{
	int r = tool_view_take(instance, out, err, errlen);

	if (r)
		return r;
	if (!((*out)->parts & SHM_VIEW_PART_OPS) || !(*out)->has_ops) {
		snprintf(err, errlen,
			 "instance '%s': its segment has no latency histograms (layout %u.%u; they "
			 "came in minor 10): run it with this shoal",
			 instance, (*out)->hdr.layout_major, (*out)->hdr.layout_minor);
		shm_view_free(*out);
		*out = NULL;
		return -EPROTONOSUPPORT;
	}
	return 0;
}

/* The segment's operation named name, or -1. */
static int op_index(const struct shm_view *v, const char *name)
{
	for (uint32_t i = 0; i < SHM_HIST_OPS; i++)
		if (v->ops[i].name && !strcmp(v->ops[i].name, name))
			return (int)i;
	return -1;
}

/* Seconds the instance has run (to its stop, if stopped); NaN if the clocks say nothing. */
static double uptime_s(const struct shm_view *v)
{
	uint64_t end = v->hdr.stop_ns ? v->hdr.stop_ns : v->taken_wall_ns;

	if (!v->hdr.created_ns || end <= v->hdr.created_ns)
		return NAN;
	return (double)(end - v->hdr.created_ns) / 1e9;
}

/*
 * The figures of each operation of v: its percentiles and mean as merged (NaN without
 * samples), its rate as operations over the uptime (a sampled operation's samples times
 * its rate).
 */
static void figures(const struct shm_view *v, struct slo_figures *fig)
{
	double up = uptime_s(v);

	for (uint32_t i = 0; i < SHM_HIST_OPS; i++) {
		const struct shm_view_op *o = &v->ops[i];
		bool any = o->count > 0;

		fig[i].op = o->name ? o->name : "?";
		fig[i].stat[SLO_P50] = any ? (double)o->p50_ns : NAN;
		fig[i].stat[SLO_P90] = any ? (double)o->p90_ns : NAN;
		fig[i].stat[SLO_P99] = any ? (double)o->p99_ns : NAN;
		fig[i].stat[SLO_P999] = any ? (double)o->p999_ns : NAN;
		fig[i].stat[SLO_MEAN] = any ? (double)o->mean_ns : NAN;
		fig[i].stat[SLO_RATE] =
			any && isfinite(up)
				? (double)o->count * (double)(o->rate ? o->rate : 1) / up
				: NAN;
	}
}

/* Why a budget reads NO_DATA, for a person: which of its operations lacks samples. */
static void no_data_why(const struct shm_view *v, const struct slo_budget *bg, char *buf,
			size_t cap)
{
	const char *names[2] = {bg->op, bg->vs[0] ? bg->vs : NULL};

	for (int k = 0; k < 2 && names[k]; k++) {
		int i = op_index(v, names[k]);

		if (i < 0) {
			char known[160];
			size_t n = 0;

			known[0] = 0;
			for (uint32_t o = 0; o < SHM_HIST_OPS && n < sizeof(known); o++)
				n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s",
						      o ? ", " : "", shm_hist_op_name(o));
			snprintf(buf, cap,
				 "'%s' is not an operation the segment times (%s); not a "
				 "failure",
				 names[k], known);
			return;
		}
		if (!v->ops[i].count) {
			snprintf(buf, cap, "no samples of %s yet; not a failure", names[k]);
			return;
		}
	}
	snprintf(buf, cap, "the instance's uptime is unknown; not a failure");
}

static json_t *json_num(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

static int print_json(const char *instance, const struct shm_view *v, const struct slo_budgets *b,
		      const struct slo_result *res, unsigned broken)
{
	json_t *o = json_object(), *a = json_array();
	int r = !o || !a;

	for (size_t i = 0; !r && i < b->n; i++) {
		const struct slo_budget *bg = &b->v[i];
		int op = op_index(v, bg->op);
		char text[160];
		json_t *e = json_object();

		if (!e) {
			r = 1;
			break;
		}
		slo_budget_format(bg, text, sizeof(text));
		json_object_set_new(e, "budget", json_string(text));
		json_object_set_new(e, "line", json_integer(bg->line));
		json_object_set_new(e, "op", json_string(bg->op));
		json_object_set_new(e, "stat", json_string(slo_stat_name(bg->stat)));
		json_object_set_new(e, "cmp", json_string(bg->cmp == SLO_LE ? "<=" : ">="));
		json_object_set_new(e, "value", json_num(res[i].value));
		if (bg->vs[0]) {
			json_object_set_new(e, "vs", json_string(bg->vs));
			json_object_set_new(e, "base", json_num(res[i].base));
		}
		json_object_set_new(e, "measured", json_num(res[i].measured));
		json_object_set_new(e, "limit", json_real(bg->limit));
		json_object_set_new(e, "info", json_boolean(bg->info));
		json_object_set_new(e, "verdict",
				    json_string(res[i].verdict == SLO_MET      ? "met"
						: res[i].verdict == SLO_BROKEN ? "broken"
									       : "no_data"));
		json_object_set_new(e, "samples",
				    json_integer(op >= 0 ? (json_int_t)v->ops[op].count : 0));
		json_object_set_new(e, "sample_rate",
				    json_integer(op >= 0 ? (json_int_t)v->ops[op].rate : 0));
		r = json_array_append_new(a, e);
	}
	if (!r) {
		json_object_set_new(o, "instance", json_string(instance));
		json_object_set_new(o, "budgets_file", json_string(b->file));
		json_object_set_new(o, "stopped", json_boolean(v->hdr.stop_ns != 0));
		json_object_set_new(o, "uptime_s", json_num(uptime_s(v)));
		json_object_set_new(o, "budgets", a);
		a = NULL;
		json_object_set_new(o, "broken", json_integer(broken));
	}
	if (r || json_dumpf(o, stdout, JSON_COMPACT) || fputc('\n', stdout) == EOF) {
		json_decref(a);
		json_decref(o);
		fprintf(stderr, "shoal slo-check: out of memory\n");
		return -ENOMEM;
	}
	json_decref(o);
	return 0;
}

static void print_text(const char *instance, const struct shm_view *v, const struct slo_budgets *b,
		       const struct slo_result *res, unsigned broken)
{
	char note[200];

	printf("instance %s (%s, up %.1f s): budgets %s\n", instance,
	       v->hdr.stop_ns ? "stopped" : "running", uptime_s(v), b->file);
	for (size_t i = 0; i < b->n; i++) {
		const struct slo_budget *bg = &b->v[i];
		int op = op_index(v, bg->op);
		char text[160], verdict[240], sample[64] = "";

		slo_budget_format(bg, text, sizeof(text));
		if (res[i].verdict == SLO_NO_DATA) {
			no_data_why(v, bg, verdict, sizeof(verdict));
		} else {
			slo_result_format(bg, &res[i], verdict, sizeof(verdict));
			if (v->ops[op].rate > 1)
				snprintf(sample, sizeof(sample), " (%llu samples, a 1/%u sample)",
					 (unsigned long long)v->ops[op].count, v->ops[op].rate);
			else
				snprintf(sample, sizeof(sample), " (%llu samples)",
					 (unsigned long long)v->ops[op].count);
		}
		printf("  %-7s %s:%u: %s: %s%s\n",
		       res[i].verdict == SLO_NO_DATA ? "NO_DATA"
		       : res[i].verdict == SLO_MET   ? "ok"
		       : bg->info		     ? "info"
						     : "FAIL",
		       b->file, bg->line, text, verdict, sample);
	}
	tool_ops_sample_note(v, note, sizeof(note));
	if (note[0])
		printf("note: %s\n", note);
	printf("budgets broken: %u of %zu (info and NO_DATA lines never fail)\n", broken, b->n);
}

int cmd_slo_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance();
	struct slo_budgets b = {0};
	struct slo_figures fig[SHM_HIST_OPS];
	struct slo_result *res = NULL;
	struct shm_view *v = NULL;
	bool json = false;
	unsigned broken;
	char err[4096] = "";
	int c, r, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "shoal slo-check: %s\n",
			optind < argc ? "one budgets file, and nothing after it"
				      : "which budgets file? e.g. shoal slo-check budgets.txt");
		usage(stderr);
		return EXIT_USAGE;
	}
	/* the file first: a bad budget is the caller's to fix whatever the instance */
	r = slo_budgets_load(&b, argv[optind], err, sizeof(err));
	if (r) {
		fprintf(stderr, "shoal slo-check: %s\n", err);
		slo_budgets_free(&b); /* a bad file's parse may have taken memory */
		return r == -ENOMEM ? EXIT_SYSTEM : EXIT_USAGE;
	}
	r = slo_take(instance, &v, err, sizeof(err));
	if (r) {
		fprintf(stderr, "shoal slo-check: %s\n", err);
		ret = r == -ENOMEM ? EXIT_SYSTEM : EXIT_USAGE;
		goto out;
	}
	res = calloc(b.n ? b.n : 1, sizeof(*res));
	if (!res) {
		ret = EXIT_SYSTEM;
		goto out;
	}
	figures(v, fig);
	broken = slo_budgets_check(&b, fig, SHM_HIST_OPS, res);
	if (json) {
		if (print_json(instance, v, &b, res, broken)) {
			ret = EXIT_SYSTEM;
			goto out;
		}
	} else {
		print_text(instance, v, &b, res, broken);
	}
	ret = broken ? EXIT_CHECK : EXIT_OK;
out:
	free(res);
	shm_view_free(v);
	slo_budgets_free(&b);
	return ret;
}
