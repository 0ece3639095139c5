/*
 * Round records: claim, fill, answer bits, free (struct shm_round in shm/layout.h says how a
 * record is laid out and why its bits are a tree of tagged words and not a count).
 *
 * A record is claimed by CAS of ctl from 0 to the claimer's tag, so the repair of a dead
 * claimer's slot finds and frees it (ipc_round_repair()). Its generation is bumped at the
 * claim, before any word is rewritten: every answer carries the generation it was sent
 * with, and a bit word takes an answer only while its tag is that generation.
 */
#include <errno.h>
#include <string.h>

#include "shm/round.h"

void (*shm_round_test_hook)(int step);

#define TAG_OF(w)  ((uint32_t)((w) >> 32))
#define BITS_OF(w) ((uint32_t)(w))

/* The tree's geometry for n members: words per level, their offsets, children per level. */
struct tree {
	uint32_t levels;
	uint32_t off[4];
	uint32_t words[4];
	uint32_t children[4];
};

static void tree_of(uint32_t n, struct tree *t)
{
	uint32_t children = n, off = 0;

	t->levels = 0;
	do {
		/* level 0: 16 members a word (two bits each); above: 32 words a word */
		uint32_t per = t->levels ? 32u : 16u, words = (children + per - 1u) / per;

		t->off[t->levels] = off;
		t->words[t->levels] = words;
		t->children[t->levels] = children;
		t->levels++;
		off += words;
		children = words;
	} while (children > 1 && t->levels < 4);
}

#define ANSWERED_BITS 0x55555555u /* level 0: the "answered" bit of each member */

/* The counted bits of word j of level l when full (level 0: the answered bits). */
static uint32_t full_mask(const struct tree *t, uint32_t l, uint32_t j)
{
	uint32_t cnt;

	if (l == 0) {
		cnt = t->children[0] - j * 16u;
		return cnt >= 16u ? ANSWERED_BITS : ((1u << (2u * cnt)) - 1u) & ANSWERED_BITS;
	}
	cnt = t->children[l] - j * 32u;
	return cnt >= 32u ? UINT32_MAX : (1u << cnt) - 1u;
}

/* The bits that count toward a word's fullness: level 0's answered bits, all above. */
static uint32_t counted(uint32_t l)
{
	return l ? UINT32_MAX : ANSWERED_BITS;
}

static bool has_rounds(const struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);

	return h->layout_minor >= 8 && h->cfg.max_rounds && h->regions[SHM_R_ROUNDS].size;
}

struct shm_round *shm_round_at(const struct shm_seg *seg, uint32_t slot)
{
	const struct shm_hdr *h = shm_hdr(seg);

	if (!has_rounds(seg) || slot >= h->cfg.max_rounds)
		return NULL;
	return (struct shm_round *)((uint8_t *)shm_region(seg, SHM_R_ROUNDS) +
				    (uint64_t)slot * SHM_ROUND_STRIDE(h->cfg.group_members));
}

static _Atomic uint64_t *handles_of(const struct shm_seg *seg, struct shm_round *r)
{
	(void)seg;
	return (_Atomic uint64_t *)(r + 1);
}

static _Atomic uint64_t *tree_words(const struct shm_seg *seg, struct shm_round *r)
{
	return handles_of(seg, r) + shm_hdr(seg)->cfg.group_members;
}

static _Atomic uint64_t *value_words(const struct shm_seg *seg, struct shm_round *r)
{
	return tree_words(seg, r) + SHM_ROUND_TREE_WORDS(shm_hdr(seg)->cfg.group_members);
}

