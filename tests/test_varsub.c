/*
 * test_varsub: subscriptions to coordination variables: one notification per update or
 * batch, coalescing for a subscriber that lags (its mailbox never fills from them, the
 * writer never waits), prefixes, subscribers that die or go, and writers killed between
 * their update and their notifications.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipc/ipc.h"
#include "tests/skip.h"
#include "tests/run_test_util.h"
#include "tests/support.h"
#include "shm/registry.h"
#include "shm/shm.h"
#include "shm/var.h"
#include "shm/var_int.h"
#include "shoal/client.h"
#include "shoal/shoal.h"
#include "workers/wrk.h"
#include "workers/wrk_int.h"

static char inst[64];
static pid_t test_pid;

static int setup(void **state)
{
	(void)state;
	snprintf(inst, sizeof(inst), "t-varsub-%d", (int)getpid());
	shm_seg_unlink(inst);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shm_seg_unlink(inst);
	return 0;
}

static struct shm_seg *make_seg(void)
{
	struct shm_cfg cfg;

	shm_cfg_default(&cfg);
	cfg.max_agents = 16;
	cfg.reg_capacity = 256;
	cfg.max_groups = 4;
	cfg.group_members = 4;
	cfg.max_monitors = 16;
	cfg.mbox_cells = 16;
	cfg.max_msg = 64;
	cfg.max_vars = 16;
	cfg.var_bytes = 64;
	cfg.max_subs = 32;
	return ts_seg_make(inst, &cfg, SHM_ROLE_SUPERVISOR);
}

static uint64_t mk(struct shm_seg *seg, const char *name)
{
	shoal_var_t id;

	assert_int_equal(wrk_var_create(seg, name, SHOAL_VAR_INT, &id), 0);
	return id;
}

static int set(struct shm_seg *seg, uint64_t writer, const uint64_t *ids, uint32_t n, int64_t v)
{
	struct shoal_var_set s[SHOAL_VAR_MANY];

	for (uint32_t i = 0; i < n; i++)
		s[i] = (struct shoal_var_set){.var = ids[i],
					      .type = SHOAL_VAR_INT,
					      .len = 8,
					      .data = &v,
					      .expect = SHOAL_VAR_ANY};
	return wrk_var_update(seg, s, n, writer, SHM_VAR_WAIT_NS, NULL);
}

static shoal_handle_t inbox(struct shm_seg *seg)
{
	shoal_handle_t h;

	assert_int_equal(ipc_inbox_open(seg, &h), 0);
	return h;
}

/* Take the head message of h's mailbox as a consumer does; 0, or -EAGAIN when empty. */
static int take(struct shm_seg *seg, shoal_handle_t h, struct shoal_var_note *note, uint64_t *ref)
{
	struct ipc_msg m;

	if (ipc_mbox_peek(seg, shoal_handle_slot(h), &m))
		return -EAGAIN;
	assert_true(m.flags & IPC_F_SYSTEM);
	assert_int_equal(m.type, IPC_T_VAR);
	assert_int_equal(m.len, sizeof(*note));
	memcpy(note, m.data, sizeof(*note));
	*ref = m.ref;
	shm_var_sub_taken(seg, m.ref);
	ipc_mbox_consume(seg, shoal_handle_slot(h), &m);
	return 0;
}

static uint32_t depth(struct shm_seg *seg, shoal_handle_t h)
{
	return ipc_mbox_depth(seg, shoal_handle_slot(h));
}

