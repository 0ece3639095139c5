/*
 * test_alloc: resource allocation rounds. The policies (exact shares, edge cases), the round
 * record's value words (a member's demand: first stays, late and stale refused), and rounds
 * through `shoal run`: demanders on two workers, a worker SIGKILLed mid-round, a member that
 * never answers, a client inbox that reports, an agent that allocates, and `shoal allocate`.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/round.h"
#include "shm/shm.h"
#include "shoal/agent.h"
#include "shoal/client.h"
#include "tests/ipc_test_util.h"
#include "tests/run_test_util.h"
#include "tests/support.h"
#include "workers/wrk_int.h"

/* --- the policies --- */

/* policy(capacity, d[0..n)) gives exactly want[0..n). */
static void check_policy(shoal_alloc_policy_fn policy, uint64_t capacity, const uint64_t *d,
			 uint32_t n, const uint64_t *want)
{
	uint64_t share[16];

	assert_true(n <= 16);
	memset(share, 0xa5, sizeof(share));
	assert_int_equal(policy(capacity, d, n, share), 0);
	for (uint32_t i = 0; i < n; i++)
		if (share[i] != want[i])
			fail_msg("capacity %llu, member %u: share %llu, want %llu",
				 (unsigned long long)capacity, i, (unsigned long long)share[i],
				 (unsigned long long)want[i]);
}

#define N(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static void test_alloc_proportional(void **state)
{
	shoal_alloc_policy_fn p = shoal_alloc_proportional;
	/* enough for everyone: each gets its demand, the rest stays */
	const uint64_t d1[] = {1, 2, 3, 4}, w1[] = {1, 2, 3, 4};
	/* a tie of remainders: the lower index gets the unit the floors leave */
	const uint64_t d2[] = {5, 5, 5}, w2[] = {4, 3, 3};
	/* zero demands get nothing, the largest remainder the leftover unit */
	const uint64_t d3[] = {0, 10, 20, 0}, w3[] = {0, 2, 5, 0};
	/* nothing to divide */
	const uint64_t d4[] = {3, 4}, w4[] = {0, 0};
	/* every demand zero */
	const uint64_t d5[] = {0, 0, 0}, w5[] = {0, 0, 0};
	/* 64-bit products: 2^63 * 2^63 needs 128 bits */
	const uint64_t d6[] = {1ull << 63, 1ull << 63}, w6[] = {1ull << 62, 1ull << 62};
	/* halves, two ties of four: indices 0 and 2 (odd demands, equal remainders) win */
	const uint64_t d7[] = {1, 2, 3, 4, 5, 6, 7, 8}, w7[] = {1, 1, 2, 2, 2, 3, 3, 4};
	uint64_t s = 99;

	(void)state;
	check_policy(p, 10, d1, N(d1), w1);
	check_policy(p, 1000, d1, N(d1), w1);
	check_policy(p, 10, d2, N(d2), w2);
	check_policy(p, 7, d3, N(d3), w3);
	check_policy(p, 0, d4, N(d4), w4);
	check_policy(p, 5, d5, N(d5), w5);
	check_policy(p, 1ull << 63, d6, N(d6), w6);
	check_policy(p, 18, d7, N(d7), w7);
	/* no members: nothing written */
	assert_int_equal(p(10, NULL, 0, NULL), 0);
	assert_int_equal(p(10, d1, 1, NULL), -EINVAL);
	assert_int_equal(p(0, d1, 1, &s), 0);
	assert_int_equal(s, 0);
}

