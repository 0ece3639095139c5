/*
 * shoal clients: a program that is not an agent (a script's helper, a service front end, a
 * test driver) attaches to a running instance and messages its agents: look names up,
 * cast, send batches, call with a timeout, call asynchronously, broadcast to a process
 * group, monitor agents, and receive what comes back in its inbox.
 *
 * A client holds a process slot of the instance (so the supervisor repairs what it leaves
 * half done if it dies) and an inbox: an agent slot hosted by the client itself, where
 * replies, async replies, DOWN/UP notices and casts addressed to it arrive. One
 * struct shoal_client per process; its calls are not thread-safe (one thread at a time).
 *
 * While an agent is down (its worker restarting), sends to it queue in its mailbox and a
 * call waits up to its timeout: a restart shows to a client only as latency.
 *
 * Every call returns 0 (or a count, or a length) or a negative errno; see shoal.h for the
 * codes shoal gives a meaning.
 */
#ifndef SHOAL_CLIENT_H
#define SHOAL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "shoal/shoal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An attachment to one instance: process slot, wakeup ring and inbox. Opaque. */
struct shoal_client;

/*
 * Attach to the running instance `instance` (NULL: "default", or $SHOAL_INSTANCE) as a
 * client. Returns 0 and *out, or a negative errno with a sentence in err (may be NULL):
 * -ENOENT no such instance, -EOWNERDEAD its supervisor is gone or it is stopped, -ENOSPC
 * no free process or agent slot, -EACCES not allowed, -EPROTO a layout this library does
 * not read.
 */
int shoal_client_open(const char *instance, struct shoal_client **out, char *err, size_t errlen);
/* Close the inbox, release the process slot, detach. NULL is a no-op. */
void shoal_client_close(struct shoal_client *c);
/* The client's inbox: the `from` of what it sends, where replies and notices arrive. */
shoal_handle_t shoal_client_inbox(const struct shoal_client *c);

/* Look a name up in the default namespace: 0 and *out, -ENOENT, -EINVAL (bad name). */
int shoal_client_lookup(struct shoal_client *c, const char *name, shoal_handle_t *out);
/*
 * A remote handle (API 1.3): the process registered as `name` on Erlang node `node`, as
 * shoal_remote() in agent.h says; it takes the client's casts, calls (a reply that is not
 * a binary comes as its external term format, the version byte 131 first) and monitors.
 */
int shoal_client_remote(struct shoal_client *c, const char *node, const char *name,
			shoal_handle_t *out);

/*
 * Cast (one-way send) to `to`. timeout_ms: how long a full mailbox is waited on (0: -EAGAIN
 * at once, < 0: for ever; else -ETIMEDOUT). -EMSGSIZE past the instance's maximum,
 * -ENOENT / -ESTALE for a handle whose agent is gone.
 */
int shoal_client_cast(struct shoal_client *c, shoal_handle_t to, uint32_t type, const void *data,
		      uint32_t len, int timeout_ms);
/*
 * Send a batch (any receivers, in order): consecutive messages to one receiver are claimed
 * together and each receiving worker is woken once. Returns how many were sent (it stops at
 * the first that fails), or a negative errno if none was.
 */
int shoal_client_send_batch(struct shoal_client *c, const struct shoal_out *msgs, uint32_t n,
			    int timeout_ms);
/*
 * Call: send to `to` and wait up to timeout_ms (< 0: for ever) for its reply, whose first
 * cap bytes are copied into reply. Returns the reply's length (may exceed cap), or
 * -ETIMEDOUT, a send error, or the error the agent answered with (-ECANCELED: the call was
 * dropped as a poison message, after it ended its worker 3 times; else handle_call's own).
 * Other messages arriving meanwhile stay queued in the inbox.
 */
int shoal_client_call(struct shoal_client *c, shoal_handle_t to, uint32_t type, const void *data,
		      uint32_t len, void *reply, uint32_t cap, int timeout_ms);
/*
 * Async call: send and return at once with the call's reference in *ref_out; the reply
 * arrives in the inbox (shoal_client_recv(): SHOAL_MSG_REPLY, same ref).
 */
