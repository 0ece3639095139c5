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

#include "shm/layout.h"

#define SUP_MAX_AGENT_SPECS 64u
#define SUP_MAX_WORKERS	    1024u
#define SUP_MAX_CPUS	    1024u
#define SUP_PATH_MAX	    256u
#define SUP_MAX_LIBS	    8u

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
};

/* Everything `shoal run` is configured with. */
struct sup_config {
	char source[SUP_PATH_MAX]; /* file name, or "<default>" */
	char instance[SHM_INSTANCE_MAX];
	uint32_t workers;	     /* 0: one per usable core */
	char cpus[256];		     /* cpu list ("0-3,6"); empty: all */
	uint32_t placement;	     /* enum sup_placement */
	uint64_t mem_cap;	     /* bytes per worker, 0 none */
	char cgroup[SUP_PATH_MAX];   /* delegated cgroup v2 directory; empty: setrlimit */
	uint32_t stop_timeout_ms;    /* orderly stop, then SIGKILL */
	uint32_t ready_timeout_ms;   /* a worker not ready by then is killed */
	uint32_t status_interval_ms; /* status line period, 0 none */
	bool spare;		     /* keep a pre-forked warm spare for restarts */
	struct sup_policy policy;
	struct shm_cfg shm;		       /* segment sizes */
	uint32_t nlibs;			       /* used entries of libs[] */
	char libs[SUP_MAX_LIBS][SUP_PATH_MAX]; /* [types] load = PATH: agent type libraries */
	int lib_lines[SUP_MAX_LIBS];	       /* their lines, for messages */
	uint32_t nagents;		       /* used entries of agents[] */
	struct sup_agent_spec agents[SUP_MAX_AGENT_SPECS];
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
/* Parse a cpu list "0-3,6" into a bitmap of SUP_MAX_CPUS bits. 0 or -EINVAL. */
int sup_cpulist_parse(const char *s, uint64_t set[SUP_MAX_CPUS / 64]);
/* Parse a byte size "512M", "2G", "4096". 0 or -EINVAL. */
int sup_size_parse(const char *s, uint64_t *out);
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

/* --- the supervisor (supervisor/sup.c) --- */

/* Options that are not in the config file. */
struct sup_run_opts {
	bool keep;    /* keep the segment after an orderly stop */
	int ready_fd; /* write "ready\n" here once everything is ready, -1 none */
	bool status;  /* print a status line every status_interval_ms */
};

/*
 * Run an instance until SIGTERM/SIGINT or until the restart intensity is exceeded.
 * Returns 0 after an orderly stop, 1 when the intensity was exceeded (a message naming
 * the worker and its exit reasons went to stderr), 2 for a configuration the machine
 * cannot run (e.g. the instance exists), 3 on a system failure. Must be called from the
 * process's only thread (it blocks signals and forks).
 */
int sup_run(const struct sup_config *c, const struct sup_run_opts *o);

#endif
