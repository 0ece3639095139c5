/*
 * test_control: spawn and stop as control requests served by the supervisor of a real
 * `shoal run` (supervisor/control.c): hints, every refusal, a requester SIGKILLed right after
 * sending, a spawn onto a worker being restarted, a supervisor that does not answer or dies,
 * and the `shoal spawn` / `shoal stop` / `shoal inspect` commands over it.
 */
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"
#include "tests/support.h"

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/shm.h"
#include "supervisor/sup.h"
#include "workers/wrk.h"

#include "tests/run_test_util.h"

#include <liburing.h>

#include "ipc/ipc_int.h"

/* Start `shoal run` with config as instance t-ctl-NAME-PID (see rt_start()). */
static void start(struct rt_run *r, const char *name, const char *config)
{
	rt_start(r, "t-ctl-", name, config, NULL);
}

static struct ipc_ctl_req spawn_req(const char *type, const char *name, uint32_t hint,
				    int32_t where)
{
	struct ipc_ctl_req q = {.op = IPC_CTL_SPAWN, .hint = hint, .where = where};

	snprintf(q.type, sizeof(q.type), "%s", type);
	snprintf(q.name, sizeof(q.name), "%s", name);
	return q;
}

/* Ask for a spawn; returns the verdict, fills *rep. The call itself must be answered. */
static int ctl_spawn(struct rt_client *c, const char *type, const char *name, uint32_t hint,
		     int32_t where, struct ipc_ctl_reply *rep)
{
	struct ipc_ctl_req q = spawn_req(type, name, hint, where);

	assert_int_equal(ipc_ctl_call(c->seg, c->w, c->inbox, &q, rep, TIMEOUT_MS), 0);
	return rep->rc;
}

static int ctl_stop(struct rt_client *c, const char *name, shoal_handle_t h,
		    struct ipc_ctl_reply *rep)
{
	struct ipc_ctl_req q = {.op = IPC_CTL_STOP, .handle = h};

	snprintf(q.name, sizeof(q.name), "%s", name);
	assert_int_equal(ipc_ctl_call(c->seg, c->w, c->inbox, &q, rep, TIMEOUT_MS), 0);
	return rep->rc;
}

static bool agent_is(struct shm_seg *seg, shoal_handle_t h, uint32_t st)
{
	struct shm_agent *a = wrk_agent_get(seg, h);

	return a && atomic_load(&a->state) == st;
}

static uint32_t agents_in_use(struct shm_seg *seg)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_agents; i++)
		n += atomic_load(&shm_agent_at(seg, i)->state) != SHM_AGENT_FREE;
	return n;
}

static const char *two_workers = "[instance]\nworkers = 2\nplacement = none\n"
				 "[segment]\nmax_agents = 32\nregistry_capacity = 128\n"
				 "max_procs = 8\n"
				 "[agent e]\ntype = echo\nname = e0\nworker = 0\n";

/* Spawn with a worker hint and with a node hint; stop; the counters in the header. */
static void test_control_spawn_and_stop(void **state)
{
	struct ipc_ctl_reply rep;
	struct rt_client c;
	struct rt_run r;
	shoal_handle_t h, found;
	int32_t node;

	(void)state;
	start(&r, "basic", two_workers);
	rt_wait_ready(&r);
	rt_client_open(&c, r.inst);
	assert_true(atomic_load(&shm_hdr(c.seg)->ctl_inbox) != 0);
	/* worker hint */
	assert_int_equal(ctl_spawn(&c, "echo", "w1", IPC_CTL_WORKER, 1, &rep), 0);
	assert_int_equal(rep.windex, 1);
	h = rep.handle;
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "w1", 2, &found, NULL), 0);
	assert_true(found == h);
	assert_int_equal(atomic_load(&wrk_agent_get(c.seg, h)->worker), 1 + 2);
	WAIT_FOR(c.seg, agent_is(c.seg, h, SHM_AGENT_RUNNING));
	rt_expect_echo(&c, h);
	/* node hint: the node the workers were placed on */
	node = atomic_load_explicit(&shm_proc_at(c.seg, 1)->node, memory_order_relaxed);
	if (node >= 0) {
		assert_int_equal(ctl_spawn(&c, "echo", "n1", IPC_CTL_NODE, node, &rep), 0);
		assert_int_equal(rep.node, node);
		/* the least loaded: worker 0 hosts e0 already, worker 1 hosts w1: a tie, or 1 */
		assert_true(rep.windex == 0 || rep.windex == 1);
		WAIT_FOR(c.seg, agent_is(c.seg, rep.handle, SHM_AGENT_RUNNING));
		rt_expect_echo(&c, rep.handle);
		assert_int_equal(ctl_spawn(&c, "echo", "n2", IPC_CTL_NODE, node + 1, &rep), -ENXIO);
	}
	/* no hint: the least loaded running worker (worker 0 has e0, worker 1 has w1 (+n1)) */
	assert_int_equal(ctl_spawn(&c, "echo", "a1", IPC_CTL_ANY, 0, &rep), 0);
	assert_true(rep.windex == 0 || rep.windex == 1);
	/* stop by name: the name is free once the stop is done */
	assert_int_equal(ctl_stop(&c, "w1", 0, &rep), 0);
	assert_true(rep.handle == h);
	assert_int_equal(rep.windex, 1);
	WAIT_FOR(c.seg, wrk_agent_get(c.seg, h) == NULL);
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "w1", 2, &found, NULL), -ENOENT);
	/* stop by handle */
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "a1", 2, &found, NULL), 0);
	assert_int_equal(ctl_stop(&c, "", found, &rep), 0);
	WAIT_FOR(c.seg, wrk_agent_get(c.seg, found) == NULL);
	assert_true(atomic_load(&shm_hdr(c.seg)->ctl_served) >= 4);
	assert_int_equal(atomic_load(&shm_hdr(c.seg)->ctl_dropped), 0);
	rt_client_close(&c);
	rt_stop(&r);
}

