/*
 * test_var: coordination variables: each operation and error, batches and compare-and-set,
 * writers killed at every step (old or new, never between, never stuck), torn reads under
 * batches from several processes, and threads over one mapping (for ThreadSanitizer).
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
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/ipc_test_util.h"
#include "tests/skip.h"
#include "tests/run_test_util.h"
#include "tests/support.h"
#include "shm/registry.h"
#include "shm/shm.h"
#include "shm/var.h"
#include "shm/var_int.h"
#include "shoal/agent.h"
#include "shoal/client.h"
#include "workers/wrk_int.h"

#define NVARS  32u
#define VBYTES 64u

static char inst[64];
static pid_t test_pid; /* the test process: forked children exit if it is gone */

static int setup(void **state)
{
	(void)state;
	snprintf(inst, sizeof(inst), "t-var-%d", (int)getpid());
	shm_seg_unlink(inst);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shm_seg_unlink(inst);
	return 0;
}

static struct shm_seg *make_seg_sized(uint32_t vbytes)
{
	struct shm_cfg cfg;

	shm_cfg_default(&cfg);
	cfg.max_agents = 16;
	cfg.reg_capacity = 256;
	cfg.max_groups = 4;
	cfg.group_members = 4;
	cfg.max_monitors = 16;
	cfg.max_vars = NVARS;
	cfg.var_bytes = vbytes;
	return ts_seg_make(inst, &cfg, SHM_ROLE_SUPERVISOR);
}

static struct shm_seg *make_seg(void)
{
	return make_seg_sized(VBYTES);
}

static void done_seg(struct shm_seg *seg)
{
	ts_seg_drop(seg, inst);
}

static uint64_t mk(struct shm_seg *seg, const char *name, uint32_t type)
{
	uint64_t id = 0;

	assert_int_equal(shm_var_create(seg, 0, name, strlen(name), type, &id), 0);
	assert_true(SHM_VAR_ID_IS_VAR(id));
	return id;
}

static int set_int(struct shm_seg *seg, uint64_t id, int64_t v, uint64_t expect, uint64_t *cur)
{
	struct shm_var_op op = {
		.id = id, .type = SHM_VAR_INT, .len = 8, .data = &v, .expect = expect};

	return shm_var_update(seg, &op, 1, 7, cur, NULL);
}

static int64_t get_int(const struct shm_seg *seg, uint64_t id, uint64_t *version)
{
	struct shm_var_val val = {0};

	assert_int_equal(shm_var_read(seg, id, &val), 0);
	assert_int_equal(val.type, SHM_VAR_INT);
	if (version)
		*version = val.version;
	return val.num.i;
}

static void assert_check(const struct shm_seg *seg)
{
	char err[256] = "";

	if (shm_var_check(seg, err, sizeof(err)))
		fail_msg("var check: %s", err);
}

/* Create, look up, read and update each type; the writer's handle, tag and time are kept. */
static void test_var_basic(void **state)
{
	struct shm_seg *seg = make_seg();
	uint64_t i = mk(seg, "lr.int", SHM_VAR_INT), d = mk(seg, "lr", SHM_VAR_DOUBLE);
	uint64_t b = mk(seg, "note", SHM_VAR_BLOB), got, ver, t0 = shm_wall_ns();
	struct shm_var_op op;
	struct shm_var_val val = {0};
	char buf[VBYTES];
	double x = 0.125;

	(void)state;
	assert_int_equal(shm_var_lookup(seg, 0, "lr", 2, &got), 0);
	assert_int_equal(got, d);
	assert_int_equal(get_int(seg, i, &ver), 0);
	assert_int_equal(ver, 0);
	assert_int_equal(set_int(seg, i, -42, SHM_VAR_ANY, NULL), 0);
	assert_int_equal(get_int(seg, i, &ver), -42);
	assert_int_equal(ver, 1);
	assert_int_equal(shm_var_read_name(seg, 0, "lr.int", 6, &val), 0);
	assert_int_equal(val.num.i, -42);
	assert_int_equal(val.writer, 7);
	assert_int_equal(val.wtag, seg->tag);
	assert_true(val.time_ns >= t0 && val.time_ns <= shm_wall_ns());
	op = (struct shm_var_op){
		.id = d, .type = SHM_VAR_DOUBLE, .len = 8, .data = &x, .expect = SHM_VAR_ANY};
	assert_int_equal(shm_var_update(seg, &op, 1, 0, NULL, NULL), 0);
	assert_int_equal(shm_var_read(seg, d, &val), 0);
	assert_true(val.type == SHM_VAR_DOUBLE && val.num.d == 0.125 && val.version == 1);
	op = (struct shm_var_op){.id = b,
				 .type = SHM_VAR_BLOB,
				 .len = 11,
				 .data = "hello world",
				 .expect = SHM_VAR_ANY};
	assert_int_equal(shm_var_update(seg, &op, 1, 0, NULL, NULL), 0);
	val = (struct shm_var_val){.buf = buf, .cap = sizeof(buf)};
	assert_int_equal(shm_var_read(seg, b, &val), 0);
	assert_true(val.type == SHM_VAR_BLOB && val.len == 11 && !memcmp(buf, "hello world", 11));
	/* a shorter value after a longer one: its own length */
	op.len = 2;
	op.data = "ok";
	assert_int_equal(shm_var_update(seg, &op, 1, 0, NULL, NULL), 0);
	assert_int_equal(shm_var_read(seg, b, &val), 0);
	assert_true(val.len == 2 && !memcmp(buf, "ok", 2) && val.version == 2);
	assert_int_equal(shm_var_notify_seq(seg, b), 2);
	assert_check(seg);
	done_seg(seg);
}

static int count_visit(uint64_t id, uint32_t ns, const char *name, uint32_t type, void *arg)
{
	(void)id;
	(void)ns;
	(void)type;
	(void)name;
	++*(int *)arg;
	return 0;
}