static void test_alloc_maxmin(void **state)
{
	shoal_alloc_policy_fn p = shoal_alloc_maxmin;
	/* the small demand is met, the two large ones split the rest */
	const uint64_t d1[] = {2, 8, 8}, w1[] = {2, 4, 4};
	const uint64_t d2[] = {1, 5, 5, 5}, w2[] = {1, 3, 3, 3};
	/* units below the next level: one each, the lower index first */
	const uint64_t d3[] = {5, 5, 5}, w3[] = {4, 4, 3};
	const uint64_t d4[] = {9, 0, 9, 2}, w4[] = {5, 0, 4, 2};
	/* enough for everyone */
	const uint64_t d5[] = {3, 4}, w5[] = {3, 4};
	/* nothing to divide */
	const uint64_t w6[] = {0, 0};
	/* 1..8 among 18: 1 and 2 met, the other six level 2, three of them one more */
	const uint64_t d7[] = {1, 2, 3, 4, 5, 6, 7, 8}, w7[] = {1, 2, 3, 3, 3, 2, 2, 2};
	/* large demands: no overflow in demand * members */
	const uint64_t d8[] = {UINT64_MAX, UINT64_MAX, 1}, w8[] = {50, 49, 1};

	(void)state;
	check_policy(p, 10, d1, N(d1), w1);
	check_policy(p, 10, d2, N(d2), w2);
	check_policy(p, 11, d3, N(d3), w3);
	check_policy(p, 11, d4, N(d4), w4);
	check_policy(p, 100, d5, N(d5), w5);
	check_policy(p, 0, d5, N(d5), w6);
	check_policy(p, 18, d7, N(d7), w7);
	check_policy(p, 100, d8, N(d8), w8);
	assert_int_equal(p(10, NULL, 0, NULL), 0);
	assert_int_equal(p(10, NULL, 2, NULL), -EINVAL);
}

static void test_alloc_policy_find(void **state)
{
	(void)state;
	assert_ptr_equal(shoal_alloc_policy_find("proportional"), shoal_alloc_proportional);
	assert_ptr_equal(shoal_alloc_policy_find("maxmin"), shoal_alloc_maxmin);
	assert_null(shoal_alloc_policy_find("fair"));
	assert_null(shoal_alloc_policy_find(""));
	assert_null(shoal_alloc_policy_find(NULL));
}

/* --- the round record's value words --- */

static char inst[64];

static struct shm_seg *make(const char *tag, uint32_t g, uint32_t rounds)
{
	struct shm_cfg cfg;

