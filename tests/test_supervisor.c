/*
 * test_supervisor: `shoal run` end to end, as a child process with --ready-fd: a SIGKILLed
 * worker is repaired and replaced, a crash loop exceeds the intensity, SIGTERM stops in
 * order, a SIGKILLed supervisor takes its workers with it and leaves a stale segment, a
 * memory cap exit is recorded as such, a dead client is repaired.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "ipc/ipc.h"
#include "supervisor/sup.h"
#include "shm/event.h"
#include "shm/registry.h"
#include "shm/shm.h"
#include "shm/var.h"
#include "shm/var_int.h"
#include "shoal/agent.h"

#include "tests/run_test_util.h"

/* Start `shoal run` with config (and extra, or NULL) as instance t-NAME-PID (see rt_start()). */
static void start(struct rt_run *r, const char *name, const char *config, const char *extra)
{
	rt_start(r, "t-", name, config, extra);
}

static struct shm_seg *attach(struct rt_run *r)
{
	struct shm_seg *seg;
	char err[256];

	assert_int_equal(shm_seg_attach(r->inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	return seg;
}

/*
 * The first event in seg's ring of kind about worker (-1: any) whose pid is pid (0: any);
 * false if there is none.
 */
static bool ring_find(struct shm_seg *seg, uint32_t kind, int32_t worker, pid_t pid,
		      struct shm_event *found)
{
	static struct shm_event ev[256];
	struct shm_event_scan st = {0};
	uint64_t cursor = 0;
	uint32_t got;

	while ((got = shm_event_scan(seg, &cursor, ev, 256, 0, &st)) > 0)
		for (uint32_t i = 0; i < got; i++)
			if (ev[i].kind == kind && (worker < 0 || ev[i].worker == worker) &&
			    (!pid || ev[i].pid == (uint32_t)pid)) {
				*found = ev[i];
				return true;
			}
	return false;
}

/*
 * Attach (read-only) to r's segment as soon as it is published, though the instance never
 * gets ready: the segment's creation and sizing are inotify events in /dev/shm, its
 * publication a futex wake that shm_seg_attach() waits for.
 */
static struct shm_seg *attach_when_created(struct rt_run *r)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	struct shm_seg *seg = NULL;
	char ev[4096];
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	assert_true(fd >= 0);
	assert_true(inotify_add_watch(fd, "/dev/shm", IN_CREATE | IN_MODIFY | IN_MOVED_TO) >= 0);
	for (;;) {
		uint64_t now = shm_now_ns();
		int left_ms = now < dl ? (int)((dl - now) / 1000000u) + 1 : 0;

		if (shm_seg_attach(r->inst, SHM_ATTACH_RO, left_ms, &seg, NULL, 0) == 0)
			break;
		/* not there yet, or not sized yet: the next event in /dev/shm may be it */
		if (!rt_fd_wait(fd, left_ms))
			fail_msg("timed out waiting for instance %s's segment", r->inst);
		while (read(fd, ev, sizeof(ev)) > 0)
			;
	}
	close(fd);
	return seg;
}

/* `shoal inspect --instance inst`'s output. */
static void inspect(const char *inst, char *out, size_t cap)
{
	int pfd[2], st;
	ssize_t n, got = 0;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		execl(rt_shoal_bin(), rt_shoal_bin(), "inspect", "--instance", inst, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], out + got, cap - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

static bool worker_is_up(struct shm_seg *seg, uint32_t slot, pid_t not_pid, uint32_t restarts)
{
	struct shm_proc *p = shm_proc_at(seg, slot);

	return atomic_load(&p->restarts) >= restarts &&
	       atomic_load(&p->state) == SHM_PROC_RUNNING && rt_slot_pid(seg, slot) != not_pid;
}

static shoal_handle_t lookup(struct rt_client *c, const char *name)
{
	shoal_handle_t h = SHOAL_HANDLE_NONE;

	assert_int_equal(shm_reg_lookup(c->seg, SHM_NS_DEFAULT, name, strlen(name), &h, NULL), 0);
	return h;
}

/* Wait until the supervisor's warm spare is prepared (its own futex word); its pid. */
static pid_t wait_spare_ready(struct shm_seg *seg)
{
	_Atomic uint32_t *w = &shm_hdr(seg)->spare;
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	uint32_t v;

	while (!((v = atomic_load(w)) & SHM_SPARE_READY)) {
		struct timespec ts = {0, 100000000};

		if (shm_now_ns() > dl)
			fail_msg("timed out waiting for the warm spare");
		syscall(SYS_futex, w, FUTEX_WAIT, v, &ts, NULL, 0);
	}
	return (pid_t)(v & ~SHM_SPARE_READY);
}

static const char *two_workers =
	"[instance]\nworkers = 2\nplacement = none\n"
	"[restart]\nintensity = 5\nperiod = 10\n"
	"[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 8\n"
	"[agent e]\ntype = echo\ncount = 10\nname = e-%02u\nworker = 0\n"
	"[agent c]\ntype = counter\ncount = 2\nname = c-%u\nworker = 1\n";

static void test_supervisor_worker_killed_is_replaced(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	struct shm_proc *p;
	pid_t old, other, spare;

	struct rt_client cl;
	shoal_handle_t h[10];
	char name[16];
	uint32_t old_epoch;

	(void)state;
	start(&r, "kill", two_workers, NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	rt_client_open(&cl, r.inst);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "e-%02d", i);
		h[i] = lookup(&cl, name);
		rt_expect_echo(&cl, h[i]);
	}
	old = rt_slot_pid(seg, 1);
	old_epoch = (uint32_t)atomic_load(&shm_proc_at(seg, 1)->own);
	other = rt_slot_pid(seg, 2);
	assert_true(old > 0);
	spare = wait_spare_ready(seg);
	rt_kill_and_wait(old);
	WAIT_FOR(seg, worker_is_up(seg, 1, old, 1));
	/* the warm spare took over */
	assert_int_equal(rt_slot_pid(seg, 1), spare);
	p = shm_proc_at(seg, 1);
	assert_int_equal(atomic_load_explicit(&p->last_pid, memory_order_relaxed), (uint32_t)old);
	assert_int_equal(atomic_load_explicit(&p->last_epoch, memory_order_relaxed), old_epoch);
	assert_true((uint32_t)atomic_load(&p->own) != old_epoch);
	assert_int_equal(atomic_load_explicit(&p->last_signal, memory_order_relaxed), SIGKILL);
	assert_int_equal(atomic_load_explicit(&p->last_reason, memory_order_relaxed),
			 SHM_EXIT_SIGNAL);
	assert_true(atomic_load_explicit(&p->last_exit_ns, memory_order_relaxed) > 0);
	assert_true(atomic_load(&p->repair_gen) >= 1);
	/* and the segment's exit log has it */
	{
		struct shm_exit_rec ex[SHM_EXIT_LOG];
		uint32_t n = shm_exit_log_read(seg, ex, SHM_EXIT_LOG, NULL), found = 0;

		for (uint32_t i = 0; i < n; i++)
			found += ex[i].slot == 1 && ex[i].pid == (uint32_t)old &&
				 ex[i].epoch == old_epoch && ex[i].signal == SIGKILL &&
				 ex[i].reason == SHM_EXIT_SIGNAL && ex[i].role == SHM_ROLE_WORKER;
		assert_int_equal(found, 1);
	}
	/*
	 * the replacement's death word is armed: its pid, and the waiters bit the kernel needs
	 * to wake the supervisor when it dies (a forked replacement can be RUNNING before the
	 * supervisor, back from fork(), arms it)
	 */
	WAIT_FOR(seg, atomic_load(&p->death_word) == ((uint32_t)rt_slot_pid(seg, 1) | 0x80000000u));
	/*
	 * a spare that took over starts at SCHED_FIFO while its predecessor tears down on the
	 * same core; once that exit is complete (rt_kill_and_wait saw it) the supervisor sets
	 * it back: no worker is left real-time
	 */
	WAIT_FOR(seg, sched_getscheduler(rt_slot_pid(seg, 1)) == SCHED_OTHER);
	/* and inspect names a worker left at SCHED_FIFO (here set by hand, if we may) */
	{
		struct sched_param sp = {.sched_priority = 1};
		pid_t wp = rt_slot_pid(seg, 1);
		static char out[1 << 15];
		char want[64];

		if (sched_setscheduler(wp, SCHED_FIFO, &sp) == 0) {
			inspect(r.inst, out, sizeof(out));
			sp.sched_priority = 0;
			assert_int_equal(sched_setscheduler(wp, SCHED_OTHER, &sp), 0);
			snprintf(want, sizeof(want), "worker slot 1 (pid %d) runs at SCHED_FIFO",
				 (int)wp);
			if (!strstr(out, want))
				fail_msg("inspect said: %s", out);
			inspect(r.inst, out, sizeof(out));
			assert_null(strstr(out, "runs at SCHED_FIFO"));
		} else {
			fprintf(stderr, "inspect's SCHED_FIFO note not checked: %s\n",
				strerror(errno));
		}
	}
	/* one_for_one: the other worker was left alone */
	assert_int_equal(rt_slot_pid(seg, 2), other);
	assert_int_equal(atomic_load(&shm_proc_at(seg, 2)->restarts), 0);
	/* its agents were restarted on the replacement, same slots */
	for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_agents; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);

