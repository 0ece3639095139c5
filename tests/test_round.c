/*
 * test_round: broadcasts with acknowledgements. The round record (answers counted once, late
 * answers refused, a table full, an answerer killed halfway finished by repair, a dead owner's
 * record freed), the fan-out with mailboxes, and rounds through `shoal run` and the client API
 * (every member acks, one never does, a worker SIGKILLed mid-round, a client owner killed).
 */
#include <errno.h>
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
#include "shoal/client.h"
#include "tests/ipc_test_util.h"
#include "tests/run_test_util.h"
#include "tests/support.h"

static char inst[64];

/* A segment with group_members g and max_rounds rounds; we hold a client slot in it. */
static struct shm_seg *make(const char *tag, uint32_t g, uint32_t rounds, uint32_t agents)
{
	struct shm_cfg cfg;

	snprintf(inst, sizeof(inst), "t-round-%s-%d", tag, (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = agents;
	cfg.reg_capacity = 256;
	cfg.max_procs = 16;
	cfg.max_groups = 4; /* group_members 65,536 would make the groups region big */
	cfg.group_members = g;
	cfg.max_rounds = rounds;
	return ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
}

/* n made-up member handles (the record never looks at them except in repair). */
static void fake_members(shoal_handle_t *h, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		h[i] = shoal_handle_make(i, 1);
}

/* Every member answers once, in a shuffled order: only the last completes the round. */
static void check_all_answer(uint32_t n)
{
	struct shm_seg *seg = make("all", n, 4, 64);
	shoal_handle_t *h = calloc(n, sizeof(*h));
	uint32_t *order = calloc(n, sizeof(*order));
	uint32_t slot, gen, completions = 0;

	assert_non_null(h);
	assert_non_null(order);
	fake_members(h, n);
	assert_int_equal(shm_round_claim(seg, &slot, &gen), 0);
	shm_round_publish(seg, slot, gen, SHOAL_HANDLE_NONE, h, n, shm_now_ns() + 1000000000u, 7);
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	srand(n);
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = (uint32_t)rand() % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (uint32_t k = 0; k < n; k++) {
		int r;

		assert_false(shm_round_is_complete(seg, slot, gen));
		r = shm_round_answer(seg, slot, gen, order[k], order[k] % 7 == 3);
		assert_true(r == 0 || r == 1);
		completions += (uint32_t)r;
		assert_int_equal(r, k == n - 1);
	}
	assert_int_equal(completions, 1);
	assert_true(shm_round_is_complete(seg, slot, gen));
	for (uint32_t i = 0; i < n; i++) {
		shoal_handle_t got;

		assert_int_equal(shm_round_member(seg, slot, gen, i, &got),
				 i % 7 == 3 ? SHM_ROUND_M_DEAD : SHM_ROUND_M_ACKED);
		assert_true(got == h[i]);
	}
	/* a duplicate answer (a redelivery) changes nothing, not even an acked into dead */
	assert_int_equal(shm_round_answer(seg, slot, gen, 0, true), 0);
	assert_int_equal(shm_round_member(seg, slot, gen, 0, NULL), SHM_ROUND_M_ACKED);
	assert_int_equal(shm_round_in_use(seg), 1);
	shm_round_free(seg, slot, gen);
	assert_int_equal(shm_round_in_use(seg), 0);
	free(order);
	free(h);
	ts_seg_drop(seg, inst);
}

static void test_round_record_all_answer(void **state)
{
	(void)state;
	check_all_answer(1);
	check_all_answer(32);
	check_all_answer(33);
	check_all_answer(100);
}

/* Groups past 1,024 members: the tree has three levels for 2,000, four for 65,536. */
static void test_round_record_large(void **state)
{
	(void)state;
	check_all_answer(2000);
	check_all_answer(65536);
}

/* An answer to an earlier round of a reused record is refused, and sets no bit. */
static void test_round_record_late_answer(void **state)
{
	struct shm_seg *seg = make("late", 64, 1, 64);
	shoal_handle_t h[4];
	uint32_t slot, gen, slot2, gen2;

	(void)state;
	fake_members(h, 4);
	assert_int_equal(shm_round_claim(seg, &slot, &gen), 0);
	shm_round_publish(seg, slot, gen, SHOAL_HANDLE_NONE, h, 4, shm_now_ns() + 1000000000u, 0);
	assert_int_equal(shm_round_answer(seg, slot, gen, 1, false), 0);
	shm_round_free(seg, slot, gen);
	assert_int_equal(shm_round_answer(seg, slot, gen, 2, false), -ESTALE);
	assert_int_equal(shm_round_claim(seg, &slot2, &gen2), 0);
	assert_int_equal(slot2, slot);
	assert_int_not_equal(gen2, gen);
	shm_round_publish(seg, slot2, gen2, SHOAL_HANDLE_NONE, h, 4, shm_now_ns() + 1000000000u, 0);
	assert_int_equal(shm_round_answer(seg, slot, gen, 3, false), -ESTALE);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(shm_round_member(seg, slot2, gen2, i, NULL), SHM_ROUND_M_ABSENT);
	assert_int_equal(shm_round_answer(seg, slot2, gen2, 4, false), -EINVAL);
	shm_round_free(seg, slot2, gen2);
	ts_seg_drop(seg, inst);
}

/* A full table refuses a claim with -ENOSPC; freed, every record can be claimed again. */
static void test_round_record_table_full(void **state)
{
	struct shm_seg *seg = make("full", 64, 3, 64);
	uint32_t slot[3], gen[3], s, g;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(shm_round_claim(seg, &slot[i], &gen[i]), 0);
	assert_int_equal(shm_round_in_use(seg), 3);
	assert_int_equal(shm_round_claim(seg, &s, &g), -ENOSPC);
	for (int i = 0; i < 3; i++)
		shm_round_free(seg, slot[i], gen[i]);
	assert_int_equal(shm_round_in_use(seg), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(shm_round_claim(seg, &slot[i], &gen[i]), 0);
	assert_int_equal(shm_round_in_use(seg), 3);
	ts_seg_drop(seg, inst);
	/* a segment configured without rounds: every claim is -ENOSPC */
	seg = make("none", 64, 0, 64);
	assert_int_equal(shm_round_claim(seg, &s, &g), -ENOSPC);
	ts_seg_drop(seg, inst);
}

static void die_now(int step)
{
	(void)step;
	_exit(0);
}

/*
 * An answerer killed after it filled a level-0 word but before it set the parent's bit: the
 * repair of its slot finishes the answer, and the round completes.
 */
static void test_round_record_answerer_killed(void **state)
{
	struct shm_seg *seg = make("kill", 64, 4, 64);
	shoal_handle_t h[33];
	uint32_t slot, gen, child_slot;
	_Atomic uint32_t *shared = it_shared(sizeof(*shared));
	pid_t pid;

	(void)state;
	fake_members(h, 33);
	assert_int_equal(shm_round_claim(seg, &slot, &gen), 0);
	shm_round_publish(seg, slot, gen, SHOAL_HANDLE_NONE, h, 33, shm_now_ns() + 1000000000u, 0);
	for (uint32_t i = 0; i < 32; i++)
		assert_int_equal(shm_round_answer(seg, slot, gen, i, false), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		it_child_claim(seg);
		atomic_store(shared, seg->self + 1);
		shm_round_test_hook = die_now;
		/* member 32 alone in leaf word 2: it fills, the hook kills us before the top */
		shm_round_answer(seg, slot, gen, 32, false);
		_exit(3);
	}
	assert_true(it_ok(it_wait_child(pid, TIMEOUT_MS)));
	child_slot = atomic_load(shared) - 1;
	assert_int_equal(shm_round_member(seg, slot, gen, 32, NULL), SHM_ROUND_M_ACKED);
	assert_false(shm_round_is_complete(seg, slot, gen));
	it_repair(seg, child_slot);
	assert_true(shm_round_is_complete(seg, slot, gen));
	/* the record's owner (we) is alive: still ours */
	assert_int_equal(shm_round_in_use(seg), 1);
	shm_round_free(seg, slot, gen);
	munmap(shared, sizeof(*shared));
	ts_seg_drop(seg, inst);
}

/* A dead owner's record, active or half prepared, is freed by the repair of its slot. */
static void test_round_record_owner_killed(void **state)
{
	struct shm_seg *seg = make("owner", 64, 4, 64);
	_Atomic uint32_t *shared = it_shared(2 * sizeof(*shared));
	shoal_handle_t h[4];
	pid_t pid;

	(void)state;
	fake_members(h, 4);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint32_t s1, g1, s2, g2;

		it_child_claim(seg);
		if (shm_round_claim(seg, &s1, &g1) || shm_round_claim(seg, &s2, &g2))
			_exit(4);
		shm_round_publish(seg, s1, g1, SHOAL_HANDLE_NONE, h, 4, shm_now_ns() + 1000000000u,
				  0);
		atomic_store(&shared[0], seg->self + 1);
		/* killed with one round active and one only claimed */
		raise(SIGKILL);
		_exit(5);
	}
	it_wait_child(pid, TIMEOUT_MS);
	assert_int_not_equal(atomic_load(&shared[0]), 0);
	assert_int_equal(shm_round_in_use(seg), 2);
	it_repair(seg, atomic_load(&shared[0]) - 1);
	assert_int_equal(shm_round_in_use(seg), 0);
	munmap(shared, 2 * sizeof(*shared));
	ts_seg_drop(seg, inst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_record_all_answer),
		cmocka_unit_test(test_round_record_large),
		cmocka_unit_test(test_round_record_late_answer),
		cmocka_unit_test(test_round_record_table_full),
		cmocka_unit_test(test_round_record_answerer_killed),
		cmocka_unit_test(test_round_record_owner_killed),
	};

	return cmocka_run_group_tests(tests, NULL, rt_teardown);
}
