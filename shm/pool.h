/*
 * Agent pools in the segment: a named set of pre-spawned agents of one type that holders
 * check out and check in, with a FIFO queue of waiters when none is free. shm/pool.c has the
 * protocol; workers/pool.c delivers what it decides (grants and timeouts as messages) and
 * the supervisor spawns the agents.
 */
#ifndef SHM_POOL_H
#define SHM_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/shm.h"

#define SHM_POOL_NAME 48u /* bytes of a pool's name, NUL included */

/* Pool states (shm_pool.state). */
enum shm_pool_state {
	SHM_POOL_FREE = 0,
	SHM_POOL_SETUP = 1, /* claimed by its creator (shm_pool.lock), members being added */
	SHM_POOL_LIVE = 2,
};

/* A member's holder word (shm_pool_member.holder) besides a holder's claim tag. */
#define SHM_POOL_IDLE	  0ull /* free to check out */
#define SHM_POOL_RETIRING 1ull /* an overflow member nobody needs: the supervisor stops it */

/* What a pool decided that someone must tell a waiter (workers/pool.c sends it). */
enum shm_pool_note_kind {
	SHM_POOL_GRANT = 1,   /* the waiter got `agent` */
	SHM_POOL_TIMEOUT = 2, /* its deadline passed first */
};

struct shm_pool_note {
	enum shm_pool_note_kind kind;
	uint32_t pool;
	uint64_t to;	/* the waiter's handle (an agent or a client's inbox) */
	uint64_t ref;	/* its checkout's reference */
	uint64_t agent; /* GRANT: the agent it holds now */
};

/*
 * Called with the pool's lock held for each note; must not block. Returns 0 when the note
 * reached its waiter (a GRANT's waiter entry is then freed), else a negative errno (the grant
 * stays recorded for shm_pool_redeliver() or the waiter's own look, shm_pool_wait_result()).
 */
typedef int (*shm_pool_notify_fn)(void *arg, const struct shm_pool_note *n);

/* Region bytes for cfg (max_pools pools of pool_members members and waiter entries). Pure. */
uint64_t shm_pool_region_size(const struct shm_cfg *cfg);

/*
 * Create pool `name` (1..SHM_POOL_NAME-1 bytes) of agents of `type`, `size` members at rest
 * and up to `overflow` more on demand (size + overflow <= cfg.pool_members). The pool is left
 * SETUP and locked by the caller: add its members (shm_pool_add()), then shm_pool_publish().
 * 0 and the pool's index in *id, -EEXIST, -ENOSPC (no free pool), -EINVAL, -EROFS (no process
 * slot). A creator that dies before publishing leaves a pool the next creator or the repair
 * frees.
 */
int shm_pool_create(struct shm_seg *seg, const char *name, const char *type, uint32_t size,
		    uint32_t overflow, uint32_t *id);
/*
 * Add agent to pool id as a member (overflow: spawned beyond size on demand). The caller
 * holds the pool's lock (its creator before publishing; otherwise shm_pool_add_overflow()).
 * 0 or -ENOSPC.
 */
int shm_pool_add(struct shm_seg *seg, uint32_t id, uint64_t agent, bool overflow);
/* Publish a pool the caller created: LIVE, unlocked. */
void shm_pool_publish(struct shm_seg *seg, uint32_t id);
/* Drop a pool the caller created and has not published. */
void shm_pool_abandon(struct shm_seg *seg, uint32_t id);
/* The LIVE pool named name: 0 and *id, or -ENOENT. Any process (read-only too). */
int shm_pool_find(const struct shm_seg *seg, const char *name, uint32_t *id);

/*
 * Check out an agent of pool id for handle `who` (an agent or a client inbox; the caller's
 * process slot holds it). 0: *agent is ours now. 1: none was free; a waiter entry was queued
 * (FIFO) and its index is in *wslot: the grant comes as a note to `who` with `ref` (or the
 * deadline passes: a TIMEOUT note, deadline_ns on the CLOCK_MONOTONIC scale, 0 none).
 * -ENOENT no such pool, -EAGAIN none free and queue_if_busy false, -ENOSPC the waiter queue
 * is full, -EROFS no process slot. Notes for other waiters may be made on the way.
 */
int shm_pool_checkout(struct shm_seg *seg, uint32_t id, uint64_t who, uint64_t ref,
		      uint64_t deadline_ns, bool queue_if_busy, uint64_t *agent, uint32_t *wslot,
		      shm_pool_notify_fn fn, void *arg);
/*
 * Return agent to pool id: the head waiter gets it (a note), or it is free again (an
 * overflow member with no waiter retires). 0, -ENOENT (not a member), -EPERM (not held by
 * our process).
 */
