/*
 * shoal agents: the callback API an agent type implements, and what a callback may do
 * through its context (send, reply, call, monitor, checkpoint, register, join).
 *
 * An agent type is a struct shoal_agent_type registered by name in the process's type
 * table: built-ins, types registered by the host program, and types loaded from a shared
 * object (shoal_agent_types_load()). A worker runs every callback of the agents it hosts on
 * its one thread; callbacks must not block (a blocked callback stalls every agent of its
 * worker).
 *
 * The agent-type ABI. A plugin hands shoal pointers to its own struct shoal_agent_type, laid
 * out by the agent.h it was built against; a shoal built later has a larger struct, and must
 * never read past the end of the plugin's. So every struct reaches shoal with the version of
 * this header it was built for (SHOAL_AGENT_ABI_VERSION), and shoal copies it into its own
 * full-size struct, zero-filling the fields that version does not have (a zero field means
 * "not set": the default or no callback). Nothing to remember: the header's macros carry the
 * version (shoal_agent_type_register() and the table name shoal_agent_types below).
 *   - Version 1: the fields up to tick, from before versioning. Plugins built then call
 *     the function shoal_agent_type_register() or export the table shoal_agent_types[];
 *     both keep meaning version 1.
 *   - Version 2: adds flags.
 *   - Version 3: adds vote (consensus proposals). A type without it (every type of versions
 *     1 and 2, and a version 3 type that leaves it NULL) votes yes: like a member of a
 *     broadcast with acknowledgements, it consents once its worker has the proposal.
 * How versions evolve: a new version only appends fields (so every version starts with the
 * fields of the ones before it, name first; a field's zero keeps the older behaviour), gets
 * the next number, and its table symbol shoal_agent_types_v<N> (SHOAL_AGENT_ABI_VERSION and
 * the shoal_agent_types macro move together). A shoal accepts every version up to its own,
 * and refuses a type of a newer one with an error naming the type and both versions
 * (rebuild the plugin against the running shoal's agent.h, or upgrade shoal). A plugin that
 * must also load in an older shoal can export an older version's table too, under that
 * version's symbol: the newest one the shoal knows is used.
 *
 * Delivery: every message a send accepted reaches handle/handle_call at least once; a
 * message whose worker died during its callback is delivered again to the restarted agent
 * with SHOAL_MSG_REDELIVERED set. While an agent is down its mailbox keeps queuing.
 */
#ifndef SHOAL_AGENT_H
#define SHOAL_AGENT_H

#include <stdint.h>

#include "shoal/shoal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reasons given to terminate. */
#define SHOAL_TERM_STOP	   0 /* stopped on request or the worker is shutting down */
#define SHOAL_TERM_RESTART 1 /* a callback failed: init runs again next */
#define SHOAL_TERM_FAILED  2 /* failed past its intensity: the agent is removed */

/* What a callback runs against: its agent and its worker. Opaque. */
struct shoal_ctx;

/*
 * An agent type. Callbacks return 0, or a negative errno to fail: the agent is then
 * terminated and restarted alone (its mailbox keeps its queue), at most restart_max times
 * in restart_period_ms (0, 0: the defaults 3 in 5000 ms); beyond that it is removed and
 * its monitors get DOWN.
 */
