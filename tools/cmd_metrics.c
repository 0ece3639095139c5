/*
 * shoal metrics [--instance NAME] (--listen ADDR:PORT | --textfile PATH | --once): an
 * instance's snapshot (shm/view.h) in the Prometheus text exposition format 0.0.4, attached
 * read-only. docs/metrics.md lists every metric.
 *
 * --listen serves GET /metrics with libmicrohttpd (a maintained HTTP server: request parsing,
 * keep-alive and malformed input are its job, not hand-written here), one snapshot per
 * scrape, on its one internal polling thread: scrapes run one at a time, so the view (one
 * thread at a time) and shm_seg_guard() (one caller at a time) see a single reader while the
 * main thread only waits for SIGINT/SIGTERM. A stopped instance's mapping stays readable: a
 * scrape then answers 200 with shoal_up 0 and the last numbers; a segment that cannot be read
 * any more (truncated) answers 503.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef SHOAL_HAVE_MHD
#include <microhttpd.h>
#endif

#include "ipc/ipc.h"
#include "shm/shm.h"
#include "shm/view.h"
#include "tools/tools.h"

/* agents with their own mailbox-depth series: the deepest this many (the rest aggregated) */
#define METRICS_TOP_AGENTS 10u
#define METRICS_STALE_NS   3000000000ull /* a heartbeat older than this: not up */

/*
 * Histogram bucket bounds in ns: 1-2.5-5 steps from 10 ns to 10 s (the steps of Prometheus's
 * default buckets, over the range shoal's operations span: a batched send's ~27 ns a message
 * to a restart's milliseconds).
 */
static const uint64_t le_ns[] = {
	10,	   25,	      50,	 100,	     250,	 500,	     1000,
	2500,	   5000,      10000,	 25000,	     50000,	 100000,     250000,
	500000,	   1000000,   2500000,	 5000000,    10000000,	 25000000,   50000000,
	100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};
#define NLE (sizeof(le_ns) / sizeof(le_ns[0]))

/* What a run holds: the attachment, the view, and what is read beside it per snapshot. */
struct metrics {
	const char *instance;
	struct shm_seg *seg;
	struct shm_view *v;
	uint32_t *depth; /* mailbox depth of v->agents[i], max_agents of them */
	uint32_t *qmax;	 /* the high-water mark of each, in the same allocation (after depth) */
	/* summed over the agents' mailboxes: messages handled again after their consumer
	 * died, and messages dropped as poison */
	uint64_t redelivered, poisoned;
	long tick_hz, page;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal metrics [--instance NAME] (--listen ADDR:PORT | --textfile PATH\n"
		"                     [--follow [--interval S]] | --once)\n"
		"The instance's counters, gauges and latency histograms in the Prometheus text\n"
		"format (0.0.4), attached read-only; docs/metrics.md lists them.\n"
		"  --listen ADDR:PORT  serve GET /metrics over HTTP (e.g. 127.0.0.1:9464; port 0\n"
		"                      picks a free one); prints 'listening on ...' once ready;\n"
		"                      runs until SIGINT or SIGTERM\n"
		"  --textfile PATH     write the exposition to PATH atomically (PATH.tmp, fsync,\n"
		"                      rename) for node_exporter's textfile collector\n"
		"  --follow            with --textfile: write it again every --interval S seconds\n"
		"                      (default 15) until SIGINT or SIGTERM\n"
		"  --once              print the exposition to stdout\n");
}

/* The snapshot and the mailbox depths, under shm_seg_guard(). */
static int take(const struct shm_seg *seg, void *arg)
{
	struct metrics *m = arg;
	int r;

	if (!m->v) {
		r = shm_view_create(seg, &m->v);
		if (r)
			return r;
	}
	/* apart from the view: a failed allocation is tried again by the next take */
	if (!m->depth) {
		uint32_t n = m->v->cfg.max_agents ? m->v->cfg.max_agents : 1;

		m->depth = calloc(2 * (size_t)n, sizeof(*m->depth));
		if (!m->depth)
			return -ENOMEM;
		m->qmax = m->depth + n;
	}
	r = shm_view_take(seg, METRICS_STALE_NS, m->v);
	if (r)
		return r;
	m->redelivered = m->poisoned = 0;
	for (uint32_t i = 0; i < m->v->nagents; i++) {
		struct ipc_mbox_stats st;

		ipc_mbox_stats(seg, m->v->agents[i].slot, &st);
		m->depth[i] = st.depth;
		m->qmax[i] = st.queued_max;
		m->redelivered += st.redelivered;
		m->poisoned += st.poisoned;
	}
	return 0;
}

