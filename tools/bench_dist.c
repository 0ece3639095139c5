/*
 * shoal bench dist: the Erlang distribution on loopback, in one run. A BEAM node (the client)
 * calls and casts, once to a shoal instance's agents through its [dist] gateway and once to
 * processes on a second BEAM node (the baselines, the same protocol end to end):
 *   dist_call_beam_to_shoal  gen_server:call of a shoal echo agent, per call
 *   dist_call_beam_to_beam   the same to an echo process on the second BEAM node
 *   dist_cast_beam_to_shoal  casts to a shoal counter agent, per message (batches of casts,
 *                            each closed by a call that orders after them)
 *   dist_cast_beam_to_beam   the same to a counting process on the second BEAM node
 * and from shoal, through remote handles (shoal_client_remote()), timed by this process:
 *   dist_call_shoal_to_shoal a client of the instance calling a second instance's echo agent
 *                            through both gateways, per call
 *   dist_cast_shoal_to_beam  that client's casts to the counting process on the second BEAM
 *                            node (batches closed by a call, as above), per message
 * The Erlang side measures (erlang:monotonic_time) and prints its samples; this process runs
 * the instances and the nodes and prints the report. Needs libei and `erl` (erlang-nox).
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist/dist.h"
#include "shm/shm.h"
#include "shoal/client.h"
#include "tools/bench.h"
#include "tools/tools.h"

#define DIST_BENCH_WAIT_MS 60000 /* a node's answer (boot, a whole measurement) */

/* The second BEAM node: an echo and a counting process, speaking gen_server's call protocol. */
static const char server_program[] =
	"Echo = fun Loop() -> receive {'$gen_call', {F, T}, R} -> F ! {T, R}, Loop();"
	"  _ -> Loop() end end,"
	"register(echo, spawn(Echo)),"
	"Sink = fun S(C) -> receive {'$gen_call', {F, T}, _} -> F ! {T, integer_to_binary(C)}, "
	"S(C);"
	"  _ -> S(C + 1) end end,"
	"register(sink, spawn(fun() -> Sink(0) end)),"
	"io:format(\"ready~n\"),"
	"receive after infinity -> ok end.";

/* The client node: measures, prints "ROW name ops_per_s sample..." per row, halts. */
static const char client_program[] =
	"S = list_to_atom(os:getenv(\"SHOAL_NODE\")), B = list_to_atom(os:getenv(\"BEAM_NODE\")),"
	"N = list_to_integer(os:getenv(\"BENCH_CALLS\")),"
	"M = list_to_integer(os:getenv(\"BENCH_CASTS\")),"
	"pong = net_adm:ping(B), pong = net_adm:ping(S),"
	"Now = fun() -> erlang:monotonic_time(nanosecond) end,"
	"Calls = fun(D) ->"
	"  _ = [gen_server:call(D, <<\"warm\">>) || _ <- lists:seq(1, 200)],"
	"  T0 = Now(),"
	"  Ls = [begin A = Now(), _ = gen_server:call(D, <<\"ping\">>), Now() - A end"
	"        || _ <- lists:seq(1, N)],"
	"  {N * 1.0e9 / (Now() - T0), Ls} end,"
	"Casts = fun(D) ->"
	"  K = 10, Per = M div K,"
	"  _ = gen_server:call(D, <<>>),"
	"  Ls = [begin A = Now(), [D ! <<\"c\">> || _ <- lists:seq(1, Per)],"
	"          _ = gen_server:call(D, <<>>, 120000), (Now() - A) div Per end"
	"        || _ <- lists:seq(1, K)],"
	"  {1.0e9 * K / lists:sum(Ls), Ls} end,"
	"Out = fun(Name, {Ops, Ls}) -> io:format(\"ROW ~s ~.1f~s~n\","
	"  [Name, Ops, [[$\\s, integer_to_list(L)] || L <- Ls]]) end,"
	"Out(\"dist_call_beam_to_shoal\", Calls({echo, S})),"
	"Out(\"dist_call_beam_to_beam\", Calls({echo, B})),"
	"Out(\"dist_cast_beam_to_shoal\", Casts({counter, S})),"
	"Out(\"dist_cast_beam_to_beam\", Casts({sink, B})),"
	"halt().";

