/*
 * The supervisor: creates the segment, forks the workers, watches them through pidfds in
 * its io_uring (plus a signalfd and a timer), repairs after a death and restarts by the
 * configured strategy and policy. Per-worker logic is the state x event table `actions`.
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

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define DW_WAITERS    0x80000000u /* FUTEX_WAITERS */
#define DW_OWNER_DIED 0x40000000u /* FUTEX_OWNER_DIED */
#define DW_TID_MASK   0x3fffffffu /* FUTEX_TID_MASK */

/* A worker's states in the supervisor (not the process slot's state word). */
enum wstate {
	W_STARTING = 0, /* forked, not ready yet */
	W_RUNNING,	/* wrote its ready byte */
	W_BACKOFF,	/* dead, waiting out its restart delay */
	W_STOPPING,	/* asked to stop (or killed), waiting for it to exit */
	W_EXITED,	/* gone, not to be restarted */
	W_NSTATES,
};

enum wevent {
	E_READY = 0, /* its ready pipe delivered a byte */
	E_DIED,	     /* its pidfd became readable */
	E_TIMER,     /* the supervisor's timer fired: deadlines may have passed */
	E_STOP,	     /* stop it (orderly stop, or a sibling's restart strategy) */
	E_DYING,     /* its death word says it is exiting (before its pidfd does) */
	E_NEVENTS,
};

static const char *const wstate_names[W_NSTATES] = {
	"starting", "running", "backoff", "stopping", "exited",
};

/* io_uring user_data: kind in the top byte, worker index, launch generation. */
enum { K_PID = 1, K_READY = 2, K_SIG = 3, K_TIMER = 4, K_DYING = 5, K_CTL = 6, K_SPARE = 7 };
#define UD(kind, w, gen) (((uint64_t)(kind) << 56) | ((uint64_t)(w) << 32) | (uint32_t)(gen))
#define UD_KIND(u)	 ((uint32_t)((u) >> 56))
#define UD_W(u)		 ((uint32_t)(((u) >> 32) & 0xffffffu))
#define UD_GEN(u)	 ((uint32_t)(u))

#define TICK_NS		  100000000ull /* heartbeat and client scan period */
#define SPARE_DELAY_NS	  5000000ull   /* from a worker ready to the next spare fork */
#define SPARE_BACKOFF_MAX 8u	       /* spares dying in a row: the delay doubles up to 256x */
#define REASONS_MAX	  4u

struct sup_worker {
	uint32_t state;	 /* enum wstate */
	uint32_t windex; /* worker index */
	uint32_t slot;	 /* process slot: windex + 1 */
	uint32_t gen;	 /* launches so far; tags io_uring requests */
	pid_t pid;	 /* current (or last) process */
	int pidfd;	 /* -1 when none */
	int ready_rd;	 /* read end of its ready pipe, -1 when none */
	/* a process replaced on its death notice, still exiting: reaped when its pidfd fires */
	pid_t zpid;
	int zpidfd; /* -1 when none */
	uint32_t zgen;
	struct sup_place place;
	int cap_mech;		 /* enum sup_cap_mech */
	uint64_t oom_base;	 /* memory.events oom_kill count at launch */
	uint64_t ready_ns;	 /* when it became ready (monotonic), 0 not yet */
	uint64_t deadline_ns;	 /* starting: ready by; backoff: restart at; stopping: kill at */
	uint32_t streak;	 /* consecutive crashes */
	bool restart_after_stop; /* stopped by a sibling's strategy: start it again */
	bool prelaunched;	 /* launch_prep() done and a spare woken ahead of the repair */
	bool hung;		 /* killed by us for a stale heartbeat: its exit reads "hang" */
	bool ever_ready;
	bool boosted;	   /* pid was started at SCHED_FIFO (boost()), not yet set back */
	uint32_t nreasons; /* exits remembered for the intensity message */
	char reasons[REASONS_MAX][64];
};

struct sup_spare {
	pid_t pid; /* 0: none */
	int pidfd;
	int go_wr;	 /* write a struct spare_go here to make it a worker */
	int ready_rd;	 /* its ready pipe, handed to the worker it becomes */
	uint32_t gen;	 /* tags the watch on its pidfd; bumped when it is taken or dropped */
	uint32_t deaths; /* spares that died (or were dropped as stopped) since one was taken */
};

struct sup {
	const struct sup_config *c;
	const struct sup_run_opts *o;
	struct shm_seg *seg;
	hwloc_topology_t topo;
	struct io_uring ring;
	int sfd;    /* signalfd */
	uint32_t n; /* workers */
	struct sup_worker *w;
	struct sup_intensity in;
	struct sup_spare spare; /* a warm spare process, forked ahead of need */
	bool stopping;		/* orderly stop in progress */
	bool ready_sent;
	int ready_fd;
	int result;	    /* sup_run()'s: 0, SUP_RUN_INTENSITY or -errno */
	uint32_t timer_seq; /* tags the newest timer request */
	uint64_t timer_at;  /* deadline of the newest pending timer, 0 none */
	uint64_t next_tick;
	uint64_t next_status;
	uint64_t restarts; /* total, for the status line */
	bool no_dying;	   /* io_uring FUTEX_WAIT refused: death notices by pidfd only */
	bool idle_spare;   /* spares prepare at SCHED_IDLE (we may set them back) */
	bool boost;	   /* a spare taking over starts at SCHED_FIFO (until it fails) */
	uint64_t spare_at; /* when to fork the next spare (monotonic ns), 0: not due */

	struct sup_ctl *ctl; /* the control inbox: spawn/stop requests (control.c) */
};

typedef void (*action_fn)(struct sup *s, struct sup_worker *w);

static void dispatch(struct sup *s, struct sup_worker *w, enum wevent ev);

static struct shm_proc *wproc(struct sup *s, struct sup_worker *w)
{
	return shm_proc_at(s->seg, w->slot);
}

static void arm_poll(struct sup *s, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = ipc_uring_sqe(&s->ring);

	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud);
}

static void arm_timer(struct sup *s, uint64_t at_ns)
{
	static struct __kernel_timespec ts[64];
	struct io_uring_sqe *sqe = ipc_uring_sqe(&s->ring);
	struct __kernel_timespec *t = &ts[++s->timer_seq % 64];

	/* the timespec must live until the kernel reads it at submit: a small ring of them */
	t->tv_sec = (long long)(at_ns / 1000000000u);
	t->tv_nsec = (long long)(at_ns % 1000000000u);
	io_uring_prep_timeout(sqe, t, 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, UD(K_TIMER, 0, s->timer_seq));
	s->timer_at = at_ns;
}

