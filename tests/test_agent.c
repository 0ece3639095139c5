/* test_agent: agent types (built-in, registered, dlopen-ed), checkpoints, monitor table, spawn/stop
 * claims. */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/agent_abi1.h"
#include "tests/agent_abi2.h"
#include "tests/support.h"
#include "tests/skip.h"

#include "shm/registry.h"
#include "shm/shm.h"
#include "workers/wrk_int.h"

static char inst[64];

static int setup(void **state)
{
	(void)state;
	snprintf(inst, sizeof(inst), "t-agent-%d", (int)getpid());
	shm_seg_unlink(inst);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shm_seg_unlink(inst);
	return 0;
}

static struct shm_seg *make_seg(void)
{
	struct shm_cfg cfg;

	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	cfg.max_monitors = 64;
	cfg.ckpt_bytes = 100; /* buffers round up to 128 */
	return ts_seg_make(inst, &cfg, SHM_ROLE_SUPERVISOR);
}

static void drop_seg(struct shm_seg *seg)
{
	ts_seg_drop(seg, inst);
}

static int nop_init(struct shoal_ctx *c, const void *k, uint32_t l, void **s)
{
	(void)c, (void)k, (void)l;
	*s = NULL;
	return 0;
}

static int nop_handle(struct shoal_ctx *c, void *s, const struct shoal_msg *m)
{
	(void)c, (void)s, (void)m;
	return 0;
}

static void test_agent_type_table(void **state)
{
	static const struct shoal_agent_type mine = {
		.name = "mine", .init = nop_init, .handle = nop_handle};
	static const struct shoal_agent_type other_echo = {
		.name = "echo", .init = nop_init, .handle = nop_handle};
	static const struct shoal_agent_type no_init = {.name = "noinit", .handle = nop_handle};

	(void)state;
	for (unsigned i = 0; wrk_builtin_type_names[i]; i++)
		assert_non_null(shoal_agent_type_find(wrk_builtin_type_names[i]));
	assert_null(shoal_agent_type_find("nonesuch"));
	assert_int_equal(shoal_agent_type_register(&mine), 0);
	assert_int_equal(shoal_agent_type_register(&mine), 0); /* the same one again: no-op */
	assert_non_null(shoal_agent_type_find("mine"));
	assert_ptr_equal(shoal_agent_type_find("mine")->init, nop_init);
	assert_int_equal(shoal_agent_type_register(&other_echo), -EEXIST);
	assert_int_equal(shoal_agent_type_register(&no_init), -EINVAL);
}

static void test_agent_dlopen(void **state)
{
	const char *path = getenv("SHOAL_TEST_PLUGIN");
	const struct shoal_agent_type *t;
	struct wrk_agent wa = {.slot = 7, .handle = shoal_handle_make(7, 3)};
	struct shoal_ctx ctx = {.agent = &wa};
	struct shoal_msg m = {.data = "hi there", .len = 8, .flags = SHOAL_MSG_CALL};
	char reply[64], err[256];
	uint32_t rlen = 0;
	void *st;

	(void)state;
	if (!path)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	assert_int_equal(shoal_agent_types_load("/nonexistent/x.so", err, sizeof(err)), -ELIBBAD);
	assert_non_null(strstr(err, "cannot load"));
	assert_int_equal(shoal_agent_types_load("libm.so.6", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "exports neither"));
	/* upper, spawner, pooler, rounder, demander, voter, varwatcher, tasker, termy */
	assert_int_equal(shoal_agent_types_load(path, err, sizeof(err)), 9);
	assert_non_null(shoal_agent_type_find("spawner"));
	t = shoal_agent_type_find("upper");
	assert_non_null(t);
	wa.type = t;
	assert_int_equal(t->init(&ctx, NULL, 0, &st), 0);
	assert_int_equal(t->handle_call(&ctx, st, &m, reply, sizeof(reply), &rlen), 0);
	assert_int_equal(rlen, strlen("HI THERE@7"));
	assert_memory_equal(reply, "HI THERE@7", rlen);
	/* loading it twice adds nothing: its type is already there */
	assert_int_equal(shoal_agent_types_load(path, err, sizeof(err)), 0);
}

/*
 * What the supervisor publishes for `shoal types`: the built-in types with what each does, a
 * type the host program registered, and a declared library's types with its path (the
 * supervisor never loads a library itself: its probe, in a child, learns the names).
 */
