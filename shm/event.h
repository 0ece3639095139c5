/*
 * shm/event.h: the segment's event ring (layout minor 10): what happened to an instance, as
 * numbered events a tool can read after the fact or follow (`shoal events`, `shoal top`,
 * `inspect --json`). Fixed size, overwrite-oldest: every event has a 64-bit sequence number,
 * so a reader that fell more than the ring's size behind knows how many it missed.
 *
 * Writers are any process with a writable attachment (the supervisor, workers); any of them
 * may be killed at any instruction, and none ever waits for another (shm/event.c has the
 * protocol). Readers never write and never wait for a writer: a record whose writer is still
 * at it, or died at it, reads as incomplete (-EAGAIN) and the reader goes on.
 */
#ifndef SHM_EVENT_H
#define SHM_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/shm.h"

#define SHM_EVENT_MIN	  16u	     /* [segment] events: smallest ring but none (0) */
#define SHM_EVENT_MAX	  (1u << 20) /* and the largest */
#define SHM_EVENT_DEFAULT 4096u	     /* 512 KiB of records */

/* What happened (shm_event.kind). Numbers are ABI: a tool of the same major reads them. */
enum shm_event_kind {
	SHM_EV_NONE = 0,
	SHM_EV_WORKER_CRASH = 1,   /* a worker exited unasked: reason, code, signal */
	SHM_EV_WORKER_RESTART = 2, /* a worker is running again after one: code = ms it took */
	SHM_EV_MEMCAP = 3,	   /* a worker was stopped by its memory cap (its exit) */
	SHM_EV_INTENSITY = 4,	   /* the restart intensity was exceeded: the instance stops */
	SHM_EV_HANG = 5,	   /* a worker missed its heartbeat: code = ms silent */
	SHM_EV_POISON = 6,	   /* a message that ended its worker too often was dropped;
				    * code = the times it did */
	SHM_EV_AGENT_SPAWN = 7,	   /* an agent ran its init for the first time */
	SHM_EV_AGENT_STOP = 8,	   /* an agent was stopped (reason: the DOWN reason) */
	SHM_EV_AGENT_CRASH = 9,	   /* an agent's callback failed: it restarts, or is removed
				    * past its intensity (reason SHOAL_DOWN_FAILED) */
	SHM_EV_SLO_VIOLATION = 10, /* a latency budget was broken (the supervisor's [slo]
				    * checks): text "call p50 143us > 1ns", code = the
				    * budget's line in its file */
	SHM_EV_KIND_COUNT = 11,
};

/* A short stable name of a kind ("worker-crash", ...), "?" for an unknown number. */
const char *shm_event_kind_name(uint32_t kind);

/*
 * A short name of an event's reason code, by its kind: a worker's exit reason ("signal",
 * "memory cap", ...), an agent's DOWN reason ("stopped", "failed", ...); "-" for none, "?"
 * for a number not known. Any thread.
 */
const char *shm_event_reason_name(uint32_t kind, uint32_t reason);

/*
 * Bytes of the event region for cfg: the ring's head and cfg->events records, or 0 for no
 * ring. Pure function of cfg (shm_layout_compute()).
 */
uint64_t shm_event_region_size(const struct shm_cfg *cfg);

/*
 * Start an event of kind in *e: everything zero, worker -1, code -1, slot UINT32_MAX; the
 * caller fills in what it knows, then calls shm_event_append(). Any thread.
 */
void shm_event_init(struct shm_event *e, enum shm_event_kind kind);
/* Set e's agent name (cut to fit, NUL-terminated; NULL is ""). Any thread. */
void shm_event_set_name(struct shm_event *e, const char *name);
/* Set e's text with printf's format (cut to fit). Any thread. */
void shm_event_set_text(struct shm_event *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Append e (its seq and check ignored; time_ns set now if 0) as the next event: one
 * fetch_add claims its number, the record is written and published, the segment's change
 * counter is bumped (a follower wakes). Lock-free and wait-free: it never waits for another
 * writer, alive or dead. Returns 0 and the event's number in *seq_out (if not NULL), -ENODATA
 * when the segment has no ring (an older layout minor, or [segment] events = 0), -EROFS on a
 * read-only attachment. Any process with a writable attachment, any thread.
 */
int shm_event_append(struct shm_seg *seg, const struct shm_event *e, uint64_t *seq_out);

/*
 * The ring's size in records, 0 when the segment has none (or its region cannot hold what its
 * header claims). Read-only safe; any thread.
 */
uint32_t shm_event_capacity(const struct shm_seg *seg);
/*
 * Events claimed so far: the number the next one will get. Events [next - capacity, next)
 * may still be read. Acquire: a record whose number it covers has been claimed. 0 without a
 * ring. Read-only safe; any thread.
 */
uint64_t shm_event_next(const struct shm_seg *seg);
/*
 * Copy event n into *out (out->seq set to n). Returns 0; -ENOENT n is not claimed yet; -ESTALE it
 * was overwritten (n is older than the ring holds); -EAGAIN it is incomplete: its writer is still
 * at it, died at it, or was lapped mid-write (the caller decides whether to look again later; it
 * never becomes readable if its writer died); -ENODATA no ring. Never waits. Read-only safe; any
 * thread.
 */
int shm_event_read(const struct shm_seg *seg, uint64_t n, struct shm_event *out);

/* What a scan (shm_event_scan()) passed over without returning it; the scan adds to it. */
struct shm_event_scan {
	uint64_t missed;     /* events overwritten before the reader got to them */
	uint64_t incomplete; /* events skipped as incomplete (a writer died or was lapped) */
	bool held;	     /* the last scan stopped at an incomplete event (SHM_EVENT_HOLD) */
};
/* Flags of shm_event_scan(). */
#define SHM_EVENT_HOLD 0x1u /* stop at an incomplete event instead of skipping it */

/*
 * Read the events from *cursor on, up to max of them into out (oldest first), and move
 * *cursor past what it read or passed over: events already overwritten are counted in
 * st->missed (the cursor jumps to the oldest kept), incomplete ones in st->incomplete, or,
 * with SHM_EVENT_HOLD, the scan stops at the first incomplete one (st->held; the cursor stays
 * on it, for a follower that looks again after the next change and skips it once it judges
 * its writer gone: *cursor + 1, st->incomplete + 1). A cursor at or past the end reads
 * nothing. Returns how many events it copied. Never waits. Read-only safe; any thread.
 */
uint32_t shm_event_scan(const struct shm_seg *seg, uint64_t *cursor, struct shm_event *out,
			uint32_t max, unsigned flags, struct shm_event_scan *st);

/*
 * Test hook: when set (a build with -Dtest_hooks=true), an appender calls it at numbered
 * steps so a test can kill it exactly there. NULL in production.
 */
enum {
	SHM_EVENT_STEP_CLAIMED = 1, /* the number claimed, the record not yet marked */
	SHM_EVENT_STEP_MARKED = 2,  /* the record marked odd, the body not written */
	SHM_EVENT_STEP_HALF = 3,    /* half the body written */
};
extern void (*shm_event_test_hook)(int step);

#endif
