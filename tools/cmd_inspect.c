/* shoal inspect: read an instance's segment (read-only) and print what it holds. */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/round.h"
#include "shm/shm.h"
#include "supervisor/sup.h"
#include "tools/tools.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal inspect [--instance NAME] [--all] [--wait MS]\n"
		"       shoal inspect --scratch\n"
		"Attaches read-only and prints the header, the liveness of the supervisor, the\n"
		"region table, the process table and the agents. Never writes to the segment.\n"
		"  --all      also list free and exited process slots\n"
		"  --wait MS  wait up to MS for a starting instance to become ready (default 0)\n"
		"  --scratch  create a scratch instance, inspect it, and remove it (a "
		"self-check)\n");
}

/* Print a fixed-size char field that the segment may not have terminated. */
static int field_len(const char *s, size_t cap)
{
	const char *z = memchr(s, 0, cap);

	return z ? (int)(z - s) : (int)cap;
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

static const char *region_names[SHM_R_COUNT] = {
	"processes",   "agents",    "registry", "groups",    "mailboxes",
	"checkpoints", "telemetry", "monitors", "variables", "rounds",
};

/* The supervisor's control inbox (spawn/stop requests) and what it served. */
static void show_control(const struct shm_seg *seg, enum shm_liveness l)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_proc *sp = shm_proc_at(seg, 0);
	uint64_t inbox, op, agent;

	if (h->layout_minor < 2) {
		printf("control        none (layout minor %u)\n", h->layout_minor);
		return;
	}
	inbox = atomic_load(&h->ctl_inbox);
	if (inbox)
		printf("control        inbox agent slot %u; ", shoal_handle_slot(inbox));
	else
		printf("control        not serving; ");
	printf("requests served %llu (refused %llu), dropped %llu\n",
	       (unsigned long long)atomic_load(&h->ctl_served),
	       (unsigned long long)atomic_load(&h->ctl_refused),
	       (unsigned long long)atomic_load(&h->ctl_dropped));
	/* a request in flight means something only once the supervisor is gone */
	op = atomic_load(&sp->ctl_intent[0]);
	if (!op || l == SHM_LIVE_OK || l == SHM_LIVE_UNRESPONSIVE)
		return;
	agent = atomic_load(&sp->ctl_intent[3]);
	printf("note           the supervisor died serving a %s request from inbox slot %u, ",
	       ipc_ctl_op_name((uint32_t)op), shoal_handle_slot(atomic_load(&sp->ctl_intent[1])));
	if (agent)
		printf("agent slot %u (gen %u): unanswered, maybe half done\n",
		       shoal_handle_slot(agent), shoal_handle_gen(agent));
	else
		printf("unanswered; an agent slot it held reads starting or stopping\n");
}

