/*
 * Coordination variables: named int64, double or blob values in the segment (SHM_R_VARS,
 * shm/var_int.h has the layout).
 *
 * Names. A variable's name is a registry entry in the caller's namespace whose handle word
 * is the variable's id, SHM_VAR_ID(index, generation): bit 31 of its low half set, which no
 * agent handle has (agent slots are below 2^20). So variables and agents share the
 * namespaces: one name is one thing, and a name lookup says which.
 *
 * Values. Each variable has two value buffers and a published word pub = (version, buffer):
 * the buffer pub names holds the current value; a writer fills the other one and then
 * stores pub. Readers copy the named buffer between two loads of pub (the Boehm pattern of
 * shm/seqlock.h: relaxed atomic loads of the body, an acquire fence, the re-load): the same
 * pub twice means the copy is one writer's whole value, since a writer only ever writes the
 * buffer pub does not name, and writes the one a reader copies only after moving pub on.
 *
 * Writers. A writer holds the variable's lock word: 0 -> its claim tag by CAS. An update of
 * one variable: lock, fill the other buffer, store pub (the commit point), unlock. An update
 * of several (a batch): lock them all (in index order), write a commit record in the
 * writer's own record (one per process slot: each variable's id, its pub before, its new
 * value), store the record COMMITTED (the batch's commit point), then install each value as
 * above, unlock them, and set the record IDLE.
 *
 * Readers and batches. A reader that finds a variable locked looks at the holder's record:
 * COMMITTED, with the holder's tag, with an entry for this variable and its pub as the
 * entry's old word, means the batch is decided but this variable not yet installed: the
 * reader returns the entry's value (read-only helping: it never writes). Otherwise the
 * variable's value is the buffer's. So a batch changes every variable's value at one
 * instant, the record's COMMITTED store. A read of several variables (shm_var_read_many())
 * collects them twice, comparing what decides each value (pub, lock, the holder's record
 * word): the same twice means no update took effect between the two collects, and the
 * first collect is a snapshot.
 *
 * Crashes. A writer killed at any instruction leaves its locks holding its (now dead) tag.
 * Whoever meets such a lock (a writer that wants it, or the supervisor's shm_var_repair())
 * looks at the dead holder's record: COMMITTED with the dead tag -> roll forward: copy the
 * record into its own (COMMITTED with its own tag, so its own death is repaired the same
 * way and readers keep seeing the new values), take over each of the batch's locks still
 * holding the dead tag (CAS dead tag -> own tag), install the values not yet installed
 * (pub still the entry's old word), unlock; else -> roll back: CAS the lock dead tag -> 0
 * (an uncommitted batch or a single update changed nothing readers see: the half-written
 * buffer is the one pub does not name). A reader never waits: a dead writer's lock changes
 * nothing it computes. A creator killed between making its variable LIVE and registering
 * the name leaves `creating` holding its tag: repair frees the variable if the name does
 * not lead to it.
 *
 * Memory ordering (labels; every word below is an _Atomic of the variable's lines or of a
 * record). The control words pub, lock and the record's ctl are accessed seq_cst: one total
 * order over them is what the two-collect argument of shm_var_read_many() and the reader's
 * decision "locked, committed, not installed" rely on (plain movs to load on x86, an xchg
 * per store: a writer's few stores).
 *   L0  writer's lock CAS            seq_cst <- L1 of the previous holder
 *   L1  unlock (store 0)             seq_cst -> L0, RD1
 *   V0  writer's fence before a body release -> RD3 (a reader that copied a word of this
 *                                    body sees pub moved on, so it retries)
 *   V1  pub store                    seq_cst -> RD0 (the body before it)
 *   RC0 record WRITING + fence       release -> RD4 (a reader that copied an entry word of
 *                                    a new batch sees the record's ctl moved on)
 *   RC1 record COMMITTED             seq_cst -> RD2, H0 (the entries before it)
 *   RC2 record IDLE                  seq_cst -> RD2
 *   RD0 reader's pub load            seq_cst <- V1
 *   RD1 reader's lock load           seq_cst <- L0, L1
 *   RD2 reader's record ctl load     seq_cst <- RC1, RC2
 *   RD3 reader's fence, pub re-load  acquire fence <- V0
 *   RD4 reader's fence, record re-load acquire fence <- RC0
 *   H0  helper's copy of a record    as RD2/RD4 (acquire, fence, re-load)
 *   CR0 creator's LIVE store         release -> CR1 (ctl, meta, name, buffer 0 before it)
 *   CR1 reader's ctl load            acquire <- CR0
 *
 * One writing thread per process slot: the lock tag and the record belong to the slot.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "shm/cpu.h"
#include "shm/hist.h"
#include "shm/registry.h"
#include "shm/round.h"
#include "shm/var.h"
#include "shm/var_int.h"

void (*shm_var_test_hook)(int step);

#ifdef SHOAL_TEST_HOOKS
#define STEP(n)                                                                                    \
	do {                                                                                       \
		if (__builtin_expect(shm_var_test_hook != NULL, 0))                                \
			shm_var_test_hook(n);                                                      \
	} while (0)
#else
#define STEP(n) ((void)0)
#endif

static_assert(SHM_VAR_MANY == SHM_VAR_BATCH_MAX, "one record holds any update");
static_assert((unsigned)SHM_VAR_INT == 1 && (unsigned)SHM_VAR_BLOB == 3, "public type values");

/*
 * Bytes of the variables region for cfg: the header, a commit record per process slot, the
 * variables, the subscriptions. 0 without variables (then no subscriptions either). Pure;
 * the layout (shm_layout_compute()) calls it.
 */
uint64_t shm_var_region_size(const struct shm_cfg *cfg)
{
	if (!cfg->max_vars)
		return 0;
	return SHM_VAR_SUBS_OFF(cfg->max_procs, cfg->var_bytes, cfg->max_vars) +
	       (uint64_t)cfg->max_subs * sizeof(struct shm_var_sub);
}

/* See var_int.h. Any process attached. */
int shm_var_geo(const struct shm_seg *seg, struct shm_var_geo *g)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_region *r = &h->regions[SHM_R_VARS];
	struct shm_cfg cfg = h->cfg;

	if (h->layout_minor < 8 || !cfg.max_vars)
		return -ENODEV;
	if (h->layout_minor < 9)
		cfg.max_subs = 0; /* reserved, zero, before subscriptions */
	if (cfg.max_vars > SHM_VAR_MAX || cfg.var_bytes % 8 || cfg.var_bytes < 8 ||
	    cfg.var_bytes > SHM_VAR_BYTES_MAX || cfg.max_procs > SHM_MAX_PROCS ||
	    cfg.max_subs > SHM_VAR_SUB_MAX || r->off > seg->size || r->size > seg->size - r->off ||
	    shm_var_region_size(&cfg) > r->size)
		return -EUCLEAN;
	g->base = seg->base + r->off;
	g->nvars = cfg.max_vars;
	g->vb = cfg.var_bytes;
	g->nprocs = cfg.max_procs;
	g->nsubs = cfg.max_subs;
	g->stride = SHM_VAR_STRIDE(g->vb);
	g->bufb = SHM_VAR_BUF_BYTES(g->vb);
	g->recb = SHM_VAR_REC_BYTES(g->vb);
	g->entb = SHM_VAR_ENT_BYTES(g->vb);
	return 0;
}

