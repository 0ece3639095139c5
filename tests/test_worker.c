/* test_worker: wrk_main in forked workers: calls, counts, kill + repair + replacement, restarts,
 * stop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "ipc/ipc.h"
#include "shm/event.h"
#include "shm/registry.h"
#include "shm/shm.h"
#include "workers/wrk_int.h"

#include "tests/run_test_util.h"

#define DEADLINE_MS 10000

static char inst[64];
static struct shm_seg *seg;
static struct ipc_waiter *waiter;
static shoal_handle_t inbox;
static int note_pipe[2] = {-1, -1}; /* test agent types write events here */
static uint64_t child_as_extra;	    /* non-zero: the worker caps its address space at +this */

/* --- test agent types (registered before the workers fork: they inherit the table) --- */

struct tcount {
	uint64_t count, redelivered;
};

static int tc_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	struct tcount *s = calloc(1, sizeof(*s));

	(void)ctx;
	if (ckpt && len == sizeof(*s))
		memcpy(s, ckpt, sizeof(*s));
	*state = s;
	return 0;
}

static void note(char c)
{
	if (write(note_pipe[1], &c, 1) != 1)
		abort();
}

/*
 * "blocker": a counter that, on "block" (not redelivered), notes 'b' and hangs until killed;
 * on "fail" returns -EIO before counting; terminate notes 't'.
 */
static int tc_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct tcount *s = state;

	if (m->len == 5 && !memcmp(m->data, "block", 5) && !(m->flags & SHOAL_MSG_REDELIVERED)) {
		note('b');
		for (;;)
			pause();
	}
	if (m->len == 4 && !memcmp(m->data, "fail", 4))
		return -EIO;
	s->count++;
	if (m->flags & SHOAL_MSG_REDELIVERED)
		s->redelivered++;
	return shoal_checkpoint(ctx, s, sizeof(*s));
}

static int tc_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		   uint32_t cap, uint32_t *rlen)
{
	struct tcount *s = state;

	(void)ctx, (void)m, (void)cap;
	memcpy(reply, s, sizeof(*s));
	*rlen = sizeof(*s);
	return 0;
}

static void tc_term(struct shoal_ctx *ctx, void *state, int reason)
{
	(void)ctx;
	note(reason == SHOAL_TERM_STOP ? 't' : reason == SHOAL_TERM_RESTART ? 'r' : 'f');
	free(state);
}

static const struct shoal_agent_type blocker_type = {
	.name = "blocker",
	.ckpt_size = sizeof(struct tcount),
	.init = tc_init,
	.handle = tc_handle,
	.handle_call = tc_call,
	.terminate = tc_term,
};

/*
 * "fanout": a cast whose payload is a handle makes it send that agent a batch of three
 * messages with shoal_send_batch(); a short batch fails the callback.
 */
static int fan_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = NULL;
	return 0;
}

static int fan_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct shoal_out out[3];
	shoal_handle_t to;

	(void)state;
	if (m->len != sizeof(to))
		return 0;
	memcpy(&to, m->data, sizeof(to));
	for (int i = 0; i < 3; i++)
		out[i] = (struct shoal_out){.to = to, .type = 1, .len = 1, .data = "f"};
	return shoal_send_batch(ctx, out, 3) == 3 ? 0 : -EIO;
}

static const struct shoal_agent_type fanout_type = {
	.name = "fanout",
	.init = fan_init,
	.handle = fan_handle,
};

/* "later": answers a call only when the next cast arrives (SHOAL_REPLY_LATER, shoal_reply) */
static int later_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = calloc(1, sizeof(struct shoal_msg));
	return *state ? 0 : -ENOMEM;
}

static int later_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	struct shoal_msg *saved = state;

	(void)m;
	return saved->ref ? shoal_reply(ctx, saved, "late", 4) : 0;
}

static int later_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
		      uint32_t cap, uint32_t *rlen)
{
	struct shoal_msg *saved = state;

	(void)ctx, (void)reply, (void)cap;
	*saved = *m;
	saved->data = NULL; /* the payload is gone once we return */
	saved->len = 0;
	*rlen = SHOAL_REPLY_LATER;
	return 0;
}

