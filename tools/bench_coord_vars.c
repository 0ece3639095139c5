/*
 * shoal bench coord, its variables' rows (bench_coord.c runs them first): coordination
 * variables. A read through a resolved handle, a read by
 * name, the same read while another process updates the variable on the other core, and an
 * update, against a registry lookup of the same name timed the same way in the same run.
 * Runs on a scratch segment it creates and removes (no instance: the rounds of the issue's
 * other rows need agents, and come with them). variable_update_100: an update and its
 * notification to each of 100 subscribed client inboxes (this process's), against the same
 * update of a variable nobody subscribed to (variable_update_nosubs) in the same run.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/registry.h"
#include "shm/shm.h"
#include "ipc/ipc.h"
#include "shm/event.h"
#include "shm/var.h"
#include "tools/bench.h"
#include "tools/tools.h"
#include "workers/wrk.h"

#define NVARS 1000u /* variables, each with its name in the registry */
#define NSUBS 100u  /* subscribers of variable_update_100 */

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

struct coord {
	struct shm_seg *seg;
	uint64_t ids[NVARS];
	char names[NVARS][16];
	uint8_t lens[NVARS];
	shoal_handle_t subs[NSUBS]; /* client inboxes subscribed to variable 1 */
	uint32_t *idx;		    /* random variable indices, one per sample */
	uint64_t *ns;		    /* samples */
	size_t n;
	double alloc_per_op; /* bytes allocated per operation by the last time_op() */
};

/* What each timed operation is: one of these on variable k. */
enum op { OP_LOOKUP, OP_READ, OP_READ_NAME, OP_UPDATE, OP_EVENT };

static int do_op(struct coord *c, enum op op, uint32_t k, uint64_t *sink)
{
	struct shm_var_val v = {0};
	shoal_handle_t h;
	int64_t x;
	int r;

	switch (op) {
	case OP_LOOKUP:
		r = shm_reg_lookup(c->seg, 0, c->names[k], c->lens[k], &h, NULL);
		*sink += h;
		return r;
	case OP_READ:
		r = shm_var_read(c->seg, c->ids[k], &v);
		*sink += (uint64_t)v.num.i;
		return r;
	case OP_READ_NAME:
		r = shm_var_read_name(c->seg, 0, c->names[k], c->lens[k], &v);
		*sink += (uint64_t)v.num.i;
		return r;
	case OP_UPDATE:
		x = (int64_t)*sink;
		*sink += 1;
		{
			struct shm_var_op o = {.id = c->ids[k],
					       .type = SHM_VAR_INT,
					       .len = 8,
					       .data = &x,
					       .expect = SHM_VAR_ANY};

			return shm_var_update(c->seg, &o, 1, 0, NULL, NULL);
		}
	case OP_EVENT:
		/* an event emitted as the engine emits one: filled in, then appended */
		{
			struct shm_event e;

			shm_event_init(&e, SHM_EV_AGENT_SPAWN);
			e.worker = (int32_t)k;
			shm_event_set_name(&e, c->names[k]);
			shm_event_set_text(&e, "bench %u", k);
			*sink += 1;
			return shm_event_append(c->seg, &e, NULL);
		}
	}
	return -EINVAL;
}

/* Time n single operations (samples) and as many in a tight loop (ops/s). */
static int time_op(struct coord *c, enum op op, bool one_var, double *ops_s)
{
	uint64_t sink = 1, t0, a0;

	/* warm up: every variable and name touched once */
	for (uint32_t k = 0; k < NVARS; k++)
		if (do_op(c, op, k, &sink))
			return -EIO;
	a0 = bench_alloc_bytes();
	for (size_t i = 0; i < c->n; i++) {
		uint32_t k = one_var ? 0 : c->idx[i];
		uint64_t a = bench_ticks(), b;
		int r = do_op(c, op, k, &sink);

		b = bench_ticks();
		if (r)
			return -EIO;
		c->ns[i] = (uint64_t)bench_ticks_to_ns(b - a);
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < c->n; i++)
		do_op(c, op, one_var ? 0 : c->idx[i], &sink);
	t0 = bench_now_ns() - t0;
	c->alloc_per_op = (double)(bench_alloc_bytes() - a0) / (2.0 * (double)c->n);
	*ops_s = sink ? (double)c->n * 1e9 / (double)(t0 ? t0 : 1) : 0;
	return 0;
}