struct shoal_agent_type {
	const char *name;	    /* unique in the process, 1..31 bytes */
	uint32_t ckpt_size;	    /* checkpoint record bytes it may commit (0: none) */
	uint32_t tick_ms;	    /* period of tick() (0: no tick) */
	uint32_t restart_max;	    /* restart intensity: at most this many restarts ... */
	uint32_t restart_period_ms; /* ... in this many ms */
	/*
	 * Set up *state. ckpt/ckpt_len: the last committed checkpoint record (NULL, 0 if none)
	 * so a restarted agent resumes. Required.
	 */
	int (*init)(struct shoal_ctx *ctx, const void *ckpt, uint32_t ckpt_len, void **state);
	/* A cast, an info or an async call's reply. Required. */
	int (*handle)(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m);
	/*
	 * A call: write up to cap reply bytes into reply and set *reply_len; the engine sends
	 * it. Set *reply_len = SHOAL_REPLY_LATER to reply later with shoal_reply(). NULL: calls
	 * get an empty reply.
	 */
	int (*handle_call)(struct shoal_ctx *ctx, void *state, const struct shoal_msg *m,
			   void *reply, uint32_t cap, uint32_t *reply_len);
	/* Free *state. reason: SHOAL_TERM_*. May be NULL. */
	void (*terminate)(struct shoal_ctx *ctx, void *state, int reason);
	/* A DOWN or UP about an agent this one monitors. NULL: ignored. */
	int (*handle_down)(struct shoal_ctx *ctx, void *state, const struct shoal_down *d);
	/* Every tick_ms. NULL: no tick. */
	int (*tick)(struct shoal_ctx *ctx, void *state);
	/* --- ABI version 2 --- */
	/*
	 * Optional behaviours, SHOAL_AGENT_F_*: none are defined by this version, so 0. A type
	 * that sets a flag its shoal does not know is refused (it would lose the behaviour).
	 */
	uint32_t flags;
	/* --- ABI version 3 --- */
	/*
	 * A proposal to change a variable (shoal_client_propose(), shoal_propose()) to which
	 * this agent's group was asked: return 1 for yes, 0 for no; a negative errno counts as
	 * no (the agent is not restarted for it). reason (reason_cap bytes, at least 1) may get
	 * a NUL-terminated sentence saying why; shoal does not carry it back to the proposer
	 * yet. Runs on the worker's thread like every callback: it must not block. NULL: yes.
	 */
	int (*vote)(struct shoal_ctx *ctx, void *state, const struct shoal_proposal *p,
		    char *reason, uint32_t reason_cap);
};

/* The agent-type ABI version this header describes (see the top of this file). */
#define SHOAL_AGENT_ABI_VERSION 3

#define SHOAL_REPLY_LATER UINT32_MAX

/* --- the type table (per process) --- */

/*
 * Add a type, laid out as agent ABI version abi_version, to this process's table: shoal
 * copies the struct (fields of later versions zero), so it need not outlive the call, but
 * its name and callbacks must outlive their use. Registering the same struct again is a
 * no-op. Returns 0, -EEXIST (a type of that name), -EINVAL (bad name, no init/handle,
 * version 0), -EPROTONOSUPPORT (a version newer than this shoal's, or a flag it does not
 * know), -ENOSPC. Call before the workers are forked (they inherit the table). Not
 * thread-safe. Call it through shoal_agent_type_register(), which passes this header's
 * version.
 */
int shoal_agent_type_register_abi(const struct shoal_agent_type *type, uint32_t abi_version);
/*
 * The entry point of plugins built before versioning: registers a version 1 struct. The
 * macro below hides it from code built against this header.
 */
int(shoal_agent_type_register)(const struct shoal_agent_type *type);
#define shoal_agent_type_register(type)                                                            \
	shoal_agent_type_register_abi((type), SHOAL_AGENT_ABI_VERSION)
/* The type named name (shoal's full-size copy of it), or NULL. */
const struct shoal_agent_type *shoal_agent_type_find(const char *name);

/*
 * What a plugin exports: the table of its types,
 *   const struct shoal_agent_type *const shoal_agent_types[] = {&a, &b, NULL};
 * (this macro gives the table the symbol name of this header's version: a table exported
 * as plain "shoal_agent_types" is read as version 1), or
 *   int shoal_agent_types_init(void);
 * which calls shoal_agent_type_register() itself (the version travels with each call).
 */
#define shoal_agent_types shoal_agent_types_v3

/*
 * Load agent types from a shared object that exports a table (shoal_agent_types_v<N> for
 * the versions this shoal knows, newest first, then the version 1 shoal_agent_types) or
 * shoal_agent_types_init. Returns the number of types added or a negative errno (-ENOENT:
 * neither symbol; -ELIBBAD: dlopen failed; -EPROTONOSUPPORT: a type of a newer agent ABI
 * than this shoal's; another from registration or the init function); err gets a sentence
 * naming the library and the type.
 */
int shoal_agent_types_load(const char *path, char *err, size_t errlen);

/* --- what a callback may do --- */

