/*
 * The console of `shoal run` (supervisor/sup_duty.c, the event lines of shm/log.c): the
 * banner once the instance is ready, one line per notable event, --quiet and
 * --log-format json, the status line's counters and the line an orderly stop ends with.
 * Each test starts a real `shoal run` with its stdout and stderr to files and waits for the
 * lines it expects (inotify on the file), never for a time.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/skip.h"

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/shm.h"
#include "supervisor/sup.h"
#include "tests/run_test_util.h"

static char buf[65536];

/* The default config with two workers: the demo, whatever the machine's core count. */
static const char *demo_config(void)
{
	static char text[4096];
	const char *w = strstr(sup_default_config, "workers = 0\n");

	assert_non_null(w);
	snprintf(text, sizeof(text), "%.*sworkers = 2\n%s", (int)(w - sup_default_config),
		 sup_default_config, w + strlen("workers = 0\n"));
	return text;
}

static const char *echo_config =
	"[instance]\nworkers = 2\nplacement = none\n"
	"[segment]\nmax_agents = 64\nregistry_capacity = 256\nmax_procs = 8\n"
	"[agent e]\ntype = echo\ncount = 10\nname = e-%02u\nworker = 0\n";

/* The banner names the instance, each worker and where it runs, the agents, the time to ready,
 * what the demo does, and what to try next. */
static void test_console_banner_demo(void **state)
{
	struct rt_run r;

	(void)state;
	rt_start(&r, "t-", "con-banner", demo_config(), NULL);
	rt_wait_ready(&r);
	/* printed before the ready byte: all of it is there now */
	rt_read_file(r.out, buf, sizeof(buf));
	if (!strstr(buf, r.inst) || !strstr(buf, "ready in") || !strstr(buf, "worker 0:") ||
	    !strstr(buf, "worker 1:") || !strstr(buf, "core") || !strstr(buf, "tuner-000") ||
	    !strstr(buf, "coordinator") || !strstr(buf, "pool evaluators") ||
	    !strstr(buf, "hyperparameter search") || !strstr(buf, "consensus") ||
	    !strstr(buf, "shoal inspect") || !strstr(buf, "shoal top") ||
	    !strstr(buf, "shoal var get best.score") ||
	    !strstr(buf, "shoal call coordinator best") || !strstr(buf, "Ctrl-C") ||
	    !strstr(buf, "SIGTERM"))
		fail_msg("the banner lacks a part: %s", buf);
	rt_stop(&r);
}

/* Another config's banner lists its agents and says nothing of the demo. */
static void test_console_banner_other_config(void **state)
{
	struct rt_run r;

	(void)state;
	rt_start(&r, "t-", "con-banner2", echo_config, NULL);
	rt_wait_ready(&r);
	rt_read_file(r.out, buf, sizeof(buf));
	if (!strstr(buf, "ready in") || !strstr(buf, "10 x echo") || !strstr(buf, "e-00") ||
	    !strstr(buf, "e-09") || !strstr(buf, "not pinned"))
		fail_msg("the banner lacks a part: %s", buf);
	assert_null(strstr(buf, "hyperparameter"));
	rt_stop(&r);
}

/* A copy of the line of text that holds needle (NULL if none); free it. */
static char *line_with(const char *text, const char *needle)
{
	const char *p = strstr(text, needle), *b, *e;

	if (!p)
		return NULL;
	for (b = p; b > text && b[-1] != '\n'; b--)
		;
	e = strchr(p, '\n');
	return strndup(b, e ? (size_t)(e - b) : strlen(b));
}

/* The line starts with a UTC timestamp (2026-01-31T12:00:00.123Z) and "shoal INST: ". */
static void assert_stamped(const char *line, const char *inst)
{
	char want[64];
	static const char digits[] = "dddd-dd-ddTdd:dd:dd.dddZ ";

	for (size_t i = 0; i < sizeof(digits) - 1; i++)
		if (digits[i] == 'd' ? line[i] < '0' || line[i] > '9' : line[i] != digits[i])
			fail_msg("no timestamp at the start of: %s", line);
	snprintf(want, sizeof(want), "shoal %s: ", inst);
	if (strncmp(line + sizeof(digits) - 1, want, strlen(want)))
		fail_msg("no '%s' after the timestamp in: %s", want, line);
}

/* Attach read-only to the run's segment. */
static struct shm_seg *attach(struct rt_run *r)
{
	struct shm_seg *seg;
	char err[256];

