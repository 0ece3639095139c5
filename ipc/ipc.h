/*
 * ipc: mailboxes (one per agent slot; many producers in any process, one consumer), wakeups
 * (spin, then park in io_uring on a futex or an eventfd) and messaging (cast, batch, call,
 * async call, broadcast).
 *
 * Delivery: a send that returns 0 has put the message in the mailbox; FIFO per (sender,
 * receiver); a full mailbox is -EAGAIN, or a wait up to the timeout. A consumer killed while
 * handling a message gets it again after restart, flagged IPC_F_REDELIVERED.
 */
#ifndef IPC_IPC_H
#define IPC_IPC_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/shm.h"
#include "shoal/shoal.h"

struct io_uring;
struct io_uring_cqe;

/* Message flags. */
#define IPC_F_REDELIVERED 0x1u /* the consumer died while handling it before */
#define IPC_F_CALL	  0x2u /* a call: the receiver must reply with ref */
#define IPC_F_REPLY	  0x4u /* a reply to the call with the same ref */
#define IPC_F_SYSTEM	  0x8u /* engine message (DOWN, UP, control); type says which */
#define IPC_F_ERROR                                                                                \
	0x10u /* with IPC_F_REPLY: the call failed; type is the errno, no                          \
	       * payload (ipc_reply_error) */
/* A broadcast with acknowledgements: ref names the round and member (shm_round_ref()); the
 * receiver answers with ipc_round_answer(). */
#define IPC_F_ROUND 0x20u
/* The payload is an Erlang term in its external term format (from the dist gateway). */
#define IPC_F_TERM 0x40u

/* Engine message types (with IPC_F_SYSTEM). */
#define IPC_T_DOWN  1u /* payload: struct ipc_down */
#define IPC_T_UP    2u /* payload: struct ipc_down (reason 0) */
#define IPC_T_ROUND 3u /* payload: struct shoal_round_done (an agent's round ended) */
#define IPC_T_VAR   4u /* payload: struct shoal_var_note (a subscribed variable changed) */
/* with IPC_F_ROUND: a consensus proposal to vote on (payload: struct ipc_vote_msg) */
#define IPC_T_VOTE 0x45544f56u /* "VOTE" */
/* payload: struct shoal_proposal_result (an agent's proposal ended) */
#define IPC_T_PROPOSAL 0x50525053u
/* payload: struct shoal_consensus_note and the value (a proposal's outcome, to subscribers) */
#define IPC_T_CONSENSUS 0x534e4f43u

/* A message as the consumer sees it; data points into the mailbox until consumed. */
struct ipc_msg {
	shoal_handle_t from; /* sender (its inbox for clients), SHOAL_HANDLE_NONE if anonymous */
	uint64_t ref;	     /* call/reply reference, 0 for casts */
	uint32_t type;	     /* application type tag */
	uint32_t flags;	     /* IPC_F_* */
	uint32_t len;	     /* payload bytes */
	const void *data;    /* payload */
	uint64_t pos;	     /* position in the ring (for ipc_mbox_consume) */
	uint32_t attempts;   /* with IPC_F_REDELIVERED: consumers that died handling it */
};

/* A message whose consumer died this many times handling it is dropped, not delivered. */
#define IPC_POISON_MAX 3u

/*
 * (Re)initialise agent slot's mailbox to empty. The slot's allocator, before use; it then
 * hands the slot out with a release store (H0 or S3), which publishes the init. A mailbox
 * used before continues its positions, so that nothing a sender of the previous incarnation
 * prepared matches the new ring, and waits (at most 1 s) for that incarnation's claims still
 * being written by live senders (see "Re-initialisation" in ipc/mbox.c).
 */
void ipc_mbox_init(struct shm_seg *seg, uint32_t slot);

/*
 * Send one message to `to`. timeout_ms: 0 = -EAGAIN at once when full, < 0 = wait for ever,
 * > 0 = wait up to that long (-ETIMEDOUT). Returns 0, -EMSGSIZE, -ENOENT (no agent in that
 * slot), -ESTALE (handle of a reused slot), -EAGAIN, -ETIMEDOUT. Rings the receiver's
 * worker if it is parked. Any process with a process slot.
 */