/* Each error says what is wrong and changes nothing. */
static void test_var_errors(void **state)
{
	struct shm_seg *seg = make_seg(), *ro = NULL;
	uint64_t i = mk(seg, "n", SHM_VAR_INT), b = mk(seg, "b", SHM_VAR_BLOB), got = 1;
	struct shm_var_val val = {0};
	struct shm_var_op op;
	char big[VBYTES + 8], small[4], err[256];
	uint32_t bad = 99;
	double x = 1.5;
	int n = 0;

	(void)state;
	memset(big, 'x', sizeof(big));
	/* unknown names and ids */
	assert_int_equal(shm_var_lookup(seg, 0, "nope", 4, &got), -ENOENT);
	assert_int_equal(shm_var_read_name(seg, 0, "nope", 4, &val), -ENOENT);
	assert_int_equal(shm_var_read(seg, i ^ (1ull << 32), &val), -ENOENT); /* other gen */
	assert_int_equal(shm_var_read(seg, 5, &val), -ENOENT);		      /* an agent handle */
	/* an agent's name is not a variable, and cannot become one */
	assert_int_equal(shm_reg_register(seg, 0, "agent", 5, shoal_handle_make(3, 1), NULL), 0);
	assert_int_equal(shm_var_lookup(seg, 0, "agent", 5, &got), -ENOENT);
	assert_int_equal(shm_var_create(seg, 0, "agent", 5, SHM_VAR_INT, &got), -EEXIST);
	assert_int_equal(got, 0);
	/* a second create of a name: -EEXIST with the variable's id */
	assert_int_equal(shm_var_create(seg, 0, "n", 1, SHM_VAR_DOUBLE, &got), -EEXIST);
	assert_int_equal(got, i);
	assert_int_equal(shm_var_create(seg, 0, "", 0, SHM_VAR_INT, &got), -EINVAL);
	assert_int_equal(shm_var_create(seg, 0, "t", 1, 9, &got), -EINVAL);
	/* type mismatch, size, duplicates */
	op = (struct shm_var_op){
		.id = i, .type = SHM_VAR_DOUBLE, .len = 8, .data = &x, .expect = SHM_VAR_ANY};
	assert_int_equal(shm_var_update(seg, &op, 1, 0, NULL, &bad), -EPROTOTYPE);
	assert_int_equal(bad, 0);
	op = (struct shm_var_op){.id = b,
				 .type = SHM_VAR_BLOB,
				 .len = VBYTES + 1,
				 .data = big,
				 .expect = SHM_VAR_ANY};
	assert_int_equal(shm_var_update(seg, &op, 1, 0, NULL, NULL), -EMSGSIZE);
	op.len = VBYTES; /* the largest fits */
	assert_int_equal(shm_var_update(seg, &op, 1, 0, NULL, NULL), 0);
	val = (struct shm_var_val){.buf = small, .cap = sizeof(small)};
	assert_int_equal(shm_var_read(seg, b, &val), -EMSGSIZE);
	assert_int_equal(val.len, VBYTES);
	{
		int64_t v = 1;
		struct shm_var_op two[2] = {
			{.id = i, .type = SHM_VAR_INT, .len = 8, .data = &v, .expect = SHM_VAR_ANY},
			{.id = i, .type = SHM_VAR_INT, .len = 8, .data = &v, .expect = SHM_VAR_ANY},
		};

		assert_int_equal(shm_var_update(seg, two, 2, 0, NULL, NULL), -EINVAL);
		two[1].len = 4;
		two[1].id = b;
		assert_int_equal(shm_var_update(seg, two, 2, 0, NULL, &bad), -EPROTOTYPE);
		assert_int_equal(bad, 1);
		assert_int_equal(shm_var_update(seg, two, 0, 0, NULL, NULL), -EINVAL);
	}
	assert_int_equal(get_int(seg, i, NULL), 0); /* nothing changed */
	/* a full table */
	for (int k = 0; k < (int)NVARS - 2; k++) {
		char name[16];

		snprintf(name, sizeof(name), "v%d", k);
		mk(seg, name, SHM_VAR_INT);
	}
	assert_int_equal(shm_var_create(seg, 0, "one-more", 8, SHM_VAR_INT, &got), -ENOSPC);
	assert_int_equal(shm_var_foreach(seg, count_visit, &n), 0);
	assert_int_equal(n, NVARS);
	/* a read-only attachment reads, and may not write */
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)), 0);
	assert_int_equal(get_int(ro, i, NULL), 0);
	assert_int_equal(set_int(ro, i, 5, SHM_VAR_ANY, NULL), -EROFS);
	shm_seg_detach(ro);
	assert_check(seg);
	done_seg(seg);
}

/* Compare-and-set: the expected version wins once; a stale one gets -EBUSY and the current. */
static void test_var_cas(void **state)
{
	struct shm_seg *seg = make_seg();
	uint64_t i = mk(seg, "c", SHM_VAR_INT), j = mk(seg, "d", SHM_VAR_INT), cur = 0, ver;
	int64_t one = 1, two = 2;
	struct shm_var_op ops[2] = {
		{.id = i, .type = SHM_VAR_INT, .len = 8, .data = &one, .expect = 1},
		{.id = j, .type = SHM_VAR_INT, .len = 8, .data = &two, .expect = 0},
	};
	uint32_t bad = 9;

	(void)state;
	assert_int_equal(set_int(seg, i, 10, 0, &cur), 0);
	assert_int_equal(set_int(seg, i, 11, 0, &cur), -EBUSY);
	assert_int_equal(cur, 1);
	assert_int_equal(get_int(seg, i, &ver), 10);
	assert_int_equal(ver, 1);
	/* in a batch: one stale op and nothing changes */
	ops[1].expect = 5;
	assert_int_equal(shm_var_update(seg, ops, 2, 0, &cur, &bad), -EBUSY);
	assert_int_equal(cur, 0);
	assert_int_equal(bad, 1);
	assert_int_equal(get_int(seg, i, NULL), 10);
	assert_int_equal(get_int(seg, j, NULL), 0);
	ops[1].expect = 0;
	assert_int_equal(shm_var_update(seg, ops, 2, 0, &cur, &bad), 0);
	assert_int_equal(get_int(seg, i, &ver), 1);
	assert_int_equal(ver, 2);
	assert_int_equal(get_int(seg, j, &ver), 2);
	assert_int_equal(ver, 1);
	done_seg(seg);
}

/* A batch: every variable one version step, read together by shm_var_read_many(). */
static void test_var_batch(void **state)
{
	struct shm_seg *seg = make_seg();
	struct shm_var_op ops[SHM_VAR_MANY];
	struct shm_var_val out[SHM_VAR_MANY];
	uint64_t ids[SHM_VAR_MANY];
	int64_t vals[SHM_VAR_MANY];
	char name[16];

	(void)state;
	for (uint32_t k = 0; k < SHM_VAR_MANY; k++) {
		snprintf(name, sizeof(name), "b%u", k);
		/* created in reverse so index order is not op order */
		ids[SHM_VAR_MANY - 1 - k] = mk(seg, name, SHM_VAR_INT);
	}
	for (int round = 1; round <= 3; round++) {
		for (uint32_t k = 0; k < SHM_VAR_MANY; k++) {
			vals[k] = round * 100 + k;
			ops[k] = (struct shm_var_op){.id = ids[k],
						     .type = SHM_VAR_INT,
						     .len = 8,
						     .data = &vals[k],
						     .expect = SHM_VAR_ANY};
		}
		assert_int_equal(shm_var_update(seg, ops, SHM_VAR_MANY, 3, NULL, NULL), 0);
		memset(out, 0, sizeof(out));
		assert_int_equal(shm_var_read_many(seg, ids, SHM_VAR_MANY, out), 0);
		for (uint32_t k = 0; k < SHM_VAR_MANY; k++) {
			assert_int_equal(out[k].num.i, round * 100 + (int)k);
			assert_int_equal(out[k].version, round);
			assert_int_equal(out[k].writer, 3);
		}
	}
	assert_int_equal(shm_var_read_many(seg, ids, SHM_VAR_MANY + 1, out), -EINVAL);
	assert_int_equal(shm_var_update(seg, ops, SHM_VAR_MANY + 1, 0, NULL, NULL), -EINVAL);
	assert_check(seg);
	done_seg(seg);
}

