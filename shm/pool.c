/*
 * Agent pools: the SHM_R_POOLS region is cfg.max_pools slots, each a 256-byte header
 * (struct shm_pool), cfg.pool_members member words (struct shm_pool_member) and as many
 * waiter entries (struct shm_pool_waiter). Pools are few: every search is a linear scan.
 *
 * Checkout's fast path takes no lock: with no waiter queued (nwaiting 0) it CASes a free
 * member's holder word 0 -> its claim tag. Everything else holds the pool's lock word
 * (the holder's claim tag, taken by CAS; whoever finds its holder dead takes it over and
 * runs fixup() first): queueing a waiter, handing a returned agent to the head waiter
 * (dispatch()), timeouts, repair. Holder words only ever change by CAS (0 -> tag by
 * checkouts and grants, tag -> 0 by checkins and repair), so the lock-free fast path and
 * a locked grant can never both take one member.
 *
 * The one race that matters: a checkin frees a member while a checkout, finding none free,
 * queues. Dekker: the checkin CASes its member free (seq_cst) then loads nwaiting
 * (seq_cst), and takes the lock to dispatch if a waiter is there; the queuer increments
 * nwaiting (seq_cst) and then, locked, scans the members (seq_cst loads). One of them sees
 * the other, so no waiter sleeps beside a free member (P0/P1 below). For that one
 * order, every access to a member's holder word and to nwaiting is seq_cst (the plain
 * atomic_* calls), also where a weaker one would do: each such access says so.
 *
 * Crash model: a locked section that dies leaves (a) a waiter entry half written (state
 * CLAIMED: fixup() frees it), (b) nwaiting off by one (fixup() recounts), (c) a grant
 * between its member CAS and its waiter's GRANTED (the pool's intent word names both:
 * fixup() completes it if the member is the waiter's, else drops it). A holder that dies
 * holding members loses them to shm_pool_repair(); a waiter that dies is withdrawn there.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "shm/cpu.h"
#include "shoal/shoal.h"
#include "shm/pool.h"
#include "shm/shm.h"

/* A pool's header. Fields marked "setup" are written before LIVE is published and never
 * after (plain); the rest are _Atomic, relaxed unless a label says otherwise (they are read
 * and written under the lock, or are statistics, or are read by tools that tolerate a mix).
 */
struct shm_pool {
	_Atomic uint32_t state;	      /* enum shm_pool_state */
	_Atomic uint32_t gen;	      /* bumped when the slot is created again */
	_Atomic uint64_t lock;	      /* 0, or the claim tag of the process in a locked section */
	char name[SHM_POOL_NAME];     /* setup */
	char type[SHM_TYPE_MAX];      /* setup */
	uint32_t size;		      /* setup */
	uint32_t overflow;	      /* setup */
	_Atomic uint32_t nmembers;    /* member words in use (a prefix may have holes: agent 0) */
	_Atomic uint32_t nwaiting;    /* WAITING entries (P1) */
	_Atomic uint64_t next_ticket; /* FIFO order of waiters */
	_Atomic uint64_t intent;      /* a grant in flight: (waiter + 1) | (member + 1) << 32 */
	_Atomic uint32_t want;	      /* overflow agents asked of the supervisor */
	_Atomic uint32_t spawning;    /* of those, taken by it and not yet added */
	_Atomic uint64_t checkouts;   /* statistics */
	_Atomic uint64_t waits;
	_Atomic uint64_t timeouts;
	uint8_t pad[256 - 160];
};
static_assert(sizeof(struct shm_pool) == 256, "shm_pool ABI");

#define MEMBER_OVERFLOW 0x1u

struct shm_pool_member {
	_Atomic uint64_t agent;	 /* its handle, 0 none */
	_Atomic uint64_t holder; /* SHM_POOL_IDLE, SHM_POOL_RETIRING or the holder's claim tag */
	_Atomic uint64_t who;	 /* the holder's handle (agent or inbox), 0 unknown */
	_Atomic uint32_t flags;	 /* MEMBER_* */
	uint32_t pad;
};
static_assert(sizeof(struct shm_pool_member) == 32, "shm_pool_member ABI");

enum { W_FREE = 0, W_CLAIMED = 1, W_WAITING = 2, W_GRANTED = 3 };

struct shm_pool_waiter {
	_Atomic uint32_t state; /* W_* */
	uint32_t pad;
	_Atomic uint64_t ticket;      /* FIFO order */
	_Atomic uint64_t tag;	      /* the waiting process's claim tag */
	_Atomic uint64_t who;	      /* handle to notify */
	_Atomic uint64_t ref;	      /* the checkout's reference */
	_Atomic uint64_t deadline_ns; /* CLOCK_MONOTONIC, 0 none */
	_Atomic uint64_t agent;	      /* W_GRANTED: the agent granted */
	uint64_t pad2;
};
static_assert(sizeof(struct shm_pool_waiter) == 64, "shm_pool_waiter ABI");

