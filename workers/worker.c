/*
 * The worker: one thread, one wait point (its ipc waiter's io_uring). Each round: after
 * wake, rescan the agent table if told to, start agents that need it, drain every hosted
 * agent's mailbox (peek, callback, consume), run due ticks, heartbeat; before sleep, spin
 * briefly and park until rung, a tick is due, or the heartbeat period passes.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shm/log.h"
#include "shm/registry.h"
#include "shm/var.h"
#include "shm/trace.h"
#include "workers/wrk_int.h"

#define WRK_BATCH	 64u	      /* messages per agent per round: fairness */
#define WRK_SPIN_NS	 20000u	      /* spin this long before parking, at first */
#define WRK_SPIN_MAX_NS	 200000u      /* at most this long, while messages keep coming */
#define WRK_HEARTBEAT_NS 100000000ull /* park at most this long: heartbeat period */

struct wrk {
	struct shm_seg *seg;
	struct ipc_waiter *waiter;
	struct shm_proc *proc;
	uint32_t self;
	uint32_t max_agents;
	struct wrk_agent **byslot; /* hosted agent per agent slot, or NULL */
	uint32_t *list;		   /* hosted slots, dense */
	uint32_t n;
	uint32_t seen_gen; /* agents_gen at the last rescan */
	uint32_t npending; /* hosted agents waiting for (re)start */
	uint8_t *reply;	   /* reply buffer, max_msg bytes */
	uint8_t *ckpt;	   /* checkpoint read buffer */
	uint8_t *up_mark;  /* agent slots restarted whose monitors await UP */
	uint32_t nup;
	uint64_t now;
	uint64_t spin_ns;     /* the first spin before parking ($SHOAL_WORKER_SPIN_NS) */
	uint64_t spin_max_ns; /* the longest ($SHOAL_WORKER_SPIN_MAX_NS) */
	uint64_t spin_cur;    /* the next one (spin_adapt()) */
	bool boosted;	      /* still at the start-up SCHED_FIFO (unboost()) */
	uint64_t boost_t0;
	struct shm_telem tl; /* our telemetry, flushed to the segment (telem_flush()) */
	int statm_fd;	     /* /proc/self/statm, -1 if it cannot be opened */
	int cg_fd;	     /* our cgroup's memory.current (wrk_args.cg_memory_fd), or -1 */
	uint64_t page;	     /* bytes per page, for statm's counts */
};

/*
 * The first unsigned number of the file behind fd, read from its start (a /proc or cgroupfs
 * file regenerates its text on each read); 0 if it cannot be read.
 */
static uint64_t read_num(int fd)
{
	char buf[64];
	ssize_t n;

	if (fd < 0)
		return 0;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtoull(buf, NULL, 10);
}

/* Our memory now, once per flush (two preads): never on the message path. */
static void telem_memory(struct wrk *w)
{
	char buf[96];
	unsigned long long size, resident;
	ssize_t n = w->statm_fd >= 0 ? pread(w->statm_fd, buf, sizeof(buf) - 1, 0) : -1;

	/* statm: "size resident shared text lib data dt", in pages */
	if (n > 0) {
		buf[n] = 0;
		if (sscanf(buf, "%llu %llu", &size, &resident) == 2)
			w->tl.rss_bytes = (uint64_t)resident * w->page;
	}
	/* the baseline of growth: this process's first flush (a replacement starts anew) */
	if (!w->tl.rss_start_bytes)
		w->tl.rss_start_bytes = w->tl.rss_bytes;
	w->tl.cg_memory_bytes = read_num(w->cg_fd);
}

/* Copy our telemetry into the segment; final: the last time, as we stop in order. */
static void telem_flush(struct wrk *w, bool final)
{
	w->tl.flushed_ns = w->now;
	w->tl.pid = (uint32_t)getpid();
	w->tl.final = final;
	w->tl.flushes++;
	telem_memory(w);
	shm_telem_flush(w->seg, w->self, &w->tl);
}

/* A loop round handled n messages (n > 0). */
static void telem_round(struct wrk *w, uint32_t n)
{
	uint32_t b = 31u - (uint32_t)__builtin_clz(n);

	w->tl.handled += n;
	w->tl.rounds++;
	w->tl.batch[b < SHM_TELEM_BUCKETS ? b : SHM_TELEM_BUCKETS - 1]++;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);

	if (!p)
		wrk_oom();
	return p;
}

static struct shm_agent *slot_of(const struct wrk *w, const struct wrk_agent *wa)
{
	return shm_agent_at(w->seg, wa->slot);
}

static void ctx_for(struct shoal_ctx *ctx, struct wrk *w, struct wrk_agent *wa)
{
	ctx->seg = w->seg;
	ctx->agent = wa;
	ctx->now_ns = w->now;
	ctx->msg = NULL;
	ctx->reply_flags = 0;
}

