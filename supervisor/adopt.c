/*
 * Adoption: `shoal run` on the segment of a supervisor that died (SIGKILL, a crash).
 *
 * Everything an instance promised lives in the segment, not in the supervisor: agent
 * handles and names, queued messages, checkpoints, groups, monitors. A supervisor that dies
 * takes its workers with it (PR_SET_PDEATHSIG), and what they were doing is left half done
 * in the same states a worker crash leaves: dead claims in mailboxes, the registry and the
 * agent table, agents RUNNING under a dead worker. So a new supervisor started on the same
 * configuration takes the segment over instead of refusing it, and treats the dead
 * supervisor's slot like a dead client's and each worker slot like a crashed worker's: the
 * same repairs, then a launch that restarts the slot's agents from their checkpoints, their
 * queued messages delivered in order (the one being handled when the worker died, flagged
 * redelivered). Nothing is spawned from the configuration again: the instance goes on.
 *
 * Only a segment whose supervisor is known dead is adopted: a live or unresponsive one is
 * someone else's instance, one stopped in order has terminated its agents (start it afresh
 * after `shoal clean`), one never published was never an instance. Its geometry must be
 * the configuration's, field by field (a changed table size would move every region).
 *
 * A crash during adoption leaves the same kind of segment: the next `run` adopts it again
 * (every step is a repair that is idempotent, or a claim whose owner is then dead).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/pool.h"
#include "shm/registry.h"
#include "shm/var.h"
#include "supervisor/sup.h"
#include "workers/wrk.h"

#define ADOPT_KILL_WAIT_MS 5000 /* a leftover worker's exit, after SIGKILL */

/* The shm_cfg fields that fix the layout, by their config keys. */
static const struct {
	const char *key;
	size_t off;
} adopt_geometry[] = {
	{"[segment] max_procs", offsetof(struct shm_cfg, max_procs)},
	{"[segment] max_agents", offsetof(struct shm_cfg, max_agents)},
	{"[segment] registry_capacity", offsetof(struct shm_cfg, reg_capacity)},
	{"[segment] max_groups", offsetof(struct shm_cfg, max_groups)},
	{"[segment] group_members", offsetof(struct shm_cfg, group_members)},
	{"[segment] mailbox_cells", offsetof(struct shm_cfg, mbox_cells)},
	{"[segment] max_message", offsetof(struct shm_cfg, max_msg)},
	{"[instance] workers", offsetof(struct shm_cfg, nworkers)},
	{"[segment] checkpoint_bytes", offsetof(struct shm_cfg, ckpt_bytes)},
	{"NUMA nodes", offsetof(struct shm_cfg, nnodes)},
	{"[segment] max_monitors", offsetof(struct shm_cfg, max_monitors)},
	{"[segment] variables", offsetof(struct shm_cfg, max_vars)},
	{"[segment] variable_bytes", offsetof(struct shm_cfg, var_bytes)},
	{"[segment] subscriptions", offsetof(struct shm_cfg, max_subs)},
};

static uint32_t cfg_field(const struct shm_cfg *c, size_t off)
{
	uint32_t v;

	memcpy(&v, (const char *)c + off, sizeof(v));
	return v;
}

/*
 * Make sure the process that owned slot i is gone: a worker of the dead supervisor that is
 * still there (stopped, or slow to exit) is SIGKILLed and waited for. 0, or -EBUSY.
 */
static int adopt_end_owner(struct shm_seg *seg, uint32_t i)
{
	struct shm_proc *p = shm_proc_at(seg, i);
	/* relaxed: the dead supervisor's world is at rest; we only need the owner's identity */
	pid_t pid = (pid_t)(atomic_load_explicit(&p->own, memory_order_relaxed) >> 32);
	/* relaxed: as own */
	uint64_t start = atomic_load_explicit(&p->start_time, memory_order_relaxed);
	struct pollfd pf;
	int fd, r;

	/* a zombie (its parent, the dead supervisor, could not reap it) runs no code */
	if (!shm_pid_is_running(pid, start))
		return 0;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return 0; /* gone since */
	/* the pidfd holds this process: the same one the slot names, or none */
	if (!shm_pid_is_running(pid, start)) {
		close(fd);
		return 0;
	}
	fprintf(stderr,
		"shoal: adopting: process slot %u (pid %d) outlived its supervisor; "
		"killing it\n",
		i, (int)pid);
	syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
	pf = (struct pollfd){.fd = fd, .events = POLLIN};
	r = poll(&pf, 1, ADOPT_KILL_WAIT_MS);
	close(fd);
	return r == 1 ? 0 : -EBUSY; /* a system failure, not a timed-out check */
}

