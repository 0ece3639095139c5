/*
 * shoal inspect --json: a snapshot (shm/view.h) as one JSON object, schema "shoal.inspect/1"
 * (docs/inspect-json.md says what each field means and how the schema evolves). Written with
 * jansson, as every JSON shoal writes: strings escaped, no hand-made syntax.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "shm/view.h"
#include "tools/tools.h"

#define SCHEMA "shoal.inspect/1"

static const char *const region_json[] = {
	"processes",   "agents",    "registry",	  "groups", "mailboxes",
	"checkpoints", "telemetry", "monitors",	  "pools",  "variables",
	"rounds",      "types",	    "histograms", "events", "distribution",
};
/* a region added without its name here does not compile */
static_assert(sizeof(region_json) / sizeof(region_json[0]) == SHM_R_COUNT, "a name per region");

/* Add key = value to o; a failed allocation is counted in *bad (the object is dropped). */
static void put(json_t *o, const char *key, json_t *value, int *bad)
{
	if (!value || json_object_set_new(o, key, value))
		(*bad)++;
}

static json_t *u64(uint64_t v)
{
	/* JSON numbers are doubles to many readers: counters stay exact up to 2^53 */
	return json_integer((json_int_t)v);
}

static json_t *header(const struct shm_view *v, const char *path, int *bad)
{
	const struct shm_view_hdr *h = &v->hdr;
	json_t *o = json_object(), *sup = json_object(), *ctl;

	if (!o || !sup) {
		json_decref(o);
		json_decref(sup);
		(*bad)++;
		return NULL;
	}
	put(o, "instance", json_string(h->instance), bad);
	put(o, "path", json_string(path), bad);
	put(o, "published", json_boolean(h->published), bad);
	put(o, "layout", json_pack("{s:i,s:i}", "major", h->layout_major, "minor", h->layout_minor),
	    bad);
	put(o, "segment_bytes", u64(h->seg_size), bad);
	put(o, "creator_pid", u64(h->creator_pid), bad);
	put(o, "owner_uid", u64(h->owner_uid), bad);
	put(o, "created_ns", u64(h->created_ns), bad);
	put(o, "stopped_ns", u64(h->stop_ns), bad);
	put(o, "state", json_string(shm_inst_state_name(h->state)), bad);
	put(o, "liveness", json_string(shm_liveness_name(h->liveness)), bad);
	put(sup, "pid", u64(h->sup_pid), bad);
	put(sup, "epoch", u64(h->sup_epoch), bad);
	put(sup, "heartbeat_age_ns",
	    h->sup_hb_ns && v->taken_ns > h->sup_hb_ns ? u64(v->taken_ns - h->sup_hb_ns)
						       : json_null(),
	    bad);
	put(o, "supervisor", sup, bad);
	if (h->has_control) {
		ctl = json_pack("{s:I,s:I,s:I,s:I}", "inbox", (json_int_t)h->ctl_inbox, "served",
				(json_int_t)h->ctl_served, "refused", (json_int_t)h->ctl_refused,
				"dropped", (json_int_t)h->ctl_dropped);
		put(o, "control", ctl, bad);
	}
	return o;
}

static json_t *config(const struct shm_cfg *c, int *bad)
{
	json_t *o = json_object();

	if (!o) {
		(*bad)++;
		return NULL;
	}
	put(o, "max_procs", u64(c->max_procs), bad);
	put(o, "max_agents", u64(c->max_agents), bad);
	put(o, "registry_capacity", u64(c->reg_capacity), bad);
	put(o, "max_groups", u64(c->max_groups), bad);
	put(o, "group_members", u64(c->group_members), bad);
	put(o, "mailbox_cells", u64(c->mbox_cells), bad);
	put(o, "max_message", u64(c->max_msg), bad);
	put(o, "workers", u64(c->nworkers), bad);
	put(o, "checkpoint_bytes", u64(c->ckpt_bytes), bad);
	put(o, "numa_nodes", u64(c->nnodes), bad);
	put(o, "max_monitors", u64(c->max_monitors), bad);
	put(o, "client_inboxes", u64(c->max_inboxes), bad);
	put(o, "variables", u64(c->max_vars), bad);
	put(o, "variable_bytes", u64(c->var_bytes), bad);
	put(o, "rounds", u64(c->max_rounds), bad);
	put(o, "pools", u64(c->max_pools), bad);
	put(o, "pool_members", u64(c->pool_members), bad);
	put(o, "subscriptions", u64(c->max_subs), bad);
	put(o, "events", u64(c->events), bad);
	return o;
}