int ipc_send(struct shm_seg *seg, shoal_handle_t to, shoal_handle_t from, uint32_t type,
	     uint32_t flags, uint64_t ref, const void *data, uint32_t len, int timeout_ms);

/* One message of a batch. */
struct ipc_out {
	shoal_handle_t to;
	uint32_t type;
	uint32_t len;
	const void *data;
};
/*
 * Send n messages (any receivers), one wake per receiving worker at the end (and before any
 * wait for space). Consecutive messages to the same receiver are claimed together (one
 * claim per run while they fit). Returns how many were sent (in order; stops at the first
 * failure) or a negative error if none was.
 */
int ipc_send_batch(struct shm_seg *seg, shoal_handle_t from, const struct ipc_out *msgs, uint32_t n,
		   int timeout_ms);

/* One message of ipc_send_each(): a batch message with its own flags and reference. */
struct ipc_out_ref {
	shoal_handle_t to;
	uint64_t ref;
	uint32_t type;
	uint32_t flags;
	uint32_t len;
	const void *data;
};
/*
 * Send n messages without ever waiting (engine notifications): consecutive messages to the
 * same receiver are claimed together (one claim per run while they fit), one wake per
 * receiving worker at the end. A receiver that cannot take its message (full, gone) does
 * not stop the others: errs[i] (if errs is not NULL) gets each message's outcome, 0 or
 * -errno. Returns how many were sent. Any process with a process slot.
 */
int ipc_send_each(struct shm_seg *seg, shoal_handle_t from, const struct ipc_out_ref *msgs,
		  uint32_t n, int *errs);

/* --- consumer side: only the process hosting the agent (its worker, or a client inbox) --- */

/*
 * At consumer (re)start: finish a commit the previous consumer left half done and arm the
 * redelivery flag for the message it died handling. Call before the first peek.
 */
void ipc_mbox_recover(struct shm_seg *seg, uint32_t slot);
/* The next message without removing it: 0, or -EAGAIN when empty. Marks it in flight. */
int ipc_mbox_peek(struct shm_seg *seg, uint32_t slot, struct ipc_msg *out);
/*
 * ipc_mbox_peek() for a consumer that spins: up to `spins` reads of the head's stamp (a
 * pause between them) until a message is there, then a peek. 0, or -EAGAIN still empty.
 */
int ipc_mbox_peek_spin(struct shm_seg *seg, uint32_t slot, struct ipc_msg *out, uint32_t spins);
/* Remove the message last returned by peek (after its callback returned). */
void ipc_mbox_consume(struct shm_seg *seg, uint32_t slot, const struct ipc_msg *m);
/*
 * Consume a message peeked with attempts >= IPC_POISON_MAX without handling it: it has
 * killed its consumer that often (a crash or a hang each time). Counted in the stats.
 * The consumer.
 */
void ipc_mbox_drop_poison(struct shm_seg *seg, uint32_t slot, const struct ipc_msg *m);
/*
 * Selective receive: find the first message matching (flags & IPC_F_REPLY, ref) anywhere in
 * the mailbox, copy it out (up to cap bytes into buf) and remove it, leaving the others
 * queued in order. Replies to earlier ipc_call()s (late or duplicate) met on the way are
 * removed too; replies to ipc_call_async() and all other messages stay. 0, or -EAGAIN if
 * none yet.
 */
int ipc_mbox_take_reply(struct shm_seg *seg, uint32_t slot, uint64_t ref, struct ipc_msg *out,
			void *buf, uint32_t cap);
/* Messages queued (a snapshot; for tools; never disturbs the consumer). */
uint32_t ipc_mbox_depth(const struct shm_seg *seg, uint32_t slot);
/* Is a message (or one being written) queued? Stops at the first: the worker's pre-park check. */
bool ipc_mbox_has_msg(const struct shm_seg *seg, uint32_t slot);

