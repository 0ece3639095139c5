/*
 * The distribution gateway: shoal as a node of an Erlang cluster, through erl_interface
 * (libei). One process (role gateway), forked and restarted by the supervisor
 * (supervisor/sup_gateway.c), with two threads:
 *   - the main thread owns every libei connection: it accepts, answers distribution ticks,
 *     decodes each message sent to a registered name or to an agent's pid (agent_pid()) and
 *     puts it in that agent's mailbox (a cast, or a call with a reference), never waiting
 *     on a mailbox: a full one stalls only the connection the message came on
 *     (GW_STALL_MS), the others go on; it keeps the links Erlang processes make to agents'
 *     pids, each with a shoal monitor of the agent, and closes connections silent past
 *     net_ticktime;
 *   - the reply thread waits in the gateway's shoal inbox for the agents' replies and sends
 *     each to its caller itself, so a slow agent never holds the network side and a reply
 *     costs no extra wakeup of the main thread; the monitors' DOWN notices come there too,
 *     and it sends the linked processes their exit signals. The two share the
 *     connections, the calls in flight and the links under one mutex (gw.mu), which also
 *     keeps their writes to a socket (replies, exit signals; libei's tick answers) whole.
 * The main thread's poll wakes at least every GW_POLL_MS, far inside the net tick time (60 s),
 * and no libei call it makes waits longer than GW_IO_MS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <ei.h>

#include "dist/dist.h"
#include "dist/dist_int.h"
#include "ipc/ipc.h"
#include "shm/shm.h"
#include "shm/var.h"
#include "shoal/client.h"
#include "shoal/term.h"
#include "workers/wrk.h"
#include "workers/wrk_int.h"

#define GW_MAX_CONNS   64u   /* distribution connections at once */
#define GW_MAX_PENDING 1024u /* calls in flight to agents; more are dropped (logged) */
#define GW_POLL_MS     1000  /* the longest the main loop sleeps */
#define GW_IO_MS       1000u /* the longest one libei read, write or handshake may take */
#define GW_EPMD_MS     2000  /* epmd -daemon: how long to wait for it to take registrations */
/*
 * A call's reply is awaited this long, then its entry is forgotten (a late reply dropped):
 * an agent that never answers must not fill the table. Ten minutes: far past any timeout a
 * caller gives gen_server:call but infinity.
 */
#define GW_CALL_TTL_MS 600000u
/*
 * A message for a full mailbox stalls its connection (nothing more is read from it, so the
 * sending node buffers and slows down, as for any slow peer) and is tried again every
 * GW_STALL_RETRY_MS, for up to GW_STALL_MS; then it is dropped (said) and reading resumes.
 * The stall stays well inside the net tick time: the peer's ticks wait unread meanwhile.
 */
#define GW_STALL_MS	  5000u
#define GW_STALL_RETRY_MS 1
#define GW_MAX_LINKS	  4096u /* links from Erlang processes to agents at once */
/* The gateway's own registered name: {whereis, Name} gen calls (dist/shoal.erl) */
#define GW_SERVICE "shoal_gateway"
/* Remote handles' proxies hosted at once (workers/remote.c); more are ended at once (said) */
#define GW_MAX_PROXIES 1024u
/* Messages forwarded from one proxy's mailbox per round (the others get their turn) */
#define GW_PROXY_BATCH 32u
/* Messages taken from one connection's buffer per poll round (on_conn()): the others' turn */
#define GW_READ_BATCH 256u
/* A connection's read buffer: at least this; a message longer than max_message and this
 * much room for its control part is read past, not buffered (said) */
#define GW_RX_MIN   65536u
#define GW_CTL_ROOM 65536u
/* A connection's forwarded frames are written at a round's end, or once this many bytes */
#define GW_OB_FLUSH (256u * 1024u)
/*
 * The pid number of the gateway's reply pid: the From of the gen_server calls it makes for
 * shoal callers, so that {Tag, Reply} comes back to it (on_outreply()). Agents' pids number
 * their slots, below max_agents.
 */
#define GW_REPLY_NUM 0x7ffffffeu
/* A node a connection could not be made to is not tried again for this long (its handles end
 * at once): each attempt holds the reply thread for up to GW_IO_MS */
#define GW_RETRY_MS 1000u
/* A call made for a shoal caller is answered ETIMEDOUT after this long without a reply */
#define GW_OUTCALL_TTL_MS 60000u
/* A remote member's vote or demand (forward()) is awaited this long: a process that never
 * answers must not hold a call slot past any round's deadline */
#define GW_ROUND_CALL_TTL_MS 10000u

/* One distribution connection. */
struct gw_conn {
	int fd;	       /* -1: unused */
	bool outbound; /* we connected (conn_to()); else the peer did */
	/* frames the reply thread forwarded this round, written at its end (ob_flush()) */
	char *ob;
	size_t olen, ocap;
	char node[MAXNODELEN + 1];
	uint64_t rx_ns; /* when it last sent something (a tick or a message) */
	/* for the tools (SHM_R_DIST): when it connected, its messages and signals each way */
	uint64_t since_ns, nin, nout;
	/* what was read from it and not yet taken (on_conn()): rx[roff, rlen) of rcap bytes;
	 * skip: bytes of an oversized message still to be read past */
	char *rx;
	size_t roff, rlen, rcap;
	uint64_t skip;
	/* a message waiting for room in a full mailbox (see GW_STALL_MS); data NULL: none */
	struct gw_stall {
		char *data;
		uint32_t len;
		uint32_t flags; /* IPC_F_* */
		uint64_t ref;	/* a call's reference, 0 for a cast */
		shoal_handle_t to;
		uint64_t since_ns;
		char name[SHOAL_NAME_MAX + 1];
	} stall;
};

/* One call in flight: where its reply goes. */
struct gw_call {
	uint64_t ref;		       /* the shoal call's reference, 0: unused */
	uint64_t sent_ns;	       /* when it was sent (monotonic) */
	char name[SHOAL_NAME_MAX + 1]; /* the agent called, for messages */
	erlang_pid from;
	char *tag; /* the gen_server call's Tag, as encoded (no version byte) */
	int taglen;
};

/*
 * A link or a monitor from an Erlang process to an agent's incarnation (its pid:
 * agent_pid()), kept by the gateway with a shoal monitor of the agent: the monitor's first
 * DOWN ends the incarnation, and the remote process gets an exit signal (a link) or a
 * MONITOR_P_EXIT (a monitor: its 'DOWN' message) with the reason.
 */
struct gw_link {
	shoal_handle_t agent;	       /* 0: unused */
	uint32_t inc;		       /* the incarnation linked: its restarts count, low 16 bits */
	uint64_t mon;		       /* the gateway's monitor of the agent */
	erlang_pid remote;	       /* the linked or monitoring Erlang process */
	bool monitor;		       /* a monitor (erlang:monitor/2), not a link */
	erlang_ref ref;		       /* a monitor's reference */
	char name[SHOAL_NAME_MAX + 1]; /* a monitor by name: the name; "": by pid */
};

/* A remote handle's proxy the gateway hosts: the process `name` on node `node`. */
struct gw_proxy {
	shoal_handle_t h; /* 0: unused */
	uint32_t slot;
	char name[MAXATOMLEN_UTF8];
	char node[MAXNODELEN + 1];
	bool asked;	/* whether it was taken up on its node (proxy_resolve()) */
	bool monitored; /* and its name monitored there */
};

/* A gen_server call made for a shoal caller through a proxy: where its reply goes. */
struct gw_outcall {
	uint64_t id;	       /* its Tag's number, 0: unused */
	uint64_t ref;	       /* the shoal call's reference; a vote's: its round's */
	bool vote;	       /* a proposal's vote asked of a remote member (forward()) */
	bool demand;	       /* an allocation's demand asked of one */
	shoal_handle_t caller; /* who called */
	shoal_handle_t proxy;  /* the proxy called: the reply's from */
	uint64_t sent_ns;
	char node[MAXNODELEN + 1];
};

/* One reply from an agent, as the reply thread took it from the inbox. */
struct gw_reply {
	uint64_t ref;
	uint32_t err; /* the agent's errno (SHOAL_MSG_ERROR), 0: a reply */
	uint32_t len; /* payload bytes */
	bool term;    /* flagged SHOAL_MSG_TERM: the payload is a term (shoal_reply_as_term()) */
};

struct gw {
	ei_cnode ec;
	const struct dist_conf *dc;
	int lfd;   /* listening socket */
	int pubfd; /* our registration with epmd: held open while we live */
	struct shoal_client *cl;
	struct shm_seg *seg;
	shoal_handle_t inbox;
	uint32_t max_msg;
	int pipe_rd, pipe_wr; /* the reply thread closes pipe_wr as it ends: the instance stopped */
	pthread_mutex_t mu;   /* conns, calls, links, tl: the main thread and the reply thread */
	_Atomic uint32_t stop; /* the main thread has ended: the reply thread ends too */
	struct gw_conn conns[GW_MAX_CONNS];
	struct gw_call calls[GW_MAX_PENDING];
	uint32_t ncalls;
	char *buf;	  /* max_msg bytes: a payload on its way */
	uint64_t dropped; /* messages to names that do not exist */
	uint64_t last_drop_ns;
	uint32_t call_ttl_ms;		    /* GW_CALL_TTL_MS, or the test hook's */
	uint64_t last_sweep_ns;		    /* calls_expire() last ran */
	struct gw_link links[GW_MAX_LINKS]; /* under mu */
	uint32_t nlinks;
	uint64_t dead_sends;  /* messages to pids of incarnations that are over */
	uint64_t last_bad_ns; /* a control message that did not fit was last said */
	uint64_t last_dead_ns;
	/* the figures tools read (its dist_* words), under mu; flushed every GW_POLL_MS */
	struct shm_telem tl;
	uint64_t last_flush_ns;
	/* remote handles (workers/remote.c): the proxies it hosts and the calls made for them,
	 * under mu; the reply thread forwards the proxies' mailboxes */
	struct gw_proxy proxies[GW_MAX_PROXIES];
	uint32_t nproxies;
	struct gw_outcall outcalls[GW_MAX_PENDING];
	uint32_t noutcalls;
	uint64_t outcall_seq;
	uint32_t outcall_seed; /* in each call's Tag: a reply to an earlier gateway's is not ours */
	char failed_node[MAXNODELEN + 1]; /* the node a connection last failed to, and when: */
	uint64_t failed_ns;		  /* not tried again for GW_RETRY_MS */
	uint64_t proxies_gen;		  /* the agents_gen the reply thread last scanned at */
	int wake_rd, wake_wr; /* the reply thread made a connection: the main thread polls it */
	ei_x_buff ctl;	      /* a frame's control term, built by the reply thread */
	struct shm_dist dist; /* what dist_flush() publishes */
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line on stderr, prefixed "shoal: gateway: ". */
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "shoal: gateway: %s\n", line);
}

/* See dist.h. */
bool dist_is_available(void)
{
	return true;
}

/* Run `epmd -daemon` and wait for it to return (it forks its daemon and exits). */
static int start_epmd(void)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("epmd", "epmd", "-daemon", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return WIFEXITED(st) && WEXITSTATUS(st) == 127 ? -ENOENT : -EIO;
	return 0;
}

/*
 * Register with epmd, starting it if none runs (as erl does). epmd -daemon returns before
 * its daemon listens: registration is tried again for up to GW_EPMD_MS.
 */
static int publish(struct gw *g, int port)
{
	struct timespec pause = {.tv_nsec = 20 * 1000000L};
	int r, tries;

	g->pubfd = ei_publish_tmo(&g->ec, port, GW_IO_MS);
	if (g->pubfd >= 0)
		return 0;
	say("no epmd answers on this host: starting one (epmd -daemon)");
	r = start_epmd();
	if (r) {
		say("cannot start epmd: %s (install erlang-base, or start epmd yourself)",
		    r == -ENOENT ? "epmd is not on PATH" : strerror(-r));
		return r;
	}
	for (tries = 0; tries < GW_EPMD_MS / 20; tries++) {
		g->pubfd = ei_publish_tmo(&g->ec, port, GW_IO_MS);
		if (g->pubfd >= 0)
			return 0;
		nanosleep(&pause, NULL);
	}
	say("epmd refused to register node %s (is the name taken by a running node?)", g->dc->node);
	return -EADDRINUSE;
}

/* Listen and register as dc->node. 0, or -errno (said). */
static int node_setup(struct gw *g, const char *cookie)
{
	const struct dist_conf *dc = g->dc;
	char alive[MAXATOMLEN + 1], host[MAXNODELEN + 1];
	const char *at = strchr(dc->node, '@');
	struct in_addr addr;
	int port = (int)dc->port;

	if (!at || (size_t)(at - dc->node) >= sizeof(alive) || strlen(at + 1) >= sizeof(host)) {
		say("node name '%s' is not alive@host", dc->node);
		return -EINVAL;
	}
	snprintf(alive, sizeof(alive), "%.*s", (int)(at - dc->node), dc->node);
	snprintf(host, sizeof(host), "%s", at + 1);
	if (inet_pton(AF_INET, dc->listen, &addr) != 1) {
		say("listen address '%s' is not IPv4", dc->listen);
		return -EINVAL;
	}
	/* our own sockets (sock.c): the handshake offers monitors by name too, unless told not
	 * to ([dist] monitors = no) */
	dist_sock_offer_monitors = dc->monitors;
	if (ei_connect_xinit_ussi(&g->ec, host, alive, dc->node, (Erl_IpAddr)&addr, cookie, 0,
				  &dist_sock_callbacks, sizeof(dist_sock_callbacks), NULL) < 0) {
		say("ei_connect_xinit for %s failed (erl_errno %d)", dc->node, erl_errno);
		return -EINVAL;
	}
	g->lfd = ei_xlisten(&g->ec, (Erl_IpAddr)&addr, &port, 16);
	if (g->lfd < 0) {
		say("cannot listen on %s:%u: %s", dc->listen, dc->port, strerror(erl_errno));
		return -EADDRINUSE;
	}
	if (publish(g, port))
		return -EADDRINUSE;
	say("node %s listening on %s:%d (pid %d)", dc->node, dc->listen, port, (int)getpid());
	return 0;
}

/* --- the reply thread --- */

