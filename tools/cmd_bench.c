/* shoal bench: run one benchmark, its baselines in the same run, and print ratios. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench.h"
#include "tools/tools.h"

static const struct {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv, struct bench_opts *o);
} benches[] = {
	{"control", "spawn/stop requests to the supervisor vs a call to a parked worker",
	 bench_control},
	{"coord",
	 "coordination: variables (read, update) vs a registry lookup; broadcast with "
	 "acknowledgements to 100 agents (round record vs replies)",
	 bench_coord},
	{"dist",
	 "the Erlang distribution: a BEAM node's calls and casts to shoal agents vs to a second "
	 "BEAM node",
	 bench_dist},
	{"ipc", "mailbox round trips and throughput vs cache-line, futex, io_uring, pipe",
	 bench_ipc},
	{"registry", "registry lookups and register+unregister vs a plain array index",
	 bench_registry},
	{"restart", "SIGKILL a worker with 100 agents: until ready, until all answer again",
	 bench_restart},
	{NULL, NULL, NULL},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal bench NAME [--json] [--quick] [--check] [--cpus A,B]\n"
		   "  --json     one JSON object: results[] and baselines[] with name, p50_ns,\n"
		   "             p99_ns, p999_ns, mean_ns, ops_per_s\n"
		   "  --quick    fewer iterations (a smoke run)\n"
		   "  --check    exit 1 if a target is missed\n"
		   "  --cpus A,B the two cores to use (default: the first two allowed)\n"
		   "benchmarks:\n");
	for (int i = 0; benches[i].name; i++)
		fprintf(f, "  %-10s %s\n", benches[i].name, benches[i].summary);
}

int bench_parse_common(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"quick", no_argument, NULL, 'q'},
		{"check", no_argument, NULL, 'c'},
		{"cpus", required_argument, NULL, 'C'},
		{"instance", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jqcC:i:h", opts, NULL)) != -1) {
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

int cmd_bench(int argc, char **argv)
{
	struct bench_opts o = {.cpu_a = -1, .cpu_b = -1};

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	for (int i = 0; benches[i].name; i++) {
		if (strcmp(argv[1], benches[i].name))
			continue;
		if (bench_parse_common(argc - 1, argv + 1, &o) < 0)
			return EXIT_USAGE;
		if (o.cpu_a < 0)
			bench_pick_cpus(&o.cpu_a, &o.cpu_b);
		bench_clock_init();
		return benches[i].run(argc - 1, argv + 1, &o);
	}
	fprintf(stderr, "shoal bench: unknown benchmark '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
