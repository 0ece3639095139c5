/*
 * Messaging: cast, batched send, call (synchronous and asynchronous), reply, broadcast, and
 * client inboxes. Built on ipc_mbox_put() (mbox.c) and the doorbells (wake.c).
 *
 * A send checks the handle (slot in range, generation equal, slot not FREE), enqueues, then
 * rings the process hosting the agent (agent.worker - 1). An agent that is DOWN still has
 * its mailbox: sends queue and are delivered after its restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc_int.h"
#include "shm/hist.h"
#include "shm/registry.h"

#define IPC_REPLY_TIMEOUT_MS 5000
#define IPC_CALL_SPIN_NS     20000u

uint32_t ipc_agent_host(const struct shm_seg *seg, uint32_t slot)
{
	/* relaxed: a stale host only costs a wasted or late ring; the worker rechecks */
	uint32_t w = atomic_load_explicit(&shm_agent_at(seg, slot)->worker, memory_order_relaxed);

	return w ? w - 1 : UINT32_MAX;
}

/*
 * Check a destination handle and resolve it into *d, once per send (every layer below takes
 * d): 0, -ENOENT or -ESTALE.
 */
static inline __attribute__((always_inline)) int check_to(struct shm_seg *seg, shoal_handle_t to,
							  struct ipc_dest *d)
{
	uint32_t slot = shoal_handle_slot(to);
	const struct shm_agent *a;

	if (to == SHOAL_HANDLE_NONE || slot >= shm_hdr(seg)->cfg.max_agents)
		return -ENOENT;
	a = shm_agent_at(seg, slot);
	/*
	 * A0: pairs with S2 in shm_agent_alloc() (the new gen comes with STARTING: an older
	 * handle is turned away below) and with S3 in ipc_inbox_open() or the worker's
	 * RUNNING (the mailbox was initialised before). A handle of a STARTING agent
	 * comes from its spawner, after the init (I0). A sender that passes here and is
	 * then overtaken by the slot's free and reallocation is turned away at its claim
	 * (G0 in ipc/mbox.c, "Re-initialisation").
	 */
	if (atomic_load_explicit(&a->state, memory_order_acquire) == SHM_AGENT_FREE)
		return -ENOENT;
	if (atomic_load_explicit(&a->gen, memory_order_relaxed) != shoal_handle_gen(to))
		return -ESTALE;
	ipc_dest_at(seg, slot, shoal_handle_gen(to), d);
	return 0;
}

/* Whether the agent `to` named is stopped for good (or its slot went to another). */
static bool is_removed(const struct shm_seg *seg, shoal_handle_t to)
{
	const struct shm_agent *a = shm_agent_at(seg, shoal_handle_slot(to));
	/*
	 * K0's fence orders it (see ipc_call()). acquire: pairs with the release store of
	 * STOPPED (wrk_agent_finish_stop()): a reply the callee sent before it stopped is
	 * visible to ipc_call()'s last look for one.
	 */
	uint32_t st = atomic_load_explicit(&a->state, memory_order_acquire);

	return st == SHM_AGENT_STOPPED || st == SHM_AGENT_FREE ||
	       atomic_load_explicit(&a->gen, memory_order_relaxed) != shoal_handle_gen(to);
}

/* Check and resolve `to` into *d, then enqueue; no ring. Inlined: the single send's path. */
static inline __attribute__((always_inline)) int
put_one(struct shm_seg *seg, shoal_handle_t to, struct ipc_dest *d, shoal_handle_t from,
	uint32_t type, uint32_t flags, uint64_t ref, const void *data, uint32_t len, int timeout_ms)
{
	struct ipc_wire w = {.from = from, .ref = ref, .type = type, .flags = flags, .len = len};
	int r;

	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	if (len > shm_hdr(seg)->cfg.max_msg)
		return -EMSGSIZE;
	r = check_to(seg, to, d);
	if (r)
		return r;
	/* d carries the handle's gen: the claim re-checks it (G0 in mbox.c) */
	if (len <= IPC_SMALL_MAX) {
		r = ipc_mbox_put_small(seg, d, &w, data);
		if (r != -EAGAIN)
			return r;
	}
	r = ipc_mbox_put_many(seg, d, &w, &data, 1, timeout_ms);
	return r < 0 ? r : 0;
}

