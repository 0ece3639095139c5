/*
 * The segment's shared layout: an ABI. Tools of the same major layout version read it.
 * Shared structs hold fixed-width integers and offsets from the segment base only; every
 * struct has static_asserts on its size and key offsets.
 */
#ifndef SHM_LAYOUT_H
#define SHM_LAYOUT_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
	      "atomics that are not lock-free do not work across processes");

#define SHM_MAGIC 0x47455331414f4853ull /* "SHOA1SEG" little-endian */
/*
 * Major 2: 64-byte registry entries; 3: mailbox cell stamps (a producer that does not write
 * them leaves its messages unseen by a parked consumer, so older builds must not attach);
 * 4: struct shm_cfg grows to 128 bytes (the coordination regions' sizes), moving the header
 * fields after it.
 * Minors keep counting across majors (a major-3 segment has every feature of minors 1..4):
 * 1 shm_hdr.changes, 2 ctl_*, 3 mailbox attempts/poisoned, 4 mailbox polls/recheck, 5 the
 * exit log, 6 the telemetry region (struct shm_telem per process slot), 7 process claims
 * hold the slot's state word with the claimer's pid (SHM_PROC_HOLD) and the exit reason
 * SHM_EXIT_VANISHED (an older reader shows both as "?"), 8 the agent pools region (SHM_R_POOLS,
 * shm/pool.c: max_pools, pool_members) and the coordination variables region (SHM_R_VARS,
 * shm/var_int.h: max_vars, var_bytes). New regions change the region count, which the
 * validator checks, so a reader of an older layout refuses such a segment anyway. Also in
 * minor 8: the rounds region (SHM_R_ROUNDS: round records of broadcasts with
 * acknowledgements, struct shm_round; shm_cfg.max_rounds). 9 subscriptions to coordination
 * variables: a table after the variables in SHM_R_VARS (shm_cfg.max_subs, once reserved2[0],
 * so a minor-8 segment reads as one with none; shm/var_int.h) and the variable's subs word.
 * 10: the agent types region (SHM_R_TYPES, struct shm_types: the types the instance can
 * start, published by the supervisor for `shoal types`).
 * Also in 10, the telemetry block's memory words (struct shm_telem: rss_bytes,
 * rss_start_bytes, cg_memory_bytes, once pad, so an older block reads them as 0), and
 * telemetry regions:
 *   - SHM_R_HIST, latency histograms: SHM_HIST_OPS struct shm_hist per process slot
 *     (shm/hist.h); a reader of minor 9 or older has none.
 *   - the event ring (SHM_R_EVENTS, shm/event.c: struct shm_event_ring, struct shm_event;
 *     shm_cfg.events, once reserved2[0]).
 * 11: the distribution region (SHM_R_DIST, struct shm_dist: the gateway's node name and its
 * connections with their traffic, for shoal inspect and shoal metrics).
 */
#define SHM_LAYOUT_MAJOR 4u
#define SHM_LAYOUT_MINOR 11u
#define SHM_READY_WORD	 0x52454459u /* "YDER": published, readable */
#define SHM_HDR_SIZE	 4096u
#define SHM_ALIGN	 64u
#define SHM_PAGE	 4096u
#define SHM_MAX_REGIONS	 16u
#define SHM_INSTANCE_MAX 48u

/* Region ids: index into the header's region table. */
enum shm_region_id {
	SHM_R_PROCS = 0,
	SHM_R_AGENTS = 1,
	SHM_R_REGISTRY = 2,
	SHM_R_GROUPS = 3,
	SHM_R_MBOX = 4,
	SHM_R_CKPT = 5,
	SHM_R_TELEMETRY = 6,
	SHM_R_MONITORS = 7,
	SHM_R_POOLS = 8,   /* agent pools (layout 4) */
	SHM_R_VARS = 9,	   /* coordination variables (layout minor 8) */
	SHM_R_ROUNDS = 10, /* round records: broadcasts with acknowledgements (layout minor 8) */
	SHM_R_TYPES = 11,  /* the agent types the instance can start (layout minor 10) */
	SHM_R_HIST = 12,   /* latency histograms, one block per process slot (layout minor 10) */
	SHM_R_EVENTS = 13, /* the event ring (layout minor 10, shm/event.h) */
	SHM_R_DIST = 14,   /* the distribution gateway's node and connections (layout minor 11) */
	SHM_R_COUNT = 15,
};

/* Exits the segment's header keeps (shm_hdr.exit_log). */
#define SHM_EXIT_LOG 16u

/*
 * One exit, as recorded in the exit log: seq is 2n + 1 while record n is being written and
 * 2n + 2 once it is complete (a reader copies it between two equal reads of seq).
 */
struct shm_exit_rec {
	_Atomic uint64_t seq;
	uint64_t time_ns;  /* CLOCK_REALTIME of the exit (as last_exit_ns) */
	uint32_t slot;	   /* process slot */
	uint32_t pid;	   /* the owner that exited */
	uint32_t epoch;	   /* its epoch */
	int32_t code;	   /* exit code, -1 if signalled */
	int32_t signal;	   /* terminating signal, 0 if none */
	uint32_t reason;   /* enum shm_exit_reason */
	uint32_t role;	   /* enum shm_role */
	uint32_t restarts; /* the slot's restart count at the time */
	uint8_t pad[64 - 48];
};
static_assert(sizeof(struct shm_exit_rec) == 64, "exit record ABI");

