/* test_wake: a parked process is woken from another process, over the futex and eventfd paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cmocka.h>

#include "tests/skip.h"
#include <liburing.h>

#include "ipc/ipc_int.h"
#include "ipc/uring_futex.h"
#include "tests/ipc_test_util.h"

struct wbook {
	_Atomic uint32_t slot[4];
	_Atomic uint32_t result[4];
	_Atomic uint32_t mech[4];
};

static struct wbook *wb;

struct peek_ctx {
	struct shm_seg *seg;
	uint32_t slot;
};

static bool has_msg(void *arg)
{
	struct peek_ctx *c = arg;
	struct ipc_msg m;

	return ipc_mbox_peek(c->seg, c->slot, &m) == 0;
}

/* The uid the tests that need a non-root process become (nobody). */
#define NOBODY 65534

/*
 * In a child holding a process slot: become NOBODY, and dumpable again if asked (a uid
 * change clears it, and a non-dumpable process refuses ptrace access on its own, Yama or
 * not). Exits 91 if the uid cannot be dropped.
 */
static void child_become_nobody(bool dumpable)
{
	if (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
		_exit(91);
	if (dumpable && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		_exit(91);
}

/*
 * How a parker runs: as the test's uid; as NOBODY, dumpable or not; as NOBODY dumpable with
 * its FIFO's name taken by another user's file.
 */
enum parker_uid { AS_SELF, AS_NOBODY, AS_NOBODY_UNDUMPABLE, AS_NOBODY_NAME_TAKEN };

/*
 * In a child: another user's regular file takes the name of our wake FIFO, in the sticky
 * /dev/shm (so we cannot remove it once we are NOBODY). Exits 93 if it cannot.
 */
static void child_take_fifo_name(struct shm_seg *seg)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/shoal.%s:wake.%d", seg->instance, (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || fchown(fd, NOBODY - 1, NOBODY - 1))
		_exit(93);
	close(fd);
}

/*
 * A child that hosts agent `a`, parks without spinning and reports: 1 woken with the
 * message there, 2 woken without it, 3 timed out, 4 error.
 */
static pid_t spawn_parker_as(struct shm_seg *seg, shoal_handle_t a, enum ipc_wake_mech mech, int i,
			     enum parker_uid as)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct peek_ctx c = {seg, shoal_handle_slot(a)};
		struct ipc_waiter *w;
		int r;

		it_child_claim(seg);
		if (as == AS_NOBODY_NAME_TAKEN)
			child_take_fifo_name(seg);
		if (as != AS_SELF)
			child_become_nobody(as != AS_NOBODY_UNDUMPABLE);
		if (ipc_waiter_create(seg, mech, &w))
			_exit(77);
		atomic_store(&wb->mech[i], ipc_waiter_mech(w));
		it_host(seg, a, seg->self);
		atomic_store(&wb->slot[i], seg->self + 1);
		r = ipc_waiter_wait(w, 0, 10000000000ull, has_msg, &c, NULL);
		/*
		 * Without its FIFO (the name taken) a waiter parks IPC_POLL_MS at a time and
		 * looks: each look that finds nothing is a return of 1, as a real waiter's loop
		 * sees it. Loop as it does (until the message, or the 10 s): a single park here
		 * made the test a race the parent lost under load (it had to send within 10 ms).
		 */
		if (as == AS_NOBODY_NAME_TAKEN) {
			uint64_t dl = shm_now_ns() + 10000000000ull;

			while (r == 1 && !has_msg(&c) && shm_now_ns() < dl)
				r = ipc_waiter_wait(w, 0, dl - shm_now_ns(), has_msg, &c, NULL);
		}
		atomic_store(&wb->result[i], r == 1 ? (has_msg(&c) ? 1 : 2) : r == 0 ? 3 : 4);
		ipc_waiter_destroy(w);
		_exit(0);
	}
	return pid;
}

static pid_t spawn_parker(struct shm_seg *seg, shoal_handle_t a, enum ipc_wake_mech mech, int i)
{
	return spawn_parker_as(seg, a, mech, i, AS_SELF);
}

/* Wait until child i has parked (its wake line says so). */
static uint32_t wait_parked(struct shm_seg *seg, int i)
{
	uint32_t slot;

	{
		uint64_t end = shm_now_ns() + 10000000000ull;

		while (!atomic_load(&wb->slot[i]))
			assert_true(shm_now_ns() < end);
		slot = atomic_load(&wb->slot[i]) - 1;
		while (!atomic_load(&shm_proc_at(seg, slot)->parked))
			assert_true(shm_now_ns() < end);
	}
	return slot;
}

/*
 * A parker (child 0) hosting `a` on wakeup path mech, parked; its slot in *slot. Skips the
 * test where the kernel lacks that path (the child would exit before parking, and
 * wait_parked() would wait in vain).
 */
static pid_t spawn_parked(struct shm_seg *seg, shoal_handle_t a, enum ipc_wake_mech mech,
			  uint32_t *slot)
{
	pid_t pid;

	if (mech == IPC_WAKE_FUTEX) {
		struct ipc_waiter *w;

		if (ipc_waiter_prepare(seg, mech, &w) == -ENOSYS)
			skip_because("the io_uring futex path needs Linux 6.7+");
		ipc_waiter_destroy(w);
	}
	pid = spawn_parker(seg, a, mech, 0);
	*slot = wait_parked(seg, 0);
	return pid;
}

