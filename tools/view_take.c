/*
 * One read-only snapshot of an instance for a tool that prints it and exits (types,
 * slo-check): attach read-only, take the view under the SIGBUS guard, detach, and say in one
 * sentence what went wrong (a truncated file, a region table that does not fit, another
 * error), naming the instance.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shm/shm.h"
#include "shm/view.h"
#include "tools/tools.h"

struct take {
	struct shm_view *v;
};

/* For shm_seg_guard(): the view made on the first call, then taken. */
static int take(const struct shm_seg *seg, void *arg)
{
	struct take *t = arg;
	int r;

	if (!t->v) {
		r = shm_view_create(seg, &t->v);
		if (r)
			return r;
	}
	return shm_view_take(seg, 3000000000ull, t->v);
}

/* See tools.h. */
int tool_view_take(const char *instance, struct shm_view **out, char *err, size_t errlen)
{
	struct take t = {0};
	struct shm_seg *seg;
	uint64_t bad = 0;
	int r;

	*out = NULL;
	r = shm_seg_attach(instance, SHM_ATTACH_RO | SHM_ATTACH_NOWAIT | SHM_ATTACH_UNREADY, 0,
			   &seg, err, errlen);
	if (r)
		return r;
	r = shm_seg_guard(seg, take, &t, &bad);
	if (r == -EFAULT)
		snprintf(err, errlen,
			 "instance '%s': byte %llu of its segment cannot be read (truncated, or a "
			 "hole a full /dev/shm cannot back)",
			 instance, (unsigned long long)bad);
	else if (r == -EUCLEAN)
		snprintf(err, errlen,
			 "instance '%s': its region table does not fit its segment: not read; "
			 "'shoal clean --force' removes it",
			 instance);
	else if (r)
		snprintf(err, errlen, "instance '%s': its segment could not be read: %s", instance,
			 strerror(-r));
	shm_seg_detach(seg);
	if (r) {
		shm_view_free(t.v);
		return r;
	}
	*out = t.v;
	return 0;
}
