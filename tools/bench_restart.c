/*
 * shoal bench restart: with 100 echo agents on one worker, SIGKILL that worker and time
 * (from the kill) until its replacement is ready (restart_ready) and until every one of
 * the 100 agents has answered a call sent right after the death (restart_all_answering).
 * Baselines in the same run, each killing a child on the worker's core: noticing its death
 * through its pidfd, and through the kernel's owner-died wake of a robust futex it holds
 * (the supervisor's first notice), with the child paused and parked in an io_uring
 * FUTEX_WAIT as an idle worker is; and a fork whose child signals back through a pipe.
 */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "ipc/ipc.h"
#include "ipc/uring_futex.h"
#include "shm/registry.h"
#include "shm/trace.h"
#include "supervisor/sup.h"
#include "tools/bench.h"
#include "tools/tools.h"

#define NAGENTS 100
#define WAIT_NS 5000000000ull

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static bool fd_ready(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, timeout_ms) == 1;
}

/* Baseline: SIGKILL a paused child and notice it through its pidfd. */
static int base_pidfd_notice(uint64_t *ns, int n, int cpu)
{
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		int fd;
		uint64_t t0;

		if (pid < 0)
			return -errno;
		if (pid == 0) {
			bench_pin(cpu);
			pause();
			_exit(0);
		}
		fd = pidfd_open_(pid);
		t0 = bench_now_ns();
		kill(pid, SIGKILL);
		if (!fd_ready(fd, 5000))
			return -ETIMEDOUT;
		ns[i] = bench_now_ns() - t0;
		close(fd);
		waitpid(pid, NULL, 0);
	}
	return 0;
}

/* Words shared with a robust-notice child: its death word and a word it parks on. */
struct robust_words {
	_Atomic uint32_t death;
	_Atomic uint32_t park;
	_Atomic uint32_t armed;
};

static struct robust_list_head base_robust_head;
static struct robust_list base_robust_entry;

/* The child: register the death word as a held robust futex, then park (uring or pause). */
static void __attribute__((noreturn)) robust_child(struct robust_words *rw, bool uring)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;

	base_robust_entry.next = &base_robust_head.list;
	base_robust_head.list.next = &base_robust_entry;
	base_robust_head.futex_offset = (long)((char *)&rw->death - (char *)&base_robust_entry);
	atomic_store(&rw->death, (uint32_t)getpid() | FUTEX_WAITERS);
	if (syscall(SYS_set_robust_list, &base_robust_head, sizeof(base_robust_head)) < 0)
		_exit(1);
	if (uring) {
		if (io_uring_queue_init(8, &ring, 0))
			_exit(1);
		sqe = io_uring_get_sqe(&ring);
		if (!sqe)
			_exit(1);
		ipc_prep_futex(sqe, IORING_OP_FUTEX_WAIT, &rw->park, 0);
		io_uring_submit(&ring);
	}
	atomic_store(&rw->armed, 1);
	syscall(SYS_futex, &rw->armed, FUTEX_WAKE, 1, NULL, NULL, 0);
	for (;;) {
		if (uring) {
			struct io_uring_cqe *cqe;

			io_uring_wait_cqe(&ring, &cqe);
		} else {
			pause();
		}
	}
}

/*
 * Baseline: SIGKILL a child that holds a robust futex (as a worker holds its death word)
 * and notice its death through the kernel's owner-died wake, the supervisor's first
 * notice. uring: the child is parked in an io_uring FUTEX_WAIT, as an idle worker is;
 * else in pause().
 */
