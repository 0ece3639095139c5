/*
 * shoal stress: a whole running instance through chaos, with the books checked at the end.
 *
 * The tool starts its own instance (a forked supervisor, as the benchmarks do) running
 * stable agents st-NNN of type "stress" (tools/stress_agent.c) that message each other every
 * tick, a pool and a variable, and keeps a few forked client processes coming and going:
 * casts, batches, calls, async calls, broadcasts, lookups, spawns and stops of churn agents,
 * variable updates, consensus rounds, pool checkouts. Meanwhile it injects the faults of a
 * schedule drawn from the seed: SIGKILL of workers, of clients (mid-call when one is in a
 * call), of the warm spare; SIGSTOP of a worker until the hang detection kills it; agent
 * callbacks that fail; an agent allocating past its worker's memory cap; mailboxes filled
 * to backpressure. Every message carries its sender, its (sender, receiver) number and a
 * checksum (tools/stress.h), booked by the receiver; at the end the books are judged and
 * the instance's tables compared with how they were before the workload.
 *
 * What counts as lost is what the engine promises not to lose (docs/stress.md): a message
 * a send accepted, to an agent that lives to the end. A message to an agent that is stopped
 * (the churn agents) goes with it; a send whose outcome its sender never learnt (killed
 * mid-send, a call that failed) may or may not have gone and is booked as maybe.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/layout.h"
#include "shm/log.h"
#include "shm/shm.h"
#include "shm/view.h"
#include "shoal/client.h"
#include "supervisor/sup.h"
#include "tools/stress.h"
#include "tools/tools.h"

/*
 * $SHOAL_TIME_SCALE (1..100, default 1) multiplies every timeout and wait below, the
 * instance's hang and ready timeouts among them: under software emulation (the qemu guest)
 * everything is many times slower, and the run must check the books, not the machine's speed.
 */
static int time_scale = 1;
#define CALL_TIMEOUT_MS (4000 * time_scale)   /* a client's calls */
#define CALL_GRACE_MS	(2000 * time_scale)   /* beyond its timeout, a call is hanging */
#define HANG_MS		(1000 * time_scale)   /* the hang_timeout of an instance of its own */
#define HANG_GRACE_MS	(5000 * time_scale)   /* beyond it, a stopped worker was not detected */
#define DRAIN_MS	(30000u * time_scale) /* the end: how long the books may take to settle */
#define READY_MS	(20000 * time_scale)  /* the instance's start, all workers ready */
#define MAX_EVENTS	100000u		      /* faults in a schedule */
#define MAX_PIDS	4096u		      /* instance processes remembered for the end checks */
#define MEM_CAP		"256M"		      /* each worker's cap; the hog asks for 1 GiB */
#ifdef __SANITIZE_ADDRESS__
/*
 * ASan's reserved shadow and allocator regions count as private data: under RLIMIT_DATA no
 * worker could allocate at all. No cap, and the memcap faults are skipped.
 */
#define HAVE_MEM_CAP 0
#else
#define HAVE_MEM_CAP 1
#endif

enum ev_kind {
	EV_WORKER_KILL,
	EV_CLIENT_KILL,
	EV_SPARE_KILL,
	EV_WORKER_STOP,
	EV_AGENT_FAIL,
	EV_MEMCAP,
	EV_BACKPRESSURE,
	EV_KINDS,
};

static const char *const ev_names[EV_KINDS] = {
	"worker-kill", "client-kill", "spare-kill",   "worker-stop",
	"agent-fail",  "memcap",      "backpressure",
};

struct event {
	uint32_t at_ms; /* from the start of the workload */
	uint32_t kind;	/* enum ev_kind */
	uint32_t arg;	/* picks the target when it fires */
};

struct opts {
	uint32_t seconds, workers, agents, clients;
	double kill_rate;
	uint64_t seed;
	bool seed_given, json, keep, attach_ok;
	const char *replay, *schedule_out, *instance;
	const char *cgroup; /* --cgroup: the workers' caps as cgroup v2 memory.max */
};

/* What happened, for the summary. */
struct tally {
	uint64_t done[EV_KINDS];    /* faults injected, by kind */
	uint64_t skipped[EV_KINDS]; /* faults with no target when due */
	uint64_t hangs_detected, hangs_missed;
	uint64_t clients_started, clients_killed, clients_killed_in_call, client_bad_exit;
	uint64_t client_open_failed;
	uint64_t mailbox_full; /* bursts that reached backpressure */
	uint64_t worker_restarts, agent_restarts, redelivered_engine;
	uint64_t sent, delivered, maybe, lost, dup, ooo, redelivered, uncheckable;
	uint64_t first_lost_from, first_lost_to, first_lost_seq;
	uint64_t calls, calls_ok, calls_err, calls_timeout, calls_hung;
	uint64_t bcast_sent, bcast_recv, async_sent, async_replied, async_err;
	uint64_t lookups, spawns, stops, var_updates, proposals, proposals_ok, checkouts;
	uint64_t backpressure, fails, memcap_hits, memcap_miss;
	uint64_t memcap_touched, memcap_kills; /* --cgroup: hogs writing, workers OOM-killed */
	double elapsed_s;
};

/* The first invariant that failed, in the order they are checked. */
struct verdict {
	char name[48];
	char saw[400];
};

static void fail(struct verdict *v, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct verdict *v, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (v->name[0])
		return;
	snprintf(v->name, sizeof(v->name), "%s", name);
	va_start(ap, fmt);
	vsnprintf(v->saw, sizeof(v->saw), fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal stress [--seconds N] [--seed S] [--workers N] [--agents N]\n"
		"                    [--clients N] [--kill-rate R] [--json] [--keep-on-failure]\n"
		"                    [--replay FILE | --schedule-out FILE] [--instance NAME]\n"
		"                    [--attach-ok] [--cgroup DIR]\n"
		"Starts an instance of its own and drives it through chaos: stable agents\n"
		"messaging each other (casts, batches, async calls, broadcasts, lookups), client\n"
		"processes attaching, calling, spawning and stopping agents, updating a variable,\n"
		"proposing, checking pool agents out, and detaching; meanwhile faults from the "
		"seed:\n"
		"SIGKILL of workers, clients (mid-call) and the warm spare, SIGSTOP of a worker\n"
		"until the hang detection kills it, failing callbacks, an allocation past a\n"
		"worker's memory cap, mailboxes filled to backpressure. At the end it checks the\n"
		"books (no message lost, duplicated without the redelivered flag, out of order or\n"
		"corrupted; no call left hanging; the registry matches the living agents; no "
		"slot,\n"
		"process, zombie or segment left behind) and prints a summary.\n"
		"  --seconds N          how long the workload runs (default 60)\n"
		"  --seed S             the seed of the schedule and the workload (default: time)\n"
		"  --workers N          workers (default 2)\n"
		"  --agents N           stable agents, 2..%u (default 16)\n"
		"  --clients N          client processes at a time, 0..%u (default 4)\n"
		"  --kill-rate R        faults per second (default 2)\n"
		"  --json               the summary as one JSON object on stdout\n"
		"  --keep-on-failure    on a failed check leave the instance running for\n"
		"                       'shoal inspect' (stop it with 'shoal shutdown')\n"
		"  --schedule-out FILE  write the fault schedule to FILE\n"
		"  --replay FILE        run the schedule (and seed) FILE holds\n"
		"  --instance NAME      the name of the instance it starts (default stress-PID),\n"
		"                       or with --attach-ok the running one it stresses\n"
		"  --cgroup DIR         cap each worker at " MEM_CAP
		" in a cgroup v2 child of DIR\n"
		"                       (a delegated directory with the memory controller) "
		"instead\n"
		"                       of RLIMIT_DATA\n"
		"Environment: SHOAL_TIME_SCALE=N (1..100) multiplies every timeout and wait "
		"(hang,\n"
		"ready, calls, the end's settling) for slow machines such as an emulator.\n"
		"  --attach-ok          with --instance NAME: stress that running instance\n"
		"                       instead (its workers are killed and stopped too; it\n"
		"                       must load the stress plugin: [types] load =\n"
		"                       <libdir>/shoal/stress.so; docs/stress.md)\n"
		"Exit: 0 every invariant held, 1 one failed (named, with what was seen), 2 usage,\n"
		"3 system failure.\n",
		STRESS_AGENTS_MAX, STRESS_CLIENTS_MAX);
}

/* --- the schedule --- */

static int schedule_make(const struct opts *o, struct event **out, uint32_t *n)
{
	static const uint32_t weight[EV_KINDS] = {35, 15, 10, 8, 17, 5, 10};
	uint64_t s = o->seed ^ 0x5deece66dull, end = (uint64_t)o->seconds * 1000u;
	double mean = 1000.0 / (o->kill_rate > 0 ? o->kill_rate : 1);
	struct event *ev = calloc(MAX_EVENTS, sizeof(*ev));
	uint32_t k = 0, first[EV_KINDS];
	double t = 300;

	if (!ev)
		return -ENOMEM;
	if (o->kill_rate <= 0) {
		*out = ev;
		*n = 0;
		return 0;
	}
	/* one of each kind first, in a seeded order, so a short run meets them all */
	for (uint32_t i = 0; i < EV_KINDS; i++)
		first[i] = i;
	for (uint32_t i = EV_KINDS - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(xs(&s) % (i + 1)), x = first[i];

		first[i] = first[j];
		first[j] = x;
	}
	while (k < MAX_EVENTS) {
		uint32_t kind, r;

		/* exponential gaps: faults at random moments at the given mean rate */
		t += -mean * __builtin_log(((double)(xs(&s) % 1000000u) + 1.0) / 1000001.0);
		if (t >= (double)end)
			break;
		if (k < EV_KINDS) {
			kind = first[k];
		} else {
			r = (uint32_t)(xs(&s) % 100u);
			for (kind = 0; kind < EV_KINDS - 1 && r >= weight[kind]; kind++)
				r -= weight[kind];
		}
		ev[k++] = (struct event){(uint32_t)t, kind, (uint32_t)xs(&s)};
	}
	*out = ev;
	*n = k;
	return 0;
}

static int schedule_write(const char *path, uint64_t seed, const struct event *ev, uint32_t n)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "shoal stress: --schedule-out %s: %s\n", path, strerror(errno));
		return -errno;
	}
	fprintf(f,
		"# shoal stress schedule: 'seed S', then 'MS KIND ARG' lines\nseed %" PRIu64 "\n",
		seed);
	for (uint32_t i = 0; i < n; i++)
		fprintf(f, "%u %s %u\n", ev[i].at_ms, ev_names[ev[i].kind], ev[i].arg);
	if (fclose(f)) {
		fprintf(stderr, "shoal stress: --schedule-out %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

static int schedule_read(const char *path, uint64_t *seed, struct event **out, uint32_t *n)
{
	FILE *f = fopen(path, "r");
	struct event *ev = calloc(MAX_EVENTS, sizeof(*ev));
	char line[256];
	uint32_t k = 0, lineno = 0;
	bool have_seed = false;
	int rc = -EINVAL;

	if (!f || !ev) {
		fprintf(stderr, "shoal stress: --replay %s: %s\n", path, strerror(errno));
		free(ev);
		if (f)
			fclose(f);
		return -ENOENT;
	}
	while (fgets(line, sizeof(line), f)) {
		char kind[32];
		unsigned at, arg;
		int m;

		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "seed %" SCNu64, seed) == 1) {
			have_seed = true;
			continue;
		}
		if (sscanf(line, "%u %31s %u%n", &at, kind, &arg, &m) != 3 || k >= MAX_EVENTS) {
			fprintf(stderr,
				"shoal stress: %s:%u: not a schedule line ('MS KIND ARG', e.g. "
				"'1500 worker-kill 42')\n",
				path, lineno);
			goto out;
		}
		for (m = 0; m < EV_KINDS && strcmp(kind, ev_names[m]); m++)
			;
		if (m == EV_KINDS) {
			fprintf(stderr,
				"shoal stress: %s:%u: unknown fault '%s' (worker-kill, "
				"client-kill, "
				"spare-kill, worker-stop, agent-fail, memcap, backpressure)\n",
				path, lineno, kind);
			goto out;
		}
		if (k && at < ev[k - 1].at_ms) {
			fprintf(stderr,
				"shoal stress: %s:%u: fault at %u ms comes before the previous one "
				"(%u ms); a schedule is in time order\n",
				path, lineno, at, ev[k - 1].at_ms);
			goto out;
		}
		ev[k++] = (struct event){at, (uint32_t)m, arg};
	}
	if (!have_seed) {
		fprintf(stderr,
			"shoal stress: %s: no 'seed S' line; write one with --schedule-out\n",
			path);
		goto out;
	}
	*out = ev;
	*n = k;
	ev = NULL;
	rc = 0;
out:
	free(ev);
	fclose(f);
	return rc;
}

