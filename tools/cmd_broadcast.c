/*
 * shoal broadcast GROUP TYPE PAYLOAD [--ack] [--timeout MS]: send to every member of a
 * process group; with --ack, wait for their acknowledgements and print the tally.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/round.h"
#include "tools/client.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal broadcast GROUP TYPE PAYLOAD [--ack] [--timeout MS] [--instance "
		"NAME]\n"
		"Sends PAYLOAD with message type TYPE (a number) to every member of process group\n"
		"GROUP, one wake per worker. With --ack, waits up to --timeout ms (default 5000)\n"
		"for every member to acknowledge (its handler returned) and prints the tally and\n"
		"the members that died or did not answer; a member that dies counts at once.\n"
		"Exit status: 0 every member acknowledged, 1 some died or did not answer.\n");
}

static int ack_opt(const char *cmd, int c, const char *arg, void *ctx)
{
	(void)cmd, (void)c, (void)arg;
	*(bool *)ctx = true;
	return -1;
}

/* A member's handle, and its name if it has one. */
static void print_member(const struct shm_seg *seg, const char *what, shoal_handle_t h)
{
	uint32_t slot = shoal_handle_slot(h);
	char name[65] = "";

	if (slot < shm_hdr(seg)->cfg.max_agents)
		/* a tool's look; a name being rewritten shows garbled at worst (bounded) */
		memcpy(name, shm_agent_at(seg, slot)->name, sizeof(name) - 1);
	printf("  %-7s %#018llx %s\n", what, (unsigned long long)h, name);
}

/* The round: start, wait, tally. Returns the exit code. */
static int acked(struct tool_client *cl, const char *group, uint32_t type, const char *payload,
		 long timeout_ms)
{
	uint32_t acked = 0, dead = 0, absent = 0;
	struct ipc_round r;
	uint64_t elapsed;
	int rc, wr;

	rc = ipc_round_start(cl->seg, cl->inbox, group, type, payload, (uint32_t)strlen(payload),
			     shm_now_ns() + (uint64_t)timeout_ms * 1000000u, 0, (int)timeout_ms,
			     &r);
	if (rc == -ENOENT) {
		fprintf(stderr, "shoal broadcast: no group '%s'\n", group);
		return EXIT_USAGE;
	}
	if (rc == -ENOSPC) {
		fprintf(stderr,
			"shoal broadcast: every round record of the instance is in use ([segment] "
			"rounds = %u); retry, or raise rounds in its config\n",
			shm_hdr(cl->seg)->cfg.max_rounds);
		return tool_exit_for(rc);
	}
	if (rc) {
		fprintf(stderr, "shoal broadcast: group '%s': %s\n", group, strerror(-rc));
		return tool_exit_for(rc);
	}
	wr = ipc_round_wait(cl->seg, cl->waiter, &r);
	elapsed = shm_now_ns() - r.start_ns;
	for (uint32_t i = 0; i < r.members; i++) {
		uint32_t st = ipc_round_member(cl->seg, &r, i, NULL);

		acked += st == SHM_ROUND_M_ACKED;
		dead += st == SHM_ROUND_M_DEAD;
		absent += st == SHM_ROUND_M_ABSENT;
	}
	printf("%s: %u members: %u acked, %u dead, %u absent in %.3f ms%s\n", group, r.members,
	       acked, dead, absent, (double)elapsed / 1e6, wr == -ETIMEDOUT ? " (timed out)" : "");
	for (uint32_t i = 0; i < r.members; i++) {
		shoal_handle_t h;
		uint32_t st = ipc_round_member(cl->seg, &r, i, &h);

		if (st != SHM_ROUND_M_ACKED)
			print_member(cl->seg, st == SHM_ROUND_M_DEAD ? "dead" : "absent", h);
	}
	ipc_round_end(cl->seg, &r);
	if (wr && wr != -ETIMEDOUT) {
		fprintf(stderr, "shoal broadcast: the instance went away: %s\n", strerror(-wr));
		return EXIT_USAGE;
	}
	return acked == r.members ? EXIT_OK : EXIT_CHECK;
}

int cmd_broadcast(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"ack", no_argument, NULL, 'a'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	struct tool_client cl;
	bool ack = false;
	const char *group, *payload;
	unsigned long type;
	char *end;
	int ex, rc;

	ex = tool_client_args("broadcast", argc, argv, opts, "i:at:h", 't', 3, usage, ack_opt, &ack,
			      &a);
	if (ex >= 0)
		return ex;
	group = argv[optind];
	payload = argv[optind + 2];
	errno = 0;
	type = strtoul(argv[optind + 1], &end, 10);
	if (errno || end == argv[optind + 1] || *end || type > UINT32_MAX ||
	    argv[optind + 1][0] == '-') {
		fprintf(stderr, "shoal broadcast: TYPE '%s': not a message type (0..%u)\n",
			argv[optind + 1], UINT32_MAX);
		return EXIT_USAGE;
	}
	if (ack && a.timeout_ms <= 0) {
		fprintf(stderr, "shoal broadcast: --ack needs a --timeout above 0 ms\n");
		return EXIT_USAGE;
	}
	ex = tool_client_open(&cl, "broadcast", a.instance, ack);
	if (ex)
		return ex;
	ex = tool_client_check_payload(&cl, strlen(payload));
	if (ex)
		goto out;
	if (ack) {
		ex = acked(&cl, group, (uint32_t)type, payload, a.timeout_ms);
		goto out;
	}
	rc = ipc_broadcast(cl.seg, SHOAL_HANDLE_NONE, group, (uint32_t)type, payload,
			   (uint32_t)strlen(payload), (int)a.timeout_ms);
	if (rc >= 0) {
		printf("%s: sent to %d members\n", group, rc);
	} else if (rc == -ENOENT) {
		fprintf(stderr, "shoal broadcast: no group '%s' (or none of its members is left)\n",
			group);
		ex = EXIT_USAGE;
	} else {
		fprintf(stderr, "shoal broadcast: group '%s': %s\n", group, strerror(-rc));
		ex = tool_exit_for(rc);
	}
out:
	tool_client_close(&cl);
	return ex;
}
