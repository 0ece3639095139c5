/* shm: the segment (create, attach, validate), the process and agent tables. */
#ifndef SHM_SHM_H
#define SHM_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/layout.h"

/* Validation outcomes: each names one way a segment can be unusable. */
enum shm_verr {
	SHM_V_OK = 0,
	SHM_V_TRUNCATED,      /* smaller than its header, or than the size it records */
	SHM_V_MAGIC,	      /* not a shoal segment */
	SHM_V_VERSION,	      /* another major layout version */
	SHM_V_NOT_READY,      /* the creator has not published it (yet) */
	SHM_V_HEADER,	      /* header fields out of range (sizes, counts, names) */
	SHM_V_REGION_BOUNDS,  /* a region lies outside the segment or is misaligned */
	SHM_V_REGION_OVERLAP, /* two regions overlap */
	SHM_V_CONFIG,	      /* regions disagree with the configuration they claim */
	SHM_V_FOREIGN,	      /* owned by another user */
	SHM_V_NAME,	      /* the header names another instance than the file name */
	SHM_V_SPARSE,	      /* holes: pages a full filesystem cannot back */
	SHM_V_COUNT,
};

/* The errno an shm_verr maps to (negative), e.g. -EBADMSG for a truncated segment. */
int shm_verr_errno(enum shm_verr v);
/* A short stable name for an shm_verr ("truncated", "magic", ...). */
const char *shm_verr_name(enum shm_verr v);

/*
 * Check that the bytes [base, base + size) are a usable segment. Trusts nothing: every
 * offset and size is checked against size before it is read. On failure writes a
 * sentence naming the problem into err (if errlen > 0). Any thread, any process;
 * reads only, and only inside the given range.
 */
enum shm_verr shm_seg_validate(const void *base, size_t size, char *err, size_t errlen);

/* Defaults for a configuration, sized for this machine's demo. */
void shm_cfg_default(struct shm_cfg *cfg);
/* Check a configuration's ranges; 0 or -EINVAL with a sentence in err. */
int shm_cfg_check(const struct shm_cfg *cfg, char *err, size_t errlen);
/*
 * Compute the region table for cfg. Returns the segment size in bytes, or 0 if cfg is
 * out of range. Pure function of cfg.
 */
uint64_t shm_layout_compute(const struct shm_cfg *cfg, struct shm_region regions[SHM_R_COUNT]);
/*
 * How many agent slots clients' inboxes may hold at once: [segment] client_inboxes, else a
 * quarter of max_agents (at least 1), so clients can never take the room agents need.
 */
uint32_t shm_cfg_inbox_budget(const struct shm_cfg *cfg);

/* Bytes each sized region needs; pure functions of cfg (defined by the owning module). */
uint64_t shm_reg_region_size(const struct shm_cfg *cfg);
uint64_t shm_grp_region_size(const struct shm_cfg *cfg);
uint64_t shm_pool_region_size(const struct shm_cfg *cfg);
/* Coordination variables (shm/var.c): the commit records and the variables; 0 if none. */
uint64_t shm_var_region_size(const struct shm_cfg *cfg);
/* Bounds of [segment] variables and variable_bytes (shm_cfg.max_vars, var_bytes). */
#define SHM_VAR_MAX	  (1u << 20)
#define SHM_VAR_BYTES_MAX 4096u
#define SHM_VAR_SUB_MAX	  (1u << 20)

struct shm_reg_hdr;
struct shm_reg_bucket;
struct shm_reg_entry;
struct shm_reg_ext;

/*
 * The registry's geometry, computed once when the segment is created or attached (after
 * the region table was validated; shm_reg_geo_init()). The registry uses this copy on
 * every call: no re-validation per lookup, and a header changed later cannot move its
 * bounds. cap 0: the region does not match the capacity (calls return -EUCLEAN).
 */
