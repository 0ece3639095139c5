/* test_pool: agent pools: create, checkout/checkin, FIFO waiters, timeouts, holders that die,
 * a locked section killed at each step, and checkouts racing checkins. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"
#include "tests/support.h"
#include "tests/run_test_util.h"
#include "shm/pool.h"
#include "shm/shm.h"
#include "shoal/client.h"
#include "shoal/shoal.h"
#include "workers/wrk.h"

static char inst[64];
static struct shm_seg *seg;

static int setup(void **state)
{
	struct shm_cfg cfg;

	(void)state;
	snprintf(inst, sizeof(inst), "t-pool-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.max_pools = 4;
	cfg.pool_members = 8;
	seg = ts_seg_make(inst, &cfg, SHM_ROLE_SUPERVISOR);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ts_seg_drop(seg, inst);
	seg = NULL;
	return 0;
}

/* A running agent slot's handle (the pool hands out only running agents). */
static uint64_t agent(void)
{
	uint32_t slot;
	struct shm_agent *a;

	assert_int_equal(shm_agent_alloc(seg, 0, &slot), 0);
	a = shm_agent_at(seg, slot);
	atomic_store(&a->state, SHM_AGENT_RUNNING);
	return shoal_handle_make(slot, atomic_load(&a->gen));
}

/* Pool `name` of n running agents (their handles in out[]), published. */
static uint32_t make_pool(const char *name, uint32_t n, uint32_t overflow, uint64_t *out)
{
	uint32_t id;

	assert_int_equal(shm_pool_create(seg, name, "echo", n, overflow, &id), 0);
	for (uint32_t i = 0; i < n; i++) {
		out[i] = agent();
		assert_int_equal(shm_pool_add(seg, id, out[i], false), 0);
	}
	shm_pool_publish(seg, id);
	return id;
}

/* Notes made, in order, for the tests to read. */
struct notes {
	uint32_t n;
	struct shm_pool_note v[32];
	int rc; /* what the notify function returns */
};

static int record(void *arg, const struct shm_pool_note *n)
{
	struct notes *ns = arg;

	if (ns->n < 32)
		ns->v[ns->n++] = *n;
	return ns->rc;
}

static pid_t fork_claimed(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
			_exit(90);
		shm_proc_set_state(seg, SHM_PROC_RUNNING);
	}
	return pid;
}

static int wait_child(pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status = -1;
	struct pollfd p = {.fd = pfd, .events = POLLIN};

	if (pfd >= 0 && poll(&p, 1, timeout_ms) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(pfd);
		return -1;
	}
	if (pfd >= 0)
		close(pfd);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* The supervisor's part after a death: mark the slot dead, repair, let it be reused. */
static int repair(uint32_t slot, struct notes *ns)
{
	struct shm_proc *p = shm_proc_at(seg, slot);
	int n;

	atomic_store(&p->state, SHM_PROC_DEAD);
	n = shm_pool_repair(seg, slot, record, ns);
	atomic_store(&p->state, SHM_PROC_EXITED);
	return n;
}

static void test_pool_create_find_read(void **state)
{
	uint64_t a[3];
	struct shm_pool_info in;
	uint32_t id, id2;

	(void)state;
	assert_int_equal(shm_pool_find(seg, "workers", &id), -ENOENT);
	id = make_pool("workers", 3, 2, a);
	assert_int_equal(shm_pool_find(seg, "workers", &id2), 0);
	assert_int_equal(id2, id);
	assert_int_equal(shm_pool_create(seg, "workers", "echo", 1, 0, &id2), -EEXIST);
	assert_int_equal(shm_pool_create(seg, "big", "echo", 7, 2, &id2), -EINVAL);
	assert_int_equal(shm_pool_create(seg, "", "echo", 1, 0, &id2), -EINVAL);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_string_equal(in.name, "workers");
	assert_string_equal(in.type, "echo");
	assert_int_equal(in.size, 3);
	assert_int_equal(in.overflow, 2);
	assert_int_equal(in.members, 3);
	assert_int_equal(in.held, 0);
	/* the table holds 4: three more, then full */
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "p%d", i);
		assert_int_equal(shm_pool_create(seg, name, "echo", 1, 0, &id2), 0);
		shm_pool_publish(seg, id2);
	}
	assert_int_equal(shm_pool_create(seg, "one-more", "echo", 1, 0, &id2), -ENOSPC);
}

