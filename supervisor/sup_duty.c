/*
 * Periodic duties on the supervisor's timer: its heartbeat, the client scan, hang checks,
 * the latency budgets, the status line.
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
#include "shm/log.h"
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
		uint32_t st, role;

		/*
		 * Marks a dead owner's slot DEAD, frees a dead claimer's (its role may not be
		 * written yet), never touches a live one's (shm/proc.c).
		 */
		if (judge)
			shm_proc_reap(s->seg, i);
		/* D1: pairs with H2/K1 in shm/proc.c: DEAD once the owner is known gone */
		st = atomic_load_explicit(&p->state, memory_order_acquire);
		/* relaxed: ordered by D1 (stored before the owner's S0) */
		role = atomic_load_explicit(&p->role, memory_order_relaxed);
		/* the gateway is a client of ours: repaired as one */
		if (st != SHM_PROC_DEAD || (role != SHM_ROLE_CLIENT && role != SHM_ROLE_GATEWAY))
			continue;
		sup_repair_vanished(s->seg, i, false);
	}
}

/* Whether the config runs the demo: the default's coordinator and tuners. */
static bool is_demo(const struct sup_config *c, uint32_t *tuners)
{
	bool coord = false;

	*tuners = 0;
	for (uint32_t i = 0; i < c->nagents; i++) {
		coord |= !strcmp(c->agents[i].type, "coordinator");
		if (!strcmp(c->agents[i].type, "tuner"))
			*tuners += c->agents[i].count;
	}
	return coord && *tuners;
}

/*
 * The banner: printed once, to stdout, when every worker is first ready. It says what runs
 * where, how long the start took, what the demo does, and what to try next, so a person who
 * just typed `shoal run` knows what they are looking at. Supervisor thread only.
 */
void sup_banner_print(struct sup *s)
{
	const struct sup_config *c = s->c;
	uint32_t total = 0, tuners;
	/* the tools' default instance needs no --instance */
	bool dflt = !strcmp(c->instance, "default");
	char inst[SHM_INSTANCE_MAX + 16] = "";

	if (!dflt)
		snprintf(inst, sizeof(inst), " --instance %s", c->instance);
	for (uint32_t i = 0; i < c->nagents; i++)
		total += c->agents[i].count;
	for (uint32_t i = 0; i < c->npools; i++)
		total += c->pools[i].size;
	printf("shoal %s: ready in %.3f s (supervisor pid %d)\n", c->instance,
	       (double)(sup_now() - s->start_ns) / 1e9, (int)getpid());
	printf("  workers: %u\n", s->n);
	for (uint32_t i = 0; i < s->n; i++) {
		const struct sup_worker *w = &s->w[i];

		if (w->place.core >= 0)
			printf("    worker %u: pid %d, core %d, node %d\n", i, (int)w->pid,
			       w->place.core, w->place.node);
		else
			printf("    worker %u: pid %d, not pinned\n", i, (int)w->pid);
	}
	printf("  agents: %u\n", total);
	for (uint32_t i = 0; i < c->nagents; i++) {
		const struct sup_agent_spec *a = &c->agents[i];
		char first[80], last[80];

		sup_agent_name(a, 0, first, sizeof(first));
		sup_agent_name(a, a->count ? a->count - 1 : 0, last, sizeof(last));
		if (a->count > 1)
			printf("    %s: %u x %s (%s .. %s)\n", a->section, a->count, a->type, first,
			       last);
		else
			printf("    %s: %u x %s (%s)\n", a->section, a->count, a->type, first);
	}
	for (uint32_t i = 0; i < c->npools; i++)
		printf("    pool %s: %u x %s (up to %u on demand)\n", c->pools[i].name,
		       c->pools[i].size, c->pools[i].type, c->pools[i].size + c->pools[i].overflow);
	if (is_demo(c, &tuners)) {
		printf("  the demo: a hyperparameter search by %u tuners.\n", tuners);
		fputs("    Each tuner tries points near the best one known and sends its\n"
		      "    score to the coordinator, which keeps the best, publishes it in\n"
		      "    the shared variables best.score and best.x0..best.x3 (one atomic\n"
		      "    update) and announces it to the group tuners by acknowledged\n"
		      "    broadcasts. Every 5 s the tuners agree by consensus on a new\n"
		      "    learning rate (the variable lr); every 3 s an allocation round\n"
		      "    divides 64 compute slots among them; each tuner draws evaluators\n"
		      "    from the pool evaluators.\n",
		      stdout);
	}
	printf("  try:\n"
	       "    shoal inspect%s  # workers, agents, names, exits\n"
	       "    shoal top%s  # live rates per worker and agent\n",
	       inst, inst);
	if (is_demo(c, &tuners))
		printf("    shoal var get best.score%s  # the best score so far\n"
		       "    shoal call coordinator best%s  # the best point, as text\n",
		       inst, inst);
	else
		printf("    shoal call NAME PAYLOAD%s\n", inst);
	printf("  stop: Ctrl-C, or SIGTERM (kill -TERM %d): an orderly stop\n", (int)getpid());
	fflush(stdout);
}