static struct shm_var_hdr *vhdr(const struct shm_var_geo *g)
{
	return (struct shm_var_hdr *)g->base;
}

static struct shm_var *var_at(const struct shm_var_geo *g, uint32_t i)
{
	return (struct shm_var *)(g->base + SHM_VAR_VARS_OFF(g->nprocs, g->vb) + i * g->stride);
}

static struct shm_var_buf *buf_at(const struct shm_var_geo *g, struct shm_var *v, uint32_t b)
{
	return (struct shm_var_buf *)((uint8_t *)v + sizeof(*v) + (b & 1) * g->bufb);
}

static struct shm_var_rec *rec_at(const struct shm_var_geo *g, uint32_t slot)
{
	return (struct shm_var_rec *)(g->base + SHM_VAR_RECS_OFF + (uint64_t)slot * g->recb);
}

static struct shm_var_ent *ent_at(const struct shm_var_geo *g, struct shm_var_rec *r, uint32_t i)
{
	return (struct shm_var_ent *)((uint8_t *)(r + 1) + i * g->entb);
}

/* See var_int.h. */
struct shm_var *shm_var_of(const struct shm_var_geo *g, uint64_t id)
{
	struct shm_var *v;

	if (!SHM_VAR_ID_IS_VAR(id) || SHM_VAR_ID_INDEX(id) >= g->nvars)
		return NULL;
	v = var_at(g, SHM_VAR_ID_INDEX(id));
	/* CR1: pairs with CR0: meta, name and buffer 0 are the creator's */
	if (atomic_load_explicit(&v->ctl, memory_order_acquire) !=
	    SHM_VAR_CTL(SHM_VAR_LIVE, SHM_VAR_ID_GEN(id)))
		return NULL;
	return v;
}

static uint32_t var_type(const struct shm_var *v)
{
	/* relaxed: written before CR0, which the caller's CR1 acquired */
	return SHM_VAR_META_TYPE(atomic_load_explicit(&v->meta, memory_order_relaxed));
}

/* Relaxed word copies between shared words and private bytes (n any; shared 8-aligned). */
static void words_store(_Atomic uint64_t *dst, const void *src, uint32_t n)
{
	for (uint32_t i = 0; i < (n + 7) / 8; i++) {
		uint64_t w = 0;

		memcpy(&w, (const uint8_t *)src + 8 * i, n - 8 * i < 8 ? n - 8 * i : 8);
		atomic_store_explicit(&dst[i], w, memory_order_relaxed);
	}
}

static void words_load(void *dst, const _Atomic uint64_t *src, uint32_t n)
{
	for (uint32_t i = 0; i < (n + 7) / 8; i++) {
		uint64_t w = atomic_load_explicit(&src[i], memory_order_relaxed);

		memcpy((uint8_t *)dst + 8 * i, &w, n - 8 * i < 8 ? n - 8 * i : 8);
	}
}

static void words_copy(_Atomic uint64_t *dst, const _Atomic uint64_t *src, uint32_t n)
{
	for (uint32_t i = 0; i < (n + 7) / 8; i++)
		atomic_store_explicit(&dst[i], atomic_load_explicit(&src[i], memory_order_relaxed),
				      memory_order_relaxed);
}

/* A value's bytes into out: the number, or the blob into out->buf (-EMSGSIZE if larger). */
static int value_out(struct shm_var_val *out, const _Atomic uint64_t *data, uint32_t len)
{
	out->len = len;
	if (out->type != SHM_VAR_BLOB) {
		uint64_t w = atomic_load_explicit(&data[0], memory_order_relaxed);

		memcpy(&out->num, &w, 8);
		return 0;
	}
	if (len > out->cap)
		return -EMSGSIZE;
	words_load(out->buf, data, len);
	return 0;
}

/* What decided a variable's value as one read saw it (compared by shm_var_read_many()). */
struct obs {
	uint64_t pub;
	uint64_t lock;
	uint64_t rctl;
};

/*
 * One attempt to read v: 0 (out filled, *o what decided it), -EAGAIN (a writer moved it
 * during the copy: try again), -EMSGSIZE (a blob larger than out->cap; out->len says).
 */
static int read_once(const struct shm_var_geo *g, struct shm_var *v, uint64_t id,
		     struct shm_var_val *out, struct obs *o)
{
	struct shm_var_buf *b;
	uint64_t p, l, len;
	int r = 0, rm;

	/* RD0: pairs with V1: the body of the buffer p names is visible */
	p = atomic_load_explicit(&v->pub, memory_order_seq_cst);
	b = buf_at(g, v, SHM_VAR_PUB_BUF(p));
	len = atomic_load_explicit(&b->len, memory_order_relaxed);
	if (len > g->vb ||
	    atomic_load_explicit(&b->version, memory_order_relaxed) != SHM_VAR_PUB_VERSION(p))
		return -EAGAIN; /* a torn copy: the re-load below would say so */
	out->version = SHM_VAR_PUB_VERSION(p);
	out->writer = atomic_load_explicit(&b->writer, memory_order_relaxed);
	out->wtag = atomic_load_explicit(&b->wtag, memory_order_relaxed);
	out->time_ns = atomic_load_explicit(&b->time_ns, memory_order_relaxed);
	r = value_out(out, b->data, (uint32_t)len);
	/* RD1: pairs with L0/L1: a lock taken before the commit point of a batch shows here */
	l = atomic_load_explicit(&v->lock, memory_order_seq_cst);
	o->lock = l;
	o->rctl = 0;
	if (l && SHM_TAG_SLOT(l) < g->nprocs) {
		struct shm_var_rec *rec = rec_at(g, SHM_TAG_SLOT(l));
		/* RD2: pairs with RC1 (the entries before COMMITTED) and RC2 */
		uint64_t rc = atomic_load_explicit(&rec->ctl, memory_order_seq_cst);
		uint64_t cnt = atomic_load_explicit(&rec->count, memory_order_relaxed);

		o->rctl = rc;
		if (SHM_VAR_REC_STATE(rc) == SHM_VAR_REC_COMMITTED &&
		    atomic_load_explicit(&rec->tag, memory_order_relaxed) == l) {
			for (uint32_t i = 0; i < cnt && i < SHM_VAR_BATCH_MAX; i++) {
				struct shm_var_ent *e = ent_at(g, rec, i);

				if (atomic_load_explicit(&e->id, memory_order_relaxed) != id ||
				    atomic_load_explicit(&e->old, memory_order_relaxed) != p)
					continue;
				/* decided, not installed: the batch's value is the value */
				len = atomic_load_explicit(&e->len, memory_order_relaxed);
				if (len > g->vb)
					return -EAGAIN;
				out->version = SHM_VAR_PUB_VERSION(p) + 1;
				out->writer =
					atomic_load_explicit(&rec->writer, memory_order_relaxed);
				out->wtag = l;
				out->time_ns =
					atomic_load_explicit(&rec->time_ns, memory_order_relaxed);
				r = value_out(out, e->data, (uint32_t)len);
				break;
			}
		}
		/* RD4: pairs with RC0: entries of a newer batch show as a moved ctl */
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&rec->ctl, memory_order_relaxed) != rc)
			return -EAGAIN;
	}
	/* RD3: pairs with V0: a body word a later writer stored shows as a moved pub */
	atomic_thread_fence(memory_order_acquire);
	rm = atomic_load_explicit(&v->pub, memory_order_relaxed) != p;
	if (rm)
		return -EAGAIN;
	o->pub = p;
	return r;
}