/* "gate": its init notes 'g' and waits for a byte on gate_pipe (the worker held before RUNNING) */
static int gate_pipe[2] = {-1, -1};

static int gate_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	char c;

	(void)ctx, (void)ckpt, (void)len;
	note('g');
	if (read(gate_pipe[0], &c, 1) != 1)
		return -EIO;
	*state = NULL;
	return 0;
}

static const struct shoal_agent_type gate_type = {
	.name = "gate",
	.init = gate_init,
	.handle = fan_handle,
};

static const struct shoal_agent_type later_type = {
	.name = "later",
	.init = later_init,
	.handle = later_handle,
	.handle_call = later_call,
	.terminate = tc_term,
};

/* --- helpers: the test is the supervisor --- */

static int setup(void **state)
{
	struct shm_cfg cfg;
	char err[256];

	(void)state;
	snprintf(inst, sizeof(inst), "t-wrk-%d", (int)getpid());
	shm_seg_unlink(inst);
	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	cfg.max_monitors = 64;
	cfg.max_procs = 8;
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	shm_seg_publish(seg);
	assert_int_equal(shm_proc_claim(seg, SHM_ROLE_SUPERVISOR, false), 0);
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &waiter), 0);
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	assert_int_equal(pipe2(note_pipe, O_CLOEXEC), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ipc_inbox_close(seg, inbox);
	ipc_waiter_destroy(waiter);
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
	close(note_pipe[0]);
	close(note_pipe[1]);
	return 0;
}