/* Instance states (shm_hdr.state). */
enum shm_inst_state {
	SHM_INST_STARTING = 1,
	SHM_INST_RUNNING = 2,
	SHM_INST_STOPPING = 3,
	SHM_INST_STOPPED = 4,
	SHM_INST_SUP_DEAD = 5,
};

/* One region: where it starts and how long it is, in bytes from the segment base. */
struct shm_region {
	uint64_t off;  /* offset from the segment base, SHM_ALIGN-aligned */
	uint64_t size; /* bytes */
};
static_assert(sizeof(struct shm_region) == 16, "shm_region ABI");

/*
 * The sizes the segment was made from. Everything in the layout is a function of this
 * struct (shm_layout_compute()), so a validator can recompute and compare.
 */
struct shm_cfg {
	uint32_t max_procs;	/* process table slots: supervisor + workers + clients */
	uint32_t max_agents;	/* agent slots (and mailboxes) */
	uint32_t reg_capacity;	/* registry entries, power of two */
	uint32_t max_groups;	/* process groups */
	uint32_t group_members; /* members per group */
	uint32_t mbox_cells;	/* 64-byte cells per mailbox ring, power of two */
	uint32_t max_msg;	/* largest payload in bytes */
	uint32_t nworkers;	/* workers the supervisor runs */
	uint32_t ckpt_bytes;	/* checkpoint record bytes per agent (0: none) */
	uint32_t nnodes;	/* NUMA nodes the mailbox arena is split over */
	uint32_t mode;		/* the shm object's file mode */
	uint32_t max_monitors;	/* monitor table entries */
	uint32_t max_inboxes;	/* agent slots clients' inboxes may hold (0: a quarter of
				 * max_agents) */
	uint32_t max_vars;	/* coordination variables (layout minor 8; 0: none) */
	uint32_t var_bytes;	/* largest blob a variable holds: a multiple of 8, 8..4096 */
	uint32_t max_rounds;	/* round records (broadcasts with acknowledgements); 0: none */
	uint32_t max_pools;	/* agent pools (shm/pool.c) */
	uint32_t pool_members;	/* members (and queued checkouts) per pool */
	uint32_t max_subs;	/* variable subscriptions (layout minor 9; 0: none) */
	uint32_t events;	/* event ring records (layout minor 10): 0 none, else a
				 * power of two, 16..SHM_EVENT_MAX */
	uint32_t reserved2[12]; /* zero: room for the coordination layer's sizes */
};
static_assert(offsetof(struct shm_cfg, max_vars) == 52 &&
		      offsetof(struct shm_cfg, max_rounds) == 60 &&
		      offsetof(struct shm_cfg, max_subs) == 72 &&
		      offsetof(struct shm_cfg, events) == 76,
	      "shm_cfg ABI");
static_assert(sizeof(struct shm_cfg) == 128, "shm_cfg ABI");