/* A sentence for a failed take, naming the instance. */
static void take_error(const struct metrics *m, int ret, uint64_t bad, char *err, size_t cap)
{
	if (ret == -EFAULT)
		snprintf(err, cap,
			 "instance '%s': byte %llu of its segment cannot be read (the file was "
			 "truncated, or has a hole a full /dev/shm cannot back)",
			 m->instance, (unsigned long long)bad);
	else if (ret == -EUCLEAN)
		snprintf(err, cap,
			 "instance '%s': its region table does not fit its segment (a table "
			 "would lie outside it); 'shoal clean --force' removes it",
			 m->instance);
	else if (ret == -ENOMEM)
		snprintf(err, cap, "out of memory");
	else
		snprintf(err, cap, "instance '%s': its header changed while it was read (%s)",
			 m->instance, strerror(-ret));
}

/* A label value: \, " and newline escaped (names are printable ASCII already). */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*s, f);
	}
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u(FILE *f, const char *name, uint64_t value)
{
	fprintf(f, "%s %" PRIu64 "\n", name, value);
}

static bool is_worker(const struct shm_view_proc *p)
{
	return p->role == SHM_ROLE_WORKER &&
	       (p->state_word != SHM_PROC_FREE || p->restarts || p->last_reason);
}

/* A live process's pid statistics, or false (free, exited, unreadable). */
static bool pid_stat(const struct shm_view_proc *p, struct shm_pid_stat *st)
{
	if (!p->pid || p->state_word == SHM_PROC_FREE || p->state_word == SHM_PROC_EXITED)
		return false;
	return shm_pid_stat_read((pid_t)p->pid, st) == 0;
}

static void write_instance(FILE *f, const struct shm_view *v)
{
	const struct shm_view_hdr *h = &v->hdr;
	bool up = h->liveness == SHM_LIVE_OK && h->state == SHM_INST_RUNNING;
	static const uint32_t states[] = {SHM_INST_STARTING, SHM_INST_RUNNING, SHM_INST_STOPPING,
					  SHM_INST_STOPPED, SHM_INST_SUP_DEAD};

	family(f, "shoal_up", "gauge",
	       "1 if the instance is running and its supervisor's heartbeat is fresh, else 0");
	sample_u(f, "shoal_up", up);
	family(f, "shoal_instance_info", "gauge",
	       "The instance's identity and liveness as labels; always 1");
	fprintf(f, "shoal_instance_info{instance=\"");
	put_label(f, h->instance);
	fprintf(f, "\",liveness=\"%s\",layout=\"%u.%u\"} 1\n", shm_liveness_name(h->liveness),
		h->layout_major, h->layout_minor);
	family(f, "shoal_instance_state", "gauge",
	       "1 for the instance's current state, 0 for the others");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		fprintf(f, "shoal_instance_state{state=\"%s\"} %d\n",
			shm_inst_state_name(states[i]), h->state == states[i]);
	family(f, "shoal_start_time_seconds", "gauge",
	       "When the instance's segment was created, seconds since the Unix epoch");
	fprintf(f, "shoal_start_time_seconds %.3f\n", (double)h->created_ns / 1e9);
	family(f, "shoal_snapshot_complete", "gauge",
	       "1 if every section of this snapshot was read whole, else 0");
	sample_u(f, "shoal_snapshot_complete", v->parts == SHM_VIEW_PART_ALL);
}

static void write_workers(FILE *f, const struct metrics *m)
{
	const struct shm_view *v = m->v;
	static const uint32_t states[] = {SHM_PROC_STARTING, SHM_PROC_RUNNING, SHM_PROC_STOPPING,
					  SHM_PROC_DEAD, SHM_PROC_EXITED};
	struct shm_pid_stat st;

	family(f, "shoal_worker_state", "gauge",
	       "1 for the worker's current process state, 0 for the others");
	for (uint32_t i = 0; i < v->nprocs; i++) {
		const struct shm_view_proc *p = &v->procs[i];

		if (!is_worker(p))
			continue;
		for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++)
			fprintf(f, "shoal_worker_state{worker=\"%u\",state=\"%s\"} %d\n", p->windex,
				shm_proc_state_name(states[s]),
				!p->held && !p->torn && p->state == states[s]);
	}
