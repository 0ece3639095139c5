/* test_event: the event ring (shm/event.c): wrap-around, concurrent writers, dead writers. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/skip.h"
#include "tests/support.h"

#include "shm/event.h"

#define TIMEOUT_MS 15000
#include "tests/run_test_util.h"

static char inst[64];

static int setup(void **state)
{
	(void)state;
	snprintf(inst, sizeof(inst), "test-event-%d", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shm_seg_unlink(inst);
	return 0;
}

/* A segment with an event ring of `events` records, and a process slot in it. */
static struct shm_seg *make(uint32_t events)
{
	struct shm_cfg cfg;

	shm_cfg_default(&cfg);
	cfg.max_procs = 16;
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	cfg.max_monitors = 16;
	cfg.max_vars = 16;
	cfg.max_subs = 16;
	cfg.events = events;
	return ts_seg_make(inst, &cfg, SHM_ROLE_CLIENT);
}

/* Append an event of kind with worker w, code c and text "tag w.c". */
static int append(struct shm_seg *seg, enum shm_event_kind kind, const char *tag, int32_t w,
		  int32_t c)
{
	struct shm_event e;

	shm_event_init(&e, kind);
	e.worker = w;
	e.code = c;
	shm_event_set_text(&e, "%s %d.%d", tag, w, c);
	return shm_event_append(seg, &e, NULL);
}

/* Wait for child pid: its exit code, -signal, or -1000 after TIMEOUT_MS (then killed). */
static int child_wait(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), st;

	if (fd >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, TIMEOUT_MS) != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(fd);
			return -1000;
		}
		close(fd);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1000;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* 53 events in a ring of 16: the oldest 37 are missed, the last 16 read in order. */
static void test_event_wrap_missed(void **state)
{
	struct shm_seg *seg = make(16);
	struct shm_event out[64], e;
	struct shm_event_scan st = {0};
	uint64_t cursor = 0;
	uint32_t got;
	char want[40];

	(void)state;
	assert_int_equal(shm_event_capacity(seg), 16);
	assert_int_equal(shm_event_next(seg), 0);
	assert_int_equal(shm_event_read(seg, 0, &e), -ENOENT);
	for (int i = 0; i < 53; i++)
		assert_int_equal(append(seg, SHM_EV_WORKER_CRASH, "ev", 1, i), 0);
	assert_int_equal(shm_event_next(seg), 53);
	assert_int_equal(shm_event_read(seg, 36, &e), -ESTALE);
	assert_int_equal(shm_event_read(seg, 53, &e), -ENOENT);
	assert_int_equal(shm_event_read(seg, 37, &e), 0);
	assert_int_equal(e.code, 37);
	got = shm_event_scan(seg, &cursor, out, 64, 0, &st);
	assert_int_equal(got, 16);
	assert_int_equal(st.missed, 37);
	assert_int_equal(st.incomplete, 0);
	assert_int_equal(cursor, 53);
	for (uint32_t i = 0; i < got; i++) {
		assert_int_equal(atomic_load(&out[i].seq), 37 + i);
		assert_int_equal(out[i].kind, SHM_EV_WORKER_CRASH);
		snprintf(want, sizeof(want), "ev 1.%u", 37 + i);
		assert_string_equal(out[i].text, want);
		assert_true(out[i].time_ns > 0);
	}
	/* a scan at the end reads nothing and misses nothing more */
	assert_int_equal(shm_event_scan(seg, &cursor, out, 64, 0, &st), 0);
	assert_int_equal(st.missed, 37);
	/* a second reader from 50 misses nothing: 3 events */
	cursor = 50;
	memset(&st, 0, sizeof(st));
	assert_int_equal(shm_event_scan(seg, &cursor, out, 64, 0, &st), 3);
	assert_int_equal(st.missed, 0);
	ts_seg_drop(seg, inst);
}

/* A record whose body changed after it was published (a lapped writer's late store) is
 * incomplete, not a mix of two events; a too long text is cut, terminated. */