int shoal_client_call_async(struct shoal_client *c, shoal_handle_t to, uint32_t type,
			    const void *data, uint32_t len, uint64_t *ref_out);
/*
 * Broadcast one message to every member of process group `group`, one wake per worker in
 * one io_uring submission. Returns the members reached, or a negative errno (-ENOENT: no
 * such group).
 */
int shoal_client_broadcast(struct shoal_client *c, const char *group, uint32_t type,
			   const void *data, uint32_t len, int timeout_ms);

/* The result of a broadcast with acknowledgements. */
struct shoal_round_result {
	uint32_t members;		   /* members of the group at the start */
	uint32_t acked;			   /* acknowledged: their handler returned */
	uint32_t dead;			   /* died, stopped or unreachable during the round */
	uint32_t absent;		   /* no answer by the deadline */
	uint64_t elapsed_ns;		   /* from the start to the end of the wait */
	struct shoal_round_member *member; /* in: the caller's array of cap entries, or NULL;
					    * out: the first min(members, cap) members */
	uint32_t cap;			   /* in: entries in member */
	uint32_t rsvd;			   /* zero */
};

/*
 * Broadcast with acknowledgements: send one message to every member of process group
 * `group` (one wake per worker) and wait until every member has answered or timeout_ms
 * (> 0) passes. A member answers when its handler has returned (a client inbox when
 * shoal_client_recv() takes the message); a member that dies, stops or cannot be reached
 * counts as dead at once, so a worker killed mid-round ends the wait for its members, not
 * the timeout. Fills *res (counts, and each member's handle and state into res->member).
 * Returns 0 when every member answered, -ETIMEDOUT when some had not by the deadline (res
 * lists them as absent), or -EINVAL (timeout_ms <= 0, NULL arguments), -ENOENT (no such
 * group), -ENOSPC (every round record is in use: raise [segment] rounds), -EMSGSIZE,
 * -ESHUTDOWN / -EOWNERDEAD (the instance went away). The client's own inbox, if a member,
 * counts as absent: it does not read while it waits.
 */
int shoal_client_broadcast_acked(struct shoal_client *c, const char *group, uint32_t type,
				 const void *data, uint32_t len, int timeout_ms,
				 struct shoal_round_result *res);

/* The result of an allocation round (shoal_client_allocate()). */
struct shoal_alloc_result {
	uint32_t members;		   /* members of the group at the start */
	uint32_t reported;		   /* reported a demand: their shares were computed */
	uint32_t dead;			   /* died, stopped or unreachable: left out */
	uint32_t absent;		   /* no answer by the deadline: left out */
	uint32_t nodemand;		   /* answered without a demand: left out */
	uint32_t delivered;		   /* share messages put in the members' mailboxes */
	uint64_t capacity;		   /* what was divided */
	uint64_t demand;		   /* the reported demands' sum */
	uint64_t allocated;		   /* the shares' sum (at most capacity) */
	uint64_t elapsed_ns;		   /* from the start to the shares' delivery */
	struct shoal_alloc_member *member; /* in: the caller's array of cap entries, or NULL;
					    * out: the first min(members, cap) members */
	uint32_t cap;			   /* in: entries in member */
	uint32_t rsvd;			   /* zero */
};

/*
 * Allocation round: ask every member of process group `group` for its demand for
 * `resource` (1..SHOAL_ALLOC_NAME_MAX bytes) in one broadcast, wait until every member has
 * answered or died or timeout_ms (> 0) passes, divide capacity among the members that
 * reported with policy (NULL: shoal_alloc_proportional), and send each of them its share
 * (one batched send, one wake per worker; a member whose mailbox is full then is listed
 * undelivered). Fills *res. Returns 0 when every member answered, -ETIMEDOUT when some had
 * not (they are left out, the others' shares computed and sent all the same), or -EINVAL,
 * -ENOENT (no such group), -ENOSPC (every round record in use), the policy's error (no share
 * sent), -ESHUTDOWN / -EOWNERDEAD (the instance went away). The client's own inbox, if a
 * member, is absent: it does not read while it waits.
 */