static void unhost(struct wrk *w, struct wrk_agent *wa)
{
	for (uint32_t i = 0; i < w->n; i++) {
		if (w->list[i] == wa->slot) {
			w->list[i] = w->list[--w->n];
			break;
		}
	}
	w->byslot[wa->slot] = NULL;
	free(wa);
}

/* Remove an agent for good: terminate (if it ran), names, groups, DOWN, free slot. */
static void agent_remove(struct wrk *w, struct wrk_agent *wa, int term_reason, uint32_t down)
{
	struct shm_agent *a = slot_of(w, wa);
	uint64_t held = WRK_CTL_HELD;
	struct shoal_ctx ctx;

	if (wa->running && wa->type && wa->type->terminate) {
		ctx_for(&ctx, w, wa);
		wa->type->terminate(&ctx, wa->state, term_reason);
	}
	wa->running = false;
	/* the claim makes a death from here on a half-done stop that repair finishes */
	if (atomic_compare_exchange_strong_explicit(&a->ctl, &held, w->seg->tag,
						    memory_order_acq_rel, memory_order_relaxed))
		wrk_agent_finish_stop(w->seg, wa->slot, down);
	unhost(w, wa);
}

/* Record a failure; true if the agent is past its restart intensity. */
static bool intensity_exceeded(const struct wrk *w, struct wrk_agent *wa)
{
	uint32_t max = wa->type && wa->type->restart_max ? wa->type->restart_max : WRK_RESTART_MAX;
	uint64_t period = (wa->type && wa->type->restart_period_ms ? wa->type->restart_period_ms
								   : WRK_RESTART_PERIOD_MS) *
			  1000000ull;
	uint32_t ring = sizeof(wa->fail_ns) / sizeof(wa->fail_ns[0]);
	uint32_t recent = 0;

	if (max >= ring)
		max = ring - 1;
	wa->fail_ns[wa->nfail++ % ring] = w->now;
	for (uint32_t i = 0; i < ring && i < wa->nfail; i++)
		if (w->now - wa->fail_ns[i] <= period)
			recent++;
	return recent > max;
}

/*
 * True if the slot still holds the incarnation wa hosts. Only its hosting worker frees a slot
 * a live worker hosts (wrk_agent_stop() leaves it to us), so a false here is a defence, not a
 * path: such a wa is forgotten without touching the slot, which is another's now.
 */
static bool still_ours(const struct wrk *w, const struct wrk_agent *wa)
{
	return wrk_agent_handle(w->seg, wa->slot) == wa->handle;
}

/*
 * Run init; on success the agent is RUNNING and its monitors get UP if it was down. Only a
 * STARTING or DOWN agent starts: a STOPPING one is the rescan's to remove, and a start must
 * never overwrite another state (a free slot turned RUNNING would leak it for good).
 */
static int agent_start(struct wrk *w, struct wrk_agent *wa)
{
	struct shm_agent *a = slot_of(w, wa);
	struct shoal_ctx ctx;
	uint32_t was = atomic_load_explicit(&a->state, memory_order_acquire);
	int len, rc;

	if (was != SHM_AGENT_STARTING && was != SHM_AGENT_DOWN)
		return 0;
	len = wrk_ckpt_read(w->seg, wa->slot, w->ckpt, wrk_ckpt_cap(w->seg));
	if (len < 0)
		len = 0;
	if ((uint32_t)len > wa->type->ckpt_size)
		len = (int)wa->type->ckpt_size;
	ctx_for(&ctx, w, wa);
	wa->state = NULL;
	rc = wa->type->init(&ctx, len ? w->ckpt : NULL, (uint32_t)len, &wa->state);
	if (rc < 0)
		return rc;
	wa->running = true;
	wa->next_tick_ns = wa->type->tick_ms ? w->now + wa->type->tick_ms * 1000000ull : 0;
	atomic_store_explicit(&a->started_ns, w->now, memory_order_relaxed);
	/* A0: pairs with acquire loads of state (tools, tests): started before RUNNING. */
	uint32_t exp = was;
	if (!atomic_compare_exchange_strong_explicit(&a->state, &exp, SHM_AGENT_RUNNING,
						     memory_order_acq_rel, memory_order_acquire))
		return 0; /* a stop request came in meanwhile: the rescan handles it */
	shm_change_bump(w->seg);
	if (was == SHM_AGENT_STARTING)
		wrk_agent_event(w->seg, SHM_EV_AGENT_SPAWN, wa->slot, 0, -1, "spawned (%s)",
				wa->type->name);
	if (was == SHM_AGENT_DOWN && !w->up_mark[wa->slot]) {
		/* sent by flush_up(): one pass over the monitor table for a whole restart */
		w->up_mark[wa->slot] = 1;
		w->nup++;
	}
	return 0;
}

/* Send the UPs agent_start() deferred. */
static void flush_up(struct wrk *w)
{
	if (!w->nup)
		return;
	wrk_mon_notify_marked(w->seg, w->up_mark, 1, 0);
	memset(w->up_mark, 0, w->max_agents);
	w->nup = 0;
}