/* See round.h. Any process with a process slot. */
int shm_round_claim(struct shm_seg *seg, uint32_t *slot_out, uint32_t *gen_out)
{
	static _Atomic uint32_t next; /* where this process looks first: spreads claims */
	uint32_t max = shm_hdr(seg)->cfg.max_rounds;
	uint32_t start;

	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	if (!has_rounds(seg))
		return -ENOSPC;
	/* relaxed: a hint only */
	start = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
	for (uint32_t k = 0; k < max; k++) {
		uint32_t slot = (start + k) % max;
		struct shm_round *r = shm_round_at(seg, slot);
		/* relaxed: a look before the CAS */
		uint64_t cur = atomic_load_explicit(&r->ctl, memory_order_relaxed);
		uint32_t gen;

		/*
		 * A free record, or one whose owner's claim is dead (its slot moved to another
		 * epoch or is no longer running: it exited without ending its rounds, or awaits
		 * repair), which is taken over like a free one.
		 */
		if (cur && !shm_tag_is_dead(seg, cur, false))
			continue;
		/* C0: acquire: pairs with F0/F1 (free): the last round's words are done. */
		if (!atomic_compare_exchange_strong_explicit(
			    &r->ctl, &cur, seg->tag, memory_order_acquire, memory_order_relaxed))
			continue;
		/* relaxed: ordered for readers by P0's release in shm_round_publish() */
		gen = atomic_fetch_add_explicit(&r->gen, 1, memory_order_relaxed) + 1;
		if (!gen)
			gen = atomic_fetch_add_explicit(&r->gen, 1, memory_order_relaxed) + 1;
		atomic_store_explicit(&r->state, SHM_ROUND_PREP, memory_order_relaxed);
		atomic_store_explicit(&r->kind, SHM_ROUND_ACK, memory_order_relaxed);
		*slot_out = slot;
		*gen_out = gen;
		return 0;
	}
	return -ENOSPC;
}

/* See round.h. The claimer, before shm_round_publish(). */
void shm_round_set_kind(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t kind)
{
	struct shm_round *r = shm_round_at(seg, slot);

	/* relaxed: published by P0 in shm_round_publish() */
	if (r && atomic_load_explicit(&r->gen, memory_order_relaxed) == gen)
		atomic_store_explicit(&r->kind, kind, memory_order_relaxed);
}

/* See round.h. The claimer. */
void shm_round_publish(struct shm_seg *seg, uint32_t slot, uint32_t gen, shoal_handle_t owner,
		       const shoal_handle_t *members, uint32_t n, uint64_t deadline_ns,
		       uint64_t user_ref)
{
	struct shm_round *r = shm_round_at(seg, slot);
	_Atomic uint64_t *h = handles_of(seg, r), *tw = tree_words(seg, r);
	_Atomic uint64_t *vw = value_words(seg, r);
	uint64_t tag = (uint64_t)gen << 32;
	struct tree t;

	tree_of(n, &t);
	/* relaxed, all: published by P0 below */
	for (uint32_t i = 0; i < n; i++) {
		atomic_store_explicit(&h[i], members[i], memory_order_relaxed);
		atomic_store_explicit(&vw[i], tag | SHM_ROUND_NO_VALUE, memory_order_relaxed);
	}
	for (uint32_t l = 0; l < t.levels; l++)
		for (uint32_t j = 0; j < t.words[l]; j++)
			atomic_store_explicit(&tw[t.off[l] + j], tag, memory_order_relaxed);
	atomic_store_explicit(&r->owner, owner, memory_order_relaxed);
	atomic_store_explicit(&r->members, n, memory_order_relaxed);
	atomic_store_explicit(&r->completed, 0, memory_order_relaxed);
	atomic_store_explicit(&r->start_ns, shm_now_ns(), memory_order_relaxed);
	atomic_store_explicit(&r->deadline_ns, deadline_ns, memory_order_relaxed);
	atomic_store_explicit(&r->user_ref, user_ref, memory_order_relaxed);
	/* P0: release: pairs with the acquires of state in the readers (R0): fields first. */
	atomic_store_explicit(&r->state, SHM_ROUND_ACTIVE, memory_order_release);
}

/*
 * Set bits `set` of tagged word w for generation gen, unless bit `bit` (one of them) is set
 * already. Returns 1 if this call made the word's counted bits (mask cnt) equal full, 0 if
 * not (or bit was set already), -ESTALE if the word belongs to another round.
 */
static int word_set(_Atomic uint64_t *w, uint32_t gen, uint32_t bit, uint32_t set, uint32_t cnt,
		    uint32_t full)
{
	/* relaxed: the CAS below decides */
	uint64_t old = atomic_load_explicit(w, memory_order_relaxed), nw;

	do {
		if (TAG_OF(old) != gen)
			return -ESTALE;
		if (BITS_OF(old) & bit)
			return 0;
		nw = old | set;
		/*
		 * A0: acq_rel: each bit set releases what its setter did before (the lower
		 * levels' bits) and acquires what the earlier setters of the word did, so whoever
		 * fills the top word has seen every answer below it.
		 */
	} while (!atomic_compare_exchange_weak_explicit(w, &old, nw, memory_order_acq_rel,
							memory_order_relaxed));
	return (BITS_OF(nw) & cnt) == full;
}