static void test_event_checksum(void **state)
{
	struct shm_seg *seg = make(16);
	const struct shm_hdr *h = shm_hdr(seg);
	struct shm_event e, *rec;
	uint64_t n;

	(void)state;
	shm_event_init(&e, SHM_EV_AGENT_SPAWN);
	shm_event_set_name(&e, "a-name-that-is-longer-than-thirty-one-bytes");
	shm_event_set_text(&e, "%s", "a text that does not fit in forty bytes at all");
	assert_int_equal(shm_event_append(seg, &e, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(shm_event_read(seg, 0, &e), 0);
	assert_int_equal(strlen(e.name), 31);
	assert_int_equal(strlen(e.text), 39);
	rec = (struct shm_event *)(seg->base + h->regions[SHM_R_EVENTS].off +
				   sizeof(struct shm_event_ring));
	rec->text[3] ^= 1;
	assert_int_equal(shm_event_read(seg, 0, &e), -EAGAIN);
	ts_seg_drop(seg, inst);
}

/* A segment without a ring ([segment] events = 0): appends and reads say so, nothing breaks. */
static void test_event_no_ring(void **state)
{
	struct shm_seg *seg = make(0);
	struct shm_event e;
	struct shm_event_scan st = {0};
	uint64_t cursor = 0;

	(void)state;
	assert_int_equal(shm_hdr(seg)->regions[SHM_R_EVENTS].size, 0);
	assert_int_equal(shm_event_capacity(seg), 0);
	assert_int_equal(append(seg, SHM_EV_HANG, "x", 0, 0), -ENODATA);
	assert_int_equal(shm_event_read(seg, 0, &e), -ENODATA);
	assert_int_equal(shm_event_scan(seg, &cursor, &e, 1, 0, &st), 0);
	ts_seg_drop(seg, inst);
}

#define FORK_WRITERS 4
#define FORK_EACH    2000

/* Four forked processes append 2000 events each into a ring that holds them all: every
 * sequence number is read once, and every (writer, index) pair once. */
static void test_event_fork_appenders(void **state)
{
	struct shm_seg *seg = make(1u << 13);
	static struct shm_event out[FORK_WRITERS * FORK_EACH];
	static uint8_t seen[FORK_WRITERS][FORK_EACH];
	struct shm_event_scan st = {0};
	uint64_t cursor = 0;
	pid_t pids[FORK_WRITERS];
	uint32_t got;

	(void)state;
	for (int w = 0; w < FORK_WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0) {
			struct shm_seg *c;
			char err[256];

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (shm_seg_attach(inst, 0, 1000, &c, err, sizeof(err)))
				_exit(3);
			for (int i = 0; i < FORK_EACH; i++)
				if (append(c, SHM_EV_POISON, "w", w, i))
					_exit(4);
			_exit(0);
		}
	}
	for (int w = 0; w < FORK_WRITERS; w++)
		assert_int_equal(child_wait(pids[w]), 0);
	assert_int_equal(shm_event_next(seg), FORK_WRITERS * FORK_EACH);
	got = shm_event_scan(seg, &cursor, out, FORK_WRITERS * FORK_EACH, 0, &st);
	assert_int_equal(got, FORK_WRITERS * FORK_EACH);
	assert_int_equal(st.missed, 0);
	assert_int_equal(st.incomplete, 0);
	for (uint32_t i = 0; i < got; i++) {
		const struct shm_event *e = &out[i];

		assert_int_equal(atomic_load(&e->seq), i);
		assert_true(e->worker >= 0 && e->worker < FORK_WRITERS);
		assert_true(e->code >= 0 && e->code < FORK_EACH);
		assert_int_equal(seen[e->worker][e->code], 0);
		seen[e->worker][e->code] = 1;
	}
	ts_seg_drop(seg, inst);
}

/* For the killed-writer test: the step at which the child kills itself. */
static int kill_step;

static void kill_hook(int step)
{
	if (step == kill_step)
		raise(SIGKILL);
}

/*
 * A writer SIGKILLed at each step of an append leaves its event incomplete: later appends
 * work, a reader skips it (or, holding, stops at it without waiting), and once the ring
 * wraps past it the record is reused.
 */
static void test_event_writer_killed(void **state)
{
	static const int steps[] = {SHM_EVENT_STEP_CLAIMED, SHM_EVENT_STEP_MARKED,
				    SHM_EVENT_STEP_HALF};
	struct shm_event out[64];

	(void)state;
	need_test_hooks();
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct shm_seg *seg = make(16);
		struct shm_event_scan st = {0};
		uint64_t cursor = 0;
		pid_t pid;

		assert_int_equal(append(seg, SHM_EV_AGENT_STOP, "before", 0, 0), 0);
		kill_step = steps[k];
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			shm_event_test_hook = kill_hook;
			append(seg, SHM_EV_AGENT_STOP, "dying", 0, 1);
			_exit(0); /* the hook did not fire */
		}
		assert_int_equal(child_wait(pid), -SIGKILL);
		assert_int_equal(append(seg, SHM_EV_AGENT_STOP, "after", 0, 2), 0);
		assert_int_equal(shm_event_next(seg), 3);
		assert_int_equal(shm_event_read(seg, 1, &out[0]), -EAGAIN);
		/* holding: stops at the dead one, at once */
		assert_int_equal(shm_event_scan(seg, &cursor, out, 64, SHM_EVENT_HOLD, &st), 1);
		assert_true(st.held);
		assert_int_equal(cursor, 1);
		assert_string_equal(out[0].text, "before 0.0");
		/* not holding: skips it, counted */
		assert_int_equal(shm_event_scan(seg, &cursor, out, 64, 0, &st), 1);
		assert_false(st.held);
		assert_int_equal(st.incomplete, 1);
		assert_int_equal(cursor, 3);
		assert_string_equal(out[0].text, "after 0.2");
		/* a lap later its record holds event 17, complete */
		for (int i = 3; i < 18; i++)
			assert_int_equal(append(seg, SHM_EV_AGENT_STOP, "lap", 0, i), 0);
		assert_int_equal(shm_event_read(seg, 17, &out[0]), 0);
		assert_string_equal(out[0].text, "lap 0.17");
		assert_int_equal(shm_event_read(seg, 1, &out[0]), -ESTALE);
		ts_seg_drop(seg, inst);
	}
}

