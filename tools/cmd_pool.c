/*
 * shoal pool list | create NAME TYPE SIZE [OVERFLOW] | checkout NAME: agent pools. list reads
 * the segment's snapshot (shm/view.h); create and checkout go through the client API.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/view.h"
#include "shoal/client.h"
#include "tools/client.h"
#include "tools/tools.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal pool list [--instance NAME]\n"
		"       shoal pool create NAME TYPE SIZE [OVERFLOW] [--timeout MS] [--instance "
		"NAME]\n"
		"       shoal pool checkout NAME [--timeout MS] [--instance NAME]\n"
		"Agent pools: named sets of agents of one type that holders check out and in,\n"
		"first come first served when none is free.\n"
		"  list      each pool: type, members (at rest + overflow allowed), checked out,\n"
		"            waiting, overflow being started, checkouts, waits, timeouts\n"
		"  create    start SIZE agents of TYPE (named NAME.0, NAME.1, ...) as pool NAME;\n"
		"            OVERFLOW more are started while checkouts wait (default 0)\n"
		"  checkout  check an agent out, print its handle and check it in again (exit 1\n"
		"            if none came within --timeout, default 5000 ms)\n"
		"Configured pools are [pool NAME] sections (type, size, overflow); [segment] "
		"pools\n"
		"and pool_members size the table.\n");
}

/* See tools.h. */
void tool_show_pools(const struct shm_view *v)
{
	printf("\npools          (of %u, %u members each)\n", v->cfg.max_pools,
	       v->cfg.pool_members);
	if (!v->npools) {
		printf("  none\n");
		return;
	}
	printf("  %-24s %-16s %9s %5s %7s %5s %10s %8s %8s\n", "name", "type", "members", "held",
	       "waiting", "more", "checkouts", "waits", "timeouts");
	for (uint32_t i = 0; i < v->npools && i < SHM_VIEW_POOLS; i++) {
		const struct shm_pool_info *p = &v->pools[i];
		char members[24];

		snprintf(members, sizeof(members), "%u/%u+%u", p->members, p->size, p->overflow);
		printf("  %-24s %-16s %9s %5u %7u %5u %10llu %8llu %8llu\n", p->name, p->type,
		       members, p->held, p->waiting, p->want, (unsigned long long)p->checkouts,
		       (unsigned long long)p->waits, (unsigned long long)p->timeouts);
	}
	if (v->npools > SHM_VIEW_POOLS)
		printf("  ... the first %u shown of %u\n", SHM_VIEW_POOLS, v->npools);
}

static int take(const struct shm_seg *seg, void *arg)
{
	struct shm_view **v = arg;
	int r = shm_view_create(seg, v);

	return r ? r : shm_view_take(seg, 3000000000ull, *v);
}

static int pool_list(const char *instance)
{
	struct shm_view *v = NULL;
	struct shm_seg *seg;
	char err[512];
	int r;

	r = shm_seg_attach(instance, SHM_ATTACH_RO, 0, &seg, err, sizeof(err));
	if (r) {
		fprintf(stderr, "shoal pool: %s\n", err);
		return tool_exit_for(r);
	}
	r = shm_seg_guard(seg, take, &v, NULL);
	if (r)
		fprintf(stderr, "shoal pool: instance '%s': reading its segment: %s\n", instance,
			strerror(-r));
	else
		tool_show_pools(v);
	shm_view_free(v);
	shm_seg_detach(seg);
	return r ? tool_exit_for(r) : EXIT_OK;
}

static long count_arg(const char *what, const char *s)
{
	long v = tool_parse_count(s);

	if (v < 0 || v > 65536)
		fprintf(stderr, "shoal pool create: %s '%s': not a count 0..65536\n", what, s);
	return v > 65536 ? -1 : v;
}

