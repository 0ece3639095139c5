/*
 * The event ring (shm/event.h). Region SHM_R_EVENTS: a head (struct shm_event_ring: the
 * claim counter `next`) and `events` records, a power of two; event n lives in record
 * n & (events - 1).
 *
 * The protocol. A writer W of event n:
 *   E0 n := fetch_add(next, 1)                      (the only shared step all writers meet)
 *   E1 CAS the record's seq from any value older than 2n + 1 to 2n + 1 (odd: being written);
 *      if it already holds a newer event's seq, W was lapped before it began: its event is
 *      overwritten already, and it writes nothing
 *   E2 write the body with relaxed word stores, its checksum (of n and the body) included
 *   E3 CAS seq from 2n + 1 to 2n + 2 (release): published; a failed CAS means a newer event's
 *      writer took the record meanwhile, and the newer event wins
 * then bumps the change counter (followers wake). A reader R of event n loads seq (acquire);
 * 2n + 2 means complete: it copies the body, loads seq again (after an acquire fence) and
 * keeps the copy only if seq did not move and the checksum matches.
 *
 * Nobody waits: a writer killed between E0 and E3 leaves its record odd (or stale) for good;
 * readers report event n as incomplete (-EAGAIN) and go on, and the writer of n + events
 * overwrites the record as usual (E1 accepts any older seq, odd or even). A record is written
 * by two writers at once only when one was lapped mid-write (stopped for a whole ring's worth
 * of events): E3's CAS keeps the slow one from publishing, and the checksum catches its late
 * body stores landing in the newer event's published record. Sequence numbers are 64-bit:
 * they never wrap in practice, and counters are compared by difference anyway.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shm/event.h"
#include "shm/seqlock.h"

static_assert(sizeof(struct shm_event) % 8 == 0, "the body is copied in words");

void (*shm_event_test_hook)(int step);

#ifdef SHOAL_TEST_HOOKS
#define STEP(n)                                                                                    \
	do {                                                                                       \
		if (__builtin_expect(shm_event_test_hook != NULL, 0))                              \
			shm_event_test_hook(n);                                                    \
	} while (0)
#else
#define STEP(n) ((void)0)
#endif

/* The body: everything after seq. */
#define EV_BODY(e)    ((uint8_t *)(e) + sizeof(uint64_t))
#define EV_BODY_BYTES (sizeof(struct shm_event) - sizeof(uint64_t))
#define EV_HALF_BYTES (EV_BODY_BYTES / 2 / 8 * 8)

static const char *const kind_names[SHM_EV_KIND_COUNT] = {
	[SHM_EV_NONE] = "none",
	[SHM_EV_WORKER_CRASH] = "worker-crash",
	[SHM_EV_WORKER_RESTART] = "worker-restart",
	[SHM_EV_MEMCAP] = "memory-cap",
	[SHM_EV_INTENSITY] = "intensity",
	[SHM_EV_HANG] = "hang",
	[SHM_EV_POISON] = "poison-drop",
	[SHM_EV_AGENT_SPAWN] = "agent-spawn",
	[SHM_EV_AGENT_STOP] = "agent-stop",
	[SHM_EV_AGENT_CRASH] = "agent-crash",
	[SHM_EV_SLO_VIOLATION] = "slo-violation",
};

/* See event.h. */
const char *shm_event_kind_name(uint32_t kind)
{
	return kind < SHM_EV_KIND_COUNT ? kind_names[kind] : "?";
}

/* See event.h. */
const char *shm_event_reason_name(uint32_t kind, uint32_t reason)
{
	static const char *const down[] = {"-", "worker-died", "failed", "stopped", "error"};

	if (!reason)
		return "-";
	switch (kind) {
	case SHM_EV_WORKER_CRASH:
	case SHM_EV_MEMCAP:
		return shm_exit_reason_name(reason);
	case SHM_EV_AGENT_STOP:
	case SHM_EV_AGENT_CRASH:
		return reason < sizeof(down) / sizeof(down[0]) ? down[reason] : "?";
	default:
		return "?";
	}
}

