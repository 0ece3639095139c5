/*
 * shoal bench coord, the rounds' rows: broadcast with acknowledgements, consensus and
 * allocation rounds to groups of echo-like agents (each answers an allocation's ask with a
 * demand too), in three instances, one after the other:
 *
 * - 100 agents on one worker, bound to cpu_a, and this client pinned to cpu_b: on the
 *   2-vCPU development machine the honest "awake" setup, a CPU each. (This process was
 *   left pinned to cpu_a by the variables' rows; an instance forked so inherited it, and
 *   its workers and this client shared one CPU.) broadcast_100: a round whose
 *   answers are counted in its round record (the one wake of the client when the last
 *   answer lands); broadcast_100_replies: the same fan-out as calls whose 100 replies come
 *   back as messages to the client's inbox (the design not taken, measured beside it);
 *   consensus_100: a majority proposal; allocation_100: an allocation round (demands of
 *   1..8 units, the capacity about half their sum, proportional shares sent back in one
 *   batch). Back to back: each round starts as the previous operation ends, so the worker
 *   is awake. The _parked rows start each round once the worker has parked (its parked
 *   flag, waited for with a deadline, untimed). Baselines: round_floor_100
 *   (broadcast_100's samples: the same fan-out and fan-in with empty callbacks), the
 *   fan-out alone (fanout_100: a plain broadcast, nothing waited for), one call round trip
 *   to one agent (call_1), and the fan-in alone in this process (fanin_*_100).
 * - 1,000 agents on one worker: the same rounds, _1000.
 * - 100 agents on two workers (50 each, bound to cpu_a and cpu_b), _100_2w, this client
 *   free to run on either: three processes that want a CPU on two, so they take turns and
 *   rounds pay wakes.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/round.h"
#include "shm/var.h"
#include "shoal/client.h"
#include "tools/bench.h"
#include "tools/tools.h"
#include "workers/wrk.h"

#define WAIT_NS	      5000000000ull
#define PARK_WAIT_NS  1000000000ull /* a worker parks within this after a round */
#define T_PAYLOAD     7u
#define COORD_WORKERS 2u /* at most, per setup */

/* The kinds of operation a setup measures, one sample array each. */
enum kind {
	K_ROUND,	   /* broadcast_N */
	K_REPLIES,	   /* broadcast_N_replies */
	K_FANOUT,	   /* fanout_N */
	K_CALL,		   /* call_1 */
	K_ALLOC,	   /* allocation_N */
	K_PROPOSAL,	   /* consensus_N */
	K_ROUND_PARKED,	   /* broadcast_N_parked */
	K_PROPOSAL_PARKED, /* consensus_N_parked */
	K_N
};

/* One instance to measure in. */
struct setup {
	uint32_t workers; /* the agents spread evenly over them */
	uint32_t members; /* agents, all in one group */
	const char *sfx;  /* after the rows' member count: "" or "_2w" */
	uint32_t kinds;	  /* 1u << enum kind */
	bool fanin;	  /* also the fan-in alone (fanin_*_N) */
	int rounds_full;  /* operations of each kind without --quick */
	int rounds_quick; /* with it */
};

struct coord {
	struct shm_seg *seg;
	struct ipc_waiter *waiter;
	shoal_handle_t inbox;
	const struct setup *s;
	char group[16];	   /* "b100": every member */
	char var[16];	   /* "c100": the proposals' variable */
	uint32_t capacity; /* allocation: about half the demands' sum (1..8 each, 4.5 on avg) */
	shoal_handle_t *members;
	uint32_t wslot[COORD_WORKERS]; /* the workers' process slots */
	uint32_t nw;
};