static void on_reply(struct gw *g, ei_x_buff *out, const struct gw_reply *h, const char *data);
static void on_down(struct gw *g, const struct shoal_down *d);
static uint32_t proxies_round(struct gw *g, ei_x_buff *out);
static bool out_has_work(void *arg);

/*
 * Take one message from the inbox, if any: an agent's reply to an Erlang caller (on_reply()),
 * or a DOWN/UP notice of a link's monitor (on_down()); others are dropped. 1 if one was
 * taken, 0 if the inbox is empty, or -errno (the instance stopped).
 */
static int inbox_one(struct gw *g, ei_x_buff *out, char *buf)
{
	struct shoal_msg m;
	struct gw_reply h;
	int r = shoal_client_recv(g->cl, &m, buf, g->max_msg, 0);

	if (r == -EAGAIN || r == -ETIMEDOUT || r == -EINTR)
		return 0;
	if (r < 0)
		return r;
	if ((m.flags & SHOAL_MSG_SYSTEM) && m.type == SHOAL_T_DOWN &&
	    m.len >= sizeof(struct shoal_down)) {
		struct shoal_down d;

		memcpy(&d, buf, sizeof(d));
		pthread_mutex_lock(&g->mu);
		on_down(g, &d);
		pthread_mutex_unlock(&g->mu);
		return 1;
	}
	if (!(m.flags & SHOAL_MSG_REPLY))
		return 1;
	h = (struct gw_reply){
		.ref = m.ref,
		.term = (m.flags & SHOAL_MSG_TERM) != 0,
		.err = (m.flags & SHOAL_MSG_ERROR) ? m.type : 0,
		.len = (m.flags & SHOAL_MSG_ERROR) ? 0
		       : m.len < g->max_msg	   ? m.len
						   : g->max_msg,
	};
	pthread_mutex_lock(&g->mu);
	on_reply(g, out, &h, buf);
	pthread_mutex_unlock(&g->mu);
	return 1;
}

/*
 * Wait in the inbox for replies and send each to its caller (on_reply(), under gw.mu).
 * DOWN and UP notices of its monitors end links (on_down()); other messages are dropped. Ends when
 * the instance stops (or the main thread has ended) and closes pipe_wr to say so.
 */
static void *reply_thread(void *arg)
{
	struct gw *g = arg;
	char *buf = malloc(g->max_msg);
	sigset_t all;
	ei_x_buff out;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main thread's */
	if (!buf || ei_x_new(&out) < 0) {
		free(buf);
		close(g->pipe_wr);
		return NULL;
	}
	for (;;) {
		uint32_t done;
		int r = 0;

		/* T1: pairs with T0 in dist_gateway_main(): the main thread has ended */
		if (atomic_load_explicit(&g->stop, memory_order_acquire))
			break;
		/*
		 * The proxies' mailboxes, then up to GW_PROXY_BATCH messages of the inbox (its
		 * replies must not wait behind a busy proxy's casts); park when all are empty.
		 */
		done = proxies_round(g, &out);
		for (uint32_t k = 0; k < GW_PROXY_BATCH; k++) {
			r = inbox_one(g, &out, buf);
			if (r <= 0)
				break;
			done++;
		}
		if (r < 0)
			break; /* the instance stopped, or its supervisor is gone */
		if (done)
			continue;
		r = ipc_waiter_wait(wrk_client_waiter(g->cl), 20000, 1000000000ull, out_has_work, g,
				    NULL);
		if (r == -EOWNERDEAD)
			break; /* the supervisor exited */
		if (r == 0 && !out_has_work(g) && shm_seg_gone(g->seg, shm_seg_liveness(g->seg, 0)))
			break; /* the instance stopped */
	}
	ei_x_free(&out);
	free(buf);
	close(g->pipe_wr);
	return NULL;
}

/* --- connections --- */

static struct gw_conn *conn_by_node(struct gw *g, const char *node)
{
	for (uint32_t i = 0; i < GW_MAX_CONNS; i++)
		if (g->conns[i].fd >= 0 && !strcmp(g->conns[i].node, node))
			return &g->conns[i];
	return NULL;
}

/* --- agents' pids and links --- */

/*
 * The Erlang pid of incarnation inc of the agent in slot `slot` (generation gen): a pid of
 * this node whose number is the slot and whose serial holds the low 16 bits of the
 * generation (high half) and of the restarts count (low half). A restart makes a new pid,
 * as a restarted process is a new process in OTP; the 16 bits wrap after 65,536 restarts of
 * one agent, and an old pid then names the agent again.
 */
static void agent_pid(struct gw *g, uint32_t slot, uint32_t gen, uint32_t inc, erlang_pid *out)
{
	*out = *ei_self(&g->ec);
	out->num = slot;
	out->serial = (gen & 0xffffu) << 16 | (inc & 0xffffu);
}

/*
 * The agent whose live incarnation pid p names: its handle, and that incarnation in *inc;
 * 0 when p is not an agent's pid of this node, or names an incarnation that is over.
 */
static shoal_handle_t pid_agent(struct gw *g, const erlang_pid *p, uint32_t *inc)
{
	const erlang_pid *self = ei_self(&g->ec);
	struct shm_agent *a;
	uint32_t st, gen, restarts;

	if (strcmp(p->node, self->node) || p->creation != self->creation ||
	    p->num >= shm_hdr(g->seg)->cfg.max_agents)
		return 0;
	a = shm_agent_at(g->seg, p->num);
	/*
	 * P0: acquire: pairs with the agent slot's publication (S2, shm/proc.c): gen and
	 * restarts are at least those of the state read. A reader's snapshot: a change right
	 * after is as one just after the check. restarts is counted just after the DOWN store
	 * (workers/agent.c, workers/worker.c), so for those few instructions the ending
	 * incarnation's pid still reads live: a message it lets through waits in the mailbox
	 * for the next incarnation.
	 */
	st = atomic_load_explicit(&a->state, memory_order_acquire);
	gen = atomic_load_explicit(&a->gen, memory_order_relaxed);
	restarts = atomic_load_explicit(&a->restarts, memory_order_relaxed);
	/* DOWN: restarting, its restarts count (past the window above) that of the coming
	 * incarnation, whose pid whereis may have given; its messages wait in the mailbox */
	if ((st != SHM_AGENT_STARTING && st != SHM_AGENT_RUNNING && st != SHM_AGENT_DOWN &&
	     st != SHM_AGENT_STOPPING) ||
	    (gen & 0xffffu) != p->serial >> 16 || (restarts & 0xffffu) != (p->serial & 0xffffu))
		return 0;
	if (inc)
		*inc = restarts & 0xffffu;
	return shoal_handle_make(p->num, gen);
}

/*
 * Send a control message {Op, A, B[, Ref][, Reason]} over connection fd, in the
 * pass-through framing libei itself uses (a 4-byte length, 'p', the control term); A is pid
 * a or, when aname is not NULL, that atom, and B likewise. The ones used: an exit signal
 * {ERL_EXIT, From, To, Reason}; a monitor {DIST_OP_MONITOR_P, From, To, Ref} (To a pid or
 * a registered name) and its removal {DIST_OP_DEMONITOR_P, From, To, Ref}; a monitor's
 * DOWN {DIST_OP_MONITOR_P_EXIT, Watched, Watcher, Ref, Reason}. Reason an atom. libei has
 * no public call for any of them. 0, or -1 when it could not be written at once.
 */
static int send_signal(int fd, long op, const erlang_pid *a, const char *aname, const erlang_pid *b,
		       const char *bname, const erlang_ref *ref, const char *reason)
{
	ei_x_buff x;
	uint32_t len;
	ssize_t w;
	int r = -1;

	if (ei_x_new(&x) < 0)
		return -1;
	if (ei_x_append_buf(&x, "\0\0\0\0p", 5) < 0 || ei_x_encode_version(&x) < 0 ||
	    ei_x_encode_tuple_header(&x, 3 + !!ref + !!reason) < 0 ||
	    ei_x_encode_long(&x, op) < 0 ||
	    (aname ? ei_x_encode_atom(&x, aname) : ei_x_encode_pid(&x, a)) < 0 ||
	    (bname ? ei_x_encode_atom(&x, bname) : ei_x_encode_pid(&x, b)) < 0 ||
	    (ref && ei_x_encode_ref(&x, ref) < 0) || (reason && ei_x_encode_atom(&x, reason) < 0))
		goto out;
	len = htonl((uint32_t)x.index - 4);
	memcpy(x.buff, &len, 4);
	/* a few dozen bytes: a socket that cannot take them now belongs to a stuck peer */
	w = send(fd, x.buff, (size_t)x.index, MSG_NOSIGNAL | MSG_DONTWAIT);
	r = w == x.index ? 0 : -1;
out:
	ei_x_free(&x);
	return r;
}

/* An exit signal from `from` to `to` with atom `reason`: send_signal(). */
static int send_exit(int fd, const erlang_pid *from, const erlang_pid *to, const char *reason)
{
	return send_signal(fd, ERL_EXIT, from, NULL, to, NULL, NULL, reason);
}

/* The atom an exit signal carries for a shoal DOWN reason. */
static const char *down_atom(uint32_t reason)
{
	switch (reason) {
	case SHOAL_DOWN_CRASH:
		return "killed"; /* its worker died under it */
	case SHOAL_DOWN_FAILED:
		return "failed"; /* past its restart intensity: removed */
	case SHOAL_DOWN_STOPPED:
		return "normal"; /* an orderly stop */
	case SHOAL_DOWN_ERROR:
		return "error"; /* a callback failed: it restarts as a new incarnation */
	case SHOAL_DOWN_NOCONNECTION:
		return "noconnection";
	default:
		return "noproc";
	}
}

/* Drop link k: its monitor removed. Under mu. */
static void link_drop(struct gw *g, struct gw_link *k)
{
	shoal_client_demonitor(g->cl, k->mon);
	k->agent = 0;
	g->nlinks--;
}

static void conn_close(struct gw *g, struct gw_conn *c, const char *why);

static void call_forget_ref(struct gw *g, uint64_t ref);

/* The stalled message is sent or given up: reading the connection resumes. */
static void stall_end(struct gw_conn *c)
{
	free(c->stall.data);
	c->stall.data = NULL;
}

static void proxies_end_node(struct gw *g, const char *node);

static void conn_close(struct gw *g, struct gw_conn *c, const char *why)
{
	bool lost;

	if (c->stall.data) {
		call_forget_ref(g, c->stall.ref);
		stall_end(c);
	}
	say("connection from %s closed: %s", c->node, why);
	/* its processes' links go with it: the BEAM side reads noconnection itself */
	for (uint32_t i = 0; g->nlinks && i < GW_MAX_LINKS; i++)
		if (g->links[i].agent && !strcmp(g->links[i].remote.node, c->node))
			link_drop(g, &g->links[i]);
	ei_close_connection(c->fd);
	c->fd = -1;
	/* its read buffer stays for the slot's next connection: a message being handled may
	 * still point into it (on_frame()) */
	c->roff = c->rlen = 0;
	c->skip = 0;
	lost = c->olen > 0;
	free(c->ob); /* what it had still to write is lost with it, as on any lost connection */
	c->ob = NULL;
	c->olen = c->ocap = 0;
	/* and the remote handles to its processes, with the calls made through them, unless
	 * another connection to the node remains (both ends connected at once) and nothing of
	 * theirs was lost with this one */
	if (lost || !conn_by_node(g, c->node))
		proxies_end_node(g, c->node);
	c->node[0] = 0;
}

/*
 * A slot's read buffer for a new connection: empty, and back to its first size if a long
 * message grew it (nothing points into it between connections). Under mu.
 */
static void conn_rx_reset(struct gw_conn *c)
{
	if (c->rcap > GW_RX_MIN) {
		free(c->rx);
		c->rx = NULL;
		c->rcap = 0;
	}
	c->roff = c->rlen = 0;
	c->skip = 0;
}

/* The listening socket is readable: take the connection, the handshake checks the cookie. */
static void on_accept(struct gw *g)
{
	ErlConnect info;
	struct gw_conn *slot = NULL;
	int fd = ei_accept_tmo(&g->ec, g->lfd, &info, GW_IO_MS);

	if (fd < 0) {
		/* the handshake failed: most often a peer with another cookie */
		say("a connection was refused in the handshake (a wrong cookie, or not an Erlang "
		    "node; erl_errno %d)",
		    erl_errno);
		return;
	}
	for (uint32_t i = 0; i < GW_MAX_CONNS && !slot; i++)
		if (g->conns[i].fd < 0)
			slot = &g->conns[i];
	if (!slot) {
		say("connection from %s refused: %u connections already", info.nodename,
		    GW_MAX_CONNS);
		ei_close_connection(fd);
		return;
	}
	/*
	 * A node connects once; a second connection from it replaces a dead first one. One we
	 * made ourselves stays: both ends connected at once, and both connections are live.
	 */
	{
		struct gw_conn *old = conn_by_node(g, info.nodename);

		if (old && !old->outbound)
			conn_close(g, old, "the node connected again");
	}
	slot->fd = fd;
	slot->outbound = false;
	slot->rx_ns = slot->since_ns = shm_now_ns();
	slot->nin = slot->nout = 0;
	conn_rx_reset(slot);
	snprintf(slot->node, sizeof(slot->node), "%s", info.nodename);
	say("node %s connected", slot->node);
}

/* --- messages from the network --- */

/* A message to a name that does not exist: dropped, as Erlang drops it; said now and then. */
static void drop_unknown(struct gw *g, const char *from, const char *name)
{
	uint64_t now = shm_now_ns();

	g->dropped++;
	g->tl.dist_dropped++;
	if (now - g->last_drop_ns >= 1000000000ull) {
		say("message from %s to '%s' dropped: no agent of that name (%" PRIu64
		    " dropped so far)",
		    from, name, g->dropped);
		g->last_drop_ns = now;
	}
}

/*
 * The payload of term [start, end) of buf: a binary's bytes, or the term in its external
 * format (version byte first) with IPC_F_TERM in *flags. Into g->buf; its length, or -1
 * (said) when it is larger than the instance's max message.
 */
