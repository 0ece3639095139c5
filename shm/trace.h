/*
 * A restart trace for diagnosis: with SHOAL_TRACE set, each process records (label, monotonic
 * ns) pairs in memory and writes them to stderr when told to flush, off the measured path.
 * Lines read "T <pid> <ns> <label>", so the lines of several processes sort into one timeline.
 */
#ifndef SHOAL_SHM_TRACE_H
#define SHOAL_SHM_TRACE_H

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SHM_TRACE_MAX 64

struct shm_trace_buf {
	int on; /* -1 unknown, 0 off, 1 on */
	int n;
	const char *label[SHM_TRACE_MAX];
	unsigned long long ns[SHM_TRACE_MAX];
	int cpu[SHM_TRACE_MAX];
};

extern struct shm_trace_buf shm_trace_buf;

/* Record a label now (a no-op unless SHOAL_TRACE is set). Any single-threaded process. */
static inline void shm_trace(const char *label)
{
	struct timespec ts;

	if (shm_trace_buf.on < 0)
		shm_trace_buf.on = getenv("SHOAL_TRACE") != NULL;
	if (!shm_trace_buf.on || shm_trace_buf.n >= SHM_TRACE_MAX)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	shm_trace_buf.label[shm_trace_buf.n] = label;
	shm_trace_buf.cpu[shm_trace_buf.n] = sched_getcpu();
	shm_trace_buf.ns[shm_trace_buf.n++] =
		(unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Write the recorded labels to stderr and forget them. */
static inline void shm_trace_flush(void)
{
	char buf[SHM_TRACE_MAX * 64];
	int len = 0;

	if (shm_trace_buf.on <= 0 || !shm_trace_buf.n)
		return;
	for (int i = 0; i < shm_trace_buf.n && len < (int)sizeof(buf) - 64; i++)
		len += snprintf(buf + len, sizeof(buf) - (size_t)len, "T %d %llu c%d %s\n",
				(int)getpid(), shm_trace_buf.ns[i], shm_trace_buf.cpu[i],
				shm_trace_buf.label[i]);
	shm_trace_buf.n = 0;
	(void)!write(2, buf, (size_t)len);
}

#endif