	snprintf(inst, sizeof(inst), "t-alloc-%s-%d", tag, (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	cfg.max_procs = 16;
	cfg.max_groups = 4;
	cfg.group_members = g;
	cfg.max_rounds = rounds;
	return ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
}

static void fake_members(shoal_handle_t *h, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		h[i] = shoal_handle_make(i, 1);
}

/*
 * A member's value: unseen before its answer, seen after; the first one stays (a second
 * value, or one after the answer, is -EALREADY); a dead member or one that answered without
 * a value has none; a value for an earlier round of the record is refused.
 */
static void test_alloc_record_values(void **state)
{
	struct shm_seg *seg = make("values", 64, 1);
	shoal_handle_t h[20];
	uint32_t slot, gen, slot2, gen2, v;

	(void)state;
	fake_members(h, 20);
	assert_int_equal(shm_round_claim(seg, &slot, &gen), 0);
	shm_round_publish(seg, slot, gen, SHOAL_HANDLE_NONE, h, 20, shm_now_ns() + 1000000000u, 0);
	assert_int_equal(shm_round_set_value(seg, slot, gen, 0, 42), 0);
	/* set but not yet answered: not a value the owner takes */
	assert_false(shm_round_value(seg, slot, gen, 0, &v));
	assert_int_equal(shm_round_set_value(seg, slot, gen, 0, 43), -EALREADY);
	assert_int_equal(shm_round_answer(seg, slot, gen, 0, false), 0);
	assert_true(shm_round_value(seg, slot, gen, 0, &v));
	assert_int_equal(v, 42);
	/* answered without a value, then a value (a redelivery): none */
	assert_int_equal(shm_round_answer(seg, slot, gen, 1, false), 0);
	assert_int_equal(shm_round_set_value(seg, slot, gen, 1, 7), -EALREADY);
	assert_false(shm_round_value(seg, slot, gen, 1, &v));
	/* dead with a value set: left out */
	assert_int_equal(shm_round_set_value(seg, slot, gen, 2, 9), 0);
	assert_int_equal(shm_round_answer(seg, slot, gen, 2, true), 0);
	assert_false(shm_round_value(seg, slot, gen, 2, &v));
	/* zero is a value; the largest value and out of range */
	assert_int_equal(shm_round_set_value(seg, slot, gen, 17, 0), 0);
	assert_int_equal(shm_round_answer(seg, slot, gen, 17, false), 0);
	assert_true(shm_round_value(seg, slot, gen, 17, &v));
	assert_int_equal(v, 0);
	assert_int_equal(shm_round_set_value(seg, slot, gen, 18, SHM_ROUND_NO_VALUE - 1), 0);
	assert_int_equal(shm_round_set_value(seg, slot, gen, 19, SHM_ROUND_NO_VALUE), -EINVAL);
	assert_int_equal(shm_round_set_value(seg, slot, gen, 20, 1), -EINVAL);
	/* the record reused: the old round's value is refused and the new one's are empty */
	shm_round_free(seg, slot, gen);
	assert_int_equal(shm_round_set_value(seg, slot, gen, 3, 5), -ESTALE);
	assert_int_equal(shm_round_claim(seg, &slot2, &gen2), 0);
	assert_int_equal(slot2, slot);
	shm_round_publish(seg, slot2, gen2, SHOAL_HANDLE_NONE, h, 20, shm_now_ns() + 1000000000u,
			  0);
	assert_int_equal(shm_round_set_value(seg, slot, gen, 3, 5), -ESTALE);
	assert_int_equal(shm_round_answer(seg, slot2, gen2, 0, false), 0);
	assert_false(shm_round_value(seg, slot2, gen2, 0, &v));
	shm_round_free(seg, slot2, gen2);
	ts_seg_drop(seg, inst);
}

struct valuer {
	struct shm_seg *seg;
	uint32_t slot, gen, first, n;
};

/* Half the members: a value (the index times 3), then the answer; each twice. */
static void *value_half(void *arg)
{
	struct valuer *va = arg;

	for (uint32_t i = va->first; i < va->n; i += 2)
		for (int k = 0; k < 2; k++) {
			shm_round_set_value(va->seg, va->slot, va->gen, i, i * 3u + (uint32_t)k);
			shm_round_answer(va->seg, va->slot, va->gen, i, false);
		}
	return NULL;
}

/*
 * Two threads attach values and answer the interleaved halves of a 1,000-member round; the
 * owner, once the round is complete, reads every member's first value. For TSan.
 */
static void test_alloc_record_values_threads(void **state)
{
	struct shm_seg *seg = make("threads", 1000, 2);
	shoal_handle_t *h = calloc(1000, sizeof(*h));
	struct valuer va[2];
	pthread_t t[2];
	uint32_t slot, gen, v;

	(void)state;
	assert_non_null(h);
	fake_members(h, 1000);
	for (int round = 0; round < 10; round++) {
		assert_int_equal(shm_round_claim(seg, &slot, &gen), 0);
		shm_round_publish(seg, slot, gen, SHOAL_HANDLE_NONE, h, 1000,
				  shm_now_ns() + 1000000000u, 0);
		for (int i = 0; i < 2; i++) {
			va[i] = (struct valuer){.seg = seg,
						.slot = slot,
						.gen = gen,
						.first = (uint32_t)i,
						.n = 1000};
			assert_int_equal(pthread_create(&t[i], NULL, value_half, &va[i]), 0);
		}
		/* the owner's wait: until complete (A1 acquires every answer) */
		while (!shm_round_is_complete(seg, slot, gen))
			sched_yield();
		for (uint32_t i = 0; i < 1000; i++) {
			assert_true(shm_round_value(seg, slot, gen, i, &v));
			assert_int_equal(v, i * 3u);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		shm_round_free(seg, slot, gen);
	}
	free(h);
	ts_seg_drop(seg, inst);
}

/*
 * shoal_alloc_demand() from a handler: the demand lands in the round; a redelivered ask
 * (its worker died after the demand, before the answer) reports again without an error, so
 * a handler returning what it says does not fail, and the first demand stays; a second
 * report in one delivery is -EALREADY; a message that is not an ask is -EINVAL.
 */
static void test_alloc_demand_redelivered(void **state)
{
	struct shm_seg *seg = make("demand", 64, 1);
	struct wrk_agent wa = {.slot = 0, .handle = shoal_handle_make(0, 1)};
	struct shoal_ctx ctx = {.seg = seg, .agent = &wa};
	struct shoal_msg m = {.type = SHOAL_T_ALLOC_ASK, .flags = SHOAL_MSG_ROUND};
	shoal_handle_t h[2];
	uint32_t slot, gen, v;

	(void)state;
	fake_members(h, 2);
	assert_int_equal(shm_round_claim(seg, &slot, &gen), 0);
	shm_round_publish(seg, slot, gen, SHOAL_HANDLE_NONE, h, 2, shm_now_ns() + 1000000000u, 0);
	m.ref = shm_round_ref(slot, gen, 1);
	assert_int_equal(shoal_alloc_demand(&ctx, &m, SHOAL_ALLOC_DEMAND_MAX + 1ull), -ERANGE);
	assert_int_equal(shoal_alloc_demand(&ctx, &m, 5), 0);
	assert_int_equal(shoal_alloc_demand(&ctx, &m, 6), -EALREADY);
	m.flags |= SHOAL_MSG_REDELIVERED;
	assert_int_equal(shoal_alloc_demand(&ctx, &m, 7), 0);
	assert_int_equal(shm_round_answer(seg, slot, gen, 1, false), 0);
	assert_true(shm_round_value(seg, slot, gen, 1, &v));
	assert_int_equal(v, 5);
	m.type = 77;
	assert_int_equal(shoal_alloc_demand(&ctx, &m, 5), -EINVAL);
	m.type = SHOAL_T_ALLOC_ASK;
	m.flags = 0;
	assert_int_equal(shoal_alloc_demand(&ctx, &m, 5), -EINVAL);
	shm_round_free(seg, slot, gen);
	ts_seg_drop(seg, inst);
}

/* --- through `shoal run` --- */

static const char *run_fmt = "[instance]\nworkers = 2\nplacement = none\n"
			     "[restart]\nintensity = 5\nperiod = 10\n"
			     "[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 16\n"
			     "rounds = 4\n"
			     "[types]\nload = %s\n"
			     "[agent a]\ntype = demander\ncount = 4\nname = a-%%u\nworker = 0\n"
			     "[agent b]\ntype = demander\ncount = 4\nname = b-%%u\nworker = 1\n"
			     "[agent e]\ntype = echo\nname = e\nworker = 1\n";

/* Demanders a-0..3 on worker 0 (demands 1..4), b-0..3 on worker 1 (5..8), in group "g". */
struct run {
	struct rt_run r;
	struct rt_client cl;
	struct shoal_client *c;
	shoal_handle_t a[4], b[4], e;
};

static void run_up(struct run *x, const char *name)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	static char cfg[1024];
	char n[16];

	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg), run_fmt, lib);
	rt_group_up(&x->r, &x->cl, &x->c, name, cfg);
	assert_int_equal(shoal_client_lookup(x->c, "e", &x->e), 0);
	rt_group_join(&x->cl, x->c, "a-%d", 4, x->a);
	rt_group_join(&x->cl, x->c, "b-%d", 4, x->b);
	/* from the client that allocates: FIFO puts each demand before the ask */
	for (int i = 0; i < 4; i++) {
		snprintf(n, sizeof(n), "demand %d", i + 1);
		assert_int_equal(shoal_client_cast(x->c, x->a[i], 1, n, (uint32_t)strlen(n), 0), 0);
		snprintf(n, sizeof(n), "demand %d", i + 5);
		assert_int_equal(shoal_client_cast(x->c, x->b[i], 1, n, (uint32_t)strlen(n), 0), 0);
	}
}

