/*
 * Process groups: named sets of agent handles, for broadcasts.
 *
 * The SHM_R_GROUPS region is cfg.max_groups slots of a 128-byte header (struct shm_grp)
 * followed by cfg.group_members handle words (0: free). Groups are few, so every search
 * is a linear scan.
 *
 * Creation uses the registry's protocol (shm/registry.c): reserve a free header (CAS 0 ->
 * RESERVED|tag), zero its members, fill the name, store PENDING|tag (seq_cst), scan every
 * header: a LIVE one of the same name wins (withdraw, join it); a PENDING one with a
 * smaller (tag, index) wins unless its owner is dead (withdraw, wait for it); a larger one
 * is CASed ABORTED; a DELETING one may still revert to LIVE, so wait for it too; last CAS
 * own PENDING -> LIVE|seq. Two creators of one name end with one group.
 *
 * Members are single words: join CASes 0 -> handle, leave CASes handle -> 0. Deletion when
 * the last member leaves: CAS LIVE|seq -> DELETING|tag (seq_cst), scan the members
 * (seq_cst): any there -> back to LIVE with a new seq; none -> empty the header. A joiner
 * CASes its member in (seq_cst), then re-loads ctl (seq_cst): if the group it joined is no
 * longer LIVE with the same seq it takes its member out and retries. Dekker: a deleter
 * and a joiner cannot both miss each other. A joiner records (group, member slot, seq) in
 * its intent line before its CAS, so repair takes a dead joiner's stray member out of a
 * group that was deleted (and maybe reused) under it.
 *
 * Dead claims (RESERVED/PENDING/ABORTED: undo; DELETING: finish or revert) are taken over
 * by CAS as in the registry, by writers that meet them and by shm_grp_repair().
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "shm/cpu.h"
#include "shm/registry.h"
#include "shm/registry_int.h"
#include "shm/seqlock.h"
#include "shm/shm.h"

/* reg_intent words used by groups (registry re-registration uses 0..5 and 7). */
#define GRP_INTENT_JOIN	  6			/* (group + 1) | (member + 1) << 20 | seq24 << 40 */
#define GRP_INTENT_HANDLE SHM_REG_INTENT_HANDLE /* the handle being joined (op word is 0) */

struct ggeo {
	uint8_t *base;
	uint32_t ngroups;
	uint32_t nmembers;
	uint64_t stride;
};

struct gkey {
	uint64_t w[8];
	uint64_t key;
	uint32_t nw;
};

struct gsnap {
	uint64_t ctl, seq, key;
	uint64_t w[8];
};

/* Bytes of the group region for cfg: per group a header and its member words. Pure. */
uint64_t shm_grp_region_size(const struct shm_cfg *cfg)
{
	return (uint64_t)cfg->max_groups *
	       (sizeof(struct shm_grp) + (uint64_t)cfg->group_members * 8);
}

static int ggeo_get(const struct shm_seg *seg, struct ggeo *g)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_region *r = &h->regions[SHM_R_GROUPS];

	g->ngroups = h->cfg.max_groups;
	g->nmembers = h->cfg.group_members;
	g->stride = sizeof(struct shm_grp) + (uint64_t)g->nmembers * 8;
	/* tools never trust the segment */
	if (g->ngroups > (1u << 16) || g->nmembers > (1u << 16) || r->off > seg->size ||
	    r->size > seg->size - r->off || (uint64_t)g->ngroups * g->stride > r->size)
		return -EUCLEAN;
	g->base = seg->base + r->off;
	return 0;
}

static inline struct shm_grp *grp_at(const struct ggeo *g, uint32_t i)
{
	return (struct shm_grp *)(g->base + (uint64_t)i * g->stride);
}

static inline _Atomic uint64_t *grp_members(const struct ggeo *g, uint32_t i)
{
	return (_Atomic uint64_t *)(g->base + (uint64_t)i * g->stride + sizeof(struct shm_grp));
}