/* Counters a tool can read without disturbing anyone. */
struct ipc_mbox_stats {
	uint64_t enqueued, dequeued, full_waits, redelivered, skipped_dead;
	uint32_t depth, cells_used, cells;
	uint64_t stale_replies; /* late or duplicate ipc_call() replies dropped */
	uint64_t poisoned;	/* messages dropped after IPC_POISON_MAX consumer deaths */
	uint32_t queued_max;	/* high-water mark: the deepest queue its consumer saw, in cells
				 * (a message of more than 64 bytes takes several) */
};
void ipc_mbox_stats(const struct shm_seg *seg, uint32_t slot, struct ipc_mbox_stats *st);
/*
 * Raise the mailbox's high-water mark (ipc_mbox_stats.queued_max) to its depth now, in
 * cells, if deeper. Reads tail and head once: the caller calls it once per consume batch,
 * after a peek found a message, never per message. The mailbox's consumer only (its one
 * writer).
 */
void ipc_mbox_note_depth(struct shm_seg *seg, uint32_t slot);

/*
 * Repair after process slot `slot` died: turn its half-written messages into skips so no
 * consumer waits behind them, and advance any tail it left claimed. The supervisor, before
 * the slot is reused. Returns the number of claims resolved.
 */
int ipc_repair_proc(struct shm_seg *seg, uint32_t slot);

/* --- wakeups --- */

enum ipc_wake_mech {
	IPC_WAKE_AUTO = 0,  /* probe: io_uring futex on 6.7+, else the FIFO */
	IPC_WAKE_FUTEX = 1, /* io_uring FUTEX_WAIT on the doorbell */
	IPC_WAKE_FIFO = 2,  /* io_uring read of a FIFO in /dev/shm (see ipc/wake.c) */
	/* the fd path's first name (SHOAL_WAKE=eventfd): an eventfd taken with pidfd_getfd(),
	 * which Yama refuses; a FIFO now */
	IPC_WAKE_EVENTFD = IPC_WAKE_FIFO,
};

/* One per process that consumes (worker or client): its ring and doorbell. Private. */
struct ipc_waiter;

/*
 * Set up the calling process's waiter on its process slot's doorbell. mech AUTO honours
 * $SHOAL_WAKE=futex|fifo (eventfd: the same as fifo). Returns 0, or -ENOSYS if a forced
 * mechanism is unsupported. One waiter per process and instance (the FIFO is named by pid).
 */
int ipc_waiter_create(struct shm_seg *seg, enum ipc_wake_mech mech, struct ipc_waiter **out);
/*
 * ipc_waiter_create() in two halves, for a process that claims its slot later (a warm
 * spare): prepare (probe, ring, FIFO; no slot needed) ahead, attach (publish on the wake
 * line of seg->self) once it owns the slot. 0 or -errno.
 */
int ipc_waiter_prepare(struct shm_seg *seg, enum ipc_wake_mech mech, struct ipc_waiter **out);
int ipc_waiter_attach(struct ipc_waiter *w);
void ipc_waiter_destroy(struct ipc_waiter *w);
enum ipc_wake_mech ipc_waiter_mech(const struct ipc_waiter *w);
/*
 * The io_uring the waiter parks in, so a caller can add its own requests (timers, fds).
 * user_data values whose top 16 bits are 0x5348 ("SH") are the waiter's own; use others.
 */
struct io_uring *ipc_waiter_ring(struct ipc_waiter *w);

/*
 * Spin up to spin_ns checking has_work(arg), then park until rung or timeout_ns passes
 * (timeout_ns 0: no limit). has_work is called after the parked flag is set, so no ring is
 * lost. Returns 1 if work may be there, 0 on timeout, or -errno. Completions the caller
 * added to the ring are handed to on_cqe (may be NULL); one ends the park (returns 1).
 */
int ipc_waiter_wait(struct ipc_waiter *w, uint64_t spin_ns, uint64_t timeout_ns,
		    bool (*has_work)(void *arg), void *arg,
		    void (*on_cqe)(struct io_uring_cqe *cqe, void *arg));

/* Ring process slot `proc`'s doorbell: a syscall only if it is parked. Producers. */
void ipc_ring(struct shm_seg *seg, uint32_t proc);
/* Ring many at once: one io_uring submission for all the parked ones (broadcasts). */
void ipc_ring_many(struct shm_seg *seg, const uint32_t *procs, uint32_t n);

