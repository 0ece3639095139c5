/*
 * Checkpoints: two buffers per agent slot in SHM_R_CKPT. The committed record is buffer
 * (ckpt_seq >> 1) & 1, of ckpt_blen[that] bytes. A commit writes the other buffer and its
 * length while ckpt_seq is odd, then makes ckpt_seq even again: a worker killed mid-commit
 * leaves the previous record and its length untouched. One writer per slot (its worker).
 * It is the seqlock of shm/seqlock.h over a 32-bit word and two buffers (K0-K3 below are its
 * SQ0-SQ3); the buffers are read and written as relaxed atomic words like any seqlock body.
 */
#include <errno.h>
#include <string.h>

#include "shm/seqlock.h"
#include "workers/wrk_int.h"

static uint64_t buf_bytes(const struct shm_seg *seg)
{
	return ((uint64_t)shm_hdr(seg)->cfg.ckpt_bytes + SHM_ALIGN - 1) / SHM_ALIGN * SHM_ALIGN;
}

static uint8_t *buf_at(const struct shm_seg *seg, uint32_t slot, uint32_t b)
{
	return (uint8_t *)shm_region(seg, SHM_R_CKPT) + ((uint64_t)slot * 2 + b) * buf_bytes(seg);
}

/*
 * Copy len bytes into the shared buffer dst as whole relaxed words; the last word is padded
 * with zeros (a buffer is SHM_ALIGN-aligned and holds the record rounded up to SHM_ALIGN).
 */
static void buf_store(uint8_t *dst, const void *src, uint32_t len)
{
	uint32_t whole = len & ~7u;

	shm_seq_store_body(dst, src, whole);
	if (len > whole) {
		uint64_t w = 0;

		memcpy(&w, (const uint8_t *)src + whole, len - whole);
		shm_seq_store_body(dst + whole, &w, sizeof(w));
	}
}

/* Copy len bytes out of the shared buffer src as whole relaxed words (see buf_store()). */
static void buf_load(void *dst, const uint8_t *src, uint32_t len)
{
	uint32_t whole = len & ~7u;

	shm_seq_load_body(dst, src, whole);
	if (len > whole) {
		uint64_t w;

		shm_seq_load_body(&w, src + whole, sizeof(w));
		memcpy((uint8_t *)dst + whole, &w, len - whole);
	}
}

/* Largest record a commit accepts (the instance's checkpoint bytes). */
uint32_t wrk_ckpt_cap(const struct shm_seg *seg)
{
	return shm_hdr(seg)->cfg.ckpt_bytes;
}

/* Commit a record for slot. The agent's worker only. 0 or -EMSGSIZE. */
int wrk_ckpt_commit(struct shm_seg *seg, uint32_t slot, const void *data, uint32_t len)
{
	struct shm_agent *a = shm_agent_at(seg, slot);
	uint32_t seq, b;

	if (len > wrk_ckpt_cap(seg))
		return -EMSGSIZE;
	/* relaxed: single writer (the hosting worker) */
	seq = atomic_load_explicit(&a->ckpt_seq, memory_order_relaxed);
	b = ((seq >> 1) + 1) & 1;
	atomic_store_explicit(&a->ckpt_seq, seq + 1, memory_order_relaxed);
	/* K0: pairs with K2 in wrk_ckpt_read(): odd seq before the buffer is overwritten. */
	atomic_thread_fence(memory_order_release);
	buf_store(buf_at(seg, slot, b), data, len);
	atomic_store_explicit(&a->ckpt_blen[b], len, memory_order_relaxed);
	/* K1: pairs with K3 in wrk_ckpt_read(): buffer and length before the flip. */
	atomic_store_explicit(&a->ckpt_seq, seq + 2, memory_order_release);
	/* relaxed: for tools only; single writer */
	atomic_store_explicit(&a->ckpt_len, len, memory_order_relaxed);
	return 0;
}

/* Roll back a half-done commit left by a dead worker. The new hosting worker, at start. */
void wrk_ckpt_recover(struct shm_seg *seg, uint32_t slot)
{
	struct shm_agent *a = shm_agent_at(seg, slot);
	uint32_t seq = atomic_load_explicit(&a->ckpt_seq, memory_order_acquire);

	if (seq & 1) {
		/* the previous record (buffer (seq >> 1) & 1) was never touched */
		atomic_store_explicit(&a->ckpt_seq, seq - 1, memory_order_release);
		atomic_store_explicit(
			&a->ckpt_len,
			atomic_load_explicit(&a->ckpt_blen[(seq >> 1) & 1], memory_order_relaxed),
			memory_order_relaxed);
	}
}

/*
 * Copy slot's committed record into buf (up to cap bytes). Returns its full length (0: no
 * record) or -EAGAIN if commits kept overtaking the copy. Any process.
 */
int wrk_ckpt_read(const struct shm_seg *seg, uint32_t slot, void *buf, uint32_t cap)
{
	const struct shm_agent *a;

	if (slot >= shm_hdr(seg)->cfg.max_agents)
		return -EINVAL;
	a = shm_agent_at(seg, slot);
	for (int tries = 0; tries < 64; tries++) {
		/* K3: pairs with K1: a flipped seq shows its buffer and length. */
		uint32_t s1 = atomic_load_explicit(&((struct shm_agent *)a)->ckpt_seq,
						   memory_order_acquire);
		uint32_t b = (s1 >> 1) & 1;
		uint32_t len = atomic_load_explicit(&((struct shm_agent *)a)->ckpt_blen[b],
						    memory_order_relaxed);
		uint32_t s2;

		if (s1 == 0)
			return 0;
		if (len > wrk_ckpt_cap(seg))
			len = wrk_ckpt_cap(seg); /* never trust the segment */
		buf_load(buf, buf_at(seg, slot, b), len < cap ? len : cap);
		/* K2: pairs with K0: the copy is done before we re-read seq. */
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&((struct shm_agent *)a)->ckpt_seq, memory_order_relaxed);
		/* buffer b is rewritten only from seq (s1 & ~1) + 3 on */
		if (s2 - (s1 & ~1u) < 3)
			return (int)len;
	}
	return -EAGAIN;
}
