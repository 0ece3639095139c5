/*
 * Control requests: spawn and stop, asked of the supervisor by any attached process (see
 * sup.h). The supervisor hosts an inbox (an agent slot, type "control", in no registry
 * namespace) whose handle it publishes in the header (shm_hdr.ctl_inbox). Requesters
 * ipc_call() it; the supervisor serves between the other events of its io_uring loop.
 *
 * Wakeup: the supervisor's process slot stays marked parked, so every producer that puts a
 * request in the inbox rings its doorbell (ipc_ring(): a CAS of parked 1 -> 0, a doorbell
 * increment, a futex wake). The supervisor keeps one io_uring FUTEX_WAIT on its doorbell
 * queued; when it completes, it marks itself parked again, reads the doorbell, drains the
 * inbox and queues the next wait on the value it read: the Dekker protocol of ipc/wake.c,
 * with the drain as the has_work() check. A request published after the drain rings a
 * doorbell that no longer holds the value read, and the wait completes at once (-EAGAIN).
 *
 * Crash safety: the supervisor spawns and stops under its own claim tag, as any process
 * does (workers/agent.c); a supervisor killed midway leaves an agent slot tagged with its
 * dead (slot 0, epoch) for a post-mortem, and the request in flight in its slot's intent
 * line (ctl_intent: op, requester, reference). A requester that died before its request was
 * served gets nothing: the request is dropped unserved; one that dies after is answered into
 * an inbox its repair then frees. Replies never wait for room (a full inbox drops them), so
 * no requester can stall the supervisor's restart path.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <liburing.h>

#include "ipc/ipc.h"
#include "ipc/ipc_int.h"
#include "ipc/uring_futex.h"
#include "shm/log.h"
#include "shm/registry.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

/* Index of ctl_intent words (the supervisor's process slot, intent line). */
enum { CI_OP = 0, CI_FROM = 1, CI_REF = 2, CI_AGENT = 3 };

struct sup_ctl {
	struct shm_seg *seg;
	shoal_handle_t inbox;
	uint32_t slot;		/* the inbox's agent slot */
	uint32_t nworkers;	/* worker i is process slot i + 1 */
	int32_t *node_of;	/* worker index -> NUMA node, -1 unknown */
	uint32_t *load;		/* scratch: agents per worker */
	bool polled;		/* no io_uring futex wait: served from the tick */
	bool armed;		/* a FUTEX_WAIT is queued or in flight */
	bool closing;		/* sup_ctl_close(): refuse everything */
	bool test_die;		/* $SHOAL_TEST_CTL_DIE: SIGKILL ourselves before the first answer */
	bool asym;		/* parks issue the parker's membarrier() (ipc/wake.c) */
	struct sup_task *tasks; /* the tasks whose agents run (IPC_CTL_TASKS_MAX) */
	uint32_t ntasks;	/* in use, packed at the front */
};

/* A task in flight: its agent, and whom to answer if the supervisor has to end it. */
struct sup_task {
	shoal_handle_t agent; /* the task's agent */
	shoal_handle_t from;  /* the requester's inbox (or agent) */
	uint64_t ref;	      /* the request's ref: the answer's */
	uint64_t deadline_ns; /* shm_now_ns() past which it is ended with -ETIMEDOUT */
	uint32_t windex;      /* the worker hosting the agent */
};

/* See sup.h. Any thread. */

static struct shm_proc *self_proc(const struct sup_ctl *ctl)
{
	return shm_proc_at(ctl->seg, ctl->seg->self);
}

/* See sup.h. The supervisor, once, before it launches its workers. */
int sup_ctl_open(struct shm_seg *seg, const int32_t *node_of, uint32_t nworkers,
		 struct sup_ctl **out)
{
	struct sup_ctl *ctl = calloc(1, sizeof(*ctl));
	struct shm_proc *p;
	int r = -ENOMEM;

