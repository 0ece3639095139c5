/* The per-process agent type table: built-ins, host-registered types, dlopen-ed types. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "workers/wrk_int.h"

#define WRK_MAX_TYPES 128u

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
