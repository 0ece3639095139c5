/*
 * test_round: broadcasts with acknowledgements. The round record (answers counted once, late
 * answers refused, a table full, an answerer killed halfway finished by repair, a dead owner's
 * record freed), the fan-out with mailboxes, and rounds through `shoal run` and the client API
 * (every member acks, one never does, a worker SIGKILLed mid-round, a client owner killed).
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
#include <jansson.h>

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

/*
 * Records left claimed by an owner whose process slot was released (it exited without
 * ending its rounds, and no repair ran) are taken by the next claims: a claim with a stale
 * epoch is dead.
 */
static void test_round_record_released_owner(void **state)
{
	struct shm_seg *seg = make("released", 64, 3, 64);
	uint32_t slot[3], gen[3], s, g;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		it_child_claim(seg);
		for (int i = 0; i < 3; i++)
			if (shm_round_claim(seg, &slot[i], &gen[i]))
				_exit(4);
		shm_proc_release(seg);
		_exit(0);
	}
	assert_true(it_ok(it_wait_child(pid, TIMEOUT_MS)));
	assert_int_equal(shm_round_in_use(seg), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(shm_round_claim(seg, &slot[i], &gen[i]), 0);
	assert_int_equal(shm_round_claim(seg, &s, &g), -ENOSPC);
	for (int i = 0; i < 3; i++)
		shm_round_free(seg, slot[i], gen[i]);
	assert_int_equal(shm_round_in_use(seg), 0);
	ts_seg_drop(seg, inst);
}

struct answerer {
	struct shm_seg *seg;
	uint32_t slot, gen, first, step, n;
	int completions;
};

static void *answer_some(void *arg)
{
	struct answerer *an = arg;

	for (uint32_t i = an->first; i < an->n; i += an->step)
		/* each member twice: a duplicate must not count */
		for (int k = 0; k < 2; k++)
			an->completions +=
				shm_round_answer(an->seg, an->slot, an->gen, i, false) == 1;
	return NULL;
}

/*
 * Two threads answer the interleaved halves of a 1,000-member round at once (and each
 * member twice): exactly one answer completes it, every member is acked. For TSan.
 */
