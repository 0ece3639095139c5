/* shoal: shared-memory, multi-process agent engine. The common public header. */
#ifndef SHOAL_SHOAL_H
#define SHOAL_SHOAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal/version.h" /* SHOAL_VERSION_STRING, SHOAL_API_*, SHOAL_LAYOUT_* */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Errors: every action returns 0 or a negative errno. The ones shoal gives a meaning:
 *   -EAGAIN     mailbox full (no timeout given) or a claim is busy
 *   -EMSGSIZE   message larger than the instance's maximum
 *   -ENOENT     no such name, instance or agent
 *   -EEXIST     name already registered
 *   -ENOSPC     a table is full
 *   -ETIMEDOUT  a wait ran out
 *   -EOWNERDEAD the peer died (stale handle, dead process)
 *   -ESTALE     a handle whose slot was reused by another agent
 *   -EINVAL     bad argument (name length, namespace, flags)
 */
#define SHOAL_EAGAIN	 (-EAGAIN)
#define SHOAL_EMSGSIZE	 (-EMSGSIZE)
#define SHOAL_ENOENT	 (-ENOENT)
#define SHOAL_EEXIST	 (-EEXIST)
#define SHOAL_ENOSPC	 (-ENOSPC)
#define SHOAL_ETIMEDOUT	 (-ETIMEDOUT)
#define SHOAL_EOWNERDEAD (-EOWNERDEAD)
#define SHOAL_ESTALE	 (-ESTALE)

/*
 * An agent handle: slot index in the low 32 bits, generation in the high 32 bits. The
 * generation changes only when the slot is freed and reused, never on a restart, so a
 * handle outlives its agent's crashes. 0 is never a valid handle.
 */
typedef uint64_t shoal_handle_t;

#define SHOAL_HANDLE_NONE ((shoal_handle_t)0)

static inline shoal_handle_t shoal_handle_make(uint32_t slot, uint32_t gen)
{
	return ((uint64_t)gen << 32) | slot;
}

static inline uint32_t shoal_handle_slot(shoal_handle_t h)
{
	return (uint32_t)h;
}

static inline uint32_t shoal_handle_gen(shoal_handle_t h)
{
	return (uint32_t)(h >> 32);
}

/* Names are 1..SHOAL_NAME_MAX bytes, no NUL inside. */
#define SHOAL_NAME_MAX 63
/* Registry entries carry a fixed metadata blob of up to this many bytes. */
#define SHOAL_META_MAX 24

/*
 * Message flags a receiver sees (an agent's callbacks, a client's shoal_client_recv()).
 * SHOAL_MSG_ERROR: with SHOAL_MSG_REPLY, the call failed; type is the errno and there is no
 * payload (ECANCELED: dropped as a poison message; else handle_call's own error).
 */
#define SHOAL_MSG_REDELIVERED 0x1u  /* its worker died while handling it before */
#define SHOAL_MSG_CALL	      0x2u  /* a call: handle_call's reply goes back to the caller */
#define SHOAL_MSG_REPLY	      0x4u  /* the reply to an async call; ref says which */
#define SHOAL_MSG_SYSTEM      0x8u  /* from the engine: type is SHOAL_T_DOWN or SHOAL_T_UP */
#define SHOAL_MSG_ERROR	      0x10u /* see above */
#define SHOAL_MSG_ROUND	      0x20u /* a broadcast with acks: acked when the handler returns */
/*
 * From an Erlang node (the [dist] gateway): the payload is an Erlang term in its external
 * term format, version byte (131) first, as term_to_binary/1 makes it (binary_to_term/1
 * reads it back). Without the flag a message from Erlang was a binary, handed byte for byte.
 */
#define SHOAL_MSG_TERM 0x40u

/* Engine message types (with SHOAL_MSG_SYSTEM); the payload is a struct shoal_down. */
#define SHOAL_T_DOWN 1u
#define SHOAL_T_UP   2u

/*
 * Broadcast with acknowledgements (shoal_client_broadcast_acked(), shoal_broadcast_acked()):
 * every member of a group gets the message (flagged SHOAL_MSG_ROUND) and is acknowledged
 * when its handler returns. What each member did:
 */
#define SHOAL_ROUND_ABSENT 0u /* no answer by the deadline */
#define SHOAL_ROUND_ACKED  1u /* its handler returned */
#define SHOAL_ROUND_DEAD                                                                           \
	2u /* it died (its worker, or its handler failed), stopped, or could                       \
	    * not be reached: counted at once, not at the timeout */

