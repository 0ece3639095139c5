/*
 * Subscriptions to coordination variables: the table after the variables in SHM_R_VARS
 * (shm/var_int.h has the layout). The messages themselves go out one layer up
 * (workers/var.c, through ipc): this file decides who gets one.
 *
 * Entries. A subscription names one variable (its id) or a name prefix (namespace and
 * bytes) and its subscriber's handle (an agent's, or a client inbox's with that client's
 * claim tag in host, so it dies with the client). Its process claims a free entry (ctl
 * 0 -> CLAIMED with its tag), fills it, counts it (the variable's subs word, or the header's
 * prefixes) and stores it LIVE with a new generation; the subscription's reference is
 * (index, generation). Removal stores ctl 0, then uncounts. The counts are hints a writer
 * reads to skip the scan: counted before LIVE and uncounted after free, they are never too
 * low (a process killed in between leaves one too high: a scan for nothing).
 *
 * Coalescing. pending is IDLE (no notification in the subscriber's mailbox), QUEUED (one is
 * there), OWED (a full mailbox refused one) or SENDING with a notifier's tag. After an
 * update a notifier takes each matching entry IDLE or OWED -> SENDING(tag) by CAS, puts the
 * notification, then SENDING(tag) -> QUEUED (or -> OWED if the mailbox was full). A QUEUED
 * entry is skipped: its notification is on its way, and the subscriber reads the newest
 * value when it gets it. So a subscriber has at most one notification per subscription in
 * its mailbox (two while a consumer races a notifier, below), however many updates come,
 * and a writer never waits for it. The consumer (the subscriber's worker, or its client's
 * recv) sets pending IDLE when it takes a notification, before its handler reads the value.
 *
 *   N0  writer's pub store (V1 in shm/var.c), then N1 its loads of subs and of each entry's
 *       ctl and pending (seq_cst)
 *   N2  consumer's exchange of pending to IDLE (seq_cst), then its value read (RD0)
 * A Dekker pair: either the notifier sees IDLE (and sends a new notification) or the
 * consumer's read sees the new value. A consumer that clears SENDING before the notifier's
 * put lands makes the notifier's CAS to QUEUED fail: the entry stays IDLE with that
 * notification in the mailbox, and the next update may send a second one (bounded: each
 * send needs an IDLE that a taken notification made).
 *
 * Subscribing. S0 the count's increment and S1 the LIVE store are seq_cst, as N1: an update
 * whose scan missed the entry (not LIVE yet) published its value before S1, so the
 * subscriber's first read after subscribing sees it.
 *
 * Crashes. A subscriber's process killed while CLAIMED leaves its tag: repair frees the
 * entry. A notifier killed between an update and its puts sends nothing: repair of its
 * process slot turns its SENDING entries OWED and re-sends to every entry that is OWED, or
 * IDLE on a variable whose current value the dead process wrote and whose version differs
 * from the one its last notification named. Prefix subscriptions get no re-send (which of
 * the many variables under the prefix it wrote is not recorded): they catch up at the next
 * update under the prefix. What is always guaranteed: the newest value is readable.
 *
 * Owed notifications (a full mailbox refused them) go out with the next update; a client's
 * recv that finds its inbox empty also sends its own owed ones to itself
 * (shm_var_sub_collect_owed() with who), so a client catches up without waiting for one.
 */
#include <errno.h>
#include <string.h>

#include "shm/registry.h"
#include "shm/var.h"
#include "shm/var_int.h"

static struct shm_var_hdr *shdr(const struct shm_var_geo *g)
{
	return (struct shm_var_hdr *)g->base;
}

static struct shm_var_sub *sub_at(const struct shm_var_geo *g, uint32_t i)
{
	return (struct shm_var_sub *)(g->base + SHM_VAR_SUBS_OFF(g->nprocs, g->vb, g->nvars) +
				      (uint64_t)i * sizeof(struct shm_var_sub));
}

static int sub_geo(const struct shm_seg *seg, struct shm_var_geo *g)
{
	int r = shm_var_geo(seg, g);

	if (r)
		return r;
	return g->nsubs ? 0 : -ENODEV;
}

static uint32_t hwm(const struct shm_var_geo *g)
{
	/* relaxed: a bound that only grows; an entry beyond a stale one is not LIVE yet (S1) */
	uint64_t h = atomic_load_explicit(&shdr(g)->sub_hwm, memory_order_relaxed);

	return h < g->nsubs ? (uint32_t)h : g->nsubs;
}

