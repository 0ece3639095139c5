/*
 * supervisor: what its own .c files share. The supervisor (sup_run.c) is split by concern:
 * the event loop (sup_loop.c), the worker state machine (sup_worker.c), the warm spare
 * (sup_spare.c), child processes and reaping (sup_child.c), the exit log (sup_exit.c) and
 * the periodic duties (sup_duty.c), agent pools (sup_pool.c). All of it runs on the supervisor's
 * only thread.
 */
#ifndef SUP_SUP_INT_H
#define SUP_SUP_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <hwloc.h>
#include <liburing.h>

#include "shm/event.h"
#include "shm/shm.h"
#include "shoal/shoal.h"
#include "supervisor/sup.h"
#include "workers/wrk.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define DW_WAITERS    0x80000000u /* FUTEX_WAITERS */
#define DW_OWNER_DIED 0x40000000u /* FUTEX_OWNER_DIED */
#define DW_TID_MASK   0x3fffffffu /* FUTEX_TID_MASK */

/* A worker's states in the supervisor (not the process slot's state word); sup_worker.c. */
enum sup_wstate {
	SUP_W_STARTING = 0, /* launched, waiting for its ready byte */
	SUP_W_RUNNING,	    /* ready, working */
	SUP_W_HUNG,	    /* killed by us for a stale heartbeat, waiting for the death */
	SUP_W_BACKOFF,	    /* dead, waiting out its restart delay */
	SUP_W_STOPPING,	    /* asked to stop (or killed), waiting for it to exit */
	SUP_W_CYCLING,	    /* stopping for a sibling's strategy: starts again once exited */
	SUP_W_EXITED,	    /* gone, not to be restarted */
	SUP_W_NSTATES,
};

/* What happens to a worker. */
enum sup_wevent {
	SUP_E_START = 0,     /* start it (the instance starts) */
	SUP_E_READY,	     /* its ready pipe delivered a byte */
	SUP_E_DIED,	     /* its pidfd became readable */
	SUP_E_DYING,	     /* its death word says it is exiting (before its pidfd does) */
	SUP_E_TIMER,	     /* the supervisor's timer fired: its deadline may have passed */
	SUP_E_STOP,	     /* stop it (orderly stop of the instance) */
	SUP_E_CYCLE,	     /* stop it and start it again (a sibling's restart strategy) */
	SUP_E_HANG,	     /* its heartbeat is older than the hang timeout */
	SUP_E_LAUNCH_FAILED, /* the launch the step asked for failed */
	SUP_E_NEVENTS,
};

/* What the dispatcher does for a step, in this order (sup_worker.c: deliver()). */
enum {
	SUP_A_REAP = 1u << 0,	       /* collect an unasked-for death: record, repair */
	SUP_A_REAP_STOPPED = 1u << 1,  /* collect a death we asked for */
	SUP_A_NOTICE = 1u << 2,	       /* death word: record its early status, repair; the
					* process is reaped later (zpid) */
	SUP_A_PRELAUNCH = 1u << 3,     /* with NOTICE: wake the spare as it before the repair */
	SUP_A_READY = 1u << 4,	       /* publish its placement; the instance ready if all are */
	SUP_A_GIVE_UP = 1u << 5,       /* intensity exceeded: say so, stop the instance */
	SUP_A_STRATEGY = 1u << 6,      /* queue CYCLE for the siblings the strategy names */
	SUP_A_COUNT_RESTART = 1u << 7, /* count a restart (tools, status line) */
	SUP_A_BACKOFF = 1u << 8,       /* set the restart deadline */
	SUP_A_ASK_STOP = 1u << 9,      /* orderly stop: slot STOPPING, ring it, stop deadline */
	SUP_A_KILL = 1u << 10,	       /* SIGKILL (not ready: no orderly stop), stop deadline */
	SUP_A_KILL_LATE = 1u << 11,    /* missed its deadline: say so, SIGKILL */
	SUP_A_KILL_HUNG = 1u << 12,    /* SIGKILL (the hang check said why) */
	SUP_A_LAUNCH = 1u << 13,       /* start a process: the spare or a fork */
	SUP_A_ABORT = 1u << 14,	       /* a launch failed: every worker stops, the run fails */
};

/* The side conditions a step depends on, established by the dispatcher. */
struct sup_wfacts {
	bool exceeded; /* a crash: counting it exceeded the restart intensity */
	bool backoff;  /* a crash: its restart has to wait out a delay */
	bool due;      /* TIMER: the worker's deadline has passed */
	bool stopping; /* the instance is stopping */
};

