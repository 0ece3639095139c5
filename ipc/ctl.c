/* The control protocol's client side: see ipc/ctl.h. */
#include <errno.h>

#include "ipc/ctl.h"

/* See ctl.h. Any process. */
const char *ipc_ctl_op_name(uint32_t op)
{
	return op == IPC_CTL_SPAWN ? "spawn" : op == IPC_CTL_STOP ? "stop" : "?";
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
