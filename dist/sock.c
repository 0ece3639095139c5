/*
 * The gateway's sockets for libei (its "user supplied socket implementation", ei.h's
 * ei_socket_callbacks): plain TCP, as libei's own, with one addition. The handshake's name
 * and challenge messages carry the node's capability flags, and libei offers
 * DFLAG_DIST_MONITOR but not DFLAG_DIST_MONITOR_NAME. A BEAM node sends process monitors
 * (erlang:monitor/2) and their DOWNs (MONITOR_P_EXIT) only to a node that offers both
 * (erts's dist.c: erts_dsig_send_monitor(), erts_dsig_send_m_exit()); with one of them it
 * records a C node's monitor and never fires it, and answers a monitor of a C node's
 * process with noconnection at once. The gateway handles monitors itself (gateway.c:
 * on_monitor_ctl(), on_proxy_down()), so its handshake adds the missing flag: these
 * callbacks set it as libei writes that message. Nothing else in the handshake depends on
 * the flags (the digests cover the challenge and the cookie only). They also keep the
 * peer's flags, read from its own name or challenge message (dist_sock_peer_flags()): a
 * monitor by name goes only to a node that offers them, as erts sends it.
 *
 * libei drives the timeouts (this table does not set EI_SCLBK_FLG_FULL_IMPL): it waits on
 * get_fd()'s descriptor before each read, write, accept and connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ei.h>

#include "dist/dist_int.h"

/* One socket: its descriptor, and whether its handshake is over (no flags to set). */
struct sock {
	int fd;
	bool done;
	bool patched; /* our flags set (once: a partial write's rest is no message start) */
};

/* The flags each connected peer offered, by descriptor (0: unknown); under DIST_FD_MAX */
#define DIST_FD_MAX 4096
static _Atomic uint32_t peer_flags[DIST_FD_MAX];

/* See dist_int.h. */
bool dist_sock_offer_monitors = true;

/* See dist_int.h. */
uint32_t dist_sock_peer_flags(int fd)
{
	/* relaxed: this process's threads only; a connection's handshake (which sets it) is
	 * over before the gateway uses the descriptor, under its lock */
	return fd >= 0 && fd < DIST_FD_MAX
		       ? atomic_load_explicit(&peer_flags[fd], memory_order_relaxed)
		       : 0;
}

/*
 * A new descriptor fd (< 0: the call that made it failed, errno says why) as a socket in
 * *ctx, its peer's flags unknown. 0, or an errno value (fd closed).
 */
static int sock_wrap(int fd, void **ctx)
{
	struct sock *s;

	if (fd < 0)
		return errno;
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return ENOMEM;
	}
	s->fd = fd;
	if (fd < DIST_FD_MAX) /* relaxed: as in dist_sock_peer_flags() */
		atomic_store_explicit(&peer_flags[fd], 0, memory_order_relaxed);
	*ctx = s;
	return 0;
}

static int sk_socket(void **ctx, void *setup)
{
	(void)setup;
	return sock_wrap(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ctx);
}

static int sk_close(void *ctx)
{
	struct sock *s = ctx;
	int r = close(s->fd) < 0 ? errno : 0;

	free(s);
	return r;
}

static int sk_listen(void *ctx, void *addr, int *len, int backlog)
{
	struct sock *s = ctx;
	socklen_t l = (socklen_t)*len;
	int one = 1;

	/* a restarted gateway listens again on its port at once */
	(void)setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->fd, addr, l) < 0 || listen(s->fd, backlog) < 0 ||
	    getsockname(s->fd, addr, &l) < 0)
		return errno;
	*len = (int)l;
	return 0;
}

static int sk_accept(void **ctx, void *addr, int *len, unsigned tmo)
{
	struct sock *ls = *ctx;
	socklen_t l = (socklen_t)*len;
	int r = sock_wrap(accept4(ls->fd, addr, &l, SOCK_CLOEXEC), ctx);

	(void)tmo;
	if (!r)
		*len = (int)l;
	return r;
}