/* Fork worker on process slot `slot`; *ready_fd gets the read end of its ready pipe. */
static pid_t fork_worker(uint32_t slot, int *ready_fd)
{
	int rp[2];
	pid_t pid;

	assert_int_equal(pipe2(rp, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct wrk_args args = {.windex = slot - 1,
					.proc_slot = slot,
					.core = -1,
					.node = -1,
					.ready_fd = rp[1]};

		close(rp[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (child_as_extra) {
			/* the rlimit path of a memory cap: current size + the extra */
			unsigned long pages = 0;
			FILE *f = fopen("/proc/self/statm", "r");
			struct rlimit rl;

			if (!f || fscanf(f, "%lu", &pages) != 1)
				_exit(99);
			fclose(f);
			rl.rlim_cur = rl.rlim_max = pages * 4096ull + child_as_extra;
			if (setrlimit(RLIMIT_AS, &rl))
				_exit(99);
		}
		_exit(wrk_main(seg, &args) == 0 ? 0 : 1);
	}
	close(rp[1]);
	*ready_fd = rp[0];
	return pid;
}

/* Wait for the ready byte of the worker on `slot` (it is RUNNING then). */
static void wait_ready(uint32_t slot, int ready_fd)
{
	struct pollfd pfd = {.fd = ready_fd, .events = POLLIN};
	char c;

	assert_int_equal(poll(&pfd, 1, DEADLINE_MS), 1);
	assert_int_equal(read(ready_fd, &c, 1), 1);
	close(ready_fd);
	assert_int_equal(atomic_load(&shm_proc_at(seg, slot)->state), SHM_PROC_RUNNING);
}

/* Fork worker on process slot `slot`; return once it wrote its ready byte. */
static pid_t start_worker(uint32_t slot)
{
	int fd;
	pid_t pid = fork_worker(slot, &fd);

	wait_ready(slot, fd);
	return pid;
}

static int wait_exit(pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0;
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};

	assert_true(pidfd >= 0);
	assert_int_equal(poll(&pfd, 1, DEADLINE_MS), 1);
	close(pidfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* What the supervisor does after a worker died, before it forks the replacement. */
static void repair_worker(uint32_t slot, int status)
{
	struct shm_proc *p = shm_proc_at(seg, slot);

	atomic_store(&p->state, SHM_PROC_DEAD);
	shm_reg_repair(seg, slot);
	shm_grp_repair(seg, slot);
	ipc_repair_proc(seg, slot);
	wrk_repair_worker(seg, slot);
	atomic_store_explicit(&p->last_signal, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
			      memory_order_relaxed);
	atomic_store(&p->state, SHM_PROC_EXITED);
}

static void stop_worker(uint32_t slot, pid_t pid)
{
	int status;

	atomic_store(&shm_proc_at(seg, slot)->state, SHM_PROC_STOPPING);
	ipc_ring(seg, slot);
	status = wait_exit(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	atomic_store(&shm_proc_at(seg, slot)->state, SHM_PROC_EXITED);
}

static shoal_handle_t spawn(const char *type, const char *name, uint32_t slot)
{
	shoal_handle_t h;

	assert_int_equal(wrk_agent_spawn(seg, type, name, slot, &h), 0);
	return h;
}

static int call(shoal_handle_t to, const void *data, uint32_t len, void *reply, uint32_t cap)
{
	return ipc_call(seg, waiter, inbox, to, 0, data, len, reply, cap, DEADLINE_MS);
}

static struct tcount call_count(shoal_handle_t h)
{
	struct tcount c;

	assert_int_equal(call(h, "?", 1, &c, sizeof(c)), sizeof(c));
	return c;
}

static void cast(shoal_handle_t to, const char *s)
{
	assert_int_equal(ipc_send(seg, to, inbox, 0, 0, 0, s, (uint32_t)strlen(s), DEADLINE_MS), 0);
}

static char next_note(void)
{
	struct pollfd pfd = {.fd = note_pipe[0], .events = POLLIN};
	char c = 0;

	assert_int_equal(poll(&pfd, 1, DEADLINE_MS), 1);
	assert_int_equal(read(note_pipe[0], &c, 1), 1);
	return c;
}

static bool inbox_has_work(void *arg)
{
	(void)arg;
	return ipc_mbox_depth(seg, shoal_handle_slot(inbox)) > 0;
}

/* The next DOWN/UP message in the inbox (with a failing deadline). */
static struct shoal_down next_down(void)
{
	uint64_t deadline = shm_now_ns() + DEADLINE_MS * 1000000ull;
	struct shoal_down d;
	struct ipc_msg m;

	while (ipc_mbox_peek(seg, shoal_handle_slot(inbox), &m)) {
		assert_true(shm_now_ns() < deadline);
		ipc_waiter_wait(waiter, 0, 50000000ull, inbox_has_work, NULL, NULL);
	}
	assert_true(m.flags & IPC_F_SYSTEM);
	assert_true(m.type == IPC_T_DOWN || m.type == IPC_T_UP);
	assert_int_equal(m.len, sizeof(d));
	memcpy(&d, m.data, sizeof(d));
	ipc_mbox_consume(seg, shoal_handle_slot(inbox), &m);
	assert_int_equal(d.up, m.type == IPC_T_UP);
	return d;
}

/* An agent's state, waited for on the segment's change counter (read before the check). */
static void wait_agent_state(shoal_handle_t h, uint32_t st)
{
	uint64_t deadline = shm_now_ns() + DEADLINE_MS * 1000000ull;

	for (;;) {
		uint32_t c = shm_change_read(seg);

		if (atomic_load(&shm_agent_at(seg, shoal_handle_slot(h))->state) == st)
			break;
		assert_int_equal(shm_change_wait(seg, c, deadline), 0);
	}
}

/* --- tests --- */

static void test_worker_echo_counter(void **state)
{
	shoal_handle_t e, c, found;
	char reply[64];
	pid_t pid;

	(void)state;
	e = spawn("echo", "echo1", 1);
	c = spawn("counter", "count1", 1);
	pid = start_worker(1);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "echo1", 5, &found, NULL), 0);
	assert_true(found == e);
	assert_int_equal(call(e, "hello", 5, reply, sizeof(reply)), 5);
	assert_memory_equal(reply, "hello", 5);
	for (int i = 0; i < 100; i++)
		cast(c, "x");
	memset(reply, 0, sizeof(reply));
	assert_true(call(c, "?", 1, reply, sizeof(reply) - 1) > 0);
	assert_string_equal(reply, "100 0");
	/* an agent spawned while the worker runs is picked up */
	e = spawn("echo", "echo2", 1);
	assert_int_equal(call(e, "late", 4, reply, sizeof(reply)), 4);
	assert_int_equal(atomic_load(&shm_agent_at(seg, shoal_handle_slot(c))->handled), 101);
	stop_worker(1, pid);
}

/*
 * SIGKILL a worker while it is inside a callback with messages queued behind it: after the
 * repair and a replacement, the agents answer under the same names and handles, every
 * queued message is delivered, the one in flight flagged redelivered, the counts kept by
 * the checkpoint, and the monitor got DOWN then UP.
 */
static void test_worker_kill_replace(void **state)
{
	shoal_handle_t b, e, found;
	struct shoal_down d;
	struct tcount cnt;
	uint64_t ref;
	char reply[16];
	pid_t pid;

	(void)state;
	b = spawn("blocker", "blk", 1);
	e = spawn("echo", "echo", 1);
	pid = start_worker(1);
	assert_int_equal(wrk_mon_add(seg, inbox, b, &ref), 0);
	for (int i = 0; i < 10; i++)
		cast(b, "x");
	cast(b, "block");
	for (int i = 0; i < 20; i++)
		cast(b, "y");
	assert_int_equal(next_note(), 'b'); /* inside the callback now */
	kill(pid, SIGKILL);
	repair_worker(1, wait_exit(pid));
	assert_int_equal(atomic_load(&shm_agent_at(seg, shoal_handle_slot(b))->state),
			 SHM_AGENT_DOWN);
	assert_int_equal(atomic_load(&shm_agent_at(seg, shoal_handle_slot(b))->restarts), 1);
	d = next_down();
	assert_true(d.target == b && d.ref == ref && d.reason == SHOAL_DOWN_CRASH);
	/* while it is down, sends still queue */
	cast(b, "z");
	pid = start_worker(1);
	d = next_down();
	assert_true(d.target == b && d.ref == ref && d.up == 1);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "blk", 3, &found, NULL), 0);
	assert_true(found == b);
	cnt = call_count(b);
	assert_int_equal(cnt.count, 10 + 1 + 20 + 1);
	assert_int_equal(cnt.redelivered, 1);
	assert_int_equal(atomic_load(&shm_agent_at(seg, shoal_handle_slot(b))->redelivered), 1);
	assert_int_equal(call(e, "again", 5, reply, sizeof(reply)), 5);
	stop_worker(1, pid);
	assert_int_equal(next_note(), 't');
}

/* A callback that fails restarts that agent alone; past its intensity it is removed. */
static void test_worker_callback_failure(void **state)
{
	shoal_handle_t b, e, found;
	struct shoal_down d;
	struct tcount cnt;
	uint64_t ref;
	char reply[16];
	pid_t pid;

	(void)state;
	b = spawn("blocker", "flaky", 1);
	e = spawn("echo", "bystander", 1);
	pid = start_worker(1);
	assert_int_equal(wrk_mon_add(seg, inbox, b, &ref), 0);
	cast(b, "a");
	cast(b, "fail");
	cast(b, "b");
	cast(b, "c");
	assert_int_equal(next_note(), 'r'); /* terminate(RESTART) */
	d = next_down();
	assert_true(d.target == b && !d.up && d.reason == SHOAL_DOWN_ERROR);
	d = next_down();
	assert_true(d.target == b && d.up);
	cnt = call_count(b); /* the messages queued behind it were kept, state restored */
	assert_int_equal(cnt.count, 3);
	assert_int_equal(atomic_load(&shm_agent_at(seg, shoal_handle_slot(b))->restarts), 1);
	assert_int_equal(call(e, "ok", 2, reply, sizeof(reply)), 2);
	/* three more failures within the period: past 3 restarts in 5 s, it is removed */
	for (int i = 0; i < 3; i++)
		cast(b, "fail");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(next_note(), 'r');
		assert_int_equal(next_down().reason, SHOAL_DOWN_ERROR);
		assert_int_equal(next_down().up, 1);
	}
	assert_int_equal(next_note(), 'r');
	d = next_down();
	assert_true(d.target == b && !d.up && d.reason == SHOAL_DOWN_FAILED);
	wait_agent_state(b, SHM_AGENT_FREE);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "flaky", 5, &found, NULL), -ENOENT);
	/* the worker itself never died */
	assert_int_equal(kill(pid, 0), 0);
	assert_int_equal(call(e, "ok", 2, reply, sizeof(reply)), 2);
	stop_worker(1, pid);
}

