/*
 * The worker state machine: what each event does to a worker in each state.
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

static const char *const wstate_names[W_NSTATES] = {
	"starting", "running", "backoff", "stopping", "exited",
};

typedef void (*action_fn)(struct sup *s, struct sup_worker *w);

static bool all_ready(const struct sup *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->w[i].state != W_RUNNING)
			return false;
	return true;
}

static void a_none(struct sup *s, struct sup_worker *w)
{
	(void)s;
	(void)w;
}

static void a_ready(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = sup_wproc(s, w);

	/* the slot's claim reset these; the supervisor states where it put the worker */
	p->core = w->place.core;
	p->node = w->place.node;
	p->mem_cap = w->cap_mech ? s->c->mem_cap : 0;
	p->cap_mech = (uint32_t)w->cap_mech;
	shm_change_bump(s->seg);
	w->state = W_RUNNING;
	w->ready_ns = sup_now();
	w->ever_ready = true;
	shm_trace("sup: ready");
	/*
	 * The next spare a little later: its fork and preparation take the supervisor's core
	 * for a while, which the restart's aftermath (replies to the callers that waited,
	 * redeliveries) needs first.
	 */
	sup_spare_schedule(s);
	shm_trace_flush();
	if (!s->ready_sent && all_ready(s)) {
		s->ready_sent = true;
		/* relaxed: a status word for tools; nothing is published through it */
		atomic_store_explicit(&shm_hdr(s->seg)->state, SHM_INST_RUNNING,
				      memory_order_relaxed);
		shm_change_bump(s->seg);
		if (s->ready_fd >= 0) {
			(void)!write(s->ready_fd, "ready\n", 6);
			close(s->ready_fd);
			s->ready_fd = -1;
		}
	}
}

/* Restart w now or after its backoff; it counts against the intensity. */
static void schedule_restart(struct sup *s, struct sup_worker *w)
{
	uint32_t delay = sup_backoff_ms(&s->c->policy, w->streak);

	/* relaxed: single writer (the supervisor); tools read a counter */
	atomic_fetch_add_explicit(&sup_wproc(s, w)->restarts, 1, memory_order_relaxed);
	shm_change_bump(s->seg);
	s->restarts++;
	if (!delay) {
		sup_child_launch(s, w);
		return;
	}
	w->deadline_ns = sup_now() + (uint64_t)delay * 1000000u;
	w->state = W_BACKOFF;
}

/* Begin the orderly stop of the instance (once): drop the spare, stop every worker. */
void sup_stop_begin(struct sup *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	sup_spare_drop(s);
	/* relaxed: a status word for tools */
	atomic_store_explicit(&shm_hdr(s->seg)->state, SHM_INST_STOPPING, memory_order_relaxed);
	shm_change_bump(s->seg);
	for (uint32_t i = 0; i < s->n; i++) {
		s->w[i].restart_after_stop = false;
		sup_worker_dispatch(s, &s->w[i], E_STOP);
	}
}

static void intensity_exceeded(struct sup *s, struct sup_worker *w)
{
	const struct sup_policy *p = &s->c->policy;
	uint32_t k = w->nreasons < REASONS_MAX ? w->nreasons : REASONS_MAX;

	fprintf(stderr,
		"shoal: worker %u (process slot %u) crashed more than %u times in %.3f s "
		"(restart intensity exceeded); stopping the instance. Its last exits:",
		w->windex, w->slot, p->intensity, p->period_ms / 1000.0);
	for (uint32_t i = 0; i < k; i++)
		fprintf(stderr, "%s %s", i ? ";" : "",
			w->reasons[(w->nreasons - k + i) % REASONS_MAX]);
	fprintf(stderr, "\n");
	s->result = SUP_RUN_INTENSITY;
	w->state = W_EXITED;
	sup_stop_begin(s);
}

/* A sibling must stop and come back, by the strategy. */
static void restart_sibling(struct sup *s, struct sup_worker *o)
{
	if (o->state != W_STARTING && o->state != W_RUNNING)
		return;
	o->restart_after_stop = true;
	sup_worker_dispatch(s, o, E_STOP);
}

static bool died_note(struct sup *s, struct sup_worker *w);
static void died(struct sup *s, struct sup_worker *w, bool exceeded);

static void a_died(struct sup *s, struct sup_worker *w)
{
	sup_child_reap(s, w, false);
	died(s, w, died_note(s, w));
}

/*
 * A dead worker's exit still has its address space and rings to tear down, on the core its
 * replacement is about to start on. Lower it to SCHED_IDLE, so that work yields to the
 * replacement instead of delaying it by hundreds of microseconds. It runs no user code any
 * more; failing (it is gone already, or we may not) changes nothing but the latency.
 */
static void yield_teardown(pid_t pid)
{
	struct sched_param sp = {.sched_priority = 0};

	(void)sched_setscheduler(pid, SCHED_IDLE, &sp);
}

/*
 * Its death word says it is exiting: it runs no more code of its own, so repair and restart
 * now rather than when its exit completes (its pidfd); it is collected then (zombie_reap).
 */