static void wake_one(enum ipc_wake_mech mech)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot;
	pid_t pid;
	int st;

	memset(wb, 0, sizeof(*wb));
	pid = spawn_parked(seg, a, mech, &slot);
	assert_int_equal(atomic_load(&shm_proc_at(seg, slot)->wake_mech), mech);
	/*
	 * Asleep for real, not between its parked store and its look for work: that window now
	 * holds the parker's membarrier (a syscall), and a message sent inside it is found by
	 * the look, with no wake to count
	 */
	{
		uint64_t dl = shm_now_ns() + 10000000000ull;

		while (shm_pid_state(pid) != 'S') {
			assert_true(shm_now_ns() < dl);
			sched_yield();
		}
	}
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "wake up", 8, 0), 0);
	st = it_wait_child(pid, 10000);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		skip_because("the child found this wakeup path unsupported by the running kernel");
	assert_true(it_ok(st));
	assert_int_equal(atomic_load(&wb->result[0]), 1);
	assert_int_equal(atomic_load(&wb->mech[0]), mech);
	/* exactly one syscall woke it */
	assert_int_equal(atomic_load(&shm_proc_at(seg, slot)->wakes), 1);
	it_destroy(seg);
}

static void test_wake_futex(void **state)
{
	(void)state;
	wake_one(IPC_WAKE_FUTEX);
}

static void test_wake_eventfd(void **state)
{
	(void)state;
	wake_one(IPC_WAKE_EVENTFD);
}

/*
 * A producer killed after it won a parked waiter's wake (claim_wake(): parked 1 -> 0, the
 * doorbell bumped) but before its syscall: the repair of its slot (ipc_wake_repair()) must
 * still wake the waiter, whose parked flag that producer had cleared.
 */
static void wake_after_dead_waker(enum ipc_wake_mech mech)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	struct ipc_wire wire = {.from = 0, .type = 0, .len = 8};
	struct shm_proc *p;
	uint32_t slot, one = 1;
	pid_t pid;
	int st;

	memset(wb, 0, sizeof(*wb));
	pid = spawn_parked(seg, a, mech, &slot);
	p = shm_proc_at(seg, slot);
	/* asleep in its io_uring for real, not between its parked store and the syscall */
	{
		uint64_t dl = shm_now_ns() + 10000000000ull;

		while (shm_pid_state(pid) != 'S') {
			assert_true(shm_now_ns() < dl);
			sched_yield();
		}
	}
	/* the dead producer's message, published, never rung */
	assert_int_equal(
		ipc_mbox_put(seg, shoal_handle_slot(a), shoal_handle_gen(a), &wire, "wake up", 0),
		0);
	/*
	 * ... and its half of the wake, as ring_one() does it in the producer's own slot (this
	 * process's, standing for the dead one): the intent, the won park, the doorbell; then
	 * it "died" before its syscall
	 */
	atomic_store(&shm_proc_at(seg, seg->self)->wake_intent, slot + 1);
	assert_true(atomic_compare_exchange_strong(&p->parked, &one, 0));
	atomic_fetch_add(&p->doorbell, 1);
	/* the repair of the dead producer's slot ends with this */
	ipc_wake_repair(seg, seg->self);
	assert_int_equal(atomic_load(&shm_proc_at(seg, seg->self)->wake_intent), 0);
	st = it_wait_child(pid, 5000); /* the parker's own timeout is 10 s */
	assert_true(it_ok(st));
	assert_int_equal(atomic_load(&wb->result[0]), 1);
	it_destroy(seg);
}

static void test_wake_after_dead_waker_futex(void **state)
{
	(void)state;
	wake_after_dead_waker(IPC_WAKE_FUTEX);
}

static void test_wake_after_dead_waker_fifo(void **state)
{
	(void)state;
	wake_after_dead_waker(IPC_WAKE_FIFO);
}

/* No syscall while the consumer is not parked. */
static void test_wake_no_syscall_unparked(void **state)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	shoal_handle_t a = it_agent(seg);

	(void)state;
	it_host(seg, a, seg->self);
	for (int i = 0; i < 10; i++)
		assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "x", 1, 0), 0);
	assert_int_equal(atomic_load(&shm_proc_at(seg, seg->self)->wakes), 0);
	it_destroy(seg);
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static void wait_timeout(enum ipc_wake_mech mech)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	struct ipc_waiter *w;
	uint64_t t0;
	int r;

	r = ipc_waiter_create(seg, mech, &w);
	if (r == -ENOSYS)
		skip_because("this wakeup path is not supported by the running kernel");
	assert_int_equal(r, 0);
	t0 = shm_now_ns();
	assert_int_equal(ipc_waiter_wait(w, 1000, 20000000u, never, NULL, NULL), 0);
	assert_true(shm_now_ns() - t0 >= 20000000u);
	assert_int_equal(atomic_load(&shm_proc_at(seg, seg->self)->parked), 0);
	/* twice: no completion of the first park confuses the second */
	assert_int_equal(ipc_waiter_wait(w, 0, 5000000u, never, NULL, NULL), 0);
	ipc_waiter_destroy(w);
	it_destroy(seg);
}