/*
 * Wait in the ring for w's death word to leave v (the kernel sets owner-died early in the
 * exit). If the ring is full even after a submit, the pidfd tells instead.
 */
static void wait_dying(struct sup *s, struct sup_worker *w, uint32_t v)
{
	struct io_uring_sqe *sqe = ipc_uring_sqe(&s->ring);

	if (!sqe)
		return;
	ipc_prep_futex(sqe, IORING_OP_FUTEX_WAIT, &wproc(s, w)->death_word, v);
	io_uring_sqe_set_data64(sqe, UD(K_DYING, w->windex, w->gen));
}

/*
 * Wait (in the ring) for w's process to begin its exit. Its death word is set to its tid
 * with the waiters bit before it is told to go; the worker makes the word its robust futex
 * list's entry, and the kernel marks it FUTEX_OWNER_DIED (clearing the tid) and wakes us at
 * the start of its exit. A process that dies before it registers is told by its pidfd.
 */
static void arm_dying(struct sup *s, struct sup_worker *w)
{
	_Atomic uint32_t *dw = &wproc(s, w)->death_word;
	uint32_t v = ((uint32_t)w->pid & DW_TID_MASK) | DW_WAITERS;

	if (s->no_dying)
		return;
	/* R0: release: pairs with R1 in the worker's death_notice_register() */
	atomic_store_explicit(dw, v, memory_order_release);
	shm_change_bump(s->seg); /* a forked worker may be RUNNING before we get here */
	/*
	 * A wait of an earlier process on this slot that never registered (it died first and
	 * the pidfd told) would stay queued for ever: end it (its completion has a stale gen).
	 */
	syscall(SYS_futex, dw, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	wait_dying(s, w, v);
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* --- the child side of a launch --- */

/*
 * Test hooks, read in the forked child before the worker runs (tests/test_supervisor.c):
 * SHOAL_TEST_WORKER_EXIT="W:CODE": worker W exits with CODE at once, every launch (a crash
 * loop); SHOAL_TEST_WORKER_ALLOC="W": worker W, on its first launch only, allocates until
 * its memory cap stops it, and exits as a worker does then (WRK_EXIT_MEMCAP).
 */
static void child_test_hooks(struct sup *s, struct sup_worker *w)
{
#ifndef SHOAL_TEST_HOOKS
	(void)s, (void)w; /* compiled out: -Dtest_hooks=true builds them in */
#else
	const char *e = getenv("SHOAL_TEST_WORKER_EXIT");
	const char *a = getenv("SHOAL_TEST_WORKER_ALLOC");

	if (e) {
		unsigned wi, code;

		if (sscanf(e, "%u:%u", &wi, &code) == 2 && wi == w->windex)
			_exit((int)code);
	}
	if (a && (unsigned)atoi(a) == w->windex &&
	    atomic_load_explicit(&wproc(s, w)->restarts, memory_order_relaxed) == 0) {
		for (;;) {
			char *p = malloc(1 << 20);

			if (!p)
				_exit(WRK_EXIT_MEMCAP);
			memset(p, 1, 1 << 20);
			/* p escapes: the compiler may not elide an allocation nobody reads */
			__asm__ volatile("" : : "r"(p) : "memory");
		}
	}
#endif
}

/* A child's parent-death signal, and its exit code when the signal came. */
#define SUP_PDEATH_SIG		 (SIGRTMIN + 1)
#define SUP_EXIT_SUPERVISOR_DEAD 87

/* The segment a child marks supervisor-dead when its supervisor dies. */
static struct shm_seg *pdeath_seg;

/*
 * The supervisor died (PR_SET_PDEATHSIG): mark the instance supervisor-dead unless it had
 * stopped, then exit. The state word is what every tool and client reads first, so the
 * segment left for post-mortem says what happened. Async-signal-safe: a lock-free CAS.
 */
static void on_supervisor_death(int sig)
{
	struct shm_seg *seg = pdeath_seg;

	(void)sig;
	if (seg) {
		struct shm_hdr *h = shm_hdr(seg);
		/* relaxed: the CAS below decides; release there pairs with I0 in
		 * shm_seg_liveness() (nothing else to publish, but readers take it so) */
		uint32_t st = atomic_load_explicit(&h->state, memory_order_relaxed);

		while (st != SHM_INST_STOPPED && st != SHM_INST_SUP_DEAD &&
		       !atomic_compare_exchange_weak_explicit(&h->state, &st, SHM_INST_SUP_DEAD,
							      memory_order_release,
							      memory_order_relaxed))
			;
		/* whoever waits for a change of state (shm_change_wait()) */
		shm_change_bump(seg);
	}
	_exit(SUP_EXIT_SUPERVISOR_DEAD);
}

/* First steps of every child: die with the supervisor, default signals, own group. */
static void child_prepare(struct shm_seg *seg, pid_t parent)
{
	struct sigaction sa = {.sa_handler = on_supervisor_death};
	sigset_t none;

	pdeath_seg = seg;
	/* the supervisor's death takes its workers with it, marking the segment on the way */
	sigfillset(&sa.sa_mask);
	if (sigaction(SUP_PDEATH_SIG, &sa, NULL) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SUP_PDEATH_SIG) < 0 || getppid() != parent)
		_exit(3);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* a terminal's ^C goes to the supervisor only: it stops the workers in order */
	setpgid(0, 0);
}

/* What a spare did ahead of need, handed to the worker it becomes. */
struct spare_prep {
	uint64_t start_time;	   /* its /proc starttime */
	struct ipc_waiter *waiter; /* its wakeup ring, not yet on a process slot */
	bool boosted;		   /* started at SCHED_FIFO (boost()) */
};

/* The child becomes worker w: placement, cap, then the worker loop. */
static void __attribute__((noreturn))
child_become(struct sup *s, struct sup_worker *w, int wr, const struct spare_prep *prep)
{
	struct wrk_args args = {
		.windex = w->windex,
		.proc_slot = w->slot,
		.core = w->place.core,
		.node = w->place.node,
		.ready_fd = wr,
		.start_time = prep ? prep->start_time : 0,
		.waiter = prep ? prep->waiter : NULL,
		.boosted = prep && prep->boosted,
	};
	int r;

	shm_trace("child: become");
	if (s->c->placement == SUP_PLACE_SPREAD && s->topo) {
		r = sup_place_bind(s->topo, &w->place);
		if (r)
			fprintf(stderr, "shoal: worker %u: binding to cpu %d node %d: %s\n",
				w->windex, w->place.core, w->place.node, strerror(-r));
	}
	shm_trace("child: bound");
	r = sup_cap_apply_child(s->c, w->windex, w->cap_mech);
	if (r) {
		fprintf(stderr, "shoal: worker %u: applying its memory cap: %s\n", w->windex,
			strerror(-r));
		_exit(3);
	}
	child_test_hooks(s, w);
	shm_trace("child: capped");
	_exit(wrk_main(s->seg, &args) & 0xff);
}

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

	child_prepare(s->seg, parent);
	shm_trace_buf.n = 0;
	/*
	 * Prepare on idle time only: the supervisor's core (where the fork leaves us) runs the
	 * supervisor and often clients, and a restart that just finished there has replies
	 * to deliver. spare_take() sets the policy back before the spare becomes a worker.
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
	child_become(s, w, ready_wr, &prep);
}

static void spare_fork(struct sup *s)
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
	s->spare.pidfd = pidfd_open_(pid);
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
	arm_poll(s, s->spare.pidfd, UD(K_SPARE, 0, ++s->spare.gen));
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
static void spare_drop(struct sup *s)
{
	if (!s->spare.pid)
		return;
	/* relaxed: a status word for tools */
	atomic_store_explicit(&shm_hdr(s->seg)->spare, 0, memory_order_relaxed);
	pidfd_kill(s->spare.pidfd, SIGKILL);
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
static void spare_schedule(struct sup *s)
{
	uint32_t k = s->spare.deaths < SPARE_BACKOFF_MAX ? s->spare.deaths : SPARE_BACKOFF_MAX;

	if (!s->spare.pid && !s->spare_at && !s->stopping && s->c->spare)
		s->spare_at = shm_now_ns() + (SPARE_DELAY_NS << k);
}

/* The spare's pidfd fired while it was still our spare: it died waiting. Reap, replace. */
static void spare_died(struct sup *s)
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
	spare_schedule(s);
}

