/*
 * test_remote: remote handles' proxies (workers/remote.c) on a bare segment: one per name and
 * node, handed to the gateway's process slot; ended by the repair of a dead gateway, by the
 * sweep when their gateway is gone without a repair that covered them, and by a creator
 * killed at each step of wrk_remote_get() being repaired. The gateway here is a forked child
 * that claims a slot with role gateway; the test process is the supervisor.
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

#include "tests/support.h"

#include "shm/registry.h"
#include "shm/shm.h"
#include "workers/wrk.h"
#include "workers/wrk_int.h"

#define NODE "peer@127.0.0.1"

static char inst[64];
static struct shm_seg *seg;

static int setup(void **state)
{
	struct shm_cfg cfg;

	(void)state;
	snprintf(inst, sizeof(inst), "t-remote-%d", (int)getpid());
	shm_seg_unlink(inst);
	shm_cfg_default(&cfg);
	cfg.max_agents = 32;
	cfg.reg_capacity = 128;
	cfg.max_monitors = 32;
	cfg.max_procs = 8;
	seg = ts_seg_make(inst, &cfg, SHM_ROLE_SUPERVISOR);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ts_seg_drop(seg, inst);
	return 0;
}

/* A "gateway": a child that claims a slot with role gateway, RUNNING, and waits to die. */
static pid_t gateway_start(uint32_t *slot)
{
	int pfd[2];
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint32_t self;

		close(pfd[0]);
		if (shm_proc_claim(seg, SHM_ROLE_GATEWAY, false))
			_exit(1);
		shm_proc_set_state(seg, SHM_PROC_RUNNING);
		self = seg->self;
		if (write(pfd[1], &self, sizeof(self)) != (ssize_t)sizeof(self))
			_exit(2);
		for (;;)
			pause();
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], slot, sizeof(*slot)), (ssize_t)sizeof(*slot));
	close(pfd[0]);
	return pid;
}

/* SIGKILL pid and collect it. */
static void kill_wait(pid_t pid)
{
	int status;

	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* What the supervisor does for a dead client-like process (supervisor/adopt.c). */
static void repair(uint32_t slot)
{
	atomic_store(&shm_proc_at(seg, slot)->state, SHM_PROC_DEAD);
	shm_reg_repair(seg, slot);
	wrk_repair_proc_claims(seg, slot);
	wrk_repair_remote(seg, slot);
	wrk_remote_sweep(seg);
	atomic_store(&shm_proc_at(seg, slot)->state, SHM_PROC_EXITED);
}

static bool is_free(shoal_handle_t h)
{
	struct shm_agent *a = shm_agent_at(seg, shoal_handle_slot(h));

	return atomic_load(&a->state) == SHM_AGENT_FREE && atomic_load(&a->ctl) == 0;
}

/* One proxy per name and node, handed to the gateway; bad input refused; no gateway: said. */
static void test_remote_get(void **state)
{
	shoal_handle_t h, again, other, found;
	struct shm_agent *a;
	uint32_t gw;
	pid_t pid;

	(void)state;
	assert_int_equal(wrk_remote_get(seg, NODE, "x", &h), -EHOSTUNREACH);
	pid = gateway_start(&gw);
	assert_int_equal(wrk_remote_get(seg, "nohost", "x", &h), -EINVAL);
	assert_int_equal(wrk_remote_get(seg, "a@b@c", "x", &h), -EINVAL);
	assert_int_equal(wrk_remote_get(seg, NODE, "", &h), -EINVAL);
	assert_int_equal(wrk_remote_get(seg, NODE,
					"a-name-so-long-that-name-and-node-pass-sixty-three-bytes",
					&h),
			 -EINVAL);
	assert_int_equal(wrk_remote_get(seg, NODE, "echo", &h), 0);
	a = shm_agent_at(seg, shoal_handle_slot(h));
	assert_int_equal(atomic_load(&a->worker), gw + 1);
	assert_int_equal(atomic_load(&a->ctl), WRK_CTL_HELD);
	assert_int_equal(atomic_load(&a->state), SHM_AGENT_STARTING);
	assert_string_equal(a->type, WRK_REMOTE_TYPE);
	assert_string_equal(a->name, "echo@" NODE);
	assert_int_equal(wrk_remote_get(seg, NODE, "echo", &again), 0);
	assert_true(again == h);
	/* a name with '@' is a name; another node is another proxy */
	assert_int_equal(wrk_remote_get(seg, NODE, "e@cho", &other), 0);
	assert_true(other != h);
	assert_int_equal(wrk_remote_get(seg, "peer2@127.0.0.1", "echo", &other), 0);
	assert_true(other != h);
	/* in its own namespace: not a local name */
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "echo@" NODE, strlen("echo@" NODE),
					&found, NULL),
			 -ENOENT);
	/* the gateway dies: the repair ends its proxies and their names */
	kill_wait(pid);
	repair(gw);
	assert_true(is_free(h));
	assert_true(is_free(other));
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_REMOTE, "echo@" NODE, strlen("echo@" NODE),
					&found, NULL),
			 -ENOENT);
	assert_int_equal(wrk_remote_get(seg, NODE, "echo", &h), -EHOSTUNREACH);
}