#define PER_WORKER(name, type, help, fmt, expr)                                                    \
	do {                                                                                       \
		family(f, name, type, help);                                                       \
		for (uint32_t i = 0; i < v->nprocs; i++) {                                         \
			const struct shm_view_proc *p = &v->procs[i];                              \
			if (is_worker(p))                                                          \
				fprintf(f, name "{worker=\"%u\"} " fmt "\n", p->windex, expr);     \
		}                                                                                  \
	} while (0)
	PER_WORKER("shoal_worker_restarts_total", "counter",
		   "Times the supervisor started a replacement for this worker", "%" PRIu32,
		   p->restarts);
	PER_WORKER("shoal_worker_memory_cap_bytes", "gauge",
		   "The worker's memory cap in bytes, 0 if it has none", "%" PRIu64, p->mem_cap);
	PER_WORKER("shoal_worker_parked", "gauge",
		   "1 if the worker is parked waiting for work now, else 0", "%d", p->parked);
	PER_WORKER("shoal_worker_heartbeat_age_seconds", "gauge",
		   "Seconds since the worker's last heartbeat (-1 never)", "%.9g",
		   p->hb_age_ns == SHM_VIEW_AGE_NONE ? -1.0 : (double)p->hb_age_ns / 1e9);
	/* telemetry: flushed by the worker now and then, kept across its restarts */
	PER_WORKER("shoal_worker_messages_handled_total", "counter",
		   "Messages the worker's agents' callbacks were given (as last flushed)",
		   "%" PRIu64, p->telem_ret == 0 ? p->telem.handled : 0);
	PER_WORKER("shoal_worker_busy_rounds_total", "counter",
		   "Loop rounds of the worker that handled something (as last flushed)", "%" PRIu64,
		   p->telem_ret == 0 ? p->telem.rounds : 0);
	PER_WORKER("shoal_worker_parks_total", "counter",
		   "Times the worker waited for work with nothing to do (as last flushed)",
		   "%" PRIu64, p->telem_ret == 0 ? p->telem.parks : 0);
	PER_WORKER("shoal_worker_resident_memory_start_bytes", "gauge",
		   "The worker process's resident bytes at its first telemetry flush: the baseline "
		   "of its growth (a replacement process starts a new one)",
		   "%" PRIu64, p->telem_ret == 0 ? p->telem.rss_start_bytes : 0);
	PER_WORKER("shoal_worker_cgroup_memory_bytes", "gauge",
		   "The worker's [memory] cgroup memory.current in bytes, 0 without a cgroup (as "
		   "last flushed)",
		   "%" PRIu64, p->telem_ret == 0 ? p->telem.cg_memory_bytes : 0);
#undef PER_WORKER
	/* from /proc: a worker's own process, so these restart from 0 with a replacement */
	family(f, "shoal_worker_resident_memory_bytes", "gauge",
	       "The worker process's resident set size in bytes (/proc; absent if not running)");
	for (uint32_t i = 0; i < v->nprocs; i++)
		if (is_worker(&v->procs[i]) && pid_stat(&v->procs[i], &st))
			fprintf(f,
				"shoal_worker_resident_memory_bytes{worker=\"%u\"} %" PRIu64 "\n",
				v->procs[i].windex, st.rss_pages * (uint64_t)m->page);
	family(f, "shoal_worker_cpu_seconds_total", "counter",
	       "CPU time of the worker process by mode (/proc; starts again at 0 with a "
	       "replacement process)");
	for (uint32_t i = 0; i < v->nprocs; i++) {
		if (!is_worker(&v->procs[i]) || !pid_stat(&v->procs[i], &st))
			continue;
		fprintf(f, "shoal_worker_cpu_seconds_total{worker=\"%u\",mode=\"user\"} %.9g\n",
			v->procs[i].windex, (double)st.utime / (double)m->tick_hz);
		fprintf(f, "shoal_worker_cpu_seconds_total{worker=\"%u\",mode=\"system\"} %.9g\n",
			v->procs[i].windex, (double)st.stime / (double)m->tick_hz);
	}
	/* the supervisor: process slot 0's owner (a family's samples follow its TYPE line) */
	if (v->nprocs && v->procs[0].role == SHM_ROLE_SUPERVISOR && pid_stat(&v->procs[0], &st)) {
		family(f, "shoal_supervisor_resident_memory_bytes", "gauge",
		       "The supervisor process's resident set size in bytes (/proc)");
		fprintf(f, "shoal_supervisor_resident_memory_bytes %" PRIu64 "\n",
			st.rss_pages * (uint64_t)m->page);
		family(f, "shoal_supervisor_cpu_seconds_total", "counter",
		       "CPU time of the supervisor process by mode (/proc)");
		fprintf(f, "shoal_supervisor_cpu_seconds_total{mode=\"user\"} %.9g\n",
			(double)st.utime / (double)m->tick_hz);
		fprintf(f, "shoal_supervisor_cpu_seconds_total{mode=\"system\"} %.9g\n",
			(double)st.stime / (double)m->tick_hz);
	}
}

static void write_exits(FILE *f, const struct shm_view *v)
{
	/* label values without spaces (shm_exit_reason_name() says "exit code") */
	static const struct {
		uint32_t reason;
		const char *label;
	} reasons[] = {
		{SHM_EXIT_NORMAL, "normal"}, {SHM_EXIT_CODE, "code"},
		{SHM_EXIT_SIGNAL, "signal"}, {SHM_EXIT_MEMCAP, "memcap"},
		{SHM_EXIT_HANG, "hang"},     {SHM_EXIT_VANISHED, "vanished"},
	};

	if (!v->has_exit_log)
		return;
	family(f, "shoal_exits_total", "counter", "Process exits the supervisor recorded");
	sample_u(f, "shoal_exits_total", v->exits_total);
	family(f, "shoal_exits_recent", "gauge",
	       "Of the exit log's last records (16 at most), how many had each reason");
	for (size_t r = 0; r < sizeof(reasons) / sizeof(reasons[0]); r++) {
		uint32_t n = 0;

		for (uint32_t i = 0; i < v->nexits; i++)
			n += v->exits[i].reason == reasons[r].reason;
		fprintf(f, "shoal_exits_recent{reason=\"%s\"} %u\n", reasons[r].label, n);
	}
}