/*
 * Remove the wake FIFOs (/dev/shm/shoal.<instance>:wake.<pid>) of processes that are gone,
 * any instance's: killed processes leave theirs. A waiter does it as it starts; `shoal
 * clean` and a stopping supervisor too. Another user's files are left alone. Any process.
 */
void ipc_wake_sweep(void);

/* --- messaging --- */

/*
 * A client's inbox: an agent slot of type "client" hosted by the calling process, so it can
 * receive replies and monitor messages. Any process with a process slot.
 */
int ipc_inbox_open(struct shm_seg *seg, shoal_handle_t *out);
/*
 * ipc_inbox_open() with the slot's type and name for tools (the supervisor's control inbox:
 * "control"), written before the slot is published (shm_agent_alloc_named()). name may be
 * NULL.
 */
int ipc_inbox_open_as(struct shm_seg *seg, const char *type, const char *name, shoal_handle_t *out);
void ipc_inbox_close(struct shm_seg *seg, shoal_handle_t inbox);

/*
 * Call: send with IPC_F_CALL and a fresh ref from `inbox`, wait up to timeout_ms for the
 * reply (other messages in the inbox stay queued). Returns the reply's payload length (may
 * exceed cap: truncated copy) or -ETIMEDOUT, or a send error, or the error the receiving
 * side answered with (an error reply: -ECANCELED when the call was dropped as a poison
 * message, the handler's own error when handle_call failed). The caller's waiter is used
 * to park.
 */
int ipc_call(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox, shoal_handle_t to,
	     uint32_t type, const void *data, uint32_t len, void *reply, uint32_t cap,
	     int timeout_ms);
/*
 * A fresh reference for a request whose answer comes as a reply to our inbox (sync: only a
 * blocking wait takes it, and a late one is dropped as ipc_call()'s are). Any thread.
 */
uint64_t ipc_ref_new(struct shm_seg *seg, bool sync);
/*
 * Wait up to timeout_ms (< 0: for ever) for the reply carrying ref in inbox, as ipc_call()
 * does after its send: its payload length, the error it carries, -ETIMEDOUT, or the
 * supervisor's exit (-EOWNERDEAD, -ESHUTDOWN).
 */
int ipc_wait_reply(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox, uint64_t ref,
		   void *reply, uint32_t cap, int timeout_ms);
/*
 * An agent removed for good (stopped, or failed past its restart intensity): answer every
 * call still queued in its mailbox with error err (a caller hears it at once instead of
 * waiting out its timeout) and drop the rest. Returns how many calls were answered. Only
 * the process finishing the stop, after the agent's state is STOPPED.
 */
int ipc_refuse_queued(struct shm_seg *seg, shoal_handle_t self, int err);

/*
 * Answer call m with an error instead of a reply: IPC_F_REPLY | IPC_F_ERROR, the positive
 * errno in the type, no payload. Does not wait on a full inbox (a caller that does not read
 * loses it). No-op (0) for a message that is not a call or has no sender.
 */
int ipc_reply_error(struct shm_seg *seg, shoal_handle_t self, const struct ipc_msg *m, int err);
/* Async call: send with IPC_F_CALL; the reply arrives later as a message to `from`. */
int ipc_call_async(struct shm_seg *seg, shoal_handle_t from, shoal_handle_t to, uint32_t type,
		   const void *data, uint32_t len, uint64_t *ref_out);
/* Reply to a call message m, from `self`. */
int ipc_reply(struct shm_seg *seg, shoal_handle_t self, const struct ipc_msg *m, const void *data,
	      uint32_t len);
/*
 * Send one message to each of to[0..n) (the fan-out of ipc_broadcast() and of rounds): one put
 * each, no wait at first; before waiting on a full mailbox (timeout_ms != 0) it rings every
 * worker it owes a wake; one wake per receiving worker at the end. With IPC_F_ROUND in flags
 * message i carries ref + i, else every message carries ref. failed (may be NULL) is told of
 * each receiver the message could not be put for. Returns how many were sent, or the last
 * error if none was. Any process with a process slot.
 */
