/*
 * test_task: tasks (shoal_client_task_run()): a short-lived agent on the least loaded worker
 * answers the caller's argument and stops itself; a task agent's error, an unknown type, a
 * task past its timeout and one whose worker is SIGKILLed are answered with errors, and
 * their agents do not stay (nor run again).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "shm/registry.h"
#include "shm/shm.h"
#include "shoal/client.h"
#include "tests/ipc_test_util.h"
#include "tests/run_test_util.h"

/* three agents on worker 0 (the rounder r among them), none on worker 1: the least loaded is 1 */
static const char *run_fmt = "[instance]\nworkers = 2\nplacement = none\n"
			     "[restart]\nintensity = 5\nperiod = 10\n"
			     "[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 16\n"
			     "[types]\nload = %s\n"
			     "[agent b]\ntype = voter\ncount = 2\nname = b-%%u\nworker = 0\n"
			     "[agent r]\ntype = rounder\nname = r\nworker = 0\n";

struct run {
	struct rt_run r;
	struct rt_client cl;
	struct shoal_client *c;
};

static void run_up(struct run *x, const char *name)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	static char cfg[1024];
	char err[256];

	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg), run_fmt, lib);
	rt_start(&x->r, "t-", name, cfg, NULL);
	rt_wait_ready(&x->r);
	rt_client_open(&x->cl, x->r.inst);
	assert_int_equal(shoal_client_open(x->r.inst, &x->c, err, sizeof(err)), 0);
}

static void run_down(struct run *x)
{
	shoal_client_close(x->c);
	rt_client_close(&x->cl);
	rt_stop(&x->r);
}

/* Live (not free, not stopped) agents of type "tasker"; the worker index of the last in *w. */
static uint32_t taskers(struct shm_seg *seg, int32_t *w)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_agents; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);
		uint32_t st = atomic_load(&a->state);

		if (st == SHM_AGENT_FREE || st == SHM_AGENT_STOPPED || strcmp(a->type, "tasker"))
			continue;
		n++;
		if (w)
			*w = (int32_t)atomic_load(&a->worker) - 2;
	}
	return n;
}

static int task(struct run *x, const char *type, const char *arg, int timeout_ms, char *out,
		uint32_t cap)
{
	int n = shoal_client_task_run(x->c, type, arg, (uint32_t)strlen(arg), timeout_ms, out,
				      cap - 1);

	if (n >= 0)
		out[n < (int)cap - 1 ? n : (int)cap - 1] = 0;
	return n;
}

/*
 * A task's result comes back as the reply; its agent stops itself. The agent's own error,
 * an unknown type and bad input are errors; nothing stays.
 */