static int base_robust_notice(uint64_t *ns, int n, bool uring, int cpu)
{
	struct robust_words *rw =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int ret = 0;

	if (rw == MAP_FAILED)
		return -errno;
	for (int i = 0; i < n && !ret; i++) {
		struct timespec ts = {5, 0};
		uint64_t t0;
		uint32_t v;
		pid_t pid;

		atomic_store(&rw->armed, 0);
		atomic_store(&rw->death, 0);
		pid = fork();
		if (pid < 0) {
			ret = -errno;
			break;
		}
		if (pid == 0) {
			bench_pin(cpu);
			robust_child(rw, uring);
		}
		while (!atomic_load(&rw->armed))
			syscall(SYS_futex, &rw->armed, FUTEX_WAIT, 0, &ts, NULL, 0);
		t0 = bench_now_ns();
		kill(pid, SIGKILL);
		while (!((v = atomic_load(&rw->death)) & FUTEX_OWNER_DIED)) {
			if (bench_now_ns() - t0 > WAIT_NS) {
				ret = -ETIMEDOUT;
				break;
			}
			syscall(SYS_futex, &rw->death, FUTEX_WAIT, v, &ts, NULL, 0);
		}
		ns[i] = bench_now_ns() - t0;
		waitpid(pid, NULL, 0);
	}
	munmap(rw, 4096);
	return ret;
}

/* Baseline: fork a child that reports back through a pipe (a do-nothing "ready"). */
static int base_fork_ready(uint64_t *ns, int n)
{
	for (int i = 0; i < n; i++) {
		int p[2];
		char b;
		uint64_t t0 = bench_now_ns();
		pid_t pid;

		if (pipe(p) < 0)
			return -errno;
		pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			(void)!write(p[1], "r", 1);
			_exit(0);
		}
		if (read(p[0], &b, 1) != 1)
			return -EIO;
		ns[i] = bench_now_ns() - t0;
		close(p[0]);
		close(p[1]);
		waitpid(pid, NULL, 0);
	}
	return 0;
}

struct client {
	struct shm_seg *seg;
	bool spare; /* the instance keeps a warm spare: each kill waits for it to be ready */
	shoal_handle_t inbox;
	struct ipc_waiter *waiter; /* parks on our doorbell while replies are due */
	shoal_handle_t agents[NAGENTS];
};

static bool inbox_has_msg(void *arg)
{
	struct client *cl = arg;

	return ipc_mbox_has_msg(cl->seg, shoal_handle_slot(cl->inbox));
}

/* Count replies that have arrived in the inbox, consuming them. */
static uint32_t drain_replies(struct client *cl)
{
	uint32_t slot = shoal_handle_slot(cl->inbox), n = 0;
	struct ipc_msg m;

	while (ipc_mbox_peek(cl->seg, slot, &m) == 0) {
		if (m.flags & IPC_F_REPLY)
			n++;
		ipc_mbox_consume(cl->seg, slot, &m);
	}
	return n;
}

static int call_all(struct client *cl)
{
	for (int i = 0; i < NAGENTS; i++) {
		uint64_t ref;
		int r = ipc_call_async(cl->seg, cl->inbox, cl->agents[i], 1, "ping", 4, &ref);

		if (r)
			return r;
	}
	return 0;
}

