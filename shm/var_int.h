/*
 * The coordination variables' shared layout (an ABI, like shm/layout.h): the region
 * SHM_R_VARS (layout minor 8). shm/var.c's top comment has the protocol; shm/varsub.c's the
 * subscriptions'.
 *
 * Region: a 64-byte header, then one commit record per process slot (cfg.max_procs), then
 * the variables (cfg.max_vars), each a control line, a name line and two value buffers, then
 * (layout minor 9) the subscriptions (cfg.max_subs), 128 bytes each.
 */
#ifndef SHM_VAR_INT_H
#define SHM_VAR_INT_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"
#include "shm/shm.h"

/* Variables one batch (one commit record) may change at once. */
#define SHM_VAR_BATCH_MAX 16u

/*
 * A variable's id, as the registry's handle word holds it for the variable's name: the
 * variable's index with bit 31 set in the low half, its generation in the high half. An
 * agent handle's low half is an agent slot, below cfg.max_agents <= 2^20 (shm_cfg_check()),
 * so no agent handle has bit 31 there: the two can never be confused, and a send to a
 * variable's id finds no agent.
 */
#define SHM_VAR_ID_BIT	       0x80000000u
#define SHM_VAR_ID(index, gen) (((uint64_t)(gen) << 32) | SHM_VAR_ID_BIT | (uint64_t)(index))
#define SHM_VAR_ID_IS_VAR(id)  (((uint32_t)(id)&SHM_VAR_ID_BIT) != 0)
#define SHM_VAR_ID_INDEX(id)   ((uint32_t)(id) & ~SHM_VAR_ID_BIT)
#define SHM_VAR_ID_GEN(id)     ((uint32_t)((id) >> 32))

/* A variable slot's ctl word: state in the low byte, a claim tag or the generation above. */
enum shm_var_state {
	SHM_VAR_FREE = 0,    /* ctl is 0 */
	SHM_VAR_CLAIMED = 1, /* tag above: a creator is filling it */
	SHM_VAR_LIVE = 2,    /* generation above: readable through SHM_VAR_ID(index, gen) */
};
#define SHM_VAR_CTL(st, hi)  (((uint64_t)(hi) << 8) | (uint64_t)(st))
#define SHM_VAR_CTL_STATE(c) ((uint32_t)((c)&0xffu))
#define SHM_VAR_CTL_HI(c)    ((c) >> 8)

/* A variable's published word: version << 1 | the buffer that holds that version. */
#define SHM_VAR_PUB(version, buf) (((uint64_t)(version) << 1) | ((uint64_t)(buf)&1u))
#define SHM_VAR_PUB_VERSION(p)	  ((p) >> 1)
#define SHM_VAR_PUB_BUF(p)	  ((uint32_t)((p)&1u))

/* The meta word: type (8 bits) | namespace (16) << 8 | name length (8) << 24. */
#define SHM_VAR_META(type, ns, len)                                                                \
	((uint64_t)(type) | ((uint64_t)(ns) << 8) | ((uint64_t)(len) << 24))
#define SHM_VAR_META_TYPE(m) ((uint32_t)((m)&0xffu))
#define SHM_VAR_META_NS(m)   ((uint32_t)(((m) >> 8) & 0xffffu))
#define SHM_VAR_META_LEN(m)  ((uint32_t)(((m) >> 24) & 0xffu))

/* The region's first 64 bytes: counters for tools and tests. Zero at creation. */
struct shm_var_hdr {
	_Atomic uint64_t forward;   /* dead writers' committed batches rolled forward */
	_Atomic uint64_t back;	    /* dead writers' uncommitted locks released (rolled back) */
	_Atomic uint64_t freed;	    /* dead creators' unnamed variables freed */
	_Atomic uint32_t prefixes;  /* live prefix subscriptions (a hint: never too low) */
	uint32_t reserved;	    /* zero */
	_Atomic uint64_t sub_hwm;   /* subscription entries ever used: scans stop there */
	_Atomic uint64_t notes;	    /* notifications sent */
	_Atomic uint64_t coalesced; /* updates a pending notification already covered */
	_Atomic uint64_t owed;	    /* notifications a full mailbox refused (sent later) */
};
static_assert(sizeof(struct shm_var_hdr) == 64, "shm_var_hdr ABI");

/*
 * A variable's control line and name line. ctl, meta and name are written by the creator
 * while it holds the slot CLAIMED, before the release store that makes it LIVE, and never
 * after; pub and lock are the update protocol's words; notify counts publications; subs
 * counts the subscriptions naming the variable (a hint for writers, never too low: see
 * shm/varsub.c). proposal (a word that was reserved, zero) is the consensus proposals'
 * claim: 0 -> a round's ref (shm_round_ref(slot, gen, 0), never 0) by CAS, so one proposal
 * at a time is open on a variable; its owner is the round record's, and a claim whose record
 * was freed, reused or is owned by a dead process is stale: whoever finds it so clears it
 * (shm/var.c). gen and subs share what was one word (a generation is 32 bits).
 */