/*
 * Put the process that becomes worker w on w's core now, from here: a spare asleep on its
 * pipe is then woken on that core (where it may preempt) instead of waking on ours and
 * waiting there to be migrated; a new child leaves our core at once. The child binds
 * itself again (sup_place_bind, also its memory); this is the early half.
 */
static void pre_bind(struct sup *s, struct sup_worker *w, pid_t pid)
{
	cpu_set_t set;

	if (s->c->placement != SUP_PLACE_SPREAD || !s->topo || w->place.core < 0 ||
	    w->place.core >= CPU_SETSIZE)
		return;
	CPU_ZERO(&set);
	CPU_SET(w->place.core, &set);
	(void)sched_setaffinity(pid, sizeof(set), &set); /* the child's own bind reports errors */
}

/*
 * Start the spare taking over (or a process forked to replace a worker still exiting) at
 * SCHED_FIFO (the lowest real-time priority), until its predecessor's exit completes
 * (zombie_reap() sets it back to SCHED_OTHER; the worker does it itself after
 * WRK_BOOST_MAX_NS at the latest). Its dead predecessor is still
 * tearing down its address space on the same core, at SCHED_IDLE (yield_teardown()), and
 * that was not enough: when anything preempted the replacement (a kworker), the fair
 * scheduler could pick the dying process next (it lags behind in virtual time) and let it
 * run its whole exit (milliseconds here) before the replacement got the core back. A fair
 * task cannot preempt a real-time one. Needs CAP_SYS_NICE or RLIMIT_RTPRIO; without, once
 * refused, never tried again. Returns whether it is boosted.
 */
static bool boost(struct sup *s, pid_t pid)
{
	struct sched_param sp = {.sched_priority = 1};

	if (!s->boost)
		return false;
	if (sched_setscheduler(pid, SCHED_FIFO, &sp) == 0)
		return true;
	if (errno == EPERM)
		s->boost = false;
	return false;
}

/* Hand worker w to the spare. false when there is none (or it died): fork instead. */
static bool spare_take(struct sup *s, struct sup_worker *w)
{
	struct spare_go g = {.windex = w->windex, .cap_mech = w->cap_mech};
	/* relaxed: R2 told the spare's own state; only whether it is still preparing matters */
	uint32_t word = atomic_load_explicit(&shm_hdr(s->seg)->spare, memory_order_relaxed);

	char st;

	if (!s->spare.pid)
		return false;
	/*
	 * A spare that is stopped (SIGSTOP, a debugger) or already dead would hold the worker's
	 * agents unreachable until ready_timeout and then cost a second death: one read of its
	 * /proc state (microseconds) decides, and a bad spare costs no more than a cold fork.
	 */
	st = shm_pid_state(s->spare.pid);
	if (st == 0 || st == 'T' || st == 't' || st == 'Z' || st == 'X') {
		fprintf(stderr, "shoal: warm spare (pid %d) is %s; dropped, worker %u is forked\n",
			(int)s->spare.pid, st == 'T' || st == 't' ? "stopped" : "dead", w->windex);
		spare_drop(s);
		s->spare.deaths++;
		return false;
	}
	if (s->idle_spare && !(word & SHM_SPARE_READY)) {
		/* still preparing at SCHED_IDLE (it sets itself back when done): now, at once */
		struct sched_param sp = {.sched_priority = 0};

		(void)sched_setscheduler(s->spare.pid, SCHED_OTHER, &sp);
	}
	pre_bind(s, w, s->spare.pid);
	/* only while a predecessor still exits on that core (zombie_reap() ends it) */
	g.boosted = w->zpidfd >= 0 && boost(s, s->spare.pid);
	w->boosted = g.boosted;
	if (write(s->spare.go_wr, &g, sizeof(g)) != (ssize_t)sizeof(g)) {
		spare_drop(s);
		return false;
	}
	/* after the go: the spare needs tens of microseconds to run; its death word is ours
	 * to arm until it registers (R0/R1 accept either order, the tid is its pid) */
	w->pid = s->spare.pid;
	arm_dying(s, w);
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

/* --- actions --- */

static uint64_t now(void)
{
	return shm_now_ns();
}

/* What every launch does first: a new generation, the memory cap, the slot's index. */
static void launch_prep(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = wproc(s, w);
	int r;

	w->gen++;
	w->ready_ns = 0;
	r = sup_cap_prepare(s->c, w->windex);
	w->cap_mech = r < 0 ? SUP_CAP_NONE : r;
	if (r < 0)
		fprintf(stderr, "shoal: worker %u: memory cap under %s: %s; running uncapped\n",
			w->windex, s->c->cgroup, strerror(-r));
	w->oom_base = sup_cap_oom_kills(s->c, w->windex, w->cap_mech);
	p->windex = w->windex;
	shm_trace("sup: launch prepared");
}

/*
 * Wake the spare as worker w before the repair of w's slot, so its wakeup and binding on
 * its core overlap the repair here; it waits for the slot to become claimable (see
 * claim_self() in workers/worker.c). Only for a restart that will happen at once.
 */
static void prelaunch(struct sup *s, struct sup_worker *w)
{
	if (!s->spare.pid || s->stopping)
		return;
	launch_prep(s, w);
	if (spare_take(s, w))
		w->prelaunched = true;
	else
		w->gen--; /* nothing was started under it: launch() takes it again */
}

static void launch(struct sup *s, struct sup_worker *w)
{
	/* a predecessor still exiting on that core: start at SCHED_FIFO too (see boost()) */
	struct spare_prep fp = {.boosted = s->boost && w->zpidfd >= 0};
	int fds[2];
	pid_t pid, self = getpid();

	if (w->prelaunched) {
		w->prelaunched = false;
		goto out_watch;
	}
	launch_prep(s, w);
	if (spare_take(s, w))
		goto out_watch;
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto out_fail;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		goto out_fail;
	}
	if (pid == 0) {
		close(fds[0]);
		child_prepare(s->seg, self);
		child_become(s, w, fds[1], fp.boosted ? &fp : NULL);
	}
	close(fds[1]);
	pre_bind(s, w, pid);
	w->boosted = fp.boosted && boost(s, pid);
	w->pid = pid;
	arm_dying(s, w); /* may race with the child's own store: then only the pidfd tells */
	w->ready_rd = fds[0];
	w->pidfd = pidfd_open_(pid);
	if (w->pidfd < 0) {
		/* cannot watch it: do not leave it running unwatched */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(w->ready_rd);
		w->ready_rd = -1;
		goto out_fail;
	}
out_watch:
	arm_poll(s, w->pidfd, UD(K_PID, w->windex, w->gen));
	arm_poll(s, w->ready_rd, UD(K_READY, w->windex, w->gen));
	w->deadline_ns = now() + (uint64_t)s->c->ready_timeout_ms * 1000000u;
	w->state = W_STARTING;
	shm_trace("sup: launched");
	shm_trace_flush();
	return;

out_fail:
	fprintf(stderr, "shoal: worker %u: cannot start it: %s\n", w->windex, strerror(errno));
	s->result = errno ? -errno : -EIO;
	w->state = W_EXITED;
	if (!s->stopping) {
		s->stopping = true;
		for (uint32_t i = 0; i < s->n; i++)
			dispatch(s, &s->w[i], E_STOP);
	}
}