	assert_int_equal(shm_seg_attach(r->inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	return seg;
}

/* Worker 0 SIGKILLed: a line says so (signal and name), another its restart and the time. */
static void test_console_worker_exit_and_restart(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	char want[128], *line;
	pid_t pid;

	(void)state;
	rt_start(&r, "t-", "con-exit", echo_config, NULL);
	rt_wait_ready(&r);
	seg = attach(&r);
	pid = rt_slot_pid(seg, 1);
	rt_kill_and_wait(pid);
	snprintf(want, sizeof(want), "worker 0 (pid %d): exited: killed by signal 9 (SIGKILL)",
		 (int)pid);
	rt_wait_err(&r, want);
	rt_wait_err(&r, "restarted in ");
	rt_read_err(&r, buf, sizeof(buf));
	line = line_with(buf, want);
	assert_stamped(line, r.inst);
	free(line);
	line = line_with(buf, "restarted in ");
	assert_stamped(line, r.inst);
	if (!strstr(line, ": worker 0 (pid ") || !strstr(line, " ms"))
		fail_msg("the restart line: %s", line);
	free(line);
	shm_seg_detach(seg);
	rt_stop(&r);
}

/* --log-format json: each event line is one JSON object with the event's data. */
static void test_console_json_lines(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	bool exit_seen = false, restart_seen = false;
	char *save = NULL;
	pid_t pid;

	(void)state;
	rt_start(&r, "t-", "con-json", echo_config, "--log-format=json");
	rt_wait_ready(&r);
	seg = attach(&r);
	pid = rt_slot_pid(seg, 1);
	rt_kill_and_wait(pid);
	rt_wait_err(&r, "\"event\":\"worker.restart\"");
	rt_read_err(&r, buf, sizeof(buf));
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *o = json_loads(l, 0, &e);
		const char *ev;

		if (!o)
			fail_msg("not a JSON line (%s): %s", e.text, l);
		ev = json_string_value(json_object_get(o, "event"));
		assert_non_null(ev);
		assert_string_equal(json_string_value(json_object_get(o, "instance")), r.inst);
		assert_non_null(strchr(json_string_value(json_object_get(o, "time")), 'Z'));
		assert_non_null(json_string_value(json_object_get(o, "message")));
		if (!strcmp(ev, "worker.exit")) {
			exit_seen = true;
			assert_int_equal(json_integer_value(json_object_get(o, "worker")), 0);
			assert_int_equal(json_integer_value(json_object_get(o, "pid")), pid);
			assert_int_equal(json_integer_value(json_object_get(o, "signal")), 9);
			assert_string_equal(json_string_value(json_object_get(o, "signal_name")),
					    "SIGKILL");
			assert_string_equal(json_string_value(json_object_get(o, "reason")),
					    "signal");
		} else if (!strcmp(ev, "worker.restart")) {
			restart_seen = true;
			assert_int_equal(json_integer_value(json_object_get(o, "worker")), 0);
			assert_true(json_is_number(json_object_get(o, "restart_ms")));
		}
		json_decref(o);
	}
	assert_true(exit_seen && restart_seen);
	shm_seg_detach(seg);
	rt_stop(&r);
}

/* --quiet: no banner, no event lines, though a worker was killed and restarted. */
static void test_console_quiet(void **state)
{
	struct rt_run r;
	struct shm_seg *seg;
	pid_t pid;

	(void)state;
	rt_start(&r, "t-", "con-quiet", echo_config, "--quiet");
	rt_wait_ready(&r);
	seg = attach(&r);
	pid = rt_slot_pid(seg, 1);
	rt_kill_and_wait(pid);
	WAIT_FOR(seg, atomic_load(&shm_proc_at(seg, 1)->restarts) >= 1 &&
			      atomic_load(&shm_proc_at(seg, 1)->state) == SHM_PROC_RUNNING &&
			      rt_slot_pid(seg, 1) != pid);
	shm_seg_detach(seg);
	/* everything the run wrote is in the files once it has exited */
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_read_err(&r, buf, sizeof(buf));
	if (strstr(buf, "worker 0"))
		fail_msg("--quiet, but stderr holds: %s", buf);
	rt_read_file(r.out, buf, sizeof(buf));
	if (strstr(buf, "ready in"))
		fail_msg("--quiet, but stdout holds: %s", buf);
	rt_cleanup(&r);
}

/* The restart intensity tripping is an error: said (stamped) under --quiet too. */
static void test_console_intensity_under_quiet(void **state)
{
	struct rt_run r;
	char *line;

	(void)state;
	need_test_hooks();
	setenv("SHOAL_TEST_WORKER_EXIT", "1:7", 1);
	rt_start(&r, "t-", "con-loop",
		 "[instance]\nworkers = 2\nplacement = none\n"
		 "[restart]\nintensity = 3\nperiod = 30\nbackoff_initial = 1ms\n"
		 "backoff_max = 4ms\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 8\n",
		 "--quiet");
	unsetenv("SHOAL_TEST_WORKER_EXIT");
	assert_int_equal(rt_wait_exit(&r), 1);
	rt_read_err(&r, buf, sizeof(buf));
	line = line_with(buf, "intensity exceeded");
	if (!line)
		fail_msg("stderr: %s", buf);
	assert_stamped(line, r.inst);
	if (!strstr(line, "worker 1: ") || !strstr(line, "exited with code 7"))
		fail_msg("the intensity line: %s", line);
	free(line);
	/* the exits themselves are events: not under --quiet */
	assert_null(strstr(buf, "exited: exit code"));
	rt_cleanup(&r);
}

/* shoal spawn and shoal stop: the supervisor says what it served (agent and worker). */
static void test_console_spawn_stop_lines(void **state)
{
	static const char *const spawn[] = {"spawn", "echo", "x1", "--worker", "1", NULL};
	static const char *const stop[] = {"stop", "x1", "--wait", NULL};
	struct rt_run r;
	char out[4096], *line;

	(void)state;
	rt_start(&r, "t-", "con-ctl", echo_config, NULL);
	rt_wait_ready(&r);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), spawn), 0);
	rt_wait_err(&r, "spawned agent 'x1' (echo) on worker 1");
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), stop), 0);
	rt_wait_err(&r, "stopping agent 'x1' (echo) on worker 1");
	rt_read_err(&r, buf, sizeof(buf));
	line = line_with(buf, "spawned agent");
	assert_stamped(line, r.inst);
	free(line);
	line = line_with(buf, "stopping agent");
	assert_stamped(line, r.inst);
	free(line);
	rt_stop(&r);
}

