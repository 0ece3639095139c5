/*
 * The public client API (include/shoal/client.h) against a real instance (`shoal run`): what
 * a program built against shoal.pc can do without the engine's internal headers. The
 * instance is started and inspected with the test helpers; every call under test goes
 * through shoal_client_*().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shoal/client.h"
#include "tests/skip.h"

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/shm.h"

#include "tests/run_test_util.h"

static const char *config =
	"[instance]\nworkers = 1\nplacement = none\n"
	"[restart]\nintensity = 10\nperiod = 30\n"
	"[segment]\nmax_agents = 32\nregistry_capacity = 64\nmax_procs = 8\nmax_message = 256\n"
	"[agent e]\ntype = echo\nname = echo\n"
	"[agent n]\ntype = counter\ncount = 3\nname = cnt-%u\n";

static struct rt_run run;

static void start(void)
{
	rt_start(&run, "t-cl-", "api", config, NULL);
	rt_wait_ready(&run);
}

static void stop(void)
{
	kill(run.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&run), 0);
	rt_cleanup(&run);
}

static shoal_handle_t must_lookup(struct shoal_client *c, const char *name)
{
	shoal_handle_t h = SHOAL_HANDLE_NONE;

	assert_int_equal(shoal_client_lookup(c, name, &h), 0);
	assert_true(h != SHOAL_HANDLE_NONE);
	return h;
}

/* A counter's count, asked by a call ("N R": handled, redelivered). */
static unsigned long long count_of(struct shoal_client *c, shoal_handle_t h)
{
	char reply[64] = "";
	int n = shoal_client_call(c, h, 0, "?", 1, reply, sizeof(reply) - 1, TIMEOUT_MS);

	assert_true(n > 0);
	reply[n] = 0;
	return strtoull(reply, NULL, 10);
}

/* No instance of that name: -ENOENT and a sentence naming it. */
static void test_client_open_errors(void **state)
{
	struct shoal_client *c = (struct shoal_client *)1;
	char err[512] = "";

	(void)state;
	assert_int_equal(shoal_client_open("t-cl-none-of-these", &c, err, sizeof(err)), -ENOENT);
	assert_null(c);
	if (!strstr(err, "t-cl-none-of-these"))
		fail_msg("the error said: %s", err);
	assert_int_equal(shoal_client_open("bad/name", &c, err, sizeof(err)), -EINVAL);
	shoal_client_close(NULL); /* a no-op */
}