/*
 * Mark a hosted agent DOWN unless a stop request got there first (a stopper's STOPPING must
 * never be overwritten). True if it is DOWN now.
 */
static bool set_down(struct shm_agent *a)
{
	uint32_t st = atomic_load_explicit(&a->state, memory_order_acquire);

	do {
		if (st == SHM_AGENT_STOPPING || st == SHM_AGENT_STOPPED || st == SHM_AGENT_FREE)
			return false;
		/* D1: pairs with acquire loads of state: DOWN before the monitors hear of it. */
	} while (!atomic_compare_exchange_weak_explicit(
		&a->state, &st, SHM_AGENT_DOWN, memory_order_acq_rel, memory_order_acquire));
	return true;
}

/* A callback failed (or init did): restart the agent alone, or remove it past intensity. */
static void agent_failed(struct wrk *w, struct wrk_agent *wa)
{
	struct shm_agent *a = slot_of(w, wa);
	struct shoal_ctx ctx;
	uint32_t restarts;
	char who[32];

	if (wa->running && wa->type->terminate) {
		ctx_for(&ctx, w, wa);
		wa->type->terminate(&ctx, wa->state, SHOAL_TERM_RESTART);
	}
	wa->running = false;
	if (intensity_exceeded(w, wa)) {
		wrk_agent_event(w->seg, SHM_EV_AGENT_CRASH, wa->slot, SHOAL_DOWN_FAILED, -1,
				"callback failed: past its intensity");
		uint32_t max = wa->type->restart_max ? wa->type->restart_max : WRK_RESTART_MAX;
		uint32_t period = wa->type->restart_period_ms ? wa->type->restart_period_ms
							      : WRK_RESTART_PERIOD_MS;

		/* self is the process slot: worker index + 1 */
		snprintf(who, sizeof(who), "worker %u", w->self - 1);
		shm_log_event("agent.removed", who,
			      json_pack("{s:i, s:s, s:s, s:i, s:i}", "worker", (int)(w->self - 1),
					"agent", a->name, "type", a->type, "restart_max", (int)max,
					"restart_period_ms", (int)period),
			      "agent '%s' (%s) failed past its restart intensity (%u restarts in "
			      "%u ms); removed",
			      a->name, a->type, max, period);
		agent_remove(w, wa, SHOAL_TERM_FAILED, SHOAL_DOWN_FAILED);
		return;
	}
	if (!set_down(a)) {
		/* asked to stop meanwhile: honour that rather than restart */
		agent_remove(w, wa, SHOAL_TERM_STOP, SHOAL_DOWN_STOPPED);
		return;
	}
	/* relaxed: this worker is the slot's only writer of restarts while it hosts it */
	restarts = atomic_fetch_add_explicit(&a->restarts, 1, memory_order_relaxed) + 1;
	shm_change_bump(w->seg);
	wrk_agent_event(w->seg, SHM_EV_AGENT_CRASH, wa->slot, SHOAL_DOWN_ERROR, -1,
			"callback failed: restarting");
	/* the console's line for it, as for a worker's exit (bounded by the agent's intensity) */
	snprintf(who, sizeof(who), "worker %u", w->self - 1);
	shm_log_event("agent.restart", who,
		      json_pack("{s:i, s:s, s:s, s:i}", "worker", (int)(w->self - 1), "agent",
				a->name, "type", a->type, "restarts", (int)restarts),
		      "agent '%s' (%s) failed in a callback; restarting it from its last "
		      "checkpoint (restart %u)",
		      a->name, a->type, restarts);
	wrk_mon_notify(w->seg, wa->handle, 0, SHOAL_DOWN_ERROR);
	if (agent_start(w, wa) < 0)
		w->npending++;
	flush_up(w);
}

/* Take over agent slot i (assigned to us, spawned): recover its mailbox and checkpoint. */
static void host(struct wrk *w, uint32_t i)
{
	struct shm_agent *a = shm_agent_at(w->seg, i);
	struct wrk_agent *wa = xcalloc(1, sizeof(*wa));

	wa->slot = i;
	wa->handle = wrk_agent_handle(w->seg, i);
	wa->type = shoal_agent_type_find(a->type);
	w->byslot[i] = wa;
	w->list[w->n++] = i;
	ipc_mbox_recover(w->seg, i);
	wrk_ckpt_recover(w->seg, i);
	if (!wa->type) {
		char why[640];

		if (wrk_type_failure(a->type, why, sizeof(why)))
			fprintf(stderr, "shoal worker %u: agent '%s': %s; removed\n", w->self,
				a->name, why);
		else
			fprintf(stderr,
				"shoal worker %u: agent '%s': unknown type '%.*s'; removed\n",
				w->self, a->name, (int)sizeof(a->type), a->type);
		agent_remove(w, wa, SHOAL_TERM_FAILED, SHOAL_DOWN_FAILED);
		return;
	}
	w->npending++;
}