/* An agent that fails past its restart intensity is removed: a stamped line says so. */
static void test_console_agent_removed(void **state)
{
	struct rt_run r;
	struct rt_client cl;
	shoal_handle_t h = SHOAL_HANDLE_NONE;
	char reply[16], *line;

	(void)state;
	rt_start(&r, "t-", "con-agent",
		 "[instance]\nworkers = 1\nplacement = none\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 8\n"
		 "[agent k]\ntype = crasher\nname = k\n",
		 NULL);
	rt_wait_ready(&r);
	rt_client_open(&cl, r.inst);
	assert_int_equal(shm_reg_lookup(cl.seg, SHM_NS_DEFAULT, "k", 1, &h, NULL), 0);
	/* each "fail" restarts it alone; past its intensity it is removed (calls then fail) */
	for (int i = 0; i < 16; i++)
		if (ipc_call(cl.seg, cl.w, cl.inbox, h, 1, "fail", 4, reply, sizeof(reply),
			     TIMEOUT_MS) == -ENOENT)
			break;
	rt_wait_err(&r, "failed past its restart intensity");
	rt_read_err(&r, buf, sizeof(buf));
	line = line_with(buf, "failed past its restart intensity");
	assert_stamped(line, r.inst);
	if (!strstr(line, "worker 0") || !strstr(line, "agent 'k' (crasher)"))
		fail_msg("the line: %s", line);
	free(line);
	rt_client_close(&cl);
	rt_stop(&r);
}

/*
 * The messages handled in the line with needle in the run's stdout: the status line's
 * "messages handled N", or the stop line's "N messages handled".
 */
static uint64_t handled_in(struct rt_run *r, const char *needle, char *line, size_t cap)
{
	char *l, *p;
	uint64_t n;

	rt_read_file(r->out, buf, sizeof(buf));
	l = line_with(buf, needle);
	assert_non_null(l);
	p = strstr(l, "messages handled");
	if (!p)
		fail_msg("no messages handled in: %s", l);
	if (p[16] == ' ') {
		p += 17;
	} else {
		for (p--; p > l && p[-1] >= '0' && p[-1] <= '9';)
			p--;
	}
	n = strtoull(p, NULL, 10);
	snprintf(line, cap, "%s", l);
	free(l);
	return n;
}

/*
 * Messages handled by an agent that is stopped stay counted in the status line, and an
 * orderly stop ends with a line that says so, with the totals.
 */
