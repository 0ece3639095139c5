/*
 * shm/hist.h: latency histograms in the segment (region SHM_R_HIST, struct shm_hist in
 * shm/layout.h): recording by a process slot's owner, and reading, merging and percentiles
 * for tools.
 *
 * Recording. Each process slot has one block of SHM_HIST_OPS histograms and its owner is
 * the only writer: a worker is one thread, and the client API is one thread at a time. A
 * record is a seqlock write (shm/seqlock.h): seq odd, then relaxed single-writer
 * load-and-store of bucket, count, sum and max, then seq even. Not relaxed atomic adds: a
 * reader copying words that each writer bumps on its own could see count and buckets
 * disagree (a snapshot taken between the bucket's and the count's add), and a locked add
 * costs more than a plain store; with the seqlock a reader copies a body whose count is the
 * sum of its buckets, and the writer pays no read-modify-write. A writer killed mid-record
 * leaves seq odd: its replacement's next record makes it even again, and a reader that
 * finds it odd for SHM_HIST_READ_TRIES copies takes the body anyway with count made the sum
 * of the buckets (torn; at most that one sample's sum and max are off).
 *
 * Sampling. A clock read costs about 20 ns and a batched send about 27 ns a message, so
 * single operations that can be that fast (send, lookup, register, variable update) are
 * timed 1 in SHM_HIST_SAMPLE (shm_hist_begin(): a process-wide tick, one relaxed load and
 * store); a batch of sends is one operation of the tick, recorded as its time per message.
 * Operations that take microseconds or more (a call, a restart, the rounds, a pool checkout)
 * are timed every time (shm_hist_begin_always()). shm_hist_op_rate() says which; the rate a
 * writer used is stored in the histogram, and tools say "percentiles from a 1/64 sample".
 *
 * SHOAL_TELEMETRY=off in the environment (read once per process) disables recording;
 * shm_hist_set_enabled() overrides it (a benchmark measuring the overhead in one run).
 */
#ifndef SHM_HIST_H
#define SHM_HIST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "shm/shm.h"

#define SHM_HIST_SAMPLE	    64u /* sampled operations: 1 in this many is timed (power of 2) */
#define SHM_HIST_READ_TRIES 64u /* copies of a block being written before it is taken torn */
/* a block whose seq keeps moving (a live writer) is retried this long before a busy copy */
#define SHM_HIST_READ_BUSY_NS 1000000ull
/* The largest relative error of a percentile: half a bucket over its lower bound, 1/32. */
#define SHM_HIST_REL_ERR (1.0 / (2.0 * SHM_HIST_SUB))

/* A private copy of one histogram, or of several merged. */
struct shm_hist_snap {
	uint64_t count;	 /* samples */
	uint64_t sum_ns; /* their sum */
	uint64_t max_ns; /* the largest */
	uint32_t rate;	 /* 1 in rate operations was timed (the largest of those merged) */
	uint32_t torn;	 /* blocks taken while a writer held them (see the top comment) */
	uint64_t bucket[SHM_HIST_BUCKETS];
};

/* The process-wide sampling tick (shm/hist.c); relaxed, private to the process. */
extern _Atomic uint32_t shm_hist_tick __attribute__((visibility("hidden")));

/*
 * The bucket of a value in ns (0 .. SHM_HIST_BUCKETS - 1; values of 2^SHM_HIST_TOP_EXP and
 * more go to the last). Any thread.
 */
uint32_t shm_hist_bucket(uint64_t ns);
/* The smallest value in bucket b (ns). Any thread. */
uint64_t shm_hist_bucket_low(uint32_t b);
/* The number of values in bucket b (its width in ns). Any thread. */
uint64_t shm_hist_bucket_width(uint32_t b);

/* The operation's name for tools ("send", "call", ..., "pool_checkout"); "?" if unknown. */
const char *shm_hist_op_name(uint32_t op);
/* 1 in how many of op's operations is timed: SHM_HIST_SAMPLE or 1. */
uint32_t shm_hist_op_rate(uint32_t op);

/*
 * Whether this process records (SHOAL_TELEMETRY, unless shm_hist_set_enabled() said
 * otherwise). Any thread.
 */
bool shm_hist_is_enabled(void);
/* Turn this process's recording on or off, whatever SHOAL_TELEMETRY says. Any thread. */
void shm_hist_set_enabled(bool on);