struct shm_reg_geo {
	struct shm_reg_hdr *hdr;
	struct shm_reg_bucket *b; /* bucket headers */
	struct shm_reg_entry *e;  /* entries (what a lookup reads) */
	struct shm_reg_ext *x;	  /* their extensions (what writers and meta readers add) */
	uint32_t cap;		  /* entries, a power of two, or 0 */
	uint32_t nb;		  /* buckets */
	uint32_t mask;		  /* nb - 1 */
};

/* An attachment to a segment, private to one process. */
struct shm_seg {
	uint8_t *base;	/* mapping */
	size_t size;	/* mapped bytes */
	int fd;		/* the shm object, or -1 */
	bool writable;	/* mapped PROT_WRITE */
	bool creator;	/* this process created it */
	uint32_t self;	/* our process slot, or UINT32_MAX */
	uint32_t epoch; /* our epoch, valid with self */
	uint64_t tag;	/* SHM_TAG(self, epoch) */
	char instance[SHM_INSTANCE_MAX];
	char path[SHM_INSTANCE_MAX + 8]; /* "/shoal.<instance>" */
	struct shm_hdr *hdr_rw;		 /* read-only attachments: the header page mapped
					  * read-write for shm_change_wait(), or NULL */
	bool hdr_rw_failed;		 /* that mapping was tried and refused */
	struct shm_reg_geo reg;		 /* the registry's geometry (process-local copy) */
};

/* Fill seg->reg from the (validated) header; cap 0 if the region cannot hold the table.
 * shm_seg_create() and shm_seg_attach() call it. */
void shm_reg_geo_init(struct shm_seg *seg);

/* Flags for shm_seg_attach(). */
#define SHM_ATTACH_RO	     0x1u /* map read-only (tools) */
#define SHM_ATTACH_ANY_OWNER 0x2u /* accept a segment owned by another uid */
#define SHM_ATTACH_NOWAIT    0x4u /* do not wait for the ready word */
#define SHM_ATTACH_UNREADY   0x8u /* accept a never-published segment (inspect a crash) */

/* Valid instance names: 1..SHM_INSTANCE_MAX-1 of [A-Za-z0-9_.-], not starting with '.'. */
bool shm_is_valid_instance(const char *instance);

/*
 * Create /shoal.<instance> sized for cfg, every page reserved (posix_fallocate) and mapped,
 * header filled but not yet published: the caller initialises what it owns, then calls
 * shm_seg_publish(). The name appears only once all of that succeeded. Returns 0, -EEXIST
 * (an instance of that name exists, or is being created by a live process), -EINVAL, -ENOSPC
 * (/dev/shm cannot hold it: err names both sizes; no file is left), or another -errno; err gets a
 * sentence. A name held by a half-created segment whose creator died is taken over: 0, with a note
 * in err saying so. The creator. Any thread.
 */
int shm_seg_create(const char *instance, const struct shm_cfg *cfg, struct shm_seg **out, char *err,
		   size_t errlen);
/*
 * Release-store the ready word: from now on attachers may read everything. Drops the
 * creation lock shm_seg_create() took (a file unpublished and unlocked has a dead creator).
 * Creator.
 */
void shm_seg_publish(struct shm_seg *seg);

/*
 * Attach to an existing instance: opens (never blocks: O_NONBLOCK), maps (read-only with
 * SHM_ATTACH_RO), waits up to timeout_ms for the ready word, validates a copy of the header
 * read with pread(). Returns 0 or -errno (-ENOENT no such instance, -EBADMSG/-EPROTO/... per
 * shm_verr_errno: -EPERM another user's or not a regular file, -EFAULT a sparse file,
 * -ENXIO a header naming another instance; -ETIMEDOUT not ready in time, -EOWNERDEAD never
 * published and its creator is dead); err gets a sentence naming the instance and the
 * problem.
 */
int shm_seg_attach(const char *instance, unsigned flags, int timeout_ms, struct shm_seg **out,
		   char *err, size_t errlen);
