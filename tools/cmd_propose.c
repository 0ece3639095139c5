/*
 * shoal propose VARIABLE VALUE --group G [--rule majority|unanimous|quorum:N] [--timeout MS]:
 * a consensus proposal; prints the outcome and the tally.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/var.h"
#include "tools/client.h"
#include "workers/wrk.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal propose VARIABLE VALUE --group G [--rule "
		"majority|unanimous|quorum:N]\n"
		"                     [--timeout MS] [--instance NAME]\n"
		"Proposes VALUE (parsed as the variable's type) for VARIABLE to every member of\n"
		"process group G; each votes (an agent's vote callback; a type without one, and a\n"
		"client inbox, vote yes). Once every member voted or died, or --timeout ms "
		"(default\n"
		"5000) passed, the value is committed if the rule (default majority: more than "
		"half\n"
		"of the members) holds, by compare-and-set on the variable's version at the "
		"start.\n"
		"Exit status: 0 committed, 1 rejected, timed out or a conflict (another proposal "
		"on\n"
		"the variable was open, or it was updated meanwhile), 2 bad input.\n");
}

struct popts {
	const char *group;
	uint32_t rule;
	uint32_t quorum;
};

static int opt(const char *cmd, int c, const char *arg, void *ctx)
{
	struct popts *p = ctx;
	char *end;
	unsigned long n;

	if (c == 'g') {
		p->group = arg;
		return -1;
	}
	if (!strcmp(arg, "majority")) {
		p->rule = SHOAL_RULE_MAJORITY;
		return -1;
	}
	if (!strcmp(arg, "unanimous")) {
		p->rule = SHOAL_RULE_UNANIMOUS;
		return -1;
	}
	if (!strncmp(arg, "quorum:", 7) && arg[7] >= '1' && arg[7] <= '9') {
		errno = 0;
		n = strtoul(arg + 7, &end, 10);
		if (!errno && !*end && n <= UINT32_MAX) {
			p->rule = SHOAL_RULE_QUORUM;
			p->quorum = (uint32_t)n;
			return -1;
		}
	}
	fprintf(stderr,
		"shoal %s: --rule '%s': write majority, unanimous or quorum:N (N a count of yes "
		"votes, 1 or more)\n",
		cmd, arg);
	return EXIT_USAGE;
}

/* VALUE as the variable's type into *num or as a blob: EXIT_OK, or EXIT_USAGE (said). */
static int parse_value(
	struct tool_client *cl, const char *name, const char *s, uint32_t type,
	union {
		int64_t i;
		double d;
	} * num,
	const void **data, uint32_t *len)
{
	char *end;

	errno = 0;
	if (type == SHM_VAR_INT) {
		long long v = strtoll(s, &end, 10);

		if (errno || end == s || *end || strspn(s, "+-0123456789") != strlen(s)) {
			fprintf(stderr,
				"shoal propose: '%s' is an int variable; '%s' is not an integer\n",
				name, s);
			return EXIT_USAGE;
		}
		num->i = v;
	} else if (type == SHM_VAR_DOUBLE) {
		double v = strtod(s, &end);

		if (errno || end == s || *end || !isfinite(v) ||
		    strspn(s, "+-0123456789.eE") != strlen(s)) {
			fprintf(stderr,
				"shoal propose: '%s' is a double variable; '%s' is not a number\n",
				name, s);
			return EXIT_USAGE;
		}
		num->d = v;
	} else {
		if (strlen(s) > shm_var_bytes(cl->seg)) {
			fprintf(stderr,
				"shoal propose: '%s': a value of %zu bytes; variables of instance "
				"'%s' hold at most %u ([segment] variable_bytes)\n",
				name, strlen(s), cl->seg->instance, shm_var_bytes(cl->seg));
			return EXIT_USAGE;
		}
		*data = s;
		*len = (uint32_t)strlen(s);
		return EXIT_OK;
	}
	*data = num;
	*len = 8;
	return EXIT_OK;
}

static const char *outcome_name(uint32_t o)
{
	switch (o) {
	case SHOAL_PROPOSAL_COMMITTED:
		return "committed";
	case SHOAL_PROPOSAL_REJECTED:
		return "rejected";
	case SHOAL_PROPOSAL_TIMEDOUT:
		return "timed out";
	default:
		return "conflict";
	}
}