	if (!ctl)
		return -ENOMEM;
	ctl->asym = ipc_park_wants_barrier();
	ctl->node_of = calloc(nworkers ? nworkers : 1, sizeof(*ctl->node_of));
	ctl->load = calloc(nworkers ? nworkers : 1, sizeof(*ctl->load));
	ctl->tasks = calloc(IPC_CTL_TASKS_MAX, sizeof(*ctl->tasks));
	if (!ctl->node_of || !ctl->load || !ctl->tasks)
		goto out_free;
	if (nworkers)
		memcpy(ctl->node_of, node_of, nworkers * sizeof(*node_of));
	ctl->seg = seg;
	ctl->nworkers = nworkers;
	/* test hook (tests/test_control.c): a supervisor killed with a request done, unanswered */
#ifdef SHOAL_TEST_HOOKS
	ctl->test_die = getenv("SHOAL_TEST_CTL_DIE") != NULL;
#endif
	/* type and name for tools only (the inbox is in no namespace) */
	r = ipc_inbox_open_as(seg, "control", "(supervisor)", &ctl->inbox);
	if (r)
		goto out_free;
	ctl->slot = shoal_handle_slot(ctl->inbox);
	p = shm_proc_at(seg, seg->self);
	for (unsigned i = 0; i < 6; i++)
		/* relaxed: owner-written; read by post-mortem tools only */
		atomic_store_explicit(&p->ctl_intent[i], 0, memory_order_relaxed);
	/* relaxed: producers take the futex path for any mechanism but eventfd */
	atomic_store_explicit(&p->wake_mech, IPC_WAKE_FUTEX, memory_order_relaxed);
	/* P0: release: pairs with P1 in ipc_ctl_call(): the inbox is ready before it is found. */
	atomic_store_explicit(&shm_hdr(seg)->ctl_inbox, ctl->inbox, memory_order_release);
	shm_change_bump(seg);
	*out = ctl;
	return 0;

out_free:
	free(ctl->node_of);
	free(ctl->load);
	free(ctl->tasks);
	free(ctl);
	return r;
}

static void drain(struct sup_ctl *ctl);

/* See sup.h. The supervisor, as it stops. */
void sup_ctl_close(struct sup_ctl *ctl)
{
	struct shm_proc *p;

	if (!ctl)
		return;
	p = self_proc(ctl);
	ctl->closing = true;
	drain(ctl); /* what is queued gets an answer (-ESHUTDOWN) rather than a timeout */
	/* relaxed: requesters that still find the handle get -ENOENT/-ESTALE from the send */
	atomic_store_explicit(&shm_hdr(ctl->seg)->ctl_inbox, 0, memory_order_relaxed);
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
	atomic_store_explicit(&p->wake_mech, 0, memory_order_relaxed);
	ipc_inbox_close(ctl->seg, ctl->inbox);
	free(ctl->node_of);
	free(ctl->load);
	free(ctl->tasks);
	free(ctl);
}

/* --- serving --- */

/* Is s a NUL-terminated string within cap bytes? Its length in *len. */
static bool is_terminated(const char *s, size_t cap, size_t *len)
{
	const char *z = memchr(s, 0, cap);

	if (!z)
		return false;
	*len = (size_t)(z - s);
	return true;
}

static bool is_stopping(const struct sup_ctl *ctl)
{
	/* relaxed: a status word; a request racing the stop is refused or served, both fine */
	uint32_t st = atomic_load_explicit(&shm_hdr(ctl->seg)->state, memory_order_relaxed);

	return ctl->closing || st == SHM_INST_STOPPING || st == SHM_INST_STOPPED;
}

/* Count the live agents of each worker into ctl->load. */
static void count_load(struct sup_ctl *ctl)
{
	uint32_t n = shm_hdr(ctl->seg)->cfg.max_agents;

	memset(ctl->load, 0, ctl->nworkers * sizeof(*ctl->load));
	for (uint32_t i = 0; i < n; i++) {
		/* relaxed: a load estimate */
		uint32_t w = atomic_load_explicit(&shm_agent_at(ctl->seg, i)->worker,
						  memory_order_relaxed);

		if (w >= 2 && w - 2 < ctl->nworkers)
			ctl->load[w - 2]++;
	}
}

static bool worker_is_running(const struct sup_ctl *ctl, uint32_t windex)
{
	/* relaxed: a preference only; an agent on a worker being restarted starts with it */
	return atomic_load_explicit(&shm_proc_at(ctl->seg, windex + 1)->state,
				    memory_order_relaxed) == SHM_PROC_RUNNING;
}

/*
 * The worker a spawn goes to: the hinted one, or the least loaded (running ones first) of
 * all or of a node's. 0 and *windex, -ENXIO (no such worker or none on the node), -EINVAL.
 */