static json_t *process(const struct shm_view *v, const struct shm_view_proc *p, int *bad)
{
	json_t *o = json_object();

	if (!o) {
		(*bad)++;
		return NULL;
	}
	put(o, "slot", u64(p->slot), bad);
	put(o, "role", json_string(shm_role_name(p->role)), bad);
	put(o, "state", json_string(p->torn ? "changing" : shm_proc_state_name(p->state_word)),
	    bad);
	put(o, "pid", u64(p->pid), bad);
	put(o, "epoch", u64(p->epoch), bad);
	put(o, "core", json_integer(p->core), bad);
	put(o, "node", json_integer(p->node), bad);
	put(o, "memory_cap_bytes", u64(p->mem_cap), bad);
	put(o, "cap_mechanism",
	    json_string(p->cap_mech == 2   ? "cgroup"
			: p->cap_mech == 1 ? "rlimit"
					   : "none"),
	    bad);
	put(o, "restarts", u64(p->restarts), bad);
	put(o, "worker_index", u64(p->windex), bad);
	put(o, "heartbeat_age_ns",
	    p->hb_age_ns == SHM_VIEW_AGE_NONE ? json_null() : u64(p->hb_age_ns), bad);
	put(o, "parked", json_boolean(p->parked), bad);
	if (p->last_reason)
		put(o, "last_exit",
		    json_pack("{s:s,s:I,s:I,s:i,s:i,s:I}", "reason",
			      shm_exit_reason_name(p->last_reason), "pid", (json_int_t)p->last_pid,
			      "epoch", (json_int_t)p->last_epoch, "code", p->last_code, "signal",
			      p->last_signal, "time_ns", (json_int_t)p->last_exit_ns),
		    bad);
	if (p->telem_ret == 0 && p->telem.flushes)
		put(o, "telemetry",
		    json_pack("{s:I,s:I,s:I,s:I,s:b,s:I,s:I,s:I}", "handled",
			      (json_int_t)p->telem.handled, "busy_rounds",
			      (json_int_t)p->telem.rounds, "parks", (json_int_t)p->telem.parks,
			      "flushes", (json_int_t)p->telem.flushes, "final", p->telem.final != 0,
			      "rss_bytes", (json_int_t)p->telem.rss_bytes, "rss_start_bytes",
			      (json_int_t)p->telem.rss_start_bytes, "cgroup_memory_bytes",
			      (json_int_t)p->telem.cg_memory_bytes),
		    bad);
	if (p->role == SHM_ROLE_GATEWAY && p->telem_ret == 0 && p->telem.flushes)
		put(o, "dist",
		    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "connections",
			      (json_int_t)p->telem.dist_conns, "links",
			      (json_int_t)p->telem.dist_links, "calls_in_flight",
			      (json_int_t)p->telem.dist_calls, "stalled_connections",
			      (json_int_t)p->telem.dist_stalled, "messages_in",
			      (json_int_t)p->telem.dist_in, "messages_out",
			      (json_int_t)p->telem.dist_out, "dropped",
			      (json_int_t)p->telem.dist_dropped),
		    bad);
	(void)v;
	return o;
}

static json_t *agent(const struct shm_view_agent *a, const struct tool_mbox *mb, int *bad)
{
	json_t *o = json_object();

	if (!o) {
		(*bad)++;
		return NULL;
	}
	put(o, "slot", u64(a->slot), bad);
	put(o, "gen", u64(a->gen), bad);
	put(o, "handle", u64(shoal_handle_make(a->slot, a->gen)), bad);
	put(o, "state", json_string(a->torn ? "changing" : shm_agent_state_name(a->state)), bad);
	put(o, "type", json_string(a->type), bad);
	put(o, "name", json_string(a->name), bad);
	put(o, "worker", json_integer(a->worker), bad);
	put(o, "node", u64(a->node), bad);
	put(o, "restarts", u64(a->restarts), bad);
	put(o, "handled", u64(a->handled), bad);
	put(o, "redelivered", u64(a->redelivered), bad);
	put(o, "checkpoint_bytes", u64(a->ckpt_len), bad);
	put(o, "queued", mb ? u64(mb->depth) : json_null(), bad);
	put(o, "queued_max", mb ? u64(mb->queued_max) : json_null(), bad);
	put(o, "poisoned", mb ? u64(mb->poisoned) : json_null(), bad);
	return o;
}

/* Append value to array a, counting a failure in *bad. */
static void push(json_t *a, json_t *value, int *bad)
{
	if (!value || json_array_append_new(a, value))
		(*bad)++;
}

/*
 * The gateway's node and its connections (SHM_R_DIST), or null when no gateway wrote them
 * (no [dist]), or they could not be read.
 */