/* Threads sharing one mapping, for ThreadSanitizer: two appenders, one reader following. */
#define THR_EACH 3000

struct thr_arg {
	struct shm_seg *seg;
	int w;
};

static void *thr_append(void *p)
{
	struct thr_arg *a = p;

	for (int i = 0; i < THR_EACH; i++)
		if (append(a->seg, SHM_EV_HANG, "t", a->w, i))
			return (void *)1;
	return NULL;
}

static void test_event_threads(void **state)
{
	struct shm_seg *seg = make(64);
	struct thr_arg a[2] = {{seg, 0}, {seg, 1}};
	struct shm_event out[64];
	struct shm_event_scan st = {0};
	uint64_t cursor = 0, read = 0;
	pthread_t t[2];
	void *r;

	(void)state;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, thr_append, &a[i]), 0);
	while (shm_event_next(seg) < 2 * THR_EACH) {
		uint32_t got = shm_event_scan(seg, &cursor, out, 64, 0, &st);

		for (uint32_t i = 0; i < got; i++) {
			/* a copy is one writer's whole event */
			char want[40];

			snprintf(want, sizeof(want), "t %d.%d", out[i].worker, out[i].code);
			assert_string_equal(out[i].text, want);
		}
		read += got;
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], &r), 0);
		assert_null(r);
	}
	read += shm_event_scan(seg, &cursor, out, 64, 0, &st);
	/* every event was read, missed (overwritten first) or skipped while being written */
	assert_int_equal(read + st.missed + st.incomplete, 2 * THR_EACH);
	assert_int_equal(cursor, 2 * THR_EACH);
	ts_seg_drop(seg, inst);
}

/* --- a running instance --- */

static const char run_config[] = "[instance]\nworkers = 2\n[segment]\nevents = 256\n";

/* Whether the ring (from event `from`) holds worker 1's crash of pid victim (SIGKILL) and
 * then its restart by another pid; their numbers in *crash and *restart. */
static bool has_crash_restart(struct shm_seg *seg, uint64_t from, pid_t victim, uint64_t *crash,
			      uint64_t *restart)
{
	static struct shm_event out[256];
	struct shm_event_scan st = {0};
	uint64_t cursor = from;
	uint32_t got = shm_event_scan(seg, &cursor, out, 256, 0, &st);
	bool seen_crash = false;

	for (uint32_t i = 0; i < got; i++) {
		const struct shm_event *e = &out[i];

		if (e->kind == SHM_EV_WORKER_CRASH && e->worker == 1 &&
		    e->pid == (uint32_t)victim && e->signal == SIGKILL &&
		    e->reason == SHM_EXIT_SIGNAL && e->slot == 2) {
			seen_crash = true;
			*crash = atomic_load(&e->seq);
		} else if (seen_crash && e->kind == SHM_EV_WORKER_RESTART && e->worker == 1 &&
			   e->pid != (uint32_t)victim && e->pid != 0) {
			*restart = atomic_load(&e->seq);
			return true;
		}
	}
	return false;
}

/* Parse `shoal events --json` output: every line one object; the seqs in order, >= since;
 * returns the number of worker-crash objects of worker 1 with signal 9. */