/* A BEAM node we started: its pid and its stdout, read line by line. */
struct node {
	pid_t pid;
	int out;
	char *buf;
	size_t len, cap;
	size_t taken; /* bytes of the line node_line() returned last */
};

static int is_on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[512];

	while (path && *path) {
		const char *e = strchr(path, ':');
		size_t n = e ? (size_t)(e - path) : strlen(path);

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return 1;
		path = e ? e + 1 : NULL;
	}
	return 0;
}

/* Start `erl -noshell -name NAME -setcookie C -eval PROGRAM`, env KEY=VALUE pairs set. */
static int node_start(struct node *nd, const char *name, const char *cookie, const char *program,
		      const char *const *env)
{
	int out[2];

	memset(nd, 0, sizeof(*nd));
	if (pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	nd->pid = fork();
	if (nd->pid < 0) {
		close(out[0]);
		close(out[1]);
		return -errno;
	}
	if (nd->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);
		dup2(out[1], 1);
		for (; env && env[0]; env += 2)
			setenv(env[0], env[1], 1);
		execlp("erl", "erl", "-noshell", "-name", name, "-setcookie", cookie, "-eval",
		       program, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	nd->out = out[0];
	return 0;
}

/* The node's next line (NUL-terminated in place, valid until the next call), or NULL. */
static char *node_line(struct node *nd, int timeout_ms)
{
	uint64_t dl = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;

	/* drop the line returned last time */
	if (nd->taken) {
		memmove(nd->buf, nd->buf + nd->taken, nd->len - nd->taken);
		nd->len -= nd->taken;
		nd->taken = 0;
	}
	for (;;) {
		char *nl = nd->buf ? memchr(nd->buf, '\n', nd->len) : NULL;
		struct pollfd p = {.fd = nd->out, .events = POLLIN};
		uint64_t now = bench_now_ns();
		ssize_t n;

		if (nl) {
			*nl = 0;
			nd->taken = (size_t)(nl - nd->buf) + 1;
			return nd->buf;
		}
		if (now >= dl || poll(&p, 1, (int)((dl - now) / 1000000u) + 1) != 1)
			return NULL;
		if (nd->cap - nd->len < 65536) {
			char *b = realloc(nd->buf, nd->cap + (1u << 20));

			if (!b)
				return NULL;
			nd->buf = b;
			nd->cap += 1u << 20;
		}
		n = read(nd->out, nd->buf + nd->len, nd->cap - nd->len);
		if (n <= 0)
			return NULL;
		nd->len += (size_t)n;
	}
}

static void node_stop(struct node *nd)
{
	if (nd->pid > 0) {
		kill(nd->pid, SIGKILL);
		waitpid(nd->pid, NULL, 0);
	}
	if (nd->pid > 0)
		close(nd->out);
	free(nd->buf);
	nd->pid = 0;
}

/* A random cookie in a new file only we can read. */
static int cookie_write(const char *path, char *cookie, size_t cap)
{
	unsigned char r[16];
	int fd;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	for (size_t i = 0; i < sizeof(r) && 2 * i + 2 < cap; i++)
		snprintf(cookie + 2 * i, 3, "%02x", r[i]);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, cookie, strlen(cookie)) != (ssize_t)strlen(cookie)) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

/* The gateway of the instance is running (its process slot RUNNING), within 10 s. */
static int gateway_wait(const char *inst)
{
	uint64_t dl = bench_now_ns() + 10000000000ull;
	struct shm_seg *seg;
	char err[256];
	int r = -ETIMEDOUT;

	if (shm_seg_attach(inst, 0, 1000, &seg, err, sizeof(err)))
		return -ENOENT;
	for (;;) {
		uint32_t seen = shm_change_read(seg);

		for (uint32_t i = 0; i < shm_hdr(seg)->cfg.max_procs; i++) {
			struct shm_proc *p = shm_proc_at(seg, i);

			/* relaxed: status words; the gateway's own connections are its proof */
			if (atomic_load_explicit(&p->role, memory_order_relaxed) ==
				    SHM_ROLE_GATEWAY &&
			    atomic_load_explicit(&p->state, memory_order_relaxed) ==
				    SHM_PROC_RUNNING) {
				r = 0;
				goto out;
			}
		}
		if (shm_change_wait(seg, seen, dl))
			break;
	}
out:
	shm_seg_detach(seg);
	return r;
}

/* Parse "ROW name ops s1 s2 ..." into the report: a result or a baseline. */
static int add_row(struct bench_report *rep, char *line)
{
	char *save, *name, *ops;
	uint64_t *ns = NULL;
	size_t n = 0, cap = 0;
	struct bench_row *row;

	if (strncmp(line, "ROW ", 4))
		return -EPROTO;
	name = strtok_r(line + 4, " ", &save);
	ops = strtok_r(NULL, " ", &save);
	if (!name || !ops)
		return -EPROTO;
	for (char *t; (t = strtok_r(NULL, " ", &save));) {
		if (n == cap) {
			uint64_t *b = realloc(ns, (cap ? cap * 2 : 1024) * sizeof(*ns));

			if (!b) {
				free(ns);
				return -ENOMEM;
			}
			ns = b;
			cap = cap ? cap * 2 : 1024;
		}
		ns[n++] = strtoull(t, NULL, 10);
	}
	if (!n) {
		free(ns);
		return -EPROTO;
	}
	if (strstr(name, "beam_to_beam")) {
		row = bench_add_baseline(rep, name, ns, n, strtod(ops, NULL));
	} else if (!strcmp(name, "dist_call_beam_to_shoal")) {
		/* its budget (bench/budgets.txt): within 1.2x the BEAM-to-BEAM round trip */
		row = bench_add_result(rep, name, ns, n, strtod(ops, NULL),
				       "dist_call_beam_to_beam");
	} else {
		/* its budget: cast throughput at least BEAM-to-BEAM's */
		row = bench_add_result(rep, name, ns, n, strtod(ops, NULL),
				       "dist_cast_beam_to_beam");
	}
	if (!row) {
		free(ns);
		return -ENOSPC;
	}
	free(ns);
	return 0;
}

/*
 * Call the BEAM sink: it answers (after every cast before the call, which orders after them)
 * with how many casts it has counted, into *n. 0, or -1 (said).
 */
static int sink_count(struct shoal_client *c, shoal_handle_t sink, uint64_t *n)
{
	char reply[32];
	int r = shoal_client_call(c, sink, 1, "", 0, reply, sizeof(reply) - 1, 120000);

	if (r < 0) {
		fprintf(stderr, "shoal bench dist: the BEAM sink did not answer: %s\n",
			strerror(-r));
		return -1;
	}
	reply[r] = 0;
	*n = strtoull(reply, NULL, 10);
	return 0;
}

/*
 * The shoal-side rows, from a client of instance inst: calls to echo on node2 and casts to
 * sink on beam (each batch closed by a call). 0, or -1 (said).
 */
static int shoal_rows(struct bench_report *rep, const char *inst, const char *node2,
		      const char *beam, uint32_t ncalls, uint32_t ncasts)
{
	uint64_t *ns = calloc(ncalls > 10 ? ncalls : 10, sizeof(*ns)), t0, sum = 0;
	uint64_t base;
	uint32_t per = ncasts / 10;
	struct shoal_client *c = NULL;
	shoal_handle_t echo, sink;
	char err[256], reply[64];
	int rc = -1, r;

	if (!ns || shoal_client_open(inst, &c, err, sizeof(err))) {
		fprintf(stderr, "shoal bench dist: cannot attach to %s: %s\n", inst,
			ns ? err : "no memory");
		goto out;
	}
	if ((r = shoal_client_remote(c, node2, "echo", &echo)) ||
	    (r = shoal_client_remote(c, beam, "sink", &sink))) {
		fprintf(stderr, "shoal bench dist: no remote handle: %s\n", strerror(-r));
		goto out;
	}
	for (uint32_t i = 0; i < 200; i++) {
		r = shoal_client_call(c, echo, 1, "warm", 4, reply, sizeof(reply), 10000);
		if (r < 0) {
			fprintf(stderr, "shoal bench dist: a call to the second instance: %s\n",
				strerror(-r));
			goto out;
		}
	}
	t0 = bench_now_ns();
	for (uint32_t i = 0; i < ncalls; i++) {
		uint64_t a = bench_now_ns();

		if (shoal_client_call(c, echo, 1, "ping", 4, reply, sizeof(reply), 10000) < 0) {
			fprintf(stderr, "shoal bench dist: a call to the second instance failed\n");
			goto out;
		}
		ns[i] = bench_now_ns() - a;
	}
	if (!bench_add_result(rep, "dist_call_shoal_to_shoal", ns, ncalls,
			      ncalls * 1e9 / (double)(bench_now_ns() - t0),
			      "dist_call_beam_to_beam"))
		goto out;
	if (sink_count(c, sink, &base))
		goto out;
	for (uint32_t k = 0; k < 10; k++) {
		uint64_t a = bench_now_ns(), seen;

		for (uint32_t i = 0; i < per; i++)
			if (shoal_client_cast(c, sink, 0, "c", 1, 10000)) {
				fprintf(stderr,
					"shoal bench dist: a cast to the BEAM node failed\n");
				goto out;
			}
		if (sink_count(c, sink, &seen))
			goto out;
		ns[k] = (bench_now_ns() - a) / per;
		sum += ns[k];
		/* every cast arrived: the sink counted them all, after the BEAM client's */
		if (seen - base != (uint64_t)(k + 1) * per) {
			fprintf(stderr,
				"shoal bench dist: the BEAM sink counted %" PRIu64
				" of our casts, %" PRIu64 " were sent\n",
				seen - base, (uint64_t)(k + 1) * per);
			goto out;
		}
	}
	if (!bench_add_result(rep, "dist_cast_shoal_to_beam", ns, 10, 1e9 * 10 / (double)sum,
			      "dist_cast_beam_to_beam"))
		goto out;
	rc = 0;
out:
	shoal_client_close(c);
	free(ns);
	return rc;
}

/* shoal bench dist (see the top of this file): its rows into rep. A CLI exit code. The tool. */
int bench_dist(struct bench_opts *o, struct bench_report *rep)
{
	char inst[SHM_INSTANCE_MAX], cookie_path[96], cookie[40] = "", text[1024];
	char shoal_node[64], srv_node[64], cli_node[64], calls[16], casts[16], *line;
	char inst2[SHM_INSTANCE_MAX], node2[64];
	struct node srv = {0}, cli = {0};
	int rc = EXIT_SYSTEM, rows = 0;
	pid_t sup = -1, sup2 = -1;

	if (!dist_is_available()) {
		fprintf(stderr, "shoal bench dist: this shoal was built without the Erlang "
				"distribution (libei, from erlang-dev)\n");
		return EXIT_USAGE;
	}
	if (!is_on_path("erl")) {
		fprintf(stderr, "shoal bench dist: needs `erl` on PATH (Debian's erlang-nox) to "
				"run the BEAM nodes\n");
		return EXIT_SYSTEM;
	}
	snprintf(inst, sizeof(inst), "%s", o->instance ? o->instance : "");
	if (!o->instance)
		snprintf(inst, sizeof(inst), "bench-dist-%d", (int)getpid());
	snprintf(cookie_path, sizeof(cookie_path), "/tmp/shoal-bench-dist-%d.cookie",
		 (int)getpid());
	snprintf(shoal_node, sizeof(shoal_node), "shoalbench%d@127.0.0.1", (int)getpid());
	snprintf(srv_node, sizeof(srv_node), "bsrv%d@127.0.0.1", (int)getpid());
	snprintf(cli_node, sizeof(cli_node), "bcli%d@127.0.0.1", (int)getpid());
	snprintf(calls, sizeof(calls), "%d", o->quick ? 2000 : 20000);
	snprintf(casts, sizeof(casts), "%d", o->quick ? 20000 : 200000);
	if (cookie_write(cookie_path, cookie, sizeof(cookie))) {
		fprintf(stderr, "shoal bench dist: cannot write a cookie file %s\n", cookie_path);
		return EXIT_SYSTEM;
	}
	snprintf(text, sizeof(text),
		 "[instance]\nname = %s\nworkers = 1\ncpus = %d\nstatus_interval = 0\n"
		 "[agent echo]\ntype = echo\nname = echo\n"
		 "[agent counter]\ntype = counter\nname = counter\n"
		 "[dist]\nnode = %s\ncookie_file = %s\nmonitors = %s\n",
		 inst, o->cpu_a, shoal_node, cookie_path, o->no_monitors ? "no" : "yes");
	sup = bench_sup_start("dist", text);
	if (sup < 0)
		goto out;
	if (gateway_wait(inst)) {
		fprintf(stderr, "shoal bench dist: the instance's gateway did not start\n");
		goto out;
	}
	/* the second instance, for shoal to shoal: a node of its own, on the other cpu */
	snprintf(inst2, sizeof(inst2), "%.*s-b", (int)sizeof(inst2) - 3, inst);
	snprintf(node2, sizeof(node2), "shoalbench%db@127.0.0.1", (int)getpid());
	snprintf(text, sizeof(text),
		 "[instance]\nname = %s\nworkers = 1\ncpus = %d\nstatus_interval = 0\n"
		 "[agent echo]\ntype = echo\nname = echo\n"
		 "[dist]\nnode = %s\ncookie_file = %s\nmonitors = %s\n",
		 inst2, o->cpu_b, node2, cookie_path, o->no_monitors ? "no" : "yes");
	sup2 = bench_sup_start("dist", text);
	if (sup2 < 0)
		goto out;
	if (gateway_wait(inst2)) {
		fprintf(stderr, "shoal bench dist: the second instance's gateway did not start\n");
		goto out;
	}
	if (node_start(&srv, srv_node, cookie, server_program, NULL) ||
	    !(line = node_line(&srv, DIST_BENCH_WAIT_MS)) || strcmp(line, "ready")) {
		fprintf(stderr, "shoal bench dist: the server BEAM node did not start\n");
		goto out;
	}
	{
		const char *env[] = {"SHOAL_NODE",  shoal_node,	   "BEAM_NODE",
				     srv_node,	    "BENCH_CALLS", calls,
				     "BENCH_CASTS", casts,	   NULL};

		if (node_start(&cli, cli_node, cookie, client_program, env))
			goto out;
	}
	while (rows < 4 && (line = node_line(&cli, DIST_BENCH_WAIT_MS)))
		if (add_row(rep, line) == 0)
			rows++;
	if (rows < 4) {
		fprintf(stderr,
			"shoal bench dist: the client BEAM node stopped after %d of 4 rows\n",
			rows);
		goto out;
	}
	if (shoal_rows(rep, inst, node2, srv_node, (uint32_t)atoi(calls), (uint32_t)atoi(casts)))
		goto out;
	snprintf(rep->notes, sizeof(rep->notes),
		 "loopback; the instance's worker on cpu %d, the BEAM nodes unpinned. %s calls "
		 "(after 200 to warm up), one at a time from one Erlang process, each timed; "
		 "%s casts in 10 batches, each batch closed by a call that orders after its "
		 "casts, per-message time per batch. The BEAM baselines answer with plain "
		 "processes that speak gen_server's call protocol. The shoal rows: a client of "
		 "the instance, through remote handles, to a second instance (its worker on cpu "
		 "%d) and to the second BEAM node, timed the same way. Both instances with [dist] "
		 "monitors = %s%s.",
		 o->cpu_a, calls, casts, o->cpu_b, o->no_monitors ? "no" : "yes",
		 o->no_monitors ? " (--no-monitors: calls from Erlang make no monitors)"
				: " (gen_server:call monitors its target for each call)");
	rc = EXIT_OK;
out:
	node_stop(&cli);
	node_stop(&srv);
	if (sup2 > 0)
		bench_sup_stop("dist", sup2);
	if (sup > 0)
		bench_sup_stop("dist", sup);
	unlink(cookie_path);
	return rc;
}
