/*
 * The supervisor: creates the segment, forks the workers, watches them through pidfds in
 * its io_uring (plus a signalfd and a timer), repairs after a death and restarts by the
 * configured strategy and policy. sup_int.h says which file does what.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hwloc.h>
#include <liburing.h>

#include "ipc/ipc.h"
#include "ipc/uring_futex.h"
#include "shm/log.h"
#include "shm/registry.h"
#include "shm/trace.h"
#include "shm/var.h"
#include "shoal/agent.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

/* --- setup --- */

static int place_workers(struct sup *s, uint32_t *nnodes)
{
	uint64_t set[SUP_MAX_CPUS / 64];
	struct sup_core *cores;
	struct sup_place *pl;
	int nc, r;

	*nnodes = 1;
	if (hwloc_topology_init(&s->topo) < 0 || hwloc_topology_load(s->topo) < 0) {
		s->topo = NULL;
		return -ENODEV;
	}
	if (s->c->cpus[0] && sup_cpulist_parse(s->c->cpus, set))
		return -EINVAL;
	cores = calloc(SUP_MAX_CPUS, sizeof(*cores));
	if (!cores)
		return -ENOMEM;
	nc = sup_topo_cores(s->topo, s->c->cpus[0] ? set : NULL, cores, SUP_MAX_CPUS);
	if (nc < 0) {
		free(cores);
		fprintf(stderr, "shoal: no usable core in cpus '%s'\n", s->c->cpus);
		return -ENOENT;
	}
	if (!s->n)
		s->n = (uint32_t)nc;
	pl = calloc(s->n, sizeof(*pl));
	if (!pl) {
		free(cores);
		return -ENOMEM;
	}
	r = sup_place_compute(cores, (uint32_t)nc, s->n, pl);
	free(cores);
	if (r < 0) {
		free(pl);
		return r;
	}
	/* mailbox arena k is NUMA node k: the agent spawner uses the worker's node as its hint */
	*nnodes = 1;
	for (uint32_t i = 0; i < s->n; i++)
		if (pl[i].node >= 0 && (uint32_t)pl[i].node + 1 > *nnodes)
			*nnodes = (uint32_t)pl[i].node + 1 > 64 ? 64 : (uint32_t)pl[i].node + 1;
	s->w = calloc(s->n, sizeof(*s->w));
	/* the bound on queued worker events: struct sup_wqueue */
	s->q.cap = 2 * s->n + 2;
	s->q.ev = calloc(s->q.cap, sizeof(*s->q.ev));
	if (!s->w || !s->q.ev) {
		free(pl);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->n; i++) {
		s->w[i].place = pl[i];
		if (s->c->placement == SUP_PLACE_NONE)
			s->w[i].place.core = -1;
	}
	free(pl);
	return 0;
}

/* Mailbox arena n holds the mailboxes of agents placed on node n: bind it there. */
static void bind_arenas(struct sup *s)
{
	const struct shm_hdr *h = shm_hdr(s->seg);
	uint64_t used = 0;

	if (h->cfg.nnodes < 2 || !s->topo ||
	    hwloc_get_nbobjs_by_type(s->topo, HWLOC_OBJ_NUMANODE) < 2)
		return;
	for (uint32_t i = 0; i < s->n; i++)
		if (s->w[i].place.node >= 0 && s->w[i].place.node < 64)
			used |= 1ull << s->w[i].place.node;
	for (uint32_t n = 0; n < h->cfg.nnodes; n++) {
		uint32_t first, count;
		uint64_t off;
		int r;

		if (!(used >> n & 1))
			continue;
		shm_mbox_node_range(&h->cfg, n, &first, &count);
		if (!count)
			continue;
		off = shm_mbox_off(&h->cfg, &h->regions[SHM_R_MBOX], first);
		r = sup_mem_bind_node(s->seg->base + off,
				      count * SHM_MBOX_STRIDE(h->cfg.mbox_cells), (int)n);
		if (r)
			fprintf(stderr, "shoal: binding the mailboxes of node %u: %s\n", n,
				strerror(-r));
	}
}