/* A writer on the other core: updates variable 0 until told to stop. */
static pid_t start_writer(struct coord *c, int cpu, _Atomic uint32_t *stop)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	bench_pin(cpu);
	c->seg->self = UINT32_MAX;
	if (shm_proc_claim(c->seg, SHM_ROLE_CLIENT, false))
		_exit(1);
	shm_proc_set_state(c->seg, SHM_PROC_RUNNING);
	for (int64_t x = 1; !atomic_load_explicit(stop, memory_order_relaxed); x++) {
		struct shm_var_op o = {.id = c->ids[0],
				       .type = SHM_VAR_INT,
				       .len = 8,
				       .data = &x,
				       .expect = SHM_VAR_ANY};

		if (shm_var_update(c->seg, &o, 1, 0, NULL, NULL))
			_exit(2);
	}
	shm_proc_release(c->seg);
	_exit(0);
}

/* Take every subscriber's notification, as its consumer would (not timed). */
static int drain_subs(struct coord *c)
{
	int got = 0;

	for (uint32_t i = 0; i < NSUBS; i++) {
		uint32_t slot = shoal_handle_slot(c->subs[i]);
		struct ipc_msg m;

		while (!ipc_mbox_peek(c->seg, slot, &m)) {
			shm_var_sub_taken(c->seg, m.ref);
			ipc_mbox_consume(c->seg, slot, &m);
			got++;
		}
	}
	return got;
}

/*
 * Time n updates of variable k with their notifications (wrk_var_notify(), as every API
 * update does); drain: each subscriber takes its notification between samples, so every
 * update sends one to each. Fails (-EIO) if a drained update did not reach all of them.
 */
static int time_notified(struct coord *c, uint32_t k, size_t n, bool drain, double *ops_s)
{
	uint64_t busy = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t x = (int64_t)i;
		struct shm_var_op o = {.id = c->ids[k],
				       .type = SHM_VAR_INT,
				       .len = 8,
				       .data = &x,
				       .expect = SHM_VAR_ANY};
		uint64_t a = bench_ticks(), b;
		int r = shm_var_update(c->seg, &o, 1, 0, NULL, NULL);

		if (!r)
			wrk_var_notify(c->seg, &c->ids[k], 1, 0);
		b = bench_ticks();
		if (r)
			return -EIO;
		c->ns[i] = (uint64_t)bench_ticks_to_ns(b - a);
		busy += c->ns[i];
		if (drain && drain_subs(c) != (int)NSUBS)
			return -EIO;
	}
	*ops_s = busy ? (double)n * 1e9 / (double)busy : 0;
	return 0;
}

/* Between the writer and the subscribers' process of variable_update_100_seen. */
struct seen {
	_Atomic uint32_t ready;	 /* 1: subscribed; 2: failed */
	_Atomic uint32_t stop;	 /* the writer is done */
	_Atomic uint64_t rounds; /* updates every subscriber has taken */
	_Atomic uint64_t t_last; /* bench_ticks() when the last of a round was taken */
};

/*
 * A process on another cpu hosting NSUBS inboxes subscribed to variable k, spinning over
 * them: it takes each notification as a consumer does and, once all NSUBS of an update are
 * taken, stamps the time.
 */
static pid_t start_subscribers(struct coord *c, uint32_t k, int cpu, struct seen *sh)
{
	shoal_handle_t in[NSUBS];
	uint32_t got = 0;
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	bench_pin(cpu);
	c->seg->self = UINT32_MAX;
	if (shm_proc_claim(c->seg, SHM_ROLE_CLIENT, false))
		goto fail;
	shm_proc_set_state(c->seg, SHM_PROC_RUNNING);
	for (uint32_t i = 0; i < NSUBS; i++) {
		uint64_t ref;

		if (ipc_inbox_open(c->seg, &in[i]) ||
		    shm_var_sub_add(c->seg, in[i], c->seg->tag, c->ids[k], 0, NULL, 0, &ref))
			goto fail;
	}
	atomic_store(&sh->ready, 1);
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		for (uint32_t i = 0; i < NSUBS; i++) {
			struct ipc_msg m;

			if (ipc_mbox_peek(c->seg, shoal_handle_slot(in[i]), &m))
				continue;
			shm_var_sub_taken(c->seg, m.ref);
			ipc_mbox_consume(c->seg, shoal_handle_slot(in[i]), &m);
			got++;
		}
		if (got >= NSUBS) {
			got -= NSUBS;
			atomic_store(&sh->t_last, bench_ticks());
			atomic_fetch_add(&sh->rounds, 1);
		}
	}
	shm_proc_release(c->seg);
	_exit(0);