/* One member of a round, as the result lists it. */
struct shoal_round_member {
	shoal_handle_t handle;
	uint32_t state; /* SHOAL_ROUND_* */
	uint32_t rsvd;	/* zero */
};

/*
 * An agent's round ended: a message with SHOAL_MSG_SYSTEM, type SHOAL_T_ROUND and this
 * payload, to the agent that started it.
 */
#define SHOAL_T_ROUND 3u
struct shoal_round_done {
	uint64_t ref;	     /* the round's reference (shoal_broadcast_acked()'s *ref_out) */
	uint32_t members;    /* members at the start */
	uint32_t acked;	     /* of those, acknowledged */
	uint32_t dead;	     /* died, stopped or unreachable */
	uint32_t absent;     /* no answer by the deadline */
	uint64_t elapsed_ns; /* from the start to the last answer or the deadline */
};

/* Where a spawned agent goes (shoal_client_spawn(), shoal_spawn_async()). */
#define SHOAL_WHERE_ANY	   0u /* the least loaded running worker */
#define SHOAL_WHERE_WORKER 1u /* worker index `where` (running, or being restarted) */
#define SHOAL_WHERE_NODE   2u /* the least loaded worker on NUMA node `where` */

/*
 * The answer to an agent's shoal_spawn_async() or shoal_stop_async(): a message with
 * SHOAL_MSG_REPLY, the request's reference, type SHOAL_T_CTL and this payload.
 */
#define SHOAL_T_CTL 0x4c544353u
struct shoal_ctl_result {
	int32_t rc;	       /* 0, or the supervisor's verdict (as shoal_client_spawn/stop) */
	int32_t worker;	       /* the worker chosen (spawn) or hosting the agent (stop), -1 none */
	shoal_handle_t handle; /* the agent's handle, SHOAL_HANDLE_NONE none */
	int32_t node;	       /* that worker's NUMA node, -1 unknown */
	uint32_t rsvd;	       /* zero */
};

/*
 * Tasks (shoal_client_task_run(), shoal_task_run()): a short-lived agent of a type, started
 * on the least loaded running worker, receives the task's argument as a call of this type
 * from the caller; its reply (to that call) is the task's result. It should then stop
 * itself (shoal_stop_self()): the supervisor stops one still there at the task's deadline.
 */
#define SHOAL_T_TASK 0x4b534154u /* "TASK" */

/*
 * Agent pools: a queued checkout's answer is a message with SHOAL_MSG_REPLY, the checkout's
 * reference and type SHOAL_T_POOL, carrying this payload; or SHOAL_MSG_REPLY |
 * SHOAL_MSG_ERROR with type ETIMEDOUT when its timeout passed first.
 */
#define SHOAL_T_POOL	    0x4c4f4f50u /* "POOL" */
#define SHOAL_POOL_NAME_MAX 47		/* a pool's name: 1..47 bytes */

struct shoal_pool_grant {
	shoal_handle_t agent; /* the agent checked out: check it in when done */
	uint64_t rsvd;	      /* zero */
};

/*
 * Resource allocation rounds (shoal_client_allocate(), shoal_allocate()): every member of a
 * group gets an ask (type SHOAL_T_ALLOC_ASK, flagged SHOAL_MSG_ROUND, a struct
 * shoal_alloc_ask) and reports its demand for the named resource with shoal_alloc_demand()
 * from handle() (a client inbox: shoal_client_alloc_demand() once shoal_client_recv() took
 * the ask). When every member has answered or died, or at the timeout, the initiator's
 * policy divides the capacity among the members that reported a demand, and each of them
 * gets its share as a message of type SHOAL_T_ALLOC (a struct shoal_alloc_share) from the
 * initiator. A member that died, did not answer in time or answered without a demand is
 * left out: the others' shares are computed without it.
 */
#define SHOAL_T_ALLOC_ASK      0x4b534141u /* "AASK": the round's message to each member */
#define SHOAL_T_ALLOC	       0x434f4c41u /* "ALOC": a member's share */
#define SHOAL_T_ALLOC_DONE     0x454e4f44u /* "DONE": an agent's allocation ended (a reply) */
#define SHOAL_ALLOC_NAME_MAX   31	   /* a resource's name: 1..31 bytes */
#define SHOAL_ALLOC_DEMAND_MAX 0xfffffffeu /* a demand: 0..this many units */

/* The ask each member gets. */
struct shoal_alloc_ask {
	char resource[SHOAL_ALLOC_NAME_MAX + 1]; /* NUL-terminated */
	uint64_t capacity;			 /* units being divided */
};

