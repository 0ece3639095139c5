/*
 * The registry: (namespace, name) -> agent handle + metadata, lock-free, in the segment.
 *
 * Table. A power-of-two number of entries in buckets of 8, each bucket with a 16-byte
 * header (packed 4 to a line, so the index stays in L2): a tag word (one byte per entry:
 * 0x80 | 7 hash bits while the entry is claimed, 0 when it is free; a hint readers filter
 * with) and an F14-style overflow counter: how many entries passed this bucket (found it
 * full) on their way to where they live. A probe starts at the name's home bucket, steps by
 * the name's stride (odd, from its hash: double hashing, no primary clusters) and stops
 * after the first bucket whose counter is 0. A new entry takes the first free entry along
 * its sequence (in its home bucket the name's preferred entry first, which a lookup
 * prefetches while it reads the bucket header) and increments the counters of the buckets
 * it passed. Deletion empties the entry at once and decrements them again: there are no
 * tombstones, a freed entry is reused by the next insert.
 *
 * An entry is one 64-byte line with what a lookup reads (ctl, key, handle, the first 40
 * bytes of the name); its extension, a line in a parallel array, holds seq, route, meta
 * and the rest of a long name. Both are the entry's data, under the same ctl.
 *
 * Entry ctl word: state in the low byte, above it the claim tag SHM_TAG(slot, epoch) of
 * the writer holding it (RESERVED, PENDING, ABORTED, DELETING, UPDATING), or for LIVE the
 * entry's seq at publication, so every publication of an entry has its own ctl value.
 * Data words (key, name, handle, meta, route) are written only by the writer holding the
 * claim. seq is bumped at every claim that rewrites data.
 *
 * Lookups (no syscall, no store): load ctl (acquire), compare key and name, read handle
 * and meta, acquire fence, re-load ctl (a seqlock over ctl, shm/seqlock.h); the same value
 * means the copy is consistent.
 * While an entry is UPDATING its data is being rewritten, so a reader takes the new
 * handle/meta from the updater's intent line instead (written before the claim; checked
 * by its own op word and by ctl). A reader never waits for a writer, dead or alive.
 *
 * Register (uniqueness without a lock): reserve a free entry (CAS EMPTY -> RESERVED|tag),
 * fill it, set its tag byte, increment the counters from home to its bucket (recording
 * progress in route after each increment), store PENDING|tag (seq_cst), then scan the
 * name's whole probe chain (seq_cst loads). For an entry with the same name: LIVE or
 * UPDATING -> withdraw, -EEXIST; PENDING with a smaller (tag, index) -> withdraw unless its
 * owner is dead (then undo it and go on); PENDING with a larger one -> CAS it ABORTED.
 * Last, CAS own PENDING -> LIVE; it fails only if someone aborted us (-EEXIST). Two
 * writers both store PENDING before they scan, so (seq_cst total order) at least one sees
 * the other: at most one wins. The smallest pending one is aborted by nobody: at least
 * one wins unless a LIVE entry already did.
 *
 * Unregister: CAS LIVE|seq -> DELETING|tag (the linearisation point), clear the tag
 * byte, decrement the counters from the last one back (recording progress before each
 * decrement), store 0. Re-register: write the new handle/meta into the intent line, CAS
 * LIVE -> UPDATING|tag, bump seq, rewrite, store LIVE|seq.
 *
 * Crashes. Counters may err high after a crash (a longer probe), never low: increment
 * before recording, record before decrementing. A claim whose owner is dead is taken
 * over by CAS (its tag replaced by ours) and resolved by the same code the owner would
 * have run: RESERVED/PENDING/ABORTED and DELETING are undone/finished alike (clear the
 * tag byte, give back the counters route records, empty), UPDATING is finished from the
 * dead owner's intent (copied into our intent line before the takeover, so our own death
 * during it is repairable the same way). Writers meet dead claims in the uniqueness scan,
 * when the table looks full, and on the entry they want to delete or update;
 * shm_reg_repair() resolves all of a dead slot's claims; the death probe (a syscall) runs
 * only when a foreign claim is in the way.
 *
 * One waiting case remains: unregister or re-register of a name whose entry a live writer
 * holds UPDATING spins (yielding) until that writer finishes its few stores; if it is
 * dead, the waiter finishes its update and goes on. Readers never wait.
 *
 * One writing thread per attachment: the intent line belongs to the process slot.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/cpu.h"
#include "shm/hist.h"
#include "shm/registry.h"
#include "shm/registry_int.h"
#include "shm/seqlock.h"
#include "shm/shm.h"

#define EPB SHM_REG_BUCKET_ENTRIES

void (*shm_reg_test_hook)(int step);

#define STEP(n)                                                                                    \
	do {                                                                                       \
		if (__builtin_expect(shm_reg_test_hook != NULL, 0))                                \
			shm_reg_test_hook(n);                                                      \
	} while (0)

/* A name made ready for comparison: zero-padded words, hash, key, home, tag byte. */
struct rkey {
	uint64_t w[8];
	uint64_t key;	 /* without meta length */
	uint32_t nw;	 /* words to compare */
	uint32_t home;	 /* home bucket */
	uint32_t stride; /* probe step (odd): from the hash, so names of one home part ways */
	uint8_t tag;	 /* 0x80 | 7 hash bits */
	uint8_t pref;	 /* the entry of the home bucket a registration takes if it is free */
};

/* A consistent copy of an entry (for writers and tools). */
struct snap {
	uint64_t ctl, seq, key, handle, route;
	uint64_t w[8];
	uint64_t meta[3];
};

/*
 * Bytes of the registry region for cfg: a 64-byte header, the bucket headers (rounded to a
 * line), the entries, their extensions. Pure; the layout (shm_layout_compute()) calls it.
 */
uint64_t shm_reg_region_size(const struct shm_cfg *cfg)
{
	return SHM_REG_EXTS_OFF(cfg->reg_capacity) +
	       (uint64_t)cfg->reg_capacity * sizeof(struct shm_reg_ext);
}

/* Compute the registry's geometry once (see shm.h). The segment's creator and attachers. */
void shm_reg_geo_init(struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_region *r = &h->regions[SHM_R_REGISTRY];
	struct shm_reg_geo *g = &seg->reg;
	uint32_t cap = h->cfg.reg_capacity;
	uint8_t *base;

	memset(g, 0, sizeof(*g));
	/* never trust the segment: the region must hold what the capacity says */
	if (cap < 2 * EPB || (cap & (cap - 1)) || r->off > seg->size ||
	    r->size > seg->size - r->off || shm_reg_region_size(&h->cfg) > r->size)
		return;
	base = seg->base + r->off;
	g->hdr = (struct shm_reg_hdr *)base;
	g->b = (struct shm_reg_bucket *)(base + sizeof(struct shm_reg_hdr));
	g->e = (struct shm_reg_entry *)(base + SHM_REG_ENTRIES_OFF(cap));
	g->x = (struct shm_reg_ext *)(base + SHM_REG_EXTS_OFF(cap));
	g->nb = cap / EPB;
	g->mask = g->nb - 1;
	g->cap = cap;
}

/* The cached geometry: 0, or -EUCLEAN if the region did not match at attach. */
static inline int geo_get(const struct shm_seg *seg, struct shm_reg_geo *g)
{
	*g = seg->reg;
	return g->cap ? 0 : -EUCLEAN;
}

/*
 * The process slot a claim tag names, or NULL if the (untrusted) table cannot hold it.
 * Off the lookup fast path: only an UPDATING entry sends a reader here.
 */
static const struct shm_proc *tag_proc(const struct shm_seg *seg, uint64_t tag)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_region *r = &h->regions[SHM_R_PROCS];
	uint64_t slot = SHM_TAG_SLOT(tag);

	if (slot >= h->cfg.max_procs || r->off > seg->size || r->size > seg->size - r->off ||
	    (slot + 1) * sizeof(struct shm_proc) > r->size)
		return NULL;
	return (const struct shm_proc *)(seg->base + r->off) + slot;
}

/*
 * A name's probe step: odd, so with a power-of-two bucket count the sequence home,
 * home + stride, ... visits every bucket once. Taken from the key word's hash bits, so
 * whoever undoes an entry recomputes it from the entry alone. Double hashing instead of
 * linear probing: no primary clusters, short chains at 90% occupancy.
 */
static inline uint32_t stride_of(const struct shm_reg_geo *g, uint64_t key)
{
	return ((uint32_t)(key >> 8) | 1u) & g->mask;
}