static void test_varsub_one_per_update(void **state)
{
	struct shm_seg *seg = make_seg();
	uint64_t x = mk(seg, "x"), y = mk(seg, "y"), both[2] = {x, y}, r1, r2, ref;
	shoal_handle_t a = inbox(seg), b = inbox(seg), w = inbox(seg);
	struct shoal_var_note n;

	(void)state;
	assert_int_equal(wrk_var_subscribe(seg, a, 0, "x", 0, &r1), 0);
	assert_int_equal(wrk_var_subscribe(seg, b, 0, "y", 0, &r2), 0);
	assert_int_equal(wrk_var_subscribe(seg, a, 0, "nope", 0, &ref), -ENOENT);
	/* one update, one notification: to x's subscriber only */
	assert_int_equal(set(seg, w, &x, 1, 5), 0);
	assert_int_equal(depth(seg, a), 1);
	assert_int_equal(depth(seg, b), 0);
	assert_int_equal(take(seg, a, &n, &ref), 0);
	assert_int_equal(ref, r1);
	assert_int_equal(n.sub, r1);
	assert_int_equal(n.var, x);
	assert_int_equal(n.version, 1);
	assert_int_equal(n.writer, w);
	assert_int_equal(n.count, 1);
	/* taken: the next update sends the next one */
	assert_int_equal(set(seg, w, &x, 1, 6), 0);
	assert_int_equal(take(seg, a, &n, &ref), 0);
	assert_int_equal(n.version, 2);
	/* a batch of x and y: each subscription once */
	assert_int_equal(set(seg, w, both, 2, 7), 0);
	assert_int_equal(depth(seg, a), 1);
	assert_int_equal(depth(seg, b), 1);
	assert_int_equal(take(seg, b, &n, &ref), 0);
	assert_int_equal(n.var, y);
	assert_int_equal(take(seg, a, &n, &ref), 0);
	assert_int_equal(n.var, x);
	/* unsubscribed: nothing more; another's reference is refused */
	assert_int_equal(shm_var_sub_del(seg, r1, b), -ENOENT);
	assert_int_equal(shm_var_sub_del(seg, r1, a), 0);
	assert_int_equal(shm_var_sub_del(seg, r1, a), -ENOENT);
	assert_int_equal(set(seg, w, &x, 1, 8), 0);
	assert_int_equal(depth(seg, a), 0);
	ts_seg_drop(seg, inst);
}

static void test_varsub_prefix(void **state)
{
	struct shm_seg *seg = make_seg();
	uint64_t a1 = mk(seg, "cfg.a"), other = mk(seg, "other"), ref, rp;
	shoal_handle_t s = inbox(seg), w = inbox(seg);
	struct shoal_var_note n;
	uint64_t two[2], later;

	(void)state;
	assert_int_equal(wrk_var_subscribe(seg, s, 0, "cfg.", SHOAL_VAR_SUB_PREFIX, &rp), 0);
	assert_int_equal(set(seg, w, &other, 1, 1), 0);
	assert_int_equal(depth(seg, s), 0);
	assert_int_equal(set(seg, w, &a1, 1, 1), 0);
	assert_int_equal(take(seg, s, &n, &ref), 0);
	assert_int_equal(ref, rp);
	assert_int_equal(n.var, a1);
	/* a variable created after the subscription is covered too; a batch notifies once */
	later = mk(seg, "cfg.b");
	two[0] = other;
	two[1] = later;
	assert_int_equal(set(seg, w, two, 2, 2), 0);
	assert_int_equal(depth(seg, s), 1);
	assert_int_equal(take(seg, s, &n, &ref), 0);
	assert_int_equal(n.var, later);
	assert_int_equal(n.count, 1);
	two[0] = a1;
	assert_int_equal(set(seg, w, two, 2, 3), 0);
	assert_int_equal(take(seg, s, &n, &ref), 0);
	assert_int_equal(n.count, 2);
	assert_int_equal(depth(seg, s), 0);
	ts_seg_drop(seg, inst);
}