static void test_agent_types_list(void **state)
{
	static const struct shoal_agent_type listed = {
		.name = "listed", .init = nop_init, .handle = nop_handle};
	static struct shm_type_entry e[SHM_TYPES_MAX];
	const char *path = getenv("SHOAL_TEST_ABI2_PLUGIN");
	uint32_t n, builtin = 0, lib = 0;
	bool host = false;
	char why[256];

	(void)state;
	if (!path)
		skip_because("SHOAL_TEST_ABI2_PLUGIN is not set (run through meson test)");
	assert_int_equal(shoal_agent_type_register(&listed), 0);
	/* not loaded in this process yet (test_agent_abi2_plugin_loads runs later) */
	assert_null(shoal_agent_type_find("v2_upper"));
	assert_int_equal(wrk_types_declare(path, why, sizeof(why)), 0);
	n = wrk_types_list(e, SHM_TYPES_MAX);
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].origin == SHM_TYPE_BUILTIN) {
			builtin++;
			assert_true(strlen(e[i].about) > 10);
		}
		if (!strcmp(e[i].name, "listed")) {
			assert_int_equal(e[i].origin, SHM_TYPE_HOST);
			host = true;
		}
		if (!strcmp(e[i].name, "v2_upper")) {
			assert_int_equal(e[i].origin, SHM_TYPE_LIBRARY);
			assert_string_equal(e[i].about, path);
			lib++;
		}
	}
	for (unsigned i = 0; wrk_builtin_type_names[i]; i++)
		assert_non_null(wrk_builtin_type_about[i]);
	assert_int_equal(builtin, 6);
	assert_true(host);
	assert_int_equal(lib, 1);
	/* a short table gets the first entries, no more */
	assert_int_equal(wrk_types_list(e, 2), 2);
	wrk_types_forget();
}

#define STR_(x) #x
#define STR(x)	STR_(x)

/*
 * A plugin built against today's header, with the old spelling (a table named
 * shoal_agent_types): the header's macro exported it under this version's name, so shoal
 * read it as this version, and keeps its own copy of each struct.
 */
static void test_agent_abi_current_plugin(void **state)
{
	const char *path = getenv("SHOAL_TEST_PLUGIN");
	const struct shoal_agent_type *const *tab;
	const struct shoal_agent_type *t;
	char err[256];
	void *h;

	(void)state;
	if (!path)
		skip_because("SHOAL_TEST_PLUGIN is not set (run through meson test)");
	/* the macro names the table after the header's version */
	assert_string_equal(STR(shoal_agent_types),
			    "shoal_agent_types_v" STR(SHOAL_AGENT_ABI_VERSION));
	assert_true(shoal_agent_types_load(path, err, sizeof(err)) >= 0);
	h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(h);
	assert_null(dlsym(h, "shoal_agent_types"));
	tab = dlsym(h, STR(shoal_agent_types));
	assert_non_null(tab);
	t = shoal_agent_type_find("upper");
	assert_non_null(t);
	assert_ptr_not_equal(t, tab[0]);
	assert_ptr_equal(t->handle_call, tab[0]->handle_call);
	assert_int_equal(t->flags, 0);
	dlclose(h);
}

/*
 * A plugin built before versioning (agent_abi1.h: the old struct, the old table name) still
 * loads and answers; shoal copied its struct, so the version 2 field it lacks reads 0 where
 * the plugin's memory holds the fence.
 */
static void test_agent_abi1_plugin_loads(void **state)
{
	const char *path = getenv("SHOAL_TEST_ABI1_PLUGIN");
	const struct shoal_agent_type_abi1 *const *tab;
	const struct shoal_agent_type *t;
	const struct shoal_agent_type_abi1_fenced *fenced;
	struct wrk_agent wa = {.slot = 5, .handle = shoal_handle_make(5, 1)};
	struct shoal_ctx ctx = {.agent = &wa};
	struct shoal_msg m = {.data = "old one", .len = 7, .flags = SHOAL_MSG_CALL};
	char reply[64], err[256] = "";
	uint32_t rlen = 0;
	void *h, *st;

	(void)state;
	if (!path)
		skip_because("SHOAL_TEST_ABI1_PLUGIN is not set (run through meson test)");
	assert_int_equal(shoal_agent_types_load(path, err, sizeof(err)), 1);
	h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(h);
	tab = dlsym(h, "shoal_agent_types");
	assert_non_null(tab);
	fenced = (const struct shoal_agent_type_abi1_fenced *)tab[0];
	/* past the plugin's struct: what reading it as today's struct would have seen */
	assert_int_equal(fenced->after[0], ABI1_FENCE);
	t = shoal_agent_type_find("old_upper");
	assert_non_null(t);
	assert_ptr_not_equal(t, tab[0]);
	assert_int_equal(t->flags, 0);
	assert_null(t->vote);
	assert_null(t->tick);
	assert_ptr_equal(t->handle_call, tab[0]->handle_call);
	wa.type = t;
	assert_int_equal(t->init(&ctx, NULL, 0, &st), 0);
	assert_int_equal(t->handle_call(&ctx, st, &m, reply, sizeof(reply), &rlen), 0);
	assert_int_equal(rlen, strlen("OLD ONE@5"));
	assert_memory_equal(reply, "OLD ONE@5", rlen);
	dlclose(h);
}