static void test_console_counters_and_stop_line(void **state)
{
	static const char *const spawn[] = {"spawn", "echo", "x1", "--worker", "1", NULL};
	static const char *const stop[] = {"stop", "x1", "--wait", NULL};
	struct rt_run r;
	struct rt_client cl;
	shoal_handle_t h = SHOAL_HANDLE_NONE;
	char out[4096], first[512], second[512], want[600], *l;
	uint64_t n1, n2, n3;
	unsigned long restarts;
	double secs;

	(void)state;
	rt_start(&r, "t-", "con-count", echo_config, NULL);
	rt_wait_ready(&r);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), spawn), 0);
	rt_client_open(&cl, r.inst);
	assert_int_equal(shm_reg_lookup(cl.seg, SHM_NS_DEFAULT, "x1", 2, &h, NULL), 0);
	/*
	 * The worker counts a message after its callback, so after the reply: the sixth reply
	 * comes once the fifth message is counted (one worker thread handles them in order).
	 */
	for (int i = 0; i < 6; i++)
		rt_expect_echo(&cl, h);
	assert_true(atomic_load(&shm_agent_at(cl.seg, shoal_handle_slot(h))->handled) >= 5);
	rt_client_close(&cl);
	/* SIGUSR1: a status line now */
	kill(r.pid, SIGUSR1);
	snprintf(want, sizeof(want), "shoal %s: workers", r.inst);
	rt_wait_out(&r, want);
	n1 = handled_in(&r, want, first, sizeof(first));
	if (n1 < 5)
		fail_msg("status line: %s", first);
	assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), stop), 0);
	kill(r.pid, SIGUSR1);
	/* the second status line follows the first */
	snprintf(want, sizeof(want), "%s\nshoal %s: workers", first, r.inst);
	rt_wait_out(&r, want);
	rt_read_file(r.out, buf, sizeof(buf));
	l = strstr(strstr(buf, first) + strlen(first) + 1, "shoal ");
	snprintf(second, sizeof(second), "%.*s", (int)(strchr(l, '\n') - l), l);
	n2 = handled_in(&r, second, second, sizeof(second));
	if (n2 < n1)
		fail_msg("messages handled went back from %" PRIu64 " to %" PRIu64, n1, n2);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_wait_exit(&r), 0);
	snprintf(want, sizeof(want), "shoal %s: stopped in order after ", r.inst);
	n3 = handled_in(&r, want, out, sizeof(out));
	assert_true(n3 >= n2);
	if (sscanf(out + strlen(want), "%lfs: %*u messages handled, %lu restarts", &secs,
		   &restarts) != 2 ||
	    secs <= 0 || restarts != 0)
		fail_msg("the stop line: %s", out);
	rt_cleanup(&r);
}

/* A poison message dropped and a hang kill: stamped lines naming the worker. */
static void test_console_poison_and_hang_lines(void **state)
{
	struct rt_run r;
	struct rt_client cl;
	shoal_handle_t h = SHOAL_HANDLE_NONE;
	char reply[8] = "", *line;

	(void)state;
	rt_start(&r, "t-", "con-poison",
		 "[instance]\nworkers = 1\nplacement = none\n"
		 "[restart]\nintensity = 10\nperiod = 30\nhang_timeout = 300ms\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
		 "[agent c]\ntype = crasher\nname = c\n",
		 NULL);
	rt_wait_ready(&r);
	rt_client_open(&cl, r.inst);
	assert_int_equal(shm_reg_lookup(cl.seg, SHM_NS_DEFAULT, "c", 1, &h, NULL), 0);
	assert_int_equal(ipc_send(cl.seg, h, cl.inbox, 1, 0, 0, "segv", 4, TIMEOUT_MS), 0);
	rt_wait_err(&r, "dropped a message");
	/* a callback that never returns: killed for the stale heartbeat, its call redelivered */
	assert_int_equal(
		ipc_call(cl.seg, cl.w, cl.inbox, h, 1, "hang", 4, reply, sizeof(reply), TIMEOUT_MS),
		4);
	rt_wait_err(&r, "killed for a hang (signal 9 (SIGKILL))");
	rt_read_err(&r, buf, sizeof(buf));
	line = line_with(buf, "dropped a message");
	assert_stamped(line, r.inst);
	if (!strstr(line, ": worker 0: agent 'c': "))
		fail_msg("the poison line: %s", line);
	free(line);
	line = line_with(buf, "no heartbeat for");
	assert_non_null(line);
	assert_stamped(line, r.inst);
	free(line);
	line = line_with(buf, "killed for a hang");
	assert_stamped(line, r.inst);
	free(line);
	rt_client_close(&cl);
	rt_stop(&r);
}