static void test_varsub_lagging(void **state)
{
	struct shm_seg *seg = make_seg();
	uint64_t x = mk(seg, "x"), ref, r;
	shoal_handle_t s = inbox(seg), w = inbox(seg);
	struct shm_var_sub_stats st;
	struct shoal_var_note n;
	struct shoal_var_value v = {0};
	uint32_t fill = 0;

	(void)state;
	assert_int_equal(wrk_var_subscribe(seg, s, 0, "x", 0, &r), 0);
	/* a subscriber that never reads: one notification, however many updates */
	for (int i = 1; i <= 1000; i++)
		assert_int_equal(set(seg, w, &x, 1, i), 0);
	assert_int_equal(depth(seg, s), 1);
	assert_int_equal(shm_var_sub_stats(seg, &st), 0);
	assert_int_equal(st.notes, 1);
	assert_int_equal(st.coalesced, 999);
	/* ... and it reads the newest value when it gets to it */
	assert_int_equal(take(seg, s, &n, &ref), 0);
	assert_int_equal(n.version, 1);
	assert_int_equal(wrk_var_read(seg, x, &v), 0);
	assert_int_equal(v.num.i, 1000);
	/* its mailbox full of other messages: the update neither waits nor fails */
	while (ipc_send(seg, s, w, 9, 0, 0, "fill", 4, 0) == 0)
		fill++;
	assert_true(fill > 0);
	{
		uint64_t t0 = shm_now_ns();

		assert_int_equal(set(seg, w, &x, 1, 2000), 0);
		/* a wait for room would take the mailbox's timeout, not microseconds */
		assert_true(shm_now_ns() - t0 < 50000000ull);
	}
	assert_int_equal(shm_var_sub_stats(seg, &st), 0);
	assert_int_equal(st.owed, 1);
	assert_int_equal(st.owed_now, 1);
	/* drained, the next update sends what it was owed */
	for (uint32_t i = 0; i < fill; i++) {
		struct ipc_msg m;

		assert_int_equal(ipc_mbox_peek(seg, shoal_handle_slot(s), &m), 0);
		ipc_mbox_consume(seg, shoal_handle_slot(s), &m);
	}
	assert_int_equal(set(seg, w, &x, 1, 2001), 0);
	assert_int_equal(take(seg, s, &n, &ref), 0);
	assert_int_equal(n.version, 1002);
	ts_seg_drop(seg, inst);
}

/* Make the calling (child) process a client with its own slot; it dies with the test. */
static void child_claim(struct shm_seg *seg)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != test_pid)
		_exit(91);
	seg->self = UINT32_MAX;
	if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
		_exit(90);
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
}

/* Fork a child that claims a slot, runs fn and SIGKILLs itself; its slot once dead. */
static uint32_t run_dead(struct shm_seg *seg, void (*fn)(struct shm_seg *seg, void *arg), void *arg)
{
	_Atomic uint32_t *slot =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t s;
	pid_t pid;
	int wst;

	assert_true(slot != MAP_FAILED);
	atomic_store(slot, UINT32_MAX);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		child_claim(seg);
		atomic_store(slot, seg->self);
		fn(seg, arg);
		raise(SIGKILL);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
	s = atomic_load(slot);
	munmap((void *)slot, 4096);
	assert_true(s != UINT32_MAX);
	atomic_store(&shm_proc_at(seg, s)->state, SHM_PROC_DEAD);
	return s;
}

/* What the supervisor's repair does for the variables of a dead slot. */
static void bury(struct shm_seg *seg, uint32_t slot)
{
	shm_var_repair(seg, slot);
	wrk_var_sub_repair(seg, slot);
	atomic_store(&shm_proc_at(seg, slot)->state, SHM_PROC_EXITED);
}

static void client_subscribes(struct shm_seg *seg, void *arg)
{
	shoal_handle_t h;
	uint64_t ref;

	(void)arg;
	if (ipc_inbox_open(seg, &h) || wrk_var_subscribe(seg, h, seg->tag, "x", 0, &ref) ||
	    wrk_var_subscribe(seg, h, seg->tag, "x", SHOAL_VAR_SUB_PREFIX, &ref))
		_exit(4);
}

static void test_varsub_subscriber_dies(void **state)
{
	struct shm_seg *seg = make_seg();
	uint64_t x = mk(seg, "x"), r;
	shoal_handle_t w = inbox(seg), gone = inbox(seg);
	struct shm_var_sub_stats st;
	uint32_t slot;

	(void)state;
	slot = run_dead(seg, client_subscribes, NULL);
	assert_int_equal(shm_var_sub_stats(seg, &st), 0);
	assert_int_equal(st.live, 2);
	/* the repair of the dead client's slot takes its inbox's subscriptions */
	bury(seg, slot);
	assert_int_equal(shm_var_sub_stats(seg, &st), 0);
	assert_int_equal(st.live, 0);
	/* an inbox that closed: its subscription goes at the next update that finds it gone */
	assert_int_equal(wrk_var_subscribe(seg, gone, 0, "x", 0, &r), 0);
	ipc_inbox_close(seg, gone);
	assert_int_equal(set(seg, w, &x, 1, 1), 0);
	assert_int_equal(shm_var_sub_stats(seg, &st), 0);
	assert_int_equal(st.live, 0);
	/* an agent that stops drops its own (wrk_agent_finish_stop()) */
	assert_int_equal(wrk_var_subscribe(seg, w, 0, "x", 0, &r), 0);
	assert_int_equal(shm_var_sub_drop_who(seg, w), 1);
	assert_int_equal(shm_var_sub_stats(seg, &st), 0);
	assert_int_equal(st.live, 0);
	ts_seg_drop(seg, inst);
}