/* Every worker's process slot, once they all run. 0 or -ETIMEDOUT. */
static int find_workers(struct coord *c)
{
	uint32_t max = shm_hdr(c->seg)->cfg.max_procs;
	uint64_t dl = bench_now_ns() + WAIT_NS;

	do {
		c->nw = 0;
		for (uint32_t i = 0; i < max && c->nw < COORD_WORKERS; i++) {
			struct shm_proc *p = shm_proc_at(c->seg, i);

			/* relaxed: status words; nothing is read through them */
			if (atomic_load_explicit(&p->role, memory_order_relaxed) ==
				    SHM_ROLE_WORKER &&
			    atomic_load_explicit(&p->state, memory_order_relaxed) ==
				    SHM_PROC_RUNNING)
				c->wslot[c->nw++] = i;
		}
		if (c->nw == c->s->workers)
			return 0;
		sched_yield();
	} while (bench_now_ns() < dl);
	return -ETIMEDOUT;
}

/*
 * Until every worker has set its parked flag (it spins a while after its last message
 * first), with a deadline: the start of a _parked round. 0 or -ETIMEDOUT.
 */
static int wait_parked(struct coord *c)
{
	uint64_t dl = bench_now_ns() + PARK_WAIT_NS;

	for (uint32_t k = 0; k < c->nw; k++) {
		struct shm_proc *p = shm_proc_at(c->seg, c->wslot[k]);

		/* relaxed: only when the clock starts hangs on it, no data */
		while (!atomic_load_explicit(&p->parked, memory_order_relaxed)) {
			if (bench_now_ns() > dl)
				return -ETIMEDOUT;
			/* the worker may share this CPU: let it run to its park */
			sched_yield();
		}
	}
	return 0;
}

/* One round counted in its record. */
static int one_round(struct coord *c, uint64_t *ns)
{
	uint64_t t0 = bench_now_ns();
	struct ipc_round r;
	int rc;

	rc = ipc_round_start(c->seg, c->inbox, c->group, T_PAYLOAD, "x", 1, shm_now_ns() + WAIT_NS,
			     0, 1000, &r);
	if (rc)
		return rc;
	rc = ipc_round_wait(c->seg, c->waiter, &r);
	*ns = bench_now_ns() - t0;
	if (rc == 0)
		for (uint32_t i = 0; i < r.members; i++)
			if (ipc_round_member(c->seg, &r, i, NULL) != SHM_ROUND_M_ACKED)
				rc = -EPROTO;
	ipc_round_end(c->seg, &r);
	return rc ? rc : r.members == c->s->members ? 0 : -EPROTO;
}

/* One allocation round: every member reports, every share is sent. */
static int one_alloc(struct coord *c, uint64_t *ns)
{
	struct shoal_alloc_result res = {0};
	uint64_t t0 = bench_now_ns();
	int rc;

	rc = wrk_alloc_run(c->seg, c->waiter, c->inbox, c->group, "slots", c->capacity,
			   shoal_alloc_proportional, (int)(WAIT_NS / 1000000u), &res);
	*ns = bench_now_ns() - t0;
	if (rc)
		return rc;
	return res.reported == c->s->members && res.delivered == c->s->members &&
			       res.allocated == c->capacity
		       ? 0
		       : -EPROTO;
}

/*
 * One consensus proposal on the setup's variable (value v) to its agents: their type has no
 * vote callback, so each votes yes as its worker takes the message (no handler runs), and
 * the proposer commits by compare-and-set: the round plus the tally and one variable update.
 */
static int one_proposal(struct coord *c, int64_t v, uint64_t *ns)
{
	static uint64_t buf[(sizeof(struct ipc_vote_msg) + 8) / 8 + 1];
	struct shoal_proposal_result res;
	uint64_t t0 = bench_now_ns(), version;
	struct ipc_proposal p;
	int rc;

	rc = ipc_propose_start(c->seg, c->inbox, c->var, SHOAL_VAR_INT, &v, sizeof(v), c->group,
			       SHOAL_RULE_MAJORITY, 0, shm_now_ns() + WAIT_NS, 0, 1000, buf,
			       &version, &p);
	if (rc)
		return rc;
	rc = ipc_round_wait(c->seg, c->waiter, &p.r);
	if (rc) {
		ipc_propose_abort(c->seg, &p);
		return rc;
	}
	rc = ipc_propose_finish(c->seg, &p, SHM_VAR_WAIT_NS, &res);
	/* as every API does after a commit (no subscribers here: a look at a count) */
	if (!rc && res.outcome == SHOAL_PROPOSAL_COMMITTED)
		wrk_var_notify(c->seg, &p.var, 1, c->inbox);
	*ns = bench_now_ns() - t0;
	if (rc)
		return rc;
	return res.outcome == SHOAL_PROPOSAL_COMMITTED && res.yes == c->s->members ? 0 : -EPROTO;
}