static void schedule_print(uint64_t seed, const struct event *ev, uint32_t n)
{
	int col = 0;

	fprintf(stderr, "shoal stress: seed %" PRIu64 ", %u faults scheduled:", seed, n);
	for (uint32_t i = 0; i < n; i++) {
		char b[48];
		int l = snprintf(b, sizeof(b), " %u.%03us %s", ev[i].at_ms / 1000,
				 ev[i].at_ms % 1000, ev_names[ev[i].kind]);

		if (col + l > 96) {
			fprintf(stderr, "\n ");
			col = 0;
		}
		fputs(b, stderr);
		col += l;
	}
	fputc('\n', stderr);
}

/* --- the instance --- */

/*
 * Fork the instance's supervisor from config text; its stdout and stderr go to log (its
 * event lines would drown the progress line, and a kept instance must not hold the tool's
 * output open). Returns its pid once ready, or -1 (said).
 */
static pid_t sup_start(const char *text, const char *log, bool die_with_us)
{
	struct sup_run_opts ro = {.status = false, .log_format = SHM_LOG_QUIET};
	struct sup_config *c = calloc(1, sizeof(*c));
	struct pollfd p = {.events = POLLIN};
	char err[512] = "", b[8];
	int pfd[2];
	pid_t sup = -1;

	if (!c)
		return -1;
	sup_config_init(c);
	if (sup_config_parse_string(c, "<stress>", text, err, sizeof(err))) {
		fprintf(stderr, "shoal stress: %s\n", err);
		goto out_free;
	}
	if (pipe(pfd) < 0)
		goto out_free;
	sup = fork();
	if (sup == 0) {
		/* our death stops the instance in order, unless it is kept for inspection */
		if (die_with_us)
			prctl(PR_SET_PDEATHSIG, SIGTERM);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		close(pfd[0]);
		ro.ready_fd = pfd[1];
		_exit(tool_exit_for(sup_run(c, &ro)));
	}
	close(pfd[1]);
	p.fd = pfd[0];
	if (sup > 0 && (poll(&p, 1, READY_MS) != 1 || read(pfd[0], b, sizeof(b)) != 6)) {
		fprintf(stderr,
			"shoal stress: the instance did not become ready in %d s (its messages: "
			"%s)\n",
			READY_MS / 1000, log);
		kill(sup, SIGKILL);
		waitpid(sup, NULL, 0);
		sup = -1;
	}
	close(pfd[0]);
out_free:
	free(c);
	return sup;
}

/* --- the clients --- */

static uint32_t client_send(struct shoal_client *c, uint32_t id, uint32_t to, bool call,
			    uint64_t *rng)
{
	struct stress_log *lg = stress_log;
	struct stress_client_rec *cr = &lg->client[id - lg->nagents];
	struct stress_pair *p = &lg->pair[id][to];
	shoal_handle_t h = atomic_load_explicit(&lg->agent[to].handle, memory_order_relaxed);
	uint64_t seq = atomic_load_explicit(&p->next, memory_order_relaxed), t0;
	unsigned char buf[STRESS_MSG_MAX], reply[STRESS_MSG_MAX];
	uint32_t len = stress_payload_make(buf, STRESS_K_STREAM, (uint16_t)id, (uint16_t)to, seq);
	struct stress_payload hd;
	int rc;

	(void)rng;
	stress_pair_begin(p, seq);
	if (!call) {
		rc = shoal_client_cast(c, h, 1, buf, len, 50);
		if (rc == 0) {
			stress_pair_commit(p, seq);
			atomic_fetch_add_explicit(&cr->sends, 1, memory_order_relaxed);
		} else if (rc == -EAGAIN || rc == -ETIMEDOUT) {
			atomic_fetch_add_explicit(&cr->backpressure, 1, memory_order_relaxed);
		} else {
			atomic_fetch_add_explicit(&cr->op_errors, 1, memory_order_relaxed);
		}
		stress_pair_end(p);
		return 0;
	}
	atomic_fetch_add_explicit(&cr->calls, 1, memory_order_relaxed);
	atomic_store_explicit(&cr->in_call, 1, memory_order_relaxed);
	t0 = now_ms();
	rc = shoal_client_call(c, h, 1, buf, len, reply, sizeof(reply), CALL_TIMEOUT_MS);
	atomic_store_explicit(&cr->in_call, 0, memory_order_relaxed);
	if (now_ms() - t0 > (uint64_t)(CALL_TIMEOUT_MS + CALL_GRACE_MS))
		atomic_fetch_add_explicit(&cr->calls_hung, 1, memory_order_relaxed);
	if (rc >= 0) {
		stress_pair_commit(p, seq);
		stress_pair_end(p);
		if (stress_payload_check(reply, (uint32_t)rc, &hd) || hd.kind != STRESS_K_ECHO ||
		    hd.seq != seq) {
			atomic_fetch_add_explicit(&lg->violations, 1, memory_order_relaxed);
			stress_violation_note(&lg->first, STRESS_V_CALL_REPLY, id, to, seq,
					      (uint64_t)rc);
		} else {
			atomic_fetch_add_explicit(&cr->calls_ok, 1, memory_order_relaxed);
		}
		return 0;
	}
	/* failed: whether the request went is not known (a timeout after it was queued) */
	stress_pair_recover(p);
	atomic_fetch_add_explicit(&cr->calls_err, 1, memory_order_relaxed);
	if (rc == -ETIMEDOUT)
		atomic_fetch_add_explicit(&cr->calls_timeout, 1, memory_order_relaxed);
	return 0;
}

