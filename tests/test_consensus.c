/*
 * test_consensus: consensus proposals: the vote bits of a round record (one CAS per vote, a
 * dead member told from a no), the rules, a rejection leaving the value, concurrent proposals
 * on one variable, SIGKILL of the proposer and of a voter's worker mid-round, an agent's
 * proposal, and `shoal propose`.
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/round.h"
#include "shm/shm.h"
#include "shm/var.h"
#include "shoal/client.h"
#include "tests/ipc_test_util.h"
#include "tests/run_test_util.h"
#include "tests/support.h"

/* --- the record: vote bits --- */

static char inst[64];

static struct shm_seg *make(const char *tag, uint32_t g)
{
	struct shm_cfg cfg;

	snprintf(inst, sizeof(inst), "t-cons-%s-%d", tag, (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	cfg.max_procs = 16;
	cfg.max_groups = 4;
	cfg.group_members = g;
	cfg.max_rounds = 4;
	return ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
}

/* A VOTE round of n made-up members, published. */
static void vote_round(struct shm_seg *seg, uint32_t n, uint32_t *slot, uint32_t *gen)
{
	shoal_handle_t h[64];

	for (uint32_t i = 0; i < n; i++)
		h[i] = shoal_handle_make(i, 1);
	assert_int_equal(shm_round_claim(seg, slot, gen), 0);
	shm_round_set_kind(seg, *slot, *gen, SHM_ROUND_VOTE);
	shm_round_publish(seg, *slot, *gen, shoal_handle_make(63, 1), h, n, UINT64_MAX, 0);
}

/*
 * Yes, no, an ack (yes: no vote callback) and dead, each in one answer; the first answer
 * decides (a dead after a no keeps the no; a yes after dead keeps dead); the last completes.
 */
static void test_consensus_record_votes(void **state)
{
	struct shm_seg *seg = make("votes", 64);
	shoal_handle_t h;
	uint32_t slot, gen;

	(void)state;
	vote_round(seg, 5, &slot, &gen);
	assert_int_equal(shm_round_vote(seg, slot, gen, 0, true), 0);
	assert_int_equal(shm_round_vote(seg, slot, gen, 1, false), 0);
	assert_int_equal(shm_round_answer(seg, slot, gen, 2, false), 0);
	assert_int_equal(shm_round_answer(seg, slot, gen, 3, true), 0);
	/* second answers change nothing */
	assert_int_equal(shm_round_answer(seg, slot, gen, 1, true), 0);
	assert_int_equal(shm_round_vote(seg, slot, gen, 3, true), 0);
	assert_false(shm_round_is_complete(seg, slot, gen));
	assert_int_equal(shm_round_member(seg, slot, gen, 4, NULL), SHM_ROUND_M_ABSENT);
	assert_int_equal(shm_round_vote(seg, slot, gen, 4, false), 1);
	assert_true(shm_round_is_complete(seg, slot, gen));
	assert_int_equal(shm_round_member(seg, slot, gen, 0, &h), SHM_ROUND_M_YES);
	assert_int_equal(h, shoal_handle_make(0, 1));
	assert_int_equal(shm_round_member(seg, slot, gen, 1, &h), SHM_ROUND_M_NO);
	assert_int_equal(shm_round_member(seg, slot, gen, 2, &h), SHM_ROUND_M_YES);
	assert_int_equal(shm_round_member(seg, slot, gen, 3, &h), SHM_ROUND_M_DEAD);
	/* the dead flag never shows in the handle */
	assert_int_equal(h, shoal_handle_make(3, 1));
	assert_int_equal(shm_round_member(seg, slot, gen, 4, &h), SHM_ROUND_M_NO);
	shm_round_free(seg, slot, gen);
	/* the next claim of the record is an ACK round again: its second bit means dead */
	{
		shoal_handle_t m[2] = {shoal_handle_make(1, 1), shoal_handle_make(2, 1)};

		assert_int_equal(shm_round_claim(seg, &slot, &gen), 0);
		shm_round_publish(seg, slot, gen, shoal_handle_make(63, 1), m, 2, UINT64_MAX, 0);
		assert_int_equal(shm_round_answer(seg, slot, gen, 0, false), 0);
		assert_int_equal(shm_round_answer(seg, slot, gen, 1, true), 1);
		assert_int_equal(shm_round_member(seg, slot, gen, 0, NULL), SHM_ROUND_M_ACKED);
		assert_int_equal(shm_round_member(seg, slot, gen, 1, NULL), SHM_ROUND_M_DEAD);
		shm_round_free(seg, slot, gen);
	}
	ts_seg_drop(seg, inst);
}

struct voters {
	struct shm_seg *seg;
	uint32_t slot, gen, from, n;
	int completed;
};

/* Members from..from+n-1 vote: even yes, odd no, every third of them dead instead. */
static void *vote_some(void *arg)
{
	struct voters *v = arg;

	for (uint32_t i = v->from; i < v->from + v->n; i++) {
		int r = i % 3 == 0 ? shm_round_answer(v->seg, v->slot, v->gen, i, true)
				   : shm_round_vote(v->seg, v->slot, v->gen, i, i % 2 == 0);

		if (r == 1)
			v->completed++;
	}
	return NULL;
}

/* Two threads vote into one record's shared words: every vote counted as cast, one completes. */
static void test_consensus_record_threads(void **state)
{
	struct shm_seg *seg = make("thr", 64);
	struct voters a, b;
	uint32_t slot, gen, yes = 0, no = 0, dead = 0;
	pthread_t t;

	(void)state;
	for (int k = 0; k < 200; k++) {
		vote_round(seg, 64, &slot, &gen);
		/* interleaved halves: the same level-0 words from both threads */
		a = (struct voters){.seg = seg, .slot = slot, .gen = gen, .from = 0, .n = 32};
		b = (struct voters){.seg = seg, .slot = slot, .gen = gen, .from = 32, .n = 32};
		assert_int_equal(pthread_create(&t, NULL, vote_some, &a), 0);
		vote_some(&b);
		pthread_join(t, NULL);
		assert_int_equal(a.completed + b.completed, 1);
		assert_true(shm_round_is_complete(seg, slot, gen));
		yes = no = dead = 0;
		for (uint32_t i = 0; i < 64; i++) {
			uint32_t st = shm_round_member(seg, slot, gen, i, NULL);

			yes += st == SHM_ROUND_M_YES;
			no += st == SHM_ROUND_M_NO;
			dead += st == SHM_ROUND_M_DEAD;
			if (i % 3 == 0)
				assert_int_equal(st, SHM_ROUND_M_DEAD);
			else
				assert_int_equal(st, i % 2 == 0 ? SHM_ROUND_M_YES : SHM_ROUND_M_NO);
		}
		assert_int_equal(yes + no + dead, 64);
		shm_round_free(seg, slot, gen);
	}
	ts_seg_drop(seg, inst);
}

/* A child that takes a round record and the proposal claim on var, then dies (SIGKILL). */
static uint32_t child_claims_and_dies(struct shm_seg *seg, uint64_t var, uint64_t *ref)
{
	_Atomic uint64_t *shared = it_shared(2 * sizeof(*shared));
	uint32_t slot;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t ver, held;
		uint32_t s, g;

		it_child_claim(seg);
		if (shm_round_claim(seg, &s, &g) ||
		    shm_var_propose_claim(seg, var, shm_round_ref(s, g, 0), &ver, &held))
			_exit(4);
		atomic_store(&shared[0], seg->self + 1);
		atomic_store(&shared[1], shm_round_ref(s, g, 0));
		raise(SIGKILL);
		_exit(5);
	}
	it_wait_child(pid, TIMEOUT_MS);
	assert_int_not_equal(atomic_load(&shared[0]), 0);
	slot = (uint32_t)atomic_load(&shared[0]) - 1;
	*ref = atomic_load(&shared[1]);
	munmap(shared, 2 * sizeof(*shared));
	return slot;
}

/*
 * A proposer that died holding a variable's proposal claim, before any repair: the next
 * proposer finds the claim's owner dead, clears it and takes it; a live holder refuses the
 * one after (-EBUSY, its ref and the version). And the repair of a dead proposer's slot
 * clears its claim (shm_var_check() finds nothing left).
 */
static void test_consensus_record_stale_claim(void **state)
{
	struct shm_seg *seg = make("stale", 64);
	uint64_t var, ref, ver, held, mine, other;
	uint32_t s, g, s2, g2, dead;
	char err[256];

	(void)state;
	assert_int_equal(shm_var_create(seg, 0, "x", 1, SHM_VAR_INT, &var), 0);
	dead = child_claims_and_dies(seg, var, &ref);
	(void)dead;
	assert_int_equal(shm_round_claim(seg, &s, &g), 0);
	mine = shm_round_ref(s, g, 0);
	assert_int_equal(shm_var_propose_claim(seg, var, mine, &ver, &held), 0);
	assert_int_equal(ver, 0);
	assert_int_equal(shm_var_proposal(seg, var), mine);
	assert_int_equal(shm_round_claim(seg, &s2, &g2), 0);
	other = shm_round_ref(s2, g2, 0);
	assert_int_equal(shm_var_propose_claim(seg, var, other, &ver, &held), -EBUSY);
	assert_int_equal(held, mine);
	shm_var_propose_release(seg, var, other); /* not its claim: changes nothing */
	assert_int_equal(shm_var_proposal(seg, var), mine);
	shm_var_propose_release(seg, var, mine);
	assert_int_equal(shm_var_proposal(seg, var), 0);
	shm_round_free(seg, s, g);
	shm_round_free(seg, s2, g2);
	it_repair(seg, dead);

	/* the repair of a dead proposer's slot clears its claim */
	dead = child_claims_and_dies(seg, var, &ref);
	assert_int_equal(shm_var_check(seg, err, sizeof(err)), -EUCLEAN);
	atomic_store(&shm_proc_at(seg, dead)->state, SHM_PROC_DEAD);
	assert_true(shm_var_repair(seg, dead) >= 1);
	assert_int_equal(shm_var_check(seg, err, sizeof(err)), 0);
	assert_int_equal(shm_var_proposal(seg, var), 0);
	it_repair(seg, dead);
	assert_int_equal(shm_round_in_use(seg), 0);
	ts_seg_drop(seg, inst);
}

/* --- through `shoal run` and the client API --- */

/* voters v-0..7 round robin (odd ones on worker 1); the rounder r (an agent proposer) too */
static const char *run_fmt = "[instance]\nworkers = 2\nplacement = none\n"
			     "[restart]\nintensity = 5\nperiod = 10\n"
			     "[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 16\n"
			     "rounds = 4\nvariables = 16\n"
			     "[types]\nload = %s\n"
			     "[agent v]\ntype = voter\ncount = 8\nname = v-%%u\nworker = any\n"
			     "[agent r]\ntype = rounder\nname = r\nworker = 0\n";

struct run {
	struct rt_run r;
	struct rt_client cl;
	struct shoal_client *c;
	shoal_handle_t v[8];
	shoal_handle_t rounder;
	shoal_var_t lr;
};

static void run_up(struct run *x, const char *name)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	static char cfg[1024];

	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg), run_fmt, lib);
	rt_group_up(&x->r, &x->cl, &x->c, name, cfg);
	rt_group_join(&x->cl, x->c, "v-%d", 8, x->v);
	assert_int_equal(shoal_client_lookup(x->c, "r", &x->rounder), 0);
	assert_int_equal(shoal_client_var_create(x->c, "lr", SHOAL_VAR_INT, &x->lr), 0);
}

