/*
 * supervisor: the run configuration, placement, memory caps, restart policy and the
 * supervisor loop that forks, watches, repairs and restarts workers.
 *
 * Callers: the `shoal run` tool (one supervisor per instance) and the tests.
 */
#ifndef SUP_SUP_H
#define SUP_SUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dist/dist.h"
#include "shm/layout.h"
#include "shoal/shoal.h"

#define SUP_MAX_AGENT_SPECS 64u
#define SUP_MAX_WORKERS	    1024u
#define SUP_MAX_CPUS	    1024u
#define SUP_PATH_MAX	    256u
#define SUP_MAX_LIBS	    8u

/* [slo] interval: the checks run on the supervisor's 100 ms tick, so no oftener */
#define SUP_SLO_MIN_INTERVAL_MS 100u

/* Restart strategies (OTP's names). */
enum sup_strategy {
	SUP_ONE_FOR_ONE = 0,  /* restart only the worker that died */
	SUP_ONE_FOR_ALL = 1,  /* stop and restart every worker */
	SUP_REST_FOR_ONE = 2, /* stop and restart the dead worker and those started after it */
};

/* Placement policies. */
enum sup_placement {
	SUP_PLACE_SPREAD = 0, /* round robin over NUMA nodes, then cores; bind each worker */
	SUP_PLACE_NONE = 1,   /* no binding */
};

/* One [agent NAME] section: `count` agents of `type`, named from `pattern`. */
struct sup_agent_spec {
	char section[64]; /* the section's NAME, for messages */
	char type[SHM_TYPE_MAX];
	char pattern[64]; /* printf pattern with one %u/%d (e.g. "tuner-%03u"), or a name */
	uint32_t count;	  /* agents to start */
	int32_t worker;	  /* worker index, -1: spread round robin */
	int line;	  /* line of the section's first key, for messages */
	int worker_line;  /* line of its worker key */
};

/* One [pool NAME] section: a pool of `size` agents of `type`, `overflow` more on demand. */
struct sup_pool_spec {
	char name[48]; /* the pool's (and section's) NAME */
	char type[SHM_TYPE_MAX];
	uint32_t size;	   /* agents spawned at start (default 1) */
	uint32_t overflow; /* more spawned while checkouts wait (default 0) */
	int line;	   /* line of the section's first key */
};
#define SUP_MAX_POOL_SPECS 64u

/*
 * The restart policy, stated: at most `intensity` restarts in any `period_ms` window over
 * the whole supervisor, else stop everything and exit non-zero. Between consecutive
 * crashes of one worker the delay grows from backoff_initial_ms by backoff_factor up to
 * backoff_max_ms; the first restart of a streak is immediate unless backoff_first. A
 * worker that stays up for period_ms ends its streak.
 */
struct sup_policy {
	uint32_t strategy;	     /* enum sup_strategy */
	uint32_t intensity;	     /* R: restarts allowed in a window */
	uint32_t period_ms;	     /* P: the window */
	uint32_t backoff_initial_ms; /* first delayed restart */
	uint32_t backoff_max_ms;     /* cap on the delay */
	uint32_t backoff_factor;     /* growth per consecutive crash */
	bool backoff_first;	     /* delay the first restart of a streak too */
	uint32_t hang_ms;	     /* a running worker whose heartbeat is older is killed
				      * and restarted (reason "hang"); 0: never */
};