static void client_async(struct shoal_client *c, uint32_t id, uint32_t to)
{
	struct stress_log *lg = stress_log;
	struct stress_client_rec *cr = &lg->client[id - lg->nagents];
	struct stress_pair *p = &lg->pair[id][to];
	shoal_handle_t h = atomic_load_explicit(&lg->agent[to].handle, memory_order_relaxed);
	uint64_t seq = atomic_load_explicit(&p->next, memory_order_relaxed), ref = 0;
	unsigned char buf[STRESS_MSG_MAX], rb[STRESS_MSG_MAX];
	uint32_t len = stress_payload_make(buf, STRESS_K_STREAM, (uint16_t)id, (uint16_t)to, seq);
	uint64_t t0 = now_ms();
	int rc;

	stress_pair_begin(p, seq);
	rc = shoal_client_call_async(c, h, 1, buf, len, &ref);
	if (rc == 0)
		stress_pair_commit(p, seq);
	stress_pair_end(p);
	if (rc) {
		atomic_fetch_add_explicit(&cr->op_errors, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&cr->calls, 1, memory_order_relaxed);
	atomic_store_explicit(&cr->in_call, 1, memory_order_relaxed);
	for (;;) {
		struct shoal_msg m;
		uint64_t el = now_ms() - t0;

		rc = el >= (uint64_t)CALL_TIMEOUT_MS
			     ? -ETIMEDOUT
			     : shoal_client_recv(c, &m, rb, sizeof(rb),
						 (int)(CALL_TIMEOUT_MS - el));
		if (rc < 0)
			break;
		if (!(m.flags & SHOAL_MSG_REPLY) || m.ref != ref)
			continue; /* a late reply to an earlier call, a notice */
		rc = m.flags & SHOAL_MSG_ERROR ? -EIO : (int)m.len;
		break;
	}
	atomic_store_explicit(&cr->in_call, 0, memory_order_relaxed);
	if (now_ms() - t0 > (uint64_t)(CALL_TIMEOUT_MS + CALL_GRACE_MS))
		atomic_fetch_add_explicit(&cr->calls_hung, 1, memory_order_relaxed);
	if (rc >= 0) {
		atomic_fetch_add_explicit(&cr->calls_ok, 1, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&cr->calls_err, 1, memory_order_relaxed);
		if (rc == -ETIMEDOUT)
			atomic_fetch_add_explicit(&cr->calls_timeout, 1, memory_order_relaxed);
	}
}

static void client_batch(struct shoal_client *c, uint32_t id, uint64_t *rng)
{
	struct stress_log *lg = stress_log;
	struct stress_client_rec *cr = &lg->client[id - lg->nagents];
	unsigned char buf[4][STRESS_MSG_MAX];
	struct shoal_out out[4];
	uint64_t seqs[4];
	uint32_t to[2];
	int n;

	/* two distinct stable agents (--agents is at least 2) */
	to[0] = (uint32_t)(xs(rng) % lg->nagents);
	to[1] = (to[0] + 1) % lg->nagents;
	stress_batch_fill(id, to, 2, out, buf, seqs);
	n = shoal_client_send_batch(c, out, 4, 50);
	stress_batch_done(id, to, 2, seqs, n);
	if (n > 0)
		atomic_fetch_add_explicit(&cr->sends, (uint64_t)n, memory_order_relaxed);
	if (n == -EAGAIN || n == -ETIMEDOUT || (n >= 0 && n < 4))
		atomic_fetch_add_explicit(&cr->backpressure, 1, memory_order_relaxed);
	else if (n < 0)
		atomic_fetch_add_explicit(&cr->op_errors, 1, memory_order_relaxed);
}

static void client_churn(struct shoal_client *c, uint32_t k, uint64_t *rng)
{
	struct stress_client_rec *cr = &stress_log->client[k];
	unsigned char buf[STRESS_MSG_MAX];
	char name[40];
	shoal_handle_t h = 0, found = 0;
	uint32_t len;

	snprintf(name, sizeof(name), "st-churn-%u-%" PRIu64, k, xs(rng) % 1000000u);
	if (shoal_client_spawn(c, "stress_churn", name, 0, 0, &h, NULL, 3000)) {
		atomic_fetch_add_explicit(&cr->op_errors, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&cr->spawns, 1, memory_order_relaxed);
	/* lookups racing the spawn and the stop: found, or gone, never another's handle */
	if (shoal_client_lookup(c, name, &found) == 0 && found != h) {
		atomic_fetch_add_explicit(&stress_log->violations, 1, memory_order_relaxed);
		stress_violation_note(&stress_log->first, STRESS_V_REGISTRY, k, 0, h, found);
	}
	len = stress_payload_make(buf, STRESS_K_CHURN, (uint16_t)k, 0, 1);
	shoal_client_cast(c, h, 1, buf, len, 0);
	if (shoal_client_stop(c, name, 0, 3000) == 0)
		atomic_fetch_add_explicit(&cr->stops, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&cr->op_errors, 1, memory_order_relaxed);
}

static void client_coord(struct shoal_client *c, uint32_t k, uint32_t op, uint64_t *rng)
{
	struct stress_client_rec *cr = &stress_log->client[k];
	int64_t val = (int64_t)(xs(rng) % 1000000u);

	if (op == 0) {
		shoal_var_t v;
		struct shoal_var_set set = {
			.type = SHOAL_VAR_INT, .len = 8, .data = &val, .expect = SHOAL_VAR_ANY};

		if (shoal_client_var_lookup(c, STRESS_VAR, &v) == 0) {
			set.var = v;
			if (shoal_client_var_update(c, &set, 1, NULL, 1000) == 0) {
				atomic_fetch_add_explicit(&cr->var_updates, 1,
							  memory_order_relaxed);
				return;
			}
		}
		atomic_fetch_add_explicit(&cr->op_errors, 1, memory_order_relaxed);
	} else if (op == 1) {
		struct shoal_proposal_result res;
		int rc;

		atomic_fetch_add_explicit(&cr->proposals, 1, memory_order_relaxed);
		rc = shoal_client_propose(c, STRESS_VAR, SHOAL_VAR_INT, &val, 8, STRESS_GROUP,
					  SHOAL_RULE_MAJORITY, 0, 2000, &res);
		if (rc == 0)
			atomic_fetch_add_explicit(&cr->proposals_ok, 1, memory_order_relaxed);
	} else {
		shoal_handle_t a;
		char rb[64];

		if (shoal_client_pool_checkout(c, STRESS_POOL, 1000, &a)) {
			atomic_fetch_add_explicit(&cr->op_errors, 1, memory_order_relaxed);
			return;
		}
		atomic_fetch_add_explicit(&cr->checkouts, 1, memory_order_relaxed);
		shoal_client_call(c, a, 1, "pool", 4, rb, sizeof(rb), 1000);
		shoal_client_pool_checkin(c, STRESS_POOL, a);
	}
}

static void client_lookup(struct shoal_client *c, uint32_t k, uint64_t *rng)
{
	uint32_t j = (uint32_t)(xs(rng) % stress_log->nagents);
	shoal_handle_t want = atomic_load_explicit(&stress_log->agent[j].handle,
						   memory_order_relaxed),
		       got = 0;
	char name[16];

	snprintf(name, sizeof(name), STRESS_AGENT_FMT, j);
	atomic_fetch_add_explicit(&stress_log->client[k].lookups, 1, memory_order_relaxed);
	if (shoal_client_lookup(c, name, &got) || got != want) {
		atomic_fetch_add_explicit(&stress_log->violations, 1, memory_order_relaxed);
		stress_violation_note(&stress_log->first, STRESS_V_REGISTRY,
				      stress_log->nagents + k, j, 0, got);
	}
}

/* A client process: attach, work for a while, detach. Never returns. */
static void client_main(const char *instance, uint32_t k, uint64_t seed)
{
	struct stress_log *lg = stress_log;
	struct stress_client_rec *cr = &lg->client[k];
	uint32_t id = lg->nagents + k;
	struct shoal_client *c;
	uint64_t rng = seed, end;
	char err[256];

	/* numbers a killed predecessor of this id had under way are maybe from now on */
	for (uint32_t j = 0; j < lg->nagents; j++)
		stress_pair_recover(&lg->pair[id][j]);
	if (shoal_client_open(instance, &c, err, sizeof(err)))
		_exit(EXIT_SYSTEM);
	end = now_ms() + 300 + xs(&rng) % 1700;
	while (now_ms() < end && !atomic_load_explicit(&lg->stopping, memory_order_acquire)) {
		uint32_t op = (uint32_t)(xs(&rng) % 100), to = (uint32_t)(xs(&rng) % lg->nagents);

		if (op < 30) {
			client_send(c, id, to, false, &rng);
		} else if (op < 45) {
			client_batch(c, id, &rng);
		} else if (op < 60) {
			client_send(c, id, to, true, &rng);
		} else if (op < 67) {
			client_async(c, id, to);
		} else if (op < 72) {
			unsigned char buf[STRESS_MSG_MAX];
			uint64_t s =
				atomic_fetch_add_explicit(&cr->bcasts, 1, memory_order_relaxed);
			uint32_t len = stress_payload_make(buf, STRESS_K_BCAST, (uint16_t)id,
							   STRESS_TO_ALL, s + 1);

			shoal_client_broadcast(c, STRESS_GROUP, 2, buf, len, 50);
		} else if (op < 82) {
			client_lookup(c, k, &rng);
		} else if (op < 94) {
			client_coord(c, k, op % 3, &rng);
		} else {
			client_churn(c, k, &rng);
		}
	}
	shoal_client_close(c);
	_exit(EXIT_OK);
}

/* --- the run --- */

struct run {
	struct opts *o;
	char instance[SHM_INSTANCE_MAX];
	char log[256]; /* the supervisor's stdout and stderr */
	pid_t sup;
	struct shm_seg *ro;	   /* read-only attachment: pids, snapshots */
	struct shoal_client *cl;   /* the tool's own client: setup, bursts, stops */
	struct shm_view *base, *v; /* the snapshot before the workload, and the last */
	pid_t client_pid[STRESS_CLIENTS_MAX];
	bool client_killed[STRESS_CLIENTS_MAX];
	uint64_t rng;
	/* --cgroup: the last worker pid seen recorded as killed by its cap, by slot */
	uint32_t memcap_pid[64];
	/* the stopped worker awaiting its hang detection */
	pid_t stopped;
	uint32_t stopped_slot; /* its process slot */
	bool stopped_dead;     /* its pidfd said it is gone */
	bool stopped_hang;     /* its slot recorded its exit as a hang */
	int stopped_fd;
	uint64_t stopped_at;
	/* the last workers this tool sent SIGKILL: one may still show RUNNING until the
	 * supervisor notices, and must not be picked to stop for a hang (its exit would read
	 * 'signal') */
	pid_t killed[8];
	uint32_t nkilled;
	/*
	 * The instance's hang timeout in ms (0: none, so no worker-stop faults); whether it is
	 * another's (--attach-ok), then the books' file and whether its workers have a cap.
	 */
	int hang_ms;
	bool attached, cap_any;
	uint32_t spawned; /* stable agents spawned in the attached instance, not yet stopped */
	char books[STRESS_LOG_PATH_MAX];
	/*
	 * Every instance process seen, with its /proc starttime (0: gone when seen): pids wrap
	 * (pid_max is often 32768), and in an hour another process of the machine takes the
	 * number of one of ours; only the same pid with the same start is ours.
	 */
	pid_t pids[MAX_PIDS];
	uint64_t pstart[MAX_PIDS];
	uint32_t npids;
	struct tally t;
	struct verdict vd;
};

/* Whether pid is a zombie (its /proc state 'Z'). */
static bool is_zombie(pid_t pid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'Z';
}

static void remember_pid(struct run *r, pid_t pid)
{
	uint64_t start;

	if (pid <= 0 || pid == getpid())
		return; /* our own client slot */
	start = shm_pid_start_time(pid);
	for (uint32_t i = 0; i < r->npids; i++)
		if (r->pids[i] == pid) {
			/* the number taken again by another process of the instance */
			if (start && r->pstart[i] != start)
				r->pstart[i] = start;
			return;
		}
	if (r->npids < MAX_PIDS) {
		r->pstart[r->npids] = start;
		r->pids[r->npids++] = pid;
	}
}

/* Whether remembered process i still exists (the same process: pid and start), and how. */
static bool still_ours(const struct run *r, uint32_t i, bool *zombie)
{
	bool ours = r->pstart[i] && shm_pid_start_time(r->pids[i]) == r->pstart[i];

	*zombie = ours && is_zombie(r->pids[i]);
	return ours;
}

/* The pid of worker w if it is RUNNING, else 0. */
static pid_t worker_pid(struct run *r, uint32_t w)
{
	struct shm_proc *p = shm_proc_at(r->ro, 1 + w);
	uint64_t own = atomic_load_explicit(&p->own, memory_order_acquire);

	if (atomic_load_explicit(&p->state, memory_order_acquire) != SHM_PROC_RUNNING ||
	    atomic_load_explicit(&p->role, memory_order_relaxed) != SHM_ROLE_WORKER)
		return 0;
	remember_pid(r, (pid_t)(own >> 32));
	return (pid_t)(own >> 32);
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void burst(struct run *r, uint32_t to)
{
	struct stress_log *lg = stress_log;
	uint32_t id = lg->tool_id;
	struct stress_pair *p = &lg->pair[id][to];
	shoal_handle_t h = atomic_load_explicit(&lg->agent[to].handle, memory_order_relaxed);
	unsigned char buf[STRESS_MSG_MAX];

	for (int i = 0; i < 16384; i++) {
		uint64_t seq = atomic_load_explicit(&p->next, memory_order_relaxed);
		uint32_t len =
			stress_payload_make(buf, STRESS_K_STREAM, (uint16_t)id, (uint16_t)to, seq);
		int rc;

		stress_pair_begin(p, seq);
		rc = shoal_client_cast(r->cl, h, 1, buf, len, 0);
		if (rc == 0)
			stress_pair_commit(p, seq);
		stress_pair_end(p);
		if (rc == -EAGAIN) {
			r->t.mailbox_full++;
			return;
		}
		if (rc)
			return;
	}
}

static void fire(struct run *r, const struct event *e)
{
	struct stress_log *lg = stress_log;
	uint32_t w = e->arg % r->o->workers;
	pid_t pid = 0;

	switch (e->kind) {
	case EV_WORKER_KILL:
		/*
		 * The first running worker from w on, never in the slot of the one stopped for
		 * a hang until its exit is seen recorded: its replacement's exit would
		 * overwrite that record.
		 */
		for (uint32_t i = 0; i < r->o->workers && !pid; i++) {
			uint32_t x = (w + i) % r->o->workers;

			if (!r->stopped || 1 + x != r->stopped_slot)
				pid = worker_pid(r, x);
		}
		break;
	case EV_WORKER_STOP:
		if (!r->stopped && r->hang_ms)
			pid = worker_pid(r, w);
		for (uint32_t i = 0; i < 8 && pid > 0; i++)
			if (r->killed[i] == pid)
				pid = 0; /* killed by us, not yet seen dead: skipped */
		break;
	case EV_SPARE_KILL: {
		uint32_t sp = atomic_load_explicit(&shm_hdr(r->ro)->spare, memory_order_acquire);

		sp &= ~SHM_SPARE_READY;
		if (sp > SHM_SPARE_FORKING)
			pid = (pid_t)sp;
		break;
	}
	case EV_CLIENT_KILL: {
		uint32_t n = r->o->clients, pick = n;

		/* one in a call if there is one: a client killed mid-call */
		for (uint32_t i = 0; i < n && pick == n; i++) {
			uint32_t k = (e->arg + i) % n;

			if (r->client_pid[k] && !r->client_killed[k] &&
			    atomic_load_explicit(&lg->client[k].in_call, memory_order_relaxed))
				pick = k;
		}
		for (uint32_t i = 0; i < n && pick == n; i++) {
			uint32_t k = (e->arg + i) % n;

			if (r->client_pid[k] && !r->client_killed[k])
				pick = k;
		}
		if (pick < n) {
			if (atomic_load_explicit(&lg->client[pick].in_call, memory_order_relaxed))
				r->t.clients_killed_in_call++;
			kill(r->client_pid[pick], SIGKILL);
			r->client_killed[pick] = true;
			r->t.done[e->kind]++;
			return;
		}
		break;
	}
	case EV_AGENT_FAIL:
		atomic_store_explicit(&lg->agent[e->arg % lg->nagents].fail_req, 1,
				      memory_order_relaxed);
		r->t.done[e->kind]++;
		return;
	case EV_MEMCAP:
		if (!HAVE_MEM_CAP || (r->attached && !r->cap_any))
			break; /* no cap to go past (an ASan build, an instance without): skipped */
		atomic_store_explicit(&lg->agent[e->arg % lg->nagents].memhog_req, 1,
				      memory_order_relaxed);
		r->t.done[e->kind]++;
		return;
	case EV_BACKPRESSURE:
		burst(r, e->arg % lg->nagents);
		r->t.done[e->kind]++;
		return;
	}
	if (pid <= 0) {
		r->t.skipped[e->kind]++;
		return;
	}
	remember_pid(r, pid);
	if (e->kind == EV_WORKER_STOP) {
		r->stopped_fd = pidfd_open_(pid);
		if (r->stopped_fd < 0) {
			r->t.skipped[e->kind]++;
			return;
		}
		r->stopped = pid;
		r->stopped_slot = 1 + w;
		r->stopped_at = now_ms();
		kill(pid, SIGSTOP);
	} else {
		kill(pid, SIGKILL);
		r->killed[r->nkilled++ % 8] = pid;
	}
	r->t.done[e->kind]++;
}

/*
 * The stopped worker: killed by the hang detection in time, its exit recorded as a hang;
 * else a violation.
 */
static void watch_stopped(struct run *r)
{
	struct pollfd p = {.fd = r->stopped_fd, .events = POLLIN};
	struct shm_proc *sp;
	uint32_t why = SHM_EXIT_NONE;
	bool mine;

	if (!r->stopped)
		return;
	if (!r->stopped_dead && poll(&p, 1, 0) == 1)
		r->stopped_dead = true;
	sp = shm_proc_at(r->ro, r->stopped_slot);
	/* relaxed: status words; a mix of two records for an instant is read again */
	mine = atomic_load_explicit(&sp->last_pid, memory_order_relaxed) == (uint32_t)r->stopped;
	if (mine)
		why = atomic_load_explicit(&sp->last_reason, memory_order_relaxed);
	/* the record can come before the pidfd says so (the death is noticed early) */
	if (why == SHM_EXIT_HANG)
		r->stopped_hang = true;
	if (r->stopped_dead && r->stopped_hang) {
		r->t.hangs_detected++;
	} else if (now_ms() - r->stopped_at > (uint64_t)(r->hang_ms + HANG_GRACE_MS)) {
		r->t.hangs_missed++;
		if (!r->stopped_dead && r->stopped_hang)
			fail(&r->vd, "hang detected",
			     "worker pid %d, recorded as killed for a hang, still runs %" PRIu64
			     " ms after its SIGSTOP",
			     (int)r->stopped, now_ms() - r->stopped_at);
		else if (!r->stopped_dead)
			fail(&r->vd, "hang detected",
			     "worker pid %d stopped (SIGSTOP) for %" PRIu64
			     " ms was not killed by the hang detection (hang_timeout %d ms)",
			     (int)r->stopped, now_ms() - r->stopped_at, r->hang_ms);
		else
			fail(&r->vd, "hang detected",
			     "worker pid %d stopped (SIGSTOP) was killed, but its exit reads '%s', "
			     "not a hang",
			     (int)r->stopped,
			     mine ? shm_exit_reason_name(why) : "another pid's or nothing");
		kill(r->stopped, SIGCONT);
	} else {
		return;
	}
	close(r->stopped_fd);
	r->stopped = 0;
	r->stopped_dead = false;
	r->stopped_hang = false;
}

static void reap_clients(struct run *r)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (uint32_t k = 0; k < r->o->clients; k++) {
			if (r->client_pid[k] != pid)
				continue;
			if (WIFSIGNALED(st) && !(r->client_killed[k] && WTERMSIG(st) == SIGKILL)) {
				r->t.client_bad_exit++;
				fail(&r->vd, "clients end cleanly",
				     "client %u (pid %d) died of signal %d", k, (int)pid,
				     WTERMSIG(st));
			} else if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_SYSTEM) {
				r->t.client_open_failed++;
			} else if (WIFEXITED(st) && WEXITSTATUS(st)) {
				r->t.client_bad_exit++;
				fail(&r->vd, "clients end cleanly", "client %u (pid %d) exited %d",
				     k, (int)pid, WEXITSTATUS(st));
			}
			r->client_pid[k] = 0;
			r->client_killed[k] = false;
			atomic_store_explicit(&stress_log->client[k].pid, 0, memory_order_relaxed);
		}
	}
}

