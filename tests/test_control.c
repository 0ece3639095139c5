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

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/shm.h"
#include "supervisor/sup.h"
#include "workers/wrk.h"

#define TIMEOUT_MS 15000

struct run {
	pid_t pid;
	int pidfd;
	int ready_rd;
	char inst[40];
	char cfg[80];
	char err[80];
};

static struct run live; /* for the teardown of a failed test */
static bool have_live;

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static const char *shoal_bin(void)
{
	const char *b = getenv("SHOAL_BIN");

	if (!b)
		skip_because("SHOAL_BIN is not set (run through meson test)");
	return b;
}

/* Start `shoal run CFG --instance I --ready-fd N` with stderr to a file. */
static void start(struct run *r, const char *name, const char *config)
{
	const char *bin = shoal_bin();
	int pfd[2];
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(r->inst, sizeof(r->inst), "t-ctl-%s-%d", name, (int)getpid());
	snprintf(r->cfg, sizeof(r->cfg), "/tmp/shoal-%s.ini", r->inst);
	snprintf(r->err, sizeof(r->err), "/tmp/shoal-%s.err", r->inst);
	shm_seg_unlink(r->inst);
	f = fopen(r->cfg, "w");
	assert_non_null(f);
	fputs(config, f);
	fclose(f);
	assert_int_equal(pipe(pfd), 0);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		char fdarg[16];
		int e = open(r->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		close(pfd[0]);
		dup2(e, 2);
		e = open("/dev/null", O_WRONLY);
		dup2(e, 1);
		snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
		execl(bin, bin, "run", r->cfg, "--instance", r->inst, "--ready-fd", fdarg,
		      "--status-interval", "0", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	r->ready_rd = pfd[0];
	r->pidfd = pidfd_open_(r->pid);
	assert_true(r->pidfd >= 0);
	live = *r;
	have_live = true;
}

static bool fd_wait(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, timeout_ms) == 1;
}

static void wait_ready(struct run *r)
{
	char buf[8] = "";

	assert_true(fd_wait(r->ready_rd, TIMEOUT_MS));
	assert_int_equal(read(r->ready_rd, buf, sizeof(buf)), 6);
}

/* Wait for the supervisor to exit; returns its exit code (-signal if killed). */
static int wait_exit(struct run *r)
{
	int st;

	assert_true(fd_wait(r->pidfd, TIMEOUT_MS));
	assert_int_equal(waitpid(r->pid, &st, 0), r->pid);
	have_live = false;
	close(r->pidfd);
	close(r->ready_rd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static void cleanup(struct run *r)
{
	unlink(r->cfg);
	unlink(r->err);
	shm_seg_unlink(r->inst);
}

static void stop_run(struct run *r)
{
	kill(r->pid, SIGTERM);
	assert_int_equal(wait_exit(r), 0);
	cleanup(r);
}

static pid_t slot_pid(struct shm_seg *seg, uint32_t slot)
{
	return (pid_t)(atomic_load(&shm_proc_at(seg, slot)->own) >> 32);
}

/* A condition on state words, re-checked on every change the segment announces. */
#define WAIT_FOR(seg, cond)                                                                        \
	do {                                                                                       \
		uint64_t dl_ = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;                     \
		for (;;) {                                                                         \
			uint32_t c_ = shm_change_read(seg);                                        \
			if (cond)                                                                  \
				break;                                                             \
			if (shm_change_wait(seg, c_, dl_))                                         \
				fail_msg("timed out waiting for: %s", #cond);                      \
		}                                                                                  \
	} while (0)

/* A client with an inbox, as the client tools make one. */
struct client {
	struct shm_seg *seg;
	struct ipc_waiter *w;
	shoal_handle_t inbox;
};

static void client_open(struct client *c, const char *inst)
{
	char err[256];

	assert_int_equal(shm_seg_attach(inst, 0, 1000, &c->seg, err, sizeof(err)), 0);
	assert_int_equal(shm_proc_claim(c->seg, SHM_ROLE_CLIENT, true), 0);
	shm_proc_set_state(c->seg, SHM_PROC_RUNNING);
	assert_int_equal(ipc_waiter_create(c->seg, IPC_WAKE_AUTO, &c->w), 0);
	assert_int_equal(ipc_inbox_open(c->seg, &c->inbox), 0);
}

static void client_close(struct client *c)
{
	ipc_inbox_close(c->seg, c->inbox);
	ipc_waiter_destroy(c->w);
	shm_seg_detach(c->seg);
}

static struct sup_ctl_req spawn_req(const char *type, const char *name, uint32_t hint,
				    int32_t where)
{
	struct sup_ctl_req q = {.op = SUP_CTL_SPAWN, .hint = hint, .where = where};

	snprintf(q.type, sizeof(q.type), "%s", type);
	snprintf(q.name, sizeof(q.name), "%s", name);
	return q;
}

/* Ask for a spawn; returns the verdict, fills *rep. The call itself must be answered. */
static int ctl_spawn(struct client *c, const char *type, const char *name, uint32_t hint,
		     int32_t where, struct sup_ctl_reply *rep)
{
	struct sup_ctl_req q = spawn_req(type, name, hint, where);

	assert_int_equal(sup_ctl_call(c->seg, c->w, c->inbox, &q, rep, TIMEOUT_MS), 0);
	return rep->rc;
}

static int ctl_stop(struct client *c, const char *name, shoal_handle_t h, struct sup_ctl_reply *rep)
{
	struct sup_ctl_req q = {.op = SUP_CTL_STOP, .handle = h};

	snprintf(q.name, sizeof(q.name), "%s", name);
	assert_int_equal(sup_ctl_call(c->seg, c->w, c->inbox, &q, rep, TIMEOUT_MS), 0);
	return rep->rc;
}

static bool agent_is(struct shm_seg *seg, shoal_handle_t h, uint32_t st)
{
	struct shm_agent *a = wrk_agent_get(seg, h);

	return a && atomic_load(&a->state) == st;
}

/* An echo agent answers a call with its payload. */
static void expect_echo(struct client *c, shoal_handle_t h)
{
	char reply[16] = "";
	int n = ipc_call(c->seg, c->w, c->inbox, h, 1, "ping", 4, reply, sizeof(reply), TIMEOUT_MS);

	assert_int_equal(n, 4);
	assert_memory_equal(reply, "ping", 4);
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
	struct sup_ctl_reply rep;
	struct client c;
	struct run r;
	shoal_handle_t h, found;
	int32_t node;

	(void)state;
	start(&r, "basic", two_workers);
	wait_ready(&r);
	client_open(&c, r.inst);
	assert_true(atomic_load(&shm_hdr(c.seg)->ctl_inbox) != 0);
	/* worker hint */
	assert_int_equal(ctl_spawn(&c, "echo", "w1", SUP_CTL_WORKER, 1, &rep), 0);
	assert_int_equal(rep.windex, 1);
	h = rep.handle;
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "w1", 2, &found, NULL), 0);
	assert_true(found == h);
	assert_int_equal(atomic_load(&wrk_agent_get(c.seg, h)->worker), 1 + 2);
	WAIT_FOR(c.seg, agent_is(c.seg, h, SHM_AGENT_RUNNING));
	expect_echo(&c, h);
	/* node hint: the node the workers were placed on */
	node = shm_proc_at(c.seg, 1)->node;
	if (node >= 0) {
		assert_int_equal(ctl_spawn(&c, "echo", "n1", SUP_CTL_NODE, node, &rep), 0);
		assert_int_equal(rep.node, node);
		/* the least loaded: worker 0 hosts e0 already, worker 1 hosts w1: a tie, or 1 */
		assert_true(rep.windex == 0 || rep.windex == 1);
		WAIT_FOR(c.seg, agent_is(c.seg, rep.handle, SHM_AGENT_RUNNING));
		expect_echo(&c, rep.handle);
		assert_int_equal(ctl_spawn(&c, "echo", "n2", SUP_CTL_NODE, node + 1, &rep), -ENXIO);
	}
	/* no hint: the least loaded running worker (worker 0 has e0, worker 1 has w1 (+n1)) */
	assert_int_equal(ctl_spawn(&c, "echo", "a1", SUP_CTL_ANY, 0, &rep), 0);
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
	client_close(&c);
	stop_run(&r);
}

/* Every refusal, each with its errno. */
static void test_control_refusals(void **state)
{
	struct sup_ctl_reply rep;
	struct sup_ctl_req q;
	struct client c;
	struct run r;
	shoal_handle_t e0, ctl_inbox;
	uint64_t refused;
	char reply[64];
	int n;

	(void)state;
	start(&r, "refuse",
	      "[instance]\nworkers = 2\nplacement = none\n"
	      "[segment]\nmax_agents = 8\nregistry_capacity = 64\nmax_procs = 8\n"
	      "[agent e]\ntype = echo\nname = e0\nworker = 0\n");
	wait_ready(&r);
	client_open(&c, r.inst);
	refused = atomic_load(&shm_hdr(c.seg)->ctl_refused);
	assert_int_equal(ctl_spawn(&c, "nonesuch", "x", SUP_CTL_ANY, 0, &rep), -ENOENT);
	assert_int_equal(ctl_spawn(&c, "echo", "e0", SUP_CTL_ANY, 0, &rep), -EEXIST);
	assert_int_equal(ctl_spawn(&c, "echo", "x", SUP_CTL_WORKER, 2, &rep), -ENXIO);
	assert_int_equal(ctl_spawn(&c, "echo", "x", SUP_CTL_WORKER, -1, &rep), -ENXIO);
	assert_int_equal(ctl_spawn(&c, "echo", "x", 7, 0, &rep), -EINVAL);
	assert_int_equal(ctl_spawn(&c, "echo", "x", SUP_CTL_NODE, -1, &rep), -EINVAL);
	/* malformed: an unterminated name, flags set, an unknown op, a foreign message */
	q = spawn_req("echo", "x", SUP_CTL_ANY, 0);
	memset(q.name, 'n', sizeof(q.name));
	assert_int_equal(sup_ctl_call(c.seg, c.w, c.inbox, &q, &rep, TIMEOUT_MS), 0);
	assert_int_equal(rep.rc, -EPROTO);
	q = spawn_req("echo", "x", SUP_CTL_ANY, 0);
	q.flags = 1;
	assert_int_equal(sup_ctl_call(c.seg, c.w, c.inbox, &q, &rep, TIMEOUT_MS), 0);
	assert_int_equal(rep.rc, -EPROTO);
	q.flags = 0;
	q.op = 99;
	assert_int_equal(sup_ctl_call(c.seg, c.w, c.inbox, &q, &rep, TIMEOUT_MS), 0);
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
	assert_int_equal(kill(slot_pid(c.seg, 1), SIGSTOP), 0);
	assert_int_equal(ctl_stop(&c, "e0", 0, &rep), 0);
	assert_int_equal(ctl_stop(&c, "e0", 0, &rep), -EALREADY);
	assert_int_equal(kill(slot_pid(c.seg, 1), SIGCONT), 0);
	WAIT_FOR(c.seg, wrk_agent_get(c.seg, e0) == NULL);
	/* a full agent table: 8 slots, 2 inboxes (ours, the supervisor's) */
	for (int i = 0;; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		assert_true(i < 8);
		if (ctl_spawn(&c, "echo", name, SUP_CTL_ANY, 0, &rep) == -ENOSPC)
			break;
		assert_int_equal(rep.rc, 0);
	}
	assert_int_equal(agents_in_use(c.seg), 8);
	assert_int_equal(atomic_load(&shm_hdr(c.seg)->ctl_refused) - refused, 16);
	client_close(&c);
	stop_run(&r);
}

/* A stopping instance refuses: its worker is held (SIGSTOP) so the stop lasts. */
static void test_control_refused_while_stopping(void **state)
{
	struct sup_ctl_reply rep;
	struct client c;
	struct run r;

	(void)state;
	start(&r, "stopping",
	      "[instance]\nworkers = 1\nplacement = none\nstop_timeout = 300ms\n"
	      "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n");
	wait_ready(&r);
	client_open(&c, r.inst);
	assert_int_equal(kill(slot_pid(c.seg, 1), SIGSTOP), 0);
	assert_int_equal(kill(r.pid, SIGTERM), 0);
	WAIT_FOR(c.seg, atomic_load(&shm_hdr(c.seg)->state) == SHM_INST_STOPPING);
	assert_int_equal(ctl_spawn(&c, "echo", "late", SUP_CTL_ANY, 0, &rep), -ESHUTDOWN);
	client_close(&c);
	/* the held worker is killed at its stop deadline */
	assert_int_equal(wait_exit(&r), 0);
	cleanup(&r);
}

/*
 * A requester SIGKILLed right after sending: the supervisor (held with SIGSTOP meanwhile,
 * so the order is certain) drops the request unserved, survives, and no slot is left over.
 */
static void test_control_requester_killed_after_send(void **state)
{
	struct sup_ctl_reply rep;
	struct shm_seg *seg;
	struct client c;
	struct run r;
	uint32_t before, cslot = 0;
	shoal_handle_t found;
	int pfd[2], st;
	pid_t pid;

	(void)state;
	start(&r, "reqkill", two_workers);
	wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, NULL, 0), 0);
	before = agents_in_use(seg);
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(kill(r.pid, SIGSTOP), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sup_ctl_req q = spawn_req("echo", "orphan", SUP_CTL_ANY, 0);
		struct client k;
		uint64_t ref;

		client_open(&k, r.inst);
		(void)!write(pfd[1], &k.seg->self, sizeof(k.seg->self));
		if (ipc_call_async(k.seg, k.inbox, atomic_load(&shm_hdr(k.seg)->ctl_inbox),
				   SUP_CTL_MSG, &q, sizeof(q), &ref))
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
	client_open(&c, r.inst);
	assert_int_equal(ctl_spawn(&c, "echo", "after", SUP_CTL_ANY, 0, &rep), 0);
	WAIT_FOR(c.seg, agent_is(c.seg, rep.handle, SHM_AGENT_RUNNING));
	expect_echo(&c, rep.handle);
	client_close(&c);
	shm_seg_detach(seg);
	stop_run(&r);
}

/* A spawn onto a worker that is being restarted (in its backoff): it runs on the replacement. */
static void test_control_spawn_during_restart(void **state)
{
	struct sup_ctl_reply rep;
	shoal_handle_t h, e0;
	struct client c;
	struct run r;
	pid_t old;
	int fd;

	(void)state;
	start(&r, "restart",
	      "[instance]\nworkers = 2\nplacement = none\n"
	      "[restart]\nbackoff_first = true\nbackoff_initial = 500ms\nbackoff_max = 500ms\n"
	      "[segment]\nmax_agents = 32\nregistry_capacity = 128\nmax_procs = 8\n"
	      "[agent e]\ntype = echo\nname = e0\nworker = 0\n");
	wait_ready(&r);
	client_open(&c, r.inst);
	old = slot_pid(c.seg, 1);
	fd = pidfd_open_(old);
	assert_true(fd >= 0);
	assert_int_equal(kill(old, SIGKILL), 0);
	assert_true(fd_wait(fd, TIMEOUT_MS));
	close(fd);
	/* repaired, waiting out its backoff */
	WAIT_FOR(c.seg, atomic_load(&shm_proc_at(c.seg, 1)->state) == SHM_PROC_EXITED &&
				atomic_load(&shm_proc_at(c.seg, 1)->restarts) == 1);
	assert_int_equal(ctl_spawn(&c, "echo", "onrestart", SUP_CTL_WORKER, 0, &rep), 0);
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
	assert_true(slot_pid(c.seg, 1) != old);
	expect_echo(&c, h);
	client_close(&c);
	stop_run(&r);
}

/* Wait (a spin with a deadline: a send announces nothing) until the inbox holds n messages. */
static void wait_queued(struct shm_seg *seg, uint32_t slot, uint32_t n)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;

	while (ipc_mbox_depth(seg, slot) < n) {
		if (shm_now_ns() > dl)
			fail_msg("the request never reached the control inbox");
		sched_yield();
	}
}