static void child_claim(struct shm_seg *seg);

/*
 * The agents' API over shm/var.c: the agent is the writer; a batch and compare-and-set; and
 * a callback never waits on a live writer's lock for more than a moment (-EAGAIN).
 */
static void test_var_agent_api(void **state)
{
	struct shm_seg *seg = make_seg();
	struct wrk_agent wa = {.slot = 3, .handle = shoal_handle_make(3, 1)};
	struct shoal_ctx ctx = {.seg = seg, .agent = &wa};
	struct shoal_var_value val = {0}, many[2];
	shoal_var_t lr, bs, got;
	uint64_t cur = 0, t0;
	double x = 0.5;
	int64_t n = 64;
	int pfd[2], gfd[2];
	pid_t pid;

	(void)state;
	assert_int_equal(shoal_var_create(&ctx, "lr", SHOAL_VAR_DOUBLE, &lr), 0);
	assert_int_equal(shoal_var_create(&ctx, "bs", SHOAL_VAR_INT, &bs), 0);
	assert_int_equal(shoal_var_create(&ctx, "lr", SHOAL_VAR_INT, &got), -EEXIST);
	assert_int_equal(got, lr);
	assert_int_equal(shoal_var_lookup(&ctx, "bs", &got), 0);
	assert_int_equal(got, bs);
	assert_int_equal(shoal_var_set_double(&ctx, lr, 0.25), 0);
	assert_int_equal(shoal_var_read_name(&ctx, "lr", &val), 0);
	assert_true(val.type == SHOAL_VAR_DOUBLE && val.num.d == 0.25 && val.version == 1);
	assert_int_equal(val.writer, wa.handle);
	assert_int_equal(shoal_var_set_int(&ctx, lr, 1), -EPROTOTYPE);
	{
		struct shoal_var_set sets[2] = {
			{.var = lr, .type = SHOAL_VAR_DOUBLE, .len = 8, .data = &x, .expect = 1},
			{.var = bs, .type = SHOAL_VAR_INT, .len = 8, .data = &n, .expect = 0},
		};
		shoal_var_t both[2] = {lr, bs};

		assert_int_equal(shoal_var_update(&ctx, sets, 2, &cur), 0);
		assert_int_equal(shoal_var_update(&ctx, sets, 2, &cur), -EBUSY);
		assert_int_equal(cur, 2);
		memset(many, 0, sizeof(many));
		assert_int_equal(shoal_var_read_many(&ctx, both, 2, many), 0);
		assert_true(many[0].num.d == 0.5 && many[0].version == 2);
		assert_true(many[1].num.i == 64 && many[1].version == 1);
	}
	/* a live writer holds bs: the callback is told -EAGAIN at once, not made to wait */
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(pipe(gfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;

		child_claim(seg);
		(void)!write(pfd[1], &seg->tag, sizeof(seg->tag));
		(void)!read(gfd[0], &c, 1); /* until the test is done with us */
		_exit(0);
	}
	{
		uint64_t tag = 0;
		struct shm_var *v;

		assert_int_equal(read(pfd[0], &tag, sizeof(tag)), (ssize_t)sizeof(tag));
		v = (struct shm_var *)((uint8_t *)shm_region(seg, SHM_R_VARS) +
				       SHM_VAR_VARS_OFF(shm_hdr(seg)->cfg.max_procs, VBYTES) +
				       SHM_VAR_ID_INDEX(bs) * SHM_VAR_STRIDE(VBYTES));
		atomic_store(&v->lock, tag);
		t0 = shm_now_ns();
		assert_int_equal(shoal_var_set_int(&ctx, bs, 1), -EAGAIN);
		assert_true(shm_now_ns() - t0 < 5000000); /* 20 us budget, with room for a VM */
		/* readers are not held up by it */
		assert_int_equal(shoal_var_read(&ctx, bs, &val), 0);
		assert_int_equal(val.num.i, 64);
		atomic_store(&v->lock, 0);
	}
	assert_int_equal(write(gfd[1], "x", 1), 1);
	assert_true(it_ok(it_wait_child(pid, 10000)));
	close(pfd[0]);
	close(pfd[1]);
	close(gfd[0]);
	close(gfd[1]);
	assert_int_equal(shoal_var_set_int(&ctx, bs, 1), 0);
	done_seg(seg);
}

static struct shm_var *var_ptr(const struct shm_seg *seg, uint64_t id)
{
	const struct shm_cfg *cfg = &shm_hdr(seg)->cfg;

	return (struct shm_var *)((uint8_t *)shm_region(seg, SHM_R_VARS) +
				  SHM_VAR_VARS_OFF(cfg->max_procs, cfg->var_bytes) +
				  SHM_VAR_ID_INDEX(id) * SHM_VAR_STRIDE(cfg->var_bytes));
}

/*
 * A corrupt variable never hangs a reader or a writer: a buffer that disagrees with the
 * published word is -EUCLEAN; a lock of a dead tag whose committed record does not name the
 * variable is released by the next writer.
 */
static void test_var_corrupt(void **state)
{
	struct shm_seg *seg = make_seg();
	uint64_t id = mk(seg, "c", SHM_VAR_INT), dead = SHM_TAG(7, 12345);
	struct shm_var *v = var_ptr(seg, id);
	struct shm_var_buf *b = (struct shm_var_buf *)(v + 1);
	const struct shm_cfg *cfg = &shm_hdr(seg)->cfg;
	struct shm_var_rec *rec =
		(struct shm_var_rec *)((uint8_t *)shm_region(seg, SHM_R_VARS) + SHM_VAR_RECS_OFF +
				       7 * SHM_VAR_REC_BYTES(cfg->var_bytes));
	struct shm_var_val val = {0};

	(void)state;
	atomic_store(&b->version, 5);
	assert_int_equal(shm_var_read(seg, id, &val), -EUCLEAN);
	atomic_store(&b->version, 0);
	assert_int_equal(get_int(seg, id, NULL), 0);
	/* slot 7 never ran epoch 12345: its tag is dead; its record claims a batch without c */
	atomic_store(&rec->tag, dead);
	atomic_store(&rec->count, 0);
	atomic_store(&rec->ctl, SHM_VAR_REC_CTL(1, SHM_VAR_REC_COMMITTED));
	atomic_store(&v->lock, dead);
	assert_int_equal(get_int(seg, id, NULL), 0); /* readers: the buffer's value */
	assert_int_equal(set_int(seg, id, 3, SHM_VAR_ANY, NULL), 0);
	assert_int_equal(get_int(seg, id, NULL), 3);
	assert_int_equal(atomic_load(&v->lock), 0);
	done_seg(seg);
}

/* --- writers killed at each step --- */

static int kill_at;
static int kill_count;

static void kill_hook(int step)
{
	if (step == kill_at && --kill_count <= 0)
		raise(SIGKILL);
}

/* Make the calling (child) process a writer with its own slot; it dies with the test. */
static void child_claim(struct shm_seg *seg)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != test_pid)
		_exit(91);
	seg->self = UINT32_MAX;
	if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
		_exit(90);
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
}