/* Bit 8i+7 set for each zero byte i of v (exact, no false positives). */
static inline uint64_t zero_bytes(uint64_t v)
{
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full;

	return ~(((v & lo7) + lo7) | v | lo7);
}

/* Load 1..7 bytes without reading past them (little-endian, zero-padded). */
static inline uint64_t load_short(const char *p, size_t n)
{
	uint32_t a, b;
	uint64_t v;

	if (n >= 4) {
		memcpy(&a, p, 4);
		memcpy(&b, p + n - 4, 4);
		return a | ((uint64_t)b << (8 * (n - 4)));
	}
	v = (uint8_t)p[0];
	if (n > 1)
		v |= (uint64_t)(uint8_t)p[1] << 8;
	if (n > 2)
		v |= (uint64_t)(uint8_t)p[2] << 16;
	return v;
}

static inline uint64_t mix_word(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 31);
}

/*
 * The words of a name of 1..16 bytes (zero-padded) and its hash state after them. Loads
 * straight from the caller's bytes, fixed-size (no store-to-load forwarding stall); 8
 * bytes or more: the last 8 bytes in one load, overlapping the first word and shifted,
 * never past the name. No NUL check: name_nul().
 */
static inline __attribute__((always_inline)) void
name_short(const char *name, size_t len, uint64_t *w0, uint64_t *w1, uint64_t *h)
{
	uint64_t t;

	if (len >= 8) {
		memcpy(w0, name, 8);
		memcpy(&t, name + len - 8, 8);
		*w1 = len > 8 ? t >> (8 * (16 - len)) : 0;
	} else {
		*w0 = load_short(name, len);
		*w1 = 0;
	}
	*h = mix_word(*h, *w0);
	if (len > 8)
		*h = mix_word(*h, *w1);
}

/* Does a name of 1..16 bytes (words from name_short()) hold a NUL? */
static inline bool name_nul(uint64_t w0, uint64_t w1, size_t len)
{
	uint64_t z;

	/* only the name's own bytes count: the padding is zero */
	if (len < 8)
		return (zero_bytes(w0) & ((1ull << (8 * len)) - 1)) != 0;
	z = zero_bytes(w0);
	if (len > 8)
		z |= zero_bytes(w1) & (len == 16 ? ~0ull : (1ull << (8 * (len - 8))) - 1);
	return z != 0;
}

/* The key, home, stride, tag byte and preferred entry from a name's hash state. */
static inline __attribute__((always_inline)) void
key_finish(const struct shm_reg_geo *g, uint32_t ns, size_t len, uint64_t h, struct rkey *k)
{
	h *= 0x94d049bb133111ebull;
	h ^= h >> 29;
	k->nw = (uint32_t)(len + 7) / 8;
	k->key = (h & 0xffffffffull) | ((uint64_t)ns << 32) | ((uint64_t)len << 48);
	k->home = (uint32_t)(h >> 40) & g->mask;
	k->stride = stride_of(g, k->key);
	k->tag = (uint8_t)(0x80u | ((h >> 32) & 0x7fu));
	k->pref = (uint8_t)(h >> 61); /* bits no capacity uses for home */
}

/* A name's hash state before its words. */
static inline uint64_t hash_seed(uint32_t ns, size_t len)
{
	return 0x9e3779b97f4a7c15ull ^ ((uint64_t)ns << 8 | len);
}

/*
 * Validate a name and make its key: the name's words zero-padded, NUL check and a 64-bit
 * multiply-mix hash (one round per word) in the same pass.
 */
static inline __attribute__((always_inline)) int
key_make(const struct shm_reg_geo *g, uint32_t ns, const char *name, size_t len, struct rkey *k)
{
	uint64_t h = hash_seed(ns, len), zeros = 0, v;
	uint32_t nw = (uint32_t)(len + 7) / 8, i;

	if (__builtin_expect(!name || len == 0 || len > SHOAL_NAME_MAX || ns > SHM_NS_MAX, 0))
		return -EINVAL;
	if (len <= 16) {
		name_short(name, len, &k->w[0], &k->w[1], &h);
		if (name_nul(k->w[0], k->w[1], len))
			return -EINVAL;
	} else {
		for (i = 0; i + 1 < nw; i++) {
			memcpy(&v, name + 8 * i, 8);
			zeros |= zero_bytes(v);
			k->w[i] = v;
			h = mix_word(h, v);
		}
		/* the last 8 bytes, overlapping word i - 1 unless len is a multiple of 8 */
		memcpy(&v, name + len - 8, 8);
		zeros |= zero_bytes(v);
		v >>= 8 * (8 * nw - len);
		k->w[i] = v;
		h = mix_word(h, v);
		if (zeros)
			return -EINVAL; /* a NUL inside the name */
	}
	key_finish(g, ns, len, h, k);
	return 0;
}

/* Bit 8i+7 set for each byte i of word equal to b (exact, no false positives). */
static inline uint64_t match_bytes(uint64_t word, uint8_t b)
{
	return zero_bytes(word ^ (0x0101010101010101ull * b));
}

static inline uint64_t rotr64(uint64_t v, uint32_t n)
{
	return (v >> (n & 63)) | (v << ((64 - n) & 63));
}

static inline uint32_t bucket_of(uint32_t idx)
{
	return idx / EPB;
}

static inline uint64_t my_tag(const struct shm_seg *seg)
{
	return seg->tag;
}

/*
 * Priority of a pending registration: smaller wins. (tag, entry index) is unique even
 * if two claims carry the same tag.
 */
static inline bool prio_less(uint64_t tag_a, uint32_t idx_a, uint64_t tag_b, uint32_t idx_b)
{
	return tag_a < tag_b || (tag_a == tag_b && idx_a < idx_b);
}

/* Word i (0..7) of entry idx's name: the first SHM_REG_NAME_HOT_WORDS in the entry. */
static inline _Atomic uint64_t *name_word(const struct shm_reg_geo *g, uint32_t idx, uint32_t i)
{
	return i < SHM_REG_NAME_HOT_WORDS ? &g->e[idx].name[i]
					  : &g->x[idx].name[i - SHM_REG_NAME_HOT_WORDS];
}

static void entry_snap(const struct shm_reg_geo *g, uint32_t idx, struct snap *s)
{
	const struct shm_reg_entry *e = &g->e[idx];
	const struct shm_reg_ext *x = &g->x[idx];

	for (;;) {
		/* L0: seq_cst: the uniqueness scan's loads (Dekker with S0 in do_register()). */
		uint64_t c1 = atomic_load_explicit(&e->ctl, memory_order_seq_cst);
		/* L1: SQ3 (shm/seqlock.h): pairs with W0 in seq_bump() and the claimers' releases.
		 */
		uint64_t s1 = shm_seq_read_begin(&x->seq);

		s->key = atomic_load_explicit(&e->key, memory_order_relaxed);
		s->handle = atomic_load_explicit(&e->handle, memory_order_relaxed);
		s->route = atomic_load_explicit(&x->route, memory_order_relaxed);
		for (uint32_t i = 0; i < 8; i++)
			s->w[i] = atomic_load_explicit(name_word(g, idx, i), memory_order_relaxed);
		for (int i = 0; i < 3; i++)
			s->meta[i] = atomic_load_explicit(&x->meta[i], memory_order_relaxed);
		/* L2: SQ2: pairs with W0: data read before the re-check of seq and ctl. */
		if (shm_seq_read_end(&x->seq) == s1 &&
		    atomic_load_explicit(&e->ctl, memory_order_relaxed) == c1) {
			s->ctl = c1;
			s->seq = s1;
			return;
		}
	}
}

static inline bool snap_is(const struct snap *s, const struct rkey *k)
{
	if ((s->key & SHM_REG_KEY_MATCH) != k->key)
		return false;
	for (uint32_t i = 0; i < k->nw; i++)
		if (s->w[i] != k->w[i])
			return false;
	return true;
}

/*
 * Read the new handle/meta of an update from the intent line of the tag's slot, if it
 * names entry idx. Returns true with a consistent copy.
 */