/* Run `shoal ARGS... --instance inst`; its exit code, its output (stdout + stderr) in out. */
static int run_tool(const char *inst, char *out, size_t cap, const char *const *args)
{
	const char *bin = shoal_bin();
	char *argv[16];
	size_t n = 0, got = 0;
	int op[2], st;
	pid_t pid;

	argv[n++] = (char *)bin;
	for (; *args; args++)
		argv[n++] = (char *)*args;
	argv[n++] = (char *)"--instance";
	argv[n++] = (char *)inst;
	argv[n] = NULL;
	assert_int_equal(pipe2(op, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(op[1], 1);
		dup2(op[1], 2);
		execv(bin, argv);
		_exit(127);
	}
	close(op[1]);
	for (;;) {
		ssize_t k;

		assert_true(fd_wait(op[0], TIMEOUT_MS));
		k = read(op[0], out + got, cap - 1 - got);
		assert_true(k >= 0);
		if (k == 0)
			break;
		got += (size_t)k;
	}
	out[got] = 0;
	close(op[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/*
 * A supervisor that does not answer (stopped): the call times out, saying so. One killed
 * with a request in its inbox: the waiting client says it died.
 */
static void test_control_supervisor_silent_or_dead(void **state)
{
	struct sup_ctl_req q = spawn_req("echo", "x", SUP_CTL_ANY, 0);
	struct sup_ctl_reply rep;
	struct client c;
	struct run r;
	char out[8192];
	int op[2], st;
	pid_t tool;
	size_t got = 0;
	uint32_t ctl_slot, queued;

	(void)state;
	start(&r, "silent", two_workers);
	wait_ready(&r);
	client_open(&c, r.inst);
	assert_int_equal(kill(r.pid, SIGSTOP), 0);
	assert_int_equal(sup_ctl_call(c.seg, c.w, c.inbox, &q, &rep, 200), -ETIMEDOUT);
	assert_int_equal(run_tool(r.inst, out, sizeof(out),
				  (const char *[]){"spawn", "echo", "y", "--timeout", "200", NULL}),
			 3);
	if (!strstr(out, "did not answer within 200 ms"))
		fail_msg("shoal spawn said: %s", out);
	/* a spawn waiting for its answer when the supervisor is killed */
	ctl_slot = shoal_handle_slot(atomic_load(&shm_hdr(c.seg)->ctl_inbox));
	queued = ipc_mbox_depth(c.seg, ctl_slot); /* the two above, never served */
	assert_int_equal(pipe2(op, O_CLOEXEC), 0);
	tool = fork();
	assert_true(tool >= 0);
	if (tool == 0) {
		dup2(op[1], 1);
		dup2(op[1], 2);
		execl(shoal_bin(), shoal_bin(), "spawn", "echo", "z", "--timeout", "1000",
		      "--instance", r.inst, (char *)NULL);
		_exit(127);
	}
	close(op[1]);
	wait_queued(c.seg, ctl_slot, queued + 1);
	assert_int_equal(kill(r.pid, SIGKILL), 0);
	assert_int_equal(wait_exit(&r), -SIGKILL);
	for (;;) {
		ssize_t k;

		assert_true(fd_wait(op[0], TIMEOUT_MS));
		k = read(op[0], out + got, sizeof(out) - 1 - got);
		assert_true(k >= 0);
		if (k == 0)
			break;
		got += (size_t)k;
	}
	out[got] = 0;
	close(op[0]);
	assert_int_equal(waitpid(tool, &st, 0), tool);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	if (!strstr(out, "the supervisor died before answering"))
		fail_msg("shoal spawn said: %s", out);
	/* and a new request is refused at once */
	assert_int_equal(sup_ctl_call(c.seg, c.w, c.inbox, &q, &rep, TIMEOUT_MS), -EOWNERDEAD);
	client_close(&c);
	/* the post-mortem shows the control inbox as the supervisor left it */
	assert_int_equal(run_tool(r.inst, out, sizeof(out), (const char *[]){"inspect", NULL}), 0);
	if (!strstr(out, "supervisor-dead") || !strstr(out, "control        inbox agent slot"))
		fail_msg("inspect said: %s", out);
	cleanup(&r);
}

/*
 * A supervisor killed after it did a spawn and before it answered (a test hook kills it
 * there): the waiting command says it died; the post-mortem names the request in flight and
 * the agent slot, whose spawn was complete (handed to its worker).
 */
static void test_control_supervisor_killed_before_answer(void **state)
{
	struct shm_seg *seg;
	struct run r;
	char out[8192];
	int op[2], st;
	size_t got = 0;
	shoal_handle_t h;
	pid_t tool;

	(void)state;
	setenv("SHOAL_TEST_CTL_DIE", "1", 1);
	start(&r, "die", two_workers);
	unsetenv("SHOAL_TEST_CTL_DIE");
	wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, NULL, 0), 0);
	assert_int_equal(pipe2(op, O_CLOEXEC), 0);
	tool = fork();
	assert_true(tool >= 0);
	if (tool == 0) {
		dup2(op[1], 1);
		dup2(op[1], 2);
		execl(shoal_bin(), shoal_bin(), "spawn", "echo", "z", "--worker", "1", "--timeout",
		      "1000", "--instance", r.inst, (char *)NULL);
		_exit(127);
	}
	close(op[1]);
	assert_int_equal(wait_exit(&r), -SIGKILL);
	for (;;) {
		ssize_t k;

		assert_true(fd_wait(op[0], TIMEOUT_MS));
		k = read(op[0], out + got, sizeof(out) - 1 - got);
		assert_true(k >= 0);
		if (k == 0)
			break;
		got += (size_t)k;
	}
	out[got] = 0;
	close(op[0]);
	assert_int_equal(waitpid(tool, &st, 0), tool);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	if (!strstr(out, "the supervisor died before answering"))
		fail_msg("shoal spawn said: %s", out);
	/* the spawn itself was done: the name is there, the slot handed to worker 1 */
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "z", 1, &h, NULL), 0);
	assert_int_equal(atomic_load(&wrk_agent_get(seg, h)->worker), 1 + 2);
	assert_int_equal(atomic_load(&wrk_agent_get(seg, h)->ctl), UINT64_MAX);
	assert_int_equal(run_tool(r.inst, out, sizeof(out), (const char *[]){"inspect", NULL}), 0);
	if (!strstr(out, "the supervisor died serving a spawn request") ||
	    !strstr(out, "maybe half done"))
		fail_msg("inspect said: %s", out);
	shm_seg_detach(seg);
	cleanup(&r);
}

