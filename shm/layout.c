/* The layout: the region table as a pure function of the configuration. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shm/event.h"
#include "shm/shm.h"

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* Defaults: see shm_cfg. Sized so the default segment is about 25 MiB. */
void shm_cfg_default(struct shm_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_procs = 64;
	cfg->max_agents = 1024;
	cfg->reg_capacity = 16384;
	cfg->max_groups = 256;
	cfg->group_members = 256;
	cfg->mbox_cells = 256;
	cfg->max_msg = 4096;
	cfg->nworkers = 0; /* 0: one per core, decided by the supervisor */
	cfg->ckpt_bytes = 256;
	cfg->nnodes = 1;
	cfg->mode = 0600;
	cfg->max_monitors = 4096;
	cfg->max_pools = 16;
	cfg->pool_members = 64;
	cfg->max_vars = 1024;
	cfg->var_bytes = 256;
	cfg->max_rounds = 64;
	cfg->max_subs = 1024;
	cfg->events = SHM_EVENT_DEFAULT;
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			if (errlen)                                                                \
				snprintf(err, errlen, __VA_ARGS__);                                \
			return -EINVAL;                                                            \
		}                                                                                  \
	} while (0)

/* Ranges: chosen so every size computation below fits in 64 bits with room to spare. */
int shm_cfg_check(const struct shm_cfg *cfg, char *err, size_t errlen)
{
	CHECK(cfg->max_procs >= 2 && cfg->max_procs <= SHM_MAX_PROCS, "max_procs %u: must be 2..%u",
	      cfg->max_procs, SHM_MAX_PROCS);
	CHECK(cfg->max_agents >= 1 && cfg->max_agents <= (1u << 20), "max_agents %u: must be 1..%u",
	      cfg->max_agents, 1u << 20);
	CHECK(is_pow2(cfg->reg_capacity) && cfg->reg_capacity >= 16 &&
		      cfg->reg_capacity <= (1u << 24),
	      "registry capacity %u: must be a power of two, 16..%u", cfg->reg_capacity, 1u << 24);
	CHECK(cfg->max_groups <= (1u << 16), "max_groups %u: at most %u", cfg->max_groups,
	      1u << 16);
	CHECK(cfg->group_members <= (1u << 16), "group_members %u: at most %u", cfg->group_members,
	      1u << 16);
	CHECK(is_pow2(cfg->mbox_cells) && cfg->mbox_cells >= 16 && cfg->mbox_cells <= (1u << 20),
	      "mailbox cells %u: must be a power of two, 16..%u", cfg->mbox_cells, 1u << 20);
	CHECK(cfg->max_msg >= 16 && cfg->max_msg <= (1u << 16),
	      "max message %u bytes: must be 16..%u", cfg->max_msg, 1u << 16);
	/* a message (32-byte header + payload) must fit in half a ring */
	CHECK((uint64_t)cfg->max_msg + 32 <= (uint64_t)cfg->mbox_cells * SHM_MBOX_CELL / 2,
	      "max message %u bytes does not fit in half a mailbox of %u cells; raise "
	      "mailbox cells or lower max message",
	      cfg->max_msg, cfg->mbox_cells);
	CHECK(cfg->nworkers <= SHM_MAX_PROCS - 2, "nworkers %u: at most %u", cfg->nworkers,
	      SHM_MAX_PROCS - 2);
	CHECK(cfg->ckpt_bytes <= (1u << 20), "checkpoint bytes %u: at most %u", cfg->ckpt_bytes,
	      1u << 20);
	CHECK(cfg->nnodes >= 1 && cfg->nnodes <= 64, "nnodes %u: must be 1..64", cfg->nnodes);
	CHECK(cfg->max_monitors <= (1u << 20), "max_monitors %u: at most %u", cfg->max_monitors,
	      1u << 20);
	CHECK((cfg->mode & ~0777u) == 0, "mode %o: only permission bits", cfg->mode);
	CHECK(cfg->max_rounds <= SHM_ROUND_MAX, "rounds %u: at most %u", cfg->max_rounds,
	      SHM_ROUND_MAX);
	CHECK(cfg->max_inboxes <= cfg->max_agents, "client_inboxes %u: at most max_agents (%u)",
	      cfg->max_inboxes, cfg->max_agents);
	CHECK(cfg->max_pools <= 4096, "pools %u: at most 4096", cfg->max_pools);
	CHECK(cfg->pool_members <= 65536, "pool_members %u: at most 65536", cfg->pool_members);
	CHECK(!cfg->max_pools || cfg->pool_members,
	      "pool_members is 0 but pools is %u: give each pool room for members", cfg->max_pools);
	CHECK(cfg->max_vars <= SHM_VAR_MAX, "variables %u: at most %u", cfg->max_vars, SHM_VAR_MAX);
	CHECK(cfg->var_bytes % 8 == 0, "variable_bytes %u: must be a multiple of 8",
	      cfg->var_bytes);
	CHECK(cfg->var_bytes >= 8 && cfg->var_bytes <= SHM_VAR_BYTES_MAX,
	      "variable_bytes %u: must be 8..%u", cfg->var_bytes, SHM_VAR_BYTES_MAX);
	CHECK(cfg->max_subs <= SHM_VAR_SUB_MAX, "subscriptions %u: at most %u", cfg->max_subs,
	      SHM_VAR_SUB_MAX);
	CHECK(!cfg->events || (is_pow2(cfg->events) && cfg->events >= SHM_EVENT_MIN &&
			       cfg->events <= SHM_EVENT_MAX),
	      "events %u: 0 (no event ring) or a power of two, %u..%u", cfg->events, SHM_EVENT_MIN,
	      SHM_EVENT_MAX);
	for (unsigned i = 0; i < sizeof(cfg->reserved2) / sizeof(cfg->reserved2[0]); i++)
		CHECK(cfg->reserved2[i] == 0, "reserved configuration word %u is not zero", i);
	return 0;
}

