/* test_groups: process groups: join/leave/members, full group, racing creation, leave_all, repair.
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
#include <unistd.h>

#include <cmocka.h>

#include "tests/support.h"
#include "shm/registry.h"
#include "shm/registry_int.h"
#include "shm/shm.h"

static char inst[64];

static int setup(void **state)
{
	(void)state;
	snprintf(inst, sizeof(inst), "t-grp-%d", (int)getpid());
	shm_seg_unlink(inst);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shm_seg_unlink(inst);
	return 0;
}

static struct shm_seg *make_seg(uint32_t groups, uint32_t members)
{
	struct shm_cfg cfg;

	shm_cfg_default(&cfg);
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	cfg.max_groups = groups;
	cfg.group_members = members;
	return ts_seg_make(inst, &cfg, SHM_ROLE_SUPERVISOR);
}

static void done_seg(struct shm_seg *seg)
{
	ts_seg_drop(seg, inst);
}

static int join(struct shm_seg *seg, const char *g, shoal_handle_t h)
{
	return shm_grp_join(seg, g, strlen(g), h);
}

static int leave(struct shm_seg *seg, const char *g, shoal_handle_t h)
{
	return shm_grp_leave(seg, g, strlen(g), h);
}

static int members(struct shm_seg *seg, const char *g, shoal_handle_t *out, uint32_t max)
{
	return shm_grp_members(seg, g, strlen(g), out, max);
}

static _Atomic uint64_t *grp_members_of(struct shm_grp *g)
{
	return (_Atomic uint64_t *)(g + 1);
}

static bool has(const shoal_handle_t *v, int n, shoal_handle_t h)
{
	for (int i = 0; i < n; i++)
		if (v[i] == h)
			return true;
	return false;
}

static void test_groups_join_leave_members(void **state)
{
	struct shm_seg *seg = make_seg(8, 8);
	shoal_handle_t out[8];

	(void)state;
	assert_int_equal(members(seg, "g", out, 8), -ENOENT);
	assert_int_equal(join(seg, "g", 1), 0);
	assert_int_equal(join(seg, "g", 2), 0);
	assert_int_equal(join(seg, "g", 2), 0); /* twice: a no-op */
	assert_int_equal(join(seg, "h", 2), 0);
	assert_int_equal(members(seg, "g", out, 8), 2);
	assert_true(has(out, 2, 1) && has(out, 2, 2));
	assert_int_equal(members(seg, "g", out, 1), 2); /* count may exceed max */
	assert_int_equal(members(seg, "h", out, 8), 1);
	assert_int_equal(leave(seg, "g", 1), 0);
	assert_int_equal(leave(seg, "g", 1), -ENOENT);
	assert_int_equal(members(seg, "g", out, 8), 1);
	assert_int_equal(out[0], 2);
	assert_int_equal(leave(seg, "g", 2), 0);
	/* the last member left: the group is gone */
	assert_int_equal(members(seg, "g", out, 8), -ENOENT);
	assert_int_equal(leave(seg, "g", 2), -ENOENT);
	assert_int_equal(join(seg, "", 2), -EINVAL);
	assert_int_equal(join(seg, "g", SHOAL_HANDLE_NONE), -EINVAL);
	done_seg(seg);
}

static void test_groups_full(void **state)
{
	struct shm_seg *seg = make_seg(2, 4);
	shoal_handle_t out[4];

	(void)state;
	for (int i = 1; i <= 4; i++)
		assert_int_equal(join(seg, "g", (shoal_handle_t)i), 0);
	assert_int_equal(join(seg, "g", 5), -ENOSPC);
	assert_int_equal(members(seg, "g", out, 4), 4);
	assert_int_equal(join(seg, "h", 1), 0);
	assert_int_equal(join(seg, "k", 1), -ENOSPC); /* no group slot left */
	assert_int_equal(leave(seg, "h", 1), 0);
	assert_int_equal(join(seg, "k", 1), 0); /* the freed group slot is reused */
	done_seg(seg);
}

