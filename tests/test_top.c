/* test_top: shoal top driven in a real terminal (tmux) against a running instance. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"
#include "tests/run_test_util.h"

static char sock[64]; /* our own tmux server: -L sock */
static char fifo[96]; /* top writes a byte per frame drawn here (--frames-file) */

/* Run tmux -L sock ARGS...; its exit status. Output (capture-pane) into out if given. */
static int tmux(char *out, size_t cap, const char *const *args)
{
	const char *argv[24];
	int p[2] = {-1, -1}, st, n = 0;
	size_t got = 0;
	pid_t pid;

	argv[n++] = "tmux";
	argv[n++] = "-L";
	argv[n++] = sock;
	for (; *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	/* only a capture's output is read: a server tmux starts keeps what it inherits open */
	if (out)
		assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(out ? p[1] : null, 1);
		dup2(null, 2);
		if (out)
			close(p[0]);
		execvp("tmux", (char *const *)argv);
		_exit(127);
	}
	if (out) {
		close(p[1]);
		for (;;) {
			ssize_t k;

			assert_true(rt_fd_wait(p[0], TIMEOUT_MS));
			k = read(p[0], out + got, cap - 1 - got);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		out[got] = 0;
		close(p[0]);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Drain the frames drawn so far, then wait for `n` more. */
static void frames(int fd, int n)
{
	char b[256];

	while (read(fd, b, sizeof(b)) > 0) {
	}
	while (n > 0) {
		ssize_t k;

		assert_true(rt_fd_wait(fd, TIMEOUT_MS));
		k = read(fd, b, sizeof(b));
		assert_true(k > 0);
		n -= (int)k;
	}
}

/* The screen now (after two fresh frames: the key's and a whole one after it). */
static void screen(int fd, char *out, size_t cap)
{
	const char *cap_args[] = {"capture-pane", "-p", "-t", "top", NULL};

	frames(fd, 2);
	assert_int_equal(tmux(out, cap, cap_args), 0);
}

static void keys(const char *k)
{
	const char *args[] = {"send-keys", "-t", "top", k, NULL};

	assert_int_equal(tmux(NULL, 0, args), 0);
}

static void test_top_in_tmux(void **state)
{
	static const char cfg[] = "[instance]\nworkers = 2\nplacement = none\n"
				  "[agent e]\ntype = echo\ncount = 3\nname = e%u\n"
				  "[pool p]\ntype = echo\nsize = 2\n";
	const char *kill_args[] = {"kill-server", NULL};
	char cmd[512], out[8192];
	struct rt_run r;
	char *e0, *e2;
	int fd;

	(void)state;
	if (system("command -v tmux >/dev/null 2>&1") != 0)
		skip_because("tmux is not installed (scripts/deps.sh installs it)");
	snprintf(sock, sizeof(sock), "shoal-test-%d", (int)getpid());
	snprintf(fifo, sizeof(fifo), "/tmp/shoal-top-%d.fifo", (int)getpid());
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	rt_start(&r, "t-top", "tmux", cfg, NULL);
	rt_wait_ready(&r);
	snprintf(cmd, sizeof(cmd), "%s top --instance %s --interval 100 --frames-file %s",
		 rt_shoal_bin(), r.inst, fifo);
	{
		const char *args[] = {"new-session", "-d", "-s", "top", "-x",
				      "80",	     "-y", "24", cmd,	NULL};

		assert_int_equal(tmux(NULL, 0, args), 0);
	}
	/* the workers view: both workers and the supervisor, up */
	screen(fd, out, sizeof(out));
	assert_non_null(strstr(out, "workers 2/2 up"));
	assert_non_null(strstr(out, "supervisor"));
	assert_non_null(strstr(out, "worker "));
	/* the agents */
	keys("a");
	screen(fd, out, sizeof(out));
	assert_non_null(strstr(out, "agents |"));
	assert_non_null(strstr(out, "e0"));
	assert_non_null(strstr(out, "p.1"));
	/* sorted by name: rate, queued, handled, restarts, name */
	for (int i = 0; i < 4; i++)
		keys("s");
	screen(fd, out, sizeof(out));
	assert_non_null(strstr(out, "sort (name)"));
	e0 = strstr(out, " e0 ");
	e2 = strstr(out, " e2 ");
	assert_true(e0 && e2 && e0 < e2);
	/* a filter */
	keys("/");
	keys("e1");
	keys("Enter");
	screen(fd, out, sizeof(out));
	assert_non_null(strstr(out, " e1 "));
	assert_null(strstr(out, " e0 "));
	assert_non_null(strstr(out, "filter (e1)"));
	/* the operations view: every operation, the sample said */
	keys("o");
	screen(fd, out, sizeof(out));
	assert_non_null(strstr(out, "operations |"));
	assert_non_null(strstr(out, "percentiles from a 1/64 sample"));
	assert_non_null(strstr(out, "pool_checkout"));
	/* the events view: the ring's events, newest first (the agents' spawns), then exits */
	keys("e");
	screen(fd, out, sizeof(out));
	if (!strstr(out, "events: ") || !strstr(out, "agent-spawn") || !strstr(out, "'e0'"))
		fail_msg("no events view with e0's spawn:\n%s", out);
	/* the nodes view: this instance is no Erlang node ([dist] gives it one) */
	keys("n");
	screen(fd, out, sizeof(out));
	if (!strstr(out, "nodes |") || !strstr(out, "not a node: the instance runs no"))
		fail_msg("no nodes view saying the instance is no node:\n%s", out);
	/* the pools view */
	keys("p");
	screen(fd, out, sizeof(out));
	assert_non_null(strstr(out, "2/2+0"));
	/* the instance stops: said so, the last screen kept */
	rt_stop(&r);
	screen(fd, out, sizeof(out));
	assert_non_null(strstr(out, "the instance is stopped"));
	assert_non_null(strstr(out, "2/2+0"));
	/* q quits: top closes its end of the FIFO */
	keys("q");
	{
		char b[256];
		ssize_t k;

		do {
			assert_true(rt_fd_wait(fd, TIMEOUT_MS));
			k = read(fd, b, sizeof(b));
		} while (k > 0);
		assert_int_equal(k, 0);
	}
	close(fd);
	unlink(fifo);
	tmux(NULL, 0, kill_args);
}

/* Without a terminal: a clear error, exit 2. */
static void test_top_needs_terminal(void **state)
{
	const char *args[] = {"top", NULL};
	char out[512];

	(void)state;
	assert_int_equal(rt_run_tool("nosuch", out, sizeof(out), args), 2);
	assert_non_null(strstr(out, "needs a terminal"));
}

static int teardown(void **state)
{
	const char *kill_args[] = {"kill-server", NULL};

	if (sock[0])
		tmux(NULL, 0, kill_args);
	if (fifo[0])
		unlink(fifo);
	return rt_teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_top_in_tmux, teardown),
		cmocka_unit_test(test_top_needs_terminal),
	};

	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