/*
 * A plugin built against agent ABI version 2 (agent_abi2.h: flags, no vote; its table
 * shoal_agent_types_v2) loads and answers; shoal copied its struct, so version 3's vote reads
 * NULL (the type votes yes) where the plugin's memory holds the fence.
 */
static void test_agent_abi2_plugin_loads(void **state)
{
	const char *path = getenv("SHOAL_TEST_ABI2_PLUGIN");
	const struct shoal_agent_type_abi2 *const *tab;
	const struct shoal_agent_type_abi2_fenced *fenced;
	const struct shoal_agent_type *t;
	struct wrk_agent wa = {.slot = 6, .handle = shoal_handle_make(6, 1)};
	struct shoal_ctx ctx = {.agent = &wa};
	struct shoal_msg m = {.data = "two", .len = 3, .flags = SHOAL_MSG_CALL};
	char reply[64], err[256] = "";
	uint32_t rlen = 0;
	void *h, *st;

	(void)state;
	if (!path)
		skip_because("SHOAL_TEST_ABI2_PLUGIN is not set (run through meson test)");
	assert_int_equal(shoal_agent_types_load(path, err, sizeof(err)), 1);
	h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(h);
	assert_null(dlsym(h, "shoal_agent_types_v3"));
	tab = dlsym(h, "shoal_agent_types_v2");
	assert_non_null(tab);
	fenced = (const struct shoal_agent_type_abi2_fenced *)tab[0];
	assert_true(fenced->after[0] == ABI2_FENCE);
	t = shoal_agent_type_find("v2_upper");
	assert_non_null(t);
	assert_ptr_not_equal(t, (const void *)tab[0]);
	assert_null(t->vote);
	assert_int_equal(t->flags, 0);
	wa.type = t;
	assert_int_equal(t->init(&ctx, NULL, 0, &st), 0);
	assert_int_equal(t->handle_call(&ctx, st, &m, reply, sizeof(reply), &rlen), 0);
	assert_int_equal(rlen, strlen("TWO@6"));
	assert_memory_equal(reply, "TWO@6", rlen);
	dlclose(h);
}

static int yes_vote(struct shoal_ctx *ctx, void *st, const struct shoal_proposal *p, char *reason,
		    uint32_t cap)
{
	(void)ctx, (void)st, (void)p, (void)reason, (void)cap;
	return 1;
}

/*
 * A version 3 struct keeps its vote; the same struct registered as version 2 (what a plugin
 * of that version hands over) has none, and one of version 1 neither.
 */
static void test_agent_abi3_vote(void **state)
{
	static const struct shoal_agent_type v3 = {
		.name = "voter3", .init = nop_init, .handle = nop_handle, .vote = yes_vote};
	static const struct shoal_agent_type as2 = {
		.name = "voter2", .init = nop_init, .handle = nop_handle, .vote = yes_vote};
	const struct shoal_agent_type *t;

	(void)state;
	assert_int_equal(SHOAL_AGENT_ABI_VERSION, 3);
	assert_int_equal(shoal_agent_type_register(&v3), 0);
	t = shoal_agent_type_find("voter3");
	assert_non_null(t);
	assert_ptr_equal(t->vote, yes_vote);
	assert_int_equal(shoal_agent_type_register_abi(&as2, 2), 0);
	t = shoal_agent_type_find("voter2");
	assert_non_null(t);
	assert_null(t->vote);
}

/*
 * The registration function of plugins built before versioning, called with a version 1
 * struct (a shoal_agent_types_init() of that time), copies that struct only; today's
 * spelling registers today's struct, whose flags this shoal checks.
 */
