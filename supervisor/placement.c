/*
 * Placement: which core and NUMA node each worker gets (a pure function, testable on
 * synthetic topologies) and the binding calls that apply it.
 */
#include <errno.h>
#include <stdbool.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <numaif.h>
#include <unistd.h>

#include <hwloc.h>

#include "supervisor/sup.h"

static int core_cmp(const void *a, const void *b)
{
	const struct sup_core *x = a, *y = b;

	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	return x->cpu < y->cpu ? -1 : x->cpu > y->cpu;
}

/* See sup.h. Callers: any thread (pure). */
int sup_place_compute(const struct sup_core *cores, uint32_t ncores, uint32_t n,
		      struct sup_place *out)
{
	struct sup_core *s, *order;
	uint32_t *first, *count, nnodes = 0, k = 0;

	if (!ncores)
		return -EINVAL;
	s = malloc(ncores * sizeof(*s));
	order = malloc(ncores * sizeof(*order));
	first = calloc(ncores, sizeof(*first));
	count = calloc(ncores, sizeof(*count));
	if (!s || !order || !first || !count) {
		free(s);
		free(order);
		free(first);
		free(count);
		return -ENOMEM;
	}
	memcpy(s, cores, ncores * sizeof(*s));
	qsort(s, ncores, sizeof(*s), core_cmp);
	/* group by node: first[g] .. first[g] + count[g] */
	for (uint32_t i = 0; i < ncores; i++) {
		if (i == 0 || s[i].node != s[i - 1].node) {
			first[nnodes] = i;
			nnodes++;
		}
		count[nnodes - 1]++;
	}
	/* the order: round r takes core r of each node that still has one; then wrap */
	for (uint32_t r = 0; k < ncores; r++)
		for (uint32_t g = 0; g < nnodes; g++)
			if (r < count[g])
				order[k++] = s[first[g] + r];
	for (uint32_t i = 0; i < n; i++) {
		out[i].core = order[i % ncores].cpu;
		out[i].node = order[i % ncores].node;
	}
	free(s);
	free(order);
	free(first);
	free(count);
	return (int)(nnodes < n ? nnodes : n);
}

static bool cpu_allowed(const uint64_t *allowed, int cpu)
{
	if (!allowed)
		return true;
	if (cpu < 0 || cpu >= (int)SUP_MAX_CPUS)
		return false;
	return allowed[cpu / 64] >> (cpu % 64) & 1;
}

/* See sup.h. Callers: any thread. */
int sup_topo_cores(struct hwloc_topology *topo, const uint64_t *allowed, struct sup_core *out,
		   uint32_t cap)
{
	int ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
	uint32_t k = 0;

	for (int i = 0; i < ncores && k < cap; i++) {
		hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)i);
		hwloc_obj_t pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, core->cpuset,
									  HWLOC_OBJ_PU, NULL);
		int node = -1;

		/* the first allowed PU of the core stands for it */
		while (pu && !cpu_allowed(allowed, (int)pu->os_index))
			pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, core->cpuset,
								      HWLOC_OBJ_PU, pu);
		if (!pu)
			continue;
		if (core->nodeset && !hwloc_bitmap_iszero(core->nodeset))
			node = hwloc_bitmap_first(core->nodeset);
		out[k].cpu = (int32_t)pu->os_index;
		out[k].node = node < 0 ? 0 : node;
		k++;
	}
	return k ? (int)k : -ENOENT;
}

/*
 * Already on exactly this cpu (the supervisor's pre_bind)? hwloc's process-wide bind lists
 * /proc/self/task first, which costs a restart more than this check.
 */
static bool is_bound_to(int cpu)
{
	cpu_set_t cur;

	if (cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(cur), &cur) < 0)
		return false;
	return CPU_COUNT(&cur) == 1 && CPU_ISSET(cpu, &cur);
}

/* See sup.h. Callers: the forked worker, before it runs agents. */
int sup_place_bind(struct hwloc_topology *topo, const struct sup_place *p)
{
	bool cpu = p->core >= 0 && !is_bound_to(p->core);
	bool mem = p->node >= 0 && hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE) > 1;
	hwloc_bitmap_t set;
	int r = 0;

	/* a warm spare is usually bound already, on one node: no allocation on its way up */
	if (!cpu && !mem)
		return 0;
	set = hwloc_bitmap_alloc();
	if (!set)
		return -ENOMEM;
	if (cpu) {
		hwloc_bitmap_only(set, (unsigned)p->core);
		if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) < 0)
			r = -errno;
	}
	if (!r && mem) {
		hwloc_bitmap_only(set, (unsigned)p->node);
		if (hwloc_set_membind(topo, set, HWLOC_MEMBIND_BIND,
				      HWLOC_MEMBIND_PROCESS | HWLOC_MEMBIND_BYNODESET) < 0)
			r = -errno;
	}
	hwloc_bitmap_free(set);
	return r;
}

/* See sup.h. Callers: the supervisor. */
int sup_mem_bind_node(void *addr, size_t len, int node)
{
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)addr + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
	uintptr_t e = ((uintptr_t)addr + len) & ~((uintptr_t)page - 1);
	unsigned long mask[4] = {0};

	if (node < 0 || node >= 256)
		return -EINVAL;
	if (e <= a)
		return 0;
	mask[node / 64] = 1ul << (node % 64);
	if (mbind((void *)a, e - a, MPOL_BIND, mask, 256, MPOL_MF_MOVE) < 0)
		return -errno;
	return 0;
}