/*
 * The benchmark's agents: a call is answered with its payload, a cast ignored (as echo), and
 * an allocation's ask answered with a demand of 1..8 units (from the agent's slot).
 * Registered in this process before the instance is forked, so its workers have the type.
 */
static int bdemand_init(struct shoal_ctx *ctx, const void *ckpt, uint32_t len, void **state)
{
	(void)ctx, (void)ckpt, (void)len;
	*state = NULL;
	return 0;
}

static int bdemand_handle(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m)
{
	(void)state;
	/* a redelivered ask is -EALREADY: its first demand stands, nothing to fail for */
	if (m->type == SHOAL_T_ALLOC_ASK && (m->flags & SHOAL_MSG_ROUND))
		shoal_alloc_demand(ctx, m, shoal_handle_slot(shoal_self(ctx)) % 8u + 1u);
	return 0;
}

static int bdemand_call(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m, void *reply,
			uint32_t cap, uint32_t *reply_len)
{
	uint32_t n = m->len < cap ? m->len : cap;

	(void)ctx, (void)state;
	memcpy(reply, m->data, n);
	*reply_len = n;
	return 0;
}

static const struct shoal_agent_type bdemand_type = {
	.name = "bench_demand",
	.init = bdemand_init,
	.handle = bdemand_handle,
	.handle_call = bdemand_call,
};

struct replies {
	struct coord *c;
	uint64_t ref;
	uint32_t got;
};

/* Take every reply to ref queued in the inbox; true once all are in. */
static bool take_replies(void *arg)
{
	struct replies *rp = arg;
	uint32_t slot = shoal_handle_slot(rp->c->inbox), n = rp->c->s->members;
	struct ipc_msg m;

	while (rp->got < n && ipc_mbox_peek(rp->c->seg, slot, &m) == 0) {
		rp->got += (m.flags & IPC_F_REPLY) && m.ref == rp->ref;
		ipc_mbox_consume(rp->c->seg, slot, &m);
	}
	return rp->got == n;
}

/* The same fan-out as calls; the fan-in as a reply message from each member. */
static int one_replies(struct coord *c, uint64_t ref, uint64_t *ns)
{
	struct replies rp = {.c = c, .ref = ref};
	uint64_t t0 = bench_now_ns();
	int rc;

	rc = ipc_fanout(c->seg, c->inbox, c->members, c->s->members, T_PAYLOAD, IPC_F_CALL, ref,
			"x", 1, 1000, NULL, NULL);
	if (rc != (int)c->s->members)
		return rc < 0 ? rc : -EPROTO;
	while (!take_replies(&rp)) {
		rc = ipc_waiter_wait(c->waiter, 20000, WAIT_NS, take_replies, &rp, NULL);
		if (rc <= 0)
			return rc < 0 ? rc : -ETIMEDOUT;
	}
	*ns = bench_now_ns() - t0;
	return 0;
}

/*
 * The fan-in alone, in this process (no scheduling in it): an answer from each member into
 * a round record and the owner's completion check, against a reply from each put into the
 * inbox and taken out.
 */
static int fanin_record(struct coord *c, uint64_t *ns)
{
	uint64_t t0 = bench_now_ns();
	uint32_t slot, gen, n = c->s->members;
	int rc = shm_round_claim(c->seg, &slot, &gen), last = 0;

	if (rc)
		return rc;
	shm_round_publish(c->seg, slot, gen, SHOAL_HANDLE_NONE, c->members, n,
			  shm_now_ns() + WAIT_NS, 0);
	for (uint32_t i = 0; i < n; i++)
		last = shm_round_answer(c->seg, slot, gen, i, false);
	rc = last == 1 && shm_round_is_complete(c->seg, slot, gen) ? 0 : -EPROTO;
	shm_round_free(c->seg, slot, gen);
	*ns = bench_now_ns() - t0;
	return rc;
}