/* Agent slots per NUMA node arena. */
static uint32_t per_node(const struct shm_cfg *cfg)
{
	return (cfg->max_agents + cfg->nnodes - 1) / cfg->nnodes;
}

static uint64_t arena_bytes(const struct shm_cfg *cfg)
{
	return round_up(per_node(cfg) * SHM_MBOX_STRIDE(cfg->mbox_cells), SHM_PAGE);
}

uint32_t shm_mbox_node(const struct shm_cfg *cfg, uint32_t slot)
{
	return slot / per_node(cfg);
}

void shm_mbox_node_range(const struct shm_cfg *cfg, uint32_t node, uint32_t *first, uint32_t *count)
{
	uint32_t pn = per_node(cfg);
	uint32_t f = node * pn;

	if (f >= cfg->max_agents) {
		*first = cfg->max_agents;
		*count = 0;
		return;
	}
	*first = f;
	*count = cfg->max_agents - f < pn ? cfg->max_agents - f : pn;
}

uint64_t shm_mbox_off(const struct shm_cfg *cfg, const struct shm_region *mbox_region,
		      uint32_t slot)
{
	uint32_t pn = per_node(cfg);

	return mbox_region->off + (uint64_t)(slot / pn) * arena_bytes(cfg) +
	       (uint64_t)(slot % pn) * SHM_MBOX_STRIDE(cfg->mbox_cells);
}

uint64_t shm_layout_compute(const struct shm_cfg *cfg, struct shm_region regions[SHM_R_COUNT])
{
	uint64_t size[SHM_R_COUNT] = {0}; /* a region id not defined here: an empty region */
	uint64_t off = SHM_HDR_SIZE;

	if (shm_cfg_check(cfg, NULL, 0))
		return 0;
	size[SHM_R_PROCS] = (uint64_t)cfg->max_procs * sizeof(struct shm_proc);
	size[SHM_R_AGENTS] = (uint64_t)cfg->max_agents * sizeof(struct shm_agent);
	size[SHM_R_REGISTRY] = shm_reg_region_size(cfg);
	size[SHM_R_GROUPS] = shm_grp_region_size(cfg);
	size[SHM_R_MBOX] = (uint64_t)cfg->nnodes * arena_bytes(cfg);
	size[SHM_R_CKPT] = (uint64_t)cfg->max_agents * 2 * round_up(cfg->ckpt_bytes, SHM_ALIGN);
	size[SHM_R_TELEMETRY] = (uint64_t)cfg->max_procs * sizeof(struct shm_telem);
	size[SHM_R_MONITORS] = (uint64_t)cfg->max_monitors * sizeof(struct shm_monitor);
	size[SHM_R_POOLS] = shm_pool_region_size(cfg);
	size[SHM_R_VARS] = shm_var_region_size(cfg);
	size[SHM_R_ROUNDS] = (uint64_t)cfg->max_rounds * SHM_ROUND_STRIDE(cfg->group_members);
	size[SHM_R_TYPES] = sizeof(struct shm_types);
	size[SHM_R_HIST] = (uint64_t)cfg->max_procs * SHM_HIST_OPS * sizeof(struct shm_hist);
	size[SHM_R_EVENTS] = shm_event_region_size(cfg);
	size[SHM_R_DIST] = sizeof(struct shm_dist);
	for (int i = 0; i < SHM_R_COUNT; i++) {
		/* mbind-ed regions start on a page, the others on a cache line */
		off = round_up(off, i == SHM_R_MBOX ? SHM_PAGE : SHM_ALIGN);
		regions[i].off = off;
		regions[i].size = size[i];
		off += size[i];
	}
	return round_up(off, SHM_PAGE);
}

/* See shm.h. Any process. */
uint32_t shm_cfg_inbox_budget(const struct shm_cfg *cfg)
{
	if (cfg->max_inboxes)
		return cfg->max_inboxes;
	return cfg->max_agents / 4 ? cfg->max_agents / 4 : 1;
}