/* Start hosted agents that are not running (new, restarted, or whose init failed). */
static void start_pending(struct wrk *w)
{
	w->npending = 0;
	for (uint32_t k = 0; k < w->n; k++) {
		struct wrk_agent *wa = w->byslot[w->list[k]];
		uint32_t n_before = w->n;

		if (wa->running)
			continue;
		if (!still_ours(w, wa)) {
			unhost(w, wa);
			k--; /* list[k] now holds another agent */
			continue;
		}
		if (agent_start(w, wa) < 0) {
			agent_failed(w, wa);
			if (w->n != n_before)
				k--; /* removed: list[k] now holds another agent */
		}
	}
	flush_up(w);
}

/*
 * After wake, when agents_gen moved: pick up agents assigned to us, and stop the ones
 * asked to stop.
 */
static void rescan(struct wrk *w)
{
	/* G1: pairs with G0 in wrk_poke_worker(): slot writes visible after the bump. */
	w->seen_gen = atomic_load_explicit(&w->proc->agents_gen, memory_order_acquire);
	for (uint32_t i = 0; i < w->max_agents; i++) {
		struct shm_agent *a = shm_agent_at(w->seg, i);
		struct wrk_agent *wa = w->byslot[i];
		uint32_t st;

		if (atomic_load_explicit(&a->worker, memory_order_acquire) != w->self + 1 ||
		    atomic_load_explicit(&a->ctl, memory_order_acquire) != WRK_CTL_HELD) {
			continue;
		}
		st = atomic_load_explicit(&a->state, memory_order_acquire);
		if (wa && !still_ours(w, wa)) {
			unhost(w, wa); /* an incarnation gone from under us: see still_ours() */
			wa = NULL;
		}
		if (!wa && (st == SHM_AGENT_STARTING || st == SHM_AGENT_DOWN ||
			    st == SHM_AGENT_RUNNING || st == SHM_AGENT_STOPPING)) {
			host(w, i);
			wa = w->byslot[i];
		}
		if (wa && st == SHM_AGENT_STOPPING)
			agent_remove(w, wa, SHOAL_TERM_STOP, SHOAL_DOWN_STOPPED);
	}
	if (w->npending)
		start_pending(w);
}

static_assert(SHOAL_MSG_REDELIVERED == IPC_F_REDELIVERED && SHOAL_MSG_CALL == IPC_F_CALL &&
		      SHOAL_MSG_REPLY == IPC_F_REPLY && SHOAL_MSG_SYSTEM == IPC_F_SYSTEM &&
		      SHOAL_MSG_ERROR == IPC_F_ERROR && SHOAL_MSG_ROUND == IPC_F_ROUND &&
		      SHOAL_MSG_TERM == IPC_F_TERM,
	      "an agent's message flags are the engine's bits");

static void to_shoal_msg(const struct ipc_msg *m, struct shoal_msg *sm)
{
	sm->from = m->from;
	sm->ref = m->ref;
	sm->type = m->type;
	sm->flags = m->flags & (SHOAL_MSG_REDELIVERED | SHOAL_MSG_CALL | SHOAL_MSG_REPLY |
				SHOAL_MSG_ERROR | SHOAL_MSG_ROUND | SHOAL_MSG_TERM);
	sm->len = m->len;
	sm->data = m->data;
}