/* Members of an ACTIVE round (slot, gen), or 0 (not active, another generation). */
static uint32_t active_members(const struct shm_seg *seg, struct shm_round *r, uint32_t gen)
{
	/* R0: acquire: pairs with P0 in shm_round_publish(): its fields are written. */
	if (atomic_load_explicit(&r->state, memory_order_acquire) != SHM_ROUND_ACTIVE ||
	    atomic_load_explicit(&r->gen, memory_order_relaxed) != gen)
		return 0;
	(void)seg;
	return atomic_load_explicit(&r->members, memory_order_relaxed);
}

/* Set the bits from level l, word j upwards while words fill: 1 if the top filled. */
static int propagate(const struct tree *t, _Atomic uint64_t *tw, uint32_t gen, uint32_t l,
		     uint32_t j)
{
	for (; l + 1 < t->levels; l++) {
		uint32_t pj = j / 32u;
		uint32_t b = 1u << (j % 32u);
		int r = word_set(&tw[t->off[l + 1] + pj], gen, b, b, UINT32_MAX,
				 full_mask(t, l + 1, pj));

		if (r <= 0)
			return r < 0 ? r : 0;
		j = pj;
	}
	return 1;
}

/* What an answer says (answer()). */
enum {
	ANS_ACK = 0,  /* acked; in a VOTE round, yes (a member without a vote consents) */
	ANS_DEAD = 1, /* died, failed, unreachable */
	ANS_YES = 2,  /* voted yes (an ACK round: acked) */
	ANS_NO = 3,   /* voted no (an ACK round: acked) */
};

/* Member idx's answer `what` to round (slot, gen): as shm_round_answer(). */
static int answer(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx, uint32_t what)
{
	struct shm_round *r = shm_round_at(seg, slot);
	_Atomic uint64_t *tw;
	struct tree t;
	uint32_t n, bit, set;
	int rc;

	if (!r)
		return -EINVAL;
	n = active_members(seg, r, gen);
	if (!n)
		return -ESTALE;
	if (idx >= n)
		return -EINVAL;
	tree_of(n, &t);
	tw = tree_words(seg, r);
	bit = 1u << (2u * (idx % 16u));
	/* relaxed: written before P0, which active_members() acquired (R0) */
	if (atomic_load_explicit(&r->kind, memory_order_relaxed) == SHM_ROUND_VOTE) {
		if (what == ANS_DEAD) {
			/* relaxed: a look; the CAS below decides */
			uint64_t w = atomic_load_explicit(&tw[idx / 16u], memory_order_relaxed);

			if (TAG_OF(w) != gen)
				return -ESTALE;
			if (BITS_OF(w) & bit)
				return 0; /* voted already: the vote stands */
			/*
			 * relaxed: released with the answer by A0 below, so whoever sees the answer
			 * (the tally, after A1) sees the flag. A vote landing between the look and
			 * the CAS keeps its yes; a no would be listed dead (both count as not yes).
			 */
			atomic_fetch_or_explicit(&handles_of(seg, r)[idx], SHM_ROUND_H_DEAD,
						 memory_order_relaxed);
		}
		set = what == ANS_ACK || what == ANS_YES ? bit | bit << 1 : bit;
	} else {
		set = what == ANS_DEAD ? bit | bit << 1 : bit;
	}
	/* answered, and dead or yes with it, in one CAS: the first answer decides */
	rc = word_set(&tw[idx / 16u], gen, bit, set, ANSWERED_BITS, full_mask(&t, 0, idx / 16u));
	if (rc <= 0)
		return rc;
	if (__builtin_expect(shm_round_test_hook != NULL, 0))
		shm_round_test_hook(SHM_ROUND_STEP_LEAF_FULL);
	rc = propagate(&t, tw, gen, 0, idx / 16u);
	if (rc == 1)
		/* relaxed: for tools; the top word is what waiters read */
		atomic_store_explicit(&r->completed, 1, memory_order_relaxed);
	return rc;
}

