/* test_config: shoal run's config parser: good files, and one test per bad line users hit. */
#include <errno.h>
#include <setjmp.h>
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

#include "supervisor/sup.h"

static char path[64];

static int load_text(struct sup_config *c, const char *text, char *err, size_t errlen)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/shoal-test-config-%d.ini", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	sup_config_init(c);
	return sup_config_load(c, path, err, errlen);
}

/* The error names the file and the line, then what is wrong. */
static void expect_error(const char *text, int line, const char *needle)
{
	struct sup_config c;
	char err[512], prefix[96];

	assert_int_equal(load_text(&c, text, err, sizeof(err)), -EINVAL);
	if (line)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, needle)) {
		fprintf(stderr, "got '%s'\nwant prefix '%s' and '%s'\n", err, prefix, needle);
		fail();
	}
	unlink(path);
}

static void test_config_default_parses(void **state)
{
	struct sup_config c;
	char err[256] = "";

	(void)state;
	sup_config_init(&c);
	assert_int_equal(sup_config_load(&c, NULL, err, sizeof(err)), 0);
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.nagents, 2);
	assert_string_equal(c.agents[0].type, "coordinator");
	assert_int_equal(c.agents[1].count, 100);
	assert_string_equal(c.agents[1].type, "tuner");
	assert_int_equal(c.policy.strategy, SUP_ONE_FOR_ONE);
}

static void test_config_full_file(void **state)
{
	struct sup_config c;
	char err[256] = "", name[80];

	(void)state;
	assert_int_equal(load_text(&c,
				   "; a comment\n"
				   "[instance]\n"
				   "name = test-1\n"
				   "workers = 3\n"
				   "cpus = 0-1\n"
				   "placement = none\n"
				   "stop_timeout = 250ms\n"
				   "spare = no\n"
				   "[restart]\n"
				   "strategy = rest_for_one\n"
				   "intensity = 4\n"
				   "period = 2.5\n"
				   "backoff_initial = 5ms\n"
				   "backoff_max = 1\n"
				   "backoff_factor = 3\n"
				   "backoff_first = yes\n"
				   "hang_timeout = 2.5\n"
				   "[memory]\n"
				   "cap = 64M\n"
				   "[segment]\n"
				   "max_agents = 256\n"
				   "mailbox_cells = 128\n"
				   "max_message = 1024\n"
				   "mode = 0640\n"
				   "shared_with_group = yes\n"
				   "[agent echo]\n"
				   "type = echo\n"
				   "count = 12\n"
				   "name = echo-%02u\n"
				   "worker = 2\n"
				   "[agent single]\n"
				   "type = counter\n",
				   err, sizeof(err)),
			 0);
	assert_string_equal(c.instance, "test-1");
	assert_int_equal(c.workers, 3);
	assert_int_equal(c.placement, SUP_PLACE_NONE);
	assert_int_equal(c.stop_timeout_ms, 250);
	assert_false(c.spare);
	assert_int_equal(c.policy.strategy, SUP_REST_FOR_ONE);
	assert_int_equal(c.policy.intensity, 4);
	assert_int_equal(c.policy.period_ms, 2500);
	assert_int_equal(c.policy.backoff_initial_ms, 5);
	assert_int_equal(c.policy.backoff_max_ms, 1000);
	assert_int_equal(c.policy.backoff_factor, 3);
	assert_true(c.policy.backoff_first);
	assert_int_equal(c.policy.hang_ms, 2500);
	assert_int_equal(c.mem_cap, 64ull << 20);
	assert_int_equal(c.shm.max_agents, 256);
	assert_int_equal(c.shm.mbox_cells, 128);
	assert_int_equal(c.shm.mode, 0640);
	assert_int_equal(c.nagents, 2);
	assert_int_equal(c.agents[0].worker, 2);
	assert_int_equal(sup_agent_name(&c.agents[0], 7, name, sizeof(name)), 0);
	assert_string_equal(name, "echo-07");
	assert_string_equal(c.agents[1].pattern, "single");
	assert_int_equal(c.agents[1].count, 1);
	unlink(path);
}

