/*
 * shoal bench registry: lookup latency and rate at 50% and 90% occupancy (1 and 2
 * processes), register+unregister pair latency, against a plain array index in the same
 * segment, timed the same way. Runs on a scratch instance it creates and removes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/registry.h"
#include "shm/shm.h"
#include "tools/bench.h"
#include "tools/tools.h"

#define NAMES	 10000u /* the measured entries */
#define CAPACITY 32768u /* 10,000 + fillers = 50% (16,384) or 90% (29,491) of this */
#define NAME_LEN 16

struct names {
	char s[NAMES][NAME_LEN];
	uint8_t len[NAMES];
};

/* Shared between the parent and the two lookup processes of the 2-process run. */
struct shared {
	_Atomic uint32_t ready;
	_Atomic uint32_t go;
	_Atomic uint32_t failed;
	uint64_t loop_ns[2];  /* each process's tight-loop time */
	uint64_t loop_ops[2]; /* and its operation count */
	uint64_t alloc[2];    /* and the bytes it allocated in both */
	uint64_t nsamples;    /* samples per process */
	uint64_t samples[];   /* 2 * nsamples latencies in ns */
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static uint32_t *random_indices(size_t n, uint64_t seed)
{
	uint32_t *idx = malloc(n * sizeof(*idx));

	if (!idx)
		return NULL;
	for (size_t i = 0; i < n; i++)
		idx[i] = (uint32_t)(xorshift(&seed) % NAMES);
	return idx;
}

/* Time single lookups (samples, ns each) and a tight loop (returns ops/s). */
static int time_lookups(const struct shm_seg *seg, const struct names *nm, const uint32_t *idx,
			size_t nsamples, size_t nloop, uint64_t *out_ns, double *ops_s,
			uint64_t *loop_ns)
{
	shoal_handle_t h;
	uint64_t t0, sink = 0;

	/* warm up: steady state, not the first touch of each entry after a fill */
	for (uint32_t k = 0; k < NAMES; k++)
		if (shm_reg_lookup(seg, 0, nm->s[k], nm->len[k], &h, NULL) || h != k + 1)
			return -EIO;
	for (size_t i = 0; i < nsamples; i++) {
		uint32_t k = idx[i];
		uint64_t a = bench_ticks(), b;
		int ret = shm_reg_lookup(seg, 0, nm->s[k], nm->len[k], &h, NULL);

		b = bench_ticks();
		if (ret || h != k + 1)
			return -EIO;
		out_ns[i] = (uint64_t)bench_ticks_to_ns(b - a);
	}
	/* j wraps instead of i % nsamples: no divide in the timed loop (nor in the baseline's) */
	t0 = bench_now_ns();
	for (size_t i = 0, j = 0; i < nloop; i++) {
		uint32_t k = idx[j];

		if (++j == nsamples)
			j = 0;
		shm_reg_lookup(seg, 0, nm->s[k], nm->len[k], &h, NULL);
		sink += h;
	}
	t0 = bench_now_ns() - t0;
	if (sink == 0)
		return -EIO;
	if (loop_ns)
		*loop_ns = t0;
	*ops_s = (double)nloop * 1e9 / (double)(t0 ? t0 : 1);
	return 0;
}

static int fill_to(struct shm_seg *seg, uint32_t *nfill, uint32_t target_live)
{
	char name[32];

	while (NAMES + *nfill < target_live) {
		int n = snprintf(name, sizeof(name), "filler-%u", *nfill);
		int ret =
			shm_reg_register(seg, 1, name, (size_t)n, 1000000 + (uint64_t)*nfill, NULL);

		if (ret)
			return ret;
		(*nfill)++;
	}
	return 0;
}

static void lookup_child(const struct shm_seg *seg, const struct names *nm, const uint32_t *idx,
			 struct shared *sh, int who, int cpu, size_t nloop)
{
	double ops;
	uint64_t a0;

	bench_pin(cpu);
	/* our sample slots mapped before the timing: a first-touch fault is not a lookup's */
	memset(sh->samples + who * sh->nsamples, 0, sh->nsamples * sizeof(uint64_t));
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load(&sh->go))
		;
	a0 = bench_alloc_bytes();
	if (time_lookups(seg, nm, idx, sh->nsamples, nloop, sh->samples + who * sh->nsamples, &ops,
			 &sh->loop_ns[who]))
		atomic_store(&sh->failed, 1);
	sh->alloc[who] = bench_alloc_bytes() - a0;
	sh->loop_ops[who] = nloop;
	_exit(0);
}

/* Two processes pinned to the two cores, looking up at once. */
static int two_procs(const struct shm_seg *seg, const struct names *nm, const uint32_t *idx,
		     size_t nsamples, size_t nloop, const struct bench_opts *o,
		     struct bench_report *r)
{
	size_t bytes = sizeof(struct shared) + 2 * nsamples * sizeof(uint64_t);
	struct shared *sh =
		mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pid[2];
	int ret = 0, wst;
	uint64_t longest;
	struct bench_row *row;