static int check_json_lines(char *out, uint64_t since, uint64_t *first)
{
	int crashes = 0, lines = 0;
	json_int_t prev = -1;

	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);
		json_t *seq;

		if (!o)
			fail_msg("not JSON: '%s' (%s)", line, jerr.text);
		assert_true(json_is_object(o));
		seq = json_object_get(o, "seq");
		assert_true(json_is_integer(seq));
		assert_true(json_integer_value(seq) > prev);
		assert_true((uint64_t)json_integer_value(seq) >= since);
		if (!lines++)
			*first = (uint64_t)json_integer_value(seq);
		prev = json_integer_value(seq);
		assert_true(json_is_string(json_object_get(o, "kind")));
		assert_true(json_is_string(json_object_get(o, "time")));
		assert_true(json_is_string(json_object_get(o, "text")));
		if (!strcmp(json_string_value(json_object_get(o, "kind")), "worker-crash") &&
		    json_integer_value(json_object_get(o, "worker")) == 1 &&
		    json_integer_value(json_object_get(o, "signal")) == SIGKILL) {
			assert_string_equal(json_string_value(json_object_get(o, "reason")),
					    "signal");
			crashes++;
		}
		json_decref(o);
	}
	assert_true(lines > 0);
	return crashes;
}

/*
 * Kill a worker of a running instance: its crash and its restart appear in the ring with the
 * right worker; `shoal events --json` parses, and --since filters.
 */
static void test_event_run_worker_crash(void **state)
{
	static char out[1 << 16];
	struct rt_run r;
	struct shm_seg *seg;
	uint64_t from, crash = 0, restart = 0, first = 0;
	char err[256], since[32];
	pid_t victim;

	(void)state;
	rt_start(&r, "ev-", "crash", run_config, NULL);
	rt_wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	assert_int_equal(shm_event_capacity(seg), 256);
	from = shm_event_next(seg);
	victim = rt_slot_pid(seg, 2);
	assert_true(victim > 0);
	rt_kill_and_wait(victim);
	WAIT_FOR(seg, has_crash_restart(seg, from, victim, &crash, &restart));
	assert_true(restart > crash);
	{
		const char *args[] = {"events", "--json", NULL};

		assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), args), 0);
		assert_int_equal(check_json_lines(out, 0, &first), 1);
		assert_int_equal(first, 0);
	}
	{
		const char *args[] = {"events", "--json", "--since", since, NULL};

		snprintf(since, sizeof(since), "%llu", (unsigned long long)restart);
		assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), args), 0);
		/* the crash came before: filtered out */
		assert_int_equal(check_json_lines(out, restart, &first), 0);
		assert_int_equal(first, restart);
	}
	{
		const char *args[] = {"events", NULL};
		char want[64];

		assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), args), 0);
		snprintf(want, sizeof(want), "worker-crash    worker 1 pid %d: SIGKILL",
			 (int)victim);
		if (!strstr(out, want))
			fail_msg("no '%s' in:\n%s", want, out);
		/* inspect lists the last few too */
		args[0] = "inspect";
		assert_int_equal(rt_run_tool(r.inst, out, sizeof(out), args), 0);
		if (!strstr(out, "\nevents ") || !strstr(out, want))
			fail_msg("inspect: no events section with '%s' in:\n%s", want, out);
	}
	shm_seg_detach(seg);
	rt_stop(&r);
}

/* Read fd into buf (appending at *len) until it holds needle; fails after TIMEOUT_MS. */
static void read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle)
{
	uint64_t dl = shm_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;

	while (!strstr(buf, needle)) {
		uint64_t t = shm_now_ns();
		ssize_t k;

		if (t >= dl || !rt_fd_wait(fd, (int)((dl - t) / 1000000u) + 1))
			fail_msg("no '%s' within %d ms; got: %s", needle, TIMEOUT_MS, buf);
		k = read(fd, buf + *len, cap - 1 - *len);
		if (k <= 0)
			fail_msg("the output closed before '%s': %s", needle, buf);
		*len += (size_t)k;
		buf[*len] = 0;
	}
}

/* --follow prints an event written after it started, and ends (exit 0, saying so) when the
 * instance stops. */
