/*
 * The distribution region (SHM_R_DIST, layout minor 11): the gateway's node name and its
 * connections with their traffic, which the gateway (dist/gateway.c) publishes with its
 * telemetry so that tools attached read-only can show them.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "shm/seqlock.h"
#include "shm/shm.h"

/* The table, or NULL in a segment without one (older layout), or whose region is not inside
 * the mapping or too small; bounded on every call, as the types table's. */
static struct shm_dist *dist_at(const struct shm_seg *seg)
{
	return shm_region_checked(seg, SHM_R_DIST, 11, sizeof(struct shm_dist));
}

/* See shm.h. The gateway, the only writer. */
int shm_dist_publish(struct shm_seg *seg, const struct shm_dist *d)
{
	struct shm_dist *t = dist_at(seg);
	const size_t body = offsetof(struct shm_dist, flushed_ns);
	uint64_t s;

	if (!t)
		return -ENOENT;
	if (d->nconns > SHM_DIST_CONNS)
		return -E2BIG;
	s = shm_seq_write_begin(&t->seq);
	/* inside the seqlock (SQ0 orders it after the odd seq; readers copy it between two
	 * equal even reads) */
	shm_seq_store_body((char *)t + body, (const char *)d + body, sizeof(*d) - body);
	shm_seq_write_end(&t->seq, s + 1);
	return 0;
}

/* See shm.h. Any process; never writes. */
int shm_dist_read(const struct shm_seg *seg, struct shm_dist *out)
{
	const struct shm_dist *t = dist_at(seg);
	const size_t body = offsetof(struct shm_dist, flushed_ns);
	uint64_t s0;
	int r;

	memset(out, 0, sizeof(*out));
	if (!t)
		return -ENOENT;
	r = shm_seq_read_published(&t->seq, &s0);
	if (r)
		return r;
	shm_seq_load_body((char *)out + body, (const char *)t + body, sizeof(*out) - body);
	if (shm_seq_read_retry(&t->seq, s0) || out->nconns > SHM_DIST_CONNS) {
		r = out->nconns > SHM_DIST_CONNS ? -EUCLEAN : -EAGAIN;
		/* a torn or corrupt copy's bytes reach nobody (its strings unterminated) */
		memset(out, 0, sizeof(*out));
		return r;
	}
	/* a foreign or corrupt segment's strings end here, and nothing prints past them */
	out->node[SHM_DIST_NODE_MAX - 1] = 0;
	for (uint32_t i = 0; i < SHM_DIST_CONNS; i++)
		out->conns[i].node[SHM_DIST_NODE_MAX - 1] = 0;
	return 0;
}