fail:
	atomic_store(&sh->ready, 2);
	_exit(1);
}

/*
 * Time n updates of variable k whose NSUBS subscribers are another process's: each sample
 * from before the update to when the last subscriber took its notification (the next
 * update waits for that). -ETIMEDOUT if a round does not complete within 10 s (on a loaded
 * machine the subscribers' process can wait a long while for its CPU: a benchmark's figure
 * then, not a failure).
 */
static int time_seen(struct coord *c, uint32_t k, size_t n, struct seen *sh, double *ops_s)
{
	uint64_t busy = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t x = (int64_t)i;
		struct shm_var_op o = {.id = c->ids[k],
				       .type = SHM_VAR_INT,
				       .len = 8,
				       .data = &x,
				       .expect = SHM_VAR_ANY};
		uint64_t a = bench_ticks(), end = bench_now_ns() + 10000000000ull;

		if (shm_var_update(c->seg, &o, 1, 0, NULL, NULL))
			return -EIO;
		wrk_var_notify(c->seg, &c->ids[k], 1, 0);
		while (atomic_load(&sh->rounds) != i + 1)
			if (bench_now_ns() > end)
				return -ETIMEDOUT;
		c->ns[i] = (uint64_t)bench_ticks_to_ns(atomic_load(&sh->t_last) - a);
		busy += c->ns[i];
	}
	*ops_s = busy ? (double)n * 1e9 / (double)busy : 0;
	return 0;
}

/* A row of time_op()'s samples, against the registry lookup. */
static struct bench_row *row(struct bench_report *r, const char *name, struct coord *c, double ops)
{
	struct bench_row *w = bench_add_result(r, name, c->ns, c->n, ops, "registry_lookup");

	if (w)
		w->alloc_per_op = c->alloc_per_op;
	return w;
}

