/*
 * Periodic duties on the supervisor's timer: its heartbeat, the client scan, hang checks,
 * the status line.
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

/* --- instance-wide duties on the timer --- */

/* Clients that died holding a slot are repaired like workers (they are not our children). */
/*
 * Judge the client slots (judge: each live one costs a /proc read, so only periodically)
 * and repair those marked DEAD, by us or by a claimer that found the table full.
 */
void sup_clients_scan(struct sup *s, bool judge)
{
	uint32_t n = shm_hdr(s->seg)->cfg.max_procs;

	for (uint32_t i = s->n + 1; i < n; i++) {
		struct shm_proc *p = shm_proc_at(s->seg, i);
		uint32_t st;

		/*
		 * Marks a dead owner's slot DEAD, frees a dead claimer's (its role may not be
		 * written yet), never touches a live one's (shm/proc.c).
		 */
		if (judge)
			shm_proc_reap(s->seg, i);
		/* D1: pairs with H2/K1 in shm/proc.c: DEAD once the owner is known gone */
		st = atomic_load_explicit(&p->state, memory_order_acquire);
		/* relaxed: ordered by D1 (stored before the owner's S0) */
		if (st != SHM_PROC_DEAD ||
		    atomic_load_explicit(&p->role, memory_order_relaxed) != SHM_ROLE_CLIENT)
			continue;
		sup_repair_vanished(s->seg, i, false);
	}
}

/* Print the status line (workers up, agents, restarts, messages) to stdout. */
void sup_status_print(struct sup *s)
{
	uint32_t up = 0, agents = 0, running = 0;
	uint64_t handled = 0;
	const struct shm_cfg *cfg = &shm_hdr(s->seg)->cfg;

	for (uint32_t i = 0; i < s->n; i++)
		up += s->w[i].state == SUP_W_RUNNING || s->w[i].state == SUP_W_HUNG;
	for (uint32_t i = 0; i < cfg->max_agents; i++) {
		struct shm_agent *a = shm_agent_at(s->seg, i);
		uint32_t st = atomic_load_explicit(&a->state, memory_order_relaxed);

		if (st == SHM_AGENT_FREE)
			continue;
		agents++;
		running += st == SHM_AGENT_RUNNING;
		handled += atomic_load_explicit(&a->handled, memory_order_relaxed);
	}
	printf("shoal %s: workers %u/%u up, agents %u (%u running), restarts %" PRIu64
	       ", messages handled %" PRIu64 "\n",
	       s->c->instance, up, s->n, agents, running, s->restarts, handled);
	fflush(stdout);
}

/*
 * Kill running workers whose heartbeat is older than the hang timeout: a callback that never
 * returns holds its whole worker. Their exit is recorded as "hang" and restarted like a crash
 * (the message it was handling is redelivered, flagged, to the replacement).
 */
static void check_hangs(struct sup *s, uint64_t t)
{
	uint64_t limit = (uint64_t)s->c->policy.hang_ms * 1000000u;

	if (!limit || s->stopping)
		return;
	for (uint32_t i = 0; i < s->n; i++) {
		struct sup_worker *w = &s->w[i];
		/* relaxed: a timestamp the worker refreshes; only its age matters */
		uint64_t hb =
			atomic_load_explicit(&sup_wproc(s, w)->heartbeat_ns, memory_order_relaxed);

		if (w->state != SUP_W_RUNNING || w->pidfd < 0 || t < hb || t - hb <= limit)
			continue;
		fprintf(stderr,
			"shoal: worker %u (pid %d): no heartbeat for %.1f s (hang timeout %.1f s); "
			"killing it\n",
			w->windex, (int)w->pid, (double)(t - hb) / 1e9, (double)limit / 1e9);
		sup_worker_post(s, w, SUP_E_HANG); /* HUNG: killed, its exit reads "hang" */
	}
}

/*
 * Every TICK_NS: the supervisor's heartbeat, the client scan, hang checks, the control
 * inbox's duties and the status line when due. Supervisor thread only, on its timer.
 */
void sup_duty_tick(struct sup *s)
{
	uint64_t t = sup_now();
	struct shm_hdr *h = shm_hdr(s->seg);

	if (t < s->next_tick)
		return;
	s->next_tick = t + TICK_NS;
	/* relaxed: single writer; readers compare ages */
	atomic_store_explicit(&h->heartbeat_ns, t, memory_order_relaxed);
	shm_proc_heartbeat(s->seg);
	sup_clients_scan(s, true);
	check_hangs(s, t);
	sup_ctl_tick(s->ctl);
	sup_pools_serve(s);
	if (s->o->status && s->c->status_interval_ms && t >= s->next_status) {
		s->next_status = t + (uint64_t)s->c->status_interval_ms * 1000000u;
		sup_status_print(s);
	}
}