/* Lower a hint count by one, never below zero. */
static void uncount(_Atomic uint32_t *cnt)
{
	uint32_t c = atomic_load_explicit(cnt, memory_order_relaxed);

	/* relaxed: a hint; its order against the free does not matter once it is lower */
	while (c && !atomic_compare_exchange_weak_explicit(cnt, &c, c - 1, memory_order_relaxed,
							   memory_order_relaxed))
		;
}

static _Atomic uint32_t *count_of(const struct shm_var_geo *g, struct shm_var_sub *s)
{
	/* relaxed: fields written while CLAIMED, before the LIVE store the caller acquired */
	uint64_t var = atomic_load_explicit(&s->var, memory_order_relaxed);
	struct shm_var *v;

	if (!var)
		return &shdr(g)->prefixes;
	v = shm_var_of(g, var);
	return v ? &v->subs : NULL;
}

/* Free LIVE entry s whose ctl is c, then uncount it. 1 if this call freed it. */
static int sub_free(const struct shm_var_geo *g, struct shm_var_sub *s, uint64_t c)
{
	_Atomic uint32_t *cnt = count_of(g, s);

	if (!atomic_compare_exchange_strong_explicit(&s->ctl, &c, 0, memory_order_seq_cst,
						     memory_order_relaxed))
		return 0;
	if (cnt)
		uncount(cnt);
	return 1;
}

/* See shm/var.h. A process with a slot. */
int shm_var_sub_add(struct shm_seg *seg, uint64_t who, uint64_t host, uint64_t var, uint32_t ns,
		    const char *prefix, size_t len, uint64_t *ref)
{
	struct shm_var_geo g;
	struct shm_var *v = NULL;
	uint64_t gen, h;
	uint32_t i;
	int r = sub_geo(seg, &g);

	if (r)
		return r;
	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	if (!who || (var && prefix) || (!var && (!prefix || len < 1 || len > 64)) || ns > 0xffff)
		return -EINVAL;
	if (var && !(v = shm_var_of(&g, var)))
		return -ENOENT;
	for (i = 0; i < g.nsubs; i++) {
		uint64_t zero = 0;

		/* relaxed first look: most entries in use are not worth a CAS */
		if (atomic_load_explicit(&sub_at(&g, i)->ctl, memory_order_relaxed))
			continue;
		if (atomic_compare_exchange_strong_explicit(
			    &sub_at(&g, i)->ctl, &zero,
			    SHM_VAR_SUB_CTL(SHM_VAR_SUB_CLAIMED, seg->tag), memory_order_acquire,
			    memory_order_relaxed))
			break;
	}
	if (i == g.nsubs)
		return -ENOSPC;
	h = atomic_load_explicit(&shdr(&g)->sub_hwm, memory_order_relaxed);
	/* relaxed: a scan bound; S1 orders the entry */
	while (h < i + 1 &&
	       !atomic_compare_exchange_weak_explicit(&shdr(&g)->sub_hwm, &h, i + 1,
						      memory_order_relaxed, memory_order_relaxed))
		;
	{
		struct shm_var_sub *s = sub_at(&g, i);

		/* relaxed: ours while CLAIMED; published by S1 */
		gen = (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & 0xffffffffu;
		if (!gen)
			gen = 1;
		atomic_store_explicit(&s->gen, gen, memory_order_relaxed);
		atomic_store_explicit(&s->var, var, memory_order_relaxed);
		atomic_store_explicit(&s->who, who, memory_order_relaxed);
		atomic_store_explicit(&s->host, host, memory_order_relaxed);
		atomic_store_explicit(&s->pending, SHM_VAR_PEND_IDLE, memory_order_relaxed);
		atomic_store_explicit(&s->seen, var ? shm_var_version_of(&g, var) : 0,
				      memory_order_relaxed);
		atomic_store_explicit(&s->meta, var ? 0 : SHM_VAR_SUB_META(ns, len),
				      memory_order_relaxed);
		for (uint32_t k = 0; k < 8; k++) {
			uint64_t w = 0;

			if (!var && 8 * k < len)
				memcpy(&w, prefix + 8 * k, len - 8 * k < 8 ? len - 8 * k : 8);
			atomic_store_explicit(&s->prefix[k], w, memory_order_relaxed);
		}
		/* S0: pairs with N1: counted before it is LIVE, so never too low */
		atomic_fetch_add_explicit(v ? &v->subs : &shdr(&g)->prefixes, 1,
					  memory_order_seq_cst);
		/* S1: pairs with N1 and with the acquire of ctl in every scan: the fields */
		atomic_store_explicit(&s->ctl, SHM_VAR_SUB_CTL(SHM_VAR_SUB_LIVE, gen),
				      memory_order_seq_cst);
	}
	*ref = SHM_VAR_SUB_REF(i, gen);
	return 0;
}

/* The entry ref names if it is LIVE with ref's generation (ctl in *c), else NULL. */
static struct shm_var_sub *sub_of(const struct shm_var_geo *g, uint64_t ref, uint64_t *c)
{
	struct shm_var_sub *s;

	if (SHM_VAR_SUB_REF_INDEX(ref) >= g->nsubs)
		return NULL;
	s = sub_at(g, SHM_VAR_SUB_REF_INDEX(ref));
	/* acquire: pairs with S1: the fields */
	*c = atomic_load_explicit(&s->ctl, memory_order_acquire);
	if (*c != SHM_VAR_SUB_CTL(SHM_VAR_SUB_LIVE, SHM_VAR_SUB_REF_GEN(ref)))
		return NULL;
	return s;
}

/* See shm/var.h. Any process with a slot. */
int shm_var_sub_del(struct shm_seg *seg, uint64_t ref, uint64_t who)
{
	struct shm_var_geo g;
	struct shm_var_sub *s;
	uint64_t c;

	if (sub_geo(seg, &g))
		return -ENOENT;
	s = sub_of(&g, ref, &c);
	/* relaxed: written before S1, which sub_of() acquired */
	if (!s || (who && atomic_load_explicit(&s->who, memory_order_relaxed) != who))
		return -ENOENT;
	return sub_free(&g, s, c) ? 0 : -ENOENT;
}

/* See shm/var.h. Any process with a slot. */
int shm_var_sub_drop_who(struct shm_seg *seg, uint64_t who)
{
	struct shm_var_geo g;
	int n = 0;

	if (sub_geo(seg, &g) || !who)
		return 0;
	for (uint32_t i = 0, end = hwm(&g); i < end; i++) {
		struct shm_var_sub *s = sub_at(&g, i);
		/* acquire: pairs with S1 */
		uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);

		if (SHM_VAR_SUB_STATE(c) == SHM_VAR_SUB_LIVE &&
		    atomic_load_explicit(&s->who, memory_order_relaxed) == who)
			n += sub_free(&g, s, c);
	}
	return n;
}