static void test_wake_timeout_futex(void **state)
{
	(void)state;
	wait_timeout(IPC_WAKE_FUTEX);
}

static void test_wake_timeout_eventfd(void **state)
{
	(void)state;
	wait_timeout(IPC_WAKE_EVENTFD);
}

static int seen_ud;

static void on_cqe(struct io_uring_cqe *cqe, void *arg)
{
	(void)arg;
	seen_ud = (int)cqe->user_data;
}

/* A request the caller added to the waiter's ring ends the park and reaches on_cqe. */
static void test_wake_caller_request(void **state)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 2000000};
	struct io_uring_sqe *sqe;
	struct ipc_waiter *w;

	(void)state;
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	sqe = io_uring_get_sqe(ipc_waiter_ring(w));
	io_uring_prep_timeout(sqe, &ts, 0, 0);
	sqe->user_data = 7;
	seen_ud = 0;
	assert_int_equal(ipc_waiter_wait(w, 0, 10000000000ull, never, NULL, on_cqe), 1);
	assert_int_equal(seen_ud, 7);
	/* the cancelled park leaves nothing behind: the next wait times out normally */
	assert_int_equal(ipc_waiter_wait(w, 0, 3000000u, never, NULL, on_cqe), 0);
	ipc_waiter_destroy(w);
	it_destroy(seg);
}

/*
 * A batch to three parked processes (two futex, one eventfd): one ring call at the end
 * (the futex wakes in one io_uring submission); every one wakes with its message.
 */
static void test_wake_ring_many(void **state)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	shoal_handle_t h[3] = {it_agent(seg), it_agent(seg), it_agent(seg)};
	enum ipc_wake_mech mech[3] = {IPC_WAKE_AUTO, IPC_WAKE_AUTO, IPC_WAKE_EVENTFD};
	struct ipc_out out[3];
	pid_t pid[3];

	(void)state;
	memset(wb, 0, sizeof(*wb));
	for (int i = 0; i < 3; i++) {
		pid[i] = spawn_parker(seg, h[i], mech[i], i);
		wait_parked(seg, i);
		out[i] = (struct ipc_out){h[i], 0, 2, "m"};
	}
	assert_int_equal(ipc_send_batch(seg, 0, out, 3, 0), 3);
	for (int i = 0; i < 3; i++) {
		assert_true(it_ok(it_wait_child(pid[i], 10000)));
		assert_int_equal(atomic_load(&wb->result[i]), 1);
	}
	it_destroy(seg);
}

/* --- park and ring between threads of one mapping (for ThreadSanitizer) --- */

#define WT_PRODUCERS 2
#define WT_MSGS	     3000 /* per producer and consumer */

/* A message of producer `from`, its seq-th to this consumer; len bytes, each filled. */
struct wt_msg {
	uint32_t from;
	uint32_t seq;
	uint8_t fill[40];
};

static _Atomic uint32_t wt_done; /* consumer threads finished */

struct wt_consumer {
	struct shm_seg seg; /* a copy of the attachment, with its own process slot */
	shoal_handle_t a;   /* the agent it hosts */
	enum ipc_wake_mech mech;
	int result; /* 0, or what went wrong: -ETIMEDOUT a lost wake, -EBADMSG order */
	uint32_t got;
	uint64_t parks;
};

struct wt_producer {
	struct shm_seg seg; /* as the consumer's */
	uint32_t me;
	struct wt_consumer *c;
	uint32_t nc;
	int result;
};

/* A copy of seg's attachment for a thread, with a process slot of its own (pid: ours). */
static void wt_attach(struct shm_seg *copy, const struct shm_seg *seg)
{
	*copy = *seg;
	copy->self = UINT32_MAX;
	assert_int_equal(shm_proc_claim(copy, SHM_ROLE_CLIENT, false), 0);
	shm_proc_set_state(copy, SHM_PROC_RUNNING);
}

static void *wt_consume(void *arg)
{
	struct wt_consumer *c = arg;
	struct peek_ctx pc = {&c->seg, shoal_handle_slot(c->a)};
	uint32_t next[WT_PRODUCERS] = {0};
	struct ipc_waiter *w;

	c->result = ipc_waiter_create(&c->seg, c->mech, &w);
	if (c->result) {
		atomic_fetch_add(&wt_done, 1);
		syscall(SYS_futex, &wt_done, FUTEX_WAKE, 1, NULL, NULL, 0);
		return NULL;
	}
	while (c->got < WT_PRODUCERS * WT_MSGS) {
		struct ipc_msg m;
		struct wt_msg b;

		/* no spin: park whenever the mailbox is empty */
		if (ipc_mbox_peek(&c->seg, pc.slot, &m)) {
			int r = ipc_waiter_wait(w, 0, 10000000000ull, has_msg, &pc, NULL);

			c->parks++;
			if (r != 1) {
				c->result = r ? r : -ETIMEDOUT;
				break;
			}
			continue;
		}
		memcpy(&b, m.data, sizeof(b));
		if (m.len != sizeof(b) || b.from >= WT_PRODUCERS || b.seq != next[b.from]++ ||
		    b.fill[0] != (uint8_t)b.seq || b.fill[39] != (uint8_t)b.seq) {
			c->result = -EBADMSG;
			break;
		}
		ipc_mbox_consume(&c->seg, pc.slot, &m);
		c->got++;
	}
	ipc_waiter_destroy(w);
	atomic_fetch_add(&wt_done, 1);
	syscall(SYS_futex, &wt_done, FUTEX_WAKE, 1, NULL, NULL, 0);
	return NULL;
}

