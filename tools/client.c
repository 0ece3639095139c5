/* What the client commands share: attach read-write, a client slot, a waiter and an inbox. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/registry.h"
#include "supervisor/sup.h"
#include "tools/client.h"
#include "workers/wrk.h"

/*
 * Attach to instance as a client: read-write, a client process slot, and (with_inbox) a
 * waiter and an inbox for replies. Prints one sentence and returns a CLI exit code on
 * failure. The tool's main thread.
 */
int tool_client_open(struct tool_client *cl, const char *cmd, const char *instance, bool with_inbox)
{
	struct wrk_client_parts parts;
	char err[512];
	int rc;

	memset(cl, 0, sizeof(*cl));
	cl->cmd = cmd;
	/* the client API's attach (workers/client.c), its sentences said as the tool's */
	rc = wrk_client_attach(instance, with_inbox, &parts, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "shoal %s: %s\n", cmd, err);
		/* an instance that is not running is an unknown one to a command: usage */
		return rc == -ESHUTDOWN || rc == -EOWNERDEAD ? EXIT_USAGE : tool_exit_for(rc);
	}
	cl->seg = parts.seg;
	cl->waiter = parts.waiter;
	cl->inbox = parts.inbox;
	return EXIT_OK;
}

/* Close the inbox and waiter, release the client slot, detach. */
void tool_client_close(struct tool_client *cl)
{
	struct wrk_client_parts parts = {.seg = cl->seg, .waiter = cl->waiter, .inbox = cl->inbox};

	wrk_client_detach(&parts);
	memset(cl, 0, sizeof(*cl));
}

/*
 * Resolve an agent name in the default namespace. Prints a sentence and returns EXIT_USAGE
 * if there is none.
 */
int tool_client_lookup(struct tool_client *cl, const char *name, shoal_handle_t *out)
{
	size_t len = strlen(name);

	if (len == 0 || len > SHOAL_NAME_MAX) {
		fprintf(stderr, "shoal %s: '%s' is not a valid name (1..%d bytes)\n", cl->cmd, name,
			SHOAL_NAME_MAX);
		return EXIT_USAGE;
	}
	if (shm_reg_lookup(cl->seg, SHM_NS_DEFAULT, name, len, out, NULL)) {
		fprintf(stderr, "shoal %s: no agent named '%s' in instance '%s'\n", cl->cmd, name,
			cl->seg->instance);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

int tool_client_args(const char *cmd, int argc, char **argv, const struct option *opts,
		     const char *shortopts, int timeout_val, int npos, void (*usage)(FILE *),
		     tool_opt_fn other, void *ctx, struct tool_args *a)
{
	int c, r;

	a->instance = tool_default_instance();
	optind = 1;
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (c == 'i') {
			a->instance = optarg;
		} else if (c == timeout_val) {
			if (tool_parse_timeout(cmd, optarg, &a->timeout_ms))
				return EXIT_USAGE;
		} else if (c == 'h') {
			usage(stdout);
			return EXIT_OK;
		} else if (c == '?' || !other) {
			usage(stderr);
			return EXIT_USAGE;
		} else if ((r = other(cmd, c, optarg, ctx)) >= 0) {
			return r;
		}
	}
	if (npos >= 0 ? argc - optind != npos : argc - optind < -npos) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return -1;
}

int tool_count_opt(const char *cmd, int c, const char *arg, void *ctx)
{
	long *out = ctx;

	(void)c;
	*out = tool_parse_count(arg);
	if (*out < 0) {
		fprintf(stderr, "shoal %s: --count '%s': not a count\n", cmd, arg);
		return EXIT_USAGE;
	}
	return -1;
}

/* Parse a non-negative decimal option value; -1 if it is not one. */
long tool_parse_count(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return -1;
	return v;
}

/*
 * Parse a --timeout value in ms (0..one day). Prints a sentence naming cmd and returns
 * EXIT_USAGE if it is not one; 0 otherwise.
 */
int tool_parse_timeout(const char *cmd, const char *arg, long *out)
{
	long v = tool_parse_count(arg);

	if (v < 0 || v > 86400000) {
		fprintf(stderr, "shoal %s: --timeout '%s': not a time in ms\n", cmd, arg);
		return EXIT_USAGE;
	}
	*out = v;
	return 0;
}

/*
 * Wait until cond(seg, h) holds, for at most timeout_ms: on the segment's change counter,
 * which every writer of a process or agent state bumps (no polling). Returns 0, or
 * -ETIMEDOUT. The client commands.
 */
int tool_client_wait(struct tool_client *cl, tool_cond_fn cond, shoal_handle_t h, long timeout_ms)
{
	uint64_t deadline = shm_now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		/* read before the check: a change after it moves the counter past c */
		uint32_t c = shm_change_read(cl->seg);
		int rc;

		if (cond(cl->seg, h))
			return 0;
		rc = shm_change_wait(cl->seg, c, deadline);
		if (rc)
			return rc;
	}
}

/* A payload the instance accepts? Prints a sentence and returns EXIT_USAGE if not. */
int tool_client_check_payload(const struct tool_client *cl, size_t len)
{
	uint32_t max = shm_hdr(cl->seg)->cfg.max_msg;

	if (len <= max)
		return 0;
	fprintf(stderr, "shoal %s: payload of %zu bytes exceeds instance '%s''s maximum of %u\n",
		cl->cmd, len, cl->seg->instance, max);
	return EXIT_USAGE;
}

/* See client.h. The client commands (spawn, stop). */
int tool_client_ctl(struct tool_client *cl, const struct ipc_ctl_req *req,
		    struct ipc_ctl_reply *rep, long timeout_ms)
{
	const char *inst = cl->seg->instance;
	int rc = ipc_ctl_call(cl->seg, cl->waiter, cl->inbox, req, rep, (int)timeout_ms);

	switch (rc) {
	case 0:
		return EXIT_OK;
	case -ENOTCONN:
		fprintf(stderr,
			"shoal %s: instance '%s': its supervisor serves no control requests (not "
			"yet running, or a shoal older than this one)\n",
			cl->cmd, inst);
		return EXIT_USAGE;
	case -ESHUTDOWN:
		fprintf(stderr, "shoal %s: instance '%s' is stopping\n", cl->cmd, inst);
		return EXIT_USAGE;
	case -EOWNERDEAD:
		fprintf(stderr,
			"shoal %s: instance '%s': the supervisor died before answering; see "
			"'shoal inspect --instance %s'\n",
			cl->cmd, inst, inst);
		return EXIT_SYSTEM;
	case -ETIMEDOUT:
		fprintf(stderr,
			"shoal %s: instance '%s': the supervisor (pid %u) did not answer within "
			"%ld "
			"ms (the request may still be carried out)\n",
			cl->cmd, inst, atomic_load(&shm_hdr(cl->seg)->sup_pid), timeout_ms);
		return EXIT_SYSTEM;
	case -EMSGSIZE:
		fprintf(stderr,
			"shoal %s: instance '%s': its max message (%u bytes) is smaller than a "
			"control request (%zu bytes)\n",
			cl->cmd, inst, shm_hdr(cl->seg)->cfg.max_msg, sizeof(struct ipc_ctl_req));
		return EXIT_USAGE;
	default:
		fprintf(stderr, "shoal %s: instance '%s': asking the supervisor: %s\n", cl->cmd,
			inst, strerror(-rc));
		return EXIT_SYSTEM;
	}
}
