/*
 * test_hist: the latency histograms (shm/hist.c): bucket geometry, percentiles against exact
 * ones on known distributions, merging, recording from several processes with a reader
 * merging, a reader's copy during recording, a writer dead mid-record, and on a running
 * instance: a killed worker's histograms continue and `shoal inspect --json` shows them.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/skip.h"
#include "tests/support.h"

#include "ipc/ipc.h"
#include "shm/hist.h"
#include "shm/registry.h"
#include "shm/shm.h"

#include "tests/run_test_util.h"

#define N_SAMPLES 200000u

/* A private histogram (the segment's struct, on the heap: recording needs no segment). */
static struct shm_hist *hist_new(void)
{
	struct shm_hist *h = aligned_alloc(64, sizeof(*h));

	assert_non_null(h);
	memset(h, 0, sizeof(*h));
	return h;
}

/* xorshift64*: a fixed sequence, so a failure repeats. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* A double in (0, 1]. */
static double unit(uint64_t *s)
{
	return ((double)(rnd(s) >> 11) + 1.0) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The exact q-quantile of sorted v[0..n): rank ceil(q * n), as shm_hist_percentile(). */
static uint64_t exact(const uint64_t *v, uint64_t n, double q)
{
	uint64_t rank = (uint64_t)(q * (double)n);

	if ((double)rank < q * (double)n)
		rank++;
	return v[rank ? rank - 1 : 0];
}

/* Record v[0..n) into a histogram and check p50..p99.9 and max against the exact values. */
static void check_accuracy(const char *what, uint64_t *v, uint64_t n)
{
	static const double qs[] = {0.5, 0.9, 0.99, 0.999, 0.9999};
	struct shm_hist *h = hist_new();
	struct shm_hist_snap *s = malloc(sizeof(*s));

	assert_non_null(s);
	for (uint64_t i = 0; i < n; i++)
		shm_hist_record(h, v[i], 1);
	assert_int_equal(shm_hist_read(h, s), 0);
	assert_int_equal(s->count, n);
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		uint64_t want = exact(v, n, qs[i]), got = shm_hist_percentile(s, qs[i]);
		double err = fabs((double)got - (double)want) / (double)(want ? want : 1);

		if (err > SHM_HIST_REL_ERR)
			fail_msg("%s: p%g is %llu ns, exact %llu ns: off by %.4f, more than %.4f",
				 what, qs[i] * 100, (unsigned long long)got,
				 (unsigned long long)want, err, SHM_HIST_REL_ERR);
	}
	assert_int_equal(shm_hist_percentile(s, 1.0), v[n - 1]);
	assert_int_equal(s->max_ns, v[n - 1]);
	free(s);
	free(h);
}

/* Every bucket's values map back to it; buckets tile the range without gaps or overlap. */
static void test_hist_bucket_geometry(void **state)
{
	(void)state;
	for (uint64_t v = 0; v < 2 * SHM_HIST_SUB; v++)
		assert_int_equal(shm_hist_bucket(v), v);
	for (uint32_t b = 0; b < SHM_HIST_BUCKETS; b++) {
		uint64_t lo = shm_hist_bucket_low(b), w = shm_hist_bucket_width(b);

		assert_int_equal(shm_hist_bucket(lo), b);
		assert_int_equal(shm_hist_bucket(lo + w - 1), b);
		/* the half-width over the low bound is the stated error */
		assert_true((double)(w / 2) <= SHM_HIST_REL_ERR * (double)lo || w == 1);
		if (b + 1 < SHM_HIST_BUCKETS)
			assert_int_equal(shm_hist_bucket_low(b + 1), lo + w);
	}
	/* 1 ns .. 137 s (2^37 ns) are covered; beyond, the last bucket */
	assert_int_equal(shm_hist_bucket_low(SHM_HIST_BUCKETS - 1) +
				 shm_hist_bucket_width(SHM_HIST_BUCKETS - 1),
			 1ull << SHM_HIST_TOP_EXP);
	assert_true(shm_hist_bucket(100000000000ull) < SHM_HIST_BUCKETS - 1);
	assert_int_equal(shm_hist_bucket(UINT64_MAX), SHM_HIST_BUCKETS - 1);
	assert_int_equal(shm_hist_bucket(1ull << SHM_HIST_TOP_EXP), SHM_HIST_BUCKETS - 1);
}

