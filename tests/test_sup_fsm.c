/* The supervisor's worker state machine (supervisor/sup_worker.c), driven without forking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "supervisor/sup_int.h"

static const struct sup_wfacts none;

/* Step from st by ev with facts f; assert the next state and the exact action set. */
static void expect(enum sup_wstate st, enum sup_wevent ev, const struct sup_wfacts *f,
		   enum sup_wstate next, uint32_t actions)
{
	struct sup_wstep r = sup_worker_step(st, ev, f);

	if (r.next != next || r.actions != actions)
		fail_msg("%s + event %d: %s actions %#x, want %s actions %#x", sup_wstate_name(st),
			 (int)ev, sup_wstate_name(r.next), r.actions, sup_wstate_name(next),
			 actions);
}

#define RESTART_NOW   (SUP_A_STRATEGY | SUP_A_COUNT_RESTART | SUP_A_LAUNCH)
#define RESTART_LATER (SUP_A_STRATEGY | SUP_A_COUNT_RESTART | SUP_A_BACKOFF)

/* start, ready, a crash restarted at once, one after a backoff, then intensity exceeded. */
static void test_sup_fsm_life_cycle(void **state)
{
	struct sup_wfacts backoff = {.backoff = true}, due = {.due = true};
	struct sup_wfacts exceeded = {.exceeded = true};

	(void)state;
	expect(SUP_W_EXITED, SUP_E_START, &none, SUP_W_STARTING, SUP_A_LAUNCH);
	expect(SUP_W_STARTING, SUP_E_READY, &none, SUP_W_RUNNING, SUP_A_READY);
	expect(SUP_W_RUNNING, SUP_E_TIMER, &due, SUP_W_RUNNING, 0);
	expect(SUP_W_RUNNING, SUP_E_DIED, &none, SUP_W_STARTING, SUP_A_REAP | RESTART_NOW);
	expect(SUP_W_RUNNING, SUP_E_DIED, &backoff, SUP_W_BACKOFF, SUP_A_REAP | RESTART_LATER);
	expect(SUP_W_BACKOFF, SUP_E_TIMER, &none, SUP_W_BACKOFF, 0);
	expect(SUP_W_BACKOFF, SUP_E_TIMER, &due, SUP_W_STARTING, SUP_A_LAUNCH);
	/* exceeded: no restart, no strategy, the instance stops */
	expect(SUP_W_RUNNING, SUP_E_DIED, &exceeded, SUP_W_EXITED, SUP_A_REAP | SUP_A_GIVE_UP);
	expect(SUP_W_RUNNING, SUP_E_DYING, &exceeded, SUP_W_EXITED, SUP_A_NOTICE | SUP_A_GIVE_UP);
	/* an exited worker stays so: only the instance's start launches it */
	expect(SUP_W_EXITED, SUP_E_STOP, &none, SUP_W_EXITED, 0);
	expect(SUP_W_EXITED, SUP_E_DIED, &none, SUP_W_EXITED, 0);
	expect(SUP_W_EXITED, SUP_E_TIMER, &due, SUP_W_EXITED, 0);
}

/* A death notice (death word) restarts before the pidfd; the spare wakes before the repair. */
static void test_sup_fsm_death_notice(void **state)
{
	struct sup_wfacts backoff = {.backoff = true};

	(void)state;
	expect(SUP_W_RUNNING, SUP_E_DYING, &none, SUP_W_STARTING,
	       SUP_A_NOTICE | SUP_A_PRELAUNCH | RESTART_NOW);
	/* a restart that waits does not wake the spare ahead */
	expect(SUP_W_RUNNING, SUP_E_DYING, &backoff, SUP_W_BACKOFF, SUP_A_NOTICE | RESTART_LATER);
	/* asked to stop: the pidfd says when it is gone, nothing to do early */
	expect(SUP_W_STOPPING, SUP_E_DYING, &none, SUP_W_STOPPING, 0);
	expect(SUP_W_CYCLING, SUP_E_DYING, &none, SUP_W_CYCLING, 0);
}

