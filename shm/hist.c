/* Latency histograms in the segment: record, read, merge, percentiles (see shm/hist.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shm/cpu.h"
#include "shm/hist.h"
#include "shm/seqlock.h"

_Atomic uint32_t shm_hist_tick;

/* 0: not decided yet (SHOAL_TELEMETRY is read at the first use), 1 off, 2 on. */
static _Atomic uint32_t hist_mode;

static const char *const op_names[SHM_HIST_OPS] = {
	[SHM_HIST_SEND] = "send",	    [SHM_HIST_CALL] = "call",
	[SHM_HIST_LOOKUP] = "lookup",	    [SHM_HIST_REGISTER] = "register",
	[SHM_HIST_RESTART] = "restart",	    [SHM_HIST_VAR_UPDATE] = "var_update",
	[SHM_HIST_BROADCAST] = "broadcast", [SHM_HIST_CONSENSUS] = "consensus",
	[SHM_HIST_ALLOC] = "allocation",    [SHM_HIST_POOL_CHECKOUT] = "pool_checkout",
};

/* The operations fast enough that a clock read each would cost a visible share of them. */
static const uint8_t op_sampled[SHM_HIST_OPS] = {
	[SHM_HIST_SEND] = 1,
	[SHM_HIST_LOOKUP] = 1,
	[SHM_HIST_REGISTER] = 1,
	[SHM_HIST_VAR_UPDATE] = 1,
};

/* See hist.h. Any thread. */
uint32_t shm_hist_bucket(uint64_t ns)
{
	uint32_t e;

	if (ns < 2 * SHM_HIST_SUB)
		return (uint32_t)ns;
	e = 63u - (uint32_t)__builtin_clzll(ns);
	if (e >= SHM_HIST_TOP_EXP)
		return SHM_HIST_BUCKETS - 1;
	/* octave e (>= SUB_BITS + 1) starts at 2 * SUB + (e - SUB_BITS - 1) * SUB */
	return 2 * SHM_HIST_SUB + (e - SHM_HIST_SUB_BITS - 1) * SHM_HIST_SUB +
	       (uint32_t)((ns >> (e - SHM_HIST_SUB_BITS)) & (SHM_HIST_SUB - 1));
}

/* See hist.h. Any thread. */
uint64_t shm_hist_bucket_low(uint32_t b)
{
	uint32_t k, e;

	if (b < 2 * SHM_HIST_SUB)
		return b;
	k = b - 2 * SHM_HIST_SUB;
	e = SHM_HIST_SUB_BITS + 1 + k / SHM_HIST_SUB;
	return (uint64_t)(SHM_HIST_SUB + k % SHM_HIST_SUB) << (e - SHM_HIST_SUB_BITS);
}

/* See hist.h. Any thread. */
uint64_t shm_hist_bucket_width(uint32_t b)
{
	if (b < 2 * SHM_HIST_SUB)
		return 1;
	return 1ull << (1 + (b - 2 * SHM_HIST_SUB) / SHM_HIST_SUB);
}

/* See hist.h. Any thread. */
const char *shm_hist_op_name(uint32_t op)
{
	return op < SHM_HIST_OPS ? op_names[op] : "?";
}

/* See hist.h. Any thread. */
uint32_t shm_hist_op_rate(uint32_t op)
{
	return op < SHM_HIST_OPS && op_sampled[op] ? SHM_HIST_SAMPLE : 1;
}

/* See hist.h. Any thread. */
bool shm_hist_is_enabled(void)
{
	/* relaxed: a process-private setting; a racing first read decides the same */
	uint32_t m = atomic_load_explicit(&hist_mode, memory_order_relaxed);

	if (!m) {
		const char *e = getenv("SHOAL_TELEMETRY");

		m = e && (!strcasecmp(e, "off") || !strcmp(e, "0")) ? 1 : 2;
		atomic_store_explicit(&hist_mode, m, memory_order_relaxed);
	}
	return m == 2;
}

/* See hist.h. Any thread. */
void shm_hist_set_enabled(bool on)
{
	/* relaxed: as in shm_hist_is_enabled() */
	atomic_store_explicit(&hist_mode, on ? 2 : 1, memory_order_relaxed);
}