static int64_t payload_of(struct gw *g, const char *buf, int start, int end, uint32_t *flags,
			  const char *from, const char *name)
{
	int type, size, i = start;
	int64_t n;

	*flags = 0;
	if (ei_get_type(buf, &i, &type, &size) == 0 && type == ERL_BINARY_EXT) {
		long len;

		if ((uint64_t)size > g->max_msg) {
			n = size;
			goto out_big;
		}
		if (ei_decode_binary(buf, &i, g->buf, &len) < 0)
			return -1;
		return len;
	}
	n = (int64_t)(end - start) + 1;
	if ((uint64_t)n > g->max_msg)
		goto out_big;
	g->buf[0] = (char)131 /* the external term format's version byte */;
	memcpy(g->buf + 1, buf + start, (size_t)(end - start));
	*flags = IPC_F_TERM;
	return n;

out_big:
	g->tl.dist_dropped++;
	say("message from %s to '%s' rejected: %" PRId64
	    " bytes, more than the instance's max message (%u bytes, [segment] max_message)",
	    from, name, n, g->max_msg);
	return -1;
}

/* Keep a call in flight; false when GW_MAX_PENDING are (the caller drops it). */
static bool call_keep(struct gw *g, uint64_t ref, const char *name, const erlang_pid *from,
		      const char *tag, int taglen)
{
	for (uint32_t i = 0; i < GW_MAX_PENDING; i++) {
		struct gw_call *c = &g->calls[i];

		if (c->ref)
			continue;
		c->tag = malloc((size_t)taglen);
		if (!c->tag)
			return false;
		memcpy(c->tag, tag, (size_t)taglen);
		c->taglen = taglen;
		c->from = *from;
		c->ref = ref;
		c->sent_ns = shm_now_ns();
		snprintf(c->name, sizeof(c->name), "%s", name);
		g->ncalls++;
		return true;
	}
	return false;
}

/* A call's entry is free again (answered, or forgotten). */
static void call_forget(struct gw *g, struct gw_call *call)
{
	free(call->tag);
	call->tag = NULL;
	call->ref = 0;
	g->ncalls--;
}

/* The same, by its reference (0 or unknown: nothing). */
static void call_forget_ref(struct gw *g, uint64_t ref)
{
	for (uint32_t i = 0; ref && i < GW_MAX_PENDING; i++)
		if (g->calls[i].ref == ref) {
			call_forget(g, &g->calls[i]);
			return;
		}
}

/*
 * Put g->buf's n bytes into to's mailbox, never waiting: a full one stalls the connection
 * with a copy (stall_retry() goes on). A call's entry is kept by the caller before, and
 * forgotten here if the message cannot be delivered.
 */
static void deliver(struct gw *g, struct gw_conn *c, const char *name, shoal_handle_t to,
		    uint32_t flags, uint64_t ref, uint32_t n)
{
	int r = ipc_send(g->seg, to, g->inbox, 0, flags, ref, g->buf, n, 0);

	if (r == 0)
		g->tl.dist_in++;
	if (r == -EAGAIN || r == -ETIMEDOUT) {
		c->stall = (struct gw_stall){
			.len = n, .flags = flags, .ref = ref, .to = to, .since_ns = shm_now_ns()};
		snprintf(c->stall.name, sizeof(c->stall.name), "%s", name);
		c->stall.data = malloc(n ? n : 1);
		if (c->stall.data) {
			memcpy(c->stall.data, g->buf, n);
			return;
		}
		r = -ENOMEM;
	}
	if (r) {
		g->tl.dist_dropped++;
		say("%s from %s to '%s' dropped: %s", ref ? "call" : "message", c->node, name,
		    strerror(-r));
		call_forget_ref(g, ref);
	}
}

/* Try c's stalled message again; give it up after GW_STALL_MS. */
static void stall_retry(struct gw *g, struct gw_conn *c)
{
	struct gw_stall *st = &c->stall;
	int r = ipc_send(g->seg, st->to, g->inbox, 0, st->flags, st->ref, st->data, st->len, 0);

	if ((r == -EAGAIN || r == -ETIMEDOUT) &&
	    shm_now_ns() - st->since_ns < (uint64_t)GW_STALL_MS * 1000000u)
		return;
	if (r == 0)
		g->tl.dist_in++;
	if (r) {
		g->tl.dist_dropped++;
		say("%s from %s to '%s' dropped: %s", st->ref ? "call" : "message", c->node,
		    st->name,
		    r == -EAGAIN || r == -ETIMEDOUT ? "its mailbox stayed full for 5 s"
						    : strerror(-r));
		call_forget_ref(g, st->ref);
	}
	stall_end(c);
}

/*
 * {'$gen_call', {From, Tag}, Req}: is the term at buf+*i one? Then its parts: From, and the
 * offsets of Tag and Req (as encoded).
 */
static bool is_gen_call(const char *buf, int i, erlang_pid *from, int *tag, int *tagend, int *req,
			int *reqend)
{
	char atom[MAXATOMLEN_UTF8];
	int arity;

	if (ei_decode_tuple_header(buf, &i, &arity) < 0 || arity != 3 ||
	    ei_decode_atom(buf, &i, atom) < 0 || strcmp(atom, "$gen_call") ||
	    ei_decode_tuple_header(buf, &i, &arity) < 0 || arity != 2 ||
	    ei_decode_pid(buf, &i, from) < 0)
		return false;
	*tag = i;
	if (ei_skip_term(buf, &i) < 0)
		return false;
	*tagend = i;
	*req = i;
	if (ei_skip_term(buf, &i) < 0)
		return false;
	*reqend = i;
	return true;
}

/*
 * To net_kernel: net_adm:ping/1 asks {is_auth, Node} as a gen call and waits for 'yes' (for
 * ever, from a node that stays silent). Answered as a BEAM node's net_kernel answers it; the
 * rest is dropped.
 */
static void on_net_kernel(struct gw *g, struct gw_conn *c, const char *buf, int start)
{
	char atom[MAXATOMLEN_UTF8], kind[MAXATOMLEN_UTF8];
	int i = start, arity, tag, tagend = 0;
	erlang_pid from;
	ei_x_buff out;

	/* {'$gen_call', {From, Tag}, {is_auth, Node}} */
	if (ei_decode_tuple_header(buf, &i, &arity) < 0 || arity != 3 ||
	    ei_decode_atom(buf, &i, kind) < 0 || strcmp(kind, "$gen_call") ||
	    ei_decode_tuple_header(buf, &i, &arity) < 0 || arity != 2 ||
	    ei_decode_pid(buf, &i, &from) < 0)
		return;
	tag = i;
	if (ei_skip_term(buf, &i) < 0)
		return;
	tagend = i;
	if (ei_decode_tuple_header(buf, &i, &arity) < 0 || arity != 2 ||
	    ei_decode_atom(buf, &i, atom) < 0 || strcmp(atom, "is_auth"))
		return;
	if (ei_x_new_with_version(&out) < 0)
		return;
	ei_x_encode_tuple_header(&out, 2);
	ei_x_append_buf(&out, buf + tag, tagend - tag);
	ei_x_encode_atom(&out, "yes");
	if (ei_send_tmo(c->fd, &from, out.buff, out.index, GW_IO_MS) < 0)
		conn_close(g, c, "an answer could not be sent in time");
	else
		g->tl.dist_out++, c->nout++;
	ei_x_free(&out);
}

/*
 * To the gateway's own name (GW_SERVICE): {'$gen_call', {From, Tag}, {whereis, Name}}, Name
 * an atom or a binary, answered with the pid of the agent's live incarnation (agent_pid())
 * or 'undefined'; and to rex, the rpc server's name: erlang:whereis/1 answered the same, any
 * other call {badrpc, {'EXIT', {undef, []}}} (a shoal node runs no Erlang code; a caller
 * must not wait for ever). Anything else is dropped.
 */
/* Answer a call to rex we do not serve: {Tag, {badrpc, {'EXIT', {undef, []}}}}. */
static void badrpc(struct gw *g, struct gw_conn *c, erlang_pid *from, const char *tag, int taglen)
{
	ei_x_buff out;

	if (ei_x_new_with_version(&out) < 0)
		return;
	ei_x_encode_tuple_header(&out, 2);
	ei_x_append_buf(&out, tag, taglen);
	ei_x_encode_tuple_header(&out, 2);
	ei_x_encode_atom(&out, "badrpc");
	ei_x_encode_tuple_header(&out, 2);
	ei_x_encode_atom(&out, "EXIT");
	ei_x_encode_tuple_header(&out, 2);
	ei_x_encode_atom(&out, "undef");
	ei_x_encode_empty_list(&out);
	if (ei_send_tmo(c->fd, from, out.buff, out.index, GW_IO_MS) < 0)
		conn_close(g, c, "an answer could not be sent in time");
	else
		g->tl.dist_out++, c->nout++;
	ei_x_free(&out);
}

static void on_service(struct gw *g, struct gw_conn *c, const char *buf, int start)
{
	char atom[MAXATOMLEN_UTF8], name[SHOAL_NAME_MAX + 1];
	int i, arity, tag, tagend, req, reqend, type, size;
	erlang_pid from, pid;
	shoal_handle_t h = 0;
	ei_x_buff out;

	if (!is_gen_call(buf, start, &from, &tag, &tagend, &req, &reqend))
		return;
	i = req;
	/* {whereis, Name}, or rex's {call, erlang, whereis, [Name], _} (rpc:call/4) */
	if (ei_decode_tuple_header(buf, &i, &arity) < 0 || ei_decode_atom(buf, &i, atom) < 0)
		return;
	if (arity == 5 && !strcmp(atom, "call")) {
		char mod[MAXATOMLEN_UTF8];
		int n;

		if (ei_decode_atom(buf, &i, mod) < 0 || ei_decode_atom(buf, &i, atom) < 0 ||
		    strcmp(mod, "erlang") || strcmp(atom, "whereis") ||
		    ei_decode_list_header(buf, &i, &n) < 0 || n != 1) {
			badrpc(g, c, &from, buf + tag, tagend - tag);
			return;
		}
	} else if (arity != 2 || strcmp(atom, "whereis")) {
		return;
	}
	if (ei_get_type(buf, &i, &type, &size) < 0)
		return;
	name[0] = 0;
	if (type == ERL_BINARY_EXT && size <= SHOAL_NAME_MAX) {
		long len;

		if (ei_decode_binary(buf, &i, name, &len) < 0)
			return;
		name[len] = 0;
		if (strlen(name) != (size_t)len)
			name[0] = 0; /* a NUL inside: no agent has such a name */
	} else if (ei_decode_atom(buf, &i, atom) == 0 && strlen(atom) <= SHOAL_NAME_MAX) {
		memcpy(name, atom, strlen(atom) + 1); /* its length checked just above */
	}
	if (name[0] && shoal_client_lookup(g->cl, name, &h) == 0) {
		struct shm_agent *a = shm_agent_at(g->seg, shoal_handle_slot(h));

		agent_pid(g, shoal_handle_slot(h), shoal_handle_gen(h),
			  atomic_load_explicit(&a->restarts, memory_order_relaxed), &pid);
	}
	if (ei_x_new_with_version(&out) < 0)
		return;
	ei_x_encode_tuple_header(&out, 2);
	ei_x_append_buf(&out, buf + tag, tagend - tag);
	if (h)
		ei_x_encode_pid(&out, &pid);
	else
		ei_x_encode_atom(&out, "undefined");
	if (ei_send_tmo(c->fd, &from, out.buff, out.index, GW_IO_MS) < 0)
		conn_close(g, c, "an answer could not be sent in time");
	else
		g->tl.dist_out++, c->nout++;
	ei_x_free(&out);
}

static void to_agent(struct gw *g, struct gw_conn *c, const char *name, shoal_handle_t to,
		     const ei_x_buff *x, int start, int end);

/* The term of message x: its offsets [*start, *end); false (said) if malformed. */
static bool term_of(struct gw_conn *c, const char *to, const ei_x_buff *x, int *start, int *end)
{
	int i = 0, ver;

	if (x->index < 1 || ei_decode_version(x->buff, &i, &ver) < 0) {
		say("message from %s to %s rejected: no term version byte", c->node, to);
		return false;
	}
	*start = i;
	*end = i;
	/* bounded: ei's own skip trusts the lengths it reads, and these bytes are a peer's */
	if (dist_term_check(x->buff, (uint32_t)x->index, (uint32_t)i, (uint32_t *)end) ||
	    *end != x->index) {
		say("message from %s to %s rejected: a malformed term (%d bytes)", c->node, to,
		    x->index);
		return false;
	}
	return true;
}

/*
 * A message sent to a pid: to the agent incarnation it names (a cast, or a gen_server call),
 * or dropped when that incarnation is over, as Erlang drops a message to a dead process.
 */
static void on_outreply(struct gw *g, struct gw_conn *c, const ei_x_buff *x);

static void on_send(struct gw *g, struct gw_conn *c, const erlang_msg *msg, const ei_x_buff *x)
{
	shoal_handle_t to;
	struct shm_agent *a;
	char name[SHOAL_NAME_MAX + 1];
	int start, end;

	if (msg->to.num == GW_REPLY_NUM && !strcmp(msg->to.node, ei_self(&g->ec)->node)) {
		on_outreply(g, c, x);
		return;
	}
	to = pid_agent(g, &msg->to, NULL);

	if (!to) {
		uint64_t now = shm_now_ns();

		g->dead_sends++;
		g->tl.dist_dropped++;
		if (now - g->last_dead_ns >= 1000000000ull) {
			say("message from %s to pid <%u.%u> dropped: no live agent incarnation has "
			    "that pid (%" PRIu64 " dropped so far)",
			    c->node, msg->to.num, msg->to.serial, g->dead_sends);
			g->last_dead_ns = now;
		}
		return;
	}
	a = shm_agent_at(g->seg, shoal_handle_slot(to));
	/* a proxy's pid is no process: a message to it would go back out (dropped) */
	if (wrk_remote_is_proxy(g->seg, shoal_handle_slot(to))) {
		g->tl.dist_dropped++;
		return;
	}
	/* the name for messages: plain bytes written before the slot was published */
	for (size_t k = 0; k < sizeof(name) - 1; k++)
		name[k] = __atomic_load_n(&a->name[k], __ATOMIC_RELAXED);
	name[sizeof(name) - 1] = 0;
	if (!term_of(c, name, x, &start, &end)) {
		g->tl.dist_dropped++;
		return;
	}
	to_agent(g, c, name, to, x, start, end);
}