/* Cast, batch, call, async call, errors. */
static void test_client_messaging(void **state)
{
	struct shoal_out batch[40];
	struct shoal_client *c;
	shoal_handle_t echo, cnt[3];
	char reply[64] = "", big[300], name[16], buf[64];
	struct shoal_msg m;
	uint64_t ref = 0;

	(void)state;
	start();
	assert_int_equal(shoal_client_open(run.inst, &c, NULL, 0), 0);
	assert_true(shoal_client_inbox(c) != SHOAL_HANDLE_NONE);
	echo = must_lookup(c, "echo");
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "cnt-%d", i);
		cnt[i] = must_lookup(c, name);
	}
	{
		shoal_handle_t none = SHOAL_HANDLE_NONE;

		assert_int_equal(shoal_client_lookup(c, "nosuch", &none), -ENOENT);
		assert_int_equal(shoal_client_lookup(c, NULL, &none), -EINVAL);
	}

	/* call: the echo's reply; a short buffer gets the length all the same */
	assert_int_equal(
		shoal_client_call(c, echo, 1, "hello", 5, reply, sizeof(reply), TIMEOUT_MS), 5);
	assert_memory_equal(reply, "hello", 5);
	assert_int_equal(shoal_client_call(c, echo, 1, "hello", 5, reply, 2, TIMEOUT_MS), 5);

	/* casts and a batch across receivers: every one counted where it went */
	for (int i = 0; i < 7; i++)
		assert_int_equal(shoal_client_cast(c, cnt[0], 1, "x", 1, TIMEOUT_MS), 0);
	for (int i = 0; i < 40; i++)
		batch[i] = (struct shoal_out){
			.to = cnt[i % 3 == 2 ? 2 : 1], .type = 1, .len = 1, .data = "y"};
	assert_int_equal(shoal_client_send_batch(c, batch, 40, TIMEOUT_MS), 40);
	assert_int_equal(count_of(c, cnt[0]), 7);
	assert_int_equal(count_of(c, cnt[1]), 27);
	assert_int_equal(count_of(c, cnt[2]), 13);

	/* async call: the reply comes to the inbox, with the call's reference */
	assert_int_equal(shoal_client_call_async(c, echo, 9, "async", 5, &ref), 0);
	assert_true(ref != 0);
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS), 0);
	assert_true(m.flags & SHOAL_MSG_REPLY);
	assert_false(m.flags & SHOAL_MSG_ERROR);
	assert_true(m.ref == ref);
	assert_true(m.from == echo);
	assert_int_equal(m.len, 5);
	assert_memory_equal(m.data, "async", 5);
	/* nothing more: -EAGAIN at once, -ETIMEDOUT after a wait */
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), 20), -ETIMEDOUT);

	/* errors: oversized, a handle that never was, a batch that is empty of valid sends */
	memset(big, 'z', sizeof(big));
	assert_int_equal(shoal_client_cast(c, echo, 1, big, sizeof(big), 0), -EMSGSIZE);
	assert_int_equal(shoal_client_call(c, echo, 1, big, sizeof(big), reply, sizeof(reply), 100),
			 -EMSGSIZE);
	assert_int_equal(shoal_client_cast(c, shoal_handle_make(31, 77), 1, "x", 1, 0), -ENOENT);
	batch[0].to = shoal_handle_make(31, 77);
	assert_int_equal(shoal_client_send_batch(c, batch, 3, 0), -ENOENT);

	/* the instance stops: a monitor hears DOWN (stopped), then the wait ends */
	assert_int_equal(shoal_client_monitor(c, echo, &ref), 0);
	kill(run.pid, SIGTERM);
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS), 0);
	assert_true(m.flags & SHOAL_MSG_SYSTEM);
	assert_int_equal(m.type, SHOAL_T_DOWN);
	{
		struct shoal_down d;

		memcpy(&d, m.data, sizeof(d));
		assert_true(d.target == echo && d.ref == ref);
		assert_int_equal(d.reason, SHOAL_DOWN_STOPPED);
	}
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS), -ESHUTDOWN);
	assert_int_equal(rt_wait_exit(&run), 0);
	rt_cleanup(&run);
	shoal_client_close(c);
}

#define QUEUED 50 /* casts queued for an agent whose worker is stopped, then killed */

/*
 * Broadcast to a process group; monitors: DOWN then UP in the inbox across a worker crash,
 * with casts queued for one of its agents while it was down, all delivered afterwards.
 */
