/*
 * Weak stand-ins for what other branches implement (registry and group repair, mailbox
 * repair and ringing, the worker), so the supervisor runs and is tested before they are
 * merged. A strong definition anywhere in the link replaces each one. Remove this file
 * once `reg`, `ipc` and `wrk` are merged.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "supervisor/sup_int.h"

#define WEAK __attribute__((weak))

WEAK int shm_reg_repair(struct shm_seg *seg, uint32_t slot)
{
	(void)seg;
	(void)slot;
	return 0;
}

WEAK int shm_grp_repair(struct shm_seg *seg, uint32_t slot)
{
	(void)seg;
	(void)slot;
	return 0;
}

WEAK int ipc_repair_proc(struct shm_seg *seg, uint32_t slot)
{
	(void)seg;
	(void)slot;
	return 0;
}

WEAK void ipc_ring(struct shm_seg *seg, uint32_t proc)
{
	struct shm_proc *p = shm_proc_at(seg, proc);

	/* R0: pairs with the stub worker's acquire load of doorbell before it waits. */
	atomic_fetch_add_explicit(&p->doorbell, 1, memory_order_release);
	syscall(SYS_futex, &p->doorbell, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

WEAK void ipc_mbox_init(struct shm_seg *seg, uint32_t slot)
{
	(void)seg;
	(void)slot;
}

WEAK int wrk_repair_worker(struct shm_seg *seg, uint32_t proc_slot)
{
	uint32_t n = shm_hdr(seg)->cfg.max_agents;

	for (uint32_t i = 0; i < n; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);

		if (atomic_load_explicit(&a->worker, memory_order_acquire) == proc_slot + 1 &&
		    atomic_load_explicit(&a->state, memory_order_acquire) != SHM_AGENT_FREE)
			atomic_store_explicit(&a->state, SHM_AGENT_DOWN, memory_order_release);
	}
	return 0;
}

WEAK int wrk_agent_spawn(struct shm_seg *seg, const char *type, const char *name,
			 uint32_t proc_slot, shoal_handle_t *out)
{
	struct shm_proc *p = shm_proc_at(seg, proc_slot);
	uint32_t slot;
	struct shm_agent *a;
	int r = shm_agent_alloc(seg, p->node < 0 ? 0 : (uint32_t)p->node, &slot);

	if (r)
		return r;
	a = shm_agent_at(seg, slot);
	ipc_mbox_init(seg, slot);
	snprintf(a->type, sizeof(a->type), "%s", type);
	snprintf(a->name, sizeof(a->name), "%s", name);
	atomic_store_explicit(&a->worker, proc_slot + 1, memory_order_release);
	*out = shoal_handle_make(slot, atomic_load_explicit(&a->gen, memory_order_relaxed));
	ipc_ring(seg, proc_slot);
	return 0;
}

/* The stub worker: claims its slot, starts its agents, signals ready, waits for STOPPING. */
WEAK int wrk_main(struct shm_seg *seg, const struct wrk_args *args)
{
	struct shm_proc *p = shm_proc_at(seg, args->proc_slot);
	uint32_t epoch, n = shm_hdr(seg)->cfg.max_agents;
	int r = shm_proc_claim_slot(seg, args->proc_slot, SHM_ROLE_WORKER, getpid(),
				    shm_pid_start_time(getpid()), &epoch);

	if (r)
		return 3;
	seg->self = args->proc_slot;
	seg->epoch = epoch;
	seg->tag = SHM_TAG(args->proc_slot, epoch);
	for (uint32_t i = 0; i < n; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);
		uint32_t st = atomic_load_explicit(&a->state, memory_order_acquire);

		if (atomic_load_explicit(&a->worker, memory_order_acquire) == args->proc_slot + 1 &&
		    (st == SHM_AGENT_STARTING || st == SHM_AGENT_DOWN)) {
			if (st == SHM_AGENT_DOWN)
				atomic_fetch_add_explicit(&a->restarts, 1, memory_order_relaxed);
			atomic_store_explicit(&a->state, SHM_AGENT_RUNNING, memory_order_release);
		}
	}
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	if (args->ready_fd >= 0) {
		(void)!write(args->ready_fd, "r", 1);
		close(args->ready_fd);
	}
	for (;;) {
		/* A0: pairs with R0 in ipc_ring() and the supervisor's release store of state. */
		uint32_t bell = atomic_load_explicit(&p->doorbell, memory_order_acquire);
		struct timespec ts = { 0, 50000000 };

		if (atomic_load_explicit(&p->state, memory_order_acquire) == SHM_PROC_STOPPING)
			break;
		shm_proc_heartbeat(seg);
		syscall(SYS_futex, &p->doorbell, FUTEX_WAIT, bell, &ts, NULL, 0);
	}
	for (uint32_t i = 0; i < n; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);

		if (atomic_load_explicit(&a->worker, memory_order_acquire) == args->proc_slot + 1 &&
		    atomic_load_explicit(&a->state, memory_order_acquire) == SHM_AGENT_RUNNING)
			atomic_store_explicit(&a->state, SHM_AGENT_STOPPED, memory_order_release);
	}
	return 0;
}