static int pick_worker(struct sup_ctl *ctl, const struct ipc_ctl_req *q, uint32_t *windex)
{
	uint32_t best = UINT32_MAX;
	bool best_running = false;

	if (q->hint == IPC_CTL_WORKER) {
		if (q->where < 0 || (uint32_t)q->where >= ctl->nworkers)
			return -ENXIO;
		*windex = (uint32_t)q->where;
		return 0;
	}
	if (q->hint != IPC_CTL_ANY && q->hint != IPC_CTL_NODE)
		return -EINVAL;
	if (q->hint == IPC_CTL_NODE && q->where < 0)
		return -EINVAL;
	count_load(ctl);
	for (uint32_t i = 0; i < ctl->nworkers; i++) {
		bool running = worker_is_running(ctl, i);

		if (q->hint == IPC_CTL_NODE && ctl->node_of[i] != q->where)
			continue;
		if (best == UINT32_MAX || (running && !best_running) ||
		    (running == best_running && ctl->load[i] < ctl->load[best])) {
			best = i;
			best_running = running;
		}
	}
	if (best == UINT32_MAX)
		return -ENXIO;
	*windex = best;
	return 0;
}

/* An agent's name and type, NUL-terminated, for an event line ("?" without a slot). */
struct agent_label {
	char name[sizeof(((struct shm_agent *)0)->name) + 1];
	char type[SHM_TYPE_MAX + 1];
};

/*
 * a's label. Its type and name are written before the slot's publication and never after;
 * read it before a stop request, whose worker may free the slot at once.
 */
static void label_of(const struct shm_agent *a, struct agent_label *l)
{
	snprintf(l->name, sizeof(l->name), "%.*s", a ? (int)sizeof(a->name) : 1, a ? a->name : "?");
	snprintf(l->type, sizeof(l->type), "%.*s", a ? (int)sizeof(a->type) : 1, a ? a->type : "?");
}

/* The event line of a spawn or stop request served: the agent, its type and its worker. */
static void served(const char *event, const char *what, const struct agent_label *l,
		   shoal_handle_t h, uint32_t windex)
{
	shm_log_event(event, "supervisor",
		      json_pack("{s:s, s:s, s:i, s:I}", "agent", l->name, "type", l->type, "worker",
				(int)windex, "handle", (json_int_t)h),
		      "%s agent '%s' (%s) on worker %u", what, l->name, l->type, windex);
}

static int do_spawn(struct sup_ctl *ctl, const struct ipc_ctl_req *q, struct ipc_ctl_reply *rep)
{
	struct agent_label l;
	size_t tlen, nlen;
	shoal_handle_t h;
	uint32_t windex;
	int r;

	if (!is_terminated(q->type, sizeof(q->type), &tlen) ||
	    !is_terminated(q->name, sizeof(q->name), &nlen))
		return -EPROTO;
	if (!tlen || !wrk_type_is_known(q->type))
		return -ENOENT;
	if (nlen > SHOAL_NAME_MAX)
		return -EINVAL;
	r = pick_worker(ctl, q, &windex);
	if (r)
		return r;
	rep->windex = (int32_t)windex;
	rep->node = ctl->node_of[windex];
	r = wrk_agent_spawn(ctl->seg, q->type, nlen ? q->name : NULL, windex + 1, &h);
	if (r)
		return r;
	rep->handle = h;
	label_of(wrk_agent_get(ctl->seg, h), &l);
	served("agent.spawn", "spawned", &l, h, windex);
	return 0;
}

static int do_stop(struct sup_ctl *ctl, const struct ipc_ctl_req *q, struct ipc_ctl_reply *rep)
{
	shoal_handle_t h = q->handle;
	struct shm_agent *a;
	struct agent_label l;
	uint32_t host, st;
	size_t nlen;
	int r;

	if (h == SHOAL_HANDLE_NONE) {
		if (!is_terminated(q->name, sizeof(q->name), &nlen))
			return -EPROTO;
		if (!nlen || nlen > SHOAL_NAME_MAX)
			return -EINVAL;
		if (shm_reg_lookup(ctl->seg, SHM_NS_DEFAULT, q->name, nlen, &h, NULL))
			return -ENOENT;
	}
	rep->handle = h;
	a = wrk_agent_get(ctl->seg, h);
	if (!a)
		return wrk_agent_stop(ctl->seg, h); /* -ENOENT or -ESTALE, as it tells them */
	/* A0: pairs with the spawner's release of ctl (H0): worker is the hosting slot */
	host = atomic_load_explicit(&a->worker, memory_order_acquire);
	if (host < 2 || host - 2 >= ctl->nworkers)
		return -EPERM; /* a client's inbox, or ours */
	rep->windex = (int32_t)(host - 2);
	rep->node = ctl->node_of[host - 2];
	/* T1: pairs with T0 in wrk_agent_stop(): a stop already requested */
	st = atomic_load_explicit(&a->state, memory_order_acquire);
	if (st == SHM_AGENT_STOPPING || st == SHM_AGENT_STOPPED)
		return -EALREADY;
	label_of(a, &l);
	r = wrk_agent_stop(ctl->seg, h);
	if (!r)
		served("agent.stop", "stopping", &l, h, host - 2);
	return r;
}

