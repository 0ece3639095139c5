/* The registry: (namespace, name) -> handle + metadata. Placeholder until implemented. */
#include "shm/shm.h"

uint64_t shm_reg_region_size(const struct shm_cfg *cfg)
{
	return 64 + (uint64_t)(cfg->reg_capacity / 8) * 64 + (uint64_t)cfg->reg_capacity * 128;
}

uint64_t shm_grp_region_size(const struct shm_cfg *cfg)
{
	return (uint64_t)cfg->max_groups * (128 + (uint64_t)cfg->group_members * 8);
}
