/*
 * The registry's and the group table's shared layout (an ABI, like shm/layout.h), shared by
 * shm/registry.c, shm/groups.c and the tools that read them. See the comment block at the
 * top of shm/registry.c for the protocol.
 */
#ifndef SHM_REGISTRY_INT_H
#define SHM_REGISTRY_INT_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

struct shm_seg;

#define SHM_REG_BUCKET_ENTRIES 8u

/* Entry and group states: the low 8 bits of a ctl word. */
enum shm_reg_state {
	SHM_REG_EMPTY = 0,    /* free; ctl is 0 */
	SHM_REG_RESERVED = 1, /* claimed by tag: being filled or being undone */
	SHM_REG_PENDING = 2,  /* filled, registration deciding (uniqueness scan) */
	SHM_REG_ABORTED = 3,  /* a pending registration another writer made lose */
	SHM_REG_LIVE = 4,     /* registered; the high bits are the entry's seq at publish */
	SHM_REG_DELETING = 5, /* claimed by tag for removal */
	SHM_REG_UPDATING = 6, /* claimed by tag for re-registration (intent in its slot) */
};

/* ctl = (tag or seq) << 8 | state. Tags are < 2^48, seqs are taken mod 2^56. */
#define SHM_REG_CTL(st, hi)  (((uint64_t)(hi) << 8) | (uint64_t)(st))
#define SHM_REG_CTL_STATE(c) ((uint32_t)((c)&0xffu))
#define SHM_REG_CTL_TAG(c)   ((c) >> 8)

/* key word: hash (32) | namespace (16) << 32 | name length (8) << 48 | meta length << 56 */
#define SHM_REG_KEY_MATCH      0x00ffffffffffffffull /* everything but the meta length */
#define SHM_REG_KEY_LEN(k)     ((uint32_t)(((k) >> 48) & 0xffu))
#define SHM_REG_KEY_NS(k)      ((uint32_t)(((k) >> 32) & 0xffffu))
#define SHM_REG_KEY_METALEN(k) ((uint32_t)((k) >> 56))

/* route word: home bucket (32) | progress (32) << 32: overflow counters this entry holds. */
#define SHM_REG_ROUTE(home, prog) ((uint64_t)(home) | ((uint64_t)(prog) << 32))
#define SHM_REG_ROUTE_HOME(r)	  ((uint32_t)(r))
#define SHM_REG_ROUTE_PROG(r)	  ((uint32_t)((r) >> 32))

/* The registry region's first 64 bytes. Zero at creation; counters for tools. */
struct shm_reg_hdr {
	_Atomic uint64_t repaired; /* dead claims resolved (by writers or repair) */
	_Atomic uint64_t aborted;  /* pending registrations made to lose */
	_Atomic uint64_t waits;	   /* writer waits on a live writer's update of one entry */
	_Atomic uint64_t lost;	   /* claims a live writer found taken from it (must stay 0) */
	uint8_t pad[64 - 32];	   /* to 64 */
};
static_assert(sizeof(struct shm_reg_hdr) == 64, "shm_reg_hdr ABI");

/*
 * A bucket header: one per 8 entries, 16 bytes, packed 4 to a cache line so the whole
 * index (64 KiB for 32,768 entries) stays in a core's L2: a lookup then misses on the
 * entry's line only. Writers to one bucket share the line with 3 others; writes are rare
 * next to lookups.
 */
struct shm_reg_bucket {
	_Atomic uint64_t tags;	   /* byte i: 0x80 | 7 hash bits of entry i while claimed, 0 free */
	_Atomic uint32_t overflow; /* entries homed at/before this bucket that live after it */
	uint32_t reserved;	   /* zero */
};
static_assert(sizeof(struct shm_reg_bucket) == 16, "shm_reg_bucket ABI");
static_assert(offsetof(struct shm_reg_bucket, overflow) == 8, "shm_reg_bucket ABI");

/* Bytes of the bucket array: rounded up to a cache line so entries start on one. */
#define SHM_REG_BUCKETS_BYTES(cap)                                                                 \
	((((uint64_t)(cap) / SHM_REG_BUCKET_ENTRIES * sizeof(struct shm_reg_bucket)) + 63) & ~63ull)

/*
 * An entry: one 64-byte line holding everything a lookup of a name of up to
 * SHM_REG_NAME_HOT bytes reads (ctl, key, handle, the name's first five words), so the
 * lines lookups touch are half the table. The rest is in the entry's extension.
 */
#define SHM_REG_NAME_HOT_WORDS 5u
#define SHM_REG_NAME_HOT       (8u * SHM_REG_NAME_HOT_WORDS)
struct shm_reg_entry {
	_Atomic uint64_t ctl;	 /* state | tag (claimed) or seq (live) */
	_Atomic uint64_t key;	 /* hash, namespace, lengths (SHM_REG_KEY_*) */
	_Atomic uint64_t handle; /* the agent handle */
	_Atomic uint64_t name[SHM_REG_NAME_HOT_WORDS]; /* name bytes 0..39, zero-padded */
};
static_assert(sizeof(struct shm_reg_entry) == 64, "shm_reg_entry ABI");
static_assert(offsetof(struct shm_reg_entry, key) == 8, "shm_reg_entry ABI");
static_assert(offsetof(struct shm_reg_entry, handle) == 16, "shm_reg_entry ABI");
static_assert(offsetof(struct shm_reg_entry, name) == 24, "shm_reg_entry ABI");

