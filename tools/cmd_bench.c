/*
 * shoal bench: run one benchmark suite (or all), each with its baselines in the same run and
 * the platform's hiccups measured first; print ratios, check budgets, compare with a saved run.
 */
#include <getopt.h>
#include <limits.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench.h"
#include "tools/tools.h"

/*
 * The suites: the first NBENCHES are the ones `all` runs, in this order (the cheap ones
 * first: a failure shows early); those after them run only by name.
 */
static const struct {
	const char *name;
	const char *summary;
	int (*run)(struct bench_opts *o, struct bench_report *r);
} benches[] = {
	{"registry", "registry lookups and register+unregister vs a plain array index",
	 bench_registry},
	{"control", "spawn/stop requests to the supervisor vs a call to a parked worker",
	 bench_control},
	{"coord",
	 "coordination: variables (read, update) vs a registry lookup; broadcast with "
	 "acknowledgements to 100 agents (round record vs replies)",
	 bench_coord},
	{"ipc", "mailbox round trips and throughput vs cache-line, futex, io_uring, pipe",
	 bench_ipc},
	{"restart", "SIGKILL a worker with 100 agents: until ready, until all answer again",
	 bench_restart},
	/* past NBENCHES: not in `all` (it starts BEAM nodes: needs erl, takes its own time) */
	{"dist",
	 "the Erlang distribution: a BEAM node's calls and casts to shoal agents vs to a second "
	 "BEAM node",
	 bench_dist},
	{NULL, NULL, NULL},
};

#define NBENCHES 5
/* A figure regresses beyond this (a fraction) at least; noisier rows get more (bench.c). */
#define REGRESSION_TOL 0.25

/*
 * The budgets file to use when none is given: the source tree's when this shoal is the one
 * in its build directory, else the installed one (the source tree's if that is missing).
 */
static const char *default_budgets(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t root = strlen(SHOAL_BUILD_ROOT);

	if (n > 0) {
		exe[n] = 0;
		if (!strncmp(exe, SHOAL_BUILD_ROOT, root) && exe[root] == '/')
			return SHOAL_BUDGETS_SRC;
	}
	return access(SHOAL_BUDGETS_DATA, R_OK) == 0 ? SHOAL_BUDGETS_DATA : SHOAL_BUDGETS_SRC;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal bench NAME|all [--json] [--quick] [--check] [--budgets FILE]\n"
		"                            [--baseline FILE] [--cpus A,B] [--no-monitors]\n"
		"  --json           one JSON object: the suite's hiccup meter, results[] and\n"
		"                   baselines[] (name, p50_ns, p90_ns, p99_ns, p999_ns, mean_ns,\n"
		"                   stddev_ns, ops_per_s, alloc_bytes_per_op, samples, vs), "
		"budgets[];\n"
		"                   all: suites[] of those, budgets[] once\n"
		"  --quick          fewer iterations (a smoke run; all of them in under a minute)\n"
		"  --check          exit 1 if a budget that is not 'info' is broken\n"
		"  --budgets FILE   the budgets (docs/budgets.md; default %s)\n"
		"  --baseline FILE  compare with a saved --json run, on ratios to same-run\n"
		"                   baselines; exit 1 if a figure regressed beyond the noise\n"
		"  --cpus A,B       the two cores to use (default: the first two allowed)\n"
		"  --no-monitors    dist: its instances run with [dist] monitors = no\n"
		"benchmarks:\n",
		default_budgets());
	for (int i = 0; benches[i].name; i++)
		fprintf(f, "  %-10s %s\n", benches[i].name, benches[i].summary);
	fprintf(f, "  %-10s every one of them, in this order\n", "all");
}

/* See bench.h. */
int bench_parse_common(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"quick", no_argument, NULL, 'q'},
		{"check", no_argument, NULL, 'c'},
		{"cpus", required_argument, NULL, 'C'},
		{"instance", required_argument, NULL, 'i'},
		{"budgets", required_argument, NULL, 'B'},
		{"baseline", required_argument, NULL, 'S'},
		{"no-monitors", no_argument, NULL, 'M'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jqcC:i:B:S:Mh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 'q':
			o->quick = true;
			break;
		case 'c':
			o->check = true;
			break;
		case 'C':
			if (sscanf(optarg, "%d,%d", &o->cpu_a, &o->cpu_b) != 2) {
				fprintf(stderr, "shoal bench: --cpus takes A,B, not '%s'\n",
					optarg);
				return -1;
			}
			break;
		case 'i':
			o->instance = optarg;
			break;
		case 'B':
			o->budgets = optarg;
			break;
		case 'S':
			o->baseline = optarg;
			break;
		case 'M':
			o->no_monitors = true;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			usage(stderr);
			return -1;
		}
	}
	return optind;
}

/* The worse of two exit codes: a system failure over a failed check over success. */
static int worse(int a, int b)
{
	int rank_a = a == EXIT_OK ? 0 : a == EXIT_CHECK ? 1 : 2;
	int rank_b = b == EXIT_OK ? 0 : b == EXIT_CHECK ? 1 : 2;

	return rank_b > rank_a ? b : a;
}