/*
 * Every consumer's messages, in order: one ipc_send() at a time (its inline check of the
 * parked flag, ipc_ring()), or one batch to all (ipc_send_batch(): ipc_ring_many()), each
 * waiting for space when a mailbox is full.
 */
static void *wt_produce(void *arg)
{
	struct wt_producer *p = arg;
	struct wt_msg b[4];
	struct ipc_out out[4];

	for (uint32_t i = 0; i < WT_MSGS && !p->result; i++) {
		for (uint32_t k = 0; k < p->nc; k++) {
			b[k] = (struct wt_msg){.from = p->me, .seq = i};
			memset(b[k].fill, (uint8_t)i, sizeof(b[k].fill));
			out[k] = (struct ipc_out){p->c[k].a, 0, sizeof(b[k]), &b[k]};
		}
		if (i % 2) {
			int r = ipc_send_batch(&p->seg, 0, out, p->nc, 10000);

			p->result = r == (int)p->nc ? 0 : r < 0 ? r : -EIO;
		} else {
			for (uint32_t k = 0; k < p->nc && !p->result; k++)
				p->result = ipc_send(&p->seg, out[k].to, 0, 0, 0, 0, out[k].data,
						     out[k].len, 10000);
		}
	}
	return NULL;
}

/*
 * Consumer threads that park as soon as their mailbox is empty (one on the io_uring futex
 * path where the kernel has it, one on the FIFO path; a FIFO is named by pid, so one per
 * process) and producer threads that send to them, in small mailboxes (full waits), over
 * one mapping while the main thread runs the repair's wake of every parked process: no
 * wake is lost (a park that ends by its 10 s timeout fails the test), every message
 * arrives once and in order. For ThreadSanitizer: the doorbell, the parked flag and the
 * mailboxes' space words, ordered by the Dekker fences D0/D1 and W2/W3. A lost wake from
 * a missing fence is not something ThreadSanitizer reports (it does not model store
 * buffering); the timeout is what would catch that, rarely.
 */
static void test_wake_park_ring_threads(void **state)
{
	struct shm_seg *seg = it_create("wake", 16, 256);
	struct wt_consumer c[2] = {{.mech = IPC_WAKE_FIFO}, {.mech = IPC_WAKE_FUTEX}};
	struct wt_producer p[WT_PRODUCERS];
	pthread_t ct[2], pt[WT_PRODUCERS];
	uint32_t nc = 1;
	struct ipc_waiter *probe;
	struct ipc_mbox_stats st;

	(void)state;
	atomic_store(&wt_done, 0);
	if (ipc_waiter_prepare(seg, IPC_WAKE_FUTEX, &probe) == 0) {
		ipc_waiter_destroy(probe);
		nc = 2;
	}
	for (uint32_t k = 0; k < nc; k++) {
		wt_attach(&c[k].seg, seg);
		c[k].a = it_agent(seg);
		it_host(seg, c[k].a, c[k].seg.self);
		assert_int_equal(pthread_create(&ct[k], NULL, wt_consume, &c[k]), 0);
	}
	for (uint32_t i = 0; i < WT_PRODUCERS; i++) {
		p[i] = (struct wt_producer){.me = i, .c = c, .nc = nc};
		wt_attach(&p[i].seg, seg);
		assert_int_equal(pthread_create(&pt[i], NULL, wt_produce, &p[i]), 0);
	}
	/*
	 * The repair's wake of every parked process (ipc_wake_parked_all()), for a slot that
	 * owed none, between waits on the count of finished consumers (a futex the consumers
	 * wake as they finish; 1 ms at most each, so the repair keeps racing them).
	 */
	for (uint64_t end = shm_now_ns() + 60000000000ull;
	     atomic_load(&wt_done) < nc && shm_now_ns() < end;) {
		uint32_t done = atomic_load(&wt_done);
		struct timespec ms = {0, 1000000};

		ipc_wake_repair(seg, seg->self);
		syscall(SYS_futex, &wt_done, FUTEX_WAIT, done, &ms, NULL, 0);
	}
	for (uint32_t i = 0; i < WT_PRODUCERS; i++)
		assert_int_equal(pthread_join(pt[i], NULL), 0);
	for (uint32_t k = 0; k < nc; k++)
		assert_int_equal(pthread_join(ct[k], NULL), 0);
	for (uint32_t i = 0; i < WT_PRODUCERS; i++)
		if (p[i].result)
			fail_msg("producer %u: %s (consumers: %d after %u messages, %d after %u)",
				 i, strerror(-p[i].result), c[0].result, c[0].got, c[1].result,
				 c[1].got);
	for (uint32_t k = 0; k < nc; k++) {
		if (c[k].result)
			fail_msg("%s consumer: %s after %u messages",
				 c[k].mech == IPC_WAKE_FUTEX ? "futex" : "fifo",
				 strerror(-c[k].result), c[k].got);
		assert_int_equal(c[k].got, WT_PRODUCERS * WT_MSGS);
		ipc_mbox_stats(seg, shoal_handle_slot(c[k].a), &st);
		print_message(
			"%s consumer: %llu parks, %llu wakes, %llu sends waited for space\n",
			c[k].mech == IPC_WAKE_FUTEX ? "futex" : "fifo",
			(unsigned long long)c[k].parks,
			(unsigned long long)atomic_load(&shm_proc_at(seg, c[k].seg.self)->wakes),
			(unsigned long long)st.full_waits);
	}
	it_destroy(seg);
}

