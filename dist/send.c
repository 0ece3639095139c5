/*
 * shoal send --node and shoal call --node: a short-lived hidden C node that connects to an
 * Erlang node (a BEAM node, or another shoal instance's gateway), sends, and for a call waits
 * for the reply.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ei.h>

#include "dist/dist.h"

/*
 * Connect to node as a new hidden node with the cookie in cookie_file: the connection's fd,
 * or -errno with a sentence in err.
 */
static int cnode_connect(ei_cnode *ec, const char *node, const char *cookie_file, unsigned tmo,
			 char *err, size_t errlen)
{
	char cookie[DIST_COOKIE_MAX], alive[MAXATOMLEN + 1], self[DIST_NODE_MAX];
	char target[DIST_NODE_MAX];
	const char *host = strchr(node, '@');
	struct in_addr any = {0};
	int fd, ret;

	if (!dist_is_valid_node(node, err, errlen))
		return -EINVAL;
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
	snprintf(alive, sizeof(alive), "shoal_cli_%d", (int)getpid());
	if ((size_t)snprintf(self, sizeof(self), "%s@%s", alive, host + 1) >= sizeof(self)) {
		snprintf(err, errlen, "node name '%s': its host part is too long", node);
		ret = -EINVAL;
		goto out;
	}
	if (ei_connect_xinit(ec, host + 1, alive, self, (Erl_IpAddr)&any, cookie,
			     (unsigned)time(NULL)) < 0) {
		snprintf(err, errlen, "cannot set up a C node (erl_errno %d)", erl_errno);
		ret = -EIO;
		goto out;
	}
	snprintf(target, sizeof(target), "%s", node);
	fd = ei_connect_tmo(ec, target, tmo);
	if (fd < 0) {
		snprintf(err, errlen,
			 "cannot connect to node %s: it is not running, not registered with epmd "
			 "on its host, or it refused the cookie in %s",
			 node, cookie_file);
		ret = -ECONNREFUSED;
		goto out;
	}
	ret = fd;
out:
	explicit_bzero(cookie, sizeof(cookie));
	return ret;
}

static bool is_valid_name(const char *name, char *err, size_t errlen)
{
	if (*name && strlen(name) < MAXATOMLEN)
		return true;
	snprintf(err, errlen, "a registered name is 1..%d bytes", MAXATOMLEN - 1);
	return false;
}

/* See dist.h. */
int dist_send(const char *node, const char *cookie_file, const char *name, const void *payload,
	      uint32_t len, uint32_t count, int timeout_ms, char *err, size_t errlen)
{
	unsigned tmo = timeout_ms > 0 ? (unsigned)timeout_ms : DIST_DEFAULT_TMO;
	uint32_t sent = 0;
	ei_x_buff x;
	ei_cnode ec;
	int fd, ret;

	if (!is_valid_name(name, err, errlen))
		return -EINVAL;
	fd = cnode_connect(&ec, node, cookie_file, tmo, err, errlen);
	if (fd < 0)
		return fd;
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
	return ret;
}

/* {Ref, Reply} with our Ref: Reply into out. 1 if it was the reply, 0 if not, -errno. */
static int take_reply(const ei_x_buff *x, erlang_ref *ref, struct dist_reply *out)
{
	int i = 0, ver, arity, type, size;
	erlang_ref got;

	if (ei_decode_version(x->buff, &i, &ver) < 0 ||
	    ei_decode_tuple_header(x->buff, &i, &arity) < 0 || arity != 2 ||
	    ei_decode_ref(x->buff, &i, &got) < 0 || ei_cmp_refs(&got, ref) != 0)
		return 0;
	if (ei_get_type(x->buff, &i, &type, &size) < 0)
		return -EPROTO;
	if (type == ERL_BINARY_EXT) {
		long n;

		out->data = malloc((size_t)size + 1);
		if (!out->data)
			return -ENOMEM;
		if (ei_decode_binary(x->buff, &i, out->data, &n) < 0)
			return -EPROTO;
		out->len = (uint32_t)n;
		return 1;
	}
	if (ei_s_print_term(&out->data, x->buff, &i) < 0)
		return -EPROTO;
	out->len = (uint32_t)strlen(out->data);
	out->term = true;
	return 1;
}

/* See dist.h. */
int dist_call(const char *node, const char *cookie_file, const char *name, const void *payload,
	      uint32_t len, int timeout_ms, struct dist_reply *out, char *err, size_t errlen)
{
	unsigned tmo = timeout_ms > 0 ? (unsigned)timeout_ms : DIST_DEFAULT_TMO;
	struct timespec now;
	uint64_t dl;
	erlang_ref ref;
	ei_x_buff x, in;
	ei_cnode ec;
	int fd, ret = -ETIMEDOUT;

	*out = (struct dist_reply){0};
	if (!is_valid_name(name, err, errlen))
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &now);
	dl = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u + tmo;
	fd = cnode_connect(&ec, node, cookie_file, tmo, err, errlen);
	if (fd < 0)
		return fd;
	if (ei_x_new_with_version(&x) < 0) {
		ret = -ENOMEM;
		goto out_close;
	}
	if (ei_x_new(&in) < 0) {
		ret = -ENOMEM;
		goto out_x;
	}
	/* {'$gen_call', {Self, Ref}, Payload}: what gen_server:call/3 sends */
	ei_make_ref(&ec, &ref);
	ei_x_encode_tuple_header(&x, 3);
	ei_x_encode_atom(&x, "$gen_call");
	ei_x_encode_tuple_header(&x, 2);
	ei_x_encode_pid(&x, ei_self(&ec));
	ei_x_encode_ref(&x, &ref);
	ei_x_encode_binary(&x, payload, (int)len);
	if (ei_reg_send_tmo(&ec, fd, (char *)name, x.buff, x.index, tmo) < 0) {
		snprintf(err, errlen, "sending to %s on %s failed (%s)", name, node,
			 strerror(erl_errno));
		ret = -EIO;
		goto out_in;
	}
	for (;;) {
		erlang_msg msg;
		uint64_t ms;
		int r;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
		if (ms >= dl)
			break;
		in.index = 0;
		r = ei_xreceive_msg_tmo(fd, &msg, &in, (unsigned)(dl - ms));
		if (r == ERL_TICK)
			continue;
		if (r == ERL_ERROR) {
			if (erl_errno == ETIMEDOUT || erl_errno == EAGAIN)
				continue;
			snprintf(err, errlen, "the connection to %s failed (%s)", node,
				 strerror(erl_errno));
			ret = -EIO;
			break;
		}
		if (msg.msgtype != ERL_SEND)
			continue;
		r = take_reply(&in, &ref, out);
		if (r < 0) {
			snprintf(err, errlen, "%s on %s answered with a malformed term", name,
				 node);
			ret = r;
			break;
		}
		if (r == 1) {
			ret = 0;
			break;
		}
	}
	if (ret == -ETIMEDOUT)
		snprintf(err, errlen, "'%s' on %s did not answer within %u ms", name, node, tmo);
	if (ret) {
		free(out->data);
		*out = (struct dist_reply){0};
	}
out_in:
	ei_x_free(&in);
out_x:
	ei_x_free(&x);
out_close:
	ei_close_connection(fd);
	return ret;
}