static void start_clients(struct run *r)
{
	for (uint32_t k = 0; k < r->o->clients; k++) {
		uint64_t seed = xs(&r->rng);
		pid_t pid;

		if (r->client_pid[k])
			continue;
		fflush(NULL);
		pid = fork();
		if (pid == 0)
			client_main(r->instance, k, seed);
		if (pid < 0)
			return;
		r->client_pid[k] = pid;
		atomic_store_explicit(&stress_log->client[k].pid, pid, memory_order_relaxed);
		atomic_fetch_add_explicit(&stress_log->client[k].runs, 1, memory_order_relaxed);
		r->t.clients_started++;
	}
}

/* Messages delivered so far (the receivers' highest numbers): for the progress line. */
static uint64_t delivered_now(void)
{
	struct stress_log *lg = stress_log;
	uint64_t n = 0;

	for (uint32_t s = 0; s <= lg->tool_id; s++)
		for (uint32_t j = 0; j < lg->nagents; j++)
			n += atomic_load_explicit(&lg->pair[s][j].hi, memory_order_relaxed);
	return n;
}

/*
 * --cgroup: count the workers whose exit the supervisor recorded as "memory cap" (the
 * hogs' OOM kills). Each slot's last record, read as the run goes; two exits of one slot
 * between two looks count once, so the count is a floor. Reported, not checked: a hog's
 * write of 1 GiB is slow under emulation and another fault may kill its worker first (in
 * the qemu guest 2 hogs wrote and none was recorded; test_supervisor checks the record).
 * The check is that no hog lived through its write (memcap_miss).
 */
static void watch_memcap(struct run *r)
{
	for (uint32_t w = 0; r->o->cgroup && w < r->o->workers; w++) {
		struct shm_proc *sp = shm_proc_at(r->ro, 1 + w);
		/* relaxed: status words; a record half seen is seen whole at the next look */
		uint32_t pid = atomic_load_explicit(&sp->last_pid, memory_order_relaxed);

		if (atomic_load_explicit(&sp->last_reason, memory_order_relaxed) ==
			    SHM_EXIT_MEMCAP &&
		    pid && pid != r->memcap_pid[w]) {
			r->memcap_pid[w] = pid;
			r->t.memcap_kills++;
		}
	}
}

static uint64_t restarts_now(struct run *r)
{
	uint64_t n = 0;

	for (uint32_t w = 0; w < r->o->workers; w++)
		n += atomic_load_explicit(&shm_proc_at(r->ro, 1 + w)->restarts,
					  memory_order_relaxed);
	return n;
}

static void progress(struct run *r, uint64_t el, bool tty, bool last)
{
	static uint64_t prev_t, prev_n;
	uint64_t n = delivered_now(), kills = 0;
	double rate = el > prev_t ? (double)(n - prev_n) * 1000.0 / (double)(el - prev_t) : 0;

	for (int k = 0; k < EV_KINDS; k++)
		kills += r->t.done[k];
	fprintf(stderr,
		"%sshoal stress: %3" PRIu64 ".%us / %us  faults %" PRIu64 "  msgs/s %.0f  "
		"restarts %" PRIu64 "%s",
		tty ? "\r" : "", el / 1000, (unsigned)(el % 1000) / 100, r->o->seconds, kills, rate,
		restarts_now(r), tty && !last ? "   " : "\n");
	prev_t = el;
	prev_n = n;
}

static const char *sender_name(uint32_t id, char *b, size_t cap)
{
	if (id < stress_log->nagents)
		snprintf(b, cap, STRESS_AGENT_FMT, id);
	else if (id < stress_log->tool_id)
		snprintf(b, cap, "client %u", id - stress_log->nagents);
	else
		snprintf(b, cap, "the tool");
	return b;
}

/* Judge every pair's books. */
static void judge_pairs(struct run *r)
{
	struct stress_log *lg = stress_log;
	struct tally *t = &r->t;

	for (uint32_t s = 0; s <= lg->tool_id; s++) {
		for (uint32_t j = 0; j < lg->nagents; j++) {
			struct stress_pair *p = &lg->pair[s][j];
			struct stress_pair_result pr;

			stress_pair_check(p, &pr);
			t->sent += pr.sent;
			t->delivered += pr.delivered;
			t->maybe += pr.maybe;
			t->uncheckable += pr.uncheckable;
			t->redelivered +=
				atomic_load_explicit(&p->redelivered, memory_order_relaxed);
			t->dup += atomic_load_explicit(&p->dup, memory_order_relaxed);
			t->ooo += atomic_load_explicit(&p->ooo, memory_order_relaxed);
			if (pr.lost && !t->lost) {
				t->first_lost_from = s;
				t->first_lost_to = j;
				t->first_lost_seq = pr.first_lost;
			}
			t->lost += pr.lost;
		}
	}
}

/* True once every accepted message has been delivered (or the wait is over). */
static bool settled(void)
{
	struct stress_log *lg = stress_log;

	for (uint32_t s = 0; s <= lg->tool_id; s++)
		for (uint32_t j = 0; j < lg->nagents; j++) {
			struct stress_pair_result pr;

			stress_pair_check(&lg->pair[s][j], &pr);
			if (pr.lost)
				return false;
		}
	return true;
}

static void sum_books(struct run *r)
{
	struct stress_log *lg = stress_log;
	struct tally *t = &r->t;

	for (uint32_t i = 0; i < lg->nagents; i++) {
		struct stress_agent_rec *a = &lg->agent[i];

		t->bcast_sent += atomic_load_explicit(&a->bcast_sent, memory_order_relaxed);
		t->bcast_recv += atomic_load_explicit(&a->bcast_recv, memory_order_relaxed);
		t->async_sent += atomic_load_explicit(&a->async_sent, memory_order_relaxed);
		t->async_replied += atomic_load_explicit(&a->async_replied, memory_order_relaxed);
		t->async_err += atomic_load_explicit(&a->async_err, memory_order_relaxed);
		t->backpressure += atomic_load_explicit(&a->backpressure, memory_order_relaxed);
		t->fails += atomic_load_explicit(&a->fails, memory_order_relaxed);
		t->memcap_hits += atomic_load_explicit(&a->memcap_hits, memory_order_relaxed);
		t->memcap_miss += atomic_load_explicit(&a->memcap_miss, memory_order_relaxed);
		t->lookups += atomic_load_explicit(&a->lookups, memory_order_relaxed);
	}
	t->memcap_touched = atomic_load_explicit(&lg->hog_touched, memory_order_relaxed);
	for (uint32_t k = 0; k < lg->nclients; k++) {
		struct stress_client_rec *c = &lg->client[k];

		t->calls += atomic_load_explicit(&c->calls, memory_order_relaxed);
		t->calls_ok += atomic_load_explicit(&c->calls_ok, memory_order_relaxed);
		t->calls_err += atomic_load_explicit(&c->calls_err, memory_order_relaxed);
		t->calls_timeout += atomic_load_explicit(&c->calls_timeout, memory_order_relaxed);
		t->calls_hung += atomic_load_explicit(&c->calls_hung, memory_order_relaxed);
		t->backpressure += atomic_load_explicit(&c->backpressure, memory_order_relaxed);
		t->lookups += atomic_load_explicit(&c->lookups, memory_order_relaxed);
		t->spawns += atomic_load_explicit(&c->spawns, memory_order_relaxed);
		t->stops += atomic_load_explicit(&c->stops, memory_order_relaxed);
		t->var_updates += atomic_load_explicit(&c->var_updates, memory_order_relaxed);
		t->proposals += atomic_load_explicit(&c->proposals, memory_order_relaxed);
		t->proposals_ok += atomic_load_explicit(&c->proposals_ok, memory_order_relaxed);
		t->checkouts += atomic_load_explicit(&c->checkouts, memory_order_relaxed);
	}
}