/* Worker index for the i-th agent of a spec (round robin over workers unless pinned). */
static uint32_t agent_worker(const struct sup *s, const struct sup_agent_spec *a, uint32_t i,
			     uint32_t *rr)
{
	(void)i;
	if (a->worker >= 0)
		return (uint32_t)a->worker;
	return (*rr)++ % s->n;
}

static int spawn_agents(struct sup *s)
{
	uint32_t rr = 0;

	for (uint32_t k = 0; k < s->c->nagents; k++) {
		const struct sup_agent_spec *a = &s->c->agents[k];

		if (a->worker >= 0 && (uint32_t)a->worker >= s->n) {
			fprintf(stderr,
				"shoal: %s:%d: [agent %s]: worker %d, but there are %u "
				"workers\n",
				s->c->source, a->worker_line, a->section, a->worker, s->n);
			return -EINVAL;
		}
		for (uint32_t i = 0; i < a->count; i++) {
			char name[80];
			shoal_handle_t h;
			int r;

			sup_agent_name(a, i, name, sizeof(name));
			r = wrk_agent_spawn(s->seg, a->type, name, 1 + agent_worker(s, a, i, &rr),
					    &h);
			if (r == -EINVAL && !wrk_type_is_known(a->type)) {
				fprintf(stderr,
					"shoal: %s:%d: [agent %s]: unknown agent type '%s' "
					"(built in:",
					s->c->source, a->line, a->section, a->type);
				for (const char *const *t = wrk_builtin_type_names; *t; t++)
					fprintf(stderr, " %s", *t);
				fprintf(stderr, "; or load a library under [types])\n");
				return r;
			}
			if (r) {
				fprintf(stderr,
					"shoal: %s:%d: [agent %s]: starting agent '%s': %s\n",
					s->c->source, a->line, a->section, name, strerror(-r));
				return r;
			}
		}
	}
	return 0;
}

/* Open the control inbox (spawn/stop requests) and queue its first wait in the ring. */
static int open_ctl(struct sup *s)
{
	int32_t *nodes = calloc(s->n ? s->n : 1, sizeof(*nodes));
	int r;

	if (!nodes)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->n; i++)
		nodes[i] = s->w[i].place.node;
	r = sup_ctl_open(s->seg, nodes, s->n, &s->ctl);
	free(nodes);
	if (!r)
		sup_ctl_on_wake(s->ctl, &s->ring, UD(K_CTL, 0, 0), 0);
	return r;
}

/*
 * Whether we may move a SCHED_IDLE child back to SCHED_OTHER: the kernel asks for
 * CAP_SYS_NICE or an RLIMIT_NICE that allows nice 0 (20 - 0). Root passes.
 */
static bool may_unidle(void)
{
	struct rlimit rl;

	if (geteuid() == 0)
		return true;
	return getrlimit(RLIMIT_NICE, &rl) == 0 && rl.rlim_cur >= 20;
}

/*
 * The types this instance can start into the segment, for `shoal types` (built in, the
 * host program's, the [types] libraries' names from their probes): before any worker.
 */
static void publish_types(struct shm_seg *seg, const char *instance)
{
	static struct shm_type_entry e[SHM_TYPES_MAX];
	uint32_t n = wrk_types_list(e, SHM_TYPES_MAX);
	int r = shm_types_publish(seg, e, n);

	/* a segment of this layout has the table and n is capped: a failure is a bug */
	if (r)
		fprintf(stderr,
			"shoal: instance '%s': writing its agent types table: %s; 'shoal types' "
			"will fail (a bug: please report it)\n",
			instance, strerror(-r));
}

