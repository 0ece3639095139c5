/*
 * The worker state machine. Each worker is in one state, named after what it is doing:
 *
 *   STARTING  launched (forked, or a spare handed over), waiting for its ready byte
 *   RUNNING   ready, working
 *   HUNG      killed by us for a stale heartbeat, waiting for the death (recorded "hang")
 *   BACKOFF   dead, waiting out its restart delay
 *   STOPPING  asked to stop (or killed before it was ready), waiting for it to exit
 *   CYCLING   the same, for a sibling's restart strategy: started again once it has exited
 *   EXITED    gone, not to be restarted (before its first start, too)
 *
 * HUNG and CYCLING were side flags (hung, restart_after_stop). Three other flags stay in
 * struct sup_worker because they describe another process than the worker's current one,
 * whose life overlaps any of its states, and would double the table if they were states:
 * zpid/zpidfd (the predecessor replaced on its death notice, still exiting: reaped when its
 * pidfd fires), boosted (the replacement runs at SCHED_FIFO while that predecessor exits)
 * and prelaunched (a spare woken as this worker ahead of the repair, taken by the launch in
 * the same step).
 *
 * Events: START (instance start), READY (its ready pipe), DIED (its pidfd), DYING (its
 * death word: exiting, before the pidfd says so), TIMER (a deadline may have passed), STOP
 * (orderly stop), CYCLE (stop and start again: one_for_all/rest_for_one), HANG (heartbeat
 * too old), LAUNCH_FAILED (the launch the step asked for failed; applied at once).
 *
 * The table (sup_worker_step(); "crash" is the rule below, "if due" needs the deadline):
 *
 *            START    READY    DIED          DYING         TIMER          STOP      CYCLE    HANG
 *  STARTING  -        RUNNING  crash         crash(notice) kill if due    STOPPING  CYCLING  -
 *                     +ready   +reap                       (stays)        +kill     +kill
 *  RUNNING   -        -        crash         crash(notice) -              STOPPING  CYCLING  HUNG
 *                              +reap                                      +ask      +ask     +kill
 *  HUNG      -        -        crash         crash(notice) -              STOPPING  CYCLING  -
 *                              +reap "hang"  "hang"                       +ask      +ask
 *  BACKOFF   -        -        -             -             STARTING       EXITED    -        -
 *                                                          +launch if due
 *  STOPPING  -        -        EXITED +reap  -             kill if due    -         -        -
 *  CYCLING   -        -        STARTING      -             kill if due    STOPPING  -        -
 *                              +reap +launch (EXITED if the instance stops)
 *  EXITED    STARTING -        -             -             -              -         -        -
 *            +launch
 *
 * crash: an unasked-for death, counted against the streak and the restart intensity
 * (the facts say how that came out): intensity exceeded: EXITED, give up (the instance
 * stops); else the strategy's siblings get CYCLE, the restart is counted and the worker
 * goes to BACKOFF (a delay) or STARTING (launched now; after a death notice the spare is
 * woken before the repair). LAUNCH_FAILED from STARTING: EXITED, every worker gets STOP.
 *
 * The step is pure (the unit test drives it without forking); sup_worker_post() applies
 * its actions. Actions never deliver events themselves: they queue them, and the queue
 * is drained by the outermost post, one event at a time, so no handler runs inside another.
 */
#include <assert.h>
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
#include "shm/hist.h"
#include "shm/log.h"
#include "shm/registry.h"
#include "shm/trace.h"
#include "shoal/agent.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

/* How a cell's entry depends on the facts. */
enum { R_ALWAYS = 0, R_IF_DUE, R_CRASH, R_CYCLED };

struct sup_wcell {
	uint8_t rule;	  /* R_*: R_ALWAYS takes next/actions as they are */
	uint8_t next;	  /* enum sup_wstate */
	uint16_t actions; /* SUP_A_* */
};
static_assert(SUP_A_ABORT <= UINT16_MAX, "every SUP_A_* bit fits a cell's actions");