/* The commands: spawn (hints, --wait), stop (--wait), their errors, and inspect's counter. */
static void test_control_commands(void **state)
{
	struct shm_seg *seg;
	struct run r;
	char out[8192];
	shoal_handle_t h;

	(void)state;
	start(&r, "cli", two_workers);
	wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, NULL, 0), 0);
	assert_int_equal(
		run_tool(r.inst, out, sizeof(out),
			 (const char *[]){"spawn", "echo", "e3", "--worker", "1", "--wait", NULL}),
		0);
	if (!strstr(out, "spawned echo on worker 1") || !strstr(out, "e3: running"))
		fail_msg("shoal spawn said: %s", out);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "e3", 2, &h, NULL), 0);
	assert_int_equal(atomic_load(&wrk_agent_get(seg, h)->state), SHM_AGENT_RUNNING);
	assert_int_equal(
		run_tool(r.inst, out, sizeof(out), (const char *[]){"call", "e3", "hello", NULL}),
		0);
	assert_string_equal(out, "hello\n");
	if (shm_proc_at(seg, 1)->node >= 0) {
		char node[16];

		snprintf(node, sizeof(node), "%d", shm_proc_at(seg, 1)->node);
		assert_int_equal(
			run_tool(r.inst, out, sizeof(out),
				 (const char *[]){"spawn", "echo", "e4", "--node", node, NULL}),
			0);
		assert_int_equal(
			run_tool(r.inst, out, sizeof(out),
				 (const char *[]){"spawn", "echo", "e5", "--node", "63", NULL}),
			2);
		if (!strstr(out, "no worker on NUMA node 63"))
			fail_msg("shoal spawn said: %s", out);
	}
	/* errors: one sentence each, the documented exit codes */
	assert_int_equal(run_tool(r.inst, out, sizeof(out),
				  (const char *[]){"spawn", "nosuchtype", "n", NULL}),
			 2);
	assert_non_null(strstr(out, "unknown agent type"));
	assert_int_equal(
		run_tool(r.inst, out, sizeof(out), (const char *[]){"spawn", "echo", "e3", NULL}),
		2);
	assert_non_null(strstr(out, "is taken"));
	assert_int_equal(run_tool(r.inst, out, sizeof(out),
				  (const char *[]){"spawn", "echo", "e6", "--worker", "5", NULL}),
			 2);
	assert_non_null(strstr(out, "has no worker 5"));
	/* --wait returns once the stop is done: the name is free at once */
	assert_int_equal(
		run_tool(r.inst, out, sizeof(out), (const char *[]){"stop", "e3", "--wait", NULL}),
		0);
	assert_non_null(strstr(out, "e3: stopped"));
	assert_null(wrk_agent_get(seg, h));
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "e3", 2, &h, NULL), -ENOENT);
	assert_int_equal(run_tool(r.inst, out, sizeof(out), (const char *[]){"stop", "e3", NULL}),
			 2);
	assert_non_null(strstr(out, "no agent named 'e3'"));
	/* a stop its worker cannot run (stopped): --wait gives up at its timeout, exit 1 */
	assert_int_equal(kill(slot_pid(seg, 1), SIGSTOP), 0);
	assert_int_equal(
		run_tool(r.inst, out, sizeof(out),
			 (const char *[]){"stop", "e0", "--wait", "--timeout", "200", NULL}),
		1);
	assert_non_null(strstr(out, "did not stop within 200 ms"));
	assert_int_equal(run_tool(r.inst, out, sizeof(out), (const char *[]){"stop", "e0", NULL}),
			 0);
	assert_non_null(strstr(out, "e0: already stopping"));
	assert_int_equal(kill(slot_pid(seg, 1), SIGCONT), 0);
	/* inspect shows what the control inbox served */
	assert_int_equal(run_tool(r.inst, out, sizeof(out), (const char *[]){"inspect", NULL}), 0);
	if (!strstr(out, "control        inbox agent slot") || !strstr(out, "requests served"))
		fail_msg("inspect said: %s", out);
	shm_seg_detach(seg);
	stop_run(&r);
}

/* After a failed test: kill the supervisor it left running (its workers follow it). */
static int teardown(void **state)
{
	(void)state;
	if (have_live) {
		kill(live.pid, SIGKILL);
		waitpid(live.pid, NULL, 0);
		close(live.pidfd);
		close(live.ready_rd);
		cleanup(&live);
		have_live = false;
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_control_spawn_and_stop, teardown),
		cmocka_unit_test_teardown(test_control_refusals, teardown),
		cmocka_unit_test_teardown(test_control_refused_while_stopping, teardown),
		cmocka_unit_test_teardown(test_control_requester_killed_after_send, teardown),
		cmocka_unit_test_teardown(test_control_spawn_during_restart, teardown),
		cmocka_unit_test_teardown(test_control_supervisor_silent_or_dead, teardown),
		cmocka_unit_test_teardown(test_control_supervisor_killed_before_answer, teardown),
		cmocka_unit_test_teardown(test_control_commands, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
