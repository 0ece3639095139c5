/* shoal: shared-memory, multi-process agent engine. The common public header. */
#ifndef SHOAL_SHOAL_H
#define SHOAL_SHOAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHOAL_VERSION_STRING "0.1.0"

/*
 * Errors: every action returns 0 or a negative errno. The ones shoal gives a meaning:
 *   -EAGAIN     mailbox full (no timeout given) or a claim is busy
 *   -EMSGSIZE   message larger than the instance's maximum
 *   -ENOENT     no such name, instance or agent
 *   -EEXIST     name already registered
 *   -ENOSPC     a table is full
 *   -ETIMEDOUT  a wait ran out
 *   -EOWNERDEAD the peer died (stale handle, dead process)
 *   -ESTALE     a handle whose slot was reused by another agent
 *   -EINVAL     bad argument (name length, namespace, flags)
 */
#define SHOAL_EAGAIN	 (-EAGAIN)
#define SHOAL_EMSGSIZE	 (-EMSGSIZE)
#define SHOAL_ENOENT	 (-ENOENT)
#define SHOAL_EEXIST	 (-EEXIST)
#define SHOAL_ENOSPC	 (-ENOSPC)
#define SHOAL_ETIMEDOUT	 (-ETIMEDOUT)
#define SHOAL_EOWNERDEAD (-EOWNERDEAD)
#define SHOAL_ESTALE	 (-ESTALE)

/*
 * An agent handle: slot index in the low 32 bits, generation in the high 32 bits. The
 * generation changes only when the slot is freed and reused, never on a restart, so a
 * handle outlives its agent's crashes. 0 is never a valid handle.
 */
typedef uint64_t shoal_handle_t;

#define SHOAL_HANDLE_NONE ((shoal_handle_t)0)

static inline shoal_handle_t shoal_handle_make(uint32_t slot, uint32_t gen)
{
	return ((uint64_t)gen << 32) | slot;
}

static inline uint32_t shoal_handle_slot(shoal_handle_t h)
{
	return (uint32_t)h;
}

static inline uint32_t shoal_handle_gen(shoal_handle_t h)
{
	return (uint32_t)(h >> 32);
}

/* Names are 1..SHOAL_NAME_MAX bytes, no NUL inside. */
#define SHOAL_NAME_MAX 63
/* Registry entries carry a fixed metadata blob of up to this many bytes. */
#define SHOAL_META_MAX 24

/* Return a static English description of a shoal error code (negative errno). */
const char *shoal_strerror(int err);

/* Return the library's version string. Any thread. */
const char *shoal_version(void);

#ifdef __cplusplus
}
#endif

#endif
