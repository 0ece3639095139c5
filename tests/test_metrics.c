/*
 * test_metrics: `shoal metrics` against a running instance: --once parsed line by line as the
 * Prometheus text format (every sample in a family with HELP and TYPE, names, counters'
 * _total, cumulative histogram buckets ending at +Inf == _count) and checked against what
 * the test did; --listen scraped over a plain socket; --textfile written atomically; the
 * error cases exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"
#include "tests/support.h"
#include "tests/run_test_util.h"
#include "shm/hist.h"
#include "shm/registry.h"
#include "shm/shm.h"

#define OUT_CAP (1u << 20)
#define CALLS	7

static const char echo_cfg[] = "[instance]\nworkers = 2\nplacement = none\n"
			       "[agent e]\ntype = echo\ncount = 2\nname = e%u\n";

static char inst[64];

static int setup(void **state)
{
	(void)state;
	snprintf(inst, sizeof(inst), "t-metrics-%d", (int)getpid());
	shm_seg_unlink(inst);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shm_seg_unlink(inst);
	return 0;
}

static bool is_name(const char *s, size_t n, bool colon)
{
	if (!n || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_' ||
		    (colon && s[0] == ':')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || (colon && s[i] == ':')))
			return false;
	return true;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

/* One histogram series being checked: its labels without le, its last bucket. */
struct hseries {
	char key[400];
	double last_le, last;
	bool inf;
	double inf_count;
};

/*
 * Check text as an exposition (format 0.0.4) line by line; fails the test naming the line.
 * Returns the number of sample lines.
 */