/* Insert agent row i, of value d in val[], into top[] (the largest *ntop, largest first). */
static void top_insert(uint32_t *top, uint32_t *ntop, const uint32_t *val, uint32_t i)
{
	uint32_t d = val[i], k;

	for (k = *ntop; k > 0 && val[top[k - 1]] < d; k--)
		if (k < METRICS_TOP_AGENTS)
			top[k] = top[k - 1];
	if (k < METRICS_TOP_AGENTS) {
		top[k] = i;
		*ntop += *ntop < METRICS_TOP_AGENTS;
	}
}

/*
 * Agents: counts by state; mailbox depth as max, total, and the deepest few by name; the
 * high-water marks of the few with the highest.
 */
static void write_agents(FILE *f, const struct metrics *m)
{
	const struct shm_view *v = m->v;
	static const uint32_t states[] = {SHM_AGENT_STARTING, SHM_AGENT_RUNNING, SHM_AGENT_DOWN,
					  SHM_AGENT_STOPPING, SHM_AGENT_STOPPED};
	uint32_t top[METRICS_TOP_AGENTS], ntop = 0, max = 0;
	uint32_t qtop[METRICS_TOP_AGENTS], nqtop = 0;
	uint64_t total = 0;

	family(f, "shoal_agents", "gauge", "Agent slots in use, by agent state");
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		uint32_t n = 0;

		for (uint32_t i = 0; i < v->nagents; i++)
			n += v->agents[i].state == states[s];
		fprintf(f, "shoal_agents{state=\"%s\"} %u\n", shm_agent_state_name(states[s]), n);
	}
	family(f, "shoal_agents_capacity", "gauge", "Agent slots in the segment");
	sample_u(f, "shoal_agents_capacity", v->cfg.max_agents);
	for (uint32_t i = 0; i < v->nagents; i++) {
		uint32_t d = m->depth[i];

		total += d;
		max = d > max ? d : max;
		top_insert(top, &ntop, m->depth, i);
		top_insert(qtop, &nqtop, m->qmax, i);
	}
	family(f, "shoal_mailbox_depth_max", "gauge", "The deepest agent mailbox, in messages");
	sample_u(f, "shoal_mailbox_depth_max", max);
	family(f, "shoal_mailbox_depth_total", "gauge",
	       "Messages queued in all agent mailboxes together");
	sample_u(f, "shoal_mailbox_depth_total", total);
	family(f, "shoal_messages_redelivered_total", "counter",
	       "Messages handled again (flagged) after their consumer died, over the agents in "
	       "use");
	fprintf(f, "shoal_messages_redelivered_total %" PRIu64 "\n", m->redelivered);
	family(f, "shoal_messages_poisoned_total", "counter",
	       "Messages dropped as poison (each ended its worker too often), over the agents "
	       "in use");
	fprintf(f, "shoal_messages_poisoned_total %" PRIu64 "\n", m->poisoned);
	family(f, "shoal_agent_mailbox_depth", "gauge",
	       "Messages queued in the mailbox of each of the 10 agents with the deepest ones");
	for (uint32_t k = 0; k < ntop; k++) {
		const struct shm_view_agent *a = &v->agents[top[k]];

		fprintf(f, "shoal_agent_mailbox_depth{agent=\"");
		put_label(f, a->name);
		fprintf(f, "\",slot=\"%u\"} %u\n", a->slot, m->depth[top[k]]);
	}
	family(f, "shoal_agent_mailbox_depth_high_water", "gauge",
	       "The deepest queue the consumer of each of the 10 agents with the highest marks "
	       "saw since the agent was spawned, in 64-byte cells (a message takes one or more)");
	for (uint32_t k = 0; k < nqtop; k++) {
		const struct shm_view_agent *a = &v->agents[qtop[k]];

		fprintf(f, "shoal_agent_mailbox_depth_high_water{agent=\"");
		put_label(f, a->name);
		fprintf(f, "\",slot=\"%u\"} %u\n", a->slot, m->qmax[qtop[k]]);
	}
}

/* One sample per connected node of a per-connection family (SHM_R_DIST). */
static void dist_conn_samples(FILE *f, const struct shm_dist *d, const char *name, int which)
{
	for (uint32_t i = 0; i < d->nconns; i++) {
		const struct shm_dist_conn *c = &d->conns[i];
		uint64_t x = which == 0 ? c->in : which == 1 ? c->out : c->queued;

		/* both ends may connect at once: two connections to one node, one each way */
		fprintf(f, "%s{peer=\"", name);
		put_label(f, c->node);
		fprintf(f, "\",direction=\"%s\"} %" PRIu64 "\n", c->outbound ? "out" : "in", x);
	}
}