static void run_down(struct run *x)
{
	rt_group_down(&x->r, &x->cl, x->c);
}

/* The entry res lists for handle h (fails if h is not listed). */
static const struct shoal_alloc_member *entry_of(const struct shoal_alloc_member *m, uint32_t n,
						 shoal_handle_t h)
{
	for (uint32_t i = 0; i < n; i++)
		if (m[i].handle == h)
			return &m[i];
	fail_msg("handle %#llx is not in the result", (unsigned long long)h);
	return NULL;
}

/* What demander h says: asks handled, shares received, the last share, its ref matched. */
static void demander_state(struct run *x, shoal_handle_t h, unsigned *asks, unsigned *shares,
			   unsigned long long *share, int *ref_ok)
{
	char reply[64];
	int n = shoal_client_call(x->c, h, 1, "state", 5, reply, sizeof(reply) - 1, TIMEOUT_MS);

	assert_true(n > 0);
	reply[n] = 0;
	assert_int_equal(sscanf(reply, "%u %u %llu %d", asks, shares, share, ref_ok), 4);
}

/* Member h got exactly `shares` share messages, the last one `want`, naming its ask. */
static void check_got(struct run *x, shoal_handle_t h, unsigned shares, unsigned long long want)
{
	unsigned asks, got;
	unsigned long long share;
	int ref_ok;

	demander_state(x, h, &asks, &got, &share, &ref_ok);
	assert_int_equal(got, shares);
	assert_int_equal(share, want);
	assert_int_equal(ref_ok, 1);
}