/*
 * Read v until one attempt is consistent. A retry is a writer's doing, so it ends when the
 * writer moves on; the same pub and lock word over many retries is a corrupt variable
 * (-EUCLEAN), never an endless loop.
 */
static int read_var(const struct shm_var_geo *g, uint64_t id, struct shm_var_val *out,
		    struct obs *o)
{
	struct shm_var *v = shm_var_of(g, id);
	uint64_t last_pub = 0, last_lock = 0;
	uint32_t stuck = 0;
	int r;

	if (!v)
		return -ENOENT;
	out->type = var_type(v);
	while ((r = read_once(g, v, id, out, o)) == -EAGAIN) {
		/* relaxed: only compared, for the corruption bound */
		uint64_t p = atomic_load_explicit(&v->pub, memory_order_relaxed);
		uint64_t l = atomic_load_explicit(&v->lock, memory_order_relaxed);

		if (p == last_pub && l == last_lock) {
			if (++stuck > 100000)
				return -EUCLEAN;
		} else {
			stuck = 0;
			last_pub = p;
			last_lock = l;
		}
		shm_cpu_relax();
	}
	/* relaxed: the slot still holds the variable the id names (a freed one is not it) */
	if (!r && atomic_load_explicit(&v->ctl, memory_order_relaxed) !=
			  SHM_VAR_CTL(SHM_VAR_LIVE, SHM_VAR_ID_GEN(id)))
		return -ENOENT;
	return r;
}

/* See shm/var.h. Any attachment, any thread. */
int shm_var_read(const struct shm_seg *seg, uint64_t id, struct shm_var_val *out)
{
	struct shm_var_geo g;
	struct obs o;
	int r = shm_var_geo(seg, &g);

	if (r)
		return r == -ENODEV ? -ENOENT : r;
	return read_var(&g, id, out, &o);
}

/* See shm/var.h. Any attachment, any thread. */
int shm_var_lookup(const struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		   uint64_t *id)
{
	shoal_handle_t h;
	int r = shm_reg_lookup(seg, ns, name, len, &h, NULL);

	if (r)
		return r;
	if (!SHM_VAR_ID_IS_VAR(h))
		return -ENOENT;
	*id = h;
	return 0;
}

/* See shm/var.h. Any attachment, any thread. */
int shm_var_read_name(const struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		      struct shm_var_val *out)
{
	uint64_t id;
	int r = shm_var_lookup(seg, ns, name, len, &id);

	return r ? r : shm_var_read(seg, id, out);
}

/* See shm/var.h. Any attachment, any thread. */
int shm_var_read_many(const struct shm_seg *seg, const uint64_t *ids, uint32_t n,
		      struct shm_var_val *out)
{
	struct obs o[SHM_VAR_MANY];
	struct shm_var_geo g;
	int r = shm_var_geo(seg, &g);

	if (r)
		return r == -ENODEV ? -ENOENT : r;
	if (n < 1 || n > SHM_VAR_MANY)
		return -EINVAL;
	for (int attempt = 0; attempt < 1000; attempt++) {
		bool same = true;

		for (uint32_t i = 0; i < n; i++) {
			r = read_var(&g, ids[i], &out[i], &o[i]);
			if (r)
				return r;
		}
		/* the second collect: what decided each value, unchanged since the first */
		for (uint32_t i = 0; i < n && same; i++) {
			struct shm_var *v = var_at(&g, SHM_VAR_ID_INDEX(ids[i]));
			uint64_t l;

			/* RD0, RD1, RD2 again (seq_cst): one total order with the writers' */
			if (atomic_load_explicit(&v->pub, memory_order_seq_cst) != o[i].pub)
				same = false;
			l = atomic_load_explicit(&v->lock, memory_order_seq_cst);
			if (l != o[i].lock)
				same = false;
			else if (l && SHM_TAG_SLOT(l) < g.nprocs &&
				 atomic_load_explicit(&rec_at(&g, SHM_TAG_SLOT(l))->ctl,
						      memory_order_seq_cst) != o[i].rctl)
				same = false;
		}
		if (same)
			return 0;
		shm_cpu_relax();
	}
	return -EAGAIN;
}

/*
 * Install a value into v, whose lock the caller holds and whose pub is old: the other
 * buffer, then pub. The single-variable commit point, and a batch's install step.
 */
static void install(const struct shm_var_geo *g, struct shm_var *v, uint64_t old, uint32_t len,
		    const void *data, const _Atomic uint64_t *sdata, uint64_t writer, uint64_t wtag,
		    uint64_t time_ns)
{
	uint32_t nb = SHM_VAR_PUB_BUF(old) ^ 1u;
	uint64_t ver = SHM_VAR_PUB_VERSION(old) + 1;
	struct shm_var_buf *b = buf_at(g, v, nb);

	/* V0: pairs with RD3: a reader that copies any word below sees pub moved past old */
	atomic_thread_fence(memory_order_release);
	/* relaxed: the lock holder is the only writer of the buffer pub does not name */
	atomic_store_explicit(&b->version, ver, memory_order_relaxed);
	atomic_store_explicit(&b->writer, writer, memory_order_relaxed);
	atomic_store_explicit(&b->wtag, wtag, memory_order_relaxed);
	atomic_store_explicit(&b->time_ns, time_ns, memory_order_relaxed);
	STEP(SHM_VAR_STEP_BUFFER);
	atomic_store_explicit(&b->len, len, memory_order_relaxed);
	if (sdata)
		words_copy(b->data, sdata, len);
	else
		words_store(b->data, data, len);
	/* V1: pairs with RD0: the buffer before the pub that names it */
	atomic_store_explicit(&v->pub, SHM_VAR_PUB(ver, nb), memory_order_seq_cst);
	/* relaxed: a count for notifiers, ordered by nothing (they re-read the value) */
	atomic_fetch_add_explicit(&v->notify, 1, memory_order_relaxed);
}