static void run_down(struct run *x)
{
	rt_group_down(&x->r, &x->cl, x->c);
}

static int64_t lr_value(struct run *x, uint64_t *version)
{
	struct shoal_var_value v = {0};

	assert_int_equal(shoal_client_var_read(x->c, x->lr, &v), 0);
	if (version)
		*version = v.version;
	return v.num.i;
}

static int propose(struct run *x, const char *var, int64_t value, uint32_t rule, uint32_t quorum,
		   int timeout_ms, struct shoal_proposal_result *res)
{
	return shoal_client_propose(x->c, var, SHOAL_VAR_INT, &value, sizeof(value), "g", rule,
				    quorum, timeout_ms, res);
}

/*
 * The rules over 8 voters (v-i says yes to a value up to 10 * i): 0 passes unanimously; 25
 * (5 yes) passes by majority and quorum 5, fails unanimity and quorum 6; 35 (4 yes) fails a
 * majority. Each rejection leaves the value and version as they were.
 */
static void test_consensus_rules(void **state)
{
	struct shoal_proposal_result res;
	uint64_t ver;
	struct run x;

	(void)state;
	run_up(&x, "crules");
	assert_int_equal(propose(&x, "lr", 0, SHOAL_RULE_UNANIMOUS, 0, TIMEOUT_MS, &res), 0);
	assert_int_equal(res.outcome, SHOAL_PROPOSAL_COMMITTED);
	assert_int_equal(res.members, 8);
	assert_int_equal(res.yes, 8);
	assert_int_equal(res.version, 1);
	assert_int_equal(lr_value(&x, &ver), 0);
	assert_int_equal(ver, 1);

	assert_int_equal(propose(&x, "lr", 25, SHOAL_RULE_UNANIMOUS, 0, TIMEOUT_MS, &res),
			 -ECANCELED);
	assert_int_equal(res.outcome, SHOAL_PROPOSAL_REJECTED);
	assert_int_equal(res.yes, 5);
	assert_int_equal(res.no, 3);
	assert_int_equal(res.dead + res.absent, 0);
	assert_int_equal(res.version, 1);
	assert_int_equal(lr_value(&x, &ver), 0);
	assert_int_equal(ver, 1);

	assert_int_equal(propose(&x, "lr", 35, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS, &res),
			 -ECANCELED);
	assert_int_equal(res.yes, 4);
	assert_int_equal(lr_value(&x, NULL), 0);

	assert_int_equal(propose(&x, "lr", 25, SHOAL_RULE_QUORUM, 6, TIMEOUT_MS, &res), -ECANCELED);
	assert_int_equal(lr_value(&x, NULL), 0);

	assert_int_equal(propose(&x, "lr", 25, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS, &res), 0);
	assert_int_equal(res.outcome, SHOAL_PROPOSAL_COMMITTED);
	assert_int_equal(res.version, 2);
	assert_int_equal(lr_value(&x, &ver), 25);
	assert_int_equal(ver, 2);

	assert_int_equal(propose(&x, "lr", 30, SHOAL_RULE_QUORUM, 5, TIMEOUT_MS, &res), 0);
	assert_int_equal(lr_value(&x, &ver), 30);
	assert_int_equal(ver, 3);

	/* a variable named nay*: every voter says no */
	{
		shoal_var_t nay;

		assert_int_equal(shoal_client_var_create(x.c, "nay", SHOAL_VAR_INT, &nay), 0);
		assert_int_equal(propose(&x, "nay", 1, SHOAL_RULE_QUORUM, 1, TIMEOUT_MS, &res),
				 -ECANCELED);
		assert_int_equal(res.no, 8);
	}
	/* bad input changes nothing and holds nothing */
	assert_int_equal(propose(&x, "nosuch", 1, SHOAL_RULE_MAJORITY, 0, 100, &res), -ENOENT);
	assert_int_equal(propose(&x, "lr", 1, SHOAL_RULE_QUORUM, 0, 100, &res), -EINVAL);
	assert_int_equal(propose(&x, "lr", 1, 9, 0, 100, &res), -EINVAL);
	{
		double d = 1.5;

		assert_int_equal(shoal_client_propose(x.c, "lr", SHOAL_VAR_DOUBLE, &d, sizeof(d),
						      "g", SHOAL_RULE_MAJORITY, 0, 100, &res),
				 -EPROTOTYPE);
	}
	assert_int_equal(shoal_client_propose(x.c, "lr", SHOAL_VAR_INT, &ver, sizeof(ver), "nog",
					      SHOAL_RULE_MAJORITY, 0, 100, &res),
			 -ENOENT);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	assert_int_equal(shm_var_proposal(x.cl.seg, x.lr), 0);
	run_down(&x);
}

