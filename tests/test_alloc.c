/*
 * test_alloc: resource allocation rounds. The round record's value words (a member's demand:
 * first stays, late and stale refused).
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
#include "tests/ipc_test_util.h"
#include "tests/support.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_record_values),
		cmocka_unit_test(test_alloc_record_values_threads),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
