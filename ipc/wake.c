/*
 * Wakeups: spin, then park in io_uring; producers make a syscall only for a parked process.
 *
 * Each process slot has a wake line (struct shm_proc: doorbell, parked, wake_mech,
 * eventfd: the fd path's descriptor, for producers in the owner's process). The protocol,
 * between a waiter W and producers P:
 *
 *   W: d := doorbell; parked := 1; fence(seq_cst); if has_work() { parked := 0; return }
 *      park: io_uring FUTEX_WAIT(doorbell, d) or an io_uring read of W's FIFO.
 *   P: publish the message; fence(seq_cst); if parked and CAS parked 1 -> 0:
 *      doorbell += 1; FUTEX_WAKE(doorbell) or write(2) to W's FIFO.
 *
 * The two fences make a Dekker pair: either W's has_work() sees the message, or P sees
 * parked == 1. The CAS lets one producer per park make the syscall; a producer that loses
 * it published before its fence, and W re-checks has_work() before it parks again, which
 * (same Dekker argument against the parked store of that next park) sees the message.
 * W reads d before it stores parked: a producer can take a park's wake only after that
 * store, so its bump comes after d and the FUTEX_WAIT completes at once with -EAGAIN if the
 * FUTEX_WAKE came first; no ring is lost. (d read after the store let a ring that came late,
 * its message already consumed, take the wake of a park that then slept on the bumped
 * value with parked == 0, so that every later producer skipped its ring: a lost wake,
 * tests/test_wake.c, test_wake_late_ring_ends_park.) The FIFO path keeps its bytes, so
 * the order does not matter there.
 *
 * Why fences and not seq_cst accesses. A Dekker pair needs each side's store and its later
 * load of the other variable in one total order: seq_cst on both accesses of both sides, or
 * a seq_cst fence between relaxed ones. The accesses here are many and spread out: W's
 * loads are whatever has_work() reads (a mailbox's stamp and sequence words, the control
 * inbox), and P's store is whichever store publishes its message (a stamp, a READY or PAD
 * word, a tail move, repair's skip). Making all of those seq_cst would put the protocol in
 * every publishing store of ipc/mbox.c (one missed and a wake is lost, silently), cost an
 * xchg per message on x86 where a batch (ipc_ring_many()) now pays one fence for all its
 * messages, and make seq_cst the consumer's peek loads, which also serve spinning. So D0
 * and D1 stay fences. They order only atomic accesses (parked, the doorbell, the words
 * has_work() and the publication use; message bytes are ordered by the mailbox's own
 * release/acquire pairs), so ThreadSanitizer, which does not model fences, reports no false
 * race for want of them: it reports a race only where a plain access is involved. What it
 * cannot check is the Dekker property itself (store buffering): a lost wake is a timeout,
 * which test_wake_park_ring_threads and test_wake_late_ring_ends_park look for.
 *
 * The asymmetric pair (issue 19). D1 is paid per message sent and D0 per park, which
 * already costs tens of microseconds; so where the kernel has it, the CPU's half of D1
 * moves to the parker: W stores parked, then calls membarrier(MEMBARRIER_CMD_GLOBAL_
 * EXPEDITED), then fences (D0) and reads has_work(); P publishes, then only a compiler
 * barrier (ipc_ring_fence()), then loads parked. The kernel runs a full memory barrier on
 * every CPU that is running a thread of a process registered with MEMBARRIER_CMD_REGISTER_
 * GLOBAL_EXPEDITED, after W's parked store is visible everywhere and before the call returns;
 * a thread not running meanwhile passes a context switch, itself a full barrier. So for P,
 * registered: either P's load of parked comes after that barrier on its CPU, and sees W's
 * store (made visible before the barrier was sent); or it came before, and then so did
 * P's publication, which the compiler kept ahead of it in program order, and the barrier
 * drains it before W's has_work() reads (the store buffer is what a fence would have
 * drained). Either P sees parked == 1 or W sees the message: the Dekker property again,
 * with one side's fence replaced by the other side's barrier on its behalf. Only a
 * registered process may skip its fence: MEMBARRIER_CMD_PRIVATE_EXPEDITED would reach only
 * the parker's own threads, not producers in other processes sharing the segment, hence
 * GLOBAL. A process registers at its first ring (ipc_ring_fence_slow(); one syscall) and
 * again in a forked child; where the query or the registration fails (a kernel before
 * 4.16, a seccomp filter, SHOAL_MEMBARRIER=off) it keeps the fence (IPC_ASYM_OFF). A
 * parker issues the barrier whenever the kernel reports the command (its waiter's
 * ipc_waiter_prepare() asks), whether or not any producer registered: a producer's
 * registration and a parker's query then agree as long as every process of an instance
 * is allowed membarrier(2) alike, which the same binary on the same kernel is, and a
 * seccomp policy that allows it to some processes of one instance and not others is not
 * supported. Should the barrier fail at a park, that park is at most IPC_POLL_MS long (a
 * wake it misses is found then), and says so once. Every parker does the same: the
 * supervisor's control wait (supervisor/control.c) calls ipc_park_barrier() after its
 * parked stores too (its tick finds what a failed barrier missed). D1 in ipc_ring_many() and in
 * repair's ipc_wake_parked_all() use the same helper; the mailbox's own W2/W3 pair is unchanged.
 * Measured on the 2-vCPU development VM: the call costs about 1 us, 6 us when it must
 * interrupt a CPU running a registered process, against a park's 50 us round trip
 * (rtt_park/futex_rtt: median 1.00x over 12 runs, 1.07x for the fenced build alternated
 * with it). A 16-byte ipc_send() into a drained mailbox: 36 rdtsc ticks at best, 40 with
 * the fence. Across cores the one-call-per-message rate did not move beyond the noise: the
 * first locked instruction after a message's stores (the tail's CAS) already waits for the
 * cell's line, which the spinning consumer holds, and drains the store buffer as the fence
 * did.
 *
 * FUTEX_WAIT/WAKE through io_uring (opcodes 51/52, Linux 6.7+) are probed at start. The
 * SQEs are filled by hand: fd = FUTEX2_SIZE_U32 (a shared futex: never FUTEX2_PRIVATE, the
 * word is in the segment), addr = the word, addr2 = expected value (wait) or count (wake),
 * addr3 = FUTEX_BITSET_MATCH_ANY. A wait has no timeout field, so a LINK_TIMEOUT follows it.
 *
 * The fd path (IPC_WAKE_FIFO, also called eventfd: SHOAL_WAKE=eventfd, the path of every
 * kernel before 6.7, Debian 12's 6.1 among them): each waiter makes a FIFO,
 * /dev/shm/shoal.<instance>:wake.<pid> (':' is never in an instance name, so it never
 * meets a segment's name), with the segment's mode and group, and parks on an io_uring read
 * of it (O_NONBLOCK: io_uring polls it rather than punting the read to a worker thread). A
 * producer in another process opens it by that name once per owner of the slot (cached,
 * keyed by the slot's owner word, so a restarted owner is noticed) and wakes it with a
 * one-byte write(2). Why a FIFO: whoever may open the segment may open the FIFO, and nobody
 * else; the open needs no ptrace rights over the waiter. Until this, producers took the
 * waiter's eventfd with pidfd_getfd(), which needs ptrace-attach rights: Yama's
 * ptrace_scope = 1 (Debian's default on many hosts) refuses it to anyone but an ancestor,
 * so a worker could not wake its sibling and the wake was lost until the park's timeout; a
 * non-dumpable waiter or a producer of another uid (a group-shared segment) lost it too.
 * Cost: a one-byte FIFO write took about 100 ns more than an eventfd write (400 vs 300 ns
 * on the development VM), and `shoal bench ipc` with SHOAL_WAKE=eventfd put rtt_park at a
 * median 1.18x futex_rtt against 1.13x with the eventfd (6 alternating rounds each, 1.06x
 * to 1.32x: within that VM's noise). The alternatives: a wake through an abstract unix
 * datagram socket cost about 2 us per send, and anyone in the network namespace could send
 * one; one handed out by the supervisor (SCM_RIGHTS) needs a supervisor serving every
 * producer, which tests and tools without one do not have.
 *
 * Both ends open the FIFO read-write (Linux allows it), so a write never meets a FIFO
 * without reader (no SIGPIPE for a producer whose waiter died) and the waiter's read never
 * sees end-of-file. A full FIFO (EAGAIN) is a waiter with bytes to read: it will wake.
 * Extra bytes (a repair's spare wake) end the next park early, which is harmless. The
 * waiter removes its FIFO when it is destroyed; one left by a killed process is removed by
 * the next waiter that starts (of any instance: its pid no longer exists).
 *
 * If the waiter cannot make its FIFO (the name is taken by another user's file in the
 * sticky /dev/shm, no room for an inode, ...) it says so once on stderr and parks for at
 * most IPC_POLL_MS at a time: it finds its work late but never loses a wake. A producer
 * that cannot open a waiter's FIFO (EACCES: the segment's mode does not let it in; EMFILE)
 * says so once per process on stderr, naming the FIFO and the cause: that waiter finds the
 * message at its next wake or the end of its park.
 *
 * io_uring user_data values with the top 16 bits IPC_UD_TAG are the waiter's own; any
 * other value added by the caller is handed to its on_cqe callback.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "ipc/ipc_int.h"
#include "ipc/uring_futex.h"
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Where the FIFOs are: beside the segments (glibc's shm_open() directory). */
#define IPC_FIFO_DIR "/dev/shm"
/* "/dev/shm/shoal.<instance>:wake.<pid>" */
#define IPC_FIFO_PATH_MAX (sizeof(IPC_FIFO_DIR "/shoal.:wake.") + SHM_INSTANCE_MAX + 12)
/* A waiter without its FIFO parks at most this long: no wake can reach it. */
#define IPC_POLL_MS 10u

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
	bool asym;	    /* parks issue membarrier(GLOBAL_EXPEDITED) (see the top) */
	bool capped;	    /* this park is cut to IPC_POLL_MS: its barrier failed */
	int fd;		    /* fd path: our FIFO (read-write), -1 none (then we poll) */
	pid_t fifo_pid;	    /* the process that made the FIFO (a forked child does not own it) */
	bool poll_deadline; /* this park's poll is the caller's timeout, not IPC_POLL_MS */
	uint64_t gen;	    /* tags this park's requests, so late completions are told apart */
	uint8_t fd_buf[64]; /* the FIFO read's target: one byte per wake */
	char fifo[IPC_FIFO_PATH_MAX];
	struct __kernel_timespec ts;
	int sup_pidfd; /* clients: the supervisor's pidfd, polled in the ring; -1 none */
	bool sup_gone; /* that poll completed: the supervisor has exited */
};