static uint64_t crash_var;

/* A writer killed right after its update, before any notification. */
static void write_then_die(struct shm_seg *seg, void *arg)
{
	int64_t v = 42;
	struct shm_var_op op = {
		.id = crash_var, .type = SHM_VAR_INT, .len = 8, .data = &v, .expect = SHM_VAR_ANY};

	(void)arg;
	if (shm_var_update(seg, &op, 1, 0, NULL, NULL))
		_exit(5);
}

/* A writer killed between taking a subscription for its notification and its put. */
static void take_then_die(struct shm_seg *seg, void *arg)
{
	struct shm_var_note n[4];
	uint32_t cursor = 0;

	(void)arg;
	write_then_die(seg, NULL);
	if (shm_var_sub_collect(seg, &crash_var, 1, 0, &cursor, n, 4) != 1)
		_exit(6);
}

static void test_varsub_writer_dies(void **state)
{
	struct shm_seg *seg = make_seg();
	shoal_handle_t s = inbox(seg);
	struct shoal_var_note n;
	uint64_t r, ref;
	uint32_t slot;

	(void)state;
	crash_var = mk(seg, "x");
	assert_int_equal(wrk_var_subscribe(seg, s, 0, "x", 0, &r), 0);
	/* killed before notifying: the repair of its slot sends what it owed */
	slot = run_dead(seg, write_then_die, NULL);
	assert_int_equal(depth(seg, s), 0);
	bury(seg, slot);
	assert_int_equal(take(seg, s, &n, &ref), 0);
	assert_int_equal(n.version, 1);
	assert_int_equal(n.writer, 0);
	/* killed holding the subscription SENDING: repaired to owed and sent */
	slot = run_dead(seg, take_then_die, NULL);
	assert_int_equal(depth(seg, s), 0);
	bury(seg, slot);
	assert_int_equal(take(seg, s, &n, &ref), 0);
	assert_int_equal(n.version, 2);
	/* and the subscription works on as before */
	assert_int_equal(set(seg, s, &crash_var, 1, 7), 0);
	assert_int_equal(take(seg, s, &n, &ref), 0);
	assert_int_equal(n.version, 3);
	ts_seg_drop(seg, inst);
}

/* --- a writer and a subscriber as two threads (for ThreadSanitizer too) --- */

#define THR_UPDATES 100000

struct thr {
	struct shm_seg *seg;
	uint64_t x;
	shoal_handle_t s, w;
	_Atomic int done;
	uint32_t max_depth;
};

static void *thr_writer(void *arg)
{
	struct thr *t = arg;

	for (int i = 1; i <= THR_UPDATES; i++) {
		uint32_t d;

		if (set(t->seg, t->w, &t->x, 1, i))
			break;
		d = depth(t->seg, t->s);
		if (d > t->max_depth)
			t->max_depth = d;
	}
	atomic_store(&t->done, 1);
	return NULL;
}

/*
 * The subscriber takes notifications and reads the value while the writer updates: its
 * mailbox never holds more than two of them, and once the writer stopped and the mailbox is
 * empty, the last value it read is the writer's last (either the last update sent a
 * notification, or the read after the last one saw it: N0/N2).
 */
