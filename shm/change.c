/*
 * Change events: one futex-backed counter in the segment header (shm_hdr.changes) that
 * every writer of a state word that others wait for bumps after its store: a process
 * slot's state, exit record and restart count, an agent's state and restart count, the
 * instance state. A waiter (a test, a tool, a bench) snapshots the counter, checks its
 * condition, and sleeps until the counter moves or its deadline passes, instead of
 * polling the words with a sleep.
 *
 * The word: bits 31..1 count changes (a bump adds 2), bit 0 is set while someone waits.
 * The protocol between a waiter W (it saw the counter at `seen`) and a bumper B:
 *
 *   B: old := fetch_add(changes, 2); if old & 1 { fetch_and(changes, ~1); FUTEX_WAKE }
 *   W: v := changes; if count(v) != count(seen) return; if !(v & 1) CAS v -> v | 1;
 *      FUTEX_WAIT(changes, v | 1); loop
 *
 * Both sides make read-modify-writes on one word, so its modification order decides:
 * either B's add comes after W's CAS and sees bit 0 (it wakes), or W's CAS fails or the
 * futex compare sees a moved count (W returns at once). A bumper that clears bit 0 always
 * wakes afterwards, so a waiter whose bit it cleared is either woken or finds the word
 * changed at its FUTEX_WAIT, and sets the bit again. No waiter, no syscall: the bump is
 * one atomic add, which keeps the restart path (benchmarked) cheap.
 *
 * A read-only attachment cannot set bit 0 through its mapping: the first wait maps the
 * header page again read-write through the shm object's name (the same object, checked
 * by inode). Without write permission on the object (another user's instance), or on a
 * segment older than layout minor 1 (nobody bumps), the wait falls back to FUTEX_WAIT in
 * 1 ms slices and returns after each (the caller checks its condition again): still woken
 * early by bumps when another waiter set the bit, otherwise a 1 ms poll.
 *
 * The futex is shared (no FUTEX_PRIVATE_FLAG): waiter and bumpers are different processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm/shm.h"

#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#endif

#define CHANGE_WAITERS	1u
#define CHANGE_STEP	2u
#define CHANGE_SLICE_NS 1000000ull /* the fallback's poll period */

/* The change counter of a snapshot, without the waiters bit. */
static uint32_t count_of(uint32_t v)
{
	return v & ~CHANGE_WAITERS;
}

/* Read the change counter. See shm.h. */
uint32_t shm_change_read(const struct shm_seg *seg)
{
	/* B1: pairs with B0 in shm_change_bump(): a snapshot that includes a bump also sees
	 * the state store made before it, so a condition checked after the snapshot and found
	 * false is false at a count the snapshot still holds. */
	return count_of(atomic_load_explicit(&shm_hdr(seg)->changes, memory_order_acquire));
}

/* Wake every waiter; the bump that found bit 0 set. */
static void change_wake(struct shm_hdr *h)
{
	/* relaxed: the futex call orders nothing; see the protocol above for why clearing
	 * the bit of a waiter that set it again is harmless (the wake below follows) */
	atomic_fetch_and_explicit(&h->changes, ~CHANGE_WAITERS, memory_order_relaxed);
	/* shared futex: the word is in the segment */
	syscall(SYS_futex, &h->changes, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Count a change and wake its waiters. See shm.h. */
void shm_change_bump(struct shm_seg *seg)
{
	struct shm_hdr *h = shm_hdr(seg);
	/* B0: release: pairs with B1 in shm_change_read(): the state store before the count. */
	uint32_t old = atomic_fetch_add_explicit(&h->changes, CHANGE_STEP, memory_order_release);

	if (old & CHANGE_WAITERS)
		change_wake(h);
}

/*
 * The header as a waiter may write it (to set bit 0): the attachment's own mapping when
 * writable, else a read-write mapping of the header page made once, or NULL without the
 * permission for one.
 */
static struct shm_hdr *writable_hdr(struct shm_seg *seg)
{
	struct stat a, b;
	void *p;
	int fd;

	if (seg->writable)
		return shm_hdr(seg);
	if (seg->hdr_rw)
		return seg->hdr_rw;
	if (seg->hdr_rw_failed || seg->fd < 0)
		return NULL;
	seg->hdr_rw_failed = true;
	fd = shm_open(seg->path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	/* the name may now be another instance's object: only the one we mapped will do */
	if (fstat(fd, &a) < 0 || fstat(seg->fd, &b) < 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev)
		goto out_close;
	p = mmap(NULL, SHM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto out_close;
	seg->hdr_rw = p;
	seg->hdr_rw_failed = false;
out_close:
	close(fd);
	return seg->hdr_rw;
}

/* Wait for the counter to leave `seen`. See shm.h. */
int shm_change_wait(struct shm_seg *seg, uint32_t seen, uint64_t deadline_ns)
{
	struct shm_hdr *h = shm_hdr(seg);
	struct shm_hdr *wh = h->layout_minor >= 1 ? writable_hdr(seg) : NULL;

	seen = count_of(seen);
	for (;;) {
		/* B1 (again): a count that moved shows the state store behind it. */
		uint32_t v = atomic_load_explicit(&h->changes, memory_order_acquire);
		uint64_t now = shm_now_ns(), until = deadline_ns;
		struct timespec ts;
		long r;

		if (count_of(v) != seen)
			return 0;
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		if (wh && !(v & CHANGE_WAITERS)) {
			/* W0: relaxed: the word's modification order alone decides against B0's
			 * add (one word, both sides read-modify-write); a failed CAS re-reads */
			if (!atomic_compare_exchange_strong_explicit(
				    &wh->changes, &v, v | CHANGE_WAITERS, memory_order_relaxed,
				    memory_order_relaxed))
				continue;
			v |= CHANGE_WAITERS;
		}
		if (!wh && until - now > CHANGE_SLICE_NS)
			until = now + CHANGE_SLICE_NS;
		ts.tv_sec = (time_t)(until / 1000000000u);
		ts.tv_nsec = (long)(until % 1000000000u);
		/* absolute CLOCK_MONOTONIC (FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME);
		 * shared futex: no FUTEX_PRIVATE_FLAG */
		r = syscall(SYS_futex, &h->changes, FUTEX_WAIT_BITSET, v, &ts, NULL,
			    FUTEX_BITSET_MATCH_ANY);
		if (r < 0 && errno != ETIMEDOUT && errno != EAGAIN && errno != EINTR)
			return -errno;
		/* unannounced, no bump need wake us: let the caller look again each slice */
		if (!wh && until < deadline_ns)
			return 0;
	}
}