/* What the supervisor does after a death: mark DEAD, repair, mark EXITED. */
static int bury(struct shm_seg *seg, uint32_t slot)
{
	struct shm_proc *p = shm_proc_at(seg, slot);
	int n;

	atomic_store(&p->state, SHM_PROC_DEAD);
	n = shm_var_repair(seg, slot);
	assert_true(n >= 0);
	assert_int_equal(shm_reg_repair(seg, slot) >= 0, 1);
	atomic_store(&p->state, SHM_PROC_EXITED);
	return n;
}

#define BATCH 3u

/* Set every one of ids[0..n) to v: one batch (n > 1) or one update. Returns the result. */
static int set_all(struct shm_seg *seg, const uint64_t *ids, uint32_t n, int64_t v)
{
	struct shm_var_op ops[SHM_VAR_MANY];

	for (uint32_t k = 0; k < n; k++)
		ops[k] = (struct shm_var_op){.id = ids[k],
					     .type = SHM_VAR_INT,
					     .len = 8,
					     .data = &v,
					     .expect = SHM_VAR_ANY};
	return shm_var_update(seg, ops, n, 0, NULL, NULL);
}

/*
 * Fork a writer that sets ids[0..n) to v and kills itself at step (occurrence nth), or
 * does fn instead when given. Returns its slot once it is dead, UINT32_MAX if it finished.
 */
static uint32_t run_victim(struct shm_seg *seg, const uint64_t *ids, uint32_t n, int64_t v,
			   int step, int nth)
{
	_Atomic uint32_t *slot =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t s;
	pid_t pid;
	int wst;

	assert_true(slot != MAP_FAILED);
	atomic_store(slot, UINT32_MAX);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		child_claim(seg);
		atomic_store(slot, seg->self);
		kill_at = step;
		kill_count = nth;
		shm_var_test_hook = kill_hook;
		_exit(set_all(seg, ids, n, v) ? 2 : 0);
	}
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	s = atomic_load(slot);
	munmap((void *)slot, 4096);
	assert_true(s != UINT32_MAX);
	if (WIFEXITED(wst)) {
		assert_int_equal(WEXITSTATUS(wst), 0);
		atomic_store(&shm_proc_at(seg, s)->state, SHM_PROC_EXITED);
		return UINT32_MAX;
	}
	assert_true(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
	return s;
}

/* All of ids[0..n) read together equal want, each at version want_ver. */
static void expect_all(const struct shm_seg *seg, const uint64_t *ids, uint32_t n, int64_t want,
		       uint64_t want_ver, const char *when)
{
	struct shm_var_val out[SHM_VAR_MANY];

	memset(out, 0, sizeof(out));
	assert_int_equal(shm_var_read_many(seg, ids, n, out), 0);
	for (uint32_t k = 0; k < n; k++) {
		struct shm_var_val one = {0};

		if (out[k].num.i != want || out[k].version != want_ver)
			fail_msg("%s: variable %u reads %lld version %llu, want %lld version %llu",
				 when, k, (long long)out[k].num.i,
				 (unsigned long long)out[k].version, (long long)want,
				 (unsigned long long)want_ver);
		assert_int_equal(shm_var_read(seg, ids[k], &one), 0);
		assert_int_equal(one.num.i, want);
	}
}

struct crash_case {
	int step;
	int nth;
	bool committed; /* dead at or after the commit point: the new value must show */
};

/*
 * For an update of n variables killed at each step: before any repair, readers see all old
 * or all new (new from the commit point on); the next writer proceeds at once (it resolves
 * the dead lock); with the supervisor's repair instead, the same, and nothing is left held.
 */
static void crash_steps(uint32_t n, const struct crash_case *cases, size_t ncases)
{
	struct shm_seg *seg = make_seg();
	uint64_t ids[BATCH];
	int64_t val = 0;
	uint64_t ver = 0;

	for (uint32_t k = 0; k < n; k++) {
		char name[16];

		snprintf(name, sizeof(name), "x%u", k);
		ids[k] = mk(seg, name, SHM_VAR_INT);
	}
	for (size_t c = 0; c < ncases; c++) {
		for (int repair = 0; repair < 2; repair++) {
			const struct crash_case *cc = &cases[c];
			char when[96];
			uint32_t slot;

			snprintf(when, sizeof(when), "%u variable(s), killed at step %d (#%d)%s", n,
				 cc->step, cc->nth, repair ? ", repaired" : "");
			slot = run_victim(seg, ids, n, val + 1, cc->step, cc->nth);
			if (slot == UINT32_MAX)
				fail_msg("%s: the writer never reached the step", when);
			if (cc->committed) {
				val++;
				ver++;
			}
			/* readers: before anyone repairs anything */
			expect_all(seg, ids, n, val, ver, when);
			if (repair) {
				bury(seg, slot);
				assert_check(seg);
				expect_all(seg, ids, n, val, ver, when);
			}
			/* the next writer proceeds (meeting the dead lock without a repair) */
			assert_int_equal(set_all(seg, ids, n, val + 1), 0);
			val++;
			ver++;
			expect_all(seg, ids, n, val, ver, when);
			if (!repair)
				bury(seg, slot);
			assert_check(seg);
		}
	}
	done_seg(seg);
}

