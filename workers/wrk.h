/*
 * workers: the worker process (event loop over its agents' mailboxes), agent spawn/stop,
 * and the repair the supervisor runs after a worker or client died. The contract with
 * supervisor/.
 */
#ifndef WORKERS_WRK_H
#define WORKERS_WRK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"
#include "shoal/agent.h"

/* Exit code of a worker whose allocation failed under its memory cap. */
#define WRK_EXIT_MEMCAP 86

/* What the supervisor tells a worker it forked. */
struct wrk_args {
	uint32_t windex;	   /* worker index 0..nworkers-1 */
	uint32_t proc_slot;	   /* its process slot (claimed again by the worker itself) */
	int32_t core;		   /* core it is pinned to, -1 none (recorded in its slot) */
	int32_t node;		   /* NUMA node, -1 none */
	int ready_fd;		   /* one byte is written here once ready, then closed; -1 none */
	uint64_t start_time;	   /* its /proc starttime if read ahead (a spare), 0: read it */
	struct ipc_waiter *waiter; /* prepared ahead (ipc_waiter_prepare), NULL: create it */
	bool boosted;		   /* started at SCHED_FIFO by the supervisor: back to SCHED_OTHER
				    * once started (see wrk_main) */
	int cg_memory_fd; /* its cgroup's memory.current, read at each telemetry flush; an fd
			   * > 0 (stdin is never one), 0 (unset) or -1: no cgroup */
};

/*
 * The worker: runs in the child the supervisor forked (the segment mapping is inherited,
 * read-write). Loads the declared [types] libraries not loaded yet (wrk_types_load_libs()),
 * claims args->proc_slot, (re)starts its agents, reports ready, then loops
 * until its process state becomes SHM_PROC_STOPPING; runs terminate callbacks and returns
 * 0, or a negative errno if it could not start. Exits the process with WRK_EXIT_MEMCAP
 * when an allocation fails. $SHOAL_WORKER_SPIN_NS sets how long it spins before parking
 * (default 20000); while messages keep coming soon after it parks, it spins longer, up to
 * $SHOAL_WORKER_SPIN_MAX_NS (default 200000; set it to the first to keep the spin fixed).
 * The worker process only.
 */
int wrk_main(struct shm_seg *seg, const struct wrk_args *args);

/*
 * Claim a client process slot. A table full of clients that died unnoticed is not a refusal
 * yet: the claim's reap marks them DEAD, the supervisor is rung to repair them at once
 * (instead of at its next periodic scan), and the claim is retried as slots come free, for
 * up to a second. Returns 0 (seg->self set), -ENOSPC, or -EROFS.
 */
int wrk_client_claim(struct shm_seg *seg);
/*
 * The role the next client claims take (SHM_ROLE_CLIENT unless set): the dist gateway sets
 * SHM_ROLE_GATEWAY before it opens its client, so tools show it as the gateway. A process's
 * main thread, before it attaches.
 */
void wrk_client_set_role(enum shm_role role);
struct shoal_client;
/* The segment a client is attached to (the dist gateway reads its sizes). Any thread. */
struct shm_seg *wrk_client_seg(struct shoal_client *c);
/* The client's waiter (its process's wakeup ring): the gateway waits on it itself. */
struct ipc_waiter *wrk_client_waiter(struct shoal_client *c);

/* The agent type of remote handles' proxies (workers/remote.c), hosted by the gateway. */
#define WRK_REMOTE_TYPE "remote"
/*
 * The proxy of process `name` on Erlang node `node` (alive@host): found in the registry
 * (namespace SHM_NS_REMOTE, key "name@node"), or made and handed to the instance's gateway,
 * which forwards what its mailbox gets. 0 and *out, -EINVAL (a bad node or name, or a key
 * over SHOAL_NAME_MAX bytes), -EHOSTUNREACH (no gateway runs: the instance has no [dist]),
 * -ENOSPC (tables full), -EROFS. Never waits. Any process with a process slot.
 */
int wrk_remote_get(struct shm_seg *seg, const char *node, const char *name, shoal_handle_t *out);
/*
 * After the process in slot `slot` died (a gateway, or a client a proxy was handed to by
 * mistake): the proxies handed to it end, their monitors get DOWN with
 * SHOAL_DOWN_NOCONNECTION. The supervisor, after wrk_repair_proc_claims(). How many ended.
 */
int wrk_repair_remote(struct shm_seg *seg, uint32_t slot);
/*
 * End proxy `slot` with DOWN reason `reason` (its gateway, or the repair): false when another
 * holds its claim (a stop under way ends it).
 */
bool wrk_remote_end(struct shm_seg *seg, uint32_t slot, uint32_t reason);
/*
 * End every handed-over proxy whose host is not a live gateway (a creator or a gateway that
 * died in a window no repair covers): a gateway as it starts, and the supervisor after a
 * repair. How many ended.
 */
