/*
 * shm/seqlock.h: sequence locks over shared memory, in the pattern of H.-J. Boehm, "Can
 * seqlocks get along with programming language memory models?" (MSPC 2012).
 *
 * A writer (one at a time: the caller guarantees it) makes the sequence word odd or otherwise
 * new (relaxed, then a release fence: SQ0), writes the body with relaxed atomic stores, then
 * release-stores the final sequence value (SQ1). A reader acquire-loads the sequence word
 * (SQ3), copies the body with relaxed atomic loads, issues an acquire fence and re-loads the
 * word (SQ2): equal and even, the copy is one writer's whole body. Every body access is an
 * atomic access, so a reader racing a writer is not a data race (a memcpy of the body was,
 * and ThreadSanitizer said so).
 *
 * Why the two fences stay: the reader's re-load must not move before the body loads and the
 * writer's odd store must not move after the body stores; the alternatives are acquire loads
 * and release stores of every body word (free on x86 only; ldar/stlr per word elsewhere) or
 * a read-modify-write re-check in the reader (a store to the writer's line per read). One
 * fence per side costs nothing on x86 and one barrier elsewhere. ThreadSanitizer does not
 * model fences, but it needs no suppression for them here: it reports races only where one
 * side is a plain access, and the body has none.
 */
#ifndef SHM_SEQLOCK_H
#define SHM_SEQLOCK_H

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Writer: store v (odd, or a new generation) into seq before the body's stores. */
static inline void shm_seq_write_mark(_Atomic uint64_t *seq, uint64_t v)
{
	/* relaxed: SQ0 orders it before the body */
	atomic_store_explicit(seq, v, memory_order_relaxed);
	/* SQ0: pairs with SQ2 in shm_seq_read_end(): a reader that sees a new body word sees v. */
	atomic_thread_fence(memory_order_release);
}

/* Writer, the only one: make seq odd before the body's stores. Returns the odd value. */
static inline uint64_t shm_seq_write_begin(_Atomic uint64_t *seq)
{
	/* relaxed: the single writer reads its own last store */
	uint64_t s = atomic_load_explicit(seq, memory_order_relaxed) | 1;

	shm_seq_write_mark(seq, s);
	return s;
}

/* Writer: publish the body: seq := v (even). */
static inline void shm_seq_write_end(_Atomic uint64_t *seq, uint64_t v)
{
	/* SQ1: pairs with SQ3 in shm_seq_read_begin(): the body before v. */
	atomic_store_explicit(seq, v, memory_order_release);
}

/* Reader: the sequence value before the body's loads. */
static inline uint64_t shm_seq_read_begin(const _Atomic uint64_t *seq)
{
	/* SQ3: pairs with SQ1: a body published with this value is visible. */
	return atomic_load_explicit(seq, memory_order_acquire);
}

/*
 * Reader of a table whose seq stays 0 until its first write: read_begin's value into *s0,
 * and 0, or -EAGAIN (a write under way, or its writer died in it), or -ENODATA (never
 * written).
 */
static inline int shm_seq_read_published(const _Atomic uint64_t *seq, uint64_t *s0)
{
	*s0 = shm_seq_read_begin(seq);
	if (*s0 & 1)
		return -EAGAIN;
	return *s0 ? 0 : -ENODATA;
}

/* Reader: the sequence value after the body's loads (compare it with read_begin's). */
static inline uint64_t shm_seq_read_end(const _Atomic uint64_t *seq)
{
	/* SQ2: pairs with SQ0: a write that began during the copy shows in seq. */
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(seq, memory_order_relaxed);
}

/* Reader: true if the body copied since read_begin returned s0 must be read again. */
static inline bool shm_seq_read_retry(const _Atomic uint64_t *seq, uint64_t s0)
{
	return (s0 & 1) || shm_seq_read_end(seq) != s0;
}

/*
 * Copy n bytes (a multiple of 8) from private src (any alignment) into the shared body dst
 * (8-aligned), one relaxed 64-bit atomic store per word. A writer, between write_mark/begin
 * and write_end.
 */
static inline void shm_seq_store_body(void *dst, const void *src, size_t n)
{
	uint64_t *d = dst;

	assert(((uintptr_t)dst & 7) == 0 && (n & 7) == 0);
	for (size_t i = 0; i < n / 8; i++) {
		uint64_t w;

		memcpy(&w, (const uint8_t *)src + 8 * i, 8);
		__atomic_store_n(&d[i], w, __ATOMIC_RELAXED);
	}
}

/*
 * Copy n bytes (a multiple of 8) from the shared body src (8-aligned) into private dst (any
 * alignment), one relaxed 64-bit atomic load per word. A reader, between read_begin and
 * read_end/read_retry.
 */
static inline void shm_seq_load_body(void *dst, const void *src, size_t n)
{
	const uint64_t *s = src;

	assert(((uintptr_t)src & 7) == 0 && (n & 7) == 0);
	for (size_t i = 0; i < n / 8; i++) {
		uint64_t w = __atomic_load_n(&s[i], __ATOMIC_RELAXED);

		memcpy((uint8_t *)dst + 8 * i, &w, 8);
	}
}

#endif