int shm_pool_checkin(struct shm_seg *seg, uint32_t id, uint64_t agent, shm_pool_notify_fn fn,
		     void *arg);
/*
 * A queued checkout's outcome, by its waiter (wslot and ref from shm_pool_checkout()): with
 * cancel false, 0 and *agent if granted (the entry is freed), 1 still waiting, -ENOENT the
 * entry is gone (its grant was delivered as a note, or it timed out: look in the inbox).
 * With cancel true a still-waiting entry is withdrawn (returns 1).
 */
int shm_pool_wait_result(struct shm_seg *seg, uint32_t id, uint32_t wslot, uint64_t ref,
			 bool cancel, uint64_t *agent);

/*
 * Whoever repairs dead process slot `slot`: the members it held return (to the head waiter
 * or free), its waiter entries are withdrawn, a pool it was creating is freed, a lock it held
 * is taken over. Returns members returned.
 */
int shm_pool_repair(struct shm_seg *seg, uint32_t slot, shm_pool_notify_fn fn, void *arg);
/*
 * Agent `who` stopped (its process lives on): the members it held return, its waiter
 * entries are withdrawn. Returns members returned.
 */
int shm_pool_release_holder(struct shm_seg *seg, uint64_t who, shm_pool_notify_fn fn, void *arg);
/*
 * Periodic duty: waiters past their deadline get a TIMEOUT note and are withdrawn; grants
 * that did not reach their waiter are tried again. Returns the notes made.
 */
int shm_pool_tick(struct shm_seg *seg, uint64_t now_ns, shm_pool_notify_fn fn, void *arg);

/* One pool, read for tools (shm_pool_read()); counts are a snapshot, not consistent. */
struct shm_pool_info {
	char name[SHM_POOL_NAME];
	char type[SHM_TYPE_MAX];
	uint32_t state;	    /* enum shm_pool_state */
	uint32_t size;	    /* members at rest */
	uint32_t overflow;  /* more on demand */
	uint32_t members;   /* members now */
	uint32_t held;	    /* of those, checked out */
	uint32_t waiting;   /* queued checkouts */
	uint32_t entries;   /* waiter entries in use (queued, or granted and not yet taken) */
	uint32_t want;	    /* overflow agents asked of the supervisor */
	uint64_t checkouts; /* since creation */
	uint64_t waits;	    /* of those, queued first */
	uint64_t timeouts;  /* queued checkouts that timed out */
};
/* Pool id's state and counts: 0, or -ENOENT (free slot or out of range). Any process. */
int shm_pool_read(const struct shm_seg *seg, uint32_t id, struct shm_pool_info *out);
/* Member i of pool id: its agent (0 none) and holder word. -ENOENT past the members. */
int shm_pool_member(const struct shm_seg *seg, uint32_t id, uint32_t i, uint64_t *agent,
		    uint64_t *holder);

/*
 * For the supervisor: overflow agents pool id wants now (taken: the count drops to 0); and
 * adding one it spawned (takes the lock; hands it to the head waiter). shm_pool_retired()
 * gives the next retiring member's agent (and removes it) or 0.
 */
uint32_t shm_pool_take_want(struct shm_seg *seg, uint32_t id);
int shm_pool_add_overflow(struct shm_seg *seg, uint32_t id, uint64_t agent, shm_pool_notify_fn fn,
			  void *arg);
uint64_t shm_pool_retired(struct shm_seg *seg, uint32_t id);
/*
 * For the supervisor: a member at rest whose agent is gone for good (stopped, or removed past
 * its restart intensity: its slot freed or reused) and nobody holds. Returns its index and
 * agent, or -ENOENT. An overflow member is dropped here instead (-ENOENT after it).
 * shm_pool_replace() puts `agent` in its place if it is still that one (0, or -ESTALE) and
 * hands it to a waiter.
 */
int shm_pool_next_gone(struct shm_seg *seg, uint32_t id, uint32_t *member, uint64_t *old);
int shm_pool_replace(struct shm_seg *seg, uint32_t id, uint32_t member, uint64_t old,
		     uint64_t agent, shm_pool_notify_fn fn, void *arg);

/*
 * Test hook: called at numbered steps of locked sections so a test can kill the caller
 * exactly there. NULL in production: one load per step, on slow paths only.
 */
enum {
	SHM_POOL_STEP_QUEUE_CLAIMED = 1, /* a waiter entry claimed, not yet WAITING */
	SHM_POOL_STEP_QUEUED = 2,	 /* WAITING, nwaiting not yet counted */
	SHM_POOL_STEP_GRANT_TAKEN = 3,	 /* a grant's member taken, its waiter not yet told */
};
extern void (*shm_pool_test_hook)(int step);

#endif