int wrk_remote_sweep(struct shm_seg *seg);
/* Whether agent slot `slot` is a remote handle's proxy (its type). */
bool wrk_remote_is_proxy(const struct shm_seg *seg, uint32_t slot);
/*
 * Remote handle h joins (join true) or leaves process group `group`: the group's broadcasts
 * then go to the remote process through the gateway. 0, or -EINVAL (join: h is not a live
 * remote handle; leave: h is neither a remote handle nor one that is over; a bad group
 * name), and shm_grp_join()'s / shm_grp_leave()'s errors.
 */
int wrk_remote_group(struct shm_seg *seg, const char *group, shoal_handle_t h, bool join);
/*
 * Subscribe remote handle h to variable `name` (or, with SHOAL_VAR_SUB_PREFIX, the names
 * that start so): each change goes to the remote process through the gateway. 0 and *ref,
 * or -EINVAL (h is not a live remote handle), and wrk_var_subscribe()'s errors. The
 * subscription ends with the handle, or with shm_var_sub_del(ref, h).
 */
int wrk_remote_var_subscribe(struct shm_seg *seg, shoal_handle_t h, const char *name,
			     uint32_t flags, uint64_t *ref);

/* What a client attachment holds: the segment, and with an inbox its waiter. */
struct wrk_client_parts {
	struct shm_seg *seg;	   /* read-write, with a client process slot */
	struct ipc_waiter *waiter; /* NULL without an inbox */
	shoal_handle_t inbox;	   /* SHOAL_HANDLE_NONE without one */
};

/*
 * Attach to instance as a client, the one way the client API and the tools do it: the
 * segment read-write, a client process slot (wrk_client_claim()), and with_inbox a waiter
 * and an inbox. Returns 0, or -errno with one sentence in err (may be NULL): an attach error
 * (-ENOENT no such instance, a validator's code), -ESHUTDOWN (stopped in order),
 * -EOWNERDEAD (its supervisor died), -ENOSPC (no client slot, or no room for an inbox).
 */
int wrk_client_attach(const char *instance, bool with_inbox, struct wrk_client_parts *out,
		      char *err, size_t errlen);
/* Undo wrk_client_attach(): the inbox (its monitors and groups) and waiter go, detach. */
void wrk_client_detach(struct wrk_client_parts *p);

/*
 * After worker proc_slot died (and after shm_reg_repair/ipc_repair_proc): mark its live
 * agents DOWN (restarts++), send DOWN to their monitors, and undo the dead process's
 * half-done claims on agent slots and monitor entries (what wrk_repair_proc_claims does).
 * The replacement worker then restarts them. Returns the number of agents marked DOWN.
 * The supervisor.
 */
int wrk_repair_worker(struct shm_seg *seg, uint32_t proc_slot);

/*
 * After any process (client, worker) died: undo its half-done claims on agent slots (an
 * interrupted spawn or stop: freed, names removed) and on monitor entries, and remove the
 * monitors whose watcher it hosted. Returns the number of claims resolved. The supervisor,
 * before the slot is reused.
 */
int wrk_repair_proc_claims(struct shm_seg *seg, uint32_t proc_slot);

/*
 * Spawn an agent of `type` named `name` (registered in SHM_NS_DEFAULT; NULL or "" for no
 * name) on worker process slot proc_slot: allocates the agent slot and its mailbox, state
 * STARTING, rings the worker. Returns 0 and the handle, -EINVAL (unknown type or bad name),
 * -EEXIST (name taken), -ENOSPC, -EROFS (no process slot). The caller must hold a process
 * slot (supervisor before forking workers, or any attached read-write process).
 */
int wrk_agent_spawn(struct shm_seg *seg, const char *type, const char *name, uint32_t proc_slot,
		    shoal_handle_t *out);

/*
 * Request an orderly stop of agent h: its worker runs terminate, removes its names, groups
 * and monitors, sends DOWN (stopped) and frees the slot. Returns 0 (requested), -ENOENT
 * (no such agent), -ESTALE (reused slot). Any process with a process slot. If the agent's
 * worker is not running, the caller does the stop itself (no terminate).
 */
int wrk_agent_stop(struct shm_seg *seg, shoal_handle_t h);

/*
 * Monitor target from watcher (an agent, or a client's inbox: ipc_inbox_open()): watcher
 * gets an IPC_F_SYSTEM message IPC_T_DOWN when target crashes or stops and IPC_T_UP when it
 * runs again (payload struct shoal_down). Returns 0 and *ref_out, -ENOSPC (table full),
 * -EINVAL, -EROFS (no process slot). Any process with a process slot.
 */
int wrk_mon_add(struct shm_seg *seg, shoal_handle_t watcher, shoal_handle_t target,
		uint64_t *ref_out);
