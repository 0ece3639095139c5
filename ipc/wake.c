/*
 * Wakeups: spin, then park in io_uring; producers make a syscall only for a parked process.
 *
 * Each process slot has a wake line (struct shm_proc: doorbell, parked, wake_mech,
 * eventfd). The protocol, between a waiter W and producers P:
 *
 *   W: parked := 1; fence(seq_cst); d := doorbell; if has_work() { parked := 0; return }
 *      park: io_uring FUTEX_WAIT(doorbell, d) or an io_uring read of W's eventfd.
 *   P: publish the message; fence(seq_cst); if parked and CAS parked 1 -> 0:
 *      doorbell += 1; FUTEX_WAKE(doorbell) or write(2) to W's eventfd.
 *
 * The two fences make a Dekker pair: either W's has_work() sees the message, or P sees
 * parked == 1. The CAS lets one producer per park make the syscall; a producer that loses
 * it published before its fence, and W re-checks has_work() before it parks again, which
 * (same Dekker argument against the parked store of that next park) sees the message. A
 * doorbell bumped between W's read of d and its FUTEX_WAIT makes the wait complete at once
 * with -EAGAIN, so no ring is lost.
 *
 * FUTEX_WAIT/WAKE through io_uring (opcodes 51/52, Linux 6.7+) are probed at start. The
 * SQEs are filled by hand: fd = FUTEX2_SIZE_U32 (a shared futex: never FUTEX2_PRIVATE, the
 * word is in the segment), addr = the word, addr2 = expected value (wait) or count (wake),
 * addr3 = FUTEX_BITSET_MATCH_ANY. A wait has no timeout field, so a LINK_TIMEOUT follows it.
 *
 * The eventfd path: the waiter's eventfd is EFD_NONBLOCK (io_uring polls it rather than
 * punting the read to a worker thread). A producer in another process reaches it with
 * pidfd_open(pid) + pidfd_getfd(pidfd, fd) (Linux 5.6+; needs ptrace-attach rights over
 * the waiter: same uid, or root), cached per process slot and keyed by the slot's owner
 * word, so a restarted owner is noticed. Opening /proc/<pid>/fd/<n> does not work for an
 * eventfd (anonymous inode). Producers wake eventfd waiters with write(2).
 *
 * io_uring user_data values with the top 16 bits IPC_UD_TAG are the waiter's own; any
 * other value added by the caller is handed to its on_cqe callback.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "ipc/ipc_int.h"
#include "ipc/uring_futex.h"
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define IPC_UD_TAG    UINT64_C(0x5348000000000000) /* "SH" */
#define IPC_UD_MASK   UINT64_C(0xffff000000000000)
#define IPC_UD_WAIT   UINT64_C(0x0000100000000000)
#define IPC_UD_TMO    UINT64_C(0x0000200000000000)
#define IPC_UD_CANCEL UINT64_C(0x0000400000000000)
#define IPC_UD_PIDFD  UINT64_C(0x0000800000000000)
#define IPC_UD_GEN    UINT64_C(0x00000fffffffffff)

struct ipc_waiter {
	struct shm_seg *seg;
	struct io_uring ring;
	enum ipc_wake_mech mech;
	int efd;	  /* eventfd path: our eventfd, else -1 */
	uint64_t gen;	  /* tags this park's requests, so late completions are told apart */
	uint64_t efd_buf; /* the eventfd read's target */
	struct __kernel_timespec ts;
	int sup_pidfd; /* clients: the supervisor's pidfd, polled in the ring; -1 none */
	bool sup_gone; /* that poll completed: the supervisor has exited */
};

static inline void cpu_relax(void)
{
	__builtin_ia32_pause();
}

/* Does the running kernel do FUTEX_WAIT and FUTEX_WAKE through io_uring? Cached. */
static bool has_uring_futex(void)
{
	static int cached = -1;
	struct io_uring_probe *probe;
	int ok;

	if (cached >= 0)
		return cached;
	probe = io_uring_get_probe();
	ok = probe && io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAIT) &&
	     io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAKE);
	if (probe)
		io_uring_free_probe(probe);
	cached = ok;
	return ok;
}

static enum ipc_wake_mech env_mech(void)
{
	const char *e = getenv("SHOAL_WAKE");