/* Does prefix entry s (meta m) cover a variable in namespace ns named name (len bytes)? */
static bool prefix_covers(const struct shm_var_sub *s, uint64_t m, uint32_t ns, const char *name,
			  uint32_t len)
{
	uint32_t pl = SHM_VAR_SUB_META_LEN(m);
	char p[64];

	if (SHM_VAR_SUB_META_NS(m) != ns || pl > len || pl > 64)
		return false;
	for (uint32_t k = 0; k < (pl + 7) / 8; k++) {
		/* relaxed: written before S1, which the caller acquired */
		uint64_t w = atomic_load_explicit(&s->prefix[k], memory_order_relaxed);

		memcpy(p + 8 * k, &w, 8);
	}
	return !memcmp(p, name, pl);
}

/*
 * Take entry s (ctl c) for a notification: IDLE or OWED -> SENDING(our tag). Returns 1 if
 * taken (fill *n), 0 if skipped (QUEUED or SENDING: one is on its way).
 */
static int take(struct shm_seg *seg, const struct shm_var_geo *g, struct shm_var_sub *s, uint32_t i,
		uint64_t c, struct shm_var_note *n)
{
	/* N1: pairs with N2 (see the top comment) */
	uint64_t p = atomic_load_explicit(&s->pending, memory_order_seq_cst);
	uint32_t st = SHM_VAR_PEND_STATE(p);

	if (st == SHM_VAR_PEND_QUEUED || st == SHM_VAR_PEND_SENDING) {
		/* relaxed: a statistic */
		atomic_fetch_add_explicit(&shdr(g)->coalesced, 1, memory_order_relaxed);
		return 0;
	}
	if (!atomic_compare_exchange_strong_explicit(&s->pending, &p,
						     SHM_VAR_PEND(SHM_VAR_PEND_SENDING, seg->tag),
						     memory_order_seq_cst, memory_order_seq_cst))
		return 0; /* a racing notifier took it: its notification covers ours */
	if (atomic_load_explicit(&s->ctl, memory_order_seq_cst) != c) {
		/* freed (and maybe taken again) under us: not ours to notify; put pending back */
		uint64_t mine = SHM_VAR_PEND(SHM_VAR_PEND_SENDING, seg->tag);

		atomic_compare_exchange_strong_explicit(&s->pending, &mine, p, memory_order_seq_cst,
							memory_order_relaxed);
		return 0;
	}
	/* relaxed: before S1, acquired by the caller */
	n->who = atomic_load_explicit(&s->who, memory_order_relaxed);
	n->sub = SHM_VAR_SUB_REF(i, (uint32_t)SHM_VAR_SUB_HI(c));
	n->version = shm_var_version_of(g, n->var);
	/* relaxed: the slot's own record for repair, read after the same CAS chain */
	atomic_store_explicit(&s->seen, n->version, memory_order_relaxed);
	return 1;
}

