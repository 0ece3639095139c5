/*
 * Memory under a sustained workload: a million operations through every kind of agent
 * (batched casts to counters and a crasher, calls to echo and plugin agents, variable updates
 * and reads, pool checkouts, tasks, agents spawned and stopped) leave every worker's
 * anonymous memory flat after warm-up (well under a byte per operation on average), and the
 * segment's tables at their starting occupancy once the workload's agents have stopped.
 *
 * Anonymous memory (RssAnon in /proc/PID/status) rather than the whole RSS: the segment is
 * shared memory, and a worker touching mailbox pages of agents it starts later is not a
 * leak; a leak is heap.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm/view.h"
#include "tests/skip.h"

/*
 * A million operations share the CPUs with the rest of a parallel suite: each wait gets a
 * minute (run_test_util.h's default is 15 s), and the instance kills no worker for a late
 * heartbeat (hang_timeout = 0 below): a worker replaced midway would void the comparison
 * (it failed twice in fresh-clone CI runs under load, not reproduced alone).
 */
#define TIMEOUT_MS 60000

#include "tests/run_test_util.h"

#define WORKERS	     2
#define WARMUP_OPS   200000u
#define MEASURED_OPS 1000000u
#define BATCH	     48u

static const char cfg_fmt[] =
	"[instance]\nworkers = 2\nplacement = none\nspare = no\n"
	"[restart]\nhang_timeout = 0\n"
	"[segment]\nmax_agents = 128\nregistry_capacity = 512\nvariables = 16\n"
	"[types]\nload = %s\n"
	"[pool p]\ntype = echo\nsize = 2\noverflow = 0\n"
	"[agent e]\ntype = echo\ncount = 4\nname = e-%%u\n"
	"[agent c]\ntype = counter\ncount = 2\nname = c-%%u\n"
	"[agent k]\ntype = crasher\nname = k\n"
	"[agent u]\ntype = upper\ncount = 2\nname = u-%%u\n";

struct load {
	struct rt_run r;
	struct rt_client cl;
	struct shoal_client *c;
	shoal_handle_t e[4], cnt[2], k, u[2];
	shoal_var_t var;
	uint64_t spawned;
};