int shoal_client_allocate(struct shoal_client *c, const char *group, const char *resource,
			  uint64_t capacity, shoal_alloc_policy_fn policy, int timeout_ms,
			  struct shoal_alloc_result *res);
/*
 * Answer an allocation ask m that shoal_client_recv() returned (type SHOAL_T_ALLOC_ASK,
 * flagged SHOAL_MSG_ROUND) with demand (0..SHOAL_ALLOC_DEMAND_MAX). The inbox answers asks
 * only so: one it took and never answers is absent at the round's timeout. 0, -EINVAL (not
 * an ask), -ERANGE, -EALREADY (answered already), -ESTALE (the round is over).
 */
int shoal_client_alloc_demand(struct shoal_client *c, const struct shoal_msg *m, uint64_t demand);

/*
 * Consensus proposal: propose value (type SHOAL_VAR_*, len bytes at data: 8 for a number)
 * for variable `var` to every member of process group `group`, and wait until every member
 * has voted or died, or timeout_ms (> 0) passes. Each agent member's vote callback answers
 * (a type without one, and a client inbox when shoal_client_recv() takes the proposal: yes);
 * a member that dies or cannot be reached counts as dead at once. If rule holds
 * (SHOAL_RULE_MAJORITY: more than half of the members at the start voted yes;
 * SHOAL_RULE_UNANIMOUS: all; SHOAL_RULE_QUORUM: at least quorum), the value is committed by
 * compare-and-set on the variable's version at the start. Fills *res (outcome, tally, the
 * version). Returns 0 committed; -ECANCELED rejected (every member answered, the rule
 * failed: the variable is unchanged); -ETIMEDOUT (the deadline came with the rule unmet);
 * -EBUSY a conflict: another proposal on the variable was open (refused at once, before any
 * vote) or the variable was updated during the round; res->version is the variable's version
 * found. Or, with nothing started: -EINVAL, -ENOENT (no such variable or group), -EPROTOTYPE
 * (value not of the variable's type), -EMSGSIZE, -ENOSPC (every round record in use),
 * -ESHUTDOWN / -EOWNERDEAD. A proposer killed at any instruction leaves the variable at its
 * old value or the new one; the repair of its slot frees its claim and round.
 */
int shoal_client_propose(struct shoal_client *c, const char *var, uint32_t type, const void *data,
			 uint32_t len, const char *group, uint32_t rule, uint32_t quorum,
			 int timeout_ms, struct shoal_proposal_result *res);

/*
 * Process groups: the client's inbox joins or leaves group `group` (it then receives the
 * group's broadcasts); a group is created on its first join and deleted with its last
 * member. 0, -ENOSPC (no group slot, or the group is full), -EINVAL (bad name); leave:
 * -ENOENT if not a member. The inbox leaves every group when the client closes.
 */
int shoal_client_join(struct shoal_client *c, const char *group);
int shoal_client_leave(struct shoal_client *c, const char *group);
/* A remote handle joins or leaves a group, as shoal_remote_join() in agent.h (API 1.3). */
int shoal_client_remote_join(struct shoal_client *c, const char *group, shoal_handle_t remote);
int shoal_client_remote_leave(struct shoal_client *c, const char *group, shoal_handle_t remote);
/*
 * The members of group `group`: up to max handles into out. Returns the member count (may
 * exceed max) or -ENOENT (no such group).
 */
int shoal_client_members(struct shoal_client *c, const char *group, shoal_handle_t *out,
			 uint32_t max);

/*
 * Monitor `target`: the inbox gets a DOWN notice (SHOAL_MSG_SYSTEM, type SHOAL_T_DOWN,
 * payload struct shoal_down) when it crashes or stops, and an UP notice when it has been
 * restarted. Returns 0 and the monitor's reference in *ref_out, or -ENOENT / -ESTALE (no
 * such agent), -ENOSPC (the monitor table is full).
 */