/* Everything `shoal run` is configured with. */
struct sup_config {
	char source[SUP_PATH_MAX]; /* file name, or "<default>" */
	char instance[SHM_INSTANCE_MAX];
	uint32_t workers;	     /* 0: one per usable core */
	char cpus[256];		     /* cpu list ("0-3,6"); empty: all */
	int cpus_line;		     /* its line, 0: not from the file (--cpus or none) */
	uint32_t placement;	     /* enum sup_placement */
	uint64_t mem_cap;	     /* bytes per worker, 0 none */
	char cgroup[SUP_PATH_MAX];   /* delegated cgroup v2 directory; empty: setrlimit */
	int cgroup_line;	     /* its line */
	uint32_t stop_timeout_ms;    /* orderly stop, then SIGKILL */
	uint32_t ready_timeout_ms;   /* a worker not ready by then is killed */
	uint32_t status_interval_ms; /* status line period, 0 none */
	bool spare;		     /* keep a pre-forked warm spare for restarts */
	struct sup_policy policy;
	struct shm_cfg shm;		       /* segment sizes */
	bool shared_with_group;		       /* [segment] opt-in: mode may grant the group */
	int mode_line;			       /* line of [segment] mode, 0 none */
	int max_procs_line;		       /* line of [segment] max_procs, 0 none */
	int max_agents_line;		       /* line of [segment] max_agents, 0 none */
	int reg_capacity_line;		       /* line of [segment] registry_capacity, 0 none */
	uint64_t seg_max;		       /* [segment] max_size in bytes, 0: half the RAM */
	int seg_max_line;		       /* its line, 0 none */
	uint32_t nlibs;			       /* used entries of libs[] */
	char libs[SUP_MAX_LIBS][SUP_PATH_MAX]; /* [types] load = PATH: agent type libraries */
	int lib_lines[SUP_MAX_LIBS];	       /* their lines, for messages */
	uint32_t nagents;		       /* used entries of agents[] */
	struct sup_agent_spec agents[SUP_MAX_AGENT_SPECS];
	uint32_t npools; /* used entries of pools[] */
	struct sup_pool_spec pools[SUP_MAX_POOL_SPECS];
	struct dist_conf dist; /* [dist]: the Erlang distribution gateway (dist/) */

	/* [slo] (or --budgets): the supervisor's live latency checks (supervisor/sup_slo.c) */
	char slo_budgets[SUP_PATH_MAX]; /* the budgets file, "" none */
	int slo_budgets_line;		/* its line, 0: --budgets */
	uint32_t slo_interval_ms;	/* between checks, at least SUP_SLO_MIN_INTERVAL_MS */

	char text[2048]; /* the config text (for the segment header) */
};

/* The embedded default configuration's text. */
extern const char sup_default_config[];

/* Defaults before any file is read. */
void sup_config_init(struct sup_config *c);
/*
 * Parse a config file (path) or, with path NULL, the embedded default, on top of
 * sup_config_init(). Returns 0, or -EINVAL with "file:line: message" in err, or -errno
 * (-ENOENT ...) when the file cannot be read. Nothing is started. Any thread.
 */
int sup_config_load(struct sup_config *c, const char *path, char *err, size_t errlen);
/* Same, from a string; `name` is used in messages. */
int sup_config_parse_string(struct sup_config *c, const char *name, const char *text, char *err,
			    size_t errlen);

/* What sup_config_check() worked out about a config on this machine. */
struct sup_config_facts {
	uint32_t workers;  /* workers it would run (the configured count, or the usable cores) */
	uint64_t seg_size; /* bytes of the segment it would create */
	uint64_t seg_max;  /* the ceiling: [segment] max_size, or half the RAM */
	uint64_t shm_free; /* bytes free in /dev/shm now */
};

/*
 * The checks `shoal run` and `shoal run --check` both make, after the file is parsed and
 * the command line applied, so a config that passes --check does not fail at start for a
 * config reason: the whole-file checks again (options may change workers), then against
 * this machine: the cpus exist, the workers (counted as run counts them) fit max_procs,
 * the agents and the control inbox fit max_agents, each agent type is known, the cgroup is
 * in a cgroup v2 filesystem, and the segment fits [segment] max_size and /dev/shm's free
 * space. It learns the type names of each [types] library by loading it in a child
 * process (wrk_types_declare()), never in this one: the workers load them. Returns 0,
 * -EINVAL (a bad config) with "file:line: message" (or "file: message") in err, -ENOSPC
 * (the segment is larger than /dev/shm's free space: a bad config for --check, a system
 * failure at start), or -ENOMEM / -ENODEV (hwloc cannot read the machine) with a message
 * too; facts (may be NULL) is filled as far as the checks got. The tool's main thread
 * (the type tables are not thread-safe).
 */
int sup_config_check(const struct sup_config *c, struct sup_config_facts *facts, char *err,
		     size_t errlen);
/* Parse a cpu list "0-3,6" into a bitmap of SUP_MAX_CPUS bits. 0 or -EINVAL. */
int sup_cpulist_parse(const char *s, uint64_t set[SUP_MAX_CPUS / 64]);
/* Parse a byte size "512M", "2G", "4096". 0 or -EINVAL. */
int sup_size_parse(const char *s, uint64_t *out);
/* Format a byte count in binary units with one decimal ("64.0 TiB", "512 bytes"); buf. */
const char *sup_size_format(uint64_t b, char *buf, size_t cap);
/* Format agent number i of spec into name (its pattern). 0 or -ENAMETOOLONG. */
int sup_agent_name(const struct sup_agent_spec *s, uint32_t i, char *name, size_t cap);
const char *sup_strategy_name(uint32_t s);