	if (!e)
		return IPC_WAKE_AUTO;
	if (!strcmp(e, "futex"))
		return IPC_WAKE_FUTEX;
	if (!strcmp(e, "eventfd"))
		return IPC_WAKE_EVENTFD;
	return IPC_WAKE_AUTO;
}

/*
 * The half of ipc_waiter_create() that needs no process slot: probe, ring, eventfd. A
 * process that will claim a slot later (a warm spare) does it ahead. Returns 0, -ENOSYS (a
 * forced futex path on a kernel without it), or -errno. The process that will own it.
 */
int ipc_waiter_prepare(struct shm_seg *seg, enum ipc_wake_mech mech, struct ipc_waiter **out)
{
	struct ipc_waiter *w;
	int r;

	if (mech == IPC_WAKE_AUTO)
		mech = env_mech();
	if (mech == IPC_WAKE_AUTO)
		mech = has_uring_futex() ? IPC_WAKE_FUTEX : IPC_WAKE_EVENTFD;
	if (mech == IPC_WAKE_FUTEX && !has_uring_futex())
		return -ENOSYS;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->seg = seg;
	w->mech = mech;
	w->efd = -1;
	w->sup_pidfd = -1;
	r = io_uring_queue_init(64, &w->ring, 0);
	if (r < 0)
		goto out_free;
	if (mech == IPC_WAKE_EVENTFD) {
		w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->efd < 0) {
			r = -errno;
			goto out_ring;
		}
	}
	*out = w;
	return 0;
out_ring:
	io_uring_queue_exit(&w->ring);
out_free:
	free(w);
	return r;
}

/*
 * A client's waiter watches the supervisor: a poll on its pidfd stays queued in the ring,
 * and its completion ends any park with -EOWNERDEAD (ipc_waiter_wait()), so a call or a
 * control request waiting on a supervisor that died (or whose workers can no longer answer)
 * fails at once instead of at its timeout. Workers need none: they die with it. A
 * supervisor already gone (or its pid reused: another start time) counts as exited.
 */
static void watch_supervisor(struct ipc_waiter *w)
{
	const struct shm_hdr *h = shm_hdr(w->seg);
	/* relaxed: set before the segment was published (or by an adoption, before RUNNING) */
	pid_t pid = (pid_t)atomic_load_explicit(&h->sup_pid, memory_order_relaxed);
	uint64_t start = atomic_load_explicit(&h->sup_start, memory_order_relaxed);
	struct io_uring_sqe *sqe;
	int fd;

	if (pid <= 0 || pid == getpid())
		return;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0 || (start && shm_pid_start_time(pid) != start)) {
		if (fd >= 0)
			close(fd);
		w->sup_gone = errno == ESRCH || fd >= 0;
		return;
	}
	sqe = ipc_uring_sqe(&w->ring);
	if (!sqe) {
		close(fd);
		return;
	}
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	sqe->user_data = IPC_UD_TAG | IPC_UD_PIDFD;
	if (io_uring_submit(&w->ring) < 0) {
		close(fd);
		return;
	}
	w->sup_pidfd = fd;
}

/*
 * The other half: publish a prepared waiter's mechanism (and eventfd) on the wake line of
 * the process slot the caller now owns; a client's also starts watching the supervisor.
 * Returns 0 or -EROFS (no process slot). Its owner.
 */
int ipc_waiter_attach(struct ipc_waiter *w)
{
	struct shm_proc *p;

	if (w->seg->self == UINT32_MAX)
		return -EROFS;
	p = shm_proc_at(w->seg, w->seg->self);
	if (p->role == SHM_ROLE_CLIENT && w->sup_pidfd < 0)
		watch_supervisor(w);
	p->eventfd = w->efd;
	/* relaxed: owner-written; the release store of wake_mech below publishes eventfd */
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
	/* M0: pairs with M1 in ring_one(): eventfd number before the mechanism. */
	atomic_store_explicit(&p->wake_mech, (uint32_t)w->mech, memory_order_release);
	return 0;
}

/*
 * Set up the calling process's waiter: its ring, and its wake line's mechanism (and
 * eventfd). Returns 0, -ENOSYS (a forced futex path on a kernel without it), -EROFS (no
 * process slot), or -errno. The process that owns seg->self, once (its consumer thread).
 */