/* The region starts with this: the lock every creation holds while it names a pool. */
struct shm_pool_region {
	_Atomic uint64_t create_lock; /* 0, or the claim tag of a creator */
	uint8_t pad[64 - 8];
};

static uint64_t stride(const struct shm_cfg *cfg)
{
	return sizeof(struct shm_pool) +
	       (uint64_t)cfg->pool_members *
		       (sizeof(struct shm_pool_member) + sizeof(struct shm_pool_waiter));
}

uint64_t shm_pool_region_size(const struct shm_cfg *cfg)
{
	return sizeof(struct shm_pool_region) + (uint64_t)cfg->max_pools * stride(cfg);
}

static struct shm_pool *pool_at(const struct shm_seg *seg, uint32_t id)
{
	return (struct shm_pool *)((uint8_t *)shm_region(seg, SHM_R_POOLS) +
				   sizeof(struct shm_pool_region) +
				   id * stride(&shm_hdr(seg)->cfg));
}

static struct shm_pool_member *member_at(const struct shm_seg *seg, uint32_t id, uint32_t i)
{
	return (struct shm_pool_member *)(pool_at(seg, id) + 1) + i;
}

static struct shm_pool_waiter *waiter_at(const struct shm_seg *seg, uint32_t id, uint32_t i)
{
	return (struct shm_pool_waiter *)(member_at(seg, id, shm_hdr(seg)->cfg.pool_members)) + i;
}

static uint32_t npools(const struct shm_seg *seg)
{
	return shm_hdr(seg)->cfg.max_pools;
}

static uint32_t cap(const struct shm_seg *seg)
{
	return shm_hdr(seg)->cfg.pool_members;
}

void (*shm_pool_test_hook)(int step);

static void step(int n)
{
	if (__builtin_expect(shm_pool_test_hook != NULL, 0))
		shm_pool_test_hook(n);
}

#define RLX	 memory_order_relaxed
#define ld(p)	 atomic_load_explicit((p), RLX)
#define st(p, v) atomic_store_explicit((p), (v), RLX)

/* --- the lock --- */

static void fixup(struct shm_seg *seg, uint32_t id);

/*
 * Take lock word l; a dead holder's is taken over (then true: its section may be half
 * done). L0: acquire, pairs with L1 in unlock_word(): the previous section's stores before
 * ours.
 */
static bool lock_word(struct shm_seg *seg, _Atomic uint64_t *l)
{
	uint64_t cur = 0;
	unsigned spins = 0;

	for (;;) {
		if (atomic_compare_exchange_weak_explicit(l, &cur, seg->tag, memory_order_acquire,
							  RLX))
			return false;
		if (cur && shm_tag_is_dead(seg, cur, (++spins & 1023) == 0)) {
			/* L0 as above: the dead holder's stores, as far as they went */
			if (atomic_compare_exchange_strong_explicit(l, &cur, seg->tag,
								    memory_order_acquire, RLX))
				return true;
			continue;
		}
		cur = 0;
		if (spins & 63)
			shm_cpu_relax();
		else
			sched_yield();
	}
}

/* L1: release, pairs with L0: this section's stores before the next holder's loads. */
static void unlock_word(_Atomic uint64_t *l)
{
	atomic_store_explicit(l, 0, memory_order_release);
}

/* Pool id's lock; a dead holder's section is repaired first (fixup()). */
static void lock(struct shm_seg *seg, uint32_t id)
{
	if (lock_word(seg, &pool_at(seg, id)->lock))
		fixup(seg, id);
}

static void unlock(struct shm_seg *seg, uint32_t id)
{
	unlock_word(&pool_at(seg, id)->lock);
}

static _Atomic uint64_t *create_lock(const struct shm_seg *seg)
{
	return &((struct shm_pool_region *)shm_region(seg, SHM_R_POOLS))->create_lock;
}

/* --- locked helpers --- */

static uint32_t count_waiting(struct shm_seg *seg, uint32_t id)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < cap(seg); i++)
		if (ld(&waiter_at(seg, id, i)->state) == W_WAITING)
			n++;
	return n;
}

/* After a dead holder's locked section: see the top comment's (a), (b), (c). Locked. */
static void fixup(struct shm_seg *seg, uint32_t id)
{
	struct shm_pool *p = pool_at(seg, id);
	uint64_t in = ld(&p->intent);

	if (in) {
		uint32_t wi = (uint32_t)in - 1, mi = (uint32_t)(in >> 32) - 1;

		if (wi < cap(seg) && mi < cap(seg)) {
			struct shm_pool_waiter *w = waiter_at(seg, id, wi);
			struct shm_pool_member *m = member_at(seg, id, mi);

			/* seq_cst as every holder access (the top: P1); locked, so the dead
			 * dispatcher's take is visible in any order */
			if (ld(&w->state) == W_WAITING && atomic_load(&m->holder) == ld(&w->tag)) {
				st(&m->who, ld(&w->who));
				st(&w->agent, ld(&m->agent));
				/* G0 as in grant(): the agent before GRANTED */
				atomic_store_explicit(&w->state, W_GRANTED, memory_order_release);
			}
		}
		st(&p->intent, 0);
	}
	for (uint32_t i = 0; i < cap(seg); i++) {
		struct shm_pool_waiter *w = waiter_at(seg, id, i);

		if (ld(&w->state) == W_CLAIMED)
			st(&w->state, W_FREE);
	}
	/* seq_cst: P1, as every store of nwaiting */
	atomic_store(&p->nwaiting, count_waiting(seg, id));
}