/* A death before the ready byte is a crash like any; a late start is killed, once due. */
static void test_sup_fsm_death_while_starting(void **state)
{
	struct sup_wfacts due = {.due = true};

	(void)state;
	expect(SUP_W_STARTING, SUP_E_DIED, &none, SUP_W_STARTING, SUP_A_REAP | RESTART_NOW);
	expect(SUP_W_STARTING, SUP_E_DYING, &none, SUP_W_STARTING,
	       SUP_A_NOTICE | SUP_A_PRELAUNCH | RESTART_NOW);
	expect(SUP_W_STARTING, SUP_E_TIMER, &none, SUP_W_STARTING, 0);
	expect(SUP_W_STARTING, SUP_E_TIMER, &due, SUP_W_STARTING, SUP_A_KILL_LATE);
	/* its launch failed: it is gone and the instance stops */
	expect(SUP_W_STARTING, SUP_E_LAUNCH_FAILED, &none, SUP_W_EXITED, SUP_A_ABORT);
}

/* An orderly stop: asked if ready, killed if not, killed when late, collected. */
static void test_sup_fsm_stop(void **state)
{
	struct sup_wfacts due = {.due = true}, stopping = {.stopping = true};

	(void)state;
	expect(SUP_W_RUNNING, SUP_E_STOP, &stopping, SUP_W_STOPPING, SUP_A_ASK_STOP);
	expect(SUP_W_STARTING, SUP_E_STOP, &stopping, SUP_W_STOPPING, SUP_A_KILL);
	expect(SUP_W_STOPPING, SUP_E_STOP, &stopping, SUP_W_STOPPING, 0);
	expect(SUP_W_STOPPING, SUP_E_READY, &stopping, SUP_W_STOPPING, 0);
	expect(SUP_W_STOPPING, SUP_E_TIMER, &stopping, SUP_W_STOPPING, 0);
	expect(SUP_W_STOPPING, SUP_E_TIMER, &due, SUP_W_STOPPING, SUP_A_KILL_LATE);
	expect(SUP_W_STOPPING, SUP_E_DIED, &stopping, SUP_W_EXITED, SUP_A_REAP_STOPPED);
}

/* A stop while it waits out its backoff: it is not restarted, nothing is left to kill. */
static void test_sup_fsm_stop_in_backoff(void **state)
{
	struct sup_wfacts due = {.due = true};

	(void)state;
	expect(SUP_W_BACKOFF, SUP_E_STOP, &none, SUP_W_EXITED, 0);
	/* a sibling's strategy: it restarts when the backoff ends anyway */
	expect(SUP_W_BACKOFF, SUP_E_CYCLE, &none, SUP_W_BACKOFF, 0);
	/* no process: a stale completion does nothing */
	expect(SUP_W_BACKOFF, SUP_E_DIED, &none, SUP_W_BACKOFF, 0);
	expect(SUP_W_EXITED, SUP_E_TIMER, &due, SUP_W_EXITED, 0);
}

/* one_for_all/rest_for_one: the crash names the siblings; each cycles and starts again. */
static void test_sup_fsm_siblings_cycle(void **state)
{
	struct sup_wfacts stopping = {.stopping = true}, due = {.due = true};

	(void)state;
	/* the crash carries SUP_A_STRATEGY (checked in the life cycle); the siblings: */
	expect(SUP_W_RUNNING, SUP_E_CYCLE, &none, SUP_W_CYCLING, SUP_A_ASK_STOP);
	expect(SUP_W_HUNG, SUP_E_CYCLE, &none, SUP_W_CYCLING, SUP_A_ASK_STOP);
	expect(SUP_W_STARTING, SUP_E_CYCLE, &none, SUP_W_CYCLING, SUP_A_KILL);
	expect(SUP_W_STOPPING, SUP_E_CYCLE, &none, SUP_W_STOPPING, 0);
	expect(SUP_W_CYCLING, SUP_E_CYCLE, &none, SUP_W_CYCLING, 0);
	expect(SUP_W_CYCLING, SUP_E_TIMER, &due, SUP_W_CYCLING, SUP_A_KILL_LATE);
	/* asked to go: not a crash, restarted at once without the strategy */
	assert_false(sup_wevent_is_crash(SUP_W_CYCLING, SUP_E_DIED));
	expect(SUP_W_CYCLING, SUP_E_DIED, &none, SUP_W_STARTING,
	       SUP_A_REAP_STOPPED | SUP_A_COUNT_RESTART | SUP_A_LAUNCH);
	/* the instance stops meanwhile: collected, not restarted */
	expect(SUP_W_CYCLING, SUP_E_STOP, &stopping, SUP_W_STOPPING, 0);
	expect(SUP_W_CYCLING, SUP_E_DIED, &stopping, SUP_W_EXITED, SUP_A_REAP_STOPPED);
}