/* A step: the state to go to and the SUP_A_* actions to take. */
struct sup_wstep {
	enum sup_wstate next;
	uint32_t actions;
};

/* One queued event (sup_worker_post()). */
struct sup_wqev {
	uint32_t windex;
	uint32_t ev; /* enum sup_wevent */
};

/*
 * Events queued by actions, delivered after the one being delivered. Bound: one drain
 * starts with one event; only a crash queues CYCLE for n - 1 siblings, and the instance's
 * stop (give up or a failed launch, once per run) queues STOP for n; STOP and CYCLE queue
 * nothing. So 2n + 2 entries are enough.
 */
struct sup_wqueue {
	struct sup_wqev *ev;
	uint32_t cap;
	uint32_t head; /* next to deliver; free-running */
	uint32_t tail; /* next free; free-running */
	bool draining; /* a sup_worker_post() is delivering: others only queue */
};

/* io_uring user_data: kind in the top byte, worker index, launch generation. */
enum { K_PID = 1, K_READY = 2, K_SIG = 3, K_TIMER = 4, K_DYING = 5, K_CTL = 6, K_SPARE = 7 };
enum { K_GATEWAY = 8 }; /* the [dist] gateway's pidfd (sup_gateway.c) */
#define UD(kind, w, gen) (((uint64_t)(kind) << 56) | ((uint64_t)(w) << 32) | (uint32_t)(gen))
#define UD_KIND(u)	 ((uint32_t)((u) >> 56))
#define UD_W(u)		 ((uint32_t)(((u) >> 32) & 0xffffffu))
#define UD_GEN(u)	 ((uint32_t)(u))

#define TICK_NS		  100000000ull /* heartbeat and client scan period */
#define SPARE_DELAY_NS	  5000000ull   /* from a worker ready to the next spare fork */
#define SPARE_BACKOFF_MAX 8u	       /* spares dying in a row: the delay doubles up to 256x */
#define REASONS_MAX	  4u

struct sup_worker {
	uint32_t state;	 /* enum sup_wstate */
	uint32_t windex; /* worker index */
	uint32_t slot;	 /* process slot: windex + 1 */
	uint32_t gen;	 /* launches so far; tags io_uring requests */
	pid_t pid;	 /* current (or last) process */
	int pidfd;	 /* -1 when none */
	int ready_rd;	 /* read end of its ready pipe, -1 when none */
	/* a process replaced on its death notice, still exiting: reaped when its pidfd fires */
	pid_t zpid;
	int zpidfd; /* -1 when none */
	uint32_t zgen;
	struct sup_place place;
	int cap_mech;	      /* enum sup_cap_mech */
	uint64_t oom_base;    /* memory.events oom_kill count at launch */
	uint64_t ready_ns;    /* when it became ready (monotonic), 0 not yet */
	uint64_t deadline_ns; /* starting: ready by; backoff: restart at; stopping: kill at */
	uint32_t streak;      /* consecutive crashes */
	bool prelaunched; /* sup_child_launch_prep() done and a spare woken ahead of the repair */
	bool ever_ready;
	bool boosted; /* pid was started at SCHED_FIFO (sup_child_boost()), not yet set back */
	uint64_t restart_t0; /* a restart counted at this time (monotonic), not yet ready; 0 none */
	uint32_t nreasons;   /* exits remembered for the intensity message */
	char reasons[REASONS_MAX][64];
};

struct sup_spare {
	pid_t pid; /* 0: none */
	int pidfd;
	int go_wr;	 /* write a struct spare_go here to make it a worker */
	int ready_rd;	 /* its ready pipe, handed to the worker it becomes */
	uint32_t gen;	 /* tags the watch on its pidfd; bumped when it is taken or dropped */
	uint32_t deaths; /* spares that died (or were dropped as stopped) since one was taken */
};

/*
 * The Erlang distribution gateway ([dist], sup_gateway.c): a child of its own, not a worker
 * (it hosts no agents: a client of ours), watched by its pidfd and restarted with the
 * [restart] backoff when it dies; its restarts are not counted against the intensity, so a
 * gateway in a crash loop costs the distribution, never the local agents.
 */
