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
int cmd_types(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_stress(int argc, char **argv);
int cmd_slo_check(int argc, char **argv);
int cmd_metrics(int argc, char **argv);

struct shm_event;
struct json_t;
/*
 * An event (shm/event.h) as one line of text, no newline: time (UTC), #seq, kind, who, text;
 * strings cut to printable ASCII. tools/cmd_events.c; events, top.
 */
void tool_event_line(const struct shm_event *e, char *buf, size_t cap);
/* An event as a JSON object (jansson; NULL if out of memory): events --json, inspect --json. */
struct json_t *tool_event_json(const struct shm_event *e);

struct shm_view;
/*
 * Attach to instance read-only, take a snapshot into *out (shm_view_free() it) under the
 * SIGBUS guard, and detach. Returns 0, or -errno with a sentence in err naming the instance
 * (the attach's own, a truncated segment, a region table that does not fit). A tool that
 * prints one snapshot; tools/view_take.c.
 */
int tool_view_take(const char *instance, struct shm_view **out, char *err, size_t errlen);
/*
 * Attach to instance read-only and take a snapshot whose types table was read whole into
 * *out (shm_view_free() it). Returns 0, or -errno with a sentence in err naming the
 * instance and the problem. tools/cmd_types.c.
 */
int tool_types_take(const char *instance, struct shm_view **out, char *err, size_t errlen);
/* Print a snapshot's pools (inspect, pool list): tools/cmd_pool.c. */
void tool_show_pools(const struct shm_view *v);

/* Print a snapshot's operations table (inspect): tools/cmd_inspect.c. */
void tool_show_ops(const struct shm_view *v);
/*
 * A duration for a table: "850ns", "12.3us", "4.56ms", "1.23s" (at most 8 characters for
 * anything under 1000 s). Any thread.
 */
void tool_fmt_ns(char *buf, size_t cap, uint64_t ns);
/*
 * A memory size for a table: "512K", "38.2M", "1.5G" (at most 6 characters); with sign, the
 * change from `from` to `to` ("+1.2M", "-340K", "+0"). Any thread.
 */
void tool_fmt_mem(char *buf, size_t cap, uint64_t bytes);
void tool_fmt_mem_delta(char *buf, size_t cap, uint64_t from, uint64_t to);
/*
 * The operations whose percentiles come from a sample, for a heading: "send, lookup,
 * register, var_update: percentiles from a 1/64 sample" (their rate as recorded).
 */
void tool_ops_sample_note(const struct shm_view *v, char *buf, size_t cap);

/* An agent's mailbox counters, read beside a snapshot (ipc/ has them, not the view). */
struct tool_mbox {
	uint32_t depth;
	uint32_t queued_max; /* its high-water mark (ipc_mbox_stats.queued_max) */
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