static int pool_create(struct shoal_client *c, const char *inst, char **pos, int npos, long timeout)
{
	long size = count_arg("SIZE", pos[2]),
	     overflow = npos > 3 ? count_arg("OVERFLOW", pos[3]) : 0;
	int r;

	if (size <= 0 || overflow < 0) {
		if (size == 0)
			fprintf(stderr, "shoal pool create: SIZE must be at least 1\n");
		return EXIT_USAGE;
	}
	r = shoal_client_pool_create(c, pos[0], pos[1], (uint32_t)size, (uint32_t)overflow,
				     (int)timeout);
	switch (r) {
	case 0:
		printf("%s: pool of %ld %s agents (+%ld overflow)\n", pos[0], size, pos[1],
		       overflow);
		return EXIT_OK;
	case -EEXIST:
		fprintf(stderr,
			"shoal pool create: instance '%s' has a pool '%s' already, or one of the "
			"names %s.0..%s.%ld is taken\n",
			inst, pos[0], pos[0], pos[0], size - 1);
		return EXIT_USAGE;
	case -EINVAL:
		fprintf(stderr,
			"shoal pool create: '%s' is not a valid pool name (1..%d bytes) or '%s' "
			"not a type name\n",
			pos[0], SHOAL_POOL_NAME_MAX, pos[1]);
		return EXIT_USAGE;
	case -ENOENT:
		fprintf(stderr, "shoal pool create: instance '%s' has no agent type '%s'\n", inst,
			pos[1]);
		return EXIT_USAGE;
	case -ENOSPC:
		fprintf(stderr,
			"shoal pool create: instance '%s' has no room: its pool table is full, or "
			"%ld + %ld members exceed [segment] pool_members, or no agent slot is "
			"free\n",
			inst, size, overflow);
		return EXIT_USAGE;
	default:
		fprintf(stderr, "shoal pool create: instance '%s': %s\n", inst, strerror(-r));
		return tool_exit_for(r);
	}
}

static int pool_checkout(struct shoal_client *c, const char *inst, const char *pool, long timeout)
{
	shoal_handle_t h;
	int r = shoal_client_pool_checkout(c, pool, (int)timeout, &h);

	if (r == 0) {
		printf("%s: checked out %#llx\n", pool, (unsigned long long)h);
		r = shoal_client_pool_checkin(c, pool, h);
		if (r)
			fprintf(stderr, "shoal pool checkout: checking %#llx in again: %s\n",
				(unsigned long long)h, strerror(-r));
		return r ? tool_exit_for(r) : EXIT_OK;
	}
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "shoal pool checkout: no agent of pool '%s' came within %ld ms\n",
			pool, timeout);
		return EXIT_CHECK;
	}
	if (r == -ENOENT) {
		fprintf(stderr, "shoal pool checkout: instance '%s' has no pool '%s'\n", inst,
			pool);
		return EXIT_USAGE;
	}
	fprintf(stderr, "shoal pool checkout: pool '%s': %s\n", pool, strerror(-r));
	return tool_exit_for(r);
}

int cmd_pool(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"timeout", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 5000};
	struct shoal_client *c;
	const char *sub;
	char err[256];
	int ex, npos;

	ex = tool_client_args("pool", argc, argv, opts, "i:T:h", 'T', -1, usage, NULL, NULL, &a);
	if (ex >= 0)
		return ex;
	sub = argv[optind];
	npos = argc - optind - 1;
	if (!strcmp(sub, "list") && npos == 0)
		return pool_list(a.instance);
	if (strcmp(sub, "list") && strcmp(sub, "create") && strcmp(sub, "checkout")) {
		fprintf(stderr, "shoal pool: unknown subcommand '%s' (list, create, checkout)\n",
			sub);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!((!strcmp(sub, "create") && (npos == 3 || npos == 4)) ||
	      (!strcmp(sub, "checkout") && npos == 1))) {
		fprintf(stderr, "shoal pool %s: wrong number of arguments\n", sub);
		usage(stderr);
		return EXIT_USAGE;
	}
	ex = shoal_client_open(a.instance, &c, err, sizeof(err));
	if (ex) {
		fprintf(stderr, "shoal pool: %s\n", err);
		return tool_exit_for(ex);
	}
	if (!strcmp(sub, "create"))
		ex = pool_create(c, a.instance, argv + optind + 1, npos, a.timeout_ms);
	else
		ex = pool_checkout(c, a.instance, argv[optind + 1], a.timeout_ms);
	shoal_client_close(c);
	return ex;
}
