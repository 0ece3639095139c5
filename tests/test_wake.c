/* test_wake: a parked process is woken from another process, over the futex and eventfd paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tests/skip.h"
#include <liburing.h>

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

/*
 * A child that hosts agent `a`, parks without spinning and reports: 1 woken with the
 * message there, 2 woken without it, 3 timed out, 4 error.
 */
static pid_t spawn_parker(struct shm_seg *seg, shoal_handle_t a, enum ipc_wake_mech mech, int i)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct peek_ctx c = {seg, shoal_handle_slot(a)};
		struct ipc_waiter *w;
		int r;

		it_child_claim(seg);
		if (ipc_waiter_create(seg, mech, &w))
			_exit(77);
		atomic_store(&wb->mech[i], ipc_waiter_mech(w));
		it_host(seg, a, seg->self);
		atomic_store(&wb->slot[i], seg->self + 1);
		r = ipc_waiter_wait(w, 0, 10000000000ull, has_msg, &c, NULL);
		atomic_store(&wb->result[i], r == 1 ? (has_msg(&c) ? 1 : 2) : r == 0 ? 3 : 4);
		ipc_waiter_destroy(w);
		_exit(0);
	}
	return pid;
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

static void wake_one(enum ipc_wake_mech mech)
{
	struct shm_seg *seg = it_create("wake", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot;
	pid_t pid;
	int st;

	memset(wb, 0, sizeof(*wb));
	pid = spawn_parker(seg, a, mech, 0);
	slot = wait_parked(seg, 0);
	assert_int_equal(atomic_load(&shm_proc_at(seg, slot)->wake_mech), mech);
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

static int setup(void **state)
{
	(void)state;
	wb = it_shared(sizeof(*wb));
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wake_futex),
		cmocka_unit_test(test_wake_eventfd),
		cmocka_unit_test(test_wake_no_syscall_unparked),
		cmocka_unit_test(test_wake_timeout_futex),
		cmocka_unit_test(test_wake_timeout_eventfd),
		cmocka_unit_test(test_wake_caller_request),
		cmocka_unit_test(test_wake_ring_many),
		cmocka_unit_test(test_wake_env_forces),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