static int fanin_replies(struct coord *c, uint64_t ref, uint64_t *ns)
{
	struct replies rp = {.c = c, .ref = ref};
	uint64_t t0 = bench_now_ns();

	for (uint32_t i = 0; i < c->s->members; i++) {
		int rc = ipc_send(c->seg, c->inbox, c->members[i], T_PAYLOAD, IPC_F_REPLY, ref,
				  NULL, 0, 0);

		if (rc)
			return rc;
	}
	if (!take_replies(&rp))
		return -EPROTO;
	*ns = bench_now_ns() - t0;
	return 0;
}

/* One operation of kind k, iteration i, its time into *ns. 0 or -errno. */
static int one_op(struct coord *c, enum kind k, int i, uint64_t *ns)
{
	uint64_t t0;
	char reply[8];
	int r;

	switch (k) {
	case K_ROUND_PARKED:
		r = wait_parked(c);
		return r ? r : one_round(c, ns);
	case K_ROUND:
		return one_round(c, ns);
	case K_PROPOSAL_PARKED:
		r = wait_parked(c);
		return r ? r : one_proposal(c, i, ns);
	case K_PROPOSAL:
		return one_proposal(c, i, ns);
	case K_REPLIES:
		return one_replies(c, ((uint64_t)getpid() << 32) | (uint32_t)(i + 1), ns);
	case K_ALLOC:
		return one_alloc(c, ns);
	case K_FANOUT:
		t0 = bench_now_ns();
		r = ipc_broadcast(c->seg, c->inbox, c->group, T_PAYLOAD, "x", 1, 1000);
		*ns = bench_now_ns() - t0;
		return r == (int)c->s->members ? 0 : r < 0 ? r : -EPROTO;
	default:
		t0 = bench_now_ns();
		r = ipc_call(c->seg, c->waiter, c->inbox, c->members[(uint32_t)i % c->s->members],
			     1, "x", 1, reply, sizeof(reply), 5000);
		*ns = bench_now_ns() - t0;
		return r == 1 ? 0 : r < 0 ? r : -EPROTO;
	}
}

/*
 * The instance's config: the setup's agents spread evenly over its workers, each bound to
 * its core: one worker on cpu_a (the client runs on cpu_b), two on cpu_a and cpu_b.
 */
static void setup_config(const struct setup *s, const struct bench_opts *o, const char *inst,
			 char *text, size_t cap)
{
	uint32_t per = s->members / s->workers;
	/* room for the agents and the quarter of the slots clients' inboxes may take */
	uint32_t agents = s->members < 192 ? 256 : s->members * 3 / 2, names = 16;
	char cpus[32];
	int n;

	if (s->workers == 1 || o->cpu_a == o->cpu_b)
		snprintf(cpus, sizeof(cpus), "%d", o->cpu_a);
	else
		snprintf(cpus, sizeof(cpus), "%d,%d", o->cpu_a, o->cpu_b);

	while (names < agents * 4) /* a power of two */
		names <<= 1;

	n = snprintf(text, cap,
		     "[instance]\nname = %s\nworkers = %u\ncpus = %s\nplacement = spread\n"
		     "status_interval = 0\n[segment]\nmax_agents = %u\n"
		     "registry_capacity = %u\nmax_procs = 8\ngroup_members = %u\n",
		     inst, s->workers, cpus, agents, names, s->members < 256 ? 256 : s->members);
	for (uint32_t w = 0; w < s->workers && n > 0 && (size_t)n < cap; w++)
		n += snprintf(text + n, cap - (size_t)n,
			      "[agent w%u]\ntype = bench_demand\ncount = %u\n"
			      "name = w%u-%%04u\nworker = %u\n",
			      w, per, w, w);
}