/* The segment header: the first SHM_HDR_SIZE bytes. */
struct shm_hdr {
	uint64_t magic;		/* SHM_MAGIC */
	uint32_t layout_major;	/* SHM_LAYOUT_MAJOR of the creator */
	uint32_t layout_minor;	/* SHM_LAYOUT_MINOR of the creator */
	_Atomic uint32_t ready; /* SHM_READY_WORD once the creator filled everything */
	_Atomic uint32_t state; /* enum shm_inst_state */
	uint64_t seg_size;	/* total bytes, as created */
	uint32_t hdr_size;	/* SHM_HDR_SIZE */
	uint32_t nregions;	/* entries used in regions[] */
	struct shm_region regions[SHM_MAX_REGIONS]; /* indexed by enum shm_region_id */
	uint32_t creator_pid;			    /* the process that created the segment */
	uint32_t owner_uid;			    /* its effective uid */
	uint64_t creator_start;			    /* its /proc starttime, to tell pid reuse */
	uint64_t created_ns;			    /* CLOCK_REALTIME at creation */
	_Atomic uint32_t sup_pid;      /* the supervisor (the creator unless handed over) */
	_Atomic uint32_t sup_epoch;    /* its epoch */
	_Atomic uint64_t sup_start;    /* its /proc starttime */
	_Atomic uint64_t heartbeat_ns; /* CLOCK_MONOTONIC, kept fresh by the supervisor */
	_Atomic uint32_t next_epoch;   /* epoch counter: every claim of a process slot takes one */
	uint32_t reserved0;	       /* zero */
	char instance[SHM_INSTANCE_MAX]; /* the instance name, NUL-terminated */
	struct shm_cfg cfg;		 /* the configuration the layout was computed from */
	_Atomic uint64_t stop_ns;	 /* CLOCK_REALTIME when stopped / supervisor found dead */
	_Atomic uint32_t sup_exit_code;	 /* supervisor's exit status when stopped */
	_Atomic uint32_t changes;	 /* change count, waiters bit (shm/change.c) */
	char config_text[2048];		 /* the run configuration, as text, for post-mortems */
	/*
	 * The supervisor's warm spare: 0 none; SHM_SPARE_FORKING while it is being forked; its
	 * pid while it prepares; pid | SHM_SPARE_READY once it has (set by the spare itself); 0
	 * again when taken or dropped. For tools, and for benchmarks that wait for an instance
	 * at rest.
	 */
	_Atomic uint32_t spare;
	uint32_t reserved2; /* zero */
	/* control requests (supervisor/control.c), layout minor 2; written by the supervisor */
	_Atomic uint64_t ctl_inbox;   /* handle of its control inbox, 0 while it serves none */
	_Atomic uint64_t ctl_served;  /* requests answered (with success or an error) */
	_Atomic uint64_t ctl_refused; /* of those, answered with an error */
	_Atomic uint64_t ctl_dropped; /* not answered: malformed, or the requester was gone */
	/*
	 * The exit log (layout minor 5): every exit of a process slot's owner, the last
	 * SHM_EXIT_LOG of them kept (record n at exit_log[n % SHM_EXIT_LOG]); a process slot
	 * keeps only its last. Written by shm_exit_record(), read by shm_exit_log_read().
	 */
	_Atomic uint64_t exit_next; /* exits recorded so far */
	struct shm_exit_rec exit_log[SHM_EXIT_LOG];
};
static_assert(offsetof(struct shm_hdr, exit_log) % 8 == 0, "shm_hdr ABI: exit records");
#define SHM_SPARE_READY	  0x80000000u
#define SHM_SPARE_FORKING 1u /* (pid 1 is never a spare) */
static_assert(offsetof(struct shm_hdr, magic) == 0, "shm_hdr ABI");
static_assert(offsetof(struct shm_hdr, layout_major) == 8, "shm_hdr ABI");
static_assert(offsetof(struct shm_hdr, ready) == 16, "shm_hdr ABI");
static_assert(offsetof(struct shm_hdr, seg_size) == 24, "shm_hdr ABI");
static_assert(offsetof(struct shm_hdr, regions) == 40, "shm_hdr ABI");
static_assert(offsetof(struct shm_hdr, cfg) % 8 == 0, "shm_hdr ABI");
static_assert(offsetof(struct shm_hdr, spare) % 8 == 0, "shm_hdr ABI");
static_assert(offsetof(struct shm_hdr, ctl_inbox) % 8 == 0, "shm_hdr ABI");
static_assert(offsetof(struct shm_hdr, ctl_dropped) == offsetof(struct shm_hdr, ctl_inbox) + 24,
	      "shm_hdr ABI");
static_assert(sizeof(struct shm_hdr) <= SHM_HDR_SIZE, "shm_hdr fits its page");
static_assert(offsetof(struct shm_hdr, changes) == 540, "shm_hdr ABI: changes");

/* Process roles and states (shm_proc). */
enum shm_role {
	SHM_ROLE_NONE = 0,
	SHM_ROLE_SUPERVISOR = 1,
	SHM_ROLE_WORKER = 2,
	SHM_ROLE_CLIENT = 3,
	/*
	 * The Erlang distribution gateway (dist/), a client of the supervisor's own. A role
	 * added within a layout minor: an older reader shows it as '?'.
	 */
	SHM_ROLE_GATEWAY = 4,
};

enum shm_proc_state {
	SHM_PROC_FREE = 0,     /* no owner */
	SHM_PROC_STARTING = 1, /* claimed, not ready */
	SHM_PROC_RUNNING = 2,  /* ready */
	SHM_PROC_STOPPING = 3, /* orderly stop in progress */
	SHM_PROC_DEAD = 4,     /* died; its claims await repair */
	SHM_PROC_EXITED = 5,   /* gone, repaired; a worker slot keeps its history here */
};

/*
 * Besides those states, a process slot's state word may hold a hold word for a few
 * instructions: bit 31 set, the holder's pid in bits 0..27 (pid_max is at most 2^22), and in
 * bits 28..30 the state a reaper gives back if it finds the slot not dead after all (0 for a
 * claimer's hold). Whoever finds the holder dead resolves it (shm/proc.c, top comment).
 */
#define SHM_PROC_HELD 0x80000000u
#define SHM_PROC_HOLD(prev, pid)                                                                   \
	(SHM_PROC_HELD | ((uint32_t)(prev) << 28) | ((uint32_t)(pid)&0x0fffffffu))
#define SHM_PROC_HOLD_PID(st)  ((int32_t)((st)&0x0fffffffu))
#define SHM_PROC_HOLD_PREV(st) (((st) >> 28) & 7u)

/* Why a process last exited (shm_proc.last_reason). */
enum shm_exit_reason {
	SHM_EXIT_NONE = 0,
	SHM_EXIT_NORMAL = 1,   /* exit code 0 after a stop request */
	SHM_EXIT_CODE = 2,     /* exited with a non-zero code */
	SHM_EXIT_SIGNAL = 3,   /* killed by a signal */
	SHM_EXIT_MEMCAP = 4,   /* stopped by its memory cap */
	SHM_EXIT_HANG = 5,     /* missed its heartbeat and was killed */
	SHM_EXIT_VANISHED = 6, /* gone with no status to know (a client: not the supervisor's
				* child); code -1, signal 0 mean unknown */
};