void (*ipc_wake_test_hook)(int point);

_Atomic int ipc_asym_state;

static int membarrier(int cmd, unsigned int flags)
{
	return (int)syscall(SYS_membarrier, cmd, flags, 0);
}

/* Does the kernel do MEMBARRIER_CMD_GLOBAL_EXPEDITED, and may we use it? Not cached. */
static bool has_global_membarrier(void)
{
	const char *e = getenv("SHOAL_MEMBARRIER");
	int r;

	if (e && !strcmp(e, "off"))
		return false;
	r = membarrier(MEMBARRIER_CMD_QUERY, 0);
	return r > 0 && (r & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
	       (r & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
}

/* A forked child is another process: it registers again at its first ring. */
static void asym_forget(void)
{
	atomic_store_explicit(&ipc_asym_state, IPC_ASYM_UNKNOWN, memory_order_relaxed);
}

/*
 * Register this process for the parkers' barriers, once (see "The asymmetric pair" at the
 * top): IPC_ASYM_ON on success, else IPC_ASYM_OFF (the fence stays). Two threads racing
 * here both register, which is idempotent.
 */
static int asym_decide(void)
{
	static atomic_bool atfork_set; /* relaxed: a second registration is harmless */
	int st = IPC_ASYM_OFF;

	if (!atomic_exchange_explicit(&atfork_set, true, memory_order_relaxed))
		pthread_atfork(NULL, NULL, asym_forget);
	if (has_global_membarrier() && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0) == 0)
		st = IPC_ASYM_ON;
	/* relaxed: stored after the registration returned; a thread that reads ON may rely on
	 * it (the registration covers the whole process) */
	atomic_store_explicit(&ipc_asym_state, st, memory_order_relaxed);
	return st;
}

/* See ipc_int.h. Any thread. */
void ipc_ring_fence_slow(void)
{
	/* relaxed: as in ipc_ring_fence() */
	if (atomic_load_explicit(&ipc_asym_state, memory_order_relaxed) == IPC_ASYM_UNKNOWN)
		asym_decide();
	/* the fence either way: off, it is D1; just registered, it costs once per process */
	atomic_thread_fence(memory_order_seq_cst);
}

_Atomic uint64_t ipc_park_barriers;

/* See ipc_int.h. */
bool ipc_park_wants_barrier(void)
{
	return has_global_membarrier();
}

/* See ipc_int.h. */
bool ipc_park_barrier(void)
{
	static atomic_bool told; /* relaxed: only keeps a second message out */
	int r = membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0);

	/* relaxed: a statistic */
	atomic_fetch_add_explicit(&ipc_park_barriers, 1, memory_order_relaxed);
	if (r == 0)
		return true;
	if (!atomic_exchange_explicit(&told, true, memory_order_relaxed))
		fprintf(stderr,
			"shoal: pid %d: membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) failed: %s; "
			"its parks last at most %u ms each, so that a wake its producers skipped "
			"the fence for is found then\n",
			(int)getpid(), strerror(errno), IPC_POLL_MS);
	return false;
}