/* Wait (spinning, bounded) until variable id has an open proposal. */
static void wait_claimed(struct shm_seg *seg, uint64_t id)
{
	uint64_t end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;

	while (!shm_var_proposal(seg, id))
		if (shm_now_ns() > end)
			fail_msg("no proposal was opened on the variable");
}

/*
 * A proposer in a child, whose round waits for our raw inbox (a member that never reads)
 * until timeout_ms; exits 0 if it committed. step: a shm_var test hook step at which it
 * kills itself (0: none).
 */
static int hook_step;
static void die_at(int step)
{
	if (step == hook_step)
		raise(SIGKILL);
}

static pid_t child_propose(struct run *x, int64_t value, int timeout_ms, int step)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct shoal_proposal_result res;
		struct shoal_client *c;

		if (shoal_client_open(x->r.inst, &c, NULL, 0))
			_exit(9);
		hook_step = step;
		if (step)
			shm_var_test_hook = die_at;
		_exit(shoal_client_propose(c, "lr", SHOAL_VAR_INT, &value, sizeof(value), "g",
					   SHOAL_RULE_MAJORITY, 0, timeout_ms, &res) == 0
			      ? 0
			      : 10);
	}
	return pid;
}

/*
 * Our client's inbox, a member of "g", takes the proposal waiting in it (shoal_client_recv()):
 * a client inbox votes yes on receipt, and this was the round's last vote.
 */
