/*
 * shoal top: a live full-screen view of an instance (ncurses), attached read-only. Each
 * refresh takes one snapshot (shm/view.h, under the SIGBUS guard) and the workers' CPU time
 * and resident memory from /proc; rates are the change since the last snapshot. It waits
 * for a key with a timeout (the refresh interval), so it redraws on a key at once.
 *
 * Views: workers (w), agents (a), pools (p), operations (o: latency percentiles, every
 * process's histograms merged), events (e: the event ring's last events, then the exit log,
 * both newest first), nodes (n: the Erlang node's connections with their messages per
 * second each way, from the gateway's distribution table); Tab cycles. s cycles the agents' sort
 * (rate, queued, handled, restarts, name); / filters the agents by a name substring (empty: none);
 * q quits. A stopped instance is said so in the header and its last screen kept. ncurses redraws
 * only what changed, so no flicker, and a resize (KEY_RESIZE) lays the screen out again for the new
 * size.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>

#include "ipc/ipc.h"
#include "shm/shm.h"
#include "shm/view.h"
#include "tools/tools.h"

enum view { V_WORKERS, V_AGENTS, V_POOLS, V_OPS, V_EVENTS, V_NODES, V_COUNT };
enum sort { S_RATE, S_QUEUED, S_HANDLED, S_RESTARTS, S_NAME, S_COUNT };

static const char *const view_names[V_COUNT] = {"workers",    "agents", "pools",
						"operations", "events", "nodes"};
static const char *const sort_names[S_COUNT] = {"rate", "queued", "handled", "restarts", "name"};

/* One agent row as shown: the snapshot's, its mailbox depth, its rate. */
struct arow {
	const struct shm_view_agent *a;
	uint32_t queued;
	uint32_t qmax; /* its mailbox's high-water mark, in cells */
	double rate;
};

struct top {
	struct shm_seg *seg;
	struct shm_view *v;
	uint64_t *prev_handled; /* per agent slot, with its gen in prev_gen */
	uint32_t *prev_gen;
	uint64_t *prev_cpu; /* per process slot: utime + stime at the last snapshot (ticks) */
	uint32_t *prev_pid;
	double *cpu_pct;  /* per process slot */
	uint64_t *rss;	  /* per process slot, bytes */
	uint32_t *queued; /* per agent row */
	uint32_t *qmax;	  /* per agent row: high-water marks (in queued's allocation) */
	struct arow *rows;
	uint64_t prev_ns; /* CLOCK_MONOTONIC of the last snapshot */
	/* the distribution table's connections at the last snapshot, and their rates now */
	struct shm_dist_conn prev_conns[SHM_DIST_CONNS];
	uint32_t prev_nconns;
	uint64_t prev_dist_ns;
	double conn_in_rate[SHM_DIST_CONNS], conn_out_rate[SHM_DIST_CONNS];
	uint64_t prev_msgs;
	double msgs_rate;
	enum view view;
	enum sort sort;
	char filter[64];
	int frames_fd; /* --frames-file: a byte per frame drawn (tests), -1 none */
	long tick_hz, page;
};

/* Print one line at row y, cut at the screen's width (a long line must not wrap). */
static void __attribute__((format(printf, 2, 3))) put_line(int y, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	mvaddnstr(y, 0, buf, COLS);
	clrtoeol();
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal top [--instance NAME] [--interval MS]\n"
		"A live view of an instance, attached read-only: workers (CPU, memory,\n"
		"restarts), the busiest agents, pools, each operation's latency, recent\n"
		"events with the exit log, and the Erlang node's connections. Keys: w a p o e n\n"
		"(or Tab) switch views, s cycles the agents' sort, / filters agents by name,\n"
		"q quits.\n"
		"  --interval MS   refresh every MS milliseconds (default 1000, at least 100)\n");
}

/* The snapshot and the mailbox depths, under the SIGBUS guard. */
static int take(const struct shm_seg *seg, void *arg)
{
	struct top *t = arg;
	int r = shm_view_take(seg, 3000000000ull, t->v);

	if (r)
		return r;
	for (uint32_t i = 0; i < t->v->nagents; i++) {
		struct ipc_mbox_stats st;

		ipc_mbox_stats(seg, t->v->agents[i].slot, &st);
		t->queued[i] = st.depth;
		t->qmax[i] = st.queued_max;
	}
	return 0;
}

