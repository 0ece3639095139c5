/* Small helpers: clocks, process identity, names for states. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/shm.h"
#include "shm/trace.h"
#include "shoal/shoal.h"

struct shm_trace_buf shm_trace_buf = {.on = -1};

uint64_t shm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shm_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool shm_put_field(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap)
		return false;
	memcpy(dst, s, n + 1);
	return true;
}

/* See shm.h. Any process: the one parser of /proc/<pid>/stat in shoal. */
int shm_pid_stat_read(pid_t pid, struct shm_pid_stat *out)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	ssize_t n;
	char *p;
	int fd, field;

	memset(out, 0, sizeof(*out));
	out->exit_code = -1;
	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH; /* gone between the open and the read */
	buf[n] = 0;
	/* the comm field (2) may hold spaces and parentheses: fields 3.. follow the last ')' */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EPROTO;
	out->state = p[2];
	/* p at the space before field 3; each strchr moves to the space before the next one */
	p++;
	for (field = 3; field < 22 && p; field++) {
		p = strchr(p + 1, ' ');
		/* p is at the space before field + 1 */
		if (p && field + 1 == 14)
			out->utime = strtoull(p + 1, NULL, 10);
		else if (p && field + 1 == 15)
			out->stime = strtoull(p + 1, NULL, 10);
	}
	if (!p || sscanf(p + 1, "%llu", &start) != 1)
		return -EPROTO;
	out->start_time = start;
	for (; field < 52 && p; field++) {
		p = strchr(p + 1, ' ');
		if (p && field + 1 == 24)
			out->rss_pages = strtoull(p + 1, NULL, 10);
	}
	if (p && field == 52)
		out->exit_code = (int)strtol(p + 1, NULL, 10);
	return 0;
}

/* Field 22 (start time) and field 3 (state) in *state if not NULL; 0 if there is none. */
static uint64_t pid_stat(pid_t pid, char *state)
{
	struct shm_pid_stat st;
	int r = shm_pid_stat_read(pid, &st);

	if (state)
		*state = r ? 0 : st.state;
	return r ? 0 : st.start_time;
}

uint64_t shm_pid_start_time(pid_t pid)
{
	return pid_stat(pid, NULL);
}

bool shm_pid_is_running(pid_t pid, uint64_t start_time)
{
	uint64_t now_start;
	char st;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
		return false;
	/* one read: the same process (start time) and not exited (a zombie, 'Z', or 'X') */
	now_start = pid_stat(pid, &st);
	if (start_time && now_start != start_time)
		return false;
	return st != 'Z' && st != 'X';
}

/* See shm.h. Any process may call it. */
char shm_pid_state(pid_t pid)
{
	char st;

	pid_stat(pid, &st);
	return st;
}

bool shm_pid_is_alive(pid_t pid, uint64_t start_time)
{
	uint64_t now_start;

	if (pid <= 0)
		return false;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	if (!start_time)
		return true;
	now_start = shm_pid_start_time(pid);
	/* a zombie still has its stat; a reused pid has another start time */
	return now_start == start_time;
}

const char *shm_inst_state_name(uint32_t st)
{
	static const char *n[] = {"?",	      "starting", "running",
				  "stopping", "stopped",  "supervisor-dead"};
	return st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

const char *shm_proc_state_name(uint32_t st)
{
	static const char *n[] = {"free", "starting", "running", "stopping", "dead", "exited"};

	/* a hold word (shm/proc.c): a claim, or a reaper's mark, in progress */
	if (st & SHM_PROC_HELD)
		return SHM_PROC_HOLD_PREV(st) ? "reaping" : "claiming";
	return st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

const char *shm_agent_state_name(uint32_t st)
{
	static const char *n[] = {"free", "starting", "running", "down", "stopping", "stopped"};

	return st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

const char *shm_role_name(uint32_t role)
{
	static const char *n[] = {"-", "supervisor", "worker", "client", "gateway"};
	return role < sizeof(n) / sizeof(n[0]) ? n[role] : "?";
}

const char *shm_exit_reason_name(uint32_t r)
{
	static const char *n[] = {"-",		"normal", "exit code", "signal",
				  "memory cap", "hang",	  "vanished"};
	return r < sizeof(n) / sizeof(n[0]) ? n[r] : "?";
}

const char *shoal_version(void)
{
	return SHOAL_VERSION_STRING;
}

const char *shoal_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EAGAIN:
		return "would block: mailbox full or claim busy";
	case -EMSGSIZE:
		return "message larger than the instance's maximum";
	case -ENOENT:
		return "no such name, agent or instance";
	case -EEXIST:
		return "name already registered";
	case -ENOSPC:
		return "table full";
	case -ETIMEDOUT:
		return "timed out";
	case -EOWNERDEAD:
		return "the peer died";
	case -ESTALE:
		return "stale handle: the agent's slot was reused";
	case -EINVAL:
		return "invalid argument";
	case -EBUSY:
		return "compare-and-set lost: the variable's version moved";
	case -EPROTOTYPE:
		return "a value of another type than the variable's";
	default:
		return strerror(err < 0 ? -err : err);
	}
}