int ipc_send(struct shm_seg *seg, shoal_handle_t to, shoal_handle_t from, uint32_t type,
	     uint32_t flags, uint64_t ref, const void *data, uint32_t len, int timeout_ms)
{
	struct ipc_dest d;
	uint32_t host;
	uint64_t t0 = shm_hist_begin(seg); /* 1 send in SHM_HIST_SAMPLE is timed */
	int r = put_one(seg, to, &d, from, type, flags & ~IPC_F_REDELIVERED, ref, data, len,
			timeout_ms);

	if (r)
		return r;
	/*
	 * ipc_ring()'s check inline: D1, then the parked flag; the ring itself (which checks
	 * again) only for a parked host. 3 ns less per spinning round trip, measured
	 * alternately. D1, as in ipc_ring(): our message before the loads of the host and its
	 * parked flag; a compiler barrier where this process is registered for the parkers'
	 * membarrier(), else a fence (the asymmetric pair, ipc/wake.c).
	 */
	ipc_ring_fence();
	/* the host after D1 too: a worker that took the agent before it parked is seen */
	host = ipc_dest_host(&d);
	/* relaxed: ordered by the fence; ipc_ring() elects the waker */
	if (host < shm_hdr(seg)->cfg.max_procs &&
	    atomic_load_explicit(&shm_proc_at(seg, host)->parked, memory_order_relaxed))
		ipc_ring(seg, host);
	shm_hist_end(seg, SHM_HIST_SEND, t0);
	return 0;
}

/* Add proc to a small set; returns the new count. */
static uint32_t add_host(uint32_t *hosts, uint32_t n, uint32_t cap, uint32_t proc)
{
	for (uint32_t i = 0; i < n; i++)
		if (hosts[i] == proc)
			return n;
	if (n < cap)
		hosts[n++] = proc;
	return n;
}

#define IPC_HOSTS_MAX 64

#define IPC_RUN_MAX 64

/* Hosts a batch has put messages for and not rung yet. */
struct host_set {
	uint32_t procs[IPC_HOSTS_MAX];
	uint32_t n;
};

static void hosts_ring(struct shm_seg *seg, struct host_set *hs)
{
	if (hs->n)
		ipc_ring_many(seg, hs->procs, hs->n);
	hs->n = 0;
}

static void hosts_add(struct shm_seg *seg, struct host_set *hs, uint32_t proc)
{
	if (proc == UINT32_MAX)
		return;
	if (hs->n == IPC_HOSTS_MAX)
		hosts_ring(seg, hs); /* more hosts than the set holds: ring these first */
	hs->n = add_host(hs->procs, hs->n, IPC_HOSTS_MAX, proc);
}

/*
 * Put msgs[0..] that go to the same receiver as msgs[0] (a run, up to IPC_RUN_MAX) with as
 * few claims as possible. Before waiting for space it rings every host it owes a ring (its
 * consumer may be parked on the messages we already put). Returns how many went in, or a
 * negative error for msgs[0]; *stopped when it could not put the whole run.
 */
static int put_run(struct shm_seg *seg, shoal_handle_t from, const struct ipc_out *msgs, uint32_t n,
		   int timeout_ms, struct host_set *hs, bool *stopped)
{
	uint32_t run = 0, done = 0, max_msg = shm_hdr(seg)->cfg.max_msg;
	struct ipc_wire w[IPC_RUN_MAX];
	const void *data[IPC_RUN_MAX];
	struct ipc_dest d;
	int r;

	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	r = check_to(seg, msgs[0].to, &d);
	if (r)
		return r;
	while (run < n && run < IPC_RUN_MAX && msgs[run].to == msgs[0].to &&
	       msgs[run].len <= max_msg) {
		w[run] = (struct ipc_wire){
			.from = from, .type = msgs[run].type, .len = msgs[run].len};
		data[run] = msgs[run].data;
		run++;
	}
	if (!run)
		return -EMSGSIZE;
	while (done < run) {
		r = ipc_mbox_put_many(seg, &d, w + done, data + done, run - done, 0);
		if (r == -EAGAIN && timeout_ms != 0) {
			if (done)
				hosts_add(seg, hs, ipc_dest_host(&d));
			hosts_ring(seg, hs);
			r = ipc_mbox_put_many(seg, &d, w + done, data + done, run - done,
					      timeout_ms);
		}
		if (r < 0) {
			*stopped = true;
			break;
		}
		done += (uint32_t)r;
	}
	if (done)
		hosts_add(seg, hs, ipc_dest_host(&d));
	return done ? (int)done : r;
}