static int cmp_rows(const void *x, const void *y, void *arg)
{
	const struct arow *a = x, *b = y;
	enum sort s = *(enum sort *)arg;

	switch (s) {
	case S_RATE:
		return a->rate < b->rate ? 1 : a->rate > b->rate ? -1 : 0;
	case S_QUEUED:
		return a->queued < b->queued ? 1 : a->queued > b->queued ? -1 : 0;
	case S_HANDLED:
		return a->a->handled < b->a->handled ? 1 : a->a->handled > b->a->handled ? -1 : 0;
	case S_RESTARTS:
		return a->a->restarts < b->a->restarts	 ? 1
		       : a->a->restarts > b->a->restarts ? -1
							 : 0;
	default:
		return strcmp(a->a->name, b->a->name);
	}
}

/*
 * Each connection's messages per second each way since the gateway's previous write of the
 * distribution table (a connection matched by its node and since when it is up).
 */
static void derive_conns(struct top *t)
{
	const struct shm_dist *d = &t->v->dist;
	double dt;

	if (!(t->v->parts & SHM_VIEW_PART_DIST) || t->v->dist_ret) {
		memset(t->conn_in_rate, 0, sizeof(t->conn_in_rate));
		memset(t->conn_out_rate, 0, sizeof(t->conn_out_rate));
		t->prev_nconns = 0;
		return;
	}
	if (d->flushed_ns == t->prev_dist_ns)
		return; /* not written again yet: the last rates stand */
	memset(t->conn_in_rate, 0, sizeof(t->conn_in_rate));
	memset(t->conn_out_rate, 0, sizeof(t->conn_out_rate));
	dt = t->prev_dist_ns && d->flushed_ns > t->prev_dist_ns
		     ? (double)(d->flushed_ns - t->prev_dist_ns) / 1e9
		     : 0;
	for (uint32_t i = 0; i < d->nconns && dt > 0; i++) {
		const struct shm_dist_conn *c = &d->conns[i];

		for (uint32_t k = 0; k < t->prev_nconns; k++) {
			const struct shm_dist_conn *o = &t->prev_conns[k];

			if (strcmp(o->node, c->node) || o->since_ns != c->since_ns ||
			    c->in < o->in || c->out < o->out)
				continue;
			t->conn_in_rate[i] = (double)(c->in - o->in) / dt;
			t->conn_out_rate[i] = (double)(c->out - o->out) / dt;
			break;
		}
	}
	memcpy(t->prev_conns, d->conns, sizeof(t->prev_conns));
	t->prev_nconns = d->nconns;
	t->prev_dist_ns = d->flushed_ns;
}

/* Rates and per-process figures since the last snapshot. */
static void derive(struct top *t)
{
	const struct shm_view *v = t->v;
	uint64_t now = v->taken_ns, msgs = 0;
	double dt = t->prev_ns && now > t->prev_ns ? (double)(now - t->prev_ns) / 1e9 : 0;

	for (uint32_t i = 0; i < v->nagents; i++) {
		const struct shm_view_agent *a = &v->agents[i];
		uint64_t before = t->prev_gen[a->slot] == a->gen ? t->prev_handled[a->slot] : 0;

		t->rows[i] = (struct arow){a, t->queued[i], t->qmax[i],
					   dt > 0 && a->handled >= before && before
						   ? (double)(a->handled - before) / dt
						   : 0};
		t->prev_handled[a->slot] = a->handled;
		t->prev_gen[a->slot] = a->gen;
		msgs += a->handled;
	}
	t->msgs_rate = dt > 0 && msgs >= t->prev_msgs ? (double)(msgs - t->prev_msgs) / dt : 0;
	t->prev_msgs = msgs;
	for (uint32_t i = 0; i < v->nprocs; i++) {
		const struct shm_view_proc *p = &v->procs[i];
		struct shm_pid_stat st;

		t->cpu_pct[i] = 0;
		t->rss[i] = 0;
		if (!p->pid || p->state_word == SHM_PROC_FREE || p->state_word == SHM_PROC_EXITED ||
		    shm_pid_stat_read((pid_t)p->pid, &st))
			continue;
		if (t->prev_pid[i] == p->pid && dt > 0 && st.utime + st.stime >= t->prev_cpu[i])
			t->cpu_pct[i] = (double)(st.utime + st.stime - t->prev_cpu[i]) /
					(double)t->tick_hz / dt * 100.0;
		t->prev_cpu[i] = st.utime + st.stime;
		t->prev_pid[i] = p->pid;
		t->rss[i] = st.rss_pages * (uint64_t)t->page;
	}
	t->prev_ns = now;
	derive_conns(t);
}