/* The node's name and each connection's traffic (SHM_R_DIST), when a gateway wrote them. */
static void write_dist_conns(FILE *f, const struct shm_view *v)
{
	const struct shm_dist *d = &v->dist;

	if (!(v->parts & SHM_VIEW_PART_DIST) || v->dist_ret)
		return;
	family(f, "shoal_dist_node_info", "gauge", "The instance's Erlang node name; always 1");
	fprintf(f, "shoal_dist_node_info{node=\"");
	put_label(f, d->node);
	fprintf(f, "\"} 1\n");
	if (!d->nconns)
		return;
	family(f, "shoal_dist_peer_messages_in_total", "counter",
	       "Messages and signals from each connected node (since it connected)");
	dist_conn_samples(f, d, "shoal_dist_peer_messages_in_total", 0);
	family(f, "shoal_dist_peer_messages_out_total", "counter",
	       "Messages and signals to each connected node (since it connected)");
	dist_conn_samples(f, d, "shoal_dist_peer_messages_out_total", 1);
	family(f, "shoal_dist_peer_queued_bytes", "gauge",
	       "Bytes for each connected node not sent yet (the gateway's and its socket's)");
	dist_conn_samples(f, d, "shoal_dist_peer_queued_bytes", 2);
}

/* The distribution gateway's figures (its telemetry block), when the instance has one. */
static void write_dist(FILE *f, const struct shm_view *v)
{
	const struct shm_telem *t = NULL;

	for (uint32_t i = 0; i < v->nprocs && !t; i++)
		if (v->procs[i].role == SHM_ROLE_GATEWAY && !v->procs[i].telem_ret &&
		    v->procs[i].telem.flushes)
			t = &v->procs[i].telem;
	if (!t)
		return;
	family(f, "shoal_dist_connections", "gauge",
	       "Erlang distribution connections the gateway holds");
	sample_u(f, "shoal_dist_connections", t->dist_conns);
	family(f, "shoal_dist_links", "gauge", "Links from Erlang processes to agents' pids");
	sample_u(f, "shoal_dist_links", t->dist_links);
	family(f, "shoal_dist_calls_in_flight", "gauge",
	       "gen_server calls from the network awaiting an agent's reply");
	sample_u(f, "shoal_dist_calls_in_flight", t->dist_calls);
	family(f, "shoal_dist_stalled_connections", "gauge",
	       "Connections not read while their next message waits for a full mailbox");
	sample_u(f, "shoal_dist_stalled_connections", t->dist_stalled);
	family(f, "shoal_dist_messages_in_total", "counter",
	       "Messages from the network put into agents' mailboxes (this gateway process's)");
	fprintf(f, "shoal_dist_messages_in_total %" PRIu64 "\n", t->dist_in);
	family(f, "shoal_dist_messages_out_total", "counter",
	       "Messages the gateway sent: replies, answers, exit signals (this process's)");
	fprintf(f, "shoal_dist_messages_out_total %" PRIu64 "\n", t->dist_out);
	family(f, "shoal_dist_dropped_total", "counter",
	       "Messages from the network dropped: no such name or pid, malformed, oversized, "
	       "a mailbox full for 5 s, too many calls (this process's)");
	fprintf(f, "shoal_dist_dropped_total %" PRIu64 "\n", t->dist_dropped);
	write_dist_conns(f, v);
}