static bool all_ready(const struct sup *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->w[i].state != W_RUNNING)
			return false;
	return true;
}

static void a_none(struct sup *s, struct sup_worker *w)
{
	(void)s;
	(void)w;
}

static void a_ready(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = wproc(s, w);

	/* the slot's claim reset these; the supervisor states where it put the worker */
	p->core = w->place.core;
	p->node = w->place.node;
	p->mem_cap = w->cap_mech ? s->c->mem_cap : 0;
	p->cap_mech = (uint32_t)w->cap_mech;
	shm_change_bump(s->seg);
	w->state = W_RUNNING;
	w->ready_ns = now();
	w->ever_ready = true;
	shm_trace("sup: ready");
	/*
	 * The next spare a little later: its fork and preparation take the supervisor's core
	 * for a while, which the restart's aftermath (replies to the callers that waited,
	 * redeliveries) needs first.
	 */
	spare_schedule(s);
	shm_trace_flush();
	if (!s->ready_sent && all_ready(s)) {
		s->ready_sent = true;
		/* relaxed: a status word for tools; nothing is published through it */
		atomic_store_explicit(&shm_hdr(s->seg)->state, SHM_INST_RUNNING,
				      memory_order_relaxed);
		shm_change_bump(s->seg);
		if (s->ready_fd >= 0) {
			(void)!write(s->ready_fd, "ready\n", 6);
			close(s->ready_fd);
			s->ready_fd = -1;
		}
	}
}

static void note_reason(struct sup_worker *w, const struct shm_proc *p)
{
	char *r = w->reasons[w->nreasons % REASONS_MAX];

	if (p->last_signal)
		snprintf(r, 64, "pid %u killed by signal %d (%s)", p->last_pid, p->last_signal,
			 shm_exit_reason_name(p->last_reason));
	else
		snprintf(r, 64, "pid %u exited with code %d (%s)", p->last_pid, p->last_code,
			 shm_exit_reason_name(p->last_reason));
	w->nreasons++;
}

/*
 * Record an exit of pid (slot epoch `epoch`) in w's slot. `status` is a wait status
 * (WIFEXITED/WIFSIGNALED encoding), or -1 when unknown.
 */
/* Whether w's cgroup counted an OOM kill since its launch (the cap stopped it). */
static bool cap_oom(struct sup *s, struct sup_worker *w)
{
	return w->cap_mech == SUP_CAP_CGROUP &&
	       sup_cap_oom_kills(s->c, w->windex, w->cap_mech) > w->oom_base;
}

/*
 * oom: 1 or 0 if the caller established whether the memory cap ended it (before a new
 * launch reset the cgroup's baseline), -1 to look now.
 */
static void record_exit(struct sup *s, struct sup_worker *w, pid_t pid, uint32_t epoch, int status,
			bool asked_to_stop, int oom, bool again)
{
	struct shm_proc *p = wproc(s, w);
	uint32_t reason;

	p->last_pid = (uint32_t)pid;
	p->last_epoch = epoch;
	if (status >= 0 && WIFEXITED(status)) {
		p->last_code = WEXITSTATUS(status);
		p->last_signal = 0;
		if (p->last_code == WRK_EXIT_MEMCAP)
			reason = SHM_EXIT_MEMCAP;
		else if (p->last_code == 0 && asked_to_stop)
			reason = SHM_EXIT_NORMAL;
		else
			reason = SHM_EXIT_CODE;
	} else {
		p->last_code = -1;
		p->last_signal = status >= 0 ? WTERMSIG(status) : 0;
		reason = SHM_EXIT_SIGNAL;
	}
	if (oom < 0 ? cap_oom(s, w) : oom)
		reason = SHM_EXIT_MEMCAP;
	else if (w->hung && !asked_to_stop)
		reason = SHM_EXIT_HANG;
	p->last_reason = reason;
	p->last_exit_ns = shm_wall_ns();
	if (again)
		shm_exit_update(s->seg, w->slot); /* the same exit, now with its status */
	else
		shm_exit_record(s->seg, w->slot);
	shm_change_bump(s->seg);
}

/* A wait status from a waitid siginfo. */
static int wait_status_of(const siginfo_t *si)
{
	if (si->si_code == CLD_EXITED)
		return (si->si_status & 0xff) << 8;
	return si->si_status & 0x7f;
}

