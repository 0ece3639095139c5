/* test_msg: call (other messages stay queued), async call, reply, timeouts, batch, broadcast. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tests/support.h"
#include "shm/registry.h"
#include "tests/ipc_test_util.h"
#include "ipc/ipc_int.h"

#define T_STOP 99u

/*
 * Until the registry's groups land (branch reg), a tiny in-process group table stands in.
 * Weak: the real shm_grp_members()/shm_grp_join() take over when they are linked.
 */
static shoal_handle_t stub_members[16];
static uint32_t stub_n;

__attribute__((weak)) int shm_grp_join(struct shm_seg *seg, const char *name, size_t len,
				       shoal_handle_t handle)
{
	(void)seg;
	(void)name;
	(void)len;
	if (stub_n == 16)
		return -ENOSPC;
	stub_members[stub_n++] = handle;
	return 0;
}

__attribute__((weak)) int shm_grp_members(const struct shm_seg *seg, const char *name, size_t len,
					  shoal_handle_t *out, uint32_t max)
{
	(void)seg;
	(void)name;
	(void)len;
	for (uint32_t i = 0; i < stub_n && i < max; i++)
		out[i] = stub_members[i];
	return (int)stub_n;
}

struct mbook {
	_Atomic uint32_t ready;
	_Atomic uint32_t got[8];
	_Atomic uint32_t release; /* late replier: calls it may answer now */
	_Atomic uint32_t replied; /* late replier: calls it answered */
	_Atomic uint32_t fail;	  /* late replier: why it gave up (0: it did not) */
};

static struct mbook *mb;

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

static bool has_msg2(void *arg)
{
	struct peek_ctx *c = arg;

	return has_msg(&c[0]) || has_msg(&c[1]);
}

/* An echo agent in its own process: answers calls with their payload until T_STOP. */
static pid_t spawn_echo(struct shm_seg *seg, shoal_handle_t e)
{
	pid_t pid;

	atomic_store(&mb->ready, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct peek_ctx c = {seg, shoal_handle_slot(e)};
		struct ipc_waiter *w;

		it_child_claim(seg);
		if (ipc_waiter_create(seg, IPC_WAKE_AUTO, &w))
			_exit(2);
		it_host(seg, e, seg->self);
		atomic_store(&mb->ready, 1);
		for (;;) {
			struct ipc_msg m;

			if (ipc_mbox_peek(seg, c.slot, &m)) {
				if (ipc_waiter_wait(w, 10000, 10000000000ull, has_msg, &c, NULL) !=
				    1)
					_exit(3);
				continue;
			}
			if (m.type == T_STOP)
				_exit(0);
			if ((m.flags & IPC_F_CALL) && ipc_reply(seg, e, &m, m.data, m.len))
				_exit(4);
			ipc_mbox_consume(seg, c.slot, &m);
		}
	}
	assert_true(it_wait_u32(&mb->ready, 1, 10000));
	return pid;
}

static void stop_echo(struct shm_seg *seg, shoal_handle_t e, pid_t pid)
{
	assert_int_equal(ipc_send(seg, e, 0, T_STOP, 0, 0, NULL, 0, 1000), 0);
	assert_true(it_ok(it_wait_child(pid, 10000)));
}