static void inbox_votes(struct run *x)
{
	struct shoal_msg m;
	char buf[512];

	assert_int_equal(shoal_client_recv(x->c, &m, buf, sizeof(buf), TIMEOUT_MS), 0);
	assert_true(m.flags & SHOAL_MSG_SYSTEM);
	assert_true(m.flags & SHOAL_MSG_ROUND);
	assert_int_equal(m.type, SHOAL_T_VOTE);
}

/*
 * Two proposals on one variable: while the first is open (its round waits for our inbox's
 * vote), the second is refused at once with -EBUSY and the version both started from, and
 * the tools show the open one; our inbox then votes yes and the first commits (8 of 9 yes).
 * Then a plain update during a round makes that round's commit a conflict: the value stays
 * the plain update's.
 */
static void test_consensus_concurrent(void **state)
{
	struct shoal_proposal_result res;
	uint64_t t0, ver;
	struct run x;
	pid_t pid;

	(void)state;
	run_up(&x, "cconc");
	assert_int_equal(shoal_client_join(x.c, "g"), 0);
	pid = child_propose(&x, 10, TIMEOUT_MS, 0);
	wait_claimed(x.cl.seg, x.lr);
	t0 = shm_now_ns();
	assert_int_equal(propose(&x, "lr", 20, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS, &res), -EBUSY);
	/* at once: not after a round */
	assert_true(shm_now_ns() - t0 < 500000000u);
	assert_int_equal(res.outcome, SHOAL_PROPOSAL_CONFLICT);
	assert_int_equal(res.version, 0);
	assert_int_equal(res.yes + res.no, 0);
	/* the tools show it open */
	{
		const char *list[] = {"var", "list", NULL};
		const char *insp[] = {"inspect", NULL};
		static char out[65536];

		assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), list), 0);
		assert_non_null(strstr(out, "[proposal open] lr"));
		assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), insp), 0);
		assert_non_null(strstr(out, "consensus proposals: 1 open, 0 claims"));
	}
	inbox_votes(&x);
	assert_true(it_ok(it_wait_child(pid, TIMEOUT_MS)));
	assert_int_equal(lr_value(&x, &ver), 10);
	assert_int_equal(ver, 1);
	assert_int_equal(shm_var_proposal(x.cl.seg, x.lr), 0);

	/* a plain update during the round: the proposal's compare-and-set loses */
	pid = child_propose(&x, 30, TIMEOUT_MS, 0);
	wait_claimed(x.cl.seg, x.lr);
	{
		int64_t v = 77;
		struct shoal_var_set set = {
			.var = x.lr, .type = SHOAL_VAR_INT, .len = 8, .data = &v, .expect = 1};

		assert_int_equal(shoal_client_var_update(x.c, &set, 1, NULL, 1000), 0);
	}
	inbox_votes(&x);
	assert_int_equal(it_wait_child(pid, TIMEOUT_MS), 10 << 8);
	assert_int_equal(lr_value(&x, &ver), 77);
	assert_int_equal(ver, 2);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	assert_int_equal(shm_var_proposal(x.cl.seg, x.lr), 0);
	run_down(&x);
}