/*
 * A process slot: three 128-byte lines. The first is written by the owner and the
 * supervisor, the second holds the owner's intents (repair reads them), the third is the
 * wake line that producers touch (ipc/).
 *
 * Memory ordering: role and start_time are written by the claimer in proc_init() (shm/proc.c)
 * before its release store S0 of state, and a reader that acquired state (K0 and others) reads
 * the values S0 published. They are relaxed _Atomic all the same: a reaper or a tool reads
 * them without keeping the slot from changing hands, so its read may meet the next
 * claimer's store (a reaper judging the last owner while it releases and another claims;
 * tests/test_segment.c, test_segment_proc_claim_threads, found that race under
 * ThreadSanitizer when start_time was plain). Every other field written while the slot
 * is published is _Atomic: core, node, mem_cap, cap_mech, windex and the last_* exit fields
 * are status words for tools, the control path and the spawner, stored and loaded relaxed
 * (no order with anything else; a reader may see a mix of two exits for an instant, the exit
 * log's seqlock gives a consistent copy); eventfd is published by M0 (wake_mech, ipc/wake.c).
 */
struct shm_proc {
	_Atomic uint64_t own;	       /* 0 free, else (pid << 32) | epoch; claimed by CAS */
	_Atomic uint32_t state;	       /* enum shm_proc_state */
	_Atomic uint32_t role;	       /* enum shm_role; written before S0 only */
	_Atomic uint64_t start_time;   /* owner's /proc starttime: tells a reused pid; written
					* before S0 only */
	_Atomic uint64_t heartbeat_ns; /* CLOCK_MONOTONIC, refreshed by the owner's loop */
	_Atomic int32_t core;	       /* pinned core, -1 none */
	_Atomic int32_t node;	       /* NUMA node, -1 none */
	_Atomic uint64_t mem_cap;      /* memory cap in bytes, 0 none */
	_Atomic uint32_t cap_mech;     /* 0 none, 1 rlimit, 2 cgroup v2 */
	_Atomic uint32_t restarts;     /* restarts of this worker slot */
	_Atomic uint32_t last_pid;     /* pid of the last exited owner */
	_Atomic int32_t last_code;     /* its exit code, -1 if signalled */
	_Atomic int32_t last_signal;   /* its terminating signal, 0 if none */
	_Atomic uint32_t last_reason;  /* enum shm_exit_reason */
	_Atomic uint64_t last_exit_ns; /* CLOCK_REALTIME of that exit */
	_Atomic uint32_t windex;       /* worker index for workers, else 0 */
	_Atomic uint32_t repair_gen;   /* bumped by the supervisor after each repair */
	_Atomic uint32_t agents_gen;   /* workers/: bumped when an agent is assigned to this
					* worker or asked to stop, so its loop rescans */
	_Atomic uint32_t last_epoch;   /* epoch of the last exited owner (with last_pid) */
	_Atomic uint32_t death_word;   /* robust-futex word: a worker's tid, stored by it; the
					* supervisor sets bit 31 (waiters) and waits on it; the
					* kernel sets bit 30 (owner died) early in the exit */
	_Atomic uint32_t wake_intent;  /* ipc: process slot + 1 whose wake this owner won and
					* has not made yet (claim_wake() to its syscall);
					* UINT32_MAX: a batch of wakes (ipc_ring_many()) */
	_Atomic uint64_t running_ns;   /* CLOCK_MONOTONIC when the owner went RUNNING (workers:
					* every agent started), 0 before */
	uint8_t pad0[128 - 112];       /* to the intent line */
	/* intent line: written only by the owner, read by whoever repairs it after death */
	_Atomic uint64_t mbox_intent;	/* ipc: mailbox (agent slot + 1) being produced into */
	_Atomic uint64_t reg_intent[8]; /* registry: the op in flight, for repair */
	_Atomic uint64_t ctl_intent[6]; /* supervisor control requests in flight */
	uint8_t pad2[128 - 120];	/* to the wake line */
	/* wake line: written by producers (ring), read by the owner */
	_Atomic uint32_t doorbell;  /* futex word: bumped on every ring while parked */
	_Atomic uint32_t parked;    /* 1 while the owner is (about to be) parked */
	_Atomic uint32_t wake_mech; /* 0 none, 1 io_uring futex, 2 eventfd */
	_Atomic int32_t eventfd;    /* the owner's eventfd number (eventfd path), before M0 */
	_Atomic uint64_t wakes;	    /* syscalls made to wake this process */
	uint8_t pad1[128 - 24];	    /* to 384 */
};
static_assert(sizeof(struct shm_proc) == 384, "shm_proc ABI");
static_assert(offsetof(struct shm_proc, mbox_intent) == 128, "shm_proc intent line");
static_assert(offsetof(struct shm_proc, doorbell) == 256, "shm_proc wake line");
static_assert(offsetof(struct shm_proc, death_word) == 96, "shm_proc death word");
static_assert(offsetof(struct shm_proc, running_ns) == 104, "shm_proc running_ns");
/* _Atomic kept each field's width: the offsets tools of the same major read are unchanged */
static_assert(offsetof(struct shm_proc, core) == 32 && offsetof(struct shm_proc, mem_cap) == 40 &&
		      offsetof(struct shm_proc, last_pid) == 56 &&
		      offsetof(struct shm_proc, last_exit_ns) == 72 &&
		      offsetof(struct shm_proc, windex) == 80 &&
		      offsetof(struct shm_proc, last_epoch) == 92 &&
		      offsetof(struct shm_proc, eventfd) == 268,
	      "shm_proc ABI: status words");

