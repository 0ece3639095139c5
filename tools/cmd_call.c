/*
 * shoal call NAME PAYLOAD [--timeout MS]: call an agent and print its reply; with --node, a
 * process registered on an Erlang node.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "shm/registry.h"
#include "tools/client.h"

/* call's own options: --node and --cookie-file. */
struct call_opts {
	const char *node;
	const char *cookie_file;
};

static int call_opt(const char *cmd, int c, const char *arg, void *ctx)
{
	struct call_opts *o = ctx;

	(void)cmd;
	if (c == 'N')
		o->node = arg;
	else
		o->cookie_file = arg;
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal call NAME PAYLOAD [--timeout MS] [--instance NAME]\n"
		"       shoal call NAME PAYLOAD --node NODE --cookie-file FILE [--timeout MS]\n"
		"Calls the agent registered as NAME with PAYLOAD and prints its reply. Waits up\n"
		"to --timeout ms (default 5000): an agent that is restarting answers once it\n"
		"is back, so a restart shows only as latency. An empty reply prints as\n"
		"'(empty reply)', one that is not text as hex. Exit 1 on timeout and when the\n"
		"agent answers with an error (its handle_call failed), 2 for an unknown agent.\n"
		"With --node (alive@host), a gen_server call of the process registered as NAME\n"
		"on that Erlang node (a BEAM node, or a shoal instance's [dist] gateway), from a\n"
		"short-lived hidden node with the cookie in FILE (mode 0600); PAYLOAD goes as a\n"
		"binary; a reply that is not a binary prints as an Erlang term. A name nobody\n"
		"has is not answered (exit 1 at the timeout), as Erlang drops such a message.\n");
}

/* Print the reply: as text when it is printable, else as hex; an empty one says so. */
static void print_reply(const unsigned char *r, int n)
{
	bool text = true;

	for (int i = 0; i < n; i++)
		if ((r[i] < 0x20 && r[i] != '\n' && r[i] != '\t') || r[i] >= 0x7f)
			text = false;
	if (n == 0) {
		/* a bare newline would look like a reply of one */
		fputs("(empty reply)", stdout);
	} else if (text) {
		fwrite(r, 1, (size_t)n, stdout);
	} else {
		for (int i = 0; i < n; i++)
			printf("%02x", r[i]);
	}
	printf("\n");
}

static void print_reply(const unsigned char *r, int n);

/* --node: a gen_server call over the Erlang distribution. A CLI exit code. */
static int call_remote(const struct call_opts *o, const char *name, const char *payload,
		       long timeout_ms)
{
	struct dist_reply rep;
	char err[512];
	int r;

	if (!o->cookie_file) {
		fprintf(stderr,
			"shoal call: --node needs --cookie-file FILE: the node's cookie, in "
			"a file only you can read (chmod 600)\n");
		return EXIT_USAGE;
	}
	r = dist_call(o->node, o->cookie_file, name, payload, (uint32_t)strlen(payload),
		      (int)timeout_ms, &rep, err, sizeof(err));
	if (r == 0) {
		if (rep.term)
			printf("%s\n", rep.data);
		else
			print_reply((const unsigned char *)rep.data, (int)rep.len);
		free(rep.data);
		return EXIT_OK;
	}
	fprintf(stderr, "shoal call: %s\n", err);
	return r == -ETIMEDOUT ? EXIT_CHECK : r == -EIO || r == -ENOMEM ? EXIT_SYSTEM : EXIT_USAGE;
}

/*
 * Whether name still names agent h: then an -ENOENT or -ESTALE came from its handle_call
 * (an error reply), not from a handle that went away.
 */
static bool still_named(const struct tool_client *cl, const char *name, shoal_handle_t h)
{
	shoal_handle_t now = SHOAL_HANDLE_NONE;

	return shm_reg_lookup(cl->seg, SHM_NS_DEFAULT, name, strlen(name), &now, NULL) == 0 &&
	       now == h;
}

int cmd_call(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"timeout", required_argument, NULL, 't'},
		{"node", required_argument, NULL, 'N'},
		{"cookie-file", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	struct call_opts co = {0};
	struct tool_client cl;
	unsigned char *reply;
	shoal_handle_t h;
	uint32_t cap;
	size_t len;
	int rc, ex;

	ex = tool_client_args("call", argc, argv, opts, "i:t:h", 't', 2, usage, call_opt, &co, &a);
	if (ex >= 0)
		return ex;
	if (co.node)
		return call_remote(&co, argv[optind], argv[optind + 1], a.timeout_ms);
	len = strlen(argv[optind + 1]);
	ex = tool_client_open(&cl, "call", a.instance, true);
	if (ex)
		return ex;
	ex = tool_client_lookup(&cl, argv[optind], &h);
	if (ex)
		goto out;
	cap = shm_hdr(cl.seg)->cfg.max_msg;
	ex = tool_client_check_payload(&cl, len);
	if (ex)
		goto out;
	reply = malloc(cap);
	if (!reply) {
		fprintf(stderr, "shoal call: out of memory\n");
		ex = EXIT_SYSTEM;
		goto out;
	}
	rc = ipc_call(cl.seg, cl.waiter, cl.inbox, h, 0, argv[optind + 1], (uint32_t)len, reply,
		      cap, (int)a.timeout_ms);
	if (rc >= 0) {
		print_reply(reply, rc < (int)cap ? rc : (int)cap);
	} else if (rc == -ETIMEDOUT) {
		fprintf(stderr, "shoal call: '%s' did not answer within %ld ms\n", argv[optind],
			a.timeout_ms);
		ex = EXIT_CHECK;
	} else if (rc == -ECANCELED) {
		fprintf(stderr,
			"shoal call: '%s' dropped the call: it ended its worker %u times (a poison "
			"message)\n",
			argv[optind], IPC_POISON_MAX);
		ex = EXIT_CHECK;
	} else if (rc == -EOWNERDEAD || rc == -ESHUTDOWN) {
		fprintf(stderr, "shoal call: '%s' did not answer: %s\n", argv[optind],
			rc == -EOWNERDEAD ? "the supervisor died (its workers exit with it)"
					  : "the instance stopped");
		ex = EXIT_SYSTEM;
	} else if ((rc == -ENOENT || rc == -ESTALE) && !still_named(&cl, argv[optind], h)) {
		fprintf(stderr, "shoal call: agent '%s' is gone\n", argv[optind]);
		ex = EXIT_USAGE;
	} else if (rc == -EAGAIN && a.timeout_ms == 0) {
		fprintf(stderr, "shoal call: '%s': its mailbox is full (--timeout 0: no wait)\n",
			argv[optind]);
		ex = EXIT_CHECK;
	} else if (rc == -EROFS || rc == -EINVAL) {
		/* ipc_call()'s own refusals of our attachment: no agent was asked */
		fprintf(stderr, "shoal call: '%s': %s\n", argv[optind], strerror(-rc));
		ex = EXIT_SYSTEM;
	} else {
		/* every other error is the one the agent's handle_call answered with: the call
		 * worked, its answer is a refusal, a failed check like a poison drop */
		fprintf(stderr, "shoal call: '%s' answered with an error: %s (errno %d)\n",
			argv[optind], strerror(-rc), -rc);
		ex = EXIT_CHECK;
	}
	free(reply);
out:
	tool_client_close(&cl);
	return ex;
}