/*
 * W's half of the asymmetric pair: after the parked store, a full barrier on every CPU
 * running a registered producer. false if it failed (then the park is capped).
 */
static bool park_barrier(struct ipc_waiter *w)
{
	return !w->asym || ipc_park_barrier();
}

/* Whether this process's waiters issue the parker's barrier, and its sends skip the fence. */
bool ipc_wake_is_asym(const struct ipc_waiter *w, bool *sender)
{
	if (sender) {
		/* relaxed: as in ipc_ring_fence() */
		if (atomic_load_explicit(&ipc_asym_state, memory_order_relaxed) == IPC_ASYM_UNKNOWN)
			asym_decide();
		*sender =
			atomic_load_explicit(&ipc_asym_state, memory_order_relaxed) == IPC_ASYM_ON;
	}
	return w && w->asym;
}

static inline void cpu_relax(void)
{
	shm_cpu_relax();
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
	if (!strcmp(e, "eventfd") || !strcmp(e, "fifo"))
		return IPC_WAKE_FIFO;
	return IPC_WAKE_AUTO;
}

/* The FIFO path of process pid's waiter on instance. */
static void fifo_path(char *buf, size_t n, const char *instance, pid_t pid)
{
	snprintf(buf, n, IPC_FIFO_DIR "/shoal.%s:wake.%d", instance, (int)pid);
}