/*
 * Tell Erlang process `remote` that the agent incarnation `agent` (its pid) it links to, or
 * monitors (ref not NULL; by name when name is not NULL or ""), ended with `reason` (an
 * atom): an exit signal, or a MONITOR_P_EXIT (its 'DOWN'). False if it could not be sent
 * (the connection is closed then). Under mu.
 */
static bool tell_end(struct gw *g, struct gw_conn *c, const erlang_pid *agent,
		     const erlang_pid *remote, const erlang_ref *ref, const char *name,
		     const char *reason)
{
	int r = ref ? send_signal(c->fd, DIST_OP_MONITOR_P_EXIT, agent, name && *name ? name : NULL,
				  remote, NULL, ref, reason)
		    : send_exit(c->fd, agent, remote, reason);

	if (r) {
		conn_close(g, c, "an exit signal could not be sent");
		return false;
	}
	g->tl.dist_out++;
	c->nout++;
	return true;
}

/*
 * A link (ref NULL) or a monitor (ref; by name when name is not "") from Erlang process
 * `from` to the agent pid `to`: kept with a shoal monitor of the agent (link_drop()); a pid
 * whose incarnation is over answers with 'noproc' at once, as a BEAM node answers a link or
 * a monitor of a dead process.
 */
static void watch(struct gw *g, struct gw_conn *c, const erlang_pid *to, const erlang_pid *from,
		  const erlang_ref *ref, const char *name)
{
	uint32_t inc, inc2;
	shoal_handle_t h = pid_agent(g, to, &inc);
	struct gw_link *k = NULL;
	uint64_t mon;
	int mr = 0;

	for (uint32_t i = 0; h && i < GW_MAX_LINKS && !k; i++)
		if (!g->links[i].agent)
			k = &g->links[i];
	/* a monitor of an incarnation that ended meanwhile is refused (-ESTALE): noproc below */
	if (h && k && (mr = shoal_client_monitor(g->cl, h, &mon)) == -ESTALE)
		h = 0;
	if (h && (!k || mr < 0)) {
		if (!k)
			say("%s from %s to pid <%u.%u> refused: %u links and monitors already",
			    ref ? "monitor" : "link", c->node, to->num, to->serial, GW_MAX_LINKS);
		else
			say("%s from %s to pid <%u.%u> refused: the monitor table is full",
			    ref ? "monitor" : "link", c->node, to->num, to->serial);
		/* a link is answered noproc, as before; a monitor is not: a DOWN would say a
		 * live agent died (gen_server:call monitors every call) */
		if (!ref)
			tell_end(g, c, to, from, ref, name, "noproc");
		return;
	}
	/* the incarnation may have ended before the monitor was in place: look again */
	if (h && pid_agent(g, to, &inc2) != h) {
		shoal_client_demonitor(g->cl, mon);
		h = 0;
	}
	if (!h) {
		tell_end(g, c, to, from, ref, name, "noproc");
		return;
	}
	*k = (struct gw_link){.agent = h, .inc = inc, .mon = mon, .remote = *from};
	if (ref) {
		k->monitor = true;
		k->ref = *ref;
		snprintf(k->name, sizeof(k->name), "%s", name);
	}
	g->nlinks++;
}

/* A link from Erlang process msg->from to the agent pid msg->to: watch(). */
static void on_link(struct gw *g, struct gw_conn *c, const erlang_msg *msg)
{
	watch(g, c, &msg->to, &msg->from, NULL, "");
}

static bool pid_eq(const erlang_pid *a, const erlang_pid *b)
{
	return !strcmp(a->node, b->node) && a->num == b->num && a->serial == b->serial &&
	       a->creation == b->creation;
}

/*
 * An unlink, or an exit signal from a linked process (it ended): the links between
 * msg->from and the agent pid msg->to go. An exit signal does not stop the agent: agents
 * take no exit signals (docs/dist.md).
 */
static void on_unlink(struct gw *g, const erlang_msg *msg)
{
	uint32_t slot = msg->to.num, inc = msg->to.serial & 0xffffu;

	for (uint32_t i = 0; g->nlinks && i < GW_MAX_LINKS; i++) {
		struct gw_link *k = &g->links[i];

		if (k->agent && !k->monitor && shoal_handle_slot(k->agent) == slot &&
		    k->inc == inc && pid_eq(&k->remote, &msg->from))
			link_drop(g, k);
	}
}

static bool ref_eq(const erlang_ref *a, const erlang_ref *b)
{
	return a->len == b->len && a->creation == b->creation && !strcmp(a->node, b->node) &&
	       !memcmp(a->n, b->n, (size_t)a->len * sizeof(a->n[0]));
}

/*
 * A monitor control message: DIST_OP_MONITOR_P {19, From, To, Ref} from an Erlang process
 * monitoring an agent (To its pid, or its registered name), or DIST_OP_DEMONITOR_P
 * {20, From, To, Ref} ending one; DIST_OP_MONITOR_P_EXIT for our own monitors goes to
 * on_proxy_down(). b holds the control tuple's elements after the operation, len bytes (a
 * peer's: checked before they are decoded).
 */
static void on_proxy_down(struct gw *g, struct gw_conn *c, const char *b, int i, bool len_ok);

static void on_monitor_ctl(struct gw *g, struct gw_conn *c, long op, const char *b, int len)
{
	char name[MAXATOMLEN_UTF8] = "";
	erlang_pid from, to;
	erlang_ref ref;
	uint32_t end = 0;
	int i = 0, type, size;

	for (int k = 0; k < 3; k++)
		if (dist_term_check(b, (uint32_t)len, end, &end)) {
			say("a malformed monitor signal from %s: ignored", c->node);
			return;
		}
	if (op == DIST_OP_MONITOR_P_EXIT) {
		/* a DOWN's reason may hold what the check refuses (a fun): the DOWN still counts */
		on_proxy_down(g, c, b, 0, dist_term_check(b, (uint32_t)len, end, &end) == 0);
		return;
	}
	if (ei_decode_pid(b, &i, &from) < 0 || ei_get_type(b, &i, &type, &size) < 0 ||
	    (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT
		     ? ei_decode_pid(b, &i, &to)
		     : ei_decode_atom_as(b, &i, name, sizeof(name), ERLANG_UTF8, NULL, NULL)) < 0 ||
	    ei_decode_ref(b, &i, &ref) < 0) {
		say("a monitor signal from %s of a kind not handled: ignored", c->node);
		return;
	}
	if (strcmp(from.node, c->node)) {
		say("a monitor signal from %s for a process of %s: ignored", c->node, from.node);
		return;
	}
	if (op == DIST_OP_DEMONITOR_P) {
		for (uint32_t n = 0; g->nlinks && n < GW_MAX_LINKS; n++) {
			struct gw_link *k = &g->links[n];

			if (k->agent && k->monitor && ref_eq(&k->ref, &ref) &&
			    pid_eq(&k->remote, &from))
				link_drop(g, k);
		}
		return;
	}
	if (name[0]) {
		shoal_handle_t h;

		/* the gateway's own names live while the connection does: nothing to watch */
		if (!strcmp(name, "net_kernel") || !strcmp(name, "rex") ||
		    !strcmp(name, GW_SERVICE))
			return;
		if (strlen(name) > SHOAL_NAME_MAX || shoal_client_lookup(g->cl, name, &h) < 0) {
			/* nobody has the name: its DOWN at once, as a BEAM node answers */
			agent_pid(g, 0, 0, 0, &to);
			tell_end(g, c, &to, &from, &ref, name, "noproc");
			return;
		}
		agent_pid(
			g, shoal_handle_slot(h), shoal_handle_gen(h),
			atomic_load_explicit(&shm_agent_at(g->seg, shoal_handle_slot(h))->restarts,
					     memory_order_relaxed),
			&to);
	}
	watch(g, c, &to, &from, &ref, name);
}

/*
 * A DOWN or UP from the gateway's monitor of a linked agent. A DOWN ends the incarnation:
 * each link on that monitor sends its remote process an exit signal with the reason. An
 * UP (restarted) ends the links whose incarnation is not the live one with 'noproc': their
 * DOWN was missed (a watcher whose inbox is full misses a notice, workers/monitor.c); a
 * link made to the new incarnation's pid while it was restarting stays. The reply thread,
 * holding mu.
 */
static void on_down(struct gw *g, const struct shoal_down *d)
{
	for (uint32_t i = 0; g->nlinks && i < GW_MAX_LINKS; i++) {
		struct gw_link *k = &g->links[i];
		struct gw_conn *c;
		erlang_pid from;

		if (!k->agent || k->mon != d->ref)
			continue;
		agent_pid(g, shoal_handle_slot(k->agent), shoal_handle_gen(k->agent), k->inc,
			  &from);
		if (d->up && pid_agent(g, &from, NULL) == k->agent)
			continue;
		c = conn_by_node(g, k->remote.node);
		if (c)
			tell_end(g, c, &from, &k->remote, k->monitor ? &k->ref : NULL, k->name,
				 down_atom(d->up ? 0 : d->reason));
		if (k->agent)
			link_drop(g, k);
	}
}

/* A message sent to registered name msg->toname: a cast, or a gen_server call. */
static void on_reg_send(struct gw *g, struct gw_conn *c, const erlang_msg *msg, const ei_x_buff *x)
{
	const char *name = msg->toname;
	shoal_handle_t to;
	int start, end;

	{
		char quoted[SHOAL_NAME_MAX + 4];

		snprintf(quoted, sizeof(quoted), "'%.*s'", (int)SHOAL_NAME_MAX, name);
		if (!term_of(c, quoted, x, &start, &end)) {
			g->tl.dist_dropped++;
			return;
		}
	}
	if (!strcmp(name, "net_kernel")) {
		on_net_kernel(g, c, x->buff, start);
		return;
	}
	if (!strcmp(name, GW_SERVICE) || !strcmp(name, "rex")) {
		/* rex: the rpc server, answered for erlang:whereis/1 only (how a remote
		 * handle on another shoal node resolves its name: proxy_resolve()) */
		on_service(g, c, x->buff, start);
		return;
	}
	if (strlen(name) > SHOAL_NAME_MAX || shoal_client_lookup(g->cl, name, &to) < 0) {
		drop_unknown(g, c->node, name);
		return;
	}
	to_agent(g, c, name, to, x, start, end);
}

/* A message to an agent (to, called `name` in messages): a cast, or a gen_server call. */
static void to_agent(struct gw *g, struct gw_conn *c, const char *name, shoal_handle_t to,
		     const ei_x_buff *x, int start, int end)
{
	int tag, tagend, req, reqend;
	erlang_pid from;
	uint32_t flags;
	int64_t n;

	if (is_gen_call(x->buff, start, &from, &tag, &tagend, &req, &reqend)) {
		uint64_t ref;

		n = payload_of(g, x->buff, req, reqend, &flags, c->node, name);
		if (n < 0)
			return;
		if (g->ncalls >= GW_MAX_PENDING) {
			say("call from %s to '%s' dropped: %u calls in flight already", c->node,
			    name, GW_MAX_PENDING);
			g->tl.dist_dropped++;
			return;
		}
		ref = ipc_ref_new(g->seg, false);
		/* kept before it is sent: the reply may come before we look again */
		if (!call_keep(g, ref, name, &from, x->buff + tag, tagend - tag)) {
			say("call from %s to '%s' dropped: no memory to keep it", c->node, name);
			return;
		}
		deliver(g, c, name, to, IPC_F_CALL | flags, ref, (uint32_t)n);
		return;
	}
	n = payload_of(g, x->buff, start, end, &flags, c->node, name);
	if (n < 0)
		return;
	deliver(g, c, name, to, flags, 0, (uint32_t)n);
}

/* --- remote handles: the proxies' mailboxes to the network (the reply thread) --- */

/* The reply pid: the From of the calls made for shoal callers (GW_REPLY_NUM). */
static void reply_pid(struct gw *g, erlang_pid *out)
{
	*out = *ei_self(&g->ec);
	out->num = GW_REPLY_NUM;
	out->serial = 0;
}

/* Forget outcall o (answered, failed, or past its lifetime). Under mu. */
static void outcall_forget(struct gw *g, struct gw_outcall *o)
{
	o->id = 0;
	g->noutcalls--;
}

/* Answer outcall o's caller with error err (never waiting) and forget it. Under mu. */
static void outcall_fail(struct gw *g, struct gw_outcall *o, int err)
{
	if (o->vote || o->demand) /* no answer came: the member counts as dead in its round */
		ipc_round_answer(g->seg, o->ref, true);
	else
		ipc_send(g->seg, o->caller, o->proxy, (uint32_t)err, IPC_F_REPLY | IPC_F_ERROR,
			 o->ref, NULL, 0, 0);
	outcall_forget(g, o);
}

/*
 * End proxy p with DOWN `reason`: its monitors hear it, its name goes (the next lookup makes
 * a new one), calls queued to it are refused. Under mu.
 */
static void proxy_end(struct gw *g, struct gw_proxy *p, uint32_t reason)
{
	/* the calls made through it: their replies came before its end on the connection */
	for (uint32_t i = 0; g->noutcalls && i < GW_MAX_PENDING; i++)
		if (g->outcalls[i].id && g->outcalls[i].proxy == p->h)
			outcall_fail(g, &g->outcalls[i], ENOENT);
	wrk_remote_end(g->seg, p->slot, reason);
	p->h = 0;
	g->nproxies--;
}

/* The connection to node is gone (or was never made): its proxies end, its calls fail. */
static void proxies_end_node(struct gw *g, const char *node)
{
	for (uint32_t i = 0; g->nproxies && i < GW_MAX_PROXIES; i++)
		if (g->proxies[i].h && !strcmp(g->proxies[i].node, node))
			proxy_end(g, &g->proxies[i], SHOAL_DOWN_NOCONNECTION);
	for (uint32_t i = 0; g->noutcalls && i < GW_MAX_PENDING; i++)
		if (g->outcalls[i].id && !strcmp(g->outcalls[i].node, node))
			outcall_fail(g, &g->outcalls[i], ENOTCONN);
}