/* See shm/var.h. A process with a slot; one notifying thread per slot. */
int shm_var_sub_collect(struct shm_seg *seg, const uint64_t *ids, uint32_t n, uint64_t writer,
			uint32_t *cursor, struct shm_var_note *out, uint32_t cap)
{
	char names[SHM_VAR_MANY][SHOAL_NAME_MAX + 1];
	uint32_t nss[SHM_VAR_MANY], lens[SHM_VAR_MANY];
	struct shm_var *vs[SHM_VAR_MANY];
	bool any = false, prefixes;
	struct shm_var_geo g;
	uint32_t k = 0, i, end;

	if (sub_geo(seg, &g) || n < 1 || n > SHM_VAR_MANY || !seg->writable ||
	    seg->self == UINT32_MAX)
		return 0;
	/* N1: pairs with S0 (never too low) and N0 */
	prefixes = atomic_load_explicit(&shdr(&g)->prefixes, memory_order_seq_cst) != 0;
	for (uint32_t j = 0; j < n; j++) {
		vs[j] = shm_var_of(&g, ids[j]);
		if (vs[j] && atomic_load_explicit(&vs[j]->subs, memory_order_seq_cst))
			any = true;
		lens[j] = 0;
		if (vs[j] && prefixes) {
			shm_var_name_of(vs[j], &nss[j], names[j], sizeof(names[j]));
			lens[j] = (uint32_t)strlen(names[j]);
		}
	}
	if (!any && !prefixes) {
		*cursor = UINT32_MAX;
		return 0;
	}
	end = hwm(&g);
	for (i = *cursor; i < end && k < cap; i++) {
		struct shm_var_sub *s = sub_at(&g, i);
		/* N1: pairs with S1 */
		uint64_t c = atomic_load_explicit(&s->ctl, memory_order_seq_cst);
		uint64_t var, m;
		uint32_t count = 0, first = 0;

		if (SHM_VAR_SUB_STATE(c) != SHM_VAR_SUB_LIVE)
			continue;
		/* relaxed: written before S1, which the load above acquired */
		var = atomic_load_explicit(&s->var, memory_order_relaxed);
		m = atomic_load_explicit(&s->meta, memory_order_relaxed);
		for (uint32_t j = 0; j < n; j++) {
			bool hit = var ? var == ids[j] && vs[j]
				       : prefixes && vs[j] &&
						   prefix_covers(s, m, nss[j], names[j], lens[j]);

			if (hit && !count++)
				first = j;
		}
		if (!count)
			continue;
		out[k].var = ids[first];
		out[k].count = count;
		out[k].writer = writer;
		out[k].rsvd = 0;
		k += (uint32_t)take(seg, &g, s, i, c, &out[k]);
	}
	*cursor = i;
	return (int)k;
}

/* See shm/var.h. Read-only. */
int shm_var_sub_list(const struct shm_seg *seg, uint64_t id, uint32_t *cursor,
		     struct shm_var_note *out, uint32_t cap)
{
	char name[SHOAL_NAME_MAX + 1];
	uint32_t ns = 0, len = 0, k = 0, i, end;
	struct shm_var_geo g;
	struct shm_var *v;
	bool prefixes;

