/* workers/: what the module's own files share. */
#ifndef WORKERS_WRK_INT_H
#define WORKERS_WRK_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ipc/ipc.h"
#include "shm/event.h"
#include "workers/wrk.h"

/* shm_agent.ctl of a fully spawned agent: held by whichever worker hosts it. */
#define WRK_CTL_HELD UINT64_MAX
/* How long a worker waits for its process slot to be repaired (a spare woken ahead). */
#define WRK_CLAIM_WAIT_NS 5000000000ull

/* How long a worker waits on a full mailbox for a reply or a DOWN/UP before giving up. */
#define WRK_REPLY_TIMEOUT_MS  100
#define WRK_NOTIFY_TIMEOUT_MS 10

/* Default per-agent restart intensity: at most 3 restarts in 5 s. */
#define WRK_RESTART_MAX	      3u
#define WRK_RESTART_PERIOD_MS 5000u

/* One hosted agent, private to its worker. */
struct wrk_agent {
	uint32_t slot;
	shoal_handle_t handle;
	const struct shoal_agent_type *type;
	void *state;
	bool running;	     /* init succeeded and terminate has not run */
	bool stop_requested; /* shoal_stop_self() */
	uint64_t next_tick_ns;
	uint64_t fail_ns[8]; /* times of recent failures (ring), for the intensity */
	uint32_t nfail;
};

/* The context a callback gets: its worker and its agent. */
struct shoal_ctx {
	struct shm_seg *seg;
	struct wrk_agent *agent;
	uint64_t now_ns;
	const struct ipc_msg *msg; /* the message being handled, NULL outside handle */
	uint32_t reply_flags;	   /* handle_call's reply: IPC_F_TERM (shoal_reply_as_term()) */
};

/* The built-in types (builtin.c). Registered once per process by wrk_types_init(). */
extern const struct shoal_agent_type *const wrk_builtin_types[];
/* Register the built-ins if not yet done. */
void wrk_types_init(void);
/*
 * If name is a type of a declared library (wrk_types_declare()), write why it is not in
 * this worker's table (its library failed here, with the reason) to buf and return true.
 */
bool wrk_type_failure(const char *name, char *buf, size_t cap);

/*
 * Coordination variables (var.c): the public API's conversions, shared by the agents'
 * shoal_var_* and the clients' shoal_client_var_* (names in the default namespace; writer:
 * the agent's handle or the client's inbox; wait_ns: the longest wait for a live writer).
 */
int wrk_var_create(struct shm_seg *seg, const char *name, uint32_t type, shoal_var_t *out);
int wrk_var_lookup(const struct shm_seg *seg, const char *name, shoal_var_t *out);
int wrk_var_read(const struct shm_seg *seg, shoal_var_t var, struct shoal_var_value *out);
int wrk_var_read_many(const struct shm_seg *seg, const shoal_var_t *vars, uint32_t n,
		      struct shoal_var_value *out);
int wrk_var_update(struct shm_seg *seg, const struct shoal_var_set *sets, uint32_t n,
		   uint64_t writer, uint64_t wait_ns, uint64_t *cur);
/*
 * Subscribe who (an agent, or a client's inbox with host its process's claim tag) to name, or
 * to the names starting with it (SHOAL_VAR_SUB_PREFIX in flags): 0 and *ref, or -errno.
 */
int wrk_var_subscribe(struct shm_seg *seg, uint64_t who, uint64_t host, const char *name,
		      uint32_t flags, uint64_t *ref);
/* Send who the notifications a full mailbox refused it (now that it has room). How many. */
int wrk_var_catch_up(struct shm_seg *seg, uint64_t who);

/* Checkpoints (ckpt.c). */
uint32_t wrk_ckpt_cap(const struct shm_seg *seg);
int wrk_ckpt_commit(struct shm_seg *seg, uint32_t slot, const void *data, uint32_t len);
/* At (re)start of the consumer: roll back a commit its previous worker left half done. */
void wrk_ckpt_recover(struct shm_seg *seg, uint32_t slot);