struct sup_gateway {
	pid_t pid;	     /* 0: none running */
	int pidfd;	     /* -1 when none */
	uint32_t gen;	     /* tags the watch on its pidfd */
	uint32_t streak;     /* deaths in a row (reset once it has lived a period) */
	uint64_t start_at;   /* when to start it (monotonic ns), 0: not due */
	uint64_t started_ns; /* when the current one started */
	uint64_t restarts;   /* for the status line and tests */
};

struct sup {
	const struct sup_config *c;
	const struct sup_run_opts *o;
	struct shm_seg *seg;
	hwloc_topology_t topo;
	struct io_uring ring;
	int sfd;    /* signalfd */
	uint32_t n; /* workers */
	struct sup_worker *w;
	struct sup_intensity in;
	struct sup_spare spare; /* a warm spare process, forked ahead of need */
	bool stopping;		/* orderly stop in progress */
	bool ready_sent;
	int ready_fd;
	int result;	    /* sup_run()'s: 0, SUP_RUN_INTENSITY or -errno */
	uint32_t timer_seq; /* tags the newest timer request */
	uint64_t timer_at;  /* deadline of the newest pending timer, 0 none */
	uint64_t next_tick;
	uint64_t next_status;
	uint64_t restarts; /* total, for the status line */
	uint64_t start_ns; /* when sup_run() began (monotonic), for the banner's time to ready */
	/*
	 * Messages handled, a running total that never goes back: an agent slot's count is
	 * reset when the slot is reused, so each slot's last seen (gen, handled) is kept and only
	 * what it gained since is added (sup_handled_count()).
	 */
	uint64_t handled;
	struct sup_seen {
		uint32_t gen;	  /* the slot's generation when last seen */
		uint64_t handled; /* its handled then */
	} * seen;		  /* one per agent slot */
	bool no_dying;		  /* io_uring FUTEX_WAIT refused: death notices by pidfd only */
	bool idle_spare;	  /* spares prepare at SCHED_IDLE (we may set them back) */
	bool boost;		  /* a spare taking over starts at SCHED_FIFO (until it fails) */
	uint64_t spare_at;	  /* when to fork the next spare (monotonic ns), 0: not due */

	struct sup_ctl *ctl;   /* the control inbox: spawn/stop requests (control.c) */
	uint32_t pool_rr;      /* round robin of pool members over workers (sup_pool.c) */
	struct sup_wqueue q;   /* worker events queued by actions (sup_worker_post()) */
	struct sup_gateway gw; /* the [dist] gateway */
	struct sup_slo *slo;   /* the live latency checks ([slo], sup_slo.c), NULL none */
};

static inline struct shm_proc *sup_wproc(struct sup *s, struct sup_worker *w)
{
	return shm_proc_at(s->seg, w->slot);
}