	if (sub_geo(seg, &g) || !(v = shm_var_of(&g, id)))
		return 0;
	/* relaxed: hints, never too low (S0); a subscription made after this may be missed */
	prefixes = atomic_load_explicit(&shdr(&g)->prefixes, memory_order_relaxed) != 0;
	if (!prefixes && !atomic_load_explicit(&v->subs, memory_order_relaxed)) {
		*cursor = UINT32_MAX;
		return 0;
	}
	if (prefixes) {
		shm_var_name_of(v, &ns, name, sizeof(name));
		len = (uint32_t)strlen(name);
	}
	end = hwm(&g);
	for (i = *cursor; i < end && k < cap; i++) {
		struct shm_var_sub *s = sub_at(&g, i);
		/* acquire: pairs with S1: the fields */
		uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
		uint64_t var, m;

		if (SHM_VAR_SUB_STATE(c) != SHM_VAR_SUB_LIVE)
			continue;
		/* relaxed: written before S1, which the load above acquired */
		var = atomic_load_explicit(&s->var, memory_order_relaxed);
		m = atomic_load_explicit(&s->meta, memory_order_relaxed);
		if (var ? var != id : !prefixes || !prefix_covers(s, m, ns, name, len))
			continue;
		out[k] = (struct shm_var_note){
			.who = atomic_load_explicit(&s->who, memory_order_relaxed),
			.sub = SHM_VAR_SUB_REF(i, (uint32_t)SHM_VAR_SUB_HI(c)),
			.var = id};
		k++;
	}
	*cursor = i;
	return (int)k;
}

/* See shm/var.h. The notifier that collected the note. */
void shm_var_sub_sent(struct shm_seg *seg, const struct shm_var_note *n, int err)
{
	struct shm_var_geo g;
	struct shm_var_sub *s;
	uint64_t mine = SHM_VAR_PEND(SHM_VAR_PEND_SENDING, seg->tag), c;

	if (sub_geo(seg, &g) || SHM_VAR_SUB_REF_INDEX(n->sub) >= g.nsubs)
		return;
	s = sub_at(&g, SHM_VAR_SUB_REF_INDEX(n->sub));
	if (err == -ENOENT || err == -ESTALE) {
		/* its subscriber is gone (stopped, closed): the subscription goes too */
		if (sub_of(&g, n->sub, &c) &&
		    atomic_load_explicit(&s->who, memory_order_relaxed) == n->who)
			sub_free(&g, s, c);
		return;
	}
	/* relaxed: statistics */
	if (!err)
		atomic_fetch_add_explicit(&shdr(&g)->notes, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&shdr(&g)->owed, 1, memory_order_relaxed);
	/* N1 side: a consumer that took it already (IDLE) wins; a full mailbox leaves it owed */
	atomic_compare_exchange_strong_explicit(&s->pending, &mine,
						err ? SHM_VAR_PEND_OWED : SHM_VAR_PEND_QUEUED,
						memory_order_seq_cst, memory_order_relaxed);
}

/* See shm/var.h. The subscriber's consumer. */
void shm_var_sub_taken(struct shm_seg *seg, uint64_t ref)
{
	struct shm_var_geo g;
	struct shm_var_sub *s;
	uint64_t c;

	if (sub_geo(seg, &g) || !(s = sub_of(&g, ref, &c)))
		return;
	/* N2: pairs with N1: IDLE before the handler reads the value */
	atomic_exchange_explicit(&s->pending, SHM_VAR_PEND_IDLE, memory_order_seq_cst);
}

/* See shm/var.h. The supervisor, after process slot `slot` died. */
int shm_var_sub_repair(struct shm_seg *seg, uint32_t slot)
{
	struct shm_var_geo g;
	int n = 0;

	if (sub_geo(seg, &g))
		return 0;
	for (uint32_t i = 0, end = hwm(&g); i < end; i++) {
		struct shm_var_sub *s = sub_at(&g, i);
		uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
		uint64_t p, t;

		if (SHM_VAR_SUB_STATE(c) == SHM_VAR_SUB_CLAIMED) {
			t = SHM_VAR_SUB_HI(c);
			/* a subscribe killed midway: counted maybe, never LIVE (a hint too high) */
			if (SHM_TAG_SLOT(t) == slot && shm_tag_is_dead(seg, t, false) &&
			    atomic_compare_exchange_strong_explicit(
				    &s->ctl, &c, 0, memory_order_seq_cst, memory_order_relaxed))
				n++;
			continue;
		}
		if (SHM_VAR_SUB_STATE(c) != SHM_VAR_SUB_LIVE)
			continue;
		t = atomic_load_explicit(&s->host, memory_order_relaxed);
		if (t && SHM_TAG_SLOT(t) == slot && shm_tag_is_dead(seg, t, false)) {
			/* a dead client's inbox subscribed: nobody reads it any more */
			n += sub_free(&g, s, c);
			continue;
		}
		p = atomic_load_explicit(&s->pending, memory_order_seq_cst);
		t = SHM_VAR_PEND_TAG(p);
		if (SHM_VAR_PEND_STATE(p) == SHM_VAR_PEND_SENDING && SHM_TAG_SLOT(t) == slot &&
		    shm_tag_is_dead(seg, t, false) &&
		    atomic_compare_exchange_strong_explicit(&s->pending, &p, SHM_VAR_PEND_OWED,
							    memory_order_seq_cst,
							    memory_order_relaxed))
			n++; /* killed between taking it and its put: owed, re-sent below */
	}
	return n;
}