static void fmt_bytes(char *out, size_t cap, uint64_t b)
{
	if (!b)
		snprintf(out, cap, "-");
	else if (b >= (1ull << 30))
		snprintf(out, cap, "%.1fG", (double)b / (1 << 30));
	else
		snprintf(out, cap, "%.0fM", (double)b / (1 << 20));
}

static void draw_header(struct top *t, bool gone)
{
	const struct shm_view *v = t->v;
	const struct shm_view_hdr *h = &v->hdr;
	uint32_t up = 0, workers = 0, running = 0;
	uint64_t restarts = 0, age = 0;

	for (uint32_t i = 0; i < v->nprocs; i++) {
		const struct shm_view_proc *p = &v->procs[i];

		if (p->role != SHM_ROLE_WORKER)
			continue;
		workers++;
		up += p->state_word == SHM_PROC_RUNNING;
		restarts += p->restarts;
	}
	for (uint32_t i = 0; i < v->nagents; i++)
		running += v->agents[i].state == SHM_AGENT_RUNNING;
	if (h->created_ns && v->taken_wall_ns > h->created_ns)
		age = (v->taken_wall_ns - h->created_ns) / 1000000000u;
	attron(A_BOLD);
	put_line(0, "shoal top  %s  %s, %s  up %llu:%02llu:%02llu", h->instance,
		 shm_inst_state_name(h->state), shm_liveness_name(h->liveness),
		 (unsigned long long)(age / 3600), (unsigned long long)(age / 60 % 60),
		 (unsigned long long)(age % 60));
	attroff(A_BOLD);
	clrtoeol();
	put_line(1, "workers %u/%u up, restarts %llu | agents %u (%u running) | %.0f msgs/s", up,
		 workers, (unsigned long long)restarts, v->nagents, running, t->msgs_rate);
	clrtoeol();
	if (gone || h->liveness == SHM_LIVE_STOPPED || h->liveness == SHM_LIVE_STALE) {
		attron(A_REVERSE);
		put_line(2, " the instance is %s: the last screen is kept (q quits) ",
			 h->liveness == SHM_LIVE_STALE ? "gone (its supervisor died)" : "stopped");
		attroff(A_REVERSE);
	} else {
		put_line(2, "%s | w a p o e n: views  s: sort (%s)  /: filter (%s)  q: quit",
			 view_names[t->view], sort_names[t->sort],
			 t->filter[0] ? t->filter : "none");
	}
	clrtoeol();
}

static void draw_workers(struct top *t, int y, int rows)
{
	const struct shm_view *v = t->v;

	attron(A_UNDERLINE);
	put_line(y++, "%4s %-10s %7s %4s %4s %-8s %5s %5s %7s %5s %3s %3s %s", "slot", "role",
		 "pid", "core", "node", "state", "cpu%", "rss", "growth", "cap", "rst", "prk",
		 "last exit");
	attroff(A_UNDERLINE);
	for (uint32_t i = 0; i < v->nprocs && y < rows; i++) {
		const struct shm_view_proc *p = &v->procs[i];
		char rss[16], grow[16] = "-", cap[16], last[48] = "-";

		if (p->state_word == SHM_PROC_FREE && !p->last_reason)
			continue;
		fmt_bytes(rss, sizeof(rss), t->rss[i]);
		fmt_bytes(cap, sizeof(cap), p->mem_cap);
		/* growth since this process's first telemetry flush (a replacement starts anew) */
		if (p->telem_ret == 0 && p->telem.flushes && p->telem.pid == p->pid &&
		    p->telem.rss_start_bytes)
			tool_fmt_mem_delta(grow, sizeof(grow), p->telem.rss_start_bytes,
					   t->rss[i] ? t->rss[i] : p->telem.rss_bytes);
		if (p->last_reason)
			snprintf(last, sizeof(last), "%s (pid %u)",
				 shm_exit_reason_name(p->last_reason), p->last_pid);
		put_line(y++, "%4u %-10s %7u %4d %4d %-8s %5.1f %5s %7s %5s %3u %3s %s", p->slot,
			 shm_role_name(p->role), p->pid, p->core, p->node,
			 p->torn ? "changing" : shm_proc_state_name(p->state_word), t->cpu_pct[i],
			 rss, grow, cap, p->restarts, p->parked ? "yes" : "no", last);
		clrtoeol();
	}
}

