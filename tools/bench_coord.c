/*
 * shoal bench coord: broadcast with acknowledgements to 100 agents (echo's, answering an
 * allocation's ask with a demand too) spread over two
 * workers, back to back (workers awake): broadcast_100, a round whose answers are counted in
 * its round record (the one wake of the client when the last answer lands), and
 * broadcast_100_replies, the same fan-out as calls whose 100 replies come back as messages
 * to the client's inbox (the design not taken, measured beside it). allocation_100: an
 * allocation round over the same agents (each reports a demand of 1..8 units, the capacity
 * is about half their sum, proportional shares sent back in one batch), against its floor
 * round_floor_100 (broadcast_100's samples: the same fan-out and fan-in with empty
 * callbacks). consensus_100: a consensus proposal to the same agents, against the same floor.
 * Baselines in the same run: the fan-out alone (fanout_100: a plain broadcast, nothing waited
 * for) and one call round trip to one echo agent (call_1).
 */
#include <errno.h>
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

#define NMEMBERS  100
#define WAIT_NS	  5000000000ull
#define T_PAYLOAD 7u
#define CAPACITY  225u /* about half the demands' sum (1..8 each, 4.5 on average) */

struct coord {
	struct shm_seg *seg;
	struct ipc_waiter *waiter;
	shoal_handle_t inbox;
	shoal_handle_t members[NMEMBERS];
};

/* One round counted in its record. */
static int one_round(struct coord *c, uint64_t *ns)
{
	uint64_t t0 = bench_now_ns();
	struct ipc_round r;
	int rc;

	rc = ipc_round_start(c->seg, c->inbox, "b100", T_PAYLOAD, "x", 1, shm_now_ns() + WAIT_NS, 0,
			     1000, &r);
	if (rc)
		return rc;
	rc = ipc_round_wait(c->seg, c->waiter, &r);
	*ns = bench_now_ns() - t0;
	if (rc == 0)
		for (uint32_t i = 0; i < r.members; i++)
			if (ipc_round_member(c->seg, &r, i, NULL) != SHM_ROUND_M_ACKED)
				rc = -EPROTO;
	ipc_round_end(c->seg, &r);
	return rc ? rc : r.members == NMEMBERS ? 0 : -EPROTO;
}

/* One allocation round: every member reports, every share is sent. */
static int one_alloc(struct coord *c, uint64_t *ns)
{
	struct shoal_alloc_result res = {0};
	uint64_t t0 = bench_now_ns();
	int rc;

	rc = wrk_alloc_run(c->seg, c->waiter, c->inbox, "b100", "slots", CAPACITY,
			   shoal_alloc_proportional, (int)(WAIT_NS / 1000000u), &res);
	*ns = bench_now_ns() - t0;
	if (rc)
		return rc;
	return res.reported == NMEMBERS && res.delivered == NMEMBERS && res.allocated == CAPACITY
		       ? 0
		       : -EPROTO;
}

