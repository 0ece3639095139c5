/*
 * The public client API (include/shoal/client.h): an attachment with a client process slot,
 * a waiter and an inbox, over the engine's messaging (ipc/) and monitors (monitor.c). The
 * `shoal` client commands do the same through tools/client.c.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/pool.h"
#include "shm/registry.h"
#include "shm/var.h"
#include "shm/round.h"
#include "shoal/client.h"
#include "ipc/ctl.h"
#include "workers/wrk_int.h"

static_assert(sizeof(struct shoal_out) == sizeof(struct ipc_out) &&
		      offsetof(struct shoal_out, to) == offsetof(struct ipc_out, to) &&
		      offsetof(struct shoal_out, type) == offsetof(struct ipc_out, type) &&
		      offsetof(struct shoal_out, len) == offsetof(struct ipc_out, len) &&
		      offsetof(struct shoal_out, data) == offsetof(struct ipc_out, data),
	      "a public batch entry is the engine's");
static_assert(SHOAL_T_DOWN == IPC_T_DOWN && SHOAL_T_UP == IPC_T_UP,
	      "the public notice types are the engine's");
static_assert(SHOAL_T_TASK == IPC_CTL_TASK_MSG, "the public task message type is the protocol's");
static_assert(SHOAL_T_CTL == IPC_CTL_MSG &&
		      sizeof(struct shoal_ctl_result) == sizeof(struct ipc_ctl_reply) &&
		      offsetof(struct shoal_ctl_result, handle) ==
			      offsetof(struct ipc_ctl_reply, handle) &&
		      offsetof(struct shoal_ctl_result, node) ==
			      offsetof(struct ipc_ctl_reply, node),
	      "an agent reads the supervisor's control answer as struct shoal_ctl_result");
static_assert(SHOAL_WHERE_ANY == IPC_CTL_ANY && SHOAL_WHERE_WORKER == IPC_CTL_WORKER &&
		      SHOAL_WHERE_NODE == IPC_CTL_NODE,
	      "the public placement hints are the control requests'");

struct shoal_client {
	struct shm_seg *seg;
	struct ipc_waiter *waiter;
	shoal_handle_t inbox;
	uint32_t subs; /* variable subscriptions made (recv catches up on owed notifications) */
};

/* The spin before a client parks: short, a client's core usually has other work. */
#define CLIENT_SPIN_NS 20000u
/* shoal_client_recv() looks at the instance's liveness after this long without a message. */
#define CLIENT_LIVENESS_NS 500000000u

int wrk_send_batch(struct shm_seg *seg, shoal_handle_t from, const struct shoal_out *msgs,
		   uint32_t n, int timeout_ms)
{
	struct ipc_out out[64];
	uint32_t done = 0;

	while (done < n) {
		uint32_t k = n - done < 64 ? n - done : 64;
		int r;

		for (uint32_t i = 0; i < k; i++)
			out[i] = (struct ipc_out){.to = msgs[done + i].to,
						  .type = msgs[done + i].type,
						  .len = msgs[done + i].len,
						  .data = msgs[done + i].data};
		r = ipc_send_batch(seg, from, out, k, timeout_ms);
		if (r < 0)
			return done ? (int)done : r;
		done += (uint32_t)r;
		if ((uint32_t)r < k)
			break;
	}
	return (int)done;
}

/* A sentence into err, if the caller gave room for one. */
static void __attribute__((format(printf, 3, 4)))
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#define CLIENT_RECLAIM_MS 1000 /* a full table of dead clients: wait this long for repair */

/* Is some process slot DEAD: a dead client the supervisor has yet to repair? */
static bool has_dead_slot(const struct shm_seg *seg)
{
	for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_procs; i++)
		/* relaxed: a hint; the claim itself decides */
		if (atomic_load_explicit(&shm_proc_at(seg, i)->state, memory_order_relaxed) ==
		    SHM_PROC_DEAD)
			return true;
	return false;
}

/* The role client slots are claimed with (wrk_client_set_role()). */
static enum shm_role client_role = SHM_ROLE_CLIENT;

