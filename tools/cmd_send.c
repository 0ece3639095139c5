/*
 * shoal send NAME PAYLOAD [--count N]: cast messages to an agent; with --node, to a process
 * registered on an Erlang node.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "dist/dist.h"
#include "tools/client.h"

/* send's own options. */
struct send_opts {
	long count;
	const char *node;	 /* --node: an Erlang node, NULL: the instance */
	const char *cookie_file; /* --cookie-file, with --node */
};

static int send_opt(const char *cmd, int c, const char *arg, void *ctx)
{
	struct send_opts *o = ctx;

	if (c == 'N')
		o->node = arg;
	else if (c == 'C')
		o->cookie_file = arg;
	else
		return tool_count_opt(cmd, c, arg, &o->count);
	return -1;
}

/* --node: NAME is a process registered on that Erlang node; PAYLOAD goes as a binary. */
static int send_remote(const struct send_opts *o, const char *name, const char *payload,
		       long timeout_ms)
{
	char err[512];
	int r;

	if (!o->cookie_file) {
		fprintf(stderr,
			"shoal send: --node needs --cookie-file FILE: the node's cookie, in "
			"a file only you can read (chmod 600)\n");
		return EXIT_USAGE;
	}
	r = dist_send(o->node, o->cookie_file, name, payload, (uint32_t)strlen(payload),
		      (uint32_t)o->count, (int)timeout_ms, err, sizeof(err));
	if (r >= 0) {
		printf("%s on %s: sent %d\n", name, o->node, r);
		return EXIT_OK;
	}
	fprintf(stderr, "shoal send: %s\n", err);
	return r == -EIO || r == -ENOMEM ? EXIT_SYSTEM : EXIT_USAGE;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal send NAME PAYLOAD [--count N] [--timeout MS] [--instance NAME]\n"
		   "       shoal send NAME PAYLOAD --node NODE --cookie-file FILE [--count N]\n"
		   "Casts PAYLOAD to the agent registered as NAME, N times (default 1). A full\n"
		   "mailbox is waited on up to --timeout ms per message (default 5000). While the\n"
		   "agent is down (its worker restarting) messages queue in its mailbox.\n"
		   "With --node (alive@host), NAME is a process registered on that Erlang node\n"
		   "(a BEAM node, or a shoal instance's [dist] gateway): PAYLOAD goes as a binary\n"
		   "from a short-lived hidden node, with the cookie in FILE (mode 0600).\n");
}

int cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"count", required_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"node", required_argument, NULL, 'N'},
		{"cookie-file", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	struct send_opts so = {.count = 1};
	long count, sent = 0;
	struct tool_client cl;
	shoal_handle_t h;
	size_t len;
	int rc = 0, ex;

	ex = tool_client_args("send", argc, argv, opts, "i:n:t:h", 't', 2, usage, send_opt, &so,
			      &a);
	if (ex >= 0)
		return ex;
	count = so.count;
	if (so.node)
		return send_remote(&so, argv[optind], argv[optind + 1], a.timeout_ms);
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