static void test_agent_abi1_register(void **state)
{
	static const struct shoal_agent_type_abi1_fenced old = {
		.t = {.name = "abi1reg", .init = nop_init, .handle = nop_handle, .tick_ms = 7},
		.after = {ABI1_FENCE, ABI1_FENCE, ABI1_FENCE, ABI1_FENCE},
	};
	static const struct shoal_agent_type flagged = {
		.name = "flagged", .init = nop_init, .handle = nop_handle, .flags = 1u << 31};
	const struct shoal_agent_type *t;

	(void)state;
	assert_int_equal((shoal_agent_type_register)((const struct shoal_agent_type *)&old.t), 0);
	t = shoal_agent_type_find("abi1reg");
	assert_non_null(t);
	assert_int_equal(t->tick_ms, 7);
	assert_ptr_equal(t->init, nop_init);
	assert_int_equal(t->flags, 0);
	/* the same struct again: a no-op, as before versioning */
	assert_int_equal((shoal_agent_type_register)((const struct shoal_agent_type *)&old.t), 0);
	/* a flag this shoal does not know: refused, not silently dropped */
	assert_int_equal(shoal_agent_type_register(&flagged), -EPROTONOSUPPORT);
	assert_null(shoal_agent_type_find("flagged"));
}

/*
 * A type of an agent ABI newer than this shoal's is refused, with a sentence naming the
 * type and both versions: registered directly, from a plugin's table or its init function,
 * and when a supervisor declares such a library (its probe child says why).
 */
static void test_agent_abi_future_refused(void **state)
{
	const char *tpath = getenv("SHOAL_TEST_FUTURE_PLUGIN");
	const char *ipath = getenv("SHOAL_TEST_FUTURE_INIT_PLUGIN");
	static const struct shoal_agent_type later = {
		.name = "later", .init = nop_init, .handle = nop_handle};
	const char *want = "type 'future' is built for agent ABI version 4; this shoal supports "
			   "versions 1 to " STR(SHOAL_AGENT_ABI_VERSION);
	char err[512] = "";

	(void)state;
	if (!tpath || !ipath)
		skip_because("SHOAL_TEST_FUTURE_PLUGIN or SHOAL_TEST_FUTURE_INIT_PLUGIN is not set "
			     "(run through meson test)");
	assert_int_equal(shoal_agent_type_register_abi(&later, SHOAL_AGENT_ABI_VERSION + 1),
			 -EPROTONOSUPPORT);
	assert_int_equal(shoal_agent_type_register_abi(&later, 0), -EINVAL);
	assert_null(shoal_agent_type_find("later"));
	assert_int_equal(shoal_agent_types_load(tpath, err, sizeof(err)), -EPROTONOSUPPORT);
	if (!strstr(err, want) || !strstr(err, tpath))
		fail_msg("table plugin: %s", err);
	memset(err, 0, sizeof(err));
	assert_int_equal(shoal_agent_types_load(ipath, err, sizeof(err)), -EPROTONOSUPPORT);
	if (!strstr(err, want) || !strstr(err, ipath))
		fail_msg("init plugin: %s", err);
	assert_null(shoal_agent_type_find("future"));
	memset(err, 0, sizeof(err));
	assert_int_equal(wrk_types_declare(tpath, err, sizeof(err)), -ELIBBAD);
	if (!strstr(err, want))
		fail_msg("declare: %s", err);
	assert_false(wrk_type_is_known("future"));
}

static void test_agent_ckpt_commit_read(void **state)
{
	struct shm_seg *seg = make_seg();
	char buf[128];
	uint8_t big[101];

	(void)state;
	assert_int_equal(wrk_ckpt_read(seg, 3, buf, sizeof(buf)), 0);
	for (int i = 0; i < 5; i++) {
		char rec[32];
		int n = snprintf(rec, sizeof(rec), "record %d", i);

		assert_int_equal(wrk_ckpt_commit(seg, 3, rec, (uint32_t)n), 0);
		memset(buf, 0, sizeof(buf));
		assert_int_equal(wrk_ckpt_read(seg, 3, buf, sizeof(buf)), n);
		assert_string_equal(buf, rec);
	}
	memset(big, 1, sizeof(big));
	assert_int_equal(wrk_ckpt_commit(seg, 3, big, sizeof(big)), -EMSGSIZE);
	assert_int_equal(wrk_ckpt_commit(seg, 3, big, 100), 0);
	assert_int_equal(wrk_ckpt_read(seg, 3, buf, sizeof(buf)), 100);
	/* another slot is untouched */
	assert_int_equal(wrk_ckpt_read(seg, 4, buf, sizeof(buf)), 0);
	drop_seg(seg);
}

