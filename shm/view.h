/*
 * shm/view.h: a read-only snapshot of a segment's tables, for tools (inspect now; top, events
 * and metrics next). The one place a tool reads the process, agent and monitor tables, the
 * registry's statistics and the header's status words; a tool prints from the snapshot only.
 *
 * Memory: shm_view_create() reads the segment's geometry once (its configuration and region
 * table, checked against the mapping's size) and allocates a struct shm_view whose arrays
 * are sized from it: every process slot, every agent slot, every monitor entry, every registry
 * entry (up to SHM_VIEW_NAMES). Each
 * shm_view_take() refills that same memory (no allocation: `top` refreshes in a loop), and
 * shm_view_free() releases it. The geometry is never read again, so a header changed after
 * the create cannot move a table under the reader. The caller owns the view; one thread uses
 * it at a time.
 *
 * Consistency: each table is read once per take, row by row, without writing to the segment
 * (a read-only mapping will do). A row is consistent with itself as far as its identity words
 * tell: a process row is read between two equal reads of its own and state words (own carries
 * a fresh epoch per claim, so a slot released and claimed again during the read shows as a
 * change), an agent row between two equal reads of its gen and state words, a monitor between
 * two equal reads of its watcher; a row that kept changing over SHM_VIEW_RETRIES reads is kept
 * with torn set (its values from the last read: a marker, not data). The status words in a row
 * (core, restarts, counters, the last exit) are relaxed: a row may mix two of a slot's exits
 * for an instant, as the segment says at its fields. Rows are not consistent with each other,
 * nor tables with tables: the process table is read before the agent table, and an exit may
 * fall between. The exit log and each telemetry block are copied through their seqlocks: a
 * record or block being written during the take is left out (exits) or marked (telem_ret
 * -EAGAIN), and each latency histogram through its own (shm/hist.h: a copy whose count is
 * the sum of its buckets); so are the ring's last events (shm/event.h: one left out if it is
 * being written or overwritten). Strings are copied from fixed-size fields that the segment
 * may not have terminated: cut at the field's size, always NUL-terminated here, and any byte
 * that is not printable ASCII replaced by '?', so a garbage name prints as a bounded line.
 */
#ifndef SHM_VIEW_H
#define SHM_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/event.h"
#include "shm/hist.h"
#include "shm/pool.h"
#include "shm/registry.h"
#include "shm/var.h"
#include "shm/shm.h"
#include "shoal/shoal.h"

#define SHM_VIEW_RETRIES 4u /* reads of a changing row before it is kept torn */
/* registry entries listed at most (all are counted in reg): a view lists the registry's
 * capacity of them up to this many, which bounds the memory of a view of a huge registry */
#define SHM_VIEW_NAMES	  65536u
#define SHM_VIEW_GROUPS	  32u /* groups listed (all are counted in ngroups) */
#define SHM_VIEW_POOLS	  32u /* pools listed (all are counted in npools) */
#define SHM_VIEW_AGE_NONE 0u  /* an age of a time never set, or in the future */
#define SHM_VIEW_EVENTS	  64u /* the last events of the ring a view copies */

/* Sections a take filled, in the order it reads them (shm_view.parts). */
enum {
	SHM_VIEW_PART_HDR = 1u << 0,
	SHM_VIEW_PART_PROCS = 1u << 1, /* process rows, their telemetry, the control intent */
	SHM_VIEW_PART_EXITS = 1u << 2,
	SHM_VIEW_PART_AGENTS = 1u << 3,
	SHM_VIEW_PART_MONITORS = 1u << 4,
	SHM_VIEW_PART_REGISTRY = 1u << 5, /* statistics and the first names */
	SHM_VIEW_PART_GROUPS = 1u << 6,
	SHM_VIEW_PART_POOLS = 1u << 7,
	SHM_VIEW_PART_VARS = 1u << 8,
	SHM_VIEW_PART_TYPES = 1u << 9,	 /* the agent types table */
	SHM_VIEW_PART_OPS = 1u << 10,	 /* the latency histograms, merged */
	SHM_VIEW_PART_EVENTS = 1u << 11, /* the event ring's last events */
	SHM_VIEW_PART_DIST = 1u << 12,	 /* the distribution gateway's node and connections */
	SHM_VIEW_PART_ALL = (1u << 13) - 1,
};