/* Agent states (shm_agent.state). */
enum shm_agent_state {
	SHM_AGENT_FREE = 0,
	SHM_AGENT_STARTING = 1, /* slot taken, init not yet run */
	SHM_AGENT_RUNNING = 2,
	SHM_AGENT_DOWN = 3, /* its worker died or its callback failed: restart pending */
	SHM_AGENT_STOPPING = 4,
	SHM_AGENT_STOPPED = 5, /* terminated; slot not yet freed */
};

#define SHM_TYPE_MAX 32u

/*
 * An agent slot; its mailbox is mailbox number == slot index. node, flags, type and name are
 * plain: written by the claimer in shm_agent_alloc_named() (shm/proc.c) before its release
 * store S2 of state and never after, so a reader that acquired state (A0 in ipc/msg.c, the
 * worker's acquire of ctl) reads them whole; a tool that reads a slot being claimed may see
 * the previous owner's bytes for an instant (it prints at most the field's length).
 */
struct shm_agent {
	_Atomic uint64_t ctl;	       /* 0 free, else the claim tag of whoever holds the slot */
	_Atomic uint32_t gen;	       /* generation: bumped when the slot is reused */
	_Atomic uint32_t state;	       /* enum shm_agent_state */
	_Atomic uint32_t worker;       /* hosting process slot + 1, 0 none */
	uint32_t node;		       /* NUMA node of its mailbox arena; before S2 only */
	_Atomic uint32_t restarts;     /* restarts of this agent */
	uint32_t flags;		       /* spawn flags; before S2 only */
	char type[SHM_TYPE_MAX];       /* agent type name; before S2 only */
	char name[64];		       /* primary registered name, for tools; before S2 only */
	_Atomic uint64_t handled;      /* messages handled */
	_Atomic uint64_t redelivered;  /* messages handled again after a crash */
	_Atomic uint64_t started_ns;   /* CLOCK_MONOTONIC of the last (re)start */
	_Atomic uint32_t ckpt_len;     /* bytes of the last committed checkpoint */
	_Atomic uint32_t ckpt_seq;     /* even: stable; odd: a commit in progress */
	_Atomic uint32_t ckpt_blen[2]; /* record length in each checkpoint buffer; the committed
					* one is buffer (ckpt_seq >> 1) & 1 */
	uint8_t pad[256 - 168];	       /* to 256 */
};
static_assert(sizeof(struct shm_agent) == 256, "shm_agent ABI");
static_assert(offsetof(struct shm_agent, type) == 32, "shm_agent ABI");
static_assert(offsetof(struct shm_agent, ckpt_blen) == 160, "shm_agent ABI");

/* Bytes of one mailbox: header, 8-byte sequence words and 64-byte cells. */
#define SHM_MBOX_HDR	       256u
#define SHM_MBOX_CELL	       64u
#define SHM_MBOX_STRIDE(cells) (SHM_MBOX_HDR + (uint64_t)(cells) * (8u + SHM_MBOX_CELL))

/*
 * Telemetry (layout minor 6): one block per process slot in the telemetry region, written by
 * the slot's worker from its own counters at least once per SHM_TELEM_FLUSH_NS of its loop
 * and a last time when it stops (final = 1). seq is odd while a flush writes it (a reader
 * copies the block between two equal even reads). Counters are since the owner started.
 */
#define SHM_TELEM_BUCKETS  16u
#define SHM_TELEM_FLUSH_NS 1000000000ull
struct shm_telem {
	_Atomic uint64_t seq;
	uint64_t flushed_ns; /* CLOCK_MONOTONIC of this flush */
	uint32_t pid;	     /* the owner that wrote it */
	uint32_t final;	     /* 1: written as the owner stopped in order */
	uint64_t handled;    /* messages its agents' callbacks were given */
	uint64_t rounds;     /* loop rounds that handled something */
	uint64_t parks;	     /* times it waited (spin, then park) with nothing to do */
	uint64_t flushes;    /* flushes so far, this one included */
	uint64_t batch[SHM_TELEM_BUCKETS]; /* busy rounds by messages handled: [2^i, 2^(i+1)) */
	uint64_t rss_bytes;		   /* resident bytes at this flush (/proc/self/statm) */
	uint64_t rss_start_bytes; /* resident bytes at this process's first flush: the growth
				   * baseline (a replacement worker starts its own) */
	uint64_t cg_memory_bytes; /* its [memory] cgroup's memory.current, 0 without one */
	/*
	 * The distribution gateway's (role gateway; zero in other blocks, and in segments of
	 * shoals before these words, which were padding): its connections and links now, calls
	 * in flight, connections stalled on a full mailbox; messages from the network put into
	 * mailboxes, messages it sent (replies, answers, exit signals), messages dropped (no
	 * such name or pid, oversized, malformed, a mailbox full for 5 s, too many calls).
	 */
	uint32_t dist_conns, dist_links, dist_calls, dist_stalled;
	uint64_t dist_in, dist_out, dist_dropped;
	uint8_t pad[256 - 80 - 8 * SHM_TELEM_BUCKETS - 40];
};
static_assert(sizeof(struct shm_telem) == 256, "telemetry block ABI");
static_assert(offsetof(struct shm_telem, rss_bytes) == 56 + 8 * SHM_TELEM_BUCKETS,
	      "telemetry block ABI");

