/*
 * shoal send --node: messages from a short-lived C node to a process registered on an Erlang
 * node (a BEAM node, or another shoal instance's gateway).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ei.h>

#include "dist/dist.h"

/* See dist.h. */
int dist_send(const char *node, const char *cookie_file, const char *name, const void *payload,
	      uint32_t len, uint32_t count, int timeout_ms, char *err, size_t errlen)
{
	char cookie[DIST_COOKIE_MAX], alive[MAXATOMLEN + 1], self[DIST_NODE_MAX];
	char target[DIST_NODE_MAX];
	unsigned tmo = timeout_ms > 0 ? (unsigned)timeout_ms : DIST_DEFAULT_TMO;
	const char *host = strchr(node, '@');
	uint32_t sent = 0;
	struct in_addr any = {0};
	ei_x_buff x;
	ei_cnode ec;
	int fd, ret;

	if (!dist_is_valid_node(node, err, errlen))
		return -EINVAL;
	if (!*name || strlen(name) >= MAXATOMLEN) {
		snprintf(err, errlen, "a registered name is 1..%d bytes", MAXATOMLEN - 1);
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
	/*
	 * A hidden node of its own name on the target's host part: a node with long names
	 * (alive@127.0.0.1) refuses one with a short name. It never listens: the target
	 * reaches it only over this connection.
	 */
	snprintf(alive, sizeof(alive), "shoal_send_%d", (int)getpid());
	if ((size_t)snprintf(self, sizeof(self), "%s@%s", alive, host + 1) >= sizeof(self)) {
		snprintf(err, errlen, "node name '%s': its host part is too long", node);
		ret = -EINVAL;
		goto out;
	}
	if (ei_connect_xinit(&ec, host + 1, alive, self, (Erl_IpAddr)&any, cookie, 0) < 0) {
		snprintf(err, errlen, "cannot set up a C node (erl_errno %d)", erl_errno);
		ret = -EIO;
		goto out;
	}
	snprintf(target, sizeof(target), "%s", node);
	fd = ei_connect_tmo(&ec, target, tmo);
	if (fd < 0) {
		snprintf(err, errlen,
			 "cannot connect to node %s: it is not running, not registered with epmd "
			 "on its host, or it refused the cookie in %s",
			 node, cookie_file);
		ret = -ECONNREFUSED;
		goto out;
	}
	if (ei_x_new_with_version(&x) < 0) {
		ret = -ENOMEM;
		goto out_close;
	}
	ei_x_encode_binary(&x, payload, (int)len);
	for (; sent < count; sent++)
		if (ei_reg_send_tmo(&ec, fd, (char *)name, x.buff, x.index, tmo) < 0) {
			snprintf(err, errlen, "sending to %s on %s failed after %u of %u (%s)",
				 name, node, sent, count, strerror(erl_errno));
			break;
		}
	ret = sent == count ? (int)sent : -EIO;
	ei_x_free(&x);
out_close:
	ei_close_connection(fd);
out:
	explicit_bzero(cookie, sizeof(cookie));
	return ret;
}