/* The header: identity (fixed at creation) and status words, as of the take. */
struct shm_view_hdr {
	char instance[SHM_INSTANCE_MAX + 1]; /* as the header names it (cut, printable) */
	bool published;			     /* the ready word was set */
	uint32_t layout_major, layout_minor;
	uint64_t seg_size; /* bytes, as created */
	uint32_t creator_pid, owner_uid;
	uint64_t created_ns;	    /* CLOCK_REALTIME */
	uint64_t stop_ns;	    /* CLOCK_REALTIME, 0 while not stopped */
	uint32_t state;		    /* enum shm_inst_state, as stored */
	enum shm_liveness liveness; /* computed by the take (a reader cannot store it) */
	uint32_t sup_pid, sup_epoch;
	uint64_t sup_hb_ns; /* the supervisor's heartbeat, CLOCK_MONOTONIC */
	uint32_t spare;	    /* the warm-spare word (shm_hdr.spare) */
	/* control requests (layout minor 2 and later; has_control) */
	bool has_control;
	uint64_t ctl_inbox, ctl_served, ctl_refused, ctl_dropped;
	/* a request the supervisor (process slot 0) had in flight: op 0 none */
	uint64_t ctl_op, ctl_from, ctl_agent;
};

/* A process slot. */
struct shm_view_proc {
	uint32_t slot;
	uint32_t state_word; /* the state word as read: a state or a hold word */
	uint32_t state;	     /* enum shm_proc_state; with held, the state a reaper gives back */
	bool held;	     /* a claim (or a reaper's mark) in progress */
	int32_t holder;	     /* with held: the holder's pid */
	bool torn;	     /* kept changing while read (see the top comment) */
	uint32_t role;	     /* enum shm_role, as stored (shm_role_name() says "?" if not) */
	uint32_t pid, epoch; /* from the own word; 0 if free */
	int32_t core, node;  /* -1 none */
	uint64_t mem_cap;    /* bytes, 0 none */
	uint32_t cap_mech;   /* 0 none, 1 rlimit, 2 cgroup v2 */
	uint32_t restarts;
	uint32_t windex;
	uint64_t heartbeat_ns; /* CLOCK_MONOTONIC, 0 never */
	uint64_t hb_age_ns;    /* taken_ns - heartbeat_ns, or SHM_VIEW_AGE_NONE */
	uint64_t running_ns;   /* CLOCK_MONOTONIC when it went RUNNING, 0 before */
	uint32_t wake_mech;    /* enum ipc_wake_mech of the path it parks on, 0 none */
	bool parked;	       /* parked now */
	/* its last exit (last_reason 0: none yet) */
	uint32_t last_reason, last_pid, last_epoch;
	int32_t last_code, last_signal;
	uint64_t last_exit_ns; /* CLOCK_REALTIME */
	/* its telemetry block: telem_ret 0 read, -EAGAIN a flush was under way, -ENOENT none */
	int telem_ret;
	struct shm_telem telem;
};

/* An agent slot in use (not FREE). */
struct shm_view_agent {
	uint32_t slot;
	uint32_t gen;
	uint32_t state; /* enum shm_agent_state, as stored */
	bool torn;
	int32_t worker; /* hosting process slot, -1 none */
	uint32_t node;
	uint32_t flags;
	uint32_t restarts;
	uint64_t handled, redelivered;
	uint64_t started_ns; /* CLOCK_MONOTONIC of the last (re)start */
	uint32_t ckpt_len;   /* bytes of the last committed checkpoint */
	char type[SHM_TYPE_MAX + 1];
	char name[SHOAL_NAME_MAX + 2]; /* the 64-byte field, cut and terminated */
};

/* A monitor entry in use. */
struct shm_view_monitor {
	uint32_t index;
	bool torn;
	shoal_handle_t watcher, target;
	uint64_t ref;
};

/* A registry entry (the reserved namespaces of namespace names are only counted). */
struct shm_view_name {
	uint32_t ns;
	char ns_name[SHM_NS_NAME_MAX + 1]; /* "" for a numbered namespace */
	char name[SHOAL_NAME_MAX + 1];
	shoal_handle_t handle; /* an agent's handle, or a variable's id (is_var) */
	uint32_t meta_len;
	bool is_var; /* the name is a coordination variable's (shm/var.h) */
	uint32_t var_index, var_gen;
};

struct shm_view_group {
	char name[SHOAL_NAME_MAX + 1];
	uint32_t members;
};

/*
 * One operation's latency, every process slot's histogram merged (shm/hist.h). count is of
 * samples: 1 operation in rate was timed (rate 1: every one). Percentiles are within
 * SHM_HIST_REL_ERR of the sample's exact ones; all 0 when count is 0.
 */
struct shm_view_op {
	const char *name; /* shm_hist_op_name() */
	uint32_t rate;	  /* as recorded, else shm_hist_op_rate() */
	uint32_t torn;	  /* blocks copied while their writer held them (dead mid-record) */
	uint64_t count;
	uint64_t mean_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns;
	struct shm_hist_snap hist; /* the merged histogram itself */
};

