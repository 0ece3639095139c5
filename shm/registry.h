/*
 * The registry: (namespace, name) -> agent handle + a small metadata blob, and process
 * groups. Lock-free: lookups make no syscall and take no claim; writers claim entries with
 * CAS tagged (process slot, epoch); a dead writer's claim is undone or finished by the
 * next writer that meets it or by shm_reg_repair().
 *
 * Callers: any process attached read-write with a process slot (seg->self) may write;
 * any attachment, read-only included, may look up.
 */
#ifndef SHM_REGISTRY_H
#define SHM_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/shm.h"
#include "shoal/shoal.h"

/*
 * Namespaces are small integers 0..SHM_NS_MAX, or short names (shm_ns_get()) that stand
 * for numbers from SHM_NS_NAMED_FIRST up: numbered namespaces are 0..SHM_NS_NAMED_FIRST-1.
 * The top two are reserved for the names themselves. Groups live in their own table.
 */
#define SHM_NS_MAX	   65535u
#define SHM_NS_DEFAULT	   0u
#define SHM_NS_NAMED_FIRST 32768u
#define SHM_NS_NUMBERS	   65534u /* reserved: "<number>" -> number, meta the name */
#define SHM_NS_REMOTE	   65533u /* reserved: "name@alive@host" -> its proxy (workers/remote.c) */
#define SHM_NS_NAMES	   65535u /* reserved: name -> number */
#define SHM_NS_NAMED_LAST  (SHM_NS_REMOTE - 1u)
/* A namespace name is 1..SHM_NS_NAME_MAX bytes, no NUL inside. */
#define SHM_NS_NAME_MAX 15u

/* A name's metadata blob: up to SHOAL_META_MAX bytes, len says how many. */
struct shm_reg_meta {
	uint32_t len;
	uint8_t data[SHOAL_META_MAX];
};

/*
 * Register name in ns for handle. Returns 0; -EEXIST if the name has a live entry (of two
 * racing registrations exactly one wins); -ENOSPC if the table is full; -EINVAL for a bad
 * name (0 or > SHOAL_NAME_MAX bytes, or a NUL inside), ns, handle or meta length; -EROFS
 * without a process slot. meta may be NULL.
 */
int shm_reg_register(struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		     shoal_handle_t handle, const struct shm_reg_meta *meta);
/*
 * Remove name's live entry. With expect != SHOAL_HANDLE_NONE, only if it maps to expect
 * (-ESTALE otherwise). Returns 0 or -ENOENT.
 */
int shm_reg_unregister(struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		       shoal_handle_t expect);
/*
 * Point an existing name at a new handle and metadata, atomically for readers (they see
 * the old pair or the new one, never a mix). Returns 0 or -ENOENT.
 */
int shm_reg_reregister(struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		       shoal_handle_t handle, const struct shm_reg_meta *meta);
/*
 * Look name up. Returns 0 and fills *handle (and *meta if not NULL), or -ENOENT. No
 * syscall, no write to the segment: safe on a read-only attachment.
 */
int shm_reg_lookup(const struct shm_seg *seg, uint32_t ns, const char *name, size_t len,
		   shoal_handle_t *handle, struct shm_reg_meta *meta);
/* Remove every live entry that maps to handle (an agent that stopped). Returns how many. */
int shm_reg_unregister_handle(struct shm_seg *seg, shoal_handle_t handle);

/*
 * The namespace named name: its number in *ns, creating it if create (a number no other
 * name holds; two processes creating the same name at once get the same number). Returns
 * 0; -ENOENT (no such name and !create); -EINVAL (bad name); -ENOSPC (table full, or every
 * named number taken); -EROFS (create without a process slot). Lock-free: two registry
 * entries, the number's claim and then the name; a writer killed between them leaves the
 * number taken and unnamed (skipped by later creations), never a name without a number.
 */
int shm_ns_get(struct shm_seg *seg, const char *name, size_t len, bool create, uint32_t *ns);
/* The name of namespace ns into buf (NUL-terminated): its length, or -ENOENT if unnamed. */
int shm_ns_name(const struct shm_seg *seg, uint32_t ns, char *buf, size_t cap);

/* Live entries right now (a snapshot count). */
uint32_t shm_reg_count(const struct shm_seg *seg);

/* Visit live entries; stop when fn returns non-zero (returned). Read-only safe. */
typedef int (*shm_reg_visit_fn)(uint32_t ns, const char *name, shoal_handle_t handle,
				const struct shm_reg_meta *meta, void *arg);
int shm_reg_foreach(const struct shm_seg *seg, shm_reg_visit_fn fn, void *arg);

/*
 * Undo or finish every registry claim held by process slot `slot` (which must be dead:
 * the supervisor calls this after noticing the death, before the slot is reused). Also
 * safe to run when nothing is pending. Returns the number of claims resolved.
 */
int shm_reg_repair(struct shm_seg *seg, uint32_t slot);
/*
 * Check the whole table's invariants: no duplicate live name, no claim left by a dead
 * process, probe bookkeeping consistent. Returns 0 or -EUCLEAN with a sentence in err.
 */
int shm_reg_check(const struct shm_seg *seg, char *err, size_t errlen);

/* A snapshot of the table's shape, for tools and tests (read-only safe). */
struct shm_reg_stats {
	uint32_t capacity;	  /* entries */
	uint32_t live;		  /* live entries (LIVE or UPDATING) */
	uint32_t claimed;	  /* entries held by a writer right now (or by a dead one) */
	uint32_t longest_probe;	  /* buckets a lookup of the worst-placed live entry visits */
	uint32_t longest_chain;	  /* buckets the longest chain scan of a live name visits */
	uint32_t overflow_excess; /* counter increments no entry accounts for (crash leftovers) */
	uint64_t repaired;	  /* dead claims resolved (by writers or repair), since creation */
	uint64_t aborted;	  /* pending registrations made to lose */
	uint64_t waits;		  /* writer waits on a live writer's update of one entry */
	uint64_t lost;		  /* claims a live writer found taken from it (must stay 0) */
};
/* Fill *st. Returns 0, or -EUCLEAN if the registry region does not match the header. */
int shm_reg_stats(const struct shm_seg *seg, struct shm_reg_stats *st);

/* --- process groups: named sets of handles, for broadcasts --- */

/* Join handle to group `name` (created on first join). 0, -ENOSPC (no group slot or group
 * full), -EINVAL. Joining twice is a no-op returning 0. */
int shm_grp_join(struct shm_seg *seg, const char *name, size_t len, shoal_handle_t handle);
/* Leave. 0 or -ENOENT. The group is deleted when its last member leaves. */
int shm_grp_leave(struct shm_seg *seg, const char *name, size_t len, shoal_handle_t handle);
/* Copy up to max members into out; returns the member count (may exceed max) or -ENOENT. */
int shm_grp_members(const struct shm_seg *seg, const char *name, size_t len, shoal_handle_t *out,
		    uint32_t max);
/* Remove handle from every group (an agent that stopped). Returns how many. */
int shm_grp_leave_all(struct shm_seg *seg, shoal_handle_t handle);
/* Visit live groups with their member counts; stop when fn returns non-zero (returned).
 * Read-only safe. */
typedef int (*shm_grp_visit_fn)(const char *name, uint32_t nmembers, void *arg);
int shm_grp_foreach(const struct shm_seg *seg, shm_grp_visit_fn fn, void *arg);
/* Repair a dead process's group claims, as shm_reg_repair(). */
int shm_grp_repair(struct shm_seg *seg, uint32_t slot);

#endif