/* See event.h. */
uint64_t shm_event_region_size(const struct shm_cfg *cfg)
{
	if (!cfg->events)
		return 0;
	return sizeof(struct shm_event_ring) + (uint64_t)cfg->events * sizeof(struct shm_event);
}

/*
 * The ring and its size, or NULL: an older minor, no ring, or a header whose region cannot
 * hold what its configuration says (read again on every call: a header changed after the
 * attach's validation must not send anyone outside the mapping).
 */
static struct shm_event_ring *ring_at(const struct shm_seg *seg, uint32_t *cap)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_region *r = &h->regions[SHM_R_EVENTS];
	uint32_t n = h->cfg.events;

	if (h->layout_minor < 10 || h->nregions <= SHM_R_EVENTS || !n || (n & (n - 1)) ||
	    n > SHM_EVENT_MAX || r->off > seg->size || r->size > seg->size - r->off ||
	    r->size < sizeof(struct shm_event_ring) + (uint64_t)n * sizeof(struct shm_event) ||
	    r->off % SHM_ALIGN)
		return NULL;
	*cap = n;
	return (struct shm_event_ring *)(seg->base + r->off);
}

static struct shm_event *record_at(struct shm_event_ring *ring, uint32_t cap, uint64_t n)
{
	return (struct shm_event *)(ring + 1) + (n & (cap - 1));
}

/* FNV-1a over event n's number and body (check as 0): cheap, and events are rare. */
static uint32_t checksum(uint64_t n, const struct shm_event *e)
{
	const uint8_t *b = EV_BODY(e);
	uint32_t x = 2166136261u;

	for (unsigned i = 0; i < 8; i++)
		x = (x ^ (uint8_t)(n >> (8 * i))) * 16777619u;
	for (size_t i = 0; i < EV_BODY_BYTES; i++) {
		uint8_t c = b[i];

		if (i >= offsetof(struct shm_event, check) - 8 &&
		    i < offsetof(struct shm_event, check) - 8 + sizeof(uint32_t))
			c = 0;
		x = (x ^ c) * 16777619u;
	}
	return x;
}

/* See event.h. */
void shm_event_init(struct shm_event *e, enum shm_event_kind kind)
{
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->code = -1;
	e->worker = -1;
	e->slot = UINT32_MAX;
}

/* See event.h. */
void shm_event_set_name(struct shm_event *e, const char *name)
{
	snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
}

