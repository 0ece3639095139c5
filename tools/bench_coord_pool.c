/*
 * shoal bench coord, its pool rows (bench_coord.c runs them): pool_checkout_checkin, one
 * checkout and its checkin on a pool nobody else uses (the lock-free path: a CAS on a free
 * member's holder word, a CAS back), and the same-run floor, two CASes on one cache line
 * (cas_pair). A scratch segment, no instance: the agents are only handles here. A queued
 * checkout's cost is a grant's (a message to the waiter) and is not measured here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/pool.h"
#include "shm/shm.h"
#include "shoal/shoal.h"
#include "tools/bench.h"
#include "tools/tools.h"

#define POOL_SIZE 8u

/* One sample: a checkout and its checkin. 0 or -errno. */
static int pair(struct shm_seg *seg, uint32_t id, uint64_t *sink)
{
	uint64_t a = 0;
	uint32_t w;
	int r = shm_pool_checkout(seg, id, 1, 1, 0, false, &a, &w, NULL, NULL);

	if (r)
		return r < 0 ? r : -EPROTO;
	*sink += a;
	return shm_pool_checkin(seg, id, a, NULL, NULL);
}

/* n samples of pair() into ns; ops/s over a second loop of n. */
static int time_pairs(struct shm_seg *seg, uint32_t id, uint64_t *ns, size_t n, double *ops)
{
	uint64_t sink = 0, t0;

	for (size_t i = 0; i < n; i++) {
		uint64_t a = bench_ticks(), b;
		int r = pair(seg, id, &sink);

		b = bench_ticks();
		if (r)
			return r;
		ns[i] = (uint64_t)bench_ticks_to_ns(b - a);
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < n; i++)
		if (pair(seg, id, &sink))
			return -EIO;
	t0 = bench_now_ns() - t0;
	*ops = sink ? (double)n * 1e9 / (double)(t0 ? t0 : 1) : 0;
	return 0;
}

/* See bench.h. */
int bench_coord_pool(struct bench_opts *o, struct bench_report *rep)
{
	size_t n = o->quick ? 100000 : 1000000;
	uint64_t *ns = calloc(n, sizeof(*ns)), *fl = calloc(n, sizeof(*fl));
	char inst[SHM_INSTANCE_MAX], err[256];
	struct shm_seg *seg = NULL;
	_Atomic uint64_t word = 0;
	struct shm_cfg cfg;
	uint64_t t0;
	uint32_t id;
	double ops = 0;
	int r = -ENOMEM;

	if (!ns || !fl)
		goto out;
	snprintf(inst, sizeof(inst), "bench-pool-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.max_pools = 1;
	cfg.pool_members = POOL_SIZE + 2;
	r = shm_seg_create(inst, &cfg, &seg, err, sizeof(err));
	if (r) {
		fprintf(stderr, "shoal bench coord: pools: %s\n", err);
		seg = NULL;
		goto out;
	}
	shm_seg_publish(seg);
	r = shm_proc_claim(seg, SHM_ROLE_CLIENT, false);
	if (r)
		goto out;
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	r = shm_pool_create(seg, "bench", "echo", POOL_SIZE, 0, &id);
	for (uint32_t i = 0; i < POOL_SIZE && !r; i++) {
		uint32_t slot;

		/* a running agent slot stands for a member: only its handle is handed out */
		r = shm_agent_alloc(seg, 0, &slot);
		if (!r) {
			struct shm_agent *ag = shm_agent_at(seg, slot);

			atomic_store_explicit(&ag->state, SHM_AGENT_RUNNING, memory_order_release);
			r = shm_pool_add(seg, id, shoal_handle_make(slot, atomic_load(&ag->gen)),
					 false);
		}
	}
	if (r)
		goto out;
	shm_pool_publish(seg, id);
	bench_pin(o->cpu_a);
	/* the floor: the same two locked instructions on one line, nothing else */
	for (size_t i = 0; i < n; i++) {
		uint64_t a = bench_ticks(), b, e = 0;

		atomic_compare_exchange_strong(&word, &e, 1);
		e = 1;
		atomic_compare_exchange_strong(&word, &e, 0);
		b = bench_ticks();
		fl[i] = (uint64_t)bench_ticks_to_ns(b - a);
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < n; i++) {
		uint64_t e = 0;

		atomic_compare_exchange_strong(&word, &e, 1);
		e = 1;
		atomic_compare_exchange_strong(&word, &e, 0);
	}
	t0 = bench_now_ns() - t0;
	bench_add_baseline(rep, "cas_pair", fl, n, (double)n * 1e9 / (double)(t0 ? t0 : 1));
	r = time_pairs(seg, id, ns, n, &ops);
	if (r)
		goto out;
	bench_add_result(rep, "pool_checkout_checkin", ns, n, ops, "cas_pair");
	r = 0;
	snprintf(rep->notes + strlen(rep->notes), sizeof(rep->notes) - strlen(rep->notes),
		 "%spool_checkout_checkin: a checkout and its checkin on an idle pool of %u (the "
		 "lock-free path), one process, cpu %d; cas_pair: two CASes on one line",
		 rep->notes[0] ? ". " : "", POOL_SIZE, o->cpu_a);
out:
	if (r)
		fprintf(stderr, "shoal bench coord: pools: %s\n", strerror(-r));
	free(ns);
	free(fl);
	if (seg) {
		shm_seg_detach(seg);
		shm_seg_unlink(inst);
	}
	return r;
}