static bool intent_read(const struct shm_seg *seg, const struct shm_reg_geo *g, uint64_t tag,
			uint32_t idx, uint64_t *handle, uint64_t meta[3], uint32_t *metalen)
{
	const struct shm_proc *p = tag_proc(seg, tag);
	uint64_t op;

	(void)g;
	if (!p)
		return false;
	/* I0: pairs with I1 in intent_arm(): the intent's words before its op word. */
	op = atomic_load_explicit(&p->reg_intent[SHM_REG_INTENT_OP], memory_order_acquire);
	if ((uint32_t)op != idx + 1)
		return false;
	*handle = atomic_load_explicit(&p->reg_intent[SHM_REG_INTENT_HANDLE], memory_order_relaxed);
	for (int i = 0; i < 3; i++)
		meta[i] = atomic_load_explicit(&p->reg_intent[SHM_REG_INTENT_META + i],
					       memory_order_relaxed);
	*metalen = (uint32_t)atomic_load_explicit(&p->reg_intent[SHM_REG_INTENT_METALEN],
						  memory_order_relaxed);
	if (*metalen > SHOAL_META_MAX)
		*metalen = SHOAL_META_MAX;
	/* I2: SQ2: pairs with I3 in intent_begin(): words read before the op word's re-check. */
	return shm_seq_read_end(&p->reg_intent[SHM_REG_INTENT_OP]) == op;
}

static void meta_out(struct shm_reg_meta *meta, const uint64_t words[3], uint32_t len)
{
	if (!meta)
		return;
	meta->len = len > SHOAL_META_MAX ? SHOAL_META_MAX : len;
	memcpy(meta->data, words, SHOAL_META_MAX);
}

/* Look entry idx up for k, every case: 0 found, 1 not this entry. */
static __attribute__((noinline, cold)) int
entry_lookup_slow(const struct shm_seg *seg, const struct shm_reg_geo *g, uint32_t idx,
		  const struct rkey *k, shoal_handle_t *handle, struct shm_reg_meta *meta)
{
	const struct shm_reg_entry *e = &g->e[idx];
	uint32_t spins = 0;

	for (;; spins++) {
		/* L3: pairs with the release stores of ctl that publish LIVE. */
		uint64_t c1 = atomic_load_explicit(&e->ctl, memory_order_acquire);
		uint32_t st = SHM_REG_CTL_STATE(c1);
		uint64_t key, h, mw[3];
		uint32_t ml;

		if (st != SHM_REG_LIVE && st != SHM_REG_UPDATING)
			return 1;
		key = atomic_load_explicit(&e->key, memory_order_relaxed);
		/* a newer key means the entry was reused after c1: a miss at that moment */
		if ((key & SHM_REG_KEY_MATCH) != k->key)
			return 1;
		/* every name has a first word; most (<= 16 bytes) need only one more */
		if (atomic_load_explicit(&e->name[0], memory_order_relaxed) != k->w[0])
			return 1;
		for (uint32_t i = 1; i < k->nw; i++)
			if (atomic_load_explicit(name_word(g, idx, i), memory_order_relaxed) !=
			    k->w[i])
				return 1;
		if (st == SHM_REG_LIVE) {
			h = atomic_load_explicit(&e->handle, memory_order_relaxed);
			ml = SHM_REG_KEY_METALEN(key);
			if (meta)
				for (int i = 0; i < 3; i++)
					mw[i] = atomic_load_explicit(&g->x[idx].meta[i],
								     memory_order_relaxed);
		} else if (!intent_read(seg, g, SHM_REG_CTL_TAG(c1), idx, &h, mw, &ml)) {
			/* an intent that never matches is corruption: stop spinning on it */
			if (spins > (1u << 20))
				return 1;
			continue;
		}
		/* L4: SQ2 over ctl: pairs with the writers' claim + W0: data before re-check. */
		if (shm_seq_read_end(&e->ctl) != c1)
			continue;
		*handle = h;
		meta_out(meta, mw, ml);
		return 0;
	}
}

/*
 * Look entry idx up for k: 0 found, 1 not this entry. The common case inline (a LIVE
 * entry, no meta wanted, nothing moving): straight-line loads, one branch on the
 * comparison; anything else goes to entry_lookup_slow().
 */
static inline int entry_lookup(const struct shm_seg *seg, const struct shm_reg_geo *g, uint32_t idx,
			       const struct rkey *k, shoal_handle_t *handle,
			       struct shm_reg_meta *meta)
{
	const struct shm_reg_entry *e = &g->e[idx];
	/* L3: pairs with the release stores of ctl that publish LIVE. */
	uint64_t c1 = atomic_load_explicit(&e->ctl, memory_order_acquire), diff, h;

	if (__builtin_expect(SHM_REG_CTL_STATE(c1) != SHM_REG_LIVE || meta, 0))
		return entry_lookup_slow(seg, g, idx, k, handle, meta);
	/* a newer key or name means the entry was reused after c1: a miss at that moment */
	diff = (atomic_load_explicit(&e->key, memory_order_relaxed) & SHM_REG_KEY_MATCH) ^ k->key;
	diff |= atomic_load_explicit(&e->name[0], memory_order_relaxed) ^ k->w[0];
	for (uint32_t i = 1; i < k->nw; i++)
		diff |= atomic_load_explicit(name_word(g, idx, i), memory_order_relaxed) ^ k->w[i];
	if (diff)
		return 1;
	h = atomic_load_explicit(&e->handle, memory_order_relaxed);
	/* L4: SQ2 over ctl: pairs with the writers' claim + W0: data before re-check. */
	if (__builtin_expect(shm_seq_read_end(&e->ctl) != c1, 0))
		return entry_lookup_slow(seg, g, idx, k, handle, meta);
	*handle = h;
	return 0;
}

/*
 * Probe k's sequence from its d0-th bucket on (see shm_reg_lookup()): 0 found, -ENOENT.
 * d0 1: the fast path found nothing in the home bucket and its counter was not 0.
 */
static __attribute__((noinline)) int probe(const struct shm_seg *seg, const struct shm_reg_geo *g,
					   const struct rkey *k, uint32_t d0,
					   shoal_handle_t *handle, struct shm_reg_meta *meta)
{
	uint32_t bi = (k->home + d0 * k->stride) & g->mask;

	for (uint32_t d = d0; d < g->nb; d++) {
		const struct shm_reg_bucket *b = &g->b[bi];
		/* L5: pairs with the tag RMWs: a hint; ctl is re-checked per entry. */
		uint64_t m =
			match_bytes(atomic_load_explicit(&b->tags, memory_order_acquire), k->tag);

		/* the preferred entry first: it is the one prefetched */
		m = rotr64(m, 8 * k->pref);
		while (m) {
			uint32_t i = (((uint32_t)__builtin_ctzll(m) >> 3) + k->pref) % EPB;

			m &= m - 1;
			if (entry_lookup(seg, g, bi * EPB + i, k, handle, meta) == 0)
				return 0;
		}
		/* L6: pairs with the counter RMWs made before an entry is published. */
		if (atomic_load_explicit(&b->overflow, memory_order_acquire) == 0)
			break;
		bi = (bi + k->stride) & g->mask;
	}
	return -ENOENT;
}

/* Look (ns, name) up, every case (see shm_reg_lookup()). */
static __attribute__((noinline)) int lookup_any(const struct shm_seg *seg, uint32_t ns,
						const char *name, size_t len,
						shoal_handle_t *handle, struct shm_reg_meta *meta)
{
	const struct shm_reg_geo *g = &seg->reg; /* (read in place: no copy) */
	struct rkey k;
	int ret;

	if (__builtin_expect(g->cap == 0, 0))
		return -EUCLEAN;
	ret = key_make(g, ns, name, len, &k);
	if (ret)
		return ret;
	/* most names live in their preferred entry (see reserve()): its line and the
	 * bucket's come in together instead of one after the other */
	__builtin_prefetch(&g->e[k.home * EPB + k.pref]);
	return probe(seg, g, &k, 0, handle, meta);
}

/*
 * The fast path's way on past the home bucket: the key made again (the fast path kept its
 * parts in registers), the probe from the second bucket.
 */
static __attribute__((noinline)) int probe_on(const struct shm_seg *seg, uint32_t ns,
					      const char *name, size_t len, shoal_handle_t *handle)
{
	struct rkey k;

	if (key_make(&seg->reg, ns, name, len, &k))
		return -EINVAL;
	return probe(seg, &seg->reg, &k, 1, handle, NULL);
}

/*
 * Look (ns, name) up: 0 with the handle (and meta), -ENOENT, -EINVAL. Lock-free: no
 * syscall, no store, never waits for a writer. Any attachment (read-only too), any thread.
 */
static inline __attribute__((always_inline)) int lookup_fast(const struct shm_seg *seg, uint32_t ns,
							     const char *name, size_t len,
							     shoal_handle_t *handle,
							     struct shm_reg_meta *meta)
{
	const struct shm_reg_geo *g = &seg->reg;
	const struct shm_reg_entry *e;
	uint64_t w0, w1, h, m, c1, diff, hv;
	struct rkey k;