static void show_header(const struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);
	uint64_t now = shm_now_ns(), hb = atomic_load(&h->heartbeat_ns);
	enum shm_liveness l = shm_seg_liveness(seg, 3000000000ull);

	printf("instance       %.*s (%s)\n", field_len(h->instance, sizeof(h->instance)),
	       h->instance, seg->path);
	printf("layout         %u.%u, %llu bytes\n", h->layout_major, h->layout_minor,
	       (unsigned long long)h->seg_size);
	/* a reader cannot write the segment: a vanished supervisor is computed, not stored */
	if (l == SHM_LIVE_STALE)
		printf("state          supervisor-dead (the segment still says %s), %s\n",
		       shm_inst_state_name(atomic_load(&h->state)), shm_liveness_name(l));
	else
		printf("state          %s, %s\n", shm_inst_state_name(atomic_load(&h->state)),
		       shm_liveness_name(l));
	printf("supervisor     pid %u, epoch %u, heartbeat %.3f s ago\n", atomic_load(&h->sup_pid),
	       atomic_load(&h->sup_epoch), now > hb ? (double)(now - hb) / 1e9 : 0.0);
	{
		uint32_t sp = atomic_load(&h->spare);

		if (sp == SHM_SPARE_FORKING)
			printf("warm spare     being forked\n");
		else if (sp) {
			/* what the word says, checked against the process itself */
			char st = shm_pid_state((pid_t)(sp & ~SHM_SPARE_READY));

			printf("warm spare     pid %u, %s%s\n", sp & ~SHM_SPARE_READY,
			       sp & SHM_SPARE_READY ? "ready" : "preparing",
			       st == 0 || st == 'Z' || st == 'X' ? ", but dead (not replaced yet)"
			       : st == 'T' || st == 't'
				       ? ", but stopped (the next restart drops it and forks)"
				       : "");
		} else
			printf("warm spare     none\n");
	}
	show_control(seg, l);
	printf("creator        pid %u, uid %u\n", h->creator_pid, h->owner_uid);
	print_time("created", h->created_ns);
	if (atomic_load(&h->stop_ns))
		print_time("stopped", atomic_load(&h->stop_ns));
	printf("config         procs %u, agents %u, registry %u, groups %u x %u, mailbox %u "
	       "cells, max message %u, nodes %u\n",
	       h->cfg.max_procs, h->cfg.max_agents, h->cfg.reg_capacity, h->cfg.max_groups,
	       h->cfg.group_members, h->cfg.mbox_cells, h->cfg.max_msg, h->cfg.nnodes);
	/* broadcasts with acknowledgements in flight (their records' owner words) */
	printf("rounds         %u of %u records in use\n", shm_round_in_use(seg),
	       h->cfg.max_rounds);
	if (atomic_load(&h->state) == SHM_INST_SUP_DEAD)
		printf("note           the supervisor died; its workers marked the segment as they "
		       "exited; remove with 'shoal clean --instance %.*s'\n",
		       field_len(h->instance, sizeof(h->instance)), h->instance);
	else if (l == SHM_LIVE_STALE)
		printf("note           the supervisor is gone and the instance was not stopped: "
		       "stale; remove with 'shoal clean --instance %.*s'\n",
		       field_len(h->instance, sizeof(h->instance)), h->instance);
}

static void show_regions(const struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);

	printf("\nregions        %-12s %12s %12s\n", "", "offset", "bytes");
	for (unsigned i = 0; i < SHM_R_COUNT; i++)
		printf("               %-12s %12llu %12llu\n", region_names[i],
		       (unsigned long long)h->regions[i].off,
		       (unsigned long long)h->regions[i].size);
}

