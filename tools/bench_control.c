/*
 * shoal bench control: control requests to the supervisor, timed from the client. spawn
 * (answered: the agent is in the table, its worker rung), spawn until the agent runs (what
 * `shoal spawn --wait` waits for), and stop (answered). Baselines in the same run: a call to
 * an echo agent on the instance's parked worker (one wake each way, as a request to the
 * parked supervisor is), and the spawn a client did itself before spawns went through the
 * supervisor (wrk_agent_spawn from the client, no round trip).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "supervisor/sup.h"
#include "tools/bench.h"
#include "tools/tools.h"
#include "workers/wrk.h"

#define BATCH	100 /* agents alive at once (the table holds 256) */
#define WAIT_NS 5000000000ull
#define TIMEOUT 5000

static const char *config_fmt =
	"[instance]\nname = %s\nworkers = 1\ncpus = %d\nstatus_interval = 0\n"
	"[segment]\nmax_agents = 256\nregistry_capacity = 1024\nmax_procs = 8\n"
	"[agent e]\ntype = echo\nname = echo\nworker = 0\n";

struct cl {
	struct shm_seg *seg;
	struct ipc_waiter *w;
	shoal_handle_t inbox;
};

static int ctl(struct cl *c, uint32_t op, const char *name, struct ipc_ctl_reply *rep)
{
	struct ipc_ctl_req q = {.op = op};
	int r;

	snprintf(q.type, sizeof(q.type), "echo");
	snprintf(q.name, sizeof(q.name), "%s", name);
	r = ipc_ctl_call(c->seg, c->w, c->inbox, &q, rep, TIMEOUT);
	return r ? r : rep->rc;
}

/* Wait on the change counter until cond holds for h (or the deadline). */
static int wait_for(struct cl *c, shoal_handle_t h, bool running)
{
	uint64_t dl = shm_now_ns() + WAIT_NS;

	for (;;) {
		uint32_t seen = shm_change_read(c->seg);
		struct shm_agent *a = wrk_agent_get(c->seg, h);

		if (running ? a && atomic_load_explicit(&a->state, memory_order_acquire) ==
					      SHM_AGENT_RUNNING
			    : !a)
			return 0;
		if (shm_change_wait(c->seg, seen, dl))
			return -ETIMEDOUT;
	}
}

/* One batch: spawn BATCH agents (timed), wait for them to run, stop them (timed), wait. */
static int batch(struct cl *c, int round, uint64_t *spawn, uint64_t *stop, uint64_t *running)
{
	shoal_handle_t h[BATCH];
	struct ipc_ctl_reply rep;
	char name[32];

	for (int i = 0; i < BATCH; i++) {
		uint64_t t0 = bench_now_ns();
		int r;

		snprintf(name, sizeof(name), "b%d-%d", round, i);
		r = ctl(c, IPC_CTL_SPAWN, name, &rep);
		if (r)
			return r;
		spawn[i] = bench_now_ns() - t0;
		h[i] = rep.handle;
		/* every tenth: also until it runs (the worker's init, one more wake) */
		if (i % 10 == 0) {
			if (wait_for(c, h[i], true))
				return -ETIMEDOUT;
			running[i / 10] = bench_now_ns() - t0;
		}
	}
	for (int i = 0; i < BATCH; i++)
		if (wait_for(c, h[i], true))
			return -ETIMEDOUT;
	for (int i = 0; i < BATCH; i++) {
		uint64_t t0 = bench_now_ns();
		int r;

		snprintf(name, sizeof(name), "b%d-%d", round, i);
		r = ctl(c, IPC_CTL_STOP, name, &rep);
		if (r)
			return r;
		stop[i] = bench_now_ns() - t0;
	}
	for (int i = 0; i < BATCH; i++)
		if (wait_for(c, h[i], false))
			return -ETIMEDOUT;
	return 0;
}

/* Baseline: the client spawns itself (the table write and the worker's poke), then stops. */
static int base_direct(struct cl *c, int round, uint64_t *ns)
{
	shoal_handle_t h[BATCH];
	char name[32];

	for (int i = 0; i < BATCH; i++) {
		uint64_t t0 = bench_now_ns();
		int r;

		snprintf(name, sizeof(name), "d%d-%d", round, i);
		r = wrk_agent_spawn(c->seg, "echo", name, 1, &h[i]);
		if (r)
			return r;
		ns[i] = bench_now_ns() - t0;
	}
	for (int i = 0; i < BATCH; i++)
		if (wait_for(c, h[i], true) || wrk_agent_stop(c->seg, h[i]))
			return -ETIMEDOUT;
	for (int i = 0; i < BATCH; i++)
		if (wait_for(c, h[i], false))
			return -ETIMEDOUT;
	return 0;
}

/*
 * shoal bench control (see the top of this file): its rows into rep. Returns a CLI exit code.
 * The tool's main thread.
 */
