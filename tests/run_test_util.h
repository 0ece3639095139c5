/*
 * Helpers shared by the tests that launch a real `shoal run` (test_control, test_supervisor):
 * start it with --ready-fd and stderr to a file, wait for it, stop it, clean up after it, and
 * a client with an inbox. Include after <cmocka.h> and "tests/skip.h".
 */
#ifndef TESTS_RUN_TEST_UTIL_H
#define TESTS_RUN_TEST_UTIL_H

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/round.h"
#include "shm/shm.h"
#include "shoal/client.h"

#ifndef TIMEOUT_MS
#define TIMEOUT_MS 15000
#endif

/* One `shoal run` child: its pid, a pidfd, the ready pipe's read end, its names and files. */
struct rt_run {
	pid_t pid;
	int pidfd;
	int ready_rd;
	char inst[40];
	char cfg[80];
	char err[80];
	char out[80];
};

/* The supervisor a failing test may leave behind, for rt_teardown() (a copy: the test's
 * frame is gone by then). */
static struct rt_run rt_live;
static bool rt_have_live;

/* A pidfd for pid, or -1 (errno set). */
static inline int rt_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The shoal binary meson test names in SHOAL_BIN; skips the test without it. */
static inline const char *rt_shoal_bin(void)
{
	const char *b = getenv("SHOAL_BIN");

	if (!b)
		skip_because("SHOAL_BIN is not set (run through meson test)");
	return b;
}

/* Whether fd became readable within timeout_ms. */
static inline bool rt_fd_wait(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, timeout_ms) == 1;
}

/*
 * Start `shoal run CFG --instance I --ready-fd N --status-interval 0 [extra]` with stderr and
 * stdout to files (err, out); I is prefix + name + our pid, CFG holds config. extra may be NULL.
 * Records the run in rt_live for rt_teardown().
 */