static void test_varsub_threads(void **state)
{
	struct shm_seg *seg = make_seg();
	struct thr t = {.seg = seg, .x = mk(seg, "x"), .s = inbox(seg), .w = inbox(seg)};
	struct shoal_var_value v = {0};
	struct shoal_var_note n;
	pthread_t th;
	uint64_t r, ref;
	int64_t last = 0;
	uint32_t taken = 0;

	(void)state;
	assert_int_equal(wrk_var_subscribe(seg, t.s, 0, "x", 0, &r), 0);
	assert_int_equal(pthread_create(&th, NULL, thr_writer, &t), 0);
	for (;;) {
		int done = atomic_load(&t.done);

		if (take(seg, t.s, &n, &ref) == 0) {
			taken++;
			assert_int_equal(wrk_var_read(seg, t.x, &v), 0);
			assert_true(v.version >= n.version);
			last = v.num.i;
			continue;
		}
		if (done)
			break;
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(take(seg, t.s, &n, &ref), -EAGAIN);
	assert_int_equal(last, THR_UPDATES);
	assert_true(t.max_depth <= 2);
	assert_true(taken >= 1);
	{
		struct shm_var_sub_stats st;

		assert_int_equal(shm_var_sub_stats(seg, &st), 0);
		print_message("threads: %u notifications taken for %d updates (%llu sent, %llu "
			      "coalesced)\n",
			      taken, THR_UPDATES, (unsigned long long)st.notes,
			      (unsigned long long)st.coalesced);
		assert_int_equal(st.notes, taken);
	}
	ts_seg_drop(seg, inst);
}

/* --- shoal var watch, against a running instance --- */

static const char *cli_config = "[instance]\nworkers = 1\nplacement = none\n"
				"[segment]\nmax_agents = 16\nregistry_capacity = 128\n"
				"max_procs = 8\nvariables = 4\nvariable_bytes = 16\n"
				"subscriptions = 8\n";

/* Wait (failing after TIMEOUT_MS) until the table has `live` subscriptions, `queued` queued. */
static void wait_subs(struct shm_seg *seg, uint32_t live, uint32_t queued)
{
	uint64_t end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	struct shm_var_sub_stats st;

	for (;;) {
		assert_int_equal(shm_var_sub_stats(seg, &st), 0);
		if (st.live == live && st.queued == queued)
			return;
		if (shm_now_ns() > end)
			fail_msg("subscriptions: %u live, %u queued; want %u, %u", st.live,
				 st.queued, live, queued);
		sched_yield(); /* the table's words are the state waited on */
	}
}

static void test_varsub_cli_watch(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	char out[4096], err[256];
	pid_t pid;
	int fd;

	(void)state;
	rt_start(&r, "t-varsub-", "cli", cli_config, NULL);
	rt_wait_ready(&r);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"var", "set", "w", "1", NULL}),
			 0);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	pid = rt_tool_start(
		r.inst,
		(const char *[]){"var", "watch", "w", "--count", "2", "--timeout", "10000", NULL},
		&fd);
	wait_subs(seg, 1, 0);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"var", "set", "w", "2", NULL}),
			 0);
	/* taken by the watcher (so the next one is not coalesced into it) */
	wait_subs(seg, 1, 0);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"var", "set", "w", "3", NULL}),
			 0);
	assert_int_equal(rt_tool_finish(pid, fd, out, sizeof(out)), 0);
	if (!strstr(out, "w = 2  (version 2") || !strstr(out, "w = 3  (version 3") ||
	    strstr(out, "w = 1"))
		fail_msg("shoal var watch said: '%s'", out);
	/* its subscription went with it; inspect counts what was sent */
	wait_subs(seg, 0, 0);
	{
		char big[16384];

		assert_int_equal(
			rt_run_tool(r.inst, big, sizeof(big), (const char *[]){"inspect", NULL}),
			0);
		if (!strstr(big, "subscriptions  0 of 8") || !strstr(big, "notifications: 2 sent"))
			fail_msg("shoal inspect said: '%s'", big);
	}
	/* nothing within the timeout: 1; no such variable: 2 */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"var", "watch", "--prefix", "w", "--timeout",
						      "200", NULL}),
			 1);
	assert_non_null(strstr(out, "no change within 200 ms"));
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"var", "watch", "nope", NULL}),
			 2);
	assert_non_null(strstr(out, "'nope': no variable of that name"));
	shm_seg_detach(seg);
	rt_stop(&r);
}

/* --- an agent subscriber (the test plugin's varwatcher) --- */