/*
 * A task: spawn an unnamed agent of q->type, hand it the argument (after the request in m) as
 * the requester's call, and track it. 0: the agent answers; else the verdict, nothing left.
 */
static int do_task(struct sup_ctl *ctl, const struct ipc_ctl_req *q, const struct ipc_msg *m)
{
	struct ipc_ctl_reply rep;
	struct ipc_ctl_req sq = *q;
	struct sup_task *t;
	int r;

	if (ctl->ntasks == IPC_CTL_TASKS_MAX)
		return -ENOSPC;
	sq.name[0] = 0;
	r = do_spawn(ctl, &sq, &rep);
	if (r)
		return r;
	/* a new agent's empty mailbox takes it: no wait; a failure ends the agent at once */
	r = ipc_send(ctl->seg, rep.handle, m->from, IPC_CTL_TASK_MSG, IPC_F_CALL, m->ref,
		     (const uint8_t *)m->data + sizeof(*q), m->len - (uint32_t)sizeof(*q), 0);
	if (r) {
		wrk_agent_stop(ctl->seg, rep.handle);
		return r == -EAGAIN ? -ENOSPC : r;
	}
	t = &ctl->tasks[ctl->ntasks++];
	*t = (struct sup_task){.agent = rep.handle,
			       .from = m->from,
			       .ref = m->ref,
			       .deadline_ns = q->handle,
			       .windex = (uint32_t)rep.windex};
	return 0;
}

/* End task i: answer its requester with error err (never waiting) and stop its agent. */
static void task_end(struct sup_ctl *ctl, uint32_t i, int err)
{
	struct sup_task *t = &ctl->tasks[i];

	if (err)
		ipc_send(ctl->seg, t->from, ctl->inbox, (uint32_t)err, IPC_F_REPLY | IPC_F_ERROR,
			 t->ref, NULL, 0, 0);
	if (wrk_agent_get(ctl->seg, t->agent))
		wrk_agent_stop(ctl->seg, t->agent);
	ctl->tasks[i] = ctl->tasks[--ctl->ntasks];
}

/* Forget tasks whose agents have stopped (they answered); end those past their deadline. */
static void tasks_scan(struct sup_ctl *ctl)
{
	uint64_t now = shm_now_ns();

	for (uint32_t i = 0; i < ctl->ntasks;) {
		struct sup_task *t = &ctl->tasks[i];
		struct shm_agent *a = wrk_agent_get(ctl->seg, t->agent);

		if (!a) {
			ctl->tasks[i] = ctl->tasks[--ctl->ntasks];
			continue;
		}
		if (now >= t->deadline_ns) {
			task_end(ctl, i, ETIMEDOUT);
			continue;
		}
		i++;
	}
}

/* See sup.h. The supervisor, repairing worker windex's process slot. */
void sup_ctl_worker_died(struct sup_ctl *ctl, uint32_t windex)
{
	if (!ctl)
		return;
	for (uint32_t i = 0; i < ctl->ntasks;) {
		if (ctl->tasks[i].windex != windex) {
			i++;
			continue;
		}
		/* an answer already sent makes this one a duplicate, dropped by its ipc_call() */
		task_end(ctl, i, ECONNRESET);
	}
}

/*
 * Is the requester gone? Its inbox slot is no longer its own, or the process holding the
 * inbox (its claim tag is the inbox's ctl) has died: its slot says so, or the kernel does.
 * kill(pid, 0) rather than shm_tag_is_dead()'s probe, which reads /proc (10 us here): a
 * reused pid only means a dead requester is served, its answer freed with its inbox.
 */