/* The anonymous memory of process pid, in bytes (RssAnon), or -1. */
static long long rss_anon(pid_t pid)
{
	char path[64], line[256];
	long long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

/*
 * One step: 64 operations. A batch of casts (counters, the crasher, a plugin agent), calls
 * to echo and plugin agents, variable updates and reads, a pool checkout and checkin.
 */
static void step(struct load *x, uint64_t i)
{
	static const char payload[] = "tick";
	struct shoal_out out[BATCH];
	struct shoal_var_value val;
	char reply[32];
	int64_t v = (int64_t)i;
	struct shoal_var_set set = {.var = x->var,
				    .type = SHOAL_VAR_INT,
				    .len = 8,
				    .data = &v,
				    .expect = SHOAL_VAR_ANY};
	shoal_handle_t a;

	for (uint32_t k = 0; k < BATCH; k++) {
		shoal_handle_t to = k % 4 == 3 ? x->k : k % 4 == 2 ? x->u[k & 1] : x->cnt[k & 1];

		out[k] = (struct shoal_out){.to = to, .type = 1, .len = 4, .data = payload};
	}
	assert_int_equal(shoal_client_send_batch(x->c, out, BATCH, TIMEOUT_MS), (int)BATCH);
	for (int k = 0; k < 4; k++) {
		assert_int_equal(shoal_client_call(x->c, x->e[k], 1, "ping", 4, reply,
						   sizeof(reply), TIMEOUT_MS),
				 4);
		assert_true(shoal_client_call(x->c, x->u[k & 1], 1, "ab", 2, reply, sizeof(reply),
					      TIMEOUT_MS) > 0);
	}
	for (int k = 0; k < 4; k++)
		assert_int_equal(shoal_client_var_update(x->c, &set, 1, NULL, TIMEOUT_MS), 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(shoal_client_var_read(x->c, x->var, &val), 0);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(shoal_client_pool_checkout(x->c, "p", TIMEOUT_MS, &a), 0);
		assert_int_equal(shoal_client_pool_checkin(x->c, "p", a), 0);
	}
}

/* Agents spawned and stopped, and a task: the agent table's churn, every 256 steps. */
static void churn(struct load *x)
{
	char name[32], reply[32];
	shoal_handle_t h;
	int32_t w;
	int n;

	snprintf(name, sizeof(name), "tmp-%llu", (unsigned long long)x->spawned++);
	assert_int_equal(shoal_client_spawn(x->c, "echo", name, 0, -1, &h, &w, TIMEOUT_MS), 0);
	assert_int_equal(shoal_client_stop(x->c, NULL, h, TIMEOUT_MS), 0);
	n = shoal_client_task_run(x->c, "tasker", "sq 7", 4, TIMEOUT_MS, reply, sizeof(reply));
	assert_int_equal(n, 2);
	assert_memory_equal(reply, "49", 2);
}

static void run_ops(struct load *x, uint64_t ops)
{
	for (uint64_t i = 0; i < ops / 64; i++) {
		step(x, i);
		if (i % 256 == 255)
			churn(x);
	}
}

/* The tables' occupancy: agents, registry names, monitors, rounds, pools' checked-out. */
struct occupancy {
	uint32_t agents, names, monitors, rounds, procs;
	uint32_t transient; /* 1: a churn's agent or task is still there (stopping) */
};

static struct occupancy occupancy(struct shm_seg *seg)
{
	struct occupancy o = {0};
	struct shm_view *v = NULL;

	assert_int_equal(shm_view_create(seg, &v), 0);
	assert_int_equal(shm_view_take(seg, 3000000000ull, v), 0);
	/* a churn's agent or task still stopping: not at rest (transient = 1) */
	for (uint32_t i = 0; i < v->nagents; i++)
		if (!strncmp(v->agents[i].name, "tmp-", 4) || !strcmp(v->agents[i].type, "tasker"))
			o.transient = 1;
	o.agents = v->nagents;
	o.names = v->reg.live;
	o.monitors = v->nmonitors;
	o.rounds = v->rounds_in_use;
	for (uint32_t i = 0; i < v->nprocs; i++)
		o.procs += v->procs[i].state != SHM_PROC_FREE;
	shm_view_free(v);
	return o;
}

static void test_memory_flat_under_load(void **state)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	static char cfg[2048];
	struct load x = {0};
	struct occupancy o0, o1;
	long long before[WORKERS + 1], after[WORKERS + 1];
	pid_t pid[WORKERS + 1];
	char name[16];

	(void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	skip_because("a sanitizer's allocator keeps freed memory (quarantine, shadow): the "
		     "resident memory is not the program's; the plain build measures it");
#endif
	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg), cfg_fmt, lib);
	rt_group_up(&x.r, &x.cl, &x.c, "memory", cfg);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "e-%d", i);
		assert_int_equal(shoal_client_lookup(x.c, name, &x.e[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "c-%d", i);
		assert_int_equal(shoal_client_lookup(x.c, name, &x.cnt[i]), 0);
		snprintf(name, sizeof(name), "u-%d", i);
		assert_int_equal(shoal_client_lookup(x.c, name, &x.u[i]), 0);
	}
	assert_int_equal(shoal_client_lookup(x.c, "k", &x.k), 0);
	assert_int_equal(shoal_client_var_create(x.c, "m.v", SHOAL_VAR_INT, &x.var), 0);
	run_ops(&x, WARMUP_OPS);
	/*
	 * the baseline at rest: the warmup's last stop and task may still be under way, and a
	 * baseline counting their agent could never be met again (the CI's run waited 60 s
	 * for one agent more than the end has)
	 */
	WAIT_FOR(x.cl.seg, !(o0 = occupancy(x.cl.seg)).transient);
	for (uint32_t s = 0; s <= WORKERS; s++) {
		pid[s] = rt_slot_pid(x.cl.seg, s);
		before[s] = rss_anon(pid[s]);
		assert_true(before[s] > 0);
	}
	run_ops(&x, MEASURED_OPS);
	for (uint32_t s = 0; s <= WORKERS; s++) {
		/* the same processes: a restart would make the comparison meaningless */
		assert_int_equal(rt_slot_pid(x.cl.seg, s), pid[s]);
		after[s] = rss_anon(pid[s]);
		print_message("# %s (pid %d): anonymous memory %lld -> %lld bytes over %u ops "
			      "(%+.4f bytes/op)\n",
			      s ? "worker" : "supervisor", (int)pid[s], before[s], after[s],
			      MEASURED_OPS, (double)(after[s] - before[s]) / MEASURED_OPS);
	}
	for (uint32_t s = 0; s <= WORKERS; s++)
		if (after[s] - before[s] >= (long long)MEASURED_OPS)
			fail_msg("process slot %u (pid %d) grew %lld bytes over %u operations: a "
				 "byte or more per operation",
				 s, (int)pid[s], after[s] - before[s], MEASURED_OPS);
	/* the stopped agents' slots, names and monitors are free again (the last stop and the
	 * last task's own stop may still be under way: each frees them in its own order) */
	WAIT_FOR(x.cl.seg, (o1 = occupancy(x.cl.seg)).agents == o0.agents && o1.names == o0.names &&
				   o1.monitors == o0.monitors);
	assert_int_equal(o1.rounds, o0.rounds);
	assert_int_equal(o1.procs, o0.procs);
	print_message("# %llu agents spawned and stopped; tables back to %u agents, %u names\n",
		      (unsigned long long)x.spawned, o1.agents, o1.names);
	rt_group_down(&x.r, &x.cl, x.c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_memory_flat_under_load, rt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
