/* shoal call NAME PAYLOAD [--timeout MS]: call an agent and print its reply. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/registry.h"
#include "tools/client.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal call NAME PAYLOAD [--timeout MS] [--instance NAME]\n"
		"Calls the agent registered as NAME with PAYLOAD and prints its reply. Waits up\n"
		"to --timeout ms (default 5000): an agent that is restarting answers once it\n"
		"is back, so a restart shows only as latency. An empty reply prints as\n"
		"'(empty reply)', one that is not text as hex. Exit 1 on timeout and when the\n"
		"agent answers with an error (its handle_call failed), 2 for an unknown agent.\n");
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
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	struct tool_client cl;
	unsigned char *reply;
	shoal_handle_t h;
	uint32_t cap;
	size_t len;
	int rc, ex;

	ex = tool_client_args("call", argc, argv, opts, "i:t:h", 't', 2, usage, NULL, NULL, &a);
	if (ex >= 0)
		return ex;
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
