/*
 * The warm spare: a child forked ahead of need that becomes whichever worker dies next, so a
 * restart does not wait for fork.
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
#include "shm/registry.h"
#include "shm/trace.h"
#include "shoal/agent.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

/*
 * The warm spare: a child forked ahead of need that waits for the supervisor to say which
 * worker it becomes, so a restart does not wait for fork. It holds no process slot; EOF on
 * its pipe (the supervisor stopping) ends it.
 */
struct spare_go {
	uint32_t windex;
	int32_t cap_mech;
	uint32_t boosted; /* we set it to SCHED_FIFO: it goes back to SCHED_OTHER once started */
};

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/*
 * Make this process's private writable memory (heap, stack, data) its own and mapped
 * writable now: after a fork it is shared copy-on-write with the other side, and each
 * first write would fault (and copy) on whatever path comes next: for the supervisor, its
 * next repair; for a spare, the worker it becomes. Best effort.
 */
#define OWN_PAGES_MAX (64ul << 20)

static void own_private_pages(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perm[5];

		/*
		 * Not huge reservations (a sanitizer's shadow memory, NORESERVE arenas): only
		 * what a process of our size has touched can matter, and populating those would
		 * commit them whole.
		 */
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perm) == 3 && perm[0] == 'r' &&
		    perm[1] == 'w' && perm[3] == 'p' && hi - lo <= OWN_PAGES_MAX)
			(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
	}
	fclose(f);
}

/*
 * Map the segment into the spare's page tables now. fork() copies no page-table entries
 * of a shared mapping, so a fresh process faults on every page it first touches: a worker
 * restarting 100 agents touches a few hundred (agent slots, mailbox heads and cells,
 * checkpoints, monitors), about a microsecond each, on the restart path (rescan of 100
 * agents: 150-210 us without, 20-40 us with). Best effort.
 */
static void spare_prefault(struct shm_seg *seg)
{
	if (madvise(seg->base, seg->size, MADV_POPULATE_WRITE) < 0) {
		/* before Linux 5.14: touch a byte per page (reading maps it too, for shmem) */
		for (size_t off = 0; off < seg->size; off += 4096)
			(void)*(volatile const uint8_t *)(seg->base + off);
	}
	own_private_pages();
	shm_trace("spare: prefaulted");
}