/* Deliver up to WRK_BATCH messages to one agent. Returns how many were handled. */
static uint32_t drain(struct wrk *w, struct wrk_agent *wa)
{
	struct shm_agent *a = slot_of(w, wa);
	const struct shoal_agent_type *t = wa->type;
	struct shoal_ctx ctx;
	uint32_t k;

	for (k = 0; k < WRK_BATCH && wa->running; k++) {
		struct ipc_msg m;
		struct shoal_msg sm;
		int rc = 0, vote = -1;

		if (ipc_mbox_peek(w->seg, wa->slot, &m))
			break;
		/* once per batch, at its start: the queue is deepest before we drain it */
		if (k == 0)
			ipc_mbox_note_depth(w->seg, wa->slot);
		if ((m.flags & IPC_F_REDELIVERED) && m.attempts >= IPC_POISON_MAX) {
			char who[32];

			snprintf(who, sizeof(who), "worker %u", w->self - 1);
			shm_log_event(
				"message.poison", who,
				json_pack("{s:i, s:s, s:i, s:I, s:i}", "worker", (int)(w->self - 1),
					  "agent", a->name, "type", (int)m.type, "from",
					  (json_int_t)m.from, "attempts", (int)m.attempts),
				"agent '%s': dropped a message (type %u from %#llx) that ended "
				"its worker %u times",
				a->name, m.type, (unsigned long long)m.from, m.attempts);
			/* a caller hears why instead of waiting out its timeout */
			ipc_reply_error(w->seg, wa->handle, &m, ECANCELED);
			if (m.flags & IPC_F_ROUND)
				ipc_round_answer(w->seg, m.ref, true);
			ipc_mbox_drop_poison(w->seg, wa->slot, &m);
			wrk_agent_event(w->seg, SHM_EV_POISON, wa->slot, 0, (int32_t)m.attempts,
					"dropped type %u from %#llx", m.type,
					(unsigned long long)m.from);
			continue;
		}
		to_shoal_msg(&m, &sm);
		ctx_for(&ctx, w, wa);
		ctx.msg = &m;
		if (m.flags & IPC_F_REDELIVERED)
			/* relaxed: single writer (this worker) */
			atomic_fetch_add_explicit(&a->redelivered, 1, memory_order_relaxed);
		if (m.flags & IPC_F_SYSTEM) {
			if ((m.type == IPC_T_DOWN || m.type == IPC_T_UP) && t->handle_down &&
			    m.len >= sizeof(struct shoal_down)) {
				struct shoal_down d;

				memcpy(&d, m.data, sizeof(d));
				rc = t->handle_down(&ctx, wa->state, &d);
			} else if (m.type == IPC_T_VAR && m.len >= sizeof(struct shoal_var_note)) {
				/* the next update notifies again; before handle() reads (N2) */
				shm_var_sub_taken(w->seg, m.ref);
				sm.flags |= SHOAL_MSG_SYSTEM;
				rc = t->handle(&ctx, wa->state, &sm);
			} else if (m.type == IPC_T_ROUND &&
				   m.len >= sizeof(struct shoal_round_done)) {
				/* the result of a round it started: to handle, marked as the
				 * engine's */
				sm.flags |= SHOAL_MSG_SYSTEM;
				rc = t->handle(&ctx, wa->state, &sm);
			} else if (m.type == IPC_T_PROPOSAL &&
				   m.len >= sizeof(struct shoal_proposal_result)) {
				/* the outcome of a proposal it made */
				sm.flags |= SHOAL_MSG_SYSTEM;
				rc = t->handle(&ctx, wa->state, &sm);
			} else if (m.type == IPC_T_CONSENSUS &&
				   m.len >= sizeof(struct shoal_consensus_note)) {
				/* a proposal's outcome on a variable it subscribed to */
				sm.flags |= SHOAL_MSG_SYSTEM;
				rc = t->handle(&ctx, wa->state, &sm);
			} else if (m.type == IPC_T_VOTE && (m.flags & IPC_F_ROUND)) {
				/* a proposal to vote on: its vote callback, or yes without one */
				vote = wrk_vote(&ctx, wa, &m);
			}
		} else if (m.flags & IPC_F_CALL) {
			uint32_t rlen = 0;
			uint32_t cap = shm_hdr(w->seg)->cfg.max_msg;

			if (t->handle_call)
				rc = t->handle_call(&ctx, wa->state, &sm, w->reply, cap, &rlen);
			/*
			 * Not ipc_reply(): its long wait on a caller's full inbox would stall
			 * every agent of this worker; a caller that does not read loses it.
			 */
			if (rc >= 0 && rlen != SHOAL_REPLY_LATER && m.from != SHOAL_HANDLE_NONE)
				ipc_send(w->seg, m.from, wa->handle, m.type,
					 IPC_F_REPLY | ctx.reply_flags, m.ref, w->reply,
					 rlen < cap ? rlen : cap, WRK_REPLY_TIMEOUT_MS);
			else if (rc < 0)
				ipc_reply_error(w->seg, wa->handle, &m, rc);
		} else {
			rc = t->handle(&ctx, wa->state, &sm);
		}
		/*
		 * A round's answer once the handler returned, before the consume: killed in
		 * between, the message comes again and its second answer changes nothing. A
		 * handler that failed answers dead (its agent is restarted).
		 */
		if ((m.flags & IPC_F_ROUND) && vote >= 0)
			ipc_round_vote(w->seg, m.ref, vote == 1);
		else if (m.flags & IPC_F_ROUND)
			ipc_round_answer(w->seg, m.ref, rc < 0);
		/* relaxed: single writer (this worker); tools read a snapshot */
		atomic_fetch_add_explicit(&a->handled, 1, memory_order_relaxed);
		ipc_mbox_consume(w->seg, wa->slot, &m);
		/*
		 * A failure after shoal_stop_self() ends it as asked (a task agent failing its
		 * one call), instead of restarting an agent that wanted to go.
		 */
		if (rc < 0 && !wa->stop_requested) {
			agent_failed(w, wa);
			return k + 1;
		}
		if (wa->stop_requested) {
			agent_remove(w, wa, SHOAL_TERM_STOP, SHOAL_DOWN_STOPPED);
			return k + 1;
		}
	}
	return k;
}