static int gkey_make(const char *name, size_t len, struct gkey *k)
{
	uint64_t h = 0x2545f4914f6cdd1dull ^ len;

	if (!name || len == 0 || len > SHOAL_NAME_MAX || memchr(name, 0, len))
		return -EINVAL;
	k->nw = (uint32_t)(len + 7) / 8;
	memset(k->w, 0, sizeof(k->w));
	memcpy(k->w, name, len);
	for (uint32_t i = 0; i < k->nw; i++) {
		h = (h ^ k->w[i]) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
	}
	k->key = (h & 0xffffffffull) | ((uint64_t)len << 48);
	return 0;
}

static void gsnap_get(const struct shm_grp *gr, struct gsnap *s)
{
	for (;;) {
		/* G0: seq_cst: the creation scan's loads (Dekker with G1 in grp_create()). */
		uint64_t c1 = atomic_load_explicit(&gr->ctl, memory_order_seq_cst);
		/* G2: SQ3 (shm/seqlock.h): pairs with GW0 and the claimers' releases. */
		uint64_t s1 = shm_seq_read_begin(&gr->seq);

		s->key = atomic_load_explicit(&gr->key, memory_order_relaxed);
		for (int i = 0; i < 8; i++)
			s->w[i] = atomic_load_explicit(&gr->name[i], memory_order_relaxed);
		/* G3: SQ2: data before the re-check of seq and ctl (pairs with GW0). */
		if (shm_seq_read_end(&gr->seq) == s1 &&
		    atomic_load_explicit(&gr->ctl, memory_order_relaxed) == c1) {
			s->ctl = c1;
			s->seq = s1;
			return;
		}
	}
}

static bool gsnap_is(const struct gsnap *s, const struct gkey *k)
{
	return s->key == k->key && !memcmp(s->w, k->w, sizeof(s->w));
}

static bool members_empty(const struct ggeo *g, uint32_t gi)
{
	_Atomic uint64_t *m = grp_members(g, gi);

	for (uint32_t i = 0; i < g->nmembers; i++)
		/* G4: seq_cst: the deleter's scan (Dekker with the joiner's J0/J1). */
		if (atomic_load_explicit(&m[i], memory_order_seq_cst))
			return false;
	return true;
}

/* Empty a header we hold (RESERVED or DELETING with no members). */
static void grp_undo(const struct ggeo *g, uint32_t gi)
{
	struct shm_grp *gr = grp_at(g, gi);

	atomic_store_explicit(&gr->key, 0, memory_order_relaxed);
	/* GF0: release: pairs with GC0 in the reservers' CAS: the header is empty. */
	atomic_store_explicit(&gr->ctl, 0, memory_order_release);
}

static uint64_t grp_seq_bump(struct shm_grp *gr)
{
	/* relaxed: the claim holder is the only writer; it reads its own last store */
	uint64_t s = atomic_load_explicit(&gr->seq, memory_order_relaxed) + 1;

	/* GW0: SQ0 (shm/seqlock.h): pairs with G2/G3. */
	shm_seq_write_mark(&gr->seq, s);
	return s;
}

static inline uint64_t grp_live(uint64_t seq)
{
	return SHM_REG_CTL(SHM_REG_LIVE, seq & 0x00ffffffffffffffull);
}

/*
 * A deletion we hold (DELETING, our tag): finish it, or revert if members appeared; a
 * member that left during the revert gets the deletion retried, so an empty group does
 * not linger.
 */
static void grp_delete_finish(const struct shm_seg *seg, const struct ggeo *g, uint32_t gi)
{
	struct shm_grp *gr = grp_at(g, gi);

	for (;;) {
		uint64_t c;

		if (members_empty(g, gi)) {
			grp_undo(g, gi);
			return;
		}
		c = grp_live(grp_seq_bump(gr));
		/* GL0: seq_cst: back to live, a new seq so joiners that saw DELETING retry. */
		atomic_store_explicit(&gr->ctl, c, memory_order_seq_cst);
		if (!members_empty(g, gi))
			return;
		/* GD1: seq_cst: as GD0 in grp_try_delete(). */
		if (!atomic_compare_exchange_strong_explicit(
			    &gr->ctl, &c, SHM_REG_CTL(SHM_REG_DELETING, seg->tag),
			    memory_order_seq_cst, memory_order_relaxed))
			return;
	}
}

