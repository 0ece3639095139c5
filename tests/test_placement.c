/* test_placement: worker placement on hwloc synthetic topologies, and binding on this machine. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hwloc.h>

#include "supervisor/sup.h"

static hwloc_topology_t synthetic(const char *desc)
{
	hwloc_topology_t t;

	assert_int_equal(hwloc_topology_init(&t), 0);
	assert_int_equal(hwloc_topology_set_synthetic(t, desc), 0);
	assert_int_equal(hwloc_topology_load(t), 0);
	return t;
}

static void place(hwloc_topology_t t, const uint64_t *allowed, uint32_t n, struct sup_place *out,
		  int *nodes_used)
{
	struct sup_core cores[256];
	int nc = sup_topo_cores(t, allowed, cores, 256);

	assert_true(nc > 0);
	*nodes_used = sup_place_compute(cores, (uint32_t)nc, n, out);
}

/* 2 packages x 2 NUMA nodes x 4 cores: round robin over the 4 nodes, then cores. */
static void test_placement_two_packages_four_nodes(void **state)
{
	hwloc_topology_t t = synthetic("pack:2 numa:2 core:4 pu:1");
	struct sup_place p[20];
	static const int cpu[] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
	int nodes;

	(void)state;
	place(t, NULL, 20, p, &nodes);
	assert_int_equal(nodes, 4);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(p[i].core, cpu[i]);
		assert_int_equal(p[i].node, i % 4);
	}
	/* past one per core it wraps onto the same order */
	for (int i = 16; i < 20; i++)
		assert_int_equal(p[i].core, cpu[i - 16]);
	place(t, NULL, 2, p, &nodes);
	assert_int_equal(nodes, 2);
	assert_int_equal(p[0].node, 0);
	assert_int_equal(p[1].node, 1);
	hwloc_topology_destroy(t);
}

/* Uneven: a cpu restriction leaves node 0 with 3 cores, nodes 1 and 2 with 1, node 3 none. */
static void test_placement_uneven_restricted(void **state)
{
	hwloc_topology_t t = synthetic("pack:2 numa:2 core:4 pu:1");
	uint64_t allowed[SUP_MAX_CPUS / 64];
	struct sup_place p[7];
	static const int cpu[] = {0, 4, 8, 1, 2, 0, 4};
	static const int node[] = {0, 1, 2, 0, 0, 0, 1};
	int nodes;

	(void)state;
	assert_int_equal(sup_cpulist_parse("0-2,4,8", allowed), 0);
	place(t, allowed, 7, p, &nodes);
	assert_int_equal(nodes, 3);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(p[i].core, cpu[i]);
		assert_int_equal(p[i].node, node[i]);
	}
	hwloc_topology_destroy(t);
}

/*
 * A topology uneven in itself (not by a cpu restriction of ours): two packages with a node
 * each, the first with 3 cores, the second with 1 (hwloc_topology_restrict() removes the
 * others from the topology). Round robin over the nodes while both have cores, then the
 * bigger node's rest, then around again.
 */
static void test_placement_uneven_topology(void **state)
{
	hwloc_topology_t t = synthetic("pack:2 numa:1 core:3 pu:1");
	hwloc_bitmap_t keep = hwloc_bitmap_alloc();
	struct sup_place p[6];
	static const int cpu[] = {0, 3, 1, 2, 0, 3};
	static const int node[] = {0, 1, 0, 0, 0, 1};
	int nodes;

	(void)state;
	hwloc_bitmap_set_range(keep, 0, 3);
	assert_int_equal(hwloc_topology_restrict(t, keep, 0), 0);
	hwloc_bitmap_free(keep);
	assert_int_equal(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE), 4);
	assert_int_equal(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE), 2);
	place(t, NULL, 6, p, &nodes);
	assert_int_equal(nodes, 2);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(p[i].core, cpu[i]);
		assert_int_equal(p[i].node, node[i]);
	}
	hwloc_topology_destroy(t);
}

/* SMT: one worker per core, on the core's first PU; a restriction picks an allowed PU. */
static void test_placement_smt_first_pu(void **state)
{
	hwloc_topology_t t = synthetic("numa:1 core:3 pu:2");
	uint64_t allowed[SUP_MAX_CPUS / 64];
	struct sup_place p[3];
	int nodes;

	(void)state;
	place(t, NULL, 3, p, &nodes);
	assert_int_equal(nodes, 1);
	assert_int_equal(p[0].core, 0);
	assert_int_equal(p[1].core, 2);
	assert_int_equal(p[2].core, 4);
	assert_int_equal(sup_cpulist_parse("1,5", allowed), 0);
	place(t, allowed, 3, p, &nodes);
	assert_int_equal(p[0].core, 1);
	assert_int_equal(p[1].core, 5);
	assert_int_equal(p[2].core, 1);
	hwloc_topology_destroy(t);
}

/* The pure function: any input order, sparse node numbers, no cores. */
static void test_placement_pure_function(void **state)
{
	struct sup_core cores[] = {{9, 7}, {3, 2}, {1, 2}, {8, 7}, {5, 2}};
	struct sup_place p[5];

	(void)state;
	assert_int_equal(sup_place_compute(cores, 5, 5, p), 2);
	assert_int_equal(p[0].core, 1);
	assert_int_equal(p[1].core, 8);
	assert_int_equal(p[2].core, 3);
	assert_int_equal(p[3].core, 9);
	assert_int_equal(p[4].core, 5);
	assert_int_equal(p[1].node, 7);
	assert_int_equal(sup_place_compute(cores, 0, 1, p), -EINVAL);
}

static void test_placement_cpus_outside_topology(void **state)
{
	hwloc_topology_t t = synthetic("numa:1 core:2 pu:1");
	uint64_t allowed[SUP_MAX_CPUS / 64];
	struct sup_core cores[8];

	(void)state;
	assert_int_equal(sup_cpulist_parse("5-7", allowed), 0);
	assert_int_equal(sup_topo_cores(t, allowed, cores, 8), -ENOENT);
	hwloc_topology_destroy(t);
}

/* On this machine: a forked child binds to the first core the placement gives it. */
static void test_placement_bind_real(void **state)
{
	hwloc_topology_t t;
	struct sup_core cores[SUP_MAX_CPUS];
	struct sup_place p;
	int nc, st;
	pid_t pid;

	(void)state;
	assert_int_equal(hwloc_topology_init(&t), 0);
	assert_int_equal(hwloc_topology_load(t), 0);
	nc = sup_topo_cores(t, NULL, cores, SUP_MAX_CPUS);
	assert_true(nc >= 1);
	assert_int_equal(sup_place_compute(cores, (uint32_t)nc, 1, &p), 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cpu_set_t set;

		if (sup_place_bind(t, &p))
			_exit(1);
		if (sched_getaffinity(0, sizeof(set), &set) || CPU_COUNT(&set) != 1 ||
		    !CPU_ISSET(p.core, &set))
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	hwloc_topology_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placement_two_packages_four_nodes),
		cmocka_unit_test(test_placement_uneven_restricted),
		cmocka_unit_test(test_placement_uneven_topology),
		cmocka_unit_test(test_placement_smt_first_pu),
		cmocka_unit_test(test_placement_pure_function),
		cmocka_unit_test(test_placement_cpus_outside_topology),
		cmocka_unit_test(test_placement_bind_real),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
