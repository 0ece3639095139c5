/* The control protocol's client side: see ipc/ctl.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ctl.h"

/* See ctl.h. Any process. */
const char *ipc_ctl_op_name(uint32_t op)
{
	return op == IPC_CTL_SPAWN  ? "spawn"
	       : op == IPC_CTL_STOP ? "stop"
	       : op == IPC_CTL_TASK ? "task"
				    : "?";
}

/* See ctl.h. Any thread. */
int ipc_ctl_task_req(const struct shm_seg *seg, const char *type, const void *arg, uint32_t len,
		     int timeout_ms, void *buf, uint32_t cap)
{
	struct ipc_ctl_req q = {.op = IPC_CTL_TASK, .hint = IPC_CTL_ANY};
	size_t tl = type ? strlen(type) : 0;

	if (!tl || tl >= sizeof(q.type) || timeout_ms <= 0 || (len && !arg))
		return -EINVAL;
	if (len > shm_hdr(seg)->cfg.max_msg - sizeof(q) || sizeof(q) + len > cap)
		return -EMSGSIZE;
	memcpy(q.type, type, tl);
	q.handle = shm_now_ns() + (uint64_t)timeout_ms * 1000000u;
	memcpy(buf, &q, sizeof(q));
	if (len)
		memcpy((uint8_t *)buf + sizeof(q), arg, len);
	return (int)(sizeof(q) + len);
}

/* See ctl.h. Any process with a process slot, an inbox and its waiter. */
int ipc_ctl_task(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox, const char *type,
		 const void *arg, uint32_t len, int timeout_ms, void *reply, uint32_t cap)
{
	const struct shm_hdr *h = shm_hdr(seg);
	shoal_handle_t to;
	void *buf;
	int n;

	if (h->layout_minor < 2)
		return -ENOTCONN;
	n = shm_seg_gone(seg, shm_seg_liveness(seg, 0));
	if (n)
		return n;
	if (h->cfg.max_msg < sizeof(struct ipc_ctl_req))
		return -EMSGSIZE;
	buf = malloc(h->cfg.max_msg);
	if (!buf)
		return -ENOMEM;
	n = ipc_ctl_task_req(seg, type, arg, len, timeout_ms, buf, h->cfg.max_msg);
	if (n < 0)
		goto out_free;
	/* P1: pairs with P0 in sup_ctl_open() (supervisor/control.c). */
	to = atomic_load_explicit(&h->ctl_inbox, memory_order_acquire);
	if (to == SHOAL_HANDLE_NONE) {
		n = -ENOTCONN;
		goto out_free;
	}
	/* a little past the task's deadline: the supervisor's -ETIMEDOUT comes first */
	n = ipc_call(seg, w, inbox, to, IPC_CTL_MSG, buf, (uint32_t)n, reply, cap,
		     timeout_ms + 1000);
	if (n == -ENOENT || n == -ESTALE) {
		/* the verdict (no such type), or the inbox went away: the supervisor is stopping */
		int gone = shm_seg_gone(seg, shm_seg_liveness(seg, 0));

		/* relaxed: a status word, as above */
		if (gone)
			n = gone;
		else if (atomic_load_explicit(&h->ctl_inbox, memory_order_relaxed) != to)
			n = -ESHUTDOWN;
	}
out_free:
	free(buf);
	return n;
}

/* See ctl.h. Any process with a process slot, an inbox and its waiter. */
int ipc_ctl_call(struct shm_seg *seg, struct ipc_waiter *w, shoal_handle_t inbox,
		 const struct ipc_ctl_req *req, struct ipc_ctl_reply *rep, int timeout_ms)
{
	const struct shm_hdr *h = shm_hdr(seg);
	shoal_handle_t to;
	int n;

	enum shm_liveness l = shm_seg_liveness(seg, 0);

	if (h->layout_minor < 2)
		return -ENOTCONN;
	n = shm_seg_gone(seg, l);
	if (n)
		return n;
	/* P1: pairs with P0 in sup_ctl_open() (supervisor/control.c). */
	to = atomic_load_explicit(&h->ctl_inbox, memory_order_acquire);
	if (to == SHOAL_HANDLE_NONE) {
		/* relaxed: a status word */
		uint32_t st = atomic_load_explicit(&h->state, memory_order_relaxed);

		return st == SHM_INST_STOPPING || st == SHM_INST_STOPPED ? -ESHUTDOWN : -ENOTCONN;
	}
	if (h->cfg.max_msg < sizeof(*req))
		return -EMSGSIZE;
	n = ipc_call(seg, w, inbox, to, IPC_CTL_MSG, req, sizeof(*req), rep, sizeof(*rep),
		     timeout_ms);
	if (n == -ETIMEDOUT || n == -ENOENT || n == -ESTALE) {
		int gone = shm_seg_gone(seg, shm_seg_liveness(seg, 0));

		if (gone)
			return gone;
		if (n != -ETIMEDOUT)
			return -ESHUTDOWN; /* the inbox went away: the supervisor is stopping */
		return -ETIMEDOUT;
	}
	if (n < 0)
		return n;
	if (n != (int)sizeof(*rep))
		return -EPROTO;
	return 0;
}