static const char *const kind_name[K_N] = {
	[K_ROUND] = "broadcast",	[K_REPLIES] = "broadcast",
	[K_FANOUT] = "fanout",		[K_CALL] = "call_1",
	[K_ALLOC] = "allocation",	[K_PROPOSAL] = "consensus",
	[K_ROUND_PARKED] = "broadcast", [K_PROPOSAL_PARKED] = "consensus",
};
static const char *const kind_tail[K_N] = {
	[K_REPLIES] = "_replies",
	[K_ROUND_PARKED] = "_parked",
	[K_PROPOSAL_PARKED] = "_parked",
};

/* A row's name: kind, members, the setup's suffix, the kind's tail (consensus_100_parked). */
static void row_name(const struct setup *s, enum kind k, char *buf, size_t cap)
{
	if (k == K_CALL)
		snprintf(buf, cap, "call_1%s", s->sfx);
	else
		snprintf(buf, cap, "%s_%u%s%s", kind_name[k], s->members, s->sfx,
			 kind_tail[k] ? kind_tail[k] : "");
}

/* This process on cpus a and b. 0 or -errno. */
static int bench_pin_two(int a, int b)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(a, &set);
	CPU_SET(b, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

/* The rows of one setup into rep; idx names its instance. 0 or -errno. */
static int coord_setup(struct bench_opts *o, struct bench_report *rep, const struct setup *s,
		       int idx)
{
	int n = o->quick ? s->rounds_quick : s->rounds_full, rc = -ENOMEM, r = 0;
	uint64_t *smp[K_N] = {0}, *fl = NULL, *fr = NULL, *fp = NULL, var, alloc[K_N] = {0};
	char inst[SHM_INSTANCE_MAX], text[1024], err[512] = "", name[BENCH_NAME_MAX] = "";
	char floor[BENCH_NAME_MAX], call[BENCH_NAME_MAX];
	struct coord c = {.s = s};
	struct bench_row *row;
	enum kind order[K_N];
	uint32_t nk = 0;
	pid_t sup;

	for (int k = 0; k < K_N; k++) {
		if (!(s->kinds & (1u << k)))
			continue;
		order[nk++] = (enum kind)k;
		smp[k] = calloc((size_t)n, sizeof(uint64_t));
		if (!smp[k])
			goto out_free;
	}
	fl = calloc((size_t)n, sizeof(uint64_t));
	fr = calloc((size_t)n, sizeof(uint64_t));
	fp = calloc((size_t)n, sizeof(uint64_t));
	c.members = calloc(s->members, sizeof(*c.members));
	if (!fl || !fr || !fp || !c.members)
		goto out_free;
	snprintf(c.group, sizeof(c.group), "b%u", s->members);
	snprintf(c.var, sizeof(c.var), "c%u", s->members);
	c.capacity = s->members * 9 / 4;
	if (o->instance)
		snprintf(inst, sizeof(inst), "%.*s-%d", SHM_INSTANCE_MAX - 8, o->instance, idx);
	else
		snprintf(inst, sizeof(inst), "bench-coord-%d-%d", (int)getpid(), idx);
	setup_config(s, o, inst, text, sizeof(text));
	/*
	 * One worker: this client on the other CPU (the supervisor, forked now, too: it sleeps).
	 * Two: the client may run on either, like the workers' other processes.
	 */
	rc = s->workers == 1 ? bench_pin(o->cpu_b) : bench_pin_two(o->cpu_a, o->cpu_b);
	if (rc) {
		fprintf(stderr, "shoal bench coord: pinning to cpus %d,%d: %s\n", o->cpu_a,
			o->cpu_b, strerror(-rc));
		goto out_free;
	}
	sup = bench_sup_start("coord", text);
	rc = -ECHILD;
	if (sup < 0)
		goto out_free;
	if (shm_seg_attach(inst, 0, 1000, &c.seg, err, sizeof(err)) ||
	    shm_proc_claim(c.seg, SHM_ROLE_CLIENT, true) || ipc_inbox_open(c.seg, &c.inbox) ||
	    ipc_waiter_create(c.seg, IPC_WAKE_AUTO, &c.waiter)) {
		fprintf(stderr, "shoal bench coord: attaching as a client: %s\n", err);
		goto out_stop;
	}
	shm_proc_set_state(c.seg, SHM_PROC_RUNNING);
	for (uint32_t i = 0; i < s->members; i++) {
		uint32_t per = s->members / s->workers;
		char an[24];

		snprintf(an, sizeof(an), "w%u-%04u", i / per, i % per);
		if (shm_reg_lookup(c.seg, SHM_NS_DEFAULT, an, strlen(an), &c.members[i], NULL) ||
		    shm_grp_join(c.seg, c.group, strlen(c.group), c.members[i])) {
			fprintf(stderr, "shoal bench coord: agent %s: not there or not joined\n",
				an);
			goto out_client;
		}
	}
	r = shm_var_create(c.seg, SHM_NS_DEFAULT, c.var, strlen(c.var), SHM_VAR_INT, &var);
	if (r) {
		fprintf(stderr, "shoal bench coord: variable %s: %s\n", c.var, strerror(-r));
		rc = r;
		goto out_client;
	}
	r = find_workers(&c);
	if (r) {
		fprintf(stderr, "shoal bench coord: %u workers not running: %s\n", s->workers,
			strerror(-r));
		rc = r;
		goto out_client;
	}
	/*
	 * Alternated, and each iteration starting with the next kind, so drift on the machine
	 * and the state the previous operation left the workers in touch each row alike.
	 */
	for (int i = 0; i < n && !r; i++)
		for (uint32_t j = 0; j < nk && !r; j++) {
			enum kind k = order[((uint32_t)i + j) % nk];
			uint64_t a0 = bench_alloc_bytes();

			r = one_op(&c, k, i, &smp[k][i]);
			alloc[k] += bench_alloc_bytes() - a0;
			if (r)
				row_name(s, k, name, sizeof(name));
		}
	for (int i = 0; i < n && !r && s->fanin; i++) {
		snprintf(name, sizeof(name), "fanin_*_%u", s->members);
		r = fanin_record(&c, &fr[i]);
		if (!r)
			r = fanin_replies(
				&c, ((uint64_t)getpid() << 32) | 0x40000000u | (uint32_t)i, &fp[i]);
	}
	if (r) {
		fprintf(stderr, "shoal bench coord: %s: %s\n", name, strerror(-r));
		rc = r;
		goto out_client;
	}
	snprintf(floor, sizeof(floor), "round_floor_%u%s", s->members, s->sfx);
	row_name(s, K_CALL, call, sizeof(call));
	for (uint32_t j = 0; j < nk; j++) {
		row_name(s, order[j], name, sizeof(name));
		if (order[j] == K_FANOUT || order[j] == K_CALL)
			bench_add_baseline(rep, name, smp[order[j]], (size_t)n, 0);
	}
	/* a copy: filling a row sorts its samples */
	memcpy(fl, smp[K_ROUND], (size_t)n * sizeof(*fl));
	bench_add_baseline(rep, floor, fl, (size_t)n, 0);
	for (uint32_t j = 0; j < nk; j++) {
		enum kind k = order[j];
		/* broadcasts against one call when there is one; the others against the floor */
		bool vs_call = (k == K_ROUND || k == K_REPLIES) && (s->kinds & (1u << K_CALL));

		if (k == K_FANOUT || k == K_CALL)
			continue;
		row_name(s, k, name, sizeof(name));
		row = bench_add_result(rep, name, smp[k], (size_t)n, 0,
				       vs_call	      ? call
				       : k == K_ROUND ? ""
						      : floor);
		if (row)
			row->alloc_per_op = (double)alloc[k] / n;
	}
	if (s->fanin) {
		snprintf(name, sizeof(name), "fanin_record_%u", s->members);
		bench_add_result(rep, name, fr, (size_t)n, 0, "");
		snprintf(name, sizeof(name), "fanin_replies_%u", s->members);
		bench_add_result(rep, name, fp, (size_t)n, 0, "");
	}
	rc = 0;
out_client:
	if (c.waiter)
		ipc_waiter_destroy(c.waiter);
	if (c.inbox)
		ipc_inbox_close(c.seg, c.inbox);
	if (c.seg)
		shm_seg_detach(c.seg);
out_stop:
	bench_sup_stop("coord", sup);
out_free:
	for (int k = 0; k < K_N; k++)
		free(smp[k]);
	free(fl);
	free(fr);
	free(fp);
	free(c.members);
	return rc;
}

#define KINDS_ROUNDS                                                                               \
	((1u << K_ROUND) | (1u << K_ALLOC) | (1u << K_PROPOSAL) | (1u << K_ROUND_PARKED) |         \
	 (1u << K_PROPOSAL_PARKED))
#define KINDS_ALL (KINDS_ROUNDS | (1u << K_REPLIES) | (1u << K_FANOUT) | (1u << K_CALL))

static const struct setup setups[] = {
	{.workers = 1,
	 .members = 100,
	 .sfx = "",
	 .kinds = KINDS_ALL,
	 .fanin = true,
	 .rounds_full = 3000,
	 .rounds_quick = 300},
	{.workers = 1,
	 .members = 1000,
	 .sfx = "",
	 .kinds = KINDS_ROUNDS,
	 .rounds_full = 1000,
	 .rounds_quick = 100},
	{.workers = 2,
	 .members = 100,
	 .sfx = "_2w",
	 .kinds = (1u << K_ROUND) | (1u << K_PROPOSAL) | (1u << K_CALL),
	 .rounds_full = 3000,
	 .rounds_quick = 300},
};

/* The rounds' rows into rep (see the top of this file); its notes appended. 0 or -errno. */
static int coord_rounds(struct bench_opts *o, struct bench_report *rep)
{
	int rc;

	/* the agents' type, inherited by the instance's workers (a second run: a no-op) */
	rc = shoal_agent_type_register(&bdemand_type);
	if (rc) {
		fprintf(stderr, "shoal bench coord: type 'bench_demand': %s\n", strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < sizeof(setups) / sizeof(setups[0]) && !rc; i++)
		rc = coord_setup(o, rep, &setups[i], (int)i);
	if (rc)
		return rc;
	snprintf(rep->notes + strlen(rep->notes), sizeof(rep->notes) - strlen(rep->notes),
		 "%sRounds (%d of each kind, %d with 1000 agents; alternated) to echo-like agents "
		 "from a client that parks after a 20 us spin. _100, _1000: every agent on 1 "
		 "worker bound to cpu %d, the client on cpu %d (the awake setup: on 2 CPUs, one "
		 "each); _2w: 50 agents on each of 2 workers (cpus %d and %d), the client free "
		 "to run on either (3 processes on 2 CPUs). "
		 "Back to back, except _parked: each starts once every worker has parked. "
		 "broadcast_N counts the answers in the round record (the last wakes the client), "
		 "broadcast_100_replies as 100 reply messages to its inbox; fanin_*_100: the "
		 "fan-in alone, in this process. fanout_100: a plain broadcast (no waiting); "
		 "call_1: one call to one agent. allocation_N: demands of 1..8 units, capacity "
		 "9N/4, proportional, until every share is sent. consensus_N: a majority proposal "
		 "on one int variable (agents vote yes as their worker takes it), committed by "
		 "compare-and-set. round_floor_N: broadcast_N's samples",
		 rep->notes[0] ? ". " : "", o->quick ? 300 : 3000, o->quick ? 100 : 1000, o->cpu_a,
		 o->cpu_b, o->cpu_a, o->cpu_b);
	return 0;
}

/*
 * shoal bench coord: the variables' rows (bench_coord_vars.c, a scratch segment), then the
 * rounds' (three instances: 100 agents on 1 worker, 1,000 on 1, 100 on 2), into rep.
 * Returns a CLI exit code. The tool's main thread.
 */
int bench_coord(struct bench_opts *o, struct bench_report *rep)
{
	int r;

	r = bench_coord_vars(o, rep);
	if (!r)
		r = bench_coord_pool(o, rep);
	if (!r)
		r = coord_rounds(o, rep);
	return r ? tool_exit_for(r) : EXIT_OK;
}
