/*
 * Named namespaces, kept in the registry itself (shm/registry.h): (SHM_NS_NAMES, name) ->
 * number, and (SHM_NS_NUMBERS, "<number>") -> number with the name as metadata, which
 * marks the number taken and gives tools the name back.
 *
 * Creating: claim a free number first (a registration, so of two claimants exactly one
 * wins each number), then register the name. Losing the name to a racing creator gives
 * the number back and returns the winner's. Numbers are tried from a hash of the name, so
 * a name usually gets the same number in every instance and creation rarely meets a taken
 * one. A creator killed between the two registrations leaves a number taken and unnamed:
 * a few bytes of the table, skipped by later creations, never a name that points nowhere.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shm/registry.h"

#define NS_NAMED_COUNT (SHM_NS_NAMED_LAST - SHM_NS_NAMED_FIRST + 1u)

static bool ns_name_ok(const char *name, size_t len)
{
	return name && len >= 1 && len <= SHM_NS_NAME_MAX && !memchr(name, 0, len);
}

/* FNV-1a: only spreads first tries over the numbers; any collision is handled. */
static uint32_t ns_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	return h;
}

static size_t number_key(uint32_t ns, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%u", ns);

	return n > 0 ? (size_t)n : 0;
}

static int ns_lookup(const struct shm_seg *seg, const char *name, size_t len, uint32_t *ns)
{
	shoal_handle_t h;
	int r = shm_reg_lookup(seg, SHM_NS_NAMES, name, len, &h, NULL);

	if (r)
		return r;
	*ns = (uint32_t)h;
	return 0;
}

int shm_ns_get(struct shm_seg *seg, const char *name, size_t len, bool create, uint32_t *ns)
{
	uint32_t start;
	int r;

	if (!ns_name_ok(name, len))
		return -EINVAL;
	r = ns_lookup(seg, name, len, ns);
	if (r != -ENOENT || !create)
		return r;
	start = ns_hash(name, len) % NS_NAMED_COUNT;
	for (uint32_t i = 0; i < NS_NAMED_COUNT; i++) {
		uint32_t num = SHM_NS_NAMED_FIRST + (start + i) % NS_NAMED_COUNT;
		struct shm_reg_meta meta = {.len = (uint32_t)len};
		char key[16];
		size_t kl = number_key(num, key, sizeof(key));

		memcpy(meta.data, name, len);
		r = shm_reg_register(seg, SHM_NS_NUMBERS, key, kl, num, &meta);
		if (r == -EEXIST)
			continue; /* taken by another name (or a creator that died) */
		if (r)
			return r;
		r = shm_reg_register(seg, SHM_NS_NAMES, name, len, num, NULL);
		if (r == 0) {
			*ns = num;
			return 0;
		}
		/* a racing creator named it first (or the table is full): give the number back */
		shm_reg_unregister(seg, SHM_NS_NUMBERS, key, kl, num);
		return r == -EEXIST ? ns_lookup(seg, name, len, ns) : r;
	}
	return -ENOSPC;
}

int shm_ns_name(const struct shm_seg *seg, uint32_t ns, char *buf, size_t cap)
{
	struct shm_reg_meta meta;
	shoal_handle_t h;
	uint32_t back;
	char key[16];
	size_t kl;

	if (ns < SHM_NS_NAMED_FIRST || ns > SHM_NS_NAMED_LAST || !cap)
		return -ENOENT;
	kl = number_key(ns, key, sizeof(key));
	if (shm_reg_lookup(seg, SHM_NS_NUMBERS, key, kl, &h, &meta) || meta.len == 0 ||
	    meta.len > SHM_NS_NAME_MAX)
		return -ENOENT;
	/* the number claimed but not (yet, or ever) named: not a name */
	if (ns_lookup(seg, (const char *)meta.data, meta.len, &back) || back != ns)
		return -ENOENT;
	if (meta.len >= cap)
		return -ENOSPC;
	memcpy(buf, meta.data, meta.len);
	buf[meta.len] = 0;
	return (int)meta.len;
}