/* Stop runs terminate, removes the name and frees the slot; the monitor gets DOWN. */
static void test_worker_stop_agent(void **state)
{
	shoal_handle_t b, found;
	struct shoal_down d;
	uint64_t ref;
	pid_t pid;

	(void)state;
	b = spawn("blocker", "stopme", 1);
	pid = start_worker(1);
	assert_int_equal(wrk_mon_add(seg, inbox, b, &ref), 0);
	cast(b, "x");
	assert_int_equal(call_count(b).count, 1);
	assert_int_equal(wrk_agent_stop(seg, b), 0);
	assert_int_equal(next_note(), 't');
	d = next_down();
	assert_true(d.target == b && d.reason == SHOAL_DOWN_STOPPED);
	wait_agent_state(b, SHM_AGENT_FREE);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "stopme", 6, &found, NULL), -ENOENT);
	assert_null(wrk_agent_get(seg, b));
	/* the event ring: its spawn (when the worker started it) and its stop, on worker 0 */
	{
		static struct shm_event ev[256];
		struct shm_event_scan st = {0};
		uint64_t cursor = 0;
		uint32_t got = shm_event_scan(seg, &cursor, ev, 256, 0, &st);
		int spawned = 0, stopped = 0;

		for (uint32_t i = 0; i < got; i++) {
			if (ev[i].agent != b)
				continue;
			assert_string_equal(ev[i].name, "stopme");
			assert_int_equal(ev[i].worker, 0);
			spawned += ev[i].kind == SHM_EV_AGENT_SPAWN;
			if (ev[i].kind == SHM_EV_AGENT_STOP) {
				assert_int_equal(ev[i].reason, SHOAL_DOWN_STOPPED);
				assert_true(spawned); /* after the spawn */
				stopped++;
			}
		}
		assert_int_equal(spawned, 1);
		assert_int_equal(stopped, 1);
	}
	/* the slot is reused with a new generation: the old handle is stale */
	found = spawn("echo", "stopme", 1);
	assert_true(found != b);
	stop_worker(1, pid);
}