static void test_groups_leave_all(void **state)
{
	struct shm_seg *seg = make_seg(8, 8);
	shoal_handle_t out[8];

	(void)state;
	assert_int_equal(join(seg, "a", 7), 0);
	assert_int_equal(join(seg, "b", 7), 0);
	assert_int_equal(join(seg, "b", 8), 0);
	assert_int_equal(join(seg, "c", 8), 0);
	assert_int_equal(shm_grp_leave_all(seg, 7), 2);
	assert_int_equal(members(seg, "a", out, 8), -ENOENT);
	assert_int_equal(members(seg, "b", out, 8), 1);
	assert_int_equal(out[0], 8);
	assert_int_equal(members(seg, "c", out, 8), 1);
	assert_int_equal(shm_grp_leave_all(seg, 7), 0);
	done_seg(seg);
}

static void dump_groups(struct shm_seg *seg, const char *name, int k)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const uint8_t *base = seg->base + h->regions[SHM_R_GROUPS].off;
	uint64_t stride = sizeof(struct shm_grp) + (uint64_t)h->cfg.group_members * 8;

	fprintf(stderr, "proc %d failed leaving %s\n", k, name);
	for (uint32_t g = 0; g < h->cfg.max_groups; g++) {
		const struct shm_grp *gr = (const void *)(base + g * stride);
		const _Atomic uint64_t *m = (const void *)(gr + 1);

		if (!atomic_load(&gr->ctl))
			continue;
		fprintf(stderr, "  %u: st %u tag %llx name %s members", g,
			SHM_REG_CTL_STATE(atomic_load(&gr->ctl)),
			(unsigned long long)SHM_REG_CTL_TAG(atomic_load(&gr->ctl)),
			(const char *)gr->name);
		for (uint32_t i = 0; i < h->cfg.group_members; i++)
			fprintf(stderr, " %llu", (unsigned long long)atomic_load(&m[i]));
		fprintf(stderr, "\n");
	}
}

/* Two processes create the same groups at once (and join/leave churn): one group each. */
static void test_groups_concurrent_create(void **state)
{
	struct shm_seg *seg = make_seg(64, 16);
	_Atomic int *go =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid[2];
	int wst;

	(void)state;
	assert_true(go != MAP_FAILED);
	for (int k = 0; k < 2; k++) {
		pid[k] = fork();
		assert_true(pid[k] >= 0);
		if (pid[k] == 0) {
			char name[32];

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			seg->self = UINT32_MAX;
			if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
				_exit(2);
			shm_proc_set_state(seg, SHM_PROC_RUNNING);
			for (int round = 0; round < 2000; round++) {
				snprintf(name, sizeof(name), "grp-%d", round % 48);
				uint64_t deadline = shm_now_ns() + 20000000000ull;

				atomic_fetch_add(go, 1);
				while (atomic_load(go) < 2 * (round + 1))
					if (shm_now_ns() > deadline)
						_exit(5); /* the other one is stuck or gone */
				if (join(seg, name, 100 + (uint64_t)k)) {
					atomic_store(go, 1 << 30); /* release the other one */
					_exit(3);
				}
				if (round < 1900 && leave(seg, name, 100 + (uint64_t)k)) {
					atomic_store(go, 1 << 30);
					if (getenv("GRP_DEBUG"))
						dump_groups(seg, name, k);
					_exit(4);
				}
			}
			shm_proc_release(seg);
			_exit(0);
		}
	}
	for (int k = 0; k < 2; k++) {
		assert_int_equal(waitpid(pid[k], &wst, 0), pid[k]);
		assert_true(WIFEXITED(wst));
		if (WEXITSTATUS(wst))
			fail_msg("creator %d exited %d", k, WEXITSTATUS(wst));
	}
	/* the last 100 rounds left both members joined to groups 4..47 (some), each once */
	{
		struct ggeo_view {
			int n;
		} v = {0};
		const struct shm_hdr *h = shm_hdr(seg);
		const uint8_t *base = seg->base + h->regions[SHM_R_GROUPS].off;
		uint64_t stride = sizeof(struct shm_grp) + (uint64_t)h->cfg.group_members * 8;

		for (int i = 0; i < 48; i++) {
			char name[32];
			shoal_handle_t out[16];
			int n, copies = 0;

			snprintf(name, sizeof(name), "grp-%d", i);
			n = members(seg, name, out, 16);
			if (n == -ENOENT)
				continue;
			assert_int_equal(n, 2);
			assert_true(has(out, 2, 100) && has(out, 2, 101));
			v.n++;
			for (uint32_t g = 0; g < h->cfg.max_groups; g++) {
				const struct shm_grp *gr = (const void *)(base + g * stride);

				if (SHM_REG_CTL_STATE(atomic_load(&gr->ctl)) == SHM_REG_LIVE &&
				    !strcmp((const char *)gr->name, name))
					copies++;
			}
			assert_int_equal(copies, 1);
		}
		assert_true(v.n > 0);
		/* no claim left behind */
		for (uint32_t g = 0; g < h->cfg.max_groups; g++) {
			const struct shm_grp *gr = (const void *)(base + g * stride);
			uint32_t st = SHM_REG_CTL_STATE(atomic_load(&gr->ctl));

			assert_true(st == SHM_REG_EMPTY || st == SHM_REG_LIVE);
		}
	}
	munmap((void *)go, 4096);
	done_seg(seg);
}