static inline void rt_start_on(struct rt_run *r, const char *prefix, const char *name,
			       const char *config, const char *extra, bool fresh)
{
	const char *bin = rt_shoal_bin();
	int pfd[2];
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(r->inst, sizeof(r->inst), "%s%s-%d", prefix, name, (int)getpid());
	snprintf(r->cfg, sizeof(r->cfg), "/tmp/shoal-%s.ini", r->inst);
	snprintf(r->err, sizeof(r->err), "/tmp/shoal-%s.err", r->inst);
	snprintf(r->out, sizeof(r->out), "/tmp/shoal-%s.out", r->inst);
	if (fresh)
		shm_seg_unlink(r->inst);
	f = fopen(r->cfg, "w");
	assert_non_null(f);
	fputs(config, f);
	fclose(f);
	assert_int_equal(pipe(pfd), 0);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		char fdarg[16];
		int e = open(r->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		close(pfd[0]);
		dup2(e, 2);
		/* stdout is the test runner's: a supervisor left behind must not hold it */
		e = open(r->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(e, 1);
		snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
		execl(bin, bin, "run", r->cfg, "--instance", r->inst, "--ready-fd", fdarg,
		      "--status-interval", "0", extra, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	r->ready_rd = pfd[0];
	r->pidfd = rt_pidfd_open(r->pid);
	assert_true(r->pidfd >= 0);
	rt_live = *r;
	rt_have_live = true;
}

/* rt_start_on() on a fresh instance: a segment left by an earlier run is removed first. */
static inline void rt_start(struct rt_run *r, const char *prefix, const char *name,
			    const char *config, const char *extra)
{
	rt_start_on(r, prefix, name, config, extra, true);
}

/* Wait for the run's "ready\n" on its ready pipe. */
static inline void rt_wait_ready(struct rt_run *r)
{
	char buf[8] = "";

	assert_true(rt_fd_wait(r->ready_rd, TIMEOUT_MS));
	assert_int_equal(read(r->ready_rd, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "ready\n", 6);
}

/* Wait for the supervisor to exit; returns its exit code (-signal if killed). */
static inline int rt_wait_exit(struct rt_run *r)
{
	int st;

	assert_true(rt_fd_wait(r->pidfd, TIMEOUT_MS));
	assert_int_equal(waitpid(r->pid, &st, 0), r->pid);
	rt_have_live = false;
	close(r->pidfd);
	close(r->ready_rd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* The file path's contents, NUL-terminated, at most cap - 1 bytes ("" if there is none). */
static inline void rt_read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, cap - 1, f);
		fclose(f);
	}
	buf[n] = 0;
}

/* The run's stderr so far, NUL-terminated, at most cap - 1 bytes ("" if there is none). */
static inline void rt_read_err(struct rt_run *r, char *buf, size_t cap)
{
	rt_read_file(r->err, buf, cap);
}

/*
 * Wait until the run's output file path (its err or out) contains needle (inotify on the
 * file: woken by each write); fails the test after TIMEOUT_MS or if the run exits first.
 */
static inline void rt_wait_file(struct rt_run *r, const char *path, const char *needle)
{
	static char buf[65536];
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	assert_true(in >= 0);
	assert_true(inotify_add_watch(in, path, IN_MODIFY) >= 0);
	for (;;) {
		struct pollfd p[2] = {{.fd = in, .events = POLLIN},
				      {.fd = r->pidfd, .events = POLLIN}};
		char ev[4096];
		uint64_t t;

		rt_read_file(path, buf, sizeof(buf));
		if (strstr(buf, needle))
			break;
		t = shm_now_ns();
		if (t >= dl)
			fail_msg("no '%s' in %s within %d ms; it holds: %s", needle, path,
				 TIMEOUT_MS, buf);
		assert_true(poll(p, 2, (int)((dl - t) / 1000000u) + 1) >= 0);
		if (p[1].revents & POLLIN) {
			rt_read_file(path, buf, sizeof(buf));
			if (!strstr(buf, needle))
				fail_msg("the run exited before '%s' was in %s: %s", needle, path,
					 buf);
			break;
		}
		while (read(in, ev, sizeof(ev)) > 0)
			;
	}
	close(in);
}

/* Wait until the run's stderr contains needle (rt_wait_file()). */
static inline void rt_wait_err(struct rt_run *r, const char *needle)
{
	rt_wait_file(r, r->err, needle);
}

/* Wait until the run's stdout contains needle (rt_wait_file()). */
static inline void rt_wait_out(struct rt_run *r, const char *needle)
{
	rt_wait_file(r, r->out, needle);
}

/* Wait until pid's state letter in /proc/PID/stat is want ('T': stopped by SIGSTOP). */
static inline void rt_wait_pid_state(pid_t pid, char want)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	char st;

	while ((st = shm_pid_state(pid)) != want) {
		if (shm_now_ns() > dl)
			fail_msg("pid %d: state '%c', not '%c', after %d ms", (int)pid,
				 st ? st : '-', want, TIMEOUT_MS);
		sched_yield();
	}
}

/* Remove the run's config file, stderr file and segment. */
static inline void rt_cleanup(struct rt_run *r)
{
	unlink(r->cfg);
	unlink(r->err);
	unlink(r->out);
	shm_seg_unlink(r->inst);
}

/* SIGTERM the run, which must exit 0, and clean up after it. */
static inline void rt_stop(struct rt_run *r)
{
	kill(r->pid, SIGTERM);
	assert_int_equal(rt_wait_exit(r), 0);
	rt_cleanup(r);
}

/* SIGKILL pid (a child or not) and wait until it is gone. */
static inline void rt_kill_and_wait(pid_t pid)
{
	int fd = rt_pidfd_open(pid);

	assert_true(fd >= 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_true(rt_fd_wait(fd, TIMEOUT_MS));
	close(fd);
}

/* A cmocka teardown: kill the supervisor a failed test left running (its workers follow it). */
static inline int rt_teardown(void **state)
{
	(void)state;
	if (rt_have_live) {
		kill(rt_live.pid, SIGKILL);
		waitpid(rt_live.pid, NULL, 0);
		close(rt_live.pidfd);
		close(rt_live.ready_rd);
		rt_cleanup(&rt_live);
		rt_have_live = false;
	}
	return 0;
}

/* The pid that owns process slot slot (0 if none). */
static inline pid_t rt_slot_pid(struct shm_seg *seg, uint32_t slot)
{
	return (pid_t)(atomic_load(&shm_proc_at(seg, slot)->own) >> 32);
}

/*
 * A condition on state words of seg, with a deadline: re-checked on every change the
 * segment announces (shm_change_wait). The counter is read before the condition, so a
 * change made after the check wakes the wait.
 */
#define WAIT_FOR(seg, cond)                                                                        \
	do {                                                                                       \
		uint64_t dl_ = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;                     \
		for (;;) {                                                                         \
			uint32_t c_ = shm_change_read(seg);                                        \
			if (cond)                                                                  \
				break;                                                             \
			if (shm_change_wait(seg, c_, dl_))                                         \
				fail_msg("timed out waiting for: %s", #cond);                      \
		}                                                                                  \
	} while (0)

/* A client with an inbox, as the client tools make one. */
struct rt_client {
	struct shm_seg *seg;
	struct ipc_waiter *w;
	shoal_handle_t inbox;
};

/* Attach to instance inst read-write as a running client with a waiter and an inbox. */
static inline void rt_client_open(struct rt_client *c, const char *inst)
{
	char err[256];

	assert_int_equal(shm_seg_attach(inst, 0, 1000, &c->seg, err, sizeof(err)), 0);
	assert_int_equal(shm_proc_claim(c->seg, SHM_ROLE_CLIENT, true), 0);
	shm_proc_set_state(c->seg, SHM_PROC_RUNNING);
	assert_int_equal(ipc_waiter_create(c->seg, IPC_WAKE_AUTO, &c->w), 0);
	assert_int_equal(ipc_inbox_open(c->seg, &c->inbox), 0);
}

/* Undo rt_client_open(). */
static inline void rt_client_close(struct rt_client *c)
{
	ipc_inbox_close(c->seg, c->inbox);
	ipc_waiter_destroy(c->w);
	shm_seg_detach(c->seg);
}

/*
 * The coordination tests' instance: start `shoal run` on cfg (named after name), wait for it
 * to be ready, attach an engine client (cl) and open a library client (*c) on it.
 */
static inline void rt_group_up(struct rt_run *r, struct rt_client *cl, struct shoal_client **c,
			       const char *name, const char *cfg)
{
	char err[256];

	rt_start(r, "t-", name, cfg, NULL);
	rt_wait_ready(r);
	rt_client_open(cl, r->inst);
	assert_int_equal(shoal_client_open(r->inst, c, err, sizeof(err)), 0);
}

/* Look up the agents named fmt % i (i < n) into h[i], each joining group "g". */
static inline void rt_group_join(struct rt_client *cl, struct shoal_client *c, const char *fmt,
				 int n, shoal_handle_t *h)
{
	char name[32];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), fmt, i);
		assert_int_equal(shoal_client_lookup(c, name, &h[i]), 0);
		assert_int_equal(shm_grp_join(cl->seg, "g", 1, h[i]), 0);
	}
}

/* Undo rt_group_up(): close both clients and stop the instance in order. */
static inline void rt_group_down(struct rt_run *r, struct rt_client *cl, struct shoal_client *c)
{
	shoal_client_close(c);
	rt_client_close(cl);
	rt_stop(r);
}

/* An echo agent answers a call with its payload (waits through a restart: a timeout). */
static inline void rt_expect_echo(struct rt_client *c, shoal_handle_t h)
{
	char reply[16] = "";
	int n = ipc_call(c->seg, c->w, c->inbox, h, 1, "ping", 4, reply, sizeof(reply), TIMEOUT_MS);

	assert_int_equal(n, 4);
	assert_memory_equal(reply, "ping", 4);
}

/*
 * Start `shoal ARGS... --instance inst` (inst NULL: no --instance) with its stdout and stderr
 * to a pipe; returns its pid, the pipe's read end in *fd (for rt_tool_finish()).
 */
static inline pid_t rt_tool_start(const char *inst, const char *const *args, int *fd)
{
	const char *bin = rt_shoal_bin();
	char *argv[16];
	size_t n = 0;
	int op[2];
	pid_t pid;

	argv[n++] = (char *)bin;
	for (; *args; args++)
		argv[n++] = (char *)*args;
	if (inst) {
		argv[n++] = (char *)"--instance";
		argv[n++] = (char *)inst;
	}
	argv[n] = NULL;
	assert_int_equal(pipe2(op, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(op[1], 1);
		dup2(op[1], 2);
		execv(bin, argv);
		_exit(127);
	}
	close(op[1]);
	*fd = op[0];
	return pid;
}

/* Read a started tool's output (stdout + stderr) into out until it closes; its exit code. */
static inline int rt_tool_finish(pid_t pid, int fd, char *out, size_t cap)
{
	size_t got = 0;
	int st;

	for (;;) {
		ssize_t k;

		assert_true(rt_fd_wait(fd, TIMEOUT_MS));
		if (got == cap - 1)
			fail_msg("the tool wrote more than the test's %zu bytes", cap - 1);
		k = read(fd, out + got, cap - 1 - got);
		assert_true(k >= 0);
		if (k == 0)
			break;
		got += (size_t)k;
	}
	out[got] = 0;
	close(fd);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Run `shoal ARGS... --instance inst`; its exit code, its output (stdout + stderr) in out. */
static inline int rt_run_tool(const char *inst, char *out, size_t cap, const char *const *args)
{
	int fd;
	pid_t pid = rt_tool_start(inst, args, &fd);

	return rt_tool_finish(pid, fd, out, cap);
}

/*
 * Stop the worker in process slot `slot` (so its members cannot answer), then fork a killer
 * that SIGKILLs it once a round record is claimed (a round is out). Returns the killer's pid
 * (it exits 0, or 8 if no round came within TIMEOUT_MS); the worker's pid in *victim.
 */
static inline pid_t rt_kill_worker_mid_round(struct shm_seg *seg, uint32_t slot, pid_t *victim)
{
	pid_t w = (pid_t)(atomic_load(&shm_proc_at(seg, slot)->own) >> 32), killer;

	assert_true(w > 0);
	assert_int_equal(kill(w, SIGSTOP), 0);
	rt_wait_pid_state(w, 'T');
	killer = fork();
	assert_true(killer >= 0);
	if (killer == 0) {
		uint64_t end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;

		/*
		 * Published, not only claimed: a record is claimed before its round is
		 * published (ACTIVE) and its messages go out, and the repair marks dead only
		 * the members of an ACTIVE round; a kill repaired in between would let the
		 * restarted worker answer for the killed one.
		 */
		for (;;) {
			bool active = false;

			for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_rounds && !active; i++)
				active = atomic_load_explicit(&shm_round_at(seg, i)->state,
							      memory_order_acquire) ==
					 SHM_ROUND_ACTIVE;
			if (active)
				break;
			if (shm_now_ns() > end)
				_exit(8);
		}
		kill(w, SIGKILL);
		_exit(0);
	}
	if (victim)
		*victim = w;
	return killer;
}

#endif
