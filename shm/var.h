/*
 * Coordination variables: named int64, double or blob values in the segment (region
 * SHM_R_VARS), each with a version and its last writer's handle, claim tag and time.
 *
 * Reads are lock-free and never torn, make no syscall and no store: any attachment,
 * read-only included, any thread. Writers (a process slot, seg->self; one writing thread
 * per process slot, as for the registry) lock the variables of an update with their claim
 * tag; a writer killed at any instruction leaves every variable of its update at the old
 * value or the new one, never between, and never locked for good (shm/var.c, top comment).
 */
#ifndef SHM_VAR_H
#define SHM_VAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"

/* Types (the public SHOAL_VAR_* have the same values). */
enum shm_var_type {
	SHM_VAR_INT = 1,    /* int64_t */
	SHM_VAR_DOUBLE = 2, /* double */
	SHM_VAR_BLOB = 3,   /* 0..cfg.var_bytes bytes */
};

/* Any version: an update without a compare-and-set. */
#define SHM_VAR_ANY UINT64_MAX
/* Variables an update or a read of several may name at once. */
#define SHM_VAR_MANY 16u

/* One variable of an update: what to install, and the version it must still have. */
struct shm_var_op {
	uint64_t id;	  /* the variable (from shm_var_create() / shm_var_lookup()) */
	uint32_t type;	  /* enum shm_var_type: must be the variable's */
	uint32_t len;	  /* bytes at data: 8 for a number, 0..var_bytes for a blob */
	const void *data; /* the value (an int64_t or a double for a number) */
	uint64_t expect;  /* compare-and-set: the version it must have, SHM_VAR_ANY none */
};

/* A value as read. */
struct shm_var_val {
	uint32_t type;	  /* enum shm_var_type */
	uint32_t len;	  /* value bytes (8 for a number) */
	uint64_t version; /* 0 when created, one more for every update that changed it */
	uint64_t writer;  /* the last writer's handle (0 none, or the creator's) */
	uint64_t wtag;	  /* the last writer's claim tag (process slot and epoch) */
	uint64_t time_ns; /* CLOCK_REALTIME of that write */
	union {
		int64_t i; /* SHM_VAR_INT */
		double d;  /* SHM_VAR_DOUBLE */
	} num;
	void *buf;    /* blob: where to copy it (the caller's; may be NULL with cap 0) */
	uint32_t cap; /* bytes at buf */
};

/*
 * Create variable name in registry namespace ns, of type, value zero (empty blob) at
 * version 0, and register its name. 0 and *id; -EEXIST if the name is taken (by a variable:
 * its id in *id; by an agent: *id 0); -ENOSPC (no free variable, or the registry is full);
 * -EINVAL (bad name, namespace or type); -EROFS (no process slot); -ENODEV (the segment has
 * no variables). Any process with a slot; one writing thread per slot.
 */
int shm_var_create(struct shm_seg *seg, uint32_t ns, const char *name, size_t len, uint32_t type,
		   uint64_t *id);
/* The variable named name in ns: 0 and *id, or -ENOENT (none, or the name is an agent's). */
int shm_var_lookup(const struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		   uint64_t *id);
/*
 * Read a variable into *out (out->buf/cap say where a blob goes). 0; -ENOENT (no such
 * variable: the id is not a live one); -EMSGSIZE (a blob larger than out->cap: out->len
 * says how large, nothing copied). Lock-free: a reader never waits and never writes.
 */
int shm_var_read(const struct shm_seg *seg, uint64_t id, struct shm_var_val *out);
/* shm_var_lookup() then shm_var_read(). */
int shm_var_read_name(const struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		      struct shm_var_val *out);
/*
 * Read n (1..SHM_VAR_MANY) variables as of one instant: of any update, out shows all of its
 * variables or none. Returns as shm_var_read() (the first error), or -EINVAL for n, or
 * -EAGAIN if updates kept coming for longer than a few hundred attempts.
 */
int shm_var_read_many(const struct shm_seg *seg, const uint64_t *ids, uint32_t n,
		      struct shm_var_val *out);
/*
 * Update n (1..SHM_VAR_MANY, distinct) variables as one: each takes one version step, and
 * readers see all the new values or none. writer is recorded as the writer's handle. 0;
 * -EBUSY (an op's expect differs from its variable's version: nothing changed, that
 * variable's current version in *cur if not NULL, its index among ops in *bad if not NULL);
 * -ENOENT (an id that is no live variable); -EPROTOTYPE (an op's type is not its
 * variable's); -EMSGSIZE (a blob larger than var_bytes, or a number not 8 bytes); -EINVAL
 * (n, or the same variable twice); -EAGAIN (a live writer held one of them for longer than
 * SHM_VAR_WAIT_NS: nothing changed, try again); -EROFS (no process slot). *bad names the
 * op of -ENOENT, -EPROTOTYPE and -EMSGSIZE too. Never waits for a dead writer: its
 * update is finished or undone on the spot. Any process with a slot; one writing thread per
 * slot.
 */
