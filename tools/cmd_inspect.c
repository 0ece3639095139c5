/* shoal inspect: read an instance's segment (read-only) and print what it holds. */
#include <assert.h>
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/registry.h" /* --scratch registers an example name */
#include "shm/shm.h"
#include "shm/var.h"
#include "shm/view.h"
#include "supervisor/sup.h"
#include "tools/tools.h"

#define AGENTS_SHOWN   64 /* agent rows listed without --all */
#define NAMES_SHOWN    32 /* registry entries listed without --all */
#define MONITORS_SHOWN 32 /* monitor entries listed */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal inspect [--instance NAME] [--all] [--agent PATTERN] [--wait MS] "
		"[--json | --names]\n"
		"       shoal inspect --scratch [--json]\n"
		"Attaches read-only and prints the header, the liveness of the supervisor, the\n"
		"region table, the process table, the agents (in slot order) and the registry\n"
		"(sorted by namespace and name). Never writes to the segment.\n"
		"  --all      also list free and exited process slots, and every agent and\n"
		"             registry entry (without it: the first %u agents and %u entries)\n"
		"  --agent PATTERN  only the agents and registry entries whose name contains\n"
		"             PATTERN, or matches it as a glob if it has * ? or [ (text and JSON)\n"
		"  --wait MS  wait up to MS for a starting instance to become ready (default 0)\n"
		"  --json     one JSON object instead (schema shoal.inspect/1, "
		"docs/inspect-json.md):\n"
		"             every process slot, agent, name, group and pool, not the first few\n"
		"  --names    only the registry's names (agents' and variables'), one a line,\n"
		"             sorted (for scripts and shell completion)\n"
		"  --scratch  create a scratch instance, inspect it, and remove it (a "
		"self-check)\n",
		AGENTS_SHOWN, NAMES_SHOWN);
}

static void print_time(const char *label, uint64_t wall_ns)
{
	time_t t = (time_t)(wall_ns / 1000000000u);
	struct tm tm;
	char buf[64] = "-";

	if (wall_ns && gmtime_r(&t, &tm))
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%-14s %s\n", label, buf);
}

static const char *region_names[] = {
	"processes",   "agents",    "registry",	  "groups", "mailboxes",
	"checkpoints", "telemetry", "monitors",	  "pools",  "variables",
	"rounds",      "types",	    "histograms", "events", "distribution",
};
/* a region added without its name here does not compile */
static_assert(sizeof(region_names) / sizeof(region_names[0]) == SHM_R_COUNT, "a name per region");

/* What inspect prints: the snapshot, and the mailbox counters of the agents it lists. */
struct inspect {
	bool all;
	bool json;
	const char *pattern;  /* --agent PATTERN, or NULL */
	uint32_t agents_seen; /* agent slots in use before the filter */
	uint32_t names_seen;  /* registry entries listed before the filter */
	struct shm_view *v;
	uint32_t nmbox;		/* agent rows whose mailbox was read (a fault may stop it short) */
	struct tool_mbox *mbox; /* max_agents of them (--json lists every agent) */
};

/* The supervisor's control inbox (spawn/stop requests) and what it served. */
static void show_control(const struct shm_view *v)
{
	const struct shm_view_hdr *h = &v->hdr;
	enum shm_liveness l = h->liveness;

	if (!h->has_control) {
		printf("control        none (layout minor %u)\n", h->layout_minor);
		return;
	}
	if (h->ctl_inbox)
		printf("control        inbox agent slot %u; ", shoal_handle_slot(h->ctl_inbox));
	else
		printf("control        not serving; ");
	printf("requests served %llu (refused %llu), dropped %llu\n",
	       (unsigned long long)h->ctl_served, (unsigned long long)h->ctl_refused,
	       (unsigned long long)h->ctl_dropped);
	/* a request in flight means something only once the supervisor is gone */
	if (!h->ctl_op || l == SHM_LIVE_OK || l == SHM_LIVE_UNRESPONSIVE)
		return;
	printf("note           the supervisor died serving a %s request from inbox slot %u, ",
	       ipc_ctl_op_name((uint32_t)h->ctl_op), shoal_handle_slot(h->ctl_from));
	if (h->ctl_agent)
		printf("agent slot %u (gen %u): unanswered, maybe half done\n",
		       shoal_handle_slot(h->ctl_agent), shoal_handle_gen(h->ctl_agent));
	else
		printf("unanswered; an agent slot it held reads starting or stopping\n");
}

static void show_spare(uint32_t sp)
{
	if (sp == SHM_SPARE_FORKING) {
		printf("warm spare     being forked\n");
	} else if (sp) {
		/* what the word says, checked against the process itself */
		char st = shm_pid_state((pid_t)(sp & ~SHM_SPARE_READY));

		printf("warm spare     pid %u, %s%s\n", sp & ~SHM_SPARE_READY,
		       sp & SHM_SPARE_READY ? "ready" : "preparing",
		       st == 0 || st == 'Z' || st == 'X' ? ", but dead (not replaced yet)"
		       : st == 'T' || st == 't'
			       ? ", but stopped (the next restart drops it and forks)"
			       : "");
	} else {
		printf("warm spare     none\n");
	}
}