static bool requester_is_gone(const struct sup_ctl *ctl, shoal_handle_t from)
{
	struct shm_agent *a = wrk_agent_get(ctl->seg, from);
	uint64_t c, own;

	if (!a)
		return true;
	/* A1: pairs with AC0 in shm_agent_alloc(): the holder's tag */
	c = atomic_load_explicit(&a->ctl, memory_order_acquire);
	if (!c || c == UINT64_MAX)
		return false; /* an agent's, hosted by a worker we watch */
	if (shm_tag_is_dead(ctl->seg, c, false))
		return true;
	/* C1 partner (shm/proc.c): the owner word of the holder's slot */
	own = atomic_load_explicit(&shm_proc_at(ctl->seg, SHM_TAG_SLOT(c))->own,
				   memory_order_acquire);
	return kill((pid_t)(own >> 32), 0) < 0 && errno == ESRCH;
}

static void count(_Atomic uint64_t *ctr)
{
	/* relaxed: a statistic; single writer (the supervisor) */
	atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed);
}

/* Serve one request message m (peeked); the caller consumes it. */
static void serve_one(struct sup_ctl *ctl, const struct ipc_msg *m)
{
	struct shm_hdr *h = shm_hdr(ctl->seg);
	struct shm_proc *p = self_proc(ctl);
	struct ipc_ctl_reply rep = {.rc = -EPROTO, .windex = -1, .node = -1};
	struct ipc_ctl_req q;
	int r;

	if (!(m->flags & IPC_F_CALL) || m->from == SHOAL_HANDLE_NONE || (m->flags & IPC_F_REPLY) ||
	    requester_is_gone(ctl, m->from)) {
		count(&h->ctl_dropped);
		return;
	}
	if (m->type == IPC_CTL_MSG && m->len >= sizeof(q)) {
		memcpy(&q, m->data, sizeof(q));
		/* relaxed: the intent line is read by post-mortem tools only (after our death) */
		atomic_store_explicit(&p->ctl_intent[CI_FROM], m->from, memory_order_relaxed);
		atomic_store_explicit(&p->ctl_intent[CI_REF], m->ref, memory_order_relaxed);
		/* a task's handle word is its deadline: no agent yet */
		atomic_store_explicit(&p->ctl_intent[CI_AGENT], q.op == IPC_CTL_TASK ? 0 : q.handle,
				      memory_order_relaxed);
		atomic_store_explicit(&p->ctl_intent[CI_OP], q.op, memory_order_relaxed);
		if (is_stopping(ctl))
			rep.rc = -ESHUTDOWN;
		else if (q.flags || (q.op != IPC_CTL_TASK && m->len != sizeof(q)))
			rep.rc = -EPROTO;
		else if (q.op == IPC_CTL_TASK)
			rep.rc = do_task(ctl, &q, m);
		else if (q.op == IPC_CTL_SPAWN)
			rep.rc = do_spawn(ctl, &q, &rep);
		else if (q.op == IPC_CTL_STOP)
			rep.rc = do_stop(ctl, &q, &rep);
		atomic_store_explicit(&p->ctl_intent[CI_AGENT], rep.handle, memory_order_relaxed);
	}
	if (ctl->test_die)
		raise(SIGKILL);
	/*
	 * Counted before the answer goes out: a requester that reads the counters after its
	 * answer sees its own request in them (the reply's release publishes the increments).
	 */
	count(&h->ctl_served);
	if (rep.rc)
		count(&h->ctl_refused);
	if (m->type == IPC_CTL_MSG && m->len >= sizeof(q) && q.op == IPC_CTL_TASK) {
		/* the task's agent answers; a refusal is an error reply, never waiting */
		r = rep.rc ? ipc_reply_error(ctl->seg, ctl->inbox, m, -rep.rc) : 0;
		atomic_store_explicit(&p->ctl_intent[CI_OP], 0, memory_order_relaxed);
		if (r)
			count(&h->ctl_dropped);
		return;
	}
	/* never wait for room: a requester that lets its inbox fill up loses its answer */
	r = ipc_send(ctl->seg, m->from, ctl->inbox, IPC_CTL_MSG, IPC_F_REPLY, m->ref, &rep,
		     sizeof(rep), 0);
	/* relaxed: as the intent's other words */
	atomic_store_explicit(&p->ctl_intent[CI_OP], 0, memory_order_relaxed);
	if (r) {
		/* relaxed: single writer (the supervisor); statistics */
		atomic_fetch_sub_explicit(&h->ctl_served, 1, memory_order_relaxed);
		if (rep.rc)
			atomic_fetch_sub_explicit(&h->ctl_refused, 1, memory_order_relaxed);
		count(&h->ctl_dropped);
	}
}