/* The slot's owner epoch if pid still owns it (it died after claiming), else 0. */
static uint32_t owner_epoch(struct sup *s, struct sup_worker *w, pid_t pid)
{
	/* own still names the dead owner, unless it died before claiming the slot */
	uint64_t own = atomic_load_explicit(&wproc(s, w)->own, memory_order_acquire);

	return (pid_t)(own >> 32) == pid ? (uint32_t)own : 0;
}

/*
 * Repair what the dead owner of w's slot left half done; afterwards the slot reads EXITED
 * and can be claimed again. The exit record is written before.
 */
static void repair(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = wproc(s, w);

	/* D0: release: the exit record before the slot reads DEAD; pairs with shm_tag_is_dead(). */
	atomic_store_explicit(&p->state, SHM_PROC_DEAD, memory_order_release);
	shm_change_bump(s->seg);
	shm_trace("sup: repair");
	shm_reg_repair(s->seg, w->slot);
	shm_trace("sup: reg repaired");
	shm_grp_repair(s->seg, w->slot);
	shm_trace("sup: grp repaired");
	ipc_repair_proc(s->seg, w->slot);
	shm_trace("sup: ipc repaired");
	/* also resolves its agent and monitor claims (wrk_repair_proc_claims) */
	wrk_repair_worker(s->seg, w->slot);
	shm_trace("sup: wrk repaired");
	/* relaxed: only the supervisor writes repair_gen; tools read it as a counter */
	atomic_fetch_add_explicit(&p->repair_gen, 1, memory_order_relaxed);
	/* X0: release: repairs before the slot can be claimed again (claim_at acquires). */
	atomic_store_explicit(&p->state, SHM_PROC_EXITED, memory_order_release);
	shm_change_bump(s->seg);
	/* a spare woken ahead (prelaunch()) may be waiting to claim the slot */
	syscall(SYS_futex, &p->state, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	note_reason(w, p);
}

/*
 * Collect the exit status, record it in the process slot, and repair what the dead
 * process left half done, before anything can claim the slot again.
 */
static void reap(struct sup *s, struct sup_worker *w, bool asked_to_stop)
{
	siginfo_t si;
	uint32_t epoch = owner_epoch(s, w, w->pid);

	shm_trace("sup: reap");
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &si, WEXITED) < 0)
		memset(&si, 0, sizeof(si));
	record_exit(s, w, w->pid, epoch, si.si_pid ? wait_status_of(&si) : -1, asked_to_stop, -1,
		    false);
	w->hung = false; /* recorded: the flag was that process's */
	close(w->pidfd);
	w->pidfd = -1;
	if (w->ready_rd >= 0) {
		close(w->ready_rd);
		w->ready_rd = -1;
	}
	repair(s, w);
}

/*
 * The exit status of a process that has begun to exit, before it can be waited for: the
 * kernel sets it (the last field of /proc/PID/stat, a wait status) before it tears the
 * address space down, and so before the robust-futex wake that told us. -1 if unreadable.
 */
static int early_status(pid_t pid)
{
	struct shm_pid_stat st;

	return shm_pid_stat_read(pid, &st) ? -1 : st.exit_code;
}

/*
 * Collect a process replaced on its death notice, now that it has exited (or wait for that:
 * it is past the point of running any code). Its record is rewritten with the status
 * waitid gives, unless a later exit has been recorded since.
 */
static void zombie_reap(struct sup *s, struct sup_worker *w)
{
	struct shm_proc *p = wproc(s, w);
	siginfo_t si;

	if (w->zpidfd < 0)
		return;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)w->zpidfd, &si, WEXITED) == 0 && si.si_pid &&
	    p->last_pid == (uint32_t)w->zpid) {
		uint32_t was = p->last_reason;

		/* its launch's cgroup baseline is gone: keep what the death notice found */
		record_exit(s, w, w->zpid, p->last_epoch, wait_status_of(&si), false,
			    was == SHM_EXIT_MEMCAP, true);
		/* nor may it forget that we killed it for a hang */
		if (was == SHM_EXIT_HANG && p->last_reason == SHM_EXIT_SIGNAL)
			p->last_reason = SHM_EXIT_HANG;
	}
	close(w->zpidfd);
	w->zpidfd = -1;
	w->zpid = 0;
	/* its replacement no longer shares the core with it: fair scheduling again */
	if (w->boosted) {
		struct sched_param sp = {.sched_priority = 0};

		w->boosted = false;
		(void)sched_setscheduler(w->pid, SCHED_OTHER, &sp); /* gone already: fine */
		shm_change_bump(s->seg); /* for whoever waits to see it (the tests) */
	}
}

/* Restart w now or after its backoff; it counts against the intensity. */
static void schedule_restart(struct sup *s, struct sup_worker *w)
{
	uint32_t delay = sup_backoff_ms(&s->c->policy, w->streak);

	/* relaxed: single writer (the supervisor); tools read a counter */
	atomic_fetch_add_explicit(&wproc(s, w)->restarts, 1, memory_order_relaxed);
	shm_change_bump(s->seg);
	s->restarts++;
	if (!delay) {
		launch(s, w);
		return;
	}
	w->deadline_ns = now() + (uint64_t)delay * 1000000u;
	w->state = W_BACKOFF;
}

static void begin_stop(struct sup *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	spare_drop(s);
	/* relaxed: a status word for tools */
	atomic_store_explicit(&shm_hdr(s->seg)->state, SHM_INST_STOPPING, memory_order_relaxed);
	shm_change_bump(s->seg);
	for (uint32_t i = 0; i < s->n; i++) {
		s->w[i].restart_after_stop = false;
		dispatch(s, &s->w[i], E_STOP);
	}
}

static void intensity_exceeded(struct sup *s, struct sup_worker *w)
{
	const struct sup_policy *p = &s->c->policy;
	uint32_t k = w->nreasons < REASONS_MAX ? w->nreasons : REASONS_MAX;

	fprintf(stderr,
		"shoal: worker %u (process slot %u) crashed more than %u times in %.3f s "
		"(restart intensity exceeded); stopping the instance. Its last exits:",
		w->windex, w->slot, p->intensity, p->period_ms / 1000.0);
	for (uint32_t i = 0; i < k; i++)
		fprintf(stderr, "%s %s", i ? ";" : "",
			w->reasons[(w->nreasons - k + i) % REASONS_MAX]);
	fprintf(stderr, "\n");
	s->result = SUP_RUN_INTENSITY;
	w->state = W_EXITED;
	begin_stop(s);
}