static void unlock(struct shm_var *v)
{
	/* L1: pairs with L0 of the next holder and RD1: pub before the lock's release */
	atomic_store_explicit(&v->lock, 0, memory_order_seq_cst);
}

/*
 * Resolve a lock of v that dead tag holds: roll its batch forward if its record committed
 * it, else release the lock (the update is undone: pub never moved). Returns 1 if this call
 * resolved something, 0 if someone else had. The caller holds no lock (its record is free
 * to use) and has a process slot.
 */
static int resolve_dead(struct shm_seg *seg, const struct shm_var_geo *g, struct shm_var *v,
			uint64_t dead)
{
	struct shm_var_rec *dr, *own = rec_at(g, seg->self);
	uint64_t rc, cnt, n, zero;
	int done = 0;

	if (SHM_TAG_SLOT(dead) >= g->nprocs)
		goto roll_back;
	dr = rec_at(g, SHM_TAG_SLOT(dead));
	/* H0: as RD2: the entries of a COMMITTED record before its ctl */
	rc = atomic_load_explicit(&dr->ctl, memory_order_seq_cst);
	if (SHM_VAR_REC_STATE(rc) != SHM_VAR_REC_COMMITTED ||
	    atomic_load_explicit(&dr->tag, memory_order_relaxed) != dead)
		goto roll_back;
	cnt = atomic_load_explicit(&dr->count, memory_order_relaxed);
	if (cnt > SHM_VAR_BATCH_MAX)
		goto roll_back; /* not a record a writer wrote: nothing to finish */
	if (seg->self >= g->nprocs)
		return 0; /* a committed batch needs a record of ours to finish it */
	/* copy it into our record, WRITING until the copy is checked whole */
	n = SHM_VAR_REC_COUNTER(atomic_load_explicit(&own->ctl, memory_order_relaxed)) + 1;
	atomic_store_explicit(&own->ctl, SHM_VAR_REC_CTL(n, SHM_VAR_REC_WRITING),
			      memory_order_relaxed);
	/* RC0: pairs with RD4: our entry words after WRITING */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&own->tag, seg->tag, memory_order_relaxed);
	atomic_store_explicit(&own->writer, atomic_load_explicit(&dr->writer, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&own->time_ns,
			      atomic_load_explicit(&dr->time_ns, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&own->count, cnt, memory_order_relaxed);
	for (uint32_t i = 0; i < cnt; i++) {
		struct shm_var_ent *s = ent_at(g, dr, i), *d = ent_at(g, own, i);
		uint64_t len = atomic_load_explicit(&s->len, memory_order_relaxed);

		atomic_store_explicit(&d->id, atomic_load_explicit(&s->id, memory_order_relaxed),
				      memory_order_relaxed);
		atomic_store_explicit(&d->old, atomic_load_explicit(&s->old, memory_order_relaxed),
				      memory_order_relaxed);
		atomic_store_explicit(&d->len, len, memory_order_relaxed);
		words_copy(d->data, s->data, (uint32_t)(len <= g->vb ? len : g->vb));
	}
	/* H0: as RD4: the dead record unchanged over the copy (repair may clear it) */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&dr->ctl, memory_order_relaxed) != rc) {
		/* RC2: our record means nothing again */
		atomic_store_explicit(&own->ctl, SHM_VAR_REC_CTL(n, SHM_VAR_REC_IDLE),
				      memory_order_seq_cst);
		return 0; /* repaired meanwhile: the caller looks again */
	}
	/* RC1: the same batch, committed under our tag before we take any of its locks */
	atomic_store_explicit(&own->ctl, SHM_VAR_REC_CTL(n, SHM_VAR_REC_COMMITTED),
			      memory_order_seq_cst);
	STEP(SHM_VAR_STEP_HELPING);
	for (uint32_t i = 0; i < cnt; i++) {
		struct shm_var_ent *e = ent_at(g, own, i);
		struct shm_var *w =
			shm_var_of(g, atomic_load_explicit(&e->id, memory_order_relaxed));
		uint64_t old = atomic_load_explicit(&e->old, memory_order_relaxed);
		uint64_t len = atomic_load_explicit(&e->len, memory_order_relaxed);
		uint64_t expect = dead;

		/* L0: take over the dead holder's lock; another helper may have it already */
		if (!w || !atomic_compare_exchange_strong_explicit(&w->lock, &expect, seg->tag,
								   memory_order_seq_cst,
								   memory_order_seq_cst))
			continue;
		/* relaxed: we hold the lock; only its holder moves pub */
		if (atomic_load_explicit(&w->pub, memory_order_relaxed) == old && len <= g->vb)
			install(g, w, old, (uint32_t)len, NULL, e->data,
				atomic_load_explicit(&own->writer, memory_order_relaxed), dead,
				atomic_load_explicit(&own->time_ns, memory_order_relaxed));
		unlock(w);
		done = 1;
	}
	/* RC2: pairs with RD2 */
	atomic_store_explicit(&own->ctl, SHM_VAR_REC_CTL(n, SHM_VAR_REC_IDLE),
			      memory_order_seq_cst);
	if (done)
		atomic_fetch_add_explicit(&vhdr(g)->forward, 1, memory_order_relaxed);
	/* v still held by the dead tag is not in its committed batch: nothing of v to keep */
	if (atomic_load_explicit(&v->lock, memory_order_seq_cst) != dead)
		return done;

roll_back:
	zero = dead;
	/* L1: an uncommitted update changed nothing readers see: just release its lock */
	if (atomic_compare_exchange_strong_explicit(&v->lock, &zero, 0, memory_order_seq_cst,
						    memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&vhdr(g)->back, 1, memory_order_relaxed);
		return 1;
	}
	return 0;
}

/*
 * Take v's lock for our tag. 0; -EDEADLK with the dead holder's tag in *dead; -EAGAIN if
 * a live holder kept it past deadline (CLOCK_MONOTONIC).
 */