/* An agent whose callback fails is restarted alone: one stamped line names it, its type, the
 * worker and its restart count. */
static void test_console_agent_restart_line(void **state)
{
	struct rt_run r;
	struct rt_client cl;
	shoal_handle_t h = SHOAL_HANDLE_NONE;
	char *line;

	(void)state;
	rt_start(&r, "t-", "con-agent",
		 "[instance]\nworkers = 1\nplacement = none\n"
		 "[segment]\nmax_agents = 16\nregistry_capacity = 64\nmax_procs = 6\n"
		 "[agent c]\ntype = crasher\nname = c\n",
		 NULL);
	rt_wait_ready(&r);
	rt_client_open(&cl, r.inst);
	assert_int_equal(shm_reg_lookup(cl.seg, SHM_NS_DEFAULT, "c", 1, &h, NULL), 0);
	assert_int_equal(ipc_send(cl.seg, h, cl.inbox, 1, 0, 0, "fail", 4, TIMEOUT_MS), 0);
	rt_wait_err(&r, "agent 'c' (crasher) failed in a callback; restarting it from its last "
			"checkpoint (restart 1)");
	rt_read_err(&r, buf, sizeof(buf));
	line = line_with(buf, "failed in a callback");
	assert_stamped(line, r.inst);
	if (!strstr(line, ": worker 0: agent 'c'"))
		fail_msg("the agent restart line: %s", line);
	free(line);
	rt_client_close(&cl);
	rt_stop(&r);
}

/* Receive one datagram on fd within TIMEOUT_MS into out (NUL-terminated); false on none. */
static bool notify_recv(int fd, char *out, size_t cap)
{
	ssize_t n;

	if (!rt_fd_wait(fd, TIMEOUT_MS))
		return false;
	n = recv(fd, out, cap - 1, 0);
	if (n < 0)
		return false;
	out[n] = 0;
	return true;
}

/* The inodes of the sockets process pid holds open, into ino[] (at most cap); how many. */
static size_t socket_inodes(pid_t pid, unsigned long *ino, size_t cap)
{
	char dir[64], path[64 + 256], link[64];
	struct dirent *d;
	size_t n = 0;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	dp = opendir(dir);
	assert_non_null(dp);
	while ((d = readdir(dp)) && n < cap) {
		ssize_t len;

		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = 0;
		if (sscanf(link, "socket:[%lu]", &ino[n]) == 1)
			n++;
	}
	closedir(dp);
	return n;
}

/*
 * Under systemd (Type=notify): READY=1 with a STATUS= once ready, STOPPING=1 when the
 * orderly stop begins, on the datagram socket $NOTIFY_SOCKET names (here an abstract one).
 * (That the workers do not inherit it cannot be seen from outside: /proc/PID/environ of a
 * forked child shows the environment block its parent started with, not getenv()'s.)
 */
static void test_console_systemd_notify(void **state)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char name[64], msg[600];
	struct rt_run r;
	int fd;

	(void)state;
	snprintf(name, sizeof(name), "@shoal-test-notify-%d", (int)getpid());
	memcpy(a.sun_path + 1, name + 1, strlen(name) - 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
			 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	rt_start(&r, "t-", "con-notify", echo_config, NULL);
	unsetenv("NOTIFY_SOCKET");
	rt_wait_ready(&r);
	if (!notify_recv(fd, msg, sizeof(msg)))
		fail_msg("no READY=1 from the supervisor on %s", name);
	if (strncmp(msg, "READY=1\n", 8) || !strstr(msg, "STATUS=ready: 2 workers"))
		fail_msg("the first notification: '%s'", msg);
	/* no worker holds the supervisor's notify socket: a plugin could speak for the
	 * instance through it (workers are forked without exec: close-on-exec is no help) */
	{
		unsigned long sup[64], wrk[64];
		size_t nsup = socket_inodes(r.pid, sup, 64), nwrk;
		struct shm_seg *seg = attach(&r);
		pid_t w = rt_slot_pid(seg, 1);

		assert_true(nsup >= 1);
		assert_true(w > 0);
		nwrk = socket_inodes(w, wrk, 64);
		for (size_t i = 0; i < nwrk; i++)
			for (size_t k = 0; k < nsup; k++)
				if (wrk[i] == sup[k])
					fail_msg(
						"worker pid %d holds the supervisor's socket [%lu]",
						(int)w, wrk[i]);
		shm_seg_detach(seg);
	}
	kill(r.pid, SIGTERM);
	do {
		if (!notify_recv(fd, msg, sizeof(msg)))
			fail_msg("no STOPPING=1 after SIGTERM");
	} while (!strstr(msg, "STOPPING=1"));
	assert_int_equal(rt_wait_exit(&r), 0);
	close(fd);
	rt_cleanup(&r);
}

