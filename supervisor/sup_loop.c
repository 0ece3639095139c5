/*
 * The supervisor's event loop: one io_uring holds every wait (worker pidfds, ready pipes,
 * death words, the signalfd, the control inbox, the timer); each completion becomes an event
 * for a worker (sup_worker.c) or a duty.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hwloc.h>
#include <liburing.h>

#include "ipc/ipc.h"
#include "ipc/uring_futex.h"
#include "shm/registry.h"
#include "shm/trace.h"
#include "shoal/agent.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

/* Queue a one-shot poll for fd readable, tagged ud (see UD()). */
void sup_arm_poll(struct sup *s, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = ipc_uring_sqe(&s->ring);

	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud);
}

static void arm_timer(struct sup *s, uint64_t at_ns)
{
	static struct __kernel_timespec ts[64];
	struct io_uring_sqe *sqe = ipc_uring_sqe(&s->ring);
	struct __kernel_timespec *t = &ts[++s->timer_seq % 64];

	/* the timespec must live until the kernel reads it at submit: a small ring of them */
	t->tv_sec = (long long)(at_ns / 1000000000u);
	t->tv_nsec = (long long)(at_ns % 1000000000u);
	io_uring_prep_timeout(sqe, t, 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, UD(K_TIMER, 0, s->timer_seq));
	s->timer_at = at_ns;
}

/*
 * Wait in the ring for w's death word to leave v (the kernel sets owner-died early in the
 * exit). If the ring is full even after a submit, the pidfd tells instead.
 */
static void wait_dying(struct sup *s, struct sup_worker *w, uint32_t v)
{
	struct io_uring_sqe *sqe = ipc_uring_sqe(&s->ring);

	if (!sqe)
		return;
	ipc_prep_futex(sqe, IORING_OP_FUTEX_WAIT, &sup_wproc(s, w)->death_word, v);
	io_uring_sqe_set_data64(sqe, UD(K_DYING, w->windex, w->gen));
}

/*
 * Wait (in the ring) for w's process to begin its exit. Its death word is set to its tid
 * with the waiters bit before it is told to go; the worker makes the word its robust futex
 * list's entry, and the kernel marks it FUTEX_OWNER_DIED (clearing the tid) and wakes us at
 * the start of its exit. A process that dies before it registers is told by its pidfd.
 */
void sup_arm_dying(struct sup *s, struct sup_worker *w)
{
	_Atomic uint32_t *dw = &sup_wproc(s, w)->death_word;
	uint32_t v = ((uint32_t)w->pid & DW_TID_MASK) | DW_WAITERS;

	if (s->no_dying)
		return;
	/* R0: release: pairs with R1 in the worker's death_notice_register() */
	atomic_store_explicit(dw, v, memory_order_release);
	shm_change_bump(s->seg); /* a forked worker may be RUNNING before we get here */
	/*
	 * A wait of an earlier process on this slot that never registered (it died first and
	 * the pidfd told) would stay queued for ever: end it (its completion has a stale gen).
	 */
	syscall(SYS_futex, dw, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	wait_dying(s, w, v);
}

/* The earliest moment something has to happen; a timer request covers it. */
static void rearm_timer(struct sup *s)
{
	uint64_t at = s->next_tick;

	if (s->spare_at && s->spare_at < at)
		at = s->spare_at;
	if (s->gw.start_at && s->gw.start_at < at)
		at = s->gw.start_at;
	for (uint32_t i = 0; i < s->n; i++) {
		struct sup_worker *w = &s->w[i];

		if ((w->state == SUP_W_STARTING || w->state == SUP_W_BACKOFF ||
		     w->state == SUP_W_STOPPING || w->state == SUP_W_CYCLING) &&
		    w->deadline_ns < at)
			at = w->deadline_ns;
	}
	if (!s->timer_at || at < s->timer_at)
		arm_timer(s, at);
}

/*
 * Signals the supervisor reads from its signalfd. SIGINT, SIGTERM and SIGQUIT stop the
 * instance in order; SIGUSR1 prints the status line now; SIGCHLD is only a wake. Every other
 * asynchronous signal whose default action would end the process (and so skip the orderly
 * stop: terminate callbacks, final telemetry, the segment's removal) is logged and ignored:
 * SIGHUP has no log file to reopen (shoal writes to its stdout and stderr). Only SIGKILL can
 * end a supervisor out of order. Fault signals (SIGSEGV, SIGBUS, ...) keep their defaults.
 */
static const int sup_stray_signals[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,
					SIGIO,	SIGPWR,	 SIGXCPU, SIGXFSZ, SIGSTKFLT};

static void on_signal(struct sup *s)
{
	struct signalfd_siginfo si;

	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
			sup_stop_begin(s);
		} else if (sig == SIGCHLD) {
			continue;
		} else if (sig == SIGUSR1) {
			fprintf(stderr,
				"shoal: received SIGUSR1 from pid %u: status line follows\n",
				si.ssi_pid);
			sup_status_print(s);
		} else if (sigabbrev_np(sig)) {
			fprintf(stderr, "shoal: received SIG%s from pid %u: ignored%s\n",
				sigabbrev_np(sig), si.ssi_pid,
				sig == SIGHUP ? " (no log file to reopen: shoal writes to stdout "
						"and stderr)"
					      : "");
		} else {
			fprintf(stderr, "shoal: received signal %d from pid %u: ignored\n", sig,
				si.ssi_pid);
		}
	}
	sup_arm_poll(s, s->sfd, UD(K_SIG, 0, 0));
}