static void write_tables(FILE *f, const struct shm_view *v)
{
	if (!v->reg_ret) {
		family(f, "shoal_registry_entries", "gauge", "Live registry entries (names)");
		sample_u(f, "shoal_registry_entries", v->reg.live);
		family(f, "shoal_registry_capacity", "gauge", "Registry entries in the segment");
		sample_u(f, "shoal_registry_capacity", v->reg.capacity);
		family(f, "shoal_registry_longest_probe", "gauge",
		       "Buckets a lookup of the worst-placed live registry entry visits");
		sample_u(f, "shoal_registry_longest_probe", v->reg.longest_probe);
		family(f, "shoal_registry_repaired_total", "counter",
		       "Registry claims of dead writers resolved");
		sample_u(f, "shoal_registry_repaired_total", v->reg.repaired);
	}
	family(f, "shoal_groups", "gauge", "Live process groups");
	sample_u(f, "shoal_groups", v->ngroups);
	family(f, "shoal_pool_checkouts_total", "counter", "Checkouts from each agent pool");
	for (uint32_t i = 0; i < v->npools && i < SHM_VIEW_POOLS; i++) {
		fprintf(f, "shoal_pool_checkouts_total{pool=\"");
		put_label(f, v->pools[i].name);
		fprintf(f, "\"} %" PRIu64 "\n", v->pools[i].checkouts);
	}
	family(f, "shoal_pool_checkout_timeouts_total", "counter",
	       "Queued checkouts from each agent pool that timed out");
	for (uint32_t i = 0; i < v->npools && i < SHM_VIEW_POOLS; i++) {
		fprintf(f, "shoal_pool_checkout_timeouts_total{pool=\"");
		put_label(f, v->pools[i].name);
		fprintf(f, "\"} %" PRIu64 "\n", v->pools[i].timeouts);
	}
	family(f, "shoal_pool_members_held", "gauge", "Members of each agent pool checked out now");
	for (uint32_t i = 0; i < v->npools && i < SHM_VIEW_POOLS; i++) {
		fprintf(f, "shoal_pool_members_held{pool=\"");
		put_label(f, v->pools[i].name);
		fprintf(f, "\"} %u\n", v->pools[i].held);
	}
	family(f, "shoal_pool_members", "gauge", "Members of each agent pool now");
	for (uint32_t i = 0; i < v->npools && i < SHM_VIEW_POOLS; i++) {
		fprintf(f, "shoal_pool_members{pool=\"");
		put_label(f, v->pools[i].name);
		fprintf(f, "\"} %u\n", v->pools[i].members);
	}
	if (!v->vars_ret) {
		family(f, "shoal_variables", "gauge", "Coordination variables created");
		sample_u(f, "shoal_variables", v->vars.live);
		family(f, "shoal_variables_capacity", "gauge",
		       "Coordination variables the segment holds");
		sample_u(f, "shoal_variables_capacity", v->vars.capacity);
		family(f, "shoal_variables_locked", "gauge",
		       "Coordination variables locked by a writer now");
		sample_u(f, "shoal_variables_locked", v->vars.locked);
	}
	family(f, "shoal_rounds_in_use", "gauge",
	       "Round records (acknowledged broadcasts, consensus, allocation) held now");
	sample_u(f, "shoal_rounds_in_use", v->rounds_in_use);
	family(f, "shoal_rounds_capacity", "gauge", "Round records in the segment");
	sample_u(f, "shoal_rounds_capacity", v->cfg.max_rounds);
	if (v->events_cap) {
		family(f, "shoal_events_appended_total", "counter",
		       "Events appended to the event ring (shoal events)");
		sample_u(f, "shoal_events_appended_total", v->events_next);
		family(f, "shoal_event_ring_capacity", "gauge", "Events the ring keeps");
		sample_u(f, "shoal_event_ring_capacity", v->events_cap);
	}
	if (v->hdr.has_control) {
		family(f, "shoal_control_requests_total", "counter",
		       "Spawn and stop requests to the supervisor, by outcome");
		/* served counts the refused too */
		fprintf(f, "shoal_control_requests_total{outcome=\"ok\"} %" PRIu64 "\n",
			v->hdr.ctl_served - (v->hdr.ctl_refused <= v->hdr.ctl_served
						     ? v->hdr.ctl_refused
						     : v->hdr.ctl_served));
		fprintf(f, "shoal_control_requests_total{outcome=\"refused\"} %" PRIu64 "\n",
			v->hdr.ctl_refused);
		fprintf(f, "shoal_control_requests_total{outcome=\"dropped\"} %" PRIu64 "\n",
			v->hdr.ctl_dropped);
	}
}

/*
 * The latency histograms as Prometheus histograms. Bucket le=B counts every shoal bucket
 * whose lowest value is at most B: a bucket straddling B (at most 1/32 of its values wide)
 * is counted whole, so a count is never short of the samples at or under B and overstates
 * by samples within 1/32 above it.
 */
static void write_ops(FILE *f, const struct shm_view *v)
{
	if (!v->has_ops)
		return;
	family(f, "shoal_operation_latency_sample_rate", "gauge",
	       "1 in this many operations is timed into shoal_operation_latency_seconds");
	for (uint32_t op = 0; op < SHM_HIST_OPS; op++)
		fprintf(f, "shoal_operation_latency_sample_rate{operation=\"%s\"} %u\n",
			v->ops[op].name, v->ops[op].rate ? v->ops[op].rate : 1);
	family(f, "shoal_operation_latency_seconds", "histogram",
	       "Latency of each operation, every process merged; of the timed sample only "
	       "(see shoal_operation_latency_sample_rate)");
	for (uint32_t op = 0; op < SHM_HIST_OPS; op++) {
		const struct shm_hist_snap *h = &v->ops[op].hist;
		uint64_t cum = 0;
		uint32_t b = 0;

		for (size_t i = 0; i < NLE; i++) {
			for (; b < SHM_HIST_BUCKETS && shm_hist_bucket_low(b) <= le_ns[i]; b++)
				cum += h->bucket[b];
			fprintf(f,
				"shoal_operation_latency_seconds_bucket{operation=\"%s\",le=\"%g\"}"
				" "
				"%" PRIu64 "\n",
				v->ops[op].name, (double)le_ns[i] / 1e9, cum);
		}
		/* the view's count is the sum of its buckets (shm/hist.h), so +Inf equals it */
		fprintf(f,
			"shoal_operation_latency_seconds_bucket{operation=\"%s\",le=\"+Inf\"} "
			"%" PRIu64 "\n",
			v->ops[op].name, h->count);
		fprintf(f, "shoal_operation_latency_seconds_sum{operation=\"%s\"} %.9g\n",
			v->ops[op].name, (double)h->sum_ns / 1e9);
		fprintf(f, "shoal_operation_latency_seconds_count{operation=\"%s\"} %" PRIu64 "\n",
			v->ops[op].name, h->count);
	}
}

