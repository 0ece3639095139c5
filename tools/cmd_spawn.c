/* shoal spawn TYPE NAME [--worker N | --node N]: start an agent at run time (via the supervisor).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/sup.h"
#include "tools/client.h"
#include "workers/wrk.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal spawn TYPE NAME [--worker N | --node N] [--wait] [--timeout MS]\n"
		"                   [--instance NAME]\n"
		"Asks the instance's supervisor to start an agent of TYPE registered as NAME and\n"
		"prints its handle and the worker chosen: worker N, the least loaded worker on\n"
		"NUMA node N, or (default) the least loaded running worker.\n"
		"  --worker N     worker index (0..workers-1; one being restarted is fine)\n"
		"  --node N       a worker on NUMA node N\n"
		"  --wait         return once the agent runs (its init callback succeeded)\n"
		"  --timeout MS   how long to wait for the supervisor's answer, and with --wait\n"
		"                 for the agent to run (default 5000); exit 1 past the latter\n"
		"The types are the instance's: built in, or loaded by its config's [types].\n"
		"built-in types:");
	for (unsigned i = 0; wrk_builtin_type_names[i]; i++)
		fprintf(f, " %s", wrk_builtin_type_names[i]);
	fprintf(f, "\n");
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

/* A refusal from the supervisor, in one sentence. Returns a CLI exit code. */
static int refused(const char *inst, const char *type, const char *name,
		   const struct sup_ctl_req *q, const struct sup_ctl_reply *rep)
{
	switch (rep->rc) {
	case -ENOENT:
		fprintf(stderr,
			"shoal spawn: unknown agent type '%s' in instance '%s' (see shoal spawn "
			"--help; a library of types is loaded by the instance's config, [types])\n",
			type, inst);
		return EXIT_USAGE;
	case -EEXIST:
		fprintf(stderr, "shoal spawn: the name '%s' is taken in instance '%s'\n", name,
			inst);
		return EXIT_USAGE;
	case -EINVAL:
		fprintf(stderr, "shoal spawn: '%s' is not a valid agent name (1..%d bytes)\n", name,
			SHOAL_NAME_MAX);
		return EXIT_USAGE;
	case -ENXIO:
		if (q->hint == SUP_CTL_NODE)
			fprintf(stderr,
				"shoal spawn: instance '%s' has no worker on NUMA node %d\n", inst,
				q->where);
		else if (q->hint == SUP_CTL_WORKER)
			fprintf(stderr, "shoal spawn: instance '%s' has no worker %d\n", inst,
				q->where);
		else
			fprintf(stderr, "shoal spawn: instance '%s' has no worker\n", inst);
		return EXIT_USAGE;
	case -ENOSPC:
		fprintf(stderr,
			"shoal spawn: instance '%s' is full (no free agent slot or registry "
			"entry)\n",
			inst);
		return EXIT_SYSTEM;
	case -ESHUTDOWN:
		fprintf(stderr, "shoal spawn: instance '%s' is stopping\n", inst);
		return EXIT_USAGE;
	default:
		fprintf(stderr, "shoal spawn: instance '%s': the supervisor refused: %s\n", inst,
			strerror(-rep->rc));
		return EXIT_SYSTEM;
	}
}

/* Copy s into a fixed request field; false if it does not fit. */
static bool put_field(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap)
		return false;
	memcpy(dst, s, n + 1);
	return true;
}

int cmd_spawn(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"worker", required_argument, NULL, 'w'},
		{"node", required_argument, NULL, 'n'},
		{"types", required_argument, NULL, 't'},
		{"wait", no_argument, NULL, 'W'},
		{"timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance(), *type, *name;
	struct sup_ctl_req q = {.op = SUP_CTL_SPAWN, .hint = SUP_CTL_ANY};
	struct sup_ctl_reply rep;
	struct tool_client cl;
	long v, timeout = 5000;
	bool wait = false;
	int c, ex;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:w:n:t:WT:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
		case 'w':
		case 'n':
			v = tool_parse_count(optarg);
			if (v < 0 || v > INT32_MAX || q.hint != SUP_CTL_ANY) {
				fprintf(stderr, "shoal spawn: --%s '%s': %s\n",
					c == 'w' ? "worker" : "node", optarg,
					q.hint != SUP_CTL_ANY ? "give one of --worker and --node"
					: c == 'w'	      ? "not a worker index"
							      : "not a NUMA node number");
				return EXIT_USAGE;
			}
			q.hint = c == 'w' ? SUP_CTL_WORKER : SUP_CTL_NODE;
			q.where = (int32_t)v;
			break;
		case 't':
			fprintf(stderr,
				"shoal spawn: --types is ignored: the instance's supervisor "
				"knows the types its config loads ([types])\n");
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
	type = argv[optind];
	name = argv[optind + 1];
	if (!put_field(q.type, sizeof(q.type), type)) {
		fprintf(stderr,
			"shoal spawn: unknown agent type '%s' (type names are 1..%u bytes)\n", type,
			SHM_TYPE_MAX - 1);
		return EXIT_USAGE;
	}
	if (!*name || !put_field(q.name, sizeof(q.name), name)) {
		fprintf(stderr, "shoal spawn: '%s' is not a valid agent name (1..%d bytes)\n", name,
			SHOAL_NAME_MAX);
		return EXIT_USAGE;
	}
	ex = tool_client_open(&cl, "spawn", instance, true);
	if (ex)
		return ex;
	ex = tool_client_ctl(&cl, &q, &rep, timeout);
	if (ex)
		goto out;
	if (rep.rc) {
		ex = refused(instance, type, name, &q, &rep);
		goto out;
	}
	printf("%s: spawned %s on worker %d, handle %#llx\n", name, type, rep.windex,
	       (unsigned long long)rep.handle);
	fflush(stdout);
	if (wait)
		ex = wait_running(&cl, name, rep.handle, timeout);
out:
	tool_client_close(&cl);
	return ex;
}