static json_t *distribution(const struct shm_view *v, int *bad)
{
	const struct shm_dist *d = &v->dist;
	json_t *o, *a;

	if (!(v->parts & SHM_VIEW_PART_DIST) || v->dist_ret)
		return json_null();
	o = json_pack("{s:s,s:I,s:b,s:f}", "node", d->node, "gateway_pid", (json_int_t)d->pid,
		      "stopped", d->final != 0, "age_s",
		      v->taken_ns > d->flushed_ns ? (double)(v->taken_ns - d->flushed_ns) / 1e9
						  : 0.0);
	a = json_array();
	for (uint32_t i = 0; a && i < d->nconns; i++) {
		const struct shm_dist_conn *c = &d->conns[i];

		push(a,
		     json_pack("{s:s,s:b,s:f,s:I,s:I,s:I,s:b}", "node", c->node, "outbound",
			       c->outbound != 0, "up_s",
			       d->flushed_ns > c->since_ns
				       ? (double)(d->flushed_ns - c->since_ns) / 1e9
				       : 0.0,
			       "messages_in", (json_int_t)c->in, "messages_out", (json_int_t)c->out,
			       "queued_bytes", (json_int_t)c->queued, "stalled", c->stalled != 0),
		     bad);
	}
	if (!o) {
		(*bad)++;
		json_decref(a);
		return NULL;
	}
	put(o, "connections", a, bad);
	return o;
}

/* The latency histograms, merged over every process: one entry per operation, [] if none. */
static json_t *operations(const struct shm_view *v, int *bad)
{
	json_t *a = json_array();

	for (uint32_t op = 0; a && v->has_ops && op < SHM_HIST_OPS; op++) {
		const struct shm_view_op *o = &v->ops[op];

		push(a,
		     json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "name", o->name,
			       "count", (json_int_t)o->count, "sample_rate", (json_int_t)o->rate,
			       "p50_ns", (json_int_t)o->p50_ns, "p90_ns", (json_int_t)o->p90_ns,
			       "p99_ns", (json_int_t)o->p99_ns, "p999_ns", (json_int_t)o->p999_ns,
			       "max_ns", (json_int_t)o->max_ns, "mean_ns", (json_int_t)o->mean_ns,
			       "torn", o->torn != 0),
		     bad);
	}
	return a;
}