static void test_var_crash_steps_single(void **state)
{
	static const struct crash_case cases[] = {
		{SHM_VAR_STEP_LOCKED, 1, false},
		{SHM_VAR_STEP_BUFFER, 1, false},
		{SHM_VAR_STEP_APPLIED, 1, true},
		{SHM_VAR_STEP_UNLOCKED, 1, true},
	};

	(void)state;
	need_test_hooks();
	crash_steps(1, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_var_crash_steps_batch(void **state)
{
	static const struct crash_case cases[] = {
		{SHM_VAR_STEP_LOCKED, 1, false},  {SHM_VAR_STEP_LOCKED, 3, false},
		{SHM_VAR_STEP_WRITING, 1, false}, {SHM_VAR_STEP_COMMITTED, 1, true},
		{SHM_VAR_STEP_BUFFER, 1, true},	  {SHM_VAR_STEP_BUFFER, 2, true},
		{SHM_VAR_STEP_APPLIED, 1, true},  {SHM_VAR_STEP_APPLIED, 2, true},
		{SHM_VAR_STEP_APPLIED, 3, true},  {SHM_VAR_STEP_UNLOCKED, 1, true},
		{SHM_VAR_STEP_UNLOCKED, 3, true}, {SHM_VAR_STEP_DONE, 1, true},
	};

	(void)state;
	need_test_hooks();
	crash_steps(BATCH, cases, sizeof(cases) / sizeof(cases[0]));
}

/*
 * A writer that finishes a dead writer's committed batch dies too, at each step of that:
 * the values stay new for readers, and a third writer (or the repair of both) finishes.
 */
/*
 * A writer that dies holding a variable's lock is judged dead before any deadline: an update
 * with no wait at all (an agent's in a loaded machine, whose 20 us pass in one yield) still
 * resolves the dead lock instead of reporting a live holder (-EAGAIN). Before the fix the
 * kernel was asked only every 256 spins, after the deadline's check.
 */
static void test_var_dead_lock_zero_wait(void **state)
{
	struct shm_seg *seg = make_seg();
	uint64_t id = mk(seg, "held", SHM_VAR_INT), cur = 0;
	int64_t v = 7;
	struct shm_var_op op = {
		.id = id, .type = SHM_VAR_INT, .len = 8, .data = &v, .expect = SHM_VAR_ANY};
	struct shm_var_val out = {0};

	(void)state;
	need_test_hooks();
	assert_true(run_victim(seg, &id, 1, 5, SHM_VAR_STEP_LOCKED, 1) != UINT32_MAX);
	assert_int_equal(shm_var_update_wait(seg, &op, 1, 0, 0, &cur, NULL), 0);
	assert_int_equal(shm_var_read(seg, id, &out), 0);
	assert_int_equal(out.num.i, 7);
	done_seg(seg);
}

static void test_var_crash_helper(void **state)
{
	static const struct crash_case helper_cases[] = {
		{SHM_VAR_STEP_HELPING, 1, true},
		{SHM_VAR_STEP_BUFFER, 1, true},
		{SHM_VAR_STEP_BUFFER, 2, true},
		{SHM_VAR_STEP_BUFFER, 3, true},
	};
	struct shm_seg *seg = make_seg();
	uint64_t ids[BATCH];
	int64_t val = 0;
	uint64_t ver = 0;

	(void)state;
	need_test_hooks();
	for (uint32_t k = 0; k < BATCH; k++) {
		char name[16];

		snprintf(name, sizeof(name), "h%u", k);
		ids[k] = mk(seg, name, SHM_VAR_INT);
	}
	for (size_t c = 0; c < sizeof(helper_cases) / sizeof(helper_cases[0]); c++) {
		for (int repair = 0; repair < 2; repair++) {
			char when[96];
			uint32_t first, second;

			snprintf(when, sizeof(when), "helper killed at step %d (#%d)%s",
				 helper_cases[c].step, helper_cases[c].nth,
				 repair ? ", repaired" : "");
			first = run_victim(seg, ids, BATCH, val + 1, SHM_VAR_STEP_COMMITTED, 1);
			assert_true(first != UINT32_MAX);
			val++;
			ver++;
			/* the second writer meets the first's lock, helps, and dies helping */
			second = run_victim(seg, ids, 1, 1000, helper_cases[c].step,
					    helper_cases[c].nth);
			assert_true(second != UINT32_MAX);
			expect_all(seg, ids, BATCH, val, ver, when);
			if (repair) {
				bury(seg, second);
				bury(seg, first);
				assert_check(seg);
				expect_all(seg, ids, BATCH, val, ver, when);
			}
			assert_int_equal(set_all(seg, ids, BATCH, val + 1), 0);
			val++;
			ver++;
			expect_all(seg, ids, BATCH, val, ver, when);
			if (!repair) {
				bury(seg, second);
				bury(seg, first);
			}
			assert_check(seg);
		}
	}
	done_seg(seg);
}

/*
 * A repair by a process without a slot of its own (the supervisor adopting a dead one's
 * segment repairs before it claims slot 0) cannot finish a committed batch: it leaves it for
 * later, and readers still see the new values; a repair with a slot then finishes it.
 */
static void test_var_repair_without_slot(void **state)
{
	struct shm_seg *seg = make_seg(), noslot;
	uint64_t ids[BATCH];
	uint32_t slot;

	(void)state;
	need_test_hooks();
	for (uint32_t k = 0; k < BATCH; k++) {
		char name[16];

		snprintf(name, sizeof(name), "a%u", k);
		ids[k] = mk(seg, name, SHM_VAR_INT);
	}
	slot = run_victim(seg, ids, BATCH, 5, SHM_VAR_STEP_COMMITTED, 1);
	assert_true(slot != UINT32_MAX);
	atomic_store(&shm_proc_at(seg, slot)->state, SHM_PROC_DEAD);
	memcpy(&noslot, seg, sizeof(noslot));
	noslot.self = UINT32_MAX;
	shm_var_repair(&noslot, slot);
	atomic_store(&shm_proc_at(seg, slot)->state, SHM_PROC_EXITED);
	expect_all(seg, ids, BATCH, 5, 1, "after a repair without a slot");
	/* the supervisor, once it holds its slot, repairs every slot again */
	for (uint32_t s = 0; s < shm_hdr(seg)->cfg.max_procs; s++)
		if (s != seg->self)
			shm_var_repair(seg, s);
	assert_check(seg);
	expect_all(seg, ids, BATCH, 5, 1, "after the second repair");
	assert_int_equal(set_all(seg, ids, BATCH, 6), 0);
	expect_all(seg, ids, BATCH, 6, 2, "the next writer");
	done_seg(seg);
}

/* A creator killed before or after its variable goes live: repair frees it; the name is free. */
static void test_var_crash_create(void **state)
{
	static const int steps[] = {SHM_VAR_STEP_CLAIMED, SHM_VAR_STEP_LIVE};
	struct shm_seg *seg = make_seg();

	(void)state;
	need_test_hooks();
	for (size_t c = 0; c < sizeof(steps) / sizeof(steps[0]); c++) {
		_Atomic uint32_t *slot =
			mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		struct shm_var_stats st;
		uint32_t live0;
		uint64_t id;
		pid_t pid;
		int wst;

		assert_true(slot != MAP_FAILED);
		assert_int_equal(shm_var_stats(seg, &st), 0);
		live0 = st.live;
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			child_claim(seg);
			atomic_store(slot, seg->self);
			kill_at = steps[c];
			kill_count = 1;
			shm_var_test_hook = kill_hook;
			shm_var_create(seg, 0, "born", 4, SHM_VAR_INT, &id);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &wst, 0), pid);
		assert_true(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
		assert_int_equal(shm_var_lookup(seg, 0, "born", 4, &id), -ENOENT);
		assert_int_equal(shm_var_stats(seg, &st), 0);
		assert_int_equal(st.live, live0 + (steps[c] == SHM_VAR_STEP_LIVE ? 1 : 0));
		assert_true(bury(seg, atomic_load(slot)) >= 1);
		assert_int_equal(shm_var_stats(seg, &st), 0);
		assert_int_equal(st.live, live0);
		assert_check(seg);
		id = mk(seg, "born", SHM_VAR_INT);
		assert_int_equal(get_int(seg, id, NULL), 0);
		assert_int_equal(shm_reg_unregister(seg, 0, "born", 4, id), 0);
		munmap((void *)slot, 4096);
	}
	done_seg(seg);
}

/* --- torn reads: batches from several processes, readers checking every read --- */

#define TORN_VARS    4u
#define TORN_WRITERS 3
#define TORN_READERS 2
#define TORN_BATCHES 3000

struct torn {
	_Atomic uint32_t stop;
	_Atomic uint64_t batches[TORN_WRITERS];
	_Atomic uint64_t reads[TORN_READERS];
	_Atomic uint32_t bad[TORN_READERS];
	char why[TORN_READERS][160];
};

#define TORN_BYTES 4096u

/*
 * The blob of a batch of value v: 8 bytes of v, then its low byte, TORN_BYTES - v % 64 bytes
 * in all: long, so that a reader's copy takes long enough for writers to lap it.
 */
static uint32_t torn_blob(int64_t v, uint8_t *b)
{
	uint32_t len = TORN_BYTES - (uint32_t)(v % 64);

	memcpy(b, &v, 8);
	memset(b + 8, (int)(v & 0xff), len - 8);
	return len;
}

static void torn_writer(struct shm_seg *seg, const uint64_t *ids, struct torn *t, int w)
{
	static uint8_t blob[TORN_BYTES];

	child_claim(seg);
	/* writer 0 runs until it is killed */
	for (int64_t k = 1; w == 0 || k <= TORN_BATCHES; k++) {
		int64_t v = ((int64_t)(w + 1) << 32) | k;
		struct shm_var_op ops[TORN_VARS];
		uint32_t len = torn_blob(v, blob);
		int r;

		for (uint32_t i = 0; i < TORN_VARS - 1; i++)
			ops[i] = (struct shm_var_op){.id = ids[i],
						     .type = SHM_VAR_INT,
						     .len = 8,
						     .data = &v,
						     .expect = SHM_VAR_ANY};
		ops[TORN_VARS - 1] = (struct shm_var_op){.id = ids[TORN_VARS - 1],
							 .type = SHM_VAR_BLOB,
							 .len = len,
							 .data = blob,
							 .expect = SHM_VAR_ANY};
		while ((r = shm_var_update(seg, ops, TORN_VARS, 0, NULL, NULL)) == -EAGAIN)
			;
		if (r)
			_exit(3);
		atomic_store(&t->batches[w], (uint64_t)k);
	}
	shm_proc_release(seg);
	_exit(0);
}

static void torn_reader(struct shm_seg *seg, const uint64_t *ids, struct torn *t, int rd)
{
	struct shm_var_val out[TORN_VARS];
	static uint8_t blob[TORN_BYTES], want[TORN_BYTES];
	uint64_t n = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (!atomic_load(&t->stop)) {
		const char *why = NULL;
		uint32_t len;

		memset(out, 0, sizeof(out));
		out[TORN_VARS - 1].buf = blob;
		out[TORN_VARS - 1].cap = sizeof(blob);
		if (shm_var_read_many(seg, ids, TORN_VARS, out))
			continue; /* -EAGAIN: updates kept coming; try again */
		for (uint32_t i = 1; i < TORN_VARS - 1 && !why; i++)
			if (out[i].num.i != out[0].num.i || out[i].version != out[0].version)
				why = "two numbers of one read from different batches";
		if (!why && out[TORN_VARS - 1].version != out[0].version)
			why = "the blob's version is not the numbers'";
		len = torn_blob(out[0].num.i, want);
		if (!why && out[0].version &&
		    (out[TORN_VARS - 1].len != len || memcmp(blob, want, len)))
			why = "the blob is not the numbers' batch's";
		/* a single read of the blob is whole too */
		if (!why && !shm_var_read(seg, ids[TORN_VARS - 1], &out[TORN_VARS - 1])) {
			int64_t v;

			memcpy(&v, blob, 8);
			len = torn_blob(v, want);
			if (out[TORN_VARS - 1].version &&
			    (out[TORN_VARS - 1].len != len || memcmp(blob, want, len)))
				why = "a single read of the blob is torn";
		}
		if (why) {
			snprintf(t->why[rd], sizeof(t->why[rd]), "%s (%lld, version %llu)", why,
				 (long long)out[0].num.i, (unsigned long long)out[0].version);
			atomic_store(&t->bad[rd], 1);
			_exit(4);
		}
		atomic_store(&t->reads[rd], ++n);
	}
	_exit(0);
}

/*
 * Writers in three processes update batches of three numbers and a blob that must agree
 * (the same batch's value in each); one writer is SIGKILLed mid-way at whatever instruction
 * it is at. Readers in two other processes check every read of the four together, and the
 * blob alone: never two batches in one read, never a torn blob; the surviving writers
 * finish (none stuck behind the dead one's locks).
 */
static void test_var_torn_processes(void **state)
{
	struct shm_seg *seg = make_seg_sized(TORN_BYTES);
	struct torn *t =
		mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t writers[TORN_WRITERS], readers[TORN_READERS];
	uint64_t ids[TORN_VARS];
	uint32_t dead_slot = UINT32_MAX;
	struct shm_var_stats st;
	int wst;

	(void)state;
	assert_true(t != MAP_FAILED);
	memset(t, 0, sizeof(*t));
	for (uint32_t i = 0; i < TORN_VARS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "t%u", i);
		ids[i] = mk(seg, name, i == TORN_VARS - 1 ? SHM_VAR_BLOB : SHM_VAR_INT);
	}
	for (int r = 0; r < TORN_READERS; r++) {
		readers[r] = fork();
		assert_true(readers[r] >= 0);
		if (readers[r] == 0)
			torn_reader(seg, ids, t, r);
	}
	for (int w = 0; w < TORN_WRITERS; w++) {
		writers[w] = fork();
		assert_true(writers[w] >= 0);
		if (writers[w] == 0)
			torn_writer(seg, ids, t, w);
	}
	/* kill writer 0 once it is well under way: at whatever instruction it is at */
	assert_true(it_wait_u64(&t->batches[0], TORN_BATCHES / 4, 30000));
	kill(writers[0], SIGKILL);
	assert_int_equal(waitpid(writers[0], &wst, 0), writers[0]);
	for (int w = 1; w < TORN_WRITERS; w++) {
		wst = it_wait_child(writers[w], 60000);
		if (wst == -1)
			fail_msg("writer %d is stuck after %llu batches", w,
				 (unsigned long long)atomic_load(&t->batches[w]));
		assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
		assert_int_equal(atomic_load(&t->batches[w]), TORN_BATCHES);
	}
	atomic_store(&t->stop, 1);
	for (int r = 0; r < TORN_READERS; r++) {
		wst = it_wait_child(readers[r], 30000);
		assert_true(wst != -1);
		if (atomic_load(&t->bad[r]))
			fail_msg("reader %d: %s", r, t->why[r]);
		assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
		assert_true(atomic_load(&t->reads[r]) > 0);
	}
	assert_int_equal(shm_var_stats(seg, &st), 0);
	print_message("torn: %llu + %llu reads during %d batches; writer 0 killed after %llu; "
		      "dead locks met: %llu rolled forward, %llu back\n",
		      (unsigned long long)atomic_load(&t->reads[0]),
		      (unsigned long long)atomic_load(&t->reads[1]),
		      TORN_BATCHES * (TORN_WRITERS - 1),
		      (unsigned long long)atomic_load(&t->batches[0]),
		      (unsigned long long)st.forward, (unsigned long long)st.back);
	/* the dead writer's slot: the one still RUNNING whose owner is gone */
	for (uint32_t s = 1; s < shm_hdr(seg)->cfg.max_procs; s++) {
		struct shm_proc *p = shm_proc_at(seg, s);

		if (atomic_load(&p->state) == SHM_PROC_RUNNING && s != seg->self &&
		    !shm_proc_is_alive(seg, s))
			dead_slot = s;
	}
	assert_true(dead_slot != UINT32_MAX);
	bury(seg, dead_slot);
	assert_check(seg);
	munmap(t, sizeof(*t));
	done_seg(seg);
}