/* See wrk.h. */
void wrk_client_set_role(enum shm_role role)
{
	client_role = role;
}

/* See wrk.h. */
struct ipc_waiter *wrk_client_waiter(struct shoal_client *c)
{
	return c->waiter;
}

int shoal_client_remote(struct shoal_client *c, const char *node, const char *name,
			shoal_handle_t *out)
{
	if (!node || !name || !out)
		return -EINVAL;
	return wrk_remote_get(c->seg, node, name, out);
}

struct shm_seg *wrk_client_seg(struct shoal_client *c)
{
	return c->seg;
}

/* See wrk.h. Any process attached read-write, before it has a slot. */
int wrk_client_claim(struct shm_seg *seg)
{
	uint64_t dl = shm_now_ns() + (uint64_t)CLIENT_RECLAIM_MS * 1000000u;

	for (;;) {
		/* read before the claim: a repair after it moves the counter past seen */
		uint32_t seen = shm_change_read(seg);
		int rc = shm_proc_claim(seg, client_role, true);

		if (rc != -ENOSPC || !has_dead_slot(seg))
			return rc;
		/* its reap marked dead clients: the supervisor repairs them when rung */
		ipc_ring(seg, 0);
		if (shm_change_wait(seg, seen, dl))
			return -ENOSPC;
	}
}

/* See wrk.h. Any thread of a process not yet attached as a client of that instance. */
int wrk_client_attach(const char *instance, bool with_inbox, struct wrk_client_parts *out,
		      char *err, size_t errlen)
{
	enum shm_liveness l;
	int rc;

	memset(out, 0, sizeof(*out));
	out->inbox = SHOAL_HANDLE_NONE;
	rc = shm_seg_attach(instance, 0, 1000, &out->seg, err, errlen);
	if (rc)
		return rc;
	l = shm_seg_liveness(out->seg, 0);
	if (l != SHM_LIVE_OK && l != SHM_LIVE_UNRESPONSIVE) {
		/* relaxed: a status word, read for the sentence */
		uint32_t st = atomic_load_explicit(&shm_hdr(out->seg)->state, memory_order_relaxed);

		say(err, errlen, "instance '%s' is not running (%s)", instance,
		    l == SHM_LIVE_STOPPED ? shm_inst_state_name(st) : shm_liveness_name(l));
		rc = l == SHM_LIVE_STOPPED && st != SHM_INST_SUP_DEAD ? -ESHUTDOWN : -EOWNERDEAD;
		goto out_detach;
	}
	rc = wrk_client_claim(out->seg);
	if (rc == -ENOSPC) {
		say(err, errlen,
		    "instance '%s': no free client slot: all %u process slots are taken by the "
		    "supervisor, %u workers and live clients; raise [segment] max_procs",
		    instance, shm_hdr(out->seg)->cfg.max_procs, shm_hdr(out->seg)->cfg.nworkers);
		goto out_detach;
	}
	if (rc) {
		say(err, errlen, "instance '%s': no free client slot (%s)", instance,
		    strerror(-rc));
		goto out_detach;
	}
	shm_proc_set_state(out->seg, SHM_PROC_RUNNING);
	if (!with_inbox)
		return 0;
	rc = ipc_waiter_create(out->seg, IPC_WAKE_AUTO, &out->waiter);
	if (rc) {
		say(err, errlen, "instance '%s': cannot set up a wakeup ring (%s)", instance,
		    strerror(-rc));
		goto out_detach;
	}
	rc = ipc_inbox_open(out->seg, &out->inbox);
	if (rc) {
		if (rc == -ENOSPC)
			say(err, errlen,
			    "instance '%s': no room for another client inbox (%u in use: [segment] "
			    "client_inboxes); wait for a client to close, or raise it",
			    instance, shm_cfg_inbox_budget(&shm_hdr(out->seg)->cfg));
		else
			say(err, errlen, "instance '%s': cannot open an inbox (%s)", instance,
			    strerror(-rc));
		goto out_waiter;
	}
	return 0;

out_waiter:
	ipc_waiter_destroy(out->waiter);
out_detach:
	shm_seg_detach(out->seg);
	memset(out, 0, sizeof(*out));
	out->inbox = SHOAL_HANDLE_NONE;
	return rc;
}