/* Every refusal, each with its errno. */
static void test_control_refusals(void **state)
{
	struct ipc_ctl_reply rep;
	struct ipc_ctl_req q;
	struct rt_client c;
	struct rt_run r;
	shoal_handle_t e0, ctl_inbox;
	uint64_t refused;
	char reply[64];
	int n;

	(void)state;
	start(&r, "refuse",
	      "[instance]\nworkers = 2\nplacement = none\n"
	      "[segment]\nmax_agents = 8\nregistry_capacity = 64\nmax_procs = 8\n"
	      "[agent e]\ntype = echo\nname = e0\nworker = 0\n");
	rt_wait_ready(&r);
	rt_client_open(&c, r.inst);
	refused = atomic_load(&shm_hdr(c.seg)->ctl_refused);
	assert_int_equal(ctl_spawn(&c, "nonesuch", "x", IPC_CTL_ANY, 0, &rep), -ENOENT);
	assert_int_equal(ctl_spawn(&c, "echo", "e0", IPC_CTL_ANY, 0, &rep), -EEXIST);
	assert_int_equal(ctl_spawn(&c, "echo", "x", IPC_CTL_WORKER, 2, &rep), -ENXIO);
	assert_int_equal(ctl_spawn(&c, "echo", "x", IPC_CTL_WORKER, -1, &rep), -ENXIO);
	assert_int_equal(ctl_spawn(&c, "echo", "x", 7, 0, &rep), -EINVAL);
	assert_int_equal(ctl_spawn(&c, "echo", "x", IPC_CTL_NODE, -1, &rep), -EINVAL);
	/* malformed: an unterminated name, flags set, an unknown op, a foreign message */
	q = spawn_req("echo", "x", IPC_CTL_ANY, 0);
	memset(q.name, 'n', sizeof(q.name));
	assert_int_equal(ipc_ctl_call(c.seg, c.w, c.inbox, &q, &rep, TIMEOUT_MS), 0);
	assert_int_equal(rep.rc, -EPROTO);
	q = spawn_req("echo", "x", IPC_CTL_ANY, 0);
	q.flags = 1;
	assert_int_equal(ipc_ctl_call(c.seg, c.w, c.inbox, &q, &rep, TIMEOUT_MS), 0);
	assert_int_equal(rep.rc, -EPROTO);
	q.flags = 0;
	q.op = 99;
	assert_int_equal(ipc_ctl_call(c.seg, c.w, c.inbox, &q, &rep, TIMEOUT_MS), 0);
	assert_int_equal(rep.rc, -EPROTO);
	ctl_inbox = atomic_load(&shm_hdr(c.seg)->ctl_inbox);
	n = ipc_call(c.seg, c.w, c.inbox, ctl_inbox, 1, "hello", 5, reply, sizeof(reply),
		     TIMEOUT_MS);
	assert_int_equal(n, (int)sizeof(rep));
	memcpy(&rep, reply, sizeof(rep));
	assert_int_equal(rep.rc, -EPROTO);
	/* stop: no such name, a stale handle, things no worker hosts */
	assert_int_equal(ctl_stop(&c, "nonesuch", 0, &rep), -ENOENT);
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "e0", 2, &e0, NULL), 0);
	assert_int_equal(
		ctl_stop(&c, "", shoal_handle_make(shoal_handle_slot(e0), shoal_handle_gen(e0) + 1),
			 &rep),
		-ESTALE);
	assert_int_equal(ctl_stop(&c, "", c.inbox, &rep), -EPERM);
	assert_int_equal(ctl_stop(&c, "", ctl_inbox, &rep), -EPERM);
	/* already stopping: its worker is stopped (SIGSTOP), so the stop cannot finish */
	assert_int_equal(kill(rt_slot_pid(c.seg, 1), SIGSTOP), 0);
	assert_int_equal(ctl_stop(&c, "e0", 0, &rep), 0);
	assert_int_equal(ctl_stop(&c, "e0", 0, &rep), -EALREADY);
	assert_int_equal(kill(rt_slot_pid(c.seg, 1), SIGCONT), 0);
	WAIT_FOR(c.seg, wrk_agent_get(c.seg, e0) == NULL);
	/* a full agent table: 8 slots, 2 inboxes (ours, the supervisor's) */
	for (int i = 0;; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		assert_true(i < 8);
		if (ctl_spawn(&c, "echo", name, IPC_CTL_ANY, 0, &rep) == -ENOSPC)
			break;
		assert_int_equal(rep.rc, 0);
	}
	assert_int_equal(agents_in_use(c.seg), 8);
	assert_int_equal(atomic_load(&shm_hdr(c.seg)->ctl_refused) - refused, 16);
	rt_client_close(&c);
	rt_stop(&r);
}

/* A stopping instance refuses: its worker is held (SIGSTOP) so the stop lasts. */
static void test_control_refused_while_stopping(void **state)
{
	struct ipc_ctl_reply rep;
	struct rt_client c;
	struct rt_run r;

	(void)state;
	start(&r, "stopping",
	      "[instance]\nworkers = 1\nplacement = none\nstop_timeout = 300ms\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n");
	rt_wait_ready(&r);
	rt_client_open(&c, r.inst);
	assert_int_equal(kill(rt_slot_pid(c.seg, 1), SIGSTOP), 0);
	assert_int_equal(kill(r.pid, SIGTERM), 0);
	WAIT_FOR(c.seg, atomic_load(&shm_hdr(c.seg)->state) == SHM_INST_STOPPING);
	assert_int_equal(ctl_spawn(&c, "echo", "late", IPC_CTL_ANY, 0, &rep), -ESHUTDOWN);
	rt_client_close(&c);
	/* the held worker is killed at its stop deadline */
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * A requester SIGKILLed right after sending: the supervisor (held with SIGSTOP meanwhile,
 * so the order is certain) drops the request unserved, survives, and no slot is left over.
 */
static void test_control_requester_killed_after_send(void **state)
{
	struct ipc_ctl_reply rep;
	struct shm_seg *seg;
	struct rt_client c;
	struct rt_run r;
	uint32_t before, cslot = 0;
	shoal_handle_t found;
	int pfd[2], st;
	pid_t pid;

	(void)state;
	start(&r, "reqkill", two_workers);
	rt_wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, NULL, 0), 0);
	before = agents_in_use(seg);
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(kill(r.pid, SIGSTOP), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ipc_ctl_req q = spawn_req("echo", "orphan", IPC_CTL_ANY, 0);
		struct rt_client k;
		uint64_t ref;

		rt_client_open(&k, r.inst);
		(void)!write(pfd[1], &k.seg->self, sizeof(k.seg->self));
		if (ipc_call_async(k.seg, k.inbox, atomic_load(&shm_hdr(k.seg)->ctl_inbox),
				   IPC_CTL_MSG, &q, sizeof(q), &ref))
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &cslot, sizeof(cslot)), (ssize_t)sizeof(cslot));
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_int_equal(kill(r.pid, SIGCONT), 0);
	/* the request is dropped and the dead client repaired (its inbox freed) */
	WAIT_FOR(seg, atomic_load(&shm_hdr(seg)->ctl_dropped) == 1 &&
			      atomic_load(&shm_proc_at(seg, cslot)->state) == SHM_PROC_EXITED);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "orphan", 6, &found, NULL), -ENOENT);
	assert_int_equal(agents_in_use(seg), before);
	/* the supervisor carries on serving */
	rt_client_open(&c, r.inst);
	assert_int_equal(ctl_spawn(&c, "echo", "after", IPC_CTL_ANY, 0, &rep), 0);
	WAIT_FOR(c.seg, agent_is(c.seg, rep.handle, SHM_AGENT_RUNNING));
	rt_expect_echo(&c, rep.handle);
	rt_client_close(&c);
	shm_seg_detach(seg);
	rt_stop(&r);
}