/* A policy of the caller's: everything to the last member. */
static int all_to_last(uint64_t capacity, const uint64_t *demand, uint32_t n, uint64_t *share)
{
	(void)demand;
	for (uint32_t i = 0; i < n; i++)
		share[i] = i + 1 == n ? capacity : 0;
	return 0;
}

/* A policy that hands out more than there is: refused. */
static int too_generous(uint64_t capacity, const uint64_t *demand, uint32_t n, uint64_t *share)
{
	(void)demand;
	for (uint32_t i = 0; i < n; i++)
		share[i] = capacity;
	return 0;
}

/*
 * Demanders on two workers: proportional, then max-min, shares exact (the round's order is
 * by worker: a-0..3 then b-0..3, which decides ties) and received by each member; a policy
 * of the caller's, and one that hands out too much (refused); the echo agent handles the
 * ask without a demand and is left out.
 */
static void test_alloc_client_two_workers(void **state)
{
	static const uint64_t prop[8] = {1, 1, 2, 2, 2, 3, 3, 4}, mm[8] = {1, 2, 3, 3, 3, 2, 2, 2};
	struct shoal_alloc_member mem[16];
	struct shoal_alloc_result res = {.member = mem, .cap = 16};
	const struct shoal_alloc_member *e;
	struct run x;

	(void)state;
	run_up(&x, "atwo");
	assert_int_equal(shoal_client_allocate(x.c, "g", "slots", 18, NULL, TIMEOUT_MS, &res), 0);
	assert_int_equal(res.members, 8);
	assert_int_equal(res.reported, 8);
	assert_int_equal(res.dead + res.absent + res.nodemand, 0);
	assert_int_equal(res.delivered, 8);
	assert_int_equal(res.demand, 36);
	assert_int_equal(res.allocated, 18);
	assert_int_equal(res.capacity, 18);
	for (int i = 0; i < 8; i++) {
		shoal_handle_t h = i < 4 ? x.a[i] : x.b[i - 4];

		e = entry_of(mem, 8, h);
		assert_int_equal(e->state, SHOAL_ALLOC_REPORTED);
		assert_int_equal(e->demand, (uint64_t)i + 1);
		assert_int_equal(e->share, prop[i]);
		assert_int_equal(e->delivered, 1);
		/* the client's call comes after its share message: FIFO per sender */
		check_got(&x, h, 1, prop[i]);
	}
	assert_int_equal(
		shoal_client_allocate(x.c, "g", "slots", 18, shoal_alloc_maxmin, TIMEOUT_MS, &res),
		0);
	for (int i = 0; i < 8; i++) {
		shoal_handle_t h = i < 4 ? x.a[i] : x.b[i - 4];

		assert_int_equal(entry_of(mem, 8, h)->share, mm[i]);
		check_got(&x, h, 2, mm[i]);
	}
	/* the caller's policy; one whose shares pass the capacity is refused, nothing sent */
	assert_int_equal(
		shoal_client_allocate(x.c, "g", "slots", 18, all_to_last, TIMEOUT_MS, &res), 0);
	assert_int_equal(entry_of(mem, 8, x.b[3])->share, 18);
	assert_int_equal(entry_of(mem, 8, x.a[0])->share, 0);
	check_got(&x, x.b[3], 3, 18);
	assert_int_equal(
		shoal_client_allocate(x.c, "g", "slots", 18, too_generous, TIMEOUT_MS, &res),
		-ERANGE);
	assert_int_equal(res.reported, 8);
	assert_int_equal(res.delivered + res.allocated, 0);
	check_got(&x, x.b[3], 3, 18);
	/* an agent that handles the ask without a demand is left out */
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.e), 0);
	assert_int_equal(shoal_client_allocate(x.c, "g", "slots", 100, NULL, TIMEOUT_MS, &res), 0);
	assert_int_equal(res.members, 9);
	assert_int_equal(res.reported, 8);
	assert_int_equal(res.nodemand, 1);
	assert_int_equal(res.allocated, 36);
	e = entry_of(mem, 9, x.e);
	assert_int_equal(e->state, SHOAL_ALLOC_NODEMAND);
	assert_int_equal(e->share + e->delivered, 0);
	/* bad input */
	assert_int_equal(shoal_client_allocate(x.c, "nosuch", "slots", 1, NULL, 100, &res),
			 -ENOENT);
	assert_int_equal(shoal_client_allocate(x.c, "g", "", 1, NULL, 100, &res), -EINVAL);
	assert_int_equal(shoal_client_allocate(x.c, "g", "a-name-longer-than-31-bytes-xxxxx", 1,
					       NULL, 100, &res),
			 -EINVAL);
	assert_int_equal(shoal_client_allocate(x.c, "g", "slots", 1, NULL, 0, &res), -EINVAL);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