/* One kill: returns 0 and the two times, or -errno. */
static int one_kill(struct client *cl, uint64_t *ready_ns, uint64_t *all_ns)
{
	struct shm_proc *p = shm_proc_at(cl->seg, 1);
	uint64_t own = atomic_load_explicit(&p->own, memory_order_acquire);
	pid_t pid = (pid_t)(own >> 32);
	uint32_t epoch = (uint32_t)own, replies = 0;
	uint64_t t0, now;
	int fd = pidfd_open_(pid), r;

	if (fd < 0)
		return -errno;
	*ready_ns = *all_ns = 0;
	/*
	 * An instance at rest: the last restart's follow-up (the next spare's fork and
	 * preparation) is over, as it is when a crash comes out of the blue. Not measured.
	 */
	t0 = bench_now_ns();
	for (;;) {
		uint32_t sp = atomic_load_explicit(&shm_hdr(cl->seg)->spare, memory_order_acquire);
		struct timespec ts = {0, 100000000};

		if (!cl->spare || (sp & SHM_SPARE_READY))
			break;
		if (bench_now_ns() - t0 > WAIT_NS) {
			close(fd);
			return -ETIMEDOUT;
		}
		/* the spare wakes this word when it has prepared (spare_mark_ready()) */
		syscall(SYS_futex, &shm_hdr(cl->seg)->spare, FUTEX_WAIT, sp, &ts, NULL, 0);
	}
	t0 = bench_now_ns();
	shm_trace("bench: kill");
	kill(pid, SIGKILL);
	/*
	 * Calls sent once the supervisor has declared it dead and repaired its slot can only be
	 * answered by the replacement. The supervisor wakes the slot's state word when the
	 * repair is done (X0 in repair()); wait on it. Not the pidfd: the kernel tears a dead
	 * worker's address space down (0.5-3 ms here) before the pidfd says so, and the
	 * supervisor restarts on an earlier notice.
	 */
	for (;;) {
		uint64_t o = atomic_load_explicit(&p->own, memory_order_acquire);
		uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
		struct timespec ts = {0, 100000000};

		if ((uint32_t)o != epoch || (st != SHM_PROC_RUNNING && st != SHM_PROC_DEAD))
			break;
		if (bench_now_ns() - t0 > WAIT_NS) {
			close(fd);
			return -ETIMEDOUT;
		}
		syscall(SYS_futex, &p->state, FUTEX_WAIT, st, &ts, NULL, 0);
	}
	shm_trace("bench: declared dead");
	r = call_all(cl);
	if (r) {
		close(fd);
		return r;
	}
	shm_trace("bench: called");
	/*
	 * Park on the inbox until all replies are in (as a caller waiting for answers does); the
	 * replacement stamps when it went RUNNING, so its ready time needs no watching.
	 */
	for (;;) {
		replies += drain_replies(cl);
		now = bench_now_ns();
		if (replies >= NAGENTS)
			break;
		if (now - t0 > WAIT_NS) {
			close(fd);
			return -ETIMEDOUT;
		}
		r = ipc_waiter_wait(cl->waiter, 0, WAIT_NS - (now - t0), inbox_has_msg, cl, NULL);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	*all_ns = now - t0;
	{
		uint64_t o = atomic_load_explicit(&p->own, memory_order_acquire);
		/* RN: pairs with the release store of RUNNING: the stamp before it */
		uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
		uint64_t at = atomic_load_explicit(&p->running_ns, memory_order_relaxed);

		/* answered by the replacement: it is RUNNING under a new epoch, stamped after t0 */
		if ((uint32_t)o == epoch || st != SHM_PROC_RUNNING || at < t0) {
			close(fd);
			return -EPROTO;
		}
		*ready_ns = at - t0;
	}
	shm_trace("bench: all seen");
	shm_trace_flush();
	/* the old process is gone before the next kill: one restart at a time */
	r = fd_ready(fd, 5000) ? 0 : -ETIMEDOUT;
	close(fd);
	return r;
}

static const char *config_fmt =
	"[instance]\nname = %s\nworkers = 1\ncpus = %d\nstatus_interval = 0\nspare = %s\n"
	"[restart]\nintensity = 1000000\nperiod = 1ms\nbackoff_initial = 0\nbackoff_max = 0\n"
	"[segment]\nmax_agents = 256\nregistry_capacity = 1024\nmax_procs = 8\n"
	"[agent e]\ntype = echo\ncount = 100\nname = e-%%03u\nworker = 0\n";

/* Start an instance (spare on or off), kill its worker `kills` times, stop it. */
static int run_kills(struct bench_opts *o, bool spare, int kills, uint64_t *ready, uint64_t *all)
{
	struct client cl = {0};
	char inst[SHM_INSTANCE_MAX], text[1024], err[512] = "";
	int rc = -EIO;
	pid_t sup;

	/* a name of our own: other benches may run on this machine at the same time */
	if (o->instance)
		snprintf(inst, sizeof(inst), "%s", o->instance);
	else
		snprintf(inst, sizeof(inst), "bench-restart-%d", (int)getpid());
	snprintf(text, sizeof(text), config_fmt, inst, o->cpu_a, spare ? "yes" : "no");
	sup = bench_sup_start("restart", text);
	if (sup < 0)
		return -EIO;
	if (shm_seg_attach(inst, 0, 1000, &cl.seg, err, sizeof(err)) ||
	    shm_proc_claim(cl.seg, SHM_ROLE_CLIENT, true) || ipc_inbox_open(cl.seg, &cl.inbox) ||
	    ipc_waiter_create(cl.seg, IPC_WAKE_AUTO, &cl.waiter)) {
		fprintf(stderr, "shoal bench restart: attaching as a client: %s\n", err);
		goto out_stop;
	}
	shm_proc_set_state(cl.seg, SHM_PROC_RUNNING);
	cl.spare = spare;
	for (int i = 0; i < NAGENTS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "e-%03d", i);
		if (shm_reg_lookup(cl.seg, SHM_NS_DEFAULT, name, strlen(name), &cl.agents[i],
				   NULL)) {
			fprintf(stderr, "shoal bench restart: no agent %s\n", name);
			goto out_client;
		}
	}
	for (int k = 0; k < kills; k++) {
		int r = one_kill(&cl, &ready[k], &all[k]);

		if (r) {
			fprintf(stderr, "shoal bench restart: kill %d: %s\n", k, strerror(-r));
			goto out_client;
		}
	}
	rc = 0;
out_client:
	if (cl.waiter)
		ipc_waiter_destroy(cl.waiter);
	if (cl.inbox)
		ipc_inbox_close(cl.seg, cl.inbox);
	shm_seg_detach(cl.seg);
out_stop:
	bench_sup_stop("restart", sup);
	return rc;
}