/*
 * A stop that lands while the worker is starting (claimed, its agents hosted, not yet
 * RUNNING) is the worker's to finish: the stopper must not free a slot a live worker hosts.
 * Before the fix the stopper freed it, and the worker's later start of that agent turned the
 * free slot RUNNING with no host: a slot leaked for good, no name to stop it by.
 */
static void test_worker_stop_while_starting(void **state)
{
	shoal_handle_t g, x, found;
	struct shm_agent *a;
	int ready;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe2(gate_pipe, O_CLOEXEC), 0);
	g = spawn("gate", "gate", 1);
	x = spawn("blocker", "late-stop", 1);
	assert_true(shoal_handle_slot(g) < shoal_handle_slot(x)); /* hosted and started first */
	pid = fork_worker(1, &ready);
	assert_int_equal(next_note(), 'g'); /* inside g's init: x hosted, not started */
	assert_int_equal(atomic_load(&shm_proc_at(seg, 1)->state), SHM_PROC_STARTING);
	assert_int_equal(wrk_agent_stop(seg, x), 0);
	assert_int_equal(write(gate_pipe[1], "go", 1), 1);
	wait_ready(1, ready);
	/* its worker finishes the stop: the slot is free again, its name gone */
	wait_agent_state(x, SHM_AGENT_FREE);
	a = shm_agent_at(seg, shoal_handle_slot(x));
	assert_int_equal(atomic_load(&a->ctl), 0);
	assert_int_equal(atomic_load(&a->worker), 0);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "late-stop", 9, &found, NULL),
			 -ENOENT);
	assert_int_equal(atomic_load(&shm_agent_at(seg, shoal_handle_slot(g))->state),
			 SHM_AGENT_RUNNING);
	/* the slot is usable: a new agent there starts and answers */
	found = spawn("blocker", "late-stop", 1);
	assert_int_equal(call_count(found).count, 0);
	stop_worker(1, pid);
	close(gate_pipe[0]);
	close(gate_pipe[1]);
}