/* Serve every queued request. */
static void drain(struct sup_ctl *ctl)
{
	struct ipc_msg m;
	uint32_t n = 0;

	while (ipc_mbox_peek(ctl->seg, ctl->slot, &m) == 0) {
		serve_one(ctl, &m);
		ipc_mbox_consume(ctl->seg, ctl->slot, &m);
		n++;
	}
	if (n) {
		struct shm_agent *a = shm_agent_at(ctl->seg, ctl->slot);

		/* relaxed: a statistic (inspect's "handled"); single writer */
		atomic_fetch_add_explicit(&a->handled, n, memory_order_relaxed);
		shm_change_bump(ctl->seg); /* for whoever waits on the counters */
	}
}

/* See sup.h. The supervisor's thread. */
void sup_ctl_on_wake(struct sup_ctl *ctl, struct io_uring *ring, uint64_t ud, int res)
{
	struct shm_proc *p;
	struct io_uring_sqe *sqe;
	uint32_t d;

	if (!ctl)
		return;
	p = self_proc(ctl);
	ctl->armed = false;
	if (res == -EINVAL || res == -ENOSYS || res == -EOPNOTSUPP) {
		/* no io_uring futex wait here: no producer need ring us; the tick serves */
		ctl->polled = true;
		/* relaxed: producers that read the old values make one spare syscall */
		atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
		atomic_store_explicit(&p->wake_mech, 0, memory_order_relaxed);
	}
	if (ctl->polled) {
		drain(ctl);
		return;
	}
	/*
	 * D2: pairs with D3 in claim_wake() (ipc/wake.c). Before the parked store, as in
	 * ipc_waiter_wait(): whoever takes this wait's wake bumps the doorbell past d, so the
	 * FUTEX_WAIT armed below ends at once instead of sleeping with parked clear.
	 */
	d = atomic_load_explicit(&p->doorbell, memory_order_acquire);
	/* relaxed + the fence: the store half of the Dekker pair (ipc/wake.c) */
	atomic_store_explicit(&p->parked, 1, memory_order_relaxed);
	/*
	 * The producers' half of D1 where they skip it (the asymmetric pair, ipc/wake.c). Should
	 * it fail, a request whose ring was skipped is served at the next tick, which marks us
	 * parked again and drains.
	 */
	if (ctl->asym)
		ipc_park_barrier();
	/* D0: pairs with D1 in ipc_ring(): parked store before the inbox loads of the drain;
	 * a fence over atomics only, as in ipc/wake.c (which says why) */
	atomic_thread_fence(memory_order_seq_cst);
	if (__builtin_expect(ipc_wake_test_hook != NULL, 0))
		ipc_wake_test_hook(IPC_HOOK_PARKED);
	drain(ctl);
	sqe = ipc_uring_sqe(ring);
	if (!sqe) {
		ctl->polled = true; /* the ring is full even after a submit: the tick serves */
		return;
	}
	ipc_prep_futex(sqe, IORING_OP_FUTEX_WAIT, &p->doorbell, d);
	io_uring_sqe_set_data64(sqe, ud);
	ctl->armed = true;
}

/* See sup.h. The supervisor's thread, on its periodic tick. */
void sup_ctl_tick(struct sup_ctl *ctl)
{
	struct shm_proc *p;

	if (!ctl)
		return;
	tasks_scan(ctl);
	if (ctl->polled) {
		drain(ctl);
		return;
	}
	/*
	 * A safety net for a producer killed between its publish and its ring (or after it
	 * took the wake, before its syscall: parked then reads 0 and nobody else rings): mark
	 * us parked again and look. The queued wait stays; a ring from now on ends it.
	 */
	p = self_proc(ctl);
	atomic_store_explicit(&p->parked, 1, memory_order_relaxed);
	/* the parker's barrier and D0, as in sup_ctl_on_wake() */
	if (ctl->asym)
		ipc_park_barrier();
	atomic_thread_fence(memory_order_seq_cst);
	drain(ctl);
}
