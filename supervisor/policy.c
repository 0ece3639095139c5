/* The restart policy: intensity (at most R restarts in P) and backoff between restarts. */
#include <errno.h>
#include <stdlib.h>

#include "supervisor/sup.h"

/* See sup.h. Callers: the supervisor. */
int sup_intensity_init(struct sup_intensity *in, const struct sup_policy *p)
{
	in->cap = p->intensity + 1;
	in->n = 0;
	in->next = 0;
	in->t = calloc(in->cap, sizeof(*in->t));
	return in->t ? 0 : -ENOMEM;
}

/* See sup.h. Callers: the supervisor. */
void sup_intensity_free(struct sup_intensity *in)
{
	free(in->t);
	in->t = NULL;
}

/* See sup.h. Callers: the supervisor. */
void sup_intensity_note(struct sup_intensity *in, uint64_t now_ns)
{
	in->t[in->next] = now_ns;
	in->next = (in->next + 1) % in->cap;
	if (in->n < in->cap)
		in->n++;
}

/* See sup.h. Callers: the supervisor. */
bool sup_intensity_is_exceeded(const struct sup_intensity *in, const struct sup_policy *p)
{
	uint64_t newest, oldest;

	/* R+1 restarts remembered: exceeded when the oldest of them is inside the window */
	if (in->n < in->cap)
		return false;
	newest = in->t[(in->next + in->cap - 1) % in->cap];
	oldest = in->t[in->next % in->cap];
	return newest - oldest < (uint64_t)p->period_ms * 1000000u;
}

/* See sup.h. Callers: any thread (pure). */
uint32_t sup_backoff_ms(const struct sup_policy *p, uint32_t streak)
{
	uint64_t d = p->backoff_initial_ms;
	uint32_t steps;

	if (streak <= 1 && !p->backoff_first)
		return 0;
	steps = streak - (p->backoff_first ? 1 : 2);
	for (uint32_t i = 0; i < steps && d < p->backoff_max_ms; i++)
		d *= p->backoff_factor;
	return d > p->backoff_max_ms ? p->backoff_max_ms : (uint32_t)d;
}