/*
 * The agent types an instance can start (layout minor 10), for `shoal types`: built in,
 * registered by the program that runs the supervisor, or in a [types] library. Written by
 * the supervisor alone (before its first worker, from its type table and the names each
 * library's probe registered), through the seqlock seq; readers copy it between two equal
 * even reads. A supervisor that dies while writing it leaves seq odd: readers say so.
 */
#define SHM_TYPES_MAX  128u
#define SHM_TYPE_ABOUT 184u
enum shm_type_origin {
	SHM_TYPE_BUILTIN = 1, /* about: what it does */
	SHM_TYPE_HOST = 2,    /* registered by the program running the supervisor */
	SHM_TYPE_LIBRARY = 3, /* about: the [types] library's path */
};
struct shm_type_entry {
	char name[SHM_TYPE_MAX];
	uint32_t origin; /* enum shm_type_origin */
	uint32_t pad;
	char about[SHM_TYPE_ABOUT];
};
static_assert(sizeof(struct shm_type_entry) == 224, "type entry ABI");
struct shm_types {
	_Atomic uint64_t seq;	/* seqlock (shm/seqlock.h): odd while the supervisor writes */
	_Atomic uint32_t count; /* entries used in e[] (inside the seqlock) */
	uint8_t pad[52];
	struct shm_type_entry e[SHM_TYPES_MAX];
};
static_assert(offsetof(struct shm_types, e) == 64, "types table ABI");
static_assert(sizeof(struct shm_types) == 64 + SHM_TYPES_MAX * 224, "types table ABI");

/*
 * The distribution gateway's node and connections (layout minor 11, SHM_R_DIST), for shoal
 * inspect, shoal top and shoal metrics: written by the gateway (dist/gateway.c) with its
 * telemetry, about once a second and as it stops, through the seqlock seq; readers copy it between
 * two equal even reads. seq 0: no gateway has written it (no [dist], or not started yet). A gateway
 * that dies while writing it leaves seq odd until its successor writes. Counters are since the
 * connection was made.
 */
#define SHM_DIST_CONNS	  64u  /* connections listed (the gateway's GW_MAX_CONNS) */
#define SHM_DIST_NODE_MAX 256u /* alive@host with its NUL (an atom: at most 255 bytes) */
struct shm_dist_conn {
	char node[SHM_DIST_NODE_MAX]; /* the peer node */
	uint32_t outbound;	      /* 1: the gateway connected to it; 0: it connected */
	uint32_t stalled;	      /* 1: a message of its waits for room in a full mailbox */
	uint64_t since_ns;	      /* CLOCK_MONOTONIC when it connected */
	uint64_t in;		      /* messages and signals it sent us (ticks not counted) */
	uint64_t out;		      /* messages and signals we sent it */
	uint64_t queued; /* bytes written for it not yet sent: in the gateway and the socket */
	uint64_t reserved;
};
struct shm_dist {
	_Atomic uint64_t seq;
	uint64_t flushed_ns; /* CLOCK_MONOTONIC of this write */
	uint32_t pid;	     /* the gateway that wrote it */
	uint32_t nconns;     /* conns[0..nconns) are live connections */
	uint32_t final;	     /* 1: written as that gateway stopped in order */
	uint32_t reserved;
	char node[SHM_DIST_NODE_MAX]; /* this instance's node name */
	struct shm_dist_conn conns[SHM_DIST_CONNS];
};
static_assert(sizeof(struct shm_dist_conn) == 304, "distribution table ABI");
static_assert(offsetof(struct shm_dist, conns) == 288, "distribution table ABI");

/*
 * Latency histograms (layout minor 10): the region SHM_R_HIST holds one block per process
 * slot, SHM_HIST_OPS struct shm_hist each (block of slot s, operation op at
 * (s * SHM_HIST_OPS + op) * sizeof(struct shm_hist)). Written only by the slot's owner
 * (shm/hist.c), never zeroed by a claim: a replacement worker, which claims its predecessor's
 * slot, continues its histograms. Buckets are log-linear (SHM_HIST_SUB per power of two, as
 * HdrHistogram's): values below 2 * SHM_HIST_SUB ns each have their own bucket, a value v at
 * or above it goes to the sub-bucket of [2^e, 2^(e+1)) it falls in, e = floor(log2 v), up
 * to 2^SHM_HIST_TOP_EXP ns (137 s; larger values count in the last bucket, max_ns keeps
 * them exact).
 */
