/* tools: the client commands' shared attach/inbox/lookup helpers. */
#ifndef TOOLS_CLIENT_H
#define TOOLS_CLIENT_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "ipc/ipc.h"
#include "shm/shm.h"
#include "tools/tools.h"

struct tool_client {
	const char *cmd;	   /* subcommand name, for messages */
	struct shm_seg *seg;	   /* read-write attachment with a client slot */
	struct ipc_waiter *waiter; /* with an inbox: where calls park */
	shoal_handle_t inbox;	   /* replies and monitor messages arrive here */
};

int tool_client_open(struct tool_client *cl, const char *cmd, const char *instance,
		     bool with_inbox);
void tool_client_close(struct tool_client *cl);
int tool_client_lookup(struct tool_client *cl, const char *name, shoal_handle_t *out);
long tool_parse_count(const char *s);

/* The options every client command takes. */
struct tool_args {
	const char *instance; /* --instance NAME; tool_default_instance() if not given */
	long timeout_ms;      /* --timeout MS; the caller's default if not given */
};

/* A client command's own option: returns -1 to go on, or the exit code to return. */
typedef int (*tool_opt_fn)(const char *cmd, int c, const char *arg, void *ctx);
/* A tool_opt_fn for --count N alone: into *(long *)ctx; EXIT_USAGE (said) if not a count. */
int tool_count_opt(const char *cmd, int c, const char *arg, void *ctx);

/*
 * A client command's option loop. opts must hold "instance" ('i'), "timeout" (whose val is
 * timeout_val) and "help" ('h'), which go into *a (usage(stdout) and EXIT_OK for --help);
 * any other option goes to other(c, optarg, ctx). Then exactly npos positional arguments
 * (npos < 0: at least -npos), from argv[optind]. Returns -1 to go on, else the exit code to return
 * (usage printed to stderr where due).
 */
int tool_client_args(const char *cmd, int argc, char **argv, const struct option *opts,
		     const char *shortopts, int timeout_val, int npos, void (*usage)(FILE *),
		     tool_opt_fn other, void *ctx, struct tool_args *a);
int tool_parse_timeout(const char *cmd, const char *arg, long *out);
int tool_client_check_payload(const struct tool_client *cl, size_t len);

struct ipc_ctl_req;
struct ipc_ctl_reply;
/*
 * Send a control request to the instance's supervisor and wait up to timeout_ms for its
 * answer. Returns EXIT_OK with *rep filled (its verdict in rep->rc), or prints a sentence
 * (supervisor not serving, stopping, dead, not answering) and returns a CLI exit code.
 */
int tool_client_ctl(struct tool_client *cl, const struct ipc_ctl_req *req,
		    struct ipc_ctl_reply *rep, long timeout_ms);

/* What tool_client_wait() waits for: a condition on the segment's state words. */
typedef bool (*tool_cond_fn)(const struct shm_seg *seg, shoal_handle_t h);
int tool_client_wait(struct tool_client *cl, tool_cond_fn cond, shoal_handle_t h, long timeout_ms);

#endif