/* --- threads over one mapping (ThreadSanitizer sees these) --- */

#define THR_WRITERS 2
#define THR_ROUNDS  20000

struct thr {
	struct shm_seg seg;
	const uint64_t *ids;
	int w;
	_Atomic uint32_t *done;
};

static void *thr_writer(void *arg)
{
	struct thr *t = arg;

	for (int64_t k = 1; k <= THR_ROUNDS; k++) {
		int64_t v = ((int64_t)(t->w + 1) << 32) | k;
		uint32_t n = (k % 3) ? BATCH : 1; /* batches and single updates */

		while (set_all(&t->seg, t->ids, n, v) == -EAGAIN)
			;
	}
	atomic_fetch_add(t->done, 1);
	return NULL;
}

/*
 * Two writer threads (each with its own process slot over the same mapping) update three
 * variables in batches and singly while this thread reads them together and alone: values
 * of one read agree wherever a batch wrote them, and no access races (under TSan).
 */
static void test_var_batch_threads(void **state)
{
	struct shm_seg *seg = make_seg();
	static struct thr th[THR_WRITERS];
	pthread_t tid[THR_WRITERS];
	_Atomic uint32_t done = 0;
	uint64_t ids[BATCH], reads = 0;

	(void)state;
	for (uint32_t k = 0; k < BATCH; k++) {
		char name[16];

		snprintf(name, sizeof(name), "th%u", k);
		ids[k] = mk(seg, name, SHM_VAR_INT);
	}
	for (int w = 0; w < THR_WRITERS; w++) {
		memcpy(&th[w].seg, seg, sizeof(*seg));
		th[w].seg.self = UINT32_MAX;
		assert_int_equal(shm_proc_claim(&th[w].seg, SHM_ROLE_CLIENT, false), 0);
		shm_proc_set_state(&th[w].seg, SHM_PROC_RUNNING);
		th[w].ids = ids;
		th[w].w = w;
		th[w].done = &done;
		assert_int_equal(pthread_create(&tid[w], NULL, thr_writer, &th[w]), 0);
	}
	while (atomic_load(&done) < THR_WRITERS) {
		struct shm_var_val out[BATCH];

		memset(out, 0, sizeof(out));
		if (shm_var_read_many(seg, ids, BATCH, out))
			continue;
		/* variable 0 is written by every update; 1 and 2 only by batches, with it */
		if (out[1].num.i != out[2].num.i || out[1].version != out[2].version)
			fail_msg("one read shows two batches: %llx and %llx",
				 (unsigned long long)out[1].num.i,
				 (unsigned long long)out[2].num.i);
		if (out[0].version < out[1].version)
			fail_msg("variable 0 behind a batch that wrote it");
		reads++;
	}
	for (int w = 0; w < THR_WRITERS; w++) {
		assert_int_equal(pthread_join(tid[w], NULL), 0);
		shm_proc_release(&th[w].seg);
	}
	assert_true(reads > 0);
	{
		uint64_t v0, v1;

		get_int(seg, ids[0], &v0);
		get_int(seg, ids[1], &v1);
		assert_int_equal(v0, THR_WRITERS * THR_ROUNDS);
		assert_int_equal(v1, THR_WRITERS * (THR_ROUNDS - THR_ROUNDS / 3));
	}
	print_message("threads: %llu reads\n", (unsigned long long)reads);
	assert_check(seg);
	done_seg(seg);
}