/* A call answered later, from another callback, with shoal_reply(). */
static void test_worker_reply_later(void **state)
{
	uint64_t ref, deadline;
	struct ipc_msg m;
	char buf[16];
	shoal_handle_t l;
	pid_t pid;

	(void)state;
	l = spawn("later", "later", 1);
	pid = start_worker(1);
	assert_int_equal(ipc_call_async(seg, inbox, l, 7, "q", 1, &ref), 0);
	cast(l, "go");
	deadline = shm_now_ns() + DEADLINE_MS * 1000000ull;
	while (ipc_mbox_take_reply(seg, shoal_handle_slot(inbox), ref, &m, buf, sizeof(buf))) {
		assert_true(shm_now_ns() < deadline);
		ipc_waiter_wait(waiter, 0, 50000000ull, inbox_has_work, NULL, NULL);
	}
	assert_int_equal(m.len, 4);
	assert_memory_equal(buf, "late", 4);
	assert_int_equal(m.type, 7);
	stop_worker(1, pid);
	assert_int_equal(next_note(), 't');
}

/* An agent sends a batch from its callback: all of it arrives. */
static void test_worker_agent_send_batch(void **state)
{
	shoal_handle_t f, b;
	pid_t pid;

	(void)state;
	b = spawn("blocker", "sink", 1);
	f = spawn("fanout", "fan", 1);
	pid = start_worker(1);
	assert_int_equal(ipc_send(seg, f, inbox, 0, 0, 0, &b, sizeof(b), DEADLINE_MS), 0);
	assert_int_equal(ipc_send(seg, f, inbox, 0, 0, 0, &b, sizeof(b), DEADLINE_MS), 0);
	/* the batches are queued before the call: one worker, agents drained in turn */
	for (uint64_t deadline = shm_now_ns() + DEADLINE_MS * 1000000ull; call_count(b).count < 6;)
		assert_true(shm_now_ns() < deadline);
	assert_int_equal(call_count(b).count, 6);
	stop_worker(1, pid);
	assert_int_equal(next_note(), 't');
}

/* A type loaded from a shared object before the fork is hosted by the worker. */
static void test_worker_dlopen_type(void **state)
{
	char reply[64], err[256];
	shoal_handle_t u;
	pid_t pid;
	int n;

	(void)state;
	assert_true(shoal_agent_types_load(getenv("SHOAL_TEST_PLUGIN"), err, sizeof(err)) >= 0);
	u = spawn("upper", "up", 1);
	pid = start_worker(1);
	n = call(u, "abc", 3, reply, sizeof(reply) - 1);
	assert_true(n > 0);
	reply[n] = 0;
	snprintf(err, sizeof(err), "ABC@%u", shoal_handle_slot(u));
	assert_string_equal(reply, err);
	stop_worker(1, pid);
}

/* Run `shoal ARGS... --instance inst` (tests/run_test_util.h); its exit code and output. */
static int run_tool(char *out, size_t cap, const char *const *args)
{
	return rt_run_tool(inst, out, cap, args);
}

/*
 * The client commands against a running worker: send, call, and their errors. (spawn and
 * stop are requests to the supervisor: tests/test_control.c runs them against `shoal run`.)
 */