/*
 * Add to s->handled what each agent slot handled since it was last seen. A slot keeps its
 * count after its agent stops, until the slot is reused (gen bumped, count reset), so an
 * agent's messages stay counted if the slot is seen once between its last message and its
 * reuse: every tick. The total only grows; a reuse read half done (the new gen with the old
 * count) can only count a few messages twice. Supervisor thread only.
 */
void sup_handled_count(struct sup *s)
{
	const struct shm_cfg *cfg = &shm_hdr(s->seg)->cfg;

	if (!s->seen)
		return;
	for (uint32_t i = 0; i < cfg->max_agents; i++) {
		struct shm_agent *a = shm_agent_at(s->seg, i);
		struct sup_seen *v = &s->seen[i];
		/* relaxed: counters; a torn view across them is the race the comment allows */
		uint32_t gen = atomic_load_explicit(&a->gen, memory_order_relaxed);
		uint64_t h = atomic_load_explicit(&a->handled, memory_order_relaxed);

		if (gen != v->gen) {
			v->gen = gen;
			v->handled = 0;
		}
		if (h > v->handled)
			s->handled += h - v->handled;
		v->handled = h;
	}
}

/* Print the status line (workers up, agents, restarts, messages) to stdout. */
void sup_status_print(struct sup *s)
{
	uint32_t up = 0, agents = 0, running = 0;
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
	}
	sup_handled_count(s);
	printf("shoal %s: workers %u/%u up, agents %u (%u running), restarts %" PRIu64
	       ", messages handled %" PRIu64 "\n",
	       s->c->instance, up, s->n, agents, running, s->restarts, s->handled);
	fflush(stdout);
	sup_notify("STATUS=workers %u/%u up, agents %u (%u running), restarts %" PRIu64
		   ", messages handled %" PRIu64,
		   up, s->n, agents, running, s->restarts, s->handled);
}

/* The line an orderly stop ends with, to stdout: it went well, and the run's totals. */
void sup_stop_print(struct sup *s)
{
	double secs = (double)(sup_now() - s->start_ns) / 1e9;

	sup_handled_count(s);
	/* a short run (a test's, a typo's) does not read "after 0.0s" */
	printf("shoal %s: stopped in order after %.*fs: %" PRIu64 " messages handled, %" PRIu64
	       " restarts\n",
	       s->c->instance, secs < 10 ? 3 : 1, secs, s->handled, s->restarts);
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
		char who[48];

		if (w->state != SUP_W_RUNNING || w->pidfd < 0 || t < hb || t - hb <= limit)
			continue;
		snprintf(who, sizeof(who), "worker %u (pid %d)", w->windex, (int)w->pid);
		shm_log_event("worker.hang", who,
			      json_pack("{s:i, s:i, s:f, s:f}", "worker", (int)w->windex, "pid",
					(int)w->pid, "silent_s", (double)(t - hb) / 1e9,
					"hang_timeout_s", (double)limit / 1e9),
			      "no heartbeat for %.1f s (hang timeout %.1f s); killing it",
			      (double)(t - hb) / 1e9, (double)limit / 1e9);
		{
			struct shm_event e;

			shm_event_init(&e, SHM_EV_HANG);
			e.code = (int32_t)((t - hb) / 1000000u);
			sup_event(s, w, SHM_EV_HANG, w->pid, &e, "no heartbeat for %.1f s; killing",
				  (double)(t - hb) / 1e9);
		}
		sup_worker_post(s, w, SUP_E_HANG); /* HUNG: killed, its exit reads "hang" */
	}
}

/*
 * Every TICK_NS: the supervisor's heartbeat, the client scan, hang checks, the control
 * inbox's duties, the latency budgets and the status line when due. Supervisor thread only,
 * on its timer.
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
	sup_handled_count(s);
	sup_ctl_tick(s->ctl);
	sup_pools_serve(s);
	sup_slo_tick(s, t);
	if (s->o->status && s->c->status_interval_ms && t >= s->next_status) {
		s->next_status = t + (uint64_t)s->c->status_interval_ms * 1000000u;
		sup_status_print(s);
	}
}