static bool grp_take_over(struct shm_seg *seg, const struct ggeo *g, uint32_t gi, uint64_t c)
{
	struct shm_grp *gr = grp_at(g, gi);
	uint32_t st = SHM_REG_CTL_STATE(c);
	uint64_t mine;

	if (st == SHM_REG_EMPTY || st == SHM_REG_LIVE || st > SHM_REG_DELETING)
		return true;
	mine = SHM_REG_CTL(st == SHM_REG_DELETING ? st : SHM_REG_RESERVED, seg->tag);
	/* GC1: acq_rel: the dead owner's stores before ours. */
	if (!atomic_compare_exchange_strong_explicit(&gr->ctl, &c, mine, memory_order_acq_rel,
						     memory_order_acquire))
		return true;
	if (st == SHM_REG_DELETING) {
		grp_delete_finish(seg, g, gi);
	} else {
		_Atomic uint64_t *m = grp_members(g, gi);

		for (uint32_t i = 0; i < g->nmembers; i++)
			atomic_store_explicit(&m[i], 0, memory_order_relaxed);
		grp_undo(g, gi);
	}
	return true;
}

/* Smaller (tag, index) wins a creation race. */
static bool prio_less_grp(uint64_t tag_a, uint32_t idx_a, uint64_t tag_b, uint32_t idx_b)
{
	return tag_a < tag_b || (tag_a == tag_b && idx_a < idx_b);
}

static bool claim_dead(const struct shm_seg *seg, uint64_t c)
{
	return SHM_REG_CTL_TAG(c) != seg->tag && shm_tag_is_dead(seg, SHM_REG_CTL_TAG(c), true);
}

/*
 * Index of the group named k (and its ctl), or UINT32_MAX. A group being deleted may still
 * revert to LIVE (a member joined meanwhile): leave and members count it (with
 * deleting); join must wait for it instead.
 */
static uint32_t grp_find(const struct ggeo *g, const struct gkey *k, uint64_t *ctl, bool deleting)
{
	for (uint32_t i = 0; i < g->ngroups; i++) {
		const struct shm_grp *gr = grp_at(g, i);
		struct gsnap s;
		uint32_t st;

		/* relaxed pre-filter: the snapshot decides */
		if (atomic_load_explicit(&gr->key, memory_order_relaxed) != k->key)
			continue;
		gsnap_get(gr, &s);
		st = SHM_REG_CTL_STATE(s.ctl);
		if ((st == SHM_REG_LIVE || (deleting && st == SHM_REG_DELETING)) &&
		    gsnap_is(&s, k)) {
			*ctl = s.ctl;
			return i;
		}
	}
	return UINT32_MAX;
}

/*
 * Create group k, or find the one a racing creator made. Returns 0 with its index, -EAGAIN
 * (a live rival is deciding: retry), -ENOSPC.
 */