/* A spawn onto a worker that is being restarted (in its backoff): it runs on the replacement. */
static void test_control_spawn_during_restart(void **state)
{
	struct ipc_ctl_reply rep;
	shoal_handle_t h, e0;
	struct rt_client c;
	struct rt_run r;
	pid_t old;

	(void)state;
	start(&r, "restart",
	      "[instance]\nworkers = 2\nplacement = none\n"
	      "[restart]\nbackoff_first = true\nbackoff_initial = 500ms\nbackoff_max = 500ms\n"
	      "[segment]\nmax_agents = 32\nregistry_capacity = 128\nmax_procs = 8\n"
	      "[agent e]\ntype = echo\nname = e0\nworker = 0\n");
	rt_wait_ready(&r);
	rt_client_open(&c, r.inst);
	old = rt_slot_pid(c.seg, 1);
	rt_kill_and_wait(old);
	/* repaired, waiting out its backoff */
	WAIT_FOR(c.seg, atomic_load(&shm_proc_at(c.seg, 1)->state) == SHM_PROC_EXITED &&
				atomic_load(&shm_proc_at(c.seg, 1)->restarts) == 1);
	assert_int_equal(ctl_spawn(&c, "echo", "onrestart", IPC_CTL_WORKER, 0, &rep), 0);
	assert_int_equal(rep.windex, 0);
	h = rep.handle;
	assert_true(atomic_load(&shm_proc_at(c.seg, 1)->state) != SHM_PROC_RUNNING);
	assert_true(agent_is(c.seg, h, SHM_AGENT_STARTING));
	/* a stop of an agent of that worker (DOWN): no worker to run terminate, so the
	 * supervisor finishes it itself, at once */
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "e0", 2, &e0, NULL), 0);
	assert_true(agent_is(c.seg, e0, SHM_AGENT_DOWN));
	assert_int_equal(ctl_stop(&c, "e0", 0, &rep), 0);
	assert_null(wrk_agent_get(c.seg, e0));
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "e0", 2, &e0, NULL), -ENOENT);
	assert_true(atomic_load(&shm_proc_at(c.seg, 1)->state) != SHM_PROC_RUNNING);
	WAIT_FOR(c.seg, agent_is(c.seg, h, SHM_AGENT_RUNNING));
	assert_true(rt_slot_pid(c.seg, 1) != old);
	rt_expect_echo(&c, h);
	rt_client_close(&c);
	rt_stop(&r);
}

/* Wait (a spin with a deadline: a send announces nothing) until the inbox holds n messages. */
static void wait_queued(struct shm_seg *seg, uint32_t slot, uint32_t n)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;

	while (ipc_mbox_depth(seg, slot) < n) {
		if (shm_now_ns() > dl)
			fail_msg("no %u messages queued for agent slot %u", n, slot);
		sched_yield();
	}
}

/*
 * A supervisor that does not answer (stopped): the call times out, saying so. One killed
 * with a request in its inbox: the waiting client says it died.
 */
static void test_control_supervisor_silent_or_dead(void **state)
{
	struct ipc_ctl_req q = spawn_req("echo", "x", IPC_CTL_ANY, 0);
	struct ipc_ctl_reply rep;
	struct rt_client c;
	struct rt_run r;
	char out[8192];
	pid_t tool;
	int fd;
	uint32_t ctl_slot, queued;

	(void)state;
	start(&r, "silent", two_workers);
	rt_wait_ready(&r);
	rt_client_open(&c, r.inst);
	assert_int_equal(kill(r.pid, SIGSTOP), 0);
	assert_int_equal(ipc_ctl_call(c.seg, c.w, c.inbox, &q, &rep, 200), -ETIMEDOUT);
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out),
			    (const char *[]){"spawn", "echo", "y", "--timeout", "200", NULL}),
		3);
	if (!strstr(out, "did not answer within 200 ms"))
		fail_msg("shoal spawn said: %s", out);
	/* a spawn waiting for its answer when the supervisor is killed */
	ctl_slot = shoal_handle_slot(atomic_load(&shm_hdr(c.seg)->ctl_inbox));
	queued = ipc_mbox_depth(c.seg, ctl_slot); /* the two above, never served */
	tool = rt_tool_start(
		r.inst, (const char *[]){"spawn", "echo", "z", "--timeout", "1000", NULL}, &fd);
	wait_queued(c.seg, ctl_slot, queued + 1);
	assert_int_equal(kill(r.pid, SIGKILL), 0);
	assert_int_equal(rt_wait_exit(&r), -SIGKILL);
	assert_int_equal(rt_tool_finish(tool, fd, out, sizeof(out)), 3);
	if (!strstr(out, "the supervisor died before answering"))
		fail_msg("shoal spawn said: %s", out);
	/* and a new request is refused at once */
	assert_int_equal(ipc_ctl_call(c.seg, c.w, c.inbox, &q, &rep, TIMEOUT_MS), -EOWNERDEAD);
	rt_client_close(&c);
	/* the post-mortem shows the control inbox as the supervisor left it */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"inspect", NULL}),
			 0);
	if (!strstr(out, "supervisor-dead") || !strstr(out, "control        inbox agent slot"))
		fail_msg("inspect said: %s", out);
	rt_cleanup(&r);
}

/*
 * A supervisor killed after it did a spawn and before it answered (a test hook kills it
 * there): the waiting command says it died; the post-mortem names the request in flight and
 * the agent slot, whose spawn was complete (handed to its worker).
 */