static void draw_agents(struct top *t, int y, int rows)
{
	const struct shm_view *v = t->v;
	uint32_t n = 0;

	for (uint32_t i = 0; i < v->nagents; i++)
		if (!t->filter[0] || strstr(t->rows[i].a->name, t->filter))
			t->rows[n++] = t->rows[i];
	qsort_r(t->rows, n, sizeof(t->rows[0]), cmp_rows, &t->sort);
	attron(A_UNDERLINE);
	/* 79 columns: name and type cut to fit beside the high-water mark ("max") */
	put_line(y++, "%4s %-12s %-8s %-8s %6s %6s %5s %9s %7s %4s", "slot", "name", "type",
		 "state", "worker", "queued", "max", "handled", "rate/s", "rst");
	attroff(A_UNDERLINE);
	for (uint32_t i = 0; i < n && y < rows; i++) {
		const struct shm_view_agent *a = t->rows[i].a;

		put_line(y++, "%4u %-12.12s %-8.8s %-8s %6d %6u %5u %9llu %7.0f %4u", a->slot,
			 a->name, a->type, a->torn ? "changing" : shm_agent_state_name(a->state),
			 a->worker, t->rows[i].queued, t->rows[i].qmax,
			 (unsigned long long)a->handled, t->rows[i].rate, a->restarts);
		clrtoeol();
	}
	if (y < rows)
		put_line(y, "%u of %u agents shown%s",
			 n < (uint32_t)(rows - 4) ? n : (uint32_t)(rows - 4), n,
			 t->filter[0] ? " (filtered)" : "");
}

static void draw_pools(struct top *t, int y, int rows)
{
	const struct shm_view *v = t->v;

	attron(A_UNDERLINE);
	put_line(y++, "%-16s %-10s %9s %4s %4s %4s %9s %6s %6s", "pool", "type", "members", "held",
		 "waiting", "more", "checkouts", "waits", "timeouts");
	attroff(A_UNDERLINE);
	for (uint32_t i = 0; i < v->npools && i < SHM_VIEW_POOLS && y < rows; i++) {
		const struct shm_pool_info *p = &v->pools[i];
		char members[24];

		snprintf(members, sizeof(members), "%u/%u+%u", p->members, p->size, p->overflow);
		put_line(y++, "%-16.16s %-10.10s %9s %4u %4u %4u %9llu %6llu %6llu", p->name,
			 p->type, members, p->held, p->waiting, p->want,
			 (unsigned long long)p->checkouts, (unsigned long long)p->waits,
			 (unsigned long long)p->timeouts);
		clrtoeol();
	}
	if (!v->npools && y < rows)
		put_line(y, "no pools");
}

