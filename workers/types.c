/*
 * The per-process agent type table: built-ins, host-registered types, dlopen-ed types; and
 * the [types] libraries the supervisor knows by their type names only (it never loads
 * one: their code runs in workers, and first in a child of whoever loads them).
 */
#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
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
/* table symbols of this many versions past ours are looked for, to refuse them by name */
#define WRK_ABI_LOOKAHEAD 32u

/* The flags (struct shoal_agent_type.flags) this shoal knows: none yet. */
#define WRK_AGENT_FLAGS_KNOWN 0u

/* How many bytes of struct shoal_agent_type each agent ABI version has (index: version). */
#define ABI_END(field)                                                                             \
	(offsetof(struct shoal_agent_type, field) + sizeof(((struct shoal_agent_type *)0)->field))
static const size_t abi_size[] = {
	[1] = ABI_END(tick),
	[2] = ABI_END(flags),
	[3] = ABI_END(vote),
};
static_assert(sizeof(abi_size) / sizeof(abi_size[0]) == SHOAL_AGENT_ABI_VERSION + 1,
	      "a new agent ABI version needs its size here");
static_assert(ABI_END(vote) == sizeof(struct shoal_agent_type), "the newest version is whole");

/*
 * A registered type: shoal's own full-size copy (what shoal_agent_type_find() returns and
 * workers call through), so no later code reads past the end of a plugin's older struct.
 */
struct wrk_type {
	struct shoal_agent_type t;	    /* the copy, fields of later versions zero */
	const struct shoal_agent_type *src; /* what was registered: the same again is a no-op */
	uint32_t abi;			    /* the version it was registered as */
};

static struct wrk_type types[WRK_MAX_TYPES];
static uint32_t ntypes;
static bool builtins_done;
/* the sentence of the last refused registration, for shoal_agent_types_load() */
static char reg_why[256];
/* the first refusal since shoal_agent_types_load() reset first_rc (an init may go on) */
static int first_rc;
static char first_why[sizeof(reg_why)];

static int type_add(const struct shoal_agent_type *type, uint32_t abi);

