/*
 * Coordination variables for agents (shoal_var_*, include/shoal/agent.h) and the
 * conversions the client side (workers/client.c) shares: thin over shm/var.c.
 */
#include <errno.h>
#include <string.h>

#include "ipc/ipc.h"
#include "shm/registry.h"
#include "shm/var.h"
#include "workers/wrk_int.h"

static_assert(SHOAL_VAR_INT == SHM_VAR_INT && SHOAL_VAR_DOUBLE == SHM_VAR_DOUBLE &&
		      SHOAL_VAR_BLOB == SHM_VAR_BLOB,
	      "the public variable types are shm/var.h's");
static_assert(SHOAL_VAR_ANY == SHM_VAR_ANY && SHOAL_VAR_MANY == SHM_VAR_MANY,
	      "the public variable limits are shm/var.h's");

static void val_in(const struct shoal_var_value *o, struct shm_var_val *v)
{
	memset(v, 0, sizeof(*v));
	v->buf = o->buf;
	v->cap = o->buf ? o->cap : 0;
}

static void val_out(const struct shm_var_val *v, struct shoal_var_value *o)
{
	o->type = v->type;
	o->len = v->len;
	o->version = v->version;
	o->writer = v->writer;
	o->writer_tag = v->wtag;
	o->time_ns = v->time_ns;
	memcpy(&o->num, &v->num, sizeof(o->num));
}

/* See wrk_int.h. Any thread of a process attached to seg. */
int wrk_var_create(struct shm_seg *seg, const char *name, uint32_t type, shoal_var_t *out)
{
	uint64_t id = 0;
	int r;

	if (!name || !out)
		return -EINVAL;
	r = shm_var_create(seg, SHM_NS_DEFAULT, name, strlen(name), type, &id);
	*out = id;
	return r == -ENODEV ? -ENOENT : r;
}

/* See wrk_int.h. */
int wrk_var_lookup(const struct shm_seg *seg, const char *name, shoal_var_t *out)
{
	if (!name || !out)
		return -EINVAL;
	return shm_var_lookup(seg, SHM_NS_DEFAULT, name, strlen(name), out);
}

/* See wrk_int.h. */
int wrk_var_read(const struct shm_seg *seg, shoal_var_t var, struct shoal_var_value *out)
{
	struct shm_var_val v;
	int r;

	val_in(out, &v);
	r = shm_var_read(seg, var, &v);
	if (!r || r == -EMSGSIZE)
		val_out(&v, out);
	return r;
}

/* See wrk_int.h. */
int wrk_var_read_many(const struct shm_seg *seg, const shoal_var_t *vars, uint32_t n,
		      struct shoal_var_value *out)
{
	struct shm_var_val v[SHM_VAR_MANY];
	int r;

	if (n < 1 || n > SHM_VAR_MANY || !vars || !out)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		val_in(&out[i], &v[i]);
	r = shm_var_read_many(seg, vars, n, v);
	if (!r || r == -EMSGSIZE)
		for (uint32_t i = 0; i < n; i++)
			val_out(&v[i], &out[i]);
	return r;
}

/* See wrk_int.h. */
int wrk_var_update(struct shm_seg *seg, const struct shoal_var_set *sets, uint32_t n,
		   uint64_t writer, uint64_t wait_ns, uint64_t *cur)
{
	struct shm_var_op ops[SHM_VAR_MANY];
	uint64_t ids[SHM_VAR_MANY];
	int r;

	if (n < 1 || n > SHM_VAR_MANY || !sets)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		ops[i] = (struct shm_var_op){.id = sets[i].var,
					     .type = sets[i].type,
					     .len = sets[i].len,
					     .data = sets[i].data,
					     .expect = sets[i].expect};
		ids[i] = sets[i].var;
	}
	r = shm_var_update_wait(seg, ops, n, writer, wait_ns, cur, NULL);
	if (!r)
		wrk_var_notify(seg, ids, n, writer);
	return r;
}

/* Notifications per collect: one batched send (one wake per worker) each. */
#define WRK_NOTE_CHUNK 128

/* Send what collect (an update's, or a repair's re-sends) hands out, chunk by chunk. */
static int notify_each(struct shm_seg *seg, const uint64_t *ids, uint32_t n, uint64_t writer,
		       uint32_t dead_slot, uint64_t who)
{
	struct shm_var_note notes[WRK_NOTE_CHUNK];
	struct shoal_var_note pay[WRK_NOTE_CHUNK];
	struct ipc_out_ref out[WRK_NOTE_CHUNK];
	int errs[WRK_NOTE_CHUNK];
	uint32_t cursor = 0;
	int sent = 0;

	for (;;) {
		int k = ids ? shm_var_sub_collect(seg, ids, n, writer, &cursor, notes,
						  WRK_NOTE_CHUNK)
			    : shm_var_sub_collect_owed(seg, dead_slot, who, &cursor, notes,
						       WRK_NOTE_CHUNK);

		if (k <= 0)
			return sent;
		for (int i = 0; i < k; i++) {
			pay[i] = (struct shoal_var_note){.var = notes[i].var,
							 .version = notes[i].version,
							 .writer = notes[i].writer,
							 .sub = notes[i].sub,
							 .count = notes[i].count};
			out[i] = (struct ipc_out_ref){.to = notes[i].who,
						      .ref = notes[i].sub,
						      .type = IPC_T_VAR,
						      .flags = IPC_F_SYSTEM,
						      .len = sizeof(pay[i]),
						      .data = &pay[i]};
		}
		sent += ipc_send_each(seg, writer, out, (uint32_t)k, errs);
		for (int i = 0; i < k; i++)
			shm_var_sub_sent(seg, &notes[i], errs[i]);
		if (k < WRK_NOTE_CHUNK)
			return sent;
	}
}