/* The WAITING entry with the smallest ticket, or UINT32_MAX. Locked. */
static uint32_t head_waiter(struct shm_seg *seg, uint32_t id)
{
	uint32_t best = UINT32_MAX;
	uint64_t bt = 0;

	for (uint32_t i = 0; i < cap(seg); i++) {
		struct shm_pool_waiter *w = waiter_at(seg, id, i);

		if (ld(&w->state) == W_WAITING && (best == UINT32_MAX || ld(&w->ticket) < bt)) {
			best = i;
			bt = ld(&w->ticket);
		}
	}
	return best;
}

static bool agent_is_running(const struct shm_seg *seg, uint64_t h)
{
	uint32_t slot = shoal_handle_slot(h);
	const struct shm_agent *a;

	if (!h || slot >= shm_hdr(seg)->cfg.max_agents)
		return false;
	a = shm_agent_at(seg, slot);
	/* relaxed: a hint; the holder of the handle finds out if it is stale */
	return ld(&a->gen) == shoal_handle_gen(h) && ld(&a->state) == SHM_AGENT_RUNNING;
}

/*
 * Take member i for holder word tag if it is free (or retiring): one CAS. P1's load side:
 * seq_cst, so a queuer that counted itself in sees a checkin's free member.
 */
static bool take_member(struct shm_seg *seg, uint32_t id, uint32_t i, uint64_t tag)
{
	struct shm_pool_member *m = member_at(seg, id, i);
	uint64_t h = atomic_load(&m->holder);

	if ((h != SHM_POOL_IDLE && h != SHM_POOL_RETIRING) || !agent_is_running(seg, ld(&m->agent)))
		return false;
	return atomic_compare_exchange_strong(&m->holder, &h, tag);
}

/* Free waiter entry i (its ticket stays: a late look by its waiter compares refs). */
static void drop_waiter(struct shm_pool_waiter *w)
{
	/* G1: release: a waiter that reads FREE has seen everything before it */
	atomic_store_explicit(&w->state, W_FREE, memory_order_release);
}

/* Hand member mi to waiter wi and tell it. Locked. */
static bool grant(struct shm_seg *seg, uint32_t id, uint32_t wi, uint32_t mi, shm_pool_notify_fn fn,
		  void *arg)
{
	struct shm_pool *p = pool_at(seg, id);
	struct shm_pool_waiter *w = waiter_at(seg, id, wi);
	struct shm_pool_member *m = member_at(seg, id, mi);
	struct shm_pool_note n;

	st(&p->intent, (uint64_t)(wi + 1) | (uint64_t)(mi + 1) << 32);
	if (!take_member(seg, id, mi, ld(&w->tag))) {
		st(&p->intent, 0);
		return false;
	}
	step(SHM_POOL_STEP_GRANT_TAKEN);
	st(&m->who, ld(&w->who));
	st(&w->agent, ld(&m->agent));
	/* G0: release: the agent before GRANTED, for a waiter polling its entry */
	atomic_store_explicit(&w->state, W_GRANTED, memory_order_release);
	st(&p->intent, 0);
	/* seq_cst: P1 */
	atomic_fetch_sub(&p->nwaiting, 1);
	atomic_fetch_add_explicit(&p->checkouts, 1, RLX);
	n = (struct shm_pool_note){SHM_POOL_GRANT, id, ld(&w->who), ld(&w->ref), ld(&w->agent)};
	if (fn && fn(arg, &n) == 0)
		drop_waiter(w);
	return true;
}

/* While a waiter and a free member exist, the head waiter gets it. Locked. */
static void dispatch(struct shm_seg *seg, uint32_t id, shm_pool_notify_fn fn, void *arg)
{
	struct shm_pool *p = pool_at(seg, id);

	for (;;) {
		uint32_t wi = head_waiter(seg, id), mi;
		uint32_t n = ld(&p->nmembers);

		if (wi == UINT32_MAX)
			return;
		for (mi = 0; mi < n; mi++)
			if (grant(seg, id, wi, mi, fn, arg))
				break;
		if (mi == n)
			return;
	}
}

/* Ask the supervisor for overflow members if waiters outnumber what is coming. Locked. */
static void want_overflow(struct shm_seg *seg, uint32_t id)
{
	struct shm_pool *p = pool_at(seg, id);
	uint32_t have = ld(&p->nmembers) + ld(&p->want) + ld(&p->spawning);
	uint32_t max = p->size + p->overflow;
	uint32_t waiting = ld(&p->nwaiting);

	if (waiting && have < max)
		st(&p->want, ld(&p->want) + (waiting < max - have ? waiting : max - have));
}