/* See round.h. The member's answerer, before shm_round_answer(). */
int shm_round_set_value(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx,
			uint32_t value)
{
	struct shm_round *r = shm_round_at(seg, slot);
	uint64_t expect = ((uint64_t)gen << 32) | SHM_ROUND_NO_VALUE, leaf;
	uint32_t n;

	if (!r)
		return -EINVAL;
	n = active_members(seg, r, gen);
	if (!n)
		return -ESTALE;
	if (idx >= n || value == SHM_ROUND_NO_VALUE)
		return -EINVAL;
	/* relaxed: a member answers from one process at a time; its own bit, read back */
	leaf = atomic_load_explicit(&tree_words(seg, r)[idx / 16u], memory_order_relaxed);
	if (TAG_OF(leaf) != gen)
		return -ESTALE;
	if (BITS_OF(leaf) & (1u << (2u * (idx % 16u))))
		return -EALREADY; /* answered: what it answered with is what was published */
	/*
	 * V0: relaxed: published by A0 of this member's answer, which this thread makes after
	 * it. A CAS from this generation's empty value: a late value of an earlier round of the
	 * record (another tag) never lands, and of two values the first stays.
	 */
	if (atomic_compare_exchange_strong_explicit(&value_words(seg, r)[idx], &expect,
						    ((uint64_t)gen << 32) | value,
						    memory_order_relaxed, memory_order_relaxed))
		return 0;
	return TAG_OF(expect) == gen ? -EALREADY : -ESTALE;
}

/* See round.h. Any process; the owner, once the round is over. */
bool shm_round_value(const struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx,
		     uint32_t *value)
{
	struct shm_round *r = shm_round_at(seg, slot);
	uint64_t a, v;

	if (!r || idx >= active_members(seg, r, gen))
		return false;
	/* V1: acquire: pairs with A0 of the member's answer: the value set before it (V0). */
	a = atomic_load_explicit(&tree_words(seg, r)[idx / 16u], memory_order_acquire);
	if (TAG_OF(a) != gen || ((BITS_OF(a) >> (2u * (idx % 16u))) & 3u) != 1u)
		return false; /* no answer, or dead */
	/* relaxed: ordered by V1 */
	v = atomic_load_explicit(&value_words(seg, r)[idx], memory_order_relaxed);
	if (TAG_OF(v) != gen || BITS_OF(v) == SHM_ROUND_NO_VALUE)
		return false;
	*value = BITS_OF(v);
	return true;
}

/* See round.h. Any process. */
int shm_round_answer(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx, bool dead)
{
	return answer(seg, slot, gen, idx, dead ? ANS_DEAD : ANS_ACK);
}

/* See round.h. Any process. */
int shm_round_vote(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx, bool yes)
{
	return answer(seg, slot, gen, idx, yes ? ANS_YES : ANS_NO);
}

/* See round.h. Any process. */
bool shm_round_is_complete(const struct shm_seg *seg, uint32_t slot, uint32_t gen)
{
	struct shm_round *r = shm_round_at(seg, slot);
	struct tree t;
	uint64_t top;
	uint32_t n;

	if (!r)
		return false;
	n = active_members(seg, r, gen);
	if (!n)
		return false;
	tree_of(n, &t);
	/* A1: acquire: pairs with A0 of the top word's filler: every answer is visible. */
	top = atomic_load_explicit(&tree_words(seg, r)[t.off[t.levels - 1]], memory_order_acquire);
	return TAG_OF(top) == gen &&
	       (BITS_OF(top) & counted(t.levels - 1)) == full_mask(&t, t.levels - 1, 0);
}

