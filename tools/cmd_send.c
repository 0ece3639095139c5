/* shoal send NAME PAYLOAD [--count N]: cast messages to an agent. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/client.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal send NAME PAYLOAD [--count N] [--timeout MS] [--instance NAME]\n"
		   "Casts PAYLOAD to the agent registered as NAME, N times (default 1). A full\n"
		   "mailbox is waited on up to --timeout ms per message (default 5000). While the\n"
		   "agent is down (its worker restarting) messages queue in its mailbox.\n");
}

int cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"count", required_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	long count = 1, sent = 0;
	struct tool_client cl;
	shoal_handle_t h;
	size_t len;
	int rc = 0, ex;

	ex = tool_client_args("send", argc, argv, opts, "i:n:t:h", 't', 2, usage, tool_count_opt,
			      &count, &a);
	if (ex >= 0)
		return ex;
	len = strlen(argv[optind + 1]);
	ex = tool_client_open(&cl, "send", a.instance, false);
	if (ex)
		return ex;
	ex = tool_client_lookup(&cl, argv[optind], &h);
	if (ex)
		goto out;
	ex = tool_client_check_payload(&cl, len);
	if (ex)
		goto out;
	for (; sent < count; sent++) {
		rc = ipc_send(cl.seg, h, SHOAL_HANDLE_NONE, 0, 0, 0, argv[optind + 1],
			      (uint32_t)len, (int)a.timeout_ms);
		if (rc)
			break;
	}
	if (rc == 0) {
		printf("%s: sent %ld\n", argv[optind], sent);
	} else if (rc == -ETIMEDOUT || rc == -EAGAIN) {
		fprintf(stderr,
			"shoal send: '%s': mailbox still full after %ld ms (%ld of %ld "
			"sent)\n",
			argv[optind], a.timeout_ms, sent, count);
		ex = EXIT_CHECK;
	} else if (rc == -ENOENT || rc == -ESTALE) {
		fprintf(stderr, "shoal send: agent '%s' is gone (%ld of %ld sent)\n", argv[optind],
			sent, count);
		ex = EXIT_USAGE;
	} else {
		fprintf(stderr, "shoal send: '%s': %s (%ld of %ld sent)\n", argv[optind],
			strerror(-rc), sent, count);
		ex = EXIT_SYSTEM;
	}
out:
	tool_client_close(&cl);
	return ex;
}