struct shm_var {
	_Atomic uint64_t ctl;	   /* SHM_VAR_CTL(state, tag or generation) */
	_Atomic uint64_t pub;	   /* SHM_VAR_PUB(version, buffer): the current value */
	_Atomic uint64_t lock;	   /* 0, or the claim tag of the writer that holds it */
	_Atomic uint64_t notify;   /* publications so far (bumped after each pub store) */
	_Atomic uint64_t meta;	   /* SHM_VAR_META(type, namespace, name length) */
	_Atomic uint64_t creating; /* a creator's tag until its name is registered, then 0 */
	_Atomic uint32_t gen;	   /* generation of the last creation (the id's high half) */
	_Atomic uint32_t subs;	   /* subscriptions naming it (layout minor 9; was zero) */
	_Atomic uint64_t proposal; /* 0, or the round ref of the open consensus proposal */
	_Atomic uint64_t name[8];  /* the name, zero-padded (for lists and repair) */
};
static_assert(sizeof(struct shm_var) == 128, "shm_var ABI");
static_assert(offsetof(struct shm_var, pub) == 8 && offsetof(struct shm_var, lock) == 16,
	      "shm_var ABI: control words on the first line");
static_assert(offsetof(struct shm_var, name) == 64, "shm_var ABI: name line");

/*
 * A value buffer: a 40-byte header and var_bytes of value, padded to a cache line. A number
 * is the first data word; a read of one touches the buffer's first line only.
 */
struct shm_var_buf {
	_Atomic uint64_t version; /* the version this buffer holds */
	_Atomic uint64_t writer;  /* the writer's handle (an agent's, a client's inbox), 0 none */
	_Atomic uint64_t wtag;	  /* the writer's claim tag */
	_Atomic uint64_t time_ns; /* CLOCK_REALTIME of the write */
	_Atomic uint64_t len;	  /* value bytes (8 for a number) */
	_Atomic uint64_t data[];  /* var_bytes */
};
static_assert(sizeof(struct shm_var_buf) == 40, "shm_var_buf ABI");
#define SHM_VAR_BUF_BYTES(vb) ((((uint64_t)(vb) + sizeof(struct shm_var_buf)) + 63) & ~63ull)
#define SHM_VAR_STRIDE(vb)    (sizeof(struct shm_var) + 2 * SHM_VAR_BUF_BYTES(vb))

/*
 * A commit record: one per process slot, written only by the slot's owner (or, once the
 * owner is dead, cleared by its repair). ctl = counter << 2 | state; the entries say what a
 * batch installs, so whoever finds its writer dead can finish it.
 */
enum shm_var_rec_state {
	SHM_VAR_REC_IDLE = 0,	   /* nothing committed */
	SHM_VAR_REC_WRITING = 1,   /* being written: means nothing yet */
	SHM_VAR_REC_COMMITTED = 2, /* the batch is decided: every entry will be installed */
};
#define SHM_VAR_REC_CTL(n, st) (((uint64_t)(n) << 2) | (uint64_t)(st))
#define SHM_VAR_REC_STATE(c)   ((uint32_t)((c)&3u))
#define SHM_VAR_REC_COUNTER(c) ((c) >> 2)
struct shm_var_rec {
	_Atomic uint64_t ctl;	  /* SHM_VAR_REC_CTL(counter, state) */
	_Atomic uint64_t tag;	  /* the claim tag the batch's locks hold */
	_Atomic uint64_t writer;  /* the writer's handle */
	_Atomic uint64_t time_ns; /* CLOCK_REALTIME of the batch */
	_Atomic uint64_t count;	  /* entries */
	uint64_t reserved[3];	  /* zero */
	/* then SHM_VAR_BATCH_MAX entries of SHM_VAR_ENT_BYTES(var_bytes) */
};
static_assert(sizeof(struct shm_var_rec) == 64, "shm_var_rec ABI");
struct shm_var_ent {
	_Atomic uint64_t id;	 /* the variable (SHM_VAR_ID) */
	_Atomic uint64_t old;	 /* its pub word the batch replaces */
	_Atomic uint64_t len;	 /* new value bytes */
	_Atomic uint64_t data[]; /* var_bytes */
};
static_assert(sizeof(struct shm_var_ent) == 24, "shm_var_ent ABI");
#define SHM_VAR_ENT_BYTES(vb) ((uint64_t)(vb) + sizeof(struct shm_var_ent))
#define SHM_VAR_REC_BYTES(vb)                                                                      \
	(((sizeof(struct shm_var_rec) + SHM_VAR_BATCH_MAX * SHM_VAR_ENT_BYTES(vb)) + 63) & ~63ull)

/* Offsets in the region: the header, the records, the variables. */
#define SHM_VAR_RECS_OFF	    sizeof(struct shm_var_hdr)
#define SHM_VAR_VARS_OFF(procs, vb) (SHM_VAR_RECS_OFF + (uint64_t)(procs)*SHM_VAR_REC_BYTES(vb))

/*
 * A subscription (layout minor 9): an entry of the table after the variables. ctl is 0
 * (free), SUB_CTL(CLAIMED, tag) while its subscriber's process fills it, SUB_CTL(LIVE, gen)
 * once it counts; the fields below ctl are written only while CLAIMED. pending says whether
 * the subscriber has a notification coming (shm/varsub.c).
 */