/* --- placement (supervisor/placement.c) --- */

/* One usable core: the OS index of its first PU, and its NUMA node's OS index. */
struct sup_core {
	int32_t cpu;
	int32_t node;
};

/* Where one worker runs. */
struct sup_place {
	int32_t core; /* OS cpu index, -1 unbound */
	int32_t node; /* NUMA node OS index, -1 unknown */
};

/*
 * The pure placement function: given the usable cores (any order), place n workers
 * round robin over NUMA nodes (in node order), then over the cores of each node (in
 * cpu order); past one worker per core it wraps. Returns the number of distinct nodes
 * used, or -EINVAL when there are no cores. Any thread.
 */
int sup_place_compute(const struct sup_core *cores, uint32_t ncores, uint32_t n,
		      struct sup_place *out);

struct hwloc_topology;
/*
 * The usable cores of a topology, restricted to `allowed` (a SUP_MAX_CPUS-bit set of
 * OS cpu indexes; NULL: all). Returns how many were written (at most cap), -ENOENT if none.
 */
int sup_topo_cores(struct hwloc_topology *topo, const uint64_t *allowed, struct sup_core *out,
		   uint32_t cap);
/* Bind the calling process to a cpu and its memory to a node (-1: skip). 0 or -errno. */
int sup_place_bind(struct hwloc_topology *topo, const struct sup_place *p);
/* mbind [addr, addr+len) to node; page-aligns inward. 0 or -errno. Supervisor. */
int sup_mem_bind_node(void *addr, size_t len, int node);

/* --- memory caps (supervisor/caps.c) --- */

enum sup_cap_mech {
	SUP_CAP_NONE = 0,
	SUP_CAP_RLIMIT = 1,
	SUP_CAP_CGROUP = 2,
};

/*
 * Prepare the cap for worker windex in the parent: with a configured cgroup, create
 * <cgroup>/worker-<windex> and write memory.max, memory.swap.max=0, memory.oom.group=1.
 * Returns the mechanism that will be used (enum sup_cap_mech) or -errno.
 */
int sup_cap_prepare(const struct sup_config *c, uint32_t windex);
/* In the forked child: join the cgroup or set RLIMIT_DATA. 0 or -errno. */
int sup_cap_apply_child(const struct sup_config *c, uint32_t windex, int mech);
/*
 * In the forked child, once it joined: a read-only descriptor of its worker cgroup's
 * memory.current, which the worker samples into its telemetry; -1 without a cgroup (or if
 * the file cannot be opened: the worker then records 0).
 */
int sup_cap_open_current(const struct sup_config *c, uint32_t windex, int mech);
/* The worker cgroup's memory.events oom_kill count (0 without a cgroup). */
uint64_t sup_cap_oom_kills(const struct sup_config *c, uint32_t windex, int mech);

/* --- restart policy (supervisor/policy.c) --- */

/* The last intensity+1 restart times, to tell whether more than R fell within P. */
struct sup_intensity {
	uint64_t *t;   /* ring of CLOCK_MONOTONIC ns */
	uint32_t cap;  /* intensity + 1 */
	uint32_t n;    /* entries used */
	uint32_t next; /* where the next one goes */
};

/* Size the history for p->intensity. 0 or -ENOMEM. */
int sup_intensity_init(struct sup_intensity *in, const struct sup_policy *p);
void sup_intensity_free(struct sup_intensity *in);
/* Record a restart at now_ns. */
void sup_intensity_note(struct sup_intensity *in, uint64_t now_ns);
/* More than intensity restarts within period_ms, counting the last one noted? */
bool sup_intensity_is_exceeded(const struct sup_intensity *in, const struct sup_policy *p);
/*
 * Delay before restarting a worker whose crash streak (consecutive crashes, counting this
 * one; >= 1) is `streak`: 0 for the first unless backoff_first, then backoff_initial_ms
 * times backoff_factor per further crash, capped at backoff_max_ms.
 */
uint32_t sup_backoff_ms(const struct sup_policy *p, uint32_t streak);