static void draw_ops(struct top *t, int y, int rows)
{
	const struct shm_view *v = t->v;
	char note[160];

	if (!v->has_ops) {
		put_line(y,
			 "no latency histograms in this segment (layout minor %u; they came in 10)",
			 v->hdr.layout_minor);
		return;
	}
	tool_ops_sample_note(v, note, sizeof(note));
	put_line(y++, "%s; the others: each timed", note);
	attron(A_UNDERLINE);
	put_line(y++, "%-14s %10s %8s %8s %8s %8s %8s %8s", "operation", "count", "p50", "p90",
		 "p99", "p99.9", "max", "mean");
	attroff(A_UNDERLINE);
	for (uint32_t op = 0; op < SHM_HIST_OPS && y < rows; op++) {
		const struct shm_view_op *o = &v->ops[op];
		char p50[16] = "-", p90[16] = "-", p99[16] = "-", p999[16] = "-", max[16] = "-",
		     mean[16] = "-";

		if (o->count) {
			tool_fmt_ns(p50, sizeof(p50), o->p50_ns);
			tool_fmt_ns(p90, sizeof(p90), o->p90_ns);
			tool_fmt_ns(p99, sizeof(p99), o->p99_ns);
			tool_fmt_ns(p999, sizeof(p999), o->p999_ns);
			tool_fmt_ns(max, sizeof(max), o->max_ns);
			tool_fmt_ns(mean, sizeof(mean), o->mean_ns);
		}
		put_line(y++, "%-14s %10llu %8s %8s %8s %8s %8s %8s", o->name,
			 (unsigned long long)o->count, p50, p90, p99, p999, max, mean);
	}
}

/* The Erlang node and its connections (the gateway's distribution table). */
static void draw_nodes(struct top *t, int y, int rows)
{
	const struct shm_view *v = t->v;
	const struct shm_dist *d = &v->dist;

	if (!(v->parts & SHM_VIEW_PART_DIST) || v->dist_ret) {
		put_line(y, "%s",
			 v->dist_ret == -ENODATA || v->dist_ret == -ENOENT
				 ? "not a node: the instance runs no distribution gateway ([dist], "
				   "docs/dist.md)"
				 : "the distribution table is being written or unreadable");
		return;
	}
	put_line(y++, "node %s, gateway pid %u%s: %u connection%s", d->node, d->pid,
		 d->final ? " (stopped)" : "", d->nconns, d->nconns == 1 ? "" : "s");
	attron(A_UNDERLINE);
	put_line(y++, "%-30s %-4s %8s %9s %9s %8s %s", "peer", "dir", "up", "in/s", "out/s",
		 "queued", "");
	attroff(A_UNDERLINE);
	for (uint32_t i = 0; i < d->nconns && y < rows; i++) {
		const struct shm_dist_conn *c = &d->conns[i];
		uint64_t up = d->flushed_ns > c->since_ns
				      ? (d->flushed_ns - c->since_ns) / 1000000000u
				      : 0;
		char q[16];

		snprintf(q, sizeof(q), "%llu", (unsigned long long)c->queued);
		put_line(y++, "%-30.30s %-4s %2llu:%02llu:%02llu %9.0f %9.0f %8s %s", c->node,
			 c->outbound ? "out" : "in", (unsigned long long)(up / 3600),
			 (unsigned long long)(up / 60 % 60), (unsigned long long)(up % 60),
			 t->conn_in_rate[i], t->conn_out_rate[i], q, c->stalled ? "stalled" : "");
		clrtoeol();
	}
}