/*
 * A committer killed at random moments: after recovery the record is always one complete
 * commit (every byte the same value, the length its commit gave).
 */
static void test_agent_ckpt_crash_safe(void **state)
{
	struct shm_seg *seg = make_seg();
	uint8_t buf[128];

	(void)state;
	for (int round = 0; round < 40; round++) {
		int pfd[2];
		char c;
		pid_t pid;
		int len;

		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			uint8_t rec[100];

			close(pfd[0]);
			for (uint32_t i = 1;; i++) {
				uint32_t n = 1 + i % 100;

				memset(rec, (int)(i & 0xff), n);
				rec[0] = (uint8_t)n;
				wrk_ckpt_commit(seg, 5, rec, n);
				if (i == 1000 && write(pfd[1], "x", 1) != 1)
					_exit(1);
			}
		}
		close(pfd[1]);
		assert_int_equal(read(pfd[0], &c, 1), 1); /* it is committing now */
		for (volatile int spin = 0; spin < (round * 7919) % 200000; spin++)
			;
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		close(pfd[0]);
		wrk_ckpt_recover(seg, 5);
		assert_int_equal(atomic_load(&shm_agent_at(seg, 5)->ckpt_seq) & 1, 0);
		len = wrk_ckpt_read(seg, 5, buf, sizeof(buf));
		assert_true(len >= 1 && len <= 100);
		assert_int_equal(buf[0], len);
		for (int i = 2; i < len; i++)
			assert_int_equal(buf[i], buf[1]);
	}
	drop_seg(seg);
}