static void test_round_record_two_threads(void **state)
{
	struct shm_seg *seg = make("threads", 1000, 2, 64);
	shoal_handle_t *h = calloc(1000, sizeof(*h));
	struct answerer an[2];
	pthread_t t[2];
	uint32_t slot, gen;

	(void)state;
	assert_non_null(h);
	fake_members(h, 1000);
	for (int round = 0; round < 20; round++) {
		assert_int_equal(shm_round_claim(seg, &slot, &gen), 0);
		shm_round_publish(seg, slot, gen, SHOAL_HANDLE_NONE, h, 1000,
				  shm_now_ns() + 1000000000u, 0);
		for (int i = 0; i < 2; i++) {
			an[i] = (struct answerer){.seg = seg,
						  .slot = slot,
						  .gen = gen,
						  .first = (uint32_t)i,
						  .step = 2,
						  .n = 1000};
			assert_int_equal(pthread_create(&t[i], NULL, answer_some, &an[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		assert_int_equal(an[0].completions + an[1].completions, 1);
		assert_true(shm_round_is_complete(seg, slot, gen));
		for (uint32_t i = 0; i < 1000; i++)
			assert_int_equal(shm_round_member(seg, slot, gen, i, NULL),
					 SHM_ROUND_M_ACKED);
		shm_round_free(seg, slot, gen);
	}
	free(h);
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

/*
 * A redelivered round message answers again and counts once: the consumer answered, then was
 * killed before its consume; its successor gets the message flagged redelivered.
 */
static void test_round_redelivered_counts_once(void **state)
{
	struct shm_seg *seg = make("redeliver", 64, 4, 64);
	_Atomic uint32_t *shared = it_shared(sizeof(*shared));
	shoal_handle_t a, b, inbox;
	struct ipc_round r;
	struct ipc_msg m;
	pid_t pid;

	(void)state;
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	a = it_agent(seg);
	b = it_agent(seg);
	it_host(seg, a, seg->self);
	it_host(seg, b, seg->self);
	assert_int_equal(shm_grp_join(seg, "g", 1, a), 0);
	assert_int_equal(shm_grp_join(seg, "g", 1, b), 0);
	assert_int_equal(
		ipc_round_start(seg, inbox, "g", 5, "x", 1, shm_now_ns() + 1000000000u, 0, 0, &r),
		0);
	assert_int_equal(r.members, 2);
	assert_int_equal(r.sent, 2);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ipc_msg cm;

		it_child_claim(seg);
		atomic_store(shared, seg->self + 1);
		if (ipc_mbox_peek(seg, shoal_handle_slot(a), &cm) || !(cm.flags & IPC_F_ROUND) ||
		    ipc_round_answer(seg, cm.ref, false) != 0)
			_exit(6);
		_exit(0); /* killed before the consume */
	}
	assert_true(it_ok(it_wait_child(pid, TIMEOUT_MS)));
	it_repair(seg, atomic_load(shared) - 1);
	/* we are the restarted consumer */
	ipc_mbox_recover(seg, shoal_handle_slot(a));
	assert_int_equal(ipc_mbox_peek(seg, shoal_handle_slot(a), &m), 0);
	assert_true(m.flags & IPC_F_REDELIVERED);
	assert_true(m.flags & IPC_F_ROUND);
	assert_int_equal(ipc_round_answer(seg, m.ref, false), 0);
	ipc_mbox_consume(seg, shoal_handle_slot(a), &m);
	assert_false(ipc_round_is_complete(seg, &r));
	assert_int_equal(ipc_round_member(seg, &r, 0, NULL) + ipc_round_member(seg, &r, 1, NULL),
			 SHM_ROUND_M_ACKED);
	assert_int_equal(ipc_mbox_peek(seg, shoal_handle_slot(b), &m), 0);
	assert_int_equal(ipc_round_answer(seg, m.ref, false), 1);
	ipc_mbox_consume(seg, shoal_handle_slot(b), &m);
	assert_true(ipc_round_is_complete(seg, &r));
	ipc_round_end(seg, &r);
	assert_int_equal(shm_round_in_use(seg), 0);
	munmap(shared, sizeof(*shared));
	ts_seg_drop(seg, inst);
}

/* A member inbox closed mid-round counts as dead at once: its queued message answers so. */
static void test_round_member_inbox_closed(void **state)
{
	struct shm_seg *seg = make("closed", 64, 4, 64);
	shoal_handle_t owner, member;
	struct ipc_round r;

	(void)state;
	assert_int_equal(ipc_inbox_open(seg, &owner), 0);
	assert_int_equal(ipc_inbox_open(seg, &member), 0);
	assert_int_equal(shm_grp_join(seg, "g", 1, member), 0);
	assert_int_equal(
		ipc_round_start(seg, owner, "g", 5, "x", 1, shm_now_ns() + 1000000000u, 0, 0, &r),
		0);
	assert_false(ipc_round_is_complete(seg, &r));
	ipc_inbox_close(seg, member);
	assert_true(ipc_round_is_complete(seg, &r));
	assert_int_equal(ipc_round_member(seg, &r, 0, NULL), SHM_ROUND_M_DEAD);
	ipc_round_end(seg, &r);
	ts_seg_drop(seg, inst);
}

#define BIG 1500u

/*
 * A group past 1,024 members (group_members 2,048): one message each through the mailboxes,
 * answered by a consumer in another process; the last answer wakes us, parked.
 */
static void test_round_large_group(void **state)
{
	struct shm_seg *seg;
	struct shm_cfg cfg;
	struct ipc_waiter *w;
	shoal_handle_t inbox, *h = calloc(BIG, sizeof(*h));
	_Atomic uint32_t *ready = it_shared(sizeof(*ready));
	struct ipc_round r;
	pid_t pid;

	(void)state;
	assert_non_null(h);
	snprintf(inst, sizeof(inst), "t-round-big-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = 2048;
	cfg.reg_capacity = 256;
	cfg.max_procs = 16;
	cfg.max_groups = 4;
	cfg.group_members = 2048;
	cfg.mbox_cells = 16;
	cfg.max_msg = 256;
	cfg.max_rounds = 2;
	seg = ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	for (uint32_t i = 0; i < BIG; i++) {
		h[i] = it_agent(seg);
		assert_int_equal(shm_grp_join(seg, "big", 3, h[i]), 0);
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
		uint32_t left = BIG;

		it_child_claim(seg);
		for (uint32_t i = 0; i < BIG; i++)
			it_host(seg, h[i], seg->self);
		/* consume until every member answered: the parent starts once we host them */
		atomic_store(ready, 1);
		while (left && shm_now_ns() < end) {
			for (uint32_t i = 0; i < BIG; i++) {
				struct ipc_msg m;

				if (ipc_mbox_peek(seg, shoal_handle_slot(h[i]), &m))
					continue;
				if (m.flags & IPC_F_ROUND)
					ipc_round_answer(seg, m.ref, false);
				ipc_mbox_consume(seg, shoal_handle_slot(h[i]), &m);
				left--;
			}
			sched_yield();
		}
		_exit(left ? 7 : 0);
	}
	/* the consumer hosts every member before the round starts */
	assert_true(it_wait_u32(ready, 1, TIMEOUT_MS));
	assert_int_equal(ipc_round_start(seg, inbox, "big", 9, "big", 3,
					 shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u, 0, 1000,
					 &r),
			 0);
	assert_int_equal(r.members, BIG);
	assert_int_equal(r.sent, BIG);
	assert_int_equal(ipc_round_wait(seg, w, &r), 0);
	for (uint32_t i = 0; i < BIG; i++)
		assert_int_equal(ipc_round_member(seg, &r, i, NULL), SHM_ROUND_M_ACKED);
	ipc_round_end(seg, &r);
	assert_true(it_ok(it_wait_child(pid, TIMEOUT_MS)));
	ipc_waiter_destroy(w);
	munmap(ready, sizeof(*ready));
	free(h);
	ts_seg_drop(seg, inst);
}

/* --- through `shoal run` and the client API --- */

static const char *run_cfg = "[instance]\nworkers = 2\nplacement = none\n"
			     "[restart]\nintensity = 5\nperiod = 10\n"
			     "[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 16\n"
			     "rounds = 4\n"
			     "[agent a]\ntype = echo\ncount = 4\nname = a-%u\nworker = 0\n"
			     "[agent b]\ntype = echo\ncount = 4\nname = b-%u\nworker = 1\n";

/* An instance with members a-0..3 on worker 0 and b-0..3 on worker 1 in group "g". */
struct run {
	struct rt_run r;
	struct rt_client cl;
	struct shoal_client *c;
	shoal_handle_t a[4], b[4];
};

static void run_up_with(struct run *x, const char *name, const char *cfg)
{
	rt_group_up(&x->r, &x->cl, &x->c, name, cfg);
	rt_group_join(&x->cl, x->c, "a-%d", 4, x->a);
	rt_group_join(&x->cl, x->c, "b-%d", 4, x->b);
}

static void run_up(struct run *x, const char *name)
{
	run_up_with(x, name, run_cfg);
}

static void run_down(struct run *x)
{
	rt_group_down(&x->r, &x->cl, x->c);
}

/* The state res lists for handle h (fails if h is not listed). */
static uint32_t state_of(const struct shoal_round_result *res, shoal_handle_t h)
{
	for (uint32_t i = 0; i < res->members && i < res->cap; i++)
		if (res->member[i].handle == h)
			return res->member[i].state;
	fail_msg("handle %#llx is not in the result", (unsigned long long)h);
	return UINT32_MAX;
}

/* Every member, on two workers, acknowledges: 0, all listed acked. */
static void test_round_client_all_ack(void **state)
{
	struct shoal_round_member mem[16];
	struct shoal_round_result res = {.member = mem, .cap = 16};
	struct run x;

	(void)state;
	run_up(&x, "rall");
	for (int k = 0; k < 20; k++) {
		assert_int_equal(
			shoal_client_broadcast_acked(x.c, "g", 7, "hi", 2, TIMEOUT_MS, &res), 0);
		assert_int_equal(res.members, 8);
		assert_int_equal(res.acked, 8);
		assert_int_equal(res.dead + res.absent, 0);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(state_of(&res, x.a[i]), SHOAL_ROUND_ACKED);
			assert_int_equal(state_of(&res, x.b[i]), SHOAL_ROUND_ACKED);
		}
	}
	/* every record was freed */
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	assert_int_equal(shoal_client_broadcast_acked(x.c, "nosuch", 7, "hi", 2, 100, &res),
			 -ENOENT);
	assert_int_equal(shoal_client_broadcast_acked(x.c, "g", 7, "hi", 2, 0, &res), -EINVAL);
	run_down(&x);
}

/* A member that never answers (an inbox nobody reads): -ETIMEDOUT, listed absent. */
static void test_round_client_absent(void **state)
{
	struct shoal_round_member mem[16];
	struct shoal_round_result res = {.member = mem, .cap = 16};
	struct run x;

	(void)state;
	run_up(&x, "rabs");
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.cl.inbox), 0);
	for (uint64_t end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;;) {
		assert_int_equal(shoal_client_broadcast_acked(x.c, "g", 7, "hi", 2, 300, &res),
				 -ETIMEDOUT);
		assert_int_equal(res.members, 9);
		assert_int_equal(res.acked + res.absent, 9);
		assert_int_equal(res.dead, 0);
		assert_int_equal(state_of(&res, x.cl.inbox), SHOAL_ROUND_ABSENT);
		assert_true(res.elapsed_ns >= 300000000u);
		/* a worker the loaded machine left unscheduled for the whole 300 ms leaves its
		 * members absent: again, until all eight answer within the window */
		if (res.acked == 8 || shm_now_ns() > end)
			break;
	}
	assert_int_equal(res.acked, 8);
	assert_int_equal(res.absent, 1);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

/*
 * Worker 1 SIGKILLed mid-round (stopped first, so its members cannot answer before): its
 * members count as dead at once, and the round ends long before its timeout.
 */
static void test_round_client_worker_killed(void **state)
{
	struct shoal_round_member mem[16];
	struct shoal_round_result res = {.member = mem, .cap = 16};
	pid_t w1, killer;
	struct run x;
	int rc;

	(void)state;
	run_up(&x, "rkill");
	/* the killer waits for the round to be published (rt_kill_worker_mid_round()) */
	killer = rt_kill_worker_mid_round(x.cl.seg, 2, &w1);
	rc = shoal_client_broadcast_acked(x.c, "g", 7, "hi", 2, 10000, &res);
	assert_true(it_ok(it_wait_child(killer, TIMEOUT_MS)));
	assert_int_equal(rc, 0);
	assert_int_equal(res.members, 8);
	assert_int_equal(res.acked, 4);
	assert_int_equal(res.dead, 4);
	assert_int_equal(res.absent, 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(state_of(&res, x.a[i]), SHOAL_ROUND_ACKED);
		assert_int_equal(state_of(&res, x.b[i]), SHOAL_ROUND_DEAD);
	}
	/* its DOWN ended the wait, not the 10 s timeout */
	assert_true(res.elapsed_ns < 5000000000u);
	print_message("round with a worker killed: %.1f ms\n", (double)res.elapsed_ns / 1e6);
	/* the restarted worker's members ack again */
	WAIT_FOR(x.cl.seg,
		 rt_slot_pid(x.cl.seg, 2) != w1 && rt_slot_pid(x.cl.seg, 2) > 0 &&
			 atomic_load(&shm_proc_at(x.cl.seg, 2)->state) == SHM_PROC_RUNNING);
	assert_int_equal(shoal_client_broadcast_acked(x.c, "g", 7, "hi", 2, TIMEOUT_MS, &res), 0);
	assert_int_equal(res.acked, 8);
	run_down(&x);
}

/*
 * A client killed while it waits for its round: the repair of its slot frees the record; the
 * table can be filled to its last record again and emptied.
 */
static void test_round_client_owner_killed(void **state)
{
	struct run x;
	uint32_t slot[4], gen[4], s, g;
	pid_t owner;

	(void)state;
	run_up(&x, "rown");
	/* our second inbox never reads: the owner's round stays open */
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.cl.inbox), 0);
	owner = fork();
	assert_true(owner >= 0);
	if (owner == 0) {
		struct shoal_client *c;
		struct shoal_round_result res = {0};

		if (shoal_client_open(x.r.inst, &c, NULL, 0))
			_exit(9);
		shoal_client_broadcast_acked(c, "g", 7, "hi", 2, 60000, &res);
		_exit(10);
	}
	for (uint64_t end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	     shm_round_in_use(x.cl.seg) == 0;)
		assert_true(shm_now_ns() < end);
	rt_kill_and_wait(owner);
	waitpid(owner, NULL, 0);
	WAIT_FOR(x.cl.seg, shm_round_in_use(x.cl.seg) == 0);
	/* nothing leaked: every record can be claimed, then the table is full */
	for (int i = 0; i < 4; i++)
		assert_int_equal(shm_round_claim(x.cl.seg, &slot[i], &gen[i]), 0);
	assert_int_equal(shm_round_claim(x.cl.seg, &s, &g), -ENOSPC);
	{
		struct shoal_round_result res = {0};

		assert_int_equal(shoal_client_broadcast_acked(x.c, "g", 7, "hi", 2, 100, &res),
				 -ENOSPC);
	}
	for (int i = 0; i < 4; i++)
		shm_round_free(x.cl.seg, slot[i], gen[i]);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

/* shoal broadcast --ack: the tally, the absent member's handle, exit 0 / 1 / 2. */
static void test_round_tool(void **state)
{
	const char *all[] = {"broadcast", "g", "7", "hi", "--ack", NULL};
	const char *shortw[] = {"broadcast", "g", "7", "hi", "--ack", "--timeout", "200", NULL};
	const char *plain[] = {"broadcast", "g", "7", "hi", NULL};
	const char *nogroup[] = {"broadcast", "nosuch", "7", "hi", "--ack", NULL};
	const char *badtype[] = {"broadcast", "g", "x7", "hi", "--ack", NULL};
	const char *inspect[] = {"inspect", NULL};
	static char big[65536];
	char out[2048], hex[24];
	struct run x;

	(void)state;
	run_up(&x, "rtool");
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), all), 0);
	assert_non_null(strstr(out, "g: 8 members: 8 acked, 0 dead, 0 absent"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), plain), 0);
	assert_non_null(strstr(out, "g: sent to 8 members"));
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.cl.inbox), 0);
	/* as in test_round_client_absent: again while a loaded machine keeps members absent */
	for (uint64_t end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;;) {
		assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), shortw), 1);
		assert_non_null(strstr(out, "(timed out)"));
		if (strstr(out, "g: 9 members: 8 acked, 0 dead, 1 absent") || shm_now_ns() > end)
			break;
		assert_non_null(strstr(out, "g: 9 members: "));
	}
	assert_non_null(strstr(out, "g: 9 members: 8 acked, 0 dead, 1 absent"));
	snprintf(hex, sizeof(hex), "%#018llx", (unsigned long long)x.cl.inbox);
	assert_non_null(strstr(out, hex));
	assert_non_null(strstr(out, "absent"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), nogroup), 2);
	assert_non_null(strstr(out, "no group 'nosuch'"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), badtype), 2);
	assert_non_null(strstr(out, "TYPE 'x7'"));
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	assert_int_equal(rt_run_tool(x.r.inst, big, sizeof(big), inspect), 0);
	assert_non_null(strstr(big, "rounds         0 of 4 records in use"));
	run_down(&x);
}