/* The calling agent's handle. */
shoal_handle_t shoal_self(const struct shoal_ctx *ctx);
/* Look a name up in the default namespace: 0 and *out, or -ENOENT. */
int shoal_lookup(const struct shoal_ctx *ctx, const char *name, shoal_handle_t *out);
/*
 * A remote handle (API 1.3): the process registered as `name` on Erlang node `node`
 * (alive@host: a BEAM node, or another shoal instance's [dist] node), through this
 * instance's gateway (docs/dist.md). It takes shoal_cast() (the payload goes as a binary,
 * or as a term with type SHOAL_TYPE_TERM, shoal/term.h), shoal_call_async() (a gen_server
 * call; the reply comes as a reply, a term flagged SHOAL_MSG_TERM unless it is a binary)
 * and shoal_monitor() (DOWN SHOAL_DOWN_NOPROC when nobody has the name on that node,
 * SHOAL_DOWN_NOCONNECTION when the node cannot be reached or its connection is lost, and the
 * named process's exit: SHOAL_DOWN_STOPPED for normal or shutdown, else SHOAL_DOWN_CRASH;
 * the handle is over then: look the name up again for a new one). Never waits: the handle
 * is found or made at once. 0, or -EINVAL (a bad node or name, or name@node over
 * SHOAL_NAME_MAX bytes), -EHOSTUNREACH (the instance runs no gateway: no [dist]), -ENOSPC.
 */
int shoal_remote(const struct shoal_ctx *ctx, const char *node, const char *name,
		 shoal_handle_t *out);
/* Cast (one-way send); never waits: a full mailbox is -EAGAIN. */
int shoal_cast(struct shoal_ctx *ctx, shoal_handle_t to, uint32_t type, const void *data,
	       uint32_t len);
/* Async call: the reply arrives later to handle with SHOAL_MSG_REPLY and *ref_out. */
int shoal_call_async(struct shoal_ctx *ctx, shoal_handle_t to, uint32_t type, const void *data,
		     uint32_t len, uint64_t *ref_out);
/* Reply to call m (from handle_call with SHOAL_REPLY_LATER, or later with a saved copy). */
int shoal_reply(struct shoal_ctx *ctx, const struct shoal_msg *m, const void *data, uint32_t len);
/*
 * From handle_call: the reply it writes is an Erlang term in the external term format
 * (shoal/term.h builds one): it goes out flagged SHOAL_MSG_TERM, and a gen_server:call
 * from Erlang through the distribution gateway gets the term itself (e.g. {ok, 42}) instead
 * of a binary of its bytes. It marks the reply handle_call returns only: a reply sent
 * later with shoal_reply() (SHOAL_REPLY_LATER) goes as a binary. 0, or -EINVAL outside
 * handle_call. (API 1.2)
 */
int shoal_reply_as_term(struct shoal_ctx *ctx);
/*
 * Send a batch (any receivers, in order); never waits: stops at the first full mailbox.
 * Consecutive messages to one receiver are claimed together, and each receiving worker is
 * woken once. Returns how many were sent, or a negative errno if none was.
 */
int shoal_send_batch(struct shoal_ctx *ctx, const struct shoal_out *msgs, uint32_t n);
/* Broadcast to the members of a process group. Returns members reached or -errno. */
int shoal_broadcast(struct shoal_ctx *ctx, const char *group, uint32_t type, const void *data,
		    uint32_t len);
/*
 * Broadcast with acknowledgements, never waiting: send to every member of `group` (one wake
 * per worker) and return at once with the round's reference in *ref_out. The result comes
 * later to handle() as a message with SHOAL_MSG_SYSTEM, type SHOAL_T_ROUND, that reference
 * as ref and a struct shoal_round_done: when every member has answered (its handler
 * returned) or died, or when timeout_ms (> 0) has passed. A member that dies, stops or whose
 * mailbox is full counts as dead at once. If this agent's worker dies, its rounds end with
 * it (no result comes). Returns 0, or -EINVAL, -ENOENT (no such group), -ENOSPC (every round
 * record is in use), -EMSGSIZE, -ENOMEM.
 */
int shoal_broadcast_acked(struct shoal_ctx *ctx, const char *group, uint32_t type, const void *data,
			  uint32_t len, int timeout_ms, uint64_t *ref_out);
/*
 * Allocation round, never waiting: ask every member of `group` for its demand for
 * `resource` (one broadcast) and return at once with the round's reference in *ref_out.
 * When every member has answered or died, or timeout_ms (> 0) passed, this agent's worker
 * divides capacity among the members that reported with policy (NULL: proportional), sends
 * each its share (SHOAL_T_ALLOC, a struct shoal_alloc_share) and this agent the result: a
 * message with SHOAL_MSG_REPLY, that reference, type SHOAL_T_ALLOC_DONE and a struct
 * shoal_alloc_done followed by its `listed` members. If this agent's worker dies, its
 * rounds end with it (no result, no shares). Returns 0, or -EINVAL, -ENOENT (no such group),
 * -ENOSPC (every round record is in use), -ENOMEM.
 */