/* See wrk.h. The writer, right after its update. */
int wrk_var_notify(struct shm_seg *seg, const uint64_t *ids, uint32_t n, uint64_t writer)
{
	return notify_each(seg, ids, n, writer, 0, 0);
}

/* See wrk.h. The supervisor. */
int wrk_var_sub_repair(struct shm_seg *seg, uint32_t slot)
{
	shm_var_sub_repair(seg, slot);
	return notify_each(seg, NULL, 0, SHOAL_HANDLE_NONE, slot, 0);
}

/* See wrk_int.h. The subscriber's consumer. */
int wrk_var_catch_up(struct shm_seg *seg, uint64_t who)
{
	return notify_each(seg, NULL, 0, SHOAL_HANDLE_NONE, 0, who);
}

/* See wrk_int.h. */
int wrk_var_subscribe(struct shm_seg *seg, uint64_t who, uint64_t host, const char *name,
		      uint32_t flags, uint64_t *ref)
{
	shoal_var_t var = 0;
	size_t len;
	int r;

	if (!name || !ref || (flags & ~SHOAL_VAR_SUB_PREFIX))
		return -EINVAL;
	len = strlen(name);
	if (len < 1 || len > SHOAL_NAME_MAX)
		return -EINVAL;
	if (!(flags & SHOAL_VAR_SUB_PREFIX)) {
		r = wrk_var_lookup(seg, name, &var);
		if (r)
			return r;
	}
	r = shm_var_sub_add(seg, who, host, var, SHM_NS_DEFAULT,
			    flags & SHOAL_VAR_SUB_PREFIX ? name : NULL, len, ref);
	return r == -ENODEV ? -ENOENT : r;
}

/* --- the agents' API: from callbacks, on the worker's thread; none of it waits --- */

int shoal_var_create(struct shoal_ctx *ctx, const char *name, uint32_t type, shoal_var_t *out)
{
	return wrk_var_create(ctx->seg, name, type, out);
}

int shoal_var_lookup(const struct shoal_ctx *ctx, const char *name, shoal_var_t *out)
{
	return wrk_var_lookup(ctx->seg, name, out);
}

int shoal_var_read(const struct shoal_ctx *ctx, shoal_var_t var, struct shoal_var_value *out)
{
	return wrk_var_read(ctx->seg, var, out);
}

int shoal_var_read_name(const struct shoal_ctx *ctx, const char *name, struct shoal_var_value *out)
{
	shoal_var_t var;
	int r = wrk_var_lookup(ctx->seg, name, &var);

	return r ? r : wrk_var_read(ctx->seg, var, out);
}

int shoal_var_read_many(const struct shoal_ctx *ctx, const shoal_var_t *vars, uint32_t n,
			struct shoal_var_value *out)
{
	return wrk_var_read_many(ctx->seg, vars, n, out);
}

int shoal_var_update(struct shoal_ctx *ctx, const struct shoal_var_set *sets, uint32_t n,
		     uint64_t *cur)
{
	return wrk_var_update(ctx->seg, sets, n, ctx->agent->handle, SHM_VAR_WAIT_AGENT_NS, cur);
}

int shoal_var_set_int(struct shoal_ctx *ctx, shoal_var_t var, int64_t value)
{
	struct shoal_var_set s = {.var = var,
				  .type = SHOAL_VAR_INT,
				  .len = 8,
				  .data = &value,
				  .expect = SHOAL_VAR_ANY};

	return shoal_var_update(ctx, &s, 1, NULL);
}

int shoal_var_set_double(struct shoal_ctx *ctx, shoal_var_t var, double value)
{
	struct shoal_var_set s = {.var = var,
				  .type = SHOAL_VAR_DOUBLE,
				  .len = 8,
				  .data = &value,
				  .expect = SHOAL_VAR_ANY};

	return shoal_var_update(ctx, &s, 1, NULL);
}

int shoal_var_subscribe(struct shoal_ctx *ctx, const char *name, uint32_t flags, uint64_t *ref)
{
	return wrk_var_subscribe(ctx->seg, ctx->agent->handle, 0, name, flags, ref);
}

int shoal_remote_var_subscribe(struct shoal_ctx *ctx, shoal_handle_t remote, const char *name,
			       uint32_t flags, uint64_t *ref)
{
	return wrk_remote_var_subscribe(ctx->seg, remote, name, flags, ref);
}

int shoal_remote_var_unsubscribe(struct shoal_ctx *ctx, shoal_handle_t remote, uint64_t ref)
{
	return remote ? shm_var_sub_del(ctx->seg, ref, remote) : -EINVAL;
}

int shoal_var_unsubscribe(struct shoal_ctx *ctx, uint64_t ref)
{
	return shm_var_sub_del(ctx->seg, ref, ctx->agent->handle);
}
