/*
 * Weak stand-ins for the worker contract (workers/wrk.h, branch `wrk`), so the supervisor
 * runs and is tested before that branch is merged. A strong definition anywhere in the
 * link replaces each one. Remove this file once `wrk` is merged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "supervisor/sup_int.h"

#define WEAK __attribute__((weak))

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
	r = shm_reg_register(seg, SHM_NS_DEFAULT, name, strlen(name), *out, NULL);
	if (r) {
		shm_agent_free(seg, slot);
		return r;
	}
	ipc_ring(seg, proc_slot);
	return 0;
}

static bool stub_is_stopping(void *arg)
{
	struct shm_proc *p = arg;

	/* A0: pairs with the supervisor's release store of STOPPING (T0 in sup.c). */
	return atomic_load_explicit(&p->state, memory_order_acquire) == SHM_PROC_STOPPING;
}

/* The stub worker: claims its slot, starts its agents, signals ready, waits for STOPPING. */
WEAK int wrk_main(struct shm_seg *seg, const struct wrk_args *args)
{
	struct shm_proc *p = shm_proc_at(seg, args->proc_slot);
	uint32_t epoch, n = shm_hdr(seg)->cfg.max_agents;
	struct timespec ts = { 0, 10000000 };
	struct ipc_waiter *w;
	int r = shm_proc_claim_slot(seg, args->proc_slot, SHM_ROLE_WORKER, getpid(),
				    shm_pid_start_time(getpid()), &epoch);

	if (r)
		return 3;
	seg->self = args->proc_slot;
	if (ipc_waiter_create(seg, IPC_WAKE_AUTO, &w))
		w = NULL;
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
	while (!stub_is_stopping(p)) {
		shm_proc_heartbeat(seg);
		if (w)
			ipc_waiter_wait(w, 0, 100000000u, stub_is_stopping, p, NULL);
		else
			nanosleep(&ts, NULL);
	}
	if (w)
		ipc_waiter_destroy(w);
	for (uint32_t i = 0; i < n; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);

		if (atomic_load_explicit(&a->worker, memory_order_acquire) == args->proc_slot + 1 &&
		    atomic_load_explicit(&a->state, memory_order_acquire) == SHM_AGENT_RUNNING)
			atomic_store_explicit(&a->state, SHM_AGENT_STOPPED, memory_order_release);
	}
	return 0;
}