/* Run due ticks; returns the earliest next tick (UINT64_MAX: none). */
static uint64_t run_ticks(struct wrk *w)
{
	uint64_t next = UINT64_MAX;

	for (uint32_t k = 0; k < w->n; k++) {
		uint32_t slot = w->list[k];
		struct wrk_agent *wa = w->byslot[slot];
		struct shoal_ctx ctx;

		if (!wa->running || !wa->next_tick_ns)
			continue;
		if (wa->next_tick_ns <= w->now) {
			wa->next_tick_ns = w->now + wa->type->tick_ms * 1000000ull;
			ctx_for(&ctx, w, wa);
			if (wa->type->tick(&ctx, wa->state) < 0) {
				agent_failed(w, wa);
				if (w->byslot[slot] != wa) {
					k--;
					continue;
				}
			} else if (wa->stop_requested) {
				agent_remove(w, wa, SHOAL_TERM_STOP, SHOAL_DOWN_STOPPED);
				k--;
				continue;
			}
		}
		if (wa->running && wa->next_tick_ns < next)
			next = wa->next_tick_ns;
	}
	return next;
}

static bool is_stopping(const struct wrk *w)
{
	return atomic_load_explicit(&w->proc->state, memory_order_acquire) == SHM_PROC_STOPPING;
}

/* has_work for ipc_waiter_wait: called after the parked flag is set, so no ring is lost. */
static bool has_work(void *arg)
{
	struct wrk *w = arg;

	if (is_stopping(w) || w->npending ||
	    atomic_load_explicit(&w->proc->agents_gen, memory_order_acquire) != w->seen_gen ||
	    wrk_rounds_any_done(w->seg) || wrk_allocs_any_done(w->seg))
		return true;
	for (uint32_t k = 0; k < w->n; k++)
		if (ipc_mbox_has_msg(w->seg, w->list[k]))
			return true;
	return false;
}

/*
 * After an idle wait that began at idle_ns with the doorbell at bell, and returned woke
 * (ipc_waiter_wait()'s 1: work), set the next spin. A message that rang us awake soon after
 * we parked (within spin_max_ns of going idle) would have found us awake with a longer spin:
 * spin twice that gap next time (up to spin_max_ns), so traffic that keeps coming,
 * back-to-back rounds say, finds the worker awake and pays no wake. Work found while
 * spinning keeps the spin (however long the gap: the scheduler may have taken the CPU in
 * it). A longer idle time, or a timeout, goes back to the first spin. Every spin still ends
 * when nothing comes within it: an idle worker parks after at most spin_max_ns.
 */
static void spin_adapt(struct wrk *w, int woke, uint64_t idle_ns, uint32_t bell)
{
	uint64_t gap = shm_now_ns() - idle_ns;

	/* relaxed: only how long to spin hangs on it; a ring bumps it (D3, ipc/wake.c) */
	if (woke == 1 && atomic_load_explicit(&w->proc->doorbell, memory_order_relaxed) == bell)
		return;
	if (woke != 1 || gap > w->spin_max_ns)
		w->spin_cur = w->spin_ns;
	else if (gap > w->spin_cur)
		w->spin_cur = 2 * gap < w->spin_max_ns ? 2 * gap : w->spin_max_ns;
}

/* Orderly end: terminate every running agent; they stay assigned, DOWN, for a successor. */
static void shutdown_agents(struct wrk *w)
{
	uint32_t ndown = 0;

	/* UPs still owed go out first; up_mark then marks the agents whose monitors get DOWN */
	flush_up(w);
	while (w->n) {
		struct wrk_agent *wa = w->byslot[w->list[w->n - 1]];
		struct shm_agent *a = slot_of(w, wa);
		struct shoal_ctx ctx;

		if (wa->running && wa->type->terminate) {
			ctx_for(&ctx, w, wa);
			wa->type->terminate(&ctx, wa->state, SHOAL_TERM_STOP);
		}
		wa->running = false;
		/* a pending stop request stays: the successor (or repair) finishes it */
		if (set_down(a)) {
			shm_change_bump(w->seg);
			w->up_mark[wa->slot] = 1;
			ndown++;
		}
		unhost(w, wa);
	}
	/*
	 * One pass over the monitor table: their monitors hear the agents stopped (the
	 * instance stopping, or this worker stopped for a sibling's restart: an UP follows
	 * when they run again, as after a crash).
	 */
	if (ndown)
		wrk_mon_notify_marked(w->seg, w->up_mark, 0, SHOAL_DOWN_STOPPED);
	memset(w->up_mark, 0, w->max_agents);
}

/*
 * The death notice: the process slot's death_word, holding our tid, is the one entry of our
 * robust futex list. When this process exits, however it exits, the kernel marks the word
 * FUTEX_OWNER_DIED and wakes its waiter (a shared futex wake) at the start of its exit, before
 * it tears the address space down, which for a worker takes far longer than the rest (about
 * 0.5 ms here). The supervisor starts the repair then instead of waiting for the pidfd. This
 * replaces the list glibc registered: workers use no robust pthread mutexes.
 */
static struct robust_list_head wrk_robust_head;
static struct robust_list wrk_robust_entry;

