/* Helpers shared by the ipc tests: segments, forked children, bounded waits. */
#ifndef TESTS_IPC_TEST_UTIL_H
#define TESTS_IPC_TEST_UTIL_H

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/shm.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IT_SANITIZED 1
#else
#define IT_SANITIZED 0
#endif

static char it_inst[64];

static inline struct shm_seg *it_create(const char *tag, uint32_t cells, uint32_t max_msg)
{
	struct shm_cfg cfg;
	struct shm_seg *seg = NULL;
	char err[256];

	snprintf(it_inst, sizeof(it_inst), "t-%s-%d", tag, (int)getpid());
	shm_seg_unlink(it_inst);
	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	cfg.max_procs = 64;
	cfg.mbox_cells = cells;
	cfg.max_msg = max_msg;
	if (shm_seg_create(it_inst, &cfg, &seg, err, sizeof(err))) {
		fprintf(stderr, "create: %s\n", err);
		abort();
	}
	shm_seg_publish(seg);
	if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
		abort();
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	return seg;
}

static inline void it_destroy(struct shm_seg *seg)
{
	shm_seg_detach(seg);
	shm_seg_unlink(it_inst);
}

/* An agent slot hosted by nobody yet (host set later with it_host()). */
static inline shoal_handle_t it_agent(struct shm_seg *seg)
{
	uint32_t slot;
	struct shm_agent *a;

	if (shm_agent_alloc(seg, 0, &slot))
		abort();
	a = shm_agent_at(seg, slot);
	ipc_mbox_init(seg, slot);
	atomic_store_explicit(&a->state, SHM_AGENT_RUNNING, memory_order_release);
	return shoal_handle_make(slot, atomic_load_explicit(&a->gen, memory_order_relaxed));
}

static inline void it_host(struct shm_seg *seg, shoal_handle_t h, uint32_t proc)
{
	atomic_store_explicit(&shm_agent_at(seg, shoal_handle_slot(h))->worker, proc + 1,
			      memory_order_release);
}

/* In a forked child: take our own process slot. */
static inline void it_child_claim(struct shm_seg *seg)
{
	if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
		_exit(90);
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
}

/* Anonymous shared memory for test bookkeeping between processes. */
static inline void *it_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		abort();
	memset(p, 0, size);
	return p;
}

/*
 * $SHOAL_TIME_SCALE (1..100, default 1): the waits below are multiplied by it. The qemu
 * guest under software emulation sets 10 (scripts/qemu-guest.sh); a wait sized for the host
 * failed there once in four runs.
 */
static inline int it_time_scale(void)
{
	const char *e = getenv("SHOAL_TIME_SCALE");
	int k = e ? atoi(e) : 1;

	return k < 1 ? 1 : k > 100 ? 100 : k;
}

/* Wait for a child's exit through its pidfd, up to timeout_ms; -1 (and kill) on timeout. */
static inline int it_wait_child(pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0;
	struct pollfd p = {.fd = pfd, .events = POLLIN};

	if (pfd >= 0) {
		int r = poll(&p, 1, timeout_ms * it_time_scale());

		close(pfd);
		if (r == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

/* Exit status 0? */
static inline bool it_ok(int status)
{
	return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Wait until *word >= want or timeout_ms passes; returns true if reached. */
static inline bool it_wait_u64(_Atomic uint64_t *word, uint64_t want, int timeout_ms)
{
	uint64_t end = shm_now_ns() + (uint64_t)timeout_ms * (uint64_t)it_time_scale() * 1000000u;

	while (atomic_load_explicit(word, memory_order_acquire) < want) {
		if (shm_now_ns() > end)
			return false;
		sched_yield();
	}
	return true;
}

/*
 * Whether *word == want within timeout_ms as given, not scaled: for a check that something
 * does NOT happen within a window the code under test bounds itself (scaled, the window
 * could outlast that bound).
 */
static inline bool it_wait_u32_unscaled(_Atomic uint32_t *word, uint32_t want, int timeout_ms)
{
	uint64_t end = shm_now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (atomic_load_explicit(word, memory_order_acquire) != want) {
		if (shm_now_ns() > end)
			return false;
		sched_yield();
	}
	return true;
}

static inline bool it_wait_u32(_Atomic uint32_t *word, uint32_t want, int timeout_ms)
{
	return it_wait_u32_unscaled(word, want, timeout_ms * it_time_scale());
}

/* The supervisor's part after a death: mark the slot dead, repair, let it be reused. */
static inline int it_repair(struct shm_seg *seg, uint32_t proc)
{
	struct shm_proc *p = shm_proc_at(seg, proc);
	int n;

	atomic_store_explicit(&p->state, SHM_PROC_DEAD, memory_order_release);
	n = ipc_repair_proc(seg, proc);
	atomic_store_explicit(&p->state, SHM_PROC_EXITED, memory_order_release);
	return n;
}

static inline uint64_t it_env_u64(const char *name, uint64_t dflt)
{
	const char *e = getenv(name);

	return e && *e ? strtoull(e, NULL, 0) : dflt;
}

#endif
