/*
 * Agent pools, the supervisor's part: it creates the [pool NAME] pools at start, spawns
 * overflow members while checkouts wait, stops overflow members nobody needs, and ends
 * queued checkouts whose timeout passed (shm/pool.c decides; workers/pool.c tells).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shm/pool.h"
#include "supervisor/sup_int.h"

/* Spawn one member of pool `name` (member index i) on the next worker, round robin. */
static int spawn_member(struct sup *s, const char *pool, const char *type, uint32_t i,
			shoal_handle_t *h)
{
	char name[SHOAL_NAME_MAX + 1];

	snprintf(name, sizeof(name), "%s.%u", pool, i);
	return wrk_agent_spawn(s->seg, type, name, 1 + s->pool_rr++ % s->n, h);
}

/* See sup_int.h. At start, before the workers run (they start the members). */
int sup_pools_start(struct sup *s)
{
	for (uint32_t k = 0; k < s->c->npools; k++) {
		const struct sup_pool_spec *p = &s->c->pools[k];
		uint32_t id;
		int r = shm_pool_create(s->seg, p->name, p->type, p->size, p->overflow, &id);

		if (r) {
			fprintf(stderr, "shoal: %s:%d: [pool %s]: creating the pool: %s\n",
				s->c->source, p->line, p->name, strerror(-r));
			return r;
		}
		for (uint32_t i = 0; i < p->size; i++) {
			shoal_handle_t h;

			r = spawn_member(s, p->name, p->type, i, &h);
			if (!r)
				r = shm_pool_add(s->seg, id, h, false);
			if (r) {
				fprintf(stderr,
					"shoal: %s:%d: [pool %s]: starting member %u of %u: %s\n",
					s->c->source, p->line, p->name, i, p->size, strerror(-r));
				shm_pool_abandon(s->seg, id);
				return r;
			}
		}
		shm_pool_publish(s->seg, id);
	}
	return 0;
}

/*
 * Members whose agents are gone for good (stopped, or removed past their restart intensity)
 * get a new agent of the pool's type under the same name; a spawn that fails is tried again
 * on the next tick.
 */
static void replace_gone(struct sup *s, uint32_t id, const struct shm_pool_info *in)
{
	uint32_t member;
	uint64_t old;

	while (shm_pool_next_gone(s->seg, id, &member, &old) == 0) {
		shoal_handle_t h;
		int r = spawn_member(s, in->name, in->type, member, &h);

		if (r) {
			if (r != -EEXIST) /* its name not free yet: the next tick */
				fprintf(stderr, "shoal: pool %s: replacing member %u: %s\n",
					in->name, member, strerror(-r));
			return;
		}
		if (shm_pool_replace(s->seg, id, member, old, h, wrk_pool_notify, s->seg))
			wrk_agent_stop(s->seg, h); /* replaced meanwhile: not needed */
	}
}

/*
 * See sup_int.h. On every tick and every wake of the control inbox (a checkout that queued
 * rings us for overflow): timeouts and undelivered grants, overflow spawns, retirements.
 */
void sup_pools_serve(struct sup *s)
{
	uint32_t n = shm_hdr(s->seg)->cfg.max_pools;
	uint64_t now = shm_now_ns();

	if (s->stopping)
		return;
	shm_pool_tick(s->seg, now, wrk_pool_notify, s->seg);
	for (uint32_t id = 0; id < n; id++) {
		struct shm_pool_info in;
		uint32_t want;
		uint64_t old;

		if (shm_pool_read(s->seg, id, &in) || in.state != SHM_POOL_LIVE)
			continue;
		want = shm_pool_take_want(s->seg, id);
		for (uint32_t i = 0; i < want; i++) {
			shoal_handle_t h = 0;
			/* unnamed: a retired member's name may not be free yet */
			int r = wrk_agent_spawn(s->seg, in.type, NULL, 1 + s->pool_rr++ % s->n, &h);

			if (r)
				fprintf(stderr, "shoal: pool %s: starting an overflow member: %s\n",
					in.name, strerror(-r));
			/* 0 on failure: the count of members being spawned still drops */
			shm_pool_add_overflow(s->seg, id, r ? 0 : h, wrk_pool_notify, s->seg);
		}
		while ((old = shm_pool_retired(s->seg, id)) != 0)
			wrk_agent_stop(s->seg, old);
		replace_gone(s, id, &in);
	}
}