static void test_event_run_follow(void **state)
{
	static char out[1 << 16], rest[1 << 16];
	struct rt_run r;
	struct shm_seg *seg;
	size_t len = 0;
	char err[256], want[64];
	pid_t victim, tool;
	int fd;

	(void)state;
	rt_start(&r, "ev-", "follow", run_config, NULL);
	rt_wait_ready(&r);
	assert_int_equal(shm_seg_attach(r.inst, SHM_ATTACH_RO, 1000, &seg, err, sizeof(err)), 0);
	{
		const char *args[] = {"events", "--follow", NULL};

		tool = rt_tool_start(r.inst, args, &fd);
	}
	read_until(fd, out, sizeof(out), &len, "following instance");
	victim = rt_slot_pid(seg, 1);
	rt_kill_and_wait(victim);
	snprintf(want, sizeof(want), "worker-crash    worker 0 pid %d", (int)victim);
	read_until(fd, out, sizeof(out), &len, want);
	kill(r.pid, SIGTERM);
	assert_int_equal(rt_tool_finish(tool, fd, rest, sizeof(rest)), 0);
	if (!strstr(rest, "instance '") || !strstr(rest, "' stopped"))
		fail_msg("no 'stopped' from --follow: %s%s", out, rest);
	assert_int_equal(rt_wait_exit(&r), 0);
	rt_cleanup(&r);
	shm_seg_detach(seg);
}

/* Errors: exit 2 with a sentence naming the instance and the problem; never a crash. */
static void test_event_tool_errors(void **state)
{
	static char out[1 << 16];
	struct shm_seg *seg;
	char path[96];

	(void)state;
	rt_shoal_bin();
	{
		const char *args[] = {"events", NULL};

		assert_int_equal(rt_run_tool("ev-nosuch-instance", out, sizeof(out), args), 2);
		assert_non_null(strstr(out, "shoal events: instance 'ev-nosuch-instance'"));
	}
	{
		const char *args[] = {"events", "--since", "-3", NULL};

		assert_int_equal(rt_run_tool(inst, out, sizeof(out), args), 2);
		assert_non_null(strstr(out, "--since takes an event number"));
	}
	/* no ring */
	seg = make(0);
	{
		const char *args[] = {"events", NULL};

		assert_int_equal(rt_run_tool(inst, out, sizeof(out), args), 2);
		assert_non_null(strstr(out, "keeps no events"));
	}
	ts_seg_drop(seg, inst);
	/* garbage in the event region: read as missed or incomplete, exit 0 */
	seg = make(16);
	{
		const struct shm_hdr *h = shm_hdr(seg);
		uint8_t *ring = seg->base + h->regions[SHM_R_EVENTS].off;
		const char *args[] = {"events", "--json", NULL};

		for (size_t i = 0;
		     i < sizeof(struct shm_event_ring) + 16 * sizeof(struct shm_event); i++)
			ring[i] = (uint8_t)(i * 131 + 7);
		/* a claim count "behind" 0 (top bit set): nothing to read */
		assert_int_equal(rt_run_tool(inst, out, sizeof(out), args), 0);
		/* a plausible count over garbage records: each of the 1000 events is missed
		 * (984 overwritten, and records claiming newer events) or incomplete */
		atomic_store(&((struct shm_event_ring *)ring)->next, 1000);
		assert_int_equal(rt_run_tool(inst, out, sizeof(out), args), 0);
		{
			long total = 0, incomplete = 0;
			char *p = out;

			while ((p = strchr(p, '{'))) {
				long v;

				if (sscanf(p, "{\"missed\":%ld}", &v) == 1)
					total += v;
				else if (sscanf(p, "{\"incomplete\":%ld}", &v) == 1)
					total++, incomplete++;
				else
					fail_msg("an event read from garbage: %s", p);
				p++;
			}
			assert_int_equal(total, 1000);
			assert_true(incomplete > 0);
		}
	}
	/* another layout version */
	shm_hdr(seg)->layout_major = SHM_LAYOUT_MAJOR + 1;
	{
		const char *args[] = {"events", NULL};

		assert_int_equal(rt_run_tool(inst, out, sizeof(out), args), 2);
		assert_non_null(strstr(out, "layout"));
	}
	shm_hdr(seg)->layout_major = SHM_LAYOUT_MAJOR;
	/* truncated */
	snprintf(path, sizeof(path), "/dev/shm/shoal.%s", inst);
	assert_int_equal(truncate(path, 2 * SHM_HDR_SIZE), 0);
	{
		const char *args[] = {"events", "--follow", NULL};

		assert_int_equal(rt_run_tool(inst, out, sizeof(out), args), 2);
		assert_non_null(strstr(out, "truncated"));
	}
	ts_seg_drop(seg, inst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_event_wrap_missed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_checksum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_no_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_fork_appenders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_writer_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_threads, setup, teardown),
		cmocka_unit_test_teardown(test_event_run_worker_crash, rt_teardown),
		cmocka_unit_test_teardown(test_event_run_follow, rt_teardown),
		cmocka_unit_test_setup_teardown(test_event_tool_errors, setup, teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