int ipc_waiter_create(struct shm_seg *seg, enum ipc_wake_mech mech, struct ipc_waiter **out)
{
	struct ipc_waiter *w;
	int r;

	if (seg->self == UINT32_MAX)
		return -EROFS;
	r = ipc_waiter_prepare(seg, mech, &w);
	if (r)
		return r;
	r = ipc_waiter_attach(w);
	if (r) {
		ipc_waiter_destroy(w);
		return r;
	}
	*out = w;
	return 0;
}

/* Tear down a waiter; the process's wake line reads "none" afterwards. Its owner. */
void ipc_waiter_destroy(struct ipc_waiter *w)
{
	struct shm_proc *p;

	if (!w)
		return;
	if (w->seg->self != UINT32_MAX) {
		p = shm_proc_at(w->seg, w->seg->self);
		/* relaxed: owner-written; producers that read the old value make a spare wake */
		atomic_store_explicit(&p->wake_mech, 0, memory_order_relaxed);
		p->eventfd = -1;
	}
	io_uring_queue_exit(&w->ring);
	if (w->efd >= 0)
		close(w->efd);
	if (w->sup_pidfd >= 0)
		close(w->sup_pidfd);
	free(w);
}

/* The mechanism in use (never AUTO). Any thread. */
enum ipc_wake_mech ipc_waiter_mech(const struct ipc_waiter *w)
{
	return w->mech;
}

/* The ring the waiter parks in; the caller may add requests (not with IPC_UD_TAG). */
struct io_uring *ipc_waiter_ring(struct ipc_waiter *w)
{
	return &w->ring;
}

/* Queue this park's request (and its link timeout). Returns 0 or -errno. */
static int queue_park(struct ipc_waiter *w, uint32_t d, uint64_t timeout_ns)
{
	struct shm_proc *p = shm_proc_at(w->seg, w->seg->self);
	struct io_uring_sqe *sqe = ipc_uring_sqe(&w->ring);

	if (!sqe)
		return -EBUSY;
	if (w->mech == IPC_WAKE_FUTEX) {
		ipc_prep_futex(sqe, IORING_OP_FUTEX_WAIT, &p->doorbell, d);
	} else {
		io_uring_prep_read(sqe, w->efd, &w->efd_buf, sizeof(w->efd_buf), 0);
	}
	sqe->user_data = IPC_UD_TAG | IPC_UD_WAIT | w->gen;
	if (timeout_ns) {
		sqe->flags |= IOSQE_IO_LINK;
		sqe = ipc_uring_sqe(&w->ring);
		if (!sqe)
			return -EBUSY;
		w->ts.tv_sec = (long long)(timeout_ns / 1000000000u);
		w->ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
		io_uring_prep_link_timeout(sqe, &w->ts, 0);
		sqe->user_data = IPC_UD_TAG | IPC_UD_TMO | w->gen;
	}
	return 0;
}

/*
 * Spin up to spin_ns on has_work, then park until rung, timeout_ns passes (0: no limit) or
 * a request the caller added completes. Returns 1 (work may be there), 0 (timeout), or
 * -errno. The waiter's owner thread.
 */