/* A member's share. */
struct shoal_alloc_share {
	char resource[SHOAL_ALLOC_NAME_MAX + 1]; /* NUL-terminated */
	uint64_t ref;				 /* the ref of the ask this member answered */
	uint64_t share;				 /* units granted to it */
	uint64_t demand;			 /* what it reported */
	uint64_t capacity;			 /* what was divided */
};

/* What a member did in an allocation round (the first three as SHOAL_ROUND_*). */
#define SHOAL_ALLOC_ABSENT   0u /* no answer by the deadline: left out */
#define SHOAL_ALLOC_REPORTED 1u /* reported a demand: it has a share */
#define SHOAL_ALLOC_DEAD     2u /* died, stopped, failed or unreachable: left out */
#define SHOAL_ALLOC_NODEMAND 3u /* handled the ask without reporting a demand: left out */

/* One member of an allocation, as its result lists it. */
struct shoal_alloc_member {
	shoal_handle_t handle;
	uint64_t demand;    /* reported (0 unless SHOAL_ALLOC_REPORTED) */
	uint64_t share;	    /* granted (0 unless SHOAL_ALLOC_REPORTED) */
	uint32_t state;	    /* SHOAL_ALLOC_* */
	uint32_t delivered; /* 1: its share message was put in its mailbox */
};

/*
 * An allocation policy: divide capacity among n demands, writing share[0..n). A pure
 * function: the same input gives the same shares. Returns 0 or a negative errno; the engine
 * refuses shares that add up to more than capacity (-ERANGE). Runs in the initiator's process
 * (a client, or the worker of the initiating agent: it must not block).
 */
typedef int (*shoal_alloc_policy_fn)(uint64_t capacity, const uint64_t *demand, uint32_t n,
				     uint64_t *share);
/*
 * Proportional: when the demands add up to at most capacity, each gets its demand; else
 * share_i = floor(capacity * demand_i / total), and the units the floors leave go one each
 * to the largest remainders (ties: the lower index first). 0.
 */
int shoal_alloc_proportional(uint64_t capacity, const uint64_t *demand, uint32_t n,
			     uint64_t *share);
/*
 * Max-min fair (water-filling): each gets min(demand, level) for the highest level the
 * capacity covers; the units left below the next whole level go one each to the unsatisfied
 * members, the lower index first. No share exceeds its demand. 0.
 */
int shoal_alloc_maxmin(uint64_t capacity, const uint64_t *demand, uint32_t n, uint64_t *share);
/* A built-in policy by name: "proportional" or "maxmin"; NULL for another name. */
shoal_alloc_policy_fn shoal_alloc_policy_find(const char *name);

/* A message as a receiver sees it. */
struct shoal_msg {
	shoal_handle_t from; /* sender, SHOAL_HANDLE_NONE if anonymous */
	uint64_t ref;	     /* call/reply reference, 0 for casts */
	uint32_t type;	     /* application type tag */
	uint32_t flags;	     /* SHOAL_MSG_* */
	uint32_t len;	     /* payload bytes */
	const void *data;    /* payload */
};

/* One message of a batched send (shoal_send_batch(), shoal_client_send_batch()). */
struct shoal_out {
	shoal_handle_t to;
	uint32_t type;
	uint32_t len;
	const void *data;
};

/* DOWN/UP monitor notifications (also the payload of the engine's DOWN/UP messages). */
#define SHOAL_DOWN_CRASH   1u /* its worker died (a signal or an exit) */
#define SHOAL_DOWN_FAILED  2u /* its callback failed past its restart intensity */
#define SHOAL_DOWN_STOPPED 3u /* stopped on request */
#define SHOAL_DOWN_ERROR   4u /* a callback failed; it is being restarted */
/* a remote handle (shoal_remote()): its node could not be reached, or the connection to it
 * (or the instance's gateway) was lost; API 1.3 */
#define SHOAL_DOWN_NOCONNECTION 5u
/* a remote handle: no process has its name on that node; API 1.3 */
#define SHOAL_DOWN_NOPROC 6u

struct shoal_down {
	shoal_handle_t target; /* the monitored agent */
	uint64_t ref;	       /* the monitor's reference (shoal_monitor()) */
	uint32_t up;	       /* 0: DOWN, 1: UP (restarted and running again) */
	uint32_t reason;       /* SHOAL_DOWN_*, 0 for UP */
};