static json_t *build(const struct shm_view *v, const char *path, const struct tool_mbox *mb,
		     uint32_t nmb, int *bad)
{
	json_t *root = json_object(), *a;

	if (!root) {
		(*bad)++;
		return NULL;
	}
	put(root, "schema", json_string(SCHEMA), bad);
	put(root, "taken_ns", u64(v->taken_wall_ns), bad);
	put(root, "complete", json_boolean(v->parts == SHM_VIEW_PART_ALL), bad);
	put(root, "header", header(v, path, bad), bad);
	put(root, "config", config(&v->cfg, bad), bad);
	a = json_array();
	for (uint32_t i = 0; a && i < SHM_R_COUNT; i++)
		if (region_json[i])
			push(a,
			     json_pack("{s:s,s:I,s:I}", "name", region_json[i], "offset",
				       (json_int_t)v->regions[i].off, "bytes",
				       (json_int_t)v->regions[i].size),
			     bad);
	put(root, "regions", a, bad);
	a = json_array();
	for (uint32_t i = 0; a && i < v->nprocs; i++)
		if (v->procs[i].state_word != SHM_PROC_FREE || v->procs[i].last_reason)
			push(a, process(v, &v->procs[i], bad), bad);
	put(root, "processes", a, bad);
	a = json_array();
	for (uint32_t i = 0; a && i < v->nexits; i++) {
		const struct shm_exit_rec *r = &v->exits[i];

		push(a,
		     json_pack("{s:I,s:I,s:s,s:I,s:I,s:s,s:i,s:i,s:I}", "time_ns",
			       (json_int_t)r->time_ns, "slot", (json_int_t)r->slot, "role",
			       shm_role_name(r->role), "pid", (json_int_t)r->pid, "epoch",
			       (json_int_t)r->epoch, "reason", shm_exit_reason_name(r->reason),
			       "code", r->code, "signal", r->signal, "restarts",
			       (json_int_t)r->restarts),
		     bad);
	}
	put(root, "exits", a, bad);
	put(root, "exits_total", u64(v->exits_total), bad);
	a = json_array();
	for (uint32_t i = 0; a && i < v->nagents; i++)
		push(a, agent(&v->agents[i], i < nmb ? &mb[i] : NULL, bad), bad);
	put(root, "agents", a, bad);
	a = json_array();
	for (uint32_t i = 0; a && i < v->nmonitors; i++)
		push(a,
		     json_pack("{s:I,s:I,s:I}", "watcher", (json_int_t)v->monitors[i].watcher,
			       "target", (json_int_t)v->monitors[i].target, "ref",
			       (json_int_t)v->monitors[i].ref),
		     bad);
	put(root, "monitors", a, bad);
	if (!v->reg_ret)
		put(root, "registry",
		    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "capacity",
			      (json_int_t)v->reg.capacity, "live", (json_int_t)v->reg.live,
			      "claimed", (json_int_t)v->reg.claimed, "longest_probe",
			      (json_int_t)v->reg.longest_probe, "repaired",
			      (json_int_t)v->reg.repaired, "waits", (json_int_t)v->reg.waits,
			      "lost", (json_int_t)v->reg.lost),
		    bad);
	a = json_array();
	for (uint32_t i = 0; a && i < v->nnames; i++) {
		const struct shm_view_name *n = &v->names[i];

		push(a,
		     n->is_var ? json_pack("{s:I,s:s,s:s,s:s,s:I}", "ns", (json_int_t)n->ns,
					   "namespace", n->ns_name, "name", n->name, "kind",
					   "variable", "variable", (json_int_t)n->var_index)
			       : json_pack("{s:I,s:s,s:s,s:s,s:I}", "ns", (json_int_t)n->ns,
					   "namespace", n->ns_name, "name", n->name, "kind",
					   "agent", "handle", (json_int_t)n->handle),
		     bad);
	}
	put(root, "names", a, bad);
	put(root, "names_cut", json_boolean(v->names_cut), bad);
	a = json_array();
	for (uint32_t i = 0; a && i < v->ngroups && i < SHM_VIEW_GROUPS; i++)
		push(a,
		     json_pack("{s:s,s:I}", "name", v->groups[i].name, "members",
			       (json_int_t)v->groups[i].members),
		     bad);
	put(root, "groups", a, bad);
	put(root, "groups_total", u64(v->ngroups), bad);
	a = json_array();
	for (uint32_t i = 0; a && i < v->npools && i < SHM_VIEW_POOLS; i++) {
		const struct shm_pool_info *p = &v->pools[i];

		push(a,
		     json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "name", p->name,
			       "type", p->type, "size", (json_int_t)p->size, "overflow",
			       (json_int_t)p->overflow, "members", (json_int_t)p->members, "held",
			       (json_int_t)p->held, "waiting", (json_int_t)p->waiting, "starting",
			       (json_int_t)p->want, "checkouts", (json_int_t)p->checkouts, "waits",
			       (json_int_t)p->waits, "timeouts", (json_int_t)p->timeouts),
		     bad);
	}
	put(root, "pools", a, bad);
	if (!v->vars_ret)
		put(root, "variables",
		    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "capacity", (json_int_t)v->vars.capacity,
			      "live", (json_int_t)v->vars.live, "locked",
			      (json_int_t)v->vars.locked, "rolled_forward",
			      (json_int_t)v->vars.forward, "released", (json_int_t)v->vars.back,
			      "freed", (json_int_t)v->vars.freed),
		    bad);
	put(root, "rounds", json_pack("{s:I}", "in_use", (json_int_t)v->rounds_in_use), bad);
	put(root, "subscriptions",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "capacity", (json_int_t)v->subs.capacity,
		      "live", (json_int_t)v->subs.live, "unread", (json_int_t)v->subs.queued,
		      "owed_now", (json_int_t)v->subs.owed_now, "sent", (json_int_t)v->subs.notes,
		      "coalesced", (json_int_t)v->subs.coalesced, "refused",
		      (json_int_t)v->subs.owed),
	    bad);
	put(root, "operations", operations(v, bad), bad);
	a = json_array();
	for (uint32_t i = 0; a && i < v->nevents; i++)
		push(a, tool_event_json(&v->events[i]), bad);
	put(root, "events", a, bad);
	put(root, "event_ring",
	    json_pack("{s:I,s:I,s:I}", "capacity", (json_int_t)v->events_cap, "next",
		      (json_int_t)v->events_next, "skipped", (json_int_t)v->events_skipped),
	    bad);
	put(root, "distribution", distribution(v, bad), bad);
	return root;
}

/* See tools.h. */
int tool_inspect_json(const struct shm_view *v, const char *path, const struct tool_mbox *mb,
		      uint32_t nmb, FILE *out)
{
	int bad = 0;
	json_t *root = build(v, path, mb, nmb, &bad);
	int r = 0;

	if (!root || bad || json_dumpf(root, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER))
		r = -ENOMEM;
	else
		fputc('\n', out);
	json_decref(root);
	return r;
}