static int check_exposition(char *text)
{
	char family[128] = "", type[16] = "", help_of[128] = "";
	static char seen[512][128];
	static struct hseries hs[64];
	int nseen = 0, nhs = 0, samples = 0, lineno = 0;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], key[256], le[32] = "";
		const char *p = line, *v;
		size_t n;
		double value;
		char *end;

		lineno++;
		if (!strncmp(line, "# HELP ", 7)) {
			n = strcspn(line + 7, " ");
			if (!is_name(line + 7, n, true) || !line[7 + n] || !line[8 + n])
				fail_msg("line %d: a HELP without a name and text: %s", lineno,
					 line);
			snprintf(help_of, sizeof(help_of), "%.*s", (int)n, line + 7);
			for (int i = 0; i < nseen; i++)
				if (!strcmp(seen[i], help_of))
					fail_msg("line %d: family %s described twice", lineno,
						 help_of);
			assert_true(nseen < 512);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", help_of);
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			n = strcspn(line + 7, " ");
			snprintf(family, sizeof(family), "%.*s", (int)n, line + 7);
			if (strcmp(family, help_of))
				fail_msg("line %d: TYPE of %s without its HELP just before", lineno,
					 family);
			snprintf(type, sizeof(type), "%s", line + 8 + n);
			if (strcmp(type, "counter") && strcmp(type, "gauge") &&
			    strcmp(type, "histogram"))
				fail_msg("line %d: type '%s'", lineno, type);
			if (!strcmp(type, "counter") && !ends_with(family, n, "_total"))
				fail_msg("line %d: counter %s does not end in _total", lineno,
					 family);
			continue;
		}
		if (line[0] == '#')
			fail_msg("line %d: a comment shoal does not write: %s", lineno, line);
		/* a sample: name, labels, value */
		n = strcspn(p, "{ ");
		if (!is_name(p, n, true))
			fail_msg("line %d: bad metric name: %s", lineno, line);
		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		if (!family[0])
			fail_msg("line %d: a sample before any HELP and TYPE: %s", lineno, line);
		if (strcmp(name, family) &&
		    !(!strcmp(type, "histogram") && !strncmp(name, family, strlen(family)) &&
		      (!strcmp(name + strlen(family), "_bucket") ||
		       !strcmp(name + strlen(family), "_sum") ||
		       !strcmp(name + strlen(family), "_count"))))
			fail_msg("line %d: sample %s is not of family %s (its HELP and TYPE)",
				 lineno, name, family);
		p += n;
		key[0] = 0;
		if (*p == '{') {
			size_t k = 0;

			p++;
			while (*p != '}') {
				const char *ln = p, *val;

				n = strcspn(p, "=");
				if (!is_name(ln, n, false) || p[n] != '=' || p[n + 1] != '"')
					fail_msg("line %d: bad label: %s", lineno, line);
				p += n + 2;
				val = p;
				while (*p && *p != '"')
					p += *p == '\\' && p[1] ? 2 : 1;
				if (*p != '"')
					fail_msg("line %d: unterminated label value", lineno);
				if (n == 2 && !memcmp(ln, "le", 2))
					snprintf(le, sizeof(le), "%.*s", (int)(p - val), val);
				else
					k += (size_t)snprintf(key + k, sizeof(key) - k, "%.*s;",
							      (int)(p - ln), ln);
				p++;
				if (*p == ',')
					p++;
				else if (*p != '}')
					fail_msg("line %d: labels not separated by ','", lineno);
			}
			p++;
		}
		if (*p != ' ')
			fail_msg("line %d: no space before the value", lineno);
		v = p + 1;
		value = strtod(v, &end);
		if (end == v || *end)
			fail_msg("line %d: value '%s' is not a number", lineno, v);
		samples++;
		if (!strcmp(type, "counter") && value < 0)
			fail_msg("line %d: a negative counter", lineno);
		if (strcmp(type, "histogram"))
			continue;
		/* histograms: buckets cumulative, le ascending, +Inf last and equal to _count */
		{
			char full[256 + 128];
			struct hseries *h = NULL;

			snprintf(full, sizeof(full), "%s|%s", family, key);
			for (int i = 0; i < nhs; i++)
				if (!strcmp(hs[i].key, full))
					h = &hs[i];
			if (!h) {
				assert_true(nhs < 64);
				h = &hs[nhs++];
				memset(h, 0, sizeof(*h));
				snprintf(h->key, sizeof(h->key), "%s", full);
				h->last_le = -1;
			}
			if (ends_with(name, strlen(name), "_bucket")) {
				double b = strtod(le, &end);

				if (!le[0] || *end || h->inf)
					fail_msg("line %d: bucket le='%s' after +Inf or not a "
						 "number",
						 lineno, le);
				if (b <= h->last_le)
					fail_msg("line %d: le %s not above the last one", lineno,
						 le);
				if (value < h->last)
					fail_msg("line %d: bucket %s below the one before (%g < "
						 "%g): "
						 "not cumulative",
						 lineno, le, value, h->last);
				h->last_le = b;
				h->last = value;
				if (isinf(b)) {
					h->inf = true;
					h->inf_count = value;
				}
			} else if (ends_with(name, strlen(name), "_count")) {
				if (!h->inf || h->inf_count != value)
					fail_msg("line %d: %s: +Inf bucket %g, _count %g", lineno,
						 h->key, h->inf_count, value);
			}
		}
	}
	for (int i = 0; i < nhs; i++)
		if (!hs[i].inf)
			fail_msg("histogram %s has no +Inf bucket", hs[i].key);
	return samples;
}

/* The value of the sample line starting with `series` (name and labels exactly), or NAN. */
static double value_of(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, series, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return NAN;
}

/* Check a copy of text (check_exposition() cuts it into lines). */
static int check_copy(const char *text)
{
	char *copy = strdup(text);
	int n;

	assert_non_null(copy);
	n = check_exposition(copy);
	free(copy);
	return n;
}

/* promtool check metrics on path when promtool is on PATH; says so when it is not. */
static void promtool_check(const char *path)
{
	char cmd[512];
	int st;

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		/* a TAP comment: meson shows it in the log */
		printf("# promtool is not installed: the exposition is checked by this test's "
		       "parser only\n");
		fflush(stdout);
		return;
	}
	snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
	st = system(cmd);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Start an instance of echo agents; N calls to e0 answered; e0's worker killed, restarted. */
/* Whether the supervisor has recorded a restart in its latency histogram. */
static bool restart_recorded(const struct shm_seg *seg)
{
	static struct shm_hist_snap s;

	return shm_hist_collect(seg, SHM_HIST_RESTART, &s) == 0 && s.count >= 1;
}

