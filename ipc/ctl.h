/*
 * The control protocol: spawn and stop requests to the supervisor, below both its server
 * (supervisor/control.c) and its clients (workers/client.c, workers/agent.c, the tools),
 * so neither imports the other.
 */
#ifndef IPC_CTL_H
#define IPC_CTL_H

#include <assert.h>
#include <stdint.h>

#include "ipc/ipc.h"
#include "shm/layout.h"

/*
 * Any read-write attached process asks the supervisor to spawn or stop an agent with one
 * ipc_call() to the supervisor's control inbox (its handle is shm_hdr.ctl_inbox): a message
 * of type IPC_CTL_MSG carrying a struct ipc_ctl_req, answered with a struct ipc_ctl_reply.
 * The supervisor validates, does the spawn or stop request with workers/ (wrk_agent_spawn,
 * wrk_agent_stop) and answers at once: it never waits for the agent's init or terminate
 * (wait for those on the change counter). Verdicts (ipc_ctl_reply.rc):
 *   0           done: spawned (handle, worker), or stop requested
 *   -ENOENT     spawn: no agent type of that name; stop: no agent of that name or handle
 *   -EINVAL     a bad name (more than SHOAL_NAME_MAX bytes) or a bad placement hint
 *   -EEXIST     spawn: the name is taken
 *   -ENXIO      spawn: no such worker index, or no worker on that NUMA node
 *   -ENOSPC     spawn: no free agent slot or registry entry
 *   -ESTALE     stop: a handle whose slot was reused
 *   -EALREADY   stop: the agent is already stopping
 *   -EPERM      stop: not an agent a worker hosts (a client's inbox, the control inbox)
 *   -ESHUTDOWN  the instance is stopping
 *   -EPROTO     a malformed request
 * A request whose requester died before it was served is dropped unserved (no reply).
 *
 * A task (IPC_CTL_TASK) is answered differently: the request's argument follows the struct
 * (the message is longer), and the supervisor spawns an unnamed agent of `type` placed as a
 * spawn, hands it the argument as a call from the requester with the request's own ref
 * (type IPC_CTL_TASK_MSG), and answers nothing itself: the agent's reply is the answer. A
 * refusal (the verdicts above, -ENOSPC also for a full task table) is an error reply
 * (IPC_F_ERROR, the errno in the type), as is a task the supervisor ends: -ETIMEDOUT when
 * its agent is still there at the deadline (`handle`: shm_now_ns() + the timeout; the agent
 * is stopped), -ECONNRESET when its worker died (stopped too, not rerun). A late answer
 * after one of those is a duplicate reply, which ipc_call() drops.
 */
#define IPC_CTL_MSG 0x4c544353u /* "SCTL": the message type of requests and replies */

enum ipc_ctl_op {
	IPC_CTL_SPAWN = 1,
	IPC_CTL_STOP = 2,
	IPC_CTL_TASK = 3,
};
/* The message type of a task's argument, as its agent receives it (a call). */
#define IPC_CTL_TASK_MSG 0x4b534154u /* "TASK" */
/* Tasks the supervisor tracks at once: more are refused with -ENOSPC. */
#define IPC_CTL_TASKS_MAX 256u

/* Placement hints for a spawn (ipc_ctl_req.hint). */
enum ipc_ctl_hint {
	IPC_CTL_ANY = 0,    /* the least loaded running worker */
	IPC_CTL_WORKER = 1, /* worker index `where` (running or being restarted) */
	IPC_CTL_NODE = 2,   /* the least loaded worker on NUMA node `where` */
};

/* A control request: the payload of a IPC_CTL_MSG call. Fixed-width, no pointers. */
struct ipc_ctl_req {
	uint32_t op;		 /* enum ipc_ctl_op */
	uint32_t hint;		 /* spawn: enum ipc_ctl_hint */
	int32_t where;		 /* spawn: worker index or node for the hint */
	uint32_t flags;		 /* zero */
	uint64_t handle;	 /* stop: the agent's handle, 0: by name; task: its deadline */
	char type[SHM_TYPE_MAX]; /* spawn: agent type, NUL-terminated */
	char name[64];		 /* spawn: name to register ("" none); stop: name (handle 0) */
};
static_assert(sizeof(struct ipc_ctl_req) == 120, "ipc_ctl_req ABI");

/* The answer to a control request. */
struct ipc_ctl_reply {
	int32_t rc;	 /* 0 or a negative errno (see above) */
	int32_t windex;	 /* the worker chosen (spawn) or hosting the agent (stop), -1 none */
	uint64_t handle; /* the agent's handle, 0 none */
	int32_t node;	 /* that worker's NUMA node, -1 unknown */
	uint32_t rsvd;	 /* zero */
};
static_assert(sizeof(struct ipc_ctl_reply) == 24, "ipc_ctl_reply ABI");

/*
 * The client side: send req to the instance's supervisor from inbox (ipc_inbox_open()) and
 * wait up to timeout_ms for the answer in *rep. Returns 0 when answered (the verdict is
 * rep->rc), -ENOTCONN (the supervisor serves no control requests: not yet, or an older
 * shoal), -ESHUTDOWN (the instance is stopping), -EOWNERDEAD (the supervisor died without
 * answering), -ETIMEDOUT (alive, no answer in time: the request may still be carried out),
 * -EMSGSIZE (the instance's max message is smaller than a request), -EPROTO, or an
 * ipc_call() error. Any process with a process slot, an inbox and its waiter w.
 */
int ipc_ctl_call(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox,
		 const struct ipc_ctl_req *req, struct ipc_ctl_reply *rep, int timeout_ms);
/*
 * Run a task: ask the supervisor to spawn an agent of `type` on the least loaded running
 * worker, hand it arg (len bytes) as a call, and wait up to timeout_ms (> 0) for the
 * agent's reply, copied into reply (cap bytes). Returns the reply's length (may exceed cap),
 * the agent's error, a verdict (as ipc_ctl_call()'s, as an error), -ETIMEDOUT, -ECONNRESET
 * (its worker died), or -EMSGSIZE (arg longer than max_msg less the request). Any process
 * with a process slot, an inbox and its waiter w.
 */
int ipc_ctl_task(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox, const char *type,
		 const void *arg, uint32_t len, int timeout_ms, void *reply, uint32_t cap);
/* A task request (header then arg) into buf (cap bytes): its length, or -EMSGSIZE/-EINVAL. */
int ipc_ctl_task_req(const struct shm_seg *seg, const char *type, const void *arg, uint32_t len,
		     int timeout_ms, void *buf, uint32_t cap);
/* "spawn", "stop", "task", or "?". */
const char *ipc_ctl_op_name(uint32_t op);

#endif