static void show_procs(const struct shm_seg *seg, bool all)
{
	const struct shm_hdr *h = shm_hdr(seg);
	uint64_t now = shm_now_ns();

	printf("\nprocesses      (wakeup: the path a process parks on; * parked now)\n  %4s %-10s "
	       "%-8s %7s %6s %5s %4s %-14s %-13s %8s %9s  %s\n",
	       "slot", "role", "state", "pid", "epoch", "core", "node", "memory cap", "wakeup",
	       "restarts", "hb-age-ms", "last exit");
	for (uint32_t i = 0; i < h->cfg.max_procs; i++) {
		const struct shm_proc *p = shm_proc_at(seg, i);
		uint32_t st = atomic_load(&p->state);
		uint64_t own = atomic_load(&p->own), hb = atomic_load(&p->heartbeat_ns);
		char last[96] = "-", cap[32] = "-", wake[24];
		uint32_t mech = atomic_load(&p->wake_mech);

		if (!all &&
		    (st == SHM_PROC_FREE || (st == SHM_PROC_EXITED && p->role == SHM_ROLE_CLIENT)))
			continue;
		/* relaxed: status words for a person; a row may mix two exits for an instant */
		uint32_t reason = atomic_load_explicit(&p->last_reason, memory_order_relaxed);
		uint32_t lpid = atomic_load_explicit(&p->last_pid, memory_order_relaxed);
		uint32_t lepoch = atomic_load_explicit(&p->last_epoch, memory_order_relaxed);
		uint64_t mem_cap = atomic_load_explicit(&p->mem_cap, memory_order_relaxed);
		uint32_t cap_mech = atomic_load_explicit(&p->cap_mech, memory_order_relaxed);

		if (reason == SHM_EXIT_VANISHED)
			snprintf(last, sizeof(last), "pid %u epoch %u vanished (status unknown)",
				 lpid, lepoch);
		else if (reason)
			snprintf(last, sizeof(last), "pid %u epoch %u %s (code %d, signal %d)",
				 lpid, lepoch, shm_exit_reason_name(reason),
				 atomic_load_explicit(&p->last_code, memory_order_relaxed),
				 atomic_load_explicit(&p->last_signal, memory_order_relaxed));
		/* which mechanism enforces the cap: 1 setrlimit, 2 cgroup v2 */
		if (mem_cap && (cap_mech == 1 || cap_mech == 2))
			snprintf(cap, sizeof(cap), "%s %lluM", cap_mech == 1 ? "rlimit" : "cgroup",
				 (unsigned long long)(mem_cap >> 20));
		/* the wakeup path this process parks on, and whether it is parked now */
		snprintf(wake, sizeof(wake), "%s%s",
			 mech == IPC_WAKE_FUTEX	    ? "uring-futex"
			 : mech == IPC_WAKE_EVENTFD ? "uring-fifo"
						    : "-",
			 mech && atomic_load(&p->parked) ? "*" : "");
		printf("  %4u %-10s %-8s %7u %6u %5d %4d %-14s %-13s %8u %9.1f  %s\n", i,
		       shm_role_name(p->role), shm_proc_state_name(st), (unsigned)(own >> 32),
		       (unsigned)own, atomic_load_explicit(&p->core, memory_order_relaxed),
		       atomic_load_explicit(&p->node, memory_order_relaxed), cap, wake,
		       atomic_load(&p->restarts), now > hb && hb ? (double)(now - hb) / 1e6 : 0.0,
		       last);
	}
	/* a replacement still at its start-up priority (sup_child_boost(), supervisor/) */
	for (uint32_t i = 0; i < h->cfg.max_procs; i++) {
		const struct shm_proc *p = shm_proc_at(seg, i);
		pid_t pid = (pid_t)(atomic_load(&p->own) >> 32);

		if (p->role == SHM_ROLE_WORKER && atomic_load(&p->state) == SHM_PROC_RUNNING &&
		    pid > 0 && sched_getscheduler(pid) == SCHED_FIFO)
			printf("note           worker slot %u (pid %d) runs at SCHED_FIFO: its "
			       "predecessor's exit is still completing\n",
			       i, (int)pid);
	}
}

/* The workers' telemetry blocks (struct shm_telem), as last flushed. */
static void show_telemetry(const struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);
	uint64_t now = shm_now_ns();
	bool head = false;

	for (uint32_t i = 0; i < h->cfg.max_procs; i++) {
		struct shm_telem t;
		uint64_t busy = 0, half = 0;
		uint32_t p50 = 0;

		if (shm_telem_read(seg, i, &t) || !t.flushes)
			continue;
		if (!head) {
			printf("\ntelemetry      (per worker, as last flushed; batch: messages per "
			       "busy "
			       "round)\n  %4s %7s %12s %10s %10s %8s %9s %9s\n",
			       "slot", "pid", "handled", "rounds", "parks", "flushes", "age-ms",
			       "batch-p50");
			head = true;
		}
		for (uint32_t b = 0; b < SHM_TELEM_BUCKETS; b++)
			busy += t.batch[b];
		for (uint32_t b = 0; b < SHM_TELEM_BUCKETS && busy; b++) {
			half += t.batch[b];
			if (2 * half >= busy) {
				p50 = 1u << b;
				break;
			}
		}
		printf("  %4u %7u %12llu %10llu %10llu %8llu %9.1f %8s%u%s\n", i, t.pid,
		       (unsigned long long)t.handled, (unsigned long long)t.rounds,
		       (unsigned long long)t.parks, (unsigned long long)t.flushes,
		       now > t.flushed_ns ? (double)(now - t.flushed_ns) / 1e6 : 0.0,
		       p50 ? ">=" : "", p50, t.final ? " (final)" : "");
	}
}