int ipc_waiter_wait(struct ipc_waiter *w, uint64_t spin_ns, uint64_t timeout_ns,
		    bool (*has_work)(void *arg), void *arg,
		    void (*on_cqe)(struct io_uring_cqe *cqe, void *arg))
{
	struct shm_proc *p = shm_proc_at(w->seg, w->seg->self);
	bool wait_done = false, tmo_done, timed_out = false, cancelled = false, other = false;
	struct io_uring_cqe *cqe;
	uint64_t start, ud;
	int ret = 1, r;
	uint32_t d;

	if (has_work(arg))
		return 1;
	if (w->sup_gone)
		return -EOWNERDEAD;
	if (spin_ns) {
		start = shm_now_ns();
		do {
			for (int i = 0; i < 64; i++) {
				if (has_work(arg))
					return 1;
				cpu_relax();
			}
		} while (shm_now_ns() - start < spin_ns);
	}
	/* relaxed + the fence: the store half of the Dekker pair (see the top) */
	atomic_store_explicit(&p->parked, 1, memory_order_relaxed);
	/* D0: pairs with D1 in ipc_ring(): parked store before the has_work loads. */
	atomic_thread_fence(memory_order_seq_cst);
	/* D2: pairs with the release increment D3 in claim_wake(): its message is visible. */
	d = atomic_load_explicit(&p->doorbell, memory_order_acquire);
	if (has_work(arg)) {
		atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
		return 1;
	}
	w->gen = (w->gen + 1) & IPC_UD_GEN;
	r = queue_park(w, d, timeout_ns);
	if (r < 0)
		goto out_unpark;
	tmo_done = !timeout_ns;
	r = io_uring_submit(&w->ring);
	if (r < 0)
		goto out_unpark;
	while (!wait_done || !tmo_done) {
		unsigned head, n = 0;

		r = io_uring_wait_cqe(&w->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			goto out_unpark;
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			n++;
			ud = cqe->user_data;
			if ((ud & IPC_UD_MASK) != IPC_UD_TAG) {
				if (on_cqe)
					on_cqe(cqe, arg);
				other = true;
				continue;
			}
			if (ud & IPC_UD_PIDFD) {
				/* the supervisor exited: end this park like a request of ours */
				w->sup_gone = true;
				other = true;
				continue;
			}
			if ((ud & IPC_UD_GEN) != w->gen)
				continue; /* a late completion of an earlier park */
			if (ud & IPC_UD_WAIT) {
				wait_done = true;
				if (cqe->res == -ECANCELED && !cancelled)
					timed_out = true;
			} else if (ud & IPC_UD_TMO) {
				tmo_done = true;
			}
		}
		io_uring_cq_advance(&w->ring, n);
		if (other && !wait_done && !cancelled) {
			/* the caller's request completed: stop parking, let it run */
			struct io_uring_sqe *sqe = ipc_uring_sqe(&w->ring);

			if (sqe) {
				io_uring_prep_cancel64(sqe, IPC_UD_TAG | IPC_UD_WAIT | w->gen, 0);
				sqe->user_data = IPC_UD_TAG | IPC_UD_CANCEL | w->gen;
				io_uring_submit(&w->ring);
			}
			cancelled = true;
		}
	}
	ret = timed_out && !other ? 0 : 1;
	r = w->sup_gone && ret == 1 && !has_work(arg) ? -EOWNERDEAD : 0;
out_unpark:
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
	return r < 0 ? r : ret;
}

/* --- producers --- */

struct efd_cache {
	uint64_t own; /* the slot's owner word the fd belongs to */
	int fd;
};
static struct efd_cache *efd_cache;
static pthread_mutex_t efd_lock = PTHREAD_MUTEX_INITIALIZER;

/* Our descriptor for process slot proc's eventfd, or -1. */
static int peer_eventfd(struct shm_seg *seg, uint32_t proc, struct shm_proc *p)
{
	uint64_t own = atomic_load_explicit(&p->own, memory_order_acquire);
	int fd = -1, pidfd;

	pthread_mutex_lock(&efd_lock);
	if (!efd_cache) {
		efd_cache = calloc(SHM_MAX_PROCS, sizeof(*efd_cache));
		if (!efd_cache)
			goto out_unlock;
	}
	if (efd_cache[proc].own == own && efd_cache[proc].fd >= 0) {
		fd = efd_cache[proc].fd;
		goto out_unlock;
	}
	if (efd_cache[proc].own && efd_cache[proc].fd >= 0)
		close(efd_cache[proc].fd);
	efd_cache[proc].own = own;
	efd_cache[proc].fd = -1;
	if ((pid_t)(own >> 32) == getpid() && seg->self == proc) {
		fd = dup(p->eventfd);
	} else {
		pidfd = (int)syscall(SYS_pidfd_open, (pid_t)(own >> 32), 0);
		if (pidfd < 0)
			goto out_unlock;
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, p->eventfd, 0);
		close(pidfd);
	}
	efd_cache[proc].fd = fd;
out_unlock:
	pthread_mutex_unlock(&efd_lock);
	return fd;
}

/* Take the one wake of this park; true if we must make the syscall. */
static bool claim_wake(struct shm_proc *p)
{
	uint32_t one = 1;

	/* relaxed: the fence D1 before the load orders it; the CAS elects one waker */
	if (!atomic_load_explicit(&p->parked, memory_order_relaxed))
		return false;
	if (!atomic_compare_exchange_strong_explicit(&p->parked, &one, 0, memory_order_relaxed,
						     memory_order_relaxed))
		return false;
	/* D3: pairs with D2 in ipc_waiter_wait(). */
	atomic_fetch_add_explicit(&p->doorbell, 1, memory_order_release);
	/* relaxed: a statistic */
	atomic_fetch_add_explicit(&p->wakes, 1, memory_order_relaxed);
	return true;
}