int ipc_fanout(struct shm_seg *seg, shoal_handle_t from, const shoal_handle_t *to, uint32_t n,
	       uint32_t type, uint32_t flags, uint64_t ref, const void *data, uint32_t len,
	       int timeout_ms, void (*failed)(void *arg, uint32_t i, int err), void *arg);

/*
 * Broadcast to every member of process group `group`: one message each, one wake per
 * worker (batched in one io_uring submission). Returns members reached, or -errno.
 */
int ipc_broadcast(struct shm_seg *seg, shoal_handle_t from, const char *group, uint32_t type,
		  const void *data, uint32_t len, int timeout_ms);

/* --- broadcast with acknowledgements (ipc/round.c) --- */

/* A round as its owner knows it. */
struct ipc_round {
	uint32_t slot;	      /* its round record; UINT32_MAX: none (a group of no members) */
	uint32_t gen;	      /* the record's generation for this round */
	uint32_t members;     /* members at the start */
	uint32_t sent;	      /* messages put (the others count as dead at once) */
	uint64_t start_ns;    /* CLOCK_MONOTONIC */
	uint64_t deadline_ns; /* CLOCK_MONOTONIC */
	uint32_t hist_op;     /* enum shm_hist_op ipc_round_end() records it as: a broadcast (an
			       * ACK round) or consensus (VOTE) round; the caller may change it */
};

/*
 * Start a round: take group's members (sorted by hosting worker, so each worker's answers
 * land in the same words), claim a round record for them, owned by the calling process and
 * naming `owner` (the handle whose process is woken when it completes), and send each member
 * the message flagged IPC_F_ROUND, one wake per worker. A member the message cannot be put
 * for (gone, or its mailbox full past send_timeout_ms) counts as dead at once. Returns 0
 * and *out, or -EMSGSIZE, -ENOENT (no such group), -ENOSPC (every round record in use),
 * -EROFS. Any process with a process slot.
 */
int ipc_round_start(struct shm_seg *seg, shoal_handle_t owner, const char *group, uint32_t type,
		    const void *data, uint32_t len, uint64_t deadline_ns, uint64_t user_ref,
		    int send_timeout_ms, struct ipc_round *out);
/*
 * ipc_round_start() with more say: `flags` added to IPC_F_ROUND on every message, the round
 * record's kind (enum shm_round_kind), and claimed (may be NULL), called once the record is
 * claimed and before it is published and anything is sent: a nonzero return frees the record
 * and is returned (a proposal takes its variable's claim there, and writes the version it
 * read into the message data points to). A group of no members claims nothing and does not
 * call it.
 */
int ipc_round_start_kind(struct shm_seg *seg, shoal_handle_t owner, const char *group,
			 uint32_t type, uint32_t flags, const void *data, uint32_t len,
			 uint64_t deadline_ns, uint64_t user_ref, int send_timeout_ms,
			 uint32_t kind, int (*claimed)(void *arg, uint32_t slot, uint32_t gen),
			 void *arg, struct ipc_round *out);
/*
 * A member's vote on the proposal with reference ref (a message of type IPC_T_VOTE): yes or
 * no, in one CAS. The last answer wakes the owner. Returns as ipc_round_answer().
 */
int ipc_round_vote(struct shm_seg *seg, uint64_t ref, bool yes);
/*
 * A member's answer to the round message with reference ref (a message flagged
 * IPC_F_ROUND): acked once its handler returned, or dead (its handler failed, it was
 * dropped or refused). The last answer wakes the round's owner. Returns 1 if it completed
 * the round, 0 if not, -ESTALE for a late or duplicate answer (counted once: the member's
 * bit decides). The member's consumer (its worker, a client's recv), any process.
 */
int ipc_round_answer(struct shm_seg *seg, uint64_t ref, bool dead);
/*
 * Attach value (< SHM_ROUND_NO_VALUE) to the answer to the round message with reference ref,
 * before ipc_round_answer() (shm_round_set_value()): 0, -EALREADY (the first value stays),
 * -ESTALE, -EINVAL. The member's consumer.
 */