int shoal_allocate(struct shoal_ctx *ctx, const char *group, const char *resource,
		   uint64_t capacity, shoal_alloc_policy_fn policy, int timeout_ms,
		   uint64_t *ref_out);
/* The result of an agent's allocation round, followed by `listed` struct shoal_alloc_member. */
struct shoal_alloc_done {
	uint64_t ref;	     /* the round's reference (shoal_allocate()'s *ref_out) */
	int32_t rc;	     /* 0 every member answered, -ETIMEDOUT some did not, else the
			      * policy's error (no share sent) */
	uint32_t members;    /* members at the start */
	uint32_t reported;   /* reported a demand */
	uint32_t dead;	     /* left out: died, stopped or unreachable */
	uint32_t absent;     /* left out: no answer by the deadline */
	uint32_t nodemand;   /* left out: answered without a demand */
	uint32_t delivered;  /* share messages put */
	uint32_t listed;     /* members that follow (as many as fit the instance's max_msg) */
	uint64_t capacity;   /* what was divided */
	uint64_t demand;     /* the reported demands' sum */
	uint64_t allocated;  /* the shares' sum */
	uint64_t elapsed_ns; /* from the start to the shares' delivery */
};
/*
 * Report this agent's demand (0..SHOAL_ALLOC_DEMAND_MAX) for an allocation ask m (type
 * SHOAL_T_ALLOC_ASK, flagged SHOAL_MSG_ROUND), from handle() while it handles m: the answer
 * goes when handle() returns (an agent that returns without reporting is left out, and one
 * whose handle fails counts as dead). 0, -EINVAL (not an ask), -ERANGE, -EALREADY (reported
 * already in this delivery: the first demand stays; a redelivered ask, whose first delivery
 * reported before its worker died, gets 0 and keeps that first demand), -ESTALE (the round
 * is over).
 */
int shoal_alloc_demand(struct shoal_ctx *ctx, const struct shoal_msg *m, uint64_t demand);
/*
 * Propose value (type SHOAL_VAR_*, len bytes at data: 8 for a number) for variable `var`,
 * voted on by every member of `group` under rule (SHOAL_RULE_MAJORITY, _UNANIMOUS, or
 * _QUORUM with quorum yes votes), never waiting: each member's vote callback answers (a type
 * without one, a client's inbox: yes), and once every member answered or died, or
 * timeout_ms (> 0) passed, the value is committed if the rule holds, by compare-and-set on
 * the variable's version at this call. The outcome comes later to handle() as a message with
 * SHOAL_MSG_SYSTEM, type SHOAL_T_PROPOSAL, ref *ref_out and a struct shoal_proposal_result.
 * If another proposal on the variable is open, nothing is sent to the group and that message
 * comes at once (at the worker's next turn): outcome SHOAL_PROPOSAL_CONFLICT, rc -EBUSY,
 * no tally, and version the one the open proposal started from (the version the winner
 * commits over). Returns 0; -ENOENT (no such variable or group), -EPROTOTYPE (not the variable's
 * type), -EMSGSIZE, -EINVAL, -ENOSPC (every round record in use), -ENOMEM. If this agent's
 * worker dies, its open proposals end with it: the variable keeps its old value or has the
 * new one, and its claim is freed by the repair.
 */
int shoal_propose(struct shoal_ctx *ctx, const char *var, uint32_t type, const void *data,
		  uint32_t len, const char *group, uint32_t rule, uint32_t quorum, int timeout_ms,
		  uint64_t *ref_out);
/*
 * Monitor target: this agent gets DOWN when target crashes or stops and UP when it runs
 * again. Returns 0 and a reference in *ref_out, -ENOSPC (monitor table full).
 */
int shoal_monitor(struct shoal_ctx *ctx, shoal_handle_t target, uint64_t *ref_out);
/* Remove a monitor made by this agent: 0 or -ENOENT. */
int shoal_demonitor(struct shoal_ctx *ctx, uint64_t ref);
/*
 * Commit a checkpoint record (at most the type's ckpt_size and the instance's checkpoint
 * bytes): after a restart init receives it. Crash-safe: a worker killed mid-commit leaves
 * the previous record. Returns 0 or -EMSGSIZE.
 */
int shoal_checkpoint(struct shoal_ctx *ctx, const void *data, uint32_t len);
/*
 * Check out an agent of pool `pool` (its members are pre-spawned agents of one type, see
 * [pool NAME] in the configuration). Never waits: 0 and *agent if one was free; 1 if none
 * was: the checkout is queued (first come, first served) and its answer comes later as a
 * message with SHOAL_MSG_REPLY and *ref_out (see SHOAL_T_POOL), or an ETIMEDOUT error reply
 * once timeout_ms (< 0: none) passed, checked on the supervisor's 100 ms tick. -ENOENT no
 * such pool, -ENOSPC its queue is full. What this agent holds returns to the pool when it
 * stops or its worker dies.
 */