/*
 * Worker 1 SIGKILLed mid-round (stopped first, so its members cannot answer before): they
 * are left out at once, and the capacity goes to worker 0's members, long before the
 * timeout.
 */
static void test_alloc_client_worker_killed(void **state)
{
	static const uint64_t want[4] = {1, 1, 1, 2}; /* 5 among demands 1..4 */
	struct shoal_alloc_member mem[16];
	struct shoal_alloc_result res = {.member = mem, .cap = 16};
	pid_t w1, killer;
	struct run x;
	int rc;

	(void)state;
	run_up(&x, "akill");
	/* the demands reached worker 1's members before it stops */
	for (int i = 0; i < 4; i++) {
		unsigned asks, shares;
		unsigned long long share;
		int ref_ok;

		demander_state(&x, x.b[i], &asks, &shares, &share, &ref_ok);
	}
	/* the killer waits for the round to be published (rt_kill_worker_mid_round()) */
	killer = rt_kill_worker_mid_round(x.cl.seg, 2, &w1);
	rc = shoal_client_allocate(x.c, "g", "slots", 5, NULL, 10000, &res);
	assert_true(it_ok(it_wait_child(killer, TIMEOUT_MS)));
	assert_int_equal(rc, 0);
	assert_int_equal(res.members, 8);
	assert_int_equal(res.reported, 4);
	assert_int_equal(res.dead, 4);
	assert_int_equal(res.absent, 0);
	assert_int_equal(res.demand, 10);
	assert_int_equal(res.allocated, 5);
	for (int i = 0; i < 4; i++) {
		const struct shoal_alloc_member *e = entry_of(mem, 8, x.b[i]);

		assert_int_equal(entry_of(mem, 8, x.a[i])->share, want[i]);
		assert_int_equal(e->state, SHOAL_ALLOC_DEAD);
		assert_int_equal(e->share + e->demand + e->delivered, 0);
		check_got(&x, x.a[i], 1, want[i]);
	}
	/* its death ended the wait, not the 10 s timeout */
	assert_true(res.elapsed_ns < 5000000000u);
	print_message("allocation with a worker killed: %.1f ms\n", (double)res.elapsed_ns / 1e6);
	run_down(&x);
}

/*
 * A member that never answers (an inbox nobody reads): -ETIMEDOUT at the timeout, it is
 * listed absent, and the others' shares are computed without it and sent all the same.
 */
static void test_alloc_client_absent(void **state)
{
	struct shoal_alloc_member mem[16];
	struct shoal_alloc_result res = {.member = mem, .cap = 16};
	const struct shoal_alloc_member *e;
	struct run x;

	(void)state;
	run_up(&x, "aabs");
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.cl.inbox), 0);
	assert_int_equal(shoal_client_allocate(x.c, "g", "slots", 18, NULL, 300, &res), -ETIMEDOUT);
	assert_int_equal(res.members, 9);
	assert_int_equal(res.reported, 8);
	assert_int_equal(res.absent, 1);
	assert_int_equal(res.allocated, 18);
	assert_int_equal(res.delivered, 8);
	assert_true(res.elapsed_ns >= 300000000u);
	e = entry_of(mem, 9, x.cl.inbox);
	assert_int_equal(e->state, SHOAL_ALLOC_ABSENT);
	assert_int_equal(e->share, 0);
	check_got(&x, x.b[3], 1, 4);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

/*
 * A client inbox as a member: it takes the ask with shoal_client_recv() (which does not
 * answer it), reports with shoal_client_alloc_demand(), and gets its share as a message.
 */
static void test_alloc_client_member(void **state)
{
	_Atomic uint32_t *ready = it_shared(sizeof(*ready));
	struct shoal_alloc_member mem[16];
	struct shoal_alloc_result res = {.member = mem, .cap = 16};
	struct run x;
	pid_t pid;

	(void)state;
	run_up(&x, "amem");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shoal_client *c;
		struct shoal_alloc_share sh;
		struct shoal_msg m;
		char buf[256];
		uint64_t ask_ref;

		if (shoal_client_open(x.r.inst, &c, NULL, 0) || shoal_client_join(c, "g"))
			_exit(3);
		atomic_store(ready, 1);
		if (shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS) ||
		    m.type != SHOAL_T_ALLOC_ASK || !(m.flags & SHOAL_MSG_ROUND))
			_exit(4);
		ask_ref = m.ref;
		/*
		 * A second report keeps the first: -EALREADY while the round is open, -ESTALE
		 * once our answer (the last one) ended it and the owner freed the record (under
		 * ASan one run in six got there first)
		 */
		if (shoal_client_alloc_demand(c, &m, SHOAL_ALLOC_DEMAND_MAX + 1ull) != -ERANGE ||
		    shoal_client_alloc_demand(c, &m, 10) != 0)
			_exit(5);
		{
			int again = shoal_client_alloc_demand(c, &m, 11);

			if (again != -EALREADY && again != -ESTALE)
				_exit(8);
		}
		if (shoal_client_recv(c, &m, &sh, sizeof(sh), TIMEOUT_MS) ||
		    m.type != SHOAL_T_ALLOC || m.len != sizeof(sh))
			_exit(6);
		_exit(sh.share == 10 && sh.demand == 10 && sh.ref == ask_ref &&
				      !strcmp(sh.resource, "slots") && sh.capacity == 46
			      ? 0
			      : 7);
	}
	/* the child's inbox is in the group before the round takes its members */
	assert_true(it_wait_u32(ready, 1, TIMEOUT_MS));
	/* 36 for the demanders and 10 for the client: enough for all */
	assert_int_equal(shoal_client_allocate(x.c, "g", "slots", 46, NULL, TIMEOUT_MS, &res), 0);
	assert_int_equal(res.members, 9);
	assert_int_equal(res.reported, 9);
	assert_int_equal(res.allocated, 46);
	assert_true(it_ok(it_wait_child(pid, TIMEOUT_MS)));
	munmap(ready, sizeof(*ready));
	run_down(&x);
}

/* Ask demander `who` to allocate: its result (struct shoal_alloc_done and members). */
static int agent_alloc(struct run *x, shoal_handle_t who, const char *req, void *out, uint32_t cap)
{
	return shoal_client_call(x->c, who, 1, req, (uint32_t)strlen(req), out, cap, TIMEOUT_MS);
}

/*
 * An agent allocates (shoal_allocate()): the result comes back to it as a reply with every
 * member listed; max-min shares exact and received; with a member that never answers, the
 * result comes at the timeout with it absent.
 */
static void test_alloc_agent_result(void **state)
{
	static const uint64_t mm[8] = {1, 2, 3, 3, 3, 2, 2, 2};
	static char buf[4096];
	struct shoal_alloc_done d;
	const struct shoal_alloc_member *m = (const void *)(buf + sizeof(d));
	struct run x;
	int n;

	(void)state;
	run_up(&x, "aagent");
	n = agent_alloc(&x, x.a[0], "alloc 15000 18 maxmin g", buf, sizeof(buf));
	assert_true(n >= (int)sizeof(d));
	memcpy(&d, buf, sizeof(d));
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.members, 8);
	assert_int_equal(d.reported, 8);
	assert_int_equal(d.listed, 8);
	assert_int_equal(n, (int)(sizeof(d) + 8 * sizeof(*m)));
	assert_int_equal(d.allocated, 18);
	assert_int_equal(d.demand, 36);
	assert_true(d.ref != 0);
	for (int i = 0; i < 8; i++) {
		shoal_handle_t h = i < 4 ? x.a[i] : x.b[i - 4];

		assert_int_equal(entry_of(m, 8, h)->share, mm[i]);
		check_got(&x, h, 1, mm[i]);
	}
	/* a missing group: shoal_allocate() says so at once */
	n = agent_alloc(&x, x.a[1], "alloc 1000 18 maxmin nosuch", buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = 0;
	assert_string_equal(buf, "error -2");
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.cl.inbox), 0);
	n = agent_alloc(&x, x.b[0], "alloc 300 18 proportional g", buf, sizeof(buf));
	assert_true(n >= (int)sizeof(d));
	memcpy(&d, buf, sizeof(d));
	assert_int_equal(d.rc, -ETIMEDOUT);
	assert_int_equal(d.members, 9);
	assert_int_equal(d.absent, 1);
	assert_int_equal(d.reported, 8);
	assert_int_equal(d.allocated, 18);
	assert_true(d.elapsed_ns >= 300000000u);
	assert_int_equal(entry_of(m, d.listed, x.cl.inbox)->state, SHOAL_ALLOC_ABSENT);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

/* The line `shoal allocate` prints for handle h (fails if none). */
static const char *line_of(const char *out, shoal_handle_t h)
{
	char hex[24];
	const char *p;

	snprintf(hex, sizeof(hex), "%#018llx", (unsigned long long)h);
	p = strstr(out, hex);
	if (!p)
		fail_msg("no line for %s in:\n%s", hex, out);
	return p;
}

/* Does the line at p (up to its newline) contain needle? */
static bool line_has(const char *p, const char *needle)
{
	const char *nl = strchr(p, '\n'), *f = strstr(p, needle);

	return f && (!nl || f < nl);
}

/*
 * shoal allocate: the table (each member's state, demand and share), exit 0; max-min by
 * --policy; a member that never answers: exit 1, listed absent; bad input: exit 2, said.
 */
static void test_alloc_tool(void **state)
{
	const char *prop[] = {"allocate", "g", "slots", "18", NULL};
	const char *mm[] = {"allocate", "g", "slots", "18", "--policy", "maxmin", NULL};
	const char *shortw[] = {"allocate", "g", "slots", "18", "--timeout", "200", NULL};
	const char *badpol[] = {"allocate", "g", "slots", "18", "--policy", "fair", NULL};
	const char *nogroup[] = {"allocate", "nosuch", "slots", "18", NULL};
	const char *badcap[] = {"allocate", "g", "slots", "many", NULL};
	const char *badcap2[] = {"allocate", "g", "slots", "18x", NULL};
	const char *badres[] = {"allocate", "g", "a-name-longer-than-31-bytes-xxxxx", "18", NULL};
	static char out[8192];
	const char *l;
	struct run x;

	(void)state;
	run_up(&x, "atool");
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), prop), 0);
	assert_non_null(strstr(out, "slots for g: capacity 18, proportional: 8 members: 8 "
				    "reported, 0 dead, 0 absent, 0 without a demand; demand 36, "
				    "allocated 18"));
	l = line_of(out, x.b[3]);
	assert_true(line_has(l, "b-3"));
	assert_true(line_has(l, "reported"));
	assert_true(line_has(l, "           8            4"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), mm), 0);
	assert_non_null(strstr(out, "capacity 18, maxmin:"));
	assert_true(line_has(line_of(out, x.a[2]), "           3            3"));
	assert_true(line_has(line_of(out, x.b[3]), "           8            2"));
	/* the tool's own inbox is not in the group; our raw inbox is, and never answers */
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.cl.inbox), 0);
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), shortw), 1);
	assert_non_null(strstr(out, "9 members: 8 reported, 0 dead, 1 absent"));
	assert_non_null(strstr(out, "(timed out)"));
	assert_true(line_has(line_of(out, x.cl.inbox), "absent"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), badpol), 2);
	assert_non_null(strstr(out, "--policy 'fair': not a policy; use proportional or maxmin"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), nogroup), 2);
	assert_non_null(strstr(out, "no group 'nosuch'"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), badcap), 2);
	assert_non_null(strstr(out, "CAPACITY 'many': not a number of units"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), badcap2), 2);
	assert_non_null(strstr(out, "CAPACITY '18x'"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), badres), 2);
	assert_non_null(strstr(out, "a name of 1..31 bytes"));
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_proportional),
		cmocka_unit_test(test_alloc_maxmin),
		cmocka_unit_test(test_alloc_policy_find),
		cmocka_unit_test(test_alloc_record_values),
		cmocka_unit_test(test_alloc_record_values_threads),
		cmocka_unit_test(test_alloc_demand_redelivered),
		cmocka_unit_test_teardown(test_alloc_client_two_workers, rt_teardown),
		cmocka_unit_test_teardown(test_alloc_client_worker_killed, rt_teardown),
		cmocka_unit_test_teardown(test_alloc_client_absent, rt_teardown),
		cmocka_unit_test_teardown(test_alloc_client_member, rt_teardown),
		cmocka_unit_test_teardown(test_alloc_agent_result, rt_teardown),
		cmocka_unit_test_teardown(test_alloc_tool, rt_teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