static int lock_var(struct shm_seg *seg, struct shm_var *v, uint64_t deadline, uint64_t *dead)
{
	for (uint32_t spins = 0;; spins++) {
		uint64_t l = 0;

		/* L0: pairs with L1 of the previous holder: its pub and buffers before ours */
		if (atomic_compare_exchange_strong_explicit(
			    &v->lock, &l, seg->tag, memory_order_seq_cst, memory_order_seq_cst))
			return 0;
		/* the cheap judgement each time, the kernel's now and then (a syscall) */
		if (shm_tag_is_dead(seg, l, spins >= 64 && spins % 256 == 0)) {
			*dead = l;
			return -EDEADLK;
		}
		if (spins % 64 == 63) {
			/* past the deadline: a holder the kernel calls dead is not "live" */
			if (shm_now_ns() > deadline) {
				if (shm_tag_is_dead(seg, l, true)) {
					*dead = l;
					return -EDEADLK;
				}
				return -EAGAIN;
			}
			sched_yield();
		} else {
			shm_cpu_relax();
		}
	}
}

/* See shm/var.h. A process with a slot; one writing thread per slot. */
int shm_var_update(struct shm_seg *seg, const struct shm_var_op *ops, uint32_t n, uint64_t writer,
		   uint64_t *cur, uint32_t *bad)
{
	return shm_var_update_wait(seg, ops, n, writer, SHM_VAR_WAIT_NS, cur, bad);
}

/* shm_var_update_wait() without its timing. */
static int update_wait(struct shm_seg *seg, const struct shm_var_op *ops, uint32_t n,
		       uint64_t writer, uint64_t wait_ns, uint64_t *cur, uint32_t *bad)
{
	struct shm_var *v[SHM_VAR_MANY];
	uint64_t old[SHM_VAR_MANY];
	uint32_t ord[SHM_VAR_MANY];
	uint64_t deadline, now, dead, cnt;
	struct shm_var_rec *rec;
	uint32_t taken, late = 0;
	struct shm_var_geo g;
	int r = shm_var_geo(seg, &g);

	if (r)
		return r == -ENODEV ? -ENOENT : r;
	if (!seg->writable || seg->self == UINT32_MAX || seg->self >= g.nprocs)
		return -EROFS;
	if (n < 1 || n > SHM_VAR_MANY)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = i;

		if (bad)
			*bad = i;
		v[i] = shm_var_of(&g, ops[i].id);
		if (!v[i])
			return -ENOENT;
		if (ops[i].type != var_type(v[i]))
			return -EPROTOTYPE;
		if (ops[i].type == SHM_VAR_BLOB ? ops[i].len > g.vb : ops[i].len != 8)
			return -EMSGSIZE;
		if (ops[i].len && !ops[i].data)
			return -EINVAL;
		/* lock in index order: two batches never wait on each other in a cycle */
		while (k > 0 &&
		       SHM_VAR_ID_INDEX(ops[ord[k - 1]].id) > SHM_VAR_ID_INDEX(ops[i].id)) {
			ord[k] = ord[k - 1];
			k--;
		}
		ord[k] = i;
		if (k > 0 && SHM_VAR_ID_INDEX(ops[ord[k - 1]].id) == SHM_VAR_ID_INDEX(ops[i].id))
			return -EINVAL;
		if (k + 1 <= i &&
		    SHM_VAR_ID_INDEX(ops[ord[k + 1]].id) == SHM_VAR_ID_INDEX(ops[i].id))
			return -EINVAL;
	}
	deadline = shm_now_ns() + wait_ns;
again:
	for (taken = 0; taken < n; taken++) {
		r = lock_var(seg, v[ord[taken]], deadline, &dead);
		if (r)
			break;
		STEP(SHM_VAR_STEP_LOCKED);
	}
	if (taken < n) {
		for (uint32_t k = 0; k < taken; k++)
			unlock(v[ord[k]]);
		if (r == -EAGAIN)
			return r;
		resolve_dead(seg, &g, v[ord[taken]], dead);
		/* past the deadline, one more try per variable: a dead lock resolved is progress,
		 * but dead locks that keep coming (others dying as fast) end it: try again later */
		if (shm_now_ns() > deadline && ++late > n)
			return -EAGAIN;
		goto again;
	}
	for (uint32_t i = 0; i < n; i++) {
		/* relaxed: we hold the lock; only its holder moves pub */
		old[i] = atomic_load_explicit(&v[i]->pub, memory_order_relaxed);
		if (ops[i].expect != SHM_VAR_ANY && ops[i].expect != SHM_VAR_PUB_VERSION(old[i])) {
			if (cur)
				*cur = SHM_VAR_PUB_VERSION(old[i]);
			if (bad)
				*bad = i;
			for (uint32_t k = 0; k < n; k++)
				unlock(v[k]);
			return -EBUSY;
		}
	}
	now = shm_wall_ns();
	if (n == 1) {
		/* one variable: its pub store is the commit point; no record needed */
		install(&g, v[0], old[0], ops[0].len, ops[0].data, NULL, writer, seg->tag, now);
		STEP(SHM_VAR_STEP_APPLIED);
		unlock(v[0]);
		STEP(SHM_VAR_STEP_UNLOCKED);
		return 0;
	}
	rec = rec_at(&g, seg->self);
	/* relaxed: only this slot's owner writes its record */
	cnt = SHM_VAR_REC_COUNTER(atomic_load_explicit(&rec->ctl, memory_order_relaxed)) + 1;
	atomic_store_explicit(&rec->ctl, SHM_VAR_REC_CTL(cnt, SHM_VAR_REC_WRITING),
			      memory_order_relaxed);
	/* RC0: pairs with RD4: a reader that copies an entry word below sees WRITING */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&rec->tag, seg->tag, memory_order_relaxed);
	atomic_store_explicit(&rec->writer, writer, memory_order_relaxed);
	atomic_store_explicit(&rec->time_ns, now, memory_order_relaxed);
	atomic_store_explicit(&rec->count, n, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++) {
		struct shm_var_ent *e = ent_at(&g, rec, i);

		atomic_store_explicit(&e->id, ops[i].id, memory_order_relaxed);
		atomic_store_explicit(&e->old, old[i], memory_order_relaxed);
		atomic_store_explicit(&e->len, ops[i].len, memory_order_relaxed);
		words_store(e->data, ops[i].data, ops[i].len);
		if (i == 0)
			STEP(SHM_VAR_STEP_WRITING);
	}
	/* RC1: pairs with RD2 and H0: the batch's commit point, the entries before it */
	atomic_store_explicit(&rec->ctl, SHM_VAR_REC_CTL(cnt, SHM_VAR_REC_COMMITTED),
			      memory_order_seq_cst);
	STEP(SHM_VAR_STEP_COMMITTED);
	for (uint32_t i = 0; i < n; i++) {
		install(&g, v[i], old[i], ops[i].len, ops[i].data, NULL, writer, seg->tag, now);
		STEP(SHM_VAR_STEP_APPLIED);
	}
	for (uint32_t i = 0; i < n; i++) {
		unlock(v[i]);
		STEP(SHM_VAR_STEP_UNLOCKED);
	}
	/* RC2: pairs with RD2: the record means nothing once every lock is released */
	atomic_store_explicit(&rec->ctl, SHM_VAR_REC_CTL(cnt, SHM_VAR_REC_IDLE),
			      memory_order_seq_cst);
	STEP(SHM_VAR_STEP_DONE);
	return 0;
}