/*
 * One consensus proposal on variable c100 (value v) to the same 100 agents: their type has no
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

	rc = ipc_propose_start(c->seg, c->inbox, "c100", SHOAL_VAR_INT, &v, sizeof(v), "b100",
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
	return res.outcome == SHOAL_PROPOSAL_COMMITTED && res.yes == NMEMBERS ? 0 : -EPROTO;
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
	uint32_t slot = shoal_handle_slot(rp->c->inbox);
	struct ipc_msg m;

	while (rp->got < NMEMBERS && ipc_mbox_peek(rp->c->seg, slot, &m) == 0) {
		rp->got += (m.flags & IPC_F_REPLY) && m.ref == rp->ref;
		ipc_mbox_consume(rp->c->seg, slot, &m);
	}
	return rp->got == NMEMBERS;
}

/* The same fan-out as calls; the fan-in as 100 reply messages. */
static int one_replies(struct coord *c, uint64_t ref, uint64_t *ns)
{
	struct replies rp = {.c = c, .ref = ref};
	uint64_t t0 = bench_now_ns();
	int rc;

	rc = ipc_fanout(c->seg, c->inbox, c->members, NMEMBERS, T_PAYLOAD, IPC_F_CALL, ref, "x", 1,
			1000, NULL, NULL);
	if (rc != NMEMBERS)
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
 * The fan-in alone, in this process (no scheduling in it): 100 answers into a round record
 * and the owner's completion check, against 100 replies put into the inbox and taken out.
 */
static int fanin_record(struct coord *c, uint64_t *ns)
{
	uint64_t t0 = bench_now_ns();
	uint32_t slot, gen;
	int rc = shm_round_claim(c->seg, &slot, &gen), last = 0;

	if (rc)
		return rc;
	shm_round_publish(c->seg, slot, gen, SHOAL_HANDLE_NONE, c->members, NMEMBERS,
			  shm_now_ns() + WAIT_NS, 0);
	for (uint32_t i = 0; i < NMEMBERS; i++)
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

	for (uint32_t i = 0; i < NMEMBERS; i++) {
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

static const char *config_fmt =
	"[instance]\nname = %s\nworkers = 2\nplacement = none\nstatus_interval = 0\n"
	"[segment]\nmax_agents = 256\nregistry_capacity = 1024\nmax_procs = 8\n"
	"[agent a]\ntype = bench_demand\ncount = 50\nname = a-%%02u\nworker = 0\n"
	"[agent b]\ntype = bench_demand\ncount = 50\nname = b-%%02u\nworker = 1\n";

/* The rounds' rows into rep (see the top of this file); its notes appended. 0 or -errno. */
static int coord_rounds(struct bench_opts *o, struct bench_report *rep)
{
	int n = o->quick ? 300 : 3000, rc = -ENOMEM, r = 0;
	uint64_t *a = calloc((size_t)n, sizeof(uint64_t)), *b = calloc((size_t)n, sizeof(uint64_t));
	uint64_t *f = calloc((size_t)n, sizeof(uint64_t)), *k = calloc((size_t)n, sizeof(uint64_t));
	uint64_t *fr = calloc((size_t)n, sizeof(uint64_t)),
		 *fp = calloc((size_t)n, sizeof(uint64_t));
	uint64_t *al = calloc((size_t)n, sizeof(uint64_t)),
		 *fl = calloc((size_t)n, sizeof(uint64_t));
	uint64_t *cp = calloc((size_t)n, sizeof(uint64_t));
	uint64_t var;
	char inst[SHM_INSTANCE_MAX], text[1024], err[512] = "", reply[8];
	struct coord c = {0};
	struct bench_row *row;
	uint64_t t0;
	pid_t sup;

	if (!a || !b || !f || !k || !fr || !fp || !al || !fl || !cp)
		goto out_free;
	/* the agents' type, inherited by the instance's workers (a second run: a no-op) */
	rc = shoal_agent_type_register(&bdemand_type);
	if (rc) {
		fprintf(stderr, "shoal bench coord: type 'bench_demand': %s\n", strerror(-rc));
		goto out_free;
	}
	rc = -ENOMEM;
	if (o->instance)
		snprintf(inst, sizeof(inst), "%s", o->instance);
	else
		snprintf(inst, sizeof(inst), "bench-coord-%d", (int)getpid());
	snprintf(text, sizeof(text), config_fmt, inst);
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
	for (int i = 0; i < NMEMBERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "%c-%02d", i < 50 ? 'a' : 'b', i % 50);
		if (shm_reg_lookup(c.seg, SHM_NS_DEFAULT, name, strlen(name), &c.members[i],
				   NULL) ||
		    shm_grp_join(c.seg, "b100", 4, c.members[i])) {
			fprintf(stderr, "shoal bench coord: agent %s: not there or not joined\n",
				name);
			goto out_client;
		}
	}
	r = shm_var_create(c.seg, SHM_NS_DEFAULT, "c100", 4, SHM_VAR_INT, &var);
	if (r) {
		fprintf(stderr, "shoal bench coord: variable c100: %s\n", strerror(-r));
		rc = r;
		goto out_client;
	}
	/*
	 * Alternated, and each iteration starting with the next kind, so drift on the machine
	 * and the state the previous operation left the workers in touch each row alike.
	 */
	for (int i = 0; i < n && !r; i++) {
		for (int j = 0; j < 6 && !r; j++) {
			switch ((i + j) % 6) {
			case 5:
				r = one_proposal(&c, i, &cp[i]);
				break;
			case 0:
				r = one_round(&c, &a[i]);
				break;
			case 1:
				r = one_replies(&c, ((uint64_t)getpid() << 32) | (uint32_t)(i + 1),
						&b[i]);
				break;
			case 4:
				r = one_alloc(&c, &al[i]);
				break;
			case 2:
				t0 = bench_now_ns();
				r = ipc_broadcast(c.seg, c.inbox, "b100", T_PAYLOAD, "x", 1, 1000);
				f[i] = bench_now_ns() - t0;
				r = r == NMEMBERS ? 0 : r < 0 ? r : -EPROTO;
				break;
			default:
				t0 = bench_now_ns();
				r = ipc_call(c.seg, c.waiter, c.inbox, c.members[i % NMEMBERS], 1,
					     "x", 1, reply, sizeof(reply), 5000);
				k[i] = bench_now_ns() - t0;
				r = r == 1 ? 0 : r < 0 ? r : -EPROTO;
			}
		}
	}
	for (int i = 0; i < n && !r; i++) {
		r = fanin_record(&c, &fr[i]);
		if (!r)
			r = fanin_replies(
				&c, ((uint64_t)getpid() << 32) | 0x40000000u | (uint32_t)i, &fp[i]);
	}
	if (r) {
		fprintf(stderr, "shoal bench coord: %s\n", strerror(-r));
		rc = r;
		goto out_client;
	}
	bench_add_baseline(rep, "fanout_100", f, (size_t)n, 0);
	bench_add_baseline(rep, "call_1", k, (size_t)n, 0);
	/* a copy: filling a row sorts its samples */
	memcpy(fl, a, (size_t)n * sizeof(*fl));
	bench_add_baseline(rep, "round_floor_100", fl, (size_t)n, 0);
	row = bench_add_result(rep, "consensus_100", cp, (size_t)n, 0, "round_floor_100");
	row->target_ns = 40000;
	row->target_pct = 99;
	row = bench_add_result(rep, "broadcast_100", a, (size_t)n, 0, "call_1");
	row->target_ns = 25000;
	row->target_pct = 99;
	bench_add_result(rep, "broadcast_100_replies", b, (size_t)n, 0, "call_1");
	bench_add_result(rep, "allocation_100", al, (size_t)n, 0, "round_floor_100");
	bench_add_result(rep, "fanin_record_100", fr, (size_t)n, 0, "");
	bench_add_result(rep, "fanin_replies_100", fp, (size_t)n, 0, "");
	snprintf(
		rep->notes + strlen(rep->notes), sizeof(rep->notes) - strlen(rep->notes),
		"%s%d rounds each, alternated, to %d echo-like agents (50 on each of 2 workers) "
		"from a "
		"client that parks after a 20 us spin: broadcast_100 counts the answers in the "
		"round record (one wake of the client by the last), broadcast_100_replies as %d "
		"reply messages to its inbox. fanin_*_100: the fan-in alone, in this process (100 "
		"answers into a record vs 100 replies put and taken). fanout_100: the plain "
		"broadcast alone (no waiting); call_1: one call to one echo agent. "
		"allocation_100: an allocation round to the same agents (demands of 1..8 units, "
		"capacity %u, proportional), until every share is sent; round_floor_100: "
		"broadcast_100's samples, its floor. consensus_100: a majority proposal on one int "
		"variable to the same agents (their type has no vote callback: yes), committed by "
		"compare-and-set, against the same floor",
		rep->notes[0] ? ". " : "", n, NMEMBERS, NMEMBERS, CAPACITY);
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
	free(a);
	free(b);
	free(f);
	free(k);
	free(fr);
	free(fp);
	free(al);
	free(cp);
	free(fl);
	return rc;
}

/*
 * shoal bench coord: the variables' rows (bench_coord_vars.c, a scratch segment), then the
 * rounds' (an instance with 100 agents), in one report. Returns a CLI exit code. The tool.
 */
int bench_coord(int argc, char **argv, struct bench_opts *o)
{
	static struct bench_report rep;
	int r;

	(void)argc;
	(void)argv;
	memset(&rep, 0, sizeof(rep));
	rep.bench = "coord";
	rep.json = o->json;
	r = bench_coord_vars(o, &rep);
	if (!r)
		r = bench_coord_pool(o, &rep);
	if (!r)
		r = coord_rounds(o, &rep);
	if (r)
		return tool_exit_for(r);
	return bench_report_print(&rep) && o->check ? EXIT_CHECK : EXIT_OK;
}