static int grp_create(struct shm_seg *seg, const struct ggeo *g, const struct gkey *k,
		      uint32_t *gi_out)
{
	uint64_t pend = SHM_REG_CTL(SHM_REG_PENDING, seg->tag), c, s;
	uint32_t gi = UINT32_MAX;
	struct shm_grp *gr;
	int ret = 0;

	for (uint32_t pass = 0; pass < 2 && gi == UINT32_MAX; pass++) {
		for (uint32_t i = 0; i < g->ngroups; i++) {
			c = atomic_load_explicit(&grp_at(g, i)->ctl, memory_order_relaxed);
			if (c && pass == 1 && SHM_REG_CTL_STATE(c) != SHM_REG_LIVE &&
			    claim_dead(seg, c)) {
				grp_take_over(seg, g, i, c);
				c = atomic_load_explicit(&grp_at(g, i)->ctl, memory_order_relaxed);
			}
			if (c)
				continue;
			/* GC0: acq_rel: pairs with GF0. */
			if (atomic_compare_exchange_strong_explicit(
				    &grp_at(g, i)->ctl, &c, SHM_REG_CTL(SHM_REG_RESERVED, seg->tag),
				    memory_order_acq_rel, memory_order_relaxed)) {
				gi = i;
				break;
			}
		}
	}
	if (gi == UINT32_MAX)
		return -ENOSPC;
	gr = grp_at(g, gi);
	s = grp_seq_bump(gr);
	for (uint32_t i = 0; i < g->nmembers; i++)
		atomic_store_explicit(&grp_members(g, gi)[i], 0, memory_order_relaxed);
	atomic_store_explicit(&gr->key, k->key, memory_order_relaxed);
	for (int i = 0; i < 8; i++)
		atomic_store_explicit(&gr->name[i], k->w[i], memory_order_relaxed);
	/* G1: seq_cst store, then seq_cst scan (G0): two creators cannot both miss. */
	atomic_store_explicit(&gr->ctl, pend, memory_order_seq_cst);
	for (uint32_t j = 0; j < g->ngroups && !ret; j++) {
		struct shm_grp *o = grp_at(g, j);
		struct gsnap os;

		if (j == gi)
			continue;
	again:
		gsnap_get(o, &os);
		if (!gsnap_is(&os, k))
			continue;
		switch (SHM_REG_CTL_STATE(os.ctl)) {
		case SHM_REG_LIVE:
			ret = -EEXIST;
			break;
		case SHM_REG_DELETING:
			/*
			 * A deletion may still revert to LIVE (a member joined meanwhile): wait
			 * for it, or a second group of this name could appear.
			 */
			if (claim_dead(seg, os.ctl)) {
				grp_take_over(seg, g, j, os.ctl);
				goto again;
			}
			ret = -EAGAIN;
			break;
		case SHM_REG_PENDING:
			if (prio_less_grp(SHM_REG_CTL_TAG(os.ctl), j, seg->tag, gi)) {
				if (!claim_dead(seg, os.ctl)) {
					ret = -EAGAIN;
					break;
				}
				grp_take_over(seg, g, j, os.ctl);
				goto again;
			}
			/* GA0: seq_cst: part of the scan's order. */
			if (!atomic_compare_exchange_strong_explicit(
				    &o->ctl, &os.ctl,
				    SHM_REG_CTL(SHM_REG_ABORTED, SHM_REG_CTL_TAG(os.ctl)),
				    memory_order_seq_cst, memory_order_seq_cst))
				goto again;
			break;
		default:
			break;
		}
	}
	if (!ret) {
		c = pend;
		/* GL1: seq_cst: publication; fails only if we were aborted (GA0). */
		if (atomic_compare_exchange_strong_explicit(&gr->ctl, &c, grp_live(s),
							    memory_order_seq_cst,
							    memory_order_seq_cst)) {
			*gi_out = gi;
			return 0;
		}
		ret = -EAGAIN;
	}
	/* G9: seq_cst, as the PENDING store it undoes: scanners order it against their own. */
	atomic_store_explicit(&gr->ctl, SHM_REG_CTL(SHM_REG_RESERVED, seg->tag),
			      memory_order_seq_cst);
	grp_undo(g, gi);
	return ret == -EEXIST ? -EAGAIN : ret;
}

/* Try to delete group gi (ctl c, LIVE) if it has no members. */
static void grp_try_delete(struct shm_seg *seg, const struct ggeo *g, uint32_t gi, uint64_t c)
{
	struct shm_grp *gr = grp_at(g, gi);

	if (SHM_REG_CTL_STATE(c) != SHM_REG_LIVE || !members_empty(g, gi))
		return; /* (a deletion in progress finishes or reverts on its own) */
	/* GD0: seq_cst: DELETING before the member scan (Dekker with J0/J1). */
	if (!atomic_compare_exchange_strong_explicit(&gr->ctl, &c,
						     SHM_REG_CTL(SHM_REG_DELETING, seg->tag),
						     memory_order_seq_cst, memory_order_relaxed))
		return;
	grp_delete_finish(seg, g, gi);
}