static void death_notice_register(struct shm_proc *p)
{
	wrk_robust_entry.next = &wrk_robust_head.list;
	wrk_robust_head.list.next = &wrk_robust_entry;
	wrk_robust_head.futex_offset = (long)((char *)&p->death_word - (char *)&wrk_robust_entry);
	wrk_robust_head.list_op_pending = NULL;
	uint32_t tid = (uint32_t)getpid() & FUTEX_TID_MASK;

	/* R1: acquire: pairs with R0 in the supervisor's arm_dying(): it may have armed it */
	uint32_t cur = atomic_load_explicit(&p->death_word, memory_order_acquire);

	/*
	 * Not armed for us (a test's worker, or the supervisor not there yet): take it with a
	 * CAS, so an arming that lands meanwhile (our tid plus its waiters bit) is kept, not
	 * overwritten without the bit the kernel needs to wake the supervisor.
	 */
	if ((cur & FUTEX_TID_MASK) != tid)
		atomic_compare_exchange_strong_explicit(&p->death_word, &cur, tid,
							memory_order_relaxed, memory_order_relaxed);
	if (syscall(SYS_set_robust_list, &wrk_robust_head, sizeof(wrk_robust_head)) < 0)
		atomic_store_explicit(&p->death_word, 0, memory_order_relaxed); /* pidfd only */
}

static int claim_self(struct shm_seg *seg, const struct wrk_args *args)
{
	struct shm_proc *p;
	uint32_t epoch;
	int rc;

	uint64_t start = args->start_time ? args->start_time : shm_pid_start_time(getpid());
	uint64_t deadline = shm_now_ns() + WRK_CLAIM_WAIT_NS;

	p = shm_proc_at(seg, args->proc_slot);
	for (;;) {
		/* W0: pairs with X0 in the supervisor's repair(): the state word it wakes on */
		uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
		struct timespec ts = {0, 50000000};

		rc = shm_proc_claim_slot(seg, args->proc_slot, SHM_ROLE_WORKER, getpid(), start,
					 &epoch);
		if (rc != -EBUSY || shm_now_ns() > deadline)
			break;
		/*
		 * Woken ahead of the repair of our slot (a warm spare): the supervisor stores
		 * EXITED when it is done and wakes this word. A bounded wait per round.
		 */
		syscall(SYS_futex, &p->state, FUTEX_WAIT, st, &ts, NULL, 0);
	}
	if (rc)
		return rc;
	seg->self = args->proc_slot;
	seg->epoch = epoch;
	seg->tag = SHM_TAG(args->proc_slot, epoch);
	/* relaxed: status words for tools and the spawner's node hint; no order with others */
	atomic_store_explicit(&p->core, args->core, memory_order_relaxed);
	atomic_store_explicit(&p->node, args->node, memory_order_relaxed);
	atomic_store_explicit(&p->windex, args->windex, memory_order_relaxed);
	death_notice_register(p);
	return 0;
}

/*
 * A worker the supervisor started at SCHED_FIFO (a spare taking over, see sup_child_boost()
 * in supervisor/sup_child.c) is set back to SCHED_OTHER by the supervisor when its
 * predecessor's exit has completed; if that never comes (a supervisor that died
 * meanwhile), it does it itself after WRK_BOOST_MAX_NS (1 s). Not at its first idle moment:
 * the predecessor may still be exiting on this core then, and the fair scheduler could
 * hand it the core for the rest of its exit (see sup_child_boost()).
 */
#define WRK_BOOST_MAX_NS 1000000000ull

static void unboost(struct wrk *w)
{
	struct sched_param sp = {.sched_priority = 0};

	w->boosted = false;
	if (sched_getscheduler(0) == SCHED_FIFO && sched_setscheduler(0, SCHED_OTHER, &sp) < 0)
		fprintf(stderr, "shoal worker %u: leaving its start-up priority: %s\n", w->self,
			strerror(errno));
}

