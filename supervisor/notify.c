/*
 * systemd's readiness protocol (sd_notify(3)): under a unit with Type=notify, systemd puts
 * the path of a datagram socket in $NOTIFY_SOCKET and waits for "READY=1" on it before it
 * calls the service started. The supervisor sends READY=1 once every worker and initial
 * agent is ready (where --ready-fd writes its byte), STATUS= lines with the status line's
 * figures, and STOPPING=1 when an orderly stop begins.
 *
 * Why these few lines and not libsystemd's sd_notify(): the protocol is one sendto() of
 * "KEY=VALUE" lines to a unix socket, documented as stable for this purpose, and linking
 * libsystemd would make every build (and the arm64 cross build) depend on it for that one
 * call. A path starting with '@' names an abstract socket (its first byte NUL).
 *
 * The variable is read and removed from the environment before the first worker is forked:
 * systemd accepts notifications from the main process only (NotifyAccess=main), and a
 * plugin's code in a worker must not be able to tell systemd the instance is ready.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "supervisor/sup_int.h"

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static bool notify_told; /* a failed send was said once */

/* See sup_int.h. */
int sup_notify_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	size_t n;

	if (!e)
		return 0;
	n = strlen(e);
	if ((e[0] != '/' && e[0] != '@') || n < 2 || n >= sizeof(notify_addr.sun_path)) {
		fprintf(stderr,
			"shoal run: NOTIFY_SOCKET='%s' is not a socket path ('/...' or "
			"'@abstract', at most %zu bytes); systemd will not be told of "
			"readiness\n",
			e, sizeof(notify_addr.sun_path) - 1);
		unsetenv("NOTIFY_SOCKET");
		return -EINVAL;
	}
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, e, n);
	if (e[0] == '@')
		notify_addr.sun_path[0] = 0;
	/* an abstract name has no terminating NUL: its length is the address length */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (e[0] == '/'));
	unsetenv("NOTIFY_SOCKET");
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0) {
		int err = errno;

		fprintf(stderr, "shoal run: cannot make a socket to tell systemd: %s\n",
			strerror(err));
		return -err;
	}
	return 0;
}

/* See sup_int.h. */
void sup_notify(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (notify_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1; /* a STATUS= cut short is still a status */
	if (sendto(notify_fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
		   notify_len) < 0 &&
	    !notify_told) {
		int err = errno;
		char path[sizeof(notify_addr.sun_path) + 1];

		notify_told = true;
		snprintf(path, sizeof(path), "%s%s", notify_addr.sun_path[0] ? "" : "@",
			 notify_addr.sun_path[0] ? notify_addr.sun_path : notify_addr.sun_path + 1);
		fprintf(stderr, "shoal run: cannot notify systemd on %s: %s (said once)\n", path,
			strerror(err));
	}
}

/* See sup_int.h. */
void sup_notify_close(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}