/* Unmap and close; releases our process slot first if we hold one. */
void shm_seg_detach(struct shm_seg *seg);
/*
 * Call fn(seg, arg) with a SIGBUS on seg's mapping (a page its file cannot back: truncated
 * under us, or a hole on a full filesystem) turned into a return of -EFAULT, the byte offset
 * of the faulting read in *bad_off (if not NULL); otherwise fn's return. A SIGBUS anywhere
 * else keeps its default action. Installs a SIGBUS handler for the call and restores the
 * previous one: for tools that read a segment, single-threaded; not reentrant.
 */
int shm_seg_guard(const struct shm_seg *seg, int (*fn)(const struct shm_seg *seg, void *arg),
		  void *arg, uint64_t *bad_off);
/*
 * Remove the shm object's name, whatever file it names now (mappings stay valid). 0 or
 * -errno. For tests and scratch names only: an instance's name may have been taken by a new
 * instance since it was opened; remove with shm_seg_remove() or shm_seg_unlink_if().
 */
int shm_seg_unlink(const char *instance);
/*
 * Remove seg's name only if it still names seg's own file (device and inode of seg->fd):
 * an instance stopping after another took its name leaves the other's segment alone.
 * 0, -ESTALE (the name is another file's now; left alone), -ENOENT, or another -errno.
 * Any process holding the attachment (the supervisor, clean).
 */
int shm_seg_remove(const struct shm_seg *seg);
/*
 * Remove /shoal.<instance> only if it is still the file (dev, ino) a tool judged (lstat
 * before it looked). 0, -ESTALE, -ENOENT, -EINVAL or another -errno.
 */
int shm_seg_unlink_if(const char *instance, dev_t dev, ino_t ino);
/*
 * Remove /shoal.<instance> if it is a half-created segment whose creator died: unpublished
 * (never made ready) and nobody holds its creation lock (also a zero-filled file an older
 * shoal left). 0 removed (err: a phrase naming what, "a half-created segment of ..."),
 * -EBUSY not half-created (published: use liveness; or corrupt: attach says how),
 * -EINPROGRESS its creator is alive (err says so), -ENOENT, -EPERM another user's or not a regular
 * file, or another -errno. shm_seg_create() calls it on a name that is taken; shoal clean before
 * anything else.
 */
int shm_seg_remove_abandoned(const char *instance, char *err, size_t errlen);
struct stat;
/* lstat of /shoal.<instance>, for shm_seg_unlink_if(). 0, -ENOENT, -EINVAL or -errno. */
int shm_seg_stat(const char *instance, struct stat *st);

static inline struct shm_hdr *shm_hdr(const struct shm_seg *seg)
{
	return (struct shm_hdr *)seg->base;
}

/* Pointer to a region's first byte; the region table was validated at attach. */
static inline void *shm_region(const struct shm_seg *seg, enum shm_region_id id)
{
	return seg->base + shm_hdr(seg)->regions[id].off;
}

/*
 * Region id's first byte, bounded on every call: NULL in a segment older than layout minor
 * `minor` or without the region, or when the region is not inside the mapping, not aligned
 * or smaller than min_size (a header changed after the attach's validation must not send a
 * reader outside the mapping).
 */
static inline void *shm_region_checked(const struct shm_seg *seg, enum shm_region_id id,
				       uint32_t minor, uint64_t min_size)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_region *r = &h->regions[id];

	if (h->layout_minor < minor || h->nregions <= (uint32_t)id || r->off > seg->size ||
	    r->size > seg->size - r->off || r->off % SHM_ALIGN || r->size < min_size)
		return NULL;
	return seg->base + r->off;
}

static inline struct shm_proc *shm_proc_at(const struct shm_seg *seg, uint32_t slot)
{
	return (struct shm_proc *)shm_region(seg, SHM_R_PROCS) + slot;
}

static inline struct shm_agent *shm_agent_at(const struct shm_seg *seg, uint32_t slot)
{
	return (struct shm_agent *)shm_region(seg, SHM_R_AGENTS) + slot;
}

/* Offset of agent slot's mailbox from the segment base (per-node arenas). */
uint64_t shm_mbox_off(const struct shm_cfg *cfg, const struct shm_region *mbox_region,
		      uint32_t slot);

