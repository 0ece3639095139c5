/*
 * shoal allocate GROUP RESOURCE CAPACITY [--policy proportional|maxmin] [--timeout MS]: an
 * allocation round from the command line; prints each member's demand and share.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/client.h"
#include "tools/client.h"
#include "workers/wrk.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal allocate GROUP RESOURCE CAPACITY [--policy proportional|maxmin]\n"
		"                      [--timeout MS] [--instance NAME]\n"
		"Asks every member of process group GROUP for its demand for RESOURCE (a name of\n"
		"1..%d bytes) in one broadcast, waits up to --timeout ms (default 5000) for the\n"
		"answers, divides CAPACITY units among the members that reported by --policy\n"
		"(default proportional; maxmin: max-min fair) and sends each its share. A member\n"
		"that dies, does not answer in time or answers without a demand is left out.\n"
		"Prints each member's state, demand and share.\n"
		"Exit status: 0 every member answered, 1 some did not by the timeout (left out).\n",
		SHOAL_ALLOC_NAME_MAX);
}

static int policy_opt(const char *cmd, int c, const char *arg, void *ctx)
{
	shoal_alloc_policy_fn *p = ctx;

	(void)c;
	*p = shoal_alloc_policy_find(arg);
	if (!*p) {
		fprintf(stderr,
			"shoal %s: --policy '%s': not a policy; use proportional or maxmin\n", cmd,
			arg);
		return EXIT_USAGE;
	}
	return -1;
}

/* CAPACITY: a decimal count of units, 0..UINT64_MAX. */
static int parse_capacity(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || s[0] == ' ') {
		fprintf(stderr,
			"shoal allocate: CAPACITY '%s': not a number of units (a whole number "
			"0..%llu)\n",
			s, (unsigned long long)UINT64_MAX);
		return EXIT_USAGE;
	}
	*out = v;
	return EXIT_OK;
}

static const char *state_name(uint32_t st)
{
	switch (st) {
	case SHOAL_ALLOC_REPORTED:
		return "reported";
	case SHOAL_ALLOC_DEAD:
		return "dead";
	case SHOAL_ALLOC_NODEMAND:
		return "no-demand";
	default:
		return "absent";
	}
}

/* The round's result: the tally, then one line per member. */
static void print_result(const struct tool_client *cl, const char *group, const char *resource,
			 const char *policy, const struct shoal_alloc_result *res, bool timed_out)
{
	uint32_t n = res->members < res->cap ? res->members : res->cap;

	printf("%s for %s: capacity %llu, %s: %u members: %u reported, %u dead, %u absent, %u "
	       "without a demand; demand %llu, allocated %llu in %.3f ms%s\n",
	       resource, group, (unsigned long long)res->capacity, policy, res->members,
	       res->reported, res->dead, res->absent, res->nodemand,
	       (unsigned long long)res->demand, (unsigned long long)res->allocated,
	       (double)res->elapsed_ns / 1e6, timed_out ? " (timed out)" : "");
	printf("  %-18s %-20s %-9s %12s %12s\n", "handle", "name", "state", "demand", "share");
	for (uint32_t i = 0; i < n; i++) {
		const struct shoal_alloc_member *m = &res->member[i];
		uint32_t slot = shoal_handle_slot(m->handle);
		char name[SHOAL_NAME_MAX + 2] = "";

		if (slot < shm_hdr(cl->seg)->cfg.max_agents)
			/* a tool's look; a name being rewritten shows garbled at worst (bounded) */
			memcpy(name, shm_agent_at(cl->seg, slot)->name, SHOAL_NAME_MAX + 1);
		if (m->state == SHOAL_ALLOC_REPORTED)
			printf("  %#018llx %-20s %-9s %12llu %12llu%s\n",
			       (unsigned long long)m->handle, name, state_name(m->state),
			       (unsigned long long)m->demand, (unsigned long long)m->share,
			       m->delivered ? "" : " (not delivered: its mailbox was full)");
		else
			printf("  %#018llx %-20s %-9s %12s %12s\n", (unsigned long long)m->handle,
			       name, state_name(m->state), "-", "-");
	}
}

int cmd_allocate(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"policy", required_argument, NULL, 'p'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	shoal_alloc_policy_fn policy = shoal_alloc_proportional;
	struct shoal_alloc_result res = {0};
	struct tool_client cl;
	const char *group, *resource;
	uint64_t capacity;
	size_t rlen;
	int ex, rc;

	ex = tool_client_args("allocate", argc, argv, opts, "i:p:t:h", 't', 3, usage, policy_opt,
			      &policy, &a);
	if (ex >= 0)
		return ex;
	group = argv[optind];
	resource = argv[optind + 1];
	rlen = strlen(resource);
	if (rlen == 0 || rlen > SHOAL_ALLOC_NAME_MAX) {
		fprintf(stderr, "shoal allocate: RESOURCE '%s': a name of 1..%d bytes\n", resource,
			SHOAL_ALLOC_NAME_MAX);
		return EXIT_USAGE;
	}
	ex = parse_capacity(argv[optind + 2], &capacity);
	if (ex)
		return ex;
	if (a.timeout_ms <= 0 || a.timeout_ms > INT32_MAX) {
		fprintf(stderr, "shoal allocate: --timeout must be above 0 ms\n");
		return EXIT_USAGE;
	}
	ex = tool_client_open(&cl, "allocate", a.instance, true);
	if (ex)
		return ex;
	res.cap = shm_hdr(cl.seg)->cfg.group_members;
	res.member = calloc(res.cap, sizeof(*res.member));
	if (!res.member) {
		fprintf(stderr, "shoal allocate: out of memory for %u members\n", res.cap);
		ex = EXIT_SYSTEM;
		goto out_close;
	}
	rc = wrk_alloc_run(cl.seg, cl.waiter, cl.inbox, group, resource, capacity, policy,
			   (int)a.timeout_ms, &res);
	if (rc == 0 || rc == -ETIMEDOUT) {
		print_result(&cl, group, resource,
			     policy == shoal_alloc_maxmin ? "maxmin" : "proportional", &res,
			     rc == -ETIMEDOUT);
		ex = rc ? EXIT_CHECK : EXIT_OK;
	} else if (rc == -ENOENT) {
		fprintf(stderr, "shoal allocate: no group '%s'\n", group);
		ex = EXIT_USAGE;
	} else if (rc == -ENOSPC) {
		fprintf(stderr,
			"shoal allocate: every round record of the instance is in use ([segment] "
			"rounds = %u); retry, or raise rounds in its config\n",
			shm_hdr(cl.seg)->cfg.max_rounds);
		ex = tool_exit_for(rc);
	} else {
		fprintf(stderr, "shoal allocate: group '%s': %s\n", group, strerror(-rc));
		ex = tool_exit_for(rc);
	}
	free(res.member);
out_close:
	tool_client_close(&cl);
	return ex;
}