static void test_pool_checkout_checkin(void **state)
{
	uint64_t a[2], got[2], x;
	uint32_t id, ws;
	struct shm_pool_info in;
	pid_t pid;

	(void)state;
	id = make_pool("p", 2, 0, a);
	for (int i = 0; i < 2; i++)
		assert_int_equal(
			shm_pool_checkout(seg, id, 100 + i, 1, 0, false, &got[i], &ws, NULL, NULL),
			0);
	assert_true(got[0] != got[1]);
	assert_true((got[0] == a[0] || got[0] == a[1]) && (got[1] == a[0] || got[1] == a[1]));
	assert_int_equal(shm_pool_checkout(seg, id, 102, 1, 0, false, &x, &ws, NULL, NULL),
			 -EAGAIN);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.held, 2);
	/* not a member; not ours (another process tries) */
	assert_int_equal(shm_pool_checkin(seg, id, 12345, NULL, NULL), -ENOENT);
	pid = fork_claimed();
	if (pid == 0)
		_exit(shm_pool_checkin(seg, id, got[0], NULL, NULL) == -EPERM ? 0 : 1);
	assert_int_equal(wait_child(pid, 10000), 0);
	assert_int_equal(shm_pool_checkin(seg, id, got[0], NULL, NULL), 0);
	assert_int_equal(shm_pool_checkout(seg, id, 103, 1, 0, false, &x, &ws, NULL, NULL), 0);
	assert_true(x == got[0]);
	/* an agent that is not running is not handed out */
	assert_int_equal(shm_pool_checkin(seg, id, x, NULL, NULL), 0);
	atomic_store(&shm_agent_at(seg, shoal_handle_slot(x))->state, SHM_AGENT_DOWN);
	assert_int_equal(shm_pool_checkout(seg, id, 104, 1, 0, false, &x, &ws, NULL, NULL),
			 -EAGAIN);
}

/* Waiters are served in the order they queued, whoever checks in. */
static void test_pool_fifo(void **state)
{
	uint64_t a[1], got, x;
	uint32_t id, ws[3];
	struct notes ns = {0};

	(void)state;
	id = make_pool("p", 1, 0, a);
	assert_int_equal(shm_pool_checkout(seg, id, 1, 1, 0, true, &got, &ws[0], record, &ns), 0);
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(shm_pool_checkout(seg, id, 10 + i, 20 + i, 0, true, &x, &ws[i],
						   record, &ns),
				 1);
	assert_int_equal(shm_pool_wait_result(seg, id, ws[0], 20, false, &x), 1);
	for (uint32_t i = 0; i < 3; i++) {
		/* we hold it (the grants are to our process's handles): check it in again */
		assert_int_equal(shm_pool_checkin(seg, id, a[0], record, &ns), 0);
		assert_int_equal(ns.n, i + 1);
		assert_int_equal(ns.v[i].kind, SHM_POOL_GRANT);
		assert_int_equal(ns.v[i].to, 10 + i);
		assert_int_equal(ns.v[i].ref, 20 + i);
		assert_true(ns.v[i].agent == a[0]);
		/* delivered: the entry is gone */
		assert_int_equal(shm_pool_wait_result(seg, id, ws[i], 20 + i, false, &x), -ENOENT);
	}
}

