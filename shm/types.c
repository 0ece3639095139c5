/*
 * The agent types region (SHM_R_TYPES, layout minor 10): which types an instance can start,
 * for `shoal types` and `shoal spawn --help`. The type table itself lives in each process
 * (workers/types.c); the supervisor copies what it knows into the segment once, before its
 * first worker starts, so a tool that never loads a library can list them.
 */
#include <errno.h>
#include <string.h>

#include "shm/seqlock.h"
#include "shm/shm.h"

/* The table, or NULL in a segment without one (older layout), or whose region is not inside
 * the mapping or too small. */
static struct shm_types *types_at(const struct shm_seg *seg)
{
	return shm_region_checked(seg, SHM_R_TYPES, 10, sizeof(struct shm_types));
}

/* See shm.h. The supervisor, the only writer. */
int shm_types_publish(struct shm_seg *seg, const struct shm_type_entry *e, uint32_t n)
{
	struct shm_types *t = types_at(seg);
	uint64_t s;

	if (!t)
		return -ENOENT;
	if (n > SHM_TYPES_MAX)
		return -E2BIG;
	s = shm_seq_write_begin(&t->seq);
	/* relaxed: inside the seqlock (SQ0 orders it after the odd seq; readers copy it
	 * between two equal even reads) */
	atomic_store_explicit(&t->count, n, memory_order_relaxed);
	shm_seq_store_body(t->e, e, (size_t)n * sizeof(*e));
	shm_seq_write_end(&t->seq, s + 1);
	return 0;
}

/* See shm.h. Any process; never writes. */
int shm_types_read(const struct shm_seg *seg, struct shm_type_entry *out, uint32_t cap, uint32_t *n)
{
	const struct shm_types *t = types_at(seg);
	uint64_t s0;
	uint32_t count;
	int r;

	*n = 0;
	if (!t)
		return -ENOENT;
	r = shm_seq_read_published(&t->seq, &s0);
	if (r)
		return r; /* -ENODATA: not published yet (the supervisor is starting) */
	/* relaxed: inside the seqlock (SQ3 before, the retry after) */
	count = atomic_load_explicit(&t->count, memory_order_relaxed);
	if (count > SHM_TYPES_MAX)
		return -EUCLEAN;
	if (count > cap)
		count = cap;
	shm_seq_load_body(out, t->e, (size_t)count * sizeof(*out));
	if (shm_seq_read_retry(&t->seq, s0))
		return -EAGAIN;
	for (uint32_t i = 0; i < count; i++) {
		/* a foreign or corrupt segment's strings end here, and nothing prints past them */
		out[i].name[SHM_TYPE_MAX - 1] = 0;
		out[i].about[SHM_TYPE_ABOUT - 1] = 0;
	}
	*n = count;
	return 0;
}