/* See round.h. Any process. */
uint32_t shm_round_member(const struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx,
			  shoal_handle_t *handle)
{
	struct shm_round *r = shm_round_at(seg, slot);
	uint32_t n, b;
	uint64_t a, h;

	if (handle)
		*handle = SHOAL_HANDLE_NONE;
	if (!r)
		return SHM_ROUND_M_ABSENT;
	n = active_members(seg, r, gen);
	if (idx >= n)
		return SHM_ROUND_M_ABSENT;
	/* relaxed: published by P0 (R0 acquired it); the dead flag comes with its answer */
	h = atomic_load_explicit(&handles_of(seg, r)[idx], memory_order_relaxed);
	if (handle)
		*handle = h & ~SHM_ROUND_H_DEAD;
	/* relaxed: both bits come in one word */
	a = atomic_load_explicit(&tree_words(seg, r)[idx / 16u], memory_order_relaxed);
	b = BITS_OF(a) >> (2u * (idx % 16u));
	if (TAG_OF(a) != gen || !(b & 1u))
		return SHM_ROUND_M_ABSENT;
	if (atomic_load_explicit(&r->kind, memory_order_relaxed) == SHM_ROUND_VOTE) {
		if (b & 2u)
			return SHM_ROUND_M_YES;
		/* relaxed: set before the answer's A0, which the caller's A1 acquired */
		h = atomic_load_explicit(&handles_of(seg, r)[idx], memory_order_relaxed);
		return h & SHM_ROUND_H_DEAD ? SHM_ROUND_M_DEAD : SHM_ROUND_M_NO;
	}
	return b & 2u ? SHM_ROUND_M_DEAD : SHM_ROUND_M_ACKED;
}

/* See round.h. The repairer of a dead slot. */
int shm_round_settle(struct shm_seg *seg, uint32_t slot, uint32_t gen)
{
	struct shm_round *r = shm_round_at(seg, slot);
	_Atomic uint64_t *tw;
	struct tree t;
	uint32_t n;

	if (!r || !(n = active_members(seg, r, gen)))
		return 0;
	tree_of(n, &t);
	tw = tree_words(seg, r);
	/* bottom up: a word that is full has its bit set in its parent (idempotent) */
	for (uint32_t l = 0; l + 1 < t.levels; l++) {
		for (uint32_t j = 0; j < t.words[l]; j++) {
			/* acquire: as A1, for the bits below */
			uint64_t w = atomic_load_explicit(&tw[t.off[l] + j], memory_order_acquire);
			uint32_t b = 1u << (j % 32u);

			if (TAG_OF(w) != gen)
				return 0;
			if ((BITS_OF(w) & counted(l)) == full_mask(&t, l, j))
				word_set(&tw[t.off[l + 1] + j / 32u], gen, b, b, UINT32_MAX,
					 full_mask(&t, l + 1, j / 32u));
		}
	}
	if (!shm_round_is_complete(seg, slot, gen))
		return 0;
	/* relaxed: for tools, as in shm_round_answer() */
	atomic_store_explicit(&r->completed, 1, memory_order_relaxed);
	return 1;
}

/* See round.h. */
void shm_round_free(struct shm_seg *seg, uint32_t slot, uint32_t gen)
{
	struct shm_round *r = shm_round_at(seg, slot);

	if (!r || atomic_load_explicit(&r->gen, memory_order_relaxed) != gen)
		return;
	/* relaxed: answers check the word tags, not the state; F0 publishes */
	atomic_store_explicit(&r->state, SHM_ROUND_FREE, memory_order_relaxed);
	/* F0: release: pairs with C0 in shm_round_claim(). */
	atomic_store_explicit(&r->ctl, 0, memory_order_release);
}

/* See round.h. The repairer of the dead slot whose claim tag is `tag`. */
void shm_round_free_dead(struct shm_seg *seg, uint32_t slot, uint64_t tag)
{
	struct shm_round *r = shm_round_at(seg, slot);

	/*
	 * F1: release, as F0. A CAS: a claimer may have taken the record over meanwhile (its
	 * owner's claim is dead), and its claim stays. The state is left to the next claim:
	 * answers and repairs check the generation, and a free record is one whose ctl is 0.
	 */
	if (r)
		atomic_compare_exchange_strong_explicit(&r->ctl, &tag, 0, memory_order_release,
							memory_order_relaxed);
}

/* See round.h. */
uint32_t shm_round_in_use(const struct shm_seg *seg)
{
	uint32_t n = 0, max = has_rounds(seg) ? shm_hdr(seg)->cfg.max_rounds : 0;

	for (uint32_t i = 0; i < max; i++)
		/* relaxed: a count */
		if (atomic_load_explicit(&shm_round_at(seg, i)->ctl, memory_order_relaxed))
			n++;
	return n;
}
