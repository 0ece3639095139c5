/* shoal task TYPE ARG [--timeout MS]: run a task on the least loaded worker, print its result. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ctl.h"
#include "tools/client.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal task TYPE ARG [--timeout MS] [--instance NAME]\n"
		   "Asks the supervisor to start an agent of TYPE on the least loaded worker and\n"
		   "hand it ARG as a call; prints its reply (the task's result). The task agent\n"
		   "stops itself; one still running after --timeout ms (default 5000) is stopped.\n"
		   "Exit status: 0 a result, 1 the task failed, timed out or its worker died,\n"
		   "2 no such type or bad input, 3 no supervisor serving requests.\n");
}

/* The reply as text when it is printable, else as hex. */
static void print_result(const unsigned char *r, int n)
{
	bool text = true;

	for (int i = 0; i < n; i++)
		if ((r[i] < 0x20 && r[i] != '\n' && r[i] != '\t') || r[i] >= 0x7f)
			text = false;
	if (text)
		fwrite(r, 1, (size_t)n, stdout);
	else
		for (int i = 0; i < n; i++)
			printf("%02x", r[i]);
	printf("\n");
}

int cmd_task(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	struct tool_client cl;
	const char *type, *arg;
	unsigned char *reply;
	uint32_t cap;
	int rc, ex;

	ex = tool_client_args("task", argc, argv, opts, "i:t:h", 't', 2, usage, NULL, NULL, &a);
	if (ex >= 0)
		return ex;
	type = argv[optind];
	arg = argv[optind + 1];
	if (!*type || strlen(type) >= sizeof(((struct ipc_ctl_req *)0)->type)) {
		fprintf(stderr,
			"shoal task: TYPE '%s': write an agent type's name (1 to %zu bytes)\n",
			type, sizeof(((struct ipc_ctl_req *)0)->type) - 1);
		return EXIT_USAGE;
	}
	if (a.timeout_ms <= 0) {
		fprintf(stderr, "shoal task: --timeout must be above 0 ms\n");
		return EXIT_USAGE;
	}
	ex = tool_client_open(&cl, "task", a.instance, true);
	if (ex)
		return ex;
	cap = shm_hdr(cl.seg)->cfg.max_msg;
	if (strlen(arg) + sizeof(struct ipc_ctl_req) > cap) {
		fprintf(stderr,
			"shoal task: ARG is %zu bytes; instance '%s' takes at most %zu "
			"([segment] max_msg less %zu)\n",
			strlen(arg), cl.seg->instance, cap - sizeof(struct ipc_ctl_req),
			sizeof(struct ipc_ctl_req));
		ex = EXIT_USAGE;
		goto out;
	}
	reply = malloc(cap);
	if (!reply) {
		fprintf(stderr, "shoal task: out of memory\n");
		ex = EXIT_SYSTEM;
		goto out;
	}
	rc = ipc_ctl_task(cl.seg, cl.waiter, cl.inbox, type, arg, (uint32_t)strlen(arg),
			  (int)a.timeout_ms, reply, cap);
	if (rc >= 0) {
		print_result(reply, rc < (int)cap ? rc : (int)cap);
	} else if (rc == -ENOENT) {
		fprintf(stderr,
			"shoal task: no agent type '%s' in instance '%s' (the built-in types and "
			"those its [types] load)\n",
			type, cl.seg->instance);
		ex = EXIT_USAGE;
	} else if (rc == -ETIMEDOUT) {
		fprintf(stderr,
			"shoal task: %s: no result within %ld ms (the task agent is stopped)\n",
			type, a.timeout_ms);
		ex = EXIT_CHECK;
	} else if (rc == -ECONNRESET) {
		fprintf(stderr, "shoal task: %s: its worker died (the task is not run again)\n",
			type);
		ex = EXIT_CHECK;
	} else if (rc == -ENOTCONN || rc == -ESHUTDOWN || rc == -EOWNERDEAD) {
		fprintf(stderr, "shoal task: instance '%s': %s\n", cl.seg->instance,
			rc == -ENOTCONN	   ? "no supervisor serving requests"
			: rc == -ESHUTDOWN ? "the instance is stopping"
					   : "the supervisor died");
		ex = EXIT_SYSTEM;
	} else if (rc == -ENOSPC) {
		fprintf(stderr,
			"shoal task: %s: no room (every agent slot in use, or %u tasks running); "
			"try again or raise [segment] max_agents\n",
			type, IPC_CTL_TASKS_MAX);
		ex = EXIT_SYSTEM;
	} else {
		/* the task agent's own error */
		fprintf(stderr, "shoal task: %s failed: %s\n", type, strerror(-rc));
		ex = EXIT_CHECK;
	}
	free(reply);
out:
	tool_client_close(&cl);
	return ex;
}