/* --- creation --- */

static bool name_ok(const char *s, size_t cap_bytes)
{
	size_t n = strnlen(s, cap_bytes);

	return n > 0 && n < cap_bytes;
}

int shm_pool_find(const struct shm_seg *seg, const char *name, uint32_t *id)
{
	for (uint32_t i = 0; i < npools(seg); i++) {
		struct shm_pool *p = pool_at(seg, i);

		/* P2: acquire, pairs with P3 in shm_pool_publish(): the setup fields */
		if (atomic_load_explicit(&p->state, memory_order_acquire) == SHM_POOL_LIVE &&
		    !strncmp(p->name, name, SHM_POOL_NAME)) {
			*id = i;
			return 0;
		}
	}
	return -ENOENT;
}

int shm_pool_create(struct shm_seg *seg, const char *name, const char *type, uint32_t size,
		    uint32_t overflow, uint32_t *id)
{
	uint32_t found = UINT32_MAX;
	struct shm_pool *p;
	int r = 0;

	if (seg->self == UINT32_MAX)
		return -EROFS;
	if (!name_ok(name, SHM_POOL_NAME) || !name_ok(type, SHM_TYPE_MAX) || !size ||
	    (uint64_t)size + overflow > cap(seg))
		return -EINVAL;
	/* names are written and compared only under the creation lock (a dead creator's
	 * section changed nothing another creator cannot redo: no fixup) */
	lock_word(seg, create_lock(seg));
	for (uint32_t i = 0; i < npools(seg); i++) {
		struct shm_pool *q = pool_at(seg, i);
		uint32_t s = atomic_load_explicit(&q->state, memory_order_acquire);
		uint64_t l = ld(&q->lock);

		/* seq_cst CAS: the setup lock's acquire (a dead creator's is taken over) */
		if (s == SHM_POOL_SETUP && (!l || shm_tag_is_dead(seg, l, true)) &&
		    atomic_compare_exchange_strong(&q->lock, &l, seg->tag)) {
			/* a creator died before publishing: its slot is free again */
			st(&q->state, SHM_POOL_FREE);
			unlock(seg, i);
			s = SHM_POOL_FREE;
		}
		if (s != SHM_POOL_FREE && !strncmp(q->name, name, SHM_POOL_NAME)) {
			r = -EEXIST;
			goto out;
		}
		if (s == SHM_POOL_FREE && found == UINT32_MAX) {
			uint64_t zero = 0;

			if (atomic_compare_exchange_strong_explicit(&q->lock, &zero, seg->tag,
								    memory_order_acquire, RLX))
				found = i;
		}
	}
	if (found == UINT32_MAX) {
		r = -ENOSPC;
		goto out;
	}
	p = pool_at(seg, found);
	atomic_fetch_add_explicit(&p->gen, 1, RLX);
	memset(p->name, 0, sizeof(p->name));
	memset(p->type, 0, sizeof(p->type));
	strncpy(p->name, name, sizeof(p->name) - 1);
	strncpy(p->type, type, sizeof(p->type) - 1);
	p->size = size;
	p->overflow = overflow;
	st(&p->nmembers, 0);
	/* seq_cst: P1, as every store of nwaiting (none races it: not live yet) */
	atomic_store(&p->nwaiting, 0);
	st(&p->next_ticket, 0);
	st(&p->intent, 0);
	st(&p->want, 0);
	st(&p->spawning, 0);
	st(&p->checkouts, 0);
	st(&p->waits, 0);
	st(&p->timeouts, 0);
	for (uint32_t i = 0; i < cap(seg); i++) {
		struct shm_pool_member *m = member_at(seg, found, i);
		struct shm_pool_waiter *w = waiter_at(seg, found, i);

		st(&m->agent, 0);
		st(&m->holder, SHM_POOL_IDLE);
		st(&m->who, 0);
		st(&m->flags, 0);
		st(&w->state, W_FREE);
	}
	/* release: the name before SETUP, for the next creator (it also holds the lock) */
	atomic_store_explicit(&p->state, SHM_POOL_SETUP, memory_order_release);
	*id = found;
out:
	unlock_word(create_lock(seg));
	return r;
}

int shm_pool_add(struct shm_seg *seg, uint32_t id, uint64_t agent, bool overflow)
{
	struct shm_pool *p = pool_at(seg, id);
	uint32_t n = ld(&p->nmembers);

	/* a hole left by a retired member first */
	for (uint32_t i = 0; i < n; i++) {
		struct shm_pool_member *m = member_at(seg, id, i);

		if (!ld(&m->agent)) {
			st(&m->flags, overflow ? MEMBER_OVERFLOW : 0);
			st(&m->who, 0);
			/* P4: release, pairs with the acquire of a checkout's holder CAS: the
			 * fields before the agent is there to take */
			atomic_store_explicit(&m->agent, agent, memory_order_release);
			return 0;
		}
	}
	if (n >= cap(seg))
		return -ENOSPC;
	st(&member_at(seg, id, n)->flags, overflow ? MEMBER_OVERFLOW : 0);
	st(&member_at(seg, id, n)->who, 0);
	atomic_store_explicit(&member_at(seg, id, n)->agent, agent, memory_order_release);
	/* release: the member before the count that makes scans reach it */
	atomic_store_explicit(&p->nmembers, n + 1, memory_order_release);
	return 0;
}

