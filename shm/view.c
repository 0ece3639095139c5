/*
 * A read-only snapshot of a segment's tables for tools (shm/view.h has the contract: what is
 * consistent with what, and who owns the memory).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "shm/round.h"
#include "shm/var_int.h"
#include "shm/view.h"

/* Copy a fixed-size field of cap bytes the segment may not have terminated: at most cap
 * bytes, up to its first NUL, each byte that is not printable ASCII as '?'. out holds
 * cap + 1. The bytes are loaded one by one, relaxed: a writer may be filling them. */
static void copy_field(char *out, const char *field, size_t cap)
{
	size_t i;

	for (i = 0; i < cap; i++) {
		char c = __atomic_load_n(&field[i], __ATOMIC_RELAXED);

		if (!c)
			break;
		out[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[i] = 0;
}

/* Make a NUL-terminated private copy printable in place: each byte that is not printable
 * ASCII becomes '?'. */
static void printable(char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s >= 0x7f)
			*s = '?';
}

/* Does region id hold count entries of size bytes each, inside a mapping of seg_size? */
static bool region_holds(const struct shm_region *r, uint64_t seg_size, uint64_t count,
			 uint64_t size)
{
	return r->off <= seg_size && r->size <= seg_size - r->off && count * size <= r->size;
}

/*
 * See view.h. The header page is read into locals before anything is allocated, so a fault
 * under shm_seg_guard() leaks nothing.
 */
int shm_view_create(const struct shm_seg *seg, struct shm_view **out)
{
	const struct shm_hdr *h = shm_hdr(seg);
	struct shm_region regions[SHM_R_COUNT];
	struct shm_view *v;
	struct shm_cfg cfg;

	memcpy(&cfg, &h->cfg, sizeof(cfg));
	memcpy(regions, h->regions, sizeof(regions));
	/* the tables a take walks must lie inside the mapping, whatever the header says now */
	if (cfg.max_procs > SHM_MAX_PROCS ||
	    !region_holds(&regions[SHM_R_PROCS], seg->size, cfg.max_procs,
			  sizeof(struct shm_proc)) ||
	    !region_holds(&regions[SHM_R_AGENTS], seg->size, cfg.max_agents,
			  sizeof(struct shm_agent)) ||
	    !region_holds(&regions[SHM_R_MONITORS], seg->size, cfg.max_monitors,
			  sizeof(struct shm_monitor)))
		return -EUCLEAN;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->cfg = cfg;
	memcpy(v->regions, regions, sizeof(regions));
	/* the histograms are read only if their region holds every slot's block in the mapping */
	v->has_ops = h->layout_minor >= 10 &&
		     region_holds(&regions[SHM_R_HIST], seg->size,
				  (uint64_t)cfg.max_procs * SHM_HIST_OPS, sizeof(struct shm_hist));
	v->procs = calloc(cfg.max_procs ? cfg.max_procs : 1, sizeof(*v->procs));
	v->agents = calloc(cfg.max_agents ? cfg.max_agents : 1, sizeof(*v->agents));
	v->monitors = calloc(cfg.max_monitors ? cfg.max_monitors : 1, sizeof(*v->monitors));
	/* the registry cannot hold more live entries than its capacity */
	v->names_cap = cfg.reg_capacity < SHM_VIEW_NAMES ? cfg.reg_capacity : SHM_VIEW_NAMES;
	v->names = calloc(v->names_cap ? v->names_cap : 1, sizeof(*v->names));
	if (!v->procs || !v->agents || !v->monitors || !v->names) {
		shm_view_free(v);
		return -ENOMEM;
	}
	*out = v;
	return 0;
}

void shm_view_free(struct shm_view *v)
{
	if (!v)
		return;
	free(v->procs);
	free(v->agents);
	free(v->monitors);
	free(v->names);
	free(v);
}

static void take_hdr(const struct shm_seg *seg, uint64_t stale_after_ns, struct shm_view *v)
{
	const struct shm_hdr *h = shm_hdr(seg);
	struct shm_view_hdr *o = &v->hdr;

	copy_field(o->instance, h->instance, sizeof(h->instance));
	/* acquire: pairs with the creator's publication; the fields below were filled before */
	o->published = atomic_load_explicit(&h->ready, memory_order_acquire) == SHM_READY_WORD;
	o->layout_major = h->layout_major;
	o->layout_minor = h->layout_minor;
	o->seg_size = h->seg_size;
	o->creator_pid = h->creator_pid;
	o->owner_uid = h->owner_uid;
	o->created_ns = h->created_ns;
	/* the status words: seq_cst loads, as inspect always read them; a person reads them */
	o->state = atomic_load(&h->state);
	o->liveness = shm_seg_liveness(seg, stale_after_ns);
	o->stop_ns = atomic_load(&h->stop_ns);
	o->sup_pid = atomic_load(&h->sup_pid);
	o->sup_epoch = atomic_load(&h->sup_epoch);
	o->sup_hb_ns = atomic_load(&h->heartbeat_ns);
	o->spare = atomic_load(&h->spare);
	o->has_control = h->layout_minor >= 2;
	if (o->has_control) {
		o->ctl_inbox = atomic_load(&h->ctl_inbox);
		o->ctl_served = atomic_load(&h->ctl_served);
		o->ctl_refused = atomic_load(&h->ctl_refused);
		o->ctl_dropped = atomic_load(&h->ctl_dropped);
	} else {
		o->ctl_inbox = o->ctl_served = o->ctl_refused = o->ctl_dropped = 0;
	}
	o->ctl_op = o->ctl_from = o->ctl_agent = 0;
}

static uint64_t age(uint64_t now, uint64_t t)
{
	return t && now > t ? now - t : SHM_VIEW_AGE_NONE;
}

/* One read of process slot i's fields into r, between the identity reads (own, state). */
static void proc_fields(const struct shm_proc *p, struct shm_view_proc *r)
{
	/* relaxed: written before S0 only, after the acquire of state that preceded; a claimer
	 * rewriting it meanwhile changes own, and the caller's re-read sees that */
	r->role = atomic_load_explicit(&p->role, memory_order_relaxed);
	/* relaxed: status words for a person (shm_proc's comment) */
	r->core = atomic_load_explicit(&p->core, memory_order_relaxed);
	r->node = atomic_load_explicit(&p->node, memory_order_relaxed);
	r->mem_cap = atomic_load_explicit(&p->mem_cap, memory_order_relaxed);
	r->cap_mech = atomic_load_explicit(&p->cap_mech, memory_order_relaxed);
	r->restarts = atomic_load_explicit(&p->restarts, memory_order_relaxed);
	r->windex = atomic_load_explicit(&p->windex, memory_order_relaxed);
	r->heartbeat_ns = atomic_load_explicit(&p->heartbeat_ns, memory_order_relaxed);
	r->running_ns = atomic_load_explicit(&p->running_ns, memory_order_relaxed);
	r->wake_mech = atomic_load_explicit(&p->wake_mech, memory_order_relaxed);
	r->parked = atomic_load_explicit(&p->parked, memory_order_relaxed) != 0;
	r->last_reason = atomic_load_explicit(&p->last_reason, memory_order_relaxed);
	r->last_pid = atomic_load_explicit(&p->last_pid, memory_order_relaxed);
	r->last_epoch = atomic_load_explicit(&p->last_epoch, memory_order_relaxed);
	r->last_code = atomic_load_explicit(&p->last_code, memory_order_relaxed);
	r->last_signal = atomic_load_explicit(&p->last_signal, memory_order_relaxed);
	r->last_exit_ns = atomic_load_explicit(&p->last_exit_ns, memory_order_relaxed);
}

/* Process slot i, by the geometry read at create (not the header's region table now). */
static const struct shm_proc *proc_at(const struct shm_seg *seg, const struct shm_view *v,
				      uint32_t i)
{
	return (const struct shm_proc *)(seg->base + v->regions[SHM_R_PROCS].off) + i;
}

static void take_proc(const struct shm_seg *seg, struct shm_view *v, uint32_t i)
{
	const struct shm_proc *p = proc_at(seg, v, i);
	struct shm_view_proc *r = &v->procs[i];
	uint64_t own, own2 = 0;
	uint32_t st, st2 = 0;
	unsigned n = 0;

	memset(r, 0, sizeof(*r));
	r->slot = i;
	do {
		/* V0: acquire: pairs with C1 (shm/proc.c): a new epoch comes with the slot held,
		 * so the state read next is this claim's, not the one before it */
		own = atomic_load_explicit(&p->own, memory_order_acquire);
		/* V1: acquire: pairs with S0/S1/R0: the fields published with this state */
		st = atomic_load_explicit(&p->state, memory_order_acquire);
		proc_fields(p, r);
		/* V2: pairs with the writers' stores of own and state: a field loaded above
		 * from a later claim or exit shows as a change of one of them */
		atomic_thread_fence(memory_order_acquire);
		st2 = atomic_load_explicit(&p->state, memory_order_relaxed);
		own2 = atomic_load_explicit(&p->own, memory_order_relaxed);
	} while ((st != st2 || own != own2) && ++n < SHM_VIEW_RETRIES);
	r->torn = st != st2 || own != own2;
	r->state_word = st;
	r->held = (st & SHM_PROC_HELD) != 0;
	r->state = r->held ? SHM_PROC_HOLD_PREV(st) : st;
	r->holder = r->held ? SHM_PROC_HOLD_PID(st) : 0;
	r->pid = (uint32_t)(own >> 32);
	r->epoch = (uint32_t)own;
	r->hb_age_ns = age(v->taken_ns, r->heartbeat_ns);
	r->telem_ret = shm_telem_read(seg, i, &r->telem);
}

static void take_procs(const struct shm_seg *seg, struct shm_view *v)
{
	const struct shm_proc *sup;

	for (uint32_t i = 0; i < v->cfg.max_procs; i++)
		take_proc(seg, v, i);
	v->nprocs = v->cfg.max_procs;
	if (!v->hdr.has_control || !v->cfg.max_procs)
		return;
	/* the supervisor's control request in flight (its intent words, slot 0); relaxed: a
	 * note for a person, read again by whoever repairs it */
	sup = proc_at(seg, v, 0);
	v->hdr.ctl_op = atomic_load_explicit(&sup->ctl_intent[0], memory_order_relaxed);
	v->hdr.ctl_from = atomic_load_explicit(&sup->ctl_intent[1], memory_order_relaxed);
	v->hdr.ctl_agent = atomic_load_explicit(&sup->ctl_intent[3], memory_order_relaxed);
}

/*
 * Agent slot i into r: false if it is free. Its fields are read between two equal reads of
 * its gen and state words (a slot freed and claimed again bumps gen).
 */
static bool take_agent(const struct shm_agent *a, struct shm_view_agent *r, uint32_t i)
{
	uint32_t gen, st, gen2, st2;
	unsigned n = 0;

	do {
		gen = atomic_load_explicit(&a->gen, memory_order_acquire);
		/* V3: acquire: pairs with S2 (shm/proc.c): type, name and the gen of this owner */
		st = atomic_load_explicit(&a->state, memory_order_acquire);
		if (st == SHM_AGENT_FREE)
			return false;
		memset(r, 0, sizeof(*r));
		r->slot = i;
		r->gen = gen;
		r->state = st;
		/* plain fields written before S2 only (shm_agent's comment), loaded relaxed byte
		 * by byte or word by word: a claimer may be filling them */
		r->node = __atomic_load_n(&a->node, __ATOMIC_RELAXED);
		r->flags = __atomic_load_n(&a->flags, __ATOMIC_RELAXED);
		copy_field(r->type, a->type, sizeof(a->type));
		copy_field(r->name, a->name, sizeof(a->name));
		/* relaxed: counters for a person */
		r->worker = (int32_t)atomic_load_explicit(&a->worker, memory_order_relaxed) - 1;
		r->restarts = atomic_load_explicit(&a->restarts, memory_order_relaxed);
		r->handled = atomic_load_explicit(&a->handled, memory_order_relaxed);
		r->redelivered = atomic_load_explicit(&a->redelivered, memory_order_relaxed);
		r->started_ns = atomic_load_explicit(&a->started_ns, memory_order_relaxed);
		r->ckpt_len = atomic_load_explicit(&a->ckpt_len, memory_order_relaxed);
		/* V4: pairs with S2 and F0 (shm/proc.c): a field of the slot's next owner, loaded
		 * above, shows as a new gen or state */
		atomic_thread_fence(memory_order_acquire);
		st2 = atomic_load_explicit(&a->state, memory_order_relaxed);
		gen2 = atomic_load_explicit(&a->gen, memory_order_relaxed);
	} while ((st != st2 || gen != gen2) && ++n < SHM_VIEW_RETRIES);
	r->torn = st != st2 || gen != gen2;
	return true;
}

static void take_agents(const struct shm_seg *seg, struct shm_view *v)
{
	const struct shm_agent *at =
		(const struct shm_agent *)(seg->base + v->regions[SHM_R_AGENTS].off);
	uint32_t n = 0;

	for (uint32_t i = 0; i < v->cfg.max_agents; i++)
		n += take_agent(&at[i], &v->agents[n], i);
	v->nagents = n;
}

static void take_monitors(const struct shm_seg *seg, struct shm_view *v)
{
	const struct shm_monitor *mt =
		(const struct shm_monitor *)(seg->base + v->regions[SHM_R_MONITORS].off);
	uint32_t n = 0, claimed = 0;

	for (uint32_t i = 0; i < v->cfg.max_monitors; i++) {
		struct shm_view_monitor *r = &v->monitors[n];
		uint64_t w, w2;
		unsigned k = 0;

		/* relaxed: a count for a person */
		claimed += atomic_load_explicit(&mt[i].ctl, memory_order_relaxed) != 0;
		do {
			/* V5: acquire: pairs with the release of watcher that publishes the entry
			 * (workers/monitor.c) */
			w = atomic_load_explicit(&mt[i].watcher, memory_order_acquire);
			r->target = atomic_load_explicit(&mt[i].target, memory_order_relaxed);
			r->ref = atomic_load_explicit(&mt[i].ref, memory_order_relaxed);
			/* V6: pairs with the writers' stores of watcher, as V2 */
			atomic_thread_fence(memory_order_acquire);
			w2 = atomic_load_explicit(&mt[i].watcher, memory_order_relaxed);
		} while (w != w2 && ++k < SHM_VIEW_RETRIES);
		if (!w)
			continue;
		r->index = i;
		r->watcher = w;
		r->torn = w != w2;
		n++;
	}
	v->nmonitors = n;
	v->monitors_claimed = claimed;
}

static void take_exits(const struct shm_seg *seg, struct shm_view *v)
{
	v->has_exit_log = v->hdr.layout_minor >= 5;
	v->nexits = shm_exit_log_read(seg, v->exits, SHM_EXIT_LOG, &v->exits_total);
}

struct names_arg {
	struct shm_view *v;
	const struct shm_seg *seg;
};

static int name_visit(uint32_t ns, const char *name, shoal_handle_t h,
		      const struct shm_reg_meta *meta, void *arg)
{
	struct names_arg *na = arg;
	struct shm_view *v = na->v;
	struct shm_view_name *r;
	char nsn[SHM_NS_NAME_MAX + 1];

	if (ns == SHM_NS_NAMES || ns == SHM_NS_NUMBERS) {
		v->ns_named += ns == SHM_NS_NAMES;
		return 0; /* namespace names: counted; they name the namespaces of entries */
	}
	/* one more entry than the view holds: stop, and say the list is cut */
	if (v->nnames >= v->names_cap)
		return 1;
	r = &v->names[v->nnames];
	r->ns = ns;
	r->ns_name[0] = 0;
	if (shm_ns_name(na->seg, ns, nsn, sizeof(nsn)) > 0)
		copy_field(r->ns_name, nsn, SHM_NS_NAME_MAX);
	copy_field(r->name, name, SHOAL_NAME_MAX);
	r->handle = h;
	r->meta_len = meta ? meta->len : 0;
	r->is_var = SHM_VAR_ID_IS_VAR(h);
	r->var_index = r->is_var ? SHM_VAR_ID_INDEX(h) : 0;
	r->var_gen = r->is_var ? SHM_VAR_ID_GEN(h) : 0;
	v->nnames++;
	return 0;
}

static void take_registry(const struct shm_seg *seg, struct shm_view *v)
{
	struct names_arg na = {v, seg};

	v->nnames = 0;
	v->ns_named = 0;
	v->names_cut = false;
	v->reg_ret = shm_reg_stats(seg, &v->reg);
	if (v->reg_ret) {
		memset(&v->reg, 0, sizeof(v->reg));
		return;
	}
	if (v->reg.live)
		v->names_cut = shm_reg_foreach(seg, name_visit, &na) != 0;
}

static int group_visit(const char *name, uint32_t n, void *arg)
{
	struct shm_view *v = arg;

	if (v->ngroups < SHM_VIEW_GROUPS) {
		copy_field(v->groups[v->ngroups].name, name, SHOAL_NAME_MAX);
		v->groups[v->ngroups].members = n;
	}
	v->ngroups++;
	return 0;
}

/* Live pools, their counts read relaxed (a pool's counts are not consistent either). */
static void take_pools(const struct shm_seg *seg, struct shm_view *v)
{
	v->npools = 0;
	for (uint32_t id = 0; id < v->cfg.max_pools; id++) {
		struct shm_pool_info in;

		if (shm_pool_read(seg, id, &in) || in.state != SHM_POOL_LIVE)
			continue;
		if (v->npools < SHM_VIEW_POOLS) {
			struct shm_pool_info *o = &v->pools[v->npools];

			*o = in;
			copy_field(o->name, in.name, sizeof(o->name) - 1);
			copy_field(o->type, in.type, sizeof(o->type) - 1);
		}
		v->npools++;
	}
}

/* The latency histograms, each merged over every process slot, into v->ops. */
static void take_ops(const struct shm_seg *seg, struct shm_view *v)
{
	const struct shm_hist *region;

	if (!v->has_ops)
		return;
	region = (const struct shm_hist *)(seg->base + v->regions[SHM_R_HIST].off);
	for (uint32_t op = 0; op < SHM_HIST_OPS; op++) {
		struct shm_view_op *o = &v->ops[op];

		shm_hist_collect_blocks(region, v->cfg.max_procs, op, &o->hist, &v->hist_one);
		o->name = shm_hist_op_name(op);
		o->rate = o->hist.rate ? o->hist.rate : shm_hist_op_rate(op);
		o->torn = o->hist.torn;
		o->count = o->hist.count;
		o->mean_ns = o->count ? o->hist.sum_ns / o->count : 0;
		o->p50_ns = shm_hist_percentile(&o->hist, 0.50);
		o->p90_ns = shm_hist_percentile(&o->hist, 0.90);
		o->p99_ns = shm_hist_percentile(&o->hist, 0.99);
		o->p999_ns = shm_hist_percentile(&o->hist, 0.999);
		o->max_ns = o->hist.max_ns;
	}
}

/* Make a string field of an event printable in place: cut at its size, '?' for the rest. */
static void clean_field(char *f, size_t cap)
{
	char tmp[64];

	copy_field(tmp, f, cap - 1 < sizeof(tmp) - 1 ? cap - 1 : sizeof(tmp) - 1);
	memcpy(f, tmp, strlen(tmp) + 1);
}

/* The ring's last SHM_VIEW_EVENTS events (none without a ring). */
static void take_events(const struct shm_seg *seg, struct shm_view *v)
{
	struct shm_event_scan st = {0};
	uint64_t cursor, share;

	v->nevents = v->events_skipped = 0;
	v->events_cap = shm_event_capacity(seg);
	v->events_next = shm_event_next(seg);
	if (!v->events_cap)
		return;
	/* the last min(ring, SHM_VIEW_EVENTS): older ones a smaller ring no longer holds are
	 * not "missed" by this take */
	share = v->events_cap < SHM_VIEW_EVENTS ? v->events_cap : SHM_VIEW_EVENTS;
	cursor = v->events_next > share ? v->events_next - share : 0;
	v->nevents = shm_event_scan(seg, &cursor, v->events, SHM_VIEW_EVENTS, 0, &st);
	v->events_skipped = (uint32_t)(st.missed + st.incomplete);
	for (uint32_t i = 0; i < v->nevents; i++) {
		clean_field(v->events[i].name, sizeof(v->events[i].name));
		clean_field(v->events[i].text, sizeof(v->events[i].text));
	}
}

/* See view.h. */
int shm_view_take(const struct shm_seg *seg, uint64_t stale_after_ns, struct shm_view *v)
{
	const struct shm_hdr *h = shm_hdr(seg);

	/* the geometry the arrays were sized for: another segment's does not fit them */
	if (memcmp(&v->cfg, &h->cfg, sizeof(v->cfg)) ||
	    memcmp(v->regions, h->regions, sizeof(v->regions)))
		return -EINVAL;
	v->parts = 0;
	v->dist_ret = -ENODATA; /* until its part is taken: a take cut short shows none */
	v->taken_ns = shm_now_ns();
	v->taken_wall_ns = shm_wall_ns();
	take_hdr(seg, stale_after_ns, v);
	v->parts |= SHM_VIEW_PART_HDR;
	take_procs(seg, v);
	v->parts |= SHM_VIEW_PART_PROCS;
	take_exits(seg, v);
	v->parts |= SHM_VIEW_PART_EXITS;
	take_agents(seg, v);
	v->parts |= SHM_VIEW_PART_AGENTS;
	take_monitors(seg, v);
	v->parts |= SHM_VIEW_PART_MONITORS;
	take_registry(seg, v);
	v->parts |= SHM_VIEW_PART_REGISTRY;
	v->ngroups = 0;
	shm_grp_foreach(seg, group_visit, v);
	v->parts |= SHM_VIEW_PART_GROUPS;
	take_pools(seg, v);
	v->parts |= SHM_VIEW_PART_POOLS;
	v->rounds_in_use = shm_round_in_use(seg);
	memset(&v->vars, 0, sizeof(v->vars));
	v->vars_ret = shm_var_stats(seg, &v->vars);
	if (!v->vars_ret)
		shm_var_sub_stats(seg, &v->subs);
	v->parts |= SHM_VIEW_PART_VARS;
	/* a write under way (the supervisor starting) ends in microseconds: a few tries */
	for (int i = 0; i < 100; i++) {
		v->types_ret = shm_types_read(seg, v->types, SHM_TYPES_MAX, &v->ntypes);
		if (v->types_ret != -EAGAIN)
			break;
		sched_yield();
	}
	/* printable, as every string of a view (a hostile segment's bytes reach a terminal) */
	for (uint32_t i = 0; i < v->ntypes; i++) {
		printable(v->types[i].name);
		printable(v->types[i].about);
	}
	v->parts |= SHM_VIEW_PART_TYPES;
	take_ops(seg, v);
	v->parts |= SHM_VIEW_PART_OPS;
	take_events(seg, v);
	v->parts |= SHM_VIEW_PART_EVENTS;
	/* a write under way ends in microseconds: a few tries */
	for (int i = 0; i < 100; i++) {
		v->dist_ret = shm_dist_read(seg, &v->dist);
		if (v->dist_ret != -EAGAIN)
			break;
		sched_yield();
	}
	/* terminated by shm_dist_read() (zeroed when it fails) */
	printable(v->dist.node);
	for (uint32_t i = 0; i < SHM_DIST_CONNS; i++)
		printable(v->dist.conns[i].node);
	v->parts |= SHM_VIEW_PART_DIST;
	return 0;
}

/* See view.h: a binary search, the rows being in slot order. */
const struct shm_view_agent *shm_view_agent_find(const struct shm_view *v, uint32_t slot)
{
	uint32_t lo = 0, hi = v->nagents;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (v->agents[mid].slot == slot)
			return &v->agents[mid];
		if (v->agents[mid].slot < slot)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