	if (sh == MAP_FAILED)
		return -errno;
	sh->nsamples = nsamples;
	for (int k = 0; k < 2; k++) {
		pid[k] = fork();
		if (pid[k] < 0) {
			ret = -errno;
			if (k == 1) {
				kill(pid[0], SIGKILL);
				waitpid(pid[0], NULL, 0);
			}
			goto out_unmap;
		}
		if (pid[k] == 0)
			lookup_child(seg, nm, idx + k * 7919, sh, k, k ? o->cpu_b : o->cpu_a,
				     nloop);
	}
	while (atomic_load(&sh->ready) < 2)
		;
	atomic_store(&sh->go, 1);
	for (int k = 0; k < 2; k++)
		if (waitpid(pid[k], &wst, 0) != pid[k] || !WIFEXITED(wst) || WEXITSTATUS(wst))
			ret = -EIO;
	if (ret || atomic_load(&sh->failed)) {
		ret = -EIO;
		goto out_unmap;
	}
	longest = sh->loop_ns[0] > sh->loop_ns[1] ? sh->loop_ns[0] : sh->loop_ns[1];
	row = bench_add_result(r, "lookup_2p_90", sh->samples, 2 * nsamples,
			       (double)(sh->loop_ops[0] + sh->loop_ops[1]) * 1e9 /
				       (double)(longest ? longest : 1),
			       "array_index");
	if (row)
		row->alloc_per_op = (double)(sh->alloc[0] + sh->alloc[1]) /
				    (double)(2 * nsamples + sh->loop_ops[0] + sh->loop_ops[1]);
out_unmap:
	munmap(sh, bytes);
	return ret;
}

static int baseline_array(const struct shm_seg *seg, const uint32_t *idx, size_t nsamples,
			  size_t nloop, struct bench_report *r)
{
	/* the array lives in the segment (the mailbox arena, unused by this benchmark) */
	_Atomic uint64_t *arr = shm_region(seg, SHM_R_MBOX);
	uint64_t *ns = malloc(nsamples * sizeof(*ns)), sink = 0, t0;

	if (!ns)
		return -ENOMEM;
	memset(ns, 0, nsamples * sizeof(*ns)); /* mapped before the timing */
	if (shm_hdr(seg)->regions[SHM_R_MBOX].size < NAMES * sizeof(*arr)) {
		free(ns);
		return -ENOSPC;
	}
	for (uint32_t i = 0; i < NAMES; i++)
		atomic_store_explicit(&arr[i], i + 1, memory_order_relaxed);
	for (size_t i = 0; i < nsamples; i++) {
		uint64_t a = bench_ticks(), b;

		/* acquire: the same kind of load a lookup's first read is */
		sink += atomic_load_explicit(&arr[idx[i]], memory_order_acquire);
		b = bench_ticks();
		ns[i] = (uint64_t)bench_ticks_to_ns(b - a);
	}
	t0 = bench_now_ns();
	for (size_t i = 0, j = 0; i < nloop; i++) {
		sink += atomic_load_explicit(&arr[idx[j]], memory_order_acquire);
		if (++j == nsamples)
			j = 0;
	}
	t0 = bench_now_ns() - t0;
	bench_add_baseline(r, "array_index", ns, nsamples,
			   sink ? (double)nloop * 1e9 / (double)(t0 ? t0 : 1) : 0);
	free(ns);
	return 0;
}

static int reg_unreg(struct shm_seg *seg, size_t n, struct bench_report *r)
{
	uint64_t *ns = malloc(n * sizeof(*ns)), t0, a0;
	struct bench_row *row;
	char name[32];

	if (!ns)
		return -ENOMEM;
	memset(ns, 0, n * sizeof(*ns)); /* mapped before the timing */
	a0 = bench_alloc_bytes();
	for (size_t i = 0; i < n; i++) {
		int len = snprintf(name, sizeof(name), "churn-%zu", i % 4096);
		uint64_t a = bench_ticks(), b;
		int r1 = shm_reg_register(seg, 2, name, (size_t)len, 7, NULL);
		int r2 = shm_reg_unregister(seg, 2, name, (size_t)len, SHOAL_HANDLE_NONE);

		b = bench_ticks();
		if (r1 || r2) {
			free(ns);
			return r1 ? r1 : r2;
		}
		ns[i] = (uint64_t)bench_ticks_to_ns(b - a);
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < n; i++) {
		int len = snprintf(name, sizeof(name), "churn-%zu", i % 4096);

		shm_reg_register(seg, 2, name, (size_t)len, 7, NULL);
		shm_reg_unregister(seg, 2, name, (size_t)len, SHOAL_HANDLE_NONE);
	}
	t0 = bench_now_ns() - t0;
	row = bench_add_result(r, "register_unregister", ns, n,
			       (double)n * 1e9 / (double)(t0 ? t0 : 1), NULL);
	bench_row_alloc(row, a0, 2.0 * (double)n);
	free(ns);
	return 0;
}