static void show_header(const struct shm_view *v, const char *path)
{
	const struct shm_view_hdr *h = &v->hdr;
	const struct shm_cfg *cfg = &v->cfg;
	uint64_t now = v->taken_ns, hb = h->sup_hb_ns;
	enum shm_liveness l = h->liveness;

	printf("instance       %s (%s)\n", h->instance, path);
	printf("layout         %u.%u, %llu bytes\n", h->layout_major, h->layout_minor,
	       (unsigned long long)h->seg_size);
	/* a reader cannot write the segment: a vanished supervisor is computed, not stored */
	if (l == SHM_LIVE_STALE)
		printf("state          supervisor-dead (the segment still says %s), %s\n",
		       shm_inst_state_name(h->state), shm_liveness_name(l));
	else
		printf("state          %s, %s\n", shm_inst_state_name(h->state),
		       shm_liveness_name(l));
	printf("supervisor     pid %u, epoch %u, heartbeat %.3f s ago\n", h->sup_pid, h->sup_epoch,
	       now > hb ? (double)(now - hb) / 1e9 : 0.0);
	show_spare(h->spare);
	show_control(v);
	printf("creator        pid %u, uid %u\n", h->creator_pid, h->owner_uid);
	print_time("created", h->created_ns);
	if (h->stop_ns)
		print_time("stopped", h->stop_ns);
	printf("config         procs %u, agents %u, registry %u, groups %u x %u, mailbox %u "
	       "cells, max message %u, nodes %u\n",
	       cfg->max_procs, cfg->max_agents, cfg->reg_capacity, cfg->max_groups,
	       cfg->group_members, cfg->mbox_cells, cfg->max_msg, cfg->nnodes);
	/* broadcasts with acknowledgements in flight (their records' owner words) */
	printf("rounds         %u of %u records in use\n", v->rounds_in_use, cfg->max_rounds);
	if (h->state == SHM_INST_SUP_DEAD)
		printf("note           the supervisor died; its workers marked the segment as they "
		       "exited; remove with 'shoal clean --instance %s'\n",
		       h->instance);
	else if (l == SHM_LIVE_STALE)
		printf("note           the supervisor is gone and the instance was not stopped: "
		       "stale; remove with 'shoal clean --instance %s'\n",
		       h->instance);
}

static void show_regions(const struct shm_view *v)
{
	printf("\nregions        %-12s %12s %12s\n", "", "offset", "bytes");
	for (unsigned i = 0; i < SHM_R_COUNT; i++)
		if (region_names[i])
			printf("               %-12s %12llu %12llu\n", region_names[i],
			       (unsigned long long)v->regions[i].off,
			       (unsigned long long)v->regions[i].size);
}

static void show_procs(const struct shm_view *v, bool all)
{
	printf("\nprocesses      (wakeup: the path a process parks on; * parked now)\n  %4s %-10s "
	       "%-8s %7s %6s %5s %4s %-14s %-13s %8s %9s  %s\n",
	       "slot", "role", "state", "pid", "epoch", "core", "node", "memory cap", "wakeup",
	       "restarts", "hb-age-ms", "last exit");
	for (uint32_t i = 0; i < v->nprocs; i++) {
		const struct shm_view_proc *p = &v->procs[i];
		uint32_t st = p->state_word;
		char last[96] = "-", cap[32] = "-", wake[24];

		if (!all &&
		    (st == SHM_PROC_FREE || (st == SHM_PROC_EXITED && p->role == SHM_ROLE_CLIENT)))
			continue;
		/* status words for a person: a row may mix two exits for an instant */
		if (p->last_reason == SHM_EXIT_VANISHED)
			snprintf(last, sizeof(last), "pid %u epoch %u vanished (status unknown)",
				 p->last_pid, p->last_epoch);
		else if (p->last_reason)
			snprintf(last, sizeof(last), "pid %u epoch %u %s (code %d, signal %d)",
				 p->last_pid, p->last_epoch, shm_exit_reason_name(p->last_reason),
				 p->last_code, p->last_signal);
		/* which mechanism enforces the cap: 1 setrlimit, 2 cgroup v2 */
		if (p->mem_cap && (p->cap_mech == 1 || p->cap_mech == 2))
			snprintf(cap, sizeof(cap), "%s %lluM",
				 p->cap_mech == 1 ? "rlimit" : "cgroup",
				 (unsigned long long)(p->mem_cap >> 20));
		/* the wakeup path this process parks on, and whether it is parked now */
		snprintf(wake, sizeof(wake), "%s%s",
			 p->wake_mech == IPC_WAKE_FUTEX	    ? "uring-futex"
			 : p->wake_mech == IPC_WAKE_EVENTFD ? "uring-fifo"
							    : "-",
			 p->wake_mech && p->parked ? "*" : "");
		/* a row that kept changing while it was read says so rather than mix two */
		printf("  %4u %-10s %-8s %7u %6u %5d %4d %-14s %-13s %8u %9.1f  %s\n", i,
		       shm_role_name(p->role), p->torn ? "changing" : shm_proc_state_name(st),
		       p->pid, p->epoch, p->core, p->node, cap, wake, p->restarts,
		       (double)p->hb_age_ns / 1e6, last);
	}
	/* a replacement still at its start-up priority (sup_child_boost(), supervisor/) */
	for (uint32_t i = 0; i < v->nprocs; i++) {
		const struct shm_view_proc *p = &v->procs[i];
		pid_t pid = (pid_t)p->pid;

		if (p->role == SHM_ROLE_WORKER && p->state_word == SHM_PROC_RUNNING && pid > 0 &&
		    sched_getscheduler(pid) == SCHED_FIFO)
			printf("note           worker slot %u (pid %d) runs at SCHED_FIFO: its "
			       "predecessor's exit is still completing\n",
			       i, (int)pid);
	}
}