static void start_and_exercise(struct rt_run *r, uint32_t *windex)
{
	struct rt_client c;
	shoal_handle_t h;
	uint32_t host;
	pid_t victim;

	rt_start(r, "t-metrics", "m", echo_cfg, NULL);
	rt_wait_ready(r);
	rt_client_open(&c, r->inst);
	assert_int_equal(shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "e0", 2, &h, NULL), 0);
	for (int k = 0; k < CALLS; k++)
		rt_expect_echo(&c, h);
	host = atomic_load(&shm_agent_at(c.seg, shoal_handle_slot(h))->worker) - 1;
	*windex = atomic_load(&shm_proc_at(c.seg, host)->windex);
	victim = rt_slot_pid(c.seg, host);
	assert_true(victim > 0);
	kill(victim, SIGKILL);
	/* and the supervisor's restart record, which it makes after the worker runs again
	 * (under ASan that came after a read of the exposition) */
	WAIT_FOR(c.seg, atomic_load(&shm_proc_at(c.seg, host)->restarts) >= 1 &&
				atomic_load(&shm_proc_at(c.seg, host)->state) == SHM_PROC_RUNNING &&
				restart_recorded(c.seg));
	rt_client_close(&c);
}

/* What the exercise must show in any exposition of it. */
static void check_values(const char *out, uint32_t windex)
{
	char series[128];

	assert_true(check_copy(out) > 100);
	assert_true(value_of(out, "shoal_up") == 1);
	assert_true(value_of(out, "shoal_instance_state{state=\"running\"}") == 1);
	assert_true(value_of(out, "shoal_operation_latency_seconds_count{operation=\"call\"}") >=
		    CALLS);
	assert_true(value_of(out, "shoal_operation_latency_sample_rate{operation=\"call\"}") == 1);
	assert_true(value_of(out, "shoal_operation_latency_seconds_count{operation=\"restart\"}") ==
		    1);
	assert_true(value_of(out, "shoal_operation_latency_seconds_sum{operation=\"call\"}") > 0);
	/* the buckets hold the samples: every call under 10 s, none under 10 ns */
	assert_true(value_of(out, "shoal_operation_latency_seconds_bucket{operation=\"call\","
				  "le=\"10\"}") ==
		    value_of(out, "shoal_operation_latency_seconds_count{operation=\"call\"}"));
	assert_true(value_of(out, "shoal_operation_latency_seconds_bucket{operation=\"call\","
				  "le=\"1e-08\"}") == 0);
	snprintf(series, sizeof(series), "shoal_worker_restarts_total{worker=\"%u\"}", windex);
	assert_true(value_of(out, series) == 1);
	snprintf(series, sizeof(series), "shoal_worker_restarts_total{worker=\"%u\"}", 1 - windex);
	assert_true(value_of(out, series) == 0);
	snprintf(series, sizeof(series), "shoal_worker_resident_memory_bytes{worker=\"%u\"}",
		 windex);
	assert_true(value_of(out, series) > 0);
	assert_true(value_of(out, "shoal_exits_total") >= 1);
	assert_true(value_of(out, "shoal_exits_recent{reason=\"signal\"}") >= 1);
	/* two echo agents and the supervisor's inbox */
	assert_true(value_of(out, "shoal_agents{state=\"running\"}") >= 2);
	assert_true(value_of(out, "shoal_registry_entries") >= 2);
	assert_true(value_of(out, "shoal_mailbox_depth_total") >= 0);
	assert_true(value_of(out, "shoal_events_appended_total") >= 3);
}

/* --once: the exposition on stdout, parsed, and what the test did in it. */
static void test_metrics_once_running(void **state)
{
	const char *args[] = {"metrics", "--once", NULL};
	char *out = malloc(OUT_CAP);
	struct rt_run r;
	uint32_t windex;

	(void)state;
	assert_non_null(out);
	start_and_exercise(&r, &windex);
	assert_int_equal(rt_run_tool(r.inst, out, OUT_CAP, args), 0);
	check_values(out, windex);
	/* the exposition itself, not only the values: a family per HELP, in order */
	assert_non_null(strstr(out, "# TYPE shoal_operation_latency_seconds histogram\n"));
	assert_non_null(strstr(out, "shoal_operation_latency_seconds_bucket{operation=\"call\","
				    "le=\"+Inf\"}"));
	rt_stop(&r);
	free(out);
}