enum shm_var_sub_state {
	SHM_VAR_SUB_FREE = 0,
	SHM_VAR_SUB_CLAIMED = 1, /* tag above: being filled */
	SHM_VAR_SUB_LIVE = 2,	 /* generation above: notified */
};
/* pending: the state in the low 2 bits, a notifier's claim tag above while it sends. */
enum shm_var_sub_pending {
	SHM_VAR_PEND_IDLE = 0,	  /* no notification in its mailbox: the next update sends one */
	SHM_VAR_PEND_QUEUED = 1,  /* one is in its mailbox: updates coalesce into it */
	SHM_VAR_PEND_OWED = 2,	  /* a full mailbox refused one: the next update sends it */
	SHM_VAR_PEND_SENDING = 3, /* a notifier (tag above) is putting one */
};
#define SHM_VAR_PEND(st, tag)	(((uint64_t)(tag) << 2) | (uint64_t)(st))
#define SHM_VAR_PEND_STATE(p)	((uint32_t)((p)&3u))
#define SHM_VAR_PEND_TAG(p)	((p) >> 2)
#define SHM_VAR_SUB_CTL(st, hi) (((uint64_t)(hi) << 8) | (uint64_t)(st))
#define SHM_VAR_SUB_STATE(c)	((uint32_t)((c)&0xffu))
#define SHM_VAR_SUB_HI(c)	((c) >> 8)
/* A subscription's reference: index and generation, as a variable's id is built. */
#define SHM_VAR_SUB_REF(index, gen) (((uint64_t)(gen) << 32) | (uint64_t)(index))
#define SHM_VAR_SUB_REF_INDEX(r)    ((uint32_t)(r))
#define SHM_VAR_SUB_REF_GEN(r)	    ((uint32_t)((r) >> 32))
/* meta of a prefix subscription: namespace | prefix length << 16; 0 for one variable */
#define SHM_VAR_SUB_META(ns, len) ((uint64_t)(ns) | ((uint64_t)(len) << 16) | (1ull << 40))
#define SHM_VAR_SUB_IS_PREFIX(m)  (((m) >> 40) & 1u)
#define SHM_VAR_SUB_META_NS(m)	  ((uint32_t)((m)&0xffffu))
#define SHM_VAR_SUB_META_LEN(m)	  ((uint32_t)(((m) >> 16) & 0xffu))
struct shm_var_sub {
	_Atomic uint64_t ctl;	    /* SHM_VAR_SUB_CTL(state, tag or generation) */
	_Atomic uint64_t var;	    /* the variable's id; 0 for a prefix subscription */
	_Atomic uint64_t who;	    /* the subscriber: an agent's or a client inbox's handle */
	_Atomic uint64_t host;	    /* a client inbox's process claim tag (dies with it); 0 */
	_Atomic uint64_t pending;   /* SHM_VAR_PEND(state, tag) */
	_Atomic uint64_t seen;	    /* the version its last notification named */
	_Atomic uint64_t meta;	    /* SHM_VAR_SUB_META(ns, len) of a prefix; 0 */
	_Atomic uint64_t gen;	    /* generation of the last subscription here */
	_Atomic uint64_t prefix[8]; /* a prefix subscription's name prefix, zero-padded */
};
static_assert(sizeof(struct shm_var_sub) == 128, "shm_var_sub ABI");
static_assert(offsetof(struct shm_var_sub, prefix) == 64, "shm_var_sub ABI: prefix line");
#define SHM_VAR_SUBS_OFF(procs, vb, nvars)                                                         \
	(SHM_VAR_VARS_OFF(procs, vb) + (uint64_t)(nvars)*SHM_VAR_STRIDE(vb))

/* The region's geometry, from the header each call (checked, never trusted). */
struct shm_var_geo {
	uint8_t *base;
	uint32_t nvars;
	uint32_t vb; /* var_bytes */
	uint32_t nprocs;
	uint32_t nsubs; /* subscription entries (0: none) */
	uint64_t stride;
	uint64_t bufb;
	uint64_t recb;
	uint64_t entb;
};
/* The geometry of seg's region: 0, -ENODEV (no variables) or -EUCLEAN. shm/var.c. */
int shm_var_geo(const struct shm_seg *seg, struct shm_var_geo *g);
/* The live variable id names, or NULL. */
struct shm_var *shm_var_of(const struct shm_var_geo *g, uint64_t id);
/* The version id has now (0 if it is not live). */
uint64_t shm_var_version_of(const struct shm_var_geo *g, uint64_t id);
/* A live variable's namespace and name (NUL-terminated, cut to cap - 1). */
void shm_var_name_of(const struct shm_var *v, uint32_t *ns, char *name, size_t cap);
/* The claim tag of the writer of id's current value (0 if it is not live). */
uint64_t shm_var_last_wtag(const struct shm_var_geo *g, uint64_t id);
/* Variable index if it is live (and its id in *id), else NULL. */
struct shm_var *shm_var_slot(const struct shm_var_geo *g, uint32_t index, uint64_t *id);

#endif