/* Tell the supervisor's word (and tools) this spare is prepared, unless it was taken. */
static void spare_mark_ready(struct shm_seg *seg)
{
	uint32_t me = (uint32_t)getpid(), v = SHM_SPARE_FORKING;

	/*
	 * R2: release: pairs with acquire loads in tools: prepared before it says so. The word
	 * reads FORKING until the supervisor has stored our pid, then our pid; 0 means we were
	 * taken or dropped meanwhile: leave it.
	 */
	if (!atomic_compare_exchange_strong_explicit(&shm_hdr(seg)->spare, &v, me | SHM_SPARE_READY,
						     memory_order_release, memory_order_relaxed) &&
	    v == me)
		atomic_compare_exchange_strong_explicit(&shm_hdr(seg)->spare, &v,
							me | SHM_SPARE_READY, memory_order_release,
							memory_order_relaxed);
	/* for whoever waits for an instance at rest (the restart benchmark) */
	syscall(SYS_futex, &shm_hdr(seg)->spare, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

static void __attribute__((noreturn))
spare_run(struct sup *s, int go_rd, int ready_wr, pid_t parent)
{
	struct spare_prep prep = {0};
	struct spare_go g;
	struct sup_worker *w;

	sup_child_prepare(s->seg, parent);
	shm_trace_buf.n = 0;
	/*
	 * Prepare on idle time only: the supervisor's core (where the fork leaves us) runs the
	 * supervisor and often clients, and a restart that just finished there has replies
	 * to deliver. sup_spare_take() sets the policy back before the spare becomes a worker.
	 */
	if (s->idle_spare) {
		struct sched_param sp = {.sched_priority = 0};

		(void)sched_setscheduler(0, SCHED_IDLE, &sp);
	}
	/* what does not depend on which worker it becomes, done before it is needed */
	prep.start_time = shm_pid_start_time(getpid());
	/* the [types] libraries (the supervisor never loads them): not on the restart path */
	wrk_types_load_libs();
	if (ipc_waiter_prepare(s->seg, IPC_WAKE_AUTO, &prep.waiter))
		prep.waiter = NULL; /* the worker makes its own */
	spare_prefault(s->seg);
	if (s->idle_spare) {
		/* prepared: back to a normal policy before saying so (may_unidle() allows it) */
		struct sched_param sp = {.sched_priority = 0};

		if (sched_setscheduler(0, SCHED_OTHER, &sp) < 0)
			_exit(0); /* an idle-only worker would be worse than a fork */
	}
	spare_mark_ready(s->seg);
	if (read(go_rd, &g, sizeof(g)) != (ssize_t)sizeof(g) || g.windex >= s->n)
		_exit(0);
	shm_trace("spare: go read");
	close(go_rd);
	w = &s->w[g.windex];
	w->cap_mech = g.cap_mech;
	prep.boosted = g.boosted != 0;
	sup_child_become(s, w, ready_wr, &prep);
}

/* Fork the warm spare, if one is configured and none is there; best effort. */
void sup_spare_fork(struct sup *s)
{
	int go[2], rd[2];
	pid_t pid, self = getpid();

	if (!s->c->spare || s->spare.pid || s->stopping)
		return;
	if (pipe2(go, O_CLOEXEC) < 0)
		return;
	if (pipe2(rd, O_CLOEXEC) < 0)
		goto out_go;
	/* relaxed: a status word; the child replaces it (R2), we put its pid below */
	atomic_store_explicit(&shm_hdr(s->seg)->spare, SHM_SPARE_FORKING, memory_order_relaxed);
	pid = fork();
	if (pid < 0)
		goto out_rd;
	if (pid == 0) {
		close(go[1]);
		close(rd[0]);
		spare_run(s, go[0], rd[1], self);
	}
	close(go[0]);
	close(rd[1]);
	/* our copies of what the fork made copy-on-write, now, not during the next repair */
	own_private_pages();
	s->spare.pidfd = sup_pidfd_open(pid);
	if (s->spare.pidfd < 0) {
		/* relaxed: a status word for tools */
		atomic_store_explicit(&shm_hdr(s->seg)->spare, 0, memory_order_relaxed);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(go[1]);
		close(rd[0]);
		return;
	}
	s->spare.pid = pid;
	{
		uint32_t v = SHM_SPARE_FORKING;

		/* relaxed: a status word; fails if the spare is prepared already (R2) */
		atomic_compare_exchange_strong_explicit(&shm_hdr(s->seg)->spare, &v, (uint32_t)pid,
							memory_order_relaxed, memory_order_relaxed);
	}
	s->spare.go_wr = go[1];
	s->spare.ready_rd = rd[0];
	/* watched like a worker: a spare that dies while it waits is reaped and replaced */
	sup_arm_poll(s, s->spare.pidfd, UD(K_SPARE, 0, ++s->spare.gen));
	return;

out_rd:
	/* relaxed: a status word for tools */
	atomic_store_explicit(&shm_hdr(s->seg)->spare, 0, memory_order_relaxed);
	close(rd[0]);
	close(rd[1]);
out_go:
	close(go[0]);
	close(go[1]);
}

/* End the spare (idle: nothing to stop in order) and collect it. */
void sup_spare_drop(struct sup *s)
{
	if (!s->spare.pid)
		return;
	/* relaxed: a status word for tools */
	atomic_store_explicit(&shm_hdr(s->seg)->spare, 0, memory_order_relaxed);
	sup_pidfd_kill(s->spare.pidfd, SIGKILL);
	waitid((idtype_t)P_PIDFD, (id_t)s->spare.pidfd, NULL, WEXITED);
	close(s->spare.pidfd);
	close(s->spare.go_wr);
	close(s->spare.ready_rd);
	s->spare.pid = 0;
	s->spare.gen++; /* its pidfd watch, if it completes, is stale */
}

/*
 * Fork the next spare later: SPARE_DELAY_NS after a normal hand-over, doubling with each
 * spare that died or was dropped in a row (a spare killed as soon as it is forked must not
 * keep the supervisor forking).
 */
void sup_spare_schedule(struct sup *s)
{
	uint32_t k = s->spare.deaths < SPARE_BACKOFF_MAX ? s->spare.deaths : SPARE_BACKOFF_MAX;

	if (!s->spare.pid && !s->spare_at && !s->stopping && s->c->spare)
		s->spare_at = shm_now_ns() + (SPARE_DELAY_NS << k);
}

/* The spare's pidfd fired while it was still our spare: it died waiting. Reap, replace. */
void sup_spare_died(struct sup *s)
{
	siginfo_t si = {0};
	pid_t pid = s->spare.pid;

	waitid((idtype_t)P_PIDFD, (id_t)s->spare.pidfd, &si, WEXITED | WNOHANG);
	/* relaxed: a status word for tools */
	atomic_store_explicit(&shm_hdr(s->seg)->spare, 0, memory_order_relaxed);
	close(s->spare.pidfd);
	close(s->spare.go_wr);
	close(s->spare.ready_rd);
	s->spare.pid = 0;
	s->spare.gen++;
	s->spare.deaths++;
	if (si.si_code == CLD_EXITED)
		fprintf(stderr, "shoal: warm spare (pid %d) exited with code %d; forking another\n",
			(int)pid, si.si_status);
	else
		fprintf(stderr, "shoal: warm spare (pid %d) killed by signal %d; forking another\n",
			(int)pid, si.si_status);
	sup_spare_schedule(s);
}

/* Hand worker w to the spare. false when there is none (or it died): fork instead. */
bool sup_spare_take(struct sup *s, struct sup_worker *w)
{
	struct spare_go g = {.windex = w->windex, .cap_mech = w->cap_mech};
	/* relaxed: R2 told the spare's own state; only whether it is still preparing matters */
	uint32_t word = atomic_load_explicit(&shm_hdr(s->seg)->spare, memory_order_relaxed);

	siginfo_t si;

	if (!s->spare.pid)
		return false;
	/*
	 * A spare that is stopped (SIGSTOP) or already dead would hold the worker's agents
	 * unreachable until ready_timeout and then cost a second death. It is our child: one
	 * waitid() that consumes nothing (WNOWAIT) tells both, about 1 us on the restart path (a
	 * read of its /proc state took 10). A bad spare costs no more than a cold fork.
	 */
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)s->spare.pidfd, &si,
		   WEXITED | WSTOPPED | WNOHANG | WNOWAIT) < 0 ||
	    si.si_pid) {
		fprintf(stderr, "shoal: warm spare (pid %d) is %s; dropped, worker %u is forked\n",
			(int)s->spare.pid, si.si_code == CLD_STOPPED ? "stopped" : "dead",
			w->windex);
		sup_spare_drop(s);
		s->spare.deaths++;
		return false;
	}
	if (s->idle_spare && !(word & SHM_SPARE_READY)) {
		/* still preparing at SCHED_IDLE (it sets itself back when done): now, at once */
		struct sched_param sp = {.sched_priority = 0};

		(void)sched_setscheduler(s->spare.pid, SCHED_OTHER, &sp);
	}
	sup_child_pre_bind(s, w, s->spare.pid);
	/* only while a predecessor still exits on that core (sup_zombie_reap() ends it) */
	g.boosted = w->zpidfd >= 0 && sup_child_boost(s, s->spare.pid);
	w->boosted = g.boosted;
	if (write(s->spare.go_wr, &g, sizeof(g)) != (ssize_t)sizeof(g)) {
		sup_spare_drop(s);
		return false;
	}
	/* after the go: the spare needs tens of microseconds to run; its death word is ours
	 * to arm until it registers (R0/R1 accept either order, the tid is its pid) */
	w->pid = s->spare.pid;
	sup_arm_dying(s, w);
	close(s->spare.go_wr);
	/* relaxed: a status word for tools */
	atomic_store_explicit(&shm_hdr(s->seg)->spare, 0, memory_order_relaxed);
	w->pidfd = s->spare.pidfd;
	w->ready_rd = s->spare.ready_rd;
	s->spare.pid = 0;
	s->spare.gen++; /* its watch completes when the worker it became dies: stale then */
	s->spare.deaths = 0;
	return true;
}

/*
 * Wake the spare as worker w before the repair of w's slot, so its wakeup and binding on
 * its core overlap the repair here; it waits for the slot to become claimable (see
 * claim_self() in workers/worker.c). Only for a restart that will happen at once.
 */
void sup_spare_prelaunch(struct sup *s, struct sup_worker *w)
{
	if (!s->spare.pid || s->stopping)
		return;
	sup_child_launch_prep(s, w);
	if (sup_spare_take(s, w))
		w->prelaunched = true;
	else
		w->gen--; /* nothing was started under it: sup_child_launch() takes it again */
}