/* A NOTIFY_SOCKET that is no socket path is said on stderr, and the run goes on. */
static void test_console_systemd_notify_bad(void **state)
{
	struct rt_run r;

	(void)state;
	assert_int_equal(setenv("NOTIFY_SOCKET", "relative/path", 1), 0);
	rt_start(&r, "t-", "con-notify-bad", echo_config, NULL);
	unsetenv("NOTIFY_SOCKET");
	rt_wait_ready(&r);
	rt_wait_err(&r, "NOTIFY_SOCKET='relative/path' is not a socket path");
	rt_stop(&r);
}

/*
 * Without --instance, `shoal run` makes the instance $SHOAL_INSTANCE names, as every other
 * command finds it, even when the config names another; a bad name there is refused (exit 2)
 * naming the variable.
 */
static void test_console_instance_from_env(void **state)
{
	const char *bin = rt_shoal_bin();
	char inst[48], cfg[80], out[512];
	struct shm_seg *seg;
	int pfd[2], status, pidfd;
	pid_t pid;
	FILE *f;

	(void)state;
	snprintf(inst, sizeof(inst), "t-envname-%d", (int)getpid());
	snprintf(cfg, sizeof(cfg), "/tmp/shoal-%s.ini", inst);
	shm_seg_unlink(inst);
	f = fopen(cfg, "w");
	assert_non_null(f);
	fputs("[instance]\nname = t-named-in-config\nworkers = 1\nplacement = none\n", f);
	fclose(f);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char fdarg[16];

		close(pfd[0]);
		snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
		setenv("SHOAL_INSTANCE", inst, 1);
		execl(bin, bin, "run", cfg, "--quiet", "--ready-fd", fdarg, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	pidfd = rt_pidfd_open(pid);
	assert_true(pidfd >= 0);
	assert_true(rt_fd_wait(pfd[0], TIMEOUT_MS));
	assert_int_equal(read(pfd[0], out, sizeof(out)), 6);
	close(pfd[0]);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &seg, out, sizeof(out)), 0);
	shm_seg_detach(seg);
	kill(pid, SIGTERM);
	assert_true(rt_fd_wait(pidfd, TIMEOUT_MS));
	close(pidfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* a name that is no instance name */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int e = open("/dev/null", O_WRONLY);

		dup2(e, 2);
		setenv("SHOAL_INSTANCE", "bad/name", 1);
		execl(bin, bin, "run", cfg, "--quiet", (char *)NULL);
		_exit(127);
	}
	pidfd = rt_pidfd_open(pid);
	assert_true(pidfd >= 0);
	assert_true(rt_fd_wait(pidfd, TIMEOUT_MS));
	close(pidfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2);
	unlink(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_console_banner_demo, rt_teardown),
		cmocka_unit_test_teardown(test_console_banner_other_config, rt_teardown),
		cmocka_unit_test_teardown(test_console_worker_exit_and_restart, rt_teardown),
		cmocka_unit_test_teardown(test_console_json_lines, rt_teardown),
		cmocka_unit_test_teardown(test_console_quiet, rt_teardown),
		cmocka_unit_test_teardown(test_console_intensity_under_quiet, rt_teardown),
		cmocka_unit_test_teardown(test_console_spawn_stop_lines, rt_teardown),
		cmocka_unit_test_teardown(test_console_agent_removed, rt_teardown),
		cmocka_unit_test_teardown(test_console_counters_and_stop_line, rt_teardown),
		cmocka_unit_test_teardown(test_console_poison_and_hang_lines, rt_teardown),
		cmocka_unit_test_teardown(test_console_agent_restart_line, rt_teardown),
		cmocka_unit_test_teardown(test_console_systemd_notify, rt_teardown),
		cmocka_unit_test_teardown(test_console_systemd_notify_bad, rt_teardown),
		cmocka_unit_test(test_console_instance_from_env),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