/* Read the server's first line ("listening on http://ADDR:PORT/metrics") with a timeout. */
static int wait_listening(int fd)
{
	char line[256];
	size_t got = 0;
	const char *p;

	while (!memchr(line, '\n', got)) {
		ssize_t k;

		if (!rt_fd_wait(fd, TIMEOUT_MS))
			fail_msg("shoal metrics --listen printed no line in %d ms", TIMEOUT_MS);
		k = read(fd, line + got, sizeof(line) - 1 - got);
		if (k <= 0)
			fail_msg("shoal metrics --listen exited before listening: %.*s", (int)got,
				 line);
		got += (size_t)k;
	}
	line[got] = 0;
	p = strstr(line, "listening on http://127.0.0.1:");
	if (!p)
		fail_msg("not the listening line: %s", line);
	return atoi(p + strlen("listening on http://127.0.0.1:"));
}

/* Send raw bytes to 127.0.0.1:port, read the answer until the server closes. */
static void http_raw(int port, const char *req, char *out, size_t cap)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	size_t got = 0;

	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(write(s, req, strlen(req)), (ssize_t)strlen(req));
	for (;;) {
		ssize_t k;

		if (!rt_fd_wait(s, TIMEOUT_MS))
			fail_msg("no answer from the metrics server in %d ms", TIMEOUT_MS);
		k = read(s, out + got, cap - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	out[got] = 0;
	close(s);
}

/* The status code of an answer, its body in *body. */
static int http_get(int port, const char *path, char *out, size_t cap, char **body)
{
	char req[128];
	char *b = NULL;

	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	http_raw(port, req, out, cap);
	if (strncmp(out, "HTTP/1.", 7) || !(b = strstr(out, "\r\n\r\n")))
		fail_msg("not an HTTP answer: %.200s", out);
	*body = b + 4;
	return atoi(out + 9);
}

/*
 * --listen on 127.0.0.1 port 0: the scrape is the --once exposition over HTTP (200, its
 * content type), another path is 404, a malformed request does not stop the server, and a
 * stopped instance answers 200 with shoal_up 0; SIGTERM ends it with 0.
 */
static void test_metrics_listen(void **state)
{
	const char *args[] = {"metrics", "--listen", "127.0.0.1:0", NULL};
	char *out = malloc(OUT_CAP), *body, rest[256];
	struct rt_run r;
	uint32_t windex;
	int fd, port;
	pid_t srv;

	(void)state;
	assert_non_null(out);
	start_and_exercise(&r, &windex);
	srv = rt_tool_start(r.inst, args, &fd);
	port = wait_listening(fd);
	assert_true(port > 0);
	assert_int_equal(http_get(port, "/metrics", out, OUT_CAP, &body), 200);
	assert_non_null(strstr(out, "Content-Type: text/plain; version=0.0.4"));
	check_values(body, windex);
	assert_int_equal(http_get(port, "/nope", out, OUT_CAP, &body), 404);
	/* garbage, then a request line without a version: the server answers or hangs up,
	 * and goes on serving */
	http_raw(port, "\x01\xff not http at all\r\n\r\n", out, OUT_CAP);
	http_raw(port, "GET\r\n\r\n", out, OUT_CAP);
	assert_int_equal(http_get(port, "/metrics", out, OUT_CAP, &body), 200);
	/* the instance stops: the last numbers, and shoal_up 0 */
	rt_stop(&r);
	assert_int_equal(http_get(port, "/metrics", out, OUT_CAP, &body), 200);
	check_copy(body);
	assert_true(value_of(body, "shoal_up") == 0);
	assert_true(value_of(body, "shoal_instance_state{state=\"stopped\"}") == 1);
	kill(srv, SIGTERM);
	assert_int_equal(rt_tool_finish(srv, fd, rest, sizeof(rest)), 0);
	free(out);
}

/*
 * --listen outlives its instance: stopped, it answers shoal_up 0; started again under the
 * same name, the next scrape is of the new instance (up, no restarts), not of the old
 * segment it had mapped.
 */
static void test_metrics_listen_follows_restart(void **state)
{
	const char *args[] = {"metrics", "--listen", "127.0.0.1:0", NULL};
	char *out = malloc(OUT_CAP), *body, rest[256], series[128];
	struct rt_run r;
	uint32_t windex;
	int fd, port;
	pid_t srv;

	(void)state;
	assert_non_null(out);
	start_and_exercise(&r, &windex);
	snprintf(series, sizeof(series), "shoal_worker_restarts_total{worker=\"%u\"}", windex);
	srv = rt_tool_start(r.inst, args, &fd);
	port = wait_listening(fd);
	assert_int_equal(http_get(port, "/metrics", out, OUT_CAP, &body), 200);
	assert_true(value_of(body, series) == 1);
	rt_stop(&r);
	assert_int_equal(http_get(port, "/metrics", out, OUT_CAP, &body), 200);
	assert_true(value_of(body, "shoal_up") == 0);
	/* the same name again (rt_start names it after the test's pid) */
	rt_start(&r, "t-metrics", "m", echo_cfg, NULL);
	rt_wait_ready(&r);
	assert_int_equal(http_get(port, "/metrics", out, OUT_CAP, &body), 200);
	check_copy(body);
	assert_true(value_of(body, "shoal_up") == 1);
	assert_true(value_of(body, series) == 0);
	assert_true(value_of(body, "shoal_operation_latency_seconds_count{operation=\"call\"}") ==
		    0);
	rt_stop(&r);
	kill(srv, SIGTERM);
	assert_int_equal(rt_tool_finish(srv, fd, rest, sizeof(rest)), 0);
	free(out);
}

static void read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t k;

	assert_true(fd >= 0);
	k = read(fd, buf, cap - 1);
	assert_true(k >= 0);
	buf[k] = 0;
	close(fd);
}