static inline int sup_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static inline int sup_pidfd_kill(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* What a spare did ahead of need, handed to the worker it becomes. */
struct spare_prep {
	uint64_t start_time;	   /* its /proc starttime */
	struct ipc_waiter *waiter; /* its wakeup ring, not yet on a process slot */
	bool boosted;		   /* started at SCHED_FIFO (sup_child_boost()) */
};

static inline uint64_t sup_now(void)
{
	return shm_now_ns();
}

/* sup_loop.c: the event loop */
void sup_arm_poll(struct sup *s, int fd, uint64_t ud);
void sup_arm_dying(struct sup *s, struct sup_worker *w);
int sup_signals_setup(struct sup *s, sigset_t *old);
int sup_loop_run(struct sup *s);

/* sup_worker.c: the worker state machine */
/*
 * The transition function: from state st, event ev with facts f, the next state and the
 * SUP_A_* actions. Pure; the table is in sup_worker.c. Any thread.
 */
struct sup_wstep sup_worker_step(enum sup_wstate st, enum sup_wevent ev,
				 const struct sup_wfacts *f);
/* Whether ev in st is an unasked-for death the step counts (facts exceeded, backoff). Pure. */
bool sup_wevent_is_crash(enum sup_wstate st, enum sup_wevent ev);
/* The state's name ("starting", ...). Pure. */
const char *sup_wstate_name(enum sup_wstate st);
/*
 * Deliver ev to w, and every event the actions queue, one at a time. From an action it only
 * queues. Supervisor thread only.
 */
void sup_worker_post(struct sup *s, struct sup_worker *w, enum sup_wevent ev);
void sup_stop_begin(struct sup *s);

/* sup_spare.c: the warm spare */
void sup_spare_fork(struct sup *s);
void sup_spare_drop(struct sup *s);
void sup_spare_schedule(struct sup *s);
void sup_spare_died(struct sup *s);
bool sup_spare_take(struct sup *s, struct sup_worker *w);
void sup_spare_prelaunch(struct sup *s, struct sup_worker *w);

/* sup_child.c: child processes, launch and reaping */
void sup_child_prepare(struct shm_seg *seg, pid_t parent);
void __attribute__((noreturn))
sup_child_become(struct sup *s, struct sup_worker *w, int wr, const struct spare_prep *prep);
void sup_child_pre_bind(struct sup *s, struct sup_worker *w, pid_t pid);
bool sup_child_boost(struct sup *s, pid_t pid);
void sup_child_launch_prep(struct sup *s, struct sup_worker *w);
int sup_child_launch(struct sup *s, struct sup_worker *w);
void sup_slot_repair(struct sup *s, struct sup_worker *w);
void sup_child_reap(struct sup *s, struct sup_worker *w, bool asked_to_stop, bool hung);
void sup_zombie_reap(struct sup *s, struct sup_worker *w);

/* sup_exit.c: the exit log */
void sup_exit_note_reason(struct sup_worker *w, const struct shm_proc *p);
bool sup_exit_is_oom(struct sup *s, struct sup_worker *w);
void sup_exit_record(struct sup *s, struct sup_worker *w, pid_t pid, uint32_t epoch, int status,
		     bool asked_to_stop, bool hung, int oom, bool again);
int sup_exit_wait_status(const siginfo_t *si);
uint32_t sup_exit_owner_epoch(struct sup *s, struct sup_worker *w, pid_t pid);
int sup_exit_early_status(pid_t pid);
void sup_exit_event(struct sup *s, struct sup_worker *w, int64_t restart_ms);
/*
 * Append an event of kind about worker w (NULL: none; its index and process slot) and pid to
 * the segment's event ring, text from fmt; ex (NULL: none) gives reason, code, signal and the
 * rest. Best effort. Supervisor thread only (sup_exit.c).
 */
void sup_event(struct sup *s, struct sup_worker *w, enum shm_event_kind kind, pid_t pid,
	       const struct shm_event *ex, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* sup_slo.c: the live latency checks ([slo] budgets, --budgets) */
/*
 * Load the configured budgets file and take the histograms' first snapshot (the first
 * window's start); everything the checks use is allocated here. Nothing to do (0, s->slo
 * NULL) without a budgets file. Returns 0, or -errno with a sentence in err. Supervisor
 * thread, once the segment is created and before the loop.
 */
int sup_slo_open(struct sup *s, char *err, size_t errlen);
/*
 * If an [slo] interval has passed since the last check: check the budgets over the window
 * since then, and append an slo-violation event and write a console line for each broken
 * one (a line when one is met again). Never waits, allocates nothing. Supervisor thread, on
 * its timer (sup_duty_tick()); t is now (monotonic).
 */
void sup_slo_tick(struct sup *s, uint64_t t);
/* Free what sup_slo_open() allocated (s->slo NULL is fine). Supervisor thread. */
void sup_slo_close(struct sup *s);

/* sup_duty.c: periodic duties */
void sup_clients_scan(struct sup *s, bool judge);
void sup_status_print(struct sup *s);
void sup_banner_print(struct sup *s);
void sup_handled_count(struct sup *s);
void sup_stop_print(struct sup *s);
void sup_duty_tick(struct sup *s);

/*
 * notify.c: systemd's readiness protocol. sup_notify_init() reads and removes
 * $NOTIFY_SOCKET (0 without it: then sup_notify() does nothing); sup_notify() sends one
 * printf-formatted message ("READY=1\nSTATUS=..."), saying a failure once on stderr.
 */
int sup_notify_init(void);
void sup_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sup_notify_close(void);

/*
 * sup_gateway.c: the [dist] gateway. init: before the loop (nothing runs yet); tick: on the
 * timer, starts it once the instance is ready and restarts it when due; died: its pidfd
 * fired; stop: at the end of the run (SIGTERM, then SIGKILL). Supervisor thread only.
 */
void sup_gateway_init(struct sup *s);
void sup_gateway_tick(struct sup *s);
void sup_gateway_died(struct sup *s);
void sup_gateway_stop(struct sup *s);

/* sup_pool.c */
int sup_pools_start(struct sup *s);
void sup_pools_serve(struct sup *s);

#endif