/* A commit interrupted after the odd seq: the previous record survives recovery. */
static void test_agent_ckpt_half_commit(void **state)
{
	struct shm_seg *seg = make_seg();
	struct shm_agent *a = shm_agent_at(seg, 2);
	char buf[128];
	uint32_t seq;

	(void)state;
	assert_int_equal(wrk_ckpt_commit(seg, 2, "old", 3), 0);
	/* what a worker killed mid-commit leaves: odd seq, the other buffer half written */
	seq = atomic_load(&a->ckpt_seq);
	atomic_store(&a->ckpt_seq, seq + 1);
	atomic_store(&a->ckpt_blen[((seq >> 1) + 1) & 1], 99);
	assert_int_equal(wrk_ckpt_read(seg, 2, buf, sizeof(buf)), 3); /* readers see the old */
	wrk_ckpt_recover(seg, 2);
	assert_int_equal(wrk_ckpt_read(seg, 2, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "old", 3);
	assert_int_equal(wrk_ckpt_commit(seg, 2, "new!", 4), 0);
	assert_int_equal(wrk_ckpt_read(seg, 2, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "new!", 4);
	drop_seg(seg);
}

/* Agent slot `slot` as a live incarnation of generation gen: a monitor's target must be one. */
static void make_live(struct shm_seg *seg, uint32_t slot, uint32_t gen)
{
	atomic_store(&shm_agent_at(seg, slot)->gen, gen);
	atomic_store(&shm_agent_at(seg, slot)->state, SHM_AGENT_RUNNING);
}

static void test_agent_monitor_table(void **state)
{
	struct shm_seg *seg = make_seg();
	shoal_handle_t w = shoal_handle_make(1, 1), t = shoal_handle_make(2, 1);
	struct shm_monitor *mon = shm_region(seg, SHM_R_MONITORS);
	uint64_t r1, r2, dead_tag;
	uint32_t n = 0, epoch;

	(void)state;
	/* a target that has ended (a free slot, or another generation): -ESTALE, no entry */
	assert_int_equal(wrk_mon_add(seg, w, t, &r1), -ESTALE);
	make_live(seg, 2, 2);
	assert_int_equal(wrk_mon_add(seg, w, t, &r1), -ESTALE);
	assert_int_equal(atomic_load(&mon[0].watcher), 0);
	make_live(seg, 2, 1);
	assert_int_equal(wrk_mon_add(seg, w, t, &r1), 0);
	assert_int_equal(wrk_mon_add(seg, w, t, &r2), 0);
	assert_true(r1 != r2);
	assert_int_equal(wrk_mon_remove(seg, w, r1), 0);
	assert_int_equal(wrk_mon_remove(seg, w, r1), -ENOENT);
	/* the table fills: -ENOSPC, never an overwrite */
	for (;;) {
		uint64_t r;
		int rc = wrk_mon_add(seg, w, t, &r);

		if (rc) {
			assert_int_equal(rc, -ENOSPC);
			break;
		}
		n++;
	}
	assert_int_equal(n, 63);
	assert_int_equal(wrk_mon_drop_watcher(seg, w), 64);
	/* a claim left by a dead process (slot 9, never alive) is undone by repair */
	assert_int_equal(shm_proc_claim_slot(seg, 9, SHM_ROLE_CLIENT, 1, 0, &epoch), 0);
	dead_tag = SHM_TAG(9, epoch);
	atomic_store(&shm_proc_at(seg, 9)->state, SHM_PROC_DEAD);
	atomic_store(&mon[5].ctl, dead_tag);
	atomic_store(&mon[5].target, t); /* half set up: no watcher yet */
	atomic_store(&mon[6].ctl, dead_tag);
	atomic_store(&mon[6].target, t);
	atomic_store(&mon[6].ref, 77);
	atomic_store(&mon[6].watcher, w); /* set up, claim not yet released */
	assert_int_equal(wrk_mon_repair(seg, 9), 2);
	assert_int_equal(atomic_load(&mon[5].ctl), 0);
	assert_int_equal(atomic_load(&mon[5].target), 0);
	assert_int_equal(atomic_load(&mon[6].ctl), 0);
	assert_int_equal(wrk_mon_remove(seg, w, 77), 0);
	drop_seg(seg);
}

/*
 * An agent slot's type, name and flags are written before S2 publishes it (nobody writes them
 * after): the slot reads STARTING with them in place, each cut to its field, and a reused slot
 * starts with its own.
 */
static void test_agent_alloc_named_before_publish(void **state)
{
	struct shm_seg *seg = make_seg();
	char longtype[SHM_TYPE_MAX + 8], longname[80];
	struct shm_agent *a;
	uint32_t slot;

	(void)state;
	memset(longtype, 't', sizeof(longtype) - 1);
	longtype[sizeof(longtype) - 1] = '\0';
	memset(longname, 'n', sizeof(longname));
	assert_int_equal(shm_agent_alloc_named(seg, 0, longtype, longname, sizeof(longname), &slot),
			 0);
	a = shm_agent_at(seg, slot);
	assert_int_equal(atomic_load(&a->state), SHM_AGENT_STARTING);
	assert_int_equal(strnlen(a->type, sizeof(a->type)), SHM_TYPE_MAX - 1);
	assert_int_equal(strnlen(a->name, sizeof(a->name)), sizeof(a->name) - 1);
	assert_int_equal(a->name[0], 'n');
	a->flags = 5; /* as a previous owner may have left it */
	shm_agent_free(seg, slot);
	assert_int_equal(shm_agent_alloc_named(seg, 0, "echo", NULL, 0, &slot), 0);
	a = shm_agent_at(seg, slot);
	assert_int_equal(atomic_load(&a->state), SHM_AGENT_STARTING);
	assert_string_equal(a->type, "echo");
	assert_string_equal(a->name, "");
	assert_int_equal(a->flags, 0);
	shm_agent_free(seg, slot);
	drop_seg(seg);
}

/* Spawn without a running worker, stop it (the stopper finishes it), repair a half spawn. */
static void test_agent_spawn_stop_repair(void **state)
{
	struct shm_seg *seg = make_seg();
	shoal_handle_t h, found, h2;
	struct shm_agent *a;
	uint32_t epoch, slot;
	uint64_t saved_tag;

	(void)state;
	assert_int_equal(wrk_agent_spawn(seg, "nonesuch", "x", 1, &h), -EINVAL);
	assert_int_equal(wrk_agent_spawn(seg, "echo", "e1", 1, &h), 0);
	a = wrk_agent_get(seg, h);
	assert_non_null(a);
	assert_int_equal(atomic_load(&a->state), SHM_AGENT_STARTING);
	assert_int_equal(atomic_load(&a->worker), 2);
	assert_string_equal(a->type, "echo");
	assert_string_equal(a->name, "e1");
	assert_int_equal(atomic_load(&shm_proc_at(seg, 1)->agents_gen), 1);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "e1", 2, &found, NULL), 0);
	assert_true(found == h);
	assert_int_equal(wrk_agent_spawn(seg, "echo", "e1", 1, &h2), -EEXIST);
	/* worker 1 is not running: the stop is finished by the caller */
	assert_int_equal(wrk_agent_stop(seg, h), 0);
	assert_null(wrk_agent_get(seg, h));
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "e1", 2, &found, NULL), -ENOENT);
	assert_int_equal(wrk_agent_stop(seg, h), -ENOENT);
	/* a spawner killed after alloc + register, before the hand-over: repair undoes it */
	saved_tag = seg->tag;
	assert_int_equal(shm_proc_claim_slot(seg, 9, SHM_ROLE_CLIENT, 1, 0, &epoch), 0);
	seg->tag = SHM_TAG(9, epoch);
	assert_int_equal(shm_agent_alloc(seg, 0, &slot), 0);
	h2 = wrk_agent_handle(seg, slot);
	assert_int_equal(shm_reg_register(seg, SHM_NS_DEFAULT, "half", 4, h2, NULL), 0);
	seg->tag = saved_tag;
	atomic_store(&shm_proc_at(seg, 9)->state, SHM_PROC_DEAD);
	assert_int_equal(wrk_repair_proc_claims(seg, 9), 1);
	assert_int_equal(atomic_load(&shm_agent_at(seg, slot)->state), SHM_AGENT_FREE);
	assert_int_equal(atomic_load(&shm_agent_at(seg, slot)->ctl), 0);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "half", 4, &found, NULL), -ENOENT);
	drop_seg(seg);
}