/* A sibling must stop and come back, by the strategy. */
static void restart_sibling(struct sup *s, struct sup_worker *o)
{
	if (o->state != W_STARTING && o->state != W_RUNNING)
		return;
	o->restart_after_stop = true;
	dispatch(s, o, E_STOP);
}

static bool died_note(struct sup *s, struct sup_worker *w);
static void died(struct sup *s, struct sup_worker *w, bool exceeded);

static void a_died(struct sup *s, struct sup_worker *w)
{
	reap(s, w, false);
	died(s, w, died_note(s, w));
}

/*
 * A dead worker's exit still has its address space and rings to tear down, on the core its
 * replacement is about to start on. Lower it to SCHED_IDLE, so that work yields to the
 * replacement instead of delaying it by hundreds of microseconds. It runs no user code any
 * more; failing (it is gone already, or we may not) changes nothing but the latency.
 */
static void yield_teardown(pid_t pid)
{
	struct sched_param sp = {.sched_priority = 0};

	(void)sched_setscheduler(pid, SCHED_IDLE, &sp);
}

/*
 * Its death word says it is exiting: it runs no more code of its own, so repair and restart
 * now rather than when its exit completes (its pidfd); it is collected then (zombie_reap).
 */
static void a_dying(struct sup *s, struct sup_worker *w)
{
	pid_t pid = w->pid;
	uint32_t epoch = owner_epoch(s, w, pid);
	int ready_rd = w->ready_rd, oom = cap_oom(s, w);
	bool exceeded;

	shm_trace("sup: dying");
	yield_teardown(pid);
	w->boosted = false; /* that process's, and SCHED_IDLE now */
	zombie_reap(s, w);  /* an earlier one still exiting: it has had long enough */
	w->zpid = pid;
	w->zpidfd = w->pidfd;
	w->zgen = w->gen;
	w->pidfd = -1;
	w->ready_rd = -1;
	/* the spare first: it wakes on its core while we record and repair here */
	exceeded = died_note(s, w);
	if (!exceeded && !sup_backoff_ms(&s->c->policy, w->streak))
		prelaunch(s, w);
	if (ready_rd >= 0)
		close(ready_rd);
	record_exit(s, w, pid, epoch, early_status(pid), false, oom, false);
	w->hung = false; /* recorded: the flag was that process's */
	repair(s, w);
	died(s, w, exceeded);
}

/* Count an unasked-for death against the streak and the intensity; true if exceeded. */
static bool died_note(struct sup *s, struct sup_worker *w)
{
	uint64_t t = now();

	if (w->ready_ns && t - w->ready_ns >= (uint64_t)s->c->policy.period_ms * 1000000u)
		w->streak = 0; /* it stayed up a whole period: a fresh streak */
	w->streak++;
	sup_intensity_note(&s->in, t);
	return sup_intensity_is_exceeded(&s->in, &s->c->policy);
}

/* After the repair of an unasked-for death (counted by died_note()): strategy, restart. */
static void died(struct sup *s, struct sup_worker *w, bool exceeded)
{
	if (exceeded) {
		intensity_exceeded(s, w);
		return;
	}
	switch (s->c->policy.strategy) {
	case SUP_ONE_FOR_ALL:
		for (uint32_t i = 0; i < s->n; i++)
			if (i != w->windex)
				restart_sibling(s, &s->w[i]);
		break;
	case SUP_REST_FOR_ONE:
		for (uint32_t i = w->windex + 1; i < s->n; i++)
			restart_sibling(s, &s->w[i]);
		break;
	default:
		break;
	}
	schedule_restart(s, w);
}

static void a_died_stopping(struct sup *s, struct sup_worker *w)
{
	reap(s, w, true);
	w->state = W_EXITED;
	if (w->restart_after_stop && !s->stopping) {
		w->restart_after_stop = false;
		/* relaxed: single writer; a counter for tools */
		atomic_fetch_add_explicit(&wproc(s, w)->restarts, 1, memory_order_relaxed);
		shm_change_bump(s->seg);
		s->restarts++;
		launch(s, w);
	}
}

static void a_stop_running(struct sup *s, struct sup_worker *w)
{
	/* T0: release: pairs with the worker's acquire load of its state after a wake. */
	atomic_store_explicit(&wproc(s, w)->state, SHM_PROC_STOPPING, memory_order_release);
	shm_change_bump(s->seg);
	ipc_ring(s->seg, w->slot);
	w->deadline_ns = now() + (uint64_t)s->c->stop_timeout_ms * 1000000u;
	w->state = W_STOPPING;
}

/* Not ready yet: it has run no agent callback worth an orderly stop. */
static void a_stop_starting(struct sup *s, struct sup_worker *w)
{
	pidfd_kill(w->pidfd, SIGKILL);
	w->deadline_ns = now() + (uint64_t)s->c->stop_timeout_ms * 1000000u;
	w->state = W_STOPPING;
}

static void a_stop_backoff(struct sup *s, struct sup_worker *w)
{
	if (w->restart_after_stop && !s->stopping) {
		w->restart_after_stop = false;
		return; /* it restarts when its backoff ends anyway */
	}
	w->state = W_EXITED;
}

static void a_timer_kill_late(struct sup *s, struct sup_worker *w)
{
	(void)s;
	if (now() < w->deadline_ns)
		return;
	fprintf(stderr, "shoal: worker %u (pid %d) missed its %s deadline; killing it\n", w->windex,
		(int)w->pid, wstate_names[w->state]);
	pidfd_kill(w->pidfd, SIGKILL);
	w->deadline_ns = UINT64_MAX; /* the death comes through the pidfd */
}

static void a_timer_backoff(struct sup *s, struct sup_worker *w)
{
	if (now() >= w->deadline_ns)
		launch(s, w);
}

/* The per-worker logic: what each event does in each state. */
/* The table reads as a table: */
/* clang-format off */
static const action_fn actions[W_NSTATES][E_NEVENTS] = {
	/*                 E_READY   E_DIED           E_TIMER            E_STOP           E_DYING */
	[W_STARTING] = { a_ready, a_died,          a_timer_kill_late, a_stop_starting, a_dying },
	[W_RUNNING]  = { a_none,  a_died,          a_none,            a_stop_running,  a_dying },
	[W_BACKOFF]  = { a_none,  a_none,          a_timer_backoff,   a_stop_backoff,  a_none },
	[W_STOPPING] = { a_none,  a_died_stopping, a_timer_kill_late, a_none,          a_none },
	[W_EXITED]   = { a_none,  a_none,          a_none,            a_none,          a_none },
};
/* clang-format on */

static void dispatch(struct sup *s, struct sup_worker *w, enum wevent ev)
{
	actions[w->state][ev](s, w);
}

/* --- instance-wide duties on the timer --- */