/* See shm/var.h. A process with a slot; one writing thread per slot. 1 update in
 * SHM_HIST_SAMPLE is timed. */
int shm_var_update_wait(struct shm_seg *seg, const struct shm_var_op *ops, uint32_t n,
			uint64_t writer, uint64_t wait_ns, uint64_t *cur, uint32_t *bad)
{
	uint64_t t0 = shm_hist_begin(seg);
	int r = update_wait(seg, ops, n, writer, wait_ns, cur, bad);

	if (r >= 0)
		shm_hist_end(seg, SHM_HIST_VAR_UPDATE, t0);
	return r;
}

static bool valid_name(const char *name, size_t len)
{
	return name && len >= 1 && len <= SHOAL_NAME_MAX && !memchr(name, 0, len);
}

/* Free a variable its creator could not name (CLAIMED, or LIVE with no name leading to it). */
static void var_free(struct shm_var *v)
{
	atomic_store_explicit(&v->creating, 0, memory_order_relaxed);
	/* release: a later claimer's CAS acquires a slot whose words we no longer touch */
	atomic_store_explicit(&v->ctl, 0, memory_order_release);
}

/* Claim a free variable slot (or one a dead creator left CLAIMED). Its index, or -ENOSPC. */
static int var_claim(struct shm_seg *seg, const struct shm_var_geo *g, uint32_t hint)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t k = 0; k < g->nvars; k++) {
			uint32_t i = (hint + k) % g->nvars;
			struct shm_var *v = var_at(g, i);
			uint64_t c = atomic_load_explicit(&v->ctl, memory_order_relaxed);

			if (c == 0 || (pass == 1 && SHM_VAR_CTL_STATE(c) == SHM_VAR_CLAIMED &&
				       shm_tag_is_dead(seg, SHM_VAR_CTL_HI(c), true))) {
				/* acquire: the slot's previous words are settled before ours */
				if (atomic_compare_exchange_strong_explicit(
					    &v->ctl, &c, SHM_VAR_CTL(SHM_VAR_CLAIMED, seg->tag),
					    memory_order_acquire, memory_order_relaxed)) {
					if (pass == 1)
						atomic_fetch_add_explicit(&vhdr(g)->freed, 1,
									  memory_order_relaxed);
					return (int)i;
				}
			}
		}
	}
	return -ENOSPC;
}

static uint32_t name_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	return h;
}

/* See shm/var.h. A process with a slot; one writing thread per slot. */
int shm_var_create(struct shm_seg *seg, uint32_t ns, const char *name, size_t len, uint32_t type,
		   uint64_t *id)
{
	struct shm_var_buf *b;
	struct shm_var *v;
	uint64_t gen, nid, zero[8] = {0};
	struct shm_var_geo g;
	int r = shm_var_geo(seg, &g), i;

	*id = 0;
	if (r)
		return r;
	if (!seg->writable || seg->self == UINT32_MAX)
		return -EROFS;
	if (!valid_name(name, len) || ns > SHM_NS_MAX ||
	    (type != SHM_VAR_INT && type != SHM_VAR_DOUBLE && type != SHM_VAR_BLOB))
		return -EINVAL;
	r = shm_var_lookup(seg, ns, name, len, id);
	if (!r)
		return -EEXIST;
	{
		shoal_handle_t h;

		if (!shm_reg_lookup(seg, ns, name, len, &h, NULL))
			return -EEXIST; /* an agent's name */
	}
	i = var_claim(seg, &g, name_hash(name, len));
	if (i < 0)
		return i;
	STEP(SHM_VAR_STEP_CLAIMED);
	v = var_at(&g, (uint32_t)i);
	/* relaxed: we hold the slot CLAIMED; CR0 publishes everything below */
	gen = (uint32_t)(atomic_load_explicit(&v->gen, memory_order_relaxed) + 1);
	if (!gen)
		gen = 1;
	atomic_store_explicit(&v->gen, gen, memory_order_relaxed);
	atomic_store_explicit(&v->creating, seg->tag, memory_order_relaxed);
	atomic_store_explicit(&v->meta, SHM_VAR_META(type, ns, len), memory_order_relaxed);
	words_store(v->name, zero, sizeof(zero));
	words_store(v->name, name, (uint32_t)len);
	atomic_store_explicit(&v->lock, 0, memory_order_relaxed);
	atomic_store_explicit(&v->proposal, 0, memory_order_relaxed);
	atomic_store_explicit(&v->pub, SHM_VAR_PUB(0, 0), memory_order_relaxed);
	b = buf_at(&g, v, 0);
	atomic_store_explicit(&b->version, 0, memory_order_relaxed);
	atomic_store_explicit(&b->writer, 0, memory_order_relaxed);
	atomic_store_explicit(&b->wtag, seg->tag, memory_order_relaxed);
	atomic_store_explicit(&b->time_ns, shm_wall_ns(), memory_order_relaxed);
	atomic_store_explicit(&b->len, type == SHM_VAR_BLOB ? 0 : 8, memory_order_relaxed);
	atomic_store_explicit(&b->data[0], 0, memory_order_relaxed);
	/* CR0: pairs with CR1: a reader that finds it LIVE reads all of the above */
	atomic_store_explicit(&v->ctl, SHM_VAR_CTL(SHM_VAR_LIVE, gen), memory_order_release);
	STEP(SHM_VAR_STEP_LIVE);
	nid = SHM_VAR_ID((uint32_t)i, gen);
	r = shm_reg_register(seg, ns, name, len, nid, NULL);
	if (r) {
		var_free(v);
		if (r == -EEXIST)
			shm_var_lookup(seg, ns, name, len, id);
		return r;
	}
	/* relaxed: repair reads it after our death, which orders it */
	atomic_store_explicit(&v->creating, 0, memory_order_relaxed);
	*id = nid;
	return 0;
}

/* A live variable's namespace and name (NUL-terminated into name, cut to cap - 1). */
static void var_name(const struct shm_var *v, uint32_t *ns, char *name, size_t cap)
{
	uint64_t m = atomic_load_explicit(&v->meta, memory_order_relaxed);
	char buf[65];
	uint32_t len = SHM_VAR_META_LEN(m) > 64 ? 64 : SHM_VAR_META_LEN(m);

	words_load(buf, v->name, len);
	buf[len] = 0;
	if (ns)
		*ns = SHM_VAR_META_NS(m);
	if (cap)
		snprintf(name, cap, "%s", buf);
}