/*
 * Coordination variables: named values in the instance's segment, each an int64, a double or
 * a blob of up to the instance's variable_bytes, with a version (0 when created, one more
 * per update) and its last writer's handle, claim tag and CLOCK_REALTIME time. A variable's
 * name lives in the registry's default namespace like an agent's: one name is either.
 * Agents use shoal_var_* (agent.h), clients shoal_client_var_* (client.h). Reads never wait
 * and never write; an update of several variables is atomic (a read of several sees all of
 * it or none of it); a writer killed at any instruction leaves each variable at its old or
 * its new value. Errors besides those above: -EBUSY (compare-and-set: the version moved),
 * -EPROTOTYPE (a value of another type than the variable's), -EMSGSIZE (a blob larger than
 * the instance's variable_bytes, or larger than the reader's buffer).
 */
#define SHOAL_VAR_INT	 1u /* int64_t */
#define SHOAL_VAR_DOUBLE 2u /* double */
#define SHOAL_VAR_BLOB	 3u /* bytes */
/* An update's expect for "whatever the version": no compare-and-set. */
#define SHOAL_VAR_ANY UINT64_MAX
/* Variables one update or one read of several may name. */
#define SHOAL_VAR_MANY 16u

/*
 * Subscriptions (shoal_var_subscribe(), shoal_client_var_subscribe()): after each update of a
 * subscribed variable (or of one whose name starts with a subscribed prefix) the subscriber
 * gets a message with SHOAL_MSG_SYSTEM, type SHOAL_T_VAR, the subscription's reference as ref
 * and a struct shoal_var_note. While one is still unread, later updates add none: it means
 * "read the variable", and a read then gets the newest value. An update of several variables
 * sends one per subscription.
 */
#define SHOAL_T_VAR	     4u
#define SHOAL_VAR_SUB_PREFIX 0x1u /* subscribe to every variable whose name starts so */
struct shoal_var_note {
	uint64_t var;	  /* the variable (shoal_var_t) that changed: the first of the update;
			   * 0 when a prefix subscription's refused notification is sent late
			   * (read every variable under the prefix) */
	uint64_t version; /* its version when the notification was sent (read for the newest) */
	uint64_t writer;  /* the writer's handle (0: a re-send after its death) */
	uint64_t sub;	  /* the subscription's reference (also the message's ref) */
	uint32_t count;	  /* variables of the update the subscription covers */
	uint32_t rsvd;	  /* zero */
};

/* A variable resolved by name once (shoal_var_lookup()): reads through it skip the registry. */
typedef uint64_t shoal_var_t;

/* A variable's value as read. Set buf and cap first to read a blob. */
struct shoal_var_value {
	uint32_t type;	       /* SHOAL_VAR_* */
	uint32_t len;	       /* value bytes (8 for a number; a blob's may exceed cap) */
	uint64_t version;      /* 0 when created, one more per update */
	shoal_handle_t writer; /* the last writer: an agent or a client's inbox, 0 none */
	uint64_t writer_tag;   /* its process slot and epoch (slot in the low 16 bits) */
	uint64_t time_ns;      /* CLOCK_REALTIME of that write */
	union {
		int64_t i; /* SHOAL_VAR_INT */
		double d;  /* SHOAL_VAR_DOUBLE */
	} num;
	void *buf;     /* blob: where to copy it (yours) */
	uint32_t cap;  /* bytes at buf */
	uint32_t rsvd; /* zero */
};

/* One variable of an update. */
struct shoal_var_set {
	shoal_var_t var;  /* the variable */
	uint32_t type;	  /* SHOAL_VAR_*: must be the variable's */
	uint32_t len;	  /* bytes at data: 8 for a number, 0..variable_bytes for a blob */
	const void *data; /* the value: an int64_t, a double or the blob's bytes */
	uint64_t expect;  /* compare-and-set: the version it must still have, or SHOAL_VAR_ANY */
};

/*
 * Consensus proposals (shoal_client_propose(), shoal_propose()): a new value for a variable,
 * voted on by every member of a process group, committed by compare-and-set on the version
 * the proposal started from if the rule holds.
 */
#define SHOAL_RULE_MAJORITY  1u /* more than half of the members at the start vote yes */
#define SHOAL_RULE_UNANIMOUS 2u /* every member votes yes */
#define SHOAL_RULE_QUORUM    3u /* at least `quorum` members vote yes */

/*
 * A proposal as a client inbox of the group receives it (shoal_client_recv()): flagged
 * SHOAL_MSG_SYSTEM | SHOAL_MSG_ROUND, this type, an engine-internal payload. Taking it is
 * the inbox's vote: yes.
 */
#define SHOAL_T_VOTE 0x45544f56u /* "VOTE" */