static struct shm_seg *late_seg;

/* A ring that comes late: its message was consumed before this park began. */
static void late_ring(int point)
{
	if (point == IPC_HOOK_PARKED)
		ipc_ring(late_seg, late_seg->self);
}

/*
 * A producer rings a waiter whose park has just begun (its parked flag stored), for a
 * message the waiter consumed before it parked: the ring takes that park's wake (parked
 * 1 -> 0, the doorbell bumped). The park must then end at once, a spurious wake, not sleep
 * with its parked flag clear: every later producer would skip its ring, and its messages
 * would wait for the park's timeout (a lost wake; test_wake_park_ring_threads met it).
 */
static void test_wake_late_ring_ends_park(void **state)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	struct ipc_waiter *w;
	uint64_t t0;
	int r;

	(void)state;
	r = ipc_waiter_create(seg, IPC_WAKE_FUTEX, &w);
	if (r == -ENOSYS)
		skip_because("the io_uring futex path needs Linux 6.7+");
	assert_int_equal(r, 0);
	late_seg = seg;
	ipc_wake_test_hook = late_ring;
	t0 = shm_now_ns();
	r = ipc_waiter_wait(w, 0, 2000000000u, never, NULL, NULL);
	ipc_wake_test_hook = NULL;
	assert_int_equal(atomic_load(&shm_proc_at(seg, seg->self)->wakes), 1);
	if (r != 1 || shm_now_ns() - t0 > 1000000000u)
		fail_msg("the park whose wake a late ring took slept %llu ms (returned %d), its "
			 "parked flag clear",
			 (unsigned long long)((shm_now_ns() - t0) / 1000000u), r);
	ipc_waiter_destroy(w);
	it_destroy(seg);
}

/* Die at the second wake won: one syscall made (FIFO) or queued (io_uring), one not. */
static void die_at_second_wake(int point)
{
	static int won;

	if (point == IPC_WAKE_HOOK_MANY_CLAIMED && ++won == 2)
		raise(SIGKILL);
}

/*
 * A batched waker (ipc_ring_many()) killed after it won several parked waiters' wakes but
 * before its syscalls: the repair of its slot must wake every one of them, as
 * wake_after_dead_waker() checks for a single wake. Both parkers wait on wakeup path m.
 */
static void wake_after_dead_many_waker(enum ipc_wake_mech m)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	shoal_handle_t h[2] = {it_agent(seg), it_agent(seg)};
	pid_t pid[2], waker;
	uint32_t slot[2];
	_Atomic uint32_t *waker_slot = it_shared(sizeof(*waker_slot));
	int st;

	need_test_hooks();
	memset(wb, 0, sizeof(*wb));
	pid[0] = spawn_parked(seg, h[0], m, &slot[0]);
	pid[1] = spawn_parker(seg, h[1], m, 1);
	slot[1] = wait_parked(seg, 1);
	waker = fork();
	assert_true(waker >= 0);
	if (waker == 0) {
		struct ipc_wire wire = {.from = 0, .type = 0, .len = 8};

		it_child_claim(seg);
		atomic_store(waker_slot, seg->self + 1);
		/* the messages, published; the wakes won, then death before the syscalls */
		for (int i = 0; i < 2; i++)
			if (ipc_mbox_put(seg, shoal_handle_slot(h[i]), shoal_handle_gen(h[i]),
					 &wire, "wake up", 0))
				_exit(2);
		ipc_wake_test_hook = die_at_second_wake;
		ipc_ring_many(seg, slot, 2);
		_exit(3); /* the hook did not fire */
	}
	st = it_wait_child(waker, 10000);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	for (int i = 0; i < 2; i++)
		assert_int_equal(atomic_load(&shm_proc_at(seg, slot[i])->parked), 0);
	ipc_wake_repair(seg, atomic_load(waker_slot) - 1);
	for (int i = 0; i < 2; i++) {
		/* the parkers' own timeout is 10 s */
		assert_true(it_ok(it_wait_child(pid[i], 5000)));
		assert_int_equal(atomic_load(&wb->result[i]), 1);
	}
	munmap(waker_slot, sizeof(*waker_slot));
	it_destroy(seg);
}

static void test_wake_after_dead_many_waker_futex(void **state)
{
	(void)state;
	wake_after_dead_many_waker(IPC_WAKE_FUTEX);
}

static void test_wake_after_dead_many_waker_fifo(void **state)
{
	(void)state;
	wake_after_dead_many_waker(IPC_WAKE_FIFO);
}

