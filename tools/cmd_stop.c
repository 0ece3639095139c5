/* shoal stop NAME: orderly stop of an agent (asked of the supervisor). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/sup.h"
#include "tools/client.h"
#include "workers/wrk.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal stop NAME [--wait] [--timeout MS] [--instance NAME]\n"
		   "Asks the instance's supervisor to stop the agent registered as NAME: its\n"
		   "terminate callback runs, its names, groups and monitors are removed, its\n"
		   "monitors get DOWN, its slot is freed.\n"
		   "  --wait        return once the stop is done (its name is free again)\n"
		   "  --timeout MS  how long to wait for the supervisor's answer, and with --wait\n"
		   "                for the stop (default 5000); exit 1 past the latter\n");
}

/* The stop is done: the slot is free, or already another agent's. */
static bool agent_is_gone(const struct shm_seg *seg, shoal_handle_t h)
{
	return wrk_agent_get(seg, h) == NULL;
}

/* --wait */
static int wait_opt(const char *cmd, int c, const char *arg, void *ctx)
{
	(void)cmd, (void)c, (void)arg;
	*(bool *)ctx = true;
	return -1;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct ipc_ctl_req q = {.op = IPC_CTL_STOP};
	struct tool_args a = {.timeout_ms = 5000};
	const char *instance, *name;
	struct ipc_ctl_reply rep;
	struct tool_client cl;
	long timeout;
	bool wait = false;
	int ex;

	ex = tool_client_args("stop", argc, argv, opts, "i:wt:h", 't', 1, usage, wait_opt, &wait,
			      &a);
	if (ex >= 0)
		return ex;
	instance = a.instance;
	timeout = a.timeout_ms;
	name = argv[optind];
	if (!*name || strlen(name) > SHOAL_NAME_MAX) {
		fprintf(stderr, "shoal stop: '%s' is not a valid name (1..%d bytes)\n", name,
			SHOAL_NAME_MAX);
		return EXIT_USAGE;
	}
	memcpy(q.name, name, strlen(name) + 1);
	ex = tool_client_open(&cl, "stop", instance, true);
	if (ex)
		return ex;
	ex = tool_client_ctl(&cl, &q, &rep, timeout);
	if (ex)
		goto out;
	switch (rep.rc) {
	case 0:
	case -EALREADY:
		if (!wait) {
			printf("%s: %s\n", name, rep.rc ? "already stopping" : "stop requested");
			break;
		}
		if (tool_client_wait(&cl, agent_is_gone, rep.handle, timeout) == 0) {
			printf("%s: stopped\n", name);
		} else {
			fprintf(stderr, "shoal stop: agent '%s' did not stop within %ld ms\n", name,
				timeout);
			ex = EXIT_CHECK;
		}
		break;
	case -ENOENT:
	case -ESTALE:
		fprintf(stderr, "shoal stop: no agent named '%s' in instance '%s'\n", name,
			instance);
		ex = EXIT_USAGE;
		break;
	case -EPERM:
		fprintf(stderr,
			"shoal stop: '%s' in instance '%s' is not an agent a worker hosts (a "
			"client's inbox?)\n",
			name, instance);
		ex = EXIT_USAGE;
		break;
	case -ESHUTDOWN:
		fprintf(stderr, "shoal stop: instance '%s' is stopping\n", instance);
		ex = EXIT_USAGE;
		break;
	default:
		fprintf(stderr, "shoal stop: instance '%s': the supervisor refused: %s\n", instance,
			strerror(-rep.rc));
		ex = EXIT_SYSTEM;
	}
out:
	tool_client_close(&cl);
	return ex;
}