/* Clients that died holding a slot are repaired like workers (they are not our children). */
/*
 * Judge the client slots (judge: each live one costs a /proc read, so only periodically)
 * and repair those marked DEAD, by us or by a claimer that found the table full.
 */
static void scan_clients(struct sup *s, bool judge)
{
	uint32_t n = shm_hdr(s->seg)->cfg.max_procs;

	for (uint32_t i = s->n + 1; i < n; i++) {
		struct shm_proc *p = shm_proc_at(s->seg, i);
		uint32_t st;

		/*
		 * Marks a dead owner's slot DEAD, frees a dead claimer's (its role may not be
		 * written yet), never touches a live one's (shm/proc.c).
		 */
		if (judge)
			shm_proc_reap(s->seg, i);
		/* D1: pairs with H2/K1 in shm/proc.c: DEAD once the owner is known gone */
		st = atomic_load_explicit(&p->state, memory_order_acquire);
		if (st != SHM_PROC_DEAD || p->role != SHM_ROLE_CLIENT)
			continue;
		sup_repair_vanished(s->seg, i, false);
	}
}

static void print_status(struct sup *s)
{
	uint32_t up = 0, agents = 0, running = 0;
	uint64_t handled = 0;
	const struct shm_cfg *cfg = &shm_hdr(s->seg)->cfg;

	for (uint32_t i = 0; i < s->n; i++)
		up += s->w[i].state == W_RUNNING;
	for (uint32_t i = 0; i < cfg->max_agents; i++) {
		struct shm_agent *a = shm_agent_at(s->seg, i);
		uint32_t st = atomic_load_explicit(&a->state, memory_order_relaxed);

		if (st == SHM_AGENT_FREE)
			continue;
		agents++;
		running += st == SHM_AGENT_RUNNING;
		handled += atomic_load_explicit(&a->handled, memory_order_relaxed);
	}
	printf("shoal %s: workers %u/%u up, agents %u (%u running), restarts %" PRIu64
	       ", messages handled %" PRIu64 "\n",
	       s->c->instance, up, s->n, agents, running, s->restarts, handled);
	fflush(stdout);
}

/*
 * Kill running workers whose heartbeat is older than the hang timeout: a callback that never
 * returns holds its whole worker. Their exit is recorded as "hang" and restarted like a crash
 * (the message it was handling is redelivered, flagged, to the replacement).
 */
static void check_hangs(struct sup *s, uint64_t t)
{
	uint64_t limit = (uint64_t)s->c->policy.hang_ms * 1000000u;

	if (!limit || s->stopping)
		return;
	for (uint32_t i = 0; i < s->n; i++) {
		struct sup_worker *w = &s->w[i];
		/* relaxed: a timestamp the worker refreshes; only its age matters */
		uint64_t hb =
			atomic_load_explicit(&wproc(s, w)->heartbeat_ns, memory_order_relaxed);

		if (w->state != W_RUNNING || w->pidfd < 0 || w->hung || t < hb || t - hb <= limit)
			continue;
		w->hung = true;
		fprintf(stderr,
			"shoal: worker %u (pid %d): no heartbeat for %.1f s (hang timeout %.1f s); "
			"killing it\n",
			w->windex, (int)w->pid, (double)(t - hb) / 1e9, (double)limit / 1e9);
		pidfd_kill(w->pidfd, SIGKILL);
	}
}

static void tick(struct sup *s)
{
	uint64_t t = now();
	struct shm_hdr *h = shm_hdr(s->seg);

	if (t < s->next_tick)
		return;
	s->next_tick = t + TICK_NS;
	/* relaxed: single writer; readers compare ages */
	atomic_store_explicit(&h->heartbeat_ns, t, memory_order_relaxed);
	shm_proc_heartbeat(s->seg);
	scan_clients(s, true);
	check_hangs(s, t);
	sup_ctl_tick(s->ctl);
	if (s->o->status && s->c->status_interval_ms && t >= s->next_status) {
		s->next_status = t + (uint64_t)s->c->status_interval_ms * 1000000u;
		print_status(s);
	}
}

/* The earliest moment something has to happen; a timer request covers it. */
static void rearm_timer(struct sup *s)
{
	uint64_t at = s->next_tick;

	if (s->spare_at && s->spare_at < at)
		at = s->spare_at;
	for (uint32_t i = 0; i < s->n; i++) {
		struct sup_worker *w = &s->w[i];

		if ((w->state == W_STARTING || w->state == W_BACKOFF || w->state == W_STOPPING) &&
		    w->deadline_ns < at)
			at = w->deadline_ns;
	}
	if (!s->timer_at || at < s->timer_at)
		arm_timer(s, at);
}

/*
 * Signals the supervisor reads from its signalfd. SIGINT, SIGTERM and SIGQUIT stop the
 * instance in order; SIGUSR1 prints the status line now; SIGCHLD is only a wake. Every other
 * asynchronous signal whose default action would end the process (and so skip the orderly
 * stop: terminate callbacks, final telemetry, the segment's removal) is logged and ignored:
 * SIGHUP has no log file to reopen (shoal writes to its stdout and stderr). Only SIGKILL can
 * end a supervisor out of order. Fault signals (SIGSEGV, SIGBUS, ...) keep their defaults.
 */
static const int sup_stray_signals[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,
					SIGIO,	SIGPWR,	 SIGXCPU, SIGXFSZ, SIGSTKFLT};

static void on_signal(struct sup *s)
{
	struct signalfd_siginfo si;

	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
			begin_stop(s);
		} else if (sig == SIGCHLD) {
			continue;
		} else if (sig == SIGUSR1) {
			fprintf(stderr,
				"shoal: received SIGUSR1 from pid %u: status line follows\n",
				si.ssi_pid);
			print_status(s);
		} else if (sigabbrev_np(sig)) {
			fprintf(stderr, "shoal: received SIG%s from pid %u: ignored%s\n",
				sigabbrev_np(sig), si.ssi_pid,
				sig == SIGHUP ? " (no log file to reopen: shoal writes to stdout "
						"and stderr)"
					      : "");
		} else {
			fprintf(stderr, "shoal: received signal %d from pid %u: ignored\n", sig,
				si.ssi_pid);
		}
	}
	arm_poll(s, s->sfd, UD(K_SIG, 0, 0));
}