static void test_control_supervisor_killed_before_answer(void **state)
{
	struct shm_seg *seg;
	struct rt_run r;
	char out[8192];
	shoal_handle_t h;
	pid_t tool;
	int fd;

	(void)state;
	need_test_hooks();
	setenv("SHOAL_TEST_CTL_DIE", "1", 1);
	start(&r, "die", two_workers);
	unsetenv("SHOAL_TEST_CTL_DIE");
	rt_wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, NULL, 0), 0);
	tool = rt_tool_start(
		r.inst,
		(const char *[]){"spawn", "echo", "z", "--worker", "1", "--timeout", "60000", NULL},
		&fd);
	assert_int_equal(rt_wait_exit(&r), -SIGKILL);
	assert_int_equal(rt_tool_finish(tool, fd, out, sizeof(out)), 3);
	if (!strstr(out, "the supervisor died before answering"))
		fail_msg("shoal spawn said: %s", out);
	/* the spawn itself was done: the name is there, the slot handed to worker 1 */
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "z", 1, &h, NULL), 0);
	assert_int_equal(atomic_load(&wrk_agent_get(seg, h)->worker), 1 + 2);
	assert_int_equal(atomic_load(&wrk_agent_get(seg, h)->ctl), UINT64_MAX);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"inspect", NULL}),
			 0);
	if (!strstr(out, "the supervisor died serving a spawn request") ||
	    !strstr(out, "maybe half done"))
		fail_msg("inspect said: %s", out);
	shm_seg_detach(seg);
	rt_cleanup(&r);
}

/* An instance whose e0 has a `shoal call` queued that its worker, held stopped, cannot answer. */
struct held_call {
	struct rt_run r;
	struct shm_seg *seg;
	pid_t tool, wpid;
	int fd;
};

static void held_call_start(struct held_call *hc, const char *name)
{
	shoal_handle_t h;

	start(&hc->r, name, two_workers);
	rt_wait_ready(&hc->r);
	assert_int_equal(shm_seg_attach(hc->r.inst, SHM_ATTACH_RO, 1000, &hc->seg, NULL, 0), 0);
	assert_int_equal(shm_reg_lookup(hc->seg, SHM_NS_DEFAULT, "e0", 2, &h, NULL), 0);
	hc->wpid = rt_slot_pid(hc->seg, 1);
	assert_int_equal(kill(hc->wpid, SIGSTOP), 0);
	rt_wait_pid_state(hc->wpid, 'T');
	hc->tool = rt_tool_start(hc->r.inst,
				 (const char *[]){"call", "e0", "ping", "--timeout", "60000", NULL},
				 &hc->fd);
	wait_queued(hc->seg, shoal_handle_slot(h), 1);
}

/*
 * A call queued to an agent that is then removed (stopped while its worker is held, then
 * the worker killed: repair finishes the stop) fails at once, not at its 60 s timeout: the
 * remover answers every queued call with -ENOENT.
 */
static void test_control_call_fails_when_callee_removed(void **state)
{
	struct held_call hc;
	char out[8192];

	(void)state;
	held_call_start(&hc, "gone");
	assert_int_equal(
		rt_run_tool(hc.r.inst, out, sizeof(out), (const char *[]){"stop", "e0", NULL}), 0);
	assert_int_equal(kill(hc.wpid, SIGKILL), 0);
	assert_int_equal(rt_tool_finish(hc.tool, hc.fd, out, sizeof(out)), 2);
	if (!strstr(out, "agent 'e0' is gone"))
		fail_msg("shoal call said: %s", out);
	shm_seg_detach(hc.seg);
	kill(hc.r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&hc.r), 0);
	rt_cleanup(&hc.r);
}

/*
 * A call waiting on an agent whose worker cannot answer fails at once when the supervisor
 * is SIGKILLed (the worker is held stopped, so nothing marks the segment: the client's own
 * watch on the supervisor tells), not at its 60 s timeout.
 */
static void test_control_call_fails_when_supervisor_dies(void **state)
{
	struct held_call hc;
	char out[8192];

	(void)state;
	held_call_start(&hc, "supdie");
	kill(hc.r.pid, SIGKILL);
	assert_int_equal(rt_wait_exit(&hc.r), -SIGKILL);
	assert_int_equal(rt_tool_finish(hc.tool, hc.fd, out, sizeof(out)), 3);
	if (!strstr(out, "the supervisor died"))
		fail_msg("shoal call said: %s", out);
	kill(hc.wpid, SIGKILL);
	shm_seg_detach(hc.seg);
	rt_cleanup(&hc.r);
}

/*
 * Clients' inboxes have their own budget in the agent table ([segment] client_inboxes,
 * default a quarter of max_agents): clients that fill it are refused (-ENOSPC) while agents
 * can still be spawned; before, enough clients took every agent slot.
 */
static void test_control_client_inbox_budget(void **state)
{
	struct rt_client cl[16];
	struct rt_run r;
	char out[8192];
	int opened = 0, rc = 0;

	(void)state;
	start(&r, "inboxes",
	      "[instance]\nworkers = 2\nplacement = none\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 32\n"
	      "[agent e]\ntype = echo\nname = e0\nworker = 0\n");
	rt_wait_ready(&r);
	for (; opened < 16; opened++) {
		char err[256];

		assert_int_equal(shm_seg_attach(r.inst, 0, 1000, &cl[opened].seg, err, sizeof(err)),
				 0);
		assert_int_equal(shm_proc_claim(cl[opened].seg, SHM_ROLE_CLIENT, true), 0);
		shm_proc_set_state(cl[opened].seg, SHM_PROC_RUNNING);
		rc = ipc_inbox_open(cl[opened].seg, &cl[opened].inbox);
		if (rc) {
			shm_seg_detach(cl[opened].seg);
			break;
		}
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(opened, 4); /* 16 / 4 */
	/* a tool that needs an inbox says why it cannot have one */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"spawn", "echo", "late", NULL}),
			 3);
	if (!strstr(out, "no room for another client inbox (4 in use: [segment] client_inboxes)"))
		fail_msg("spawn said: %s", out);
	/* agents keep their room: 16 slots, e0 and the control inbox, 4 inboxes: 10 more */
	{
		uint32_t got[16], n = 0;

		while (n < 16 && shm_agent_alloc(cl[0].seg, 0, &got[n]) == 0)
			n++;
		assert_int_equal(n, 10);
		while (n)
			shm_agent_free(cl[0].seg, got[--n]);
	}
	for (int i = 0; i < opened; i++) {
		ipc_inbox_close(cl[i].seg, cl[i].inbox);
		shm_seg_detach(cl[i].seg);
	}
	rt_stop(&r);
}