/*
 * A proxy handed to a gateway that is gone without a repair covering it (its creator died
 * between the hand-over and its look at the gateway, R0): the sweep ends it, and leaves a
 * live gateway's alone.
 */
static void test_remote_sweep(void **state)
{
	shoal_handle_t h, live;
	uint32_t gw, gw2;
	pid_t pid, pid2;

	(void)state;
	pid = gateway_start(&gw);
	assert_int_equal(wrk_remote_get(seg, NODE, "echo", &h), 0);
	/* dead, its slot repaired as if before the hand-over: the proxy is missed */
	kill_wait(pid);
	atomic_store(&shm_proc_at(seg, gw)->state, SHM_PROC_DEAD);
	wrk_repair_proc_claims(seg, gw);
	atomic_store(&shm_proc_at(seg, gw)->state, SHM_PROC_EXITED);
	assert_false(is_free(h));
	/* its host is no live gateway: the sweep ends it */
	assert_int_equal(wrk_remote_sweep(seg), 1);
	assert_true(is_free(h));
	/* a live gateway's proxy stays */
	pid2 = gateway_start(&gw2);
	assert_int_equal(wrk_remote_get(seg, NODE, "other", &live), 0);
	assert_int_equal(wrk_remote_sweep(seg), 0);
	assert_false(is_free(live));
	kill_wait(pid2);
	repair(gw2);
	assert_true(is_free(live));
}

/*
 * The creator killed at each step of wrk_remote_get() (a child stopped by a hook of its
 * own: after the claim, after the name, after the hand-over): its repair and the gateway's
 * leave no slot or name behind, and a new lookup makes a working proxy.
 */
static void test_remote_creator_killed(void **state)
{
	uint32_t gw;
	pid_t pid = gateway_start(&gw);

	(void)state;
	for (int step = 0; step < 3; step++) {
		shoal_handle_t found;
		int pfd[2], status;
		uint32_t slot, me;
		pid_t c;

		assert_int_equal(pipe(pfd), 0);
		c = fork();
		assert_true(c >= 0);
		if (c == 0) {
			shoal_handle_t h;
			uint32_t s;

			close(pfd[0]);
			if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
				_exit(1);
			/* the steps of wrk_remote_get(), stopped after `step` */
			if (shm_agent_alloc_named(seg, 0, WRK_REMOTE_TYPE, "k@" NODE,
						  strlen("k@" NODE), &s))
				_exit(2);
			h = wrk_agent_handle(seg, s);
			if (step >= 1 && shm_reg_register(seg, SHM_NS_REMOTE, "k@" NODE,
							  strlen("k@" NODE), h, NULL))
				_exit(3);
			if (step >= 2) {
				atomic_store(&shm_agent_at(seg, s)->worker, gw + 1);
				atomic_store(&shm_agent_at(seg, s)->ctl, WRK_CTL_HELD);
			}
			me = seg->self;
			if (write(pfd[1], &s, sizeof(s)) != (ssize_t)sizeof(s) ||
			    write(pfd[1], &me, sizeof(me)) != (ssize_t)sizeof(me))
				_exit(4);
			raise(SIGKILL);
			_exit(5);
		}
		close(pfd[1]);
		assert_int_equal(read(pfd[0], &slot, sizeof(slot)), (ssize_t)sizeof(slot));
		assert_int_equal(read(pfd[0], &me, sizeof(me)), (ssize_t)sizeof(me));
		close(pfd[0]);
		assert_int_equal(waitpid(c, &status, 0), c);
		repair(me);
		if (step < 2) {
			/* an interrupted spawn: undone */
			assert_int_equal(atomic_load(&shm_agent_at(seg, slot)->state),
					 SHM_AGENT_FREE);
		} else {
			/* handed over: the live gateway's (it takes it up) */
			assert_int_equal(atomic_load(&shm_agent_at(seg, slot)->ctl), WRK_CTL_HELD);
			assert_true(wrk_remote_end(seg, slot, SHOAL_DOWN_STOPPED));
		}
		assert_int_equal(shm_reg_lookup(seg, SHM_NS_REMOTE, "k@" NODE, strlen("k@" NODE),
						&found, NULL),
				 -ENOENT);
	}
	kill_wait(pid);
	repair(gw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_remote_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_creator_killed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