		if (atomic_load(&a->worker) == 2)
			WAIT_FOR(seg, atomic_load(&a->state) == SHM_AGENT_RUNNING);
	}
	/* same names, same handles, answering again */
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "e-%02d", i);
		assert_int_equal(lookup(&cl, name), h[i]);
		rt_expect_echo(&cl, h[i]);
	}
	rt_client_close(&cl);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/* Wait until the warm spare is prepared and is not pid `not`; its pid. */
static pid_t wait_other_spare(struct shm_seg *seg, pid_t not )
{
	_Atomic uint32_t *w = &shm_hdr(seg)->spare;
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	uint32_t v;

	while (!((v = atomic_load(w)) & SHM_SPARE_READY) || (pid_t)(v & ~SHM_SPARE_READY) == not ) {
		struct timespec ts = {0, 100000000};

		if (shm_now_ns() > dl)
			fail_msg("timed out waiting for a warm spare other than pid %d (word %#x)",
				 (int)not, v);
		syscall(SYS_futex, w, FUTEX_WAIT, v, &ts, NULL, 0);
	}
	return (pid_t)(v & ~SHM_SPARE_READY);
}

/*
 * A warm spare killed while it waits is reaped (no zombie), replaced by a new one, and the
 * next restart uses that one; the header never names the dead one once it is replaced.
 */