/* See event.h. */
void shm_event_set_text(struct shm_event *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

/* See event.h and the protocol at the top. */
int shm_event_append(struct shm_seg *seg, const struct shm_event *e, uint64_t *seq_out)
{
	struct shm_event_ring *ring;
	struct shm_event c, *r;
	uint64_t n, odd, cur;
	uint32_t cap;

	if (!seg->writable)
		return -EROFS;
	ring = ring_at(seg, &cap);
	if (!ring)
		return -ENODATA;
	c = *e;
	if (!c.time_ns)
		c.time_ns = shm_wall_ns();
	/* the strings end inside their fields whatever the caller left there */
	c.name[sizeof(c.name) - 1] = 0;
	c.text[sizeof(c.text) - 1] = 0;
	/* E0: relaxed: the count only hands out numbers; each record's seq orders its body */
	n = atomic_fetch_add_explicit(&ring->next, 1, memory_order_relaxed);
	if (seq_out)
		*seq_out = n;
	STEP(SHM_EVENT_STEP_CLAIMED);
	c.check = checksum(n, &c);
	r = record_at(ring, cap, n);
	odd = 2 * n + 1;
	/* E1: relaxed, then SQ0's fence below: the mark before the body */
	cur = atomic_load_explicit(&r->seq, memory_order_relaxed);
	do {
		if ((int64_t)(cur - odd) >= 0)
			goto out_bump; /* lapped before we began: a newer event holds the record */
	} while (!atomic_compare_exchange_weak_explicit(&r->seq, &cur, odd, memory_order_relaxed,
							memory_order_relaxed));
	/* SQ0 (shm/seqlock.h) for the odd value the CAS stored: pairs with SQ2 in
	 * shm_event_read(): a reader that sees a new body word sees odd */
	atomic_thread_fence(memory_order_release);
	STEP(SHM_EVENT_STEP_MARKED);
	/* E2 */
	shm_seq_store_body(EV_BODY(r), EV_BODY(&c), EV_HALF_BYTES);
	STEP(SHM_EVENT_STEP_HALF);
	shm_seq_store_body(EV_BODY(r) + EV_HALF_BYTES, EV_BODY(&c) + EV_HALF_BYTES,
			   EV_BODY_BYTES - EV_HALF_BYTES);
	/* E3: release: pairs with SQ3 in shm_event_read(): the body before 2n + 2. A failed
	 * CAS: a newer event's writer took the record; it publishes its own */
	cur = odd;
	atomic_compare_exchange_strong_explicit(&r->seq, &cur, odd + 1, memory_order_release,
						memory_order_relaxed);
out_bump:
	shm_change_bump(seg);
	return 0;
}

/* See event.h. */
uint32_t shm_event_capacity(const struct shm_seg *seg)
{
	uint32_t cap;

	return ring_at(seg, &cap) ? cap : 0;
}

/* See event.h. */
uint64_t shm_event_next(const struct shm_seg *seg)
{
	uint32_t cap;
	struct shm_event_ring *ring = ring_at(seg, &cap);

	/* relaxed: a bound only (E0 is relaxed: nothing is published through the count); each
	 * record's own seq word orders its body (SQ3 in the readers) */
	return ring ? atomic_load_explicit(&ring->next, memory_order_relaxed) : 0;
}

/* See event.h. */
int shm_event_read(const struct shm_seg *seg, uint64_t n, struct shm_event *out)
{
	struct shm_event_ring *ring;
	const struct shm_event *r;
	uint64_t next, done, s0, s1;
	uint32_t cap;

	ring = ring_at(seg, &cap);
	if (!ring)
		return -ENODATA;
	/* relaxed: bounds only; the record's seq decides */
	next = atomic_load_explicit(&ring->next, memory_order_relaxed);
	if ((int64_t)(n - next) >= 0)
		return -ENOENT;
	if (next - n > cap)
		return -ESTALE;
	r = record_at(ring, cap, n);
	done = 2 * n + 2;
	/* SQ3: pairs with E3 */
	s0 = shm_seq_read_begin(&r->seq);
	if (s0 != done)
		return (int64_t)(s0 - done) > 0 ? -ESTALE : -EAGAIN;
	shm_seq_load_body(EV_BODY(out), EV_BODY(r), EV_BODY_BYTES);
	/* SQ2: pairs with SQ0 in shm_event_append() */
	s1 = shm_seq_read_end(&r->seq);
	if (s1 != s0)
		return (int64_t)(s1 - done) > 0 ? -ESTALE : -EAGAIN;
	if (out->check != checksum(n, out))
		return -EAGAIN;
	atomic_store_explicit(&out->seq, n, memory_order_relaxed);
	out->name[sizeof(out->name) - 1] = 0;
	out->text[sizeof(out->text) - 1] = 0;
	return 0;
}

/* See event.h. */
uint32_t shm_event_scan(const struct shm_seg *seg, uint64_t *cursor, struct shm_event *out,
			uint32_t max, unsigned flags, struct shm_event_scan *st)
{
	uint32_t cap = shm_event_capacity(seg), got = 0;
	uint64_t next = shm_event_next(seg);

	st->held = false;
	if (!cap)
		return 0;
	while (got < max && (int64_t)(*cursor - next) < 0) {
		int r;

		if (next - *cursor > cap) {
			st->missed += next - cap - *cursor;
			*cursor = next - cap;
			continue;
		}
		r = shm_event_read(seg, *cursor, &out[got]);
		if (r == -EAGAIN && (flags & SHM_EVENT_HOLD)) {
			st->held = true;
			break;
		}
		if (r == -ENOENT || r == -ENODATA)
			break;
		if (!r)
			got++;
		else if (r == -ESTALE)
			st->missed++; /* overwritten between the bound and the read */
		else
			st->incomplete++;
		(*cursor)++;
	}
	return got;
}