/* What a member's vote callback is asked (struct shoal_agent_type.vote, ABI version 3). */
struct shoal_proposal {
	shoal_var_t var;	 /* the variable */
	const char *name;	 /* its name (NUL-terminated) */
	uint32_t type;		 /* SHOAL_VAR_*: the variable's */
	uint32_t len;		 /* bytes at data: 8 for a number */
	const void *data;	 /* the proposed value: an int64_t, a double or a blob's bytes */
	uint64_t version;	 /* the variable's version the value would replace */
	shoal_handle_t proposer; /* an agent, or a client's inbox */
	uint32_t rule;		 /* SHOAL_RULE_* */
	uint32_t quorum;	 /* with SHOAL_RULE_QUORUM: yes votes needed */
};

/* How a proposal ended (struct shoal_proposal_result.outcome). */
#define SHOAL_PROPOSAL_COMMITTED 1u /* the rule held: the value is the variable's */
#define SHOAL_PROPOSAL_REJECTED	 2u /* every member answered (or died) and the rule failed */
#define SHOAL_PROPOSAL_TIMEDOUT	 3u /* the deadline came first and the rule did not hold */
#define SHOAL_PROPOSAL_CONFLICT                                                                    \
	4u /* another proposal on the variable was open, or the variable moved                     \
	    * during the round: nothing changed; version is the one found */

/*
 * A proposal's outcome: what shoal_client_propose() fills, and the payload of the message
 * an agent's shoal_propose() gets (SHOAL_MSG_SYSTEM, type SHOAL_T_PROPOSAL, ref its ref).
 */
#define SHOAL_T_PROPOSAL 0x50525053u /* "SPRP" */
struct shoal_proposal_result {
	uint64_t ref;	     /* the proposal's reference (shoal_propose()'s *ref_out) */
	uint32_t outcome;    /* SHOAL_PROPOSAL_* */
	int32_t rc;	     /* 0, -ECANCELED, -ETIMEDOUT or -EBUSY: the outcome as an errno */
	uint32_t members;    /* members of the group at the start */
	uint32_t yes;	     /* voted yes */
	uint32_t no;	     /* voted no (a vote callback's error counts as no) */
	uint32_t dead;	     /* died, stopped or unreachable during the round */
	uint32_t absent;     /* no answer by the deadline */
	uint32_t rsvd;	     /* zero */
	uint64_t version;    /* committed: the new version; conflict: the variable's, or the
			      * version the open proposal started from; else the unchanged one */
	uint64_t elapsed_ns; /* from the start to the decision */
};

/*
 * A proposal's outcome as the subscribers of its variable hear it (shoal_var_subscribe(),
 * shoal_client_var_subscribe(), a name or a prefix): once a proposal is decided, every
 * subscription covering the variable gets a message with SHOAL_MSG_SYSTEM, this type, the
 * subscription's reference as ref and a struct shoal_consensus_note followed by the proposed
 * value's value_len bytes. Committed ("reached") or not ("rejected": rejected, timed out or a
 * conflict), each outcome is one message per subscription, never coalesced; a full mailbox
 * refuses it (it is not owed or re-sent), so the proposer never waits for a subscriber. A
 * commit also sends the variable's SHOAL_T_VAR notification, as any update does.
 */
#define SHOAL_T_CONSENSUS 0x534e4f43u /* "CONS" */
struct shoal_consensus_note {
	uint64_t var;		 /* the variable (shoal_var_t) */
	uint64_t sub;		 /* the subscription's reference (also the message's ref) */
	uint64_t version;	 /* as shoal_proposal_result.version: committed, the new version;
				  * else the version the variable had (unchanged) */
	shoal_handle_t proposer; /* an agent, or a client's inbox */
	uint32_t outcome;	 /* SHOAL_PROPOSAL_*: COMMITTED is "reached", others "rejected" */
	uint32_t type;		 /* SHOAL_VAR_*: the proposed value's */
	uint32_t members;	 /* the tally, as shoal_proposal_result's */
	uint32_t yes;		 /* voted yes */
	uint32_t no;		 /* voted no */
	uint32_t dead;		 /* died, stopped or unreachable during the round */
	uint32_t absent;	 /* no answer by the deadline */
	uint32_t len;		 /* the proposed value's bytes (8 for a number) */
	uint32_t value_len;	 /* of those, following this struct: len, or 0 if the value does
				  * not fit in a message (max_msg): read the variable */
	uint32_t rsvd;		 /* zero */
};

/* Return a static English description of a shoal error code (negative errno). */
const char *shoal_strerror(int err);

/* Return the library's version string. Any thread. */
const char *shoal_version(void);

#ifdef __cplusplus
}
#endif

#endif