int ipc_round_set_value(struct shm_seg *seg, uint64_t ref, uint32_t value);
/* Has every member answered or died? The owner. */
bool ipc_round_is_complete(const struct shm_seg *seg, const struct ipc_round *r);
/*
 * Wait, parked in w, until the round completes or its deadline passes: 0 complete,
 * -ETIMEDOUT, -EOWNERDEAD / -ESHUTDOWN (the instance went away). The owner (a client).
 */
int ipc_round_wait(struct shm_seg *seg, struct ipc_waiter *w, const struct ipc_round *r);
/* Member idx's handle (may be NULL) and state (enum shm_round_mstate in shm/round.h). */
uint32_t ipc_round_member(const struct shm_seg *seg, const struct ipc_round *r, uint32_t idx,
			  shoal_handle_t *handle);
/* Member idx's value: true and *value if it answered (not dead) with one. The owner. */
bool ipc_round_value(const struct shm_seg *seg, const struct ipc_round *r, uint32_t idx,
		     uint32_t *value);
/* Free the round's record: late answers are then ignored. The owner, once it has read it. */
void ipc_round_end(struct shm_seg *seg, const struct ipc_round *r);

/* --- consensus proposals (ipc/propose.c) --- */

/* What a proposal's members get (IPC_T_VOTE), the value after it. */
struct ipc_vote_msg {
	uint64_t var;		       /* the variable's id */
	uint64_t version;	       /* its version the proposal started from */
	uint64_t proposer;	       /* the proposer's handle */
	uint32_t rule;		       /* SHOAL_RULE_* */
	uint32_t quorum;	       /* SHOAL_RULE_QUORUM's count */
	uint32_t type;		       /* SHOAL_VAR_* */
	uint32_t len;		       /* value bytes after this header */
	char name[SHOAL_NAME_MAX + 1]; /* the variable's name */
};

/* A proposal as its owner knows it. */
struct ipc_proposal {
	struct ipc_round r;
	uint64_t var;		 /* the variable */
	uint64_t base;		 /* its version at the claim: the commit's compare-and-set */
	uint64_t claim;		 /* the claim word's value (the round's ref), 0 none */
	shoal_handle_t proposer; /* the writer the commit records */
	uint32_t rule;
	uint32_t quorum;
	uint32_t type;
	uint32_t len;
	const void *value; /* the caller's: it outlives the proposal */
};

/*
 * Start a proposal: variable `var` (by name, default namespace) to value (type, len, data),
 * voted on by group's members under rule (SHOAL_RULE_*, quorum for QUORUM) until
 * deadline_ns. Claims a round record (a VOTE round), then the variable's proposal claim
 * (reading its version), then sends each member an IPC_T_VOTE message. buf (at least
 * sizeof(struct ipc_vote_msg) + len bytes) holds the message. Returns 0 and *out (a group of
 * no members: out->r.slot UINT32_MAX), -EBUSY (another proposal is open on it: *version its
 * version), -ENOENT (no such variable or group), -EPROTOTYPE, -EMSGSIZE, -EINVAL, -ENOSPC.
 * Any process with a slot.
 */
int ipc_propose_start(struct shm_seg *seg, shoal_handle_t owner, const char *var, uint32_t type,
		      const void *data, uint32_t len, const char *group, uint32_t rule,
		      uint32_t quorum, uint64_t deadline_ns, uint64_t user_ref, int send_timeout_ms,
		      void *buf, uint64_t *version, struct ipc_proposal *out);
/*
 * Decide proposal p now (complete, or its deadline passed): tally, commit if the rule holds
 * (compare-and-set on p->base, waiting up to wait_ns for a live writer), release the claim
 * and the round record, fill *res. Returns 0 decided, -EAGAIN (a live writer held the
 * variable: nothing released, decide again later). The owner.
 */
int ipc_propose_finish(struct shm_seg *seg, struct ipc_proposal *p, uint64_t wait_ns,
		       struct shoal_proposal_result *res);
/* Drop proposal p undecided (its owner stops): the claim, then the record. */
void ipc_propose_abort(struct shm_seg *seg, struct ipc_proposal *p);

#endif