/* A grant the notify function could not deliver stays for its waiter to take. */
static void test_pool_undelivered_grant(void **state)
{
	uint64_t a[1], got, x = 0;
	uint32_t id, ws;
	struct notes ns = {.rc = -EAGAIN};
	struct shm_pool_info in;

	(void)state;
	id = make_pool("p", 1, 0, a);
	assert_int_equal(shm_pool_checkout(seg, id, 1, 1, 0, true, &got, &ws, record, &ns), 0);
	assert_int_equal(shm_pool_checkout(seg, id, 2, 7, 0, true, &x, &ws, record, &ns), 1);
	assert_int_equal(shm_pool_checkin(seg, id, a[0], record, &ns), 0);
	assert_int_equal(ns.n, 1);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.waiting, 0);
	assert_int_equal(in.held, 1);
	/* the tick tries again */
	assert_int_equal(shm_pool_tick(seg, shm_now_ns(), record, &ns), 1);
	assert_int_equal(ns.n, 2);
	/* the waiter's own look takes it */
	assert_int_equal(shm_pool_wait_result(seg, id, ws, 7, false, &x), 0);
	assert_true(x == a[0]);
	assert_int_equal(shm_pool_tick(seg, shm_now_ns(), record, &ns), 0);
}

static void test_pool_timeout_and_cancel(void **state)
{
	uint64_t a[1], got, x;
	uint32_t id, ws[2];
	struct notes ns = {0};
	struct shm_pool_info in;
	uint64_t now = shm_now_ns();

	(void)state;
	id = make_pool("p", 1, 0, a);
	assert_int_equal(shm_pool_checkout(seg, id, 1, 1, 0, true, &got, &ws[0], record, &ns), 0);
	assert_int_equal(
		shm_pool_checkout(seg, id, 2, 2, now + 1000, true, &x, &ws[0], record, &ns), 1);
	assert_int_equal(shm_pool_checkout(seg, id, 3, 3, 0, true, &x, &ws[1], record, &ns), 1);
	/* not yet due */
	assert_int_equal(shm_pool_tick(seg, now, record, &ns), 0);
	assert_int_equal(shm_pool_tick(seg, now + 1000, record, &ns), 1);
	assert_int_equal(ns.v[0].kind, SHM_POOL_TIMEOUT);
	assert_int_equal(ns.v[0].ref, 2);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.waiting, 1);
	assert_int_equal(in.timeouts, 1);
	/* the other withdraws */
	assert_int_equal(shm_pool_wait_result(seg, id, ws[1], 3, true, &x), 1);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.waiting, 0);
	/* nobody waits: the checkin frees it */
	assert_int_equal(shm_pool_checkin(seg, id, a[0], record, &ns), 0);
	assert_int_equal(ns.n, 1);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.held, 0);
}

/* A holder process that dies: what it held goes to the head waiter; its own waits go. */
static void test_pool_holder_dies(void **state)
{
	uint64_t a[2], x;
	uint32_t id, ws;
	struct notes ns = {0};
	_Atomic uint32_t *slot =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct shm_pool_info in;
	pid_t pid;

	(void)state;
	id = make_pool("p", 2, 0, a);
	pid = fork_claimed();
	if (pid == 0) {
		uint64_t g;
		uint32_t w;

		atomic_store(slot, seg->self + 1);
		if (shm_pool_checkout(seg, id, 50, 1, 0, true, &g, &w, NULL, NULL) ||
		    shm_pool_checkout(seg, id, 51, 2, 0, true, &g, &w, NULL, NULL))
			_exit(1);
		/* and a queued checkout of its own */
		if (shm_pool_checkout(seg, id, 52, 3, 0, true, &g, &w, NULL, NULL) != 1)
			_exit(2);
		raise(SIGKILL);
	}
	assert_true(WIFSIGNALED(wait_child(pid, 10000)));
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.held, 2);
	assert_int_equal(in.waiting, 1);
	/* we queue behind its dead waiter */
	assert_int_equal(shm_pool_checkout(seg, id, 9, 9, 0, true, &x, &ws, record, &ns), 1);
	assert_int_equal(repair(atomic_load(slot) - 1, &ns), 2);
	/* ours is granted (the dead one's wait was withdrawn first) and one is free */
	assert_int_equal(ns.n, 1);
	assert_int_equal(ns.v[0].to, 9);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.held, 1);
	assert_int_equal(in.waiting, 0);
	munmap((void *)slot, 4096);
}

