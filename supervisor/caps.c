/*
 * Per-worker memory caps: cgroup v2 under a cgroup the configuration names explicitly
 * (never one we were not given), else setrlimit(RLIMIT_DATA) in the child. RLIMIT_DATA
 * rather than RLIMIT_AS: the shared segment and io_uring rings are shared mappings and do
 * not count against it, so the cap bounds what the worker allocates privately.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/sup.h"

static int worker_dir(const struct sup_config *c, uint32_t windex, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s/worker-%u", c->cgroup, windex);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int write_file(const char *dir, const char *file, const char *val)
{
	char path[SUP_PATH_MAX + 64];
	int fd, r = 0;
	size_t n = strlen(val);

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, n) != (ssize_t)n)
		r = -errno;
	close(fd);
	return r;
}

/* See sup.h. Callers: the supervisor, before each fork. */
int sup_cap_prepare(const struct sup_config *c, uint32_t windex)
{
	char dir[SUP_PATH_MAX + 32], val[32];
	int r;

	if (!c->mem_cap)
		return SUP_CAP_NONE;
	if (!c->cgroup[0])
		return SUP_CAP_RLIMIT;
	r = worker_dir(c, windex, dir, sizeof(dir));
	if (r)
		return r;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(val, sizeof(val), "%llu", (unsigned long long)c->mem_cap);
	r = write_file(dir, "memory.max", val);
	if (!r)
		r = write_file(dir, "memory.swap.max", "0");
	if (!r)
		r = write_file(dir, "memory.oom.group", "1");
	return r ? r : SUP_CAP_CGROUP;
}

/* See sup.h. Callers: the forked child. */
int sup_cap_apply_child(const struct sup_config *c, uint32_t windex, int mech)
{
	char dir[SUP_PATH_MAX + 32];
	struct rlimit rl;
	int r;

	switch (mech) {
	case SUP_CAP_RLIMIT:
		rl.rlim_cur = rl.rlim_max = c->mem_cap;
		return setrlimit(RLIMIT_DATA, &rl) < 0 ? -errno : 0;
	case SUP_CAP_CGROUP:
		r = worker_dir(c, windex, dir, sizeof(dir));
		/* "0" moves the writer: the child joins before it touches its own memory */
		return r ? r : write_file(dir, "cgroup.procs", "0");
	default:
		return 0;
	}
}

/* See sup.h. Callers: the forked child, after sup_cap_apply_child(). */
int sup_cap_open_current(const struct sup_config *c, uint32_t windex, int mech)
{
	char dir[SUP_PATH_MAX + 32], path[SUP_PATH_MAX + 64];

	if (mech != SUP_CAP_CGROUP || worker_dir(c, windex, dir, sizeof(dir)))
		return -1;
	snprintf(path, sizeof(path), "%s/memory.current", dir);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* See sup.h. Callers: the supervisor. */
uint64_t sup_cap_oom_kills(const struct sup_config *c, uint32_t windex, int mech)
{
	char dir[SUP_PATH_MAX + 32], path[SUP_PATH_MAX + 64], line[128];
	unsigned long long v = 0;
	FILE *f;

	if (mech != SUP_CAP_CGROUP || worker_dir(c, windex, dir, sizeof(dir)))
		return 0;
	snprintf(path, sizeof(path), "%s/memory.events", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "oom_kill %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}