int shoal_client_monitor(struct shoal_client *c, shoal_handle_t target, uint64_t *ref_out);
/* Remove a monitor: 0 or -ENOENT. */
int shoal_client_demonitor(struct shoal_client *c, uint64_t ref);

/*
 * Ask the instance's supervisor to start an agent of `type` registered as `name`, placed by
 * (hint, where), waiting up to timeout_ms for its answer. Returns 0 with the agent's handle
 * in *out (and its worker index in *worker, may be NULL) once the supervisor has spawned it
 * (its init runs next on that worker; monitor or call it to know it runs), or a negative
 * errno: the supervisor's verdict (-ENOENT no such type, -EEXIST name taken, -EINVAL bad
 * name or hint, -ENXIO no such worker or node, -ENOSPC tables full, -ESHUTDOWN instance
 * stopping), or -ENOTCONN (no supervisor serving requests), -EOWNERDEAD (it died before
 * answering), -ETIMEDOUT (no answer yet: the spawn may still happen).
 */
int shoal_client_spawn(struct shoal_client *c, const char *type, const char *name, uint32_t hint,
		       int32_t where, shoal_handle_t *out, int32_t *worker, int timeout_ms);
/*
 * Ask for an orderly stop of the agent registered as name (or of handle h when name is
 * NULL): its terminate runs, its names, groups and monitors go, its monitors get DOWN.
 * Returns 0 once requested, or -EALREADY (already stopping), -ENOENT, -ESTALE, -EPERM (not
 * an agent a worker hosts), or an error as for shoal_client_spawn().
 */
int shoal_client_stop(struct shoal_client *c, const char *name, shoal_handle_t h, int timeout_ms);
/*
 * Run a task and wait for its result: the supervisor starts an unnamed agent of `type` on
 * the least loaded running worker and hands it arg (len bytes) as a call from this client
 * (type SHOAL_T_TASK); the agent's reply is copied into reply (cap bytes) and its length
 * returned (may exceed cap). Or a negative errno: the task agent's own error, -ENOENT (no
 * such type), -ENOSPC (no free agent slot, or 256 tasks already running), -ETIMEDOUT (no
 * result within timeout_ms, > 0: the supervisor stops the task agent), -ECONNRESET (the
 * task agent's worker died: it is stopped, not run again), -EMSGSIZE (arg longer than the
 * instance's max message less 120 bytes), -ENOTCONN, -ESHUTDOWN, -EOWNERDEAD as for
 * shoal_client_spawn(). Other messages arriving meanwhile stay queued in the inbox.
 */
int shoal_client_task_run(struct shoal_client *c, const char *type, const void *arg, uint32_t len,
			  int timeout_ms, void *reply, uint32_t cap);

/*
 * Take the next message of the inbox (async replies, notices, casts to the inbox), waiting
 * up to timeout_ms (0: -EAGAIN at once if none, < 0: for ever; else -ETIMEDOUT). Its first
 * cap payload bytes are copied into buf and out->data points there; out->len is the
 * message's length (may exceed cap). A wait also ends, once the inbox is empty, when the
 * instance has stopped (-ESHUTDOWN) or its supervisor is gone (-EOWNERDEAD): nothing more
 * will come (it looks every half second).
 */
int shoal_client_recv(struct shoal_client *c, struct shoal_msg *out, void *buf, uint32_t cap,
		      int timeout_ms);

/*
 * Coordination variables (shoal.h says what they promise), as the agents' shoal_var_*
 * (agent.h), with the client's inbox as the writer. Reads never wait.
 *
 * Create variable `name` of `type` (value 0 or empty, version 0): 0 and *out; -EEXIST if
 * the name is taken (by a variable: its handle in *out; by an agent: *out 0); -ENOSPC;
 * -EINVAL; -ENOENT (the instance has no variables).
 */
int shoal_client_var_create(struct shoal_client *c, const char *name, uint32_t type,
			    shoal_var_t *out);