	/*
	 * The common case inline, in registers: a name of up to 16 bytes, no meta wanted,
	 * found LIVE in its home bucket. A name past its home bucket: probe_on(). Anything
	 * else (long names, meta, an entry in motion): lookup_any(), from the start.
	 */
	if (__builtin_expect(len - 1 >= 16 || !name || ns > SHM_NS_MAX || !g->cap || meta, 0))
		return lookup_any(seg, ns, name, len, handle, meta);
	h = hash_seed(ns, len);
	/*
	 * No NUL check before the search: a name with a NUL inside matches no entry (every
	 * stored name was checked), so only a miss needs it, to say -EINVAL instead.
	 */
	name_short(name, len, &w0, &w1, &h);
	key_finish(g, ns, len, h, &k);
	/* most names live in their preferred entry (see reserve()): its line and the
	 * bucket's come in together instead of one after the other */
	__builtin_prefetch(&g->e[k.home * EPB + k.pref]);
	/* L5: as in probe(). */
	m = match_bytes(atomic_load_explicit(&g->b[k.home].tags, memory_order_acquire), k.tag);
	/* the preferred entry first: it is the one prefetched */
	m = rotr64(m, 8 * k.pref);
	for (; m; m &= m - 1) {
		e = &g->e[k.home * EPB + (((uint32_t)__builtin_ctzll(m) >> 3) + k.pref) % EPB];
		/* L3: as in entry_lookup(). */
		c1 = atomic_load_explicit(&e->ctl, memory_order_acquire);
		/* the key holds the length: a shorter name's padding words are 0 in both */
		diff = (atomic_load_explicit(&e->key, memory_order_relaxed) & SHM_REG_KEY_MATCH) ^
		       k.key;
		diff |= atomic_load_explicit(&e->name[0], memory_order_relaxed) ^ w0;
		diff |= atomic_load_explicit(&e->name[1], memory_order_relaxed) ^ w1;
		if (diff)
			continue;
		if (__builtin_expect(SHM_REG_CTL_STATE(c1) != SHM_REG_LIVE, 0)) {
			if (SHM_REG_CTL_STATE(c1) == SHM_REG_UPDATING)
				break; /* the update's intent: lookup_any() */
			continue;
		}
		hv = atomic_load_explicit(&e->handle, memory_order_relaxed);
		/* L4: as in entry_lookup(). */
		if (__builtin_expect(shm_seq_read_end(&e->ctl) != c1, 0))
			break; /* moved under us: lookup_any() */
		*handle = hv;
		return 0;
	}
	if (m) /* stopped on an entry in motion: the general path from the home bucket */
		return lookup_any(seg, ns, name, len, handle, meta);
	if (name_nul(w0, w1, len))
		return -EINVAL;
	/* L6: as in probe(). */
	if (atomic_load_explicit(&g->b[k.home].overflow, memory_order_acquire) == 0)
		return -ENOENT;
	return probe_on(seg, ns, name, len, handle);
}

/* See registry.h (and the comment above lookup_fast()). 1 lookup in SHM_HIST_SAMPLE is timed. */
int shm_reg_lookup(const struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		   shoal_handle_t *handle, struct shm_reg_meta *meta)
{
	uint64_t t0 = shm_hist_begin(seg);
	int r = lookup_fast(seg, ns, name, len, handle, meta);

	shm_hist_end(seg, SHM_HIST_LOOKUP, t0);
	return r;
}

/* --- writers --- */

static void tag_byte_set(struct shm_reg_bucket *b, uint32_t slot, uint8_t tag)
{
	uint64_t shift = 8u * slot;

	/* T0: seq_cst: part of the uniqueness scan's total order (see do_register()). */
	atomic_fetch_and_explicit(&b->tags, ~(0xffull << shift), memory_order_seq_cst);
	if (tag)
		atomic_fetch_or_explicit(&b->tags, (uint64_t)tag << shift, memory_order_seq_cst);
}

/*
 * Move an entry we hold (state `from`, our tag) to `to`. A claim is only taken from a
 * writer judged dead, so failing here means that judgement was wrong: counted, and the
 * entry is left to whoever holds it now. Returns true if we still held it.
 */
static bool claim_move(const struct shm_seg *seg, const struct shm_reg_geo *g,
		       struct shm_reg_entry *e, uint32_t from, uint64_t to)
{
	uint64_t c = SHM_REG_CTL(from, my_tag(seg));

	/* M0: seq_cst: as the stores it replaces (publication, withdrawal, release). */
	if (atomic_compare_exchange_strong_explicit(&e->ctl, &c, to, memory_order_seq_cst,
						    memory_order_relaxed))
		return true;
	atomic_fetch_add_explicit(&g->hdr->lost, 1, memory_order_relaxed);
	return false;
}

/*
 * Give back everything an entry we hold (RESERVED or DELETING, our tag) has: its tag
 * byte, its overflow counters (newest first, recording progress before each decrement so
 * a crash leaves counters high, never low), then the entry itself.
 */
static void entry_undo(const struct shm_seg *seg, const struct shm_reg_geo *g, uint32_t idx)
{
	struct shm_reg_entry *e = &g->e[idx];
	struct shm_reg_ext *x = &g->x[idx];
	uint64_t r = atomic_load_explicit(&x->route, memory_order_relaxed);
	uint32_t home = SHM_REG_ROUTE_HOME(r) & g->mask, prog = SHM_REG_ROUTE_PROG(r);
	/* relaxed: the key was written by the claim holder before any counter moved */
	uint32_t stride = stride_of(g, atomic_load_explicit(&e->key, memory_order_relaxed));

	tag_byte_set(&g->b[bucket_of(idx)], idx % EPB, 0);
	STEP(SHM_REG_STEP_UNTAGGED);
	if (prog > g->nb)
		prog = g->nb; /* corrupt progress: never walk past the table */
	while (prog > 0) {
		prog--;
		/* D0: seq_cst: the record reaches memory before the decrement (crash order). */
		atomic_store_explicit(&x->route, SHM_REG_ROUTE(home, prog), memory_order_seq_cst);
		STEP(SHM_REG_STEP_RECORDED);
		atomic_fetch_sub_explicit(&g->b[(home + prog * stride) & g->mask].overflow, 1,
					  memory_order_seq_cst);
	}
	atomic_store_explicit(&x->route, SHM_REG_ROUTE(home, 0), memory_order_relaxed);
	/* F0: (in claim_move) everything above before the entry reads as free (pairs with C0). */
	if (SHM_REG_CTL_STATE(atomic_load_explicit(&e->ctl, memory_order_relaxed)) ==
	    SHM_REG_DELETING)
		claim_move(seg, g, e, SHM_REG_DELETING, 0);
	else
		claim_move(seg, g, e, SHM_REG_RESERVED, 0);
}

/* Bump an entry's seq after a claim: pairs with L1/L2 in readers (data after this). */
static uint64_t seq_bump(struct shm_reg_ext *x)
{
	/* relaxed: single writer (the claim holder) reads its own last store */
	uint64_t s = atomic_load_explicit(&x->seq, memory_order_relaxed) + 1;

	/* W0: SQ0 (shm/seqlock.h): pairs with L2/L4: a reader that sees data written after
	 * this sees the bump. */
	shm_seq_write_mark(&x->seq, s);
	return s;
}

static inline uint64_t live_ctl(uint64_t seq)
{
	return SHM_REG_CTL(SHM_REG_LIVE, seq & 0x00ffffffffffffffull);
}

static void intent_begin(struct shm_proc *p, shoal_handle_t handle, const uint64_t mw[3],
			 uint32_t ml)
{
	/* I3: SQ0 (shm/seqlock.h): single writer (the owner); pairs with I2 in intent_read(). */
	shm_seq_write_mark(&p->reg_intent[SHM_REG_INTENT_OP], 0);
	atomic_store_explicit(&p->reg_intent[SHM_REG_INTENT_HANDLE], handle, memory_order_relaxed);
	for (int i = 0; i < 3; i++)
		atomic_store_explicit(&p->reg_intent[SHM_REG_INTENT_META + i], mw[i],
				      memory_order_relaxed);
	atomic_store_explicit(&p->reg_intent[SHM_REG_INTENT_METALEN], ml, memory_order_relaxed);
}