/*
 * The supervisor spawns for control requests under its own tag (slot 0). Killed midway, it
 * leaves claims that a post-mortem repair resolves like any spawner's: once slot 0 reads
 * DEAD, an interrupted spawn is undone and one with only the hand-over left is handed over.
 */
static void test_agent_supervisor_spawn_repair(void **state)
{
	struct shm_cfg cfg;
	struct shm_seg *seg = NULL;
	shoal_handle_t found;
	uint32_t slots[2], st;
	uint64_t own, tag;
	int pfd[2], status;
	char err[256];
	pid_t pid;

	(void)state;
	shm_cfg_default(&cfg);
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	cfg.max_procs = 8;
	cfg.nworkers = 2;
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	shm_seg_publish(seg);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		shoal_handle_t h;
		uint32_t s[2];

		/* the "supervisor": slot 0, two spawns it never finishes */
		if (shm_proc_claim(seg, SHM_ROLE_SUPERVISOR, false) || seg->self != 0)
			_exit(1);
		shm_proc_set_state(seg, SHM_PROC_RUNNING);
		/* the second's type written at its claim, as wrk_agent_spawn() does */
		if (shm_agent_alloc(seg, 0, &s[0]) ||
		    shm_agent_alloc_named(seg, 0, "echo", NULL, 0, &s[1]))
			_exit(2);
		h = wrk_agent_handle(seg, s[0]);
		if (shm_reg_register(seg, SHM_NS_DEFAULT, "half", 4, h, NULL))
			_exit(3);
		/* the second got as far as its worker (worker 0, process slot 1) */
		h = wrk_agent_handle(seg, s[1]);
		if (shm_reg_register(seg, SHM_NS_DEFAULT, "almost", 6, h, NULL))
			_exit(4);
		atomic_store(&shm_agent_at(seg, s[1])->worker, 2);
		if (write(pfd[1], s, sizeof(s)) != (ssize_t)sizeof(s))
			_exit(5);
		raise(SIGKILL);
		_exit(6);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], slots, sizeof(slots)), (ssize_t)sizeof(slots));
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	/* the repairer of the post-mortem: another process slot */
	assert_int_equal(shm_proc_claim(seg, SHM_ROLE_CLIENT, false), 0);
	assert_true(seg->self != 0);
	own = atomic_load(&shm_proc_at(seg, 0)->own);
	tag = SHM_TAG(0, (uint32_t)own);
	assert_int_equal(atomic_load(&shm_agent_at(seg, slots[0])->ctl), tag);
	assert_int_equal(atomic_load(&shm_agent_at(seg, slots[1])->ctl), tag);
	/* slot 0 still reads RUNNING: only the kernel knows it is gone */
	assert_false(shm_tag_is_dead(seg, tag, false));
	assert_true(shm_tag_is_dead(seg, tag, true));
	/* nothing is repaired before the slot is marked dead */
	assert_int_equal(wrk_repair_proc_claims(seg, 0), 0);
	st = SHM_PROC_RUNNING;
	assert_true(
		atomic_compare_exchange_strong(&shm_proc_at(seg, 0)->state, &st, SHM_PROC_DEAD));
	assert_int_equal(wrk_repair_proc_claims(seg, 0), 2);
	assert_int_equal(atomic_load(&shm_agent_at(seg, slots[0])->state), SHM_AGENT_FREE);
	assert_int_equal(atomic_load(&shm_agent_at(seg, slots[0])->ctl), 0);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "half", 4, &found, NULL), -ENOENT);
	assert_int_equal(atomic_load(&shm_agent_at(seg, slots[1])->state), SHM_AGENT_STARTING);
	assert_int_equal(atomic_load(&shm_agent_at(seg, slots[1])->ctl), WRK_CTL_HELD);
	assert_int_equal(shm_reg_lookup(seg, SHM_NS_DEFAULT, "almost", 6, &found, NULL), 0);
	assert_true(found == wrk_agent_handle(seg, slots[1]));
	assert_int_equal(atomic_load(&shm_proc_at(seg, 1)->agents_gen), 1);
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
}