static void test_supervisor_spare_killed_is_replaced(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	pid_t spare, next, old;
	char path[64];

	(void)state;
	start(&r, "sparekill", two_workers, NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	spare = wait_spare_ready(seg);
	rt_kill_and_wait(spare); /* our pidfd fires when it exits: a zombie until reaped */
	next = wait_other_spare(seg, spare);
	/* the supervisor reaped the old one: its /proc entry is gone */
	snprintf(path, sizeof(path), "/proc/%d", (int)spare);
	WAIT_FOR(seg, access(path, F_OK) != 0);
	rt_wait_err(&r, "warm spare");
	/* the next restart takes the new spare */
	old = rt_slot_pid(seg, 1);
	rt_kill_and_wait(old);
	WAIT_FOR(seg, worker_is_up(seg, 1, old, 1));
	assert_int_equal(rt_slot_pid(seg, 1), next);
	/* the spare's death is no worker's: nothing counted against the restart intensity */
	assert_int_equal(atomic_load(&shm_proc_at(seg, 1)->restarts), 1);
	assert_int_equal(atomic_load(&shm_proc_at(seg, 2)->restarts), 0);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * A stopped warm spare (SIGSTOP) is not handed a worker: the supervisor finds it stopped at
 * hand-over, drops it and forks the replacement, so the restart costs no more than a cold
 * fork and no second death is counted (ready_timeout is longer than the test's wait).
 */
static void test_supervisor_stopped_spare_not_used(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	struct shm_proc *p;
	pid_t spare, old;

	(void)state;
	start(&r, "sparestop",
	      "[instance]\nworkers = 2\nplacement = none\nready_timeout = 60\n"
	      "[restart]\nintensity = 5\nperiod = 10\n"
	      "[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 8\n"
	      "[agent e]\ntype = echo\ncount = 10\nname = e-%02u\nworker = 0\n",
	      NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	spare = wait_spare_ready(seg);
	assert_int_equal(kill(spare, SIGSTOP), 0);
	/* stopped for sure before the worker dies */
	rt_wait_pid_state(spare, 'T');
	{
		static char out[1 << 15];
		char want[96];

		inspect(r.inst, out, sizeof(out));
		snprintf(want, sizeof(want), "warm spare     pid %d, ready, but stopped",
			 (int)spare);
		if (!strstr(out, want))
			fail_msg("inspect said: %s", out);
	}
	old = rt_slot_pid(seg, 1);
	rt_kill_and_wait(old);
	WAIT_FOR(seg, worker_is_up(seg, 1, old, 1));
	assert_true(rt_slot_pid(seg, 1) != spare);
	p = shm_proc_at(seg, 1);
	assert_int_equal(atomic_load(&p->restarts), 1);
	assert_int_equal(atomic_load_explicit(&p->last_pid, memory_order_relaxed), (uint32_t)old);
	rt_wait_err(&r, "stopped");
	/* the stopped spare was dropped and another prepared */
	wait_other_spare(seg, spare);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * A restart after a backoff (here the first of a streak, with backoff_first) finds its
 * predecessor long gone: the spare taking over is not boosted to SCHED_FIFO, which is only
 * for sharing the core with a predecessor still exiting (it kept the boost for a second).
 */
static void test_supervisor_no_boost_after_backoff(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	pid_t spare, old;

	(void)state;
	start(&r, "noboost",
	      "[instance]\nworkers = 1\nplacement = none\n"
	      "[restart]\nintensity = 5\nperiod = 10\nbackoff_first = yes\n"
	      "backoff_initial = 200ms\n"
	      "[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 8\n"
	      "[agent e]\ntype = echo\ncount = 2\nname = e-%02u\nworker = 0\n",
	      NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	spare = wait_spare_ready(seg);
	old = rt_slot_pid(seg, 1);
	rt_kill_and_wait(old);
	WAIT_FOR(seg, worker_is_up(seg, 1, old, 1));
	assert_int_equal(rt_slot_pid(seg, 1), spare);
	assert_int_equal(sched_getscheduler(spare), SCHED_OTHER);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * Without a warm spare the replacement is forked; it too starts at SCHED_FIFO while its
 * predecessor exits, and is set back once that exit is complete.
 */
static void test_supervisor_forked_replacement_back_to_fair(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	pid_t old;

	(void)state;
	start(&r, "fork",
	      "[instance]\nworkers = 1\nplacement = none\nspare = no\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
	      "[agent e]\ntype = echo\nname = e\n",
	      NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	old = rt_slot_pid(seg, 1);
	rt_kill_and_wait(old);
	WAIT_FOR(seg, worker_is_up(seg, 1, old, 1));
	WAIT_FOR(seg, sched_getscheduler(rt_slot_pid(seg, 1)) == SCHED_OTHER);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

static void test_supervisor_one_for_all_restarts_every_worker(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	pid_t old1, old2;
	char cfg[1024];

	(void)state;
	/* two_workers with its [restart] section saying one_for_all (a section appears once) */
	snprintf(cfg, sizeof(cfg), "%.*sstrategy = one_for_all\n%s",
		 (int)(strstr(two_workers, "[restart]\n") + 10 - two_workers), two_workers,
		 strstr(two_workers, "[restart]\n") + 10);
	start(&r, "all", cfg, NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	old1 = rt_slot_pid(seg, 1);
	old2 = rt_slot_pid(seg, 2);
	rt_kill_and_wait(old1);
	WAIT_FOR(seg, worker_is_up(seg, 1, old1, 1));
	WAIT_FOR(seg, worker_is_up(seg, 2, old2, 1));
	assert_int_equal(
		atomic_load_explicit(&shm_proc_at(seg, 2)->last_reason, memory_order_relaxed),
		SHM_EXIT_NORMAL);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

static void test_supervisor_intensity_exceeded(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	struct shm_event e;
	char err[4096];

	(void)state;
	need_test_hooks();
	setenv("SHOAL_TEST_WORKER_EXIT", "1:7", 1);
	start(&r, "loop",
	      "[instance]\nworkers = 2\nplacement = none\n"
	      "[restart]\nintensity = 3\nperiod = 30\nbackoff_initial = 1ms\nbackoff_max = 4ms\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 8\n",
	      NULL);
	unsetenv("SHOAL_TEST_WORKER_EXIT");
	/* mapped before the stop removes it: the ring outlives the name */
	seg = attach_when_created(&r);
	assert_int_equal(rt_wait_exit(&r), 1);
	rt_read_err(&r, err, sizeof(err));
	if (!strstr(err, "worker 1 ") || !strstr(err, "intensity exceeded") ||
	    !strstr(err, "exited with code 7"))
		fail_msg("stderr: %s", err);
	/* stopped cleanly: the segment is gone */
	assert_int_equal(shm_seg_unlink(r.inst), -ENOENT);
	/* the ring: worker 1's exits (code 7) and the intensity tripping, on worker 1 */
	assert_true(ring_find(seg, SHM_EV_WORKER_CRASH, 1, 0, &e));
	assert_int_equal(e.code, 7);
	assert_int_equal(e.reason, SHM_EXIT_CODE);
	assert_true(ring_find(seg, SHM_EV_INTENSITY, 1, 0, &e));
	shm_seg_detach(seg);
	rt_cleanup(&r);
}

/* A worker slot waiting out its backoff reads EXITED: a client must not take it. */
static void test_supervisor_client_never_takes_a_worker_slot(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	struct rt_client cl;
	struct shm_proc *p;

	(void)state;
	need_test_hooks();
	setenv("SHOAL_TEST_WORKER_EXIT", "1:5", 1);
	start(&r, "slot",
	      "[instance]\nworkers = 2\nplacement = none\n"
	      "[restart]\nbackoff_first = true\nbackoff_initial = 60\nbackoff_max = 60\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 8\n",
	      NULL);
	unsetenv("SHOAL_TEST_WORKER_EXIT");
	/* not ready (worker 1 never is): wait for the segment, then for worker 1's exit */
	seg = attach_when_created(&r);
	p = shm_proc_at(seg, 2);
	WAIT_FOR(seg,
		 atomic_load_explicit(&p->last_reason, memory_order_relaxed) == SHM_EXIT_CODE &&
			 atomic_load(&p->state) == SHM_PROC_EXITED);
	assert_int_equal(atomic_load_explicit(&p->last_code, memory_order_relaxed), 5);
	rt_client_open(&cl, r.inst);
	assert_true(cl.seg->self >= 3);
	rt_client_close(&cl);
	assert_int_equal(atomic_load(&p->state), SHM_PROC_EXITED);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/* The number of wake FIFOs (the fd wake path's) of instance inst in /dev/shm. */
static int count_wake_fifos(const char *inst)
{
	char prefix[96];
	struct dirent *de;
	DIR *d = opendir("/dev/shm");
	int n = 0;

	assert_non_null(d);
	snprintf(prefix, sizeof(prefix), "shoal.%s:wake.", inst);
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/* An orderly stop removes the segment, and the wake FIFOs of the instance's processes. */
static void test_supervisor_sigterm_removes_segment(void **state)
{
	struct rt_run r;
	char path[96];

	(void)state;
	setenv("SHOAL_WAKE", "fifo", 1);
	start(&r, "term", two_workers, NULL);
	unsetenv("SHOAL_WAKE");
	rt_wait_ready(&r);
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s", r.inst);
	assert_int_equal(access(path, F_OK), 0);
	assert_true(count_wake_fifos(r.inst) >= 2); /* the workers' */
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(count_wake_fifos(r.inst), 0);
	rt_cleanup(&r);
}

/*
 * Signals whose default action would kill the supervisor without its orderly stop are
 * handled: each is logged by name and the instance goes on; SIGUSR1 prints the status line.
 * SIGQUIT, like SIGTERM, stops in order.
 */
static void test_supervisor_stray_signals_handled(void **state)
{
	static const int sigs[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,
				   SIGIO,  SIGPWR,  SIGXCPU, SIGXFSZ, SIGSTKFLT};
	char want[64];
	struct rt_run r;

	(void)state;
	start(&r, "sigs", two_workers, NULL);
	rt_wait_ready(&r);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		assert_int_equal(kill(r.pid, sigs[i]), 0);
		snprintf(want, sizeof(want), "received SIG%s", sigabbrev_np(sigs[i]));
		rt_wait_err(&r, want);
	}
	/* a real-time signal, too: their default action is to terminate */
	assert_int_equal(kill(r.pid, SIGRTMIN + 5), 0);
	snprintf(want, sizeof(want), "received signal %d", SIGRTMIN + 5);
	rt_wait_err(&r, want);
	assert_false(rt_fd_wait(r.pidfd, 0));
	kill(r.pid, SIGQUIT);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * SIGTERM is an orderly stop: every agent's terminate runs (SHOAL_TERM_STOP) before its
 * worker exits, on every worker, and then the segment goes.
 */
static void test_supervisor_sigterm_runs_terminate(void **state)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	char cfg[1024], log[96], path[96], buf[4096] = "", line[32];
	uint32_t slots[8], n = 0;
	struct shm_seg *seg;
	struct rt_run r;
	ssize_t len;
	int fd;

	(void)state;
	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(log, sizeof(log), "/tmp/shoal-test-term-%d.log", (int)getpid());
	unlink(log);
	setenv("SHOAL_TEST_TERMINATE_LOG", log, 1);
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 2\nplacement = none\n[types]\nload = %s\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 8\n"
		 "[agent a]\ntype = upper\ncount = 3\nname = a-%%u\nworker = 0\n"
		 "[agent b]\ntype = upper\ncount = 3\nname = b-%%u\nworker = 1\n",
		 lib);
	start(&r, "termcb", cfg, NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	for (uint32_t i = 0; i < 6; i++) {
		shoal_handle_t h;

		snprintf(line, sizeof(line), "%c-%u", i < 3 ? 'a' : 'b', i % 3);
		assert_int_equal(shm_reg_lookup(seg, 0, line, strlen(line), &h, NULL), 0);
		slots[i] = shoal_handle_slot(h);
	}
	shm_seg_detach(seg);
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s", r.inst);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	unsetenv("SHOAL_TEST_TERMINATE_LOG");
	assert_int_equal(access(path, F_OK), -1);
	fd = open(log, O_RDONLY);
	assert_true(fd >= 0);
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(log);
	assert_true(len > 0);
	/* one line per agent, each with reason SHOAL_TERM_STOP, nothing else */
	for (char *p = buf; *p; n++) {
		unsigned slot;
		int reason, used = 0;

		if (sscanf(p, "terminate %u %d\n%n", &slot, &reason, &used) != 2 || !used)
			fail_msg("terminate log: %s", buf);
		assert_int_equal(reason, SHOAL_TERM_STOP);
		for (uint32_t i = 0; i < 6; i++)
			if (slots[i] == slot)
				slots[i] = UINT32_MAX; /* seen once */
		p += used;
	}
	assert_int_equal(n, 6);
	for (uint32_t i = 0; i < 6; i++)
		assert_int_equal(slots[i], UINT32_MAX);
	rt_cleanup(&r);
}

static void test_supervisor_sigterm_keep(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;

	struct rt_client cl;
	shoal_handle_t e;
	pid_t pid[3];

	(void)state;
	start(&r, "keep", two_workers, "--keep");
	rt_wait_ready(&r);
	seg = attach(&r);
	pid[1] = rt_slot_pid(seg, 1);
	pid[2] = rt_slot_pid(seg, 2);
	shm_seg_detach(seg);
	/* work for worker 0 just before the stop: 100 casts, then a call (all handled) */
	rt_client_open(&cl, r.inst);
	e = lookup(&cl, "e-00");
	for (int i = 0; i < 100; i++)
		assert_int_equal(ipc_send(cl.seg, e, cl.inbox, 1, 0, 0, "x", 1, TIMEOUT_MS), 0);
	rt_expect_echo(&cl, e);
	rt_client_close(&cl);
	kill(r.pid, SIGINT);
	assert_int_equal(rt_wait_exit(&r), 0);
	seg = attach(&r);
	assert_int_equal(atomic_load(&shm_hdr(seg)->state), SHM_INST_STOPPED);
	assert_int_equal(shm_seg_liveness(seg, 0), SHM_LIVE_STOPPED);
	for (uint32_t s = 1; s <= 2; s++) {
		struct shm_telem t;

		assert_int_equal(atomic_load(&shm_proc_at(seg, s)->state), SHM_PROC_EXITED);
		assert_int_equal(atomic_load_explicit(&shm_proc_at(seg, s)->last_reason,
						      memory_order_relaxed),
				 SHM_EXIT_NORMAL);
		assert_int_equal(
			atomic_load_explicit(&shm_proc_at(seg, s)->last_code, memory_order_relaxed),
			0);
		/* the final telemetry flush: well inside the periodic one's second */
		assert_int_equal(shm_telem_read(seg, s, &t), 0);
		assert_int_equal(t.final, 1);
		assert_int_equal(t.pid, (uint32_t)pid[s]);
		assert_true(t.flushes >= 1);
		if (s == 1)
			assert_true(t.handled >= 101 && t.rounds >= 1);
	}
	shm_seg_detach(seg);
	rt_cleanup(&r);
}

static void test_supervisor_killed_leaves_stale_segment(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	int fds[2];
	char out[8192] = "";

	(void)state;
	setenv("SHOAL_WAKE", "fifo", 1);
	start(&r, "supkill", two_workers, NULL);
	unsetenv("SHOAL_WAKE");
	rt_wait_ready(&r);
	seg = attach(&r);
	fds[0] = rt_pidfd_open(rt_slot_pid(seg, 1));
	fds[1] = rt_pidfd_open(rt_slot_pid(seg, 2));
	assert_true(fds[0] >= 0 && fds[1] >= 0);
	kill(r.pid, SIGKILL);
	assert_int_equal(rt_wait_exit(&r), -SIGKILL);
	/* PR_SET_PDEATHSIG: the workers die with their supervisor */
	assert_true(rt_fd_wait(fds[0], TIMEOUT_MS));
	assert_true(rt_fd_wait(fds[1], TIMEOUT_MS));
	close(fds[0]);
	close(fds[1]);
	/* ... marking the segment supervisor-dead on their way out */
	assert_int_equal(atomic_load(&shm_hdr(seg)->state), SHM_INST_SUP_DEAD);
	assert_int_equal(shm_seg_liveness(seg, 0), SHM_LIVE_STOPPED);
	shm_seg_detach(seg);
	/* the tool says so */
	inspect(r.inst, out, sizeof(out));
	if (!strstr(out, "supervisor-dead"))
		fail_msg("inspect said: %s", out);
	/* clean throws it away and says what: two_workers has 12 agents (10 echo, 2 counters) */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"clean", NULL}), 0);
	if (!strstr(out, "threw away 12 agents, 0 queued messages"))
		fail_msg("clean said: %s", out);
	/* and the wake FIFOs its killed workers left */
	assert_int_equal(count_wake_fifos(r.inst), 0);
	rt_cleanup(&r);
}

/*
 * A supervisor SIGKILLed under a steady flow of casts: `shoal run` on the same config adopts
 * its segment (same handles and names, queued messages, checkpoints) and restarts the
 * workers and their agents as if each had crashed. The counter agent checkpoints its count
 * with every message: after the adoption it has counted every acknowledged cast (those
 * queued while no worker ran included), at most once more for a redelivered one.
 */
static void test_supervisor_adopts_dead_supervisors_segment(void **state)
{
	static const char *cfg = "[instance]\nworkers = 2\nplacement = none\n"
				 "[segment]\nmax_agents = 64\nregistry_capacity = 256\n"
				 "max_procs = 8\n"
				 "[agent c]\ntype = counter\ncount = 1\nname = c-%u\nworker = 1\n"
				 "[agent e]\ntype = echo\ncount = 2\nname = e-%u\nworker = 0\n";
	const uint64_t total = 20000;
	_Atomic uint64_t *acked = mmap(NULL, sizeof(*acked), PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct rt_client cl;
	struct rt_run r;
	shoal_handle_t hc, he;
	uint64_t count, redelivered;
	char reply[64] = "";
	pid_t flow;
	int n, st;

	(void)state;
	assert_true(acked != MAP_FAILED);
	start(&r, "adopt", cfg, NULL);
	rt_wait_ready(&r);
	rt_client_open(&cl, r.inst);
	hc = lookup(&cl, "c-0");
	he = lookup(&cl, "e-0");
	flow = fork();
	assert_true(flow >= 0);
	if (flow == 0) {
		struct rt_client fc;
		uint64_t dl = shm_now_ns() + 60000000000ull;

		rt_client_open(&fc, r.inst);
		for (uint64_t i = 0; i < total;) {
			int rc = ipc_send(fc.seg, hc, SHOAL_HANDLE_NONE, 1, 0, 0, "x", 1, 0);

			if (rc == -EAGAIN) {
				/* full while no worker runs: the adopted instance drains it */
				if (shm_now_ns() > dl)
					_exit(2);
				sched_yield();
				continue;
			}
			if (rc)
				_exit(3);
			atomic_store(acked, ++i);
		}
		_exit(0);
	}
	/* mid-flow: the supervisor dies (and its workers with it) */
	{
		uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;

		while (atomic_load(acked) < total / 4) {
			if (shm_now_ns() > dl)
				fail_msg("the flow of casts did not start");
			sched_yield();
		}
	}
	kill(r.pid, SIGKILL);
	assert_int_equal(rt_wait_exit(&r), -SIGKILL);
	rt_client_close(&cl);
	/* the same config, the same instance: adopted, not refused */
	rt_start_on(&r, "t-", "adopt", cfg, NULL, false);
	rt_wait_ready(&r);
	rt_wait_err(&r, "adopted");
	assert_int_equal(waitpid(flow, &st, 0), flow);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	rt_client_open(&cl, r.inst);
	/* the same handles */
	assert_int_equal(lookup(&cl, "c-0"), hc);
	assert_int_equal(lookup(&cl, "e-0"), he);
	rt_expect_echo(&cl, he);
	/* a call queues behind every cast: its answer counts them all */
	n = ipc_call(cl.seg, cl.w, cl.inbox, hc, 1, "?", 1, reply, sizeof(reply) - 1, TIMEOUT_MS);
	assert_true(n > 0);
	reply[n] = 0;
	assert_int_equal(sscanf(reply, "%" SCNu64 " %" SCNu64, &count, &redelivered), 2);
	if (count < total || count > total + redelivered)
		fail_msg("counted %" PRIu64 " of %" PRIu64 " acknowledged casts (%" PRIu64
			 " redelivered)",
			 count, total, redelivered);
	print_message("adopted: %" PRIu64 " acknowledged casts counted as %" PRIu64 " (%" PRIu64
		      " redelivered)\n",
		      total, count, redelivered);
	rt_client_close(&cl);
	munmap(acked, sizeof(*acked));
	rt_stop(&r);
}

/*
 * A dead supervisor's segment is adopted only by a configuration of the same geometry: another
 * one is refused (exit 2, naming the key and both values) and the segment is left as it was.
 */
static void test_supervisor_adopt_refuses_other_geometry(void **state)
{
	static const char *other = "[instance]\nworkers = 2\nplacement = none\n"
				   "[segment]\nmax_agents = 32\nregistry_capacity = 128\n"
				   "max_procs = 8\n";
	struct rt_run r;
	char out[8192], path[96];

	(void)state;
	start(&r, "adoptgeo", two_workers, NULL);
	rt_wait_ready(&r);
	kill(r.pid, SIGKILL);
	assert_int_equal(rt_wait_exit(&r), -SIGKILL);
	rt_start_on(&r, "t-", "adoptgeo", other, NULL, false);
	assert_int_equal(rt_wait_exit(&r), 2);
	rt_read_err(&r, out, sizeof(out));
	if (!strstr(out, "max_agents = 64 where this configuration has 32"))
		fail_msg("run said: %s", out);
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s", r.inst);
	assert_int_equal(access(path, F_OK), 0);
	rt_cleanup(&r);
}

static char *asan_allow_null(void);
static void asan_restore(char *saved);

static void test_supervisor_memory_cap_rlimit(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	struct shm_proc *p;
	char *saved, out[8192];

	(void)state;
	need_test_hooks(); /* before anything it would have to undo */
	saved = asan_allow_null();
	setenv("SHOAL_TEST_WORKER_ALLOC", "0", 1);
	start(&r, "cap",
	      "[instance]\nworkers = 1\nplacement = none\n[memory]\ncap = 192M\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 4\n",
	      NULL);
	unsetenv("SHOAL_TEST_WORKER_ALLOC");
	asan_restore(saved);
	rt_wait_ready(&r);
	seg = attach(&r);
	p = shm_proc_at(seg, 1);
	WAIT_FOR(seg, worker_is_up(seg, 1, 0, 1));
	assert_int_equal(atomic_load_explicit(&p->last_reason, memory_order_relaxed),
			 SHM_EXIT_MEMCAP);
	assert_int_equal(atomic_load_explicit(&p->last_code, memory_order_relaxed), 86);
	assert_string_equal(
		shm_exit_reason_name(atomic_load_explicit(&p->last_reason, memory_order_relaxed)),
		"memory cap");
	WAIT_FOR(seg, atomic_load_explicit(&p->cap_mech, memory_order_relaxed) == 1);
	assert_int_equal(atomic_load_explicit(&p->mem_cap, memory_order_relaxed), 192ull << 20);
	/* the tools show which mechanism caps it */
	inspect(r.inst, out, sizeof(out));
	if (!strstr(out, "rlimit 192M") || !strstr(out, "memory cap (code 86"))
		fail_msg("inspect said: %s", out);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/* ASan must let an allocation past the cap fail (the worker then exits 86), not abort. */
static char *asan_allow_null(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char *saved = old ? strdup(old) : NULL, buf[512];

	snprintf(buf, sizeof(buf), "%s%sallocator_may_return_null=1", old ? old : "",
		 old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
	return saved;
}

static void asan_restore(char *saved)
{
	if (saved)
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(saved);
}

/* The hog agent allocates past its worker's cap: the worker exits, recorded "memory cap". */
/*
 * Drive instance r's "hog" agent (one worker, a memory cap of mechanism mech: 1 rlimit, 2
 * cgroup v2) 16 MiB per call until its worker dies under the cap and is replaced: recorded
 * as "memory cap", with exit code `code` (>= 0) or signal `sig`; then the echo agent "e"
 * on the replacement answers. A call that crossed the cap is redelivered to the fresh
 * replacement, which has room, and answers.
 */
static void hog_past_cap(struct rt_run *r, uint32_t mech, int code, int sig)
{
	struct shm_seg *seg = attach(r);
	struct shm_proc *p = shm_proc_at(seg, 1);
	pid_t old = rt_slot_pid(seg, 1);
	struct rt_client cl;
	shoal_handle_t hog;

	assert_int_equal(atomic_load_explicit(&p->cap_mech, memory_order_relaxed), mech);
	rt_client_open(&cl, r->inst);
	hog = lookup(&cl, "hog");
	for (int i = 0; i < 64 && !atomic_load(&p->restarts); i++) {
		char reply[8];

		assert_true(ipc_call(cl.seg, cl.w, cl.inbox, hog, 1, "16", 2, reply, sizeof(reply),
				     TIMEOUT_MS) >= 0);
	}
	WAIT_FOR(seg, worker_is_up(seg, 1, old, 1));
	assert_int_equal(atomic_load_explicit(&p->last_reason, memory_order_relaxed),
			 SHM_EXIT_MEMCAP);
	if (code >= 0)
		assert_int_equal(atomic_load_explicit(&p->last_code, memory_order_relaxed), code);
	else
		assert_int_equal(atomic_load_explicit(&p->last_signal, memory_order_relaxed), sig);
	/* the ring says the cap stopped it (not a plain crash) */
	{
		struct shm_event e;

		assert_true(ring_find(seg, SHM_EV_MEMCAP, 0, old, &e));
		assert_int_equal(e.reason, SHM_EXIT_MEMCAP);
		assert_false(ring_find(seg, SHM_EV_WORKER_CRASH, 0, old, &e));
	}
	/* the instance carries on */
	rt_expect_echo(&cl, lookup(&cl, "e"));
	rt_client_close(&cl);
	shm_seg_detach(seg);
	kill(r->pid, SIGTERM);
	assert_int_equal(rt_wait_exit(r), 0);
	rt_cleanup(r);
}

/*
 * The cgroup v2 cap, for real: a worker whose agent allocates past memory.max is killed by
 * the kernel's OOM killer, recorded as "memory cap" (memory.events), and replaced. Needs a
 * delegated cgroup v2 directory with the memory controller enabled for its children, named
 * by SHOAL_TEST_CGROUP: this machine has none (no memory controller), and
 * `scripts/test.sh --qemu` makes one in its guest.
 */
static void test_supervisor_memory_cap_cgroup(void **state)
{
	const char *cg = getenv("SHOAL_TEST_CGROUP");
	struct rt_run r;
	char cfg[1024];

	(void)state;
	if (!cg)
		skip_because("SHOAL_TEST_CGROUP names no delegated cgroup v2 directory "
			     "(scripts/test.sh --qemu runs this in a guest that has one)");
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 1\nplacement = none\n[memory]\ncap = 96M\ncgroup = %s\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
		 "[agent hog]\ntype = hog\n[agent e]\ntype = echo\n",
		 cg);
	start(&r, "cgcap", cfg, NULL);
	rt_wait_ready(&r);
	/* the worker samples its cgroup's memory.current into its telemetry */
	{
		struct shm_seg *seg = attach(&r);
		struct shm_telem t = {0};
		uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;

		while (shm_telem_read(seg, 1, &t) || !t.flushes) {
			uint32_t c = shm_change_read(seg);
			uint64_t next = shm_now_ns() + 20000000u;

			if (shm_now_ns() >= dl)
				fail_msg("worker 0 never flushed its telemetry");
			shm_change_wait(seg, c, next < dl ? next : dl);
		}
		assert_true(t.cg_memory_bytes > 0);
		shm_seg_detach(seg);
	}
	/* the kernel's OOM killer ends it: SIGKILL, told apart by memory.events */
	hog_past_cap(&r, 2, -1, SIGKILL);
}

static void test_supervisor_memory_cap_hog_agent(void **state)
{
	struct rt_run r;
	char *saved;

	(void)state;
#ifdef __SANITIZE_ADDRESS__
	/*
	 * ASan's reserved shadow and allocator regions count as private data, so under
	 * RLIMIT_DATA every new mapping fails and no worker can allocate at all: skip.
	 */
	skip_because("under ASan, RLIMIT_DATA leaves a worker unable to allocate anything");
#endif
	saved = asan_allow_null();
	start(&r, "hog",
	      "[instance]\nworkers = 1\nplacement = none\n[memory]\ncap = 192M\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
	      "[agent hog]\ntype = hog\n[agent e]\ntype = echo\n",
	      NULL);
	asan_restore(saved);
	rt_wait_ready(&r);
	/* an allocation failure under RLIMIT_DATA: the worker exits WRK_EXIT_MEMCAP (86) */
	hog_past_cap(&r, 1, 86, 0);
}

/*
 * A callback that never returns: the worker's heartbeat goes stale, the supervisor kills it
 * (reason "hang") and restarts it; the call that hung it is redelivered to the replacement,
 * which answers it, and the other agent answers again.
 */
static void test_supervisor_hang_is_killed(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	struct shm_proc *p;
	struct rt_client cl;
	char reply[8] = "", err[4096];
	pid_t old;

	(void)state;
	start(&r, "hang",
	      "[instance]\nworkers = 1\nplacement = none\n[restart]\nhang_timeout = 300ms\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
	      "[agent c]\ntype = crasher\n[agent e]\ntype = echo\n",
	      NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	p = shm_proc_at(seg, 1);
	old = rt_slot_pid(seg, 1);
	rt_client_open(&cl, r.inst);
	assert_int_equal(ipc_call(cl.seg, cl.w, cl.inbox, lookup(&cl, "c"), 1, "hang", 4, reply,
				  sizeof(reply), TIMEOUT_MS),
			 4);
	assert_memory_equal(reply, "hang", 4);
	WAIT_FOR(seg, worker_is_up(seg, 1, old, 1));
	assert_int_equal(atomic_load_explicit(&p->last_pid, memory_order_relaxed), (uint32_t)old);
	assert_int_equal(atomic_load_explicit(&p->last_reason, memory_order_relaxed),
			 SHM_EXIT_HANG);
	assert_int_equal(atomic_load_explicit(&p->last_signal, memory_order_relaxed), SIGKILL);
	assert_string_equal(
		shm_exit_reason_name(atomic_load_explicit(&p->last_reason, memory_order_relaxed)),
		"hang");
	rt_expect_echo(&cl, lookup(&cl, "e"));
	rt_read_err(&r, err, sizeof(err));
	if (!strstr(err, "no heartbeat for"))
		fail_msg("the supervisor said: %s", err);
	/* the ring: the hang detected, then the exit it caused (reason hang) */
	{
		struct shm_event hang, crash;

		assert_true(ring_find(seg, SHM_EV_HANG, 0, old, &hang));
		assert_true(hang.code >= 300);
		assert_true(ring_find(seg, SHM_EV_WORKER_CRASH, 0, old, &crash));
		assert_int_equal(crash.reason, SHM_EXIT_HANG);
		assert_int_equal(crash.signal, SIGKILL);
		assert_true(atomic_load(&crash.seq) > atomic_load(&hang.seq));
	}
	rt_client_close(&cl);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * A poison message: a cast that crashes its worker every time it is handled. It is
 * redelivered (flagged) to each replacement until IPC_POISON_MAX workers died on it, then
 * dropped and counted; the agent carries on and answers.
 */
static void test_supervisor_poison_message_dropped(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	struct shm_proc *p;
	struct rt_client cl;
	struct ipc_mbox_stats st;
	shoal_handle_t c;
	/* room for three crash reports when the workers run under ASan */
	static char err[1 << 16];
	char reply[8] = "";

	(void)state;
	start(&r, "poison",
	      "[instance]\nworkers = 1\nplacement = none\n[restart]\nintensity = 10\nperiod = 30\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
	      "[agent c]\ntype = crasher\n",
	      NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	p = shm_proc_at(seg, 1);
	rt_client_open(&cl, r.inst);
	c = lookup(&cl, "c");
	assert_int_equal(ipc_send(cl.seg, c, cl.inbox, 1, 0, 0, "segv", 4, TIMEOUT_MS), 0);
	/* answered only once the poison is gone: calls queue behind it */
	assert_int_equal(
		ipc_call(cl.seg, cl.w, cl.inbox, c, 1, "ping", 4, reply, sizeof(reply), TIMEOUT_MS),
		4);
	assert_memory_equal(reply, "ping", 4);
	assert_int_equal(atomic_load(&p->restarts), IPC_POISON_MAX);
	ipc_mbox_stats(seg, shoal_handle_slot(c), &st);
	assert_int_equal(st.poisoned, 1);
	assert_int_equal(st.redelivered, IPC_POISON_MAX);
	rt_read_err(&r, err, sizeof(err));
	if (!strstr(err, "dropped a message"))
		fail_msg("the instance said: %s", err);
	/* the tools show it: the agent's line in inspect ends with its poisoned count */
	inspect(r.inst, err, sizeof(err));
	{
		char *line = strstr(err, " crasher ");
		char *end = line ? strchr(line, '\n') : NULL;

		if (!line || !end || end - line < 3 || memcmp(end - 2, " 1", 2))
			fail_msg("inspect said: %s", err);
	}
	/* and shoal metrics: the drop and the redeliveries before it, as counters */
	{
		char want[64];

		assert_int_equal(rt_run_tool(r.inst, err, sizeof(err),
					     (const char *[]){"metrics", "--once", NULL}),
				 0);
		if (!strstr(err, "\nshoal_messages_poisoned_total 1\n"))
			fail_msg("metrics: no shoal_messages_poisoned_total 1 in: %.4000s", err);
		snprintf(want, sizeof(want), "\nshoal_messages_redelivered_total %d\n",
			 IPC_POISON_MAX);
		if (!strstr(err, want))
			fail_msg("metrics: no '%s' in: %.4000s", want + 1, err);
	}
	/* a poisonous call: its caller hears it was dropped instead of waiting out its timeout */
	assert_int_equal(
		ipc_call(cl.seg, cl.w, cl.inbox, c, 1, "segv", 4, reply, sizeof(reply), TIMEOUT_MS),
		-ECANCELED);
	assert_int_equal(atomic_load(&p->restarts), 2 * IPC_POISON_MAX);
	/* a handler that fails: its error comes back (the agent alone is restarted) */
	assert_int_equal(
		ipc_call(cl.seg, cl.w, cl.inbox, c, 1, "fail", 4, reply, sizeof(reply), TIMEOUT_MS),
		-EIO);
	assert_int_equal(atomic_load(&p->restarts), 2 * IPC_POISON_MAX);
	/* the ring: the drop, on agent c, and the failed callback */
	{
		struct shm_event e;

		assert_true(ring_find(seg, SHM_EV_POISON, 0, 0, &e));
		assert_int_equal(e.agent, c);
		assert_string_equal(e.name, "c");
		assert_int_equal(e.code, IPC_POISON_MAX);
		/* written after the error reply went out: waited for */
		WAIT_FOR(seg, ring_find(seg, SHM_EV_AGENT_CRASH, 0, 0, &e));
		assert_int_equal(e.agent, c);
		assert_int_equal(e.reason, SHOAL_DOWN_ERROR);
	}
	rt_client_close(&cl);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/* [types] load = PATH: a user's agent type library, hosted without rebuilding shoal. */
/* Whether process pid has the file at path mapped (its /proc/PID/maps names it). */
static bool maps_file(pid_t pid, const char *path)
{
	char name[64], line[1024], real[PATH_MAX];
	bool found = false;
	FILE *f;

	assert_non_null(realpath(path, real));
	snprintf(name, sizeof(name), "/proc/%d/maps", (int)pid);
	f = fopen(name, "re");
	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, real) != NULL;
	fclose(f);
	return found;
}

/* Call the agent named name with payload and expect reply back (its first strlen bytes). */
static void expect_call(struct rt_client *cl, const char *name, const char *payload,
			const char *reply)
{
	char got[32] = "";
	int n = ipc_call(cl->seg, cl->w, cl->inbox, lookup(cl, name), 1, payload,
			 (uint32_t)strlen(payload), got, sizeof(got) - 1, TIMEOUT_MS);

	assert_true(n >= (int)strlen(reply));
	assert_memory_equal(got, reply, strlen(reply));
}

/*
 * A [types] library's code never runs in the supervisor: it is not mapped there, while the
 * worker, the warm spare that replaces it and a type spawned at run time have its types.
 */
static void test_supervisor_loads_type_library(void **state)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	const char *spawn[] = {"spawn", "spawner", "sp", "--wait", NULL};
	struct shm_seg *seg;
	struct rt_run r;
	struct rt_client cl;
	char cfg[1024], out[512];
	pid_t old, spare;

	(void)state;
	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 1\nplacement = none\n[types]\nload = %s\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
		 "[agent up]\ntype = upper\n",
		 lib);
	start(&r, "lib", cfg, NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	rt_client_open(&cl, r.inst);
	expect_call(&cl, "up", "abc", "ABC");
	old = rt_slot_pid(seg, 1);
	assert_true(maps_file(old, lib));
	assert_false(maps_file(r.pid, lib));
	/* the spare loaded it while it prepared, and takes over with the type */
	spare = wait_spare_ready(seg);
	assert_true(maps_file(spare, lib));
	rt_kill_and_wait(old);
	WAIT_FOR(seg, worker_is_up(seg, 1, old, 1));
	assert_int_equal(rt_slot_pid(seg, 1), spare);
	expect_call(&cl, "up", "xyz", "XYZ");
	/* the supervisor knows the library's type names without loading it */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), spawn), 0);
	lookup(&cl, "sp");
	assert_false(maps_file(r.pid, lib));
	rt_client_close(&cl);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * A library built before the agent-type ABI was versioned (version 1 struct, old table name)
 * still loads in a running instance, beside one built against today's header, and the
 * agents of both answer.
 */
static void test_supervisor_loads_abi1_type_library(void **state)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	const char *old = getenv("SHOAL_TEST_ABI1_PLUGIN");
	struct shm_seg *seg;
	struct rt_run r;
	struct rt_client cl;
	char cfg[1024];

	(void)state;
	if (!lib || !old)
		skip_because("SHOAL_TEST_PLUGIN or SHOAL_TEST_ABI1_PLUGIN is not set (run through "
			     "meson test)");
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 1\nplacement = none\n[types]\nload = %s\nload = %s\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
		 "[agent old]\ntype = old_upper\n[agent up]\ntype = upper\n",
		 old, lib);
	start(&r, "abi1", cfg, NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	rt_client_open(&cl, r.inst);
	expect_call(&cl, "old", "abc", "ABC@");
	expect_call(&cl, "up", "abc", "ABC@");
	assert_true(maps_file(rt_slot_pid(seg, 1), old));
	assert_false(maps_file(r.pid, old));
	rt_client_close(&cl);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * A library that loads in the check but fails in the worker (mode: "abort" or "error")
 * fails the agents of its type alone, with an error naming the type and the library: the
 * worker does not die, its other agents answer, the supervisor runs on.
 */
static void fragile_run(const char *mode)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	const char *frag = getenv("SHOAL_TEST_FRAGILE_PLUGIN");
	struct shm_seg *seg;
	struct rt_run r;
	struct rt_client cl;
	char cfg[1024], line[512];
	static char err[65536];
	shoal_handle_t h;

	if (!lib || !frag)
		skip_because("SHOAL_TEST_PLUGIN or SHOAL_TEST_FRAGILE_PLUGIN is not set (run "
			     "through meson test)");
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 1\nplacement = none\n[types]\nload = %s\nload = %s\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
		 "[agent f]\ntype = fragile\n[agent up]\ntype = upper\n[agent e]\ntype = echo\n",
		 frag, lib);
	assert_int_equal(setenv("SHOAL_TEST_FRAGILE", mode, 1), 0);
	start(&r, mode, cfg, NULL);
	unsetenv("SHOAL_TEST_FRAGILE");
	rt_wait_ready(&r);
	snprintf(line, sizeof(line), "type 'fragile' of library '%s'", frag);
	rt_wait_err(&r, line);
	seg = attach(&r);
	rt_client_open(&cl, r.inst);
	expect_call(&cl, "up", "abc", "ABC");
	rt_expect_echo(&cl, lookup(&cl, "e"));
	WAIT_FOR(seg, shm_reg_lookup(seg, SHM_NS_DEFAULT, "f", 1, &h, NULL) == -ENOENT);
	/* the worker that met the failure is the first one, never restarted */
	assert_int_equal(atomic_load(&shm_proc_at(seg, 1)->restarts), 0);
	assert_int_equal(atomic_load(&shm_proc_at(seg, 1)->state), SHM_PROC_RUNNING);
	rt_read_err(&r, err, sizeof(err));
	assert_non_null(strstr(err, "agent 'f'"));
	assert_null(strstr(err, "agent 'up'"));
	rt_client_close(&cl);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

static void test_supervisor_type_library_crashing_in_workers(void **state)
{
	(void)state;
	fragile_run("abort");
}

static void test_supervisor_type_library_failing_in_workers(void **state)
{
	(void)state;
	fragile_run("error");
}

static void test_supervisor_dead_client_is_repaired(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	int pfd[2];
	uint32_t slot = 0;
	shoal_handle_t inbox[2], members[4];
	pid_t c;

	(void)state;
	start(&r, "client", two_workers, NULL);
	rt_wait_ready(&r);
	assert_int_equal(pipe(pfd), 0);
	c = fork();
	if (c == 0) {
		struct shm_seg *cs;
		char err[256];

		shoal_handle_t ib[2];
		uint64_t vid;

		if (shm_seg_attach(r.inst, 0, 1000, &cs, err, sizeof(err)) ||
		    shm_proc_claim(cs, SHM_ROLE_CLIENT, false))
			_exit(1);
		shm_proc_set_state(cs, SHM_PROC_RUNNING);
		/* two inboxes, one in a group: what a dead client held must come back */
		if (ipc_inbox_open(cs, &ib[0]) || ipc_inbox_open(cs, &ib[1]) ||
		    shm_grp_join(cs, "watchers", 8, ib[1]))
			_exit(1);
		/* and a variable's lock, as a writer killed mid-update holds it */
		if (shm_var_create(cs, 0, "held", 4, SHM_VAR_INT, &vid))
			_exit(1);
		{
			const struct shm_hdr *h = shm_hdr(cs);
			struct shm_var *v =
				(struct shm_var *)((uint8_t *)shm_region(cs, SHM_R_VARS) +
						   SHM_VAR_VARS_OFF(h->cfg.max_procs,
								    h->cfg.var_bytes) +
						   SHM_VAR_ID_INDEX(vid) *
							   SHM_VAR_STRIDE(h->cfg.var_bytes));

			atomic_store(&v->lock, cs->tag);
		}
		(void)!write(pfd[1], &cs->self, sizeof(cs->self));
		(void)!write(pfd[1], ib, sizeof(ib));
		pause();
		_exit(0);
	}
	close(pfd[1]);
	assert_true(rt_fd_wait(pfd[0], TIMEOUT_MS));
	assert_int_equal(read(pfd[0], &slot, sizeof(slot)), (ssize_t)sizeof(slot));
	assert_int_equal(read(pfd[0], inbox, sizeof(inbox)), (ssize_t)sizeof(inbox));
	close(pfd[0]);
	seg = attach(&r);
	assert_int_equal(atomic_load(&shm_proc_at(seg, slot)->state), SHM_PROC_RUNNING);
	assert_int_equal(shm_grp_members(seg, "watchers", 8, members, 4), 1);
	rt_kill_and_wait(c);
	waitpid(c, NULL, 0);
	WAIT_FOR(seg, atomic_load(&shm_proc_at(seg, slot)->state) == SHM_PROC_EXITED);
	/* its inboxes' agent slots are free again, and it left its group */
	for (int i = 0; i < 2; i++)
		assert_int_equal(
			atomic_load(&shm_agent_at(seg, shoal_handle_slot(inbox[i]))->state),
			SHM_AGENT_FREE);
	assert_int_equal(shm_grp_members(seg, "watchers", 8, members, 4), -ENOENT);
	/* its variable lock is released (an uncommitted update: the value stays) */
	{
		struct shm_var_stats vst;
		char err[256];

		assert_int_equal(shm_var_stats(seg, &vst), 0);
		assert_int_equal(vst.live, 1);
		assert_int_equal(vst.locked, 0);
		assert_int_equal(vst.back, 1);
		assert_int_equal(shm_var_check(seg, err, sizeof(err)), 0);
	}
	assert_true(atomic_load(&shm_proc_at(seg, slot)->repair_gen) >= 1);
	assert_int_equal(
		atomic_load_explicit(&shm_proc_at(seg, slot)->last_pid, memory_order_relaxed),
		(uint32_t)c);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/* rest_for_one: the dead worker and those started after it restart; earlier ones stay. */
static void test_supervisor_rest_for_one(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	pid_t p1, p2, p3;

	(void)state;
	start(&r, "rest",
	      "[instance]\nworkers = 3\nplacement = none\n[restart]\nstrategy = rest_for_one\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 8\n",
	      NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	p1 = rt_slot_pid(seg, 1);
	p2 = rt_slot_pid(seg, 2);
	p3 = rt_slot_pid(seg, 3);
	rt_kill_and_wait(p2);
	WAIT_FOR(seg, worker_is_up(seg, 2, p2, 1));
	WAIT_FOR(seg, worker_is_up(seg, 3, p3, 1));
	assert_int_equal(
		atomic_load_explicit(&shm_proc_at(seg, 2)->last_reason, memory_order_relaxed),
		SHM_EXIT_SIGNAL);
	assert_int_equal(
		atomic_load_explicit(&shm_proc_at(seg, 3)->last_reason, memory_order_relaxed),
		SHM_EXIT_NORMAL);
	assert_int_equal(rt_slot_pid(seg, 1), p1);
	assert_int_equal(atomic_load(&shm_proc_at(seg, 1)->restarts), 0);
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

static void touch(const char *dir, const char *file, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void slurp(const char *dir, const char *file, char *buf, size_t cap)
{
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, cap - 1, f);
	buf[n] = 0;
	fclose(f);
}

/*
 * The cgroup v2 path's file protocol, on a directory standing in for a delegated cgroup
 * (this machine has no memory controller to give us, and we write to no real cgroup).
 */
static void test_supervisor_cgroup_files(void **state)
{
	struct sup_config c;
	char root[64], dir[128], buf[64];

	(void)state;
	snprintf(root, sizeof(root), "/tmp/shoal-cg-%d", (int)getpid());
	snprintf(dir, sizeof(dir), "%s/worker-1", root);
	assert_int_equal(mkdir(root, 0700), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* the kernel makes these files in a new cgroup; here we do */
	touch(dir, "memory.max", "");
	touch(dir, "memory.swap.max", "");
	touch(dir, "memory.oom.group", "");
	touch(dir, "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n");
	sup_config_init(&c);
	assert_int_equal(sup_cap_prepare(&c, 1), SUP_CAP_NONE);
	c.mem_cap = 64ull << 20;
	assert_int_equal(sup_cap_prepare(&c, 1), SUP_CAP_RLIMIT);
	snprintf(c.cgroup, sizeof(c.cgroup), "%s", root);
	assert_int_equal(sup_cap_prepare(&c, 1), SUP_CAP_CGROUP);
	slurp(dir, "memory.max", buf, sizeof(buf));
	assert_string_equal(buf, "67108864");
	slurp(dir, "memory.swap.max", buf, sizeof(buf));
	assert_string_equal(buf, "0");
	slurp(dir, "memory.oom.group", buf, sizeof(buf));
	assert_string_equal(buf, "1");
	assert_int_equal(sup_cap_oom_kills(&c, 1, SUP_CAP_CGROUP), 2);
	assert_int_equal(sup_cap_oom_kills(&c, 1, SUP_CAP_RLIMIT), 0);
	/* a cgroup that is not there is an error, never a write elsewhere */
	snprintf(c.cgroup, sizeof(c.cgroup), "%s/missing", root);
	assert_true(sup_cap_prepare(&c, 1) < 0);
	for (const char *const *f =
		     (const char *const[]){"memory.max", "memory.swap.max", "memory.oom.group",
					   "memory.events", NULL};
	     *f; f++) {
		char path[256];

		snprintf(path, sizeof(path), "%s/%s", dir, *f);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(rmdir(root), 0);
}

/*
 * Names are not identities: while instance A runs, its file is moved aside and a new instance
 * B takes the name; A stopping must remove only its own file, leave B's, and say so.
 */
static void test_supervisor_stop_leaves_a_new_instance_alone(void **state)
{
	struct rt_run r;
	struct shm_seg *b;
	struct shm_cfg cfg;
	struct stat sb, now;
	char path[128], moved[160], err[4096];

	(void)state;
	start(&r, "rename",
	      "[instance]\nworkers = 1\nplacement = none\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n",
	      NULL);
	rt_wait_ready(&r);
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s", r.inst);
	snprintf(moved, sizeof(moved), "%s-moved", path);
	assert_int_equal(rename(path, moved), 0);
	shm_cfg_default(&cfg);
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	assert_int_equal(shm_seg_create(r.inst, &cfg, &b, err, sizeof(err)), 0);
	shm_seg_publish(b);
	assert_int_equal(fstat(b->fd, &sb), 0);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	assert_int_equal(lstat(path, &now), 0);
	assert_true(now.st_dev == sb.st_dev && now.st_ino == sb.st_ino);
	rt_read_err(&r, err, sizeof(err));
	if (!strstr(err, "new instance"))
		fail_msg("stderr: %s", err);
	assert_int_equal(unlink(moved), 0);
	shm_seg_detach(b);
	rt_cleanup(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_supervisor_worker_killed_is_replaced, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_spare_killed_is_replaced, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_stopped_spare_not_used, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_no_boost_after_backoff, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_forked_replacement_back_to_fair,
					  rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_one_for_all_restarts_every_worker,
					  rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_rest_for_one, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_cgroup_files, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_intensity_exceeded, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_client_never_takes_a_worker_slot,
					  rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_sigterm_removes_segment, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_sigterm_runs_terminate, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_sigterm_keep, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_stray_signals_handled, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_killed_leaves_stale_segment, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_adopt_refuses_other_geometry,
					  rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_adopts_dead_supervisors_segment,
					  rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_memory_cap_rlimit, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_memory_cap_hog_agent, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_memory_cap_cgroup, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_hang_is_killed, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_poison_message_dropped, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_loads_type_library, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_loads_abi1_type_library, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_type_library_crashing_in_workers,
					  rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_type_library_failing_in_workers,
					  rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_dead_client_is_repaired, rt_teardown),
		cmocka_unit_test_teardown(test_supervisor_stop_leaves_a_new_instance_alone,
					  rt_teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (the qemu guest's pick) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