static void intent_arm(struct shm_proc *p, uint32_t idx)
{
	/* relaxed: owner-private counter */
	uint64_t n =
		atomic_load_explicit(&p->reg_intent[SHM_REG_INTENT_COUNT], memory_order_relaxed) +
		1;

	atomic_store_explicit(&p->reg_intent[SHM_REG_INTENT_COUNT], n, memory_order_relaxed);
	/* I1: pairs with I0 in intent_read() and in take_over(): words before the op. */
	atomic_store_explicit(&p->reg_intent[SHM_REG_INTENT_OP], (idx + 1) | (n << 32),
			      memory_order_release);
}

static void intent_clear(struct shm_proc *p)
{
	/* relaxed: single writer; readers re-check ctl, which moved on before this */
	atomic_store_explicit(&p->reg_intent[SHM_REG_INTENT_OP], 0, memory_order_relaxed);
}

/* Finish an update of entry idx (we hold UPDATING) from our own intent line. */
static void update_finish(struct shm_seg *seg, const struct shm_reg_geo *g, uint32_t idx)
{
	struct shm_proc *p = shm_proc_at(seg, seg->self);
	struct shm_reg_entry *e = &g->e[idx];
	uint64_t s = seq_bump(&g->x[idx]), key;
	uint32_t ml;

	ml = (uint32_t)atomic_load_explicit(&p->reg_intent[SHM_REG_INTENT_METALEN],
					    memory_order_relaxed);
	if (ml > SHOAL_META_MAX)
		ml = SHOAL_META_MAX;
	key = atomic_load_explicit(&e->key, memory_order_relaxed);
	atomic_store_explicit(&e->key, (key & SHM_REG_KEY_MATCH) | ((uint64_t)ml << 56),
			      memory_order_relaxed);
	atomic_store_explicit(
		&e->handle,
		atomic_load_explicit(&p->reg_intent[SHM_REG_INTENT_HANDLE], memory_order_relaxed),
		memory_order_relaxed);
	STEP(SHM_REG_STEP_REWRITING);
	for (int i = 0; i < 3; i++)
		atomic_store_explicit(&g->x[idx].meta[i],
				      atomic_load_explicit(&p->reg_intent[SHM_REG_INTENT_META + i],
							   memory_order_relaxed),
				      memory_order_relaxed);
	/* P1: release: the new data before LIVE (pairs with L3 in entry_lookup()). */
	claim_move(seg, g, e, SHM_REG_UPDATING, live_ctl(s));
	intent_clear(p);
}

/*
 * Entry idx holds claim c whose owner is dead: take it over (CAS in our tag) and resolve
 * it. Returns true if the claim is gone (resolved by us or by someone else meanwhile).
 */
static bool take_over(struct shm_seg *seg, const struct shm_reg_geo *g, uint32_t idx, uint64_t c)
{
	struct shm_reg_entry *e = &g->e[idx];
	uint32_t st = SHM_REG_CTL_STATE(c);
	uint64_t mine, tag = SHM_REG_CTL_TAG(c);

	switch (st) {
	case SHM_REG_RESERVED:
	case SHM_REG_PENDING:
	case SHM_REG_ABORTED:
	case SHM_REG_DELETING:
		mine = SHM_REG_CTL(st == SHM_REG_DELETING ? st : SHM_REG_RESERVED, my_tag(seg));
		/* C1: acq_rel: the dead owner's stores before our undo (pairs with its claim). */
		if (!atomic_compare_exchange_strong_explicit(
			    &e->ctl, &c, mine, memory_order_acq_rel, memory_order_acquire))
			return true;
		entry_undo(seg, g, idx);
		break;
	case SHM_REG_UPDATING: {
		struct shm_proc *me = shm_proc_at(seg, seg->self);
		uint64_t h, mw[3];
		uint32_t ml;

		/*
		 * The dead owner wrote its intent before claiming; copy it into ours before the
		 * takeover so readers and our own repairer find it under our tag.
		 */
		if (!intent_read(seg, g, tag, idx, &h, mw, &ml)) {
			/* no matching intent (corrupt): republish what the entry holds */
			h = atomic_load_explicit(&e->handle, memory_order_relaxed);
			for (int i = 0; i < 3; i++)
				mw[i] = atomic_load_explicit(&g->x[idx].meta[i],
							     memory_order_relaxed);
			ml = SHM_REG_KEY_METALEN(
				atomic_load_explicit(&e->key, memory_order_relaxed));
		}
		intent_begin(me, h, mw, ml);
		intent_arm(me, idx);
		mine = SHM_REG_CTL(SHM_REG_UPDATING, my_tag(seg));
		/* C2: as C1. */
		if (!atomic_compare_exchange_strong_explicit(
			    &e->ctl, &c, mine, memory_order_acq_rel, memory_order_acquire)) {
			intent_clear(me);
			return true;
		}
		update_finish(seg, g, idx);
		break;
	}
	default:
		return true;
	}
	atomic_fetch_add_explicit(&g->hdr->repaired, 1, memory_order_relaxed);
	return true;
}

/* Is this claim's owner gone? The probe makes syscalls: only for a claim in our way. */
static bool claim_is_dead(const struct shm_seg *seg, uint64_t c)
{
	uint64_t tag = SHM_REG_CTL_TAG(c);

	if (tag == my_tag(seg))
		return false;
	return shm_tag_is_dead(seg, tag, true);
}

/*
 * Wait for a live writer's claim on entry idx to move on; resolve it if the writer is
 * dead. Called only by writers, only for UPDATING (a few stores long).
 */
static void claim_wait(struct shm_seg *seg, const struct shm_reg_geo *g, uint32_t idx, uint64_t c)
{
	struct shm_reg_entry *e = &g->e[idx];

	atomic_fetch_add_explicit(&g->hdr->waits, 1, memory_order_relaxed);
	for (uint32_t n = 1;; n++) {
		/* R1: acquire: pairs with the claim holder's release of ctl. */
		if (atomic_load_explicit(&e->ctl, memory_order_acquire) != c)
			return;
		if ((n & 63) == 0) {
			if (claim_is_dead(seg, c)) {
				take_over(seg, g, idx, c);
				return;
			}
			sched_yield();
		} else {
			shm_cpu_relax();
		}
	}
}

static int writer_check(const struct shm_seg *seg)
{
	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	return 0;
}

static int meta_words(const struct shm_reg_meta *meta, uint64_t mw[3], uint32_t *ml)
{
	mw[0] = mw[1] = mw[2] = 0;
	*ml = 0;
	if (!meta)
		return 0;
	if (meta->len > SHOAL_META_MAX)
		return -EINVAL;
	memcpy(mw, meta->data, meta->len);
	*ml = meta->len;
	return 0;
}

/*
 * Reserve a free entry along k's probe sequence: returns its index (and in *dist how many
 * buckets it lies past home), or UINT32_MAX if none.
 */
static uint32_t reserve(struct shm_seg *seg, const struct shm_reg_geo *g, const struct rkey *k,
			uint32_t *dist)
{
	uint64_t mine = SHM_REG_CTL(SHM_REG_RESERVED, my_tag(seg));

	for (int pass = 0; pass < 2; pass++) {
		uint32_t bi = k->home;

		for (uint32_t d = 0; d < g->nb; d++, bi = (bi + k->stride) & g->mask) {
			/* a free entry always has tag byte 0: look at those first */
			uint64_t m = match_bytes(
				atomic_load_explicit(&g->b[bi].tags, memory_order_relaxed), 0);

			if (pass == 1)
				m = 0x8080808080808080ull; /* table looked full: every entry */
			/* from the name's preferred entry on: a lookup prefetches that one */
			m = rotr64(m, 8 * k->pref);
			while (m) {
				uint32_t idx =
					bi * EPB +
					((((uint32_t)__builtin_ctzll(m) >> 3) + k->pref) % EPB);
				struct shm_reg_entry *e = &g->e[idx];
				uint64_t c = atomic_load_explicit(&e->ctl, memory_order_relaxed);

				m &= m - 1;
				if (c && pass == 1 && SHM_REG_CTL_STATE(c) != SHM_REG_LIVE &&
				    claim_is_dead(seg, c)) {
					take_over(seg, g, idx, c);
					c = atomic_load_explicit(&e->ctl, memory_order_relaxed);
				}
				if (c)
					continue;
				/* C0: acq_rel: pairs with F0 (the freer's stores are done). */
				if (atomic_compare_exchange_strong_explicit(&e->ctl, &c, mine,
									    memory_order_acq_rel,
									    memory_order_relaxed)) {
					*dist = d;
					return idx;
				}
			}
		}
	}
	return UINT32_MAX;
}