/* Resolve a variable's name: 0 and *out, or -ENOENT (none, or the name is an agent's). */
int shoal_client_var_lookup(struct shoal_client *c, const char *name, shoal_var_t *out);
/* Read a variable: 0; -ENOENT; -EMSGSIZE (a blob larger than out->cap; out->len says). */
int shoal_client_var_read(struct shoal_client *c, shoal_var_t var, struct shoal_var_value *out);
/* Read by name: a registry lookup, then the read. */
int shoal_client_var_read_name(struct shoal_client *c, const char *name,
			       struct shoal_var_value *out);
/* Read n (1..SHOAL_VAR_MANY) variables as of one instant: of any update, all or none. */
int shoal_client_var_read_many(struct shoal_client *c, const shoal_var_t *vars, uint32_t n,
			       struct shoal_var_value *out);
/*
 * Update n (1..SHOAL_VAR_MANY, distinct) variables at once, each one version step. While a
 * live writer holds one of them, waits up to timeout_ms (< 0: for ever) for it. 0; -EBUSY
 * (a set's expect is not its variable's version: nothing changed; the current version in
 * *cur if not NULL); -ENOENT, -EPROTOTYPE, -EMSGSIZE, -EINVAL (see shoal.h); -ETIMEDOUT
 * (-EAGAIN with timeout_ms 0).
 */
int shoal_client_var_update(struct shoal_client *c, const struct shoal_var_set *sets, uint32_t n,
			    uint64_t *cur, int timeout_ms);
/*
 * Visit the instance's variables: fn(name, var, type, arg) for each; stops when fn returns
 * non-zero, and returns that; else 0.
 */
int shoal_client_var_list(struct shoal_client *c,
			  int (*fn)(const char *name, shoal_var_t var, uint32_t type, void *arg),
			  void *arg);
/*
 * Subscribe the client's inbox to variable `name` (flags 0) or to every variable whose name
 * starts with `name` (SHOAL_VAR_SUB_PREFIX): after each update shoal_client_recv() gets a
 * SHOAL_T_VAR message (shoal.h), coalesced while one is unread. 0 and *ref; errors as
 * shoal_var_subscribe(), or -EROFS (a client without an inbox). Ends with
 * shoal_client_var_unsubscribe(), shoal_client_close() or the client's death.
 */
int shoal_client_var_subscribe(struct shoal_client *c, const char *name, uint32_t flags,
			       uint64_t *ref);
/* End subscription ref (this client's): 0 or -ENOENT. */
int shoal_client_var_unsubscribe(struct shoal_client *c, uint64_t ref);
/* A remote handle's subscription, as shoal_remote_var_subscribe() in agent.h (API 1.3). */
int shoal_client_remote_var_subscribe(struct shoal_client *c, shoal_handle_t remote,
				      const char *name, uint32_t flags, uint64_t *ref);
int shoal_client_remote_var_unsubscribe(struct shoal_client *c, shoal_handle_t remote,
					uint64_t ref);

#ifdef __cplusplus
}
#endif

/*
 * Agent pools. Create pool `pool` of `size` agents of `type` spawned now, and up to
 * `overflow` more spawned by the supervisor while checkouts wait (retired when idle again):
 * 0, -EEXIST, -ENOSPC (no free pool, or the members do not fit [segment] pool_members), a
 * spawn's error (the agents spawned so far are stopped). A client that dies while creating
 * leaves no pool.
 */
int shoal_client_pool_create(struct shoal_client *c, const char *pool, const char *type,
			     uint32_t size, uint32_t overflow, int timeout_ms);
/*
 * Check out an agent of pool `pool`, waiting up to timeout_ms (< 0: for ever) in first-come
 * order while none is free: 0 and *agent, -ETIMEDOUT, -ENOENT no such pool, -ENOSPC the
 * queue is full, or the supervisor's exit. What the client holds returns to the pool when it
 * closes or dies.
 */
int shoal_client_pool_checkout(struct shoal_client *c, const char *pool, int timeout_ms,
			       shoal_handle_t *agent);
/* Return a checked-out agent: 0, -ENOENT (not of that pool), -EPERM (not ours). */
int shoal_client_pool_checkin(struct shoal_client *c, const char *pool, shoal_handle_t agent);

#endif