/* See bench.h: the variables' rows into rp, its notes set. 0 or -errno (said). */
int bench_coord_vars(struct bench_opts *o, struct bench_report *rp)
{
	static struct coord c;
	_Atomic uint32_t *stop = NULL;
	struct shm_cfg cfg;
	char inst[SHM_INSTANCE_MAX], err[256];
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	double ops;
	pid_t writer = -1;
	int ret, wst;

	c.n = o->quick ? 100000 : 1000000;
	snprintf(inst, sizeof(inst), "bench-coord-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = 64 + 3 * NSUBS;
	cfg.max_inboxes = 2 * NSUBS + 16; /* the subscribers' inboxes */
	cfg.max_vars = 2 * NVARS;
	ret = shm_seg_create(inst, &cfg, &c.seg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal bench coord: %s\n", err);
		return ret;
	}
	shm_seg_publish(c.seg);
	ret = shm_proc_claim(c.seg, SHM_ROLE_CLIENT, false);
	if (ret)
		goto out;
	shm_proc_set_state(c.seg, SHM_PROC_RUNNING);
	bench_pin(o->cpu_a);
	c.idx = malloc(c.n * sizeof(*c.idx));
	c.ns = malloc(c.n * sizeof(*c.ns));
	stop = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!c.idx || !c.ns || stop == MAP_FAILED) {
		ret = -ENOMEM;
		goto out;
	}
	/* mapped before any timing: a first-touch fault is not a read's */
	memset(c.ns, 0, c.n * sizeof(*c.ns));
	for (size_t i = 0; i < c.n; i++)
		c.idx[i] = (uint32_t)(xorshift(&seed) % NVARS);
	for (uint32_t k = 0; k < NVARS; k++) {
		c.lens[k] = (uint8_t)snprintf(c.names[k], sizeof(c.names[k]), "param-%04u", k);
		ret = shm_var_create(c.seg, 0, c.names[k], c.lens[k], SHM_VAR_INT, &c.ids[k]);
		if (ret)
			goto out;
	}
	ret = time_op(&c, OP_LOOKUP, false, &ops);
	if (ret)
		goto out;
	bench_add_baseline(rp, "registry_lookup", c.ns, c.n, ops);
	ret = time_op(&c, OP_READ, false, &ops);
	if (ret)
		goto out;
	row(rp, "variable_read", &c, ops);
	ret = time_op(&c, OP_READ_NAME, false, &ops);
	if (ret)
		goto out;
	row(rp, "variable_read_name", &c, ops);
	ret = time_op(&c, OP_UPDATE, false, &ops);
	if (ret)
		goto out;
	row(rp, "variable_update", &c, ops);
	/* the replaced platform's "event emission": one event into the segment's ring */
	ret = time_op(&c, OP_EVENT, false, &ops);
	if (ret)
		goto out;
	row(rp, "event_emit", &c, ops);
	if (o->cpu_b != o->cpu_a) {
		atomic_store(stop, 0);
		writer = start_writer(&c, o->cpu_b, stop);
		if (writer < 0) {
			ret = -errno;
			goto out;
		}
		ret = time_op(&c, OP_READ, true, &ops);
		atomic_store(stop, 1);
		if (waitpid(writer, &wst, 0) != writer || !WIFEXITED(wst) || WEXITSTATUS(wst))
			ret = ret ? ret : -EIO;
		if (ret)
			goto out;
		row(rp, "variable_read_written", &c, ops);
	}
	/* NSUBS inboxes subscribed to variable 1; variable 2 has none (the baseline) */
	for (uint32_t i = 0; i < NSUBS; i++) {
		uint64_t ref;

		ret = ipc_inbox_open(c.seg, &c.subs[i]);
		if (!ret)
			ret = shm_var_sub_add(c.seg, c.subs[i], c.seg->tag, c.ids[1], 0, NULL, 0,
					      &ref);
		if (ret)
			goto out;
	}
	{
		size_t all = c.n;

		c.n = o->quick ? 2000 : 20000;
		ret = time_notified(&c, 2, c.n, false, &ops);
		if (!ret)
			bench_add_baseline(rp, "variable_update_nosubs", c.ns, c.n, ops);
		if (!ret)
			ret = time_notified(&c, 1, c.n, true, &ops);
		if (!ret) {
			bench_add_result(rp, "variable_update_100", c.ns, c.n, ops,
					 "variable_update_nosubs");
		}
		/* subscribers that never read: every update after the first coalesces */
		if (!ret)
			ret = time_notified(&c, 1, c.n, false, &ops);
		if (!ret)
			bench_add_result(rp, "variable_update_100_lagging", c.ns, c.n, ops,
					 "variable_update_nosubs");
		if (!ret && o->cpu_b != o->cpu_a) {
			struct seen *sh = (struct seen *)stop + 1; /* the shared page, past stop */
			pid_t subs;

			memset(sh, 0, sizeof(*sh));
			subs = start_subscribers(&c, 3, o->cpu_b, sh);
			if (subs < 0) {
				ret = -errno;
			} else {
				uint64_t end = bench_now_ns() + 5000000000ull;

				while (atomic_load(&sh->ready) == 0 && bench_now_ns() < end)
					;
				ret = atomic_load(&sh->ready) == 1 ? time_seen(&c, 3, c.n, sh, &ops)
								   : -EIO;
				atomic_store(&sh->stop, 1);
				if (waitpid(subs, &wst, 0) != subs || !WIFEXITED(wst) ||
				    WEXITSTATUS(wst))
					ret = ret ? ret : -EIO;
			}
			if (!ret)
				bench_add_result(rp, "variable_update_100_seen", c.ns, c.n, ops,
						 "variable_update_nosubs");
		}
		c.n = all;
		if (ret)
			goto out;
	}
	snprintf(rp->notes, sizeof(rp->notes),
		 "%u int64 variables, their names in the registry; random variable per sample; "
		 "variable_read through a resolved handle, "
		 "variable_read_name a registry lookup and the read; event_emit an event filled in "
		 "and appended to the ring; variable_read_written reads "
		 "one variable while a process on cpu %d updates it back to back; cpus %d,%d; "
		 "latencies include the timer (rdtscp pair), as does registry_lookup; "
		 "variable_update_100: the writer's update call with its notification to each of "
		 "%u subscribed inboxes (taken between samples, so each update sends %u; one "
		 "batched send, its wake skipped: the inboxes' host is not parked), _lagging the "
		 "same with subscribers that never read (coalesced), _seen from before the "
		 "update until the last of %u inboxes spun over by a process on cpu %d took its "
		 "notification; against variable_update_nosubs, the same update of a variable "
		 "nobody subscribed to",
		 NVARS, o->cpu_b, o->cpu_a, o->cpu_b, NSUBS, NSUBS, NSUBS, o->cpu_b);
out:
	if (ret)
		fprintf(stderr, "shoal bench coord: variables: %s\n", strerror(-ret));
	if (stop && stop != MAP_FAILED)
		munmap((void *)stop, 4096);
	free(c.idx);
	free(c.ns);
	c.idx = NULL;
	c.ns = NULL;
	shm_seg_detach(c.seg);
	shm_seg_unlink(inst);
	return ret;
}