/*
 * Remove the wake FIFOs whose process no longer exists (killed before ipc_waiter_destroy()),
 * of any instance: an instance that is gone has no waiter left to remove them. One whose
 * pid was reused stays until that process's own waiter replaces it or a later sweep. Another
 * user's we may not remove: left alone.
 */
void ipc_wake_sweep(void)
{
	static const char tag[] = ":wake.";
	struct dirent *de;
	DIR *d = opendir(IPC_FIFO_DIR);

	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *num;
		char *end;
		long pid;

		/* "shoal.<instance>:wake.<pid>"; ':' is in no instance name, so it is the tag */
		if (strncmp(de->d_name, "shoal.", 6) || !(num = strstr(de->d_name, tag)))
			continue;
		num += sizeof(tag) - 1;
		errno = 0;
		pid = strtol(num, &end, 10);
		if (errno || *end || end == num || *num < '1' || *num > '9' || pid > INT_MAX)
			continue;
		/* gone, or a zombie (its parent died too and nobody reaped it): no more waits */
		if (!shm_pid_is_running((pid_t)pid, 0))
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/*
 * Make our FIFO with the segment's mode and group (whoever may open the segment may wake
 * us) and open it read-write. A file of that name is a dead process's (our pid is ours):
 * replaced. Returns the descriptor or -errno; a taken name another user's is -EEXIST.
 */
static int fifo_make(struct shm_seg *seg, const char *path)
{
	mode_t mode = 0600;
	struct stat st, sst;
	int fd, r;

	if (seg->fd >= 0 && fstat(seg->fd, &sst) == 0)
		mode = (sst.st_mode & 0660) | 0600;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	/* 0600 first: no one else opens it before its mode and group are the segment's */
	if (mkfifo(path, 0600) < 0)
		return -errno;
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		goto out_unlink;
	}
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || st.st_uid != geteuid()) {
		r = -EEXIST; /* replaced under us: not ours */
		close(fd);
		return r;
	}
	/* a group-shared segment: its group may wake us (fails unless we are in it: then only
	 * our uid can, as with the segment) */
	if (seg->fd >= 0 && st.st_gid != sst.st_gid)
		(void)fchown(fd, (uid_t)-1, sst.st_gid);
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		close(fd);
		goto out_unlink;
	}
	return fd;
