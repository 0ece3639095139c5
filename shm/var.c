/*
 * Coordination variables: named int64, double or blob values in the segment.
 */
#include <errno.h>
#include <string.h>

#include "shm/shm.h"
#include "shm/var_int.h"

/*
 * Bytes of the variables region for cfg: the header, a commit record per process slot, the
 * variables. 0 without variables. Pure; the layout (shm_layout_compute()) calls it.
 */
uint64_t shm_var_region_size(const struct shm_cfg *cfg)
{
	if (!cfg->max_vars)
		return 0;
	return SHM_VAR_VARS_OFF(cfg->max_procs, cfg->var_bytes) +
	       (uint64_t)cfg->max_vars * SHM_VAR_STRIDE(cfg->var_bytes);
}