/* An agent holder that stops while its process lives: its members return. */
static void test_pool_release_holder(void **state)
{
	uint64_t a[2], x, y;
	uint32_t id, ws;
	struct shm_pool_info in;

	(void)state;
	id = make_pool("p", 2, 0, a);
	assert_int_equal(shm_pool_checkout(seg, id, 77, 1, 0, true, &x, &ws, NULL, NULL), 0);
	assert_int_equal(shm_pool_checkout(seg, id, 78, 1, 0, true, &y, &ws, NULL, NULL), 0);
	assert_int_equal(shm_pool_release_holder(seg, 77, NULL, NULL), 1);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.held, 1);
	assert_int_equal(shm_pool_checkin(seg, id, y, NULL, NULL), 0);
	assert_int_equal(shm_pool_release_holder(seg, 78, NULL, NULL), 0);
}

/* Overflow: waiters ask the supervisor for more; an idle overflow member retires. */
static void test_pool_overflow(void **state)
{
	uint64_t a[1], got, x, extra;
	uint32_t id, ws;
	struct notes ns = {0};
	struct shm_pool_info in;

	(void)state;
	id = make_pool("p", 1, 1, a);
	assert_int_equal(shm_pool_checkout(seg, id, 1, 1, 0, true, &got, &ws, record, &ns), 0);
	assert_int_equal(shm_pool_checkout(seg, id, 2, 2, 0, true, &x, &ws, record, &ns), 1);
	assert_int_equal(shm_pool_checkout(seg, id, 3, 3, 0, true, &x, &ws, record, &ns), 1);
	/* two wait, one more member allowed */
	assert_int_equal(shm_pool_take_want(seg, id), 1);
	assert_int_equal(shm_pool_take_want(seg, id), 0);
	extra = agent();
	assert_int_equal(shm_pool_add_overflow(seg, id, extra, record, &ns), 0);
	assert_int_equal(ns.n, 1);
	assert_int_equal(ns.v[0].to, 2);
	assert_true(ns.v[0].agent == extra);
	assert_int_equal(shm_pool_take_want(seg, id), 0); /* at size + overflow */
	/* waiter 3 gets the overflow member when it comes back... */
	assert_int_equal(shm_pool_checkin(seg, id, extra, record, &ns), 0);
	assert_int_equal(ns.n, 2);
	assert_int_equal(ns.v[1].to, 3);
	/* ... and with nobody waiting it retires */
	assert_int_equal(shm_pool_checkin(seg, id, extra, record, &ns), 0);
	assert_true(shm_pool_retired(seg, id) == extra);
	assert_true(shm_pool_retired(seg, id) == 0);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.members, 1);
}

/* Kill a process inside a locked section at `step`; the next locker repairs. */
static int kill_step;
static void die_at(int step)
{
	if (step == kill_step)
		raise(SIGKILL);
}

