/*
 * The per-process agent type table: built-ins, host-registered types, dlopen-ed types; and
 * the [types] libraries the supervisor knows by their type names only (it never loads
 * one: their code runs in workers, and first in a child of whoever loads them).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "workers/wrk_int.h"

#define WRK_MAX_TYPES 128u
/* a library whose loading (in its child) takes longer is killed and counts as failed */
#define WRK_TYPES_PROBE_MS 10000

static const struct shoal_agent_type *types[WRK_MAX_TYPES];
static uint32_t ntypes;
static bool builtins_done;

void wrk_types_init(void)
{
	if (builtins_done)
		return;
	builtins_done = true;
	for (unsigned i = 0; wrk_builtin_types[i] && ntypes < WRK_MAX_TYPES; i++)
		types[ntypes++] = wrk_builtin_types[i];
}

static bool is_valid_type_name(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strlen(name);
	return n >= 1 && n < SHM_TYPE_MAX;
}

/*
 * Add a type to this process's table. Returns 0, -EEXIST, -EINVAL, -ENOSPC. Any thread
 * of a process before it forks workers; not thread-safe.
 */
int shoal_agent_type_register(const struct shoal_agent_type *type)
{
	if (!type || !is_valid_type_name(type->name) || !type->init || !type->handle)
		return -EINVAL;
	wrk_types_init();
	for (uint32_t i = 0; i < ntypes; i++)
		if (!strcmp(types[i]->name, type->name))
			return types[i] == type ? 0 : -EEXIST;
	if (ntypes == WRK_MAX_TYPES)
		return -ENOSPC;
	types[ntypes++] = type;
	return 0;
}

/* The type named name (built-ins included), or NULL. Any thread. */
const struct shoal_agent_type *shoal_agent_type_find(const char *name)
{
	wrk_types_init();
	if (!name)
		return NULL;
	for (uint32_t i = 0; i < ntypes; i++)
		if (!strncmp(types[i]->name, name, SHM_TYPE_MAX))
			return types[i];
	return NULL;
}

/*
 * dlopen path and register what it exports (shoal_agent_types[] or shoal_agent_types_init).
 * The handle stays open for the life of the process. Returns types added or -errno.
 */
int shoal_agent_types_load(const char *path, char *err, size_t errlen)
{
	const struct shoal_agent_type *const *tab;
	int (*init_fn)(void);
	uint32_t before;
	void *h;
	int rc;

	wrk_types_init();
	before = ntypes;
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		if (errlen)
			snprintf(err, errlen, "agent types '%s': cannot load: %s", path, dlerror());
		return -ELIBBAD;
	}
	tab = (const struct shoal_agent_type *const *)dlsym(h, "shoal_agent_types");
	if (tab) {
		for (unsigned i = 0; tab[i]; i++) {
			rc = shoal_agent_type_register(tab[i]);
			if (rc) {
				if (errlen)
					snprintf(err, errlen, "agent types '%s': type '%s': %s",
						 path, tab[i]->name ? tab[i]->name : "(null)",
						 rc == -EEXIST ? "a type of that name exists"
							       : "invalid (name, init, handle)");
				return rc;
			}
		}
		return (int)(ntypes - before);
	}
	*(void **)&init_fn = dlsym(h, "shoal_agent_types_init");
	if (init_fn) {
		rc = init_fn();
		if (rc < 0) {
			if (errlen)
				snprintf(err, errlen,
					 "agent types '%s': shoal_agent_types_init "
					 "failed: %s",
					 path, strerror(-rc));
			return rc;
		}
		return (int)(ntypes - before);
	}
	if (errlen)
		snprintf(err, errlen,
			 "agent types '%s': exports neither shoal_agent_types nor "
			 "shoal_agent_types_init",
			 path);
	dlclose(h);
	return -ENOENT;
}

/* A [types] library declared by the supervisor, and how loading it went in this process. */
enum lib_state {
	LIB_UNTRIED = 0, /* declared; not loaded in this process (the supervisor never does) */
	LIB_LOADED = 1,	 /* loaded here: its types are in types[] */
	LIB_FAILED = 2,	 /* loading it here failed or crashed its child: why says how */
};

struct wrk_lib {
	char path[256];
	char names[WRK_MAX_TYPES][SHM_TYPE_MAX]; /* the types its probe registered */
	uint32_t nnames;
	enum lib_state state;
	char why[256];
};

static struct wrk_lib libs[WRK_MAX_LIBS];
static uint32_t nlibs;

/* Read fd until EOF or cap bytes; how many were read. */
static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t k = read(fd, buf + got, cap - got);

		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got;
}

/*
 * Load path in a forked child and collect the names of the types it registered: its
 * constructors and registration are code shoal does not control, and one that aborts,
 * crashes or hangs must only take the child down. The child writes its names (one
 * SHM_TYPE_MAX record each: at most 4 KiB, within a pipe's buffer, so it never blocks on
 * a parent that waits for its exit first) or its error sentence. 0 and the names;
 * -ELIBBAD or -ETIMEDOUT with a sentence in why; another -errno when no child could be made.
 */