/* The per-worker logic: what each event does in each state (SUP_W_NSTATES: stays). */
/* clang-format off */
#define C(n, a)  {R_ALWAYS, SUP_W_##n, (a)}
#define DUE(a)   {R_IF_DUE, SUP_W_NSTATES, (a)} /* stays; acts once the deadline is due */
#define CRASH(a) {R_CRASH, SUP_W_NSTATES, (a)}	/* the crash rule, with these first */
#define NONE     {R_ALWAYS, SUP_W_NSTATES, 0}	/* stays, does nothing */
static const struct sup_wcell table[SUP_W_NSTATES][SUP_E_NEVENTS] = {
	[SUP_W_STARTING] = {
		[SUP_E_START] = NONE,
		[SUP_E_READY] = C(RUNNING, SUP_A_READY),
		[SUP_E_DIED] = CRASH(SUP_A_REAP),
		[SUP_E_DYING] = CRASH(SUP_A_NOTICE),
		[SUP_E_TIMER] = DUE(SUP_A_KILL_LATE),
		[SUP_E_STOP] = C(STOPPING, SUP_A_KILL),
		[SUP_E_CYCLE] = C(CYCLING, SUP_A_KILL),
		[SUP_E_HANG] = NONE,
		[SUP_E_LAUNCH_FAILED] = C(EXITED, SUP_A_ABORT),
	},
	[SUP_W_RUNNING] = {
		[SUP_E_START] = NONE,
		[SUP_E_READY] = NONE,
		[SUP_E_DIED] = CRASH(SUP_A_REAP),
		[SUP_E_DYING] = CRASH(SUP_A_NOTICE),
		[SUP_E_TIMER] = NONE,
		[SUP_E_STOP] = C(STOPPING, SUP_A_ASK_STOP),
		[SUP_E_CYCLE] = C(CYCLING, SUP_A_ASK_STOP),
		[SUP_E_HANG] = C(HUNG, SUP_A_KILL_HUNG),
		[SUP_E_LAUNCH_FAILED] = NONE,
	},
	[SUP_W_HUNG] = {
		[SUP_E_START] = NONE,
		[SUP_E_READY] = NONE,
		[SUP_E_DIED] = CRASH(SUP_A_REAP),
		[SUP_E_DYING] = CRASH(SUP_A_NOTICE),
		[SUP_E_TIMER] = NONE,
		[SUP_E_STOP] = C(STOPPING, SUP_A_ASK_STOP),
		[SUP_E_CYCLE] = C(CYCLING, SUP_A_ASK_STOP),
		[SUP_E_HANG] = NONE,
		[SUP_E_LAUNCH_FAILED] = NONE,
	},
	[SUP_W_BACKOFF] = {
		[SUP_E_START] = NONE,
		[SUP_E_READY] = NONE,
		[SUP_E_DIED] = NONE,
		[SUP_E_DYING] = NONE,
		[SUP_E_TIMER] = {R_IF_DUE, SUP_W_STARTING, SUP_A_LAUNCH},
		[SUP_E_STOP] = C(EXITED, 0),
		[SUP_E_CYCLE] = NONE, /* it restarts when its backoff ends anyway */
		[SUP_E_HANG] = NONE,
		[SUP_E_LAUNCH_FAILED] = NONE,
	},
	[SUP_W_STOPPING] = {
		[SUP_E_START] = NONE,
		[SUP_E_READY] = NONE,
		[SUP_E_DIED] = C(EXITED, SUP_A_REAP_STOPPED),
		[SUP_E_DYING] = NONE,
		[SUP_E_TIMER] = DUE(SUP_A_KILL_LATE),
		[SUP_E_STOP] = NONE,
		[SUP_E_CYCLE] = NONE,
		[SUP_E_HANG] = NONE,
		[SUP_E_LAUNCH_FAILED] = NONE,
	},
	[SUP_W_CYCLING] = {
		[SUP_E_START] = NONE,
		[SUP_E_READY] = NONE,
		[SUP_E_DIED] = {R_CYCLED, SUP_W_STARTING,
				SUP_A_REAP_STOPPED | SUP_A_COUNT_RESTART | SUP_A_LAUNCH},
		[SUP_E_DYING] = NONE,
		[SUP_E_TIMER] = DUE(SUP_A_KILL_LATE),
		[SUP_E_STOP] = C(STOPPING, 0),
		[SUP_E_CYCLE] = NONE,
		[SUP_E_HANG] = NONE,
		[SUP_E_LAUNCH_FAILED] = NONE,
	},
	[SUP_W_EXITED] = {
		[SUP_E_START] = C(STARTING, SUP_A_LAUNCH),
		[SUP_E_READY] = NONE,
		[SUP_E_DIED] = NONE,
		[SUP_E_DYING] = NONE,
		[SUP_E_TIMER] = NONE,
		[SUP_E_STOP] = NONE,
		[SUP_E_CYCLE] = NONE,
		[SUP_E_HANG] = NONE,
		[SUP_E_LAUNCH_FAILED] = NONE,
	},
};
/* clang-format on */