/*
 * The uniqueness scan of a registration at idx (PENDING, our tag): 0 to go on, -EEXIST
 * if another entry of the same name has or may take the name.
 */
static int unique_scan(struct shm_seg *seg, const struct shm_reg_geo *g, const struct rkey *k,
		       uint32_t idx)
{
	uint64_t tag = my_tag(seg);
	uint32_t bi = k->home;

	for (uint32_t d = 0; d < g->nb; d++, bi = (bi + k->stride) & g->mask) {
		/* L7: seq_cst: see do_register() (T0, S0). */
		uint64_t m = match_bytes(atomic_load_explicit(&g->b[bi].tags, memory_order_seq_cst),
					 k->tag);

		while (m) {
			uint32_t j = bi * EPB + ((uint32_t)__builtin_ctzll(m) >> 3);
			struct snap s;

			m &= m - 1;
			if (j == idx)
				continue;
		again:
			entry_snap(g, j, &s);
			switch (SHM_REG_CTL_STATE(s.ctl)) {
			case SHM_REG_LIVE:
			case SHM_REG_UPDATING:
				if (snap_is(&s, k))
					return -EEXIST;
				break;
			case SHM_REG_PENDING: {
				uint64_t other = SHM_REG_CTL_TAG(s.ctl);
				uint64_t ab = SHM_REG_CTL(SHM_REG_ABORTED, other);

				if (!snap_is(&s, k))
					break;
				if (prio_less(other, j, tag, idx)) {
					if (!claim_is_dead(seg, s.ctl))
						return -EEXIST;
					take_over(seg, g, j, s.ctl);
					goto again;
				}
				/* A0: seq_cst: part of the scan's total order. */
				if (atomic_compare_exchange_strong_explicit(
					    &g->e[j].ctl, &s.ctl, ab, memory_order_seq_cst,
					    memory_order_seq_cst)) {
					atomic_fetch_add_explicit(&g->hdr->aborted, 1,
								  memory_order_relaxed);
					break;
				}
				goto again;
			}
			default:
				break;
			}
		}
		/* L8: seq_cst: counters were raised before PENDING (see do_register()). */
		if (atomic_load_explicit(&g->b[bi].overflow, memory_order_seq_cst) == 0)
			break;
	}
	return 0;
}

static int do_register(struct shm_seg *seg, const struct shm_reg_geo *g, uint32_t ns,
		       const struct rkey *k, shoal_handle_t handle, const uint64_t mw[3],
		       uint32_t ml)
{
	uint64_t tag = my_tag(seg), pend = SHM_REG_CTL(SHM_REG_PENDING, tag), c, s;
	struct shm_reg_entry *e;
	struct shm_reg_ext *x;
	uint32_t idx, dist;
	int ret;

	idx = reserve(seg, g, k, &dist);
	if (idx == UINT32_MAX) {
		shoal_handle_t h;

		/* full: a name that is there already is -EEXIST, as with room to spare */
		return shm_reg_lookup(seg, ns, (const char *)k->w, SHM_REG_KEY_LEN(k->key), &h,
				      NULL) == 0
			       ? -EEXIST
			       : -ENOSPC;
	}
	e = &g->e[idx];
	x = &g->x[idx];
	STEP(SHM_REG_STEP_RESERVED);
	s = seq_bump(x);
	/* relaxed: we hold the claim; PENDING (seq_cst, a release) publishes these */
	atomic_store_explicit(&x->route, SHM_REG_ROUTE(k->home, 0), memory_order_relaxed);
	atomic_store_explicit(&e->key, k->key | ((uint64_t)ml << 56), memory_order_relaxed);
	atomic_store_explicit(&e->handle, handle, memory_order_relaxed);
	for (uint32_t i = 0; i < 8; i++)
		atomic_store_explicit(name_word(g, idx, i), i < k->nw ? k->w[i] : 0,
				      memory_order_relaxed);
	for (int i = 0; i < 3; i++)
		atomic_store_explicit(&x->meta[i], mw[i], memory_order_relaxed);
	tag_byte_set(&g->b[bucket_of(idx)], idx % EPB, k->tag);
	STEP(SHM_REG_STEP_FILLED);
	for (uint32_t d = 0; d < dist; d++) {
		/* U0: seq_cst: raised before PENDING; recorded after (crash: high, not low). */
		atomic_fetch_add_explicit(&g->b[(k->home + d * k->stride) & g->mask].overflow, 1,
					  memory_order_seq_cst);
		atomic_store_explicit(&x->route, SHM_REG_ROUTE(k->home, d + 1),
				      memory_order_relaxed);
		STEP(SHM_REG_STEP_COUNTER);
	}
	/*
	 * S0: seq_cst store, then seq_cst loads in unique_scan(): of two registrations of one
	 * name, the later store in the total order is followed by a scan that sees the other's
	 * PENDING (and its tag byte T0 and counters U0, which precede it).
	 */
	if (!claim_move(seg, g, e, SHM_REG_RESERVED, pend))
		return -EEXIST; /* (never: only a dead writer's claim is taken) */
	STEP(SHM_REG_STEP_PENDING);
	ret = unique_scan(seg, g, k, idx);
	if (ret == 0) {
		STEP(SHM_REG_STEP_SCANNED);
		c = pend;
		/* S1: seq_cst: the publication; fails only if someone aborted us (A0). */
		if (atomic_compare_exchange_strong_explicit(
			    &e->ctl, &c, live_ctl(s), memory_order_seq_cst, memory_order_seq_cst)) {
			STEP(SHM_REG_STEP_LIVE);
			return 0;
		}
		ret = -EEXIST;
	}
	/* withdraw: back to RESERVED (an aborter's CAS fails on it), then give it all back */
	for (;;) {
		c = atomic_load_explicit(&e->ctl, memory_order_seq_cst);
		if (c != pend && c != SHM_REG_CTL(SHM_REG_ABORTED, tag)) {
			atomic_fetch_add_explicit(&g->hdr->lost, 1, memory_order_relaxed);
			return ret; /* (never: see claim_move()) */
		}
		/* W1: seq_cst: an aborter's CAS (A0) fails on RESERVED. */
		if (atomic_compare_exchange_strong_explicit(
			    &e->ctl, &c, SHM_REG_CTL(SHM_REG_RESERVED, tag), memory_order_seq_cst,
			    memory_order_relaxed))
			break;
	}
	entry_undo(seg, g, idx);
	return ret;
}

/* What every writer checks first: the table's geometry, the key, and our process slot. */
static int writer_prep(struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		       struct shm_reg_geo *g, struct rkey *k)
{
	int ret = geo_get(seg, g);

	if (!ret)
		ret = key_make(g, ns, name, len, k);
	if (!ret)
		ret = writer_check(seg);
	return ret;
}

/*
 * Register (ns, name) -> handle. Writers with a process slot; one thread per attachment.
 * See registry.h.
 */
int shm_reg_register(struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		     shoal_handle_t handle, const struct shm_reg_meta *meta)
{
	uint64_t mw[3], t0;
	struct shm_reg_geo g;
	struct rkey k;
	uint32_t ml;
	int ret;

	ret = writer_prep(seg, ns, name, len, &g, &k);
	if (!ret)
		ret = meta_words(meta, mw, &ml);
	if (!ret && handle == SHOAL_HANDLE_NONE)
		ret = -EINVAL;
	if (ret)
		return ret;
	t0 = shm_hist_begin(seg); /* 1 register in SHM_HIST_SAMPLE is timed */
	ret = do_register(seg, &g, ns, &k, handle, mw, ml);
	if (!ret)
		shm_hist_end(seg, SHM_HIST_REGISTER, t0);
	return ret;
}

/*
 * Find k's live entry for a writer: returns its index and a snapshot, or UINT32_MAX.
 * Waits out (or resolves) an UPDATING claim on it.
 */
static uint32_t find_live(struct shm_seg *seg, const struct shm_reg_geo *g, const struct rkey *k,
			  struct snap *s)
{
retry:;
	uint32_t bi = k->home;

