/*
 * test_numa: placement on a machine with two NUMA nodes or more, checked on the real
 * kernel: workers spread over the nodes, each bound to a core of its node, and each
 * worker's agents' mailboxes in that node's memory. This machine has one node: the test
 * skips here, and `scripts/test.sh --qemu` runs it in a 2-node qemu guest.
 */
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "shm/shm.h"
#include "workers/wrk_int.h"

#include "tests/run_test_util.h"

static const char *two_nodes = "[instance]\nworkers = 2\nplacement = spread\n"
			       "[segment]\nmax_agents = 32\nregistry_capacity = 128\n"
			       "max_procs = 8\n"
			       "[agent a]\ntype = echo\ncount = 4\nname = a-%u\nworker = 0\n"
			       "[agent b]\ntype = echo\ncount = 4\nname = b-%u\nworker = 1\n";

/* The node holding the segment's page at addr (move_pages() with no target: a query). */
static int node_of_page(void *addr)
{
	void *page = (void *)((uintptr_t)addr & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1));
	int status = -1;

	/* map it here first (a read of the shared page), or the query says -ENOENT */
	(void)*(volatile const uint8_t *)addr;
	if (move_pages(0, 1, &page, NULL, &status, 0))
		return -errno;
	return status;
}

static void test_numa_workers_and_mailboxes_on_their_nodes(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	int node[3] = {-1, -1, -1}, checked = 0;

	(void)state;
	if (numa_available() < 0 || numa_num_configured_nodes() < 2)
		skip_because("one NUMA node here: scripts/test.sh --qemu runs this in a 2-node "
			     "guest");
	rt_start(&r, "t-numa-", "spread", two_nodes, NULL);
	rt_wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, NULL, 0), 0);
	for (uint32_t w = 1; w <= 2; w++) {
		struct shm_proc *p = shm_proc_at(seg, w);
		pid_t pid = (pid_t)(atomic_load(&p->own) >> 32);
		cpu_set_t set;

		node[w] = atomic_load_explicit(&p->node, memory_order_relaxed);
		assert_true(node[w] >= 0);
		/* bound to one core, of its node */
		assert_int_equal(sched_getaffinity(pid, sizeof(set), &set), 0);
		assert_int_equal(CPU_COUNT(&set), 1);
		assert_true(CPU_ISSET(atomic_load_explicit(&p->core, memory_order_relaxed), &set));
		assert_int_equal(
			numa_node_of_cpu(atomic_load_explicit(&p->core, memory_order_relaxed)),
			node[w]);
	}
	/* spread: one worker per node */
	assert_true(node[1] != node[2]);
	/* every agent's mailbox, first and last page, in its worker's node */
	for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_agents; i++) {
		struct shm_agent *a = shm_agent_at(seg, i);
		uint32_t w = atomic_load(&a->worker);
		uint8_t *mb;

		if (w < 2 || w > 3 || atomic_load(&a->state) == SHM_AGENT_FREE)
			continue; /* worker + 1: slots 1 and 2 */
		mb = shm_mbox_at(seg, i);
		assert_int_equal(node_of_page(mb), node[w - 1]);
		assert_int_equal(
			node_of_page(mb + SHM_MBOX_STRIDE(shm_hdr(seg)->cfg.mbox_cells) - 1),
			node[w - 1]);
		checked++;
	}
	assert_int_equal(checked, 8);
	print_message("workers on nodes %d and %d; 8 mailboxes on their workers' nodes\n", node[1],
		      node[2]);
	shm_seg_detach(seg);
	rt_stop(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_numa_workers_and_mailboxes_on_their_nodes,
					  rt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