static int grp_writer(const struct shm_seg *seg)
{
	return !seg->writable || seg->self == UINT32_MAX ? -EROFS : 0;
}

/* Join handle to group name (created on first join). Writers with a process slot. */
int shm_grp_join(struct shm_seg *seg, const char *name, size_t len, shoal_handle_t handle)
{
	struct shm_proc *p;
	struct ggeo g;
	struct gkey k;
	int ret;

	ret = ggeo_get(seg, &g);
	if (!ret)
		ret = gkey_make(name, len, &k);
	if (!ret && handle == SHOAL_HANDLE_NONE)
		ret = -EINVAL;
	if (!ret)
		ret = grp_writer(seg);
	if (ret)
		return ret;
	if (!g.ngroups || !g.nmembers)
		return -ENOSPC;
	p = shm_proc_at(seg, seg->self);
	for (uint32_t spins = 0;; spins++) {
		_Atomic uint64_t *m;
		uint32_t gi, free_slot = UINT32_MAX;
		uint64_t c, zero = 0;

		gi = grp_find(&g, &k, &c, true);
		if (gi != UINT32_MAX && SHM_REG_CTL_STATE(c) == SHM_REG_DELETING) {
			/* wait for the deletion to finish or revert (resolve it if its owner died)
			 */
			if (claim_dead(seg, c))
				grp_take_over(seg, &g, gi, c);
			else if (spins & 15)
				shm_cpu_relax();
			else
				sched_yield();
			continue;
		}
		if (gi == UINT32_MAX) {
			ret = grp_create(seg, &g, &k, &gi);
			if (ret == -EAGAIN) {
				if (spins & 15)
					shm_cpu_relax();
				else
					sched_yield();
				continue;
			}
			if (ret)
				return ret;
			continue; /* find it again, with its ctl */
		}
		m = grp_members(&g, gi);
		for (uint32_t i = 0; i < g.nmembers; i++) {
			uint64_t v = atomic_load_explicit(&m[i], memory_order_acquire);

			if (v == handle)
				return 0;
			if (!v && free_slot == UINT32_MAX)
				free_slot = i;
		}
		if (free_slot == UINT32_MAX)
			return -ENOSPC;
		/* relaxed: owner-written intent; the seq_cst CAS below orders it before */
		atomic_store_explicit(&p->reg_intent[GRP_INTENT_HANDLE], handle,
				      memory_order_relaxed);
		atomic_store_explicit(&p->reg_intent[GRP_INTENT_JOIN],
				      (gi + 1) | ((uint64_t)(free_slot + 1) << 20) |
					      ((SHM_REG_CTL_TAG(c) & 0xffffffull) << 40),
				      memory_order_seq_cst);
		/* J0: seq_cst: member in, then re-check ctl (J1); Dekker with GD0/G4. */
		if (!atomic_compare_exchange_strong_explicit(&m[free_slot], &zero, handle,
							     memory_order_seq_cst,
							     memory_order_relaxed)) {
			atomic_store_explicit(&p->reg_intent[GRP_INTENT_JOIN], 0,
					      memory_order_relaxed);
			continue;
		}
		/* J1: seq_cst. */
		if (atomic_load_explicit(&grp_at(&g, gi)->ctl, memory_order_seq_cst) == c) {
			/* a racing join of the same handle may have taken another slot: keep one */
			for (uint32_t i = 0; i < g.nmembers; i++) {
				uint64_t h = handle;

				if (i == free_slot ||
				    /* G10: seq_cst member loads and CASes: two joiners of one
				       handle see each other (Dekker). */
				    atomic_load_explicit(&m[i], memory_order_seq_cst) != handle)
					continue;
				if (i < free_slot) {
					atomic_compare_exchange_strong_explicit(
						&m[free_slot], &h, 0, memory_order_seq_cst,
						memory_order_relaxed);
					break;
				}
				atomic_compare_exchange_strong_explicit(
					&m[i], &h, 0, memory_order_seq_cst, memory_order_relaxed);
			}
			atomic_store_explicit(&p->reg_intent[GRP_INTENT_JOIN], 0,
					      memory_order_relaxed);
			return 0;
		}
		{
			uint64_t h = handle;

			atomic_compare_exchange_strong_explicit(
				&m[free_slot], &h, 0, memory_order_seq_cst, memory_order_relaxed);
		}
		atomic_store_explicit(&p->reg_intent[GRP_INTENT_JOIN], 0, memory_order_relaxed);
	}
}