/*
 * Slot slot's histogram of op in seg, or NULL if the segment has none (layout minor < 10,
 * a region that does not match max_procs) or slot or op is out of range. Any process.
 */
struct shm_hist *shm_hist_at(const struct shm_seg *seg, uint32_t slot, uint32_t op);

/*
 * Add one sample of ns to h, timed 1 in rate operations. The owner of h's process slot, the
 * only writer (see the top comment).
 */
void shm_hist_record(struct shm_hist *h, uint64_t ns, uint32_t rate);

/*
 * A start time (shm_now_ns()) if this process records into seg (enabled, a process slot of
 * its own, a histogram region), else 0. The slow half of shm_hist_begin(); the owner.
 */
uint64_t shm_hist_begin_always(const struct shm_seg *seg);

/*
 * Start timing a sampled operation: 1 call in SHM_HIST_SAMPLE returns a start time (as
 * shm_hist_begin_always()), the others 0 after a relaxed load and store of the process's
 * tick. Pass the value to shm_hist_end(). The calling process (any thread: the tick is
 * atomic; a lost tick only moves the sample).
 */
static inline uint64_t shm_hist_begin(const struct shm_seg *seg)
{
	/* relaxed: a private counter; two threads racing on it only shift which call is timed */
	uint32_t t = atomic_load_explicit(&shm_hist_tick, memory_order_relaxed) + 1;

	atomic_store_explicit(&shm_hist_tick, t, memory_order_relaxed);
	if (__builtin_expect((t & (SHM_HIST_SAMPLE - 1)) != 0, 1))
		return 0;
	return shm_hist_begin_always(seg);
}

/*
 * End the timing t0 started (0: not timed, nothing to do): record now - t0 into op's
 * histogram of the caller's process slot. The process that called the begin.
 */
void shm_hist_end_slow(const struct shm_seg *seg, uint32_t op, uint64_t t0);
static inline void shm_hist_end(const struct shm_seg *seg, uint32_t op, uint64_t t0)
{
	if (__builtin_expect(t0 != 0, 0))
		shm_hist_end_slow(seg, op, t0);
}

/*
 * Record ns for op into the caller's process slot now (a duration measured by the caller,
 * e.g. the supervisor's restart). The owner of seg->self; nothing if it records nothing.
 */
void shm_hist_add(const struct shm_seg *seg, uint32_t op, uint64_t ns);

/*
 * Copy h into *out through its seqlock. Returns 0 for a consistent copy, or -EAGAIN when
 * none came: the copy is taken anyway, with count set to the sum of its buckets, and
 * out->torn = 1 if the writer held the same odd seq for SHM_HIST_READ_TRIES copies (dead or
 * stopped mid-record), 0 if its seq kept moving (a live writer outpacing the copies for
 * SHM_HIST_READ_BUSY_NS). Never writes to h. Any process.
 */
int shm_hist_read(const struct shm_hist *h, struct shm_hist_snap *out);

/* Zero a snapshot (an empty histogram). */
void shm_hist_snap_init(struct shm_hist_snap *s);

/* Add from into into: the histogram of every sample of both. */
void shm_hist_merge(struct shm_hist_snap *into, const struct shm_hist_snap *from);

/*
 * Merge op's histograms of every process slot of seg into *out (zeroed first). Returns 0,
 * -ENOENT if seg has no histograms, or -ENOMEM. Read-only; any process (a tool).
 */
int shm_hist_collect(const struct shm_seg *seg, uint32_t op, struct shm_hist_snap *out);

/*
 * The same over the region's blocks at region (nprocs of them, as shm_hist_at() lays them
 * out), for a reader that checked the region's bounds itself and allocates nothing per read
 * (shm/view.c): one is its scratch copy of a block. Read-only; any process.
 */
void shm_hist_collect_blocks(const struct shm_hist *region, uint32_t nprocs, uint32_t op,
			     struct shm_hist_snap *out, struct shm_hist_snap *one);

/*
 * The q-quantile (0 < q <= 1) of s in ns: the value of rank ceil(q * count) as its bucket's
 * midpoint, which is within SHM_HIST_REL_ERR of the exact value (exact below 32 ns), never
 * above max_ns. q = 1 is max_ns. 0 for an empty histogram. Any thread.
 */
uint64_t shm_hist_percentile(const struct shm_hist_snap *s, double q);

#endif