/* Uniform over 1 ns .. 100 us. */
static void test_hist_accuracy_uniform(void **state)
{
	uint64_t *v = malloc(N_SAMPLES * sizeof(*v)), s = 1;

	(void)state;
	assert_non_null(v);
	for (uint32_t i = 0; i < N_SAMPLES; i++)
		v[i] = 1 + rnd(&s) % 100000;
	check_accuracy("uniform", v, N_SAMPLES);
	free(v);
}

/* Exponential with a 2 us mean plus a 300 ns floor: a latency's long tail. */
static void test_hist_accuracy_exponential(void **state)
{
	uint64_t *v = malloc(N_SAMPLES * sizeof(*v)), s = 2;

	(void)state;
	assert_non_null(v);
	for (uint32_t i = 0; i < N_SAMPLES; i++)
		v[i] = 300 + (uint64_t)(-2000.0 * log(unit(&s)));
	check_accuracy("exponential", v, N_SAMPLES);
	free(v);
}

/* Bimodal: 95% around 80 ns (a fast path), 5% around 40 ms (a slow one), both jittered. */
static void test_hist_accuracy_bimodal(void **state)
{
	uint64_t *v = malloc(N_SAMPLES * sizeof(*v)), s = 3;

	(void)state;
	assert_non_null(v);
	for (uint32_t i = 0; i < N_SAMPLES; i++)
		v[i] = rnd(&s) % 100 < 95 ? 60 + rnd(&s) % 40 : 30000000 + rnd(&s) % 20000000;
	check_accuracy("bimodal", v, N_SAMPLES);
	free(v);
}

/* An empty histogram, one sample, and a value past the range. */
static void test_hist_percentile_edges(void **state)
{
	struct shm_hist *h = hist_new();
	struct shm_hist_snap *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	assert_int_equal(shm_hist_read(h, s), 0);
	assert_int_equal(shm_hist_percentile(s, 0.5), 0);
	assert_int_equal(shm_hist_percentile(s, 1.0), 0);
	shm_hist_record(h, 7, 64);
	assert_int_equal(shm_hist_read(h, s), 0);
	assert_int_equal(s->rate, 64);
	assert_int_equal(shm_hist_percentile(s, 0.5), 7);
	assert_int_equal(shm_hist_percentile(s, 0.999), 7);
	shm_hist_record(h, 500ull * 1000000000ull, 64); /* 500 s: past the last octave */
	assert_int_equal(shm_hist_read(h, s), 0);
	assert_int_equal(shm_hist_percentile(s, 1.0), 500ull * 1000000000ull);
	assert_true(shm_hist_percentile(s, 0.99) <= 500ull * 1000000000ull);
	free(s);
	free(h);
}

/* Merging two histograms gives the one that recorded everything. */
static void test_hist_merge_equals_one(void **state)
{
	struct shm_hist *a = hist_new(), *b = hist_new(), *all = hist_new();
	struct shm_hist_snap *sa = malloc(sizeof(*sa)), *sb = malloc(sizeof(*sb)),
			     *sall = malloc(sizeof(*sall));
	uint64_t s = 4;

	(void)state;
	assert_true(sa && sb && sall);
	for (uint32_t i = 0; i < 50000; i++) {
		uint64_t v = rnd(&s) % 5000000;

		shm_hist_record(i % 3 ? a : b, v, 1);
		shm_hist_record(all, v, 1);
	}
	assert_int_equal(shm_hist_read(a, sa), 0);
	assert_int_equal(shm_hist_read(b, sb), 0);
	assert_int_equal(shm_hist_read(all, sall), 0);
	shm_hist_merge(sa, sb);
	assert_int_equal(sa->count, sall->count);
	assert_int_equal(sa->sum_ns, sall->sum_ns);
	assert_int_equal(sa->max_ns, sall->max_ns);
	assert_memory_equal(sa->bucket, sall->bucket, sizeof(sa->bucket));
	for (double q = 0.1; q < 1.0; q += 0.1)
		assert_int_equal(shm_hist_percentile(sa, q), shm_hist_percentile(sall, q));
	free(sa);
	free(sb);
	free(sall);
	free(a);
	free(b);
	free(all);
}