/* A dead creator's half-made group and a dead deleter's claim are repaired. */
static void test_groups_repair(void **state)
{
	struct shm_seg *seg = make_seg(4, 4), dead, late;
	const struct shm_hdr *h = shm_hdr(seg);
	uint8_t *base = seg->base + h->regions[SHM_R_GROUPS].off;
	struct shm_grp *gr = (struct shm_grp *)base;
	shoal_handle_t out[4];
	uint64_t key;

	(void)state;
	/* learn the key of "ghost" from a real group in header 0, then free it */
	assert_int_equal(join(seg, "ghost", 1), 0);
	key = atomic_load(&gr->key);
	assert_int_equal(leave(seg, "ghost", 1), 0);
	assert_int_equal(atomic_load(&gr->ctl), 0);
	/* two more writers: "dead" (smaller tag) and "late" (larger tag) */
	memcpy(&dead, seg, sizeof(dead));
	dead.self = UINT32_MAX;
	assert_int_equal(shm_proc_claim(&dead, SHM_ROLE_CLIENT, false), 0);
	memcpy(&late, seg, sizeof(late));
	late.self = UINT32_MAX;
	assert_int_equal(shm_proc_claim(&late, SHM_ROLE_CLIENT, false), 0);
	shm_proc_set_state(&late, SHM_PROC_RUNNING);
	assert_true(dead.tag < late.tag);
	/* hand-build dead's claim: header 0 PENDING "ghost", as if killed mid-creation */
	atomic_store(&gr->key, key);
	memcpy((void *)gr->name, "ghost", 5);
	atomic_store(&gr->ctl, SHM_REG_CTL(SHM_REG_PENDING, dead.tag));
	atomic_store(&shm_proc_at(seg, dead.self)->state, SHM_PROC_DEAD);
	/* a live writer creating the same name is not blocked: it takes the dead claim over */
	assert_int_equal(join(&late, "ghost", 9), 0);
	assert_int_equal(members(seg, "ghost", out, 4), 1);
	assert_int_equal(out[0], 9);
	/* a dead deleter's claim: repair finishes it (no members: the group goes) */
	assert_int_equal(leave(seg, "ghost", 9), 0);
	assert_int_equal(join(seg, "other", 5), 0);
	for (int i = 0; i < 4; i++) {
		struct shm_grp *g2 = (struct shm_grp *)(base + i * (128 + 4 * 8));

		if (SHM_REG_CTL_STATE(atomic_load(&g2->ctl)) == SHM_REG_LIVE) {
			uint64_t c = atomic_load(&g2->ctl);

			atomic_store(&grp_members_of(g2)[0], 0); /* as if its last member left */
			(void)c;
			atomic_store(&g2->ctl, SHM_REG_CTL(SHM_REG_DELETING, dead.tag));
		}
	}
	assert_int_equal(shm_grp_repair(seg, dead.self), 1);
	for (int i = 0; i < 4; i++) {
		struct shm_grp *g2 = (struct shm_grp *)(base + i * (128 + 4 * 8));

		assert_int_equal(atomic_load(&g2->ctl), 0);
	}
	assert_int_equal(members(seg, "other", out, 4), -ENOENT);
	done_seg(seg);
}