/* --- the command line, against a running instance --- */

static const char *cli_config = "[instance]\nworkers = 1\nplacement = none\n"
				"[segment]\nmax_agents = 16\nregistry_capacity = 128\n"
				"max_procs = 8\nvariables = 4\nvariable_bytes = 16\n"
				"[agent e]\ntype = echo\nname = e0\n";

/* Run `shoal var ARGS...` on r's instance; its exit code, its output in out. */
static int var_tool(struct rt_run *r, char *out, size_t cap, const char *const *args)
{
	const char *argv[16] = {"var"};
	size_t n = 1;

	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return rt_run_tool(r->inst, out, cap, argv);
}

static void expect_tool(struct rt_run *r, const char *const *args, int want, const char *needle)
{
	char out[4096];
	int ex = var_tool(r, out, sizeof(out), args);

	if (ex != want || !strstr(out, needle))
		fail_msg("shoal var %s %s: exit %d (want %d), said: '%s' (want '%s')", args[0],
			 args[1] ? args[1] : "", ex, want, out, needle);
}

/*
 * shoal var set (one batch; a first set creates, typed by the value), get (one or several),
 * list, and each error with its exit code and a sentence naming the fix.
 */
static void test_var_cli(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	struct shm_var_val v[2];
	uint64_t ids[2];
	char err[256];

	(void)state;
	rt_start(&r, "t-var-", "cli", cli_config, NULL);
	rt_wait_ready(&r);
	expect_tool(&r, (const char *[]){"set", "lr", "0.001", "bs", "-64", NULL}, 0,
		    "bs = -64  (int, version 1");
	expect_tool(&r, (const char *[]){"get", "lr", NULL}, 0, "lr = 0.001  (double, version 1");
	/* the batch's variables from another process: both at once */
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	assert_int_equal(shm_var_lookup(seg, 0, "lr", 2, &ids[0]), 0);
	assert_int_equal(shm_var_lookup(seg, 0, "bs", 2, &ids[1]), 0);
	memset(v, 0, sizeof(v));
	assert_int_equal(shm_var_read_many(seg, ids, 2, v), 0);
	assert_true(v[0].num.d == 0.001 && v[1].num.i == -64);
	/* an existing variable's value is read as its type; one update for both */
	expect_tool(&r, (const char *[]){"set", "lr", "1", "bs", "65", NULL}, 0,
		    "lr = 1  (double, version 2");
	expect_tool(&r, (const char *[]){"get", "lr", "bs", NULL}, 0, "bs = 65  (int, version 2");
	expect_tool(&r, (const char *[]){"set", "note", "hi there", NULL}, 0,
		    "note = \"hi there\"  (blob, version 1");
	expect_tool(&r, (const char *[]){"list", NULL}, 0, "3 of 4 variables");
	{
		char out[16384];

		assert_int_equal(
			rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"inspect", NULL}),
			0);
		assert_non_null(strstr(out, "3 of 4, blobs up to 16 bytes"));
		assert_non_null(strstr(out, " variable "));
	}
	/* errors: nothing changes */
	expect_tool(&r, (const char *[]){"get", "nope", NULL}, 2, "no variable named 'nope'");
	expect_tool(&r, (const char *[]){"get", "e0", NULL}, 2, "'e0' is an agent's name");
	expect_tool(&r, (const char *[]){"set", "e0", "1", NULL}, 2, "'e0' is an agent's name");
	expect_tool(&r, (const char *[]){"set", "bs", "1.5", NULL}, 2,
		    "'bs' is an int variable; '1.5' is not an integer");
	expect_tool(&r, (const char *[]){"set", "note", "0123456789abcdefX", NULL}, 2,
		    "a value of 17 bytes; variables of instance");
	expect_tool(&r, (const char *[]){"set", "note", "0123456789abcdefX", NULL}, 2,
		    "at most 16 ([segment] variable_bytes)");
	expect_tool(&r, (const char *[]){"set", "lr", "2", "lr", "3", NULL}, 2, "named twice");
	expect_tool(&r, (const char *[]){"set", "lr", NULL}, 2, "NAME VALUE pairs");
	expect_tool(&r, (const char *[]){"set", "x1", "1", "x2", "2", NULL}, 3,
		    "raise [segment] variables");
	expect_tool(&r, (const char *[]){"frob", NULL}, 2, "unknown subcommand 'frob'");
	expect_tool(&r, (const char *[]){"get", "lr", "bs", NULL}, 0, "lr = 1  (double, version 2");
	shm_seg_detach(seg);
	rt_stop(&r);
}