static inline void *shm_mbox_at(const struct shm_seg *seg, uint32_t slot)
{
	const struct shm_hdr *h = shm_hdr(seg);
	return seg->base + shm_mbox_off(&h->cfg, &h->regions[SHM_R_MBOX], slot);
}

/* NUMA node whose arena holds this agent slot's mailbox, and the slot range of a node. */
uint32_t shm_mbox_node(const struct shm_cfg *cfg, uint32_t slot);
void shm_mbox_node_range(const struct shm_cfg *cfg, uint32_t node, uint32_t *first,
			 uint32_t *count);

/* --- process table --- */

/*
 * Take a free process slot for the calling process with a fresh epoch; the slot is left
 * STARTING. Sets seg->self, seg->epoch, seg->tag. Returns 0, -ENOSPC (table full; with
 * reap, shm_proc_reap() runs over the table first: a dead claimer's slot is taken at once,
 * a dead owner's waits for the supervisor's repair), -EROFS on a read-only attachment.
 */
int shm_proc_claim(struct shm_seg *seg, enum shm_role role, bool reap);
/*
 * Claim a specific slot for another process (the supervisor, for a worker it forks):
 * the slot must be FREE or EXITED. Returns 0 and the new epoch, or -EBUSY.
 */
int shm_proc_claim_slot(struct shm_seg *seg, uint32_t slot, enum shm_role role, pid_t pid,
			uint64_t start_time, uint32_t *epoch_out);
/*
 * Judge process slot `slot` once and, if whoever holds it is gone, move it on: a claimer
 * that died before publishing its claim leaves the slot EXITED (nothing to repair); a dead
 * owner's slot is marked DEAD for the supervisor's repair; a reaper that died mid-mark is
 * finished (or undone, if the owner it judged was replaced by a live one). Never takes a
 * slot whose claimer or owner lives. Returns 1 if this call marked or freed the slot, 0 if
 * not, -EINVAL (no such slot), -EROFS. Any process with a writable attachment: a claimer
 * over a full table (shm_proc_claim() with reap), the supervisor's client scan.
 */
int shm_proc_reap(struct shm_seg *seg, uint32_t slot);
/*
 * Test hook: when set, a claimer (and a reaper) calls it at numbered steps (SHM_PROC_STEP_*)
 * so a test can stop or kill it exactly there. NULL in production: one load per step.
 */
enum {
	SHM_PROC_STEP_HELD = 1,	       /* claim: the exclusive step done, nothing else written */
	SHM_PROC_STEP_OWN = 2,	       /* claim: the own word stored */
	SHM_PROC_STEP_FILLED = 3,      /* claim: owner fields filled, STARTING not yet published */
	SHM_PROC_STEP_PUBLISHED = 4,   /* claim: STARTING published, before returning */
	SHM_PROC_STEP_REAP_JUDGED = 9, /* reap: the owner judged gone, its state not yet held */
	SHM_PROC_STEP_REAP_HELD = 10,  /* reap: the state word held, DEAD not yet stored */
};
extern void (*shm_proc_test_hook)(int step);
/* Set our slot's state (owner only). */
void shm_proc_set_state(struct shm_seg *seg, enum shm_proc_state st);
/*
 * Release our slot (clean exit, no claims held): the slot records it as its last exit, and the
 * header's exit log too unless we are a client (an orderly detach is no exit worth a record).
 */
void shm_proc_release(struct shm_seg *seg);
/*
 * The agent types table (SHM_R_TYPES): shm_types_publish() writes n entries (the
 * supervisor, before its first worker); shm_types_read() copies at most cap of them into out
 * and sets *n. Returns 0, -ENOENT (a segment without the table), -ENODATA (not published
 * yet), -EAGAIN (being written, or a writer died writing it), -EUCLEAN (a corrupt count),
 * -E2BIG (publish: n > SHM_TYPES_MAX).
 */