/* See wrk.h. The process that attached. */
void wrk_client_detach(struct wrk_client_parts *p)
{
	if (p->seg && p->seg->writable && p->seg->self != UINT32_MAX) {
		/* the agents it checked out go back to their pools (to the next waiter) */
		shm_pool_repair(p->seg, p->seg->self, wrk_pool_notify, p->seg);
	}
	if (p->inbox != SHOAL_HANDLE_NONE && p->seg) {
		/* its monitors and memberships go with it: nobody would read what comes */
		wrk_mon_drop_watcher(p->seg, p->inbox);
		shm_grp_leave_all(p->seg, p->inbox);
		shm_var_sub_drop_who(p->seg, p->inbox);
		ipc_inbox_close(p->seg, p->inbox);
	}
	if (p->waiter)
		ipc_waiter_destroy(p->waiter);
	if (p->seg)
		shm_seg_detach(p->seg);
	memset(p, 0, sizeof(*p));
	p->inbox = SHOAL_HANDLE_NONE;
}

int shoal_client_open(const char *instance, struct shoal_client **out, char *err, size_t errlen)
{
	struct wrk_client_parts parts;
	struct shoal_client *c;
	int rc;

	*out = NULL;
	if (!instance) {
		instance = getenv("SHOAL_INSTANCE");
		if (!instance || !*instance)
			instance = "default";
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = wrk_client_attach(instance, true, &parts, err, errlen);
	if (rc) {
		free(c);
		return rc;
	}
	c->seg = parts.seg;
	c->waiter = parts.waiter;
	c->inbox = parts.inbox;
	*out = c;
	return 0;
}

void shoal_client_close(struct shoal_client *c)
{
	struct wrk_client_parts parts;

	if (!c)
		return;
	parts = (struct wrk_client_parts){.seg = c->seg, .waiter = c->waiter, .inbox = c->inbox};
	wrk_client_detach(&parts);
	free(c);
}

shoal_handle_t shoal_client_inbox(const struct shoal_client *c)
{
	return c->inbox;
}

int shoal_client_lookup(struct shoal_client *c, const char *name, shoal_handle_t *out)
{
	if (!name)
		return -EINVAL;
	return shm_reg_lookup(c->seg, SHM_NS_DEFAULT, name, strlen(name), out, NULL);
}

int shoal_client_cast(struct shoal_client *c, shoal_handle_t to, uint32_t type, const void *data,
		      uint32_t len, int timeout_ms)
{
	return ipc_send(c->seg, to, c->inbox, type, 0, 0, data, len, timeout_ms);
}

int shoal_client_send_batch(struct shoal_client *c, const struct shoal_out *msgs, uint32_t n,
			    int timeout_ms)
{
	return wrk_send_batch(c->seg, c->inbox, msgs, n, timeout_ms);
}

int shoal_client_call(struct shoal_client *c, shoal_handle_t to, uint32_t type, const void *data,
		      uint32_t len, void *reply, uint32_t cap, int timeout_ms)
{
	return ipc_call(c->seg, c->waiter, c->inbox, to, type, data, len, reply, cap, timeout_ms);
}

int shoal_client_call_async(struct shoal_client *c, shoal_handle_t to, uint32_t type,
			    const void *data, uint32_t len, uint64_t *ref_out)
{
	return ipc_call_async(c->seg, c->inbox, to, type, data, len, ref_out);
}

int shoal_client_broadcast(struct shoal_client *c, const char *group, uint32_t type,
			   const void *data, uint32_t len, int timeout_ms)
{
	return ipc_broadcast(c->seg, c->inbox, group, type, data, len, timeout_ms);
}

static_assert(SHOAL_ROUND_ABSENT == SHM_ROUND_M_ABSENT && SHOAL_ROUND_ACKED == SHM_ROUND_M_ACKED &&
		      SHOAL_ROUND_DEAD == SHM_ROUND_M_DEAD,
	      "a member's public state is the round record's");

/* Fill res from round r (the owner, before it frees r). */
void wrk_round_tally(struct shm_seg *seg, const struct ipc_round *r, struct shoal_round_result *res)
{
	res->members = r->members;
	res->acked = res->dead = res->absent = 0;
	for (uint32_t i = 0; i < r->members; i++) {
		shoal_handle_t h;
		uint32_t st = ipc_round_member(seg, r, i, &h);

		if (st == SHM_ROUND_M_ACKED)
			res->acked++;
		else if (st == SHM_ROUND_M_DEAD)
			res->dead++;
		else
			res->absent++;
		if (res->member && i < res->cap)
			res->member[i] = (struct shoal_round_member){.handle = h, .state = st};
	}
}

int shoal_client_broadcast_acked(struct shoal_client *c, const char *group, uint32_t type,
				 const void *data, uint32_t len, int timeout_ms,
				 struct shoal_round_result *res)
{
	struct ipc_round r;
	int rc, wr;

	if (!c || !group || !res || timeout_ms <= 0 || (res->cap && !res->member))
		return -EINVAL;
	rc = ipc_round_start(c->seg, c->inbox, group, type, data, len,
			     shm_now_ns() + (uint64_t)timeout_ms * 1000000u, 0, timeout_ms, &r);
	if (rc)
		return rc;
	wr = ipc_round_wait(c->seg, c->waiter, &r);
	wrk_round_tally(c->seg, &r, res);
	res->elapsed_ns = shm_now_ns() - r.start_ns;
	ipc_round_end(c->seg, &r);
	return wr;
}

int shoal_client_allocate(struct shoal_client *c, const char *group, const char *resource,
			  uint64_t capacity, shoal_alloc_policy_fn policy, int timeout_ms,
			  struct shoal_alloc_result *res)
{
	if (!c)
		return -EINVAL;
	return wrk_alloc_run(c->seg, c->waiter, c->inbox, group, resource, capacity, policy,
			     timeout_ms, res);
}

int shoal_client_alloc_demand(struct shoal_client *c, const struct shoal_msg *m, uint64_t demand)
{
	if (!c)
		return -EINVAL;
	return wrk_alloc_answer(c->seg, m, demand);
}

int shoal_client_propose(struct shoal_client *c, const char *var, uint32_t type, const void *data,
			 uint32_t len, const char *group, uint32_t rule, uint32_t quorum,
			 int timeout_ms, struct shoal_proposal_result *res)
{
	struct ipc_proposal p;
	uint64_t version = 0;
	void *buf;
	int rc;

	if (!c || !var || !group || !res || timeout_ms <= 0 || len > SHM_VAR_BYTES_MAX)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	buf = malloc(sizeof(struct ipc_vote_msg) + len);
	if (!buf)
		return -ENOMEM;
	rc = ipc_propose_start(c->seg, c->inbox, var, type, data, len, group, rule, quorum,
			       shm_now_ns() + (uint64_t)timeout_ms * 1000000u, 0, timeout_ms, buf,
			       &version, &p);
	if (rc == -EBUSY) {
		res->outcome = SHOAL_PROPOSAL_CONFLICT;
		res->rc = rc;
		res->version = version;
	}
	if (rc)
		goto out_free;
	rc = ipc_round_wait(c->seg, c->waiter, &p.r);
	if (rc && rc != -ETIMEDOUT) {
		/* the instance went away: nothing to commit to */
		ipc_propose_abort(c->seg, &p);
		goto out_free;
	}
	rc = ipc_propose_finish(c->seg, &p, SHM_VAR_WAIT_NS, res);
	if (rc == -EAGAIN) {
		/* a live writer held the variable past the wait: the round is over all the same */
		ipc_propose_abort(c->seg, &p);
		res->outcome = SHOAL_PROPOSAL_CONFLICT;
		res->rc = -EBUSY;
	}
	/* the commit is an update: its subscribers hear of it as of any other */
	if (res->outcome == SHOAL_PROPOSAL_COMMITTED)
		wrk_var_notify(c->seg, &p.var, 1, c->inbox);
	rc = res->rc;
out_free:
	free(buf);
	return rc;
}

int shoal_client_join(struct shoal_client *c, const char *group)
{
	if (!group)
		return -EINVAL;
	return shm_grp_join(c->seg, group, strlen(group), c->inbox);
}

int shoal_client_remote_join(struct shoal_client *c, const char *group, shoal_handle_t remote)
{
	return wrk_remote_group(c->seg, group, remote, true);
}

int shoal_client_remote_leave(struct shoal_client *c, const char *group, shoal_handle_t remote)
{
	return wrk_remote_group(c->seg, group, remote, false);
}

int shoal_client_leave(struct shoal_client *c, const char *group)
{
	if (!group)
		return -EINVAL;
	return shm_grp_leave(c->seg, group, strlen(group), c->inbox);
}

int shoal_client_members(struct shoal_client *c, const char *group, shoal_handle_t *out,
			 uint32_t max)
{
	if (!group)
		return -EINVAL;
	return shm_grp_members(c->seg, group, strlen(group), out, max);
}

int shoal_client_monitor(struct shoal_client *c, shoal_handle_t target, uint64_t *ref_out)
{
	return wrk_mon_add(c->seg, c->inbox, target, ref_out);
}

int shoal_client_demonitor(struct shoal_client *c, uint64_t ref)
{
	return wrk_mon_remove(c->seg, c->inbox, ref);
}

int shoal_client_spawn(struct shoal_client *c, const char *type, const char *name, uint32_t hint,
		       int32_t where, shoal_handle_t *out, int32_t *worker, int timeout_ms)
{
	struct ipc_ctl_req q = {.op = IPC_CTL_SPAWN, .hint = hint, .where = where};
	struct ipc_ctl_reply rep;
	int rc;

	if (!type || !name || !*name || !shm_put_field(q.type, sizeof(q.type), type) ||
	    strlen(name) > SHOAL_NAME_MAX || !shm_put_field(q.name, sizeof(q.name), name))
		return !type || strlen(type) >= sizeof(q.type) ? -ENOENT : -EINVAL;
	rc = ipc_ctl_call(c->seg, c->waiter, c->inbox, &q, &rep, timeout_ms);
	if (rc)
		return rc;
	if (rep.rc)
		return rep.rc;
	if (out)
		*out = rep.handle;
	if (worker)
		*worker = rep.windex;
	return 0;
}

int shoal_client_task_run(struct shoal_client *c, const char *type, const void *arg, uint32_t len,
			  int timeout_ms, void *reply, uint32_t cap)
{
	if (!c || timeout_ms <= 0 || (cap && !reply))
		return -EINVAL;
	return ipc_ctl_task(c->seg, c->waiter, c->inbox, type, arg, len, timeout_ms, reply, cap);
}

int shoal_client_pool_create(struct shoal_client *c, const char *pool, const char *type,
			     uint32_t size, uint32_t overflow, int timeout_ms)
{
	shoal_handle_t *got;
	uint32_t id, n = 0;
	int rc;

	if (!pool || !*pool || strlen(pool) > SHOAL_POOL_NAME_MAX || !type)
		return -EINVAL;
	got = calloc(size ? size : 1, sizeof(*got));
	if (!got)
		return -ENOMEM;
	/* SETUP and ours until published: a death of ours frees it (shm_pool_repair()) */
	rc = shm_pool_create(c->seg, pool, type, size, overflow, &id);
	if (rc) {
		if (rc == -EINVAL && size + (uint64_t)overflow > shm_hdr(c->seg)->cfg.pool_members)
			rc = -ENOSPC;
		goto out;
	}
	for (n = 0; n < size; n++) {
		char name[SHOAL_NAME_MAX + 1];

		snprintf(name, sizeof(name), "%s.%u", pool, n);
		rc = shoal_client_spawn(c, type, name, SHOAL_WHERE_ANY, 0, &got[n], NULL,
					timeout_ms);
		if (rc)
			break;
		rc = shm_pool_add(c->seg, id, got[n], false);
		if (rc) {
			n++;
			break;
		}
	}
	if (rc) {
		shm_pool_abandon(c->seg, id);
		while (n--)
			shoal_client_stop(c, NULL, got[n], timeout_ms);
		goto out;
	}
	shm_pool_publish(c->seg, id);
out:
	free(got);
	return rc;
}

int shoal_client_pool_checkout(struct shoal_client *c, const char *pool, int timeout_ms,
			       shoal_handle_t *agent)
{
	return wrk_pool_client_checkout(c->seg, c->waiter, c->inbox, pool, timeout_ms, agent);
}

int shoal_client_pool_checkin(struct shoal_client *c, const char *pool, shoal_handle_t agent)
{
	return wrk_pool_checkin(c->seg, pool, agent);
}

int shoal_client_stop(struct shoal_client *c, const char *name, shoal_handle_t h, int timeout_ms)
{
	struct ipc_ctl_req q = {.op = IPC_CTL_STOP, .handle = name ? 0 : h};
	struct ipc_ctl_reply rep;
	int rc;

	if (name && (!*name || strlen(name) > SHOAL_NAME_MAX ||
		     !shm_put_field(q.name, sizeof(q.name), name)))
		return -EINVAL;
	if (!name && h == SHOAL_HANDLE_NONE)
		return -EINVAL;
	rc = ipc_ctl_call(c->seg, c->waiter, c->inbox, &q, &rep, timeout_ms);
	return rc ? rc : rep.rc;
}

struct recv_wait {
	struct shm_seg *seg;
	uint32_t slot;
};

static bool inbox_has_msg(void *arg)
{
	struct recv_wait *r = arg;

	return ipc_mbox_has_msg(r->seg, r->slot);
}

int shoal_client_recv(struct shoal_client *c, struct shoal_msg *out, void *buf, uint32_t cap,
		      int timeout_ms)
{
	struct recv_wait rw = {.seg = c->seg, .slot = shoal_handle_slot(c->inbox)};
	uint64_t deadline = timeout_ms > 0 ? shm_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
	struct ipc_msg m;

	for (;;) {
		uint64_t left = CLIENT_LIVENESS_NS, now;
		int gone;
		int r;

		if (ipc_mbox_peek(c->seg, rw.slot, &m) == 0)
			break;
		/* empty: notifications a full inbox refused us can come now */
		if (c->subs && wrk_var_catch_up(c->seg, c->inbox) > 0)
			continue;
		if (timeout_ms == 0)
			return -EAGAIN;
		now = shm_now_ns();
		if (deadline) {
			if (now >= deadline)
				return -ETIMEDOUT;
			if (deadline - now < left)
				left = deadline - now;
		}
		r = ipc_waiter_wait(c->waiter, CLIENT_SPIN_NS, left, inbox_has_msg, &rw, NULL);
		if (r == -EOWNERDEAD) {
			/* the supervisor exited: nothing more will come; which way it ended */
			gone = shm_seg_gone(c->seg, shm_seg_liveness(c->seg, 0));
			return gone ? gone : r;
		}
		if (r < 0)
			return r;
		/*
		 * A quiet stretch: an instance that stopped, or whose supervisor died, sends
		 * nothing more. What is queued is still delivered first.
		 */
		if (r != 0 || ipc_mbox_has_msg(c->seg, rw.slot))
			continue;
		gone = shm_seg_gone(c->seg, shm_seg_liveness(c->seg, 0));
		if (gone)
			return gone;
	}
	out->from = m.from;
	out->ref = m.ref;
	out->type = m.type;
	out->flags =
		m.flags & (SHOAL_MSG_REDELIVERED | SHOAL_MSG_CALL | SHOAL_MSG_REPLY |
			   SHOAL_MSG_SYSTEM | SHOAL_MSG_ERROR | SHOAL_MSG_ROUND | SHOAL_MSG_TERM);
	out->len = m.len;
	if (cap && m.len)
		memcpy(buf, m.data, m.len < cap ? m.len : cap);
	out->data = buf;
	/*
	 * A round's message is acknowledged once it is the caller's; an allocation's ask is
	 * answered by the caller with its demand (shoal_client_alloc_demand()).
	 */
	if ((m.flags & IPC_F_ROUND) && m.type != SHOAL_T_ALLOC_ASK)
		ipc_round_answer(c->seg, m.ref, false);
	/* the next update notifies again; before the caller reads the value (N2, shm/varsub.c) */
	if ((m.flags & IPC_F_SYSTEM) && m.type == IPC_T_VAR)
		shm_var_sub_taken(c->seg, m.ref);
	ipc_mbox_consume(c->seg, rw.slot, &m);
	return 0;
}

/* --- coordination variables (thin over workers/var.c and shm/var.c) --- */

int shoal_client_var_create(struct shoal_client *c, const char *name, uint32_t type,
			    shoal_var_t *out)
{
	return wrk_var_create(c->seg, name, type, out);
}

int shoal_client_var_lookup(struct shoal_client *c, const char *name, shoal_var_t *out)
{
	return wrk_var_lookup(c->seg, name, out);
}

int shoal_client_var_read(struct shoal_client *c, shoal_var_t var, struct shoal_var_value *out)
{
	return wrk_var_read(c->seg, var, out);
}

int shoal_client_var_read_name(struct shoal_client *c, const char *name,
			       struct shoal_var_value *out)
{
	shoal_var_t var;
	int r = wrk_var_lookup(c->seg, name, &var);

	return r ? r : wrk_var_read(c->seg, var, out);
}

int shoal_client_var_read_many(struct shoal_client *c, const shoal_var_t *vars, uint32_t n,
			       struct shoal_var_value *out)
{
	return wrk_var_read_many(c->seg, vars, n, out);
}

int shoal_client_var_update(struct shoal_client *c, const struct shoal_var_set *sets, uint32_t n,
			    uint64_t *cur, int timeout_ms)
{
	uint64_t end = timeout_ms < 0 ? UINT64_MAX : shm_now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		uint64_t now = shm_now_ns(), wait = SHM_VAR_WAIT_NS;
		int r;

		if (end - now < wait && end > now)
			wait = end - now;
		r = wrk_var_update(c->seg, sets, n, c->inbox, now < end ? wait : 0, cur);
		if (r != -EAGAIN)
			return r;
		/* a live writer kept one of them: it is running, let it finish */
		if (shm_now_ns() >= end)
			return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
		sched_yield();
	}
}