/* The whole exposition of m's last snapshot into a malloc'd string (*len bytes). */
static int render(const struct metrics *m, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);

	if (!f)
		return -ENOMEM;
	write_instance(f, m->v);
	write_workers(f, m);
	write_exits(f, m->v);
	write_agents(f, m);
	write_tables(f, m->v);
	write_dist(f, m->v);
	write_ops(f, m->v);
	if (fclose(f)) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * A long-running server or follower whose instance was not up at the last snapshot: if a
 * new instance of that name exists now (another shm object than the one mapped: the old
 * one removed and created again), move to it, so the exporter need not be restarted with
 * the instance. Anything else (none yet, a bad one) keeps the old mapping and its numbers.
 */
static void reattach(struct metrics *m)
{
	struct shm_seg *seg;
	struct stat a, b;
	char err[512];

	if (!m->v || m->v->hdr.liveness == SHM_LIVE_OK)
		return;
	if (shm_seg_attach(m->instance, SHM_ATTACH_RO | SHM_ATTACH_NOWAIT, 0, &seg, err,
			   sizeof(err)))
		return;
	if (m->seg->fd < 0 || seg->fd < 0 || fstat(m->seg->fd, &a) || fstat(seg->fd, &b) ||
	    (a.st_dev == b.st_dev && a.st_ino == b.st_ino)) {
		shm_seg_detach(seg);
		return;
	}
	/* the view's geometry is the old segment's: made again by the next take */
	shm_view_free(m->v);
	m->v = NULL;
	free(m->depth);
	m->depth = NULL;
	m->qmax = NULL;
	shm_seg_detach(m->seg);
	m->seg = seg;
}

/* Take a snapshot and render it: 0, or -errno with a sentence in err. */
static int scrape(struct metrics *m, char **out, size_t *len, char *err, size_t cap)
{
	uint64_t bad = 0;
	int ret;

	reattach(m);
	ret = shm_seg_guard(m->seg, take, m, &bad);

	if (ret) {
		take_error(m, ret, bad, err, cap);
		return ret;
	}
	ret = render(m, out, len);
	if (ret)
		snprintf(err, cap, "out of memory");
	return ret;
}

/* Write buf to path atomically: path.tmp in the same directory, fsync, rename. */
static int write_atomic(const char *path, const char *buf, size_t len, char *err, size_t cap)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd, dfd, ret = 0;
	size_t off = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, cap, "%.400s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, cap, "%.400s: %s", tmp, strerror(-ret));
		return ret;
	}
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_unlink;
		}
		off += (size_t)n;
	}
	if (fsync(fd)) {
		ret = -errno;
		goto out_unlink;
	}
	if (close(fd)) {
		fd = -1;
		ret = -errno;
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp, path)) {
		ret = -errno;
		goto out_unlink;
	}
	/* the rename itself durable: fsync the directory (best effort: some filesystems
	 * refuse it, and the file is complete either way) */
	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
out_unlink:
	snprintf(err, cap, "%.400s: %s", tmp, strerror(-ret));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