static int take(struct run *r, struct shm_view *v)
{
	return shm_view_take(r->ro, 3000000000ull, v);
}

static uint32_t procs_in_use(const struct shm_view *v, uint32_t role)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < v->nprocs; i++)
		if (v->procs[i].pid && v->procs[i].role == role &&
		    v->procs[i].state != SHM_PROC_FREE && v->procs[i].state != SHM_PROC_EXITED)
			n++;
	return n;
}

/* Stop the churn agents killed clients left behind (their stop never came). */
static void stop_leftover_churn(struct run *r)
{
	if (take(r, r->v))
		return;
	for (uint32_t i = 0; i < r->v->nnames; i++)
		if (!strncmp(r->v->names[i].name, "st-churn-", 9) && !r->v->names[i].is_var)
			shoal_client_stop(r->cl, r->v->names[i].name, 0, 3000);
}

/* The registry and the tables after the run, against the snapshot before it. */
static void check_tables(struct run *r)
{
	struct shm_view *v = r->v, *b = r->base;
	uint64_t t0 = now_ms();

	/* the supervisor reaps killed clients' slots on its scan: give it a moment */
	for (;;) {
		if (take(r, v)) {
			fail(&r->vd, "snapshot", "could not take a snapshot of the instance");
			return;
		}
		if ((procs_in_use(v, SHM_ROLE_CLIENT) == procs_in_use(b, SHM_ROLE_CLIENT) &&
		     v->nagents == b->nagents && v->nnames == b->nnames && !v->rounds_in_use) ||
		    now_ms() - t0 > 10000)
			break;
		/*
		 * A spawn asked by a client killed in it, or given up by its timeout, still
		 * runs to its end: its churn agent can come after the last look. The spawn is
		 * the client's request, not a leak; it is stopped like the others.
		 */
		stop_leftover_churn(r);
		usleep(50000);
	}
	/* every name names a living agent (or is a variable's) */
	for (uint32_t i = 0; i < v->nnames; i++) {
		const struct shm_view_name *n = &v->names[i];
		const struct shm_view_agent *a;

		if (n->is_var)
			continue;
		a = shm_view_agent_find(v, shoal_handle_slot(n->handle));
		if (!a || a->gen != shoal_handle_gen(n->handle) || a->state == SHM_AGENT_STOPPED) {
			fail(&r->vd, "registry consistent with living agents",
			     "name '%s' names handle %#" PRIx64 ", whose agent is %s", n->name,
			     (uint64_t)n->handle, a ? "another incarnation or stopped" : "gone");
			return;
		}
	}
	for (uint32_t i = 0; i < stress_log->nagents; i++) {
		shoal_handle_t h =
			atomic_load_explicit(&stress_log->agent[i].handle, memory_order_relaxed);
		const struct shm_view_agent *a = shm_view_agent_find(v, shoal_handle_slot(h));

		if (!a || a->gen != shoal_handle_gen(h)) {
			fail(&r->vd, "registry consistent with living agents",
			     "stable agent " STRESS_AGENT_FMT " (handle %#" PRIx64 ") is gone", i,
			     (uint64_t)h);
			return;
		}
	}
	if (procs_in_use(v, SHM_ROLE_CLIENT) != procs_in_use(b, SHM_ROLE_CLIENT)) {
		char list[200] = "";
		size_t at = 0;

		for (uint32_t i = 0; i < v->nprocs && at < sizeof(list) - 40; i++)
			if (v->procs[i].pid && v->procs[i].role == SHM_ROLE_CLIENT &&
			    v->procs[i].state != SHM_PROC_EXITED)
				at += (size_t)snprintf(list + at, sizeof(list) - at,
						       " slot %u pid %u state %u;", i,
						       v->procs[i].pid, v->procs[i].state);
		fail(&r->vd, "no leaked process slot",
		     "%u client slots in use, %u before the run:%s",
		     procs_in_use(v, SHM_ROLE_CLIENT), procs_in_use(b, SHM_ROLE_CLIENT), list);
	} else if (v->nagents != b->nagents) {
		char list[400] = "";
		size_t at = 0;

		/* the agents not in the snapshot before the run, by slot and generation */
		for (uint32_t i = 0; i < v->nagents && at < sizeof(list) - 100; i++) {
			const struct shm_view_agent *a = &v->agents[i];
			const struct shm_view_agent *was = shm_view_agent_find(b, a->slot);

			if (!was || was->gen != a->gen)
				at += (size_t)snprintf(list + at, sizeof(list) - at,
						       " slot %u '%s' type %s state %u worker %d;",
						       a->slot, a->name, a->type, a->state,
						       (int)a->worker);
		}
		fail(&r->vd, "no leaked agent or mailbox slot",
		     "%u agent slots in use, %u before the run; new since:%s", v->nagents,
		     b->nagents, list);
	} else if (v->nnames != b->nnames)
		fail(&r->vd, "no leaked registry slot", "%u names, %u before the run", v->nnames,
		     b->nnames);
	else if (v->ngroups != b->ngroups)
		fail(&r->vd, "no leaked group", "%u groups, %u before the run", v->ngroups,
		     b->ngroups);
	else if (v->nmonitors != b->nmonitors)
		fail(&r->vd, "no leaked monitor", "%u monitors, %u before the run", v->nmonitors,
		     b->nmonitors);
	else if (v->rounds_in_use)
		fail(&r->vd, "no leaked round", "%u round records held at rest", v->rounds_in_use);
	for (uint32_t i = 0; i < v->nprocs; i++)
		if (v->procs[i].pid)
			remember_pid(r, (pid_t)v->procs[i].pid);
}

/* After the stop: no process of the instance left, no zombie, no segment. */
static void check_after_stop(struct run *r, int sup_status)
{
	struct shm_seg *seg = NULL;
	char err[256];
	uint64_t t0 = now_ms();
	int rc;

	if (!WIFEXITED(sup_status) || WEXITSTATUS(sup_status))
		fail(&r->vd, "instance stops in order", "the supervisor ended with status %#x",
		     sup_status);
	for (uint32_t i = 0; i < r->npids; i++) {
		bool zombie;

		/* a zombie lingers until its parent reaps it: it is given the time too */
		while (still_ours(r, i, &zombie) && now_ms() - t0 < 5000)
			usleep(20000);
		if (still_ours(r, i, &zombie)) {
			fail(&r->vd, zombie ? "no zombie" : "no process left",
			     "pid %d of the instance (started at tick %" PRIu64 ") is still %s 5 s "
			     "after the stop",
			     (int)r->pids[i], r->pstart[i], zombie ? "a zombie" : "running");
			break;
		}
	}
	if (waitpid(-1, NULL, WNOHANG) > 0)
		fail(&r->vd, "no zombie", "a child of this tool was left unreaped");
	{
		/* the wake FIFOs of the instance's processes (the FIFO wakeup path) go too */
		char prefix[96];
		struct dirent *de;
		DIR *d = opendir("/dev/shm");

		snprintf(prefix, sizeof(prefix), "shoal.%s:", r->instance);
		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, prefix, strlen(prefix))) {
				fail(&r->vd, "no segment left behind",
				     "/dev/shm/%s is left after the stop", de->d_name);
				break;
			}
		if (d)
			closedir(d);
	}
	rc = shm_seg_attach(r->instance, SHM_ATTACH_RO, 0, &seg, err, sizeof(err));
	if (rc != -ENOENT) {
		fail(&r->vd, "no segment left behind",
		     "instance '%s' still has a segment after the stop (%s)", r->instance,
		     rc ? err : "it attaches");
		if (!rc)
			shm_seg_detach(seg);
	}
}

static void violations_from_books(struct run *r)
{
	struct stress_log *lg = stress_log;
	struct stress_violation *fv = &lg->first;
	struct tally *t = &r->t;
	char a[32], b[32];

	if (t->lost)
		fail(&r->vd, "lost = 0",
		     "%" PRIu64 " lost; the first: message #%" PRIu64 " from %s to %s was "
		     "accepted by its send and never delivered",
		     t->lost, t->first_lost_seq, sender_name((uint32_t)t->first_lost_from, a, 32),
		     sender_name((uint32_t)t->first_lost_to, b, 32));
	/* V1: pairs with V0's release of 2 in stress_violation_note(): the record whole */
	if (atomic_load_explicit(&fv->set, memory_order_acquire) == 2) {
		static const char *const kinds[] = {
			"",
			"duplicated only when flagged redelivered",
			"in order per pair outside a redelivery",
			"corrupted = 0",
			"registry consistent with living agents",
			"calls answered with their echo",
		};
		const char *what = fv->kind < 6 ? kinds[fv->kind] : "?";

		if (fv->kind == STRESS_V_REGISTRY)
			fail(&r->vd, what,
			     "%s looked up " STRESS_AGENT_FMT " (or a churn agent's name) during "
			     "the run and found handle %#" PRIx64 " instead of its agent's",
			     sender_name(fv->from, a, 32), fv->to, fv->aux);
		else
			fail(&r->vd, what,
			     "message #%" PRIu64 " from %s to %s (the pair's highest number "
			     "then: %" PRIu64 ")",
			     fv->seq, sender_name(fv->from, a, 32), sender_name(fv->to, b, 32),
			     fv->aux);
	}
	if (t->dup)
		fail(&r->vd, "duplicated only when flagged redelivered", "%" PRIu64 " duplicates",
		     t->dup);
	if (t->ooo)
		fail(&r->vd, "in order per pair outside a redelivery", "%" PRIu64 " out of order",
		     t->ooo);
	if (atomic_load_explicit(&lg->corrupt, memory_order_relaxed))
		fail(&r->vd, "corrupted = 0", "%" PRIu64 " corrupted payloads",
		     atomic_load_explicit(&lg->corrupt, memory_order_relaxed));
	if (t->calls_hung)
		fail(&r->vd, "no call left hanging",
		     "%" PRIu64 " calls took longer than %d ms (their timeout %d ms)",
		     t->calls_hung, CALL_TIMEOUT_MS + CALL_GRACE_MS, CALL_TIMEOUT_MS);
	if (t->memcap_miss)
		fail(&r->vd, "memory cap enforced",
		     "%" PRIu64 " allocations of 1 GiB past the workers' %s cap succeeded%s",
		     t->memcap_miss, MEM_CAP, r->o->cgroup ? " and were written" : "");
	if (t->uncheckable)
		fail(&r->vd, "every pair judged",
		     "%" PRIu64 " pairs had more maybe or gap ranges than their books hold",
		     t->uncheckable);
}