/* The exit log: every exit of a process slot's owner, newest first (the last SHM_EXIT_LOG). */
static void show_exits(const struct shm_seg *seg)
{
	struct shm_exit_rec r[SHM_EXIT_LOG];
	uint64_t total;
	uint32_t n = shm_exit_log_read(seg, r, SHM_EXIT_LOG, &total);

	if (shm_hdr(seg)->layout_minor < 5)
		return;
	printf("\nexits          %llu recorded (newest first; the last %u are kept)\n",
	       (unsigned long long)total, SHM_EXIT_LOG);
	for (uint32_t i = 0; i < n; i++) {
		time_t t = (time_t)(r[i].time_ns / 1000000000u);
		struct tm tm;
		char when[40] = "-", status[48];

		if (r[i].time_ns && gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		if (r[i].reason == SHM_EXIT_VANISHED)
			snprintf(status, sizeof(status), "status unknown");
		else
			snprintf(status, sizeof(status), "code %d, signal %d", r[i].code,
				 r[i].signal);
		printf("  %s.%03uZ slot %-3u %-10s pid %-7u epoch %-5u %-10s %s; restarts %u\n",
		       when, (unsigned)(r[i].time_ns / 1000000u % 1000u), r[i].slot,
		       shm_role_name(r[i].role), r[i].pid, r[i].epoch,
		       shm_exit_reason_name(r[i].reason), status, r[i].restarts);
	}
}

/* "name" of the agent a handle names, or "slot N" (its name field; "?" if out of range). */
static void handle_label(const struct shm_seg *seg, shoal_handle_t h, char *out, size_t cap)
{
	uint32_t slot = shoal_handle_slot(h);
	const struct shm_agent *a;
	int n;

	if (slot >= shm_hdr(seg)->cfg.max_agents) {
		snprintf(out, cap, "?");
		return;
	}
	a = shm_agent_at(seg, slot);
	n = field_len(a->name, sizeof(a->name));
	if (n && atomic_load(&a->gen) == shoal_handle_gen(h))
		snprintf(out, cap, "%.*s", n, a->name);
	else
		snprintf(out, cap, "slot %u", slot);
}

/* The monitor table: who gets DOWN/UP about whom. */
static void show_monitors(const struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const struct shm_monitor *mt = shm_region(seg, SHM_R_MONITORS);
	uint32_t live = 0, claimed = 0, shown = 0;

	for (uint32_t i = 0; i < h->cfg.max_monitors; i++) {
		live += atomic_load(&mt[i].watcher) != 0;
		claimed += atomic_load(&mt[i].ctl) != 0;
	}
	printf("\nmonitors       %u of %u entries in use, %u claimed by writers\n", live,
	       h->cfg.max_monitors, claimed);
	for (uint32_t i = 0; i < h->cfg.max_monitors && shown < 32; i++) {
		/* acquire: pairs with the release of watcher that publishes the entry */
		uint64_t w = atomic_load_explicit(&mt[i].watcher, memory_order_acquire);
		char wl[64], tl[64];

		if (!w)
			continue;
		shown++;
		handle_label(seg, w, wl, sizeof(wl));
		handle_label(seg, atomic_load(&mt[i].target), tl, sizeof(tl));
		printf("  %-24s watches %-24s ref %llu\n", wl, tl,
		       (unsigned long long)atomic_load(&mt[i].ref));
	}
	if (shown < live)
		printf("  ... %u more\n", live - shown);
}

static const char *agent_state_name(uint32_t st)
{
	static const char *n[] = {"free", "starting", "running", "down", "stopping", "stopped"};

	return st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

static void show_agents(const struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);
	uint32_t shown = 0, total = 0;

	for (uint32_t i = 0; i < h->cfg.max_agents; i++)
		total += atomic_load(&shm_agent_at(seg, i)->state) != SHM_AGENT_FREE;
	printf("\nagents         %u of %u slots in use\n", total, h->cfg.max_agents);
	printf("  %5s %-5s %-8s %-12s %-24s %6s %6s %10s %11s %8s %8s\n", "slot", "gen", "state",
	       "type", "name", "worker", "queued", "handled", "redelivered", "restarts",
	       "poisoned");
	for (uint32_t i = 0; i < h->cfg.max_agents && shown < 64; i++) {
		const struct shm_agent *a = shm_agent_at(seg, i);
		uint32_t st = atomic_load(&a->state);
		struct ipc_mbox_stats ms;

		if (st == SHM_AGENT_FREE)
			continue;
		shown++;
		ipc_mbox_stats(seg, i, &ms);
		printf("  %5u %-5u %-8s %-12.*s %-24.*s %6d %6u %10llu %11llu %8u %8llu\n", i,
		       atomic_load(&a->gen), agent_state_name(st),
		       field_len(a->type, sizeof(a->type)), a->type,
		       field_len(a->name, sizeof(a->name)), a->name,
		       (int)atomic_load(&a->worker) - 1, ipc_mbox_depth(seg, i),
		       (unsigned long long)atomic_load(&a->handled),
		       (unsigned long long)atomic_load(&a->redelivered), atomic_load(&a->restarts),
		       (unsigned long long)ms.poisoned);
	}
	if (shown < total)
		printf("  ... %u more\n", total - shown);
}

#define REG_SHOW 32 /* names listed by inspect */

struct reg_show {
	uint32_t shown;
	uint32_t max;
	const struct shm_seg *seg;
	uint32_t ns_named; /* entries of the reserved namespaces (namespace names) */
};

/* Print a name from the segment with anything unprintable replaced: it is not trusted. */
static void print_name(const char *name, int width)
{
	char buf[SHOAL_NAME_MAX + 1];
	size_t n = strnlen(name, SHOAL_NAME_MAX);

	for (size_t i = 0; i < n; i++)
		buf[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
	buf[n] = 0;
	printf("%-*s", width, buf);
}

static int show_reg_entry(uint32_t ns, const char *name, shoal_handle_t h,
			  const struct shm_reg_meta *meta, void *arg)
{
	struct reg_show *rs = arg;
	char nsn[SHM_NS_NAME_MAX + 1];

	if (ns == SHM_NS_NAMES || ns == SHM_NS_NUMBERS) {
		rs->ns_named += ns == SHM_NS_NAMES;
		return 0; /* namespace names: counted, shown as the namespaces of entries */
	}
	printf("  %5u  ", ns);
	if (shm_ns_name(rs->seg, ns, nsn, sizeof(nsn)) > 0) {
		char full[SHM_NS_NAME_MAX + 1 + SHOAL_NAME_MAX + 1];

		/* a named namespace: "name:entry"; print_name() cuts at SHOAL_NAME_MAX */
		snprintf(full, sizeof(full), "%s:%s", nsn, name);
		print_name(full, 40);
	} else {
		print_name(name, 40);
	}
	printf(" slot %-7u gen %-6u meta %u bytes\n", shoal_handle_slot(h), shoal_handle_gen(h),
	       meta ? meta->len : 0);
	return ++rs->shown >= rs->max;
}

static int show_group(const char *name, uint32_t n, void *arg)
{
	struct reg_show *rs = arg;

	printf("  ");
	print_name(name, 40);
	printf(" %u members\n", n);
	return ++rs->shown >= rs->max;
}

static void show_registry(const struct shm_seg *seg)
{
	const struct shm_hdr *h = shm_hdr(seg);
	struct reg_show rs = {0, REG_SHOW, seg, 0};
	struct shm_reg_stats st;

	if (shm_reg_stats(seg, &st)) {
		printf("\nregistry       region does not match its configured capacity: not "
		       "read\n");
		return;
	}
	printf("\nregistry       %u live of %u entries (%.1f%% full), %u claimed by writers\n",
	       st.live, st.capacity, st.capacity ? 100.0 * st.live / st.capacity : 0.0, st.claimed);
	printf("               longest probe %u buckets, longest chain scan %u, counter excess "
	       "%u\n",
	       st.longest_probe, st.longest_chain, st.overflow_excess);
	printf("               dead claims resolved %llu, registrations aborted %llu, "
	       "update waits %llu\n",
	       (unsigned long long)st.repaired, (unsigned long long)st.aborted,
	       (unsigned long long)st.waits);
	if (st.lost)
		printf("               %llu claims a live writer found taken from it: a bug, "
		       "please "
		       "report it\n",
		       (unsigned long long)st.lost);
	if (st.live) {
		printf("  %5s  %-40s %s\n", "ns", "name", "handle");
		if (shm_reg_foreach(seg, show_reg_entry, &rs))
			printf("  ... the first %u shown of %u live entries\n", rs.shown, st.live);
		if (rs.ns_named)
			printf("  %u named namespaces (their names are shown before the "
			       "entries')\n",
			       rs.ns_named);
	}
	rs.shown = 0;
	printf("\ngroups         (of %u, %u members each)\n", h->cfg.max_groups,
	       h->cfg.group_members);
	shm_grp_foreach(seg, show_group, &rs);
}

/* Everything inspect prints; reads the segment, so shm_seg_guard() runs it. */
static int show_all(const struct shm_seg *seg, void *arg)
{
	bool all = *(bool *)arg;

	if (atomic_load(&shm_hdr(seg)->ready) != SHM_READY_WORD)
		printf("note           never published: its creator died while initialising it\n");
	show_header(seg);
	show_regions(seg);
	show_procs(seg, all);
	show_telemetry(seg);
	show_exits(seg);
	show_agents(seg);
	show_monitors(seg);
	show_registry(seg);
	return 0;
}

static int inspect_one(const char *instance, bool all, int wait_ms)
{
	unsigned flags = SHM_ATTACH_RO | (wait_ms ? 0 : SHM_ATTACH_NOWAIT | SHM_ATTACH_UNREADY);
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
	 * error, not a SIGBUS: no file in /dev/shm can crash inspect */
	ret = shm_seg_guard(seg, show_all, &all, &bad);
	fflush(stdout);
	if (ret == -EFAULT)
		fprintf(stderr,
			"shoal inspect: instance '%s': byte %llu of its segment cannot be read "
			"(the file was truncated, or has a hole a full /dev/shm cannot back); the "
			"output above is incomplete\n",
			instance, (unsigned long long)bad);
	shm_seg_detach(seg);
	return ret ? EXIT_USAGE : EXIT_OK;
}

/* Create a scratch instance, claim a slot in it, inspect it read-only, remove it. */
static int scratch(bool all)
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
	rc = inspect_one(name, all, 0);
out:
	shm_seg_remove(seg);
	shm_seg_detach(seg);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'}, {"all", no_argument, NULL, 'a'},
		{"wait", required_argument, NULL, 'w'},	    {"scratch", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},	    {NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance();
	bool all = false, do_scratch = false;
	int c, wait_ms = 0;
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:aw:sh", opts, NULL)) != -1) {
		switch (c) {
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
	return do_scratch ? scratch(all) : inspect_one(instance, all, wait_ms);
}