/* One suite: its hiccup meter first, then its rows, then the host's steal during both. */
static int run_suite(int i, struct bench_opts *o, struct bench_report *r)
{
	int rc, h;

	memset(r, 0, sizeof(*r));
	r->bench = benches[i].name;
	bench_clock_init();
	h = bench_hiccup_measure(o->quick ? 100000000ull : 1000000000ull, o->cpu_a, o->cpu_b, NULL,
				 &r->hiccup);
	if (h)
		fprintf(stderr, "shoal bench %s: hiccup meter: %s\n", r->bench, strerror(-h));
	rc = benches[i].run(o, r);
	r->steal_pct = bench_steal_pct();
	if (rc == EXIT_CHECK)
		rc = EXIT_OK; /* the suites no longer judge: the budgets do */
	if (rc != EXIT_OK)
		fprintf(stderr, "shoal bench %s: the suite failed (exit %d)%s\n", r->bench, rc,
			o->json ? "" : "; its rows so far follow");
	return rc;
}

/* See tools.h: shoal bench NAME|all [options]. */
int cmd_bench(int argc, char **argv)
{
	static struct bench_report reps[NBENCHES], saved[NBENCHES];
	const struct bench_report *ran[NBENCHES];
	struct bench_opts o = {.cpu_a = -1, .cpu_b = -1};
	struct slo_budgets budgets = {0};
	int first = -1, last = -1, rc = EXIT_OK, nsaved = 0;
	const char *bpath;
	unsigned broken = 0, regressed = 0;
	size_t n = 0;
	char err[4096];
	bool have_budgets = false;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	for (int i = 0; benches[i].name; i++)
		if (!strcmp(argv[1], benches[i].name))
			first = last = i;
	if (!strcmp(argv[1], "all")) {
		first = 0;
		last = NBENCHES - 1;
	}
	if (first < 0) {
		fprintf(stderr, "shoal bench: unknown benchmark '%s'\n", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (bench_parse_common(argc - 1, argv + 1, &o) < 0)
		return EXIT_USAGE;
	bpath = o.budgets ? o.budgets : default_budgets();
	if (o.budgets || o.check || access(bpath, F_OK) == 0) {
		int r = slo_budgets_load(&budgets, bpath, err, sizeof(err));

		if (r) {
			fprintf(stderr, "shoal bench: %s\n", err);
			slo_budgets_free(&budgets); /* a bad file's parse may have taken memory */
			return EXIT_USAGE;
		}
		have_budgets = true;
	}
	if (o.baseline) {
		nsaved = bench_saved_load(o.baseline, saved, NBENCHES, err, sizeof(err));
		if (nsaved < 0) {
			fprintf(stderr, "shoal bench: --baseline %s\n", err);
			slo_budgets_free(&budgets);
			return EXIT_USAGE;
		}
	}
	if (o.cpu_a < 0)
		bench_pick_cpus(&o.cpu_a, &o.cpu_b);
	for (int i = first; i <= last; i++) {
		rc = worse(rc, run_suite(i, &o, &reps[n]));
		ran[n] = &reps[n];
		n++;
	}
	if (o.json) {
		json_t *out, *jb = json_array(), *jr = json_array();

		if (first == last) {
			out = bench_report_json(ran[0]);
		} else {
			json_t *s = json_array();

			out = json_object();
			json_object_set_new(out, "bench", json_string("all"));
			for (size_t i = 0; i < n; i++)
				json_array_append_new(s, bench_report_json(ran[i]));
			json_object_set_new(out, "suites", s);
		}
		if (have_budgets) {
			broken = bench_budgets_report(&budgets, ran, n, first != last, NULL, jb);
			json_object_set_new(out, "budgets_file", json_string(budgets.file));
			json_object_set_new(out, "budgets", jb);
			json_object_set_new(out, "budgets_broken", json_integer(broken));
		} else {
			json_decref(jb);
		}
		if (o.baseline) {
			regressed = bench_compare(ran, n, saved, (size_t)nsaved, REGRESSION_TOL,
						  NULL, jr);
			json_object_set_new(out, "baseline_file", json_string(o.baseline));
			json_object_set_new(out, "regressions", jr);
			json_object_set_new(out, "regressed", json_integer(regressed));
		} else {
			json_decref(jr);
		}
		json_dumpf(out, stdout,
			   JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
		printf("\n");
		json_decref(out);
	} else {
		for (size_t i = 0; i < n; i++) {
			bench_report_text(ran[i], stdout);
			printf("\n");
		}
		if (have_budgets)
			broken =
				bench_budgets_report(&budgets, ran, n, first != last, stdout, NULL);
		if (o.baseline)
			regressed = bench_compare(ran, n, saved, (size_t)nsaved, REGRESSION_TOL,
						  stdout, NULL);
	}
	fflush(stdout);
	if (o.check && broken)
		rc = worse(rc, EXIT_CHECK);
	if (regressed)
		rc = worse(rc, EXIT_CHECK);
	slo_budgets_free(&budgets);
	return rc;
}