int shm_var_update(struct shm_seg *seg, const struct shm_var_op *ops, uint32_t n, uint64_t writer,
		   uint64_t *cur, uint32_t *bad);
#define SHM_VAR_WAIT_NS 2000000ull
/* shm_var_update() waiting up to wait_ns (not SHM_VAR_WAIT_NS) for a live writer. */
int shm_var_update_wait(struct shm_seg *seg, const struct shm_var_op *ops, uint32_t n,
			uint64_t writer, uint64_t wait_ns, uint64_t *cur, uint32_t *bad);
/* What an agent's callback waits at most: it never blocks its worker longer. */
#define SHM_VAR_WAIT_AGENT_NS 20000ull

/* A variable's name, namespace and type: 0, or -ENOENT. name gets NUL-terminated. */
int shm_var_info(const struct shm_seg *seg, uint64_t id, uint32_t *ns, char *name, size_t cap,
		 uint32_t *type);
/* Visit live variables (id, ns, name, type); stop when fn returns non-zero (returned). */
typedef int (*shm_var_visit_fn)(uint64_t id, uint32_t ns, const char *name, uint32_t type,
				void *arg);
int shm_var_foreach(const struct shm_seg *seg, shm_var_visit_fn fn, void *arg);
/* The largest blob a variable of this segment holds (cfg.var_bytes), 0 without variables. */
uint32_t shm_var_bytes(const struct shm_seg *seg);
/* Publications of the variable so far (for notifications to come), or 0. */
uint64_t shm_var_notify_seq(const struct shm_seg *seg, uint64_t id);

/*
 * Consensus proposals' claim on variable id (one open proposal per variable): take it for
 * the round whose ref (shm_round_ref(slot, gen, 0)) is ref, a round record the caller has
 * claimed. 0 and the variable's version in *version (the proposal commits by compare-and-set
 * on it); -EBUSY if another proposal holds it (its round ref in *held, the variable's version
 * in *version); -ENOENT (no such variable). A claim whose round is over or whose owner died
 * is cleared on the way. Any process with a slot.
 */
int shm_var_propose_claim(struct shm_seg *seg, uint64_t id, uint64_t ref, uint64_t *version,
			  uint64_t *held);
/* Drop the claim of round ref on variable id, if it still holds it. Its owner, when done. */
void shm_var_propose_release(struct shm_seg *seg, uint64_t id, uint64_t ref);
/* The round ref of variable id's open proposal, or 0 (none, or a stale claim). Read-only. */
uint64_t shm_var_proposal(const struct shm_seg *seg, uint64_t id);

/*
 * Finish or undo every variable claim a dead owner of process slot `slot` left (the
 * supervisor, after noticing the death, before the slot is reused): a committed batch is
 * rolled forward, an uncommitted one's locks released, a variable created but not named
 * freed; a consensus proposal's claim whose round's owner is dead is cleared. Claims of a
 * live owner of the slot are left alone, so a second pass over every slot is safe. A caller without
 * a process slot of its own (seg->self: the supervisor adopting a dead one's segment, before it
 * claims slot 0) cannot roll a batch forward: it leaves it (readers see its values all the same)
 * for a pass made with a slot. Returns the number of claims resolved.
 */
int shm_var_repair(struct shm_seg *seg, uint32_t slot);
/* No lock or creation claim held by a dead process. 0 or -EUCLEAN with a sentence in err. */
int shm_var_check(const struct shm_seg *seg, char *err, size_t errlen);

/* Counters of the region (read-only safe). */
struct shm_var_stats {
	uint32_t capacity;  /* variables */
	uint32_t live;	    /* created */
	uint32_t locked;    /* locked by a writer right now (or by a dead one) */
	uint64_t forward;   /* dead writers' committed batches rolled forward */
	uint64_t back;	    /* dead writers' uncommitted locks released */
	uint64_t freed;	    /* dead creators' unnamed variables freed */
	uint32_t proposing; /* with an open consensus proposal (a live round holds the claim) */
	uint32_t stale;	    /* with a claim of a proposer that is gone (the repair clears it) */
};
int shm_var_stats(const struct shm_seg *seg, struct shm_var_stats *st);

/*
 * Subscriptions (shm/varsub.c has the protocol): a subscriber (an agent's or a client inbox's
 * handle) gets one notification after each update of a variable it subscribed to (or of one
 * whose name starts with its prefix), coalesced while one is still in its mailbox. This layer
 * decides who gets one; workers/var.c sends them.
 */
/* A notification to send. */
struct shm_var_note {
	uint64_t who;	  /* the subscriber */
	uint64_t sub;	  /* the subscription's reference (shm_var_sub_add()) */
	uint64_t var;	  /* the variable (the first of the update the subscription covers) */
	uint64_t version; /* its version when collected */
	uint64_t writer;  /* the update's writer (0: a repair's re-send) */
	uint32_t count;	  /* variables of the update it covers */
	uint32_t rsvd;	  /* zero */
};
/*
 * Subscribe who to variable var (var != 0, prefix NULL) or to the names in namespace ns that
 * start with prefix (var 0, len 1..64 bytes). host: the claim tag of the client process
 * whose inbox who is (the subscription dies with it), 0 for an agent. 0 and *ref; -ENOSPC
 * (table full: [segment] subscriptions), -ENOENT (var is no live variable), -EINVAL, -EROFS
 * (no process slot), -ENODEV (no subscriptions in this segment). Any process with a slot.
 */