/*
 * A client table full of dead clients is reclaimed at once for a new client: the claimer
 * marks them, rings the supervisor, and waits for its repair, instead of failing until
 * the supervisor's next periodic scan happened to run.
 */
static void test_control_dead_clients_reclaimed_at_once(void **state)
{
	struct rt_run r;
	char out[8192];
	pid_t kids[2];
	int pfd[2];

	(void)state;
	/* the supervisor, 2 workers, 2 client slots */
	start(&r, "reclaim",
	      "[instance]\nworkers = 2\nplacement = none\n"
	      "[segment]\nmax_agents = 32\nregistry_capacity = 128\nmax_procs = 5\n"
	      "[agent e]\ntype = echo\nname = e0\nworker = 0\n");
	rt_wait_ready(&r);
	assert_int_equal(pipe(pfd), 0);
	for (int i = 0; i < 2; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			struct shm_seg *cs;

			if (shm_seg_attach(r.inst, 0, 1000, &cs, NULL, 0) ||
			    shm_proc_claim(cs, SHM_ROLE_CLIENT, false))
				_exit(1);
			shm_proc_set_state(cs, SHM_PROC_RUNNING);
			(void)!write(pfd[1], "x", 1);
			pause();
			_exit(0);
		}
	}
	for (int i = 0; i < 2; i++) {
		char b;

		assert_true(rt_fd_wait(pfd[0], TIMEOUT_MS));
		assert_int_equal(read(pfd[0], &b, 1), 1);
	}
	close(pfd[0]);
	close(pfd[1]);
	/* both die; a tool right after them finds the table full of dead clients */
	for (int i = 0; i < 2; i++) {
		rt_kill_and_wait(kids[i]);
		waitpid(kids[i], NULL, 0);
	}
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"send", "e0", "x", NULL}),
		0);
	rt_stop(&r);
}

/* The commands: spawn (hints, --wait), stop (--wait), their errors, and inspect's counter. */
static void test_control_commands(void **state)
{
	struct shm_seg *seg;
	struct rt_run r;
	char out[8192];
	shoal_handle_t h;

	(void)state;
	start(&r, "cli", two_workers);
	rt_wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, NULL, 0), 0);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"spawn", "echo", "e3", "--worker", "1",
						      "--wait", NULL}),
			 0);
	if (!strstr(out, "spawned echo on worker 1") || !strstr(out, "e3: running"))
		fail_msg("shoal spawn said: %s", out);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "e3", 2, &h, NULL), 0);
	assert_int_equal(atomic_load(&wrk_agent_get(seg, h)->state), SHM_AGENT_RUNNING);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"call", "e3", "hello", NULL}),
			 0);
	assert_string_equal(out, "hello\n");
	if (atomic_load_explicit(&shm_proc_at(seg, 1)->node, memory_order_relaxed) >= 0) {
		char node[16];

		snprintf(node, sizeof(node), "%d",
			 atomic_load_explicit(&shm_proc_at(seg, 1)->node, memory_order_relaxed));
		assert_int_equal(
			rt_run_tool(r.inst, out, sizeof(out),
				    (const char *[]){"spawn", "echo", "e4", "--node", node, NULL}),
			0);
		assert_int_equal(
			rt_run_tool(r.inst, out, sizeof(out),
				    (const char *[]){"spawn", "echo", "e5", "--node", "63", NULL}),
			2);
		if (!strstr(out, "no worker on NUMA node 63"))
			fail_msg("shoal spawn said: %s", out);
	}
	/* errors: one sentence each, the documented exit codes */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"spawn", "nosuchtype", "n", NULL}),
			 2);
	assert_non_null(strstr(out, "unknown agent type"));
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"spawn", "echo", "e3", NULL}),
			 2);
	assert_non_null(strstr(out, "is taken"));
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out),
			    (const char *[]){"spawn", "echo", "e6", "--worker", "5", NULL}),
		2);
	assert_non_null(strstr(out, "has no worker 5"));
	/* --wait returns once the stop is done: the name is free at once */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"stop", "e3", "--wait", NULL}),
			 0);
	assert_non_null(strstr(out, "e3: stopped"));
	assert_null(wrk_agent_get(seg, h));
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "e3", 2, &h, NULL), -ENOENT);
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"stop", "e3", NULL}), 2);
	assert_non_null(strstr(out, "no agent named 'e3'"));
	/* a stop its worker cannot run (stopped): --wait gives up at its timeout, exit 1 */
	assert_int_equal(kill(rt_slot_pid(seg, 1), SIGSTOP), 0);
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out),
			    (const char *[]){"stop", "e0", "--wait", "--timeout", "200", NULL}),
		1);
	assert_non_null(strstr(out, "did not stop within 200 ms"));
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"stop", "e0", NULL}), 0);
	assert_non_null(strstr(out, "e0: already stopping"));
	assert_int_equal(kill(rt_slot_pid(seg, 1), SIGCONT), 0);
	/* inspect shows what the control inbox served */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"inspect", NULL}),
			 0);
	if (!strstr(out, "control        inbox agent slot") || !strstr(out, "requests served"))
		fail_msg("inspect said: %s", out);
	shm_seg_detach(seg);
	rt_stop(&r);
	/* the instance is gone: every client command says so and fails */
	{
		static const char *const cmds[][4] = {{"send", "e3", "x", NULL},
						      {"call", "e3", "x", NULL},
						      {"spawn", "echo", "e5", NULL},
						      {"stop", "e3", NULL, NULL}};
		char want[128];

		snprintf(want, sizeof(want), "instance '%s' is not running", r.inst);
		for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
			assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), cmds[k]), 2);
			if (!strstr(out, want))
				fail_msg("shoal %s said: %s", cmds[k][0], out);
		}
	}
}

/*
 * shoal shutdown stops a whole instance in order (found from its segment, no pid given);
 * clean on the live instance points to it; --wait gives up at its timeout while the
 * supervisor cannot act; a second shutdown finds no instance.
 */