/* --- threads sharing one mapping, for ThreadSanitizer (scripts/test.sh --tsan) --- */

#define NAME_READS  20000u
#define NAME_ROUNDS 2000u

struct name_race {
	struct shm_seg seg;    /* a copy of the attachment with its own process slot */
	_Atomic uint32_t go;   /* the reader is ready: start writing */
	_Atomic uint32_t stop; /* the reader is done: stop writing */
	_Atomic uint64_t last; /* rounds the writer completed */
	char names[2][SHOAL_NAME_MAX + 1];
};

/* One group header, its name alternately all 'A's and all 'B's (created, emptied, reused). */
static void *name_writer(void *arg)
{
	struct name_race *r = arg;

	while (!atomic_load(&r->go))
		;
	for (uint64_t k = 1; !atomic_load(&r->stop); k++) {
		const char *n = r->names[k % 2];

		if (join(&r->seg, n, 7) || leave(&r->seg, n, 7))
			return (void *)1;
		atomic_store(&r->last, k);
	}
	return NULL;
}

static int name_visit(const char *name, uint32_t nmembers, void *arg)
{
	struct name_race *r = arg;

	if (strcmp(name, r->names[0]) && strcmp(name, r->names[1]))
		fail_msg("foreach: a group no one created: '%s'", name);
	if (nmembers > 1)
		fail_msg("foreach: '%s' has %u members, at most 1 joined", name, nmembers);
	return 0;
}

/*
 * A writer thread creates and empties a group of one name, then of another, over the same
 * mapping as a reader thread's foreach and member lookups (one group slot: every creation
 * rewrites the same header): the reader never sees a name mixed from the two.
 */
static void test_groups_name_threads(void **state)
{
	struct shm_seg *seg = make_seg(1, 4);
	static struct name_race r;
	shoal_handle_t out[4];
	pthread_t t;
	void *res;
	uint32_t i;

	(void)state;
	memcpy(&r.seg, seg, sizeof(*seg));
	r.seg.self = UINT32_MAX;
	atomic_store(&r.go, 0);
	atomic_store(&r.stop, 0);
	atomic_store(&r.last, 0);
	memset(r.names[0], 'A', SHOAL_NAME_MAX);
	memset(r.names[1], 'B', SHOAL_NAME_MAX);
	assert_int_equal(shm_proc_claim(&r.seg, SHM_ROLE_CLIENT, false), 0);
	shm_proc_set_state(&r.seg, SHM_PROC_RUNNING);
	assert_int_equal(pthread_create(&t, NULL, name_writer, &r), 0);
	atomic_store(&r.go, 1);
	/* read only once the writer writes, until both did enough (one may start first) */
	while (atomic_load(&r.last) < 1)
		;
	for (i = 0; i < NAME_READS || atomic_load(&r.last) < NAME_ROUNDS; i++) {
		int n = members(seg, r.names[i % 2], out, 4);

		assert_true(n == -ENOENT || (n >= 0 && n <= 1));
		assert_int_equal(shm_grp_foreach(seg, name_visit, &r), 0);
	}
	atomic_store(&r.stop, 1);
	assert_int_equal(pthread_join(t, &res), 0);
	assert_null(res);
	print_message("groups: %llu writer rounds during %u reads\n",
		      (unsigned long long)atomic_load(&r.last), i);
	shm_proc_release(&r.seg);
	done_seg(seg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_groups_join_leave_members, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups_leave_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups_concurrent_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups_name_threads, setup, teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