/*
 * An entry's extension: 64 bytes in a parallel array (entry i's is extension i), written
 * only by the holder of the entry's claim, like the entry's own data words; covered by
 * the entry's ctl for readers.
 */
struct shm_reg_ext {
	_Atomic uint64_t seq;	  /* bumped by every claim that rewrites data: a generation */
	_Atomic uint64_t route;	  /* home bucket and overflow-counter progress */
	_Atomic uint64_t meta[3]; /* metadata bytes (length in key) */
	_Atomic uint64_t name[8 - SHM_REG_NAME_HOT_WORDS]; /* name bytes 40..63, zero-padded */
};
static_assert(sizeof(struct shm_reg_ext) == 64, "shm_reg_ext ABI");
static_assert(offsetof(struct shm_reg_ext, route) == 8, "shm_reg_ext ABI");
static_assert(offsetof(struct shm_reg_ext, meta) == 16, "shm_reg_ext ABI");
static_assert(offsetof(struct shm_reg_ext, name) == 40, "shm_reg_ext ABI");

/* Offsets in the registry region: the header, the buckets, the entries, the extensions. */
#define SHM_REG_ENTRIES_OFF(cap) (sizeof(struct shm_reg_hdr) + SHM_REG_BUCKETS_BYTES(cap))
#define SHM_REG_EXTS_OFF(cap)                                                                      \
	(SHM_REG_ENTRIES_OFF(cap) + (uint64_t)(cap) * sizeof(struct shm_reg_entry))

/*
 * The intent line's registry words (shm_proc.reg_intent[]): what a re-registration is
 * installing, written by the owner before it claims the entry UPDATING.
 */
enum {
	SHM_REG_INTENT_OP = 0,	    /* 0 none/being written; else (entry + 1) | op count << 32 */
	SHM_REG_INTENT_HANDLE = 1,  /* the new handle */
	SHM_REG_INTENT_META = 2,    /* 3 words of new metadata */
	SHM_REG_INTENT_METALEN = 5, /* its length */
	SHM_REG_INTENT_COUNT = 7,   /* the owner's op counter (owner-private) */
	/* word 6: a group join in flight (shm/groups.c), with its handle in word 1 */
};

/* A process group: a 128-byte header followed by cfg.group_members handle words. */
struct shm_grp {
	_Atomic uint64_t ctl;	  /* state | tag or seq, as a registry entry (no UPDATING) */
	_Atomic uint64_t seq;	  /* bumped on every claim from EMPTY */
	_Atomic uint64_t key;	  /* hash (32) | name length << 48 */
	uint64_t reserved;	  /* zero */
	_Atomic uint64_t name[8]; /* the name, zero-padded */
	uint8_t pad[128 - 96];	  /* to 128 */
};
static_assert(sizeof(struct shm_grp) == 128, "shm_grp ABI");
static_assert(offsetof(struct shm_grp, name) == 32, "shm_grp ABI");

/*
 * Test hook: when set, writers call it at numbered steps (SHM_REG_STEP_*) so a test can
 * stop a writer (SIGKILL itself) exactly there. NULL in production: one load per step.
 */
enum {
	SHM_REG_STEP_RESERVED = 1,   /* register: entry reserved, nothing written */
	SHM_REG_STEP_FILLED = 2,     /* register: data and tag byte written */
	SHM_REG_STEP_COUNTER = 3,    /* register: after each overflow increment (+ record) */
	SHM_REG_STEP_PENDING = 4,    /* register: PENDING stored, before the scan */
	SHM_REG_STEP_SCANNED = 5,    /* register: scan done, before the LIVE CAS */
	SHM_REG_STEP_LIVE = 6,	     /* register: LIVE, before returning */
	SHM_REG_STEP_DELETING = 10,  /* unregister: claimed DELETING */
	SHM_REG_STEP_UNTAGGED = 11,  /* undo: tag byte cleared */
	SHM_REG_STEP_RECORDED = 12,  /* undo: progress recorded, counter not yet decremented */
	SHM_REG_STEP_INTENT = 20,    /* reregister: intent written and armed, not claimed */
	SHM_REG_STEP_UPDATING = 21,  /* reregister: claimed UPDATING */
	SHM_REG_STEP_REWRITING = 22, /* reregister: seq bumped, handle rewritten, meta not */
};
extern void (*shm_reg_test_hook)(int step);

/* The home bucket of (ns, name) in this segment's table, or -errno. Tests and tools. */
int shm_reg_home(const struct shm_seg *seg, uint32_t ns, const char *name, size_t len);

#endif