static void test_control_shutdown_command(void **state)
{
	struct rt_run r;
	char out[4096], want[160];

	(void)state;
	start(&r, "down", two_workers);
	rt_wait_ready(&r);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"clean", NULL}), 2);
	snprintf(want, sizeof(want), "'shoal shutdown --instance %s --wait'", r.inst);
	if (!strstr(out, want))
		fail_msg("shoal clean said: %s", out);
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"shutdown", "--wait", NULL}),
		0);
	snprintf(want, sizeof(want), "instance '%s': stopped\n", r.inst);
	if (!strstr(out, want))
		fail_msg("shoal shutdown said: %s", out);
	assert_int_equal(rt_wait_exit(&r), 0);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"shutdown", NULL}),
			 2);
	rt_cleanup(&r);
	/* a supervisor that cannot act: the signal waits, --wait gives up, exit 1; the stop
	 * happens (in order: exit 0) once it runs again */
	start(&r, "down2", two_workers);
	rt_wait_ready(&r);
	assert_int_equal(kill(r.pid, SIGSTOP), 0);
	rt_wait_pid_state(r.pid, 'T');
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out),
			    (const char *[]){"shutdown", "--wait", "--timeout", "200", NULL}),
		1);
	if (!strstr(out, "did not stop within 200 ms"))
		fail_msg("shoal shutdown said: %s", out);
	assert_int_equal(kill(r.pid, SIGCONT), 0);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/*
 * shoal call's answers: a reply prints as text, an empty one says so, an agent's error reply is
 * a failed check (exit 1) naming the error, not a system failure (3).
 */
static void test_control_call_answers(void **state)
{
	static const char *cfg = "[instance]\nworkers = 1\nplacement = none\n"
				 "[segment]\nmax_agents = 16\nregistry_capacity = 64\n"
				 "max_procs = 8\n"
				 "[agent e]\ntype = echo\nname = e0\n"
				 "[agent c]\ntype = crasher\nname = c0\n";
	struct rt_run r;
	char out[4096];

	(void)state;
	start(&r, "answers", cfg);
	rt_wait_ready(&r);
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"call", "e0", "hi", NULL}),
		0);
	assert_string_equal(out, "hi\n");
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"call", "e0", "", NULL}), 0);
	assert_string_equal(out, "(empty reply)\n");
	/* crasher's handle_call returns -EIO for "fail" */
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"call", "c0", "fail", NULL}),
		1);
	if (!strstr(out, "shoal call: 'c0' answered with an error: Input/output error"))
		fail_msg("shoal call said: %s", out);
	rt_stop(&r);
}

/* Whether the exit log holds a record of pid killed by sig. */
static bool exit_log_has(struct shm_seg *seg, pid_t pid, int sig)
{
	struct shm_exit_rec r[SHM_EXIT_LOG];
	uint32_t n = shm_exit_log_read(seg, r, SHM_EXIT_LOG, NULL);

	for (uint32_t i = 0; i < n; i++)
		if (r[i].pid == (uint32_t)pid && r[i].signal == sig && r[i].role == SHM_ROLE_WORKER)
			return true;
	return false;
}

/*
 * The exit log keeps crashes, not client churn: more client commands than the log holds,
 * each detaching in order, leave a worker's crash in it (and record none of themselves).
 */
static void test_control_exit_log_survives_client_churn(void **state)
{
	struct shm_seg *seg;
	struct rt_run r;
	char out[1024];
	uint64_t before, after;
	pid_t w;

	(void)state;
	start(&r, "churn", two_workers);
	rt_wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, NULL, 0), 0);
	w = rt_slot_pid(seg, 1);
	rt_kill_and_wait(w);
	WAIT_FOR(seg, exit_log_has(seg, w, SIGKILL));
	/* and its restart: the worker's slot running again, its agent answering */
	WAIT_FOR(seg, atomic_load(&shm_proc_at(seg, 1)->state) == SHM_PROC_RUNNING);
	shm_exit_log_read(seg, (struct shm_exit_rec[1]){0}, 1, &before);
	for (unsigned i = 0; i < SHM_EXIT_LOG + 4; i++)
		assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
					     (const char *[]){"send", "e0", "x", NULL}),
				 0);
	shm_exit_log_read(seg, (struct shm_exit_rec[1]){0}, 1, &after);
	assert_int_equal(after, before);
	assert_true(exit_log_has(seg, w, SIGKILL));
	shm_seg_detach(seg);
	rt_stop(&r);
}

/*
 * shoal shutdown signals only the supervisor the segment names: a header whose pid is now
 * another process (its start time differs: here this test process, which a SIGTERM would
 * end) or no process at all is refused as stale, exit 2, and nothing is signalled.
 */