struct var_list {
	int (*fn)(const char *name, shoal_var_t var, uint32_t type, void *arg);
	void *arg;
};

static int var_list_visit(uint64_t id, uint32_t ns, const char *name, uint32_t type, void *arg)
{
	struct var_list *l = arg;

	if (ns != SHM_NS_DEFAULT)
		return 0;
	return l->fn(name, id, type, l->arg);
}

int shoal_client_var_subscribe(struct shoal_client *c, const char *name, uint32_t flags,
			       uint64_t *ref)
{
	int r;

	if (c->inbox == SHOAL_HANDLE_NONE)
		return -EROFS;
	r = wrk_var_subscribe(c->seg, c->inbox, c->seg->tag, name, flags, ref);
	c->subs += !r;
	return r;
}

int shoal_client_var_unsubscribe(struct shoal_client *c, uint64_t ref)
{
	return shm_var_sub_del(c->seg, ref, c->inbox);
}

int shoal_client_remote_var_subscribe(struct shoal_client *c, shoal_handle_t remote,
				      const char *name, uint32_t flags, uint64_t *ref)
{
	return wrk_remote_var_subscribe(c->seg, remote, name, flags, ref);
}

int shoal_client_remote_var_unsubscribe(struct shoal_client *c, shoal_handle_t remote, uint64_t ref)
{
	return remote ? shm_var_sub_del(c->seg, ref, remote) : -EINVAL;
}

int shoal_client_var_list(struct shoal_client *c,
			  int (*fn)(const char *name, shoal_var_t var, uint32_t type, void *arg),
			  void *arg)
{
	struct var_list l = {.fn = fn, .arg = arg};

	if (!fn)
		return -EINVAL;
	return shm_var_foreach(c->seg, var_list_visit, &l);
}