int ipc_send_batch(struct shm_seg *seg, shoal_handle_t from, const struct ipc_out *msgs, uint32_t n,
		   int timeout_ms)
{
	struct host_set hs = {.n = 0};
	uint64_t t0 = shm_hist_begin(seg); /* a batch is one tick of the sampling */
	uint32_t i = 0;
	int r = 0;

	while (i < n) {
		bool stopped = false;

		r = put_run(seg, from, msgs + i, n - i, timeout_ms, &hs, &stopped);
		if (r <= 0)
			break;
		i += (uint32_t)r;
		if (stopped)
			break; /* the run stopped short: full */
	}
	hosts_ring(seg, &hs);
	if (__builtin_expect(t0 && i, 0)) {
		uint64_t now = shm_now_ns();

		/* the send histogram is per message: the batch's time per message */
		shm_hist_add(seg, SHM_HIST_SEND, now > t0 ? (now - t0) / i : 0);
	}
	return i ? (int)i : r;
}

/* See ipc.h. Any process with a process slot. */
int ipc_send_each(struct shm_seg *seg, shoal_handle_t from, const struct ipc_out_ref *msgs,
		  uint32_t n, int *errs)
{
	uint32_t max_msg = shm_hdr(seg)->cfg.max_msg;
	struct host_set hs = {.n = 0};
	struct ipc_wire w[IPC_RUN_MAX];
	const void *data[IPC_RUN_MAX];
	uint64_t t0 = shm_hist_begin(seg); /* as ipc_send_batch(): one tick per call */
	uint32_t i = 0;
	int sent = 0;

	while (i < n) {
		shoal_handle_t to = msgs[i].to;
		uint32_t run = 0, done = 0;
		struct ipc_dest d;
		int r = seg->writable && seg->self != UINT32_MAX ? check_to(seg, to, &d) : -EROFS;

		while (i + run < n && run < IPC_RUN_MAX && msgs[i + run].to == to) {
			const struct ipc_out_ref *m = &msgs[i + run];

			w[run] = (struct ipc_wire){.from = from,
						   .ref = m->ref,
						   .type = m->type,
						   .flags = m->flags & ~IPC_F_REDELIVERED,
						   .len = m->len};
			data[run] = m->data;
			if (m->len > max_msg)
				r = -EMSGSIZE;
			run++;
		}
		while (!r && done < run) {
			/* one claim while they fit before the ring's end, so maybe two */
			r = ipc_mbox_put_many(seg, &d, w + done, data + done, run - done, 0);
			if (r > 0) {
				done += (uint32_t)r;
				r = 0;
			}
		}
		if (done)
			hosts_add(seg, &hs, ipc_dest_host(&d));
		for (uint32_t k = 0; errs && k < run; k++)
			errs[i + k] = k < done ? 0 : r;
		sent += (int)done;
		i += run;
	}
	hosts_ring(seg, &hs);
	if (__builtin_expect(t0 && sent > 0, 0)) {
		uint64_t now = shm_now_ns();

		shm_hist_add(seg, SHM_HIST_SEND, now > t0 ? (now - t0) / (uint32_t)sent : 0);
	}
	return sent;
}

/*
 * A fresh call reference, unique per process lifetime: (epoch, 31-bit counter), with
 * IPC_REF_SYNC set for ipc_call()'s own calls: a reply carrying that mark that is not the
 * one a call awaits is late or a duplicate, and ipc_mbox_take_reply() drops it.
 */
static uint64_t next_ref(struct shm_seg *seg, bool sync)
{
	static _Atomic uint32_t ctr;
	/* relaxed: uniqueness only */
	uint32_t c = atomic_fetch_add_explicit(&ctr, 1, memory_order_relaxed) + 1;

	c &= (uint32_t)IPC_REF_SYNC - 1u;
	if (!c)
		c = 1; /* after a wrap: 0 means "no ref" */
	return ((uint64_t)seg->epoch << 32) | c | (sync ? IPC_REF_SYNC : 0);
}