static void proxy_demonitor(struct gw *g, struct gw_proxy *p);

/*
 * Take up the proxies handed to us (workers/remote.c) and end the ones asked to stop: after
 * our process slot's agents_gen moved. The reply thread, under mu.
 */
static void proxies_scan(struct gw *g)
{
	uint32_t n = shm_hdr(g->seg)->cfg.max_agents, self = g->seg->self;

	for (uint32_t i = 0; i < n; i++) {
		struct shm_agent *a = shm_agent_at(g->seg, i);
		struct gw_proxy *p = NULL, *free_p = NULL;
		char key[sizeof(a->name) + 1], *at;
		uint32_t st;

		/* A1 as in wrk_repair_worker(): the creator's writes before its hand-over */
		if (atomic_load_explicit(&a->worker, memory_order_acquire) != self + 1 ||
		    atomic_load_explicit(&a->ctl, memory_order_acquire) != WRK_CTL_HELD)
			continue;
		for (uint32_t k = 0; k < GW_MAX_PROXIES && !p; k++) {
			if (g->proxies[k].h && g->proxies[k].slot == i)
				p = &g->proxies[k];
			else if (!g->proxies[k].h && !free_p)
				free_p = &g->proxies[k];
		}
		st = atomic_load_explicit(&a->state, memory_order_acquire);
		if (st == SHM_AGENT_STOPPING) {
			if (p) {
				proxy_demonitor(g, p);
				proxy_end(g, p, SHOAL_DOWN_STOPPED);
			} else
				wrk_remote_end(g->seg, i, SHOAL_DOWN_STOPPED);
			continue;
		}
		if (p || st != SHM_AGENT_STARTING)
			continue;
		/* its key, name@alive@host: written before the hand-over (H0), never after */
		memcpy(key, a->name, sizeof(a->name));
		key[sizeof(a->name)] = 0;
		/* the node is alive@host, one '@': the '@' before its own ends the name */
		at = strrchr(key, '@');
		while (at && at > key && *--at != '@')
			;
		if (at && *at != '@')
			at = NULL;
		if (!free_p || !at || at == key || strlen(at + 1) > MAXNODELEN ||
		    at - key >= MAXATOMLEN_UTF8 || !strcmp(at + 1, ei_self(&g->ec)->node)) {
			say("remote handle '%s' ended: %s", key,
			    !free_p ? "too many remote handles at once"
			    : at && !strcmp(at + 1, ei_self(&g->ec)->node)
				    ? "that is this instance's own node (look the name up locally)"
				    : "not name@alive@host");
			wrk_remote_end(g->seg, i, SHOAL_DOWN_NOCONNECTION);
			continue;
		}
		*at = 0;
		*free_p = (struct gw_proxy){.h = wrk_agent_handle(g->seg, i), .slot = i};
		snprintf(free_p->name, sizeof(free_p->name), "%s", key);
		snprintf(free_p->node, sizeof(free_p->node), "%s", at + 1);
		g->nproxies++;
		/* RUNNING: shown so; a stop that came first wins (the next scan ends it) */
		/* relaxed: a figure for tools, as a worker's start writes it */
		atomic_store_explicit(&a->started_ns, shm_now_ns(), memory_order_relaxed);
		atomic_compare_exchange_strong_explicit(&a->state, &st, SHM_AGENT_RUNNING,
							memory_order_acq_rel, memory_order_relaxed);
		shm_change_bump(g->seg);
	}
}

/*
 * The connection to node: an open one, or a new one (connected without mu held: a handshake
 * takes up to GW_IO_MS). NULL (said) if it cannot be made. The reply thread, under mu.
 */
static struct gw_conn *conn_to(struct gw *g, const char *node)
{
	char target[MAXNODELEN + 1];
	struct gw_conn *c = conn_by_node(g, node), *slot = NULL;
	int fd;

	if (c)
		return c;
	if (!strcmp(g->failed_node, node) &&
	    shm_now_ns() - g->failed_ns < (uint64_t)GW_RETRY_MS * 1000000u)
		return NULL; /* tried just now: said then */
	snprintf(target, sizeof(target), "%s", node);
	pthread_mutex_unlock(&g->mu);
	fd = ei_connect_tmo(&g->ec, target, GW_IO_MS);
	pthread_mutex_lock(&g->mu);
	if (fd < 0) {
		c = conn_by_node(g, target);
		if (c)
			return c; /* it connected to us meanwhile (and refused our second one) */
		say("cannot connect to node %s: it is not running, not registered with epmd, or "
		    "it refused our cookie (erl_errno %d)",
		    target, erl_errno);
		snprintf(g->failed_node, sizeof(g->failed_node), "%s", target);
		g->failed_ns = shm_now_ns();
		return NULL;
	}
	/* it connected to us meanwhile: keep both (each end reads what the other sends on
	 * either; closing ours would drop what the peer sent on it) */
	for (uint32_t i = 0; i < GW_MAX_CONNS && !slot; i++)
		if (g->conns[i].fd < 0)
			slot = &g->conns[i];
	if (!slot) {
		say("cannot connect to node %s: %u connections already", target, GW_MAX_CONNS);
		ei_close_connection(fd);
		return NULL;
	}
	slot->fd = fd;
	slot->outbound = true;
	slot->rx_ns = slot->since_ns = shm_now_ns();
	slot->nin = slot->nout = 0;
	conn_rx_reset(slot);
	snprintf(slot->node, sizeof(slot->node), "%s", target);
	say("connected to node %s", target);
	/* the main thread reads it from now on: wake its poll */
	(void)!write(g->wake_wr, "c", 1);
	return slot;
}

/*
 * Encode what message m carries for the network into out (after what it holds): a term
 * when it is typed SHOAL_TYPE_TERM and is one whole term, else a binary.
 */
static void payload_term(ei_x_buff *out, const struct ipc_msg *m)
{
	uint32_t end;

	if (m->type == SHOAL_TYPE_TERM && m->len >= 2 &&
	    ((const unsigned char *)m->data)[0] == 131 &&
	    dist_term_check(m->data, m->len, 1, &end) == 0 && end == m->len)
		ei_x_append_buf(out, (const char *)m->data + 1, (int)m->len - 1);
	else
		ei_x_encode_binary(out, m->data, (int)m->len);
}

/*
 * Append to c's frames a REG_SEND of the encoded message out (version byte first) from
 * `from` to the registered name `name`: the distribution's pass-through framing that libei
 * itself writes (a 4-byte length, 'p', the control term {6, From, '', Name}, the message).
 * 0, or -ENOMEM.
 */
static int ob_append(struct gw_conn *c, const ei_x_buff *ctl, const ei_x_buff *out);

static int ob_reg_send(struct gw *g, struct gw_conn *c, const erlang_pid *from, const char *name,
		       const ei_x_buff *out)
{
	g->ctl.index = 0;
	if (ei_x_encode_version(&g->ctl) < 0 || ei_x_encode_tuple_header(&g->ctl, 4) < 0 ||
	    ei_x_encode_long(&g->ctl, ERL_REG_SEND) < 0 || ei_x_encode_pid(&g->ctl, from) < 0 ||
	    ei_x_encode_atom(&g->ctl, "") < 0 || ei_x_encode_atom(&g->ctl, name) < 0)
		return -ENOMEM;
	return ob_append(c, &g->ctl, out);
}

/* Append to c's frames one of control term ctl (version byte first) and message out (NULL:
 * none). 0, or -ENOMEM. */
static int ob_append(struct gw_conn *c, const ei_x_buff *ctl, const ei_x_buff *out)
{
	size_t need = 5 + (size_t)ctl->index + (out ? (size_t)out->index : 0);
	uint32_t len;

	if (c->olen + need > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 65536;
		char *b;

		while (cap < c->olen + need)
			cap *= 2;
		b = realloc(c->ob, cap);
		if (!b)
			return -ENOMEM;
		c->ob = b;
		c->ocap = cap;
	}
	len = htonl((uint32_t)(need - 4));
	memcpy(c->ob + c->olen, &len, 4);
	c->ob[c->olen + 4] = 'p';
	memcpy(c->ob + c->olen + 5, ctl->buff, (size_t)ctl->index);
	c->nout++;
	if (out)
		memcpy(c->ob + c->olen + 5 + ctl->index, out->buff, (size_t)out->index);
	c->olen += need;
	return 0;
}

/*
 * Write c's frames, waiting for room at most GW_IO_MS: one write for a round's messages
 * where each used to cost one. False (said, c closed) if they could not be written. Under mu
 * (a frame is never interleaved with another writer's).
 */