void wrk_types_init(void)
{
	if (builtins_done)
		return;
	builtins_done = true;
	for (unsigned i = 0; wrk_builtin_types[i] && ntypes < WRK_MAX_TYPES; i++)
		(void)type_add(wrk_builtin_types[i], SHOAL_AGENT_ABI_VERSION);
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
 * The sentence for a type of an agent ABI newer than ours. Reads nothing of the struct but
 * name, the first field of every version.
 */
static void say_too_new(const char *name, uint32_t abi)
{
	snprintf(reg_why, sizeof(reg_why),
		 "type '%.*s' is built for agent ABI version %u; this shoal supports versions 1 "
		 "to %u: rebuild the library against this shoal's shoal/agent.h, or use a newer "
		 "shoal",
		 (int)SHM_TYPE_MAX, name ? name : "(null)", abi, SHOAL_AGENT_ABI_VERSION);
}

/* Copy type, laid out as version abi, into the table. -errno and reg_why as register's. */
static int type_add(const struct shoal_agent_type *type, uint32_t abi)
{
	struct shoal_agent_type t;

	reg_why[0] = 0;
	if (!type || !abi) {
		snprintf(reg_why, sizeof(reg_why), "%s", !type ? "no type" : "agent ABI version 0");
		return -EINVAL;
	}
	if (abi > SHOAL_AGENT_ABI_VERSION) {
		say_too_new(type->name, abi);
		return -EPROTONOSUPPORT;
	}
	/* the fields its version has, and zero (not set) for those it lacks */
	memset(&t, 0, sizeof(t));
	memcpy(&t, type, abi_size[abi]);
	if (!is_valid_type_name(t.name) || !t.init || !t.handle) {
		snprintf(reg_why, sizeof(reg_why),
			 "type '%.*s': invalid (a name of 1 to %u bytes, init and handle are "
			 "required)",
			 (int)SHM_TYPE_MAX, t.name ? t.name : "(null)", SHM_TYPE_MAX - 1);
		return -EINVAL;
	}
	if (t.flags & ~WRK_AGENT_FLAGS_KNOWN) {
		snprintf(reg_why, sizeof(reg_why),
			 "type '%s': flags %#x unknown to this shoal (it knows %#x): use a newer "
			 "shoal",
			 t.name, t.flags & ~WRK_AGENT_FLAGS_KNOWN, WRK_AGENT_FLAGS_KNOWN);
		return -EPROTONOSUPPORT;
	}
	for (uint32_t i = 0; i < ntypes; i++)
		if (!strcmp(types[i].t.name, t.name)) {
			if (types[i].src == type && types[i].abi == abi)
				return 0;
			snprintf(reg_why, sizeof(reg_why), "type '%s': a type of that name exists",
				 t.name);
			return -EEXIST;
		}
	if (ntypes == WRK_MAX_TYPES) {
		snprintf(reg_why, sizeof(reg_why), "type '%s': more than %u types", t.name,
			 WRK_MAX_TYPES);
		return -ENOSPC;
	}
	types[ntypes++] = (struct wrk_type){.t = t, .src = type, .abi = abi};
	return 0;
}

/*
 * Add a type laid out as agent ABI version abi_version to this process's table (a copy).
 * Returns 0, -EEXIST, -EINVAL, -EPROTONOSUPPORT, -ENOSPC. Any thread of a process before it
 * forks workers; not thread-safe.
 */
int shoal_agent_type_register_abi(const struct shoal_agent_type *type, uint32_t abi_version)
{
	int rc;

	wrk_types_init();
	rc = type_add(type, abi_version);
	if (rc && !first_rc) {
		first_rc = rc;
		memcpy(first_why, reg_why, sizeof(first_why));
	}
	return rc;
}

/*
 * The registration of plugins and programs built before the agent ABI was versioned: their
 * struct is version 1. As shoal_agent_type_register_abi(). Not thread-safe.
 */
int(shoal_agent_type_register)(const struct shoal_agent_type *type)
{
	return shoal_agent_type_register_abi(type, 1);
}

/* The type named name (built-ins included), or NULL. Any thread. */
const struct shoal_agent_type *shoal_agent_type_find(const char *name)
{
	wrk_types_init();
	if (!name)
		return NULL;
	for (uint32_t i = 0; i < ntypes; i++)
		if (!strncmp(types[i].t.name, name, SHM_TYPE_MAX))
			return &types[i].t;
	return NULL;
}

/* The table symbol of agent ABI version abi: version 1's has no suffix. */
static void table_symbol(uint32_t abi, char *buf, size_t cap)
{
	if (abi == 1)
		snprintf(buf, cap, "shoal_agent_types");
	else
		snprintf(buf, cap, "shoal_agent_types_v%u", abi);
}

/*
 * dlopen path and register what it exports: the table of the newest agent ABI version we
 * know (shoal_agent_types_v<N> ... shoal_agent_types for version 1), else
 * shoal_agent_types_init; a table of a newer version only is refused by name. The handle
 * stays open for the life of the process. Returns types added or -errno.
 */
int shoal_agent_types_load(const char *path, char *err, size_t errlen)
{
	const struct shoal_agent_type *const *tab = NULL;
	int (*init_fn)(void);
	uint32_t before, abi;
	char sym[64];
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
	/* the newest we know first: a library may export older tables for older shoals */
	for (abi = SHOAL_AGENT_ABI_VERSION; abi >= 1; abi--) {
		table_symbol(abi, sym, sizeof(sym));
		tab = (const struct shoal_agent_type *const *)dlsym(h, sym);
		if (tab)
			break;
	}
	if (tab) {
		for (unsigned i = 0; tab[i]; i++) {
			rc = shoal_agent_type_register_abi(tab[i], abi);
			if (rc) {
				if (errlen)
					snprintf(err, errlen, "agent types '%s': %s", path,
						 reg_why);
				goto out_forget;
			}
		}
		return (int)(ntypes - before);
	}
	*(void **)&init_fn = dlsym(h, "shoal_agent_types_init");
	if (init_fn) {
		first_rc = 0;
		rc = init_fn();
		/*
		 * A version refusal fails the load even if init went on: the library was built
		 * for another shoal, and its other types are no more to be trusted.
		 */
		if (rc >= 0 && first_rc == -EPROTONOSUPPORT)
			rc = first_rc;
		if (rc < 0) {
			if (errlen && first_rc)
				snprintf(err, errlen, "agent types '%s': %s", path, first_why);
			else if (errlen)
				snprintf(err, errlen,
					 "agent types '%s': shoal_agent_types_init failed: %s",
					 path, strerror(-rc));
			goto out_forget;
		}
		return (int)(ntypes - before);
	}
	for (abi = SHOAL_AGENT_ABI_VERSION + 1; abi <= SHOAL_AGENT_ABI_VERSION + WRK_ABI_LOOKAHEAD;
	     abi++) {
		table_symbol(abi, sym, sizeof(sym));
		tab = (const struct shoal_agent_type *const *)dlsym(h, sym);
		if (tab) {
			say_too_new(tab[0] ? tab[0]->name : NULL, abi);
			if (errlen)
				snprintf(err, errlen, "agent types '%s': %s", path, reg_why);
			return -EPROTONOSUPPORT;
		}
	}
	if (errlen)
		snprintf(err, errlen,
			 "agent types '%s': exports neither a type table (shoal_agent_types_v%u "
			 "... shoal_agent_types) nor shoal_agent_types_init",
			 path, SHOAL_AGENT_ABI_VERSION);
	dlclose(h);
	return -ENOENT;

out_forget:
	/* a library that failed adds none of its types (its handle stays: code may be live) */
	ntypes = before;
	return rc;
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

			memcpy(rec, types[i].t.name, strlen(types[i].t.name));
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

/* Fill e: name, origin and about (cut to fit). */
static void entry_set(struct shm_type_entry *e, const char *name, uint32_t origin,
		      const char *about)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->name, name, strnlen(name, sizeof(e->name) - 1));
	e->origin = origin;
	memcpy(e->about, about, strnlen(about, sizeof(e->about) - 1));
}

/* See wrk.h. The supervisor's main thread. */
uint32_t wrk_types_list(struct shm_type_entry *out, uint32_t cap)
{
	uint32_t n = 0;

	wrk_types_init();
	for (uint32_t i = 0; i < ntypes && n < cap; i++) {
		const char *about = "registered by the program that runs the supervisor";
		uint32_t origin = SHM_TYPE_HOST;

		for (unsigned b = 0; wrk_builtin_types[b]; b++)
			if (types[i].src == wrk_builtin_types[b]) {
				about = wrk_builtin_type_about[b];
				origin = SHM_TYPE_BUILTIN;
			}
		/* a library loaded here is listed below, with its path */
		if (origin == SHM_TYPE_HOST && lib_of(types[i].t.name))
			continue;
		entry_set(&out[n++], types[i].t.name, origin, about);
	}
	for (uint32_t i = 0; i < nlibs; i++)
		for (uint32_t k = 0; k < libs[i].nnames && n < cap; k++)
			entry_set(&out[n++], libs[i].names[k], SHM_TYPE_LIBRARY, libs[i].path);
	return n;
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