/* A lookup row, its allocations counted from a0 over its n samples and nloop loop lookups. */
static struct bench_row *lookup_row(struct bench_report *r, const char *name, uint64_t *ns,
				    size_t n, size_t nloop, double ops, uint64_t a0)
{
	struct bench_row *row = bench_add_result(r, name, ns, n, ops, "array_index");

	bench_row_alloc(row, a0, (double)(n + nloop));
	return row;
}

/* shoal bench registry: its rows into r. Returns a CLI exit code. The tool's main thread. */
int bench_registry(struct bench_opts *o, struct bench_report *r)
{
	size_t nsamples = o->quick ? 100000 : 1000000, nloop = o->quick ? 1000000 : 10000000;
	struct shm_reg_stats st50, st90;
	struct names *nm = NULL;
	uint32_t *idx = NULL, nfill = 0;
	uint64_t *ns = NULL;
	struct shm_seg *seg;
	struct shm_cfg cfg;
	char inst[SHM_INSTANCE_MAX], err[256];
	double ops;
	uint64_t a0;
	int ret, rc = EXIT_SYSTEM;

	snprintf(inst, sizeof(inst), "bench-registry-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.reg_capacity = CAPACITY;
	cfg.max_agents = 64;
	ret = shm_seg_create(inst, &cfg, &seg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal bench registry: %s\n", err);
		return tool_exit_for(ret);
	}
	shm_seg_publish(seg);
	ret = shm_proc_claim(seg, SHM_ROLE_CLIENT, false);
	if (ret)
		goto out;
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	bench_pin(o->cpu_a);
	nm = malloc(sizeof(*nm));
	ns = malloc(nsamples * sizeof(*ns));
	idx = random_indices(nsamples + 2 * 7919, 0x9e3779b97f4a7c15ull);
	if (!nm || !ns || !idx) {
		ret = -ENOMEM;
		goto out;
	}
	/*
	 * The sample buffer mapped before any timing: its first-touch page faults (one per 512
	 * samples, a few microseconds each in this VM, evicting cache and TLB entries) are the
	 * benchmark's own, not the registry's. They made the first row measured the worst.
	 */
	memset(ns, 0, nsamples * sizeof(*ns));
	for (uint32_t i = 0; i < NAMES; i++) {
		nm->len[i] = (uint8_t)snprintf(nm->s[i], NAME_LEN, "agent-%05u", i);
		ret = shm_reg_register(seg, 0, nm->s[i], nm->len[i], i + 1, NULL);
		if (ret)
			goto out;
	}
	ret = fill_to(seg, &nfill, CAPACITY / 2);
	if (ret)
		goto out;
	shm_reg_stats(seg, &st50);
	ret = baseline_array(seg, idx, nsamples, nloop, r);
	if (ret)
		goto out;
	a0 = bench_alloc_bytes();
	ret = time_lookups(seg, nm, idx, nsamples, nloop, ns, &ops, NULL);
	if (ret)
		goto out;
	lookup_row(r, "lookup_1p_50", ns, nsamples, nloop, ops, a0);
	ret = fill_to(seg, &nfill, CAPACITY * 9 / 10);
	if (ret)
		goto out;
	shm_reg_stats(seg, &st90);
	a0 = bench_alloc_bytes();
	ret = time_lookups(seg, nm, idx, nsamples, nloop, ns, &ops, NULL);
	if (ret)
		goto out;
	lookup_row(r, "lookup_1p_90", ns, nsamples, nloop, ops, a0);
	ret = two_procs(seg, nm, idx, nsamples, nloop, o, r);
	if (ret)
		goto out;
	ret = reg_unreg(seg, o->quick ? 20000 : 200000, r);
	if (ret)
		goto out;
	snprintf(r->notes, sizeof(r->notes),
		 "table of %u entries; 10,000 looked-up names + fillers: %u live at 50%% (longest "
		 "probe %u buckets, longest chain scan %u), %u live at 90%% (longest probe %u, "
		 "chain %u); register_unregister measured at 90%%; one warm-up pass over the names "
		 "before each timing; cpus %d,%d; latencies include "
		 "the timer (rdtscp pair), as does array_index",
		 CAPACITY, st50.live, st50.longest_probe, st50.longest_chain, st90.live,
		 st90.longest_probe, st90.longest_chain, o->cpu_a, o->cpu_b);
	rc = EXIT_OK;
out:
	if (ret)
		fprintf(stderr, "shoal bench registry: %s\n", strerror(-ret));
	free(nm);
	free(ns);
	free(idx);
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
	return rc;
}