/*
 * The region and its block count, or NULL: an older minor, or a header whose region does
 * not lie inside the mapping, is not aligned, or does not hold max_procs blocks (read again
 * on every call, as the event ring's: a header changed after the attach's validation must
 * not send a reader, nor a recording owner, outside the mapping). max_procs is read once.
 */
static struct shm_hist *region_at(const struct shm_seg *seg, uint32_t *nprocs)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_region *r = &h->regions[SHM_R_HIST];
	uint32_t n = h->cfg.max_procs;

	if (h->layout_minor < 10 || h->nregions <= SHM_R_HIST || r->off > seg->size ||
	    r->size > seg->size - r->off || r->off % SHM_ALIGN ||
	    r->size != (uint64_t)n * SHM_HIST_OPS * sizeof(struct shm_hist))
		return NULL;
	*nprocs = n;
	return (struct shm_hist *)(seg->base + r->off);
}

/* See hist.h. Any process. */
struct shm_hist *shm_hist_at(const struct shm_seg *seg, uint32_t slot, uint32_t op)
{
	uint32_t n;
	struct shm_hist *r = region_at(seg, &n);

	if (!r || slot >= n || op >= SHM_HIST_OPS)
		return NULL;
	return r + (uint64_t)slot * SHM_HIST_OPS + op;
}

/* Single writer: a relaxed load and store, not a locked add (see the top of hist.h). */
static inline void bump(_Atomic uint64_t *w, uint64_t by)
{
	atomic_store_explicit(w, atomic_load_explicit(w, memory_order_relaxed) + by,
			      memory_order_relaxed);
}

/* See hist.h. The owner of h's slot. */
void shm_hist_record(struct shm_hist *h, uint64_t ns, uint32_t rate)
{
	uint32_t b = shm_hist_bucket(ns);
	uint64_t s = shm_seq_write_begin(&h->seq);

	bump(&h->bucket[b], 1);
	bump(&h->count, 1);
	bump(&h->sum_ns, ns);
	/* relaxed: single writer, inside the seqlock */
	if (ns > atomic_load_explicit(&h->max_ns, memory_order_relaxed))
		atomic_store_explicit(&h->max_ns, ns, memory_order_relaxed);
	if (atomic_load_explicit(&h->rate, memory_order_relaxed) != rate)
		atomic_store_explicit(&h->rate, rate, memory_order_relaxed);
	shm_seq_write_end(&h->seq, s + 1);
}

/* See hist.h. The owner. */
uint64_t shm_hist_begin_always(const struct shm_seg *seg)
{
	uint64_t t;

	if (seg->self == UINT32_MAX || !shm_hist_is_enabled() || !shm_hist_at(seg, seg->self, 0))
		return 0;
	t = shm_now_ns();
	return t ? t : 1;
}

/* See hist.h. The owner of seg->self. */
void shm_hist_end_slow(const struct shm_seg *seg, uint32_t op, uint64_t t0)
{
	uint64_t now = shm_now_ns();

	shm_hist_add(seg, op, now > t0 ? now - t0 : 0);
}

/* See hist.h. The owner of seg->self. */
void shm_hist_add(const struct shm_seg *seg, uint32_t op, uint64_t ns)
{
	struct shm_hist *h;

	if (seg->self == UINT32_MAX || !shm_hist_is_enabled())
		return;
	h = shm_hist_at(seg, seg->self, op);
	if (h)
		shm_hist_record(h, ns, shm_hist_op_rate(op));
}

/* See hist.h. */
void shm_hist_snap_init(struct shm_hist_snap *s)
{
	memset(s, 0, sizeof(*s));
}

/* The body's words, relaxed (between read_begin and read_end of the seqlock). */
static void copy_body(const struct shm_hist *h, struct shm_hist_snap *out)
{
	out->count = atomic_load_explicit(&h->count, memory_order_relaxed);
	out->sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
	out->max_ns = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
	out->rate = (uint32_t)atomic_load_explicit(&h->rate, memory_order_relaxed);
	for (uint32_t i = 0; i < SHM_HIST_BUCKETS; i++)
		out->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
}