/* --- an agent's rounds: shoal_broadcast_acked(), the result as a message --- */

/*
 * run_cfg plus the test plugin's "rounder" agent on worker 0 (it starts a round when called
 * and answers the call with the round's result). Skips without the plugin.
 */
static void run_up_rounder(struct run *x, const char *name, shoal_handle_t *rounder)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	static char cfg[1024];

	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg),
		 "%s[types]\nload = %s\n[agent r]\ntype = rounder\nname = r\n"
		 "worker = 0\n",
		 run_cfg, lib);
	run_up_with(x, name, cfg);
	assert_int_equal(shoal_client_lookup(x->c, "r", rounder), 0);
}

/* Ask the rounder for a round to "g" with timeout_ms; its result. */
static struct shoal_round_done agent_round(struct run *x, shoal_handle_t rounder, int timeout_ms)
{
	struct shoal_round_done d;
	char req[32];
	int n = snprintf(req, sizeof(req), "%d g", timeout_ms);

	memset(&d, 0, sizeof(d));
	assert_int_equal(
		shoal_client_call(x->c, rounder, 1, req, (uint32_t)n, &d, sizeof(d), TIMEOUT_MS),
		(int)sizeof(d));
	return d;
}

/* An agent's round: every member acks; one that never answers is absent at the deadline. */
static void test_round_agent_result(void **state)
{
	shoal_handle_t rounder;
	struct shoal_round_done d;
	struct run x;

	(void)state;
	run_up_rounder(&x, "ragent", &rounder);
	for (int k = 0; k < 5; k++) {
		d = agent_round(&x, rounder, TIMEOUT_MS);
		assert_int_equal(d.members, 8);
		assert_int_equal(d.acked, 8);
		assert_int_equal(d.dead + d.absent, 0);
		assert_true(d.ref != 0);
	}
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.cl.inbox), 0);
	/* as in test_round_client_absent: again while a loaded machine keeps members absent */
	for (uint64_t end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;;) {
		d = agent_round(&x, rounder, 300);
		assert_int_equal(d.members, 9);
		assert_int_equal(d.acked + d.absent, 9);
		assert_true(d.elapsed_ns >= 300000000u);
		if (d.acked == 8 || shm_now_ns() > end)
			break;
	}
	assert_int_equal(d.acked, 8);
	assert_int_equal(d.absent, 1);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