static void test_worker_client_commands(void **state)
{
	char out[512];
	pid_t pid;

	(void)state;
	spawn("counter", "cnt", 1);
	spawn("blocker", "stuck", 1);
	spawn("echo", "e3", 1);
	spawn("crasher", "cr", 1);
	pid = start_worker(1);
	assert_int_equal(run_tool(out, sizeof(out), (const char *[]){"call", "e3", "hello", NULL}),
			 0);
	assert_string_equal(out, "hello\n");
	assert_int_equal(run_tool(out, sizeof(out),
				  (const char *[]){"send", "cnt", "x", "--count", "7", NULL}),
			 0);
	assert_int_equal(run_tool(out, sizeof(out), (const char *[]){"call", "cnt", "?", NULL}), 0);
	assert_string_equal(out, "7 0\n");
	/* errors: one sentence, the documented exit codes */
	assert_int_equal(run_tool(out, sizeof(out), (const char *[]){"call", "nosuch", "x", NULL}),
			 2);
	assert_non_null(strstr(out, "no agent named 'nosuch'"));
	/* a handle_call that fails: its error, at once (not a timeout), a failed check */
	assert_int_equal(run_tool(out, sizeof(out), (const char *[]){"call", "cr", "fail", NULL}),
			 1);
	if (!strstr(out, "'cr' answered with an error: Input/output error"))
		fail_msg("shoal call said: %s", out);
	/* spawn and stop ask the supervisor: this instance has none serving */
	assert_int_equal(run_tool(out, sizeof(out), (const char *[]){"spawn", "echo", "e4", NULL}),
			 2);
	assert_non_null(strstr(out, "serves no control requests"));
	/* a call to an agent whose worker is stuck times out: exit 1 */
	assert_int_equal(
		run_tool(out, sizeof(out), (const char *[]){"send", "stuck", "block", NULL}), 0);
	assert_int_equal(next_note(), 'b');
	assert_int_equal(run_tool(out, sizeof(out),
				  (const char *[]){"call", "stuck", "?", "--timeout", "200", NULL}),
			 1);
	assert_non_null(strstr(out, "did not answer within 200 ms"));
	kill(pid, SIGKILL);
	repair_worker(1, wait_exit(pid));
}

/* The rlimit memory cap: an allocation refused under it exits the worker 86. */
static void test_worker_memcap_exit(void **state)
{
	shoal_handle_t hog;
	pid_t pid;
	int status;

	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	skip_because("ASan reserves terabytes of address space: RLIMIT_AS cannot apply");
#endif
	hog = spawn("hog", "hog", 1);
	child_as_extra = 64ull << 20;
	pid = start_worker(1);
	child_as_extra = 0;
	cast(hog, "256");
	status = wait_exit(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), WRK_EXIT_MEMCAP);
	repair_worker(1, status);
}

/*
 * The demo population: tuners cast scores to the coordinator (cast), fetch its best at start
 * (async call), and adopt the best it broadcasts to the group "tuners" (broadcast).
 */
static void test_worker_demo_tuners(void **state)
{
	struct {
		double score, x[4];
	} best, mine;
	shoal_handle_t coord, tuners[4], members[8];
	char reply[256], name[16];
	uint64_t deadline;
	pid_t pid;

	(void)state;
	coord = spawn("coordinator", "coordinator", 1);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "tuner%d", i);
		tuners[i] = spawn("tuner", name, 1);
	}
	pid = start_worker(1);
	assert_true(call(coord, "?", 1, reply, sizeof(reply)) > 0);
	assert_int_equal(shm_grp_members(seg, "tuners", 6, members, 8), 4);
	/* the coordinator hears scores (casts from the tuners' ticks) */
	deadline = shm_now_ns() + DEADLINE_MS * 1000000ull;
	while (wrk_ckpt_read(seg, shoal_handle_slot(coord), &best, sizeof(best)) != sizeof(best)) {
		assert_true(shm_now_ns() < deadline);
		sched_yield();
	}
	/* every tuner ends up at least as good as that best: the broadcast reached them all */
	for (int i = 0; i < 4; i++) {
		for (;;) {
			int n = wrk_ckpt_read(seg, shoal_handle_slot(tuners[i]), &mine,
					      sizeof(mine));

			if (n == sizeof(mine) && mine.score >= best.score)
				break;
			assert_true(shm_now_ns() < deadline);
			sched_yield();
		}
	}
	memset(reply, 0, sizeof(reply));
	assert_true(call(coord, "?", 1, reply, sizeof(reply) - 1) > 0);
	assert_non_null(strstr(reply, "best score"));
	stop_worker(1, pid);
}

/*
 * The demo survives the README's own commands: after `shoal stop coordinator --wait; shoal
 * spawn coordinator coordinator` the tuners find the new coordinator (they cached the old
 * one's handle): its first scores come from them, and it publishes them as best.*, which a
 * `shoal var watch` started before the spawn sees change.
 */