static void locked_section_killed(int step, bool as_granter)
{
	uint64_t a[1], got, x = 0;
	uint32_t id, ws;
	struct notes ns = {0};
	struct shm_pool_info in;
	pid_t pid;

	id = make_pool("p", 1, 0, a);
	if (as_granter) {
		/* we wait; the child checks in (holding it) and dies granting it to us */
		pid = fork_claimed();
		if (pid == 0) {
			uint64_t g;
			uint32_t w;

			if (shm_pool_checkout(seg, id, 5, 5, 0, true, &g, &w, NULL, NULL))
				_exit(1);
			raise(SIGSTOP);
			kill_step = step;
			shm_pool_test_hook = die_at;
			shm_pool_checkin(seg, id, g, NULL, NULL);
			_exit(2);
		}
		{
			int st;

			assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
			assert_true(WIFSTOPPED(st));
		}
		assert_int_equal(shm_pool_checkout(seg, id, 6, 6, 0, true, &x, &ws, NULL, NULL), 1);
		kill(pid, SIGCONT);
		assert_true(WIFSIGNALED(wait_child(pid, 10000)));
		/*
		 * The member was taken for us, nothing else: the next locker (the tick) finishes
		 * the grant, and delivers it
		 */
		{
			int notes = shm_pool_tick(seg, shm_now_ns(), record, &ns);

			assert_int_equal(notes, 1);
			assert_int_equal(ns.n, 1);
			assert_int_equal(ns.v[0].to, 6);
		}
		assert_int_equal(shm_pool_wait_result(seg, id, ws, 6, false, &x), -ENOENT);
		assert_true(ns.v[0].agent == a[0]);
		assert_int_equal(shm_pool_read(seg, id, &in), 0);
		assert_int_equal(in.waiting, 0);
		assert_int_equal(in.held, 1);
		return;
	}
	/* we hold it; the child dies queueing */
	assert_int_equal(shm_pool_checkout(seg, id, 1, 1, 0, true, &got, &ws, NULL, NULL), 0);
	pid = fork_claimed();
	if (pid == 0) {
		uint64_t g;
		uint32_t w;

		kill_step = step;
		shm_pool_test_hook = die_at;
		shm_pool_checkout(seg, id, 5, 5, 0, true, &g, &w, NULL, NULL);
		_exit(2);
	}
	assert_true(WIFSIGNALED(wait_child(pid, 10000)));
	/* the next locker (our tick) takes the lock over and recounts */
	assert_int_equal(shm_pool_tick(seg, shm_now_ns(), record, &ns), 0);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.waiting, step == SHM_POOL_STEP_QUEUED ? 1 : 0);
	assert_int_equal(in.entries, in.waiting); /* a half-written entry is freed */
	/* and a checkin hands it on only to a live waiter, after the dead one's repair */
	assert_int_equal(shm_pool_checkin(seg, id, got, record, &ns), 0);
	assert_int_equal(ns.n, step == SHM_POOL_STEP_QUEUED ? 1 : 0);
}

static void test_pool_killed_queue_claimed(void **state)
{
	(void)state;
	locked_section_killed(SHM_POOL_STEP_QUEUE_CLAIMED, false);
}

static void test_pool_killed_queued(void **state)
{
	(void)state;
	locked_section_killed(SHM_POOL_STEP_QUEUED, false);
}

static void test_pool_killed_granting(void **state)
{
	(void)state;
	locked_section_killed(SHM_POOL_STEP_GRANT_TAKEN, true);
}

/*
 * Checkouts that queue racing checkins (P0/P1): processes loop checkout (queueing, then
 * polling their entry) and checkin on a pool of one. A lost wakeup leaves a waiter beside a
 * free member: its poll would spin to the deadline and the child fail.
 */
static void test_pool_race_checkin_queue(void **state)
{
	enum { NPROC = 3, ROUNDS = 2000 };
	uint64_t a[1];
	uint32_t id;
	pid_t pid[NPROC];
	struct shm_pool_info in;

	(void)state;
	id = make_pool("p", 1, 0, a);
	for (int p = 0; p < NPROC; p++) {
		pid[p] = fork_claimed();
		if (pid[p] == 0) {
			for (uint64_t r = 1; r <= ROUNDS; r++) {
				uint64_t g = 0, end = shm_now_ns() + 5000000000ull;
				uint32_t w;
				int rc = shm_pool_checkout(seg, id, 1000 + p, r, 0, true, &g, &w,
							   NULL, NULL);

				while (rc == 1) {
					if (shm_now_ns() > end)
						_exit(3);
					sched_yield();
					rc = shm_pool_wait_result(seg, id, w, r, false, &g);
				}
				if (rc || g != a[0])
					_exit(4);
				if (shm_pool_checkin(seg, id, g, NULL, NULL))
					_exit(5);
			}
			_exit(0);
		}
	}
	for (int p = 0; p < NPROC; p++)
		assert_int_equal(wait_child(pid[p], 60000), 0);
	assert_int_equal(shm_pool_read(seg, id, &in), 0);
	assert_int_equal(in.held, 0);
	assert_int_equal(in.waiting, 0);
	assert_int_equal(in.checkouts, NPROC * ROUNDS);
}