void shm_pool_publish(struct shm_seg *seg, uint32_t id)
{
	/* P3: release, pairs with P2: the setup fields before LIVE */
	atomic_store_explicit(&pool_at(seg, id)->state, SHM_POOL_LIVE, memory_order_release);
	unlock(seg, id);
}

void shm_pool_abandon(struct shm_seg *seg, uint32_t id)
{
	st(&pool_at(seg, id)->state, SHM_POOL_FREE);
	unlock(seg, id);
}

/* --- checkout and checkin --- */

static bool pool_live(const struct shm_seg *seg, uint32_t id)
{
	return id < npools(seg) && atomic_load_explicit(&pool_at(seg, id)->state,
							memory_order_acquire) == SHM_POOL_LIVE;
}

/* A notify function that keeps the caller's own entry's grant for the caller to take. */
struct self_filter {
	shm_pool_notify_fn fn;
	void *arg;
	struct shm_pool_waiter *self;
};

static int not_to_self(void *arg, const struct shm_pool_note *n)
{
	struct self_filter *f = arg;

	if (n->kind == SHM_POOL_GRANT && n->to == ld(&f->self->who) && n->ref == ld(&f->self->ref))
		return -EALREADY;
	return f->fn ? f->fn(f->arg, n) : -ENOSYS;
}

int shm_pool_checkout(struct shm_seg *seg, uint32_t id, uint64_t who, uint64_t ref,
		      uint64_t deadline_ns, bool queue_if_busy, uint64_t *agent, uint32_t *wslot,
		      shm_pool_notify_fn fn, void *arg)
{
	struct shm_pool *p;
	uint32_t wi = UINT32_MAX, n;

	if (seg->self == UINT32_MAX)
		return -EROFS;
	if (!pool_live(seg, id))
		return -ENOENT;
	p = pool_at(seg, id);
	/* fast path: no queue to respect (seq_cst as every nwaiting access, P0/P1; only a hint
	 * here: take_member()'s CAS decides) */
	if (atomic_load(&p->nwaiting) == 0) {
		n = atomic_load_explicit(&p->nmembers, memory_order_acquire);
		for (uint32_t i = 0; i < n; i++) {
			if (take_member(seg, id, i, seg->tag)) {
				struct shm_pool_member *m = member_at(seg, id, i);

				st(&m->who, who);
				*agent = ld(&m->agent);
				atomic_fetch_add_explicit(&p->checkouts, 1, RLX);
				return 0;
			}
		}
	}
	if (!queue_if_busy)
		return -EAGAIN;
	lock(seg, id);
	for (uint32_t i = 0; i < cap(seg); i++) {
		if (ld(&waiter_at(seg, id, i)->state) == W_FREE) {
			wi = i;
			break;
		}
	}
	if (wi == UINT32_MAX) {
		unlock(seg, id);
		return -ENOSPC;
	}
	{
		struct shm_pool_waiter *w = waiter_at(seg, id, wi);

		st(&w->state, W_CLAIMED);
		step(SHM_POOL_STEP_QUEUE_CLAIMED);
		st(&w->tag, seg->tag);
		st(&w->who, who);
		st(&w->ref, ref);
		st(&w->deadline_ns, deadline_ns);
		st(&w->agent, 0);
		st(&w->ticket, ld(&p->next_ticket) + 1);
		st(&p->next_ticket, ld(&p->next_ticket) + 1);
		st(&w->state, W_WAITING);
		step(SHM_POOL_STEP_QUEUED);
		/* P0: seq_cst, pairs with P1 in shm_pool_checkin(): counted in before we scan */
		atomic_fetch_add(&p->nwaiting, 1);
		atomic_fetch_add_explicit(&p->waits, 1, RLX);
	}
	{
		struct self_filter f = {fn, arg, waiter_at(seg, id, wi)};
		struct shm_pool_waiter *w = f.self;

		dispatch(seg, id, not_to_self, &f);
		/* our own entry granted at once: no note needed, we are here */
		if (ld(&w->state) == W_GRANTED) {
			*agent = ld(&w->agent);
			drop_waiter(w);
			unlock(seg, id);
			return 0;
		}
	}
	want_overflow(seg, id);
	unlock(seg, id);
	*wslot = wi;
	return 1;
}