static int sk_connect(void *ctx, void *addr, int len, unsigned tmo)
{
	struct sock *s = ctx;

	(void)tmo;
	return connect(s->fd, addr, (socklen_t)len) < 0 ? errno : 0;
}

static int sk_writev(void *ctx, const void *iov, int iovcnt, ssize_t *len, unsigned tmo)
{
	struct sock *s = ctx;
	ssize_t w = writev(s->fd, iov, iovcnt);

	(void)tmo;
	if (w < 0)
		return errno;
	*len = w;
	return 0;
}

/*
 * A handshake message as libei writes it (2-byte length first): the name or challenge
 * message gets DFLAG_DIST_MONITOR_NAME in its flags, in a copy. The 'N' form (OTP 23's
 * handshake) holds 8 flag bytes after the tag, the old 'n' form a 2-byte version and 4.
 */
static int sk_write(void *ctx, const char *buf, ssize_t *len, unsigned tmo)
{
	struct sock *s = ctx;
	char copy[512];
	size_t at = 0;
	ssize_t w;

	(void)tmo;
	if (!s->patched && *len >= 11 && (size_t)*len <= sizeof(copy) && buf[2] == 'N')
		at = 3 + 4; /* the low 32 bits of the 64 */
	else if (!s->patched && *len >= 9 && (size_t)*len <= sizeof(copy) && buf[2] == 'n')
		at = 3 + 2;
	if (at && !s->done && dist_sock_offer_monitors) {
		uint32_t f;

		memcpy(copy, buf, (size_t)*len);
		memcpy(&f, copy + at, 4);
		f = htonl(ntohl(f) | DIST_DFLAG_MONITOR_NAME);
		memcpy(copy + at, &f, 4);
		buf = copy;
		s->patched = true;
	}
	w = write(s->fd, buf, (size_t)*len);
	if (w < 0)
		return errno;
	*len = w;
	return 0;
}

/*
 * Read; in the handshake, a message body that starts with 'N' or 'n' is the peer's name or
 * challenge (libei reads a message's 2-byte length, then its body): its flags are kept.
 */
static int sk_read(void *ctx, char *buf, ssize_t *len, unsigned tmo)
{
	struct sock *s = ctx;
	ssize_t r = read(s->fd, buf, (size_t)*len);

	(void)tmo;
	if (r < 0)
		return errno;
	if (!s->done && s->fd < DIST_FD_MAX &&
	    ((r >= 9 && buf[0] == 'N') || (r >= 7 && buf[0] == 'n'))) {
		uint32_t f;

		memcpy(&f, buf + (buf[0] == 'N' ? 5 : 3), 4);
		/* relaxed: as in dist_sock_peer_flags() */
		atomic_store_explicit(&peer_flags[s->fd], ntohl(f), memory_order_relaxed);
	}
	*len = r;
	return 0;
}

static int sk_header_size(void *ctx, int *sz)
{
	(void)ctx;
	*sz = 2; /* the handshake's messages: a 2-byte length */
	return 0;
}

/* The handshake is over: no more flags to set; small messages go out at once. */
static int sk_done(void *ctx)
{
	struct sock *s = ctx;
	int one = 1;

	s->done = true;
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	return 0;
}

static int sk_get_fd(void *ctx, int *fd)
{
	*fd = ((struct sock *)ctx)->fd;
	return 0;
}

/* See dist_int.h. */
ei_socket_callbacks dist_sock_callbacks = {
	.flags = 0,
	.socket = sk_socket,
	.close = sk_close,
	.listen = sk_listen,
	.EI_ACCEPT_NAME = sk_accept,
	.connect = sk_connect,
	.writev = sk_writev,
	.write = sk_write,
	.read = sk_read,
	.handshake_packet_header_size = sk_header_size,
	.connect_handshake_complete = sk_done,
	.accept_handshake_complete = sk_done,
	.get_fd = sk_get_fd,
};