	for (uint32_t d = 0; d < g->nb; d++, bi = (bi + k->stride) & g->mask) {
		/* L9: acquire: pairs with T0 (a hint; ctl decides). */
		uint64_t m = match_bytes(atomic_load_explicit(&g->b[bi].tags, memory_order_acquire),
					 k->tag);

		while (m) {
			uint32_t j = bi * EPB + ((uint32_t)__builtin_ctzll(m) >> 3);
			uint32_t st;

			m &= m - 1;
			entry_snap(g, j, s);
			st = SHM_REG_CTL_STATE(s->ctl);
			if ((st != SHM_REG_LIVE && st != SHM_REG_UPDATING) || !snap_is(s, k))
				continue;
			if (st == SHM_REG_UPDATING) {
				claim_wait(seg, g, j, s->ctl);
				goto retry;
			}
			return j;
		}
		/* L10: acquire: pairs with U0. */
		if (atomic_load_explicit(&g->b[bi].overflow, memory_order_acquire) == 0)
			break;
	}
	return UINT32_MAX;
}

/* Unregister (ns, name). Writers with a process slot. See registry.h. */
int shm_reg_unregister(struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		       shoal_handle_t expect)
{
	struct shm_reg_geo g;
	struct rkey k;
	struct snap s;
	uint32_t idx;
	int ret;

	ret = writer_prep(seg, ns, name, len, &g, &k);
	if (ret)
		return ret;
	for (;;) {
		uint64_t c;

		idx = find_live(seg, &g, &k, &s);
		if (idx == UINT32_MAX)
			return -ENOENT;
		if (expect != SHOAL_HANDLE_NONE && s.handle != expect)
			return -ESTALE;
		c = s.ctl;
		/* C3: acq_rel: the linearisation point; pairs with S1/P1 (LIVE) and readers' L4. */
		if (atomic_compare_exchange_strong_explicit(
			    &g.e[idx].ctl, &c, SHM_REG_CTL(SHM_REG_DELETING, my_tag(seg)),
			    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	STEP(SHM_REG_STEP_DELETING);
	entry_undo(seg, &g, idx);
	return 0;
}

/* Re-register (ns, name) to a new handle + meta. Writers with a process slot. */
int shm_reg_reregister(struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		       shoal_handle_t handle, const struct shm_reg_meta *meta)
{
	struct shm_proc *p;
	uint64_t mw[3];
	struct shm_reg_geo g;
	struct rkey k;
	struct snap s;
	uint32_t ml, idx;
	int ret;

	ret = writer_prep(seg, ns, name, len, &g, &k);
	if (!ret)
		ret = meta_words(meta, mw, &ml);
	if (!ret && handle == SHOAL_HANDLE_NONE)
		ret = -EINVAL;
	if (ret)
		return ret;
	p = shm_proc_at(seg, seg->self);
	for (;;) {
		uint64_t c;

		intent_begin(p, handle, mw, ml);
		/* (find_live() may finish a dead writer's update through our intent line) */
		idx = find_live(seg, &g, &k, &s);
		if (idx == UINT32_MAX) {
			intent_clear(p);
			return -ENOENT;
		}
		intent_begin(p, handle, mw, ml);
		intent_arm(p, idx);
		STEP(SHM_REG_STEP_INTENT);
		c = s.ctl;
		/* C4: acq_rel: the intent (I1) before the claim; pairs with readers' L3. */
		if (atomic_compare_exchange_strong_explicit(
			    &g.e[idx].ctl, &c, SHM_REG_CTL(SHM_REG_UPDATING, my_tag(seg)),
			    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	STEP(SHM_REG_STEP_UPDATING);
	update_finish(seg, &g, idx);
	return 0;
}

/* Remove every live entry that maps to handle. Writers. Returns how many. */
int shm_reg_unregister_handle(struct shm_seg *seg, shoal_handle_t handle)
{
	struct shm_reg_geo g;
	int n = 0;

	if (geo_get(seg, &g) || writer_check(seg) || handle == SHOAL_HANDLE_NONE)
		return 0;
	for (uint32_t i = 0; i < g.cap; i++) {
		struct snap s;
		uint64_t c;

		/* relaxed pre-filter; the snapshot decides */
		if (SHM_REG_CTL_STATE(atomic_load_explicit(&g.e[i].ctl, memory_order_relaxed)) !=
		    SHM_REG_LIVE)
			continue;
		entry_snap(&g, i, &s);
		if (SHM_REG_CTL_STATE(s.ctl) != SHM_REG_LIVE || s.handle != handle)
			continue;
		c = s.ctl;
		/* C5: as C3. */
		if (!atomic_compare_exchange_strong_explicit(
			    &g.e[i].ctl, &c, SHM_REG_CTL(SHM_REG_DELETING, my_tag(seg)),
			    memory_order_acq_rel, memory_order_relaxed))
			continue;
		entry_undo(seg, &g, i);
		n++;
	}
	return n;
}

/* A live entry's contents for tools: 0 and filled, or 1 if not live. */
static int entry_read_live(const struct shm_seg *seg, const struct shm_reg_geo *g, uint32_t idx,
			   uint32_t *ns, char *name, shoal_handle_t *handle,
			   struct shm_reg_meta *meta)
{
	for (uint32_t tries = 0; tries < 1000; tries++) {
		struct snap s;
		uint64_t h, mw[3];
		uint32_t st, len, ml;

		entry_snap(g, idx, &s);
		st = SHM_REG_CTL_STATE(s.ctl);
		if (st != SHM_REG_LIVE && st != SHM_REG_UPDATING)
			return 1;
		len = SHM_REG_KEY_LEN(s.key);
		if (len == 0 || len > SHOAL_NAME_MAX)
			return 1; /* corrupt: never copy past the name */
		h = s.handle;
		memcpy(mw, s.meta, sizeof(mw));
		ml = SHM_REG_KEY_METALEN(s.key);
		if (st == SHM_REG_UPDATING) {
			if (!intent_read(seg, g, SHM_REG_CTL_TAG(s.ctl), idx, &h, mw, &ml))
				continue;
			/* L11: SQ2 over ctl: pairs with I1/C4: the intent belonged to this claim.
			 */
			if (shm_seq_read_end(&g->e[idx].ctl) != s.ctl)
				continue;
		}
		memcpy(name, s.w, len);
		name[len] = 0;
		*ns = SHM_REG_KEY_NS(s.key);
		*handle = h;
		meta_out(meta, mw, ml);
		return 0;
	}
	return 1;
}

/* Live entries right now. Any attachment. */
uint32_t shm_reg_count(const struct shm_seg *seg)
{
	struct shm_reg_geo g;
	uint32_t n = 0;

	if (geo_get(seg, &g))
		return 0;
	for (uint32_t i = 0; i < g.cap; i++) {
		/* relaxed: a snapshot count */
		uint32_t st =
			SHM_REG_CTL_STATE(atomic_load_explicit(&g.e[i].ctl, memory_order_relaxed));

		n += st == SHM_REG_LIVE || st == SHM_REG_UPDATING;
	}
	return n;
}

/* Visit live entries. Any attachment, read-only included. */
int shm_reg_foreach(const struct shm_seg *seg, shm_reg_visit_fn fn, void *arg)
{
	struct shm_reg_geo g;
	int ret;

	if (geo_get(seg, &g))
		return 0;
	for (uint32_t i = 0; i < g.cap; i++) {
		char name[SHOAL_NAME_MAX + 1];
		struct shm_reg_meta meta;
		shoal_handle_t h;
		uint32_t ns;

		if (SHM_REG_CTL_STATE(atomic_load_explicit(&g.e[i].ctl, memory_order_relaxed)) ==
		    SHM_REG_EMPTY)
			continue;
		if (entry_read_live(seg, &g, i, &ns, name, &h, &meta))
			continue;
		ret = fn(ns, name, h, &meta, arg);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Resolve every registry claim of process slot `slot` (dead: its state DEAD or its epoch
 * gone). The supervisor, or a test playing it; needs our own process slot. Returns the
 * number of claims resolved, or -EROFS.
 */
int shm_reg_repair(struct shm_seg *seg, uint32_t slot)
{
	struct shm_reg_geo g;
	int n = 0;

	if (geo_get(seg, &g))
		return -EUCLEAN;
	if (writer_check(seg))
		return -EROFS;
	for (uint32_t i = 0; i < g.cap; i++) {
		/* R2: acquire: pairs with the dead owner's claim; its stores before our undo. */
		/* L11: pairs with the release/acq_rel ctl transitions: the entry's fields as
		 * published. */
		uint64_t c = atomic_load_explicit(&g.e[i].ctl, memory_order_acquire);
		uint32_t st = SHM_REG_CTL_STATE(c);

		if (st == SHM_REG_EMPTY || st == SHM_REG_LIVE ||
		    SHM_TAG_SLOT(SHM_REG_CTL_TAG(c)) != slot || SHM_REG_CTL_TAG(c) == my_tag(seg))
			continue;
		if (!shm_tag_is_dead(seg, SHM_REG_CTL_TAG(c), false))
			continue;
		take_over(seg, &g, i, c);
		n++;
	}
	return n;
}

#define CHECK_FAIL(...)                                                                            \
	do {                                                                                       \
		if (errlen)                                                                        \
			snprintf(err, errlen, __VA_ARGS__);                                        \
		ret = -EUCLEAN;                                                                    \
		goto out;                                                                          \
	} while (0)

/* Check the table's invariants (see registry.h). Any attachment; quiescent tables only
 * give exact answers. */
int shm_reg_check(const struct shm_seg *seg, char *err, size_t errlen)
{
	uint32_t *need = NULL;
	struct shm_reg_geo g;
	int ret = 0;

	if (geo_get(seg, &g)) {
		if (errlen)
			snprintf(err, errlen, "registry region does not match the capacity");
		return -EUCLEAN;
	}
	need = calloc(g.nb, sizeof(*need));
	if (!need)
		return -ENOMEM;
	for (uint32_t i = 0; i < g.cap; i++) {
		uint64_t c = atomic_load_explicit(&g.e[i].ctl, memory_order_acquire);
		uint32_t st = SHM_REG_CTL_STATE(c), bi = bucket_of(i), home, prog, dist, tb;
		char name[SHOAL_NAME_MAX + 1];
		struct shm_reg_meta meta;
		struct rkey k;
		struct snap s;
		shoal_handle_t h;
		uint32_t ns;

		if (st == SHM_REG_EMPTY)
			continue;
		if (st > SHM_REG_UPDATING)
			CHECK_FAIL("entry %u: unknown state %u", i, st);
		if (st != SHM_REG_LIVE && shm_tag_is_dead(seg, SHM_REG_CTL_TAG(c), false))
			CHECK_FAIL("entry %u: state %u claimed by dead slot %u epoch %u", i, st,
				   SHM_TAG_SLOT(SHM_REG_CTL_TAG(c)),
				   SHM_TAG_EPOCH(SHM_REG_CTL_TAG(c)));
		entry_snap(&g, i, &s);
		home = SHM_REG_ROUTE_HOME(s.route);
		prog = SHM_REG_ROUTE_PROG(s.route);
		if (home >= g.nb || prog >= g.nb)
			CHECK_FAIL("entry %u: route home %u progress %u out of range", i, home,
				   prog);
		for (uint32_t d = 0; d < prog; d++)
			need[(home + d * stride_of(&g, s.key)) & g.mask]++;
		if (SHM_REG_CTL_STATE(s.ctl) != SHM_REG_LIVE)
			continue;
		if (entry_read_live(seg, &g, i, &ns, name, &h, &meta))
			continue;
		if (key_make(&g, ns, name, strlen(name), &k) || k.home != home ||
		    (s.key & SHM_REG_KEY_MATCH) != k.key)
			CHECK_FAIL("entry %u ('%s'): key or home does not match its name", i, name);
		for (dist = 0; dist < g.nb && ((home + dist * k.stride) & g.mask) != bi; dist++)
			;
		if (prog != dist)
			CHECK_FAIL("entry %u ('%s'): holds %u overflow counters, lives %u buckets "
				   "from home",
				   i, name, prog, dist);
		tb = (uint32_t)(atomic_load_explicit(&g.b[bi].tags, memory_order_relaxed) >>
				(8 * (i % EPB))) &
		     0xffu;
		if (tb != k.tag)
			CHECK_FAIL("entry %u ('%s'): tag byte %#x, want %#x", i, name, tb, k.tag);
		/* duplicates: any other live entry of this name on its chain (every live entry
		 * of the name is on it: each holds its counters, checked below) */
		for (uint32_t d = 0, cb = home; d < g.nb; d++, cb = (cb + k.stride) & g.mask) {
			for (uint32_t j = cb * EPB; j < cb * EPB + EPB; j++) {
				uint32_t ns2;
				char name2[SHOAL_NAME_MAX + 1];
				shoal_handle_t h2;

				if (j == i ||
				    SHM_REG_CTL_STATE(atomic_load_explicit(
					    &g.e[j].ctl, memory_order_relaxed)) != SHM_REG_LIVE)
					continue;
				if ((atomic_load_explicit(&g.e[j].key, memory_order_relaxed) &
				     SHM_REG_KEY_MATCH) != k.key)
					continue;
				if (entry_read_live(seg, &g, j, &ns2, name2, &h2, NULL) == 0 &&
				    ns2 == ns && !strcmp(name, name2))
					CHECK_FAIL("name '%s' (ns %u) is live twice: entries %u "
						   "and %u",
						   name, ns, i, j);
			}
			if (atomic_load_explicit(&g.b[cb].overflow, memory_order_relaxed) == 0)
				break;
		}
		/* reachable by a lookup */
		if (shm_reg_lookup(seg, ns, name, strlen(name), &h, NULL))
			CHECK_FAIL("entry %u ('%s'): not found by a lookup", i, name);
	}
	for (uint32_t b = 0; b < g.nb; b++) {
		uint32_t have = atomic_load_explicit(&g.b[b].overflow, memory_order_relaxed);

		if (have < need[b])
			CHECK_FAIL("bucket %u: overflow counter %u, but %u entries pass it", b,
				   have, need[b]);
	}
out:
	free(need);
	return ret;
}

/* Shape statistics. Any attachment. */
int shm_reg_stats(const struct shm_seg *seg, struct shm_reg_stats *st)
{
	uint64_t need_sum = 0, have_sum = 0;
	struct shm_reg_geo g;

	memset(st, 0, sizeof(*st));
	if (geo_get(seg, &g))
		return -EUCLEAN;
	st->capacity = g.cap;
	{
		const struct shm_reg_hdr *rh = g.hdr;

		/* relaxed: counters; a snapshot for tools */
		st->repaired = atomic_load_explicit(&rh->repaired, memory_order_relaxed);
		st->aborted = atomic_load_explicit(&rh->aborted, memory_order_relaxed);
		st->waits = atomic_load_explicit(&rh->waits, memory_order_relaxed);
		st->lost = atomic_load_explicit(&rh->lost, memory_order_relaxed);
	}
	st->longest_chain = 1;
	for (uint32_t i = 0; i < g.cap; i++) {
		uint64_t c = atomic_load_explicit(&g.e[i].ctl, memory_order_relaxed);
		uint32_t s = SHM_REG_CTL_STATE(c), home, stride, probe, chain;
		uint64_t r, key;

		if (s == SHM_REG_EMPTY)
			continue;
		r = atomic_load_explicit(&g.x[i].route, memory_order_relaxed);
		key = atomic_load_explicit(&g.e[i].key, memory_order_relaxed);
		need_sum += SHM_REG_ROUTE_PROG(r) < g.nb ? SHM_REG_ROUTE_PROG(r) : 0;
		if (s != SHM_REG_LIVE && s != SHM_REG_UPDATING) {
			st->claimed++;
			continue;
		}
		st->live++;
		home = SHM_REG_ROUTE_HOME(r) & g.mask;
		stride = stride_of(&g, key);
		/* buckets a lookup of this name visits, and a scan of its whole chain */
		for (probe = 1;
		     probe < g.nb && ((home + (probe - 1) * stride) & g.mask) != bucket_of(i);
		     probe++)
			;
		for (chain = 1; chain < g.nb; chain++)
			if (!atomic_load_explicit(
				    &g.b[(home + (chain - 1) * stride) & g.mask].overflow,
				    memory_order_relaxed))
				break;
		if (probe > st->longest_probe)
			st->longest_probe = probe;
		if (chain > st->longest_chain)
			st->longest_chain = chain;
	}
	for (uint32_t b = 0; b < g.nb; b++)
		have_sum += atomic_load_explicit(&g.b[b].overflow, memory_order_relaxed);
	st->overflow_excess = have_sum > need_sum ? (uint32_t)(have_sum - need_sum) : 0;
	return 0;
}

/* The home bucket of a name (see registry_int.h). */
int shm_reg_home(const struct shm_seg *seg, uint32_t ns, const char *name, size_t len)
{
	struct shm_reg_geo g;
	struct rkey k;
	int ret;

	ret = geo_get(seg, &g);
	if (!ret)
		ret = key_make(&g, ns, name, len, &k);
	return ret ? ret : (int)k.home;
}