/* See shm/var.h. The supervisor, after shm_var_sub_repair(). */
int shm_var_sub_collect_owed(struct shm_seg *seg, uint32_t slot, uint64_t who, uint32_t *cursor,
			     struct shm_var_note *out, uint32_t cap)
{
	struct shm_var_geo g;
	uint32_t k = 0, i, end;

	if (sub_geo(seg, &g) || !seg->writable || seg->self == UINT32_MAX)
		return 0;
	end = hwm(&g);
	for (i = *cursor; i < end && k < cap; i++) {
		struct shm_var_sub *s = sub_at(&g, i);
		uint64_t c = atomic_load_explicit(&s->ctl, memory_order_seq_cst);
		uint64_t p, var, wt;

		if (SHM_VAR_SUB_STATE(c) != SHM_VAR_SUB_LIVE)
			continue;
		p = atomic_load_explicit(&s->pending, memory_order_seq_cst);
		var = atomic_load_explicit(&s->var, memory_order_relaxed);
		if (who) {
			/* relaxed: written before S1, which the ctl load acquired */
			if (atomic_load_explicit(&s->who, memory_order_relaxed) != who ||
			    SHM_VAR_PEND_STATE(p) != SHM_VAR_PEND_OWED)
				continue;
		} else if (SHM_VAR_PEND_STATE(p) == SHM_VAR_PEND_IDLE) {
			/* a dead writer's update it was never told of */
			if (!var)
				continue;
			wt = shm_var_last_wtag(&g, var);
			if (SHM_TAG_SLOT(wt) != slot || !shm_tag_is_dead(seg, wt, false) ||
			    shm_var_version_of(&g, var) ==
				    atomic_load_explicit(&s->seen, memory_order_relaxed))
				continue;
		} else if (SHM_VAR_PEND_STATE(p) != SHM_VAR_PEND_OWED) {
			continue;
		}
		out[k].var = var;
		out[k].count = 1;
		out[k].writer = 0;
		out[k].rsvd = 0;
		k += (uint32_t)take(seg, &g, s, i, c, &out[k]);
	}
	*cursor = i;
	return (int)k;
}

/* See shm/var.h. Any attachment. */
int shm_var_sub_stats(const struct shm_seg *seg, struct shm_var_sub_stats *st)
{
	struct shm_var_geo g;

	memset(st, 0, sizeof(*st));
	if (sub_geo(seg, &g))
		return 0;
	st->capacity = g.nsubs;
	for (uint32_t i = 0, end = hwm(&g); i < end; i++) {
		uint64_t c = atomic_load_explicit(&sub_at(&g, i)->ctl, memory_order_relaxed);
		uint64_t p = atomic_load_explicit(&sub_at(&g, i)->pending, memory_order_relaxed);

		if (SHM_VAR_SUB_STATE(c) != SHM_VAR_SUB_LIVE)
			continue;
		st->live++;
		st->queued += SHM_VAR_PEND_STATE(p) == SHM_VAR_PEND_QUEUED;
		st->owed_now += SHM_VAR_PEND_STATE(p) == SHM_VAR_PEND_OWED;
	}
	/* relaxed: counters */
	st->notes = atomic_load_explicit(&shdr(&g)->notes, memory_order_relaxed);
	st->coalesced = atomic_load_explicit(&shdr(&g)->coalesced, memory_order_relaxed);
	st->owed = atomic_load_explicit(&shdr(&g)->owed, memory_order_relaxed);
	return 0;
}