int ipc_call_async(struct shm_seg *seg, shoal_handle_t from, shoal_handle_t to, uint32_t type,
		   const void *data, uint32_t len, uint64_t *ref_out)
{
	uint64_t ref = next_ref(seg, false);
	int r = ipc_send(seg, to, from, type, IPC_F_CALL, ref, data, len, 0);

	if (r == 0 && ref_out)
		*ref_out = ref;
	return r;
}

int ipc_reply(struct shm_seg *seg, shoal_handle_t self, const struct ipc_msg *m, const void *data,
	      uint32_t len)
{
	if (!(m->flags & IPC_F_CALL) || m->from == SHOAL_HANDLE_NONE)
		return -EINVAL;
	return ipc_send(seg, m->from, self, m->type, IPC_F_REPLY, m->ref, data, len,
			IPC_REPLY_TIMEOUT_MS);
}

int ipc_reply_error(struct shm_seg *seg, shoal_handle_t self, const struct ipc_msg *m, int err)
{
	if (!(m->flags & IPC_F_CALL) || m->from == SHOAL_HANDLE_NONE)
		return 0;
	if (err < 0)
		err = -err;
	return ipc_send(seg, m->from, self, err ? (uint32_t)err : EIO, IPC_F_REPLY | IPC_F_ERROR,
			m->ref, NULL, 0, 0);
}

/*
 * See ipc.h. Whoever finishes the agent's stop, holding its claim (no one else consumes its
 * mailbox any more), after storing STOPPED.
 */
int ipc_refuse_queued(struct shm_seg *seg, shoal_handle_t self, int err)
{
	uint32_t slot = shoal_handle_slot(self);
	uint64_t cells = shm_hdr(seg)->cfg.mbox_cells;
	int answered = 0;

	/*
	 * K1: pairs with K0 in ipc_call(): STOPPED before our look at the mailbox. A Dekker
	 * pair, so a seq_cst fence: as seq_cst accesses it would need the STOPPED store and the
	 * peek's loads here, and every send's publication and is_removed()'s loads there, all
	 * seq_cst: a cost on every send and peek for what only a call and a stop need. It
	 * orders atomic accesses only (state, the mailbox's words; the message bytes have
	 * their own release/acquire), so ThreadSanitizer's not modelling it loses nothing.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	for (uint64_t i = 0; i < cells; i++) {
		struct ipc_msg m;

		if (ipc_mbox_peek(seg, slot, &m))
			break;
		if ((m.flags & IPC_F_CALL) && m.from != SHOAL_HANDLE_NONE &&
		    ipc_reply_error(seg, self, &m, err) == 0)
			answered++;
		if (m.flags & IPC_F_ROUND)
			ipc_round_answer(seg, m.ref, true); /* a round need not wait for it */
		ipc_mbox_consume(seg, slot, &m);
	}
	return answered;
}

struct call_wait {
	struct shm_seg *seg;
	uint32_t slot;
	uint64_t ref;
	void *buf;
	uint32_t cap;
	struct ipc_msg got;
	bool done;
};

static bool call_has_reply(void *arg)
{
	struct call_wait *c = arg;

	if (!c->done && ipc_mbox_take_reply(c->seg, c->slot, c->ref, &c->got, c->buf, c->cap) == 0)
		c->done = true;
	return c->done;
}

int ipc_call(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox, shoal_handle_t to,
	     uint32_t type, const void *data, uint32_t len, void *reply, uint32_t cap,
	     int timeout_ms)
{
	uint64_t ref, t0;
	int r;

	if (shoal_handle_slot(inbox) >= shm_hdr(seg)->cfg.max_agents)
		return -EINVAL;
	t0 = shm_hist_begin_always(seg); /* a round trip costs microseconds: each is timed */
	ref = next_ref(seg, true);
	r = ipc_send(seg, to, inbox, type, IPC_F_CALL, ref, data, len, timeout_ms);
	if (r)
		return r;
	if (__builtin_expect(ipc_mbox_test_hook != NULL, 0))
		ipc_mbox_test_hook(IPC_HOOK_CALL_SENT);
	/*
	 * K0: pairs with K1 in ipc_refuse_queued(): our call's publication before our look at
	 * the callee's state, its STOPPED before its look at the mailbox. Either it finds the
	 * call and answers -ENOENT, or we find it removed here and return at once. A fence,
	 * over atomics only, for the reasons at K1.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	/*
	 * Removed, but it may have answered before it stopped: a handled call returns its
	 * answer, not -ENOENT (and its reply is not left to be dropped as stale).
	 */
	if (is_removed(seg, to)) {
		/* one look, no wait: the answer, or -ETIMEDOUT for none */
		r = ipc_wait_reply(seg, NULL, inbox, ref, reply, cap, 0);
		return r == -ETIMEDOUT ? -ENOENT : r;
	}
	r = ipc_wait_reply(seg, w, inbox, ref, reply, cap, timeout_ms);
	if (r >= 0)
		shm_hist_end(seg, SHM_HIST_CALL, t0);
	return r;
}