/* SHOAL_WAKE forces the mechanism AUTO picks. */
static void test_wake_env_forces(void **state)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	struct ipc_waiter *w;

	(void)state;
	setenv("SHOAL_WAKE", "eventfd", 1);
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	assert_int_equal(ipc_waiter_mech(w), IPC_WAKE_EVENTFD);
	ipc_waiter_destroy(w);
	setenv("SHOAL_WAKE", "futex", 1);
	if (ipc_waiter_create(seg, IPC_WAKE_AUTO, &w) == 0) {
		assert_int_equal(ipc_waiter_mech(w), IPC_WAKE_FUTEX);
		ipc_waiter_destroy(w);
	}
	unsetenv("SHOAL_WAKE");
	it_destroy(seg);
}

/*
 * The path an AUTO waiter picks is the one the kernel offers: the io_uring futex when the
 * kernel's io_uring supports FUTEX_WAIT and FUTEX_WAKE (asked here through the probe of a
 * ring of the test's own), else the FIFO; never the futex on a kernel older than 6.7, where
 * those opcodes do not exist. $SHOAL_TEST_EXPECT_WAKE (futex or fifo) states the path the
 * caller knows the kernel must give (the qemu guest's 6.1: fifo).
 */
static void test_wake_auto_matches_kernel(void **state)
{
	const char *expect = getenv("SHOAL_TEST_EXPECT_WAKE");
	char *forced = getenv("SHOAL_WAKE") ? strdup(getenv("SHOAL_WAKE")) : NULL;
	struct shm_seg *seg = it_create("wake", 256, 4096);
	struct io_uring_probe *probe;
	struct io_uring ring;
	struct ipc_waiter *w;
	struct utsname u;
	int major = 0, minor = 0;
	bool futex_ops;

	(void)state;
	/* the meson run over the fd path sets SHOAL_WAKE: AUTO must decide by itself here */
	unsetenv("SHOAL_WAKE");
	assert_int_equal(io_uring_queue_init(4, &ring, 0), 0);
	probe = io_uring_get_probe_ring(&ring);
	assert_non_null(probe);
	futex_ops = io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAIT) &&
		    io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAKE);
	io_uring_free_probe(probe);
	io_uring_queue_exit(&ring);
	assert_int_equal(uname(&u), 0);
	assert_int_equal(sscanf(u.release, "%d.%d", &major, &minor), 2);

	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	print_message("kernel %s: io_uring futex %s, AUTO picked the %s path\n", u.release,
		      futex_ops ? "supported" : "absent",
		      ipc_waiter_mech(w) == IPC_WAKE_FUTEX ? "futex" : "FIFO");
	assert_int_equal(ipc_waiter_mech(w), futex_ops ? IPC_WAKE_FUTEX : IPC_WAKE_FIFO);
	if (major < 6 || (major == 6 && minor < 7))
		assert_int_equal(ipc_waiter_mech(w), IPC_WAKE_FIFO);
	if (expect && !strcmp(expect, "fifo"))
		assert_int_equal(ipc_waiter_mech(w), IPC_WAKE_FIFO);
	else if (expect && !strcmp(expect, "futex"))
		assert_int_equal(ipc_waiter_mech(w), IPC_WAKE_FUTEX);
	else if (expect)
		fail_msg("SHOAL_TEST_EXPECT_WAKE is '%s': give futex or fifo", expect);
	ipc_waiter_destroy(w);
	if (forced) {
		setenv("SHOAL_WAKE", forced, 1);
		free(forced);
	}
	it_destroy(seg);
}

/* Does the running kernel do membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)? */
static bool kernel_has_global_membarrier(void)
{
	int r = (int)syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	return r > 0 && (r & MEMBARRIER_CMD_GLOBAL_EXPEDITED);
}

/*
 * The asymmetric wake pair (ipc/wake.c): where the kernel has membarrier's GLOBAL_EXPEDITED,
 * a waiter's parks issue it and a process that rings registers and skips its fence; a
 * forked child decides again at its own first ring; SHOAL_MEMBARRIER=off keeps the fences
 * (and the parks without the barrier). Child exit codes name the check that failed.
 */
static void test_wake_asym_mode(void **state)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	struct ipc_waiter *w;
	bool sender = false;
	pid_t pid;

	(void)state;
	if (!kernel_has_global_membarrier())
		skip_because("the kernel lacks membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)");
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	assert_true(ipc_wake_is_asym(w, &sender));
	assert_true(sender);
	assert_int_equal(atomic_load(&ipc_asym_state), IPC_ASYM_ON);
	ipc_waiter_destroy(w);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		bool s = false;

		if (atomic_load(&ipc_asym_state) != IPC_ASYM_UNKNOWN)
			_exit(10); /* the parent's registration is not the child's */
		ipc_wake_is_asym(NULL, &s);
		_exit(s ? 0 : 11);
	}
	assert_true(it_ok(it_wait_child(pid, 10000)));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		bool s = true;

		setenv("SHOAL_MEMBARRIER", "off", 1);
		it_child_claim(seg);
		if (ipc_waiter_create(seg, IPC_WAKE_AUTO, &w))
			_exit(12);
		if (ipc_wake_is_asym(w, &s))
			_exit(13); /* a waiter that issues the barrier */
		_exit(s ? 14 : 0);
	}
	assert_true(it_ok(it_wait_child(pid, 10000)));
	it_destroy(seg);
}