/* See wrk.h. The worker process. */
int wrk_main(struct shm_seg *seg, const struct wrk_args *args)
{
	const struct shm_cfg *cfg = &shm_hdr(seg)->cfg;
	struct wrk w;
	int rc;

	memset(&w, 0, sizeof(w));
	w.statm_fd = -1;
	w.cg_fd = args->cg_memory_fd > 0 ? args->cg_memory_fd : -1;
	shm_trace("wrk: main");
	/*
	 * The [types] libraries, before the claim: the supervisor never loads them, and a
	 * spare has loaded them already. One that fails here fails its agents (host()).
	 */
	wrk_types_load_libs();
	rc = claim_self(seg, args);
	shm_trace("wrk: claimed");
	if (rc) {
		ipc_waiter_destroy(args->waiter);
		fprintf(stderr, "shoal worker %u: cannot claim process slot %u: %s\n", args->windex,
			args->proc_slot, strerror(-rc));
		return rc;
	}
	w.seg = seg;
	w.self = args->proc_slot;
	w.proc = shm_proc_at(seg, w.self);
	w.max_agents = cfg->max_agents;
	w.statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	w.page = (uint64_t)sysconf(_SC_PAGESIZE);
	w.byslot = xcalloc(cfg->max_agents, sizeof(*w.byslot));
	w.list = xcalloc(cfg->max_agents, sizeof(*w.list));
	w.reply = xcalloc(cfg->max_msg, 1);
	w.ckpt = xcalloc(cfg->ckpt_bytes + 1, 1);
	w.up_mark = xcalloc(cfg->max_agents, 1);
	wrk_types_init();
	shm_trace("wrk: alloc");
	if (args->waiter) {
		w.waiter = args->waiter;
		rc = ipc_waiter_attach(w.waiter);
		if (rc) {
			ipc_waiter_destroy(w.waiter);
			w.waiter = NULL;
		}
	} else {
		rc = ipc_waiter_create(seg, IPC_WAKE_AUTO, &w.waiter);
	}
	shm_trace("wrk: waiter");
	if (rc) {
		fprintf(stderr, "shoal worker %u: cannot set up its wakeup ring: %s\n",
			args->windex, strerror(-rc));
		goto out_free;
	}
	w.spin_ns = WRK_SPIN_NS;
	if (getenv("SHOAL_WORKER_SPIN_NS"))
		w.spin_ns = strtoull(getenv("SHOAL_WORKER_SPIN_NS"), NULL, 10);
	w.spin_max_ns = WRK_SPIN_MAX_NS;
	if (getenv("SHOAL_WORKER_SPIN_MAX_NS"))
		w.spin_max_ns = strtoull(getenv("SHOAL_WORKER_SPIN_MAX_NS"), NULL, 10);
	if (w.spin_max_ns < w.spin_ns)
		w.spin_max_ns = w.spin_ns;
	w.spin_cur = w.spin_ns;
	w.now = shm_now_ns();
	w.boosted = args->boosted;
	w.boost_t0 = w.now;
	/*
	 * F2: pairs with F1 in wrk_agent_stop(): our claim before the rescan's loads of ctl, so
	 * a stopper that missed us alive has its claim of the slot seen here.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	rescan(&w);
	shm_trace("wrk: rescanned");
	shm_proc_heartbeat(seg);
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	shm_trace("wrk: running");
	if (args->ready_fd >= 0) {
		ssize_t n = write(args->ready_fd, "r", 1);

		(void)n;
		close(args->ready_fd);
		shm_trace("wrk: ready written");
	}
	for (;;) {
		uint32_t done = 0;
		uint64_t next_tick, next_round, next_alloc, timeout;

		w.now = shm_now_ns();
		if (w.boosted && w.now - w.boost_t0 >= WRK_BOOST_MAX_NS)
			unboost(&w);
		if (is_stopping(&w))
			break;
		/* after wake: new or stopping agents first */
		if (atomic_load_explicit(&w.proc->agents_gen, memory_order_acquire) != w.seen_gen)
			rescan(&w);
		if (w.npending)
			start_pending(&w);
		for (uint32_t k = 0; k < w.n; k++) {
			uint32_t slot = w.list[k];
			struct wrk_agent *wa = w.byslot[slot];

			done += drain(&w, wa);
			if (w.byslot[slot] != wa)
				k--; /* removed: list[k] now holds another agent */
		}
		next_tick = run_ticks(&w);
		/* rounds our agents started: results posted now are drained next round */
		done += wrk_rounds_poll(seg, w.now, &next_round);
		if (next_round < next_tick)
			next_tick = next_round;
		done += wrk_allocs_poll(seg, w.now, &next_alloc);
		if (next_alloc < next_tick)
			next_tick = next_alloc;
		shm_proc_heartbeat(seg);
		if (done)
			telem_round(&w, done);
		if (w.now - w.tl.flushed_ns >= SHM_TELEM_FLUSH_NS)
			telem_flush(&w, false);
		if (done)
			continue;
		/* before sleep: park until rung, the next tick, or the heartbeat period */
		timeout = WRK_HEARTBEAT_NS;
		if (next_tick != UINT64_MAX)
			timeout = next_tick > w.now ? next_tick - w.now : 0;
		if (timeout > WRK_HEARTBEAT_NS)
			timeout = WRK_HEARTBEAT_NS;
		shm_trace("wrk: idle");
		shm_trace_flush();
		if (timeout) {
			uint64_t idle_ns = shm_now_ns();
			/* relaxed: as in spin_adapt() */
			uint32_t bell =
				atomic_load_explicit(&w.proc->doorbell, memory_order_relaxed);
			int woke;

			w.tl.parks++;
			woke = ipc_waiter_wait(w.waiter, w.spin_cur, timeout, has_work, &w, NULL);
			spin_adapt(&w, woke, idle_ns, bell);
		}
	}
	w.now = shm_now_ns();
	shutdown_agents(&w);
	wrk_rounds_end_all(seg);
	wrk_allocs_end_all(seg);
	telem_flush(&w, true);
	ipc_waiter_destroy(w.waiter);
	rc = 0;
out_free:
	free(w.up_mark);
	free(w.ckpt);
	free(w.reply);
	free(w.list);
	free(w.byslot);
	if (w.statm_fd >= 0)
		close(w.statm_fd);
	if (w.cg_fd >= 0)
		close(w.cg_fd);
	return rc;
}
