/*
 * The cookie file and node names: checks that need no libei, so the config check and the
 * command line can refuse a bad [dist] before anything starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist/dist.h"

static void say(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* See dist.h. */
int dist_cookie_read(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		say(err, errlen, "cookie file '%s': %s", path, strerror(errno));
		return ret;
	}
	/* the open file's own status: no window for a swap between a check and the read */
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		say(err, errlen, "cookie file '%s': %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		say(err, errlen, "cookie file '%s' is not a regular file", path);
		goto out_close;
	}
	if (st.st_uid != geteuid()) {
		ret = -EPERM;
		say(err, errlen,
		    "cookie file '%s' is owned by uid %u, not by this user (uid %u); the cookie is "
		    "a password: use a file of your own (chown it, or write a new one)",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out_close;
	}
	if (st.st_mode & 077) {
		ret = -EPERM;
		say(err, errlen,
		    "cookie file '%s' has mode %04o: the group or others may read it, and Erlang "
		    "refuses such a cookie too; chmod 600 '%s'",
		    path, (unsigned)(st.st_mode & 07777), path);
		goto out_close;
	}
	n = read(fd, out, cap);
	if (n < 0) {
		ret = -errno;
		say(err, errlen, "cookie file '%s': %s", path, strerror(errno));
		goto out_close;
	}
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	if ((size_t)n >= cap) {
		ret = -EINVAL;
		say(err, errlen, "cookie file '%s': the cookie is longer than %zu bytes", path,
		    cap - 1);
		goto out_close;
	}
	out[n] = 0;
	if (!n || strlen(out) != (size_t)n) {
		ret = -EINVAL;
		say(err, errlen, "cookie file '%s': %s", path,
		    n ? "the cookie holds a NUL byte" : "empty: write the cookie into it");
		goto out_close;
	}
out_close:
	close(fd);
	return ret;
}

/* See dist.h. */
bool dist_is_valid_node(const char *node, char *err, size_t errlen)
{
	const char *at = strchr(node, '@');
	size_t n = strlen(node);

	if (!at || at == node || !at[1] || strchr(at + 1, '@')) {
		say(err, errlen, "a node name is alive@host, e.g. shoal@127.0.0.1");
		return false;
	}
	if (n >= DIST_NODE_MAX) {
		say(err, errlen, "a node name is at most %u bytes", DIST_NODE_MAX - 1);
		return false;
	}
	for (const char *p = node; p < at; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) {
			say(err, errlen, "the alive part (before '@') is of [A-Za-z0-9_-]");
			return false;
		}
	return true;
}