/* --- with a running instance: the supervisor's and the clients' parts --- */

static const char run_cfg[] = "[instance]\nworkers = 2\n"
			      "[pool p]\ntype = echo\nsize = 2\noverflow = 1\n";

static struct shm_pool_info run_pool(struct shm_seg *s, const char *name)
{
	struct shm_pool_info in;
	uint32_t id;

	assert_int_equal(shm_pool_find(s, name, &id), 0);
	assert_int_equal(shm_pool_read(s, id, &in), 0);
	return in;
}

/* Configured pool: members at start, a third checkout gets an overflow member, which retires
 * when checked in with nobody waiting. */
static void test_pool_run_configured_overflow(void **state)
{
	struct shoal_client *c;
	shoal_handle_t h[3];
	struct shm_seg *s;
	struct rt_run r;
	char err[256];

	(void)state;
	rt_start(&r, "t-pool", "ov", run_cfg, NULL);
	rt_wait_ready(&r);
	assert_int_equal(shoal_client_open(r.inst, &c, err, sizeof(err)), 0);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &s, err, sizeof(err)), 0);
	assert_int_equal(run_pool(s, "p").members, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(shoal_client_pool_checkout(c, "p", 0, &h[i]), 0);
	assert_true(h[0] != h[1]);
	/* none free: the supervisor starts the overflow member and it comes to us */
	assert_int_equal(shoal_client_pool_checkout(c, "p", TIMEOUT_MS, &h[2]), 0);
	assert_true(h[2] != h[0] && h[2] != h[1]);
	assert_int_equal(run_pool(s, "p").members, 3);
	/* at size + overflow: a fourth waits its timeout out */
	{
		shoal_handle_t x = 0;

		assert_int_equal(shoal_client_pool_checkout(c, "p", 50, &x), -ETIMEDOUT);
		assert_true(x == 0);
		assert_int_equal(run_pool(s, "p").waiting, 0);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(shoal_client_pool_checkin(c, "p", h[i]), 0);
	/* the overflow member retires: stopped by the supervisor */
	WAIT_FOR(s, run_pool(s, "p").members == 2);
	WAIT_FOR(s, wrk_agent_get(s, h[2]) == NULL);
	shm_seg_detach(s);
	shoal_client_close(c);
	rt_stop(&r);
}

/*
 * A client that dies holding agents: the supervisor's repair of its slot hands them to the
 * next waiter, long before that waiter's timeout; a client that closes returns them too.
 */
static void test_pool_run_holder_dies(void **state)
{
	static const char cfg[] = "[instance]\nworkers = 2\n[pool p]\ntype = echo\nsize = 2\n";
	struct shoal_client *c, *c2;
	shoal_handle_t h, h2;
	struct rt_run r;
	char err[256];
	int pfd[2];
	uint64_t t0;
	pid_t pid;

	(void)state;
	rt_start(&r, "t-pool", "die", cfg, NULL);
	rt_wait_ready(&r);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shoal_client *cc;
		shoal_handle_t a, b;

		if (shoal_client_open(r.inst, &cc, err, sizeof(err)) ||
		    shoal_client_pool_checkout(cc, "p", 0, &a) ||
		    shoal_client_pool_checkout(cc, "p", 0, &b))
			_exit(1);
		if (write(pfd[1], "x", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	assert_true(rt_fd_wait(pfd[0], TIMEOUT_MS));
	close(pfd[0]);
	assert_int_equal(shoal_client_open(r.inst, &c, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_pool_checkout(c, "p", 0, &h), -ETIMEDOUT);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	t0 = shm_now_ns();
	assert_int_equal(shoal_client_pool_checkout(c, "p", 10000, &h), 0);
	/* the client scan runs every 100 ms: well under the 10 s timeout */
	assert_true(shm_now_ns() - t0 < 5000000000ull);
	/* closing returns what it holds: a second client gets both at once */
	assert_int_equal(shoal_client_pool_checkout(c, "p", TIMEOUT_MS, &h2), 0);
	shoal_client_close(c);
	assert_int_equal(shoal_client_open(r.inst, &c2, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_pool_checkout(c2, "p", 0, &h), 0);
	assert_int_equal(shoal_client_pool_checkout(c2, "p", 0, &h2), 0);
	shoal_client_close(c2);
	rt_stop(&r);
}

/* The command: create at run time, list, check out and in. */
static void test_pool_run_cli(void **state)
{
	static const char cfg[] = "[instance]\nworkers = 1\n";
	const char *create[] = {"pool", "create", "extra", "echo", "2", "1", NULL};
	const char *list[] = {"pool", "list", NULL};
	const char *co[] = {"pool", "checkout", "extra", NULL};
	const char *co_none[] = {"pool", "checkout", "nope", NULL};
	const char *bad[] = {"pool", "create", "x", "echo", "0", NULL};
	char out[4096];
	struct rt_run r;

	(void)state;
	rt_start(&r, "t-pool", "cli", cfg, NULL);
	rt_wait_ready(&r);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), create), 0);
	assert_non_null(strstr(out, "extra: pool of 2 echo agents (+1 overflow)"));
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), create), 2);
	assert_non_null(strstr(out, "has a pool 'extra' already"));
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), list), 0);
	assert_non_null(strstr(out, "extra"));
	assert_non_null(strstr(out, "2/2+1"));
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), co), 0);
	assert_non_null(strstr(out, "extra: checked out 0x"));
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), co_none), 2);
	assert_non_null(strstr(out, "has no pool 'nope'"));
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), bad), 2);
	assert_non_null(strstr(out, "SIZE must be at least 1"));
	rt_stop(&r);
}