/*
 * See sup.h. The supervisor (its client scan, and adoption): slot reads DEAD and its owner,
 * not the supervisor's child, is gone with no status to know.
 */
void sup_repair_vanished(struct shm_seg *seg, uint32_t slot, bool worker)
{
	struct shm_proc *p = shm_proc_at(seg, slot);
	/* relaxed: the slot reads DEAD (its reader acquired that), so own cannot move */
	uint64_t own = atomic_load_explicit(&p->own, memory_order_relaxed);

	/* relaxed: a status for tools, as in sup_exit_record() */
	atomic_store_explicit(&p->last_pid, (uint32_t)(own >> 32), memory_order_relaxed);
	atomic_store_explicit(&p->last_epoch, (uint32_t)own, memory_order_relaxed);
	atomic_store_explicit(&p->last_code, -1, memory_order_relaxed);
	atomic_store_explicit(&p->last_signal, 0, memory_order_relaxed);
	atomic_store_explicit(&p->last_reason, SHM_EXIT_VANISHED, memory_order_relaxed);
	atomic_store_explicit(&p->last_exit_ns, shm_wall_ns(), memory_order_relaxed);
	shm_exit_record(seg, slot);
	shm_reg_repair(seg, slot);
	shm_grp_repair(seg, slot);
	shm_var_repair(seg, slot);
	ipc_repair_proc(seg, slot);
	/* its subscriptions (a client's inboxes'), and what its updates owed subscribers */
	wrk_var_sub_repair(seg, slot);
	if (worker) {
		wrk_repair_worker(seg, slot);
	} else {
		wrk_repair_proc_claims(seg, slot);
		/* the proxies handed to it end (after the claims: an interrupted ending or
		 * hand-over is resolved to HELD first): a gateway's connections went with it */
		wrk_repair_remote(seg, slot);
		/* and any handed to a gateway that is gone (a creator that died between its
		 * hand-over and its look at the gateway: workers/remote.c, R0) */
		wrk_remote_sweep(seg);
	}
	/* what it checked out goes to the pools' next waiters; a pool it was creating goes */
	shm_pool_repair(seg, slot, wrk_pool_notify, seg);
	/* relaxed: only the supervisor counts repairs; tools read it as a counter */
	atomic_fetch_add_explicit(&p->repair_gen, 1, memory_order_relaxed);
	/* X1: release: the repairs before the slot can be claimed again (claim_at acquires). */
	atomic_store_explicit(&p->state, SHM_PROC_EXITED, memory_order_release);
	shm_change_bump(seg);
}

/*
 * Repair process slot i of the dead instance as the supervisor repairs a dead process:
 * DEAD (also one a claimer died holding), then sup_repair_vanished(); a worker's agents are
 * marked DOWN for its replacement.
 */
static void adopt_repair_slot(struct shm_seg *seg, uint32_t i, bool worker)
{
	struct shm_proc *p = shm_proc_at(seg, i);
	/* S3 (shm/proc.c): the slot's owner fields before its state. */
	uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);

	if (st == SHM_PROC_FREE || st == SHM_PROC_EXITED)
		return;
	/* D0 as in the supervisor's repair: release, the slot reads DEAD before repairs. */
	atomic_store_explicit(&p->state, SHM_PROC_DEAD, memory_order_release);
	shm_change_bump(seg);
	sup_repair_vanished(seg, i, worker);
}