/* One event in a line that fits 80 columns: time of day (UTC), number, kind, who, text. */
static void put_event(int y, const struct shm_event *e)
{
	time_t s = (time_t)(e->time_ns / 1000000000u);
	char when[16] = "-", who[64] = "";
	struct tm tm;
	size_t n = 0;

	if (e->time_ns && gmtime_r(&s, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (e->worker >= 0)
		n += (size_t)snprintf(who, sizeof(who), "w%d ", e->worker);
	if (e->pid && n < sizeof(who))
		n += (size_t)snprintf(who + n, sizeof(who) - n, "pid %u ", e->pid);
	if (e->agent && n < sizeof(who))
		snprintf(who + n, sizeof(who) - n, "'%s' ", e->name); /* printable: the view's */
	put_line(y, "%s.%03u %6llu %-14s %s%s", when,
		 (unsigned)(e->time_ns % 1000000000u / 1000000u),
		 (unsigned long long)atomic_load_explicit(&e->seq, memory_order_relaxed),
		 shm_event_kind_name(e->kind), who, e->text);
}

/* The event ring's last events, newest first, then the exit log in the rows left. */
static void draw_events(struct top *t, int y, int rows)
{
	const struct shm_view *v = t->v;
	/* room for the exit log's head and a few exits when there are any */
	int keep = v->nexits ? 2 + (int)(v->nexits < 4 ? v->nexits : 4) + 1 : 0;

	if (!v->events_cap) {
		put_line(y++,
			 "events: none kept (the instance was made with [segment] events = 0)");
	} else {
		put_line(y++, "events: %llu appended, the last %u kept, newest first%s",
			 (unsigned long long)v->events_next, v->events_cap,
			 v->events_skipped ? " (some incomplete: left out)" : "");
		attron(A_UNDERLINE);
		put_line(y++, "%-12s %6s %-14s %s", "time (UTC)", "seq", "kind", "who: text");
		attroff(A_UNDERLINE);
		for (uint32_t i = v->nevents; i > 0 && y < rows - keep; i--)
			put_event(y++, &v->events[i - 1]);
		y++;
	}
	if (y >= rows)
		return;
	put_line(y++, "exits: %llu recorded, newest first", (unsigned long long)v->exits_total);
	attron(A_UNDERLINE);
	put_line(y++, "%-20s %4s %-10s %7s %-10s %6s %6s %7s", "time (UTC)", "slot", "role", "pid",
		 "reason", "code", "signal", "restart");
	attroff(A_UNDERLINE);
	for (uint32_t i = 0; i < v->nexits && y < rows; i++) {
		const struct shm_exit_rec *r = &v->exits[i];
		time_t s = (time_t)(r->time_ns / 1000000000u);
		struct tm tm;
		char when[32] = "-";

		if (r->time_ns && gmtime_r(&s, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		put_line(y++, "%-20s %4u %-10s %7u %-10s %6d %6d %7u", when, r->slot,
			 shm_role_name(r->role), r->pid, shm_exit_reason_name(r->reason), r->code,
			 r->signal, r->restarts);
		clrtoeol();
	}
}

static void draw(struct top *t, bool gone)
{
	int rows, cols;

	getmaxyx(stdscr, rows, cols);
	(void)cols;
	erase();
	draw_header(t, gone);
	switch (t->view) {
	case V_WORKERS:
		draw_workers(t, 4, rows);
		break;
	case V_AGENTS:
		draw_agents(t, 4, rows);
		break;
	case V_POOLS:
		draw_pools(t, 4, rows);
		break;
	case V_OPS:
		draw_ops(t, 4, rows);
		break;
	case V_NODES:
		draw_nodes(t, 4, rows);
		break;
	default:
		draw_events(t, 4, rows);
	}
	refresh();
	if (t->frames_fd >= 0 && write(t->frames_fd, "f", 1) < 0) {
		/* the reader went away: frames are for tests only */
	}
}

/* Read a filter at the bottom line (echoed, blocking): empty clears it. */
static void read_filter(struct top *t)
{
	int rows, cols;
	char buf[sizeof(t->filter)] = "";

	getmaxyx(stdscr, rows, cols);
	(void)cols;
	put_line(rows - 1, "filter agents by name: ");
	clrtoeol();
	echo();
	curs_set(1);
	timeout(-1);
	getnstr(buf, (int)sizeof(buf) - 1);
	noecho();
	curs_set(0);
	snprintf(t->filter, sizeof(t->filter), "%s", buf);
}

static int alloc_arrays(struct top *t)
{
	const struct shm_cfg *c = &t->v->cfg;

	t->prev_handled = calloc(c->max_agents, sizeof(*t->prev_handled));
	t->prev_gen = calloc(c->max_agents, sizeof(*t->prev_gen));
	t->queued = calloc(2 * (size_t)c->max_agents, sizeof(*t->queued));
	if (t->queued)
		t->qmax = t->queued + c->max_agents;
	t->rows = calloc(c->max_agents, sizeof(*t->rows));
	t->prev_cpu = calloc(c->max_procs, sizeof(*t->prev_cpu));
	t->prev_pid = calloc(c->max_procs, sizeof(*t->prev_pid));
	t->cpu_pct = calloc(c->max_procs, sizeof(*t->cpu_pct));
	t->rss = calloc(c->max_procs, sizeof(*t->rss));
	return t->prev_handled && t->prev_gen && t->queued && t->rows && t->prev_cpu &&
			       t->prev_pid && t->cpu_pct && t->rss
		       ? 0
		       : -ENOMEM;
}

static void free_arrays(struct top *t)
{
	free(t->prev_handled);
	free(t->prev_gen);
	free(t->queued);
	free(t->rows);
	free(t->prev_cpu);
	free(t->prev_pid);
	free(t->cpu_pct);
	free(t->rss);
}

/* The screen loop. Returns a CLI exit code. */
static int run(struct top *t, long interval_ms)
{
	bool gone = false;
	int r;

	initscr();
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	for (;;) {
		int c;

		if (!gone) {
			r = shm_seg_guard(t->seg, take, t, NULL);
			if (r) {
				/* a page gone (the file truncated) or a table changed: keep the
				 * last screen, say so */
				gone = true;
			} else {
				derive(t);
				gone = t->v->hdr.liveness == SHM_LIVE_STOPPED ||
				       t->v->hdr.liveness == SHM_LIVE_STALE;
			}
		}
		draw(t, gone);
		timeout((int)interval_ms);
		c = getch();
		if (c == 'q' || c == 'Q')
			break;
		switch (c) {
		case 'w':
			t->view = V_WORKERS;
			break;
		case 'a':
			t->view = V_AGENTS;
			break;
		case 'p':
			t->view = V_POOLS;
			break;
		case 'o':
			t->view = V_OPS;
			break;
		case 'e':
			t->view = V_EVENTS;
			break;
		case 'n':
			t->view = V_NODES;
			break;
		case '\t':
			t->view = (t->view + 1) % V_COUNT;
			break;
		case 's':
			t->sort = (t->sort + 1) % S_COUNT;
			break;
		case '/':
			read_filter(t);
			break;
		default: /* KEY_RESIZE, ERR (the interval), others: redraw */
			break;
		}
	}
	endwin();
	return EXIT_OK;
}

static int create_view(const struct shm_seg *seg, void *arg)
{
	return shm_view_create(seg, arg);
}

int cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"interval", required_argument, NULL, 'n'},
		{"frames-file", required_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance(), *frames = NULL;
	struct top t = {.frames_fd = -1};
	long interval = 1000;
	char err[512], *end;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
		case 'n':
			interval = strtol(optarg, &end, 10);
			if (*end || interval < 100 || interval > 3600000) {
				fprintf(stderr,
					"shoal top: --interval takes milliseconds, 100..3600000, "
					"not "
					"'%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'F':
			frames = optarg; /* tests: a FIFO that gets a byte per frame */
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
		fprintf(stderr, "shoal top: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
		fprintf(stderr, "shoal top: needs a terminal (for a snapshot in a script: shoal "
				"inspect --json)\n");
		return EXIT_USAGE;
	}
	ret = shm_seg_attach(instance, SHM_ATTACH_RO, 0, &t.seg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal top: %s\n", err);
		return tool_exit_for(ret);
	}
	ret = shm_seg_guard(t.seg, create_view, &t.v, NULL);
	if (!ret)
		ret = alloc_arrays(&t);
	if (ret) {
		fprintf(stderr, "shoal top: instance '%s': %s\n", instance,
			ret == -ENOMEM ? "out of memory" : "its segment cannot be read");
		ret = ret == -ENOMEM ? EXIT_SYSTEM : EXIT_USAGE;
		goto out;
	}
	if (frames) {
		t.frames_fd = open(frames, O_WRONLY | O_CLOEXEC);
		if (t.frames_fd < 0) {
			fprintf(stderr, "shoal top: --frames-file %s: %s\n", frames,
				strerror(errno));
			ret = EXIT_USAGE;
			goto out;
		}
	}
	t.tick_hz = sysconf(_SC_CLK_TCK);
	t.page = sysconf(_SC_PAGESIZE);
	ret = run(&t, interval);
out:
	if (t.frames_fd >= 0)
		close(t.frames_fd);
	free_arrays(&t);
	shm_view_free(t.v);
	shm_seg_detach(t.seg);
	return ret;
}