/* Monitors (monitor.c). */
/* Send DOWN (up == 0, with reason) or UP to every monitor of target; returns how many. */
int wrk_mon_notify(struct shm_seg *seg, shoal_handle_t target, uint32_t up, uint32_t reason);
/* The same for every agent slot i with mark[i] set (one pass over the table). */
int wrk_mon_notify_marked(struct shm_seg *seg, const uint8_t *mark, uint32_t up, uint32_t reason);
/* Remove every monitor whose watcher is h (an agent that stopped). */
int wrk_mon_drop_watcher(struct shm_seg *seg, shoal_handle_t h);
/*
 * ipc_send_batch() for public batch entries (struct shoal_out), in chunks: shoal_send_batch()
 * and shoal_client_send_batch(). Returns how many were sent, or -errno if none was.
 */
struct shoal_out;
int wrk_send_batch(struct shm_seg *seg, shoal_handle_t from, const struct shoal_out *msgs,
		   uint32_t n, int timeout_ms);
/* Fill res (counts and res->member) from round r: its owner, before ipc_round_end(). */
struct shoal_round_result;
void wrk_round_tally(struct shm_seg *seg, const struct ipc_round *r,
		     struct shoal_round_result *res);
/* Rounds this worker's agents started (round.c). */
/* Has one of them completed (its result is to be posted)? has_work's check. */
bool wrk_rounds_any_done(const struct shm_seg *seg);
/*
 * Post the result of each round that completed or whose deadline passed by now to its
 * agent (SHOAL_T_ROUND) and free its record. Returns how many were posted; *next_deadline
 * gets the earliest deadline of those still open (UINT64_MAX: none).
 */
uint32_t wrk_rounds_poll(struct shm_seg *seg, uint64_t now, uint64_t *next_deadline);
/* The worker stops in order: free the records of its agents' open rounds (no result). */
void wrk_rounds_end_all(struct shm_seg *seg);
/* A client inbox's answer to ask m with demand: shoal_client_alloc_demand(). */
int wrk_alloc_answer(struct shm_seg *seg, const struct shoal_msg *m, uint64_t demand);
/* Allocation rounds this worker's agents started (alloc.c), as the rounds above. */
bool wrk_allocs_any_done(const struct shm_seg *seg);
uint32_t wrk_allocs_poll(struct shm_seg *seg, uint64_t now, uint64_t *next_deadline);
void wrk_allocs_end_all(struct shm_seg *seg);
/*
 * Agent wa's vote on the proposal in round message m (IPC_T_VOTE): its type's vote callback
 * (1 yes; 0, an error or a malformed message: no), or 1 for a type without one. The worker.
 */
struct wrk_agent;
int wrk_vote(struct shoal_ctx *ctx, struct wrk_agent *wa, const struct ipc_msg *m);
/* Remove every monitor of target h (it stopped for good, after DOWN went out). */
int wrk_mon_drop_target(struct shm_seg *seg, shoal_handle_t h);
/* Undo monitor-entry claims of a dead process slot. */
int wrk_mon_repair(struct shm_seg *seg, uint32_t proc_slot);

/* Agent slots (agent.c). */
shoal_handle_t wrk_agent_handle(const struct shm_seg *seg, uint32_t slot);
/*
 * The spawn's claim protocol from the claim to the hand-over: an agent slot of type `type`
 * (its mailbox ready), named `name` in namespace ns when nlen > 0, handed to process slot
 * proc_slot (worker word, then ctl HELD) and that host poked. 0 and *slot_out, or the
 * claim's or the name's error with the slot freed again (-EEXIST: the name is taken). A
 * death at any step is repaired as an interrupted spawn (repair_agent_claims()).
 */
int wrk_agent_make(struct shm_seg *seg, const char *type, uint32_t ns, const char *name,
		   size_t nlen, uint32_t proc_slot, uint32_t *slot_out);
/* Append an event about agent slot `slot` (its handle, name, worker), with reason, code (-1
 * none) and a text: agent.c, see there. */
void wrk_agent_event(struct shm_seg *seg, enum shm_event_kind kind, uint32_t slot, uint32_t reason,
		     int32_t code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Remove names, groups and watcher monitors of a stopping agent, notify DOWN, free. */
void wrk_agent_finish_stop(struct shm_seg *seg, uint32_t slot, uint32_t reason);
/* Bump a worker's agents_gen and ring it. */
void wrk_poke_worker(struct shm_seg *seg, uint32_t proc_slot);

/* Allocation failure under the memory cap: exit WRK_EXIT_MEMCAP. */
void wrk_oom(void) __attribute__((noreturn));

#endif