struct ckpt_race {
	struct shm_seg *seg;
	_Atomic uint32_t done;
};

static void *ckpt_writer(void *arg)
{
	struct ckpt_race *r = arg;
	uint8_t rec[100];

	for (uint32_t i = 1; i <= 20000; i++) {
		uint32_t n = 1 + i % 100;

		memset(rec, (int)(i & 0xff), n);
		rec[0] = (uint8_t)n;
		wrk_ckpt_commit(r->seg, 6, rec, n);
	}
	atomic_store(&r->done, 1);
	return NULL;
}

/* Two threads (for ThreadSanitizer): a reader never sees a torn record. */
static void test_agent_ckpt_two_threads(void **state)
{
	struct ckpt_race r = {.seg = make_seg()};
	uint8_t buf[128];
	pthread_t t;
	uint32_t reads = 0;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, ckpt_writer, &r), 0);
	while (!atomic_load(&r.done)) {
		int len = wrk_ckpt_read(r.seg, 6, buf, sizeof(buf));

		if (len == -EAGAIN || len == 0)
			continue;
		assert_true(len >= 1 && len <= 100);
		assert_int_equal(buf[0], len);
		for (int i = 2; i < len; i++)
			assert_int_equal(buf[i], buf[1]);
		reads++;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	drop_seg(r.seg);
}

static void *mon_churn(void *arg)
{
	struct shm_seg *seg = arg;
	shoal_handle_t w = shoal_handle_make(3, (uint32_t)(uintptr_t)pthread_self() | 1);

	for (int i = 0; i < 5000; i++) {
		uint64_t ref;

		if (wrk_mon_add(seg, w, shoal_handle_make(4, 1), &ref) == 0)
			if (wrk_mon_remove(seg, w, ref) != 0)
				return (void *)1;
	}
	return NULL;
}

/* Two threads adding and removing monitors: every add is removable exactly once. */
static void test_agent_monitor_two_threads(void **state)
{
	struct shm_seg *seg = make_seg();
	pthread_t t1, t2;
	void *r1, *r2;

	(void)state;
	make_live(seg, 4, 1);
	assert_int_equal(pthread_create(&t1, NULL, mon_churn, seg), 0);
	assert_int_equal(pthread_create(&t2, NULL, mon_churn, seg), 0);
	assert_int_equal(pthread_join(t1, &r1), 0);
	assert_int_equal(pthread_join(t2, &r2), 0);
	assert_null(r1);
	assert_null(r2);
	for (uint32_t i = 0; i < 64; i++)
		assert_int_equal(
			atomic_load(&((struct shm_monitor *)shm_region(seg, SHM_R_MONITORS))[i]
					     .watcher),
			0);
	drop_seg(seg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_type_table),
		cmocka_unit_test(test_agent_dlopen),
		cmocka_unit_test(test_agent_types_list),
		cmocka_unit_test(test_agent_abi_current_plugin),
		cmocka_unit_test(test_agent_abi1_plugin_loads),
		cmocka_unit_test(test_agent_abi1_register),
		cmocka_unit_test(test_agent_abi2_plugin_loads),
		cmocka_unit_test(test_agent_abi3_vote),
		cmocka_unit_test(test_agent_abi_future_refused),
		cmocka_unit_test_setup_teardown(test_agent_ckpt_commit_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_ckpt_crash_safe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_ckpt_half_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_ckpt_two_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_monitor_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_monitor_two_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_alloc_named_before_publish, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_spawn_stop_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_supervisor_spawn_repair, setup,
						teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
