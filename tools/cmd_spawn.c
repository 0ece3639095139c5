/* shoal spawn TYPE NAME [--worker N]: start an agent at run time. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/client.h"
#include "workers/wrk.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal spawn TYPE NAME [--worker N] [--types LIB.so] [--wait [--timeout "
		   "MS]]\n"
		   "                   [--instance NAME]\n"
		   "Starts an agent of TYPE registered as NAME on worker N (default: the running\n"
		   "worker hosting the fewest agents) and prints its handle.\n"
		   "  --worker N     worker index (0..workers-1)\n"
		   "  --types LIB    load agent types from LIB (as the instance's config does)\n"
		   "  --wait         return once the agent runs (its init callback succeeded)\n"
		   "  --timeout MS   how long --wait waits (default 5000); exit 1 past it\n"
		   "built-in types:");
	for (unsigned i = 0; wrk_builtin_type_names[i]; i++)
		fprintf(f, " %s", wrk_builtin_type_names[i]);
	fprintf(f, "\n");
}

/* The process slot of worker index windex, or of the least loaded worker (windex < 0). */
static int pick_worker(struct shm_seg *seg, long windex, uint32_t *slot_out)
{
	const struct shm_cfg *cfg = &shm_hdr(seg)->cfg;
	uint32_t best = UINT32_MAX, best_load = UINT32_MAX;

	for (uint32_t p = 0; p < cfg->max_procs; p++) {
		struct shm_proc *pr = shm_proc_at(seg, p);
		uint32_t load = 0;

		if (pr->role != SHM_ROLE_WORKER ||
		    atomic_load_explicit(&pr->state, memory_order_acquire) != SHM_PROC_RUNNING)
			continue;
		if (windex >= 0) {
			if (pr->windex == (uint32_t)windex) {
				*slot_out = p;
				return 0;
			}
			continue;
		}
		for (uint32_t a = 0; a < cfg->max_agents; a++)
			if (atomic_load_explicit(&shm_agent_at(seg, a)->worker,
						 memory_order_relaxed) == p + 1)
				load++;
		if (load < best_load) {
			best_load = load;
			best = p;
		}
	}
	if (best == UINT32_MAX)
		return -ENOENT;
	*slot_out = best;
	return 0;
}

/* The agent is up (RUNNING), or has gone (its init failed past its intensity, or stopped). */
static bool agent_is_settled(const struct shm_seg *seg, shoal_handle_t h)
{
	struct shm_agent *a = wrk_agent_get(seg, h);

	/* A0: pairs with the worker's release of RUNNING. */
	return !a || atomic_load_explicit(&a->state, memory_order_acquire) == SHM_AGENT_RUNNING;
}

/* --wait: until the agent runs. Returns a CLI exit code. */
static int wait_running(struct tool_client *cl, const char *name, shoal_handle_t h, long timeout)
{
	if (tool_client_wait(cl, agent_is_settled, h, timeout)) {
		fprintf(stderr, "shoal spawn: agent '%s' was not running within %ld ms\n", name,
			timeout);
		return EXIT_CHECK;
	}
	if (!wrk_agent_get(cl->seg, h)) {
		fprintf(stderr,
			"shoal spawn: agent '%s' went away before it ran (its init failed?)\n",
			name);
		return EXIT_CHECK;
	}
	printf("%s: running\n", name);
	return EXIT_OK;
}

int cmd_spawn(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"worker", required_argument, NULL, 'w'},
		{"types", required_argument, NULL, 't'},
		{"wait", no_argument, NULL, 'W'},
		{"timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance();
	struct tool_client cl;
	shoal_handle_t h;
	long windex = -1, timeout = 5000;
	bool wait = false;
	uint32_t slot;
	char err[512];
	int c, rc, ex;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:w:t:WT:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
		case 'w':
			windex = tool_parse_count(optarg);
			if (windex < 0) {
				fprintf(stderr, "shoal spawn: --worker '%s': not a worker index\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (shoal_agent_types_load(optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "shoal spawn: %s\n", err);
				return EXIT_USAGE;
			}
			break;
		case 'W':
			wait = true;
			break;
		case 'T':
			if (tool_parse_timeout("spawn", optarg, &timeout))
				return EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!shoal_agent_type_find(argv[optind])) {
		fprintf(stderr,
			"shoal spawn: unknown agent type '%s' (see shoal spawn --help, or "
			"load a library with --types)\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	ex = tool_client_open(&cl, "spawn", instance, false);
	if (ex)
		return ex;
	if (pick_worker(cl.seg, windex, &slot)) {
		if (windex >= 0)
			fprintf(stderr, "shoal spawn: instance '%s' has no running worker %ld\n",
				instance, windex);
		else
			fprintf(stderr, "shoal spawn: instance '%s' has no running worker\n",
				instance);
		tool_client_close(&cl);
		return EXIT_USAGE;
	}
	rc = wrk_agent_spawn(cl.seg, argv[optind], argv[optind + 1], slot, &h);
	switch (rc) {
	case 0:
		printf("%s: spawned %s on worker %u, handle %#llx\n", argv[optind + 1],
		       argv[optind], shm_proc_at(cl.seg, slot)->windex, (unsigned long long)h);
		ex = wait ? wait_running(&cl, argv[optind + 1], h, timeout) : EXIT_OK;
		break;
	case -EEXIST:
		fprintf(stderr, "shoal spawn: the name '%s' is taken in instance '%s'\n",
			argv[optind + 1], instance);
		ex = EXIT_USAGE;
		break;
	case -EINVAL:
		fprintf(stderr, "shoal spawn: '%s' is not a valid agent name (1..%d bytes)\n",
			argv[optind + 1], SHOAL_NAME_MAX);
		ex = EXIT_USAGE;
		break;
	case -ENOSPC:
		fprintf(stderr,
			"shoal spawn: instance '%s' is full (no free agent slot or "
			"registry entry)\n",
			instance);
		ex = EXIT_SYSTEM;
		break;
	default:
		fprintf(stderr, "shoal spawn: %s\n", strerror(-rc));
		ex = EXIT_SYSTEM;
	}
	tool_client_close(&cl);
	return ex;
}