static void a_dying(struct sup *s, struct sup_worker *w)
{
	pid_t pid = w->pid;
	uint32_t epoch = sup_exit_owner_epoch(s, w, pid);
	int ready_rd = w->ready_rd, oom = sup_exit_is_oom(s, w);
	bool exceeded;

	shm_trace("sup: dying");
	yield_teardown(pid);
	w->boosted = false;    /* that process's, and SCHED_IDLE now */
	sup_zombie_reap(s, w); /* an earlier one still exiting: it has had long enough */
	w->zpid = pid;
	w->zpidfd = w->pidfd;
	w->zgen = w->gen;
	w->pidfd = -1;
	w->ready_rd = -1;
	/* the spare first: it wakes on its core while we record and repair here */
	exceeded = died_note(s, w);
	if (!exceeded && !sup_backoff_ms(&s->c->policy, w->streak))
		sup_spare_prelaunch(s, w);
	if (ready_rd >= 0)
		close(ready_rd);
	sup_exit_record(s, w, pid, epoch, sup_exit_early_status(pid), false, oom, false);
	w->hung = false; /* recorded: the flag was that process's */
	sup_slot_repair(s, w);
	died(s, w, exceeded);
}

/* Count an unasked-for death against the streak and the intensity; true if exceeded. */
static bool died_note(struct sup *s, struct sup_worker *w)
{
	uint64_t t = sup_now();

	if (w->ready_ns && t - w->ready_ns >= (uint64_t)s->c->policy.period_ms * 1000000u)
		w->streak = 0; /* it stayed up a whole period: a fresh streak */
	w->streak++;
	sup_intensity_note(&s->in, t);
	return sup_intensity_is_exceeded(&s->in, &s->c->policy);
}

/* After the repair of an unasked-for death (counted by died_note()): strategy, restart. */
static void died(struct sup *s, struct sup_worker *w, bool exceeded)
{
	if (exceeded) {
		intensity_exceeded(s, w);
		return;
	}
	switch (s->c->policy.strategy) {
	case SUP_ONE_FOR_ALL:
		for (uint32_t i = 0; i < s->n; i++)
			if (i != w->windex)
				restart_sibling(s, &s->w[i]);
		break;
	case SUP_REST_FOR_ONE:
		for (uint32_t i = w->windex + 1; i < s->n; i++)
			restart_sibling(s, &s->w[i]);
		break;
	default:
		break;
	}
	schedule_restart(s, w);
}

static void a_died_stopping(struct sup *s, struct sup_worker *w)
{
	sup_child_reap(s, w, true);
	w->state = W_EXITED;
	if (w->restart_after_stop && !s->stopping) {
		w->restart_after_stop = false;
		/* relaxed: single writer; a counter for tools */
		atomic_fetch_add_explicit(&sup_wproc(s, w)->restarts, 1, memory_order_relaxed);
		shm_change_bump(s->seg);
		s->restarts++;
		sup_child_launch(s, w);
	}
}

static void a_stop_running(struct sup *s, struct sup_worker *w)
{
	/* T0: release: pairs with the worker's acquire load of its state after a wake. */
	atomic_store_explicit(&sup_wproc(s, w)->state, SHM_PROC_STOPPING, memory_order_release);
	shm_change_bump(s->seg);
	ipc_ring(s->seg, w->slot);
	w->deadline_ns = sup_now() + (uint64_t)s->c->stop_timeout_ms * 1000000u;
	w->state = W_STOPPING;
}

/* Not ready yet: it has run no agent callback worth an orderly stop. */
static void a_stop_starting(struct sup *s, struct sup_worker *w)
{
	sup_pidfd_kill(w->pidfd, SIGKILL);
	w->deadline_ns = sup_now() + (uint64_t)s->c->stop_timeout_ms * 1000000u;
	w->state = W_STOPPING;
}

static void a_stop_backoff(struct sup *s, struct sup_worker *w)
{
	if (w->restart_after_stop && !s->stopping) {
		w->restart_after_stop = false;
		return; /* it restarts when its backoff ends anyway */
	}
	w->state = W_EXITED;
}

static void a_timer_kill_late(struct sup *s, struct sup_worker *w)
{
	(void)s;
	if (sup_now() < w->deadline_ns)
		return;
	fprintf(stderr, "shoal: worker %u (pid %d) missed its %s deadline; killing it\n", w->windex,
		(int)w->pid, wstate_names[w->state]);
	sup_pidfd_kill(w->pidfd, SIGKILL);
	w->deadline_ns = UINT64_MAX; /* the death comes through the pidfd */
}

static void a_timer_backoff(struct sup *s, struct sup_worker *w)
{
	if (sup_now() >= w->deadline_ns)
		sup_child_launch(s, w);
}

/* The per-worker logic: what each event does in each state. */
/* The table reads as a table: */
/* clang-format off */
static const action_fn actions[W_NSTATES][E_NEVENTS] = {
	/*                 E_READY   E_DIED           E_TIMER            E_STOP           E_DYING */
	[W_STARTING] = { a_ready, a_died,          a_timer_kill_late, a_stop_starting, a_dying },
	[W_RUNNING]  = { a_none,  a_died,          a_none,            a_stop_running,  a_dying },
	[W_BACKOFF]  = { a_none,  a_none,          a_timer_backoff,   a_stop_backoff,  a_none },
	[W_STOPPING] = { a_none,  a_died_stopping, a_timer_kill_late, a_none,          a_none },
	[W_EXITED]   = { a_none,  a_none,          a_none,            a_none,          a_none },
};
/* clang-format on */

/* Deliver event ev to worker w: the action its state's row names. Supervisor thread only. */
void sup_worker_dispatch(struct sup *s, struct sup_worker *w, enum wevent ev)
{
	actions[w->state][ev](s, w);
}
