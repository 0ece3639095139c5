/* shoal: one command, many subcommands (each in its own file). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tools.h"

const struct tool_cmd tool_cmds[] = {
	{"run", "run an instance: supervisor, workers, agents (from a config)", cmd_run},
	{"version", "print the version and the layout version", cmd_version},
	{"inspect", "show an instance's segment: header, regions, processes, registry",
	 cmd_inspect},
	{"top", "a live view of an instance: workers, agents, pools, exits (q quits)", cmd_top},
	{"events", "the instance's event ring: events [--follow] [--since SEQ] [--json]",
	 cmd_events},
	{"slo-check", "check an instance's latency against a budgets file (exit 1: one broken)",
	 cmd_slo_check},
	{"metrics", "Prometheus metrics: metrics --listen ADDR:PORT | --textfile PATH | --once",
	 cmd_metrics},
	{"clean", "remove a stale instance's segment (refuses a live one)", cmd_clean},
	{"bench", "run a benchmark: registry, ...", cmd_bench},
	{"types", "the agent types an instance can start (what spawn TYPE takes)", cmd_types},
	{"stress",
	 "chaos on an instance of its own, the books checked at the end: stress [--seconds N]",
	 cmd_stress},
	{"spawn", "ask the supervisor to start an agent: spawn TYPE NAME [--worker N | --node N]",
	 cmd_spawn},
	{"stop", "ask the supervisor to stop an agent: stop NAME", cmd_stop},
	{"shutdown", "stop the whole instance in order: shutdown [--wait] [--timeout MS]",
	 cmd_shutdown},
	{"send", "cast to an agent: send NAME PAYLOAD [--count N]", cmd_send},
	{"broadcast", "send to a group: broadcast GROUP TYPE PAYLOAD [--ack] (wait for acks)",
	 cmd_broadcast},
	{"call", "call an agent and print the reply: call NAME PAYLOAD [--timeout MS]", cmd_call},
	{"monitor", "print agents' DOWN and UP notices: monitor NAME... [--count N]", cmd_monitor},
	{"pool", "agent pools: pool list | create NAME TYPE SIZE [OVERFLOW] | checkout NAME",
	 cmd_pool},
	{"propose",
	 "consensus: propose VARIABLE VALUE --group G [--rule majority|unanimous|quorum:N]",
	 cmd_propose},
	{"var", "coordination variables: var get NAME... | set NAME VALUE... | list", cmd_var},
	{"task", "run a task on the least loaded worker: task TYPE ARG [--timeout MS]", cmd_task},
	{"allocate", "divide a resource among a group: allocate GROUP RESOURCE CAPACITY",
	 cmd_allocate},
	{NULL, NULL, NULL},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal COMMAND [OPTIONS]\n\ncommands:\n");
	for (const struct tool_cmd *c = tool_cmds; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
	fprintf(f, "\n'shoal COMMAND --help' describes a command's options.\n"
		   "Every command that touches an instance takes --instance NAME "
		   "(default: $SHOAL_INSTANCE or 'default').\n");
}

const char *tool_default_instance(void)
{
	const char *e = getenv("SHOAL_INSTANCE");

	return e && *e ? e : "default";
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(1, argv + 1);
	for (const struct tool_cmd *c = tool_cmds; c->name; c++) {
		char prog[32];

		if (strcmp(argv[1], c->name))
			continue;
		/* getopt names argv[0] in its messages: "shoal run: unrecognized option ...",
		 * the prefix every subcommand's own sentences use */
		snprintf(prog, sizeof(prog), "shoal %s", c->name);
		argv[1] = prog;
		return c->run(argc - 1, argv + 1);
	}
	fprintf(stderr, "shoal: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