static void test_task_result(void **state)
{
	char out[64];
	struct run x;

	(void)state;
	run_up(&x, "tres");
	assert_int_equal(task(&x, "tasker", "sq 12", TIMEOUT_MS, out, sizeof(out)), 3);
	assert_string_equal(out, "144");
	assert_int_equal(task(&x, "tasker", "sq 3", TIMEOUT_MS, out, sizeof(out)), 1);
	assert_string_equal(out, "9");
	assert_int_equal(task(&x, "tasker", "fail", TIMEOUT_MS, out, sizeof(out)), -EDOM);
	assert_int_equal(task(&x, "nosuch", "sq 1", TIMEOUT_MS, out, sizeof(out)), -ENOENT);
	assert_int_equal(task(&x, "tasker", "sq 1", 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(task(&x, "", "sq 1", TIMEOUT_MS, out, sizeof(out)), -EINVAL);
	WAIT_FOR(x.cl.seg, taskers(x.cl.seg, NULL) == 0);
	run_down(&x);
}

/* A task that never answers: -ETIMEDOUT at its timeout, and its agent is stopped. */
static void test_task_timeout(void **state)
{
	uint64_t t0;
	char out[64];
	struct run x;

	(void)state;
	run_up(&x, "ttime");
	t0 = shm_now_ns();
	assert_int_equal(task(&x, "tasker", "hang", 300, out, sizeof(out)), -ETIMEDOUT);
	assert_true(shm_now_ns() - t0 >= 300000000u);
	WAIT_FOR(x.cl.seg, taskers(x.cl.seg, NULL) == 0);
	run_down(&x);
}

/*
 * A task runs on the least loaded worker (1: worker 0 hosts three agents). That worker
 * SIGKILLed mid-task: the caller (a child) is answered -ECONNRESET at once, not at its 60 s
 * timeout, and the task agent is not run again when the worker comes back.
 */
static void test_task_worker_killed(void **state)
{
	int32_t w = -1;
	struct run x;
	pid_t pid, wpid;

	(void)state;
	run_up(&x, "tkill");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shoal_client *c;
		char out[16];

		if (shoal_client_open(x.r.inst, &c, NULL, 0))
			_exit(9);
		_exit(shoal_client_task_run(c, "tasker", "hang", 4, 60000, out, sizeof(out)) ==
				      -ECONNRESET
			      ? 0
			      : 10);
	}
	/* its host is set with the spawn, after the slot reads STARTING: wait for both */
	WAIT_FOR(x.cl.seg, taskers(x.cl.seg, &w) == 1 && w >= 0);
	assert_int_equal(w, 1);
	wpid = rt_slot_pid(x.cl.seg, 2);
	assert_true(wpid > 0);
	rt_kill_and_wait(wpid);
	assert_true(it_ok(it_wait_child(pid, TIMEOUT_MS)));
	WAIT_FOR(x.cl.seg,
		 rt_slot_pid(x.cl.seg, 2) != wpid && rt_slot_pid(x.cl.seg, 2) > 0 &&
			 atomic_load(&shm_proc_at(x.cl.seg, 2)->state) == SHM_PROC_RUNNING);
	assert_int_equal(taskers(x.cl.seg, NULL), 0);
	/* the instance runs tasks as before */
	{
		char out[16];

		assert_int_equal(task(&x, "tasker", "sq 5", TIMEOUT_MS, out, sizeof(out)), 2);
		assert_string_equal(out, "25");
	}
	run_down(&x);
}

/* An agent's task (shoal_task_run()): the result, or the error, comes to its handle(). */
static void test_task_agent(void **state)
{
	shoal_handle_t r;
	char out[64];
	struct run x;
	int n;

	(void)state;
	run_up(&x, "tagent");
	assert_int_equal(shoal_client_lookup(x.c, "r", &r), 0);
	n = shoal_client_call(x.c, r, 1, "T 15000 sq 7", 12, out, sizeof(out) - 1, TIMEOUT_MS);
	assert_true(n > 0);
	out[n] = 0;
	assert_string_equal(out, "ok 49");
	n = shoal_client_call(x.c, r, 1, "T 15000 fail", 12, out, sizeof(out) - 1, TIMEOUT_MS);
	assert_true(n > 0);
	out[n] = 0;
	assert_string_equal(out, "err 33"); /* EDOM */
	n = shoal_client_call(x.c, r, 1, "T 200 hang", 10, out, sizeof(out) - 1, TIMEOUT_MS);
	assert_true(n > 0);
	out[n] = 0;
	assert_string_equal(out, "err 110"); /* ETIMEDOUT */
	WAIT_FOR(x.cl.seg, taskers(x.cl.seg, NULL) == 0);
	run_down(&x);
}

/* shoal task: the result printed (exit 0); an unknown type (2); a timeout (1). */
static void test_task_tool(void **state)
{
	const char *ok[] = {"task", "tasker", "sq 4", NULL};
	const char *nosuch[] = {"task", "nosuch", "x", NULL};
	const char *hang[] = {"task", "tasker", "hang", "--timeout", "200", NULL};
	const char *fail[] = {"task", "tasker", "fail", NULL};
	char out[2048];
	struct run x;

	(void)state;
	run_up(&x, "ttool");
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), ok), 0);
	assert_string_equal(out, "16\n");
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), nosuch), 2);
	assert_non_null(strstr(out, "no agent type 'nosuch'"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), hang), 1);
	assert_non_null(strstr(out, "no result within 200 ms"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), fail), 1);
	assert_non_null(strstr(out, "tasker failed"));
	WAIT_FOR(x.cl.seg, taskers(x.cl.seg, NULL) == 0);
	run_down(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_task_result, rt_teardown),
		cmocka_unit_test_teardown(test_task_timeout, rt_teardown),
		cmocka_unit_test_teardown(test_task_worker_killed, rt_teardown),
		cmocka_unit_test_teardown(test_task_agent, rt_teardown),
		cmocka_unit_test_teardown(test_task_tool, rt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