uint64_t ipc_ref_new(struct shm_seg *seg, bool sync)
{
	return next_ref(seg, sync);
}

int ipc_wait_reply(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox, uint64_t ref,
		   void *reply, uint32_t cap, int timeout_ms)
{
	struct call_wait c = {
		.seg = seg, .slot = shoal_handle_slot(inbox), .ref = ref, .buf = reply, .cap = cap};
	uint64_t deadline = 0, now;
	int r;

	if (shoal_handle_slot(inbox) >= shm_hdr(seg)->cfg.max_agents)
		return -EINVAL;
	if (timeout_ms >= 0)
		deadline = shm_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		uint64_t left = 0;

		if (call_has_reply(&c)) {
			if (c.got.flags & IPC_F_ERROR)
				return c.got.type && c.got.type < 4096 ? -(int)c.got.type : -EIO;
			return (int)c.got.len;
		}
		now = shm_now_ns();
		if (deadline) {
			if (now >= deadline)
				return -ETIMEDOUT;
			left = deadline - now;
		}
		if (w) {
			r = ipc_waiter_wait(w, IPC_CALL_SPIN_NS, left, call_has_reply, &c, NULL);
			if (r == -EOWNERDEAD) {
				/* the supervisor exited: stopped in order, or died */
				int gone = shm_seg_gone(seg, shm_seg_liveness(seg, 0));

				return gone ? gone : r;
			}
			if (r < 0)
				return r;
		} else {
			shm_cpu_relax();
		}
	}
}

/*
 * The members of a group, in a buffer that lives with the calling thread and grows to the
 * segment's group_members once: a broadcast from an agent's callback allocates nothing
 * after its first. -ENOMEM if it cannot grow.
 */
static int group_members(struct shm_seg *seg, const char *group, shoal_handle_t **out)
{
	static __thread shoal_handle_t *buf;
	static __thread uint32_t cap;
	uint32_t want = shm_hdr(seg)->cfg.group_members;
	int n;

	if (want > cap) {
		shoal_handle_t *b = realloc(buf, (size_t)want * sizeof(*b));

		if (!b)
			return -ENOMEM;
		buf = b;
		cap = want;
	}
	n = shm_grp_members(seg, group, strlen(group), buf, cap);
	if (n > (int)cap)
		n = (int)cap; /* joined meanwhile past group_members: cannot be */
	*out = buf;
	return n;
}

/* See ipc_int.h. Any process with a process slot. */
int ipc_fanout(struct shm_seg *seg, shoal_handle_t from, const shoal_handle_t *to, uint32_t n,
	       uint32_t type, uint32_t flags, uint64_t ref, const void *data, uint32_t len,
	       int timeout_ms, void (*failed)(void *arg, uint32_t i, int err), void *arg)
{
	struct host_set hs = {.n = 0};
	uint32_t step = flags & IPC_F_ROUND ? 1 : 0;
	int sent = 0, err = 0;

	if (len > shm_hdr(seg)->cfg.max_msg)
		return -EMSGSIZE;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t r_i = ref + (uint64_t)i * step;
		struct ipc_dest d;
		int r = put_one(seg, to[i], &d, from, type, flags, r_i, data, len, 0);

		if (r == -EAGAIN && timeout_ms != 0) {
			/* ring who we owe before waiting: they may be parked on our messages */
			hosts_ring(seg, &hs);
			r = put_one(seg, to[i], &d, from, type, flags, r_i, data, len, timeout_ms);
		}
		if (r) {
			err = r; /* a member that went away or stayed full: the others still get it
				  */
			if (failed)
				failed(arg, i, r);
			continue;
		}
		sent++;
		hosts_add(seg, &hs, ipc_dest_host(&d));
	}
	hosts_ring(seg, &hs);
	return sent || !err ? sent : err;
}