static int probe(const char *path, struct wrk_lib *out, char *why, size_t whylen)
{
	static char buf[WRK_MAX_TYPES * SHM_TYPE_MAX + 1];
	struct pollfd pf;
	int fds[2], st = 0, pidfd, r;
	size_t got;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0) {
		char e[256] = "";
		uint32_t before;

		close(fds[0]);
		/* not left behind by a parent that dies meanwhile (a worker, a spare) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		wrk_types_init();
		before = ntypes;
		if (shoal_agent_types_load(path, e, sizeof(e)) < 0) {
			(void)!write(fds[1], e, strlen(e));
			_exit(1);
		}
		for (uint32_t i = before; i < ntypes; i++) {
			char rec[SHM_TYPE_MAX] = "";

			memcpy(rec, types[i]->name, strlen(types[i]->name));
			(void)!write(fds[1], rec, sizeof(rec));
		}
		_exit(0);
	}
	close(fds[1]);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	pf = (struct pollfd){.fd = pidfd, .events = POLLIN};
	if (pidfd >= 0 && poll(&pf, 1, WRK_TYPES_PROBE_MS) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(pidfd);
		close(fds[0]);
		snprintf(why, whylen, "loading it did not finish within %d s (killed)",
			 WRK_TYPES_PROBE_MS / 1000);
		return -ETIMEDOUT;
	}
	if (pidfd >= 0)
		close(pidfd);
	got = read_all(fds[0], buf, sizeof(buf) - 1);
	buf[got] = 0;
	close(fds[0]);
	if (waitpid(pid, &st, 0) != pid)
		return -ECHILD;
	if (WIFSIGNALED(st)) {
		snprintf(why, whylen, "crashed while loading it (signal %d: %s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
		return -ELIBBAD;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(why, whylen, "%s", got ? buf : "loading it failed");
		return -ELIBBAD;
	}
	out->nnames = 0;
	for (size_t off = 0; off + SHM_TYPE_MAX <= got && out->nnames < WRK_MAX_TYPES;
	     off += SHM_TYPE_MAX) {
		/* the child checked each name is shorter than SHM_TYPE_MAX (register) */
		memcpy(out->names[out->nnames], buf + off, SHM_TYPE_MAX);
		out->names[out->nnames++][SHM_TYPE_MAX - 1] = 0;
	}
	return 0;
}

/* The declared library whose probe registered name, or NULL. */
static struct wrk_lib *lib_of(const char *name)
{
	for (uint32_t i = 0; i < nlibs; i++)
		for (uint32_t k = 0; k < libs[i].nnames; k++)
			if (!strncmp(libs[i].names[k], name, SHM_TYPE_MAX))
				return &libs[i];
	return NULL;
}

/* See wrk.h. The supervisor's (or --check's) main thread. */
int wrk_types_declare(const char *path, char *why, size_t whylen)
{
	static struct wrk_lib l;
	struct wrk_lib *at = NULL;
	int r;

	if (strlen(path) >= sizeof(l.path)) {
		snprintf(why, whylen, "path too long (at most %zu bytes)", sizeof(l.path) - 1);
		return -ENAMETOOLONG;
	}
	for (uint32_t i = 0; i < nlibs && !at; i++)
		if (!strcmp(libs[i].path, path))
			at = &libs[i]; /* declared by an earlier check: probed again, replaced */
	if (!at && nlibs == WRK_MAX_LIBS) {
		snprintf(why, whylen, "more than %u type libraries", WRK_MAX_LIBS);
		return -ENOSPC;
	}
	memset(&l, 0, sizeof(l));
	r = probe(path, &l, why, whylen);
	if (r)
		return r;
	for (uint32_t k = 0; k < l.nnames; k++) {
		const struct wrk_lib *o = lib_of(l.names[k]);

		/* its child had only this process's types: another library's are unknown there */
		if (o && o != at) {
			snprintf(why, whylen, "type '%s' is also in library '%s'; rename one",
				 l.names[k], o->path);
			return -EEXIST;
		}
	}
	if (!at)
		at = &libs[nlibs++];
	snprintf(l.path, sizeof(l.path), "%s", path);
	*at = l;
	return 0;
}

/* See wrk.h. The supervisor's main thread. */
void wrk_types_forget(void)
{
	nlibs = 0;
}

/* See wrk.h. Any thread of a process that does not change its tables meanwhile. */
bool wrk_type_is_known(const char *name)
{
	return name && (shoal_agent_type_find(name) || lib_of(name));
}

/* See wrk_int.h. A worker, or a spare preparing to become one; single-threaded. */
int wrk_types_load_libs(void)
{
	char e[256];
	int failed = 0;

	for (uint32_t i = 0; i < nlibs; i++) {
		struct wrk_lib *l = &libs[i];
		struct wrk_lib scratch;

		if (l->state != LIB_UNTRIED) {
			failed += l->state == LIB_FAILED;
			continue;
		}
		/*
		 * A library that passed the supervisor's probe may still fail or crash here (it
		 * depends on this process's environment: memory cap, binding, mapped segment).
		 * In a child first, so a crash costs its agents, not this worker nor a restart
		 * loop into the restart intensity.
		 */
		if (probe(l->path, &scratch, l->why, sizeof(l->why))) {
			l->state = LIB_FAILED;
			failed++;
			continue;
		}
		if (shoal_agent_types_load(l->path, e, sizeof(e)) < 0) {
			snprintf(l->why, sizeof(l->why), "%s", e);
			l->state = LIB_FAILED;
			failed++;
			continue;
		}
		l->state = LIB_LOADED;
	}
	return failed;
}

/* See wrk_int.h. The worker. */
bool wrk_type_failure(const char *name, char *buf, size_t cap)
{
	const struct wrk_lib *l = name ? lib_of(name) : NULL;

	if (!l)
		return false;
	if (l->state == LIB_FAILED)
		snprintf(buf, cap, "type '%.*s' of library '%s' did not load in this worker (%s)",
			 (int)SHM_TYPE_MAX, name, l->path, l->why);
	else if (l->state == LIB_LOADED)
		snprintf(buf, cap,
			 "type '%.*s' of library '%s' was not registered when this worker loaded "
			 "it",
			 (int)SHM_TYPE_MAX, name, l->path);
	else
		snprintf(buf, cap, "type '%.*s' of library '%s' is not loaded in this worker",
			 (int)SHM_TYPE_MAX, name, l->path);
	return true;
}