/* Remove watcher's monitor ref: 0 or -ENOENT. */
int wrk_mon_remove(struct shm_seg *seg, shoal_handle_t watcher, uint64_t ref);

/* The agent slot h names, if it is live (not FREE) and of that generation; else NULL. */
struct shm_agent *wrk_agent_get(const struct shm_seg *seg, shoal_handle_t h);

/*
 * Read agent slot's last committed checkpoint into buf (cap bytes). Returns its length (0:
 * none), or -EAGAIN if a commit kept racing. Any process (read-only attachments too).
 */
int wrk_ckpt_read(const struct shm_seg *seg, uint32_t slot, void *buf, uint32_t cap);

/* How many [types] libraries a process can declare (wrk_types_declare()). */
#define WRK_MAX_LIBS 8u

/*
 * Declare the agent type library at path for this process and the workers it forks: load
 * it in a child process (never here: its code must not run in the supervisor), learn the
 * names of the types it registers, and remember them, so wrk_type_is_known() knows them and
 * wrk_types_load_libs() loads the library in each worker. A path declared before is probed
 * again and its names replaced. Returns 0; -ELIBBAD (it failed or crashed in its child),
 * -ETIMEDOUT (it took over 10 s: killed), -EEXIST (a type of another declared library has
 * one of its names), -ENOSPC (more than WRK_MAX_LIBS), -ENAMETOOLONG, each with a sentence
 * in why; another -errno when no child could be made. The supervisor's main thread (and
 * `shoal run --check`'s), before it forks workers; not thread-safe.
 */
int wrk_types_declare(const char *path, char *why, size_t whylen);

/* Forget every declared library (not the types loaded here). Before forking workers. */
void wrk_types_forget(void);

/*
 * Whether name is an agent type here: built in, registered in this process, or a type of a
 * declared library (loaded or not). Any thread of a process that does not change its type
 * tables meanwhile.
 */
bool wrk_type_is_known(const char *name);

/*
 * Load the declared libraries not yet tried in this process, each in a child process first
 * (one that fails or crashes there is not loaded here, and the agents of its types fail
 * alone, with its reason). Idempotent. Returns how many libraries failed. A worker process
 * before it claims its slot, or a warm spare while it prepares; single-threaded.
 */
int wrk_types_load_libs(void);

/* Type names of the built-in agent types, NULL-terminated (for --help and tools). */
extern const char *const wrk_builtin_type_names[];
/* What each built-in type does, one line each, in wrk_builtin_type_names' order. */
extern const char *const wrk_builtin_type_about[];

/*
 * The agent types this process can start, for the segment's types table: built in (with
 * what each does), registered here by the host program, and each declared library's types
 * (with its path), at most cap entries into out. Returns how many. The supervisor's main
 * thread, after its libraries are declared.
 */
uint32_t wrk_types_list(struct shm_type_entry *out, uint32_t cap);

/* --- agent pools (workers/pool.c over shm/pool.c) --- */
struct shm_pool_note;
/*
 * Tell a pool's waiter what was decided (shm_pool_notify_fn; arg is the segment): a grant
 * or a timeout, as a reply to its checkout's reference. Never waits for room.
 */
int wrk_pool_notify(void *seg, const struct shm_pool_note *n);

/*
 * Notify the subscribers of ids[0..n) after an update (workers/var.c): one message per
 * subscription not already holding one, one wake per worker; never waits. Returns how many
 * were sent. The writer, right after its update.
 */
int wrk_var_notify(struct shm_seg *seg, const uint64_t *ids, uint32_t n, uint64_t writer);
/*
 * After process slot `slot` died (after shm_var_repair()): its subscriptions' leftovers
 * (shm_var_sub_repair()) and the notifications it owed, re-sent. Returns the re-sends. The
 * supervisor, before the slot is reused (with a slot of its own, or the re-sends wait for
 * the next update).
 */
int wrk_var_sub_repair(struct shm_seg *seg, uint32_t slot);
/*
 * A client's blocking checkout from inbox, parking on w: as shoal_client_pool_checkout().
 */
int wrk_pool_client_checkout(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox,
			     const char *pool, int timeout_ms, shoal_handle_t *agent);
/* Check in agent to pool (our process holds it): as shoal_client_pool_checkin(). */
int wrk_pool_checkin(struct shm_seg *seg, const char *pool, shoal_handle_t agent);

/*
 * An allocation round run to its end by a client's thread (alloc.c): shoal_client_allocate()
 * and `shoal allocate`, with the client's segment, waiter and inbox (owner). As
 * shoal_client_allocate() (client.h).
 */
struct ipc_waiter;
struct shoal_alloc_result;
int wrk_alloc_run(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t owner,
		  const char *group, const char *resource, uint64_t capacity,
		  shoal_alloc_policy_fn policy, int timeout_ms, struct shoal_alloc_result *res);

#endif
