/*
 * The console's event lines (shm/log.c): one line per notable event on stderr, with a UTC
 * timestamp, the instance and who, as text or as one JSON object per line (`shoal run
 * --log-format json`), or none (`--quiet`). The supervisor sets the format before it forks;
 * its workers inherit it. Every shoal process may call these.
 */
#ifndef SHM_LOG_H
#define SHM_LOG_H

#include <stdbool.h>

#include <jansson.h>

/* How event lines are written. */
enum shm_log_format {
	SHM_LOG_TEXT = 0, /* "2026-01-31T12:00:00.123Z shoal NAME: who: message" */
	SHM_LOG_JSON,	  /* {"time": ..., "instance": ..., "event": ..., "who": ..., ...} */
	SHM_LOG_QUIET,	  /* events are not written; errors are, as text */
};

/*
 * Set the instance the lines name and their format, for this process and the children it
 * forks afterwards. Call before the first line (a process that never calls it writes text
 * lines naming no instance). Not thread-safe: the process's start-up.
 */
void shm_log_setup(const char *instance, enum shm_log_format format);

/* The format shm_log_setup() set. Any thread. */
enum shm_log_format shm_log_get_format(void);

/*
 * Write one event line to stderr, in one write(2) so lines of several processes sharing the
 * stream never interleave. event names the kind ("worker.exit"), who the actor ("worker 1
 * (pid 42)"), fields (taken over, may be NULL) the event's data for the JSON form, fmt the
 * sentence of the text form (also the JSON "message"). Written unless --quiet. Any thread.
 */
void shm_log_event(const char *event, const char *who, json_t *fields, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The same for an error a person must see: written under --quiet too (as text). Any thread. */
void shm_log_error(const char *event, const char *who, json_t *fields, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "SIGKILL" for 9, or "SIG?" for a number with no name. Any thread. */
const char *shm_log_signal_name(int sig);

#endif