/* Member index of agent in pool id, or UINT32_MAX. */
static uint32_t member_of(struct shm_seg *seg, uint32_t id, uint64_t agent)
{
	uint32_t n = atomic_load_explicit(&pool_at(seg, id)->nmembers, memory_order_acquire);

	for (uint32_t i = 0; i < n; i++)
		if (ld(&member_at(seg, id, i)->agent) == agent)
			return i;
	return UINT32_MAX;
}

/*
 * Free member mi (held by holder word h): overflow members with nobody waiting retire.
 * P1: the CAS is seq_cst and so is the load of nwaiting after it (pairs with P0).
 * Returns whether a waiter is there to dispatch to.
 */
static bool free_member(struct shm_seg *seg, uint32_t id, uint32_t mi, uint64_t h)
{
	struct shm_pool *p = pool_at(seg, id);
	struct shm_pool_member *m = member_at(seg, id, mi);
	uint64_t to = (ld(&m->flags) & MEMBER_OVERFLOW) ? SHM_POOL_RETIRING : SHM_POOL_IDLE;

	st(&m->who, 0);
	if (!atomic_compare_exchange_strong(&m->holder, &h, to))
		return false;
	return atomic_load(&p->nwaiting) != 0;
}

int shm_pool_checkin(struct shm_seg *seg, uint32_t id, uint64_t agent, shm_pool_notify_fn fn,
		     void *arg)
{
	uint32_t mi;

	if (!pool_live(seg, id))
		return -ENOENT;
	mi = member_of(seg, id, agent);
	if (mi == UINT32_MAX)
		return -ENOENT;
	/* seq_cst as every holder access (P1); only our own CAS made it our tag */
	if (atomic_load(&member_at(seg, id, mi)->holder) != seg->tag)
		return -EPERM;
	if (free_member(seg, id, mi, seg->tag)) {
		lock(seg, id);
		dispatch(seg, id, fn, arg);
		unlock(seg, id);
	}
	return 0;
}

int shm_pool_wait_result(struct shm_seg *seg, uint32_t id, uint32_t wslot, uint64_t ref,
			 bool cancel, uint64_t *agent)
{
	struct shm_pool_waiter *w;
	int r = -ENOENT;

	if (!pool_live(seg, id) || wslot >= cap(seg))
		return -ENOENT;
	w = waiter_at(seg, id, wslot);
	/* a look without the lock: G0/G1's acquire side */
	if (!cancel) {
		uint32_t s = atomic_load_explicit(&w->state, memory_order_acquire);

		if (s == W_WAITING && ld(&w->ref) == ref)
			return 1;
	}
	lock(seg, id);
	if (ld(&w->ref) == ref && ld(&w->tag) == seg->tag) {
		switch (ld(&w->state)) {
		case W_GRANTED:
			*agent = ld(&w->agent);
			drop_waiter(w);
			r = 0;
			break;
		case W_WAITING:
			if (cancel) {
				drop_waiter(w);
				atomic_fetch_sub(&pool_at(seg, id)->nwaiting, 1);
			}
			r = 1;
			break;
		default:
			break;
		}
	}
	unlock(seg, id);
	return r;
}

/* --- repair and duties --- */

/* Return every member whose holder matches (tag's slot, or handle who); locked. */
static int release_matching(struct shm_seg *seg, uint32_t id, uint32_t slot, uint64_t who,
			    shm_pool_notify_fn fn, void *arg)
{
	struct shm_pool *p = pool_at(seg, id);
	uint32_t n = ld(&p->nmembers);
	int returned = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct shm_pool_member *m = member_at(seg, id, i);
		/* seq_cst as every holder access (P1); free_member()'s CAS settles a stale h */
		uint64_t h = atomic_load(&m->holder);

		if (h == SHM_POOL_IDLE || h == SHM_POOL_RETIRING)
			continue;
		if (who ? ld(&m->who) == who : SHM_TAG_SLOT(h) == slot) {
			free_member(seg, id, i, h);
			returned++;
		}
	}
	for (uint32_t i = 0; i < cap(seg); i++) {
		struct shm_pool_waiter *w = waiter_at(seg, id, i);
		uint32_t s = ld(&w->state);

		if (s == W_FREE)
			continue;
		if (who ? ld(&w->who) == who : SHM_TAG_SLOT(ld(&w->tag)) == slot) {
			if (s == W_GRANTED) {
				/* granted, never taken: the agent returns too */
				uint32_t mi = member_of(seg, id, ld(&w->agent));

				if (mi != UINT32_MAX)
					free_member(seg, id, mi, ld(&w->tag));
			}
			drop_waiter(w);
		}
	}
	/* seq_cst: P1, as every store of nwaiting */
	atomic_store(&p->nwaiting, count_waiting(seg, id));
	dispatch(seg, id, fn, arg);
	return returned;
}

