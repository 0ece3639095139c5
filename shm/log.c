/*
 * The console's event lines: see shm/log.h. A line is formatted into one buffer and written
 * with one write(2): the supervisor and its workers share one stderr, and stdio's buffering
 * would let their lines interleave (or lose a worker's on _exit).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/log.h"
#include "shm/shm.h"

#define LINE_MAX_BYTES 2048 /* a longer line is cut (text) or its message cut (JSON) */

/* Set once at start-up, before the workers are forked (they inherit it). */
static enum shm_log_format log_format = SHM_LOG_TEXT;
static char log_instance[SHM_INSTANCE_MAX];

/* See shm/log.h. */
void shm_log_setup(const char *instance, enum shm_log_format format)
{
	snprintf(log_instance, sizeof(log_instance), "%s", instance ? instance : "");
	log_format = format;
}

/* See shm/log.h. */
enum shm_log_format shm_log_get_format(void)
{
	return log_format;
}

/* See shm/log.h. */
const char *shm_log_signal_name(int sig)
{
	const char *n = sig > 0 ? sigabbrev_np(sig) : NULL;
	static __thread char buf[16];

	if (!n)
		return "SIG?";
	snprintf(buf, sizeof(buf), "SIG%s", n);
	return buf;
}

/* The wall clock as ISO 8601 UTC with milliseconds: 2026-01-31T12:00:00.123Z. */
static void timestamp(char out[40])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%03uZ", (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

/* Write all of buf to stderr (a short write to a pipe is continued; errors are dropped). */
static void write_all(const char *buf, size_t n)
{
	while (n) {
		ssize_t k = write(2, buf, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		buf += k;
		n -= (size_t)k;
	}
}

static void vlog(bool error, const char *event, const char *who, json_t *fields, const char *fmt,
		 va_list ap)
{
	char msg[LINE_MAX_BYTES], ts[40], line[LINE_MAX_BYTES];
	int n;

	if (log_format == SHM_LOG_QUIET && !error) {
		json_decref(fields);
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	timestamp(ts);
	if (log_format == SHM_LOG_JSON) {
		json_t *o = json_object();
		char *s;

		/* who and what first, the event's data after: a person reads the JSON too */
		json_object_set_new(o, "time", json_string(ts));
		json_object_set_new(o, "instance", json_string(log_instance));
		json_object_set_new(o, "event", json_string(event));
		json_object_set_new(o, "who", json_string(who));
		json_object_set_new(o, "message", json_string(msg));
		if (error)
			json_object_set_new(o, "error", json_true());
		if (fields && json_is_object(fields))
			json_object_update_missing(o, fields);
		json_decref(fields);
		s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
		json_decref(o);
		if (s) {
			n = snprintf(line, sizeof(line), "%s\n", s);
			free(s);
			if (n > 0 && (size_t)n < sizeof(line)) {
				write_all(line, (size_t)n);
				return;
			}
		}
		/* cannot build it (out of memory) or too long: the text form says it */
	} else {
		json_decref(fields);
	}
	n = snprintf(line, sizeof(line), "%s shoal%s%s: %s: %s\n", ts, log_instance[0] ? " " : "",
		     log_instance, who, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	write_all(line, (size_t)n);
}

/* See shm/log.h. */
void shm_log_event(const char *event, const char *who, json_t *fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(false, event, who, fields, fmt, ap);
	va_end(ap);
}

/* See shm/log.h. */
void shm_log_error(const char *event, const char *who, json_t *fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(true, event, who, fields, fmt, ap);
	va_end(ap);
}