static void test_config_missing_file(void **state)
{
	struct sup_config c;
	char err[256];

	(void)state;
	sup_config_init(&c);
	assert_int_equal(sup_config_load(&c, "/nonexistent/shoal.ini", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/shoal.ini"));
}

/* [pool NAME]: parsed, and each fault named at its line. */
static void test_config_pools(void **state)
{
	struct sup_config c;
	char err[512] = "";

	(void)state;
	assert_int_equal(load_text(&c,
				   "[pool workers]\ntype = echo\nsize = 4\noverflow = 2\n"
				   "[pool  other]\ntype = tuner\n",
				   err, sizeof(err)),
			 0);
	assert_int_equal(c.npools, 2);
	assert_string_equal(c.pools[0].name, "workers");
	assert_string_equal(c.pools[0].type, "echo");
	assert_int_equal(c.pools[0].size, 4);
	assert_int_equal(c.pools[0].overflow, 2);
	assert_string_equal(c.pools[1].name, "other");
	assert_int_equal(c.pools[1].size, 1); /* the default */
	unlink(path);
	expect_error("[pool p]\nsize = 2\n", 2, "[pool p]: no 'type' key");
	expect_error("[pool p]\ntype = echo\nsize = 0\n", 3, "size = '0'");
	expect_error("[pool p]\ntype = echo\ncolour = red\n", 3, "unknown key 'colour'");
	expect_error("[segment]\npool_members = 4\n[pool p]\ntype = echo\nsize = 4\n"
		     "overflow = 1\n",
		     4, "exceed [segment] pool_members (4)");
	expect_error("[segment]\npools = 1\n[pool a]\ntype = echo\n[pool b]\ntype = echo\n", 0,
		     "2 [pool] sections but [segment] pools is 1");
}

static void test_config_unknown_key(void **state)
{
	(void)state;
	expect_error("[instance]\nname = x\nwrokers = 2\n", 3, "unknown key 'wrokers'");
}

static void test_config_bad_number(void **state)
{
	(void)state;
	expect_error("[instance]\n\nworkers = two\n", 3, "workers = 'two'");
}

static void test_config_negative_number(void **state)
{
	(void)state;
	expect_error("[restart]\nintensity = -1\n", 2, "intensity = '-1'");
}

static void test_config_unknown_section(void **state)
{
	(void)state;
	expect_error("[instance]\nname = x\n[restrat]\nstrategy = one_for_all\n", 4,
		     "unknown section [restrat]");
}

static void test_config_syntax_error(void **state)
{
	(void)state;
	expect_error("[instance]\nname x\n", 2, "syntax error");
}

static void test_config_unclosed_section(void **state)
{
	(void)state;
	expect_error("[instance\nname = x\n", 1, "syntax error");
}

static void test_config_key_outside_section(void **state)
{
	(void)state;
	expect_error("workers = 2\n", 1, "outside a section");
}

static void test_config_bad_strategy(void **state)
{
	(void)state;
	expect_error("[restart]\nstrategy = one_for_some\n", 2,
		     "one_for_one, one_for_all or rest_for_one");
}

static void test_config_bad_hang_timeout(void **state)
{
	(void)state;
	/* shorter than a few heartbeats (100 ms) would kill healthy workers */
	expect_error("[restart]\nhang_timeout = 50ms\n", 2, "0 (off) or a time of at least 200ms");
}

static void test_config_bad_size(void **state)
{
	(void)state;
	expect_error("[memory]\ncap = 12Q\n", 2, "cap = '12Q'");
}

/*
 * Refused, each: hwloc_bitmap_list_sscanf() (Debian's hwloc 2.9) would accept them, reading
 * "0x3" as cpu 3, "0-3x" as 0-3, "3-1" as no cpu and "0-" as every cpu there will ever be.
 */
static void test_config_bad_cpus(void **state)
{
	(void)state;
	expect_error("[instance]\ncpus = 3-1\n", 2, "cpu list");
	expect_error("[instance]\ncpus = 0x3\n", 2, "cpu list");
	expect_error("[instance]\ncpus = 0-3x\n", 2, "cpu list");
	expect_error("[instance]\ncpus = 0-\n", 2, "cpu list");
	expect_error("[instance]\ncpus = -1\n", 2, "cpu list");
}

static void test_config_relative_cgroup(void **state)
{
	(void)state;
	expect_error("[memory]\ncgroup = shoal.slice\n", 2, "absolute path");
}

static void test_config_bad_instance_name(void **state)
{
	(void)state;
	expect_error("[instance]\nname = no/slash\n", 2, "instance name");
}

static void test_config_agent_without_type(void **state)
{
	(void)state;
	expect_error("[instance]\nworkers = 1\n[agent a]\ncount = 2\nname = a-%u\n", 4,
		     "no 'type' key");
}

static void test_config_agent_count_needs_pattern(void **state)
{
	(void)state;
	expect_error("[agent e]\ntype = echo\ncount = 3\nname = e\n", 2, "needs a name pattern");
}

static void test_config_agent_bad_pattern(void **state)
{
	(void)state;
	expect_error("[agent e]\ntype = echo\nname = e-%s\n", 3, "pattern");
}

static void test_config_agent_worker_out_of_range(void **state)
{
	(void)state;
	expect_error("[instance]\nworkers = 2\n[agent e]\ntype = echo\nworker = 2\n", 5,
		     "worker 2, but there are 2 workers");
}

static void test_config_segment_not_pow2(void **state)
{
	(void)state;
	expect_error("[segment]\nmailbox_cells = 100\n", 0, "power of two");
}

/* [segment] events: the event ring's size (default 4096, 0 none); a bad value names its line. */
static void test_config_segment_events(void **state)
{
	struct sup_config c;
	char err[512];

	(void)state;
	assert_int_equal(load_text(&c, "[instance]\nworkers = 1\n", err, sizeof(err)), 0);
	assert_int_equal(c.shm.events, 4096);
	unlink(path);
	assert_int_equal(load_text(&c, "[segment]\nevents = 64\n", err, sizeof(err)), 0);
	assert_int_equal(c.shm.events, 64);
	unlink(path);
	assert_int_equal(load_text(&c, "[segment]\nevents = 0\n", err, sizeof(err)), 0);
	assert_int_equal(c.shm.events, 0);
	unlink(path);
	expect_error("[segment]\nmax_agents = 64\nevents = 100\n", 3,
		     "[segment] events = '100': 0 (no event ring) or a power of two from 16 to "
		     "1048576");
	expect_error("[segment]\nevents = 8\n", 2, "events = '8'");
	expect_error("[segment]\nevents = 2097152\n", 2, "events = '2097152'");
	expect_error("[segment]\nevents = 010\n", 2, "events = '010'");
	expect_error("[segment]\nevents = -16\n", 2, "events = '-16'");
}

/* [segment] variables and variable_bytes: set the variables region; bad values named. */
static void test_config_segment_variables(void **state)
{
	struct sup_config c;
	char err[512];

	(void)state;
	assert_int_equal(load_text(&c, "[segment]\nvariables = 64\nvariable_bytes = 512\n", err,
				   sizeof(err)),
			 0);
	assert_int_equal(c.shm.max_vars, 64);
	assert_int_equal(c.shm.var_bytes, 512);
	unlink(path);
	assert_int_equal(load_text(&c, "[segment]\nvariables = 0\n", err, sizeof(err)), 0);
	assert_int_equal(c.shm.max_vars, 0);
	unlink(path);
	expect_error("[segment]\nvariable_bytes = 100\n", 2,
		     "variable_bytes = '100': a blob size in bytes, a multiple of 8");
	expect_error("[segment]\nvariable_bytes = 8192\n", 2, "from 8 to 4096");
	expect_error("[segment]\nvariable_bytes = 0\n", 2, "variable_bytes = '0'");
	expect_error("[segment]\nvariables = 2000000\n", 2, "variables = '2000000'");
	expect_error("[segment]\nvariables = -1\n", 2, "variables = '-1'");
}

/* [segment] rounds: the round records of broadcasts with acknowledgements, in range. */
static void test_config_segment_rounds(void **state)
{
	struct sup_config c;
	char err[256];

	(void)state;
	expect_error("[segment]\nrounds = 70000\n", 0, "rounds 70000: at most 65536");
	assert_int_equal(load_text(&c, "[segment]\nrounds = 12\n", err, sizeof(err)), 0);
	assert_int_equal(c.shm.max_rounds, 12);
	assert_int_equal(load_text(&c, "[segment]\n", err, sizeof(err)), 0);
	assert_int_equal(c.shm.max_rounds, 64);
}

static void test_config_more_agents_than_slots(void **state)
{
	(void)state;
	expect_error("[segment]\nmax_agents = 10\n[agent e]\ntype = echo\ncount = 11\n"
		     "name = e%u\n",
		     2, "max_agents is 10");
}

static void test_config_backoff_max_below_initial(void **state)
{
	(void)state;
	expect_error("[restart]\nbackoff_initial = 2\nbackoff_max = 1\n", 0, "backoff_max");
}

static void test_config_first_error_wins(void **state)
{
	(void)state;
	expect_error("[instance]\nworkers = x\nbogus = 1\n", 2, "workers = 'x'");
}

/*
 * libinih hands the reader 200-byte buffers: a longer line used to be cut and its rest
 * parsed as a line of its own, so a long comment could set a key. Now the line is refused.
 */
static void test_config_long_line_refused(void **state)
{
	char text[512];
	int n;

	(void)state;
	n = snprintf(text, sizeof(text), "[instance]\nname = x\n; ");
	memset(text + n, 'a', 199 - 2);
	n += 199 - 2;
	snprintf(text + n, sizeof(text) - (size_t)n, "workers = 7\nworkers = 8\n");
	expect_error(text, 3, "longer than 198 bytes");
}

/* A line of 198 bytes (the most the parser holds) still parses. */
static void test_config_longest_line_parses(void **state)
{
	struct sup_config c;
	char text[512], err[256] = "";
	int n;

	(void)state;
	n = snprintf(text, sizeof(text), "[instance]\n; ");
	memset(text + n, 'a', 198 - 2);
	n += 198 - 2;
	snprintf(text + n, sizeof(text) - (size_t)n, "\nworkers = 3\n");
	assert_int_equal(load_text(&c, text, err, sizeof(err)), 0);
	assert_int_equal(c.workers, 3);
	unlink(path);
}

/* The same limit holds for a config given as a string, and for a last line without '\n'. */
static void test_config_long_line_in_string(void **state)
{
	struct sup_config c;
	char text[512], err[256] = "";
	int n;

	(void)state;
	n = snprintf(text, sizeof(text), "[instance]\nname = ");
	memset(text + n, 'b', 250);
	text[n + 250] = 0;
	sup_config_init(&c);
	assert_int_equal(sup_config_parse_string(&c, "s.ini", text, err, sizeof(err)), -EINVAL);
	if (strncmp(err, "s.ini:2: ", 9) || !strstr(err, "longer than 198 bytes"))
		fail_msg("got '%s'", err);
}

/* strtod takes "nan": NaN passed the range check and became a random hang timeout. */
static void test_config_hang_timeout_nan(void **state)
{
	(void)state;
	expect_error("[restart]\nhang_timeout = nan\n", 2, "hang_timeout = 'nan'");
	expect_error("[restart]\nhang_timeout = inf\n", 2, "hang_timeout = 'inf'");
	expect_error("[restart]\nperiod = 0x10\n", 2, "period = '0x10'");
}

/* 0.1ms rounded to 0, which means "off": a typo silently disabled hang detection. */
static void test_config_hang_timeout_sub_ms(void **state)
{
	(void)state;
	expect_error("[restart]\nhang_timeout = 0.1ms\n", 2, "hang_timeout = '0.1ms'");
	expect_error("[instance]\nstatus_interval = 0.0001\n", 2, "rounds to 0 ms");
}

/* strtoull base 0 read "010" as 8 and "0x10" as 16. */
static void test_config_leading_zero_refused(void **state)
{
	(void)state;
	expect_error("[instance]\nworkers = 010\n", 2,
		     "workers = '010': leading zeros are not allowed; write 10 (or 8 if octal "
		     "was meant)");
	expect_error("[segment]\nmax_agents = 0x100\n", 2, "max_agents = '0x100'");
	expect_error("[restart]\nhang_timeout = 05\n", 2, "leading zeros");
}

/* A world-writable segment lets any user rewrite the process table. */
static void test_config_mode_other_bits_refused(void **state)
{
	(void)state;
	expect_error("[segment]\nmode = 0666\n", 2, "mode = '0666'");
	expect_error("[segment]\nshared_with_group = yes\nmode = 0604\n", 3, "other users");
}

/* Group bits need the explicit opt-in, wherever it is written in the section. */
static void test_config_mode_group_needs_opt_in(void **state)
{
	struct sup_config c;
	char err[256] = "";

	(void)state;
	expect_error("[segment]\nmode = 0660\n", 2, "shared_with_group = yes");
	assert_int_equal(load_text(&c, "[segment]\nmode = 0660\nshared_with_group = yes\n", err,
				   sizeof(err)),
			 0);
	assert_int_equal(c.shm.mode, 0660);
	unlink(path);
	expect_error("[segment]\nmode = 0400\n", 2, "owner");
	expect_error("[segment]\nmode = -0\n", 2, "octal file mode");
}

/* Two [instance] sections used to merge silently. */
static void test_config_duplicate_section(void **state)
{
	(void)state;
	expect_error("[instance]\nname = a\n[restart]\nintensity = 1\n[instance]\nworkers = 1\n", 5,
		     "[instance] appears again (first at line 1)");
	/* empty, and back to back */
	expect_error("[memory]\n[memory]\n", 2, "[memory] appears again (first at line 1)");
	/* agent sections compare by NAME as the parser reads it */
	expect_error("[agent a]\ntype = echo\n[agent   a]\ntype = echo\n", 3,
		     "[agent a] appears again (first at line 1)");
}

static void test_config_duplicate_key(void **state)
{
	(void)state;
	expect_error("[instance]\nworkers = 1\nname = a\nworkers = 2\n", 4,
		     "'workers' is set again (first at line 2)");
	expect_error("[agent a]\ntype = echo\ntype = counter\n", 3,
		     "'type' is set again (first at line 2)");
	/* inih reads an indented line as the continuation of the key before it */
	expect_error("[instance]\nname = a\n  workers = 2\n", 3, "indented");
}

/* [types] load = PATH is the one key meant to repeat. */
static void test_config_types_load_repeats(void **state)
{
	struct sup_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(load_text(&c, "[types]\nload = /a.so\nload = /b.so\n", err, sizeof(err)),
			 0);
	assert_int_equal(c.nlibs, 2);
	assert_int_equal(c.lib_lines[1], 3);
	unlink(path);
}

/* Not a regular file: refused at once, and a FIFO with no writer does not hang the reader. */
static void test_config_not_a_regular_file(void **state)
{
	struct sup_config c;
	char err[256], fifo[64];

	(void)state;
	sup_config_init(&c);
	assert_int_equal(sup_config_load(&c, "/tmp", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/tmp: a directory"));
	assert_int_equal(sup_config_load(&c, "/dev/zero", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "/dev/zero: a character device"));
	snprintf(fifo, sizeof(fifo), "/tmp/shoal-test-fifo-%d", (int)getpid());
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(sup_config_load(&c, fifo, err, sizeof(err)), -EINVAL);
	unlink(fifo);
	assert_non_null(strstr(err, ": a FIFO"));
	assert_non_null(strstr(err, "regular file"));
}

/* The file loads, and the checks `run` and `--check` share refuse it with file:line. */
static void expect_check_error(const char *text, int line, const char *needle)
{
	struct sup_config c;
	char err[512], prefix[96];

	if (load_text(&c, text, err, sizeof(err)))
		fail_msg("load: %s", err);
	/* too big for /dev/shm's free space is its own code: exit 2 for --check, 3 at start */
	assert_int_equal(sup_config_check(&c, NULL, err, sizeof(err)),
			 strstr(needle, "free in /dev/shm") ? -ENOSPC : -EINVAL);
	if (line)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, needle))
		fail_msg("got '%s'\nwant prefix '%s' and '%s'", err, prefix, needle);
	unlink(path);
}

/* `shoal run ARGS... FILE` with text in FILE: its exit status, stderr+stdout in out. */
static int run_tool(const char *text, const char *opt, char *out, size_t cap)
{
	const char *bin = getenv("SHOAL_BIN");
	int pfd[2], st;
	ssize_t n;
	size_t got = 0;
	pid_t pid;
	FILE *f;

	if (!bin)
		skip_because("SHOAL_BIN is not set (run through meson test)");
	snprintf(path, sizeof(path), "/tmp/shoal-test-config-%d.ini", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		if (opt)
			execl(bin, bin, "run", opt, path, (char *)NULL);
		else
			execl(bin, bin, "run", path, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while (got < cap - 1 && (n = read(pfd[0], out + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	unlink(path);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Every configured agent registers its name: run failed at start with ENOSPC past capacity. */
static void test_config_registry_holds_agents(void **state)
{
	(void)state;
	expect_error("[segment]\nregistry_capacity = 16\n[agent e]\ntype = echo\ncount = 17\n"
		     "name = e%u\n",
		     2, "[segment] registry_capacity = 16: the 17 agents configured register");
}

/* --check and run refuse it alike: exit 2 and the same message, and no instance. */
static void both_refuse(const char *text, const char *want)
{
	char out[2048];

	assert_int_equal(run_tool(text, "--check", out, sizeof(out)), 2);
	if (!strstr(out, want))
		fail_msg("--check said: %s\nwant: %s", out, want);
	assert_int_equal(run_tool(text, NULL, out, sizeof(out)), 2);
	if (!strstr(out, want))
		fail_msg("run said: %s\nwant: %s", out, want);
	assert_int_equal(access("/dev/shm/shoal.cfgtest", F_OK), -1);
}

/* The embedded default passes the checks here (if this machine's cores fit its max_procs). */
static void test_config_check_default_passes(void **state)
{
	struct sup_config c;
	struct sup_config_facts f;
	char err[512] = "";
	int r;

	(void)state;
	sup_config_init(&c);
	assert_int_equal(sup_config_load(&c, NULL, err, sizeof(err)), 0);
	r = sup_config_check(&c, &f, err, sizeof(err));
	if (r && strstr(err, "max_procs"))
		skip_because("more cores than the default max_procs allows");
	if (r)
		fail_msg("%s", err);
	assert_true(f.workers >= 1);
	assert_true(f.seg_size > 0 && f.seg_size <= f.seg_max);
}

/* --print-default prints a config that parses and passes --check. */
static void test_config_print_default_checks(void **state)
{
	const char *bin = getenv("SHOAL_BIN");
	char cmd[512], out[4096];
	FILE *p;
	size_t n;
	int r;

	(void)state;
	if (!bin)
		skip_because("SHOAL_BIN is not set (run through meson test)");
	snprintf(cmd, sizeof(cmd), "%s run --print-default", bin);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	assert_int_equal(pclose(p), 0);
	assert_true(n > 0);
	{
		char text[4096];

		memcpy(text, out, n + 1);
		r = run_tool(text, "--check", out, sizeof(out));
	}
	if (r == 2 && strstr(out, "max_procs"))
		skip_because("more cores than the default max_procs allows");
	if (r)
		fail_msg("exit %d: %s", r, out);
	assert_non_null(strstr(out, "agent tuner: 100 x tuner"));
}

/* A cpu that is not there: placement used to drop it, or fail at start with no line. */
static void test_config_check_cpus_missing(void **state)
{
	(void)state;
	if (sysconf(_SC_NPROCESSORS_CONF) > 1023)
		skip_because("this machine has a cpu 1023");
	expect_check_error("[instance]\nworkers = 1\ncpus = 0,1023\n", 3,
			   "[instance] cpus = '0,1023': cpu 1023 does not exist here");
}

/* A cgroup outside cgroup v2 used to run uncapped, with a warning per launch. */
static void test_config_check_cgroup_not_v2(void **state)
{
	(void)state;
	expect_check_error("[memory]\ncap = 64M\ncgroup = /tmp\n", 3,
			   "[memory] cgroup = '/tmp': not in a cgroup v2 filesystem");
	expect_check_error("[memory]\ncap = 64M\ncgroup = /no/such/cgroup\n", 3,
			   "[memory] cgroup = '/no/such/cgroup': No such file or directory");
}

/* [dist]: the keys are parsed with their lines; a bad node name or address is refused. */
static void test_config_dist_keys(void **state)
{
	struct sup_config c;
	char err[512];

	(void)state;
	assert_int_equal(load_text(&c,
				   "[instance]\nworkers = 1\n[dist]\nnode = shoal@127.0.0.1\n"
				   "cookie_file = /tmp/x\nport = 4370\n",
				   err, sizeof(err)),
			 0);
	assert_string_equal(c.dist.node, "shoal@127.0.0.1");
	assert_string_equal(c.dist.cookie_file, "/tmp/x");
	assert_string_equal(c.dist.listen, "127.0.0.1");
	assert_int_equal(c.dist.port, 4370);
	assert_int_equal(c.dist.ticktime_s, 60); /* the BEAM's default */
	assert_int_equal(c.dist.line, 4);
	assert_int_equal(c.dist.cookie_line, 5);
	unlink(path);
	expect_error("[dist]\nnode = shoal\n", 2,
		     "[dist] node = 'shoal': a node name is alive@host");
	expect_error("[dist]\nlisten = localhost\n", 2,
		     "[dist] listen = 'localhost': an IPv4 address");
	expect_error("[dist]\nport = 70000\n", 2, "[dist] port = '70000'");
	expect_error("[dist]\ntls = on\n", 2, "[dist]: unknown key 'tls'");
	expect_error("[dist]\nnet_ticktime = 1\n", 2, "[dist] net_ticktime = '1': seconds 2..3600");
	assert_int_equal(load_text(&c, "[instance]\nworkers = 1\n[dist]\nnet_ticktime = 7\n", err,
				   sizeof(err)),
			 0);
	assert_int_equal(c.dist.ticktime_s, 7);
	assert_true(c.dist.monitors);
	expect_error("[dist]\nmonitors = maybe\n", 2, "[dist] monitors = 'maybe': yes or no");
	assert_int_equal(
		load_text(&c, "[instance]\nworkers = 1\n[dist]\nmonitors = no\n", err, sizeof(err)),
		0);
	assert_false(c.dist.monitors);
	unlink(path);
}

/* A file for the cookie, with mode m; its path in out. */
static void write_cookie(char *out, size_t cap, mode_t m)
{
	FILE *f;

	snprintf(out, cap, "/tmp/shoal-test-cookie-%d", (int)getpid());
	f = fopen(out, "w");
	assert_non_null(f);
	fputs("testcookie\n", f);
	fclose(f);
	assert_int_equal(chmod(out, m), 0);
}

/*
 * The cookie is required, and refused when the group or others may read it (as Erlang
 * refuses it): at the config check, exit 2, the message naming the file and the fix.
 */
static void test_config_check_dist_cookie(void **state)
{
	char cookie[64], text[256], want[160];

	(void)state;
#ifdef SHOAL_DIST
	expect_check_error("[instance]\nworkers = 1\n[dist]\nnode = shoal@127.0.0.1\n", 4,
			   "[dist]: no 'cookie_file' key");
#endif
	write_cookie(cookie, sizeof(cookie), 0644);
	snprintf(text, sizeof(text),
		 "[instance]\nworkers = 1\n[dist]\nnode = shoal@127.0.0.1\ncookie_file = %s\n",
		 cookie);
	snprintf(want, sizeof(want), "has mode 0644: the group or others may read it");
#ifdef SHOAL_DIST
	expect_check_error(text, 5, want);
	snprintf(want, sizeof(want), "chmod 600 '%s'", cookie);
	expect_check_error(text, 5, want);
	both_refuse(text, want);
	assert_int_equal(chmod(cookie, 0600), 0);
	{
		struct sup_config c;
		char err[512];

		assert_int_equal(load_text(&c, text, err, sizeof(err)), 0);
		if (sup_config_check(&c, NULL, err, sizeof(err)))
			fail_msg("a 0600 cookie refused: %s", err);
	}
#else
	expect_check_error(text, 4, "built without the Erlang distribution");
#endif
	unlink(cookie);
}

/* max_procs must hold the workers, the supervisor and a client: run exited 2 at start. */
static void test_config_check_max_procs(void **state)
{
	(void)state;
	expect_check_error("[instance]\nworkers = 4\n[segment]\nmax_procs = 5\n", 4,
			   "[segment] max_procs = 5: too small for 4 workers");
	both_refuse("[instance]\nname = cfgtest\nworkers = 4\n[segment]\nmax_procs = 5\n",
		    ":5: [segment] max_procs = 5: too small for 4 workers");
}

/* The supervisor's control inbox takes an agent slot: run exited 3 at start. */
static void test_config_check_control_inbox_slot(void **state)
{
	(void)state;
	both_refuse("[instance]\nname = cfgtest\nworkers = 1\n[segment]\nmax_agents = 2\n"
		    "[agent e]\ntype = echo\ncount = 2\nname = e%u\n",
		    ":5: [segment] max_agents is 2");
}

/* Agent types and libraries: --check used to pass what run refused. */
static void test_config_check_types(void **state)
{
	(void)state;
	both_refuse("[instance]\nname = cfgtest\nworkers = 1\n[agent x]\ntype = nosuch\n",
		    ":5: [agent x]: unknown agent type 'nosuch'");
	both_refuse("[instance]\nname = cfgtest\nworkers = 1\n[types]\nload = /no/such.so\n",
		    ":5: [types] load = /no/such.so");
}

/*
 * A library whose registration aborts is loaded in a child first: --check and run report
 * the crash with its config line (exit 2) instead of dying of it.
 */
static void test_config_check_crashing_plugin(void **state)
{
	const char *lib = getenv("SHOAL_TEST_CRASH_PLUGIN");
	char text[512];

	(void)state;
	if (!lib)
		skip_because("SHOAL_TEST_CRASH_PLUGIN is not set (run through meson test)");
	snprintf(text, sizeof(text),
		 "[instance]\nname = cfgtest\nworkers = 1\n[types]\nload = %s\n", lib);
	both_refuse(text, "crashed while loading it (signal 6");
}

/* A segment over [segment] max_size (default: half the RAM) is a bad config. */
static void test_config_check_segment_too_big(void **state)
{
	(void)state;
	/* a million agents with 64 MiB mailboxes: 64 TiB */
	expect_check_error("[instance]\nworkers = 1\n[segment]\nmax_agents = 1048576\n"
			   "mailbox_cells = 1048576\n",
			   0, "TiB");
	expect_check_error("[instance]\nworkers = 1\n[segment]\nmax_agents = 1048576\n"
			   "mailbox_cells = 1048576\n",
			   0, "above [segment] max_size");
	both_refuse("[instance]\nname = cfgtest\nworkers = 1\n[segment]\nmax_agents = 1048576\n"
		    "mailbox_cells = 1048576\n",
		    "above [segment] max_size");
	/* a ceiling set above it: then /dev/shm's free space is what stops it */
	expect_check_error("[instance]\nworkers = 1\n[segment]\nmax_agents = 1048576\n"
			   "mailbox_cells = 1048576\nmax_size = 1000000G\n",
			   0, "free in /dev/shm");
	expect_error("[segment]\nmax_size = 0\n", 2, "max_size = '0'");
}

/* A small ceiling is kept to, with both sizes in the message. */
static void test_config_check_segment_max_size(void **state)
{
	struct sup_config c;
	struct sup_config_facts f;
	char err[512] = "";

	(void)state;
	assert_int_equal(load_text(&c, "[instance]\nworkers = 1\n[segment]\nmax_size = 1M\n", err,
				   sizeof(err)),
			 0);
	unlink(path);
	assert_int_equal(sup_config_check(&c, &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":4: [segment] max_size = 1.0 MiB"));
	assert_int_equal(f.seg_max, 1u << 20);
	assert_true(f.seg_size > f.seg_max);
}

/* Run `shoal run FILE` with text in FILE; expect exit 2, `want` on stderr, no instance. */
static void run_refuses(const char *text, const char *want)
{
	char out[1024];

	assert_int_equal(run_tool(text, NULL, out, sizeof(out)), 2);
	if (!strstr(out, want))
		fail_msg("run said: %s\nwant: %s", out, want);
	assert_int_equal(access("/dev/shm/shoal.cfgtest", F_OK), -1);
}

/* The command: a bad line gets file:line on stderr, exit 2, and no instance is created. */
static void test_config_run_refuses_bad_file(void **state)
{
	(void)state;
	run_refuses("[instance]\nname = cfgtest\nworkers = 1\n[agent x]\ntype = echo\n"
		    "colour = red\n",
		    ":6: [agent x]: unknown key 'colour'");
}

static void test_config_run_refuses_unknown_type(void **state)
{
	(void)state;
	run_refuses("[instance]\nname = cfgtest\nworkers = 1\n[agent x]\ntype = nosuch\n",
		    ":5: [agent x]: unknown agent type 'nosuch'");
}

static void test_config_run_refuses_missing_library(void **state)
{
	(void)state;
	run_refuses("[instance]\nname = cfgtest\nworkers = 1\n[types]\nload = /no/such.so\n",
		    ":5: [types] load = /no/such.so");
}

static void test_config_policy_backoff(void **state)
{
	struct sup_policy p = {
		.backoff_initial_ms = 10, .backoff_max_ms = 100, .backoff_factor = 2};

	(void)state;
	assert_int_equal(sup_backoff_ms(&p, 1), 0);
	assert_int_equal(sup_backoff_ms(&p, 2), 10);
	assert_int_equal(sup_backoff_ms(&p, 3), 20);
	assert_int_equal(sup_backoff_ms(&p, 5), 80);
	assert_int_equal(sup_backoff_ms(&p, 6), 100);
	assert_int_equal(sup_backoff_ms(&p, 60), 100);
	p.backoff_first = true;
	assert_int_equal(sup_backoff_ms(&p, 1), 10);
	assert_int_equal(sup_backoff_ms(&p, 2), 20);
}

static void test_config_policy_intensity(void **state)
{
	struct sup_policy p = {.intensity = 3, .period_ms = 1000};
	struct sup_intensity in;
	uint64_t ms = 1000000;

	(void)state;
	assert_int_equal(sup_intensity_init(&in, &p), 0);
	sup_intensity_note(&in, 0);
	sup_intensity_note(&in, 100 * ms);
	sup_intensity_note(&in, 200 * ms);
	assert_false(sup_intensity_is_exceeded(&in, &p));
	/* a fourth inside the second: over */
	sup_intensity_note(&in, 900 * ms);
	assert_true(sup_intensity_is_exceeded(&in, &p));
	/* the window slides: 100, 200, 900, 1150 spans 1050 ms */
	sup_intensity_note(&in, 1150 * ms);
	assert_false(sup_intensity_is_exceeded(&in, &p));
	sup_intensity_free(&in);
	p.intensity = 0;
	assert_int_equal(sup_intensity_init(&in, &p), 0);
	sup_intensity_note(&in, 5 * ms);
	assert_true(sup_intensity_is_exceeded(&in, &p));
	sup_intensity_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_default_parses),
		cmocka_unit_test(test_config_full_file),
		cmocka_unit_test(test_config_missing_file),
		cmocka_unit_test(test_config_pools),
		cmocka_unit_test(test_config_unknown_key),
		cmocka_unit_test(test_config_bad_number),
		cmocka_unit_test(test_config_negative_number),
		cmocka_unit_test(test_config_unknown_section),
		cmocka_unit_test(test_config_syntax_error),
		cmocka_unit_test(test_config_unclosed_section),
		cmocka_unit_test(test_config_key_outside_section),
		cmocka_unit_test(test_config_bad_strategy),
		cmocka_unit_test(test_config_bad_hang_timeout),
		cmocka_unit_test(test_config_bad_size),
		cmocka_unit_test(test_config_bad_cpus),
		cmocka_unit_test(test_config_relative_cgroup),
		cmocka_unit_test(test_config_bad_instance_name),
		cmocka_unit_test(test_config_agent_without_type),
		cmocka_unit_test(test_config_agent_count_needs_pattern),
		cmocka_unit_test(test_config_agent_bad_pattern),
		cmocka_unit_test(test_config_agent_worker_out_of_range),
		cmocka_unit_test(test_config_segment_not_pow2),
		cmocka_unit_test(test_config_segment_variables),
		cmocka_unit_test(test_config_segment_rounds),
		cmocka_unit_test(test_config_more_agents_than_slots),
		cmocka_unit_test(test_config_backoff_max_below_initial),
		cmocka_unit_test(test_config_first_error_wins),
		cmocka_unit_test(test_config_long_line_refused),
		cmocka_unit_test(test_config_longest_line_parses),
		cmocka_unit_test(test_config_long_line_in_string),
		cmocka_unit_test(test_config_hang_timeout_nan),
		cmocka_unit_test(test_config_hang_timeout_sub_ms),
		cmocka_unit_test(test_config_leading_zero_refused),
		cmocka_unit_test(test_config_mode_other_bits_refused),
		cmocka_unit_test(test_config_mode_group_needs_opt_in),
		cmocka_unit_test(test_config_duplicate_section),
		cmocka_unit_test(test_config_duplicate_key),
		cmocka_unit_test(test_config_types_load_repeats),
		cmocka_unit_test(test_config_not_a_regular_file),
		cmocka_unit_test(test_config_registry_holds_agents),
		cmocka_unit_test(test_config_check_default_passes),
		cmocka_unit_test(test_config_print_default_checks),
		cmocka_unit_test(test_config_check_cpus_missing),
		cmocka_unit_test(test_config_check_cgroup_not_v2),
		cmocka_unit_test(test_config_check_max_procs),
		cmocka_unit_test(test_config_dist_keys),
		cmocka_unit_test(test_config_check_dist_cookie),
		cmocka_unit_test(test_config_check_control_inbox_slot),
		cmocka_unit_test(test_config_check_types),
		cmocka_unit_test(test_config_check_crashing_plugin),
		cmocka_unit_test(test_config_check_segment_too_big),
		cmocka_unit_test(test_config_check_segment_max_size),
		cmocka_unit_test(test_config_run_refuses_bad_file),
		cmocka_unit_test(test_config_run_refuses_unknown_type),
		cmocka_unit_test(test_config_run_refuses_missing_library),
		cmocka_unit_test(test_config_segment_events),
		cmocka_unit_test(test_config_policy_backoff),
		cmocka_unit_test(test_config_policy_intensity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