int cmd_propose(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"group", required_argument, NULL, 'g'},
		{"rule", required_argument, NULL, 'r'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	struct popts p = {.rule = SHOAL_RULE_MAJORITY};
	struct shoal_proposal_result res = {0};
	struct ipc_proposal prop;
	struct tool_client cl;
	union {
		int64_t i;
		double d;
	} num;
	const char *name, *value;
	const void *data = NULL;
	uint64_t id, version = 0;
	uint32_t type, len = 0;
	void *buf = NULL;
	int ex, rc;

	ex = tool_client_args("propose", argc, argv, opts, "i:g:r:t:h", 't', 2, usage, opt, &p, &a);
	if (ex >= 0)
		return ex;
	name = argv[optind];
	value = argv[optind + 1];
	if (!p.group) {
		fprintf(stderr, "shoal propose: --group G is required: the group that votes\n");
		return EXIT_USAGE;
	}
	if (a.timeout_ms <= 0) {
		fprintf(stderr, "shoal propose: --timeout must be above 0 ms\n");
		return EXIT_USAGE;
	}
	ex = tool_client_open(&cl, "propose", a.instance, true);
	if (ex)
		return ex;
	if (shm_var_lookup(cl.seg, 0, name, strlen(name), &id) ||
	    shm_var_info(cl.seg, id, NULL, NULL, 0, &type)) {
		fprintf(stderr,
			"shoal propose: no variable '%s' in instance '%s' (create it with shoal "
			"var "
			"set)\n",
			name, cl.seg->instance);
		ex = EXIT_USAGE;
		goto out;
	}
	ex = parse_value(&cl, name, value, type, (void *)&num, &data, &len);
	if (ex)
		goto out;
	buf = malloc(sizeof(struct ipc_vote_msg) + len);
	if (!buf) {
		ex = EXIT_SYSTEM;
		goto out;
	}
	rc = ipc_propose_start(cl.seg, cl.inbox, name, type, data, len, p.group, p.rule, p.quorum,
			       shm_now_ns() + (uint64_t)a.timeout_ms * 1000000u, 0,
			       (int)a.timeout_ms, buf, &version, &prop);
	if (rc == -EBUSY) {
		printf("%s: conflict: another proposal on it is open (version %llu)\n", name,
		       (unsigned long long)version);
		ex = EXIT_CHECK;
		goto out;
	}
	if (rc == -ENOENT) {
		fprintf(stderr, "shoal propose: no group '%s'\n", p.group);
		ex = EXIT_USAGE;
		goto out;
	}
	if (rc == -ENOSPC) {
		fprintf(stderr,
			"shoal propose: every round record of the instance is in use ([segment] "
			"rounds = %u); retry, or raise rounds in its config\n",
			shm_hdr(cl.seg)->cfg.max_rounds);
		ex = tool_exit_for(rc);
		goto out;
	}
	if (rc) {
		fprintf(stderr, "shoal propose: '%s': %s\n", name, strerror(-rc));
		ex = tool_exit_for(rc);
		goto out;
	}
	rc = ipc_round_wait(cl.seg, cl.waiter, &prop.r);
	if (rc && rc != -ETIMEDOUT) {
		ipc_propose_abort(cl.seg, &prop);
		fprintf(stderr, "shoal propose: the instance went away: %s\n", strerror(-rc));
		ex = EXIT_USAGE;
		goto out;
	}
	if (ipc_propose_finish(cl.seg, &prop, SHM_VAR_WAIT_NS, &res) == -EAGAIN) {
		ipc_propose_abort(cl.seg, &prop);
		res.outcome = SHOAL_PROPOSAL_CONFLICT;
		res.rc = -EBUSY;
	}
	/* the commit is an update: its subscribers hear of it as of any other */
	if (res.outcome == SHOAL_PROPOSAL_COMMITTED)
		wrk_var_notify(cl.seg, &prop.var, 1, cl.inbox);
	printf("%s: %s: %u members: %u yes, %u no, %u dead, %u absent in %.3f ms; version "
	       "%llu\n",
	       name, outcome_name(res.outcome), res.members, res.yes, res.no, res.dead, res.absent,
	       (double)res.elapsed_ns / 1e6, (unsigned long long)res.version);
	ex = res.outcome == SHOAL_PROPOSAL_COMMITTED ? EXIT_OK : EXIT_CHECK;
out:
	free(buf);
	tool_client_close(&cl);
	return ex;
}