static void test_client_broadcast_and_monitor(void **state)
{
	struct shoal_client *c;
	struct shm_seg *seg;
	shoal_handle_t cnt[3], echo;
	struct shoal_down d;
	struct shoal_msg m;
	char name[16], buf[64], err[256];
	unsigned long long before;
	uint32_t depth0;
	uint64_t mref = 0;
	pid_t worker;

	(void)state;
	start();
	assert_int_equal(shoal_client_open(run.inst, &c, NULL, 0), 0);
	/* the group, made with the engine's own call (agents join it from their callbacks) */
	assert_int_equal(shm_seg_attach(run.inst, 0, 1000, &seg, err, sizeof(err)), 0);
	assert_int_equal(shm_proc_claim(seg, SHM_ROLE_CLIENT, true), 0);
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "cnt-%d", i);
		cnt[i] = must_lookup(c, name);
		assert_int_equal(shm_grp_join(seg, "g", 1, cnt[i]), 0);
	}
	assert_int_equal(shoal_client_broadcast(c, "g", 1, "b", 1, TIMEOUT_MS), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(count_of(c, cnt[i]), 1);
	assert_int_equal(shoal_client_broadcast(c, "nogroup", 1, "b", 1, 0), -ENOENT);
	/* the client joins: it is listed, and a broadcast reaches its inbox too */
	{
		shoal_handle_t mem[8];
		int nm, self = 0;

		assert_int_equal(shoal_client_join(c, "g"), 0);
		nm = shoal_client_members(c, "g", mem, 8);
		assert_int_equal(nm, 4);
		for (int i = 0; i < nm; i++)
			self += mem[i] == shoal_client_inbox(c);
		assert_int_equal(self, 1);
		assert_int_equal(shoal_client_broadcast(c, "g", 5, "c", 1, TIMEOUT_MS), 4);
		assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS), 0);
		assert_int_equal(m.type, 5);
		assert_int_equal(m.len, 1);
		assert_memory_equal(m.data, "c", 1);
		assert_int_equal(shoal_client_leave(c, "g"), 0);
		assert_int_equal(shoal_client_leave(c, "g"), -ENOENT);
		assert_int_equal(shoal_client_members(c, "g", mem, 8), 3);
		assert_int_equal(shoal_client_members(c, "nogroup", mem, 8), -ENOENT);
	}

	/*
	 * monitor the echo, stop its worker, queue casts for a counter while it cannot run,
	 * then crash it: DOWN (crash) then UP, both naming it, and every queued cast handled
	 * once by the replacement
	 */
	echo = must_lookup(c, "echo");
	assert_int_equal(shoal_client_monitor(c, echo, &mref), 0);
	worker = (pid_t)(atomic_load(&shm_proc_at(seg, 1)->own) >> 32);
	assert_true(worker > 0);
	before = count_of(c, cnt[0]);
	assert_int_equal(kill(worker, SIGSTOP), 0);
	rt_wait_pid_state(worker, 'T');
	/* the count call's message may still be there: answered, not yet consumed */
	depth0 = ipc_mbox_depth(seg, shoal_handle_slot(cnt[0]));
	assert_true(depth0 <= 1);
	for (int i = 0; i < QUEUED; i++)
		assert_int_equal(shoal_client_cast(c, cnt[0], 1, "q", 1, TIMEOUT_MS), 0);
	assert_int_equal(ipc_mbox_depth(seg, shoal_handle_slot(cnt[0])), depth0 + QUEUED);
	rt_kill_and_wait(worker);
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS), 0);
	assert_true(m.flags & SHOAL_MSG_SYSTEM);
	assert_int_equal(m.type, SHOAL_T_DOWN);
	assert_int_equal(m.len, sizeof(d));
	memcpy(&d, m.data, sizeof(d));
	assert_true(d.target == echo && d.ref == mref && d.up == 0);
	assert_int_equal(d.reason, SHOAL_DOWN_CRASH);
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS), 0);
	assert_true(m.flags & SHOAL_MSG_SYSTEM);
	assert_int_equal(m.type, SHOAL_T_UP);
	memcpy(&d, m.data, sizeof(d));
	assert_true(d.target == echo && d.ref == mref && d.up == 1);
	/* and it answers again under the same handle */
	assert_int_equal(shoal_client_call(c, echo, 1, "back", 4, buf, sizeof(buf), TIMEOUT_MS), 4);
	/* the counter: what it had counted (its checkpoint) and every queued cast, none twice */
	{
		int n = shoal_client_call(c, cnt[0], 0, "?", 1, buf, sizeof(buf) - 1, TIMEOUT_MS);
		unsigned long long count = 0, redelivered = 1;

		assert_true(n > 0);
		buf[n] = 0;
		assert_int_equal(sscanf(buf, "%llu %llu", &count, &redelivered), 2);
		assert_int_equal(count, before + QUEUED);
		assert_int_equal(redelivered, 0);
	}
	assert_int_equal(shoal_client_demonitor(c, mref), 0);
	assert_int_equal(shoal_client_demonitor(c, mref), -ENOENT);
	shm_seg_detach(seg);
	shoal_client_close(c);
	stop();
}