/*
 * The proposer SIGKILLed mid-round (its round waits for a member that does not answer): the
 * value is the old one, the repair of its slot frees its claim and round record, and the next
 * proposal commits. Killed after its commit, before it released its claim: the value is the
 * new one, the claim is freed all the same.
 */
static void test_consensus_proposer_killed(void **state)
{
	struct shoal_proposal_result res;
	char err[256];
	uint64_t ver;
	struct run x;
	pid_t pid;

	(void)state;
	run_up(&x, "ckill");
	assert_int_equal(shm_grp_join(x.cl.seg, "g", 1, x.cl.inbox), 0);
	pid = child_propose(&x, 10, 60000, 0);
	wait_claimed(x.cl.seg, x.lr);
	rt_kill_and_wait(pid);
	waitpid(pid, NULL, 0);
	WAIT_FOR(x.cl.seg, shm_round_in_use(x.cl.seg) == 0 && !shm_var_proposal(x.cl.seg, x.lr));
	/* the word itself is clear, not only stale */
	assert_int_equal(shm_var_check(x.cl.seg, err, sizeof(err)), 0);
	assert_int_equal(lr_value(&x, &ver), 0);
	assert_int_equal(ver, 0);
	assert_int_equal(shm_grp_leave(x.cl.seg, "g", 1, x.cl.inbox), 0);
	assert_int_equal(propose(&x, "lr", 20, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS, &res), 0);
	assert_int_equal(lr_value(&x, &ver), 20);
	assert_int_equal(ver, 1);

	/* killed right after its commit (the variable unlocked), its claim still held */
	pid = child_propose(&x, 30, TIMEOUT_MS, SHM_VAR_STEP_UNLOCKED);
	{
		int st = it_wait_child(pid, TIMEOUT_MS);

		assert_true(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	}
	assert_int_equal(lr_value(&x, &ver), 30);
	assert_int_equal(ver, 2);
	WAIT_FOR(x.cl.seg, shm_round_in_use(x.cl.seg) == 0 && !shm_var_proposal(x.cl.seg, x.lr));
	assert_int_equal(shm_var_check(x.cl.seg, err, sizeof(err)), 0);
	assert_int_equal(propose(&x, "lr", 0, SHOAL_RULE_UNANIMOUS, 0, TIMEOUT_MS, &res), 0);
	assert_int_equal(res.version, 3);
	run_down(&x);
}

/*
 * Worker 1 (v-1, 3, 5, 7) SIGKILLed mid-round (stopped first, so they cannot vote before): its
 * voters count as dead at once and the round ends long before its 10 s timeout; quorum 4 is
 * met by worker 0's four yes and commits, a unanimous proposal would not.
 */
static void test_consensus_voter_worker_killed(void **state)
{
	struct shoal_proposal_result res;
	pid_t w1, killer;
	struct run x;
	int rc;

	(void)state;
	run_up(&x, "cvkill");
	/* the killer waits for the round to be published (rt_kill_worker_mid_round()) */
	killer = rt_kill_worker_mid_round(x.cl.seg, 2, &w1);
	rc = propose(&x, "lr", 0, SHOAL_RULE_QUORUM, 4, 10000, &res);
	assert_true(it_ok(it_wait_child(killer, TIMEOUT_MS)));
	assert_int_equal(rc, 0);
	assert_int_equal(res.members, 8);
	assert_int_equal(res.yes, 4);
	assert_int_equal(res.dead, 4);
	assert_int_equal(res.absent + res.no, 0);
	assert_true(res.elapsed_ns < 5000000000u);
	print_message("proposal with a voter's worker killed: %.1f ms\n",
		      (double)res.elapsed_ns / 1e6);
	assert_int_equal(lr_value(&x, NULL), 0);
	assert_int_equal(shm_var_proposal(x.cl.seg, x.lr), 0);
	run_down(&x);
}

/* Ask the rounder agent for a proposal; its result (outcome 0 and rc: it did not start). */
static struct shoal_proposal_result agent_propose(struct run *x, int64_t value, uint32_t rule,
						  uint32_t quorum, int timeout_ms)
{
	struct shoal_proposal_result r;
	char req[96];
	int n = snprintf(req, sizeof(req), "P %d g lr %lld %u %u", timeout_ms, (long long)value,
			 rule, quorum);

	memset(&r, 0, sizeof(r));
	assert_int_equal(
		shoal_client_call(x->c, x->rounder, 1, req, (uint32_t)n, &r, sizeof(r), TIMEOUT_MS),
		(int)sizeof(r));
	return r;
}

/*
 * An agent's proposal (shoal_propose()): its outcome comes back as a SHOAL_T_PROPOSAL
 * message with its ref; a rejection; and while a client's proposal is open, a conflict
 * (outcome CONFLICT, rc -EBUSY) as the result message, with the open proposal's version.
 */
static void test_consensus_agent(void **state)
{
	struct shoal_proposal_result r;
	uint64_t ver;
	struct run x;
	pid_t pid;

	(void)state;
	run_up(&x, "cagent");
	r = agent_propose(&x, 25, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS);
	assert_int_equal(r.outcome, SHOAL_PROPOSAL_COMMITTED);
	assert_int_equal(r.rc, 0);
	assert_true(r.ref != 0);
	assert_int_equal(r.yes, 5);
	assert_int_equal(r.version, 1);
	assert_int_equal(lr_value(&x, &ver), 25);
	/* the proposer records itself as the writer */
	{
		struct shoal_var_value v = {0};

		assert_int_equal(shoal_client_var_read(x.c, x.lr, &v), 0);
		assert_int_equal(v.writer, x.rounder);
	}
	r = agent_propose(&x, 35, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS);
	assert_int_equal(r.outcome, SHOAL_PROPOSAL_REJECTED);
	assert_int_equal(r.rc, -ECANCELED);
	assert_int_equal(lr_value(&x, NULL), 25);

	assert_int_equal(shoal_client_join(x.c, "g"), 0);
	pid = child_propose(&x, 10, TIMEOUT_MS, 0);
	wait_claimed(x.cl.seg, x.lr);
	r = agent_propose(&x, 30, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS);
	assert_int_equal(r.rc, -EBUSY);
	/* as a result message, with the version the open proposal started from */
	assert_int_equal(r.outcome, SHOAL_PROPOSAL_CONFLICT);
	assert_true(r.ref != 0);
	assert_int_equal(r.version, 1);
	assert_int_equal(r.members, 0);
	inbox_votes(&x);
	assert_true(it_ok(it_wait_child(pid, TIMEOUT_MS)));
	assert_int_equal(lr_value(&x, &ver), 10);
	assert_int_equal(ver, 2);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

/*
 * The worker of an agent proposer SIGKILLed mid-round: the repair of its slot frees the
 * proposal's claim and round record, the value is the old one, and the next proposal (once
 * the worker is back) commits.
 */
static void test_consensus_agent_worker_killed(void **state)
{
	struct shoal_proposal_result res;
	char err[256], req[64];
	uint64_t ref, ver;
	struct run x;
	pid_t w0;
	int n;

	(void)state;
	run_up(&x, "cakill");
	assert_int_equal(shoal_client_join(x.c, "g"), 0);
	n = snprintf(req, sizeof(req), "P 60000 g lr 10 %u 0", SHOAL_RULE_MAJORITY);
	assert_int_equal(shoal_client_call_async(x.c, x.rounder, 1, req, (uint32_t)n, &ref), 0);
	wait_claimed(x.cl.seg, x.lr);
	w0 = rt_slot_pid(x.cl.seg, 1);
	assert_true(w0 > 0);
	rt_kill_and_wait(w0);
	WAIT_FOR(x.cl.seg, shm_round_in_use(x.cl.seg) == 0 && !shm_var_proposal(x.cl.seg, x.lr));
	assert_int_equal(shm_var_check(x.cl.seg, err, sizeof(err)), 0);
	assert_int_equal(lr_value(&x, &ver), 0);
	assert_int_equal(ver, 0);
	assert_int_equal(shoal_client_leave(x.c, "g"), 0);
	WAIT_FOR(x.cl.seg,
		 rt_slot_pid(x.cl.seg, 1) != w0 && rt_slot_pid(x.cl.seg, 1) > 0 &&
			 atomic_load(&shm_proc_at(x.cl.seg, 1)->state) == SHM_PROC_RUNNING);
	assert_int_equal(propose(&x, "lr", 20, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS, &res), 0);
	assert_int_equal(res.version, 1);
	run_down(&x);
}

/* What a subscriber's inbox got: counts by type and subscription, and the last outcome note. */
struct heard {
	uint32_t var[2];	       /* SHOAL_T_VAR notes, per subscription (exact, prefix) */
	uint32_t cons[2];	       /* SHOAL_T_CONSENSUS notes, per subscription */
	struct shoal_consensus_note n; /* the last consensus note */
	int64_t value;		       /* its value */
};

/* Receive n messages into *h: each one a variable or consensus note of sub[0] or sub[1]. */
static void hear(struct shoal_client *c, const uint64_t sub[2], uint32_t n, struct heard *h)
{
	memset(h, 0, sizeof(*h));
	for (uint32_t i = 0; i < n; i++) {
		struct shoal_msg m;
		uint8_t buf[512];
		uint32_t k;

		assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS), 0);
		assert_true(m.flags & SHOAL_MSG_SYSTEM);
		assert_true(m.ref == sub[0] || m.ref == sub[1]);
		k = m.ref == sub[1];
		if (m.type == SHOAL_T_VAR) {
			h->var[k]++;
			continue;
		}
		assert_int_equal(m.type, SHOAL_T_CONSENSUS);
		assert_int_equal(m.len, sizeof(h->n) + 8);
		memcpy(&h->n, buf, sizeof(h->n));
		memcpy(&h->value, buf + sizeof(h->n), 8);
		assert_int_equal(h->n.sub, m.ref);
		h->cons[k]++;
	}
}