/* The death-word wait of w's current process completed with res. */
static void on_death_word(struct sup *s, struct sup_worker *w, int res)
{
	/* relaxed: the kernel's wake (or the failed compare) orders it; only its bits matter */
	uint32_t v = atomic_load_explicit(&wproc(s, w)->death_word, memory_order_relaxed);
	uint32_t tid = (uint32_t)w->pid & DW_TID_MASK;

	if (res == -EINVAL || res == -ENOSYS || res == -EOPNOTSUPP) {
		s->no_dying = true; /* no io_uring futex: the pidfd alone tells */
		return;
	}
	/* the kernel clears the tid as it sets the owner-died bit */
	if (v & DW_OWNER_DIED)
		dispatch(s, w, E_DYING);
	else if ((v & DW_TID_MASK) == tid)
		wait_dying(s, w, v); /* woken for nothing: wait again */
}

static void on_cqe(struct sup *s, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint32_t wi = UD_W(ud);
	struct sup_worker *w = wi < s->n ? &s->w[wi] : NULL;
	char b;

	switch (UD_KIND(ud)) {
	case K_SIG:
		on_signal(s);
		break;
	case K_TIMER:
		if (UD_GEN(ud) == s->timer_seq)
			s->timer_at = 0;
		if (s->spare_at && now() >= s->spare_at) {
			s->spare_at = 0;
			spare_fork(s);
			shm_trace("sup: spare forked");
		}
		tick(s);
		for (uint32_t i = 0; i < s->n; i++)
			dispatch(s, &s->w[i], E_TIMER);
		break;
	case K_PID:
		shm_trace("sup: pid cqe");
		if (w && UD_GEN(ud) == w->gen && w->pidfd >= 0)
			dispatch(s, w, E_DIED);
		else if (w && w->zpidfd >= 0 && UD_GEN(ud) == w->zgen)
			zombie_reap(s, w);
		break;
	case K_DYING:
		if (w && UD_GEN(ud) == w->gen && w->pidfd >= 0)
			on_death_word(s, w, cqe->res);
		break;
	case K_CTL:
		sup_ctl_on_wake(s->ctl, &s->ring, UD(K_CTL, 0, 0), cqe->res);
		/* a client that found the table full of dead clients rings us: repair now */
		scan_clients(s, false);
		break;
	case K_SPARE:
		if (s->spare.pid && UD_GEN(ud) == s->spare.gen)
			spare_died(s);
		break;
	case K_READY:
		shm_trace("sup: ready cqe");
		/* one byte is the ready signal; EOF means it died first (its pidfd says so) */
		if (w && UD_GEN(ud) == w->gen && w->ready_rd >= 0 &&
		    read(w->ready_rd, &b, 1) == 1) {
			close(w->ready_rd);
			w->ready_rd = -1;
			dispatch(s, w, E_READY);
		}
		break;
	}
}

static bool all_exited(const struct sup *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->w[i].state != W_EXITED)
			return false;
	return true;
}

static int loop(struct sup *s)
{
	while (!(s->stopping && all_exited(s))) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int r;

		rearm_timer(s);
		r = io_uring_submit_and_wait(&s->ring, 1);
		if (r < 0 && r != -EINTR && r != -ETIME) {
			fprintf(stderr, "shoal: io_uring wait: %s\n", strerror(-r));
			return -r;
		}
		io_uring_for_each_cqe(&s->ring, head, cqe)
		{
			on_cqe(s, cqe);
			seen++;
		}
		io_uring_cq_advance(&s->ring, seen);
	}
	return 0;
}

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
	if (!s->w) {
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

static int setup_signals(struct sup *s, sigset_t *old)
{
	sigset_t m;

	sigemptyset(&m);
	sigaddset(&m, SIGTERM);
	sigaddset(&m, SIGINT);
	sigaddset(&m, SIGCHLD);
	sigaddset(&m, SIGQUIT);
	for (size_t i = 0; i < sizeof(sup_stray_signals) / sizeof(sup_stray_signals[0]); i++)
		sigaddset(&m, sup_stray_signals[i]);
	/* glibc refuses the real-time signals it keeps for itself; the rest are ours */
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaddset(&m, sig);
	if (sigprocmask(SIG_BLOCK, &m, old) < 0)
		return -errno;
	s->sfd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	return s->sfd < 0 ? -errno : 0;
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

/* See sup.h. Callers: the process's only thread. */
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

int sup_run(const struct sup_config *c, const struct sup_run_opts *o)
{
	struct sup s = {.c = c, .o = o, .sfd = -1, .ready_fd = o->ready_fd};
	struct shm_cfg cfg = c->shm;
	struct shm_hdr *h;
	sigset_t oldmask;
	uint32_t nnodes;
	char err[512];
	bool adopted = false;
	int r, ret = -ENOMEM;

	/* the checks `shoal run --check` makes (and it loads the [types] libraries) */
	r = sup_config_check(c, NULL, err, sizeof(err));
	if (r) {
		fprintf(stderr, "shoal: %s\n", err);
		return r;
	}
	/* a closed stdout or stderr (a status reader gone) must not kill the supervisor */
	signal(SIGPIPE, SIG_IGN);
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
	r = setup_signals(&s, &oldmask);
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
	shm_proc_set_state(s.seg, SHM_PROC_RUNNING);
	bind_arenas(&s);
	for (uint32_t i = 0; i < s.n; i++) {
		s.w[i].windex = i;
		s.w[i].slot = i + 1;
		s.w[i].pidfd = -1;
		s.w[i].ready_rd = -1;
		s.w[i].zpidfd = -1;
		s.w[i].state = W_EXITED;
		shm_proc_at(s.seg, i + 1)->windex = i;
		/* before the worker claims it: the agent spawner reads the node as its hint */
		shm_proc_at(s.seg, i + 1)->core = s.w[i].place.core;
		shm_proc_at(s.seg, i + 1)->node = s.w[i].place.node;
	}
	if (!adopted)
		shm_seg_publish(s.seg);
	if (!adopted) {
		r = spawn_agents(&s);
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
	arm_poll(&s, s.sfd, UD(K_SIG, 0, 0));
	s.next_tick = now();
	s.next_status = now() + (uint64_t)c->status_interval_ms * 1000000u;
	for (uint32_t i = 0; i < s.n && !s.stopping; i++)
		launch(&s, &s.w[i]);
	r = loop(&s);
	sup_ctl_close(s.ctl);
	s.ctl = NULL;
	spare_drop(&s);
	for (uint32_t i = 0; i < s.n; i++)
		zombie_reap(&s, &s.w[i]);
	if (r && !s.result)
		s.result = -r; /* loop() returns a positive errno */
	ret = s.result;
	if (o->status)
		print_status(&s);
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
			pidfd_kill(s.w[i].pidfd, SIGKILL);
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
	if (s.ready_fd >= 0)
		close(s.ready_fd);
	free(s.w);
	if (s.topo)
		hwloc_topology_destroy(s.topo);
	return ret;
}
