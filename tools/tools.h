/* tools: the shoal command's subcommands and what they share. */
#ifndef TOOLS_TOOLS_H
#define TOOLS_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* CLI exit codes (STYLE §2). */
enum {
	EXIT_OK = 0,
	EXIT_CHECK = 1,	 /* a check failed: slo-check, stress, bench target */
	EXIT_USAGE = 2,	 /* usage or bad input: bad config, bad segment, unknown instance */
	EXIT_SYSTEM = 3, /* a system call failed */
};

/* A subcommand: argv[0] is its name. Returns a CLI exit code. */
struct tool_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* All subcommands, NULL-terminated (tools/shoal.c). */
extern const struct tool_cmd tool_cmds[];

int cmd_version(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_clean(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_spawn(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_shutdown(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_allocate(int argc, char **argv);
int cmd_broadcast(int argc, char **argv);
int cmd_propose(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_task(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_pool(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_stress(int argc, char **argv);

struct shm_view;
/* Print a snapshot's pools (inspect, pool list): tools/cmd_pool.c. */
void tool_show_pools(const struct shm_view *v);

/* An agent's mailbox counters, read beside a snapshot (ipc/ has them, not the view). */
struct tool_mbox {
	uint32_t depth;
	uint64_t poisoned;
};
/*
 * Write snapshot v as one JSON object (schema "shoal.inspect/1", docs/inspect-json.md) to
 * out; mb[i] are the mailbox counters of v->agents[i] for i < nmb. 0, or -ENOMEM.
 * tools/inspect_json.c.
 */
int tool_inspect_json(const struct shm_view *v, const char *path, const struct tool_mbox *mb,
		      uint32_t nmb, FILE *out);
int cmd_var(int argc, char **argv);

/* Map an -errno to the command's exit code: the one table, in tools/exit.c. */
int tool_exit_for(int err);

/* The default instance name, or $SHOAL_INSTANCE. */
const char *tool_default_instance(void);

#endif