#undef C
#undef DUE
#undef CRASH
#undef NONE

static const char *const wstate_names[SUP_W_NSTATES] = {
	"starting", "running", "hung", "backoff", "stopping", "cycling", "exited",
};

/* See sup_int.h. Pure. */
const char *sup_wstate_name(enum sup_wstate st)
{
	return st < SUP_W_NSTATES ? wstate_names[st] : "?";
}

/* See sup_int.h. Pure. */
bool sup_wevent_is_crash(enum sup_wstate st, enum sup_wevent ev)
{
	return st < SUP_W_NSTATES && ev < SUP_E_NEVENTS && table[st][ev].rule == R_CRASH;
}

/* See sup_int.h. Pure: the test drives it without a supervisor. */
struct sup_wstep sup_worker_step(enum sup_wstate st, enum sup_wevent ev, const struct sup_wfacts *f)
{
	struct sup_wstep out = {.next = st, .actions = 0};
	struct sup_wcell c;

	if (st >= SUP_W_NSTATES || ev >= SUP_E_NEVENTS)
		return out;
	c = table[st][ev];
	switch (c.rule) {
	case R_IF_DUE:
		if (!f->due)
			return out;
		break;
	case R_CYCLED:
		/* stopped for a sibling's strategy, but the instance stops meanwhile: no restart */
		if (f->stopping)
			return (struct sup_wstep){SUP_W_EXITED, SUP_A_REAP_STOPPED};
		break;
	case R_CRASH:
		if (f->exceeded)
			return (struct sup_wstep){SUP_W_EXITED, c.actions | SUP_A_GIVE_UP};
		c.actions |= SUP_A_STRATEGY | SUP_A_COUNT_RESTART;
		if (f->backoff) {
			c.next = SUP_W_BACKOFF;
			c.actions |= SUP_A_BACKOFF;
		} else {
			c.next = SUP_W_STARTING;
			c.actions |= SUP_A_LAUNCH;
			/* the spare first: it wakes on its core while we record and repair here */
			if (c.actions & SUP_A_NOTICE)
				c.actions |= SUP_A_PRELAUNCH;
		}
		break;
	default:
		break;
	}
	if (c.next < SUP_W_NSTATES)
		out.next = (enum sup_wstate)c.next;
	out.actions = c.actions;
	return out;
}

static bool is_up(enum sup_wstate st)
{
	return st == SUP_W_RUNNING || st == SUP_W_HUNG;
}

static bool all_ready(const struct sup *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (!is_up(s->w[i].state))
			return false;
	return true;
}