/* See shm/var.h. Any attachment. */
int shm_var_info(const struct shm_seg *seg, uint64_t id, uint32_t *ns, char *name, size_t cap,
		 uint32_t *type)
{
	struct shm_var *v;
	struct shm_var_geo g;

	if (shm_var_geo(seg, &g))
		return -ENOENT;
	v = shm_var_of(&g, id);
	if (!v)
		return -ENOENT;
	var_name(v, ns, name, cap);
	if (type)
		*type = var_type(v);
	return 0;
}

/* See shm/var.h. Any attachment. */
int shm_var_foreach(const struct shm_seg *seg, shm_var_visit_fn fn, void *arg)
{
	struct shm_var_geo g;

	if (shm_var_geo(seg, &g))
		return 0;
	for (uint32_t i = 0; i < g.nvars; i++) {
		struct shm_var *v = var_at(&g, i);
		/* CR1: pairs with CR0 */
		uint64_t c = atomic_load_explicit(&v->ctl, memory_order_acquire);
		char name[SHOAL_NAME_MAX + 1];
		uint32_t ns;
		int r;

		if (SHM_VAR_CTL_STATE(c) != SHM_VAR_LIVE ||
		    atomic_load_explicit(&v->creating, memory_order_relaxed))
			continue;
		var_name(v, &ns, name, sizeof(name));
		r = fn(SHM_VAR_ID(i, (uint32_t)SHM_VAR_CTL_HI(c)), ns, name, var_type(v), arg);
		if (r)
			return r;
	}
	return 0;
}

/* See shm/var.h. */
uint32_t shm_var_bytes(const struct shm_seg *seg)
{
	struct shm_var_geo g;

	return shm_var_geo(seg, &g) ? 0 : g.vb;
}

/* See shm/var.h. */
uint64_t shm_var_notify_seq(const struct shm_seg *seg, uint64_t id)
{
	struct shm_var *v;
	struct shm_var_geo g;

	if (shm_var_geo(seg, &g) || !(v = shm_var_of(&g, id)))
		return 0;
	/* relaxed: a count; the value is read through shm_var_read() */
	return atomic_load_explicit(&v->notify, memory_order_relaxed);
}

/*
 * Is proposal claim p (a round's ref) no longer an open proposal's: its round record free,
 * claimed again since (another generation), or owned by a dead process? The record is
 * claimed before the variable and freed after it, so a live proposal's record is its own.
 */
static bool is_proposal_stale(const struct shm_seg *seg, uint64_t p, bool probe)
{
	struct shm_round *r = shm_round_at(seg, (uint32_t)(p >> 16) & 0xffffu);
	uint64_t ctl;

	if (!r)
		return true;
	/* acquire: as C0 in shm_round_claim(): the claim before its generation */
	ctl = atomic_load_explicit(&r->ctl, memory_order_acquire);
	return !ctl || atomic_load_explicit(&r->gen, memory_order_relaxed) != (uint32_t)(p >> 32) ||
	       shm_tag_is_dead(seg, ctl, probe);
}

/* See shm/var.h. A process with a slot. */
int shm_var_propose_claim(struct shm_seg *seg, uint64_t id, uint64_t ref, uint64_t *version,
			  uint64_t *held)
{
	struct shm_var *v;
	struct shm_var_geo g;
	uint64_t cur;

	*held = 0;
	if (shm_var_geo(seg, &g) || !(v = shm_var_of(&g, id)))
		return -ENOENT;
	for (int k = 0; k < 64; k++) {
		cur = 0;
		/*
		 * PC0: seq_cst, as the update protocol's control words: the version read below
		 * is at or after the claim, so a commit by compare-and-set on it fails if another
		 * proposal committed in between.
		 */
		if (atomic_compare_exchange_strong_explicit(
			    &v->proposal, &cur, ref, memory_order_seq_cst, memory_order_seq_cst)) {
			*version = SHM_VAR_PUB_VERSION(
				atomic_load_explicit(&v->pub, memory_order_seq_cst));
			return 0;
		}
		if (!is_proposal_stale(seg, cur, true)) {
			*held = cur;
			*version = SHM_VAR_PUB_VERSION(
				atomic_load_explicit(&v->pub, memory_order_seq_cst));
			return -EBUSY;
		}
		/* a dead or finished proposer's claim: clear it (a CAS: another may have) */
		atomic_compare_exchange_strong_explicit(&v->proposal, &cur, 0, memory_order_seq_cst,
							memory_order_relaxed);
	}
	return -EBUSY;
}

/* See shm/var.h. The claim's owner. */
void shm_var_propose_release(struct shm_seg *seg, uint64_t id, uint64_t ref)
{
	struct shm_var *v;
	struct shm_var_geo g;

	if (shm_var_geo(seg, &g) || !(v = shm_var_of(&g, id)))
		return;
	/* PC1: seq_cst: after our commit (V1), before our round record is freed */
	atomic_compare_exchange_strong_explicit(&v->proposal, &ref, 0, memory_order_seq_cst,
						memory_order_relaxed);
}

/* See shm/var.h. Any attachment. */
uint64_t shm_var_proposal(const struct shm_seg *seg, uint64_t id)
{
	struct shm_var *v;
	struct shm_var_geo g;
	uint64_t p;

	if (shm_var_geo(seg, &g) || !(v = shm_var_of(&g, id)))
		return 0;
	p = atomic_load_explicit(&v->proposal, memory_order_seq_cst);
	return p && !is_proposal_stale(seg, p, false) ? p : 0;
}