static void test_worker_demo_follows_new_coordinator(void **state)
{
	static const char *cfg = "[instance]\nworkers = 1\nplacement = none\n"
				 "[segment]\nmax_agents = 32\nregistry_capacity = 128\n"
				 "max_procs = 8\n"
				 "[agent coordinator]\ntype = coordinator\n"
				 "[agent tuner]\ntype = tuner\ncount = 2\nname = tuner-%03u\n";
	static const char *const watch[] = {"var", "watch",	"best.score", "--count",
					    "1",   "--timeout", "10000",      NULL};
	struct rt_run r;
	char out[4096];
	size_t got = 0;
	pid_t w;
	int fd;

	(void)state;
	rt_start(&r, "t-wrk-", "coord", cfg, NULL);
	rt_wait_ready(&r);
	/* best.score exists before the stop, whoever makes it first (a watch needs it) */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"var", "set", "best.score", "-1e9", NULL}),
			 0);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"stop", "coordinator", "--wait", NULL}),
			 0);
	/* nothing writes best.* now; watch it from here on, then start the new coordinator */
	w = rt_tool_start(r.inst, watch, &fd);
	out[0] = 0;
	while (!strstr(out, "watching best.score")) {
		ssize_t k;

		if (!rt_fd_wait(fd, TIMEOUT_MS))
			fail_msg("shoal var watch did not start: %s", out);
		k = read(fd, out + got, sizeof(out) - 1 - got);
		if (k <= 0)
			fail_msg("shoal var watch ended: %s", out);
		got += (size_t)k;
		out[got] = 0;
	}
	assert_int_equal(rt_run_tool(r.inst, out + got + 1, sizeof(out) - got - 1,
				     (const char *[]){"spawn", "coordinator", "coordinator",
						      "--wait", NULL}),
			 0);
	/* the new coordinator's first best came from a tuner's score */
	if (rt_tool_finish(w, fd, out, sizeof(out)) != 0)
		fail_msg("the new coordinator published no best (no tuner found it): %s", out);
	rt_stop(&r);
}

/*
 * Messages that keep coming a little further apart than the worker's first spin (20 us)
 * find it awake: it spins longer while they come (few wakes for 200 casts 60 us apart, where
 * a fixed 20 us spin parks before each and needs a wake for each), and it parks once they
 * stop.
 */
static void test_worker_spin_adapts(void **state)
{
	struct shm_proc *p = shm_proc_at(seg, 1);
	uint64_t wakes0, wakes, deadline;
	struct tcount n;
	shoal_handle_t c;
	pid_t pid;

	(void)state;
	c = spawn("blocker", "count1", 1);
	pid = start_worker(1);
	n = call_count(c);
	wakes0 = atomic_load(&p->wakes);
	for (int i = 0; i < 200; i++) {
		uint64_t t0 = shm_now_ns();

		cast(c, "x");
		/* the pace of the traffic (not a wait for an event): 60 us between messages */
		while (shm_now_ns() - t0 < 60000)
			;
	}
	wakes = atomic_load(&p->wakes) - wakes0;
	print_message("200 casts 60 us apart: %llu wakes\n", (unsigned long long)wakes);
	assert_true(wakes < 100);
	/* every cast was handled, and the spin ends when the messages stop: the worker parks */
	assert_int_equal(call_count(c).count, n.count + 200);
	deadline = shm_now_ns() + DEADLINE_MS * 1000000ull;
	while (!atomic_load(&p->parked)) {
		assert_true(shm_now_ns() < deadline);
		sched_yield();
	}
	stop_worker(1, pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_worker_echo_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_kill_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_callback_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_stop_agent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_stop_while_starting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_reply_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_agent_send_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_dlopen_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_client_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_memcap_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_demo_tuners, setup, teardown),
		cmocka_unit_test_teardown(test_worker_demo_follows_new_coordinator, rt_teardown),
		cmocka_unit_test_setup_teardown(test_worker_spin_adapts, setup, teardown),
	};

	if (shoal_agent_type_register(&blocker_type) || shoal_agent_type_register(&later_type) ||
	    shoal_agent_type_register(&fanout_type) || shoal_agent_type_register(&gate_type)) {
		fprintf(stderr, "cannot register the test type\n");
		return 1;
	}
	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
