/*
 * shoal shutdown: the orderly stop of a whole instance, without the user finding the
 * supervisor's pid. The supervisor's own SIGTERM path does the work (every agent's terminate,
 * the workers' last telemetry flush, the segment removed unless --keep); this command finds
 * the supervisor in the segment header, makes sure the pid there is still that process, sends
 * the signal and (--wait) waits for the instance state to read STOPPED.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shm/shm.h"
#include "tools/client.h"

/* How often a --wait also asks whether the supervisor died without marking the instance. */
#define SHUTDOWN_DEATH_CHECK_NS 100000000ull

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal shutdown [--wait] [--timeout MS] [--instance NAME]\n"
		"Stops the whole instance in order: sends SIGTERM to its supervisor (found in\n"
		"the segment, checked by its start time against a reused pid), which runs every\n"
		"agent's terminate, stops the workers and removes the segment (kept with\n"
		"'shoal run --keep'). 'shoal stop NAME' stops one agent instead.\n"
		"  --wait        return once the instance reads stopped\n"
		"  --timeout MS  how long --wait waits (default 10000); exit 1 past it\n");
}

/* --wait */
static int wait_opt(const char *cmd, int c, const char *arg, void *ctx)
{
	(void)cmd, (void)c, (void)arg;
	*(bool *)ctx = true;
	return -1;
}

static uint32_t inst_state(const struct shm_seg *seg)
{
	/* I1: pairs with S3 in sup_run(): sup_exit_code and stop_ns before STOPPED */
	return atomic_load_explicit(&shm_hdr(seg)->state, memory_order_acquire);
}

/*
 * Wait until the instance reads STOPPED: on the segment's change counter (the supervisor
 * bumps it with the state), looking every SHUTDOWN_DEATH_CHECK_NS at the supervisor's pidfd
 * too, since a supervisor killed meanwhile never writes STOPPED. A CLI exit code, said.
 */
static int wait_stopped(struct shm_seg *seg, int pidfd, const char *inst, long timeout_ms)
{
	uint64_t deadline = shm_now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		/* read before the check: a change after it moves the counter past c */
		uint32_t c = shm_change_read(seg);
		uint32_t st = inst_state(seg);
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		uint64_t now, until;
		int rc;

		if (st == SHM_INST_STOPPED) {
			uint32_t code = atomic_load_explicit(&shm_hdr(seg)->sup_exit_code,
							     memory_order_relaxed);

			if (code)
				printf("instance '%s': stopped (the supervisor's exit code %u)\n",
				       inst, code);
			else
				printf("instance '%s': stopped\n", inst);
			return EXIT_OK;
		}
		if (st == SHM_INST_SUP_DEAD || poll(&p, 1, 0) == 1) {
			fprintf(stderr,
				"shoal shutdown: instance '%s': the supervisor died before the "
				"stop "
				"finished; see 'shoal inspect --instance %s', then 'shoal clean "
				"--instance %s'\n",
				inst, inst, inst);
			return EXIT_SYSTEM;
		}
		now = shm_now_ns();
		if (now >= deadline) {
			fprintf(stderr,
				"shoal shutdown: instance '%s' did not stop within %ld ms (state "
				"%s); "
				"the supervisor has the request and may still finish\n",
				inst, timeout_ms, st == SHM_INST_STOPPING ? "stopping" : "running");
			return EXIT_CHECK;
		}
		until = deadline - now > SHUTDOWN_DEATH_CHECK_NS ? now + SHUTDOWN_DEATH_CHECK_NS
								 : deadline;
		rc = shm_change_wait(seg, c, until);
		if (rc && rc != -ETIMEDOUT) {
			fprintf(stderr, "shoal shutdown: instance '%s': waiting: %s\n", inst,
				strerror(-rc));
			return EXIT_SYSTEM;
		}
	}
}

/*
 * A pidfd on the instance's supervisor, checked to be that process: the pid in the header
 * with the start time in the header (the pidfd pins the process, so a signal through it
 * cannot reach a later process that reused the pid). A CLI exit code, said; EXIT_OK with
 * *fd set.
 */
static int open_supervisor(const struct shm_seg *seg, const char *inst, int *fd)
{
	const struct shm_hdr *h = shm_hdr(seg);
	pid_t pid = (pid_t)atomic_load_explicit(&h->sup_pid, memory_order_relaxed);
	uint64_t start = atomic_load_explicit(&h->sup_start, memory_order_relaxed);

	*fd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
	if (*fd >= 0 && start && shm_pid_start_time(pid) == start)
		return EXIT_OK;
	if (*fd >= 0)
		close(*fd);
	if (*fd < 0 && pid > 0 && errno != ESRCH) {
		fprintf(stderr, "shoal shutdown: instance '%s': supervisor pid %d: %s\n", inst,
			(int)pid, strerror(errno));
		return EXIT_SYSTEM;
	}
	fprintf(stderr,
		"shoal shutdown: instance '%s': its supervisor (pid %d) is gone (a stale "
		"instance); remove it with 'shoal clean --instance %s'\n",
		inst, (int)pid, inst);
	return EXIT_USAGE;
}

int cmd_shutdown(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = 10000};
	struct shm_seg *seg;
	bool wait = false;
	char err[512];
	uint32_t st, c;
	int ex, rc, pidfd = -1;

	ex = tool_client_args("shutdown", argc, argv, opts, "i:wt:h", 't', 0, usage, wait_opt,
			      &wait, &a);
	if (ex >= 0)
		return ex;
	ex = EXIT_OK;
	/* read-only, no process slot: a shutdown is no client of the instance */
	rc = shm_seg_attach(a.instance, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "shoal shutdown: %s\n", err);
		return tool_exit_for(rc);
	}
	st = inst_state(seg);
	if (st == SHM_INST_STOPPED) {
		printf("instance '%s': already stopped (its segment was kept; 'shoal clean "
		       "--instance %s' removes it)\n",
		       a.instance, a.instance);
		goto out_detach;
	}
	if (st == SHM_INST_SUP_DEAD) {
		fprintf(stderr,
			"shoal shutdown: instance '%s': its supervisor died; 'shoal run' on its "
			"configuration adopts it, 'shoal clean --instance %s' removes it\n",
			a.instance, a.instance);
		ex = EXIT_USAGE;
		goto out_detach;
	}
	ex = open_supervisor(seg, a.instance, &pidfd);
	if (ex)
		goto out_detach;
	/* the counter before the signal, and one wait with a past deadline: it maps the header
	 * read-write for the futex while the name still names the segment (the supervisor
	 * removes it as it stops) */
	c = shm_change_read(seg);
	(void)shm_change_wait(seg, c, 0);
	if (st != SHM_INST_STOPPING &&
	    syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0) < 0) {
		int e = errno;

		/* EPERM: another user's supervisor; ESRCH: it exited since we looked */
		fprintf(stderr, "shoal shutdown: instance '%s': signalling its supervisor: %s\n",
			a.instance, strerror(e));
		ex = e == EPERM || e == ESRCH ? EXIT_USAGE : EXIT_SYSTEM;
		goto out_close;
	}
	if (wait) {
		ex = wait_stopped(seg, pidfd, a.instance, a.timeout_ms);
	} else {
		printf("instance '%s': %s (supervisor pid %u)\n", a.instance,
		       st == SHM_INST_STOPPING ? "already stopping" : "stop requested",
		       atomic_load_explicit(&shm_hdr(seg)->sup_pid, memory_order_relaxed));
	}
out_close:
	close(pidfd);
out_detach:
	shm_seg_detach(seg);
	return ex;
}
