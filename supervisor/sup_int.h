/* supervisor: what its own .c files share, and the worker contract (workers/wrk.h). */
#ifndef SUP_SUP_INT_H
#define SUP_SUP_INT_H

#include <stdint.h>

#include "shm/shm.h"
#include "shoal/shoal.h"

#if __has_include("workers/wrk.h")
#include "workers/wrk.h"
#else
/*
 * Until branch `wrk` is merged: the contract with the worker helper, declared here and
 * stubbed (weak) in supervisor/stubs.c. Removed when workers/wrk.h exists.
 */
#define WRK_EXIT_MEMCAP 86
struct wrk_args {
	uint32_t windex;
	uint32_t proc_slot;
	int32_t core;
	int32_t node;
	int ready_fd;
};
int wrk_main(struct shm_seg *seg, const struct wrk_args *args);
int wrk_repair_worker(struct shm_seg *seg, uint32_t proc_slot);
int wrk_agent_spawn(struct shm_seg *seg, const char *type, const char *name, uint32_t proc_slot,
		    shoal_handle_t *out);
#endif

#endif