static void a_ready(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = sup_wproc(s, w);

	/*
	 * The slot's claim reset these; the supervisor states where it put the worker. relaxed:
	 * status words for tools, the control path and the spawner; no order with others.
	 */
	atomic_store_explicit(&p->core, w->place.core, memory_order_relaxed);
	atomic_store_explicit(&p->node, w->place.node, memory_order_relaxed);
	atomic_store_explicit(&p->mem_cap, w->cap_mech ? s->c->mem_cap : 0, memory_order_relaxed);
	atomic_store_explicit(&p->cap_mech, (uint32_t)w->cap_mech, memory_order_relaxed);
	shm_change_bump(s->seg);
	w->ready_ns = sup_now();
	w->ever_ready = true;
	if (w->restart_t0) {
		char who[48];

		snprintf(who, sizeof(who), "worker %u (pid %d)", w->windex, (int)w->pid);
		shm_log_event("worker.restart", who,
			      json_pack("{s:i, s:i, s:f}", "worker", (int)w->windex, "pid",
					(int)w->pid, "restart_ms",
					(double)(w->ready_ns - w->restart_t0) / 1e6),
			      "restarted in %.3f ms", (double)(w->ready_ns - w->restart_t0) / 1e6);
		/* into the supervisor's own block: it is that block's only writer; a tool
		 * waiting for the restart's figure is woken by the change count */
		shm_hist_add(s->seg, SHM_HIST_RESTART, w->ready_ns - w->restart_t0);
		shm_change_bump(s->seg);
		{
			struct shm_event e;

			shm_event_init(&e, SHM_EV_WORKER_RESTART);
			e.code = (int32_t)((w->ready_ns - w->restart_t0) / 1000000u);
			sup_event(s, w, SHM_EV_WORKER_RESTART, w->pid, &e, "restarted in %.3f ms",
				  (double)(w->ready_ns - w->restart_t0) / 1e6);
		}
		w->restart_t0 = 0;
	}
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
		shm_log_event("instance.ready", "supervisor",
			      json_pack("{s:i, s:f}", "workers", (int)s->n, "ready_ms",
					(double)(sup_now() - s->start_ns) / 1e6),
			      "ready in %.3f s: %u workers",
			      (double)(sup_now() - s->start_ns) / 1e9, s->n);
		/* before the ready byte: whoever waits for it finds the banner complete */
		if (s->o->log_format != SHM_LOG_QUIET)
			sup_banner_print(s);
		sup_notify("READY=1\nSTATUS=ready: %u workers, instance %s", s->n, s->c->instance);
		if (s->ready_fd >= 0) {
			(void)!write(s->ready_fd, "ready\n", 6);
			close(s->ready_fd);
			s->ready_fd = -1;
		}
	}
}

/* A restart, counted for tools and the status line (not against the intensity). */
static void count_restart(struct sup *s, struct sup_worker *w)
{
	/* relaxed: single writer (the supervisor); tools read a counter */
	atomic_fetch_add_explicit(&sup_wproc(s, w)->restarts, 1, memory_order_relaxed);
	shm_change_bump(s->seg);
	s->restarts++;
	w->restart_t0 = sup_now(); /* its ready line says how long the restart took */
}

/* Queue ev for w; sup_worker_post() drains. See the bound at sup_run()'s allocation. */
static void enqueue(struct sup *s, struct sup_worker *w, enum sup_wevent ev)
{
	struct sup_wqueue *q = &s->q;

	if (q->tail - q->head >= q->cap) {
		/* the bound in sup_int.h is wrong: a bug, not a condition to live with */
		fprintf(stderr, "shoal: supervisor event queue full (%u); aborting\n", q->cap);
		abort();
	}
	q->ev[q->tail % q->cap] = (struct sup_wqev){.windex = w->windex, .ev = (uint32_t)ev};
	q->tail++;
}

/* See sup_int.h. */
void sup_stop_begin(struct sup *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	sup_notify("STOPPING=1\nSTATUS=stopping in order");
	sup_spare_drop(s);
	/* relaxed: a status word for tools */
	atomic_store_explicit(&shm_hdr(s->seg)->state, SHM_INST_STOPPING, memory_order_relaxed);
	shm_change_bump(s->seg);
	for (uint32_t i = 0; i < s->n; i++)
		sup_worker_post(s, &s->w[i], SUP_E_STOP);
}

