/*
 * Child processes: the child side of a launch, the launch itself, and reaping a dead
 * worker (its exit status, the repair of its process slot, a predecessor still exiting).
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
#include "shm/pool.h"
#include "shm/var.h"
#include "shm/trace.h"
#include "shoal/agent.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

/* --- the child side of a launch --- */

/*
 * Test hooks, read in the forked child before the worker runs (tests/test_supervisor.c):
 * SHOAL_TEST_WORKER_EXIT="W:CODE": worker W exits with CODE at once, every launch (a crash
 * loop); SHOAL_TEST_WORKER_ALLOC="W": worker W, on its first launch only, allocates until
 * its memory cap stops it, and exits as a worker does then (WRK_EXIT_MEMCAP).
 */
static void child_test_hooks(struct sup *s, struct sup_worker *w)
{
#ifndef SHOAL_TEST_HOOKS
	(void)s, (void)w; /* compiled out: -Dtest_hooks=true builds them in */
#else
	const char *e = getenv("SHOAL_TEST_WORKER_EXIT");
	const char *a = getenv("SHOAL_TEST_WORKER_ALLOC");

	if (e) {
		unsigned wi, code;

		if (sscanf(e, "%u:%u", &wi, &code) == 2 && wi == w->windex)
			_exit((int)code);
	}
	if (a && (unsigned)atoi(a) == w->windex &&
	    atomic_load_explicit(&sup_wproc(s, w)->restarts, memory_order_relaxed) == 0) {
		for (;;) {
			char *p = malloc(1 << 20);

			if (!p)
				_exit(WRK_EXIT_MEMCAP);
			memset(p, 1, 1 << 20);
			/* p escapes: the compiler may not elide an allocation nobody reads */
			__asm__ volatile("" : : "r"(p) : "memory");
		}
	}
#endif
}

/* A child's parent-death signal, and its exit code when the signal came. */
#define SUP_PDEATH_SIG		 (SIGRTMIN + 1)
#define SUP_EXIT_SUPERVISOR_DEAD 87

/* The segment a child marks supervisor-dead when its supervisor dies. */
static struct shm_seg *pdeath_seg;

/*
 * The supervisor died (PR_SET_PDEATHSIG): mark the instance supervisor-dead unless it had
 * stopped, then exit. The state word is what every tool and client reads first, so the
 * segment left for post-mortem says what happened. Async-signal-safe: a lock-free CAS.
 */
static void on_supervisor_death(int sig)
{
	struct shm_seg *seg = pdeath_seg;

	(void)sig;
	if (seg) {
		struct shm_hdr *h = shm_hdr(seg);
		/* relaxed: the CAS below decides; release there pairs with I0 in
		 * shm_seg_liveness() (nothing else to publish, but readers take it so) */
		uint32_t st = atomic_load_explicit(&h->state, memory_order_relaxed);

		while (st != SHM_INST_STOPPED && st != SHM_INST_SUP_DEAD &&
		       !atomic_compare_exchange_weak_explicit(&h->state, &st, SHM_INST_SUP_DEAD,
							      memory_order_release,
							      memory_order_relaxed))
			;
		/* whoever waits for a change of state (shm_change_wait()) */
		shm_change_bump(seg);
	}
	_exit(SUP_EXIT_SUPERVISOR_DEAD);
}

/* First steps of every child: die with the supervisor, default signals, own group. */
void sup_child_prepare(struct shm_seg *seg, pid_t parent)
{
	struct sigaction sa = {.sa_handler = on_supervisor_death};
	sigset_t none;

	pdeath_seg = seg;
	/*
	 * systemd's notify socket is the supervisor's alone (notify.c): a fork without exec
	 * keeps it, close-on-exec or not, and plugin code here could speak for the instance
	 */
	sup_notify_close();
	/* the supervisor's death takes its workers with it, marking the segment on the way */
	sigfillset(&sa.sa_mask);
	if (sigaction(SUP_PDEATH_SIG, &sa, NULL) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SUP_PDEATH_SIG) < 0 || getppid() != parent)
		_exit(3);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* a terminal's ^C goes to the supervisor only: it stops the workers in order */
	setpgid(0, 0);
}

/* The child becomes worker w: placement, cap, then the worker loop. */
void __attribute__((noreturn))
sup_child_become(struct sup *s, struct sup_worker *w, int wr, const struct spare_prep *prep)
{
	struct wrk_args args = {
		.windex = w->windex,
		.proc_slot = w->slot,
		.core = w->place.core,
		.node = w->place.node,
		.ready_fd = wr,
		.start_time = prep ? prep->start_time : 0,
		.waiter = prep ? prep->waiter : NULL,
		.boosted = prep && prep->boosted,
	};
	int r;

	shm_trace("child: become");
	if (s->c->placement == SUP_PLACE_SPREAD && s->topo) {
		r = sup_place_bind(s->topo, &w->place);
		if (r)
			fprintf(stderr, "shoal: worker %u: binding to cpu %d node %d: %s\n",
				w->windex, w->place.core, w->place.node, strerror(-r));
	}
	shm_trace("child: bound");
	r = sup_cap_apply_child(s->c, w->windex, w->cap_mech);
	if (r) {
		fprintf(stderr, "shoal: worker %u: applying its memory cap: %s\n", w->windex,
			strerror(-r));
		_exit(3);
	}
	args.cg_memory_fd = sup_cap_open_current(s->c, w->windex, w->cap_mech);
	child_test_hooks(s, w);
	shm_trace("child: capped");
	_exit(wrk_main(s->seg, &args) & 0xff);
}