/* Leave group name. Writers. */
int shm_grp_leave(struct shm_seg *seg, const char *name, size_t len, shoal_handle_t handle)
{
	struct ggeo g;
	struct gkey k;
	uint32_t gi;
	uint64_t c;
	int ret, n = 0;

	ret = ggeo_get(seg, &g);
	if (!ret)
		ret = gkey_make(name, len, &k);
	if (!ret)
		ret = grp_writer(seg);
	if (ret)
		return ret;
	gi = grp_find(&g, &k, &c, true);
	if (gi == UINT32_MAX)
		return -ENOENT;
	for (uint32_t i = 0; i < g.nmembers; i++) {
		uint64_t h = handle;

		/* LV0: seq_cst: pairs with the deleter's scan. */
		if (atomic_compare_exchange_strong_explicit(&grp_members(&g, gi)[i], &h, 0,
							    memory_order_seq_cst,
							    memory_order_relaxed))
			n++;
	}
	if (!n)
		return -ENOENT;
	grp_try_delete(seg, &g, gi, c);
	return 0;
}

/* Copy members. Any attachment. */
int shm_grp_members(const struct shm_seg *seg, const char *name, size_t len, shoal_handle_t *out,
		    uint32_t max)
{
	struct ggeo g;
	struct gkey k;
	uint32_t gi, n = 0;
	uint64_t c;
	int ret;

	ret = ggeo_get(seg, &g);
	if (!ret)
		ret = gkey_make(name, len, &k);
	if (ret)
		return ret;
	gi = grp_find(&g, &k, &c, true);
	if (gi == UINT32_MAX)
		return -ENOENT;
	for (uint32_t i = 0; i < g.nmembers; i++) {
		/* relaxed: a snapshot; members are single words */
		uint64_t v = atomic_load_explicit(&grp_members(&g, gi)[i], memory_order_relaxed);

		if (!v)
			continue;
		if (n < max && out)
			out[n] = v;
		n++;
	}
	return (int)n;
}

/* Remove handle from every group. Writers. Returns how many memberships ended. */
int shm_grp_leave_all(struct shm_seg *seg, shoal_handle_t handle)
{
	struct ggeo g;
	int n = 0;

	if (ggeo_get(seg, &g) || grp_writer(seg) || handle == SHOAL_HANDLE_NONE)
		return 0;
	for (uint32_t gi = 0; gi < g.ngroups; gi++) {
		/* G11: pairs with the seq_cst store that made the group LIVE: name, members first.
		 */
		uint64_t c = atomic_load_explicit(&grp_at(&g, gi)->ctl, memory_order_acquire);
		int here = 0;

		if (SHM_REG_CTL_STATE(c) != SHM_REG_LIVE &&
		    SHM_REG_CTL_STATE(c) != SHM_REG_DELETING)
			continue;
		for (uint32_t i = 0; i < g.nmembers; i++) {
			uint64_t h = handle;

			/* LV1: as LV0. */
			if (atomic_compare_exchange_strong_explicit(&grp_members(&g, gi)[i], &h, 0,
								    memory_order_seq_cst,
								    memory_order_relaxed))
				here++;
		}
		if (here) {
			n += here;
			grp_try_delete(seg, &g, gi, c);
		}
	}
	return n;
}