int shm_types_publish(struct shm_seg *seg, const struct shm_type_entry *e, uint32_t n);
int shm_types_read(const struct shm_seg *seg, struct shm_type_entry *out, uint32_t cap,
		   uint32_t *n);

/*
 * The distribution table (SHM_R_DIST): shm_dist_publish() writes d (its seq ignored; the
 * gateway, its only writer); shm_dist_read() copies it into out, its strings terminated.
 * Returns 0, -ENOENT (a segment without the table), -ENODATA (no gateway wrote it),
 * -EAGAIN (being written, or a writer died writing it), -EUCLEAN (a corrupt count).
 */
int shm_dist_publish(struct shm_seg *seg, const struct shm_dist *d);
int shm_dist_read(const struct shm_seg *seg, struct shm_dist *out);

/*
 * Write process slot `slot`'s telemetry block from t (its seq ignored): the slot's owner.
 * Read one (read-only safe): 0, or -EAGAIN if a flush was under way, -ENOENT if the segment
 * has none (an older minor) or the slot is out of range.
 */
void shm_telem_flush(struct shm_seg *seg, uint32_t slot, const struct shm_telem *t);
int shm_telem_read(const struct shm_seg *seg, uint32_t slot, struct shm_telem *out);
/*
 * Append the exit just noted in process slot `slot` (its last_* fields) to the segment's
 * exit log. Lock-free: any process that notes an exit (the supervisor, a process releasing
 * its own slot). No-op on a segment older than layout minor 5.
 */
void shm_exit_record(struct shm_seg *seg, uint32_t slot);
/*
 * The exit of slot's owner already recorded, noted again (the supervisor learns a status
 * late): rewrite its record in place if it is still in the log, else record it.
 */
void shm_exit_update(struct shm_seg *seg, uint32_t slot);
/*
 * Copy up to max of the most recent exits, newest first, into out; returns how many, and
 * in *total (if not NULL) how many were ever recorded. Read-only safe; a record being
 * overwritten while read is skipped.
 */
uint32_t shm_exit_log_read(const struct shm_seg *seg, struct shm_exit_rec *out, uint32_t max,
			   uint64_t *total);
/* Refresh our slot's heartbeat. */
void shm_proc_heartbeat(struct shm_seg *seg);

/*
 * Is the process that holds this claim tag gone? Cheap path (no syscall): the slot's
 * epoch differs or its state is DEAD/EXITED/FREE. With probe, also asks the kernel
 * (kill(pid, 0) and /proc starttime), for owners the supervisor does not watch.
 */
bool shm_tag_is_dead(const struct shm_seg *seg, uint64_t tag, bool probe);
/* Is the owner of this slot alive right now (asks the kernel)? */
bool shm_proc_is_alive(const struct shm_seg *seg, uint32_t slot);

/* Free an agent slot index; the agent table's claim protocol (supervisor uses it). */
int shm_agent_alloc(struct shm_seg *seg, uint32_t node_hint, uint32_t *slot_out);
/*
 * shm_agent_alloc() that also writes the slot's type (NUL-terminated, cut to
 * SHM_TYPE_MAX - 1 bytes) and name (nlen bytes, cut to 63), for tools, before S2 publishes
 * the slot: nobody writes them after. type may be NULL, name NULL with nlen 0.
 */
int shm_agent_alloc_named(struct shm_seg *seg, uint32_t node_hint, const char *type,
			  const char *name, size_t nlen, uint32_t *slot_out);
void shm_agent_free(struct shm_seg *seg, uint32_t slot);

/* --- change events (shm/change.c) --- */

/*
 * The segment's change counter, for shm_change_wait(): read it BEFORE checking the
 * condition you wait for, so a change made after the check moves the counter past the
 * snapshot. Acquire: a snapshot that includes a change sees the store behind it. Any
 * process, any thread, read-only attachments included.
 */