/* See hist.h. Any process; reads only. */
int shm_hist_read(const struct shm_hist *h, struct shm_hist_snap *out)
{
	uint64_t sum = 0, first = shm_seq_read_begin(&h->seq), end = 0;
	bool moved = false;

	out->torn = 0;
	for (uint32_t i = 0;; i++) {
		uint64_t s0 = shm_seq_read_begin(&h->seq);

		moved |= s0 != first;
		if (!(s0 & 1)) {
			copy_body(h, out);
			if (!shm_seq_read_retry(&h->seq, s0))
				return 0;
		} else {
			shm_cpu_relax();
		}
		if (i + 1 < SHM_HIST_READ_TRIES)
			continue;
		/* the same odd value on every try: a writer dead (or stopped) mid-record */
		if (!moved)
			break;
		/*
		 * A live writer recording back to back can outpace a copy: keep trying for
		 * SHM_HIST_READ_BUSY_NS, then take a copy that is not torn, only busy (its count
		 * the sum of its buckets, as a torn one's)
		 */
		if (!end)
			end = shm_now_ns() + SHM_HIST_READ_BUSY_NS;
		else if (shm_now_ns() > end)
			break;
	}
	copy_body(h, out);
	for (uint32_t i = 0; i < SHM_HIST_BUCKETS; i++)
		sum += out->bucket[i];
	out->count = sum;
	out->torn = !moved;
	return -EAGAIN;
}

/* See hist.h. */
void shm_hist_merge(struct shm_hist_snap *into, const struct shm_hist_snap *from)
{
	into->count += from->count;
	into->sum_ns += from->sum_ns;
	if (from->max_ns > into->max_ns)
		into->max_ns = from->max_ns;
	if (from->rate > into->rate)
		into->rate = from->rate;
	into->torn += from->torn;
	for (uint32_t i = 0; i < SHM_HIST_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
}

/* See hist.h. A tool; reads only. */
int shm_hist_collect(const struct shm_seg *seg, uint32_t op, struct shm_hist_snap *out)
{
	uint32_t nprocs = 0;
	const struct shm_hist *r = region_at(seg, &nprocs);
	struct shm_hist_snap *one;

	shm_hist_snap_init(out);
	if (!r || op >= SHM_HIST_OPS)
		return -ENOENT;
	one = malloc(sizeof(*one));
	if (!one)
		return -ENOMEM;
	/* the count region_at() checked the region's size against, not a second read */
	shm_hist_collect_blocks(r, nprocs, op, out, one);
	free(one);
	return 0;
}

/* See hist.h. A tool; reads only. */
void shm_hist_collect_blocks(const struct shm_hist *region, uint32_t nprocs, uint32_t op,
			     struct shm_hist_snap *out, struct shm_hist_snap *one)
{
	shm_hist_snap_init(out);
	for (uint32_t i = 0; i < nprocs; i++) {
		const struct shm_hist *h = region + (uint64_t)i * SHM_HIST_OPS + op;

		/* relaxed: a slot never written needs no copy; a racing first sample is a miss
		 * the next read sees */
		if (!atomic_load_explicit(&h->count, memory_order_relaxed) &&
		    !(atomic_load_explicit(&h->seq, memory_order_relaxed) & 1))
			continue;
		shm_hist_read(h, one);
		shm_hist_merge(out, one);
	}
}

/* See hist.h. Any thread. */
uint64_t shm_hist_percentile(const struct shm_hist_snap *s, double q)
{
	uint64_t rank, seen = 0;

	if (!s->count)
		return 0;
	if (q >= 1.0)
		return s->max_ns;
	rank = (uint64_t)(q * (double)s->count);
	if ((double)rank < q * (double)s->count)
		rank++;
	if (rank == 0)
		rank = 1;
	for (uint32_t b = 0; b < SHM_HIST_BUCKETS; b++) {
		seen += s->bucket[b];
		if (seen >= rank) {
			uint64_t mid = shm_hist_bucket_low(b) + shm_hist_bucket_width(b) / 2;

			return mid < s->max_ns ? mid : s->max_ns;
		}
	}
	return s->max_ns;
}