static int list_count(const char *name, shoal_var_t var, uint32_t type, void *arg)
{
	(void)var;
	if (!strcmp(name, "lr") && type == SHOAL_VAR_DOUBLE)
		++*(int *)arg;
	return 0;
}

/*
 * The clients' API against a running instance: the inbox is the writer, a batch and its
 * compare-and-set, a list; an update waits for a live writer up to its timeout only.
 */
static void test_var_client_api(void **state)
{
	struct shoal_client *c = NULL;
	struct shoal_var_value val = {0}, many[2];
	shoal_var_t lr, bs, both[2];
	uint64_t cur = 0, t0;
	double x = 0.5;
	int64_t n = 32;
	struct rt_run r;
	char err[256];
	int seen = 0;

	(void)state;
	rt_start(&r, "t-var-", "capi", cli_config, NULL);
	rt_wait_ready(&r);
	assert_int_equal(shoal_client_open(r.inst, &c, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_var_create(c, "lr", SHOAL_VAR_DOUBLE, &lr), 0);
	assert_int_equal(shoal_client_var_create(c, "bs", SHOAL_VAR_INT, &bs), 0);
	assert_int_equal(shoal_client_var_create(c, "e0", SHOAL_VAR_INT, &both[0]), -EEXIST);
	assert_int_equal(both[0], 0); /* an agent's name */
	assert_int_equal(shoal_client_var_lookup(c, "e0", &both[0]), -ENOENT);
	{
		struct shoal_var_set sets[2] = {
			{.var = lr, .type = SHOAL_VAR_DOUBLE, .len = 8, .data = &x, .expect = 0},
			{.var = bs, .type = SHOAL_VAR_INT, .len = 8, .data = &n, .expect = 0},
		};

		assert_int_equal(shoal_client_var_update(c, sets, 2, &cur, 1000), 0);
		assert_int_equal(shoal_client_var_update(c, sets, 2, &cur, 1000), -EBUSY);
		assert_int_equal(cur, 1);
		both[0] = lr;
		both[1] = bs;
		memset(many, 0, sizeof(many));
		assert_int_equal(shoal_client_var_read_many(c, both, 2, many), 0);
		assert_true(many[0].num.d == 0.5 && many[1].num.i == 32);
		assert_int_equal(many[0].writer, shoal_client_inbox(c));
		assert_int_equal(shoal_client_var_read_name(c, "bs", &val), 0);
		assert_true(val.num.i == 32 && val.version == 1);
		assert_int_equal(shoal_client_var_list(c, list_count, &seen), 0);
		assert_int_equal(seen, 1);
		/* the supervisor (alive) holds lr's lock: a timeout, not a hang, and nothing set */
		{
			struct shm_seg *seg;
			struct shm_var *v;
			uint64_t tag;

			assert_int_equal(shm_seg_attach(r.inst, 0, 1000, &seg, err, sizeof(err)),
					 0);
			tag = SHM_TAG(0, atomic_load(&shm_hdr(seg)->sup_epoch));
			v = var_ptr(seg, lr);
			atomic_store(&v->lock, tag);
			sets[0].expect = SHOAL_VAR_ANY;
			t0 = shm_now_ns();
			assert_int_equal(shoal_client_var_update(c, sets, 1, NULL, 50), -ETIMEDOUT);
			assert_true(shm_now_ns() - t0 >= 50000000ull);
			assert_int_equal(shoal_client_var_update(c, sets, 1, NULL, 0), -EAGAIN);
			atomic_store(&v->lock, 0);
			shm_seg_detach(seg);
		}
		assert_int_equal(shoal_client_var_read(c, lr, &val), 0);
		assert_int_equal(val.version, 1);
	}
	shoal_client_close(c);
	rt_stop(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_var_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_cas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_agent_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_crash_steps_single, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_crash_steps_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_crash_helper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_dead_lock_zero_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_repair_without_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_crash_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_torn_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_var_batch_threads, setup, teardown),
		cmocka_unit_test_teardown(test_var_cli, rt_teardown),
		cmocka_unit_test_teardown(test_var_client_api, rt_teardown),
	};

	test_pid = getpid();
	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	cmocka_set_message_output(CM_OUTPUT_STDOUT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