int shoal_pool_checkout(struct shoal_ctx *ctx, const char *pool, int timeout_ms,
			shoal_handle_t *agent, uint64_t *ref_out);
/* Return a checked-out agent: 0, -ENOENT (not of that pool), -EPERM (not ours). */
int shoal_pool_checkin(struct shoal_ctx *ctx, const char *pool, shoal_handle_t agent);
/* Register another name for this agent (removed when it stops): 0, -EEXIST, -EINVAL. */
int shoal_register(struct shoal_ctx *ctx, const char *name);
/* Join / leave a process group (left when it stops). */
int shoal_join(struct shoal_ctx *ctx, const char *group);
int shoal_leave(struct shoal_ctx *ctx, const char *group);
/*
 * A remote handle (shoal_remote()) joins or leaves group `group` (API 1.3): the group's
 * broadcasts reach the remote process through the gateway, as casts. In a broadcast with
 * acknowledgements it counts as acknowledged once the gateway has written the message for
 * its connection (Erlang's at-most-once delivery: docs/dist.md). A consensus proposal asks
 * it with a gen_server call {shoal_vote, Name, Value, Version}: the atom yes (or true) votes
 * for, any other reply against (a shoal agent's binary reply too), no reply by the deadline
 * is absent; a lost connection, the process's exit, a full call table or 10 s without a
 * reply count it dead. An allocation round asks it with a call
 * {shoal_demand, Resource, Capacity} (a number of units up to SHOAL_ALLOC_DEMAND_MAX in
 * reply is its demand, anything else none) and sends its share as a cast
 * {shoal_share, Resource, Share, Demand, Capacity}. It leaves every group when the handle
 * ends. 0, or -EINVAL (not a live remote handle, a bad group name), -ENOSPC (no group slot,
 * or the group is full); leave (also of a handle that is over): -ENOENT if not a member.
 */
int shoal_remote_join(struct shoal_ctx *ctx, const char *group, shoal_handle_t remote);
int shoal_remote_leave(struct shoal_ctx *ctx, const char *group, shoal_handle_t remote);
/*
 * Ask the supervisor to start an agent of `type` registered as `name`, placed by (hint,
 * where) as shoal_client_spawn(); or to stop the agent registered as name (or handle h when
 * name is NULL) as shoal_client_stop(). Never waits: 0 and the request's reference in
 * *ref_out; the answer comes later to handle() as a message with SHOAL_MSG_REPLY, that
 * reference, type SHOAL_T_CTL and a struct shoal_ctl_result. Or -EINVAL (bad name),
 * -ENOENT (type name too long), -ENOTCONN (no supervisor serving requests), -EAGAIN (its
 * inbox is full).
 */
int shoal_spawn_async(struct shoal_ctx *ctx, const char *type, const char *name, uint32_t hint,
		      int32_t where, uint64_t *ref_out);
int shoal_stop_async(struct shoal_ctx *ctx, const char *name, shoal_handle_t h, uint64_t *ref_out);
/*
 * Run a task: ask the supervisor to start an unnamed agent of `type` on the least loaded
 * running worker and hand it arg (len bytes) as a call from this agent (type SHOAL_T_TASK).
 * Never waits: 0 and the call's reference in *ref_out; the task agent's reply comes later
 * to handle() as a message with SHOAL_MSG_REPLY and that reference. An error comes the same
 * way, flagged SHOAL_MSG_ERROR with the errno as its type: the supervisor's refusal (ENOENT
 * no such type, ENOSPC no free agent slot or 256 tasks already running, ESHUTDOWN), the
 * task agent's own, ETIMEDOUT when timeout_ms (> 0) passed first (the task agent is
 * stopped), or ECONNRESET when the task agent's worker died (it is stopped, not run again).
 * The first answer is the task's; a late one after an error may follow (drop replies whose
 * reference is no longer awaited). Returns -EINVAL (bad type or timeout), -EMSGSIZE (arg
 * longer than the instance's max message less 120 bytes), -ENOTCONN (no supervisor serving
 * requests), -EAGAIN (its inbox is full), -ENOMEM.
 */