static void test_msg_call_leaves_others_queued(void **state)
{
	struct shm_seg *seg = it_create("msg", 256, 4096);
	shoal_handle_t e = it_agent(seg), inbox;
	struct ipc_waiter *w;
	struct ipc_msg m;
	char reply[32];
	pid_t pid;

	(void)state;
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	assert_string_equal(shm_agent_at(seg, shoal_handle_slot(inbox))->type, "client");
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	pid = spawn_echo(seg, e);
	/* three casts already waiting in the inbox */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ipc_send(seg, inbox, 0, 5, 0, 0, &i, sizeof(i), 0), 0);
	for (int k = 0; k < 100; k++) {
		char q[16];
		int n = snprintf(q, sizeof(q), "ping %d", k) + 1;

		assert_int_equal(
			ipc_call(seg, w, inbox, e, 1, q, (uint32_t)n, reply, sizeof(reply), 5000),
			n);
		assert_string_equal(reply, q);
	}
	/* truncated copy: the return value still says how long the reply was */
	assert_int_equal(ipc_call(seg, w, inbox, e, 1, "abcdef", 7, reply, 3, 5000), 7);
	assert_memory_equal(reply, "abc", 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ipc_mbox_peek(seg, shoal_handle_slot(inbox), &m), 0);
		assert_int_equal(m.type, 5);
		assert_int_equal(*(const int *)m.data, i);
		ipc_mbox_consume(seg, shoal_handle_slot(inbox), &m);
	}
	assert_int_equal(ipc_mbox_peek(seg, shoal_handle_slot(inbox), &m), -EAGAIN);
	stop_echo(seg, e, pid);
	ipc_waiter_destroy(w);
	ipc_inbox_close(seg, inbox);
	assert_int_equal(atomic_load(&shm_agent_at(seg, shoal_handle_slot(inbox))->state),
			 SHM_AGENT_FREE);
	it_destroy(seg);
}

#define LATE_CELLS 32u

/*
 * A replier with the habits that fill an inbox: a call whose payload starts with 'L' is
 * answered only once the caller has given up on it (mb->release counts those), one starting
 * with 'D' is answered twice (as a call redelivered after a crash is). It replies as a worker
 * does, waiting at most 100 ms on a full inbox, and counts what it could not deliver.
 */
static pid_t spawn_late_echo(struct shm_seg *seg, shoal_handle_t e)
{
	pid_t pid;

	atomic_store(&mb->ready, 0);
	atomic_store(&mb->release, 0);
	atomic_store(&mb->replied, 0);
	atomic_store(&mb->fail, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct peek_ctx c = {seg, shoal_handle_slot(e)};
		uint32_t late = 0;
		struct ipc_waiter *w;

		it_child_claim(seg);
		if (ipc_waiter_create(seg, IPC_WAKE_AUTO, &w))
			_exit(2);
		it_host(seg, e, seg->self);
		atomic_store(&mb->ready, 1);
		for (;;) {
			const char *q;
			struct ipc_msg m;
			int copies = 1;

			if (ipc_mbox_peek(seg, c.slot, &m)) {
				if (ipc_waiter_wait(w, 10000, 10000000000ull, has_msg, &c, NULL) !=
				    1)
					_exit(3);
				continue;
			}
			if (m.type == T_STOP)
				_exit(0);
			q = m.data;
			if (m.len && q[0] == 'L' && !it_wait_u32(&mb->release, ++late, 10000))
				_exit(5);
			if (m.len && q[0] == 'D')
				copies = 2;
			for (int i = 0; i < copies; i++)
				if (ipc_send(seg, m.from, e, m.type, IPC_F_REPLY, m.ref, m.data,
					     m.len, 100))
					atomic_fetch_add(&mb->fail, 1);
			atomic_fetch_add(&mb->replied, 1);
			ipc_mbox_consume(seg, c.slot, &m);
		}
	}
	assert_true(it_wait_u32(&mb->ready, 1, 10000));
	return pid;
}

/*
 * Late replies (to calls that timed out) and duplicate replies must not stay in the
 * caller's inbox: after calls that time out, more answered-twice calls than the inbox has
 * cells all succeed, and the inbox ends up (nearly) empty. A reply to an async call is not
 * such a stale reply: it stays queued through later calls.
 */
static void test_msg_call_late_and_duplicate_replies(void **state)
{
	struct shm_seg *seg = it_create("msg", LATE_CELLS, 480);
	shoal_handle_t e = it_agent(seg), inbox;
	uint32_t islot;
	struct ipc_mbox_stats st;
	struct ipc_waiter *w;
	struct ipc_msg m;
	uint64_t aref;
	char reply[32];
	pid_t pid;

	(void)state;
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	islot = shoal_handle_slot(inbox);
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	pid = spawn_late_echo(seg, e);
	/* calls that time out; each reply lands in the inbox after the call gave up */
	for (uint32_t i = 1; i <= 8; i++) {
		assert_int_equal(ipc_call(seg, w, inbox, e, 1, "L", 2, reply, sizeof(reply), 5),
				 -ETIMEDOUT);
		atomic_store(&mb->release, i);
		assert_true(it_wait_u32(&mb->replied, i, 10000));
	}
	/* three times as many calls as the inbox has cells, each answered twice */
	for (uint32_t k = 0; k < 3 * LATE_CELLS; k++) {
		char q[16];
		int n = snprintf(q, sizeof(q), "D%u", k) + 1;

		assert_int_equal(
			ipc_call(seg, w, inbox, e, 1, q, (uint32_t)n, reply, sizeof(reply), 5000),
			n);
		assert_string_equal(reply, q);
	}
	/* an async call's reply stays queued through later calls and is delivered by peek */
	assert_int_equal(ipc_call_async(seg, inbox, e, 2, "async", 6, &aref), 0);
	for (int k = 0; k < 3; k++)
		assert_int_equal(ipc_call(seg, w, inbox, e, 1, "D", 2, reply, sizeof(reply), 5000),
				 2);
	assert_int_equal(ipc_mbox_peek(seg, islot, &m), 0);
	assert_true(m.flags & IPC_F_REPLY);
	assert_int_equal(m.ref, aref);
	assert_string_equal((const char *)m.data, "async");
	ipc_mbox_consume(seg, islot, &m);
	stop_echo(seg, e, pid);
	assert_int_equal(atomic_load(&mb->fail), 0);
	ipc_mbox_stats(seg, islot, &st);
	/* every stale reply but possibly the last duplicate was dropped */
	assert_true(st.stale_replies >= 8 + 3 * LATE_CELLS + 3 - 1);
	assert_true(st.depth <= 1);
	ipc_waiter_destroy(w);
	ipc_inbox_close(seg, inbox);
	it_destroy(seg);
}

static void test_msg_call_timeout(void **state)
{
	struct shm_seg *seg = it_create("msg", 256, 4096);
	shoal_handle_t nobody = it_agent(seg), inbox;
	struct ipc_waiter *w;
	char reply[8];
	uint64_t t0;

	(void)state;
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	t0 = shm_now_ns();
	assert_int_equal(ipc_call(seg, w, inbox, nobody, 1, "x", 1, reply, sizeof(reply), 30),
			 -ETIMEDOUT);
	assert_true(shm_now_ns() - t0 >= 30000000u);
	/* a call to a stale handle fails at once */
	ipc_inbox_close(seg, inbox);
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	ipc_waiter_destroy(w);
	it_destroy(seg);
}

static void test_msg_call_async(void **state)
{
	struct shm_seg *seg = it_create("msg", 256, 4096);
	shoal_handle_t e = it_agent(seg), inbox;
	struct ipc_waiter *w;
	uint64_t ref[2];
	struct peek_ctx c;
	pid_t pid;

	(void)state;
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	c = (struct peek_ctx){seg, shoal_handle_slot(inbox)};
	pid = spawn_echo(seg, e);
	assert_int_equal(ipc_call_async(seg, inbox, e, 3, "first", 6, &ref[0]), 0);
	assert_int_equal(ipc_call_async(seg, inbox, e, 3, "second", 7, &ref[1]), 0);
	assert_int_not_equal(ref[0], ref[1]);
	for (int i = 0; i < 2; i++) {
		struct ipc_msg m;

		while (ipc_mbox_peek(seg, c.slot, &m))
			assert_int_equal(
				ipc_waiter_wait(w, 10000, 10000000000ull, has_msg, &c, NULL), 1);
		assert_true(m.flags & IPC_F_REPLY);
		assert_int_equal(m.ref, ref[i]);
		assert_int_equal(m.from, e);
		assert_string_equal((const char *)m.data, i ? "second" : "first");
		ipc_mbox_consume(seg, c.slot, &m);
	}
	stop_echo(seg, e, pid);
	ipc_waiter_destroy(w);
	it_destroy(seg);
}

/* Broadcast to a group whose members live in two parked processes. */
static void test_msg_broadcast(void **state)
{
	struct shm_seg *seg = it_create("msg", 256, 4096);
	shoal_handle_t h[4];
	pid_t pid[2];

	(void)state;
	memset(mb, 0, sizeof(*mb));
	for (int i = 0; i < 4; i++) {
		h[i] = it_agent(seg);
		assert_int_equal(shm_grp_join(seg, "tuners", 6, h[i]), 0);
	}
	for (int p = 0; p < 2; p++) {
		pid[p] = fork();
		assert_true(pid[p] >= 0);
		if (pid[p] == 0) {
			struct peek_ctx c[2] = {{seg, shoal_handle_slot(h[2 * p])},
						{seg, shoal_handle_slot(h[2 * p + 1])}};
			struct ipc_waiter *w;
			uint32_t got = 0;

			it_child_claim(seg);
			if (ipc_waiter_create(seg, IPC_WAKE_AUTO, &w))
				_exit(2);
			it_host(seg, h[2 * p], seg->self);
			it_host(seg, h[2 * p + 1], seg->self);
			atomic_fetch_add(&mb->ready, 1);
			while (got != 3) {
				for (int k = 0; k < 2; k++) {
					struct ipc_msg m;

					if (ipc_mbox_peek(seg, c[k].slot, &m))
						continue;
					if (m.len != 4 || memcmp(m.data, "go!", 4))
						_exit(4);
					got |= 1u << k;
					ipc_mbox_consume(seg, c[k].slot, &m);
				}
				if (got != 3 &&
				    ipc_waiter_wait(w, 0, 10000000000ull, has_msg2, c, NULL) != 1)
					_exit(3);
			}
			_exit(0);
		}
	}
	assert_true(it_wait_u32(&mb->ready, 2, 10000));
	assert_int_equal(ipc_broadcast(seg, 0, "tuners", 1, "go!", 4, 1000), 4);
	assert_true(it_ok(it_wait_child(pid[0], 10000)));
	assert_true(it_ok(it_wait_child(pid[1], 10000)));
	it_destroy(seg);
}