/* Call the varwatcher: its reply as a string. */
static void watcher_call(struct shoal_client *c, shoal_handle_t h, const char *req, char *out,
			 size_t cap)
{
	int n = shoal_client_call(c, h, 1, req, (uint32_t)strlen(req), out, (uint32_t)cap - 1,
				  TIMEOUT_MS);

	assert_true(n >= 0);
	out[n] = 0;
}

static void test_varsub_agent(void **state)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	static char cfg[1024];
	struct shoal_client *c;
	struct shm_seg *seg;
	shoal_handle_t h;
	shoal_var_t t;
	struct rt_run r;
	char out[128], err[256];
	uint64_t end;
	int64_t v = 5;
	struct shoal_var_set s = {
		.var = 0, .type = SHOAL_VAR_INT, .len = 8, .data = &v, .expect = SHOAL_VAR_ANY};

	(void)state;
	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg), "%s[types]\nload = %s\n[agent v]\ntype = varwatcher\nname = v\n",
		 cli_config, lib);
	rt_start(&r, "t-varsub-", "agent", cfg, NULL);
	rt_wait_ready(&r);
	assert_int_equal(shoal_client_open(r.inst, &c, err, sizeof(err)), 0);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	assert_int_equal(shoal_client_lookup(c, "v", &h), 0);
	assert_int_equal(shoal_client_var_create(c, "t", SHOAL_VAR_INT, &t), 0);
	watcher_call(c, h, "sub nope", out, sizeof(out));
	assert_string_equal(out, "-2"); /* -ENOENT */
	watcher_call(c, h, "sub t", out, sizeof(out));
	assert_string_equal(out, "0");
	wait_subs(seg, 1, 0);
	s.var = t;
	assert_int_equal(shoal_client_var_update(c, &s, 1, NULL, TIMEOUT_MS), 0);
	/* its handle() got the notification and read the value */
	end = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	for (;;) {
		watcher_call(c, h, "get", out, sizeof(out));
		if (!strcmp(out, "1 5 1"))
			break;
		if (shm_now_ns() > end)
			fail_msg("varwatcher: '%s', want '1 5 1'", out);
		/* no pause: each ask is a call, answered after what the agent had queued */
	}
	/* stopped: its subscription goes with it */
	assert_int_equal(shoal_client_stop(c, NULL, h, TIMEOUT_MS), 0);
	wait_subs(seg, 0, 0);
	/*
	 * A client whose inbox was full when the update came: the notification is owed, and its
	 * recv sends it once the inbox is empty, with no further update.
	 */
	{
		struct shoal_msg m;
		struct shoal_var_note n;
		uint64_t ref;
		uint32_t fill = 0;

		assert_int_equal(shoal_client_var_subscribe(c, "t", 0, &ref), 0);
		while (shoal_client_cast(c, shoal_client_inbox(c), 9, "fill", 4, 0) == 0)
			fill++;
		assert_true(fill > 0);
		v = 6;
		assert_int_equal(shoal_client_var_update(c, &s, 1, NULL, TIMEOUT_MS), 0);
		wait_subs(seg, 1, 0); /* owed, not queued */
		for (uint32_t i = 0; i < fill; i++) {
			assert_int_equal(shoal_client_recv(c, &m, &n, sizeof(n), TIMEOUT_MS), 0);
			assert_int_equal(m.type, 9);
		}
		assert_int_equal(shoal_client_recv(c, &m, &n, sizeof(n), 0), 0);
		assert_true(m.flags & SHOAL_MSG_SYSTEM);
		assert_int_equal(m.type, SHOAL_T_VAR);
		assert_int_equal(m.ref, ref);
		assert_int_equal(n.version, 2);
		assert_int_equal(shoal_client_recv(c, &m, &n, sizeof(n), 0), -EAGAIN);
	}
	shm_seg_detach(seg);
	shoal_client_close(c);
	rt_stop(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_varsub_one_per_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_varsub_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_varsub_lagging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_varsub_subscriber_dies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_varsub_writer_dies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_varsub_threads, setup, teardown),
		cmocka_unit_test_teardown(test_varsub_cli_watch, rt_teardown),
		cmocka_unit_test_teardown(test_varsub_agent, rt_teardown),
	};

	test_pid = getpid();
	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