/* A stale heartbeat: killed once, its death a crash (recorded "hang"), stoppable. */
static void test_sup_fsm_hang(void **state)
{
	(void)state;
	expect(SUP_W_RUNNING, SUP_E_HANG, &none, SUP_W_HUNG, SUP_A_KILL_HUNG);
	expect(SUP_W_HUNG, SUP_E_HANG, &none, SUP_W_HUNG, 0);
	expect(SUP_W_STARTING, SUP_E_HANG, &none, SUP_W_STARTING, 0);
	assert_true(sup_wevent_is_crash(SUP_W_HUNG, SUP_E_DIED));
	expect(SUP_W_HUNG, SUP_E_DIED, &none, SUP_W_STARTING, SUP_A_REAP | RESTART_NOW);
	expect(SUP_W_HUNG, SUP_E_STOP, &none, SUP_W_STOPPING, SUP_A_ASK_STOP);
}

/* Every cell, every combination of facts: the invariants the dispatcher relies on. */
static void test_sup_fsm_invariants(void **state)
{
	const uint32_t known = (SUP_A_ABORT << 1) - 1;

	(void)state;
	for (int st = 0; st < SUP_W_NSTATES; st++)
		for (int ev = 0; ev < SUP_E_NEVENTS; ev++)
			for (int k = 0; k < 16; k++) {
				struct sup_wfacts f = {.exceeded = k & 1,
						       .backoff = k & 2,
						       .due = k & 4,
						       .stopping = k & 8};
				struct sup_wstep r = sup_worker_step(st, ev, &f);
				uint32_t a = r.actions;
				bool crash = sup_wevent_is_crash(st, ev);

				assert_true(r.next < SUP_W_NSTATES);
				assert_int_equal(a & ~known, 0);
				/* a launch leaves it STARTING; giving up leaves it EXITED */
				if (a & SUP_A_LAUNCH)
					assert_int_equal(r.next, SUP_W_STARTING);
				if (a & (SUP_A_GIVE_UP | SUP_A_ABORT))
					assert_int_equal(r.next, SUP_W_EXITED);
				/* a process is collected at most once, and only from one that ran
				 */
				assert_true(
					__builtin_popcount(a & (SUP_A_REAP | SUP_A_REAP_STOPPED |
								SUP_A_NOTICE)) <= 1);
				if (a & SUP_A_PRELAUNCH)
					assert_true((a & SUP_A_NOTICE) && (a & SUP_A_LAUNCH));
				/* only a counted crash may give up or restart the siblings */
				if (a & (SUP_A_GIVE_UP | SUP_A_STRATEGY))
					assert_true(crash);
				if (crash)
					assert_true(st == SUP_W_STARTING || st == SUP_W_RUNNING ||
						    st == SUP_W_HUNG);
				/* EXITED is left only by the instance's start */
				if (st == SUP_W_EXITED && ev != SUP_E_START)
					assert_int_equal(r.next, SUP_W_EXITED);
			}
	/* out of range: no step */
	expect(SUP_W_NSTATES, SUP_E_DIED, &none, SUP_W_NSTATES, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sup_fsm_life_cycle),
		cmocka_unit_test(test_sup_fsm_death_notice),
		cmocka_unit_test(test_sup_fsm_death_while_starting),
		cmocka_unit_test(test_sup_fsm_stop),
		cmocka_unit_test(test_sup_fsm_stop_in_backoff),
		cmocka_unit_test(test_sup_fsm_siblings_cycle),
		cmocka_unit_test(test_sup_fsm_hang),
		cmocka_unit_test(test_sup_fsm_invariants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
