/*
 * shoal send --node: one message from a short-lived C node to a process registered on an
 * Erlang node (a BEAM node, or another shoal instance's gateway).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ei.h>

#include "dist/dist.h"

/* See dist.h. */
int dist_send(const char *node, const char *cookie_file, const char *name, const void *payload,
	      uint32_t len, int timeout_ms, char *err, size_t errlen)
{
	char cookie[DIST_COOKIE_MAX], self[MAXATOMLEN + 1], target[DIST_NODE_MAX];
	unsigned tmo = timeout_ms > 0 ? (unsigned)timeout_ms : DIST_DEFAULT_TMO;
	ei_x_buff x;
	ei_cnode ec;
	int fd, ret = 0;

	if (!dist_is_valid_node(node, err, errlen))
		return -EINVAL;
	if (strlen(name) > MAXATOMLEN) {
		snprintf(err, errlen, "a registered name is at most %d bytes", MAXATOMLEN);
		return -EINVAL;
	}
	ret = dist_cookie_read(cookie_file, cookie, sizeof(cookie), err, errlen);
	if (ret)
		return ret;
	if (ei_init() != 0) {
		snprintf(err, errlen, "libei did not initialise");
		ret = -EIO;
		goto out;
	}
	/* a hidden C node of its own name: shoal_send_PID, on the target's host */
	snprintf(self, sizeof(self), "shoal_send_%d", (int)getpid());
	if (ei_connect_init(&ec, self, cookie, (unsigned)time(NULL)) < 0) {
		snprintf(err, errlen, "cannot set up a C node (erl_errno %d)", erl_errno);
		ret = -EIO;
		goto out;
	}
	snprintf(target, sizeof(target), "%s", node);
	fd = ei_connect_tmo(&ec, target, tmo);
	if (fd < 0) {
		snprintf(err, errlen,
			 "cannot connect to node %s: not running, not registered with epmd on its "
			 "host, or it refused the cookie in %s",
			 node, cookie_file);
		ret = -ECONNREFUSED;
		goto out;
	}
	if (ei_x_new_with_version(&x) < 0) {
		ret = -ENOMEM;
		goto out_close;
	}
	ei_x_encode_binary(&x, payload, (int)len);
	if (ei_reg_send_tmo(&ec, fd, (char *)name, x.buff, x.index, tmo) < 0) {
		snprintf(err, errlen, "sending to %s on %s failed (erl_errno %d)", name, node,
			 erl_errno);
		ret = -EIO;
	}
	ei_x_free(&x);
out_close:
	ei_close_connection(fd);
out:
	explicit_bzero(cookie, sizeof(cookie));
	return ret;
}