uint32_t shm_change_read(const struct shm_seg *seg);
/*
 * Count a change of a word others wait for (after its store): a process slot's state,
 * exit record or restart count, an agent's state or restart count, the instance state.
 * One atomic add; a FUTEX_WAKE only while someone waits. Any process with a writable
 * attachment.
 */
void shm_change_bump(struct shm_seg *seg);
/*
 * Sleep until the change counter differs from `seen` (a shm_change_read() value) or
 * CLOCK_MONOTONIC reaches deadline_ns (shm_now_ns() scale). Returns 0 on a change (the
 * condition may still be false: check it again with a new snapshot), -ETIMEDOUT, or
 * another -errno from the futex. Use:
 *	for (;;) { c = shm_change_read(seg); if (cond) break;
 *		   if (shm_change_wait(seg, c, deadline)) fail; }
 * Any process, one thread per attachment at a time for a read-only attachment (its
 * first wait maps the header page read-write, once, to announce itself; without the
 * permission for that, or on a segment of layout minor 0, it returns 0 every 1 ms: a poll).
 */
int shm_change_wait(struct shm_seg *seg, uint32_t seen, uint64_t deadline_ns);

/* --- instance liveness --- */

enum shm_liveness {
	SHM_LIVE_OK = 0,       /* supervisor alive, heartbeat fresh */
	SHM_LIVE_UNRESPONSIVE, /* supervisor alive, heartbeat older than the limit */
	SHM_LIVE_STALE,	       /* creator/supervisor gone and the segment was not stopped */
	SHM_LIVE_STOPPED,      /* marked stopped or supervisor-dead: a post-mortem */
};
enum shm_liveness shm_seg_liveness(const struct shm_seg *seg, uint64_t stale_after_ns);
/*
 * Is the instance gone, by liveness l (from shm_seg_liveness())? -EOWNERDEAD when its
 * supervisor died (stale, or marked supervisor-dead by its workers), -ESHUTDOWN when it
 * stopped in order, 0 while it runs.
 */
int shm_seg_gone(const struct shm_seg *seg, enum shm_liveness l);
const char *shm_liveness_name(enum shm_liveness l);

/* --- small helpers --- */
uint64_t shm_now_ns(void);			       /* CLOCK_MONOTONIC */
uint64_t shm_wall_ns(void);			       /* CLOCK_REALTIME */
uint64_t shm_pid_start_time(pid_t pid);		       /* /proc/<pid>/stat starttime, 0 if gone */
bool shm_pid_is_alive(pid_t pid, uint64_t start_time); /* a zombie counts as alive */
/* Alive and not a zombie (exited, not yet reaped by its parent): it can still run code. */
bool shm_pid_is_running(pid_t pid, uint64_t start_time);
/* Its state letter in /proc/<pid>/stat ('R', 'S', 'T' stopped, 'Z' zombie, ...); 0 if gone. */
char shm_pid_state(pid_t pid);
/* What shoal reads of /proc/<pid>/stat. */
struct shm_pid_stat {
	char state;	       /* field 3: 'R', 'S', 'T' stopped, 'Z' zombie, ... */
	uint64_t start_time;   /* field 22, in clock ticks since boot: tells a reused pid */
	int exit_code;	       /* field 52: its wait status once it exits (0 before); -1 unshown */
	uint64_t utime, stime; /* fields 14, 15: CPU time in user and kernel mode, clock ticks */
	uint64_t rss_pages;    /* field 24: resident set size, pages */
};
/* Read it: 0, -ESRCH (no such process), -EPROTO (unreadable), -errno. Any process. */
int shm_pid_stat_read(pid_t pid, struct shm_pid_stat *out);
const char *shm_inst_state_name(uint32_t st);
const char *shm_proc_state_name(uint32_t st);
const char *shm_agent_state_name(uint32_t st); /* enum shm_agent_state */
const char *shm_role_name(uint32_t role);
const char *shm_exit_reason_name(uint32_t r);
/* Copy string s, NUL included, into a fixed field of cap bytes; false if it does not fit. */
bool shm_put_field(char *dst, size_t cap, const char *s);

#endif