static void a_give_up(struct sup *s, struct sup_worker *w)
{
	const struct sup_policy *p = &s->c->policy;
	uint32_t k = w->nreasons < REASONS_MAX ? w->nreasons : REASONS_MAX;
	char last[REASONS_MAX * 66 + 1] = "", who[32];
	json_t *reasons = json_array();
	size_t n = 0;

	for (uint32_t i = 0; i < k; i++) {
		const char *r = w->reasons[(w->nreasons - k + i) % REASONS_MAX];

		n += (size_t)snprintf(last + n, sizeof(last) - n, "%s %s", i ? ";" : "", r);
		json_array_append_new(reasons, json_string(r));
	}
	snprintf(who, sizeof(who), "worker %u", w->windex);
	shm_log_error("worker.intensity", who,
		      json_pack("{s:i, s:i, s:i, s:i, s:o}", "worker", (int)w->windex, "slot",
				(int)w->slot, "intensity", (int)p->intensity, "period_ms",
				(int)p->period_ms, "reasons", reasons),
		      "process slot %u crashed more than %u times in %.3f s (restart intensity "
		      "exceeded); stopping the instance. Its last exits:%s",
		      w->slot, p->intensity, p->period_ms / 1000.0, last);
	sup_event(s, w, SHM_EV_INTENSITY, w->pid, NULL, "more than %u restarts in %.3f s",
		  p->intensity, p->period_ms / 1000.0);
	s->result = SUP_RUN_INTENSITY;
	sup_stop_begin(s);
}