struct shm_view {
	/* geometry, read once by shm_view_create() */
	struct shm_cfg cfg;
	struct shm_region regions[SHM_R_COUNT];
	/* filled by each shm_view_take() */
	uint32_t parts;	   /* SHM_VIEW_* sections complete (all, unless the take faulted) */
	uint64_t taken_ns; /* CLOCK_MONOTONIC at the start of the take */
	uint64_t taken_wall_ns;
	struct shm_view_hdr hdr;
	struct shm_view_proc *procs; /* cfg.max_procs rows, indexed by slot */
	uint32_t nprocs;
	struct shm_view_agent *agents; /* the slots in use, in slot order */
	uint32_t nagents;
	struct shm_view_monitor *monitors; /* the entries in use, in table order */
	uint32_t nmonitors;
	uint32_t monitors_claimed; /* entries a writer holds right now */
	bool has_exit_log;	   /* layout minor 5 and later */
	uint64_t exits_total;	   /* exits ever recorded */
	uint32_t nexits;	   /* records copied into exits, newest first */
	struct shm_exit_rec exits[SHM_EXIT_LOG];
	int reg_ret; /* 0, or -EUCLEAN: the registry region does not match (reg unset) */
	struct shm_reg_stats reg;
	struct shm_view_name *names; /* the live entries in table order, names_cap of them */
	uint32_t names_cap;	     /* min(cfg.reg_capacity, SHM_VIEW_NAMES) */
	uint32_t nnames;
	bool names_cut;	   /* more entries than names holds */
	uint32_t ns_named; /* entries naming namespaces (counted, not listed) */
	struct shm_view_group groups[SHM_VIEW_GROUPS];
	uint32_t ngroups; /* live groups, all counted; the first SHM_VIEW_GROUPS listed */
	struct shm_pool_info pools[SHM_VIEW_POOLS]; /* live pools (shm_pool_read()), names cut */
	uint32_t npools;	/* live pools, all counted; the first SHM_VIEW_POOLS listed */
	uint32_t rounds_in_use; /* round records held (shm_round_in_use()) */
	int vars_ret; /* 0, or -EUCLEAN: the variables region does not match (vars unset) */
	struct shm_var_stats vars;     /* the variables region's counters (shm_var_stats()) */
	struct shm_var_sub_stats subs; /* its subscriptions' (shm_var_sub_stats()) */
	int types_ret; /* shm_types_read()'s: 0, -ENOENT, -ENODATA, -EAGAIN, -EUCLEAN */
	uint32_t ntypes;
	struct shm_type_entry types[SHM_TYPES_MAX]; /* the agent types the instance can start */
	/* the distribution gateway's node and connections (layout minor 11) */
	int dist_ret; /* shm_dist_read()'s: 0, -ENOENT, -ENODATA, -EAGAIN, -EUCLEAN */
	struct shm_dist dist;
	/* latency histograms (layout minor 10 and later, a region inside the mapping) */
	bool has_ops;
	struct shm_view_op ops[SHM_HIST_OPS];
	struct shm_hist_snap hist_one; /* a take's copy of one block, before it is merged */
	/* the event ring (layout minor 10; shm/event.h): its last SHM_VIEW_EVENTS events */
	uint32_t events_cap;	 /* records in the ring, 0 none */
	uint64_t events_next;	 /* events ever appended (the next one's number) */
	uint32_t nevents;	 /* copied into events, oldest first (seq: each one's number) */
	uint32_t events_skipped; /* of the last SHM_VIEW_EVENTS, incomplete or overwritten while
				  * read: left out */
	struct shm_event events[SHM_VIEW_EVENTS]; /* name and text cut, printable */
};

/*
 * Read seg's geometry and allocate a view sized for it into *out. Returns 0, -ENOMEM, or
 * -EUCLEAN if the region table does not fit the mapping or the configuration (a table would
 * lie outside the segment). Reads the header only, before it allocates: safe to call under
 * shm_seg_guard(). Any process with an attachment (read-only will do); any thread.
 */
int shm_view_create(const struct shm_seg *seg, struct shm_view **out);
/*
 * Fill v with a snapshot of seg (see the top comment), liveness judged with stale_after_ns
 * (as shm_seg_liveness()). Never writes to the segment. Returns 0, or -EINVAL if v was
 * created for another geometry. Reads the mapping: a tool calls it under shm_seg_guard(),
 * and after a fault v->parts says which sections are whole. The view's owner; one thread.
 */
int shm_view_take(const struct shm_seg *seg, uint64_t stale_after_ns, struct shm_view *v);
/* The row of agent slot `slot` if it was in use at the take, else NULL. */
const struct shm_view_agent *shm_view_agent_find(const struct shm_view *v, uint32_t slot);
/* Free a view (NULL is fine). */
void shm_view_free(struct shm_view *v);

#endif