#define AP_MSGS 4000u

/*
 * A producer process sends AP_MSGS messages one ipc_send() at a time to a consumer (this
 * process) that parks, without spinning, whenever its mailbox is empty: every other message
 * is sent once the consumer is seen parked, the others straight after the previous one
 * (racing the park's start). No park may end by its 10 s timeout (a lost wake); every
 * message arrives, in order. With the asymmetric pair, the producer's fence is the
 * consumer's membarrier(): across processes, which MEMBARRIER_CMD_PRIVATE_EXPEDITED would
 * not reach. off: both sides with SHOAL_MEMBARRIER=off (the fences).
 */
static void asym_park_ring_processes(bool off)
{
	struct shm_seg *seg = it_create("wake", 64, 256);
	shoal_handle_t a = it_agent(seg);
	struct peek_ctx c = {seg, shoal_handle_slot(a)};
	struct ipc_waiter *w;
	struct shm_proc *me = shm_proc_at(seg, seg->self);
	uint32_t got = 0, timeouts = 0;
	pid_t pid;

	if (off)
		setenv("SHOAL_MEMBARRIER", "off", 1);
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	assert_true(ipc_wake_is_asym(w, NULL) == (!off && kernel_has_global_membarrier()));
	it_host(seg, a, seg->self);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		it_child_claim(seg);
		for (uint32_t i = 0; i < AP_MSGS; i++) {
			uint64_t end = shm_now_ns() + 10000000000ull;

			/* every other message: once the consumer is parked (or 10 s passed) */
			while (i % 2 && !atomic_load(&me->parked) && shm_now_ns() < end)
				shm_cpu_relax();
			if (ipc_send(seg, a, 0, 0, 0, 0, &i, sizeof(i), 10000))
				_exit(20);
		}
		_exit(0);
	}
	while (got < AP_MSGS && timeouts == 0) {
		struct ipc_msg m;
		uint32_t v;

		if (ipc_mbox_peek(seg, c.slot, &m)) {
			if (ipc_waiter_wait(w, 0, 10000000000ull, has_msg, &c, NULL) == 0)
				timeouts++;
			continue;
		}
		memcpy(&v, m.data, sizeof(v));
		assert_int_equal(v, got);
		ipc_mbox_consume(seg, c.slot, &m);
		got++;
	}
	assert_true(it_ok(it_wait_child(pid, 20000)));
	assert_int_equal(timeouts, 0);
	assert_int_equal(got, AP_MSGS);
	print_message("%u messages, %llu wakes\n", got,
		      (unsigned long long)atomic_load(&me->wakes));
	ipc_waiter_destroy(w);
	unsetenv("SHOAL_MEMBARRIER");
	it_destroy(seg);
}

static void test_wake_asym_park_ring_processes(void **state)
{
	(void)state;
	asym_park_ring_processes(false);
}

static void test_wake_fenced_park_ring_processes(void **state)
{
	(void)state;
	asym_park_ring_processes(true);
}

/* Yama's ptrace_scope as it was before a test raised it, or -1 (untouched). */
static int yama_saved = -1;
#define YAMA_SCOPE "/proc/sys/kernel/yama/ptrace_scope"