int shm_pool_repair(struct shm_seg *seg, uint32_t slot, shm_pool_notify_fn fn, void *arg)
{
	int returned = 0;

	for (uint32_t id = 0; id < npools(seg); id++) {
		struct shm_pool *p = pool_at(seg, id);
		uint32_t s = atomic_load_explicit(&p->state, memory_order_acquire);
		uint64_t l = ld(&p->lock);

		if (s == SHM_POOL_SETUP && l && SHM_TAG_SLOT(l) == slot) {
			/* its creator died before publishing; seq_cst CAS: the lock's acquire */
			if (atomic_compare_exchange_strong(&p->lock, &l, seg->tag))
				shm_pool_abandon(seg, id);
			continue;
		}
		if (s != SHM_POOL_LIVE)
			continue;
		lock(seg, id);
		returned += release_matching(seg, id, slot, 0, fn, arg);
		unlock(seg, id);
	}
	return returned;
}

int shm_pool_release_holder(struct shm_seg *seg, uint64_t who, shm_pool_notify_fn fn, void *arg)
{
	int returned = 0;

	if (!who)
		return 0;
	for (uint32_t id = 0; id < npools(seg); id++) {
		bool mine = false;

		if (!pool_live(seg, id))
			continue;
		/* relaxed peeks: only our own stores (as holder or waiter) can match */
		for (uint32_t i = 0; i < cap(seg) && !mine; i++)
			mine = ld(&member_at(seg, id, i)->who) == who ||
			       (ld(&waiter_at(seg, id, i)->state) != W_FREE &&
				ld(&waiter_at(seg, id, i)->who) == who);
		if (!mine)
			continue;
		lock(seg, id);
		returned += release_matching(seg, id, UINT32_MAX, who, fn, arg);
		unlock(seg, id);
	}
	return returned;
}

int shm_pool_tick(struct shm_seg *seg, uint64_t now_ns, shm_pool_notify_fn fn, void *arg)
{
	int notes = 0;

	for (uint32_t id = 0; id < npools(seg); id++) {
		struct shm_pool *p = pool_at(seg, id);
		bool busy = false;

		if (!pool_live(seg, id))
			continue;
		/* nothing queued and nothing granted undelivered: no lock (relaxed peeks) */
		for (uint32_t i = 0; i < cap(seg) && !busy; i++)
			busy = ld(&waiter_at(seg, id, i)->state) != W_FREE;
		if (!busy)
			continue;
		lock(seg, id);
		for (uint32_t i = 0; i < cap(seg); i++) {
			struct shm_pool_waiter *w = waiter_at(seg, id, i);
			uint64_t dl = ld(&w->deadline_ns);
			struct shm_pool_note n = {0, id, ld(&w->who), ld(&w->ref), 0};

			if (ld(&w->state) == W_WAITING && dl && dl <= now_ns) {
				n.kind = SHM_POOL_TIMEOUT;
				drop_waiter(w);
				atomic_fetch_sub(&p->nwaiting, 1);
				atomic_fetch_add_explicit(&p->timeouts, 1, RLX);
				if (fn)
					fn(arg, &n);
				notes++;
			} else if (ld(&w->state) == W_GRANTED && fn) {
				n.kind = SHM_POOL_GRANT;
				n.agent = ld(&w->agent);
				if (fn(arg, &n) == 0)
					drop_waiter(w);
				notes++;
			}
		}
		dispatch(seg, id, fn, arg);
		unlock(seg, id);
	}
	return notes;
}

uint32_t shm_pool_take_want(struct shm_seg *seg, uint32_t id)
{
	struct shm_pool *p;
	uint32_t w;

	if (!pool_live(seg, id))
		return 0;
	p = pool_at(seg, id);
	if (!ld(&p->want))
		return 0;
	lock(seg, id);
	w = ld(&p->want);
	st(&p->want, 0);
	st(&p->spawning, ld(&p->spawning) + w);
	unlock(seg, id);
	return w;
}

int shm_pool_add_overflow(struct shm_seg *seg, uint32_t id, uint64_t agent, shm_pool_notify_fn fn,
			  void *arg)
{
	struct shm_pool *p;
	int r;

	if (!pool_live(seg, id))
		return -ENOENT;
	p = pool_at(seg, id);
	lock(seg, id);
	if (ld(&p->spawning))
		st(&p->spawning, ld(&p->spawning) - 1);
	r = agent ? shm_pool_add(seg, id, agent, true) : 0;
	dispatch(seg, id, fn, arg);
	want_overflow(seg, id);
	unlock(seg, id);
	return r;
}

uint64_t shm_pool_retired(struct shm_seg *seg, uint32_t id)
{
	uint64_t agent = 0;
	uint32_t n;

	if (!pool_live(seg, id))
		return 0;
	n = atomic_load_explicit(&pool_at(seg, id)->nmembers, memory_order_acquire);
	for (uint32_t i = 0; i < n && !agent; i++) {
		struct shm_pool_member *m = member_at(seg, id, i);
		uint64_t h = SHM_POOL_RETIRING;

		/* seq_cst as every holder access (P1); a look: the locked CAS below decides */
		if (atomic_load(&m->holder) != SHM_POOL_RETIRING)
			continue;
		lock(seg, id);
		/* a waiter may have taken it since: the CAS decides */
		if (atomic_compare_exchange_strong(&m->holder, &h, SHM_POOL_IDLE)) {
			agent = ld(&m->agent);
			st(&m->agent, 0);
		}
		unlock(seg, id);
	}
	return agent;
}