out_unlink:
	unlink(path);
	return r;
}

/* Set up the fd path's FIFO; without one, say why once and poll instead (see the top). */
static void fifo_setup(struct ipc_waiter *w)
{
	int r;

	w->fifo_pid = getpid();
	fifo_path(w->fifo, sizeof(w->fifo), w->seg->instance, w->fifo_pid);
	ipc_wake_sweep();
	r = fifo_make(w->seg, w->fifo);
	if (r >= 0) {
		w->fd = r;
		return;
	}
	fprintf(stderr,
		"shoal: pid %d: cannot make its wake FIFO %s: %s%s; it looks for work every %u "
		"ms instead of sleeping until woken\n",
		(int)w->fifo_pid, w->fifo, strerror(-r),
		r == -EEXIST || r == -EPERM ? " (another user's file has that name: remove it)"
					    : "",
		IPC_POLL_MS);
	w->fifo[0] = 0;
}

/*
 * The half of ipc_waiter_create() that needs no process slot: probe, ring, FIFO. A
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
		mech = has_uring_futex() ? IPC_WAKE_FUTEX : IPC_WAKE_FIFO;
	if (mech == IPC_WAKE_FUTEX && !has_uring_futex())
		return -ENOSYS;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->seg = seg;
	w->mech = mech;
	w->asym = ipc_park_wants_barrier();
	w->fd = -1;
	w->sup_pidfd = -1;
	r = io_uring_queue_init(64, &w->ring, 0);
	if (r < 0)
		goto out_free;
	if (mech == IPC_WAKE_FIFO)
		fifo_setup(w);
	*out = w;
	return 0;
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
 * The other half: publish a prepared waiter's mechanism (and FIFO) on the wake line of
 * the process slot the caller now owns; a client's also starts watching the supervisor.
 * Returns 0 or -EROFS (no process slot). Its owner.
 */
int ipc_waiter_attach(struct ipc_waiter *w)
{
	struct shm_proc *p;

	if (w->seg->self == UINT32_MAX)
		return -EROFS;
	p = shm_proc_at(w->seg, w->seg->self);
	/* relaxed: our own slot's, stored by our claim */
	if (atomic_load_explicit(&p->role, memory_order_relaxed) == SHM_ROLE_CLIENT &&
	    w->sup_pidfd < 0)
		watch_supervisor(w);
	/* for producers in this process; relaxed: published by M0 below, read by the owner */
	atomic_store_explicit(&p->eventfd, w->fd, memory_order_relaxed);
	/* relaxed: owner-written; the release store of wake_mech below publishes eventfd */
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
	/* M0: pairs with M1 in ring_one(): FIFO fd number before the mechanism. */
	atomic_store_explicit(&p->wake_mech, (uint32_t)w->mech, memory_order_release);
	return 0;
}

/*
 * Set up the calling process's waiter: its ring, and its wake line's mechanism (and
 * FIFO). Returns 0, -ENOSYS (a forced futex path on a kernel without it), -EROFS (no
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
		/* relaxed: only this process reads it (its own producers) */
		atomic_store_explicit(&p->eventfd, -1, memory_order_relaxed);
	}
	io_uring_queue_exit(&w->ring);
	if (w->fd >= 0)
		close(w->fd);
	/* a forked child's copy is its parent's FIFO: not the child's to remove */
	if (w->fifo[0] && w->fifo_pid == getpid())
		unlink(w->fifo);
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

