/*
 * The test-support library (tests/support.c, linked into every test): what several tests
 * would otherwise write again. Include after <cmocka.h>.
 */
#ifndef TESTS_SUPPORT_H
#define TESTS_SUPPORT_H

#include "shm/shm.h"

/*
 * Create and publish segment `inst` from cfg (a stale one of that name removed first), and
 * claim a process slot in it as `role`, RUNNING. Fails the test on any error.
 */
struct shm_seg *ts_seg_make(const char *inst, const struct shm_cfg *cfg, enum shm_role role);
/* Detach seg and remove segment `inst`. */
void ts_seg_drop(struct shm_seg *seg, const char *inst);

#endif