/*
 * Resolve process slot `slot`'s group claims (dead): creations and deletions it left
 * half done, and a join it was in the middle of. The supervisor; needs our own slot.
 * Returns how many were resolved.
 */
int shm_grp_repair(struct shm_seg *seg, uint32_t slot)
{
	struct ggeo g;
	int n = 0;
	uint64_t j;

	if (ggeo_get(seg, &g))
		return -EUCLEAN;
	if (grp_writer(seg))
		return -EROFS;
	for (uint32_t gi = 0; gi < g.ngroups; gi++) {
		/* R3: acquire: pairs with the dead owner's claim. */
		uint64_t c = atomic_load_explicit(&grp_at(&g, gi)->ctl, memory_order_acquire);
		uint32_t st = SHM_REG_CTL_STATE(c);

		if (st == SHM_REG_EMPTY || st == SHM_REG_LIVE ||
		    SHM_TAG_SLOT(SHM_REG_CTL_TAG(c)) != slot || SHM_REG_CTL_TAG(c) == seg->tag ||
		    !shm_tag_is_dead(seg, SHM_REG_CTL_TAG(c), false))
			continue;
		grp_take_over(seg, &g, gi, c);
		n++;
	}
	if (slot < shm_hdr(seg)->cfg.max_procs) {
		struct shm_proc *p = shm_proc_at(seg, slot);

		/* R4: acquire: the dead joiner's intent. */
		j = atomic_load_explicit(&p->reg_intent[GRP_INTENT_JOIN], memory_order_acquire);
		if (j) {
			uint32_t gi = (uint32_t)(j & 0xfffff) - 1;
			uint32_t mi = (uint32_t)((j >> 20) & 0xfffff) - 1;
			uint64_t h = atomic_load_explicit(&p->reg_intent[GRP_INTENT_HANDLE],
							  memory_order_relaxed);

			if (gi < g.ngroups && mi < g.nmembers) {
				/* G11 (again): the group as its last writer published it. */
				uint64_t c = atomic_load_explicit(&grp_at(&g, gi)->ctl,
								  memory_order_acquire);

				/* the group it joined is gone or reused: take the stray out */
				if (SHM_REG_CTL_STATE(c) != SHM_REG_LIVE ||
				    (SHM_REG_CTL_TAG(c) & 0xffffffull) != (j >> 40)) {
					atomic_compare_exchange_strong_explicit(
						&grp_members(&g, gi)[mi], &h, 0,
						memory_order_seq_cst, memory_order_relaxed);
					n++;
				}
			}
			atomic_store_explicit(&p->reg_intent[GRP_INTENT_JOIN], 0,
					      memory_order_relaxed);
		}
	}
	return n;
}

/* Visit live groups. Any attachment, read-only included. */
int shm_grp_foreach(const struct shm_seg *seg, shm_grp_visit_fn fn, void *arg)
{
	struct ggeo g;
	int ret;

	if (ggeo_get(seg, &g))
		return 0;
	for (uint32_t gi = 0; gi < g.ngroups; gi++) {
		char name[SHOAL_NAME_MAX + 1];
		struct gsnap s;
		uint32_t len, n = 0;

		if (SHM_REG_CTL_STATE(atomic_load_explicit(&grp_at(&g, gi)->ctl,
							   memory_order_relaxed)) != SHM_REG_LIVE)
			continue;
		gsnap_get(grp_at(&g, gi), &s);
		len = (uint32_t)((s.key >> 48) & 0xffu);
		if (SHM_REG_CTL_STATE(s.ctl) != SHM_REG_LIVE || len == 0 || len > SHOAL_NAME_MAX)
			continue; /* never copy past the name, whatever the segment says */
		memcpy(name, s.w, len);
		name[len] = 0;
		for (uint32_t i = 0; i < g.nmembers; i++)
			/* relaxed: a snapshot count */
			n += atomic_load_explicit(&grp_members(&g, gi)[i], memory_order_relaxed) !=
			     0;
		ret = fn(name, n, arg);
		if (ret)
			return ret;
	}
	return 0;
}