#define SHM_HIST_SUB_BITS 4u
#define SHM_HIST_SUB	  (1u << SHM_HIST_SUB_BITS) /* sub-buckets per power of two */
#define SHM_HIST_TOP_EXP  37u			    /* the last octave ends at 2^37 ns */
#define SHM_HIST_BUCKETS                                                                           \
	(2u * SHM_HIST_SUB + (SHM_HIST_TOP_EXP - SHM_HIST_SUB_BITS - 1u) * SHM_HIST_SUB)

/* The operations timed, in a block's order (an ABI: a new one goes at the end). */
enum shm_hist_op {
	SHM_HIST_SEND = 0,	    /* one message sent (a batch: its time per message) */
	SHM_HIST_CALL = 1,	    /* a call's round trip, request to reply */
	SHM_HIST_LOOKUP = 2,	    /* a registry lookup */
	SHM_HIST_REGISTER = 3,	    /* a registry register */
	SHM_HIST_RESTART = 4,	    /* a worker's death noticed to its replacement ready */
	SHM_HIST_VAR_UPDATE = 5,    /* a coordination variable's update */
	SHM_HIST_BROADCAST = 6,	    /* a broadcast round, start to every answer */
	SHM_HIST_CONSENSUS = 7,	    /* a consensus round (a proposal), start to decision */
	SHM_HIST_ALLOC = 8,	    /* an allocation round */
	SHM_HIST_POOL_CHECKOUT = 9, /* a pool checkout, request to member */
	SHM_HIST_OPS = 10,
};

/*
 * One operation's histogram. seq is a seqlock (shm/seqlock.h): the owner makes it odd,
 * updates the body with relaxed single-writer stores, and makes it even again, so a reader
 * copies count, sum and buckets that agree (count is the sum of the buckets).
 */
struct shm_hist {
	_Atomic uint64_t seq;	 /* odd while the owner records */
	_Atomic uint64_t count;	 /* samples recorded */
	_Atomic uint64_t sum_ns; /* their sum */
	_Atomic uint64_t max_ns; /* the largest */
	_Atomic uint64_t rate;	 /* 1 in rate operations is timed (0: none recorded yet) */
	_Atomic uint64_t pad[3]; /* zero */
	_Atomic uint64_t bucket[SHM_HIST_BUCKETS]; /* samples by bucket (shm_hist_bucket()) */
};
static_assert(SHM_HIST_BUCKETS == 544, "histogram ABI: buckets");
static_assert(offsetof(struct shm_hist, bucket) == 64, "histogram ABI");
static_assert(sizeof(struct shm_hist) == 64 + 8 * SHM_HIST_BUCKETS, "histogram ABI");

/*
 * The event ring (layout minor 10): region SHM_R_EVENTS holds this 128-byte head, then
 * shm_cfg.events records (struct shm_event). Event n (numbered from 0 at creation) lives in
 * record n % events until event n + events overwrites it. Any process with a writable
 * attachment appends (shm/event.c has the protocol); tools read.
 */
struct shm_event_ring {
	_Atomic uint64_t next; /* events claimed so far: the next event's number */
	uint8_t pad[128 - 8];  /* the writers' hot word alone on its span */
};
static_assert(sizeof(struct shm_event_ring) == 128, "event ring head ABI");

/* One event: seq is 2n + 1 while event n is written, 2n + 2 once it is complete. */
struct shm_event {
	_Atomic uint64_t seq;
	uint64_t time_ns; /* CLOCK_REALTIME when it was appended */
	uint64_t agent;	  /* the agent's handle, 0 none */
	uint32_t kind;	  /* enum shm_event_kind */
	uint32_t reason;  /* a code by kind: enum shm_exit_reason for a worker's exit, the
			   * shoal DOWN reason for an agent's; 0 none */
	int32_t code;	  /* an exit code (-1 none), or a count by kind (shm/event.h) */
	int32_t signal;	  /* a terminating signal, 0 none */
	int32_t worker;	  /* worker index, -1 none */
	uint32_t pid;	  /* the process concerned, 0 none */
	uint32_t slot;	  /* its process slot, UINT32_MAX none */
	uint32_t check;	  /* checksum of n and the body (this word as 0): a record that a
			   * writer lapped mid-write scribbled on reads as incomplete */
	char name[32];	  /* the agent's name, cut, NUL-terminated; "" none */
	char text[40];	  /* a short text, NUL-terminated */
};
static_assert(sizeof(struct shm_event) == 128, "event record ABI");
static_assert(offsetof(struct shm_event, check) == 52 && offsetof(struct shm_event, name) == 56,
	      "event record ABI");

/* A monitor: watcher gets DOWN/UP messages about target. Owned by workers/. */
struct shm_monitor {
	_Atomic uint64_t ctl;	  /* 0 free, else claim tag while being set up / torn down */
	_Atomic uint64_t watcher; /* handle that receives DOWN/UP, 0 when the entry is free */
	_Atomic uint64_t target;  /* handle watched */
	_Atomic uint64_t ref;	  /* the monitor's reference, echoed in DOWN/UP */
};
static_assert(sizeof(struct shm_monitor) == 32, "shm_monitor ABI");