static void wake_eventfd(struct shm_seg *seg, uint32_t proc, struct shm_proc *p)
{
	uint64_t one = 1;
	int fd = peer_eventfd(seg, proc, p);

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* the peer is gone or its counter is saturated: either way it will look */
	}
}

static void ring_one(struct shm_seg *seg, uint32_t proc)
{
	struct shm_proc *p = shm_proc_at(seg, proc);
	uint32_t mech;

	if (!claim_wake(p))
		return;
	/* M1: pairs with M0 in ipc_waiter_attach(): eventfd number before the mechanism. */
	mech = atomic_load_explicit(&p->wake_mech, memory_order_acquire);
	if (mech == IPC_WAKE_EVENTFD)
		wake_eventfd(seg, proc, p);
	else
		syscall(SYS_futex, &p->doorbell, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Ring one process's doorbell: a syscall only if it is parked. Producers, any thread. */
void ipc_ring(struct shm_seg *seg, uint32_t proc)
{
	if (proc >= shm_hdr(seg)->cfg.max_procs)
		return;
	/* D1: pairs with D0 in ipc_waiter_wait(): our message before the parked load. */
	atomic_thread_fence(memory_order_seq_cst);
	ring_one(seg, proc);
}

/*
 * Wake every parked process. Repair calls it: a producer killed after it won a park's wake
 * (claim_wake()) but before its syscall would leave that process parked until its timeout.
 * Spurious wakes are harmless. The supervisor (repair), any thread.
 */
void ipc_wake_parked_all(struct shm_seg *seg)
{
	uint32_t max = shm_hdr(seg)->cfg.max_procs;

	/* D1 (as in ipc_ring()): the repair's stores before the parked loads. */
	atomic_thread_fence(memory_order_seq_cst);
	for (uint32_t i = 0; i < max; i++) {
		struct shm_proc *p = shm_proc_at(seg, i);

		if (atomic_load_explicit(&p->parked, memory_order_relaxed))
			ring_one(seg, i);
	}
}

/* A per-process ring for batched wakes; recreated in a forked child. */
static struct io_uring wake_ring;
static pid_t wake_ring_pid;
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Ring many: one io_uring submission of FUTEX_WAKE requests for the parked futex waiters
 * among procs, write(2) for eventfd waiters. Producers, any thread.
 */
void ipc_ring_many(struct shm_seg *seg, const uint32_t *procs, uint32_t n)
{
	uint32_t nq = 0, max = shm_hdr(seg)->cfg.max_procs;
	struct io_uring_sqe *sqe;

	if (n == 1) {
		ipc_ring(seg, procs[0]);
		return;
	}
	/* D1 (as in ipc_ring()): our messages before the parked loads. */
	atomic_thread_fence(memory_order_seq_cst);
	pthread_mutex_lock(&wake_lock);
	if (wake_ring_pid != getpid()) {
		if (wake_ring_pid)
			io_uring_queue_exit(&wake_ring); /* the parent's, inherited: unmap ours */
		wake_ring_pid = 0;
		if (has_uring_futex() && io_uring_queue_init(64, &wake_ring, 0) == 0)
			wake_ring_pid = getpid();
	}
	for (uint32_t i = 0; i < n; i++) {
		struct shm_proc *p;

		if (procs[i] >= max)
			continue;
		p = shm_proc_at(seg, procs[i]);
		if (!claim_wake(p))
			continue;
		/* M1 (as in ring_one()): pairs with M0 in ipc_waiter_attach(): eventfd is set. */
		if (atomic_load_explicit(&p->wake_mech, memory_order_acquire) == IPC_WAKE_EVENTFD) {
			wake_eventfd(seg, procs[i], p);
			continue;
		}
		if (!wake_ring_pid || !(sqe = io_uring_get_sqe(&wake_ring))) {
			syscall(SYS_futex, &p->doorbell, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
			continue;
		}
		ipc_prep_futex(sqe, IORING_OP_FUTEX_WAKE, &p->doorbell, INT_MAX);
		sqe->user_data = procs[i];
		nq++;
	}
	if (nq) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		/* FUTEX_WAKE completes inline: the wait returns at once */
		io_uring_submit_and_wait(&wake_ring, nq);
		io_uring_for_each_cqe(&wake_ring, head, cqe) seen++;
		io_uring_cq_advance(&wake_ring, seen);
	}
	pthread_mutex_unlock(&wake_lock);
}