/*
 * Put the process that becomes worker w on w's core now, from here: a spare asleep on its
 * pipe is then woken on that core (where it may preempt) instead of waking on ours and
 * waiting there to be migrated; a new child leaves our core at once. The child binds
 * itself again (sup_place_bind, also its memory); this is the early half.
 */
void sup_child_pre_bind(struct sup *s, struct sup_worker *w, pid_t pid)
{
	cpu_set_t set;

	if (s->c->placement != SUP_PLACE_SPREAD || !s->topo || w->place.core < 0 ||
	    w->place.core >= CPU_SETSIZE)
		return;
	CPU_ZERO(&set);
	CPU_SET(w->place.core, &set);
	(void)sched_setaffinity(pid, sizeof(set), &set); /* the child's own bind reports errors */
}

/*
 * Start the spare taking over (or a process forked to replace a worker still exiting) at
 * SCHED_FIFO (the lowest real-time priority), until its predecessor's exit completes
 * (sup_zombie_reap() sets it back to SCHED_OTHER; the worker does it itself after
 * WRK_BOOST_MAX_NS at the latest). Its dead predecessor is still
 * tearing down its address space on the same core, at SCHED_IDLE (yield_teardown()), and
 * that was not enough: when anything preempted the replacement (a kworker), the fair
 * scheduler could pick the dying process next (it lags behind in virtual time) and let it
 * run its whole exit (milliseconds here) before the replacement got the core back. A fair
 * task cannot preempt a real-time one. Needs CAP_SYS_NICE or RLIMIT_RTPRIO; without, once
 * refused, never tried again. Returns whether it is boosted.
 */
bool sup_child_boost(struct sup *s, pid_t pid)
{
	struct sched_param sp = {.sched_priority = 1};

	if (!s->boost)
		return false;
	if (sched_setscheduler(pid, SCHED_FIFO, &sp) == 0)
		return true;
	if (errno == EPERM)
		s->boost = false;
	return false;
}

/* What every launch does first: a new generation, the memory cap, the slot's index. */
void sup_child_launch_prep(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = sup_wproc(s, w);
	int r;

	w->gen++;
	w->ready_ns = 0;
	r = sup_cap_prepare(s->c, w->windex);
	w->cap_mech = r < 0 ? SUP_CAP_NONE : r;
	if (r < 0)
		fprintf(stderr, "shoal: worker %u: memory cap under %s: %s; running uncapped\n",
			w->windex, s->c->cgroup, strerror(-r));
	w->oom_base = sup_cap_oom_kills(s->c, w->windex, w->cap_mech);
	/* relaxed: a status word for tools */
	atomic_store_explicit(&p->windex, w->windex, memory_order_relaxed);
	shm_trace("sup: launch prepared");
}

/*
 * Start worker w: the spare woken ahead (sup_spare_prelaunch()), else the spare, else a fork;
 * then watch its pidfd and ready pipe. Returns 0, or -errno when it could not start one (said
 * on stderr; the caller's state machine stops the instance). Supervisor thread only.
 */
int sup_child_launch(struct sup *s, struct sup_worker *w)
{
	/* a predecessor still exiting on that core: SCHED_FIFO too (see sup_child_boost()) */
	struct spare_prep fp = {.boosted = s->boost && w->zpidfd >= 0};
	int fds[2];
	pid_t pid, self = getpid();

	if (w->prelaunched) {
		w->prelaunched = false;
		goto out_watch;
	}
	sup_child_launch_prep(s, w);
	if (sup_spare_take(s, w))
		goto out_watch;
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto out_fail;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		goto out_fail;
	}
	if (pid == 0) {
		close(fds[0]);
		sup_child_prepare(s->seg, self);
		sup_child_become(s, w, fds[1], fp.boosted ? &fp : NULL);
	}
	close(fds[1]);
	sup_child_pre_bind(s, w, pid);
	w->boosted = fp.boosted && sup_child_boost(s, pid);
	w->pid = pid;
	sup_arm_dying(s, w); /* may race with the child's own store: then only the pidfd tells */
	w->ready_rd = fds[0];
	w->pidfd = sup_pidfd_open(pid);
	if (w->pidfd < 0) {
		/* cannot watch it: do not leave it running unwatched */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(w->ready_rd);
		w->ready_rd = -1;
		goto out_fail;
	}
