/*
 * shoal stress: the checker's bookkeeping (tools/stress.h): the message format, the
 * per-pair sequence books and their final judgement. Pure functions of their arguments.
 */
#include <errno.h>
#include <string.h>

#include "tools/stress.h"

static uint64_t fnv1a(uint64_t h, const void *p, uint32_t n)
{
	const unsigned char *b = p;

	for (uint32_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint16_t fill_len(uint64_t seq)
{
	return (uint16_t)((seq * 7u) % (STRESS_FILL_MAX + 1u));
}

static uint64_t payload_sum(const unsigned char *buf, uint32_t len)
{
	struct stress_payload hd;
	uint64_t h = 0xcbf29ce484222325ull;

	memcpy(&hd, buf, sizeof(hd));
	hd.sum = 0;
	h = fnv1a(h, &hd, sizeof(hd));
	return fnv1a(h, buf + sizeof(hd), len - (uint32_t)sizeof(hd));
}

/* See stress.h. Any process. */
uint32_t stress_payload_make(void *buf, uint16_t kind, uint16_t from, uint16_t to, uint64_t seq)
{
	unsigned char *b = buf;
	struct stress_payload hd = {
		.magic = STRESS_MAGIC,
		.kind = kind,
		.from = from,
		.to = to,
		.fill = fill_len(seq),
		.seq = seq,
	};
	uint32_t len = (uint32_t)sizeof(hd) + hd.fill;

	for (uint32_t i = 0; i < hd.fill; i++)
		b[sizeof(hd) + i] = (unsigned char)(seq + i * 31u);
	memcpy(b, &hd, sizeof(hd));
	hd.sum = payload_sum(b, len);
	memcpy(b, &hd, sizeof(hd));
	return len;
}

/* See stress.h. Any process. */
int stress_payload_check(const void *data, uint32_t len, struct stress_payload *out)
{
	struct stress_payload hd;

	if (!data || len < sizeof(hd))
		return -EBADMSG;
	memcpy(&hd, data, sizeof(hd));
	if (hd.magic != STRESS_MAGIC || hd.fill != fill_len(hd.seq) ||
	    len != sizeof(hd) + hd.fill || hd.sum != payload_sum(data, len))
		return -EBADMSG;
	*out = hd;
	return 0;
}

/* See stress.h. The sender's process. */
void stress_pair_begin(struct stress_pair *p, uint64_t last)
{
	/* S0: pairs with the checker's acquire load of infl after the sender died. */
	atomic_store_explicit(&p->infl, last, memory_order_release);
}

/* See stress.h. The sender's process. */
void stress_pair_commit(struct stress_pair *p, uint64_t seq)
{
	/* S1: pairs with the checker's acquire load of next: committed after the send. */
	if (seq + 1 > atomic_load_explicit(&p->next, memory_order_relaxed))
		atomic_store_explicit(&p->next, seq + 1, memory_order_release);
}

/* See stress.h. The sender's process. */
void stress_pair_end(struct stress_pair *p)
{
	/* S2: after the commits (S1): a death from here leaves no maybe behind. */
	atomic_store_explicit(&p->infl, 0, memory_order_release);
}

static void range_add(struct stress_range *r, _Atomic uint32_t *n, _Atomic uint32_t *over,
		      uint64_t lo, uint64_t hi)
{
	/* relaxed: one writer per side (stress.h) */
	uint32_t k = atomic_load_explicit(n, memory_order_relaxed);

	/* a range that continues the last one extends it (a sender's failed calls in a row) */
	if (k && r[k - 1].hi + 1 == lo) {
		r[k - 1].hi = hi;
		return;
	}
	if (k >= STRESS_RANGES) {
		atomic_fetch_add_explicit(over, 1, memory_order_relaxed);
		return;
	}
	r[k].lo = lo;
	r[k].hi = hi;
	/* R0: pairs with the acquire load of the count in stress_pair_check(). */
	atomic_store_explicit(n, k + 1, memory_order_release);
}

/* See stress.h. The sender's process, before it sends anything. */
void stress_pair_recover(struct stress_pair *p)
{
	/* S1/S0 (acquire): a dead predecessor's commits and in-flight mark, as it left them */
	uint64_t next = atomic_load_explicit(&p->next, memory_order_acquire);
	uint64_t infl = atomic_load_explicit(&p->infl, memory_order_acquire);

	if (next == 0)
		next = 1;
	if (infl >= next) {
		range_add(p->maybe, &p->nmaybe, &p->maybe_over, next, infl);
		next = infl + 1;
	}
	/* S1, S2 as in commit and end: the new incarnation starts from a pair at rest */
	atomic_store_explicit(&p->next, next, memory_order_release);
	atomic_store_explicit(&p->infl, 0, memory_order_release);
}

static bool in_ranges(const struct stress_range *r, uint32_t n, uint64_t seq)
{
	for (uint32_t i = 0; i < n; i++)
		if (seq >= r[i].lo && seq <= r[i].hi)
			return true;
	return false;
}

/* See stress.h. The receiver's process. */
enum stress_note stress_pair_note(struct stress_pair *p, uint64_t seq, bool redelivered)
{
	/* relaxed: the receiver is the side's one writer */
	uint64_t hi = atomic_load_explicit(&p->hi, memory_order_relaxed);
	uint32_t ng = atomic_load_explicit(&p->ngap, memory_order_relaxed);

	if (redelivered)
		atomic_fetch_add_explicit(&p->redelivered, 1, memory_order_relaxed);
	if (seq > hi) {
		/*
		 * The gap first, then hi: killed between the two, the message comes again
		 * (flagged) and finds the gap already there (seq > hi still), so it adds it
		 * once more; the checker's ranges may overlap, which it allows.
		 */
		if (seq > hi + 1)
			range_add(p->gap, &p->ngap, &p->gap_over, hi + 1, seq - 1);
		/* N0: pairs with the checker's acquire load of hi. */
		atomic_store_explicit(&p->hi, seq, memory_order_release);
		return STRESS_NEW;
	}
	if (redelivered)
		return STRESS_REDELIVERY;
	if (seq < hi && in_ranges(p->gap, ng, seq)) {
		atomic_fetch_add_explicit(&p->ooo, 1, memory_order_relaxed);
		return STRESS_OOO;
	}
	atomic_fetch_add_explicit(&p->dup, 1, memory_order_relaxed);
	return STRESS_DUP;
}

/* See stress.h. Any process, once the pair is at rest. */
void stress_pair_check(const struct stress_pair *p, struct stress_pair_result *r)
{
	/* S1, S0, N0, R0 (acquire): the sender's and receiver's books, then their ranges */
	uint64_t next = atomic_load_explicit(&p->next, memory_order_acquire);
	uint64_t infl = atomic_load_explicit(&p->infl, memory_order_acquire);
	uint64_t hi = atomic_load_explicit(&p->hi, memory_order_acquire);
	uint32_t nm = atomic_load_explicit(&p->nmaybe, memory_order_acquire);
	uint32_t ng = atomic_load_explicit(&p->ngap, memory_order_acquire);
	struct stress_range maybe[STRESS_RANGES + 1];
	uint64_t top;

	memset(r, 0, sizeof(*r));
	if (next == 0)
		next = 1;
	memcpy(maybe, p->maybe, sizeof(p->maybe));
	/* a sender that died (or is at rest) with a send under way: those may not have gone */
	if (infl >= next)
		maybe[nm++] = (struct stress_range){next, infl};
	r->uncheckable = atomic_load_explicit(&p->maybe_over, memory_order_relaxed) ||
			 atomic_load_explicit(&p->gap_over, memory_order_relaxed);
	for (uint32_t i = 0; i < nm; i++)
		if (maybe[i].lo < next)
			r->maybe += (maybe[i].hi < next ? maybe[i].hi : next - 1) - maybe[i].lo + 1;
	r->sent = next - 1 - r->maybe;
	/* every number up to the highest that went or came must have come, unless maybe */
	top = hi > next - 1 ? hi : next - 1;
	/* without a gap every number up to hi came: look only past it */
	if (!ng)
		r->delivered = hi;
	for (uint64_t s = ng ? 1 : hi + 1; s <= top; s++) {
		bool came = s <= hi && !in_ranges(p->gap, ng, s);

		if (came) {
			r->delivered++;
			continue;
		}
		if (in_ranges(maybe, nm, s))
			continue;
		if (!r->lost)
			r->first_lost = s;
		r->lost++;
	}
}

/* See stress.h. Any process. */
void stress_violation_note(struct stress_violation *v, uint32_t kind, uint32_t from, uint32_t to,
			   uint64_t seq, uint64_t aux)
{
	uint32_t zero = 0;

	/* V0: one claimer; its release of 2 pairs with the reader's acquire of set. */
	if (!atomic_compare_exchange_strong_explicit(&v->set, &zero, 1, memory_order_acquire,
						     memory_order_relaxed))
		return;
	v->kind = kind;
	v->from = from;
	v->to = to;
	v->seq = seq;
	v->aux = aux;
	atomic_store_explicit(&v->set, 2, memory_order_release);
}