static json_t *summary_json(struct run *r, const struct event *ev, uint32_t nev)
{
	struct tally *t = &r->t;
	json_t *o = json_object(), *k = json_object(), *s = json_array();
	uint64_t kills = t->done[EV_WORKER_KILL] + t->done[EV_CLIENT_KILL] + t->done[EV_SPARE_KILL];

	for (int i = 0; i < EV_KINDS; i++)
		json_object_set_new(k, ev_names[i], json_integer((json_int_t)t->done[i]));
	for (uint32_t i = 0; i < nev; i++)
		json_array_append_new(
			s, json_pack("{s:I, s:s, s:I}", "at_ms", (json_int_t)ev[i].at_ms, "kind",
				     ev_names[ev[i].kind], "arg", (json_int_t)ev[i].arg));
	json_object_set_new(o, "schema", json_string("shoal.stress/1"));
	json_object_set_new(o, "result", json_string(r->vd.name[0] ? "fail" : "pass"));
	json_object_set_new(o, "violated", r->vd.name[0] ? json_string(r->vd.name) : json_null());
	json_object_set_new(o, "saw", r->vd.name[0] ? json_string(r->vd.saw) : json_null());
	json_object_set_new(o, "seed", json_integer((json_int_t)stress_log->seed));
	json_object_set_new(o, "seconds", json_real(t->elapsed_s));
	json_object_set_new(o, "instance", json_string(r->instance));
	json_object_set_new(o, "workers", json_integer(r->o->workers));
	json_object_set_new(o, "agents", json_integer(r->o->agents));
	json_object_set_new(o, "kills", json_integer((json_int_t)kills));
	json_object_set_new(o, "faults", k);
	json_object_set_new(o, "hangs_detected", json_integer((json_int_t)t->hangs_detected));
	json_object_set_new(o, "restarts", json_integer((json_int_t)t->worker_restarts));
	json_object_set_new(o, "agent_restarts", json_integer((json_int_t)t->agent_restarts));
	json_object_set_new(o, "sent", json_integer((json_int_t)t->sent));
	json_object_set_new(o, "delivered", json_integer((json_int_t)t->delivered));
	json_object_set_new(o, "redelivered", json_integer((json_int_t)t->redelivered));
	json_object_set_new(o, "maybe", json_integer((json_int_t)t->maybe));
	json_object_set_new(o, "lost", json_integer((json_int_t)t->lost));
	json_object_set_new(o, "duplicated", json_integer((json_int_t)t->dup));
	json_object_set_new(o, "out_of_order", json_integer((json_int_t)t->ooo));
	json_object_set_new(o, "corrupted",
			    json_integer((json_int_t)atomic_load_explicit(&stress_log->corrupt,
									  memory_order_relaxed)));
	json_object_set_new(o, "msgs_per_s",
			    json_real(t->elapsed_s > 0 ? (double)t->delivered / t->elapsed_s : 0));
	json_object_set_new(
		o, "calls",
		json_pack("{s:I, s:I, s:I, s:I, s:I}", "made", (json_int_t)t->calls, "answered",
			  (json_int_t)t->calls_ok, "failed", (json_int_t)t->calls_err, "timed_out",
			  (json_int_t)t->calls_timeout, "hanging", (json_int_t)t->calls_hung));
	json_object_set_new(o, "async_calls",
			    json_pack("{s:I, s:I, s:I}", "sent", (json_int_t)t->async_sent,
				      "replied", (json_int_t)t->async_replied, "errors",
				      (json_int_t)t->async_err));
	json_object_set_new(o, "broadcasts",
			    json_pack("{s:I, s:I}", "put", (json_int_t)t->bcast_sent, "received",
				      (json_int_t)t->bcast_recv));
	json_object_set_new(o, "clients",
			    json_pack("{s:I, s:I, s:I, s:I}", "started",
				      (json_int_t)t->clients_started, "killed",
				      (json_int_t)t->done[EV_CLIENT_KILL], "killed_in_call",
				      (json_int_t)t->clients_killed_in_call, "attach_failed",
				      (json_int_t)t->client_open_failed));
	json_object_set_new(
		o, "workload",
		json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "lookups",
			  (json_int_t)t->lookups, "spawns", (json_int_t)t->spawns, "stops",
			  (json_int_t)t->stops, "var_updates", (json_int_t)t->var_updates,
			  "proposals", (json_int_t)t->proposals, "proposals_committed",
			  (json_int_t)t->proposals_ok, "pool_checkouts", (json_int_t)t->checkouts,
			  "backpressure", (json_int_t)t->backpressure));
	json_object_set_new(o, "callback_failures", json_integer((json_int_t)t->fails));
	json_object_set_new(o, "memcap_refusals", json_integer((json_int_t)t->memcap_hits));
	json_object_set_new(o, "memcap_oom_kills", json_integer((json_int_t)t->memcap_kills));
	json_object_set_new(o, "mailboxes_filled", json_integer((json_int_t)t->mailbox_full));
	json_object_set_new(o, "schedule", s);
	return o;
}

static void summary_table(struct run *r)
{
	struct tally *t = &r->t;
	uint64_t kills = t->done[EV_WORKER_KILL] + t->done[EV_CLIENT_KILL] + t->done[EV_SPARE_KILL];

	printf("shoal stress: seed %" PRIu64 ", %.1f s, %u workers, %u agents, instance %s\n",
	       stress_log->seed, t->elapsed_s, r->o->workers, r->o->agents, r->instance);
	printf("  %-34s %12s\n", "what", "count");
	printf("  %-34s %12" PRIu64 "\n", "kills (all kinds)", kills);
	for (int i = 0; i < EV_KINDS; i++)
		printf("  %-34s %12" PRIu64 "%s\n", ev_names[i], t->done[i],
		       t->skipped[i] ? " (some had no target)" : "");
	printf("  %-34s %12" PRIu64 "\n", "hangs detected", t->hangs_detected);
	printf("  %-34s %12" PRIu64 "\n", "worker restarts", t->worker_restarts);
	printf("  %-34s %12" PRIu64 "\n", "agent restarts", t->agent_restarts);
	printf("  %-34s %12" PRIu64 "\n", "messages sent (accepted)", t->sent);
	printf("  %-34s %12" PRIu64 "\n", "delivered", t->delivered);
	printf("  %-34s %12" PRIu64 "\n", "redelivered (flagged)", t->redelivered);
	printf("  %-34s %12" PRIu64 "\n", "maybe sent (sender died or failed)", t->maybe);
	printf("  %-34s %12" PRIu64 "  (must be 0)\n", "lost", t->lost);
	printf("  %-34s %12" PRIu64 "  (must be 0)\n", "duplicated, not flagged", t->dup);
	printf("  %-34s %12" PRIu64 "  (must be 0)\n", "out of order, not flagged", t->ooo);
	printf("  %-34s %12" PRIu64 "  (must be 0)\n", "corrupted",
	       atomic_load_explicit(&stress_log->corrupt, memory_order_relaxed));
	printf("  %-34s %12.0f\n", "messages/s",
	       t->elapsed_s > 0 ? (double)t->delivered / t->elapsed_s : 0);
	printf("  %-34s %12" PRIu64 "\n", "calls made", t->calls);
	printf("  %-34s %12" PRIu64 "\n", "  answered", t->calls_ok);
	printf("  %-34s %12" PRIu64 "\n", "  failed with an error", t->calls_err);
	printf("  %-34s %12" PRIu64 "  (must be 0)\n", "  hanging", t->calls_hung);
	printf("  %-34s %12" PRIu64 "\n", "async calls (agents)", t->async_sent);
	printf("  %-34s %12" PRIu64 "\n", "  replied", t->async_replied);
	printf("  %-34s %12" PRIu64 "\n", "broadcast messages received", t->bcast_recv);
	printf("  %-34s %12" PRIu64 "\n", "clients started", t->clients_started);
	printf("  %-34s %12" PRIu64 "\n", "  killed mid-call", t->clients_killed_in_call);
	printf("  %-34s %12" PRIu64 "\n", "lookups", t->lookups);
	printf("  %-34s %12" PRIu64 "\n", "churn agents spawned", t->spawns);
	printf("  %-34s %12" PRIu64 "\n", "  stopped", t->stops);
	printf("  %-34s %12" PRIu64 "\n", "variable updates", t->var_updates);
	printf("  %-34s %12" PRIu64 "\n", "proposals", t->proposals);
	printf("  %-34s %12" PRIu64 "\n", "  committed", t->proposals_ok);
	printf("  %-34s %12" PRIu64 "\n", "pool checkouts", t->checkouts);
	printf("  %-34s %12" PRIu64 "\n", "sends refused by backpressure", t->backpressure);
	printf("  %-34s %12" PRIu64 "\n", "mailboxes filled to backpressure", t->mailbox_full);
	printf("  %-34s %12" PRIu64 "\n", "callbacks failed on request", t->fails);
	printf("  %-34s %12" PRIu64 "\n", "allocations refused by the cap", t->memcap_hits);
	if (r->o->cgroup) {
		printf("  %-34s %12" PRIu64 "\n", "agents writing past the cgroup cap",
		       t->memcap_touched);
		printf("  %-34s %12" PRIu64 "\n", "workers OOM-killed by the cgroup cap",
		       t->memcap_kills);
	}
	if (r->vd.name[0])
		printf("FAIL: %s: %s\n", r->vd.name, r->vd.saw);
	else
		printf("PASS: every invariant held\n");
}

