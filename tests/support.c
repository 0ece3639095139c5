/* The test-support library: see tests/support.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/support.h"

/* See support.h. */
struct shm_seg *ts_seg_make(const char *inst, const struct shm_cfg *cfg, enum shm_role role)
{
	struct shm_seg *seg = NULL;
	char err[256] = "";

	shm_seg_unlink(inst);
	if (shm_seg_create(inst, cfg, &seg, err, sizeof(err)))
		fail_msg("creating segment '%s': %s", inst, err);
	shm_seg_publish(seg);
	assert_int_equal(shm_proc_claim(seg, role, false), 0);
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	return seg;
}

/* See support.h. */
void ts_seg_drop(struct shm_seg *seg, const char *inst)
{
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
}