/* The siblings the strategy restarts with w get CYCLE (only STARTING/RUNNING/HUNG act). */
static void a_strategy(struct sup *s, struct sup_worker *w)
{
	switch (s->c->policy.strategy) {
	case SUP_ONE_FOR_ALL:
		for (uint32_t i = 0; i < s->n; i++)
			if (i != w->windex)
				enqueue(s, &s->w[i], SUP_E_CYCLE);
		break;
	case SUP_REST_FOR_ONE:
		for (uint32_t i = w->windex + 1; i < s->n; i++)
			enqueue(s, &s->w[i], SUP_E_CYCLE);
		break;
	default:
		break;
	}
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
 * Its death word says it is exiting: it runs no more code of its own, so repair (and, by
 * the step, restart) now rather than when its exit completes (its pidfd); it is collected
 * then (sup_zombie_reap). prelaunch: wake the spare as w before the repair.
 */
static void a_notice(struct sup *s, struct sup_worker *w, bool hung, bool prelaunch)
{
	pid_t pid = w->pid;
	uint32_t epoch = sup_exit_owner_epoch(s, w, pid);
	int ready_rd = w->ready_rd, oom = sup_exit_is_oom(s, w);

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
	if (prelaunch)
		sup_spare_prelaunch(s, w);
	if (ready_rd >= 0)
		close(ready_rd);
	sup_exit_record(s, w, pid, epoch, sup_exit_early_status(pid), false, hung, oom, false);
	sup_slot_repair(s, w);
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

static void a_ask_stop(struct sup *s, struct sup_worker *w)
{
	/* T0: release: pairs with the worker's acquire load of its state after a wake. */
	atomic_store_explicit(&sup_wproc(s, w)->state, SHM_PROC_STOPPING, memory_order_release);
	shm_change_bump(s->seg);
	ipc_ring(s->seg, w->slot);
	w->deadline_ns = sup_now() + (uint64_t)s->c->stop_timeout_ms * 1000000u;
}

/* Not ready yet: it has run no agent callback worth an orderly stop. */
static void a_kill(struct sup *s, struct sup_worker *w)
{
	sup_pidfd_kill(w->pidfd, SIGKILL);
	w->deadline_ns = sup_now() + (uint64_t)s->c->stop_timeout_ms * 1000000u;
}

static void a_kill_late(struct sup_worker *w)
{
	const char *what = w->state == SUP_W_STARTING ? "starting" : "stopping";
	char who[48];

	snprintf(who, sizeof(who), "worker %u (pid %d)", w->windex, (int)w->pid);
	shm_log_event("worker.late", who,
		      json_pack("{s:i, s:i, s:s}", "worker", (int)w->windex, "pid", (int)w->pid,
				"deadline", what),
		      "missed its %s deadline; killing it", what);
	sup_pidfd_kill(w->pidfd, SIGKILL);
	w->deadline_ns = UINT64_MAX; /* the death comes through the pidfd */
}

/* Launch failed (sup_child_launch() said why): every worker stops, the run fails. */
static void a_abort(struct sup *s, int err)
{
	s->result = err;
	if (!s->stopping) {
		s->stopping = true;
		for (uint32_t i = 0; i < s->n; i++)
			enqueue(s, &s->w[i], SUP_E_STOP);
	}
}

/* Deliver one event: the facts the table needs, the step, its actions in their order. */
static void deliver(struct sup *s, struct sup_worker *w, enum sup_wevent ev)
{
	enum sup_wstate was = (enum sup_wstate)w->state;
	struct sup_wfacts f = {.stopping = s->stopping};
	struct sup_wstep st;
	uint32_t a;
	int r;

	if (sup_wevent_is_crash(was, ev)) {
		f.exceeded = died_note(s, w);
		f.backoff = sup_backoff_ms(&s->c->policy, w->streak) != 0;
	}
	/* a clock read only where the cell asks (the timer visits every worker) */
	if (table[was][ev].rule == R_IF_DUE)
		f.due = sup_now() >= w->deadline_ns;
	st = sup_worker_step(was, ev, &f);
	a = st.actions;
	w->state = st.next;
	if (a & SUP_A_REAP)
		sup_child_reap(s, w, false, was == SUP_W_HUNG);
	if (a & SUP_A_REAP_STOPPED)
		sup_child_reap(s, w, true, false);
	if (a & SUP_A_NOTICE)
		a_notice(s, w, was == SUP_W_HUNG, a & SUP_A_PRELAUNCH);
	if (sup_wevent_is_crash(was, ev))
		sup_exit_event(s, w,
			       f.exceeded  ? -1
			       : f.backoff ? (int64_t)sup_backoff_ms(&s->c->policy, w->streak)
					   : 0);
	if (a & SUP_A_READY)
		a_ready(s, w);
	if (a & SUP_A_GIVE_UP)
		a_give_up(s, w);
	if (a & SUP_A_STRATEGY)
		a_strategy(s, w);
	if (a & SUP_A_COUNT_RESTART)
		count_restart(s, w);
	if (a & SUP_A_BACKOFF)
		w->deadline_ns =
			sup_now() + (uint64_t)sup_backoff_ms(&s->c->policy, w->streak) * 1000000u;
	if (a & SUP_A_ASK_STOP)
		a_ask_stop(s, w);
	if (a & SUP_A_KILL)
		a_kill(s, w);
	if (a & SUP_A_KILL_LATE)
		a_kill_late(w);
	if (a & SUP_A_KILL_HUNG)
		sup_pidfd_kill(w->pidfd, SIGKILL);
	if (a & SUP_A_LAUNCH) {
		r = sup_child_launch(s, w);
		if (r) {
			/* the table's LAUNCH_FAILED row, at once: nothing may see it STARTING */
			st = sup_worker_step((enum sup_wstate)w->state, SUP_E_LAUNCH_FAILED, &f);
			w->state = st.next;
			if (st.actions & SUP_A_ABORT)
				a_abort(s, r);
		}
	}
}

/* See sup_int.h. */
void sup_worker_post(struct sup *s, struct sup_worker *w, enum sup_wevent ev)
{
	enqueue(s, w, ev);
	if (s->q.draining)
		return; /* an action queued it: the outer post delivers it after this one */
	s->q.draining = true;
	while (s->q.head != s->q.tail) {
		struct sup_wqev e = s->q.ev[s->q.head % s->q.cap];

		s->q.head++;
		deliver(s, &s->w[e.windex], (enum sup_wevent)e.ev);
	}
	s->q.draining = false;
}