/* Yama's ptrace_scope, or -1 (no Yama in this kernel, or unreadable). */
static int yama_scope(void)
{
	FILE *f = fopen(YAMA_SCOPE, "r");
	int v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static bool yama_set(int v)
{
	FILE *f = fopen(YAMA_SCOPE, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%d\n", v) > 0;
	return fclose(f) == 0 && ok;
}

/* Every path out of a test that raised ptrace_scope (a failed assert too) puts it back. */
static int yama_restore(void **state)
{
	(void)state;
	if (yama_saved >= 0 && !yama_set(yama_saved))
		fprintf(stderr, "test_wake: could not restore %s to %d\n", YAMA_SCOPE, yama_saved);
	yama_saved = -1;
	return 0;
}

/*
 * A parked fd-path waiter running as NOBODY is woken by a producer that is not its ancestor,
 * also running as NOBODY (root's CAP_SYS_PTRACE would pass any ptrace check). The waiter is
 * made dumpable or not (as), so the only thing refusing ptrace access is Yama (AS_NOBODY) or
 * the waiter's non-dumpable state (AS_NOBODY_UNDUMPABLE): a wake that needs ptrace rights
 * over the waiter (pidfd_getfd) is lost there, and the waiter times out.
 */
static void wake_from_stranger(enum parker_uid as)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	pid_t waiter, producer;
	int st;

	memset(wb, 0, sizeof(*wb));
	waiter = spawn_parker_as(seg, a, IPC_WAKE_EVENTFD, 0, as);
	wait_parked(seg, 0);
	producer = fork();
	assert_true(producer >= 0);
	if (producer == 0) {
		it_child_claim(seg);
		child_become_nobody(true);
		_exit(ipc_send(seg, a, 0, 0, 0, 0, "wake up", 8, 0) == 0 ? 0 : 92);
	}
	st = it_wait_child(producer, 10000);
	assert_true(it_ok(st));
	st = it_wait_child(waiter, 15000);
	assert_true(it_ok(st));
	/* 3: the wake was lost and the waiter's 10 s park timed out */
	assert_int_equal(atomic_load(&wb->result[0]), 1);
	it_destroy(seg);
}

/* Under Yama ptrace_scope >= 1 (Debian's default on many hosts), a sibling wakes the waiter. */
static void test_wake_eventfd_yama_sibling(void **state)
{
	int scope = yama_scope();

	(void)state;
	if (scope < 0)
		skip_because("no Yama in this kernel (" YAMA_SCOPE " is absent); "
			     "scripts/test.sh --qemu runs this test in a guest that has it");
	if (geteuid() != 0)
		skip_because("needs root: to run the waiter and producer as another uid and to "
			     "set ptrace_scope");
	if (scope == 0) {
		if (!yama_set(1))
			skip_because("cannot set " YAMA_SCOPE " to 1");
		yama_saved = 0;
	}
	wake_from_stranger(AS_NOBODY);
}

/*
 * A non-dumpable waiter (any kernel, Yama or not: ptrace access to it needs CAP_SYS_PTRACE)
 * is woken by a producer of its uid that is not its ancestor.
 */
static void test_wake_eventfd_undumpable_waiter(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip_because("needs root: to run the waiter and producer as another uid");
	wake_from_stranger(AS_NOBODY_UNDUMPABLE);
}

/*
 * A waiter that cannot make its FIFO (another user's file has its name) still gets its
 * message within its poll interval, not at the end of its 10 s park; it says why on stderr.
 */
static void test_wake_fifo_name_taken(void **state)
{
	struct shm_seg *seg;
	shoal_handle_t a;
	char path[128];
	pid_t pid;
	int st;

	(void)state;
	if (geteuid() != 0)
		skip_because("needs root: to make a file owned by another uid");
	seg = it_create("wake", 256, 4096);
	a = it_agent(seg);
	memset(wb, 0, sizeof(*wb));
	pid = spawn_parker_as(seg, a, IPC_WAKE_FIFO, 0, AS_NOBODY_NAME_TAKEN);
	wait_parked(seg, 0);
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "wake up", 8, 0), 0);
	st = it_wait_child(pid, 15000);
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s:wake.%d", seg->instance, (int)pid);
	unlink(path);
	assert_true(it_ok(st));
	assert_int_equal(atomic_load(&wb->result[0]), 1);
	it_destroy(seg);
}

/* A waiter's FIFO is gone after its destroy, and a killed waiter's after the next start. */
static void test_wake_fifo_removed(void **state)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	struct ipc_waiter *w;
	char path[128];
	struct stat st;
	pid_t pid;

	(void)state;
	memset(wb, 0, sizeof(*wb));
	pid = spawn_parker(seg, a, IPC_WAKE_FIFO, 0);
	wait_parked(seg, 0);
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s:wake.%d", seg->instance, (int)pid);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	kill(pid, SIGKILL);
	assert_false(it_ok(it_wait_child(pid, 10000)));
	assert_int_equal(stat(path, &st), 0); /* killed: nobody removed it yet */
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_FIFO, &w), 0);
	assert_int_equal(stat(path, &st), -1); /* the next waiter to start did */
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s:wake.%d", seg->instance, (int)getpid());
	assert_int_equal(stat(path, &st), 0);
	ipc_waiter_destroy(w);
	assert_int_equal(stat(path, &st), -1);
	it_destroy(seg);
}

static int setup(void **state)
{
	(void)state;
	wb = it_shared(sizeof(*wb));
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wake_futex),
		cmocka_unit_test(test_wake_eventfd),
		cmocka_unit_test_teardown(test_wake_eventfd_yama_sibling, yama_restore),
		cmocka_unit_test(test_wake_eventfd_undumpable_waiter),
		cmocka_unit_test(test_wake_fifo_name_taken),
		cmocka_unit_test(test_wake_fifo_removed),
		cmocka_unit_test(test_wake_after_dead_waker_futex),
		cmocka_unit_test(test_wake_after_dead_waker_fifo),
		cmocka_unit_test(test_wake_after_dead_many_waker_futex),
		cmocka_unit_test(test_wake_after_dead_many_waker_fifo),
		cmocka_unit_test(test_wake_no_syscall_unparked),
		cmocka_unit_test(test_wake_timeout_futex),
		cmocka_unit_test(test_wake_timeout_eventfd),
		cmocka_unit_test(test_wake_caller_request),
		cmocka_unit_test(test_wake_ring_many),
		cmocka_unit_test(test_wake_env_forces),
		cmocka_unit_test(test_wake_auto_matches_kernel),
		cmocka_unit_test(test_wake_late_ring_ends_park),
		cmocka_unit_test(test_wake_park_ring_threads),
		cmocka_unit_test(test_wake_asym_mode),
		cmocka_unit_test(test_wake_asym_park_ring_processes),
		cmocka_unit_test(test_wake_fenced_park_ring_processes),
	};

	/* --list: the test names, one a line (the qemu guest runs each in its own process) */
	if (argc > 1 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, setup, NULL);
}