/*
 * --textfile: the file is replaced by a rename (a hard link to the old file keeps the old
 * content; the inode changes), parses, and no PATH.tmp is left; --follow rewrites it (two
 * renames seen by inotify) until SIGTERM.
 */
static void test_metrics_textfile(void **state)
{
	char dir[] = "/tmp/t-metrics-XXXXXX", path[64], link_path[64], tmp[80], rest[256];
	char *out = malloc(OUT_CAP);
	const char *args[] = {"metrics", "--textfile", path, NULL};
	const char *follow[] = {"metrics", "--textfile", path, "--follow", "--interval", "1", NULL};
	struct stat before, after;
	struct rt_run r;
	uint32_t windex;
	int fd, in, renames = 0;
	pid_t srv;

	(void)state;
	assert_non_null(out);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/shoal.prom", dir);
	snprintf(link_path, sizeof(link_path), "%s/old.prom", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	start_and_exercise(&r, &windex);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old\n", 4), 4);
	close(fd);
	assert_int_equal(link(path, link_path), 0);
	assert_int_equal(stat(path, &before), 0);

	assert_int_equal(rt_run_tool(r.inst, out, OUT_CAP, args), 0);
	assert_int_equal(stat(path, &after), 0);
	assert_true(after.st_ino != before.st_ino);
	read_file(link_path, out, OUT_CAP);
	assert_string_equal(out, "old\n");
	assert_int_equal(access(tmp, F_OK), -1);
	read_file(path, out, OUT_CAP);
	check_values(out, windex);
	promtool_check(path);

	/* --follow: each write a rename into the directory */
	in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	assert_true(in >= 0);
	assert_true(inotify_add_watch(in, dir, IN_MOVED_TO) >= 0);
	srv = rt_tool_start(r.inst, follow, &fd);
	while (renames < 2) {
		char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t k;

		if (!rt_fd_wait(in, TIMEOUT_MS))
			fail_msg("--follow wrote %d times in %d ms, not 2", renames, TIMEOUT_MS);
		k = read(in, ev, sizeof(ev));
		for (ssize_t off = 0; k > 0 && off < k;) {
			const struct inotify_event *e = (const void *)(ev + off);

			renames += e->len && !strcmp(e->name, "shoal.prom");
			off += (ssize_t)(sizeof(*e) + e->len);
		}
	}
	kill(srv, SIGTERM);
	assert_int_equal(rt_tool_finish(srv, fd, rest, sizeof(rest)), 0);
	close(in);
	read_file(path, out, OUT_CAP);
	check_values(out, windex);
	assert_int_equal(access(tmp, F_OK), -1);
	rt_stop(&r);
	unlink(path);
	unlink(link_path);
	rmdir(dir);
	free(out);
}

/*
 * Errors exit 2 with a sentence: no mode, a bad --listen, an unknown instance, another
 * layout version, a truncated segment.
 */
static void test_metrics_errors(void **state)
{
	const char *none[] = {"metrics", NULL},
		   *two[] = {"metrics", "--once", "--textfile", "x", NULL};
	const char *bad_listen[] = {"metrics", "--listen", "localhost", NULL};
	const char *lone_interval[] = {"metrics", "--once", "--interval", "5", NULL};
	const char *once[] = {"metrics", "--once", NULL};
	char *out = malloc(OUT_CAP), path[128];
	struct shm_cfg cfg;
	struct shm_seg *seg;

	(void)state;
	assert_non_null(out);
	assert_int_equal(rt_run_tool(inst, out, OUT_CAP, none), 2);
	assert_non_null(strstr(out, "give one of --listen, --textfile or --once"));
	assert_int_equal(rt_run_tool(inst, out, OUT_CAP, two), 2);
	assert_int_equal(rt_run_tool(inst, out, OUT_CAP, bad_listen), 2);
	assert_non_null(strstr(out, "ADDR:PORT"));
	assert_int_equal(rt_run_tool(inst, out, OUT_CAP, lone_interval), 2);
	assert_non_null(strstr(out, "--interval goes with --textfile PATH --follow"));
	/* no such instance */
	assert_int_equal(rt_run_tool(inst, out, OUT_CAP, once), 2);
	assert_non_null(strstr(out, inst));
	/* another layout version */
	shm_cfg_default(&cfg);
	cfg.max_procs = 8;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	seg = ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
	assert_int_equal(rt_run_tool(inst, out, OUT_CAP, once), 0);
	check_copy(strstr(out, "# HELP"));
	shm_hdr(seg)->layout_major = SHM_LAYOUT_MAJOR + 1;
	assert_int_equal(rt_run_tool(inst, out, OUT_CAP, once), 2);
	assert_non_null(strstr(out, "layout"));
	shm_hdr(seg)->layout_major = SHM_LAYOUT_MAJOR;
	/* truncated */
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s", inst);
	assert_int_equal(truncate(path, 2 * SHM_HDR_SIZE), 0);
	assert_int_equal(rt_run_tool(inst, out, OUT_CAP, once), 2);
	assert_non_null(strstr(out, "truncated"));
	ts_seg_drop(seg, inst);
	free(out);
}

/*
 * --listen over a segment truncated under it: the scrape answers 503 with the reason (the
 * fault is caught, not a SIGBUS), and the server goes on answering.
 */
static void test_metrics_listen_truncated(void **state)
{
	const char *args[] = {"metrics", "--listen", "127.0.0.1:0", NULL};
	char *out = malloc(OUT_CAP), *body, rest[256], path[128];
	struct shm_cfg cfg;
	struct shm_seg *seg;
	int fd, port;
	pid_t srv;

	(void)state;
	assert_non_null(out);
	shm_cfg_default(&cfg);
	cfg.max_procs = 8;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	seg = ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
	srv = rt_tool_start(inst, args, &fd);
	port = wait_listening(fd);
	assert_int_equal(http_get(port, "/metrics", out, OUT_CAP, &body), 200);
	check_copy(body);
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s", inst);
	assert_int_equal(truncate(path, 2 * SHM_HDR_SIZE), 0);
	assert_int_equal(http_get(port, "/metrics", out, OUT_CAP, &body), 503);
	assert_non_null(strstr(body, "truncated"));
	assert_int_equal(http_get(port, "/nope", out, OUT_CAP, &body), 404);
	kill(srv, SIGTERM);
	assert_int_equal(rt_tool_finish(srv, fd, rest, sizeof(rest)), 0);
	ts_seg_drop(seg, inst);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_metrics_once_running, rt_teardown),
		cmocka_unit_test_teardown(test_metrics_listen, rt_teardown),
		cmocka_unit_test_teardown(test_metrics_listen_follows_restart, rt_teardown),
		cmocka_unit_test_teardown(test_metrics_textfile, rt_teardown),
		cmocka_unit_test_setup_teardown(test_metrics_listen_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_errors, setup, teardown),
	};

	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