/* --- the supervisor (supervisor/sup_*.c) --- */

/* Options that are not in the config file. */
struct sup_run_opts {
	bool keep;	/* keep the segment after an orderly stop */
	int ready_fd;	/* write "ready\n" here once everything is ready, -1 none */
	bool status;	/* print a status line every status_interval_ms */
	int log_format; /* enum shm_log_format (shm/log.h): event lines as text, JSON or none
			 * (no banner either) */
};

/*
 * Take over the segment of instance `instance` whose supervisor died (adopt.c): checks that
 * it is dead and that cfg (the configuration's sizes) matches the segment's, ends what is
 * left of its workers, repairs the dead supervisor's and workers' process slots (their
 * agents DOWN, to be restarted by new workers), and returns the segment mapped read-write
 * in *out, its state STARTING. -EEXIST (running, or stopped in order), -EINVAL (another
 * geometry), -EBUSY (a worker that would not die) or an attach error, with a sentence
 * in err. The supervisor's only thread, before it claims process slot 0.
 */
/*
 * Repair process slot `slot`, which reads DEAD, whose owner (not the supervisor's child) is
 * gone with no status to know: its exit recorded as vanished, its claims resolved
 * (registry, groups, mailboxes, agent and monitor claims; for a worker, its agents marked
 * DOWN for a replacement), then EXITED. The supervisor's only thread (client scan, adoption).
 */
struct shm_seg;
void sup_repair_vanished(struct shm_seg *seg, uint32_t slot, bool worker);

int sup_adopt(const char *instance, const struct shm_cfg *cfg, struct shm_seg **out, char *err,
	      size_t errlen);

/*
 * Run an instance until SIGTERM/SIGINT/SIGQUIT or until the restart intensity is exceeded.
 * Returns 0 after an orderly stop, SUP_RUN_INTENSITY when the intensity was exceeded (a
 * message naming the worker and its exit reasons went to stderr; the stop was orderly too),
 * or -errno when it could not run or went on (-EINVAL a configuration the machine cannot
 * run, -EEXIST an instance that exists, -ENOSPC no room in /dev/shm, ...; a sentence went
 * to stderr). The tool maps it to an exit code (tools/exit.c). Must be called from the
 * process's only thread (it blocks signals and forks).
 */
#define SUP_RUN_INTENSITY 1
int sup_run(const struct sup_config *c, const struct sup_run_opts *o);

/* --- control requests: the server side (supervisor/control.c); the protocol: ipc/ctl.h --- */

#include "ipc/ctl.h"

struct shm_seg;
struct io_uring;
struct ipc_waiter;
struct sup_ctl;

/*
 * Open the supervisor's control inbox (an agent slot it hosts, type "control") and publish
 * its handle in the header. node_of[i] is worker i's NUMA node (-1 unknown), copied. Marks
 * the supervisor's process slot parked for good, so every producer rings its doorbell
 * (control traffic is rare). Returns 0 or -errno. The supervisor, slot 0, once.
 */
int sup_ctl_open(struct shm_seg *seg, const int32_t *node_of, uint32_t nworkers,
		 struct sup_ctl **out);
/* Unpublish and close the inbox (requests still queued get no answer). The supervisor. */
void sup_ctl_close(struct sup_ctl *ctl);
/*
 * Serve what is queued, then (re)arm a FUTEX_WAIT on the supervisor's doorbell in ring
 * with user_data ud; call it again when that request completes, with its result (0 the
 * first time). A kernel without io_uring futex waits makes it fall back to being called
 * from the supervisor's periodic tick (res -EINVAL/-ENOSYS/-EOPNOTSUPP). The supervisor's
 * thread (the ring's single issuer).
 */
void sup_ctl_on_wake(struct sup_ctl *ctl, struct io_uring *ring, uint64_t ud, int res);
/*
 * The periodic tick: serve what is queued when there is no futex wait to do it, and (a
 * safety net) what a producer killed before its ring left unannounced.
 */
void sup_ctl_tick(struct sup_ctl *ctl);
/*
 * Worker windex died (its slot is being repaired): end the tasks it hosted, each answered
 * -ECONNRESET and its agent stopped (not rerun when the worker restarts). The supervisor,
 * after the repair of the slot's agents, before the slot can be claimed again.
 */
void sup_ctl_worker_died(struct sup_ctl *ctl, uint32_t windex);

#endif
