/* shoal run: start an instance (supervisor + workers) from a config file or the default. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/log.h"
#include "shm/shm.h"
#include "supervisor/sup.h"
#include "tools/tools.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal run [OPTIONS] [CONFIG]\n"
		"Runs an instance: creates its segment, forks and pins the workers, starts the\n"
		"configured agents, and supervises them until SIGINT/SIGTERM (orderly stop).\n"
		"Without CONFIG it runs the embedded default: one worker per core and 100 demo\n"
		"agents. A bad config line is reported as FILE:LINE and nothing starts (exit 2).\n"
		"  --instance NAME       instance name (default: $SHOAL_INSTANCE, as for every\n"
		"                        command, else the config's [instance] name)\n"
		"  --workers N           worker count (0: one per usable core)\n"
		"  --cpus LIST           restrict workers to these cpus, e.g. 0-3,6\n"
		"  --keep                keep the segment after the stop, for inspection\n"
		"  --ready-fd N          write \"ready\\n\" to fd N and close it once every "
		"worker\n"
		"                        and initial agent is ready\n"
		"  --status-interval S   seconds between status lines (0: none; default 5)\n"
		"  --quiet               no banner, event lines or stop line (errors still\n"
		"                        print)\n"
		"  --log-format FORMAT   event lines on stderr as 'text' (default: a UTC\n"
		"                        timestamp, the instance, who, what) or 'json' (one\n"
		"                        object a line, for log collectors)\n"
		"  --node NAME@HOST      be a node of an Erlang cluster (the config's [dist] "
		"node)\n"
		"  --cookie-file PATH    its cookie, a file of mode 0600 ([dist] cookie_file)\n"
		"  --budgets FILE        check the live latency histograms against this budgets\n"
		"                        file every [slo] interval (default 10 s); a broken\n"
		"                        budget is an slo-violation event and a console line\n"
		"                        (docs/budgets.md; over [slo] budgets)\n"
		"  --check               make every check run makes (config, cpus, agent types,\n"
		"                        cgroup, budgets, segment size), print a summary, start\n"
		"                        nothing\n"
		"  --print-default       print the embedded default config\n"
		"  --help                this text\n"
		"Exit: 0 after an orderly stop, 1 restart intensity exceeded, 2 bad config or\n"
		"the instance exists, 3 system failure.\n");
}

static int parse_uint(const char *opt, const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (!*s || *end || errno || *out > max || *s == '-') {
		fprintf(stderr, "shoal run: %s takes a number 0..%lu, not '%s'\n", opt, max, s);
		return -EINVAL;
	}
	return 0;
}

static void summary(const struct sup_config *c, const struct sup_config_facts *f)
{
	char a[32], b[32], d[32];

	printf("config %s: instance %s, workers %u%s, cpus %s, placement %s, memory cap %llu%s\n",
	       c->source, c->instance, c->workers, c->workers ? "" : " (one per core)",
	       c->cpus[0] ? c->cpus : "all", c->placement == SUP_PLACE_SPREAD ? "spread" : "none",
	       (unsigned long long)c->mem_cap,
	       !c->mem_cap    ? ""
	       : c->cgroup[0] ? " (cgroup v2)"
			      : " (rlimit)");
	printf("restart %s, intensity %u in %u ms, backoff %u..%u ms x%u%s, hang timeout %u ms%s\n",
	       sup_strategy_name(c->policy.strategy), c->policy.intensity, c->policy.period_ms,
	       c->policy.backoff_initial_ms, c->policy.backoff_max_ms, c->policy.backoff_factor,
	       c->policy.backoff_first ? " (also the first)" : "", c->policy.hang_ms,
	       c->policy.hang_ms ? "" : " (off)");
	printf("segment %s (max_size %s%s, %s free in /dev/shm), %u workers here\n",
	       sup_size_format(f->seg_size, a, sizeof(a)),
	       sup_size_format(f->seg_max, b, sizeof(b)), c->seg_max ? "" : ": half the RAM",
	       sup_size_format(f->shm_free, d, sizeof(d)), f->workers);
	if (c->slo_budgets[0])
		printf("slo budgets %s, checked every %u ms\n", c->slo_budgets, c->slo_interval_ms);
	for (uint32_t i = 0; i < c->nagents; i++)
		printf("agent %s: %u x %s named %s on worker %d\n", c->agents[i].section,
		       c->agents[i].count, c->agents[i].type, c->agents[i].pattern,
		       c->agents[i].worker);
	if (c->dist.node[0])
		printf("dist: node %s, listening on %s port %u%s, cookie in %s\n", c->dist.node,
		       c->dist.listen, c->dist.port, c->dist.port ? "" : " (any)",
		       c->dist.cookie_file);
}

/* shoal run: parse the config and options, then run the supervisor. The tool's main thread. */
int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"workers", required_argument, NULL, 'w'},
		{"cpus", required_argument, NULL, 'c'},
		{"keep", no_argument, NULL, 'k'},
		{"ready-fd", required_argument, NULL, 'r'},
		{"status-interval", required_argument, NULL, 's'},
		{"quiet", no_argument, NULL, 'q'},
		{"log-format", required_argument, NULL, 'L'},
		{"check", no_argument, NULL, 'C'},
		{"node", required_argument, NULL, 'N'},
		{"cookie-file", required_argument, NULL, 'K'},
		{"budgets", required_argument, NULL, 'B'},
		{"print-default", no_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct sup_run_opts o = {.ready_fd = -1, .status = true};
	struct sup_config *c;
	const char *instance = NULL, *workers = NULL, *cpus = NULL, *status = NULL;
	const char *budgets = NULL;
	const char *from = "--instance";
	const char *node = NULL, *cookie_file = NULL;
	bool check = false, quiet = false;
	unsigned long v;
	uint64_t set[SUP_MAX_CPUS / 64];
	char err[512];
	int opt, ret;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "i:w:c:kr:s:qL:CB:Ph", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			instance = optarg;
			break;
		case 'w':
			workers = optarg;
			break;
		case 'c':
			cpus = optarg;
			break;
		case 'k':
			o.keep = true;
			break;
		case 'r':
			if (parse_uint("--ready-fd", optarg, 65535, &v))
				return EXIT_USAGE;
			if (fcntl((int)v, F_GETFD) < 0) {
				fprintf(stderr, "shoal run: --ready-fd %lu is not an open fd\n", v);
				return EXIT_USAGE;
			}
			o.ready_fd = (int)v;
			break;
		case 's':
			status = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'L':
			if (!strcmp(optarg, "text")) {
				o.log_format = SHM_LOG_TEXT;
			} else if (!strcmp(optarg, "json")) {
				o.log_format = SHM_LOG_JSON;
			} else {
				fprintf(stderr, "shoal run: --log-format '%s': use text or json\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'C':
			check = true;
			break;
		case 'N':
			node = optarg;
			break;
		case 'K':
			cookie_file = optarg;
			break;
		case 'B':
			budgets = optarg;
			break;
		case 'P':
			fputs(sup_default_config, stdout);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "shoal run: one config file at most\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	c = malloc(sizeof(*c));
	if (!c)
		return EXIT_SYSTEM;
	sup_config_init(c);
	ret = sup_config_load(c, optind < argc ? argv[optind] : NULL, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal run: %s\n", err);
		ret = tool_exit_for(ret);
		goto out;
	}
	ret = EXIT_USAGE;
	/* the instance every other command uses without --instance: the one run makes */
	if (!instance && getenv("SHOAL_INSTANCE") && *getenv("SHOAL_INSTANCE")) {
		instance = getenv("SHOAL_INSTANCE");
		from = "SHOAL_INSTANCE";
	}
	if (instance) {
		if (!shm_is_valid_instance(instance)) {
			fprintf(stderr, "shoal run: %s '%s': use 1..%u of A-Z a-z 0-9 _ . -\n",
				from, instance, SHM_INSTANCE_MAX - 1);
			goto out;
		}
		snprintf(c->instance, sizeof(c->instance), "%s", instance);
	}
	if (workers) {
		if (parse_uint("--workers", workers, SUP_MAX_WORKERS, &v))
			goto out;
		c->workers = (uint32_t)v;
	}
	if (cpus) {
		if (strlen(cpus) >= sizeof(c->cpus) || sup_cpulist_parse(cpus, set)) {
			fprintf(stderr, "shoal run: --cpus '%s': a cpu list such as 0-3,6\n", cpus);
			goto out;
		}
		snprintf(c->cpus, sizeof(c->cpus), "%s", cpus);
		c->cpus_line = 0; /* messages name --cpus, not the file's line */
	}
	if (node) {
		if (!dist_is_valid_node(node, err, sizeof(err))) {
			fprintf(stderr, "shoal run: --node '%s': %s\n", node, err);
			goto out;
		}
		snprintf(c->dist.node, sizeof(c->dist.node), "%s", node);
		c->dist.node_line = 0; /* messages name --node, not the file's line */
	}
	if (cookie_file) {
		if (!*cookie_file || strlen(cookie_file) >= sizeof(c->dist.cookie_file)) {
			fprintf(stderr, "shoal run: --cookie-file: a path of 1..%zu bytes\n",
				sizeof(c->dist.cookie_file) - 1);
			goto out;
		}
		snprintf(c->dist.cookie_file, sizeof(c->dist.cookie_file), "%s", cookie_file);
		c->dist.cookie_line = 0;
	}
	if (status) {
		char *end;
		double s = strtod(status, &end);

		if (!*status || *end || !(s >= 0 && s <= 86400)) { /* NaN fails both */
			fprintf(stderr, "shoal run: --status-interval takes seconds, not '%s'\n",
				status);
			goto out;
		}
		c->status_interval_ms = (uint32_t)(s * 1000);
	}
	if (budgets) {
		if (!*budgets || strlen(budgets) >= sizeof(c->slo_budgets)) {
			fprintf(stderr, "shoal run: --budgets '%s': the path of a budgets file\n",
				budgets);
			goto out;
		}
		snprintf(c->slo_budgets, sizeof(c->slo_budgets), "%s", budgets);
		c->slo_budgets_line = 0; /* messages name --budgets, not the file's line */
	}
	/* the checks sup_run() makes first, so what passes here does not fail there */
	if (check) {
		struct sup_config_facts f;

		ret = sup_config_check(c, &f, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "shoal run: %s\n", err);
			/* too big for /dev/shm's free space: a bad config here, at start exit 3 */
			ret = ret == -EINVAL || ret == -ENOSPC ? EXIT_USAGE : EXIT_SYSTEM;
			goto out;
		}
		summary(c, &f);
		ret = EXIT_OK;
		goto out;
	}
	o.status = c->status_interval_ms != 0;
	if (quiet)
		o.log_format = SHM_LOG_QUIET; /* over --log-format: nothing to format */
	ret = sup_run(c, &o);
	ret = ret == SUP_RUN_INTENSITY ? EXIT_CHECK : tool_exit_for(ret);
out:
	free(c);
	return ret;
}