/* A broadcast reaches every member of a group of any size the configuration allows. */
static void test_msg_broadcast_large_group(void **state)
{
	enum { N = 1500 };
	struct shm_cfg cfg;
	struct shm_seg *seg;
	char inst[64];

	(void)state;
	snprintf(inst, sizeof(inst), "t-msgbig-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = 2048;
	cfg.reg_capacity = 4096;
	cfg.group_members = 2048;
	cfg.mbox_cells = 16;
	cfg.max_msg = 480;
	seg = ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
	for (int i = 0; i < N; i++)
		assert_int_equal(shm_grp_join(seg, "all", 3, it_agent(seg)), 0);
	assert_int_equal(ipc_broadcast(seg, 0, "all", 1, "go!", 4, 0), N);
	for (uint32_t i = 0, got = 0; i < cfg.max_agents; i++) {
		got += ipc_mbox_depth(seg, i);
		if (i + 1 == cfg.max_agents)
			assert_int_equal(got, N);
	}
	ts_seg_drop(seg, inst);
}

static void test_msg_batch(void **state)
{
	struct shm_seg *seg = it_create("msg", 16, 480);
	shoal_handle_t a = it_agent(seg), b = it_agent(seg);
	struct ipc_out out[20];
	struct ipc_msg m;

	(void)state;
	for (int i = 0; i < 20; i++)
		out[i] = (struct ipc_out){i % 2 ? b : a, (uint32_t)i, 1, "z"};
	/* 10 each fit */
	assert_int_equal(ipc_send_batch(seg, 0, out, 20, 0), 20);
	assert_int_equal(ipc_mbox_depth(seg, shoal_handle_slot(a)), 10);
	assert_int_equal(ipc_mbox_peek(seg, shoal_handle_slot(b), &m), 0);
	assert_int_equal(m.type, 1);
	/* a full receiver stops the batch: how many got in is returned */
	for (int i = 0; i < 20; i++)
		out[i].to = a;
	assert_int_equal(ipc_send_batch(seg, 0, out, 20, 0), 6);
	assert_int_equal(ipc_send_batch(seg, 0, out, 1, 0), -EAGAIN);
	it_destroy(seg);
}

static int setup(void **state)
{
	(void)state;
	mb = it_shared(sizeof(*mb));
	return 0;
}

static struct {
	struct shm_seg *seg;
	shoal_handle_t callee;
	int replied;
} ans;

/* The callee, between the call's send and the caller's look at it: answer, then stop. */
static void answer_then_stop(int point)
{
	uint32_t slot = shoal_handle_slot(ans.callee);
	struct ipc_msg m;

	if (point != IPC_HOOK_CALL_SENT || ipc_mbox_peek(ans.seg, slot, &m))
		return;
	ans.replied = ipc_reply(ans.seg, ans.callee, &m, "pong", 5) == 0;
	ipc_mbox_consume(ans.seg, slot, &m);
	atomic_store_explicit(&shm_agent_at(ans.seg, slot)->state, SHM_AGENT_STOPPED,
			      memory_order_release);
	ipc_refuse_queued(ans.seg, ans.callee, ENOENT);
}

/*
 * A callee that answers a call and then stops, before the caller looks at its state (K0):
 * the caller gets the answer, not -ENOENT (the call was handled; its reply must not be
 * dropped as stale). test_msg_call_stop_threads met this.
 */
static void test_msg_call_answered_then_stopped(void **state)
{
	struct shm_seg *seg = it_create("msg", 256, 4096);
	shoal_handle_t inbox;
	struct ipc_waiter *w;
	char buf[16] = "";
	int r;

	(void)state;
	ans.seg = seg;
	ans.callee = it_agent(seg);
	ans.replied = 0;
	it_host(seg, ans.callee, seg->self);
	assert_int_equal(ipc_inbox_open(seg, &inbox), 0);
	assert_int_equal(ipc_waiter_create(seg, IPC_WAKE_AUTO, &w), 0);
	ipc_mbox_test_hook = answer_then_stop;
	r = ipc_call(seg, w, inbox, ans.callee, 1, "ping", 5, buf, sizeof(buf), 1000);
	ipc_mbox_test_hook = NULL;
	assert_true(ans.replied);
	assert_int_equal(r, 5);
	assert_string_equal(buf, "pong");
	ipc_waiter_destroy(w);
	it_destroy(seg);
}

/* --- a call against the callee's stop, threads of one mapping (for ThreadSanitizer) --- */

#define CS_ROUNDS 30

struct call_stop {
	struct shm_seg seg;	     /* the caller's attachment copy, its own process slot */
	_Atomic uint64_t callee;     /* this round's callee */
	_Atomic uint32_t round_go;   /* rounds whose callee is set */
	_Atomic uint32_t round_done; /* rounds the caller saw end in -ENOENT */
	_Atomic int err;	     /* what went wrong, 0 nothing */
	uint64_t answered, refused;  /* the caller's: replies, -ENOENT */
};

static void *cs_caller(void *arg)
{
	struct call_stop *cs = arg;
	struct ipc_waiter *w;
	shoal_handle_t inbox;
	char reply[16];
	int r;

	r = ipc_inbox_open(&cs->seg, &inbox);
	if (!r)
		r = ipc_waiter_create(&cs->seg, IPC_WAKE_AUTO, &w);
	if (r) {
		atomic_store(&cs->err, r);
		return NULL;
	}
	for (uint32_t round = 0; round < CS_ROUNDS && !atomic_load(&cs->err); round++) {
		uint64_t end = shm_now_ns() + 10000000000ull;
		shoal_handle_t to;

		while (atomic_load(&cs->round_go) != round + 1)
			if (shm_now_ns() > end || atomic_load(&cs->err))
				goto out;
		to = atomic_load(&cs->callee);
		/* calls until the stop turns one away: answered by the refusal or by K0 */
		for (;;) {
			r = ipc_call(&cs->seg, w, inbox, to, 1, "ping", 5, reply, sizeof(reply),
				     10000);
			if (r == 5) {
				cs->answered++;
				continue;
			}
			if (r == -ENOENT)
				cs->refused++;
			else
				atomic_store(&cs->err, r < 0 ? r : -EBADMSG);
			break;
		}
		atomic_fetch_add(&cs->round_done, 1);
	}
out:
	ipc_waiter_destroy(w);
	return NULL;
}

/*
 * A caller thread calls an agent whose host, the main thread, answers a few calls and then
 * stops it as wrk_agent_finish_stop() does (STOPPED, then ipc_refuse_queued()): every call
 * is answered, by the agent or by the refusal, or finds the agent removed at once (the
 * Dekker pair K0/K1 in ipc/msg.c); none waits for its 10 s timeout. For ThreadSanitizer:
 * the call's message, its reply and the refusal across threads.
 */
static void test_msg_call_stop_threads(void **state)
{
	struct shm_seg *seg = it_create("msg", 256, 4096);
	struct call_stop *cs = calloc(1, sizeof(*cs));
	pthread_t t;

	(void)state;
	assert_non_null(cs);
	cs->seg = *seg;
	cs->seg.self = UINT32_MAX;
	assert_int_equal(shm_proc_claim(&cs->seg, SHM_ROLE_CLIENT, false), 0);
	shm_proc_set_state(&cs->seg, SHM_PROC_RUNNING);
	assert_int_equal(pthread_create(&t, NULL, cs_caller, cs), 0);
	for (uint32_t round = 0; round < CS_ROUNDS && !atomic_load(&cs->err); round++) {
		shoal_handle_t e = it_agent(seg);
		uint32_t slot = shoal_handle_slot(e), served = 0;
		uint64_t end = shm_now_ns() + 10000000000ull;

		it_host(seg, e, seg->self);
		atomic_store(&cs->callee, e);
		atomic_store(&cs->round_go, round + 1);
		/* serve round % 4 calls, then stop */
		while (served < round % 4 && !atomic_load(&cs->err)) {
			struct ipc_msg m;

			assert_true(shm_now_ns() < end);
			if (ipc_mbox_peek(seg, slot, &m)) {
				sched_yield();
				continue;
			}
			assert_int_equal(ipc_reply(seg, e, &m, m.data, m.len), 0);
			ipc_mbox_consume(seg, slot, &m);
			served++;
		}
		atomic_store_explicit(&shm_agent_at(seg, slot)->state, SHM_AGENT_STOPPED,
				      memory_order_release);
		ipc_refuse_queued(seg, e, ENOENT);
		while (atomic_load(&cs->round_done) == round && !atomic_load(&cs->err))
			assert_true(shm_now_ns() < end);
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	if (atomic_load(&cs->err))
		fail_msg("caller: %s", strerror(-atomic_load(&cs->err)));
	assert_int_equal(cs->refused, CS_ROUNDS);
	assert_int_equal(cs->answered,
			 CS_ROUNDS / 4 * 6 + (CS_ROUNDS % 4) * (CS_ROUNDS % 4 - 1) / 2);
	print_message("call against stop: %llu answered, %llu refused\n",
		      (unsigned long long)cs->answered, (unsigned long long)cs->refused);
	shm_proc_release(&cs->seg);
	free(cs);
	it_destroy(seg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_call_leaves_others_queued),
		cmocka_unit_test(test_msg_call_timeout),
		cmocka_unit_test(test_msg_call_late_and_duplicate_replies),
		cmocka_unit_test(test_msg_call_async),
		cmocka_unit_test(test_msg_broadcast),
		cmocka_unit_test(test_msg_broadcast_large_group),
		cmocka_unit_test(test_msg_batch),
		cmocka_unit_test(test_msg_call_answered_then_stopped),
		cmocka_unit_test(test_msg_call_stop_threads),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (the tsan suite: *thread*) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, setup, NULL);
}