/* Is agent handle h's incarnation over (its slot freed, or reused by another)? */
static bool agent_is_gone(const struct shm_seg *seg, uint64_t h)
{
	uint32_t slot = shoal_handle_slot(h);
	const struct shm_agent *a;
	uint32_t st;

	if (slot >= shm_hdr(seg)->cfg.max_agents)
		return true;
	a = shm_agent_at(seg, slot);
	/* acquire: pairs with the release of FREE/STOPPED by whoever ended it */
	st = atomic_load_explicit(&((struct shm_agent *)a)->state, memory_order_acquire);
	return ld(&((struct shm_agent *)a)->gen) != shoal_handle_gen(h) || st == SHM_AGENT_FREE ||
	       st == SHM_AGENT_STOPPED;
}

int shm_pool_next_gone(struct shm_seg *seg, uint32_t id, uint32_t *member, uint64_t *old)
{
	uint32_t n;
	int r = -ENOENT;

	if (!pool_live(seg, id))
		return -ENOENT;
	n = atomic_load_explicit(&pool_at(seg, id)->nmembers, memory_order_acquire);
	for (uint32_t i = 0; i < n && r; i++) {
		struct shm_pool_member *m = member_at(seg, id, i);
		/* seq_cst as every holder access (P1); a look: the locked work re-checks */
		uint64_t a = ld(&m->agent), h = atomic_load(&m->holder);

		if (!a || (h != SHM_POOL_IDLE && h != SHM_POOL_RETIRING) || !agent_is_gone(seg, a))
			continue;
		if (ld(&m->flags) & MEMBER_OVERFLOW) {
			lock(seg, id);
			/* nobody takes a gone agent: still ours to drop */
			if (ld(&m->agent) == a)
				st(&m->agent, 0);
			unlock(seg, id);
			continue;
		}
		*member = i;
		*old = a;
		r = 0;
	}
	return r;
}

int shm_pool_replace(struct shm_seg *seg, uint32_t id, uint32_t member, uint64_t old,
		     uint64_t agent, shm_pool_notify_fn fn, void *arg)
{
	struct shm_pool_member *m;
	int r = -ESTALE;

	if (!pool_live(seg, id) || member >= cap(seg))
		return -ENOENT;
	m = member_at(seg, id, member);
	lock(seg, id);
	if (ld(&m->agent) == old) {
		st(&m->who, 0);
		/* P4 as in shm_pool_add(): the member's fields before its agent */
		atomic_store_explicit(&m->agent, agent, memory_order_release);
		dispatch(seg, id, fn, arg);
		r = 0;
	}
	unlock(seg, id);
	return r;
}

/* --- tools --- */

int shm_pool_read(const struct shm_seg *seg, uint32_t id, struct shm_pool_info *out)
{
	const struct shm_pool *p;
	uint32_t s, n;

	if (id >= npools(seg))
		return -ENOENT;
	p = pool_at(seg, id);
	s = atomic_load_explicit(&((struct shm_pool *)p)->state, memory_order_acquire);
	if (s == SHM_POOL_FREE)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	memcpy(out->name, p->name, sizeof(out->name) - 1);
	memcpy(out->type, p->type, sizeof(out->type) - 1);
	out->state = s;
	out->size = p->size;
	out->overflow = p->overflow;
	n = ld(&((struct shm_pool *)p)->nmembers);
	if (n > cap(seg))
		n = cap(seg);
	for (uint32_t i = 0; i < n; i++) {
		struct shm_pool_member *m = member_at(seg, id, i);
		uint64_t h = ld(&m->holder);

		if (!ld(&m->agent))
			continue;
		out->members++;
		if (h != SHM_POOL_IDLE && h != SHM_POOL_RETIRING)
			out->held++;
	}
	out->waiting = ld(&((struct shm_pool *)p)->nwaiting);
	for (uint32_t i = 0; i < cap(seg); i++)
		out->entries += ld(&waiter_at(seg, id, i)->state) != W_FREE;
	out->want = ld(&((struct shm_pool *)p)->want) + ld(&((struct shm_pool *)p)->spawning);
	out->checkouts = ld(&((struct shm_pool *)p)->checkouts);
	out->waits = ld(&((struct shm_pool *)p)->waits);
	out->timeouts = ld(&((struct shm_pool *)p)->timeouts);
	return 0;
}

int shm_pool_member(const struct shm_seg *seg, uint32_t id, uint32_t i, uint64_t *agent,
		    uint64_t *holder)
{
	struct shm_pool_member *m;

	if (id >= npools(seg) || i >= ld(&pool_at(seg, id)->nmembers) || i >= cap(seg))
		return -ENOENT;
	m = member_at(seg, id, i);
	*agent = ld(&m->agent);
	*holder = ld(&m->holder);
	return 0;
}