/* The pooler agent's account (tests/agent_plugin.c). */
struct pooler_view {
	unsigned grants, timeouts;
	int held_slot, rc;
};

static struct pooler_view pooler_ask(struct shoal_client *c, shoal_handle_t a)
{
	struct pooler_view v = {0};
	char out[64] = "";
	int n = shoal_client_call(c, a, 1, "?", 1, out, sizeof(out) - 1, TIMEOUT_MS);

	assert_true(n > 0);
	out[n] = 0;
	assert_int_equal(sscanf(out, "%u %u %d %d", &v.grants, &v.timeouts, &v.held_slot, &v.rc),
			 4);
	return v;
}

/* Until the pooler has had `grants` grants and `timeouts` timeouts (each ask is a call). */
static struct pooler_view pooler_wait(struct shoal_client *c, shoal_handle_t a, unsigned grants,
				      unsigned timeouts)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	struct pooler_view v;

	while ((v = pooler_ask(c, a)).grants < grants || v.timeouts < timeouts)
		if (shm_now_ns() > dl)
			fail_msg("the pooler has %u grants, %u timeouts; not %u, %u", v.grants,
				 v.timeouts, grants, timeouts);
	return v;
}

/*
 * An agent's checkout from its callback: queued while a client holds the only member, its
 * grant arrives as a reply when the client checks in; a second one times out (the
 * supervisor's tick); the agent's stop returns what it held.
 */