/* An agent's round with worker 1 SIGKILLed mid-round: the result comes at once, 4 dead. */
static void test_round_agent_worker_killed(void **state)
{
	shoal_handle_t rounder;
	struct shoal_round_done d;
	pid_t w1, killer;
	struct run x;

	(void)state;
	run_up_rounder(&x, "ragkill", &rounder);
	/* the killer waits for the round to be published (rt_kill_worker_mid_round()) */
	killer = rt_kill_worker_mid_round(x.cl.seg, 2, &w1);
	d = agent_round(&x, rounder, 10000);
	assert_true(it_ok(it_wait_child(killer, TIMEOUT_MS)));
	assert_int_equal(d.members, 8);
	assert_int_equal(d.acked, 4);
	assert_int_equal(d.dead, 4);
	assert_true(d.elapsed_ns < 5000000000u);
	run_down(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_record_all_answer),
		cmocka_unit_test(test_round_record_large),
		cmocka_unit_test(test_round_record_late_answer),
		cmocka_unit_test(test_round_record_table_full),
		cmocka_unit_test(test_round_record_two_threads),
		cmocka_unit_test(test_round_record_released_owner),
		cmocka_unit_test(test_round_record_answerer_killed),
		cmocka_unit_test(test_round_record_owner_killed),
		cmocka_unit_test(test_round_redelivered_counts_once),
		cmocka_unit_test(test_round_member_inbox_closed),
		cmocka_unit_test(test_round_large_group),
		cmocka_unit_test_teardown(test_round_client_all_ack, rt_teardown),
		cmocka_unit_test_teardown(test_round_client_absent, rt_teardown),
		cmocka_unit_test_teardown(test_round_client_worker_killed, rt_teardown),
		cmocka_unit_test_teardown(test_round_client_owner_killed, rt_teardown),
		cmocka_unit_test_teardown(test_round_tool, rt_teardown),
		cmocka_unit_test_teardown(test_round_agent_result, rt_teardown),
		cmocka_unit_test_teardown(test_round_agent_worker_killed, rt_teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