/*
 * The subscribers of a proposal's variable (one exact and one prefix subscription) hear each
 * outcome: a rejection as one SHOAL_T_CONSENSUS note per subscription with the proposed
 * value and the tally, and no variable note; a commit as that note and the variable's own
 * SHOAL_T_VAR note. Both for a client's proposal and an agent's.
 */
static void test_consensus_subscribers(void **state)
{
	struct shoal_proposal_result r;
	struct shoal_client *sc;
	char err[256];
	uint64_t sub[2];
	struct heard h;
	struct run x;

	(void)state;
	run_up(&x, "csubs");
	assert_int_equal(shoal_client_open(x.r.inst, &sc, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_var_subscribe(sc, "lr", 0, &sub[0]), 0);
	assert_int_equal(shoal_client_var_subscribe(sc, "l", SHOAL_VAR_SUB_PREFIX, &sub[1]), 0);

	/* a client's proposal, rejected (35: 4 yes of 8) */
	assert_int_equal(propose(&x, "lr", 35, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS, &r), -ECANCELED);
	hear(sc, sub, 2, &h);
	assert_int_equal(h.cons[0], 1);
	assert_int_equal(h.cons[1], 1);
	assert_int_equal(h.var[0] + h.var[1], 0);
	assert_int_equal(h.n.var, x.lr);
	assert_int_equal(h.n.outcome, SHOAL_PROPOSAL_REJECTED);
	assert_int_equal(h.n.proposer, shoal_client_inbox(x.c));
	assert_int_equal(h.n.version, 0);
	assert_int_equal(h.n.members, 8);
	assert_int_equal(h.n.yes, 4);
	assert_int_equal(h.n.no, 4);
	assert_int_equal(h.n.type, SHOAL_VAR_INT);
	assert_int_equal(h.n.len, 8);
	assert_int_equal(h.n.value_len, 8);
	assert_int_equal(h.value, 35);

	/* committed (25: 5 yes): the outcome and the variable's own note */
	assert_int_equal(propose(&x, "lr", 25, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS, &r), 0);
	hear(sc, sub, 4, &h);
	assert_int_equal(h.cons[0], 1);
	assert_int_equal(h.cons[1], 1);
	assert_int_equal(h.var[0], 1);
	assert_int_equal(h.var[1], 1);
	assert_int_equal(h.n.outcome, SHOAL_PROPOSAL_COMMITTED);
	assert_int_equal(h.n.version, 1);
	assert_int_equal(h.value, 25);

	/* an agent's proposal: rejected, then committed */
	r = agent_propose(&x, 40, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS);
	assert_int_equal(r.outcome, SHOAL_PROPOSAL_REJECTED);
	hear(sc, sub, 2, &h);
	assert_int_equal(h.cons[0] + h.cons[1], 2);
	assert_int_equal(h.n.outcome, SHOAL_PROPOSAL_REJECTED);
	assert_int_equal(h.n.proposer, x.rounder);
	assert_int_equal(h.n.version, 1);
	assert_int_equal(h.value, 40);
	r = agent_propose(&x, 10, SHOAL_RULE_MAJORITY, 0, TIMEOUT_MS);
	assert_int_equal(r.outcome, SHOAL_PROPOSAL_COMMITTED);
	hear(sc, sub, 4, &h);
	assert_int_equal(h.cons[0] + h.cons[1], 2);
	assert_int_equal(h.var[0] + h.var[1], 2);
	assert_int_equal(h.n.outcome, SHOAL_PROPOSAL_COMMITTED);
	assert_int_equal(h.n.version, 2);
	assert_int_equal(h.value, 10);
	shoal_client_close(sc);
	run_down(&x);
}

/* shoal propose: the outcome and tally; exit 0 committed, 1 rejected, 2 bad input. */
static void test_consensus_tool(void **state)
{
	const char *ok[] = {"propose", "lr", "25", "--group", "g", NULL};
	const char *unan[] = {"propose", "lr", "30", "--group", "g", "--rule", "unanimous", NULL};
	const char *quorum[] = {"propose", "lr", "30", "--group", "g", "--rule", "quorum:5", NULL};
	const char *badrule[] = {"propose", "lr", "1", "--group", "g", "--rule", "most", NULL};
	const char *badval[] = {"propose", "lr", "x1", "--group", "g", NULL};
	const char *nogroup[] = {"propose", "lr", "1", "--group", "nog", NULL};
	const char *novar[] = {"propose", "nosuch", "1", "--group", "g", NULL};
	const char *nogrp[] = {"propose", "lr", "1", NULL};
	char out[2048];
	uint64_t ver;
	struct run x;

	(void)state;
	run_up(&x, "ctool");
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), ok), 0);
	assert_non_null(strstr(out, "lr: committed: 8 members: 5 yes, 3 no, 0 dead, 0 absent"));
	assert_non_null(strstr(out, "version 1"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), unan), 1);
	assert_non_null(strstr(out, "lr: rejected: 8 members: 5 yes, 3 no"));
	assert_int_equal(lr_value(&x, &ver), 25);
	assert_int_equal(ver, 1);
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), quorum), 0);
	assert_int_equal(lr_value(&x, &ver), 30);
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), badrule), 2);
	assert_non_null(strstr(out, "quorum:N"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), badval), 2);
	assert_non_null(strstr(out, "not an integer"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), nogroup), 2);
	assert_non_null(strstr(out, "no group 'nog'"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), novar), 2);
	assert_non_null(strstr(out, "no variable 'nosuch'"));
	assert_int_equal(rt_run_tool(x.r.inst, out, sizeof(out), nogrp), 2);
	assert_int_equal(shm_round_in_use(x.cl.seg), 0);
	run_down(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_consensus_record_votes),
		cmocka_unit_test(test_consensus_record_threads),
		cmocka_unit_test(test_consensus_record_stale_claim),
		cmocka_unit_test_teardown(test_consensus_rules, rt_teardown),
		cmocka_unit_test_teardown(test_consensus_concurrent, rt_teardown),
		cmocka_unit_test_teardown(test_consensus_proposer_killed, rt_teardown),
		cmocka_unit_test_teardown(test_consensus_voter_worker_killed, rt_teardown),
		cmocka_unit_test_teardown(test_consensus_agent, rt_teardown),
		cmocka_unit_test_teardown(test_consensus_agent_worker_killed, rt_teardown),
		cmocka_unit_test_teardown(test_consensus_subscribers, rt_teardown),
		cmocka_unit_test_teardown(test_consensus_tool, rt_teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