static void test_control_shutdown_checks_supervisor(void **state)
{
	struct shm_seg *seg;
	struct shm_cfg cfg;
	struct shm_hdr *h;
	char inst[48], out[2048];
	pid_t gone;

	(void)state;
	snprintf(inst, sizeof(inst), "t-ctl-stale-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_procs = 8;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	seg = ts_seg_make(inst, &cfg, SHM_ROLE_SUPERVISOR);
	h = shm_hdr(seg);
	atomic_store(&h->state, SHM_INST_RUNNING);
	/* our pid, another process's start time: a reused pid */
	atomic_store(&h->sup_pid, (uint32_t)getpid());
	atomic_store(&h->sup_start, shm_pid_start_time(getpid()) + 1);
	assert_int_equal(rt_run_tool(inst, out, sizeof(out), (const char *[]){"shutdown", NULL}),
			 2);
	if (!strstr(out, "is gone (a stale instance)") || !strstr(out, "shoal clean"))
		fail_msg("shoal shutdown said: %s", out);
	/* a pid no process has now */
	gone = fork();
	assert_true(gone >= 0);
	if (gone == 0)
		_exit(0);
	assert_int_equal(waitpid(gone, NULL, 0), gone);
	atomic_store(&h->sup_pid, (uint32_t)gone);
	assert_int_equal(rt_run_tool(inst, out, sizeof(out), (const char *[]){"shutdown", NULL}),
			 2);
	if (!strstr(out, "is gone (a stale instance)"))
		fail_msg("shoal shutdown said: %s", out);
	/* a stopped, kept instance: nothing to do */
	atomic_store(&h->state, SHM_INST_STOPPED);
	assert_int_equal(rt_run_tool(inst, out, sizeof(out), (const char *[]){"shutdown", NULL}),
			 0);
	assert_non_null(strstr(out, "already stopped"));
	ts_seg_drop(seg, inst);
}

/* Read a started tool's output until `want` appears (or fail); the bytes read so far in out. */
static void tool_read_until(int fd, char *out, size_t cap, const char *want)
{
	size_t got = 0;

	out[0] = 0;
	while (!strstr(out, want)) {
		ssize_t k;

		if (!rt_fd_wait(fd, TIMEOUT_MS))
			fail_msg("waited for '%s', got: %s", want, out);
		k = read(fd, out + got, cap - 1 - got);
		if (k <= 0)
			fail_msg("the tool ended before '%s': %s", want, out);
		got += (size_t)k;
		out[got] = 0;
	}
}

/* shoal monitor: DOWN then UP across a worker crash, then DOWN (stopped) on a stop. */
static void test_control_monitor_command(void **state)
{
	struct shm_seg *seg;
	struct rt_run r;
	char out[4096], err[256];
	pid_t tool;
	int fd;

	(void)state;
	start(&r, "mon", two_workers);
	rt_wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	tool = rt_tool_start(
		r.inst,
		(const char *[]){"monitor", "e0", "--count", "3", "--timeout", "10000", NULL}, &fd);
	tool_read_until(fd, out, sizeof(out), "watching e0");
	/* inspect lists the monitor (its whole output: more than out holds) */
	static char ins[1 << 15];

	{
		assert_int_equal(
			rt_run_tool(r.inst, ins, sizeof(ins), (const char *[]){"inspect", NULL}),
			0);
		if (!strstr(ins, "monitors       1 of") || !strstr(ins, "watches e0"))
			fail_msg("inspect said: %s", ins);
	}
	rt_kill_and_wait(rt_slot_pid(seg, 1));
	tool_read_until(fd, out, sizeof(out), "e0: up");
	assert_non_null(strstr(out, "e0: down (crash"));
	assert_true(strstr(out, "e0: down") < strstr(out, "e0: up"));
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"stop", "e0", NULL}), 0);
	assert_int_equal(rt_tool_finish(tool, fd, out, sizeof(out)), 0);
	if (!strstr(out, "e0: down (stopped)"))
		fail_msg("shoal monitor said: %s", out);
	/* its monitors went with its inbox */
	assert_int_equal(rt_run_tool(r.inst, ins, sizeof(ins), (const char *[]){"inspect", NULL}),
			 0);
	if (!strstr(ins, "monitors       0 of"))
		fail_msg("inspect said: %s", ins);
	/* errors: no such name, no name at all */
	assert_int_equal(
		rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"monitor", "nosuch", NULL}),
		2);
	assert_non_null(strstr(out, "'nosuch': no agent of that name"));
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), (const char *[]){"monitor", NULL}),
			 2);
	/* --count 0 would wait for nothing forever: refused (a timeout fails rt_run_tool) */
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out),
				     (const char *[]){"monitor", "e0", "--count", "0", NULL}),
			 2);
	assert_non_null(strstr(out, "--count 0"));
	shm_seg_detach(seg);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
}

/* The spawner agent's account: answers received, last verdict, last handle's slot, matched. */
struct spawner_view {
	unsigned answers, slot, matched;
	int rc;
};

static struct spawner_view spawner_ask(struct rt_client *c, shoal_handle_t sp)
{
	struct spawner_view v = {0};
	char out[64] = "";
	int n = ipc_call(c->seg, c->w, c->inbox, sp, 1, "?", 1, out, sizeof(out) - 1, TIMEOUT_MS);

	assert_true(n > 0);
	out[n] = 0;
	assert_int_equal(sscanf(out, "%u %d %u %u", &v.answers, &v.rc, &v.slot, &v.matched), 4);
	return v;
}

/* Until the spawner has had `answers` answers (each ask is a call: an event, not a nap). */
static struct spawner_view spawner_wait(struct rt_client *c, shoal_handle_t sp, unsigned answers)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
	struct spawner_view v;

	while ((v = spawner_ask(c, sp)).answers < answers) {
		if (shm_now_ns() > dl)
			fail_msg("the spawner has %u answers, not %u", v.answers, answers);
		sched_yield();
	}
	return v;
}

/*
 * An agent spawns and stops another through the supervisor (shoal_spawn_async(),
 * shoal_stop_async()): the answers come back to it as replies with its references.
 */
static void test_control_agent_spawns_and_stops(void **state)
{
	const char *lib = getenv("SHOAL_TEST_PLUGIN");
	struct spawner_view v;
	struct rt_client c;
	struct rt_run r;
	shoal_handle_t sp, e7;
	char cfg[1024];

	(void)state;
	if (!lib)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	snprintf(cfg, sizeof(cfg),
		 "[instance]\nworkers = 2\nplacement = none\n[types]\nload = %s\n"
		 "[segment]\nmax_agents = 32\nregistry_capacity = 128\nmax_procs = 8\n"
		 "[agent s]\ntype = spawner\nname = sp\nworker = 0\n"
		 "[agent e]\ntype = echo\nname = e0\nworker = 1\n",
		 lib);
	start(&r, "agentctl", cfg);
	rt_wait_ready(&r);
	rt_client_open(&c, r.inst);
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "sp", 2, &sp, NULL), 0);
	/* spawn: the new agent runs, answers calls, and the spawner got its handle */
	assert_int_equal(ipc_send(c.seg, sp, c.inbox, 1, 0, 0, "spawn e7", 8, TIMEOUT_MS), 0);
	WAIT_FOR(c.seg, shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "e7", 2, &e7, NULL) == 0 &&
				atomic_load(&wrk_agent_get(c.seg, e7)->state) == SHM_AGENT_RUNNING);
	rt_expect_echo(&c, e7);
	v = spawner_wait(&c, sp, 1);
	assert_int_equal(v.rc, 0);
	assert_int_equal(v.slot, shoal_handle_slot(e7));
	assert_int_equal(v.matched, 1);
	/* stop it */
	assert_int_equal(ipc_send(c.seg, sp, c.inbox, 1, 0, 0, "stop  e7", 8, TIMEOUT_MS), 0);
	WAIT_FOR(c.seg, shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "e7", 2, &e7, NULL) == -ENOENT);
	v = spawner_wait(&c, sp, 2);
	assert_int_equal(v.rc, 0);
	assert_int_equal(v.matched, 2);
	/* a refusal comes back the same way: the name is taken */
	assert_int_equal(ipc_send(c.seg, sp, c.inbox, 1, 0, 0, "spawn e0", 8, TIMEOUT_MS), 0);
	v = spawner_wait(&c, sp, 3);
	assert_int_equal(v.rc, -EEXIST);
	assert_int_equal(v.matched, 3);
	rt_client_close(&c);
	rt_stop(&r);
}