static bool ob_flush(struct gw *g, struct gw_conn *c)
{
	uint64_t dl = shm_now_ns() + (uint64_t)GW_IO_MS * 1000000u;
	size_t off = 0;

	while (off < c->olen) {
		ssize_t w = send(c->fd, c->ob + off, c->olen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
		uint64_t now;

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		now = shm_now_ns();
		if ((w < 0 && errno != EAGAIN) || now >= dl ||
		    poll(&pf, 1, (int)((dl - now) / 1000000u) + 1) < 0) {
			conn_close(g, c, "messages could not be sent in time");
			return false;
		}
	}
	c->olen = 0;
	return true;
}

/*
 * Start a gen_server call's message in out: its version byte and
 * {'$gen_call', {ReplyPid, {Kind, Seed, Id}}, ...}, the request to follow. Its answer comes
 * back to the reply pid (on_outreply()), told apart by Kind.
 */
static void gen_call_head(struct gw *g, ei_x_buff *out, const char *kind, uint64_t id)
{
	erlang_pid rp;

	reply_pid(g, &rp);
	out->index = 0;
	ei_x_encode_version(out);
	ei_x_encode_tuple_header(out, 3);
	ei_x_encode_atom(out, "$gen_call");
	ei_x_encode_tuple_header(out, 2);
	ei_x_encode_pid(out, &rp);
	ei_x_encode_tuple_header(out, 3);
	ei_x_encode_atom(out, kind);
	ei_x_encode_ulong(out, g->outcall_seed);
	ei_x_encode_ulonglong(out, id);
}

/*
 * Proxy p's monitor reference: this node's, numbered with the gateway's seed (a DOWN for an
 * earlier gateway's proxy is not ours) and p's handle.
 */
static void proxy_ref(struct gw *g, shoal_handle_t h, erlang_ref *ref)
{
	memset(ref, 0, sizeof(*ref));
	snprintf(ref->node, sizeof(ref->node), "%s", ei_self(&g->ec)->node);
	ref->creation = ei_self(&g->ec)->creation;
	ref->len = 3;
	ref->n[0] = g->outcall_seed & 0x3ffffu; /* the first number holds 18 bits */
	ref->n[1] = (uint32_t)h;
	ref->n[2] = (uint32_t)(h >> 32);
}

/*
 * Monitor the process registered as p's name on node c, from p's pid: a MONITOR_P by name,
 * as erlang:monitor(process, {Name, Node}) sends. Its DOWN (on_proxy_down()) ends p: at once
 * with noproc when nobody has the name, else when the process that has it exits. A BEAM node
 * answers it, and so does a shoal node's gateway (on_monitor_ctl()). Framed with the
 * round's other messages. Under mu.
 */
static int proxy_monitor_op(struct gw *g, struct gw_conn *c, struct gw_proxy *p, long op)
{
	erlang_pid pp;
	erlang_ref ref;

	agent_pid(g, p->slot, shoal_handle_gen(p->h), 0, &pp);
	proxy_ref(g, p->h, &ref);
	g->ctl.index = 0;
	if (ei_x_encode_version(&g->ctl) < 0 || ei_x_encode_tuple_header(&g->ctl, 4) < 0 ||
	    ei_x_encode_long(&g->ctl, op) < 0 || ei_x_encode_pid(&g->ctl, &pp) < 0 ||
	    ei_x_encode_atom(&g->ctl, p->name) < 0 || ei_x_encode_ref(&g->ctl, &ref) < 0)
		return -ENOMEM;
	return ob_append(c, &g->ctl, NULL);
}

static int proxy_resolve(struct gw *g, struct gw_conn *c, struct gw_proxy *p)
{
	p->asked = true;
	/* a node that does not offer monitors by name (another C node) would take one as
	 * garbage: the handle then hears only the connection's loss */
	p->monitored =
		dist_sock_offer_monitors && (dist_sock_peer_flags(c->fd) & DIST_DFLAG_MONITOR_NAME);
	return p->monitored ? proxy_monitor_op(g, c, p, DIST_OP_MONITOR_P) : 0;
}

/* Proxy p is ending on our side: its monitor on the node goes. Under mu. */
static void proxy_demonitor(struct gw *g, struct gw_proxy *p)
{
	struct gw_conn *c = conn_by_node(g, p->node);

	if (p->monitored && c)
		(void)proxy_monitor_op(g, c, p, DIST_OP_DEMONITOR_P);
}

/* The proxy whose handle is h, or NULL. Under mu. */
static struct gw_proxy *proxy_of(struct gw *g, shoal_handle_t h)
{
	for (uint32_t i = 0; h && g->nproxies && i < GW_MAX_PROXIES; i++)
		if (g->proxies[i].h == h)
			return &g->proxies[i];
	return NULL;
}

/*
 * A DOWN of a proxy's monitor (proxy_resolve()): DIST_OP_MONITOR_P_EXIT's elements
 * {Watched, Watcher, Ref, Reason} at b+i, checked whole. The proxy whose reference it is
 * ends, its DOWN reason from the exit's: noproc (nobody had the name), noconnection, normal
 * or shutdown (SHOAL_DOWN_STOPPED), anything else a crash. The main thread, under mu.
 */
static void on_proxy_down(struct gw *g, struct gw_conn *c, const char *b, int i, bool len_ok)
{
	char atom[MAXATOMLEN_UTF8] = "";
	erlang_pid watcher;
	erlang_ref ref;
	struct gw_proxy *p;
	shoal_handle_t h;
	uint32_t reason = SHOAL_DOWN_CRASH;

	if (ei_skip_term(b, &i) < 0 || ei_decode_pid(b, &i, &watcher) < 0 ||
	    ei_decode_ref(b, &i, &ref) < 0)
		return;
	if (ref.len != 3 || strcmp(ref.node, ei_self(&g->ec)->node) ||
	    ref.creation != ei_self(&g->ec)->creation || ref.n[0] != (g->outcall_seed & 0x3ffffu))
		return; /* not one of ours (or an earlier gateway's) */
	h = (shoal_handle_t)ref.n[1] | (shoal_handle_t)ref.n[2] << 32;
	p = proxy_of(g, h);
	if (!p)
		return;
	/* the reason was checked when it could be (a fun in it cannot): read only then */
	if (len_ok && ei_decode_atom(b, &i, atom) == 0) {
		if (!strcmp(atom, "noproc"))
			reason = SHOAL_DOWN_NOPROC;
		else if (!strcmp(atom, "noconnection"))
			reason = SHOAL_DOWN_NOCONNECTION;
		else if (!strcmp(atom, "normal") || !strcmp(atom, "shutdown"))
			reason = SHOAL_DOWN_STOPPED;
	} else if (len_ok) {
		int arity;

		/* {shutdown, Why}: an orderly stop, as OTP counts it */
		if (ei_decode_tuple_header(b, &i, &arity) == 0 && arity == 2 &&
		    ei_decode_atom(b, &i, atom) == 0 && !strcmp(atom, "shutdown"))
			reason = SHOAL_DOWN_STOPPED;
	}
	(void)c;
	proxy_end(g, p, reason);
}

/*
 * A proposal's vote asked of a remote member, as a gen_server call's request:
 * {shoal_vote, Name, Value, Version}, Name the variable's (a binary), Value the proposed
 * value (an integer, a float, or a binary for a blob), Version the one it started from.
 */
static void vote_request(ei_x_buff *out, const struct ipc_msg *m)
{
	struct ipc_vote_msg vm;
	const char *v = (const char *)m->data + sizeof(vm);

	memcpy(&vm, m->data, sizeof(vm));
	vm.name[sizeof(vm.name) - 1] = 0;
	if (vm.len > m->len - sizeof(vm))
		vm.len = 0;
	ei_x_encode_tuple_header(out, 4);
	ei_x_encode_atom(out, "shoal_vote");
	ei_x_encode_binary(out, vm.name, (long)strlen(vm.name));
	if (vm.type == SHOAL_VAR_INT && vm.len == 8) {
		int64_t x;

		memcpy(&x, v, 8);
		ei_x_encode_longlong(out, x);
	} else if (vm.type == SHOAL_VAR_DOUBLE && vm.len == 8) {
		double d;

		memcpy(&d, v, 8);
		ei_x_encode_double(out, d);
	} else {
		ei_x_encode_binary(out, v, vm.len);
	}
	ei_x_encode_ulonglong(out, vm.version);
}

/*
 * An allocation round's message to a remote member as a term: its ask as the request of a
 * gen_server call {shoal_demand, Resource, Capacity} (the reply: the units it wants), its
 * share as a cast {shoal_share, Resource, Share, Demand, Capacity}. Resource a binary.
 */
static void alloc_term(ei_x_buff *out, const struct ipc_msg *m, const char *kind)
{
	bool share = !strcmp(kind, "shoal_share");
	struct shoal_alloc_share sh = {0};
	struct shoal_alloc_ask ask;

	if (share) {
		memcpy(&sh, m->data, sizeof(sh));
		memcpy(ask.resource, sh.resource, sizeof(ask.resource));
		ask.capacity = sh.capacity;
	} else {
		memcpy(&ask, m->data, sizeof(ask));
	}
	ask.resource[sizeof(ask.resource) - 1] = 0;
	ei_x_encode_tuple_header(out, share ? 5 : 3);
	ei_x_encode_atom(out, kind);
	ei_x_encode_binary(out, ask.resource, (long)strlen(ask.resource));
	if (share) {
		ei_x_encode_ulonglong(out, sh.share);
		ei_x_encode_ulonglong(out, sh.demand);
	}
	ei_x_encode_ulonglong(out, ask.capacity);
}

/*
 * A subscribed variable's change (m: an IPC_T_VAR notice) as a cast's message in out:
 * {shoal_var, Name, Value, Version}, the variable read now (its newest), Name a binary,
 * Value an integer, a float or a binary. The notice is taken first: the next update
 * notifies again (N2, shm/varsub.c). False when there is nothing to say (the variable is
 * gone, or a prefix subscription's late notice names none). Under mu (g->buf).
 */
static bool var_note_term(struct gw *g, ei_x_buff *out, const struct ipc_msg *m)
{
	char name[SHOAL_NAME_MAX + 1];
	struct shoal_var_note n;
	struct shm_var_val v = {.buf = g->buf, .cap = g->max_msg};
	uint32_t ns, type;

	memcpy(&n, m->data, sizeof(n));
	shm_var_sub_taken(g->seg, m->ref);
	if (!n.var || shm_var_info(g->seg, n.var, &ns, name, sizeof(name), &type) ||
	    shm_var_read(g->seg, n.var, &v))
		return false;
	out->index = 0;
	ei_x_encode_version(out);
	ei_x_encode_tuple_header(out, 4);
	ei_x_encode_atom(out, "shoal_var");
	ei_x_encode_binary(out, name, (long)strlen(name));
	if (v.type == SHM_VAR_INT)
		ei_x_encode_longlong(out, v.num.i);
	else if (v.type == SHM_VAR_DOUBLE)
		ei_x_encode_double(out, v.num.d);
	else
		ei_x_encode_binary(out, g->buf, v.len);
	ei_x_encode_ulonglong(out, v.version);
	return true;
}

/*
 * Forward message m from proxy p's mailbox: a cast as a message to the registered name, a
 * call as a gen_server call whose reply comes back to the reply pid. False when p ended
 * meanwhile (its connection could not be made or was lost). The reply thread, under mu.
 */
static bool forward(struct gw *g, struct gw_proxy *p, const struct ipc_msg *m, ei_x_buff *out)
{
	shoal_handle_t h = p->h;
	struct gw_outcall *o = NULL;
	struct gw_conn *c = conn_to(g, p->node);
	erlang_pid from;
	bool vote, demand;

	if (p->h != h) /* ended while the connection was being made */
		return false;
	if (!c) {
		proxies_end_node(g, p->node);
		return false;
	}
	/* the sender's pid when it is an agent (an Erlang process may answer it), else ours */
	if (shoal_handle_slot(m->from) < shm_hdr(g->seg)->cfg.max_agents) {
		struct shm_agent *a = shm_agent_at(g->seg, shoal_handle_slot(m->from));

		agent_pid(g, shoal_handle_slot(m->from), shoal_handle_gen(m->from),
			  atomic_load_explicit(&a->restarts, memory_order_relaxed), &from);
	} else {
		from = *ei_self(&g->ec);
	}
	/* a subscribed variable's change goes as a term; the engine's other notices (a
	 * proposal's outcome to subscribers) mean nothing to a remote process */
	if ((m->flags & IPC_F_SYSTEM) && !(m->flags & IPC_F_ROUND)) {
		if (m->type != IPC_T_VAR || m->len < sizeof(struct shoal_var_note) ||
		    !var_note_term(g, out, m))
			return true;
		if (ob_reg_send(g, c, &from, p->name, out) < 0) {
			proxies_end_node(g, p->node);
			return false;
		}
		g->tl.dist_out++;
		return true;
	}
	/* a round's system message other than a whole vote is nothing a remote process could
	 * answer: it counts as dead there (shoal_remote_join()) */
	if ((m->flags & IPC_F_SYSTEM) && (m->flags & IPC_F_ROUND) &&
	    (m->type != IPC_T_VOTE || m->len < sizeof(struct ipc_vote_msg))) {
		ipc_round_answer(g->seg, m->ref, true);
		return true;
	}
	/* a proposal's vote: system-flagged, its length checked above (a user's message of that
	 * type is a user's message) */
	vote = (m->flags & IPC_F_SYSTEM) && (m->flags & IPC_F_ROUND) && m->type == IPC_T_VOTE;
	demand = (m->flags & IPC_F_ROUND) && m->type == SHOAL_T_ALLOC_ASK &&
		 m->len >= sizeof(struct shoal_alloc_ask);
	if (!(m->flags & IPC_F_CALL) && !vote && !demand) {
		out->index = 0;
		ei_x_encode_version(out);
	} else {
		for (uint32_t i = 0; i < GW_MAX_PENDING && !o; i++)
			if (!g->outcalls[i].id)
				o = &g->outcalls[i];
		if (!o) {
			say("call to '%s' on %s refused: %u calls in flight already", p->name,
			    p->node, GW_MAX_PENDING);
			if (vote || demand)
				ipc_round_answer(g->seg, m->ref, true);
			else
				ipc_send(g->seg, m->from, h, EBUSY, IPC_F_REPLY | IPC_F_ERROR,
					 m->ref, NULL, 0, 0);
			return true;
		}
		*o = (struct gw_outcall){.id = ++g->outcall_seq,
					 .ref = m->ref,
					 .caller = m->from,
					 .proxy = h,
					 .sent_ns = shm_now_ns()};
		snprintf(o->node, sizeof(o->node), "%s", p->node);
		g->noutcalls++;
		o->vote = vote;
		o->demand = demand;
		gen_call_head(g, out, "shoal", o->id); /* then Req */
	}
	if (o && o->vote)
		vote_request(out, m);
	else if (o && o->demand)
		alloc_term(out, m, "shoal_demand");
	else if (m->type == SHOAL_T_ALLOC && m->len >= sizeof(struct shoal_alloc_share))
		alloc_term(out, m, "shoal_share");
	else
		payload_term(out, m);
	if (ob_reg_send(g, c, &from, p->name, out) < 0) {
		/* the call just kept goes: the proxy's end refuses the message, still queued */
		if (o)
			outcall_forget(g, o);
		proxies_end_node(g, p->node);
		return false;
	}
	/* a group broadcast with acknowledgements: handed to the distribution, it is acked (as
	 * Erlang delivers: at most once; a lost connection may lose it); a vote is answered
	 * by its reply (on_outreply()) */
	if ((m->flags & IPC_F_ROUND) && !vote && !demand)
		ipc_round_answer(g->seg, m->ref, false);
	g->tl.dist_out++;
	return true;
}

/*
 * One round over the proxies: forward up to GW_PROXY_BATCH messages of each. How many were
 * forwarded. The reply thread.
 */
static uint32_t proxies_round(struct gw *g, ei_x_buff *out)
{
	/* G1 as in the worker's rescan: the slot writes before the bump */
	uint64_t gen = atomic_load_explicit(&shm_proc_at(g->seg, g->seg->self)->agents_gen,
					    memory_order_acquire);
	uint32_t done = 0;

	pthread_mutex_lock(&g->mu);
	if (gen != g->proxies_gen) {
		g->proxies_gen = gen;
		proxies_scan(g);
	}
	for (uint32_t i = 0; g->nproxies && i < GW_MAX_PROXIES; i++) {
		struct gw_proxy *p = &g->proxies[i];
		struct gw_conn *c;
		struct ipc_msg m;

		/* a new proxy: its node connected and its name monitored first (a name nobody
		 * has ends it: on_proxy_down()), before anything is forwarded */
		if (p->h && !p->asked) {
			shoal_handle_t h = p->h;

			c = conn_to(g, p->node);
			if (p->h != h)
				continue; /* ended while connecting */
			if (!c || proxy_resolve(g, c, p)) {
				proxies_end_node(g, p->node);
				continue;
			}
		}
		for (uint32_t k = 0; p->h && k < GW_PROXY_BATCH; k++) {
			if (ipc_mbox_peek(g->seg, p->slot, &m))
				break;
			if (!forward(g, p, &m, out))
				break; /* p ended: its mailbox went with it */
			ipc_mbox_consume(g->seg, p->slot, &m);
			done++;
			/* a long round: its frames written now rather than held (after the
			 * consume: a failed write answers the calls in them, once) */
			c = conn_by_node(g, p->node);
			if (c && c->olen >= GW_OB_FLUSH && !ob_flush(g, c))
				break;
		}
	}
	/* the round's frames, one write per connection */
	for (uint32_t i = 0; i < GW_MAX_CONNS; i++)
		if (g->conns[i].fd >= 0 && g->conns[i].olen)
			ob_flush(g, &g->conns[i]);
	pthread_mutex_unlock(&g->mu);
	return done;
}

/* The reply thread's wait: something in the inbox or a proxy's mailbox, or new proxies. */
static bool out_has_work(void *arg)
{
	struct gw *g = arg;
	bool work;

	if (ipc_mbox_has_msg(g->seg, shoal_handle_slot(g->inbox)))
		return true;
	/* relaxed: a hint; proxies_round() acquires it */
	if (atomic_load_explicit(&shm_proc_at(g->seg, g->seg->self)->agents_gen,
				 memory_order_relaxed) != g->proxies_gen)
		return true;
	if (pthread_mutex_trylock(&g->mu))
		return true; /* busy: look again */
	work = false;
	for (uint32_t i = 0; !work && g->nproxies && i < GW_MAX_PROXIES; i++)
		work = g->proxies[i].h && ipc_mbox_has_msg(g->seg, g->proxies[i].slot);
	pthread_mutex_unlock(&g->mu);
	return work;
}

/*
 * A message to the reply pid: {{shoal, Id}, Reply}, the answer to a call made for a shoal
 * caller (forward()): to that caller as the reply of its call, from the proxy, a binary's
 * bytes or the term flagged. The main thread, under mu.
 */
static void on_outreply(struct gw *g, struct gw_conn *c, const ei_x_buff *x)
{
	char atom[MAXATOMLEN_UTF8];
	unsigned long long id;
	unsigned long seed;
	struct gw_outcall *o = NULL;
	int i, start, end, arity;
	uint32_t flags;
	int64_t n;

	if (!term_of(c, "the gateway's reply pid", x, &start, &end))
		return;
	i = start;
	if (ei_decode_tuple_header(x->buff, &i, &arity) < 0 || arity != 2 ||
	    ei_decode_tuple_header(x->buff, &i, &arity) < 0 || arity != 3 ||
	    ei_decode_atom(x->buff, &i, atom) < 0 || strcmp(atom, "shoal") ||
	    ei_decode_ulong(x->buff, &i, &seed) < 0 || seed != g->outcall_seed ||
	    ei_decode_ulonglong(x->buff, &i, &id) < 0)
		return; /* not an answer of ours (or one to an earlier gateway's call) */
	for (uint32_t k = 0; id && k < GW_MAX_PENDING && !o; k++)
		if (g->outcalls[k].id == id)
			o = &g->outcalls[k];
	if (!o)
		return; /* forgotten: past its lifetime, or its caller was told of a lost link */
	if (o->vote) {
		/* yes (or true) votes for the proposal; any other answer against it */
		bool yes = ei_decode_atom(x->buff, &i, atom) == 0 &&
			   (!strcmp(atom, "yes") || !strcmp(atom, "true"));

		ipc_round_vote(g->seg, o->ref, yes);
		g->tl.dist_in++;
		outcall_forget(g, o);
		return;
	}
	if (o->demand) {
		/* a number of units reports a demand; any other answer none (left out) */
		unsigned long long d;

		if (ei_decode_ulonglong(x->buff, &i, &d) == 0 && d <= SHOAL_ALLOC_DEMAND_MAX)
			ipc_round_set_value(g->seg, o->ref, (uint32_t)d);
		ipc_round_answer(g->seg, o->ref, false);
		g->tl.dist_in++;
		outcall_forget(g, o);
		return;
	}
	n = payload_of(g, x->buff, i, end, &flags, c->node, "a shoal caller");
	if (n < 0) {
		outcall_fail(g, o, EMSGSIZE);
		return;
	}
	/* never waiting: a caller whose inbox is full times out, as on a lost reply */
	if (ipc_send(g->seg, o->caller, o->proxy, 0, IPC_F_REPLY | flags, o->ref, g->buf,
		     (uint32_t)n, 0) == 0)
		g->tl.dist_in++;
	else
		g->tl.dist_dropped++;
	outcall_forget(g, o);
}

/*
 * Answer ETIMEDOUT the calls made for shoal callers that had no reply in GW_OUTCALL_TTL_MS
 * (a name the node does not have is never answered: a caller without a timeout of its own
 * learns it so, and the table does not fill). Not the test hook's lifetime of calls into
 * shoal: a call out waits on a network round trip. Under mu.
 */
static void outcalls_expire(struct gw *g)
{
	uint64_t now = shm_now_ns(), ttl = (uint64_t)GW_OUTCALL_TTL_MS * 1000000u;

	for (uint32_t i = 0; g->noutcalls && i < GW_MAX_PENDING; i++) {
		const struct gw_outcall *o = &g->outcalls[i];
		uint64_t t = o->vote || o->demand ? (uint64_t)GW_ROUND_CALL_TTL_MS * 1000000u : ttl;

		if (o->id && now - o->sent_ns >= t)
			outcall_fail(g, &g->outcalls[i], ETIMEDOUT);
	}
}

/*
 * Acknowledge an UNLINK_ID {35, Id, From, To} with {36, Id, To, From} (the distribution's
 * unlink protocol; libei's own receive did this), Id as its bytes came (id, n). 0, or -1
 * when it could not be written at once.
 */
static int send_unlink_ack(int fd, const char *id, int n, const erlang_pid *from,
			   const erlang_pid *to)
{
	ei_x_buff x;
	uint32_t len;
	int r = -1;

	if (ei_x_new(&x) < 0)
		return -1;
	if (ei_x_append_buf(&x, "\0\0\0\0p", 5) == 0 && ei_x_encode_version(&x) == 0 &&
	    ei_x_encode_tuple_header(&x, 4) == 0 && ei_x_encode_long(&x, 36) == 0 &&
	    ei_x_append_buf(&x, id, n) == 0 && ei_x_encode_pid(&x, from) == 0 &&
	    ei_x_encode_pid(&x, to) == 0) {
		len = htonl((uint32_t)x.index - 4);
		memcpy(x.buff, &len, 4);
		r = send(fd, x.buff, (size_t)x.index, MSG_NOSIGNAL | MSG_DONTWAIT) == x.index ? 0
											      : -1;
	}
	ei_x_free(&x);
	return r;
}

/* The control tuple's elements on_frame() checks at most (a trace token form has 5). */
#define GW_CTL_ELEMS 6

/*
 * One message from connection c: p holds its len bytes after the length (the pass-through
 * byte, the control tuple, the message term if any). Decoded as libei's receive decodes it;
 * each element of the control tuple is walked (bounded: ei's decoders trust the lengths they
 * read) before it is decoded, and an operation's elements must all be there. An exit's or a
 * DOWN's reason is not walked (it may hold a fun, which the walk refuses; only its atom is
 * read, after its own check). The message term is checked where it is used (term_of()). A
 * peer that sends what is not the distribution's framing has its connection closed; a
 * control message that does not fit its operation is ignored (said at most once a second).
 * Under mu.
 */
static void on_frame(struct gw *g, struct gw_conn *c, const char *p, uint32_t len)
{
	static const uint8_t need[40] = {
		[ERL_LINK] = 3,
		[ERL_SEND] = 3,
		[ERL_EXIT] = 3,
		[ERL_UNLINK] = 3,
		[ERL_REG_SEND] = 4,
		[ERL_SEND_TT] = 4,
		[ERL_EXIT_TT] = 3,
		[ERL_REG_SEND_TT] = 5,
		[35] = 4,
		[DIST_OP_MONITOR_P] = 4,
		[DIST_OP_DEMONITOR_P] = 4,
		[DIST_OP_MONITOR_P_EXIT] = 4,
	};
	uint32_t at[GW_CTL_ELEMS + 1], arity, nok = 0, end;
	erlang_msg msg;
	ei_x_buff x = {0};
	int i;
	long op;

	if (len < 5 || p[0] != 'p' || (unsigned char)p[1] != 131 ||
	    ((unsigned char)p[2] != ERL_SMALL_TUPLE_EXT &&
	     (unsigned char)p[2] != ERL_LARGE_TUPLE_EXT) ||
	    (p[2] == ERL_LARGE_TUPLE_EXT && len < 8)) {
		conn_close(g, c, "it sent what is not a distribution message");
		return;
	}
	if ((unsigned char)p[2] == ERL_SMALL_TUPLE_EXT) {
		arity = (unsigned char)p[3];
		at[0] = 4;
	} else {
		memcpy(&arity, p + 3, 4);
		arity = ntohl(arity);
		at[0] = 7;
	}
	/* the elements, each walked, until one is not whole (an exit's reason may not be) */
	while (nok < arity && nok < GW_CTL_ELEMS && !dist_term_check(p, len, at[nok], &end))
		at[++nok] = end;
	c->nin++;
	i = (int)at[0];
	if (!nok || ei_decode_long(p, &i, &op) < 0) {
		conn_close(g, c, "it sent what is not a distribution message");
		return;
	}
	if (op < 0 || op >= (long)sizeof(need) || !need[op]) {
		/* exit/2 signals (agents take none), an unlink's ack (we send no unlinks),
		 * group leaders, and what a node sends only to one that offers more (spawns,
		 * aliases, payload exits, fragments): nothing to do */
		return;
	}
	if (nok < need[op] || arity < need[op] || arity > GW_CTL_ELEMS)
		goto bad;
	memset(&msg, 0, sizeof(msg));
	i = (int)at[1];
	/* a message term follows the whole control tuple (the message-bearing operations'
	 * elements were all walked: need[] is their arity, the trace token's form included) */
	if (nok == arity) {
		x.buff = (char *)p + at[nok];
		x.index = x.buffsz = (int)(len - at[nok]);
	}
	switch (op) {
	case ERL_SEND:	  /* {2, Cookie, ToPid} */
	case ERL_SEND_TT: /* {12, Cookie, ToPid, Token} */
		if (nok != arity || ei_skip_term(p, &i) < 0 || ei_decode_pid(p, &i, &msg.to) < 0)
			break;
		msg.msgtype = ERL_SEND;
		on_send(g, c, &msg, &x);
		return;
	case ERL_REG_SEND:    /* {6, From, Cookie, ToName} */
	case ERL_REG_SEND_TT: /* {16, From, Cookie, ToName, Token} */
		if (nok != arity || ei_decode_pid(p, &i, &msg.from) < 0 ||
		    ei_skip_term(p, &i) < 0 ||
		    ei_decode_atom_as(p, &i, msg.toname, sizeof(msg.toname), ERLANG_UTF8, NULL,
				      NULL) < 0)
			break;
		msg.msgtype = ERL_REG_SEND;
		on_reg_send(g, c, &msg, &x);
		return;
	case ERL_LINK: /* {1, From, To} */
		if (ei_decode_pid(p, &i, &msg.from) < 0 || ei_decode_pid(p, &i, &msg.to) < 0)
			break;
		msg.msgtype = ERL_LINK;
		on_link(g, c, &msg);
		return;
	case ERL_UNLINK:  /* {4, From, To} */
	case ERL_EXIT:	  /* {3, From, To, Reason}: the linked process ended */
	case ERL_EXIT_TT: /* {13, From, To, Token, Reason} */
		if (ei_decode_pid(p, &i, &msg.from) < 0 || ei_decode_pid(p, &i, &msg.to) < 0)
			break;
		on_unlink(g, &msg);
		return;
	case 35: /* UNLINK_ID {35, Id, From, To}: acknowledged, then as an unlink */
		i = (int)at[2];
		if (ei_decode_pid(p, &i, &msg.from) < 0 || ei_decode_pid(p, &i, &msg.to) < 0)
			break;
		if (send_unlink_ack(c->fd, p + at[1], (int)(at[2] - at[1]), &msg.to, &msg.from)) {
			conn_close(g, c, "an unlink could not be acknowledged");
			return;
		}
		on_unlink(g, &msg);
		return;
	default: /* the monitor operations: their elements after the operation */
		on_monitor_ctl(g, c, op, p + at[1], (int)(len - at[1]));
		return;
	}
bad:
	if (shm_now_ns() - g->last_bad_ns >= 1000000000ull) {
		say("a control message (operation %ld) from %s that does not fit its operation: "
		    "ignored (said at most once a second)",
		    op, c->node);
		g->last_bad_ns = shm_now_ns();
	}
}

/*
 * Whether c's buffer holds a whole message (or a tick, or the rest of one being read past),
 * so on_conn() has work without the socket being readable. Under mu.
 */
static bool conn_ready(const struct gw_conn *c)
{
	size_t have = c->rlen - c->roff;
	uint32_t len;

	if (c->fd < 0 || c->stall.data || !have)
		return false;
	if (c->skip)
		return true;
	if (have < 4)
		return false;
	memcpy(&len, c->rx + c->roff, 4);
	return have >= 4 + (size_t)ntohl(len);
}

/*
 * Connection c is readable, or its buffer holds messages: read what its socket has into the
 * buffer (many messages per read, where libei's receive took two reads and two selects for
 * each), then take whole messages from it, up to GW_READ_BATCH per round (the others get
 * their turn; serve() comes back at once while whole ones wait: conn_ready()). A tick is
 * answered; a part of a message waits for its rest without holding anything; a message
 * longer than max_message and GW_CTL_ROOM is read past (said); one whose mailbox is full
 * stalls the connection, the rest waiting in the buffer. Under mu.
 */
static void on_conn(struct gw *g, struct gw_conn *c)
{
	const int fd = c->fd;
	const uint64_t limit = (uint64_t)g->max_msg + GW_CTL_ROOM;
	uint32_t taken = 0, reads = 0;

	for (bool drained = false;;) {
		/* take what is whole */
		while (c->fd == fd && !c->stall.data && taken < GW_READ_BATCH) {
			size_t have = c->rlen - c->roff;
			uint32_t len;

			if (c->skip) {
				size_t k = have < c->skip ? have : (size_t)c->skip;

				c->roff += k;
				c->skip -= k;
				if (c->skip)
					break;
				continue;
			}
			if (have < 4)
				break;
			memcpy(&len, c->rx + c->roff, 4);
			len = ntohl(len);
			if (!len) {
				/* a tick: answered with one (four bytes: a socket that cannot take
				 * them now belongs to a stuck peer, which its silence will close;
				 * a part of them would break the stream) */
				ssize_t w =
					send(fd, c->rx + c->roff, 4, MSG_NOSIGNAL | MSG_DONTWAIT);

				c->roff += 4;
				taken++;
				if (w > 0 && w < 4) {
					conn_close(g, c, "a tick could not be answered whole");
					return;
				}
				continue;
			}
			if (len > limit) {
				g->tl.dist_dropped++;
				c->nin++;
				say("message from %s rejected: %u bytes, more than the instance's "
				    "max "
				    "message (%u bytes, [segment] max_message): read past",
				    c->node, len, g->max_msg);
				c->roff += 4;
				c->skip = len;
				continue;
			}
			if (have < 4 + (size_t)len) {
				/* room for the whole of it, read next (moved to the front first) */
				if (4 + (size_t)len > c->rcap - c->roff) {
					size_t cap = (4 + (size_t)len + 4095) & ~(size_t)4095;
					char *b;

					if (cap < GW_RX_MIN)
						cap = GW_RX_MIN;
					if (cap > c->rcap) {
						b = realloc(c->rx, cap);
						if (!b) {
							conn_close(g, c,
								   "no memory for its message");
							return;
						}
						c->rx = b;
						c->rcap = cap;
					}
				}
				break;
			}
			c->roff += 4 + (size_t)len;
			taken++;
			on_frame(g, c, c->rx + c->roff - len, len);
		}
		/* a peer that keeps the buffer full (or streams a message read past) gets
		 * GW_READ_BATCH reads a round, as it gets GW_READ_BATCH messages */
		if (c->fd != fd || c->stall.data || taken >= GW_READ_BATCH || drained ||
		    ++reads > GW_READ_BATCH)
			return;
		/* read more: what was taken goes from the buffer's front first */
		if (c->roff) {
			memmove(c->rx, c->rx + c->roff, c->rlen - c->roff);
			c->rlen -= c->roff;
			c->roff = 0;
		}
		if (!c->rcap) {
			c->rx = malloc(GW_RX_MIN);
			if (!c->rx) {
				conn_close(g, c, "no memory for its messages");
				return;
			}
			c->rcap = GW_RX_MIN;
		}
		{
			ssize_t n = recv(fd, c->rx + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);

			if (n == 0) {
				conn_close(g, c, "the peer closed it");
				return;
			}
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					conn_close(g, c, strerror(errno));
				return;
			}
			c->rx_ns = shm_now_ns();
			c->rlen += (size_t)n;
			/* the socket is empty for now unless the read filled the buffer */
			drained = c->rlen < c->rcap;
		}
	}
}