/* The death-word wait of w's current process completed with res. */
static void on_death_word(struct sup *s, struct sup_worker *w, int res)
{
	/* relaxed: the kernel's wake (or the failed compare) orders it; only its bits matter */
	uint32_t v = atomic_load_explicit(&sup_wproc(s, w)->death_word, memory_order_relaxed);
	uint32_t tid = (uint32_t)w->pid & DW_TID_MASK;

	if (res == -EINVAL || res == -ENOSYS || res == -EOPNOTSUPP) {
		s->no_dying = true; /* no io_uring futex: the pidfd alone tells */
		return;
	}
	/* the kernel clears the tid as it sets the owner-died bit */
	if (v & DW_OWNER_DIED)
		sup_worker_post(s, w, SUP_E_DYING);
	else if ((v & DW_TID_MASK) == tid)
		wait_dying(s, w, v); /* woken for nothing: wait again */
}

static void on_cqe(struct sup *s, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint32_t wi = UD_W(ud);
	struct sup_worker *w = wi < s->n ? &s->w[wi] : NULL;
	char b;

	switch (UD_KIND(ud)) {
	case K_SIG:
		on_signal(s);
		break;
	case K_TIMER:
		if (UD_GEN(ud) == s->timer_seq)
			s->timer_at = 0;
		if (s->spare_at && sup_now() >= s->spare_at) {
			s->spare_at = 0;
			sup_spare_fork(s);
			shm_trace("sup: spare forked");
		}
		sup_duty_tick(s);
		sup_gateway_tick(s);
		for (uint32_t i = 0; i < s->n; i++)
			sup_worker_post(s, &s->w[i], SUP_E_TIMER);
		break;
	case K_PID:
		shm_trace("sup: pid cqe");
		if (w && UD_GEN(ud) == w->gen && w->pidfd >= 0)
			sup_worker_post(s, w, SUP_E_DIED);
		else if (w && w->zpidfd >= 0 && UD_GEN(ud) == w->zgen)
			sup_zombie_reap(s, w);
		break;
	case K_DYING:
		if (w && UD_GEN(ud) == w->gen && w->pidfd >= 0)
			on_death_word(s, w, cqe->res);
		break;
	case K_CTL:
		sup_ctl_on_wake(s->ctl, &s->ring, UD(K_CTL, 0, 0), cqe->res);
		sup_pools_serve(s); /* a queued checkout may want overflow members */
		/* a client that found the table full of dead clients rings us: repair now */
		sup_clients_scan(s, false);
		break;
	case K_SPARE:
		if (s->spare.pid && UD_GEN(ud) == s->spare.gen)
			sup_spare_died(s);
		break;
	case K_GATEWAY:
		if (s->gw.pid && UD_GEN(ud) == s->gw.gen)
			sup_gateway_died(s);
		break;
	case K_READY:
		shm_trace("sup: ready cqe");
		/* one byte is the ready signal; EOF means it died first (its pidfd says so) */
		if (w && UD_GEN(ud) == w->gen && w->ready_rd >= 0 &&
		    read(w->ready_rd, &b, 1) == 1) {
			close(w->ready_rd);
			w->ready_rd = -1;
			sup_worker_post(s, w, SUP_E_READY);
		}
		break;
	}
}

static bool all_exited(const struct sup *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->w[i].state != SUP_W_EXITED)
			return false;
	return true;
}

/*
 * Run the event loop until an orderly stop has seen every worker exit. Returns 0, or a
 * positive errno if the ring failed. sup_run() only.
 */
int sup_loop_run(struct sup *s)
{
	while (!(s->stopping && all_exited(s))) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int r;

		rearm_timer(s);
		r = io_uring_submit_and_wait(&s->ring, 1);
		if (r < 0 && r != -EINTR && r != -ETIME) {
			fprintf(stderr, "shoal: io_uring wait: %s\n", strerror(-r));
			return -r;
		}
		io_uring_for_each_cqe(&s->ring, head, cqe)
		{
			on_cqe(s, cqe);
			seen++;
		}
		io_uring_cq_advance(&s->ring, seen);
	}
	return 0;
}

/* Block the signals the supervisor reads (old: the mask before) and open its signalfd. */
int sup_signals_setup(struct sup *s, sigset_t *old)
{
	sigset_t m;

	sigemptyset(&m);
	sigaddset(&m, SIGTERM);
	sigaddset(&m, SIGINT);
	sigaddset(&m, SIGCHLD);
	sigaddset(&m, SIGQUIT);
	for (size_t i = 0; i < sizeof(sup_stray_signals) / sizeof(sup_stray_signals[0]); i++)
		sigaddset(&m, sup_stray_signals[i]);
	/* glibc refuses the real-time signals it keeps for itself; the rest are ours */
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaddset(&m, sig);
	if (sigprocmask(SIG_BLOCK, &m, old) < 0)
		return -errno;
	s->sfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	return s->sfd < 0 ? -errno : 0;
}