/*
 * A round record (layout minor 8): one broadcast with acknowledgements in flight. The
 * rounds region holds shm_cfg.max_rounds of them, each SHM_ROUND_STRIDE(group_members)
 * bytes: this 64-byte head, then the members' handles (group_members words), then the
 * answer tree (SHM_ROUND_TREE_WORDS(group_members) words), then one value word per member
 * (group_members words: what a member answered with, e.g. its demand in an allocation).
 *
 * Every word of the tree is tagged: (round generation << 32) | 32 bits, so a late answer to
 * an earlier round of the same record (its generation is in the message's ref) can never set
 * a bit of a later one. Level 0 holds two bits per member, 16 members a word: bit 2k
 * "answered", bit 2k + 1 "dead", set together by one CAS (the first answer decides what a
 * member did). Level l + 1 has one bit per full word of level l, up to one top word; a round
 * is complete when its top word is full. Setting a bit is idempotent (a duplicate answer
 * changes nothing), and so is setting a parent's bit for a full child: a process killed
 * between the two is finished by the repair of its slot, which a count could not do
 * (whether the dead process had decremented is not knowable).
 *
 * A value word is tagged like the tree's: (generation << 32) | value, SHM_ROUND_NO_VALUE in
 * the low half until the member's answerer sets it once (by CAS, so only the first value of
 * the round's generation lands), before it sets the member's answered bit, which publishes it.
 *
 * ctl, gen and state are written by the owner (claim, publish, free) and by the repair of
 * the owner's slot; owner, members, start_ns, deadline_ns and the handles are written by the
 * owner before it publishes SHM_ROUND_ACTIVE (release) and read after an acquire of state,
 * relaxed atomics because a record is reused (a reader checks gen around them).
 */
struct shm_round {
	_Atomic uint64_t ctl;	      /* 0 free, else the owner's claim tag (SHM_TAG) */
	_Atomic uint32_t gen;	      /* bumped by every claim; in refs and in word tags */
	_Atomic uint32_t state;	      /* enum shm_round_state */
	_Atomic uint64_t owner;	      /* handle whose process is woken when the round completes */
	_Atomic uint32_t members;     /* member count */
	_Atomic uint32_t completed;   /* 1 once the top word filled (for tools) */
	_Atomic uint64_t start_ns;    /* CLOCK_MONOTONIC at the start */
	_Atomic uint64_t deadline_ns; /* CLOCK_MONOTONIC when the owner stops waiting */
	_Atomic uint64_t user_ref;    /* the owner's reference for the round (agents) */
	_Atomic uint32_t kind;	      /* enum shm_round_kind (was padding: 0, ACK, before) */
	uint32_t pad;		      /* zero */
};
static_assert(sizeof(struct shm_round) == 64, "shm_round ABI");
static_assert(offsetof(struct shm_round, deadline_ns) == 40, "shm_round ABI");

/*
 * What a round's level-0 bits mean. ACK: bit 2k "answered", bit 2k + 1 "dead". VOTE (a
 * consensus proposal): bit 2k "answered", bit 2k + 1 "voted yes", so a vote is still one
 * CAS that decides both; a member answered dead also has SHM_ROUND_H_DEAD set in its handle
 * word, before its answer (the tally reads it only for an answer without yes).
 */
enum shm_round_kind {
	SHM_ROUND_ACK = 0,
	SHM_ROUND_VOTE = 1,
};
/* In a VOTE round's handle word of a member answered dead (no agent slot has bit 31). */
#define SHM_ROUND_H_DEAD 0x80000000ull

enum shm_round_state {
	SHM_ROUND_FREE = 0,   /* no round (ctl may be held by a claimer preparing it) */
	SHM_ROUND_PREP = 1,   /* claimed, being filled */
	SHM_ROUND_ACTIVE = 2, /* published: messages out, answers counted */
};

/*
 * Words of a round's level 0 (16 members a word) and of its whole tree: with group_members
 * at most 65536, level 0 has at most 4096 words, level 1 128, levels 2 and 3 at most 5.
 */
#define SHM_ROUND_LEAF_WORDS(g) (((uint64_t)(g) + 15u) / 16u)
#define SHM_ROUND_TREE_WORDS(g)                                                                    \
	(SHM_ROUND_LEAF_WORDS(g) + (SHM_ROUND_LEAF_WORDS(g) + 31u) / 32u + 5u)
/* Bytes of one round record for group_members g (handles, tree, values): 64-byte aligned. */
#define SHM_ROUND_STRIDE(g)                                                                        \
	((64u + 8u * (2u * (uint64_t)(g) + SHM_ROUND_TREE_WORDS(g)) + 63u) / 64u * 64u)
#define SHM_ROUND_MAX 65536u /* max_rounds: a round's slot is 16 bits of its ref */

/* A value word's low half before its member answered with a value. */
#define SHM_ROUND_NO_VALUE 0xffffffffu

/* Claim tags: (epoch << 16) | process slot; never 0 since epochs start at 1. */
#define SHM_TAG(slot, epoch) (((uint64_t)(epoch) << 16) | (uint64_t)(slot))
#define SHM_TAG_SLOT(tag)    ((uint32_t)((tag)&0xffffu))
#define SHM_TAG_EPOCH(tag)   ((uint32_t)((tag) >> 16))
#define SHM_MAX_PROCS	     4096u

#endif