/* See sup.h. Callers: the process's only thread. */
int sup_run(const struct sup_config *c, const struct sup_run_opts *o)
{
	struct sup s = {.c = c, .o = o, .sfd = -1, .ready_fd = o->ready_fd, .start_ns = sup_now()};
	struct shm_cfg cfg = c->shm;
	struct shm_hdr *h;
	sigset_t oldmask;
	uint32_t nnodes;
	char err[512];
	bool adopted = false;
	int r, ret = -ENOMEM;

	/* before any line, and before the workers are forked: they inherit it */
	shm_log_setup(c->instance, (enum shm_log_format)o->log_format);
	/* the checks `shoal run --check` makes (and it loads the [types] libraries) */
	r = sup_config_check(c, NULL, err, sizeof(err));
	if (r) {
		fprintf(stderr, "shoal: %s\n", err);
		return r;
	}
	/* a closed stdout or stderr (a status reader gone) must not kill the supervisor */
	signal(SIGPIPE, SIG_IGN);
	/* before the first fork, so no worker's environment names systemd's socket; the
	 * socket itself each child closes (sup_child_prepare()) */
	(void)sup_notify_init();
	s.idle_spare = may_unidle();
	s.boost = true;
	s.n = c->workers;
	r = place_workers(&s, &nnodes);
	if (r) {
		fprintf(stderr, "shoal: placement: %s\n", strerror(-r));
		ret = r;
		goto out_topo;
	}
	cfg.nworkers = s.n; /* sup_config_check() checked max_procs against this count */
	cfg.nnodes = nnodes;
	if (sup_intensity_init(&s.in, &c->policy))
		goto out_topo; /* ret: -ENOMEM */
	r = sup_signals_setup(&s, &oldmask);
	if (r) {
		ret = r;
		goto out_intensity;
	}
	/*
	 * Completions are run by this (only) thread when it waits, and a completion wakes the
	 * waiter directly: with the default task-work notification, a death notice's wake
	 * was seen to wait for an unrelated softirq now and then (0.5-1.5 ms).
	 */
	r = io_uring_queue_init(64 + 4 * s.n, &s.ring,
				IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (r == -EINVAL) /* before Linux 6.1 */
		r = io_uring_queue_init(64 + 4 * s.n, &s.ring, 0);
	if (r) {
		fprintf(stderr, "shoal: io_uring: %s\n", strerror(-r));
		ret = r;
		goto out_signals;
	}
	err[0] = 0;
	r = shm_seg_create(c->instance, &cfg, &s.seg, err, sizeof(err));
	if (r == -EEXIST) {
		/* a segment of this name: a dead supervisor's is adopted (adopt.c) */
		r = sup_adopt(c->instance, &cfg, &s.seg, err, sizeof(err));
		adopted = r == 0;
	}
	if (r) {
		fprintf(stderr, "shoal: %s\n", err);
		ret = r;
		goto out_ring;
	}
	if (err[0]) /* a half-created segment of a dead creator, replaced */
		fprintf(stderr, "shoal: %s\n", err);
	h = shm_hdr(s.seg);
	snprintf(h->config_text, sizeof(h->config_text), "%s", c->text);
	publish_types(s.seg, c->instance);
	r = shm_proc_claim(s.seg, SHM_ROLE_SUPERVISOR, false);
	if (r || s.seg->self != 0) {
		fprintf(stderr, "shoal: cannot take process slot 0\n");
		ret = r ? r : -EBUSY;
		goto out_seg;
	}
	if (adopted) {
		/* relaxed: status words; clients that attach from here on watch this pid */
		atomic_store_explicit(&h->sup_start, shm_pid_start_time(getpid()),
				      memory_order_relaxed);
		atomic_store_explicit(&h->sup_pid, (uint32_t)getpid(), memory_order_relaxed);
		atomic_store_explicit(&h->spare, 0, memory_order_relaxed);
	}
	atomic_store_explicit(&h->sup_epoch, s.seg->epoch, memory_order_relaxed);
	if (adopted) {
		/* the batches of variables adoption's repair could not finish without a slot */
		for (uint32_t i = 1; i < h->cfg.max_procs; i++) {
			shm_var_repair(s.seg, i);
			wrk_var_sub_repair(s.seg, i);
		}
	}
	shm_proc_set_state(s.seg, SHM_PROC_RUNNING);
	bind_arenas(&s);
	for (uint32_t i = 0; i < s.n; i++) {
		s.w[i].windex = i;
		s.w[i].slot = i + 1;
		s.w[i].pidfd = -1;
		s.w[i].ready_rd = -1;
		s.w[i].zpidfd = -1;
		s.w[i].state = SUP_W_EXITED;
		/*
		 * relaxed (these three): status words for tools and the spawner's hint, no order
		 * with anything else. Before the worker claims it: the agent spawner reads the
		 * node.
		 */
		atomic_store_explicit(&shm_proc_at(s.seg, i + 1)->windex, i, memory_order_relaxed);
		atomic_store_explicit(&shm_proc_at(s.seg, i + 1)->core, s.w[i].place.core,
				      memory_order_relaxed);
		atomic_store_explicit(&shm_proc_at(s.seg, i + 1)->node, s.w[i].place.node,
				      memory_order_relaxed);
	}
	if (!adopted)
		shm_seg_publish(s.seg);
	s.seen = calloc(h->cfg.max_agents, sizeof(*s.seen));
	if (!s.seen) {
		ret = -ENOMEM;
		goto out_seg;
	}
	r = sup_slo_open(&s, err, sizeof(err));
	if (r) {
		fprintf(stderr, "shoal: %s\n", err);
		ret = r == -ENOMEM ? r : -EINVAL;
		goto out_seg;
	}
	if (!adopted) {
		r = spawn_agents(&s);
		if (!r)
			r = sup_pools_start(&s);
		if (r) {
			ret = r < 0 ? r : -EINVAL;
			goto out_seg;
		}
	}
	r = open_ctl(&s);
	if (r) {
		fprintf(stderr, "shoal: opening the control inbox: %s\n", strerror(-r));
		ret = r;
		goto out_seg;
	}
	sup_arm_poll(&s, s.sfd, UD(K_SIG, 0, 0));
	sup_gateway_init(&s);
	s.next_tick = sup_now();
	s.next_status = sup_now() + (uint64_t)c->status_interval_ms * 1000000u;
	for (uint32_t i = 0; i < s.n && !s.stopping; i++)
		sup_worker_post(&s, &s.w[i], SUP_E_START);
	r = sup_loop_run(&s);
	sup_ctl_close(s.ctl);
	s.ctl = NULL;
	sup_spare_drop(&s);
	sup_gateway_stop(&s);
	for (uint32_t i = 0; i < s.n; i++)
		sup_zombie_reap(&s, &s.w[i]);
	if (r && !s.result)
		s.result = -r; /* sup_loop_run() returns a positive errno */
	ret = s.result;
	if (ret == 0 && o->log_format != SHM_LOG_QUIET)
		sup_stop_print(&s);
	else if (o->status)
		sup_status_print(&s);
	/* relaxed: published by S3's release below */
	atomic_store_explicit(&h->sup_exit_code, (uint32_t)ret, memory_order_relaxed);
	atomic_store_explicit(&h->stop_ns, shm_wall_ns(), memory_order_relaxed);
	/* S3: release: the exit record before the instance reads as stopped. */
	atomic_store_explicit(&h->state, SHM_INST_STOPPED, memory_order_release);
	shm_change_bump(s.seg);
	shm_proc_release(s.seg);
	/* our own file only: a new instance may have taken the name since */
	if (!o->keep && shm_seg_remove(s.seg) == -ESTALE)
		fprintf(stderr,
			"shoal: instance '%s': its name now belongs to a new instance; left "
			"that one alone\n",
			c->instance);
	/* wake FIFOs of workers that were killed (an orderly exit removes its own) */
	ipc_wake_sweep();
	shm_seg_detach(s.seg);
	s.seg = NULL;
	goto out_ring;

out_seg:
	/* never started: nothing to keep, unless it was adopted (the next run adopts it) */
	for (uint32_t i = 0; i < s.n; i++)
		if (s.w[i].pidfd >= 0) {
			sup_pidfd_kill(s.w[i].pidfd, SIGKILL);
			waitid((idtype_t)P_PIDFD, (id_t)s.w[i].pidfd, NULL, WEXITED);
		}
	if (!adopted)
		shm_seg_remove(s.seg);
	shm_seg_detach(s.seg);
out_ring:
	io_uring_queue_exit(&s.ring);
out_signals:
	close(s.sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
out_intensity:
	sup_intensity_free(&s.in);
out_topo:
	sup_notify_close();
	if (s.ready_fd >= 0)
		close(s.ready_fd);
	free(s.w);
	free(s.seen);
	sup_slo_close(&s);
	free(s.q.ev);
	if (s.topo)
		hwloc_topology_destroy(s.topo);
	return ret;
}