int ipc_broadcast(struct shm_seg *seg, shoal_handle_t from, const char *group, uint32_t type,
		  const void *data, uint32_t len, int timeout_ms)
{
	shoal_handle_t *members;
	int n;

	if (len > shm_hdr(seg)->cfg.max_msg)
		return -EMSGSIZE;
	n = group_members(seg, group, &members);
	if (n < 0)
		return n;
	return ipc_fanout(seg, from, members, (uint32_t)n, type, 0, 0, data, len, timeout_ms, NULL,
			  NULL);
}

/*
 * Clients' inboxes in the agent table now. A scan (inboxes open rarely): two clients opening
 * at once may both pass the budget's last place, so it is a bound to within the number of
 * concurrent openers, with no shared counter for a dead client to leave wrong.
 */
static uint32_t inboxes_in_use(const struct shm_seg *seg)
{
	uint32_t n = 0, max = shm_hdr(seg)->cfg.max_agents;

	for (uint32_t i = 0; i < max; i++) {
		const struct shm_agent *a = shm_agent_at(seg, i);

		/*
		 * acquire: pairs with S2 in shm_agent_alloc_named(): the type written before it
		 * (relaxed let a scan read the type of a slot being allocated meanwhile without
		 * that order: test_msg_call_stop_threads, under ThreadSanitizer). Still a count:
		 * a slot freed and allocated again during the scan moves it by one.
		 */
		if (atomic_load_explicit(&a->state, memory_order_acquire) != SHM_AGENT_FREE &&
		    !strncmp(a->type, "client", sizeof(a->type)))
			n++;
	}
	return n;
}

int ipc_inbox_open(struct shm_seg *seg, shoal_handle_t *out)
{
	return ipc_inbox_open_as(seg, "client", NULL, out);
}

int ipc_inbox_open_as(struct shm_seg *seg, const char *type, const char *name, shoal_handle_t *out)
{
	struct shm_agent *a;
	uint32_t slot;
	int r;

	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	/* relaxed: our own slot's, stored by our claim */
	if (atomic_load_explicit(&shm_proc_at(seg, seg->self)->role, memory_order_relaxed) ==
		    SHM_ROLE_CLIENT &&
	    inboxes_in_use(seg) >= shm_cfg_inbox_budget(&shm_hdr(seg)->cfg))
		return -ENOSPC;
	r = shm_agent_alloc_named(seg, 0, type, name, name ? strlen(name) : 0, &slot);
	if (r)
		return r;
	a = shm_agent_at(seg, slot);
	ipc_mbox_init(seg, slot);
	/* relaxed: published by the state store below */
	atomic_store_explicit(&a->worker, seg->self + 1, memory_order_relaxed);
	atomic_store_explicit(&a->started_ns, shm_now_ns(), memory_order_relaxed);
	/* S3: pairs with A0 in check_to(): mailbox and host before RUNNING. */
	atomic_store_explicit(&a->state, SHM_AGENT_RUNNING, memory_order_release);
	shm_change_bump(seg);
	*out = shoal_handle_make(slot, atomic_load_explicit(&a->gen, memory_order_relaxed));
	return 0;
}

void ipc_inbox_close(struct shm_seg *seg, shoal_handle_t inbox)
{
	uint32_t slot = shoal_handle_slot(inbox);
	struct shm_agent *a;

	if (slot >= shm_hdr(seg)->cfg.max_agents)
		return;
	a = shm_agent_at(seg, slot);
	if (atomic_load_explicit(&a->gen, memory_order_relaxed) != shoal_handle_gen(inbox))
		return;
	/* rounds it is a member of need not wait for it: it will never answer */
	for (uint64_t i = 0, cells = shm_hdr(seg)->cfg.mbox_cells; i < cells; i++) {
		struct ipc_msg m;

		if (ipc_mbox_peek(seg, slot, &m))
			break;
		if (m.flags & IPC_F_ROUND)
			ipc_round_answer(seg, m.ref, true);
		ipc_mbox_consume(seg, slot, &m);
	}
	shm_agent_free(seg, slot);
}