/* count is the sum of the buckets */
static void assert_whole(const struct shm_hist_snap *s)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < SHM_HIST_BUCKETS; i++)
		sum += s->bucket[i];
	assert_int_equal(s->count, sum);
}

#define NPROC	  4u
#define PER_PROC  100000u
#define PROC_INST "t-hist-procs"

/*
 * Several forked processes, each with its own process slot, record into their own blocks
 * while the parent merges all of them again and again: a read with every writer midway
 * sees exactly their first halves, every merged copy is whole, counts only grow, and at the
 * end the total is exact.
 */
static void test_hist_processes_record_reader_merges(void **state)
{
	struct shm_cfg cfg;
	struct shm_seg *seg;
	struct shm_hist_snap *s = malloc(sizeof(*s));
	uint64_t last = 0, reads = 0, deadline = shm_now_ns() + 20000000000ull;
	_Atomic uint32_t *go; /* [0] writers at their half, [1] the parent read them */
	pid_t pid[NPROC];
	int st;

	(void)state;
	assert_non_null(s);
	shm_cfg_default(&cfg);
	cfg.max_procs = 8;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	seg = ts_seg_make(PROC_INST, &cfg, SHM_ROLE_CLIENT);
	go = mmap(NULL, 2 * sizeof(*go), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(go != MAP_FAILED);
	atomic_store(&go[0], 0);
	atomic_store(&go[1], 0);
	for (uint32_t p = 0; p < NPROC; p++) {
		pid[p] = fork();
		assert_true(pid[p] >= 0);
		if (pid[p] == 0) {
			uint64_t r = p + 10;

			if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
				_exit(2);
			/* half, then wait for the parent's read of every half (go[1]) */
			for (uint32_t i = 0; i < PER_PROC / 2; i++)
				shm_hist_add(seg, SHM_HIST_CALL, 100 + rnd(&r) % 100000);
			atomic_fetch_add(&go[0], 1);
			while (!atomic_load(&go[1]))
				if (shm_now_ns() > deadline)
					_exit(3);
			for (uint32_t i = PER_PROC / 2; i < PER_PROC; i++)
				shm_hist_add(seg, SHM_HIST_CALL, 100 + rnd(&r) % 100000);
			_exit(0);
		}
	}
	/* a read with every writer midway: exactly the halves, whole (no sleep: a deadline) */
	while (atomic_load(&go[0]) < NPROC)
		assert_true(shm_now_ns() < deadline);
	assert_int_equal(shm_hist_collect(seg, SHM_HIST_CALL, s), 0);
	assert_whole(s);
	assert_int_equal(s->count, (uint64_t)NPROC * (PER_PROC / 2));
	atomic_store(&go[1], 1);
	/* merge while they record the other halves */
	for (;;) {
		int done = 0;

		assert_int_equal(shm_hist_collect(seg, SHM_HIST_CALL, s), 0);
		assert_whole(s);
		assert_true(s->count >= last);
		last = s->count;
		reads++;
		for (uint32_t p = 0; p < NPROC; p++)
			done += waitpid(pid[p], &st, WNOHANG) == pid[p] ? 1 : 0;
		if (done) {
			/* one reaped: wait for the others, then read once more */
			for (uint32_t p = 0; p < NPROC; p++) {
				pid_t w = waitpid(pid[p], &st, 0);

				assert_true(w == pid[p] || (w < 0 && errno == ECHILD));
				if (w == pid[p])
					assert_int_equal(WEXITSTATUS(st), 0);
			}
			break;
		}
	}
	assert_int_equal(shm_hist_collect(seg, SHM_HIST_CALL, s), 0);
	assert_whole(s);
	assert_int_equal(s->count, (uint64_t)NPROC * PER_PROC);
	assert_int_equal(s->torn, 0);
	print_message("# %llu merged reads while the writers recorded their second halves\n",
		      (unsigned long long)reads);
	munmap((void *)go, 2 * sizeof(*go));
	free(s);
	ts_seg_drop(seg, PROC_INST);
}

struct thr {
	struct shm_hist *h;
	_Atomic uint32_t done;
};

static void *writer_thread(void *arg)
{
	struct thr *t = arg;
	uint64_t s = 9;

	for (uint32_t i = 0; i < 400000; i++)
		shm_hist_record(t->h, rnd(&s) % 1000000, 64);
	atomic_store(&t->done, 1);
	return NULL;
}

/* A reader's copies taken while a thread records are whole (ThreadSanitizer sees both). */
static void test_hist_snapshot_during_recording_thread(void **state)
{
	struct thr t = {.h = hist_new()};
	struct shm_hist_snap *s = malloc(sizeof(*s));
	uint64_t last = 0, whole = 0;
	pthread_t th;

	(void)state;
	assert_non_null(s);
	assert_int_equal(pthread_create(&th, NULL, writer_thread, &t), 0);
	while (!atomic_load(&t.done)) {
		if (shm_hist_read(t.h, s) == 0)
			whole++;
		/*
		 * Not asserted: torn == 0. A writer preempted in the middle of a record holds the
		 * same odd seq for the reader's tries, as a dead one does: no reader can tell the
		 * two apart (this failed 3 runs in 12 under load). Whole, busy or torn, the copy
		 * is made whole: count = the buckets' sum.
		 */
		assert_whole(s);
		assert_true(s->count >= last);
		last = s->count;
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(shm_hist_read(t.h, s), 0);
	assert_int_equal(s->count, 400000);
	assert_whole(s);
	print_message("  %llu whole copies taken during the recording\n",
		      (unsigned long long)whole);
	free(s);
	free(t.h);
}

/* A writer killed mid-record leaves seq odd: a reader still gets a whole copy, marked torn. */
static void test_hist_writer_dead_mid_record(void **state)
{
	struct shm_hist *h = hist_new();
	struct shm_hist_snap *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	for (uint32_t i = 0; i < 10; i++)
		shm_hist_record(h, 1000, 1);
	/* what a writer killed between its bucket's and its count's store leaves */
	atomic_store(&h->seq, atomic_load(&h->seq) + 1);
	atomic_store(&h->bucket[shm_hist_bucket(2000)], 1);
	assert_int_equal(shm_hist_read(h, s), -EAGAIN);
	assert_int_equal(s->torn, 1);
	assert_int_equal(s->count, 11);
	assert_whole(s);
	/* the next owner's record closes it again */
	shm_hist_record(h, 3000, 1);
	assert_int_equal(shm_hist_read(h, s), 0);
	assert_int_equal(s->torn, 0);
	assert_int_equal(atomic_load(&h->seq) & 1, 0);
	free(s);
	free(h);
}

/* Recording off: nothing lands. */
static void test_hist_disabled_records_nothing(void **state)
{
	struct shm_cfg cfg;
	struct shm_seg *seg;
	struct shm_hist_snap *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	shm_cfg_default(&cfg);
	cfg.max_procs = 4;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	seg = ts_seg_make("t-hist-off", &cfg, SHM_ROLE_CLIENT);
	shm_hist_set_enabled(false);
	for (uint32_t i = 0; i < 1000; i++) {
		shm_hist_add(seg, SHM_HIST_CALL, 5);
		shm_hist_end(seg, SHM_HIST_SEND, shm_hist_begin(seg));
	}
	assert_int_equal(shm_hist_collect(seg, SHM_HIST_CALL, s), 0);
	assert_int_equal(s->count, 0);
	assert_int_equal(shm_hist_collect(seg, SHM_HIST_SEND, s), 0);
	assert_int_equal(s->count, 0);
	shm_hist_set_enabled(true);
	for (uint32_t i = 0; i < 1000; i++)
		shm_hist_end(seg, SHM_HIST_SEND, shm_hist_begin(seg));
	assert_int_equal(shm_hist_collect(seg, SHM_HIST_SEND, s), 0);
	/* 1 in 64 of the 1000 ticks, wherever the process's tick stood */
	assert_true(s->count == 1000 / SHM_HIST_SAMPLE || s->count == 1000 / SHM_HIST_SAMPLE + 1);
	assert_int_equal(s->rate, SHM_HIST_SAMPLE);
	free(s);
	ts_seg_drop(seg, "t-hist-off");
}

/*
 * A header whose histogram region was changed after the attach (a corrupt or hostile
 * segment) sends nobody outside the mapping: recording and reading find no region when its
 * offset lies past the mapping, is not aligned, or its size no longer matches max_procs.
 */
static void test_hist_region_outside_mapping(void **state)
{
	struct shm_cfg cfg;
	struct shm_seg *seg;
	struct shm_hdr *h;
	struct shm_region keep;
	struct shm_hist_snap *s = malloc(sizeof(*s));
	uint32_t keep_procs;

	(void)state;
	assert_non_null(s);
	shm_cfg_default(&cfg);
	cfg.max_procs = 4;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	seg = ts_seg_make("t-hist-bounds", &cfg, SHM_ROLE_CLIENT);
	h = shm_hdr(seg);
	keep = h->regions[SHM_R_HIST];
	assert_non_null(shm_hist_at(seg, 0, 0));
	h->regions[SHM_R_HIST].off = seg->size; /* its whole size past the end */
	assert_null(shm_hist_at(seg, 0, 0));
	assert_int_equal(shm_hist_collect(seg, SHM_HIST_CALL, s), -ENOENT);
	shm_hist_add(seg, SHM_HIST_CALL, 5); /* records nothing, writes nowhere */
	h->regions[SHM_R_HIST].off = keep.off + 8;
	assert_null(shm_hist_at(seg, 0, 0));
	h->regions[SHM_R_HIST] = keep;
	keep_procs = h->cfg.max_procs;
	h->cfg.max_procs = keep_procs * 2; /* more blocks than the region holds */
	assert_null(shm_hist_at(seg, 0, 0));
	h->cfg.max_procs = keep_procs;
	assert_non_null(shm_hist_at(seg, 0, 0));
	free(s);
	ts_seg_drop(seg, "t-hist-bounds");
}

/* SHOAL_TELEMETRY=off, read at a process's first use: a child with it records nothing. */
static void test_hist_env_off(void **state)
{
	struct shm_cfg cfg;
	struct shm_seg *seg;
	struct shm_hist_snap *s = malloc(sizeof(*s));
	pid_t pid;
	int st;

	(void)state;
	assert_non_null(s);
	shm_cfg_default(&cfg);
	cfg.max_procs = 4;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	seg = ts_seg_make("t-hist-env", &cfg, SHM_ROLE_CLIENT);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = {(char *)"test_hist", NULL};
		char *envp[] = {(char *)"SHOAL_TELEMETRY=off", (char *)"SHOAL_TEST_HIST_CHILD=1",
				NULL};

		/* a fresh process: the setting is read once per process */
		execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(shm_hist_collect(seg, SHM_HIST_CALL, s), 0);
	assert_int_equal(s->count, 0);
	free(s);
	ts_seg_drop(seg, "t-hist-env");
}

/* The child of test_hist_env_off: attach, claim, record; exit 0 if it thinks it is off. */
static int env_child(void)
{
	struct shm_seg *seg;
	int rc = 0;

	if (shm_seg_attach("t-hist-env", 0, 1000, &seg, NULL, 0))
		return 3;
	if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
		rc = 3;
	for (uint32_t i = 0; !rc && i < 100; i++)
		shm_hist_add(seg, SHM_HIST_CALL, 5);
	if (!rc && shm_hist_is_enabled())
		rc = 4;
	shm_seg_detach(seg);
	return rc;
}

static const char *echo_cfg = "[instance]\nworkers = 2\nplacement = none\n"
			      "[restart]\nintensity = 5\nperiod = 10\n"
			      "[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 8\n"
			      "[agent e]\ntype = echo\nname = e\nworker = 0\n"
			      "[pool p]\ntype = echo\nsize = 2\n";

static uint64_t op_count(struct shm_seg *seg, uint32_t op)
{
	struct shm_hist_snap *s = malloc(sizeof(*s));
	uint64_t n;

	assert_non_null(s);
	assert_int_equal(shm_hist_collect(seg, op, s), 0);
	assert_whole(s);
	n = s->count;
	free(s);
	return n;
}

static uint64_t slot_count(struct shm_seg *seg, uint32_t slot, uint32_t op)
{
	struct shm_hist_snap *s = malloc(sizeof(*s));
	uint64_t n;

	assert_non_null(s);
	assert_int_equal(shm_hist_read(shm_hist_at(seg, slot, op), s), 0);
	n = s->count;
	free(s);
	return n;
}

/* The operations entry named name in inspect --json's output. */
static json_t *json_op(json_t *root, const char *name)
{
	json_t *a = json_object_get(root, "operations"), *e;
	size_t i;

	assert_true(json_is_array(a));
	json_array_foreach(a, i, e)
	{
		if (!strcmp(json_string_value(json_object_get(e, "name")), name))
			return e;
	}
	fail_msg("inspect --json: no operation '%s'", name);
	return NULL;
}

static json_int_t json_count(json_t *root, const char *name)
{
	return json_integer_value(json_object_get(json_op(root, name), "count"));
}

/* inspect --json's output for inst, parsed (fails the test on a bad exit or bad JSON). */
static json_t *inspect_json(const char *inst, char *out, size_t cap)
{
	static const char *const args[] = {"inspect", "--json", NULL};
	json_error_t jerr;
	json_t *root;

	assert_int_equal(rt_run_tool(inst, out, cap, args), 0);
	root = json_loads(out, 0, &jerr);
	if (!root)
		fail_msg("inspect --json: %s: %.200s", jerr.text, out);
	return root;
}

/*
 * A running instance: calls to an echo agent on worker 0 (its replies are sampled sends in
 * worker 0's block), then worker 0 is killed: its replacement continues the same block (the
 * send count did not drop, and grows with more calls), the supervisor's restart histogram
 * gained one, and `shoal inspect --json` says so: every call, one restart, the two checkouts
 * `shoal pool checkout` made and the round `shoal broadcast --ack` did (each timed in its own
 * process slot); so does inspect's
 * table, naming the sample, and both still do once the instance stopped (a post-mortem).
 */
static void test_hist_restart_keeps_counts(void **state)
{
	static const char *const text[] = {"inspect", NULL};
	static const char *const checkout[] = {"pool", "checkout", "p", NULL};
	static const char *const bcast[] = {"broadcast", "g", "7", "hi", "--ack", NULL};
	struct rt_client cl;
	struct rt_run r;
	struct shm_seg *seg;
	shoal_handle_t e = SHOAL_HANDLE_NONE;
	uint64_t sends0, restarts0, sends1;
	char *out = malloc(1 << 20);
	json_t *root;
	pid_t old;

	(void)state;
	assert_non_null(out);
	rt_start(&r, "t-", "hist", echo_cfg, "--keep");
	rt_wait_ready(&r);
	rt_client_open(&cl, r.inst);
	seg = cl.seg;
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "e", 1, &e, NULL), 0);
	for (int i = 0; i < 256; i++)
		rt_expect_echo(&cl, e);
	/* worker 0 (process slot 1) replied 256 times: 1 in 64 timed */
	sends0 = slot_count(seg, 1, SHM_HIST_SEND);
	assert_true(sends0 >= 256 / SHM_HIST_SAMPLE - 1);
	assert_int_equal(op_count(seg, SHM_HIST_CALL), 256);
	restarts0 = op_count(seg, SHM_HIST_RESTART);
	assert_int_equal(restarts0, 0);
	assert_int_equal(rt_run_tool(r.inst, out, 1 << 20, checkout), 0);
	assert_int_equal(rt_run_tool(r.inst, out, 1 << 20, checkout), 0);
	/* a broadcast round with acknowledgements: e alone in group g */
	assert_int_equal(shm_grp_join(seg, "g", 1, e), 0);
	assert_int_equal(rt_run_tool(r.inst, out, 1 << 20, bcast), 0);

	old = rt_slot_pid(seg, 1);
	rt_kill_and_wait(old);
	WAIT_FOR(seg, op_count(seg, SHM_HIST_RESTART) == restarts0 + 1);
	WAIT_FOR(seg, atomic_load(&shm_proc_at(seg, 1)->state) == SHM_PROC_RUNNING &&
			      rt_slot_pid(seg, 1) != old);
	/* the replacement's block is its predecessor's: nothing was zeroed */
	assert_true(slot_count(seg, 1, SHM_HIST_SEND) >= sends0);
	for (int i = 0; i < 256; i++)
		rt_expect_echo(&cl, e);
	sends1 = slot_count(seg, 1, SHM_HIST_SEND);
	assert_true(sends1 >= sends0 + 256 / SHM_HIST_SAMPLE - 1);
	rt_client_close(&cl);

	root = inspect_json(r.inst, out, 1 << 20);
	assert_int_equal(json_count(root, "call"), 512);
	assert_int_equal(json_count(root, "restart"), 1);
	assert_int_equal(json_count(root, "pool_checkout"), 2);
	assert_int_equal(json_count(root, "broadcast"), 1);
	assert_true(json_count(root, "send") >= (json_int_t)sends1);
	assert_int_equal(json_integer_value(json_object_get(json_op(root, "send"), "sample_rate")),
			 SHM_HIST_SAMPLE);
	assert_int_equal(json_integer_value(json_object_get(json_op(root, "call"), "sample_rate")),
			 1);
	assert_true(json_integer_value(json_object_get(json_op(root, "call"), "p50_ns")) > 0);
	assert_true(json_integer_value(json_object_get(json_op(root, "restart"), "max_ns")) > 0);
	json_decref(root);
	assert_int_equal(rt_run_tool(r.inst, out, 1 << 20, text), 0);
	if (!strstr(out, "operations") || !strstr(out, "percentiles from a 1/64 sample"))
		fail_msg("inspect said: %s", out);

	/* stopped in order, kept: the histograms read the same */
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	root = inspect_json(r.inst, out, 1 << 20);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(root, "header"), "state")),
		"stopped");
	assert_int_equal(json_count(root, "call"), 512);
	assert_int_equal(json_count(root, "restart"), 1);
	assert_int_equal(json_count(root, "pool_checkout"), 2);
	assert_int_equal(json_count(root, "broadcast"), 1);
	json_decref(root);
	rt_cleanup(&r);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist_bucket_geometry),
		cmocka_unit_test(test_hist_accuracy_uniform),
		cmocka_unit_test(test_hist_accuracy_exponential),
		cmocka_unit_test(test_hist_accuracy_bimodal),
		cmocka_unit_test(test_hist_percentile_edges),
		cmocka_unit_test(test_hist_merge_equals_one),
		cmocka_unit_test(test_hist_processes_record_reader_merges),
		cmocka_unit_test(test_hist_snapshot_during_recording_thread),
		cmocka_unit_test(test_hist_writer_dead_mid_record),
		cmocka_unit_test(test_hist_disabled_records_nothing),
		cmocka_unit_test(test_hist_region_outside_mapping),
		cmocka_unit_test(test_hist_env_off),
		cmocka_unit_test_teardown(test_hist_restart_keeps_counts, rt_teardown),
	};

	if (getenv("SHOAL_TEST_HIST_CHILD"))
		return env_child();
	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (the qemu guest's pick) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