/* The workers' telemetry blocks (struct shm_telem), as last flushed. */
static void show_telemetry(const struct shm_view *v)
{
	uint64_t now = v->taken_ns;
	bool head = false;

	for (uint32_t i = 0; i < v->nprocs; i++) {
		const struct shm_telem *t = &v->procs[i].telem;
		uint64_t busy = 0, half = 0;
		uint32_t p50 = 0;
		char rss[16], grow[16], cg[16], p50s[16];

		if (v->procs[i].telem_ret || !t->flushes)
			continue;
		if (!head) {
			printf("\ntelemetry      (per worker, as last flushed; batch: messages per "
			       "busy round;\n               rss: resident memory; growth: since "
			       "the process's first flush (a\n               replacement starts "
			       "anew); cgroup: its memory.current, - without one)\n"
			       "  %4s %7s %12s %10s %10s %8s %9s %9s %7s %7s %7s\n",
			       "slot", "pid", "handled", "rounds", "parks", "flushes", "age-ms",
			       "batch-p50", "rss", "growth", "cgroup");
			head = true;
		}
		for (uint32_t b = 0; b < SHM_TELEM_BUCKETS; b++)
			busy += t->batch[b];
		for (uint32_t b = 0; b < SHM_TELEM_BUCKETS && busy; b++) {
			half += t->batch[b];
			if (2 * half >= busy) {
				p50 = 1u << b;
				break;
			}
		}
		tool_fmt_mem(rss, sizeof(rss), t->rss_bytes);
		tool_fmt_mem_delta(grow, sizeof(grow), t->rss_start_bytes, t->rss_bytes);
		if (t->cg_memory_bytes)
			tool_fmt_mem(cg, sizeof(cg), t->cg_memory_bytes);
		else
			snprintf(cg, sizeof(cg), "-");
		snprintf(p50s, sizeof(p50s), "%s%u", p50 ? ">=" : "", p50);
		printf("  %4u %7u %12llu %10llu %10llu %8llu %9.1f %9s %7s %7s %7s%s\n", i, t->pid,
		       (unsigned long long)t->handled, (unsigned long long)t->rounds,
		       (unsigned long long)t->parks, (unsigned long long)t->flushes,
		       now > t->flushed_ns ? (double)(now - t->flushed_ns) / 1e6 : 0.0, p50s, rss,
		       grow, cg, t->final ? " (final)" : "");
	}
}

/* The distribution gateway's figures, from its telemetry block, if the instance has one. */
static void show_dist(const struct shm_view *v)
{
	for (uint32_t i = 0; i < v->nprocs; i++) {
		const struct shm_view_proc *p = &v->procs[i];
		const struct shm_telem *t = &p->telem;

		if (p->role != SHM_ROLE_GATEWAY || p->telem_ret || !t->flushes)
			continue;
		printf("\ndistribution   gateway slot %u pid %u: %u connection%s, %u link%s, %u "
		       "call%s in flight, %u stalled on a full mailbox; %llu in, %llu out, %llu "
		       "dropped (as of %.1f s ago%s)\n",
		       i, t->pid, t->dist_conns, t->dist_conns == 1 ? "" : "s", t->dist_links,
		       t->dist_links == 1 ? "" : "s", t->dist_calls, t->dist_calls == 1 ? "" : "s",
		       t->dist_stalled, (unsigned long long)t->dist_in,
		       (unsigned long long)t->dist_out, (unsigned long long)t->dist_dropped,
		       v->taken_ns > t->flushed_ns ? (double)(v->taken_ns - t->flushed_ns) / 1e9
						   : 0.0,
		       t->final ? "; its final figures" : "");
	}
	if ((v->parts & SHM_VIEW_PART_DIST) && v->dist_ret == 0) {
		const struct shm_dist *d = &v->dist;

		printf("%-14s %s (gateway pid %u, as of %.1f s ago%s): %u connection%s\n", "node",
		       d->node, d->pid,
		       v->taken_ns > d->flushed_ns ? (double)(v->taken_ns - d->flushed_ns) / 1e9
						   : 0.0,
		       d->final ? "; stopped" : "", d->nconns, d->nconns == 1 ? "" : "s");
		for (uint32_t i = 0; i < d->nconns; i++) {
			const struct shm_dist_conn *c = &d->conns[i];

			printf("  %-40s %s, up %.0f s: %llu in, %llu out, %llu bytes queued%s\n",
			       c->node, c->outbound ? "we connected" : "it connected",
			       d->flushed_ns > c->since_ns
				       ? (double)(d->flushed_ns - c->since_ns) / 1e9
				       : 0.0,
			       (unsigned long long)c->in, (unsigned long long)c->out,
			       (unsigned long long)c->queued,
			       c->stalled ? ", stalled on a full mailbox" : "");
		}
	}
}