/*
 * shoal bench restart (see the top of this file): its rows into rep. Returns a CLI exit
 * code. The tool's main thread.
 */
int bench_restart(struct bench_opts *o, struct bench_report *rep)
{
	int kills = o->quick ? 30 : 200, rc = EXIT_SYSTEM;
	uint64_t *ready = calloc((size_t)kills, sizeof(uint64_t));
	uint64_t *all = calloc((size_t)kills, sizeof(uint64_t));
	uint64_t *fready = calloc((size_t)kills, sizeof(uint64_t));
	uint64_t *fall = calloc((size_t)kills, sizeof(uint64_t));
	uint64_t *base = calloc((size_t)kills, sizeof(uint64_t));
	if (!ready || !all || !fready || !fall || !base)
		goto out_free;
	bench_pin(o->cpu_b);
	if (run_kills(o, true, kills, ready, all) || run_kills(o, false, kills, fready, fall))
		goto out_free;
	if (base_pidfd_notice(base, kills, o->cpu_a) == 0)
		bench_add_baseline(rep, "pidfd_notice", base, (size_t)kills, 0);
	if (base_robust_notice(base, kills, false, o->cpu_a) == 0)
		bench_add_baseline(rep, "robust_notice", base, (size_t)kills, 0);
	if (base_robust_notice(base, kills, true, o->cpu_a) == 0)
		bench_add_baseline(rep, "robust_notice_uring", base, (size_t)kills, 0);
	if (base_fork_ready(base, kills) == 0)
		bench_add_baseline(rep, "fork_ready", base, (size_t)kills, 0);
	bench_add_result(rep, "restart_ready", ready, (size_t)kills, 0, "fork_ready");
	bench_add_result(rep, "restart_all_answering", all, (size_t)kills, 0, "pidfd_notice");
	bench_add_result(rep, "restart_ready_nospare", fready, (size_t)kills, 0, "fork_ready");
	bench_add_result(rep, "restart_all_answering_nospare", fall, (size_t)kills, 0,
			 "pidfd_notice");
	snprintf(rep->notes, sizeof(rep->notes),
		 "%d SIGKILLs of a worker hosting %d echo agents (worker pinned to cpu %d, this "
		 "client on cpu %d), each from an instance at rest (warm spare ready); times from "
		 "kill(): the replacement stamps RUNNING (restart_ready); all %d calls, sent once "
		 "the supervisor has repaired the dead worker's slot (a futex wake), answered "
		 "(the client parks on its inbox). *_nospare: the same with the warm spare off "
		 "(fork on the restart path)",
		 kills, NAGENTS, o->cpu_a, o->cpu_b, NAGENTS);
	rc = EXIT_OK;
out_free:
	free(ready);
	free(all);
	free(fready);
	free(fall);
	free(base);
	return rc;
}