out_watch:
	sup_arm_poll(s, w->pidfd, UD(K_PID, w->windex, w->gen));
	sup_arm_poll(s, w->ready_rd, UD(K_READY, w->windex, w->gen));
	w->deadline_ns = sup_now() + (uint64_t)s->c->ready_timeout_ms * 1000000u;
	shm_trace("sup: launched");
	shm_trace_flush();
	return 0;

out_fail:
	fprintf(stderr, "shoal: worker %u: cannot start it: %s\n", w->windex, strerror(errno));
	return errno ? -errno : -EIO;
}

/*
 * Repair what the dead owner of w's slot left half done; afterwards the slot reads EXITED
 * and can be claimed again. The exit record is written before.
 */
void sup_slot_repair(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = sup_wproc(s, w);

	/* D0: release: the exit record before the slot reads DEAD; pairs with shm_tag_is_dead(). */
	atomic_store_explicit(&p->state, SHM_PROC_DEAD, memory_order_release);
	shm_change_bump(s->seg);
	shm_trace("sup: repair");
	shm_reg_repair(s->seg, w->slot);
	shm_trace("sup: reg repaired");
	shm_grp_repair(s->seg, w->slot);
	shm_trace("sup: grp repaired");
	shm_var_repair(s->seg, w->slot);
	shm_trace("sup: var repaired");
	ipc_repair_proc(s->seg, w->slot);
	shm_trace("sup: ipc repaired");
	/* its subscriptions' leftovers; what its updates owed subscribers is sent again */
	wrk_var_sub_repair(s->seg, w->slot);
	/* also resolves its agent and monitor claims (wrk_repair_proc_claims) */
	wrk_repair_worker(s->seg, w->slot);
	shm_trace("sup: wrk repaired");
	/* what its agents checked out goes to the pools' next waiters */
	shm_pool_repair(s->seg, w->slot, wrk_pool_notify, s->seg);
	/* its tasks' requesters hear it now, not at their timeouts */
	sup_ctl_worker_died(s->ctl, w->slot - 1);
	/* relaxed: only the supervisor writes repair_gen; tools read it as a counter */
	atomic_fetch_add_explicit(&p->repair_gen, 1, memory_order_relaxed);
	/* X0: release: repairs before the slot can be claimed again (claim_at acquires). */
	atomic_store_explicit(&p->state, SHM_PROC_EXITED, memory_order_release);
	shm_change_bump(s->seg);
	/* a spare woken ahead (sup_spare_prelaunch()) may be waiting to claim the slot */
	syscall(SYS_futex, &p->state, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	sup_exit_note_reason(w, p);
}

/*
 * Collect the exit status, record it in the process slot, and repair what the dead
 * process left half done, before anything can claim the slot again.
 */
void sup_child_reap(struct sup *s, struct sup_worker *w, bool asked_to_stop, bool hung)
{
	siginfo_t si;
	uint32_t epoch = sup_exit_owner_epoch(s, w, w->pid);

	shm_trace("sup: reap");
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &si, WEXITED) < 0)
		memset(&si, 0, sizeof(si));
	sup_exit_record(s, w, w->pid, epoch, si.si_pid ? sup_exit_wait_status(&si) : -1,
			asked_to_stop, hung, -1, false);
	close(w->pidfd);
	w->pidfd = -1;
	if (w->ready_rd >= 0) {
		close(w->ready_rd);
		w->ready_rd = -1;
	}
	sup_slot_repair(s, w);
}

/*
 * Collect a process replaced on its death notice, now that it has exited (or wait for that:
 * it is past the point of running any code). Its record is rewritten with the status
 * waitid gives, unless a later exit has been recorded since.
 */
void sup_zombie_reap(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = sup_wproc(s, w);
	siginfo_t si;

	if (w->zpidfd < 0)
		return;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)w->zpidfd, &si, WEXITED) == 0 && si.si_pid &&
	    atomic_load_explicit(&p->last_pid, memory_order_relaxed) == (uint32_t)w->zpid) {
		uint32_t was = atomic_load_explicit(&p->last_reason, memory_order_relaxed);

		/* its launch's cgroup baseline is gone: keep what the death notice found */
		sup_exit_record(s, w, w->zpid,
				atomic_load_explicit(&p->last_epoch, memory_order_relaxed),
				sup_exit_wait_status(&si), false, w->state == SUP_W_HUNG,
				was == SHM_EXIT_MEMCAP, true);
		/* nor may it forget that we killed it for a hang */
		if (was == SHM_EXIT_HANG &&
		    atomic_load_explicit(&p->last_reason, memory_order_relaxed) == SHM_EXIT_SIGNAL)
			atomic_store_explicit(&p->last_reason, SHM_EXIT_HANG, memory_order_relaxed);
	}
	close(w->zpidfd);
	w->zpidfd = -1;
	w->zpid = 0;
	/* its replacement no longer shares the core with it: fair scheduling again */
	if (w->boosted) {
		struct sched_param sp = {.sched_priority = 0};

		w->boosted = false;
		(void)sched_setscheduler(w->pid, SCHED_OTHER, &sp); /* gone already: fine */
		shm_change_bump(s->seg); /* for whoever waits to see it (the tests) */
	}
}