/*
 * A reply: {Tag, Reply} to its caller, Reply a binary (data) or {error, Errno}. The reply
 * thread, holding gw.mu.
 */
static void on_reply(struct gw *g, ei_x_buff *out, const struct gw_reply *h, const char *data)
{
	struct gw_call *call = NULL;
	struct gw_conn *c;
	uint32_t end;

	for (uint32_t i = 0; i < GW_MAX_PENDING && !call; i++)
		if (g->calls[i].ref == h->ref)
			call = &g->calls[i];
	if (!call)
		return; /* forgotten (its lifetime passed, its connection closed) */
	out->index = 0;
	ei_x_encode_version(out);
	ei_x_encode_tuple_header(out, 2);
	ei_x_append_buf(out, call->tag, call->taglen);
	if (h->err) {
		char atom[32];
		const char *e = strerrorname_np((int)h->err);

		snprintf(atom, sizeof(atom), "%s", e ? e : "eio");
		for (char *p = atom; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		ei_x_encode_tuple_header(out, 2);
		ei_x_encode_atom(out, "error");
		ei_x_encode_atom(out, atom);
	} else if (h->term && h->len >= 2 && (unsigned char)data[0] == 131 &&
		   dist_term_check(data, h->len, 1, &end) == 0 && end == h->len) {
		/* the agent's term itself, after its version byte */
		ei_x_append_buf(out, data + 1, (int)h->len - 1);
	} else {
		/* a binary; or a reply flagged as a term that is not one whole term */
		ei_x_encode_binary(out, data, (int)h->len);
	}
	c = conn_by_node(g, call->from.node);
	/* the caller's node is gone: the reply is lost, as Erlang would lose it */
	if (c && ei_send_tmo(c->fd, &call->from, out->buff, out->index, GW_IO_MS) < 0)
		conn_close(g, c, "a reply could not be sent in time");
	else if (c)
		g->tl.dist_out++, c->nout++;
	call_forget(g, call);
}

/*
 * Close the connections silent for longer than net_ticktime: a peer ticks every quarter of
 * it, so one that sent nothing for that long is gone (a partition, a stopped node), as a
 * BEAM node would judge it. A stalled connection is not being read: its silence is ours.
 */
static void conns_expire(struct gw *g)
{
	uint32_t tt = g->dc->ticktime_s ? g->dc->ticktime_s : 60;
	uint64_t now = shm_now_ns(), limit = (uint64_t)tt * 1000000000u;

	for (uint32_t i = 0; i < GW_MAX_CONNS; i++) {
		struct gw_conn *c = &g->conns[i];
		char why[96];

		if (c->fd < 0 || c->stall.data || now - c->rx_ns <= limit)
			continue;
		snprintf(why, sizeof(why), "silent for %.1f s (net_ticktime %u s)",
			 (double)(now - c->rx_ns) / 1e9, tt);
		conn_close(g, c, why);
	}
}

/* Forget the calls older than their lifetime; at most every tenth of it. */
static void calls_expire(struct gw *g)
{
	uint64_t now = shm_now_ns(), ttl = (uint64_t)g->call_ttl_ms * 1000000u;

	if (!g->ncalls || now - g->last_sweep_ns < ttl / 10)
		return;
	g->last_sweep_ns = now;
	for (uint32_t i = 0; i < GW_MAX_PENDING; i++) {
		struct gw_call *c = &g->calls[i];

		if (!c->ref || now - c->sent_ns < ttl)
			continue;
		say("call from %s to '%s': no reply in %u ms: forgotten (a late reply is dropped)",
		    c->from.node, c->name, g->call_ttl_ms);
		call_forget(g, c);
	}
}

/* The node and its connections into the segment's distribution table (SHM_R_DIST). */
static void dist_flush(struct gw *g, uint64_t now, bool final)
{
	struct shm_dist *d = &g->dist;

	d->flushed_ns = now;
	d->pid = (uint32_t)getpid();
	d->final = final;
	snprintf(d->node, sizeof(d->node), "%s", g->dc->node);
	d->nconns = 0;
	for (uint32_t i = 0; i < GW_MAX_CONNS && d->nconns < SHM_DIST_CONNS; i++) {
		const struct gw_conn *c = &g->conns[i];
		struct shm_dist_conn *o = &d->conns[d->nconns];
		int unsent = 0;

		if (c->fd < 0 || final)
			continue;
		memset(o, 0, sizeof(*o));
		/* an atom: at most 255 bytes (the field's 257 hold libei's MAXNODELEN) */
		snprintf(o->node, sizeof(o->node), "%.*s", (int)sizeof(o->node) - 1, c->node);
		o->outbound = c->outbound;
		o->stalled = c->stall.data != NULL;
		o->since_ns = c->since_ns;
		o->in = c->nin;
		o->out = c->nout;
		/* what the kernel has not sent yet (SIOCOUTQ), and what we hold for it */
		o->queued = c->olen;
		if (ioctl(c->fd, SIOCOUTQ, &unsent) == 0 && unsent > 0)
			o->queued += (uint64_t)unsent;
		d->nconns++;
	}
	shm_dist_publish(g->seg, d);
}

/*
 * The gateway's figures into its telemetry block (struct shm_telem's dist_* words), for
 * shoal inspect and shoal metrics: at most every GW_POLL_MS, or now when final. Under mu.
 */
static void telem_flush(struct gw *g, bool final)
{
	uint64_t now = shm_now_ns();

	if (!final && now - g->last_flush_ns < (uint64_t)GW_POLL_MS * 1000000u)
		return;
	g->last_flush_ns = now;
	g->tl.dist_conns = 0;
	g->tl.dist_stalled = 0;
	for (uint32_t i = 0; i < GW_MAX_CONNS; i++) {
		g->tl.dist_conns += g->conns[i].fd >= 0;
		g->tl.dist_stalled += g->conns[i].fd >= 0 && g->conns[i].stall.data;
	}
	g->tl.dist_links = g->nlinks;
	g->tl.dist_calls = g->ncalls;
	g->tl.handled = g->tl.dist_in;
	g->tl.flushed_ns = now;
	g->tl.pid = (uint32_t)getpid();
	g->tl.final = final;
	g->tl.flushes++;
	shm_telem_flush(g->seg, g->seg->self, &g->tl);
	dist_flush(g, now, final);
}

/* Serve until the instance stops (the reply pipe ends) or a signal ends the process. */
static int serve(struct gw *g)
{
	struct pollfd pf[GW_MAX_CONNS + 3]; /* the listener, the reply pipe, the wake pipe */
	struct gw_conn *of[GW_MAX_CONNS + 3];
	int ret = 0;

	for (;;) {
		nfds_t n = 0;
		int r, tmo = GW_POLL_MS;

		pthread_mutex_lock(&g->mu);
		pf[n++] = (struct pollfd){.fd = g->lfd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = g->pipe_rd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = g->wake_rd, .events = POLLIN};
		for (uint32_t i = 0; i < GW_MAX_CONNS; i++) {
			struct gw_conn *c = &g->conns[i];

			if (c->fd < 0)
				continue;
			if (c->stall.data) {
				stall_retry(g, c);
				/* still stalled: not read, tried again soon */
				if (c->stall.data)
					tmo = GW_STALL_RETRY_MS;
			}
			of[n] = c;
			pf[n++] =
				(struct pollfd){.fd = c->fd, .events = c->stall.data ? 0 : POLLIN};
			/* whole messages wait in its buffer: no sleep */
			if (conn_ready(c))
				tmo = 0;
		}
		/* calls in flight: wake in time to forget the unanswered ones */
		if ((g->ncalls || g->noutcalls) && (int)(g->call_ttl_ms / 10) + 1 < tmo)
			tmo = (int)(g->call_ttl_ms / 10) + 1;
		pthread_mutex_unlock(&g->mu);
		r = poll(pf, n, tmo);
		if (r < 0 && errno != EINTR) {
			say("poll: %s", strerror(errno));
			ret = 3;
			break;
		}
		/* the reply thread ended: the instance has stopped */
		if (r > 0 && (pf[1].revents & (POLLIN | POLLHUP)))
			break;
		/* a connection the reply thread made: polled from the next round */
		if (r > 0 && (pf[2].revents & POLLIN)) {
			char drain[64];

			(void)!read(g->wake_rd, drain, sizeof(drain));
		}
		pthread_mutex_lock(&g->mu);
		calls_expire(g);
		outcalls_expire(g);
		conns_expire(g);
		telem_flush(g, false);
		/* a connection the reply thread closed meanwhile has fd -1 (or another fd) now */
		for (nfds_t k = 3; r >= 0 && k < n; k++)
			if (of[k]->fd == pf[k].fd && !of[k]->stall.data &&
			    (pf[k].revents || conn_ready(of[k])))
				on_conn(g, of[k]);
		if (r > 0 && (pf[0].revents & POLLIN))
			on_accept(g);
		pthread_mutex_unlock(&g->mu);
	}
	return ret;
}

/* See dist.h. */
static int gateway_run(struct gw *g, const char *instance)
{
	const struct dist_conf *dc = g->dc;
	char cookie[DIST_COOKIE_MAX], why[384];
	int pfd[2], ret = 3;
	pthread_t th;

	/* a peer that closes its socket must cost its connection, not the process */
	signal(SIGPIPE, SIG_IGN);
	for (uint32_t i = 0; i < GW_MAX_CONNS; i++)
		g->conns[i].fd = -1;
	g->call_ttl_ms = GW_CALL_TTL_MS;
	pthread_mutex_init(&g->mu, NULL);
#ifdef SHOAL_TEST_HOOKS
	/* SHOAL_TEST_DIST_CALL_TTL_MS: a shorter call lifetime (tests/test_dist.c) */
	if (getenv("SHOAL_TEST_DIST_CALL_TTL_MS"))
		g->call_ttl_ms = (uint32_t)strtoul(getenv("SHOAL_TEST_DIST_CALL_TTL_MS"), NULL, 10);
	if (!g->call_ttl_ms)
		g->call_ttl_ms = GW_CALL_TTL_MS;
#endif
	if (dist_cookie_read(dc->cookie_file, cookie, sizeof(cookie), why, sizeof(why))) {
		say("%s", why);
		return 3;
	}
	if (ei_init() != 0) {
		say("ei_init failed");
		return 3;
	}
	if (node_setup(g, cookie))
		goto out;
	explicit_bzero(cookie, sizeof(cookie));
	/* after the registration: tools see the gateway RUNNING once Erlang can reach it */
	wrk_client_set_role(SHM_ROLE_GATEWAY);
	if (shoal_client_open(instance, &g->cl, why, sizeof(why))) {
		say("%s", why);
		goto out;
	}
	g->seg = wrk_client_seg(g->cl);
	g->inbox = shoal_client_inbox(g->cl);
	/* proxies handed to a gateway that is gone (one that died in a window no repair
	 * covered): ended before we take up ours */
	wrk_remote_sweep(g->seg);
	if (getrandom(&g->outcall_seed, sizeof(g->outcall_seed), 0) != sizeof(g->outcall_seed))
		g->outcall_seed = (uint32_t)(shm_now_ns() ^ (uint64_t)getpid() << 16);
	g->max_msg = shm_hdr(g->seg)->cfg.max_msg;
	g->buf = malloc(g->max_msg + 1);
	if (!g->buf || pipe2(pfd, O_CLOEXEC) < 0)
		goto out_client;
	g->pipe_rd = pfd[0];
	g->pipe_wr = pfd[1];
	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
		close(g->pipe_wr);
		goto out_pipe;
	}
	g->wake_rd = pfd[0];
	g->wake_wr = pfd[1];
	if (ei_x_new(&g->ctl) < 0) {
		close(g->pipe_wr);
		goto out_pipe;
	}
	if (pthread_create(&th, NULL, reply_thread, g)) {
		close(g->pipe_wr);
		goto out_pipe;
	}
	ret = serve(g);
	/* T0: release: pairs with T1: the thread ends within its wait's second */
	atomic_store_explicit(&g->stop, 1, memory_order_release);
	pthread_join(th, NULL);
	/* our proxies end with us (a death is the supervisor's to repair; this is an exit) */
	wrk_repair_remote(g->seg, g->seg->self);
	telem_flush(g, true);
	close(g->pipe_rd);
	goto out_client;
out_pipe:
	close(g->pipe_rd);
out_client:
	if (g->wake_rd >= 0) {
		close(g->wake_rd);
		close(g->wake_wr);
	}
	free(g->buf);
	for (uint32_t i = 0; i < GW_MAX_PENDING; i++)
		free(g->calls[i].tag);
	if (g->ctl.buff)
		ei_x_free(&g->ctl);
	for (uint32_t i = 0; i < GW_MAX_CONNS; i++)
		free(g->conns[i].ob);
	shoal_client_close(g->cl);
out:
	explicit_bzero(cookie, sizeof(cookie));
	for (uint32_t i = 0; i < GW_MAX_CONNS; i++) {
		if (g->conns[i].fd >= 0)
			ei_close_connection(g->conns[i].fd);
		free(g->conns[i].rx);
	}
	if (g->pubfd >= 0)
		close(g->pubfd);
	if (g->lfd >= 0)
		ei_close_connection(g->lfd); /* its socket callbacks' state goes too (sock.c) */
	return ret;
}

/* See dist.h: the gateway's state on the heap (its tables are several megabytes). */
int dist_gateway_main(const struct dist_conf *dc, const char *instance)
{
	struct gw *g = calloc(1, sizeof(*g));
	int ret;

	if (!g) {
		say("no memory for the gateway's tables (%zu bytes)", sizeof(*g));
		return 3;
	}
	/* field by field: a compound literal of this size could be built on the stack */
	g->dc = dc;
	g->lfd = g->pubfd = g->pipe_rd = g->pipe_wr = g->wake_rd = g->wake_wr = -1;
	ret = gateway_run(g, instance);
	free(g);
	return ret;
}