static void test_pool_run_agent_checkout(void **state)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	struct shoal_client *c;
	shoal_handle_t mine, pooler, got;
	struct pooler_view v;
	struct rt_run r;
	char cfg[1024], err[256];

	(void)state;
	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 2\n[types]\nload = %s\n[pool p]\ntype = echo\n"
		 "[agent pooler]\ntype = pooler\n",
		 lib);
	rt_start(&r, "t-pool", "agent", cfg, NULL);
	rt_wait_ready(&r);
	assert_int_equal(shoal_client_open(r.inst, &c, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_lookup(c, "pooler", &pooler), 0);
	assert_int_equal(shoal_client_pool_checkout(c, "p", 0, &mine), 0);
	assert_int_equal(shoal_client_cast(c, pooler, 1, "out p", 5, TIMEOUT_MS), 0);
	v = pooler_ask(c, pooler); /* after the cast: handled in order */
	assert_int_equal(v.rc, 1); /* queued */
	assert_int_equal(v.grants, 0);
	assert_int_equal(shoal_client_pool_checkin(c, "p", mine), 0);
	v = pooler_wait(c, pooler, 1, 0);
	assert_int_equal(v.held_slot, (int)shoal_handle_slot(mine));
	/* it holds the only one: ours times out, and so does its second checkout */
	assert_int_equal(shoal_client_pool_checkout(c, "p", 0, &got), -ETIMEDOUT);
	assert_int_equal(shoal_client_cast(c, pooler, 1, "out p", 5, TIMEOUT_MS), 0);
	v = pooler_wait(c, pooler, 1, 1);
	/* its stop returns the member */
	assert_int_equal(shoal_client_stop(c, "pooler", SHOAL_HANDLE_NONE, TIMEOUT_MS), 0);
	assert_int_equal(shoal_client_pool_checkout(c, "p", TIMEOUT_MS, &got), 0);
	assert_true(got == mine);
	shoal_client_close(c);
	rt_stop(&r);
}

/* A member stopped for good is replaced by a new agent under its name, and handed out. */
static void test_pool_run_member_replaced(void **state)
{
	static const char cfg[] = "[instance]\nworkers = 1\n[pool p]\ntype = echo\nsize = 2\n";
	struct shoal_client *c;
	shoal_handle_t a, b, old, n1, n2;
	struct rt_run r;
	char err[256];

	(void)state;
	rt_start(&r, "t-pool", "repl", cfg, NULL);
	rt_wait_ready(&r);
	assert_int_equal(shoal_client_open(r.inst, &c, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_lookup(c, "p.0", &old), 0);
	assert_int_equal(shoal_client_stop(c, "p.0", SHOAL_HANDLE_NONE, TIMEOUT_MS), 0);
	/* both members come out: the other one and p.0's replacement (the tick's work) */
	assert_int_equal(shoal_client_pool_checkout(c, "p", TIMEOUT_MS, &a), 0);
	assert_int_equal(shoal_client_pool_checkout(c, "p", TIMEOUT_MS, &b), 0);
	assert_true(a != old && b != old && a != b);
	assert_int_equal(shoal_client_lookup(c, "p.0", &n1), 0);
	assert_true(n1 == a || n1 == b);
	assert_int_equal(shoal_client_lookup(c, "p.1", &n2), 0);
	assert_true(n2 == a || n2 == b);
	shoal_client_close(c);
	rt_stop(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pool_create_find_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_checkout_checkin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_undelivered_grant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_timeout_and_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_holder_dies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_release_holder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_killed_queue_claimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_killed_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_killed_granting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_race_checkin_queue, setup, teardown),
		cmocka_unit_test_teardown(test_pool_run_configured_overflow, rt_teardown),
		cmocka_unit_test_teardown(test_pool_run_holder_dies, rt_teardown),
		cmocka_unit_test_teardown(test_pool_run_cli, rt_teardown),
		cmocka_unit_test_teardown(test_pool_run_agent_checkout, rt_teardown),
		cmocka_unit_test_teardown(test_pool_run_member_replaced, rt_teardown),
	};

	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