int bench_control(struct bench_opts *o, struct bench_report *rep)
{
	int rounds = o->quick ? 2 : 10, n = rounds * BATCH, rc = EXIT_SYSTEM;
	uint64_t *spawn = calloc((size_t)n, 8), *stop = calloc((size_t)n, 8);
	uint64_t *run = calloc((size_t)n, 8), *call = calloc((size_t)n, 8);
	uint64_t *direct = calloc((size_t)n, 8);
	uint64_t a_ctl = 0, a_call;
	struct bench_row *row;
	char inst[SHM_INSTANCE_MAX], text[1024], err[512] = "";
	shoal_handle_t echo;
	struct cl c = {0};
	pid_t sup = -1;

	if (!spawn || !stop || !run || !call || !direct)
		goto out_free;
	if (o->instance)
		snprintf(inst, sizeof(inst), "%s", o->instance);
	else
		snprintf(inst, sizeof(inst), "bench-control-%d", (int)getpid());
	snprintf(text, sizeof(text), config_fmt, inst, o->cpu_a);
	sup = bench_sup_start("control", text);
	if (sup < 0)
		goto out_free;
	bench_pin(o->cpu_b);
	if (shm_seg_attach(inst, 0, 1000, &c.seg, err, sizeof(err)) ||
	    shm_proc_claim(c.seg, SHM_ROLE_CLIENT, true) ||
	    ipc_waiter_create(c.seg, IPC_WAKE_AUTO, &c.w) || ipc_inbox_open(c.seg, &c.inbox) ||
	    shm_reg_lookup(c.seg, SHM_NS_DEFAULT, "echo", 4, &echo, NULL)) {
		fprintf(stderr, "shoal bench control: attaching as a client: %s\n", err);
		goto out_client;
	}
	shm_proc_set_state(c.seg, SHM_PROC_RUNNING);
	for (int k = 0; k < rounds; k++) {
		uint64_t a0 = bench_alloc_bytes();
		int r = batch(&c, k, spawn + k * BATCH, stop + k * BATCH, run + k * (BATCH / 10));

		/* this client's allocations over a batch's requests (its waits included) */
		a_ctl += bench_alloc_bytes() - a0;
		if (!r)
			r = base_direct(&c, k, direct + k * BATCH);
		if (r) {
			fprintf(stderr, "shoal bench control: round %d: %s\n", k, strerror(-r));
			goto out_client;
		}
	}
	a_call = bench_alloc_bytes();
	for (int i = 0; i < n; i++) {
		uint64_t t0, dl = bench_now_ns() + WAIT_NS;
		char reply[8];

		/* untimed: until the worker has parked again (it spins a while after a call) */
		while (!atomic_load_explicit(&shm_proc_at(c.seg, 1)->parked, memory_order_relaxed))
			if (bench_now_ns() > dl)
				goto out_client;
		t0 = bench_now_ns();
		if (ipc_call(c.seg, c.w, c.inbox, echo, 1, "ping", 4, reply, sizeof(reply),
			     TIMEOUT) != 4)
			goto out_client;
		call[i] = bench_now_ns() - t0;
	}
	row = bench_add_baseline(rep, "call_parked_worker", call, (size_t)n, 0);
	bench_row_alloc(row, a_call, n);
	bench_add_baseline(rep, "spawn_direct", direct, (size_t)n, 0);
	/* a spawn and a stop per agent: the batch's allocations over both */
	row = bench_add_result(rep, "ctl_spawn", spawn, (size_t)n, 0, "call_parked_worker");
	if (row)
		row->alloc_per_op = (double)a_ctl / (2.0 * n);
	bench_add_result(rep, "ctl_spawn_running", run, (size_t)(n / 10), 0, "call_parked_worker");
	row = bench_add_result(rep, "ctl_stop", stop, (size_t)n, 0, "call_parked_worker");
	if (row)
		row->alloc_per_op = (double)a_ctl / (2.0 * n);
	snprintf(rep->notes, sizeof(rep->notes),
		 "%d spawn and %d stop requests to the supervisor (its one worker on cpu %d, this "
		 "client on cpu %d), %d agents alive at a time; ctl_spawn_running: "
		 "one spawn in ten, until its agent runs. Baselines: a call to an echo agent on "
		 "the parked worker; the spawn a client made itself before (no round trip)",
		 n, n, o->cpu_a, o->cpu_b, BATCH);
	rc = EXIT_OK;
out_client:
	if (c.inbox)
		ipc_inbox_close(c.seg, c.inbox);
	if (c.w)
		ipc_waiter_destroy(c.w);
	if (c.seg)
		shm_seg_detach(c.seg);
	bench_sup_stop("control", sup);
out_free:
	free(spawn);
	free(stop);
	free(run);
	free(call);
	free(direct);
	return rc;
}