int shm_var_sub_add(struct shm_seg *seg, uint64_t who, uint64_t host, uint64_t var, uint32_t ns,
		    const char *prefix, size_t len, uint64_t *ref);
/* Remove subscription ref (if who is not 0: only if it is who's). 0 or -ENOENT. */
int shm_var_sub_del(struct shm_seg *seg, uint64_t ref, uint64_t who);
/* Remove every subscription of who (an agent stopping, an inbox closing). Returns how many. */
int shm_var_sub_drop_who(struct shm_seg *seg, uint64_t who);
/*
 * After an update of ids[0..n): the notifications to send, from entry *cursor on (start at
 * 0), at most cap into out; *cursor moves past the entries looked at (UINT32_MAX or the
 * table's end: done). Each returned entry is held SENDING under our tag: pass every one to
 * shm_var_sub_sent() once its put was tried. Never waits. The writer, right after its update.
 */
int shm_var_sub_collect(struct shm_seg *seg, const uint64_t *ids, uint32_t n, uint64_t writer,
			uint32_t *cursor, struct shm_var_note *out, uint32_t cap);
/* The put of n came back err (0 sent, -EAGAIN full: owed, -ENOENT/-ESTALE: subscriber gone). */
void shm_var_sub_sent(struct shm_seg *seg, const struct shm_var_note *n, int err);
/*
 * The subscriber's consumer took the notification of subscription ref: the next update
 * sends another. Before the handler reads the value.
 */
void shm_var_sub_taken(struct shm_seg *seg, uint64_t ref);
/*
 * After process slot `slot` died: free the subscriptions it was making and those of its
 * client inboxes; its notifications taken but not put become owed. Returns how many
 * entries changed. The supervisor, before the slot is reused; then
 * shm_var_sub_collect_owed() for the re-sends.
 */
int shm_var_sub_repair(struct shm_seg *seg, uint32_t slot);
/*
 * The re-sends after slot's death (who 0): entries owed a notification, and entries of
 * variables whose current value slot's dead owner wrote that were not told of it. Or (who
 * not 0, slot ignored) the entries of subscriber who owed one: its consumer catching up once
 * its mailbox has room. As shm_var_sub_collect().
 */
int shm_var_sub_collect_owed(struct shm_seg *seg, uint32_t slot, uint64_t who, uint32_t *cursor,
			     struct shm_var_note *out, uint32_t cap);
/*
 * The subscriptions covering variable id (naming it, or a prefix of its name), from entry
 * *cursor on (start at 0), at most cap into out (who, sub and var set; nothing else), without
 * touching their coalescing state: for events every subscriber hears once each (a consensus
 * outcome). *cursor moves past the entries looked at. Returns how many. Read-only: any
 * attachment.
 */
int shm_var_sub_list(const struct shm_seg *seg, uint64_t id, uint32_t *cursor,
		     struct shm_var_note *out, uint32_t cap);
/* The subscription table's counters (read-only safe). */
struct shm_var_sub_stats {
	uint32_t capacity;  /* entries ([segment] subscriptions) */
	uint32_t live;	    /* subscriptions now */
	uint32_t queued;    /* of those, with a notification in the subscriber's mailbox */
	uint32_t owed_now;  /* of those, owed one a full mailbox refused */
	uint64_t notes;	    /* notifications sent */
	uint64_t coalesced; /* updates a pending notification already covered */
	uint64_t owed;	    /* notifications a full mailbox refused (re-sent later) */
};
int shm_var_sub_stats(const struct shm_seg *seg, struct shm_var_sub_stats *st);

/*
 * Test hook: when set (a build with -Dtest_hooks=true), writers call it at numbered steps so
 * a test can kill a writer exactly there. Compiled out otherwise.
 */
enum {
	SHM_VAR_STEP_CLAIMED = 1,    /* create: slot claimed, not filled */
	SHM_VAR_STEP_LIVE = 2,	     /* create: slot LIVE, name not registered */
	SHM_VAR_STEP_LOCKED = 10,    /* update: after each lock taken */
	SHM_VAR_STEP_WRITING = 11,   /* update: record WRITING, entries partly written */
	SHM_VAR_STEP_COMMITTED = 12, /* update: record COMMITTED, nothing applied */
	SHM_VAR_STEP_BUFFER = 13,    /* update: a new value half written into its buffer */
	SHM_VAR_STEP_APPLIED = 14,   /* update: after each variable published, lock still held */
	SHM_VAR_STEP_UNLOCKED = 15,  /* update: after each lock released */
	SHM_VAR_STEP_DONE = 16,	     /* update: record back to IDLE */
	SHM_VAR_STEP_HELPING = 20,   /* a dead writer's batch copied, before taking its locks */
};
extern void (*shm_var_test_hook)(int step);

#endif