/* See sup.h. The supervisor's only thread, before it claims a process slot. */
int sup_adopt(const char *instance, const struct shm_cfg *cfg, struct shm_seg **out, char *err,
	      size_t errlen)
{
	struct shm_seg *seg;
	struct shm_hdr *h;
	enum shm_liveness l;
	uint32_t st, nagents = 0, queued = 0;
	int r;

	r = shm_seg_attach(instance, SHM_ATTACH_NOWAIT, 0, &seg, err, errlen);
	if (r)
		return r;
	h = shm_hdr(seg);
	l = shm_seg_liveness(seg, 0);
	/* I0 partner as in shm_seg_liveness(): which end it came to */
	st = atomic_load_explicit(&h->state, memory_order_acquire);
	if (l == SHM_LIVE_OK || l == SHM_LIVE_UNRESPONSIVE) {
		snprintf(err, errlen,
			 "instance '%s' is running (supervisor pid %u); stop it first, or use "
			 "another --instance",
			 instance, atomic_load_explicit(&h->sup_pid, memory_order_relaxed));
		r = -EEXIST;
		goto out_detach;
	}
	if (l == SHM_LIVE_STOPPED && st != SHM_INST_SUP_DEAD) {
		snprintf(err, errlen,
			 "instance '%s' stopped in order and its segment was kept; remove it with "
			 "'shoal clean --instance %s' to start afresh",
			 instance, instance);
		r = -EEXIST;
		goto out_detach;
	}
	for (size_t k = 0; k < sizeof(adopt_geometry) / sizeof(adopt_geometry[0]); k++) {
		uint32_t was = cfg_field(&h->cfg, adopt_geometry[k].off);
		uint32_t now = cfg_field(cfg, adopt_geometry[k].off);

		if (was != now) {
			snprintf(
				err, errlen,
				"instance '%s': its supervisor died, and its segment was made with "
				"%s = %u where this configuration has %u; run it with the "
				"configuration it was made with to adopt it, or throw it away with "
				"'shoal clean --instance %s'",
				instance, adopt_geometry[k].key, was, now, instance);
			r = -EINVAL;
			goto out_detach;
		}
	}
	/* its workers first: none of them may run on while we repair what they held */
	for (uint32_t i = 1; i <= h->cfg.nworkers && i < h->cfg.max_procs; i++) {
		r = adopt_end_owner(seg, i);
		if (r) {
			snprintf(err, errlen,
				 "instance '%s': a worker of its dead supervisor (process slot %u) "
				 "did not exit after SIGKILL",
				 instance, i);
			goto out_detach;
		}
	}
	/* the dead supervisor's slot: its control inbox and any half-served request */
	atomic_store_explicit(&h->ctl_inbox, 0, memory_order_relaxed);
	adopt_repair_slot(seg, 0, false);
	for (uint32_t i = 1; i <= h->cfg.nworkers && i < h->cfg.max_procs; i++)
		adopt_repair_slot(seg, i, true);
	for (uint32_t i = 0; i < h->cfg.max_agents; i++) {
		/* relaxed: a count for the log line */
		uint32_t as =
			atomic_load_explicit(&shm_agent_at(seg, i)->state, memory_order_relaxed);

		if (as == SHM_AGENT_FREE || as == SHM_AGENT_STOPPED)
			continue;
		nagents++;
		queued += ipc_mbox_depth(seg, i);
	}
	/* relaxed: a status word; the new supervisor's identity is stored by the caller */
	atomic_store_explicit(&h->state, SHM_INST_STARTING, memory_order_relaxed);
	atomic_store_explicit(&h->heartbeat_ns, shm_now_ns(), memory_order_relaxed);
	shm_change_bump(seg);
	fprintf(stderr,
		"shoal: instance '%s': adopted the segment of its dead supervisor (pid %u): %u "
		"agents, %u messages queued; restarting its %u workers\n",
		instance, atomic_load_explicit(&h->sup_pid, memory_order_relaxed), nagents, queued,
		h->cfg.nworkers);
	*out = seg;
	return 0;

out_detach:
	shm_seg_detach(seg);
	return r;
}