/* The exit log: every exit of a process slot's owner, newest first (the last SHM_EXIT_LOG). */
static void show_exits(const struct shm_view *v)
{
	if (!v->has_exit_log)
		return;
	printf("\nexits          %llu recorded (newest first; the last %u are kept)\n",
	       (unsigned long long)v->exits_total, SHM_EXIT_LOG);
	for (uint32_t i = 0; i < v->nexits; i++) {
		const struct shm_exit_rec *r = &v->exits[i];
		time_t t = (time_t)(r->time_ns / 1000000000u);
		struct tm tm;
		char when[40] = "-", status[48];

		if (r->time_ns && gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		if (r->reason == SHM_EXIT_VANISHED)
			snprintf(status, sizeof(status), "status unknown");
		else
			snprintf(status, sizeof(status), "code %d, signal %d", r->code, r->signal);
		printf("  %s.%03uZ slot %-3u %-10s pid %-7u epoch %-5u %-10s %s; restarts %u\n",
		       when, (unsigned)(r->time_ns / 1000000u % 1000u), r->slot,
		       shm_role_name(r->role), r->pid, r->epoch, shm_exit_reason_name(r->reason),
		       status, r->restarts);
	}
}

#define EVENTS_SHOWN 8 /* the event ring's last events listed (shoal events lists them all) */

static void show_events(const struct shm_view *v)
{
	uint32_t first = v->nevents > EVENTS_SHOWN ? v->nevents - EVENTS_SHOWN : 0;

	if (!v->events_cap) {
		printf("\nevents         none kept ([segment] events = 0)\n");
		return;
	}
	printf("\nevents         %llu appended (a ring of %u)", (unsigned long long)v->events_next,
	       v->events_cap);
	if (v->nevents)
		printf("; the last %u, oldest first:", v->nevents - first);
	putchar('\n');
	for (uint32_t i = first; i < v->nevents; i++) {
		char line[512];

		tool_event_line(&v->events[i], line, sizeof(line));
		printf("  %s\n", line);
	}
}

/* "name" of the agent a handle names, or "slot N" (its name field; "?" if out of range). */
static void handle_label(const struct shm_view *v, shoal_handle_t h, char *out, size_t cap)
{
	uint32_t slot = shoal_handle_slot(h);
	const struct shm_view_agent *a;

	if (slot >= v->cfg.max_agents) {
		snprintf(out, cap, "?");
		return;
	}
	a = shm_view_agent_find(v, slot);
	if (a && a->name[0] && a->gen == shoal_handle_gen(h))
		snprintf(out, cap, "%s", a->name);
	else
		snprintf(out, cap, "slot %u", slot);
}

/* The monitor table: who gets DOWN/UP about whom. */
static void show_monitors(const struct shm_view *v)
{
	uint32_t shown = 0;

	printf("\nmonitors       %u of %u entries in use, %u claimed by writers\n", v->nmonitors,
	       v->cfg.max_monitors, v->monitors_claimed);
	for (uint32_t i = 0; i < v->nmonitors && shown < MONITORS_SHOWN; i++) {
		const struct shm_view_monitor *m = &v->monitors[i];
		char wl[80], tl[80];

		shown++;
		handle_label(v, m->watcher, wl, sizeof(wl));
		handle_label(v, m->target, tl, sizeof(tl));
		printf("  %-24s watches %-24s ref %llu\n", wl, tl, (unsigned long long)m->ref);
	}
	if (shown < v->nmonitors)
		printf("  ... %u more\n", v->nmonitors - shown);
}

static void show_agents(const struct inspect *in)
{
	const struct shm_view *v = in->v;

	printf("\nagents         %u of %u slots in use", in->agents_seen, v->cfg.max_agents);
	if (in->pattern)
		printf(", %u named like '%s'", v->nagents, in->pattern);
	printf("\n");
	printf("  %5s %-5s %-8s %-12s %-24s %6s %6s %6s %10s %11s %8s %8s\n", "slot", "gen",
	       "state", "type", "name", "worker", "queued", "max", "handled", "redelivered",
	       "restarts", "poisoned");
	for (uint32_t i = 0; i < v->nagents && (in->all || i < AGENTS_SHOWN); i++) {
		const struct shm_view_agent *a = &v->agents[i];
		char queued[16] = "?", qmax[16] = "?", poisoned[24] = "?";

		/* a mailbox the fault stopped us from reading shows as "?" */
		if (i < in->nmbox) {
			snprintf(queued, sizeof(queued), "%u", in->mbox[i].depth);
			snprintf(qmax, sizeof(qmax), "%u", in->mbox[i].queued_max);
			snprintf(poisoned, sizeof(poisoned), "%llu",
				 (unsigned long long)in->mbox[i].poisoned);
		}
		printf("  %5u %-5u %-8s %-12s %-24s %6d %6s %6s %10llu %11llu %8u %8s\n", a->slot,
		       a->gen, a->torn ? "changing" : shm_agent_state_name(a->state), a->type,
		       a->name, a->worker, queued, qmax, (unsigned long long)a->handled,
		       (unsigned long long)a->redelivered, a->restarts, poisoned);
	}
	if (!in->all && v->nagents > AGENTS_SHOWN)
		printf("  ... %u more ('--all' lists every one)\n", v->nagents - AGENTS_SHOWN);
}

static void show_registry(const struct inspect *in, bool groups)
{
	const struct shm_view *v = in->v;
	const struct shm_reg_stats *st = &v->reg;

	if (v->reg_ret) {
		printf("\nregistry       region does not match its configured capacity: not "
		       "read\n");
		return;
	}
	printf("\nregistry       %u live of %u entries (%.1f%% full), %u claimed by writers\n",
	       st->live, st->capacity, st->capacity ? 100.0 * st->live / st->capacity : 0.0,
	       st->claimed);
	printf("               longest probe %u buckets, longest chain scan %u, counter excess "
	       "%u\n",
	       st->longest_probe, st->longest_chain, st->overflow_excess);
	printf("               dead claims resolved %llu, registrations aborted %llu, "
	       "update waits %llu\n",
	       (unsigned long long)st->repaired, (unsigned long long)st->aborted,
	       (unsigned long long)st->waits);
	if (st->lost)
		printf("               %llu claims a live writer found taken from it: a bug, "
		       "please "
		       "report it\n",
		       (unsigned long long)st->lost);
	if (st->live) {
		if (in->pattern)
			printf("  %u of the %u listed named like '%s'\n", v->nnames, in->names_seen,
			       in->pattern);
		printf("  %5s  %-40s %s\n", "ns", "name", "handle");
		for (uint32_t i = 0; i < v->nnames && (in->all || i < NAMES_SHOWN); i++) {
			const struct shm_view_name *n = &v->names[i];
			char full[SHM_NS_NAME_MAX + 1 + SHOAL_NAME_MAX + 1];

			/* a named namespace: "name:entry", cut at SHOAL_NAME_MAX */
			snprintf(full, sizeof(full), "%s%s%s", n->ns_name, n->ns_name[0] ? ":" : "",
				 n->name);
			if (n->is_var)
				printf("  %5u  %-40.*s variable %-3u gen %u\n", n->ns,
				       SHOAL_NAME_MAX, full, n->var_index, n->var_gen);
			else
				printf("  %5u  %-40.*s slot %-7u gen %-6u meta %u bytes\n", n->ns,
				       SHOAL_NAME_MAX, full, shoal_handle_slot(n->handle),
				       shoal_handle_gen(n->handle), n->meta_len);
		}
		if (!in->all && v->nnames > NAMES_SHOWN)
			printf("  ... %u more ('--all' lists every one)\n",
			       v->nnames - NAMES_SHOWN);
		if (v->names_cut)
			printf("  ... the first %u read of %u live entries\n", in->names_seen,
			       st->live);
		if (v->ns_named)
			printf("  %u named namespaces (their names are shown before the "
			       "entries')\n",
			       v->ns_named);
	}
	if (!groups)
		return;
	printf("\ngroups         (of %u, %u members each)\n", v->cfg.max_groups,
	       v->cfg.group_members);
	for (uint32_t i = 0; i < v->ngroups && i < SHM_VIEW_GROUPS; i++)
		printf("  %-40s %u members\n", v->groups[i].name, v->groups[i].members);
}

/* Whether name is one --agent PATTERN selects: a glob if it has one of * ? [, else a substring. */
static bool is_selected(const char *pattern, const char *name)
{
	if (!pattern)
		return true;
	if (strpbrk(pattern, "*?["))
		return fnmatch(pattern, name, 0) == 0;
	return strstr(name, pattern) != NULL;
}

/* Registry entries by namespace, then name: hash order means nothing to a reader. */
static int name_cmp(const void *a, const void *b)
{
	const struct shm_view_name *x = a, *y = b;
	int c = strcmp(x->ns_name, y->ns_name);

	if (x->ns != y->ns && !c)
		return x->ns < y->ns ? -1 : 1;
	return c ? c : strcmp(x->name, y->name);
}

/*
 * Keep only the agents and registry entries --agent selects (in the view itself, so the text
 * and the JSON output agree), and sort the entries. Before the mailboxes are read: they
 * follow the agents kept.
 */
static void filter_and_sort(struct inspect *in)
{
	struct shm_view *v = in->v;
	uint32_t k = 0;

	in->agents_seen = v->nagents;
	in->names_seen = v->nnames;
	for (uint32_t i = 0; i < v->nagents; i++)
		if (is_selected(in->pattern, v->agents[i].name))
			v->agents[k++] = v->agents[i];
	v->nagents = k;
	k = 0;
	for (uint32_t i = 0; i < v->nnames; i++)
		if (is_selected(in->pattern, v->names[i].name))
			v->names[k++] = v->names[i];
	v->nnames = k;
	qsort(v->names, v->nnames, sizeof(*v->names), name_cmp);
}

/*
 * Everything inspect reads, under shm_seg_guard(): the snapshot (made on the first call), then
 * the mailbox counters of the agents it will list, which are no table (ipc/ reads them).
 */
static int take_all(const struct shm_seg *seg, void *arg)
{
	struct inspect *in = arg;
	int ret;

	if (!in->v) {
		ret = shm_view_create(seg, &in->v);
		if (ret)
			return ret;
	}
	if (!in->mbox) {
		in->mbox = calloc(in->v->cfg.max_agents ? in->v->cfg.max_agents : 1,
				  sizeof(*in->mbox));
		if (!in->mbox)
			return -ENOMEM;
	}
	ret = shm_view_take(seg, 3000000000ull, in->v);
	if (ret)
		return ret;
	filter_and_sort(in);
	for (in->nmbox = 0;
	     in->nmbox < in->v->nagents && (in->json || in->all || in->nmbox < AGENTS_SHOWN);
	     in->nmbox++) {
		struct ipc_mbox_stats ms;
		uint32_t slot = in->v->agents[in->nmbox].slot;

		ipc_mbox_stats(seg, slot, &ms);
		in->mbox[in->nmbox].depth = ipc_mbox_depth(seg, slot);
		in->mbox[in->nmbox].poisoned = ms.poisoned;
		in->mbox[in->nmbox].queued_max = ms.queued_max;
	}
	return 0;
}

/* The variables region's counters (shoal var list shows the variables themselves). */
static void show_vars(const struct shm_view *v)
{
	const struct shm_var_stats *st = &v->vars;

	if (v->vars_ret) {
		printf("\nvariables      region does not match its configuration: not read\n");
		return;
	}
	if (!st->capacity) {
		printf("\nvariables      none ([segment] variables = 0)\n");
		return;
	}
	printf("\nvariables      %u of %u, blobs up to %u bytes, %u locked by a writer now\n",
	       st->live, st->capacity, v->cfg.var_bytes, st->locked);
	printf("               dead writers: %llu batches rolled forward, %llu locks released, "
	       "%llu unnamed variables freed\n",
	       (unsigned long long)st->forward, (unsigned long long)st->back,
	       (unsigned long long)st->freed);
	printf("               consensus proposals: %u open, %u claims of gone proposers awaiting "
	       "repair (shoal var list names them)\n",
	       st->proposing, st->stale);
	if (!v->subs.capacity) {
		printf("subscriptions  none ([segment] subscriptions = 0)\n");
		return;
	}
	printf("subscriptions  %u of %u, %u with a notification unread, %u owed one\n",
	       v->subs.live, v->subs.capacity, v->subs.queued, v->subs.owed_now);
	printf("               notifications: %llu sent, %llu updates coalesced, %llu refused by a "
	       "full mailbox\n",
	       (unsigned long long)v->subs.notes, (unsigned long long)v->subs.coalesced,
	       (unsigned long long)v->subs.owed);
}

/* Print the sections of the snapshot that are whole (all of them unless a read faulted). */
static void show_all(const struct inspect *in, const char *path)
{
	const struct shm_view *v = in->v;
	uint32_t parts = v->parts;

	if (!(parts & SHM_VIEW_PART_HDR))
		return;
	if (!v->hdr.published)
		printf("note           never published: its creator died while initialising it\n");
	show_header(v, path);
	show_regions(v);
	if (parts & SHM_VIEW_PART_PROCS) {
		show_procs(v, in->all);
		show_telemetry(v);
		show_dist(v);
	}
	if (parts & SHM_VIEW_PART_EXITS)
		show_exits(v);
	if (parts & SHM_VIEW_PART_EVENTS)
		show_events(v);
	if (parts & SHM_VIEW_PART_AGENTS)
		show_agents(in);
	if (parts & SHM_VIEW_PART_MONITORS)
		show_monitors(v);
	if (parts & SHM_VIEW_PART_REGISTRY)
		show_registry(in, parts & SHM_VIEW_PART_GROUPS);
	if (parts & SHM_VIEW_PART_POOLS)
		tool_show_pools(v);
	if (parts & SHM_VIEW_PART_VARS)
		show_vars(v);
	if (parts & SHM_VIEW_PART_OPS)
		tool_show_ops(v);
}

/* See tools.h. */
void tool_fmt_ns(char *buf, size_t cap, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, cap, "%lluns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, cap, "%.1fus", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, cap, "%.2fms", (double)ns / 1e6);
	else
		snprintf(buf, cap, "%.2fs", (double)ns / 1e9);
}

/* See tools.h. */
void tool_fmt_mem(char *buf, size_t cap, uint64_t b)
{
	if (b < (1ull << 20))
		snprintf(buf, cap, "%lluK", (unsigned long long)(b >> 10));
	else if (b < (1ull << 30))
		snprintf(buf, cap, "%.1fM", (double)b / (1 << 20));
	else
		snprintf(buf, cap, "%.1fG", (double)b / (1 << 30));
}

/* See tools.h. */
void tool_fmt_mem_delta(char *buf, size_t cap, uint64_t from, uint64_t to)
{
	if (cap < 2)
		return;
	if (to == from) {
		snprintf(buf, cap, "+0");
		return;
	}
	buf[0] = to > from ? '+' : '-';
	tool_fmt_mem(buf + 1, cap - 1, to > from ? to - from : from - to);
}

/* See tools.h. */
void tool_ops_sample_note(const struct shm_view *v, char *buf, size_t cap)
{
	size_t n = 0;
	uint32_t rate = 0;

	buf[0] = 0;
	for (uint32_t op = 0; op < SHM_HIST_OPS && n < cap; op++) {
		if (v->ops[op].rate <= 1)
			continue;
		rate = v->ops[op].rate;
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", v->ops[op].name);
	}
	if (rate && n < cap)
		snprintf(buf + n, cap - n, ": percentiles from a 1/%u sample", rate);
}

/* See tools.h. */
void tool_show_ops(const struct shm_view *v)
{
	char note[160];

	if (!v->has_ops) {
		printf("\noperations     no latency histograms (layout minor %u; they came in "
		       "10)\n",
		       v->hdr.layout_minor);
		return;
	}
	tool_ops_sample_note(v, note, sizeof(note));
	printf("\noperations     latency, every process merged (%s; the others: each one timed)\n",
	       note);
	printf("  %-14s %10s %8s %8s %8s %8s %8s %8s\n", "operation", "count", "p50", "p90", "p99",
	       "p99.9", "max", "mean");
	for (uint32_t op = 0; op < SHM_HIST_OPS; op++) {
		const struct shm_view_op *o = &v->ops[op];
		char p50[16], p90[16], p99[16], p999[16], max[16], mean[16];

		if (!o->count) {
			printf("  %-14s %10s %8s %8s %8s %8s %8s %8s\n", o->name, "0", "-", "-",
			       "-", "-", "-", "-");
			continue;
		}
		tool_fmt_ns(p50, sizeof(p50), o->p50_ns);
		tool_fmt_ns(p90, sizeof(p90), o->p90_ns);
		tool_fmt_ns(p99, sizeof(p99), o->p99_ns);
		tool_fmt_ns(p999, sizeof(p999), o->p999_ns);
		tool_fmt_ns(max, sizeof(max), o->max_ns);
		tool_fmt_ns(mean, sizeof(mean), o->mean_ns);
		printf("  %-14s %10llu %8s %8s %8s %8s %8s %8s%s\n", o->name,
		       (unsigned long long)o->count, p50, p90, p99, p999, max, mean,
		       o->torn ? "  (a writer died mid-record: one sample may be off)" : "");
	}
}

/* --names: each registry name as `inspect` shows it ("ns:name" in a named namespace). */
static void show_names(const struct shm_view *v)
{
	for (uint32_t i = 0; i < v->nnames; i++) {
		const struct shm_view_name *n = &v->names[i];

		printf("%s%s%s\n", n->ns_name, n->ns_name[0] ? ":" : "", n->name);
	}
	if (v->names_cut)
		fprintf(stderr, "shoal inspect: more names than a snapshot holds: the first %u\n",
			v->nnames);
}

static int inspect_one(const char *instance, bool all, bool json, bool names, const char *pattern,
		       int wait_ms)
{
	unsigned flags = SHM_ATTACH_RO | (wait_ms ? 0 : SHM_ATTACH_NOWAIT | SHM_ATTACH_UNREADY);
	struct inspect in = {.all = all || names, .json = json, .pattern = pattern};
	struct shm_seg *seg;
	uint64_t bad = 0;
	char err[512];
	int ret;

	ret = shm_seg_attach(instance, flags, wait_ms, &seg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal inspect: %s\n", err);
		return tool_exit_for(ret);
	}
	/* a page the file cannot back (truncated under us, a hole on a full /dev/shm) is an
	 * error, not a SIGBUS: no file in /dev/shm can crash inspect; the printing after it
	 * reads the snapshot only */
	ret = shm_seg_guard(seg, take_all, &in, &bad);
	if (in.v && json && !ret)
		ret = tool_inspect_json(in.v, seg->path, in.mbox, in.nmbox, stdout);
	else if (in.v && names && !ret)
		show_names(in.v);
	else if (in.v && !json && !names)
		show_all(&in, seg->path);
	fflush(stdout);
	if (ret == -EFAULT)
		fprintf(stderr,
			"shoal inspect: instance '%s': byte %llu of its segment cannot be read "
			"(the file was truncated, or has a hole a full /dev/shm cannot back); the "
			"output above is incomplete\n",
			instance, (unsigned long long)bad);
	else if (ret == -EUCLEAN)
		fprintf(stderr,
			"shoal inspect: instance '%s': its region table does not fit its segment "
			"(a table would lie outside it): not read; 'shoal clean --force' removes "
			"it\n",
			instance);
	else if (ret)
		fprintf(stderr,
			"shoal inspect: instance '%s': its header changed while it was read "
			"(%s); run inspect again\n",
			instance, strerror(-ret));
	else if (ret == -ENOMEM)
		fprintf(stderr, "shoal inspect: out of memory\n");
	shm_view_free(in.v);
	free(in.mbox);
	shm_seg_detach(seg);
	return ret == -ENOMEM ? EXIT_SYSTEM : ret ? EXIT_USAGE : EXIT_OK;
}

/* Create a scratch instance, claim a slot in it, inspect it read-only, remove it. */
static int scratch(bool all, bool json, const char *pattern)
{
	struct shm_cfg cfg;
	struct shm_seg *seg;
	char name[SHM_INSTANCE_MAX], err[512];
	int ret, rc;

	snprintf(name, sizeof(name), "scratch-%d", (int)getpid());
	shm_cfg_default(&cfg);
	ret = shm_seg_create(name, &cfg, &seg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal inspect --scratch: %s\n", err);
		return tool_exit_for(ret);
	}
	shm_seg_publish(seg);
	ret = shm_proc_claim(seg, SHM_ROLE_SUPERVISOR, false);
	if (ret) {
		fprintf(stderr, "shoal inspect --scratch: claiming a process slot: %s\n",
			strerror(-ret));
		rc = EXIT_SYSTEM;
		goto out;
	}
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	atomic_store(&shm_hdr(seg)->sup_epoch, seg->epoch);
	atomic_store(&shm_hdr(seg)->state, SHM_INST_RUNNING);
	shm_change_bump(seg);
	/* something in the registry and the groups, so the self-check reads them too */
	if (shm_reg_register(seg, SHM_NS_DEFAULT, "scratch.example", 15, shoal_handle_make(0, 1),
			     NULL) ||
	    shm_grp_join(seg, "scratch.group", 13, shoal_handle_make(0, 1))) {
		fprintf(stderr, "shoal inspect --scratch: registering an example name failed\n");
		rc = EXIT_SYSTEM;
		goto out;
	}
	rc = inspect_one(name, all, json, false, pattern, 0);
out:
	shm_seg_remove(seg);
	shm_seg_detach(seg);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"all", no_argument, NULL, 'a'},
		{"agent", required_argument, NULL, 'A'},
		{"wait", required_argument, NULL, 'w'},
		{"scratch", no_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"names", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance(), *pattern = NULL;
	bool all = false, do_scratch = false, json = false, names = false;
	int c, wait_ms = 0;
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:aA:w:sjnh", opts, NULL)) != -1) {
		switch (c) {
		case 'A':
			if (!*optarg) {
				fprintf(stderr, "shoal inspect: --agent takes a name or a pattern, "
						"not ''\n");
				return EXIT_USAGE;
			}
			pattern = optarg;
			break;
		case 'i':
			instance = optarg;
			break;
		case 'a':
			all = true;
			break;
		case 'w':
			wait_ms = (int)strtol(optarg, &end, 10);
			if (*end || wait_ms < 0) {
				fprintf(stderr,
					"shoal inspect: --wait takes milliseconds, not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 's':
			do_scratch = true;
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			names = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shoal inspect: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (names && (json || do_scratch)) {
		fprintf(stderr,
			"shoal inspect: --names goes alone, not with --json or --scratch\n");
		return EXIT_USAGE;
	}
	return do_scratch ? scratch(all, json, pattern)
			  : inspect_one(instance, all, json, names, pattern, wait_ms);
}