/* Spawn and stop through the supervisor, with their refusals. */
static void test_client_spawn_stop(void **state)
{
	struct shoal_client *c;
	shoal_handle_t h = SHOAL_HANDLE_NONE, again = SHOAL_HANDLE_NONE;
	struct shoal_down d;
	struct shoal_msg m;
	char buf[64];
	uint64_t mref = 0;
	int32_t worker = -2;

	(void)state;
	start();
	assert_int_equal(shoal_client_open(run.inst, &c, NULL, 0), 0);
	assert_int_equal(
		shoal_client_spawn(c, "echo", "e2", SHOAL_WHERE_WORKER, 0, &h, &worker, TIMEOUT_MS),
		0);
	assert_true(h != SHOAL_HANDLE_NONE);
	assert_int_equal(worker, 0);
	assert_int_equal(shoal_client_lookup(c, "e2", &again), 0);
	assert_true(again == h);
	/* its init runs next: a call waits for it */
	assert_int_equal(shoal_client_call(c, h, 1, "new", 3, buf, sizeof(buf), TIMEOUT_MS), 3);
	assert_memory_equal(buf, "new", 3);
	/* refusals, each its own errno */
	assert_int_equal(
		shoal_client_spawn(c, "echo", "e2", SHOAL_WHERE_ANY, 0, NULL, NULL, TIMEOUT_MS),
		-EEXIST);
	assert_int_equal(shoal_client_spawn(c, "no-such-type", "e3", SHOAL_WHERE_ANY, 0, NULL, NULL,
					    TIMEOUT_MS),
			 -ENOENT);
	assert_int_equal(
		shoal_client_spawn(c, "echo", "e3", SHOAL_WHERE_WORKER, 7, NULL, NULL, TIMEOUT_MS),
		-ENXIO);
	assert_int_equal(
		shoal_client_spawn(c, "echo", "", SHOAL_WHERE_ANY, 0, NULL, NULL, TIMEOUT_MS),
		-EINVAL);
	/* stop: its monitors get DOWN (stopped), the name goes */
	assert_int_equal(shoal_client_monitor(c, h, &mref), 0);
	assert_int_equal(shoal_client_stop(c, "e2", SHOAL_HANDLE_NONE, TIMEOUT_MS), 0);
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), TIMEOUT_MS), 0);
	assert_true(m.flags & SHOAL_MSG_SYSTEM);
	assert_int_equal(m.type, SHOAL_T_DOWN);
	memcpy(&d, m.data, sizeof(d));
	assert_true(d.target == h && d.ref == mref);
	assert_int_equal(d.reason, SHOAL_DOWN_STOPPED);
	assert_int_equal(shoal_client_lookup(c, "e2", &again), -ENOENT);
	assert_int_equal(shoal_client_stop(c, "e2", SHOAL_HANDLE_NONE, TIMEOUT_MS), -ENOENT);
	assert_int_equal(shoal_client_stop(c, NULL, shoal_client_inbox(c), TIMEOUT_MS), -EPERM);
	/* the supervisor killed: a waiting client is told, not left waiting for ever */
	assert_int_equal(kill(run.pid, SIGKILL), 0);
	assert_int_equal(shoal_client_recv(c, &m, buf, sizeof(buf), -1), -EOWNERDEAD);
	assert_int_equal(rt_wait_exit(&run), -SIGKILL);
	rt_cleanup(&run);
	shoal_client_close(c);
}

/*
 * A client SIGKILLed while attached: the supervisor's client scan records its exit, and
 * since a client is not the supervisor's child its status cannot be known: the record
 * says "vanished", never a made-up signal (it said "signal", signal 0), and so does
 * `shoal inspect`.
 */
static void test_client_killed_vanished(void **state)
{
	struct shm_exit_rec r[SHM_EXIT_LOG];
	struct shm_seg *seg;
	char err[256], out[16384], want[64];
	const char *inspect[] = {"inspect", NULL};
	const struct shm_exit_rec *rec = NULL;
	int pfd[2], st;
	char one;
	pid_t pid;

	(void)state;
	start();
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shoal_client *c;

		close(pfd[0]);
		if (shoal_client_open(run.inst, &c, NULL, 0))
			_exit(1);
		if (write(pfd[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &one, 1), 1);
	close(pfd[0]);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(shm_seg_attach(run.inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	for (uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u; !rec;) {
		uint32_t c = shm_change_read(seg);
		uint32_t n = shm_exit_log_read(seg, r, SHM_EXIT_LOG, NULL);

		for (uint32_t i = 0; i < n && !rec; i++)
			if (r[i].pid == (uint32_t)pid)
				rec = &r[i];
		if (!rec && shm_change_wait(seg, c, dl))
			fail_msg("the killed client's exit was never recorded");
	}
	assert_int_equal(rec->role, SHM_ROLE_CLIENT);
	assert_string_equal(shm_exit_reason_name(rec->reason), "vanished");
	assert_int_equal(rec->signal, 0);
	/* shoal inspect's exit log line for it: no status, and no signal made up */
	assert_int_equal(rt_run_tool(run.inst, out, sizeof(out), inspect), 0);
	snprintf(want, sizeof(want), "pid %-7u", (unsigned)pid);
	assert_non_null(strstr(out, want));
	{
		char *line = strstr(out, want), *end = strchr(line, '\n');

		if (end)
			*end = 0;
		if (!strstr(line, "vanished") || strstr(line, "signal"))
			fail_msg("inspect says: %s", line);
	}
	shm_seg_detach(seg);
	stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_open_errors),
		cmocka_unit_test_teardown(test_client_messaging, rt_teardown),
		cmocka_unit_test_teardown(test_client_broadcast_and_monitor, rt_teardown),
		cmocka_unit_test_teardown(test_client_spawn_stop, rt_teardown),
		cmocka_unit_test_teardown(test_client_killed_vanished, rt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