/* See shm/var.h. The supervisor (or a test standing in for it), with a process slot. */
int shm_var_repair(struct shm_seg *seg, uint32_t slot)
{
	struct shm_var_geo g;
	int n = 0;

	if (shm_var_geo(seg, &g) || slot >= g.nprocs)
		return 0;
	for (uint32_t i = 0; i < g.nvars; i++) {
		struct shm_var *v = var_at(&g, i);
		uint64_t c = atomic_load_explicit(&v->ctl, memory_order_acquire);
		uint64_t cr = atomic_load_explicit(&v->creating, memory_order_relaxed);
		uint64_t l;

		if (SHM_VAR_CTL_STATE(c) == SHM_VAR_CLAIMED &&
		    SHM_TAG_SLOT(SHM_VAR_CTL_HI(c)) == slot &&
		    shm_tag_is_dead(seg, SHM_VAR_CTL_HI(c), false)) {
			var_free(v);
			atomic_fetch_add_explicit(&vhdr(&g)->freed, 1, memory_order_relaxed);
			n++;
			continue;
		}
		if (SHM_VAR_CTL_STATE(c) == SHM_VAR_LIVE && cr && SHM_TAG_SLOT(cr) == slot &&
		    shm_tag_is_dead(seg, cr, false)) {
			uint64_t id = SHM_VAR_ID(i, (uint32_t)SHM_VAR_CTL_HI(c)), got = 0;
			char name[SHOAL_NAME_MAX + 1];
			uint32_t ns;

			var_name(v, &ns, name, sizeof(name));
			if (!shm_var_lookup(seg, ns, name, strlen(name), &got) && got == id) {
				atomic_store_explicit(&v->creating, 0, memory_order_relaxed);
			} else {
				var_free(v);
				atomic_fetch_add_explicit(&vhdr(&g)->freed, 1,
							  memory_order_relaxed);
			}
			n++;
		}
		/* a proposal whose round's owner is dead (this slot, or one repaired before) */
		l = atomic_load_explicit(&v->proposal, memory_order_seq_cst);
		if (l && SHM_VAR_CTL_STATE(c) == SHM_VAR_LIVE && is_proposal_stale(seg, l, false) &&
		    atomic_compare_exchange_strong_explicit(
			    &v->proposal, &l, 0, memory_order_seq_cst, memory_order_relaxed))
			n++;
		/* a lock of the dead slot (its own, or one it took over); resolve_dead() returns
		 * 0 only when someone else moved the lock on meanwhile: a few rounds at most */
		for (int k = 0; k < 8; k++) {
			l = atomic_load_explicit(&v->lock, memory_order_seq_cst);
			/* never a live owner's: the slot may have one again (a second pass) */
			if (!l || SHM_TAG_SLOT(l) != slot || !shm_tag_is_dead(seg, l, false))
				break;
			n += resolve_dead(seg, &g, v, l);
		}
	}
	/*
	 * The dead slot's record stays as it is: a committed batch this call could not finish
	 * (no slot of our own to finish it with) is still read from it, and finished by the next
	 * writer or repair that meets its locks. Readers match a record by its tag, so a record
	 * no lock names is inert; the slot's next owner writes over it.
	 */
	return n;
}

/* See shm/var.h. */
int shm_var_check(const struct shm_seg *seg, char *err, size_t errlen)
{
	struct shm_var_geo g;

	if (shm_var_geo(seg, &g))
		return 0;
	for (uint32_t i = 0; i < g.nvars; i++) {
		struct shm_var *v = var_at(&g, i);
		uint64_t c = atomic_load_explicit(&v->ctl, memory_order_acquire);
		uint64_t l = atomic_load_explicit(&v->lock, memory_order_seq_cst);
		uint64_t cr = atomic_load_explicit(&v->creating, memory_order_relaxed);

		if (SHM_VAR_CTL_STATE(c) == SHM_VAR_CLAIMED &&
		    shm_tag_is_dead(seg, SHM_VAR_CTL_HI(c), true)) {
			snprintf(err, errlen, "variable %u: claimed by dead slot %u", i,
				 SHM_TAG_SLOT(SHM_VAR_CTL_HI(c)));
			return -EUCLEAN;
		}
		if (SHM_VAR_CTL_STATE(c) == SHM_VAR_LIVE && cr && shm_tag_is_dead(seg, cr, true)) {
			snprintf(err, errlen, "variable %u: created by dead slot %u, not named", i,
				 SHM_TAG_SLOT(cr));
			return -EUCLEAN;
		}
		if (l && shm_tag_is_dead(seg, l, true)) {
			snprintf(err, errlen, "variable %u: locked by dead slot %u", i,
				 SHM_TAG_SLOT(l));
			return -EUCLEAN;
		}
		l = atomic_load_explicit(&v->proposal, memory_order_seq_cst);
		if (l && is_proposal_stale(seg, l, true)) {
			snprintf(err, errlen,
				 "variable %u: a proposal claim of a round that is over", i);
			return -EUCLEAN;
		}
	}
	return 0;
}

/* See shm/var.h. */
int shm_var_stats(const struct shm_seg *seg, struct shm_var_stats *st)
{
	struct shm_var_geo g;
	int r = shm_var_geo(seg, &g);
	uint64_t p;

	memset(st, 0, sizeof(*st));
	if (r)
		return r == -ENODEV ? 0 : r;
	st->capacity = g.nvars;
	for (uint32_t i = 0; i < g.nvars; i++) {
		struct shm_var *v = var_at(&g, i);

		if (SHM_VAR_CTL_STATE(atomic_load_explicit(&v->ctl, memory_order_relaxed)) ==
		    SHM_VAR_LIVE)
			st->live++;
		if (atomic_load_explicit(&v->lock, memory_order_relaxed))
			st->locked++;
		/* relaxed: a count; a claim word names its round, judged read-only */
		p = atomic_load_explicit(&v->proposal, memory_order_relaxed);
		if (p && is_proposal_stale(seg, p, false))
			st->stale++;
		else if (p)
			st->proposing++;
	}
	st->forward = atomic_load_explicit(&vhdr(&g)->forward, memory_order_relaxed);
	st->back = atomic_load_explicit(&vhdr(&g)->back, memory_order_relaxed);
	st->freed = atomic_load_explicit(&vhdr(&g)->freed, memory_order_relaxed);
	return 0;
}

/* See var_int.h. */
uint64_t shm_var_version_of(const struct shm_var_geo *g, uint64_t id)
{
	struct shm_var *v = shm_var_of(g, id);

	/* seq_cst: as RD0 (a notifier's load after the pub store it follows) */
	return v ? SHM_VAR_PUB_VERSION(atomic_load_explicit(&v->pub, memory_order_seq_cst)) : 0;
}

/* See var_int.h. */
void shm_var_name_of(const struct shm_var *v, uint32_t *ns, char *name, size_t cap)
{
	var_name(v, ns, name, cap);
}

/* See var_int.h. */
uint64_t shm_var_last_wtag(const struct shm_var_geo *g, uint64_t id)
{
	struct shm_var *v = shm_var_of(g, id);
	uint64_t p;

	if (!v)
		return 0;
	p = atomic_load_explicit(&v->pub, memory_order_seq_cst);
	/* relaxed: a hint for repair (who wrote last); a racing update only moves it on */
	return atomic_load_explicit(&buf_at(g, v, SHM_VAR_PUB_BUF(p))->wtag, memory_order_relaxed);
}

/* See var_int.h. */
struct shm_var *shm_var_slot(const struct shm_var_geo *g, uint32_t index, uint64_t *id)
{
	struct shm_var *v = var_at(g, index);
	/* CR1: pairs with CR0 */
	uint64_t c = atomic_load_explicit(&v->ctl, memory_order_acquire);

	if (SHM_VAR_CTL_STATE(c) != SHM_VAR_LIVE)
		return NULL;
	*id = SHM_VAR_ID(index, (uint32_t)SHM_VAR_CTL_HI(c));
	return v;
}
