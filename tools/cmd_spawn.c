/* shoal spawn TYPE NAME [--worker N | --node N]: start an agent at run time (via the supervisor).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "shm/view.h"
#include "supervisor/sup.h"
#include "tools/client.h"
#include "workers/wrk.h"

/* The types of the default instance if it runs, else the built-in ones. */
static void list_types(FILE *f)
{
	const char *instance = tool_default_instance();
	struct shm_view *v;
	char err[512];

	if (tool_types_take(instance, &v, err, sizeof(err)) == 0) {
		fprintf(f, "types of instance '%s':", instance);
		for (uint32_t i = 0; i < v->ntypes; i++)
			fprintf(f, " %s", v->types[i].name);
		fprintf(f, "\n");
		shm_view_free(v);
		return;
	}
	fprintf(f, "built-in types (instance '%s' is not running):", instance);
	for (unsigned i = 0; wrk_builtin_type_names[i]; i++)
		fprintf(f, " %s", wrk_builtin_type_names[i]);
	fprintf(f, "\n");
}

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
		"The types are the instance's: built in, or loaded by its config's [types]\n"
		"('shoal types' lists them with what each is).\n");
	list_types(f);
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
		   const struct ipc_ctl_req *q, const struct ipc_ctl_reply *rep)
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
		if (q->hint == IPC_CTL_NODE)
			fprintf(stderr,
				"shoal spawn: instance '%s' has no worker on NUMA node %d\n", inst,
				q->where);
		else if (q->hint == IPC_CTL_WORKER)
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

/* spawn's own options: the request's placement hint, and --wait. */
struct spawn_opts {
	struct ipc_ctl_req q;
	bool wait;
};

static int spawn_opt(const char *cmd, int c, const char *arg, void *ctx)
{
	struct spawn_opts *so = ctx;
	long v;

	switch (c) {
	case 'w':
	case 'n':
		v = tool_parse_count(arg);
		if (v < 0 || v > INT32_MAX || so->q.hint != IPC_CTL_ANY) {
			fprintf(stderr, "shoal %s: --%s '%s': %s\n", cmd,
				c == 'w' ? "worker" : "node", arg,
				so->q.hint != IPC_CTL_ANY ? "give one of --worker and --node"
				: c == 'w'		  ? "not a worker index"
							  : "not a NUMA node number");
			return EXIT_USAGE;
		}
		so->q.hint = c == 'w' ? IPC_CTL_WORKER : IPC_CTL_NODE;
		so->q.where = (int32_t)v;
		return -1;
	case 't':
		fprintf(stderr,
			"shoal %s: --types is ignored: the instance's supervisor knows the types "
			"its "
			"config loads ([types])\n",
			cmd);
		return -1;
	case 'W':
		so->wait = true;
		return -1;
	default:
		return EXIT_USAGE;
	}
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
	struct spawn_opts so = {.q = {.op = IPC_CTL_SPAWN, .hint = IPC_CTL_ANY}};
	struct tool_args a = {.timeout_ms = 5000};
	const char *instance, *type, *name;
	struct ipc_ctl_reply rep;
	struct tool_client cl;
	long timeout;
	int ex;

	ex = tool_client_args("spawn", argc, argv, opts, "i:w:n:t:WT:h", 'T', 2, usage, spawn_opt,
			      &so, &a);
	if (ex >= 0)
		return ex;
	instance = a.instance;
	timeout = a.timeout_ms;
	type = argv[optind];
	name = argv[optind + 1];
	if (!shm_put_field(so.q.type, sizeof(so.q.type), type)) {
		fprintf(stderr,
			"shoal spawn: unknown agent type '%s' (type names are 1..%u bytes)\n", type,
			SHM_TYPE_MAX - 1);
		return EXIT_USAGE;
	}
	if (!*name || !shm_put_field(so.q.name, sizeof(so.q.name), name)) {
		fprintf(stderr, "shoal spawn: '%s' is not a valid agent name (1..%d bytes)\n", name,
			SHOAL_NAME_MAX);
		return EXIT_USAGE;
	}
	ex = tool_client_open(&cl, "spawn", instance, true);
	if (ex)
		return ex;
	ex = tool_client_ctl(&cl, &so.q, &rep, timeout);
	if (ex)
		goto out;
	if (rep.rc) {
		ex = refused(instance, type, name, &so.q, &rep);
		goto out;
	}
	printf("%s: spawned %s on worker %d, handle %#llx\n", name, type, rep.windex,
	       (unsigned long long)rep.handle);
	fflush(stdout);
	if (so.wait)
		ex = wait_running(&cl, name, rep.handle, timeout);
out:
	tool_client_close(&cl);
	return ex;
}