/*
 * Queue this park's request (and its link timeout). Returns 1 (a link timeout queued), 0
 * (none), or -errno.
 */
static int queue_park(struct ipc_waiter *w, uint32_t d, uint64_t timeout_ns)
{
	struct shm_proc *p = shm_proc_at(w->seg, w->seg->self);
	struct io_uring_sqe *sqe = ipc_uring_sqe(&w->ring);

	if (!sqe)
		return -EBUSY;
	w->poll_deadline = false;
	if (w->mech == IPC_WAKE_FUTEX) {
		ipc_prep_futex(sqe, IORING_OP_FUTEX_WAIT, &p->doorbell, d);
	} else if (w->fd >= 0) {
		io_uring_prep_read(sqe, w->fd, w->fd_buf, sizeof(w->fd_buf), 0);
	} else {
		/* no FIFO: nothing can wake us; the park is a timeout, IPC_POLL_MS at most */
		uint64_t poll_ns = IPC_POLL_MS * UINT64_C(1000000);

		w->poll_deadline = timeout_ns && timeout_ns <= poll_ns;
		if (!w->poll_deadline)
			timeout_ns = poll_ns;
		w->ts.tv_sec = (long long)(timeout_ns / 1000000000u);
		w->ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
		io_uring_prep_timeout(sqe, &w->ts, 0, 0);
		sqe->user_data = IPC_UD_TAG | IPC_UD_WAIT | w->gen;
		return 0;
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
		return 1;
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
	/*
	 * Before the parked store: whoever takes this park's wake (claim_wake(), after that
	 * store) bumps the doorbell past d, so the wait below cannot sleep through it (see the
	 * top). D2: acquire: pairs with the release increment D3 in claim_wake(): the message
	 * of a ring that ended an earlier park is visible to has_work.
	 */
	d = atomic_load_explicit(&p->doorbell, memory_order_acquire);
	/* relaxed + the fence: the store half of the Dekker pair (see the top) */
	atomic_store_explicit(&p->parked, 1, memory_order_relaxed);
	/* the producers' half of D1 where they skip it (the asymmetric pair, at the top) */
	w->capped = !park_barrier(w);
	/*
	 * D0: pairs with D1 in ipc_ring(): parked store before the has_work loads. A fence:
	 * it orders only atomic accesses, so ThreadSanitizer's not modelling it loses nothing
	 * (see the top for why not seq_cst accesses).
	 */
	atomic_thread_fence(memory_order_seq_cst);
	if (__builtin_expect(ipc_wake_test_hook != NULL, 0))
		ipc_wake_test_hook(IPC_HOOK_PARKED);
	if (has_work(arg)) {
		atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
		return 1;
	}
	w->gen = (w->gen + 1) & IPC_UD_GEN;
	if (w->capped && (!timeout_ns || timeout_ns > IPC_POLL_MS * UINT64_C(1000000)))
		timeout_ns = IPC_POLL_MS * UINT64_C(1000000);
	else
		w->capped = false; /* the caller's timeout comes first: a timeout is its own */
	r = queue_park(w, d, timeout_ns);
	if (r < 0)
		goto out_unpark;
	tmo_done = r == 0;
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
				/* a poll without FIFO: its end is a timeout only at the deadline */
				if (cqe->res == -ETIME && w->poll_deadline)
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
	/* a capped park's timeout is not the caller's: work may be there */
	ret = timed_out && !other && !w->capped ? 0 : 1;
	r = w->sup_gone && ret == 1 && !has_work(arg) ? -EOWNERDEAD : 0;
out_unpark:
	atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
	return r < 0 ? r : ret;
}

/* --- producers --- */

struct fd_cache {
	uint64_t own; /* the slot's owner word the fd belongs to */
	int fd;
};
static struct fd_cache *fd_cache;
static pthread_mutex_t fd_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool open_fail_told; /* relaxed: only keeps a second message out */

/* Open the FIFO of the waiter owning a slot (own word own), or -1: said once, on stderr. */
static int fifo_open_peer(struct shm_seg *seg, uint32_t proc, uint64_t own)
{
	char path[IPC_FIFO_PATH_MAX];
	struct stat st;
	int fd, err;

	fifo_path(path, sizeof(path), seg->instance, (pid_t)(own >> 32));
	/* read-write: a FIFO whose waiter died has a reader still, no SIGPIPE (see the top) */
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
		return fd;
	err = fd >= 0 ? EINVAL : errno;
	if (fd >= 0)
		close(fd);
	/* gone: the owner is exiting (a new one makes its own) */
	if (err == ENOENT &&
	    (atomic_load_explicit(&shm_proc_at(seg, proc)->own, memory_order_relaxed) != own ||
	     kill((pid_t)(own >> 32), 0) < 0))
		return -1;
	if (!atomic_exchange_explicit(&open_fail_told, true, memory_order_relaxed))
		fprintf(stderr,
			"shoal: pid %d: cannot open %s to wake process slot %u (pid %d): %s; "
			"that process finds the message when its park ends (further failures "
			"are not reported)\n",
			(int)getpid(), path, proc, (int)(own >> 32),
			err == EINVAL ? "not a FIFO" : strerror(err));
	return -1;
}

/* Our descriptor for process slot proc's FIFO, or -1. */
static int peer_fd(struct shm_seg *seg, uint32_t proc, struct shm_proc *p)
{
	uint64_t own = atomic_load_explicit(&p->own, memory_order_acquire);
	int fd = -1;

	pthread_mutex_lock(&fd_lock);
	if (!fd_cache) {
		fd_cache = calloc(SHM_MAX_PROCS, sizeof(*fd_cache));
		if (!fd_cache)
			goto out_unlock;
	}
	if (fd_cache[proc].own == own && fd_cache[proc].fd >= 0) {
		fd = fd_cache[proc].fd;
		goto out_unlock;
	}
	if (fd_cache[proc].own && fd_cache[proc].fd >= 0)
		close(fd_cache[proc].fd);
	fd_cache[proc].own = own;
	if ((pid_t)(own >> 32) == getpid() && seg->self == proc) {
		/* relaxed: this process stored it (ipc_waiter_attach()) */
		fd = atomic_load_explicit(&p->eventfd, memory_order_relaxed);
		fd = fd >= 0 ? dup(fd) : -1;
	} else {
		fd = fifo_open_peer(seg, proc, own);
	}
	/* a failure is not cached: the next wake tries again */
	fd_cache[proc].fd = fd;
out_unlock:
	pthread_mutex_unlock(&fd_lock);
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

static void wake_fifo(struct shm_seg *seg, uint32_t proc, struct shm_proc *p)
{
	uint8_t one = 1;
	int fd = peer_fd(seg, proc, p);

	if (fd >= 0 && write(fd, &one, 1) < 0) {
		/* EAGAIN: the FIFO is full of wakes, so it will look */
	}
}

/* The syscall of a won wake (or a spurious one: harmless) of process slot proc. */
static void wake_syscall(struct shm_seg *seg, uint32_t proc)
{
	struct shm_proc *p = shm_proc_at(seg, proc);
	/* M1 as in ring_one(): the FIFO's number before the mechanism */
	uint32_t mech = atomic_load_explicit(&p->wake_mech, memory_order_acquire);

	if (mech == IPC_WAKE_FIFO)
		wake_fifo(seg, proc, p);
	else if (mech)
		syscall(SYS_futex, &p->doorbell, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void ring_one(struct shm_seg *seg, uint32_t proc)
{
	struct shm_proc *p = shm_proc_at(seg, proc);
	_Atomic uint32_t *intent = seg->self < shm_hdr(seg)->cfg.max_procs
					   ? &shm_proc_at(seg, seg->self)->wake_intent
					   : NULL;

	/*
	 * Owned from claim_wake() to the syscall: a waker killed in between leaves the waiter
	 * asleep with its parked flag cleared, and the repair of the waker's slot reads whom it
	 * owed (ipc_wake_repair()). relaxed: the owner's own word, read only after its death.
	 */
	if (intent)
		atomic_store_explicit(intent, proc + 1, memory_order_relaxed);
	if (!claim_wake(p)) {
		if (intent)
			atomic_store_explicit(intent, 0, memory_order_relaxed);
		return;
	}
	wake_syscall(seg, proc);
	if (intent)
		atomic_store_explicit(intent, 0, memory_order_relaxed);
}

/* Ring one process's doorbell: a syscall only if it is parked. Producers, any thread. */
void ipc_ring(struct shm_seg *seg, uint32_t proc)
{
	if (proc >= shm_hdr(seg)->cfg.max_procs)
		return;
	/*
	 * D1: pairs with D0 (and the parker's barrier) in ipc_waiter_wait(): our message
	 * before the parked load. A fence or, registered, a compiler barrier (the asymmetric
	 * pair, at the top); over atomic accesses only: nothing for ThreadSanitizer to miss.
	 */
	ipc_ring_fence();
	ring_one(seg, proc);
}

/*
 * Wake every parked process. Repair calls it: a producer killed after it won a park's wake
 * (claim_wake()) but before its syscall would leave that process parked until its timeout.
 * Spurious wakes are harmless. The supervisor (repair), any thread.
 */
static void ipc_wake_parked_all(struct shm_seg *seg);

/* See ipc_int.h. The repairer of a dead process slot. */
void ipc_wake_repair(struct shm_seg *seg, uint32_t dead)
{
	struct shm_proc *d = shm_proc_at(seg, dead);
	uint32_t max = shm_hdr(seg)->cfg.max_procs;
	/* relaxed: the dead owner's own word; its death and our repair order it */
	uint32_t owed = atomic_load_explicit(&d->wake_intent, memory_order_relaxed);

	/* the syscalls it died before: spurious wakes if it had made them after all */
	if (owed == IPC_WAKE_OWES_MANY) {
		/* which of its batch it had woken is not recorded: every waiter there is */
		for (uint32_t i = 0; i < max; i++)
			if (i != dead)
				wake_syscall(seg, i);
	} else if (owed && owed - 1 < max) {
		wake_syscall(seg, owed - 1);
	}
	atomic_store_explicit(&d->wake_intent, 0, memory_order_relaxed);
	ipc_wake_parked_all(seg);
}

static void ipc_wake_parked_all(struct shm_seg *seg)
{
	uint32_t max = shm_hdr(seg)->cfg.max_procs;

	/* D1 (as in ipc_ring()): the repair's stores before the parked loads; atomics only. */
	ipc_ring_fence();
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
 * among procs, write(2) for FIFO waiters. Producers, any thread.
 */
void ipc_ring_many(struct shm_seg *seg, const uint32_t *procs, uint32_t n)
{
	uint32_t nq = 0, max = shm_hdr(seg)->cfg.max_procs;
	_Atomic uint32_t *intent =
		seg->self < max ? &shm_proc_at(seg, seg->self)->wake_intent : NULL;
	struct io_uring_sqe *sqe;

	if (n == 1) {
		ipc_ring(seg, procs[0]);
		return;
	}
	/*
	 * Owed from the first claim_wake() to the last syscall, as in ring_one(); which of the
	 * batch are still owed is not recorded (the repair wakes every waiter). relaxed: as
	 * there.
	 */
	if (intent)
		atomic_store_explicit(intent, IPC_WAKE_OWES_MANY, memory_order_relaxed);
	/* D1 (as in ipc_ring()): our messages before the parked loads; one per batch. */
	ipc_ring_fence();
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
#ifdef SHOAL_TEST_HOOKS
		if (__builtin_expect(ipc_wake_test_hook != NULL, 0))
			ipc_wake_test_hook(IPC_WAKE_HOOK_MANY_CLAIMED);
#endif
		/* M1 (as in ring_one()): pairs with M0 in ipc_waiter_attach(): FIFO fd is set. */
		if (atomic_load_explicit(&p->wake_mech, memory_order_acquire) == IPC_WAKE_FIFO) {
			wake_fifo(seg, procs[i], p);
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
	if (intent)
		atomic_store_explicit(intent, 0, memory_order_relaxed);
}