static int parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || *s == '-' || v < lo || v > hi) {
		fprintf(stderr, "shoal stress: %s takes a number %u..%u, not '%s'\n", opt, lo, hi,
			s);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"seconds", required_argument, NULL, 's'},
		{"seed", required_argument, NULL, 'S'},
		{"workers", required_argument, NULL, 'w'},
		{"agents", required_argument, NULL, 'a'},
		{"clients", required_argument, NULL, 'c'},
		{"kill-rate", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},
		{"keep-on-failure", no_argument, NULL, 'K'},
		{"replay", required_argument, NULL, 'r'},
		{"schedule-out", required_argument, NULL, 'o'},
		{"instance", required_argument, NULL, 'i'},
		{"attach-ok", no_argument, NULL, 'A'},
		{"cgroup", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		char *end;

		switch (c) {
		case 's':
			if (parse_u32("--seconds", optarg, 1, 86400 * 7, &o->seconds))
				return EXIT_USAGE;
			break;
		case 'S':
			errno = 0;
			o->seed = strtoull(optarg, &end, 0);
			if (!*optarg || *end || errno || *optarg == '-') {
				fprintf(stderr,
					"shoal stress: --seed takes an unsigned number, not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			o->seed_given = true;
			break;
		case 'w':
			if (parse_u32("--workers", optarg, 1, 64, &o->workers))
				return EXIT_USAGE;
			break;
		case 'a':
			if (parse_u32("--agents", optarg, 2, STRESS_AGENTS_MAX, &o->agents))
				return EXIT_USAGE;
			break;
		case 'c':
			if (parse_u32("--clients", optarg, 0, STRESS_CLIENTS_MAX, &o->clients))
				return EXIT_USAGE;
			break;
		case 'k':
			errno = 0;
			o->kill_rate = strtod(optarg, &end);
			if (!*optarg || *end || errno || o->kill_rate < 0 || o->kill_rate > 1000) {
				fprintf(stderr,
					"shoal stress: --kill-rate takes faults per second "
					"0..1000, "
					"not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j':
			o->json = true;
			break;
		case 'K':
			o->keep = true;
			break;
		case 'r':
			o->replay = optarg;
			break;
		case 'o':
			o->schedule_out = optarg;
			break;
		case 'i':
			o->instance = optarg;
			break;
		case 'A':
			o->attach_ok = true;
			break;
		case 'g':
			if (optarg[0] != '/') {
				fprintf(stderr,
					"shoal stress: --cgroup takes the absolute path of a "
					"delegated "
					"cgroup v2 directory, not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			o->cgroup = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "shoal stress: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (getenv("SHOAL_TIME_SCALE")) {
		uint32_t ts;

		if (parse_u32("SHOAL_TIME_SCALE", getenv("SHOAL_TIME_SCALE"), 1, 100, &ts))
			return EXIT_USAGE;
		time_scale = (int)ts;
	}
	if (o->replay && o->schedule_out) {
		fprintf(stderr, "shoal stress: --replay runs a saved schedule; --schedule-out "
				"writes a new one: give one of them\n");
		return EXIT_USAGE;
	}
	if (o->attach_ok && !o->instance) {
		fprintf(stderr, "shoal stress: --attach-ok stresses the running instance "
				"--instance NAME names: give it\n");
		return EXIT_USAGE;
	}
	if (o->attach_ok && o->cgroup) {
		fprintf(stderr, "shoal stress: --cgroup sets the caps of an instance of its own; "
				"an attached instance keeps its own caps\n");
		return EXIT_USAGE;
	}
	return -1;
}

static const char *config_fmt =
	"[instance]\nname = %s\nworkers = %u\nstatus_interval = 0\nspare = yes\n"
	"ready_timeout = %dms\n"
	"[restart]\nintensity = 1000000\nperiod = 1ms\nbackoff_initial = 0\nbackoff_max = 0\n"
	"hang_timeout = %dms\n%s"
	"[segment]\nmax_agents = 512\nregistry_capacity = 2048\nmax_procs = %u\n"
	"mailbox_cells = 256\n"
	"[agent st]\ntype = stress\ncount = %u\nname = st-%%03u\n"
	"[pool " STRESS_POOL "]\ntype = stress_pool\nsize = 2\n";

/* --attach-ok: SIGINT or SIGTERM ends the workload early; the end runs as usual (the
 * stable agents stopped, the books removed) and the run fails saying so. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = sig;
}

/* The workload and its faults, until the end of the run. */
static void run_workload(struct run *r, const struct event *ev, uint32_t nev)
{
	bool tty = isatty(STDERR_FILENO);
	uint64_t t0 = now_ms(), last_prog = 0, end = (uint64_t)r->o->seconds * 1000u;
	uint32_t next_ev = 0;

	/* G0: pairs with G1 in st_tick(): the variable and the baseline before the workload */
	atomic_store_explicit(&stress_log->go, 1, memory_order_release);
	for (;;) {
		uint64_t el = now_ms() - t0;

		if (el >= end || interrupted)
			break;
		while (next_ev < nev && ev[next_ev].at_ms <= el)
			fire(r, &ev[next_ev++]);
		watch_stopped(r);
		watch_memcap(r);
		reap_clients(r);
		start_clients(r);
		if (el - last_prog >= (tty ? 500u : 5000u)) {
			progress(r, el, tty, false);
			last_prog = el;
		}
		usleep(5000);
	}
	if (interrupted)
		fail(&r->vd, "the run ran to its end",
		     "interrupted by %s after %.1f s: ended early, the books checked as they are",
		     strsignal(interrupted), (double)(now_ms() - t0) / 1000.0);
	/* G2: pairs with G1 in st_tick() and the acquire in client_main(): senders stop */
	atomic_store_explicit(&stress_log->stopping, 1, memory_order_release);
	progress(r, now_ms() - t0, tty, true);
	r->t.elapsed_s = (double)(now_ms() - t0) / 1000.0;
}

/* The end: clients out, the stopped worker dealt with, the books settled. */
static void wind_down(struct run *r)
{
	uint64_t t0 = now_ms();

	for (;;) {
		bool any = false;

		reap_clients(r);
		for (uint32_t k = 0; k < r->o->clients; k++)
			any |= r->client_pid[k] != 0;
		if (!any)
			break;
		if (now_ms() - t0 >
		    CALL_TIMEOUT_MS + CALL_GRACE_MS + 3000u * (unsigned)time_scale) {
			for (uint32_t k = 0; k < r->o->clients; k++) {
				if (!r->client_pid[k])
					continue;
				fail(&r->vd, "no call left hanging",
				     "client %u (pid %d) still running %u ms after the end%s", k,
				     (int)r->client_pid[k],
				     CALL_TIMEOUT_MS + CALL_GRACE_MS + 3000u * (unsigned)time_scale,
				     atomic_load_explicit(&stress_log->client[k].in_call,
							  memory_order_relaxed)
					     ? ", waiting for a call's reply"
					     : "");
				r->client_killed[k] = true;
				kill(r->client_pid[k], SIGKILL);
			}
			for (uint32_t k = 0; k < r->o->clients; k++)
				if (r->client_pid[k])
					waitpid(r->client_pid[k], NULL, 0);
			break;
		}
		usleep(10000);
	}
	while (r->stopped) {
		watch_stopped(r);
		usleep(10000);
	}
	t0 = now_ms();
	while (!settled() && now_ms() - t0 < DRAIN_MS) {
		watch_memcap(r);
		usleep(50000);
	}
	watch_memcap(r);
}

/* --- --attach-ok: a running instance of someone else's --- */

/* Remove the books' files of attached runs whose tool is gone (killed before its end). */
static void books_sweep(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[sizeof(de->d_name) + 16];
		int pid;

		if (sscanf(de->d_name, "shoal-stress-books.%d", &pid) != 1 || pid <= 0 ||
		    kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "/dev/shm/%s", de->d_name);
		unlink(path);
	}
	closedir(d);
}

/*
 * The hang timeout of an attached instance, from the configuration text its header keeps
 * (the instance's own, as it started): ms, 0 none, or -1 unknown (the text does not parse,
 * e.g. cut at the header's 2 KiB).
 */
static int instance_hang_ms(const struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);
	struct sup_config *c = malloc(sizeof(*c));
	char text[sizeof(h->config_text) + 1], err[256];
	int ms = -1;

	if (!c)
		return -1;
	/* written once before the instance was marked ready, never again */
	memcpy(text, h->config_text, sizeof(h->config_text));
	text[sizeof(h->config_text)] = '\0';
	sup_config_init(c);
	if (sup_config_parse_string(c, "the instance's configuration", text, err, sizeof(err)) == 0)
		ms = (int)c->policy.hang_ms;
	free(c);
	return ms;
}

/* Stop the stable agents the tool spawned in an attached instance. */
static void attach_unspawn(struct run *r)
{
	for (uint32_t i = 0; i < r->spawned; i++) {
		shoal_handle_t h =
			atomic_load_explicit(&stress_log->agent[i].handle, memory_order_relaxed);

		if (h)
			shoal_client_stop(r->cl, NULL, h, 3000);
	}
	r->spawned = 0;
}

/*
 * The attached instance made ready for the run: its geometry read (workers, hang timeout,
 * caps), the books named in STRESS_LOG_VAR, the stable agents spawned and published, the
 * pool there. 0, or -1 having said why.
 */
static int attach_setup(struct run *r, struct opts *o)
{
	const struct shm_hdr *h = shm_hdr(r->ro);
	struct shoal_var_set set = {.type = SHOAL_VAR_BLOB, .expect = SHOAL_VAR_ANY};
	/* relaxed: a status word, read as the tools read it; nothing is read through it */
	uint32_t st = atomic_load_explicit(&h->state, memory_order_relaxed);
	int rc;

	if (st != SHM_INST_RUNNING) {
		fprintf(stderr, "shoal stress: instance '%s' is %s, not running\n", r->instance,
			shm_inst_state_name(st));
		return -1;
	}
	o->workers = h->cfg.nworkers;
	r->hang_ms = instance_hang_ms(r->ro);
	for (uint32_t w = 0; w < o->workers; w++) {
		struct shm_proc *p = shm_proc_at(r->ro, 1 + w);

		/* relaxed: status words the supervisor set when it launched the worker */
		if (atomic_load_explicit(&p->mem_cap, memory_order_relaxed))
			r->cap_any = true;
		if (atomic_load_explicit(&p->cap_mech, memory_order_relaxed) == SUP_CAP_CGROUP)
			stress_log->hog_touch = 1;
	}
	fprintf(stderr,
		"shoal stress: attached to '%s': %u workers, hang timeout %s%d ms%s, %s; the "
		"faults go to its processes\n",
		r->instance, o->workers, r->hang_ms < 0 ? "unknown, " : "",
		r->hang_ms < 0 ? 0 : r->hang_ms, r->hang_ms > 0 ? "" : " (no worker-stop faults)",
		r->cap_any ? "its workers capped" : "no memory cap (no memcap faults)");
	if (r->hang_ms < 0)
		r->hang_ms = 0;
	/*
	 * st-000 first: an instance without the plugin refuses it (ENOENT) before anything of
	 * the run is made in it; the agents find the books' variable when they look (st_id())
	 */
	for (uint32_t i = 0; i < o->agents; i++) {
		char name[16];
		shoal_handle_t a;

		snprintf(name, sizeof(name), STRESS_AGENT_FMT, i);
		rc = shoal_client_spawn(r->cl, "stress", name, SHOAL_WHERE_ANY, 0, &a, NULL, 10000);
		if (rc) {
			if (rc == -ENOENT)
				fprintf(stderr,
					"shoal stress: instance '%s' has no agent type 'stress': "
					"load the stress plugin in its configuration ([types] "
					"load = <libdir>/shoal/stress.so, or build/tools/stress.so "
					"in a build tree) and start it again\n",
					r->instance);
			else if (rc == -EEXIST)
				fprintf(stderr,
					"shoal stress: an agent named %s runs in '%s' already: "
					"another shoal stress is attached, or one was interrupted "
					"(stop its st-NNN agents with shoal stop)\n",
					name, r->instance);
			else
				fprintf(stderr, "shoal stress: spawning %s in '%s': %s\n", name,
					r->instance, strerror(-rc));
			attach_unspawn(r);
			return -1;
		}
		/* H0 (again): pairs with the acquire in st_id(), as in cmd_stress() */
		atomic_store_explicit(&stress_log->agent[i].handle, a, memory_order_release);
		r->spawned = i + 1;
		if (i > 0)
			continue;
		rc = shoal_client_var_create(r->cl, STRESS_LOG_VAR, SHOAL_VAR_BLOB, &set.var);
		if (rc == -EEXIST)
			rc = shoal_client_var_lookup(r->cl, STRESS_LOG_VAR, &set.var);
		if (!rc) {
			set.len = (uint32_t)strlen(r->books);
			set.data = r->books;
			rc = shoal_client_var_update(r->cl, &set, 1, NULL, 3000);
		}
		if (rc) {
			fprintf(stderr,
				"shoal stress: the variable %s (the books' path, %zu bytes) in "
				"'%s': %s%s\n",
				STRESS_LOG_VAR, strlen(r->books), r->instance, strerror(-rc),
				rc == -ENOENT || rc == -ENOSPC || rc == -EMSGSIZE
					? " (the instance needs [segment] variables of 64 bytes "
					  "or more)"
					: "");
			attach_unspawn(r);
			return -1;
		}
	}
	rc = shoal_client_pool_create(r->cl, STRESS_POOL, "stress_pool", 2, 0, 10000);
	if (rc && rc != -EEXIST) {
		fprintf(stderr, "shoal stress: creating the pool %s in '%s': %s\n", STRESS_POOL,
			r->instance, strerror(-rc));
		attach_unspawn(r);
		return -1;
	}
	return 0;
}

/*
 * The end of a run on an attached instance: the stable agents stopped, and the instance
 * still running (its restart intensity may have stopped it: the faults were real).
 */
static void attach_end(struct run *r)
{
	uint32_t st;

	attach_unspawn(r);
	/* relaxed: a status word, read as the tools read it; nothing is read through it */
	st = atomic_load_explicit(&shm_hdr(r->ro)->state, memory_order_relaxed);
	if (st != SHM_INST_RUNNING)
		fail(&r->vd, "the attached instance runs on",
		     "instance '%s' is %s after the run (its restart intensity, or someone "
		     "stopped it; shoal events --instance %s says which)",
		     r->instance, shm_inst_state_name(st), r->instance);
}

/* shoal stress (see the top of this file). Returns a CLI exit code. The tool's main thread. */
int cmd_stress(int argc, char **argv)
{
	struct opts o = {.seconds = 60, .workers = 2, .agents = 16, .clients = 4, .kill_rate = 2};
	struct run r = {.o = &o, .stopped_fd = -1};
	struct event *ev = NULL;
	uint32_t nev = 0;
	char text[2048 + PATH_MAX], mem[PATH_MAX + 64] = "", err[512] = "";
	int ex, rc, st = 0;
	json_t *js;

	ex = parse_args(argc, argv, &o);
	if (ex >= 0)
		return ex;
	if (!o.seed_given)
		o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	if (o.replay ? schedule_read(o.replay, &o.seed, &ev, &nev) : schedule_make(&o, &ev, &nev))
		return EXIT_USAGE;
	if (o.schedule_out && schedule_write(o.schedule_out, o.seed, ev, nev)) {
		free(ev);
		return EXIT_SYSTEM;
	}
	if (o.replay) {
		uint32_t kept = 0;

		/* faults the run will not reach: not shown, not in the summary */
		while (kept < nev && ev[kept].at_ms < o.seconds * 1000u)
			kept++;
		if (kept < nev)
			fprintf(stderr, "shoal stress: %s: %u faults past --seconds %u left out\n",
				o.replay, nev - kept, o.seconds);
		nev = kept;
	}
	schedule_print(o.seed, ev, nev);
	r.rng = o.seed ^ 0xc0ffee;
	snprintf(r.instance, sizeof(r.instance), "%s", o.instance ? o.instance : "");
	if (!o.instance)
		snprintf(r.instance, sizeof(r.instance), "stress-%d", (int)getpid());
	r.hang_ms = HANG_MS;
	r.attached = o.attach_ok;
	/*
	 * the books, before anything is forked: every process of the run shares them; an
	 * attached instance's workers map them from a file the variable STRESS_LOG_VAR names
	 */
	if (r.attached) {
		struct sigaction sa = {.sa_handler = on_interrupt};
		int fd;

		books_sweep();
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		snprintf(r.books, sizeof(r.books), "/dev/shm/shoal-stress-books.%d", (int)getpid());
		fd = open(r.books, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)sizeof(*stress_log))) {
			fprintf(stderr, "shoal stress: the books' file %s (%zu bytes): %s\n",
				r.books, sizeof(*stress_log), strerror(errno));
			if (fd >= 0) {
				close(fd);
				unlink(r.books);
			}
			free(ev);
			return EXIT_SYSTEM;
		}
		stress_log =
			mmap(NULL, sizeof(*stress_log), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
	} else {
		stress_log = mmap(NULL, sizeof(*stress_log), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	}
	if (stress_log == MAP_FAILED) {
		fprintf(stderr, "shoal stress: mapping the books (%zu bytes): %s\n",
			sizeof(*stress_log), strerror(errno));
		if (r.attached)
			unlink(r.books);
		free(ev);
		return EXIT_SYSTEM;
	}
	stress_log->magic = STRESS_MAGIC;
	stress_log->nagents = o.agents;
	stress_log->nclients = o.clients;
	stress_log->tool_id = o.agents + o.clients;
	stress_log->seed = o.seed;
	for (uint32_t i = 0; i < STRESS_SENDERS_MAX; i++)
		for (uint32_t j = 0; j < STRESS_AGENTS_MAX; j++)
			atomic_store_explicit(&stress_log->pair[i][j].next, 1,
					      memory_order_relaxed);
	if (r.attached)
		goto attach;
	rc = stress_types_register();
	if (rc) {
		fprintf(stderr, "shoal stress: registering the stress agent types: %s\n",
			strerror(-rc));
		ex = EXIT_SYSTEM;
		goto out_unmap;
	}
#if HAVE_MEM_CAP
	snprintf(mem, sizeof(mem), "[memory]\ncap = " MEM_CAP "\n%s%s%s",
		 o.cgroup ? "cgroup = " : "", o.cgroup ? o.cgroup : "", o.cgroup ? "\n" : "");
#else
	if (o.cgroup)
		fprintf(stderr, "shoal stress: --cgroup ignored: this build (ASan) runs its "
				"workers without a memory cap\n");
#endif
	/* the supervisor's default ready_timeout, 10 s, scaled */
	snprintf(text, sizeof(text), config_fmt, r.instance, o.workers, 10000 * time_scale, HANG_MS,
		 mem, o.clients * 2 + o.workers + 16, o.agents);
	snprintf(r.log, sizeof(r.log), "%s/shoal-stress-%s.log",
		 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", r.instance);
	/* before the fork: every worker inherits the books */
	stress_log->hog_touch = o.cgroup && HAVE_MEM_CAP;
	r.sup = sup_start(text, r.log, !o.keep);
	if (r.sup < 0) {
		ex = EXIT_SYSTEM;
		goto out_unmap;
	}
	remember_pid(&r, r.sup);
attach:
	ex = EXIT_SYSTEM;
	rc = shm_seg_attach(r.instance, SHM_ATTACH_RO, 1000, &r.ro, err, sizeof(err));
	if (!rc)
		rc = shoal_client_open(r.instance, &r.cl, err, sizeof(err));
	if (!rc)
		rc = shm_view_create(r.ro, &r.base);
	if (!rc)
		rc = shm_view_create(r.ro, &r.v);
	if (rc) {
		fprintf(stderr, "shoal stress: attaching to instance '%s': %s\n", r.instance,
			err[0] ? err : strerror(-rc));
		goto out_stop;
	}
	if (r.attached && attach_setup(&r, &o))
		goto out_stop;
	for (uint32_t i = 0; i < o.agents && !r.attached; i++) {
		char name[16];
		shoal_handle_t h;

		snprintf(name, sizeof(name), STRESS_AGENT_FMT, i);
		rc = shoal_client_lookup(r.cl, name, &h);
		if (rc) {
			fprintf(stderr, "shoal stress: agent %s: %s\n", name, strerror(-rc));
			goto out_stop;
		}
		/* H0: pairs with the acquire in st_id(): the agents find themselves by it */
		atomic_store_explicit(&stress_log->agent[i].handle, h, memory_order_release);
	}
	{
		shoal_var_t var;

		rc = shoal_client_var_create(r.cl, STRESS_VAR, SHOAL_VAR_INT, &var);
		if (rc && rc != -EEXIST) {
			fprintf(stderr, "shoal stress: creating variable %s: %s\n", STRESS_VAR,
				strerror(-rc));
			goto out_stop;
		}
	}
	/* the tables at rest before the workload: every agent in its group */
	for (uint64_t t0 = now_ms();;) {
		uint32_t joined = 0;

		for (uint32_t i = 0; i < o.agents; i++)
			joined += atomic_load_explicit(&stress_log->agent[i].joined,
						       memory_order_relaxed);
		if (joined == o.agents)
			break;
		if (now_ms() - t0 > 10000) {
			fprintf(stderr, "shoal stress: the agents did not start in 10 s%s\n",
				r.attached
					? " (an attached instance's workers must be able to open "
					  "the books' file, mode 0600: run as their user)"
					: "");
			goto out_stop;
		}
		usleep(10000);
	}
	if (take(&r, r.base)) {
		fprintf(stderr, "shoal stress: could not take a snapshot of '%s'\n", r.instance);
		goto out_stop;
	}
	for (uint32_t i = 0; i < r.base->nprocs; i++)
		if (r.base->procs[i].pid)
			remember_pid(&r, (pid_t)r.base->procs[i].pid);

	run_workload(&r, ev, nev);
	wind_down(&r);
	stop_leftover_churn(&r);
	judge_pairs(&r);
	sum_books(&r);
	violations_from_books(&r);
	check_tables(&r);
	r.t.worker_restarts = restarts_now(&r);
	for (uint32_t i = 0; i < r.v->nagents; i++) {
		r.t.agent_restarts += r.v->agents[i].restarts;
		r.t.redelivered_engine += r.v->agents[i].redelivered;
	}
	if (r.attached && !(r.vd.name[0] && o.keep))
		attach_end(&r);
	if (r.vd.name[0] && o.keep) {
		ex = EXIT_CHECK;
		if (r.attached)
			fprintf(stderr,
				"shoal stress: the stable agents st-NNN left running in '%s' for "
				"inspection (shoal inspect --instance %s); stop them with shoal "
				"stop before another run\n",
				r.instance, r.instance);
		else
			fprintf(stderr,
				"shoal stress: instance '%s' kept for inspection: shoal inspect "
				"--instance %s; stop it with shoal shutdown --instance %s\n",
				r.instance, r.instance, r.instance);
		r.spawned = 0;
		shoal_client_close(r.cl);
		r.cl = NULL;
		shm_seg_detach(r.ro);
		r.ro = NULL;
		goto out_report;
	}
	ex = EXIT_OK;
out_stop:
	if (r.attached && r.spawned && r.cl)
		attach_unspawn(&r); /* a failure after the setup: leave the instance as it was */
	if (r.cl)
		shoal_client_close(r.cl);
	if (r.ro)
		shm_seg_detach(r.ro);
	if (r.attached) {
		/* another's instance: it runs on; its processes were checked while attached */
		if (ex == EXIT_SYSTEM)
			goto out_unmap;
		if (r.vd.name[0])
			ex = EXIT_CHECK;
		goto out_report;
	}
	kill(r.sup, SIGTERM);
	if (waitpid(r.sup, &st, 0) != r.sup)
		st = -1;
	if (ex == EXIT_SYSTEM) {
		fprintf(stderr, "shoal stress: the instance's own messages are in %s\n", r.log);
		goto out_unmap;
	}
	check_after_stop(&r, st);
	if (r.vd.name[0])
		ex = EXIT_CHECK;
out_report:
	if (o.json) {
		js = summary_json(&r, ev, nev);
		json_dumpf(js, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(js);
	} else {
		summary_table(&r);
	}
	if (r.vd.name[0] && r.attached)
		fprintf(stderr,
			"shoal stress: FAIL: %s: %s (seed %" PRIu64 "; the instance's own messages "
			"are where its supervisor writes them)\n",
			r.vd.name, r.vd.saw, o.seed);
	else if (r.vd.name[0])
		fprintf(stderr,
			"shoal stress: FAIL: %s: %s (seed %" PRIu64 "; the instance's own messages "
			"are in %s)\n",
			r.vd.name, r.vd.saw, o.seed, r.log);
	else if (!r.attached)
		unlink(r.log);
out_unmap:
	shm_view_free(r.base);
	shm_view_free(r.v);
	if (r.attached)
		unlink(r.books);
	munmap(stress_log, sizeof(*stress_log));
	stress_log = NULL;
	free(ev);
	return ex;
}