static struct shm_seg *late_seg;

/* A ring that comes late (its request already served) at the start of the wait. */
static void late_ring(int point)
{
	if (point == IPC_HOOK_PARKED)
		ipc_ring(late_seg, late_seg->self);
}

/*
 * The supervisor's control wait (sup_ctl_on_wake()) is a park like a worker's: a ring that
 * takes its wake right after it marks itself parked must end the FUTEX_WAIT it then arms,
 * not leave it asleep on the bumped doorbell with parked clear (later requests would wait
 * for the supervisor's tick). Runs the control inbox in this process, without `shoal run`.
 */
static void test_control_late_ring_ends_wait(void **state)
{
	struct shm_seg *seg = NULL;
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = {.tv_sec = 1};
	struct ipc_waiter *probe;
	struct io_uring ring;
	struct sup_ctl *ctl;
	struct shm_cfg cfg;
	char inst[64], err[256];
	int r;

	(void)state;
	snprintf(inst, sizeof(inst), "t-ctl-late-%d", (int)getpid());
	shm_seg_unlink(inst);
	shm_cfg_default(&cfg);
	cfg.max_agents = 32;
	cfg.reg_capacity = 128;
	cfg.max_procs = 8;
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	shm_seg_publish(seg);
	assert_int_equal(shm_proc_claim(seg, SHM_ROLE_SUPERVISOR, false), 0);
	if (ipc_waiter_prepare(seg, IPC_WAKE_FUTEX, &probe) == -ENOSYS) {
		shm_seg_detach(seg);
		shm_seg_unlink(inst);
		skip_because("the io_uring futex path needs Linux 6.7+");
	}
	ipc_waiter_destroy(probe);
	assert_int_equal(sup_ctl_open(seg, NULL, 0, &ctl), 0);
	assert_int_equal(io_uring_queue_init(8, &ring, 0), 0);
	late_seg = seg;
	ipc_wake_test_hook = late_ring;
	sup_ctl_on_wake(ctl, &ring, 42, 0);
	ipc_wake_test_hook = NULL;
	/* the late ring took the wait's wake */
	assert_int_equal(atomic_load(&shm_proc_at(seg, seg->self)->wakes), 1);
	assert_true(io_uring_submit(&ring) >= 0);
	r = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
	if (r)
		fail_msg("the control wait whose wake a late ring took still slept after 1 s (%s)",
			 strerror(-r));
	assert_int_equal(cqe->user_data, 42);
	io_uring_cqe_seen(&ring, cqe);
	sup_ctl_close(ctl);
	io_uring_queue_exit(&ring);
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
}

/*
 * The supervisor's control wait parks like a worker: where the kernel has membarrier's
 * GLOBAL_EXPEDITED, producers that registered skip their fence, so each parked store (the
 * wait's and the tick's) must be followed by the parker's barrier (the asymmetric pair,
 * ipc/wake.c), or a request sent meanwhile may not ring it.
 */
static void test_control_wait_issues_park_barrier(void **state)
{
	struct shm_seg *seg = NULL;
	struct ipc_waiter *probe;
	struct io_uring ring;
	struct sup_ctl *ctl;
	struct shm_cfg cfg;
	char inst[64], err[256];
	uint64_t before;

	(void)state;
	if (!ipc_park_wants_barrier())
		skip_because("the kernel lacks membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)");
	snprintf(inst, sizeof(inst), "t-ctl-mb-%d", (int)getpid());
	shm_seg_unlink(inst);
	shm_cfg_default(&cfg);
	cfg.max_agents = 32;
	cfg.reg_capacity = 128;
	cfg.max_procs = 8;
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	shm_seg_publish(seg);
	assert_int_equal(shm_proc_claim(seg, SHM_ROLE_SUPERVISOR, false), 0);
	if (ipc_waiter_prepare(seg, IPC_WAKE_FUTEX, &probe) == -ENOSYS) {
		shm_seg_detach(seg);
		shm_seg_unlink(inst);
		skip_because("the io_uring futex path needs Linux 6.7+");
	}
	ipc_waiter_destroy(probe);
	assert_int_equal(sup_ctl_open(seg, NULL, 0, &ctl), 0);
	assert_int_equal(io_uring_queue_init(8, &ring, 0), 0);
	before = atomic_load(&ipc_park_barriers);
	sup_ctl_on_wake(ctl, &ring, 42, 0);
	assert_int_equal(atomic_load(&ipc_park_barriers), before + 1);
	sup_ctl_tick(ctl);
	assert_int_equal(atomic_load(&ipc_park_barriers), before + 2);
	sup_ctl_close(ctl);
	io_uring_queue_exit(&ring);
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_late_ring_ends_wait),
		cmocka_unit_test(test_control_wait_issues_park_barrier),
		cmocka_unit_test_teardown(test_control_spawn_and_stop, rt_teardown),
		cmocka_unit_test_teardown(test_control_agent_spawns_and_stops, rt_teardown),
		cmocka_unit_test_teardown(test_control_refusals, rt_teardown),
		cmocka_unit_test_teardown(test_control_refused_while_stopping, rt_teardown),
		cmocka_unit_test_teardown(test_control_requester_killed_after_send, rt_teardown),
		cmocka_unit_test_teardown(test_control_spawn_during_restart, rt_teardown),
		cmocka_unit_test_teardown(test_control_supervisor_silent_or_dead, rt_teardown),
		cmocka_unit_test_teardown(test_control_supervisor_killed_before_answer,
					  rt_teardown),
		cmocka_unit_test_teardown(test_control_commands, rt_teardown),
		cmocka_unit_test_teardown(test_control_shutdown_command, rt_teardown),
		cmocka_unit_test(test_control_shutdown_checks_supervisor),
		cmocka_unit_test_teardown(test_control_call_answers, rt_teardown),
		cmocka_unit_test_teardown(test_control_exit_log_survives_client_churn, rt_teardown),
		cmocka_unit_test_teardown(test_control_monitor_command, rt_teardown),
		cmocka_unit_test_teardown(test_control_client_inbox_budget, rt_teardown),
		cmocka_unit_test_teardown(test_control_dead_clients_reclaimed_at_once, rt_teardown),
		cmocka_unit_test_teardown(test_control_call_fails_when_callee_removed, rt_teardown),
		cmocka_unit_test_teardown(test_control_call_fails_when_supervisor_dies,
					  rt_teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