#ifdef SHOAL_HAVE_MHD
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	char *body = strdup(text);

	return body ? reply(c, status, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

/* One request (libmicrohttpd's handler, on its one polling thread). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **con_cls)
{
	struct metrics *m = cls;
	char err[512], *body = NULL, msg[600];
	size_t len = 0;

	(void)version;
	(void)upload;
	(void)con_cls;
	/* a body sent with the request is ignored: a scrape has none */
	if (*upload_len) {
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
	if (strcmp(url, "/metrics"))
		return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
	if (scrape(m, &body, &len, err, sizeof(err))) {
		snprintf(msg, sizeof(msg), "shoal metrics: %s\n", err);
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
	}
	return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

/* Parse ADDR:PORT ([v6]:PORT too) into *ss: 0, or -EINVAL. */
static int parse_listen(const char *arg, struct sockaddr_storage *ss)
{
	char host[256];
	const char *colon = strrchr(arg, ':'), *h = arg;
	size_t hl;
	char *end;
	unsigned long port;
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai;

	if (!colon || colon == arg)
		return -EINVAL;
	hl = (size_t)(colon - arg);
	if (arg[0] == '[' && colon[-1] == ']')
		h++, hl -= 2;
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port > 65535)
		return -EINVAL;
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

/* Serve until SIGINT/SIGTERM on ss (parse_listen()'s; listen as the user wrote it). */
static int serve(struct metrics *m, const char *listen, const struct sockaddr_storage *ss)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	char host[INET6_ADDRSTRLEN + 2], port[8];
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	sigset_t stop;
	int sig;

	/* blocked before the daemon's thread exists, so it inherits the mask and the main
	 * thread alone takes them in sigwait() */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				     (ss->ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
			     0, NULL, NULL, handle, m, MHD_OPTION_SOCK_ADDR, ss,
			     MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr,
			"shoal metrics: cannot listen on %s (in use, or not an address of this "
			"machine); choose another ADDR:PORT\n",
			listen);
		return EXIT_SYSTEM;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
	if (!info || getsockname(info->listen_fd, (struct sockaddr *)&bound, &blen) ||
	    getnameinfo((struct sockaddr *)&bound, blen, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		fprintf(stderr, "shoal metrics: cannot read the address it listens on: %s\n",
			strerror(errno));
		MHD_stop_daemon(d);
		return EXIT_SYSTEM;
	}
	printf("shoal metrics: listening on http://%s%s%s:%s/metrics\n",
	       bound.ss_family == AF_INET6 ? "[" : "", host, bound.ss_family == AF_INET6 ? "]" : "",
	       port);
	fflush(stdout);
	while (sigwait(&stop, &sig))
		;
	MHD_stop_daemon(d);
	return EXIT_OK;
}
#endif

/* --textfile: write once, or every interval seconds until SIGINT/SIGTERM. */
static int textfile(struct metrics *m, const char *path, bool follow, unsigned interval)
{
	struct timespec ts = {.tv_sec = interval};
	char err[600];
	sigset_t stop;
	size_t len;
	char *body;
	int ret;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	if (follow)
		sigprocmask(SIG_BLOCK, &stop, NULL);
	for (;;) {
		body = NULL;
		ret = scrape(m, &body, &len, err, sizeof(err));
		if (!ret) {
			ret = write_atomic(path, body, len, err, sizeof(err));
			free(body);
		}
		if (ret) {
			fprintf(stderr, "shoal metrics: %s\n", err);
			return tool_exit_for(ret);
		}
		/* the wait for the next write is the wait for a stop signal: no sleep loop */
		if (!follow || sigtimedwait(&stop, NULL, &ts) >= 0)
			return EXIT_OK;
	}
}

/* See tools.h. */
int cmd_metrics(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"listen", required_argument, NULL, 'l'},
		{"textfile", required_argument, NULL, 't'},
		{"once", no_argument, NULL, 'o'},
		{"follow", no_argument, NULL, 'f'},
		{"interval", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct metrics m = {.instance = tool_default_instance()};
#ifdef SHOAL_HAVE_MHD
	struct sockaddr_storage ss;
#endif
	const char *listen = NULL, *path = NULL;
	bool once = false, follow = false, has_interval = false;
	unsigned long interval = 15;
	char err[600], *end, *body = NULL;
	size_t len;
	int c, ret, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			m.instance = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 't':
			path = optarg;
			break;
		case 'o':
			once = true;
			break;
		case 'f':
			follow = true;
			break;
		case 'n':
			errno = 0;
			interval = strtoul(optarg, &end, 10);
			has_interval = true;
			if (!*optarg || *end || errno || !interval || interval > 86400) {
				fprintf(stderr,
					"shoal metrics: --interval '%s': not a number of seconds "
					"from 1 to 86400\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (has_interval && !follow) {
		fprintf(stderr, "shoal metrics: --interval goes with --textfile PATH --follow\n");
		return EXIT_USAGE;
	}
	if (optind < argc || (!!listen + !!path + once) != 1 || (follow && !path)) {
		fprintf(stderr, "shoal metrics: give one of --listen, --textfile or --once%s\n",
			follow && !path ? " (--follow goes with --textfile)" : "");
		usage(stderr);
		return EXIT_USAGE;
	}
#ifdef SHOAL_HAVE_MHD
	if (listen && parse_listen(listen, &ss)) {
		fprintf(stderr,
			"shoal metrics: --listen '%s': not ADDR:PORT with a numeric address "
			"(e.g. 127.0.0.1:9464 or [::1]:9464)\n",
			listen);
		return EXIT_USAGE;
	}
#else
	if (listen) {
		fprintf(stderr, "shoal metrics: this shoal was built without HTTP (without "
				"libmicrohttpd: -Dmetrics_http): use --textfile or --once\n");
		return EXIT_USAGE;
	}
#endif
	m.tick_hz = sysconf(_SC_CLK_TCK);
	m.page = sysconf(_SC_PAGESIZE);
	ret = shm_seg_attach(m.instance, SHM_ATTACH_RO | SHM_ATTACH_NOWAIT | SHM_ATTACH_UNREADY, 0,
			     &m.seg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal metrics: %s\n", err);
		return tool_exit_for(ret);
	}
	/* a first snapshot before serving: a segment that cannot be read is an error now */
	ret = scrape(&m, &body, &len, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal metrics: %s\n", err);
		rc = ret == -ENOMEM ? EXIT_SYSTEM : EXIT_USAGE;
		goto out;
	}
	if (once) {
		rc = fwrite(body, 1, len, stdout) == len && !fflush(stdout) ? EXIT_OK : EXIT_SYSTEM;
		goto out;
	}
	if (path) {
		rc = textfile(&m, path, follow, (unsigned)interval);
		goto out;
	}
#ifdef SHOAL_HAVE_MHD
	rc = serve(&m, listen, &ss);
#else
	rc = EXIT_USAGE;
#endif
out:
	free(body);
	free(m.depth);
	shm_view_free(m.v);
	shm_seg_detach(m.seg);
	return rc;
}