int shoal_task_run(struct shoal_ctx *ctx, const char *type, const void *arg, uint32_t len,
		   int timeout_ms, uint64_t *ref_out);
/*
 * Coordination variables (shoal.h says what they promise). None of these waits: reads are
 * lock-free, and an update finds its variables' locks free, or held by a dead writer (whose
 * update it finishes or undoes on the spot), or returns -EAGAIN after at most 20 us of a
 * live writer holding one (try again in a later callback).
 *
 * Create variable `name` of `type` (value 0 or empty, version 0): 0 and *out; -EEXIST if
 * the name is taken (by a variable: its handle in *out; by an agent: *out 0); -ENOSPC (no
 * free variable); -EINVAL (bad name or type); -ENOENT (the instance has no variables).
 */
int shoal_var_create(struct shoal_ctx *ctx, const char *name, uint32_t type, shoal_var_t *out);
/* Resolve a variable's name once: 0 and *out, or -ENOENT (none, or the name is an agent's). */
int shoal_var_lookup(const struct shoal_ctx *ctx, const char *name, shoal_var_t *out);
/* Read a variable: 0; -ENOENT; -EMSGSIZE (a blob larger than out->cap; out->len says). */
int shoal_var_read(const struct shoal_ctx *ctx, shoal_var_t var, struct shoal_var_value *out);
/* Read by name: a registry lookup, then the read. */
int shoal_var_read_name(const struct shoal_ctx *ctx, const char *name, struct shoal_var_value *out);
/* Read n (1..SHOAL_VAR_MANY) variables as of one instant: of any update, all or none. */
int shoal_var_read_many(const struct shoal_ctx *ctx, const shoal_var_t *vars, uint32_t n,
			struct shoal_var_value *out);
/*
 * Update n (1..SHOAL_VAR_MANY, distinct) variables at once, each one version step, this
 * agent as the writer. 0; -EBUSY (a set's expect is not its variable's version: nothing
 * changed; the current version in *cur if not NULL); -ENOENT, -EPROTOTYPE, -EMSGSIZE,
 * -EINVAL (see shoal.h); -EAGAIN (see above).
 */
int shoal_var_update(struct shoal_ctx *ctx, const struct shoal_var_set *sets, uint32_t n,
		     uint64_t *cur);
/* One number, no compare-and-set: shoal_var_update() of one set. */
int shoal_var_set_int(struct shoal_ctx *ctx, shoal_var_t var, int64_t value);
int shoal_var_set_double(struct shoal_ctx *ctx, shoal_var_t var, double value);
/*
 * Subscribe this agent to variable `name` (flags 0) or to every variable whose name starts
 * with `name` (SHOAL_VAR_SUB_PREFIX; also those created later): after each update handle()
 * gets a SHOAL_T_VAR message (shoal.h), coalesced while one is unread. 0 and *ref; -ENOENT (no
 * such variable, or the instance has no variables or subscriptions), -ENOSPC (no free entry:
 * [segment] subscriptions), -EINVAL. The subscription ends with shoal_var_unsubscribe() or
 * when the agent stops (not when its worker restarts it).
 */
int shoal_var_subscribe(struct shoal_ctx *ctx, const char *name, uint32_t flags, uint64_t *ref);
/* End subscription ref (this agent's): 0 or -ENOENT. */
int shoal_var_unsubscribe(struct shoal_ctx *ctx, uint64_t ref);
/*
 * Subscribe remote handle `remote` (shoal_remote()) to variable `name` or a prefix, as
 * shoal_var_subscribe() (API 1.3): after each update the remote process gets a cast
 * {shoal_var, Name, Value, Version} (Name a binary; Value an integer, a float or a binary,
 * the newest when it is read; coalesced while the gateway has not forwarded the last).
 * 0 and *ref, or -EINVAL (not a live remote handle), and shoal_var_subscribe()'s errors;
 * it ends with shoal_remote_var_unsubscribe() or with the handle.
 */
int shoal_remote_var_subscribe(struct shoal_ctx *ctx, shoal_handle_t remote, const char *name,
			       uint32_t flags, uint64_t *ref);
int shoal_remote_var_unsubscribe(struct shoal_ctx *ctx, shoal_handle_t remote, uint64_t ref);
/* Ask for this agent's orderly stop after the current callback (terminate runs). */
void shoal_stop_self(struct shoal_ctx *ctx);
/* CLOCK_MONOTONIC nanoseconds (the worker's cached clock for this round). */
uint64_t shoal_now_ns(const struct shoal_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif
